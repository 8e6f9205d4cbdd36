//! Cgroup directories on the host, whatever the layout (v1, hybrid or v2): enough to remove
//! a pod's parent cgroup and to kill what a cgroup still holds.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every cgroup hierarchy mount point (v1 controllers and cgroup2).
pub fn hierarchies() -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let point = pre.split(' ').nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(point))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The directories of cgroup `rel` (e.g. `/peapod/pod-uid`) in every hierarchy where it exists.
pub fn dirs(rel: &str) -> Vec<PathBuf> {
    let rel = rel.trim_start_matches('/');
    hierarchies()
        .into_iter()
        .map(|h| h.join(rel))
        .filter(|p| p.is_dir())
        .collect()
}

/// The PIDs in cgroup `rel` and below, in every hierarchy.
pub fn pids(rel: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for d in dirs(rel) {
        collect_pids(&d, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&e.path(), out);
            }
        }
    }
}

/// Removes cgroup `rel` and everything below it from every hierarchy, deepest first.
/// Directories still holding processes are retried briefly, then reported.
pub fn remove(rel: &str) -> std::io::Result<()> {
    let mut last = Ok(());
    for d in dirs(rel) {
        let mut all = Vec::new();
        collect_dirs(&d, &mut all);
        all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in all {
            last = rmdir_retry(&p);
        }
    }
    last
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

fn rmdir_retry(p: &Path) -> std::io::Result<()> {
    for i in 0..50 {
        match std::fs::remove_dir(p) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if i == 49 => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    Ok(())
}

/// Removes the directory of cgroup `rel` in every hierarchy where it is empty (no processes,
/// no children); busy ones stay.
pub fn remove_if_empty(rel: &str) {
    for d in dirs(rel) {
        let _ = std::fs::remove_dir(d);
    }
}
