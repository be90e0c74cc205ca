//! Winograd F(2x2, 3x3) convolution for ConvLSTM2D's 3x3 convolutions with stride 1 and no
//! dilation: the recurrent convolution always (it is `same`, stride 1 in Keras), the input
//! convolution when its own strides and dilation are 1 (either padding).
//!
//! Equations (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): a 2x2
//! block of outputs `Y` of one output channel is
//! `Y = Aᵀ [ Σ_s Σ_c (G g_sc Gᵀ) ⊙ (Bᵀ d_sc B) ] A`, with `d_sc` the 4x4 patch of channel `c`
//! of source `s` under the block (zeros outside the image, as padding) and `g_sc` its 3x3 kernel
//! slice (a cross-correlation, as TensorFlow's conv2d). A ConvLSTM2D step has two sources, its
//! input `x_t` and the state `h`, both convolved onto the same output grid. At each of the 16
//! positions `p` of the 4x4 transformed tile, the sum over sources and channels is one GEMM over
//! all tiles: `M[p] (tiles, out) = V[p] (tiles, Σ in_s) · U[p] (Σ in_s, out)`, the `U[p] =
//! (G g Gᵀ)[p]` stacked over sources and computed once per layer in f64. That is 16 multiplies
//! per 2x2 outputs and channel pair instead of 4 x 9 = 36.
//!
//! Layout: frames are channels-last, `(rows * cols * channels)` each. The work is split into
//! units, one unit being one row of tiles of one frame, i.e. 2 output rows: a contiguous range
//! of output pixels, so a group of consecutive units maps to consecutive output rows (what the
//! fused gate pass of a ConvLSTM2D step needs). For a group, `V` is `(tiles, 16, Σ in_s)` and
//! `M` `(tiles, 16, out)`: one tile's 16 values are contiguous for the transforms, and position
//! `p`'s GEMM reads and writes rows at strides `16 Σ in_s` and `16 out`. The transforms work on
//! 16 channels at a time (one AVX-512 register; straight-line code on fixed-size lanes for the
//! compiler to vectorise, in copies built for AVX-512F and for AVX2 + FMA chosen at run time).
//!
//! Accuracy: F(2x2, 3x3)'s constants are 0, ±1 and 1/2, so it rounds like a direct
//! convolution (the test below: <= 9e-7 relative to the output scale against f64). F(4x4, 3x3)
//! was measured too and dropped: about ten times the rounding error, and slower here
//! (docs/PERFORMANCE.md). The `Tile` trait keeps the algorithm's matrices apart from the
//! tiling, for a better-conditioned larger tile later.

use crate::cpu::conv::ConvGeometry;
use crate::cpu::packed::PackedMatrix;
use crate::{Error, Result};
use ndarray::{Array2, ArrayView2, ArrayView4, ArrayViewMut2, ShapeBuilder};

/// Channels per transform pass.
const W: usize = 16;

/// One lane of 16 channels; the arithmetic below compiles to one vector instruction each.
#[derive(Clone, Copy)]
pub(crate) struct V16([f32; W]);

impl V16 {
    const ZERO: V16 = V16([0.0; W]);
}

macro_rules! lane_op {
    ($tr:ident, $f:ident, $op:tt) => {
        impl std::ops::$tr for V16 {
            type Output = V16;
            #[inline(always)]
            fn $f(mut self, o: V16) -> V16 {
                for (a, b) in self.0.iter_mut().zip(o.0) {
                    *a $op b;
                }
                self
            }
        }
    };
}
lane_op!(Add, add, +=);
lane_op!(Sub, sub, -=);

impl std::ops::Mul<V16> for f32 {
    type Output = V16;
    #[inline(always)]
    fn mul(self, mut o: V16) -> V16 {
        for v in o.0.iter_mut() {
            *v *= self;
        }
        o
    }
}

/// One Winograd algorithm F(M x M, 3 x 3) on A x A tiles, `A = M + 2`: its transform
/// matrices, written out as straight-line code (zeros and ones skipped).
pub(crate) trait Tile<const A: usize, const M: usize> {
    /// `G`, A x 3 (applied in f64 to the kernel, once per layer).
    const G: [[f64; 3]; A];
    /// `Bᵀ x` for one column of the input patch.
    fn bt(x: [V16; A]) -> [V16; A];
    /// `Aᵀ m` for one column of the product.
    fn at(m: [V16; A]) -> [V16; M];
}

/// F(2x2, 3x3), points 0, 1, -1: 16 multiplies per 4 outputs (2.25x fewer than direct), with
/// rounding as a direct convolution's.
pub(crate) struct F2;

impl Tile<4, 2> for F2 {
    const G: [[f64; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    #[inline(always)]
    fn bt(x: [V16; 4]) -> [V16; 4] {
        [x[0] - x[2], x[1] + x[2], x[2] - x[1], x[1] - x[3]]
    }
    #[inline(always)]
    fn at(m: [V16; 4]) -> [V16; 2] {
        [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]
    }
}

/// Output tile side of [`F2`].
const TILE: usize = 2;
/// Positions of a transformed [`F2`] tile.
const POSITIONS: usize = (TILE + 2) * (TILE + 2);

/// 3x3 kernels `(3, 3, in_s, out)` of one or more sources summed into the same output (a
/// ConvLSTM2D step adds the input and the recurrent convolution), transformed for a Winograd
/// algorithm and stacked: `U[p]` is `(Σ in_s, out)`, so that the sum over sources is part of
/// each position's GEMM.
#[derive(Debug, Clone)]
pub(crate) struct Winograd {
    /// Channels of each source.
    cins: Vec<usize>,
    /// `Σ cins`.
    k: usize,
    cout: usize,
    /// `U[p]` `(k, out)` per position, packed for the GEMM kernel.
    packed: Vec<PackedMatrix>,
}

/// Whether a convolution of this geometry runs through [`Winograd`].
pub(crate) fn applies(g: &ConvGeometry) -> bool {
    g.kernel == (3, 3) && g.strides == (1, 1) && g.dilation == (1, 1)
}

/// `U[i * A + j]` rows `k0 ..` = `(G g Gᵀ)[i][j]` per channel pair, in f64.
fn transform_kernel<const A: usize, const M: usize, T: Tile<A, M>>(
    kernel: ArrayView4<f32>,
    k0: usize,
    plain: &mut [Array2<f32>],
) {
    let (_, _, cin, cout) = kernel.dim();
    for ci in 0..cin {
        for co in 0..cout {
            // t = G g (A x 3), then U = t Gᵀ (A x A).
            let mut t = [[0.0f64; 3]; A];
            for (i, t) in t.iter_mut().enumerate() {
                for (b, t) in t.iter_mut().enumerate() {
                    *t = (0..3)
                        .map(|a| T::G[i][a] * f64::from(kernel[[a, b, ci, co]]))
                        .sum();
                }
            }
            for i in 0..A {
                for j in 0..A {
                    let u: f64 = (0..3).map(|b| t[i][b] * T::G[j][b]).sum();
                    plain[i * A + j][[k0 + ci, co]] = u as f32;
                }
            }
        }
    }
}

impl Winograd {
    /// Transforms and stacks `kernels`, each `(3, 3, in_s, out)` with the same `out`; `None`
    /// when a kernel is not 3x3 or the output channels differ.
    pub(crate) fn new(kernels: &[ArrayView4<f32>]) -> Option<Self> {
        let cout = kernels.first()?.dim().3;
        if kernels
            .iter()
            .any(|k| (k.dim().0, k.dim().1, k.dim().3) != (3, 3, cout))
        {
            return None;
        }
        let cins: Vec<usize> = kernels.iter().map(|k| k.dim().2).collect();
        let k: usize = cins.iter().sum();
        let mut plain = vec![Array2::<f32>::zeros((k, cout)); POSITIONS];
        let mut k0 = 0;
        for kernel in kernels {
            transform_kernel::<4, 2, F2>(kernel.view(), k0, &mut plain);
            k0 += kernel.dim().2;
        }
        let packed = plain.iter().map(|u| PackedMatrix::pack(u.view())).collect();
        Some(Winograd {
            cins,
            k,
            cout,
            packed,
        })
    }

    /// The tiling of the output grid of `g` (which must satisfy [`applies`]).
    pub(crate) fn tiling(&self, g: ConvGeometry) -> Tiling {
        Tiling {
            g,
            rows: g.out_rows.div_ceil(TILE),
            cols: g.out_cols.div_ceil(TILE),
        }
    }

    /// Floats of `V` and `M` scratch for `tiles` tiles.
    pub(crate) fn scratch_len(&self, tiles: usize) -> (usize, usize) {
        (tiles * POSITIONS * self.k, tiles * POSITIONS * self.cout)
    }

    /// `out` = the sum over sources of their convolutions (+ `bias`) on the output pixels of
    /// units `u0 .. u1` of `t`. `sources[s]` is the geometry of source `s` (same output grid
    /// as `t`, [`applies`]) and its frames back to back, channels-last, unit `u` reading frame
    /// `u / t.rows`. `out` has one row per pixel of `t.pixel(u0) .. t.pixel(u1)` and `out`
    /// columns; `v` and `m` are scratch of at least [`Self::scratch_len`] of the group's tiles.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn conv_group(
        &self,
        t: &Tiling,
        sources: &[(&ConvGeometry, &[f32])],
        u0: usize,
        u1: usize,
        v: &mut [f32],
        m: &mut [f32],
        mut out: ArrayViewMut2<f32>,
        bias: Option<&[f32]>,
    ) -> Result<()> {
        let (k, cout, np) = (self.k, self.cout, POSITIONS);
        let tiles = u1.saturating_sub(u0) * t.cols;
        let (vl, ml) = self.scratch_len(tiles);
        let last_frame = if u1 > u0 { (u1 - 1) / t.rows + 1 } else { 0 };
        let bad_source = sources.len() != self.cins.len()
            || sources.iter().zip(&self.cins).any(|((g, f), &cin)| {
                g.channels != cin
                    || !applies(g)
                    || (g.out_rows, g.out_cols) != (t.g.out_rows, t.g.out_cols)
                    || f.len() < last_frame * g.in_rows * g.in_cols * cin
            });
        if bad_source
            || u1 < u0
            || out.dim() != (t.pixel(u1) - t.pixel(u0), cout)
            || (cout > 1 && out.strides()[1] != 1)
            || (out.nrows() > 1 && out.strides()[0] < cout as isize)
            || v.len() < vl
            || m.len() < ml
            || bias.is_some_and(|b| b.len() != cout)
        {
            return Err(Error::invalid(
                "winograd",
                format!(
                    "internal: units {u0}..{u1}, out {:?} strides {:?}, sources {}, scratch {}/{vl} {}/{ml}",
                    out.dim(), out.strides(), sources.len(), v.len(), m.len()
                ),
            ));
        }
        if tiles == 0 || cout == 0 {
            return Ok(());
        }
        let v = &mut v[..vl];
        let mut k0 = 0;
        for &(g, frames) in sources {
            input_transform::<4, 2, F2>(g, t, frames, u0, u1, k, k0, v);
            k0 += g.channels;
        }
        let err = |e: ndarray::ShapeError| Error::invalid("winograd", e.to_string());
        for p in 0..np {
            let a = ArrayView2::from_shape((tiles, k).strides((np * k, 1)), &v[p * k..])
                .map_err(err)?;
            let c = ArrayViewMut2::from_shape(
                (tiles, cout).strides((np * cout, 1)),
                &mut m[p * cout..ml],
            )
            .map_err(err)?;
            self.packed[p].matmul_cols(a, 0, c)?;
        }
        let rows = out.nrows();
        // (ndarray reports stride 0 on an axis of length 1.)
        let ldo = if rows > 1 {
            out.strides()[0] as usize
        } else {
            cout
        };
        let len = if rows == 0 {
            0
        } else {
            (rows - 1) * ldo + cout
        };
        // SAFETY: `out` is a live mutable view of `rows` rows of `cout` contiguous floats (unit
        // column stride, checked above) at row stride `ldo >= cout` (checked), so the `len`
        // floats from its first element lie inside its allocation and are borrowed mutably by
        // `out` alone; elements between rows (when `ldo > cout`) are never written below.
        let dst = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr(), len) };
        let g = &t.g;
        let m = &m[..ml];
        output_transform::<4, 2, F2>(g, t, u0, u1, cout, m, dst, ldo, bias);
        Ok(())
    }
}

/// The tiles of one convolution geometry: `rows` rows of `cols` 2x2 output tiles per frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tiling {
    g: ConvGeometry,
    /// Tile rows per frame (units per frame).
    pub rows: usize,
    /// Tiles per unit.
    pub cols: usize,
}

impl Tiling {
    /// Units of `frames` frames.
    pub(crate) fn units(&self, frames: usize) -> usize {
        frames * self.rows
    }

    /// The first output pixel (counted over all frames) of unit `u`; `pixel(units(n))` is the
    /// pixel count of `n` frames.
    pub(crate) fn pixel(&self, u: usize) -> usize {
        (u / self.rows) * self.g.out_pixels() + (u % self.rows) * TILE * self.g.out_cols
    }

    /// Most output pixels that `units` consecutive units cover.
    pub(crate) fn max_pixels(&self, units: usize) -> usize {
        units * TILE * self.g.out_cols
    }

    /// Units per group: about `tiles` tiles (the GEMMs' row count).
    pub(crate) fn group(&self, tiles: usize) -> usize {
        (tiles / self.cols).max(1)
    }
}

/// `dst[..w] = src[..w]` for `w <= W`: one constant-length copy (vector moves) when
/// `w == W`, else lane by lane (a variable-length copy would become a `memmove` call and keep
/// the transform's arrays out of registers).
#[inline(always)]
fn copy_lanes(dst: &mut [f32], src: &[f32], w: usize) {
    if w == W {
        dst[..W].copy_from_slice(&src[..W]);
    } else {
        for l in 0..W {
            if l < w {
                dst[l] = src[l];
            }
        }
    }
}

/// 16 floats from the start of `src` (a constant-length copy: a vector load).
#[inline(always)]
fn load(src: &[f32]) -> V16 {
    let mut v = [0.0f32; W];
    v.copy_from_slice(&src[..W]);
    V16(v)
}

/// `Bᵀ d B` of one patch.
#[inline(always)]
fn bt2d<const A: usize, const M: usize, T: Tile<A, M>>(d: [[V16; A]; A]) -> [[V16; A]; A] {
    // Columns: e[:, j] = Bᵀ d[:, j]; rows: r[i, :] = Bᵀ e[i, :] (i.e. e B).
    let mut e = [[V16::ZERO; A]; A];
    for j in 0..A {
        let mut col = [V16::ZERO; A];
        for i in 0..A {
            col[i] = d[i][j];
        }
        let y = T::bt(col);
        for i in 0..A {
            e[i][j] = y[i];
        }
    }
    let mut r = [[V16::ZERO; A]; A];
    for i in 0..A {
        r[i] = T::bt(e[i]);
    }
    r
}

/// `Aᵀ m A` of one tile's products.
#[inline(always)]
fn at2d<const A: usize, const M: usize, T: Tile<A, M>>(m: [[V16; A]; A]) -> [[V16; M]; M] {
    // Columns: s[:, j] = Aᵀ m[:, j] (M x A); rows: y[r, :] = Aᵀ s[r, :].
    let mut s = [[V16::ZERO; A]; M];
    for j in 0..A {
        let mut col = [V16::ZERO; A];
        for i in 0..A {
            col[i] = m[i][j];
        }
        let y = T::at(col);
        for r in 0..M {
            s[r][j] = y[r];
        }
    }
    let mut y = [[V16::ZERO; M]; M];
    for r in 0..M {
        y[r] = T::at(s[r]);
    }
    y
}

macro_rules! simd_versions {
    ($(#[$m:meta])* fn $name:ident / $avx512:ident / $avx2:ident / $imp:ident ( $($arg:ident : $ty:ty),* $(,)? )) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        fn $name<const A: usize, const M: usize, T: Tile<A, M>>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F (checked); no other requirement.
                    return unsafe { $avx512::<A, M, T>($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU supports AVX2 and FMA (checked); no other requirement.
                    return unsafe { $avx2::<A, M, T>($($arg),*) };
                }
            }
            $imp::<A, M, T>($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $avx512<const A: usize, const M: usize, T: Tile<A, M>>($($arg: $ty),*) {
            $imp::<A, M, T>($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $avx2<const A: usize, const M: usize, T: Tile<A, M>>($($arg: $ty),*) {
            $imp::<A, M, T>($($arg),*)
        }
    };
}

simd_versions! {
    /// Channels `k0 .. k0 + g.channels` of `V` (rows of `k` channels) of units `u0 .. u1`:
    /// every tile's input patches of one source, transformed.
    fn input_transform / input_avx512 / input_avx2 / input_impl(
        g: &ConvGeometry, t: &Tiling, frames: &[f32], u0: usize, u1: usize, k: usize, k0: usize,
        v: &mut [f32],
    )
}

simd_versions! {
    /// The output pixels of units `u0 .. u1` from `M` (+ bias), rows `ldo` apart in `out`.
    fn output_transform / output_avx512 / output_avx2 / output_impl(
        g: &ConvGeometry, t: &Tiling, u0: usize, u1: usize, cout: usize, m: &[f32], out: &mut [f32],
        ldo: usize, bias: Option<&[f32]>,
    )
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn input_impl<const A: usize, const M: usize, T: Tile<A, M>>(
    g: &ConvGeometry,
    t: &Tiling,
    frames: &[f32],
    u0: usize,
    u1: usize,
    k: usize,
    k0: usize,
    v: &mut [f32],
) {
    let np = A * A;
    let cin = g.channels;
    let frame_len = g.in_rows * g.in_cols * cin;
    let (rows, cols) = (g.in_rows as isize, g.in_cols as isize);
    let mut tile = 0;
    for u in u0..u1 {
        let (f, ty) = (u / t.rows, u % t.rows);
        let src = &frames[f * frame_len..(f + 1) * frame_len];
        let iy0 = (M * ty) as isize - g.pad_top as isize;
        for tx in 0..t.cols {
            let ix0 = (M * tx) as isize - g.pad_left as isize;
            let dst = &mut v[tile * np * k..(tile + 1) * np * k];
            let interior =
                iy0 >= 0 && ix0 >= 0 && iy0 + A as isize <= rows && ix0 + A as isize <= cols;
            for c0 in (0..cin).step_by(W) {
                let w = (cin - c0).min(W);
                let mut d = [[V16::ZERO; A]; A];
                if interior && w == W {
                    for (i, d) in d.iter_mut().enumerate() {
                        let row = (iy0 as usize + i) * g.in_cols + ix0 as usize;
                        for (j, d) in d.iter_mut().enumerate() {
                            *d = load(&src[(row + j) * cin + c0..]);
                        }
                    }
                } else {
                    for (i, d) in d.iter_mut().enumerate() {
                        let iy = iy0 + i as isize;
                        if iy < 0 || iy >= rows {
                            continue;
                        }
                        for (j, d) in d.iter_mut().enumerate() {
                            let ix = ix0 + j as isize;
                            if ix < 0 || ix >= cols {
                                continue;
                            }
                            let s = (iy as usize * g.in_cols + ix as usize) * cin + c0;
                            copy_lanes(&mut d.0, &src[s..], w);
                        }
                    }
                }
                let r = bt2d::<A, M, T>(d);
                for (i, r) in r.iter().enumerate() {
                    for (j, r) in r.iter().enumerate() {
                        let o = (i * A + j) * k + k0 + c0;
                        copy_lanes(&mut dst[o..], &r.0, w);
                    }
                }
            }
            tile += 1;
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output_impl<const A: usize, const M: usize, T: Tile<A, M>>(
    g: &ConvGeometry,
    t: &Tiling,
    u0: usize,
    u1: usize,
    cout: usize,
    m: &[f32],
    out: &mut [f32],
    ldo: usize,
    bias: Option<&[f32]>,
) {
    let np = A * A;
    let base = t.pixel(u0);
    let px = g.out_pixels();
    let mut tile = 0;
    for u in u0..u1 {
        let (f, ty) = (u / t.rows, u % t.rows);
        for tx in 0..t.cols {
            let src = &m[tile * np * cout..(tile + 1) * np * cout];
            for c0 in (0..cout).step_by(W) {
                let w = (cout - c0).min(W);
                let mut b = V16::ZERO;
                if let Some(bias) = bias {
                    copy_lanes(&mut b.0, &bias[c0..], w);
                }
                let mut mm = [[V16::ZERO; A]; A];
                for (i, mm) in mm.iter_mut().enumerate() {
                    for (j, mm) in mm.iter_mut().enumerate() {
                        let o = (i * A + j) * cout + c0;
                        if w == W {
                            *mm = load(&src[o..]);
                        } else {
                            copy_lanes(&mut mm.0, &src[o..], w);
                        }
                    }
                }
                let y = at2d::<A, M, T>(mm);
                for (r, y) in y.iter().enumerate() {
                    let oy = M * ty + r;
                    if oy >= g.out_rows {
                        break;
                    }
                    for (c, y) in y.iter().enumerate() {
                        let ox = M * tx + c;
                        if ox >= g.out_cols {
                            break;
                        }
                        let row = f * px + oy * g.out_cols + ox - base;
                        let v = *y + b;
                        if w == W {
                            out[row * ldo + c0..row * ldo + c0 + W].copy_from_slice(&v.0);
                        } else {
                            copy_lanes(&mut out[row * ldo + c0..], &v.0, w);
                        }
                    }
                }
            }
            tile += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Padding;
    use ndarray::Array4;

    /// Direct convolution in f64 (channels-last frames), the reference.
    fn direct(g: &ConvGeometry, frames: &[f32], n: usize, k: &Array4<f32>) -> Array2<f64> {
        let (cin, cout) = (k.shape()[2], k.shape()[3]);
        let frame_len = g.in_rows * g.in_cols * cin;
        let mut out = Array2::zeros((n * g.out_pixels(), cout));
        for f in 0..n {
            for oy in 0..g.out_rows {
                for ox in 0..g.out_cols {
                    let row = f * g.out_pixels() + oy * g.out_cols + ox;
                    for ky in 0..3 {
                        let iy = (oy + ky) as isize - g.pad_top as isize;
                        for kx in 0..3 {
                            let ix = (ox + kx) as isize - g.pad_left as isize;
                            if iy < 0
                                || ix < 0
                                || iy >= g.in_rows as isize
                                || ix >= g.in_cols as isize
                            {
                                continue;
                            }
                            let s = f * frame_len + (iy as usize * g.in_cols + ix as usize) * cin;
                            for c in 0..cin {
                                for o in 0..cout {
                                    out[[row, o]] +=
                                        f64::from(frames[s + c]) * f64::from(k[[ky, kx, c, o]]);
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    fn value(i: usize, salt: usize) -> f32 {
        // Deterministic values in [-1, 1).
        let x = (i.wrapping_mul(2654435761).wrapping_add(salt * 97)) % 10007;
        x as f32 / 5003.5 - 1.0
    }

    #[test]
    fn winograd_matches_a_direct_f64_convolution_on_every_edge_case() {
        // (rows, cols, channels, filters, padding): partial tiles, channel tails, valid. Each
        // case also runs stacked with a second, `same` source on the output grid (a ConvLSTM2D
        // step's input + recurrent convolutions).
        for &(r, c, cin, cout, pad) in &[
            (8usize, 8usize, 16usize, 16usize, Padding::Same),
            (5, 7, 3, 20, Padding::Same),
            (1, 1, 1, 1, Padding::Same),
            (9, 6, 33, 17, Padding::Same),
            (7, 9, 5, 12, Padding::Valid),
            (3, 3, 2, 4, Padding::Valid),
            (12, 13, 16, 128, Padding::Same),
        ] {
            let n = 3;
            let g = ConvGeometry::new(r, c, cin, (3, 3), (1, 1), (1, 1), pad).unwrap();
            let c2 = cout / 4 + 1;
            let g2 = ConvGeometry::new(
                g.out_rows,
                g.out_cols,
                c2,
                (3, 3),
                (1, 1),
                (1, 1),
                Padding::Same,
            )
            .unwrap();
            assert!(applies(&g) && applies(&g2));
            let frames: Vec<f32> = (0..n * r * c * cin).map(|i| value(i, 1)).collect();
            let frames2: Vec<f32> = (0..n * g2.in_rows * g2.in_cols * c2)
                .map(|i| value(i, 4))
                .collect();
            let kernel = |ci: usize, salt: usize| {
                Array4::from_shape_fn((3, 3, ci, cout), |(a, b, i, o)| {
                    value(((a * 3 + b) * ci + i) * cout + o, salt) * 0.3
                })
            };
            let (k, k2) = (kernel(cin, 2), kernel(c2, 5));
            let bias: Vec<f32> = (0..cout).map(|i| value(i, 3)).collect();
            let one = direct(&g, &frames, n, &k);
            let two = &one + &direct(&g2, &frames2, n, &k2);
            for stacked in [false, true] {
                let (wino, want, sources) = if stacked {
                    let w = Winograd::new(&[k.view(), k2.view()]).unwrap();
                    (
                        w,
                        &two,
                        vec![(&g, frames.as_slice()), (&g2, frames2.as_slice())],
                    )
                } else {
                    let w = Winograd::new(&[k.view()]).unwrap();
                    (w, &one, vec![(&g, frames.as_slice())])
                };
                let t = wino.tiling(g);
                let units = t.units(n);
                // Odd group sizes, so groups straddle frames.
                for group in [1, 2, units] {
                    let (vl, ml) = wino.scratch_len(group * t.cols);
                    let (mut v, mut m) = (vec![f32::NAN; vl], vec![f32::NAN; ml]);
                    let mut got = Array2::from_elem((n * g.out_pixels(), cout + 5), f32::NAN);
                    let mut u0 = 0;
                    while u0 < units {
                        let u1 = (u0 + group).min(units);
                        let rows = t.pixel(u0)..t.pixel(u1);
                        let out = got.slice_mut(ndarray::s![rows, ..cout]);
                        wino.conv_group(&t, &sources, u0, u1, &mut v, &mut m, out, Some(&bias))
                            .unwrap();
                        u0 = u1;
                    }
                    let mut worst = 0.0f64;
                    for ((i, o), w) in want.indexed_iter() {
                        let (gv, w) = (f64::from(got[[i, o]]), w + f64::from(bias[o]));
                        worst = worst.max((gv - w).abs() / (1.0 + w.abs()));
                    }
                    // Each output sums 9 * channels products of values up to ~0.3; f32
                    // rounding of such a sum is ~1e-7 relative to its scale (measured: <= 9e-7).
                    let k_all = 9 * (cin + if stacked { c2 } else { 0 });
                    let bound = 3e-7 * (1.0 + k_all as f64 * 0.3).sqrt();
                    assert!(
                        worst <= bound,
                        "{r}x{c}x{cin}->{cout} {pad:?} stacked {stacked} group {group}: error {worst:e} > {bound:e}"
                    );
                    // Columns past `cout` untouched.
                    assert!(got
                        .slice(ndarray::s![.., cout..])
                        .iter()
                        .all(|v| v.is_nan()));
                }
            }
        }
    }

    #[test]
    fn only_3x3_stride_1_undilated_kernels_take_the_winograd_path() {
        let g = |k, s, d| ConvGeometry::new(9, 9, 2, k, s, d, Padding::Same).unwrap();
        assert!(applies(&g((3, 3), (1, 1), (1, 1))));
        assert!(!applies(&g((3, 3), (2, 2), (1, 1))));
        assert!(!applies(&g((3, 3), (1, 1), (2, 2))));
        assert!(!applies(&g((5, 5), (1, 1), (1, 1))));
        assert!(Winograd::new(&[Array4::zeros((2, 2, 1, 1)).view()]).is_none());
    }
}
