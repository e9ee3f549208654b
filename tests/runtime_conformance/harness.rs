//! Drives an OCI runtime (runc, krun-runtime) through its command line the
//! way an engine does, against bundles the cases write, with a timeout on
//! every call so a hanging runtime fails a case instead of the suite.

use serde_json::Value;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long any single runtime command may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a container's process may run before the case gives up on it.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(15);
/// The last line a check script prints when everything it checked held.
pub const OK_MARKER: &str = "CONFORMANCE-OK";

/// One runtime under test: its binary and a state root of its own.
pub struct Runtime {
    pub name: &'static str,
    pub path: PathBuf,
    /// --root: container state, unique to this test process.
    pub root: PathBuf,
    /// Where command output is captured (files, not pipes: a container
    /// inherits the runtime's stdio and would hold a pipe open).
    pub io: PathBuf,
}

/// What one runtime command did.
pub struct Outcome {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// One paragraph for a failure message: command, exit, both streams.
    pub fn describe(&self) -> String {
        let exit = if self.timed_out {
            "timed out".to_string()
        } else {
            match self.code {
                Some(c) => format!("exit {c}"),
                None => "killed by a signal".to_string(),
            }
        };
        format!(
            "`{}` -> {exit}; stdout: {:?}; stderr: {:?}",
            self.args.join(" "),
            clip(&self.stdout),
            clip(&self.stderr)
        )
    }
}

/// Keeps failure messages readable.
pub fn clip(s: &str) -> String {
    let s = s.trim();
    if s.len() > 1500 {
        let mut end = 1500;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s.to_string()
    }
}

fn next_serial() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

impl Runtime {
    pub fn new(name: &'static str, path: PathBuf, base: &Path) -> Runtime {
        let root = base.join(format!("state-{name}"));
        let io = base.join(format!("io-{name}"));
        for d in [&root, &io] {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        Runtime {
            name,
            path,
            root,
            io,
        }
    }

    /// Runs `<runtime> --root <root> args…` and captures what it printed.
    pub fn cmd(&self, args: &[&str]) -> Outcome {
        self.cmd_timeout(args, CALL_TIMEOUT)
    }

    pub fn cmd_timeout(&self, args: &[&str], timeout: Duration) -> Outcome {
        let n = next_serial();
        let out_path = self.io.join(format!("{n}.out"));
        let err_path = self.io.join(format!("{n}.err"));
        let (code, timed_out) = self.spawn_wait(args, &out_path, &err_path, None, timeout);
        let o = Outcome {
            args: self.argv(args),
            code,
            stdout: read_lossy(&out_path),
            stderr: read_lossy(&err_path),
            timed_out,
        };
        let _ = fs::remove_file(&out_path);
        let _ = fs::remove_file(&err_path);
        o
    }

    fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec![
            self.path.display().to_string(),
            "--root".into(),
            self.root.display().to_string(),
        ];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// Spawns the runtime with stdout/stderr going to the given files (the
    /// container inherits them on `create` and `run`) and waits with a
    /// deadline. Returns the exit code and whether it was killed for time.
    pub fn spawn_wait(
        &self,
        args: &[&str],
        out: &Path,
        err: &Path,
        stdin: Option<&Path>,
        timeout: Duration,
    ) -> (Option<i32>, bool) {
        self.spawn_wait_wrapped(&[], args, out, err, stdin, timeout)
    }

    /// As spawn_wait, with the runtime run under `wrapper` (e.g. `unshare --uts`).
    pub fn spawn_wait_wrapped(
        &self,
        wrapper: &[&str],
        args: &[&str],
        out: &Path,
        err: &Path,
        stdin: Option<&Path>,
        timeout: Duration,
    ) -> (Option<i32>, bool) {
        let mut cmd = match wrapper.split_first() {
            Some((prog, rest)) => {
                let mut c = Command::new(prog);
                c.args(rest).arg(&self.path);
                c
            }
            None => Command::new(&self.path),
        };
        cmd.arg("--root").arg(&self.root).args(args);
        cmd.stdout(file_for_write(out)).stderr(file_for_write(err));
        match stdin {
            Some(p) => {
                cmd.stdin(File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display())))
            }
            None => cmd.stdin(Stdio::null()),
        };
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let _ = fs::write(err, format!("cannot start {}: {e}", self.path.display()));
                return (Some(127), false);
            }
        };
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(st)) => return (st.code(), false),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return (None, true);
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(3)),
                Err(_) => return (None, false),
            }
        }
    }

    /// `state <id>` parsed, or the failure described.
    pub fn state(&self, id: &str) -> Result<Value, String> {
        let o = self.cmd(&["state", id]);
        if !o.ok() {
            return Err(o.describe());
        }
        serde_json::from_str(&o.stdout)
            .map_err(|e| format!("state JSON does not parse ({e}): {}", o.describe()))
    }

    /// Polls `state` until the status is `want`; Err describes the last state seen.
    pub fn wait_status(&self, id: &str, want: &str, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            let st = self.state(id)?;
            if st["status"] == want {
                return Ok(st);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "status never became {want:?} within {timeout:?}; last state: {st}"
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(25));
        }
    }
}

fn file_for_write(p: &Path) -> File {
    File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()))
}

pub fn read_lossy(p: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(p) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Deletes the container (forcefully) when the case ends, failed or not.
pub struct Cleanup<'a> {
    pub rt: &'a Runtime,
    pub id: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let o = self.rt.cmd(&["delete", "--force", &self.id]);
        if o.ok() {
            return;
        }
        // A runtime that cannot delete must not leave a process behind:
        // kill the pid it recorded, which is a process this test started.
        if let Ok(st) = self.rt.state(&self.id) {
            if let Some(pid) = st["pid"].as_i64().filter(|p| *p > 1) {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}

/// Per case and runtime: a host directory of its own and unique names.
pub struct Env {
    /// The shared busybox root filesystem (absolute).
    pub rootfs: PathBuf,
    /// A fresh host directory for this case: bundle, bind sources, hook output.
    pub scratch: PathBuf,
    /// Unique container id, also used for cgroup paths.
    pub id: String,
}

impl Env {
    pub fn bundle(&self) -> PathBuf {
        self.scratch.join("bundle")
    }
    /// A cgroupsPath no other case or process uses.
    pub fn cgroup_path(&self) -> String {
        format!("/{}", self.id)
    }
}

/// A case checked from inside the container.
pub struct Inside {
    pub config: Value,
    /// Shell (busybox sh) checks; the prelude's helpers are available.
    pub script: String,
    pub expect: Expect,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Expect {
    /// The container runs and every check in the script holds.
    Pass,
    /// The runtime must refuse (create or start fails with an error that
    /// names the problem: it contains one of these words, any case) and
    /// leave no container behind.
    Refused(&'static [&'static str]),
}

/// Helpers every check script may use; checks print FAIL lines and the
/// epilogue prints the OK marker only when none failed.
pub const PRELUDE: &str = r#"
FAILED=
fail() { echo "FAIL: $*"; FAILED=1; }
eq() { [ "$1" = "$2" ] || fail "$3: expected [$2], got [$1]"; }
mnt() { awk -v m="$1" '$5==m' /proc/self/mountinfo | tail -n 1; }
mnt_opts() { mnt "$1" | awk '{print $6}'; }
mnt_fstype() { mnt "$1" | awk '{for(i=7;i<=NF;i++) if($i=="-"){print $(i+1); exit}}'; }
mnt_super() { mnt "$1" | awk '{for(i=7;i<=NF;i++) if($i=="-"){print $(i+3); exit}}'; }
has_opt() { case ",$1," in *",$2,"*) return 0;; esac; return 1; }
status_of() { awk -v k="$1:" '$1==k {print $2}' /proc/$$/status; }
is_v2() { [ -e /sys/fs/cgroup/cgroup.controllers ]; }
"#;

pub const EPILOGUE: &str = r#"
if [ -z "$FAILED" ]; then echo CONFORMANCE-OK; else exit 1; fi
"#;

/// The full shell program for a check script.
pub fn script_program(script: &str) -> String {
    format!("{PRELUDE}\n{script}\n{EPILOGUE}")
}

/// Writes the bundle: config.json with the check script as the process.
pub fn write_bundle(env: &Env, inside: &Inside) -> PathBuf {
    let bundle = env.bundle();
    fs::create_dir_all(&bundle).unwrap_or_else(|e| panic!("mkdir {}: {e}", bundle.display()));
    let mut config = inside.config.clone();
    // Args the case put in the config follow the script (they become $0, $1…).
    let extra = config["process"]["args"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut args = vec![
        Value::from("/bin/sh"),
        Value::from("-c"),
        Value::from(script_program(&inside.script)),
    ];
    args.extend(extra);
    config["process"]["args"] = Value::from(args);
    let text = serde_json::to_string_pretty(&config).expect("config serialises");
    fs::write(bundle.join("config.json"), text)
        .unwrap_or_else(|e| panic!("write config.json: {e}"));
    bundle
}

/// create → start → wait for stopped → read what the checks printed.
pub fn run_inside(rt: &Runtime, env: &Env, inside: Inside) -> Result<(), String> {
    let bundle = write_bundle(env, &inside);
    let out = env.scratch.join("container.out");
    let err = env.scratch.join("container.err");
    let id = env.id.as_str();
    let b = bundle.display().to_string();
    let (code, timed_out) = rt.spawn_wait(
        &["create", "--bundle", &b, id],
        &out,
        &err,
        None,
        CALL_TIMEOUT,
    );
    let _guard = Cleanup {
        rt,
        id: id.to_string(),
    };
    let created = code == Some(0) && !timed_out;
    if !created {
        let why = format!(
            "create exited {code:?}{}; stderr: {:?}",
            if timed_out { " (timed out)" } else { "" },
            clip(&read_lossy(&err))
        );
        return match inside.expect {
            Expect::Refused(words) => refused_cleanly(rt, id, &read_lossy(&err), words),
            Expect::Pass => Err(why),
        };
    }
    let start = rt.cmd(&["start", id]);
    if !start.ok() {
        return match inside.expect {
            Expect::Refused(words) => {
                names_problem(&format!("{}{}", start.stderr, read_lossy(&err)), words)
            }
            Expect::Pass => Err(format!(
                "start failed: {}; container stderr: {:?}",
                start.describe(),
                clip(&read_lossy(&err))
            )),
        };
    }
    let stopped = rt.wait_status(id, "stopped", RUN_TIMEOUT);
    let stdout = read_lossy(&out);
    let stderr = read_lossy(&err);
    if matches!(inside.expect, Expect::Refused(_)) {
        return Err(format!(
            "the runtime accepted a config the spec says it must refuse; container stdout: {:?}",
            clip(&stdout)
        ));
    }
    stopped.map_err(|e| format!("{e}; container stdout: {:?}", clip(&stdout)))?;
    if stdout.lines().last().map(str::trim) == Some(OK_MARKER) {
        Ok(())
    } else {
        Err(format!(
            "checks inside the container failed:\n{}\ncontainer stderr: {:?}",
            clip(&stdout),
            clip(&stderr)
        ))
    }
}

/// A refused create must say why and leave no container with that id.
pub fn refused_cleanly(rt: &Runtime, id: &str, stderr: &str, words: &[&str]) -> Result<(), String> {
    names_problem(stderr, words)?;
    let st = rt.cmd(&["state", id]);
    if st.ok() {
        return Err(format!(
            "create failed but left a container behind: {}",
            st.stdout.trim()
        ));
    }
    Ok(())
}

/// An error message must say what was wrong: one of `words` appears in it.
pub fn names_problem(stderr: &str, words: &[&str]) -> Result<(), String> {
    if stderr.trim().is_empty() {
        return Err("failed without an error message".into());
    }
    let lower = stderr.to_lowercase();
    if !words.is_empty() && !words.iter().any(|w| lower.contains(&w.to_lowercase())) {
        return Err(format!(
            "the error does not name the problem (expected one of {words:?}): {:?}",
            clip(stderr)
        ));
    }
    Ok(())
}

/// Builds the shared root filesystem: busybox-static and its applet links.
pub fn build_rootfs(rootfs: &Path) {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox missing: apt-get install busybox-static"
    );
    for d in [
        "bin",
        "etc",
        "tmp",
        "proc",
        "sys",
        "dev",
        "root",
        "home/user",
    ] {
        fs::create_dir_all(rootfs.join(d)).unwrap_or_else(|e| panic!("mkdir rootfs/{d}: {e}"));
    }
    fs::copy(busybox, rootfs.join("bin/busybox")).expect("copy busybox");
    let list = crate::common::run_ok(Command::new(busybox).arg("--list"));
    for applet in list
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox")
    {
        let link = rootfs.join("bin").join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", &link)
                .unwrap_or_else(|e| panic!("symlink {applet}: {e}"));
        }
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
    )
    .expect("write passwd");
    fs::write(rootfs.join("etc/group"), "root:x:0:\nuser:x:1000:\n").expect("write group");
    // tmp is world-writable with the sticky bit, as in every image.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod tmp");
}
