//! The log pump: a container's stdout and stderr arrive through two FIFOs
//! and are written into its CRI log file by [`crate::logs::LogWriter`].
//!
//! FIFOs rather than pipes, so a re-spawned supervisor can open them again
//! by path while the container keeps running. The read ends are opened
//! first (non-blocking), then the write ends handed to the runtime; once
//! the runtime has them the caller drops its copies, so end of file on a
//! FIFO means every process of the container has closed that stream.
//!
//! The container's ends are opened read-write: a FIFO the container holds
//! open for reading always has a reader, so while no supervisor reads
//! (it died and is being re-spawned) the container's writes fill the pipe
//! and then block, instead of killing it with SIGPIPE or failing with
//! EPIPE. The new supervisor opens the read side again by path and goes
//! on pumping into the same log file.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::logs::{LogError, LogWriter, Stream};

#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    #[error("{step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Log(#[from] LogError),
}

type Result<T> = std::result::Result<T, PumpError>;

/// A container's two FIFOs, named `<dir>/<name>.stdout` and `.stderr`.
#[derive(Debug, Clone)]
pub struct Fifos {
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Fifos {
    pub fn new(dir: &Path, name: &str) -> Fifos {
        Fifos {
            stdout: dir.join(format!("{name}.stdout")),
            stderr: dir.join(format!("{name}.stderr")),
        }
    }

    /// Makes both FIFOs (mode 0600); an existing one is an error.
    pub fn create(&self) -> Result<()> {
        for p in [&self.stdout, &self.stderr] {
            nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(
                |e| PumpError::Io {
                    step: "create fifo",
                    path: p.clone(),
                    source: e.into(),
                },
            )?;
        }
        Ok(())
    }

    /// Opens the read ends (non-blocking, so this never waits for a
    /// writer) and then the write ends for the container.
    pub fn open(&self) -> Result<(Readers, Writers)> {
        let open = |p: &Path, write: bool| {
            let mut o = OpenOptions::new();
            // the container's end read-write: see the module's comment
            o.read(true)
                .write(write)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK);
            let f = o.open(p).map_err(|source| PumpError::Io {
                step: if write {
                    "open fifo for writing"
                } else {
                    "open fifo"
                },
                path: p.to_path_buf(),
                source,
            })?;
            if write {
                // the container's end blocks as a terminal or pipe would
                set_nonblocking(&f, false, p)?;
            }
            Ok::<File, PumpError>(f)
        };
        let readers = Readers {
            stdout: open(&self.stdout, false)?,
            stderr: open(&self.stderr, false)?,
            paths: self.clone(),
        };
        let writers = Writers {
            stdout: open(&self.stdout, true)?,
            stderr: open(&self.stderr, true)?,
        };
        Ok((readers, writers))
    }

    /// Opens the read ends again (a re-spawned supervisor: the
    /// container holds its ends, which keep the FIFOs' buffers alive).
    pub fn open_readers(&self) -> Result<Readers> {
        let open = |p: &Path| {
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(p)
                .map_err(|source| PumpError::Io {
                    step: "open fifo",
                    path: p.to_path_buf(),
                    source,
                })
        };
        Ok(Readers {
            stdout: open(&self.stdout)?,
            stderr: open(&self.stderr)?,
            paths: self.clone(),
        })
    }

    /// Removes both FIFOs (missing ones are fine).
    pub fn remove(&self) -> Result<()> {
        for p in [&self.stdout, &self.stderr] {
            if let Err(e) = std::fs::remove_file(p) {
                if e.kind() != io::ErrorKind::NotFound {
                    return Err(PumpError::Io {
                        step: "remove fifo",
                        path: p.clone(),
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }
}

fn set_nonblocking(f: &File, on: bool, path: &Path) -> Result<()> {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on an fd we own, reading and writing its status flags.
    let rc = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        let flags = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        libc::fcntl(fd, libc::F_SETFL, flags)
    };
    if rc < 0 {
        return Err(PumpError::Io {
            step: "set fifo flags",
            path: path.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// The pump's ends.
#[derive(Debug)]
pub struct Readers {
    stdout: File,
    stderr: File,
    paths: Fifos,
}

/// The container's ends: give them to the runtime (see
/// [`crate::oci_runtime::ContainerStdio`]) and drop them after `create`.
#[derive(Debug)]
pub struct Writers {
    pub stdout: File,
    pub stderr: File,
}

/// Copies both streams into `log` until both reach end of file, then
/// finishes unterminated last lines. Blocks; run it on a thread of its own.
pub fn pump(readers: Readers, log: &mut LogWriter) -> Result<()> {
    let mut streams = [
        (Stream::Stdout, Some(readers.stdout), &readers.paths.stdout),
        (Stream::Stderr, Some(readers.stderr), &readers.paths.stderr),
    ];
    let mut buf = vec![0u8; 64 * 1024];
    while streams.iter().any(|s| s.1.is_some()) {
        let mut fds: Vec<libc::pollfd> = streams
            .iter()
            .map(|(_, f, _)| libc::pollfd {
                fd: f.as_ref().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: fds is a valid array of pollfd; negative fds are ignored.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(PumpError::Io {
                step: "poll fifos",
                path: readers.paths.stdout.clone(),
                source: e,
            });
        }
        for (i, p) in fds.iter().enumerate() {
            if p.revents == 0 {
                continue;
            }
            let (stream, file, path) = &mut streams[i];
            let Some(f) = file.as_mut() else { continue };
            // drain what is there; 0 with POLLHUP means every writer is gone
            loop {
                match f.read(&mut buf) {
                    Ok(0) => {
                        log.finish(*stream, Timestamp::now())?;
                        *file = None;
                        break;
                    }
                    Ok(k) => log.write(*stream, &buf[..k], Timestamp::now())?,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(PumpError::Io {
                            step: "read fifo",
                            path: path.to_path_buf(),
                            source: e,
                        })
                    }
                }
            }
        }
    }
    Ok(())
}

/// Copies a container's terminal (the pty master) into `log` as stdout
/// until the pty closes (EIO once every holder of the slave is gone).
pub fn pump_terminal(master: File, log: &mut LogWriter) -> Result<()> {
    let mut master = master;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => log.write(Stream::Stdout, &buf[..k], Timestamp::now())?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // EIO: the slave side is closed for good
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) => {
                return Err(PumpError::Io {
                    step: "read terminal",
                    path: PathBuf::from("pty"),
                    source: e,
                })
            }
        }
    }
    log.finish(Stream::Stdout, Timestamp::now())?;
    Ok(())
}

/// Runs [`pump`] on a thread of its own; the handle gives the writer back.
pub fn spawn(readers: Readers, mut log: LogWriter) -> std::thread::JoinHandle<Result<LogWriter>> {
    std::thread::spawn(move || pump(readers, &mut log).map(|()| log))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::{read_log, ReadOptions, Rotation};
    use std::process::{Command, Stdio};

    #[test]
    fn both_streams_reach_the_cri_log_until_the_writers_close() {
        let dir = tempfile::tempdir().unwrap();
        let fifos = Fifos::new(dir.path(), "c");
        fifos.create().unwrap();
        assert!(fifos.create().is_err(), "an existing fifo is refused");
        let (readers, writers) = fifos.open().unwrap();
        let log_path = dir.path().join("c/0.log");
        let handle = spawn(
            readers,
            LogWriter::open(&log_path, Rotation::default()).unwrap(),
        );
        let mut child = Command::new("sh")
            .args([
                "-c",
                "echo out1; echo err1 >&2; (sleep 0.2; echo late >&2) & echo out2; printf tail",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::from(writers.stdout))
            .stderr(Stdio::from(writers.stderr))
            .spawn()
            .unwrap();
        // the writers were moved into the command and dropped with it
        assert!(child.wait().unwrap().success());
        let log = handle.join().unwrap().unwrap();
        assert_eq!(log.path(), log_path);
        let (lines, _) = read_log(&log_path, ReadOptions::default()).unwrap();
        let got: Vec<(Stream, String)> = lines
            .iter()
            .map(|l| (l.stream, String::from_utf8_lossy(&l.content).into_owned()))
            .collect();
        let out: Vec<&str> = got
            .iter()
            .filter(|(s, _)| *s == Stream::Stdout)
            .map(|(_, c)| c.as_str())
            .collect();
        assert_eq!(out, ["out1", "out2", "tail"]);
        let err: Vec<&str> = got
            .iter()
            .filter(|(s, _)| *s == Stream::Stderr)
            .map(|(_, c)| c.as_str())
            .collect();
        // "late" comes from a child that outlives the shell: still logged
        assert_eq!(err, ["err1", "late"]);
        let raw = std::fs::read_to_string(&log_path).unwrap();
        assert!(raw.lines().any(|l| l.ends_with(" stderr F err1")), "{raw}");
        fifos.remove().unwrap();
        fifos.remove().unwrap();
        assert!(!fifos.stdout.exists() && !fifos.stderr.exists());
    }

    #[test]
    fn a_container_end_never_sees_a_pipe_without_reader() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let fifos = Fifos::new(dir.path(), "c");
        fifos.create().unwrap();
        let (readers, mut writers) = fifos.open().unwrap();
        // the supervisor dies: its read ends go
        drop(readers);
        // no SIGPIPE, no EPIPE: the write lands in the pipe's buffer
        writers.stdout.write_all(b"while nobody read\n").unwrap();
        // a new supervisor opens the read side again and gets it
        let again = fifos.open_readers().unwrap();
        let log_path = dir.path().join("c/1.log");
        let handle = spawn(
            again,
            LogWriter::open(&log_path, Rotation::default()).unwrap(),
        );
        writers.stdout.write_all(b"after\n").unwrap();
        drop(writers);
        handle.join().unwrap().unwrap();
        let (lines, _) = read_log(&log_path, ReadOptions::default()).unwrap();
        let got: Vec<String> = lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.content).into_owned())
            .collect();
        assert_eq!(got, ["while nobody read", "after"]);
    }
}
