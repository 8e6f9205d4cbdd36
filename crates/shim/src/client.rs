//! What the CLI uses: finding pods, starting shims, talking to them, and cleaning up after
//! a shim that is gone.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use peapod_kubelet::PodState;
use peapod_types::api::Pod;
use peapod_types::config::Config;

use crate::paths::Paths;
use crate::{Request, Response};

/// Errors of the shim and its clients.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// A file or socket operation failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A state file is malformed.
    #[error("malformed state: {0}")]
    Json(#[from] serde_json::Error),
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] peapod_runtime::Error),
    /// The shim did not start or answer.
    #[error("{0}")]
    Shim(String),
}

/// A pod as found under the state root.
#[derive(Debug, Clone)]
pub struct PodHandle {
    /// Its UID.
    pub uid: String,
    /// Its paths.
    pub paths: Paths,
    /// The pod as applied.
    pub pod: Pod,
    /// The last published state, if any.
    pub state: Option<PodState>,
    /// Whether its shim runs.
    pub shim_alive: bool,
}

impl PodHandle {
    /// Name.
    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }

    /// Namespace.
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// The pod with its status; phase `Unknown` when the shim is gone.
    pub fn current(&self) -> Pod {
        let mut pod = self
            .state
            .as_ref()
            .map_or_else(|| self.pod.clone(), |s| s.pod.clone());
        if !self.shim_alive {
            let status = pod.status.get_or_insert_with(Default::default);
            status.phase = Some("Unknown".into());
            status.reason = Some("NodeLost".into());
            status.message = Some("the pod's supervising process (shim) is gone".into());
        }
        pod
    }
}

fn shim_alive(paths: &Paths, uid: &str) -> bool {
    let Some(pid) = std::fs::read_to_string(paths.pid_file())
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return false;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rsplit_once(") ")
        .is_some_and(|(_, r)| r.starts_with('Z'));
    !zombie && cmdline.contains("__shim") && cmdline.contains(uid)
}

/// Every pod under the state root, oldest first.
pub fn list_pods(cfg: &Config) -> Vec<PodHandle> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(cfg.run_root.join("pods"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let uid = e.file_name().to_string_lossy().into_owned();
        let Ok(data) = std::fs::read(e.path().join("pod.json")) else {
            continue;
        };
        let Ok(pod) = serde_json::from_slice::<Pod>(&data) else {
            continue;
        };
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let paths = Paths::new(
            cfg,
            &uid,
            &ns,
            pod.metadata.name.as_deref().unwrap_or_default(),
        );
        let state = std::fs::read(paths.state_file())
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok());
        let shim_alive = shim_alive(&paths, &uid);
        out.push(PodHandle {
            uid,
            paths,
            pod,
            state,
            shim_alive,
        });
    }
    let created = |p: &PodHandle| p.pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    out.sort_by_key(|p| created(p));
    out
}

/// Starts the shim of the pod whose `pod.json` is in `run_dir`: `exe ARGS… __shim UID`,
/// detached in its own session, and waits until it answers.
pub fn spawn(
    exe: &Path,
    args: &[std::ffi::OsString],
    uid: &str,
    run_dir: &Path,
) -> Result<(), ShimError> {
    let log = std::fs::File::create(run_dir.join("shim.log"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(args).arg("__shim").arg(uid);
    cmd.stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let socket = run_dir.join("shim.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if request(&socket, &Request::Ping, Duration::from_secs(2)).is_ok_and(|r| r.ok) {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(run_dir.join("shim.log")).unwrap_or_default();
            return Err(ShimError::Shim(format!(
                "the shim exited ({status}): {}",
                log.trim()
            )));
        }
        if Instant::now() > deadline {
            return Err(ShimError::Shim("the shim did not answer within 20s".into()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Sends one request to a shim and reads its answer.
pub fn request(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, ShimError> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all((serde_json::to_string(req)? + "\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line)?;
    if line.is_empty() {
        return Err(ShimError::Shim("the shim closed the connection".into()));
    }
    Ok(serde_json::from_str(&line)?)
}

/// Removes everything of a pod whose shim is gone: its processes, sandboxes, containers,
/// mounts, cgroups, volumes, logs and state.
pub async fn cleanup_orphan(cfg: &Config, pod: &PodHandle) -> Result<(), ShimError> {
    let rt = peapod_runtime::Runtime::new(crate::server::runtime_config(cfg))?;
    for sb in rt.list_pod_sandbox() {
        if sb.metadata.uid == pod.uid {
            rt.remove_pod_sandbox(&sb.id).await?;
        }
    }
    let cgroup = Paths::cgroup_parent(&pod.uid);
    for pid in peapod_oci::cgroup::pids(&cgroup) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
    let _ = peapod_oci::cgroup::remove(&cgroup);
    peapod_oci::cgroup::remove_if_empty("peapod");
    peapod_kubelet::volumes::teardown(&pod.paths.pod_dir)?;
    for d in [&pod.paths.pod_dir, &pod.paths.log_dir, &pod.paths.run_dir] {
        match std::fs::remove_dir_all(d) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}
