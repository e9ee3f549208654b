//! The conformance suite's cgroup cases under pure cgroup v2: this host is
//! hybrid (v1 controllers), so they run in a qemu VM (tests/vm) booting
//! Debian's kernel with cgroup2 mounted and every controller enabled in
//! cgroup.subtree_control. Each runtime (krun-runtime, and runc as the
//! reference) runs every case with `run`; the VM prints each case's output
//! and exit code on the serial console, and whether the case's cgroup was
//! left behind after the container exited.
//!
//! Needs linux-image-amd64 and qemu-system-x86. KRUN_CONFORMANCE_REPORT
//! (see runtime_conformance.rs) gets a v2 section appended.

#[allow(dead_code)]
#[path = "runtime_conformance/cases/cgroups.rs"]
mod cgroups;
mod common;
#[allow(dead_code)]
#[path = "runtime_conformance/config.rs"]
mod config;
#[allow(dead_code)]
#[path = "runtime_conformance/harness.rs"]
mod harness;
mod vm;

use harness::{Env, OK_MARKER};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Cases krun-runtime does not pass under v2 yet (run and reported, not
/// failing the suite). Shrink as krun-runtime grows; it must end empty.
const KRUN_PENDING_V2: &[&str] = &[];

/// Cases where runc 1.1.5 departs from the spec under v2 (none so far).
const RUNC_KNOWN_WRONG_V2: &[(&str, &str)] = &[];

const RUNTIMES: &[&str] = &["krun-runtime", "runc"];

const V2_HEADING: &str = "# Under pure cgroup v2 (tests/runtime_conformance_v2.rs)";

fn stage2(runtimes: &[&str]) -> String {
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /run /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
  echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control || echo "@@WARN cannot enable $c"
done
echo "@@VM kernel=$(uname -r) controllers=$(cat /sys/fs/cgroup/cgroup.subtree_control | tr ' ' ',')"
mkdir -p /rootfs/bin /rootfs/proc /rootfs/sys /rootfs/dev /rootfs/tmp /rootfs/etc /rootfs/root
cp /bin/busybox /rootfs/bin/busybox
for a in $(/bin/busybox --list); do [ $a = busybox ] || ln -s busybox /rootfs/bin/$a; done
echo 'root:x:0:0:root:/root:/bin/sh' > /rootfs/etc/passwd
echo 'root:x:0:' > /rootfs/etc/group
chmod 1777 /rootfs/tmp
for rt in {rts}; do
  for b in /cases/*/bundle; do
    n=${{b#/cases/}}; n=${{n%/bundle}}
    t0=$(cut -d' ' -f1 /proc/uptime)
    timeout 90 /rt/$rt --root /run/$rt run --bundle $b conf-v2-$n > /tmp/out 2>&1 </dev/null
    rc=$?
    echo "@@TIME $rt $n $t0 $(cut -d' ' -f1 /proc/uptime)"
    sed "s|^|@@OUT $rt $n |" /tmp/out
    [ -d /sys/fs/cgroup/conf-v2-$n ] && echo "@@LEFT $rt $n"
    echo "@@RESULT $rt $n $rc"
  done
done
echo "@@DONE"
poweroff -f
"#,
        rts = runtimes.join(" ")
    )
}

/// krun-runtime from this workspace, or KRUN_RUNTIME_BIN when set (to try
/// a build that is not on main yet).
fn krun_runtime_bin() -> PathBuf {
    std::env::var_os("KRUN_RUNTIME_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::bin("krun-runtime"))
}

fn runtime_path(name: &str) -> PathBuf {
    match name {
        "runc" => PathBuf::from("/usr/sbin/runc"),
        _ => krun_runtime_bin(),
    }
}

struct Removal(PathBuf);
impl Drop for Removal {
    fn drop(&mut self) {
        if std::env::var_os("KRUN_CONFORMANCE_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// Writes each cgroup case's bundle (root.path /rootfs inside the VM).
fn stage_cases(staging: &Path) -> Vec<&'static str> {
    let mut names = Vec::new();
    for (name, make) in cgroups::inside_cases() {
        let env = Env {
            rootfs: PathBuf::from("/rootfs"),
            scratch: staging.join("cases").join(name),
            id: format!("conf-v2-{name}"),
        };
        let inside = make(&env);
        assert_eq!(
            inside.expect,
            harness::Expect::Pass,
            "{name}: v2 cases must be Pass cases"
        );
        harness::write_bundle(&env, &inside);
        names.push(name);
    }
    names
}

#[derive(Default)]
struct CaseRun {
    out: Vec<String>,
    rc: Option<i32>,
    left_cgroup: bool,
    secs: f64,
}

fn parse(serial: &str) -> BTreeMap<(String, String), CaseRun> {
    let mut runs: BTreeMap<(String, String), CaseRun> = BTreeMap::new();
    for line in serial.lines() {
        // The console may put terminal escapes before the first tag.
        let Some(at) = line.find("@@") else { continue };
        let line = &line[at..];
        let mut it = line.splitn(4, ' ');
        let (tag, rt, name) = (it.next(), it.next(), it.next());
        let (Some(tag), Some(rt), Some(name)) = (tag, rt, name) else {
            continue;
        };
        let key = (rt.to_string(), name.to_string());
        match tag {
            "@@OUT" => runs
                .entry(key)
                .or_default()
                .out
                .push(it.next().unwrap_or("").to_string()),
            "@@LEFT" => runs.entry(key).or_default().left_cgroup = true,
            "@@TIME" => {
                let t: Vec<f64> = it
                    .next()
                    .unwrap_or("")
                    .split(' ')
                    .filter_map(|x| x.trim().parse().ok())
                    .collect();
                if let [t0, t1] = t[..] {
                    runs.entry(key).or_default().secs = t1 - t0;
                }
            }
            "@@RESULT" => runs.entry(key).or_default().rc = name_rc(line),
            _ => {}
        }
    }
    runs
}

fn name_rc(line: &str) -> Option<i32> {
    line.rsplit(' ').next().and_then(|r| r.trim().parse().ok())
}

fn verdict(run: Option<&CaseRun>) -> Result<(), String> {
    let Some(run) = run else {
        return Err("the VM never ran this case".into());
    };
    let out = run.out.join("\n");
    if run.rc != Some(0) || !run.out.iter().any(|l| l.trim() == OK_MARKER) {
        return Err(format!(
            "run exited {:?}; output:\n{}",
            run.rc,
            harness::clip(&out)
        ));
    }
    if run.left_cgroup {
        return Err("the container's cgroup was left behind after run".into());
    }
    Ok(())
}

#[test]
fn cgroup_cases_on_pure_cgroup_v2() {
    if !common::require_root("cgroup_cases_on_pure_cgroup_v2") {
        return;
    }
    if let Some(why) = vm::missing() {
        if std::env::var_os("CI").is_some() {
            panic!("cgroup v2 VM cannot run: {why}");
        }
        eprintln!("SKIPPED cgroup_cases_on_pure_cgroup_v2: {why}");
        return;
    }
    let base = PathBuf::from(format!("/run/krun-conformance-v2-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    let _cleanup = Removal(base.clone());
    let staging = base.join("staging");
    fs::create_dir_all(&staging).expect("mkdir staging");
    let names = stage_cases(&staging);
    for rt in RUNTIMES {
        vm::install_binary(&staging, &runtime_path(rt), &format!("/rt/{rt}"));
    }
    vm::write_script(&staging, "/stage2", &stage2(RUNTIMES));
    let initrd = base.join("initrd.cpio");
    vm::build_initramfs(&staging, &initrd);
    let boot = vm::boot(&initrd, &base.join("serial.log"), Duration::from_secs(400));
    let header = boot
        .serial
        .lines()
        .find_map(|l| l.find("@@VM").map(|i| l[i..].to_string()))
        .unwrap_or_else(|| "(no @@VM line)".into());
    assert!(
        boot.finished && boot.serial.contains("@@DONE"),
        "the VM did not finish (after {:?}); serial console:\n{}",
        boot.took,
        harness::clip(&boot.serial)
    );
    let runs = parse(&boot.serial);

    let mut hard = Vec::new();
    let mut report = String::new();
    let mut table = vec![format!(
        "pure cgroup v2 VM: {header}, boot and all runs took {:?}",
        boot.took
    )];
    for rt in RUNTIMES {
        for name in &names {
            let r = verdict(runs.get(&(rt.to_string(), name.to_string())));
            let tolerated = if *rt == "runc" {
                RUNC_KNOWN_WRONG_V2
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, w)| format!("known runc deviation: {w}"))
            } else {
                KRUN_PENDING_V2
                    .contains(name)
                    .then(|| "pending on krun-runtime".to_string())
            };
            let v = match (&r, &tolerated) {
                (Ok(()), None) => "pass".to_string(),
                (Ok(()), Some(_)) => {
                    format!("PASS, but listed as failing on {rt}: remove it from the list")
                }
                (Err(_), Some(why)) => format!("fail ({why})"),
                (Err(e), None) => {
                    hard.push(format!("{rt} {name}: {e}"));
                    "FAIL".to_string()
                }
            };
            if let (Err(e), true) = (&r, *rt == "krun-runtime") {
                report.push_str(&format!(
                    "## {name} (cgroups, pure v2 VM)\n\n```\n{e}\n```\n\n"
                ));
            }
            let secs = runs
                .get(&(rt.to_string(), name.to_string()))
                .map(|r| r.secs)
                .unwrap_or(0.0);
            table.push(format!("{rt:<13} {name:<28} {secs:>5.1}s {v}"));
        }
    }
    eprintln!("{}", table.join("\n"));
    if let Some(path) = std::env::var_os("KRUN_CONFORMANCE_REPORT") {
        let mut text = fs::read_to_string(&path).unwrap_or_default();
        // Replace the v2 section of an earlier run; the host section stays.
        if let Some(at) = text.find(V2_HEADING) {
            text.truncate(at);
        }
        text.push_str(&format!("\n{V2_HEADING}\n\n{report}"));
        fs::write(&path, text).expect("append v2 report");
    }
    assert!(
        hard.is_empty(),
        "{} v2 failures:\n{}",
        hard.len(),
        hard.join("\n\n")
    );
}

#[test]
fn v2_lists_name_real_cases() {
    let names: Vec<&str> = cgroups::inside_cases().iter().map(|(n, _)| *n).collect();
    for n in KRUN_PENDING_V2
        .iter()
        .chain(RUNC_KNOWN_WRONG_V2.iter().map(|(n, _)| n))
    {
        assert!(names.contains(n), "list names unknown case {n}");
    }
}
