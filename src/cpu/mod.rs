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
pub(crate) mod winograd;

pub use threads::{num_threads, set_num_threads};

use crate::Result;
use ndarray::{Array1, Array2, ArrayView2};

/// `a · b + bias` (bias broadcast over rows) as a new array, with `b` packed once per layer;
/// rows split over `threads`.
pub(crate) fn affine(
    a: ArrayView2<f32>,
    b: &packed::PackedMatrix,
    bias: Option<&Array1<f32>>,
    threads: usize,
) -> Result<Array2<f32>> {
    let (m, n) = (a.nrows(), b.ncols());
    let mut out = Array2::zeros((m, n));
    let flops = 2.0 * (m * a.ncols() * n) as f64;
    // One block of rows per thread (multiples of 8, the kernel's row block) when the product
    // is worth sharing.
    let parts_n = if flops < 1.0e6 {
        1
    } else {
        threads.clamp(1, m.div_ceil(8).max(1))
    };
    let per = m.div_ceil(parts_n).div_ceil(8) * 8;
    let mut rows: Vec<gates::Chunk> = Vec::new();
    let mut r0 = 0;
    while r0 < m {
        let len = per.min(m - r0);
        rows.push(gates::Chunk {
            u0: r0,
            len,
            units: m,
        });
        r0 += len;
    }
    let parts = sequence::split_rows(out.view_mut(), &rows);
    let tasks: Vec<_> = rows.iter().zip(parts).collect();
    let bias = match bias {
        Some(v) => Some(
            v.as_slice()
                .ok_or_else(|| crate::Error::invalid("bias", "internal: not contiguous"))?,
        ),
        None => None,
    };
    sequence::for_each_task(tasks, |(c, part)| {
        let init = bias.map_or(packed::Init::Zero, packed::Init::Bias);
        b.matmul_cols_init(a.slice(ndarray::s![c.u0..c.u0 + c.len, ..]), 0, part, init)
    })?;
    Ok(out)
}
