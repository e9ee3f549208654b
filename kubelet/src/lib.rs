//! krun-kubelet: pod manifests, sandboxes, container lifecycle, probes,
//! logs and the node agent.

pub mod agent;
pub mod backoff;
pub mod cleanup;
pub mod describe;
pub mod events;
pub mod exec;
pub mod exits;
pub mod identity;
pub mod lifecycle;
pub mod log_pump;
pub mod logs;
pub mod manifest;
pub mod node;
pub mod oci_runtime;
pub mod output;
pub mod pause;
pub mod pod_cgroup;
pub mod podfiles;
pub mod pods;
pub mod podstate;
pub mod probe;
pub mod qos;
pub mod sandbox;
pub mod spec;
pub mod status;
pub mod supervisor;
pub mod tabwriter;
#[cfg(test)]
mod test_support;
pub mod volumes;

/// The OCI types the spec and runtime APIs take, re-exported so callers
/// use the same version.
pub use oci_spec;
