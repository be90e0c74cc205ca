//! Fused gate math and state updates, one pass over a step's gate buffer.
//!
//! Every function works on row-major `(rows, gates * units)` buffers where `rows` is the batch
//! (or batch x pixels for ConvLSTM2D) and gate blocks are contiguous, in Keras order.

use crate::activation::Activation;
use ndarray::{ArrayView2, ArrayViewMut2};

/// LSTM, gates `[i | f | c | o]`: `z = xp + hu` (biases already folded in),
/// `i = rec(z_i)`, `f = rec(z_f)`, `g = act(z_c)`, `o = rec(z_o)`, `c' = f c + i g`,
/// `h' = o act(c')`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lstm(
    xp: ArrayView2<f32>,
    hu: ArrayView2<f32>,
    c_prev: ArrayView2<f32>,
    mut h_out: ArrayViewMut2<f32>,
    mut c_out: ArrayViewMut2<f32>,
    act: Activation,
    rec: Activation,
    units: usize,
) {
    for r in 0..xp.nrows() {
        let xp = xp.row(r);
        let hu = hu.row(r);
        let cp = c_prev.row(r);
        let mut h = h_out.row_mut(r);
        let mut c = c_out.row_mut(r);
        for j in 0..units {
            let i = rec.apply(xp[j] + hu[j]);
            let f = rec.apply(xp[units + j] + hu[units + j]);
            let g = act.apply(xp[2 * units + j] + hu[2 * units + j]);
            let o = rec.apply(xp[3 * units + j] + hu[3 * units + j]);
            let cn = f * cp[j] + i * g;
            c[j] = cn;
            h[j] = o * act.apply(cn);
        }
    }
}

/// GRU with `reset_after = true`, gates `[z | r | h]`: `xp = x W + b_in`, `hu = h U + b_rec`,
/// `z = rec(xp_z + hu_z)`, `r = rec(xp_r + hu_r)`, `n = act(xp_h + r hu_h)`,
/// `h' = z h + (1 - z) n`.
pub(crate) fn gru_reset_after(
    xp: ArrayView2<f32>,
    hu: ArrayView2<f32>,
    h_prev: ArrayView2<f32>,
    mut h_out: ArrayViewMut2<f32>,
    act: Activation,
    rec: Activation,
    units: usize,
) {
    for r in 0..xp.nrows() {
        let xp = xp.row(r);
        let hu = hu.row(r);
        let hp = h_prev.row(r);
        let mut h = h_out.row_mut(r);
        for j in 0..units {
            let z = rec.apply(xp[j] + hu[j]);
            let rr = rec.apply(xp[units + j] + hu[units + j]);
            let n = act.apply(xp[2 * units + j] + rr * hu[2 * units + j]);
            h[j] = z * hp[j] + (1.0 - z) * n;
        }
    }
}

/// GRU with `reset_after = false`, first half: `z`, `r` from `xp` and `hzr = h U[:, :2u]`;
/// writes `z` into `z_out` and `r * h` into `rh_out`.
pub(crate) fn gru_reset_before_gates(
    xp: ArrayView2<f32>,
    hzr: ArrayView2<f32>,
    h_prev: ArrayView2<f32>,
    mut z_out: ArrayViewMut2<f32>,
    mut rh_out: ArrayViewMut2<f32>,
    rec: Activation,
    units: usize,
) {
    for r in 0..xp.nrows() {
        let xp = xp.row(r);
        let hzr = hzr.row(r);
        let hp = h_prev.row(r);
        let mut z = z_out.row_mut(r);
        let mut rh = rh_out.row_mut(r);
        for j in 0..units {
            z[j] = rec.apply(xp[j] + hzr[j]);
            let rr = rec.apply(xp[units + j] + hzr[units + j]);
            rh[j] = rr * hp[j];
        }
    }
}

/// GRU with `reset_after = false`, second half: `n = act(xp_h + (r h) U_h)`,
/// `h' = z h + (1 - z) n`.
pub(crate) fn gru_reset_before_update(
    xp: ArrayView2<f32>,
    rhu: ArrayView2<f32>,
    z: ArrayView2<f32>,
    h_prev: ArrayView2<f32>,
    mut h_out: ArrayViewMut2<f32>,
    act: Activation,
    units: usize,
) {
    for r in 0..xp.nrows() {
        let xp = xp.row(r);
        let rhu = rhu.row(r);
        let z = z.row(r);
        let hp = h_prev.row(r);
        let mut h = h_out.row_mut(r);
        for j in 0..units {
            let n = act.apply(xp[2 * units + j] + rhu[j]);
            h[j] = z[j] * hp[j] + (1.0 - z[j]) * n;
        }
    }
}

/// SimpleRNN: `h' = act(xp + hu)`.
pub(crate) fn simple(xp: ArrayView2<f32>, hu: ArrayView2<f32>, mut h_out: ArrayViewMut2<f32>, act: Activation) {
    ndarray::Zip::from(&mut h_out)
        .and(&xp)
        .and(&hu)
        .for_each(|h, &x, &u| *h = act.apply(x + u));
}
