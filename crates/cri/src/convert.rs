//! Between the CRI's protobuf messages and the runtime's CRI-shaped types: field for field,
//! with a clear `InvalidArgument` naming the field for what the runtime cannot honour.

use std::collections::{BTreeMap, HashMap};

use peapod_runtime as rt;
use tonic::Status;

use crate::proto as pb;

/// An RFC 3339 time from the runtime as nanoseconds since the epoch (0 when absent).
pub fn nanos(t: Option<&str>) -> i64 {
    t.and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map_or(0, |t| t.as_nanosecond() as i64)
}

fn map(m: &HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn hash(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn invalid(field: &str, why: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {why}"))
}

/// A namespace mode (`POD`, `CONTAINER`, `NODE`); `TARGET` is refused.
fn mode(field: &str, m: i32) -> Result<rt::NamespaceMode, Status> {
    match pb::NamespaceMode::try_from(m) {
        Ok(pb::NamespaceMode::Pod) => Ok(rt::NamespaceMode::Pod),
        Ok(pb::NamespaceMode::Container) => Ok(rt::NamespaceMode::Container),
        Ok(pb::NamespaceMode::Node) => Ok(rt::NamespaceMode::Node),
        Ok(pb::NamespaceMode::Target) => Err(invalid(
            field,
            "namespace mode TARGET is not supported by peapod",
        )),
        Err(_) => Err(invalid(field, format!("unknown namespace mode {m}"))),
    }
}

fn mode_pb(m: rt::NamespaceMode) -> i32 {
    match m {
        rt::NamespaceMode::Pod => pb::NamespaceMode::Pod as i32,
        rt::NamespaceMode::Container => pb::NamespaceMode::Container as i32,
        rt::NamespaceMode::Node => pb::NamespaceMode::Node as i32,
    }
}

/// `PodSandboxConfig` → the runtime's sandbox config.
pub fn sandbox_config(c: &pb::PodSandboxConfig) -> Result<rt::SandboxConfig, Status> {
    let m = c
        .metadata
        .as_ref()
        .ok_or_else(|| invalid("config.metadata", "required"))?;
    if m.name.is_empty() || m.uid.is_empty() || m.namespace.is_empty() {
        return Err(invalid(
            "config.metadata",
            "name, uid and namespace are required",
        ));
    }
    let linux = c.linux.clone().unwrap_or_default();
    let ns = linux
        .security_context
        .as_ref()
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default();
    let namespaces = rt::NamespaceOptions {
        network: mode(
            "config.linux.security_context.namespace_options.network",
            ns.network,
        )?,
        pid: mode(
            "config.linux.security_context.namespace_options.pid",
            ns.pid,
        )?,
        ipc: mode(
            "config.linux.security_context.namespace_options.ipc",
            ns.ipc,
        )?,
    };
    let dns = c.dns_config.clone().unwrap_or_default();
    let mut ports = Vec::new();
    for (i, p) in c.port_mappings.iter().enumerate() {
        let protocol = match pb::Protocol::try_from(p.protocol) {
            Ok(pb::Protocol::Tcp) => "TCP",
            Ok(pb::Protocol::Udp) => "UDP",
            Ok(pb::Protocol::Sctp) => "SCTP",
            Err(_) => {
                return Err(invalid(
                    &format!("config.port_mappings[{i}].protocol"),
                    format!("unknown protocol {}", p.protocol),
                ));
            }
        };
        ports.push(rt::PortMapping {
            protocol: protocol.into(),
            container_port: p.container_port,
            host_port: p.host_port,
            host_ip: p.host_ip.clone(),
        });
    }
    Ok(rt::SandboxConfig {
        metadata: rt::SandboxMetadata {
            name: m.name.clone(),
            uid: m.uid.clone(),
            namespace: m.namespace.clone(),
            attempt: m.attempt,
        },
        hostname: c.hostname.clone(),
        log_directory: c.log_directory.clone().into(),
        dns: rt::DnsConfig {
            servers: dns.servers,
            searches: dns.searches,
            options: dns.options,
        },
        port_mappings: ports,
        labels: map(&c.labels),
        annotations: map(&c.annotations),
        cgroup_parent: linux.cgroup_parent,
        // A kubelet makes and sizes its pods' cgroups itself.
        pod_resources: None,
        namespaces,
        sysctls: map(&linux.sysctls),
        privileged: linux
            .security_context
            .as_ref()
            .is_some_and(|s| s.privileged),
        user_namespace: user_namespace(ns.userns_options.as_ref())?,
    })
}

/// The sandbox's user namespace: `None` for the node's (mode `NODE`, or nothing given).
fn user_namespace(u: Option<&pb::UserNamespace>) -> Result<Option<rt::UserNamespace>, Status> {
    const FIELD: &str = "config.linux.security_context.namespace_options.userns_options";
    let Some(u) = u else { return Ok(None) };
    match pb::NamespaceMode::try_from(u.mode) {
        Ok(pb::NamespaceMode::Node) => {
            if !u.uids.is_empty() || !u.gids.is_empty() {
                return Err(invalid(FIELD, "mode NODE takes no ID mappings"));
            }
            Ok(None)
        }
        Ok(pb::NamespaceMode::Pod) => {
            let ns = rt::UserNamespace {
                uids: id_maps(&u.uids),
                gids: id_maps(&u.gids),
            };
            ns.check().map_err(|e| invalid(FIELD, e))?;
            Ok(Some(ns))
        }
        Ok(m) => Err(invalid(
            &format!("{FIELD}.mode"),
            format!(
                "user namespace mode {} is not supported: only POD and NODE are",
                m.as_str_name()
            ),
        )),
        Err(_) => Err(invalid(
            &format!("{FIELD}.mode"),
            format!("unknown namespace mode {}", u.mode),
        )),
    }
}

fn id_maps(m: &[pb::IdMapping]) -> Vec<rt::IdMap> {
    m.iter()
        .map(|m| rt::IdMap {
            container_id: m.container_id,
            host_id: m.host_id,
            length: m.length,
        })
        .collect()
}

fn sandbox_state(s: rt::SandboxState) -> i32 {
    match s {
        rt::SandboxState::Ready => pb::PodSandboxState::SandboxReady as i32,
        rt::SandboxState::NotReady => pb::PodSandboxState::SandboxNotready as i32,
    }
}

fn sandbox_metadata(m: &rt::SandboxMetadata) -> pb::PodSandboxMetadata {
    pb::PodSandboxMetadata {
        name: m.name.clone(),
        uid: m.uid.clone(),
        namespace: m.namespace.clone(),
        attempt: m.attempt,
    }
}

/// The runtime's sandbox status → `PodSandboxStatus`.
pub fn sandbox_status(s: &rt::SandboxStatus) -> pb::PodSandboxStatus {
    let network =
        (s.namespaces.network != rt::NamespaceMode::Node).then(|| pb::PodSandboxNetworkStatus {
            ip: s.ip.clone().unwrap_or_default(),
            additional_ips: s
                .additional_ips
                .iter()
                .map(|ip| pb::PodIp { ip: ip.clone() })
                .collect(),
        });
    pb::PodSandboxStatus {
        id: s.id.clone(),
        metadata: Some(sandbox_metadata(&s.metadata)),
        state: sandbox_state(s.state),
        created_at: nanos(Some(&s.created_at)),
        network,
        linux: Some(pb::LinuxPodSandboxStatus {
            namespaces: Some(pb::Namespace {
                options: Some(pb::NamespaceOption {
                    network: mode_pb(s.namespaces.network),
                    pid: mode_pb(s.namespaces.pid),
                    ipc: mode_pb(s.namespaces.ipc),
                    ..Default::default()
                }),
            }),
        }),
        labels: hash(&s.labels),
        annotations: hash(&s.annotations),
        runtime_handler: String::new(),
    }
}

/// The runtime's sandbox status → `PodSandbox` (a list entry).
pub fn sandbox(s: &rt::SandboxStatus) -> pb::PodSandbox {
    pb::PodSandbox {
        id: s.id.clone(),
        metadata: Some(sandbox_metadata(&s.metadata)),
        state: sandbox_state(s.state),
        created_at: nanos(Some(&s.created_at)),
        labels: hash(&s.labels),
        annotations: hash(&s.annotations),
        runtime_handler: String::new(),
    }
}

/// `PodSandboxFilter` → the runtime's.
pub fn sandbox_filter(f: Option<&pb::PodSandboxFilter>) -> rt::SandboxFilter {
    let Some(f) = f else {
        return rt::SandboxFilter::default();
    };
    rt::SandboxFilter {
        id: Some(f.id.clone()).filter(|s| !s.is_empty()),
        state: f.state.as_ref().map(|s| {
            if s.state == pb::PodSandboxState::SandboxReady as i32 {
                rt::SandboxState::Ready
            } else {
                rt::SandboxState::NotReady
            }
        }),
        label_selector: map(&f.label_selector),
    }
}

/// `ContainerFilter` → the runtime's.
pub fn container_filter(f: Option<&pb::ContainerFilter>) -> rt::ContainerFilter {
    let Some(f) = f else {
        return rt::ContainerFilter::default();
    };
    rt::ContainerFilter {
        id: Some(f.id.clone()).filter(|s| !s.is_empty()),
        state: f.state.as_ref().map(|s| container_state_from(s.state)),
        pod_sandbox_id: Some(f.pod_sandbox_id.clone()).filter(|s| !s.is_empty()),
        label_selector: map(&f.label_selector),
    }
}

fn container_state_from(s: i32) -> rt::ContainerState {
    match pb::ContainerState::try_from(s) {
        Ok(pb::ContainerState::ContainerCreated) => rt::ContainerState::Created,
        Ok(pb::ContainerState::ContainerRunning) => rt::ContainerState::Running,
        Ok(pb::ContainerState::ContainerExited) => rt::ContainerState::Exited,
        _ => rt::ContainerState::Unknown,
    }
}

fn container_state(s: rt::ContainerState) -> i32 {
    match s {
        rt::ContainerState::Created => pb::ContainerState::ContainerCreated as i32,
        rt::ContainerState::Running => pb::ContainerState::ContainerRunning as i32,
        rt::ContainerState::Exited => pb::ContainerState::ContainerExited as i32,
        rt::ContainerState::Unknown => pb::ContainerState::ContainerUnknown as i32,
    }
}

fn signal_name(s: i32) -> Option<String> {
    let name = pb::Signal::try_from(s).ok()?.as_str_name();
    (name != "RUNTIME_DEFAULT").then(|| name.to_string())
}

/// `ContainerConfig` → the runtime's container config.
pub fn container_config(c: &pb::ContainerConfig) -> Result<rt::ContainerConfig, Status> {
    let m = c
        .metadata
        .as_ref()
        .ok_or_else(|| invalid("config.metadata", "required"))?;
    if m.name.is_empty() {
        return Err(invalid("config.metadata.name", "required"));
    }
    let image = c
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| invalid("config.image.image", "required"))?;
    if !c.cdi_devices.is_empty() {
        return Err(invalid(
            "config.cdi_devices",
            "CDI devices are not supported by peapod",
        ));
    }
    let mut mounts = Vec::new();
    for (i, mt) in c.mounts.iter().enumerate() {
        let propagation = match pb::MountPropagation::try_from(mt.propagation) {
            Ok(pb::MountPropagation::PropagationPrivate) => rt::Propagation::Private,
            Ok(pb::MountPropagation::PropagationHostToContainer) => {
                rt::Propagation::HostToContainer
            }
            Ok(pb::MountPropagation::PropagationBidirectional) => rt::Propagation::Bidirectional,
            Err(_) => {
                return Err(invalid(
                    &format!("config.mounts[{i}].propagation"),
                    format!("unknown propagation {}", mt.propagation),
                ));
            }
        };
        if mt.recursive_read_only && !mt.readonly {
            return Err(invalid(
                &format!("config.mounts[{i}].recursive_read_only"),
                "a recursive read-only mount must be read-only",
            ));
        }
        if mt.recursive_read_only && propagation != rt::Propagation::Private {
            return Err(invalid(
                &format!("config.mounts[{i}].recursive_read_only"),
                "a recursive read-only mount must have private propagation",
            ));
        }
        if mt.image.is_some() {
            return Err(invalid(
                &format!("config.mounts[{i}].image"),
                "image volumes are not supported by peapod",
            ));
        }
        mounts.push(rt::Mount {
            container_path: mt.container_path.clone(),
            host_path: mt.host_path.clone().into(),
            readonly: mt.readonly,
            propagation,
            recursive_readonly: mt.recursive_read_only,
            uid_mappings: id_maps(&mt.uid_mappings),
            gid_mappings: id_maps(&mt.gid_mappings),
        });
    }
    let mut envs = Vec::new();
    for (i, kv) in c.envs.iter().enumerate() {
        let value = String::from_utf8(kv.value.clone()).map_err(|_| {
            invalid(
                &format!("config.envs[{i}].value"),
                format!("{:?} is not UTF-8", kv.key),
            )
        })?;
        envs.push((kv.key.clone(), value));
    }
    let linux = c.linux.clone().unwrap_or_default();
    let res = linux.resources.unwrap_or_default();
    let sc = linux.security_context.unwrap_or_default();
    #[allow(deprecated)]
    let (seccomp_path, apparmor_name) =
        (sc.seccomp_profile_path.clone(), sc.apparmor_profile.clone());
    let supplemental_groups_policy = match sc.supplemental_groups_policy() {
        pb::SupplementalGroupsPolicy::Merge => rt::SupplementalGroupsPolicy::Merge,
        pb::SupplementalGroupsPolicy::Strict => rt::SupplementalGroupsPolicy::Strict,
    };
    let caps = sc.capabilities.unwrap_or_default();
    let ns = sc.namespace_options.unwrap_or_default();
    Ok(rt::ContainerConfig {
        metadata: rt::ContainerMetadata {
            name: m.name.clone(),
            attempt: m.attempt,
        },
        image,
        command: c.command.clone(),
        args: c.args.clone(),
        working_dir: c.working_dir.clone(),
        envs,
        mounts,
        labels: map(&c.labels),
        annotations: map(&c.annotations),
        log_path: c.log_path.clone(),
        resources: resources(&res),
        security: rt::SecurityContext {
            privileged: sc.privileged,
            add_capabilities: caps.add_capabilities,
            drop_capabilities: caps.drop_capabilities,
            run_as_user: sc.run_as_user.map(|v| v.value),
            run_as_username: Some(sc.run_as_username).filter(|u| !u.is_empty()),
            run_as_group: sc.run_as_group.map(|v| v.value),
            supplemental_groups: sc.supplemental_groups,
            supplemental_groups_policy,
            readonly_rootfs: sc.readonly_rootfs,
            no_new_privs: sc.no_new_privs,
            pid_namespace: mode(
                "config.linux.security_context.namespace_options.pid",
                ns.pid,
            )?,
            // The kubelet always sends both lists; none given means the runtime's defaults.
            masked_paths: Some(sc.masked_paths).filter(|p| !p.is_empty()),
            readonly_paths: Some(sc.readonly_paths).filter(|p| !p.is_empty()),
            seccomp: seccomp(
                "config.linux.security_context.seccomp",
                sc.seccomp.as_ref(),
                &seccomp_path,
            )?,
            apparmor: apparmor(
                "config.linux.security_context.apparmor",
                sc.apparmor.as_ref(),
                &apparmor_name,
            )?,
        },
        stop_signal: signal_name(c.stop_signal),
        tty: c.tty,
        stdin: c.stdin,
        stdin_once: c.stdin_once,
        devices: c
            .devices
            .iter()
            .map(|d| peapod_runtime::DeviceSpec {
                host_path: d.host_path.clone().into(),
                container_path: d.container_path.clone(),
                permissions: d.permissions.clone(),
            })
            .collect(),
    })
}

/// The limits of CRI resources; zero values are not limits.
pub fn resources(res: &pb::LinuxContainerResources) -> rt::Resources {
    // The runtime's CPU quota is per 100 ms period.
    let cpu_quota = (res.cpu_quota > 0).then(|| {
        let period = if res.cpu_period > 0 {
            res.cpu_period
        } else {
            100_000
        };
        res.cpu_quota * 100_000 / period
    });
    rt::Resources {
        memory_limit_in_bytes: (res.memory_limit_in_bytes > 0).then_some(res.memory_limit_in_bytes),
        cpu_quota,
        cpu_shares: (res.cpu_shares > 0).then_some(res.cpu_shares as u64),
        pids_limit: None,
        hugepage_limits: res
            .hugepage_limits
            .iter()
            .map(|h| rt::HugepageLimit {
                page_size: h.page_size.clone(),
                limit: h.limit,
            })
            .collect(),
    }
}

/// A seccomp choice from the `seccomp` field, or from the deprecated profile path
/// (`runtime/default`, `unconfined`, `localhost/PATH`) when it is not set; neither is
/// unconfined.
pub fn seccomp(
    field: &str,
    profile: Option<&pb::SecurityProfile>,
    path: &str,
) -> Result<rt::Seccomp, Status> {
    use pb::security_profile::ProfileType;
    if let Some(p) = profile {
        return match ProfileType::try_from(p.profile_type) {
            Ok(ProfileType::RuntimeDefault) => Ok(rt::Seccomp::RuntimeDefault),
            Ok(ProfileType::Unconfined) => Ok(rt::Seccomp::Unconfined),
            Ok(ProfileType::Localhost) if p.localhost_ref.starts_with('/') => {
                Ok(rt::Seccomp::Localhost(p.localhost_ref.clone().into()))
            }
            Ok(ProfileType::Localhost) => Err(invalid(
                &format!("{field}.localhost_ref"),
                format!("{:?} is not an absolute path", p.localhost_ref),
            )),
            Err(_) => Err(invalid(
                &format!("{field}.profile_type"),
                format!("unknown profile type {}", p.profile_type),
            )),
        };
    }
    match path {
        "" | "unconfined" => Ok(rt::Seccomp::Unconfined),
        "runtime/default" | "docker/default" => Ok(rt::Seccomp::RuntimeDefault),
        _ => match path.strip_prefix("localhost/") {
            Some(p) if p.starts_with('/') => Ok(rt::Seccomp::Localhost(p.into())),
            _ => Err(invalid(
                field,
                format!("unknown seccomp profile path {path:?}"),
            )),
        },
    }
}

/// An AppArmor choice from the `apparmor` field, or from the deprecated profile name.
pub fn apparmor(
    field: &str,
    profile: Option<&pb::SecurityProfile>,
    name: &str,
) -> Result<rt::AppArmor, Status> {
    use pb::security_profile::ProfileType;
    if let Some(p) = profile {
        return match ProfileType::try_from(p.profile_type) {
            Ok(ProfileType::RuntimeDefault) => Ok(rt::AppArmor::RuntimeDefault),
            Ok(ProfileType::Unconfined) => Ok(rt::AppArmor::Unconfined),
            Ok(ProfileType::Localhost) => Ok(rt::AppArmor::Localhost(p.localhost_ref.clone())),
            Err(_) => Err(invalid(
                &format!("{field}.profile_type"),
                format!("unknown profile type {}", p.profile_type),
            )),
        };
    }
    match name {
        "" | "unconfined" => Ok(rt::AppArmor::Unconfined),
        "runtime/default" => Ok(rt::AppArmor::RuntimeDefault),
        _ => match name.strip_prefix("localhost/") {
            Some(p) => Ok(rt::AppArmor::Localhost(p.to_string())),
            None => Err(invalid(field, format!("unknown AppArmor profile {name:?}"))),
        },
    }
}

fn container_metadata(m: &rt::ContainerMetadata) -> pb::ContainerMetadata {
    pb::ContainerMetadata {
        name: m.name.clone(),
        attempt: m.attempt,
    }
}

/// The runtime's container status → `ContainerStatus`; `image_id` is the image's ID.
pub fn container_status(s: &rt::ContainerStatus, image_id: &str) -> pb::ContainerStatus {
    pb::ContainerStatus {
        id: s.id.clone(),
        metadata: Some(container_metadata(&s.metadata)),
        state: container_state(s.state),
        created_at: nanos(Some(&s.created_at)),
        started_at: nanos(s.started_at.as_deref()),
        finished_at: nanos(s.finished_at.as_deref()),
        exit_code: s.exit_code,
        image: Some(pb::ImageSpec {
            image: s.image.clone(),
            ..Default::default()
        }),
        image_ref: s.image_ref.clone(),
        reason: s.reason.clone(),
        message: s.message.clone(),
        labels: hash(&s.labels),
        annotations: hash(&s.annotations),
        mounts: s
            .mounts
            .iter()
            .map(|m| pb::Mount {
                container_path: m.container_path.clone(),
                host_path: m.host_path.display().to_string(),
                readonly: m.readonly,
                propagation: match m.propagation {
                    rt::Propagation::Private => pb::MountPropagation::PropagationPrivate,
                    rt::Propagation::HostToContainer => {
                        pb::MountPropagation::PropagationHostToContainer
                    }
                    rt::Propagation::Bidirectional => {
                        pb::MountPropagation::PropagationBidirectional
                    }
                } as i32,
                recursive_read_only: m.recursive_readonly,
                ..Default::default()
            })
            .collect(),
        log_path: s.log_path.display().to_string(),
        image_id: image_id.to_string(),
        user: s.user.as_ref().map(|u| pb::ContainerUser {
            linux: Some(pb::LinuxContainerUser {
                uid: u.uid.into(),
                gid: u.gid.into(),
                supplemental_groups: u.supplemental_groups.iter().map(|g| (*g).into()).collect(),
            }),
        }),
        resources: s.resources.as_ref().map(|r| pb::ContainerResources {
            linux: Some(pb::LinuxContainerResources {
                cpu_period: if r.cpu_quota.is_some() { 100_000 } else { 0 },
                cpu_quota: r.cpu_quota.unwrap_or(0),
                cpu_shares: r.cpu_shares.unwrap_or(0) as i64,
                memory_limit_in_bytes: r.memory_limit_in_bytes.unwrap_or(0),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The runtime's container status → `Container` (a list entry).
pub fn container(s: &rt::ContainerStatus, image_id: &str) -> pb::Container {
    pb::Container {
        id: s.id.clone(),
        pod_sandbox_id: s.sandbox_id.clone(),
        metadata: Some(container_metadata(&s.metadata)),
        image: Some(pb::ImageSpec {
            image: s.image.clone(),
            ..Default::default()
        }),
        image_ref: s.image_ref.clone(),
        state: container_state(s.state),
        created_at: nanos(Some(&s.created_at)),
        labels: hash(&s.labels),
        annotations: hash(&s.annotations),
        image_id: image_id.to_string(),
    }
}

/// The runtime's image → `Image`.
pub fn image(i: &rt::ImageInfo) -> pb::Image {
    pb::Image {
        id: i.id.clone(),
        repo_tags: i.repo_tags.clone(),
        repo_digests: i.repo_digests.clone(),
        size: i.size,
        uid: i.uid.map(|value| pb::Int64Value { value }),
        username: i.username.clone(),
        spec: Some(pb::ImageSpec {
            image: i.id.clone(),
            ..Default::default()
        }),
        pinned: false,
    }
}

/// `AuthConfig` → the runtime's.
pub fn auth(a: &pb::AuthConfig) -> rt::AuthConfig {
    rt::AuthConfig {
        username: a.username.clone(),
        password: a.password.clone(),
        auth: a.auth.clone(),
        server_address: a.server_address.clone(),
        identity_token: a.identity_token.clone(),
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;

/// `ContainerStatsFilter` → the runtime's container filter.
pub fn container_stats_filter(f: Option<&pb::ContainerStatsFilter>) -> rt::ContainerFilter {
    let Some(f) = f else {
        return rt::ContainerFilter::default();
    };
    rt::ContainerFilter {
        id: Some(f.id.clone()).filter(|s| !s.is_empty()),
        state: None,
        pod_sandbox_id: Some(f.pod_sandbox_id.clone()).filter(|s| !s.is_empty()),
        label_selector: map(&f.label_selector),
    }
}

/// `PodSandboxStatsFilter` → the runtime's sandbox filter.
pub fn sandbox_stats_filter(f: Option<&pb::PodSandboxStatsFilter>) -> rt::SandboxFilter {
    let Some(f) = f else {
        return rt::SandboxFilter::default();
    };
    rt::SandboxFilter {
        id: Some(f.id.clone()).filter(|s| !s.is_empty()),
        state: None,
        label_selector: map(&f.label_selector),
    }
}

fn u64v(v: u64) -> Option<pb::UInt64Value> {
    Some(pb::UInt64Value { value: v })
}

fn cpu(at: i64, c: Option<&rt::CpuStats>) -> Option<pb::CpuUsage> {
    let c = c?;
    Some(pb::CpuUsage {
        timestamp: at,
        usage_core_nano_seconds: u64v(c.usage_core_nano_seconds),
        usage_nano_cores: c.usage_nano_cores.and_then(u64v),
        psi: None,
    })
}

fn memory(at: i64, m: Option<&rt::MemoryStats>) -> Option<pb::MemoryUsage> {
    let m = m?;
    Some(pb::MemoryUsage {
        timestamp: at,
        working_set_bytes: u64v(m.working_set),
        available_bytes: m.limit.and_then(|l| u64v(l.saturating_sub(m.working_set))),
        usage_bytes: u64v(m.usage),
        rss_bytes: u64v(m.rss),
        page_faults: u64v(m.page_faults),
        major_page_faults: u64v(m.major_page_faults),
        psi: None,
    })
}

/// A container's use, as the CRI reports it.
pub fn container_stats(s: &rt::ContainerStats) -> pb::ContainerStats {
    let at = s.timestamp_ns;
    pb::ContainerStats {
        attributes: Some(pb::ContainerAttributes {
            id: s.id.clone(),
            metadata: Some(container_metadata(&s.metadata)),
            labels: hash(&s.labels),
            annotations: hash(&s.annotations),
        }),
        cpu: cpu(at, s.cpu.as_ref()),
        memory: memory(at, s.memory.as_ref()),
        writable_layer: s.writable_layer.as_ref().map(|w| pb::FilesystemUsage {
            timestamp: at,
            fs_id: Some(pb::FilesystemIdentifier {
                mountpoint: w.mountpoint.clone(),
            }),
            used_bytes: u64v(w.used_bytes),
            inodes_used: u64v(w.inodes_used),
        }),
        swap: None,
        io: None,
    }
}

/// A sandbox's use, as the CRI reports it.
pub fn sandbox_stats(s: &rt::SandboxStats) -> pb::PodSandboxStats {
    let at = s.timestamp_ns;
    let iface = |i: &rt::InterfaceStats| pb::NetworkInterfaceUsage {
        name: i.name.clone(),
        rx_bytes: u64v(i.rx_bytes),
        rx_errors: u64v(i.rx_errors),
        tx_bytes: u64v(i.tx_bytes),
        tx_errors: u64v(i.tx_errors),
    };
    // The pod's interface is eth0 when it has one.
    let default = s
        .interfaces
        .iter()
        .find(|i| i.name == "eth0")
        .or(s.interfaces.first());
    let network = default.map(|d| pb::NetworkUsage {
        timestamp: at,
        default_interface: Some(iface(d)),
        interfaces: s.interfaces.iter().map(iface).collect(),
    });
    pb::PodSandboxStats {
        attributes: Some(pb::PodSandboxAttributes {
            id: s.id.clone(),
            metadata: Some(sandbox_metadata(&s.metadata)),
            labels: hash(&s.labels),
            annotations: hash(&s.annotations),
        }),
        linux: Some(pb::LinuxPodSandboxStats {
            cpu: cpu(at, s.cpu.as_ref()),
            memory: memory(at, s.memory.as_ref()),
            network,
            process: Some(pb::ProcessUsage {
                timestamp: at,
                process_count: u64v(s.process_count),
            }),
            containers: s.containers.iter().map(container_stats).collect(),
            ..Default::default()
        }),
        windows: None,
    }
}
