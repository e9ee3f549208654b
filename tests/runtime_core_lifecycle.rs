//! krun-runtime's own end-to-end checks of the lifecycle commands on a
//! busybox bundle: create/start/state/kill/delete, run's exit code, and that
//! a failed create leaves nothing behind.
mod common;
mod runtime_core_support;

use std::path::Path;
use std::process::Stdio;

use runtime_core_support::{cgroup_exists, state, Bundle};
use serde_json::json;

#[test]
fn create_start_kill_delete() {
    if !common::require_root("create_start_kill_delete") {
        return;
    }
    let b = Bundle::new("krt-life", &["sleep", "100"]);
    let id = common::unique("life");
    let pidfile = b.dir.join("pid");
    // The init inherits create's stdio (as with runc): do not capture it in a pipe.
    let st = b
        .rt()
        .args(["create", "--pid-file"])
        .arg(&pidfile)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let st = state(&b, &id);
    assert_eq!(st["status"], "created");
    let pid: i64 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(st["pid"], pid);
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(cgroup_exists(&id), "cgroup of {id} created");
    common::run_ok(b.rt().args(["start", &id]));
    assert_eq!(state(&b, &id)["status"], "running");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep");
    // Not stopped: delete without --force refuses.
    let out = common::run(b.rt().args(["delete", &id]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not stopped"));
    common::run_ok(b.rt().args(["kill", &id, "KILL"]));
    for _ in 0..100 {
        if state(&b, &id)["status"] == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(state(&b, &id)["status"], "stopped");
    common::run_ok(b.rt().args(["delete", &id]));
    assert!(!b.root().join(&id).exists());
    assert!(!cgroup_exists(&id), "cgroup of {id} removed");
    let out = common::run(b.rt().args(["state", &id]));
    assert!(!out.status.success());
}

#[test]
fn run_returns_exit_code_and_output() {
    if !common::require_root("run_returns_exit_code_and_output") {
        return;
    }
    let b = Bundle::new("krt-run", &["sh", "-c", "echo out-$(hostname); exit 7"]);
    b.edit(|c| c["hostname"] = json!("krt-host"));
    let id = common::unique("run");
    let out = common::run(b.rt().args(["run", &id]));
    assert_eq!(
        out.status.code(),
        Some(7),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "out-krt-host");
    assert!(!b.root().join(&id).exists(), "run removes the container");
}

#[test]
fn failed_create_leaves_nothing() {
    if !common::require_root("failed_create_leaves_nothing") {
        return;
    }
    let b = Bundle::new("krt-fail", &["true"]);
    let missing = b.dir.join("no-such-dir");
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind", "source": missing, "options": ["rbind"]
        }))
    });
    let id = common::unique("fail");
    let out = common::run(b.rt().args(["create", &id]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&missing.display().to_string()) && err.contains("ENOENT"),
        "error names the step and path: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one error line: {err}");
    assert!(!b.root().join(&id).exists(), "no state left");
    assert!(!cgroup_exists(&id), "no cgroup left");
}

#[test]
fn missing_executable_fails_create() {
    if !common::require_root("missing_executable_fails_create") {
        return;
    }
    let b = Bundle::new("krt-noexe", &["/bin/nope"]);
    let id = common::unique("noexe");
    let out = common::run(b.rt().args(["create", &id]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/bin/nope"));
    assert!(!b.root().join(&id).exists());
}

#[test]
fn exec_pause_resume_update() {
    if !common::require_root("exec_pause_resume_update") {
        return;
    }
    let b = Bundle::new("krt-exec", &["sleep", "100"]);
    let id = common::unique("exec");
    let st = b
        .rt()
        .args(["run", "-d", &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(state(&b, &id)["status"], "running");
    // exec with args, user and env; its exit code comes back.
    let out = common::run(b.rt().args([
        "exec",
        "--user",
        "1000:1000",
        "--env",
        "KRT=yes",
        &id,
        "sh",
        "-c",
        "echo $(id -u) $KRT; exit 4",
    ]));
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1000 yes");
    // exec --process with a process.json.
    let pj = b.dir.join("process.json");
    std::fs::write(
        &pj,
        serde_json::to_vec(
            &json!({"args": ["cat", "/etc/passwd"], "cwd": "/", "user": {"uid": 0, "gid": 0}}),
        )
        .unwrap(),
    )
    .unwrap();
    let out = common::run_ok(b.rt().args(["exec", "--process"]).arg(&pj).arg(&id));
    assert!(out.starts_with("root:x:0:0"));
    common::run_ok(b.rt().args(["pause", &id]));
    assert_eq!(state(&b, &id)["status"], "paused");
    common::run_ok(b.rt().args(["resume", &id]));
    assert_eq!(state(&b, &id)["status"], "running");
    common::run_ok(
        b.rt()
            .args(["update", "--memory", "64m", "--pids-limit", "42", &id]),
    );
    let pids = std::fs::read_to_string(Path::new("/sys/fs/cgroup/pids").join(&id).join("pids.max"))
        .or_else(|_| {
            std::fs::read_to_string(Path::new("/sys/fs/cgroup").join(&id).join("pids.max"))
        })
        .unwrap();
    assert_eq!(pids.trim(), "42");
    let ps: Vec<i64> = serde_json::from_str(&common::run_ok(
        b.rt().args(["ps", "--format", "json", &id]),
    ))
    .unwrap();
    assert_eq!(ps.len(), 1);
    common::run_ok(b.rt().args(["delete", "--force", &id]));
    assert!(!b.root().join(&id).exists());
    assert!(!cgroup_exists(&id));
}

/// process.scheduler, ioPriority, execCPUAffinity and linux.personality reach
/// the container's process, and SIGPIPE is not left ignored (the runtime
/// ignores it itself, and an ignored signal survives execve).
#[test]
fn process_scheduling_personality_and_signals() {
    if !common::require_root("process_scheduling_personality_and_signals") {
        return;
    }
    let b = Bundle::new(
        "krt-sched",
        &[
            "sh",
            "-c",
            "cat /proc/$$/status; cat /proc/$$/sched; echo STAT $(cat /proc/$$/stat); \
             echo UNAME $(uname -m); ionice -p $$; taskset -p $$",
        ],
    );
    for a in ["uname", "ionice", "taskset"] {
        std::os::unix::fs::symlink(
            "busybox",
            runtime_core_support::rootfs(&b).join("bin").join(a),
        )
        .unwrap();
    }
    b.edit(|c| {
        c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 3});
        c["process"]["execCPUAffinity"] = json!({"final": "0"});
        c["linux"]["personality"] = json!({"domain": "LINUX32"});
    });
    let id = common::unique("sched");
    let out = common::run(b.rt().args(["run", &id]).stdin(Stdio::null()));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "run: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} line in: {text}"))
            .to_string()
    };
    let sigign =
        u64::from_str_radix(line("SigIgn:").split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(
        sigign & (1 << 12),
        0,
        "SIGPIPE ignored in the container: {sigign:x}"
    );
    assert!(
        line("policy").ends_with(" 3"),
        "SCHED_BATCH: {}",
        line("policy")
    );
    // /proc/PID/stat field 19 is the nice value (after "STAT ").
    let stat = line("STAT ");
    let after_comm = stat.rsplit_once(')').unwrap().1;
    assert_eq!(
        after_comm.split_whitespace().nth(16),
        Some("7"),
        "nice: {stat}"
    );
    assert_eq!(line("UNAME "), "UNAME i686", "LINUX32 personality");
    assert_eq!(line("best-effort"), "best-effort: prio 3");
    assert!(
        line("pid ").ends_with("mask: 1"),
        "affinity: {}",
        line("pid ")
    );
}

/// Fields the runtime cannot honour fail create with one line naming them,
/// and leave nothing behind.
#[test]
fn unsupported_fields_fail_create_clearly() {
    if !common::require_root("unsupported_fields_fail_create_clearly") {
        return;
    }
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "linux.netDevices",
            Box::new(|c| c["linux"]["netDevices"] = json!({"eth9": {"name": "eth0"}})),
        ),
        (
            "SELinux label",
            Box::new(|c| c["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0")),
        ),
        (
            "linux.intelRdt",
            Box::new(|c| c["linux"]["intelRdt"] = json!({"closID": "x"})),
        ),
        (
            "uidMappings/gidMappings",
            Box::new(|c| {
                c["mounts"].as_array_mut().unwrap().push(json!({
                    "destination": "/mnt", "type": "bind", "source": "/tmp", "options": ["rbind"],
                    "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                    "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]
                }))
            }),
        ),
    ];
    for (what, edit) in cases {
        let b = Bundle::new("krt-unsup", &["true"]);
        b.edit(|c| edit(c));
        let id = common::unique("unsup");
        let out = common::run(b.rt().args(["create", &id]).stdin(Stdio::null()));
        assert!(!out.status.success(), "{what} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(what) && err.contains("not supported"),
            "{what}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one error line: {err}");
        assert!(!b.root().join(&id).exists(), "no state left");
        assert!(!cgroup_exists(&id), "no cgroup left");
    }
}

/// `run` with process.terminal and no --console-socket relays the pty to
/// its own stdio, as runc does, and returns the exit code.
#[test]
fn run_terminal_without_console_socket() {
    if !common::require_root("run_terminal_without_console_socket") {
        return;
    }
    let b = Bundle::new("krt-tty", &["sh", "-c", "tty; echo from-pty; exit 5"]);
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let id = common::unique("tty");
    let out = common::run(b.rt().args(["run", &id]).stdin(Stdio::null()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(5),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("/dev/pts/") && text.contains("from-pty"),
        "{text:?}"
    );
    assert!(!b.root().join(&id).exists(), "run deleted the container");
    // Detached, nobody would hold the pty: refused as runc refuses it.
    let out = common::run(b.rt().args(["run", "-d", &id]).stdin(Stdio::null()));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("console-socket"));
}
