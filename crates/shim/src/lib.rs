//! The shim: one supervising process per pod, and what the CLI shares with it.
//!
//! `peapod apply` starts a shim detached (`peapod __shim UID`). The shim lives outside the
//! pod's namespaces, is a child subreaper, and is the parent of the infra process and every
//! container process of its pod. It runs the pod controller ([`peapod_kubelet::PodWorker`]),
//! publishes the pod's state to `state.json` after every change, and answers requests on
//! `shim.sock` (one JSON object per line). It keeps going after the CLI exits; when it is
//! gone, readers show the pod's phase as `Unknown`.
//!
//! Layout of one pod, under the state roots:
//! ```text
//! <run_root>/pods/<uid>/pod.json     the pod as applied (defaulted, with its UID)
//! <run_root>/pods/<uid>/state.json   the published PodState
//! <run_root>/pods/<uid>/shim.pid     the shim's PID
//! <run_root>/pods/<uid>/shim.sock    the shim's socket
//! <run_root>/pods/<uid>/shim.log     the shim's own log
//! <root>/pods/<uid>/                 volumes, /etc/hosts, termination logs
//! <root>/logs/<ns>_<name>_<uid>/     container logs, <container>/<restart>.log
//! ```

mod client;
mod paths;
mod server;

pub use client::{PodHandle, ShimError, cleanup_orphan, list_pods, request, spawn};
pub use paths::{Paths, host_ip, node_name};
pub use server::{pause_path, run, runtime_config};

use serde::{Deserialize, Serialize};

/// A request to a shim.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Is the shim there?
    Ping,
    /// Delete the pod; answered once everything is gone.
    Delete {
        /// Grace period in seconds; the pod's own when absent.
        grace: Option<i64>,
    },
}

/// A shim's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// Why not, when it did not.
    #[serde(default)]
    pub error: String,
}
