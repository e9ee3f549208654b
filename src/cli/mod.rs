//! Subcommands of the `krun` CLI: argument parsing and printing only.
pub mod images;
pub mod kubelet;
pub mod network;
pub mod pods;
