//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in `recurrent`, from a mis-shaped weight to a missing GPU.
///
/// Every variant names the argument (or file and field) at fault and, where it applies,
/// what was expected against what was found.
#[derive(Debug, Error)]
pub enum Error {
    /// An array has the wrong rank or size.
    #[error("{what}: expected shape {expected}, found {found}")]
    Shape {
        /// The argument or weight, e.g. `input`, `mask`, `kernel`, `initial_state[1]`.
        what: String,
        /// The expected shape, written like `(batch, time, 8)` or `(3, 16)`.
        expected: String,
        /// The shape that was given.
        found: String,
    },
    /// A configuration value is missing, of the wrong type or out of range.
    #[error("config field `{field}`: {message}")]
    Config {
        /// The Keras config key, e.g. `units`, `cell.config.activation`.
        field: String,
        /// What was expected against what was found.
        message: String,
    },
    /// A weight the layer needs is absent.
    #[error("weight `{name}` is missing (expected shape {expected})")]
    MissingWeight {
        /// The weight name as in the interchange contract, e.g. `cells.1.bias`.
        name: String,
        /// The expected shape.
        expected: String,
    },
    /// A weight is present that the layer does not use (for example `bias` with `use_bias: false`).
    #[error("weight `{name}` is not used by this layer ({why})")]
    UnexpectedWeight {
        /// The weight name.
        name: String,
        /// Why it is not expected.
        why: String,
    },
    /// An unknown Keras class name.
    #[error("unknown class_name `{found}` (expected one of {expected})")]
    UnknownClass {
        /// Where the class name was found (`class_name`, `config.cell[1].class_name`, ...).
        expected: String,
        /// The class name given.
        found: String,
    },
    /// An unknown activation name.
    #[error("config field `{field}`: unknown activation `{found}` (expected a Keras 2 activation name: {expected})")]
    UnknownActivation {
        /// The config key that named it.
        field: String,
        /// The name given.
        found: String,
        /// The names this crate knows.
        expected: String,
    },
    /// A call that the layer's configuration does not allow (e.g. a stateful layer called with a
    /// different batch size, a mask given to a CuDNN layer).
    #[error("{what}: {message}")]
    Invalid {
        /// The argument at fault.
        what: String,
        /// What was expected against what was found.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong, with the field where it applies.
        message: String,
    },
    /// The GPU path was asked for but this build has no `cuda` feature.
    #[error("device `cuda`: this build of recurrent was not compiled with the `cuda` feature (rebuild with `--features cuda`)")]
    NotCompiledWithCuda,
    /// The GPU path failed: no driver, no device, out of memory, a failed launch.
    #[error("cuda: {0}")]
    Cuda(String),
}

/// `Result` with [`enum@Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A shape error for `what`, formatting both shapes.
    pub fn shape(what: impl Into<String>, expected: impl Into<String>, found: &[usize]) -> Self {
        Error::Shape {
            what: what.into(),
            expected: expected.into(),
            found: fmt_shape(found),
        }
    }

    /// A config error for `field`.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// An invalid-call error for `what` (also for user-defined cells).
    pub fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            message: message.into(),
        }
    }
}

/// Formats a shape the way numpy prints it: `(2, 3)`, `(5,)`, `()`.
pub fn fmt_shape(shape: &[usize]) -> String {
    match shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
