//! Port forwarding as Kubernetes' `portforward.k8s.io` protocol carries it over SPDY: for
//! each connection, the client opens an `error` stream and a `data` stream with the same
//! `requestID` and the pod's `port`; the data stream is joined to a TCP connection made to
//! that port inside the pod's network namespace, and a failure is reported as text on the
//! error stream.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::spdy::{self, Stream};
use crate::Backend;

/// The protocol's name.
pub(crate) const PROTOCOL: &str = "portforward.k8s.io";

/// How long a connection to the pod's port may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves port forwarding into sandbox `sandbox` over `conn` until the client goes.
pub(crate) async fn serve<R: Backend>(rt: Arc<R>, conn: spdy::Connection, sandbox: String) {
    // Streams of a request wait here for their partner.
    let mut pending: HashMap<String, (Option<Stream>, Option<Stream>)> = HashMap::new();
    while let Some(s) = conn.accept().await {
        if s.writer().reply().await.is_err() {
            break;
        }
        let request = s.header("requestid").unwrap_or_default().to_string();
        let slot = pending.entry(request.clone()).or_default();
        match s.header("streamtype") {
            Some("error") => slot.0 = Some(s),
            Some("data") => slot.1 = Some(s),
            _ => continue,
        }
        if let (Some(_), Some(_)) = slot {
            let (Some(error), Some(data)) = pending.remove(&request).unwrap_or_default() else {
                continue;
            };
            tokio::spawn(forward(Arc::clone(&rt), sandbox.clone(), error, data));
        }
    }
    conn.go_away().await;
}

/// Joins `data` to the pod's port its headers name.
async fn forward<R: Backend>(rt: Arc<R>, sandbox: String, error: Stream, data: Stream) {
    let errw = error.writer();
    let port = data
        .header("port")
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p > 0);
    let Some(port) = port else {
        let _ = errw
            .write(format!("invalid port {:?}", data.header("port")).as_bytes())
            .await;
        let _ = errw.close().await;
        let _ = data.writer().close().await;
        return;
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let tcp = match rt.dial(&sandbox, addr, DIAL_TIMEOUT).await {
        Ok(t) => t
            .set_nonblocking(true)
            .and_then(|_| tokio::net::TcpStream::from_std(t)),
        Err(e) => Err(e),
    };
    let tcp = match tcp {
        Ok(t) => t,
        Err(e) => {
            let msg = format!("error forwarding port {port} to pod {sandbox}: {e}");
            tracing::warn!("{msg}");
            let _ = errw.write(msg.as_bytes()).await;
            let _ = errw.close().await;
            let _ = data.writer().close().await;
            return;
        }
    };
    let (mut from_client, to_client) = data.split();
    let (mut rd, mut wr) = tcp.into_split();
    let upstream = async move {
        while let Some(d) = from_client.recv().await {
            if wr.write_all(&d).await.is_err() {
                return;
            }
        }
        // The client is done sending: so is the connection to the pod.
        let _ = wr.shutdown().await;
    };
    let downstream = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_client.write(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = to_client.close().await;
    };
    let up = tokio::spawn(upstream);
    downstream.await;
    up.abort();
    let _ = errw.close().await;
}
