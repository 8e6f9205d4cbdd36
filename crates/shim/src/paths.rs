//! Where a pod's files are, and facts about the node.

use std::path::{Path, PathBuf};

use peapod_types::config::Config;

/// The paths of one pod.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<run_root>/pods/<uid>`.
    pub run_dir: PathBuf,
    /// `<root>/pods/<uid>`.
    pub pod_dir: PathBuf,
    /// `<root>/logs/<ns>_<name>_<uid>`.
    pub log_dir: PathBuf,
}

impl Paths {
    /// The paths of the pod with this UID, name and namespace.
    pub fn new(cfg: &Config, uid: &str, namespace: &str, name: &str) -> Paths {
        Paths {
            run_dir: cfg.run_root.join("pods").join(uid),
            pod_dir: cfg.root.join("pods").join(uid),
            log_dir: cfg
                .root
                .join("logs")
                .join(format!("{namespace}_{name}_{uid}")),
        }
    }

    /// The pod's parent cgroup.
    pub fn cgroup_parent(uid: &str) -> String {
        format!("/peapod/pod{uid}")
    }

    /// `pod.json`.
    pub fn pod_file(&self) -> PathBuf {
        self.run_dir.join("pod.json")
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
}

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

/// Writes `data` to `path` atomically.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}
