//! Container logs in the CRI format the kubelet reads
//! (`<RFC3339Nano> stdout|stderr P|F <content>`), one file per container
//! start at `<root>/<ns>_<pod>_<uid>/<container>/<restart>.log`, rotated at
//! 10 MiB keeping 5 files, and read back for `logs --tail/--timestamps/-f`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use jiff::Timestamp;

/// Where kubelets keep pod logs.
pub const DEFAULT_ROOT: &str = "/var/log/pods";
/// containerLogMaxSize.
pub const MAX_SIZE: u64 = 10 * 1024 * 1024;
/// containerLogMaxFiles (the live file included).
pub const MAX_FILES: usize = 5;
/// containerd's max_container_log_line_size: longer lines are split into
/// partial (P) records.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

type Result<T> = std::result::Result<T, LogError>;

fn io_err<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |source| LogError::Io {
        step,
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// `<root>/<namespace>_<pod>_<uid>`
pub fn pod_dir(root: &Path, namespace: &str, pod: &str, uid: &str) -> PathBuf {
    root.join(format!("{namespace}_{pod}_{uid}"))
}

/// `<pod dir>/<container>/<restart>.log`
pub fn container_log(pod_dir: &Path, container: &str, restart: u32) -> PathBuf {
    pod_dir.join(container).join(format!("{restart}.log"))
}

/// Go's time.RFC3339Nano in UTC: fraction without trailing zeros.
pub fn rfc3339_nano(t: Timestamp) -> String {
    let secs = t.as_second();
    let nanos = t.subsec_nanosecond();
    let whole = Timestamp::from_second(secs).unwrap_or(t);
    let base = whole.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

/// Rotation limits; the defaults are the kubelet's.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    pub max_size: u64,
    pub max_files: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_size: MAX_SIZE,
            max_files: MAX_FILES,
        }
    }
}

/// Writes one container start's stdout and stderr into its log file.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Rotation,
    /// Bytes of an unfinished line, per stream.
    pending: [Vec<u8>; 2],
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err("open log", path))
}

impl LogWriter {
    /// Open (or continue) the log file at `path`, creating its directory.
    pub fn open(path: &Path, rotation: Rotation) -> Result<LogWriter> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err("create log directory", dir))?;
        }
        let file = open_append(path)?;
        let size = file.metadata().map_err(io_err("stat log", path))?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            rotation,
            pending: [Vec::new(), Vec::new()],
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Take output read from a stream at `now`: each complete line becomes
    /// an F record; a line reaching MAX_LINE bytes is cut into P records.
    pub fn write(&mut self, stream: Stream, data: &[u8], now: Timestamp) -> Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            let buf = &mut self.pending[stream.index()];
            let room = MAX_LINE - buf.len();
            let window = &rest[..rest.len().min(room)];
            if let Some(nl) = window.iter().position(|b| *b == b'\n') {
                buf.extend_from_slice(&window[..nl]);
                rest = &rest[nl + 1..];
                let line = std::mem::take(buf);
                self.record(stream, 'F', &line, now)?;
            } else {
                buf.extend_from_slice(window);
                rest = &rest[window.len()..];
                if buf.len() == MAX_LINE {
                    let line = std::mem::take(buf);
                    self.record(stream, 'P', &line, now)?;
                }
            }
        }
        Ok(())
    }

    /// The stream ended: an unfinished last line is written as a full one.
    pub fn finish(&mut self, stream: Stream, now: Timestamp) -> Result<()> {
        let line = std::mem::take(&mut self.pending[stream.index()]);
        if !line.is_empty() {
            self.record(stream, 'F', &line, now)?;
        }
        Ok(())
    }

    fn record(&mut self, stream: Stream, tag: char, content: &[u8], now: Timestamp) -> Result<()> {
        let mut rec = format!("{} {} {tag} ", rfc3339_nano(now), stream.as_str()).into_bytes();
        rec.extend_from_slice(content);
        rec.push(b'\n');
        if self.size > 0 && self.size + rec.len() as u64 > self.rotation.max_size {
            self.rotate(now)?;
        }
        self.file
            .write_all(&rec)
            .map_err(io_err("write log", &self.path))?;
        self.size += rec.len() as u64;
        Ok(())
    }

    /// Rename the live file to `<name>.<YYYYMMDD-HHMMSS>` (as the kubelet
    /// names rotated logs), start a new one, drop the oldest beyond the limit.
    fn rotate(&mut self, now: Timestamp) -> Result<()> {
        let stamp = now.strftime("%Y%m%d-%H%M%S").to_string();
        let mut target = PathBuf::from(format!("{}.{stamp}", self.path.display()));
        let mut n = 1;
        while target.exists() {
            target = PathBuf::from(format!("{}.{stamp}.{n}", self.path.display()));
            n += 1;
        }
        fs::rename(&self.path, &target).map_err(io_err("rotate log", &self.path))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        let rotated = rotated_files(&self.path)?;
        let keep = self.rotation.max_files.saturating_sub(1);
        if rotated.len() > keep {
            for old in &rotated[..rotated.len() - keep] {
                fs::remove_file(old).map_err(io_err("remove rotated log", old))?;
            }
        }
        Ok(())
    }
}

/// Rotated files of `live`, oldest first.
pub fn rotated_files(live: &Path) -> Result<Vec<PathBuf>> {
    let Some(dir) = live.parent() else {
        return Ok(Vec::new());
    };
    let Some(name) = live.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.");
    let mut found: Vec<(String, u64, PathBuf)> = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list logs", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("list logs", dir))?;
        let fname = entry.file_name();
        let Some(rest) = fname.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        // `<stamp>` or `<stamp>.<n>` for a second rotation within one second.
        let (stamp, n) = match rest.split_once('.') {
            Some((s, n)) => (s, n.parse().unwrap_or(u64::MAX)),
            None => (rest, 0),
        };
        found.push((stamp.to_string(), n, entry.path()));
    }
    found.sort();
    Ok(found.into_iter().map(|(_, _, p)| p).collect())
}

/// The restart numbers that have a log file in a container's directory.
pub fn restarts_with_logs(container_dir: &Path) -> Result<Vec<u32>> {
    let entries = match fs::read_dir(container_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list logs", container_dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list logs", container_dir))?;
        if let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|f| f.strip_suffix(".log"))
            .and_then(|n| n.parse().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// One logical line: P records joined with their F record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The timestamp of the line's first record, as written.
    pub time: String,
    pub stream: Stream,
    pub content: Vec<u8>,
}

impl LogLine {
    /// As `kubectl logs` prints it, with `--timestamps` or without.
    pub fn render(&self, timestamps: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.content.len() + 40);
        if timestamps {
            out.extend_from_slice(self.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&self.content);
        out.push(b'\n');
        out
    }
}

/// Reassembles records into lines, across reads and files.
#[derive(Debug, Default)]
struct Parser {
    /// Bytes after the last newline, not yet a record.
    carry: Vec<u8>,
    partial: [Option<LogLine>; 2],
}

impl Parser {
    fn feed(&mut self, data: &[u8], out: &mut Vec<LogLine>) {
        self.carry.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = self.carry[start..].iter().position(|b| *b == b'\n') {
            let end = start + nl;
            let rec = self.carry[start..end].to_vec();
            self.record(&rec, out);
            start = end + 1;
        }
        self.carry.drain(..start);
    }

    fn record(&mut self, rec: &[u8], out: &mut Vec<LogLine>) {
        // `<time> <stream> <tag> <content>`; anything else is not ours: skip it.
        let mut parts = rec.splitn(4, |b| *b == b' ');
        let (Some(time), Some(stream), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let content = parts.next().unwrap_or_default();
        let stream = match stream {
            b"stdout" => Stream::Stdout,
            b"stderr" => Stream::Stderr,
            _ => return,
        };
        let slot = &mut self.partial[stream.index()];
        let line = slot.get_or_insert_with(|| LogLine {
            time: String::from_utf8_lossy(time).into_owned(),
            stream,
            content: Vec::new(),
        });
        line.content.extend_from_slice(content);
        if tag == b"F" {
            if let Some(done) = slot.take() {
                out.push(done);
            }
        }
    }
}

/// Options of `krun logs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Only the last N lines.
    pub tail: Option<usize>,
}

/// Where a read stopped, so following can go on from there.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    ino: u64,
    parser: Parser,
}

fn open_read(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
}

/// Read a container start's log (rotated files, oldest first, then the live
/// one) and return its lines and a follower positioned at the end.
pub fn read_log(live: &Path, opts: ReadOptions) -> Result<(Vec<LogLine>, Follower)> {
    let mut parser = Parser::default();
    let mut lines = Vec::new();
    for old in rotated_files(live)? {
        let data = match fs::read(&old) {
            Ok(d) => d,
            // Rotated away while we listed: its lines are gone.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("read log", &old)(e)),
        };
        parser.feed(&data, &mut lines);
        parser.carry.clear();
    }
    let mut follower = Follower {
        path: live.to_path_buf(),
        file: None,
        ino: 0,
        parser,
    };
    follower.poll_into(&mut lines)?;
    if let Some(n) = opts.tail {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    Ok((lines, follower))
}

impl Follower {
    /// Lines written since the last call, following a rotation to the new file.
    pub fn poll(&mut self) -> Result<Vec<LogLine>> {
        let mut out = Vec::new();
        self.poll_into(&mut out)?;
        Ok(out)
    }

    fn poll_into(&mut self, out: &mut Vec<LogLine>) -> Result<()> {
        loop {
            if self.file.is_none() {
                match open_read(&self.path) {
                    Ok(f) => {
                        self.ino = f.metadata().map_err(io_err("stat log", &self.path))?.ino();
                        self.file = Some(f);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(io_err("open log", &self.path)(e)),
                }
            }
            let Some(file) = self.file.as_mut() else {
                return Ok(());
            };
            let mut data = Vec::new();
            file.read_to_end(&mut data)
                .map_err(io_err("read log", &self.path))?;
            self.parser.feed(&data, out);
            // Rotated: the live name is a new file. Finish this one, go on there.
            let rotated = match fs::symlink_metadata(&self.path) {
                Ok(m) => m.ino() != self.ino,
                Err(_) => false,
            };
            if !rotated {
                return Ok(());
            }
            let mut rest = Vec::new();
            file.read_to_end(&mut rest)
                .map_err(io_err("read log", &self.path))?;
            self.parser.feed(&rest, out);
            self.parser.carry.clear();
            self.file = None;
            // Files rotated after ours and before the live one (more than
            // one rotation between polls) are read too, so no line is lost.
            let rotated = rotated_files(&self.path)?;
            let ours = rotated
                .iter()
                .position(|p| fs::symlink_metadata(p).is_ok_and(|m| m.ino() == self.ino));
            if let Some(pos) = ours {
                for p in &rotated[pos + 1..] {
                    match fs::read(p) {
                        Ok(data) => self.parser.feed(&data, out),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_err("read log", p)(e)),
                    }
                    self.parser.carry.clear();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
