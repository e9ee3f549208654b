//! The CNI 1.1 plugin protocol on top of [`Network`]: commands from
//! CNI_COMMAND and friends, the network config on stdin, results and errors
//! as JSON on stdout. Accepts the reference `bridge` plugin's config keys
//! (bridge, mtu, ipMasq, isGateway, isDefaultGateway, hairpinMode, ipam
//! subnet/ranges/routes/dataDir, runtimeConfig.portMappings), so one config
//! works with either.
use crate::cidr::Ipv4Net;
use crate::config::{NetworkConfig, Paths};
use crate::error::Error;
use crate::fsutil::{remove_if_exists, write_atomic, Durability};
use crate::network::{AttachRequest, Attachment, Network, RouteSpec};
use crate::nft::PortMapping;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::path::PathBuf;

pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

// Error codes from the CNI spec.
pub const ERR_INCOMPATIBLE_VERSION: u32 = 1;
pub const ERR_UNSUPPORTED_FIELD: u32 = 2;
pub const ERR_UNKNOWN_CONTAINER: u32 = 3;
pub const ERR_INVALID_ENV: u32 = 4;
pub const ERR_DECODE: u32 = 6;
pub const ERR_INVALID_CONFIG: u32 = 7;
pub const ERR_TRY_AGAIN: u32 = 11;
pub const ERR_NOT_AVAILABLE: u32 = 50;
/// Plugin-specific failures (the spec leaves 100+ to plugins).
pub const ERR_PLUGIN: u32 = 100;

/// A CNI error: printed as {"cniVersion","code","msg","details"}.
#[derive(Debug)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    fn new(code: u32, msg: impl Into<String>, details: impl std::fmt::Display) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: details.to_string(),
        }
    }

    pub fn to_json(&self, version: &str) -> Value {
        json!({"cniVersion": version, "code": self.code, "msg": self.msg, "details": self.details})
    }
}

fn plugin_err(msg: &str) -> impl FnOnce(Error) -> CniError + '_ {
    move |e| {
        let code = match e {
            Error::Invalid { .. } => ERR_INVALID_CONFIG,
            Error::Exhausted { .. } => ERR_TRY_AGAIN,
            _ => ERR_PLUGIN,
        };
        CniError::new(code, msg, e)
    }
}

/// The CNI_* environment of one invocation.
#[derive(Clone, Debug, Default)]
pub struct CniEnv {
    pub command: String,
    pub container_id: Option<String>,
    pub netns: Option<PathBuf>,
    pub ifname: Option<String>,
}

impl CniEnv {
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> CniEnv {
        let nonempty = |k: &str| get(k).filter(|v| !v.is_empty());
        CniEnv {
            command: get("CNI_COMMAND").unwrap_or_default(),
            container_id: nonempty("CNI_CONTAINERID"),
            netns: nonempty("CNI_NETNS").map(PathBuf::from),
            ifname: nonempty("CNI_IFNAME"),
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct NetConf {
    cni_version: String,
    name: String,
    #[serde(default)]
    bridge: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    ip_masq: bool,
    #[serde(default)]
    is_default_gateway: bool,
    #[serde(default)]
    ipam: IpamConf,
    #[serde(default)]
    runtime_config: RuntimeConfig,
    #[serde(default)]
    prev_result: Option<Value>,
    /// krun extensions: the cluster CIDR masquerade is computed against,
    /// the nft table and the state directory.
    #[serde(default)]
    cluster_cidr: Option<Ipv4Net>,
    #[serde(default)]
    nft_table: Option<String>,
    #[serde(default)]
    state_dir: Option<PathBuf>,
    #[serde(default, rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<ValidAttachment>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct IpamConf {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    subnet: Option<Ipv4Net>,
    #[serde(default)]
    gateway: Option<Ipv4Addr>,
    #[serde(default)]
    ranges: Vec<Vec<RangeConf>>,
    #[serde(default)]
    routes: Vec<RouteConf>,
    #[serde(default)]
    data_dir: Option<PathBuf>,
}

#[derive(Deserialize, Debug)]
struct RangeConf {
    subnet: Ipv4Net,
    #[serde(default)]
    gateway: Option<Ipv4Addr>,
}

#[derive(Deserialize, Debug)]
struct RouteConf {
    dst: Ipv4Net,
    #[serde(default)]
    gw: Option<Ipv4Addr>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfig {
    #[serde(default)]
    port_mappings: Vec<PortMapping>,
}

#[derive(Deserialize, Debug)]
struct ValidAttachment {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
}

impl NetConf {
    fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let conf: NetConf = serde_json::from_slice(stdin)
            .map_err(|e| CniError::new(ERR_DECODE, "cannot decode network config on stdin", e))?;
        if !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
            return Err(CniError::new(
                ERR_INCOMPATIBLE_VERSION,
                "incompatible CNI version",
                format!(
                    "config has {}, plugin supports {}",
                    conf.cni_version,
                    SUPPORTED_VERSIONS.join(", ")
                ),
            ));
        }
        if let Some(k) = conf.ipam.kind.as_deref() {
            if k != "host-local" && k != "krun" {
                return Err(CniError::new(
                    ERR_UNSUPPORTED_FIELD,
                    "unsupported ipam type",
                    format!("ipam.type {k:?}: krun-cni allocates host-local style itself"),
                ));
            }
        }
        Ok(conf)
    }

    fn network(&self) -> Result<Network, CniError> {
        let invalid = |d: String| CniError::new(ERR_INVALID_CONFIG, "invalid network config", d);
        let (subnet, gw) = match (
            &self.ipam.subnet,
            self.ipam.ranges.first().and_then(|r| r.first()),
        ) {
            (Some(s), _) => (*s, self.ipam.gateway),
            (None, Some(r)) => (r.subnet, r.gateway),
            (None, None) => {
                return Err(invalid(
                    "ipam needs a subnet (ipam.subnet or ipam.ranges)".into(),
                ))
            }
        };
        let subnet = subnet.trunc();
        if let Some(gw) = gw {
            if Some(gw) != subnet.nth(1) {
                return Err(invalid(format!(
                    "gateway {gw}: krun-cni uses the subnet's first address"
                )));
            }
        }
        let safe_name: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let state_dir = self
            .state_dir
            .clone()
            .or_else(|| self.ipam.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("/var/lib/cni/krun"))
            .join(&safe_name);
        let cfg = NetworkConfig {
            cluster_cidr: self.cluster_cidr.unwrap_or(subnet),
            subnet,
            bridge: self.bridge.clone().unwrap_or_else(|| "cni0".into()),
            mtu: self.mtu.unwrap_or(1500),
            ip_masq: self.ip_masq,
            nft_table: self
                .nft_table
                .clone()
                .unwrap_or_else(|| format!("krun_cni_{safe_name}")),
        };
        let paths = Paths {
            config_dir: state_dir.join("etc"),
            state_dir,
        };
        Network::new(cfg, paths).map_err(|e| invalid(e.to_string()))
    }

    fn routes(&self) -> Vec<RouteSpec> {
        let mut routes: Vec<RouteSpec> = self
            .ipam
            .routes
            .iter()
            .map(|r| RouteSpec {
                dst: r.dst,
                gw: r.gw,
            })
            .collect();
        if self.is_default_gateway && !routes.iter().any(|r| r.dst.prefix == 0) {
            routes.push(RouteSpec::default_route());
        }
        routes
    }
}

/// The CNI result for an attachment, in the config's version.
pub fn result_json(att: &Attachment, version: &str) -> Value {
    let routes: Vec<Value> = att
        .routes
        .iter()
        .map(|r| json!({"dst": r.dst.trunc().to_string(), "gw": r.gw.unwrap_or(att.gateway).to_string()}))
        .collect();
    let mut ip = json!({"address": att.address.to_string(), "gateway": att.gateway.to_string(), "interface": 2});
    if version.starts_with("0.3") {
        ip["version"] = json!("4");
    }
    json!({
        "cniVersion": version,
        "interfaces": [
            {"name": att.bridge, "mac": att.bridge_mac},
            {"name": att.host_veth, "mac": att.host_mac},
            {"name": att.ifname, "mac": att.pod_mac, "sandbox": att.netns.to_string_lossy()},
        ],
        "ips": [ip],
        "routes": routes,
        "dns": {},
    })
}

fn require<'a>(v: &'a Option<String>, var: &str) -> Result<&'a str, CniError> {
    v.as_deref().ok_or_else(|| {
        CniError::new(
            ERR_INVALID_ENV,
            format!("{var} is required"),
            format!("{var} is unset or empty"),
        )
    })
}

/// CNI_CONTAINERID and CNI_IFNAME, checked before either names a file.
fn sandbox_names(env: &CniEnv) -> Result<(&str, &str), CniError> {
    let id = require(&env.container_id, "CNI_CONTAINERID")?;
    let ifname = require(&env.ifname, "CNI_IFNAME")?;
    crate::network::validate_id(id)
        .map_err(|e| CniError::new(ERR_INVALID_ENV, "invalid CNI_CONTAINERID", e))?;
    crate::config::validate_ifname("CNI_IFNAME", ifname)
        .map_err(|e| CniError::new(ERR_INVALID_ENV, "invalid CNI_IFNAME", e))?;
    Ok((id, ifname))
}

fn cache_path(net: &Network, id: &str, ifname: &str) -> PathBuf {
    net.paths
        .state_dir
        .join("cni")
        .join(format!("{id}_{ifname}.json"))
}

/// Runs one CNI command. Ok(Some(v)) is printed on stdout; Ok(None) means
/// success with no output (DEL, CHECK, STATUS, GC).
pub fn run(env: &CniEnv, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    if env.command == "VERSION" {
        let version = serde_json::from_slice::<Value>(stdin)
            .ok()
            .and_then(|v| v["cniVersion"].as_str().map(String::from))
            .unwrap_or_else(|| "1.1.0".into());
        return Ok(Some(
            json!({"cniVersion": version, "supportedVersions": SUPPORTED_VERSIONS}),
        ));
    }
    let conf = NetConf::parse(stdin)?;
    let net = conf.network()?;
    let v11 = conf.cni_version == "1.1.0";
    match env.command.as_str() {
        "ADD" => {
            let (id, ifname) = sandbox_names(env)?;
            let netns = env.netns.clone().ok_or_else(|| {
                CniError::new(
                    ERR_INVALID_ENV,
                    "CNI_NETNS is required",
                    "CNI_NETNS is unset or empty",
                )
            })?;
            let req = AttachRequest {
                id: id.into(),
                netns,
                ifname: ifname.into(),
                port_mappings: conf.runtime_config.port_mappings.clone(),
                routes: conf.routes(),
            };
            let att = net.attach(&req).map_err(plugin_err("attach failed"))?;
            let result = result_json(&att, &conf.cni_version);
            let data = serde_json::to_vec(&result)
                .map_err(|e| CniError::new(ERR_PLUGIN, "encode result", e))?;
            write_atomic(&cache_path(&net, id, ifname), &data, Durability::Volatile)
                .map_err(plugin_err("cache result"))?;
            Ok(Some(result))
        }
        "DEL" => {
            let (id, ifname) = sandbox_names(env)?;
            net.detach(id, ifname, env.netns.as_deref())
                .map_err(plugin_err("detach failed"))?;
            remove_if_exists(&cache_path(&net, id, ifname))
                .map_err(plugin_err("remove cached result"))?;
            Ok(None)
        }
        "CHECK" => {
            if conf.cni_version.starts_with("0.3") {
                return Err(CniError::new(
                    ERR_INCOMPATIBLE_VERSION,
                    "CHECK needs CNI 0.4.0 or later",
                    &conf.cni_version,
                ));
            }
            let (id, ifname) = sandbox_names(env)?;
            let cached: Value = std::fs::read(cache_path(&net, id, ifname))
                .ok()
                .and_then(|d| serde_json::from_slice(&d).ok())
                .ok_or_else(|| {
                    CniError::new(
                        ERR_UNKNOWN_CONTAINER,
                        "unknown container",
                        format!("{id}/{ifname}"),
                    )
                })?;
            let att = net.check(id, ifname).map_err(plugin_err("check failed"))?;
            if let Some(prev) = &conf.prev_result {
                if prev["ips"] != cached["ips"] {
                    return Err(CniError::new(
                        ERR_PLUGIN,
                        "check failed",
                        "prevResult ips differ from this attachment",
                    ));
                }
            }
            if env.netns.as_ref().is_some_and(|n| *n != att.netns) {
                return Err(CniError::new(
                    ERR_PLUGIN,
                    "check failed",
                    "CNI_NETNS differs from the attached namespace",
                ));
            }
            Ok(None)
        }
        "STATUS" => {
            if !v11 {
                return Err(CniError::new(
                    ERR_INCOMPATIBLE_VERSION,
                    "STATUS needs CNI 1.1.0",
                    &conf.cni_version,
                ));
            }
            match net.ipam().has_free() {
                Ok(true) => Ok(None),
                Ok(false) => Err(CniError::new(
                    ERR_NOT_AVAILABLE,
                    "no free address",
                    net.cfg.subnet.to_string(),
                )),
                Err(e) => Err(CniError::new(
                    ERR_NOT_AVAILABLE,
                    "address store unreadable",
                    e,
                )),
            }
        }
        "GC" => {
            if !v11 {
                return Err(CniError::new(
                    ERR_INCOMPATIBLE_VERSION,
                    "GC needs CNI 1.1.0",
                    &conf.cni_version,
                ));
            }
            let keep: Vec<(String, String)> = conf
                .valid_attachments
                .iter()
                .flatten()
                .map(|a| (a.container_id.clone(), a.ifname.clone()))
                .collect();
            net.gc(&keep).map_err(plugin_err("gc failed"))?;
            // cached results of attachments gc removed
            if let Ok(rd) = std::fs::read_dir(net.paths.state_dir.join("cni")) {
                for ent in rd.flatten() {
                    let name = ent
                        .file_name()
                        .to_string_lossy()
                        .trim_end_matches(".json")
                        .to_string();
                    if !keep.iter().any(|(i, f)| format!("{i}_{f}") == name) {
                        let _ = std::fs::remove_file(ent.path());
                    }
                }
            }
            Ok(None)
        }
        other => Err(CniError::new(
            ERR_INVALID_ENV,
            "unknown CNI_COMMAND",
            format!("{other:?}"),
        )),
    }
}
