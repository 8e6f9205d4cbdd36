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

/// What a cgroup (and everything below it) uses, as its controllers count it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time, in nanoseconds.
    pub cpu_ns: Option<u64>,
    /// Memory.
    pub memory: Option<MemoryUsage>,
    /// Processes in it.
    pub pids: u64,
}

/// Memory a cgroup uses, in bytes (page faults in pages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// All of it, page cache included.
    pub usage: u64,
    /// What cannot be reclaimed easily: usage less inactive file pages (what the kubelet
    /// evicts on).
    pub working_set: u64,
    /// Anonymous memory and swap cache.
    pub rss: u64,
    /// Page faults.
    pub page_faults: u64,
    /// Major page faults.
    pub major_page_faults: u64,
    /// Its limit, when it has one.
    pub limit: Option<u64>,
}

/// What cgroup `rel` uses: from the v1 controllers where they have it, else from cgroup2.
pub fn usage(rel: &str) -> Usage {
    let mut u = Usage {
        pids: pids(rel).len() as u64,
        ..Default::default()
    };
    let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).ok();
    let dirs = dirs(rel);
    // v1 first: on a hybrid host the controllers live there.
    for d in &dirs {
        if u.cpu_ns.is_none()
            && let Some(s) = read(d, "cpuacct.usage")
        {
            u.cpu_ns = s.trim().parse().ok();
        }
        if u.memory.is_none()
            && let (Some(usage), Some(stat)) =
                (read(d, "memory.usage_in_bytes"), read(d, "memory.stat"))
        {
            let limit = read(d, "memory.limit_in_bytes");
            u.memory = memory_v1(&usage, &stat, limit.as_deref());
        }
    }
    for d in &dirs {
        if u.cpu_ns.is_none()
            && let Some(s) = read(d, "cpu.stat")
        {
            u.cpu_ns = stat_value(&s, "usage_usec").map(|us| us * 1000);
        }
        if u.memory.is_none()
            && let (Some(current), Some(stat)) = (read(d, "memory.current"), read(d, "memory.stat"))
        {
            let max = read(d, "memory.max");
            u.memory = memory_v2(&current, &stat, max.as_deref());
        }
    }
    u
}

/// The value of `key` in a flat-keyed file (`key value` lines).
fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Memory from cgroup v1's `memory.usage_in_bytes`, `memory.stat` and
/// `memory.limit_in_bytes` (hierarchical `total_` counters).
fn memory_v1(usage: &str, stat: &str, limit: Option<&str>) -> Option<MemoryUsage> {
    let usage: u64 = usage.trim().parse().ok()?;
    let v = |k: &str| stat_value(stat, k).unwrap_or(0);
    let limit = limit
        .and_then(|l| l.trim().parse::<u64>().ok())
        // v1 says "no limit" with a huge page-aligned number.
        .filter(|l| *l < (1 << 62));
    Some(MemoryUsage {
        usage,
        working_set: usage.saturating_sub(v("total_inactive_file")),
        rss: v("total_rss"),
        page_faults: v("total_pgfault"),
        major_page_faults: v("total_pgmajfault"),
        limit,
    })
}

/// Memory from cgroup2's `memory.current`, `memory.stat` and `memory.max`.
fn memory_v2(current: &str, stat: &str, max: Option<&str>) -> Option<MemoryUsage> {
    let usage: u64 = current.trim().parse().ok()?;
    let v = |k: &str| stat_value(stat, k).unwrap_or(0);
    Some(MemoryUsage {
        usage,
        working_set: usage.saturating_sub(v("inactive_file")),
        rss: v("anon"),
        page_faults: v("pgfault"),
        major_page_faults: v("pgmajfault"),
        limit: max.and_then(|m| m.trim().parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_from_v1_counts_the_working_set_without_inactive_files() {
        let stat = "cache 100\nrss 7\ntotal_cache 4096\ntotal_rss 8192\ntotal_inactive_file 1000\ntotal_pgfault 12\ntotal_pgmajfault 3\n";
        let m = memory_v1("10000\n", stat, Some("9223372036854771712\n")).unwrap();
        assert_eq!(
            m,
            MemoryUsage {
                usage: 10000,
                working_set: 9000,
                rss: 8192,
                page_faults: 12,
                major_page_faults: 3,
                limit: None,
            }
        );
        let m = memory_v1("10\n", "total_inactive_file 50\n", Some("1048576")).unwrap();
        assert_eq!((m.working_set, m.limit), (0, Some(1 << 20)));
        assert!(memory_v1("", stat, None).is_none());
    }

    #[test]
    fn memory_from_v2() {
        let stat = "anon 4096\nfile 8192\ninactive_file 2048\npgfault 9\npgmajfault 1\n";
        let m = memory_v2("20000\n", stat, Some("max\n")).unwrap();
        assert_eq!(
            m,
            MemoryUsage {
                usage: 20000,
                working_set: 17952,
                rss: 4096,
                page_faults: 9,
                major_page_faults: 1,
                limit: None,
            }
        );
        assert_eq!(memory_v2("1", "", Some("4096")).unwrap().limit, Some(4096));
    }

    #[test]
    fn flat_keyed_values_match_whole_keys() {
        let s = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n";
        assert_eq!(stat_value(s, "usage_usec"), Some(1500));
        assert_eq!(stat_value(s, "usec"), None);
        assert_eq!(stat_value("pgfault 3\npgfault_x 9", "pgfault"), Some(3));
    }
}

/// New limits for a running container's cgroup; `None` leaves one as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// CPU time per 100 ms period, in microseconds.
    pub cpu_quota: Option<i64>,
    /// CPU shares (v1 `cpu.shares`; cgroup v2 gets the weight they convert to).
    pub cpu_shares: Option<u64>,
    /// Most processes at once (`pids.max`).
    pub pids: Option<i64>,
}

/// Whether a container's hugetlb limits can be applied where containers' cgroups are made
/// (libcontainer uses the v1 hierarchies unless the host is all cgroup v2): on v2 the root
/// lists the `hugetlb` controller, else a v1 hierarchy of it is mounted.
pub fn hugetlb_for_containers() -> bool {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return std::fs::read_to_string(root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "hugetlb"));
    }
    hierarchy_controllers()
        .iter()
        .any(|(p, c)| !p.join("cgroup.controllers").exists() && c.iter().any(|c| c == "hugetlb"))
}

/// Each cgroup hierarchy with its controllers: a v1 mount's from its options (`cpu`,
/// `memory`, `pids`, ...), a cgroup2 mount's from its root's `cgroup.controllers`.
pub fn hierarchy_controllers() -> Vec<(PathBuf, Vec<String>)> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Vec<String>)> = Vec::new();
    for l in info.lines() {
        let Some((pre, post)) = l.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        let (Some(fstype), _, Some(opts)) = (post.next(), post.next(), post.next()) else {
            continue;
        };
        let Some(point) = pre.split(' ').nth(4).map(PathBuf::from) else {
            continue;
        };
        let controllers: Vec<String> = match fstype {
            "cgroup" => opts.split(',').map(str::to_string).collect(),
            "cgroup2" => std::fs::read_to_string(point.join("cgroup.controllers"))
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            _ => continue,
        };
        if !out.iter().any(|(p, _)| *p == point) {
            out.push((point, controllers));
        }
    }
    out
}

/// The cgroup v2 `cpu.weight` of v1 CPU shares (the conversion runc and the kubelet use:
/// 2 → 1, 1024 → 39, 262144 → 10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// `weight_to_shares`, the inverse of [`shares_to_weight`] (to the nearest share).
pub fn weight_to_shares(weight: u64) -> u64 {
    let weight = weight.clamp(1, 10_000);
    2 + ((weight - 1) * 262_142).div_ceil(9999)
}

/// The CPU shares of each child cgroup of `rel` whose name starts with `prefix`, from the
/// first hierarchy that has the CPU controller for it (v1 `cpu.shares`, or v2 `cpu.weight`
/// converted back).
pub fn child_shares(rel: &str, prefix: &str) -> Vec<u64> {
    for d in dirs(rel) {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut found = false;
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !name.starts_with(prefix) || !e.path().is_dir() {
                continue;
            }
            let read = |f: &str| -> Option<u64> {
                std::fs::read_to_string(e.path().join(f))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            };
            if let Some(s) = read("cpu.shares") {
                found = true;
                out.push(s);
            } else if let Some(w) = read("cpu.weight") {
                found = true;
                out.push(weight_to_shares(w));
            }
        }
        if found || d.join("cpu.shares").exists() || d.join("cpu.weight").exists() {
            return out;
        }
    }
    Vec::new()
}

/// The files and values that apply `l` in one hierarchy's directory, by what the
/// directory offers (v1 controllers or cgroup v2).
pub fn limit_files(dir: &Path, l: &Limits) -> Vec<(PathBuf, String)> {
    let has = |f: &str| dir.join(f).exists();
    let mut out = Vec::new();
    if let Some(m) = l.memory {
        if has("memory.limit_in_bytes") {
            out.push((dir.join("memory.limit_in_bytes"), m.to_string()));
        } else if has("memory.max") {
            out.push((dir.join("memory.max"), m.to_string()));
        }
    }
    if let Some(q) = l.cpu_quota {
        if has("cpu.cfs_quota_us") {
            out.push((dir.join("cpu.cfs_period_us"), "100000".into()));
            out.push((dir.join("cpu.cfs_quota_us"), q.to_string()));
        } else if has("cpu.max") {
            out.push((dir.join("cpu.max"), format!("{q} 100000")));
        }
    }
    if let Some(p) = l.pids
        && has("pids.max")
    {
        let v = if p > 0 { p.to_string() } else { "max".into() };
        out.push((dir.join("pids.max"), v));
    }
    if let Some(s) = l.cpu_shares {
        if has("cpu.shares") {
            out.push((dir.join("cpu.shares"), s.to_string()));
        } else if has("cpu.weight") {
            out.push((dir.join("cpu.weight"), shares_to_weight(s).to_string()));
        }
    }
    out
}

/// Makes cgroup `rel` in the hierarchies its limits are written in: the v1 hierarchies of
/// the `cpu`, `memory` and `pids` controllers (and `hugetlb` with `hugepages` given, where
/// containers' cgroups have it), and a cgroup2 hierarchy with those controllers enabled
/// from its root down to `rel`'s parent; then writes `l` and the hugetlb limits (page size
/// name, bytes) to it. (The other v1 hierarchies are left to the runtime that makes the
/// cgroups below it.)
pub fn ensure(rel: &str, l: &Limits, hugepages: &[(String, u64)]) -> std::io::Result<()> {
    let rel = rel.trim_start_matches('/');
    let mut wanted = vec!["cpu", "memory", "pids"];
    let hugetlb = !hugepages.is_empty() && hugetlb_for_containers();
    if hugetlb {
        wanted.push("hugetlb");
    }
    for (h, controllers) in hierarchy_controllers() {
        let ours: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|c| controllers.iter().any(|x| x == c))
            .collect();
        if ours.is_empty() {
            // Not one of these controllers (or the hybrid layout's empty cgroup2).
            continue;
        }
        if h.join("cgroup.controllers").exists() {
            // cgroup2: each ancestor hands the controllers down to its children.
            let mut dir = h.clone();
            for part in rel.split('/').filter(|p| !p.is_empty()) {
                let control: Vec<String> = ours.iter().map(|c| format!("+{c}")).collect();
                std::fs::write(dir.join("cgroup.subtree_control"), control.join(" ")).map_err(
                    |e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("enabling {ours:?} in {}: {e}", dir.display()),
                        )
                    },
                )?;
                dir = dir.join(part);
                std::fs::create_dir_all(&dir)?;
            }
        } else {
            std::fs::create_dir_all(h.join(rel))?;
        }
    }
    update(rel, l)?;
    if hugetlb {
        for d in dirs(rel) {
            write_all(hugetlb_files(&d, hugepages))?;
        }
    }
    Ok(())
}

/// Writes each value to its file.
fn write_all(files: Vec<(PathBuf, String)>) -> std::io::Result<()> {
    for (file, value) in files {
        std::fs::write(&file, &value).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("writing {value} to {}: {e}", file.display()),
            )
        })?;
    }
    Ok(())
}

/// The hugetlb files of cgroup directory `dir` and what to write to them for `limits`
/// (page size name as the CRI has it, bytes): v1 `hugetlb.2MB.limit_in_bytes`, cgroup v2
/// `hugetlb.2MB.max`, each where the directory has it.
pub fn hugetlb_files(dir: &Path, limits: &[(String, u64)]) -> Vec<(PathBuf, String)> {
    limits
        .iter()
        .filter_map(|(size, limit)| {
            ["limit_in_bytes", "max"]
                .iter()
                .map(|f| dir.join(format!("hugetlb.{size}.{f}")))
                .find(|p| p.exists())
                .map(|p| (p, limit.to_string()))
        })
        .collect()
}

/// Writes `l` to cgroup `rel` in every hierarchy that has it.
pub fn update(rel: &str, l: &Limits) -> std::io::Result<()> {
    for d in dirs(rel) {
        write_all(limit_files(&d, l))?;
    }
    Ok(())
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn hugetlb_limits_go_to_the_files_each_layout_has() {
        let d = tempfile::tempdir().unwrap();
        let (v1, v2) = (d.path().join("v1"), d.path().join("v2"));
        for (dir, files) in [
            (
                &v1,
                ["hugetlb.2MB.limit_in_bytes", "hugetlb.1GB.limit_in_bytes"],
            ),
            (&v2, ["hugetlb.2MB.max", "hugetlb.1GB.max"]),
        ] {
            std::fs::create_dir_all(dir).unwrap();
            for f in files {
                std::fs::write(dir.join(f), "").unwrap();
            }
        }
        let limits = [("2MB".to_string(), 64 << 20), ("1GB".to_string(), 0)];
        let names = |dir: &Path| -> Vec<(String, String)> {
            hugetlb_files(dir, &limits)
                .into_iter()
                .map(|(f, v)| (f.file_name().unwrap().to_string_lossy().into_owned(), v))
                .collect()
        };
        assert_eq!(
            names(&v1),
            [
                (
                    "hugetlb.2MB.limit_in_bytes".to_string(),
                    "67108864".to_string()
                ),
                ("hugetlb.1GB.limit_in_bytes".into(), "0".into()),
            ]
        );
        assert_eq!(
            names(&v2),
            [
                ("hugetlb.2MB.max".to_string(), "67108864".to_string()),
                ("hugetlb.1GB.max".into(), "0".into()),
            ]
        );
        assert!(hugetlb_files(d.path(), &limits).is_empty());
    }

    #[test]
    fn weights_convert_back_to_shares() {
        for shares in [2, 102, 204, 1024, 2048, 262_144] {
            let back = weight_to_shares(shares_to_weight(shares));
            // The weight's coarser steps lose at most one step's worth of shares.
            assert!(back.abs_diff(shares) <= 27, "{shares} -> {back}");
        }
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10_000), 262_144);
    }

    #[test]
    fn the_hosts_hierarchies_name_their_controllers() {
        // Whatever the layout (v1, hybrid, v2), the memory controller is somewhere.
        let all = hierarchy_controllers();
        assert!(
            all.iter().any(|(_, c)| c.iter().any(|c| c == "memory")),
            "{all:?}"
        );
    }

    #[test]
    fn limits_go_to_the_files_each_layout_has() {
        let d = tempfile::tempdir().unwrap();
        let v1 = d.path().join("v1");
        let v2 = d.path().join("v2");
        for (dir, files) in [
            (
                &v1,
                &[
                    "memory.limit_in_bytes",
                    "cpu.cfs_quota_us",
                    "cpu.shares",
                    "pids.max",
                ][..],
            ),
            (
                &v2,
                &["memory.max", "cpu.max", "cpu.weight", "pids.max"][..],
            ),
        ] {
            std::fs::create_dir_all(dir).unwrap();
            for f in files {
                std::fs::write(dir.join(f), "").unwrap();
            }
        }
        let l = Limits {
            memory: Some(64 << 20),
            cpu_quota: Some(50_000),
            cpu_shares: Some(1024),
            pids: Some(100),
        };
        let names = |dir: &Path| -> Vec<(String, String)> {
            limit_files(dir, &l)
                .into_iter()
                .map(|(f, v)| (f.file_name().unwrap().to_string_lossy().into_owned(), v))
                .collect()
        };
        assert_eq!(
            names(&v1),
            [
                ("memory.limit_in_bytes".to_string(), "67108864".to_string()),
                ("cpu.cfs_period_us".into(), "100000".into()),
                ("cpu.cfs_quota_us".into(), "50000".into()),
                ("pids.max".into(), "100".into()),
                ("cpu.shares".into(), "1024".into()),
            ]
        );
        assert_eq!(
            names(&v2),
            [
                ("memory.max".to_string(), "67108864".to_string()),
                ("cpu.max".into(), "50000 100000".into()),
                ("pids.max".into(), "100".into()),
                ("cpu.weight".into(), "39".into()),
            ]
        );
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert!(
            limit_files(d.path(), &l).is_empty(),
            "a directory without controllers"
        );
    }
}
