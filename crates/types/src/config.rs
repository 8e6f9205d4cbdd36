//! peapod's configuration file (TOML), as typed sections.
//!
//! Every key is optional; an absent file means all defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::backoff::Backoff;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Persistent state: images, snapshots, pod volumes, logs.
    pub root: PathBuf,
    /// Volatile state: pod records, shim sockets, bundles.
    pub run_root: PathBuf,
    /// The `peapod-pause` binary; by default the one next to `peapod`, then `$PATH`.
    pub pause_path: Option<PathBuf>,
    /// Run this image's entrypoint as each pod's infra process instead of `peapod-pause`
    /// (like the kubelet's `--pod-infra-container-image`).
    pub infra_image: Option<String>,
    /// The node name pods see in `spec.nodeName`; the host name by default.
    pub node_name: Option<String>,
    /// Labels of the node, besides `kubernetes.io/hostname`, `kubernetes.io/os` and
    /// `kubernetes.io/arch`; pods' `nodeSelector` and node affinity are checked against
    /// them.
    pub node_labels: BTreeMap<String, String>,
    /// The most processes a pod may have at once (the kubelet's `podPidsLimit`, its pod
    /// cgroup's `pids.max`); unlimited when absent or not positive.
    pub pod_pids_limit: Option<i64>,
    /// Crash-loop and image-pull back-off.
    pub backoff: Backoff,
    /// DNS settings given to pods.
    pub dns: Dns,
    /// Pod networking through CNI.
    pub network: Network,
    /// Image registries: credentials, mirrors, plain HTTP, certificates, download limits.
    pub registries: Registries,
    /// The CRI server (`peapod serve`).
    pub cri: Cri,
}

/// The CRI server's settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cri {
    /// The unix socket it serves on; `<run_root>/peapod.sock` by default.
    pub socket: Option<PathBuf>,
    /// Where its streaming server (exec, attach, port-forward sessions) listens, as
    /// `address:port`; `127.0.0.1:0` (a free port on loopback) by default.
    pub stream_address: Option<String>,
}

/// How images are pulled from registries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Registries {
    /// Layers of one image downloaded at once.
    pub max_concurrent_downloads: usize,
    /// A Docker-style credentials file (`{"auths": {...}}`); by default
    /// `$REGISTRY_AUTH_FILE`, then `$HOME/.docker/config.json`.
    pub auth_file: Option<PathBuf>,
    /// Settings per registry host (`host` or `host:port`).
    pub hosts: BTreeMap<String, RegistryHost>,
}

impl Default for Registries {
    fn default() -> Self {
        Registries {
            max_concurrent_downloads: 3,
            auth_file: None,
            hosts: BTreeMap::new(),
        }
    }
}

/// Settings of one registry host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryHost {
    /// Mirrors tried in order before the registry itself, as `host[:port]` or
    /// `http://host[:port]` / `https://host[:port]`.
    pub mirrors: Vec<String>,
    /// Plain HTTP instead of HTTPS. Unset: plain HTTP for loopback hosts without a
    /// configured CA, HTTPS for everything else.
    pub insecure: Option<bool>,
    /// PEM files of certificate authorities trusted for this host, besides the system's.
    pub ca_files: Vec<PathBuf>,
    /// User name for basic or token authentication.
    pub username: Option<String>,
    /// Password (or token) for that user.
    pub password: Option<String>,
}

/// Pod networking through CNI plugins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    /// Off: pods get a network namespace with loopback only.
    pub enabled: bool,
    /// Where network configurations are read; the first file by name is used.
    pub config_dir: PathBuf,
    /// Where plugins are looked for, in order.
    pub plugin_dirs: Vec<PathBuf>,
    /// Subnet of the network peapod writes when `config_dir` has none.
    pub default_subnet: String,
    /// Bridge of that network.
    pub default_bridge: String,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            enabled: true,
            config_dir: PathBuf::from("/etc/cni/net.d"),
            plugin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            default_subnet: "10.85.0.0/16".into(),
            default_bridge: "peapod0".into(),
        }
    }
}

/// DNS settings for pods with `dnsPolicy: ClusterFirst`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dns {
    /// Cluster DNS servers; when empty, pods get the host's resolv.conf.
    pub cluster_dns: Vec<String>,
    /// Cluster domain for search paths.
    pub cluster_domain: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: PathBuf::from("/var/lib/peapod"),
            run_root: PathBuf::from("/run/peapod"),
            pause_path: None,
            infra_image: None,
            node_name: None,
            node_labels: BTreeMap::new(),
            pod_pids_limit: None,
            backoff: Backoff::default(),
            dns: Dns {
                cluster_dns: Vec::new(),
                cluster_domain: "cluster.local".into(),
            },
            network: Network::default(),
            registries: Registries::default(),
            cri: Cri::default(),
        }
    }
}

impl Config {
    /// Parses a TOML document; errors name the key and position.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_file_keeps_defaults() {
        let c = Config::from_toml("root = \"/tmp/x\"\n[backoff]\nbase_seconds = 0.5\n").unwrap();
        assert_eq!(c.root, PathBuf::from("/tmp/x"));
        assert_eq!(c.run_root, PathBuf::from("/run/peapod"));
        assert_eq!(c.backoff.base_seconds, 0.5);
        assert_eq!(c.backoff.max_seconds, 300.0);
        let c = Config::from_toml(
            "[registries.hosts.\"registry.k8s.io\"]\nmirrors = [\"http://127.0.0.1:5000\"]\n",
        )
        .unwrap();
        assert_eq!(
            c.registries.hosts["registry.k8s.io"].mirrors,
            ["http://127.0.0.1:5000"]
        );
        assert_eq!(c.registries.max_concurrent_downloads, 3);
        assert!(
            Config::from_toml("rot = 1")
                .unwrap_err()
                .to_string()
                .contains("rot")
        );
    }
}
