//! The shim: one supervising process per pod, and what the CLI shares with it.
//!
//! `peapod apply` starts a shim detached (`peapod __shim UID`). The shim lives outside the
//! pod's namespaces, is a child subreaper, and is the parent of the infra process and every
//! container process of its pod. It runs the pod controller ([`peapod_kubelet::PodWorker`]),
//! publishes the pod's state to `state.json` after every change, and answers requests on
//! `shim.sock` (one JSON object per line). It keeps going after the CLI exits; when it is
//! gone, readers show the pod's phase as `Unknown`.
//!
//! Layout of one pod, under the state roots ([`Paths`]):
//! ```text
//! <run_root>/pods/<uid>/pod.json     the pod as applied (defaulted, with its UID)
//! <run_root>/pods/<uid>/state.json   the published PodState
//! <run_root>/pods/<uid>/shim.pid     the shim's PID
//! <run_root>/pods/<uid>/shim.sock    the shim's socket
//! <run_root>/pods/<uid>/shim.log     the shim's own log
//! <root>/pods/<uid>/                 volumes, /etc/hosts, termination messages
//! <root>/pods/<uid>/logs/            container logs, <container>/<restart>.log
//! ```
//!
//! ConfigMaps and Secrets are kept by [`objects::ObjectStore`].
//!
//! The CLI reaches the runtime only through this crate: [`exec`], [`containers`] and
//! [`cleanup_orphan`].

mod client;
pub mod cri;
mod frames;
pub mod objects;
mod paths;
pub mod sandbox_shim;
mod server;

pub use client::{
    PodHandle, ShimError, attach, cleanup_orphan, container_stats, containers, create_pod,
    delete_pod, exec, list_pods, pull_secrets, request, spawn, update_pod,
};
pub use objects::new_uid;
pub use paths::{CGROUP_ROOT, Paths, host_ip, node_name};
pub use peapod_kubelet::{ContainerRef, Event, PodState};
pub use peapod_runtime::{ContainerStatus, ExecProcess, ExecRequest, OutputStream, Stdio};
pub use server::{CRI_SCOPE, PODS_SCOPE, pause_path, run, runtime_config, runtime_config_for};

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
    /// Update the running pod in place: `pod` is the pod as now applied, whose
    /// containers' CPU and memory (a resize) or images changed.
    Update {
        /// The pod.
        pod: Box<peapod_types::api::Pod>,
    },
    /// Attach to a container's streams: after the answer, the connection carries the
    /// session's frames (see `frames`).
    Attach {
        /// The container's runtime ID.
        container_id: String,
        /// Whether to send input.
        stdin: bool,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_are_one_json_object_each() {
        let r = serde_json::to_string(&Request::Delete { grace: Some(3) }).unwrap();
        assert_eq!(r, r#"{"op":"delete","grace":3}"#);
        let back: Request = serde_json::from_str(r#"{"op":"ping"}"#).unwrap();
        assert!(matches!(back, Request::Ping));
        assert!(serde_json::from_str::<Request>(r#"{"op":"reboot"}"#).is_err());
        let ok: Response = serde_json::from_str(r#"{"ok":true}"#).unwrap();
        assert!(ok.ok && ok.error.is_empty());
    }
}
