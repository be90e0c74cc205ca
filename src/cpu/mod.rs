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
pub(crate) mod gemm;
pub(crate) mod math;
pub(crate) mod packed;
pub(crate) mod sequence;
mod threads;

pub use threads::{num_threads, set_num_threads};

use crate::Result;
use ndarray::{Array1, Array2, ArrayView2, Axis};

/// `a · b + bias` (bias broadcast over rows) as a new array, on `threads` threads.
pub(crate) fn affine(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    bias: Option<&Array1<f32>>,
    threads: usize,
) -> Result<Array2<f32>> {
    let mut out = Array2::zeros((a.nrows(), b.ncols()));
    if let Some(bias) = bias {
        out.assign(&bias.view().insert_axis(Axis(0)));
    }
    gemm::gemm(a, b, out.view_mut(), bias.is_some(), threads)?;
    Ok(out)
}
