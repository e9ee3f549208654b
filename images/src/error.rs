//! One error type for the crate; every variant names the step and the thing
//! (path, digest, registry, reference) it was about.
use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid image reference {reference:?}: {reason}")]
    Reference { reference: String, reason: String },

    #[error("invalid digest {0:?}: want sha256: followed by 64 lowercase hex digits")]
    Digest(String),

    #[error("{step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("layer {layer}: entry {entry:?}: {reason}")]
    Entry {
        layer: String,
        entry: String,
        reason: String,
    },

    #[error("layer {layer}: {reason}")]
    Layer { layer: String, reason: String },

    #[error(
        "{what} {digest}: content does not match its digest (got {actual}); nothing was stored"
    )]
    DigestMismatch {
        what: &'static str,
        digest: String,
        actual: String,
    },

    #[error("registry {registry}: {reference}: {reason}")]
    Registry {
        registry: String,
        reference: String,
        reason: String,
    },

    #[error("{reference}: {reason}")]
    Image { reference: String, reason: String },

    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },

    #[error("image {0} is not in the store (krun pull it first)")]
    NotFound(String),

    #[error("mounting rootfs {target}: {reason}")]
    Mount { target: PathBuf, reason: String },
}

impl Error {
    pub(crate) fn io(step: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            step,
            path: path.into(),
            source,
        }
    }
}

/// Adds the step and path to an io::Result.
pub(crate) trait IoContext<T> {
    fn ctx(self, step: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, step: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(step, path, e))
    }
}
