//! 2-D convolution geometry (TensorFlow's rules) and im2col for ConvLSTM2D.
//!
//! Images are channels-last and flattened per frame: `(rows * cols * channels)`. A kernel
//! `(kh, kw, in, out)` viewed as `(kh * kw * in, out)` multiplies an im2col matrix whose row is
//! one output pixel and whose columns run `(ky, kx, channel)`, the kernel's own order.

use crate::config::Padding;
use crate::{Error, Result};
use ndarray::{ArrayView2, ArrayViewMut2};

/// The geometry of one 2-D convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub in_rows: usize,
    pub in_cols: usize,
    pub channels: usize,
    pub kernel: (usize, usize),
    pub strides: (usize, usize),
    pub dilation: (usize, usize),
    pub pad_top: usize,
    pub pad_left: usize,
    pub out_rows: usize,
    pub out_cols: usize,
}

/// Output size and leading padding of one axis under TensorFlow's rules (`None`: the input is
/// smaller than the dilated kernel under `valid`).
fn axis(
    input: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    padding: Padding,
) -> Option<(usize, usize)> {
    let eff = (k - 1) * dilation + 1;
    match padding {
        Padding::Valid => {
            if input < eff {
                None
            } else {
                Some(((input - eff) / stride + 1, 0))
            }
        }
        Padding::Same => {
            let out = input.div_ceil(stride);
            if out == 0 {
                return None; // an empty image (`ConvGeometry::new` reports it as empty)
            }
            let needed = (out - 1) * stride + eff;
            let total = needed.saturating_sub(input);
            Some((out, total / 2))
        }
    }
}

impl ConvGeometry {
    /// Geometry of a convolution; `None` when the output would be empty.
    pub(crate) fn new(
        in_rows: usize,
        in_cols: usize,
        channels: usize,
        kernel: (usize, usize),
        strides: (usize, usize),
        dilation: (usize, usize),
        padding: Padding,
    ) -> Option<Self> {
        let (out_rows, pad_top) = axis(in_rows, kernel.0, strides.0, dilation.0, padding)?;
        let (out_cols, pad_left) = axis(in_cols, kernel.1, strides.1, dilation.1, padding)?;
        if out_rows == 0 || out_cols == 0 {
            return None;
        }
        Some(ConvGeometry {
            in_rows,
            in_cols,
            channels,
            kernel,
            strides,
            dilation,
            pad_top,
            pad_left,
            out_rows,
            out_cols,
        })
    }

    /// Width of one im2col row: `kh * kw * channels`.
    pub(crate) fn patch_len(&self) -> usize {
        self.kernel.0 * self.kernel.1 * self.channels
    }

    /// Pixels per output frame.
    pub(crate) fn out_pixels(&self) -> usize {
        self.out_rows * self.out_cols
    }

    /// im2col of `frames`, shaped `(n, in_rows * in_cols * channels)`, into `out` shaped
    /// `(rows, patch_len)` for the output pixels `first .. first + rows` of all frames taken
    /// together (pixel `q` is pixel `q % out_pixels` of frame `q / out_pixels`). Padding reads
    /// as zeros.
    pub(crate) fn im2col_rows(
        &self,
        frames: ArrayView2<f32>,
        first: usize,
        mut out: ArrayViewMut2<f32>,
    ) -> Result<()> {
        let (kh, kw) = self.kernel;
        let ch = self.channels;
        let patch = self.patch_len();
        let px = self.out_pixels();
        let frames = frames.as_standard_layout();
        let src = frames
            .as_slice()
            .ok_or_else(|| Error::invalid("im2col", "internal: frames not contiguous"))?;
        let frame_len = self.in_rows * self.in_cols * ch;
        if out.ncols() != patch
            || frames.ncols() != frame_len
            || first + out.nrows() > frames.nrows() * px
        {
            return Err(Error::invalid("im2col", "internal: mismatched shapes"));
        }
        for (i, mut dst) in out.rows_mut().into_iter().enumerate() {
            let q = first + i;
            let (n, p) = (q / px, q % px);
            let (oy, ox) = (p / self.out_cols, p % self.out_cols);
            let f = &src[n * frame_len..(n + 1) * frame_len];
            let dst = dst
                .as_slice_mut()
                .ok_or_else(|| Error::invalid("im2col", "internal: output row not contiguous"))?;
            for ky in 0..kh {
                let iy =
                    (oy * self.strides.0 + ky * self.dilation.0) as isize - self.pad_top as isize;
                for kx in 0..kw {
                    let ix = (ox * self.strides.1 + kx * self.dilation.1) as isize
                        - self.pad_left as isize;
                    let d = &mut dst[(ky * kw + kx) * ch..(ky * kw + kx + 1) * ch];
                    if iy < 0
                        || ix < 0
                        || iy >= self.in_rows as isize
                        || ix >= self.in_cols as isize
                    {
                        d.fill(0.0);
                    } else {
                        let s = (iy as usize * self.in_cols + ix as usize) * ch;
                        d.copy_from_slice(&f[s..s + ch]);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_puts_the_extra_row_at_the_bottom_like_tensorflow() {
        // 4 rows, kernel 2, stride 1: total pad 1 -> top 0, bottom 1.
        let g = ConvGeometry::new(4, 4, 1, (2, 2), (1, 1), (1, 1), Padding::Same).unwrap();
        assert_eq!((g.out_rows, g.pad_top), (4, 0));
        // 5 rows, kernel 3, stride 2: out 3, needed 7, total 2 -> top 1.
        let g = ConvGeometry::new(5, 5, 1, (3, 3), (2, 2), (1, 1), Padding::Same).unwrap();
        assert_eq!((g.out_rows, g.pad_top), (3, 1));
        // 6 rows, kernel 3, stride 2: out 3, needed 7, total 1 -> top 0.
        let g = ConvGeometry::new(6, 6, 1, (3, 3), (2, 2), (1, 1), Padding::Same).unwrap();
        assert_eq!((g.out_rows, g.pad_top), (3, 0));
    }

    #[test]
    fn valid_padding_with_dilation_shrinks_by_the_dilated_kernel() {
        let g = ConvGeometry::new(7, 7, 1, (3, 3), (1, 1), (2, 2), Padding::Valid).unwrap();
        assert_eq!(g.out_rows, 3);
        assert!(ConvGeometry::new(4, 4, 1, (3, 3), (1, 1), (2, 2), Padding::Valid).is_none());
    }
}
