//! Criterion benches of the CPU path: one forward pass of each layer at a small and a medium
//! shape. `recurrent bench` prints the full table; these are for `cargo bench` comparisons.

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

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench_layers
}
criterion_main!(benches);
