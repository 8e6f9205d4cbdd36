//! Running probe handlers, as the kubelet's prober does: exec through the runtime's
//! `ExecSync`; httpGet, tcpSocket and gRPC over connections the runtime dials from inside
//! the pod's network namespace, so images need no probing tools.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use peapod_runtime::RuntimeService;
use peapod_types::api::{Container, HTTPGetAction};
use peapod_types::pod::ProbeSpec;

/// Where and how probes and hooks reach a container.
pub(crate) struct Target<R> {
    /// The runtime: exec handlers run through it, network handlers dial through it.
    pub rt: Arc<R>,
    /// The pod's sandbox (network handlers connect from inside its network namespace).
    pub sandbox_id: String,
    /// Default host for HTTP and TCP handlers: the pod's IP, else loopback.
    pub host: IpAddr,
    /// The container instance.
    pub container_id: String,
}

impl<R> Clone for Target<R> {
    fn clone(&self) -> Self {
        Target {
            rt: Arc::clone(&self.rt),
            sandbox_id: self.sandbox_id.clone(),
            host: self.host,
            container_id: self.container_id.clone(),
        }
    }
}

/// The outcome of one probe run: success, and the output to report.
pub(crate) type Outcome = (bool, String);

/// Runs `probe` once against `c`.
pub(crate) async fn run<R: RuntimeService>(
    spec: &ProbeSpec,
    c: &Container,
    t: &Target<R>,
) -> Outcome {
    let probe = &spec.probe;
    let timeout = spec.timeout;
    if let Some(e) = &probe.exec {
        return exec(e.command.clone().unwrap_or_default(), t, timeout).await;
    }
    let port_of = |p: &IntOrString| port_of(c, p);
    let host = |h: &Option<String>| host_of(t, h.as_deref());
    if let Some(h) = &probe.http_get {
        return match http_action(h, c, t, timeout).await {
            Ok(c) if (200..400).contains(&c) => (true, String::new()),
            Ok(c) => (false, format!("HTTP probe failed with statuscode: {c}")),
            Err(e) => (false, e),
        };
    }
    if let Some(s) = &probe.tcp_socket {
        let (port, ip) = match (port_of(&s.port), host(&s.host)) {
            (Ok(p), Ok(i)) => (p, i),
            (Err(e), _) | (_, Err(e)) => return (false, e),
        };
        let addr = SocketAddr::new(ip, port);
        return match t.rt.dial(&t.sandbox_id, addr, timeout).await {
            Ok(_) => (true, String::new()),
            Err(e) => (false, format!("dial tcp {addr}: {}", dial_error(&e))),
        };
    }
    if let Some(g) = &probe.grpc {
        let Ok(port) = u16::try_from(g.port) else {
            return (false, format!("invalid port {}", g.port));
        };
        let addr = SocketAddr::new(t.host, port);
        let service = g.service.clone().unwrap_or_default();
        return crate::grpc::check(t, addr, service, timeout).await;
    }
    (false, "the probe has no handler".into())
}

/// Performs an `httpGet` action (of a probe or a hook) against container `c`: the
/// response's status code, or what went wrong.
pub(crate) async fn http_action<R: RuntimeService>(
    h: &HTTPGetAction,
    c: &Container,
    t: &Target<R>,
    timeout: Duration,
) -> Result<u16, String> {
    let port = port_of(c, &h.port)?;
    let ip = host_of(t, h.host.as_deref())?;
    let tls = match h.scheme.as_deref().unwrap_or("HTTP") {
        "HTTP" => false,
        "HTTPS" => true,
        other => return Err(format!("unsupported scheme {other:?}")),
    };
    let path = h.path.clone().unwrap_or_else(|| "/".into());
    let headers: Vec<(String, String)> = h
        .http_headers
        .iter()
        .flatten()
        .map(|x| (x.name.clone(), x.value.clone()))
        .collect();
    let addr = SocketAddr::new(ip, port);
    let url = format!("{}://{addr}{path}", if tls { "https" } else { "http" });
    let stream = match t.rt.dial(&t.sandbox_id, addr, timeout).await {
        Ok(s) => s,
        Err(e) => return Err(format!("Get {url:?}: dial tcp {addr}: {}", dial_error(&e))),
    };
    tokio::task::spawn_blocking(move || http_get(stream, addr, tls, &path, &headers, timeout))
        .await
        .unwrap_or_else(|e| Err(format!("probe task failed: {e}")))
}

/// A port given by number or by the name of one of the container's ports.
pub(crate) fn port_of(c: &Container, p: &IntOrString) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port as u16)
            .ok_or_else(|| format!("port {name:?} is not a named port of the container")),
    }
}

/// The host a network handler connects to: the one given, else the pod's IP.
pub(crate) fn host_of<R>(t: &Target<R>, h: Option<&str>) -> Result<IpAddr, String> {
    match h.filter(|h| !h.is_empty()) {
        None => Ok(t.host),
        Some(h) => h
            .parse()
            .map_err(|_| format!("host {h:?} is not an IP address")),
    }
}

pub(crate) fn dial_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".into(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "i/o timeout".into(),
        _ => e.to_string(),
    }
}

/// An HTTP/1.1 GET over the connection `s` to `addr` (over TLS when `tls`, with the
/// certificate not verified, as the kubelet's HTTPS probes do); the response's status code,
/// or what went wrong. (Probes succeed on 200 to 399; hooks on any response.)
fn http_get(
    s: TcpStream,
    addr: SocketAddr,
    tls: bool,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<u16, String> {
    let url = format!("{}://{addr}{path}", if tls { "https" } else { "http" });
    let fail = |e: String| Err(format!("Get {url:?}: {e}"));
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !has("host") {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    if !has("user-agent") {
        req.push_str("User-Agent: kube-probe/1.33\r\n");
    }
    if !has("accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    let mut stream: Box<dyn ReadWrite> = if tls {
        match crate::tls::client(addr.ip(), s) {
            Ok(t) => Box::new(t),
            Err(e) => return fail(e),
        }
    } else {
        Box::new(s)
    };
    if let Err(e) = stream.write_all(req.as_bytes()) {
        return fail(e.to_string());
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = std::time::Instant::now() + timeout;
    // The status line is enough; read up to 10 KiB of the body for the message.
    while buf.len() < 10 * 1024 && std::time::Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if buf.is_empty() => {
                return fail(format!("read: {}", dial_error(&e)));
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let code: Option<u16> = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok());
    match code {
        Some(c) => Ok(c),
        None => fail("malformed HTTP response".into()),
    }
}

/// A byte stream, plain or TLS.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Runs the command in the container; success when it exits 0. Output is stdout then
/// stderr.
async fn exec<R: RuntimeService>(cmd: Vec<String>, t: &Target<R>, timeout: Duration) -> Outcome {
    match t.rt.exec_sync(&t.container_id, cmd.clone(), timeout).await {
        Err(e) => (false, format!("command {cmd:?}: {e}")),
        Ok(r) => {
            let mut text = String::from_utf8_lossy(&r.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&r.stderr));
            (r.exit_code == 0, text.trim_end().to_string())
        }
    }
}
