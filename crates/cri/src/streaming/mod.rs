//! The streaming server: where `Exec`, `Attach` and `PortForward` send their clients. Each
//! of those RPCs stores its request under a random one-time token and answers with a URL
//! naming it (`http://ADDR/exec/TOKEN`); the client (a kubelet, `crictl`) upgrades an HTTP
//! request to that URL to SPDY/3.1 or WebSocket and speaks Kubernetes' remote command or
//! port forwarding protocol over it. A token is good for one connection, within a minute.

mod cache;
pub mod portforward;
pub mod remotecommand;
pub mod spdy;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::Backend;
use cache::Cache;

/// The upgraded connection a protocol runs over.
pub(crate) type Io = TokioIo<hyper::upgrade::Upgraded>;

/// The header naming the stream protocols a SPDY client speaks, and the one chosen.
const STREAM_PROTOCOL: &str = "X-Stream-Protocol-Version";

/// What a session runs: a process, a container's streams, or a pod's ports.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A command in a container.
    Exec {
        /// The container.
        container: String,
        /// The command.
        cmd: Vec<String>,
    },
    /// A running container's streams.
    Attach {
        /// The container.
        container: String,
    },
    /// Ports of a sandbox.
    PortForward {
        /// The sandbox.
        sandbox: String,
    },
}

/// Which streams a remote command has.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Options {
    /// Input from the client.
    pub stdin: bool,
    /// Output to the client.
    pub stdout: bool,
    /// Errors to the client (merged into stdout with a terminal).
    pub stderr: bool,
    /// A terminal.
    pub tty: bool,
}

/// A stored request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pending {
    pub(crate) target: Target,
    pub(crate) options: Options,
}

/// The streaming server over a runtime.
pub struct Streaming<R> {
    rt: Arc<R>,
    base: String,
    cache: Mutex<Cache>,
}

impl<R: Backend> Streaming<R> {
    /// Binds the server to `addr` (port 0 picks one); serve it with [`Streaming::serve`].
    pub async fn bind(rt: Arc<R>, addr: SocketAddr) -> std::io::Result<(Arc<Self>, TcpListener)> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let s = Streaming {
            rt,
            base: format!("http://{local}"),
            cache: Mutex::new(Cache::default()),
        };
        Ok((Arc::new(s), listener))
    }

    /// Stores a request; returns the URL its client connects to.
    pub fn url(&self, target: Target, options: Options) -> String {
        let kind = match target {
            Target::Exec { .. } => "exec",
            Target::Attach { .. } => "attach",
            Target::PortForward { .. } => "portforward",
        };
        let token = self
            .cache
            .lock()
            .unwrap()
            .insert(Pending { target, options });
        format!("{}/{kind}/{token}", self.base)
    }

    /// Serves connections until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let me = Arc::clone(&self);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let me = Arc::clone(&me);
                    async move { Ok::<_, Infallible>(me.handle(req)) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    tracing::debug!("streaming connection: {e}");
                }
            });
        }
    }

    /// Answers one request: the upgrade (the session then runs in a task of its own), or
    /// why not.
    fn handle(self: &Arc<Self>, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
        let [kind, token] = path[..] else {
            return plain(StatusCode::NOT_FOUND, "no such path");
        };
        let Some(pending) = self.cache.lock().unwrap().take(token) else {
            return plain(StatusCode::NOT_FOUND, "unknown or expired token");
        };
        let kind_ok = matches!(
            (kind, &pending.target),
            ("exec", Target::Exec { .. })
                | ("attach", Target::Attach { .. })
                | ("portforward", Target::PortForward { .. })
        );
        if !kind_ok {
            return plain(
                StatusCode::NOT_FOUND,
                "the token is for another kind of session",
            );
        }
        let upgrade = header(&req, UPGRADE.as_str()).to_ascii_lowercase();
        let portforward = matches!(pending.target, Target::PortForward { .. });
        if upgrade == "websocket" {
            let offered = header(&req, "Sec-WebSocket-Protocol");
            let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
            let supported: &[&str] = if portforward {
                &[TUNNELED_PORTFORWARD]
            } else {
                remotecommand::WS_PROTOCOLS
            };
            let Some(chosen) = offered.iter().find(|p| supported.contains(p)).copied() else {
                return plain(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "none of the protocols {offered:?} is supported; supported: {supported:?}"
                    ),
                );
            };
            let key = header(&req, "Sec-WebSocket-Key");
            if key.is_empty() {
                return plain(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key: required");
            }
            let accept =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            let chosen = chosen.to_string();
            let on = hyper::upgrade::on(&mut req);
            let (rt, proto) = (Arc::clone(&self.rt), chosen.clone());
            tokio::spawn(async move {
                let Ok(up) = on.await else { return };
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
                match pending.target {
                    Target::PortForward { sandbox } => {
                        let conn = spdy::Connection::new(tunnel(ws), true);
                        portforward::serve(rt, conn, sandbox).await;
                    }
                    target => {
                        remotecommand::serve_ws(rt, ws, &proto, target, pending.options).await
                    }
                }
            });
            let mut r = switching("websocket");
            let h = r.headers_mut();
            h.insert("Sec-WebSocket-Accept", value(&accept));
            h.insert("Sec-WebSocket-Protocol", value(&chosen));
            return r;
        }
        if upgrade != "spdy/3.1" {
            return plain(
                StatusCode::BAD_REQUEST,
                "an upgrade to SPDY/3.1 or WebSocket is required",
            );
        }
        let offered: Vec<String> = req
            .headers()
            .get_all(STREAM_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|p| p.trim().to_string())
            .collect();
        let supported: &[&str] = if portforward {
            &[portforward::PROTOCOL]
        } else {
            remotecommand::SPDY_PROTOCOLS
        };
        // No protocol asked for means the first version of the remote command protocol.
        let chosen = if offered.is_empty() && !portforward {
            Some("channel.k8s.io".to_string())
        } else {
            offered
                .iter()
                .find(|p| supported.contains(&p.as_str()))
                .cloned()
        };
        let Some(chosen) = chosen else {
            return plain(
                StatusCode::FORBIDDEN,
                &format!(
                    "none of the protocols {offered:?} is supported; supported: {supported:?}"
                ),
            );
        };
        let on = hyper::upgrade::on(&mut req);
        let (rt, proto) = (Arc::clone(&self.rt), chosen.clone());
        tokio::spawn(async move {
            let Ok(up) = on.await else { return };
            let conn = spdy::Connection::new(TokioIo::new(up), true);
            match pending.target {
                Target::PortForward { sandbox } => portforward::serve(rt, conn, sandbox).await,
                target => {
                    remotecommand::serve_spdy(rt, conn, &proto, target, pending.options).await
                }
            }
        });
        let mut r = switching("SPDY/3.1");
        r.headers_mut().insert(STREAM_PROTOCOL, value(&chosen));
        r
    }
}

/// The WebSocket protocol that carries port forwarding's SPDY frames in binary messages.
const TUNNELED_PORTFORWARD: &str = "SPDY/3.1+portforward.k8s.io";

/// A byte stream over a WebSocket's binary messages (SPDY tunneled in WebSocket).
fn tunnel(ws: WebSocketStream<Io>) -> tokio::io::DuplexStream {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (near, far) = tokio::io::duplex(64 * 1024);
    let (mut rd, mut wr) = tokio::io::split(far);
    let (mut sink, mut source) = ws.split();
    tokio::spawn(async move {
        while let Some(Ok(m)) = source.next().await {
            use tokio_tungstenite::tungstenite::Message as M;
            let written = match m {
                M::Binary(b) => wr.write_all(&b).await,
                M::Close(_) => break,
                _ => Ok(()),
            };
            if written.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let m = tokio_tungstenite::tungstenite::Message::binary(buf[..n].to_vec());
                    if sink.send(m).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.close().await;
    });
    near
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn plain(code: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *r.status_mut() = code;
    r
}

fn switching(protocol: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static(protocol));
    r
}
