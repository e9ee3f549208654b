//! Files the kubelet writes for a pod and its containers, in the kubelet's
//! exact format: /etc/hosts, /etc/resolv.conf, the hostname, and the
//! termination message read back after a container exits.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;

use crate::logs::{read_log, ReadOptions};

pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// MaxDNSNameservers.
pub const MAX_NAMESERVERS: usize = 3;
/// MaxDNSSearchPaths.
pub const MAX_SEARCHES: usize = 32;
/// MaxContainerTerminationMessageLength.
pub const MAX_MESSAGE: u64 = 4096;
/// MaxContainerTerminationMessageLogLines and ...LogLength.
pub const MESSAGE_LOG_LINES: usize = 80;
pub const MESSAGE_LOG_BYTES: usize = 2048;

/// The pod's hostname and, with a subdomain, its domain
/// (`<subdomain>.<namespace>.svc.cluster.local`).
pub fn hostname_and_domain(pod: &Pod) -> (String, Option<String>) {
    let spec = pod.spec.as_ref();
    let name = spec
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| {
            // Pod names may be longer than a hostname: cut to 63, no trailing '-' or '.'.
            let n = pod.metadata.name.clone().unwrap_or_default();
            let cut: String = n.chars().take(63).collect();
            cut.trim_end_matches(['-', '.']).to_string()
        });
    let domain = spec
        .and_then(|s| s.subdomain.clone())
        .filter(|s| !s.is_empty())
        .map(|sub| {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            format!("{sub}.{ns}.svc.{CLUSTER_DOMAIN}")
        });
    (name, domain)
}

fn host_aliases(pod: &Pod) -> String {
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.as_deref())
        .unwrap_or_default();
    if aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for a in aliases {
        let names = a.hostnames.as_deref().unwrap_or_default().join("\t");
        out.push_str(&format!("{}\t{names}\n", a.ip));
    }
    out
}

/// /etc/hosts for a pod with its own network.
pub fn hosts_file(pod: &Pod, pod_ips: &[String]) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    let (name, domain) = hostname_and_domain(pod);
    for ip in pod_ips {
        match &domain {
            Some(d) => out.push_str(&format!("{ip}\t{name}.{d}\t{name}\n")),
            None => out.push_str(&format!("{ip}\t{name}\n")),
        }
    }
    out.push_str(&host_aliases(pod));
    out
}

/// /etc/hosts for a hostNetwork pod: the node's file under a header.
pub fn host_network_hosts_file(pod: &Pod, node_hosts: &str) -> String {
    format!(
        "# Kubernetes-managed hosts file (host network).\n{node_hosts}{}",
        host_aliases(pod)
    )
}

/// A parsed resolv.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl Dns {
    pub fn parse(text: &str) -> Dns {
        let mut dns = Dns::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => dns.nameservers.extend(fields.next().map(str::to_string)),
                // The last search line wins, as in the resolver.
                Some("search") => dns.searches = fields.map(str::to_string).collect(),
                Some("options") => dns.options.extend(fields.map(str::to_string)),
                _ => {}
            }
        }
        dns
    }

    /// The file, as containerd writes it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

fn dedup(list: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    list.into_iter()
        .filter(|x| seen.insert(x.clone()))
        .collect()
}

/// Options by name, later ones replacing earlier ones of the same name.
fn merge_options(base: Vec<String>, extra: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for opt in base.into_iter().chain(extra) {
        let name = opt.split(':').next().unwrap_or(&opt).to_string();
        match out
            .iter_mut()
            .find(|o| o.split(':').next() == Some(name.as_str()))
        {
            Some(slot) => *slot = opt,
            None => out.push(opt),
        }
    }
    out
}

/// What the pod's resolv.conf is built from.
#[derive(Debug, Clone, Copy)]
pub struct DnsInputs<'a> {
    /// The node's resolv.conf text.
    pub node_resolv: &'a str,
    /// The cluster DNS service, when there is one.
    pub cluster_dns: Option<&'a str>,
}

/// The pod's resolv.conf, as the kubelet's GetPodDNS decides it. Returns
/// the DNS config and a warning when ClusterFirst had no cluster DNS.
pub fn pod_dns(pod: &Pod, inputs: DnsInputs<'_>) -> (Dns, Option<String>) {
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network == Some(true);
    let mut warning = None;
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster_first = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    };
    let mut dns = match policy {
        "None" => Dns::default(),
        _ if cluster_first => match inputs.cluster_dns {
            Some(server) => {
                let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                let host = Dns::parse(inputs.node_resolv);
                let mut searches = vec![
                    format!("{ns}.svc.{CLUSTER_DOMAIN}"),
                    format!("svc.{CLUSTER_DOMAIN}"),
                    CLUSTER_DOMAIN.to_string(),
                ];
                searches.extend(host.searches);
                Dns {
                    nameservers: vec![server.to_string()],
                    searches,
                    options: vec!["ndots:5".into()],
                }
            }
            None => {
                warning = Some(
                    "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy."
                        .to_string(),
                );
                Dns::parse(inputs.node_resolv)
            }
        },
        _ => Dns::parse(inputs.node_resolv),
    };
    if let Some(cfg) = &spec.dns_config {
        dns.nameservers
            .extend(cfg.nameservers.clone().unwrap_or_default());
        dns.searches
            .extend(cfg.searches.clone().unwrap_or_default());
        let extra: Vec<String> = cfg
            .options
            .iter()
            .flatten()
            .map(|o| match &o.value {
                Some(v) => format!("{}:{v}", o.name.clone().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            })
            .collect();
        dns.options = merge_options(dns.options, extra);
    }
    dns.nameservers = dedup(dns.nameservers);
    dns.nameservers.truncate(MAX_NAMESERVERS);
    dns.searches = dedup(dns.searches);
    dns.searches.truncate(MAX_SEARCHES);
    (dns, warning)
}

/// The last `max` bytes of a file.
fn read_tail(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    if len > max {
        f.seek(SeekFrom::Start(len - max))?;
    }
    let mut data = Vec::new();
    f.take(max).read_to_end(&mut data)?;
    Ok(data)
}

/// The termination message of an exited container, as the kubelet reads
/// it: the last 4096 bytes of its message file; with FallbackToLogsOnError
/// and a failure, the last 80 lines (at most 2048 bytes) of its log when
/// the file is empty.
pub fn termination_message(
    message_file: &Path,
    fallback_to_logs: bool,
    exit_code: i32,
    log: &Path,
) -> String {
    let fallback = fallback_to_logs && exit_code != 0;
    let from_file = match read_tail(message_file, MAX_MESSAGE) {
        Ok(data) => String::from_utf8_lossy(&data).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return format!(
                "Error on reading termination log {}: {e}",
                message_file.display()
            )
        }
    };
    if !from_file.is_empty() || !fallback {
        return from_file;
    }
    let Ok((lines, _)) = read_log(
        log,
        ReadOptions {
            tail: Some(MESSAGE_LOG_LINES),
        },
    ) else {
        return String::new();
    };
    let mut text: Vec<u8> = lines.iter().flat_map(|l| l.render(false)).collect();
    if text.len() > MESSAGE_LOG_BYTES {
        text.drain(..text.len() - MESSAGE_LOG_BYTES);
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::{LogWriter, Rotation, Stream};
    use crate::manifest::{parse_str, Object};

    fn pod(yaml: &str) -> Pod {
        match parse_str("t.yaml", yaml).unwrap().remove(0).object {
            Object::Pod(p) => *p,
            other => panic!("{}", other.kind()),
        }
    }

    const BASE: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop}\nspec:\n  containers: [{name: app, image: busybox}]\n";

    #[test]
    fn hosts_as_the_kubelet_writes_them() {
        let p = pod(BASE);
        assert_eq!(
            hosts_file(&p, &["10.88.0.5".into()]),
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n10.88.0.5\tweb\n"
        );
        let p = pod(&BASE.replace(
            "spec:\n",
            "spec:\n  hostname: db-0\n  subdomain: db\n  hostAliases: [{ip: 10.1.2.3, hostnames: [foo.local, bar.local]}]\n",
        ));
        let text = hosts_file(&p, &["10.88.0.5".into()]);
        assert!(text.ends_with(
            "fe00::2\tip6-allrouters\n10.88.0.5\tdb-0.db.shop.svc.cluster.local\tdb-0\n\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n"
        ), "{text}");
        assert_eq!(
            host_network_hosts_file(&pod(BASE), "127.0.0.1 localhost\n"),
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n"
        );
        let long = pod(&BASE.replace("name: web", &format!("name: {}-x", "a".repeat(62))));
        assert_eq!(hostname_and_domain(&long).0, "a".repeat(62));
    }

    const NODE: &str = "# generated\nnameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example\noptions edns0\n";

    #[test]
    fn dns_policies() {
        let inputs = DnsInputs {
            node_resolv: NODE,
            cluster_dns: None,
        };
        let (dns, warning) = pod_dns(&pod(BASE), inputs);
        assert!(
            warning.is_some(),
            "ClusterFirst without cluster DNS falls back to Default"
        );
        assert_eq!(
            dns.render(),
            "search corp.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions edns0\n"
        );

        let inputs = DnsInputs {
            node_resolv: NODE,
            cluster_dns: Some("10.96.0.10"),
        };
        let (dns, warning) = pod_dns(&pod(BASE), inputs);
        assert!(warning.is_none());
        assert_eq!(
            dns.render(),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
        // With the host's network, ClusterFirst means the node's resolver.
        let host = pod(&BASE.replace("spec:\n", "spec:\n  hostNetwork: true\n"));
        assert_eq!(
            pod_dns(&host, inputs).0.nameservers,
            ["192.0.2.53", "192.0.2.54"]
        );

        let none = pod(&BASE.replace(
            "spec:\n",
            "spec:\n  dnsPolicy: None\n  dnsConfig: {nameservers: [1.1.1.1, 1.1.1.1, 2.2.2.2, 3.3.3.3, 4.4.4.4], searches: [a.example], options: [{name: ndots, value: '2'}, {name: edns0}]}\n",
        ));
        assert_eq!(
            pod_dns(&none, inputs).0.render(),
            "search a.example\nnameserver 1.1.1.1\nnameserver 2.2.2.2\nnameserver 3.3.3.3\noptions ndots:2 edns0\n"
        );
        let merged = pod(&BASE.replace(
            "spec:\n",
            "spec:\n  dnsConfig: {options: [{name: ndots, value: '1'}]}\n",
        ));
        assert_eq!(pod_dns(&merged, inputs).0.options, ["ndots:1"]);
    }

    #[test]
    fn termination_messages() {
        let dir = tempfile::tempdir().unwrap();
        let msg = dir.path().join("termination-log");
        let log = dir.path().join("app/0.log");
        let mut w = LogWriter::open(&log, Rotation::default()).unwrap();
        let now = "2026-01-01T00:00:00Z".parse().unwrap();
        for i in 0..100 {
            w.write(Stream::Stderr, format!("line {i}\n").as_bytes(), now)
                .unwrap();
        }
        // No file and no fallback: nothing.
        assert_eq!(termination_message(&msg, false, 1, &log), "");
        // Fallback on failure: the last 80 lines.
        let text = termination_message(&msg, true, 1, &log);
        assert!(
            text.starts_with("line 20\n") && text.ends_with("line 99\n"),
            "{text}"
        );
        // Not on success.
        assert_eq!(termination_message(&msg, true, 0, &log), "");
        // The file wins, cut to its last 4096 bytes.
        std::fs::write(&msg, format!("{}END", "x".repeat(5000))).unwrap();
        let text = termination_message(&msg, true, 1, &log);
        assert_eq!(text.len(), 4096);
        assert!(text.ends_with("END"));
    }
}
