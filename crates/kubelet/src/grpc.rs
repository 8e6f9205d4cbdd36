//! gRPC probes: `grpc.health.v1.Health/Check` over a connection the runtime dials from
//! inside the pod's network namespace, with the kubelet's messages.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peapod_runtime::RuntimeService;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::prober::{Outcome, Target, dial_error};

/// Asks the health service at `addr` about `service`; success when it answers SERVING.
pub(crate) async fn check<R: RuntimeService>(
    t: &Target<R>,
    addr: SocketAddr,
    service: String,
    timeout: Duration,
) -> Outcome {
    let secs = crate::clock::go_duration(timeout);
    let stream = match t.rt.dial(&t.sandbox_id, addr, timeout).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            return (
                false,
                format!(
                    "timeout: failed to connect service {:?} within {secs}: context deadline exceeded",
                    addr.to_string()
                ),
            );
        }
        Err(e) => {
            return (
                false,
                format!(
                    "error: failed to connect service at {:?}: dial tcp {addr}: {}",
                    addr.to_string(),
                    dial_error(&e)
                ),
            );
        }
    };
    let stream = match stream
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpStream::from_std(stream))
    {
        Ok(s) => s,
        Err(e) => return (false, format!("error: {e}")),
    };
    // The connection is already made (in the pod's namespace): hand it to the channel once.
    let slot = Arc::new(Mutex::new(Some(stream)));
    let connector = tower::service_fn(move |_: tonic::transport::Uri| {
        let s = slot.lock().unwrap().take();
        async move {
            s.map(hyper_util::rt::TokioIo::new)
                .ok_or_else(|| std::io::Error::other("connection already used"))
        }
    });
    let call = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect_with_connector(connector)
            .await
            .map_err(|e| {
                format!(
                    "error: failed to connect service at {:?}: {e}",
                    addr.to_string()
                )
            })?;
        let mut client = HealthClient::new(channel);
        client
            .check(HealthCheckRequest { service })
            .await
            .map_err(|status| match status.code() {
                tonic::Code::Unimplemented => format!(
                    "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                    status.message()
                ),
                _ => format!(
                    "error: health rpc probe failed: rpc error: code = {:?} desc = {}",
                    status.code(),
                    status.message()
                ),
            })
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => (
            false,
            format!("timeout: health rpc did not complete within {secs}"),
        ),
        Ok(Err(e)) => (false, e),
        Ok(Ok(resp)) => {
            let status = resp.into_inner().status();
            if status == ServingStatus::Serving {
                (true, String::new())
            } else {
                (
                    false,
                    format!(
                        "service unhealthy (responded with {:?})",
                        status.as_str_name()
                    ),
                )
            }
        }
    }
}
