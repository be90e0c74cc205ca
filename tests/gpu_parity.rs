//! The CUDA path against the CPU path (and the Keras fixtures), within the contract's f32
//! tolerance `1e-5 + 1e-4 * |ref|`.
//!
//! Every check draws fresh random inputs and weights (the seed is printed; set
//! `RECURRENT_TEST_SEED` to replay one) and runs with poisoned outputs: the device fills every
//! buffer a forward pass allocates with NaN before its kernels run, so an element no kernel
//! writes fails the comparison.
//!
//! Without a GPU these tests print `SKIPPED: <reason>` to stderr and pass: without the `cuda`
//! feature the one test `gpu_tests_need_the_cuda_feature` says so; with it, each `gpu_*` test
//! says why it could not open a device. `RECURRENT_REQUIRE_GPU=1` (set by
//! `scripts/gpu_session.sh`) turns a missing device into a failure.
//!
//! `RECURRENT_GPU_QUICK=1` runs a subset of every case list (for the slow compute-sanitizer
//! runs of `scripts/gpu_session.sh`).
//!
//! The Keras fixtures are found at `$RECURRENT_FIXTURES`, else `tests/fixtures` of the source
//! tree this was built from, else `tests/fixtures` or `target/gpu-bundle/fixtures` under the
//! working directory (the GPU machine runs prebuilt executables from another path).

/// Prints `SKIPPED: <why>` straight to the process's stderr: the test harness captures
/// `eprintln!` of passing tests, and a skip must stay visible in a plain `cargo test` run.
fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

#[cfg(not(feature = "cuda"))]
#[test]
fn gpu_tests_need_the_cuda_feature() {
    skipped("the GPU parity tests need `--features cuda` (and a GPU to run on)");
}

#[cfg(feature = "cuda")]
mod gpu {
    use ndarray::{Array1, Array2, Array4, ArrayD, ArrayViewD, IxDyn};
    use recurrent::activation::Activation;
    use recurrent::config::{
        ConvLSTM2DConfig, CuDNNConfig, DataFormat, GRUCellConfig, LSTMCellConfig, Padding,
        SequenceOptions, SimpleRNNCellConfig,
    };
    use recurrent::cuda::{CudaDevice, CudaLayer, DensePath, NO_CUDA_PATH};
    use recurrent::keras::{load_layer, npz, output_arrays, KerasFile, KerasLayer, StorageType};
    use recurrent::layers::{
        AnyCell, Bidirectional, CallArgs, ConvLSTM2D, CuDNNGRU, CuDNNLSTM, GRUCell, LSTMCell,
        MergeMode, Output, SimpleRNNCell, GRU, LSTM, RNN,
    };
    use recurrent::Cell;
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;

    const ALL_ACTIVATIONS: [Activation; 17] = [
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::HardSigmoid,
        Activation::Relu,
        Activation::Linear,
        Activation::Softsign,
        Activation::Softplus,
        Activation::Elu,
        Activation::Selu,
        Activation::Exponential,
        Activation::Swish,
        Activation::Gelu,
        Activation::Relu6,
        Activation::Mish,
        Activation::LeakyRelu,
        Activation::Softmax,
        Activation::LogSoftmax,
    ];

    // ---- device, seed, random numbers

    /// `RECURRENT_GPU_QUICK=1`: fewer cases per test (sanitizer runs).
    fn quick() -> bool {
        std::env::var("RECURRENT_GPU_QUICK").is_ok_and(|v| v == "1")
    }

    /// The shared device (opened once: the PTX is JIT-compiled at load), or `None` after
    /// printing `SKIPPED: <test>: <reason>`.
    fn device(test: &str) -> Option<CudaDevice> {
        static DEVICE: OnceLock<Result<CudaDevice, String>> = OnceLock::new();
        let d = DEVICE.get_or_init(|| {
            let d = CudaDevice::new(0).map_err(|e| e.to_string());
            if let Ok(d) = &d {
                // Poisoned outputs catch unwritten elements; RECURRENT_GPU_NO_POISON=1 runs the
                // production allocation (uninitialised) instead, for compute-sanitizer's
                // initcheck (scripts/gpu_session.sh initcheck).
                d.set_poison(!std::env::var("RECURRENT_GPU_NO_POISON").is_ok_and(|v| v == "1"));
                eprintln!("gpu_parity: device {}", d.name().unwrap_or_default());
            }
            d
        });
        match d {
            Ok(d) => Some(d.clone()),
            Err(e) => {
                if std::env::var("RECURRENT_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                    panic!("{test}: RECURRENT_REQUIRE_GPU=1 but no device: {e}");
                }
                super::skipped(&format!("{test}: {e}"));
                None
            }
        }
    }

    /// xorshift64*: small, fast, and enough for test data. Every number it draws is rounded to
    /// `round` (f32 by default), so that weights, inputs and states of a storage-type test are
    /// exactly representable in it.
    struct Rng(u64, StorageType);

    impl Rng {
        fn new(test: &str) -> Self {
            let seed = std::env::var("RECURRENT_TEST_SEED")
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or_else(|| {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos() as u64)
                        .unwrap_or(0x9E37_79B9_7F4A_7C15)
                });
            eprintln!("{test}: RECURRENT_TEST_SEED={seed}");
            Rng(seed | 1, StorageType::F32)
        }
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        /// Uniform in `[-s, s)`.
        fn sym(&mut self, s: f32) -> f32 {
            let u = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
            self.1.round_value((2.0 * u - 1.0) * s)
        }
        fn arr(&mut self, shape: &[usize], s: f32) -> ArrayD<f32> {
            let n = shape.iter().product();
            let v = (0..n).map(|_| self.sym(s)).collect();
            ArrayD::from_shape_vec(IxDyn(shape), v).expect("shape")
        }
        fn a2(&mut self, r: usize, c: usize, s: f32) -> Array2<f32> {
            Array2::from_shape_fn((r, c), |_| self.sym(s))
        }
        fn a1(&mut self, n: usize, s: f32) -> Array1<f32> {
            Array1::from_shape_fn(n, |_| self.sym(s))
        }
        /// A mask with holes anywhere: row 0 random, row 1 (when there is one) masked
        /// everywhere, row 2 masked for its first steps, the rest random.
        fn mask(&mut self, b: usize, t: usize) -> Array2<bool> {
            let mut m = Array2::from_shape_fn((b, t), |_| self.next() % 10 >= 3);
            if b > 1 {
                m.row_mut(1).fill(false);
            }
            if b > 2 {
                for s in 0..t.min(2) {
                    m[[2, s]] = false;
                }
            }
            m
        }
    }

    // ---- comparison

    /// Beyond this magnitude values compare by sign only: near f32's overflow the CPU's
    /// clamped `exp` and CUDA's `expf` part ways (1e38 against inf), as they may in the
    /// exploding activation pairs (exponential, linear, relu gates).
    const HUGE: f32 = 1e30;

    /// The contract's tolerance. NaN matches only NaN where the CPU reference itself is NaN
    /// (inf - inf in exploding activation pairs); a NaN where the reference is a number (a
    /// poisoned element no kernel wrote) fails.
    /// `rel` is 1e-4 for f32; the storage-type tests widen it by one rounding of the output.
    fn close_rel(got: f32, want: f32, rel: f32) -> bool {
        if want.is_nan() {
            return got.is_nan();
        }
        if got.is_nan() {
            return false;
        }
        if want.abs() > HUGE || got.abs() > HUGE {
            return want.abs() > HUGE && got.abs() > HUGE && want.signum() == got.signum();
        }
        (got - want).abs() <= 1e-5 + rel * want.abs()
    }

    /// The largest error, or the first mismatch.
    fn compare_arrays(what: &str, got: &ArrayD<f32>, want: &ArrayD<f32>) -> Result<f32, String> {
        compare_arrays_rel(what, got, want, 1e-4)
    }

    fn compare_arrays_rel(
        what: &str,
        got: &ArrayD<f32>,
        want: &ArrayD<f32>,
        rel: f32,
    ) -> Result<f32, String> {
        if got.shape() != want.shape() {
            return Err(format!(
                "{what}: shape {:?}, want {:?}",
                got.shape(),
                want.shape()
            ));
        }
        let mut worst = 0.0f32;
        for (i, (a, b)) in got.iter().zip(want.iter()).enumerate() {
            if !close_rel(*a, *b, rel) {
                return Err(format!("{what}[flat {i}]: got {a}, want {b}"));
            }
            if a.is_finite() && b.is_finite() && b.abs() <= HUGE {
                worst = worst.max((a - b).abs());
            }
        }
        Ok(worst)
    }

    fn compare_outputs(got: &Output, want: &Output) -> Result<f32, String> {
        compare_outputs_rel(got, want, 1e-4)
    }

    fn compare_outputs_rel(got: &Output, want: &Output, rel: f32) -> Result<f32, String> {
        let mut worst = compare_arrays_rel("output", &got.output, &want.output, rel)?;
        if got.states.len() != want.states.len() {
            return Err(format!(
                "{} states, want {}",
                got.states.len(),
                want.states.len()
            ));
        }
        for (k, (g, w)) in got.states.iter().zip(&want.states).enumerate() {
            worst = worst.max(compare_arrays_rel(&format!("states[{k}]"), g, w, rel)?);
        }
        Ok(worst)
    }

    /// Collects failures and reports them all at the end.
    struct Report {
        test: &'static str,
        cases: usize,
        failures: Vec<String>,
        worst: f32,
    }

    impl Report {
        fn new(test: &'static str) -> Self {
            Report {
                test,
                cases: 0,
                failures: Vec::new(),
                worst: 0.0,
            }
        }
        fn add(&mut self, case: &str, r: Result<f32, String>) {
            self.cases += 1;
            match r {
                Ok(w) => self.worst = self.worst.max(w),
                Err(e) => self.failures.push(format!("{case}: {e}")),
            }
        }
        fn finish(self) {
            eprintln!(
                "{}: {} cases, {} failed, largest error {:e}",
                self.test,
                self.cases,
                self.failures.len(),
                self.worst
            );
            if !self.failures.is_empty() {
                let shown: Vec<_> = self.failures.iter().take(20).collect();
                panic!(
                    "{}: {} of {} cases failed:\n{}",
                    self.test,
                    self.failures.len(),
                    self.cases,
                    shown
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        }
    }

    // ---- layers with random weights

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Dense {
        Lstm,
        GruAfter,
        GruBefore,
        Simple,
    }

    fn dense_cell(
        rng: &mut Rng,
        kind: Dense,
        input: usize,
        units: usize,
        act: Activation,
        rec: Activation,
        scale: f32,
    ) -> AnyCell {
        let ks = scale / (input.max(1) as f32).sqrt();
        let rs = scale / (units.max(1) as f32).sqrt();
        match kind {
            Dense::Lstm => {
                let cfg = LSTMCellConfig {
                    activation: act,
                    recurrent_activation: rec,
                    ..LSTMCellConfig::new(units)
                };
                let c = LSTMCell::new(
                    cfg,
                    rng.a2(input, 4 * units, ks),
                    rng.a2(units, 4 * units, rs),
                    Some(rng.a1(4 * units, 0.5)),
                )
                .expect("lstm cell");
                AnyCell::LSTM(c)
            }
            Dense::GruAfter | Dense::GruBefore => {
                let after = kind == Dense::GruAfter;
                let cfg = GRUCellConfig {
                    activation: act,
                    recurrent_activation: rec,
                    reset_after: after,
                    ..GRUCellConfig::new(units)
                };
                let bias = if after {
                    rng.arr(&[2, 3 * units], 0.5)
                } else {
                    rng.arr(&[3 * units], 0.5)
                };
                let c = GRUCell::new(
                    cfg,
                    rng.a2(input, 3 * units, ks),
                    rng.a2(units, 3 * units, rs),
                    Some(bias),
                )
                .expect("gru cell");
                AnyCell::GRU(c)
            }
            Dense::Simple => {
                let cfg = SimpleRNNCellConfig {
                    activation: act,
                    ..SimpleRNNCellConfig::new(units)
                };
                let c = SimpleRNNCell::new(
                    cfg,
                    rng.a2(input, units, ks),
                    rng.a2(units, units, rs),
                    Some(rng.a1(units, 0.5)),
                )
                .expect("simple cell");
                AnyCell::SimpleRNN(c)
            }
        }
    }

    /// The public layer class for one cell (so that the layer constructors are exercised).
    fn dense_layer(cell: AnyCell, opts: SequenceOptions) -> KerasLayer {
        match cell {
            AnyCell::LSTM(c) => KerasLayer::LSTM(LSTM::from_cell(c, opts)),
            AnyCell::GRU(c) => KerasLayer::GRU(GRU::from_cell(c, opts)),
            AnyCell::SimpleRNN(c) => {
                KerasLayer::SimpleRNN(recurrent::layers::SimpleRNN::from_cell(c, opts))
            }
            AnyCell::User(_) => unreachable!("no user cells here"),
        }
    }

    /// The sequence input of a layer for `batch`, `time`, `feat`, in its layout.
    fn seq_input(
        rng: &mut Rng,
        opts: &SequenceOptions,
        b: usize,
        t: usize,
        f: usize,
    ) -> ArrayD<f32> {
        if opts.time_major {
            rng.arr(&[t, b, f], 1.0)
        } else {
            rng.arr(&[b, t, f], 1.0)
        }
    }

    /// Runs `x` with optional mask / initial state on the CPU layer and a fresh GPU twin.
    fn cpu_vs_gpu(
        dev: &CudaDevice,
        layer: &mut KerasLayer,
        x: ArrayViewD<f32>,
        mask: Option<&Array2<bool>>,
        init: Option<&[ArrayD<f32>]>,
    ) -> Result<f32, String> {
        cpu_vs_gpu_on(dev, layer, x, mask, init, None)
    }

    /// As `cpu_vs_gpu`, with the GPU layer's dense time loops forced to `path`.
    fn cpu_vs_gpu_on(
        dev: &CudaDevice,
        layer: &mut KerasLayer,
        x: ArrayViewD<f32>,
        mask: Option<&Array2<bool>>,
        init: Option<&[ArrayD<f32>]>,
        path: Option<DensePath>,
    ) -> Result<f32, String> {
        let mut gpu = CudaLayer::from_keras(dev, layer).map_err(|e| format!("upload: {e}"))?;
        if let Some(p) = path {
            gpu = gpu.with_dense_path(p);
        }
        let args = CallArgs {
            mask: mask.map(|m| m.view()),
            initial_state: init,
            constants: &[],
        };
        let want = layer
            .forward(x.clone(), &args)
            .map_err(|e| format!("cpu: {e}"))?;
        let got = gpu.forward(x, &args).map_err(|e| format!("gpu: {e}"))?;
        if let Some(p @ (DensePath::Persistent | DensePath::Wavefront)) = path {
            ran_on(&gpu, p)?;
        }
        compare_outputs(&got, &want)
    }

    /// The forced path `p` ran every cell of the last call.
    fn ran_on(gpu: &CudaLayer, p: DensePath) -> Result<(), String> {
        let ran = gpu.last_dense_paths();
        if ran.is_empty() || ran.iter().any(|r| *r != p) {
            return Err(format!("forced {p:?}, but the cells ran on {ran:?}"));
        }
        Ok(())
    }

    fn state_arrays(rng: &mut Rng, b: usize, widths: &[usize]) -> Vec<ArrayD<f32>> {
        widths.iter().map(|&w| rng.arr(&[b, w], 1.0)).collect()
    }

    /// Every combination of return_sequences, go_backwards, time_major, mask and
    /// initial_state (a spread of six when quick), with return_state; then, with a mask,
    /// zero_output_for_mask with and without unroll (Keras's unrolled loop zeroes by the mask
    /// in input order under go_backwards) for every return_sequences / go_backwards /
    /// time_major (a spread of three when quick).
    fn options_matrix() -> Vec<(SequenceOptions, bool, bool)> {
        let mut v = Vec::new();
        let (all, zeroed): (Vec<u32>, Vec<u32>) = if quick() {
            (vec![0, 7, 11, 13, 22, 31], vec![11 | 32, 11 | 96, 14 | 96])
        } else {
            let zeroed = (0..8u32).flat_map(|b| [b | 8 | 32, b | 8 | 96]).collect();
            ((0..32).collect(), zeroed)
        };
        for bits in all.into_iter().chain(zeroed) {
            let o = SequenceOptions {
                return_sequences: bits & 1 != 0,
                go_backwards: bits & 2 != 0,
                time_major: bits & 4 != 0,
                zero_output_for_mask: bits & 32 != 0,
                unroll: bits & 64 != 0,
                return_state: true,
                ..Default::default()
            };
            v.push((o, bits & 8 != 0, bits & 16 != 0));
        }
        v
    }

    fn dense_options_test(test: &'static str, kind: Dense, act: Activation, rec: Activation) {
        let Some(dev) = device(test) else { return };
        let mut rng = Rng::new(test);
        let mut report = Report::new(test);
        let sizes: &[(usize, usize, usize, usize)] = if quick() {
            &[(3, 6, 5, 37)]
        } else {
            &[(3, 6, 5, 37), (5, 4, 8, 64)]
        };
        for &(b, t, i, u) in sizes {
            for (opts, with_mask, with_init) in options_matrix() {
                let cell = dense_cell(&mut rng, kind, i, u, act, rec, 1.0);
                let widths = cell.state_size();
                let mut layer = dense_layer(cell, opts);
                let x = seq_input(&mut rng, &opts, b, t, i);
                let mask = with_mask.then(|| rng.mask(b, t));
                let init = with_init.then(|| state_arrays(&mut rng, b, &widths));
                let case =
                    format!("b{b} t{t} i{i} u{u} {opts:?} mask={with_mask} init={with_init}");
                report.add(
                    &case,
                    cpu_vs_gpu(&dev, &mut layer, x.view(), mask.as_ref(), init.as_deref()),
                );
            }
        }
        report.finish();
    }

    // ---- the tests

    #[test]
    fn gpu_lstm_every_option() {
        dense_options_test(
            "gpu_lstm_every_option",
            Dense::Lstm,
            Activation::Tanh,
            Activation::Sigmoid,
        );
    }

    #[test]
    fn gpu_gru_reset_after_every_option() {
        dense_options_test(
            "gpu_gru_reset_after_every_option",
            Dense::GruAfter,
            Activation::Tanh,
            Activation::Sigmoid,
        );
    }

    #[test]
    fn gpu_gru_reset_before_every_option() {
        dense_options_test(
            "gpu_gru_reset_before_every_option",
            Dense::GruBefore,
            Activation::Tanh,
            Activation::HardSigmoid,
        );
    }

    #[test]
    fn gpu_simple_rnn_every_option() {
        dense_options_test(
            "gpu_simple_rnn_every_option",
            Dense::Simple,
            Activation::Tanh,
            Activation::Tanh,
        );
    }

    /// Every (activation, recurrent_activation) pair of Keras 2, hard_sigmoid included, through
    /// the specialised and the generic kernels.
    #[test]
    fn gpu_every_activation_pair() {
        let test = "gpu_every_activation_pair";
        let Some(dev) = device(test) else { return };
        let mut rng = Rng::new(test);
        let mut report = Report::new(test);
        let opts = SequenceOptions {
            return_sequences: true,
            ..Default::default()
        };
        let acts: &[Activation] = if quick() {
            &[
                Activation::Tanh,
                Activation::Sigmoid,
                Activation::HardSigmoid,
                Activation::Selu,
            ]
        } else {
            &ALL_ACTIVATIONS
        };
        for kind in [
            Dense::Lstm,
            Dense::GruAfter,
            Dense::GruBefore,
            Dense::Simple,
        ] {
            for &act in acts {
                for &rec in acts {
                    if kind == Dense::Simple && rec != act {
                        continue;
                    }
                    let (b, t, i, u) = (3, 3, 4, 9);
                    let cell = dense_cell(&mut rng, kind, i, u, act, rec, 0.5);
                    let mut layer = dense_layer(cell, opts);
                    let x = rng.arr(&[b, t, i], 0.5);
                    let mask = rng.mask(b, t);
                    let case = format!("{kind:?} {} / {}", act.name(), rec.name());
                    report.add(
                        &case,
                        cpu_vs_gpu(&dev, &mut layer, x.view(), Some(&mask), None),
                    );
                }
            }
        }
        report.finish();
    }

    /// Row-wise activations (softmax, log_softmax: the `_rows` kernels) under every sequence
    /// option, mask and initial state, for each cell kind.
    #[test]
    fn gpu_row_wise_activations_every_option() {
        let test = "gpu_row_wise_activations_every_option";
        for (kind, act, rec) in [
            (Dense::Lstm, Activation::Softmax, Activation::LogSoftmax),
            (Dense::GruAfter, Activation::LogSoftmax, Activation::Softmax),
            (Dense::GruBefore, Activation::Softmax, Activation::Softmax),
            (
                Dense::Simple,
                Activation::LogSoftmax,
                Activation::LogSoftmax,
            ),
        ] {
            dense_options_test(test, kind, act, rec);
        }
    }

    /// Row-wise activations: batch 300, units past the block's 256 threads, one unit, f16
    /// storage; a forced persistent / tensor-core / wavefront path still runs the `_rows` step
    /// kernels (and reports Step); a cell too wide for their shared memory is a clear error;
    /// ConvLSTM2D along the filters and along the output columns (channels_first), and its
    /// limit.
    #[test]
    fn gpu_row_wise_activations_paths_sizes_and_limits() {
        let test = "gpu_row_wise_activations_paths_sizes_and_limits";
        let Some(dev) = device(test) else { return };
        let mut rng = Rng::new(test);
        let mut report = Report::new(test);
        let opts = SequenceOptions {
            return_sequences: true,
            return_state: true,
            ..Default::default()
        };
        for kind in [
            Dense::Lstm,
            Dense::GruAfter,
            Dense::GruBefore,
            Dense::Simple,
        ] {
            for (b, t, i, u) in [(1, 4, 3, 300), (300, 3, 5, 40), (2, 2, 4, 1)] {
                let cell = dense_cell(
                    &mut rng,
                    kind,
                    i,
                    u,
                    Activation::Softmax,
                    Activation::Sigmoid,
                    0.5,
                );
                let mut layer = dense_layer(cell, opts);
                let x = rng.arr(&[b, t, i], 1.0);
                let mask = rng.mask(b, t);
                let case = format!("{kind:?} b{b} t{t} i{i} u{u}");
                report.add(
                    &case,
                    cpu_vs_gpu(&dev, &mut layer, x.view(), Some(&mask), None),
                );
                let r = half_vs_cpu(
                    &dev,
                    &mut layer,
                    StorageType::F16,
                    2e-3,
                    x.view(),
                    Some(&mask),
                    None,
                );
                report.add(&format!("{case} f16"), r);
            }
            // Forced paths: a 2-cell stack for the wavefront (one cell never takes it), f16
            // weights for the tensor cores (f32 without TF32 never takes them).
            for p in [
                DensePath::Persistent,
                DensePath::TensorCore,
                DensePath::Wavefront,
            ] {
                let mut cell = || {
                    dense_cell(
                        &mut rng,
                        kind,
                        24,
                        24,
                        Activation::Tanh,
                        Activation::Softmax,
                        0.5,
                    )
                };
                let cells = if p == DensePath::Wavefront {
                    vec![cell(), cell()]
                } else {
                    vec![cell()]
                };
                let mut layer = KerasLayer::RNN(RNN::stacked(cells, opts).expect("stack"));
                let x = rng.arr(&[3, 4, 24], 1.0);
                let dt = if p == DensePath::TensorCore {
                    StorageType::F16
                } else {
                    StorageType::F32
                };
                let r = (|| {
                    let mut gpu = CudaLayer::from_keras_as(&dev, &layer, dt)
                        .map_err(|e| format!("upload: {e}"))?
                        .with_dense_path(p);
                    let args = CallArgs::default();
                    let mut want = layer
                        .forward(x.view(), &args)
                        .map_err(|e| format!("cpu: {e}"))?;
                    dt.round(&mut want.output);
                    let got = gpu
                        .forward(x.view(), &args)
                        .map_err(|e| format!("gpu: {e}"))?;
                    ran_on(&gpu, DensePath::Step)?;
                    let rel = if dt == StorageType::F32 { 1e-4 } else { 2e-3 };
                    compare_outputs_rel(&got, &want, rel)
                })();
                report.add(&format!("{kind:?} forced {p:?} runs the rows kernels"), r);
            }
        }
        // Too wide: 4 gates x 2049 units > 8192 floats of shared memory.
        let cell = dense_cell(
            &mut rng,
            Dense::Lstm,
            2,
            2049,
            Activation::Softmax,
            Activation::Sigmoid,
            0.1,
        );
        let layer = dense_layer(cell, opts);
        let r = match CudaLayer::from_keras(&dev, &layer) {
            Ok(_) => Err("an LSTM(2049) with softmax was accepted".to_string()),
            Err(e) => {
                let m = e.to_string();
                if m.contains("units") && m.contains("2048") && m.contains("--device cpu") {
                    Ok(0.0)
                } else {
                    Err(format!("unclear error: {m}"))
                }
            }
        };
        report.add("LSTM(2049) softmax refused", r);
        // ConvLSTM2D: softmax over the filters (channels_last) or the output columns
        // (channels_first), masks, go_backwards, initial states, strides.
        for (n, cf) in [(0u32, false), (1, true), (2, false), (3, true)] {
            let opts = SequenceOptions {
                return_sequences: n % 2 == 0,
                go_backwards: n >= 2,
                return_state: true,
                ..Default::default()
            };
            let (act, rec) = if n < 2 {
                (Activation::Softmax, Activation::Sigmoid)
            } else {
                (Activation::Tanh, Activation::LogSoftmax)
            };
            let filters = [3, 17, 5, 2][n as usize];
            let cfg = ConvLSTM2DConfig {
                activation: act,
                recurrent_activation: rec,
                padding: if n == 3 {
                    Padding::Valid
                } else {
                    Padding::Same
                },
                strides: if n == 3 { (2, 1) } else { (1, 1) },
                data_format: if cf {
                    DataFormat::ChannelsFirst
                } else {
                    DataFormat::ChannelsLast
                },
                sequence: opts,
                ..ConvLSTM2DConfig::new(filters, (3, 3))
            };
            let (b, t, rows, cols, cin) = (2, 4, 7, 6, 3);
            let mut layer = conv_layer(&mut rng, cfg, cin, true);
            let x = if cf {
                rng.arr(&[b, t, cin, rows, cols], 1.0)
            } else {
                rng.arr(&[b, t, rows, cols, cin], 1.0)
            };
            let mask = rng.mask(b, t);
            let case = format!(
                "ConvLSTM2D {} / {} f{filters} cf={cf}",
                act.name(),
                rec.name()
            );
            report.add(
                &case,
                cpu_vs_gpu(&dev, &mut layer, x.view(), Some(&mask), None),
            );
        }
        // channels_first softmax along 2049 output columns: 4 x 2049 > 8192 floats.
        let cfg = ConvLSTM2DConfig {
            activation: Activation::Softmax,
            data_format: DataFormat::ChannelsFirst,
            ..ConvLSTM2DConfig::new(1, (1, 1))
        };
        let layer = conv_layer(&mut rng, cfg, 1, true);
        let x = rng.arr(&[1, 2, 1, 1, 2049], 1.0);
        let r = match CudaLayer::from_keras(&dev, &layer)
            .and_then(|mut g| g.forward(x.view(), &CallArgs::default()))
        {
            Ok(_) => Err("softmax along 2049 columns was accepted".to_string()),
            Err(e) => {
                let m = e.to_string();
                if m.contains("activation") && m.contains("2048") && m.contains("--device cpu") {
                    Ok(0.0)
                } else {
                    Err(format!("unclear error: {m}"))
                }
            }
        };
        report.add("ConvLSTM2D softmax along 2049 columns refused", r);
        report.finish();
    }

    /// Units not a multiple of 32, batch 1, time 1, a large batch, wide layers.
    #[test]
    fn gpu_odd_sizes() {
        let test = "gpu_odd_sizes";
        let Some(dev) = device(test) else { return };
        let mut rng = Rng::new(test);
        let mut report = Report::new(test);
        let sizes = [
            (1, 5, 3, 1),
            (1, 1, 1, 31),
            (2, 1, 7, 33),
            (33, 3, 17, 96),
            (1, 9, 4, 65),
            (7, 3, 2, 100),
            (300, 4, 6, 64),
            (5, 3, 40, 300),
        ];
        let sizes = if quick() { &sizes[..5] } else { &sizes[..] };
        for &(b, t, i, u) in sizes {
            for kind in [
                Dense::Lstm,
                Dense::GruAfter,
                Dense::GruBefore,
                Dense::Simple,
            ] {
                for seq in [false, true] {
                    let opts = SequenceOptions {
                        return_sequences: seq,
                        ..Default::default()
                    };
                    let cell = dense_cell(
                        &mut rng,
                        kind,
                        i,
                        u,
                        Activation::Tanh,
                        Activation::Sigmoid,
                        1.0,
                    );
                    let mut layer = dense_layer(cell, opts);
                    let x = rng.arr(&[b, t, i], 1.0);
                    let mask = (b > 2).then(|| rng.mask(b, t));
                    let case = format!("{kind:?} b{b} t{t} i{i} u{u} seq={seq}");
                    report.add(
                        &case,
                        cpu_vs_gpu(&dev, &mut layer, x.view(), mask.as_ref(), None),
                    );
                }
            }
        }
        report.finish();
    }

    /// `RNN` over a stack of every built-in cell kind, with masks, initial states, reversal.
    #[test]
    fn gpu_stacked_cells() {
        let test = "gpu_stacked_cells";
        let Some(dev) = device(test) else { return };
        let mut rng = Rng::new(test);
        let mut report = Report::new(test);
        for (opts, with_mask, with_init) in options_matrix() {
            let (b, t, i) = (4, 5, 6);
            let cells = vec![
                dense_cell(
                    &mut rng,
                    Dense::Lstm,
                    i,
                    20,
                    Activation::Tanh,
                    Activation::Sigmoid,
                    1.0,
                ),
                dense_cell(
                    &mut rng,
                    Dense::GruBefore,
                    20,
                    33,
                    Activation::Tanh,
                    Activation::HardSigmoid,
                    1.0,
                ),
                dense_cell(
                    &mut rng,
                    Dense::Simple,
                    33,
                    7,
                    Activation::Relu,
                    Activation::Relu,
                    1.0,
                ),
                dense_cell(
                    &mut rng,
                    Dense::GruAfter,
                    7,
                    16,
                    Activation::Elu,
                    Activation::Sigmoid,
                    1.0,
                ),
            ];
            let widths: Vec<usize> = cells.iter().flat_map(|c| c.state_size()).collect();
            let mut layer = KerasLayer::RNN(RNN::stacked(cells, opts).expect("stack"));
            let x = seq_input(&mut rng, &opts, b, t, i);
            let mask = with_mask.then(|| rng.mask(b, t));
            let init = with_init.then(|| state_arrays(&mut rng, b, &widths));
            let case = format!("{opts:?} mask={with_mask} init={with_init}");
            report.add(
                &case,
                cpu_vs_gpu(&dev, &mut layer, x.view(), mask.as_ref(), init.as_deref()),
            );
        }
        report.finish();
    }

    /// Stateful layers: states carried across calls, reset_states, reset_states_to, and the
    /// batch-size error, against the CPU layer doing the same calls.
    #[test]
    fn gpu_stateful() {
        let test = "gpu_stateful";
        let Some(dev) = device(test) else { return };
        let mut rng = Rng::new(test);
        let mut report = Report::new(test);
        let opts = SequenceOptions {
            stateful: true,
            return_sequences: true,
            ..Default::default()
        };
        for kind in [
            Dense::Lstm,
            Dense::GruAfter,
            Dense::GruBefore,
            Dense::Simple,
        ] {
            let (b, t, i, u) = (4, 3, 5, 12);
            let cell = dense_cell(
                &mut rng,
                kind,
                i,
                u,
                Activation::Tanh,
                Activation::Sigmoid,
                1.0,
            );
            let widths = cell.state_size();
            let mut cpu = dense_layer(cell, opts);
            let mut gpu = CudaLayer::from_keras(&dev, &cpu).expect("upload");
            let mut step =
                |cpu: &mut KerasLayer, gpu: &mut CudaLayer, rng: &mut Rng, what: &str| {
                    let x = rng.arr(&[b, t, i], 1.0);
                    let mask = rng.mask(b, t);
                    let args = CallArgs {
                        mask: Some(mask.view()),
                        ..Default::default()
                    };
                    let r = match (cpu.forward(x.view(), &args), gpu.forward(x.view(), &args)) {
                        (Ok(w), Ok(g)) => compare_outputs(&g, &w),
                        (w, g) => Err(format!("cpu {:?} / gpu {:?}", w.err(), g.err())),
                    };
                    report.add(&format!("{kind:?} {what}"), r);
                };
            step(&mut cpu, &mut gpu, &mut rng, "call 1");
            step(&mut cpu, &mut gpu, &mut rng, "call 2 (carried)");
            reset(&mut cpu);
            gpu.reset_states();
            step(&mut cpu, &mut gpu, &mut rng, "after reset_states");
            let given = state_arrays(&mut rng, b, &widths);
            let given2: Vec<Array2<f32>> = given
                .iter()
                .map(|a| a.clone().into_dimensionality().expect("2-D"))
                .collect();
            reset_to(&mut cpu, given2);
            gpu.reset_states_to(given).expect("reset_states_to");
            step(&mut cpu, &mut gpu, &mut rng, "after reset_states_to");
            // A different batch size is refused with the CPU's message.
            let x = rng.arr(&[b + 1, t, i], 1.0);
            let e_cpu = cpu
                .forward(x.view(), &CallArgs::default())
                .err()
                .map(|e| e.to_string());
            let e_gpu = gpu
                .forward(x.view(), &CallArgs::default())
                .err()
                .map(|e| e.to_string());
            report.add(
                &format!("{kind:?} batch change"),
                if e_cpu.is_some() && e_cpu == e_gpu {
                    Ok(0.0)
                } else {
                    Err(format!("cpu {e_cpu:?} / gpu {e_gpu:?}"))
                },
            );
        }
        report.finish();
    }

    fn reset(l: &mut KerasLayer) {
        match l {
            KerasLayer::SimpleRNN(l) => l.reset_states(),
            KerasLayer::GRU(l) => l.reset_states(),
            KerasLayer::LSTM(l) => l.reset_states(),
            KerasLayer::RNN(l) => l.reset_states(),
            KerasLayer::ConvLSTM2D(l) => l.reset_states(),
            KerasLayer::CuDNNGRU(l) => l.reset_states(),
            KerasLayer::CuDNNLSTM(l) => l.reset_states(),
            KerasLayer::Bidirectional(l) => l.reset_states(),
        }
    }

    fn reset_to(l: &mut KerasLayer, s: Vec<Array2<f32>>) {
        let r = match l {
            KerasLayer::SimpleRNN(l) => l.reset_states_to(s),
            KerasLayer::GRU(l) => l.reset_states_to(s),
            KerasLayer::LSTM(l) => l.reset_states_to(s),
            KerasLayer::RNN(l) => l.reset_states_to(s),
            KerasLayer::CuDNNGRU(l) => l.reset_states_to(s),
            KerasLayer::CuDNNLSTM(l) => l.reset_states_to(s),
            KerasLayer::ConvLSTM2D(_) | KerasLayer::Bidirectional(_) => {
                panic!("not a single dense layer")
            }
        };
        r.expect("reset_states_to");
    }

    /// CuDNNLSTM / CuDNNGRU with random weights in their own layout; masks refused alike.
    #[test]
    fn gpu_cudnn_layers() {
        let test = "gpu_cudnn_layers";
        let Some(dev) = device(test) else { return };
        let mut rng = Rng::new(test);
        let mut report = Report::new(test);
        for (opts, _, with_init) in options_matrix() {
            if opts.time_major {
                continue;
            }
            let (b, t, i, u) = (3, 5, 7, 6);
            let cfg = CuDNNConfig {
                sequence: opts,
                ..CuDNNConfig::new(u)
            };
            for lstm in [true, false] {
                let g = if lstm { 4 } else { 3 };
                let k = rng.a2(i, g * u, 0.4);
                let r = rng.a2(u, g * u, 0.4);
                let bias = rng.a1(2 * g * u, 0.5);
                let mut layer = if lstm {
                    KerasLayer::CuDNNLSTM(
                        CuDNNLSTM::new(cfg.clone(), k, r, bias).expect("cudnn lstm"),
                    )
                } else {
                    KerasLayer::CuDNNGRU(CuDNNGRU::new(cfg.clone(), k, r, bias).expect("cudnn gru"))
                };
                let x = rng.arr(&[b, t, i], 1.0);
                let widths = if lstm { vec![u, u] } else { vec![u] };
                let init = with_init.then(|| state_arrays(&mut rng, b, &widths));
                let case = format!("lstm={lstm} {opts:?} init={with_init}");
                report.add(
                    &case,
                    cpu_vs_gpu(&dev, &mut layer, x.view(), None, init.as_deref()),
                );
                // Masks are refused with the same message.
                let mask = rng.mask(b, t);
                let args = CallArgs {
                    mask: Some(mask.view()),
                    ..Default::default()
                };
                let mut gpu = CudaLayer::from_keras(&dev, &layer).expect("upload");
                let e_cpu = layer.forward(x.view(), &args).err().map(|e| e.to_string());
                let e_gpu = gpu.forward(x.view(), &args).err().map(|e| e.to_string());
                report.add(
                    &format!("{case} mask refused"),
                    if e_cpu.is_some() && e_cpu == e_gpu {
                        Ok(0.0)
                    } else {
                        Err(format!("cpu {e_cpu:?} / gpu {e_gpu:?}"))
                    },
                );
            }
        }
        report.finish();
    }

    fn conv_layer(rng: &mut Rng, cfg: ConvLSTM2DConfig, cin: usize, with_bias: bool) -> KerasLayer {
        let (kh, kw) = cfg.kernel_size;
        let f = cfg.filters;
        let ks = 1.0 / ((kh * kw * cin) as f32).sqrt();
        let rs = 1.0 / ((kh * kw * f) as f32).sqrt();
        let k: Array4<f32> = rng
            .arr(&[kh, kw, cin, 4 * f], ks)
            .into_dimensionality()
            .expect("4-D");
        let r: Array4<f32> = rng
            .arr(&[kh, kw, f, 4 * f], rs)
            .into_dimensionality()
            .expect("4-D");
        let cfg = ConvLSTM2DConfig {
            use_bias: with_bias,
            ..cfg
        };
        let b = with_bias.then(|| rng.a1(4 * f, 0.5));
        KerasLayer::ConvLSTM2D(ConvLSTM2D::new(cfg, k, r, b).expect("conv lstm"))
    }

    /// ConvLSTM2D over padding, strides, dilation, both data formats, non-square kernels,
    /// filter counts around the 16-filter tile, with sequence options, masks, initial states.
    #[test]
    fn gpu_conv_lstm2d() {
        let test = "gpu_conv_lstm2d";
        let Some(dev) = device(test) else { return };
        let mut rng = Rng::new(test);
        let mut report = Report::new(test);
        // (kernel, strides, dilation, padding, filters)
        let geometries = [
            ((3, 3), (1, 1), (1, 1), Padding::Same, 5),
            ((3, 3), (1, 1), (1, 1), Padding::Valid, 17),
            ((2, 3), (2, 1), (1, 1), Padding::Same, 4),
            ((3, 2), (1, 2), (1, 1), Padding::Valid, 16),
            ((3, 3), (1, 1), (2, 2), Padding::Same, 3),
            ((2, 2), (1, 1), (2, 1), Padding::Valid, 6),
            ((1, 1), (2, 2), (1, 1), Padding::Valid, 2),
            ((4, 4), (1, 1), (1, 1), Padding::Same, 33),
        ];
        let mut n = 0u32;
        let geometries = if quick() {
            &geometries[..3]
        } else {
            &geometries[..]
        };
        let presets: &[u32] = if quick() { &[0, 3] } else { &[0, 1, 2, 3] };
        for &(kernel, strides, dilation, padding, filters) in geometries {
            for cf in [false, true] {
                for &preset in presets {
                    n += 1;
                    let opts = SequenceOptions {
                        return_sequences: preset % 2 == 0,
                        go_backwards: preset >= 2,
                        return_state: true,
                        ..Default::default()
                    };
                    let (act, rec) = match n % 3 {
                        0 => (Activation::Tanh, Activation::HardSigmoid),
                        1 => (Activation::Tanh, Activation::Sigmoid),
                        _ => (Activation::Relu, Activation::HardSigmoid),
                    };
                    let cfg = ConvLSTM2DConfig {
                        strides,
                        dilation_rate: dilation,
                        padding,
                        activation: act,
                        recurrent_activation: rec,
                        data_format: if cf {
                            DataFormat::ChannelsFirst
                        } else {
                            DataFormat::ChannelsLast
                        },
                        sequence: opts,
                        ..ConvLSTM2DConfig::new(filters, kernel)
                    };
                    let (b, t, rows, cols, cin) = (2, 4, 7, 6, 3);
                    let mut layer = conv_layer(&mut rng, cfg, cin, preset != 3);
                    let x = if cf {
                        rng.arr(&[b, t, cin, rows, cols], 1.0)
                    } else {
                        rng.arr(&[b, t, rows, cols, cin], 1.0)
                    };
                    let mask = (preset >= 1).then(|| rng.mask(b, t));
                    let init = (preset == 1 || preset == 3).then(|| {
                        let KerasLayer::ConvLSTM2D(l) = &layer else {
                            unreachable!()
                        };
                        let (or, oc) = l.output_size(rows, cols).expect("geometry");
                        let shape = if cf {
                            [b, filters, or, oc]
                        } else {
                            [b, or, oc, filters]
                        };
                        vec![rng.arr(&shape, 1.0), rng.arr(&shape, 1.0)]
                    });
                    let case = format!(
                        "k{kernel:?} s{strides:?} d{dilation:?} {padding:?} f{filters} cf={cf} preset {preset}"
                    );
                    report.add(
                        &case,
                        cpu_vs_gpu(&dev, &mut layer, x.view(), mask.as_ref(), init.as_deref()),
                    );
                }
            }
        }
        // Stateful ConvLSTM2D: two calls, then reset.
        let cfg = ConvLSTM2DConfig {
            padding: Padding::Same,
            sequence: SequenceOptions {
                stateful: true,
                ..Default::default()
            },
            ..ConvLSTM2DConfig::new(5, (3, 3))
        };
        let mut cpu = conv_layer(&mut rng, cfg, 2, true);
        let mut gpu = CudaLayer::from_keras(&dev, &cpu).expect("upload");
        for call in 0..3 {
            if call == 2 {
                reset(&mut cpu);
                gpu.reset_states();
            }
            let x = rng.arr(&[3, 2, 5, 4, 2], 1.0);
            let r = match (
                cpu.forward(x.view(), &CallArgs::default()),
                gpu.forward(x.view(), &CallArgs::default()),
            ) {
                (Ok(w), Ok(g)) => compare_outputs(&g, &w),
                (w, g) => Err(format!("cpu {:?} / gpu {:?}", w.err(), g.err())),
            };
            report.add(&format!("stateful call {call}"), r);
        }
        report.finish();
    }

    /// An LSTM (24 units, returning sequences) and a GRU (10 units) to chain.
    fn lstm_gru_chain(rng: &mut Rng, input: usize) -> (KerasLayer, KerasLayer) {
        let seq = SequenceOptions {
            return_sequences: true,
            ..Default::default()
        };
        let c1 = dense_cell(
            rng,
            Dense::Lstm,
            input,
            24,
            Activation::Tanh,
            Activation::Sigmoid,
            1.0,
        );
        let c2 = dense_cell(
            rng,
            Dense::GruAfter,
            24,
            10,
            Activation::Tanh,
            Activation::Sigmoid,
            1.0,
        );
        (
            dense_layer(c1, seq),
            dense_layer(c2, SequenceOptions::default()),
        )
    }

    /// Layers chained on the device (no host round trip) against the CPU chain.
    #[test]
    fn gpu_device_chaining() {
        let test = "gpu_device_chaining";
        let Some(dev) = device(test) else { return };
        let mut rng = Rng::new(test);
        let mut report = Report::new(test);
        let (b, t, i) = (3, 6, 5);
        let (mut l1, mut l2) = lstm_gru_chain(&mut rng, i);
        let x = rng.arr(&[b, t, i], 1.0);
        let mask = rng.mask(b, t);
        let args = CallArgs {
            mask: Some(mask.view()),
            ..Default::default()
        };
        let r = (|| -> Result<f32, String> {
            let y1 = l1.forward(x.view(), &args).map_err(|e| e.to_string())?;
            let want = l2
                .forward(y1.output.view(), &args)
                .map_err(|e| e.to_string())?;
            let mut g1 = CudaLayer::from_keras(&dev, &l1).map_err(|e| e.to_string())?;
            let mut g2 = CudaLayer::from_keras(&dev, &l2).map_err(|e| e.to_string())?;
            let xd = dev.upload(x.view()).map_err(|e| e.to_string())?;
            let d1 = g1
                .forward_device(&xd, Some(mask.view()), None)
                .map_err(|e| e.to_string())?;
            let d2 = g2
                .forward_device(&d1.output, Some(mask.view()), None)
                .map_err(|e| e.to_string())?;
            let got = d2.to_host(&dev).map_err(|e| e.to_string())?;
            compare_outputs(&got, &want)
        })();
        report.add("lstm -> gru on the device", r);
        report.finish();
    }

    /// One storage-type case: the CPU layer on weights, input and states already rounded to
    /// `dt` (the Rng draws them so), its outputs rounded to `dt` (the CPU path's `--dtype`
    /// semantics), against the GPU layer storing everything in `dt`. Every GPU value must be
    /// exactly representable in `dt`, and within `1e-5 + rel |ref|`.
    fn half_vs_cpu(
        dev: &CudaDevice,
        layer: &mut KerasLayer,
        dt: StorageType,
        rel: f32,
        x: ArrayViewD<f32>,
        mask: Option<&Array2<bool>>,
        init: Option<&[ArrayD<f32>]>,
    ) -> Result<f32, String> {
        half_vs_cpu_on(dev, layer, dt, rel, x, mask, init, None)
    }

    /// As `half_vs_cpu`, with the dense time loops forced to `path`, which must have run every
    /// cell.
    #[allow(clippy::too_many_arguments)]
    fn half_vs_cpu_on(
        dev: &CudaDevice,
        layer: &mut KerasLayer,
        dt: StorageType,
        rel: f32,
        x: ArrayViewD<f32>,
        mask: Option<&Array2<bool>>,
        init: Option<&[ArrayD<f32>]>,
        path: Option<DensePath>,
    ) -> Result<f32, String> {
        let args = CallArgs {
            mask: mask.map(|m| m.view()),
            initial_state: init,
            constants: &[],
        };
        let mut want = layer
            .forward(x.clone(), &args)
            .map_err(|e| format!("cpu: {e}"))?;
        dt.round(&mut want.output);
        for s in &mut want.states {
            dt.round(s);
        }
        let mut gpu =
            CudaLayer::from_keras_as(dev, layer, dt).map_err(|e| format!("upload: {e}"))?;
        if gpu.dtype() != dt {
            return Err(format!("layer dtype {:?}, want {dt:?}", gpu.dtype()));
        }
        if let Some(p) = path {
            gpu = gpu.with_dense_path(p);
        }
        let got = gpu.forward(x, &args).map_err(|e| format!("gpu: {e}"))?;
        if let Some(p) = path {
            ran_on(&gpu, p)?;
        }
        for a in std::iter::once(&got.output).chain(&got.states) {
            if let Some(v) = a.iter().find(|v| !v.is_nan() && dt.round_value(**v) != **v) {
                return Err(format!("{v} is not a {} value", dt.name()));
            }
        }
        compare_outputs_rel(&got, &want, rel)
    }

    /// f16 / bf16 storage: every dense cell kind, a stack, ConvLSTM2D in both data formats,
    /// with masks, initial states, go_backwards and time_major; device tensors in the storage
    /// type (upload_as, chaining two half layers, the dtype of outputs, a refused f32 input).
    #[test]
    fn gpu_half_storage() {
        let test = "gpu_half_storage";
        let Some(dev) = device(test) else { return };
        let mut rng = Rng::new(test);
        let mut report = Report::new(test);
        for dt in [StorageType::F16, StorageType::BF16] {
            rng.1 = dt;
            // f32 tolerance plus one rounding of the output to the storage type.
            let rel = 1e-4
                + if dt == StorageType::F16 {
                    2f32.powi(-10)
                } else {
                    2f32.powi(-7)
                };
            let n = dt.name();
            let presets = [
                (true, false, false, true, true),
                (false, true, true, false, false),
            ];
            for kind in [
                Dense::Lstm,
                Dense::GruAfter,
                Dense::GruBefore,
                Dense::Simple,
            ] {
                for (rs, back, tm, with_mask, with_init) in presets {
                    let opts = SequenceOptions {
                        return_sequences: rs,
                        go_backwards: back,
                        time_major: tm,
                        return_state: true,
                        ..Default::default()
                    };
                    let (b, t, i, u) = (3, 5, 6, 37);
                    let cell = dense_cell(
                        &mut rng,
                        kind,
                        i,
                        u,
                        Activation::Tanh,
                        Activation::Sigmoid,
                        1.0,
                    );
                    let widths = cell.state_size();
                    let mut layer = dense_layer(cell, opts);
                    let x = seq_input(&mut rng, &opts, b, t, i);
                    let mask = with_mask.then(|| rng.mask(b, t));
                    let init = with_init.then(|| state_arrays(&mut rng, b, &widths));
                    report.add(
                        &format!("{n} {kind:?} {opts:?} mask={with_mask} init={with_init}"),
                        half_vs_cpu(
                            &dev,
                            &mut layer,
                            dt,
                            rel,
                            x.view(),
                            mask.as_ref(),
                            init.as_deref(),
                        ),
                    );
                }
            }
            // A 512-wide input: the tensor-core projection's f32 accumulation over long sums.
            let cell = dense_cell(
                &mut rng,
                Dense::Lstm,
                512,
                64,
                Activation::Tanh,
                Activation::Sigmoid,
                1.0,
            );
            let mut layer = dense_layer(
                cell,
                SequenceOptions {
                    return_sequences: true,
                    ..Default::default()
                },
            );
            let x = rng.arr(&[4, 3, 512], 1.0);
            report.add(
                &format!("{n} lstm input width 512"),
                half_vs_cpu(&dev, &mut layer, dt, rel, x.view(), None, None),
            );
            // A stack: the cells in between hand on f32 sequences, as on the CPU.
            let opts = SequenceOptions {
                return_sequences: true,
                return_state: true,
                ..Default::default()
            };
            let cells = vec![
                dense_cell(
                    &mut rng,
                    Dense::Lstm,
                    6,
                    20,
                    Activation::Tanh,
                    Activation::HardSigmoid,
                    1.0,
                ),
                dense_cell(
                    &mut rng,
                    Dense::GruBefore,
                    20,
                    9,
                    Activation::Tanh,
                    Activation::Sigmoid,
                    1.0,
                ),
            ];
            let mut layer = KerasLayer::RNN(RNN::stacked(cells, opts).expect("stack"));
            let x = rng.arr(&[2, 4, 6], 1.0);
            let mask = rng.mask(2, 4);
            report.add(
                &format!("{n} stack lstm -> gru"),
                half_vs_cpu(&dev, &mut layer, dt, rel, x.view(), Some(&mask), None),
            );
            // ConvLSTM2D, both data formats.
            for cf in [false, true] {
                let cfg = ConvLSTM2DConfig {
                    padding: Padding::Same,
                    data_format: if cf {
                        DataFormat::ChannelsFirst
                    } else {
                        DataFormat::ChannelsLast
                    },
                    sequence: SequenceOptions {
                        return_sequences: cf,
                        go_backwards: !cf,
                        return_state: true,
                        ..Default::default()
                    },
                    ..ConvLSTM2DConfig::new(5, (3, 3))
                };
                let mut layer = conv_layer(&mut rng, cfg, 2, true);
                let x = if cf {
                    rng.arr(&[2, 3, 2, 6, 5], 1.0)
                } else {
                    rng.arr(&[2, 3, 6, 5, 2], 1.0)
                };
                let mask = rng.mask(2, 3);
                let shape = if cf { [2, 5, 6, 5] } else { [2, 6, 5, 5] };
                let init = vec![rng.arr(&shape, 1.0), rng.arr(&shape, 1.0)];
                report.add(
                    &format!("{n} conv_lstm2d cf={cf}"),
                    half_vs_cpu(
                        &dev,
                        &mut layer,
                        dt,
                        rel,
                        x.view(),
                        Some(&mask),
                        Some(&init),
                    ),
                );
            }
            // Device tensors: an LSTM -> GRU chain in `dt` without host round trips.
            let r = (|| -> Result<f32, String> {
                let (mut l1, mut l2) = lstm_gru_chain(&mut rng, 5);
                let x = rng.arr(&[3, 6, 5], 1.0);
                let mut y1 = l1
                    .forward(x.view(), &CallArgs::default())
                    .map_err(|e| e.to_string())?;
                dt.round(&mut y1.output);
                let mut want = l2
                    .forward(y1.output.view(), &CallArgs::default())
                    .map_err(|e| e.to_string())?;
                dt.round(&mut want.output);
                let mut g1 = CudaLayer::from_keras_as(&dev, &l1, dt).map_err(|e| e.to_string())?;
                let mut g2 = CudaLayer::from_keras_as(&dev, &l2, dt).map_err(|e| e.to_string())?;
                let x32 = dev.upload(x.view()).map_err(|e| e.to_string())?;
                match g1.forward_device(&x32, None, None) {
                    Err(e)
                        if e.to_string()
                            .contains(&format!("expected a {n} device tensor")) => {}
                    other => return Err(format!("an f32 input was not refused: {other:?}")),
                }
                let xd = dev.convert(&x32, dt).map_err(|e| e.to_string())?;
                let d1 = g1
                    .forward_device(&xd, None, None)
                    .map_err(|e| e.to_string())?;
                if d1.output.dtype() != dt {
                    return Err(format!("output dtype {:?}", d1.output.dtype()));
                }
                let d2 = g2
                    .forward_device(&d1.output, None, None)
                    .map_err(|e| e.to_string())?;
                let got = d2.to_host(&dev).map_err(|e| e.to_string())?;
                compare_arrays_rel("chain output", &got.output, &want.output, rel)
            })();
            report.add(&format!("{n} lstm -> gru on the device"), r);
        }
        report.finish();
    }

    /// Bidirectional around dense layers and ConvLSTM2D: every merge mode, with and without
    /// return_sequences, masks with holes (zeroed steps), initial states for both directions,
    /// time_major, a backward layer of another class and width (concat), and f16 storage.
    #[test]
    fn gpu_bidirectional() {
        let test = "gpu_bidirectional";
        let Some(dev) = device(test) else { return };
        let mut rng = Rng::new(test);
        let mut report = Report::new(test);
        let modes = [
            MergeMode::Concat,
            MergeMode::Sum,
            MergeMode::Mul,
            MergeMode::Ave,
            MergeMode::None,
        ];
        let (b, t, i, u) = (3, 5, 4, 19);
        for (k, mode) in modes.into_iter().enumerate() {
            for rs in [true, false] {
                // Concat's layers, inputs and states are drawn as f16 values, for the f16 case
                // below (the f32 cases do not mind).
                rng.1 = if k == 0 {
                    StorageType::F16
                } else {
                    StorageType::F32
                };
                let tm = k == 2;
                let opts = SequenceOptions {
                    return_sequences: rs,
                    return_state: true,
                    time_major: tm,
                    ..Default::default()
                };
                let back_opts = SequenceOptions {
                    go_backwards: true,
                    ..opts
                };
                let (fk, bk, bu) = if mode == MergeMode::Concat {
                    (Dense::Lstm, Dense::GruAfter, 7)
                } else {
                    (Dense::GruBefore, Dense::GruBefore, u)
                };
                let fc = dense_cell(
                    &mut rng,
                    fk,
                    i,
                    u,
                    Activation::Tanh,
                    Activation::Sigmoid,
                    1.0,
                );
                let bc = dense_cell(
                    &mut rng,
                    bk,
                    i,
                    bu,
                    Activation::Tanh,
                    Activation::Sigmoid,
                    1.0,
                );
                let widths: Vec<usize> =
                    fc.state_size().into_iter().chain(bc.state_size()).collect();
                let mut layer = KerasLayer::Bidirectional(Box::new(
                    Bidirectional::new(dense_layer(fc, opts), dense_layer(bc, back_opts), mode)
                        .expect("bidirectional"),
                ));
                let x = seq_input(&mut rng, &opts, b, t, i);
                let mask = rng.mask(b, t);
                let init = state_arrays(&mut rng, b, &widths);
                let case = format!("{mode:?} return_sequences={rs} time_major={tm}");
                report.add(
                    &format!("{case} mask+init"),
                    cpu_vs_gpu(&dev, &mut layer, x.view(), Some(&mask), Some(&init)),
                );
                report.add(
                    &format!("{case} plain"),
                    cpu_vs_gpu(&dev, &mut layer, x.view(), None, None),
                );
                if k == 0 {
                    let rel = 1e-4 + 2f32.powi(-10);
                    report.add(
                        &format!("{case} f16 storage"),
                        half_vs_cpu(
                            &dev,
                            &mut layer,
                            StorageType::F16,
                            rel,
                            x.view(),
                            Some(&mask),
                            None,
                        ),
                    );
                }
            }
        }
        rng.1 = StorageType::F32;
        // ConvLSTM2D inside (masked steps are not zeroed, as in Keras), channels-first concat.
        for cf in [false, true] {
            let cfg = |back: bool| ConvLSTM2DConfig {
                padding: Padding::Same,
                data_format: if cf {
                    DataFormat::ChannelsFirst
                } else {
                    DataFormat::ChannelsLast
                },
                sequence: SequenceOptions {
                    return_sequences: true,
                    return_state: true,
                    go_backwards: back,
                    ..Default::default()
                },
                ..ConvLSTM2DConfig::new(4, (3, 3))
            };
            let f = conv_layer(&mut rng, cfg(false), 2, true);
            let bl = conv_layer(&mut rng, cfg(true), 2, true);
            let mode = if cf {
                MergeMode::Concat
            } else {
                MergeMode::Ave
            };
            let mut layer = KerasLayer::Bidirectional(Box::new(
                Bidirectional::new(f, bl, mode).expect("bidirectional"),
            ));
            let x = if cf {
                rng.arr(&[2, 3, 2, 5, 6], 1.0)
            } else {
                rng.arr(&[2, 3, 5, 6, 2], 1.0)
            };
            let mask = rng.mask(2, 3);
            report.add(
                &format!("conv_lstm2d cf={cf} {mode:?}"),
                cpu_vs_gpu(&dev, &mut layer, x.view(), Some(&mask), None),
            );
        }
        report.finish();
    }

    /// The persistent kernels (forced; kernels/rnn_persistent.cu) against the CPU: every cell
    /// kind over the option matrix at one block (37 units) and at ~100 blocks meeting at grid
    /// barriers (300 units), batch rows past one group of 4, a stack, and f16 weights; each
    /// case also checks that the persistent kernel, not the step fallback, ran every cell.
    #[test]
    fn gpu_persistent_path() {
        let test = "gpu_persistent_path";
        let Some(dev) = device(test) else { return };
        let mut rng = Rng::new(test);
        let mut report = Report::new(test);
        let forced = Some(DensePath::Persistent);
        let sizes: &[(usize, usize, usize, usize)] = if quick() {
            &[(3, 6, 5, 37), (2, 4, 6, 300)]
        } else {
            &[(3, 6, 5, 37), (6, 5, 8, 64), (2, 4, 6, 300)]
        };
        for kind in [
            Dense::Lstm,
            Dense::GruAfter,
            Dense::GruBefore,
            Dense::Simple,
        ] {
            for &(b, t, i, u) in sizes {
                for (opts, with_mask, with_init) in options_matrix() {
                    let cell = dense_cell(
                        &mut rng,
                        kind,
                        i,
                        u,
                        Activation::Tanh,
                        Activation::Sigmoid,
                        1.0,
                    );
                    let widths = cell.state_size();
                    let mut layer = dense_layer(cell, opts);
                    let x = seq_input(&mut rng, &opts, b, t, i);
                    let mask = with_mask.then(|| rng.mask(b, t));
                    let init = with_init.then(|| state_arrays(&mut rng, b, &widths));
                    report.add(
                        &format!(
                            "{kind:?} b{b} t{t} u{u} {opts:?} mask={with_mask} init={with_init}"
                        ),
                        cpu_vs_gpu_on(
                            &dev,
                            &mut layer,
                            x.view(),
                            mask.as_ref(),
                            init.as_deref(),
                            forced,
                        ),
                    );
                }
            }
        }
        // Generic activations, a stack, f16 weights.
        let cell = dense_cell(
            &mut rng,
            Dense::Lstm,
            4,
            40,
            Activation::Selu,
            Activation::HardSigmoid,
            1.0,
        );
        let mut layer = dense_layer(
            cell,
            SequenceOptions {
                return_sequences: true,
                ..Default::default()
            },
        );
        let x = rng.arr(&[2, 5, 4], 1.0);
        report.add(
            "lstm selu/hard_sigmoid",
            cpu_vs_gpu_on(&dev, &mut layer, x.view(), None, None, forced),
        );
        let cells = vec![
            dense_cell(
                &mut rng,
                Dense::GruBefore,
                6,
                130,
                Activation::Tanh,
                Activation::Sigmoid,
                1.0,
            ),
            dense_cell(
                &mut rng,
                Dense::Simple,
                130,
                9,
                Activation::Relu,
                Activation::Relu,
                1.0,
            ),
        ];
        let mut layer = KerasLayer::RNN(
            RNN::stacked(
                cells,
                SequenceOptions {
                    return_state: true,
                    ..Default::default()
                },
            )
            .expect("stack"),
        );
        let x = rng.arr(&[3, 4, 6], 1.0);
        let mask = rng.mask(3, 4);
        report.add(
            "stack gru_before -> simple",
            cpu_vs_gpu_on(&dev, &mut layer, x.view(), Some(&mask), None, forced),
        );
        rng.1 = StorageType::F16;
        let cell = dense_cell(
            &mut rng,
            Dense::GruAfter,
            5,
            200,
            Activation::Tanh,
            Activation::Sigmoid,
            1.0,
        );
        let mut layer = dense_layer(
            cell,
            SequenceOptions {
                return_sequences: true,
                return_state: true,
                ..Default::default()
            },
        );
        let x = rng.arr(&[2, 3, 5], 1.0);
        let r = f16_forced_vs_cpu(&dev, &mut layer, x.view(), DensePath::Persistent);
        report.add("gru_after f16 weights", r);
        // f16 LSTM with 128 units: one block of 512 columns (the kernel's column-loop branch).
        rng.1 = StorageType::F16;
        let cell = dense_cell(
            &mut rng,
            Dense::Lstm,
            3,
            128,
            Activation::Tanh,
            Activation::Sigmoid,
            1.0,
        );
        let mut layer = dense_layer(cell, SequenceOptions::default());
        let x = rng.arr(&[2, 3, 3], 1.0);
        let r = f16_forced_vs_cpu(&dev, &mut layer, x.view(), DensePath::Persistent);
        report.add("lstm f16 128 units, one block", r);
        report.finish();
    }

    /// `half_vs_cpu_on` for f16 storage (its tolerance) with the time loops forced to `path`.
    fn f16_forced_vs_cpu(
        dev: &CudaDevice,
        layer: &mut KerasLayer,
        x: ArrayViewD<f32>,
        path: DensePath,
    ) -> Result<f32, String> {
        let rel = 1e-4 + 2f32.powi(-10);
        half_vs_cpu_on(dev, layer, StorageType::F16, rel, x, None, None, Some(path))
    }

    /// A stack of `n` cells of one kind, widths `units` (cell 0 reads `input` features).
    fn same_kind_stack(
        rng: &mut Rng,
        kind: Dense,
        input: usize,
        units: &[usize],
        act: Activation,
        rec: Activation,
    ) -> Vec<AnyCell> {
        let mut cells = Vec::new();
        let mut width = input;
        for &u in units {
            cells.push(dense_cell(rng, kind, width, u, act, rec, 1.0));
            width = u;
        }
        cells
    }

    /// The wavefront across stacked cells (forced): every kind, stacks of 2 and 3 cells of
    /// different widths, every option, masks and initial states, the tiled mapping (batch 64,
    /// 1024 units), f16 weights, and `Auto` choosing it where the cost model says so; each
    /// against the CPU layer, with every cell reported as run by the wavefront.
    #[test]
    fn gpu_wavefront_path() {
        let test = "gpu_wavefront_path";
        let Some(dev) = device(test) else { return };
        let mut rng = Rng::new(test);
        let mut report = Report::new(test);
        let forced = Some(DensePath::Wavefront);
        for kind in [
            Dense::Lstm,
            Dense::GruAfter,
            Dense::GruBefore,
            Dense::Simple,
        ] {
            for (n, (opts, with_mask, with_init)) in options_matrix().into_iter().enumerate() {
                let (b, t, i) = (3, 5, 6);
                // Not n % 2: that is return_sequences in the full matrix.
                let units: &[usize] = if (n / 2) % 2 == 0 {
                    &[20, 33, 16]
                } else {
                    &[37, 9]
                };
                let cells = same_kind_stack(
                    &mut rng,
                    kind,
                    i,
                    units,
                    Activation::Tanh,
                    Activation::Sigmoid,
                );
                let widths: Vec<usize> = cells.iter().flat_map(|c| c.state_size()).collect();
                let mut layer = KerasLayer::RNN(RNN::stacked(cells, opts).expect("stack"));
                let x = seq_input(&mut rng, &opts, b, t, i);
                let mask = with_mask.then(|| rng.mask(b, t));
                let init = with_init.then(|| state_arrays(&mut rng, b, &widths));
                report.add(
                    &format!("{kind:?} {units:?} {opts:?} mask={with_mask} init={with_init}"),
                    cpu_vs_gpu_on(
                        &dev,
                        &mut layer,
                        x.view(),
                        mask.as_ref(),
                        init.as_deref(),
                        forced,
                    ),
                );
            }
        }
        // Generic activations; the tiled mapping (batch 64, 1024 units: the forced wavefront
        // picks the 32-row tiles); Auto on a stack where the model picks the wavefront.
        let opts = SequenceOptions {
            return_sequences: true,
            return_state: true,
            ..Default::default()
        };
        let cells = same_kind_stack(
            &mut rng,
            Dense::GruBefore,
            4,
            &[40, 40],
            Activation::Selu,
            Activation::HardSigmoid,
        );
        let mut layer = KerasLayer::RNN(RNN::stacked(cells, opts).expect("stack"));
        let x = rng.arr(&[2, 5, 4], 1.0);
        let mask = rng.mask(2, 5);
        report.add(
            "gru_before selu/hard_sigmoid",
            cpu_vs_gpu_on(&dev, &mut layer, x.view(), Some(&mask), None, forced),
        );
        let cells = same_kind_stack(
            &mut rng,
            Dense::Lstm,
            64,
            &[1024, 1024],
            Activation::Tanh,
            Activation::Sigmoid,
        );
        let mut layer = KerasLayer::RNN(RNN::stacked(cells, opts).expect("stack"));
        let x = rng.arr(&[64, 3, 64], 1.0);
        let mask = rng.mask(64, 3);
        report.add(
            "lstm 2 x 1024 batch 64 (tiled)",
            cpu_vs_gpu_on(&dev, &mut layer, x.view(), Some(&mask), None, forced),
        );
        if !quick() {
            let cells = same_kind_stack(
                &mut rng,
                Dense::Lstm,
                64,
                &[256, 256, 256, 256],
                Activation::Tanh,
                Activation::Sigmoid,
            );
            let mut layer = KerasLayer::RNN(RNN::stacked(cells, opts).expect("stack"));
            let x = rng.arr(&[128, 20, 64], 1.0);
            let r = (|| -> Result<f32, String> {
                let args = CallArgs::default();
                let want = layer.forward(x.view(), &args).map_err(|e| e.to_string())?;
                // Auto explicitly: the session script also runs this suite with
                // RECURRENT_CUDA_PATH=step.
                let mut gpu = CudaLayer::from_keras(&dev, &layer)
                    .map_err(|e| e.to_string())?
                    .with_dense_path(DensePath::Auto);
                let got = gpu.forward(x.view(), &args).map_err(|e| e.to_string())?;
                // The cost model's choice holds for an H100 / H200 (132 SMs); elsewhere only
                // the numbers are checked.
                let name = dev.name().map_err(|e| e.to_string())?;
                if (name.contains("H100") || name.contains("H200"))
                    && gpu.last_dense_paths() != [DensePath::Wavefront; 4]
                {
                    return Err(format!("Auto ran {:?}", gpu.last_dense_paths()));
                }
                compare_outputs(&got, &want)
            })();
            report.add("auto: 4 x lstm 256 batch 128 T 20", r);
        }
        rng.1 = StorageType::F16;
        let cells = same_kind_stack(
            &mut rng,
            Dense::GruAfter,
            5,
            &[50, 30, 70],
            Activation::Tanh,
            Activation::Sigmoid,
        );
        let mut layer = KerasLayer::RNN(RNN::stacked(cells, opts).expect("stack"));
        let x = rng.arr(&[3, 4, 5], 1.0);
        let r = f16_forced_vs_cpu(&dev, &mut layer, x.view(), DensePath::Wavefront);
        report.add("gru_after f16 weights, 3 cells", r);
        report.finish();
    }

    /// The CPU layer against `gpu` (built by the caller: storage type, TF32) forced onto the
    /// tensor-core path: outputs and states within `abs + rel |want|`, and the tensor-core
    /// kernels, not a fallback, ran every cell.
    fn tensor_core_vs_cpu(
        layer: &mut KerasLayer,
        gpu: CudaLayer,
        x: ArrayViewD<f32>,
        args: &CallArgs,
        abs: f32,
        rel: f32,
    ) -> Result<f32, String> {
        tensor_core_vs_cpu_on(layer, gpu, DensePath::TensorCore, true, x, args, abs, rel)
    }

    /// As `tensor_core_vs_cpu` with the layer on `path` (Auto with tensor-core steps allowed
    /// by the caller), asserting that the tensor-core kernels ran every cell only when
    /// `check_ran`.
    #[allow(clippy::too_many_arguments)]
    fn tensor_core_vs_cpu_on(
        layer: &mut KerasLayer,
        gpu: CudaLayer,
        path: DensePath,
        check_ran: bool,
        x: ArrayViewD<f32>,
        args: &CallArgs,
        abs: f32,
        rel: f32,
    ) -> Result<f32, String> {
        let want = layer.forward(x.clone(), args).map_err(|e| e.to_string())?;
        let mut gpu = gpu.with_dense_path(path);
        let got = gpu.forward(x, args).map_err(|e| e.to_string())?;
        let ran = gpu.last_dense_paths();
        if check_ran && (ran.is_empty() || ran.iter().any(|p| *p != DensePath::TensorCore)) {
            return Err(format!("ran on {ran:?}"));
        }
        let mut worst = 0.0f32;
        for (g, w) in
            std::iter::once((&got.output, &want.output)).chain(got.states.iter().zip(&want.states))
        {
            for (a, e) in g.iter().zip(w.iter()) {
                let d = (a - e).abs();
                if d.is_nan() || d > abs + rel * e.abs() {
                    return Err(format!("got {a}, want {e}"));
                }
                worst = worst.max(d);
            }
        }
        Ok(worst)
    }

    /// An f16 layer on Auto with tensor-core steps allowed against the CPU (the f16
    /// tensor-core tolerance); `check_ran`: the tensor-core kernels must have run every cell.
    fn auto_tensor_core_steps_vs_cpu(
        dev: &CudaDevice,
        layer: &mut KerasLayer,
        check_ran: bool,
        x: ArrayViewD<f32>,
    ) -> Result<f32, String> {
        let g = CudaLayer::from_keras_as(dev, layer, StorageType::F16)
            .map_err(|e| e.to_string())?
            .with_tensor_core_steps(true);
        let args = CallArgs::default();
        tensor_core_vs_cpu_on(layer, g, DensePath::Auto, check_ran, x, &args, 2e-3, 2e-2)
    }

    /// The tensor-core step kernels (forced; f16 / bf16 only): every cell kind with more than
    /// one 64-row tile and a partial 16-unit tile, and ConvLSTM2D, against the CPU on the same
    /// rounded weights and inputs. Their product rounds h to the storage type each step, so the
    /// tolerance is wider than the storage tests': 2e-3 + 2e-2 |ref| (f16), 2e-2 + 1e-1 |ref|
    /// (bf16), over 3-4 steps; the step path must not be what ran.
    #[test]
    fn gpu_tensor_core_path() {
        let test = "gpu_tensor_core_path";
        let Some(dev) = device(test) else { return };
        let mut rng = Rng::new(test);
        let mut report = Report::new(test);
        for (dt, abs, rel) in [
            (StorageType::F16, 2e-3, 2e-2),
            (StorageType::BF16, 2e-2, 1e-1),
        ] {
            for kind in [
                Dense::Lstm,
                Dense::GruAfter,
                Dense::GruBefore,
                Dense::Simple,
            ] {
                rng.1 = dt;
                let opts = SequenceOptions {
                    return_sequences: true,
                    return_state: true,
                    go_backwards: kind == Dense::GruBefore,
                    ..Default::default()
                };
                let (b, t, i, u) = (70, 4, 6, 40);
                let cell = dense_cell(
                    &mut rng,
                    kind,
                    i,
                    u,
                    Activation::Tanh,
                    Activation::Sigmoid,
                    1.0,
                );
                let mut layer = dense_layer(cell, opts);
                let x = rng.arr(&[b, t, i], 1.0);
                let mask = rng.mask(b, t);
                rng.1 = StorageType::F32;
                let args = CallArgs {
                    mask: Some(mask.view()),
                    ..Default::default()
                };
                let r = CudaLayer::from_keras_as(&dev, &layer, dt)
                    .map_err(|e| e.to_string())
                    .and_then(|g| tensor_core_vs_cpu(&mut layer, g, x.view(), &args, abs, rel));
                report.add(&format!("{} {kind:?}", dt.name()), r);
            }
            // ConvLSTM2D's steps on tensor cores: 2 x 6 x 7 pixels = 84 rows (two 64-row
            // tiles), 20 filters (a partial 16-filter tile).
            rng.1 = dt;
            let cfg = ConvLSTM2DConfig {
                padding: Padding::Same,
                sequence: SequenceOptions {
                    return_sequences: true,
                    return_state: true,
                    ..Default::default()
                },
                ..ConvLSTM2DConfig::new(20, (3, 3))
            };
            let mut layer = conv_layer(&mut rng, cfg, 3, true);
            let x = rng.arr(&[2, 3, 6, 7, 3], 1.0);
            rng.1 = StorageType::F32;
            let r = CudaLayer::from_keras_as(&dev, &layer, dt)
                .map_err(|e| e.to_string())
                .and_then(|g| {
                    tensor_core_vs_cpu(&mut layer, g, x.view(), &CallArgs::default(), abs, rel)
                });
            report.add(&format!("{} conv_lstm2d", dt.name()), r);
        }
        // TF32 (f32 layers, allowed explicitly): the projection and the steps on tensor cores,
        // operands rounded to a 10-bit mantissa like f16's: the f16 tolerance.
        for kind in [Dense::Lstm, Dense::GruBefore] {
            let opts = SequenceOptions {
                return_sequences: true,
                ..Default::default()
            };
            let cell = dense_cell(
                &mut rng,
                kind,
                6,
                40,
                Activation::Tanh,
                Activation::Sigmoid,
                1.0,
            );
            let mut layer = dense_layer(cell, opts);
            let x = rng.arr(&[70, 4, 6], 1.0);
            let r = CudaLayer::from_keras(&dev, &layer)
                .map_err(|e| e.to_string())
                .and_then(|g| {
                    let g = g.with_tf32(true);
                    tensor_core_vs_cpu(&mut layer, g, x.view(), &CallArgs::default(), 2e-3, 2e-2)
                });
            report.add(&format!("tf32 {kind:?}"), r);
        }
        // Auto with tensor-core steps allowed (CudaLayer::with_tensor_core_steps): an f16
        // LSTM at 128 x 1024, where the cost model takes the tensor cores (asserted on H100 /
        // H200, whose SM count the model assumes), ConvLSTM2D (84 rows: always), and batch 1,
        // where Auto keeps h in f32 (the storage tolerance, and not the tensor cores).
        let h100 = dev
            .name()
            .map(|n| n.contains("H100") || n.contains("H200"))
            .unwrap_or(false);
        rng.1 = StorageType::F16;
        let cell = dense_cell(
            &mut rng,
            Dense::Lstm,
            32,
            1024,
            Activation::Tanh,
            Activation::Sigmoid,
            1.0,
        );
        let mut layer = dense_layer(cell, SequenceOptions::default());
        let x = rng.arr(&[128, 3, 32], 1.0);
        let r = auto_tensor_core_steps_vs_cpu(&dev, &mut layer, h100, x.view());
        report.add("auto + tensor-core steps: f16 lstm 128 x 1024", r);
        let cfg = ConvLSTM2DConfig {
            padding: Padding::Same,
            ..ConvLSTM2DConfig::new(20, (3, 3))
        };
        let mut layer = conv_layer(&mut rng, cfg, 3, true);
        let x = rng.arr(&[2, 3, 6, 7, 3], 1.0);
        let r = auto_tensor_core_steps_vs_cpu(&dev, &mut layer, true, x.view());
        report.add("auto + tensor-core steps: f16 conv_lstm2d", r);
        let cell = dense_cell(
            &mut rng,
            Dense::GruAfter,
            8,
            256,
            Activation::Tanh,
            Activation::Sigmoid,
            1.0,
        );
        let mut layer = dense_layer(cell, SequenceOptions::default());
        let x = rng.arr(&[1, 4, 8], 1.0);
        let r = (|| -> Result<f32, String> {
            let args = CallArgs::default();
            let mut want = layer.forward(x.view(), &args).map_err(|e| e.to_string())?;
            StorageType::F16.round(&mut want.output);
            let mut gpu = CudaLayer::from_keras_as(&dev, &layer, StorageType::F16)
                .map_err(|e| e.to_string())?
                .with_dense_path(DensePath::Auto)
                .with_tensor_core_steps(true);
            let got = gpu.forward(x.view(), &args).map_err(|e| e.to_string())?;
            if gpu.last_dense_paths().contains(&DensePath::TensorCore) {
                return Err(format!("batch 1 ran {:?}", gpu.last_dense_paths()));
            }
            compare_outputs_rel(&got, &want, 1e-4 + 2f32.powi(-10))
        })();
        report.add("auto + tensor-core steps: f16 gru batch 1 stays exact", r);
        report.finish();
    }

    /// Calls the CPU refuses are refused on the GPU with the same message; user cells are
    /// refused at upload.
    #[test]
    fn gpu_errors_match_the_cpu() {
        let test = "gpu_errors_match_the_cpu";
        let Some(dev) = device(test) else { return };
        let mut rng = Rng::new(test);
        let mut report = Report::new(test);
        let cell = dense_cell(
            &mut rng,
            Dense::Lstm,
            4,
            8,
            Activation::Tanh,
            Activation::Sigmoid,
            1.0,
        );
        let mut layer = dense_layer(cell, SequenceOptions::default());
        let bad_x = [
            ("time 0", rng.arr(&[2, 0, 4], 1.0)),
            ("wrong features", rng.arr(&[2, 3, 5], 1.0)),
            ("2-D input", rng.arr(&[2, 3], 1.0)),
        ];
        for (what, x) in bad_x {
            let mut gpu = CudaLayer::from_keras(&dev, &layer).expect("upload");
            let e_cpu = layer
                .forward(x.view(), &CallArgs::default())
                .err()
                .map(|e| e.to_string());
            let e_gpu = gpu
                .forward(x.view(), &CallArgs::default())
                .err()
                .map(|e| e.to_string());
            report.add(
                what,
                if e_cpu.is_some() && e_cpu == e_gpu {
                    Ok(0.0)
                } else {
                    Err(format!("cpu {e_cpu:?} / gpu {e_gpu:?}"))
                },
            );
        }
        let x = rng.arr(&[2, 3, 4], 1.0);
        let wrong_mask = Array2::from_elem((2, 4), true);
        let wrong_init = vec![rng.arr(&[2, 8], 1.0)];
        let cases: Vec<(&str, CallArgs)> = vec![
            (
                "mask shape",
                CallArgs {
                    mask: Some(wrong_mask.view()),
                    ..Default::default()
                },
            ),
            (
                "initial_state count",
                CallArgs {
                    initial_state: Some(&wrong_init),
                    ..Default::default()
                },
            ),
        ];
        for (what, args) in cases {
            let mut gpu = CudaLayer::from_keras(&dev, &layer).expect("upload");
            let e_cpu = layer.forward(x.view(), &args).err().map(|e| e.to_string());
            let e_gpu = gpu.forward(x.view(), &args).err().map(|e| e.to_string());
            report.add(
                what,
                if e_cpu.is_some() && e_cpu == e_gpu {
                    Ok(0.0)
                } else {
                    Err(format!("cpu {e_cpu:?} / gpu {e_gpu:?}"))
                },
            );
        }
        // A user-defined cell stays on the CPU.
        struct Identity;
        impl Cell for Identity {
            fn state_size(&self) -> Vec<usize> {
                vec![2]
            }
            fn output_size(&self) -> usize {
                2
            }
            fn call(
                &self,
                inputs: ndarray::ArrayView2<f32>,
                states: &[ndarray::ArrayView2<f32>],
                _constants: &[ndarray::ArrayView2<f32>],
            ) -> recurrent::Result<(Array2<f32>, Vec<Array2<f32>>)> {
                Ok((inputs.to_owned(), vec![states[0].to_owned()]))
            }
        }
        let rnn = RNN::new(AnyCell::user(Identity), SequenceOptions::default());
        report.add(
            "user cell refused",
            match CudaLayer::from_rnn(&dev, &rnn) {
                Err(e) if e.to_string().contains("CPU only") => Ok(0.0),
                other => Err(format!("expected a CPU-only error, got {other:?}")),
            },
        );
        report.finish();
    }

    // ---- the Keras fixtures through the GPU path

    fn fixtures_dir() -> Option<PathBuf> {
        if let Ok(d) = std::env::var("RECURRENT_FIXTURES") {
            return Some(PathBuf::from(d));
        }
        let candidates = [
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
            PathBuf::from("tests/fixtures"),
            PathBuf::from("target/gpu-bundle/fixtures"),
        ];
        candidates.into_iter().find(|p| p.is_dir())
    }

    fn opt(p: PathBuf) -> Option<PathBuf> {
        p.is_file().then_some(p)
    }

    /// The arrays of `out.npz` for `layer`'s result (`output`, or `forward.output` /
    /// `backward.output`; `state_h`, ...), as `recurrent run` names them.
    fn named(layer: &KerasLayer, out: Output) -> Result<BTreeMap<String, ArrayD<f32>>, String> {
        Ok(output_arrays(layer, out)
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect())
    }

    fn compare_named(
        got: &BTreeMap<String, ArrayD<f32>>,
        want: &BTreeMap<String, ArrayD<f32>>,
    ) -> Result<f32, String> {
        let gk: Vec<_> = got.keys().collect();
        let wk: Vec<_> = want.keys().collect();
        if gk != wk {
            return Err(format!("array names differ: got {gk:?}, want {wk:?}"));
        }
        let mut worst = 0.0f32;
        for (k, w) in want {
            worst = worst.max(compare_arrays(k, &got[k], w)?);
        }
        Ok(worst)
    }

    /// `Ok(None)`: a layer class the CUDA path does not run yet (reported as skipped).
    fn run_fixture(dev: &CudaDevice, dir: &Path) -> Result<Option<f32>, String> {
        let layer = load_layer(
            &dir.join("layer.json"),
            &dir.join("weights.npz"),
            StorageType::F32,
        )
        .map_err(|e| format!("load: {e}"))?;
        let names = layer.state_names();
        let mut gpu = match CudaLayer::from_keras(dev, &layer) {
            Ok(g) => g,
            Err(e) if e.to_string().contains(NO_CUDA_PATH) => return Ok(None),
            Err(e) => return Err(format!("upload: {e}")),
        };
        let x = npz::read_f32(&dir.join("x.npy")).map_err(|e| e.to_string())?;
        let mask = match opt(dir.join("mask.npy")) {
            Some(p) => Some(npz::read_mask(&p).map_err(|e| e.to_string())?),
            None => None,
        };
        let init = match opt(dir.join("initial_state.npz")) {
            Some(p) => {
                let mut m = npz::read_npz(&p).map_err(|e| e.to_string())?;
                let mut v = Vec::new();
                for n in &names {
                    v.push(
                        m.remove(n)
                            .ok_or_else(|| format!("initial_state.npz lacks {n}"))?,
                    );
                }
                Some(v)
            }
            None => None,
        };
        let args = CallArgs {
            mask: mask.as_ref().map(|m| m.view()),
            initial_state: init.as_deref(),
            constants: &[],
        };
        let out = gpu
            .forward(x.view(), &args)
            .map_err(|e| format!("gpu: {e}"))?;
        let want = npz::read_npz(&dir.join("out.npz")).map_err(|e| e.to_string())?;
        let mut worst = compare_named(&named(&layer, out)?, &want)?;
        if dir.join("x2.npy").is_file() {
            for (xf, wf, reset) in [("x2.npy", "out2.npz", false), ("x3.npy", "out3.npz", true)] {
                if reset {
                    gpu.reset_states();
                }
                let x = npz::read_f32(&dir.join(xf)).map_err(|e| e.to_string())?;
                let out = gpu
                    .forward(x.view(), &CallArgs::default())
                    .map_err(|e| format!("{xf}: gpu: {e}"))?;
                let want = npz::read_npz(&dir.join(wf)).map_err(|e| e.to_string())?;
                worst = worst.max(
                    compare_named(&named(&layer, out)?, &want).map_err(|e| format!("{xf}: {e}"))?,
                );
            }
        }
        Ok(Some(worst))
    }

    #[test]
    fn gpu_keras_fixtures() {
        let test = "gpu_keras_fixtures";
        let Some(dev) = device(test) else { return };
        let Some(root) = fixtures_dir() else {
            panic!("{test}: no fixtures directory (set RECURRENT_FIXTURES)");
        };
        let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
            .expect("fixtures dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("layer.json").is_file())
            .collect();
        cases.sort();
        assert!(
            cases.len() >= 80,
            "{test}: expected the full fixture set under {}, found {}",
            root.display(),
            cases.len()
        );
        let mut report = Report::new(test);
        for dir in &cases {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            match run_fixture(&dev, dir) {
                Ok(None) => super::skipped(&format!("{test}: {name}: {NO_CUDA_PATH}")),
                Ok(Some(w)) => report.add(&name, Ok(w)),
                Err(e) => report.add(&name, Err(e)),
            }
        }
        report.finish();
    }

    /// `tests/fixtures_files` (or the bundle's copy): Keras model files, chains and
    /// Bidirectional layers, through [`recurrent::cuda::forward_chain`], against Keras's
    /// out.npz (1e-5 + 1e-4 |want|).
    #[test]
    fn gpu_keras_model_files() {
        let test = "gpu_keras_model_files";
        let Some(dev) = device(test) else { return };
        let root = [
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures_files"),
            PathBuf::from("tests/fixtures_files"),
            PathBuf::from("target/gpu-bundle/fixtures_files"),
        ]
        .into_iter()
        .find(|p| p.is_dir());
        let Some(root) = root else {
            panic!("{test}: no tests/fixtures_files directory");
        };
        let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
            .expect("fixtures_files dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("case.json").is_file() && p.join("out.npz").is_file())
            .collect();
        cases.sort();
        assert!(
            cases.len() >= 15,
            "{test}: expected the model-file fixture set under {}, found {}",
            root.display(),
            cases.len()
        );
        let mut report = Report::new(test);
        for dir in &cases {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let r = (|| -> Result<f32, String> {
                let model = ["model.h5", "model.keras"]
                    .iter()
                    .map(|m| dir.join(m))
                    .find(|p| p.is_file());
                let file = match model {
                    Some(m) => KerasFile::open(&m),
                    // A config with a weights-only file (model.to_json() + save_weights).
                    None => {
                        KerasFile::open_with_weights(dir.join("model.json"), dir.join("weights.h5"))
                    }
                }
                .map_err(|e| e.to_string())?;
                let case: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(dir.join("case.json")).map_err(|e| e.to_string())?,
                )
                .map_err(|e| e.to_string())?;
                let names: Vec<String> = match case["layers"].as_array() {
                    Some(a) => a
                        .iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect(),
                    None => file.default_layers().map_err(|e| e.to_string())?,
                };
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                let chain = file.chain(&refs).map_err(|e| e.to_string())?;
                let x = npz::read_f32(&dir.join("x.npy")).map_err(|e| e.to_string())?;
                let mask = match opt(dir.join("mask.npy")) {
                    Some(p) => Some(npz::read_mask(&p).map_err(|e| e.to_string())?),
                    None => None,
                };
                let init = match opt(dir.join("initial_state.npz")) {
                    Some(p) => {
                        let mut m = npz::read_npz(&p).map_err(|e| e.to_string())?;
                        let mut v = Vec::new();
                        for n in chain.first().state_names() {
                            v.push(
                                m.remove(&n)
                                    .ok_or_else(|| format!("initial_state.npz lacks {n}"))?,
                            );
                        }
                        Some(v)
                    }
                    None => None,
                };
                let args = CallArgs {
                    mask: mask.as_ref().map(|m| m.view()),
                    initial_state: init.as_deref(),
                    constants: &[],
                };
                let out =
                    recurrent::cuda::forward_chain(&dev, &chain, StorageType::F32, x.view(), &args)
                        .map_err(|e| format!("gpu: {e}"))?;
                let want = npz::read_npz(&dir.join("out.npz")).map_err(|e| e.to_string())?;
                compare_named(&named(chain.last(), out)?, &want)
            })();
            report.add(&name, r);
        }
        report.finish();
    }
}
