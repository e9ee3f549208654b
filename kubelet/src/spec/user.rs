//! The process user: the image's `User` (name or number, with an optional
//! group) resolved against the rootfs's /etc/passwd and /etc/group, read
//! with openat2(RESOLVE_IN_ROOT) so a hostile image's symlinks cannot point
//! outside its rootfs; then the pod's securityContext on top.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use super::SpecError;

/// Who the process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub username: Option<String>,
}

/// securityContext fields that choose the identity (pod level merged with
/// container level by the caller).
#[derive(Debug, Clone, Default)]
pub struct IdentityOverrides {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub supplemental_groups: Vec<i64>,
    pub fs_group: Option<i64>,
}

/// Files larger than this are not a real passwd or group file.
const MAX_DB: u64 = 4 << 20;

/// Read `rel` (e.g. "etc/passwd") inside `rootfs`; None when missing.
fn read_in_root(rootfs: &Path, rel: &str) -> Result<Option<String>, SpecError> {
    let io = |e: std::io::Error| SpecError::Io {
        step: "read",
        path: rootfs.join(rel),
        source: e,
    };
    let root: OwnedFd = File::open(rootfs).map_err(io)?.into();
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match openat2(&root, rel, how) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(io(std::io::Error::from(e))),
    };
    let file = File::from(fd);
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Ok(None);
    }
    let mut text = String::new();
    file.take(MAX_DB).read_to_string(&mut text).map_err(io)?;
    Ok(Some(text))
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

fn passwd_entries(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4).then_some(())?;
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
            })
        })
        .collect()
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn group_entries(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3).then_some(())?;
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn id_from(v: i64, what: &str) -> Result<u32, SpecError> {
    u32::try_from(v).map_err(|_| SpecError::User(format!("{what} {v} is out of range")))
}

/// Resolve the image's `User` in `rootfs`, then apply `overrides`.
pub fn resolve(
    rootfs: &Path,
    image_user: &str,
    overrides: &IdentityOverrides,
) -> Result<Identity, SpecError> {
    let (user_part, group_part) = match image_user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (image_user, None),
    };
    let passwd_text = read_in_root(rootfs, "etc/passwd")?;
    let passwd = passwd_entries(passwd_text.as_deref().unwrap_or(""));
    let group_text = read_in_root(rootfs, "etc/group")?;
    let groups = group_entries(group_text.as_deref().unwrap_or(""));

    let (mut uid, mut gid, mut username) = (0u32, 0u32, Some("root".to_string()));
    if let Some(run_as) = overrides.run_as_user {
        uid = id_from(run_as, "runAsUser")?;
        let entry = passwd.iter().find(|p| p.uid == uid);
        gid = entry.map_or(0, |p| p.gid);
        username = entry.map(|p| p.name.clone());
    } else if !user_part.is_empty() {
        if let Ok(n) = user_part.parse::<u32>() {
            uid = n;
            let entry = passwd.iter().find(|p| p.uid == n);
            gid = entry.map_or(0, |p| p.gid);
            username = entry.map(|p| p.name.clone());
        } else {
            let entry = passwd.iter().find(|p| p.name == user_part).ok_or_else(|| {
                SpecError::User(format!(
                    "unable to find user {user_part}: no matching entries in passwd file"
                ))
            })?;
            uid = entry.uid;
            gid = entry.gid;
            username = Some(entry.name.clone());
        }
    } else {
        // No user in the image: root, with root's group from passwd if listed.
        if let Some(entry) = passwd.iter().find(|p| p.uid == 0) {
            gid = entry.gid;
            username = Some(entry.name.clone());
        }
    }
    if let Some(g) = group_part
        .filter(|g| !g.is_empty())
        .filter(|_| overrides.run_as_user.is_none())
    {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| {
                    SpecError::User(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    if let Some(g) = overrides.run_as_group {
        gid = id_from(g, "runAsGroup")?;
    }
    // As containerd: the primary group, the groups listing the user, then
    // the pod's fsGroup and supplementalGroups.
    let mut additional: Vec<u32> = vec![gid];
    if let Some(name) = &username {
        additional.extend(
            groups
                .iter()
                .filter(|g| g.members.iter().any(|m| m == name))
                .map(|g| g.gid),
        );
    }
    for g in overrides
        .fs_group
        .iter()
        .chain(overrides.supplemental_groups.iter())
    {
        additional.push(id_from(*g, "supplemental group")?);
    }
    let mut seen = std::collections::HashSet::new();
    additional.retain(|g| seen.insert(*g));
    Ok(Identity {
        uid,
        gid,
        additional_gids: additional,
        username,
    })
}
