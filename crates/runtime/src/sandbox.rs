//! RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus, ListPodSandbox.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use peapod_oci::{ContainerSpec, MountSpec, NamespaceSpec, NsKind, Stdio, mount, ns};

use crate::records::{self, SandboxRecord};
use crate::types::*;
use crate::{Error, Result, Runtime, io, new_id, now, resolve_id};

/// Size of a pod's `/dev/shm`, as Docker and containerd default it.
const SHM_SIZE: u64 = 64 << 20;

impl Runtime {
    /// Creates and starts a sandbox (CRI `RunPodSandbox`): its namespaces, files and infra
    /// process. On failure nothing of it is left.
    pub async fn run_pod_sandbox(self: &Arc<Self>, config: SandboxConfig) -> Result<String> {
        // The infra image is pulled when missing, as CRI runtimes do with theirs.
        if let Some(image) = &self.cfg.infra_image
            && self.images.get(image).is_err()
        {
            self.pull_image(image, &Default::default()).await?;
        }
        let id = new_id();
        let dir = self.sandbox_dir(&id);
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        match self.setup_sandbox(&id, &dir, &config) {
            Ok(status) => {
                records::save(&dir, &SandboxRecord { status, config })?;
                Ok(id)
            }
            Err(e) => {
                if let Err(clean) = self.teardown_sandbox(&id, &dir, &config.cgroup_parent) {
                    tracing::warn!(sandbox = %id, "cleaning up after a failed RunPodSandbox: {clean}");
                }
                Err(e)
            }
        }
    }

    fn setup_sandbox(
        self: &Arc<Self>,
        id: &str,
        dir: &Path,
        config: &SandboxConfig,
    ) -> Result<SandboxStatus> {
        let ns_opts = config.namespaces;
        // Files every container bind-mounts.
        let hostname = if config.hostname.is_empty() {
            config.metadata.name.clone()
        } else {
            config.hostname.clone()
        };
        let host_net = ns_opts.network == NamespaceMode::Node;
        let hostname_file = if host_net {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or(hostname.clone())
        } else {
            hostname.clone()
        };
        write(dir, "hostname", &format!("{hostname_file}\n"))?;
        write(dir, "resolv.conf", &resolv_conf(&config.dns))?;
        if ns_opts.ipc != NamespaceMode::Node {
            let shm = dir.join("shm");
            std::fs::create_dir_all(&shm).map_err(io("creating", &shm))?;
            mount::tmpfs(&shm, Some(SHM_SIZE), 0o1777)?;
        }
        let (netns, ips) = if host_net {
            (None, Vec::new())
        } else {
            let pin = dir.join("netns");
            ns::create_netns(&pin)?;
            let ips = self.attach_network(id, config, &pin)?;
            (Some(pin), ips)
        };

        // The infra process.
        let mut namespaces = vec![NamespaceSpec {
            kind: NsKind::Mnt,
            path: None,
        }];
        if let Some(p) = &netns {
            namespaces.push(NamespaceSpec {
                kind: NsKind::Net,
                path: Some(p.clone()),
            });
            namespaces.push(NamespaceSpec {
                kind: NsKind::Uts,
                path: None,
            });
        }
        if ns_opts.ipc != NamespaceMode::Node {
            namespaces.push(NamespaceSpec {
                kind: NsKind::Ipc,
                path: None,
            });
        }
        if ns_opts.pid != NamespaceMode::Node {
            namespaces.push(NamespaceSpec {
                kind: NsKind::Pid,
                path: None,
            });
        }
        let (rootfs, args, env, mounts, readonly) = match &self.cfg.infra_image {
            Some(image) => {
                let img = self.images.get(image)?;
                let icfg = self.images.config(&img)?;
                let rootfs = self.mount_image_rootfs(
                    &img,
                    &dir.join("infra-rootfs"),
                    &dir.join("infra-layer"),
                )?;
                let mut args = icfg.entrypoint.clone();
                args.extend(icfg.cmd.iter().cloned());
                (rootfs, args, icfg.env.clone(), Vec::new(), false)
            }
            None => {
                let rootfs = dir.join("infra-rootfs");
                for d in ["proc", "dev", "sys"] {
                    std::fs::create_dir_all(rootfs.join(d))
                        .map_err(io("creating", rootfs.join(d)))?;
                }
                let target = rootfs.join("pause");
                std::fs::File::create(&target).map_err(io("creating", &target))?;
                if !self.cfg.pause_path.is_file() {
                    return Err(Error::State(format!(
                        "infra binary {} not found (set pause_path in the config)",
                        self.cfg.pause_path.display()
                    )));
                }
                let mounts = vec![MountSpec::Bind {
                    source: self.cfg.pause_path.clone(),
                    destination: "/pause".into(),
                    readonly: true,
                }];
                (
                    rootfs,
                    vec!["/pause".to_string()],
                    vec!["PATH=/".to_string()],
                    mounts,
                    true,
                )
            }
        };
        if args.is_empty() {
            return Err(Error::State(
                "the infra image has neither entrypoint nor cmd".into(),
            ));
        }
        let spec = ContainerSpec {
            rootfs,
            readonly_rootfs: readonly,
            args,
            env,
            cwd: "/".into(),
            hostname: Some(hostname),
            namespaces,
            mounts,
            cgroups_path: format!("{}/{}", config.cgroup_parent, id),
            cap_drop: vec!["ALL".into()],
            no_new_privileges: true,
            annotations: [(
                "io.kubernetes.cri.container-type".to_string(),
                "sandbox".to_string(),
            )]
            .into(),
            ..Default::default()
        };
        let bundle = dir.join("bundle");
        peapod_oci::spec::write_bundle(&bundle, &spec)?;
        let null = || {
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .map(std::os::fd::OwnedFd::from)
        };
        let stdio = Stdio {
            stdin: None,
            stdout: null().map_err(io("opening", "/dev/null"))?,
            stderr: null().map_err(io("opening", "/dev/null"))?,
        };
        let pid = self.exec.create(id, &bundle, stdio)?;
        self.watch_exit(id, id, pid)?;
        self.exec.start(id)?;
        Ok(SandboxStatus {
            id: id.to_string(),
            metadata: config.metadata.clone(),
            state: SandboxState::Ready,
            created_at: now(),
            ip: ips.first().cloned(),
            additional_ips: ips.iter().skip(1).cloned().collect(),
            infra_pid: pid,
            netns,
            namespaces: ns_opts,
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
        })
    }

    /// Called by the exit watcher when the infra process is gone.
    pub(crate) fn infra_exited(&self, id: &str) {
        let dir = self.sandbox_dir(id);
        if let Some(mut rec) = records::load::<SandboxRecord>(&dir) {
            rec.status.state = SandboxState::NotReady;
            rec.status.infra_pid = 0;
            let _ = records::save(&dir, &rec);
        }
        let _ = self.exec.delete(id);
        self.emit(id, id, ContainerEventKind::Stopped);
    }

    /// Stops a sandbox (CRI `StopPodSandbox`): kills its containers and infra process and
    /// releases its network. Stopping a stopped or missing sandbox succeeds.
    pub async fn stop_pod_sandbox(self: &Arc<Self>, id: &str) -> Result<()> {
        let Ok(id) = resolve_id(&self.cfg.run_root.join("sandboxes"), id, "sandbox") else {
            return Ok(());
        };
        let dir = self.sandbox_dir(&id);
        let Some(mut rec) = records::load::<SandboxRecord>(&dir) else {
            return Ok(());
        };
        for c in self.list_containers(Some(&id)) {
            self.stop_container(&c.id, Duration::ZERO).await?;
        }
        if rec.status.infra_pid > 0 {
            self.kill_and_wait(
                &id,
                rec.status.infra_pid,
                nix::sys::signal::Signal::SIGKILL,
                Duration::from_secs(10),
            )
            .await;
        }
        let _ = self.exec.delete(&id);
        self.detach_network(&id);
        if let Some(netns) = &rec.status.netns {
            ns::remove_netns(netns)?;
        }
        rec.status.state = SandboxState::NotReady;
        rec.status.infra_pid = 0;
        records::save(&dir, &rec)
    }

    /// Removes a sandbox (CRI `RemovePodSandbox`) and all its containers; a missing one is
    /// fine. A ready sandbox is stopped first.
    pub async fn remove_pod_sandbox(self: &Arc<Self>, id: &str) -> Result<()> {
        let Ok(id) = resolve_id(&self.cfg.run_root.join("sandboxes"), id, "sandbox") else {
            return Ok(());
        };
        self.stop_pod_sandbox(&id).await?;
        for c in self.list_containers(Some(&id)) {
            self.remove_container(&c.id).await?;
        }
        let dir = self.sandbox_dir(&id);
        let parent = records::load::<SandboxRecord>(&dir)
            .map(|r| r.config.cgroup_parent)
            .unwrap_or_default();
        self.teardown_sandbox(&id, &dir, &parent)?;
        self.live.lock().unwrap().exited.remove(&id);
        Ok(())
    }

    /// Removes everything a sandbox may have made, whatever state it reached.
    fn teardown_sandbox(&self, id: &str, dir: &Path, cgroup_parent: &str) -> Result<()> {
        if let Some(rec) = records::load::<SandboxRecord>(dir)
            && rec.status.infra_pid > 0
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(rec.status.infra_pid),
                nix::sys::signal::SIGKILL,
            );
        }
        let _ = self.exec.delete(id);
        self.detach_network(id);
        mount::unmount_all_under(dir)?;
        ns::remove_netns(&dir.join("netns"))?;
        if !cgroup_parent.is_empty() {
            kill_cgroup(cgroup_parent);
            peapod_oci::cgroup::remove(cgroup_parent)
                .map_err(io("removing cgroup", cgroup_parent))?;
        }
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Io {
                    context: "removing",
                    path: dir.into(),
                    source: e,
                });
            }
        }
        let layer = dir.join("infra-layer");
        let _ = std::fs::remove_dir_all(layer);
        Ok(())
    }

    /// The status of sandbox `id` (CRI `PodSandboxStatus`).
    pub fn pod_sandbox_status(&self, id: &str) -> Result<SandboxStatus> {
        let id = resolve_id(&self.cfg.run_root.join("sandboxes"), id, "sandbox")?;
        let rec =
            records::load::<SandboxRecord>(&self.sandbox_dir(&id)).ok_or(Error::NotFound {
                kind: "sandbox",
                id: id.clone(),
            })?;
        Ok(rec.status)
    }

    /// The config sandbox `id` was made from.
    pub fn pod_sandbox_config(&self, id: &str) -> Result<SandboxConfig> {
        let id = resolve_id(&self.cfg.run_root.join("sandboxes"), id, "sandbox")?;
        let rec =
            records::load::<SandboxRecord>(&self.sandbox_dir(&id)).ok_or(Error::NotFound {
                kind: "sandbox",
                id: id.clone(),
            })?;
        Ok(rec.config)
    }

    /// Every sandbox (CRI `ListPodSandbox`).
    pub fn list_pod_sandbox(&self) -> Vec<SandboxStatus> {
        let mut out: Vec<SandboxStatus> =
            records::load_all::<SandboxRecord>(&self.cfg.run_root.join("sandboxes"))
                .into_iter()
                .map(|r| r.status)
                .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        out
    }

    /// Records the pod's IP address (set by the network layer).
    pub fn set_sandbox_ip(&self, id: &str, ip: Option<String>) -> Result<()> {
        let dir = self.sandbox_dir(id);
        let mut rec = records::load::<SandboxRecord>(&dir).ok_or(Error::NotFound {
            kind: "sandbox",
            id: id.into(),
        })?;
        rec.status.ip = ip;
        records::save(&dir, &rec)
    }

    pub(crate) fn sandbox_record(&self, id: &str) -> Result<SandboxRecord> {
        records::load::<SandboxRecord>(&self.sandbox_dir(id)).ok_or(Error::NotFound {
            kind: "sandbox",
            id: id.into(),
        })
    }

    /// Mounts an image's layers with a fresh writable layer under `layer` at `target`.
    pub(crate) fn mount_image_rootfs(
        &self,
        img: &peapod_image::Image,
        target: &Path,
        layer: &Path,
    ) -> Result<PathBuf> {
        let lowers = self.images.snapshots(img)?;
        let (upper, work) = (layer.join("upper"), layer.join("work"));
        for d in [&upper, &work, &target.to_path_buf()] {
            std::fs::create_dir_all(d).map_err(io("creating", d))?;
        }
        mount::overlay(&lowers, &upper, &work, target)?;
        Ok(target.to_path_buf())
    }
}

/// SIGKILLs every process left in cgroup `rel` and below.
pub(crate) fn kill_cgroup(rel: &str) {
    for pid in peapod_oci::cgroup::pids(rel) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
}

fn write(dir: &Path, name: &str, content: &str) -> Result<()> {
    let p = dir.join(name);
    std::fs::write(&p, content).map_err(io("writing", &p))
}

/// A resolv.conf from the DNS config, or the host's when it names no server.
fn resolv_conf(dns: &DnsConfig) -> String {
    if dns.servers.is_empty() && dns.searches.is_empty() && dns.options.is_empty() {
        return std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    }
    let mut s = String::new();
    if !dns.searches.is_empty() {
        s.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for n in &dns.servers {
        s.push_str(&format!("nameserver {n}\n"));
    }
    if !dns.options.is_empty() {
        s.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    s
}
