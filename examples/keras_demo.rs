//! Runs the two bundled Keras exports under `examples/keras/` (an LSTM and a ConvLSTM2D,
//! written by `scripts/keras_fixtures.py` with tf-keras 2.21) through the same path as
//! `recurrent run`, prints the outputs and their largest difference to Keras's own output
//! (`keras_out.npz`, shipped beside them).
//!
//! ```text
//! cargo run --release --example keras_demo
//! ```

use recurrent::keras::{load_layer, npz, StorageType};
use recurrent::layers::CallArgs;
use std::path::Path;

fn main() -> Result<(), recurrent::Error> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/keras");
    let mut worst = 0.0f32;
    for name in ["lstm", "conv_lstm2d"] {
        let dir = root.join(name);
        let mut layer = load_layer(
            &dir.join("layer.json"),
            &dir.join("weights.npz"),
            StorageType::F32,
        )?;
        let x = npz::read_f32(&dir.join("x.npy"))?;
        let out = layer.forward(x.view(), &CallArgs::default())?;
        let keras = npz::read_npz(&dir.join("keras_out.npz"))?;
        let want = keras.get("output").ok_or_else(|| recurrent::Error::File {
            path: dir.join("keras_out.npz").display().to_string(),
            message: "missing array `output`".into(),
        })?;
        if want.shape() != out.output.shape() {
            return Err(recurrent::Error::shape(
                "output",
                format!("{:?}", want.shape()),
                out.output.shape(),
            ));
        }
        let diff = out
            .output
            .iter()
            .zip(want.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        worst = worst.max(diff);
        println!(
            "{} ({}): input {:?} -> output {:?}",
            name,
            layer.class_name(),
            x.shape(),
            out.output.shape()
        );
        let shown: Vec<String> = out
            .output
            .iter()
            .take(6)
            .map(|v| format!("{v:+.6}"))
            .collect();
        println!("  first outputs:      {}", shown.join(" "));
        let shown: Vec<String> = want.iter().take(6).map(|v| format!("{v:+.6}")).collect();
        println!("  Keras's outputs:    {}", shown.join(" "));
        println!("  max |ours - Keras| = {diff:.3e}");
    }
    let ok = worst <= 1e-5;
    println!(
        "\n{}: largest difference to Keras {worst:.3e} (tolerance 1e-5 + 1e-4*|want|)",
        if ok { "OK" } else { "MISMATCH" }
    );
    if ok {
        Ok(())
    } else {
        Err(recurrent::Error::invalid(
            "keras_demo",
            format!("outputs differ from Keras by {worst:e}"),
        ))
    }
}
