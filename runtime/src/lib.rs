//! krun-runtime: an OCI runtime (runtime-spec 1.2) for Linux.
//!
//! The library turns an OCI bundle into an isolated process; the
//! `krun-runtime` binary exposes it with runc's command line. Everything is
//! synchronous and single-threaded: `create` forks the container init,
//! which builds the container and blocks on an exec fifo until `start`.
pub mod cgroupfs;
pub mod cgroups;
pub mod console;
pub mod create;
pub mod devfilter;
pub mod devices;
pub mod error;
pub mod exec;
pub mod features;
pub mod hooks;
pub mod log;
pub mod mounts;
pub mod namespaces;
pub mod ops;
pub mod process;
pub mod rootfs;
pub mod sched;
pub mod sealed;
pub mod seccomp;
pub mod state;
pub mod sync;
pub mod sys;
pub mod tty;

pub use error::{Error, Result};
