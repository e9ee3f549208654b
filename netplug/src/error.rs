//! One error type for the library: every variant names the step that failed
//! and the object (path, link, table) it was working on.
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{step}: {}: {source}", path.display())]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{step} ({object}): {source}")]
    Netlink {
        step: &'static str,
        object: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("nft {step}: {detail}")]
    Nft { step: &'static str, detail: String },
    #[error("iptables {step}: {detail}")]
    Firewall { step: &'static str, detail: String },
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
    #[error("no free address left in {subnet} (leases in {})", dir.display())]
    Exhausted { subnet: String, dir: PathBuf },
    #[error("{what} not found: {name}")]
    NotFound { what: &'static str, name: String },
}

impl Error {
    pub(crate) fn io(
        step: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { step, path, source }
    }

    pub(crate) fn netlink(
        step: &'static str,
        object: impl std::fmt::Display,
    ) -> impl FnOnce(rtnetlink::Error) -> Error {
        let object = object.to_string();
        move |source| Error::Netlink {
            step,
            object,
            source,
        }
    }

    pub(crate) fn invalid(what: &'static str, detail: impl std::fmt::Display) -> Error {
        Error::Invalid {
            what,
            detail: detail.to_string(),
        }
    }
}
