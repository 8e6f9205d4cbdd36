//! peapod's CRI v1 server: the Kubernetes Container Runtime Interface's `RuntimeService` and
//! `ImageService` over gRPC on a unix socket, so that a kubelet (or `crictl`) drives peapod.
//!
//! The gRPC code is generated at build time from the upstream `api.proto`
//! (`proto/runtime/v1`, k8s.io/cri-api v0.36.3). Each handler is a thin conversion onto the
//! runtime's own CRI traits ([`peapod_runtime::RuntimeService`],
//! [`peapod_runtime::ImageService`]), the same ones the pod controller uses; RPCs peapod
//! does not serve yet answer `Unimplemented`. `Exec`, `Attach` and `PortForward` answer
//! with URLs of the [`streaming`] server, which carries the sessions. Every failed RPC is logged, one line each.

pub mod convert;
pub mod events;
mod image_service;
mod runtime_service;
mod serve;
pub mod streaming;

pub use serve::{ServeError, serve};

use std::sync::Arc;

use tonic::Status;

/// The generated CRI messages, clients and servers (`runtime.v1`).
pub mod proto {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("runtime.v1");
}

/// What the server serves: both CRI traits.
pub trait Backend: peapod_runtime::RuntimeService + peapod_runtime::ImageService {}

impl<T: peapod_runtime::RuntimeService + peapod_runtime::ImageService> Backend for T {}

/// The CRI services over one backend.
pub struct Cri<R> {
    rt: Arc<R>,
    streaming: Option<Arc<streaming::Streaming<R>>>,
    /// Container and sandbox events.
    events: Arc<events::Hub>,
}

impl<R: Backend> Cri<R> {
    /// The services over `rt`, without a streaming server (`Exec`, `Attach` and
    /// `PortForward` then fail).
    pub fn new(rt: Arc<R>) -> Cri<R> {
        Cri {
            rt,
            streaming: None,
            events: Default::default(),
        }
    }

    /// The services over `rt`, sending streaming clients to `streaming`.
    pub fn with_streaming(rt: Arc<R>, streaming: Arc<streaming::Streaming<R>>) -> Cri<R> {
        Cri {
            rt,
            streaming: Some(streaming),
            events: Default::default(),
        }
    }

    /// The streaming server, or why there is none.
    fn streams(&self) -> Result<&streaming::Streaming<R>, Status> {
        self.streaming
            .as_deref()
            .ok_or_else(|| Status::unavailable("this server has no streaming server"))
    }

    /// Runs a handler's body, logging its failure (one line: the method and the error).
    async fn logged<T>(
        &self,
        method: &'static str,
        body: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<tonic::Response<T>, Status> {
        match body.await {
            Ok(v) => Ok(tonic::Response::new(v)),
            Err(s) => {
                tracing::warn!(method, code = ?s.code(), "{}", s.message());
                Err(s)
            }
        }
    }

    /// Tells event subscribers what container or sandbox `id` is now (gone when it is
    /// neither).
    fn observe(&self, id: &str) {
        use events::Phase;
        use peapod_runtime::{ContainerState, SandboxState};
        let (full, phase) = if let Ok(c) = self.rt.container_status(id) {
            let phase = match c.state {
                ContainerState::Created => Phase::Created,
                ContainerState::Running => Phase::Running,
                _ => Phase::Stopped,
            };
            (c.id, Some(phase))
        } else if let Ok(s) = self.rt.pod_sandbox_status(id) {
            let phase = match s.state {
                SandboxState::Ready => Phase::Running,
                SandboxState::NotReady => Phase::Stopped,
            };
            (s.id, Some(phase))
        } else {
            (id.to_string(), None)
        };
        self.events.observe(&*self.rt, &full, phase);
    }

    /// Tells event subscribers that `full_id` was removed.
    fn observe_removed(&self, full_id: Option<String>) {
        if let Some(id) = full_id {
            self.events.observe(&*self.rt, &id, None);
        }
    }

    /// The full ID of a container or sandbox about to be removed, after telling event
    /// subscribers what it is now.
    fn full_id(&self, id: &str) -> Option<String> {
        self.observe(id);
        self.rt
            .container_status(id)
            .map(|c| c.id)
            .or_else(|_| self.rt.pod_sandbox_status(id).map(|s| s.id))
            .ok()
    }

    /// The full ID of container `id`, which must be running.
    fn running(&self, id: &str) -> Result<String, Status> {
        let c = self.rt.container_status(id).map_err(status_of)?;
        if c.state != peapod_runtime::ContainerState::Running {
            return Err(Status::failed_precondition(format!(
                "container {} is not running",
                c.id
            )));
        }
        Ok(c.id)
    }

    /// The ID of image `name` (empty when the store no longer has it).
    fn image_id(&self, name: &str) -> String {
        self.rt
            .image_status(name)
            .ok()
            .flatten()
            .map(|i| i.id)
            .unwrap_or_default()
    }
}

/// The gRPC status of a runtime error.
pub(crate) fn status_of(e: peapod_runtime::Error) -> Status {
    use peapod_runtime::Error as E;
    match &e {
        _ if e.is_not_found() => Status::not_found(e.to_string()),
        E::State(_) | E::PortInUse(_) => Status::failed_precondition(e.to_string()),
        _ => Status::unknown(e.to_string()),
    }
}
