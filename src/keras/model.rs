//! Keras model files, read in pure Rust: list the layers of a model and run one recurrent layer
//! or a chain of consecutive ones, with the weights the file holds.
//!
//! Formats ([`FileFormat`]):
//! - Keras 2 HDF5 full model (`model.save("m.h5")`): the `model_config` attribute (JSON) and
//!   the weights under `model_weights/<layer>/`, named by each layer group's `weight_names`.
//! - Keras 2 HDF5 weights only (`model.save_weights("w.h5")`): weights matched to a layer
//!   config by layer name, in Keras's weight order; pair it with `model.to_json()` or one
//!   layer's `{"class_name", "config"}`.
//! - The tf-keras 2.13+ `.keras` zip: `config.json` + `model.weights.h5`, weights under
//!   `layers/<snake_case class>[_n]/.../vars/<i>`.
//! - A model config as JSON (`model.to_json()`), with the weights from a separate `.h5`.
//!
//! Keras 1 files (no `keras_version`, or 1.x) and Keras 3 files (`keras_version` 3.x, whose
//! `hard_sigmoid` differs from Keras 2's) are refused with an error that says so.
//!
//! See `docs/keras-files.md`.

use super::h5::{is_hdf5, H5File};
use super::run::StorageType;
use super::{output_state_name, KerasLayer, LAYER_CLASSES};
use crate::error::fmt_shape;
use crate::layers::{CallArgs, Output};
use crate::{Error, Result};
use ndarray::{ArrayD, ArrayViewD, Axis};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// The kind of a Keras file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Keras 2 HDF5 full model (`model.save("m.h5")`).
    H5Model,
    /// Keras 2 HDF5 weights only (`model.save_weights("w.h5")`): no config.
    H5Weights,
    /// The tf-keras 2.13+ `.keras` zip (`config.json` + `model.weights.h5`).
    KerasZip,
    /// A model config as JSON (`model.to_json()`), weights from another file.
    Json,
}

impl FileFormat {
    /// A short description for listings.
    pub fn describe(self) -> &'static str {
        match self {
            FileFormat::H5Model => "Keras 2 HDF5 model (model.save(\"m.h5\"))",
            FileFormat::H5Weights => "Keras 2 HDF5 weights only (model.save_weights(\"w.h5\"))",
            FileFormat::KerasZip => "tf-keras .keras zip (config.json + model.weights.h5)",
            FileFormat::Json => "Keras model config JSON (model.to_json())",
        }
    }
}

/// Layers that are the identity at inference and keep the mask (`Dropout`, ...): they may lie
/// between two layers of a chain.
const PASS_THROUGH: &[&str] = &[
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
];

/// A layer's weights by interchange name, and each one's path in the file.
type LayerWeights = (BTreeMap<String, ArrayD<f32>>, BTreeMap<String, String>);

/// `Shape` of a tensor as Keras prints it: `None` for an unknown dimension.
type Shape = Vec<Option<usize>>;

/// One layer of a model config.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    class_name: String,
    /// `{"class_name": ..., "config": ...}`.
    value: Value,
    /// The layer that feeds its (first) input, when the config says so unambiguously.
    predecessor: Option<String>,
    /// `build_config.input_shape` (.keras).
    built_input: Option<Shape>,
    /// The config's `batch_input_shape` / `batch_shape`.
    declared_input: Option<Shape>,
    /// The group of its weights in a `.keras` file's `model.weights.h5`.
    keras_path: String,
}

#[derive(Debug)]
enum Weights {
    /// A model config without weights.
    None,
    /// Keras 2 HDF5: the layers' groups under `root` (`model_weights` or the file's root).
    H5 { file: H5File, root: String },
    /// `.keras`: `model.weights.h5`.
    Keras { file: H5File },
}

/// A weight of a layer as the file holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightInfo {
    /// Its path inside the (HDF5) file, e.g. `model_weights/lstm/lstm/lstm_cell/kernel:0` or
    /// `layers/lstm/cell/vars/0`.
    pub path: String,
    /// Its shape.
    pub shape: Vec<usize>,
}

/// What `recurrent inspect` lists for one layer.
#[derive(Debug, Clone)]
pub struct LayerInfo {
    /// The layer's name.
    pub name: String,
    /// Its Keras class.
    pub class_name: String,
    /// The input shape, when the config tells it (`None` stands for an unknown dimension).
    pub input_shape: Option<String>,
    /// The output shape (two for a `Bidirectional` with `merge_mode` None), when known.
    pub output_shape: Option<String>,
    /// Its weights in the file, in Keras's order.
    pub weights: Vec<WeightInfo>,
    /// `Ok` when `recurrent` runs it; otherwise why not.
    pub runs: std::result::Result<(), String>,
}

/// A Keras model file: its layers and weights.
#[derive(Debug)]
pub struct KerasFile {
    path: String,
    format: FileFormat,
    keras_version: Option<String>,
    backend: Option<String>,
    model_class: Option<String>,
    entries: Vec<Entry>,
    weights: Weights,
    /// A weights-only file's `layer_names`.
    weight_layer_names: Vec<String>,
    /// The `keras_version` of a separate weights file.
    weights_version: Option<String>,
}

fn file_err(path: &str, message: impl Into<String>) -> Error {
    Error::File {
        path: path.to_string(),
        message: message.into(),
    }
}

fn keras1_error(path: &str, why: &str) -> Error {
    file_err(
        path,
        format!("a Keras 1 file ({why}): Keras 1 layer configs and weight layouts are not supported; load it in Keras 2 and save it again"),
    )
}

fn keras3_error(path: &str, version: &str) -> Error {
    file_err(
        path,
        format!("written by Keras {version}: Keras 3 files are refused (Keras 3 changed activations such as hard_sigmoid, and its weight layout); recurrent reads Keras 2 files (Keras 2.x, tf.keras / tf-keras 2.x)"),
    )
}

/// Refuses Keras 1 and Keras 3 versions.
fn check_version(path: &str, version: &str) -> Result<()> {
    let major = version.split('.').next().unwrap_or("");
    match major {
        "1" | "0" => Err(keras1_error(path, &format!("keras_version {version}"))),
        "2" => Ok(()),
        _ => Err(keras3_error(path, version)),
    }
}

/// Keras's `to_snake_case`, used for the group names of a `.keras` file.
pub(crate) fn to_snake_case(name: &str) -> String {
    // Python: re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name), then
    // re.sub("([a-z])([A-Z])", r"\1_\2", ...).lower(); "private" before a leading "_".
    let c: Vec<char> = name.chars().collect();
    let mut first: Vec<char> = Vec::new();
    let mut p = 0;
    while p < c.len() {
        let word =
            p + 2 < c.len() && c[p + 1].is_ascii_uppercase() && c[p + 2].is_ascii_lowercase();
        if word {
            let mut end = p + 2;
            while end < c.len() && c[end].is_ascii_lowercase() {
                end += 1;
            }
            first.push(c[p]);
            first.push('_');
            first.extend(&c[p + 1..end]);
            p = end;
        } else {
            first.push(c[p]);
            p += 1;
        }
    }
    let mut out = String::new();
    let mut p = 0;
    while p < first.len() {
        if p + 1 < first.len() && first[p].is_ascii_lowercase() && first[p + 1].is_ascii_uppercase()
        {
            out.push(first[p]);
            out.push('_');
            out.push(first[p + 1]);
            p += 2;
        } else {
            out.push(first[p]);
            p += 1;
        }
    }
    let out = out.to_lowercase();
    if out.starts_with('_') {
        format!("private{out}")
    } else {
        out
    }
}

fn shape_of(v: &Value) -> Option<Shape> {
    v.as_array().map(|a| {
        a.iter()
            .map(|d| d.as_u64().map(|u| u as usize))
            .collect::<Shape>()
    })
}

fn fmt_keras_shape(s: &[Option<usize>]) -> String {
    let parts: Vec<String> = s
        .iter()
        .map(|d| d.map_or("None".to_string(), |u| u.to_string()))
        .collect();
    if parts.len() == 1 {
        format!("({},)", parts[0])
    } else {
        format!("({})", parts.join(", "))
    }
}

fn class_config(v: &Value) -> (&str, &Value) {
    (
        v.get("class_name").and_then(|c| c.as_str()).unwrap_or(""),
        v.get("config").unwrap_or(&Value::Null),
    )
}

/// The layers of a model config (`Sequential`, `Functional` / `Model`), or a single layer.
fn parse_model(v: &Value, path: &str) -> Result<(Option<String>, Vec<Entry>)> {
    let (class, cfg) = class_config(v);
    if class.is_empty() {
        return Err(file_err(
            path,
            "model config: `class_name` missing (expected a Keras model or layer config)",
        ));
    }
    let (list, functional) = match class {
        "Sequential" => match cfg {
            Value::Array(a) => (a.clone(), false),
            _ => (
                cfg.get("layers")
                    .and_then(|l| l.as_array())
                    .cloned()
                    .ok_or_else(|| file_err(path, "model config: `config.layers` missing"))?,
                false,
            ),
        },
        "Functional" | "Model" => (
            cfg.get("layers")
                .and_then(|l| l.as_array())
                .cloned()
                .ok_or_else(|| file_err(path, "model config: `config.layers` missing"))?,
            true,
        ),
        _ => (vec![v.clone()], false),
    };
    let mut entries: Vec<Entry> = Vec::new();
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    for (k, l) in list.iter().enumerate() {
        let (lclass, lcfg) = class_config(l);
        let name = l
            .get("name")
            .and_then(|n| n.as_str())
            .or_else(|| lcfg.get("name").and_then(|n| n.as_str()))
            .map(str::to_string)
            .unwrap_or_else(|| format!("layer_{k}"));
        let predecessor = if functional {
            // [[["lstm", 0, 0, {}], ...]]: one node whose first input names the layer.
            match l.get("inbound_nodes").and_then(|n| n.as_array()) {
                Some(nodes) if nodes.len() == 1 => nodes[0]
                    .as_array()
                    .and_then(|t| t.first())
                    .and_then(|t| t.as_array())
                    .and_then(|t| t.first())
                    .and_then(|n| n.as_str())
                    .map(str::to_string),
                _ => None,
            }
        } else {
            entries.last().map(|e| e.name.clone())
        };
        let built_input = l
            .get("build_config")
            .and_then(|b| b.get("input_shape"))
            .and_then(shape_of);
        let declared_input = lcfg
            .get("batch_input_shape")
            .and_then(shape_of)
            .or_else(|| lcfg.get("batch_shape").and_then(shape_of));
        let snake = to_snake_case(lclass);
        let n = used.entry(snake.clone()).or_insert(0);
        let keras_path = if *n == 0 {
            format!("layers/{snake}")
        } else {
            format!("layers/{snake}_{n}")
        };
        *n += 1;
        entries.push(Entry {
            name,
            class_name: lclass.to_string(),
            value: serde_json::json!({"class_name": lclass, "config": lcfg}),
            predecessor,
            built_input,
            declared_input,
            keras_path,
        });
    }
    Ok((Some(class.to_string()), entries))
}

fn join(a: &str, b: &str) -> String {
    let a = a.trim_matches('/');
    let b = b.trim_matches('/');
    if a.is_empty() {
        b.to_string()
    } else if b.is_empty() {
        a.to_string()
    } else {
        format!("{a}/{b}")
    }
}

/// Keras's weights of a layer config in Keras's order: (name as in the interchange format,
/// path under the layer's group in a `.keras` file).
fn weight_layout(v: &Value, prefix: &str, kpath: &str) -> Result<Vec<(String, String)>> {
    let (class, cfg) = class_config(v);
    let use_bias = |c: &Value| c.get("use_bias").and_then(|b| b.as_bool()).unwrap_or(true);
    let three = |p: &str, holder: &str, bias: bool| {
        let mut v = vec![
            (format!("{p}kernel"), join(holder, "vars/0")),
            (format!("{p}recurrent_kernel"), join(holder, "vars/1")),
        ];
        if bias {
            v.push((format!("{p}bias"), join(holder, "vars/2")));
        }
        v
    };
    Ok(match class {
        "SimpleRNN" | "GRU" | "LSTM" | "ConvLSTM2D" => {
            three(prefix, &join(kpath, "cell"), use_bias(cfg))
        }
        "CuDNNGRU" | "CuDNNLSTM" => three(prefix, kpath, true),
        "RNN" => {
            let cell = cfg.get("cell").unwrap_or(&Value::Null);
            let list: Option<Vec<Value>> = match cell {
                Value::Array(a) => Some(a.clone()),
                _ if cell.get("class_name").and_then(|c| c.as_str()) == Some("StackedRNNCells") => {
                    cell.get("config")
                        .and_then(|c| c.get("cells"))
                        .and_then(|c| c.as_array())
                        .cloned()
                }
                _ => None,
            };
            match list {
                Some(cells) => {
                    let mut out = Vec::new();
                    let mut used: BTreeMap<String, usize> = BTreeMap::new();
                    for (k, c) in cells.iter().enumerate() {
                        let (cc, ccfg) = class_config(c);
                        let snake = to_snake_case(cc);
                        let n = used.entry(snake.clone()).or_insert(0);
                        let nm = if *n == 0 {
                            snake.clone()
                        } else {
                            format!("{snake}_{n}")
                        };
                        *n += 1;
                        out.extend(three(
                            &format!("{prefix}cells.{k}."),
                            &join(kpath, &format!("cell/cells/{nm}")),
                            use_bias(ccfg),
                        ));
                    }
                    out
                }
                None => {
                    let (_, ccfg) = class_config(cell);
                    three(prefix, &join(kpath, "cell"), use_bias(ccfg))
                }
            }
        }
        "Bidirectional" => {
            let inner = cfg.get("layer").unwrap_or(&Value::Null);
            let back = cfg
                .get("backward_layer")
                .filter(|b| !b.is_null())
                .unwrap_or(inner);
            let mut out = weight_layout(
                inner,
                &format!("{prefix}forward."),
                &join(kpath, "forward_layer"),
            )?;
            out.extend(weight_layout(
                back,
                &format!("{prefix}backward."),
                &join(kpath, "backward_layer"),
            )?);
            out
        }
        other => {
            return Err(Error::UnknownClass {
                expected: LAYER_CLASSES.join(", "),
                found: other.to_string(),
            })
        }
    })
}

/// `lstm/lstm_cell/kernel:0` -> `kernel`; `lstm_1/kernel_1:0` -> `kernel`.
fn weight_kind(file_name: &str) -> &str {
    let last = file_name.rsplit('/').next().unwrap_or(file_name);
    let last = last.split(':').next().unwrap_or(last);
    match last.rsplit_once('_') {
        Some((head, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => last,
    }
}

/// Reads `layer`'s weights from a Keras 2 HDF5 group `group` (its `weight_names`, in Keras's
/// order). Returns the weights by interchange name and each one's path in the file.
fn read_h5_layer(
    file: &H5File,
    group: &str,
    layer_name: &str,
    layer: &Value,
) -> Result<LayerWeights> {
    let layout = weight_layout(layer, "", "")?;
    let listed = file
        .attr_strings(group, "weight_names")?
        .unwrap_or_default();
    let class = class_config(layer).0;
    let expected: Vec<&str> = layout.iter().map(|(n, _)| n.as_str()).collect();
    if listed.len() != layout.len() {
        return Err(file_err(
            file.display(),
            format!(
                "{group}: weight_names lists {} weight(s) ({}), but layer `{layer_name}` ({class}) has {} ({})",
                listed.len(),
                if listed.is_empty() { "none".to_string() } else { listed.join(", ") },
                layout.len(),
                expected.join(", ")
            ),
        ));
    }
    let mut map = BTreeMap::new();
    let mut paths = BTreeMap::new();
    for ((name, _), wn) in layout.iter().zip(&listed) {
        let path = join(group, wn);
        let want = name.rsplit('.').next().unwrap_or(name);
        let got = weight_kind(wn);
        if got != want {
            return Err(file_err(
                file.display(),
                format!(
                    "{path}: expected layer `{layer_name}`'s `{name}` here (Keras's weight order: {}), found `{got}`",
                    expected.join(", ")
                ),
            ));
        }
        if !file.has_dataset(&path) {
            return Err(file_err(
                file.display(),
                format!("{path}: missing (weight `{name}` of layer `{layer_name}`, listed in {group}'s weight_names)"),
            ));
        }
        map.insert(name.clone(), file.read_f32(&path)?);
        paths.insert(name.clone(), path);
    }
    Ok((map, paths))
}

/// Reads `layer`'s weights from a `.keras` file's `model.weights.h5` under `base`.
fn read_keras_layer(
    file: &H5File,
    base: &str,
    layer_name: &str,
    layer: &Value,
) -> Result<LayerWeights> {
    let layout = weight_layout(layer, "", base)?;
    if !file.has_group(base) {
        return Err(file_err(
            file.display(),
            format!("{base}: missing (the weights of layer `{layer_name}`)"),
        ));
    }
    let mut map = BTreeMap::new();
    let mut paths = BTreeMap::new();
    for (name, p) in &layout {
        let mut path = p.clone();
        if !file.has_dataset(&path) {
            // Tolerate a layer that keeps its variables itself rather than in a cell.
            let alt = path.replace("/cell/vars/", "/vars/");
            if file.has_dataset(&alt) {
                path = alt;
            } else {
                return Err(file_err(
                    file.display(),
                    format!("{path}: missing (weight `{name}` of layer `{layer_name}`)"),
                ));
            }
        }
        map.insert(name.clone(), file.read_f32(&path)?);
        paths.insert(name.clone(), path);
    }
    let all = datasets_under(file, base)?;
    if all.len() > layout.len() {
        let extra: Vec<&String> = all
            .iter()
            .filter(|p| !paths.values().any(|q| q == *p))
            .collect();
        return Err(file_err(
            file.display(),
            format!(
                "{base}: holds {} weights, layer `{layer_name}` has {}; not used: {}",
                all.len(),
                layout.len(),
                extra
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok((map, paths))
}

/// Every dataset under a group, depth first, `vars/<i>` in numeric order.
fn datasets_under(file: &H5File, base: &str) -> Result<Vec<String>> {
    let (groups, mut datasets) = file.members(base)?;
    datasets.sort_by_key(|d| (d.parse::<u64>().unwrap_or(u64::MAX), d.clone()));
    let mut out: Vec<String> = datasets.iter().map(|d| join(base, d)).collect();
    let mut groups = groups;
    groups.sort();
    for g in groups {
        out.extend(datasets_under(file, &join(base, &g))?);
    }
    Ok(out)
}

fn round_all(map: &mut BTreeMap<String, ArrayD<f32>>, dtype: StorageType) {
    for a in map.values_mut() {
        dtype.round(a);
    }
}

/// Builds a layer from its config and weights read from a file, naming in errors the file and
/// the weight's path inside it (`weights_display`), or the config's file (`config_display`).
fn build_located(
    layer: &Value,
    layer_name: &str,
    map: BTreeMap<String, ArrayD<f32>>,
    paths: &BTreeMap<String, String>,
    config_display: &str,
    weights_display: &str,
) -> Result<KerasLayer> {
    let class = class_config(layer).0.to_string();
    KerasLayer::from_keras(layer, map).map_err(|e| {
        let at_weight = |name: &str, msg: String| -> Error {
            match paths.get(name) {
                Some(p) => file_err(
                    weights_display,
                    format!("{p}: weight `{name}` of layer `{layer_name}`: {msg}"),
                ),
                None => file_err(weights_display, format!("layer `{layer_name}`: {msg}")),
            }
        };
        match e {
            Error::Shape {
                what,
                expected,
                found,
            } => {
                let name = what
                    .strip_prefix("weight `")
                    .and_then(|r| r.strip_suffix('`'))
                    .unwrap_or(&what)
                    .to_string();
                at_weight(&name, format!("expected shape {expected}, found {found}"))
            }
            Error::Invalid { what, message } if paths.contains_key(&what) => {
                at_weight(&what, message)
            }
            Error::MissingWeight { name, expected } => file_err(
                weights_display,
                format!(
                    "layer `{layer_name}`: weight `{name}` is missing (expected shape {expected})"
                ),
            ),
            Error::UnexpectedWeight { name, why } => at_weight(&name, format!("not used ({why})")),
            e @ (Error::Config { .. }
            | Error::UnknownClass { .. }
            | Error::UnknownActivation { .. }) => file_err(
                config_display,
                format!("layer `{layer_name}` ({class}): {e}"),
            ),
            other => file_err(weights_display, format!("layer `{layer_name}`: {other}")),
        }
    })
}

/// Loads one layer from its config (`layer.json`'s value) and a Keras 2 HDF5 weights file
/// (`save_weights`, or a full `model.save` file), matching the layer by `config.name`.
pub fn load_layer_h5(
    layer: &Value,
    layer_display: &str,
    weights: &Path,
    dtype: StorageType,
) -> Result<KerasLayer> {
    let wd = weights.display().to_string();
    let bytes = std::fs::read(weights).map_err(|e| file_err(&wd, format!("cannot read: {e}")))?;
    let file = H5File::from_bytes(bytes, &wd)?;
    let root = h5_weights_root(&file)?;
    let name = layer
        .get("config")
        .and_then(|c| c.get("name"))
        .and_then(|n| n.as_str())
        .ok_or_else(|| {
            file_err(
                layer_display,
                "config field `config.name`: missing (needed to find the layer's weights in the .h5 file)",
            )
        })?;
    let group = join(&root, name);
    if !file.has_group(&group) {
        let names = h5_layer_names(&file, &root)?;
        return Err(file_err(
            &wd,
            format!(
                "no weights for layer `{name}` (config.name of {layer_display}); the file has layers: {}",
                names.join(", ")
            ),
        ));
    }
    let (mut map, paths) = read_h5_layer(&file, &group, name, layer).map_err(|e| match e {
        Error::UnknownClass { .. } => file_err(layer_display, e.to_string()),
        other => other,
    })?;
    round_all(&mut map, dtype);
    build_located(layer, name, map, &paths, layer_display, &wd)
}

/// The group holding the layers' weights in a Keras 2 HDF5 file, after the version checks.
fn h5_weights_root(file: &H5File) -> Result<String> {
    let d = file.display().to_string();
    let version = file.attr_string("", "keras_version")?;
    let has_config = file.attr_string("", "model_config")?.is_some();
    let root = if has_config || file.has_group("model_weights") {
        "model_weights".to_string()
    } else {
        String::new()
    };
    let has_names = file.attr_strings(&root, "layer_names")?.is_some();
    let version = match version {
        Some(v) => Some(v),
        None if !root.is_empty() => file.attr_string(&root, "keras_version")?,
        None => None,
    };
    match version {
        Some(v) => check_version(&d, &v)?,
        None if has_config || has_names => {
            return Err(keras1_error(&d, "no keras_version attribute"))
        }
        None => {
            return Err(file_err(
                &d,
                "an HDF5 file, but not a Keras file (no model_config, layer_names or keras_version attribute)",
            ))
        }
    }
    if !has_names && !file.has_group(&root) {
        return Err(file_err(
            &d,
            format!(
                "{}: missing (the model's weights)",
                if root.is_empty() { "/" } else { &root }
            ),
        ));
    }
    Ok(root)
}

fn h5_layer_names(file: &H5File, root: &str) -> Result<Vec<String>> {
    match file.attr_strings(root, "layer_names")? {
        Some(n) => Ok(n),
        None => Ok(file.members(root)?.0),
    }
}

impl KerasFile {
    /// Opens a Keras file: `.h5` (full model or weights only), `.keras`, or a model config
    /// JSON (which then needs [`KerasFile::open_with_weights`]). The kind is told by the
    /// content, not the extension.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let d = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| file_err(&d, format!("cannot read: {e}")))?;
        if bytes.is_empty() {
            return Err(file_err(
                &d,
                "empty file (expected a Keras .h5, .keras or model JSON file)",
            ));
        }
        if is_hdf5(&bytes) {
            Self::open_h5(bytes, &d)
        } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            Self::open_zip(bytes, &d)
        } else if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| file_err(&d, format!("not valid JSON: {e}")))?;
            Self::from_json(v, &d)
        } else {
            Err(file_err(
                &d,
                "not a Keras file: expected an HDF5 file (.h5), a .keras zip, or a model config JSON",
            ))
        }
    }

    /// Opens a model (a model config JSON, or a `.h5` / `.keras` model file) with the weights of
    /// another Keras 2 HDF5 file (`save_weights` or `model.save`), matched by layer name.
    pub fn open_with_weights(model: impl AsRef<Path>, weights: impl AsRef<Path>) -> Result<Self> {
        let mut m = Self::open(model)?;
        let weights = weights.as_ref();
        let wd = weights.display().to_string();
        let bytes =
            std::fs::read(weights).map_err(|e| file_err(&wd, format!("cannot read: {e}")))?;
        if !is_hdf5(&bytes) {
            return Err(file_err(
                &wd,
                "not an HDF5 file: --weights with --model takes a Keras .h5 weights file",
            ));
        }
        let file = H5File::from_bytes(bytes, &wd)?;
        let root = h5_weights_root(&file)?;
        m.weight_layer_names = h5_layer_names(&file, &root)?;
        m.weights_version = file
            .attr_string("", "keras_version")?
            .or(file.attr_string(&root, "keras_version")?);
        m.weights = Weights::H5 { file, root };
        Ok(m)
    }

    fn open_h5(bytes: Vec<u8>, d: &str) -> Result<Self> {
        let file = H5File::from_bytes(bytes, d)?;
        let root = h5_weights_root(&file)?;
        let keras_version = file
            .attr_string("", "keras_version")?
            .or(file.attr_string(&root, "keras_version")?);
        let backend = file
            .attr_string("", "backend")?
            .or(file.attr_string(&root, "backend")?);
        let config = file.attr_string("", "model_config")?;
        let weight_layer_names = h5_layer_names(&file, &root)?;
        let (format, model_class, entries) = match config {
            Some(text) => {
                let v: Value = serde_json::from_str(&text).map_err(|e| {
                    file_err(d, format!("model_config attribute: not valid JSON: {e}"))
                })?;
                let (class, entries) = parse_model(&v, d)?;
                (FileFormat::H5Model, class, entries)
            }
            None => (FileFormat::H5Weights, None, Vec::new()),
        };
        Ok(KerasFile {
            path: d.to_string(),
            format,
            keras_version,
            backend,
            model_class,
            entries,
            weights: Weights::H5 { file, root },
            weight_layer_names,
            weights_version: None,
        })
    }

    fn open_zip(bytes: Vec<u8>, d: &str) -> Result<Self> {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
            file_err(
                d,
                format!("not a readable zip (truncated or damaged?): {e}"),
            )
        })?;
        let mut member = |name: &str| -> Result<Option<Vec<u8>>> {
            let mut f = match z.by_name(name) {
                Ok(f) => f,
                Err(zip::result::ZipError::FileNotFound) => return Ok(None),
                Err(e) => return Err(file_err(d, format!("{name}: cannot read: {e}"))),
            };
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)
                .map_err(|e| file_err(d, format!("{name}: cannot read (truncated?): {e}")))?;
            Ok(Some(buf))
        };
        let meta = member("metadata.json")?
            .ok_or_else(|| file_err(d, "a zip without metadata.json: not a .keras file"))?;
        let meta: Value = serde_json::from_slice(&meta)
            .map_err(|e| file_err(d, format!("metadata.json: not valid JSON: {e}")))?;
        let version = meta
            .get("keras_version")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        match &version {
            Some(v) => check_version(d, v)?,
            None => {
                return Err(file_err(
                    d,
                    "metadata.json: `keras_version` missing (cannot tell Keras 2 from Keras 3)",
                ))
            }
        }
        let config = member("config.json")?
            .ok_or_else(|| file_err(d, "config.json: missing from the .keras zip"))?;
        let config: Value = serde_json::from_slice(&config)
            .map_err(|e| file_err(d, format!("config.json: not valid JSON: {e}")))?;
        let weights = member("model.weights.h5")?
            .ok_or_else(|| file_err(d, "model.weights.h5: missing from the .keras zip"))?;
        let file = H5File::from_bytes(weights, &format!("{d}: model.weights.h5"))?;
        let (model_class, entries) = parse_model(&config, d)?;
        Ok(KerasFile {
            path: d.to_string(),
            format: FileFormat::KerasZip,
            keras_version: version,
            backend: None,
            model_class,
            entries,
            weights: Weights::Keras { file },
            weight_layer_names: Vec::new(),
            weights_version: None,
        })
    }

    fn from_json(v: Value, d: &str) -> Result<Self> {
        let keras_version = v
            .get("keras_version")
            .and_then(|k| k.as_str())
            .map(str::to_string);
        if let Some(k) = &keras_version {
            check_version(d, k)?;
        }
        let backend = v
            .get("backend")
            .and_then(|k| k.as_str())
            .map(str::to_string);
        let (model_class, entries) = parse_model(&v, d)?;
        Ok(KerasFile {
            path: d.to_string(),
            format: FileFormat::Json,
            keras_version,
            backend,
            model_class,
            entries,
            weights: Weights::None,
            weight_layer_names: Vec::new(),
            weights_version: None,
        })
    }

    /// The file's format.
    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// The `keras_version` the file records.
    pub fn keras_version(&self) -> Option<&str> {
        self.keras_version.as_deref()
    }

    /// The `backend` the file records (`tensorflow`, `theano`, ...).
    pub fn backend(&self) -> Option<&str> {
        self.backend.as_deref()
    }

    /// The model's class (`Sequential`, `Functional`, `Model`), or the class of a single-layer
    /// config; `None` for a weights-only file.
    pub fn model_class(&self) -> Option<&str> {
        self.model_class.as_deref()
    }

    /// The layer names, in the model's order (a weights-only file: its `layer_names`).
    pub fn layer_names(&self) -> Vec<String> {
        if self.entries.is_empty() {
            self.weight_layer_names.clone()
        } else {
            self.entries.iter().map(|e| e.name.clone()).collect()
        }
    }

    fn names_list(&self) -> String {
        if self.entries.is_empty() {
            return self.weight_layer_names.join(", ");
        }
        self.entries
            .iter()
            .map(|e| format!("{} ({})", e.name, e.class_name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        if self.entries.is_empty() {
            return Err(self.no_config());
        }
        self.entries.iter().find(|e| e.name == name).ok_or_else(|| {
            file_err(
                &self.path,
                format!("no layer `{name}`; the layers are: {}", self.names_list()),
            )
        })
    }

    fn no_config(&self) -> Error {
        file_err(
            &self.path,
            format!(
                "a weights-only file (save_weights) holds no model config; pair it with the model's config: `--model model.json --weights {0}` or `--layer layer.json --weights {0}` (its layers: {1})",
                self.path,
                self.weight_layer_names.join(", ")
            ),
        )
    }

    fn weights_display(&self) -> String {
        match &self.weights {
            Weights::H5 { file, .. } | Weights::Keras { file } => file.display().to_string(),
            Weights::None => self.path.clone(),
        }
    }

    fn read_weights(&self, e: &Entry) -> Result<LayerWeights> {
        match &self.weights {
            Weights::None => Err(file_err(
                &self.path,
                format!(
                    "a model config without weights: give the weights file too (`--weights w.h5`) to run layer `{}`",
                    e.name
                ),
            )),
            Weights::H5 { file, root } => {
                let group = join(root, &e.name);
                if !file.has_group(&group) {
                    return Err(file_err(
                        file.display(),
                        format!(
                            "no weights for layer `{}`; the file has layers: {}",
                            e.name,
                            h5_layer_names(file, root)?.join(", ")
                        ),
                    ));
                }
                read_h5_layer(file, &group, &e.name, &e.value)
            }
            Weights::Keras { file } => read_keras_layer(file, &e.keras_path, &e.name, &e.value),
        }
    }

    fn check_runnable(&self, e: &Entry) -> Result<()> {
        if LAYER_CLASSES.contains(&e.class_name.as_str()) {
            if self.backend.as_deref() == Some("theano")
                && serde_json::to_string(&e.value)
                    .map(|s| s.contains("\"ConvLSTM2D\""))
                    .unwrap_or(false)
            {
                return Err(file_err(
                    &self.path,
                    format!("layer `{}`: ConvLSTM2D weights saved with the Theano backend (flipped kernels) are not supported", e.name),
                ));
            }
            return Ok(());
        }
        Err(file_err(
            &self.path,
            format!(
                "layer `{}`: {} (recurrent runs {})",
                e.name,
                not_run_reason(&e.class_name),
                LAYER_CLASSES.join(", ")
            ),
        ))
    }

    fn build(&self, e: &Entry, dtype: StorageType) -> Result<KerasLayer> {
        self.check_runnable(e)?;
        let (mut map, paths) = self.read_weights(e).map_err(|err| match err {
            Error::UnknownClass { .. } => {
                file_err(&self.path, format!("layer `{}`: {err}", e.name))
            }
            other => other,
        })?;
        round_all(&mut map, dtype);
        build_located(
            &e.value,
            &e.name,
            map,
            &paths,
            &self.path,
            &self.weights_display(),
        )
    }

    /// Builds one layer by name.
    pub fn layer(&self, name: &str) -> Result<KerasLayer> {
        self.build(self.entry(name)?, StorageType::F32)
    }

    /// The layer that feeds `name`, skipping layers that are the identity at inference.
    fn feeder(&self, name: &str) -> Option<&Entry> {
        let mut cur = self.entries.iter().find(|e| e.name == name)?;
        for _ in 0..self.entries.len() {
            let p = cur.predecessor.as_deref()?;
            let e = self.entries.iter().find(|e| e.name == p)?;
            if PASS_THROUGH.contains(&e.class_name.as_str()) {
                cur = e;
            } else {
                return Some(e);
            }
        }
        None
    }

    /// The recurrent layers (the classes `recurrent` runs), in the model's order.
    pub fn recurrent_layers(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| LAYER_CLASSES.contains(&e.class_name.as_str()))
            .map(|e| e.name.clone())
            .collect()
    }

    /// The chain `recurrent run --model` runs without `--layers`: the one recurrent layer of
    /// the file, or its one chain of consecutive recurrent layers.
    pub fn default_layers(&self) -> Result<Vec<String>> {
        if self.entries.is_empty() {
            return Err(self.no_config());
        }
        let rec = self.recurrent_layers();
        if rec.is_empty() {
            return Err(file_err(
                &self.path,
                format!(
                    "no layer recurrent runs ({}); the layers are: {}",
                    LAYER_CLASSES.join(", "),
                    self.names_list()
                ),
            ));
        }
        for w in rec.windows(2) {
            if self.feeder(&w[1]).map(|e| e.name.as_str()) != Some(w[0].as_str()) {
                return Err(file_err(
                    &self.path,
                    format!(
                        "the file holds {} recurrent layers that are not one chain ({}): choose with --layers",
                        rec.len(),
                        rec.iter()
                            .map(|n| {
                                let c = self.entries.iter().find(|e| &e.name == n).map(|e| e.class_name.as_str()).unwrap_or("");
                                format!("{n} ({c})")
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        Ok(rec)
    }

    /// Builds the layers `names` as a chain: each must be a recurrent layer fed by the one
    /// before it (layers that are the identity at inference, such as `Dropout`, may lie
    /// between), and each but the last must return sequences.
    pub fn chain(&self, names: &[&str]) -> Result<KerasChain> {
        self.chain_with(names, StorageType::F32)
    }

    /// [`KerasFile::chain`] with weights rounded to a storage type.
    pub fn chain_with(&self, names: &[&str], dtype: StorageType) -> Result<KerasChain> {
        if names.is_empty() {
            return Err(Error::invalid(
                "--layers",
                "expected at least one layer name",
            ));
        }
        let mut layers = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let e = self.entry(n)?;
            self.check_runnable(e)?;
            if i > 0 {
                let prev = names[i - 1];
                let feeder = self.feeder(n);
                if feeder.map(|f| f.name.as_str()) != Some(prev) {
                    let why = match feeder {
                        Some(f) => {
                            format!("`{n}`'s input comes from `{}` ({})", f.name, f.class_name)
                        }
                        None => format!("the config does not show `{prev}` feeding `{n}`"),
                    };
                    return Err(file_err(
                        &self.path,
                        format!("layers `{prev}` and `{n}` are not consecutive: {why}"),
                    ));
                }
            }
        }
        for (i, n) in names.iter().enumerate() {
            let e = self.entry(n)?;
            let layer = self.build(e, dtype)?;
            if i + 1 < names.len() {
                let o = layer.options();
                if !o.return_sequences {
                    return Err(file_err(
                        &self.path,
                        format!(
                            "layer `{n}` has return_sequences false: its output (one vector per sequence) cannot feed `{}`",
                            names[i + 1]
                        ),
                    ));
                }
                if let KerasLayer::Bidirectional(b) = &layer {
                    if b.merge_mode() == crate::layers::MergeMode::None {
                        return Err(file_err(
                            &self.path,
                            format!("layer `{n}` is a Bidirectional with merge_mode None (two outputs): it can only end a chain"),
                        ));
                    }
                }
            }
            layers.push(ChainLayer {
                name: n.to_string(),
                layer,
            });
        }
        Ok(KerasChain { layers })
    }

    /// Every layer with its shapes, weights, and whether `recurrent` runs it.
    pub fn inspect(&self) -> Vec<LayerInfo> {
        if self.entries.is_empty() {
            // Weights only: names and weights, no config.
            return self
                .weight_layer_names
                .iter()
                .map(|n| LayerInfo {
                    name: n.clone(),
                    class_name: "?".into(),
                    input_shape: None,
                    output_shape: None,
                    weights: self.listed_weights(n, None),
                    runs: Err("no config in a weights-only file".into()),
                })
                .collect();
        }
        let mut outputs: BTreeMap<String, Vec<Shape>> = BTreeMap::new();
        let mut out = Vec::new();
        for e in &self.entries {
            let input = e
                .built_input
                .clone()
                .or_else(|| {
                    e.predecessor
                        .as_ref()
                        .and_then(|p| outputs.get(p))
                        .and_then(|o| o.first().cloned())
                })
                .or_else(|| e.declared_input.clone());
            let outs = if e.class_name == "InputLayer" {
                input.clone().map(|s| vec![s]).unwrap_or_default()
            } else {
                input
                    .as_ref()
                    .map(|i| infer_outputs(&e.value, i))
                    .unwrap_or_default()
            };
            outputs.insert(e.name.clone(), outs.clone());
            let runs = if LAYER_CLASSES.contains(&e.class_name.as_str()) {
                self.build(e, StorageType::F32)
                    .map(|_| ())
                    .map_err(|err| err.to_string())
            } else {
                Err(not_run_reason(&e.class_name))
            };
            out.push(LayerInfo {
                name: e.name.clone(),
                class_name: e.class_name.clone(),
                input_shape: input.as_ref().map(|s| fmt_keras_shape(s)),
                output_shape: match outs.len() {
                    0 => None,
                    1 => Some(fmt_keras_shape(&outs[0])),
                    _ => Some(format!(
                        "[{}]",
                        outs.iter()
                            .map(|s| fmt_keras_shape(s))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                },
                weights: self.listed_weights(&e.name, Some(e)),
                runs,
            });
        }
        out
    }

    fn listed_weights(&self, name: &str, e: Option<&Entry>) -> Vec<WeightInfo> {
        let info = |file: &H5File, p: &str| WeightInfo {
            path: p.to_string(),
            shape: file.shape(p).unwrap_or_default(),
        };
        match &self.weights {
            Weights::None => Vec::new(),
            Weights::H5 { file, root } => {
                let g = join(root, name);
                file.attr_strings(&g, "weight_names")
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .iter()
                    .map(|w| info(file, &join(&g, w)))
                    .collect()
            }
            Weights::Keras { file } => {
                let Some(e) = e else { return Vec::new() };
                let ordered: Option<Vec<String>> = weight_layout(&e.value, "", &e.keras_path)
                    .ok()
                    .map(|l| l.into_iter().map(|(_, p)| p).collect::<Vec<_>>())
                    .filter(|l: &Vec<String>| l.iter().all(|p| file.has_dataset(p)));
                let paths = match ordered {
                    Some(p) => p,
                    None if file.has_group(&e.keras_path) => {
                        datasets_under(file, &e.keras_path).unwrap_or_default()
                    }
                    None => Vec::new(),
                };
                paths.iter().map(|p| info(file, p)).collect()
            }
        }
    }

    /// A text listing of the file (what `recurrent inspect` prints).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!("file: {}\n", self.path));
        s.push_str(&format!("format: {}\n", self.format.describe()));
        s.push_str(&format!(
            "keras_version: {}\nbackend: {}\n",
            self.keras_version.as_deref().unwrap_or("(not recorded)"),
            self.backend.as_deref().unwrap_or("(not recorded)")
        ));
        if let Some(c) = &self.model_class {
            s.push_str(&format!("model: {c}\n"));
        }
        if let Weights::H5 { file, .. } = &self.weights {
            if file.display() != self.path {
                s.push_str(&format!(
                    "weights: {} (keras_version {})\n",
                    file.display(),
                    self.weights_version.as_deref().unwrap_or("not recorded")
                ));
            }
        }
        let infos = self.inspect();
        s.push_str(&format!("layers: {}\n", infos.len()));
        for l in &infos {
            s.push_str(&format!("\n{} ({})\n", l.name, l.class_name));
            if let Some(i) = &l.input_shape {
                s.push_str(&format!("  input:  {i}\n"));
            }
            if let Some(o) = &l.output_shape {
                s.push_str(&format!("  output: {o}\n"));
            }
            if l.weights.is_empty() {
                s.push_str("  weights: none\n");
            } else {
                s.push_str("  weights:\n");
                for w in &l.weights {
                    s.push_str(&format!("    {}  {}\n", w.path, fmt_shape(&w.shape)));
                }
            }
            match &l.runs {
                Ok(()) => s.push_str("  runs: yes\n"),
                Err(why) => s.push_str(&format!("  runs: no ({why})\n")),
            }
        }
        if !self.entries.is_empty() {
            match self.default_layers() {
                Ok(c) => s.push_str(&format!(
                    "\nrun --model without --layers runs: {}\n",
                    c.join(" -> ")
                )),
                Err(e) => s.push_str(&format!("\nrun --model needs --layers: {e}\n")),
            }
        }
        s
    }
}

/// Why `recurrent` does not run a layer of class `class`.
fn not_run_reason(class: &str) -> String {
    let known_other = [
        "InputLayer",
        "Embedding",
        "Dense",
        "Masking",
        "Activation",
        "Reshape",
        "Flatten",
        "Concatenate",
        "Add",
        "Subtract",
        "Multiply",
        "Dot",
        "TimeDistributed",
        "RepeatVector",
        "Lambda",
        "Conv1D",
        "Conv2D",
        "BatchNormalization",
        "LayerNormalization",
        "Attention",
        "MultiHeadAttention",
    ];
    if PASS_THROUGH.contains(&class) || known_other.contains(&class) {
        format!("class `{class}` is not a recurrent layer")
    } else {
        format!("class `{class}` is not supported")
    }
}

/// The output shape(s) of a layer for an input shape, when this module knows the class.
fn infer_outputs(v: &Value, input: &Shape) -> Vec<Shape> {
    let (class, cfg) = class_config(v);
    let get_usize = |c: &Value, k: &str| c.get(k).and_then(|u| u.as_u64()).map(|u| u as usize);
    let flag = |k: &str| cfg.get(k).and_then(|b| b.as_bool()).unwrap_or(false);
    let seq = |units: Option<usize>| -> Option<Shape> {
        if input.len() != 3 {
            return None;
        }
        let tm = flag("time_major");
        let (b, t) = if tm {
            (input[1], input[0])
        } else {
            (input[0], input[1])
        };
        Some(if flag("return_sequences") {
            if tm {
                vec![t, b, units]
            } else {
                vec![b, t, units]
            }
        } else {
            vec![b, units]
        })
    };
    match class {
        "SimpleRNN" | "GRU" | "LSTM" | "CuDNNGRU" | "CuDNNLSTM" => {
            seq(get_usize(cfg, "units")).into_iter().collect()
        }
        "RNN" => {
            let cell = cfg.get("cell").unwrap_or(&Value::Null);
            let last = match cell {
                Value::Array(a) => a.last().cloned(),
                _ => cell
                    .get("config")
                    .and_then(|c| c.get("cells"))
                    .and_then(|c| c.as_array())
                    .and_then(|c| c.last().cloned())
                    .or(Some(cell.clone())),
            };
            let units = last.as_ref().and_then(|c| get_usize(&c["config"], "units"));
            seq(units).into_iter().collect()
        }
        "ConvLSTM2D" => {
            if input.len() != 5 {
                return Vec::new();
            }
            let first = cfg.get("data_format").and_then(|d| d.as_str()) == Some("channels_first");
            let pair = |k: &str, d: usize| -> (usize, usize) {
                match cfg.get(k) {
                    Some(Value::Array(a)) if a.len() == 2 => (
                        a[0].as_u64().unwrap_or(d as u64) as usize,
                        a[1].as_u64().unwrap_or(d as u64) as usize,
                    ),
                    Some(v) => v
                        .as_u64()
                        .map(|u| (u as usize, u as usize))
                        .unwrap_or((d, d)),
                    None => (d, d),
                }
            };
            let (k, s, dl) = (
                pair("kernel_size", 1),
                pair("strides", 1),
                pair("dilation_rate", 1),
            );
            let same = cfg.get("padding").and_then(|p| p.as_str()) == Some("same");
            let dim = |n: Option<usize>, k: usize, s: usize, d: usize| {
                n.map(|n| {
                    if same {
                        n.div_ceil(s)
                    } else {
                        (n + 1).saturating_sub(d * (k - 1) + 1).div_ceil(s)
                    }
                })
            };
            let (r, c) = if first {
                (input[3], input[4])
            } else {
                (input[2], input[3])
            };
            let (r, c) = (dim(r, k.0, s.0, dl.0), dim(c, k.1, s.1, dl.1));
            let f = get_usize(cfg, "filters");
            let space: Shape = if first { vec![f, r, c] } else { vec![r, c, f] };
            let mut o = vec![input[0]];
            if flag("return_sequences") {
                o.push(input[1]);
            }
            o.extend(space);
            vec![o]
        }
        "Bidirectional" => {
            let inner = cfg.get("layer").cloned().unwrap_or(Value::Null);
            let back = cfg
                .get("backward_layer")
                .filter(|b| !b.is_null())
                .cloned()
                .unwrap_or_else(|| inner.clone());
            let (f, b) = (infer_outputs(&inner, input), infer_outputs(&back, input));
            let (Some(f), Some(b)) = (f.first(), b.first()) else {
                return Vec::new();
            };
            match cfg.get("merge_mode") {
                Some(Value::Null) => vec![f.clone(), b.clone()],
                Some(Value::String(m)) if m != "concat" => vec![f.clone()],
                _ => {
                    let mut o = f.clone();
                    if let (Some(x), Some(y)) =
                        (f.last().copied().flatten(), b.last().copied().flatten())
                    {
                        if let Some(l) = o.last_mut() {
                            *l = Some(x + y);
                        }
                    }
                    vec![o]
                }
            }
        }
        "Dense" => {
            let mut o = input.clone();
            if let Some(l) = o.last_mut() {
                *l = get_usize(cfg, "units");
            }
            vec![o]
        }
        "Embedding" => {
            let mut o = input.clone();
            o.push(get_usize(cfg, "output_dim"));
            vec![o]
        }
        c if PASS_THROUGH.contains(&c) || c == "Masking" || c == "Activation" => {
            vec![input.clone()]
        }
        _ => Vec::new(),
    }
}

/// One layer of a [`KerasChain`].
#[derive(Debug)]
struct ChainLayer {
    name: String,
    layer: KerasLayer,
}

/// Consecutive recurrent layers of a model, run one after the other: each layer's output is the
/// next one's input. A mask applies to the first layer and, as Keras propagates it through
/// layers that return sequences, to every later one; `initial_state` applies to the first.
#[derive(Debug)]
pub struct KerasChain {
    layers: Vec<ChainLayer>,
}

impl KerasChain {
    /// The layers' names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.layers.iter().map(|l| l.name.as_str()).collect()
    }

    /// The layers, in order.
    pub fn layers(&self) -> Vec<&KerasLayer> {
        self.layers.iter().map(|l| &l.layer).collect()
    }

    /// The first layer (its states are the chain's `initial_state`).
    pub fn first(&self) -> &KerasLayer {
        &self.layers[0].layer
    }

    /// The last layer (its outputs and states are the chain's).
    pub fn last(&self) -> &KerasLayer {
        &self.layers[self.layers.len() - 1].layer
    }

    /// Runs the chain. `x`, `args.mask` and `args.initial_state` as for the first layer; the
    /// result is the last layer's (see [`output_arrays`] for its names in `out.npz`).
    pub fn forward(&mut self, x: ArrayViewD<f32>, args: &CallArgs) -> Result<Output> {
        let n = self.layers.len();
        let mut cur: Option<ArrayD<f32>> = None;
        for (i, cl) in self.layers.iter_mut().enumerate() {
            let a = CallArgs {
                mask: args.mask,
                initial_state: if i == 0 { args.initial_state } else { None },
                constants: if i == 0 { args.constants } else { &[] },
            };
            let input = match &cur {
                Some(c) => c.view(),
                None => x.view(),
            };
            let out = cl.layer.forward(input, &a).map_err(|e| {
                if i == 0 {
                    e
                } else {
                    Error::invalid(format!("layer `{}`", cl.name), e.to_string())
                }
            })?;
            if i + 1 == n {
                return Ok(out);
            }
            cur = Some(out.output);
        }
        Err(Error::invalid("chain", "no layers"))
    }
}

/// The arrays of `out.npz` for a layer's result, named as the contract names them: `output`
/// (or `forward.output` / `backward.output` for a `Bidirectional` with `merge_mode` None) and,
/// with `return_state`, `state_h`, `state_c`, `cells.0.state_h`, `forward.state_h`, ...
pub fn output_arrays(layer: &KerasLayer, out: Output) -> Result<Vec<(String, ArrayD<f32>)>> {
    let mut arrays = Vec::new();
    match layer {
        KerasLayer::Bidirectional(b) if b.merge_mode() == crate::layers::MergeMode::None => {
            if out.output.ndim() == 0 || out.output.shape()[0] != 2 {
                return Err(Error::invalid(
                    "Bidirectional",
                    "internal: expected two stacked outputs",
                ));
            }
            arrays.push((
                "forward.output".to_string(),
                out.output.index_axis(Axis(0), 0).to_owned(),
            ));
            arrays.push((
                "backward.output".to_string(),
                out.output.index_axis(Axis(0), 1).to_owned(),
            ));
        }
        _ => arrays.push(("output".to_string(), out.output)),
    }
    if layer.options().return_state {
        for (n, s) in layer.state_names().iter().zip(out.states) {
            arrays.push((output_state_name(n), s));
        }
    }
    Ok(arrays)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_matches_keras() {
        for (c, s) in [
            ("LSTM", "lstm"),
            ("GRU", "gru"),
            ("SimpleRNN", "simple_rnn"),
            ("SimpleRNNCell", "simple_rnn_cell"),
            ("LSTMCell", "lstm_cell"),
            ("GRUCell", "gru_cell"),
            ("CuDNNLSTM", "cu_dnnlstm"),
            ("CuDNNGRU", "cu_dnngru"),
            ("ConvLSTM2D", "conv_lstm2d"),
            ("InputLayer", "input_layer"),
            ("Bidirectional", "bidirectional"),
            ("RNN", "rnn"),
            ("StackedRNNCells", "stacked_rnn_cells"),
            ("Dense", "dense"),
        ] {
            assert_eq!(to_snake_case(c), s, "{c}");
        }
    }

    #[test]
    fn weight_kind_strips_scope_index_and_suffix() {
        assert_eq!(weight_kind("lstm/lstm_cell/kernel:0"), "kernel");
        assert_eq!(
            weight_kind("rnn_1/recurrent_kernel_1:0"),
            "recurrent_kernel"
        );
        assert_eq!(weight_kind("lstm/bias"), "bias");
    }
}
