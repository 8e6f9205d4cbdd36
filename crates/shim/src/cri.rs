//! The CRI server's runtime: the CRI traits over one supervisor per sandbox. What makes,
//! signals or waits for processes (RunPodSandbox, container create/start/stop/remove,
//! ExecSync, sandbox stop/remove) goes to the sandbox's supervisor; what reads (statuses,
//! lists, images) is answered from the records by this process's own runtime, in the CRI
//! scope, so `apply`'s pods are never seen. When a supervisor is gone, stop and remove are
//! done from the records.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use peapod_runtime::{
    AuthConfig, ContainerConfig, ContainerEvent, ContainerFilter, ContainerStats, ContainerStatus,
    Error, ExecSyncResult, FsUsage, ImageInfo, ImageService, PulledImage, Result, Runtime,
    RuntimeConditions, RuntimeService, SandboxConfig, SandboxFilter, SandboxStats, SandboxStatus,
    StreamSession, Version,
};
use peapod_types::config::Config;
use tokio::io::AsyncReadExt;
use tokio::sync::broadcast;

use crate::sandbox_shim::{SandboxRequest, SandboxResponse, ask, open_session, sandbox_shim_dir};
use crate::server::{CRI_SCOPE, runtime_config_for};

/// How long a sandbox's creation may take (its infra image may have to be pulled).
const CREATE_TIMEOUT: Duration = Duration::from_secs(300);

/// The descriptor a supervisor being started gets its readiness pipe as.
const READY_FD: i32 = 3;

/// How long a supervisor may take to start an exec or attach.
const SESSION_TIMEOUT: Duration = Duration::from_secs(30);

/// How long other requests to a supervisor may take (a stop waits out its grace period,
/// which the request itself bounds).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);

/// The CRI server's backend.
pub struct CriRuntime {
    cfg: Config,
    /// How to start a supervisor: `exe args… __cri-shim ID`.
    exe: PathBuf,
    args: Vec<OsString>,
    rt: Arc<Runtime>,
}

impl CriRuntime {
    /// Opens the backend: releases network attachments a crash left, and removes the
    /// sandboxes whose creation a crash interrupted (no supervisor, never made ready).
    pub async fn open(cfg: Config, exe: PathBuf, args: Vec<OsString>) -> Result<Arc<CriRuntime>> {
        let rt = Runtime::new(runtime_config_for(&cfg, CRI_SCOPE))?;
        rt.collect_network_garbage().await;
        let me = Arc::new(CriRuntime { cfg, exe, args, rt });
        me.clean_half_made().await;
        Ok(me)
    }

    async fn clean_half_made(&self) {
        let dirs = std::fs::read_dir(self.cfg.run_root.join("cri"));
        for e in dirs.into_iter().flatten().flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if self.supervisor_alive(&id) {
                continue;
            }
            let unknown = self.rt.pod_sandbox_status(&id).is_err();
            if unknown || self.rt.creation_incomplete(&id) {
                tracing::info!(sandbox = %id, "removing a sandbox whose creation was interrupted");
                if let Err(err) = self.rt.remove_pod_sandbox(&id).await {
                    tracing::warn!(sandbox = %id, "{err}");
                }
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    fn socket(&self, sandbox: &str) -> PathBuf {
        sandbox_shim_dir(&self.cfg, sandbox).join("shim.sock")
    }

    /// Whether sandbox `id`'s supervisor runs.
    fn supervisor_alive(&self, id: &str) -> bool {
        self.rt.live_owner(id).is_some()
    }

    /// Sends `req` to the supervisor of `sandbox`.
    async fn ask(&self, sandbox: &str, req: &SandboxRequest) -> Result<SandboxResponse> {
        let r = ask(&self.socket(sandbox), req, REQUEST_TIMEOUT)
            .await
            .map_err(|e| Error::Remote(format!("sandbox {sandbox}'s supervisor: {e}")))?;
        if r.ok {
            return Ok(r);
        }
        if r.not_found {
            return Err(Error::NotFound {
                kind: "container",
                id: r.error,
            });
        }
        Err(Error::Remote(r.error))
    }

    /// Opens a session (exec, attach) with container `id` through its sandbox's supervisor.
    async fn session(
        &self,
        id: &str,
        req: impl FnOnce(String) -> SandboxRequest,
        tty: bool,
        with_input: bool,
    ) -> Result<StreamSession> {
        let c = self.rt.container_status(id)?;
        let sandbox = c.sandbox_id.clone();
        let (r, conn) = open_session(&self.socket(&sandbox), &req(c.id), SESSION_TIMEOUT)
            .await
            .map_err(|e| Error::Remote(format!("sandbox {sandbox}'s supervisor: {e}")))?;
        if !r.ok {
            return Err(if r.not_found {
                Error::NotFound {
                    kind: "container",
                    id: r.error,
                }
            } else {
                Error::Remote(r.error)
            });
        }
        Ok(crate::frames::client(conn, tty, with_input))
    }

    /// The sandbox of container `id`.
    fn sandbox_of(&self, id: &str) -> Result<String> {
        Ok(self.rt.container_status(id)?.sandbox_id)
    }
}

impl RuntimeService for CriRuntime {
    fn version(&self) -> Version {
        self.rt.version()
    }

    fn status(&self) -> RuntimeConditions {
        self.rt.status()
    }

    async fn run_pod_sandbox(&self, config: SandboxConfig) -> Result<String> {
        let id = peapod_runtime::new_sandbox_id();
        let dir = sandbox_shim_dir(&self.cfg, &id);
        let io =
            |e: std::io::Error| Error::Remote(format!("starting sandbox {id}'s supervisor: {e}"));
        std::fs::create_dir_all(&dir).map_err(io)?;
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_vec(&config).expect("configs serialize"),
        )
        .map_err(io)?;
        let log = std::fs::File::create(dir.join("shim.log")).map_err(io)?;
        // The supervisor writes a byte to this pipe once it serves; the pipe closes
        // without one if it fails.
        let (ready, ready_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io(e.into()))?;
        let w = ready_w.as_raw_fd();
        let mut cmd = std::process::Command::new(&self.exe);
        cmd.args(&self.args)
            .arg("__cri-shim")
            .arg(&id)
            .arg(format!("--ready-fd={READY_FD}"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(io)?)
            .stderr(log);
        // SAFETY: setsid, dup2 and fcntl are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                // dup2 onto itself would leave close-on-exec set.
                if w == READY_FD {
                    if libc::fcntl(w, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(w, READY_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let spawned = cmd.spawn();
        drop(ready_w);
        let mut child = spawned.map_err(io)?;
        let mut ready = tokio::net::unix::pipe::Receiver::from_owned_fd(ready).map_err(io)?;
        let mut byte = [0u8; 1];
        let served = tokio::time::timeout(CREATE_TIMEOUT, ready.read(&mut byte)).await;
        if matches!(served, Ok(Ok(1))) {
            return Ok(id);
        }
        let why = std::fs::read_to_string(dir.join("error"))
            .or_else(|_| std::fs::read_to_string(dir.join("shim.log")))
            .unwrap_or_default();
        // The reaper may have collected it already: an error then means it is gone.
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
        }
        let _ = self.rt.remove_pod_sandbox(&id).await;
        let _ = std::fs::remove_dir_all(&dir);
        let why = why.trim();
        Err(Error::Remote(if !why.is_empty() {
            why.to_string()
        } else if served.is_err() {
            format!(
                "the sandbox's supervisor did not finish within {}s",
                CREATE_TIMEOUT.as_secs()
            )
        } else {
            "the sandbox's supervisor failed".into()
        }))
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let Ok(s) = self.rt.pod_sandbox_status(id) else {
            return Ok(());
        };
        if self.supervisor_alive(&s.id) {
            self.ask(&s.id, &SandboxRequest::StopSandbox).await?;
            return Ok(());
        }
        self.rt.stop_pod_sandbox(&s.id).await
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let Ok(s) = self.rt.pod_sandbox_status(id) else {
            return Ok(());
        };
        if self.supervisor_alive(&s.id) {
            self.ask(&s.id, &SandboxRequest::RemoveSandbox).await?;
        } else {
            self.rt.remove_pod_sandbox(&s.id).await?;
        }
        let _ = std::fs::remove_dir_all(sandbox_shim_dir(&self.cfg, &s.id));
        Ok(())
    }

    fn pod_sandbox_status(&self, id: &str) -> Result<SandboxStatus> {
        self.rt.pod_sandbox_status(id)
    }

    fn list_pod_sandbox(&self, filter: &SandboxFilter) -> Result<Vec<SandboxStatus>> {
        self.rt.list_pod_sandbox(filter)
    }

    async fn create_container(&self, sandbox_id: &str, config: ContainerConfig) -> Result<String> {
        let s = self.rt.pod_sandbox_status(sandbox_id)?;
        let config = Box::new(config);
        let r = self.ask(&s.id, &SandboxRequest::Create { config }).await?;
        Ok(r.id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let sandbox = self.sandbox_of(id)?;
        let id = self.rt.container_status(id)?.id;
        self.ask(&sandbox, &SandboxRequest::Start { id }).await?;
        Ok(())
    }

    async fn stop_container(&self, id: &str, timeout: Duration) -> Result<()> {
        let Ok(c) = self.rt.container_status(id) else {
            return Ok(());
        };
        if !self.supervisor_alive(&c.sandbox_id) {
            return self.rt.stop_container(&c.id, timeout).await;
        }
        let req = SandboxRequest::Stop {
            id: c.id,
            timeout_ms: timeout.as_millis() as u64,
        };
        self.ask(&c.sandbox_id, &req).await?;
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let Ok(c) = self.rt.container_status(id) else {
            return Ok(());
        };
        if !self.supervisor_alive(&c.sandbox_id) {
            return self.rt.remove_container(&c.id).await;
        }
        self.ask(&c.sandbox_id, &SandboxRequest::Remove { id: c.id })
            .await?;
        Ok(())
    }

    async fn update_pod_sandbox_resources(
        &self,
        id: &str,
        resources: peapod_runtime::Resources,
    ) -> Result<()> {
        self.rt.update_pod_sandbox_resources(id, resources).await
    }

    async fn update_container_resources(
        &self,
        id: &str,
        resources: peapod_runtime::Resources,
    ) -> Result<()> {
        let c = self.rt.container_status(id)?;
        if !self.supervisor_alive(&c.sandbox_id) {
            return self.rt.update_container_resources(&c.id, resources).await;
        }
        let req = SandboxRequest::UpdateResources {
            id: c.id,
            resources,
        };
        self.ask(&c.sandbox_id, &req).await?;
        Ok(())
    }

    async fn reopen_container_log(&self, id: &str) -> Result<()> {
        let c = self.rt.container_status(id)?;
        if !self.supervisor_alive(&c.sandbox_id) {
            return Err(peapod_runtime::Error::State(format!(
                "container {} is not running",
                c.id
            )));
        }
        self.ask(&c.sandbox_id, &SandboxRequest::ReopenLog { id: c.id })
            .await?;
        Ok(())
    }

    fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        self.rt.container_status(id)
    }

    fn list_containers(&self, filter: &ContainerFilter) -> Result<Vec<ContainerStatus>> {
        self.rt.list_containers(filter)
    }

    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecSyncResult> {
        let c = self.rt.container_status(id)?;
        let req = SandboxRequest::ExecSync {
            id: c.id,
            cmd,
            timeout_ms: timeout.as_millis() as u64,
        };
        let r = self.ask(&c.sandbox_id, &req).await?;
        Ok(ExecSyncResult {
            exit_code: r.exit_code,
            stdout: r.stdout,
            stderr: r.stderr,
        })
    }

    async fn exec_streams(
        &self,
        id: &str,
        cmd: Vec<String>,
        tty: bool,
        stdin: bool,
    ) -> Result<StreamSession> {
        let req = |id| SandboxRequest::Exec {
            id,
            cmd,
            tty,
            stdin,
        };
        self.session(id, req, tty, stdin).await
    }

    async fn attach_streams(&self, id: &str, stdin: bool) -> Result<StreamSession> {
        // Whether it has a terminal and an input is the container's own setting.
        let c = self.rt.container_config(id)?;
        let req = |id| SandboxRequest::Attach { id, stdin };
        self.session(id, req, c.tty, stdin && c.stdin).await
    }

    fn container_stats(&self, id: &str) -> Result<ContainerStats> {
        RuntimeService::container_stats(&*self.rt, id)
    }

    fn list_container_stats(&self, filter: &ContainerFilter) -> Result<Vec<ContainerStats>> {
        RuntimeService::list_container_stats(&*self.rt, filter)
    }

    fn pod_sandbox_stats(&self, id: &str) -> Result<SandboxStats> {
        RuntimeService::pod_sandbox_stats(&*self.rt, id)
    }

    fn list_pod_sandbox_stats(&self, filter: &SandboxFilter) -> Result<Vec<SandboxStats>> {
        RuntimeService::list_pod_sandbox_stats(&*self.rt, filter)
    }

    fn container_events(&self) -> broadcast::Receiver<ContainerEvent> {
        self.rt.container_events()
    }

    async fn dial(
        &self,
        sandbox_id: &str,
        addr: SocketAddr,
        timeout: Duration,
    ) -> std::io::Result<TcpStream> {
        self.rt.dial(sandbox_id, addr, timeout).await
    }
}

impl ImageService for CriRuntime {
    async fn pull_image(&self, image: &str, auth: Option<AuthConfig>) -> Result<PulledImage> {
        self.rt.pull_image(image, auth).await
    }

    fn image_status(&self, image: &str) -> Result<Option<ImageInfo>> {
        self.rt.image_status(image)
    }

    fn list_images(&self) -> Result<Vec<ImageInfo>> {
        self.rt.list_images()
    }

    fn remove_image(&self, image: &str) -> Result<()> {
        self.rt.remove_image(image)
    }

    fn image_fs_info(&self) -> Result<FsUsage> {
        self.rt.image_fs_info()
    }
}

/// Reaps the supervisors that exit (and anything else this process does not wait for).
pub async fn reap_children() {
    crate::server::reap_orphans().await
}
