//! The pod network: CNI ADD when a sandbox is made, DEL once when it stops, host ports
//! held in between. Plugins are started on the runtime's own thread (claimed from the
//! orphan reaper) and waited for without blocking it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;

use nix::sys::socket::{
    AddressFamily, SockFlag, SockProtocol, SockType, SockaddrIn, SockaddrIn6, bind, socket,
};
use peapod_cni::{Attachment, Cni, ConfList, DefaultNetwork, ExecFuture, PluginExec, config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

use crate::types::*;
use crate::{Error, Result, Runtime, records};

/// Starts CNI plugins as the runtime's own children: spawned on the calling thread with
/// their PIDs claimed at once, then waited for through a pidfd.
struct ClaimedExec;

impl PluginExec for ClaimedExec {
    fn exec<'a>(
        &'a self,
        bin: &'a Path,
        args: &'a [String],
        env: &'a [(String, String)],
        stdin: Vec<u8>,
    ) -> ExecFuture<'a> {
        Box::pin(async move {
            let mut cmd = std::process::Command::new(bin);
            cmd.args(args)
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let (mut child, mut claim) = crate::reaper::spawn_claimed(&mut cmd)?;
            let input = child
                .stdin
                .take()
                .map(|i| pipe::Sender::from_owned_fd(OwnedFd::from(i)));
            let out = child
                .stdout
                .take()
                .map(|o| pipe::Receiver::from_owned_fd(OwnedFd::from(o)));
            let err = child
                .stderr
                .take()
                .map(|e| pipe::Receiver::from_owned_fd(OwnedFd::from(e)));
            // What the pipe takes is written now, so the plugin works while the caller
            // does something else (the infra process is made during the ADD).
            let now = match &input {
                Some(Ok(s)) => peapod_cni::write_now(s, &stdin),
                _ => 0,
            };
            let write = async move {
                // A plugin may exit without reading; its exit status tells what happened.
                if let Some(Ok(mut s)) = input {
                    let _ = s.write_all(&stdin[now..]).await;
                }
            };
            let read = |r: Option<std::io::Result<pipe::Receiver>>| async move {
                let mut buf = Vec::new();
                if let Some(Ok(mut r)) = r {
                    let _ = r.read_to_end(&mut buf).await;
                }
                buf
            };
            let ((), stdout, stderr) = tokio::join!(write, read(out), read(err));
            crate::exec::exited(child.id() as i32).await;
            let status = child.wait()?;
            claim.reaped = true;
            Ok(Output {
                status,
                stdout,
                stderr,
            })
        })
    }
}

/// Name of the network peapod writes when the configuration directory has none.
const DEFAULT_NAME: &str = "peapod";

impl Runtime {
    fn cni_dir(&self) -> PathBuf {
        self.cfg.root.join("cni")
    }

    fn cni(&self) -> Option<Cni> {
        let n = self.cfg.network.as_ref()?;
        Some(Cni::with_exec(
            n.plugin_dirs.clone(),
            self.cni_dir().join("cache"),
            Arc::new(ClaimedExec),
        ))
    }

    /// Where peapod keeps its own network's configuration.
    fn own_network_dir(&self) -> PathBuf {
        self.cni_dir().join("net.d")
    }

    /// peapod's own network, for when the configuration directory has none.
    fn default_network(&self, n: &crate::NetworkSettings) -> DefaultNetwork {
        DefaultNetwork {
            name: DEFAULT_NAME.into(),
            bridge: n.default_bridge.clone(),
            subnet: n.default_subnet.clone(),
            ipam_dir: self.cni_dir().join("networks"),
        }
    }

    /// The network pods join: the first configuration in the user's directory, else
    /// peapod's own (written on first use).
    pub fn network_config(&self) -> Result<Option<ConfList>> {
        let Some(n) = &self.cfg.network else {
            return Ok(None);
        };
        if let Some(c) = config::first_in(&n.config_dir)? {
            return Ok(Some(c));
        }
        Ok(Some(config::default_in(
            &self.own_network_dir(),
            &self.default_network(n),
        )?))
    }

    /// Whether pods can be attached to the network: its configuration reads and every
    /// plugin it names is installed (always, with networking off: pods get loopback).
    pub(crate) fn network_check(&self) -> Result<()> {
        let (Some(cni), Some(net)) = (self.cni(), self.network_config()?) else {
            return Ok(());
        };
        Ok(cni.check_plugins(&net)?)
    }

    /// Attaches sandbox `id`'s namespace to the pod network; returns the pod's IPs.
    /// Whatever part of it happened is undone by [`Runtime::detach_network`].
    pub(crate) async fn attach_network(
        &self,
        id: &str,
        config: &SandboxConfig,
        netns: &Path,
    ) -> Result<Vec<String>> {
        let (Some(cni), Some(mut net)) = (self.cni(), self.network_config()?) else {
            return Ok(Vec::new());
        };
        cni.check_plugins(&net)?;
        if let Some(n) = &self.cfg.network
            && net.file.starts_with(self.own_network_dir())
        {
            // peapod's own network masquerades and forwards with rules of its own, and
            // runs portmap only for a pod that publishes host ports: for another it would
            // start, find nothing to do and exit, on ADD and again on DEL.
            let marker = self.cni_dir().join("rules").join(DEFAULT_NAME);
            cni.ensure_rules(&self.default_network(n), &marker).await?;
            if !config.port_mappings.iter().any(|p| p.host_port > 0) {
                net.plugins.retain(|p| p["type"] != "portmap");
            }
        }
        let held = self.hold_ports(id, config)?;
        self.live.lock().unwrap().ports.insert(id.to_string(), held);
        let m = &config.metadata;
        let att = Attachment {
            container_id: id.to_string(),
            netns: netns.to_path_buf(),
            ifname: "eth0".into(),
            args: vec![
                ("K8S_POD_NAMESPACE".into(), m.namespace.clone()),
                ("K8S_POD_NAME".into(), m.name.clone()),
                ("K8S_POD_INFRA_CONTAINER_ID".into(), id.to_string()),
                ("K8S_POD_UID".into(), m.uid.clone()),
            ],
            port_mappings: config
                .port_mappings
                .iter()
                .filter(|p| p.host_port > 0)
                .map(|p| peapod_cni::PortMapping {
                    host_port: p.host_port as u16,
                    container_port: p.container_port as u16,
                    protocol: p.protocol.to_ascii_lowercase(),
                    host_ip: p.host_ip.clone(),
                })
                .collect(),
            dns: Some(peapod_cni::Dns {
                servers: config.dns.servers.clone(),
                searches: config.dns.searches.clone(),
                options: config.dns.options.clone(),
            }),
        };
        let result = cni.add(&net, &att).await?;
        Ok(result.pod_ips("eth0"))
    }

    /// CNI DEL for sandbox `id`, and its host ports released. Succeeds when it was never
    /// attached. A DEL that keeps failing is reported and given up, so that deleting a pod
    /// is never stuck on a plugin.
    pub(crate) async fn detach_network(&self, id: &str) {
        self.live.lock().unwrap().ports.remove(id);
        let Some(cni) = self.cni() else {
            return;
        };
        let mut last = None;
        for _ in 0..3 {
            match cni.del(id).await {
                Ok(()) => return,
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
        if let Some(e) = last {
            tracing::warn!(sandbox = id, "giving up on CNI DEL: {e}");
            cni.forget(id);
        }
    }

    /// Runs DEL for every cached attachment whose sandbox no longer exists (left by a crash
    /// of the host or of a shim between ADD and its record). A supervisor calls it when it
    /// starts; opening a runtime does not.
    pub async fn collect_network_garbage(&self) {
        let Some(cni) = self.cni() else {
            return;
        };
        for id in cni.cached() {
            if !self.sandbox_dir(&id).exists() {
                tracing::info!(sandbox = %id, "releasing the network of a sandbox that is gone");
                self.detach_network(&id).await;
            }
        }
    }

    /// Binds every host port the sandbox publishes, as the kubelet's host-port manager did,
    /// so that a second pod asking for the same port and protocol fails here, by name,
    /// before anything is set up for it.
    fn hold_ports(&self, id: &str, config: &SandboxConfig) -> Result<Vec<OwnedFd>> {
        let mut held = Vec::new();
        for p in config.port_mappings.iter().filter(|p| p.host_port > 0) {
            let proto = p.protocol.to_ascii_uppercase();
            if let Some(other) = self.port_owner(id, p) {
                return Err(Error::PortInUse(format!(
                    "hostPort {}/{proto} is already used by pod {other}",
                    p.host_port
                )));
            }
            let ty = match proto.as_str() {
                "TCP" => (SockType::Stream, SockProtocol::Tcp),
                "UDP" => (SockType::Datagram, SockProtocol::Udp),
                // SCTP sockets may not be available; portmap still maps the port.
                _ => continue,
            };
            let ip: std::net::IpAddr = if p.host_ip.is_empty() {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            } else {
                p.host_ip.parse().map_err(|_| {
                    Error::State(format!("hostIP {:?} is not an IP address", p.host_ip))
                })?
            };
            let in_use = |e: nix::Error| {
                Error::PortInUse(format!(
                    "hostPort {}/{proto} on {ip} is not available: {e}",
                    p.host_port
                ))
            };
            let family = if ip.is_ipv4() {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            };
            let fd = socket(family, ty.0, SockFlag::SOCK_CLOEXEC, ty.1).map_err(in_use)?;
            let port = p.host_port as u16;
            match ip {
                std::net::IpAddr::V4(v4) => bind(
                    fd.as_raw_fd(),
                    &SockaddrIn::from(std::net::SocketAddrV4::new(v4, port)),
                ),
                std::net::IpAddr::V6(v6) => bind(
                    fd.as_raw_fd(),
                    &SockaddrIn6::from(std::net::SocketAddrV6::new(v6, port, 0, 0)),
                ),
            }
            .map_err(in_use)?;
            held.push(fd);
        }
        Ok(held)
    }

    /// The pod (namespace/name) of another ready sandbox publishing the same host port.
    fn port_owner(&self, id: &str, p: &PortMapping) -> Option<String> {
        records::load_all::<records::SandboxRecord>(&self.sandboxes_dir())
            .into_iter()
            .filter(|r| r.status.id != id && r.status.state == SandboxState::Ready)
            .find(|r| {
                r.config.port_mappings.iter().any(|q| {
                    q.host_port == p.host_port
                        && q.protocol.eq_ignore_ascii_case(&p.protocol)
                        && (q.host_ip.is_empty() || p.host_ip.is_empty() || q.host_ip == p.host_ip)
                })
            })
            .map(|r| format!("{}/{}", r.config.metadata.namespace, r.config.metadata.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_plugin_gets_its_configuration_in_the_poll_that_starts_it() {
        peapod_cni::testing::plugin_starts_in_one_poll(&ClaimedExec).await;
    }
}
