//! Unpacking one layer into a snapshot directory in overlay format.
//!
//! OCI whiteouts become what overlayfs understands: `.wh.NAME` becomes a 0:0 character device
//! `NAME`, and `.wh..wh..opq` marks its directory opaque with `trusted.overlay.opaque=y`.
//! The uncompressed stream is hashed on the way and must match the layer's diff ID.

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use crate::digest::{Digest, Hashing};
use crate::store::Store;
use crate::{Error, IoContext, Result};

/// Unpacks the layer blob `layer` into `dir/fs`, atomically (a temporary directory renamed
/// into place).
pub(crate) fn unpack_layer(
    store: &Store,
    layer: &Digest,
    diff_id: &Digest,
    dir: &Path,
) -> Result<()> {
    let tmp = store.temp_path("snapshot");
    let fs_dir = tmp.join("fs");
    fs::create_dir_all(&fs_dir).at("creating", &fs_dir)?;
    let result = unpack_into(store, layer, diff_id, &fs_dir);
    let result = result.and_then(|()| match fs::rename(&tmp, dir) {
        Ok(()) => Ok(()),
        // Someone else unpacked the same layer meanwhile: theirs is as good as ours.
        Err(_) if dir.join("fs").exists() => Ok(()),
        Err(e) => Err(e).at("storing snapshot", dir),
    });
    if tmp.exists() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

/// Opens a layer blob, undoing gzip or zstd compression, recognised by their magic numbers.
pub(crate) fn open_layer(path: &Path) -> Result<Box<dyn Read>> {
    let mut f = BufReader::new(File::open(path).at("opening layer", path)?);
    let mut magic = [0u8; 4];
    let n = {
        use std::io::BufRead;
        let buf = f.fill_buf().at("reading layer", path)?;
        let n = buf.len().min(4);
        magic[..n].copy_from_slice(&buf[..n]);
        n
    };
    Ok(if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Box::new(zstd::stream::read::Decoder::with_buffer(f).at("reading zstd layer", path)?)
    } else {
        Box::new(f)
    })
}

fn unpack_into(store: &Store, layer: &Digest, diff_id: &Digest, dst: &Path) -> Result<()> {
    let blob = store.blob_path(layer);
    let mut hashing = Hashing::new(open_layer(&blob)?);
    {
        let mut archive = tar::Archive::new(&mut hashing);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_preserve_mtime(true);
        archive.set_unpack_xattrs(true);
        archive.set_overwrite(true);
        let bad = |e: std::io::Error| {
            let cause = std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            Error::Format(format!("layer {layer}: {e}{cause}"))
        };
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let raw = entry.path().map_err(bad)?.into_owned();
            let rel = relative(&raw).ok_or_else(|| {
                Error::Format(format!(
                    "layer {layer}: refusing entry {:?} that leaves the layer",
                    raw
                ))
            })?;
            let Some(name) = rel.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue; // the layer's root directory itself
            };
            let parent = dst.join(rel.parent().unwrap_or(Path::new("")));
            if name == ".wh..wh..opq" {
                fs::create_dir_all(&parent).at("creating", &parent)?;
                rustix::fs::setxattr(
                    &parent,
                    "trusted.overlay.opaque",
                    b"y",
                    rustix::fs::XattrFlags::empty(),
                )
                .map_err(|e| Error::Io {
                    context: "marking opaque",
                    path: parent.clone(),
                    source: e.into(),
                })?;
            } else if let Some(hidden) = name.strip_prefix(".wh.") {
                fs::create_dir_all(&parent).at("creating", &parent)?;
                let target = parent.join(hidden);
                let _ = fs::remove_file(&target);
                nix::sys::stat::mknod(
                    &target,
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::empty(),
                    nix::sys::stat::makedev(0, 0),
                )
                .map_err(|e| Error::Io {
                    context: "creating whiteout",
                    path: target,
                    source: e.into(),
                })?;
            } else if !entry.unpack_in(dst).map_err(bad)? {
                return Err(Error::Format(format!(
                    "layer {layer}: refusing entry {:?}",
                    raw
                )));
            }
        }
    }
    std::io::copy(&mut hashing, &mut std::io::sink()).at("reading layer", &blob)?;
    let (actual, _, _) = hashing.finish();
    if actual != *diff_id {
        return Err(Error::DigestMismatch {
            what: format!("uncompressed layer {layer}"),
            expected: diff_id.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// The path of an entry relative to the layer root, or `None` if it would leave it.
fn relative(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}
