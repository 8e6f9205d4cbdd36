//! Seccomp profiles: peapod's `RuntimeDefault` profile and profiles read from files, both
//! in the JSON form Docker, containerd and CRI-O share (`names`, `includes`/`excludes` by
//! capability, architecture and kernel), resolved for one container into the OCI
//! `linux.seccomp` section that libcontainer compiles with libseccomp.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator as Op,
};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which seccomp filter a container runs under.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seccomp {
    /// No filter.
    #[default]
    Unconfined,
    /// peapod's default profile ([`default_profile`]).
    RuntimeDefault,
    /// A profile in a JSON file on the host.
    Localhost(PathBuf),
}

/// A seccomp profile in the JSON form of Docker and containerd (an OCI `linux.seccomp`
/// section is one too).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// What a system call no rule matches gets.
    pub default_action: Action,
    /// The errno of `default_action` when it is `SCMP_ACT_ERRNO`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// The architectures the filter covers.
    #[serde(default)]
    pub architectures: Vec<Arch>,
    /// Architectures by native architecture (used when `architectures` is empty).
    #[serde(default)]
    pub arch_map: Vec<ArchMap>,
    /// Filter flags.
    #[serde(default)]
    pub flags: Vec<LinuxSeccompFilterFlag>,
    /// The rules.
    #[serde(default)]
    pub syscalls: Vec<Rule>,
}

/// One entry of a profile's `archMap`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    /// The native architecture.
    pub architecture: Arch,
    /// The architectures its processes may also use.
    #[serde(default)]
    pub sub_architectures: Vec<Arch>,
}

/// One rule of a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// The system calls it covers.
    #[serde(default)]
    pub names: Vec<String>,
    /// A single system call (the older form of `names`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What they get.
    pub action: Action,
    /// The errno of an `SCMP_ACT_ERRNO` action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Conditions on the arguments, all of which must hold.
    #[serde(default)]
    pub args: Vec<Arg>,
    /// The rule applies only where all of these hold.
    #[serde(default)]
    pub includes: Filter,
    /// The rule does not apply where any of these holds.
    #[serde(default)]
    pub excludes: Filter,
}

/// A condition on one system call argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    /// Which argument (0-5).
    pub index: usize,
    /// The value compared with (the mask for `SCMP_CMP_MASKED_EQ`).
    pub value: u64,
    /// The second value (the expected masked value for `SCMP_CMP_MASKED_EQ`).
    #[serde(default)]
    pub value_two: u64,
    /// The comparison.
    pub op: Op,
}

/// When a rule applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// Capabilities (`CAP_SYS_ADMIN`) of the container.
    #[serde(default)]
    pub caps: Vec<String>,
    /// Architectures in Go's names (`amd64`, `arm64`, ...).
    #[serde(default)]
    pub arches: Vec<String>,
    /// A kernel version (`4.8`).
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// What a profile is resolved against: the container's capabilities, the host's
/// architecture and kernel.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// Capability names (`CAP_...`) in the container's bounding set.
    pub caps: &'a [String],
    /// The native architecture in Go's naming.
    pub arch: &'a str,
    /// The kernel's (major, minor) version.
    pub kernel: (u32, u32),
}

impl Target<'_> {
    /// This host's architecture.
    pub fn host_arch() -> &'static str {
        match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "arm" => "arm",
            "riscv64" => "riscv64",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "loongarch64" => "loong64",
            other => other,
        }
    }

    /// This host's kernel (major, minor).
    pub fn host_kernel() -> (u32, u32) {
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        parse_kernel(&release).unwrap_or((0, 0))
    }
}

fn parse_kernel(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

fn native_arches(arch: &str) -> Vec<Arch> {
    match arch {
        "amd64" => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        "386" => vec![Arch::ScmpArchX86],
        "arm64" => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        "arm" => vec![Arch::ScmpArchArm],
        "riscv64" => vec![Arch::ScmpArchRiscv64],
        "ppc64le" => vec![Arch::ScmpArchPpc64le],
        "s390x" => vec![Arch::ScmpArchS390x, Arch::ScmpArchS390],
        "loong64" => vec![Arch::ScmpArchLoongarch64],
        _ => vec![],
    }
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.caps.is_empty() && self.arches.is_empty() && self.min_kernel.is_none()
    }

    fn kernel_at_least(&self, t: &Target<'_>) -> bool {
        self.min_kernel
            .as_deref()
            .and_then(parse_kernel)
            .is_none_or(|min| t.kernel >= min)
    }

    /// All of its conditions hold (an `includes`).
    fn all(&self, t: &Target<'_>) -> bool {
        self.caps.iter().all(|c| t.caps.contains(c))
            && (self.arches.is_empty() || self.arches.iter().any(|a| a == t.arch))
            && self.kernel_at_least(t)
    }

    /// One of its conditions holds (an `excludes`).
    fn any(&self, t: &Target<'_>) -> bool {
        !self.is_empty()
            && (self.caps.iter().any(|c| t.caps.contains(c))
                || self.arches.iter().any(|a| a == t.arch)
                || (self.min_kernel.is_some() && self.kernel_at_least(t)))
    }
}

impl Profile {
    /// Reads a profile from a JSON file.
    pub fn load(path: &Path) -> Result<Profile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Spec(format!("reading seccomp profile {}: {e}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Spec(format!("seccomp profile {}: {e}", path.display())))
    }

    /// The OCI section for a container: rules whose `includes` and `excludes` fit `t`.
    pub fn resolve(&self, t: &Target<'_>) -> Result<LinuxSeccomp> {
        let e = |e: oci_spec::OciSpecError| Error::Spec(format!("seccomp profile: {e}"));
        let mut arches = self.architectures.clone();
        if arches.is_empty() {
            let native = native_arches(t.arch);
            if let Some(m) = self
                .arch_map
                .iter()
                .find(|m| native.first() == Some(&m.architecture))
            {
                arches.push(m.architecture);
                arches.extend(m.sub_architectures.iter().copied());
            }
        }
        let mut syscalls = Vec::new();
        for r in &self.syscalls {
            if !r.includes.all(t) || r.excludes.any(t) {
                continue;
            }
            let mut names = r.names.clone();
            names.extend(r.name.clone());
            if names.is_empty() {
                return Err(Error::Spec(
                    "seccomp profile: a rule names no system call".into(),
                ));
            }
            let mut b = oci_spec::runtime::LinuxSyscallBuilder::default()
                .names(names)
                .action(r.action);
            if let Some(n) = r.errno_ret {
                b = b.errno_ret(n);
            }
            if !r.args.is_empty() {
                let args = r
                    .args
                    .iter()
                    .map(|a| {
                        let mut ab = oci_spec::runtime::LinuxSeccompArgBuilder::default()
                            .index(a.index)
                            .value(a.value)
                            .op(a.op);
                        if a.value_two != 0 || a.op == Op::ScmpCmpMaskedEq {
                            ab = ab.value_two(a.value_two);
                        }
                        ab.build().map_err(e)
                    })
                    .collect::<Result<Vec<LinuxSeccompArg>>>()?;
                b = b.args(args);
            }
            syscalls.push(b.build().map_err(e)?);
        }
        let mut b = oci_spec::runtime::LinuxSeccompBuilder::default()
            .default_action(self.default_action)
            .syscalls(syscalls);
        if let Some(n) = self.default_errno_ret {
            b = b.default_errno_ret(n);
        }
        if !arches.is_empty() {
            b = b.architectures(arches);
        }
        if !self.flags.is_empty() {
            b = b.flags(self.flags.clone());
        }
        b.build().map_err(e)
    }
}

/// The system calls every container may make under the default profile.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listmount",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statmount",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "uretprobe",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// System calls allowed only with a capability, as the kernel would check it anyway.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// The namespace flags of `clone` (CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID,
/// NEWNET): a container without CAP_SYS_ADMIN may not ask for them.
const CLONE_NEW_FLAGS: u64 = 0x7E02_0000;

/// `AF_VSOCK`: sockets to the hypervisor, which containers may not open.
const AF_VSOCK: u64 = 40;

fn allow(names: &[&str]) -> Rule {
    Rule {
        names: names.iter().map(|s| s.to_string()).collect(),
        action: Action::ScmpActAllow,
        ..Default::default()
    }
}

fn arg(index: usize, value: u64, value_two: u64, op: Op) -> Arg {
    Arg {
        index,
        value,
        value_two,
        op,
    }
}

/// peapod's `RuntimeDefault` profile: everything not allowed fails with `EPERM`. It allows
/// the system calls ordinary programs make, those of privileged operations only with the
/// capability that guards them, `personality` only for the usual personas, `clone` without
/// new namespaces unless the container has CAP_SYS_ADMIN, and `clone3` fails with `ENOSYS`
/// there (so that C libraries fall back to `clone`). The same choices as containerd's and
/// Docker's default.
pub fn default_profile() -> Profile {
    let mut syscalls = vec![allow(ALLOWED)];
    for persona in [0x0, 0x8, 0x20008, 0xffff_ffff] {
        syscalls.push(Rule {
            args: vec![arg(0, persona, 0, Op::ScmpCmpEq)],
            ..allow(&["personality"])
        });
    }
    syscalls.push(Rule {
        args: vec![arg(0, AF_VSOCK, 0, Op::ScmpCmpNe)],
        ..allow(&["socket"])
    });
    syscalls.push(Rule {
        includes: Filter {
            min_kernel: Some("4.8".into()),
            ..Default::default()
        },
        ..allow(&["process_vm_readv", "process_vm_writev", "ptrace"])
    });
    syscalls.push(Rule {
        includes: Filter {
            arches: vec!["amd64".into(), "x32".into(), "386".into()],
            ..Default::default()
        },
        ..allow(&["arch_prctl", "modify_ldt"])
    });
    syscalls.push(Rule {
        includes: Filter {
            arches: vec!["s390x".into()],
            ..Default::default()
        },
        ..allow(&[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ])
    });
    for (cap, names) in BY_CAPABILITY {
        syscalls.push(Rule {
            includes: Filter {
                caps: vec![cap.to_string()],
                ..Default::default()
            },
            ..allow(names)
        });
    }
    let no_sys_admin = Filter {
        caps: vec!["CAP_SYS_ADMIN".into()],
        ..Default::default()
    };
    syscalls.push(Rule {
        args: vec![arg(0, CLONE_NEW_FLAGS, 0, Op::ScmpCmpMaskedEq)],
        excludes: Filter {
            arches: vec!["s390x".into()],
            ..no_sys_admin.clone()
        },
        ..allow(&["clone"])
    });
    syscalls.push(Rule {
        names: vec!["clone3".into()],
        action: Action::ScmpActErrno,
        errno_ret: Some(nix::libc::ENOSYS as u32),
        excludes: no_sys_admin,
        ..Default::default()
    });
    Profile {
        default_action: Action::ScmpActErrno,
        default_errno_ret: Some(nix::libc::EPERM as u32),
        arch_map: [
            ("amd64", Arch::ScmpArchX86_64),
            ("arm64", Arch::ScmpArchAarch64),
            ("s390x", Arch::ScmpArchS390x),
            ("riscv64", Arch::ScmpArchRiscv64),
            ("ppc64le", Arch::ScmpArchPpc64le),
            ("loong64", Arch::ScmpArchLoongarch64),
        ]
        .into_iter()
        .map(|(go, native)| ArchMap {
            architecture: native,
            sub_architectures: native_arches(go).into_iter().skip(1).collect(),
        })
        .collect(),
        syscalls,
        ..Default::default()
    }
}

/// The OCI section of `choice` for a container with capabilities `caps` on this host;
/// `None` when unconfined.
pub fn resolve(choice: &Seccomp, caps: &[String]) -> Result<Option<LinuxSeccomp>> {
    let profile = match choice {
        Seccomp::Unconfined => return Ok(None),
        Seccomp::RuntimeDefault => default_profile(),
        Seccomp::Localhost(path) => Profile::load(path)?,
    };
    let target = Target {
        caps,
        arch: Target::host_arch(),
        kernel: Target::host_kernel(),
    };
    profile.resolve(&target).map(Some)
}

/// Rules of `s` that name `syscall`.
#[cfg(test)]
fn rules_for<'a>(s: &'a LinuxSeccomp, syscall: &str) -> Vec<&'a oci_spec::runtime::LinuxSyscall> {
    s.syscalls()
        .iter()
        .flatten()
        .filter(|r| r.names().iter().any(|n| n == syscall))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(caps: &[String]) -> Target<'_> {
        Target {
            caps,
            arch: "amd64",
            kernel: (6, 18),
        }
    }

    #[test]
    fn default_profile_denies_with_eperm_and_gates_privileged_calls_by_capability() {
        let defaults: Vec<String> = crate::spec::DEFAULT_CAPS
            .iter()
            .map(|c| c.to_string())
            .collect();
        let s = default_profile().resolve(&target(&defaults)).unwrap();
        assert_eq!(s.default_action(), Action::ScmpActErrno);
        assert_eq!(s.default_errno_ret(), Some(1));
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        assert_eq!(rules_for(&s, "read").len(), 1);
        assert!(rules_for(&s, "mount").is_empty());
        assert!(rules_for(&s, "sethostname").is_empty());
        assert_eq!(
            rules_for(&s, "chroot").len(),
            1,
            "CAP_SYS_CHROOT is a default"
        );
        assert_eq!(rules_for(&s, "arch_prctl").len(), 1);
        assert!(rules_for(&s, "s390_runtime_instr").is_empty());
        let clone = rules_for(&s, "clone");
        assert_eq!(clone.len(), 1);
        let a = clone[0].args().as_ref().unwrap()[0];
        assert_eq!(a.op(), Op::ScmpCmpMaskedEq);
        assert_eq!((a.value(), a.value_two()), (CLONE_NEW_FLAGS, Some(0)));
        let clone3 = rules_for(&s, "clone3");
        assert_eq!(clone3[0].action(), Action::ScmpActErrno);
        assert_eq!(clone3[0].errno_ret(), Some(38));
        assert_eq!(rules_for(&s, "personality").len(), 4);

        let mut admin = defaults.clone();
        admin.push("CAP_SYS_ADMIN".into());
        let s = default_profile().resolve(&target(&admin)).unwrap();
        assert_eq!(rules_for(&s, "mount").len(), 1);
        let clone = rules_for(&s, "clone");
        assert_eq!(clone.len(), 1, "unconditional with CAP_SYS_ADMIN");
        assert!(clone[0].args().is_none());
        assert_eq!(rules_for(&s, "clone3")[0].action(), Action::ScmpActAllow);
    }

    #[test]
    fn kernel_and_arch_conditions() {
        let old = Target {
            caps: &[],
            arch: "arm64",
            kernel: (4, 4),
        };
        let s = default_profile().resolve(&old).unwrap();
        assert!(rules_for(&s, "ptrace").is_empty());
        assert!(rules_for(&s, "arch_prctl").is_empty());
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
        );
        assert_eq!(parse_kernel("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(parse_kernel("5"), Some((5, 0)));
    }

    #[test]
    fn docker_form_profiles_parse() {
        let p: Profile = serde_json::from_str(
            r#"{
              "defaultAction": "SCMP_ACT_ALLOW",
              "architectures": ["SCMP_ARCH_X86_64"],
              "syscalls": [
                {"name": "sethostname", "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 448, "op": "SCMP_CMP_EQ"}],
                 "comment": "ignored", "excludes": {"caps": ["CAP_DAC_OVERRIDE"]}}
              ]
            }"#,
        )
        .unwrap();
        let s = p.resolve(&target(&[])).unwrap();
        assert_eq!(s.default_action(), Action::ScmpActAllow);
        assert_eq!(rules_for(&s, "sethostname")[0].errno_ret(), Some(1));
        let mkdir = rules_for(&s, "mkdir");
        assert_eq!(mkdir[0].args().as_ref().unwrap()[0].value(), 448);
        assert_eq!(mkdir[0].args().as_ref().unwrap()[0].value_two(), None);
        let s = p
            .resolve(&target(&["CAP_DAC_OVERRIDE".to_string()]))
            .unwrap();
        assert!(rules_for(&s, "mkdir").is_empty());

        let bad = serde_json::from_str::<Profile>(r#"{"defaultAction": "SCMP_ACT_MAYBE"}"#);
        assert!(bad.is_err());
    }

    #[test]
    fn a_missing_profile_file_is_named() {
        let err =
            resolve(&Seccomp::Localhost("/nonexistent/profile.json".into()), &[]).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/profile.json"),
            "{err}"
        );
    }
}
