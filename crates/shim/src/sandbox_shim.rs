//! The supervisor of one sandbox made through the CRI: the shim without the pod
//! controller (the kubelet is the controller). It makes the sandbox, is the parent of its
//! infra and container processes, records their exits, and takes the operations that make
//! or signal processes from the CRI server over `shim.sock`, one JSON request per
//! connection. It outlives the server, so containers keep running and their exits are
//! recorded while the server is down.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use peapod_runtime::{ContainerConfig, Runtime, RuntimeService, SandboxConfig};
use peapod_types::config::Config;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::ShimError;
use crate::server::{CRI_SCOPE, runtime_config_for};

/// Where the supervisor of CRI sandbox `id` keeps its files.
pub fn sandbox_shim_dir(cfg: &Config, id: &str) -> PathBuf {
    cfg.run_root.join("cri").join(id)
}

/// A request to a sandbox's supervisor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SandboxRequest {
    /// CreateContainer.
    Create {
        /// The container's config.
        config: Box<ContainerConfig>,
    },
    /// StartContainer.
    Start {
        /// The container.
        id: String,
    },
    /// StopContainer.
    Stop {
        /// The container.
        id: String,
        /// Before SIGKILL, in milliseconds.
        timeout_ms: u64,
    },
    /// RemoveContainer.
    Remove {
        /// The container.
        id: String,
    },
    /// UpdateContainerResources.
    UpdateResources {
        /// The container.
        id: String,
        /// Its new limits.
        resources: peapod_runtime::Resources,
    },
    /// ReopenContainerLog.
    ReopenLog {
        /// The container.
        id: String,
    },
    /// ExecSync.
    ExecSync {
        /// The container.
        id: String,
        /// The command.
        cmd: Vec<String>,
        /// Before the process is killed, in milliseconds.
        timeout_ms: u64,
    },
    /// Exec: after the answer, the connection carries the session's frames.
    Exec {
        /// The container.
        id: String,
        /// The command.
        cmd: Vec<String>,
        /// With a terminal.
        tty: bool,
        /// With an input.
        stdin: bool,
    },
    /// Attach: after the answer, the connection carries the session's frames.
    Attach {
        /// The container.
        id: String,
        /// With its input.
        stdin: bool,
    },
    /// StopPodSandbox.
    StopSandbox,
    /// RemovePodSandbox; the supervisor exits once it is done.
    RemoveSandbox,
}

/// A supervisor's answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SandboxResponse {
    /// Whether the request succeeded.
    pub ok: bool,
    /// Why not.
    #[serde(default)]
    pub error: String,
    /// Whether the failure was "not found".
    #[serde(default)]
    pub not_found: bool,
    /// A created container's ID.
    #[serde(default)]
    pub id: String,
    /// ExecSync's exit code.
    #[serde(default)]
    pub exit_code: i32,
    /// ExecSync's standard output.
    #[serde(default)]
    pub stdout: Vec<u8>,
    /// ExecSync's standard error.
    #[serde(default)]
    pub stderr: Vec<u8>,
}

impl SandboxResponse {
    fn failed(e: &peapod_runtime::Error) -> SandboxResponse {
        SandboxResponse {
            error: e.to_string(),
            not_found: e.is_not_found(),
            ..Default::default()
        }
    }

    fn done() -> SandboxResponse {
        SandboxResponse {
            ok: true,
            ..Default::default()
        }
    }
}

/// Runs the supervisor of CRI sandbox `id`, whose config the CRI server wrote to
/// `config.json` in [`sandbox_shim_dir`]: makes the sandbox (writing `error` and failing
/// if it cannot), then serves requests until the sandbox is removed. Once it serves, it
/// writes a byte to `ready_fd`, a pipe its starter reads (which sees the pipe close
/// instead if it fails). Call it from a fresh, single-threaded process: it becomes a
/// child subreaper and forks containers.
pub fn run_sandbox_shim(cfg: Config, id: &str, ready_fd: Option<i32>) -> Result<(), ShimError> {
    // Taken first, and closed on exec, so that no plugin or container holds it open.
    let ready = ready_fd.map(|fd| {
        // SAFETY: the starter passes this descriptor for this process to own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let _ = nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
        std::fs::File::from(fd)
    });
    // SAFETY: prctl with an integer argument.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let dir = sandbox_shim_dir(&cfg, id);
    std::fs::write(dir.join("shim.pid"), std::process::id().to_string())?;
    let config: SandboxConfig = serde_json::from_slice(&std::fs::read(dir.join("config.json"))?)?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    tokio.block_on(supervise(cfg, id.to_string(), dir, config, ready))
}

async fn supervise(
    cfg: Config,
    id: String,
    dir: PathBuf,
    config: SandboxConfig,
    ready: Option<std::fs::File>,
) -> Result<(), ShimError> {
    let rt = Runtime::new(runtime_config_for(&cfg, CRI_SCOPE))?;
    tokio::spawn(crate::server::reap_orphans());
    if let Err(e) = rt.run_pod_sandbox_as(&id, config).await {
        std::fs::write(dir.join("error"), e.to_string())?;
        return Err(e.into());
    }
    let socket = dir.join("shim.sock");
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    if let Some(mut r) = ready {
        use std::io::Write;
        let _ = r.write_all(b"1");
    }
    let (removed, mut done) = tokio::sync::mpsc::channel::<UnixStream>(1);
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let Ok((stream, _)) = conn else { continue };
                let (rt, removed, id) = (Arc::clone(&rt), removed.clone(), id.clone());
                tokio::spawn(async move { serve_one(rt, id, stream, removed).await });
            }
            Some(mut stream) = done.recv() => {
                // Removed: answer, clean up and go.
                let _ = std::fs::remove_dir_all(&dir);
                let _ = reply(&mut stream, &SandboxResponse::done()).await;
                return Ok(());
            }
        }
    }
}

async fn reply(stream: &mut UnixStream, r: &SandboxResponse) -> std::io::Result<()> {
    let line = serde_json::to_string(r).expect("responses serialize") + "\n";
    stream.write_all(line.as_bytes()).await
}

/// Handles one connection's request.
async fn serve_one(
    rt: Arc<Runtime>,
    sandbox: String,
    stream: UnixStream,
    removed: tokio::sync::mpsc::Sender<UnixStream>,
) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let mut stream = reader.into_inner();
    let req = match serde_json::from_str::<SandboxRequest>(&line) {
        Ok(r) => r,
        Err(e) => {
            let r = SandboxResponse {
                error: format!("bad request: {e}"),
                ..Default::default()
            };
            let _ = reply(&mut stream, &r).await;
            return;
        }
    };
    let answer = |r: peapod_runtime::Result<()>| match r {
        Ok(()) => SandboxResponse::done(),
        Err(e) => SandboxResponse::failed(&e),
    };
    let r = match req {
        SandboxRequest::Create { config } => match rt.create_container(&sandbox, *config).await {
            Ok(id) => SandboxResponse {
                ok: true,
                id,
                ..Default::default()
            },
            Err(e) => SandboxResponse::failed(&e),
        },
        SandboxRequest::Start { id } => answer(rt.start_container(&id).await),
        SandboxRequest::Stop { id, timeout_ms } => answer(
            rt.stop_container(&id, Duration::from_millis(timeout_ms))
                .await,
        ),
        SandboxRequest::Remove { id } => answer(rt.remove_container(&id).await),
        SandboxRequest::UpdateResources { id, resources } => {
            answer(rt.update_container_resources(&id, resources).await)
        }
        SandboxRequest::ReopenLog { id } => answer(rt.reopen_container_log(&id).await),
        SandboxRequest::ExecSync {
            id,
            cmd,
            timeout_ms,
        } => {
            match rt
                .exec_sync(&id, cmd, Duration::from_millis(timeout_ms))
                .await
            {
                Ok(r) => SandboxResponse {
                    ok: true,
                    exit_code: r.exit_code,
                    stdout: r.stdout,
                    stderr: r.stderr,
                    ..Default::default()
                },
                Err(e) => SandboxResponse::failed(&e),
            }
        }
        SandboxRequest::Exec {
            id,
            cmd,
            tty,
            stdin,
        } => {
            let session = rt.exec_streams(&id, cmd, tty, stdin).await;
            return serve_session(stream, session).await;
        }
        SandboxRequest::Attach { id, stdin } => {
            let session = rt.attach_streams(&id, stdin).await;
            return serve_session(stream, session).await;
        }
        SandboxRequest::StopSandbox => answer(rt.stop_pod_sandbox(&sandbox).await),
        SandboxRequest::RemoveSandbox => match rt.remove_pod_sandbox(&sandbox).await {
            Ok(()) => {
                let _ = removed.send(stream).await;
                return;
            }
            Err(e) => SandboxResponse::failed(&e),
        },
    };
    let _ = reply(&mut stream, &r).await;
}

/// Answers a session request, and carries the session if there is one.
async fn serve_session(
    mut stream: UnixStream,
    session: peapod_runtime::Result<peapod_runtime::StreamSession>,
) {
    match session {
        Ok(session) => {
            if reply(&mut stream, &SandboxResponse::done()).await.is_ok() {
                crate::frames::serve(stream, session).await;
            }
        }
        Err(e) => {
            let _ = reply(&mut stream, &SandboxResponse::failed(&e)).await;
        }
    }
}

/// Sends a session request (exec, attach) to the supervisor whose socket is `socket`;
/// returns its answer and the connection, which carries the session's frames next.
pub async fn open_session(
    socket: &Path,
    req: &SandboxRequest,
    timeout: Duration,
) -> std::io::Result<(SandboxResponse, UnixStream)> {
    let talk = async {
        let mut s = UnixStream::connect(socket).await?;
        let line = serde_json::to_string(req).expect("requests serialize") + "\n";
        s.write_all(line.as_bytes()).await?;
        // Byte by byte: the frames that follow the line must stay unread.
        let mut answer = Vec::new();
        let mut b = [0u8; 1];
        loop {
            if s.read(&mut b).await? == 0 {
                return Err(std::io::Error::other(
                    "the sandbox's supervisor closed the connection",
                ));
            }
            if b[0] == b'\n' {
                break;
            }
            answer.push(b[0]);
        }
        let r = serde_json::from_slice(&answer).map_err(std::io::Error::other)?;
        Ok((r, s))
    };
    tokio::time::timeout(timeout, talk)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::other(
                "the sandbox's supervisor did not answer in time",
            ))
        })
}

/// Sends one request to the supervisor whose socket is `socket`, waiting up to `timeout`.
pub async fn ask(
    socket: &Path,
    req: &SandboxRequest,
    timeout: Duration,
) -> std::io::Result<SandboxResponse> {
    let talk = async {
        let mut s = UnixStream::connect(socket).await?;
        let line = serde_json::to_string(req).expect("requests serialize") + "\n";
        s.write_all(line.as_bytes()).await?;
        let mut reader = BufReader::new(s);
        let mut answer = String::new();
        reader.read_line(&mut answer).await?;
        if answer.is_empty() {
            return Err(std::io::Error::other(
                "the sandbox's supervisor closed the connection",
            ));
        }
        serde_json::from_str(&answer).map_err(std::io::Error::other)
    };
    tokio::time::timeout(timeout, talk)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::other(
                "the sandbox's supervisor did not answer in time",
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_json() {
        let r = serde_json::to_string(&SandboxRequest::Stop {
            id: "c1".into(),
            timeout_ms: 2000,
        })
        .unwrap();
        assert_eq!(r, r#"{"op":"stop","id":"c1","timeout_ms":2000}"#);
        let back: SandboxRequest = serde_json::from_str(r#"{"op":"remove_sandbox"}"#).unwrap();
        assert!(matches!(back, SandboxRequest::RemoveSandbox));
        let resp: SandboxResponse =
            serde_json::from_str(r#"{"ok":false,"error":"x","not_found":true}"#).unwrap();
        assert!(resp.not_found && !resp.ok);
    }
}
