//! The fast CPU path split over threads gives the same numbers as a plain f64 reference
//! loop, at sizes where each step really is split into several chunks (units >= 160), with
//! masks with holes and go_backwards; and cells with row-wise activations (softmax) give the
//! same numbers at any thread count. One test function, because the thread count is a
//! process-wide setting.

use ndarray::{Array1, Array2, Array3, ArrayD};
use recurrent::config::{
    ConvLSTM2DConfig, GRUCellConfig, LSTMCellConfig, Padding, SequenceOptions, SimpleRNNCellConfig,
};
use recurrent::initializers::Initializer;
use recurrent::layers::{CallArgs, ConvLSTM2D, Output, SimpleRNN, GRU, LSTM};
use recurrent::Activation;

fn rand(shape: &[usize], salt: u64, scale: f64) -> ArrayD<f32> {
    Initializer::RandomUniform {
        minval: -scale,
        maxval: scale,
        seed: Some(11),
    }
    .generate(shape, salt)
    .expect("random")
}

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// One step of a cell in f64: `(x_t, h, c) -> (h', c')`.
type StepFn<'a> = dyn Fn(&[f64], &[f64], &[f64]) -> (Vec<f64>, Vec<f64>) + 'a;

/// f64 reference of the Keras loop for one gated cell given per-step math `f(x_t, h, c) -> (h', c')`.
fn reference(
    x: &Array3<f32>,
    mask: &Array2<bool>,
    go_backwards: bool,
    units: usize,
    f: &StepFn<'_>,
) -> Array3<f32> {
    let (b, t, _) = x.dim();
    let mut out = Array3::<f32>::zeros((b, t, units));
    for bi in 0..b {
        let mut h = vec![0.0; units];
        let mut c = vec![0.0; units];
        let mut prev = vec![0.0; units];
        for step in 0..t {
            let ti = if go_backwards { t - 1 - step } else { step };
            if mask[[bi, ti]] {
                let xt: Vec<f64> = x
                    .slice(ndarray::s![bi, ti, ..])
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect();
                let (h2, c2) = f(&xt, &h, &c);
                h = h2;
                c = c2;
                prev = h.clone();
            }
            for j in 0..units {
                out[[bi, step, j]] = prev[j] as f32;
            }
        }
    }
    out
}

fn matvec(x: &[f64], w: &Array2<f32>, col: usize) -> f64 {
    x.iter()
        .enumerate()
        .map(|(k, &v)| v * f64::from(w[[k, col]]))
        .sum()
}

fn check(name: &str, got: &Output, want: &Array3<f32>) {
    let g = got.output.view();
    assert_eq!(g.shape(), want.shape(), "{name}");
    let mut worst = 0.0f32;
    for (a, b) in g.iter().zip(want.iter()) {
        let err = (a - b).abs();
        assert!(err <= 1e-5 + 1e-4 * b.abs(), "{name}: got {a}, want {b}");
        worst = worst.max(err);
    }
    println!("{name}: max error {worst:.2e}");
}

#[test]
fn threaded_cpu_path_matches_an_f64_reference_for_every_cell() {
    row_wise_activations_are_not_split_across_threads();
    let (b, t, i, u) = (5usize, 6usize, 24usize, 160usize);
    let x: Array3<f32> = rand(&[b, t, i], 1, 1.0).into_dimensionality().expect("3-D");
    let mut mask = Array2::from_elem((b, t), true);
    mask[[0, 2]] = false;
    mask[[1, 0]] = false;
    mask[[1, 1]] = false;
    mask[[2, 5]] = false;
    for r in 0..t {
        mask[[4, r]] = false;
    }
    let opts = SequenceOptions {
        return_sequences: true,
        go_backwards: true,
        ..Default::default()
    };
    let args = CallArgs {
        mask: Some(mask.view()),
        ..Default::default()
    };
    for threads in [1usize, 2] {
        recurrent::cpu::set_num_threads(threads);
        // LSTM, sigmoid / tanh.
        let k: Array2<f32> = rand(&[i, 4 * u], 2, 0.3)
            .into_dimensionality()
            .expect("2-D");
        let r: Array2<f32> = rand(&[u, 4 * u], 3, 0.2)
            .into_dimensionality()
            .expect("2-D");
        let bias: Array1<f32> = rand(&[4 * u], 4, 0.5).into_dimensionality().expect("1-D");
        let mut lstm = LSTM::new(
            LSTMCellConfig::tf_keras(u),
            opts,
            k.clone(),
            r.clone(),
            Some(bias.clone()),
        )
        .expect("lstm");
        let got = lstm.forward(x.view(), &args).expect("lstm run");
        let lstm_step = |xt: &[f64], h: &[f64], c: &[f64]| {
            let mut hn = vec![0.0; u];
            let mut cn = vec![0.0; u];
            for j in 0..u {
                let z = |g: usize| {
                    matvec(xt, &k, g * u + j)
                        + matvec(h, &r, g * u + j)
                        + f64::from(bias[g * u + j])
                };
                let (ig, fg, gg, og) = (sig(z(0)), sig(z(1)), z(2).tanh(), sig(z(3)));
                cn[j] = fg * c[j] + ig * gg;
                hn[j] = og * cn[j].tanh();
            }
            (hn, cn)
        };
        let want = reference(&x, &mask, true, u, &lstm_step);
        check(&format!("lstm, {threads} thread(s)"), &got, &want);
        // From batch 8 up the LSTM step computes `x_t W + b` itself instead of reading a
        // projection of all steps: the same numbers.
        let x9: Array3<f32> = rand(&[9, t, i], 8, 1.0).into_dimensionality().expect("3-D");
        let mut mask9 = Array2::from_elem((9, t), true);
        mask9[[3, 1]] = false;
        mask9[[8, 5]] = false;
        let args9 = CallArgs {
            mask: Some(mask9.view()),
            ..Default::default()
        };
        let got = lstm.forward(x9.view(), &args9).expect("lstm run, batch 9");
        let want = reference(&x9, &mask9, true, u, &lstm_step);
        check(&format!("lstm batch 9, {threads} thread(s)"), &got, &want);

        // GRU, reset_after = true and false, hard_sigmoid gates for the second.
        for reset_after in [true, false] {
            let k: Array2<f32> = rand(&[i, 3 * u], 5, 0.3)
                .into_dimensionality()
                .expect("2-D");
            let r: Array2<f32> = rand(&[u, 3 * u], 6, 0.2)
                .into_dimensionality()
                .expect("2-D");
            let bias = if reset_after {
                rand(&[2, 3 * u], 7, 0.5)
            } else {
                rand(&[3 * u], 7, 0.5)
            };
            let mut cfg = if reset_after {
                GRUCellConfig::tf_keras(u)
            } else {
                GRUCellConfig::new(u)
            };
            cfg.activation = Activation::Tanh;
            let mut gru =
                GRU::new(cfg.clone(), opts, k.clone(), r.clone(), Some(bias.clone())).expect("gru");
            let got = gru.forward(x.view(), &args).expect("gru run");
            let rec = |v: f64| {
                if reset_after {
                    sig(v)
                } else {
                    (0.2 * v + 0.5).clamp(0.0, 1.0)
                }
            };
            let bi = |row: usize, col: usize| -> f64 {
                if reset_after {
                    f64::from(bias[[row, col]])
                } else if row == 0 {
                    f64::from(bias[[col]])
                } else {
                    0.0
                }
            };
            let want = reference(&x, &mask, true, u, &|xt, h, _c| {
                let mut zs = vec![0.0; u];
                let mut rs = vec![0.0; u];
                for j in 0..u {
                    zs[j] = rec(matvec(xt, &k, j) + bi(0, j) + matvec(h, &r, j) + bi(1, j));
                    rs[j] = rec(matvec(xt, &k, u + j)
                        + bi(0, u + j)
                        + matvec(h, &r, u + j)
                        + bi(1, u + j));
                }
                let rh: Vec<f64> = (0..u).map(|j| rs[j] * h[j]).collect();
                let hn = (0..u)
                    .map(|j| {
                        let xh = matvec(xt, &k, 2 * u + j) + bi(0, 2 * u + j);
                        let n = if reset_after {
                            (xh + rs[j] * (matvec(h, &r, 2 * u + j) + bi(1, 2 * u + j))).tanh()
                        } else {
                            (xh + matvec(&rh, &r, 2 * u + j)).tanh()
                        };
                        zs[j] * h[j] + (1.0 - zs[j]) * n
                    })
                    .collect();
                (hn, vec![0.0; u])
            });
            check(
                &format!("gru reset_after={reset_after}, {threads} thread(s)"),
                &got,
                &want,
            );
        }

        // SimpleRNN, relu.
        let k: Array2<f32> = rand(&[i, u], 8, 0.3).into_dimensionality().expect("2-D");
        let r: Array2<f32> = rand(&[u, u], 9, 0.1).into_dimensionality().expect("2-D");
        let bias: Array1<f32> = rand(&[u], 10, 0.5).into_dimensionality().expect("1-D");
        let mut cfg = SimpleRNNCellConfig::new(u);
        cfg.activation = Activation::Relu;
        let mut rnn =
            SimpleRNN::new(cfg, opts, k.clone(), r.clone(), Some(bias.clone())).expect("rnn");
        let got = rnn.forward(x.view(), &args).expect("rnn run");
        let want = reference(&x, &mask, true, u, &|xt, h, _c| {
            let hn = (0..u)
                .map(|j| (matvec(xt, &k, j) + matvec(h, &r, j) + f64::from(bias[j])).max(0.0))
                .collect();
            (hn, vec![0.0; u])
        });
        check(&format!("simple_rnn, {threads} thread(s)"), &got, &want);
    }

    // ConvLSTM2D: the step is split by rows at 2 threads; it must equal the 1-thread result.
    let mut cfg = ConvLSTM2DConfig::new(8, (3, 3));
    cfg.padding = Padding::Same;
    cfg.sequence.return_sequences = true;
    let xc = rand(&[2, 4, 9, 9, 3], 12, 1.0);
    let mut outs = Vec::new();
    for threads in [1usize, 2] {
        recurrent::cpu::set_num_threads(threads);
        let mut conv = ConvLSTM2D::build(cfg.clone(), 3, 5).expect("conv");
        outs.push(conv.call(xc.view()).expect("conv run").output);
    }
    let worst = outs[0]
        .iter()
        .zip(outs[1].iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("conv_lstm2d 1 vs 2 threads: max difference {worst:.2e}");
    assert!(
        worst <= 1e-6,
        "conv_lstm2d differs between 1 and 2 threads by {worst}"
    );

    // ConvLSTM2D against an f64 direct-convolution reference: 3x3 stride 1 (input and
    // recurrent convolutions through Winograd, stacked), 3x3 stride 2 (input through im2col,
    // recurrent through Winograd) and 2x2 (both im2col); images larger than one Winograd group.
    for (kernel, strides, padding) in [
        ((3, 3), (1, 1), Padding::Same),
        ((3, 3), (1, 1), Padding::Valid),
        ((3, 3), (2, 2), Padding::Same),
        ((2, 2), (1, 1), Padding::Same),
    ] {
        let mut cfg = ConvLSTM2DConfig::new(6, kernel);
        cfg.strides = strides;
        cfg.padding = padding;
        cfg.recurrent_activation = Activation::Sigmoid;
        cfg.sequence.return_sequences = true;
        let x = rand(&[2, 3, 13, 11, 5], 21, 1.0);
        for threads in [1usize, 2] {
            recurrent::cpu::set_num_threads(threads);
            let mut conv = ConvLSTM2D::build(cfg.clone(), 5, 9).expect("conv");
            let want = conv_lstm_reference(&x, &conv.weights(), kernel, strides, padding);
            let got = conv.call(x.view()).expect("conv run").output;
            assert_eq!(got.shape(), want.shape());
            let err = |(g, w): (&f32, &f64)| (f64::from(*g) - w).abs();
            let max_err = got.iter().zip(want.iter()).map(err).fold(0.0, f64::max);
            let worst = got
                .iter()
                .zip(want.iter())
                .map(|p| err(p) - 1e-4 * p.1.abs())
                .fold(f64::MIN, f64::max);
            println!("conv_lstm2d {kernel:?} {strides:?} {padding:?}, {threads} thread(s): max error {max_err:.2e}");
            assert!(
                worst <= 1e-5,
                "conv_lstm2d {kernel:?} {strides:?} {padding:?} {threads} thread(s): off by {worst:e}"
            );
        }
    }
}

/// The outputs of `run` at 1 and at 3 threads agree within the contract's bound.
fn same_at_1_and_3_threads(name: &str, mut run: impl FnMut() -> ArrayD<f32>) {
    let mut outs = Vec::new();
    for threads in [1usize, 3] {
        recurrent::cpu::set_num_threads(threads);
        outs.push(run());
    }
    let (a, b) = (&outs[0], &outs[1]);
    assert_eq!(a.shape(), b.shape(), "{name}");
    for (x, y) in b.iter().zip(a.iter()) {
        assert!(
            (x - y).abs() <= 1e-5 + 1e-4 * y.abs(),
            "{name}: 3 threads give {x}, 1 thread {y}"
        );
    }
    println!("{name}: same at 1 and 3 threads");
}

/// softmax / log_softmax normalise over all units of a gate (or a ConvLSTM2D line): a step
/// split into unit chunks across threads would normalise each chunk alone. At sizes where the
/// elementwise cells do split (units 160; ConvLSTM2D 2 x 9 x 9 x 8), 3 threads must give the
/// 1-thread numbers (the Keras fixtures and corpus pin those). Called from the one test.
fn row_wise_activations_are_not_split_across_threads() {
    let (b, t, i, u) = (5usize, 4usize, 24usize, 160usize);
    let x: Array3<f32> = rand(&[b, t, i], 31, 1.0)
        .into_dimensionality()
        .expect("3-D");
    let opts = SequenceOptions {
        return_sequences: true,
        ..Default::default()
    };
    let none = CallArgs::default();
    let mut cfg = LSTMCellConfig::tf_keras(u);
    cfg.activation = Activation::Softmax;
    let mut lstm = LSTM::build(cfg, opts, i, 3).expect("lstm");
    same_at_1_and_3_threads("lstm softmax", || {
        lstm.forward(x.view(), &none).expect("run").output
    });
    for reset_after in [true, false] {
        let mut cfg = GRUCellConfig::tf_keras(u);
        cfg.reset_after = reset_after;
        cfg.recurrent_activation = Activation::Softmax;
        cfg.activation = Activation::LogSoftmax;
        let mut gru = GRU::build(cfg, opts, i, 4).expect("gru");
        same_at_1_and_3_threads(&format!("gru reset_after={reset_after} softmax"), || {
            gru.forward(x.view(), &none).expect("run").output
        });
    }
    let mut cfg = SimpleRNNCellConfig::new(u);
    cfg.activation = Activation::Softmax;
    let mut rnn = SimpleRNN::build(cfg, opts, i, 5).expect("rnn");
    same_at_1_and_3_threads("simple_rnn softmax", || {
        rnn.forward(x.view(), &none).expect("run").output
    });
    for first in [false, true] {
        let mut cfg = ConvLSTM2DConfig::new(8, (3, 3));
        cfg.padding = Padding::Same;
        cfg.activation = Activation::Softmax;
        cfg.sequence.return_sequences = true;
        let shape = if first {
            cfg.data_format = recurrent::config::DataFormat::ChannelsFirst;
            [2, 3, 3, 9, 9]
        } else {
            [2, 3, 9, 9, 3]
        };
        let xc = rand(&shape, 32, 1.0);
        let mut conv = ConvLSTM2D::build(cfg, 3, 6).expect("conv");
        same_at_1_and_3_threads(
            &format!("conv_lstm2d softmax channels_first={first}"),
            || conv.call(xc.view()).expect("conv run").output,
        );
    }
}

/// ConvLSTM2D in f64 (channels-last, gates i f c o, sigmoid / tanh, bias), every step's `h`:
/// `(batch, time, out_rows, out_cols, filters)`.
fn conv_lstm_reference(
    x: &ArrayD<f32>,
    weights: &[ArrayD<f32>],
    (kh, kw): (usize, usize),
    (sy, sx): (usize, usize),
    padding: Padding,
) -> ArrayD<f64> {
    let (b, t, rows, cols, cin) = (
        x.shape()[0],
        x.shape()[1],
        x.shape()[2],
        x.shape()[3],
        x.shape()[4],
    );
    let (k, rk, bias) = (&weights[0], &weights[1], &weights[2]);
    let f = rk.shape()[2];
    // TensorFlow's output size and leading padding of one axis.
    let axis = |n: usize, k: usize, s: usize| match padding {
        Padding::Same => {
            let out = n.div_ceil(s);
            (out, ((out - 1) * s + k).saturating_sub(n) / 2)
        }
        Padding::Valid => ((n - k) / s + 1, 0),
    };
    let ((orow, pt), (ocol, pl)) = (axis(rows, kh, sy), axis(cols, kw, sx));
    // Recurrent: same, stride 1.
    let (rpt, rpl) = ((kh - 1) / 2, (kw - 1) / 2);
    let mut out = ndarray::Array5::<f64>::zeros((b, t, orow, ocol, f));
    for n in 0..b {
        let mut h = ndarray::Array3::<f64>::zeros((orow, ocol, f));
        let mut c = h.clone();
        for step in 0..t {
            let mut z = ndarray::Array3::<f64>::zeros((orow, ocol, 4 * f));
            for oy in 0..orow {
                for ox in 0..ocol {
                    for g in 0..4 * f {
                        let mut acc = f64::from(bias[[g]]);
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * sy + ky) as isize - pt as isize;
                                let ix = (ox * sx + kx) as isize - pl as isize;
                                if iy >= 0
                                    && ix >= 0
                                    && (iy as usize) < rows
                                    && (ix as usize) < cols
                                {
                                    for ch in 0..cin {
                                        acc +=
                                            f64::from(x[[n, step, iy as usize, ix as usize, ch]])
                                                * f64::from(k[[ky, kx, ch, g]]);
                                    }
                                }
                                let hy = (oy + ky) as isize - rpt as isize;
                                let hx = (ox + kx) as isize - rpl as isize;
                                if hy >= 0
                                    && hx >= 0
                                    && (hy as usize) < orow
                                    && (hx as usize) < ocol
                                {
                                    for ch in 0..f {
                                        acc += h[[hy as usize, hx as usize, ch]]
                                            * f64::from(rk[[ky, kx, ch, g]]);
                                    }
                                }
                            }
                        }
                        z[[oy, ox, g]] = acc;
                    }
                }
            }
            for oy in 0..orow {
                for ox in 0..ocol {
                    for u in 0..f {
                        let zi = |gate: usize| z[[oy, ox, gate * f + u]];
                        let cn = sig(zi(1)) * c[[oy, ox, u]] + sig(zi(0)) * zi(2).tanh();
                        c[[oy, ox, u]] = cn;
                        h[[oy, ox, u]] = sig(zi(3)) * cn.tanh();
                    }
                }
            }
            out.slice_mut(ndarray::s![n, step, .., .., ..]).assign(&h);
        }
    }
    out.into_dyn()
}
