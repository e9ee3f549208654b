//! The kubelet's atomic writer layout for configMap, secret, downwardAPI
//! and projected volumes, so users see what they see on a node:
//!
//! ```text
//! ..2024_05_01_12_00_00.1234567/   the payload, files with their modes
//! ..data -> ..2024_05_01_12_00_00.1234567
//! key -> ..data/key                one link per top-level entry
//! ```
//!
//! A new payload goes to a new timestamped directory, `..data` is swapped
//! by rename, then the old directory and stale links are removed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One file of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Relative path -> file.
pub type Payload = BTreeMap<String, FileProjection>;

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// A payload path must stay inside the volume and not look like ours.
pub fn valid_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("invalid path: must not be empty".into());
    }
    if p.starts_with('/') {
        return Err(format!("invalid path {p:?}: must be relative"));
    }
    if p.split('/').any(|e| e == "..") {
        return Err(format!("invalid path {p:?}: must not contain '..'"));
    }
    if p.starts_with("..") {
        return Err(format!("invalid path {p:?}: must not start with '..'"));
    }
    Ok(())
}

/// The timestamped directory name, as the kubelet makes it.
fn timestamp_dir() -> String {
    let now = jiff::Timestamp::now();
    let stamp = now.strftime("%Y_%m_%d_%H_%M_%S").to_string();
    // MkdirTemp's suffix: random decimal digits (here from the clock and pid).
    let n = (now.subsec_nanosecond() as u64) ^ ((std::process::id() as u64) << 20);
    format!("..{stamp}.{}", n % 10_000_000_000)
}

fn write_file(path: &Path, f: &FileProjection) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(f.mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    file.write_all(&f.data)?;
    // exact mode, whatever the umask
    file.set_permissions(fs::Permissions::from_mode(f.mode))
}

/// Writes `payload` into `dir` (which exists) in the atomic writer layout.
pub fn write(dir: &Path, payload: &Payload) -> io::Result<()> {
    for p in payload.keys() {
        valid_path(p).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    }
    let old = fs::read_link(dir.join(DATA)).ok();
    let ts_name = timestamp_dir();
    let ts = dir.join(&ts_name);
    fs::create_dir(&ts)?;
    fs::set_permissions(&ts, fs::Permissions::from_mode(0o755))?;
    for (p, f) in payload {
        let full = ts.join(p);
        if let Some(parent) = full.parent() {
            if parent != ts {
                fs::create_dir_all(parent)?;
            }
        }
        write_file(&full, f)?;
    }
    let tmp = dir.join(DATA_TMP);
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&ts_name, &tmp)?;
    fs::rename(&tmp, dir.join(DATA))?;
    let visible: BTreeSet<String> = payload
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    for name in &visible {
        let link = dir.join(name);
        match fs::symlink_metadata(&link) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::os::unix::fs::symlink(PathBuf::from(DATA).join(name), &link)?
            }
            Err(e) => return Err(e),
        }
    }
    // links of a previous payload that this one no longer has
    for e in fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") || visible.contains(&name) {
            continue;
        }
        if e.file_type().is_ok_and(|t| t.is_symlink()) {
            let _ = fs::remove_file(e.path());
        }
    }
    if let Some(old) = old.filter(|o| o != Path::new(&ts_name)) {
        let old = dir.join(old);
        if old.parent() == Some(dir) {
            fs::remove_dir_all(old)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn file(data: &str, mode: u32) -> FileProjection {
        FileProjection {
            data: data.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn layout_as_on_a_node() {
        let d = tempfile::tempdir().unwrap();
        let mut p = Payload::new();
        p.insert("app.conf".into(), file("a=1\n", 0o644));
        p.insert("nested/deep/key".into(), file("k", 0o400));
        write(d.path(), &p).unwrap();
        let data = fs::read_link(d.path().join("..data")).unwrap();
        let name = data.to_str().unwrap();
        assert!(name.starts_with(".."), "{name}");
        let (stamp, suffix) = name[2..].split_once('.').unwrap();
        assert_eq!(stamp.len(), "2024_05_01_12_00_00".len(), "{name}");
        assert!(
            stamp.bytes().all(|b| b.is_ascii_digit() || b == b'_'),
            "{name}"
        );
        assert!(suffix.bytes().all(|b| b.is_ascii_digit()), "{name}");
        assert_eq!(
            fs::read_link(d.path().join("app.conf")).unwrap(),
            PathBuf::from("..data/app.conf")
        );
        assert_eq!(
            fs::read_link(d.path().join("nested")).unwrap(),
            PathBuf::from("..data/nested")
        );
        assert_eq!(
            fs::read_to_string(d.path().join("app.conf")).unwrap(),
            "a=1\n"
        );
        let m = fs::metadata(d.path().join("nested/deep/key")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o400);
        let ts = fs::metadata(d.path().join(&data)).unwrap();
        assert_eq!(ts.mode() & 0o7777, 0o755);

        // a second payload replaces the first; stale links go
        let mut q = Payload::new();
        q.insert("other".into(), file("o", 0o644));
        std::thread::sleep(std::time::Duration::from_millis(2));
        write(d.path(), &q).unwrap();
        assert!(fs::symlink_metadata(d.path().join("app.conf")).is_err());
        assert!(!d.path().join(&data).exists(), "old payload removed");
        assert_eq!(fs::read_to_string(d.path().join("other")).unwrap(), "o");
    }

    #[test]
    fn paths_are_checked() {
        assert!(valid_path("a/b").is_ok());
        for bad in ["", "/abs", "a/../b", "..data", "..x"] {
            assert!(valid_path(bad).is_err(), "{bad}");
        }
        let d = tempfile::tempdir().unwrap();
        let mut p = Payload::new();
        p.insert("../escape".into(), file("x", 0o644));
        assert!(write(d.path(), &p).is_err());
        assert!(!d.path().parent().unwrap().join("escape").exists());
    }
}
