//! What the CLI uses: finding pods, starting shims, talking to them, running a process in
//! a container, and having the runtime remove what a pod whose shim is gone left behind.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use peapod_kubelet::PodState;
use peapod_runtime::{
    ContainerFilter, ContainerStatus, ExecProcess, ExecRequest, Runtime, RuntimeService,
};
use peapod_types::api::Pod;
use peapod_types::config::Config;
use peapod_types::pod::DefaultedPod;

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
    /// What the pod left could not all be removed.
    #[error(transparent)]
    Cleanup(#[from] peapod_kubelet::cleanup::CleanupError),
}

/// A pod as found under the state root.
#[derive(Debug, Clone)]
pub struct PodHandle {
    /// Its UID.
    pub uid: String,
    /// Its paths.
    pub paths: Paths,
    /// The pod as applied.
    pub pod: DefaultedPod,
    /// The last published state, if any.
    pub state: Option<PodState>,
    /// Whether its shim runs.
    pub shim_alive: bool,
}

impl PodHandle {
    /// A TCP connection to `port` on the pod's loopback, made from inside its network
    /// namespace (the node's with the host network): what `port-forward` needs.
    pub fn connect(
        &self,
        port: u16,
        timeout: std::time::Duration,
    ) -> std::io::Result<std::net::TcpStream> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        if self.pod.host_network() {
            return peapod_runtime::connect_tcp_in(None, addr, timeout);
        }
        let pid = self.state.as_ref().map_or(0, |s| s.infra_pid);
        if pid <= 0 || !self.shim_alive {
            return Err(std::io::Error::other(format!(
                "pod {:?} has no running sandbox",
                self.name()
            )));
        }
        let netns = std::path::PathBuf::from(format!("/proc/{pid}/ns/net"));
        peapod_runtime::connect_tcp_in(Some(&netns), addr, timeout)
    }

    /// Name.
    pub fn name(&self) -> &str {
        self.pod.name()
    }

    /// Namespace.
    pub fn namespace(&self) -> &str {
        self.pod.namespace()
    }

    /// The pod with its status; phase `Unknown` when the shim is gone.
    pub fn current(&self) -> Pod {
        let mut pod = self
            .state
            .as_ref()
            .map_or_else(|| self.pod.pod().clone(), |s| s.pod.clone());
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
    for e in std::fs::read_dir(Paths::run_dirs(cfg))
        .into_iter()
        .flatten()
        .flatten()
    {
        let uid = e.file_name().to_string_lossy().into_owned();
        let Ok(data) = std::fs::read(e.path().join("pod.json")) else {
            continue;
        };
        let Ok(pod) = serde_json::from_slice::<DefaultedPod>(&data) else {
            continue;
        };
        let paths = Paths::new(cfg, &uid);
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
    let created = |p: &PodHandle| {
        p.pod
            .pod()
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
    };
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

/// Creates a pod: gives it a UID and creation time, writes its `pod.json` (and the Docker
/// configs of its pull secrets, 0600), and starts its shim. Returns the UID; on failure
/// nothing is left.
pub fn create_pod(
    cfg: &Config,
    mut pod: Pod,
    pull_secrets: &[serde_json::Value],
    exe: &Path,
    shim_args: &[std::ffi::OsString],
) -> Result<String, ShimError> {
    let uid = crate::objects::new_uid();
    pod.metadata.uid = Some(uid.clone());
    pod.metadata.creation_timestamp = Some(peapod_types::meta::Time(jiff::Timestamp::now()));
    let paths = Paths::new(cfg, &uid);
    let result = (|| {
        std::fs::create_dir_all(&paths.run_dir)?;
        std::fs::write(paths.pod_file(), serde_json::to_vec(&pod)?)?;
        if !pull_secrets.is_empty() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(paths.pull_secrets_file())?
                .write_all(&serde_json::to_vec(pull_secrets)?)?;
        }
        spawn(exe, shim_args, &uid, &paths.run_dir)
    })();
    match result {
        Ok(()) => Ok(uid),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&paths.run_dir);
            Err(e)
        }
    }
}

/// Resizes a running pod in place: `new` (the pod as applied, whose containers' CPU and
/// memory changed) becomes its `pod.json`, and its shim gives the containers their new
/// resources (or restarts those whose `resizePolicy` asks for it).
pub fn update_pod(pod: &PodHandle, new: &Pod) -> Result<(), ShimError> {
    if !pod.shim_alive {
        return Err(ShimError::Shim(format!(
            "pod {:?} has no supervisor: it cannot be resized",
            pod.pod.name()
        )));
    }
    let mut applied = pod.pod.pod().clone();
    applied.spec = new.spec.clone();
    crate::paths::write_atomic(&pod.paths.pod_file(), &serde_json::to_vec(&applied)?)?;
    let req = Request::Update {
        pod: Box::new(applied),
    };
    match request(&pod.paths.socket(), &req, Duration::from_secs(10)) {
        Ok(r) if r.ok => Ok(()),
        Ok(r) => Err(ShimError::Shim(r.error)),
        Err(e) => Err(e),
    }
}

/// Deletes one pod through its shim (with `grace`, or the pod's own grace period), or has
/// the runtime remove what it left when the shim is gone. Returns when it is gone.
pub fn delete_pod(cfg: &Config, pod: &PodHandle, grace: Option<i64>) -> Result<(), ShimError> {
    let pod_grace = pod.pod.grace_period();
    let wait = Duration::from_secs((grace.unwrap_or(pod_grace).max(0) as u64) + 60);
    if pod.shim_alive {
        match request(&pod.paths.socket(), &Request::Delete { grace }, wait) {
            Ok(r) if r.ok => return Ok(()),
            Ok(r) => return Err(ShimError::Shim(r.error)),
            Err(e) if list_pods(cfg).iter().all(|p| p.uid != pod.uid) => {
                tracing::debug!("shim closed early: {e}");
                return Ok(());
            }
            Err(e) => {
                tracing::warn!("the shim did not complete the deletion ({e}); cleaning up directly")
            }
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(cleanup_orphan(cfg, pod))
}

/// The Docker configs of the Secrets a pod names in `imagePullSecrets`, in order, found
/// through `lookup(namespace, name)`. A Secret that is missing is reported through `warn`
/// and skipped, as the kubelet does; one of the wrong type or without its key is an error.
pub fn pull_secrets(
    pod: &Pod,
    lookup: impl Fn(&str, &str) -> Option<peapod_types::api::Secret>,
    warn: impl Fn(&str),
) -> Result<Vec<serde_json::Value>, String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = Vec::new();
    let refs = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_ref());
    for (i, r) in refs.into_iter().flatten().enumerate() {
        let field = format!("pod {name:?}: spec.imagePullSecrets[{i}]");
        let Some(s) = lookup(ns, &r.name) else {
            warn(&format!(
                "{field}: secret {:?} was not found; pulling without it",
                r.name
            ));
            continue;
        };
        let ty = s.type_.as_deref().unwrap_or("Opaque");
        let key = match ty {
            "kubernetes.io/dockerconfigjson" => ".dockerconfigjson",
            "kubernetes.io/dockercfg" => ".dockercfg",
            other => {
                return Err(format!(
                    "{field}: secret {:?} has type {other:?}; image pull secrets are of type kubernetes.io/dockerconfigjson",
                    r.name
                ));
            }
        };
        let data: Vec<u8> = match (
            s.data.as_ref().and_then(|d| d.get(key)),
            s.string_data.as_ref().and_then(|d| d.get(key)),
        ) {
            (_, Some(text)) => text.as_bytes().to_vec(),
            (Some(bytes), None) => bytes.0.clone(),
            (None, None) => {
                return Err(format!("{field}: secret {:?} has no data[{key:?}]", r.name));
            }
        };
        let v: serde_json::Value = serde_json::from_slice(&data)
            .map_err(|e| format!("{field}: secret {:?}: data[{key:?}]: {e}", r.name))?;
        // Checked now, so that a bad secret is reported before anything is created.
        peapod_types::credentials::Keyring::new()
            .add_docker_config(&data, &format!("secret {:?}", r.name))
            .map_err(|e| format!("{field}: {e}"))?;
        out.push(v);
    }
    Ok(out)
}

/// Attaches to the streams of container `container_id` of the pod whose shim listens on
/// `socket` (`kubectl attach`): its output from now on, and with `stdin` its input.
pub async fn attach(
    socket: &Path,
    container_id: &str,
    stdin: bool,
    tty: bool,
) -> Result<peapod_runtime::StreamSession, ShimError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(socket).await?;
    let req = Request::Attach {
        container_id: container_id.to_string(),
        stdin,
    };
    let line = serde_json::to_string(&req)? + "\n";
    s.write_all(line.as_bytes()).await?;
    // Byte by byte: the frames after the answer must stay unread.
    let mut answer = Vec::new();
    let mut b = [0u8; 1];
    loop {
        if s.read(&mut b).await? == 0 {
            return Err(ShimError::Shim("the shim closed the connection".into()));
        }
        if b[0] == b'\n' {
            break;
        }
        answer.push(b[0]);
    }
    let r: Response = serde_json::from_slice(&answer)?;
    if !r.ok {
        return Err(ShimError::Shim(r.error));
    }
    Ok(crate::frames::client(s, tty, stdin))
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

/// Removes everything of a pod whose shim is gone: the runtime removes its sandboxes
/// (containers, network, namespaces, cgroups, mounts), then the pod's volumes, files and
/// state go, as a deletion through the shim would leave it.
pub async fn cleanup_orphan(cfg: &Config, pod: &PodHandle) -> Result<(), ShimError> {
    let rt = Runtime::new(crate::server::runtime_config(cfg))?;
    peapod_kubelet::cleanup::remove_pod(&*rt, &pod.uid, &pod.paths.pod_dir, &pod.paths.log_dir)
        .await?;
    match std::fs::remove_dir_all(&pod.paths.run_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Starts `req` in running container `container_id` (its PID is a child of the caller).
pub fn exec(cfg: &Config, container_id: &str, req: ExecRequest) -> Result<ExecProcess, ShimError> {
    let rt = Runtime::new(crate::server::runtime_config(cfg))?;
    Ok(rt.exec(container_id, req)?)
}

/// The CPU and memory figures of containers `ids` (those whose cgroup exists), from the
/// same cgroups the CRI's `ContainerStats` reads.
pub fn container_stats(
    cfg: &Config,
    ids: &[String],
) -> Result<Vec<peapod_runtime::ContainerStats>, ShimError> {
    let rt = Runtime::new(crate::server::runtime_config(cfg))?;
    Ok(ids
        .iter()
        .filter_map(|id| rt.container_stats(id).ok())
        .collect())
}

/// Every container the runtime has, of every pod (to tell which images are in use).
pub fn containers(cfg: &Config) -> Result<Vec<ContainerStatus>, ShimError> {
    let rt = Runtime::new(crate::server::runtime_config(cfg))?;
    Ok(rt.list_containers(&ContainerFilter::default())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path) -> Config {
        Config {
            root: dir.join("root"),
            run_root: dir.join("run"),
            ..Default::default()
        }
    }

    fn write_pod(cfg: &Config, uid: &str, name: &str, with_state: bool) {
        let p = Paths::new(cfg, uid);
        std::fs::create_dir_all(&p.run_dir).unwrap();
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers: [{{name: a, image: b}}]\n"
        );
        let mut pod = peapod_types::manifest::load(&text).unwrap().pods.remove(0);
        pod.metadata.uid = Some(uid.into());
        std::fs::write(p.pod_file(), serde_json::to_vec(&pod).unwrap()).unwrap();
        if with_state {
            let mut shown = pod.clone();
            shown.status = Some(peapod_types::api::PodStatus {
                phase: Some("Running".into()),
                ..Default::default()
            });
            let state = PodState {
                pod: shown,
                events: Vec::new(),
                sandbox_id: None,
                infra_pid: 0,
                containers: Vec::new(),
                terminating: false,
            };
            std::fs::write(p.state_file(), serde_json::to_vec(&state).unwrap()).unwrap();
        }
    }

    #[test]
    fn pods_whose_shim_is_gone_show_as_unknown() {
        let d = tempfile::tempdir().unwrap();
        let cfg = cfg(d.path());
        write_pod(&cfg, "u1", "web", true);
        write_pod(&cfg, "u2", "db", false);
        std::fs::create_dir_all(cfg.run_root.join("pods/garbage")).unwrap();
        let pods = list_pods(&cfg);
        assert_eq!(pods.len(), 2, "a directory without pod.json is not a pod");
        let web = pods.iter().find(|p| p.name() == "web").unwrap();
        assert_eq!(web.namespace(), "default");
        assert!(!web.shim_alive);
        let st = web.current().status.unwrap();
        assert_eq!(st.phase.as_deref(), Some("Unknown"));
        assert_eq!(st.reason.as_deref(), Some("NodeLost"));
        let db = pods.iter().find(|p| p.name() == "db").unwrap();
        assert!(db.state.is_none());
        assert_eq!(
            db.current().status.unwrap().phase.as_deref(),
            Some("Unknown")
        );
    }

    #[test]
    fn a_request_to_a_missing_shim_fails_plainly() {
        let d = tempfile::tempdir().unwrap();
        let e = request(
            &d.path().join("none.sock"),
            &Request::Ping,
            Duration::from_millis(50),
        )
        .unwrap_err();
        assert!(matches!(e, ShimError::Io(_)), "{e}");
    }
}
