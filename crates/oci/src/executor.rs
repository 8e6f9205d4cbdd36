//! Executors: what creates, starts and deletes containers from bundles.
//!
//! [`Libcontainer`] runs youki's `libcontainer` in-process, so nothing else needs to be
//! installed. It clones the container's init process with `CLONE_PARENT` from a short-lived
//! intermediate process, so the caller becomes the init's parent; the init inherits the
//! intermediate's exit signal (SIGCHLD). Callers learn of its exit through a pidfd
//! ([`crate::ns::pidfd_open`]) and reap it with `waitpid(pid, __WALL)`; a caller that also
//! reaps other children must not reap these.
//!
//! The executor runs `fork`-like code in the calling process: call it from a single-threaded
//! process (the shim is one).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcontainer::container::Container;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;

use crate::{Error, Result};

/// The standard streams given to a container process.
#[derive(Debug)]
pub struct Stdio {
    /// Standard input (`/dev/null` when `None`).
    pub stdin: Option<OwnedFd>,
    /// Standard output.
    pub stdout: OwnedFd,
    /// Standard error.
    pub stderr: OwnedFd,
}

/// How a container's init process gets its standard streams.
#[derive(Debug)]
pub enum Streams {
    /// These descriptors.
    Pipes(Stdio),
    /// A pseudo-terminal allocated inside the container (the spec must ask for a
    /// terminal); its master end is returned.
    Terminal,
}

/// A container created by [`Executor::create`].
#[derive(Debug)]
pub struct Created {
    /// Its init PID (a child of the caller, reaped with `__WALL`).
    pub pid: i32,
    /// The master end of its terminal, with [`Streams::Terminal`].
    pub pty: Option<OwnedFd>,
}

/// A process to run inside a running container (`exec`).
#[derive(Debug)]
pub struct ExecRequest {
    /// argv.
    pub args: Vec<String>,
    /// Extra environment on top of the container's.
    pub env: HashMap<String, String>,
    /// Working directory; the container's when `None`.
    pub cwd: Option<PathBuf>,
    /// Streams; inherited from the caller when `None`. Ignored with `tty`.
    pub stdio: Option<Stdio>,
    /// Give the process a terminal of its own: a new session whose controlling terminal is
    /// a pseudo-terminal allocated inside the container; its master end is returned.
    pub tty: bool,
}

/// A process started by [`Executor::exec`].
#[derive(Debug)]
pub struct ExecProcess {
    /// Its PID (a child of the caller, reaped with `__WALL`).
    pub pid: i32,
    /// The master end of its terminal, when one was asked for.
    pub pty: Option<OwnedFd>,
}

/// Creates, starts and deletes containers. CRI semantics: delete of a missing container
/// succeeds.
pub trait Executor {
    /// Creates the container described by `bundle/config.json`. Its init process waits
    /// for [`Executor::start`] before running the container's program.
    fn create(&self, id: &str, bundle: &Path, streams: Streams) -> Result<Created>;
    /// Lets the created container run its program.
    fn start(&self, id: &str) -> Result<()>;
    /// Removes what the executor keeps for a stopped container (state, cgroup).
    fn delete(&self, id: &str) -> Result<()>;
    /// Starts a process in the running container `id`.
    fn exec(&self, id: &str, req: ExecRequest) -> Result<ExecProcess>;
}

/// The in-process executor built on youki's `libcontainer`.
#[derive(Debug, Clone)]
pub struct Libcontainer {
    state_root: PathBuf,
}

impl Libcontainer {
    /// An executor keeping its per-container state under `state_root`.
    pub fn new(state_root: impl Into<PathBuf>) -> Self {
        Libcontainer {
            state_root: state_root.into(),
        }
    }

    fn load(&self, id: &str, op: &'static str) -> Result<Option<Container>> {
        let dir = self.state_root.join(id);
        if !dir.join("state.json").exists() {
            return Ok(None);
        }
        Container::load(dir)
            .map(Some)
            .map_err(|e| failed(op, id, e))
    }
}

fn failed(op: &'static str, id: &str, e: impl std::error::Error) -> Error {
    let mut message = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_text = s.to_string();
        if !message.contains(&s_text) {
            message.push_str(": ");
            message.push_str(&s_text);
        }
        src = s.source();
    }
    Error::Runtime {
        op,
        id: id.to_string(),
        message,
    }
}

fn dev_null() -> Result<OwnedFd> {
    std::fs::File::open("/dev/null")
        .map(OwnedFd::from)
        .map_err(crate::io("opening", "/dev/null"))
}

impl Executor for Libcontainer {
    fn create(&self, id: &str, bundle: &Path, streams: Streams) -> Result<Created> {
        std::fs::create_dir_all(&self.state_root)
            .map_err(crate::io("creating", &self.state_root))?;
        let mut b = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
            .with_root_path(&self.state_root)
            .map_err(|e| failed("create", id, e))?;
        let console = match streams {
            Streams::Pipes(stdio) => {
                let stdin = match stdio.stdin {
                    Some(fd) => fd,
                    None => dev_null()?,
                };
                b = b
                    .with_stdin(stdin)
                    .with_stdout(stdio.stdout)
                    .with_stderr(stdio.stderr);
                None
            }
            Streams::Terminal => {
                let console = Console::new(&self.state_root)?;
                b = b.with_console_socket(Some(console.path()));
                Some(console)
            }
        };
        let container = b
            .as_init(bundle)
            .with_systemd(false)
            .with_detach(true)
            .build()
            .map_err(|e| failed("create", id, e))?;
        let pid = container
            .pid()
            .map(|p| p.as_raw())
            .ok_or_else(|| Error::Runtime {
                op: "create",
                id: id.into(),
                message: "no init pid".into(),
            })?;
        let pty = console.map(|c| c.receive()).transpose();
        match pty {
            Ok(pty) => Ok(Created { pid, pty }),
            Err(e) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                Err(e)
            }
        }
    }

    fn start(&self, id: &str) -> Result<()> {
        let mut c = self.load(id, "start")?.ok_or_else(|| Error::Runtime {
            op: "start",
            id: id.into(),
            message: "not created".into(),
        })?;
        c.start().map_err(|e| failed("start", id, e))
    }

    fn delete(&self, id: &str) -> Result<()> {
        match self.load(id, "delete")? {
            None => Ok(()),
            Some(mut c) => c.delete(true).map_err(|e| failed("delete", id, e)),
        }
    }

    fn exec(&self, id: &str, req: ExecRequest) -> Result<ExecProcess> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let container = self
            .load(id, "exec")?
            .ok_or_else(|| failed("exec", id, std::io::Error::other("no such container")))?;
        let config = container.bundle().join("config.json");
        let spec = oci_spec::runtime::Spec::load(&config).map_err(|e| failed("exec", id, e))?;
        let process = exec_process(spec.process().clone().unwrap_or_default(), &req);
        // libcontainer's exec joins every namespace of the container but its user
        // namespace. In one, the exec starts as the host's root with every capability, in
        // the container's other namespaces, and the program's last step joins the user
        // namespace and becomes the container's user with its own capabilities.
        let userns = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default()
            .into_iter()
            .find(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
            .and_then(|n| n.path().clone())
            .map(|p| std::fs::File::open(&p).map_err(crate::io("opening", &p)))
            .transpose()?;
        let tenant = match &userns {
            None => process.clone(),
            Some(_) => host_root(process.clone())?,
        };
        let dir = self.state_root.join(format!(
            ".exec-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(crate::io("creating", &dir))?;
        let result = (|| {
            let json = dir.join("process.json");
            let data = serde_json::to_vec(&tenant).map_err(|e| failed("exec", id, e))?;
            std::fs::write(&json, data).map_err(crate::io("writing", &json))?;
            let mut b = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
                .with_root_path(&self.state_root)
                .map_err(|e| failed("exec", id, e))?;
            let console = if req.tty {
                let console = Console::new(&self.state_root)?;
                b = b.with_console_socket(Some(console.path()));
                Some(console)
            } else {
                if let Some(stdio) = req.stdio {
                    if let Some(i) = stdio.stdin {
                        b = b.with_stdin(i);
                    }
                    b = b.with_stdout(stdio.stdout).with_stderr(stdio.stderr);
                }
                None
            };
            // libcontainer runs an exec without the container's seccomp filter: the
            // process loads it itself, just before it runs the program.
            let filter = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
            if filter.is_some() || userns.is_some() {
                use std::os::fd::AsRawFd;
                b = b.with_executor(ExecExecutor {
                    filter,
                    userns: userns.as_ref().map(|f| (f.as_raw_fd(), process.clone())),
                });
            }
            let pid = b
                .as_tenant()
                .with_process(Some(&json))
                .with_detach(true)
                .build()
                .map_err(|e| failed("exec", id, e))?;
            let pty = console.map(|c| c.receive()).transpose()?;
            Ok(ExecProcess {
                pid: pid.as_raw(),
                pty,
            })
        })();
        let _ = std::fs::remove_dir_all(&dir);
        // libcontainer leaves its link to the console socket in the container's directory.
        let _ = std::fs::remove_file(self.state_root.join(id).join("console-socket"));
        result
    }
}

/// The process an exec into a container with a user namespace starts as: the host's
/// root with every capability the host allows, so it can join that namespace.
fn host_root(mut p: oci_spec::runtime::Process) -> Result<oci_spec::runtime::Process> {
    use oci_spec::runtime::{Capability, LinuxCapabilitiesBuilder, UserBuilder};
    let all: std::collections::HashSet<Capability> =
        crate::spec::all_capabilities(crate::spec::host_bounding_set())
            .into_iter()
            .filter_map(|n| serde_json::from_value(serde_json::Value::String(n)).ok())
            .collect();
    let e = |e: oci_spec::OciSpecError| Error::Spec(e.to_string());
    p.set_user(
        UserBuilder::default()
            .uid(0u32)
            .gid(0u32)
            .build()
            .map_err(e)?,
    );
    p.set_capabilities(Some(
        LinuxCapabilitiesBuilder::default()
            .bounding(all.clone())
            .effective(all.clone())
            .permitted(all.clone())
            .build()
            .map_err(e)?,
    ));
    p.set_no_new_privileges(None);
    Ok(p)
}

/// Runs an exec's program as its container's process runs: in the container's user
/// namespace (joined through an fd opened before the exec entered the container's mount
/// namespace) as its user with its capabilities and `no_new_privs`, then under its seccomp
/// filter.
#[derive(Clone)]
struct ExecExecutor {
    filter: Option<oci_spec::runtime::LinuxSeccomp>,
    userns: Option<(std::os::fd::RawFd, oci_spec::runtime::Process)>,
}

impl libcontainer::workload::Executor for ExecExecutor {
    fn exec(
        &self,
        spec: &oci_spec::runtime::Spec,
    ) -> Result<(), libcontainer::workload::ExecutorError> {
        use libcontainer::workload::ExecutorError;
        if let Some((fd, process)) = &self.userns {
            become_user_in(*fd, process).map_err(ExecutorError::Other)?;
        }
        let Some(filter) = &self.filter else {
            return libcontainer::workload::default::DefaultExecutor {}.exec(spec);
        };
        // The capabilities are already the container's: without CAP_SYS_ADMIN, the
        // kernel accepts a filter only from a process with no_new_privs, which it then gets.
        const CAP_SYS_ADMIN: u32 = 21;
        let effective = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapEff:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .unwrap_or(0);
        if effective & (1 << CAP_SYS_ADMIN) == 0 {
            nix::sys::prctl::set_no_new_privs()
                .map_err(|e| ExecutorError::Other(format!("setting no_new_privs: {e}")))?;
        }
        libcontainer::seccomp::initialize_seccomp(filter)
            .map_err(|e| ExecutorError::Other(format!("loading the seccomp filter: {e}")))?;
        libcontainer::workload::default::DefaultExecutor {}.exec(spec)
    }

    fn validate(
        &self,
        spec: &oci_spec::runtime::Spec,
    ) -> Result<(), libcontainer::workload::ExecutorValidationError> {
        libcontainer::workload::default::DefaultExecutor {}.validate(spec)
    }
}

/// Joins the user namespace open at `fd` and becomes `process`'s user, with its groups,
/// capabilities and `no_new_privs`, as the container's own process did.
fn become_user_in(
    fd: std::os::fd::RawFd,
    process: &oci_spec::runtime::Process,
) -> Result<(), String> {
    use libcontainer::syscall::syscall::create_syscall;
    // SAFETY: the fd was opened by the process that started this one and is still open here.
    let ns = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWUSER)
        .map_err(|e| format!("joining the container's user namespace: {e}"))?;
    let user = process.user();
    let groups: Vec<libc::gid_t> = user.additional_gids().iter().flatten().copied().collect();
    let err = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    // SAFETY: plain system calls on integers and a slice that outlives them; the process
    // is single-threaded here, so the raw setres*id calls change all of it.
    unsafe {
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
            return Err(err("setting supplementary groups"));
        }
        // Capabilities survive the change of user until they are set below.
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            return Err(err("keeping capabilities"));
        }
        let (u, g) = (user.uid(), user.gid());
        if libc::syscall(libc::SYS_setresgid, g, g, g) != 0 {
            return Err(err("setting the group"));
        }
        if libc::syscall(libc::SYS_setresuid, u, u, u) != 0 {
            return Err(err("setting the user"));
        }
        libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0);
    }
    let syscall = create_syscall();
    if let Some(caps) = process.capabilities() {
        libcontainer::capabilities::drop_privileges(caps, &*syscall)
            .map_err(|e| format!("setting capabilities: {e}"))?;
    }
    if process.no_new_privileges() == Some(true) {
        nix::sys::prctl::set_no_new_privs().map_err(|e| format!("setting no_new_privs: {e}"))?;
    }
    Ok(())
}

/// A socket a container process sends its terminal's master end to.
struct Console {
    listener: std::os::unix::net::UnixListener,
    path: PathBuf,
    /// Removed with the console.
    own_dir: Option<PathBuf>,
}

impl Console {
    /// A console socket at `path`.
    fn bind(path: PathBuf) -> Result<Console> {
        let listener =
            std::os::unix::net::UnixListener::bind(&path).map_err(crate::io("binding", &path))?;
        Ok(Console {
            listener,
            path,
            own_dir: None,
        })
    }

    /// A console socket in a directory of its own: under `root`, or under the temporary
    /// directory when that path would be too long for a socket.
    fn new(root: &Path) -> Result<Console> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            ".console-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut dir = root.join(&name);
        // sun_path holds 108 bytes with the final NUL.
        if dir.join("console.sock").as_os_str().len() > 100 {
            dir = std::env::temp_dir().join(format!("peapod{name}"));
        }
        std::fs::create_dir_all(&dir).map_err(crate::io("creating", &dir))?;
        let mut c = Console::bind(dir.join("console.sock"))?;
        c.own_dir = Some(dir);
        Ok(c)
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// The master end the process sent. It was sent before the process went on (to wait
    /// for start, or to run its program), and the builder returns only after that: the
    /// connection is already queued.
    fn receive(self) -> Result<OwnedFd> {
        self.listener
            .set_nonblocking(true)
            .map_err(crate::io("polling", &self.path))?;
        let (conn, _) = self
            .listener
            .accept()
            .map_err(crate::io("accepting the terminal from", &self.path))?;
        receive_fd(&conn).map_err(crate::io("receiving the terminal from", &self.path))
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(d) = &self.own_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// The process of an exec: the container's own process (its user and groups,
/// capabilities, `no_new_privs`, rlimits, working directory, environment) with the
/// request's arguments, extra environment, working directory and terminal, as `runc exec`
/// and containerd make it.
pub fn exec_process(
    mut process: oci_spec::runtime::Process,
    req: &ExecRequest,
) -> oci_spec::runtime::Process {
    let mut env: Vec<String> = process
        .env()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !req.env.contains_key(e.split('=').next().unwrap_or("")))
        .collect();
    let mut extra: Vec<(&String, &String)> = req.env.iter().collect();
    extra.sort();
    env.extend(extra.into_iter().map(|(k, v)| format!("{k}={v}")));
    process
        .set_args(Some(req.args.clone()))
        .set_env(Some(env))
        .set_terminal(Some(req.tty))
        .set_console_size(None);
    if let Some(cwd) = &req.cwd {
        process.set_cwd(cwd.clone());
    }
    process
}

/// Receives one file descriptor sent with `SCM_RIGHTS` on `conn`.
fn receive_fd(conn: &std::os::unix::net::UnixStream) -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::{AsRawFd, FromRawFd};
    conn.set_nonblocking(false)?;
    let mut buf = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel just installed this descriptor for us; nobody else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    Err(std::io::Error::other("no descriptor in the message"))
}

/// The exited, unreaped children of this process (of any of its threads): PID and name.
pub fn zombie_children() -> Vec<(i32, String)> {
    let mut children = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            children.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    children
        .into_iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (open, close) = (stat.find('(')?, stat.rfind(')')?);
            let zombie = stat[close + 1..].trim_start().starts_with('Z');
            zombie.then(|| (pid, stat[open + 1..close].to_string()))
        })
        .collect()
}

/// Reaps the exited helper processes a failed create leaves behind: libcontainer names its
/// intermediate and init processes `youki:[…]` and does not always wait for them on error.
/// Only zombie children with that name are touched, so other children keep their statuses.
pub fn reap_leftovers() {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    for (pid, comm) in zombie_children() {
        if comm.starts_with("youki:") {
            let _ = waitpid(
                nix::unistd::Pid::from_raw(pid),
                Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Process, User};

    #[test]
    fn an_exec_runs_as_the_containers_user_with_its_environment() {
        let mut user = User::default();
        user.set_uid(1000)
            .set_gid(3000)
            .set_additional_gids(Some(vec![4000]));
        let mut p = Process::default();
        p.set_user(user)
            .set_env(Some(vec!["PATH=/bin".into(), "A=1".into()]))
            .set_cwd("/work".into())
            .set_no_new_privileges(Some(true))
            .set_args(Some(vec!["sleep".into(), "1".into()]));
        let req = ExecRequest {
            args: vec!["id".into()],
            env: [("A".to_string(), "2".to_string()), ("B".into(), "3".into())].into(),
            cwd: None,
            stdio: None,
            tty: false,
        };
        let e = exec_process(p.clone(), &req);
        assert_eq!((e.user().uid(), e.user().gid()), (1000, 3000));
        assert_eq!(e.user().additional_gids().as_deref(), Some(&[4000][..]));
        assert_eq!(e.no_new_privileges(), Some(true));
        assert_eq!(e.args().as_deref(), Some(&["id".to_string()][..]));
        assert_eq!(
            e.env().as_deref(),
            Some(&["PATH=/bin".to_string(), "A=2".into(), "B=3".into()][..])
        );
        assert_eq!(e.cwd(), Path::new("/work"));
        assert_eq!(e.terminal(), Some(false));
        let tty = exec_process(
            p,
            &ExecRequest {
                cwd: Some("/tmp".into()),
                tty: true,
                ..req
            },
        );
        assert_eq!(tty.cwd(), Path::new("/tmp"));
        assert_eq!(tty.terminal(), Some(true));
    }
}
