//! Container probes, as the kubelet's prober runs them: startup gates liveness and
//! readiness; liveness (and startup) failures restart the container; readiness drives
//! `ready`. Exec probes run through the runtime's `exec_sync`; network probes (httpGet,
//! tcpSocket, grpc) connect from inside the pod's network namespace, so images need no
//! probing tools.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use peapod_runtime::Runtime;
use tokio::time::Instant;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use peapod_types::api::{Container, HTTPGetAction, Probe};

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// One probe's counters for one container instance.
#[derive(Debug, Clone)]
pub(crate) struct Worker {
    pub kind: Kind,
    pub probe: Probe,
    pub next_at: Instant,
    pub successes: i32,
    pub failures: i32,
    /// The last result the thresholds settled on (`None` before any).
    pub result: Option<bool>,
}

/// The probe state of one container instance.
#[derive(Debug, Clone)]
pub(crate) struct ContainerProbes {
    pub workers: Vec<Worker>,
}

impl ContainerProbes {
    /// Probes for a container instance that started at `started`.
    pub fn new(c: &Container, started: Instant) -> ContainerProbes {
        let mut workers = Vec::new();
        for (kind, p) in [
            (Kind::Startup, &c.startup_probe),
            (Kind::Liveness, &c.liveness_probe),
            (Kind::Readiness, &c.readiness_probe),
        ] {
            if let Some(p) = p {
                let delay = p.initial_delay_seconds.unwrap_or(0).max(0) as u64;
                workers.push(Worker {
                    kind,
                    probe: p.clone(),
                    next_at: started + Duration::from_secs(delay),
                    successes: 0,
                    failures: 0,
                    result: None,
                });
            }
        }
        ContainerProbes { workers }
    }

    /// Whether the container counts as started: its startup probe passed, or it has none.
    pub fn started(&self) -> bool {
        self.workers
            .iter()
            .find(|w| w.kind == Kind::Startup)
            .is_none_or(|w| w.result == Some(true))
    }

    /// Whether the container is ready: started, and its readiness probe passing (or none).
    pub fn ready(&self) -> bool {
        self.started()
            && self
                .workers
                .iter()
                .find(|w| w.kind == Kind::Readiness)
                .is_none_or(|w| w.result == Some(true))
    }
}

/// Where and how probes reach a container.
#[derive(Clone)]
pub(crate) struct Target {
    /// The pod's network namespace (`None`: the host's).
    pub netns: Option<PathBuf>,
    /// Default host for HTTP and TCP probes: the pod's IP, else loopback.
    pub host: IpAddr,
    /// The runtime, for exec probes.
    pub rt: Arc<Runtime>,
    /// The container's runtime ID.
    pub container_id: String,
}

impl Target {
    /// The same target, for container instance `id`.
    pub(crate) fn of(&self, id: &str) -> Target {
        Target {
            container_id: id.to_string(),
            ..self.clone()
        }
    }
}

/// The outcome of one probe run: success, and the output to report.
pub(crate) type Outcome = (bool, String);

/// Runs `probe` once against `c`.
pub(crate) async fn run(probe: &Probe, c: &Container, t: &Target) -> Outcome {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
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
        let netns = t.netns.clone();
        let addr = SocketAddr::new(ip, port);
        return blocking(move || {
            match peapod_oci::ns::connect_tcp_in(netns.as_deref(), addr, timeout) {
                Ok(_) => (true, String::new()),
                Err(e) => (false, format!("dial tcp {addr}: {}", dial_error(&e))),
            }
        })
        .await;
    }
    if let Some(g) = &probe.grpc {
        let Ok(port) = u16::try_from(g.port) else {
            return (false, format!("invalid port {}", g.port));
        };
        let addr = SocketAddr::new(t.host, port);
        let service = g.service.clone().unwrap_or_default();
        return crate::grpc::check(t.netns.clone(), addr, service, timeout).await;
    }
    (false, "the probe has no handler".into())
}

/// Performs an `httpGet` action (of a probe or a hook) against container `c`: the
/// response's status code, or what went wrong.
pub(crate) async fn http_action(
    h: &HTTPGetAction,
    c: &Container,
    t: &Target,
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
    let netns = t.netns.clone();
    let addr = SocketAddr::new(ip, port);
    tokio::task::spawn_blocking(move || http_get(netns, addr, tls, &path, &headers, timeout))
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
pub(crate) fn host_of(t: &Target, h: Option<&str>) -> Result<IpAddr, String> {
    match h.filter(|h| !h.is_empty()) {
        None => Ok(t.host),
        Some(h) => h
            .parse()
            .map_err(|_| format!("host {h:?} is not an IP address")),
    }
}

pub(crate) async fn blocking(f: impl FnOnce() -> Outcome + Send + 'static) -> Outcome {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| (false, format!("probe task failed: {e}")))
}

pub(crate) fn dial_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".into(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "i/o timeout".into(),
        _ => e.to_string(),
    }
}

/// An HTTP/1.1 GET from inside `netns` (over TLS when `tls`, with the certificate not
/// verified, as the kubelet's HTTPS probes do); the response's status code, or what went
/// wrong. (Probes succeed on 200 to 399; hooks on any response.)
fn http_get(
    netns: Option<PathBuf>,
    addr: SocketAddr,
    tls: bool,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<u16, String> {
    let url = format!("{}://{addr}{path}", if tls { "https" } else { "http" });
    let fail = |e: String| Err(format!("Get {url:?}: {e}"));
    let s = match peapod_oci::ns::connect_tcp_in(netns.as_deref(), addr, timeout) {
        Ok(s) => s,
        Err(e) => return fail(format!("dial tcp {addr}: {}", dial_error(&e))),
    };
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
async fn exec(cmd: Vec<String>, t: &Target, timeout: Duration) -> Outcome {
    match t.rt.exec_sync(&t.container_id, cmd.clone(), timeout).await {
        Err(e) => (false, format!("command {cmd:?}: {e}")),
        Ok(r) => {
            let mut text = String::from_utf8_lossy(&r.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&r.stderr));
            (r.exit_code == 0, text.trim_end().to_string())
        }
    }
}

/// Applies one outcome to a worker's thresholds; true when this run failed and the
/// failures have reached the threshold (the probe's action is due).
pub(crate) fn record(w: &mut Worker, ok: bool) -> bool {
    if ok {
        w.failures = 0;
        w.successes += 1;
        let threshold = w.probe.success_threshold.unwrap_or(1).max(1);
        if w.successes >= threshold {
            w.result = Some(true);
        }
    } else {
        w.successes = 0;
        w.failures += 1;
        let threshold = w.probe.failure_threshold.unwrap_or(3).max(1);
        if w.failures >= threshold {
            w.result = Some(false);
        }
    }
    w.result == Some(false) && !ok
}

/// The probe's period.
pub(crate) fn period(p: &Probe) -> Duration {
    Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64)
}

/// The event reason's message prefix: `Liveness probe failed: …`.
pub(crate) fn failed_message(kind: Kind, output: &str) -> String {
    format!("{} probe failed: {output}", kind.label())
}

/// What the kubelet says when a probe makes it restart a container.
pub(crate) fn restart_message(kind: Kind, container: &str) -> String {
    format!(
        "Container {container} failed {} probe, will be restarted",
        kind.label().to_lowercase()
    )
}
