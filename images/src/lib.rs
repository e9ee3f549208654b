//! krun-images: registry client, verified content store, layer unpacking
//! and overlayfs root filesystems.
pub mod digest;
pub mod error;
mod sys;
pub mod unpack;

pub use digest::Digest;
pub use error::{Error, Result};
pub mod config;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod rootfs;
pub mod store;

pub use pull::{ensure, pull, LayerState, NoProgress, Platform, Progress, PullOptions, PullPolicy};
pub use reference::ImageRef;
pub use store::{ImageRecord, LayerRecord, Store};
pub use unpack::Limits;
