//! The time loop shared by every layer: input projection for all steps, then per step the
//! cell's fused step, masks, and state carry-over.

use crate::cpu::gates::Chunk;
use crate::Result;
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, Axis, CowArray, Ix2};

/// Per-sequence working memory of a [`Stepper`]: the chunks one step is split into (one per
/// thread, or one when the step is too small to share) and their buffers.
pub(crate) struct Scratch {
    /// The chunks of one step (units for dense cells, rows for ConvLSTM2D).
    pub chunks: Vec<Chunk>,
    /// Buffers owned by each chunk.
    pub per_chunk: Vec<Vec<Array2<f32>>>,
    /// Buffers shared by all chunks.
    pub shared: Vec<Array2<f32>>,
}

/// Splits `units` into chunks for `threads` threads when one step does at least
/// `MIN_FLOPS_TO_SPLIT` work; chunk widths are multiples of `align` (16 for units, so that rows
/// stay SIMD-aligned; 1 for ConvLSTM2D's tile rows) and there are at least two per chunk.
pub(crate) fn plan_chunks(
    units: usize,
    threads: usize,
    step_flops: f64,
    align: usize,
) -> Vec<Chunk> {
    const MIN_FLOPS_TO_SPLIT: f64 = 1.0e5;
    let align = align.max(1);
    let n = if threads <= 1 || step_flops < MIN_FLOPS_TO_SPLIT || units < 2 * align {
        1
    } else {
        threads.min(units / align)
    };
    let per = units.div_ceil(n).div_ceil(align) * align;
    let mut v = Vec::new();
    let mut u0 = 0;
    while u0 < units {
        let len = per.min(units - u0);
        v.push(Chunk { u0, len, units });
        u0 += len;
    }
    if v.is_empty() {
        v.push(Chunk {
            u0: 0,
            len: 0,
            units,
        });
    }
    v
}

pub(crate) use crate::cpu::threads::for_each_task;

/// Splits `v` along `axis` by `chunks` (consecutive, from index 0) into disjoint views.
fn split_along<'a>(
    v: ArrayViewMut2<'a, f32>,
    axis: Axis,
    chunks: &[Chunk],
) -> Vec<ArrayViewMut2<'a, f32>> {
    let mut out = Vec::with_capacity(chunks.len());
    let mut rest = v;
    for c in chunks {
        let at = c.len.min(rest.len_of(axis));
        let (a, b) = rest.split_at(axis, at);
        out.push(a);
        rest = b;
    }
    out
}

/// Splits the columns of `v` by `chunks` (consecutive, from column 0) into disjoint views.
pub(crate) fn split_cols<'a>(
    v: ArrayViewMut2<'a, f32>,
    chunks: &[Chunk],
) -> Vec<ArrayViewMut2<'a, f32>> {
    split_along(v, Axis(1), chunks)
}

/// Splits the rows of `v` by `chunks` (consecutive, from row 0) into disjoint views.
pub(crate) fn split_rows<'a>(
    v: ArrayViewMut2<'a, f32>,
    chunks: &[Chunk],
) -> Vec<ArrayViewMut2<'a, f32>> {
    split_along(v, Axis(0), chunks)
}

/// Runs `f(chunk, its buffers, its columns of each of `outs`)` for every chunk of the
/// scratch (`chunks`, `per_chunk`): on the thread team when there are several chunks, directly
/// when there is one (no splitting, no allocation: at batch 1 and small sizes a step takes
/// about a microsecond and these add up).
pub(crate) fn for_each_chunk<const N: usize>(
    chunks: &[Chunk],
    per_chunk: &mut [Vec<Array2<f32>>],
    outs: [ArrayViewMut2<f32>; N],
    f: impl Fn(&Chunk, &mut Vec<Array2<f32>>, [ArrayViewMut2<f32>; N]) -> Result<()> + Sync,
) -> Result<()> {
    if let ([c], [bufs]) = (chunks, &mut *per_chunk) {
        return f(c, bufs, outs);
    }
    let mut parts: Vec<_> = outs
        .into_iter()
        .map(|o| split_cols(o, chunks).into_iter())
        .collect();
    let mut tasks = Vec::with_capacity(chunks.len());
    for (c, bufs) in chunks.iter().zip(per_chunk.iter_mut()) {
        let cols: Vec<ArrayViewMut2<f32>> = parts.iter_mut().filter_map(Iterator::next).collect();
        let cols: [ArrayViewMut2<f32>; N] = cols.try_into().map_err(|_| {
            crate::Error::invalid(
                "chunks",
                "internal: an output has fewer columns than the chunks",
            )
        })?;
        tasks.push((c, bufs, cols));
    }
    for_each_task(tasks, |(c, bufs, cols)| f(c, bufs, cols))
}

/// One cell as the time loop drives it. Widths are per batch row (flattened for ConvLSTM2D).
pub(crate) trait Stepper: Sync {
    /// Features of one input step.
    fn input_width(&self) -> usize;
    /// Width of each state, `h` first.
    fn state_widths(&self) -> Vec<usize>;
    /// Width of the output of one step.
    fn output_width(&self) -> usize;
    /// Projects the inputs of all steps at once: `x` `(steps * batch, input_width)` -> the
    /// `(steps * batch, width)` rows that [`Stepper::step`] reads, `batch` rows per step (a
    /// cell whose step reads its raw input, for this batch size, returns `x` itself, borrowed).
    fn project<'a>(
        &self,
        x: ArrayView2<'a, f32>,
        batch: usize,
        threads: usize,
    ) -> Result<CowArray<'a, f32, Ix2>>;
    /// Working memory for [`Stepper::step`], allocated once per sequence.
    fn scratch(&self, batch: usize, threads: usize) -> Scratch;
    /// One step for the whole batch: reads `xp` (this step's `batch` rows of what
    /// [`Stepper::project`] returned) and `states`, writes every element of `new_states` and
    /// `out`.
    fn step(
        &self,
        xp: ArrayView2<f32>,
        states: &[Array2<f32>],
        new_states: &mut [Array2<f32>],
        out: &mut Array2<f32>,
        scratch: &mut Scratch,
    ) -> Result<()>;
}

/// What one cell produced over a sequence.
pub(crate) struct SeqResult {
    /// Every step's output in processing order, `(time, batch, out)`, when asked for.
    pub outputs: Option<Array3<f32>>,
    /// The output of the last step (with masks: the last real step's, zeros if none).
    pub last: Array2<f32>,
    /// Final states.
    pub states: Vec<Array2<f32>>,
}

/// How masked steps fill the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MaskedOutput {
    /// Repeat the previous step's output (zeros before the first real step): Keras's default.
    RepeatPrevious,
    /// Zeros (`RNN(..., zero_output_for_mask=True)`).
    Zeros,
}

/// Runs one cell over `x` `(time, batch, features)` in processing order with `mask`
/// `(time, batch)` (true = real step) from `init`.
pub(crate) fn run(
    cell: &dyn Stepper,
    x: ArrayView3<f32>,
    mask: Option<ArrayView2<bool>>,
    init: Vec<Array2<f32>>,
    keep_outputs: bool,
    masked: MaskedOutput,
    threads: usize,
) -> Result<SeqResult> {
    let (t_len, batch, feat) = x.dim();
    let flat = x.as_standard_layout();
    let flat = flat
        .view()
        .into_shape_with_order((t_len * batch, feat))
        .map_err(|e| crate::Error::invalid("input", e.to_string()))?;
    let xp = cell.project(flat, batch, threads)?;
    let out_w = cell.output_width();
    let mut states = init;
    let mut new_states: Vec<Array2<f32>> = states.iter().map(|s| Array2::zeros(s.dim())).collect();
    let mut out = Array2::<f32>::zeros((batch, out_w));
    let mut prev_out = Array2::<f32>::zeros((batch, out_w));
    let mut scratch = cell.scratch(batch, threads);
    let mut outputs = if keep_outputs {
        Some(Array3::<f32>::zeros((t_len, batch, out_w)))
    } else {
        None
    };
    for t in 0..t_len {
        let xp_t = xp.slice(s![t * batch..(t + 1) * batch, ..]);
        cell.step(xp_t, &states, &mut new_states, &mut out, &mut scratch)?;
        if let Some(m) = mask {
            let m = m.row(t);
            for (b, &real) in m.iter().enumerate() {
                if !real {
                    for (ns, s) in new_states.iter_mut().zip(states.iter()) {
                        ns.row_mut(b).assign(&s.row(b));
                    }
                    match masked {
                        MaskedOutput::RepeatPrevious => out.row_mut(b).assign(&prev_out.row(b)),
                        MaskedOutput::Zeros => out.row_mut(b).fill(0.0),
                    }
                }
            }
        }
        std::mem::swap(&mut states, &mut new_states);
        if let Some(o) = outputs.as_mut() {
            o.index_axis_mut(Axis(0), t).assign(&out);
        }
        std::mem::swap(&mut prev_out, &mut out);
    }
    Ok(SeqResult {
        outputs,
        last: prev_out,
        states,
    })
}

/// Runs a stack of cells: cell `k + 1` reads cell `k`'s outputs at the same step. Returns the
/// last cell's outputs and every cell's final states.
pub(crate) fn run_stack(
    cells: &[&dyn Stepper],
    x: ArrayView3<f32>,
    mask: Option<ArrayView2<bool>>,
    init: Vec<Vec<Array2<f32>>>,
    keep_outputs: bool,
    masked: MaskedOutput,
) -> Result<(SeqResult, Vec<Vec<Array2<f32>>>)> {
    let threads = crate::cpu::threads::num_threads();
    crate::cpu::threads::with_team(threads, || {
        run_stack_in_pool(cells, x, mask, init, keep_outputs, masked, threads)
    })
}

fn run_stack_in_pool(
    cells: &[&dyn Stepper],
    x: ArrayView3<f32>,
    mask: Option<ArrayView2<bool>>,
    init: Vec<Vec<Array2<f32>>>,
    keep_outputs: bool,
    masked: MaskedOutput,
    threads: usize,
) -> Result<(SeqResult, Vec<Vec<Array2<f32>>>)> {
    let mut all_states = Vec::with_capacity(cells.len());
    let mut current: Option<Array3<f32>> = None;
    let n = cells.len();
    let mut last = None;
    for (k, (cell, init)) in cells.iter().zip(init).enumerate() {
        let keep = keep_outputs || k + 1 < n;
        let input = match current.as_ref() {
            Some(c) => c.view(),
            None => x,
        };
        let r = run(*cell, input, mask, init, keep, masked, threads)?;
        all_states.push(r.states);
        current = r.outputs;
        last = Some(r.last);
    }
    let last =
        last.ok_or_else(|| crate::Error::invalid("cells", "a stack needs at least one cell"))?;
    Ok((
        SeqResult {
            outputs: current,
            last,
            states: Vec::new(),
        },
        all_states,
    ))
}

/// `(batch, time, f)` -> `(time, batch, f)`, reversed in time when `reverse`.
pub(crate) fn to_time_major(x: ArrayView3<f32>, batch_major: bool, reverse: bool) -> Array3<f32> {
    let mut v = if batch_major {
        x.permuted_axes([1, 0, 2])
    } else {
        x
    };
    if reverse {
        v.invert_axis(Axis(0));
    }
    v.as_standard_layout().into_owned()
}

/// Mask `(batch, time)` -> `(time, batch)`, reversed in time when `reverse`.
pub(crate) fn mask_to_time_major(m: ArrayView2<bool>, reverse: bool) -> Array2<bool> {
    let mut v = m.t();
    if reverse {
        v.invert_axis(Axis(0));
    }
    v.as_standard_layout().into_owned()
}
