//! Recurrent weights packed once per layer, and the product `a · B` on them.
//!
//! The recurrent product `h U` runs once per time step with the same `U`: a general GEMM
//! (which repacks its right operand on every call) spends a large share of each step
//! re-reading and re-laying out `U`. Here each gate block of `U` `(k, n)` is packed once into
//! panels of 16 columns (zero-padded), and the panels into groups of [`GROUP`] side by side:
//! row `kk` of panel `v` of a group is at `(kk * GROUP + v) * 16` in that group (the last group
//! padded with zero panels). A kernel call spans whole groups where it can, so it reads one
//! sequential stream of 256 bytes per `kk` and group instead of one stream per panel `k * 64`
//! bytes apart: at batch 1 the product is bound by the L2 bandwidth, and the prefetchers keep
//! up with a few long streams better than with eight (one core, `m = 1, k = 128, n = 512`: 45
//! -> 52 GFLOP/s). On x86-64 with AVX-512F the product runs in a register-blocked kernel (rows
//! x panels of accumulators, one broadcast of `a` per row and `k`); elsewhere it falls back to
//! the `gemm` crate on the unpacked matrix.

use crate::cpu::gemm::gemm;
use crate::{Error, Result};
use ndarray::{ArrayView2, ArrayViewMut2};

const LANES: usize = 16;
/// Panels per group.
const GROUP: usize = 4;

/// Offset of row 0 of panel `p` in a packing of `k` rows.
fn panel_offset(p: usize, k: usize) -> usize {
    (p / GROUP) * GROUP * k * LANES + (p % GROUP) * LANES
}

/// What the product starts from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Init<'a> {
    /// `c = a · B`.
    Zero,
    /// `c = bias + a · B`, `bias` one value per column of `c`, added to every row.
    Bias(&'a [f32]),
    /// `c += a · B`.
    Accumulate,
}

/// One `(k, n)` matrix packed into 16-column panels, or, where the packed kernel cannot run
/// (no AVX-512F), kept row-major for the `gemm` crate.
#[derive(Debug, Clone, Default)]
pub(crate) struct PackedMatrix {
    k: usize,
    n: usize,
    /// The panels, or the row-major matrix when `row_major`.
    data: Vec<f32>,
    row_major: bool,
}

impl PackedMatrix {
    /// Packs `b` `(k, n)`.
    pub(crate) fn pack(b: ArrayView2<f32>) -> Self {
        let (k, n) = b.dim();
        if !avx512_available() {
            return PackedMatrix {
                k,
                n,
                data: b.iter().copied().collect(),
                row_major: true,
            };
        }
        let np = n.div_ceil(LANES);
        let mut panels = vec![0.0f32; np.div_ceil(GROUP) * GROUP * k * LANES];
        for p in 0..np {
            let base = panel_offset(p, k);
            for kk in 0..k {
                for l in 0..LANES {
                    let col = p * LANES + l;
                    if col < n {
                        panels[base + kk * GROUP * LANES + l] = b[[kk, col]];
                    }
                }
            }
        }
        PackedMatrix {
            k,
            n,
            data: panels,
            row_major: false,
        }
    }

    /// Columns of the matrix.
    pub(crate) fn ncols(&self) -> usize {
        self.n
    }

    /// `c = a · B[:, n0 .. n0 + c.ncols()]`, where `n0` is a multiple of 16. `a` is
    /// `(m, k)`; `c` is `(m, len)`, any row stride.
    pub(crate) fn matmul_cols(
        &self,
        a: ArrayView2<f32>,
        n0: usize,
        c: ArrayViewMut2<f32>,
    ) -> Result<()> {
        self.matmul_cols_init(a, n0, c, Init::Zero)
    }

    /// [`PackedMatrix::matmul_cols`] starting from `init` (a bias or the old `c`), which the
    /// kernel loads into its accumulators: no second pass over `c`.
    pub(crate) fn matmul_cols_init(
        &self,
        a: ArrayView2<f32>,
        n0: usize,
        mut c: ArrayViewMut2<f32>,
        init: Init,
    ) -> Result<()> {
        let (m, k) = a.dim();
        let len = c.ncols();
        if k != self.k
            || c.nrows() != m
            || n0 + len > self.n
            || !n0.is_multiple_of(LANES)
            || matches!(init, Init::Bias(b) if b.len() != len)
        {
            return Err(Error::invalid(
                "packed matmul",
                format!(
                    "internal: a {:?}, B ({}, {}), columns {n0}..{}",
                    a.dim(),
                    self.k,
                    self.n,
                    n0 + len
                ),
            ));
        }
        if m == 0 || len == 0 {
            return Ok(());
        }
        #[cfg(target_arch = "x86_64")]
        if !self.row_major {
            return self.packed_product(a, n0, c, init);
        }
        if !self.row_major {
            return Err(Error::invalid(
                "packed matmul",
                "internal: packed panels without the packed kernel",
            ));
        }
        let plain = ArrayView2::from_shape((k, self.n), &self.data)
            .map_err(|e| Error::invalid("packed matmul", e.to_string()))?;
        let accumulate = matches!(init, Init::Accumulate);
        gemm(
            a,
            plain.slice(ndarray::s![.., n0..n0 + len]),
            c.view_mut(),
            accumulate,
        )?;
        if let Init::Bias(bias) = init {
            c += &ndarray::ArrayView1::from(bias).insert_axis(ndarray::Axis(0));
        }
        Ok(())
    }

    /// The product on the packed panels (AVX-512F). Operands the kernel cannot address (a
    /// negative row stride, a column stride other than 1) are copied to standard layout first.
    #[cfg(target_arch = "x86_64")]
    fn packed_product(
        &self,
        a: ArrayView2<f32>,
        n0: usize,
        mut c: ArrayViewMut2<f32>,
        init: Init,
    ) -> Result<()> {
        let ((m, k), len) = (a.dim(), c.ncols());
        if k == 0 {
            match init {
                Init::Zero => c.fill(0.0),
                Init::Bias(b) => {
                    c.assign(&ndarray::ArrayView1::from(b).insert_axis(ndarray::Axis(0)))
                }
                Init::Accumulate => {}
            }
            return Ok(());
        }
        // Strides the kernel takes: rows at a non-negative stride, unit column stride; either
        // is irrelevant on an axis of length 1 (ndarray may report any value there).
        let fits = |st: &[isize], rows: usize, cols: usize| {
            (st[0] >= 0 || rows == 1) && (st[1] == 1 || cols == 1)
        };
        if !fits(a.strides(), m, k) {
            let a = a.as_standard_layout();
            return self.packed_product(a.view(), n0, c, init);
        }
        if !fits(c.strides(), m, len) {
            let mut tmp = match init {
                Init::Accumulate => c.as_standard_layout().into_owned(),
                _ => ndarray::Array2::zeros((m, len)),
            };
            self.packed_product(a, n0, tmp.view_mut(), init)?;
            c.assign(&tmp);
            return Ok(());
        }
        let row_stride = |st: &[isize], rows: usize| if rows == 1 { 0 } else { st[0] as usize };
        // SAFETY: AVX-512F was detected at pack time (the panels exist only then); `a` has `m`
        // rows of `k` contiguous floats at the non-negative row stride passed (0 for one row),
        // `c` has `m` rows of `len` contiguous floats likewise (checked just above); `self.data`
        // is the packing (whole groups) of every panel of `B`, and panels `n0 / 16 ..` cover
        // the columns `n0 .. n0 + len` (checked by the caller against `self.n`); a bias holds
        // `len` floats (checked by the caller).
        unsafe {
            avx512::matmul(
                a.as_ptr(),
                row_stride(a.strides(), m),
                m,
                k,
                self.data.as_ptr(),
                n0 / LANES,
                len,
                match init {
                    Init::Bias(b) => b.as_ptr(),
                    _ => std::ptr::null(),
                },
                matches!(init, Init::Accumulate),
                c.as_mut_ptr(),
                row_stride(c.strides(), m),
            );
        }
        Ok(())
    }
}

fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{panel_offset, GROUP, LANES};
    use std::arch::x86_64::*;

    /// `MR x NV` block: rows `0..MR` of `a`, `NV` consecutive panels of which the first is at
    /// `b`. Panel `v`'s row `kk` is at `b + (v / GROUP) * gstride + (v % GROUP) * 16 +
    /// kk * GROUP * 16`: either the block starts a group (and may run into the next ones,
    /// `gstride` floats apart) or it stays inside one group. The last panel holds `last` valid
    /// columns. `bias` (null for none) holds the block's columns' bias, added to every row;
    /// with `accumulate` the block adds to `c` instead of overwriting it.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::needless_range_loop, clippy::too_many_arguments)]
    unsafe fn micro<const MR: usize, const NV: usize>(
        a: *const f32,
        lda: usize,
        k: usize,
        b: *const f32,
        gstride: usize,
        bias: *const f32,
        accumulate: bool,
        c: *mut f32,
        ldc: usize,
        last: usize,
    ) {
        let tail: __mmask16 = if last >= LANES {
            0xFFFF
        } else {
            ((1u32 << last) - 1) as __mmask16
        };
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        if accumulate {
            for r in 0..MR {
                for v in 0..NV {
                    let mask = if v + 1 == NV { tail } else { 0xFFFF };
                    // SAFETY (caller): `c` holds the block's rows and valid columns.
                    acc[r][v] = _mm512_maskz_loadu_ps(mask, c.add(r * ldc + v * LANES));
                }
            }
        } else if !bias.is_null() {
            for v in 0..NV {
                let mask = if v + 1 == NV { tail } else { 0xFFFF };
                // SAFETY (caller): `bias` holds the block's valid columns.
                let bv = _mm512_maskz_loadu_ps(mask, bias.add(v * LANES));
                for r in 0..MR {
                    acc[r][v] = bv;
                }
            }
        }
        for kk in 0..k {
            let mut av = [_mm512_setzero_ps(); MR];
            for r in 0..MR {
                av[r] = _mm512_set1_ps(*a.add(r * lda + kk));
            }
            let row = b.add(kk * GROUP * LANES);
            for v in 0..NV {
                // SAFETY (caller): the panels' rows lie as described above.
                let bv = _mm512_loadu_ps(row.add((v / GROUP) * gstride + (v % GROUP) * LANES));
                for r in 0..MR {
                    acc[r][v] = _mm512_fmadd_ps(av[r], bv, acc[r][v]);
                }
            }
        }
        for r in 0..MR {
            for v in 0..NV {
                let dst = c.add(r * ldc + v * LANES);
                if v + 1 == NV {
                    _mm512_mask_storeu_ps(dst, tail, acc[r][v]);
                } else {
                    _mm512_storeu_ps(dst, acc[r][v]);
                }
            }
        }
    }

    macro_rules! dispatch {
        ($mr:expr, $nv:expr, $args:tt; $( ($m:literal, $v:literal) ),* ) => {
            match ($mr, $nv) {
                $( ($m, $v) => micro::<$m, $v> $args, )*
                _ => debug_assert!(false, "no kernel for this block shape"),
            }
        };
    }

    /// Panels per kernel call for a row block of `mr` rows (accumulators `mr * nv` <= 24).
    fn panels_for(mr: usize) -> usize {
        if mr <= 3 {
            2 * GROUP
        } else {
            GROUP
        }
    }

    /// `c (m, len) = a (m, k) · B[:, 16 p0 .. 16 p0 + len] (+ bias)`, `B` packed at `packing`.
    ///
    /// # Safety
    /// AVX-512F must be available; `a` must hold `m` rows of `k` floats at stride `lda`;
    /// `packing` must be a [`super::PackedMatrix`]'s panels (whole groups of `k` rows) with at
    /// least `p0 + ceil(len / 16)` panels; `bias` must be null or hold `len` floats; `c` must
    /// hold `m` rows of `len` writable floats at stride `ldc` (read too with `accumulate`).
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn matmul(
        a: *const f32,
        lda: usize,
        m: usize,
        k: usize,
        packing: *const f32,
        p0: usize,
        len: usize,
        bias: *const f32,
        accumulate: bool,
        c: *mut f32,
        ldc: usize,
    ) {
        let np = len.div_ceil(LANES);
        let gstride = GROUP * k * LANES;
        // Column blocks of panels that fit in half of a 1 MiB L2, rows streamed through each
        // block. Panel indices are relative to `p0`.
        let block = ((512 * 1024) / (k * LANES * 4)).max(1).div_ceil(2 * GROUP) * 2 * GROUP;
        let mut b0 = 0;
        while b0 < np {
            let b1 = (b0 + block).min(np);
            let mut r0 = 0;
            while r0 < m {
                let mr = (m - r0).min(6);
                let per = panels_for(mr);
                let mut p = b0;
                while p < b1 {
                    let abs = p0 + p;
                    let mut nv = (b1 - p).min(per);
                    if !abs.is_multiple_of(GROUP) {
                        // Stay inside this group; the next call starts a group.
                        nv = nv.min(GROUP - abs % GROUP);
                    }
                    let cols_left = len - p * LANES;
                    let last = (cols_left - (nv - 1) * LANES).min(LANES);
                    let ap = a.add(r0 * lda);
                    let bp = packing.add(panel_offset(abs, k));
                    let cp = c.add(r0 * ldc + p * LANES);
                    let biasp = if bias.is_null() {
                        bias
                    } else {
                        bias.add(p * LANES)
                    };
                    // Every (mr, nv) that the two lines above can produce is listed.
                    dispatch!(mr, nv, (ap, lda, k, bp, gstride, biasp, accumulate, cp, ldc, last);
                        (1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (1, 6), (1, 7), (1, 8),
                        (2, 1), (2, 2), (2, 3), (2, 4), (2, 5), (2, 6), (2, 7), (2, 8),
                        (3, 1), (3, 2), (3, 3), (3, 4), (3, 5), (3, 6), (3, 7), (3, 8),
                        (4, 1), (4, 2), (4, 3), (4, 4),
                        (5, 1), (5, 2), (5, 3), (5, 4),
                        (6, 1), (6, 2), (6, 3), (6, 4));
                    p += nv;
                }
                r0 += mr;
            }
            b0 = b1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// `a (m, k)` and `b (k, n)` with small non-trivial values.
    fn operands(m: usize, k: usize, n: usize) -> (Array2<f32>, Array2<f32>) {
        let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.1 - 0.5);
        let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j * 13) % 17) as f32 * 0.05 - 0.4);
        (a, b)
    }

    /// `got` is within f32 rounding of `want` (a product of length <= 64).
    fn close(got: f32, want: f32) -> bool {
        (got - want).abs() <= 1e-5 * (1.0 + want.abs())
    }

    /// The `gemm`-crate path that CPUs without AVX-512F take (forced here), from zero, a bias
    /// and the old `c`.
    #[test]
    fn row_major_fallback_equals_a_plain_product_from_zero_bias_or_c() {
        let (m, k, n) = (5usize, 19usize, 41usize);
        let (a, b) = operands(m, k, n);
        let want = a.dot(&b);
        let p = PackedMatrix {
            k,
            n,
            data: b.iter().copied().collect(),
            row_major: true,
        };
        let (n0, len) = (16usize, 25usize);
        let bias: Vec<f32> = (0..len).map(|j| j as f32 * 0.5 - 3.0).collect();
        let mut c = Array2::from_elem((m, len), f32::NAN);
        p.matmul_cols_init(a.view(), n0, c.view_mut(), Init::Bias(&bias))
            .unwrap();
        p.matmul_cols_init(a.view(), n0, c.view_mut(), Init::Accumulate)
            .unwrap();
        let mut z = Array2::from_elem((m, len), f32::NAN);
        p.matmul_cols(a.view(), n0, z.view_mut()).unwrap();
        for ((i, j), &g) in c.indexed_iter() {
            let w = 2.0 * want[[i, n0 + j]] + bias[j];
            assert!(close(g, w), "({i},{j}): {g} vs {w}");
            let w = want[[i, n0 + j]];
            assert!(close(z[[i, j]], w), "zero init ({i},{j})");
        }
    }

    #[test]
    fn packed_product_equals_a_plain_product_on_every_block_shape_from_zero_bias_or_c() {
        for &(m, k, n) in &[
            (1usize, 7usize, 5usize),
            (3, 33, 47),
            (8, 64, 160),
            (13, 20, 130),
            (64, 48, 96),
            (2, 1, 17),
        ] {
            let (a, b) = operands(m, k, n);
            let want = a.dot(&b);
            let p = PackedMatrix::pack(b.view());
            for n0 in (0..n).step_by(16) {
                for len in [n - n0, (n - n0).min(16), (n - n0).min(37)] {
                    let mut c = Array2::from_elem((m, len + 3), f32::NAN);
                    p.matmul_cols(a.view(), n0, c.slice_mut(ndarray::s![.., ..len]))
                        .unwrap();
                    // Operands the kernel cannot address directly (copied to standard
                    // layout): `a` with a column stride other than 1, `a` and `c` with
                    // negative row strides (rows reversed).
                    let at = a.t().to_owned();
                    let mut ct = Array2::zeros((m, len));
                    p.matmul_cols(at.t(), n0, ct.view_mut()).unwrap();
                    let mut cr = Array2::from_elem((m, len), 1.0f32);
                    let rev = ndarray::s![..;-1, ..];
                    p.matmul_cols_init(a.slice(rev), n0, cr.slice_mut(rev), Init::Accumulate)
                        .unwrap();
                    for ((i, j), g) in ct.indexed_iter() {
                        let w = want[[i, n0 + j]];
                        assert!(close(*g, w), "strided a");
                        let g = cr[[i, j]];
                        assert!(
                            (g - w - 1.0).abs() <= 1e-5 * (2.0 + w.abs()),
                            "reversed rows"
                        );
                    }
                    let bias: Vec<f32> = (0..len).map(|j| j as f32 * 0.25 - 1.0).collect();
                    let mut cb = Array2::from_elem((m, len + 3), f32::NAN);
                    let cbv = cb.slice_mut(ndarray::s![.., ..len]);
                    p.matmul_cols_init(a.view(), n0, cbv, Init::Bias(&bias))
                        .unwrap();
                    // Accumulating onto the biased product adds the product once more.
                    let cbv = cb.slice_mut(ndarray::s![.., ..len]);
                    p.matmul_cols_init(a.view(), n0, cbv, Init::Accumulate)
                        .unwrap();
                    for i in 0..m {
                        assert!(cb[[i, len]].is_nan());
                        for j in 0..len {
                            let (g, w) = (cb[[i, j]], 2.0 * want[[i, n0 + j]] + bias[j]);
                            assert!(
                                close(g, w),
                                "bias: m{m} k{k} n{n} n0{n0} len{len} ({i},{j}): {g} vs {w}"
                            );
                        }
                    }
                    for i in 0..m {
                        for j in 0..len {
                            let (g, w) = (c[[i, j]], want[[i, n0 + j]]);
                            assert!(
                                close(g, w),
                                "m{m} k{k} n{n} n0{n0} len{len} ({i},{j}): {g} vs {w}"
                            );
                        }
                        // Columns past `len` are not written.
                        assert!(c[[i, len]].is_nan());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use ndarray::Array2;

    #[test]
    #[ignore = "timing, run by hand with --release --ignored --nocapture"]
    fn time_packed_against_gemm() {
        for &(m, k, n) in &[
            (1usize, 128usize, 512usize),
            (100, 128, 512),
            (100, 128, 384),
            (1, 512, 2048),
            (16, 256, 1024),
            (100, 512, 2048),
            (64, 512, 2048),
            (256, 1024, 4096),
            (1600, 256, 1024),
            (3200, 512, 2048),
            (6400, 1024, 4096),
        ] {
            let a = Array2::from_shape_fn((m, k), |(i, j)| ((i + j) % 7) as f32 * 0.1);
            let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 3 + j) % 5) as f32 * 0.1);
            let p = PackedMatrix::pack(b.view());
            let mut c = Array2::zeros((m, n));
            // Best of 7 windows of ~0.3 GFLOP each (this machine shares its cores).
            let reps = ((3e8 / (2.0 * (m * k * n) as f64)) as usize).clamp(3, 5000);
            let best = |f: &mut dyn FnMut()| {
                (0..7)
                    .map(|_| {
                        let t = std::time::Instant::now();
                        for _ in 0..reps {
                            f();
                        }
                        t.elapsed().as_secs_f64() / reps as f64
                    })
                    .fold(f64::INFINITY, f64::min)
            };
            let tp = best(&mut || p.matmul_cols(a.view(), 0, c.view_mut()).unwrap());
            let tg = best(&mut || gemm(a.view(), b.view(), c.view_mut(), false).unwrap());
            let f = 2.0 * (m * k * n) as f64;
            println!(
                "m={m:5} k={k:5} n={n:5}: packed {:7.1} GF/s  gemm {:7.1} GF/s",
                f / tp / 1e9,
                f / tg / 1e9
            );
        }
    }
}
