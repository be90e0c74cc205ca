//! Parsing Keras 2 layer configs (`layer.get_config()` as JSON) into this crate's configs.
//!
//! Keys absent from a config take tf.keras 2.x's defaults (the format is tf.keras's own);
//! unknown keys are ignored. Every error names the config key.

use crate::activation::Activation;
use crate::config::{
    ConvLSTM2DConfig, CuDNNConfig, DataFormat, GRUCellConfig, Initializers, LSTMCellConfig,
    Padding, SequenceOptions, SimpleRNNCellConfig, TrainingOnly,
};
use crate::initializers::Initializer;
use crate::{Error, Result};
use serde_json::{Map, Value};

/// A config object and its path in the file, for error messages.
pub(crate) struct Cfg<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Cfg<'a> {
    /// Wraps `value`, which must be a JSON object.
    pub(crate) fn new(value: &'a Value, path: &str) -> Result<Self> {
        match value.as_object() {
            Some(map) => Ok(Cfg {
                map,
                path: path.to_string(),
            }),
            None => Err(Error::config(
                path,
                format!("expected a JSON object, found {}", kind(value)),
            )),
        }
    }

    fn key(&self, k: &str) -> String {
        if self.path.is_empty() {
            k.to_string()
        } else {
            format!("{}.{k}", self.path)
        }
    }

    fn get(&self, k: &str) -> Option<&'a Value> {
        self.map.get(k).filter(|v| !v.is_null())
    }

    pub(crate) fn usize(&self, k: &str) -> Result<usize> {
        match self.get(k) {
            Some(v) => as_usize(v).ok_or_else(|| {
                Error::config(
                    self.key(k),
                    format!("expected a positive integer, found {v}"),
                )
            }),
            None => Err(Error::config(
                self.key(k),
                "missing (expected a positive integer)",
            )),
        }
    }

    pub(crate) fn bool_or(&self, k: &str, default: bool) -> Result<bool> {
        match self.get(k) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(Error::config(
                self.key(k),
                format!("expected true or false, found {v}"),
            )),
        }
    }

    fn f32_or(&self, k: &str, default: f32) -> Result<f32> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .map(|f| f as f32)
                .ok_or_else(|| Error::config(self.key(k), format!("expected a number, found {v}"))),
        }
    }

    fn u8_or(&self, k: &str, default: u8) -> Result<u8> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => as_usize(v)
                .and_then(|u| u8::try_from(u).ok())
                .ok_or_else(|| {
                    Error::config(self.key(k), format!("expected a small integer, found {v}"))
                }),
        }
    }

    fn str_or(&self, k: &str, default: &'a str) -> Result<&'a str> {
        match self.get(k) {
            None => Ok(default),
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(v) => Err(Error::config(
                self.key(k),
                format!("expected a string, found {v}"),
            )),
        }
    }

    /// An activation: a Keras 2 name, `null` (linear), or a serialised object whose `config`
    /// (or `class_name`) is the name.
    pub(crate) fn activation_or(&self, k: &str, default: Activation) -> Result<Activation> {
        let field = self.key(k);
        match self.map.get(k) {
            None => Ok(default),
            Some(Value::Null) => Ok(Activation::Linear),
            Some(Value::String(s)) => Activation::from_name(&field, s),
            Some(Value::Object(o)) => {
                let name = o
                    .get("config")
                    .and_then(|c| {
                        c.as_str()
                            .or_else(|| c.get("name").and_then(|n| n.as_str()))
                    })
                    .or_else(|| o.get("class_name").and_then(|c| c.as_str()))
                    .ok_or_else(|| {
                        Error::config(
                            &field,
                            format!(
                                "expected an activation name, found {}",
                                Value::Object(o.clone())
                            ),
                        )
                    })?;
                Activation::from_name(&field, name)
            }
            Some(v) => Err(Error::config(
                field,
                format!("expected an activation name, found {v}"),
            )),
        }
    }

    fn initializer_or(&self, k: &str, default: Initializer) -> Result<Initializer> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => Initializer::from_keras(&self.key(k), v),
        }
    }

    fn json(&self, k: &str) -> Option<Value> {
        self.get(k).cloned()
    }

    /// An `(a, b)` pair written as an integer or a list of two integers.
    fn pair_or(&self, k: &str, default: (usize, usize)) -> Result<(usize, usize)> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => {
                if let Some(n) = as_usize(v) {
                    return Ok((n, n));
                }
                match v
                    .as_array()
                    .map(|a| a.iter().map(as_usize).collect::<Vec<_>>())
                {
                    Some(a) if a.len() == 2 && a.iter().all(|x| x.is_some()) => {
                        Ok((a[0].unwrap_or(0), a[1].unwrap_or(0)))
                    }
                    _ => Err(Error::config(
                        self.key(k),
                        format!("expected an integer or a list of two integers, found {v}"),
                    )),
                }
            }
        }
    }

    fn initializers(&self) -> Result<Initializers> {
        let d = Initializers::default();
        Ok(Initializers {
            kernel_initializer: self.initializer_or("kernel_initializer", d.kernel_initializer)?,
            recurrent_initializer: self
                .initializer_or("recurrent_initializer", d.recurrent_initializer)?,
            bias_initializer: self.initializer_or("bias_initializer", d.bias_initializer)?,
        })
    }

    fn training(&self) -> Result<TrainingOnly> {
        Ok(TrainingOnly {
            dropout: self.f32_or("dropout", 0.0)?,
            recurrent_dropout: self.f32_or("recurrent_dropout", 0.0)?,
            kernel_regularizer: self.json("kernel_regularizer"),
            recurrent_regularizer: self.json("recurrent_regularizer"),
            bias_regularizer: self.json("bias_regularizer"),
            activity_regularizer: self.json("activity_regularizer"),
            kernel_constraint: self.json("kernel_constraint"),
            recurrent_constraint: self.json("recurrent_constraint"),
            bias_constraint: self.json("bias_constraint"),
        })
    }
}

fn as_usize(v: &Value) -> Option<usize> {
    v.as_u64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        })
        .and_then(|u| usize::try_from(u).ok())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The sequence options of an `RNN`-based layer config.
pub(crate) fn sequence_options(c: &Cfg) -> Result<SequenceOptions> {
    Ok(SequenceOptions {
        return_sequences: c.bool_or("return_sequences", false)?,
        return_state: c.bool_or("return_state", false)?,
        go_backwards: c.bool_or("go_backwards", false)?,
        stateful: c.bool_or("stateful", false)?,
        unroll: c.bool_or("unroll", false)?,
        time_major: c.bool_or("time_major", false)?,
        zero_output_for_mask: c.bool_or("zero_output_for_mask", false)?,
    })
}

fn units(c: &Cfg) -> Result<usize> {
    let u = c.usize("units")?;
    if u == 0 {
        return Err(Error::config(
            c.key("units"),
            "expected a positive integer, found 0",
        ));
    }
    Ok(u)
}

/// `SimpleRNN` / `SimpleRNNCell` arguments.
pub(crate) fn simple_rnn_cell(c: &Cfg) -> Result<SimpleRNNCellConfig> {
    Ok(SimpleRNNCellConfig {
        units: units(c)?,
        activation: c.activation_or("activation", Activation::Tanh)?,
        use_bias: c.bool_or("use_bias", true)?,
        initializers: c.initializers()?,
        training: c.training()?,
    })
}

/// `GRU` / `GRUCell` arguments (absent keys: tf.keras 2.x defaults).
pub(crate) fn gru_cell(c: &Cfg) -> Result<GRUCellConfig> {
    Ok(GRUCellConfig {
        units: units(c)?,
        activation: c.activation_or("activation", Activation::Tanh)?,
        recurrent_activation: c.activation_or("recurrent_activation", Activation::Sigmoid)?,
        use_bias: c.bool_or("use_bias", true)?,
        initializers: c.initializers()?,
        reset_after: c.bool_or("reset_after", true)?,
        implementation: c.u8_or("implementation", 2)?,
        training: c.training()?,
    })
}

/// `LSTM` / `LSTMCell` arguments (absent keys: tf.keras 2.x defaults).
pub(crate) fn lstm_cell(c: &Cfg) -> Result<LSTMCellConfig> {
    Ok(LSTMCellConfig {
        units: units(c)?,
        activation: c.activation_or("activation", Activation::Tanh)?,
        recurrent_activation: c.activation_or("recurrent_activation", Activation::Sigmoid)?,
        use_bias: c.bool_or("use_bias", true)?,
        initializers: c.initializers()?,
        unit_forget_bias: c.bool_or("unit_forget_bias", true)?,
        implementation: c.u8_or("implementation", 2)?,
        training: c.training()?,
    })
}

/// `CuDNNGRU` / `CuDNNLSTM` arguments.
pub(crate) fn cudnn(c: &Cfg) -> Result<CuDNNConfig> {
    Ok(CuDNNConfig {
        units: units(c)?,
        initializers: c.initializers()?,
        unit_forget_bias: c.bool_or("unit_forget_bias", true)?,
        training: c.training()?,
        sequence: sequence_options(c)?,
    })
}

/// `ConvLSTM2D` arguments.
pub(crate) fn conv_lstm2d(c: &Cfg) -> Result<ConvLSTM2DConfig> {
    let filters = c.usize("filters")?;
    if filters == 0 {
        return Err(Error::config(
            c.key("filters"),
            "expected a positive integer, found 0",
        ));
    }
    let kernel_size = c.pair_or("kernel_size", (0, 0))?;
    if c.get("kernel_size").is_none() {
        return Err(Error::config(
            c.key("kernel_size"),
            "missing (expected an integer or a list of two integers)",
        ));
    }
    let padding = match c.str_or("padding", "valid")?.to_ascii_lowercase().as_str() {
        "valid" => Padding::Valid,
        "same" => Padding::Same,
        other => {
            return Err(Error::config(
                c.key("padding"),
                format!("expected \"valid\" or \"same\", found \"{other}\""),
            ))
        }
    };
    let data_format = match c.str_or("data_format", "channels_last")? {
        "channels_last" => DataFormat::ChannelsLast,
        "channels_first" => DataFormat::ChannelsFirst,
        other => {
            return Err(Error::config(
                c.key("data_format"),
                format!("expected \"channels_last\" or \"channels_first\", found \"{other}\""),
            ))
        }
    };
    // Keras's ConvRNN2D ignores zero_output_for_mask (masked steps repeat the previous
    // output) and time_major (inputs are (batch, time, ...) either way): ConvLSTM2D::new
    // clears both.
    let sequence = sequence_options(c)?;
    let strides = c.pair_or("strides", (1, 1))?;
    let dilation_rate = c.pair_or("dilation_rate", (1, 1))?;
    for (k, v) in [
        ("kernel_size", kernel_size),
        ("strides", strides),
        ("dilation_rate", dilation_rate),
    ] {
        if v.0 == 0 || v.1 == 0 {
            return Err(Error::config(
                c.key(k),
                format!("expected positive integers, found ({}, {})", v.0, v.1),
            ));
        }
    }
    if (strides != (1, 1)) && (dilation_rate != (1, 1)) {
        return Err(Error::config(
            c.key("strides"),
            format!(
                "strides ({}, {}) != 1 together with dilation_rate ({}, {}) != 1 is not supported (as in Keras)",
                strides.0, strides.1, dilation_rate.0, dilation_rate.1
            ),
        ));
    }
    Ok(ConvLSTM2DConfig {
        filters,
        kernel_size,
        strides,
        padding,
        data_format,
        dilation_rate,
        activation: c.activation_or("activation", Activation::Tanh)?,
        recurrent_activation: c.activation_or("recurrent_activation", Activation::HardSigmoid)?,
        use_bias: c.bool_or("use_bias", true)?,
        initializers: c.initializers()?,
        unit_forget_bias: c.bool_or("unit_forget_bias", true)?,
        training: c.training()?,
        sequence,
    })
}
