//! Keras 2 activation functions, by their Keras 2 names.

use crate::{Error, Result};

/// A Keras 2 activation.
///
/// `HardSigmoid` is Keras 2's `clip(0.2 * x + 0.5, 0, 1)` (Keras 3 changed it; this crate follows
/// Keras 2). `Linear` is also what a `null` / `None` activation means.
///
/// `Softmax` and `LogSoftmax` are the two that are not elementwise: as in Keras they normalise
/// over the last axis of the tensor they are applied to, which is one gate's `units` in the
/// dense cells, `filters` in a channels_last ConvLSTM2D, and the output columns in a
/// channels_first ConvLSTM2D (whose gate tensors are `(batch, filters, rows, cols)`).
/// [`Activation::is_row_wise`] tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `clip(0.2 * x + 0.5, 0, 1)` (Keras 2).
    HardSigmoid,
    /// `max(x, 0)`.
    Relu,
    /// The identity (`linear`, `None`).
    Linear,
    /// `x / (1 + |x|)`.
    Softsign,
    /// `log(1 + exp(x))`.
    Softplus,
    /// `x` for `x > 0`, else `exp(x) - 1`.
    Elu,
    /// `scale * elu(x, alpha)` with Keras's constants.
    Selu,
    /// `exp(x)`.
    Exponential,
    /// `x * sigmoid(x)` (`swish`, `silu`).
    Swish,
    /// `0.5 * x * (1 + erf(x / sqrt(2)))` (Keras 2 `gelu`, `approximate=False`).
    Gelu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x * tanh(softplus(x))`.
    Mish,
    /// `x` for `x >= 0`, else `0.2 * x` (tf-keras 2's `leaky_relu` name is `tf.nn.leaky_relu`
    /// with its default `alpha = 0.2`).
    LeakyRelu,
    /// `exp(x - max) / sum(exp(x - max))` over the last axis (see above).
    Softmax,
    /// `x - max - log(sum(exp(x - max)))` over the last axis (see above).
    LogSoftmax,
}

/// The names [`Activation::from_name`] accepts.
pub const ACTIVATION_NAMES: &[&str] = &[
    "tanh",
    "sigmoid",
    "hard_sigmoid",
    "relu",
    "linear",
    "softsign",
    "softplus",
    "elu",
    "selu",
    "exponential",
    "swish",
    "silu",
    "gelu",
    "relu6",
    "mish",
    "leaky_relu",
    "softmax",
    "log_softmax",
];

const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_SCALE: f32 = 1.050_701;
/// `tf.nn.leaky_relu`'s default slope, which tf-keras 2's `"leaky_relu"` name uses.
const LEAKY_RELU_ALPHA: f32 = 0.2;

impl Activation {
    /// Parses a Keras 2 activation name; `field` names the config key in the error.
    pub fn from_name(field: &str, name: &str) -> Result<Self> {
        Ok(match name {
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "hard_sigmoid" => Activation::HardSigmoid,
            "relu" => Activation::Relu,
            "linear" | "None" | "none" => Activation::Linear,
            "softsign" => Activation::Softsign,
            "softplus" => Activation::Softplus,
            "elu" => Activation::Elu,
            "selu" => Activation::Selu,
            "exponential" => Activation::Exponential,
            "swish" | "silu" => Activation::Swish,
            "gelu" => Activation::Gelu,
            "relu6" => Activation::Relu6,
            "mish" => Activation::Mish,
            "leaky_relu" => Activation::LeakyRelu,
            "softmax" => Activation::Softmax,
            "log_softmax" => Activation::LogSoftmax,
            other => {
                return Err(Error::UnknownActivation {
                    field: field.to_string(),
                    found: other.to_string(),
                    expected: ACTIVATION_NAMES.join(", "),
                })
            }
        })
    }

    /// The Keras 2 name.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::HardSigmoid => "hard_sigmoid",
            Activation::Relu => "relu",
            Activation::Linear => "linear",
            Activation::Softsign => "softsign",
            Activation::Softplus => "softplus",
            Activation::Elu => "elu",
            Activation::Selu => "selu",
            Activation::Exponential => "exponential",
            Activation::Swish => "swish",
            Activation::Gelu => "gelu",
            Activation::Relu6 => "relu6",
            Activation::Mish => "mish",
            Activation::LeakyRelu => "leaky_relu",
            Activation::Softmax => "softmax",
            Activation::LogSoftmax => "log_softmax",
        }
    }

    /// Whether the activation normalises over an axis (`softmax`, `log_softmax`) instead of
    /// acting on each element alone.
    pub fn is_row_wise(self) -> bool {
        matches!(self, Activation::Softmax | Activation::LogSoftmax)
    }

    /// Applies the activation to one value; a row-wise activation treats it as a row of one
    /// element (`softmax` gives 1, `log_softmax` 0, NaN and infinities give NaN).
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => sigmoid(x),
            Activation::HardSigmoid => (0.2 * x + 0.5).clamp(0.0, 1.0),
            // Not x.max(0.0): that maps NaN to 0, Keras's relu keeps it.
            Activation::Relu => {
                if x < 0.0 {
                    0.0
                } else {
                    x
                }
            }
            Activation::Linear => x,
            Activation::Softsign => x / (1.0 + x.abs()),
            Activation::Softplus => softplus(x),
            Activation::Elu => {
                if x > 0.0 {
                    x
                } else {
                    x.exp_m1()
                }
            }
            Activation::Selu => {
                if x > 0.0 {
                    SELU_SCALE * x
                } else {
                    SELU_SCALE * SELU_ALPHA * x.exp_m1()
                }
            }
            Activation::Exponential => x.exp(),
            Activation::Swish => x * sigmoid(x),
            Activation::Gelu => {
                let xd = f64::from(x);
                (0.5 * xd * (1.0 + libm::erf(xd / std::f64::consts::SQRT_2))) as f32
            }
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::Mish => x * softplus(x).tanh(),
            Activation::LeakyRelu => {
                if x >= 0.0 {
                    x
                } else {
                    LEAKY_RELU_ALPHA * x
                }
            }
            Activation::Softmax | Activation::LogSoftmax => {
                let mut row = [x];
                self.apply_slice(&mut row);
                row[0]
            }
        }
    }

    /// Applies the activation in place to every element of `xs`; a row-wise activation takes
    /// `xs` as one row (the axis it normalises over).
    #[inline]
    pub fn apply_slice(self, xs: &mut [f32]) {
        match self {
            Activation::Softmax => softmax_row(xs, false),
            Activation::LogSoftmax => softmax_row(xs, true),
            Activation::Linear => {}
            Activation::Tanh => xs.iter_mut().for_each(|x| *x = x.tanh()),
            Activation::Sigmoid => xs.iter_mut().for_each(|x| *x = sigmoid(*x)),
            other => xs.iter_mut().for_each(|x| *x = other.apply(*x)),
        }
    }
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `softmax` (or, with `log`, `log_softmax`) of one row in place, as TensorFlow computes it:
/// shifted by the row's maximum, f32 throughout. A NaN anywhere makes the row NaN, and so does
/// an infinite maximum (`inf - inf`), as in TensorFlow.
pub(crate) fn softmax_row(xs: &mut [f32], log: bool) {
    let mut max = f32::NEG_INFINITY;
    let mut nan = false;
    for &x in xs.iter() {
        nan |= x.is_nan();
        if x > max {
            max = x;
        }
    }
    if nan {
        xs.iter_mut().for_each(|x| *x = f32::NAN);
        return;
    }
    let mut sum = 0.0f32;
    for x in xs.iter_mut() {
        *x -= max;
        sum += x.exp();
    }
    if log {
        let ls = sum.ln();
        xs.iter_mut().for_each(|x| *x -= ls);
    } else {
        let inv = sum.recip();
        xs.iter_mut().for_each(|x| *x = x.exp() * inv);
    }
}

#[inline]
fn softplus(x: f32) -> f32 {
    // log1p(exp(x)), stable for large |x|.
    if x > 20.0 {
        x
    } else if x < -20.0 {
        x.exp()
    } else {
        x.exp().ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_sigmoid_is_keras2_clip_of_point_two_x_plus_half() {
        let h = Activation::HardSigmoid;
        assert_eq!(h.apply(0.0), 0.5);
        assert_eq!(h.apply(2.5), 1.0);
        assert_eq!(h.apply(-2.5), 0.0);
        assert!((h.apply(1.0) - 0.7).abs() < 1e-7);
        // Keras 3's x/6 + 0.5 would give 0.6667 at 1.0.
    }

    #[test]
    fn every_listed_name_parses_and_unknown_names_are_errors() {
        for n in ACTIVATION_NAMES {
            assert!(Activation::from_name("activation", n).is_ok(), "{n}");
        }
        let e = Activation::from_name("recurrent_activation", "hard_swish").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("recurrent_activation") && msg.contains("hard_swish"),
            "{msg}"
        );
    }

    #[test]
    fn sigmoid_and_gelu_match_closed_forms() {
        assert!((Activation::Sigmoid.apply(-100.0)).abs() < 1e-30);
        assert!((Activation::Gelu.apply(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((Activation::Selu.apply(-1.0) - (-1.111_330_7)).abs() < 1e-6);
        // tf.keras.activations.mish's own docstring values.
        for (x, want) in [
            (-3.0, -0.145_647_45),
            (-1.0, -0.303_401_44),
            (1.0, 0.865_098_36),
        ] {
            assert!((Activation::Mish.apply(x) - want).abs() < 1e-6, "mish({x})");
        }
        assert_eq!(Activation::LeakyRelu.apply(-2.0), -0.4);
        assert_eq!(Activation::LeakyRelu.apply(3.0), 3.0);
    }
}
