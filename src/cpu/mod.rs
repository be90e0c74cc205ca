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

/// `a · b + bias` (bias broadcast over rows) as a new array, with `b` packed once per layer
/// (`plain` is `b` unpacked, for CPUs without the packed kernel); rows split over `threads`.
pub(crate) fn affine(
    a: ArrayView2<f32>,
    b: &packed::PackedMatrix,
    plain: ArrayView2<f32>,
    bias: Option<&Array1<f32>>,
    threads: usize,
) -> Result<Array2<f32>> {
    let (m, n) = (a.nrows(), plain.ncols());
    let mut out = Array2::zeros((m, n));
    let flops = 2.0 * (m * a.ncols() * n) as f64;
    // Row blocks of at least 64 rows, one per thread when the product is large enough.
    let chunks = sequence::plan_chunks(m.div_ceil(64), threads, flops);
    let rows: Vec<gates::Chunk> = chunks
        .iter()
        .map(|c| {
            let r0 = (c.u0 * 64).min(m);
            let r1 = ((c.u0 + c.len) * 64).min(m);
            gates::Chunk {
                u0: r0,
                len: r1 - r0,
                units: m,
            }
        })
        .collect();
    let parts = sequence::split_rows(out.view_mut(), &rows);
    let tasks: Vec<_> = rows.iter().zip(parts).collect();
    sequence::for_each_task(tasks, |(c, mut part)| {
        b.matmul_cols(
            a.slice(ndarray::s![c.u0..c.u0 + c.len, ..]),
            0,
            part.view_mut(),
            plain,
        )?;
        if let Some(bias) = bias {
            part += &bias.view().insert_axis(Axis(0));
        }
        Ok(())
    })?;
    Ok(out)
}
