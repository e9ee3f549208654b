//! What a probe or lifecycle handler runs, resolved against the container
//! (port names) and the pod (its IP is the default host), as the kubelet
//! resolves it before each run.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// One handler, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A command in the container, through the OCI runtime's exec.
    Exec(Vec<String>),
    Http(HttpGet),
    Tcp {
        host: String,
        port: u16,
    },
    Grpc {
        host: String,
        port: u16,
        service: String,
    },
    Sleep(Duration),
}

/// An HTTP GET, from the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGet {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// The request target: path and query, percent-encoded where needed.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl HttpGet {
    /// `host:port`, with brackets for an IPv6 literal.
    pub fn authority(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// The URL as Go prints it in errors: `http://10.0.0.5:8080/healthz`.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority(), self.target)
    }
}

pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The action of a probe; `pod_ip` is the default host.
pub fn for_probe(p: &Probe, c: &Container, pod_ip: &str) -> Result<Action, String> {
    if let Some(e) = &p.exec {
        return Ok(Action::Exec(e.command.clone().unwrap_or_default()));
    }
    if let Some(h) = &p.http_get {
        return http_get(h, c, pod_ip).map(Action::Http);
    }
    if let Some(t) = &p.tcp_socket {
        let host = t.host.clone().filter(|h| !h.is_empty());
        return Ok(Action::Tcp {
            host: host.unwrap_or_else(|| pod_ip.to_string()),
            port: port(&t.port, c)?,
        });
    }
    if let Some(g) = &p.grpc {
        let port = u16::try_from(g.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("invalid port number: {}", g.port))?;
        return Ok(Action::Grpc {
            host: pod_ip.to_string(),
            port,
            service: g.service.clone().unwrap_or_default(),
        });
    }
    Err("missing probe handler".into())
}

/// The action of a lifecycle hook (postStart, preStop).
pub fn for_hook(h: &LifecycleHandler, c: &Container, pod_ip: &str) -> Result<Action, String> {
    if let Some(e) = &h.exec {
        return Ok(Action::Exec(e.command.clone().unwrap_or_default()));
    }
    if let Some(g) = &h.http_get {
        return http_get(g, c, pod_ip).map(Action::Http);
    }
    if let Some(s) = &h.sleep {
        return Ok(Action::Sleep(Duration::from_secs(s.seconds.max(0) as u64)));
    }
    // tcpSocket is kept in the API for compatibility; the kubelet fails it
    Err("invalid handler: tcpSocket is not supported as a lifecycle handler".into())
}

fn http_get(h: &HTTPGetAction, c: &Container, pod_ip: &str) -> Result<HttpGet, String> {
    let host = h.host.clone().filter(|h| !h.is_empty());
    let mut headers = Vec::new();
    for hd in h.http_headers.iter().flatten() {
        if hd.value.contains(['\r', '\n', '\0']) {
            return Err(format!(
                "net/http: invalid header field value for {:?}",
                hd.name
            ));
        }
        headers.push((hd.name.clone(), hd.value.clone()));
    }
    Ok(HttpGet {
        https: h
            .scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS")),
        host: host.unwrap_or_else(|| pod_ip.to_string()),
        port: port(&h.port, c)?,
        target: target(h.path.as_deref().unwrap_or("/")),
        headers,
    })
}

/// A port by number, by the name of one of the container's ports, or a
/// number written as a string, as the kubelet's extractPort reads it.
pub fn port(p: &IntOrString, c: &Container) -> Result<u16, String> {
    let n: i64 = match p {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(s) => {
            let named = c
                .ports
                .iter()
                .flatten()
                .find(|cp| cp.name.as_deref() == Some(s.as_str()));
            match named {
                Some(cp) => i64::from(cp.container_port),
                None => s
                    .parse()
                    .map_err(|_| format!("strconv.Atoi: parsing {s:?}: invalid syntax"))?,
            }
        }
    };
    u16::try_from(n)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port number: {n}"))
}

/// The request target of a probe path: a leading slash, and bytes that
/// cannot stand in a request line percent-encoded (as Go's URL does).
pub fn target(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        out.push('/');
    }
    for b in path.bytes() {
        let plain = b.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&b);
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    fn container() -> Container {
        Container {
            name: "app".into(),
            ports: Some(vec![ContainerPort {
                name: Some("web".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn ports_by_number_name_and_numeric_string() {
        let c = container();
        assert_eq!(port(&IntOrString::Int(80), &c), Ok(80));
        assert_eq!(port(&IntOrString::String("web".into()), &c), Ok(8080));
        assert_eq!(port(&IntOrString::String("9090".into()), &c), Ok(9090));
        assert_eq!(
            port(&IntOrString::String("nope".into()), &c),
            Err("strconv.Atoi: parsing \"nope\": invalid syntax".into())
        );
        assert_eq!(
            port(&IntOrString::Int(70000), &c),
            Err("invalid port number: 70000".into())
        );
    }

    #[test]
    fn http_get_defaults_to_the_pod_ip_and_keeps_headers() {
        let p: Probe = serde_json::from_value(serde_json::json!({
            "httpGet": {"path": "healthz?x=1 2", "port": "web", "scheme": "HTTPS",
                        "httpHeaders": [{"name": "X-A", "value": "b"}]}
        }))
        .unwrap();
        let Action::Http(h) = for_probe(&p, &container(), "10.1.2.3").unwrap() else {
            panic!()
        };
        assert!(h.https);
        assert_eq!(h.url(), "https://10.1.2.3:8080/healthz?x=1%202");
        assert_eq!(h.headers, [("X-A".to_string(), "b".to_string())]);
        let bad: Probe = serde_json::from_value(serde_json::json!({
            "httpGet": {"port": 80, "httpHeaders": [{"name": "X", "value": "a\r\nInjected: 1"}]}
        }))
        .unwrap();
        assert!(for_probe(&bad, &container(), "10.1.2.3").is_err());
    }

    #[test]
    fn grpc_and_tcp_and_hooks() {
        let g: Probe =
            serde_json::from_value(serde_json::json!({"grpc": {"port": 9000, "service": "s"}}))
                .unwrap();
        assert_eq!(
            for_probe(&g, &container(), "10.0.0.9").unwrap(),
            Action::Grpc {
                host: "10.0.0.9".into(),
                port: 9000,
                service: "s".into()
            }
        );
        let t: Probe =
            serde_json::from_value(serde_json::json!({"tcpSocket": {"port": "web"}})).unwrap();
        assert_eq!(
            for_probe(&t, &container(), "10.0.0.9").unwrap(),
            Action::Tcp {
                host: "10.0.0.9".into(),
                port: 8080
            }
        );
        let s: LifecycleHandler =
            serde_json::from_value(serde_json::json!({"sleep": {"seconds": 3}})).unwrap();
        assert_eq!(
            for_hook(&s, &container(), "x").unwrap(),
            Action::Sleep(Duration::from_secs(3))
        );
        let tcp: LifecycleHandler =
            serde_json::from_value(serde_json::json!({"tcpSocket": {"port": 80}})).unwrap();
        assert!(for_hook(&tcp, &container(), "x").is_err());
    }
}
