//! A node of the test's own for the pod tests: state, run, log and config
//! roots, and a pod network on a bridge, subnet and nft table nobody else
//! uses. `krun` runs with these roots; on drop every pod is deleted, the
//! network reset and the roots removed, so a failing test leaves nothing.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::common;
use super::netplug_util::SubnetClaim;

pub const BUSYBOX: &str = "127.0.0.1:5000/library/busybox:latest";

pub struct TestNode {
    pub base: PathBuf,
    pub run: PathBuf,
    pub bridge: String,
    pub table: String,
    pub subnet: String,
    pub claim: SubnetClaim,
}

impl TestNode {
    pub fn new(tag: &str) -> TestNode {
        let claim = SubnetClaim::new();
        let id = common::unique(tag);
        let base = std::env::temp_dir().join(format!("krun-node-{id}"));
        // sockets live under the run root: keep it short
        let run = PathBuf::from(format!("/run/kn-{}-{}", claim.n, std::process::id()));
        let subnet = format!("10.252.{}.0/24", claim.n);
        let bridge = format!("kt{}", claim.n);
        let table = format!("krun_test_{}", id.replace('-', "_"));
        std::fs::create_dir_all(base.join("etc")).unwrap();
        std::fs::write(
            base.join("etc/netplug.json"),
            format!(
                "{{\"clusterCidr\":\"{subnet}\",\"subnet\":\"{subnet}\",\"bridge\":\"{bridge}\",\
                 \"mtu\":1500,\"ipMasq\":true,\"nftTable\":\"{table}\"}}\n"
            ),
        )
        .unwrap();
        TestNode {
            base,
            run,
            bridge,
            table,
            subnet,
            claim,
        }
    }

    pub fn root(&self) -> PathBuf {
        self.base.join("root")
    }
    pub fn log_root(&self) -> PathBuf {
        self.base.join("log")
    }

    /// `krun` with this node's roots.
    pub fn krun(&self) -> Command {
        let mut c = Command::new(common::bin("krun"));
        c.env("KRUN_ROOT", self.root())
            .env("KRUN_RUN_ROOT", &self.run)
            .env("KRUN_LOG_ROOT", self.log_root())
            .env("KRUN_CONFIG_DIR", self.base.join("etc"))
            .env("KRUN_RUNTIME", common::bin("krun-runtime"))
            .env("KRUN_NODE_NAME", "testnode")
            .stdin(Stdio::null());
        c
    }

    pub fn out(&self, args: &[&str]) -> Output {
        common::run(self.krun().args(args))
    }

    /// Runs krun, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "krun {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Writes a manifest under the node's base.
    pub fn manifest(&self, name: &str, yaml: &str) -> PathBuf {
        let p = self.base.join(name);
        std::fs::write(&p, yaml).unwrap();
        p
    }

    /// `krun apply -d -f FILE`.
    pub fn apply(&self, file: &Path) -> Output {
        self.out(&["apply", "-d", "-f", file.to_str().unwrap()])
    }

    /// The pod as `krun get pods NAME -o json` prints it.
    pub fn pod(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["get", "pods", name, "-o", "json"])).unwrap()
    }

    /// The row of `krun get pods` for the pod: NAME READY STATUS RESTARTS AGE.
    pub fn row(&self, name: &str) -> Vec<String> {
        let out = self.ok(&["get", "pods"]);
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// STATUS of `krun get pods` for the pod.
    pub fn status(&self, name: &str) -> String {
        self.row(name).get(2).cloned().unwrap_or_default()
    }

    /// Waits until `f` holds (polling every 100 ms), at most `secs`.
    pub fn wait(&self, secs: u64, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f() {
            assert!(
                Instant::now() < deadline,
                "timed out after {secs}s waiting for {what}; pods:\n{}",
                self.ok(&["get", "pods"])
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_status(&self, name: &str, want: &str, secs: u64) {
        self.wait(secs, &format!("{name} to be {want}"), || {
            self.status(name) == want
        });
    }

    /// The uid of a pod.
    pub fn uid(&self, name: &str) -> String {
        self.pod(name)["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// What is left on the host of the pods with these uids (and of this
    /// node): mounts, network namespaces, veths, leases, nft rules,
    /// cgroups, processes. Empty when everything is gone.
    /// With `whole_node` (no pod should be left) also anything of the
    /// node's network and roots.
    pub fn leftovers(&self, uids: &[String], pids: &[i32], whole_node: bool) -> Vec<String> {
        let mut left = Vec::new();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        for l in mounts.lines() {
            let ours = whole_node
                && (l.contains(self.base.to_str().unwrap())
                    || l.contains(self.run.to_str().unwrap()));
            if ours || uids.iter().any(|u| l.contains(u.as_str())) {
                left.push(format!("mount: {l}"));
            }
        }
        if let Ok(rd) = std::fs::read_dir(self.run.join("runtime")) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if whole_node || uids.iter().any(|u| n.starts_with(u.as_str())) {
                    left.push(format!("runtime state {n}"));
                }
            }
        }
        for p in pids {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            // a zombie waiting for its parent is gone for every purpose but the table
            if !stat.is_empty() && !stat.contains(") Z ") {
                left.push(format!("process {p}: {stat}"));
            }
        }
        for u in uids {
            for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
                let p = h.path().join("krun").join(format!("pod{u}"));
                if p.exists() {
                    left.push(format!("cgroup {}", p.display()));
                }
            }
            if Path::new("/sys/fs/cgroup/krun")
                .join(format!("pod{u}"))
                .exists()
            {
                left.push(format!("cgroup /sys/fs/cgroup/krun/pod{u}"));
            }
            for d in [
                self.root().join("pods").join(u),
                self.run.join("supervisors").join(u),
                self.run.join("pods").join(u),
            ] {
                if d.exists() {
                    left.push(format!("directory {}", d.display()));
                }
            }
        }
        if !whole_node {
            return left;
        }
        // (no bridge at all is no veth either)
        let links = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if !links.trim().is_empty() {
            left.push(format!("veths on {}: {links}", self.bridge));
        }
        let ipam = self.root().join("netplug/ipam");
        if let Ok(rd) = std::fs::read_dir(&ipam) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.parse::<std::net::Ipv4Addr>().is_ok() {
                    left.push(format!("lease {n}"));
                }
            }
        }
        let nft = Command::new("nft")
            .args(["list", "chain", "ip", &self.table, "hostports"])
            .output()
            .unwrap();
        let rules = String::from_utf8_lossy(&nft.stdout);
        if rules.contains("dnat") {
            left.push(format!("nft hostport rules: {rules}"));
        }
        left
    }

    /// Deletes the pod and checks the host holds nothing of it any more (and,
    /// once no pod is left, nothing of any pod of the node).
    pub fn delete_and_scan(&self, name: &str) {
        let uid = self.uid(name);
        let pids = self.pids(&uid);
        let out = self.ok(&["delete", "pod", name]);
        assert_eq!(out.trim(), format!("pod \"{name}\" deleted"));
        let o = self.out(&["get", "pods", name]);
        assert!(!o.status.success());
        assert_eq!(
            String::from_utf8_lossy(&o.stderr).trim(),
            format!("krun: pods \"{name}\" not found")
        );
        let last = self
            .ok(&["get", "pods", "-A", "-o", "json"])
            .contains("\"items\": []");
        let left = self.leftovers(&[uid], &pids, last);
        assert!(left.is_empty(), "left after delete: {left:#?}");
    }

    /// `krun exec POD -c CONTAINER -- sh -c SCRIPT`: its output, which must
    /// succeed.
    pub fn sh(&self, pod: &str, container: &str, script: &str) -> String {
        self.ok(&["exec", pod, "-c", container, "--", "sh", "-c", script])
    }

    /// The pod's waiting reason and message of a container, once it has one.
    pub fn waiting(&self, pod: &str, container: &str) -> Option<(String, String)> {
        let p = self.pod(pod);
        let all = p["status"]["containerStatuses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let s = all.iter().find(|s| s["name"] == container)?;
        let w = &s["state"]["waiting"];
        Some((
            w["reason"].as_str()?.to_string(),
            w["message"].as_str().unwrap_or_default().to_string(),
        ))
    }

    /// The pids of the pod's supervisor and its containers' inits.
    pub fn pids(&self, uid: &str) -> Vec<i32> {
        let status = self.run.join("supervisors").join(uid).join("status.json");
        let Ok(text) = std::fs::read_to_string(status) else {
            return Vec::new();
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut pids = vec![v["supervisorPid"].as_i64().unwrap_or(0) as i32];
        for key in ["init", "containers"] {
            for s in v[key].as_array().into_iter().flatten() {
                if let Some(p) = s["pid"].as_i64() {
                    pids.push(p as i32);
                }
            }
        }
        pids
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let out = self
            .krun()
            .args(["get", "pods", "-A", "-o", "json"])
            .output();
        if let Ok(o) = out {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&o.stdout) {
                for p in v["items"].as_array().into_iter().flatten() {
                    let name = p["metadata"]["name"].as_str().unwrap_or_default();
                    let ns = p["metadata"]["namespace"].as_str().unwrap_or("default");
                    let _ = self
                        .krun()
                        .args(["delete", "-n", ns, "pod", name, "--grace-period", "0"])
                        .output();
                }
            }
        }
        let _ = Command::new(common::bin("krun"))
            .args(["network", "--config-dir"])
            .arg(self.base.join("etc"))
            .arg("--state-dir")
            .arg(self.root().join("netplug"))
            .arg("reset")
            .output();
        let _ = std::fs::remove_dir_all(&self.base);
        let _ = std::fs::remove_dir_all(&self.run);
    }
}

/// A one-container pod manifest.
pub fn pod_yaml(name: &str, restart: &str, grace: u32, script: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: {restart}\n  \
         terminationGracePeriodSeconds: {grace}\n  containers:\n  - name: main\n    image: {BUSYBOX}\n    \
         command: [\"sh\", \"-c\", {script:?}]\n"
    )
}
