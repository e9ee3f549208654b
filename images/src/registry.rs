//! Talking to registries through oci-client: which protocol, which CA
//! certificates, which credentials, mirrors in order, retries with backoff,
//! and errors turned into one line naming the registry and the reference.
use crate::config::{credentials, RegistriesConf};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::{is_loopback, ImageRef};
use futures_util::StreamExt;
use oci_client::client::{
    BlobResponse, Certificate, CertificateEncoding, ClientConfig, ClientProtocol,
};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use std::time::Duration;

pub const ACCEPTED_MANIFESTS: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

const ATTEMPTS: u32 = 5;
/// Attempts at a mirror that has another source after it: a mirror that is
/// down or failing should not hold the pull up for long.
const MIRROR_ATTEMPTS: u32 = 2;

/// `krun/<version> (pid N)`: registry logs can tell pulls apart.
fn user_agent() -> &'static str {
    static UA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    UA.get_or_init(|| {
        format!(
            "krun/{} (pid {})",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        )
    })
}

/// A connection to the registry (or mirror) that serves one image.
pub struct Session {
    client: oci_client::Client,
    auth: RegistryAuth,
    /// The host actually spoken to (a mirror or the image's registry).
    pub source: String,
    pub image: ImageRef,
    /// Requests tried at most this often (fewer at a mirror with a fallback).
    attempts: u32,
}

/// Whether a registry speaks plain HTTP: a Go TLS server answers a plain
/// request with "Client sent an HTTP request to an HTTPS server".
async fn speaks_plain_http(registry: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(registry).await.ok()?;
        s.write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {registry}\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut buf = vec![0u8; 512];
        let n = s.read(&mut buf).await.ok()?;
        let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
        Some(reply.starts_with("HTTP/") && !reply.contains("HTTP request to an HTTPS server"))
    };
    tokio::time::timeout(Duration::from_secs(3), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

impl Session {
    /// Connects for `image`: its mirrors first (in order), then the registry
    /// itself; returns with the manifest the first of them served.
    pub async fn open(
        image: &ImageRef,
        conf: &RegistriesConf,
    ) -> Result<(Session, Vec<u8>, Digest)> {
        let rconf = conf.get(&image.registry);
        let mut sources: Vec<String> = rconf.map(|r| r.mirrors.clone()).unwrap_or_default();
        sources.push(image.registry.clone());
        let mut last_err = None;
        for (i, source) in sources.iter().enumerate() {
            let attempts = if i + 1 < sources.len() {
                MIRROR_ATTEMPTS
            } else {
                ATTEMPTS
            };
            match Self::open_one(image, conf, source, attempts).await {
                Ok(mut s) => match s.manifest(image).await {
                    Ok((bytes, digest)) => {
                        // This source serves the whole pull: full retries.
                        s.attempts = ATTEMPTS;
                        return Ok((s, bytes, digest));
                    }
                    Err(e) => {
                        tracing::info!(source, error = %e, "source failed, trying next");
                        last_err = Some(e)
                    }
                },
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::Registry {
            registry: image.registry.clone(),
            reference: image.to_string(),
            reason: "no registry to try".into(),
        }))
    }

    async fn open_one(
        image: &ImageRef,
        conf: &RegistriesConf,
        source: &str,
        attempts: u32,
    ) -> Result<Session> {
        let rconf = conf.get(&image.registry);
        let insecure = conf.get(source).map(|r| r.insecure).unwrap_or(false)
            || rconf.is_some_and(|r| r.insecure && source == image.registry);
        let plain = (insecure || is_loopback(source)) && speaks_plain_http(source).await;
        let protocol = if plain {
            ClientProtocol::HttpsExcept(vec![source.to_string()])
        } else {
            ClientProtocol::Https
        };
        let mut certs = Vec::new();
        for r in [conf.get(source), rconf].into_iter().flatten() {
            for p in &r.ca {
                let data =
                    std::fs::read(p).map_err(|e| Error::io("reading CA certificate", p, e))?;
                certs.push(Certificate {
                    encoding: CertificateEncoding::Pem,
                    data,
                });
            }
        }
        let config = ClientConfig {
            protocol,
            user_agent: user_agent(),
            extra_root_certificates: certs,
            connect_timeout: Some(Duration::from_secs(15)),
            read_timeout: Some(Duration::from_secs(60)),
            max_concurrent_download: 8,
            ..Default::default()
        };
        let client = oci_client::Client::try_from(config).map_err(|e| Error::Registry {
            registry: source.to_string(),
            reference: image.to_string(),
            reason: format!("setting up the HTTP client: {e}"),
        })?;
        // Each source (mirror or registry) uses its own credentials.
        let auth = match credentials(conf, source)? {
            Some(c) => RegistryAuth::Basic(c.username, c.password),
            None => RegistryAuth::Anonymous,
        };
        Ok(Session {
            client,
            auth,
            source: source.to_string(),
            image: image.clone(),
            attempts,
        })
    }

    fn oci_ref(&self, image: &ImageRef) -> oci_client::Reference {
        let mut r = image.to_oci(&image.registry);
        if self.source != image.registry {
            r.set_mirror_registry(self.source.clone());
        }
        r
    }

    pub fn error(&self, reason: String) -> Error {
        Error::Registry {
            registry: self.source.clone(),
            reference: self.image.to_string(),
            reason,
        }
    }

    /// Fetches a manifest (by tag or digest) and its digest, verified.
    pub async fn manifest(&self, image: &ImageRef) -> Result<(Vec<u8>, Digest)> {
        let r = self.oci_ref(image);
        let (bytes, digest) = self
            .retry(|| {
                self.client
                    .pull_manifest_raw(&r, &self.auth, ACCEPTED_MANIFESTS)
            })
            .await?;
        let actual = Digest::of(&bytes);
        let claimed =
            Digest::parse(&digest).map_err(|e| self.error(format!("manifest digest: {e}")))?;
        if actual != claimed {
            return Err(Error::DigestMismatch {
                what: "manifest",
                digest: claimed.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok((bytes.to_vec(), actual))
    }

    /// Fetches a small blob (a config) into memory; verified by the caller.
    pub async fn small_blob(&self, digest: &Digest, size: u64) -> Result<Vec<u8>> {
        let r = self.oci_ref(&self.image);
        let desc = descriptor(digest, size);
        let mut attempt = 0;
        loop {
            let mut out: Vec<u8> = Vec::new();
            match self.client.pull_blob(&r, &desc, &mut out).await {
                Ok(()) => return Ok(out),
                Err(e) => {
                    attempt += 1;
                    if !self.should_retry(attempt, &e) {
                        return Err(self.blob_err(digest, e));
                    }
                    backoff(attempt).await;
                }
            }
        }
    }

    /// Streams a blob from byte `offset`, resuming after interruptions with
    /// Range requests. `sink` gets every byte once, in order.
    pub async fn stream_blob<F>(
        &self,
        digest: &Digest,
        size: u64,
        offset: u64,
        sink: &mut F,
    ) -> Result<()>
    where
        F: AsyncSink,
    {
        let r = self.oci_ref(&self.image);
        let desc = descriptor(digest, size);
        let mut have = offset;
        let mut attempt = 0;
        self.client
            .store_auth_if_needed(r.resolve_registry(), &self.auth)
            .await;
        loop {
            if size > 0 && have >= size {
                // All there (a pull killed after the last byte): just verify.
                return Ok(());
            }
            // Always a Range request: oci-client then leaves verification to
            // us, so a bad blob is one digest error, not a stream error.
            let resp = self
                .client
                .pull_blob_stream_partial(&r, &desc, have, None)
                .await;
            let (mut stream, mut skip) = match resp {
                Ok(BlobResponse::Partial(s)) => (s, 0),
                // The registry ignored the Range: skip what we already have.
                Ok(BlobResponse::Full(s)) => (s, have),
                Err(e) => {
                    attempt += 1;
                    if !self.should_retry(attempt, &e) {
                        return Err(self.blob_err(digest, e));
                    }
                    tracing::info!(%digest, error = %e, attempt, "blob request failed, retrying");
                    backoff(attempt).await;
                    continue;
                }
            };
            let mut failed = None;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(mut b) => {
                        if skip > 0 {
                            let n = skip.min(b.len() as u64) as usize;
                            skip -= n as u64;
                            let _ = b.split_to(n);
                            if b.is_empty() {
                                continue;
                            }
                        }
                        have += b.len() as u64;
                        sink.chunk(b).await?;
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                None if size == 0 || have >= size => return Ok(()),
                None => {
                    // Connection closed early: resume.
                    attempt += 1;
                    if attempt >= self.attempts {
                        return Err(self.error(format!(
                            "blob {digest}: connection closed after {have} of {size} bytes"
                        )));
                    }
                }
                Some(e) => {
                    attempt += 1;
                    if attempt >= self.attempts {
                        return Err(self.error(format!("blob {digest}: {e}")));
                    }
                }
            }
            tracing::info!(%digest, have, "blob download interrupted, resuming");
            backoff(attempt).await;
        }
    }

    async fn retry<T, Fut, F>(&self, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, OciDistributionError>>,
    {
        let mut attempt = 0;
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    attempt += 1;
                    if !self.should_retry(attempt, &e) {
                        return Err(self.map_err(e));
                    }
                    tracing::info!(error = %e, attempt, "registry request failed, retrying");
                    backoff(attempt).await;
                }
            }
        }
    }

    fn should_retry(&self, attempt: u32, e: &OciDistributionError) -> bool {
        let refused_mirror = self.attempts < ATTEMPTS
            && matches!(e, OciDistributionError::RequestError(r) if r.is_connect());
        attempt < self.attempts && retryable(e) && !refused_mirror
    }

    /// A failure about one blob: names it.
    fn blob_err(&self, digest: &Digest, e: OciDistributionError) -> Error {
        match self.map_err(e) {
            Error::Registry {
                registry,
                reference,
                reason,
            } => Error::Registry {
                registry,
                reference,
                reason: format!("blob {digest}: {reason}"),
            },
            other => other,
        }
    }

    /// One line a user can act on.
    fn map_err(&self, e: OciDistributionError) -> Error {
        let hint = format!("(krun login {})", self.source);
        let reason = match e {
            OciDistributionError::UnauthorizedError { .. } => {
                if matches!(self.auth, RegistryAuth::Anonymous) {
                    format!("401 Unauthorized: this registry needs credentials {hint}")
                } else {
                    format!("401 Unauthorized: credentials were rejected {hint}")
                }
            }
            OciDistributionError::AuthenticationFailure(m) => {
                format!("authentication failed: {} {hint}", one_line(&m))
            }
            OciDistributionError::ImageManifestNotFoundError(m) => {
                format!("404 not found: {}", one_line(&m))
            }
            OciDistributionError::RegistryError { envelope, .. } => {
                let first = envelope.errors.first();
                let msg = first.map(|x| x.message.clone()).unwrap_or_default();
                match first.map(|x| &x.code) {
                    Some(
                        OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound,
                    ) => {
                        format!("404 not found: {}", one_line(&msg))
                    }
                    Some(OciErrorCode::Unauthorized) => {
                        format!("401 Unauthorized: {} {hint}", one_line(&msg))
                    }
                    Some(OciErrorCode::Denied) => format!("403 denied: {} {hint}", one_line(&msg)),
                    Some(OciErrorCode::Toomanyrequests) => {
                        format!("429 too many requests: {}", one_line(&msg))
                    }
                    Some(c) => format!("{c:?}: {}", one_line(&msg)),
                    None => "registry error without details".into(),
                }
            }
            OciDistributionError::ServerError { code, message, .. } => {
                let what = match code {
                    401 => "Unauthorized",
                    403 => "Forbidden",
                    404 => "not found",
                    429 => "too many requests",
                    500..=599 => "server error",
                    _ => "unexpected status",
                };
                format!("{code} {what}: {}", one_line(&message))
            }
            OciDistributionError::RequestError(e) => {
                let mut s = format!("cannot reach the registry: {e}");
                let mut src = std::error::Error::source(&e);
                while let Some(x) = src {
                    s.push_str(&format!(": {x}"));
                    src = x.source();
                }
                s
            }
            OciDistributionError::DigestError(d) => format!("digest check failed: {d}"),
            other => one_line(&other.to_string()),
        };
        self.error(reason)
    }
}

/// Where streamed blob bytes go.
pub trait AsyncSink {
    fn chunk(&mut self, b: bytes::Bytes) -> impl std::future::Future<Output = Result<()>> + Send;
}

fn descriptor(digest: &Digest, size: u64) -> OciDescriptor {
    OciDescriptor {
        digest: digest.to_string(),
        size: size as i64,
        media_type: "application/octet-stream".into(),
        ..Default::default()
    }
}

fn one_line(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.len() > 300 {
        format!(
            "{}…",
            &s[..s
                .char_indices()
                .take_while(|(i, _)| *i < 300)
                .last()
                .map(|(i, _)| i)
                .unwrap_or(0)]
        )
    } else {
        s
    }
}

fn retryable(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(r) => {
            r.is_timeout() || r.is_connect() || r.is_body() || r.is_request()
        }
        OciDistributionError::ServerError { code, .. } => *code == 429 || *code >= 500,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|x| matches!(x.code, OciErrorCode::Toomanyrequests)),
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

async fn backoff(attempt: u32) {
    let ms = 200u64 << attempt.min(5);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Checks `creds` against `registry` the way `docker login` does: GET /v2/
/// with basic auth, or a token request to the bearer realm it names.
pub async fn check_login(
    registry: &str,
    creds: &crate::config::Credentials,
    conf: &RegistriesConf,
) -> Result<()> {
    let err = |reason: String| Error::Registry {
        registry: registry.to_string(),
        reference: "login".into(),
        reason,
    };
    let rconf = conf.get(registry);
    let insecure = rconf.is_some_and(|r| r.insecure);
    let plain = (insecure || is_loopback(registry)) && speaks_plain_http(registry).await;
    let host = if registry == crate::reference::DOCKER_HUB {
        "registry-1.docker.io"
    } else {
        registry
    };
    let base = format!("{}://{host}/v2/", if plain { "http" } else { "https" });
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(60));
    let mut certs = Vec::new();
    for p in rconf.map(|r| r.ca.clone()).unwrap_or_default() {
        let data = std::fs::read(&p).map_err(|e| Error::io("reading CA certificate", &p, e))?;
        certs.push(
            reqwest::Certificate::from_pem(&data)
                .map_err(|e| err(format!("CA certificate {}: {e}", p.display())))?,
        );
    }
    b = b.tls_certs_merge(certs);
    let client = b
        .build()
        .map_err(|e| err(format!("setting up the HTTP client: {e}")))?;
    let reach = |e: reqwest::Error| {
        let mut s = format!("cannot reach the registry: {e}");
        let mut src = std::error::Error::source(&e);
        while let Some(x) = src {
            s.push_str(&format!(": {x}"));
            src = x.source();
        }
        err(s)
    };
    let resp = client.get(&base).send().await.map_err(reach)?;
    if resp.status().is_success() {
        return Ok(());
    }
    if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(err(format!(
            "unexpected status {} from /v2/",
            resp.status()
        )));
    }
    let challenge = resp
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let resp = if challenge.to_ascii_lowercase().starts_with("bearer") {
        let param = |k: &str| {
            challenge
                .split([',', ' '])
                .filter_map(|kv| kv.split_once('='))
                .find(|(key, _)| key.trim() == k)
                .map(|(_, v)| v.trim().trim_matches('"').to_string())
        };
        let realm = param("realm").ok_or_else(|| err("bearer challenge without a realm".into()))?;
        let mut q = vec![("account", creds.username.clone())];
        if let Some(s) = param("service") {
            q.push(("service", s));
        }
        let url = reqwest::Url::parse_with_params(&realm, &q)
            .map_err(|e| err(format!("token realm {realm}: {e}")))?;
        client
            .get(url)
            .basic_auth(&creds.username, Some(&creds.password))
            .send()
            .await
            .map_err(reach)?
    } else {
        client
            .get(&base)
            .basic_auth(&creds.username, Some(&creds.password))
            .send()
            .await
            .map_err(reach)?
    };
    match resp.status() {
        s if s.is_success() => Ok(()),
        reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => Err(err(format!(
            "{}: username or password rejected",
            resp.status()
        ))),
        s => Err(err(format!(
            "unexpected status {s} while checking credentials"
        ))),
    }
}
