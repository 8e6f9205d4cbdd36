//! From a [`ContainerSpec`] to an OCI runtime `config.json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount, MountBuilder,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::{Error, Result};

/// A namespace kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NsKind {
    /// Network.
    Net,
    /// System V IPC and POSIX message queues.
    Ipc,
    /// Host and domain name.
    Uts,
    /// Process IDs.
    Pid,
    /// Mounts.
    Mnt,
    /// Cgroup root.
    Cgroup,
    /// User and group IDs, and the capabilities over the other namespaces it owns.
    User,
}

impl NsKind {
    /// Every kind, in the order `describe` shows them.
    pub const ALL: [NsKind; 6] = [
        NsKind::Net,
        NsKind::Ipc,
        NsKind::Uts,
        NsKind::Pid,
        NsKind::Mnt,
        NsKind::Cgroup,
    ];

    /// The name under `/proc/PID/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            NsKind::Net => "net",
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
            NsKind::Pid => "pid",
            NsKind::Mnt => "mnt",
            NsKind::Cgroup => "cgroup",
            NsKind::User => "user",
        }
    }

    fn oci(self) -> LinuxNamespaceType {
        match self {
            NsKind::Net => LinuxNamespaceType::Network,
            NsKind::Ipc => LinuxNamespaceType::Ipc,
            NsKind::Uts => LinuxNamespaceType::Uts,
            NsKind::Pid => LinuxNamespaceType::Pid,
            NsKind::Mnt => LinuxNamespaceType::Mount,
            NsKind::Cgroup => LinuxNamespaceType::Cgroup,
            NsKind::User => LinuxNamespaceType::User,
        }
    }
}

/// A namespace for the container: a new one (`path: None`) or an existing one to join.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NamespaceSpec {
    /// Which namespace.
    pub kind: NsKind,
    /// Join the namespace at this path instead of creating one.
    pub path: Option<PathBuf>,
}

/// A mount into the container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MountSpec {
    /// A bind mount of a host path.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Path in the container.
        destination: String,
        /// Mounted read-only.
        readonly: bool,
        /// How mounts below it propagate.
        #[serde(default)]
        propagation: Propagation,
        /// Mounts below it are read-only too (needs `readonly`).
        #[serde(default)]
        recursive_readonly: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// Path in the container.
        destination: String,
        /// Size limit in bytes.
        size: Option<u64>,
    },
}

/// How mounts made under a bind mount propagate between the host and the container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Propagation {
    /// Neither way (`rprivate`).
    #[default]
    Private,
    /// From the host into the container (`rslave`); the host side must be shared or a slave.
    HostToContainer,
    /// Both ways (`rshared`); the host side must be shared.
    Bidirectional,
}

impl Propagation {
    /// The OCI mount option.
    pub fn option(self) -> &'static str {
        match self {
            Propagation::Private => "rprivate",
            Propagation::HostToContainer => "rslave",
            Propagation::Bidirectional => "rshared",
        }
    }
}

/// Everything the executor needs to know about one container process.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ContainerSpec {
    /// Root file system (already assembled, e.g. an overlay mount).
    pub rootfs: PathBuf,
    /// Mount the root file system read-only.
    pub readonly_rootfs: bool,
    /// argv.
    pub args: Vec<String>,
    /// Environment, `KEY=value`.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// User ID.
    pub uid: u32,
    /// Group ID.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// Host name, set only when the UTS namespace is new.
    pub hostname: Option<String>,
    /// Give the process a terminal (its master end goes to the creator).
    pub terminal: bool,
    /// Namespaces; any kind not listed is the host's.
    pub namespaces: Vec<NamespaceSpec>,
    /// Mounts beyond the standard /proc, /dev, /sys set.
    pub mounts: Vec<MountSpec>,
    /// Cgroup path, relative to the cgroup roots.
    pub cgroups_path: String,
    /// Capabilities to add to the default set (`CAP_` prefix optional).
    pub cap_add: Vec<String>,
    /// Capabilities to drop from the default set, or `ALL`.
    pub cap_drop: Vec<String>,
    /// All capabilities and devices.
    pub privileged: bool,
    /// Set `no_new_privs`.
    pub no_new_privileges: bool,
    /// Memory limit in bytes.
    pub memory_limit: Option<i64>,
    /// CPU quota in microseconds per 100 ms period.
    pub cpu_quota: Option<i64>,
    /// CPU shares.
    pub cpu_shares: Option<u64>,
    /// Annotations recorded in the bundle.
    pub annotations: HashMap<String, String>,
    /// Paths hidden from the container; the default set when `None` (none when privileged).
    pub masked_paths: Option<Vec<String>>,
    /// Paths made read-only; the default set when `None` (none when privileged).
    pub readonly_paths: Option<Vec<String>>,
    /// Kernel parameters of the container's namespaces (`net.*`, `kernel.shm*`, ...).
    pub sysctls: HashMap<String, String>,
    /// Capabilities the host lets this process grant (its bounding set, a bit per
    /// capability number); `None` reads it from `/proc/self/status`. Privileged containers
    /// and `ALL` get these.
    #[serde(skip)]
    pub host_capabilities: Option<u64>,
    /// The seccomp filter (none when privileged).
    #[serde(default)]
    pub seccomp: crate::seccomp::Seccomp,
    /// Hugetlb limits by CRI page size name (`2MB`) in bytes; applied where the host's
    /// container cgroups have the hugetlb controller.
    pub hugepage_limits: Vec<(String, u64)>,
    /// Host devices made available in the container.
    #[serde(default)]
    pub devices: Vec<DeviceSpec>,
}

/// A host device node given to a container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceSpec {
    /// The device node on the host.
    pub host_path: PathBuf,
    /// Where the container sees it.
    pub container_path: String,
    /// Cgroup access: some of `r`, `w`, `m`.
    pub permissions: String,
}

/// The paths containers do not see by default.
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// The paths containers see read-only by default.
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// This process's capability bounding set, a bit per capability number.
pub fn host_bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

/// The capabilities containers get by default (the Docker/containerd set).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

fn cap_name(c: &str) -> String {
    let c = c.to_ascii_uppercase();
    if c.starts_with("CAP_") {
        c
    } else {
        format!("CAP_{c}")
    }
}

fn capabilities(spec: &ContainerSpec) -> Result<Vec<Capability>> {
    let host = spec.host_capabilities.unwrap_or_else(host_bounding_set);
    let all_capabilities = || all_capabilities(host);
    let mut names: Vec<String> = if spec.privileged {
        all_capabilities()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    // As containerd: ALL first (add, then drop), then single names, drops winning.
    if !spec.privileged {
        let is_all = |c: &String| c.eq_ignore_ascii_case("all");
        if spec.cap_add.iter().any(is_all) {
            names = all_capabilities();
        }
        if spec.cap_drop.iter().any(is_all) {
            names.clear();
        }
        for a in spec.cap_add.iter().filter(|c| !is_all(c)) {
            if !names.contains(&cap_name(a)) {
                names.push(cap_name(a));
            }
        }
        let drop: Vec<String> = spec.cap_drop.iter().map(|c| cap_name(c)).collect();
        names.retain(|n| !drop.contains(n));
    }
    names
        .iter()
        .map(|n| {
            serde_json::from_value::<Capability>(serde_json::Value::String(n.clone()))
                .map_err(|_| Error::Spec(format!("unknown capability {n:?}")))
        })
        .collect()
}

/// Every capability in `bounding` (a bit per capability number) that the kernel defines:
/// what "all" can be, as the host may withhold some.
/// The names of the capabilities in `bounding` (a bit per capability number).
pub(crate) fn all_capabilities(bounding: u64) -> Vec<String> {
    use strum_like::ALL_CAPS;
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(n, _)| bounding & (1 << n) != 0)
        .map(|(_, s)| s.to_string())
        .collect()
}

mod strum_like {
    /// Every capability the kernel defines (up to CAP_CHECKPOINT_RESTORE).
    pub const ALL_CAPS: &[&str] = &[
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ];
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount> {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(|e| Error::Spec(e.to_string()))
}

/// The host's device nodes under `/dev` (not its pseudo-terminals, shared memory or
/// message queues), which privileged containers get.
fn host_devices() -> Vec<oci_spec::runtime::LinuxDevice> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from("/dev")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = e.path();
            let Ok(m) = path.symlink_metadata() else {
                continue;
            };
            let ft = m.file_type();
            if ft.is_dir() {
                let skip = [
                    "/dev/pts",
                    "/dev/shm",
                    "/dev/mqueue",
                    "/dev/.lxc",
                    "/dev/.udev",
                ];
                if !skip.iter().any(|s| path == Path::new(s)) {
                    stack.push(path);
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                oci_spec::runtime::LinuxDeviceType::C
            } else if ft.is_block_device() {
                oci_spec::runtime::LinuxDeviceType::B
            } else {
                continue;
            };
            // The container's own /dev/console and /dev/ptmx come from its terminal setup.
            if path == Path::new("/dev/console") || path == Path::new("/dev/ptmx") {
                continue;
            }
            if let Ok(d) = device_of(&path, &path, typ, &m) {
                out.push(d);
            }
        }
    }
    out.sort_by(|a, b| a.path().cmp(b.path()));
    out
}

fn device_of(
    host: &Path,
    container: &Path,
    typ: oci_spec::runtime::LinuxDeviceType,
    m: &std::fs::Metadata,
) -> Result<oci_spec::runtime::LinuxDevice> {
    use std::os::unix::fs::MetadataExt;
    let rdev = m.rdev();
    oci_spec::runtime::LinuxDeviceBuilder::default()
        .path(container.to_path_buf())
        .typ(typ)
        .major(nix::sys::stat::major(rdev) as i64)
        .minor(nix::sys::stat::minor(rdev) as i64)
        .file_mode(m.mode() & 0o7777)
        .uid(m.uid())
        .gid(m.gid())
        .build()
        .map_err(|e| Error::Spec(format!("device {}: {e}", host.display())))
}

/// The device node and cgroup rule of a device given to a container.
fn given_device(
    d: &DeviceSpec,
) -> Result<(
    oci_spec::runtime::LinuxDevice,
    oci_spec::runtime::LinuxDeviceCgroup,
)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::metadata(&d.host_path)
        .map_err(|e| Error::Spec(format!("device {}: {e}", d.host_path.display())))?;
    let ft = m.file_type();
    let typ = if ft.is_char_device() {
        oci_spec::runtime::LinuxDeviceType::C
    } else if ft.is_block_device() {
        oci_spec::runtime::LinuxDeviceType::B
    } else {
        return Err(Error::Spec(format!(
            "device {} is not a device node",
            d.host_path.display()
        )));
    };
    let perms = if d.permissions.is_empty() {
        "rwm"
    } else {
        d.permissions.as_str()
    };
    if !perms.chars().all(|c| "rwm".contains(c)) {
        return Err(Error::Spec(format!(
            "device {}: permissions {perms:?} are not some of \"rwm\"",
            d.host_path.display()
        )));
    }
    let node = device_of(&d.host_path, Path::new(&d.container_path), typ, &m)?;
    let rdev = m.rdev();
    let rule = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(typ)
        .major(nix::sys::stat::major(rdev) as i64)
        .minor(nix::sys::stat::minor(rdev) as i64)
        .access(perms)
        .build()
        .map_err(|e| Error::Spec(e.to_string()))?;
    Ok((node, rule))
}

/// Builds the OCI spec for `c`.
pub fn build(c: &ContainerSpec) -> Result<Spec> {
    let e = |e: oci_spec::OciSpecError| Error::Spec(e.to_string());
    let caps = capabilities(c)?;
    let seccomp = if c.privileged {
        None
    } else {
        let names: Vec<String> = caps
            .iter()
            .filter_map(|c| serde_json::to_value(c).ok()?.as_str().map(String::from))
            .collect();
        crate::seccomp::resolve(&c.seccomp, &names)?
    };
    let caps_set: std::collections::HashSet<Capability> = caps.into_iter().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps_set.clone())
        .effective(caps_set.clone())
        .permitted(caps_set.clone())
        .inheritable(std::collections::HashSet::new())
        .ambient(std::collections::HashSet::new())
        .build()
        .map_err(e)?;
    let mut user = UserBuilder::default().uid(c.uid).gid(c.gid);
    if !c.additional_gids.is_empty() {
        user = user.additional_gids(c.additional_gids.clone());
    }
    let mut process = ProcessBuilder::default()
        .terminal(c.terminal)
        .user(user.build().map_err(e)?)
        .args(c.args.clone())
        .env(c.env.clone())
        .cwd(if c.cwd.is_empty() {
            "/".to_string()
        } else {
            c.cwd.clone()
        })
        .capabilities(capabilities)
        .no_new_privileges(c.no_new_privileges)
        .rlimits(Vec::new())
        .build()
        .map_err(e)?;
    // Absent rather than false: libcontainer loads a seccomp filter while the process still
    // has CAP_SYS_ADMIN only when the field is absent.
    if !c.no_new_privileges {
        process.set_no_new_privileges(None);
    }

    let new_ns = |k: NsKind| c.namespaces.iter().any(|n| n.kind == k && n.path.is_none());
    let has_ns = |k: NsKind| c.namespaces.iter().any(|n| n.kind == k);
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
    ];
    // sysfs can only be mounted in a network namespace of our own making or joining;
    // with the host's network, bind the host's /sys read-only instead.
    // Privileged containers may write to it.
    let sys_mode = if c.privileged { "rw" } else { "ro" };
    if has_ns(NsKind::Net) {
        mounts.push(mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        )?);
    } else {
        mounts.push(mount(
            "/sys",
            "bind",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", sys_mode],
        )?);
    }
    if has_ns(NsKind::Cgroup) {
        mounts.push(mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?);
    }
    for m in &c.mounts {
        mounts.push(match m {
            MountSpec::Bind {
                source,
                destination,
                readonly,
                propagation,
                recursive_readonly,
            } => {
                let src = source.to_string_lossy();
                let mut opts = vec!["rbind", propagation.option()];
                if *readonly {
                    opts.push("ro");
                }
                if *recursive_readonly {
                    opts.push("rro");
                }
                mount(destination, "bind", &src, &opts)?
            }
            MountSpec::Tmpfs { destination, size } => {
                let size = size.map(|s| format!("size={s}"));
                let mut opts = vec!["nosuid", "nodev", "mode=1777"];
                if let Some(s) = &size {
                    opts.push(s);
                }
                mount(destination, "tmpfs", "tmpfs", &opts)?
            }
        });
    }

    let namespaces = c
        .namespaces
        .iter()
        .map(|n| {
            let mut b = LinuxNamespaceBuilder::default().typ(n.kind.oci());
            if let Some(p) = &n.path {
                b = b.path(p.clone());
            }
            b.build().map_err(e)
        })
        .collect::<Result<Vec<_>>>()?;

    let given = c
        .devices
        .iter()
        .map(given_device)
        .collect::<Result<Vec<_>>>()?;
    let mut resources = LinuxResourcesBuilder::default();
    if c.privileged {
        resources = resources.devices(vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .access("rwm")
                .build()
                .map_err(e)?,
        ]);
    } else {
        let mut rules = vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .access("rwm")
                .build()
                .map_err(e)?,
        ];
        rules.extend(given.iter().map(|(_, r)| r.clone()));
        resources = resources.devices(rules);
    }
    if let Some(limit) = c.memory_limit {
        resources = resources.memory(
            oci_spec::runtime::LinuxMemoryBuilder::default()
                .limit(limit)
                .build()
                .map_err(e)?,
        );
    }
    if !c.hugepage_limits.is_empty() && crate::cgroup::hugetlb_for_containers() {
        let limits = c
            .hugepage_limits
            .iter()
            .map(|(size, limit)| {
                oci_spec::runtime::LinuxHugepageLimitBuilder::default()
                    .page_size(size.clone())
                    .limit(*limit as i64)
                    .build()
                    .map_err(e)
            })
            .collect::<Result<Vec<_>>>()?;
        resources = resources.hugepage_limits(limits);
    }
    if c.cpu_quota.is_some() || c.cpu_shares.is_some() {
        let mut cpu = oci_spec::runtime::LinuxCpuBuilder::default();
        if let Some(q) = c.cpu_quota {
            cpu = cpu.quota(q).period(100_000u64);
        }
        if let Some(s) = c.cpu_shares {
            cpu = cpu.shares(s);
        }
        resources = resources.cpu(cpu.build().map_err(e)?);
    }
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build().map_err(e)?)
        .cgroups_path(PathBuf::from(&c.cgroups_path));
    // The root's propagation (recursive, in libcontainer's words) lets a shared or slave
    // bind mount carry mounts, as containerd sets it.
    let propagations = c.mounts.iter().filter_map(|m| match m {
        MountSpec::Bind { propagation, .. } => Some(*propagation),
        MountSpec::Tmpfs { .. } => None,
    });
    match propagations.max_by_key(|p| *p as u8) {
        Some(Propagation::Bidirectional) => linux = linux.rootfs_propagation("shared"),
        Some(Propagation::HostToContainer) => linux = linux.rootfs_propagation("slave"),
        _ => {}
    }
    let paths = |given: &Option<Vec<String>>, default: &[&str]| -> Vec<String> {
        match (c.privileged, given) {
            (true, _) => Vec::new(),
            (false, Some(p)) => p.clone(),
            (false, None) => default.iter().map(|s| s.to_string()).collect(),
        }
    };
    linux = linux
        .masked_paths(paths(&c.masked_paths, DEFAULT_MASKED_PATHS))
        .readonly_paths(paths(&c.readonly_paths, DEFAULT_READONLY_PATHS));
    let mut nodes: Vec<_> = given.into_iter().map(|(n, _)| n).collect();
    if c.privileged {
        let mine: Vec<PathBuf> = nodes.iter().map(|n| n.path().clone()).collect();
        nodes.extend(
            host_devices()
                .into_iter()
                .filter(|d| !mine.contains(d.path())),
        );
    }
    if !nodes.is_empty() {
        linux = linux.devices(nodes);
    }
    if !c.sysctls.is_empty() {
        linux = linux.sysctl(c.sysctls.clone());
    }
    if let Some(s) = seccomp {
        linux = linux.seccomp(s);
    }
    let spec = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(c.rootfs.clone())
                .readonly(c.readonly_rootfs)
                .build()
                .map_err(e)?,
        )
        .process(process)
        .mounts(mounts)
        .linux(linux.build().map_err(e)?)
        .annotations(c.annotations.clone());
    let mut spec = spec.build().map_err(e)?;
    // oci-spec's default carries a hostname; only a new UTS namespace may have one.
    spec.set_hostname(c.hostname.clone().filter(|_| new_ns(NsKind::Uts)));
    Ok(spec)
}

/// Writes `bundle/config.json` for `c`.
pub fn write_bundle(bundle: &Path, c: &ContainerSpec) -> Result<()> {
    let spec = build(c)?;
    std::fs::create_dir_all(bundle).map_err(crate::io("creating bundle", bundle))?;
    let path = bundle.join("config.json");
    spec.save(&path)
        .map_err(|e| Error::Spec(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_namespaces_by_path_and_sets_caps() {
        let c = ContainerSpec {
            rootfs: "/r".into(),
            args: vec!["sh".into()],
            namespaces: vec![
                NamespaceSpec {
                    kind: NsKind::Net,
                    path: Some("/run/x/netns".into()),
                },
                NamespaceSpec {
                    kind: NsKind::Mnt,
                    path: None,
                },
            ],
            hostname: Some("ignored".into()),
            cap_drop: vec!["NET_RAW".into()],
            cap_add: vec!["sys_time".into()],
            ..Default::default()
        };
        let spec = build(&c).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["linux"]["namespaces"][0]["path"], "/run/x/netns");
        assert!(
            json.get("hostname").is_none(),
            "hostname only with a new UTS namespace"
        );
        let caps = json["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap();
        assert!(caps.iter().any(|c| c == "CAP_SYS_TIME"));
        assert!(!caps.iter().any(|c| c == "CAP_NET_RAW"));
    }
}

#[cfg(test)]
mod security_tests {
    use super::*;

    fn bounding(json: &serde_json::Value) -> Vec<String> {
        json["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn hugepage_limits_go_where_the_host_can_apply_them() {
        let c = ContainerSpec {
            rootfs: "/r".into(),
            args: vec!["sh".into()],
            hugepage_limits: vec![("2MB".into(), 64 << 20), ("1GB".into(), 0)],
            ..Default::default()
        };
        let json = serde_json::to_value(build(&c).unwrap()).unwrap();
        let limits = &json["linux"]["resources"]["hugepageLimits"];
        if crate::cgroup::hugetlb_for_containers() {
            assert_eq!(limits[0]["pageSize"], "2MB");
            assert_eq!(limits[0]["limit"], 64 << 20);
            assert_eq!(limits[1]["limit"], 0);
        } else {
            // libcontainer refuses limits for a controller it cannot find.
            assert!(limits.is_null(), "{limits}");
        }
    }

    #[test]
    fn all_capabilities_are_those_the_host_allows() {
        // The host withholds CAP_SYS_RESOURCE (24).
        let host: u64 = !(1 << 24);
        let c = ContainerSpec {
            rootfs: "/r".into(),
            args: vec!["sh".into()],
            cap_add: vec!["ALL".into()],
            host_capabilities: Some(host),
            ..Default::default()
        };
        let caps = bounding(&serde_json::to_value(build(&c).unwrap()).unwrap());
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_SYS_RESOURCE".to_string()));
        let privileged = ContainerSpec {
            privileged: true,
            cap_add: vec![],
            ..c
        };
        let caps = bounding(&serde_json::to_value(build(&privileged).unwrap()).unwrap());
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_SYS_RESOURCE".to_string()));
    }

    #[test]
    fn masked_and_read_only_paths_default_unless_given_or_privileged() {
        let base = ContainerSpec {
            rootfs: "/r".into(),
            args: vec!["sh".into()],
            ..Default::default()
        };
        let json = serde_json::to_value(build(&base).unwrap()).unwrap();
        let masked = json["linux"]["maskedPaths"].as_array().unwrap();
        assert!(masked.iter().any(|p| p == "/proc/kcore"));
        let ro = json["linux"]["readonlyPaths"].as_array().unwrap();
        assert!(ro.iter().any(|p| p == "/proc/sys"));

        let given = ContainerSpec {
            masked_paths: Some(vec!["/bin/ls".into()]),
            readonly_paths: Some(vec![]),
            ..base.clone()
        };
        let json = serde_json::to_value(build(&given).unwrap()).unwrap();
        assert_eq!(json["linux"]["maskedPaths"], serde_json::json!(["/bin/ls"]));
        assert!(
            json["linux"]["readonlyPaths"]
                .as_array()
                .is_none_or(|a| a.is_empty())
        );

        let privileged = ContainerSpec {
            privileged: true,
            host_capabilities: Some(u64::MAX),
            ..given
        };
        let json = serde_json::to_value(build(&privileged).unwrap()).unwrap();
        assert!(
            json["linux"]["maskedPaths"]
                .as_array()
                .is_none_or(|a| a.is_empty())
        );
        assert_eq!(json["linux"]["resources"]["devices"][0]["allow"], true);
        let sys = json["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/sys")
            .unwrap();
        assert!(sys["options"].as_array().unwrap().iter().any(|o| o == "rw"));
    }

    #[test]
    fn seccomp_follows_the_capabilities_and_not_privileged_containers() {
        let mounts = |json: &serde_json::Value| {
            json["linux"]["seccomp"]["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["names"].as_array().unwrap().iter().any(|n| n == "mount"))
        };
        let c = ContainerSpec {
            rootfs: "/r".into(),
            args: vec!["sh".into()],
            seccomp: crate::Seccomp::RuntimeDefault,
            host_capabilities: Some(u64::MAX),
            ..Default::default()
        };
        let json = serde_json::to_value(build(&c).unwrap()).unwrap();
        assert_eq!(json["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(!mounts(&json));
        let admin = ContainerSpec {
            cap_add: vec!["SYS_ADMIN".into()],
            ..c.clone()
        };
        assert!(mounts(
            &serde_json::to_value(build(&admin).unwrap()).unwrap()
        ));
        let privileged = ContainerSpec {
            privileged: true,
            ..c
        };
        let json = serde_json::to_value(build(&privileged).unwrap()).unwrap();
        assert!(json["linux"].get("seccomp").is_none());
    }

    #[test]
    fn all_then_single_capabilities_as_containerd_orders_them() {
        let c = ContainerSpec {
            rootfs: "/r".into(),
            args: vec!["sh".into()],
            cap_add: vec!["ALL".into()],
            cap_drop: vec!["CHOWN".into()],
            host_capabilities: Some(u64::MAX),
            ..Default::default()
        };
        let caps = bounding(&serde_json::to_value(build(&c).unwrap()).unwrap());
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
        let c = ContainerSpec {
            cap_add: vec!["NET_ADMIN".into()],
            cap_drop: vec!["ALL".into()],
            ..c
        };
        let caps = bounding(&serde_json::to_value(build(&c).unwrap()).unwrap());
        assert_eq!(caps, vec!["CAP_NET_ADMIN".to_string()]);
    }

    #[test]
    fn sysctls_are_written() {
        let c = ContainerSpec {
            rootfs: "/r".into(),
            args: vec!["sh".into()],
            sysctls: [("net.ipv4.ip_forward".to_string(), "1".to_string())].into(),
            ..Default::default()
        };
        let json = serde_json::to_value(build(&c).unwrap()).unwrap();
        assert_eq!(json["linux"]["sysctl"]["net.ipv4.ip_forward"], "1");
    }
}
