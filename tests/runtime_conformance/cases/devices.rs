//! config-linux.md "Devices" and "Default Devices".

use super::{inside, Case};
use crate::config::{base, put};
use crate::harness::{Env, Expect, Inside};
use serde_json::json;

pub fn cases() -> Vec<Case> {
    vec![
        inside("devices", "devices_default", default_devices),
        inside("devices", "devices_from_config", from_config),
        inside("devices", "devices_no_host_devices", no_host_devices),
    ]
}

/// The default devices with their numbers and mode, and the /dev links.
fn default_devices(env: &Env) -> Inside {
    let script = r#"
chk() { eq "$(stat -c '%F %t %T %a' $1)" "character special file $2 $3 666" "$1"; }
chk /dev/null 1 3
chk /dev/zero 1 5
chk /dev/full 1 7
chk /dev/random 1 8
chk /dev/urandom 1 9
chk /dev/tty 5 0
[ -c /dev/ptmx ] || fail "/dev/ptmx is not a character device"
eq "$(readlink /dev/fd)" /proc/self/fd /dev/fd
eq "$(readlink /dev/stdin)" /proc/self/fd/0 /dev/stdin
eq "$(readlink /dev/stdout)" /proc/self/fd/1 /dev/stdout
eq "$(readlink /dev/stderr)" /proc/self/fd/2 /dev/stderr
"#;
    Inside {
        config: base(&env.rootfs),
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// linux.devices: char, block and fifo nodes with fileMode, uid and gid.
fn from_config(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/linux/devices",
        json!([
            {"path": "/dev/conf-char", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 0, "gid": 0},
            {"path": "/dev/conf-block", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600, "uid": 1000, "gid": 1001},
            {"path": "/dev/conf-dir/fifo", "type": "p", "fileMode": 0o620, "uid": 0, "gid": 0}
        ]),
    );
    let script = r#"
eq "$(stat -c '%F %t %T %a %u %g' /dev/conf-char)" "character special file 1 3 640 0 0" /dev/conf-char
eq "$(stat -c '%F %t %T %a %u %g' /dev/conf-block)" "block special file 7 c8 600 1000 1001" /dev/conf-block
eq "$(stat -c '%F %a' /dev/conf-dir/fifo)" "fifo 620" /dev/conf-dir/fifo
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// /dev is the container's own: the host's disks and memory are not there.
fn no_host_devices(env: &Env) -> Inside {
    let script = r#"
for d in /dev/mem /dev/kmem /dev/port /dev/kmsg /dev/sda /dev/vda /dev/nvme0 /dev/loop0; do
  [ -e $d ] && fail "host device $d is visible"
done
true
"#;
    Inside {
        config: base(&env.rootfs),
        script: script.into(),
        expect: Expect::Pass,
    }
}
