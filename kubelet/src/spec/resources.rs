//! Requests and limits to cgroup values, with the kubelet's formulas
//! (pkg/kubelet/cm/helpers_linux.go).

use std::path::Path;

use k8s_openapi::api::core::v1::Container;
use oci_spec::runtime::{LinuxCpu, LinuxDeviceCgroup, LinuxMemory, LinuxResources};

use crate::manifest::quantity::Quantity;

pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;
pub const SHARES_PER_CPU: u64 = 1024;
/// The CFS period the kubelet uses, in microseconds (100 ms).
pub const QUOTA_PERIOD: u64 = 100_000;
/// The smallest quota the kubelet sets, in microseconds.
pub const MIN_QUOTA: i64 = 1000;

/// cpu.shares for a request in millicores: milli*1024/1000 within 2..262144.
pub fn milli_cpu_to_shares(milli: i64) -> u64 {
    if milli <= 0 {
        return MIN_SHARES;
    }
    let shares = (milli as u64).saturating_mul(SHARES_PER_CPU) / 1000;
    shares.clamp(MIN_SHARES, MAX_SHARES)
}

/// CFS quota for a limit in millicores over `period`; None without a limit.
pub fn milli_cpu_to_quota(milli: i64, period: u64) -> Option<i64> {
    if milli <= 0 {
        return None;
    }
    let quota = (milli as i128 * period as i128 / 1000).min(i64::MAX as i128) as i64;
    Some(quota.max(MIN_QUOTA))
}

/// A container's limit (or request) of `name`, when set and valid.
pub fn quantity(c: &Container, limits: bool, name: &str) -> Option<Quantity> {
    let r = c.resources.as_ref()?;
    let map = if limits { &r.limits } else { &r.requests };
    map.as_ref()?
        .get(name)
        .and_then(|q| Quantity::parse(&q.0).ok())
}

/// Whether the memory cgroup can limit swap (v1 memsw or v2 swap.max),
/// in which case swap is limited to the memory limit, as containerd does.
pub fn swap_controller_available(cgroup_root: &Path) -> bool {
    cgroup_root
        .join("memory/memory.memsw.limit_in_bytes")
        .exists()
        || cgroup_root.join("memory.swap.max").exists()
        || cgroup_root.join("unified/memory.swap.max").exists()
}

/// linux.resources for a container.
pub fn linux_resources(c: &Container, limit_swap: bool) -> LinuxResources {
    let request_milli = quantity(c, false, "cpu").map_or(0, |q| q.milli_value());
    let limit_milli = quantity(c, true, "cpu").map_or(0, |q| q.milli_value());
    let mut cpu = LinuxCpu::default();
    cpu.set_shares(Some(milli_cpu_to_shares(request_milli)));
    if let Some(quota) = milli_cpu_to_quota(limit_milli, QUOTA_PERIOD) {
        cpu.set_quota(Some(quota));
        cpu.set_period(Some(QUOTA_PERIOD));
    }
    let mut resources = LinuxResources::default();
    resources.set_cpu(Some(cpu));
    let memory_limit = quantity(c, true, "memory").map_or(0, |q| q.value());
    if memory_limit > 0 {
        let mut memory = LinuxMemory::default();
        memory.set_limit(Some(memory_limit));
        if limit_swap {
            memory.set_swap(Some(memory_limit));
        }
        resources.set_memory(Some(memory));
    }
    // Deny every device; the runtime allows its default set on top.
    let mut deny = LinuxDeviceCgroup::default();
    deny.set_allow(false);
    deny.set_access(Some("rwm".to_string()));
    resources.set_devices(Some(vec![deny]));
    resources
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_formulas() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(250), 256);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(500_000), 262_144);
        assert_eq!(milli_cpu_to_quota(0, QUOTA_PERIOD), None);
        assert_eq!(milli_cpu_to_quota(1, QUOTA_PERIOD), Some(1000));
        assert_eq!(milli_cpu_to_quota(250, QUOTA_PERIOD), Some(25_000));
        assert_eq!(milli_cpu_to_quota(1500, QUOTA_PERIOD), Some(150_000));
    }
}
