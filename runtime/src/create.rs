//! `create`: the runtime side forks the container init, which builds the
//! container (namespaces, rootfs, devices, limits) and blocks on the exec
//! fifo until `start`. A failed create removes everything it made.
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType as NsT, Spec};

use crate::error::{Context, Error, Result};
use crate::namespaces::Plan;
use crate::state::{self, State, Status, EXEC_FIFO};
use crate::sync::{self, Chan};
use crate::{cgroups, console, hooks, process, rootfs, seccomp, sys};

/// Options of `create` (and the create half of `run`).
pub struct CreateOpts<'a> {
    pub root: &'a Path,
    pub id: &'a str,
    pub bundle: &'a Path,
    pub pid_file: Option<&'a Path>,
    pub console_socket: Option<&'a Path>,
    /// A connected socket standing in for --console-socket (`run -t`).
    pub console_fd: Option<std::os::fd::BorrowedFd<'a>>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
}

/// Loads and checks config.json from a bundle.
pub fn load_spec(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).ctx(|| format!("read {}", path.display()))?;
    let spec: Spec = serde_json::from_slice(&data)
        .map_err(|e| Error::invalid(format!("parse {}: {e}", path.display())))?;
    if spec.process().is_none() {
        return Err(Error::invalid(format!(
            "{}: process is required",
            path.display()
        )));
    }
    Ok(spec)
}

/// Undoes a partial create when dropped (child, cgroup, state dir).
struct Cleanup {
    dir: PathBuf,
    child: Option<i32>,
    cgroup: Option<String>,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.child {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
        }
        // Only once the init is gone can its cgroup be removed.
        if let Some(cg) = &self.cgroup {
            let _ = cgroups::destroy(cg);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Creates the container; returns its state (status `created`).
pub fn create(o: &CreateOpts<'_>) -> Result<State> {
    state::validate_id(o.id)?;
    for fd in 3..3 + o.preserve_fds as i32 {
        // SAFETY: F_GETFD only queries.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(Error::invalid(format!(
                "--preserve-fds: fd {fd} is not open"
            )));
        }
    }
    let bundle =
        std::fs::canonicalize(o.bundle).ctx(|| format!("resolve bundle {}", o.bundle.display()))?;
    let spec = load_spec(&bundle)?;
    let root_path = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .ok_or_else(|| Error::invalid("config.json: root.path is required"))?;
    let rootfs_in = if root_path.is_absolute() {
        root_path
    } else {
        bundle.join(root_path)
    };
    let rootfs = std::fs::canonicalize(&rootfs_in)
        .ctx(|| format!("resolve rootfs {}", rootfs_in.display()))?;
    let linux = spec.linux().as_ref();
    let cg_path = cgroups::path_for(linux.and_then(|l| l.cgroups_path().as_deref()), o.id)?;
    let plan = Plan::from_spec(&spec)?;
    validate(&spec, &plan)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let console = match (terminal, o.console_socket) {
        (true, Some(p)) => Some(console::connect(p)?),
        (true, None) if o.console_fd.is_some() => o
            .console_fd
            .map(|fd| fd.try_clone_to_owned())
            .transpose()
            .ctx(|| "duplicate console socket")?,
        (true, None) => {
            return Err(Error::invalid(
                "process.terminal is true but no --console-socket was given",
            ))
        }
        (false, _) => None,
    };
    let listener = match linux.and_then(|l| l.seccomp().as_ref()) {
        Some(s) if seccomp::uses_notify(s) => {
            let p = s.listener_path().as_ref().ok_or_else(|| {
                Error::invalid("seccomp uses SCMP_ACT_NOTIFY but listenerPath is empty")
            })?;
            Some(console::connect(p)?)
        }
        _ => None,
    };

    state::ensure_root(o.root)?;
    let dir = state::container_dir(o.root, o.id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::invalid(format!("container {} already exists", o.id)))
        }
        Err(e) => return Err(e).ctx(|| format!("create {}", dir.display())),
    }
    let mut cleanup = Cleanup {
        cgroup: None,
        dir: dir.clone(),
        child: None,
        armed: true,
    };
    let fifo = dir.join(EXEC_FIFO);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .ctx(|| format!("mkfifo {}", fifo.display()))?;
    // umask trimmed the mode: an init in a user namespace writes as "other".
    std::fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o622))
        .ctx(|| format!("chmod {}", fifo.display()))?;

    let mut st = State {
        id: o.id.to_string(),
        pid: 0,
        pid_start: 0,
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        created: state::now_rfc3339(),
        cgroup_path: cg_path.clone(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        config: spec,
    };
    let spec = &st.config;

    // Namespaces joined by the runtime itself before forking: pid and time
    // only apply to children; net/ipc/uts are joined here unless a user
    // namespace must be joined first (the init does that).
    let user_path = plan.joins(NsT::User);
    if user_path {
        plan.setns(&[NsT::Pid, NsT::Time])?;
    } else {
        plan.setns(&[NsT::Pid, NsT::Time, NsT::Network, NsT::Ipc, NsT::Uts])?;
    }
    if plan.new.contains(crate::namespaces::flag(NsT::Time)) {
        unshare(crate::namespaces::flag(NsT::Time)).ctx(|| "unshare time namespace")?;
        write_time_offsets(spec)?;
    }
    let clone_flags = if user_path {
        plan.new & CloneFlags::CLONE_NEWPID
    } else {
        plan.new & !(CloneFlags::CLONE_NEWCGROUP | crate::namespaces::flag(NsT::Time))
    };

    let (parent_end, child_end) = sync::pair()?;
    let fifo_fd = nix::fcntl::open(
        &fifo,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("open {}", fifo.display()))?;

    // The cgroup exists before the init does: it is born in its v2 cgroup
    // and moves itself into the v1 ones (see cgroups/mod.rs for why).
    let cg = cgroups::Cgroup::new(&cg_path);
    cleanup.cgroup = Some(cg_path.clone());
    cg.create()?;
    let cg_fd = cg.open_v2()?;
    let (pid, placed) = sys::clone_into(clone_flags.bits() as u64, cg_fd.as_ref())
        .ctx(|| "clone container init")?;
    if pid == 0 {
        drop(parent_end);
        let init = Init {
            cgroup: &cg,
            spec,
            plan: &plan,
            rootfs: &rootfs,
            bundle: &bundle,
            no_pivot: o.no_pivot,
            preserve_fds: o.preserve_fds,
            chan: child_end,
            fifo: fifo_fd,
            console,
            listener,
            user_path,
            state_for_hooks: &st,
            ready: std::cell::Cell::new(false),
        };
        init.main();
    }
    drop(child_end);
    drop(fifo_fd);
    drop(cg_fd);
    cleanup.child = Some(pid);
    st.pid = pid;
    st.pid_start = sys::proc_start_and_state(pid).map(|s| s.0).unwrap_or(0);

    if plan.new.contains(CloneFlags::CLONE_NEWUSER) {
        write_id_maps(pid, st.config.linux().as_ref())?;
    }
    if !placed {
        // No clone3: the v2 cgroup (pure or hybrid) is joined the slow way.
        cg.add_pid(pid, false, true)?;
    }
    if let Err(e) = parent_end.send(sync::GO, &[]) {
        // The init may have failed already (joining its cgroups): its error
        // is waiting on the socket.
        return Err(match parent_end.recv() {
            Ok(Some((sync::ERROR, msg))) => Error::invalid(String::from_utf8_lossy(&msg)),
            _ => e,
        });
    }
    loop {
        match parent_end.recv()? {
            Some((sync::READY, _)) => {
                // Limits (device rules included) once /dev is built, before anything runs.
                if let Some(res) = st
                    .config
                    .linux()
                    .as_ref()
                    .and_then(|l| l.resources().as_ref())
                {
                    cg.set(res)?;
                }
                break;
            }
            Some((sync::HOOKS, _)) => {
                let h = st.config.hooks().as_ref();
                let js = st.hook_json(Status::Creating);
                hooks::run_all("prestart", h.and_then(|h| h.prestart().as_ref()), &js)?;
                hooks::run_all(
                    "createRuntime",
                    h.and_then(|h| h.create_runtime().as_ref()),
                    &js,
                )?;
                parent_end.send(sync::HOOKS_DONE, &[])?;
            }
            Some((sync::ERROR, msg)) => return Err(Error::invalid(String::from_utf8_lossy(&msg))),
            Some((t, _)) => {
                return Err(Error::invalid(format!(
                    "container init sent unknown message {t}"
                )))
            }
            None => return Err(Error::invalid("container init exited during setup")),
        }
    }
    st.save(o.root)?;
    if let Some(pf) = o.pid_file {
        write_pid_file(pf, pid)?;
    }
    cleanup.armed = false;
    Ok(st)
}

/// Refuses configs the runtime-spec says must fail, before anything is made.
fn validate(spec: &Spec, plan: &Plan) -> Result<()> {
    if let Some(p) = spec.process().as_ref() {
        if !p.cwd().is_absolute() {
            return Err(Error::invalid(format!(
                "process.cwd {:?} must be an absolute path",
                p.cwd()
            )));
        }
    }
    unsupported(spec)?;
    let has_uts = plan.has(NsT::Uts);
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has_uts {
        return Err(Error::invalid(
            "hostname is set but the container has no UTS namespace",
        ));
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty()) && !has_uts {
        return Err(Error::invalid(
            "domainname is set but the container has no UTS namespace",
        ));
    }
    for key in spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        let needs = if key.starts_with("net.") {
            Some((NsT::Network, "network"))
        } else if key.starts_with("fs.mqueue.")
            || [
                "kernel.msgmax",
                "kernel.msgmnb",
                "kernel.msgmni",
                "kernel.sem",
                "kernel.shmall",
                "kernel.shmmax",
                "kernel.shmmni",
                "kernel.shm_rmid_forced",
            ]
            .contains(&key.as_str())
        {
            Some((NsT::Ipc, "IPC"))
        } else if key == "kernel.hostname" || key == "kernel.domainname" {
            Some((NsT::Uts, "UTS"))
        } else {
            None
        };
        match needs {
            Some((ns, name)) if !plan.has(ns) => {
                return Err(Error::invalid(format!(
                    "sysctl {key} needs the container's own {name} namespace"
                )))
            }
            Some(_) => {}
            None => {
                return Err(Error::invalid(format!(
                    "sysctl {key} is not namespaced: setting it would change the host"
                )))
            }
        }
    }
    Ok(())
}

/// Settings this runtime cannot honour are refused, never silently ignored.
fn unsupported(spec: &Spec) -> Result<()> {
    let no = |what: &str, why: &str| Err(Error::invalid(format!("{what} is not supported: {why}")));
    if let Some(l) = spec.linux() {
        if l.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
            return no(
                "linux.netDevices",
                "move the device into the network namespace before create",
            );
        }
        if l.intel_rdt().is_some() {
            return no("linux.intelRdt", "this runtime has no resctrl support");
        }
        if l.memory_policy().is_some() {
            return no(
                "linux.memoryPolicy",
                "this runtime does not set NUMA memory policies",
            );
        }
    }
    // As runc: an SELinux label needs SELinux; an AppArmor profile is
    // ignored where AppArmor is off, and refused where it is on (this
    // runtime does not apply profiles).
    let selinux = Path::new("/sys/fs/selinux/enforce").exists();
    let label = spec
        .process()
        .as_ref()
        .and_then(|p| p.selinux_label().as_deref())
        .or(spec
            .linux()
            .as_ref()
            .and_then(|l| l.mount_label().as_deref()));
    if let Some(l) = label.filter(|l| !l.is_empty()) {
        let why = if selinux {
            "this runtime does not apply SELinux labels"
        } else {
            "SELinux is not enabled on this host"
        };
        return no(&format!("SELinux label {l:?}"), why);
    }
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y");
    if let Some(p) = spec
        .process()
        .as_ref()
        .and_then(|p| p.apparmor_profile().as_deref())
        .filter(|p| apparmor && !p.is_empty() && *p != "unconfined")
    {
        return no(
            &format!("AppArmor profile {p:?}"),
            "this runtime does not apply AppArmor profiles",
        );
    }
    for m in spec.mounts().iter().flatten() {
        if m.uid_mappings().as_ref().is_some_and(|v| !v.is_empty())
            || m.gid_mappings().as_ref().is_some_and(|v| !v.is_empty())
        {
            return no(
                &format!(
                    "mount {}: uidMappings/gidMappings",
                    m.destination().display()
                ),
                "idmapped mounts are not implemented",
            );
        }
    }
    Ok(())
}

/// Writes the pid file atomically (podman and conmon read it).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("krun-tmp");
    std::fs::write(&tmp, pid.to_string()).ctx(|| format!("write pid file {}", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(|| format!("rename pid file to {}", path.display()))
}

fn map_lines(m: &[LinuxIdMapping]) -> String {
    m.iter()
        .map(|x| format!("{} {} {}\n", x.container_id(), x.host_id(), x.size()))
        .collect()
}

fn write_id_maps(pid: i32, linux: Option<&oci_spec::runtime::Linux>) -> Result<()> {
    let uid = linux
        .and_then(|l| l.uid_mappings().as_deref())
        .unwrap_or(&[]);
    let gid = linux
        .and_then(|l| l.gid_mappings().as_deref())
        .unwrap_or(&[]);
    if uid.is_empty() || gid.is_empty() {
        return Err(Error::invalid(
            "a new user namespace needs uidMappings and gidMappings",
        ));
    }
    sys::write_file(Path::new(&format!("/proc/{pid}/uid_map")), &map_lines(uid))?;
    if !nix::unistd::geteuid().is_root() {
        // Unprivileged gid mappings require setgroups to be denied first.
        sys::write_file(Path::new(&format!("/proc/{pid}/setgroups")), "deny")?;
    }
    sys::write_file(Path::new(&format!("/proc/{pid}/gid_map")), &map_lines(gid))
}

fn write_time_offsets(spec: &Spec) -> Result<()> {
    let Some(offs) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let mut s = String::new();
    for (clock, off) in offs {
        s.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    if s.is_empty() {
        return Ok(());
    }
    sys::write_file(Path::new("/proc/self/timens_offsets"), &s)
}

/// Everything the init needs; lives in the forked child.
struct Init<'a> {
    cgroup: &'a cgroups::Cgroup,
    spec: &'a Spec,
    plan: &'a Plan,
    rootfs: &'a Path,
    bundle: &'a Path,
    no_pivot: bool,
    preserve_fds: u32,
    chan: Chan,
    fifo: OwnedFd,
    console: Option<OwnedFd>,
    listener: Option<OwnedFd>,
    user_path: bool,
    state_for_hooks: &'a State,
    ready: std::cell::Cell<bool>,
}

impl Init<'_> {
    /// Runs the init; never returns.
    fn main(self) -> ! {
        // Die with the runtime while setting up; a half-made container must not linger.
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
        let err = match self.run() {
            Ok(never) => match never {},
            Err(e) => e,
        };
        // Before READY the runtime reports it (if it is gone, it has already
        // reported its own failure); after READY only stderr is left.
        if self.ready.get() {
            eprintln!("krun-runtime: {err}");
        } else {
            let _ = self.chan.send(sync::ERROR, err.to_string().as_bytes());
        }
        // SAFETY: leave without running destructors shared with the parent.
        unsafe { libc::_exit(127) }
    }

    fn run(&self) -> Result<Infallible> {
        // First, while single-threaded runtime code: into the v1 cgroups.
        if let Some(p) = self.spec.process() {
            crate::sched::affinity_initial(p)?;
        }
        self.cgroup.enter_v1_self(false)?;
        let spec = self.spec;
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::invalid("process is required"))?;
        // Other processes in a joined pid namespace must not open our /proc entries.
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        self.chan.expect(sync::GO)?;
        if self.user_path {
            self.plan.setns(&[NsT::User])?;
            self.plan
                .setns(&[NsT::Network, NsT::Ipc, NsT::Uts, NsT::Cgroup, NsT::Mount])?;
            let rest =
                self.plan.new & !(CloneFlags::CLONE_NEWPID | crate::namespaces::flag(NsT::Time));
            unshare(rest).ctx(|| "unshare namespaces")?;
        } else {
            self.plan.setns(&[NsT::Cgroup, NsT::Mount])?;
            if self.plan.new.contains(CloneFlags::CLONE_NEWCGROUP) {
                // After joining our cgroups, so they become the namespace root.
                unshare(CloneFlags::CLONE_NEWCGROUP).ctx(|| "unshare cgroup namespace")?;
            }
        }
        let in_userns = self.plan.has(NsT::User);
        if in_userns {
            let root = nix::unistd::Uid::from_raw(0);
            let rootg = nix::unistd::Gid::from_raw(0);
            nix::unistd::setresgid(rootg, rootg, rootg).ctx(|| "setgid 0 in user namespace")?;
            nix::unistd::setresuid(root, root, root).ctx(|| "setuid 0 in user namespace")?;
        }
        nix::unistd::setsid().ctx(|| "setsid")?;
        nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let host_proc = sys::open_dir(Path::new("/proc"))?;
        // Our pid as the runtime sees it (the host /proc's "self"), for hook state.
        let host_pid: i32 = nix::fcntl::readlinkat(&host_proc, "self")
            .ok()
            .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0);

        let hooks = spec.hooks().as_ref();
        let has_mntns = self.plan.has(NsT::Mount);
        if has_mntns {
            rootfs::prepare(
                spec,
                self.rootfs,
                self.bundle,
                self.plan.has(NsT::Cgroup),
                in_userns,
            )?;
        }
        let runtime_hooks = hooks.is_some_and(|h| {
            h.prestart().as_ref().is_some_and(|v| !v.is_empty())
                || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
        });
        if runtime_hooks {
            self.chan.send(sync::HOOKS, &[])?;
            self.chan.expect(sync::HOOKS_DONE)?;
        }
        hooks::run_all(
            "createContainer",
            hooks.and_then(|h| h.create_container().as_ref()),
            &self
                .state_for_hooks
                .hook_json_pid(Status::Created, host_pid),
        )?;
        if has_mntns {
            rootfs::enter(self.rootfs, self.no_pivot)?;
            rootfs::root_propagation(spec)?;
        } else {
            nix::unistd::chroot(self.rootfs).ctx(|| format!("chroot {}", self.rootfs.display()))?;
            nix::unistd::chdir("/").ctx(|| "chdir /")?;
        }
        if let Some(sock) = &self.console {
            let size = process.console_size().map(|b| (b.height(), b.width()));
            console::setup(sock, size, true)?;
        }
        if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
            for (k, v) in sysctl {
                let p = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
                sys::write_file(&p, v)
                    .map_err(|e| Error::invalid(format!("sysctl {k}={v}: {e}")))?;
            }
        }
        if has_mntns {
            rootfs::finish(spec)?;
        }
        if self.plan.has(NsT::Uts) {
            if let Some(h) = spec.hostname().as_deref() {
                nix::unistd::sethostname(h).ctx(|| format!("sethostname {h}"))?;
            }
            if let Some(d) = spec.domainname().as_deref() {
                // SAFETY: pointer and length of a live string.
                if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
                    return Err(nix::errno::Errno::last()).ctx(|| format!("setdomainname {d}"));
                }
            }
        }
        process::set_rlimits(process)?;
        process::set_oom_score_adj(process)?;
        let (env, path) = process::env_of(process)?;
        let args = process.args().as_deref().unwrap_or(&[]);
        let arg0 = args
            .first()
            .ok_or_else(|| Error::invalid("process.args must not be empty"))?;
        let prog = process::lookup(arg0, path.as_deref())?;
        let filter = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(s) => Some(seccomp::build(s)?),
            None => None,
        };

        // Ready: the runtime may return from create. From here on errors go to stderr.
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
        self.chan.send(sync::READY, &[])?;
        self.ready.set(true);
        let fifo_path = format!("self/fd/{}", self.fifo.as_raw_fd());
        let w = nix::fcntl::openat(
            &host_proc,
            fifo_path.as_str(),
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ctx(|| "open exec fifo")?;
        drop(host_proc);
        hooks::run_all(
            "startContainer",
            hooks.and_then(|h| h.start_container().as_ref()),
            &self
                .state_for_hooks
                .hook_json_pid(Status::Created, host_pid),
        )?;
        // `start` reads this byte, then waits for EOF: the fifo is close-on-exec,
        // so EOF means the process is running and poststart hooks may run.
        nix::unistd::write(&w, b"0").ctx(|| "write exec fifo")?;
        crate::sched::personality(spec.linux().as_ref().and_then(|l| l.personality().as_ref()))?;
        finalize(
            process,
            filter.as_ref(),
            self.listener.as_ref().map(|l| {
                (
                    l,
                    self.state_for_hooks
                        .hook_json_pid(Status::Created, host_pid),
                )
            }),
            self.preserve_fds,
            &prog,
            args,
            &env,
        )
    }
}

/// Drops privileges and execs the process: shared by the init and `exec`.
pub fn finalize(
    process: &oci_spec::runtime::Process,
    filter: Option<&libseccomp::ScmpFilterContext>,
    listener: Option<(&OwnedFd, String)>,
    preserve_fds: u32,
    prog: &Path,
    args: &[String],
    env: &[CString],
) -> Result<Infallible> {
    let nnp = process.no_new_privileges().unwrap_or(false);
    let listener = listener.map(|(fd, st)| (fd, seccomp_state_json(&st)));
    let caps = process.capabilities().as_ref();
    // Scheduling first: a realtime policy needs CAP_SYS_NICE, dropped below.
    crate::sched::apply(process)?;
    crate::sched::affinity_final(process)?;
    let setgroups_ok = std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() != "deny")
        .unwrap_or(true);
    // Without no_new_privs the filter must be loaded while CAP_SYS_ADMIN is held.
    if !nnp {
        if let Some(f) = filter {
            seccomp::load(f, listener.as_ref().map(|(fd, s)| (*fd, s.clone())))?;
        }
    }
    process::drop_bounding(caps)?;
    process::set_user(process, setgroups_ok)?;
    process::set_caps(caps)?;
    if nnp {
        process::set_no_new_privs()?;
    }
    process::enter_cwd(process.cwd())?;
    // Nothing the runtime opened may survive into the container (CVE-2024-21626).
    sys::cloexec_from(3 + preserve_fds).ctx(|| "mark fds close-on-exec")?;
    for fd in 3..3 + preserve_fds as i32 {
        sys::clear_cloexec(fd).ctx(|| format!("preserve fd {fd}"))?;
    }
    // SAFETY: reset the signal mask inherited from the runtime, and SIGPIPE,
    // which the runtime ignores: an ignored signal would survive the exec.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    if nnp {
        if let Some(f) = filter {
            seccomp::load(f, listener.as_ref().map(|(fd, s)| (*fd, s.clone())))?;
        }
    }
    Err(process::exec(prog, args, env))
}

fn seccomp_state_json(state_json: &str) -> String {
    let st: serde_json::Value = serde_json::from_str(state_json).unwrap_or_default();
    serde_json::json!({
        "ociVersion": state::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": st["pid"].clone(),
        "state": st,
    })
    .to_string()
}
