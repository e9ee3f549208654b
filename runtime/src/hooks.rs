//! OCI hooks: run with the container state on stdin, their own args and
//! env, and killed when their timeout passes.
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::{Error, Result};

/// Runs hooks in order; the first failure stops the sequence.
pub fn run_all(kind: &str, hooks: Option<&Vec<Hook>>, state_json: &str) -> Result<()> {
    for (i, h) in hooks
        .map(|v| v.as_slice())
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        run_one(kind, i, h, state_json)?;
    }
    Ok(())
}

/// Runs every hook even when some fail (poststart, poststop: failures are
/// warnings); returns the failures.
pub fn run_all_warn(kind: &str, hooks: Option<&Vec<Hook>>, state_json: &str) -> Vec<Error> {
    let mut errs = Vec::new();
    for (i, h) in hooks
        .map(|v| v.as_slice())
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        if let Err(e) = run_one(kind, i, h, state_json) {
            errs.push(e);
        }
    }
    errs
}

fn run_one(kind: &str, i: usize, h: &Hook, state_json: &str) -> Result<()> {
    let path = h.path();
    let what = format!("{kind} hook #{i} {}", path.display());
    let args = h.args().as_deref().unwrap_or(&[]);
    let mut cmd = Command::new(path);
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    if args.len() > 1 {
        cmd.args(&args[1..]);
    }
    cmd.env_clear();
    for e in h.env().as_deref().unwrap_or(&[]) {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Hook(format!("{what}: start: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that ignores stdin may close it early: that is not an error.
        let _ = stdin.write_all(state_json.as_bytes());
    }
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(Error::Hook(format!("{what}: wait: {e}"))),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Hook(format!(
                "{what}: timed out after {}s",
                h.timeout().unwrap_or(0)
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if !status.success() {
        return Err(Error::Hook(format!("{what}: exited with {status}")));
    }
    Ok(())
}
