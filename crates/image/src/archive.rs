//! Importing image archives: OCI image layouts (`oci-archive`, `skopeo copy … oci-archive:`)
//! and `docker save` archives, in one streaming pass over the tar file.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde_json::{Value, json};

use crate::digest::Digest;
use crate::store::{Image, Store};
use crate::{Error, IoContext, Result};
use peapod_types::image_ref::Reference;

const SMALL: u64 = 4 << 20;

/// The diff IDs an image config lists, which must be one per layer of its manifest.
pub(crate) fn diff_ids(config: &Value, layers: usize, name: &str) -> Result<Vec<Digest>> {
    let ids: Vec<Digest> = config["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            d.as_str()
                .and_then(Digest::parse)
                .ok_or_else(|| Error::Format(format!("config of {name}: bad diff_id {d}")))
        })
        .collect::<Result<_>>()?;
    if ids.len() != layers {
        return Err(Error::Format(format!(
            "{name}: the manifest has {layers} layers but the config lists {} diff_ids",
            ids.len()
        )));
    }
    Ok(ids)
}

/// The OCI name of this host's architecture.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl Store {
    /// Imports every image in the archive at `path`; returns them, named.
    pub fn load_archive(&self, path: &Path) -> Result<Vec<Image>> {
        let f = File::open(path).at("opening archive", path)?;
        let mut archive = tar::Archive::new(std::io::BufReader::new(f));
        let bad = |e: std::io::Error| {
            Error::Format(format!(
                "{}: not a readable tar archive: {e}",
                path.display()
            ))
        };
        // Small files by path, and the digest of every file stored as a blob.
        let mut small: HashMap<String, Vec<u8>> = HashMap::new();
        let mut blobs: HashMap<String, Digest> = HashMap::new();
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry
                .path()
                .map_err(bad)?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            let size = entry.size();
            let announced = name
                .strip_prefix("blobs/sha256/")
                .and_then(|h| Digest::parse(&format!("sha256:{h}")));
            if let Some(d) = announced {
                self.put_blob(&mut entry, Some(&d), &name)?;
                blobs.insert(name, d);
            } else if size <= SMALL {
                let mut buf = Vec::with_capacity(size as usize);
                entry.read_to_end(&mut buf).map_err(bad)?;
                small.insert(name, buf);
            } else {
                let (d, _) = self.put_blob(&mut entry, None, &name)?;
                blobs.insert(name, d);
            }
        }
        let images = if small.contains_key("oci-layout") && small.contains_key("index.json") {
            self.import_oci(&small)?
        } else if let Some(m) = small.get("manifest.json") {
            self.import_docker(m, &small, &mut blobs)?
        } else {
            return Err(Error::Format(format!(
                "{}: neither an OCI image layout (oci-layout, index.json) nor a docker save archive (manifest.json)",
                path.display()
            )));
        };
        if images.is_empty() {
            return Err(Error::Format(format!(
                "{}: the archive names no image",
                path.display()
            )));
        }
        for img in &images {
            self.add_image(img.clone())?;
        }
        Ok(images)
    }

    fn json_blob(&self, d: &Digest) -> Result<Value> {
        let data = self
            .read_blob(d)
            .map_err(|_| Error::Format(format!("blob {d} is missing from the archive")))?;
        serde_json::from_slice(&data).map_err(|e| Error::Format(format!("blob {d}: {e}")))
    }

    fn import_oci(&self, small: &HashMap<String, Vec<u8>>) -> Result<Vec<Image>> {
        let index: Value = serde_json::from_slice(&small["index.json"])
            .map_err(|e| Error::Format(format!("index.json: {e}")))?;
        let mut out = Vec::new();
        for desc in index["manifests"].as_array().into_iter().flatten() {
            let ann = &desc["annotations"];
            let name = ann["io.containerd.image.name"].as_str().or_else(|| {
                ann["org.opencontainers.image.ref.name"]
                    .as_str()
                    .filter(|n| n.contains(['/', ':']))
            });
            let Some(name) = name else { continue };
            let name = Reference::parse(name)?.to_string();
            let digest = descriptor_digest(desc)?;
            let manifest_digest = self.pick_platform(digest, &desc["mediaType"])?;
            out.push(self.image_from_manifest(&name, manifest_digest)?);
        }
        Ok(out)
    }

    /// Follows an index (manifest list) to the manifest for this host's platform.
    fn pick_platform(&self, digest: Digest, media_type: &Value) -> Result<Digest> {
        let doc = self.json_blob(&digest)?;
        let mt = media_type
            .as_str()
            .or(doc["mediaType"].as_str())
            .unwrap_or_default();
        let is_index = mt.contains("image.index")
            || mt.contains("manifest.list")
            || doc.get("manifests").is_some();
        if !is_index {
            return Ok(digest);
        }
        let arch = host_arch();
        for m in doc["manifests"].as_array().into_iter().flatten() {
            let p = &m["platform"];
            if p["os"] == "linux" && p["architecture"] == arch {
                return self.pick_platform(descriptor_digest(m)?, &m["mediaType"]);
            }
        }
        Err(Error::Format(format!(
            "image index {digest} has no manifest for linux/{arch}"
        )))
    }

    pub(crate) fn image_from_manifest(&self, name: &str, manifest_digest: Digest) -> Result<Image> {
        let manifest = self.json_blob(&manifest_digest)?;
        let config_digest = descriptor_digest(&manifest["config"])?;
        let config = self.json_blob(&config_digest)?;
        let layers: Vec<Digest> = manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(descriptor_digest)
            .collect::<Result<_>>()?;
        let diff_ids = diff_ids(&config, layers.len(), name)?;
        let mut size = 0;
        for d in layers.iter().chain([&config_digest]) {
            let p = self.blob_path(d);
            size += std::fs::metadata(&p)
                .map_err(|_| Error::Format(format!("{name}: blob {d} is missing")))?
                .len();
        }
        Ok(Image {
            name: name.to_string(),
            manifest_digest,
            config_digest,
            layers,
            diff_ids,
            size,
            added: jiff::Timestamp::now().to_string(),
            index_digest: None,
        })
    }

    fn import_docker(
        &self,
        manifest: &[u8],
        small: &HashMap<String, Vec<u8>>,
        blobs: &mut HashMap<String, Digest>,
    ) -> Result<Vec<Image>> {
        let entries: Value = serde_json::from_slice(manifest)
            .map_err(|e| Error::Format(format!("manifest.json: {e}")))?;
        let mut stored = |path: &str| -> Result<(Digest, u64)> {
            if let Some(d) = blobs.get(path) {
                let len = std::fs::metadata(self.blob_path(d))
                    .map(|m| m.len())
                    .unwrap_or(0);
                return Ok((d.clone(), len));
            }
            let data = small
                .get(path)
                .ok_or_else(|| Error::Format(format!("archive lacks {path}")))?;
            let d = self.put_bytes(data)?;
            blobs.insert(path.to_string(), d.clone());
            Ok((d, data.len() as u64))
        };
        let mut out = Vec::new();
        for e in entries.as_array().into_iter().flatten() {
            let (config, config_size) = stored(e["Config"].as_str().unwrap_or_default())?;
            let mut layers = Vec::new();
            for l in e["Layers"].as_array().into_iter().flatten() {
                let (d, size) = stored(l.as_str().unwrap_or_default())?;
                layers.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": size}));
            }
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
                "layers": layers,
            });
            let manifest_digest = self.put_bytes(&serde_json::to_vec(&manifest).expect("json"))?;
            for tag in e["RepoTags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let name = Reference::parse(tag)?.to_string();
                out.push(self.image_from_manifest(&name, manifest_digest.clone())?);
            }
        }
        Ok(out)
    }
}

fn descriptor_digest(desc: &Value) -> Result<Digest> {
    desc["digest"]
        .as_str()
        .and_then(Digest::parse)
        .ok_or_else(|| Error::Format(format!("descriptor without a valid sha256 digest: {desc}")))
}
