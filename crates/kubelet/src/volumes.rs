//! Pod volumes, as the kubelet's volume manager sets them up: `emptyDir` (on disk, or tmpfs
//! with `medium: Memory` honouring `sizeLimit`) and `hostPath` with its type checks (those
//! made from objects are in `projection.rs`). They
//! live as long as the pod, across sandboxes.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use peapod_types::api::{PodSpec, Volume};

/// A volume that could not be set up; the message is the kubelet's.
#[derive(Debug, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume {volume:?} : {message}")]
pub struct VolumeError {
    /// The volume's name.
    pub volume: String,
    /// Why.
    pub message: String,
}

/// Where a pod's volumes live: `dir/<plugin>/<name>`.
pub fn volume_dir(pod_dir: &Path) -> PathBuf {
    pod_dir.join("volumes")
}

fn empty_dir_path(pod_dir: &Path, name: &str) -> PathBuf {
    volume_dir(pod_dir)
        .join("kubernetes.io~empty-dir")
        .join(name)
}

/// Sets up every volume of `spec`; returns each volume's host path, by name.
pub fn setup(pod_dir: &Path, spec: &PodSpec) -> Result<HashMap<String, PathBuf>, VolumeError> {
    let mut out = HashMap::new();
    let fs_group = spec.security_context.as_ref().and_then(|s| s.fs_group);
    // Volumes made from objects are written by the pod controller (projection.rs).
    for v in spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| !crate::projection::is_projected(v) && v.persistent_volume_claim.is_none())
    {
        let path = setup_one(pod_dir, v)
            .and_then(|p| {
                // The kubelet gives emptyDir volumes to the pod's fsGroup (not hostPath).
                if let (Some(gid), true) = (fs_group, v.empty_dir.is_some()) {
                    set_volume_ownership(&p, gid as u32)?;
                }
                Ok(p)
            })
            .map_err(|message| VolumeError {
                volume: v.name.clone(),
                message,
            })?;
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

fn setup_one(pod_dir: &Path, v: &Volume) -> Result<PathBuf, String> {
    if let Some(ed) = &v.empty_dir {
        let p = empty_dir_path(pod_dir, &v.name);
        std::fs::create_dir_all(&p).map_err(|e| format!("creating {}: {e}", p.display()))?;
        if ed.medium.as_deref() == Some("Memory") {
            let size = ed
                .size_limit
                .as_ref()
                .and_then(|q| peapod_types::quantity::parse(&q.0));
            peapod_runtime::host::mount_tmpfs(&p, size, 0o777).map_err(|e| e.to_string())?;
        } else {
            // emptyDir directories are world-writable, as the kubelet makes them.
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777));
        }
        return Ok(p);
    }
    if let Some(hp) = &v.host_path {
        let p = PathBuf::from(&hp.path);
        check_host_path(&p, hp.type_.as_deref().unwrap_or(""))?;
        return Ok(p);
    }
    Err("unsupported volume type".into())
}

/// Gives everything under `root` to group `gid` as the kubelet does for `fsGroup`: the
/// group can read and write files, and directories are set-group-ID so that new files
/// belong to the group too.
pub fn set_volume_ownership(root: &Path, gid: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        if m.file_type().is_symlink() {
            continue;
        }
        std::os::unix::fs::lchown(&p, None, Some(gid))
            .map_err(|e| format!("chown {}: {e}", p.display()))?;
        let mut mode = m.mode() & 0o7777 | 0o660;
        if m.is_dir() {
            mode |= 0o2000 | 0o110;
            for e in std::fs::read_dir(&p).map_err(|e| format!("{}: {e}", p.display()))? {
                stack.push(e.map_err(|e| format!("{}: {e}", p.display()))?.path());
            }
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod {}: {e}", p.display()))?;
    }
    Ok(())
}

/// The kubelet's hostPath type checks (`pkg/volume/hostpath`).
fn check_host_path(p: &Path, kind: &str) -> Result<(), String> {
    let meta = || std::fs::metadata(p);
    let fail = |what: &str| {
        Err(format!(
            "hostPath type check failed: {} is not {what}",
            p.display()
        ))
    };
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if !p.exists() {
                std::fs::create_dir_all(p).map_err(|e| format!("creating {}: {e}", p.display()))?;
                let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
            }
            if meta().is_ok_and(|m| m.is_dir()) {
                Ok(())
            } else {
                fail("a directory")
            }
        }
        "Directory" => {
            if meta().is_ok_and(|m| m.is_dir()) {
                Ok(())
            } else {
                fail("a directory")
            }
        }
        "FileOrCreate" => {
            if !p.exists() {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("creating {}: {e}", parent.display()))?;
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| format!("creating {}: {e}", p.display()))?;
                let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644));
            }
            if meta().is_ok_and(|m| m.is_file()) {
                Ok(())
            } else {
                fail("a file")
            }
        }
        "File" => {
            if meta().is_ok_and(|m| m.is_file()) {
                Ok(())
            } else {
                fail("a file")
            }
        }
        "Socket" => {
            if meta().is_ok_and(|m| m.file_type().is_socket()) {
                Ok(())
            } else {
                fail("a socket file")
            }
        }
        "CharDevice" => {
            if meta().is_ok_and(|m| m.file_type().is_char_device()) {
                Ok(())
            } else {
                fail("a character device")
            }
        }
        "BlockDevice" => {
            if meta().is_ok_and(|m| m.file_type().is_block_device()) {
                Ok(())
            } else {
                fail("a block device")
            }
        }
        other => Err(format!("unknown hostPath type {other:?}")),
    }
}

/// The host path for a mount of `volume` with `sub_path`: created as a directory when
/// missing, and refused if it would leave the volume (through `..` or a symlink).
pub fn sub_path(volume: &Path, sub_path: &str) -> Result<PathBuf, String> {
    if sub_path.is_empty() {
        return Ok(volume.to_path_buf());
    }
    let escapes = Path::new(sub_path).components().any(|c| {
        matches!(
            c,
            std::path::Component::ParentDir | std::path::Component::RootDir
        )
    });
    if escapes {
        return Err(format!(
            "subpath {sub_path:?} leaves the volume {}",
            volume.display()
        ));
    }
    let p = volume.join(sub_path);
    if !p.exists() {
        std::fs::create_dir_all(&p)
            .map_err(|e| format!("creating subPath {}: {e}", p.display()))?;
    }
    let real = p
        .canonicalize()
        .map_err(|e| format!("subPath {}: {e}", p.display()))?;
    let base = volume
        .canonicalize()
        .map_err(|e| format!("volume {}: {e}", volume.display()))?;
    if !real.starts_with(&base) {
        return Err(format!(
            "subpath {sub_path:?} leaves the volume {}",
            volume.display()
        ));
    }
    Ok(real)
}

/// Unmounts memory-backed volumes and removes every volume directory of the pod.
pub fn teardown(pod_dir: &Path) -> std::io::Result<()> {
    let dir = volume_dir(pod_dir);
    peapod_runtime::host::unmount_all_under(&dir).map_err(std::io::Error::other)?;
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(volumes: &str) -> PodSpec {
        let text = format!("containers: [{{name: a, image: b}}]\nvolumes: {volumes}\n");
        serde_yaml_ng::from_str(&text).unwrap()
    }

    #[test]
    fn empty_dirs_are_world_writable_directories_of_the_pod() {
        let d = tempfile::tempdir().unwrap();
        let v = setup(d.path(), &spec("[{name: scratch, emptyDir: {}}]")).unwrap();
        let p = &v["scratch"];
        assert!(p.starts_with(d.path().join("volumes/kubernetes.io~empty-dir")));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777,
            0o777
        );
        teardown(d.path()).unwrap();
        assert!(!d.path().join("volumes").exists());
        teardown(d.path()).unwrap();
    }

    #[test]
    fn fs_group_owns_empty_dirs_but_not_host_paths() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let host = d.path().join("host");
        std::fs::create_dir(&host).unwrap();
        let text = format!(
            "securityContext: {{fsGroup: 2000}}\ncontainers: [{{name: a, image: b}}]\nvolumes: [{{name: e, emptyDir: {{}}}}, {{name: h, hostPath: {{path: {}}}}}]\n",
            host.display()
        );
        let spec: PodSpec = serde_yaml_ng::from_str(&text).unwrap();
        let v = setup(d.path(), &spec).unwrap();
        let m = std::fs::metadata(&v["e"]).unwrap();
        assert_eq!(m.gid(), 2000);
        assert_eq!(m.mode() & 0o7777, 0o2777);
        assert_ne!(std::fs::metadata(&host).unwrap().gid(), 2000);
        std::fs::create_dir(v["e"].join("sub")).unwrap();
        std::fs::write(v["e"].join("sub/f"), "x").unwrap();
        set_volume_ownership(&v["e"], 3000).unwrap();
        let f = std::fs::metadata(v["e"].join("sub/f")).unwrap();
        assert_eq!((f.gid(), f.mode() & 0o660), (3000, 0o660));
        teardown(d.path()).unwrap();
    }

    #[test]
    fn host_path_types_are_checked_and_created() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("f");
        std::fs::write(&file, "").unwrap();
        let dir_text = |t: &str, p: &Path| {
            format!(
                "[{{name: h, hostPath: {{path: {}, type: {t}}}}}]",
                p.display()
            )
        };
        let err = setup(d.path(), &spec(&dir_text("Directory", &file))).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "MountVolume.SetUp failed for volume \"h\" : hostPath type check failed: {} is not a directory",
                file.display()
            )
        );
        assert!(setup(d.path(), &spec(&dir_text("File", &file))).is_ok());
        assert!(setup(d.path(), &spec(&dir_text("Socket", &file))).is_err());
        let made = d.path().join("new/sub");
        setup(d.path(), &spec(&dir_text("DirectoryOrCreate", &made))).unwrap();
        assert!(made.is_dir());
        let f2 = d.path().join("new/file");
        setup(d.path(), &spec(&dir_text("FileOrCreate", &f2))).unwrap();
        assert!(f2.is_file());
        assert!(setup(d.path(), &spec(&dir_text("Nonsense", &f2))).is_err());
    }

    #[test]
    fn sub_paths_stay_inside_the_volume() {
        let d = tempfile::tempdir().unwrap();
        let vol = d.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        assert_eq!(sub_path(&vol, "").unwrap(), vol);
        let inner = sub_path(&vol, "a/b").unwrap();
        assert!(inner.ends_with("vol/a/b") && inner.is_dir());
        std::os::unix::fs::symlink(d.path(), vol.join("out")).unwrap();
        let err = sub_path(&vol, "out").unwrap_err();
        assert!(err.contains("leaves the volume"), "{err}");
        assert!(sub_path(&vol, "../x").is_err());
    }
}
