//! Criterion benches: one forward pass of each layer at a small and a medium shape on the CPU,
//! and with `--features cuda` the same layers on the GPU at shapes of issue 4's set (f32 and
//! bf16 storage, the default path choice; wall time of the launches plus a synchronize). Without
//! a GPU the CUDA group prints `SKIPPED: ...` and measures nothing. `recurrent bench` prints the
//! full tables (CUDA-event timing); these are for `cargo bench` comparisons.

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array3;
use recurrent::config::{
    ConvLSTM2DConfig, GRUCellConfig, LSTMCellConfig, Padding, SequenceOptions, SimpleRNNCellConfig,
};
use recurrent::initializers::Initializer;
use recurrent::layers::{ConvLSTM2D, SimpleRNN, GRU, LSTM};
use std::hint::black_box;

fn input(shape: &[usize]) -> ndarray::ArrayD<f32> {
    Initializer::RandomUniform {
        minval: -1.0,
        maxval: 1.0,
        seed: Some(3),
    }
    .generate(shape, 0)
    .expect("input")
}

fn bench_layers(c: &mut Criterion) {
    let opts = SequenceOptions::default();
    for &(b, t, i, h) in &[(1usize, 100usize, 128usize, 128usize), (16, 100, 256, 256)] {
        let x: Array3<f32> = input(&[b, t, i]).into_dimensionality().expect("3-D");
        let mut lstm = LSTM::build(LSTMCellConfig::tf_keras(h), opts, i, 1).expect("lstm");
        c.bench_function(&format!("lstm_b{b}_t{t}_i{i}_h{h}"), |bn| {
            bn.iter(|| black_box(lstm.call(x.view()).expect("run")))
        });
        let mut gru = GRU::build(GRUCellConfig::tf_keras(h), opts, i, 1).expect("gru");
        c.bench_function(&format!("gru_b{b}_t{t}_i{i}_h{h}"), |bn| {
            bn.iter(|| black_box(gru.call(x.view()).expect("run")))
        });
        let mut gru_rb = GRU::build(GRUCellConfig::new(h), opts, i, 1).expect("gru");
        c.bench_function(&format!("gru_reset_before_b{b}_t{t}_i{i}_h{h}"), |bn| {
            bn.iter(|| black_box(gru_rb.call(x.view()).expect("run")))
        });
        let mut rnn = SimpleRNN::build(SimpleRNNCellConfig::new(h), opts, i, 1).expect("rnn");
        c.bench_function(&format!("simple_rnn_b{b}_t{t}_i{i}_h{h}"), |bn| {
            bn.iter(|| black_box(rnn.call(x.view()).expect("run")))
        });
    }
    let mut cfg = ConvLSTM2DConfig::new(32, (3, 3));
    cfg.padding = Padding::Same;
    let mut conv = ConvLSTM2D::build(cfg, 16, 1).expect("conv");
    let x = input(&[4, 10, 32, 32, 16]);
    c.bench_function("conv_lstm2d_b4_t10_16at32x32_f32_k3", |bn| {
        bn.iter(|| black_box(conv.call(x.view()).expect("run")))
    });
}

/// The GPU group: each layer uploaded once, the input on the device, one forward pass and a
/// synchronize per iteration.
#[cfg(feature = "cuda")]
fn bench_cuda(c: &mut Criterion) {
    use recurrent::cuda::{CudaDevice, CudaLayer};
    use recurrent::keras::StorageType;
    let dev = match CudaDevice::new(0) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIPPED: the CUDA benches need a GPU: {e}");
            return;
        }
    };
    let opts = SequenceOptions::default();
    for dt in [StorageType::F32, StorageType::BF16] {
        let n = dt.name();
        for &(b, t, i, h) in &[
            (1usize, 100usize, 512usize, 512usize),
            (256, 50, 1024, 1024),
        ] {
            let lstm = LSTM::build(LSTMCellConfig::tf_keras(h), opts, i, 1).expect("lstm");
            let gru = GRU::build(GRUCellConfig::tf_keras(h), opts, i, 1).expect("gru");
            let layers = [
                ("lstm", CudaLayer::lstm(&dev, &lstm)),
                ("gru", CudaLayer::gru(&dev, &gru)),
            ];
            let x = dev.upload_as(input(&[b, t, i]).view(), dt).expect("upload");
            for (name, layer) in layers {
                let mut g = layer.and_then(|l| l.into_dtype(dt)).expect("cuda layer");
                c.bench_function(&format!("cuda_{name}_{n}_b{b}_t{t}_i{i}_h{h}"), |bn| {
                    bn.iter(|| {
                        let out = g.forward_device(&x, None, None).expect("run");
                        dev.synchronize().expect("sync");
                        black_box(out)
                    })
                });
            }
        }
        let mut cfg = ConvLSTM2DConfig::new(64, (3, 3));
        cfg.padding = Padding::Same;
        let conv = ConvLSTM2D::build(cfg, 64, 1).expect("conv");
        let mut g = CudaLayer::conv_lstm2d(&dev, &conv)
            .and_then(|l| l.into_dtype(dt))
            .expect("cuda conv");
        let x = dev
            .upload_as(input(&[8, 10, 64, 64, 64]).view(), dt)
            .expect("upload");
        c.bench_function(
            &format!("cuda_conv_lstm2d_{n}_b8_t10_64at64x64_f64_k3"),
            |bn| {
                bn.iter(|| {
                    let out = g.forward_device(&x, None, None).expect("run");
                    dev.synchronize().expect("sync");
                    black_box(out)
                })
            },
        );
    }
}

#[cfg(not(feature = "cuda"))]
fn bench_cuda(_c: &mut Criterion) {}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench_layers, bench_cuda
}
criterion_main!(benches);
