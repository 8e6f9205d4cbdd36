//! Where a pod's files are, and facts about the node.

use std::path::{Path, PathBuf};

use peapod_types::config::Config;

/// The paths of one pod, all derived from its UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `<run_root>/pods/<uid>`: the pod as applied, its published state, the shim's files.
    pub run_dir: PathBuf,
    /// `<root>/pods/<uid>`: volumes, `/etc/hosts`, termination messages.
    pub pod_dir: PathBuf,
    /// `<root>/pods/<uid>/logs`: container logs, `<container>/<restart>.log`.
    pub log_dir: PathBuf,
}

impl Paths {
    /// The paths of the pod with this UID.
    pub fn new(cfg: &Config, uid: &str) -> Paths {
        let pod_dir = cfg.root.join("pods").join(uid);
        Paths {
            run_dir: Paths::run_dirs(cfg).join(uid),
            log_dir: pod_dir.join("logs"),
            pod_dir,
        }
    }

    /// Where every pod's `run_dir` is.
    pub fn run_dirs(cfg: &Config) -> PathBuf {
        cfg.run_root.join("pods")
    }

    /// The pod's cgroup, where the kubelet's cgroupfs driver would put it (below peapod's
    /// own root): `/peapod/kubepods[/burstable|/besteffort]/pod<uid>`.
    pub fn cgroup_parent(spec: &peapod_types::api::PodSpec, uid: &str) -> String {
        peapod_types::cgroups::pod_cgroup_path(CGROUP_ROOT, spec, uid)
    }

    /// `pod.json`.
    pub fn pod_file(&self) -> PathBuf {
        self.run_dir.join("pod.json")
    }

    /// `pull-secrets.json`: the Docker configs of the pod's `imagePullSecrets`.
    pub fn pull_secrets_file(&self) -> PathBuf {
        self.run_dir.join("pull-secrets.json")
    }

    /// `state.json`.
    pub fn state_file(&self) -> PathBuf {
        self.run_dir.join("state.json")
    }

    /// `shim.sock`.
    pub fn socket(&self) -> PathBuf {
        self.run_dir.join("shim.sock")
    }

    /// `shim.pid`.
    pub fn pid_file(&self) -> PathBuf {
        self.run_dir.join("shim.pid")
    }

    /// `shim.log`.
    pub fn shim_log(&self) -> PathBuf {
        self.run_dir.join("shim.log")
    }
}

/// peapod's own cgroup subtree; every pod's cgroup is below it.
pub const CGROUP_ROOT: &str = "/peapod";

/// The node name: the configured one, else the host name.
pub fn node_name(cfg: &Config) -> String {
    cfg.node_name.clone().unwrap_or_else(|| {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into())
    })
}

/// The IPv4 address of the interface holding the default route (the kubelet's node IP),
/// else the first non-loopback IPv4 address, else empty.
pub fn host_ip() -> String {
    let route = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let iface = route.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 2 && f[1] == "00000000").then(|| f[0].to_string())
    });
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return String::new();
    };
    let v4: Vec<(String, std::net::Ipv4Addr)> = addrs
        .filter_map(|a| {
            let ip = a.address?.as_sockaddr_in()?.ip();
            Some((a.interface_name, ip))
        })
        .collect();
    if let Some(i) = iface
        && let Some((_, ip)) = v4.iter().find(|(n, _)| *n == i)
    {
        return ip.to_string();
    }
    v4.iter()
        .find(|(_, ip)| !ip.is_loopback())
        .map(|(_, ip)| ip.to_string())
        .unwrap_or_default()
}

/// The node's CPUs and memory.
pub fn node_capacity() -> peapod_kubelet::config::NodeCapacity {
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| mem_total(&s))
        .unwrap_or(0);
    peapod_kubelet::config::NodeCapacity {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        memory,
    }
}

/// The kubelet's default hard eviction threshold for memory (`memory.available<100Mi`),
/// which it keeps out of the node's allocatable memory.
const EVICTION_HARD_MEMORY: i128 = 100 << 20;

/// The node's resources as admission counts them: allocatable CPU (millicores), memory
/// (less the eviction threshold) and each size of hugepages the kernel has reserved, with
/// what the other live pods under this state root (all but `uid`) request.
pub fn node_resources(cfg: &Config, uid: &str) -> Vec<peapod_types::admission::NodeResource> {
    let node = node_capacity();
    let mut capacity = vec![
        ("cpu".to_string(), i128::from(node.cpus) * 1000),
        (
            "memory".to_string(),
            (i128::from(node.memory) - EVICTION_HARD_MEMORY).max(0),
        ),
    ];
    capacity.extend(hugepages());
    let others: Vec<peapod_types::api::Pod> = crate::client::list_pods(cfg)
        .into_iter()
        .filter(|p| p.uid != uid)
        .map(|p| p.current())
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed" | "Unknown"))
        })
        .collect();
    capacity
        .into_iter()
        .map(|(name, capacity)| {
            let used = others
                .iter()
                .filter_map(|p| p.spec.as_ref())
                .map(|s| peapod_types::cgroups::pod_request(s, &name))
                .sum();
            peapod_types::admission::NodeResource {
                name,
                capacity,
                used,
            }
        })
        .collect()
}

/// Each hugepage size the kernel offers with the bytes reserved for it, named as the
/// kubelet names the resource (`hugepages-2Mi`, `hugepages-1Gi`).
/// The hugepage sizes the kernel offers, in bytes.
pub fn hugepage_sizes() -> Vec<u64> {
    let mut out: Vec<u64> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let kb: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some(kb * 1024)
        })
        .collect();
    out.sort_unstable();
    out
}

fn hugepages() -> Vec<(String, i128)> {
    let mut out: Vec<(String, i128)> = hugepage_sizes()
        .into_iter()
        .map(|bytes| {
            let kb = i128::from(bytes / 1024);
            let pages: i128 = std::fs::read_to_string(format!(
                "/sys/kernel/mm/hugepages/hugepages-{kb}kB/nr_hugepages"
            ))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
            (format!("hugepages-{}", size_name(kb)), pages * kb * 1024)
        })
        .collect();
    out.sort();
    out
}

/// A hugepage size in KiB as the resource name has it: `2Mi`, `1Gi`, `64Ki`.
fn size_name(kb: i128) -> String {
    if kb % (1 << 20) == 0 {
        format!("{}Gi", kb >> 20)
    } else if kb % 1024 == 0 {
        format!("{}Mi", kb >> 10)
    } else {
        format!("{kb}Ki")
    }
}

/// `MemTotal` of a `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Writes `data` to `path` atomically: a temporary file of its own (concurrent writers never
/// share one) renamed over it.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(path.parent().unwrap_or(Path::new(".")))?;
    std::io::Write::write_all(&mut tmp, data)?;
    tmp.persist(path)?;
    Ok(())
}

/// The user namespace of a pod with `hostUsers: false`, as the kubelet's user namespace
/// manager gives it: the block recorded in the pod's directory (`userns`), else a free
/// block of the node's range, recorded there. Blocks are free when no other pod under this
/// state root records them; a lock serialises the pods' shims choosing. `None` for a pod
/// in the host's user namespace.
pub fn user_namespace(
    cfg: &Config,
    spec: &peapod_types::api::PodSpec,
    uid: &str,
) -> Result<Option<peapod_runtime::UserNamespace>, String> {
    use peapod_types::userns::{NodeRange, PodUserNamespace};
    if spec.host_users != Some(false) {
        return Ok(None);
    }
    let pods = cfg.root.join("pods");
    let record = |uid: &str| pods.join(uid).join("userns");
    let read = |path: &Path| -> Result<Option<PodUserNamespace>, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => PodUserNamespace::parse(&text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    };
    let mine = record(uid);
    std::fs::create_dir_all(&pods).map_err(|e| format!("creating {}: {e}", pods.display()))?;
    let lock_path = cfg.root.join("userns.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("opening {}: {e}", lock_path.display()))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("locking {}: {e}", lock_path.display()))?;
    let ns = match read(&mine)? {
        Some(ns) => ns,
        None => {
            let host = |f: &str| std::fs::read_to_string(f).unwrap_or_default();
            let range = NodeRange::from_host(
                &host("/etc/passwd"),
                &host("/etc/subuid"),
                &host("/etc/subgid"),
            )?;
            let mut used = std::collections::BTreeSet::new();
            for e in std::fs::read_dir(&pods).into_iter().flatten().flatten() {
                if e.file_name() != uid
                    && let Ok(Some(other)) = read(&e.path().join("userns"))
                {
                    used.insert(other.first());
                }
            }
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
                ^ u64::from(std::process::id());
            let first = range
                .pick(&used, seed)
                .ok_or("could not find an empty slot to allocate a user namespace")?;
            let ns = PodUserNamespace::block(first);
            if let Some(dir) = mine.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            let text = serde_json::to_string(&ns).map_err(|e| e.to_string())?;
            std::fs::write(&mine, text).map_err(|e| format!("writing {}: {e}", mine.display()))?;
            ns
        }
    };
    let maps = |m: &[peapod_types::userns::IdMapping]| {
        m.iter()
            .map(|m| peapod_runtime::IdMap {
                container_id: m.container_id,
                host_id: m.host_id,
                length: m.length,
            })
            .collect()
    };
    Ok(Some(peapod_runtime::UserNamespace {
        uids: maps(&ns.uid_mappings),
        gids: maps(&ns.gid_mappings),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugepage_sizes_are_named_as_the_kubelet_names_them() {
        assert_eq!(size_name(2048), "2Mi");
        assert_eq!(size_name(1 << 20), "1Gi");
        assert_eq!(size_name(64), "64Ki");
    }

    #[test]
    fn every_path_comes_from_the_uid() {
        let cfg = Config {
            root: "/var/lib/peapod".into(),
            run_root: "/run/peapod".into(),
            ..Default::default()
        };
        let p = Paths::new(&cfg, "u-1");
        assert_eq!(p.run_dir, Path::new("/run/peapod/pods/u-1"));
        assert_eq!(p.pod_dir, Path::new("/var/lib/peapod/pods/u-1"));
        assert_eq!(p.log_dir, Path::new("/var/lib/peapod/pods/u-1/logs"));
        assert_eq!(p.socket(), Path::new("/run/peapod/pods/u-1/shim.sock"));
        assert_eq!(p.state_file(), Path::new("/run/peapod/pods/u-1/state.json"));
        let spec = peapod_types::api::PodSpec::default();
        assert_eq!(
            Paths::cgroup_parent(&spec, "u-1"),
            "/peapod/kubepods/besteffort/podu-1"
        );
    }

    #[test]
    fn memory_from_meminfo() {
        assert_eq!(
            mem_total("MemTotal:       2048 kB\nMemFree: 1 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(mem_total("nothing"), None);
    }
}
