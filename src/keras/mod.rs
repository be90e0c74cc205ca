//! Keras import: a layer exported as `layer.get_config()` JSON plus its weights, run exactly as
//! the `recurrent run` contract says (see `docs/keras-interchange.md`).

pub(crate) mod config;
pub mod npz;
mod run;

pub use run::{load_layer, run_files, Device, RunFiles, StorageType};

use crate::error::fmt_shape;
use crate::layers::{
    AnyCell, CallArgs, ConvLSTM2D, CuDNNGRU, CuDNNLSTM, GRUCell, LSTMCell, Output, SimpleRNNCell,
    GRU, LSTM, RNN,
};
use crate::{Error, Result};
use config::Cfg;
use ndarray::{Array1, Array2, Array4, ArrayD, ArrayViewD, Ix3};
use serde_json::Value;
use std::collections::BTreeMap;

/// The layer classes `recurrent run` accepts.
pub const LAYER_CLASSES: &[&str] = &[
    "SimpleRNN",
    "GRU",
    "LSTM",
    "ConvLSTM2D",
    "CuDNNGRU",
    "CuDNNLSTM",
    "RNN",
];

/// The cell classes an `RNN` config may hold.
pub const CELL_CLASSES: &[&str] = &["SimpleRNNCell", "GRUCell", "LSTMCell", "StackedRNNCells"];

/// Weights by name, as in `weights.npz`; taken one by one so that leftovers can be reported.
struct WeightMap {
    map: BTreeMap<String, ArrayD<f32>>,
}

impl WeightMap {
    fn take(&mut self, name: &str, expected: &str) -> Result<ArrayD<f32>> {
        self.map.remove(name).ok_or_else(|| Error::MissingWeight {
            name: name.to_string(),
            expected: expected.to_string(),
        })
    }

    fn take2(&mut self, name: &str, rows: Option<usize>, cols: usize) -> Result<Array2<f32>> {
        let expected = match rows {
            Some(r) => fmt_shape(&[r, cols]),
            None => format!("(input_dim, {cols})"),
        };
        let a = self.take(name, &expected)?;
        let ok = a.ndim() == 2 && a.shape()[1] == cols && rows.is_none_or(|r| a.shape()[0] == r);
        if !ok {
            return Err(Error::Shape {
                what: format!("weight `{name}`"),
                expected,
                found: fmt_shape(a.shape()),
            });
        }
        a.into_dimensionality()
            .map_err(|e| Error::invalid(name, e.to_string()))
    }

    fn take_shape(&mut self, name: &str, shape: &[usize]) -> Result<ArrayD<f32>> {
        let a = self.take(name, &fmt_shape(shape))?;
        if a.shape() != shape {
            return Err(Error::Shape {
                what: format!("weight `{name}`"),
                expected: fmt_shape(shape),
                found: fmt_shape(a.shape()),
            });
        }
        Ok(a)
    }

    fn take1(&mut self, name: &str, len: usize) -> Result<Array1<f32>> {
        self.take_shape(name, &[len])?
            .into_dimensionality()
            .map_err(|e| Error::invalid(name, e.to_string()))
    }

    /// The bias when `use_bias`, refusing one that should not be there.
    fn bias(&mut self, name: &str, use_bias: bool, shape: &[usize]) -> Result<Option<ArrayD<f32>>> {
        if use_bias {
            Ok(Some(self.take_shape(name, shape)?))
        } else if self.map.contains_key(name) {
            Err(Error::UnexpectedWeight {
                name: name.to_string(),
                why: "use_bias is false".into(),
            })
        } else {
            Ok(None)
        }
    }

    fn finish(self, expected: &[String]) -> Result<()> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(k) => Err(Error::UnexpectedWeight {
                name: k.clone(),
                why: format!("the layer's weights are {}", expected.join(", ")),
            }),
        }
    }
}

fn to1(a: Option<ArrayD<f32>>, name: &str) -> Result<Option<Array1<f32>>> {
    a.map(|a| {
        a.into_dimensionality()
            .map_err(|e| Error::invalid(name, e.to_string()))
    })
    .transpose()
}

/// A Keras layer loaded from its config and weights: one of [`LAYER_CLASSES`].
#[derive(Debug)]
pub enum KerasLayer {
    /// `SimpleRNN`.
    SimpleRNN(crate::layers::SimpleRNN),
    /// `GRU`.
    GRU(GRU),
    /// `LSTM`.
    LSTM(LSTM),
    /// `ConvLSTM2D`.
    ConvLSTM2D(ConvLSTM2D),
    /// `CuDNNGRU`.
    CuDNNGRU(CuDNNGRU),
    /// `CuDNNLSTM`.
    CuDNNLSTM(CuDNNLSTM),
    /// `RNN` over a cell or a stack of cells.
    RNN(RNN),
}

/// The class name and config object of a `{"class_name": ..., "config": ...}` value.
fn class_and_config<'a>(v: &'a Value, path: &str) -> Result<(&'a str, &'a Value)> {
    let class = match v.get("class_name") {
        Some(Value::String(c)) => c.as_str(),
        Some(other) => {
            return Err(Error::config(
                format!("{path}class_name"),
                format!("expected a string, found {other}"),
            ))
        }
        None => {
            return Err(Error::config(
                format!("{path}class_name"),
                "missing (expected a string)",
            ))
        }
    };
    let config = v
        .get("config")
        .ok_or_else(|| Error::config(format!("{path}config"), "missing (expected an object)"))?;
    Ok((class, config))
}

fn cell_from_config(
    v: &Value,
    path: &str,
    weights: &mut WeightMap,
    prefix: &str,
    names: &mut Vec<String>,
) -> Result<AnyCell> {
    let (class, cfg) = class_and_config(v, path)?;
    let c = Cfg::new(cfg, &format!("{path}config"))?;
    let n = |s: &str| format!("{prefix}{s}");
    names.extend([n("kernel"), n("recurrent_kernel"), n("bias")]);
    Ok(match class {
        "SimpleRNNCell" => {
            let cc = config::simple_rnn_cell(&c)?;
            let u = cc.units;
            let k = weights.take2(&n("kernel"), None, u)?;
            let r = weights.take2(&n("recurrent_kernel"), Some(u), u)?;
            let b = to1(weights.bias(&n("bias"), cc.use_bias, &[u])?, "bias")?;
            AnyCell::SimpleRNN(SimpleRNNCell::new(cc, k, r, b)?)
        }
        "GRUCell" => {
            let cc = config::gru_cell(&c)?;
            let u = cc.units;
            let k = weights.take2(&n("kernel"), None, 3 * u)?;
            let r = weights.take2(&n("recurrent_kernel"), Some(u), 3 * u)?;
            let shape: Vec<usize> = if cc.reset_after { vec![2, 3 * u] } else { vec![3 * u] };
            let b = weights.bias(&n("bias"), cc.use_bias, &shape)?;
            AnyCell::GRU(GRUCell::new(cc, k, r, b)?)
        }
        "LSTMCell" => {
            let cc = config::lstm_cell(&c)?;
            let u = cc.units;
            let k = weights.take2(&n("kernel"), None, 4 * u)?;
            let r = weights.take2(&n("recurrent_kernel"), Some(u), 4 * u)?;
            let b = to1(weights.bias(&n("bias"), cc.use_bias, &[4 * u])?, "bias")?;
            AnyCell::LSTM(LSTMCell::new(cc, k, r, b)?)
        }
        other => {
            return Err(Error::UnknownClass {
                expected: format!("a cell class at `{path}class_name`: SimpleRNNCell, GRUCell, LSTMCell, or a list / StackedRNNCells of them"),
                found: other.to_string(),
            })
        }
    })
}

impl KerasLayer {
    /// Builds a layer from `layer.json`'s value (`{"class_name": ..., "config": ...}`) and its
    /// weights by name (see the contract for the names). Every weight must be used.
    pub fn from_keras(layer: &Value, weights: BTreeMap<String, ArrayD<f32>>) -> Result<Self> {
        let (class, cfg) = class_and_config(layer, "")?;
        let c = Cfg::new(cfg, "config")?;
        let mut w = WeightMap { map: weights };
        let mut names: Vec<String> =
            vec!["kernel".into(), "recurrent_kernel".into(), "bias".into()];
        let seq = config::sequence_options(&c)?;
        let layer = match class {
            "SimpleRNN" => {
                let cell = match cell_from_config(
                    &serde_json::json!({"class_name": "SimpleRNNCell", "config": cfg}),
                    "",
                    &mut w,
                    "",
                    &mut Vec::new(),
                )? {
                    AnyCell::SimpleRNN(cell) => cell,
                    _ => return Err(Error::invalid("SimpleRNN", "internal: wrong cell")),
                };
                KerasLayer::SimpleRNN(crate::layers::SimpleRNN::from_cell(cell, seq))
            }
            "GRU" => {
                let cc = config::gru_cell(&c)?;
                let u = cc.units;
                let k = w.take2("kernel", None, 3 * u)?;
                let r = w.take2("recurrent_kernel", Some(u), 3 * u)?;
                let shape: Vec<usize> = if cc.reset_after {
                    vec![2, 3 * u]
                } else {
                    vec![3 * u]
                };
                let b = w.bias("bias", cc.use_bias, &shape)?;
                KerasLayer::GRU(GRU::new(cc, seq, k, r, b)?)
            }
            "LSTM" => {
                let cc = config::lstm_cell(&c)?;
                let u = cc.units;
                let k = w.take2("kernel", None, 4 * u)?;
                let r = w.take2("recurrent_kernel", Some(u), 4 * u)?;
                let b = to1(w.bias("bias", cc.use_bias, &[4 * u])?, "bias")?;
                KerasLayer::LSTM(LSTM::new(cc, seq, k, r, b)?)
            }
            "CuDNNLSTM" | "CuDNNGRU" => {
                let cc = config::cudnn(&c)?;
                let u = cc.units;
                let g = if class == "CuDNNLSTM" { 4 } else { 3 };
                let k = w.take2("kernel", None, g * u)?;
                let r = w.take2("recurrent_kernel", Some(u), g * u)?;
                let b = w.take1("bias", 2 * g * u)?;
                if g == 4 {
                    KerasLayer::CuDNNLSTM(CuDNNLSTM::new(cc, k, r, b)?)
                } else {
                    KerasLayer::CuDNNGRU(CuDNNGRU::new(cc, k, r, b)?)
                }
            }
            "ConvLSTM2D" => {
                let cc = config::conv_lstm2d(&c)?;
                let (kh, kw) = cc.kernel_size;
                let f = cc.filters;
                let k = w.take("kernel", &format!("({kh}, {kw}, channels, {})", 4 * f))?;
                if k.ndim() != 4
                    || k.shape()[0] != kh
                    || k.shape()[1] != kw
                    || k.shape()[3] != 4 * f
                {
                    return Err(Error::Shape {
                        what: "weight `kernel`".into(),
                        expected: format!("({kh}, {kw}, channels, {})", 4 * f),
                        found: fmt_shape(k.shape()),
                    });
                }
                let r = w.take_shape("recurrent_kernel", &[kh, kw, f, 4 * f])?;
                let b = to1(w.bias("bias", cc.use_bias, &[4 * f])?, "bias")?;
                let k: Array4<f32> = k
                    .into_dimensionality()
                    .map_err(|e| Error::invalid("kernel", e.to_string()))?;
                let r: Array4<f32> = r
                    .into_dimensionality()
                    .map_err(|e| Error::invalid("recurrent_kernel", e.to_string()))?;
                KerasLayer::ConvLSTM2D(ConvLSTM2D::new(cc, k, r, b)?)
            }
            "RNN" => {
                names.clear();
                let cell = cfg.get("cell").ok_or_else(|| {
                    Error::config(
                        "config.cell",
                        "missing (expected a cell config or a list of them)",
                    )
                })?;
                let (stack, list): (bool, Vec<&Value>) = if let Some(l) = cell.as_array() {
                    (true, l.iter().collect())
                } else if cell.get("class_name").and_then(|c| c.as_str()) == Some("StackedRNNCells")
                {
                    let cells = cell
                        .get("config")
                        .and_then(|c| c.get("cells"))
                        .and_then(|c| c.as_array())
                        .ok_or_else(|| {
                            Error::config(
                                "config.cell.config.cells",
                                "missing (expected a list of cell configs)",
                            )
                        })?;
                    (true, cells.iter().collect())
                } else {
                    (false, vec![cell])
                };
                if stack {
                    let mut cells = Vec::new();
                    for (k, v) in list.iter().enumerate() {
                        cells.push(cell_from_config(
                            v,
                            &format!("config.cell[{k}]."),
                            &mut w,
                            &format!("cells.{k}."),
                            &mut names,
                        )?);
                    }
                    KerasLayer::RNN(RNN::stacked(cells, seq)?)
                } else {
                    let c = cell_from_config(list[0], "config.cell.", &mut w, "", &mut names)?;
                    KerasLayer::RNN(RNN::new(c, seq))
                }
            }
            other => {
                return Err(Error::UnknownClass {
                    expected: LAYER_CLASSES.join(", "),
                    found: other.to_string(),
                })
            }
        };
        w.finish(&names)?;
        Ok(layer)
    }

    /// The Keras class name.
    pub fn class_name(&self) -> &'static str {
        match self {
            KerasLayer::SimpleRNN(_) => "SimpleRNN",
            KerasLayer::GRU(_) => "GRU",
            KerasLayer::LSTM(_) => "LSTM",
            KerasLayer::ConvLSTM2D(_) => "ConvLSTM2D",
            KerasLayer::CuDNNGRU(_) => "CuDNNGRU",
            KerasLayer::CuDNNLSTM(_) => "CuDNNLSTM",
            KerasLayer::RNN(_) => "RNN",
        }
    }

    /// The layer's sequence options.
    pub fn options(&self) -> crate::config::SequenceOptions {
        match self {
            KerasLayer::SimpleRNN(l) => *l.options(),
            KerasLayer::GRU(l) => *l.options(),
            KerasLayer::LSTM(l) => *l.options(),
            KerasLayer::ConvLSTM2D(l) => l.config().sequence,
            KerasLayer::CuDNNGRU(l) => *l.options(),
            KerasLayer::CuDNNLSTM(l) => *l.options(),
            KerasLayer::RNN(l) => *l.options(),
        }
    }

    /// The names of the flattened states: `h`, `c`, or `cells.0.h`, ... for a stack. In
    /// `initial_state.npz` they are used as they are; in `out.npz` as `state_h`,
    /// `cells.0.state_h`, ... (see [`output_state_name`]).
    pub fn state_names(&self) -> Vec<String> {
        match self {
            KerasLayer::SimpleRNN(_) | KerasLayer::GRU(_) | KerasLayer::CuDNNGRU(_) => {
                vec!["h".into()]
            }
            KerasLayer::LSTM(_) | KerasLayer::ConvLSTM2D(_) | KerasLayer::CuDNNLSTM(_) => {
                vec!["h".into(), "c".into()]
            }
            KerasLayer::RNN(r) => r.state_names(),
        }
    }

    /// Runs the layer. `x` is 3-D (`(batch, time, features)`, or `(time, batch, features)`
    /// with `time_major`), 5-D for ConvLSTM2D.
    pub fn forward(&mut self, x: ArrayViewD<f32>, args: &CallArgs) -> Result<Output> {
        if let KerasLayer::ConvLSTM2D(l) = self {
            return l.forward(x, args);
        }
        let tm = self.options().time_major;
        let shape = x.shape().to_vec();
        let x3 = x.into_dimensionality::<Ix3>().map_err(|_| {
            Error::shape(
                "input",
                if tm {
                    "(time, batch, features)"
                } else {
                    "(batch, time, features)"
                },
                &shape,
            )
        })?;
        match self {
            KerasLayer::SimpleRNN(l) => l.forward(x3, args),
            KerasLayer::GRU(l) => l.forward(x3, args),
            KerasLayer::LSTM(l) => l.forward(x3, args),
            KerasLayer::CuDNNGRU(l) => l.forward(x3, args),
            KerasLayer::CuDNNLSTM(l) => l.forward(x3, args),
            KerasLayer::RNN(l) => l.forward(x3, args),
            KerasLayer::ConvLSTM2D(_) => Err(Error::invalid("layer", "internal: unreachable")),
        }
    }
}

/// `h` -> `state_h`, `cells.1.c` -> `cells.1.state_c`: a state's name in `out.npz`.
pub fn output_state_name(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((prefix, last)) => format!("{prefix}.state_{last}"),
        None => format!("state_{name}"),
    }
}
