//! krun-kubelet: pod manifests, sandboxes, container lifecycle, probes,
//! logs and the node agent.

pub mod manifest;
