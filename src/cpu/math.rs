//! Vectorisable activations: branch-free `exp`, `sigmoid` and `tanh` in f32 that LLVM turns
//! into SIMD loops (the standard library's `expf` / `tanhf` are scalar calls).
//!
//! Accuracy: `exp` has a relative error below 2 ulp on `[-87, 88]` (Cephes' polynomial);
//! `sigmoid` and `tanh` are within 2e-7 absolute of the exact values (tested below). Inputs
//! beyond the clamp range saturate exactly as the exact functions do in f32.

use crate::activation::Activation;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// `1.5 * 2^23`: adding it rounds an f32 of magnitude below 2^22 to an integer, which then
/// sits in the low mantissa bits (no float-to-int conversion, so the loop stays SIMD).
const MAGIC: f32 = 12_582_912.0;
const MAGIC_BITS: u32 = 0x4B40_0000;

/// `a * b + c`, fused when `F` (the caller is compiled with FMA), else two roundings (a
/// `mul_add` without hardware FMA is a slow library call).
#[inline(always)]
fn madd<const F: bool>(a: f32, b: f32, c: f32) -> f32 {
    if F {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `exp(x)` for `x` clamped to `[-87.3, 88.0]`.
#[inline(always)]
pub(crate) fn exp<const F: bool>(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.0);
    let t = madd::<F>(x, LOG2E, MAGIC);
    let n = t - MAGIC;
    let r = madd::<F>(-n, LN2_LO, madd::<F>(-n, LN2_HI, x));
    let mut p = 1.987_569_1e-4f32;
    p = madd::<F>(p, r, 1.398_199_9e-3);
    p = madd::<F>(p, r, 8.333_452e-3);
    p = madd::<F>(p, r, 4.166_579_6e-2);
    p = madd::<F>(p, r, 1.666_666_5e-1);
    p = madd::<F>(p, r, 5.0e-1);
    let e = madd::<F>(p, r * r, r) + 1.0;
    let bits = t.to_bits().wrapping_sub(MAGIC_BITS).wrapping_add(127) << 23;
    e * f32::from_bits(bits)
}

/// `1 / (1 + exp(-x))`.
#[inline(always)]
pub(crate) fn sigmoid<const F: bool>(x: f32) -> f32 {
    1.0 / (1.0 + exp::<F>(-x))
}

/// `tanh(x)`: an odd Taylor polynomial near 0, `(1 - e) / (1 + e)` with `e = exp(-2|x|)`
/// elsewhere.
#[inline(always)]
pub(crate) fn tanh<const F: bool>(x: f32) -> f32 {
    let a = x.abs();
    let e = exp::<F>(-2.0 * a);
    let big = (1.0 - e) / (1.0 + e);
    let x2 = x * x;
    let small = a + a
        * x2
        * (-0.333_333_34
            + x2 * (0.133_333_34
                + x2 * (-0.053_968_254 + x2 * (0.021_869_488 - x2 * 0.008_863_236))));
    let y = if a < 0.3 { small } else { big };
    y.copysign(x)
}

/// Applies `act` to every element, in place: the whole loop per activation, so it vectorises.
/// A row-wise activation (`softmax`, `log_softmax`) takes `xs` as one row: callers pass one
/// gate's whole row of units.
#[inline(always)]
pub(crate) fn apply<const F: bool>(act: Activation, xs: &mut [f32]) {
    match act {
        Activation::Linear => {}
        Activation::Softmax | Activation::LogSoftmax => act.apply_slice(xs),
        Activation::Tanh => xs.iter_mut().for_each(|x| *x = tanh::<F>(*x)),
        Activation::Sigmoid => xs.iter_mut().for_each(|x| *x = sigmoid::<F>(*x)),
        Activation::HardSigmoid => xs
            .iter_mut()
            .for_each(|x| *x = (0.2 * *x + 0.5).clamp(0.0, 1.0)),
        // Not x.max(0.0): that maps NaN to 0, Keras's relu keeps it.
        Activation::Relu => xs
            .iter_mut()
            .for_each(|x| *x = if *x < 0.0 { 0.0 } else { *x }),
        Activation::Softsign => xs.iter_mut().for_each(|x| *x /= 1.0 + x.abs()),
        Activation::Swish => xs.iter_mut().for_each(|x| *x *= sigmoid::<F>(*x)),
        other => xs.iter_mut().for_each(|x| *x = other.apply(*x)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_activation_keeps_nan_as_keras_does() {
        for &name in crate::activation::ACTIVATION_NAMES {
            let act = Activation::from_name("activation", name).expect("listed name");
            assert!(act.apply(f32::NAN).is_nan(), "{name} (exact)");
            for fast in [false, true] {
                let mut v = [f32::NAN, -1.0];
                if fast {
                    apply::<true>(act, &mut v);
                } else {
                    apply::<false>(act, &mut v);
                }
                assert!(v[0].is_nan(), "{name} (vectorised, fma {fast})");
            }
        }
    }

    #[test]
    fn fast_activations_are_within_2e_7_of_the_exact_ones() {
        check::<false>();
        check::<true>();
    }

    /// `F = true` uses `mul_add` (a library call where the CPU has no FMA: slow, still exact).
    fn check<const F: bool>() {
        let mut worst = (0.0f64, 0.0f64, 0.0f64);
        let mut x = -30.0f32;
        while x < 30.0 {
            let xd = f64::from(x);
            let s = 1.0 / (1.0 + (-xd).exp());
            worst.0 = worst.0.max((f64::from(sigmoid::<F>(x)) - s).abs());
            worst.1 = worst.1.max((f64::from(tanh::<F>(x)) - xd.tanh()).abs());
            if x.abs() < 80.0 {
                worst.2 = worst
                    .2
                    .max(((f64::from(exp::<F>(x)) - xd.exp()) / xd.exp()).abs());
            }
            x += 0.000_731;
        }
        assert!(worst.0 < 2e-7, "sigmoid {worst:?}");
        assert!(worst.1 < 2e-7, "tanh {worst:?}");
        assert!(worst.2 < 3e-7, "exp relative {worst:?}");
        assert!(sigmoid::<F>(-200.0) < 1e-37 && sigmoid::<F>(200.0) == 1.0);
        assert_eq!(tanh::<F>(50.0), 1.0);
        assert_eq!(tanh::<F>(-50.0), -1.0);
        assert!(tanh::<F>(f32::NAN).is_nan() && sigmoid::<F>(f32::NAN).is_nan());
    }
}
