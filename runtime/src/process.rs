//! The container process's credentials and limits, and the final execve:
//! rlimits, oom_score_adj, user and groups, the five capability sets,
//! no_new_privs, umask, cwd (checked inside the root), env.
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use oci_spec::runtime::{LinuxCapabilities, PosixRlimit, Process};

use crate::error::{Context, Error, Result};

fn rlimit_resource(r: &PosixRlimit) -> Result<(libc::__rlimit_resource_t, String)> {
    let name = serde_json::to_value(r.typ())
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let res = match name.as_str() {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return Err(Error::invalid(format!("unknown rlimit type {name:?}"))),
    };
    Ok((res, name))
}

/// Sets the process rlimits. Raising a hard limit needs CAP_SYS_RESOURCE.
pub fn set_rlimits(p: &Process) -> Result<()> {
    for r in p.rlimits().as_deref().unwrap_or(&[]) {
        let (res, name) = rlimit_resource(r)?;
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit reads the struct.
        if unsafe { libc::setrlimit(res, &lim) } != 0 {
            let e = Errno::last();
            let hint = if e == Errno::EPERM {
                " (raising a hard limit needs CAP_SYS_RESOURCE, which this runtime lacks)"
            } else {
                ""
            };
            return Err(Error::invalid(format!(
                "setrlimit {name} soft={} hard={}: {e}{hint}",
                r.soft(),
                r.hard()
            )));
        }
    }
    Ok(())
}

/// Writes oom_score_adj. Lowering it needs CAP_SYS_RESOURCE.
pub fn set_oom_score_adj(p: &Process) -> Result<()> {
    if let Some(adj) = p.oom_score_adj() {
        if let Err(e) = std::fs::write("/proc/self/oom_score_adj", adj.to_string()) {
            let hint = if e.raw_os_error() == Some(libc::EACCES)
                || e.raw_os_error() == Some(libc::EPERM)
            {
                " (a negative value needs CAP_SYS_RESOURCE, which this runtime lacks)"
            } else {
                ""
            };
            return Err(Error::invalid(format!(
                "write oomScoreAdj {adj} to /proc/self/oom_score_adj: {}{hint}",
                Errno::from_raw(e.raw_os_error().unwrap_or(0))
            )));
        }
    }
    Ok(())
}

fn to_caps(set: &Option<oci_spec::runtime::Capabilities>) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for c in set.iter().flatten() {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let cap = Capability::from_str(&name)
            .map_err(|e| Error::invalid(format!("capability {name}: {e}")))?;
        out.insert(cap);
    }
    Ok(out)
}

fn caps_err(step: &str) -> impl Fn(caps::errors::CapsError) -> Error + '_ {
    move |e| Error::invalid(format!("{step}: {e}"))
}

/// Drops the bounding set to what the config allows (while still privileged).
pub fn drop_bounding(c: Option<&LinuxCapabilities>) -> Result<()> {
    let keep = to_caps(c.map(|c| c.bounding()).unwrap_or(&None))?;
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(caps_err("drop bounding capability"))?;
        }
    }
    Ok(())
}

/// Sets effective, permitted, inheritable and ambient sets (after setuid).
pub fn set_caps(c: Option<&LinuxCapabilities>) -> Result<()> {
    let get = |f: fn(&LinuxCapabilities) -> &Option<oci_spec::runtime::Capabilities>| {
        to_caps(c.map(f).unwrap_or(&None))
    };
    let permitted = get(LinuxCapabilities::permitted)?;
    let effective = get(LinuxCapabilities::effective)?;
    let inheritable = get(LinuxCapabilities::inheritable)?;
    let ambient = get(LinuxCapabilities::ambient)?;
    caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(caps_err("set inheritable capabilities"))?;
    // Effective must stay a subset of permitted at every step: shrink it first.
    caps::set(None, CapSet::Effective, &effective)
        .map_err(caps_err("set effective capabilities"))?;
    caps::set(None, CapSet::Permitted, &permitted)
        .map_err(caps_err("set permitted capabilities"))?;
    caps::clear(None, CapSet::Ambient).map_err(caps_err("clear ambient capabilities"))?;
    for cap in ambient {
        // The kernel only allows ambient caps that are permitted and inheritable.
        if permitted.contains(&cap) && inheritable.contains(&cap) {
            caps::raise(None, CapSet::Ambient, cap)
                .map_err(caps_err("raise ambient capability"))?;
        }
    }
    Ok(())
}

/// Switches to the configured user and groups, keeping capabilities across
/// the uid change so `set_caps` can then set them exactly.
pub fn set_user(p: &Process, setgroups_allowed: bool) -> Result<()> {
    let u = p.user();
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err(Errno::last()).ctx(|| "prctl PR_SET_KEEPCAPS");
    }
    if setgroups_allowed {
        let gids: Vec<nix::unistd::Gid> = u
            .additional_gids()
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(|g| nix::unistd::Gid::from_raw(*g))
            .collect();
        nix::unistd::setgroups(&gids).ctx(|| format!("setgroups {:?}", u.additional_gids()))?;
    }
    let gid = nix::unistd::Gid::from_raw(u.gid());
    nix::unistd::setresgid(gid, gid, gid).ctx(|| format!("setgid {}", u.gid()))?;
    let uid = nix::unistd::Uid::from_raw(u.uid());
    nix::unistd::setresuid(uid, uid, uid).ctx(|| format!("setuid {}", u.uid()))?;
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    if let Some(mask) = u.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    } else {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    }
    Ok(())
}

/// Sets no_new_privs.
pub fn set_no_new_privs() -> Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(Errno::last()).ctx(|| "prctl PR_SET_NO_NEW_PRIVS");
    }
    Ok(())
}

/// chdir to the process cwd and check the result is inside the container's
/// root: a leaked host directory fd would resolve outside it (CVE-2024-21626).
pub fn enter_cwd(cwd: &Path) -> Result<()> {
    if !cwd.is_absolute() {
        return Err(Error::invalid(format!(
            "process cwd {} is not absolute",
            cwd.display()
        )));
    }
    nix::unistd::chdir(cwd).ctx(|| format!("chdir to cwd {}", cwd.display()))?;
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() && !p.starts_with("(unreachable)") => Ok(()),
        Ok(p) => Err(Error::invalid(format!(
            "cwd {} resolves outside the container ({})",
            cwd.display(),
            p.display()
        ))),
        Err(e) => Err(e).ctx(|| format!("cwd {} is outside the container", cwd.display())),
    }
}

/// The environment as C strings, and the PATH it holds.
pub fn env_of(p: &Process) -> Result<(Vec<CString>, Option<String>)> {
    let mut env = Vec::new();
    let mut path = None;
    for e in p.env().as_deref().unwrap_or(&[]) {
        if let Some(v) = e.strip_prefix("PATH=") {
            path = Some(v.to_string());
        }
        env.push(
            CString::new(e.as_bytes())
                .map_err(|_| Error::invalid(format!("env entry {e:?} contains NUL")))?,
        );
    }
    Ok((env, path))
}

/// Finds the executable as execvp would, with the container's PATH.
pub fn lookup(arg0: &str, path: Option<&str>) -> Result<PathBuf> {
    if arg0.contains('/') {
        return check_exec(Path::new(arg0)).map(|_| PathBuf::from(arg0));
    }
    let path = path.unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let cand = Path::new(dir).join(arg0);
        if check_exec(&cand).is_ok() {
            return Ok(cand);
        }
    }
    Err(Error::invalid(format!(
        "exec {arg0:?}: executable file not found in $PATH"
    )))
}

fn check_exec(p: &Path) -> Result<()> {
    let md = std::fs::metadata(p).ctx(|| format!("exec {}", p.display()))?;
    if md.is_dir() {
        return Err(Error::invalid(format!(
            "exec {}: is a directory",
            p.display()
        )));
    }
    nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).ctx(|| format!("exec {}", p.display()))
}

/// Replaces this process with the container's program.
pub fn exec(prog: &Path, args: &[String], env: &[CString]) -> Error {
    let prog_c = match CString::new(prog.as_os_str().as_encoded_bytes()) {
        Ok(c) => c,
        Err(_) => return Error::invalid("program path contains NUL"),
    };
    let argv: std::result::Result<Vec<CString>, _> =
        args.iter().map(|a| CString::new(a.as_bytes())).collect();
    let Ok(argv) = argv else {
        return Error::invalid("argument contains NUL");
    };
    match nix::unistd::execve(&prog_c, &argv, env) {
        Err(e) => Error::Sys {
            step: format!("exec {}", prog.display()),
            errno: e,
        },
        Ok(never) => match never {},
    }
}
