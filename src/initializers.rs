//! Keras 2 weight initializers (tf-keras 2.x semantics), deterministic and seeded.
//!
//! [`Initializer`] mirrors the classes of `tf.keras.initializers`: the constant ones
//! (`Zeros`, `Ones`, `Constant`), the random ones (`RandomUniform`, `RandomNormal`,
//! `TruncatedNormal`, `VarianceScaling` and its presets `GlorotUniform`, `GlorotNormal`,
//! `HeUniform`, `HeNormal`, `LecunUniform`, `LecunNormal`), `Orthogonal` and `Identity`.
//!
//! The *distributions* follow Keras 2 exactly (fan computation, the truncated-normal
//! correction constant, the QR-based orthogonal matrix with its sign fix); the random numbers
//! themselves are not TensorFlow's. They come from a small self-contained generator
//! (SplitMix64 seeding xoshiro256\*\*, Box-Muller normals computed with `libm`), so the same
//! seed and salt give the same tensor on every platform.
//!
//! Every random initializer is keyed by its seed (or [`DEFAULT_SEED`] when the seed is `None`)
//! together with a caller-provided `salt`, so that two weights of one layer built from the same
//! unseeded initializer still differ.

use ndarray::{ArrayD, IxDyn};
use serde_json::{json, Map, Value};

use crate::{Error, Result};

/// The seed used by [`Initializer::generate`] when the initializer's own seed is `None`.
///
/// It is combined with the call's `salt` exactly like an explicit seed would be, so an unseeded
/// initializer behaves like one seeded with `DEFAULT_SEED` (the ASCII bytes of `"keras2"`).
pub const DEFAULT_SEED: u64 = 0x6B65_7261_7332;

/// `sqrt(scale) / TRUNCATED_NORMAL_STDDEV_CORRECTION` is the stddev Keras 2 gives the normal
/// distribution before truncating it at two standard deviations, so that the truncated
/// distribution keeps the variance `scale`.
const TRUNCATED_NORMAL_STDDEV_CORRECTION: f64 = 0.879_625_661_034_239_8;

/// The fan a [`Initializer::VarianceScaling`] divides its scale by (Keras `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanMode {
    /// `"fan_in"`: the number of input units of the weight.
    FanIn,
    /// `"fan_out"`: the number of output units of the weight.
    FanOut,
    /// `"fan_avg"`: the mean of the two.
    FanAvg,
}

impl FanMode {
    /// The Keras spelling: `"fan_in"`, `"fan_out"` or `"fan_avg"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FanMode::FanIn => "fan_in",
            FanMode::FanOut => "fan_out",
            FanMode::FanAvg => "fan_avg",
        }
    }

    /// Parses the Keras spelling (case-sensitive, like Keras 2).
    pub fn from_keras_str(s: &str) -> Option<FanMode> {
        match s {
            "fan_in" => Some(FanMode::FanIn),
            "fan_out" => Some(FanMode::FanOut),
            "fan_avg" => Some(FanMode::FanAvg),
            _ => None,
        }
    }
}

/// The distribution a [`Initializer::VarianceScaling`] draws from (Keras `distribution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// `"truncated_normal"` (Keras 2 also reads `"normal"` as this): a normal distribution
    /// truncated at two standard deviations, rescaled to keep the target variance.
    TruncatedNormal,
    /// `"untruncated_normal"`: a plain normal distribution.
    UntruncatedNormal,
    /// `"uniform"`: a uniform distribution on `[-limit, limit)`.
    Uniform,
}

impl Distribution {
    /// The Keras spelling: `"truncated_normal"`, `"untruncated_normal"` or `"uniform"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Distribution::TruncatedNormal => "truncated_normal",
            Distribution::UntruncatedNormal => "untruncated_normal",
            Distribution::Uniform => "uniform",
        }
    }

    /// Parses the Keras 2 spelling, case-insensitively like Keras 2; `"normal"` means
    /// [`Distribution::TruncatedNormal`].
    pub fn from_keras_str(s: &str) -> Option<Distribution> {
        match s.to_ascii_lowercase().as_str() {
            "truncated_normal" | "normal" => Some(Distribution::TruncatedNormal),
            "untruncated_normal" => Some(Distribution::UntruncatedNormal),
            "uniform" => Some(Distribution::Uniform),
            _ => None,
        }
    }
}

/// A Keras 2 initializer.
///
/// Build one with the constructors ([`Initializer::glorot_uniform`], [`Initializer::orthogonal`],
/// ...), parse one from a layer config with [`Initializer::from_keras`], and draw a tensor with
/// [`Initializer::generate`].
#[derive(Debug, Clone, PartialEq)]
pub enum Initializer {
    /// All zeros (`Zeros`).
    Zeros,
    /// All ones (`Ones`).
    Ones,
    /// Every element equal to `value` (`Constant`).
    Constant {
        /// The fill value (Keras default `0.0`).
        value: f64,
    },
    /// Uniform on `[minval, maxval)` (`RandomUniform`).
    RandomUniform {
        /// Lower bound (Keras default `-0.05`).
        minval: f64,
        /// Upper bound (Keras default `0.05`).
        maxval: f64,
        /// The seed, `None` for [`DEFAULT_SEED`].
        seed: Option<u64>,
    },
    /// Normal with `mean` and `stddev` (`RandomNormal`).
    RandomNormal {
        /// Mean (Keras default `0.0`).
        mean: f64,
        /// Standard deviation (Keras default `0.05`).
        stddev: f64,
        /// The seed, `None` for [`DEFAULT_SEED`].
        seed: Option<u64>,
    },
    /// Normal with `mean` and `stddev`, values further than two `stddev` from the mean
    /// re-drawn (`TruncatedNormal`).
    TruncatedNormal {
        /// Mean (Keras default `0.0`).
        mean: f64,
        /// Standard deviation of the normal before truncation (Keras default `0.05`).
        stddev: f64,
        /// The seed, `None` for [`DEFAULT_SEED`].
        seed: Option<u64>,
    },
    /// Variance `scale / fan` (`VarianceScaling`, and the Glorot / He / Lecun presets).
    VarianceScaling {
        /// The target variance before dividing by the fan; must be positive (Keras default `1.0`).
        scale: f64,
        /// Which fan to divide by (Keras default `fan_in`).
        mode: FanMode,
        /// The distribution (Keras default `truncated_normal`).
        distribution: Distribution,
        /// The seed, `None` for [`DEFAULT_SEED`].
        seed: Option<u64>,
    },
    /// A (semi-)orthogonal matrix times `gain` (`Orthogonal`); shapes of rank >= 2.
    Orthogonal {
        /// The multiplicative factor (Keras default `1.0`).
        gain: f64,
        /// The seed, `None` for [`DEFAULT_SEED`].
        seed: Option<u64>,
    },
    /// `gain` times the identity matrix, ones on the main diagonal (`Identity`); rank-2 shapes
    /// only, non-square allowed.
    Identity {
        /// The multiplicative factor (Keras default `1.0`).
        gain: f64,
    },
}

/// The Keras 2 class behind a name, before its config is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Zeros,
    Ones,
    Constant,
    RandomUniform,
    RandomNormal,
    TruncatedNormal,
    VarianceScaling,
    GlorotUniform,
    GlorotNormal,
    HeUniform,
    HeNormal,
    LecunUniform,
    LecunNormal,
    Orthogonal,
    Identity,
}

/// Every class with its Keras class name and snake-case alias.
const KINDS: [(Kind, &str, &str); 15] = [
    (Kind::Zeros, "Zeros", "zeros"),
    (Kind::Ones, "Ones", "ones"),
    (Kind::Constant, "Constant", "constant"),
    (Kind::RandomUniform, "RandomUniform", "random_uniform"),
    (Kind::RandomNormal, "RandomNormal", "random_normal"),
    (Kind::TruncatedNormal, "TruncatedNormal", "truncated_normal"),
    (Kind::VarianceScaling, "VarianceScaling", "variance_scaling"),
    (Kind::GlorotUniform, "GlorotUniform", "glorot_uniform"),
    (Kind::GlorotNormal, "GlorotNormal", "glorot_normal"),
    (Kind::HeUniform, "HeUniform", "he_uniform"),
    (Kind::HeNormal, "HeNormal", "he_normal"),
    (Kind::LecunUniform, "LecunUniform", "lecun_uniform"),
    (Kind::LecunNormal, "LecunNormal", "lecun_normal"),
    (Kind::Orthogonal, "Orthogonal", "orthogonal"),
    (Kind::Identity, "Identity", "identity"),
];

/// Resolves a Keras 2 initializer name: a class name (`GlorotUniform`), its snake-case alias
/// (`glorot_uniform`), either with the `V2` suffix Keras 2 keeps for compatibility
/// (`GlorotUniformV2`, `glorot_uniformV2`), the short aliases `normal`, `uniform`, `one`,
/// `zero`, and the Keras 3 class names `OrthogonalInitializer` / `IdentityInitializer`.
fn kind_from_name(name: &str) -> Option<Kind> {
    match name {
        "normal" => return Some(Kind::RandomNormal),
        "uniform" => return Some(Kind::RandomUniform),
        "one" => return Some(Kind::Ones),
        "zero" => return Some(Kind::Zeros),
        "OrthogonalInitializer" => return Some(Kind::Orthogonal),
        "IdentityInitializer" => return Some(Kind::Identity),
        _ => {}
    }
    let base = name.strip_suffix("V2").unwrap_or(name);
    KINDS
        .iter()
        .find(|(_, class, snake)| *class == base || *snake == base)
        .map(|(kind, _, _)| *kind)
}

/// The names [`Initializer::from_keras`] accepts, for error messages.
fn known_names() -> String {
    let mut names: Vec<&str> = KINDS.iter().map(|(_, _, snake)| *snake).collect();
    names.extend(["normal", "uniform", "one", "zero"]);
    names.extend(KINDS.iter().map(|(_, class, _)| *class));
    names.join(", ")
}

/// A short description of a JSON value's type, for error messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads the config keys of one initializer class.
struct ConfigReader<'a> {
    /// The config key path used in errors, e.g. `kernel_initializer.config`.
    field: String,
    /// The config object; `None` when the class was given by name only.
    map: Option<&'a Map<String, Value>>,
}

impl<'a> ConfigReader<'a> {
    /// The error path of `key`.
    fn path(&self, key: &str) -> String {
        format!("{}.{key}", self.field)
    }

    /// The value of `key`, `None` when absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(key))
    }

    /// Keys the class does not take are ignored: an initializer never changes inference with
    /// trained weights, so an exported config must not fail on a key a newer Keras added.
    fn check_keys(&self, _class: &str, _allowed: &[&str]) -> Result<()> {
        Ok(())
    }

    /// A float key, `default` when absent.
    fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| {
                Error::config(
                    self.path(key),
                    format!("expected a number, found {}", json_type(v)),
                )
            }),
        }
    }

    /// The `seed` key: absent or `null` is `None`, a (possibly negative) integer is kept as its
    /// 64-bit two's-complement pattern.
    fn seed(&self) -> Result<Option<u64>> {
        match self.get("seed") {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                if let Some(s) = v.as_u64() {
                    Ok(Some(s))
                } else if let Some(s) = v.as_i64() {
                    Ok(Some(s as u64))
                } else {
                    Err(Error::config(
                        self.path("seed"),
                        format!("expected an integer or null, found {v}"),
                    ))
                }
            }
        }
    }

    /// A string key, `default` when absent.
    fn str_or(&self, key: &str, default: &'a str) -> Result<&'a str> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(v) => Err(Error::config(
                self.path(key),
                format!("expected a string, found {}", json_type(v)),
            )),
        }
    }
}

impl Initializer {
    /// `Zeros`.
    pub fn zeros() -> Self {
        Initializer::Zeros
    }

    /// `Ones`.
    pub fn ones() -> Self {
        Initializer::Ones
    }

    /// `Constant(value)`.
    pub fn constant(value: f64) -> Self {
        Initializer::Constant { value }
    }

    /// `RandomUniform` with the Keras defaults `minval=-0.05, maxval=0.05`, unseeded.
    pub fn random_uniform() -> Self {
        Initializer::RandomUniform {
            minval: -0.05,
            maxval: 0.05,
            seed: None,
        }
    }

    /// `RandomNormal` with the Keras defaults `mean=0.0, stddev=0.05`, unseeded.
    pub fn random_normal() -> Self {
        Initializer::RandomNormal {
            mean: 0.0,
            stddev: 0.05,
            seed: None,
        }
    }

    /// `TruncatedNormal` with the Keras defaults `mean=0.0, stddev=0.05`, unseeded.
    pub fn truncated_normal() -> Self {
        Initializer::TruncatedNormal {
            mean: 0.0,
            stddev: 0.05,
            seed: None,
        }
    }

    /// `VarianceScaling(scale, mode, distribution)`, unseeded.
    pub fn variance_scaling(scale: f64, mode: FanMode, distribution: Distribution) -> Self {
        Initializer::VarianceScaling {
            scale,
            mode,
            distribution,
            seed: None,
        }
    }

    /// `GlorotUniform`: `VarianceScaling(1.0, fan_avg, uniform)`, unseeded.
    pub fn glorot_uniform() -> Self {
        Self::variance_scaling(1.0, FanMode::FanAvg, Distribution::Uniform)
    }

    /// `GlorotNormal`: `VarianceScaling(1.0, fan_avg, truncated_normal)`, unseeded.
    pub fn glorot_normal() -> Self {
        Self::variance_scaling(1.0, FanMode::FanAvg, Distribution::TruncatedNormal)
    }

    /// `HeUniform`: `VarianceScaling(2.0, fan_in, uniform)`, unseeded.
    pub fn he_uniform() -> Self {
        Self::variance_scaling(2.0, FanMode::FanIn, Distribution::Uniform)
    }

    /// `HeNormal`: `VarianceScaling(2.0, fan_in, truncated_normal)`, unseeded.
    pub fn he_normal() -> Self {
        Self::variance_scaling(2.0, FanMode::FanIn, Distribution::TruncatedNormal)
    }

    /// `LecunUniform`: `VarianceScaling(1.0, fan_in, uniform)`, unseeded.
    pub fn lecun_uniform() -> Self {
        Self::variance_scaling(1.0, FanMode::FanIn, Distribution::Uniform)
    }

    /// `LecunNormal`: `VarianceScaling(1.0, fan_in, truncated_normal)`, unseeded.
    pub fn lecun_normal() -> Self {
        Self::variance_scaling(1.0, FanMode::FanIn, Distribution::TruncatedNormal)
    }

    /// `Orthogonal` with the Keras default `gain=1.0`, unseeded.
    pub fn orthogonal() -> Self {
        Initializer::Orthogonal {
            gain: 1.0,
            seed: None,
        }
    }

    /// `Identity` with the Keras default `gain=1.0`.
    pub fn identity() -> Self {
        Initializer::Identity { gain: 1.0 }
    }

    /// The same initializer with its seed replaced by `seed` (no effect on the non-random
    /// `Zeros`, `Ones`, `Constant` and `Identity`).
    pub fn with_seed(mut self, seed: Option<u64>) -> Self {
        match &mut self {
            Initializer::RandomUniform { seed: s, .. }
            | Initializer::RandomNormal { seed: s, .. }
            | Initializer::TruncatedNormal { seed: s, .. }
            | Initializer::VarianceScaling { seed: s, .. }
            | Initializer::Orthogonal { seed: s, .. } => *s = seed,
            Initializer::Zeros
            | Initializer::Ones
            | Initializer::Constant { .. }
            | Initializer::Identity { .. } => {}
        }
        self
    }

    /// The initializer's own seed (`None` for unseeded and non-random initializers).
    pub fn seed(&self) -> Option<u64> {
        match self {
            Initializer::RandomUniform { seed, .. }
            | Initializer::RandomNormal { seed, .. }
            | Initializer::TruncatedNormal { seed, .. }
            | Initializer::VarianceScaling { seed, .. }
            | Initializer::Orthogonal { seed, .. } => *seed,
            Initializer::Zeros
            | Initializer::Ones
            | Initializer::Constant { .. }
            | Initializer::Identity { .. } => None,
        }
    }

    /// Parses a Keras 2 initializer from a layer config value.
    ///
    /// `value` is either a string name (`"glorot_uniform"`, `"orthogonal"`, `"zeros"`, `"ones"`,
    /// `"uniform"`/`"random_uniform"`, `"normal"`/`"random_normal"`, `"truncated_normal"`,
    /// `"he_uniform"`, `"he_normal"`, `"lecun_uniform"`, `"lecun_normal"`, `"glorot_normal"`,
    /// `"identity"`, `"constant"`, `"variance_scaling"`, or a class name such as
    /// `"GlorotUniform"`), taking the Keras 2 defaults, or an object
    /// `{"class_name": "GlorotUniform", "config": {"seed": null, ...}, "module": ..., "registered_name": ...}`
    /// whose `config` (optional) may leave keys out to take their Keras 2 defaults.
    ///
    /// Class names: `Zeros`, `Ones`, `Constant`, `RandomUniform`, `RandomNormal`,
    /// `TruncatedNormal`, `VarianceScaling`, `GlorotUniform`, `GlorotNormal`, `HeUniform`,
    /// `HeNormal`, `LecunUniform`, `LecunNormal`, `Orthogonal`, `Identity`, their snake-case
    /// aliases, the `V2`-suffixed compatibility aliases of Keras 2, `one`, `zero`, and the Keras 3
    /// names `OrthogonalInitializer` / `IdentityInitializer`.
    ///
    /// `VarianceScaling` reads `mode` as `"fan_in"`/`"fan_out"`/`"fan_avg"` and `distribution` as
    /// `"truncated_normal"`/`"untruncated_normal"`/`"uniform"`/`"normal"` (`"normal"` is
    /// `truncated_normal`, as in Keras 2); its `scale` must be positive.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming `field` (or `field.class_name`, `field.config.<key>`) for an
    /// unknown name (the message lists the known ones), a value of the wrong JSON type, a config
    /// key the class does not take (other than `dtype`, which Keras 2 drops), or an invalid
    /// `scale` / `mode` / `distribution`.
    pub fn from_keras(field: &str, value: &Value) -> Result<Initializer> {
        match value {
            Value::String(name) => {
                let kind = kind_from_name(name).ok_or_else(|| {
                    Error::config(
                        field,
                        format!(
                            "unknown initializer `{name}` (expected one of {})",
                            known_names()
                        ),
                    )
                })?;
                Self::from_kind(
                    kind,
                    &ConfigReader {
                        field: format!("{field}.config"),
                        map: None,
                    },
                )
            }
            Value::Object(obj) => {
                let class_field = format!("{field}.class_name");
                let class = match obj.get("class_name") {
                    Some(Value::String(s)) => s.as_str(),
                    Some(v) => {
                        return Err(Error::config(
                            class_field,
                            format!("expected a string, found {}", json_type(v)),
                        ))
                    }
                    None => {
                        return Err(Error::config(
                            class_field,
                            "missing (an initializer object needs `class_name` and `config`)",
                        ))
                    }
                };
                let kind = kind_from_name(class).ok_or_else(|| {
                    Error::config(
                        class_field.clone(),
                        format!(
                            "unknown initializer class `{class}` (expected one of {})",
                            known_names()
                        ),
                    )
                })?;
                let config_field = format!("{field}.config");
                let map = match obj.get("config") {
                    None | Some(Value::Null) => None,
                    Some(Value::Object(m)) => Some(m),
                    Some(v) => {
                        return Err(Error::config(
                            config_field,
                            format!("expected an object, found {}", json_type(v)),
                        ))
                    }
                };
                Self::from_kind(
                    kind,
                    &ConfigReader {
                        field: config_field,
                        map,
                    },
                )
            }
            other => Err(Error::config(
                field,
                format!(
                    "expected an initializer name or a {{\"class_name\": ..., \"config\": ...}} object, found {}",
                    json_type(other)
                ),
            )),
        }
    }

    /// Builds the initializer of `kind` from its config.
    fn from_kind(kind: Kind, cfg: &ConfigReader<'_>) -> Result<Initializer> {
        let preset = |scale: f64, mode: FanMode, distribution: Distribution, class: &str| {
            cfg.check_keys(class, &["seed"])?;
            Ok(Initializer::VarianceScaling {
                scale,
                mode,
                distribution,
                seed: cfg.seed()?,
            })
        };
        match kind {
            Kind::Zeros => {
                cfg.check_keys("Zeros", &[])?;
                Ok(Initializer::Zeros)
            }
            Kind::Ones => {
                cfg.check_keys("Ones", &[])?;
                Ok(Initializer::Ones)
            }
            Kind::Constant => {
                cfg.check_keys("Constant", &["value"])?;
                Ok(Initializer::Constant {
                    value: cfg.f64_or("value", 0.0)?,
                })
            }
            Kind::RandomUniform => {
                cfg.check_keys("RandomUniform", &["minval", "maxval", "seed"])?;
                Ok(Initializer::RandomUniform {
                    minval: cfg.f64_or("minval", -0.05)?,
                    maxval: cfg.f64_or("maxval", 0.05)?,
                    seed: cfg.seed()?,
                })
            }
            Kind::RandomNormal => {
                cfg.check_keys("RandomNormal", &["mean", "stddev", "seed"])?;
                Ok(Initializer::RandomNormal {
                    mean: cfg.f64_or("mean", 0.0)?,
                    stddev: cfg.f64_or("stddev", 0.05)?,
                    seed: cfg.seed()?,
                })
            }
            Kind::TruncatedNormal => {
                cfg.check_keys("TruncatedNormal", &["mean", "stddev", "seed"])?;
                Ok(Initializer::TruncatedNormal {
                    mean: cfg.f64_or("mean", 0.0)?,
                    stddev: cfg.f64_or("stddev", 0.05)?,
                    seed: cfg.seed()?,
                })
            }
            Kind::VarianceScaling => {
                cfg.check_keys(
                    "VarianceScaling",
                    &["scale", "mode", "distribution", "seed"],
                )?;
                let scale = cfg.f64_or("scale", 1.0)?;
                if scale.is_nan() || scale <= 0.0 {
                    return Err(Error::config(
                        cfg.path("scale"),
                        format!("must be a positive float, found {scale}"),
                    ));
                }
                let mode_str = cfg.str_or("mode", "fan_in")?;
                let mode = FanMode::from_keras_str(mode_str).ok_or_else(|| {
                    Error::config(
                        cfg.path("mode"),
                        format!(
                            "unknown mode `{mode_str}` (expected one of fan_in, fan_out, fan_avg)"
                        ),
                    )
                })?;
                let dist_str = cfg.str_or("distribution", "truncated_normal")?;
                let distribution = Distribution::from_keras_str(dist_str).ok_or_else(|| {
                    Error::config(
                        cfg.path("distribution"),
                        format!(
                            "unknown distribution `{dist_str}` (expected one of truncated_normal, untruncated_normal, uniform, normal)"
                        ),
                    )
                })?;
                Ok(Initializer::VarianceScaling {
                    scale,
                    mode,
                    distribution,
                    seed: cfg.seed()?,
                })
            }
            Kind::GlorotUniform => {
                preset(1.0, FanMode::FanAvg, Distribution::Uniform, "GlorotUniform")
            }
            Kind::GlorotNormal => preset(
                1.0,
                FanMode::FanAvg,
                Distribution::TruncatedNormal,
                "GlorotNormal",
            ),
            Kind::HeUniform => preset(2.0, FanMode::FanIn, Distribution::Uniform, "HeUniform"),
            Kind::HeNormal => preset(
                2.0,
                FanMode::FanIn,
                Distribution::TruncatedNormal,
                "HeNormal",
            ),
            Kind::LecunUniform => {
                preset(1.0, FanMode::FanIn, Distribution::Uniform, "LecunUniform")
            }
            Kind::LecunNormal => preset(
                1.0,
                FanMode::FanIn,
                Distribution::TruncatedNormal,
                "LecunNormal",
            ),
            Kind::Orthogonal => {
                cfg.check_keys("Orthogonal", &["gain", "seed"])?;
                Ok(Initializer::Orthogonal {
                    gain: cfg.f64_or("gain", 1.0)?,
                    seed: cfg.seed()?,
                })
            }
            Kind::Identity => {
                cfg.check_keys("Identity", &["gain"])?;
                Ok(Initializer::Identity {
                    gain: cfg.f64_or("gain", 1.0)?,
                })
            }
        }
    }

    /// The preset a `VarianceScaling` matches exactly, if any.
    fn preset_kind(&self) -> Option<Kind> {
        let Initializer::VarianceScaling {
            scale,
            mode,
            distribution,
            ..
        } = self
        else {
            return None;
        };
        let (scale, mode, distribution) = (*scale, *mode, *distribution);
        use Distribution as D;
        use FanMode as F;
        if scale == 1.0 && mode == F::FanAvg && distribution == D::Uniform {
            Some(Kind::GlorotUniform)
        } else if scale == 1.0 && mode == F::FanAvg && distribution == D::TruncatedNormal {
            Some(Kind::GlorotNormal)
        } else if scale == 2.0 && mode == F::FanIn && distribution == D::Uniform {
            Some(Kind::HeUniform)
        } else if scale == 2.0 && mode == F::FanIn && distribution == D::TruncatedNormal {
            Some(Kind::HeNormal)
        } else if scale == 1.0 && mode == F::FanIn && distribution == D::Uniform {
            Some(Kind::LecunUniform)
        } else if scale == 1.0 && mode == F::FanIn && distribution == D::TruncatedNormal {
            Some(Kind::LecunNormal)
        } else {
            None
        }
    }

    /// The Keras class name (e.g. `"GlorotUniform"`) for display.
    ///
    /// A `VarianceScaling` whose scale, mode and distribution are exactly those of a preset is
    /// named after the preset (`GlorotUniform`, `GlorotNormal`, `HeUniform`, `HeNormal`,
    /// `LecunUniform`, `LecunNormal`); any other is `"VarianceScaling"`.
    pub fn class_name(&self) -> &'static str {
        match self {
            Initializer::Zeros => "Zeros",
            Initializer::Ones => "Ones",
            Initializer::Constant { .. } => "Constant",
            Initializer::RandomUniform { .. } => "RandomUniform",
            Initializer::RandomNormal { .. } => "RandomNormal",
            Initializer::TruncatedNormal { .. } => "TruncatedNormal",
            Initializer::VarianceScaling { .. } => match self.preset_kind() {
                Some(kind) => KINDS
                    .iter()
                    .find(|(k, _, _)| *k == kind)
                    .map_or("VarianceScaling", |(_, class, _)| class),
                None => "VarianceScaling",
            },
            Initializer::Orthogonal { .. } => "Orthogonal",
            Initializer::Identity { .. } => "Identity",
        }
    }

    /// The Keras 2 serialized form, `{"module": "keras.initializers", "class_name": ...,
    /// "config": {...}, "registered_name": null}`, with the config keys of the class
    /// [`Initializer::class_name`] names (presets write only `seed`). [`Initializer::from_keras`]
    /// reads it back to an equal value.
    pub fn to_keras(&self) -> Value {
        let config = match self {
            Initializer::Zeros | Initializer::Ones => json!({}),
            Initializer::Constant { value } => json!({ "value": value }),
            Initializer::RandomUniform {
                minval,
                maxval,
                seed,
            } => json!({ "minval": minval, "maxval": maxval, "seed": seed }),
            Initializer::RandomNormal { mean, stddev, seed }
            | Initializer::TruncatedNormal { mean, stddev, seed } => {
                json!({ "mean": mean, "stddev": stddev, "seed": seed })
            }
            Initializer::VarianceScaling {
                scale,
                mode,
                distribution,
                seed,
            } => {
                if self.preset_kind().is_some() {
                    json!({ "seed": seed })
                } else {
                    json!({
                        "scale": scale,
                        "mode": mode.as_str(),
                        "distribution": distribution.as_str(),
                        "seed": seed,
                    })
                }
            }
            Initializer::Orthogonal { gain, seed } => json!({ "gain": gain, "seed": seed }),
            Initializer::Identity { gain } => json!({ "gain": gain }),
        };
        json!({
            "module": "keras.initializers",
            "class_name": self.class_name(),
            "config": config,
            "registered_name": null,
        })
    }

    /// Generates a tensor of `shape` (f32), deterministic in (the initializer's seed, or
    /// [`DEFAULT_SEED`] when it has none, and `salt`): the same pair gives the same tensor on
    /// every platform, a different `salt` a different one. Values are computed in f64 and
    /// rounded to f32.
    ///
    /// Fans follow Keras 2: rank 0 gives `fan_in = fan_out = 1`; rank 1 `shape[0]` for both;
    /// rank 2 `(a, b)` gives `fan_in = a, fan_out = b`; higher ranks (convolution kernels
    /// `(..., in, out)`) multiply `in` and `out` by the product of the leading dimensions.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] (field `initializer`) for an `Orthogonal` shape of rank < 2, an
    /// `Identity` shape of rank other than 2, a `VarianceScaling` with a non-positive scale, or a
    /// shape whose element count overflows `usize`.
    pub fn generate(&self, shape: &[usize], salt: u64) -> Result<ArrayD<f32>> {
        let size = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                Error::config(
                    "initializer",
                    format!(
                        "shape {} has too many elements",
                        crate::error::fmt_shape(shape)
                    ),
                )
            })?;
        let key = self.seed().unwrap_or(DEFAULT_SEED);
        let mut rng = Rng::new(key, salt);
        let data: Vec<f32> = match self {
            Initializer::Zeros => vec![0.0; size],
            Initializer::Ones => vec![1.0; size],
            Initializer::Constant { value } => vec![*value as f32; size],
            Initializer::RandomUniform { minval, maxval, .. } => (0..size)
                .map(|_| (minval + (maxval - minval) * rng.next_f64()) as f32)
                .collect(),
            Initializer::RandomNormal { mean, stddev, .. } => (0..size)
                .map(|_| (mean + stddev * rng.next_normal()) as f32)
                .collect(),
            Initializer::TruncatedNormal { mean, stddev, .. } => (0..size)
                .map(|_| (mean + stddev * rng.next_truncated_normal()) as f32)
                .collect(),
            Initializer::VarianceScaling {
                scale,
                mode,
                distribution,
                ..
            } => {
                if scale.is_nan() || *scale <= 0.0 {
                    return Err(Error::config(
                        "initializer",
                        format!("VarianceScaling scale must be a positive float, found {scale}"),
                    ));
                }
                let (fan_in, fan_out) = compute_fans(shape);
                let fan = match mode {
                    FanMode::FanIn => fan_in,
                    FanMode::FanOut => fan_out,
                    FanMode::FanAvg => (fan_in + fan_out) / 2.0,
                };
                let scale = scale / fan.max(1.0);
                match distribution {
                    Distribution::TruncatedNormal => {
                        let stddev = scale.sqrt() / TRUNCATED_NORMAL_STDDEV_CORRECTION;
                        (0..size)
                            .map(|_| (stddev * rng.next_truncated_normal()) as f32)
                            .collect()
                    }
                    Distribution::UntruncatedNormal => {
                        let stddev = scale.sqrt();
                        (0..size)
                            .map(|_| (stddev * rng.next_normal()) as f32)
                            .collect()
                    }
                    Distribution::Uniform => {
                        let limit = (3.0 * scale).sqrt();
                        (0..size)
                            .map(|_| (-limit + 2.0 * limit * rng.next_f64()) as f32)
                            .collect()
                    }
                }
            }
            Initializer::Orthogonal { gain, .. } => {
                if shape.len() < 2 {
                    return Err(Error::config(
                        "initializer",
                        format!(
                            "the Orthogonal initializer needs a shape of rank >= 2, found {}",
                            crate::error::fmt_shape(shape)
                        ),
                    ));
                }
                let num_cols = shape[shape.len() - 1];
                let num_rows = shape[..shape.len() - 1].iter().product::<usize>();
                orthogonal(num_rows, num_cols, *gain, &mut rng)
            }
            Initializer::Identity { gain } => {
                let &[rows, cols] = shape else {
                    return Err(Error::config(
                        "initializer",
                        format!(
                            "the Identity initializer can only be used for 2D matrices, found shape {}",
                            crate::error::fmt_shape(shape)
                        ),
                    ));
                };
                let mut data = vec![0.0f32; size];
                for i in 0..rows.min(cols) {
                    data[i * cols + i] = *gain as f32;
                }
                data
            }
        };
        ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| {
            Error::config(
                "initializer",
                format!(
                    "cannot build a tensor of shape {}: {e}",
                    crate::error::fmt_shape(shape)
                ),
            )
        })
    }
}

/// Keras 2's `_compute_fans`, as floats.
fn compute_fans(shape: &[usize]) -> (f64, f64) {
    match shape {
        [] => (1.0, 1.0),
        [n] => (*n as f64, *n as f64),
        [a, b] => (*a as f64, *b as f64),
        [lead @ .., fin, fout] => {
            let receptive: f64 = lead.iter().map(|&d| d as f64).product();
            (*fin as f64 * receptive, *fout as f64 * receptive)
        }
    }
}

/// Keras 2's `Orthogonal.__call__` on the flattened `(num_rows, num_cols)` matrix, row-major.
fn orthogonal(num_rows: usize, num_cols: usize, gain: f64, rng: &mut Rng) -> Vec<f32> {
    let m = num_rows.max(num_cols);
    let n = num_rows.min(num_cols);
    let mut a: Vec<f64> = (0..m * n).map(|_| rng.next_normal()).collect();
    let q = thin_q(&mut a, m, n);
    if num_rows < num_cols {
        // q is (num_cols, num_rows); the result is its transpose.
        let mut out = vec![0.0f32; num_rows * num_cols];
        for i in 0..num_rows {
            for j in 0..num_cols {
                out[i * num_cols + j] = (gain * q[j * n + i]) as f32;
            }
        }
        out
    } else {
        q.iter().map(|&x| (gain * x) as f32).collect()
    }
}

/// The `Q` of the thin QR decomposition of the row-major `m x n` matrix `a` (`m >= n`), with
/// each column multiplied by the sign of the matching diagonal entry of `R` (so `R` has a
/// positive diagonal and `Q` is unique), by Householder reflections in f64. `a` is overwritten
/// with `R`. A zero diagonal entry (probability zero for Gaussian input) keeps its column as is.
fn thin_q(a: &mut [f64], m: usize, n: usize) -> Vec<f64> {
    // Work column-major (column j is `c[j*m .. (j+1)*m]`) so that every reflector touches
    // contiguous memory.
    let mut c = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            c[j * m + i] = a[i * n + j];
        }
    }
    // Householder vectors v_k (acting on rows k..m) with their squared norms; a zero norm
    // means the reflection is the identity.
    let mut reflectors: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n);
    let mut diag = vec![0.0f64; n];
    for k in 0..n {
        let mut v: Vec<f64> = c[k * m + k..(k + 1) * m].to_vec();
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            reflectors.push((v, 0.0));
            continue;
        }
        let alpha = if v[0] >= 0.0 { -norm } else { norm };
        v[0] -= alpha;
        let vnorm2: f64 = v.iter().map(|x| x * x).sum();
        apply_reflector(&mut c, m, k, &v, vnorm2, k..n);
        diag[k] = alpha;
        reflectors.push((v, vnorm2));
    }
    for i in 0..m {
        for j in 0..n {
            a[i * n + j] = c[j * m + i];
        }
    }
    // Q = H_0 H_1 ... H_{n-1} applied to the first n columns of the m x m identity.
    let mut q = vec![0.0f64; m * n];
    for j in 0..n {
        q[j * m + j] = 1.0;
    }
    for (k, (v, vnorm2)) in reflectors.iter().enumerate().rev() {
        apply_reflector(&mut q, m, k, v, *vnorm2, k..n);
    }
    let mut out = vec![0.0f64; m * n];
    for j in 0..n {
        let sign = if diag[j] < 0.0 { -1.0 } else { 1.0 };
        for i in 0..m {
            out[i * n + j] = sign * q[j * m + i];
        }
    }
    out
}

/// Applies `I - 2 v v^T / vnorm2` (acting on rows `k..`) to the columns `cols` of the
/// column-major matrix `mat` with `m` rows; the identity when `vnorm2` is zero.
fn apply_reflector(
    mat: &mut [f64],
    m: usize,
    k: usize,
    v: &[f64],
    vnorm2: f64,
    cols: std::ops::Range<usize>,
) {
    if vnorm2 == 0.0 {
        return;
    }
    for j in cols {
        let col = &mut mat[j * m + k..(j + 1) * m];
        let dot: f64 = v.iter().zip(col.iter()).map(|(a, b)| a * b).sum();
        let f = 2.0 * dot / vnorm2;
        for (x, vr) in col.iter_mut().zip(v) {
            *x -= f * vr;
        }
    }
}

/// SplitMix64 step: advances `state` and returns the next output.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256\*\* seeded through SplitMix64 from `(seed, salt)`, with Box-Muller normals.
/// Pure integer arithmetic plus `libm`, so identical on every platform.
struct Rng {
    s: [u64; 4],
    /// The second normal of the last Box-Muller pair, not yet handed out.
    spare_normal: Option<f64>,
}

impl Rng {
    /// A generator keyed by `seed` and `salt`.
    fn new(seed: u64, salt: u64) -> Self {
        let mut salt_state = salt ^ 0xD1B5_4A32_D192_ED03;
        let mut seed_state = seed;
        let mut state = splitmix64(&mut seed_state) ^ splitmix64(&mut salt_state);
        let mut s = [0u64; 4];
        for word in &mut s {
            *word = splitmix64(&mut state);
        }
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng {
            s,
            spare_normal: None,
        }
    }

    /// The next 64 random bits (xoshiro256\*\*).
    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform on `[0, 1)` with 53 random bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box-Muller, both values of each pair used).
    fn next_normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        // u1 in (0, 1] so the logarithm is finite.
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        let r = libm::sqrt(-2.0 * libm::log(u1));
        let theta = 2.0 * std::f64::consts::PI * u2;
        self.spare_normal = Some(r * libm::sin(theta));
        r * libm::cos(theta)
    }

    /// Standard normal re-drawn until within `[-2, 2]` (TensorFlow's truncated normal).
    fn next_truncated_normal(&mut self) -> f64 {
        loop {
            let z = self.next_normal();
            if z.abs() <= 2.0 {
                return z;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Max |(M M^T or M^T M) - gain^2 I| for a row-major `rows x cols` matrix, using the
    /// smaller Gram matrix.
    fn orthogonality_error(data: &[f32], rows: usize, cols: usize, gain: f64) -> f64 {
        let mut worst = 0.0f64;
        if rows >= cols {
            for a in 0..cols {
                for b in 0..cols {
                    let dot: f64 = (0..rows)
                        .map(|i| data[i * cols + a] as f64 * data[i * cols + b] as f64)
                        .sum();
                    let want = if a == b { gain * gain } else { 0.0 };
                    worst = worst.max((dot - want).abs());
                }
            }
        } else {
            for a in 0..rows {
                for b in 0..rows {
                    let dot: f64 = (0..cols)
                        .map(|j| data[a * cols + j] as f64 * data[b * cols + j] as f64)
                        .sum();
                    let want = if a == b { gain * gain } else { 0.0 };
                    worst = worst.max((dot - want).abs());
                }
            }
        }
        worst
    }

    #[test]
    fn orthogonal_wide_tall_and_conv() {
        for (shape, gain) in [
            (vec![6usize, 24], 1.0),
            (vec![24, 6], 1.0),
            (vec![3, 3, 4, 8], 1.0),
            (vec![8, 8], 1.0),
            (vec![6, 24], 2.0),
            (vec![24, 6], 0.5),
        ] {
            let init = Initializer::Orthogonal { gain, seed: None };
            let t = init.generate(&shape, 3).expect("generate");
            assert_eq!(t.shape(), shape.as_slice());
            let cols = shape[shape.len() - 1];
            let rows: usize = shape[..shape.len() - 1].iter().product();
            let data: Vec<f32> = t.iter().copied().collect();
            let err = orthogonality_error(&data, rows, cols, gain);
            assert!(err < 1e-5, "shape {shape:?} gain {gain}: error {err}");
        }
    }

    #[test]
    fn orthogonal_rejects_rank_below_two() {
        for shape in [vec![], vec![5usize]] {
            let err = Initializer::orthogonal().generate(&shape, 0).unwrap_err();
            assert!(matches!(err, Error::Config { .. }), "{err}");
        }
    }

    #[test]
    fn orthogonal_zero_sized() {
        let t = Initializer::orthogonal().generate(&[0, 4], 0).expect("ok");
        assert_eq!(t.shape(), &[0, 4]);
        let t = Initializer::orthogonal().generate(&[4, 0], 0).expect("ok");
        assert_eq!(t.shape(), &[4, 0]);
    }

    #[test]
    fn glorot_uniform_limit_and_variance() {
        let t = Initializer::glorot_uniform()
            .generate(&[200, 300], 7)
            .expect("generate");
        let limit = (3.0f64 * 1.0 / 250.0).sqrt();
        let n = t.len() as f64;
        let mean: f64 = t.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var: f64 = t.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(t.iter().all(|&x| (x as f64).abs() <= limit * (1.0 + 1e-6)));
        let want = limit * limit / 3.0;
        assert!(
            (var - want).abs() / want < 0.05,
            "variance {var}, want {want}"
        );
        assert!(mean.abs() < 0.01 * limit, "mean {mean}");
    }

    #[test]
    fn variance_scaling_normal_variances() {
        // Truncated normal keeps the target variance thanks to the correction constant.
        for (init, want) in [
            (Initializer::glorot_normal(), 1.0 / 250.0),
            (Initializer::he_normal(), 2.0 / 200.0),
            (
                Initializer::variance_scaling(
                    1.0,
                    FanMode::FanOut,
                    Distribution::UntruncatedNormal,
                ),
                1.0 / 300.0,
            ),
            (Initializer::lecun_uniform(), 1.0 / 200.0),
            (Initializer::he_uniform(), 2.0 / 200.0),
        ] {
            let t = init.generate(&[200, 300], 1).expect("generate");
            let n = t.len() as f64;
            let var: f64 = t.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / n;
            assert!(
                (var - want).abs() / want < 0.05,
                "{init:?}: variance {var}, want {want}"
            );
        }
    }

    #[test]
    fn fans() {
        assert_eq!(compute_fans(&[]), (1.0, 1.0));
        assert_eq!(compute_fans(&[7]), (7.0, 7.0));
        assert_eq!(compute_fans(&[3, 5]), (3.0, 5.0));
        assert_eq!(compute_fans(&[3, 3, 4, 8]), (36.0, 72.0));
    }

    #[test]
    fn truncated_normal_bounded() {
        let init = Initializer::TruncatedNormal {
            mean: 1.0,
            stddev: 0.5,
            seed: Some(11),
        };
        let t = init.generate(&[100, 100], 0).expect("generate");
        assert!(t.iter().all(|&x| ((x as f64) - 1.0).abs() <= 1.0 + 1e-6));
        let stddev = (1.0f64 / 250.0).sqrt() / TRUNCATED_NORMAL_STDDEV_CORRECTION;
        let t = Initializer::glorot_normal()
            .generate(&[200, 300], 0)
            .expect("generate");
        assert!(t
            .iter()
            .all(|&x| (x as f64).abs() <= 2.0 * stddev * (1.0 + 1e-6)));
    }

    #[test]
    fn random_uniform_and_normal() {
        let t = Initializer::random_uniform()
            .generate(&[50, 40], 0)
            .expect("generate");
        assert!(t.iter().all(|&x| (-0.05..=0.05).contains(&x)));
        let t = Initializer::RandomNormal {
            mean: 3.0,
            stddev: 2.0,
            seed: Some(5),
        }
        .generate(&[100, 100], 0)
        .expect("generate");
        let n = t.len() as f64;
        let mean: f64 = t.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var: f64 = t.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!((mean - 3.0).abs() < 0.1, "mean {mean}");
        assert!((var - 4.0).abs() < 0.2, "var {var}");
    }

    #[test]
    fn determinism_seed_and_salt() {
        for init in [
            Initializer::glorot_uniform(),
            Initializer::orthogonal(),
            Initializer::random_normal().with_seed(Some(42)),
            Initializer::truncated_normal().with_seed(Some(42)),
            Initializer::random_uniform(),
        ] {
            let a = init.generate(&[8, 12], 1).expect("a");
            let b = init.generate(&[8, 12], 1).expect("b");
            let c = init.generate(&[8, 12], 2).expect("c");
            assert_eq!(a, b, "{init:?}");
            assert_ne!(a, c, "{init:?}");
        }
        let seeded = Initializer::glorot_uniform().with_seed(Some(1));
        let other = Initializer::glorot_uniform().with_seed(Some(2));
        assert_eq!(seeded.seed(), Some(1));
        assert_ne!(
            seeded.generate(&[4, 4], 0).expect("a"),
            other.generate(&[4, 4], 0).expect("b")
        );
        // Unseeded is the documented default seed.
        assert_eq!(
            Initializer::glorot_uniform()
                .generate(&[4, 4], 9)
                .expect("a"),
            Initializer::glorot_uniform()
                .with_seed(Some(DEFAULT_SEED))
                .generate(&[4, 4], 9)
                .expect("b")
        );
    }

    #[test]
    fn rng_is_pinned() {
        // Guards cross-platform / cross-version reproducibility of the generator.
        let mut rng = Rng::new(0, 0);
        let first: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        let mut again = Rng::new(0, 0);
        let second: Vec<u64> = (0..3).map(|_| again.next_u64()).collect();
        assert_eq!(first, second);
        let mut s = 0u64;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF);
        // Golden values: a change here changes every unseeded model's weights.
        let mut rng = Rng::new(0, 0);
        assert_eq!(rng.next_u64(), 0xB55A_BAD8_A877_CBE8);
        assert_eq!(rng.next_normal().to_bits(), 4_610_841_682_311_782_978);
        let t = Initializer::glorot_uniform()
            .generate(&[2, 2], 0)
            .expect("generate");
        let bits: Vec<u32> = t.iter().map(|x| x.to_bits()).collect();
        assert_eq!(
            bits,
            [1_052_773_986, 1_052_025_768, 1_052_136_987, 3_197_993_793]
        );
    }

    #[test]
    fn constants_exact() {
        let z = Initializer::zeros().generate(&[3, 4], 0).expect("zeros");
        assert!(z.iter().all(|&x| x == 0.0));
        assert_eq!(z.shape(), &[3, 4]);
        let o = Initializer::ones().generate(&[5], 0).expect("ones");
        assert!(o.iter().all(|&x| x == 1.0));
        let c = Initializer::constant(0.25)
            .generate(&[2, 3, 4], 0)
            .expect("constant");
        assert!(c.iter().all(|&x| x == 0.25));
        let s = Initializer::constant(-1.5)
            .generate(&[], 0)
            .expect("scalar");
        assert_eq!(s.shape(), &[] as &[usize]);
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), vec![-1.5]);
    }

    #[test]
    fn identity_matrix() {
        let t = Initializer::Identity { gain: 2.0 }
            .generate(&[3, 5], 0)
            .expect("identity");
        for i in 0..3 {
            for j in 0..5 {
                assert_eq!(t[[i, j]], if i == j { 2.0 } else { 0.0 });
            }
        }
        let err = Initializer::identity().generate(&[2, 2, 2], 0).unwrap_err();
        assert!(matches!(err, Error::Config { .. }));
    }

    #[test]
    fn from_keras_strings() {
        let cases = [
            ("glorot_uniform", Initializer::glorot_uniform()),
            ("GlorotUniform", Initializer::glorot_uniform()),
            ("glorot_normal", Initializer::glorot_normal()),
            ("orthogonal", Initializer::orthogonal()),
            ("zeros", Initializer::zeros()),
            ("zero", Initializer::zeros()),
            ("ones", Initializer::ones()),
            ("uniform", Initializer::random_uniform()),
            ("random_uniform", Initializer::random_uniform()),
            ("normal", Initializer::random_normal()),
            ("random_normal", Initializer::random_normal()),
            ("truncated_normal", Initializer::truncated_normal()),
            ("he_uniform", Initializer::he_uniform()),
            ("he_normal", Initializer::he_normal()),
            ("lecun_uniform", Initializer::lecun_uniform()),
            ("lecun_normal", Initializer::lecun_normal()),
            ("identity", Initializer::identity()),
            ("constant", Initializer::constant(0.0)),
            (
                "variance_scaling",
                Initializer::variance_scaling(1.0, FanMode::FanIn, Distribution::TruncatedNormal),
            ),
            ("GlorotUniformV2", Initializer::glorot_uniform()),
            ("OrthogonalInitializer", Initializer::orthogonal()),
        ];
        for (name, want) in cases {
            let got = Initializer::from_keras("kernel_initializer", &json!(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn from_keras_objects() {
        let v = json!({
            "module": "keras.initializers",
            "class_name": "GlorotUniform",
            "config": {"seed": null},
            "registered_name": null
        });
        assert_eq!(
            Initializer::from_keras("kernel_initializer", &v).expect("parse"),
            Initializer::glorot_uniform()
        );
        let v = json!({"class_name": "Orthogonal", "config": {"gain": 2, "seed": 7}});
        assert_eq!(
            Initializer::from_keras("recurrent_initializer", &v).expect("parse"),
            Initializer::Orthogonal {
                gain: 2.0,
                seed: Some(7)
            }
        );
        let v = json!({"class_name": "VarianceScaling", "config": {
            "scale": 2.0, "mode": "fan_out", "distribution": "normal", "seed": null, "dtype": "float32"}});
        assert_eq!(
            Initializer::from_keras("kernel_initializer", &v).expect("parse"),
            Initializer::variance_scaling(2.0, FanMode::FanOut, Distribution::TruncatedNormal)
        );
        let v = json!({"class_name": "RandomUniform", "config": {"minval": -1.0}});
        assert_eq!(
            Initializer::from_keras("bias_initializer", &v).expect("parse"),
            Initializer::RandomUniform {
                minval: -1.0,
                maxval: 0.05,
                seed: None
            }
        );
        let v = json!({"class_name": "Zeros", "config": {}});
        assert_eq!(
            Initializer::from_keras("bias_initializer", &v).expect("parse"),
            Initializer::zeros()
        );
        let v = json!({"class_name": "Constant", "config": {"value": 0.5}});
        assert_eq!(
            Initializer::from_keras("bias_initializer", &v).expect("parse"),
            Initializer::constant(0.5)
        );
        let v = json!({"class_name": "he_normal"});
        assert_eq!(
            Initializer::from_keras("kernel_initializer", &v).expect("parse"),
            Initializer::he_normal()
        );
    }

    #[test]
    fn from_keras_rejects() {
        let field_of = |e: Error| match e {
            Error::Config { field, message } => (field, message),
            other => panic!("not a config error: {other}"),
        };
        let (field, message) = field_of(
            Initializer::from_keras("kernel_initializer", &json!("glorot_uniformish")).unwrap_err(),
        );
        assert_eq!(field, "kernel_initializer");
        assert!(message.contains("glorot_uniformish") && message.contains("orthogonal"));

        let (field, message) = field_of(
            Initializer::from_keras(
                "recurrent_initializer",
                &json!({"class_name": "Bogus", "config": {}}),
            )
            .unwrap_err(),
        );
        assert!(field.starts_with("recurrent_initializer"), "{field}");
        assert!(message.contains("Bogus") && message.contains("GlorotUniform"));

        let (field, _) = field_of(
            Initializer::from_keras(
                "kernel_initializer",
                &json!({"class_name": "VarianceScaling", "config": {"mode": "fan_sum"}}),
            )
            .unwrap_err(),
        );
        assert_eq!(field, "kernel_initializer.config.mode");

        let (field, _) = field_of(
            Initializer::from_keras(
                "kernel_initializer",
                &json!({"class_name": "VarianceScaling", "config": {"scale": 0.0}}),
            )
            .unwrap_err(),
        );
        assert_eq!(field, "kernel_initializer.config.scale");

        // Keys a class does not take are ignored (a newer Keras may add some).
        assert_eq!(
            Initializer::from_keras(
                "kernel_initializer",
                &json!({"class_name": "GlorotUniform", "config": {"gain": 1.0}}),
            )
            .unwrap(),
            Initializer::glorot_uniform()
        );

        let (field, _) = field_of(
            Initializer::from_keras(
                "kernel_initializer",
                &json!({"class_name": "Orthogonal", "config": {"seed": "x"}}),
            )
            .unwrap_err(),
        );
        assert_eq!(field, "kernel_initializer.config.seed");

        let (field, _) =
            field_of(Initializer::from_keras("kernel_initializer", &json!(3)).unwrap_err());
        assert_eq!(field, "kernel_initializer");
        let (field, _) =
            field_of(Initializer::from_keras("kernel_initializer", &json!({})).unwrap_err());
        assert_eq!(field, "kernel_initializer.class_name");
    }

    #[test]
    fn class_names_and_round_trip() {
        let all = [
            Initializer::zeros(),
            Initializer::ones(),
            Initializer::constant(0.5),
            Initializer::random_uniform(),
            Initializer::random_normal().with_seed(Some(3)),
            Initializer::truncated_normal(),
            Initializer::variance_scaling(0.5, FanMode::FanAvg, Distribution::UntruncatedNormal),
            Initializer::glorot_uniform().with_seed(Some(9)),
            Initializer::glorot_normal(),
            Initializer::he_uniform(),
            Initializer::he_normal(),
            Initializer::lecun_uniform(),
            Initializer::lecun_normal(),
            Initializer::orthogonal(),
            Initializer::Identity { gain: 3.0 },
        ];
        let names = [
            "Zeros",
            "Ones",
            "Constant",
            "RandomUniform",
            "RandomNormal",
            "TruncatedNormal",
            "VarianceScaling",
            "GlorotUniform",
            "GlorotNormal",
            "HeUniform",
            "HeNormal",
            "LecunUniform",
            "LecunNormal",
            "Orthogonal",
            "Identity",
        ];
        for (init, name) in all.iter().zip(names) {
            assert_eq!(init.class_name(), name);
            let back = Initializer::from_keras("x", &init.to_keras()).expect("round trip");
            assert_eq!(&back, init);
        }
    }
}
