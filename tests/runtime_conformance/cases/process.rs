//! config.md "Process": args, env, cwd, noNewPrivileges, oomScoreAdj,
//! umask, and the exit code an engine sees.

use super::{inside, outside, Case};
use crate::config::{base, put};
use crate::harness::{Env, Expect, Inside, Runtime};
use serde_json::json;

pub fn cases() -> Vec<Case> {
    vec![
        inside("process", "process_args", args),
        inside("process", "process_env", env_vars),
        inside("process", "process_cwd", cwd),
        inside("process", "process_no_new_privileges_true", nnp_true),
        inside("process", "process_no_new_privileges_false", nnp_false),
        inside("process", "process_oom_score_adj", oom_score_adj),
        inside("process", "process_umask", umask),
        outside("process", "process_exit_code", exit_code),
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
