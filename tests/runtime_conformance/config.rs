//! The base config.json every case starts from, and small editing helpers.
//! The base mirrors what engines hand a runtime (Docker's default
//! capabilities, masked and read-only /proc paths, the usual /dev mounts).

use serde_json::{json, Value};
use std::path::Path;

/// Docker's default capability set (bounding = effective = permitted).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

pub fn base(rootfs: &Path) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": [],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS
            },
            "noNewPrivileges": true
        },
        "root": {"path": rootfs.display().to_string(), "readonly": false},
        "hostname": "conformance",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS
        }
    })
}

/// Sets `value` at a JSON pointer, creating objects along the way.
pub fn put(v: &mut Value, pointer: &str, value: Value) {
    let mut cur = v;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            cur[*part] = value;
            return;
        }
        if !cur[*part].is_object() {
            cur[*part] = json!({});
        }
        cur = &mut cur[*part];
    }
}

/// Appends to the array at a pointer (created when absent).
pub fn push(v: &mut Value, pointer: &str, item: Value) {
    if v.pointer(pointer).map(Value::is_array) != Some(true) {
        put(v, pointer, json!([]));
    }
    v.pointer_mut(pointer)
        .and_then(Value::as_array_mut)
        .expect("array")
        .push(item);
}

/// Adds a namespace entry (type and optional path).
pub fn add_namespace(v: &mut Value, ns: Value) {
    push(v, "/linux/namespaces", ns);
}

/// Removes every namespace entry of this type.
pub fn drop_namespace(v: &mut Value, kind: &str) {
    if let Some(a) = v
        .pointer_mut("/linux/namespaces")
        .and_then(Value::as_array_mut)
    {
        a.retain(|n| n["type"] != kind);
    }
}

/// Removes the mount at this destination.
pub fn drop_mount(v: &mut Value, dest: &str) {
    if let Some(a) = v.pointer_mut("/mounts").and_then(Value::as_array_mut) {
        a.retain(|m| m["destination"] != dest);
    }
}

pub fn cap_number(name: &str) -> u32 {
    const ORDER: &[&str] = &[
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    let short = name.trim_start_matches("CAP_");
    ORDER
        .iter()
        .position(|c| *c == short)
        .unwrap_or_else(|| panic!("unknown capability {name}")) as u32
}

/// The capability mask as /proc/<pid>/status prints it (16 hex digits).
pub fn cap_mask(names: &[&str]) -> String {
    let m = names.iter().fold(0u64, |m, n| m | (1u64 << cap_number(n)));
    format!("{m:016x}")
}
