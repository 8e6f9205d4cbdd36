//! Host-side mounts: container root file systems (overlay), memory-backed volumes (tmpfs),
//! bind mounts, and their removal.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::{Error, Result, sys};

/// Mounts an overlay at `target` with `lowers` (bottom first), `upper` and `work`.
pub fn overlay(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    // overlayfs lists the top-most lower directory first.
    let lower: Vec<String> = lowers.iter().rev().map(|p| escape(p)).collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        escape(upper),
        escape(work)
    );
    if data.len() >= 4096 {
        return Err(Error::Spec(format!(
            "overlay options for {} exceed a page ({} layers)",
            target.display(),
            lowers.len()
        )));
    }
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(sys("mounting overlay on", target))
}

fn escape(p: &Path) -> String {
    p.to_string_lossy()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

/// Mounts a tmpfs at `target`, limited to `size` bytes when given.
pub fn tmpfs(target: &Path, size: Option<u64>, mode: u32) -> Result<()> {
    let mut data = format!("mode={mode:o}");
    if let Some(s) = size {
        data.push_str(&format!(",size={s}"));
    }
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(sys("mounting tmpfs on", target))
}

/// Bind-mounts `source` on `target`, read-only when asked.
pub fn bind(source: &Path, target: &Path, readonly: bool) -> Result<()> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys("bind-mounting on", target))?;
    if readonly {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(sys("remounting read-only", target))?;
    }
    Ok(())
}

/// Whether something is mounted exactly at `path` (per `/proc/self/mountinfo`).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| unescape(m) == want))
}

/// The mount point under which `path` lies and its peer groups: whether it is shared
/// (`shared:N`) and whether it receives from a master (`master:N`).
pub fn propagation_of(path: &Path) -> Result<(PathBuf, bool, bool)> {
    let path = std::fs::canonicalize(path).map_err(crate::io("resolving", path))?;
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(crate::io("reading", "/proc/self/mountinfo"))?;
    let mut best: Option<(PathBuf, bool, bool)> = None;
    for l in info.lines() {
        let fields: Vec<&str> = l.split(' ').collect();
        let Some(point) = fields.get(4).map(|m| PathBuf::from(unescape(m))) else {
            continue;
        };
        if !path.starts_with(&point) {
            continue;
        }
        // Optional fields run from the seventh to the "-" separator; later lines are
        // mounts on top of earlier ones.
        let optional = fields.iter().skip(6).take_while(|f| **f != "-");
        let (mut shared, mut slave) = (false, false);
        for f in optional {
            shared |= f.starts_with("shared:");
            slave |= f.starts_with("master:");
        }
        if best
            .as_ref()
            .is_none_or(|(b, _, _)| point.as_os_str().len() >= b.as_os_str().len())
        {
            best = Some((point, shared, slave));
        }
    }
    best.ok_or_else(|| crate::Error::Spec(format!("no mount holds {}", path.display())))
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Unmounts `path` (lazily, so busy mounts go too) until nothing is mounted there;
/// a path with nothing mounted is fine.
pub fn unmount(path: &Path) -> Result<()> {
    for _ in 0..16 {
        if !is_mounted(path) {
            return Ok(());
        }
        umount2(path, MntFlags::MNT_DETACH).map_err(sys("unmounting", path))?;
    }
    Ok(())
}

/// Unmounts everything mounted at or below `dir`, deepest first.
pub fn unmount_all_under(dir: &Path) -> Result<()> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Ok(());
    };
    let prefix = dir.to_string_lossy().to_string();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    for p in points {
        unmount(Path::new(&p))?;
    }
    Ok(())
}

/// Mounts at `target` an ID-mapped view of `source` and the mounts below it: IDs on disk
/// are seen through the user namespace pinned at `userns`, so a file the host sees owned
/// by 0 is owned by that namespace's root inside it, and what its processes write is
/// stored with the IDs they have inside. `target` must exist and be of `source`'s type.
pub fn idmapped_bind(source: &Path, target: &Path, userns: &Path) -> Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let cpath = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| Error::Spec(format!("path {} contains a NUL byte", p.display())))
    };
    let (src, dst) = (cpath(source)?, cpath(target)?);
    let ns = std::fs::File::open(userns).map_err(crate::io("opening", userns))?;
    let last = || std::io::Error::last_os_error();
    // SAFETY: open_tree takes a directory fd, a NUL-terminated path and flags; it returns
    // a new fd for a detached copy of the mount tree, owned below.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            src.as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_RECURSIVE as u32,
        )
    };
    if tree < 0 {
        return Err(crate::io("cloning the mount of", source)(last()));
    }
    // SAFETY: the kernel just returned this fd.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: ns.as_raw_fd() as u64,
    };
    let empty = c"";
    // SAFETY: mount_setattr reads `attr` (its size is passed) for the detached tree `tree`.
    let set = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if set < 0 {
        return Err(crate::io(
            "ID-mapping (the file system must support ID-mapped mounts)",
            source,
        )(last()));
    }
    // SAFETY: move_mount attaches the detached tree `tree` at the NUL-terminated `dst`.
    let moved = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            dst.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if moved < 0 {
        return Err(crate::io("attaching an ID-mapped mount on", target)(last()));
    }
    Ok(())
}

/// [`overlay`] for a container in a user namespace: each lower layer is seen through an
/// ID-mapped view (made under `staging`, and unmounted once the overlay holds its own
/// references), so the image's files keep their owners inside the namespace.
pub fn overlay_idmapped(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    userns: &Path,
    staging: &Path,
) -> Result<()> {
    std::fs::create_dir_all(staging).map_err(crate::io("creating", staging))?;
    let mut views = Vec::with_capacity(lowers.len());
    let result = (|| {
        for (i, lower) in lowers.iter().enumerate() {
            let view = staging.join(i.to_string());
            std::fs::create_dir_all(&view).map_err(crate::io("creating", &view))?;
            views.push(view.clone());
            idmapped_bind(lower, &view, userns)?;
        }
        overlay(&views, upper, work, target)
    })();
    // Only empty directories are removed: a view that stayed mounted keeps its layer.
    for v in &views {
        let _ = unmount(v);
        let _ = std::fs::remove_dir(v);
    }
    let _ = std::fs::remove_dir(staging);
    result
}
