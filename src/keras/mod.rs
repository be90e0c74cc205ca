//! Keras import: a layer exported as `layer.get_config()` JSON plus its weights, run exactly as
//! the `recurrent run` contract says (see `docs/keras-interchange.md`).

pub(crate) mod config;
pub(crate) mod h5;
pub mod model;
pub mod npz;
mod run;

pub use model::{output_arrays, FileFormat, KerasChain, KerasFile, LayerInfo, WeightInfo};
pub use run::{
    load_layer, run_files, run_model_files, Device, ModelRunFiles, RunFiles, StorageType,
};

use crate::error::fmt_shape;
use crate::layers::{
    AnyCell, Bidirectional, CallArgs, ConvLSTM2D, CuDNNGRU, CuDNNLSTM, GRUCell, LSTMCell, Output,
    SimpleRNNCell, GRU, LSTM, RNN,
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
    "Bidirectional",
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
    /// `Bidirectional` around one of the others (weights and states `forward.*`,
    /// `backward.*`). With `merge_mode` None, [`KerasLayer::forward`]'s output stacks the two
    /// outputs on a new first axis (see [`Bidirectional::forward_stacked`]).
    Bidirectional(Box<Bidirectional>),
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
            "Bidirectional" => {
                names = vec!["forward.*".into(), "backward.*".into()];
                KerasLayer::Bidirectional(Box::new(bidirectional_from_keras(cfg, &mut w)?))
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
            KerasLayer::Bidirectional(_) => "Bidirectional",
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
            KerasLayer::Bidirectional(l) => l.options(),
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
            KerasLayer::Bidirectional(l) => l.state_names(),
        }
    }

    /// Runs the layer. `x` is 3-D (`(batch, time, features)`, or `(time, batch, features)`
    /// with `time_major`), 5-D for ConvLSTM2D.
    pub fn forward(&mut self, x: ArrayViewD<f32>, args: &CallArgs) -> Result<Output> {
        if let KerasLayer::ConvLSTM2D(l) = self {
            return l.forward(x, args);
        }
        if let KerasLayer::Bidirectional(l) = self {
            return l.forward_stacked(x, args);
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
            KerasLayer::ConvLSTM2D(_) | KerasLayer::Bidirectional(_) => {
                Err(Error::invalid("layer", "internal: unreachable"))
            }
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

/// Builds a `Bidirectional` from its config (`layer`, `merge_mode`, optional `backward_layer`)
/// and the weights `forward.*`, `backward.*` (taken out of `w`).
fn bidirectional_from_keras(cfg: &Value, w: &mut WeightMap) -> Result<Bidirectional> {
    let inner = cfg
        .get("layer")
        .ok_or_else(|| Error::config("config.layer", "missing (expected the wrapped layer)"))?;
    let merge = match cfg.get("merge_mode") {
        None => Some("concat"),
        Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            return Err(Error::config(
                "config.merge_mode",
                format!("expected a string or null, found {other}"),
            ))
        }
    };
    let merge = crate::layers::MergeMode::from_keras(merge)?;
    let backward_cfg = match cfg.get("backward_layer").filter(|v| !v.is_null()) {
        Some(b) => (b.clone(), "config.backward_layer."),
        None => {
            let mut b = inner.clone();
            let c = b
                .get_mut("config")
                .and_then(|c| c.as_object_mut())
                .ok_or_else(|| {
                    Error::config("config.layer.config", "missing (expected an object)")
                })?;
            let gb = c
                .get("go_backwards")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            c.insert("go_backwards".into(), Value::Bool(!gb));
            (b, "config.layer.")
        }
    };
    let take = |w: &mut WeightMap, prefix: &str| -> BTreeMap<String, ArrayD<f32>> {
        let keys: Vec<String> = w
            .map
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| w.map.remove(&k).map(|a| (k[prefix.len()..].to_string(), a)))
            .collect()
    };
    let fw = take(w, "forward.");
    let bw = take(w, "backward.");
    if let Some(inner_class) = inner.get("class_name").and_then(|c| c.as_str()) {
        if inner_class == "Bidirectional" {
            return Err(Error::config(
                "config.layer.class_name",
                "a Bidirectional cannot wrap another Bidirectional",
            ));
        }
    }
    // Keras forces zero_output_for_mask = return_sequences on both directions (ConvLSTM2D's
    // ConvRNN ignores the flag, so it keeps repeating the previous output there).
    let force_zero = |v: &Value| -> Value {
        let mut v = v.clone();
        let conv = v.get("class_name").and_then(|c| c.as_str()) == Some("ConvLSTM2D");
        if let Some(c) = v.get_mut("config").and_then(|c| c.as_object_mut()) {
            let rs = c
                .get("return_sequences")
                .and_then(|r| r.as_bool())
                .unwrap_or(false);
            c.insert("zero_output_for_mask".into(), Value::Bool(rs && !conv));
        }
        v
    };
    let forward = KerasLayer::from_keras(&force_zero(inner), fw)
        .map_err(|e| prefix_error(e, "forward.", "config.layer."))?;
    let backward = KerasLayer::from_keras(&force_zero(&backward_cfg.0), bw)
        .map_err(|e| prefix_error(e, "backward.", backward_cfg.1))?;
    Bidirectional::new(forward, backward, merge)
}

/// Renames the weight in `e` with `weight_prefix` and the config field with `config_prefix`:
/// errors of a wrapped layer as the wrapper's.
pub(crate) fn prefix_error(e: Error, weight_prefix: &str, config_prefix: &str) -> Error {
    let rename = |what: String| -> String {
        // `weight `kernel`` -> `weight `forward.kernel``; `cells.1.kernel` -> `forward.cells.1.kernel`
        if let Some(rest) = what.strip_prefix("weight `") {
            format!("weight `{weight_prefix}{rest}")
        } else if what.starts_with("cells.")
            || what == "kernel"
            || what == "recurrent_kernel"
            || what == "bias"
        {
            format!("{weight_prefix}{what}")
        } else {
            what
        }
    };
    match e {
        Error::MissingWeight { name, expected } => Error::MissingWeight {
            name: format!("{weight_prefix}{name}"),
            expected,
        },
        Error::UnexpectedWeight { name, why } => Error::UnexpectedWeight {
            name: format!("{weight_prefix}{name}"),
            why,
        },
        Error::Shape {
            what,
            expected,
            found,
        } => Error::Shape {
            what: rename(what),
            expected,
            found,
        },
        Error::Invalid { what, message } => Error::Invalid {
            what: rename(what),
            message,
        },
        Error::Config { field, message } => Error::Config {
            field: format!("{config_prefix}{field}"),
            message,
        },
        Error::UnknownActivation {
            field,
            found,
            expected,
        } => Error::UnknownActivation {
            field: format!("{config_prefix}{field}"),
            found,
            expected,
        },
        Error::UnknownClass { expected, found } => Error::UnknownClass {
            expected: format!("{expected} (at `{config_prefix}class_name`)"),
            found,
        },
        other => other,
    }
}
