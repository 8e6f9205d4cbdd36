//! From a pod's container to the runtime's container config, as the kubelet's
//! `generateContainerConfig` does: environment (with `$(VAR)` expansion and the downward
//! API), command and args, mounts, security context, resources, labels and log path.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use peapod_runtime::{
    ContainerConfig, ContainerMetadata, Mount, NamespaceMode, Resources, SecurityContext,
};
use peapod_types::api::{Container, Pod};
use peapod_types::expand::expand;

/// Facts about the pod that containers may refer to.
pub struct PodFacts<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// The pod's IP, when it has one.
    pub pod_ip: &'a str,
    /// The host's IP.
    pub host_ip: &'a str,
    /// The node name.
    pub node_name: &'a str,
    /// Volume name → host path.
    pub volumes: &'a HashMap<String, PathBuf>,
    /// The pod's directory (for /etc/hosts and termination logs).
    pub pod_dir: &'a Path,
}

/// A container config that could not be made: the container waits with `reason`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// `CreateContainerConfigError`.
    pub reason: &'static str,
    /// Why.
    pub message: String,
}

fn config_error(message: String) -> ConfigError {
    ConfigError {
        reason: "CreateContainerConfigError",
        message,
    }
}

/// The value of a downward-API field path.
fn field_value(f: &PodFacts<'_>, path: &str) -> Result<String, ConfigError> {
    let m = &f.pod.metadata;
    let spec = f.pod.spec.as_ref();
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => f.node_name.to_string(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => f.host_ip.to_string(),
        "status.podIP" | "status.podIPs" => f.pod_ip.to_string(),
        other => return Err(config_error(format!("unsupported fieldPath: {other}"))),
    })
}

/// The container's environment, in order, with `$(VAR)` references to earlier variables
/// expanded.
pub fn environment(f: &PodFacts<'_>, c: &Container) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut map: HashMap<String, String> = HashMap::new();
    for e in c.env.iter().flatten() {
        let value = match &e.value_from {
            None => expand(e.value.as_deref().unwrap_or(""), |k| map.get(k).cloned()),
            Some(vf) => {
                if let Some(fr) = &vf.field_ref {
                    field_value(f, &fr.field_path)?
                } else if let Some(r) = &vf.resource_field_ref {
                    resource_value(c, &r.resource)?
                } else if let Some(k) = &vf.config_map_key_ref {
                    if k.optional == Some(true) {
                        continue;
                    }
                    return Err(config_error(format!("configmap {:?} not found", k.name)));
                } else if let Some(k) = &vf.secret_key_ref {
                    if k.optional == Some(true) {
                        continue;
                    }
                    return Err(config_error(format!("secret {:?} not found", k.name)));
                } else {
                    String::new()
                }
            }
        };
        map.insert(e.name.clone(), value.clone());
        match out.iter_mut().find(|(k, _)| *k == e.name) {
            Some(slot) => slot.1 = value,
            None => out.push((e.name.clone(), value)),
        }
    }
    Ok(out)
}

fn resource_value(c: &Container, resource: &str) -> Result<String, ConfigError> {
    let r = c.resources.as_ref();
    let get = |limits: bool, name: &str| {
        let m = if limits {
            r.and_then(|r| r.limits.as_ref())
        } else {
            r.and_then(|r| r.requests.as_ref())
        };
        m.and_then(|m| m.get(name)).map(|q| q.0.clone())
    };
    let (limits, name) = match resource.split_once('.') {
        Some(("limits", n)) => (true, n),
        Some(("requests", n)) => (false, n),
        _ => {
            return Err(config_error(format!(
                "unsupported container resource: {resource}"
            )));
        }
    };
    let value = get(limits, name);
    Ok(match (name, value) {
        ("cpu", Some(q)) => millicores(&q)
            .map(|m| m.div_ceil(1000).to_string())
            .unwrap_or(q),
        ("cpu", None) => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .to_string(),
        ("memory", Some(q)) => peapod_types::quantity::parse(&q)
            .map(|b| b.to_string())
            .unwrap_or(q),
        ("memory", None) => total_memory().to_string(),
        (_, Some(q)) => q,
        (_, None) => "0".into(),
    })
}

fn millicores(q: &str) -> Option<u64> {
    match q.strip_suffix('m') {
        Some(m) => m.parse().ok(),
        None => q.parse::<f64>().ok().map(|c| (c * 1000.0).ceil() as u64),
    }
}

fn total_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// The kubelet's managed `/etc/hosts` for the pod.
pub fn hosts_file(pod: &Pod, pod_ip: &str, cluster_domain: &str) -> String {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let mut s = String::new();
    if host_network {
        s.push_str("# Kubernetes-managed hosts file (host network).\n");
        s.push_str(&std::fs::read_to_string("/etc/hosts").unwrap_or_default());
    } else {
        s.push_str("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        s.push_str("fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n");
        if !pod_ip.is_empty() {
            let hostname = pod_hostname(pod);
            match spec
                .and_then(|s| s.subdomain.as_deref())
                .filter(|s| !s.is_empty())
            {
                Some(sub) => {
                    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                    s.push_str(&format!(
                        "{pod_ip}\t{hostname}.{sub}.{ns}.svc.{cluster_domain}\t{hostname}\n"
                    ));
                }
                None => s.push_str(&format!("{pod_ip}\t{hostname}\n")),
            }
        }
    }
    let aliases = spec.and_then(|s| s.host_aliases.as_ref());
    if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
        s.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            s.push_str(&format!(
                "{}\t{}\n",
                a.ip,
                a.hostnames.clone().unwrap_or_default().join("\t")
            ));
        }
    }
    s
}

/// The pod's host name: `spec.hostname`, else its name (truncated to 63 characters).
pub fn pod_hostname(pod: &Pod) -> String {
    let h = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty());
    let mut h = h.unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    h.truncate(63);
    h.trim_end_matches(['-', '.']).to_string()
}

/// Builds the runtime config of container `c` for its `attempt`-th run.
pub fn container_config(
    f: &PodFacts<'_>,
    c: &Container,
    attempt: u32,
) -> Result<ContainerConfig, ConfigError> {
    let pod = f.pod;
    let spec = pod.spec.as_ref().expect("defaulted pod has a spec");
    let envs = environment(f, c)?;
    let env_map: HashMap<String, String> = envs.iter().cloned().collect();
    let exp = |v: &Vec<String>| {
        v.iter()
            .map(|s| expand(s, |k| env_map.get(k).cloned()))
            .collect::<Vec<_>>()
    };
    let command = c.command.as_ref().map(exp).unwrap_or_default();
    let args = c.args.as_ref().map(exp).unwrap_or_default();

    let mut mounts = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let vol = f
            .volumes
            .get(&m.name)
            .ok_or_else(|| config_error(format!("volume {:?} is not set up", m.name)))?;
        let host = crate::volumes::sub_path(vol, m.sub_path.as_deref().unwrap_or(""))
            .map_err(config_error)?;
        mounts.push(Mount {
            container_path: m.mount_path.clone(),
            host_path: host,
            readonly: m.read_only.unwrap_or(false),
        });
    }
    if !mounts.iter().any(|m| m.container_path == "/etc/hosts") {
        mounts.push(Mount {
            container_path: "/etc/hosts".into(),
            host_path: f.pod_dir.join("etc-hosts"),
            readonly: false,
        });
    }
    let tm_path = c
        .termination_message_path
        .clone()
        .unwrap_or_else(|| "/dev/termination-log".into());
    if !tm_path.is_empty() {
        let dir = f.pod_dir.join("containers").join(&c.name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| config_error(format!("creating {}: {e}", dir.display())))?;
        let file = dir.join(format!("termination-log-{attempt}"));
        std::fs::write(&file, "")
            .map_err(|e| config_error(format!("creating {}: {e}", file.display())))?;
        let _ =
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o666));
        mounts.push(Mount {
            container_path: tm_path.clone(),
            host_path: file,
            readonly: false,
        });
    }

    let psc = spec.security_context.clone().unwrap_or_default();
    let csc = c.security_context.clone().unwrap_or_default();
    let caps = csc.capabilities.clone().unwrap_or_default();
    let security = SecurityContext {
        privileged: csc.privileged.unwrap_or(false),
        add_capabilities: caps.add.unwrap_or_default(),
        drop_capabilities: caps.drop.unwrap_or_default(),
        run_as_user: csc.run_as_user.or(psc.run_as_user),
        run_as_group: csc.run_as_group.or(psc.run_as_group),
        supplemental_groups: psc.supplemental_groups.unwrap_or_default(),
        readonly_rootfs: csc.read_only_root_filesystem.unwrap_or(false),
        no_new_privs: csc.allow_privilege_escalation == Some(false),
        pid_namespace: if spec.host_pid == Some(true) {
            NamespaceMode::Node
        } else if spec.share_process_namespace == Some(true) {
            NamespaceMode::Pod
        } else {
            NamespaceMode::Container
        },
    };

    let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
    let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let resources = Resources {
        memory_limit_in_bytes: limits
            .and_then(|l| l.get("memory"))
            .and_then(|q| peapod_types::quantity::parse(&q.0))
            .map(|b| b as i64),
        cpu_quota: limits
            .and_then(|l| l.get("cpu"))
            .and_then(|q| millicores(&q.0))
            .map(|m| (m * 100) as i64),
        cpu_shares: requests
            .and_then(|r| r.get("cpu"))
            .and_then(|q| millicores(&q.0))
            .map(|m| (m * 1024 / 1000).max(2)),
    };

    let m = &pod.metadata;
    let labels: BTreeMap<String, String> = [
        ("io.kubernetes.pod.name", m.name.clone().unwrap_or_default()),
        (
            "io.kubernetes.pod.namespace",
            m.namespace.clone().unwrap_or_default(),
        ),
        ("io.kubernetes.pod.uid", m.uid.clone().unwrap_or_default()),
        ("io.kubernetes.container.name", c.name.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let annotations: BTreeMap<String, String> = [
        ("io.kubernetes.container.restartCount", attempt.to_string()),
        ("io.kubernetes.container.terminationMessagePath", tm_path),
        (
            "io.kubernetes.pod.terminationGracePeriod",
            spec.termination_grace_period_seconds
                .unwrap_or(30)
                .to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();

    Ok(ContainerConfig {
        metadata: ContainerMetadata {
            name: c.name.clone(),
            attempt,
        },
        image: c.image.clone().unwrap_or_default(),
        command,
        args,
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs,
        mounts,
        labels,
        annotations,
        log_path: format!("{}/{attempt}.log", c.name),
        resources,
        security,
        stop_signal: c.lifecycle.as_ref().and_then(|l| l.stop_signal.clone()),
    })
}
