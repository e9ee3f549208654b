//! seccompProfile: RuntimeDefault is Docker's (and containerd's) default
//! profile, Localhost a profile file in the Docker format under the node's
//! seccomp directory, Unconfined (and, as with a stock kubelet without
//! SeccompDefault, an unset profile) none. Privileged containers are never
//! confined, as containerd does. A profile's rules that depend on the
//! container's capabilities, the architecture or the kernel are resolved
//! here, into the OCI section the runtime compiles.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use oci_spec::runtime::{Capability, LinuxSeccomp};
use serde::Deserialize;
use serde_json::{json, Value};

/// Which profile a container runs with.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Seccomp {
    #[default]
    Unconfined,
    RuntimeDefault,
    /// A Localhost profile, by its path below the seccomp directory.
    Localhost(String),
    /// A Localhost profile, read.
    Profile(Box<Profile>),
}

/// A profile in the Docker (moby) format.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub arch_map: Vec<ArchMap>,
    #[serde(default)]
    pub syscalls: Vec<Rule>,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub listener_path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
    pub action: String,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Vec<Value>,
    #[serde(default)]
    pub includes: Filter,
    #[serde(default)]
    pub excludes: Filter,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default)]
    pub caps: Vec<String>,
    #[serde(default)]
    pub arches: Vec<String>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// Docker's default profile, as (syscalls, condition) groups.
enum When {
    Kernel(&'static str),
    Arch(&'static [&'static str]),
    Cap(&'static str),
}

const ALWAYS: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// Allowed under a condition (names, condition).
const CONDITIONAL: &[(&[&str], When)] = &[
    (
        &["process_vm_readv", "process_vm_writev", "ptrace"],
        When::Kernel("4.8"),
    ),
    (
        &["sync_file_range2", "swapcontext"],
        When::Arch(&["ppc64le"]),
    ),
    (
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
        When::Arch(&["arm", "arm64"]),
    ),
    (&["arch_prctl"], When::Arch(&["amd64", "x32"])),
    (&["modify_ldt"], When::Arch(&["amd64", "x32", "x86"])),
    (
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
        When::Arch(&["s390", "s390x"]),
    ),
    (&["riscv_flush_icache"], When::Arch(&["riscv64"])),
    (&["open_by_handle_at"], When::Cap("CAP_DAC_READ_SEARCH")),
    (
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        When::Cap("CAP_SYS_ADMIN"),
    ),
    (&["reboot"], When::Cap("CAP_SYS_BOOT")),
    (&["chroot"], When::Cap("CAP_SYS_CHROOT")),
    (
        &["delete_module", "init_module", "finit_module"],
        When::Cap("CAP_SYS_MODULE"),
    ),
    (&["acct"], When::Cap("CAP_SYS_PACCT")),
    (
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
        When::Cap("CAP_SYS_PTRACE"),
    ),
    (&["iopl", "ioperm"], When::Cap("CAP_SYS_RAWIO")),
    (
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        When::Cap("CAP_SYS_TIME"),
    ),
    (&["vhangup"], When::Cap("CAP_SYS_TTY_CONFIG")),
    (
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
        When::Cap("CAP_SYS_NICE"),
    ),
    (&["syslog"], When::Cap("CAP_SYSLOG")),
    (&["bpf"], When::Cap("CAP_BPF")),
    (&["perf_event_open"], When::Cap("CAP_PERFMON")),
];

/// The clone flags that make namespaces (CLONE_NEWNS | NEWCGROUP | NEWUTS
/// | NEWIPC | NEWUSER | NEWPID | NEWNET): clone without CAP_SYS_ADMIN may
/// not set any of them.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

fn rule(names: &[&str], action: &str) -> Rule {
    Rule {
        names: names.iter().map(|s| s.to_string()).collect(),
        action: action.into(),
        ..Default::default()
    }
}

impl Profile {
    /// Docker's default profile: EPERM for anything not allowed.
    pub fn docker_default() -> Profile {
        let mut syscalls = vec![rule(ALWAYS, "SCMP_ACT_ALLOW")];
        // socket: anything but AF_VSOCK (40)
        let mut socket = rule(&["socket"], "SCMP_ACT_ALLOW");
        socket.args = vec![json!({"index": 0, "value": 40, "op": "SCMP_CMP_NE"})];
        syscalls.push(socket);
        // personality: only the harmless personas
        for persona in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
            let mut p = rule(&["personality"], "SCMP_ACT_ALLOW");
            p.args = vec![json!({"index": 0, "value": persona, "op": "SCMP_CMP_EQ"})];
            syscalls.push(p);
        }
        for (names, when) in CONDITIONAL {
            let mut r = rule(names, "SCMP_ACT_ALLOW");
            match when {
                When::Kernel(k) => r.includes.min_kernel = Some(k.to_string()),
                When::Arch(a) => r.includes.arches = a.iter().map(|s| s.to_string()).collect(),
                When::Cap(c) => r.includes.caps = vec![c.to_string()],
            }
            syscalls.push(r);
        }
        // clone without CAP_SYS_ADMIN: no namespace flags (s390 swaps the
        // first two arguments)
        let mut clone = rule(&["clone"], "SCMP_ACT_ALLOW");
        clone.args =
            vec![json!({"index": 0, "value": CLONE_NAMESPACE_FLAGS, "op": "SCMP_CMP_MASKED_EQ"})];
        clone.excludes = Filter {
            caps: vec!["CAP_SYS_ADMIN".into()],
            arches: vec!["s390".into(), "s390x".into()],
            min_kernel: None,
        };
        syscalls.push(clone);
        let mut clone_s390 = rule(&["clone"], "SCMP_ACT_ALLOW");
        clone_s390.args =
            vec![json!({"index": 1, "value": CLONE_NAMESPACE_FLAGS, "op": "SCMP_CMP_MASKED_EQ"})];
        clone_s390.includes.arches = vec!["s390".into(), "s390x".into()];
        clone_s390.excludes.caps = vec!["CAP_SYS_ADMIN".into()];
        syscalls.push(clone_s390);
        // clone3 cannot be filtered by its flags: ENOSYS makes libc fall back to clone
        let mut clone3 = rule(&["clone3"], "SCMP_ACT_ERRNO");
        clone3.errno_ret = Some(libc::ENOSYS as u32);
        clone3.excludes.caps = vec!["CAP_SYS_ADMIN".into()];
        syscalls.push(clone3);
        let arch_map = [
            ("SCMP_ARCH_X86_64", &["SCMP_ARCH_X86", "SCMP_ARCH_X32"][..]),
            ("SCMP_ARCH_AARCH64", &["SCMP_ARCH_ARM"][..]),
            ("SCMP_ARCH_S390X", &["SCMP_ARCH_S390"][..]),
            ("SCMP_ARCH_RISCV64", &[][..]),
        ]
        .iter()
        .map(|(a, subs)| ArchMap {
            architecture: a.to_string(),
            sub_architectures: Some(subs.iter().map(|s| s.to_string()).collect()),
        })
        .collect();
        Profile {
            default_action: "SCMP_ACT_ERRNO".into(),
            default_errno_ret: Some(libc::EPERM as u32),
            arch_map,
            syscalls,
            ..Default::default()
        }
    }
}

/// The machine in Go's names (what profiles' `arches` use) and libseccomp's.
fn host_arch() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", "SCMP_ARCH_X86_64"),
        "aarch64" => ("arm64", "SCMP_ARCH_AARCH64"),
        "s390x" => ("s390x", "SCMP_ARCH_S390X"),
        "riscv64" => ("riscv64", "SCMP_ARCH_RISCV64"),
        "x86" => ("386", "SCMP_ARCH_X86"),
        "arm" => ("arm", "SCMP_ARCH_ARM"),
        other => (other, ""),
    }
}

fn kernel_at_least(min: &str) -> bool {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let parse = |s: &str| -> Vec<u32> {
        s.split(['.', '-'])
            .take(2)
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    parse(&release) >= parse(min)
}

fn cap_name(c: &Capability) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The OCI seccomp section of `p` for a container with `caps`, the way
/// moby resolves a profile: a rule applies when the container has all of
/// its `includes.caps`, none of its `excludes.caps`, and the arch and
/// kernel match.
pub fn to_oci(p: &Profile, caps: &HashSet<Capability>) -> Result<LinuxSeccomp, String> {
    let have: HashSet<String> = caps.iter().map(cap_name).collect();
    let (goarch, native) = host_arch();
    let mut arches: Vec<String> = p.architectures.clone();
    if arches.is_empty() {
        if let Some(m) = p.arch_map.iter().find(|m| m.architecture == native) {
            arches.push(m.architecture.clone());
            arches.extend(m.sub_architectures.iter().flatten().cloned());
        }
    }
    let mut syscalls = Vec::new();
    for r in &p.syscalls {
        let inc = &r.includes;
        let exc = &r.excludes;
        if !inc.caps.iter().all(|c| have.contains(c))
            || exc.caps.iter().any(|c| have.contains(c))
            || (!inc.arches.is_empty() && !inc.arches.iter().any(|a| a == goarch))
            || exc.arches.iter().any(|a| a == goarch)
            || inc
                .min_kernel
                .as_deref()
                .is_some_and(|k| !kernel_at_least(k))
        {
            continue;
        }
        let mut names = r.names.clone();
        names.extend(r.name.clone());
        let mut s = json!({"names": names, "action": r.action});
        if let Some(e) = r.errno_ret {
            s["errnoRet"] = json!(e);
        }
        if !r.args.is_empty() {
            s["args"] = json!(r.args);
        }
        syscalls.push(s);
    }
    let mut out = json!({
        "defaultAction": p.default_action,
        "architectures": arches,
        "syscalls": syscalls,
    });
    if let Some(e) = p.default_errno_ret {
        out["defaultErrnoRet"] = json!(e);
    }
    if !p.flags.is_empty() {
        out["flags"] = json!(p.flags);
    }
    if let Some(l) = &p.listener_path {
        out["listenerPath"] = json!(l);
    }
    serde_json::from_value(out).map_err(|e| format!("seccomp profile: {e}"))
}

/// Profiles larger than this are refused.
const MAX_PROFILE: u64 = 1 << 20;

/// Reads the Localhost profile `rel` below `dir` (the kubelet's seccomp
/// directory), never leaving it.
pub fn load_localhost(dir: &Path, rel: &str) -> Result<Profile, String> {
    let shown = dir.join(rel);
    let fail = |e: String| format!("cannot load seccomp profile \"{}\": {e}", shown.display());
    let root: OwnedFd = File::open(dir).map_err(|e| fail(e.to_string()))?.into();
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(&root, rel, how).map_err(|e| fail(std::io::Error::from(e).to_string()))?;
    let mut f = File::from(fd);
    if !f.metadata().map_err(|e| fail(e.to_string()))?.is_file() {
        return Err(fail("not a regular file".into()));
    }
    let mut text = String::new();
    (&mut f)
        .take(MAX_PROFILE)
        .read_to_string(&mut text)
        .map_err(|e| fail(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| fail(format!("decoding seccomp profile failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &LinuxSeccomp) -> Vec<String> {
        s.syscalls()
            .iter()
            .flatten()
            .flat_map(|r| r.names().clone())
            .collect()
    }

    #[test]
    fn default_profile_blocks_unshare_and_keyctl_without_sys_admin() {
        let p = Profile::docker_default();
        let default_caps: HashSet<Capability> =
            crate::spec::DEFAULT_CAPABILITIES.iter().copied().collect();
        let s = to_oci(&p, &default_caps).unwrap();
        let n = names(&s);
        for blocked in [
            "unshare",
            "keyctl",
            "add_key",
            "request_key",
            "mount",
            "setns",
        ] {
            assert!(!n.iter().any(|x| x == blocked), "{blocked} allowed");
        }
        for allowed in ["read", "clone", "chroot", "socket", "personality"] {
            assert!(n.iter().any(|x| x == allowed), "{allowed} not allowed");
        }
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(json["defaultErrnoRet"], 1);
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(
                json["architectures"],
                json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
            );
            assert!(n.iter().any(|x| x == "arch_prctl"));
        }
        let clone3 = json["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["names"] == json!(["clone3"]))
            .unwrap();
        assert_eq!(clone3["errnoRet"], 38);

        // CAP_SYS_ADMIN opens the namespace calls and plain clone
        let mut admin = default_caps.clone();
        admin.insert(Capability::SysAdmin);
        let n = names(&to_oci(&p, &admin).unwrap());
        assert!(n.iter().any(|x| x == "unshare"));
        assert!(!n.iter().any(|x| x == "keyctl"), "keyctl stays blocked");
    }

    #[test]
    fn localhost_profiles_stay_in_their_directory() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("seccomp");
        std::fs::create_dir_all(dir.join("profiles")).unwrap();
        std::fs::write(
            dir.join("profiles/audit.json"),
            r#"{"defaultAction":"SCMP_ACT_LOG","syscalls":[{"names":["keyctl"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
        )
        .unwrap();
        std::fs::write(
            d.path().join("outside.json"),
            r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#,
        )
        .unwrap();
        std::os::unix::fs::symlink("../outside.json", dir.join("escape.json")).unwrap();
        let p = load_localhost(&dir, "profiles/audit.json").unwrap();
        let s = to_oci(&p, &HashSet::new()).unwrap();
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["defaultAction"], "SCMP_ACT_LOG");
        assert_eq!(json["syscalls"][0]["errnoRet"], 13);
        let e = load_localhost(&dir, "escape.json").unwrap_err();
        assert!(e.starts_with("cannot load seccomp profile"), "{e}");
        assert!(load_localhost(&dir, "../outside.json").is_err());
        assert!(load_localhost(&dir, "missing.json")
            .unwrap_err()
            .contains("No such file"));
    }
}
