//! Helpers shared by the end-to-end tests (each tests/*.rs includes this
//! module with `mod common;`, so not every helper is used by every test).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The plain-HTTP anonymous fixture registry (tests/fixtures/registry.sh).
pub const REGISTRY: &str = "127.0.0.1:5000";
/// The HTTPS + basic-auth fixture registry.
pub const PRIVATE_REGISTRY: &str = "127.0.0.1:5001";
/// Credentials the fixture script puts in the private registry's htpasswd.
pub const PRIVATE_USER: &str = "krun";
pub const PRIVATE_PASS: &str = "krun-fixture-pass";

/// Where the fixture script keeps its state (CA certificate, layouts, logs).
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("KRUN_FIXTURES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/krun-fixtures"))
}

/// A binary built from this workspace (`cargo build --workspace --bins`
/// runs before the tests; the test executable lives in target/<profile>/deps).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// True when running as root. Root-only tests call this first: outside CI
/// they skip with a message; under CI (CI set) not being root fails the run,
/// so a root-only test never skips silently there.
pub fn require_root(test: &str) -> bool {
    if nix_is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: needs root, and CI is set: refusing to skip");
    }
    eprintln!("SKIPPED {test}: needs root");
    false
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a command and returns its output; panics with the command line and
/// its stderr when it cannot be started.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed and returns its stdout as text.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A name unique to this test process and call, for netns, cgroups, ids.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
