//! `peapod port-forward pod/NAME [LOCAL:]REMOTE...`, as `kubectl port-forward`: local
//! listeners (loopback by default) whose connections are made to the pod's own loopback,
//! from inside its network namespace. Runs until interrupted.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use peapod_shim::PodHandle;
use peapod_types::config::Config;

/// Arguments of `port-forward`.
#[derive(clap::Args)]
pub struct Args {
    /// The pod: `pod/NAME` or `NAME`.
    pod: String,
    /// Ports: `LOCAL:REMOTE`, `PORT` (the same on both sides) or `:REMOTE` (a free local
    /// port); REMOTE may be the name of a container port.
    #[arg(required = true)]
    ports: Vec<String>,
    /// Addresses to listen on, comma-separated: `localhost` (127.0.0.1 and ::1), or IPs.
    #[arg(long, default_value = "localhost")]
    address: String,
    /// Namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
}

/// A port given by number, or by the name of one of the pod's container ports.
fn remote_port(h: &PodHandle, s: &str) -> Result<u16> {
    if let Ok(n) = s.parse::<u16>() {
        return Ok(n);
    }
    let spec = h.pod.spec();
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(s))
        .map(|p| p.container_port as u16)
        .ok_or_else(|| anyhow::anyhow!("pod {:?} has no container port named {s:?}", h.name()))
}

fn addresses(s: &str) -> Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for a in s.split(',').map(str::trim) {
        match a {
            "localhost" => out.extend([IpAddr::from([127, 0, 0, 1]), "::1".parse()?]),
            ip => out.push(
                ip.parse()
                    .with_context(|| format!("{ip:?} is not an IP address"))?,
            ),
        }
    }
    Ok(out)
}

fn pipe(a: TcpStream, b: TcpStream) {
    let (mut ar, mut bw) = match (a.try_clone(), b.try_clone()) {
        (Ok(ar), Ok(bw)) => (ar, bw),
        _ => return,
    };
    let (mut br, mut aw) = (b, a);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut ar, &mut bw);
        let _ = bw.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut br, &mut aw);
    let _ = aw.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

pub fn run(cfg: &Config, args: &Args) -> Result<i32> {
    let h = crate::util::resolve_pod(cfg, &args.namespace, &args.pod)?;
    let phase = h.current().status.and_then(|s| s.phase).unwrap_or_default();
    if phase != "Running" {
        bail!("unable to forward port because pod is not running. Current status={phase}");
    }
    let ips = addresses(&args.address)?;
    let mut listeners = Vec::new();
    for p in &args.ports {
        let (local, remote) = match p.split_once(':') {
            Some((l, r)) => (l, r),
            None => (p.as_str(), p.as_str()),
        };
        let remote = remote_port(&h, remote)?;
        let mut local: u16 = if local.is_empty() {
            0
        } else {
            local
                .parse()
                .with_context(|| format!("invalid local port {local:?}"))?
        };
        for ip in &ips {
            let l = match TcpListener::bind(SocketAddr::new(*ip, local)) {
                Ok(l) => l,
                // ::1 may be missing; the other addresses still serve.
                Err(e) if ip.is_ipv6() && ips.len() > 1 => {
                    tracing::debug!("not listening on {ip}: {e}");
                    continue;
                }
                Err(e) => return Err(e).with_context(|| format!("listening on {ip}:{local}")),
            };
            let at = l.local_addr()?;
            // A free port picked for the first address is used for the others too.
            local = at.port();
            let shown = if ip.is_ipv6() {
                format!("[{ip}]")
            } else {
                ip.to_string()
            };
            println!("Forwarding from {shown}:{local} -> {remote}");
            listeners.push((l, remote, local));
        }
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    let mut threads = Vec::new();
    for (l, remote, local) in listeners {
        let h = h.clone();
        threads.push(std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                println!("Handling connection for {local}");
                let _ = std::io::stdout().flush();
                let h = h.clone();
                std::thread::spawn(move || match h.connect(remote, Duration::from_secs(10)) {
                    Ok(up) => pipe(conn, up),
                    Err(e) => eprintln!("error forwarding port {remote} to pod {}: {e}", h.name()),
                });
            }
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(0)
}
