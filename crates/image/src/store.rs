//! The store itself: blobs, the image index and snapshots.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, Hashing};
use crate::{Error, IoContext, Result};
use peapod_types::image_ref::Reference;

/// A named image in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// Normalised name, e.g. `docker.io/library/busybox:latest`.
    pub name: String,
    /// Digest of the image manifest.
    pub manifest_digest: Digest,
    /// Digest of the image config (the image ID).
    pub config_digest: Digest,
    /// Layer blobs, bottom first.
    pub layers: Vec<Digest>,
    /// Uncompressed layer digests (from the config), bottom first.
    pub diff_ids: Vec<Digest>,
    /// Total size of config and layer blobs, in bytes.
    pub size: u64,
    /// When the image entered the store (RFC 3339).
    pub added: String,
}

impl Image {
    /// The repository digest, `registry/repo@sha256:…`, as Kubernetes reports `imageID`.
    pub fn repo_digest(&self) -> String {
        let repo = Reference::parse(&self.name)
            .map(|r| r.repo())
            .unwrap_or_else(|_| self.name.clone());
        format!("{repo}@{}", self.manifest_digest)
    }

    /// The image ID (config digest).
    pub fn id(&self) -> &Digest {
        &self.config_digest
    }

    /// The chain IDs of the layers, bottom first: each names a snapshot.
    pub fn chain_ids(&self) -> Vec<Digest> {
        let mut out: Vec<Digest> = Vec::with_capacity(self.diff_ids.len());
        for d in &self.diff_ids {
            let next = match out.last() {
                None => d.clone(),
                Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
            };
            out.push(next);
        }
        out
    }
}

/// What a container takes from its image's config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`, as `KEY=value`.
    pub env: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: Option<String>,
    /// `User`, as `uid[:gid]` or names.
    pub user: Option<String>,
    /// `StopSignal`, e.g. `SIGQUIT`.
    pub stop_signal: Option<String>,
}

/// The image store rooted at one directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

const INDEX: &str = "images.json";

impl Store {
    /// Opens (creating if needed) the store at `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Store> {
        let dir = dir.into();
        for sub in ["blobs/sha256", "snapshots", "tmp"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).at("creating", &p)?;
        }
        Ok(Store { dir })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob with `digest` lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).exists()
    }

    /// Reads a whole (small) blob.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(digest);
        fs::read(&p).at("reading blob", p)
    }

    /// A new private temporary path under `tmp/`.
    pub(crate) fn temp_path(&self, what: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join("tmp")
            .join(format!("{what}-{}-{n}", std::process::id()))
    }

    /// Stores what `r` yields as a blob, verified against `expected` when given.
    /// Nothing enters the store when the digest does not match.
    pub fn put_blob(
        &self,
        r: impl Read,
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<(Digest, u64)> {
        let tmp = self.temp_path("blob");
        let result = (|| {
            let f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&tmp)
                .at("creating", &tmp)?;
            let mut w = Hashing::new(std::io::BufWriter::new(f));
            let mut r = r;
            std::io::copy(&mut r, &mut w).at("writing", &tmp)?;
            let (digest, size, w) = w.finish();
            let f = w
                .into_inner()
                .map_err(|e| e.into_error())
                .at("writing", &tmp)?;
            f.sync_all().at("syncing", &tmp)?;
            if let Some(exp) = expected
                && *exp != digest
            {
                return Err(Error::DigestMismatch {
                    what: what.to_string(),
                    expected: exp.to_string(),
                    actual: digest.to_string(),
                });
            }
            let dst = self.blob_path(&digest);
            fs::rename(&tmp, &dst).at("storing blob", &dst)?;
            Ok((digest, size))
        })();
        let _ = fs::remove_file(&tmp);
        result
    }

    /// Stores `data` as a blob.
    pub fn put_bytes(&self, data: &[u8]) -> Result<Digest> {
        Ok(self.put_blob(data, None, "blob")?.0)
    }

    fn lock(&self) -> Result<nix::fcntl::Flock<File>> {
        let p = self.dir.join("lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .at("opening", &p)?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
            Error::Io {
                context: "locking",
                path: p,
                source: e.into(),
            }
        })
    }

    fn read_index(&self) -> Result<BTreeMap<String, Image>> {
        let p = self.dir.join(INDEX);
        match fs::read(&p) {
            Ok(data) => serde_json::from_slice(&data)
                .map_err(|e| Error::Format(format!("{}: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e).at("reading", p),
        }
    }

    fn write_index(&self, index: &BTreeMap<String, Image>) -> Result<()> {
        let p = self.dir.join(INDEX);
        let data = serde_json::to_vec_pretty(index).expect("index serializes");
        write_atomic(&p, &data)
    }

    /// Records `image` under its name, replacing an older image of that name.
    pub fn add_image(&self, image: Image) -> Result<()> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        index.insert(image.name.clone(), image);
        self.write_index(&index)
    }

    /// Every image, by name.
    pub fn images(&self) -> Result<Vec<Image>> {
        Ok(self.read_index()?.into_values().collect())
    }

    /// Finds an image by name (normalised), by `name@digest`, or by ID (prefix of the config
    /// digest, at least 12 hex digits).
    pub fn get(&self, name: &str) -> Result<Image> {
        let index = self.read_index()?;
        let hexish = name.strip_prefix("sha256:").unwrap_or(name);
        if hexish.len() >= 12 && hexish.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Some(img) = index
                .values()
                .find(|i| i.config_digest.hex().starts_with(hexish))
            {
                return Ok(img.clone());
            }
        }
        let r = Reference::parse(name)?;
        if let Some(d) = &r.digest {
            let repo = r.repo();
            return index
                .values()
                .find(|i| {
                    i.manifest_digest.as_str() == d
                        && Reference::parse(&i.name).is_ok_and(|n| n.repo() == repo)
                })
                .cloned()
                .ok_or_else(|| Error::NotFound(name.to_string()));
        }
        index
            .get(&r.to_string())
            .cloned()
            .ok_or_else(|| Error::NotFound(name.to_string()))
    }

    /// Removes the image named `name` from the index; blobs and snapshots stay until pruned.
    pub fn remove(&self, name: &str) -> Result<Image> {
        let img = self.get(name)?;
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        index.remove(&img.name);
        self.write_index(&index)?;
        Ok(img)
    }

    /// The parts of the image config a container uses.
    pub fn config(&self, image: &Image) -> Result<ImageConfig> {
        let data = self.read_blob(&image.config_digest)?;
        let v: serde_json::Value = serde_json::from_slice(&data)
            .map_err(|e| Error::Format(format!("image config of {}: {e}", image.name)))?;
        let c = v.get("config").cloned().unwrap_or_default();
        let strings = |k: &str| -> Vec<String> {
            c.get(k)
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let string = |k: &str| {
            c.get(k)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Ok(ImageConfig {
            entrypoint: strings("Entrypoint"),
            cmd: strings("Cmd"),
            env: strings("Env"),
            working_dir: string("WorkingDir"),
            user: string("User"),
            stop_signal: string("StopSignal"),
        })
    }

    /// The snapshot directories of `image`'s layers, bottom first, unpacking any layer not
    /// unpacked yet. Each layer is unpacked once, whatever image or container uses it.
    pub fn snapshots(&self, image: &Image) -> Result<Vec<PathBuf>> {
        let chain = image.chain_ids();
        let mut out = Vec::with_capacity(chain.len());
        for (i, id) in chain.iter().enumerate() {
            let dir = self.dir.join("snapshots").join(id.hex());
            if !dir.join("fs").exists() {
                crate::unpack::unpack_layer(self, &image.layers[i], &image.diff_ids[i], &dir)?;
            }
            out.push(dir.join("fs"));
        }
        Ok(out)
    }
}

/// Writes `data` to `path` atomically: a synced temporary file renamed over it.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = File::create(&tmp).at("creating", &tmp)?;
    f.write_all(data).at("writing", &tmp)?;
    f.sync_all().at("syncing", &tmp)?;
    fs::rename(&tmp, path).at("renaming", path)
}
