//! The CRI's two services as traits, with the CRI's operations and meanings: what the pod
//! controller knows of a container runtime, and what a gRPC server turns requests into.
//!
//! Meanings kept from the CRI: IDs are opaque; stopping or removing something already
//! stopped or gone succeeds; removing a sandbox removes its containers and everything the
//! sandbox owns (network attachment, namespaces, cgroups, mounts); a failed create leaves
//! nothing behind.

use std::future::Future;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::Result;
use crate::stats::{ContainerStats, SandboxStats};
use crate::stdio::StreamSession;
use crate::types::*;

/// CRI `RuntimeService`: sandboxes and containers.
pub trait RuntimeService: Send + Sync + 'static {
    /// `Version`.
    fn version(&self) -> Version;

    /// `Status`: whether the runtime and the pod network are ready.
    fn status(&self) -> RuntimeConditions;

    /// `RunPodSandbox`: creates and starts a sandbox; returns its ID.
    fn run_pod_sandbox(&self, config: SandboxConfig)
    -> impl Future<Output = Result<String>> + Send;

    /// `StopPodSandbox`: kills what still runs in it and releases its network.
    fn stop_pod_sandbox(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// `RemovePodSandbox`: removes the sandbox, its containers and all it owns.
    fn remove_pod_sandbox(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// `PodSandboxStatus`.
    fn pod_sandbox_status(&self, id: &str) -> Result<SandboxStatus>;

    /// `ListPodSandbox`, newest first.
    fn list_pod_sandbox(&self, filter: &SandboxFilter) -> Result<Vec<SandboxStatus>>;

    /// `CreateContainer` in a ready sandbox; returns the container's ID.
    fn create_container(
        &self,
        sandbox_id: &str,
        config: ContainerConfig,
    ) -> impl Future<Output = Result<String>> + Send;

    /// `StartContainer`.
    fn start_container(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// `StopContainer`: its stop signal, then SIGKILL after `timeout` (at once when zero).
    fn stop_container(
        &self,
        id: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<()>> + Send;

    /// `RemoveContainer` (a running one is killed first).
    fn remove_container(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// `UpdateContainerResources`: the limits given replace the container's.
    fn update_container_resources(
        &self,
        id: &str,
        resources: Resources,
    ) -> impl Future<Output = Result<()>> + Send;

    /// `UpdatePodSandboxResources`: the pod-level limits given replace those of the pod's
    /// cgroup, where the runtime made it.
    fn update_pod_sandbox_resources(
        &self,
        id: &str,
        resources: Resources,
    ) -> impl Future<Output = Result<()>> + Send;

    /// `ReopenContainerLog`: a running container's output goes to a newly opened file at
    /// its log path.
    fn reopen_container_log(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// `ContainerStatus`.
    fn container_status(&self, id: &str) -> Result<ContainerStatus>;

    /// `ListContainers`, newest first.
    fn list_containers(&self, filter: &ContainerFilter) -> Result<Vec<ContainerStatus>>;

    /// `ExecSync`: runs `cmd` in a running container and collects its output; the process
    /// is killed once `timeout` has passed.
    fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> impl Future<Output = Result<ExecSyncResult>> + Send;

    /// `Exec`: starts `cmd` in running container `id` with a terminal or pipes, and with an
    /// input when `stdin`; the session ends with its exit code.
    fn exec_streams(
        &self,
        id: &str,
        cmd: Vec<String>,
        tty: bool,
        stdin: bool,
    ) -> impl Future<Output = Result<StreamSession>> + Send;

    /// `Attach`: connects to running container `id`'s streams (its input too when `stdin`
    /// and it keeps one open); the session ends when the container exits.
    fn attach_streams(
        &self,
        id: &str,
        stdin: bool,
    ) -> impl Future<Output = Result<StreamSession>> + Send;

    /// `ContainerStats`.
    fn container_stats(&self, id: &str) -> Result<ContainerStats>;

    /// `ListContainerStats`.
    fn list_container_stats(&self, filter: &ContainerFilter) -> Result<Vec<ContainerStats>>;

    /// `PodSandboxStats`.
    fn pod_sandbox_stats(&self, id: &str) -> Result<SandboxStats>;

    /// `ListPodSandboxStats`.
    fn list_pod_sandbox_stats(&self, filter: &SandboxFilter) -> Result<Vec<SandboxStats>>;

    /// `GetContainerEvents`: created, started, stopped and deleted containers (and stopped
    /// infra processes, with the sandbox's ID).
    fn container_events(&self) -> broadcast::Receiver<ContainerEvent>;

    /// A TCP connection to `addr` made from inside the sandbox's network namespace (the
    /// node's with the host network), within `timeout`: what `PortForward` does, for any
    /// address, as the pod controller's network probes and hooks need.
    fn dial(
        &self,
        sandbox_id: &str,
        addr: SocketAddr,
        timeout: Duration,
    ) -> impl Future<Output = std::io::Result<TcpStream>> + Send;
}

/// CRI `ImageService`.
pub trait ImageService: Send + Sync + 'static {
    /// `PullImage`: pulls `image` with `auth` tried before the node's own credentials.
    fn pull_image(
        &self,
        image: &str,
        auth: Option<AuthConfig>,
    ) -> impl Future<Output = Result<PulledImage>> + Send;

    /// `ImageStatus`: the image, or `None` when the store does not have it.
    fn image_status(&self, image: &str) -> Result<Option<ImageInfo>>;

    /// `ListImages`.
    fn list_images(&self) -> Result<Vec<ImageInfo>>;

    /// `RemoveImage` (removing a missing image succeeds).
    fn remove_image(&self, image: &str) -> Result<()>;

    /// `ImageFsInfo`: what the image store takes.
    fn image_fs_info(&self) -> Result<FsUsage>;
}
