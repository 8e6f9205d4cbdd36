//! OCI runtime bundles and the executors that run them, and the host-side plumbing around
//! them: mounts, pinned network namespaces, cgroup directories.
//!
//! Invariant: this is the only crate of peapod that calls `clone`, `setns`, `unshare` or
//! `mount`. Callers describe a container with a [`ContainerSpec`] (no Kubernetes types here)
//! and run it through an [`Executor`].

pub mod cgroup;
pub mod executor;
pub mod mount;
pub mod ns;
pub mod seccomp;
pub mod spec;

pub use executor::{Created, ExecProcess, ExecRequest, Executor, Libcontainer, Stdio, Streams};
pub use ns::IdMap;
pub use seccomp::Seccomp;
pub use spec::{ContainerSpec, DeviceSpec, MountSpec, NamespaceSpec, NsKind, Propagation};

use std::path::PathBuf;

/// Errors of the OCI layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle could not be generated.
    #[error("generating the OCI spec: {0}")]
    Spec(String),
    /// The executor failed.
    #[error("{op} container {id}: {message}")]
    Runtime {
        /// create, start, kill, delete, exec.
        op: &'static str,
        /// Container ID.
        id: String,
        /// The executor's own message.
        message: String,
    },
    /// A system call failed.
    #[error("{context} {path}: {source}")]
    Sys {
        /// What was being done.
        context: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Results of the OCI layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn sys(
    context: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(nix::Error) -> Error {
    let path = path.into();
    move |e| Error::Sys {
        context,
        path,
        source: e.into(),
    }
}

pub(crate) fn io(
    context: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Sys {
        context,
        path,
        source,
    }
}
