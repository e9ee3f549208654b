//! The OCI seccomp section compiled with libseccomp: default action and
//! errno, architectures, flags, per-syscall actions with argument filters,
//! and SCMP_ACT_NOTIFY with the listener fd sent to listenerPath.
use std::os::fd::{AsRawFd, OwnedFd};
use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use crate::error::{Error, Result};

fn err(step: &str) -> impl Fn(libseccomp::error::SeccompError) -> Error + '_ {
    move |e| Error::Seccomp(format!("{step}: {e}"))
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> ScmpAction {
    match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => {
            ScmpAction::Errno(errno.unwrap_or(libc::EPERM as u32) as i32)
        }
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(errno.unwrap_or(libc::EPERM as u32) as u16)
        }
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    }
}

fn compare(a: &LinuxSeccompArg) -> ScmpArgCompare {
    let idx = a.index() as u32;
    match a.op() {
        LinuxSeccompOperator::ScmpCmpNe => {
            ScmpArgCompare::new(idx, ScmpCompareOp::NotEqual, a.value())
        }
        LinuxSeccompOperator::ScmpCmpLt => ScmpArgCompare::new(idx, ScmpCompareOp::Less, a.value()),
        LinuxSeccompOperator::ScmpCmpLe => {
            ScmpArgCompare::new(idx, ScmpCompareOp::LessOrEqual, a.value())
        }
        LinuxSeccompOperator::ScmpCmpEq => {
            ScmpArgCompare::new(idx, ScmpCompareOp::Equal, a.value())
        }
        LinuxSeccompOperator::ScmpCmpGe => {
            ScmpArgCompare::new(idx, ScmpCompareOp::GreaterEqual, a.value())
        }
        LinuxSeccompOperator::ScmpCmpGt => {
            ScmpArgCompare::new(idx, ScmpCompareOp::Greater, a.value())
        }
        // OCI: value is the mask, valueTwo the datum compared after masking.
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpArgCompare::new(
            idx,
            ScmpCompareOp::MaskedEqual(a.value()),
            a.value_two().unwrap_or(0),
        ),
    }
}

fn arch_name(a: &oci_spec::runtime::Arch) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Builds the filter (without loading it).
pub fn build(s: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let default = action(s.default_action(), s.default_errno_ret());
    let mut ctx = ScmpFilterContext::new(default).map_err(err("create filter"))?;
    // no_new_privs is the config's own choice, not libseccomp's.
    ctx.set_ctl_nnp(false).map_err(err("clear NNP attribute"))?;
    for a in s.architectures().as_deref().unwrap_or(&[]) {
        let name = arch_name(a);
        let arch = ScmpArch::from_str(&name).map_err(err(&format!("architecture {name}")))?;
        ctx.add_arch(arch)
            .map_err(err(&format!("add architecture {name}")))?;
    }
    for f in s.flags().as_deref().unwrap_or(&[]) {
        match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => ctx.set_ctl_waitkill(true),
        }
        .map_err(err(&format!("set flag {f:?}")))?;
    }
    for sc in s.syscalls().as_deref().unwrap_or(&[]) {
        let act = action(sc.action(), sc.errno_ret());
        if act == default {
            continue;
        }
        let args: Vec<ScmpArgCompare> = sc
            .args()
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(compare)
            .collect();
        let distinct = {
            let mut idx: Vec<usize> = sc
                .args()
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .map(|a| a.index())
                .collect();
            idx.sort_unstable();
            idx.windows(2).all(|w| w[0] != w[1])
        };
        for name in sc.names() {
            // Syscalls this libseccomp does not know are skipped, as runc does.
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                continue;
            };
            if args.is_empty() {
                ctx.add_rule(act, nr)
            } else if distinct {
                ctx.add_rule_conditional(act, nr, &args)
            } else {
                // Several conditions on one argument: one rule each (any may match).
                args.iter()
                    .try_for_each(|a| ctx.add_rule_conditional(act, nr, &[*a]).map(|_| ()))
                    .map(|_| &mut ctx)
            }
            .map_err(err(&format!("add rule for {name}")))?;
        }
    }
    Ok(ctx)
}

/// True when the filter will hand a notify fd to a listener.
pub fn uses_notify(s: &LinuxSeccomp) -> bool {
    s.default_action() == LinuxSeccompAction::ScmpActNotify
        || s.syscalls()
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .any(|sc| sc.action() == LinuxSeccompAction::ScmpActNotify)
}

/// Loads the filter; with a listener socket, sends it the notify fd and the
/// container process state (seccomp-notify protocol of runtime-spec).
pub fn load(ctx: &ScmpFilterContext, listener: Option<(&OwnedFd, String)>) -> Result<()> {
    ctx.load().map_err(err("load filter"))?;
    if let Some((sock, state)) = listener {
        let nfd = ctx.get_notify_fd().map_err(err("get notify fd"))?;
        crate::console::send_fd(sock.as_raw_fd(), nfd, state.as_bytes())?;
        // SAFETY: the notify fd is ours; the listener now holds its own copy.
        unsafe { libc::close(nfd) };
    }
    Ok(())
}
