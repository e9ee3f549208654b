//! Probes, lifecycle hooks and sidecars on real pods, end to end, as a
//! user sees them through `get pods`, `describe`, `logs` and `exec`:
//! a liveness probe that starts failing after 30 s restarts the
//! container; readiness toggles READY; a startup probe holds liveness
//! off; tcpSocket and gRPC probes from the node into the pod; postStart
//! failures; preStop before the stop signal; sidecars that start in
//! order, outlive the main container's start and stop last.
mod common;
mod kubelet_util;
mod netplug_util;

use kubelet_util::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ts(v: &serde_json::Value) -> jiff::Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
        .parse()
        .unwrap()
}

fn applied(node: &TestNode, file: &str, yaml: &str) {
    let f = node.manifest(file, yaml);
    let o = node.apply(&f);
    assert!(
        o.status.success(),
        "apply {file}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `describe pod NAME` with runs of blanks squashed (columns vary).
fn describe(node: &TestNode, name: &str) -> String {
    let out = node.ok(&["describe", "pod", name]);
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first status of container `c` (main containers) in `pod`.
fn cstatus(pod: &serde_json::Value, c: usize) -> serde_json::Value {
    pod["status"]["containerStatuses"][c].clone()
}

fn condition(pod: &serde_json::Value, kind: &str) -> serde_json::Value {
    pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == kind)
        .cloned()
        .unwrap_or_default()
}

/// Deletes the pod and checks nothing of it is left on the host.
fn delete_clean(node: &TestNode, name: &str) {
    let uid = node.uid(name);
    let pids = node.pids(&uid);
    node.ok(&["delete", "pod", name]);
    let left = node.leftovers(&[uid], &pids, false);
    assert!(left.is_empty(), "left after delete: {left:#?}");
}

fn head(name: &str, grace: u32) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  \
         terminationGracePeriodSeconds: {grace}\n"
    )
}

#[test]
fn a_liveness_probe_failing_after_30s_restarts_the_container() {
    if !common::require_root("a_liveness_probe_failing_after_30s_restarts_the_container") {
        return;
    }
    let node = TestNode::new("kpr-live");
    // healthy for 30 s, then the probe's file is gone
    let yaml = format!(
        "{}  containers:\n  - name: main\n    image: {BUSYBOX}\n    \
         command: [sh, -c, 'touch /tmp/healthy; sleep 30; rm -f /tmp/healthy; sleep 3600']\n    \
         livenessProbe:\n      exec: {{command: [cat, /tmp/healthy]}}\n      \
         periodSeconds: 2\n      failureThreshold: 3\n",
        head("live", 1)
    );
    applied(&node, "live.yaml", &yaml);
    let t0 = Instant::now();
    // no restart while the file is there
    std::thread::sleep(Duration::from_secs(25));
    let row = node.row("live");
    assert_eq!(row[1..4], ["1/1", "Running", "0"], "{row:?}");
    node.wait(40, "the liveness restart", || {
        cstatus(&node.pod("live"), 0)["restartCount"] == 1
    });
    let took = t0.elapsed();
    // 30 s healthy, then three failures 2 s apart and a 2 s stop at most
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(50),
        "restarted after {took:?}"
    );
    let pod = node.pod("live");
    let s = cstatus(&pod, 0);
    let last = &s["lastState"]["terminated"];
    let lived = ts(&last["finishedAt"]) - ts(&last["startedAt"]);
    assert!(lived.get_seconds() >= 30, "{last}");
    // the sh ignored SIGTERM as PID 1: SIGKILL after the 2 s minimum
    assert_eq!(last["exitCode"], 137, "{last}");
    assert!(s["state"]["running"].is_object(), "{s}");
    node.wait(10, "READY 1/1 after the restart", || {
        node.row("live")[1] == "1/1"
    });
    let d = describe(&node, "live");
    for want in [
        "Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory",
        "Container main failed liveness probe, will be restarted",
        "Liveness: exec [cat /tmp/healthy] delay=0s timeout=1s period=2s #success=1 #failure=3",
    ] {
        assert!(d.contains(want), "no {want:?} in:\n{d}");
    }
    let row = node.row("live");
    assert_eq!(row[3].split_whitespace().next(), Some("1"), "{row:?}");
    delete_clean(&node, "live");
}

#[test]
fn readiness_toggles_ready_and_the_ready_conditions() {
    if !common::require_root("readiness_toggles_ready_and_the_ready_conditions") {
        return;
    }
    let node = TestNode::new("kpr-ready");
    let yaml = format!(
        "{}  containers:\n  - name: web\n    image: {BUSYBOX}\n    \
         command: [sh, -c, 'mkdir -p /www && echo ok > /www/ready && exec httpd -f -p 8080 -h /www']\n    \
         ports: [{{name: http, containerPort: 8080}}]\n    \
         readinessProbe:\n      httpGet: {{path: /ready, port: http, httpHeaders: [{{name: X-Check, value: krun}}]}}\n      \
         periodSeconds: 1\n      failureThreshold: 1\n",
        head("ready", 2)
    );
    applied(&node, "ready.yaml", &yaml);
    node.wait(15, "READY 1/1", || node.row("ready")[1] == "1/1");
    let pod = node.pod("ready");
    assert_eq!(condition(&pod, "Ready")["status"], "True");
    assert_eq!(condition(&pod, "ContainersReady")["status"], "True");
    assert_eq!(cstatus(&pod, 0)["ready"], true);

    node.ok(&["exec", "ready", "--", "rm", "/www/ready"]);
    node.wait(10, "READY 0/1", || node.row("ready")[1] == "0/1");
    let row = node.row("ready");
    assert_eq!(row[2], "Running", "{row:?}");
    let pod = node.pod("ready");
    let ready = condition(&pod, "Ready");
    assert_eq!(ready["status"], "False", "{ready}");
    assert_eq!(ready["reason"], "ContainersNotReady");
    assert_eq!(
        ready["message"], "containers with unready status: [web]",
        "{ready}"
    );
    assert_eq!(condition(&pod, "ContainersReady")["status"], "False");
    assert_eq!(cstatus(&pod, 0)["ready"], false);
    let yaml_out = node.ok(&["get", "pods", "ready", "-o", "yaml"]);
    assert!(yaml_out.contains("ready: false"), "{yaml_out}");
    let d = describe(&node, "ready");
    for want in [
        "Readiness probe failed: HTTP probe failed with statuscode: 404",
        "Readiness: http-get http://:http/ready delay=0s timeout=1s period=1s #success=1 #failure=1",
    ] {
        assert!(d.contains(want), "no {want:?} in:\n{d}");
    }

    node.ok(&["exec", "ready", "--", "sh", "-c", "echo ok > /www/ready"]);
    node.wait(10, "READY 1/1 again", || node.row("ready")[1] == "1/1");
    let pod = node.pod("ready");
    assert_eq!(condition(&pod, "Ready")["status"], "True");
    // readiness never restarts anything
    assert_eq!(cstatus(&pod, 0)["restartCount"], 0);
    delete_clean(&node, "ready");
}

#[test]
fn a_startup_probe_holds_liveness_off_and_kills_past_its_threshold() {
    if !common::require_root("a_startup_probe_holds_liveness_off_and_kills_past_its_threshold") {
        return;
    }
    let node = TestNode::new("kpr-start");
    // liveness would kill at its first failure; it must not run before
    // the startup probe passes at ~6 s
    let slow = format!(
        "{}  containers:\n  - name: main\n    image: {BUSYBOX}\n    \
         command: [sh, -c, 'sleep 6; touch /tmp/up; sleep 3600']\n    \
         startupProbe:\n      exec: {{command: [test, -e, /tmp/up]}}\n      periodSeconds: 1\n      failureThreshold: 30\n    \
         livenessProbe:\n      exec: {{command: [test, -e, /tmp/up]}}\n      periodSeconds: 1\n      failureThreshold: 1\n    \
         readinessProbe:\n      exec: {{command: [test, -e, /tmp/up]}}\n      periodSeconds: 1\n",
        head("slow", 1)
    );
    let never = format!(
        "{}  containers:\n  - name: main\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         startupProbe:\n      exec: {{command: ['false']}}\n      periodSeconds: 1\n      failureThreshold: 2\n",
        head("never", 1)
    );
    applied(&node, "slow.yaml", &slow);
    applied(&node, "never.yaml", &never);
    let t0 = Instant::now();
    let pod = node.pod("slow");
    let s = cstatus(&pod, 0);
    assert_eq!(
        (s["started"].clone(), s["ready"].clone()),
        (false.into(), false.into()),
        "{s}"
    );
    assert_eq!(node.row("slow")[1], "0/1");
    node.wait(15, "slow to be started and ready", || {
        let s = cstatus(&node.pod("slow"), 0);
        s["started"] == true && s["ready"] == true
    });
    assert!(t0.elapsed() >= Duration::from_secs(4), "{:?}", t0.elapsed());
    assert_eq!(node.row("slow")[1..4], ["1/1", "Running", "0"]);
    let d = describe(&node, "slow");
    assert!(d.contains("Startup probe failed"), "{d}");
    assert!(!d.contains("Liveness probe failed"), "{d}");
    assert!(!d.contains("failed liveness probe"), "{d}");

    node.wait(20, "the startup kill of never", || {
        cstatus(&node.pod("never"), 0)["restartCount"].as_i64() >= Some(1)
    });
    let d = describe(&node, "never");
    for want in [
        "Startup probe failed:",
        "Container main failed startup probe, will be restarted",
    ] {
        assert!(d.contains(want), "no {want:?} in:\n{d}");
    }
    delete_clean(&node, "slow");
    delete_clean(&node, "never");
}

#[test]
fn tcp_socket_probes_connect_from_the_node() {
    if !common::require_root("tcp_socket_probes_connect_from_the_node") {
        return;
    }
    let node = TestNode::new("kpr-tcp");
    // the port opens after 3 s
    let yaml = format!(
        "{}  containers:\n  - name: main\n    image: {BUSYBOX}\n    \
         command: [sh, -c, 'sleep 3; mkdir -p /w; httpd -p 7000 -h /w; exec sleep 3600']\n    \
         readinessProbe:\n      tcpSocket: {{port: 7000}}\n      periodSeconds: 1\n      failureThreshold: 1\n",
        head("tcp", 1)
    );
    applied(&node, "tcp.yaml", &yaml);
    assert_eq!(node.row("tcp")[1], "0/1");
    node.wait(15, "READY 1/1", || node.row("tcp")[1] == "1/1");
    let ip = node.pod("tcp")["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let d = describe(&node, "tcp");
    let want = format!("Readiness probe failed: dial tcp {ip}:7000: connect: connection refused");
    assert!(d.contains(&want), "no {want:?} in:\n{d}");
    // the server goes away: not ready again
    node.ok(&["exec", "tcp", "--", "sh", "-c", "kill $(pidof httpd)"]);
    node.wait(15, "READY 0/1 after the server's end", || {
        node.row("tcp")[1] == "0/1"
    });
    delete_clean(&node, "tcp");
}

#[test]
fn probes_of_a_host_network_pod_go_to_the_node_address() {
    if !common::require_root("probes_of_a_host_network_pod_go_to_the_node_address") {
        return;
    }
    let node = TestNode::new("kpr-host");
    // a free port on the host
    let port = {
        let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let yaml = format!(
        "{}  hostNetwork: true\n  containers:\n  - name: main\n    image: {BUSYBOX}\n    \
         command: [sh, -c, 'mkdir -p /tmp/w && echo up > /tmp/w/up && exec httpd -f -p {port} -h /tmp/w']\n    \
         readinessProbe:\n      httpGet: {{path: /up, port: {port}}}\n      periodSeconds: 1\n",
        head("hostnet", 1)
    );
    applied(&node, "hostnet.yaml", &yaml);
    node.wait(15, "READY 1/1", || node.row("hostnet")[1] == "1/1");
    let pod = node.pod("hostnet");
    // the pod's address is the node's, and the probe went there
    assert_eq!(pod["status"]["podIP"], pod["status"]["hostIP"], "{pod:#}");
    node.ok(&["exec", "hostnet", "--", "rm", "/tmp/w/up"]);
    node.wait(10, "READY 0/1", || node.row("hostnet")[1] == "0/1");
    let d = describe(&node, "hostnet");
    assert!(
        d.contains("Readiness probe failed: HTTP probe failed with statuscode: 404"),
        "{d}"
    );
    delete_clean(&node, "hostnet");
}

/// The test's gRPC health server (tests/fixtures/grpc_health.rs), built
/// static with rustc so it runs in a busybox container.
fn grpc_server(dir: &std::path::Path) -> std::path::PathBuf {
    let src =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/grpc_health.rs");
    let out = dir.join("grpc-health");
    // the rustc of the toolchain running the tests: RUSTC, or beside CARGO
    let rustc = std::env::var_os("RUSTC")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let cargo = std::path::PathBuf::from(std::env::var_os("CARGO")?);
            Some(cargo.with_file_name("rustc")).filter(|p| p.exists())
        })
        .unwrap_or_else(|| "rustc".into());
    let o = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "target-feature=+crt-static",
            "-o",
        ])
        .arg(&out)
        .arg(&src)
        .output()
        .expect("running rustc");
    assert!(
        o.status.success(),
        "building the gRPC health server: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

#[test]
fn grpc_probes_call_the_health_service_in_the_pod() {
    if !common::require_root("grpc_probes_call_the_health_service_in_the_pod") {
        return;
    }
    let node = TestNode::new("kpr-grpc");
    let bin = grpc_server(&node.base);
    // the container waits for the server binary the test copies in
    let yaml = format!(
        "{}  containers:\n  - name: main\n    image: {BUSYBOX}\n    \
         command: [sh, -c, 'while [ ! -x /tmp/grpc-health ]; do sleep 0.2; done; exec /tmp/grpc-health 9000 /tmp/serving']\n    \
         readinessProbe:\n      grpc: {{port: 9000, service: krun.test}}\n      periodSeconds: 1\n      failureThreshold: 1\n    \
         livenessProbe:\n      grpc: {{port: 9000}}\n      periodSeconds: 1\n      failureThreshold: 30\n",
        head("grpc", 1)
    );
    applied(&node, "grpc.yaml", &yaml);
    let mut child = node
        .krun()
        .args([
            "exec",
            "-i",
            "grpc",
            "--",
            "sh",
            "-c",
            "cat > /tmp/g.part && chmod 755 /tmp/g.part && mv /tmp/g.part /tmp/grpc-health",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&bin).unwrap())
        .unwrap();
    assert!(child.wait().unwrap().success());
    // no /tmp/serving: NOT_SERVING, not ready
    node.wait(15, "a NOT_SERVING answer", || {
        describe(&node, "grpc")
            .contains("Readiness probe failed: service unhealthy (responded with \"NOT_SERVING\")")
    });
    assert_eq!(node.row("grpc")[1], "0/1");
    node.ok(&["exec", "grpc", "--", "touch", "/tmp/serving"]);
    node.wait(10, "READY 1/1", || node.row("grpc")[1] == "1/1");
    let logs = node.ok(&["logs", "grpc"]);
    assert!(
        logs.contains("check service=\"krun.test\" status=SERVING"),
        "{logs}"
    );
    assert!(logs.contains("check service=\"\" status=SERVING"), "{logs}");
    // the liveness probe (service "") kept the container alive throughout
    assert_eq!(cstatus(&node.pod("grpc"), 0)["restartCount"], 0);
    let d = describe(&node, "grpc");
    assert!(
        d.contains("Readiness: grpc <pod>:9000 krun.test delay=0s timeout=1s period=1s #success=1 #failure=1"),
        "{d}"
    );
    delete_clean(&node, "grpc");
}

#[test]
fn post_start_holds_running_and_its_failure_kills_the_container() {
    if !common::require_root("post_start_holds_running_and_its_failure_kills_the_container") {
        return;
    }
    let node = TestNode::new("kpr-post");
    let good = format!(
        "{}  containers:\n  - name: main\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         lifecycle:\n      postStart:\n        exec: {{command: [sh, -c, 'sleep 3; echo hooked > /tmp/hook']}}\n",
        head("good", 1)
    );
    let bad = format!(
        "{}  containers:\n  - name: main\n    image: {BUSYBOX}\n    \
         command: [sh, -c, 'echo started; exec sleep 3600']\n    \
         lifecycle:\n      postStart:\n        exec: {{command: [sh, -c, 'exit 3']}}\n",
        head("bad", 1)
    );
    let gf = node.manifest("good.yaml", &good);
    // apply -d returns once Running: after the hook
    let t0 = Instant::now();
    let o = node.apply(&gf);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(t0.elapsed() >= Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(node.row("good")[1..3], ["1/1", "Running"]);
    assert_eq!(
        node.ok(&["exec", "good", "--", "cat", "/tmp/hook"]),
        "hooked\n"
    );

    // the sleep handler holds the start too
    let nap = format!(
        "{}  containers:\n  - name: main\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         lifecycle:\n      postStart:\n        sleep: {{seconds: 2}}\n",
        head("nap", 1)
    );
    let nf = node.manifest("nap.yaml", &nap);
    let t0 = Instant::now();
    let o = node.apply(&nf);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(t0.elapsed() >= Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(node.row("nap")[1..3], ["1/1", "Running"]);
    delete_clean(&node, "nap");

    let bf = node.manifest("bad.yaml", &bad);
    let _ = node.apply(&bf);
    node.wait(30, "a restart after the failed hook", || {
        cstatus(&node.pod("bad"), 0)["restartCount"].as_i64() >= Some(1)
    });
    let d = describe(&node, "bad");
    for want in ["FailedPostStartHook", "PostStartHook failed"] {
        assert!(d.contains(want), "no {want:?} in:\n{d}");
    }
    let pod = node.pod("bad");
    let s = cstatus(&pod, 0);
    assert_ne!(s["ready"], true, "{s}");
    // killed, not exited by itself: sleep as PID 1 takes SIGKILL
    let last = &s["lastState"]["terminated"];
    assert!(last.is_object(), "{s}");
    assert_eq!(last["exitCode"], 137, "{s}");
    delete_clean(&node, "good");
    delete_clean(&node, "bad");
}

#[test]
fn pre_stop_runs_before_the_stop_signal_within_the_grace_period() {
    if !common::require_root("pre_stop_runs_before_the_stop_signal_within_the_grace_period") {
        return;
    }
    let node = TestNode::new("kpr-pre");
    // liveness fails once /tmp/die exists: the kill runs preStop, then SIGTERM
    let yaml = format!(
        "{}  containers:\n  - name: main\n    image: {BUSYBOX}\n    \
         command: [sh, -c, \"trap 'echo got-term; exit 0' TERM; echo started; while true; do sleep 0.1; done\"]\n    \
         livenessProbe:\n      exec: {{command: [sh, -c, 'test ! -e /tmp/die']}}\n      periodSeconds: 1\n      failureThreshold: 1\n    \
         lifecycle:\n      preStop:\n        exec: {{command: [sh, -c, 'echo prestop-begin > /proc/1/fd/1; sleep 2; echo prestop-end > /proc/1/fd/1']}}\n",
        head("pre", 10)
    );
    applied(&node, "pre.yaml", &yaml);
    node.ok(&["exec", "pre", "--", "touch", "/tmp/die"]);
    node.wait(30, "the restart", || {
        cstatus(&node.pod("pre"), 0)["restartCount"] == 1
    });
    let prev = node.ok(&["logs", "pre", "--previous"]);
    let lines: Vec<&str> = prev.lines().collect();
    assert_eq!(
        lines,
        ["started", "prestop-begin", "prestop-end", "got-term"],
        "{prev}"
    );
    let last = &cstatus(&node.pod("pre"), 0)["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 0, "the trap's exit: {last}");

    // a preStop longer than the grace period: the stop does not wait for it
    let slow = format!(
        "{}  containers:\n  - name: main\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         lifecycle:\n      preStop:\n        exec: {{command: [sleep, '60']}}\n",
        head("slowstop", 2)
    );
    applied(&node, "slowstop.yaml", &slow);
    let t0 = Instant::now();
    delete_clean(&node, "slowstop");
    let took = t0.elapsed();
    // 2 s of grace from the start of preStop, then the 2 s minimum after SIGTERM
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(9),
        "took {took:?}"
    );
    delete_clean(&node, "pre");
}

const SIDECAR: &str =
    "trap 'echo NAME-term; sleep 1; exit 0' TERM; echo NAME-up; while true; do sleep 0.1; done";

fn sidecar_pod(name: &str, policy: &str, app: &str) -> String {
    let sc = |n: &str| SIDECAR.replace("NAME", n);
    format!(
        "{}  restartPolicy: {policy}\n  initContainers:\n  \
         - name: proxy\n    image: {BUSYBOX}\n    restartPolicy: Always\n    command: [sh, -c, \"{}\"]\n  \
         - name: logger\n    image: {BUSYBOX}\n    restartPolicy: Always\n    command: [sh, -c, \"{}\"]\n    \
         startupProbe:\n      exec: {{command: [sh, -c, 'test -e /tmp/up && exit 0; touch /tmp/up; exit 1']}}\n      periodSeconds: 1\n  \
         - name: setup\n    image: {BUSYBOX}\n    command: [sh, -c, 'echo setup; sleep 1']\n  \
         containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sh, -c, \"{app}\"]\n",
        head(name, 10),
        sc("proxy"),
        sc("logger"),
    )
}

#[test]
fn sidecars_start_in_order_outlive_the_main_start_and_stop_last() {
    if !common::require_root("sidecars_start_in_order_outlive_the_main_start_and_stop_last") {
        return;
    }
    let node = TestNode::new("kpr-side");
    let app = "trap 'echo app-term; exit 0' TERM; echo app-up; while true; do sleep 0.1; done";
    let f = node.manifest("side.yaml", &sidecar_pod("side", "Always", app));
    let o = node.apply(&f);
    let row = node.row("side");
    assert_eq!(
        row[1..4],
        ["3/3", "Running", "0"],
        "{row:?}\napply: {o:?}\n{}",
        node.ok(&["get", "pods", "side", "-o", "json"])
    );
    let pod = node.pod("side");
    let init = pod["status"]["initContainerStatuses"]
        .as_array()
        .unwrap()
        .clone();
    let started = |s: &serde_json::Value| ts(&s["state"]["running"]["startedAt"]);
    let (proxy, logger, setup) = (&init[0], &init[1], &init[2]);
    assert_eq!(
        setup["state"]["terminated"]["reason"], "Completed",
        "{setup}"
    );
    let app_s = cstatus(&pod, 0);
    // in order: proxy, then logger (once its startup probe passed), setup, app
    assert!(started(proxy) <= started(logger), "{pod:#}");
    assert!(
        started(logger) <= ts(&setup["state"]["terminated"]["startedAt"]),
        "{pod:#}"
    );
    assert!(
        ts(&setup["state"]["terminated"]["finishedAt"]) <= started(&app_s),
        "{pod:#}"
    );
    for s in [proxy, logger] {
        assert!(
            s["state"]["running"].is_object() && s["restartCount"] == 0,
            "{s}"
        );
        assert_eq!(
            (s["started"].clone(), s["ready"].clone()),
            (true.into(), true.into())
        );
    }
    // delete: app first, then logger, then proxy; watched while it happens
    let mut del = node
        .krun()
        .args(["delete", "pod", "side"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while del.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "delete hangs");
        let out = node
            .krun()
            .args(["get", "pods", "side", "-o", "json"])
            .output()
            .unwrap();
        if let Ok(pod) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            let all: Vec<serde_json::Value> = pod["status"]["initContainerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(
                    pod["status"]["containerStatuses"]
                        .as_array()
                        .into_iter()
                        .flatten(),
                )
                .cloned()
                .collect();
            for s in all {
                let name = s["name"].as_str().unwrap_or_default().to_string();
                if name != "setup" && s["state"]["terminated"].is_object() && !seen.contains(&name)
                {
                    seen.push(name);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(del.wait().unwrap().success());
    // proxy may be gone with the pod before it is seen stopped
    assert!(
        seen == ["app", "logger", "proxy"] || seen == ["app", "logger"],
        "stopped in the order {seen:?}"
    );
}

#[test]
fn a_job_with_sidecars_completes_and_its_sidecars_stop_in_reverse_order() {
    if !common::require_root("a_job_with_sidecars_completes_and_its_sidecars_stop_in_reverse_order")
    {
        return;
    }
    let node = TestNode::new("kpr-job");
    applied(
        &node,
        "job.yaml",
        &sidecar_pod("job", "Never", "echo app-up; sleep 2; echo app-done"),
    );
    // Running while the sidecars stop, Succeeded once they have
    node.wait(40, "the job to succeed", || {
        node.pod("job")["status"]["phase"] == "Succeeded"
    });
    let pod = node.pod("job");
    assert_eq!(node.status("job"), "Completed");
    let stamp = |c: &str, line: &str| {
        let logs = node.ok(&["logs", "job", "-c", c, "--timestamps"]);
        let l = logs
            .lines()
            .find(|l| l.ends_with(line))
            .unwrap_or_else(|| panic!("no {line} in {c}'s log:\n{logs}"));
        l.split_whitespace()
            .next()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    };
    let app_done = stamp("app", "app-done");
    let logger_term = stamp("logger", "logger-term");
    let proxy_term = stamp("proxy", "proxy-term");
    // the sidecars kept running past the app, then stopped last-started first
    assert!(app_done < logger_term, "{app_done} {logger_term}");
    assert!(logger_term < proxy_term, "{logger_term} {proxy_term}");
    let init = pod["status"]["initContainerStatuses"].as_array().unwrap();
    for s in &init[..2] {
        assert_eq!(s["state"]["terminated"]["exitCode"], 0, "{s}");
        assert_eq!(s["restartCount"], 0, "not restarted: {s}");
    }
    delete_clean(&node, "job");
}

#[test]
fn slow_probes_time_out_without_holding_the_others_back() {
    if !common::require_root("slow_probes_time_out_without_holding_the_others_back") {
        return;
    }
    let node = TestNode::new("kpr-slow");
    // three containers whose readiness commands outlast their 1 s timeout,
    // and one whose probe answers at once: it is ready all the same
    let mut yaml = format!("{}  containers:\n", head("slow", 1));
    for i in 0..3 {
        yaml.push_str(&format!(
            "  - name: slow{i}\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
             readinessProbe:\n      exec: {{command: [sleep, '5']}}\n      periodSeconds: 1\n      timeoutSeconds: 1\n"
        ));
    }
    yaml.push_str(&format!(
        "  - name: fast\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         readinessProbe:\n      exec: {{command: ['true']}}\n      periodSeconds: 1\n"
    ));
    applied(&node, "slow.yaml", &yaml);
    node.wait(10, "fast to be ready", || {
        cstatus(&node.pod("slow"), 3)["ready"] == true
    });
    assert_eq!(node.row("slow")[1], "1/4");
    node.wait(15, "the timeouts", || {
        describe(&node, "slow").contains("Readiness probe failed: command \"sleep 5\" timed out")
    });
    // the timed-out commands were killed, not left to run on
    let pod = node.pod("slow");
    let sleeps = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("cmdline")).ok())
        .filter(|c| c == "sleep\u{0}5\u{0}")
        .count();
    assert!(sleeps <= 3, "{sleeps} probe commands left running; {pod:#}");
    // the supervisor still answers at once
    let t0 = Instant::now();
    delete_clean(&node, "slow");
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "delete took {:?}",
        t0.elapsed()
    );
}
