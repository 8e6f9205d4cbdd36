//! Serving the CRI on a unix socket until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use crate::proto::image_service_server::ImageServiceServer;
use crate::proto::runtime_service_server::RuntimeServiceServer;
use crate::streaming::Streaming;
use crate::{Backend, Cri};

/// How long calls in flight may take to finish once a stop is asked for.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the server could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The socket could not be made.
    #[error("listening on {path}: {source}")]
    Listen {
        /// The socket's path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("serving the CRI: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves the CRI over `backend` on the unix socket at `socket` (replacing a stale one,
/// mode 0660), and its streaming server on `stream_address`, until SIGTERM or SIGINT;
/// then removes the socket. What runs keeps running.
pub async fn serve<R: Backend>(
    backend: Arc<R>,
    socket: &Path,
    stream_address: SocketAddr,
) -> Result<(), ServeError> {
    let listen = |e: std::io::Error| ServeError::Listen {
        path: socket.display().to_string(),
        source: e,
    };
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(listen)?;
    }
    match std::fs::remove_file(socket) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(listen(e)),
        _ => {}
    }
    let listener = UnixListener::bind(socket).map_err(listen)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660)).map_err(listen)?;
    tracing::info!(socket = %socket.display(), "serving the CRI");
    let (streaming, stream_listener) = Streaming::bind(Arc::clone(&backend), stream_address)
        .await
        .map_err(|e| ServeError::Listen {
            path: stream_address.to_string(),
            source: e,
        })?;
    tracing::info!(address = %stream_listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving exec, attach and port-forward sessions");
    let stream_task = tokio::spawn(Arc::clone(&streaming).serve(stream_listener));
    let runtime = RuntimeServiceServer::new(Cri::with_streaming(Arc::clone(&backend), streaming));
    let images = ImageServiceServer::new(Cri::new(backend));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(runtime)
        .add_service(images)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
            let _ = stopped.await;
        });
    tokio::pin!(server);
    let result = tokio::select! {
        r = &mut server => r,
        _ = shutdown() => {
            // Calls in flight get a moment to finish; a client's idle connection (a kubelet
            // keeps one open) does not hold the exit.
            let _ = stop.send(());
            tokio::time::timeout(DRAIN, &mut server).await.unwrap_or(Ok(()))
        }
    };
    stream_task.abort();
    let _ = std::fs::remove_file(socket);
    tracing::info!("stopped serving the CRI");
    Ok(result?)
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
