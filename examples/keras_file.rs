//! Word embeddings from a real trained Keras 2 model file, read without Python.
//!
//! chars2vec (Apache-2.0, see `tests/fixtures_files/chars2vec/NOTICE.md`) embeds a word by
//! running its one-hot characters through `LSTM(50, return_sequences=True) -> LSTM(50)`. Its
//! `eng_50/weights.h5` was written by Keras 2.2.0 in 2019; `model.json` is the architecture
//! (`model.to_json()`), since `save_weights` files hold no config.
//!
//! ```sh
//! cargo run --release --example keras_file               # the words Keras's reference used
//! cargo run --release --example keras_file -- hello helo world
//! ```

use ndarray::{Array3, Axis};
use recurrent::keras::{npz, KerasFile};
use recurrent::layers::CallArgs;
use std::path::Path;

fn main() -> Result<(), recurrent::Error> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures_files/chars2vec");
    let file = KerasFile::open_with_weights(dir.join("model.json"), dir.join("weights.h5"))?;
    let names = file.default_layers()?; // ["lstm_1", "lstm_2"]: the model's one chain
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut chain = file.chain(&refs)?;
    println!("chars2vec eng_50: layers {}", names.join(" -> "));

    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f)).map_err(|e| recurrent::Error::File {
            path: dir.join(f).display().to_string(),
            message: e.to_string(),
        })
    };
    let vocab: Vec<char> = read("vocab.txt")?.trim_end_matches('\n').chars().collect();
    let given: Vec<String> = std::env::args().skip(1).collect();
    let reference = given.is_empty();
    let words: Vec<String> = if reference {
        read("words.txt")?.lines().map(str::to_string).collect()
    } else {
        given
    };

    // One-hot characters, lower case, unknown characters all zero, padded at the front with
    // zero vectors: what chars2vec feeds its model (keras pad_sequences).
    let t = words
        .iter()
        .map(|w| w.chars().count())
        .max()
        .unwrap_or(1)
        .max(1);
    let mut x = Array3::<f32>::zeros((words.len(), t, vocab.len()));
    for (i, w) in words.iter().enumerate() {
        let chars: Vec<char> = w.to_lowercase().chars().collect();
        for (k, ch) in chars.iter().enumerate() {
            if let Some(j) = vocab.iter().position(|v| v == ch) {
                x[[i, t - chars.len() + k, j]] = 1.0;
            }
        }
    }
    let out = chain.forward(x.view().into_dyn(), &CallArgs::default())?;
    let emb = out.output; // (words, 50)

    for (w, e) in words.iter().zip(emb.axis_iter(Axis(0))) {
        let head: Vec<String> = e.iter().take(4).map(|v| format!("{v:+.4}")).collect();
        println!("{w:>12}: [{}, ...] (50 values)", head.join(", "));
    }
    println!("\ncosine similarity");
    print!("{:>12}", "");
    for w in &words {
        print!("{w:>11}");
    }
    println!();
    for (a, ea) in words.iter().zip(emb.axis_iter(Axis(0))) {
        print!("{a:>12}");
        for eb in emb.axis_iter(Axis(0)) {
            let dot: f32 = ea.iter().zip(eb.iter()).map(|(p, q)| p * q).sum();
            let na = ea.iter().map(|v| v * v).sum::<f32>().sqrt();
            let nb = eb.iter().map(|v| v * v).sum::<f32>().sqrt();
            print!("{:>11.3}", dot / (na * nb));
        }
        println!();
    }
    if reference {
        let want = npz::read_npz(&dir.join("out.npz"))?;
        let worst = want["output"]
            .iter()
            .zip(emb.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!("\nlargest difference from Keras (tf-keras 2.21): {worst:.2e}");
    }
    Ok(())
}
