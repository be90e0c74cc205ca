//! Weight layouts and conversions between Keras's plain layers and its CuDNN layers.
//!
//! Keras's `CuDNNLSTM` / `CuDNNGRU` keep Keras's gate order (`[i | f | c | o]`, `[z | r | h]`)
//! and shapes (`kernel (in, g*u)`, `recurrent_kernel (u, g*u)`) but hand each gate's slice
//! `kernel[:, j*u:(j+1)*u]` to cuDNN flattened row-major and untransposed; cuDNN reads that
//! buffer as its own row-major `W[u, in]`. So per gate the plain kernel is
//! `K.reshape(-1).reshape(u, in).T` and the plain recurrent kernel is `R_j.T`. Biases: CuDNN
//! keeps input and recurrent biases apart (`(8u,)` / `(6u,)`, input first); the plain LSTM bias
//! is their sum, the plain reset-after GRU bias is the `(2, 3u)` stack. These are the exact
//! conversions Keras's `load_weights` applies between the two kinds of layer.

use crate::layers::cells::check_shape;
use crate::{Error, Result};
use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2};

/// Applies `f` to each of the `gates` column blocks of `m` (each `(rows, u)`), gathering the
/// results (each `(rows, u)`) side by side.
fn per_gate(
    m: ArrayView2<f32>,
    gates: usize,
    f: impl Fn(ArrayView2<f32>) -> Result<Array2<f32>>,
) -> Result<Array2<f32>> {
    let u = m.ncols() / gates;
    let mut out = Array2::zeros(m.dim());
    for j in 0..gates {
        let block = f(m.slice(s![.., j * u..(j + 1) * u]))?;
        out.slice_mut(s![.., j * u..(j + 1) * u]).assign(&block);
    }
    Ok(out)
}

/// Reinterprets the row-major buffer of `a` `(r, c)` as `(c, r)` and transposes it, giving
/// `(r, c)` again (cuDNN's `W[u, in]` read back into Keras's `(in, u)`).
fn reinterpret_t(a: ArrayView2<f32>) -> Result<Array2<f32>> {
    let (r, c) = a.dim();
    let flat: Vec<f32> = a.iter().copied().collect();
    let v = Array2::from_shape_vec((c, r), flat)
        .map_err(|e| Error::invalid("kernel", e.to_string()))?;
    Ok(v.t().to_owned())
}

/// Inverse of [`reinterpret_t`]: writes `a.T`'s row-major buffer into shape `(r, c)`.
fn reinterpret_t_inv(a: ArrayView2<f32>) -> Result<Array2<f32>> {
    let (r, c) = a.dim();
    let flat: Vec<f32> = a.t().iter().copied().collect();
    Array2::from_shape_vec((r, c), flat).map_err(|e| Error::invalid("kernel", e.to_string()))
}

fn check_gates(
    what: &str,
    m: ArrayView2<f32>,
    rows: Option<usize>,
    gates: usize,
    units: usize,
) -> Result<()> {
    let r = rows.unwrap_or(m.nrows());
    check_shape(what, m.shape(), &[r, gates * units])
}

/// CuDNN layer `kernel (in, gates*units)` -> plain layer `kernel (in, gates*units)`.
pub fn cudnn_kernel_to_plain(
    kernel: ArrayView2<f32>,
    gates: usize,
    units: usize,
) -> Result<Array2<f32>> {
    check_gates("kernel", kernel, None, gates, units)?;
    per_gate(kernel, gates, reinterpret_t)
}

/// Plain layer `kernel` -> CuDNN layer `kernel` (inverse of [`cudnn_kernel_to_plain`]).
pub fn plain_kernel_to_cudnn(
    kernel: ArrayView2<f32>,
    gates: usize,
    units: usize,
) -> Result<Array2<f32>> {
    check_gates("kernel", kernel, None, gates, units)?;
    per_gate(kernel, gates, reinterpret_t_inv)
}

/// CuDNN `recurrent_kernel (units, gates*units)` <-> plain: each gate block transposed (its own
/// inverse).
pub fn transpose_recurrent_gates(
    recurrent: ArrayView2<f32>,
    gates: usize,
    units: usize,
) -> Result<Array2<f32>> {
    check_gates("recurrent_kernel", recurrent, Some(units), gates, units)?;
    per_gate(recurrent, gates, |b| Ok(b.t().to_owned()))
}

/// `CuDNNLSTM` bias `(8u,)` -> `LSTM` bias `(4u,)`: input + recurrent.
pub fn cudnn_lstm_bias_to_plain(bias: ArrayView1<f32>, units: usize) -> Result<Array1<f32>> {
    check_shape("bias", bias.shape(), &[8 * units])?;
    Ok(&bias.slice(s![..4 * units]) + &bias.slice(s![4 * units..]))
}

/// `LSTM` bias `(4u,)` -> `CuDNNLSTM` bias `(8u,)`: half to each, as Keras does.
pub fn plain_lstm_bias_to_cudnn(bias: ArrayView1<f32>, units: usize) -> Result<Array1<f32>> {
    check_shape("bias", bias.shape(), &[4 * units])?;
    let half = bias.mapv(|v| 0.5 * v);
    ndarray::concatenate(ndarray::Axis(0), &[half.view(), half.view()])
        .map_err(|e| Error::invalid("bias", e.to_string()))
}

/// `CuDNNGRU` bias `(6u,)` -> `GRU(reset_after=True)` bias `(2, 3u)`.
pub fn cudnn_gru_bias_to_plain(bias: ArrayView1<f32>, units: usize) -> Result<Array2<f32>> {
    check_shape("bias", bias.shape(), &[6 * units])?;
    bias.to_owned()
        .into_shape_with_order((2, 3 * units))
        .map_err(|e| Error::invalid("bias", e.to_string()))
}

/// `GRU(reset_after=True)` bias `(2, 3u)` -> `CuDNNGRU` bias `(6u,)`.
pub fn plain_gru_bias_to_cudnn(bias: ArrayView2<f32>, units: usize) -> Result<Array1<f32>> {
    check_shape("bias", bias.shape(), &[2, 3 * units])?;
    Ok(bias.iter().copied().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    #[test]
    fn kernel_conversion_round_trips_and_is_not_a_plain_transpose() {
        let k = Array::from_shape_fn((3, 8), |(i, j)| (i * 8 + j) as f32);
        let p = cudnn_kernel_to_plain(k.view(), 4, 2).unwrap();
        assert_ne!(p, k);
        // Gate 0 of `k` is [[0,1],[8,9],[16,17]] -> buffer 0,1,8,9,16,17 read as (2,3):
        // [[0,1,8],[9,16,17]], transposed: [[0,9],[1,16],[8,17]].
        assert_eq!(
            p.slice(s![.., 0..2]),
            ndarray::arr2(&[[0.0, 9.0], [1.0, 16.0], [8.0, 17.0]])
        );
        assert_eq!(plain_kernel_to_cudnn(p.view(), 4, 2).unwrap(), k);
    }

    #[test]
    fn lstm_bias_sum_and_split() {
        let b = Array1::from_iter((0..8).map(|v| v as f32));
        let p = cudnn_lstm_bias_to_plain(b.view(), 1).unwrap();
        assert_eq!(p.to_vec(), vec![4.0, 6.0, 8.0, 10.0]);
        let back = plain_lstm_bias_to_cudnn(p.view(), 1).unwrap();
        assert_eq!(cudnn_lstm_bias_to_plain(back.view(), 1).unwrap(), p);
    }
}
