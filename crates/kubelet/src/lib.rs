//! peapod's pod controller: the kubelet's job over a CRI runtime.
//!
//! A [`PodWorker`] owns one pod. Each pass of its sync loop takes one [`snapshot`] of the
//! runtime, asks the pure [`plan`] (the kubelet's `computePodActions`) what to do, takes
//! those steps through the runtime's CRI traits, and publishes the [`status`] computed
//! from the same snapshot. Probes ([`probes`]), image pulls ([`images`]), hooks and
//! back-off are small units with state of their own. The controller knows the runtime only
//! through [`peapod_runtime::RuntimeService`] and [`peapod_runtime::ImageService`].

pub mod cleanup;
pub mod clock;
pub mod config;
pub mod events;
pub mod eviction;
mod execute;
mod grpc;
mod hooks;
pub mod images;
pub mod objects;
pub mod plan;
mod prober;
pub mod probes;
pub mod projection;
pub mod sandbox_config;
pub mod snapshot;
pub mod status;
mod tls;
pub mod volumes;
mod worker;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod testutil;
#[cfg(test)]
mod worker_tests;

pub use clock::{Clock, SystemClock};
pub use events::{Event, Recorder};
pub use worker::{Command, KubeletConfig, NodeResources, PodWorker};

use serde::{Deserialize, Serialize};

/// A container of the pod, as the CLI needs it (logs, exec, namespaces).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRef {
    /// Container name.
    pub name: String,
    /// Runtime ID of its newest instance.
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
    /// The newest sandbox.
    pub sandbox_id: Option<String>,
    /// The infra process, while it runs.
    pub infra_pid: i32,
    /// Container instances.
    pub containers: Vec<ContainerRef>,
    /// Set once deletion has begun.
    pub terminating: bool,
}
