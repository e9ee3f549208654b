//! config.md "Process": args, env, cwd, noNewPrivileges, oomScoreAdj,
//! umask, and the exit code an engine sees.

use super::{inside, outside, Case};
use crate::config::{base, put};
use crate::harness::{Env, Expect, Inside, Runtime};
use serde_json::json;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

pub fn cases() -> Vec<Case> {
    vec![
        inside("process", "process_args", args),
        inside("process", "process_env", env_vars),
        inside("process", "process_cwd", cwd),
        inside("process", "process_no_new_privileges_true", nnp_true),
        inside("process", "process_no_new_privileges_false", nnp_false),
        inside("process", "process_oom_score_adj", oom_score_adj),
        inside("process", "process_umask", umask),
        inside("process", "process_no_leaked_fds", no_leaked_fds),
        outside("process", "process_exit_code", exit_code),
        outside(
            "process",
            "process_terminal_console_socket",
            terminal_console_socket,
        ),
    ]
}

/// args are passed verbatim, spaces and empty strings included.
fn args(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/process/args",
        json!(["zero arg", "one two", "", "*"]),
    );
    let script = r#"
eq "$0" "zero arg" "argv[2] (\$0)"
eq "$1" "one two" "argv[3]"
eq "$2" "" "argv[4] (empty)"
eq "$3" "*" "argv[5] (not globbed)"
eq "$#" 3 "argument count"
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// env: exactly the configured variables (HOME aside), values with spaces and '='.
fn env_vars(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/process/env",
        json!([
            "PATH=/bin",
            "CONF_SPACE=hello world",
            "CONF_EQ=a=b",
            "CONF_EMPTY="
        ]),
    );
    let script = r#"
eq "$CONF_SPACE" "hello world" CONF_SPACE
eq "$CONF_EQ" "a=b" CONF_EQ
eq "$(env | grep -c '^CONF_EMPTY=$')" 1 "CONF_EMPTY present and empty"
eq "$PATH" /bin PATH
# The shell adds PWD and SHLVL; runtimes add HOME from /etc/passwd when unset.
n=$(env | grep -v -e '^PWD=' -e '^SHLVL=' -e '^_=' -e '^OLDPWD=' -e '^HOME=' | wc -l)
eq "$n" 4 "number of variables besides the shell's own (env: $(env | tr '\n' ' '))"
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// cwd: the process starts in the configured directory.
fn cwd(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(&mut c, "/process/cwd", json!("/tmp"));
    let script = r#"
eq "$(pwd)" /tmp "working directory"
eq "$(readlink /proc/$$/cwd)" /tmp "kernel's view of the cwd"
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

fn nnp(env: &Env, on: bool) -> Inside {
    let mut c = base(&env.rootfs);
    put(&mut c, "/process/noNewPrivileges", json!(on));
    let script = format!(
        r#"eq "$(status_of NoNewPrivs)" {} NoNewPrivs"#,
        u8::from(on)
    );
    Inside {
        config: c,
        script,
        expect: Expect::Pass,
    }
}

/// noNewPrivileges true sets the no_new_privs bit.
fn nnp_true(env: &Env) -> Inside {
    nnp(env, true)
}

/// noNewPrivileges false leaves it clear.
fn nnp_false(env: &Env) -> Inside {
    nnp(env, false)
}

/// oomScoreAdj (positive: root here lacks CAP_SYS_RESOURCE for negatives).
fn oom_score_adj(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(&mut c, "/process/oomScoreAdj", json!(321));
    let script = r#"eq "$(cat /proc/$$/oom_score_adj)" 321 oom_score_adj"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// user.umask (runtime-spec 1.0.2): the process's umask.
fn umask(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(&mut c, "/process/user/umask", json!(0o027));
    let script = r#"
eq "$(umask)" 0027 umask
eq "$(awk '$1=="Umask:" {print $2}' /proc/$$/status)" 0027 "Umask in status"
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// `run` returns the container process's exit code, and deletes the container.
fn exit_code(rt: &Runtime, env: &Env) -> Result<(), String> {
    let inside = Inside {
        config: base(&env.rootfs),
        script: "exit 42".into(),
        expect: Expect::Pass,
    };
    let bundle = crate::harness::write_bundle(env, &inside);
    let b = bundle.display().to_string();
    let o = rt.cmd(&["run", "--bundle", &b, &env.id]);
    let _guard = crate::harness::Cleanup {
        rt,
        id: env.id.clone(),
    };
    if o.code != Some(42) {
        return Err(format!("expected exit code 42: {}", o.describe()));
    }
    if rt.cmd(&["state", &env.id]).ok() {
        return Err("`run` left the container behind after it exited".into());
    }
    Ok(())
}

/// Receives one file descriptor sent with SCM_RIGHTS (the pty master a
/// runtime passes over --console-socket).
fn recv_fd(stream: &UnixStream) -> Result<OwnedFd, String> {
    let mut data = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: msg points at live buffers of the sizes given.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(format!(
            "recvmsg on the console socket: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: the kernel filled msg; CMSG_* walk the control buffer it described.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_level != libc::SOL_SOCKET || (*c).cmsg_type != libc::SCM_RIGHTS
        {
            return Err("the console socket message carried no file descriptor".into());
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// terminal true with --console-socket: the runtime sends the pty master;
/// the process's stdio is the pty and /dev/console is it ("bind mounting
/// the pseudoterminal pty to /dev/console"), sized by consoleSize.
fn terminal_console_socket(rt: &Runtime, env: &Env) -> Result<(), String> {
    let mut c = base(&env.rootfs);
    put(&mut c, "/process/terminal", json!(true));
    put(
        &mut c,
        "/process/consoleSize",
        json!({"height": 33, "width": 101}),
    );
    let script = r#"
eq "$(stty size)" "33 101" "terminal size from consoleSize"
[ -t 0 ] || fail "stdin is not a terminal"
[ -t 1 ] || fail "stdout is not a terminal"
eq "$(stat -c '%F %t' /dev/console)" "character special file 88" "/dev/console is a pty (major 136)"
"#;
    let bundle = crate::harness::write_bundle(
        env,
        &Inside {
            config: c,
            script: script.into(),
            expect: Expect::Pass,
        },
    );
    let sock = env.scratch.join("console.sock");
    let listener =
        UnixListener::bind(&sock).map_err(|e| format!("bind {}: {e}", sock.display()))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let b = bundle.display().to_string();
    let s = sock.display().to_string();
    let o = rt.cmd(&["create", "--bundle", &b, "--console-socket", &s, &env.id]);
    let _guard = crate::harness::Cleanup {
        rt,
        id: env.id.clone(),
    };
    if !o.ok() {
        return Err(format!("create with a terminal failed: {}", o.describe()));
    }
    // The runtime has connected and sent the master before create returned.
    let deadline = Instant::now() + Duration::from_secs(5);
    let stream = loop {
        match listener.accept() {
            Ok((st, _)) => break st,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(format!("no connection on the console socket: {e}")),
        }
    };
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    let master = recv_fd(&stream)?;
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // Ends with EIO once the last slave fd closes (the container exited).
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).replace('\r', "")
    });
    let o = rt.cmd(&["start", &env.id]);
    if !o.ok() {
        return Err(format!("start failed: {}", o.describe()));
    }
    rt.wait_status(&env.id, "stopped", crate::harness::RUN_TIMEOUT)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if !reader.is_finished() {
        return Err("the pty master never reached end of file after the container exited".into());
    }
    let out = reader
        .join()
        .map_err(|_| "pty reader panicked".to_string())?;
    if out.lines().any(|l| l.trim() == crate::harness::OK_MARKER) {
        Ok(())
    } else {
        Err(format!(
            "checks on the terminal failed; pty output: {:?}",
            crate::harness::clip(&out)
        ))
    }
}

/// The process starts with exactly stdin, stdout and stderr open: no fd of
/// the runtime leaks in (the CVE-2024-21626 class). `ls` lists its own
/// fds: 0-2 inherited and 3, the directory it is reading.
fn no_leaked_fds(env: &Env) -> Inside {
    let script = r#"
eq "$(ls /proc/self/fd | xargs)" "0 1 2 3" "fds a child of the process inherits"
"#;
    Inside {
        config: base(&env.rootfs),
        script: script.into(),
        expect: Expect::Pass,
    }
}
