//! Kubernetes types as peapod uses them, and the rules that need no IO.
//!
//! - [`manifest`]: YAML/JSON manifests into `k8s-openapi` objects, strictly (unknown fields
//!   are errors, with their path);
//! - [`defaults`]: the defaults the API server applies before a kubelet sees a pod;
//! - [`validate`]: the API server's validation, with errors named by field path;
//! - [`expand`]: Kubernetes' `$(VAR)` expansion;
//! - [`phase`]: the kubelet's pod phase, conditions and container-state rules;
//! - [`pod`]: the defaulted pod the kubelet works on, with accessors that need no default;
//! - [`backoff`]: the kubelet's back-off (crash loops, image pulls);
//! - [`cri_log`]: the CRI container log format;
//! - [`credentials`]: registry credentials and how they match an image;
//! - [`quantity`], [`image_ref`], [`config`]: small parsers and shared settings.
//!
//! Invariant: this crate does no IO, spawns nothing and needs no async runtime.

pub mod admission;
pub mod backoff;
pub mod cgroups;
pub mod config;
pub mod credentials;
pub mod cri_log;
pub mod defaults;
pub mod expand;
pub mod field;
pub mod image_ref;
pub mod manifest;
pub mod names;
pub mod objects;
pub mod phase;
pub mod pod;
pub mod quantity;
pub mod resize;
pub mod selector;
pub mod userns;
pub mod validate;
pub mod workloads;
pub mod yaml;

/// The Kubernetes release whose `v1` API peapod follows.
pub const KUBERNETES_VERSION: &str = "1.33";

pub use k8s_openapi;
pub use k8s_openapi::api::core::v1 as api;
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
