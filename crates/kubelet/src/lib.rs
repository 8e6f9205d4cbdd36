//! peapod's pod controller: the kubelet's job on top of the runtime layer.
//!
//! A [`PodWorker`] owns one pod. It runs the kubelet's sync loop: set up volumes and the
//! sandbox, run init containers one at a time, then app containers together, restart them
//! by the pod's policy with the kubelet's back-off, and compute the pod's status by the
//! kubelet's rules. It publishes a [`PodState`] after every change; deleting the pod stops
//! every container within the grace period and removes everything the pod had.

pub mod config;
pub mod events;
mod grpc;
mod hooks;
mod probes;
mod status;
mod tls;
pub mod volumes;
mod worker;

pub use events::{Event, Recorder};
pub use worker::{Command, KubeletConfig, PodWorker};

use serde::{Deserialize, Serialize};

/// A running container of the pod, as the CLI needs it (logs, exec, namespaces).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRef {
    /// Container name.
    pub name: String,
    /// Runtime ID of its latest instance.
    pub id: String,
    /// Runtime ID of the instance before it, if any.
    pub previous_id: Option<String>,
    /// PID while it runs, else 0.
    pub pid: i32,
    /// Whether it is an init container (or sidecar).
    pub init: bool,
}

/// Everything published about a pod: the pod with its status, its events and what the
/// runtime holds for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodState {
    /// The pod as applied, with its current status.
    pub pod: peapod_types::api::Pod,
    /// Events, oldest first.
    pub events: Vec<Event>,
    /// The current sandbox.
    pub sandbox_id: Option<String>,
    /// The infra process, while it runs.
    pub infra_pid: i32,
    /// Container instances.
    pub containers: Vec<ContainerRef>,
    /// Set once deletion has begun.
    pub terminating: bool,
}
