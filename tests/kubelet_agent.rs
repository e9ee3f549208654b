//! The node agent, `krun kubelet --manifests DIR`, end to end: static pods
//! from a directory (drop, edit, remove, a half-written file), killing and
//! restarting the agent, killing a supervisor, and deleting pods that
//! resist (a frozen cgroup, a network namespace removed under krun, a
//! leftover that goes only later). Each test has a node of its own and
//! checks that nothing is left on the host.
mod common;
mod kubelet_util;
mod netplug_util;

use kubelet_util::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const NODE: &str = "testnode";

/// A running `krun kubelet`; stopped (SIGTERM) on drop. Declare it after
/// the node, so it stops before the node deletes its pods.
struct Agent {
    child: Option<Child>,
    log: PathBuf,
}

impl Agent {
    fn start(node: &TestNode, dir: &Path) -> Agent {
        let log = node.base.join(format!("agent-{}.log", common::unique("a")));
        let f = std::fs::File::create(&log).unwrap();
        let child = node
            .krun()
            .args(["kubelet", "--manifests", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .unwrap();
        Agent {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the agent logged a line containing `what`.
    fn wait_log(&self, secs: u64, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.log().contains(what) {
            assert!(
                Instant::now() < deadline,
                "no {what:?} in the agent's log after {secs}s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `sig` and waits for the agent to end.
    fn stop(&mut self, sig: i32) -> std::process::ExitStatus {
        let mut c = self.child.take().unwrap();
        // SAFETY: kill of our own child by its pid.
        unsafe { libc::kill(c.id() as i32, sig) };
        c.wait().unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop(libc::SIGTERM);
        }
    }
}

fn manifest_dir(node: &TestNode) -> PathBuf {
    let d = node.base.join("manifests");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sleeper(name: &str, say: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  \
         containers:\n  - name: main\n    image: {BUSYBOX}\n    \
         command: [sh, -c, 'echo {say}; i=0; while [ ! -e /tmp/done ]; do echo tick $i; i=$((i+1)); sleep 1; done']\n"
    )
}

/// Writes a manifest as a careful tool does: temp file, then rename.
fn drop_in(dir: &Path, file: &str, yaml: &str) {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, dir.join(file)).unwrap();
}

/// Each pod's (uid, container pid, restart count) as the node reports it.
fn snapshot(node: &TestNode, names: &[String]) -> Vec<(String, i32, i64)> {
    names
        .iter()
        .map(|n| {
            let p = node.pod(n);
            let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
            let pids = node.pids(&uid);
            let restarts = p["status"]["containerStatuses"][0]["restartCount"]
                .as_i64()
                .unwrap();
            (uid, pids.get(1).copied().unwrap_or(0), restarts)
        })
        .collect()
}

fn running(node: &TestNode) -> Vec<String> {
    node.ok(&["get", "pods"])
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().nth(2) == Some("Running"))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// Stops the agent, deletes every pod and checks the host holds nothing
/// of them.
fn delete_all_and_scan(node: &TestNode, agent: &mut Agent, uids: &[String], pids: &[i32]) {
    if agent.child.is_some() {
        assert!(agent.stop(libc::SIGTERM).success());
    }
    let v: serde_json::Value =
        serde_json::from_str(&node.ok(&["get", "pods", "-A", "-o", "json"])).unwrap();
    for p in v["items"].as_array().unwrap() {
        let name = p["metadata"]["name"].as_str().unwrap();
        node.ok(&["delete", "pod", name, "--grace-period", "0"]);
    }
    let left = node.leftovers(uids, pids, true);
    assert!(left.is_empty(), "left on the host: {left:#?}");
}

#[test]
fn static_pods_from_a_directory_and_the_agent_killed_and_restarted() {
    if !common::require_root("static_pods_from_a_directory_and_the_agent_killed_and_restarted") {
        return;
    }
    let node = TestNode::new("ka-static");
    node.ok(&["pull", BUSYBOX]);
    let dir = manifest_dir(&node);
    // a pod of `krun apply`: watched, never deleted by the agent
    let applied = node.manifest("applied.yaml", &sleeper("applied", "hello"));
    assert!(node.apply(&applied).status.success());
    let mut agent = Agent::start(&node, &dir);
    agent.wait_log(10, "static pods from");
    // 20 manifests dropped at once: all Running within 10 s
    let names: Vec<String> = (0..20).map(|i| format!("s{i:02}-{NODE}")).collect();
    let t0 = Instant::now();
    for i in 0..20 {
        drop_in(
            &dir,
            &format!("s{i:02}.yaml"),
            &sleeper(&format!("s{i:02}"), "v1"),
        );
    }
    // an editor's swap file and a directory are not manifests
    std::fs::write(dir.join(".s00.yaml.swp"), "not yaml").unwrap();
    std::fs::create_dir(dir.join("old")).unwrap();
    node.wait(60, "20 static pods Running", || running(&node).len() == 21);
    let took = t0.elapsed();
    assert!(
        took <= Duration::from_secs(10),
        "20 static pods took {took:?} to be Running (want 10 s)"
    );
    agent.wait_log(5, "ignoring");
    assert!(agent.log().contains("old: a directory"), "{}", agent.log());
    let pod = node.pod(&names[0]);
    assert_eq!(
        pod["metadata"]["annotations"]["kubernetes.io/config.source"],
        "file"
    );
    assert_eq!(
        pod["metadata"]["annotations"]["kubernetes.io/config.hash"],
        pod["metadata"]["uid"]
    );
    assert_eq!(pod["spec"]["nodeName"], NODE);
    let before = snapshot(&node, &names);
    let mut all_uids: Vec<String> = before.iter().map(|s| s.0.clone()).collect();
    let mut all_pids: Vec<i32> = before.iter().map(|s| s.1).collect();

    // a half-written file (in-place edit): reported, the pod left alone
    std::fs::write(
        dir.join("s03.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: s03\n",
    )
    .unwrap();
    agent.wait_log(10, "left as they are");
    let line = agent
        .log()
        .lines()
        .find(|l| l.contains("left as they are"))
        .unwrap()
        .to_string();
    assert!(line.contains("s03.yaml"), "{line}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(snapshot(&node, &names[3..4]), before[3..4]);

    // the edit finished: that pod alone is recreated
    std::fs::write(dir.join("s03.yaml"), sleeper("s03", "v2")).unwrap();
    node.wait(30, "s03 recreated", || {
        node.status(&names[3]) == "Running" && node.uid(&names[3]) != before[3].0
    });
    assert_eq!(
        node.ok(&["logs", &names[3], "--tail", "100"])
            .lines()
            .next(),
        Some("v2")
    );
    let after = snapshot(&node, &names);
    for (i, (a, b)) in after.iter().zip(&before).enumerate() {
        if i != 3 {
            assert_eq!(a, b, "pod {} changed", names[i]);
        }
    }
    all_uids.push(after[3].0.clone());
    all_pids.push(after[3].1);
    // the old s03 is gone from the host
    let left = node.leftovers(
        &before[3..4].iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
        &[before[3].1],
        false,
    );
    assert!(left.is_empty(), "old s03 left: {left:#?}");

    // a removed file deletes its pod
    std::fs::remove_file(dir.join("s05.yaml")).unwrap();
    node.wait(30, "s05 deleted", || node.row(&names[5]).is_empty());
    agent.wait_log(10, &format!("pod/{} deleted", names[5]));
    let left = node.leftovers(&[before[5].0.clone()], &[before[5].1], false);
    assert!(left.is_empty(), "s05 left: {left:#?}");

    // kill -9 of the agent disturbs no pod; started again it adopts them
    // all, restarting none
    let names: Vec<String> = names
        .iter()
        .filter(|n| **n != format!("s05-{NODE}"))
        .cloned()
        .collect();
    let snap = snapshot(&node, &names);
    let sups: Vec<i32> = snap.iter().map(|s| node.pids(&s.0)[0]).collect();
    agent.stop(libc::SIGKILL);
    std::thread::sleep(Duration::from_secs(2));
    let mut agent = Agent::start(&node, &dir);
    agent.wait_log(10, "static pods from");
    std::thread::sleep(Duration::from_secs(3));
    let again = snapshot(&node, &names);
    for (i, (a, b)) in again.iter().zip(&snap).enumerate() {
        assert_eq!(a, b, "pod {} was disturbed", names[i]);
        assert_eq!(
            node.pids(&a.0)[0],
            sups[i],
            "pod {}: another supervisor",
            names[i]
        );
        assert!(
            agent.log().contains(&format!("watching pod/{}", names[i])),
            "{}",
            agent.log()
        );
    }
    assert!(!agent.log().contains("starting pod/"), "{}", agent.log());
    assert!(!agent.log().contains("deleting pod/"), "{}", agent.log());
    assert_eq!(node.status("applied"), "Running");
    all_uids.push(node.uid("applied"));
    delete_all_and_scan(&node, &mut agent, &all_uids, &all_pids);
}

#[test]
fn a_killed_supervisor_is_respawned_and_adopts_its_containers() {
    if !common::require_root("a_killed_supervisor_is_respawned_and_adopts_its_containers") {
        return;
    }
    let node = TestNode::new("ka-adopt");
    node.ok(&["pull", BUSYBOX]);
    let dir = manifest_dir(&node);
    let mut agent = Agent::start(&node, &dir);
    // restartPolicy OnFailure: an exit 0 after the take-over must be known
    // as 0 (else it would be restarted)
    let yaml = sleeper("web", "first").replace(
        "terminationGracePeriodSeconds: 1",
        "terminationGracePeriodSeconds: 1\n  restartPolicy: OnFailure",
    );
    drop_in(&dir, "web.yaml", &yaml);
    let name = format!("web-{NODE}");
    node.wait_status(&name, "Running", 30);
    let uid = node.uid(&name);
    // a container that exits with 3 once: restart count 1 to keep
    let first = node.pids(&uid)[1];
    // SAFETY: kill of the container's init, started by this test's node.
    unsafe { libc::kill(first, libc::SIGKILL) };
    node.wait(40, "the first restart", || {
        node.row(&name).get(1..4) == Some(&["1/1".to_string(), "Running".into(), "1".into()][..])
    });
    let pids = node.pids(&uid);
    let (sup, ctr) = (pids[0], pids[1]);
    std::thread::sleep(Duration::from_secs(2));
    let ticks_before: usize = node.ok(&["logs", &name]).lines().count();

    // kill -9 of the supervisor: a new one within 2 s, the same container
    let t0 = Instant::now();
    // SAFETY: kill of the pod's supervisor.
    unsafe { libc::kill(sup, libc::SIGKILL) };
    node.wait(5, "a new supervisor", || {
        node.pids(&uid)
            .first()
            .is_some_and(|p| *p != sup && *p != 0)
            && std::fs::read_to_string(
                node.run
                    .join("supervisors")
                    .join(&uid)
                    .join("supervisor.log"),
            )
            .unwrap_or_default()
            .contains("adopted container main")
    });
    assert!(
        t0.elapsed() <= Duration::from_secs(2),
        "re-spawned after {:?}",
        t0.elapsed()
    );
    agent.wait_log(5, &format!("pod/{name} lost its supervisor (pid {sup})"));
    let pids = node.pids(&uid);
    assert_eq!(pids[1], ctr, "the container was restarted or replaced");
    let row = node.row(&name);
    assert_eq!(row[1..4], ["1/1", "Running", "1"], "{row:?}");
    let pod = node.pod(&name);
    let st = &pod["status"]["containerStatuses"][0];
    assert_eq!(st["lastState"]["terminated"]["exitCode"], 137, "{st:#}");
    // events and back-off were kept: the first Started is still there
    let describe = node.ok(&["describe", "pod", &name]);
    assert!(describe.contains("Scheduled"), "{describe}");
    // logs go on into the same file, nothing lost while nobody read
    std::thread::sleep(Duration::from_secs(3));
    let logs = node.ok(&["logs", &name]);
    let ticks: Vec<u64> = logs
        .lines()
        .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
        .collect();
    assert!(
        ticks.len() > ticks_before,
        "no new lines after the take-over:\n{logs}"
    );
    assert!(
        ticks.windows(2).all(|w| w[1] == w[0] + 1),
        "a gap in the logs:\n{logs}"
    );

    // its exit after the take-over is known: 0 with OnFailure completes
    // (an unknown status would count as a failure and restart it)
    node.ok(&["exec", &name, "--", "touch", "/tmp/done"]);
    node.wait(30, "the container's end", || {
        node.pod(&name)["status"]["containerStatuses"][0]["state"]["terminated"].is_object()
    });
    let p = node.pod(&name);
    let st = &p["status"]["containerStatuses"][0];
    assert_eq!(st["state"]["terminated"]["reason"], "Completed", "{st:#}");
    assert_eq!(st["state"]["terminated"]["exitCode"], 0, "{st:#}");
    assert_eq!(st["restartCount"], 1, "{st:#}");
    assert_eq!(node.status(&name), "Completed");
    let sup2 = node.pids(&uid)[0];
    delete_all_and_scan(&node, &mut agent, &[uid], &[sup, sup2, ctr, first]);
}

#[test]
fn deleting_a_pod_in_a_frozen_cgroup_leaves_nothing() {
    if !common::require_root("deleting_a_pod_in_a_frozen_cgroup_leaves_nothing") {
        return;
    }
    let node = TestNode::new("ka-frozen");
    let f = node.manifest("frozen.yaml", &sleeper("frozen", "hi"));
    assert!(node.apply(&f).status.success());
    let uid = node.uid("frozen");
    let pids = node.pids(&uid);
    // freeze the whole pod (every hierarchy that can): its processes sit
    // in D with signals pending until thawed
    let mut frozen = 0;
    for (file, value) in [
        ("freezer/krun/pod{}/freezer.state", "FROZEN"),
        ("unified/krun/pod{}/cgroup.freeze", "1"),
        ("krun/pod{}/cgroup.freeze", "1"),
    ] {
        let p = PathBuf::from("/sys/fs/cgroup").join(file.replace("{}", &uid));
        if p.exists() && std::fs::write(&p, value).is_ok() {
            frozen += 1;
        }
    }
    assert!(frozen > 0, "no freezer for the pod's cgroup");
    node.wait(10, "the container frozen", || {
        std::fs::read_to_string(format!("/proc/{}/stat", pids[1]))
            .unwrap_or_default()
            .contains(") D ")
    });
    let t0 = Instant::now();
    let out = node.ok(&["delete", "pod", "frozen", "--grace-period", "1"]);
    assert_eq!(out.trim(), "pod \"frozen\" deleted");
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    let left = node.leftovers(&[uid], &pids, true);
    assert!(left.is_empty(), "left after delete: {left:#?}");
}

#[test]
fn deleting_a_pod_whose_network_namespace_is_gone_leaves_nothing() {
    if !common::require_root("deleting_a_pod_whose_network_namespace_is_gone_leaves_nothing") {
        return;
    }
    let node = TestNode::new("ka-nonet");
    let mut uids = Vec::new();
    let mut pids = Vec::new();
    for (name, how) in [("unmounted", "umount"), ("removed", "rm -rf")] {
        let f = node.manifest(&format!("{name}.yaml"), &sleeper(name, "hi"));
        assert!(node.apply(&f).status.success());
        let uid = node.uid(name);
        let sb = node.run.join("pods").join(&uid);
        // the namespace's mount goes (as `ip netns delete` would do it)
        assert!(
            common::run(std::process::Command::new("umount").arg(sb.join("ns/net")))
                .status
                .success()
        );
        std::fs::remove_file(sb.join("ns/net")).unwrap();
        if how == "rm -rf" {
            // the whole sandbox directory, and the pod's veth with it
            for m in ["ns/ipc", "ns/uts", "shm"] {
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(sb.join(m))
                    .status();
            }
            std::fs::remove_dir_all(&sb).unwrap();
            let links = common::run_ok(std::process::Command::new("ip").args([
                "-o",
                "link",
                "show",
                "master",
                &node.bridge,
            ]));
            for l in links.lines() {
                let ifname = l.split(": ").nth(1).unwrap().split('@').next().unwrap();
                let _ = std::process::Command::new("ip")
                    .args(["link", "del", ifname])
                    .status();
            }
        }
        pids.extend(node.pids(&uid));
        let out = node.ok(&["delete", "pod", name, "--grace-period", "1"]);
        assert_eq!(out.trim(), format!("pod \"{name}\" deleted"), "{how}");
        let left = node.leftovers(std::slice::from_ref(&uid), &pids, false);
        assert!(left.is_empty(), "{how}: left after delete: {left:#?}");
        uids.push(uid);
    }
    let left = node.leftovers(&uids, &pids, true);
    assert!(left.is_empty(), "left on the node: {left:#?}");
}

#[test]
fn what_cannot_be_removed_is_named_and_removed_later() {
    if !common::require_root("what_cannot_be_removed_is_named_and_removed_later") {
        return;
    }
    let node = TestNode::new("ka-left");
    let f = node.manifest("sticky.yaml", &sleeper("sticky", "hi"));
    assert!(node.apply(&f).status.success());
    let uid = node.uid("sticky");
    let pids = node.pids(&uid);
    // an immutable file in the pod's log directory: it cannot go
    let logs = std::fs::read_dir(node.log_root())
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().contains(&uid))
        .unwrap()
        .path();
    let pinned = logs.join("pinned");
    std::fs::write(&pinned, "x").unwrap();
    assert!(
        common::run(std::process::Command::new("chattr").arg("+i").arg(&pinned))
            .status
            .success()
    );
    let o = node.out(&["delete", "pod", "sticky", "--grace-period", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("deleted, but left behind") && err.contains(logs.to_str().unwrap()),
        "{err}"
    );
    // still listed while something is left, with a warning saying what
    let d = node.ok(&["describe", "pod", "sticky"]);
    assert!(
        d.contains("FailedKillPod") && d.contains("Operation not permitted"),
        "{d}"
    );
    assert!(
        common::run(std::process::Command::new("chattr").arg("-i").arg(&pinned))
            .status
            .success()
    );
    // retried: gone once it can be
    node.wait(15, "sticky gone", || node.row("sticky").is_empty());
    let left = node.leftovers(&[uid], &pids, true);
    assert!(left.is_empty(), "left after delete: {left:#?}");
}
