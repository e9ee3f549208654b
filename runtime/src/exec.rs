//! `exec`: runs another process inside a running container, joining its
//! namespaces, root and cgroup, with its own (or the container's) settings.
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::sched::setns;
use oci_spec::runtime::{LinuxNamespaceType as NsT, Process};

use crate::error::{Context, Error, Result};
use crate::namespaces::{flag, proc_name};
use crate::state::{State, Status};
use crate::sync::{self, Chan};
use crate::{cgroups, console, create, ops, process, sched, seccomp, sys};

/// Options of `exec`.
pub struct ExecOpts<'a> {
    pub root: &'a Path,
    pub id: &'a str,
    pub process: Process,
    pub detach: bool,
    pub pid_file: Option<&'a Path>,
    pub console_socket: Option<&'a Path>,
    pub preserve_fds: u32,
}

/// Runs the process; returns its exit code (0 when detached).
pub fn exec(o: ExecOpts<'_>) -> Result<i32> {
    let st = State::load(o.root, o.id)?;
    let status = st.status(o.root);
    if status != Status::Running && status != Status::Created {
        return Err(Error::invalid(format!(
            "cannot exec in container {}: it is {}",
            o.id,
            status.as_str()
        )));
    }
    let pid = st.pid;
    // Open everything of the container's before forking, then re-check the
    // init is still the same process (pid reuse).
    let mut nss: Vec<(NsT, OwnedFd)> = Vec::new();
    for ns in st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or(&[])
    {
        let p = format!("/proc/{pid}/ns/{}", proc_name(ns.typ()));
        let f = std::fs::File::open(&p).ctx(|| format!("open {p}"))?;
        nss.push((ns.typ(), OwnedFd::from(f)));
    }
    let root_fd = sys::open_dir(Path::new(&format!("/proc/{pid}/root")))?;
    if !st.init_alive() {
        return Err(Error::invalid(format!("container {} stopped", o.id)));
    }
    let terminal = o.process.terminal().unwrap_or(false);
    let console = match (terminal, o.console_socket) {
        (true, Some(p)) => Some(console::connect(p)?),
        (true, None) => {
            return Err(Error::invalid(
                "terminal requested but no --console-socket was given",
            ))
        }
        _ => None,
    };
    // pid and time namespaces apply to children: join them here, before the fork.
    for (t, fd) in &nss {
        if matches!(t, NsT::Pid | NsT::Time) && !same_ns(*t, pid) {
            setns(fd, flag(*t))
                .ctx(|| format!("join {} namespace of container {}", proc_name(*t), o.id))?;
        }
    }
    let (parent_end, child_end) = sync::pair()?;
    // Born in the container's v2 cgroup; the child joins the v1 ones itself
    // (cheap while single-threaded, see cgroups/mod.rs).
    let cg = cgroups::Cgroup::new(&st.cgroup_path);
    let cg_fd = cg.open_v2()?;
    let (child, placed) = sys::clone_into(0, cg_fd.as_ref()).ctx(|| "fork exec process")?;
    if child == 0 {
        drop(parent_end);
        let err = match sched::affinity_initial(&o.process)
            .and_then(|()| cg.enter_v1_self(true))
            .and_then(|()| child_main(&o, &st, &nss, &root_fd, console.as_ref(), &child_end))
        {
            Ok(never) => match never {},
            Err(e) => e,
        };
        let _ = child_end.send(sync::ERROR, err.to_string().as_bytes());
        // SAFETY: exit the forked child without running the parent's destructors.
        unsafe { libc::_exit(127) }
    }
    drop(child_end);
    let joined = if placed || cg_fd.is_none() {
        Ok(())
    } else {
        cg.add_pid(child, false, true)
    };
    drop(cg_fd);
    if let Err(e) = joined {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
        return Err(e);
    }
    if let Err(e) = parent_end.send(sync::GO, &[]) {
        // The child may have failed already; its error is on the socket.
        let msg = match parent_end.recv() {
            Ok(Some((sync::ERROR, msg))) => Error::invalid(String::from_utf8_lossy(&msg)),
            _ => e,
        };
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
        return Err(msg);
    }
    // EOF means execve succeeded (the socket is close-on-exec).
    if let Some((sync::ERROR, msg)) = parent_end.recv()? {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
        return Err(Error::invalid(String::from_utf8_lossy(&msg)));
    }
    if let Some(pf) = o.pid_file {
        create::write_pid_file(pf, child)?;
    }
    if o.detach {
        return Ok(0);
    }
    ops::wait_forwarding(child)
}

fn same_ns(t: NsT, pid: i32) -> bool {
    let a = std::fs::metadata(format!("/proc/self/ns/{}", proc_name(t)));
    let b = std::fs::metadata(format!("/proc/{pid}/ns/{}", proc_name(t)));
    use std::os::unix::fs::MetadataExt;
    matches!((a, b), (Ok(a), Ok(b)) if a.ino() == b.ino() && a.dev() == b.dev())
}

fn child_main(
    o: &ExecOpts<'_>,
    st: &State,
    nss: &[(NsT, OwnedFd)],
    root_fd: &OwnedFd,
    console: Option<&OwnedFd>,
    chan: &Chan,
) -> Result<std::convert::Infallible> {
    // Processes in the container must not reach into us through /proc.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    chan.expect(sync::GO)?;
    // The user namespace first, so the others are joined with its credentials.
    let order = [
        NsT::User,
        NsT::Mount,
        NsT::Network,
        NsT::Ipc,
        NsT::Uts,
        NsT::Cgroup,
    ];
    for t in order {
        for (nt, fd) in nss.iter().filter(|(nt, _)| *nt == t) {
            if same_ns(*nt, st.pid) {
                continue;
            }
            setns(fd, flag(*nt)).ctx(|| format!("join {} namespace", proc_name(*nt)))?;
        }
    }
    if nss.iter().any(|(t, _)| *t == NsT::User) {
        let z = nix::unistd::Uid::from_raw(0);
        nix::unistd::setresuid(z, z, z).ctx(|| "setuid 0 in user namespace")?;
    }
    // The container's root, whether it was entered with pivot_root or chroot.
    nix::unistd::fchdir(root_fd).ctx(|| "enter container root")?;
    nix::unistd::chroot(".").ctx(|| "chroot into container root")?;
    nix::unistd::chdir("/").ctx(|| "chdir /")?;
    nix::unistd::setsid().ctx(|| "setsid")?;
    if let Some(sock) = console {
        let size = o.process.console_size().map(|b| (b.height(), b.width()));
        console::setup(sock, size, false)?;
    }
    process::set_rlimits(&o.process)?;
    let (env, path) = process::env_of(&o.process)?;
    let args = o.process.args().as_deref().unwrap_or(&[]);
    let arg0 = args
        .first()
        .ok_or_else(|| Error::invalid("exec: no command given"))?;
    let prog = process::lookup(arg0, path.as_deref())?;
    let filter = match st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
    {
        Some(s) => Some(seccomp::build(s)?),
        None => None,
    };
    sched::personality(
        st.config
            .linux()
            .as_ref()
            .and_then(|l| l.personality().as_ref()),
    )?;
    create::finalize(
        &o.process,
        filter.as_ref(),
        None,
        o.preserve_fds,
        &prog,
        args,
        &env,
    )
}
