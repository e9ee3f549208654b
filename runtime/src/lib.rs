//! krun-runtime: an OCI runtime (runtime-spec 1.2) for Linux.
//!
//! The library turns an OCI bundle into an isolated process; the
//! `krun-runtime` binary exposes it with runc's command line.
