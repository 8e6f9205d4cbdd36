//! The runtime's request and status types, shaped after the CRI's (`api.proto`) so that the
//! CRI server maps onto them field for field.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Identifies a sandbox to its creator (CRI `PodSandboxMetadata`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxMetadata {
    /// Pod name.
    pub name: String,
    /// Pod UID.
    pub uid: String,
    /// Pod namespace.
    pub namespace: String,
    /// How many sandboxes this pod had before this one.
    pub attempt: u32,
}

/// Whose namespace a pod or container uses (CRI `NamespaceMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NamespaceMode {
    /// The pod's (held by the infra process).
    #[default]
    Pod,
    /// The container's own.
    Container,
    /// The host's.
    Node,
}

/// Namespace choices (CRI `NamespaceOption`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceOptions {
    /// Network: `Pod` or `Node`.
    pub network: NamespaceMode,
    /// PID: `Pod` (shared), `Container` (own) or `Node`.
    pub pid: NamespaceMode,
    /// IPC: `Pod` or `Node`.
    pub ipc: NamespaceMode,
}

/// DNS settings written to the sandbox's resolv.conf (CRI `DNSConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    /// `nameserver` lines.
    pub servers: Vec<String>,
    /// The `search` line.
    pub searches: Vec<String>,
    /// The `options` line.
    pub options: Vec<String>,
}

/// A port to publish on the host (CRI `PortMapping`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// Port in the pod.
    pub container_port: i32,
    /// Port on the host.
    pub host_port: i32,
    /// Host address to bind.
    pub host_ip: String,
}

/// What a sandbox is made from (CRI `PodSandboxConfig`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// Who the sandbox is for.
    pub metadata: SandboxMetadata,
    /// Host name inside the pod.
    pub hostname: String,
    /// Directory container log paths are relative to.
    pub log_directory: PathBuf,
    /// DNS settings.
    pub dns: DnsConfig,
    /// Ports to publish.
    pub port_mappings: Vec<PortMapping>,
    /// Labels, for filtering.
    pub labels: BTreeMap<String, String>,
    /// Annotations, opaque to the runtime.
    pub annotations: BTreeMap<String, String>,
    /// The pod's parent cgroup, e.g. `/peapod/kubepods/burstable/pod<uid>`.
    pub cgroup_parent: String,
    /// The pod's own limits (CRI `LinuxPodSandboxConfig.resources`): when given and the
    /// parent lies within the runtime's cgroup root, the parent is made with them.
    #[serde(default)]
    pub pod_resources: Option<Resources>,
    /// Namespace choices.
    pub namespaces: NamespaceOptions,
    /// Kernel parameters of the pod's namespaces (`net.*`, `kernel.shm*`, ...).
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// Whether its containers may be privileged.
    #[serde(default)]
    pub privileged: bool,
    /// The pod's own user namespace (CRI `UserNamespace` in mode `POD`); `None` is the
    /// node's (mode `NODE`).
    #[serde(default)]
    pub user_namespace: Option<UserNamespace>,
}

pub use peapod_oci::IdMap;

/// A pod's user namespace: how its user and group IDs map to the host's. Exactly one
/// range each, starting at ID 0 inside, as containerd accepts them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserNamespace {
    /// User IDs.
    pub uids: Vec<IdMap>,
    /// Group IDs.
    pub gids: Vec<IdMap>,
}

impl UserNamespace {
    /// Checks the maps a sandbox can be made with.
    pub fn check(&self) -> Result<(), String> {
        for (what, maps) in [("uid", &self.uids), ("gid", &self.gids)] {
            match maps.as_slice() {
                [] => return Err(format!("user namespace: no {what} mapping given")),
                [m] if m.container_id != 0 => {
                    return Err(format!(
                        "user namespace: {what} 0 must be mapped (the mapping starts at {})",
                        m.container_id
                    ));
                }
                [m] if m.length == 0 => {
                    return Err(format!("user namespace: the {what} mapping is empty"));
                }
                [m] if u64::from(m.host_id) + u64::from(m.length) > 1 << 32 => {
                    return Err(format!(
                        "user namespace: the {what} mapping goes past the last ID"
                    ));
                }
                [_] => {}
                _ => {
                    return Err(format!(
                        "user namespace: exactly one {what} mapping is supported, {} given",
                        maps.len()
                    ));
                }
            }
        }
        Ok(())
    }

    /// The host user and group that root inside the namespace is.
    pub fn root(&self) -> (u32, u32) {
        let first = |m: &[IdMap]| m.first().map_or(0, |m| m.host_id);
        (first(&self.uids), first(&self.gids))
    }
}

/// Sandbox state (CRI `PodSandboxState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SandboxState {
    /// The infra process runs and the namespaces exist.
    Ready,
    /// Stopped, or its infra process died.
    NotReady,
}

/// A sandbox as the runtime reports it (CRI `PodSandboxStatus`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxStatus {
    /// Sandbox ID.
    pub id: String,
    /// Who it is for.
    pub metadata: SandboxMetadata,
    /// Ready or not.
    pub state: SandboxState,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// The pod's IP address, when it has its own network.
    pub ip: Option<String>,
    /// Its other addresses (another family), from the network plugin's result.
    #[serde(default)]
    pub additional_ips: Vec<String>,
    /// PID of the infra process (0 once gone).
    pub infra_pid: i32,
    /// The pinned network namespace, when the pod has its own.
    pub netns: Option<PathBuf>,
    /// Namespace choices.
    pub namespaces: NamespaceOptions,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Identifies a container within its sandbox (CRI `ContainerMetadata`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMetadata {
    /// Container name.
    pub name: String,
    /// How many containers of this name the sandbox had before this one.
    pub attempt: u32,
}

/// A mount into a container (CRI `Mount`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Path in the container.
    pub container_path: String,
    /// Path on the host.
    pub host_path: PathBuf,
    /// Read-only.
    pub readonly: bool,
    /// How mounts below it propagate.
    #[serde(default)]
    pub propagation: peapod_oci::Propagation,
    /// Mounts below it are read-only too (with `readonly` and private propagation only).
    #[serde(default)]
    pub recursive_readonly: bool,
    /// ID-map the mount as the pod's user namespace maps IDs (CRI `uidMappings`); the maps
    /// must be the sandbox's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<IdMap>,
    /// Group IDs likewise (CRI `gidMappings`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<IdMap>,
}

/// Security settings (a subset of CRI `LinuxContainerSecurityContext`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityContext {
    /// All capabilities and devices.
    pub privileged: bool,
    /// Capabilities to add.
    pub add_capabilities: Vec<String>,
    /// Capabilities to drop.
    pub drop_capabilities: Vec<String>,
    /// UID to run as (overrides the image's `User`).
    pub run_as_user: Option<i64>,
    /// User name to run as, looked up in the container's `/etc/passwd` (when no UID is
    /// given).
    #[serde(default)]
    pub run_as_username: Option<String>,
    /// GID to run as.
    pub run_as_group: Option<i64>,
    /// Supplementary groups.
    pub supplemental_groups: Vec<i64>,
    /// Whether the image's `/etc/group` memberships of the user are added to them.
    #[serde(default)]
    pub supplemental_groups_policy: SupplementalGroupsPolicy,
    /// Read-only root file system.
    pub readonly_rootfs: bool,
    /// Set `no_new_privs`.
    pub no_new_privs: bool,
    /// PID namespace choice for this container.
    pub pid_namespace: NamespaceMode,
    /// Paths hidden from it; the runtime's default set when `None`.
    #[serde(default)]
    pub masked_paths: Option<Vec<String>>,
    /// Paths it sees read-only; the runtime's default set when `None`.
    #[serde(default)]
    pub readonly_paths: Option<Vec<String>>,
    /// Its seccomp filter (none when privileged).
    #[serde(default)]
    pub seccomp: peapod_oci::Seccomp,
    /// Its AppArmor profile.
    #[serde(default)]
    pub apparmor: AppArmor,
}

/// How a container's supplementary groups are made (CRI `SupplementalGroupsPolicy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SupplementalGroupsPolicy {
    /// The primary group, the user's groups in the image's `/etc/group`, and those asked for.
    #[default]
    Merge,
    /// The primary group and those asked for only.
    Strict,
}

/// The identity a container's process runs with (CRI `LinuxContainerUser`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerUser {
    /// User ID.
    pub uid: u32,
    /// Primary group ID.
    pub gid: u32,
    /// Supplementary group IDs.
    pub supplemental_groups: Vec<u32>,
}

/// An AppArmor profile choice. peapod does not load AppArmor profiles: on a host without
/// AppArmor, `RuntimeDefault` means nothing and `Localhost` is refused; on a host with it,
/// anything but `Unconfined` is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppArmor {
    /// No profile.
    #[default]
    Unconfined,
    /// The runtime's default profile.
    RuntimeDefault,
    /// A profile loaded on the host, by name.
    Localhost(String),
}

impl AppArmor {
    /// Why this profile cannot be applied on a host where AppArmor is `enabled` or not.
    pub fn refusal(&self, enabled: bool) -> Option<String> {
        match (self, enabled) {
            (AppArmor::Unconfined, _) | (AppArmor::RuntimeDefault, false) => None,
            (AppArmor::Localhost(name), false) => Some(format!(
                "cannot apply AppArmor profile {name:?}: AppArmor is not enabled on the host"
            )),
            (_, true) => {
                Some("AppArmor profiles are not supported by peapod (only Unconfined)".to_string())
            }
        }
    }

    /// Whether the host's kernel enforces AppArmor.
    pub fn host_enabled() -> bool {
        std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.trim() == "Y")
    }
}

/// Resource limits (a subset of CRI `LinuxContainerResources`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Memory limit in bytes.
    pub memory_limit_in_bytes: Option<i64>,
    /// CPU quota per 100 ms period, in microseconds.
    pub cpu_quota: Option<i64>,
    /// CPU shares.
    pub cpu_shares: Option<u64>,
    /// Most processes at once (a pod's `podPidsLimit`); `None` leaves it as it is.
    #[serde(default)]
    pub pids_limit: Option<i64>,
    /// Hugetlb limits by page size (CRI `hugepage_limits`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hugepage_limits: Vec<HugepageLimit>,
}

/// The most memory of one hugepage size a container may use (CRI `HugepageLimit`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HugepageLimit {
    /// The page size as the CRI names it: `2MB`, `1GB`.
    pub page_size: String,
    /// Bytes.
    pub limit: u64,
}

/// What a container is made from (CRI `ContainerConfig`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// Name and attempt.
    pub metadata: ContainerMetadata,
    /// Image reference or ID.
    pub image: String,
    /// Replaces the image's entrypoint when not empty.
    pub command: Vec<String>,
    /// Replaces the image's cmd when not empty.
    pub args: Vec<String>,
    /// Working directory; the image's when empty.
    pub working_dir: String,
    /// Environment, on top of the image's.
    pub envs: Vec<(String, String)>,
    /// Mounts.
    pub mounts: Vec<Mount>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Log file, relative to the sandbox's log directory.
    pub log_path: String,
    /// Resource limits.
    pub resources: Resources,
    /// Security settings.
    pub security: SecurityContext,
    /// Signal that stops the container (e.g. `SIGQUIT`); the image's, then SIGTERM, otherwise.
    pub stop_signal: Option<String>,
    /// Give it a terminal (its output is all stdout then).
    #[serde(default)]
    pub tty: bool,
    /// Keep its standard input open for attached writers.
    #[serde(default)]
    pub stdin: bool,
    /// Close its standard input once the first attached writer is done.
    #[serde(default)]
    pub stdin_once: bool,
    /// Host devices it gets.
    #[serde(default)]
    pub devices: Vec<peapod_oci::DeviceSpec>,
}

/// Container state (CRI `ContainerState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Its process runs.
    Running,
    /// Its process exited.
    Exited,
    /// Its state could not be determined.
    Unknown,
}

/// A container as the runtime reports it (CRI `ContainerStatus`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerStatus {
    /// Container ID.
    pub id: String,
    /// Its sandbox.
    pub sandbox_id: String,
    /// Name and attempt.
    pub metadata: ContainerMetadata,
    /// State.
    pub state: ContainerState,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Start time (RFC 3339), once started.
    pub started_at: Option<String>,
    /// Exit time (RFC 3339), once exited.
    pub finished_at: Option<String>,
    /// Exit code (128 + signal for a signalled process).
    pub exit_code: i32,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// Why it ended, e.g. `Completed`, `Error`, `OOMKilled`, `StartError`.
    pub reason: String,
    /// More about why.
    pub message: String,
    /// The image as asked for.
    pub image: String,
    /// The image's repository digest.
    pub image_ref: String,
    /// Absolute log path.
    pub log_path: PathBuf,
    /// PID of its process while it runs.
    pub pid: i32,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Mounts.
    pub mounts: Vec<Mount>,
    /// The identity its process runs with.
    #[serde(default)]
    pub user: Option<ContainerUser>,
    /// The resources it runs with now (CRI `ContainerStatus.resources`).
    #[serde(default)]
    pub resources: Option<Resources>,
}

/// A change in a container's life (CRI `ContainerEventResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// Container ID (for the infra process, the sandbox ID).
    pub id: String,
    /// Its sandbox.
    pub sandbox_id: String,
    /// What happened.
    pub kind: ContainerEventKind,
}

/// Kinds of [`ContainerEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerEventKind {
    /// Created.
    Created,
    /// Started.
    Started,
    /// Its process exited (for a sandbox: its infra process).
    Stopped,
    /// Removed.
    Deleted,
}

/// What `exec_sync` collected (CRI `ExecSyncResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSyncResult {
    /// Exit code; 128 + the signal for a killed process.
    pub exit_code: i32,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

/// What the runtime is (CRI `VersionResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The CRI version, `v1`.
    pub runtime_api_version: String,
    /// `peapod`.
    pub runtime_name: String,
    /// peapod's version.
    pub runtime_version: String,
}

/// Which sandboxes to list (CRI `PodSandboxFilter`); empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxFilter {
    /// An ID or a unique prefix of one.
    pub id: Option<String>,
    /// Only sandboxes in this state.
    pub state: Option<SandboxState>,
    /// Only sandboxes with all these labels.
    pub label_selector: BTreeMap<String, String>,
}

impl SandboxFilter {
    /// The sandboxes of the pod with this UID.
    pub fn pod(uid: &str) -> SandboxFilter {
        SandboxFilter {
            label_selector: [(POD_UID_LABEL.to_string(), uid.to_string())].into(),
            ..Default::default()
        }
    }

    /// Whether `s` passes the filter.
    pub fn matches(&self, s: &SandboxStatus) -> bool {
        self.id
            .as_ref()
            .is_none_or(|id| s.id.starts_with(id.as_str()))
            && self.state.is_none_or(|st| st == s.state)
            && labels_match(&self.label_selector, &s.labels)
    }
}

/// Which containers to list (CRI `ContainerFilter`); empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerFilter {
    /// An ID or a unique prefix of one.
    pub id: Option<String>,
    /// Only containers in this state.
    pub state: Option<ContainerState>,
    /// Only the containers of this sandbox.
    pub pod_sandbox_id: Option<String>,
    /// Only containers with all these labels.
    pub label_selector: BTreeMap<String, String>,
}

impl ContainerFilter {
    /// The containers of sandbox `id`.
    pub fn sandbox(id: &str) -> ContainerFilter {
        ContainerFilter {
            pod_sandbox_id: Some(id.to_string()),
            ..Default::default()
        }
    }

    /// Whether `c` passes the filter.
    pub fn matches(&self, c: &ContainerStatus) -> bool {
        self.id
            .as_ref()
            .is_none_or(|id| c.id.starts_with(id.as_str()))
            && self.state.is_none_or(|st| st == c.state)
            && self
                .pod_sandbox_id
                .as_ref()
                .is_none_or(|sb| c.sandbox_id == *sb)
            && labels_match(&self.label_selector, &c.labels)
    }
}

fn labels_match(want: &BTreeMap<String, String>, have: &BTreeMap<String, String>) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

/// The label the pod controller puts on a pod's sandboxes and containers: its UID.
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";

/// Registry credentials for one pull (CRI `AuthConfig`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// `base64(user:password)`, when the user name is not given on its own.
    pub auth: String,
    /// The registry the credentials are for; the image's registry when empty.
    pub server_address: String,
    /// An identity token, used as the password.
    pub identity_token: String,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthConfig({:?}, <redacted>)", self.username)
    }
}

/// Whether the runtime and its network can run pods (CRI `RuntimeStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConditions {
    /// The runtime can run sandboxes and containers.
    pub runtime_ready: bool,
    /// Pods can get a network.
    pub network_ready: bool,
    /// Why not, when the network is not ready (`NetworkPluginNotReady`).
    pub network_reason: String,
    /// More about why.
    pub network_message: String,
}

/// How much of its file system the image store takes (CRI `FilesystemUsage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsUsage {
    /// The store's directory.
    pub mountpoint: String,
    /// Bytes its files take.
    pub used_bytes: u64,
    /// Inodes they take.
    pub inodes_used: u64,
}

/// What a pull gave (CRI `PullImageResponse`, with the image's size for events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The image's ID (its config digest, `sha256:…`), which names it from then on.
    pub id: String,
    /// The image's reference by digest, `repo@sha256:…`.
    pub image_ref: String,
    /// Its size in bytes.
    pub size: u64,
}

/// An image in the store (CRI `Image`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The image ID (config digest).
    pub id: String,
    /// Its names.
    pub repo_tags: Vec<String>,
    /// Its references by digest.
    pub repo_digests: Vec<String>,
    /// Its size in bytes.
    pub size: u64,
    /// The UID of its `USER` when that is a number; `None` when it sets no user or a name.
    pub uid: Option<i64>,
    /// Its `USER` when that is a name.
    pub username: String,
}

#[cfg(test)]
mod apparmor_tests {
    use super::AppArmor;

    #[test]
    fn what_can_be_applied_without_loading_profiles() {
        assert_eq!(AppArmor::Unconfined.refusal(true), None);
        assert_eq!(AppArmor::RuntimeDefault.refusal(false), None);
        assert!(AppArmor::RuntimeDefault.refusal(true).is_some());
        let local = AppArmor::Localhost("k8s-x".into()).refusal(false).unwrap();
        assert!(
            local.contains("AppArmor is not enabled on the host"),
            "{local}"
        );
    }
}
