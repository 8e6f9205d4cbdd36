//! From a pod's container to the runtime's container config, as the kubelet's
//! `generateContainerConfig` does: environment (with `$(VAR)` expansion and the downward
//! API), command and args, mounts, security context, resources, labels and log path. It
//! makes nothing on disk but a mount's `subPath` directory; every other file it names was
//! made by the caller.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use peapod_runtime::{
    AppArmor, ContainerConfig, ContainerMetadata, Mount, NamespaceMode, Propagation, Resources,
    Seccomp, SecurityContext, SupplementalGroupsPolicy,
};
use peapod_types::api::{AppArmorProfile, Container, SeccompProfile};
use peapod_types::expand::expand;
use peapod_types::pod::{ContainerExt, DefaultedPod};

/// What the node has, for `resourceFieldRef` without limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeCapacity {
    /// CPUs.
    pub cpus: u64,
    /// Memory in bytes.
    pub memory: u64,
}

/// Facts about the pod that containers may refer to.
pub struct PodFacts<'a> {
    /// The pod.
    pub pod: &'a DefaultedPod,
    /// The pod's IP, when it has one.
    pub pod_ip: &'a str,
    /// The host's IP.
    pub host_ip: &'a str,
    /// The node name.
    pub node_name: &'a str,
    /// Volume name → host path.
    pub volumes: &'a HashMap<String, PathBuf>,
    /// The pod's directory (for /etc/hosts).
    pub pod_dir: &'a Path,
    /// The node's capacity.
    pub node: NodeCapacity,
    /// Where `Localhost` seccomp profiles are.
    pub seccomp_root: &'a Path,
    /// The ConfigMaps and Secrets the pod may refer to.
    pub objects: &'a dyn crate::objects::ObjectSource,
    /// The IDs the pod's user namespace maps (`hostUsers: false`): every mount is then
    /// ID-mapped with them, as the kubelet asks of its runtime.
    pub user_namespace: Option<&'a peapod_runtime::UserNamespace>,
    /// The hugepage sizes the host has, in bytes.
    pub hugepage_sizes: &'a [u64],
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
    if let Some(v) = f.pod.metadata_field(path) {
        return Ok(v);
    }
    Ok(match path {
        "spec.nodeName" => f.node_name.to_string(),
        "spec.serviceAccountName" => f
            .pod
            .spec()
            .service_account_name
            .clone()
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => f.host_ip.to_string(),
        "status.podIP" | "status.podIPs" => f.pod_ip.to_string(),
        other => return Err(config_error(format!("unsupported fieldPath: {other}"))),
    })
}

/// The container's environment, in order: `envFrom` sources first, then `env` (which
/// overrides them), with `$(VAR)` references to earlier variables expanded, as the
/// kubelet's `makeEnvironmentVariables`. Keys an `envFrom` source holds that are not
/// variable names are skipped.
pub fn environment(f: &PodFacts<'_>, c: &Container) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = f.pod.namespace();
    let mut out: Vec<(String, String)> = Vec::new();
    let set = |out: &mut Vec<(String, String)>, k: String, v: String| match out
        .iter_mut()
        .find(|(name, _)| *name == k)
    {
        Some(slot) => slot.1 = v,
        None => out.push((k, v)),
    };
    for src in c.env_from.iter().flatten() {
        let prefix = src.prefix.as_deref().unwrap_or("");
        let data: Vec<(String, String)> = if let Some(r) = &src.config_map_ref {
            match f.objects.config_map(ns, &r.name) {
                Some(cm) => cm.data.unwrap_or_default().into_iter().collect(),
                None if r.optional == Some(true) => continue,
                None => return Err(config_error(format!("configmap {:?} not found", r.name))),
            }
        } else if let Some(r) = &src.secret_ref {
            match f.objects.secret(ns, &r.name) {
                Some(s) => s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect(),
                None if r.optional == Some(true) => continue,
                None => return Err(config_error(format!("secret {:?} not found", r.name))),
            }
        } else {
            continue;
        };
        for (k, v) in data {
            let k = format!("{prefix}{k}");
            if peapod_types::validate::is_env_var_name(&k) {
                set(&mut out, k, v);
            } else {
                tracing::warn!(key = %k, "skipped: not a valid environment variable name");
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = match &e.value_from {
            None => {
                let current: HashMap<String, String> = out.iter().cloned().collect();
                expand(e.value.as_deref().unwrap_or(""), |k| {
                    current.get(k).cloned()
                })
            }
            Some(vf) => {
                if let Some(fr) = &vf.field_ref {
                    field_value(f, &fr.field_path)?
                } else if let Some(r) = &vf.resource_field_ref {
                    resource_value(c, &r.resource, f.node)?
                } else if let Some(k) = &vf.config_map_key_ref {
                    let optional = k.optional == Some(true);
                    let Some(cm) = f.objects.config_map(ns, &k.name) else {
                        if optional {
                            continue;
                        }
                        return Err(config_error(format!("configmap {:?} not found", k.name)));
                    };
                    match cm.data.as_ref().and_then(|d| d.get(&k.key)) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(config_error(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                k.key, k.name
                            )));
                        }
                    }
                } else if let Some(k) = &vf.secret_key_ref {
                    let optional = k.optional == Some(true);
                    let Some(s) = f.objects.secret(ns, &k.name) else {
                        if optional {
                            continue;
                        }
                        return Err(config_error(format!("secret {:?} not found", k.name)));
                    };
                    match s.data.as_ref().and_then(|d| d.get(&k.key)) {
                        Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(config_error(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                k.key, k.name
                            )));
                        }
                    }
                } else {
                    String::new()
                }
            }
        };
        set(&mut out, e.name.clone(), value);
    }
    Ok(out)
}

fn resource_value(
    c: &Container,
    resource: &str,
    node: NodeCapacity,
) -> Result<String, ConfigError> {
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
        ("cpu", None) => node.cpus.to_string(),
        ("memory", Some(q)) => peapod_types::quantity::parse(&q)
            .map(|b| b.to_string())
            .unwrap_or(q),
        ("memory", None) => node.memory.to_string(),
        (_, Some(q)) => q,
        (_, None) => "0".into(),
    })
}

/// A `resourceFieldRef`'s value for container `c` (the downward API volume's form).
pub(crate) fn resource_value_of(
    c: &Container,
    r: &peapod_types::api::ResourceFieldSelector,
    node: NodeCapacity,
) -> Result<String, String> {
    resource_value(c, &r.resource, node).map_err(|e| e.message)
}

fn millicores(q: &str) -> Option<u64> {
    match q.strip_suffix('m') {
        Some(m) => m.parse().ok(),
        None => q.parse::<f64>().ok().map(|c| (c * 1000.0).ceil() as u64),
    }
}

/// The kubelet's `verifyRunAsNonRoot`: with `runAsNonRoot` (the container's, else the
/// pod's), a container that would run as root is refused. The image's user is `image_uid`
/// when it is a number, else the name `image_username`, which cannot be checked and is
/// refused; an image with neither runs as root.
pub fn verify_run_as_non_root(
    pod: &DefaultedPod,
    c: &Container,
    image_uid: Option<i64>,
    image_username: &str,
) -> Result<(), ConfigError> {
    let psc = pod.spec().security_context.as_ref();
    let csc = c.security_context.as_ref();
    let non_root = csc
        .and_then(|s| s.run_as_non_root)
        .or(psc.and_then(|s| s.run_as_non_root));
    if non_root != Some(true) {
        return Ok(());
    }
    let at = format!("(pod: {:?}, container: {})", pod.label(), c.name);
    let run_as = csc
        .and_then(|s| s.run_as_user)
        .or(psc.and_then(|s| s.run_as_user));
    if let Some(uid) = run_as {
        if uid == 0 {
            return Err(config_error(format!(
                "container's runAsUser breaks non-root policy {at}"
            )));
        }
        return Ok(());
    }
    match image_uid {
        Some(0) => Err(config_error(format!(
            "container has runAsNonRoot and image will run as root {at}"
        ))),
        Some(_) => Ok(()),
        None if !image_username.is_empty() => Err(config_error(format!(
            "container has runAsNonRoot and image has non-numeric user ({image_username}), cannot verify user is non-root {at}"
        ))),
        None => Err(config_error(format!(
            "container has runAsNonRoot and image will run as root {at}"
        ))),
    }
}

/// The seccomp filter of a `seccompProfile` (the container's, else the pod's): unconfined
/// when none is given, as the kubelet's default; `Localhost` profiles are under `root`.
pub fn seccomp(p: Option<&SeccompProfile>, root: &Path) -> Seccomp {
    match p.map(|p| (p.type_.as_str(), p.localhost_profile.as_deref())) {
        Some(("RuntimeDefault", _)) => Seccomp::RuntimeDefault,
        Some(("Localhost", Some(l))) => Seccomp::Localhost(root.join(l)),
        _ => Seccomp::Unconfined,
    }
}

/// A container's cgroup limits from its `resources`: memory limit, CFS quota per 100 ms
/// from the CPU limit, CPU shares from the CPU request.
pub fn container_resources(c: &Container) -> Resources {
    let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
    let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    Resources {
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
        pids_limit: None,
        // Set at creation only ([`container_config`]); a resize leaves them as they are.
        hugepage_limits: Vec::new(),
    }
}

/// The AppArmor choice of an `appArmorProfile` (the container's, else the pod's).
pub fn apparmor(p: Option<&AppArmorProfile>) -> AppArmor {
    match p.map(|p| (p.type_.as_str(), p.localhost_profile.as_deref())) {
        Some(("RuntimeDefault", _)) => AppArmor::RuntimeDefault,
        Some(("Localhost", Some(l))) => AppArmor::Localhost(l.to_string()),
        _ => AppArmor::Unconfined,
    }
}

/// Where the termination message file of run `attempt` of container `name` lives.
pub fn termination_log_path(pod_dir: &Path, name: &str, attempt: u32) -> PathBuf {
    pod_dir
        .join("containers")
        .join(name)
        .join(format!("termination-log-{attempt}"))
}

/// A `subPathExpr` with the container's variables in place, as the kubelet's
/// `ExpandContainerVolumeMounts`: every variable must have a value, and the result must be
/// a relative path within the volume.
pub fn sub_path_expr(expr: &str, env: &HashMap<String, String>) -> Result<String, ConfigError> {
    let missing = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let out = expand(expr, |k| match env.get(k).filter(|v| !v.is_empty()) {
        Some(v) => Some(v.clone()),
        None => {
            missing.borrow_mut().insert(k.to_string());
            Some(String::new())
        }
    });
    let missing = missing.into_inner();
    if !missing.is_empty() {
        let keys: Vec<String> = missing.into_iter().collect();
        return Err(config_error(format!(
            "failed to prepare subPath for volumeMount: missing value for {}",
            keys.join(", ")
        )));
    }
    if out.starts_with('/') {
        return Err(config_error(format!(
            "error SubPath `{out}` must not be an absolute path"
        )));
    }
    if out.split('/').any(|c| c == "..") {
        return Err(config_error(format!(
            "unable to provision SubPath `{out}`: must not contain '..'"
        )));
    }
    Ok(out)
}

/// Builds the runtime config of container `c` for its `attempt`-th run; its termination
/// message file (made by the caller) is [`termination_log_path`].
pub fn container_config(
    f: &PodFacts<'_>,
    c: &Container,
    attempt: u32,
) -> Result<ContainerConfig, ConfigError> {
    let pod = f.pod;
    let spec = pod.spec();
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
        let sub = match m.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
            Some(e) => sub_path_expr(e, &env_map)?,
            None => m.sub_path.clone().unwrap_or_default(),
        };
        let host = crate::volumes::sub_path(vol, &sub).map_err(config_error)?;
        mounts.push(Mount {
            container_path: m.mount_path.clone(),
            host_path: host,
            // Volumes made from objects are always read-only, as the kubelet mounts them.
            readonly: m.read_only.unwrap_or(false)
                || spec.volumes.iter().flatten().any(|v| {
                    v.name == m.name
                        && (crate::projection::is_projected(v)
                            || v.persistent_volume_claim
                                .as_ref()
                                .is_some_and(|c| c.read_only == Some(true)))
                }),
            propagation: match m.mount_propagation.as_deref() {
                Some("HostToContainer") => Propagation::HostToContainer,
                Some("Bidirectional") => Propagation::Bidirectional,
                _ => Propagation::Private,
            },
            // IfPossible is always possible here: the kernel has mount_setattr.
            recursive_readonly: matches!(
                m.recursive_read_only.as_deref(),
                Some("Enabled" | "IfPossible")
            ),
            ..Default::default()
        });
    }
    if !mounts.iter().any(|m| m.container_path == "/etc/hosts") {
        mounts.push(Mount {
            container_path: "/etc/hosts".into(),
            host_path: f.pod_dir.join("etc-hosts"),
            ..Default::default()
        });
    }
    let tm_path = c.termination_message_path().to_string();
    if !tm_path.is_empty() {
        mounts.push(Mount {
            container_path: tm_path.clone(),
            host_path: termination_log_path(f.pod_dir, &c.name, attempt),
            ..Default::default()
        });
    }
    if let Some(u) = f.user_namespace {
        for m in &mut mounts {
            m.uid_mappings = u.uids.clone();
            m.gid_mappings = u.gids.clone();
        }
    }

    let psc = spec.security_context.clone().unwrap_or_default();
    let csc = c.security_context.clone().unwrap_or_default();
    let unmasked = csc.proc_mount.as_deref() == Some("Unmasked");
    let caps = csc.capabilities.clone().unwrap_or_default();
    let security = SecurityContext {
        privileged: csc.privileged.unwrap_or(false),
        add_capabilities: caps.add.unwrap_or_default(),
        drop_capabilities: caps.drop.unwrap_or_default(),
        run_as_user: csc.run_as_user.or(psc.run_as_user),
        run_as_username: None,
        run_as_group: csc.run_as_group.or(psc.run_as_group),
        // The kubelet adds the fsGroup to every container's groups.
        supplemental_groups: psc
            .supplemental_groups
            .clone()
            .unwrap_or_default()
            .into_iter()
            .chain(psc.fs_group)
            .collect(),
        supplemental_groups_policy: match psc.supplemental_groups_policy.as_deref() {
            Some("Strict") => SupplementalGroupsPolicy::Strict,
            _ => SupplementalGroupsPolicy::Merge,
        },
        readonly_rootfs: csc.read_only_root_filesystem.unwrap_or(false),
        no_new_privs: csc.allow_privilege_escalation == Some(false),
        pid_namespace: if pod.host_pid() {
            NamespaceMode::Node
        } else if pod.share_process_namespace() {
            NamespaceMode::Pod
        } else {
            NamespaceMode::Container
        },
        // procMount Unmasked (allowed only with hostUsers: false) masks nothing in /proc.
        masked_paths: unmasked.then(Vec::new),
        readonly_paths: unmasked.then(Vec::new),
        seccomp: seccomp(
            csc.seccomp_profile
                .as_ref()
                .or(psc.seccomp_profile.as_ref()),
            f.seccomp_root,
        ),
        apparmor: apparmor(
            csc.app_armor_profile
                .as_ref()
                .or(psc.app_armor_profile.as_ref()),
        ),
    };

    let mut resources = container_resources(c);
    resources.hugepage_limits = peapod_types::cgroups::hugepage_limits(
        c.resources.as_ref().and_then(|r| r.limits.as_ref()),
        f.hugepage_sizes,
    )
    .into_iter()
    .map(|(page_size, limit)| peapod_runtime::HugepageLimit { page_size, limit })
    .collect();

    let m = &pod.pod().metadata;
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
            pod.grace_period().to_string(),
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
        image: c.image_name().to_string(),
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
        tty: c.tty == Some(true),
        stdin: c.stdin == Some(true),
        stdin_once: c.stdin_once == Some(true),
        devices: Vec::new(),
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
