//! securityContext and resources end to end: runAsNonRoot refusing a root
//! image, seccompProfile (RuntimeDefault blocking unshare and keyctl,
//! Unconfined, Localhost), capabilities, privileged, read-only root,
//! no_new_privs, sysctls; the cgroup values of Guaranteed, Burstable and
//! BestEffort pods (pod cgroup read on the host, container cgroup read
//! inside), their QoS class and oom_score_adj.
mod common;
mod kubelet_util;
mod netplug_util;

use kubelet_util::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn run_as_non_root_refuses_a_root_image() {
    if !common::require_root("run_as_non_root_refuses_a_root_image") {
        return;
    }
    let node = TestNode::new("ks-nonroot");
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: nonroot}}\nspec:\n  terminationGracePeriodSeconds: 1\n  \
         securityContext: {{runAsNonRoot: true}}\n  containers:\n  - name: app\n    image: {BUSYBOX}\n    \
         command: [sleep, '3600']\n"
    );
    let f = node.manifest("nonroot.yaml", &yaml);
    let o = node.apply(&f);
    assert!(!o.status.success());
    let uid = node.uid("nonroot");
    let want = format!(
        "container has runAsNonRoot and image will run as root (pod: \"nonroot_default({uid})\", container: app)"
    );
    assert_eq!(
        stderr(&o).trim(),
        format!("krun: pod/nonroot created but not running: container app: CreateContainerConfigError: {want}")
    );
    assert_eq!(
        node.waiting("nonroot", "app"),
        Some(("CreateContainerConfigError".into(), want))
    );
    assert_eq!(node.status("nonroot"), "CreateContainerConfigError");
    node.delete_and_scan("nonroot");
    // with a non-root user it runs
    let f = node.manifest(
        "user.yaml",
        &yaml.replace(
            "{runAsNonRoot: true}",
            "{runAsNonRoot: true, runAsUser: 1000}",
        ),
    );
    let o = node.apply(&f);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(node.sh("nonroot", "app", "id -u"), "1000\n");
    node.delete_and_scan("nonroot");
}

/// A static x86-64 program of a few bytes: keyctl(KEYCTL_GET_KEYRING_ID,
/// KEY_SPEC_SESSION_KEYRING, 0), exiting with the errno it got (0 when the
/// call succeeded). busybox has no keyctl, so the test brings its own.
fn keyctl_probe() -> Vec<u8> {
    let code: &[u8] = &[
        0xb8, 0xfa, 0x00, 0x00, 0x00, // mov eax, 250 (keyctl)
        0x31, 0xff, // xor edi, edi (KEYCTL_GET_KEYRING_ID)
        0xbe, 0xfd, 0xff, 0xff, 0xff, // mov esi, -3 (session keyring)
        0x31, 0xd2, // xor edx, edx
        0x0f, 0x05, // syscall
        0x48, 0x85, 0xc0, // test rax, rax
        0x78, 0x02, // js +2
        0x31, 0xc0, // xor eax, eax
        0xf7, 0xd8, // neg eax
        0x89, 0xc7, // mov edi, eax
        0xb8, 0xe7, 0x00, 0x00, 0x00, // mov eax, 231 (exit_group)
        0x0f, 0x05, // syscall
    ];
    let base: u64 = 0x40_0000;
    let size = (64 + 56 + code.len()) as u64;
    let mut elf = Vec::new();
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // x86-64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&(base + 120).to_le_bytes()); // entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [64u16, 56, 1, 0, 0, 0] {
        elf.extend_from_slice(&v.to_le_bytes());
    }
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // R+X
    for v in [0u64, base, base, size, size, 0x1000] {
        elf.extend_from_slice(&v.to_le_bytes());
    }
    elf.extend_from_slice(code);
    elf
}

#[test]
fn runtime_default_seccomp_blocks_unshare_and_keyctl() {
    if !common::require_root("runtime_default_seccomp_blocks_unshare_and_keyctl") {
        return;
    }
    let node = TestNode::new("ks-seccomp");
    let tools = node.base.join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let probe = tools.join("keyctl-probe");
    std::fs::write(&probe, keyctl_probe()).unwrap();
    std::fs::set_permissions(&probe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // the probe itself works: on the host keyctl is allowed
    let rc = std::process::Command::new(&probe).status().unwrap().code();
    assert_ne!(rc, Some(1), "keyctl is refused on the host itself");
    // a Localhost profile: Docker's default action, mkdir refused with EACCES
    let seccomp = node.root().join("seccomp/profiles");
    std::fs::create_dir_all(&seccomp).unwrap();
    std::fs::write(
        seccomp.join("no-mkdir.json"),
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    )
    .unwrap();
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: sc}}\nspec:\n  terminationGracePeriodSeconds: 1\n  \
         securityContext: {{seccompProfile: {{type: RuntimeDefault}}}}\n  \
         volumes: [{{name: tools, hostPath: {{path: {}, type: Directory}}}}]\n  containers:\n  \
         - name: confined\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         volumeMounts: [{{name: tools, mountPath: /tools}}]\n  \
         - name: open\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         securityContext: {{seccompProfile: {{type: Unconfined}}}}\n    \
         volumeMounts: [{{name: tools, mountPath: /tools}}]\n  \
         - name: local\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         securityContext: {{seccompProfile: {{type: Localhost, localhostProfile: profiles/no-mkdir.json}}}}\n",
        tools.display()
    );
    let f = node.manifest("sc.yaml", &yaml);
    let o = node.apply(&f);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = |c: &str, script: &str| {
        let o = node.out(&["exec", "sc", "-c", c, "--", "sh", "-c", script]);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o),
        )
    };
    let (rc, out) = run("confined", "unshare -U true");
    assert_ne!(rc, Some(0), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert_eq!(
        run("confined", "/tools/keyctl-probe; echo rc=$?").1,
        "rc=1\n",
        "EPERM"
    );
    let (rc, out) = run("open", "unshare -U true && echo ok");
    assert_eq!((rc, out.as_str()), (Some(0), "ok\n"));
    let open = run("open", "/tools/keyctl-probe; echo rc=$?").1;
    assert_ne!(open, "rc=1\n", "keyctl refused without a profile");
    let (rc, out) = run("local", "mkdir /tmp/x");
    assert_ne!(rc, Some(0));
    assert!(out.contains("Permission denied"), "{out}");
    // what the runtime was given
    let uid = node.uid("sc");
    let bundles = node.run.join("supervisors").join(&uid).join("bundles");
    let config = std::fs::read_dir(&bundles)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().contains("-confined-"))
        .map(|e| std::fs::read_to_string(e.path().join("config.json")).unwrap())
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&config).unwrap();
    let s = &v["linux"]["seccomp"];
    assert_eq!(s["defaultAction"], "SCMP_ACT_ERRNO");
    let names: Vec<&str> = s["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["names"].as_array().unwrap().iter())
        .filter_map(|n| n.as_str())
        .collect();
    assert!(names.contains(&"read") && !names.contains(&"keyctl") && !names.contains(&"unshare"));
    // a missing Localhost profile is the runtime's CreateContainerError
    let missing = yaml
        .replace("name: sc}", "name: sc2}")
        .replace("profiles/no-mkdir.json", "profiles/none.json");
    let f = node.manifest("sc2.yaml", &missing);
    let o = node.apply(&f);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("CreateContainerError: cannot load seccomp profile")
            && stderr(&o).contains("profiles/none.json"),
        "{}",
        stderr(&o)
    );
    node.delete_and_scan("sc2");
    node.delete_and_scan("sc");
}

#[test]
fn capabilities_privileged_read_only_root_and_sysctls() {
    if !common::require_root("capabilities_privileged_read_only_root_and_sysctls") {
        return;
    }
    let node = TestNode::new("ks-caps");
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: caps}}\nspec:\n  terminationGracePeriodSeconds: 1\n  \
         securityContext:\n    sysctls: [{{name: net.ipv4.ip_unprivileged_port_start, value: '80'}}]\n  containers:\n  \
         - name: minimal\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         securityContext:\n      capabilities: {{drop: [ALL], add: [NET_BIND_SERVICE]}}\n      \
         readOnlyRootFilesystem: true\n      allowPrivilegeEscalation: false\n  \
         - name: priv\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         securityContext: {{privileged: true}}\n  \
         - name: default\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n  \
         - name: unmasked\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         securityContext: {{procMount: Unmasked}}\n"
    );
    let f = node.manifest("caps.yaml", &yaml);
    let o = node.apply(&f);
    assert!(o.status.success(), "{}", stderr(&o));
    let status = |c: &str, field: &str| {
        node.sh("caps", c, &format!("grep '^{field}:' /proc/self/status"))
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    // NET_BIND_SERVICE is capability 10
    assert_eq!(status("minimal", "CapEff"), format!("{:016x}", 1u64 << 10));
    assert_eq!(status("minimal", "NoNewPrivs"), "1");
    assert_eq!(status("default", "NoNewPrivs"), "0");
    assert_eq!(
        status("default", "CapEff"),
        "00000000a80425fb",
        "Docker's default set"
    );
    let host_bnd = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .unwrap();
    let priv_eff = u64::from_str_radix(&status("priv", "CapEff"), 16).unwrap();
    let host = u64::from_str_radix(&host_bnd, 16).unwrap();
    assert_eq!(
        priv_eff & host,
        host,
        "privileged has every capability the host has"
    );
    let o = node.out(&["exec", "caps", "-c", "minimal", "--", "touch", "/x"]);
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    node.sh("caps", "priv", "touch /x");
    // procMount: the default masks /proc paths (an empty file), Unmasked does not
    assert_eq!(
        node.sh("caps", "default", "wc -c < /proc/timer_list")
            .trim(),
        "0"
    );
    let unmasked = node.sh("caps", "unmasked", "wc -c < /proc/timer_list");
    assert!(unmasked.trim().parse::<u64>().unwrap() > 0, "{unmasked}");
    // the pod's sysctl, in the pod's network namespace only
    assert_eq!(
        node.sh(
            "caps",
            "default",
            "cat /proc/sys/net/ipv4/ip_unprivileged_port_start"
        ),
        "80\n"
    );
    let o = node.out(&[
        "exec",
        "caps",
        "-c",
        "minimal",
        "--",
        "sh",
        "-c",
        "echo 1 > /proc/sys/kernel/domainname",
    ]);
    assert!(!o.status.success(), "/proc/sys is read-only");
    node.delete_and_scan("caps");

    // an unsafe sysctl is refused before anything starts
    let f = node.manifest(
        "unsafe.yaml",
        &yaml.replace(
            "net.ipv4.ip_unprivileged_port_start, value: '80'",
            "kernel.msgmax, value: '1'",
        ),
    );
    let o = node.apply(&f);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.starts_with(&format!(
            "krun: {}: document 1 (Pod caps): spec.securityContext.sysctls[0].name: forbidden sysctl: \"kernel.msgmax\" not allowlisted",
            f.display()
        )),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(!node.ok(&["get", "pods"]).contains("caps"));
}

fn cgroup_v1(rel: &str, file: &str, controller: &str) -> String {
    std::fs::read_to_string(format!("/sys/fs/cgroup/{controller}/{rel}/{file}"))
        .unwrap_or_else(|e| panic!("{controller}/{rel}/{file}: {e}"))
        .trim()
        .to_string()
}

fn cgroup_v2(rel: &str, file: &str) -> String {
    std::fs::read_to_string(format!("/sys/fs/cgroup/{rel}/{file}"))
        .unwrap_or_else(|e| panic!("{rel}/{file}: {e}"))
        .trim()
        .to_string()
}

fn is_v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The oom_score_adj a container gets here: the kubelet's value, or this
/// process's own when the host refuses lower ones (no CAP_SYS_RESOURCE).
fn expected_oom(wanted: i32) -> i32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    let own: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if eff & (1 << 24) != 0 || wanted >= own {
        wanted
    } else {
        own
    }
}

#[test]
fn qos_classes_and_their_cgroups() {
    if !common::require_root("qos_classes_and_their_cgroups") {
        return;
    }
    let node = TestNode::new("ks-qos");
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: guaranteed}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  \
         - name: a\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         resources: {{limits: {{cpu: 500m, memory: 64Mi}}}}\n  \
         - name: b\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         resources: {{limits: {{cpu: 250m, memory: 32Mi}}}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: burstable}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  \
         - name: a\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         resources: {{requests: {{cpu: 100m, memory: 256Mi}}, limits: {{memory: 512Mi}}}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: besteffort}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  \
         - name: a\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"
    );
    let f = node.manifest("qos.yaml", &yaml);
    let o = node.apply(&f);
    assert!(o.status.success(), "{}", stderr(&o));
    for (pod, class) in [
        ("guaranteed", "Guaranteed"),
        ("burstable", "Burstable"),
        ("besteffort", "BestEffort"),
    ] {
        let d = node.ok(&["describe", "pod", pod]);
        assert!(
            d.lines()
                .any(|l| l.starts_with("QoS Class:") && l.trim_end().ends_with(class)),
            "{d}"
        );
        let y = node.ok(&["get", "pods", pod, "-o", "yaml"]);
        assert!(y.contains(&format!("qosClass: {class}")), "{y}");
    }
    let g = format!("krun/pod{}", node.uid("guaranteed"));
    let b = format!("krun/pod{}", node.uid("burstable"));
    let e = format!("krun/pod{}", node.uid("besteffort"));
    if is_v2() {
        // shares 768 -> weight 1 + (766 * 9999) / 262142 = 30
        assert_eq!(cgroup_v2(&g, "cpu.weight"), "30");
        assert_eq!(cgroup_v2(&g, "cpu.max"), "75000 100000");
        assert_eq!(cgroup_v2(&g, "memory.max"), (96u64 << 20).to_string());
        assert_eq!(cgroup_v2(&b, "cpu.max"), "max 100000");
        assert_eq!(cgroup_v2(&b, "memory.max"), (512u64 << 20).to_string());
        assert_eq!(cgroup_v2(&e, "cpu.weight"), "1");
    } else {
        // the pod cgroup, read on the host
        assert_eq!(cgroup_v1(&g, "cpu.shares", "cpu"), "768");
        assert_eq!(cgroup_v1(&g, "cpu.cfs_period_us", "cpu"), "100000");
        assert_eq!(cgroup_v1(&g, "cpu.cfs_quota_us", "cpu"), "75000");
        assert_eq!(
            cgroup_v1(&g, "memory.limit_in_bytes", "memory"),
            (96u64 << 20).to_string()
        );
        assert_eq!(cgroup_v1(&b, "cpu.shares", "cpu"), "102");
        assert_eq!(cgroup_v1(&b, "cpu.cfs_quota_us", "cpu"), "-1");
        assert_eq!(
            cgroup_v1(&b, "memory.limit_in_bytes", "memory"),
            (512u64 << 20).to_string()
        );
        assert_eq!(cgroup_v1(&e, "cpu.shares", "cpu"), "2");
        assert_eq!(cgroup_v1(&e, "cpu.cfs_quota_us", "cpu"), "-1");
        // each container's own cgroup, read from inside (its cgroup namespace)
        assert_eq!(
            node.sh("guaranteed", "a", "cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/memory/memory.limit_in_bytes"),
            format!("512\n50000\n{}\n", 64u64 << 20)
        );
        assert_eq!(
            node.sh(
                "guaranteed",
                "b",
                "cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us"
            ),
            "256\n25000\n"
        );
        assert_eq!(
            node.sh("burstable", "a", "cat /sys/fs/cgroup/cpu/cpu.shares"),
            "102\n"
        );
        // the containers are under the pod cgroup
        let procs = cgroup_v1(&g, "cgroup.procs", "memory");
        assert!(
            procs.is_empty(),
            "processes sit in the containers' cgroups: {procs}"
        );
        let children = std::fs::read_dir(format!("/sys/fs/cgroup/memory/{g}"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .count();
        assert_eq!(children, 2);
    }
    // oom_score_adj per QoS, as far as this host allows
    let mem_total: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .map(|v| {
            v.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap()
                * 1024
        })
        .unwrap();
    let burst = (1000 - (1000 * (256u64 << 20) / mem_total) as i32).clamp(3, 999);
    for (pod, wanted) in [
        ("guaranteed", -997),
        ("burstable", burst),
        ("besteffort", 1000),
    ] {
        let got = node.sh(pod, "a", "cat /proc/1/oom_score_adj");
        assert_eq!(got.trim(), expected_oom(wanted).to_string(), "{pod}");
    }
    if expected_oom(-997) != -997 {
        let d = node.ok(&["describe", "pod", "guaranteed"]);
        assert!(
            d.contains("OOMScoreAdjustLimited")
                && d.contains("oom_score_adj -997 (Guaranteed QoS) needs CAP_SYS_RESOURCE"),
            "{d}"
        );
    }
    for pod in ["guaranteed", "burstable", "besteffort"] {
        node.delete_and_scan(pod);
    }
}
