//! Pulling and pushing images over the OCI distribution API (through `oci-client`).
//!
//! A pull resolves the name to a manifest (following an index to this host's platform),
//! then downloads the config and layers that are not in the store yet, a few at a time,
//! and unpacks each new layer into its snapshot as soon as it is complete. Every blob is
//! verified against its digest before it is renamed into the store. Downloads and unpacks
//! are coalesced across threads and processes by a lock file per digest: whoever holds the
//! lock does the work, the others find the result when they get the lock.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oci_client::Client;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;

use crate::fetch::{Fetch, chain_text};
use serde_json::Value;

use crate::auth::{Credential, Keyring};
use crate::digest::Digest;
use crate::options::{Platform, Progress, PullOptions};
use crate::store::{Image, Store};
use crate::{Error, IoContext, Result};
use peapod_types::config::Registries;
use peapod_types::image_ref::Reference;

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
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

/// One place to fetch from: a mirror or the registry itself.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    http: bool,
    ca_files: Vec<PathBuf>,
    mirror: bool,
}

/// Pulls and pushes images for one store with the node's registry settings.
#[derive(Clone)]
pub struct Registry {
    pub(crate) store: Store,
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
            crate::auth::add_docker_config_file(&mut keyring, &f)?;
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

    pub(crate) fn endpoint(&self, host: &str) -> Endpoint {
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

    pub(crate) fn client(&self, e: &Endpoint) -> Result<Client> {
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
    pub(crate) fn auths(
        &self,
        opts: &PullOptions,
        host: &str,
        repository: &str,
    ) -> Vec<RegistryAuth> {
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
}

pub(crate) fn http_header(v: &str) -> Result<http::HeaderValue> {
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
pub(crate) fn classify(name: &str, host: &str, err: OciDistributionError) -> Error {
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
