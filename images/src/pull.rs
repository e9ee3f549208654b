//! Pulling an image: resolve the manifest (an index → this platform), fetch
//! and verify the config, then every layer in parallel, each unpacked while
//! it downloads, verified (blob digest and diffID) before anything of it is
//! committed. The image record is written last.
use crate::config::RegistriesConf;
use crate::digest::{chain_ids, Digest};
use crate::error::{Error, Result};
use crate::reference::ImageRef;
use crate::registry::{AsyncSink, Session};
use crate::store::{BlobWriter, ImageRecord, LayerRecord, Store};
use crate::unpack::{unpack_layer, Compression, Limits};
use bytes::Bytes;
use serde::Deserialize;
use std::io::{self, Read};
use std::sync::Arc;
use tokio::sync::mpsc;

/// os/arch[/variant] of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this process runs on, in OCI terms.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(Into::into),
        }
    }

    /// Parses `os/arch[/variant]` (`linux/arm64`, `linux/arm/v7`).
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| ok(p)) {
            return Err(Error::Reference {
                reference: s.to_string(),
                reason: "platform must be os/arch[/variant], e.g. linux/arm64".into(),
            });
        }
        Ok(Platform {
            os: parts[0].into(),
            architecture: parts[1].into(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Where a layer is in its pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerState {
    Waiting,
    Downloading,
    /// Downloaded; the last files are being written.
    Unpacking,
    Done,
    /// Already in the store.
    Exists,
}

/// Receives pull progress (the CLI draws it).
pub trait Progress: Send + Sync {
    /// The image resolved to these layers (blob digest, compressed size).
    fn resolved(&self, _image: &ImageRef, _manifest: &Digest, _layers: &[(Digest, u64)]) {}
    fn state(&self, _layer: usize, _state: LayerState) {}
    fn bytes(&self, _layer: usize, _n: u64) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;
impl Progress for NoProgress {}

#[derive(Debug, Clone)]
pub struct PullOptions {
    /// None: the host's platform.
    pub platform: Option<Platform>,
    pub limits: Limits,
    pub registries: RegistriesConf,
    /// Layers downloaded at once.
    pub concurrency: usize,
}

impl PullOptions {
    pub fn new(registries: RegistriesConf) -> Self {
        PullOptions {
            platform: None,
            limits: Limits::default(),
            registries,
            concurrency: 4,
        }
    }
}

/// When `ensure` fetches from the registry, as Kubernetes' imagePullPolicy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// The image for `reference`, pulled if the policy says so.
pub async fn ensure(
    store: &Store,
    reference: &str,
    policy: PullPolicy,
    opts: &PullOptions,
    progress: Arc<dyn Progress>,
) -> Result<ImageRecord> {
    if policy != PullPolicy::Always {
        if let Some(rec) = store.find(reference)? {
            return Ok(rec);
        }
        if policy == PullPolicy::Never {
            return Err(Error::NotFound(reference.to_string()));
        }
    }
    pull(store, reference, opts, progress).await
}

#[derive(Deserialize)]
struct DescriptorJson {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
    platform: Option<PlatformJson>,
}

#[derive(Deserialize)]
struct PlatformJson {
    os: String,
    architecture: String,
    variant: Option<String>,
}

#[derive(Deserialize)]
struct ManifestJson {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<i64>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<Vec<DescriptorJson>>,
    config: Option<DescriptorJson>,
    layers: Option<Vec<DescriptorJson>>,
}

#[derive(Deserialize)]
struct ConfigJson {
    created: Option<String>,
    os: Option<String>,
    architecture: Option<String>,
    variant: Option<String>,
    rootfs: RootFsJson,
}

#[derive(Deserialize)]
struct RootFsJson {
    diff_ids: Vec<String>,
}

fn is_index(m: &ManifestJson) -> bool {
    matches!(
        m.media_type.as_deref(),
        Some(
            "application/vnd.oci.image.index.v1+json"
                | "application/vnd.docker.distribution.manifest.list.v2+json"
        )
    ) || (m.media_type.is_none() && m.manifests.is_some() && m.layers.is_none())
}

fn compression_of(media_type: &str, image: &ImageRef, digest: &str) -> Result<Compression> {
    let refuse = |why: &str| Error::Image {
        reference: image.to_string(),
        reason: format!("layer {digest} has media type {media_type:?}: {why}"),
    };
    if media_type.contains("foreign") || media_type.contains("nondistributable") {
        return Err(refuse("foreign (non-distributable) layers are refused"));
    }
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Ok(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Ok(Compression::Zstd),
        _ => Err(refuse("not a layer type krun knows")),
    }
}

fn parse_json<'a, T: Deserialize<'a>>(data: &'a [u8], what: &str, image: &ImageRef) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| Error::Image {
        reference: image.to_string(),
        reason: format!("{what} is not valid: {e}"),
    })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Layer {
            layer: "-".into(),
            reason: format!("worker task failed: {e}"),
        })?
}

/// Pulls `reference` into the store and returns its record.
pub async fn pull(
    store: &Store,
    reference: &str,
    opts: &PullOptions,
    progress: Arc<dyn Progress>,
) -> Result<ImageRecord> {
    let image = ImageRef::parse(reference)?;
    let st = store.clone();
    let _shared = blocking(move || st.lock_shared()).await?;

    let (session, top_bytes, top_digest) = Session::open(&image, &opts.registries).await?;
    if let Some(want) = &image.digest {
        if want != &top_digest {
            return Err(Error::DigestMismatch {
                what: "manifest",
                digest: want.to_string(),
                actual: top_digest.to_string(),
            });
        }
    }
    let top: ManifestJson = parse_json(&top_bytes, "manifest", &image)?;
    if top.schema_version == Some(1) {
        return Err(Error::Image {
            reference: image.to_string(),
            reason: "Docker schema 1 manifests are deprecated and not supported".into(),
        });
    }
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let mut manifests_to_store = vec![(top_digest.clone(), top_bytes.clone())];
    let (manifest, manifest_bytes) = if is_index(&top) {
        let entries = top.manifests.as_deref().unwrap_or(&[]);
        let chosen = choose_platform(entries, &platform).ok_or_else(|| {
            let have: Vec<String> = entries
                .iter()
                .filter_map(|e| e.platform.as_ref())
                .map(|p| match &p.variant {
                    Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                    None => format!("{}/{}", p.os, p.architecture),
                })
                .collect();
            Error::Image {
                reference: image.to_string(),
                reason: format!(
                    "no manifest for platform {platform} (the index has: {})",
                    have.join(", ")
                ),
            }
        })?;
        let d = Digest::parse(&chosen.digest)?;
        let (bytes, got) = session.manifest(&image.with_digest(&d)).await?;
        if got != d {
            return Err(Error::DigestMismatch {
                what: "manifest",
                digest: d.to_string(),
                actual: got.to_string(),
            });
        }
        let m: ManifestJson = parse_json(&bytes, "manifest", &image)?;
        if is_index(&m) {
            return Err(Error::Image {
                reference: image.to_string(),
                reason: "an image index inside an image index is not supported".into(),
            });
        }
        manifests_to_store.push((d, bytes.clone()));
        (m, bytes)
    } else {
        (top, top_bytes)
    };
    let _ = manifest_bytes;
    let (Some(config_desc), Some(layers)) = (manifest.config, manifest.layers) else {
        return Err(Error::Image {
            reference: image.to_string(),
            reason: "manifest has no config or no layers".into(),
        });
    };

    // Config: fetched once across processes (its own lock), verified.
    let config_digest = Digest::parse(&config_desc.digest)?;
    let st = store.clone();
    let cd = config_digest.clone();
    let config_lock = blocking(move || st.lock_blob(&cd)).await?;
    let config_bytes = if store.has_blob(&config_digest) {
        store.read_blob(&config_digest)?
    } else {
        let data = session.small_blob(&config_digest, config_desc.size).await?;
        store.put_blob(&config_digest, &data, "image config")?;
        data
    };
    drop(config_lock);
    let config: ConfigJson = parse_json(&config_bytes, "image config", &image)?;
    if config.rootfs.diff_ids.len() != layers.len() {
        return Err(Error::Image {
            reference: image.to_string(),
            reason: format!(
                "the config lists {} diffIDs for {} layers",
                config.rootfs.diff_ids.len(),
                layers.len()
            ),
        });
    }
    let diff_ids = config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| Digest::parse(d))
        .collect::<Result<Vec<_>>>()?;
    let chains = chain_ids(&diff_ids);
    let mut plan = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let digest = Digest::parse(&l.digest)?;
        let compression = compression_of(&l.media_type, &image, &l.digest)?;
        plan.push(LayerRecord {
            digest,
            diff_id: diff_ids[i].clone(),
            chain_id: chains[i].clone(),
            size: l.size,
            media_type: l.media_type.clone(),
        });
        let _ = compression;
    }
    progress.resolved(
        &image,
        &top_digest,
        &plan
            .iter()
            .map(|l| (l.digest.clone(), l.size))
            .collect::<Vec<_>>(),
    );

    let session = Arc::new(session);
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, l) in plan.iter().enumerate() {
        progress.state(i, LayerState::Waiting);
        let job = LayerJob {
            index: i,
            layer: l.clone(),
            compression: compression_of(&l.media_type, &image, l.digest.as_str())?,
            store: store.clone(),
            session: session.clone(),
            limits: opts.limits.clone(),
            progress: progress.clone(),
        };
        let sem = sem.clone();
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            job.run().await
        });
    }
    let mut first_err = None;
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap_or_else(|e| {
            Err(Error::Layer {
                layer: "-".into(),
                reason: format!("layer task failed: {e}"),
            })
        });
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }

    for (d, bytes) in &manifests_to_store {
        store.put_blob(d, bytes, "manifest")?;
    }
    let reference = match (&image.tag, &image.digest) {
        (Some(_), _) => ImageRef {
            digest: None,
            ..image.clone()
        }
        .to_string(),
        _ => image.to_string(),
    };
    let rec = ImageRecord {
        reference,
        repository: image.name(),
        tag: image.tag.clone(),
        manifest_digest: top_digest,
        config_digest,
        size: config_desc.size + plan.iter().map(|l| l.size).sum::<u64>(),
        layers: plan,
        created: config.created,
        os: config.os.unwrap_or_else(|| platform.os.clone()),
        architecture: config
            .architecture
            .unwrap_or_else(|| platform.architecture.clone()),
        variant: config.variant,
        pulled_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    store.save_record(&rec)?;
    Ok(rec)
}

fn choose_platform<'a>(
    entries: &'a [DescriptorJson],
    want: &Platform,
) -> Option<&'a DescriptorJson> {
    let matching = |e: &&DescriptorJson| {
        e.platform
            .as_ref()
            .is_some_and(|p| p.os == want.os && p.architecture == want.architecture)
    };
    let variant_of = |e: &DescriptorJson| e.platform.as_ref().and_then(|p| p.variant.clone());
    match &want.variant {
        Some(v) => entries
            .iter()
            .filter(matching)
            .find(|e| variant_of(e).as_deref() == Some(v.as_str()))
            .or_else(|| {
                // arm64 images often omit the implied v8.
                entries
                    .iter()
                    .filter(matching)
                    .find(|e| v == "v8" && variant_of(e).is_none())
            }),
        None => entries
            .iter()
            .filter(matching)
            .find(|e| variant_of(e).is_none())
            .or_else(|| entries.iter().find(matching)),
    }
}

struct LayerJob {
    index: usize,
    layer: LayerRecord,
    compression: Compression,
    store: Store,
    session: Arc<Session>,
    limits: Limits,
    progress: Arc<dyn Progress>,
}

/// Sends downloaded bytes to the blob file and to the unpacker.
struct LayerSink {
    writer: BlobWriter,
    tx: Option<mpsc::Sender<io::Result<Bytes>>>,
    progress: Arc<dyn Progress>,
    index: usize,
}

impl AsyncSink for LayerSink {
    async fn chunk(&mut self, b: Bytes) -> Result<()> {
        self.writer.write(&b)?;
        self.progress.bytes(self.index, b.len() as u64);
        if let Some(tx) = &self.tx {
            // A gone unpacker has failed; keep downloading so the digest
            // check can still say whether the blob itself was bad.
            if tx.send(Ok(b)).await.is_err() {
                self.tx = None;
            }
        }
        Ok(())
    }
}

/// Read over the channel the download feeds.
struct ChannelRead {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChannelRead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

impl LayerJob {
    async fn run(self) -> Result<()> {
        let (i, chain) = (self.index, self.layer.chain_id.clone());
        if self.store.has_layer(&chain) {
            self.progress.state(i, LayerState::Exists);
            return Ok(());
        }
        let st = self.store.clone();
        let c = chain.clone();
        let _layer_lock = blocking(move || st.lock_layer(&c)).await?;
        // Another process may have unpacked it while we waited.
        if self.store.has_layer(&chain) {
            self.progress.state(i, LayerState::Exists);
            return Ok(());
        }
        let st = self.store.clone();
        let c = chain.clone();
        let tmp = blocking(move || st.layer_tmp(&c)).await?;
        let r = self.fetch_and_unpack(&tmp).await;
        if r.is_err() {
            let t = tmp.clone();
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(t)).await;
        }
        r
    }

    fn label(&self) -> String {
        self.layer.digest.to_string()
    }

    async fn fetch_and_unpack(&self, tmp: &std::path::Path) -> Result<()> {
        let i = self.index;
        let digest = self.layer.digest.clone();
        let st = self.store.clone();
        let d = digest.clone();
        let _blob_lock = blocking(move || st.lock_blob(&d)).await?;
        self.progress.state(i, LayerState::Downloading);

        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(64);
        let compression = self.compression;
        let limits = self.limits.clone();
        let label = self.label();
        let dest = tmp.to_path_buf();

        let unpacker = tokio::task::spawn_blocking(move || {
            unpack_layer(
                ChannelRead {
                    rx,
                    cur: Bytes::new(),
                },
                compression,
                &dest,
                &limits,
                &label,
            )
        });
        let st = self.store.clone();
        let d = digest.clone();
        let mut writer = blocking(move || st.blob_writer(&d)).await?;
        let have = writer.len();
        if have > 0 {
            // Resume: what is on disk goes to the unpacker first.
            let txc = tx.clone();
            let progress = self.progress.clone();
            writer = blocking(move || {
                writer.replay(|c| {
                    progress.bytes(i, c.len() as u64);
                    txc.blocking_send(Ok(Bytes::copy_from_slice(c))).is_ok()
                })?;
                Ok(writer)
            })
            .await?;
        }
        let mut sink = LayerSink {
            writer,
            tx: Some(tx),
            progress: self.progress.clone(),
            index: i,
        };
        let dl = self
            .session
            .stream_blob(&digest, self.layer.size, have, &mut sink)
            .await;
        let LayerSink { writer, tx, .. } = sink;
        if let Err(e) = dl {
            // The partial blob stays for the next pull to resume.
            if let Some(tx) = tx {
                let _ = tx.send(Err(io::Error::other("download failed"))).await;
            }
            let _ = unpacker.await;
            return Err(e);
        }
        drop(tx);
        self.progress.state(i, LayerState::Unpacking);
        let unpacked = unpacker.await.map_err(|e| Error::Layer {
            layer: self.label(),
            reason: format!("unpack task failed: {e}"),
        })?;
        // A blob that does not match its digest explains any unpack error.
        if let Err(e) = writer.verify("layer blob") {
            writer.discard();
            return Err(e);
        }
        let unpacked = match unpacked {
            Ok(u) => u,
            Err(e) => {
                writer.discard();
                return Err(e);
            }
        };
        self.finish(unpacked, writer, tmp).await
    }

    /// Checks the diffID, then makes the layer visible. The compressed blob
    /// is not kept (see ARCHITECTURE.md): its partial file goes first, so a
    /// kill in between costs at most a fresh download, never a stale file.
    async fn finish(
        &self,
        unpacked: crate::unpack::Unpacked,
        writer: BlobWriter,
        tmp: &std::path::Path,
    ) -> Result<()> {
        if unpacked.diff_id != self.layer.diff_id {
            writer.discard();
            return Err(Error::Layer {
                layer: self.label(),
                reason: format!(
                    "uncompressed content has diffID {} but the image config says {}",
                    unpacked.diff_id, self.layer.diff_id
                ),
            });
        }
        let st = self.store.clone();
        let chain = self.layer.chain_id.clone();
        let tmp = tmp.to_path_buf();
        blocking(move || {
            writer.discard();
            st.commit_layer(&tmp, &chain)
        })
        .await?;
        self.progress.state(self.index, LayerState::Done);
        Ok(())
    }
}
