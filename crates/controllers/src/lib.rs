//! The workload controllers of one node: Deployments, ReplicaSets, DaemonSets and Jobs
//! turned into pods, as kube-controller-manager's controllers would with this node as the
//! only one.
//!
//! - [`view`]: what a controller knows of a pod;
//! - [`plan`]: each controller's pass, pure;
//! - [`manager`]: the process that runs the passes over the object store and the pods.

pub mod manager;
pub mod plan;
pub mod view;
