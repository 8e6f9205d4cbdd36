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
