//! The content store: verified blobs, unpacked layers keyed by chain ID,
//! image records, and container leases.
//!
//! ```text
//! <root>/blobs/sha256/<hex>     verified manifests and configs
//! <root>/layers/<chainid hex>/  one unpacked layer, overlayfs lower format
//!                               (its compressed blob is not kept)
//! <root>/refs/<sha256(ref)>.json image records, written last
//! <root>/leases/<id>.json       layers a mounted container root uses
//! <root>/unsynced/<chainid hex> boot id: layer committed, maybe not on disk
//! <root>/tmp/                   partial blobs and layers (under their lock;
//!                               chattr +T, see layer_tmp)
//! <root>/locks/                 flock files
//! ```
//! Everything becomes visible by rename after it is complete, so a process
//! killed at any instant leaves only temp files, which the next holder of
//! the same lock removes or resumes.
//!
//! A kill loses nothing the kernel has; only the machine going down (power
//! loss, kernel crash) loses dirty pages. Small files (manifests, configs,
//! records) are fsynced before their rename. An unpacked layer (thousands
//! of files) is not synced before it is committed, which would cost a
//! syncfs per pull: instead a marker naming it and this boot's id is made
//! durable first, and removed by `settle` after a syncfs. Opening the store
//! in a later boot finds the markers of layers that may have been torn and
//! removes those layers and the images using them, so they are pulled
//! again rather than used half-written.
use crate::digest::{Digest, Hasher};
use crate::error::{Error, IoContext, Result};
use crate::sys;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// One layer of an image as recorded in the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LayerRecord {
    /// Digest of the compressed blob.
    pub digest: Digest,
    pub diff_id: Digest,
    pub chain_id: Digest,
    /// Compressed size.
    pub size: u64,
    pub media_type: String,
}

/// An image the store holds completely (every layer unpacked).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageRecord {
    /// Normalised reference: `docker.io/library/busybox:latest` or `name@sha256:…`.
    pub reference: String,
    /// `docker.io/library/busybox`.
    pub repository: String,
    pub tag: Option<String>,
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub layers: Vec<LayerRecord>,
    /// Compressed size of config and layers, as registries report it.
    pub size: u64,
    pub created: Option<String>,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    /// Unix seconds.
    pub pulled_at: u64,
}

impl ImageRecord {
    /// The repository as docker shows it (`busybox`, `127.0.0.1:5000/x/y`).
    pub fn familiar_repository(&self) -> String {
        crate::reference::familiar(&self.repository)
    }
}

/// What a prune removed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PruneStats {
    pub blobs: usize,
    pub layers: usize,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// An flock held until dropped.
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] OwnedFd);

impl Store {
    /// The default store root under a krun root (`/var/lib/krun` unless
    /// `--root` or `KRUN_ROOT` say otherwise).
    pub fn under(krun_root: &Path) -> Result<Store> {
        Store::open(&krun_root.join("images"))
    }

    pub fn open(root: &Path) -> Result<Store> {
        for d in [
            "blobs/sha256",
            "layers",
            "refs",
            "leases",
            "tmp",
            "locks",
            "unsynced",
        ] {
            let p = root.join(d);
            fs::create_dir_all(&p).ctx("creating store directory", &p)?;
        }
        // Layers are unpacked in tmp/: spread them over block groups (see
        // layer_tmp).
        let _ = sys::set_topdir(&root.join("tmp"));
        let store = Store {
            root: root.to_path_buf(),
        };
        store.recover()?;
        Ok(store)
    }

    fn markers(&self) -> Result<Vec<(PathBuf, String)>> {
        let dir = self.root.join("unsynced");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).ctx("listing unsynced layers", &dir)? {
            let p = e.ctx("listing unsynced layers", &dir)?.path();
            match fs::read_to_string(&p) {
                Ok(boot) => out.push((p, boot.trim().to_string())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("reading unsynced marker", p, e)),
            }
        }
        Ok(out)
    }

    /// Removes layers committed in an earlier boot that were never synced
    /// (their files may be empty or torn), and the images that use them.
    fn recover(&self) -> Result<()> {
        let boot = sys::boot_id().unwrap_or_default();
        if self.markers()?.iter().all(|(_, b)| *b == boot) {
            return Ok(());
        }
        // No pull runs while we hold this; every process that could hold it
        // shared has opened (and so recovered) the store in this boot.
        let _guard = self.lock_exclusive()?;
        let stale: Vec<PathBuf> = self
            .markers()?
            .into_iter()
            .filter(|(_, b)| *b != boot)
            .map(|(p, _)| p)
            .collect();
        let mut gone: HashSet<String> = HashSet::new();
        for m in &stale {
            let Some(hex) = m.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let layer = self.root.join("layers").join(hex);
            if layer.exists() {
                tracing::warn!(
                    layer = hex,
                    "layer was not yet on disk when the machine went down: removed"
                );
                fs::remove_dir_all(&layer).ctx("removing unsynced layer", &layer)?;
            }
            gone.insert(hex.to_string());
        }
        sync_dir(&self.root.join("layers"))?;
        for rec in self.list()? {
            if rec.layers.iter().any(|l| gone.contains(l.chain_id.hex())) {
                tracing::warn!(
                    image = rec.reference,
                    "image lost a layer when the machine went down: pull it again"
                );
                self.remove_record(&rec)?;
            }
        }
        for m in &stale {
            fs::remove_file(m).ctx("removing unsynced marker", m)?;
        }
        sync_dir(&self.root.join("unsynced"))
    }

    /// Whether some committed layer still waits for `settle`.
    pub fn unsettled(&self) -> Result<bool> {
        Ok(!self.markers()?.is_empty())
    }

    /// Makes every layer committed so far durable (one syncfs of the store's
    /// filesystem) and drops their markers. Markers made after it started
    /// stay for the next call.
    pub fn settle(&self) -> Result<()> {
        let before = self.markers()?;
        if before.is_empty() {
            return Ok(());
        }
        let dir = File::open(&self.root).ctx("opening store", &self.root)?;
        sys::syncfs(dir.as_fd()).ctx("syncing the store's filesystem", &self.root)?;
        for (m, _) in before {
            match fs::remove_file(&m) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io("removing unsynced marker", m, e))
                }
                _ => {}
            }
        }
        sync_dir(&self.root.join("unsynced"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    pub fn layer_path(&self, chain_id: &Digest) -> PathBuf {
        self.root.join("layers").join(chain_id.hex())
    }

    pub fn has_layer(&self, chain_id: &Digest) -> bool {
        self.layer_path(chain_id).is_dir()
    }

    pub(crate) fn tmp_path(&self, name: &str) -> PathBuf {
        self.root.join("tmp").join(name)
    }

    fn lock(&self, name: &str, op: i32) -> Result<Lock> {
        let p = self.root.join("locks").join(name);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&p)
            .ctx("opening lock", &p)?;
        let fd: OwnedFd = f.into();
        sys::flock(fd.as_fd(), op).ctx("locking", &p)?;
        Ok(Lock(fd))
    }

    /// Held by every pull for its whole duration; prune takes it exclusively
    /// so it never removes what a running pull just committed.
    pub fn lock_shared(&self) -> Result<Lock> {
        self.lock("store.lock", libc::LOCK_SH)
    }

    pub fn lock_exclusive(&self) -> Result<Lock> {
        self.lock("store.lock", libc::LOCK_EX)
    }

    /// Serialises work on one blob across processes.
    pub fn lock_blob(&self, d: &Digest) -> Result<Lock> {
        self.lock(&format!("blob-{}", d.hex()), libc::LOCK_EX)
    }

    /// Serialises unpacking of one layer across processes.
    pub fn lock_layer(&self, chain_id: &Digest) -> Result<Lock> {
        self.lock(&format!("layer-{}", chain_id.hex()), libc::LOCK_EX)
    }

    /// Reads a whole blob and checks it against its digest.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        let data = fs::read(&p).ctx("reading blob", &p)?;
        let actual = Digest::of(&data);
        if &actual != d {
            return Err(Error::DigestMismatch {
                what: "stored blob",
                digest: d.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(data)
    }

    /// Stores a small blob held in memory, after verifying it.
    pub fn put_blob(&self, d: &Digest, data: &[u8], what: &'static str) -> Result<()> {
        let actual = Digest::of(data);
        if &actual != d {
            return Err(Error::DigestMismatch {
                what,
                digest: d.to_string(),
                actual: actual.to_string(),
            });
        }
        if self.has_blob(d) {
            return Ok(());
        }
        let tmp = self.tmp_path(&format!("put-{}-{}", d.hex(), std::process::id()));
        write_synced(&tmp, data)?;
        let dst = self.blob_path(d);
        fs::rename(&tmp, &dst).ctx("committing blob", &dst)?;
        sync_dir(&self.root.join("blobs/sha256"))
    }

    /// Opens (or resumes) the partial download of a blob. Call with the
    /// blob's lock held.
    pub fn blob_writer(&self, d: &Digest) -> Result<BlobWriter> {
        let tmp = self.tmp_path(&format!("blob-{}.partial", d.hex()));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
            .ctx("opening partial blob", &tmp)?;
        let len = file.metadata().ctx("reading partial blob", &tmp)?.len();
        Ok(BlobWriter {
            tmp,
            file,
            hasher: Hasher::new(),
            len,
            hashed: 0,
            digest: d.clone(),
        })
    }

    /// A fresh, empty temp directory to unpack `chain_id` into, after
    /// removing what killed earlier attempts left. Call with the layer's lock
    /// held. The name differs per attempt: ext4 places a directory made in
    /// a top directory (tmp/ is one) by a hash of its name, and on an ext4
    /// without a journal, creating files among inodes freed in the last
    /// minutes costs a lookup per freed inode for every file; a new name
    /// each time lands the layer away from the last attempt's leftovers.
    pub fn layer_tmp(&self, chain_id: &Digest) -> Result<PathBuf> {
        let prefix = format!("layer-{}", chain_id.hex());
        let dir = self.root.join("tmp");
        for e in fs::read_dir(&dir).ctx("listing temp files", &dir)? {
            let e = e.ctx("listing temp files", &dir)?;
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let p = e.path();
                fs::remove_dir_all(&p).ctx("removing stale partial layer", &p)?;
            }
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = dir.join(format!("{prefix}-{}-{nanos}", std::process::id()));
        fs::create_dir(&p).ctx("creating partial layer", &p)?;
        Ok(p)
    }

    /// Makes an unpacked layer visible. Its files are not synced: a durable
    /// marker says so first (see the module comment). Without a boot id to
    /// tell a later boot from this one, the filesystem is synced instead.
    pub fn commit_layer(&self, tmp: &Path, chain_id: &Digest) -> Result<()> {
        match sys::boot_id() {
            Some(boot) => {
                let t = self.tmp_path(&format!("unsynced-{}", chain_id.hex()));
                write_synced(&t, boot.as_bytes())?;
                let m = self.root.join("unsynced").join(chain_id.hex());
                fs::rename(&t, &m).ctx("marking layer unsynced", &m)?;
                sync_dir(&self.root.join("unsynced"))?;
            }
            None => {
                let dir = File::open(tmp).ctx("opening layer", tmp)?;
                sys::syncfs(dir.as_fd()).ctx("syncing layer", tmp)?;
            }
        }
        let dst = self.layer_path(chain_id);
        fs::rename(tmp, &dst).ctx("committing layer", &dst)?;
        sync_dir(&self.root.join("layers"))
    }

    fn record_path(&self, reference: &str) -> PathBuf {
        self.root
            .join("refs")
            .join(format!("{}.json", Digest::of(reference.as_bytes()).hex()))
    }

    /// Records a complete image (the last step of a pull).
    pub fn save_record(&self, rec: &ImageRecord) -> Result<()> {
        let dst = self.record_path(&rec.reference);
        let data = serde_json::to_vec_pretty(rec).map_err(|e| Error::Config {
            path: dst.clone(),
            reason: e.to_string(),
        })?;
        let tmp = self.tmp_path(&format!(
            "ref-{}-{}",
            Digest::of(rec.reference.as_bytes()).hex(),
            std::process::id()
        ));
        write_synced(&tmp, &data)?;
        fs::rename(&tmp, &dst).ctx("committing image record", &dst)?;
        sync_dir(&self.root.join("refs"))
    }

    /// Every image record, sorted by reference.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let dir = self.root.join("refs");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).ctx("listing images", &dir)? {
            let e = e.ctx("listing images", &dir)?;
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            let data = fs::read(&p).ctx("reading image record", &p)?;
            let rec: ImageRecord = serde_json::from_slice(&data).map_err(|e| Error::Config {
                path: p.clone(),
                reason: e.to_string(),
            })?;
            out.push(rec);
        }
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    /// Finds an image by reference (normalised as docker does) or by a
    /// prefix of its ID (config digest) of at least 4 hex digits.
    pub fn find(&self, name: &str) -> Result<Option<ImageRecord>> {
        let all = self.list()?;
        if let Ok(r) = crate::reference::ImageRef::parse(name) {
            let key = r.to_string();
            if let Some(rec) = all.iter().find(|x| x.reference == key) {
                return Ok(Some(rec.clone()));
            }
        }
        let id = name.strip_prefix("sha256:").unwrap_or(name);
        if id.len() >= 4 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hits: Vec<_> = all
                .iter()
                .filter(|x| x.config_digest.hex().starts_with(id))
                .collect();
            if let Some(first) = hits.first() {
                return Ok(Some((*first).clone()));
            }
        }
        Ok(None)
    }

    /// Removes an image record; its content goes at the next prune.
    pub fn remove_record(&self, rec: &ImageRecord) -> Result<()> {
        let p = self.record_path(&rec.reference);
        fs::remove_file(&p).ctx("removing image record", &p)?;
        sync_dir(&self.root.join("refs"))
    }

    /// Records that container `id` uses these layers (kept by prune).
    pub fn add_lease(&self, id: &str, chain_ids: &[Digest]) -> Result<()> {
        let dst = self.lease_path(id)?;
        let data = serde_json::to_vec(chain_ids).map_err(|e| Error::Config {
            path: dst.clone(),
            reason: e.to_string(),
        })?;
        let tmp = self.tmp_path(&format!("lease-{id}-{}", std::process::id()));
        // Not synced: a lease protects the layers of a live container, and
        // no container outlives a power loss (the rename keeps it whole
        // against crashes and concurrent prunes).
        write_file(&tmp, &data)?;
        fs::rename(&tmp, &dst).ctx("committing lease", &dst)
    }

    pub fn remove_lease(&self, id: &str) -> Result<()> {
        let p = self.lease_path(id)?;
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("removing lease", p, e))
            }
            _ => Ok(()),
        }
    }

    fn lease_path(&self, id: &str) -> Result<PathBuf> {
        if id.is_empty()
            || id.len() > 128
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            || id.starts_with('.')
        {
            return Err(Error::Image {
                reference: id.to_string(),
                reason: "container id must be 1-128 of [A-Za-z0-9_.-], not starting with '.'"
                    .into(),
            });
        }
        Ok(self.root.join("leases").join(format!("{id}.json")))
    }

    /// Removes blobs, layers and temp files that no image record or
    /// container lease uses. Waits for running pulls to finish.
    pub fn prune(&self) -> Result<PruneStats> {
        let _guard = self.lock_exclusive()?;
        let mut blobs: HashSet<String> = HashSet::new();
        let mut layers: HashSet<String> = HashSet::new();
        for rec in self.list()? {
            blobs.insert(rec.manifest_digest.hex().to_string());
            blobs.insert(rec.config_digest.hex().to_string());
            // Layer blobs are not kept (a store written by an older krun
            // may still hold some: they go here).
            for l in &rec.layers {
                layers.insert(l.chain_id.hex().to_string());
            }
        }
        let ldir = self.root.join("leases");
        for e in fs::read_dir(&ldir).ctx("listing leases", &ldir)? {
            let p = e.ctx("listing leases", &ldir)?.path();
            let data = fs::read(&p).ctx("reading lease", &p)?;
            let ids: Vec<Digest> = serde_json::from_slice(&data).map_err(|e| Error::Config {
                path: p.clone(),
                reason: e.to_string(),
            })?;
            layers.extend(ids.iter().map(|d| d.hex().to_string()));
        }
        let mut stats = PruneStats::default();
        let bdir = self.root.join("blobs/sha256");
        for e in fs::read_dir(&bdir).ctx("listing blobs", &bdir)? {
            let e = e.ctx("listing blobs", &bdir)?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !blobs.contains(&name) {
                let p = e.path();
                stats.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(&p).ctx("removing blob", &p)?;
                stats.blobs += 1;
            }
        }
        let dir = self.root.join("layers");
        for e in fs::read_dir(&dir).ctx("listing layers", &dir)? {
            let e = e.ctx("listing layers", &dir)?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !layers.contains(&name) {
                let p = e.path();
                stats.bytes += dir_size(&p);
                fs::remove_dir_all(&p).ctx("removing layer", &p)?;
                stats.layers += 1;
            }
        }
        // No pull runs now (we hold the store lock exclusively): every temp
        // file is a leftover.
        let tdir = self.root.join("tmp");
        for e in fs::read_dir(&tdir).ctx("listing temp files", &tdir)? {
            let p = e.ctx("listing temp files", &tdir)?.path();
            let r = if p.is_dir() && !p.is_symlink() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.ctx("removing temp file", &p)?;
        }
        Ok(stats)
    }
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

fn write_file(p: &Path, data: &[u8]) -> Result<File> {
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(p)
        .ctx("creating temp file", p)?;
    f.write_all(data).ctx("writing temp file", p)?;
    Ok(f)
}

fn write_synced(p: &Path, data: &[u8]) -> Result<()> {
    write_file(p, data)?.sync_all().ctx("syncing temp file", p)
}

fn sync_dir(p: &Path) -> Result<()> {
    let f = File::open(p).ctx("opening directory", p)?;
    f.sync_all().ctx("syncing directory", p)
}

/// A layer blob being downloaded: written to a partial file (so an
/// interrupted pull resumes with a Range request) and hashed as it goes.
/// It is never committed: the layer unpacked from it is.
pub struct BlobWriter {
    tmp: PathBuf,
    file: File,
    hasher: Hasher,
    len: u64,
    hashed: u64,
    digest: Digest,
}

impl BlobWriter {
    /// Bytes already on disk from an interrupted download.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Feeds the bytes already on disk to the hasher and to `sink` (the
    /// unpacker), so a resumed download unpacks from the start.
    pub fn replay(&mut self, mut sink: impl FnMut(&[u8]) -> bool) -> Result<()> {
        self.file
            .seek(SeekFrom::Start(0))
            .ctx("reading partial blob", &self.tmp)?;
        let mut buf = vec![0u8; 256 << 10];
        let mut left = self.len;
        while left > 0 {
            let n = self
                .file
                .read(&mut buf)
                .ctx("reading partial blob", &self.tmp)?;
            if n == 0 {
                break;
            }
            let n = n.min(left as usize);
            self.hasher.update(&buf[..n]);
            self.hashed += n as u64;
            left -= n as u64;
            if !sink(&buf[..n]) {
                break;
            }
        }
        self.file
            .seek(SeekFrom::End(0))
            .ctx("reading partial blob", &self.tmp)?;
        Ok(())
    }

    /// Forgets a partial download (the registry restarted from byte 0).
    pub fn restart(&mut self) -> Result<()> {
        self.file
            .set_len(0)
            .ctx("truncating partial blob", &self.tmp)?;
        self.file
            .seek(SeekFrom::Start(0))
            .ctx("truncating partial blob", &self.tmp)?;
        self.hasher = Hasher::new();
        self.len = 0;
        self.hashed = 0;
        Ok(())
    }

    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.file.write_all(data).ctx("writing blob", &self.tmp)?;
        self.hasher.update(data);
        self.len += data.len() as u64;
        self.hashed += data.len() as u64;
        Ok(())
    }

    /// Checks the bytes so far against the digest.
    pub fn verify(&self, what: &'static str) -> Result<()> {
        let actual = self.hasher.clone().finish();
        if actual != self.digest {
            return Err(Error::DigestMismatch {
                what,
                digest: self.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }

    /// Removes the partial file: the blob never verifies, or its layer is
    /// unpacked and verified and the compressed bytes are not kept.
    pub fn discard(self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_layers_stay_marked_until_settled() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let chain = Digest::of(b"layer");
        let tmp = store.layer_tmp(&chain).unwrap();
        fs::write(tmp.join("file"), b"data").unwrap();
        store.commit_layer(&tmp, &chain).unwrap();
        assert!(store.has_layer(&chain));
        assert!(
            store.unsettled().unwrap(),
            "no marker for an unsynced layer"
        );
        store.settle().unwrap();
        assert!(!store.unsettled().unwrap());
        assert!(store.has_layer(&chain));

        // A marker from another boot: the layer goes when the store opens.
        let m = dir.path().join("unsynced").join(chain.hex());
        fs::write(&m, "another-boot").unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.has_layer(&chain));
        assert!(!store.unsettled().unwrap());
    }
}
