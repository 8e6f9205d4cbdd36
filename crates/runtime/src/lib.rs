//! peapod's runtime layer: CRI-shaped operations on sandboxes and containers.
//!
//! A sandbox is a pinned network namespace, a per-pod `/dev/shm`, `hostname` and
//! `resolv.conf`, and an infra process (`peapod-pause`, or an image's entrypoint) holding the
//! IPC, UTS and (when shared) PID namespaces. Containers join those namespaces by path; each
//! has its own mount namespace, overlay root file system and cgroup.
//!
//! Operations keep the CRI's meaning: IDs are random, metadata carries attempt numbers, stop
//! and remove of something already stopped or gone succeed, and a failed create leaves
//! nothing behind. Records are JSON files written atomically, so any process (the shim, the
//! CLI, a CRI server) can read them.
//!
//! Container processes are children of the process that started them, which learns of their
//! exit through pidfds: use the runtime inside a single-threaded Tokio runtime (the executor
//! forks, and plugin processes are spawned on the same thread; see `ARCHITECTURE.md`).
//!
//! What the pod controller sees of this crate is the pair of CRI traits in [`cri`]
//! ([`RuntimeService`], [`ImageService`]), which [`Runtime`] implements; opening a runtime
//! has no effect on the host beyond creating its state directories.

mod container;
pub mod cri;
mod exec;
pub mod host;
pub mod logs;
mod network;
mod reaper;
mod records;
mod sandbox;
mod service;
mod spec;
pub mod stats;
pub mod stdio;
pub mod types;
mod user;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use peapod_image::Store;
use peapod_oci::{Executor, Libcontainer};
use tokio::sync::{broadcast, watch};

pub use cri::{ImageService, RuntimeService};
pub use exec::ExecSession;
pub use peapod_oci::ns::connect_tcp_in;
pub use peapod_oci::spec::Propagation;
pub use peapod_oci::{DeviceSpec, ExecProcess, ExecRequest, Seccomp, Stdio};
pub use reaper::reap_unclaimed;
pub use stats::{ContainerStats, CpuStats, InterfaceStats, MemoryStats, SandboxStats};
pub use stdio::{Attached, Chunk, OutputStream, StreamSession};
pub use types::*;

/// Errors of the runtime layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No sandbox or container with that ID.
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// `sandbox` or `container`.
        kind: &'static str,
        /// The ID asked for.
        id: String,
    },
    /// The operation does not fit the object's state.
    #[error("{0}")]
    State(String),
    /// The image is not in the store.
    #[error(transparent)]
    Image(#[from] peapod_image::Error),
    /// The OCI layer failed.
    #[error(transparent)]
    Oci(#[from] peapod_oci::Error),
    /// Setting up or tearing down the pod network failed.
    #[error("pod network: {0}")]
    Network(#[from] peapod_cni::Error),
    /// A hostPort is taken.
    #[error("{0}")]
    PortInUse(String),
    /// The process that owns the sandbox reported a failure, or could not be reached.
    #[error("{0}")]
    Remote(String),
    /// A file system operation failed.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    /// Whether the error says the object (sandbox, container or image) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Error::NotFound { .. } | Error::Image(peapod_image::Error::NotFound(_))
        )
    }
}

/// Results of the runtime layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(
    context: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io {
        context,
        path,
        source,
    }
}

/// Where the runtime keeps things, and what it runs as infra.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Persistent state: images, container writable layers.
    pub root: PathBuf,
    /// Volatile state: records, bundles, mount points, pinned namespaces.
    pub run_root: PathBuf,
    /// The `peapod-pause` binary.
    pub pause_path: PathBuf,
    /// Run this image's entrypoint as infra instead of `peapod-pause`.
    pub infra_image: Option<String>,
    /// CNI networking for pods with their own network namespace; `None`: loopback only.
    pub network: Option<NetworkSettings>,
    /// Registries images are pulled from.
    pub registries: peapod_types::config::Registries,
    /// peapod's own cgroup subtree (e.g. `/peapod`): a sandbox removal that leaves its
    /// parent cgroup empty removes the parents up to and including this one, and no
    /// further.
    pub cgroup_root: String,
    /// The front end this runtime serves (`pods` for `peapod apply`, `cri` for the CRI
    /// server): it sees, lists and changes only the sandboxes (and their containers) made
    /// in its scope.
    pub scope: String,
}

/// Where CNI configurations and plugins are, and the network to write when there is none.
#[derive(Debug, Clone)]
pub struct NetworkSettings {
    /// The user's configuration directory (the first file by name is used).
    pub config_dir: PathBuf,
    /// Plugin directories, in order.
    pub plugin_dirs: Vec<PathBuf>,
    /// Bridge name of the default network.
    pub default_bridge: String,
    /// Subnet of the default network.
    pub default_subnet: String,
}

/// The runtime: every sandbox and container under one state root.
pub struct Runtime {
    /// This runtime itself, for the tasks it spawns.
    me: Weak<Runtime>,
    cfg: RuntimeConfig,
    images: Store,
    registry: peapod_image::Registry,
    exec: Box<dyn Executor + Send + Sync>,
    live: Mutex<Live>,
    events: broadcast::Sender<ContainerEvent>,
    /// The last CPU sample of each container and sandbox (time, CPU nanoseconds), for rates.
    cpu_samples: Mutex<HashMap<String, (i64, u64)>>,
}

/// What only the process that started a container knows: how to learn of its exit.
#[derive(Default)]
struct Live {
    /// Container (or sandbox) ID → becomes true when its process has exited.
    exited: HashMap<String, watch::Receiver<bool>>,
    /// Sandbox ID → sockets holding its host ports.
    ports: HashMap<String, Vec<std::os::fd::OwnedFd>>,
    /// Container ID → its live streams, while it runs.
    streams: HashMap<String, Arc<stdio::ContainerStreams>>,
}

impl Runtime {
    /// Opens the runtime with the built-in libcontainer executor. It only creates its
    /// state directories; sandboxes and containers are touched by the CRI operations alone.
    pub fn new(cfg: RuntimeConfig) -> Result<Arc<Runtime>> {
        let exec = Libcontainer::new(cfg.run_root.join("executor"));
        Self::with_executor(cfg, Box::new(exec))
    }

    /// Opens the runtime with another executor.
    pub fn with_executor(
        cfg: RuntimeConfig,
        exec: Box<dyn Executor + Send + Sync>,
    ) -> Result<Arc<Runtime>> {
        for d in [
            cfg.run_root.join("sandboxes"),
            cfg.run_root.join("containers"),
            cfg.root.join("containers"),
        ] {
            std::fs::create_dir_all(&d).map_err(io("creating", &d))?;
        }
        let images = Store::open(cfg.root.join("images"))?;
        let registry = peapod_image::Registry::new(images.clone(), cfg.registries.clone())?;
        let (events, _) = broadcast::channel(1024);
        Ok(Arc::new_cyclic(|me| Runtime {
            me: me.clone(),
            cfg,
            images,
            registry,
            exec,
            live: Mutex::new(Live::default()),
            cpu_samples: Mutex::new(HashMap::new()),
            events,
        }))
    }

    /// This runtime as an `Arc`, for spawned tasks.
    pub(crate) fn arc(&self) -> Arc<Runtime> {
        self.me
            .upgrade()
            .expect("the runtime outlives its operations")
    }

    /// The image store.
    pub fn images(&self) -> &Store {
        &self.images
    }

    /// The registry client (pull, push) of this runtime's store.
    pub fn registry(&self) -> &peapod_image::Registry {
        &self.registry
    }

    /// The configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.cfg
    }

    fn emit(&self, id: &str, sandbox_id: &str, kind: ContainerEventKind) {
        let _ = self.events.send(ContainerEvent {
            id: id.to_string(),
            sandbox_id: sandbox_id.to_string(),
            kind,
        });
    }

    fn sandboxes_dir(&self) -> PathBuf {
        self.cfg.run_root.join("sandboxes")
    }

    fn containers_dir(&self) -> PathBuf {
        self.cfg.run_root.join("containers")
    }

    fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.sandboxes_dir().join(id)
    }

    /// The sandbox's index of its containers: one empty file per container ID.
    fn sandbox_index(&self, id: &str) -> PathBuf {
        self.sandbox_dir(id).join("containers")
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    fn container_storage(&self, id: &str) -> PathBuf {
        self.cfg.root.join("containers").join(id)
    }

    /// Waits until the process of container or sandbox `id`, started by this runtime, has
    /// exited; returns at once for anything not running here.
    pub async fn wait_exit(&self, id: &str) {
        let rx = self.live.lock().unwrap().exited.get(id).cloned();
        if let Some(mut rx) = rx {
            let _ = rx.wait_for(|done| *done).await;
        }
    }
}

/// A new sandbox ID, for [`Runtime::run_pod_sandbox_as`].
pub fn new_sandbox_id() -> String {
    new_id()
}

/// A new random 64-hex-digit ID.
pub(crate) fn new_id() -> String {
    let mut buf = [0u8; 32];
    let f = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf));
    if f.is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        buf[..16].copy_from_slice(&t.as_nanos().to_le_bytes());
        buf[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Now, as RFC 3339 with nanoseconds.
pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string()
}

/// Finds an object by full ID or unique ID prefix among the entries of `dir`.
pub(crate) fn resolve_id(dir: &Path, id: &str, kind: &'static str) -> Result<String> {
    if dir.join(id).is_dir() {
        return Ok(id.to_string());
    }
    let matches: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !id.is_empty() && n.starts_with(id))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::NotFound {
            kind,
            id: id.to_string(),
        }),
        _ => Err(Error::State(format!(
            "{kind} ID prefix {id:?} is ambiguous"
        ))),
    }
}
