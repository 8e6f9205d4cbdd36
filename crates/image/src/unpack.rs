//! Unpacking one layer into a snapshot directory in overlay format.
//!
//! OCI whiteouts become what overlayfs understands: `.wh.NAME` becomes a 0:0 character device
//! `NAME`, and `.wh..wh..opq` marks its directory opaque with `trusted.overlay.opaque=y`.
//! The uncompressed stream is hashed on the way and must match the layer's diff ID.

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::SFlag;

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
    let mut dir_times: Vec<(PathBuf, i64)> = Vec::new();
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
            let refuse =
                |why: &str| Error::Format(format!("layer {layer}: refusing entry {raw:?}: {why}"));
            let kind = entry.header().entry_type();
            if name == ".wh..wh..opq" {
                let parent = safe_dir(dst, rel.parent().unwrap_or(Path::new("")))
                    .map_err(|why| refuse(&why))?;
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
                if hidden.is_empty() || hidden == "." || hidden == ".." {
                    return Err(refuse("a whiteout must name a file"));
                }
                let parent = safe_dir(dst, rel.parent().unwrap_or(Path::new("")))
                    .map_err(|why| refuse(&why))?;
                let target = parent.join(hidden);
                remove_any(&target)?;
                mknod(&target, SFlag::S_IFCHR, 0, 0).map_err(|e| Error::Io {
                    context: "creating whiteout",
                    path: target,
                    source: e,
                })?;
            } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
                let parent = safe_dir(dst, rel.parent().unwrap_or(Path::new("")))
                    .map_err(|why| refuse(&why))?;
                let target = parent.join(&name);
                remove_any(&target)?;
                let h = entry.header();
                let flag = if kind.is_fifo() {
                    SFlag::S_IFIFO
                } else if kind.is_block_special() {
                    SFlag::S_IFBLK
                } else {
                    SFlag::S_IFCHR
                };
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                match mknod(&target, flag, major, minor) {
                    Ok(()) => {}
                    // Where the kernel does not let us (a user namespace), the node is left out
                    // as other runtimes do.
                    Err(e) if e.raw_os_error() == Some(nix::libc::EPERM) => {
                        tracing::warn!(path = %target.display(), "device node not created: not permitted");
                        continue;
                    }
                    Err(e) => {
                        return Err(Error::Io {
                            context: "creating device node",
                            path: target,
                            source: e,
                        });
                    }
                }
                let uid = h.uid().unwrap_or(0) as u32;
                let gid = h.gid().unwrap_or(0) as u32;
                let mode = h.mode().unwrap_or(0o600) & 0o7777;
                let meta = (|| {
                    std::os::unix::fs::lchown(&target, Some(uid), Some(gid))?;
                    fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(mode))
                })();
                meta.at("setting owner and mode of", &target)?;
                if let Ok(m) = h.mtime() {
                    set_mtime(&target, m as i64);
                }
            } else {
                if kind.is_dir()
                    && let Ok(m) = entry.header().mtime()
                {
                    dir_times.push((dst.join(&rel), m as i64));
                }
                if !entry.unpack_in(dst).map_err(bad)? {
                    return Err(refuse("it leaves the layer"));
                }
            }
        }
    }
    // Directory times last: creating entries inside a directory changes its mtime.
    for (dir, mtime) in dir_times.iter().rev() {
        set_mtime(dir, *mtime);
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

/// `dst/rel` as a directory, created as needed, without following any symlink: a whiteout
/// or device node must never land outside the snapshot through a link the layer made.
fn safe_dir(dst: &Path, rel: &Path) -> Result<PathBuf, String> {
    let mut p = dst.to_path_buf();
    for c in rel.components() {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!("{} is a symbolic link", p.display()));
            }
            Ok(_) => return Err(format!("{} is not a directory", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir(&p).map_err(|e| format!("creating {}: {e}", p.display()))?;
            }
            Err(e) => return Err(format!("{}: {e}", p.display())),
        }
    }
    Ok(p)
}

/// Removes whatever is at `p` (never following a link); a missing path is fine.
fn remove_any(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).at("removing", p),
        Ok(_) => fs::remove_file(p).at("removing", p),
        Err(_) => Ok(()),
    }
}

fn mknod(p: &Path, kind: SFlag, major: u32, minor: u32) -> std::io::Result<()> {
    nix::sys::stat::mknod(
        p,
        kind,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(major as u64, minor as u64),
    )
    .map_err(std::io::Error::from)
}

/// Sets access and modification time of `p` itself (not a link's target); best effort.
fn set_mtime(p: &Path, secs: i64) {
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
    };
    let _ = rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &t,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    );
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
