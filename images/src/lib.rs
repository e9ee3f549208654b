//! krun-images: registry client, verified content store, layer unpacking
//! and overlayfs root filesystems.
