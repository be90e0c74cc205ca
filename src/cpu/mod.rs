//! The CPU path: the reference that every GPU kernel is checked against, and the production
//! fallback where there is no GPU.
//!
//! Structure of every built-in layer here: one GEMM projects the inputs of all time steps at
//! once (`x W + b`), then each step runs one recurrent GEMM (`h U`, two for a reset-before GRU)
//! into a preallocated buffer followed by one fused pass of gate math and state update. Masks
//! are applied after the step by restoring the masked rows. Stacks of cells run cell by cell
//! over the whole sequence, which is exact because a mask applies to every cell of a stack at
//! the same step.

pub(crate) mod conv;
pub(crate) mod gates;
pub(crate) mod sequence;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis};

/// `c = a · b` (overwriting `c`).
#[inline]
pub(crate) fn matmul_into(a: ArrayView2<f32>, b: ArrayView2<f32>, c: &mut ArrayViewMut2<f32>) {
    general_mat_mul(1.0, &a, &b, 0.0, c);
}

/// `a · b + bias` (bias broadcast over rows) as a new array.
pub(crate) fn affine(a: ArrayView2<f32>, b: ArrayView2<f32>, bias: Option<&Array1<f32>>) -> Array2<f32> {
    let mut out = match bias {
        Some(bias) => bias
            .view()
            .insert_axis(Axis(0))
            .broadcast((a.nrows(), b.ncols()))
            .map(|v| v.to_owned())
            .unwrap_or_else(|| Array2::zeros((a.nrows(), b.ncols()))),
        None => Array2::zeros((a.nrows(), b.ncols())),
    };
    general_mat_mul(1.0, &a, &b, if bias.is_some() { 1.0 } else { 0.0 }, &mut out);
    out
}
