//! Runs probe and hook actions off the supervisor's single-threaded poll
//! loop: network handlers on a worker thread each (they only do I/O,
//! bounded by their deadline), exec handlers as a `runtime exec` child
//! started on the loop's thread and waited for on a worker thread, sleep
//! handlers as a timer. Results come back on a channel, and an eventfd
//! the loop polls says when. A job that has not answered a few seconds
//! past its deadline is reported as timed out, so the loop never waits on
//! a stuck handler.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::action::Action;
use super::timed::Limits;
use super::{exec, grpc, http, tcp, Outcome};
use crate::oci_runtime::OciRuntime;

pub type JobId = u64;

/// Where exec handlers run.
#[derive(Debug, Clone)]
pub struct ExecTarget {
    pub runtime: OciRuntime,
    /// The runtime id of the container instance.
    pub id: String,
    /// A private directory for pid files and runtime logs.
    pub scratch: PathBuf,
}

/// One action to run.
#[derive(Debug, Clone)]
pub struct Request {
    pub action: Action,
    /// A lifecycle hook: any HTTP answer is a success, failures carry the
    /// runtime's wording.
    pub hook: bool,
    /// None: until it ends or is cancelled (postStart hooks).
    pub deadline: Option<Instant>,
    pub exec: ExecTarget,
}

struct Job {
    deadline: Option<Instant>,
    cancel: Arc<AtomicBool>,
    /// The `runtime exec` child, which only its worker may reap.
    child: Option<i32>,
    sleep_until: Option<Instant>,
    /// Cancelled or given up on: its late answer is dropped.
    done: bool,
}

/// A worker that answers this long after its deadline has failed to.
const LATE: Duration = Duration::from_secs(3);

pub struct Runner {
    wake: Arc<OwnedFd>,
    tx: mpsc::Sender<(JobId, Outcome)>,
    rx: mpsc::Receiver<(JobId, Outcome)>,
    jobs: HashMap<JobId, Job>,
    /// Results known without a worker (a failed spawn).
    ready: Vec<(JobId, Outcome)>,
    next: JobId,
}

impl AsFd for Runner {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }
}

fn signal(wake: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a valid u64 to an eventfd we hold.
    unsafe { libc::write(wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

impl Runner {
    pub fn new() -> io::Result<Runner> {
        // SAFETY: eventfd with flags returns a new fd or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just made and is ours alone.
        let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        let (tx, rx) = mpsc::channel();
        Ok(Runner {
            wake,
            tx,
            rx,
            jobs: HashMap::new(),
            ready: Vec::new(),
            next: 1,
        })
    }

    /// Starts `req`; its result comes from [`Runner::collect`].
    pub fn start(&mut self, req: Request) -> JobId {
        let id = self.next;
        self.next += 1;
        let cancel = Arc::new(AtomicBool::new(false));
        let mut job = Job {
            deadline: req.deadline,
            cancel: cancel.clone(),
            child: None,
            sleep_until: None,
            done: false,
        };
        let (tx, wake) = (self.tx.clone(), self.wake.clone());
        let spawned = match &req.action {
            Action::Sleep(d) => {
                job.sleep_until = Some(Instant::now() + *d);
                self.jobs.insert(id, job);
                return id;
            }
            Action::Exec(cmd) => {
                let tag = format!("exec-{}-{id}", std::process::id());
                match exec::spawn(
                    &req.exec.runtime,
                    &req.exec.id,
                    cmd,
                    &req.exec.scratch,
                    &tag,
                ) {
                    Ok(s) => {
                        job.child = Some(s.pid());
                        Some(s)
                    }
                    Err(e) => {
                        let msg = format!("running the OCI runtime's exec: {e}");
                        self.ready.push((id, Outcome::Error(msg)));
                        return id;
                    }
                }
            }
            _ => None,
        };
        let (action, hook, deadline) = (req.action, req.hook, req.deadline);
        let worker = move || {
            let limits = Limits {
                deadline,
                cancel: &cancel,
            };
            let outcome = match (spawned, action) {
                (Some(s), Action::Exec(cmd)) => {
                    let ended = exec::wait(s, limits);
                    if hook {
                        hook_outcome(exec::hook_result(&cmd, ended))
                    } else {
                        exec::probe_outcome(&cmd, ended)
                    }
                }
                (_, action) => run_network(&action, hook, limits),
            };
            let _ = tx.send((id, outcome));
            signal(&wake);
        };
        let started = std::thread::Builder::new()
            .name("krun-probe".into())
            .stack_size(512 * 1024)
            .spawn(worker);
        if let Err(e) = started {
            self.ready
                .push((id, Outcome::Error(format!("starting a probe thread: {e}"))));
            // the exec child, if any, went with the closure: nothing to reap here
            job.child = None;
            job.done = true;
        }
        self.jobs.insert(id, job);
        id
    }

    /// Calls a job off: its command is killed, its answer dropped.
    pub fn cancel(&mut self, id: JobId) {
        if let Some(j) = self.jobs.get_mut(&id) {
            j.cancel.store(true, Ordering::Relaxed);
            j.done = true;
            if j.sleep_until.is_some() {
                self.jobs.remove(&id);
            }
        }
        self.ready.retain(|(j, _)| *j != id);
    }

    /// Calls every job off (the supervisor is done).
    pub fn cancel_all(&mut self) {
        let ids: Vec<JobId> = self.jobs.keys().copied().collect();
        for id in ids {
            self.cancel(id);
        }
    }

    /// The results that have come in, and jobs given up on.
    pub fn collect(&mut self, now: Instant) -> Vec<(JobId, Outcome)> {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a valid buffer from our eventfd.
        unsafe { libc::read(self.wake.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
        let mut out = std::mem::take(&mut self.ready);
        while let Ok((id, outcome)) = self.rx.try_recv() {
            if let Some(j) = self.jobs.remove(&id) {
                if !j.done {
                    out.push((id, outcome));
                }
            }
        }
        let mut finished = Vec::new();
        for (id, j) in &mut self.jobs {
            if j.done {
                continue;
            }
            if j.sleep_until.is_some_and(|t| t <= now) {
                finished.push(*id);
                out.push((*id, Outcome::Success(String::new())));
            } else if j.deadline.is_some_and(|d| now >= d + LATE) {
                j.done = true;
                j.cancel.store(true, Ordering::Relaxed);
                out.push((*id, Outcome::Failure("timed out".into())));
            }
        }
        for id in finished {
            self.jobs.remove(&id);
        }
        out
    }

    /// When [`Runner::collect`] has something to say without a wake-up.
    pub fn wake_at(&self) -> Option<Instant> {
        if !self.ready.is_empty() {
            return Some(Instant::now());
        }
        self.jobs
            .values()
            .filter(|j| !j.done)
            .filter_map(|j| j.sleep_until.or(j.deadline.map(|d| d + LATE)))
            .min()
    }

    /// `runtime exec` children that their workers reap.
    pub fn children(&self) -> Vec<i32> {
        self.jobs.values().filter_map(|j| j.child).collect()
    }

    /// Whether a job has not answered yet.
    pub fn running(&self, id: JobId) -> bool {
        self.jobs.get(&id).is_some_and(|j| !j.done)
    }
}

fn hook_outcome(r: Result<(), String>) -> Outcome {
    match r {
        Ok(()) => Outcome::Success(String::new()),
        Err(e) => Outcome::Failure(e),
    }
}

fn run_network(action: &Action, hook: bool, limits: Limits<'_>) -> Outcome {
    match action {
        Action::Http(h) if hook => hook_outcome(http::hook(h, limits)),
        Action::Http(h) => http::probe(h, limits),
        Action::Tcp { host, port } => tcp::probe(host, *port, limits),
        Action::Grpc {
            host,
            port,
            service,
        } => {
            let timeout = limits.deadline.map_or(Duration::from_secs(1), |d| {
                d.saturating_duration_since(Instant::now())
            });
            grpc::probe(host, *port, service, timeout)
        }
        Action::Exec(_) | Action::Sleep(_) => Outcome::Error("not a network handler".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::action::HttpGet;

    fn target() -> ExecTarget {
        ExecTarget {
            runtime: OciRuntime::new("/nonexistent/runtime", "/nonexistent"),
            id: "x".into(),
            scratch: std::env::temp_dir(),
        }
    }

    fn wait_for(r: &mut Runner, id: JobId) -> Outcome {
        let t0 = Instant::now();
        loop {
            let mut p = libc::pollfd {
                fd: r.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut p, 1, 50) };
            if let Some((_, o)) = r
                .collect(Instant::now())
                .into_iter()
                .find(|(j, _)| *j == id)
            {
                return o;
            }
            assert!(t0.elapsed() < Duration::from_secs(10));
        }
    }

    #[test]
    fn network_sleep_and_failed_exec_jobs_answer_through_the_eventfd() {
        let mut r = Runner::new().unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let tcp = r.start(Request {
            action: Action::Tcp {
                host: "127.0.0.1".into(),
                port,
            },
            hook: false,
            deadline: Some(Instant::now() + Duration::from_secs(1)),
            exec: target(),
        });
        assert_eq!(wait_for(&mut r, tcp), Outcome::Success(String::new()));
        let t0 = Instant::now();
        let sleep = r.start(Request {
            action: Action::Sleep(Duration::from_millis(200)),
            hook: true,
            deadline: None,
            exec: target(),
        });
        assert!(r.wake_at().is_some());
        assert_eq!(wait_for(&mut r, sleep), Outcome::Success(String::new()));
        assert!(t0.elapsed() >= Duration::from_millis(200));
        let bad = r.start(Request {
            action: Action::Exec(vec!["true".into()]),
            hook: false,
            deadline: None,
            exec: target(),
        });
        assert!(matches!(wait_for(&mut r, bad), Outcome::Error(_)));
        // a cancelled job never answers
        let http = r.start(Request {
            action: Action::Http(HttpGet {
                https: false,
                host: "127.0.0.1".into(),
                port,
                target: "/".into(),
                headers: vec![],
            }),
            hook: true,
            deadline: None,
            exec: target(),
        });
        r.cancel(http);
        std::thread::sleep(Duration::from_millis(500));
        assert!(r.collect(Instant::now()).is_empty());
        assert!(!r.running(http));
    }
}
