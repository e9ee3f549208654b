//! One error type for the whole runtime. Every variant renders as a single
//! line that names the failing step and the path it acted on, e.g.
//! `mount proc on /proc: EPERM: Operation not permitted`.
use std::fmt;

/// The runtime's error: a step description plus the underlying cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed.
    #[error("{step}: {errno}")]
    Sys { step: String, errno: nix::Error },
    /// A std I/O operation failed.
    #[error("{step}: {source}")]
    Io {
        step: String,
        source: std::io::Error,
    },
    /// The configuration or the command line asked for something invalid.
    #[error("{0}")]
    Invalid(String),
    /// A seccomp operation failed.
    #[error("seccomp: {0}")]
    Seccomp(String),
    /// A hook failed or timed out.
    #[error("{0}")]
    Hook(String),
}

/// The runtime's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An invalid-input error from anything printable.
    pub fn invalid(msg: impl fmt::Display) -> Self {
        Error::Invalid(msg.to_string())
    }

    /// The errno behind this error, when there is one.
    pub fn errno(&self) -> Option<nix::Error> {
        match self {
            Error::Sys { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error().map(nix::Error::from_raw),
            _ => None,
        }
    }
}

/// Attaches a step description to a failing result.
pub trait Context<T> {
    /// Adds the step (computed lazily) to the error.
    fn ctx<S: fmt::Display>(self, step: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx<S: fmt::Display>(self, step: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|errno| Error::Sys {
            step: step().to_string(),
            errno,
        })
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx<S: fmt::Display>(self, step: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|source| match source.raw_os_error() {
            Some(raw) => Error::Sys {
                step: step().to_string(),
                errno: nix::Error::from_raw(raw),
            },
            None => Error::Io {
                step: step().to_string(),
                source,
            },
        })
    }
}
