//! The `cgroup` mount inside a container: the container's own cgroups,
//! either mounted fresh in its cgroup namespace or bind-mounted from the host.
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::mount::{mount, MsFlags};

use crate::cgroups::hier::{self, Hier};
use crate::error::{Context, Result};
use crate::mounts::{MountCtx, Options};
use crate::sys::{self, Leaf};

/// This process's cgroup path in the hierarchy with these controllers.
fn own_path(h: &Hier) -> Option<String> {
    // Read once: the init is in its cgroups before it mounts anything.
    static OWN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let data = OWN.get_or_init(|| std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default());
    for line in data.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        let matches = if h.v2 {
            ctrls.is_empty()
        } else {
            let set: Vec<&str> = ctrls.split(',').collect();
            !h.subsys.is_empty() && h.subsys.iter().all(|s| set.contains(&s.as_str()))
        };
        if matches {
            return Some(path.to_string());
        }
    }
    None
}

/// Mounts the container's cgroups at `dest`.
pub fn mount_cgroup(cx: &MountCtx<'_>, dest: &Path, opts: &Options) -> Result<()> {
    let rel = sys::rel_in_root(dest);
    let target = sys::mkdir_all_in_root(cx.rootfd.as_raw_fd(), &rel, Leaf::Dir)?;
    let flags = (opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT))
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC;
    let hs = hier::all();
    let sys_root = hs
        .iter()
        .find(|h| h.v2 && h.mountpoint == Path::new("/sys/fs/cgroup"));
    if let Some(h) = sys_root {
        // Pure v2: one cgroup2 mount.
        return mount_hier(cx, h, &rel, flags, dest);
    }
    // v1 or hybrid: a tmpfs holding one directory per hierarchy.
    mount(
        Some("tmpfs"),
        sys::fd_path(&target).as_str(),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .ctx(|| format!("mount tmpfs on {}", dest.display()))?;
    // The fresh tmpfs holds nothing but what is made here, so its
    // directories are made right in it (names are the host's mount names).
    let tmpfs = sys::open_in_root(
        cx.rootfd.as_raw_fd(),
        &rel,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )
    .ctx(|| format!("open {}", dest.display()))?;
    for h in hs
        .iter()
        .filter(|h| h.mountpoint.starts_with("/sys/fs/cgroup"))
    {
        let Some(name) = h.mountpoint.file_name() else {
            continue;
        };
        let sub = rel.join(name);
        nix::sys::stat::mkdirat(
            &tmpfs,
            name,
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        )
        .ctx(|| format!("create {}", dest.join(name).display()))?;
        mount_hier(cx, h, &sub, flags, &dest.join(name))?;
        // Comounted controllers (cpu,cpuacct) get a symlink per controller.
        let name = name.to_string_lossy();
        if name.contains(',') {
            for part in name.split(',') {
                let _ = nix::unistd::symlinkat(name.as_ref() as &str, &tmpfs, part);
            }
        }
    }
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        let t = sys::open_in_root(cx.rootfd.as_raw_fd(), &rel, libc::O_PATH, 0)
            .ctx(|| format!("open {}", dest.display()))?;
        crate::mounts::remount_bind(&t, MsFlags::MS_RDONLY | flags, MsFlags::empty(), dest)?;
    }
    Ok(())
}

fn mount_hier(cx: &MountCtx<'_>, h: &Hier, rel: &Path, flags: MsFlags, dest: &Path) -> Result<()> {
    let open = || {
        sys::open_in_root(cx.rootfd.as_raw_fd(), rel, libc::O_PATH, 0)
            .ctx(|| format!("open {}", dest.display()))
    };
    let tfd = open()?;
    let target = sys::fd_path(&tfd);
    let target = target.as_str();
    if cx.cgroupns {
        let (typ, data) = if h.v2 {
            ("cgroup2", String::new())
        } else {
            ("cgroup", h.subsys.join(","))
        };
        let r = mount(
            Some(typ),
            target,
            Some(typ),
            flags,
            (!data.is_empty()).then_some(data.as_str()),
        );
        if r.is_ok() {
            return Ok(());
        }
        if !cx.in_userns {
            return r.ctx(|| format!("mount {typ} on {}", dest.display()));
        }
    }
    // No cgroup namespace: bind the container's own cgroup directory.
    let own = own_path(h).unwrap_or_else(|| "/".to_string());
    let inner = own
        .strip_prefix(&h.mroot)
        .unwrap_or(&own)
        .trim_start_matches('/')
        .to_string();
    let src = h.mountpoint.join(inner);
    mount(
        Some(&src),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind mount {} on {}", src.display(), dest.display()))?;
    // Reopen: the old fd names the directory under the new mount.
    let mounted = open()?;
    crate::mounts::remount_bind(&mounted, flags, MsFlags::empty(), dest)
}
