//! The static-pod directory as the kubelet reads it: every non-dotfile
//! (symlinks followed) is a manifest; directories and other kinds of file
//! are skipped with a note. Each file gives its pods, admitted as static
//! pods of the node (`<name>-<node>`, a UID hashed from the pod, node,
//! file and the file's ConfigMaps/Secrets, the config annotations).
//!
//! A file that fails to load keeps the pods it gave before: a manifest
//! being written must never take a running pod down. A file changed less
//! than [`SETTLE`] ago is not read yet (an editor or `cp` may be half-way)
//! but looked at again once it has settled, unless inotify said it is
//! done: renamed into the directory (write-then-rename) or closed by its
//! writer.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::identity;
use crate::manifest::{self, Object, MAX_FILE};
use crate::podstate::DesiredPod;

/// How long a file must be left alone before it is read.
pub const SETTLE: Duration = Duration::from_millis(500);

/// One manifest file as last read.
#[derive(Debug, Default)]
pub struct FileState {
    /// sha256 of the content last read.
    digest: Option<[u8; 32]>,
    /// The pods of the content that last loaded.
    pub pods: Vec<DesiredPod>,
    /// Why the last read content does not load (it keeps `pods`).
    pub error: Option<String>,
}

/// The directory's files, by name.
#[derive(Debug)]
pub struct ManifestDir {
    pub path: PathBuf,
    pub files: BTreeMap<String, FileState>,
    /// Names skipped (directories, sockets...) already reported.
    skipped: BTreeMap<String, String>,
    missing_reported: bool,
}

/// What a refresh found.
#[derive(Debug, Default)]
pub struct Refresh {
    /// Lines to log: files that do not load, files skipped.
    pub notes: Vec<String>,
    /// Some file's pods changed (or a file came or went).
    pub changed: bool,
    /// Files still being written: look again after this.
    pub again_in: Option<Duration>,
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Loads one file's content as the pods of the node `node`.
pub fn load(
    path: &Path,
    text: &str,
    node: &str,
    now: Timestamp,
) -> Result<Vec<DesiredPod>, String> {
    let file = path.display().to_string();
    let docs = manifest::parse_str(&file, text).map_err(|e| e.to_string())?;
    let mut pods = Vec::new();
    let mut config_maps = Vec::new();
    let mut secrets = Vec::new();
    for d in docs {
        match d.object {
            Object::Pod(p) => pods.push((*p, d.index)),
            Object::ConfigMap(c) => config_maps.push(*c),
            Object::Secret(s) => secrets.push(*s),
        }
    }
    if pods.is_empty() {
        return Err(format!("{file}: no Pod in the manifest"));
    }
    let objects = if config_maps.is_empty() && secrets.is_empty() {
        Vec::new()
    } else {
        serde_json::to_vec(&(&config_maps, &secrets)).map_err(|e| format!("{file}: {e}"))?
    };
    let mut out: Vec<DesiredPod> = Vec::new();
    for (mut pod, index) in pods {
        identity::admit_static_with(&mut pod, node, &file, &objects, now)
            .map_err(|e| format!("{file}: document {index}: {e}"))?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        if out.iter().any(|d| {
            d.pod.metadata.name.as_deref() == Some(name.as_str())
                && d.pod.metadata.namespace.clone().unwrap_or_default() == ns
        }) {
            return Err(format!(
                "{file}: document {index}: pod \"{name}\" is defined twice in the file"
            ));
        }
        out.push(DesiredPod {
            pod,
            config_maps: config_maps.clone(),
            secrets: secrets.clone(),
            source: file.clone(),
        });
    }
    Ok(out)
}

impl ManifestDir {
    pub fn new(path: PathBuf) -> ManifestDir {
        ManifestDir {
            path,
            files: BTreeMap::new(),
            skipped: BTreeMap::new(),
            missing_reported: false,
        }
    }

    /// Reads the directory again: new and changed files are loaded,
    /// removed ones forgotten (their pods go).
    /// `settled` names files known to be complete (see the module).
    pub fn refresh(
        &mut self,
        node: &str,
        now: SystemTime,
        settled: &std::collections::HashSet<String>,
    ) -> Refresh {
        let mut r = Refresh::default();
        let entries = match fs::read_dir(&self.path) {
            Ok(rd) => {
                self.missing_reported = false;
                rd
            }
            Err(e) => {
                // as the kubelet: reported, and the pods of a directory
                // that cannot be read are left alone
                if !self.missing_reported {
                    self.missing_reported = true;
                    r.notes
                        .push(format!("cannot read {}: {e}", self.path.display()));
                }
                return r;
            }
        };
        let mut seen = Vec::new();
        for e in entries.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !identity::is_manifest_file(&name) {
                continue;
            }
            let path = self.path.join(&name);
            // stat follows a symlink, as the kubelet's does
            let meta = match fs::metadata(&path) {
                Ok(m) => m,
                // gone since the listing, or a dangling link
                Err(_) => continue,
            };
            if !meta.is_file() {
                let what = if meta.is_dir() {
                    "a directory (not recursed into)"
                } else {
                    "not a regular file"
                };
                if self.skipped.get(&name).map(String::as_str) != Some(what) {
                    r.notes.push(format!("ignoring {}: {what}", path.display()));
                    self.skipped.insert(name.clone(), what.into());
                }
                continue;
            }
            self.skipped.remove(&name);
            seen.push(name.clone());
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or(SETTLE);
            if age < SETTLE && !settled.contains(&name) {
                // maybe being written: keep what it gave, look again soon
                let wait = SETTLE - age;
                r.again_in = Some(r.again_in.map_or(wait, |w| w.min(wait)));
                continue;
            }
            self.read_file(&name, &path, node, &mut r);
        }
        let gone: Vec<String> = self
            .files
            .keys()
            .filter(|n| !seen.contains(n))
            .cloned()
            .collect();
        for n in gone {
            self.files.remove(&n);
            r.changed = true;
        }
        self.skipped.retain(|n, _| self.path.join(n).exists());
        r
    }

    fn read_file(&mut self, name: &str, path: &Path, node: &str, r: &mut Refresh) {
        let mut bytes = Vec::new();
        let read = fs::File::open(path).and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut bytes));
        let digest = sha256(&bytes);
        let st = self.files.entry(name.to_string()).or_default();
        if read.is_ok() && st.digest == Some(digest) {
            return;
        }
        st.digest = Some(digest);
        let loaded = match read {
            Err(e) => Err(format!("{}: {e}", path.display())),
            Ok(_) if bytes.len() as u64 > MAX_FILE => Err(format!(
                "{}: larger than {} bytes",
                path.display(),
                MAX_FILE
            )),
            Ok(_) => match String::from_utf8(bytes) {
                Err(e) => Err(format!("{}: not UTF-8 text: {e}", path.display())),
                Ok(text) => load(path, &text, node, Timestamp::now()),
            },
        };
        match loaded {
            Ok(pods) => {
                let before: Vec<_> = st.pods.iter().map(|d| d.pod.metadata.uid.clone()).collect();
                let after: Vec<_> = pods.iter().map(|d| d.pod.metadata.uid.clone()).collect();
                if before != after {
                    r.changed = true;
                }
                st.pods = pods;
                st.error = None;
            }
            Err(e) => {
                r.notes.push(if st.pods.is_empty() {
                    e.clone()
                } else {
                    format!("{e} (its running pods are left as they are)")
                });
                st.error = Some(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: app, image: busybox}]\n";

    fn settle() {
        std::thread::sleep(SETTLE + Duration::from_millis(50));
    }

    #[test]
    fn files_that_count_and_what_a_bad_write_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = ManifestDir::new(dir.path().to_path_buf());
        let none = std::collections::HashSet::new();
        fs::write(dir.path().join("web.yaml"), POD).unwrap();
        fs::write(dir.path().join(".web.yaml.swp"), "junk").unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        // just written: not read yet
        let r = m.refresh("n1", SystemTime::now(), &none);
        assert!(m.files.is_empty() && r.again_in.is_some(), "{r:?}");
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
        assert!(r.notes[0].contains("sub: a directory"), "{:?}", r.notes);
        settle();
        let r = m.refresh("n1", SystemTime::now(), &none);
        assert!(r.changed && r.notes.is_empty(), "{r:?}");
        let pods = &m.files["web.yaml"].pods;
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].pod.metadata.name.as_deref(), Some("web-n1"));
        let uid = pods[0].pod.metadata.uid.clone();
        // nothing changed: nothing to do, nothing said again
        let r = m.refresh("n1", SystemTime::now(), &none);
        assert!(!r.changed && r.notes.is_empty(), "{r:?}");
        // a half-written file: reported, the pod stays
        fs::write(
            dir.path().join("web.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web\n",
        )
        .unwrap();
        settle();
        let r = m.refresh("n1", SystemTime::now(), &none);
        assert!(!r.changed);
        assert!(r.notes[0].contains("web.yaml"), "{:?}", r.notes);
        assert!(r.notes[0].contains("left as they are"), "{:?}", r.notes);
        assert_eq!(m.files["web.yaml"].pods[0].pod.metadata.uid, uid);
        // an empty file (truncated for an in-place edit) is no pod either
        fs::write(dir.path().join("web.yaml"), "").unwrap();
        settle();
        let r = m.refresh("n1", SystemTime::now(), &none);
        assert!(
            !r.changed && r.notes[0].contains("left as they are"),
            "{r:?}"
        );
        // the finished edit: a new pod
        fs::write(
            dir.path().join("web.yaml"),
            POD.replace("busybox", "busybox:1.36"),
        )
        .unwrap();
        settle();
        let r = m.refresh("n1", SystemTime::now(), &none);
        assert!(r.changed);
        assert_ne!(m.files["web.yaml"].pods[0].pod.metadata.uid, uid);
        // a ConfigMap of the same file is part of the pod's identity
        let uid2 = m.files["web.yaml"].pods[0].pod.metadata.uid.clone();
        let cm = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n";
        fs::write(
            dir.path().join("web.yaml"),
            POD.replace("busybox", "busybox:1.36") + cm,
        )
        .unwrap();
        settle();
        assert!(m.refresh("n1", SystemTime::now(), &none).changed);
        assert_ne!(m.files["web.yaml"].pods[0].pod.metadata.uid, uid2);
        // renamed in whole: read at once
        let tmp = dir.path().join(".new");
        fs::write(&tmp, POD).unwrap();
        fs::rename(&tmp, dir.path().join("web.yaml")).unwrap();
        let done: std::collections::HashSet<String> = ["web.yaml".to_string()].into();
        assert!(m.refresh("n1", SystemTime::now(), &done).changed);
        assert_eq!(m.files["web.yaml"].pods[0].pod.metadata.uid, uid);
        // removed: its pods go
        fs::remove_file(dir.path().join("web.yaml")).unwrap();
        let r = m.refresh("n1", SystemTime::now(), &none);
        assert!(r.changed && m.files.is_empty());
    }
}
