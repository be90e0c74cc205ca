//! Weight interchange with PyTorch's `nn.LSTM` / `nn.GRU` and with cuDNN's canonical parameter
//! layout, so that weights trained in either can be run by this crate's `LSTM` / `GRU` (and
//! written back out).
//!
//! # The three layouts (`I` = input size, `H` = hidden size = Keras `units`)
//!
//! | | LSTM | GRU |
//! |---|---|---|
//! | Keras gate order | `[i \| f \| c \| o]` | `[z \| r \| h]` |
//! | Keras weights | `kernel (I, 4H)`, `recurrent_kernel (H, 4H)`, `bias (4H,)` | `kernel (I, 3H)`, `recurrent_kernel (H, 3H)`, `bias (2, 3H)` (`reset_after=True`) |
//! | PyTorch gate order | `i, f, g, o` (`g` is Keras's `c`) | `r, z, n` (`n` is Keras's `h`) |
//! | PyTorch weights | `weight_ih (4H, I)`, `weight_hh (4H, H)`, `bias_ih (4H,)`, `bias_hh (4H,)` | `weight_ih (3H, I)`, `weight_hh (3H, H)`, `bias_ih (3H,)`, `bias_hh (3H,)` |
//! | cuDNN gate order | `i, f, g, o` | `r, z, h` |
//! | cuDNN canonical | ids 0..3: `W (H, I)` for `i, f, g, o`; 4..7: `R (H, H)`; biases `(H,)` per id | ids 0..2: `W (H, I)` for `r, z, h`; 3..5: `R (H, H)`; biases `(H,)` per id |
//!
//! PyTorch and cuDNN both compute `W x` with a row-major `(H, I)` matrix, so a Keras gate block
//! `kernel[:, j*H..(j+1)*H]` is the transpose of the PyTorch / cuDNN gate matrix.
//!
//! PyTorch's and cuDNN's LSTM is Keras's `LSTM(recurrent_activation="sigmoid",
//! activation="tanh")`; their GRU is Keras's `GRU(reset_after=True, recurrent_activation=
//! "sigmoid", activation="tanh")`: `n = tanh(W_n x + b_in + r * (U_n h + b_hn))`,
//! `h' = z * h + (1 - z) * n`. The LSTM has one bias in Keras (the sum of the input and
//! recurrent biases, which only ever appear added); the reset-after GRU keeps both, as the rows
//! of its `(2, 3H)` bias. Exporting a Keras LSTM bias puts it all in the input bias and zeros in
//! the recurrent one (the sum, and so every output, is the same).
//!
//! Only single-direction layers are handled here: PyTorch's `bidirectional=True` parameters
//! (`*_reverse`) and LSTM projections (`proj_size`, `weight_hr_l{k}`) are refused with an error
//! naming them. Multi-layer PyTorch modules map onto an [`RNN`] stack of cells, one per layer
//! ([`lstm_stack_from_torch`], [`gru_stack_from_torch`]).
//!
//! ```
//! use ndarray::Array3;
//! use recurrent::config::{LSTMCellConfig, SequenceOptions};
//! use recurrent::interop::{lstm_from_torch, lstm_to_torch};
//! use recurrent::layers::LSTMCell;
//!
//! // A tf.keras LSTM cell (sigmoid, tanh) with 5 units over 3 inputs, out to PyTorch and back.
//! let cell = LSTMCell::build(LSTMCellConfig::tf_keras(5), 3, 7)?;
//! let torch = lstm_to_torch(&cell)?;
//! assert_eq!(torch.weight_ih.dim(), (20, 3)); // (4 * hidden_size, input_size)
//! let mut lstm = lstm_from_torch(&torch, SequenceOptions::default())?;
//! let out = lstm.call(Array3::<f32>::zeros((2, 4, 3)).view())?;
//! assert_eq!(out.output.shape(), &[2, 5]);
//! # Ok::<(), recurrent::Error>(())
//! ```

use crate::activation::Activation;
use crate::config::{GRUCellConfig, LSTMCellConfig, SequenceOptions};
use crate::error::fmt_shape;
use crate::layers::cells::check_shape;
use crate::layers::{AnyCell, GRUCell, LSTMCell, GRU, LSTM, RNN};
use crate::{Error, Result};
use ndarray::{s, Array1, Array2, ArrayD, ArrayView1, ArrayView2, Ix1, Ix2};
use std::collections::BTreeMap;

/// Keras GRU gate block `j` (`z, r, h`) is PyTorch / cuDNN gate block `GRU_PERM[j]` (`r, z, n`),
/// and the other way round (the permutation swaps the first two blocks, so it is its own
/// inverse).
const GRU_PERM: [usize; 3] = [1, 0, 2];
/// LSTM gate orders coincide (`i, f, c|g, o`).
const LSTM_PERM: [usize; 4] = [0, 1, 2, 3];

/// Which recurrence a set of parameters belongs to (cuDNN's `cudnnRNNMode_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RnnMode {
    /// `CUDNN_LSTM` / `nn.LSTM`: 4 gates.
    Lstm,
    /// `CUDNN_GRU` / `nn.GRU`: 3 gates, reset applied after the recurrent product.
    Gru,
}

impl RnnMode {
    /// The number of gates: 4 for LSTM, 3 for GRU.
    pub fn gates(self) -> usize {
        match self {
            RnnMode::Lstm => 4,
            RnnMode::Gru => 3,
        }
    }

    /// The number of cuDNN linear-layer ids (input and recurrent matrices): `2 * gates`.
    pub fn linear_layers(self) -> usize {
        2 * self.gates()
    }

    /// The length of [`CudnnCanonical::to_flat`] for one unidirectional layer:
    /// `gates * H * (I + H)` weights, plus `2 * gates * H` biases when `with_bias`.
    pub fn flat_len(self, input: usize, hidden: usize, with_bias: bool) -> usize {
        // Saturating, so that absurd sizes give a length mismatch rather than an overflow.
        let g = self.gates();
        let weights = g
            .saturating_mul(hidden)
            .saturating_mul(input.saturating_add(hidden));
        let biases = if with_bias {
            g.saturating_mul(2).saturating_mul(hidden)
        } else {
            0
        };
        weights.saturating_add(biases)
    }

    fn name(self) -> &'static str {
        match self {
            RnnMode::Lstm => "LSTM",
            RnnMode::Gru => "GRU",
        }
    }

    fn perm(self) -> &'static [usize] {
        match self {
            RnnMode::Lstm => &LSTM_PERM,
            RnnMode::Gru => &GRU_PERM,
        }
    }
}

// ---------------------------------------------------------------- shared gate shuffling

/// Keras `(rows, g*H)` -> PyTorch / cuDNN `(g*H, rows)`: each Keras column block transposed and
/// put at its PyTorch position.
fn keras_to_torch_matrix(k: ArrayView2<f32>, mode: RnnMode, hidden: usize) -> Array2<f32> {
    let rows = k.nrows();
    let mut out = Array2::zeros((mode.gates() * hidden, rows));
    for (kj, &tj) in mode.perm().iter().enumerate() {
        out.slice_mut(s![tj * hidden..(tj + 1) * hidden, ..])
            .assign(&k.slice(s![.., kj * hidden..(kj + 1) * hidden]).t());
    }
    out
}

/// PyTorch / cuDNN `(g*H, cols)` -> Keras `(cols, g*H)`, the inverse of
/// [`keras_to_torch_matrix`].
fn torch_to_keras_matrix(t: ArrayView2<f32>, mode: RnnMode, hidden: usize) -> Array2<f32> {
    let cols = t.ncols();
    let mut out = Array2::zeros((cols, mode.gates() * hidden));
    for (kj, &tj) in mode.perm().iter().enumerate() {
        out.slice_mut(s![.., kj * hidden..(kj + 1) * hidden])
            .assign(&t.slice(s![tj * hidden..(tj + 1) * hidden, ..]).t());
    }
    out
}

/// Reorders the `g` blocks of a bias vector between Keras's and PyTorch's gate orders (the
/// permutations used here are their own inverses, so this goes both ways).
fn permute_bias(b: ArrayView1<f32>, mode: RnnMode, hidden: usize) -> Array1<f32> {
    let mut out = Array1::zeros(mode.gates() * hidden);
    for (kj, &tj) in mode.perm().iter().enumerate() {
        out.slice_mut(s![tj * hidden..(tj + 1) * hidden])
            .assign(&b.slice(s![kj * hidden..(kj + 1) * hidden]));
    }
    out
}

/// Errors unless a cell's activations are the sigmoid / tanh that PyTorch and cuDNN hard-code.
fn require_sigmoid_tanh(
    target: &str,
    class: &str,
    activation: Activation,
    recurrent_activation: Activation,
) -> Result<()> {
    if recurrent_activation != Activation::Sigmoid {
        return Err(Error::config(
            "recurrent_activation",
            format!(
                "{target} computes the gates of {class} with sigmoid; this cell uses `{}`, which {target} cannot express",
                recurrent_activation.name()
            ),
        ));
    }
    if activation != Activation::Tanh {
        return Err(Error::config(
            "activation",
            format!(
                "{target} computes {class} with tanh; this cell uses `{}`, which {target} cannot express",
                activation.name()
            ),
        ));
    }
    Ok(())
}

fn require_reset_after(target: &str, config: &GRUCellConfig) -> Result<()> {
    if !config.reset_after {
        return Err(Error::config(
            "reset_after",
            format!(
                "{target}'s GRU applies the reset gate after the recurrent product (Keras reset_after=True); this cell has reset_after=False, which {target} cannot express"
            ),
        ));
    }
    Ok(())
}

/// The GRU cell's bias as its `(input, recurrent)` rows (both `(3H,)`, Keras order), if any.
fn gru_bias_rows(cell: &GRUCell) -> Option<(Array1<f32>, Array1<f32>)> {
    match (&cell.input_bias, &cell.recurrent_bias) {
        (Some(b), Some(c)) => Some((b.clone(), c.clone())),
        _ => None,
    }
}

fn stack_rows(a: ArrayView1<f32>, b: ArrayView1<f32>) -> ArrayD<f32> {
    let mut m = Array2::zeros((2, a.len()));
    m.row_mut(0).assign(&a);
    m.row_mut(1).assign(&b);
    m.into_dyn()
}

// ---------------------------------------------------------------- PyTorch

/// The parameters of one layer, one direction, of PyTorch's `nn.LSTM`.
///
/// Gate order `i, f, g, o` (row blocks of `H` rows each); `g` is Keras's `c`.
///
/// * `weight_ih`: `(4H, I)` (`weight_ih_l{k}`; `I` is `H` for layers `k > 0`)
/// * `weight_hh`: `(4H, H)` (`weight_hh_l{k}`)
/// * `bias_ih`, `bias_hh`: `(4H,)` each, both present (`bias=True`) or both absent
#[derive(Debug, Clone, PartialEq)]
pub struct TorchLstmParams {
    /// `(4H, I)`, gate row blocks `i, f, g, o`.
    pub weight_ih: Array2<f32>,
    /// `(4H, H)`, gate row blocks `i, f, g, o`.
    pub weight_hh: Array2<f32>,
    /// `(4H,)`, or `None` for `bias=False`.
    pub bias_ih: Option<Array1<f32>>,
    /// `(4H,)`, or `None` for `bias=False`.
    pub bias_hh: Option<Array1<f32>>,
}

/// The parameters of one layer, one direction, of PyTorch's `nn.GRU`.
///
/// Gate order `r, z, n` (row blocks of `H` rows each); Keras's is `z, r, h`.
///
/// * `weight_ih`: `(3H, I)` (`weight_ih_l{k}`)
/// * `weight_hh`: `(3H, H)` (`weight_hh_l{k}`)
/// * `bias_ih`, `bias_hh`: `(3H,)` each, both present or both absent
#[derive(Debug, Clone, PartialEq)]
pub struct TorchGruParams {
    /// `(3H, I)`, gate row blocks `r, z, n`.
    pub weight_ih: Array2<f32>,
    /// `(3H, H)`, gate row blocks `r, z, n`.
    pub weight_hh: Array2<f32>,
    /// `(3H,)`, or `None` for `bias=False`.
    pub bias_ih: Option<Array1<f32>>,
    /// `(3H,)`, or `None` for `bias=False`.
    pub bias_hh: Option<Array1<f32>>,
}

/// What [`from_torch_state_dict`] can read: [`TorchLstmParams`] and [`TorchGruParams`].
pub trait TorchRnnParams: Sized {
    /// LSTM or GRU.
    const MODE: RnnMode;
    /// From the four parts (checked by the conversions, not here).
    fn from_parts(
        weight_ih: Array2<f32>,
        weight_hh: Array2<f32>,
        bias_ih: Option<Array1<f32>>,
        bias_hh: Option<Array1<f32>>,
    ) -> Self;
}

impl TorchRnnParams for TorchLstmParams {
    const MODE: RnnMode = RnnMode::Lstm;
    fn from_parts(
        weight_ih: Array2<f32>,
        weight_hh: Array2<f32>,
        bias_ih: Option<Array1<f32>>,
        bias_hh: Option<Array1<f32>>,
    ) -> Self {
        TorchLstmParams {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
        }
    }
}

impl TorchRnnParams for TorchGruParams {
    const MODE: RnnMode = RnnMode::Gru;
    fn from_parts(
        weight_ih: Array2<f32>,
        weight_hh: Array2<f32>,
        bias_ih: Option<Array1<f32>>,
        bias_hh: Option<Array1<f32>>,
    ) -> Self {
        TorchGruParams {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
        }
    }
}

/// Checks the four parts against each other; returns `(input_size, hidden_size)`. Errors name
/// the fields with the `suffix` appended (`""` or `"_l0"`).
fn torch_dims(
    mode: RnnMode,
    suffix: &str,
    weight_ih: ArrayView2<f32>,
    weight_hh: ArrayView2<f32>,
    bias_ih: Option<ArrayView1<f32>>,
    bias_hh: Option<ArrayView1<f32>>,
) -> Result<(usize, usize)> {
    let g = mode.gates();
    let h = weight_hh.ncols();
    check_shape(
        &format!("weight_hh{suffix}"),
        weight_hh.shape(),
        &[g * h, h],
    )?;
    let i = weight_ih.ncols();
    check_shape(
        &format!("weight_ih{suffix}"),
        weight_ih.shape(),
        &[g * h, i],
    )?;
    match (bias_ih, bias_hh) {
        (Some(a), Some(b)) => {
            check_shape(&format!("bias_ih{suffix}"), a.shape(), &[g * h])?;
            check_shape(&format!("bias_hh{suffix}"), b.shape(), &[g * h])?;
        }
        (None, None) => {}
        (Some(_), None) => {
            return Err(Error::MissingWeight {
                name: format!("bias_hh{suffix}"),
                expected: format!("({},) (PyTorch has both biases or neither)", g * h),
            })
        }
        (None, Some(_)) => {
            return Err(Error::MissingWeight {
                name: format!("bias_ih{suffix}"),
                expected: format!("({},) (PyTorch has both biases or neither)", g * h),
            })
        }
    }
    Ok((i, h))
}

macro_rules! torch_params_common {
    ($t:ident, $mode:expr) => {
        impl $t {
            /// `H`, PyTorch's `hidden_size` (Keras `units`).
            pub fn hidden_size(&self) -> usize {
                self.weight_hh.ncols()
            }

            /// `I`, PyTorch's `input_size` (the previous layer's `H` for layers `k > 0`).
            pub fn input_size(&self) -> usize {
                self.weight_ih.ncols()
            }

            /// Whether the biases are present (`bias=True`).
            pub fn has_bias(&self) -> bool {
                self.bias_ih.is_some() || self.bias_hh.is_some()
            }

            /// Checks the shapes against each other; returns `(input_size, hidden_size)`.
            pub fn check(&self) -> Result<(usize, usize)> {
                torch_dims(
                    $mode,
                    "",
                    self.weight_ih.view(),
                    self.weight_hh.view(),
                    self.bias_ih.as_ref().map(|b| b.view()),
                    self.bias_hh.as_ref().map(|b| b.view()),
                )
            }

            /// Layer `layer` of a PyTorch `state_dict` (see [`from_torch_state_dict`]).
            pub fn from_state_dict(
                map: &BTreeMap<String, ArrayD<f32>>,
                layer: usize,
            ) -> Result<Self> {
                from_torch_state_dict(map, layer)
            }

            /// The `state_dict` entries of layer `layer`: `weight_ih_l{layer}`,
            /// `weight_hh_l{layer}` and, with biases, `bias_ih_l{layer}`, `bias_hh_l{layer}`.
            pub fn to_state_dict(&self, layer: usize) -> BTreeMap<String, ArrayD<f32>> {
                let mut m = BTreeMap::new();
                m.insert(
                    format!("weight_ih_l{layer}"),
                    self.weight_ih.clone().into_dyn(),
                );
                m.insert(
                    format!("weight_hh_l{layer}"),
                    self.weight_hh.clone().into_dyn(),
                );
                if let Some(b) = &self.bias_ih {
                    m.insert(format!("bias_ih_l{layer}"), b.clone().into_dyn());
                }
                if let Some(b) = &self.bias_hh {
                    m.insert(format!("bias_hh_l{layer}"), b.clone().into_dyn());
                }
                m
            }
        }
    };
}
torch_params_common!(TorchLstmParams, RnnMode::Lstm);
torch_params_common!(TorchGruParams, RnnMode::Gru);

fn dict_2d(
    map: &BTreeMap<String, ArrayD<f32>>,
    name: &str,
    expected: String,
) -> Result<Array2<f32>> {
    let a = map.get(name).cloned().ok_or_else(|| Error::MissingWeight {
        name: name.to_string(),
        expected: expected.clone(),
    })?;
    let shape = a.shape().to_vec();
    a.into_dimensionality::<Ix2>()
        .map_err(|_| Error::shape(name, expected, &shape))
}

fn dict_1d(
    map: &BTreeMap<String, ArrayD<f32>>,
    name: &str,
    expected: String,
) -> Result<Option<Array1<f32>>> {
    match map.get(name).cloned() {
        None => Ok(None),
        Some(a) => {
            let shape = a.shape().to_vec();
            a.into_dimensionality::<Ix1>()
                .map(Some)
                .map_err(|_| Error::shape(name, expected, &shape))
        }
    }
}

/// Picks layer `layer` of a PyTorch `nn.LSTM` / `nn.GRU` `state_dict` (names without a module
/// prefix: strip `"lstm."` and the like first): `weight_ih_l{layer}` `(gH, I)`,
/// `weight_hh_l{layer}` `(gH, H)` and, if present, `bias_ih_l{layer}`, `bias_hh_l{layer}`
/// `(gH,)`, with `g` = 4 (LSTM) or 3 (GRU). Other entries are ignored.
///
/// ```
/// # use std::collections::BTreeMap;
/// # use ndarray::ArrayD;
/// use recurrent::interop::{from_torch_state_dict, TorchGruParams};
/// # let mut map = BTreeMap::new();
/// # map.insert("weight_ih_l0".to_string(), ArrayD::<f32>::zeros(vec![15, 3]));
/// # map.insert("weight_hh_l0".to_string(), ArrayD::<f32>::zeros(vec![15, 5]));
/// let p: TorchGruParams = from_torch_state_dict(&map, 0)?;
/// assert_eq!((p.input_size(), p.hidden_size()), (3, 5));
/// # Ok::<(), recurrent::Error>(())
/// ```
///
/// Errors: a missing weight ([`Error::MissingWeight`] with its name), a wrong rank or shape
/// ([`Error::Shape`] with the name, expected and found shapes), only one of the two biases, and
/// parameters this crate does not map: `*_l{layer}_reverse` (a bidirectional module) and
/// `weight_hr_l{layer}` (an LSTM with `proj_size`), both [`Error::UnexpectedWeight`].
pub fn from_torch_state_dict<P: TorchRnnParams>(
    map: &BTreeMap<String, ArrayD<f32>>,
    layer: usize,
) -> Result<P> {
    let mode = P::MODE;
    let g = mode.gates();
    let suffix = format!("_l{layer}");
    for name in [
        format!("weight_ih{suffix}_reverse"),
        format!("weight_hh{suffix}_reverse"),
        format!("bias_ih{suffix}_reverse"),
        format!("bias_hh{suffix}_reverse"),
    ] {
        if map.contains_key(&name) {
            return Err(Error::UnexpectedWeight {
                name,
                why: format!(
                    "bidirectional PyTorch {} parameters are not supported here; convert the forward direction only from a unidirectional module",
                    mode.name()
                ),
            });
        }
    }
    let hr = format!("weight_hr{suffix}");
    if map.contains_key(&hr) {
        return Err(Error::UnexpectedWeight {
            name: hr,
            why: "PyTorch LSTM projections (proj_size > 0) have no Keras equivalent".into(),
        });
    }
    let hh_name = format!("weight_hh{suffix}");
    let weight_hh = dict_2d(map, &hh_name, format!("({g} * hidden_size, hidden_size)"))?;
    let h = weight_hh.ncols();
    check_shape(&hh_name, weight_hh.shape(), &[g * h, h])?;
    let weight_ih = dict_2d(
        map,
        &format!("weight_ih{suffix}"),
        format!("({}, input_size)", g * h),
    )?;
    let bias_ih = dict_1d(map, &format!("bias_ih{suffix}"), fmt_shape(&[g * h]))?;
    let bias_hh = dict_1d(map, &format!("bias_hh{suffix}"), fmt_shape(&[g * h]))?;
    torch_dims(
        mode,
        &suffix,
        weight_ih.view(),
        weight_hh.view(),
        bias_ih.as_ref().map(|b| b.view()),
        bias_hh.as_ref().map(|b| b.view()),
    )?;
    Ok(P::from_parts(weight_ih, weight_hh, bias_ih, bias_hh))
}

/// The Keras `LSTMCell` (`sigmoid`, `tanh`; `use_bias` iff the biases are present) equal to a
/// PyTorch LSTM layer: `kernel = weight_ih.T`, `recurrent_kernel = weight_hh.T` (gate orders
/// coincide), `bias = bias_ih + bias_hh`.
pub fn lstm_cell_from_torch(p: &TorchLstmParams) -> Result<LSTMCell> {
    let (_, h) = p.check()?;
    let mode = RnnMode::Lstm;
    let kernel = torch_to_keras_matrix(p.weight_ih.view(), mode, h);
    let recurrent = torch_to_keras_matrix(p.weight_hh.view(), mode, h);
    let bias = match (&p.bias_ih, &p.bias_hh) {
        (Some(a), Some(b)) => Some(a + b),
        _ => None,
    };
    let config = LSTMCellConfig {
        use_bias: bias.is_some(),
        ..LSTMCellConfig::tf_keras(h)
    };
    LSTMCell::new(config, kernel, recurrent, bias)
}

/// A Keras `LSTM` layer from a PyTorch LSTM layer; see [`lstm_cell_from_torch`].
pub fn lstm_from_torch(p: &TorchLstmParams, options: SequenceOptions) -> Result<LSTM> {
    Ok(LSTM::from_cell(lstm_cell_from_torch(p)?, options))
}

/// A PyTorch LSTM layer from a Keras `LSTMCell`: `weight_ih = kernel.T`,
/// `weight_hh = recurrent_kernel.T`, `bias_ih = bias`, `bias_hh = zeros` (`None` for both
/// without bias).
///
/// Errors ([`Error::Config`] naming the field) unless `recurrent_activation` is `sigmoid` and
/// `activation` is `tanh`, the only ones PyTorch's LSTM has (Keras 2's default `hard_sigmoid`
/// is refused).
pub fn lstm_to_torch(cell: &LSTMCell) -> Result<TorchLstmParams> {
    let c = &cell.config;
    require_sigmoid_tanh("PyTorch", "nn.LSTM", c.activation, c.recurrent_activation)?;
    let (h, mode) = (c.units, RnnMode::Lstm);
    let bias_ih = cell.bias.as_ref().map(|b| permute_bias(b.view(), mode, h));
    let bias_hh = bias_ih.as_ref().map(|b| Array1::zeros(b.len()));
    Ok(TorchLstmParams {
        weight_ih: keras_to_torch_matrix(cell.kernel.view(), mode, h),
        weight_hh: keras_to_torch_matrix(cell.recurrent_kernel.view(), mode, h),
        bias_ih,
        bias_hh,
    })
}

/// The Keras `GRUCell` (`reset_after=True`, `sigmoid`, `tanh`; `use_bias` iff the biases are
/// present) equal to a PyTorch GRU layer: the gate blocks reordered `r, z, n` -> `z, r, h` and
/// transposed, `bias (2, 3H) = [bias_ih; bias_hh]` reordered the same way.
pub fn gru_cell_from_torch(p: &TorchGruParams) -> Result<GRUCell> {
    let (_, h) = p.check()?;
    let mode = RnnMode::Gru;
    let kernel = torch_to_keras_matrix(p.weight_ih.view(), mode, h);
    let recurrent = torch_to_keras_matrix(p.weight_hh.view(), mode, h);
    let bias = match (&p.bias_ih, &p.bias_hh) {
        (Some(a), Some(b)) => Some(stack_rows(
            permute_bias(a.view(), mode, h).view(),
            permute_bias(b.view(), mode, h).view(),
        )),
        _ => None,
    };
    let config = GRUCellConfig {
        use_bias: bias.is_some(),
        ..GRUCellConfig::tf_keras(h)
    };
    GRUCell::new(config, kernel, recurrent, bias)
}

/// A Keras `GRU(reset_after=True)` layer from a PyTorch GRU layer; see [`gru_cell_from_torch`].
pub fn gru_from_torch(p: &TorchGruParams, options: SequenceOptions) -> Result<GRU> {
    Ok(GRU::from_cell(gru_cell_from_torch(p)?, options))
}

/// A PyTorch GRU layer from a Keras `GRUCell`: gate blocks reordered `z, r, h` -> `r, z, n` and
/// transposed; `bias_ih`, `bias_hh` = the rows of the `(2, 3H)` bias, reordered.
///
/// Errors ([`Error::Config`] naming the field) unless `reset_after` is true (PyTorch's GRU is
/// the reset-after variant), `recurrent_activation` is `sigmoid` and `activation` is `tanh`.
pub fn gru_to_torch(cell: &GRUCell) -> Result<TorchGruParams> {
    let c = &cell.config;
    require_reset_after("PyTorch", c)?;
    require_sigmoid_tanh("PyTorch", "nn.GRU", c.activation, c.recurrent_activation)?;
    let (h, mode) = (c.units, RnnMode::Gru);
    let (bias_ih, bias_hh) = match gru_bias_rows(cell) {
        Some((b, r)) => (
            Some(permute_bias(b.view(), mode, h)),
            Some(permute_bias(r.view(), mode, h)),
        ),
        None => (None, None),
    };
    Ok(TorchGruParams {
        weight_ih: keras_to_torch_matrix(cell.kernel.view(), mode, h),
        weight_hh: keras_to_torch_matrix(cell.recurrent_kernel.view(), mode, h),
        bias_ih,
        bias_hh,
    })
}

/// Layers `0..num_layers` of a multi-layer PyTorch `nn.LSTM` `state_dict` as a Keras
/// `RNN([LSTMCell, ...])` stack (states `cells.0.h`, `cells.0.c`, `cells.1.h`, ...; PyTorch's
/// `h_n[k]`, `c_n[k]` are `cells.k.h`, `cells.k.c`). Inter-layer `dropout` is training only.
pub fn lstm_stack_from_torch(
    map: &BTreeMap<String, ArrayD<f32>>,
    num_layers: usize,
    options: SequenceOptions,
) -> Result<RNN> {
    let cells = (0..num_layers)
        .map(|k| {
            let p: TorchLstmParams = from_torch_state_dict(map, k)?;
            Ok(AnyCell::from(lstm_cell_from_torch(&p)?))
        })
        .collect::<Result<Vec<_>>>()?;
    RNN::stacked(cells, options)
}

/// Layers `0..num_layers` of a multi-layer PyTorch `nn.GRU` `state_dict` as a Keras
/// `RNN([GRUCell(reset_after=True), ...])` stack (states `cells.k.h` = PyTorch's `h_n[k]`).
pub fn gru_stack_from_torch(
    map: &BTreeMap<String, ArrayD<f32>>,
    num_layers: usize,
    options: SequenceOptions,
) -> Result<RNN> {
    let cells = (0..num_layers)
        .map(|k| {
            let p: TorchGruParams = from_torch_state_dict(map, k)?;
            Ok(AnyCell::from(gru_cell_from_torch(&p)?))
        })
        .collect::<Result<Vec<_>>>()?;
    RNN::stacked(cells, options)
}

// ---------------------------------------------------------------- cuDNN canonical

/// cuDNN's canonical parameters of one unidirectional layer, as `cudnnGetRNNWeightParams`
/// addresses them by linear-layer id.
///
/// * LSTM (`CUDNN_LSTM`): `weights[0..4]` are the input matrices of gates `i, f, g, o`, each
///   `(H, I)` row-major; `weights[4..8]` the recurrent matrices `(H, H)` of `i, f, g, o`;
///   `biases[id]` `(H,)` for the same ids (input biases 0..3, then recurrent biases 4..7).
/// * GRU (`CUDNN_GRU`): `weights[0..3]` input `(H, I)` for `r, z, h`; `weights[3..6]` recurrent
///   `(H, H)` for `r, z, h`; `biases` likewise (6 of them).
/// * `biases` is empty for `CUDNN_RNN_NO_BIAS`; otherwise it has one vector per id
///   (`CUDNN_RNN_DOUBLE_BIAS`, cuDNN's default).
///
/// The matrices are the PyTorch ones cut per gate (PyTorch's `weight_ih` is `weights[0..g]`
/// stacked, in the same gate order), and the transposes of Keras's gate blocks.
///
/// [`to_flat`](Self::to_flat) / [`from_flat`](Self::from_flat) use this crate's canonical flat
/// order: all weights in id order, each row-major, then all biases in id order. That is the
/// packing of cuDNN's weight space for one unidirectional layer when its regions are queried in
/// id order (and what TensorFlow's `CudnnRNN` canonical params and Keras's CuDNN layers
/// concatenate), but cuDNN does not promise where each region lies in its own buffer: fill a
/// real cuDNN weight buffer through the pointers `cudnnGetRNNWeightParams` returns for each
/// `linLayerID`, copying `weights[id]` and `biases[id]` there.
#[derive(Debug, Clone, PartialEq)]
pub struct CudnnCanonical {
    /// By linear-layer id: `2 * gates` matrices, input `(H, I)` then recurrent `(H, H)`.
    pub weights: Vec<Array2<f32>>,
    /// By linear-layer id: `2 * gates` vectors `(H,)`, or none (no bias).
    pub biases: Vec<Array1<f32>>,
}

impl CudnnCanonical {
    /// Checks the arrays against each other; returns `(mode, input_size, hidden_size)`. The mode
    /// follows from the count of matrices (8: LSTM, 6: GRU).
    pub fn check(&self) -> Result<(RnnMode, usize, usize)> {
        let mode = match self.weights.len() {
            8 => RnnMode::Lstm,
            6 => RnnMode::Gru,
            n => {
                return Err(Error::invalid(
                    "weights",
                    format!("expected 8 matrices (LSTM) or 6 (GRU), found {n}"),
                ))
            }
        };
        let g = mode.gates();
        let (h, i) = self.weights[0].dim();
        for (id, w) in self.weights.iter().enumerate() {
            let cols = if id < g { i } else { h };
            check_shape(&format!("weights[{id}]"), w.shape(), &[h, cols])?;
        }
        if !self.biases.is_empty() {
            if self.biases.len() != 2 * g {
                return Err(Error::invalid(
                    "biases",
                    format!(
                        "expected {} vectors for {} (or none for no bias), found {}",
                        2 * g,
                        mode.name(),
                        self.biases.len()
                    ),
                ));
            }
            for (id, b) in self.biases.iter().enumerate() {
                check_shape(&format!("biases[{id}]"), b.shape(), &[h])?;
            }
        }
        Ok((mode, i, h))
    }

    /// All weights in id order (each row-major), then all biases in id order; length
    /// [`RnnMode::flat_len`]. See the type's docs for how this relates to cuDNN's buffer.
    pub fn to_flat(&self) -> Vec<f32> {
        self.weights
            .iter()
            .flat_map(|w| w.iter().copied())
            .chain(self.biases.iter().flat_map(|b| b.iter().copied()))
            .collect()
    }

    /// The inverse of [`to_flat`](Self::to_flat): `flat` of length
    /// `mode.flat_len(input, hidden, true)` (with biases) or `mode.flat_len(input, hidden,
    /// false)` (no bias).
    pub fn from_flat(flat: &[f32], mode: RnnMode, input: usize, hidden: usize) -> Result<Self> {
        let with = mode.flat_len(input, hidden, true);
        let without = mode.flat_len(input, hidden, false);
        let has_bias = if flat.len() == with {
            true
        } else if flat.len() == without {
            false
        } else {
            return Err(Error::shape(
                "flat",
                format!(
                    "({with},) ({} with biases, input {input}, hidden {hidden}) or ({without},) without",
                    mode.name()
                ),
                &[flat.len()],
            ));
        };
        let g = mode.gates();
        let mut at = 0;
        let mut weights = Vec::with_capacity(2 * g);
        for id in 0..2 * g {
            let cols = if id < g { input } else { hidden };
            let n = hidden * cols;
            let w = Array2::from_shape_vec((hidden, cols), flat[at..at + n].to_vec())
                .map_err(|e| Error::invalid(format!("weights[{id}]"), e.to_string()))?;
            weights.push(w);
            at += n;
        }
        let mut biases = Vec::new();
        if has_bias {
            for _ in 0..2 * g {
                biases.push(Array1::from(flat[at..at + hidden].to_vec()));
                at += hidden;
            }
        }
        Ok(CudnnCanonical { weights, biases })
    }

    /// From a Keras `(rows, gH)` kernel pair and bias rows in Keras order.
    fn from_keras(
        mode: RnnMode,
        kernel: ArrayView2<f32>,
        recurrent: ArrayView2<f32>,
        biases: Option<(ArrayView1<f32>, ArrayView1<f32>)>,
        h: usize,
    ) -> Self {
        let g = mode.gates();
        let wi = keras_to_torch_matrix(kernel, mode, h);
        let wh = keras_to_torch_matrix(recurrent, mode, h);
        let cut = |m: &Array2<f32>, j: usize| m.slice(s![j * h..(j + 1) * h, ..]).to_owned();
        let weights = (0..g)
            .map(|j| cut(&wi, j))
            .chain((0..g).map(|j| cut(&wh, j)))
            .collect();
        let biases = match biases {
            None => Vec::new(),
            Some((bi, bh)) => {
                let (bi, bh) = (permute_bias(bi, mode, h), permute_bias(bh, mode, h));
                let cutb = |b: &Array1<f32>, j: usize| b.slice(s![j * h..(j + 1) * h]).to_owned();
                (0..g)
                    .map(|j| cutb(&bi, j))
                    .chain((0..g).map(|j| cutb(&bh, j)))
                    .collect()
            }
        };
        CudnnCanonical { weights, biases }
    }

    /// Keras `(kernel (I, gH), recurrent_kernel (H, gH), Option<(input bias, recurrent bias)>)`
    /// (biases `(gH,)`, Keras gate order) after checking the mode.
    #[allow(clippy::type_complexity)]
    fn to_keras(
        &self,
        want: RnnMode,
    ) -> Result<(Array2<f32>, Array2<f32>, Option<(Array1<f32>, Array1<f32>)>)> {
        let (mode, _, h) = self.check()?;
        if mode != want {
            return Err(Error::invalid(
                "weights",
                format!(
                    "expected {} parameters ({} matrices), found {} ({} matrices)",
                    want.name(),
                    want.linear_layers(),
                    mode.name(),
                    mode.linear_layers()
                ),
            ));
        }
        let g = mode.gates();
        let cat = |ms: &[Array2<f32>]| -> Result<Array2<f32>> {
            let views: Vec<_> = ms.iter().map(|m| m.view()).collect();
            ndarray::concatenate(ndarray::Axis(0), &views)
                .map_err(|e| Error::invalid("weights", e.to_string()))
        };
        let kernel = torch_to_keras_matrix(cat(&self.weights[..g])?.view(), mode, h);
        let recurrent = torch_to_keras_matrix(cat(&self.weights[g..])?.view(), mode, h);
        let biases = if self.biases.is_empty() {
            None
        } else {
            let catb = |bs: &[Array1<f32>]| -> Result<Array1<f32>> {
                let views: Vec<_> = bs.iter().map(|b| b.view()).collect();
                let b = ndarray::concatenate(ndarray::Axis(0), &views)
                    .map_err(|e| Error::invalid("biases", e.to_string()))?;
                Ok(permute_bias(b.view(), mode, h))
            };
            Some((catb(&self.biases[..g])?, catb(&self.biases[g..])?))
        };
        Ok((kernel, recurrent, biases))
    }

    /// From a Keras `LSTMCell` (`sigmoid`, `tanh`, else [`Error::Config`]): input biases = the
    /// Keras bias, recurrent biases = zeros; no biases without `use_bias`.
    pub fn from_lstm_cell(cell: &LSTMCell) -> Result<Self> {
        let c = &cell.config;
        require_sigmoid_tanh("cuDNN", "CUDNN_LSTM", c.activation, c.recurrent_activation)?;
        let zeros = Array1::zeros(4 * c.units);
        Ok(Self::from_keras(
            RnnMode::Lstm,
            cell.kernel.view(),
            cell.recurrent_kernel.view(),
            cell.bias.as_ref().map(|b| (b.view(), zeros.view())),
            c.units,
        ))
    }

    /// The Keras `LSTMCell` (`sigmoid`, `tanh`) equal to these LSTM parameters: per gate
    /// `kernel` block = `W.T`, `recurrent_kernel` block = `R.T`, `bias` = input + recurrent
    /// bias (`use_bias` false when there are no biases).
    pub fn to_lstm_cell(&self) -> Result<LSTMCell> {
        let (kernel, recurrent, biases) = self.to_keras(RnnMode::Lstm)?;
        let h = recurrent.nrows();
        let bias = biases.map(|(a, b)| a + b);
        let config = LSTMCellConfig {
            use_bias: bias.is_some(),
            ..LSTMCellConfig::tf_keras(h)
        };
        LSTMCell::new(config, kernel, recurrent, bias)
    }

    /// From a Keras `GRUCell` (`reset_after=True`, `sigmoid`, `tanh`, else [`Error::Config`]):
    /// gates reordered `z, r, h` -> `r, z, h`, biases from the rows of the `(2, 3H)` bias.
    pub fn from_gru_cell(cell: &GRUCell) -> Result<Self> {
        let c = &cell.config;
        require_reset_after("cuDNN", c)?;
        require_sigmoid_tanh("cuDNN", "CUDNN_GRU", c.activation, c.recurrent_activation)?;
        let rows = gru_bias_rows(cell);
        Ok(Self::from_keras(
            RnnMode::Gru,
            cell.kernel.view(),
            cell.recurrent_kernel.view(),
            rows.as_ref().map(|(a, b)| (a.view(), b.view())),
            c.units,
        ))
    }

    /// The Keras `GRUCell` (`reset_after=True`, `sigmoid`, `tanh`) equal to these GRU
    /// parameters: bias `(2, 3H)` = `[input biases; recurrent biases]` in Keras's gate order.
    pub fn to_gru_cell(&self) -> Result<GRUCell> {
        let (kernel, recurrent, biases) = self.to_keras(RnnMode::Gru)?;
        let h = recurrent.nrows();
        let bias = biases.map(|(a, b)| stack_rows(a.view(), b.view()));
        let config = GRUCellConfig {
            use_bias: bias.is_some(),
            ..GRUCellConfig::tf_keras(h)
        };
        GRUCell::new(config, kernel, recurrent, bias)
    }

    /// From the weights of a Keras `CuDNNLSTM` / `CuDNNGRU` (`get_weights()`: `kernel (I, gH)`,
    /// `recurrent_kernel (H, gH)`, `bias (2gH,)` = `[input | recurrent]`, Keras gate order),
    /// keeping input and recurrent biases apart. Per gate the cuDNN matrix is the Keras CuDNN
    /// kernel block's row-major buffer read as `(H, I)` (see [`crate::weights`]); the recurrent
    /// one is the block as it is.
    pub fn from_keras_cudnn(
        mode: RnnMode,
        kernel: ArrayView2<f32>,
        recurrent_kernel: ArrayView2<f32>,
        bias: ArrayView1<f32>,
    ) -> Result<Self> {
        let g = mode.gates();
        let h = recurrent_kernel.nrows();
        let i = kernel.nrows();
        check_shape("kernel", kernel.shape(), &[i, g * h])?;
        check_shape("recurrent_kernel", recurrent_kernel.shape(), &[h, g * h])?;
        check_shape("bias", bias.shape(), &[2 * g * h])?;
        let mut weights = vec![Array2::zeros((0, 0)); 2 * g];
        let mut biases = vec![Array1::zeros(0); 2 * g];
        for (kj, &cj) in mode.perm().iter().enumerate() {
            let block = kernel.slice(s![.., kj * h..(kj + 1) * h]);
            weights[cj] = Array2::from_shape_vec((h, i), block.iter().copied().collect())
                .map_err(|e| Error::invalid("kernel", e.to_string()))?;
            weights[g + cj] = recurrent_kernel
                .slice(s![.., kj * h..(kj + 1) * h])
                .to_owned();
            biases[cj] = bias.slice(s![kj * h..(kj + 1) * h]).to_owned();
            biases[g + cj] = bias.slice(s![(g + kj) * h..(g + kj + 1) * h]).to_owned();
        }
        Ok(CudnnCanonical { weights, biases })
    }

    /// The weights of the Keras `CuDNNLSTM` / `CuDNNGRU` (`kernel`, `recurrent_kernel`, `bias
    /// (2gH,)`) for these parameters, the inverse of [`from_keras_cudnn`](Self::from_keras_cudnn);
    /// zero biases when there are none.
    pub fn to_keras_cudnn(&self) -> Result<(Array2<f32>, Array2<f32>, Array1<f32>)> {
        let (mode, i, h) = self.check()?;
        let g = mode.gates();
        let mut kernel = Array2::zeros((i, g * h));
        let mut recurrent = Array2::zeros((h, g * h));
        let mut bias = Array1::zeros(2 * g * h);
        for (kj, &cj) in mode.perm().iter().enumerate() {
            let block = Array2::from_shape_vec((i, h), self.weights[cj].iter().copied().collect())
                .map_err(|e| Error::invalid(format!("weights[{cj}]"), e.to_string()))?;
            kernel
                .slice_mut(s![.., kj * h..(kj + 1) * h])
                .assign(&block);
            recurrent
                .slice_mut(s![.., kj * h..(kj + 1) * h])
                .assign(&self.weights[g + cj]);
            if !self.biases.is_empty() {
                bias.slice_mut(s![kj * h..(kj + 1) * h])
                    .assign(&self.biases[cj]);
                bias.slice_mut(s![(g + kj) * h..(g + kj + 1) * h])
                    .assign(&self.biases[g + cj]);
            }
        }
        Ok((kernel, recurrent, bias))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CuDNNConfig;
    use crate::layers::{CuDNNGRU, CuDNNLSTM};
    use crate::weights;
    use ndarray::Array;

    fn ramp(shape: (usize, usize), offset: f32) -> Array2<f32> {
        Array::from_shape_fn(shape, |(r, c)| offset + (r * shape.1 + c) as f32 * 0.01)
    }

    /// The CuDNN layer's plain-cell equivalent (built through `crate::weights`) converted to
    /// canonical gives, per gate, the CuDNN kernel block's untransposed row-major buffer read
    /// as `(H, I)`, and the recurrent block as it is; the direct conversion agrees exactly.
    #[test]
    fn cudnn_lstm_canonical_matches_the_cudnn_layer_buffers() {
        let (i, u) = (3, 5);
        let mut cfg = CuDNNConfig::new(u);
        cfg.initializers.bias_initializer =
            crate::initializers::Initializer::random_uniform().with_seed(Some(4));
        let layer = CuDNNLSTM::build(cfg, i, 11).unwrap();
        let w = layer.weights();
        let k = w[0].clone().into_dimensionality::<Ix2>().unwrap();
        let r = w[1].clone().into_dimensionality::<Ix2>().unwrap();
        let b = w[2].clone().into_dimensionality::<Ix1>().unwrap();
        let plain = layer.to_plain(SequenceOptions::default()).unwrap();
        let can = CudnnCanonical::from_lstm_cell(plain.cell().unwrap()).unwrap();
        for j in 0..4 {
            let block = k.slice(s![.., j * u..(j + 1) * u]);
            let buf: Vec<f32> = block.iter().copied().collect();
            let want = Array2::from_shape_vec((u, i), buf).unwrap();
            assert_eq!(can.weights[j], want, "W gate {j}");
            assert_eq!(
                can.weights[4 + j],
                r.slice(s![.., j * u..(j + 1) * u]),
                "R gate {j}"
            );
            let sum = &b.slice(s![j * u..(j + 1) * u]) + &b.slice(s![(4 + j) * u..(5 + j) * u]);
            assert_eq!(can.biases[j], sum, "bias gate {j}");
        }
        let direct =
            CudnnCanonical::from_keras_cudnn(RnnMode::Lstm, k.view(), r.view(), b.view()).unwrap();
        assert_eq!(direct.weights, can.weights);
        let (k2, r2, b2) = direct.to_keras_cudnn().unwrap();
        assert_eq!((k2, r2, b2), (k, r, b));
    }

    #[test]
    fn cudnn_gru_canonical_matches_the_cudnn_layer_buffers() {
        let (i, u) = (4, 3);
        let mut cfg = CuDNNConfig::new(u);
        cfg.initializers.bias_initializer =
            crate::initializers::Initializer::random_uniform().with_seed(Some(3));
        let layer = CuDNNGRU::build(cfg, i, 5).unwrap();
        let w = layer.weights();
        let k = w[0].clone().into_dimensionality::<Ix2>().unwrap();
        let r = w[1].clone().into_dimensionality::<Ix2>().unwrap();
        let b = w[2].clone().into_dimensionality::<Ix1>().unwrap();
        let cell = match &layer.as_rnn().cells()[0] {
            AnyCell::GRU(c) => c.clone(),
            other => panic!("not a GRU cell: {other:?}"),
        };
        let can = CudnnCanonical::from_gru_cell(&cell).unwrap();
        // cuDNN id order r, z, h; Keras z, r, h.
        for (id, kj) in [1usize, 0, 2].into_iter().enumerate() {
            let buf: Vec<f32> = k
                .slice(s![.., kj * u..(kj + 1) * u])
                .iter()
                .copied()
                .collect();
            assert_eq!(
                can.weights[id],
                Array2::from_shape_vec((u, i), buf).unwrap()
            );
            assert_eq!(can.weights[3 + id], r.slice(s![.., kj * u..(kj + 1) * u]));
            assert_eq!(can.biases[id], b.slice(s![kj * u..(kj + 1) * u]));
            assert_eq!(can.biases[3 + id], b.slice(s![(3 + kj) * u..(4 + kj) * u]));
        }
        let direct =
            CudnnCanonical::from_keras_cudnn(RnnMode::Gru, k.view(), r.view(), b.view()).unwrap();
        assert_eq!(direct, can);
        // And back through weights.rs: canonical -> cell -> CuDNN layout is the layer's own.
        let back = can.to_gru_cell().unwrap();
        assert_eq!(
            weights::plain_kernel_to_cudnn(back.kernel.view(), 3, u).unwrap(),
            k
        );
        assert_eq!(
            weights::transpose_recurrent_gates(back.recurrent_kernel.view(), 3, u).unwrap(),
            r
        );
    }

    #[test]
    fn gate_permutation_round_trips() {
        for mode in [RnnMode::Lstm, RnnMode::Gru] {
            let h = 2;
            let k = ramp((3, mode.gates() * h), 1.0);
            let t = keras_to_torch_matrix(k.view(), mode, h);
            assert_eq!(t.dim(), (mode.gates() * h, 3));
            assert_eq!(torch_to_keras_matrix(t.view(), mode, h), k);
            let b = Array1::from_iter((0..mode.gates() * h).map(|v| v as f32));
            let pb = permute_bias(b.view(), mode, h);
            assert_eq!(permute_bias(pb.view(), mode, h), b);
        }
        // GRU: Keras block z (0) lands at PyTorch rows 2..4 (second block).
        let k = ramp((1, 6), 0.0);
        let t = keras_to_torch_matrix(k.view(), RnnMode::Gru, 2);
        assert_eq!(t[[2, 0]], k[[0, 0]]);
        assert_eq!(t[[0, 0]], k[[0, 2]]);
    }
}
