//! The CRI `RuntimeService` over gRPC: each handler converts the request, calls the
//! runtime's trait, and converts the answer. RPCs without a handler here answer
//! `Unimplemented`.

use std::time::Duration;

use peapod_runtime::{ContainerFilter, SandboxFilter};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::proto::{self as pb, runtime_service_server::RuntimeService};
use crate::streaming::{Options, Target};
use crate::{Backend, Cri, status_of};

/// The CRI version this server speaks (the kubelet's `VersionRequest.version`).
const KUBELET_API_VERSION: &str = "0.1.0";

/// The streams of an exec or attach, checked as the kubelet's streaming server does.
fn stream_options(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> Result<Options, Status> {
    if tty && stderr {
        return Err(Status::invalid_argument(
            "tty and stderr cannot both be true (a terminal has one output)",
        ));
    }
    if !(stdin || stdout || stderr) {
        return Err(Status::invalid_argument(
            "one of stdin, stdout or stderr must be true",
        ));
    }
    Ok(Options {
        stdin,
        stdout,
        stderr,
        tty,
    })
}

fn verbose_info(
    verbose: bool,
    value: serde_json::Value,
) -> std::collections::HashMap<String, String> {
    if verbose {
        [("info".to_string(), value.to_string())].into()
    } else {
        Default::default()
    }
}

#[tonic::async_trait]
impl<R: Backend> RuntimeService for Cri<R> {
    async fn version(
        &self,
        _req: Request<pb::VersionRequest>,
    ) -> Result<Response<pb::VersionResponse>, Status> {
        let v = self.rt.version();
        Ok(Response::new(pb::VersionResponse {
            version: KUBELET_API_VERSION.into(),
            runtime_name: v.runtime_name,
            runtime_version: v.runtime_version,
            runtime_api_version: v.runtime_api_version,
        }))
    }

    async fn run_pod_sandbox(
        &self,
        req: Request<pb::RunPodSandboxRequest>,
    ) -> Result<Response<pb::RunPodSandboxResponse>, Status> {
        let req = req.into_inner();
        self.logged("RunPodSandbox", async {
            if !req.runtime_handler.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "runtime_handler: {:?} is not a handler of peapod (only the default, \"\")",
                    req.runtime_handler
                )));
            }
            let config = req
                .config
                .as_ref()
                .ok_or_else(|| Status::invalid_argument("config: required"))?;
            let config = convert::sandbox_config(config)?;
            let id = self.rt.run_pod_sandbox(config).await.map_err(status_of)?;
            self.observe(&id);
            Ok(pb::RunPodSandboxResponse { pod_sandbox_id: id })
        })
        .await
    }

    async fn stop_pod_sandbox(
        &self,
        req: Request<pb::StopPodSandboxRequest>,
    ) -> Result<Response<pb::StopPodSandboxResponse>, Status> {
        let id = req.into_inner().pod_sandbox_id;
        self.logged("StopPodSandbox", async {
            self.rt.stop_pod_sandbox(&id).await.map_err(status_of)?;
            self.observe(&id);
            Ok(pb::StopPodSandboxResponse {})
        })
        .await
    }

    async fn remove_pod_sandbox(
        &self,
        req: Request<pb::RemovePodSandboxRequest>,
    ) -> Result<Response<pb::RemovePodSandboxResponse>, Status> {
        let id = req.into_inner().pod_sandbox_id;
        self.logged("RemovePodSandbox", async {
            let full = self.full_id(&id);
            self.rt.remove_pod_sandbox(&id).await.map_err(status_of)?;
            self.observe_removed(full);
            Ok(pb::RemovePodSandboxResponse {})
        })
        .await
    }

    async fn pod_sandbox_status(
        &self,
        req: Request<pb::PodSandboxStatusRequest>,
    ) -> Result<Response<pb::PodSandboxStatusResponse>, Status> {
        let req = req.into_inner();
        self.logged("PodSandboxStatus", async {
            let s = self
                .rt
                .pod_sandbox_status(&req.pod_sandbox_id)
                .map_err(status_of)?;
            let info = verbose_info(
                req.verbose,
                serde_json::json!({
                    "pid": s.infra_pid,
                    "netns": s.netns,
                    "ip": s.ip,
                }),
            );
            let containers = self
                .rt
                .list_containers(&ContainerFilter::sandbox(&s.id))
                .map_err(status_of)?
                .iter()
                .map(|c| convert::container_status(c, &self.image_id(&c.image)))
                .collect();
            Ok(pb::PodSandboxStatusResponse {
                status: Some(convert::sandbox_status(&s)),
                info,
                containers_statuses: containers,
                timestamp: jiff::Timestamp::now().as_nanosecond() as i64,
            })
        })
        .await
    }

    async fn list_pod_sandbox(
        &self,
        req: Request<pb::ListPodSandboxRequest>,
    ) -> Result<Response<pb::ListPodSandboxResponse>, Status> {
        let req = req.into_inner();
        self.logged("ListPodSandbox", async {
            let filter: SandboxFilter = convert::sandbox_filter(req.filter.as_ref());
            let items = self
                .rt
                .list_pod_sandbox(&filter)
                .map_err(status_of)?
                .iter()
                .map(convert::sandbox)
                .collect();
            Ok(pb::ListPodSandboxResponse { items })
        })
        .await
    }

    async fn create_container(
        &self,
        req: Request<pb::CreateContainerRequest>,
    ) -> Result<Response<pb::CreateContainerResponse>, Status> {
        let req = req.into_inner();
        self.logged("CreateContainer", async {
            let config = req
                .config
                .as_ref()
                .ok_or_else(|| Status::invalid_argument("config: required"))?;
            let config = convert::container_config(config)?;
            let id = self
                .rt
                .create_container(&req.pod_sandbox_id, config)
                .await
                .map_err(status_of)?;
            self.observe(&id);
            Ok(pb::CreateContainerResponse { container_id: id })
        })
        .await
    }

    async fn start_container(
        &self,
        req: Request<pb::StartContainerRequest>,
    ) -> Result<Response<pb::StartContainerResponse>, Status> {
        let id = req.into_inner().container_id;
        self.logged("StartContainer", async {
            let started = self.rt.start_container(&id).await.map_err(status_of);
            self.observe(&id);
            started?;
            Ok(pb::StartContainerResponse {})
        })
        .await
    }

    async fn stop_container(
        &self,
        req: Request<pb::StopContainerRequest>,
    ) -> Result<Response<pb::StopContainerResponse>, Status> {
        let req = req.into_inner();
        self.logged("StopContainer", async {
            let timeout = Duration::from_secs(req.timeout.max(0) as u64);
            self.rt
                .stop_container(&req.container_id, timeout)
                .await
                .map_err(status_of)?;
            self.observe(&req.container_id);
            Ok(pb::StopContainerResponse {})
        })
        .await
    }

    async fn remove_container(
        &self,
        req: Request<pb::RemoveContainerRequest>,
    ) -> Result<Response<pb::RemoveContainerResponse>, Status> {
        let id = req.into_inner().container_id;
        self.logged("RemoveContainer", async {
            let full = self.full_id(&id);
            self.rt.remove_container(&id).await.map_err(status_of)?;
            self.observe_removed(full);
            Ok(pb::RemoveContainerResponse {})
        })
        .await
    }

    async fn get_container_events(
        &self,
        _req: Request<pb::GetEventsRequest>,
    ) -> Result<
        Response<
            std::pin::Pin<
                Box<
                    dyn futures_util::Stream<Item = Result<pb::ContainerEventResponse, Status>>
                        + Send
                        + 'static,
                >,
            >,
        >,
        Status,
    > {
        let rx = self.events.subscribe(std::sync::Arc::clone(&self.rt));
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match rx.recv().await {
                    Ok(ev) => return Some((Ok(ev), rx)),
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "a container event subscriber fell behind");
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn update_container_resources(
        &self,
        req: Request<pb::UpdateContainerResourcesRequest>,
    ) -> Result<Response<pb::UpdateContainerResourcesResponse>, Status> {
        let req = req.into_inner();
        self.logged("UpdateContainerResources", async {
            let res = convert::resources(&req.linux.unwrap_or_default());
            self.rt
                .update_container_resources(&req.container_id, res)
                .await
                .map_err(status_of)?;
            Ok(pb::UpdateContainerResourcesResponse {})
        })
        .await
    }

    /// The pod's cgroup is the kubelet's to size, as with containerd: the sandbox must
    /// exist, and only a pod cgroup the runtime made itself is changed.
    async fn update_pod_sandbox_resources(
        &self,
        req: Request<pb::UpdatePodSandboxResourcesRequest>,
    ) -> Result<Response<pb::UpdatePodSandboxResourcesResponse>, Status> {
        let req = req.into_inner();
        self.logged("UpdatePodSandboxResources", async {
            let res = convert::resources(&req.resources.unwrap_or_default());
            self.rt
                .update_pod_sandbox_resources(&req.pod_sandbox_id, res)
                .await
                .map_err(status_of)?;
            Ok(pb::UpdatePodSandboxResourcesResponse {})
        })
        .await
    }

    async fn reopen_container_log(
        &self,
        req: Request<pb::ReopenContainerLogRequest>,
    ) -> Result<Response<pb::ReopenContainerLogResponse>, Status> {
        let id = req.into_inner().container_id;
        self.logged("ReopenContainerLog", async {
            self.rt.reopen_container_log(&id).await.map_err(status_of)?;
            Ok(pb::ReopenContainerLogResponse {})
        })
        .await
    }

    async fn list_containers(
        &self,
        req: Request<pb::ListContainersRequest>,
    ) -> Result<Response<pb::ListContainersResponse>, Status> {
        let req = req.into_inner();
        self.logged("ListContainers", async {
            let filter = convert::container_filter(req.filter.as_ref());
            let containers = self
                .rt
                .list_containers(&filter)
                .map_err(status_of)?
                .iter()
                .map(|c| convert::container(c, &self.image_id(&c.image)))
                .collect();
            Ok(pb::ListContainersResponse { containers })
        })
        .await
    }

    async fn container_status(
        &self,
        req: Request<pb::ContainerStatusRequest>,
    ) -> Result<Response<pb::ContainerStatusResponse>, Status> {
        let req = req.into_inner();
        self.logged("ContainerStatus", async {
            let s = self
                .rt
                .container_status(&req.container_id)
                .map_err(status_of)?;
            let info = verbose_info(
                req.verbose,
                serde_json::json!({"pid": s.pid, "sandboxID": s.sandbox_id}),
            );
            Ok(pb::ContainerStatusResponse {
                status: Some(convert::container_status(&s, &self.image_id(&s.image))),
                info,
            })
        })
        .await
    }

    async fn exec_sync(
        &self,
        req: Request<pb::ExecSyncRequest>,
    ) -> Result<Response<pb::ExecSyncResponse>, Status> {
        let req = req.into_inner();
        self.logged("ExecSync", async {
            if req.cmd.is_empty() {
                return Err(Status::invalid_argument("cmd: required"));
            }
            // No timeout means none: a day bounds what a forgotten command may take.
            let timeout = match req.timeout {
                t if t > 0 => Duration::from_secs(t as u64),
                _ => Duration::from_secs(24 * 3600),
            };
            let r = self
                .rt
                .exec_sync(&req.container_id, req.cmd, timeout)
                .await
                .map_err(status_of)?;
            Ok(pb::ExecSyncResponse {
                stdout: r.stdout,
                stderr: r.stderr,
                exit_code: r.exit_code,
            })
        })
        .await
    }

    async fn exec(
        &self,
        req: Request<pb::ExecRequest>,
    ) -> Result<Response<pb::ExecResponse>, Status> {
        let req = req.into_inner();
        self.logged("Exec", async {
            if req.cmd.is_empty() {
                return Err(Status::invalid_argument("cmd: required"));
            }
            let options = stream_options(req.stdin, req.stdout, req.stderr, req.tty)?;
            let c = self.running(&req.container_id)?;
            let target = Target::Exec {
                container: c,
                cmd: req.cmd,
            };
            Ok(pb::ExecResponse {
                url: self.streams()?.url(target, options),
            })
        })
        .await
    }

    async fn attach(
        &self,
        req: Request<pb::AttachRequest>,
    ) -> Result<Response<pb::AttachResponse>, Status> {
        let req = req.into_inner();
        self.logged("Attach", async {
            let options = stream_options(req.stdin, req.stdout, req.stderr, req.tty)?;
            let c = self.running(&req.container_id)?;
            Ok(pb::AttachResponse {
                url: self
                    .streams()?
                    .url(Target::Attach { container: c }, options),
            })
        })
        .await
    }

    async fn port_forward(
        &self,
        req: Request<pb::PortForwardRequest>,
    ) -> Result<Response<pb::PortForwardResponse>, Status> {
        let req = req.into_inner();
        self.logged("PortForward", async {
            let s = self
                .rt
                .pod_sandbox_status(&req.pod_sandbox_id)
                .map_err(status_of)?;
            if s.state != peapod_runtime::SandboxState::Ready {
                return Err(Status::failed_precondition(format!(
                    "sandbox {} is not ready",
                    s.id
                )));
            }
            let target = Target::PortForward { sandbox: s.id };
            Ok(pb::PortForwardResponse {
                url: self.streams()?.url(target, Options::default()),
            })
        })
        .await
    }

    async fn container_stats(
        &self,
        req: Request<pb::ContainerStatsRequest>,
    ) -> Result<Response<pb::ContainerStatsResponse>, Status> {
        let req = req.into_inner();
        self.logged("ContainerStats", async {
            let s = self
                .rt
                .container_stats(&req.container_id)
                .map_err(status_of)?;
            Ok(pb::ContainerStatsResponse {
                stats: Some(convert::container_stats(&s)),
            })
        })
        .await
    }

    async fn list_container_stats(
        &self,
        req: Request<pb::ListContainerStatsRequest>,
    ) -> Result<Response<pb::ListContainerStatsResponse>, Status> {
        let req = req.into_inner();
        self.logged("ListContainerStats", async {
            let filter = convert::container_stats_filter(req.filter.as_ref());
            let stats = self.rt.list_container_stats(&filter).map_err(status_of)?;
            Ok(pb::ListContainerStatsResponse {
                stats: stats.iter().map(convert::container_stats).collect(),
            })
        })
        .await
    }

    async fn pod_sandbox_stats(
        &self,
        req: Request<pb::PodSandboxStatsRequest>,
    ) -> Result<Response<pb::PodSandboxStatsResponse>, Status> {
        let req = req.into_inner();
        self.logged("PodSandboxStats", async {
            let s = self
                .rt
                .pod_sandbox_stats(&req.pod_sandbox_id)
                .map_err(status_of)?;
            Ok(pb::PodSandboxStatsResponse {
                stats: Some(convert::sandbox_stats(&s)),
            })
        })
        .await
    }

    async fn list_pod_sandbox_stats(
        &self,
        req: Request<pb::ListPodSandboxStatsRequest>,
    ) -> Result<Response<pb::ListPodSandboxStatsResponse>, Status> {
        let req = req.into_inner();
        self.logged("ListPodSandboxStats", async {
            let filter = convert::sandbox_stats_filter(req.filter.as_ref());
            let stats = self.rt.list_pod_sandbox_stats(&filter).map_err(status_of)?;
            Ok(pb::ListPodSandboxStatsResponse {
                stats: stats.iter().map(convert::sandbox_stats).collect(),
            })
        })
        .await
    }

    async fn update_runtime_config(
        &self,
        req: Request<pb::UpdateRuntimeConfigRequest>,
    ) -> Result<Response<pb::UpdateRuntimeConfigResponse>, Status> {
        let cidr = req
            .into_inner()
            .runtime_config
            .and_then(|c| c.network_config)
            .map(|n| n.pod_cidr)
            .unwrap_or_default();
        // Pod addresses come from the CNI configuration, which names its own ranges.
        tracing::info!(pod_cidr = %cidr, "UpdateRuntimeConfig: noted; the CNI configuration assigns pod addresses");
        Ok(Response::new(pb::UpdateRuntimeConfigResponse {}))
    }

    async fn status(
        &self,
        req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let c = self.rt.status();
        let conditions = vec![
            pb::RuntimeCondition {
                r#type: "RuntimeReady".into(),
                status: c.runtime_ready,
                reason: String::new(),
                message: String::new(),
            },
            pb::RuntimeCondition {
                r#type: "NetworkReady".into(),
                status: c.network_ready,
                reason: c.network_reason,
                message: c.network_message,
            },
        ];
        let info = verbose_info(
            req.into_inner().verbose,
            serde_json::json!({"runtime": "peapod", "cgroupDriver": "cgroupfs"}),
        );
        Ok(Response::new(pb::StatusResponse {
            status: Some(pb::RuntimeStatus { conditions }),
            info,
            runtime_handlers: vec![pb::RuntimeHandler {
                name: String::new(),
                features: Some(pb::RuntimeHandlerFeatures {
                    recursive_read_only_mounts: true,
                    user_namespaces: true,
                }),
            }],
            features: Some(pb::RuntimeFeatures {
                supplemental_groups_policy: true,
                ..Default::default()
            }),
        }))
    }

    async fn runtime_config(
        &self,
        _req: Request<pb::RuntimeConfigRequest>,
    ) -> Result<Response<pb::RuntimeConfigResponse>, Status> {
        Ok(Response::new(pb::RuntimeConfigResponse {
            linux: Some(pb::LinuxRuntimeConfiguration {
                cgroup_driver: pb::CgroupDriver::Cgroupfs as i32,
            }),
        }))
    }
}
