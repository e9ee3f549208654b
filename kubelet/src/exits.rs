//! How a container's init ended when the asker is not its parent.
//!
//! A supervisor reaps its containers' inits itself (it is their child
//! subreaper). A re-spawned supervisor is not their parent any more: the
//! inits were reparented to the nearest subreaper (the node agent) or to
//! PID 1 when the old one died. It learns the exit status, in this order:
//!
//! 1. from the zombie, while nobody has reaped it yet (`exit_code`, field
//!    52 of /proc/PID/stat, since Linux 3.5);
//! 2. from the pidfd it held while the process exited (PIDFD_GET_INFO
//!    with PIDFD_INFO_EXIT, Linux 6.15), once the parent reaped it;
//! 3. from an exit file the node agent wrote when it reaped the process
//!    as its subreaper, as conmon's exit files (`<run root>/exits/`,
//!    named by pid and start time, so a reused pid is never mistaken);
//!
//! and when none of those knows, the caller reports what the kubelet does
//! for a container that vanished: ContainerStatusUnknown, exit code 137.
//!
//! Every status here is a wait(2) status word.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::node::NodePaths;
use crate::oci_runtime::Exit;

/// `<run root>/exits`.
pub fn dir(paths: &NodePaths) -> PathBuf {
    paths.run_root.join("exits")
}

/// The same directory seen from a pod's (`<run root>/supervisors/<uid>`).
pub fn dir_of(dirs: &crate::podstate::PodDirs) -> PathBuf {
    let run_root = dirs
        .run
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"));
    run_root.join("exits")
}

/// The termination message of a container whose exit status was lost.
pub const UNKNOWN_MESSAGE: &str =
    "The container's exit status could not be found: it ended while no supervisor watched it";

/// The fields of /proc/PID/stat after the command name (the first is
/// field 3, the state).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name may hold spaces and parentheses: cut at the last ')'
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// The process's start time (field 22, clock ticks after boot): with the
/// pid it names one process for the life of the system.
pub fn start_ticks(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(22 - 3)?.parse().ok()
}

/// The state letter of the process (R, S, D, Z, ...).
pub fn state(pid: i32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// The exit status of `pid` while it is a zombie, if it is the process
/// that started at `start`.
pub fn zombie_status(pid: i32, start: u64) -> Option<i32> {
    let f = stat_fields(pid)?;
    if f.first().map(String::as_str) != Some("Z") || f.get(22 - 3)?.parse::<u64>().ok()? != start {
        return None;
    }
    f.get(52 - 3)?.parse().ok()
}

/// `struct pidfd_info` of linux/pidfd.h (PIDFD_INFO_SIZE_VER0, 64 bytes).
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    ids: [u32; 11],
    exit_code: i32,
}

const PIDFD_INFO_EXIT: u64 = 1 << 3;
/// _IOWR(0xFF, 11, struct pidfd_info).
const PIDFD_GET_INFO: libc::c_ulong = (3 << 30) | (64 << 16) | (0xFF << 8) | 11;

/// The exit status the kernel kept for the pidfd's process, once it has
/// been reaped (None before, or on kernels before 6.15).
pub fn pidfd_status(pidfd: &OwnedFd) -> Option<i32> {
    let mut info = PidfdInfo {
        mask: PIDFD_INFO_EXIT,
        ..Default::default()
    };
    // SAFETY: the ioctl fills a struct of the size its number encodes.
    let rc = unsafe { libc::ioctl(pidfd.as_raw_fd(), PIDFD_GET_INFO, &mut info) };
    (rc == 0 && info.mask & PIDFD_INFO_EXIT != 0).then_some(info.exit_code)
}

fn file(dir: &Path, pid: i32, start: u64) -> PathBuf {
    dir.join(format!("{pid}-{start}"))
}

/// Records how `pid` (started at `start`) ended: temp file and rename.
pub fn write(dir: &Path, pid: i32, start: u64, status: i32) -> io::Result<()> {
    crate::node::private_dir(dir)?;
    let path = file(dir, pid, start);
    let tmp = dir.join(format!(".{pid}-{start}.tmp"));
    fs::write(&tmp, format!("{status}\n"))?;
    fs::rename(&tmp, &path)
}

/// The recorded exit status of `pid` started at `start`; the file is
/// consumed.
pub fn take(dir: &Path, pid: i32, start: u64) -> Option<i32> {
    let path = file(dir, pid, start);
    let v = fs::read_to_string(&path).ok()?.trim().parse().ok();
    let _ = fs::remove_file(&path);
    v
}

/// Removes exit files nobody claimed within `age`.
pub fn gc(dir: &Path, age: Duration) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let now = SystemTime::now();
    for e in rd.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|d| d > age);
        if old {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// An exited child of the caller, left unreaped (WNOWAIT): its pid, or
/// None when no child has exited.
pub fn exited_child() -> Option<i32> {
    // SAFETY: siginfo_t is plain data; zeroed is valid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid peeks (WNOWAIT) at any exited child.
    let rc = unsafe {
        libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: si_pid is set by a successful waitid (0 when none).
    let pid = unsafe { info.si_pid() };
    (rc == 0 && pid != 0).then_some(pid)
}

/// A wait status as an [`Exit`].
pub fn decode(status: i32) -> Exit {
    if libc::WIFEXITED(status) {
        Exit::Code(libc::WEXITSTATUS(status))
    } else {
        Exit::Signal(libc::WTERMSIG(status))
    }
}

/// How the process behind `pidfd` (pid `pid`, started at `start`), which
/// has exited and is not the caller's child, ended: from the zombie, the
/// pidfd or an exit file, waiting up to `wait` for a reaper to record it.
pub fn status_of(
    pidfd: &OwnedFd,
    pid: i32,
    start: u64,
    exits: &Path,
    wait: Duration,
) -> Option<Exit> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        if let Some(s) = zombie_status(pid, start)
            .or_else(|| pidfd_status(pidfd))
            .or_else(|| take(exits, pid, start))
        {
            // the agent may have written a file too: it is ours to drop
            let _ = fs::remove_file(file(exits, pid, start));
            return Some(decode(s));
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    // the child is reaped by hand to test both sides of the reap
    #[allow(clippy::zombie_processes)]
    fn a_zombie_and_a_reaped_process_tell_their_status() {
        let child = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let pid = child.id() as i32;
        let fd = crate::oci_runtime::pidfd_open(pid).unwrap();
        let start = start_ticks(pid).unwrap();
        crate::oci_runtime::wait_exited(&fd, Some(Duration::from_secs(10))).unwrap();
        // a zombie: its stat holds the status
        assert_eq!(state(pid), Some('Z'));
        assert_eq!(zombie_status(pid, start).map(decode), Some(Exit::Code(3)));
        assert_eq!(zombie_status(pid, start + 1), None, "another process");
        // SAFETY: reaps our own child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        assert_eq!(zombie_status(pid, start), None);
        // reaped while we held its pidfd (Linux 6.15 keeps the status)
        let dir = tempfile::tempdir().unwrap();
        match pidfd_status(&fd) {
            Some(s) => assert_eq!(decode(s), Exit::Code(3)),
            None => eprintln!("kernel without PIDFD_INFO_EXIT"),
        }
        write(dir.path(), pid, start, 9).unwrap();
        assert_eq!(
            take(dir.path(), pid, start).map(decode),
            Some(Exit::Signal(9))
        );
        assert_eq!(take(dir.path(), pid, start), None, "consumed");
    }
}
