//! The container's persisted state (`<root>/<id>/state.json`) and the
//! status derived from it and from the live system.
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::sys;

/// The runtime-spec version this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";
/// Name of the exec fifo inside the container's state directory.
pub const EXEC_FIFO: &str = "exec.fifo";

/// What `state.json` holds: the spec's state plus what later commands need.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub id: String,
    /// Host pid of the container's init process.
    pub pid: i32,
    /// Start time of `pid` (clock ticks since boot), to detect pid reuse.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    /// Cgroup path relative to each hierarchy's root.
    pub cgroup_path: String,
    /// The config the container was created from (exec, hooks and update use it).
    pub config: Spec,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
}

/// The lifecycle status, as `state` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// Checks a container id: non-empty, no path separators, not `.` or `..`.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+:@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("invalid container id {id:?}")))
    }
}

/// Directory holding one container's state.
pub fn container_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Creates the root directory (0700) when missing.
pub fn ensure_root(root: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .ctx(|| format!("create state root {}", root.display()))
}

impl State {
    /// Loads the state of container `id`, failing clearly when it does not exist.
    pub fn load(root: &Path, id: &str) -> Result<State> {
        validate_id(id)?;
        let path = container_dir(root, id).join("state.json");
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::invalid(format!("container {id} does not exist")))
            }
            Err(e) => return Err(e).ctx(|| format!("read {}", path.display())),
        };
        serde_json::from_slice(&data)
            .map_err(|e| Error::invalid(format!("parse {}: {e}", path.display())))
    }

    /// Writes the state atomically: temp file, then rename. No fsync: the
    /// state describes live processes and lives on tmpfs (/run) by default,
    /// so it has nothing to survive a crash for.
    pub fn save(&self, root: &Path) -> Result<()> {
        let dir = container_dir(root, &self.id);
        let tmp = dir.join(".state.json.tmp");
        let path = dir.join("state.json");
        let data = serde_json::to_vec(self)
            .map_err(|e| Error::invalid(format!("serialize state: {e}")))?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
            .ctx(|| format!("create {}", tmp.display()))?;
        f.write_all(&data)
            .ctx(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, &path).ctx(|| format!("rename {} to {}", tmp.display(), path.display()))
    }

    /// True while the init process recorded here is alive (and not a reused pid).
    pub fn init_alive(&self) -> bool {
        if self.pid <= 0 {
            return false;
        }
        match sys::proc_start_and_state(self.pid) {
            Some((start, st)) => start == self.pid_start && st != 'Z' && st != 'X',
            None => false,
        }
    }

    /// The current status, derived from the init process, the exec fifo and the freezer.
    pub fn status(&self, root: &Path) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if container_dir(root, &self.id).join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        if crate::cgroups::is_frozen(&self.cgroup_path) {
            return Status::Paused;
        }
        Status::Running
    }

    /// The runtime-spec state JSON (plus runc's extra fields) for `state`.
    pub fn oci_json(&self, root: &Path) -> serde_json::Value {
        let status = self.status(root);
        let mut v = serde_json::json!({
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "status": status.as_str(),
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": "",
        });
        if status != Status::Stopped {
            v["pid"] = self.pid.into();
        } else {
            v["pid"] = 0.into();
        }
        if !self.annotations.is_empty() {
            v["annotations"] = serde_json::to_value(&self.annotations).unwrap_or_default();
        }
        if crate::cgroups::oom_killed(&self.cgroup_path) {
            v["oomKilled"] = true.into();
        }
        v
    }

    /// The state passed to hooks on stdin.
    pub fn hook_json(&self, status: Status) -> String {
        self.hook_json_pid(status, self.pid)
    }

    /// The hook state with an explicit pid (the init knows its own host pid
    /// before the runtime has recorded it).
    pub fn hook_json_pid(&self, status: Status, pid: i32) -> String {
        let mut v = serde_json::json!({
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "status": status.as_str(),
            "bundle": self.bundle,
        });
        if status != Status::Stopped || pid > 0 {
            v["pid"] = pid.into();
        }
        if !self.annotations.is_empty() {
            v["annotations"] = serde_json::to_value(&self.annotations).unwrap_or_default();
        }
        v.to_string()
    }
}

/// Lists the ids of every container under `root`.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let rd = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(e).ctx(|| format!("read {}", root.display())),
    };
    for ent in rd.flatten() {
        if let Some(name) = ent.file_name().to_str() {
            if ent.path().join("state.json").exists() {
                ids.push(name.to_string());
            }
        }
    }
    ids.sort();
    Ok(ids)
}

/// Current time as RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, dd) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn ids() {
        assert!(validate_id("abc-1.2_x").is_ok());
        assert!(validate_id("../x").is_err());
        assert!(validate_id("..").is_err());
        assert!(validate_id("").is_err());
        assert!(validate_id("a/b").is_err());
    }
}
