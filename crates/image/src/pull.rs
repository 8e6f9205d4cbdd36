//! Pulling and pushing images over the OCI distribution API (through `oci-client`).
//!
//! A pull resolves the name to a manifest (following an index to this host's platform),
//! then downloads the config and layers that are not in the store yet, a few at a time,
//! and unpacks each new layer into its snapshot as soon as it is complete. Every blob is
//! verified against its digest before it is renamed into the store. Downloads and unpacks
//! are coalesced across threads and processes by a lock file per digest: whoever holds the
//! lock does the work, the others find the result when they get the lock.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use serde_json::Value;

use crate::auth::{Credential, Keyring};
use crate::digest::{Digest, Hashing};
use crate::store::{Image, Store};
use crate::{Error, IoContext, Result};
use peapod_types::config::Registries;
use peapod_types::image_ref::Reference;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ACCEPTED: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// Layer media types peapod unpacks (compression is recognised from the content).
const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// An OS/architecture pair (with an optional variant), as in image indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `v8`, `v7`, … when it matters.
    pub variant: Option<String>,
}

impl Platform {
    /// This host's platform.
    pub fn host() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: crate::archive::host_arch().into(),
            variant: None,
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: parts.get(2).map(|v| v.to_string()),
            }),
            _ => Err(Error::Format(format!(
                "invalid platform {s:?}: expected OS/ARCH[/VARIANT]"
            ))),
        }
    }

    fn matches(&self, p: &Value) -> bool {
        p["os"] == self.os.as_str()
            && p["architecture"] == self.architecture.as_str()
            && self
                .variant
                .as_deref()
                .is_none_or(|v| p["variant"].as_str().is_none_or(|pv| pv == v))
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

/// What a pull reports as it goes.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The manifest is known: these layers (digest, compressed size) make the image.
    Resolved {
        /// The manifest's digest.
        manifest: Digest,
        /// The layers, bottom first.
        layers: Vec<(Digest, u64)>,
    },
    /// The layer is already in the store.
    Exists(Digest),
    /// `done` of `total` bytes of the layer have arrived.
    Downloading {
        /// The layer.
        layer: Digest,
        /// Bytes so far.
        done: u64,
        /// Announced size.
        total: u64,
    },
    /// The layer is downloaded and verified.
    Downloaded(Digest),
    /// The layer is unpacked into its snapshot.
    Unpacked(Digest),
}

/// Receives progress reports; called from several tasks at once.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Options of one pull or push.
#[derive(Clone, Default)]
pub struct PullOptions {
    /// Credentials that come before the node's (a pod's `imagePullSecrets`).
    pub keyring: Keyring,
    /// The platform wanted from an index; this host's by default.
    pub platform: Option<Platform>,
    /// Progress reports.
    pub progress: Option<ProgressFn>,
}

/// One place to fetch from: a mirror or the registry itself.
#[derive(Debug, Clone)]
struct Endpoint {
    host: String,
    http: bool,
    ca_files: Vec<PathBuf>,
    mirror: bool,
}

/// Pulls and pushes images for one store with the node's registry settings.
#[derive(Clone)]
pub struct Registry {
    store: Store,
    settings: Registries,
    keyring: Keyring,
}

impl Registry {
    /// A client for `store` with `settings`; the node's credentials come from the settings'
    /// per-host users, then the credentials file (`auth_file`, else `$REGISTRY_AUTH_FILE`,
    /// else `$HOME/.docker/config.json`).
    pub fn new(store: Store, settings: Registries) -> Result<Registry> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut keyring = Keyring::new();
        for (host, h) in &settings.hosts {
            if let Some(u) = &h.username {
                keyring.add(
                    host,
                    Credential {
                        username: u.clone(),
                        password: h.password.clone().unwrap_or_default(),
                    },
                );
            }
        }
        let file = settings.auth_file.clone().or_else(|| {
            std::env::var_os("REGISTRY_AUTH_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
                })
        });
        if let Some(f) = file {
            keyring.add_docker_config_file(&f)?;
        }
        Ok(Registry {
            store,
            settings,
            keyring,
        })
    }

    /// The store this client fills.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where `registry` is fetched from: its mirrors in order, then itself.
    fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let mut out = Vec::new();
        if let Some(h) = self.settings.hosts.get(registry) {
            for m in &h.mirrors {
                let (scheme, host) = match m.split_once("://") {
                    Some((s, rest)) => (Some(s), rest.trim_end_matches('/')),
                    None => (None, m.trim_end_matches('/')),
                };
                let mut e = self.endpoint(host);
                if let Some(s) = scheme {
                    e.http = s == "http";
                }
                e.mirror = true;
                out.push(e);
            }
        }
        out.push(self.endpoint(registry));
        out
    }

    fn endpoint(&self, host: &str) -> Endpoint {
        let h = self.settings.hosts.get(host).cloned().unwrap_or_default();
        let http = h
            .insecure
            .unwrap_or_else(|| h.ca_files.is_empty() && is_loopback(host));
        Endpoint {
            host: host.to_string(),
            http,
            ca_files: h.ca_files,
            mirror: false,
        }
    }

    fn client(&self, e: &Endpoint) -> Result<Client> {
        let mut certs = Vec::new();
        for f in &e.ca_files {
            let data = std::fs::read(f).at("reading CA certificate", f)?;
            certs.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        Ok(Client::new(ClientConfig {
            protocol: if e.http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates: certs,
            platform_resolver: None,
            max_concurrent_download: self.settings.max_concurrent_downloads.max(1),
            max_concurrent_upload: self.settings.max_concurrent_downloads.max(1),
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("peapod/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        }))
    }

    /// The credentials to try for `host/repository`, best first; anonymous when none.
    fn auths(&self, opts: &PullOptions, host: &str, repository: &str) -> Vec<RegistryAuth> {
        let mut creds = opts.keyring.lookup(host, repository);
        for c in self.keyring.lookup(host, repository) {
            if !creds.contains(&c) {
                creds.push(c);
            }
        }
        if creds.is_empty() {
            return vec![RegistryAuth::Anonymous];
        }
        creds
            .into_iter()
            .map(|c| RegistryAuth::Basic(c.username, c.password))
            .collect()
    }

    /// Pulls `name` into the store (mirrors first) and returns the stored image.
    pub async fn pull(&self, name: &str, opts: &PullOptions) -> Result<Image> {
        let r = Reference::parse(name)?;
        let mut failures = Vec::new();
        for e in self.endpoints(&r.registry) {
            match self.pull_from(&e, &r, opts).await {
                Ok(img) => return Ok(img),
                // Content that fails verification is never retried elsewhere silently.
                Err(err @ Error::DigestMismatch { .. }) => return Err(err),
                Err(err) if e.mirror => {
                    tracing::warn!(mirror = %e.host, error = %err, "mirror failed; trying the next");
                    failures.push(format!("mirror {}: {err}", e.host));
                }
                Err(err) => {
                    if failures.is_empty() {
                        return Err(err);
                    }
                    return Err(Error::Registry(format!(
                        "{err} (after {})",
                        failures.join("; ")
                    )));
                }
            }
        }
        unreachable!("the registry itself is always the last endpoint")
    }

    async fn pull_from(&self, e: &Endpoint, r: &Reference, opts: &PullOptions) -> Result<Image> {
        let auths = self.auths(opts, &e.host, &r.repository);
        let last = auths.len() - 1;
        for (i, auth) in auths.into_iter().enumerate() {
            // A fresh client per credential: its token cache belongs to that credential.
            let client = self.client(e)?;
            match self.pull_with(&client, e, r, &auth, opts).await {
                Err(Error::Unauthorized(_)) if i < last => continue,
                other => return other,
            }
        }
        unreachable!("at least one credential (anonymous) is tried")
    }

    async fn pull_with(
        &self,
        client: &Client,
        e: &Endpoint,
        r: &Reference,
        auth: &RegistryAuth,
        opts: &PullOptions,
    ) -> Result<Image> {
        let name = r.to_string();
        let wanted = r.digest.as_deref().map(|d| {
            Digest::parse(d).ok_or_else(|| Error::Format(format!("unsupported digest {d:?}")))
        });
        let wanted = wanted.transpose()?;
        let oref = match (&r.digest, &r.tag) {
            (Some(d), _) => {
                oci_client::Reference::with_digest(e.host.clone(), r.repository.clone(), d.clone())
            }
            (None, t) => oci_client::Reference::with_tag(
                e.host.clone(),
                r.repository.clone(),
                t.clone().unwrap_or_else(|| "latest".into()),
            ),
        };
        let ctx = |err: OciDistributionError| classify(&name, &e.host, err);
        let (bytes, _) = client
            .pull_manifest_raw(&oref, auth, ACCEPTED)
            .await
            .map_err(ctx)?;
        let top = Digest::of(&bytes);
        if let Some(w) = &wanted
            && *w != top
        {
            return Err(Error::DigestMismatch {
                what: format!("manifest of {name}"),
                expected: w.to_string(),
                actual: top.to_string(),
            });
        }
        let doc: Value = serde_json::from_slice(&bytes)
            .map_err(|err| Error::Format(format!("manifest of {name}: {err}")))?;
        if doc["schemaVersion"] == 1 {
            return Err(Error::Format(format!(
                "{name}: Docker schema 1 manifests are not supported; push the image again with a current tool"
            )));
        }
        let platform = opts.platform.clone().unwrap_or_else(Platform::host);
        let mut index_digest = None;
        let (manifest_digest, manifest_bytes, manifest) = if doc.get("manifests").is_some() {
            let entry = doc["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| platform.matches(&m["platform"]))
                .ok_or_else(|| {
                    Error::Format(format!(
                        "{name}: the image index has no manifest for {platform}"
                    ))
                })?;
            let d = descriptor(entry, "manifest")?.0;
            let by_digest = oci_client::Reference::with_digest(
                e.host.clone(),
                r.repository.clone(),
                d.to_string(),
            );
            let (mbytes, _) = client
                .pull_manifest_raw(&by_digest, auth, ACCEPTED)
                .await
                .map_err(ctx)?;
            let actual = Digest::of(&mbytes);
            if actual != d {
                return Err(Error::DigestMismatch {
                    what: format!("manifest of {name} for {platform}"),
                    expected: d.to_string(),
                    actual: actual.to_string(),
                });
            }
            let m: Value = serde_json::from_slice(&mbytes)
                .map_err(|err| Error::Format(format!("manifest {d}: {err}")))?;
            index_digest = Some((top.clone(), bytes.to_vec()));
            (d, mbytes.to_vec(), m)
        } else {
            (top.clone(), bytes.to_vec(), doc)
        };
        let (config_digest, config_size) = descriptor(&manifest["config"], "config")?;
        let mut layers = Vec::new();
        for l in manifest["layers"].as_array().into_iter().flatten() {
            let mt = l["mediaType"].as_str().unwrap_or_default();
            if !mt.is_empty() && !LAYER_TYPES.contains(&mt) {
                return Err(Error::Format(format!(
                    "{name}: layer media type {mt:?} is not a container image layer"
                )));
            }
            layers.push(descriptor(l, "layer")?);
        }
        if let Some(p) = &opts.progress {
            p(&Progress::Resolved {
                manifest: manifest_digest.clone(),
                layers: layers.clone(),
            });
        }
        let fetch = Fetch {
            store: self.store.clone(),
            client: client.clone(),
            oref: oref.clone(),
            name: name.clone(),
            progress: opts.progress.clone(),
        };
        // The config first: it says what the layers must unpack to.
        fetch.blob(&config_digest, config_size, false).await?;
        let config: Value = serde_json::from_slice(&self.store.read_blob(&config_digest)?)
            .map_err(|err| Error::Format(format!("config of {name}: {err}")))?;
        let diff_ids = crate::archive::diff_ids(&config, layers.len(), &name)?;
        let chain = Image::chain_of(&diff_ids);
        let slots = Arc::new(tokio::sync::Semaphore::new(
            self.settings.max_concurrent_downloads.max(1),
        ));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (digest, size)) in layers.iter().cloned().enumerate() {
            let fetch = fetch.clone();
            let slots = slots.clone();
            let diff_id = diff_ids[i].clone();
            let chain_id = chain[i].clone();
            tasks.spawn(async move {
                {
                    let _slot = slots.acquire_owned().await.expect("never closed");
                    fetch.blob(&digest, size, true).await?;
                }
                let store = fetch.store.clone();
                let (d, id) = (digest.clone(), diff_id.clone());
                tokio::task::spawn_blocking(move || store.ensure_snapshot(&d, &id, &chain_id))
                    .await
                    .expect("unpack task")?;
                if let Some(p) = &fetch.progress {
                    p(&Progress::Unpacked(digest));
                }
                Ok::<(), Error>(())
            });
        }
        let mut first_error = None;
        while let Some(res) = tasks.join_next().await {
            if let Err(err) = res.expect("layer task") {
                if first_error.is_none() {
                    first_error = Some(err);
                    // The others are pointless now; their temporary files go with them.
                    tasks.abort_all();
                }
            }
        }
        if let Some(err) = first_error {
            return Err(err);
        }
        // Metadata last: the manifests, then the index entry.
        self.store
            .put_blob(&manifest_bytes[..], Some(&manifest_digest), "manifest")?;
        if let Some((d, b)) = &index_digest {
            self.store.put_blob(&b[..], Some(d), "image index")?;
        }
        let mut image = self.store.image_from_manifest(&name, manifest_digest)?;
        image.index_digest = index_digest.map(|(d, _)| d);
        self.store.add_image(image.clone())?;
        Ok(image)
    }

    /// Pushes the stored image `name` to `target` (its own name by default): blobs the
    /// registry lacks, then the manifest. Returns the manifest digest.
    pub async fn push(
        &self,
        name: &str,
        target: Option<&str>,
        opts: &PullOptions,
    ) -> Result<Digest> {
        let image = self.store.get(name)?;
        let target = Reference::parse(target.unwrap_or(&image.name))?;
        let e = self.endpoint(&target.registry);
        let auths = self.auths(opts, &e.host, &target.repository);
        let last = auths.len() - 1;
        for (i, auth) in auths.into_iter().enumerate() {
            let client = self.client(&e)?;
            match self.push_with(&client, &e, &image, &target, &auth).await {
                Err(Error::Unauthorized(_)) if i < last => continue,
                other => return other,
            }
        }
        unreachable!("at least one credential (anonymous) is tried")
    }

    async fn push_with(
        &self,
        client: &Client,
        e: &Endpoint,
        image: &Image,
        target: &Reference,
        auth: &RegistryAuth,
    ) -> Result<Digest> {
        let name = target.to_string();
        let ctx = |err: OciDistributionError| classify(&name, &e.host, err);
        let oref = oci_client::Reference::with_tag(
            e.host.clone(),
            target.repository.clone(),
            target.tag.clone().unwrap_or_else(|| "latest".into()),
        );
        client
            .auth(&oref, auth, RegistryOperation::Push)
            .await
            .map_err(ctx)?;
        for d in image.layers.iter().chain([&image.config_digest]) {
            if client.blob_exists(&oref, d.as_str()).await.map_err(ctx)? {
                continue;
            }
            let data = self.store.read_blob(d)?;
            client
                .push_blob(&oref, data, d.as_str())
                .await
                .map_err(ctx)?;
        }
        let manifest = self.store.read_blob(&image.manifest_digest)?;
        let doc: Value = serde_json::from_slice(&manifest)
            .map_err(|err| Error::Format(format!("manifest of {}: {err}", image.name)))?;
        let mt = doc["mediaType"]
            .as_str()
            .unwrap_or(OCI_MANIFEST)
            .to_string();
        let mt = http_header(&mt)?;
        client
            .push_manifest_raw(&oref, manifest, mt)
            .await
            .map_err(ctx)?;
        Ok(image.manifest_digest.clone())
    }
}

fn http_header(v: &str) -> Result<http::HeaderValue> {
    v.parse()
        .map_err(|_| Error::Format(format!("invalid media type {v:?}")))
}

/// The digest and size of a descriptor.
fn descriptor(d: &Value, what: &str) -> Result<(Digest, u64)> {
    let digest = d["digest"]
        .as_str()
        .and_then(Digest::parse)
        .ok_or_else(|| Error::Format(format!("{what} descriptor has no sha256 digest: {d}")))?;
    let size = d["size"].as_u64().unwrap_or(0);
    Ok((digest, size))
}

/// Puts a registry error in words that name the image and the cause.
fn classify(name: &str, host: &str, err: OciDistributionError) -> Error {
    use OciDistributionError as E;
    match err {
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => Error::Unauthorized(format!(
            "pulling {name} from {host}: authentication required or credentials rejected"
        )),
        E::ImageManifestNotFoundError(_) => Error::Registry(format!("{name}: not found on {host}")),
        E::RegistryError { envelope, .. } => {
            let denied = envelope.errors.iter().any(|x| {
                format!("{:?}", x.code).contains("Unauthorized")
                    || format!("{:?}", x.code).contains("Denied")
            });
            let words: Vec<String> = envelope.errors.iter().map(|x| x.message.clone()).collect();
            let msg = format!("{name} on {host}: {}", words.join("; "));
            if denied {
                Error::Unauthorized(msg)
            } else if envelope
                .errors
                .iter()
                .any(|x| format!("{:?}", x.code).contains("Unknown"))
            {
                Error::Registry(format!(
                    "{name}: not found on {host} ({})",
                    words.join("; ")
                ))
            } else {
                Error::Registry(msg)
            }
        }
        E::ServerError { code, message, .. } if code == 401 || code == 403 => {
            Error::Unauthorized(format!("{name} on {host}: {code} {message}"))
        }
        E::ServerError { code: 404, .. } => Error::Registry(format!("{name}: not found on {host}")),
        E::RequestError(e)
            if e.status()
                .is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403) =>
        {
            Error::Unauthorized(format!(
                "{name} on {host}: authentication required or credentials rejected ({})",
                e.status().expect("checked")
            ))
        }
        other => Error::Registry(format!("{name} from {host}: {}", chain_text(&other))),
    }
}

/// Whether `host[:port]` names this machine's loopback.
fn is_loopback(host: &str) -> bool {
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or(host)
    } else {
        host
    };
    bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// What every layer task needs to download into the store.
#[derive(Clone)]
struct Fetch {
    store: Store,
    client: Client,
    oref: oci_client::Reference,
    name: String,
    progress: Option<ProgressFn>,
}

impl Fetch {
    /// Downloads the blob unless the store has it; verified, then renamed into place.
    async fn blob(&self, digest: &Digest, size: u64, layer: bool) -> Result<()> {
        let report = |p: Progress| {
            if layer && let Some(f) = &self.progress {
                f(&p)
            }
        };
        if self.store.has_blob(digest) {
            report(Progress::Exists(digest.clone()));
            return Ok(());
        }
        let lock = self
            .store
            .lock_key(&format!("blob-{}", digest.hex()))
            .await?;
        if self.store.has_blob(digest) {
            lock.done();
            report(Progress::Exists(digest.clone()));
            return Ok(());
        }
        let what = if layer { "layer" } else { "config" };
        let ctx = |err: OciDistributionError| classify(&self.name, self.oref.registry(), err);
        let mut stream = self
            .client
            .pull_blob_stream(&self.oref, digest.as_str())
            .await
            .map_err(ctx)?;
        let tmp = self.store.temp_path("download");
        let cleanup = Cleanup(tmp.clone());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .at("creating", &tmp)?;
        let mut out = Hashing::new(std::io::BufWriter::with_capacity(1 << 20, file));
        let mut done = 0u64;
        // The first chunk is reported at once, then every 100 ms.
        let mut last_report = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(Instant::now);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|err| {
                Error::Registry(format!(
                    "{}: downloading {what} {digest}: {}",
                    self.name,
                    chain_text(&err)
                ))
            })?;
            done += chunk.len() as u64;
            if size > 0 && done > size {
                return Err(Error::Format(format!(
                    "{}: {what} {digest} is larger than the {size} bytes announced",
                    self.name
                )));
            }
            out.write_all(&chunk).at("writing", &tmp)?;
            if last_report.elapsed() >= Duration::from_millis(100) {
                last_report = Instant::now();
                report(Progress::Downloading {
                    layer: digest.clone(),
                    done,
                    total: size,
                });
            }
        }
        let (actual, n, w) = out.finish();
        if actual != *digest {
            return Err(Error::DigestMismatch {
                what: format!("{what} of {}", self.name),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        if size > 0 && n != size {
            return Err(Error::Format(format!(
                "{}: {what} {digest} has {n} bytes, {size} announced",
                self.name
            )));
        }
        let f = w
            .into_inner()
            .map_err(|e| e.into_error())
            .at("writing", &tmp)?;
        f.sync_all().at("syncing", &tmp)?;
        let dst = self.store.blob_path(digest);
        std::fs::rename(&tmp, &dst).at("storing blob", &dst)?;
        cleanup.disarm();
        lock.done();
        report(Progress::Downloading {
            layer: digest.clone(),
            done: n,
            total: size,
        });
        report(Progress::Downloaded(digest.clone()));
        Ok(())
    }
}

fn chain_text(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut src = err.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg.push_str(&format!(": {t}"));
        }
        src = s.source();
    }
    msg
}

/// Removes a temporary file when dropped, also when the task is aborted.
struct Cleanup(PathBuf);

impl Cleanup {
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.k8s.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert!(p.matches(
            &serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"})
        ));
        assert!(p.matches(&serde_json::json!({"os": "linux", "architecture": "arm64"})));
        assert!(!p.matches(&serde_json::json!({"os": "linux", "architecture": "amd64"})));
        assert!(Platform::parse("linux").is_err());
    }
}
