//! The shim process itself: one per pod, running the pod's worker over the in-process
//! runtime and answering the CLI on its socket.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use peapod_kubelet::{Command, KubeletConfig, PodWorker, SystemClock};
use peapod_runtime::{Runtime, RuntimeConfig};
use peapod_types::config::Config;
use peapod_types::credentials::Keyring;
use peapod_types::pod::DefaultedPod;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use crate::paths::{CGROUP_ROOT, Paths, host_ip, node_capacity, node_name, write_atomic};
use crate::{Request, Response, ShimError};

/// Where `peapod-pause` is: the configured path, else next to the running executable,
/// else on `$PATH`.
pub fn pause_path(cfg: &Config) -> PathBuf {
    if let Some(p) = &cfg.pause_path {
        return p.clone();
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
        && dir.join("peapod-pause").is_file()
    {
        return dir.join("peapod-pause");
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("peapod-pause"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("/usr/local/bin/peapod-pause"))
}

/// The runtime settings for `cfg`, for `apply`'s pods.
pub fn runtime_config(cfg: &Config) -> RuntimeConfig {
    runtime_config_for(cfg, PODS_SCOPE)
}

/// The scope of `apply`'s pods.
pub const PODS_SCOPE: &str = "pods";

/// The scope of the sandboxes the CRI server makes.
pub const CRI_SCOPE: &str = "cri";

/// The runtime settings for `cfg` in `scope`.
pub fn runtime_config_for(cfg: &Config, scope: &str) -> RuntimeConfig {
    RuntimeConfig {
        root: cfg.root.clone(),
        run_root: cfg.run_root.clone(),
        pause_path: pause_path(cfg),
        infra_image: cfg.infra_image.clone(),
        registries: cfg.registries.clone(),
        cgroup_root: CGROUP_ROOT.into(),
        scope: scope.into(),
        network: cfg
            .network
            .enabled
            .then(|| peapod_runtime::NetworkSettings {
                config_dir: cfg.network.config_dir.clone(),
                plugin_dirs: cfg.network.plugin_dirs.clone(),
                default_bridge: cfg.network.default_bridge.clone(),
                default_subnet: cfg.network.default_subnet.clone(),
            }),
    }
}

/// Runs the shim of pod `uid` until the pod is deleted. Call it from a fresh,
/// single-threaded process: it becomes a child subreaper and forks containers.
pub fn run(cfg: Config, uid: &str) -> Result<(), ShimError> {
    // SAFETY: prctl with an integer argument.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let paths = Paths::new(&cfg, uid);
    let pod: DefaultedPod = serde_json::from_slice(&std::fs::read(paths.pod_file())?)?;
    std::fs::write(paths.pid_file(), std::process::id().to_string())?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    tokio.block_on(serve(cfg, pod, paths, uid.to_string()))
}

async fn serve(cfg: Config, pod: DefaultedPod, paths: Paths, uid: String) -> Result<(), ShimError> {
    let rt = Runtime::new(runtime_config(&cfg))?;
    // Attachments left by a crash are released by whoever supervises next.
    rt.collect_network_garbage().await;
    for dir in [&paths.pod_dir, &paths.log_dir] {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(paths.socket());
    let listener = UnixListener::bind(paths.socket())?;
    std::fs::set_permissions(paths.socket(), std::fs::Permissions::from_mode(0o600))?;
    tokio::spawn(reap_orphans());

    let kcfg = KubeletConfig {
        node_name: node_name(&cfg),
        host_ip: host_ip(),
        pod_dir: paths.pod_dir.clone(),
        log_dir: paths.log_dir.clone(),
        backoff: cfg.backoff,
        cluster_dns: cfg.dns.cluster_dns.clone(),
        cluster_domain: cfg.dns.cluster_domain.clone(),
        cgroup_parent: Paths::cgroup_parent(pod.spec(), &uid),
        pod_pids_limit: cfg.pod_pids_limit.filter(|p| *p > 0),
        pull_keyring: pull_keyring(&paths),
        node: node_capacity(),
        host_resolv_conf: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        host_hosts: std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
        seccomp_root: cfg.root.join("seccomp"),
        node_labels: peapod_types::admission::node_labels(&node_name(&cfg), &cfg.node_labels),
        apparmor_enabled: peapod_runtime::AppArmor::host_enabled(),
        node_resources: {
            let (cfg, uid) = (cfg.clone(), uid.clone());
            peapod_kubelet::NodeResources::new(move || crate::paths::node_resources(&cfg, &uid))
        },
        user_namespace: crate::paths::user_namespace(&cfg, pod.spec(), &uid),
        hugepage_sizes: crate::paths::hugepage_sizes(),
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(8);
    let (waiter_tx, mut waiter_rx) = mpsc::unbounded_channel::<UnixStream>();
    tokio::spawn(accept(listener, cmd_tx, waiter_tx, Arc::clone(&rt)));

    let worker = PodWorker::new(Arc::clone(&rt), pod, kcfg, Arc::new(SystemClock))
        .with_objects(Arc::new(crate::objects::ObjectStore::new(&cfg)));
    let state_file = paths.state_file();
    worker
        .run(cmd_rx, move |state| {
            let data = serde_json::to_vec(state).expect("state serializes");
            if let Err(e) = write_atomic(&state_file, &data) {
                tracing::error!("publishing state: {e}");
            }
        })
        .await;

    // Deleted: remove our own files, then tell whoever asked.
    let _ = std::fs::remove_dir_all(&paths.run_dir);
    let ok = serde_json::to_string(&Response {
        ok: true,
        error: String::new(),
    })
    .expect("json")
        + "\n";
    while let Ok(mut s) = waiter_rx.try_recv() {
        let _ = s.write_all(ok.as_bytes()).await;
    }
    Ok(())
}

/// The credentials of the pod's `imagePullSecrets`, which `apply` stored next to the pod.
fn pull_keyring(paths: &Paths) -> Keyring {
    let mut k = Keyring::new();
    let file = paths.pull_secrets_file();
    let Ok(data) = std::fs::read(&file) else {
        return k;
    };
    let configs: Vec<serde_json::Value> = serde_json::from_slice(&data).unwrap_or_default();
    for (i, c) in configs.iter().enumerate() {
        let json = serde_json::to_vec(c).expect("json");
        if let Err(e) = k.add_docker_config(&json, &format!("imagePullSecrets[{i}]")) {
            tracing::warn!("{e}");
        }
    }
    k
}

/// Answers requests; delete requests are forwarded to the worker and answered at exit.
async fn accept(
    listener: UnixListener,
    cmds: mpsc::Sender<Command>,
    waiters: mpsc::UnboundedSender<UnixStream>,
    rt: Arc<Runtime>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (cmds, waiters, rt) = (cmds.clone(), waiters.clone(), Arc::clone(&rt));
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            if reader.read_line(&mut line).await.is_err() {
                return;
            }
            let mut stream = reader.into_inner();
            let reply = |r: Response| serde_json::to_string(&r).expect("json") + "\n";
            match serde_json::from_str::<Request>(&line) {
                Ok(Request::Ping) => {
                    let _ = stream
                        .write_all(
                            reply(Response {
                                ok: true,
                                error: String::new(),
                            })
                            .as_bytes(),
                        )
                        .await;
                }
                Ok(Request::Delete { grace }) => {
                    let _ = waiters.send(stream);
                    let _ = cmds.send(Command::Delete { grace }).await;
                }
                Ok(Request::Update { pod }) => {
                    let ok = cmds.send(Command::Update { pod }).await.is_ok();
                    let error = if ok {
                        String::new()
                    } else {
                        "the pod is going away".to_string()
                    };
                    let _ = stream
                        .write_all(reply(Response { ok, error }).as_bytes())
                        .await;
                }
                Ok(Request::Attach {
                    container_id,
                    stdin,
                }) => {
                    use peapod_runtime::RuntimeService;
                    let (ok, error, session) = match rt.attach_streams(&container_id, stdin).await {
                        Ok(s) => (true, String::new(), Some(s)),
                        Err(e) => (false, e.to_string(), None),
                    };
                    let answer = reply(Response { ok, error });
                    if stream.write_all(answer.as_bytes()).await.is_ok()
                        && let Some(session) = session
                    {
                        crate::frames::serve(stream, session).await;
                    }
                }
                Err(e) => {
                    let _ = stream
                        .write_all(
                            reply(Response {
                                ok: false,
                                error: format!("bad request: {e}"),
                            })
                            .as_bytes(),
                        )
                        .await;
                }
            }
        });
    }
}

/// As a child subreaper, the shim inherits orphans; reap them. The processes the runtime
/// watches (containers, infras, exec probes) are left to their watchers.
pub(crate) async fn reap_orphans() {
    let Ok(mut sigchld) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())
    else {
        return;
    };
    while sigchld.recv().await.is_some() {
        peapod_runtime::reap_unclaimed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths_in(dir: &std::path::Path) -> Paths {
        let cfg = Config {
            root: dir.join("root"),
            run_root: dir.join("run"),
            ..Default::default()
        };
        let p = Paths::new(&cfg, "u1");
        std::fs::create_dir_all(&p.run_dir).unwrap();
        p
    }

    #[test]
    fn pull_secrets_become_the_pods_keyring() {
        let d = tempfile::tempdir().unwrap();
        let p = paths_in(d.path());
        assert!(pull_keyring(&p).is_empty(), "no file: no credentials");
        std::fs::write(
            p.pull_secrets_file(),
            r#"[{"auths": {"reg.example": {"username": "u", "password": "pw"}}}, {"auths": {"x": {"auth": "!!"}}}]"#,
        )
        .unwrap();
        let k = pull_keyring(&p);
        let found = k.lookup("reg.example", "team/app");
        assert_eq!(found.len(), 1, "the unreadable second secret is skipped");
        assert_eq!(found[0].username, "u");
    }

    #[test]
    fn the_runtime_is_rooted_in_the_configured_directories() {
        let cfg = Config {
            root: "/r".into(),
            run_root: "/rr".into(),
            pause_path: Some("/bin/pause".into()),
            ..Default::default()
        };
        let rc = runtime_config(&cfg);
        assert_eq!(rc.root, std::path::Path::new("/r"));
        assert_eq!(rc.run_root, std::path::Path::new("/rr"));
        assert_eq!(rc.pause_path, std::path::Path::new("/bin/pause"));
        assert_eq!(rc.cgroup_root, CGROUP_ROOT);
        assert!(rc.network.is_some());
        let off = Config {
            network: peapod_types::config::Network {
                enabled: false,
                ..Default::default()
            },
            ..cfg
        };
        assert!(runtime_config(&off).network.is_none());
    }
}
