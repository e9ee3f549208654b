//! config.md "Root": path (absolute or relative to the bundle), readonly;
//! config-linux.md rootfsPropagation.

use super::{inside, Case};
use crate::config::{base, put};
use crate::harness::{Env, Expect, Inside};
use serde_json::json;
use std::fs;

pub fn cases() -> Vec<Case> {
    vec![
        inside("root", "root_readonly", readonly),
        inside("root", "root_writable", writable),
        inside("root", "root_relative_path", relative_path),
        inside("root", "root_propagation_private", propagation_private),
        inside("root", "root_host_mounts_gone", host_mounts_gone),
    ]
}

/// root.readonly: "the root filesystem MUST be read-only inside the container".
fn readonly(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(&mut c, "/root/readonly", json!(true));
    let script = format!(
        r#"
has_opt "$(mnt_opts /)" ro || fail "/ is not mounted ro: $(mnt /)"
if touch /{id} 2>/dev/null; then rm -f /{id}; fail "wrote a file on a read-only root"; fi
"#,
        id = env.id
    );
    Inside {
        config: c,
        script,
        expect: Expect::Pass,
    }
}

/// root.readonly false: the root is writable.
fn writable(env: &Env) -> Inside {
    let c = base(&env.rootfs);
    let script = format!(
        r#"
has_opt "$(mnt_opts /)" rw || fail "/ is not mounted rw: $(mnt /)"
echo x > /tmp/{id} || fail "cannot write on a writable root"
rm -f /tmp/{id}
"#,
        id = env.id
    );
    Inside {
        config: c,
        script,
        expect: Expect::Pass,
    }
}

/// root.path "MAY be relative to the bundle".
fn relative_path(env: &Env) -> Inside {
    let rootfs = env.bundle().join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "tmp"] {
        fs::create_dir_all(rootfs.join(d)).expect("mkdir relative rootfs");
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
    for a in ["sh", "awk", "tail", "cat", "grep"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).expect("applet link");
    }
    fs::write(rootfs.join("relative-root-marker"), "mine\n").expect("write marker");
    let mut c = base(&env.rootfs);
    put(&mut c, "/root/path", json!("rootfs"));
    let script = r#"
eq "$(cat /relative-root-marker)" mine "marker file of the bundle's own rootfs"
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// rootfsPropagation private: the root mount has no shared peer group.
fn propagation_private(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(&mut c, "/linux/rootfsPropagation", json!("private"));
    let script = r#"
opt=$(mnt / | awk '{for(i=7;i<=NF;i++){if($i=="-")break; print $i}}')
case "$opt" in *shared:*) fail "/ is shared: $(mnt /)";; esac
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// After pivot_root the host's mounts (and the old root) are gone: every
/// mount point is the root or under /proc, /dev or /sys.
fn host_mounts_gone(env: &Env) -> Inside {
    let script = r#"
for m in $(awk '{print $5}' /proc/self/mountinfo); do
  case "$m" in /|/proc|/proc/*|/dev|/dev/*|/sys|/sys/*) ;; *) fail "unexpected mount point $m";; esac
done
"#;
    Inside {
        config: base(&env.rootfs),
        script: script.into(),
        expect: Expect::Pass,
    }
}
