//! Fused gate math and state updates for one step, on a chunk of units (or rows).
//!
//! Layout: `xp` `(batch, gates * units)` is the projected input of this step with the input
//! bias folded in, gate blocks contiguous in Keras order. `hu` `(batch, gates * len)` holds, for
//! the chunk of units `u0 .. u0 + len`, the recurrent product of each gate side by side; it is
//! overwritten with the gate values. Outputs are the chunk's columns of the new states.
//!
//! Each function runs on whole rows with contiguous slices so that the loops vectorise; on
//! x86-64 with AVX2 + FMA a copy compiled for those features is chosen at run time.

// The fused kernels take every operand of a step explicitly; bundling them into structs would
// only hide the data flow.
#![allow(clippy::too_many_arguments)]

use crate::activation::Activation;
use crate::cpu::math::apply;
use crate::{Error, Result};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// The rows of the chunk: `xp` row, chunk of `hu`, outputs.
fn slice<'a>(v: &'a ndarray::ArrayView1<'a, f32>, what: &str) -> Result<&'a [f32]> {
    v.as_slice()
        .ok_or_else(|| Error::invalid(what, "internal: a row is not contiguous"))
}

/// Row `b` of `v` (a buffer or a view) as a mutable slice.
fn row_mut<'a, S: ndarray::DataMut<Elem = f32>>(
    v: &'a mut ndarray::ArrayBase<S, ndarray::Ix2>,
    b: usize,
    what: &str,
) -> Result<&'a mut [f32]> {
    v.row_mut(b)
        .into_slice()
        .ok_or_else(|| Error::invalid(what, "internal: a row is not contiguous"))
}

/// The GRU update `h' = z h + (1 - z) n`.
#[inline(always)]
fn gru_blend(hn: &mut [f32], z: &[f32], hp: &[f32], cand: &[f32]) {
    for (((h, z), p), q) in hn.iter_mut().zip(z).zip(hp).zip(cand) {
        *h = z * p + (1.0 - z) * q;
    }
}

macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident / $avx:ident / $imp:ident ( $($arg:ident : $ty:ty),* $(,)? ) -> $ret:ty) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::is_x86_feature_detected as has;
                if has!("avx512f") && has!("avx2") && has!("fma") {
                    // SAFETY: the CPU supports AVX-512F, AVX2 and FMA, checked on the line
                    // above; the function has no other requirement.
                    return unsafe { $avx::avx512($($arg),*) };
                }
                if has!("avx2") && has!("fma") {
                    // SAFETY: the CPU supports AVX2 and FMA, checked on the line above; the
                    // function has no other requirement.
                    return unsafe { $avx::avx2($($arg),*) };
                }
            }
            $imp::<false>($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        mod $avx {
            use super::*;

            #[target_feature(enable = "avx2,fma")]
            pub(super) unsafe fn avx2($($arg: $ty),*) -> $ret {
                $imp::<true>($($arg),*)
            }

            #[target_feature(enable = "avx512f,avx2,fma")]
            pub(super) unsafe fn avx512($($arg: $ty),*) -> $ret {
                $imp::<true>($($arg),*)
            }
        }
    };
}

/// Parameters of one chunk.
#[derive(Clone, Copy)]
pub(crate) struct Chunk {
    /// First unit of the chunk.
    pub u0: usize,
    /// Units in the chunk.
    pub len: usize,
    /// Units of the layer (the width of one gate block of `xp`).
    pub units: usize,
}

#[inline(always)]
fn add_xp(z: &mut [f32], xp: &[f32], c: Chunk, gates: usize) {
    for g in 0..gates {
        let src = &xp[g * c.units + c.u0..g * c.units + c.u0 + c.len];
        for (a, b) in z[g * c.len..(g + 1) * c.len].iter_mut().zip(src) {
            *a += *b;
        }
    }
}

#[inline(always)]
fn lstm_impl<const F: bool>(
    xp: Option<ArrayView2<f32>>,
    hu: &mut Array2<f32>,
    c_prev: ArrayView2<f32>,
    mut h_out: ArrayViewMut2<f32>,
    mut c_out: ArrayViewMut2<f32>,
    act: Activation,
    rec: Activation,
    c: Chunk,
) -> Result<()> {
    let n = c.len;
    for b in 0..h_out.nrows() {
        let z = row_mut(hu, b, "hu")?;
        if let Some(xp) = &xp {
            let xr = xp.row(b);
            add_xp(z, slice(&xr, "xp")?, c, 4);
        }
        let (i, rest) = z.split_at_mut(n);
        let (f, rest) = rest.split_at_mut(n);
        let (g, o) = rest.split_at_mut(n);
        apply::<F>(rec, i);
        apply::<F>(rec, f);
        apply::<F>(act, g);
        apply::<F>(rec, o);
        let cp = c_prev.row(b);
        let cp = &slice(&cp, "c")?[c.u0..c.u0 + n];
        let cn = row_mut(&mut c_out, b, "c")?;
        let hn = row_mut(&mut h_out, b, "h")?;
        for j in 0..n {
            let v = f[j] * cp[j] + i[j] * g[j];
            cn[j] = v;
            hn[j] = v;
        }
        apply::<F>(act, hn);
        for (h, o) in hn.iter_mut().zip(o.iter()) {
            *h *= *o;
        }
    }
    Ok(())
}

multiversion! {
    /// LSTM, gates `[i | f | c | o]`: `i = rec(z_i)`, `f = rec(z_f)`, `g = act(z_c)`,
    /// `o = rec(z_o)`, `c' = f c + i g`, `h' = o act(c')` with `z = xp + hu` (`z = hu` without
    /// `xp`); one row per row of `h_out`.
    pub(crate) fn lstm / lstm_avx2 / lstm_impl(
        xp: Option<ArrayView2<f32>>, hu: &mut Array2<f32>, c_prev: ArrayView2<f32>,
        h_out: ArrayViewMut2<f32>, c_out: ArrayViewMut2<f32>, act: Activation, rec: Activation, c: Chunk,
    ) -> Result<()>
}

#[inline(always)]
fn gru_after_impl<const F: bool>(
    xp: ArrayView2<f32>,
    hu: &mut Array2<f32>,
    recurrent_bias: Option<&[f32]>,
    h_prev: ArrayView2<f32>,
    mut h_out: ArrayViewMut2<f32>,
    act: Activation,
    rec: Activation,
    c: Chunk,
) -> Result<()> {
    let n = c.len;
    for b in 0..xp.nrows() {
        let xr = xp.row(b);
        let xr = slice(&xr, "xp")?;
        let z = row_mut(hu, b, "hu")?;
        if let Some(rb) = recurrent_bias {
            add_xp(z, rb, c, 3);
        }
        // z, r take the input part now; the candidate keeps h U_h + c_h apart.
        add_xp(z, xr, c, 2);
        let (zg, rest) = z.split_at_mut(n);
        let (r, hh) = rest.split_at_mut(n);
        apply::<F>(rec, zg);
        apply::<F>(rec, r);
        let xh = &xr[2 * c.units + c.u0..2 * c.units + c.u0 + n];
        for j in 0..n {
            hh[j] = xh[j] + r[j] * hh[j];
        }
        apply::<F>(act, hh);
        let hp = h_prev.row(b);
        let hp = &slice(&hp, "h")?[c.u0..c.u0 + n];
        let hn = row_mut(&mut h_out, b, "h")?;
        gru_blend(&mut hn[..n], zg, hp, hh);
    }
    Ok(())
}

multiversion! {
    /// GRU with `reset_after = true`, gates `[z | r | h]`: `z = rec(xp_z + hu_z + c_z)`,
    /// `r = rec(xp_r + hu_r + c_r)`, `n = act(xp_h + r (hu_h + c_h))`, `h' = z h + (1 - z) n`.
    pub(crate) fn gru_after / gru_after_avx2 / gru_after_impl(
        xp: ArrayView2<f32>, hu: &mut Array2<f32>, recurrent_bias: Option<&[f32]>, h_prev: ArrayView2<f32>,
        h_out: ArrayViewMut2<f32>, act: Activation, rec: Activation, c: Chunk,
    ) -> Result<()>
}

#[inline(always)]
fn gru_before_gates_impl<const F: bool>(
    xp: ArrayView2<f32>,
    hu: &mut Array2<f32>,
    h_prev: ArrayView2<f32>,
    mut rh_out: ArrayViewMut2<f32>,
    rec: Activation,
    c: Chunk,
) -> Result<()> {
    let n = c.len;
    for b in 0..xp.nrows() {
        let xr = xp.row(b);
        let xr = slice(&xr, "xp")?;
        let z = row_mut(hu, b, "hu")?;
        add_xp(z, xr, c, 2);
        // Per gate: a row-wise `rec` normalises z and r separately.
        apply::<F>(rec, &mut z[..n]);
        apply::<F>(rec, &mut z[n..2 * n]);
        let hp = h_prev.row(b);
        let hp = &slice(&hp, "h")?[c.u0..c.u0 + n];
        let rh = row_mut(&mut rh_out, b, "rh")?;
        for j in 0..n {
            rh[j] = z[n + j] * hp[j];
        }
    }
    Ok(())
}

multiversion! {
    /// GRU with `reset_after = false`, first half: `z = rec(xp_z + hu_z)`,
    /// `r = rec(xp_r + hu_r)` (left in `hu`), and `r * h` into `rh_out`.
    pub(crate) fn gru_before_gates / gru_before_gates_avx2 / gru_before_gates_impl(
        xp: ArrayView2<f32>, hu: &mut Array2<f32>, h_prev: ArrayView2<f32>, rh_out: ArrayViewMut2<f32>,
        rec: Activation, c: Chunk,
    ) -> Result<()>
}

#[inline(always)]
fn gru_before_update_impl<const F: bool>(
    xp: ArrayView2<f32>,
    z: &Array2<f32>,
    rhu: &mut Array2<f32>,
    h_prev: ArrayView2<f32>,
    mut h_out: ArrayViewMut2<f32>,
    act: Activation,
    c: Chunk,
) -> Result<()> {
    let n = c.len;
    for b in 0..xp.nrows() {
        let xr = xp.row(b);
        let xr = slice(&xr, "xp")?;
        let zr = z.row(b);
        let zg = &slice(&zr, "z")?[..n];
        let q = row_mut(rhu, b, "rhu")?;
        let xh = &xr[2 * c.units + c.u0..2 * c.units + c.u0 + n];
        for j in 0..n {
            q[j] += xh[j];
        }
        apply::<F>(act, q);
        let hp = h_prev.row(b);
        let hp = &slice(&hp, "h")?[c.u0..c.u0 + n];
        let hn = row_mut(&mut h_out, b, "h")?;
        gru_blend(&mut hn[..n], zg, hp, q);
    }
    Ok(())
}

multiversion! {
    /// GRU with `reset_after = false`, second half: `n = act(xp_h + (r h) U_h)` with
    /// `rhu = (r h) U_h` for the chunk, `h' = z h + (1 - z) n`; `z` is the first `len` columns
    /// of the first half's gate buffer.
    pub(crate) fn gru_before_update / gru_before_update_avx2 / gru_before_update_impl(
        xp: ArrayView2<f32>, z: &Array2<f32>, rhu: &mut Array2<f32>, h_prev: ArrayView2<f32>,
        h_out: ArrayViewMut2<f32>, act: Activation, c: Chunk,
    ) -> Result<()>
}

#[inline(always)]
fn simple_impl<const F: bool>(
    xp: ArrayView2<f32>,
    hu: &mut Array2<f32>,
    mut h_out: ArrayViewMut2<f32>,
    act: Activation,
    c: Chunk,
) -> Result<()> {
    for b in 0..xp.nrows() {
        let xr = xp.row(b);
        let xr = slice(&xr, "xp")?;
        let z = row_mut(hu, b, "hu")?;
        add_xp(z, xr, c, 1);
        apply::<F>(act, z);
        let hn = row_mut(&mut h_out, b, "h")?;
        hn.copy_from_slice(z);
    }
    Ok(())
}

multiversion! {
    /// SimpleRNN: `h' = act(xp + hu)`.
    pub(crate) fn simple / simple_avx2 / simple_impl(
        xp: ArrayView2<f32>, hu: &mut Array2<f32>, h_out: ArrayViewMut2<f32>, act: Activation, c: Chunk,
    ) -> Result<()>
}

#[cfg(test)]
mod timing {
    use super::*;
    use ndarray::Array2;

    /// The LSTM gate pass alone (one copy of `hu` per call included). Measured 2026-11-23,
    /// batch 16 x 256 units, one core: sigmoid/tanh 15.8 us (3.9 ns per unit); one loop with
    /// all five activations inlined was slower (17.7 us: it runs out of AVX2 registers).
    #[test]
    #[ignore = "timing, run by hand with --release --ignored --nocapture"]
    fn time_lstm_gate_pass() {
        let (batch, units) = (16usize, 256usize);
        let c = Chunk {
            u0: 0,
            len: units,
            units,
        };
        let xp = Array2::from_shape_fn((batch, 4 * units), |(i, j)| {
            ((i * 7 + j) % 13) as f32 * 0.3 - 2.0
        });
        let hu0 = Array2::from_shape_fn((batch, 4 * units), |(i, j)| {
            ((i + j * 3) % 11) as f32 * 0.2 - 1.0
        });
        let cp = Array2::from_shape_fn((batch, units), |(i, j)| ((i + j) % 5) as f32 * 0.1);
        let mut h = Array2::zeros((batch, units));
        let mut cn = Array2::zeros((batch, units));
        for (name, rec) in [
            ("sigmoid", Activation::Sigmoid),
            ("hard_sigmoid", Activation::HardSigmoid),
        ] {
            let mut best = f64::INFINITY;
            for _ in 0..7 {
                let reps = 2000;
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    let mut hu = hu0.clone();
                    let (hv, cv) = (h.view_mut(), cn.view_mut());
                    lstm(
                        Some(xp.view()),
                        &mut hu,
                        cp.view(),
                        hv,
                        cv,
                        Activation::Tanh,
                        rec,
                        c,
                    )
                    .unwrap();
                }
                best = best.min(t.elapsed().as_secs_f64() / reps as f64);
            }
            println!(
                "lstm gates {name} {batch}x{units}: {:.2} us, {:.2} ns/unit",
                best * 1e6,
                best * 1e9 / (batch * units) as f64
            );
        }
    }
}
