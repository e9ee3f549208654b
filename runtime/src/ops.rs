//! The lifecycle operations on an existing container: start, state, kill,
//! delete, pause/resume, ps, list, update, and waiting for `run`.
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use crate::error::{Context, Error, Result};
use crate::state::{self, State, Status, EXEC_FIFO};
use crate::{cgroups, hooks, sys};

/// `start`: releases the init blocked on the exec fifo, then runs poststart hooks.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let st = State::load(root, id)?;
    start_loaded(root, &st)
}

/// `start` for an already loaded state (`run` uses it directly).
pub fn start_loaded(root: &Path, st: &State) -> Result<()> {
    let status = st.status(root);
    if status != Status::Created {
        return Err(Error::invalid(format!(
            "cannot start container {}: it is {}, not created",
            st.id,
            status.as_str()
        )));
    }
    let fifo = state::container_dir(root, &st.id).join(EXEC_FIFO);
    let f = nix::fcntl::open(
        &fifo,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("open {}", fifo.display()))?;
    let pidfd = sys::pidfd_open(st.pid).ctx(|| format!("pidfd_open {}", st.pid))?;
    loop {
        let mut fds = [
            PollFd::new(f.as_fd(), PollFlags::POLLIN),
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).ctx(|| "wait for container init"),
            Ok(_) => {}
        }
        let fifo_ev = fds[0].revents().unwrap_or(PollFlags::empty());
        let died = fds[1].revents().is_some_and(|r| !r.is_empty());
        if fifo_ev.contains(PollFlags::POLLIN) {
            let mut b = [0u8; 1];
            match nix::unistd::read(&f, &mut b) {
                Ok(1) => {
                    wait_exec(&f, &pidfd);
                    break;
                }
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(e).ctx(|| format!("read {}", fifo.display())),
            }
        }
        if died || fifo_ev.contains(PollFlags::POLLHUP) {
            return Err(Error::invalid(format!(
                "container {} init exited before start",
                st.id
            )));
        }
    }
    let _ = std::fs::remove_file(&fifo);
    let h = st.config.hooks().as_ref();
    // The spec: a failing poststart hook is logged, the container keeps running.
    for e in hooks::run_all_warn(
        "poststart",
        h.and_then(|h| h.poststart().as_ref()),
        &st.hook_json(Status::Running),
    ) {
        crate::log::warn(&e.to_string());
    }
    Ok(())
}

/// After the init's byte: wait until its end of the fifo closes (execve
/// closed it, or the init died), so poststart hooks follow the process start.
fn wait_exec(f: &std::os::fd::OwnedFd, pidfd: &std::os::fd::OwnedFd) {
    loop {
        let mut fds = [
            PollFd::new(f.as_fd(), PollFlags::POLLIN),
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::from(10_000u16)) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            return;
        }
        let mut b = [0u8; 1];
        match nix::unistd::read(f, &mut b) {
            Ok(0) => return,
            Err(nix::errno::Errno::EAGAIN) => {}
            _ => return,
        }
    }
}

/// Parses a signal given as a number, `KILL` or `SIGKILL`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| Error::invalid(format!("unknown signal {s}")));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>()
        .map_err(|_| Error::invalid(format!("unknown signal {s}")))
}

/// `kill`: sends a signal to the init, or with `all` to every process of the container.
pub fn kill_container(root: &Path, id: &str, sig: Signal, all: bool) -> Result<()> {
    let st = State::load(root, id)?;
    let status = st.status(root);
    if status == Status::Stopped && !all {
        return Err(Error::invalid(format!("container {id} is not running")));
    }
    if all {
        for pid in cgroups::pids(&st.cgroup_path).unwrap_or_default() {
            let _ = kill(Pid::from_raw(pid), sig);
        }
        if status == Status::Paused && sig == Signal::SIGKILL {
            // A frozen task only dies once thawed.
            cgroups::freeze(&st.cgroup_path, false)?;
        }
        return Ok(());
    }
    kill(Pid::from_raw(st.pid), sig)
        .ctx(|| format!("send {sig} to container {id} (pid {})", st.pid))?;
    if status == Status::Paused && sig == Signal::SIGKILL {
        cgroups::freeze(&st.cgroup_path, false)?;
    }
    Ok(())
}

/// Waits (up to `timeout`) for a process to exit.
fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let Ok(pidfd) = sys::pidfd_open(pid) else {
        return true;
    };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::ZERO),
        ) {
            Ok(n) if n > 0 => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return false,
        }
    }
}

/// `delete`: removes a stopped container (any container with `force`).
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let st = match State::load(root, id) {
        Ok(st) => st,
        Err(e) => {
            let dir = state::container_dir(root, id);
            if force && state::validate_id(id).is_ok() && !dir.join("state.json").exists() {
                // Nothing (or only a leftover directory) to delete.
                let _ = std::fs::remove_dir_all(&dir);
                return Ok(());
            }
            return Err(e);
        }
    };
    let status = st.status(root);
    match status {
        Status::Stopped => {}
        Status::Created => {
            // Never started: the init only waits on the fifo, so stop it.
            let _ = kill(Pid::from_raw(st.pid), Signal::SIGKILL);
            wait_gone(st.pid, Duration::from_secs(10));
        }
        _ if force => {
            for pid in cgroups::pids(&st.cgroup_path).unwrap_or_default() {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = kill(Pid::from_raw(st.pid), Signal::SIGKILL);
            if status == Status::Paused {
                let _ = cgroups::freeze(&st.cgroup_path, false);
            }
            if !wait_gone(st.pid, Duration::from_secs(10)) {
                return Err(Error::invalid(format!(
                    "container {id}: init {} did not die after SIGKILL",
                    st.pid
                )));
            }
        }
        other => {
            return Err(Error::invalid(format!(
                "cannot delete container {id} that is not stopped: {}",
                other.as_str()
            )))
        }
    }
    let cg = cgroups::destroy(&st.cgroup_path);
    let h = st.config.hooks().as_ref();
    let hook_errs = hooks::run_all_warn(
        "poststop",
        h.and_then(|h| h.poststop().as_ref()),
        &st.hook_json(Status::Stopped),
    );
    let dir = state::container_dir(root, id);
    std::fs::remove_dir_all(&dir).ctx(|| format!("remove {}", dir.display()))?;
    cg?;
    for e in hook_errs {
        crate::log::warn(&e.to_string());
    }
    Ok(())
}

/// `pause` / `resume`.
pub fn pause(root: &Path, id: &str, frozen: bool) -> Result<()> {
    let st = State::load(root, id)?;
    let status = st.status(root);
    let want = if frozen {
        Status::Running
    } else {
        Status::Paused
    };
    if status != want {
        return Err(Error::invalid(format!(
            "cannot {} container {id}: it is {}",
            if frozen { "pause" } else { "resume" },
            status.as_str()
        )));
    }
    cgroups::freeze(&st.cgroup_path, frozen)
}

/// `update`: new resources for a running container.
pub fn update(root: &Path, id: &str, res: &LinuxResources) -> Result<()> {
    let mut st = State::load(root, id)?;
    if st.status(root) == Status::Stopped {
        return Err(Error::invalid(format!("container {id} is stopped")));
    }
    cgroups::update(&st.cgroup_path, res)?;
    // Keep the stored config in step so later reads see the new limits.
    if let Some(linux) = st.config.linux_mut() {
        linux.set_resources(Some(merge(
            linux.resources().clone().unwrap_or_default(),
            res,
        )));
    }
    st.save(root)
}

fn merge(mut base: LinuxResources, new: &LinuxResources) -> LinuxResources {
    if new.memory().is_some() {
        base.set_memory(*new.memory());
    }
    if new.cpu().is_some() {
        base.set_cpu(new.cpu().clone());
    }
    if new.pids().is_some() {
        base.set_pids(*new.pids());
    }
    if new.block_io().is_some() {
        base.set_block_io(new.block_io().clone());
    }
    if new.hugepage_limits().is_some() {
        base.set_hugepage_limits(new.hugepage_limits().clone());
    }
    base
}

/// Waits for the init we forked (`run` in the foreground), forwarding
/// signals to it; returns the shell-style exit code.
pub fn wait_forwarding(pid: i32) -> Result<i32> {
    use nix::sys::signal::{SigSet, SigmaskHow};
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let mut set = SigSet::all();
    for s in [
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
        Signal::SIGKILL,
        Signal::SIGSTOP,
    ] {
        set.remove(s);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .ctx(|| "block signals")?;
    let target = Pid::from_raw(pid);
    loop {
        match waitpid(target, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => {}
            Err(nix::errno::Errno::ECHILD) => return Ok(0),
            Err(e) => return Err(e).ctx(|| format!("wait for pid {pid}")),
        }
        let sig = set.wait().ctx(|| "wait for signals")?;
        if sig != Signal::SIGCHLD && sig != Signal::SIGWINCH {
            let _ = kill(target, sig);
        }
    }
}

/// `ps`: the container's pids, or `ps` output filtered to them.
pub fn ps(root: &Path, id: &str, json: bool, ps_args: &[String]) -> Result<String> {
    let st = State::load(root, id)?;
    let pids = cgroups::pids(&st.cgroup_path).unwrap_or_default();
    if json {
        return Ok(serde_json::to_string(&pids).unwrap_or_else(|_| "[]".into()));
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .ctx(|| "run ps")?;
    if !out.status.success() {
        return Err(Error::invalid(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::invalid("ps output has no PID column"))?;
    let mut res = format!("{header}\n");
    for l in lines {
        if let Some(p) = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok())
        {
            if pids.contains(&p) {
                res.push_str(l);
                res.push('\n');
            }
        }
    }
    Ok(res)
}

/// `list`: every container under the root.
pub fn list(root: &Path, json: bool, quiet: bool) -> Result<String> {
    let mut rows = Vec::new();
    for id in state::list_ids(root)? {
        if let Ok(st) = State::load(root, &id) {
            rows.push(st.oci_json(root));
        }
    }
    if json {
        return Ok(serde_json::Value::Array(rows).to_string());
    }
    let mut out = String::new();
    if quiet {
        for r in &rows {
            out.push_str(r["id"].as_str().unwrap_or(""));
            out.push('\n');
        }
        return Ok(out);
    }
    out.push_str("ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n");
    for r in &rows {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\troot\n",
            r["id"].as_str().unwrap_or(""),
            r["pid"],
            r["status"].as_str().unwrap_or(""),
            r["bundle"].as_str().unwrap_or(""),
            r["created"].as_str().unwrap_or(""),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("SIGUSR1").unwrap(), Signal::SIGUSR1);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
    }
}
