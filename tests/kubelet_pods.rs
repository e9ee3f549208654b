//! `krun` running real pods, end to end, as a user sees them through
//! `get pods`, `describe`, `logs`, `exec` and `delete`: init order,
//! restart policies, CrashLoopBackOff timing, OOM kills, grace periods,
//! previous logs, exec with and without a pty, image pull back-off, and
//! nothing left on the host once the pods are deleted.
mod common;
mod kubelet_util;
mod netplug_util;

use kubelet_util::*;
use std::time::{Duration, Instant};

fn ts(v: &serde_json::Value) -> jiff::Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
        .parse()
        .unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Deletes the pod and checks the host holds nothing of it any more.
fn delete_and_scan(node: &TestNode, name: &str) {
    node.delete_and_scan(name)
}

#[test]
fn init_containers_run_one_at_a_time_before_the_main_container() {
    if !common::require_root("init_containers_run_one_at_a_time_before_the_main_container") {
        return;
    }
    let node = TestNode::new("kp-init");
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: inits\nspec:\n  initContainers:\n  \
         - name: first\n    image: {BUSYBOX}\n    command: [sh, -c, 'echo first; sleep 1']\n  \
         - name: second\n    image: {BUSYBOX}\n    command: [sh, -c, 'echo second; sleep 1']\n  \
         containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sh, -c, 'echo app; sleep 3600']\n"
    );
    let f = node.manifest("inits.yaml", &yaml);
    let o = node.apply(&f);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "pod/inits created (Running)"
    );
    let row = node.row("inits");
    assert_eq!(row[1..4], ["1/1", "Running", "0"], "{row:?}");
    let pod = node.pod("inits");
    let init = pod["status"]["initContainerStatuses"].as_array().unwrap();
    let t = |s: &serde_json::Value, k: &str| ts(&s["state"]["terminated"][k]);
    assert_eq!(init[0]["name"], "first");
    assert_eq!(init[0]["state"]["terminated"]["reason"], "Completed");
    assert_eq!(init[1]["state"]["terminated"]["reason"], "Completed");
    // second starts after first finished, app after second finished
    assert!(
        t(&init[1], "startedAt") >= t(&init[0], "finishedAt"),
        "{pod:#}"
    );
    let app = &pod["status"]["containerStatuses"][0];
    assert!(ts(&app["state"]["running"]["startedAt"]) >= t(&init[1], "finishedAt"));
    for (c, want) in [("first", "first"), ("second", "second"), ("app", "app")] {
        assert_eq!(node.ok(&["logs", "inits", "-c", c]).trim(), want);
    }
    let describe = node.ok(&["describe", "pod", "inits"]);
    for line in [
        "Init Containers:",
        "Started container first",
        "Started container second",
        "Started container app",
    ] {
        assert!(describe.contains(line), "no {line:?} in:\n{describe}");
    }
    delete_and_scan(&node, "inits");
}

#[test]
fn restart_policies_with_exit_zero_and_one() {
    if !common::require_root("restart_policies_with_exit_zero_and_one") {
        return;
    }
    let node = TestNode::new("kp-policy");
    // (policy, exit code, STATUS once settled, restarted?)
    let cases = [
        ("Never", 0, "Completed", false),
        ("Never", 1, "Error", false),
        ("OnFailure", 0, "Completed", false),
        ("OnFailure", 1, "CrashLoopBackOff", true),
        ("Always", 0, "CrashLoopBackOff", true),
        ("Always", 1, "CrashLoopBackOff", true),
    ];
    for (policy, code, _, _) in cases {
        let name = format!("{}-{code}", policy.to_lowercase());
        let f = node.manifest(
            &format!("{name}.yaml"),
            &pod_yaml(&name, policy, 1, &format!("echo ran; exit {code}")),
        );
        // -d returns with the first outcome: not asserted here, the table is
        let _ = node.apply(&f);
    }
    for (policy, code, want, restarted) in cases {
        let name = format!("{}-{code}", policy.to_lowercase());
        node.wait_status(&name, want, 30);
        let row = node.row(&name);
        let restarts: i32 = row[3].parse().unwrap();
        assert_eq!(restarts > 0, restarted, "{name}: {row:?}");
        let pod = node.pod(&name);
        let phase = pod["status"]["phase"].as_str().unwrap();
        let want_phase = match (policy, code) {
            ("Never", 0) | ("OnFailure", 0) => "Succeeded",
            ("Never", 1) => "Failed",
            _ => "Running",
        };
        assert_eq!(phase, want_phase, "{name}");
        if restarted {
            let last = &pod["status"]["containerStatuses"][0]["lastState"]["terminated"];
            assert_eq!(last["exitCode"], code, "{name}: {last}");
        }
    }
    for (policy, code, _, _) in cases {
        delete_and_scan(&node, &format!("{}-{code}", policy.to_lowercase()));
    }
}

#[test]
fn crash_loop_back_off_doubles_from_ten_seconds() {
    if !common::require_root("crash_loop_back_off_doubles_from_ten_seconds") {
        return;
    }
    let node = TestNode::new("kp-backoff");
    let f = node.manifest(
        "crash.yaml",
        &pod_yaml("crash", "Always", 1, "sleep 1; exit 1"),
    );
    let _ = node.apply(&f);
    // Each restart as get -o json shows it: the run's start against the
    // previous run's end.
    let mut gaps = Vec::new();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while gaps.len() < 4 {
        assert!(Instant::now() < deadline, "restarts seen: {gaps:?}");
        let pod = node.pod("crash");
        let s = &pod["status"]["containerStatuses"][0];
        let n = s["restartCount"].as_i64().unwrap();
        if n > seen && s["state"]["running"].is_object() {
            seen = n;
            let start = ts(&s["state"]["running"]["startedAt"]);
            let end = ts(&s["lastState"]["terminated"]["finishedAt"]);
            gaps.push((start - end).get_seconds());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // the first restart is immediate, then 10 s, 20 s, 40 s (±2 s)
    for (got, want) in gaps.iter().zip([0, 10, 20, 40]) {
        assert!(
            (got - want).abs() <= 2,
            "back-offs {gaps:?}, want 0 10 20 40"
        );
    }
    let describe = node.ok(&["describe", "pod", "crash"]);
    assert!(
        describe.contains("Back-off restarting failed container main in pod crash_default("),
        "{describe}"
    );
    delete_and_scan(&node, "crash");
}

#[test]
fn a_container_over_its_memory_limit_is_oom_killed() {
    if !common::require_root("a_container_over_its_memory_limit_is_oom_killed") {
        return;
    }
    let node = TestNode::new("kp-oom");
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: oom\nspec:\n  restartPolicy: Never\n  \
         containers:\n  - name: hog\n    image: {BUSYBOX}\n    \
         command: [dd, if=/dev/zero, of=/dev/null, bs=256M, count=1]\n    \
         resources:\n      limits:\n        memory: 32Mi\n"
    );
    let f = node.manifest("oom.yaml", &yaml);
    let _ = node.apply(&f);
    node.wait_status("oom", "OOMKilled", 30);
    let pod = node.pod("oom");
    let t = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["reason"], "OOMKilled");
    assert_eq!(t["exitCode"], 137);
    assert_eq!(pod["status"]["phase"], "Failed");
    delete_and_scan(&node, "oom");
}

#[test]
fn delete_honours_the_grace_period() {
    if !common::require_root("delete_honours_the_grace_period") {
        return;
    }
    let node = TestNode::new("kp-grace");
    let trap = node.manifest(
        "trap.yaml",
        &pod_yaml(
            "trap",
            "Always",
            10,
            "trap 'echo got-term; exit 0' TERM; while true; do sleep 0.1; done",
        ),
    );
    let ignore = node.manifest(
        "ignore.yaml",
        &pod_yaml(
            "ignore",
            "Always",
            3,
            "trap '' TERM; while true; do sleep 0.1; done",
        ),
    );
    for f in [&trap, &ignore] {
        let o = node.apply(f);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // the trap answers at once, far inside its 10 s
    let t0 = Instant::now();
    delete_and_scan(&node, "trap");
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "trap pod took {took:?}");
    // SIGTERM ignored: SIGKILL once the 3 s are up
    let t0 = Instant::now();
    delete_and_scan(&node, "ignore");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(7),
        "ignore pod took {took:?}"
    );
}

#[test]
fn logs_of_the_previous_run_after_a_restart() {
    if !common::require_root("logs_of_the_previous_run_after_a_restart") {
        return;
    }
    let node = TestNode::new("kp-logs");
    let f = node.manifest(
        "again.yaml",
        &pod_yaml(
            "again",
            "Always",
            1,
            "echo run-$(cat /proc/sys/kernel/random/uuid); echo to-stderr >&2; sleep 2; exit 1",
        ),
    );
    let _ = node.apply(&f);
    node.wait(30, "a restart", || {
        node.row("again").get(3).is_some_and(|r| r != "0")
    });
    node.wait(10, "the second run's line", || {
        node.ok(&["logs", "again"]).starts_with("run-")
    });
    let current = node.ok(&["logs", "again"]);
    let previous = node.ok(&["logs", "again", "--previous"]);
    let first = |s: &str| s.lines().next().unwrap_or_default().to_string();
    assert!(previous.starts_with("run-"), "{previous}");
    assert_ne!(first(&current), first(&previous));
    assert_eq!(previous.lines().nth(1), Some("to-stderr"));
    // --tail and --timestamps, as kubectl prints them
    assert_eq!(
        node.ok(&["logs", "again", "-p", "--tail", "1"]),
        "to-stderr\n"
    );
    let stamped = node.ok(&["logs", "again", "-p", "--timestamps"]);
    let (stamp, rest) = stamped.lines().next().unwrap().split_once(' ').unwrap();
    assert!(stamp.parse::<jiff::Timestamp>().is_ok(), "{stamped}");
    assert_eq!(rest, first(&previous));
    // the log files sit where the kubelet puts them
    let uid = node.uid("again");
    let dir = node.log_root().join(format!("default_again_{uid}/main"));
    assert!(dir.join("0.log").is_file() && dir.join("1.log").is_file());
    let o = node.out(&["logs", "again", "-c", "nope"]);
    assert_eq!(
        stderr(&o).trim(),
        "krun: container nope is not valid for pod again"
    );
    delete_and_scan(&node, "again");
}

#[test]
fn exec_with_and_without_a_terminal() {
    if !common::require_root("exec_with_and_without_a_terminal") {
        return;
    }
    let node = TestNode::new("kp-exec");
    let f = node.manifest("box.yaml", &pod_yaml("box", "Always", 1, "sleep 3600"));
    assert!(node.apply(&f).status.success());
    assert_eq!(node.ok(&["exec", "box", "--", "hostname"]).trim(), "box");
    // the exit code comes back; no terminal without -t
    let o = node.out(&[
        "exec",
        "box",
        "--",
        "sh",
        "-c",
        "test -t 0 || echo no-tty; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "no-tty");
    // stdin with -i
    let mut c = node.krun();
    c.args(["exec", "-i", "box", "--", "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through-stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through-stdin\n");
    // -it under a terminal (script gives krun one): a pty inside
    let krun = common::bin("krun");
    let cmd = format!(
        "{} exec -it box -- sh -c 'tty; echo in-pty'",
        krun.display()
    );
    let mut s = std::process::Command::new("script");
    s.args(["-qec", &cmd, "/dev/null"]);
    for (k, v) in node.krun().get_envs() {
        if let Some(v) = v {
            s.env(k, v);
        }
    }
    let out = common::run_ok(&mut s);
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert!(out.contains("in-pty"), "{out:?}");
    delete_and_scan(&node, "box");
}

#[test]
fn a_missing_image_goes_from_err_image_pull_to_image_pull_back_off() {
    if !common::require_root("a_missing_image_goes_from_err_image_pull_to_image_pull_back_off") {
        return;
    }
    let node = TestNode::new("kp-pull");
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: nothere\nspec:\n  containers:\n  \
                - name: main\n    image: 127.0.0.1:5000/test/does-not-exist:v1\n";
    let f = node.manifest("nothere.yaml", yaml);
    let o = node.apply(&f);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with(
            "krun: pod/nothere created but not running: container main: ErrImagePull: "
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    node.wait_status("nothere", "ImagePullBackOff", 10);
    let describe = node.ok(&["describe", "pod", "nothere"]);
    for want in [
        "Failed to pull image \"127.0.0.1:5000/test/does-not-exist:v1\"",
        "Error: ErrImagePull",
        "Back-off pulling image \"127.0.0.1:5000/test/does-not-exist:v1\"",
        "Error: ImagePullBackOff",
    ] {
        assert!(describe.contains(want), "no {want:?} in\n{describe}");
    }
    // after the 10 s back-off it is pulled again and fails again
    node.wait_status("nothere", "ErrImagePull", 15);
    delete_and_scan(&node, "nothere");
}

#[test]
fn bad_manifests_are_refused_with_one_line_and_nothing_started() {
    if !common::require_root("bad_manifests_are_refused_with_one_line_and_nothing_started") {
        return;
    }
    let node = TestNode::new("kp-bad");
    let ctr = |extra: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    \
             image: {BUSYBOX}\n{extra}"
        )
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "malformed",
            "apiVersion: v1\nkind: Pod\nmetadata: [\n".into(),
            "malformed YAML",
        ),
        (
            "kind",
            "apiVersion: v1\nkind: Deploymint\nmetadata:\n  name: p\n".into(),
            "Deploymint",
        ),
        (
            "field",
            ctr("    imagePullPolicyy: Always\n"),
            "spec.containers[0].imagePullPolicyy",
        ),
        (
            "noimage",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n"
                .into(),
            "spec.containers[0].image",
        ),
        (
            "name",
            ctr("").replace("name: p\n", "name: Bad_Name\n"),
            "metadata.name",
        ),
        (
            "dup",
            format!("{}  - name: c\n    image: {BUSYBOX}\n", ctr("")),
            "spec.containers[1].name",
        ),
        (
            "quantity",
            ctr("    resources:\n      limits:\n        memory: 12Zb\n"),
            "spec.containers[0].resources.limits.memory",
        ),
        (
            "port",
            ctr("    ports:\n    - containerPort: 70000\n"),
            "spec.containers[0].ports[0].containerPort",
        ),
        (
            "image",
            ctr("").replace(BUSYBOX, "127.0.0.1:5000/test/does-not-exist:v1"),
            "spec.containers[0].image",
        ),
    ];
    for (tag, yaml, field) in cases {
        let f = node.manifest(&format!("{tag}.yaml"), &yaml);
        // foreground (`krun FILE`): the image is checked before anything runs
        let o = node.out(&[f.to_str().unwrap()]);
        assert!(!o.status.success(), "{tag} was accepted");
        let err = stderr(&o);
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with(&format!("krun: {}", f.display())),
            "{tag}: {err}"
        );
        assert!(last.contains(field), "{tag}: no {field:?} in {err:?}");
        if tag != "malformed" && tag != "kind" {
            assert!(last.contains("document 1"), "{tag}: {err}");
        }
        let pods = node.root().join("pods");
        let n = std::fs::read_dir(&pods).map(|d| d.count()).unwrap_or(0);
        assert_eq!(n, 0, "{tag}: a pod was admitted");
    }
    assert!(node.leftovers(&[], &[], true).is_empty());
}

#[test]
fn foreground_run_streams_logs_and_ctrl_c_deletes_the_pod() {
    if !common::require_root("foreground_run_streams_logs_and_ctrl_c_deletes_the_pod") {
        return;
    }
    let node = TestNode::new("kp-fg");
    let f = node.manifest(
        "fg.yaml",
        &pod_yaml(
            "fg",
            "Always",
            5,
            "echo hello-fg; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
        ),
    );
    let mut c = node.krun();
    c.arg(&f)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(l);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lines.iter().any(|l: &String| l == "[main] hello-fg") {
        assert!(Instant::now() < deadline, "{lines:?}");
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(l);
        }
    }
    let uid = node.uid("fg");
    let pids = node.pids(&uid);
    // Ctrl-C
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(130));
    lines.extend(rx.try_iter());
    assert!(lines.contains(&"pod/fg created".to_string()), "{lines:?}");
    assert!(lines.contains(&"[main] bye".to_string()), "{lines:?}");
    assert!(
        lines.contains(&"pod \"fg\" deleted".to_string()),
        "{lines:?}"
    );
    let left = node.leftovers(&[uid], &pids, true);
    assert!(left.is_empty(), "{left:#?}");
}

#[test]
fn shared_and_host_namespaces() {
    if !common::require_root("shared_and_host_namespaces") {
        return;
    }
    let node = TestNode::new("kp-ns");
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: shared\nspec:\n  shareProcessNamespace: true\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  \
         - name: a\n    image: {BUSYBOX}\n    command: [sleep, '3601']\n  \
         - name: b\n    image: {BUSYBOX}\n    command: [sleep, '3602']\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata:\n  name: host\nspec:\n  hostNetwork: true\n  hostPID: true\n  \
         hostIPC: true\n  terminationGracePeriodSeconds: 1\n  containers:\n  \
         - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3603']\n"
    );
    let f = node.manifest("ns.yaml", &yaml);
    let o = node.apply(&f);
    assert!(o.status.success(), "{}", stderr(&o));
    // one PID namespace: b sees a's process, and PID 1 is the pause process
    let ps = node.ok(&["exec", "shared", "-c", "b", "--", "ps", "-o", "pid,args"]);
    assert!(
        ps.contains("sleep 3601") && ps.contains("sleep 3602"),
        "{ps}"
    );
    let init = node.ok(&["exec", "shared", "-c", "a", "--", "cat", "/proc/1/cmdline"]);
    assert!(init.ends_with("pause\0"), "{init:?}");
    // the host's namespaces: its PID 1, its links, its IPC namespace
    let host_init = std::fs::read_to_string("/proc/1/cmdline").unwrap();
    assert_eq!(
        node.ok(&["exec", "host", "--", "cat", "/proc/1/cmdline"]),
        host_init
    );
    let links = node.ok(&["exec", "host", "--", "ip", "-o", "link"]);
    assert!(links.contains(&node.bridge), "{links}");
    let ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    let inside = node.ok(&["exec", "host", "--", "readlink", "/proc/self/ns/ipc"]);
    assert_eq!(inside.trim(), ipc.to_str().unwrap());
    let host_name = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert_eq!(
        node.ok(&["exec", "host", "--", "hostname"]).trim(),
        host_name
    );
    let uid = node.uid("shared");
    let pause =
        std::fs::read_to_string(node.run.join("supervisors").join(&uid).join("pause.pid")).unwrap();
    let pause: i32 = pause.trim().parse().unwrap();
    delete_and_scan(&node, "shared");
    assert!(
        !std::path::Path::new(&format!("/proc/{pause}")).exists() || {
            let st = std::fs::read_to_string(format!("/proc/{pause}/stat")).unwrap_or_default();
            st.contains(") Z ")
        }
    );
    delete_and_scan(&node, "host");
}

#[test]
fn quickstart_flask_pod_answers_on_host_port_8080() {
    if !common::require_root("quickstart_flask_pod_answers_on_host_port_8080") {
        return;
    }
    let node = TestNode::new("kp-flask");
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/flask-pod.yaml");
    let mut c = node.krun();
    c.arg(&example)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut s = String::new();
        let _ = std::io::BufReader::new(stdout).read_to_string(&mut s);
        s
    });
    // what `curl 127.0.0.1:8080` gets, once flask listens
    let deadline = Instant::now() + Duration::from_secs(120);
    let body = loop {
        let o = std::process::Command::new("curl")
            .args(["-s", "--max-time", "2", "http://127.0.0.1:8080/"])
            .output()
            .unwrap();
        if o.status.success() && !o.stdout.is_empty() {
            break String::from_utf8_lossy(&o.stdout).into_owned();
        }
        if Instant::now() > deadline {
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let _ = child.wait();
            panic!(
                "no answer on 127.0.0.1:8080; krun printed:\n{}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(!body.is_empty());
    let uid = node.uid("flask-app");
    let pids = node.pids(&uid);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let out = reader.join().unwrap();
    assert!(out.contains("pod/flask-app created"), "{out}");
    assert!(out.contains("[flask-app] "), "no flask log line in:\n{out}");
    assert!(out.contains("pod \"flask-app\" deleted"), "{out}");
    let left = node.leftovers(&[uid], &pids, true);
    assert!(left.is_empty(), "{left:#?}");
}

#[test]
fn a_tty_container_logs_what_its_terminal_shows() {
    if !common::require_root("a_tty_container_logs_what_its_terminal_shows") {
        return;
    }
    let node = TestNode::new("kp-tty");
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: tty\nspec:\n  terminationGracePeriodSeconds: 1\n  \
         containers:\n  - name: t\n    image: {BUSYBOX}\n    tty: true\n    \
         command: [sh, -c, 'tty; echo on-a-terminal; sleep 3600']\n"
    );
    let f = node.manifest("tty.yaml", &yaml);
    let o = node.apply(&f);
    assert!(o.status.success(), "{}", stderr(&o));
    node.wait(10, "the terminal's lines", || {
        node.ok(&["logs", "tty"]).contains("on-a-terminal")
    });
    let logs = node.ok(&["logs", "tty"]);
    // a terminal turns \n into \r\n; the CRI log keeps what it shows
    assert!(logs.starts_with("/dev/pts/"), "{logs:?}");
    delete_and_scan(&node, "tty");
}
