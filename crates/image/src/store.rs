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
    /// Digest of the image index (manifest list) the name resolved to, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<Digest>,
}

impl Image {
    /// The repository digest, `registry/repo@sha256:…`, as Kubernetes reports `imageID`.
    pub fn repo_digest(&self) -> String {
        let repo = Reference::parse(&self.name)
            .map(|r| r.repo())
            .unwrap_or_else(|_| self.name.clone());
        format!("{repo}@{}", self.top_digest())
    }

    /// The digest the image's name resolves to in a registry: the index's if there is one.
    pub fn top_digest(&self) -> &Digest {
        self.index_digest.as_ref().unwrap_or(&self.manifest_digest)
    }

    /// The image ID (config digest).
    pub fn id(&self) -> &Digest {
        &self.config_digest
    }

    /// The chain IDs of the layers, bottom first: each names a snapshot.
    pub fn chain_ids(&self) -> Vec<Digest> {
        Image::chain_of(&self.diff_ids)
    }

    /// The chain IDs of layers with these diff IDs, bottom first.
    pub fn chain_of(diff_ids: &[Digest]) -> Vec<Digest> {
        let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
        for d in diff_ids {
            let next = match out.last() {
                None => d.clone(),
                Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
            };
            out.push(next);
        }
        out
    }
}

/// What [`Store::prune`] removed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pruned {
    /// Names of the images removed.
    pub images: Vec<String>,
    /// Blobs removed.
    pub blobs: usize,
    /// Bytes of those blobs.
    pub bytes: u64,
    /// Snapshots removed.
    pub snapshots: usize,
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
        for sub in ["blobs/sha256", "snapshots", "tmp", "locks"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).at("creating", &p)?;
        }
        Ok(Store { dir })
    }

    /// The store at `dir`, for reading only: nothing is created, and a store that does not
    /// exist reads as empty.
    pub fn open_read_only(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
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
        lock_file(&self.dir.join("lock"))
    }

    /// Takes the lock named `key` (under `locks/`), waiting for it: the holder of a blob's or a
    /// snapshot's lock is the one who fetches or unpacks it.
    pub(crate) fn lock_key_blocking(&self, key: &str) -> Result<KeyLock> {
        let path = self.dir.join("locks").join(key);
        Ok(KeyLock {
            _lock: lock_file(&path)?,
            path,
        })
    }

    /// [`Store::lock_key_blocking`] without blocking the async runtime.
    pub(crate) async fn lock_key(&self, key: &str) -> Result<KeyLock> {
        let this = self.clone();
        let key = key.to_string();
        tokio::task::spawn_blocking(move || this.lock_key_blocking(&key))
            .await
            .expect("lock task")
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
                    (i.manifest_digest.as_str() == d
                        || i.index_digest.as_ref().is_some_and(|x| x.as_str() == d))
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

    /// Removes every name of the image `id` (all its tags and digest references) from the
    /// index; returns what was removed.
    pub fn remove_id(&self, id: &Digest) -> Result<Vec<Image>> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let (gone, kept): (BTreeMap<_, _>, BTreeMap<_, _>) =
            index.into_iter().partition(|(_, i)| i.config_digest == *id);
        index = kept;
        if !gone.is_empty() {
            self.write_index(&index)?;
        }
        Ok(gone.into_values().collect())
    }

    /// Removes every image not named in `keep`, then every blob, snapshot and temporary file
    /// no remaining image needs. Snapshots that a mounted overlay still uses (a container
    /// of an image removed with `--force`) stay.
    pub fn prune(&self, keep: &[String]) -> Result<Pruned> {
        let mut pruned = Pruned::default();
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let before: Vec<String> = index.keys().cloned().collect();
        index.retain(|name, _| keep.contains(name));
        pruned.images = before
            .into_iter()
            .filter(|n| !index.contains_key(n))
            .collect();
        self.write_index(&index)?;
        let mut blobs = std::collections::HashSet::new();
        let mut snapshots = std::collections::HashSet::new();
        for img in index.values() {
            blobs.extend(img.layers.iter().map(|d| d.hex().to_string()));
            blobs.insert(img.config_digest.hex().to_string());
            blobs.insert(img.manifest_digest.hex().to_string());
            if let Some(d) = &img.index_digest {
                blobs.insert(d.hex().to_string());
            }
            snapshots.extend(img.chain_ids().iter().map(|d| d.hex().to_string()));
        }
        let mounted = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let snap_root = self.dir.join("snapshots");
        for (dir, keep, is_blob) in [
            (self.dir.join("blobs/sha256"), &blobs, true),
            (snap_root.clone(), &snapshots, false),
        ] {
            for e in fs::read_dir(&dir).at("listing", &dir)?.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if keep.contains(&name) {
                    continue;
                }
                let path = e.path();
                if !is_blob && mounted.contains(&format!("{}/fs", path.display())) {
                    continue;
                }
                // A blob being fetched right now is locked; leave it to its owner.
                let key = if is_blob { "blob" } else { "snapshot" };
                let Some(_held) = self.try_lock_key(&format!("{key}-{name}"))? else {
                    continue;
                };
                let size = if is_blob {
                    e.metadata().map(|m| m.len()).unwrap_or(0)
                } else {
                    0
                };
                let r = if is_blob {
                    fs::remove_file(&path)
                } else {
                    fs::remove_dir_all(&path)
                };
                r.at("removing", &path)?;
                pruned.bytes += size;
                if is_blob {
                    pruned.blobs += 1;
                } else {
                    pruned.snapshots += 1;
                }
            }
        }
        // Temporary files of processes that are gone, and lock files nobody holds.
        let tmp = self.dir.join("tmp");
        for e in fs::read_dir(&tmp).at("listing", &tmp)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let p = e.path();
                let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
            }
        }
        let locks = self.dir.join("locks");
        for e in fs::read_dir(&locks).at("listing", &locks)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(_held) = self.try_lock_key(&name)? {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(pruned)
    }

    fn try_lock_key(&self, key: &str) -> Result<Option<nix::fcntl::Flock<File>>> {
        let f = open_lock(&self.dir.join("locks").join(key))?;
        Ok(nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).ok())
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
            out.push(self.ensure_snapshot(&image.layers[i], &image.diff_ids[i], id)?);
        }
        Ok(out)
    }

    /// The snapshot of `layer` (chain ID `chain_id`), unpacked now unless it already is.
    /// Concurrent callers, in this process or another, unpack it once.
    pub fn ensure_snapshot(
        &self,
        layer: &Digest,
        diff_id: &Digest,
        chain_id: &Digest,
    ) -> Result<PathBuf> {
        let dir = self.snapshot_dir(chain_id);
        if !dir.join("fs").exists() {
            let lock = self.lock_key_blocking(&format!("snapshot-{}", chain_id.hex()))?;
            if !dir.join("fs").exists() {
                crate::unpack::unpack_layer(self, layer, diff_id, &dir)?;
            }
            lock.done();
        }
        Ok(dir.join("fs"))
    }

    /// The directory of the snapshot with this chain ID (its tree is in `fs/`).
    pub fn snapshot_dir(&self, chain_id: &Digest) -> PathBuf {
        self.dir.join("snapshots").join(chain_id.hex())
    }
}

/// A held lock file of `locks/`.
pub(crate) struct KeyLock {
    _lock: nix::fcntl::Flock<File>,
    path: PathBuf,
}

impl KeyLock {
    /// The work is done and its result in place: the lock file goes, then the lock. Anyone
    /// still waiting on it finds the result when they get it; anyone later never locks.
    pub(crate) fn done(self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn open_lock(p: &Path) -> Result<File> {
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(p)
        .at("opening", p)
}

fn lock_file(p: &Path) -> Result<nix::fcntl::Flock<File>> {
    let f = open_lock(p)?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| Error::Io {
        context: "locking",
        path: p.to_path_buf(),
        source: e.into(),
    })
}

/// Writes `data` to `path` atomically: a synced temporary file renamed over it.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    // A temporary file of its own: concurrent pulls in one process never share one.
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut f = tempfile::NamedTempFile::new_in(dir).at("creating a file in", dir)?;
    f.write_all(data).at("writing", f.path())?;
    f.as_file().sync_all().at("syncing", f.path())?;
    f.persist(path).map_err(|e| e.error).at("renaming", path)?;
    Ok(())
}
