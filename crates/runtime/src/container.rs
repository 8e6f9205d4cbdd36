//! CreateContainer, StartContainer, StopContainer, RemoveContainer, ContainerStatus,
//! ListContainers, and the watcher that learns of a container's exit.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use peapod_oci::{
    ContainerSpec, ExecProcess, ExecRequest, MountSpec, NamespaceSpec, NsKind, Stdio, mount, ns,
};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use crate::records::{self, ContainerRecord};
use crate::types::*;
use crate::{Error, Result, Runtime, io, new_id, now, resolve_id};

impl Runtime {
    /// Prepares a container in a ready sandbox (CRI `CreateContainer`): its root file system
    /// and bundle. The process is created by [`Runtime::start_container`].
    pub fn create_container(
        self: &Arc<Self>,
        sandbox_id: &str,
        mut config: ContainerConfig,
    ) -> Result<String> {
        let sandbox_id = resolve_id(&self.cfg.run_root.join("sandboxes"), sandbox_id, "sandbox")?;
        let sb = self.sandbox_record(&sandbox_id)?;
        if sb.status.state != SandboxState::Ready || sb.status.infra_pid <= 0 {
            return Err(Error::State(format!("sandbox {sandbox_id} is not ready")));
        }
        let img = self.images.get(&config.image)?;
        let icfg = self.images.config(&img)?;
        if config.stop_signal.is_none() {
            config.stop_signal = icfg.stop_signal.clone();
        }
        let id = new_id();
        let dir = self.container_dir(&id);
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let result = (|| -> Result<ContainerStatus> {
            let rootfs =
                self.mount_image_rootfs(&img, &dir.join("rootfs"), &self.container_storage(&id))?;
            let spec = container_spec(
                &sb,
                &sandbox_id,
                &config,
                &icfg,
                rootfs,
                &self.sandbox_dir(&sandbox_id),
                &id,
            )?;
            peapod_oci::spec::write_bundle(&dir.join("bundle"), &spec)?;
            let log_path = sb.config.log_directory.join(&config.log_path);
            if let Some(parent) = log_path.parent() {
                std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
            }
            Ok(ContainerStatus {
                id: id.clone(),
                sandbox_id: sandbox_id.clone(),
                metadata: config.metadata.clone(),
                state: ContainerState::Created,
                created_at: now(),
                started_at: None,
                finished_at: None,
                exit_code: 0,
                signal: None,
                reason: String::new(),
                message: String::new(),
                image: config.image.clone(),
                image_ref: img.repo_digest(),
                log_path,
                pid: 0,
                labels: config.labels.clone(),
                annotations: config.annotations.clone(),
                mounts: config.mounts.clone(),
            })
        })();
        match result {
            Ok(status) => {
                records::save(&dir, &ContainerRecord { status, config })?;
                self.emit(&id, &sandbox_id, ContainerEventKind::Created);
                Ok(id)
            }
            Err(e) => {
                let _ = mount::unmount_all_under(&dir);
                let _ = std::fs::remove_dir_all(&dir);
                let _ = std::fs::remove_dir_all(self.container_storage(&id));
                Err(e)
            }
        }
    }

    /// Starts a created container (CRI `StartContainer`). A process that cannot be started
    /// leaves the container exited with code 128 and reason `StartError`.
    pub fn start_container(self: &Arc<Self>, id: &str) -> Result<()> {
        let id = resolve_id(&self.cfg.run_root.join("containers"), id, "container")?;
        let dir = self.container_dir(&id);
        let mut rec = records::load::<ContainerRecord>(&dir).ok_or(Error::NotFound {
            kind: "container",
            id: id.clone(),
        })?;
        if rec.status.state != ContainerState::Created {
            return Err(Error::State(format!(
                "container {id} is {:?}, not created",
                rec.status.state
            )));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&rec.status.log_path)
            .map_err(io("opening log", &rec.status.log_path))?;
        let log = Arc::new(Mutex::new(log));
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let copiers = vec![
            tokio::spawn(crate::logs::copy(out_r, "stdout", log.clone())),
            tokio::spawn(crate::logs::copy(err_r, "stderr", log)),
        ];
        let started = (|| -> Result<i32> {
            let stdio = Stdio {
                stdin: None,
                stdout: out_w,
                stderr: err_w,
            };
            let pid = self.exec.create(&id, &dir.join("bundle"), stdio)?;
            self.watch_exit_with_logs(&id, &rec.status.sandbox_id, pid, copiers)?;
            if let Err(e) = self.exec.start(&id) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                return Err(e.into());
            }
            Ok(pid)
        })();
        match started {
            Ok(pid) => {
                rec.status.state = ContainerState::Running;
                rec.status.pid = pid;
                rec.status.started_at = Some(now());
                records::save(&dir, &rec)?;
                self.emit(&id, &rec.status.sandbox_id, ContainerEventKind::Started);
                Ok(())
            }
            Err(e) => {
                let _ = self.exec.delete(&id);
                reap_leftovers_soon();
                rec.status.state = ContainerState::Exited;
                rec.status.exit_code = 128;
                rec.status.reason = "StartError".into();
                rec.status.message = e.to_string();
                rec.status.finished_at = Some(now());
                rec.status.started_at = rec.status.finished_at.clone();
                records::save(&dir, &rec)?;
                self.emit(&id, &rec.status.sandbox_id, ContainerEventKind::Stopped);
                Err(e)
            }
        }
    }

    pub(crate) fn watch_exit(self: &Arc<Self>, id: &str, sandbox_id: &str, pid: i32) -> Result<()> {
        self.watch_exit_with_logs(id, sandbox_id, pid, Vec::new())
    }

    /// Watches `pid` through a pidfd; once it exits, reaps it, waits (briefly) for its logs
    /// to drain, records the exit and tells the subscribers.
    fn watch_exit_with_logs(
        self: &Arc<Self>,
        id: &str,
        sandbox_id: &str,
        pid: i32,
        copiers: Vec<tokio::task::JoinHandle<()>>,
    ) -> Result<()> {
        let pidfd = ns::pidfd_open(pid)?;
        crate::reaper::claim(pid);
        let (tx, rx) = watch::channel(false);
        self.live.lock().unwrap().exited.insert(id.to_string(), rx);
        let (rt, id, sandbox_id) = (Arc::clone(self), id.to_string(), sandbox_id.to_string());
        tokio::spawn(async move {
            // SAFETY: the pidfd is owned by the AsyncFd for as long as it is registered.
            if let Ok(afd) = unsafe { AsyncFd::register(pidfd) } {
                let _ = afd.readable().await;
            }
            let status = waitpid(
                Pid::from_raw(pid),
                Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG),
            );
            crate::reaper::release(pid);
            if id == sandbox_id {
                rt.infra_exited(&id);
            } else {
                for c in copiers {
                    let _ = tokio::time::timeout(Duration::from_secs(2), c).await;
                }
                rt.container_exited(&id, status);
            }
            let _ = tx.send(true);
        });
        Ok(())
    }

    fn container_exited(&self, id: &str, status: nix::Result<WaitStatus>) {
        let dir = self.container_dir(id);
        let Some(mut rec) = records::load::<ContainerRecord>(&dir) else {
            return;
        };
        let (code, signal) = match status {
            Ok(WaitStatus::Exited(_, c)) => (c, None),
            Ok(WaitStatus::Signaled(_, s, _)) => (128 + s as i32, Some(s as i32)),
            other => {
                tracing::warn!("container {id}: no exit status ({other:?})");
                (255, None)
            }
        };
        let cgroup = format!(
            "{}/{}",
            self.sandbox_record(&rec.status.sandbox_id)
                .map(|s| s.config.cgroup_parent)
                .unwrap_or_default(),
            id
        );
        rec.status.state = ContainerState::Exited;
        rec.status.exit_code = code;
        rec.status.signal = signal;
        rec.status.reason = if oom_killed(&cgroup) {
            "OOMKilled".into()
        } else if code == 0 {
            "Completed".into()
        } else {
            "Error".into()
        };
        rec.status.finished_at = Some(now());
        rec.status.pid = 0;
        let _ = records::save(&dir, &rec);
        if let Err(e) = self.exec.delete(id) {
            tracing::warn!(container = %id, "releasing the exited container: {e}");
        }
        self.emit(id, &rec.status.sandbox_id, ContainerEventKind::Stopped);
    }

    /// Stops a running container (CRI `StopContainer`): its stop signal, then SIGKILL after
    /// `timeout` (at once when zero). Stopping a stopped or missing container succeeds.
    pub async fn stop_container(self: &Arc<Self>, id: &str, timeout: Duration) -> Result<()> {
        let Ok(id) = resolve_id(&self.cfg.run_root.join("containers"), id, "container") else {
            return Ok(());
        };
        let Some(rec) = records::load::<ContainerRecord>(&self.container_dir(&id)) else {
            return Ok(());
        };
        if rec.status.state != ContainerState::Running || rec.status.pid <= 0 {
            return Ok(());
        }
        let pid = rec.status.pid;
        if !timeout.is_zero() {
            let sig = rec
                .config
                .stop_signal
                .as_deref()
                .and_then(parse_signal)
                .unwrap_or(Signal::SIGTERM);
            if self.kill_and_wait(&id, pid, sig, timeout).await {
                return Ok(());
            }
        }
        self.kill_and_wait(&id, pid, Signal::SIGKILL, Duration::from_secs(30))
            .await;
        Ok(())
    }

    /// Sends `sig` to `pid` and waits up to `timeout` for it to exit; true if it did.
    pub(crate) async fn kill_and_wait(
        &self,
        id: &str,
        pid: i32,
        sig: Signal,
        timeout: Duration,
    ) -> bool {
        let _ = kill(Pid::from_raw(pid), sig);
        let watched = self.live.lock().unwrap().exited.contains_key(id);
        if watched {
            tokio::time::timeout(timeout, self.wait_exit(id))
                .await
                .is_ok()
        } else {
            // Not our child: poll until the process is gone.
            let deadline = tokio::time::Instant::now() + timeout;
            while tokio::time::Instant::now() < deadline {
                if !alive(pid) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            !alive(pid)
        }
    }

    /// Removes a container (CRI `RemoveContainer`), killing it first if it runs; a missing
    /// one is fine.
    pub async fn remove_container(self: &Arc<Self>, id: &str) -> Result<()> {
        let Ok(id) = resolve_id(&self.cfg.run_root.join("containers"), id, "container") else {
            return Ok(());
        };
        self.stop_container(&id, Duration::ZERO).await?;
        let dir = self.container_dir(&id);
        let rec = records::load::<ContainerRecord>(&dir);
        self.exec.delete(&id)?;
        if let Some(rec) = &rec
            && let Ok(sb) = self.sandbox_record(&rec.status.sandbox_id)
        {
            let cg = format!("{}/{}", sb.config.cgroup_parent, id);
            crate::sandbox::kill_cgroup(&cg);
            peapod_oci::cgroup::remove(&cg).map_err(io("removing cgroup", cg))?;
        }
        mount::unmount_all_under(&dir)?;
        for d in [dir, self.container_storage(&id)] {
            match std::fs::remove_dir_all(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Io {
                        context: "removing",
                        path: d,
                        source: e,
                    });
                }
            }
        }
        self.live.lock().unwrap().exited.remove(&id);
        if let Some(rec) = rec {
            self.emit(&id, &rec.status.sandbox_id, ContainerEventKind::Deleted);
        }
        Ok(())
    }

    /// The status of container `id` (CRI `ContainerStatus`). Read by a process that did not
    /// start it, a running container whose process is gone shows as `Unknown`.
    pub fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        let id = resolve_id(&self.cfg.run_root.join("containers"), id, "container")?;
        let rec =
            records::load::<ContainerRecord>(&self.container_dir(&id)).ok_or(Error::NotFound {
                kind: "container",
                id: id.clone(),
            })?;
        Ok(self.checked(rec.status))
    }

    /// The config container `id` was made from.
    pub fn container_config(&self, id: &str) -> Result<ContainerConfig> {
        let id = resolve_id(&self.cfg.run_root.join("containers"), id, "container")?;
        let rec =
            records::load::<ContainerRecord>(&self.container_dir(&id)).ok_or(Error::NotFound {
                kind: "container",
                id: id.clone(),
            })?;
        Ok(rec.config)
    }

    /// Every container, or those of one sandbox (CRI `ListContainers`), oldest first.
    pub fn list_containers(&self, sandbox_id: Option<&str>) -> Vec<ContainerStatus> {
        let mut out: Vec<ContainerStatus> =
            records::load_all::<ContainerRecord>(&self.cfg.run_root.join("containers"))
                .into_iter()
                .map(|r| self.checked(r.status))
                .filter(|s| sandbox_id.is_none_or(|sb| s.sandbox_id == sb))
                .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        out
    }

    /// Starts a process in a running container (CRI `Exec`). Its PID is a child of the
    /// caller (reap it with `__WALL`).
    pub fn exec(&self, id: &str, req: ExecRequest) -> Result<ExecProcess> {
        let status = self.container_status(id)?;
        if status.state != ContainerState::Running {
            return Err(Error::State(format!(
                "container {} is not running",
                status.metadata.name
            )));
        }
        Ok(self.exec.exec(&status.id, req)?)
    }

    /// Runs `cmd` in running container `id` and collects its output (CRI `ExecSync`). Past
    /// `timeout` the process is killed and the call fails. Each stream keeps its first
    /// 64 KiB (a pipe's worth); a process writing more blocks until the timeout.
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecSyncResult> {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let null = std::fs::File::open("/dev/null").map_err(io("opening", "/dev/null"))?;
        let pid = self
            .exec(
                id,
                ExecRequest {
                    args: cmd,
                    env: Default::default(),
                    cwd: None,
                    stdio: Some(Stdio {
                        stdin: Some(null.into()),
                        stdout: out_w,
                        stderr: err_w,
                    }),
                    tty: false,
                },
            )?
            .pid;
        let mut claim = crate::reaper::Claim::new(pid);
        let reap =
            |flags: WaitPidFlag| waitpid(Pid::from_raw(pid), Some(WaitPidFlag::__WALL | flags));
        // SAFETY: the pidfd is owned by the AsyncFd for as long as it is registered.
        let watched = ns::pidfd_open(pid)
            .ok()
            .and_then(|fd| unsafe { AsyncFd::register(fd) }.ok());
        let exited = match watched {
            Some(fd) => tokio::time::timeout(timeout, fd.readable()).await.is_ok(),
            None => true,
        };
        if !exited {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = reap(WaitPidFlag::empty());
            claim.reaped = true;
            return Err(Error::State(format!(
                "command timed out after {}s",
                timeout.as_secs_f64()
            )));
        }
        let status = reap(WaitPidFlag::empty());
        claim.reaped = true;
        let exit_code = match status {
            Ok(WaitStatus::Exited(_, c)) => c,
            Ok(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
            _ => -1,
        };
        Ok(ExecSyncResult {
            exit_code,
            stdout: drain(out_r),
            stderr: drain(err_r),
        })
    }
}

/// Reads what a pipe holds, without blocking.
fn drain(fd: OwnedFd) -> Vec<u8> {
    let _ = nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = nix::unistd::read(&fd, &mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Reaps what a failed create leaves behind, now and a little later (its processes may
/// still be on their way out).
pub(crate) fn reap_leftovers_soon() {
    peapod_oci::executor::reap_leftovers();
    tokio::spawn(async {
        for ms in [10, 100, 1000] {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            peapod_oci::executor::reap_leftovers();
        }
    });
}

impl Runtime {
    /// A running container whose process is gone is `Unknown`, unless this runtime watches
    /// it: then its exit is on its way to the record.
    fn checked(&self, mut s: ContainerStatus) -> ContainerStatus {
        if s.state == ContainerState::Running
            && !alive(s.pid)
            && !self.live.lock().unwrap().exited.contains_key(&s.id)
        {
            s.state = ContainerState::Unknown;
        }
        s
    }
}

/// Whether `pid` names a live (not zombie) process.
pub(crate) fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::Io {
        context: "creating",
        path: "a pipe".into(),
        source: e.into(),
    })
}

/// Parses `SIGTERM`, `TERM` or `15`.
pub fn parse_signal(s: &str) -> Option<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    name.parse().ok()
}

/// Whether the memory cgroup of `rel` recorded an OOM kill.
fn oom_killed(rel: &str) -> bool {
    peapod_oci::cgroup::dirs(rel).iter().any(|d| {
        ["memory.events", "memory.oom_control"].iter().any(|f| {
            std::fs::read_to_string(d.join(f)).is_ok_and(|s| {
                s.lines().any(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .is_some_and(|n| n > 0)
                })
            })
        })
    })
}

/// The OCI description of a container, from its config, its image and its sandbox.
fn container_spec(
    sb: &crate::records::SandboxRecord,
    sandbox_id: &str,
    config: &ContainerConfig,
    icfg: &peapod_image::ImageConfig,
    rootfs: PathBuf,
    sandbox_dir: &std::path::Path,
    id: &str,
) -> Result<ContainerSpec> {
    // Kubernetes' command/args rules, as containerd applies them.
    let (mut command, mut args) = (config.command.clone(), config.args.clone());
    if command.is_empty() {
        if args.is_empty() {
            args = icfg.cmd.clone();
        }
        command = icfg.entrypoint.clone();
    }
    let argv: Vec<String> = command.into_iter().chain(args).collect();
    if argv.is_empty() {
        return Err(Error::State(
            "no command specified: neither the container nor its image gives one".into(),
        ));
    }
    let mut env: Vec<String> = icfg.env.clone();
    let mut set = |k: &str, v: &str| {
        let kv = format!("{k}={v}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').is_some_and(|(ek, _)| ek == k))
        {
            Some(e) => *e = kv,
            None => env.push(kv),
        }
    };
    set(
        "HOSTNAME",
        std::fs::read_to_string(sandbox_dir.join("hostname"))
            .unwrap_or_default()
            .trim(),
    );
    for (k, v) in &config.envs {
        set(k, v);
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    let cwd = if !config.working_dir.is_empty() {
        config.working_dir.clone()
    } else {
        icfg.working_dir.clone().unwrap_or_else(|| "/".into())
    };
    let cwd_host = rootfs.join(cwd.trim_start_matches('/'));
    if !cwd_host.exists() {
        std::fs::create_dir_all(&cwd_host).map_err(io("creating working directory", &cwd_host))?;
    }
    let sec = &config.security;
    let (mut uid, mut gid) = match &icfg.user {
        Some(u) => crate::user::resolve(&rootfs, u).map_err(Error::State)?,
        None => (0, 0),
    };
    if let Some(u) = sec.run_as_user {
        uid = u as u32;
        gid = crate::user::resolve(&rootfs, &u.to_string())
            .map(|(_, g)| g)
            .unwrap_or(0);
    }
    if let Some(g) = sec.run_as_group {
        gid = g as u32;
    }

    let mut mounts: Vec<MountSpec> = config
        .mounts
        .iter()
        .map(|m| MountSpec::Bind {
            source: m.host_path.clone(),
            destination: m.container_path.clone(),
            readonly: m.readonly,
        })
        .collect();
    let given = |p: &str| config.mounts.iter().any(|m| m.container_path == p);
    for (file, dest) in [
        ("hostname", "/etc/hostname"),
        ("resolv.conf", "/etc/resolv.conf"),
    ] {
        if !given(dest) {
            mounts.push(MountSpec::Bind {
                source: sandbox_dir.join(file),
                destination: dest.into(),
                readonly: false,
            });
        }
    }
    if sandbox_dir.join("shm").is_dir() && !given("/dev/shm") {
        mounts.push(MountSpec::Bind {
            source: sandbox_dir.join("shm"),
            destination: "/dev/shm".into(),
            readonly: false,
        });
    }

    let infra = sb.status.infra_pid;
    let proc_ns = |k: &str| Some(PathBuf::from(format!("/proc/{infra}/ns/{k}")));
    let mut namespaces = vec![NamespaceSpec {
        kind: NsKind::Mnt,
        path: None,
    }];
    if let Some(netns) = &sb.status.netns {
        namespaces.push(NamespaceSpec {
            kind: NsKind::Net,
            path: Some(netns.clone()),
        });
        namespaces.push(NamespaceSpec {
            kind: NsKind::Uts,
            path: proc_ns("uts"),
        });
    }
    if sb.status.namespaces.ipc != NamespaceMode::Node {
        namespaces.push(NamespaceSpec {
            kind: NsKind::Ipc,
            path: proc_ns("ipc"),
        });
    }
    match sec.pid_namespace {
        NamespaceMode::Pod => namespaces.push(NamespaceSpec {
            kind: NsKind::Pid,
            path: proc_ns("pid"),
        }),
        NamespaceMode::Container => namespaces.push(NamespaceSpec {
            kind: NsKind::Pid,
            path: None,
        }),
        NamespaceMode::Node => {}
    }
    let mut annotations: std::collections::HashMap<String, String> = config
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(
        "io.kubernetes.cri.container-type".into(),
        "container".into(),
    );
    annotations.insert("io.kubernetes.cri.sandbox-id".into(), sandbox_id.into());
    Ok(ContainerSpec {
        rootfs,
        readonly_rootfs: sec.readonly_rootfs,
        args: argv,
        env,
        cwd,
        uid,
        gid,
        additional_gids: sec.supplemental_groups.iter().map(|g| *g as u32).collect(),
        hostname: None,
        namespaces,
        mounts,
        cgroups_path: format!("{}/{}", sb.config.cgroup_parent, id),
        cap_add: sec.add_capabilities.clone(),
        cap_drop: sec.drop_capabilities.clone(),
        privileged: sec.privileged,
        no_new_privileges: sec.no_new_privs,
        memory_limit: config.resources.memory_limit_in_bytes,
        cpu_quota: config.resources.cpu_quota,
        cpu_shares: config.resources.cpu_shares,
        annotations,
    })
}
