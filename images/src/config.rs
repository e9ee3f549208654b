//! Registry settings (`/etc/krun/registries.toml`) and credentials
//! (registries.toml, `REGISTRY_AUTH_FILE`, `~/.docker/config.json`).
//!
//! ```toml
//! [[registry]]
//! location = "docker.io"
//! mirrors = ["mirror.example.com:5000"]   # tried in order, then docker.io
//! [[registry]]
//! location = "registry.internal:5000"
//! insecure = true                         # plain HTTP allowed
//! ca = ["/etc/krun/certs/internal-ca.crt"]
//! username = "robot"
//! password = "secret"
//! ```
use crate::error::{Error, Result};
use base64::Engine as _;
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const DEFAULT_REGISTRIES_CONF: &str = "/etc/krun/registries.toml";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistriesConf {
    #[serde(default, rename = "registry")]
    pub registries: Vec<RegistryConf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConf {
    /// Registry host[:port], as in references (`docker.io`).
    pub location: String,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Extra CA certificates (PEM) trusted for this registry and its mirrors.
    #[serde(default)]
    pub ca: Vec<PathBuf>,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl RegistriesConf {
    /// Loads `KRUN_REGISTRIES_CONF` or /etc/krun/registries.toml; a missing
    /// file means no settings.
    pub fn load_default() -> Result<RegistriesConf> {
        let p = std::env::var_os("KRUN_REGISTRIES_CONF")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_REGISTRIES_CONF));
        Self::load(&p)
    }

    pub fn load(p: &Path) -> Result<RegistriesConf> {
        let text = match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::io("reading registries config", p, e)),
        };
        toml::from_str(&text).map_err(|e| Error::Config {
            path: p.to_path_buf(),
            reason: e.to_string().replace('\n', " "),
        })
    }

    pub fn get(&self, registry: &str) -> Option<&RegistryConf> {
        self.registries.iter().find(|r| r.location == registry)
    }
}

/// Username and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

/// The auth file krun reads and `krun login` writes: `REGISTRY_AUTH_FILE`,
/// else `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn auth_file() -> PathBuf {
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
        return PathBuf::from(p);
    }
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return PathBuf::from(d).join("config.json");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker/config.json")
}

/// Keys docker uses for a registry in config.json.
fn auth_keys(registry: &str) -> Vec<String> {
    if registry == crate::reference::DOCKER_HUB {
        return vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
            "registry-1.docker.io".into(),
        ];
    }
    vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ]
}

/// Credentials for `registry`: registries.toml first, then the auth file.
pub fn credentials(conf: &RegistriesConf, registry: &str) -> Result<Option<Credentials>> {
    if let Some(r) = conf.get(registry) {
        if let (Some(u), Some(p)) = (&r.username, &r.password) {
            return Ok(Some(Credentials {
                username: u.clone(),
                password: p.clone(),
            }));
        }
    }
    let path = auth_file();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading credentials", path, e)),
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    for key in auth_keys(registry) {
        let Some(entry) = auths.get(&key) else {
            continue;
        };
        if let Some(a) = entry.get("auth").and_then(|a| a.as_str()) {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .map_err(|e| Error::Config {
                    path: path.clone(),
                    reason: format!("auths.{key}.auth is not base64: {e}"),
                })?;
            let s = String::from_utf8(raw).map_err(|_| Error::Config {
                path: path.clone(),
                reason: format!("auths.{key}.auth is not UTF-8"),
            })?;
            let (u, p) = s.split_once(':').ok_or_else(|| Error::Config {
                path: path.clone(),
                reason: format!("auths.{key}.auth is not user:password"),
            })?;
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
        if let (Some(u), Some(p)) = (
            entry.get("username").and_then(|x| x.as_str()),
            entry.get("password").and_then(|x| x.as_str()),
        ) {
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
    }
    Ok(None)
}

/// Writes (or with `None` removes) the credentials for `registry` in the
/// auth file, keeping everything else in it. Written 0600, atomically.
pub fn store_credentials(registry: &str, creds: Option<&Credentials>) -> Result<PathBuf> {
    let path = auth_file();
    let mut v: serde_json::Value = match std::fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| Error::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(Error::io("reading credentials", path, e)),
    };
    let root = v.as_object_mut().ok_or_else(|| Error::Config {
        path: path.clone(),
        reason: "not a JSON object".into(),
    })?;
    let auths = root
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or_else(|| Error::Config {
            path: path.clone(),
            reason: "auths is not a JSON object".into(),
        })?;
    let keys = auth_keys(registry);
    for k in &keys {
        auths.remove(k);
    }
    if let Some(c) = creds {
        let enc = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", c.username, c.password));
        auths.insert(keys[0].clone(), serde_json::json!({ "auth": enc }));
    }
    let data = serde_json::to_vec_pretty(&v).map_err(|e| Error::Config {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io("writing credentials", &tmp, e))?;
        f.write_all(&data)
            .map_err(|e| Error::io("writing credentials", &tmp, e))?;
        f.sync_all()
            .map_err(|e| Error::io("syncing credentials", &tmp, e))?;
    }
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("writing credentials", &path, e))?;
    Ok(path)
}
