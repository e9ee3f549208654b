//! config.md "Mounts" (destination, type, source, options, order) and
//! config-linux.md maskedPaths / readonlyPaths.

use super::{inside, outside, Case};
use crate::config::{base, push, MASKED_PATHS};
use crate::harness::{run_inside, Env, Expect, Inside, Runtime};
use serde_json::json;
use std::fs;
use std::path::PathBuf;

pub fn cases() -> Vec<Case> {
    vec![
        inside("mounts", "mounts_default_filesystems", default_filesystems),
        inside("mounts", "mounts_tmpfs_options", tmpfs_options),
        inside("mounts", "mounts_bind_readonly", bind_readonly),
        outside("mounts", "mounts_bind_writable", bind_writable),
        inside("mounts", "mounts_bind_file", bind_file),
        inside("mounts", "mounts_bind_flags", bind_flags),
        inside("mounts", "mounts_bind_propagation", bind_propagation),
        inside("mounts", "mounts_destination_created", destination_created),
        inside("mounts", "mounts_in_order", in_order),
        inside("mounts", "mounts_masked_paths", masked_paths),
        inside("mounts", "mounts_readonly_paths", readonly_paths),
    ]
}

fn source_dir(env: &Env, name: &str) -> PathBuf {
    let d = env.scratch.join(name);
    fs::create_dir_all(&d).expect("mkdir bind source");
    d
}

/// The mounts every engine asks for have the type and flags requested.
fn default_filesystems(env: &Env) -> Inside {
    let script = r#"
eq "$(mnt_fstype /proc)" proc "/proc type"
eq "$(mnt_fstype /sys)" sysfs "/sys type"
has_opt "$(mnt_opts /sys)" ro || fail "/sys not ro: $(mnt /sys)"
eq "$(mnt_fstype /dev)" tmpfs "/dev type"
has_opt "$(mnt_opts /dev)" nosuid || fail "/dev not nosuid: $(mnt /dev)"
eq "$(mnt_fstype /dev/pts)" devpts "/dev/pts type"
has_opt "$(mnt_opts /dev/pts)" noexec || fail "/dev/pts not noexec: $(mnt /dev/pts)"
eq "$(mnt_fstype /dev/shm)" tmpfs "/dev/shm type"
for o in nosuid noexec nodev; do has_opt "$(mnt_opts /dev/shm)" $o || fail "/dev/shm lacks $o: $(mnt /dev/shm)"; done
eq "$(mnt_fstype /dev/mqueue)" mqueue "/dev/mqueue type"
"#;
    Inside {
        config: base(&env.rootfs),
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// A tmpfs with nosuid,nodev,noexec,mode and size options.
fn tmpfs_options(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    push(
        &mut c,
        "/mounts",
        json!({"destination": "/conf-tmpfs", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "noexec", "mode=1777", "size=1m"]}),
    );
    let script = r#"
eq "$(mnt_fstype /conf-tmpfs)" tmpfs "type"
for o in nosuid nodev noexec; do has_opt "$(mnt_opts /conf-tmpfs)" $o || fail "lacks $o: $(mnt /conf-tmpfs)"; done
has_opt "$(mnt_super /conf-tmpfs)" size=1024k || fail "size not 1m: $(mnt /conf-tmpfs)"
eq "$(stat -c %a /conf-tmpfs)" 1777 "mode"
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// A read-only bind mount shows the host's file and refuses writes.
fn bind_readonly(env: &Env) -> Inside {
    let src = source_dir(env, "ro-src");
    fs::write(src.join("hello"), "from the host\n").expect("write bind source file");
    let mut c = base(&env.rootfs);
    push(
        &mut c,
        "/mounts",
        json!({"destination": "/conf-ro", "type": "bind", "source": src, "options": ["rbind", "ro"]}),
    );
    let script = r#"
eq "$(cat /conf-ro/hello)" "from the host" "bind-mounted file content"
has_opt "$(mnt_opts /conf-ro)" ro || fail "not ro: $(mnt /conf-ro)"
if touch /conf-ro/new 2>/dev/null; then fail "wrote into a read-only bind mount"; fi
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// A writable bind mount: what the container writes appears on the host.
fn bind_writable(rt: &Runtime, env: &Env) -> Result<(), String> {
    let src = source_dir(env, "rw-src");
    let mut c = base(&env.rootfs);
    push(
        &mut c,
        "/mounts",
        json!({"destination": "/conf-rw", "type": "bind", "source": src, "options": ["rbind", "rw"]}),
    );
    let script = r#"
echo written-inside > /conf-rw/out || fail "cannot write into the bind mount"
has_opt "$(mnt_opts /conf-rw)" rw || fail "not rw: $(mnt /conf-rw)"
"#;
    run_inside(
        rt,
        env,
        Inside {
            config: c,
            script: script.into(),
            expect: Expect::Pass,
        },
    )?;
    let got = fs::read_to_string(src.join("out"))
        .map_err(|e| format!("host does not see the file written inside: {e}"))?;
    if got.trim() != "written-inside" {
        return Err(format!("host sees {got:?}, expected \"written-inside\""));
    }
    Ok(())
}

/// A single file can be bind-mounted, onto a destination that does not exist yet.
fn bind_file(env: &Env) -> Inside {
    let src = env.scratch.join("file-src");
    fs::write(&src, "single file\n").expect("write bind source");
    let mut c = base(&env.rootfs);
    push(
        &mut c,
        "/mounts",
        json!({"destination": "/etc/conf-file", "type": "bind", "source": src, "options": ["bind", "ro"]}),
    );
    let script = r#"
[ -f /etc/conf-file ] || fail "/etc/conf-file is not a regular file"
eq "$(cat /etc/conf-file)" "single file" "content"
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// Per-mount flags on a bind mount: nosuid, nodev, noexec.
fn bind_flags(env: &Env) -> Inside {
    let src = source_dir(env, "flags-src");
    let mut c = base(&env.rootfs);
    push(
        &mut c,
        "/mounts",
        json!({"destination": "/conf-flags", "type": "bind", "source": src,
               "options": ["rbind", "nosuid", "nodev", "noexec"]}),
    );
    let script = r#"
for o in nosuid nodev noexec; do has_opt "$(mnt_opts /conf-flags)" $o || fail "lacks $o: $(mnt /conf-flags)"; done
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// "If the destination does not exist the runtime MUST create it" — through
/// several missing levels.
fn destination_created(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    let dest = format!("/conf-deep-{}/a/b", env.id);
    push(
        &mut c,
        "/mounts",
        json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"}),
    );
    let script = format!(
        r#"
eq "$(mnt_fstype {dest})" tmpfs "{dest} type"
"#
    );
    Inside {
        config: c,
        script,
        expect: Expect::Pass,
    }
}

/// "The runtime MUST mount entries in the listed order": a mount inside
/// an earlier one is visible (it would be hidden if mounted first).
fn in_order(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    push(
        &mut c,
        "/mounts",
        json!({"destination": "/conf-outer", "type": "tmpfs", "source": "outer"}),
    );
    push(
        &mut c,
        "/mounts",
        json!({"destination": "/conf-outer/inner", "type": "tmpfs", "source": "inner"}),
    );
    let script = r#"
eq "$(mnt_fstype /conf-outer/inner)" tmpfs "inner mount"
eq "$(mnt /conf-outer/inner | awk '{for(i=7;i<=NF;i++) if($i=="-"){print $(i+2); exit}}')" inner "inner mount source"
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// maskedPaths: "MUST be masked ... so that they cannot be read".
fn masked_paths(env: &Env) -> Inside {
    let mut script = String::new();
    for p in MASKED_PATHS {
        script.push_str(&format!(
            r#"
p={p}
if [ -d $p ]; then
  [ -z "$(ls -A $p 2>/dev/null)" ] || fail "masked directory $p lists entries"
elif [ -e $p ]; then
  [ -z "$(head -c 16 $p 2>/dev/null)" ] || fail "masked file $p is readable"
fi
"#
        ));
    }
    Inside {
        config: base(&env.rootfs),
        script,
        expect: Expect::Pass,
    }
}

/// readonlyPaths: "MUST be set as read-only".
fn readonly_paths(env: &Env) -> Inside {
    let script = r#"
for p in /proc/sys /proc/sysrq-trigger /proc/irq /proc/bus /proc/fs; do
  [ -e $p ] || continue
  has_opt "$(mnt_opts $p)" ro || fail "$p not mounted ro: $(mnt $p)"
done
# Writes back the current value, so a runtime that fails this changes nothing.
v=$(cat /proc/sys/vm/overcommit_memory)
if echo "$v" > /proc/sys/vm/overcommit_memory 2>/dev/null; then fail "wrote /proc/sys/vm/overcommit_memory"; fi
"#;
    Inside {
        config: base(&env.rootfs),
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// Propagation options on mounts: rshared gives the mount a peer group,
/// rprivate none.
fn bind_propagation(env: &Env) -> Inside {
    let shared = source_dir(env, "shared-src");
    let private = source_dir(env, "private-src");
    let mut c = base(&env.rootfs);
    push(
        &mut c,
        "/mounts",
        json!({"destination": "/conf-shared", "type": "bind", "source": shared, "options": ["rbind", "rshared"]}),
    );
    push(
        &mut c,
        "/mounts",
        json!({"destination": "/conf-private", "type": "bind", "source": private, "options": ["rbind", "rprivate"]}),
    );
    let script = r#"
optional() { mnt "$1" | awk '{for(i=7;i<=NF;i++){if($i=="-")break; printf "%s ", $i}}'; }
case "$(optional /conf-shared)" in *shared:*) ;; *) fail "rshared mount has no peer group: $(mnt /conf-shared)";; esac
case "$(optional /conf-private)" in *shared:*|*master:*) fail "rprivate mount propagates: $(mnt /conf-private)";; esac
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}
