//! Unpacks one layer tar into its own directory, in overlayfs format.
//!
//! Nothing is written outside the layer directory whatever the tar says:
//! every path is resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
//! against the directory's fd, names with `..` or a leading `/` are refused,
//! hardlinks must point at an earlier file of the same layer, and whiteouts
//! only name an entry of their own directory. The uncompressed size and the
//! entry count are bounded so bombs stop early.
//!
//! Speed: decompression, the diffID hash and tar parsing run on their own
//! threads, and small regular files (most of an image) are created by a pool
//! of workers, because file creation, not decompression, dominates here.
//! Directory metadata is applied last, so creating children does not
//! disturb it and setgid parents do not change children's groups.
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::sys;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

/// How a layer blob is compressed (from its media type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Bounds that stop decompression and entry-count bombs.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most uncompressed bytes one layer may expand to.
    pub max_bytes: u64,
    /// Most tar entries one layer may hold.
    pub max_entries: u64,
    /// Most uncompressed bytes per compressed byte, checked once a layer
    /// has expanded past `ratio_after` (real layers stay far below 100:1;
    /// gzip of zeros is about 1000:1).
    pub max_ratio: u64,
    pub ratio_after: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 8 << 30,
            max_entries: 1_000_000,
            max_ratio: 100,
            ratio_after: 256 << 20,
        }
    }
}

/// What unpacking a layer produced.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Uncompressed size in bytes.
    pub size: u64,
    pub entries: u64,
}

/// Regular files up to this size are buffered and handed to the worker pool.
const INLINE_MAX: u64 = 256 << 10;
const CHUNK: usize = 256 << 10;
const OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";

/// Unpacks the (compressed) layer read from `blob` into the empty directory
/// `dest`. `layer` names the layer in errors.
pub fn unpack_layer<R: Read + Send>(
    blob: R,
    compression: Compression,
    dest: &Path,
    limits: &Limits,
    layer: &str,
) -> Result<Unpacked> {
    let root = sys::open_path(dest, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .map_err(|e| Error::io("opening layer directory", dest, e))?;
    let workers = std::thread::available_parallelism()
        .map(|n| n.get() * 4)
        .unwrap_or(8)
        .clamp(4, 16);

    std::thread::scope(|s| {
        // Decompressor → (hasher, parser), as shared chunks.
        let (to_parser, parser_rx) = sync_channel::<io::Result<Arc<Vec<u8>>>>(64);
        let (to_hasher, hasher_rx) = sync_channel::<Arc<Vec<u8>>>(64);
        let lim = limits.clone();
        let decomp =
            s.spawn(move || decompress(blob, compression, &lim, to_parser, to_hasher, layer));
        let hasher = s.spawn(move || {
            let mut h = Hasher::new();
            for c in hasher_rx {
                h.update(&c);
            }
            h.finish()
        });

        let pool = Pool::new(root.as_fd(), layer);
        let result = std::thread::scope(|ws| {
            let (job_tx, job_rx) = sync_channel::<Job>(256);
            let job_rx = Arc::new(Mutex::new(job_rx));
            for _ in 0..workers {
                let rx = job_rx.clone();
                let pool = &pool;
                ws.spawn(move || pool.work(rx));
            }
            let mut reader = ChannelReader::new(parser_rx);
            let mut parser = Parser::new(&pool, job_tx, layer, limits.max_entries);
            let r = parser.run(&mut reader);
            let r = r.and_then(|entries| {
                // Anything after the end-of-archive blocks still counts in the diffID.
                io::copy(&mut reader, &mut io::sink()).map_err(|e| stream_error(layer, e))?;
                parser.finish()?;
                Ok(entries)
            });
            drop(parser);
            r
        });
        let dres = decomp.join();
        let diff_id = hasher.join();
        let pool_err = pool.take_error();
        let entries = match (result, pool_err) {
            (_, Some(e)) => return Err(e),
            (Err(e), None) => {
                // A decompressor error explains a parser error better.
                if let Ok(Err(de)) = dres {
                    return Err(de);
                }
                return Err(e);
            }
            (Ok(n), None) => n,
        };
        let size = match dres {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::Layer {
                    layer: layer.to_string(),
                    reason: "decompressor thread panicked".into(),
                })
            }
        };
        let diff_id = diff_id.map_err(|_| Error::Layer {
            layer: layer.to_string(),
            reason: "hasher thread panicked".into(),
        })?;
        Ok(Unpacked {
            diff_id,
            size,
            entries,
        })
    })
}

fn stream_error(layer: &str, e: io::Error) -> Error {
    Error::Layer {
        layer: layer.to_string(),
        reason: format!("reading layer stream: {e}"),
    }
}

/// Decompresses `blob`, counting and bounding the output, and fans chunks out
/// to the hasher and the parser. Returns the uncompressed size.
fn decompress<R: Read>(
    blob: R,
    compression: Compression,
    limits: &Limits,
    to_parser: SyncSender<io::Result<Arc<Vec<u8>>>>,
    to_hasher: SyncSender<Arc<Vec<u8>>>,
    layer: &str,
) -> Result<u64> {
    let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let blob = io::BufReader::with_capacity(
        CHUNK,
        Counting {
            inner: blob,
            n: read.clone(),
        },
    );
    let mut src: Box<dyn Read> = match compression {
        Compression::None => Box::new(blob),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(blob)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(blob).map_err(|e| stream_error(layer, e))?,
        ),
    };
    let mut total: u64 = 0;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut filled = 0;
        // Fill whole chunks: fewer, larger messages.
        while filled < CHUNK {
            match src.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let msg = format!("{e}");
                    let _ = to_parser.send(Err(io::Error::other(msg.clone())));
                    return Err(Error::Layer {
                        layer: layer.to_string(),
                        reason: format!("decompressing: {msg}"),
                    });
                }
            }
        }
        if filled == 0 {
            return Ok(total);
        }
        total += filled as u64;
        let compressed = read.load(Ordering::Relaxed).max(1);
        let over_ratio = limits.max_ratio > 0
            && total > limits.ratio_after
            && total / compressed > limits.max_ratio;
        if total > limits.max_bytes || over_ratio {
            let reason = if over_ratio {
                format!(
                    "expands more than {}:1 ({total} bytes from {compressed}): refused as a decompression bomb",
                    limits.max_ratio
                )
            } else {
                format!(
                    "uncompressed size exceeds the limit of {} bytes: refused as a decompression bomb",
                    limits.max_bytes
                )
            };
            let _ = to_parser.send(Err(io::Error::other(reason.clone())));
            return Err(Error::Layer {
                layer: layer.to_string(),
                reason,
            });
        }
        buf.truncate(filled);
        let chunk = Arc::new(buf);
        if to_hasher.send(chunk.clone()).is_err() || to_parser.send(Ok(chunk)).is_err() {
            // The parser stopped (its error is the one to report); still drain
            // nothing more.
            return Ok(total);
        }
    }
}

/// Counts the compressed bytes read, for the expansion-ratio limit.
struct Counting<R> {
    inner: R,
    n: Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Read over a channel of shared chunks.
struct ChannelReader {
    rx: Receiver<io::Result<Arc<Vec<u8>>>>,
    cur: Arc<Vec<u8>>,
    pos: usize,
}

impl ChannelReader {
    fn new(rx: Receiver<io::Result<Arc<Vec<u8>>>>) -> Self {
        ChannelReader {
            rx,
            cur: Arc::new(Vec::new()),
            pos: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(c)) => {
                    self.cur = c;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Ownership, mode, mtime and xattrs of one entry.
#[derive(Debug, Clone, Default)]
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
    xattrs: Vec<(CString, Vec<u8>)>,
}

enum Job {
    File {
        path: CString,
        data: Vec<u8>,
        meta: Meta,
    },
    DirMeta {
        path: CString,
        meta: Meta,
    },
    /// Symlinks and device nodes: nothing later in the layer resolves
    /// through them (paths never follow symlinks), so they can go in parallel.
    Special {
        parent: CString,
        name: CString,
        path: CString,
        kind: Special,
        meta: Meta,
    },
}

enum Special {
    Symlink(CString),
    Node { mode: u32, dev: u64 },
}

/// Shared state of the file-creating workers.
struct Pool<'a> {
    root: BorrowedFd<'a>,
    layer: &'a str,
    umask: u32,
    euid: u32,
    egid: u32,
    pending: Mutex<usize>,
    idle: Condvar,
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
    live: AtomicUsize,
}

impl<'a> Pool<'a> {
    fn new(root: BorrowedFd<'a>, layer: &'a str) -> Self {
        Pool {
            root,
            layer,
            umask: sys::current_umask(),
            // SAFETY: no preconditions.
            euid: unsafe { libc::geteuid() },
            // SAFETY: no preconditions.
            egid: unsafe { libc::getegid() },
            pending: Mutex::new(0),
            idle: Condvar::new(),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            live: AtomicUsize::new(0),
        }
    }

    fn work(&self, rx: Arc<Mutex<Receiver<Job>>>) {
        self.live.fetch_add(1, Ordering::Relaxed);
        loop {
            let job = match rx.lock() {
                Ok(r) => r.recv(),
                Err(_) => break,
            };
            let Ok(job) = job else { break };
            if !self.failed.load(Ordering::Relaxed) {
                if let Err(e) = self.run(job) {
                    self.fail(e);
                }
            }
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            *p -= 1;
            if *p == 0 {
                self.idle.notify_all();
            }
        }
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    fn fail(&self, e: Error) {
        self.failed.store(true, Ordering::Relaxed);
        let mut slot = self.error.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    fn take_error(&self) -> Option<Error> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn entry_err(&self, path: &CStr, what: &str, e: io::Error) -> Error {
        Error::Entry {
            layer: self.layer.to_string(),
            entry: String::from_utf8_lossy(path.to_bytes()).into_owned(),
            reason: format!("{what}: {}", explain(&e)),
        }
    }

    fn run(&self, job: Job) -> Result<()> {
        match job {
            Job::File { path, data, meta } => {
                let fd = self.create_file(&path, &meta)?;
                let mut f = std::fs::File::from(fd);
                f.write_all(&data)
                    .map_err(|e| self.entry_err(&path, "writing", e))?;
                self.apply_fd_meta(f.as_fd(), &path, &meta, self.file_created_mode(&meta))
            }
            Job::DirMeta { path, meta } => {
                let p: &CStr = if path.is_empty() { c"." } else { &path };
                let fd = sys::openat2(
                    self.root,
                    p,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                    sys::RESOLVE_STRICT,
                )
                .map_err(|e| self.entry_err(&path, "opening directory", e))?;
                self.apply_fd_meta(fd.as_fd(), &path, &meta, 0o755 & !self.umask)
            }
            Job::Special {
                parent,
                name,
                path,
                kind,
                meta,
            } => {
                let dir = sys::open_dir_path(self.root, &parent)
                    .map_err(|e| self.entry_err(&path, "opening parent directory", e))?;
                match kind {
                    Special::Symlink(target) => {
                        sys::symlinkat(&target, dir.as_fd(), &name)
                            .map_err(|e| self.entry_err(&path, "creating symlink", e))?;
                        self.apply_at_meta(dir.as_fd(), &name, &path, &meta, true)
                    }
                    Special::Node { mode, dev } => {
                        sys::mknodat(dir.as_fd(), &name, mode, dev)
                            .map_err(|e| self.entry_err(&path, "creating device node", e))?;
                        self.apply_at_meta(dir.as_fd(), &name, &path, &meta, false)
                    }
                }
            }
        }
    }

    fn file_created_mode(&self, meta: &Meta) -> u32 {
        meta.mode & 0o7777 & !self.umask
    }

    fn create_file(&self, path: &CStr, meta: &Meta) -> Result<OwnedFd> {
        sys::openat2(
            self.root,
            path,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            meta.mode & 0o7777,
            sys::RESOLVE_STRICT,
        )
        .map_err(|e| self.entry_err(path, "creating file", e))
    }

    /// chown, then chmod (chown clears setuid/setgid), then xattrs (chown
    /// clears security.capability), then mtime.
    fn apply_fd_meta(
        &self,
        fd: BorrowedFd<'_>,
        path: &CStr,
        meta: &Meta,
        created: u32,
    ) -> Result<()> {
        let chowned = meta.uid != self.euid || meta.gid != self.egid;
        if chowned {
            sys::fchown(fd, meta.uid, meta.gid).map_err(|e| self.entry_err(path, "chown", e))?;
        }
        let want = meta.mode & 0o7777;
        if want != created || (chowned && want & 0o6000 != 0) {
            sys::fchmod(fd, want).map_err(|e| self.entry_err(path, "chmod", e))?;
        }
        for (name, value) in &meta.xattrs {
            if let Err(e) = sys::fsetxattr(fd, name, value) {
                if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                    return Err(self.entry_err(path, "setting xattr", e));
                }
                tracing::warn!(
                    layer = self.layer,
                    ?name,
                    "xattr not supported here, skipped"
                );
            }
        }
        sys::futimens(fd, meta.mtime).map_err(|e| self.entry_err(path, "setting mtime", e))
    }

    /// Metadata for entries that cannot be opened (symlinks, devices, fifos).
    fn apply_at_meta(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        path: &CStr,
        meta: &Meta,
        symlink: bool,
    ) -> Result<()> {
        let chowned = meta.uid != self.euid || meta.gid != self.egid;
        if chowned {
            sys::fchownat_nofollow(dir, name, meta.uid, meta.gid)
                .map_err(|e| self.entry_err(path, "chown", e))?;
        }
        if !symlink {
            let want = meta.mode & 0o7777;
            if want != want & !self.umask || (chowned && want & 0o6000 != 0) {
                sys::fchmodat(dir, name, want).map_err(|e| self.entry_err(path, "chmod", e))?;
            }
        }
        for (xname, value) in &meta.xattrs {
            if let Err(e) = sys::lsetxattr_at(dir, name, xname, value) {
                if e.raw_os_error() != Some(libc::EOPNOTSUPP)
                    && e.raw_os_error() != Some(libc::EPERM)
                {
                    return Err(self.entry_err(path, "setting xattr", e));
                }
                tracing::warn!(
                    layer = self.layer,
                    ?xname,
                    "xattr not supported on this entry, skipped"
                );
            }
        }
        sys::utimensat_nofollow(dir, name, meta.mtime)
            .map_err(|e| self.entry_err(path, "setting mtime", e))
    }

    fn submit(&self, tx: &SyncSender<Job>, job: Job) -> Result<()> {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        if tx.send(job).is_err() {
            *self.pending.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
            return Err(Error::Layer {
                layer: self.layer.to_string(),
                reason: "file workers stopped".into(),
            });
        }
        Ok(())
    }

    /// Waits until every submitted job is done (before hardlinks and
    /// replacements, which depend on earlier entries being on disk).
    fn barrier(&self) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        while *p > 0 {
            p = self.idle.wait(p).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn explain(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ELOOP) => "path goes through a symlink (refused)".into(),
        Some(libc::EXDEV) => "path leaves the layer directory (refused)".into(),
        _ => e.to_string(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    Other,
}

struct Parser<'p, 'a> {
    pool: &'p Pool<'a>,
    tx: Option<SyncSender<Job>>,
    layer: &'a str,
    max_entries: u64,
    /// Everything this layer created so far: the only content of the
    /// directory, so it is authoritative.
    seen: HashMap<Vec<u8>, Kind>,
    dir_meta: HashMap<Vec<u8>, Meta>,
}

impl<'p, 'a> Parser<'p, 'a> {
    fn new(pool: &'p Pool<'a>, tx: SyncSender<Job>, layer: &'a str, max_entries: u64) -> Self {
        let mut seen = HashMap::new();
        seen.insert(Vec::new(), Kind::Dir);
        Parser {
            pool,
            tx: Some(tx),
            layer,
            max_entries,
            seen,
            dir_meta: HashMap::new(),
        }
    }

    fn err(&self, entry: &[u8], reason: impl Into<String>) -> Error {
        Error::Entry {
            layer: self.layer.to_string(),
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.into(),
        }
    }

    fn check_pool(&self) -> Result<()> {
        if self.pool.failed.load(Ordering::Relaxed) {
            return Err(self.pool.take_error().unwrap_or_else(|| Error::Layer {
                layer: self.layer.to_string(),
                reason: "file worker failed".into(),
            }));
        }
        Ok(())
    }

    fn run<R: Read>(&mut self, reader: R) -> Result<u64> {
        let mut archive = tar::Archive::new(reader);
        let mut count: u64 = 0;
        let entries = archive.entries().map_err(|e| stream_error(self.layer, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| stream_error(self.layer, e))?;
            count += 1;
            if count > self.max_entries {
                return Err(Error::Layer {
                    layer: self.layer.to_string(),
                    reason: format!("more than {} entries (limit)", self.max_entries),
                });
            }
            self.check_pool()?;
            self.entry(&mut entry)?;
        }
        Ok(count)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let etype = entry.header().entry_type();
        if matches!(
            etype,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let comps = normalize(&raw).map_err(|r| self.err(&raw, r))?;
        let meta = self.meta(entry, &raw)?;
        let is_dir = etype == tar::EntryType::Directory
            || (raw.ends_with(b"/") && matches!(etype, tar::EntryType::Regular));
        if comps.is_empty() {
            if !is_dir {
                return Err(self.err(&raw, "the layer root must be a directory"));
            }
            self.dir_meta.insert(Vec::new(), meta);
            return Ok(());
        }
        let (parent, name) = comps.split_at(comps.len() - 1);
        let name = name[0];
        let parent_path = parent.join(&b'/');

        // Whiteouts: only ever a name in their own directory.
        if let Some(target) = name.strip_prefix(b".wh.") {
            self.ensure_dirs(parent, &raw)?;
            if target == b".wh..opq" {
                let p = cstr(&parent_path);
                let fd = sys::openat2(
                    self.pool.root,
                    if p.is_empty() { c"." } else { &p },
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                    sys::RESOLVE_STRICT,
                )
                .map_err(|e| {
                    self.err(&raw, format!("opening opaque directory: {}", explain(&e)))
                })?;
                sys::fsetxattr(fd.as_fd(), OPAQUE_XATTR, b"y")
                    .map_err(|e| self.err(&raw, format!("marking directory opaque: {e}")))?;
                return Ok(());
            }
            if target.starts_with(b".wh.") {
                // aufs bookkeeping (.wh..wh.plnk etc.): not content.
                return Ok(());
            }
            if target.is_empty() || target == b"." || target == b".." || target.contains(&b'/') {
                return Err(self.err(&raw, "whiteout does not name an entry of its own directory"));
            }
            let mut path = parent_path.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(target);
            self.replace_existing(&path, false, &raw)?;
            let dir = self.parent_fd(&parent_path, &raw)?;
            sys::mknodat(dir.as_fd(), &cstr(target), libc::S_IFCHR, 0)
                .map_err(|e| self.err(&raw, format!("creating whiteout: {}", explain(&e))))?;
            self.seen.insert(path, Kind::Other);
            return Ok(());
        }

        let path = comps.join(&b'/');
        self.ensure_dirs(parent, &raw)?;
        if is_dir {
            if self.seen.get(&path) != Some(&Kind::Dir) {
                self.replace_existing(&path, true, &raw)?;
                let dir = self.parent_fd(&parent_path, &raw)?;
                sys::mkdirat(dir.as_fd(), &cstr(name), 0o755)
                    .map_err(|e| self.err(&raw, format!("creating directory: {}", explain(&e))))?;
                self.seen.insert(path.clone(), Kind::Dir);
            }
            self.dir_meta.insert(path, meta);
            return Ok(());
        }
        self.replace_existing(&path, false, &raw)?;
        let cname = cstr(name);
        match etype {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let size = entry.size();
                if size <= INLINE_MAX {
                    let mut data = Vec::with_capacity(size as usize);
                    entry
                        .read_to_end(&mut data)
                        .map_err(|e| stream_error(self.layer, e))?;
                    let job = Job::File {
                        path: cstr(&path),
                        data,
                        meta,
                    };
                    self.submit(job)?;
                } else {
                    let cpath = cstr(&path);
                    let fd = self.pool.create_file(&cpath, &meta)?;
                    let mut f = std::fs::File::from(fd);
                    copy_data(entry, &mut f).map_err(|e| match e {
                        CopyError::Read(e) => stream_error(self.layer, e),
                        CopyError::Write(e) => self.err(&raw, format!("writing: {e}")),
                    })?;
                    self.pool.apply_fd_meta(
                        f.as_fd(),
                        &cpath,
                        &meta,
                        self.pool.file_created_mode(&meta),
                    )?;
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.err(&raw, "symlink without a target"))?
                    .into_owned();
                // Stored verbatim: a symlink is only ever followed inside the
                // container's own root.
                let job = Job::Special {
                    parent: cstr(&parent_path),
                    name: cname.clone(),
                    path: cstr(&path),
                    kind: Special::Symlink(cstr(&target)),
                    meta,
                };
                self.submit(job)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.err(&raw, "hardlink without a target"))?
                    .into_owned();
                let tcomps = normalize(&target)
                    .map_err(|r| self.err(&raw, format!("hardlink target: {r}")))?;
                let tpath = tcomps.join(&b'/');
                if self.seen.get(&tpath) != Some(&Kind::Other) {
                    return Err(self.err(
                        &raw,
                        format!(
                            "hardlink target {:?} is not an earlier file of this layer",
                            String::from_utf8_lossy(&target)
                        ),
                    ));
                }
                self.pool.barrier();
                self.check_pool()?;
                let src = sys::openat2(
                    self.pool.root,
                    &cstr(&tpath),
                    libc::O_PATH | libc::O_NOFOLLOW,
                    0,
                    sys::RESOLVE_STRICT,
                )
                .map_err(|e| self.err(&raw, format!("opening hardlink target: {}", explain(&e))))?;
                let dir = self.parent_fd(&parent_path, &raw)?;
                sys::link_fd(src.as_fd(), dir.as_fd(), &cname)
                    .map_err(|e| self.err(&raw, format!("creating hardlink: {e}")))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let h = entry.header();
                let kind = match etype {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let dev = if kind == libc::S_IFIFO {
                    0
                } else {
                    let major = h.device_major().ok().flatten().unwrap_or(0);
                    let minor = h.device_minor().ok().flatten().unwrap_or(0);
                    libc::makedev(major, minor)
                };
                let job = Job::Special {
                    parent: cstr(&parent_path),
                    name: cname.clone(),
                    path: cstr(&path),
                    kind: Special::Node {
                        mode: kind | (meta.mode & 0o7777),
                        dev,
                    },
                    meta,
                };
                self.submit(job)?;
            }
            other => {
                return Err(self.err(&raw, format!("unsupported tar entry type {other:?}")));
            }
        }
        self.seen.insert(path, Kind::Other);
        Ok(())
    }

    fn submit(&self, job: Job) -> Result<()> {
        match &self.tx {
            Some(tx) => self.pool.submit(tx, job),
            None => unreachable_pool(self.layer),
        }
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, raw: &[u8]) -> Result<Meta> {
        let h = entry.header();
        let mut m = Meta {
            uid: h.uid().unwrap_or(0) as u32,
            gid: h.gid().unwrap_or(0) as u32,
            mode: h.mode().unwrap_or(0o644),
            mtime: h.mtime().unwrap_or(0) as i64,
            xattrs: Vec::new(),
        };
        let pax = entry
            .pax_extensions()
            .map_err(|e| self.err(raw, format!("reading PAX header: {e}")))?;
        if let Some(pax) = pax {
            for ext in pax {
                let ext = ext.map_err(|e| self.err(raw, format!("reading PAX header: {e}")))?;
                let Ok(key) = ext.key() else { continue };
                let val = ext.value_bytes();
                let num = || std::str::from_utf8(val).ok().map(str::trim);
                match key {
                    "uid" => {
                        if let Some(v) = num().and_then(|v| v.parse().ok()) {
                            m.uid = v;
                        }
                    }
                    "gid" => {
                        if let Some(v) = num().and_then(|v| v.parse().ok()) {
                            m.gid = v;
                        }
                    }
                    "mtime" => {
                        if let Some(v) = num().and_then(|v| v.split('.').next()?.parse().ok()) {
                            m.mtime = v;
                        }
                    }
                    _ => {
                        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                            // Overlay metadata from a tar would let a layer forge
                            // opaque dirs or redirects: never applied.
                            if name.starts_with("trusted.overlay.") {
                                tracing::warn!(
                                    layer = self.layer,
                                    name,
                                    "dropping overlay xattr from layer"
                                );
                                continue;
                            }
                            let Ok(cname) = CString::new(name) else {
                                continue;
                            };
                            m.xattrs.push((cname, val.to_vec()));
                        }
                    }
                }
            }
        }
        Ok(m)
    }

    /// Creates the missing parents of an entry (tars may omit them).
    fn ensure_dirs(&mut self, parent: &[&[u8]], raw: &[u8]) -> Result<()> {
        for i in 1..=parent.len() {
            let prefix = parent[..i].join(&b'/');
            match self.seen.get(&prefix) {
                Some(Kind::Dir) => continue,
                Some(Kind::Other) => {
                    return Err(self.err(
                        raw,
                        format!(
                            "parent {:?} is not a directory (refused)",
                            String::from_utf8_lossy(&prefix)
                        ),
                    ))
                }
                None => {}
            }
            let up = parent[..i - 1].join(&b'/');
            let dir = self.parent_fd(&up, raw)?;
            match sys::mkdirat(dir.as_fd(), &cstr(parent[i - 1]), 0o755) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => {
                    return Err(self.err(raw, format!("creating parent directory: {}", explain(&e))))
                }
            }
            self.seen.insert(prefix, Kind::Dir);
        }
        Ok(())
    }

    fn parent_fd(&self, parent: &[u8], raw: &[u8]) -> Result<OwnedFd> {
        sys::open_dir_path(self.pool.root, &cstr(parent))
            .map_err(|e| self.err(raw, format!("opening parent directory: {}", explain(&e))))
    }

    /// A later entry for the same path replaces the earlier one (a directory
    /// over a directory only updates its metadata, handled by the caller).
    fn replace_existing(&mut self, path: &[u8], new_is_dir: bool, raw: &[u8]) -> Result<()> {
        let Some(&old) = self.seen.get(path) else {
            return Ok(());
        };
        if old == Kind::Dir && new_is_dir {
            return Ok(());
        }
        self.pool.barrier();
        self.check_pool()?;
        let (parent, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (&path[..0], path),
        };
        let dir = self.parent_fd(parent, raw)?;
        if old == Kind::Dir {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&dir);
            let p = std::path::PathBuf::from(format!("/proc/self/fd/{fd}")).join(
                std::ffi::OsStr::new(std::str::from_utf8(name).unwrap_or("")),
            );
            if std::str::from_utf8(name).is_err() {
                return Err(self.err(raw, "cannot replace a directory with a non-UTF-8 name"));
            }
            std::fs::remove_dir_all(&p)
                .map_err(|e| self.err(raw, format!("replacing directory: {e}")))?;
            let mut prefix = path.to_vec();
            prefix.push(b'/');
            self.seen.retain(|k, _| !k.starts_with(&prefix));
            self.dir_meta
                .retain(|k, _| !k.starts_with(&prefix) && k.as_slice() != path);
        } else {
            sys::unlinkat(dir.as_fd(), &cstr(name), false)
                .map_err(|e| self.err(raw, format!("replacing earlier entry: {e}")))?;
        }
        self.seen.remove(path);
        Ok(())
    }

    /// Waits for the file workers, then applies directory metadata.
    fn finish(&mut self) -> Result<()> {
        self.pool.barrier();
        self.check_pool()?;
        let tx = self.tx.take();
        if let Some(tx) = &tx {
            for (path, meta) in std::mem::take(&mut self.dir_meta) {
                self.pool.submit(
                    tx,
                    Job::DirMeta {
                        path: cstr(&path),
                        meta,
                    },
                )?;
            }
        }
        self.pool.barrier();
        drop(tx);
        self.check_pool()
    }
}

fn unreachable_pool(layer: &str) -> Result<()> {
    Err(Error::Layer {
        layer: layer.to_string(),
        reason: "file workers already stopped".into(),
    })
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

fn copy_data<R: Read, W: Write>(r: &mut R, w: &mut W) -> std::result::Result<(), CopyError> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        w.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
}

/// Splits a tar path into components, dropping `.` and empty ones; refuses
/// absolute paths and `..` instead of silently clamping them.
fn normalize(raw: &[u8]) -> std::result::Result<Vec<&[u8]>, String> {
    if raw.starts_with(b"/") {
        return Err("absolute path (refused)".into());
    }
    if raw.contains(&0) {
        return Err("path contains a NUL byte (refused)".into());
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path contains .. (refused)".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn cstr(b: &[u8]) -> CString {
    // Tar names cannot hold NUL (the header is NUL-terminated), and PAX
    // names with NUL are cut at it.
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    CString::new(&b[..end]).unwrap_or_default()
}
