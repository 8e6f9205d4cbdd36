//! RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus, ListPodSandbox.
//!
//! A sandbox's record is written before anything is made for it and says what has been
//! made, so that one code path ([`Runtime::teardown_sandbox`]) undoes a failed create and a
//! removal alike. Stopping releases the network (one CNI DEL) and the namespaces; removing
//! takes the containers, mounts, cgroups and files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use peapod_oci::{ContainerSpec, MountSpec, NamespaceSpec, NsKind, Stdio, mount, ns};

use crate::records::{self, SandboxRecord};
use crate::types::*;
use crate::{Error, Result, Runtime, io, new_id, now, resolve_id};

/// Size of a pod's `/dev/shm`, as Docker and containerd default it.
const SHM_SIZE: u64 = 64 << 20;

/// Whether one of the pod's sysctls is an interface's (`net.ipv4.conf.eth0.…`,
/// `net.ipv6.neigh.…`), which exists only once the network is attached.
fn waits_for_interfaces(sysctls: &std::collections::BTreeMap<String, String>) -> bool {
    sysctls.keys().any(|k| {
        let k = k.replace('/', ".");
        [
            "net.ipv4.conf.",
            "net.ipv6.conf.",
            "net.ipv4.neigh.",
            "net.ipv6.neigh.",
        ]
        .iter()
        .any(|p| k.starts_with(p))
    })
}

impl Runtime {
    /// RunPodSandbox: namespaces, files, network and infra process. On failure nothing of
    /// it is left.
    pub(crate) async fn run_sandbox(&self, config: SandboxConfig) -> Result<String> {
        self.run_pod_sandbox_as(&new_id(), config).await
    }

    /// RunPodSandbox with the sandbox ID chosen by the caller (a supervisor that the CRI
    /// server started for this sandbox): the ID must be new, 64 lowercase hex digits.
    pub async fn run_pod_sandbox_as(&self, id: &str, config: SandboxConfig) -> Result<String> {
        let valid = id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid || self.sandbox_dir(id).exists() {
            return Err(Error::State(format!("sandbox ID {id:?} is not a new ID")));
        }
        if let Some(u) = &config.user_namespace {
            u.check().map_err(Error::State)?;
        }
        if config.hostname.len() > 64 {
            return Err(Error::State(format!(
                "hostname {:?} is longer than 64 characters",
                config.hostname
            )));
        }
        // The infra image is pulled when missing, as CRI runtimes do with theirs.
        if let Some(image) = &self.cfg.infra_image
            && self.images.get(image).is_err()
        {
            self.registry.pull(image, &Default::default()).await?;
        }
        let id = id.to_string();
        let dir = self.sandbox_dir(&id);
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let mut rec = SandboxRecord {
            status: SandboxStatus {
                id: id.clone(),
                metadata: config.metadata.clone(),
                state: SandboxState::NotReady,
                created_at: now(),
                ip: None,
                additional_ips: Vec::new(),
                infra_pid: 0,
                netns: None,
                namespaces: config.namespaces,
                labels: config.labels.clone(),
                annotations: config.annotations.clone(),
            },
            config,
            network_attached: false,
            stopped: false,
            scope: self.cfg.scope.clone(),
            owner_pid: std::process::id() as i32,
            owner_start: crate::container::start_time(std::process::id() as i32).unwrap_or(0),
            made: false,
        };
        let made = match records::save(&dir, &rec) {
            Ok(()) => self.setup_sandbox(&mut rec, &dir).await,
            Err(e) => Err(e),
        };
        match made {
            Ok(()) => {
                rec.status.state = SandboxState::Ready;
                rec.made = true;
                records::save(&dir, &rec)?;
                Ok(id)
            }
            Err(e) => {
                if let Err(clean) = self.teardown_sandbox(&id).await {
                    tracing::warn!(sandbox = %id, "cleaning up after a failed RunPodSandbox: {clean}");
                }
                Err(e)
            }
        }
    }

    async fn setup_sandbox(&self, rec: &mut SandboxRecord, dir: &Path) -> Result<()> {
        let id = rec.status.id.clone();
        let config = rec.config.clone();
        let ns_opts = config.namespaces;
        // Files every container bind-mounts.
        // With the node's network, or no host name asked for, the pod has the node's
        // (the UTS namespace starts with it), as with other CRI runtimes.
        let node_hostname = || {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let host_net = ns_opts.network == NamespaceMode::Node;
        let hostname = config.hostname.clone();
        let hostname_file = if host_net || hostname.is_empty() {
            node_hostname()
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
        // A pod with its own user namespace gets a network namespace that namespace owns.
        if let Some(u) = &config.user_namespace {
            // Its processes set up their root file systems and mounts from paths below
            // these, as an unprivileged user of the host.
            let own = [self.cfg.run_root.as_path(), self.cfg.root.as_path()];
            let pause = self
                .cfg
                .infra_image
                .is_none()
                .then_some(self.cfg.pause_path.as_path());
            let containers = self.containers_dir();
            for path in [dir, containers.as_path()].into_iter().chain(pause) {
                searchable(path, &own)?;
            }
            let net = (!host_net).then(|| dir.join("netns"));
            ns::create_userns(&dir.join(USERNS), net.as_deref(), &u.uids, &u.gids)?;
        }
        if host_net {
            rec.status.infra_pid = self.start_infra(&id, dir, &config, &hostname, None)?;
            return Ok(());
        }
        let pin = dir.join("netns");
        if config.user_namespace.is_none() {
            ns::create_netns(&pin)?;
        }
        rec.status.netns = Some(pin.clone());
        rec.network_attached = self.cfg.network.is_some();
        records::save(dir, rec)?;
        let mut attach = std::pin::pin!(self.attach_network(&id, &config, &pin));
        let ips = if waits_for_interfaces(&config.sysctls) {
            let ips = attach.await?;
            rec.status.infra_pid = self.start_infra(&id, dir, &config, &hostname, Some(&pin))?;
            ips
        } else {
            // The infra process needs only the namespace, so it is made while the plugins
            // work: one poll starts the first plugin and hands it its configuration.
            let mut early = None;
            tokio::select! {
                biased;
                r = &mut attach => early = Some(r),
                () = std::future::ready(()) => {}
            }
            let infra = self.start_infra(&id, dir, &config, &hostname, Some(&pin));
            if let Ok(pid) = infra {
                rec.status.infra_pid = pid;
                records::save(dir, rec)?;
            }
            // A failed ADD is undone only once it is over, whatever became of the infra.
            let ips = match early {
                Some(r) => r,
                None => attach.await,
            };
            infra?;
            ips?
        };
        rec.status.ip = ips.first().cloned();
        rec.status.additional_ips = ips.iter().skip(1).cloned().collect();
        Ok(())
    }

    /// Creates and starts the infra process; returns its PID.
    fn start_infra(
        &self,
        id: &str,
        dir: &Path,
        config: &SandboxConfig,
        hostname: &str,
        netns: Option<&Path>,
    ) -> Result<i32> {
        let ns_opts = config.namespaces;
        let mut namespaces = vec![NamespaceSpec {
            kind: NsKind::Mnt,
            path: None,
        }];
        if config.user_namespace.is_some() {
            namespaces.push(NamespaceSpec {
                kind: NsKind::User,
                path: Some(dir.join(USERNS)),
            });
        }
        if let Some(p) = netns {
            namespaces.push(NamespaceSpec {
                kind: NsKind::Net,
                path: Some(p.to_path_buf()),
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
                    userns_of(config, dir).as_ref(),
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
                    propagation: Default::default(),
                    recursive_readonly: false,
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
        self.ensure_pod_cgroup(config)?;
        let spec = ContainerSpec {
            rootfs,
            readonly_rootfs: readonly,
            args,
            env,
            cwd: "/".into(),
            hostname: Some(hostname.to_string()).filter(|h| !h.is_empty()),
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
            sysctls: config
                .sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
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
        let pid = self
            .exec
            .create(id, &bundle, peapod_oci::Streams::Pipes(stdio))?
            .pid;
        self.watch_exit(id, id, pid)?;
        self.exec.start(id)?;
        Ok(pid)
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

    /// StopPodSandbox: kills the containers that still run and the infra process, then
    /// releases the network (one CNI DEL), the network namespace and `/dev/shm`. Stopping a
    /// stopped or missing sandbox succeeds and does nothing.
    pub(crate) async fn stop_sandbox(&self, id: &str) -> Result<()> {
        let Ok(id) = resolve_id(&self.sandboxes_dir(), id, "sandbox") else {
            return Ok(());
        };
        let dir = self.sandbox_dir(&id);
        let Ok(mut rec) = self.sandbox_record(&id) else {
            return Ok(());
        };
        if rec.stopped {
            return Ok(());
        }
        let running = ContainerFilter {
            state: Some(ContainerState::Running),
            ..ContainerFilter::sandbox(&id)
        };
        for c in self.list_containers_impl(&running) {
            self.stop_container_impl(&c.id, Duration::ZERO).await?;
        }
        // The infra process is killed while the network is released: neither needs the
        // other, and the plugins' DEL is most of the time.
        let kill = async {
            if rec.status.infra_pid > 0 {
                self.kill_and_wait(
                    &id,
                    rec.status.infra_pid,
                    nix::sys::signal::Signal::SIGKILL,
                    Duration::from_secs(10),
                )
                .await;
            }
        };
        let detach = async {
            if rec.network_attached {
                self.detach_network(&id).await;
            }
        };
        tokio::join!(detach, kill);
        rec.network_attached = false;
        let _ = self.exec.delete(&id);
        if let Some(netns) = rec.status.netns.take() {
            ns::remove_netns(&netns)?;
        }
        mount::unmount(&dir.join("shm"))?;
        rec.status.state = SandboxState::NotReady;
        rec.status.infra_pid = 0;
        rec.stopped = true;
        records::save(&dir, &rec)
    }

    /// RemovePodSandbox: stops the sandbox if it is not stopped, then removes its
    /// containers and everything it owns. A missing one is fine.
    pub(crate) async fn remove_sandbox(&self, id: &str) -> Result<()> {
        let Ok(id) = resolve_id(&self.sandboxes_dir(), id, "sandbox") else {
            return Ok(());
        };
        if records::load::<SandboxRecord>(&self.sandbox_dir(&id))
            .is_some_and(|r| !self.in_scope(&r))
        {
            // Another front end's sandbox: not ours to see.
            return Ok(());
        }
        // Stopping a stopped sandbox does nothing, so this stops it only if it still runs.
        self.stop_sandbox(&id).await?;
        for c in self.list_containers_impl(&ContainerFilter::sandbox(&id)) {
            self.remove_container_impl(&c.id).await?;
        }
        self.teardown_sandbox(&id).await?;
        self.live.lock().unwrap().exited.remove(&id);
        self.cpu_samples.lock().unwrap().remove(&id);
        Ok(())
    }

    /// Removes whatever a sandbox's record says exists, whatever state it reached: its
    /// infra process, network attachment, namespace, mounts, cgroups and files.
    async fn teardown_sandbox(&self, id: &str) -> Result<()> {
        let dir = self.sandbox_dir(id);
        let rec = records::load::<SandboxRecord>(&dir);
        if let Some(rec) = &rec {
            if rec.status.infra_pid > 0 {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(rec.status.infra_pid),
                    nix::sys::signal::SIGKILL,
                );
            }
            if rec.network_attached {
                self.detach_network(id).await;
            }
        }
        let _ = self.exec.delete(id);
        mount::unmount_all_under(&dir)?;
        ns::remove_netns(&dir.join("netns"))?;
        if let Some(rec) = &rec
            && !rec.config.cgroup_parent.is_empty()
        {
            let parent = &rec.config.cgroup_parent;
            let own = format!("{parent}/{id}");
            kill_cgroup(&own);
            remove_cgroup(&own).await?;
            self.remove_empty_parents(parent).await;
            self.update_qos_cgroups();
        }
        crate::container::remove_dir(&dir)?;
        Ok(())
    }

    /// Makes the pod's parent cgroup with the pod's limits (the kubelet's pod container
    /// manager does this for its own pods), when it lies within the runtime's cgroup root.
    fn ensure_pod_cgroup(&self, config: &SandboxConfig) -> Result<()> {
        let Some(r) = &config.pod_resources else {
            return Ok(());
        };
        let root = self.cfg.cgroup_root.trim_end_matches('/');
        let parent = config.cgroup_parent.trim_end_matches('/');
        if root.is_empty() || !parent.starts_with(&format!("{root}/")) {
            return Ok(());
        }
        let limits = peapod_oci::cgroup::Limits {
            memory: r.memory_limit_in_bytes,
            cpu_quota: r.cpu_quota,
            cpu_shares: r.cpu_shares,
            pids: r.pids_limit,
        };
        let hugepages: Vec<(String, u64)> = r
            .hugepage_limits
            .iter()
            .map(|h| (h.page_size.clone(), h.limit))
            .collect();
        peapod_oci::cgroup::ensure(parent, &limits, &hugepages)
            .map_err(|e| Error::State(format!("making the pod's cgroup {parent}: {e}")))?;
        self.update_qos_cgroups();
        Ok(())
    }

    /// The QoS-level cgroups' CPU shares, as the kubelet's QoS container manager keeps
    /// them: `kubepods` the node's CPUs (1024 each), `besteffort` the minimum (2),
    /// `burstable` the sum of its pods' (a pod with the minimum counts as none).
    fn update_qos_cgroups(&self) {
        let root = self.cfg.cgroup_root.trim_end_matches('/');
        if root.is_empty() {
            return;
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        let burstable: u64 =
            peapod_oci::cgroup::child_shares(&format!("{root}/kubepods/burstable"), "pod")
                .into_iter()
                .filter(|s| *s > 2)
                .sum();
        for (rel, shares) in [
            (format!("{root}/kubepods"), cpus * 1024),
            (format!("{root}/kubepods/besteffort"), 2),
            (format!("{root}/kubepods/burstable"), burstable.max(2)),
        ] {
            if peapod_oci::cgroup::dirs(&rel).is_empty() {
                continue;
            }
            let limits = peapod_oci::cgroup::Limits {
                cpu_shares: Some(shares),
                ..Default::default()
            };
            if let Err(e) = peapod_oci::cgroup::update(&rel, &limits) {
                tracing::debug!("setting the CPU shares of {rel}: {e}");
            }
        }
    }

    /// UpdatePodSandboxResources: the pod-level limits given replace the pod cgroup's
    /// (others stay), in the cgroup and in the sandbox's record. A sandbox whose cgroup
    /// peapod does not manage (a kubelet's, through CRI) is left as it is.
    pub(crate) fn update_pod_sandbox_resources_impl(
        &self,
        id: &str,
        res: &crate::types::Resources,
    ) -> Result<()> {
        let id = resolve_id(&self.sandboxes_dir(), id, "sandbox")?;
        let mut rec = self.sandbox_record(&id)?;
        let Some(current) = rec.config.pod_resources.as_mut() else {
            return Ok(());
        };
        current.memory_limit_in_bytes = res.memory_limit_in_bytes.or(current.memory_limit_in_bytes);
        current.cpu_quota = res.cpu_quota.or(current.cpu_quota);
        current.cpu_shares = res.cpu_shares.or(current.cpu_shares);
        let limits = peapod_oci::cgroup::Limits {
            memory: res.memory_limit_in_bytes,
            cpu_quota: res.cpu_quota,
            cpu_shares: res.cpu_shares,
            pids: None,
        };
        let parent = rec.config.cgroup_parent.trim_end_matches('/').to_string();
        peapod_oci::cgroup::update(&parent, &limits)
            .map_err(|e| Error::State(format!("updating the pod's cgroup {parent}: {e}")))?;
        self.update_qos_cgroups();
        records::save(&self.sandbox_dir(&id), &rec)
    }

    /// Removes `cgroup` and its ancestors while they are empty, if they lie within the
    /// runtime's own cgroup root; anything outside it belongs to whoever made it.
    async fn remove_empty_parents(&self, cgroup: &str) {
        let root = self.cfg.cgroup_root.trim_end_matches('/');
        if root.is_empty() {
            return;
        }
        let mut cur = cgroup.trim_end_matches('/').to_string();
        while cur == root || cur.starts_with(&format!("{root}/")) {
            let busy = !peapod_oci::cgroup::pids(&cur).is_empty();
            if busy {
                return;
            }
            peapod_oci::cgroup::remove_if_empty(&cur);
            if !peapod_oci::cgroup::dirs(&cur).is_empty() {
                return;
            }
            match cur.rsplit_once('/') {
                Some((up, _)) if !up.is_empty() => cur = up.to_string(),
                _ => return,
            }
        }
    }

    /// PodSandboxStatus.
    pub(crate) fn sandbox_status(&self, id: &str) -> Result<SandboxStatus> {
        let id = resolve_id(&self.sandboxes_dir(), id, "sandbox")?;
        Ok(self.sandbox_record(&id)?.status)
    }

    /// Whether a record belongs to this runtime's scope (records older than scopes are
    /// `apply`'s).
    pub(crate) fn in_scope(&self, rec: &SandboxRecord) -> bool {
        let scope = if rec.scope.is_empty() {
            "pods"
        } else {
            rec.scope.as_str()
        };
        scope == self.cfg.scope
    }

    /// Whether sandbox `id` exists (in this scope) but its creation never completed.
    pub fn creation_incomplete(&self, id: &str) -> bool {
        self.sandbox_record(id).is_ok_and(|r| !r.made)
    }

    /// The process recorded as the owner of sandbox `id`, if it still runs.
    pub fn live_owner(&self, id: &str) -> Option<i32> {
        let rec = self.sandbox_record(id).ok()?;
        let same = rec.owner_pid > 0
            && crate::container::alive(rec.owner_pid)
            && crate::container::start_time(rec.owner_pid) == Some(rec.owner_start);
        same.then_some(rec.owner_pid)
    }

    /// The config sandbox `id` was made from.
    pub fn pod_sandbox_config(&self, id: &str) -> Result<SandboxConfig> {
        let id = resolve_id(&self.sandboxes_dir(), id, "sandbox")?;
        Ok(self.sandbox_record(&id)?.config)
    }

    /// ListPodSandbox, newest first.
    pub(crate) fn list_sandboxes(&self, filter: &SandboxFilter) -> Vec<SandboxStatus> {
        let mut out: Vec<SandboxStatus> = records::load_all::<SandboxRecord>(&self.sandboxes_dir())
            .into_iter()
            .filter(|r| self.in_scope(r))
            .map(|r| r.status)
            .filter(|s| filter.matches(s))
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        out
    }

    /// The record of sandbox `id`, if it exists in this runtime's scope.
    pub(crate) fn sandbox_record(&self, id: &str) -> Result<SandboxRecord> {
        records::load::<SandboxRecord>(&self.sandbox_dir(id))
            .filter(|r| self.in_scope(r))
            .ok_or(Error::NotFound {
                kind: "sandbox",
                id: id.into(),
            })
    }

    /// Mounts an image's layers with a fresh writable layer under `layer` at `target`. In
    /// a user namespace the layers are seen ID-mapped and the writable layer belongs to
    /// the namespace's root, so the image's files keep their owners inside.
    pub(crate) fn mount_image_rootfs(
        &self,
        img: &peapod_image::Image,
        target: &Path,
        layer: &Path,
        userns: Option<&PodUserns>,
    ) -> Result<PathBuf> {
        let lowers = self.images.snapshots(img)?;
        let (upper, work) = (layer.join("upper"), layer.join("work"));
        for d in [&upper, &work, &target.to_path_buf()] {
            std::fs::create_dir_all(d).map_err(io("creating", d))?;
        }
        match userns {
            None => mount::overlay(&lowers, &upper, &work, target)?,
            Some(u) => {
                let (uid, gid) = u.maps.root();
                std::os::unix::fs::chown(&upper, Some(uid), Some(gid))
                    .map_err(io("changing the owner of", &upper))?;
                mount::overlay_idmapped(&lowers, &upper, &work, target, &u.pin, &layer.join("l"))?
            }
        }
        Ok(target.to_path_buf())
    }
}

/// SIGKILLs every process left in cgroup `rel` and below.
pub(crate) fn kill_cgroup(rel: &str) {
    for pid in peapod_oci::cgroup::pids(rel) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
}

/// Removes cgroup `rel` from every hierarchy, off the runtime's thread (the kernel may take
/// a moment to let go of a cgroup whose last process just died).
pub(crate) async fn remove_cgroup(rel: &str) -> Result<()> {
    let owned = rel.to_string();
    tokio::task::spawn_blocking(move || peapod_oci::cgroup::remove(&owned))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        .map_err(io("removing cgroup", rel))
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

/// Where a sandbox's user namespace is pinned, in its directory.
pub(crate) const USERNS: &str = "userns";

/// A sandbox's own user namespace: its maps and where it is pinned.
pub(crate) struct PodUserns {
    pub(crate) maps: crate::types::UserNamespace,
    pub(crate) pin: PathBuf,
}

/// The user namespace of the sandbox with this config and directory, if it has its own.
pub(crate) fn userns_of(config: &SandboxConfig, dir: &Path) -> Option<PodUserns> {
    config.user_namespace.clone().map(|maps| PodUserns {
        maps,
        pin: dir.join(USERNS),
    })
}

/// Makes sure a user with no rights of its own can reach `path` (a pod's root in its
/// user namespace is one): every directory above it must be searchable by others. Those
/// of peapod's own (below `own`) are made so, as containerd makes its state directories
/// 0711; any other that is not is an error naming it.
pub(crate) fn searchable(path: &Path, own: &[&Path]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for dir in path
        .ancestors()
        .skip(1)
        .filter(|d| !d.as_os_str().is_empty())
    {
        let meta = std::fs::metadata(dir).map_err(io("reading", dir))?;
        let mode = meta.permissions().mode();
        if mode & 0o001 != 0 {
            continue;
        }
        if own.iter().any(|o| dir.starts_with(o)) {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o001))
                .map_err(io("letting others search", dir))?;
        } else {
            return Err(Error::State(format!(
                "a pod with its own user namespace needs every directory above {} to be \
                 searchable by others, and {} (mode {:o}) is not",
                path.display(),
                dir.display(),
                mode & 0o7777
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_interface_sysctls_make_the_infra_wait_for_the_network() {
        let of = |keys: &[&str]| {
            super::waits_for_interfaces(
                &keys
                    .iter()
                    .map(|k| (k.to_string(), "1".to_string()))
                    .collect(),
            )
        };
        assert!(!of(&[]));
        assert!(!of(&[
            "net.ipv4.ip_unprivileged_port_start",
            "kernel.shm_rmid_forced"
        ]));
        assert!(!of(&["net.ipv4.ping_group_range", "net.core.somaxconn"]));
        assert!(of(&["net.ipv4.conf.eth0.route_localnet"]));
        assert!(of(&["net/ipv6/conf/eth0/disable_ipv6"]));
        assert!(of(&["net.ipv4.neigh.eth0.gc_stale_time"]));
    }

    #[test]
    fn directories_above_a_user_namespace_pods_files_are_searchable() {
        let tmp = tempfile::tempdir().unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let set = |p: &std::path::Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        let run = tmp.path().join("run");
        let leaf = run.join("sandboxes/abc/infra-rootfs");
        std::fs::create_dir_all(&leaf).unwrap();
        set(tmp.path(), 0o755);
        set(&run, 0o700);
        set(&run.join("sandboxes"), 0o750);
        super::searchable(&leaf, &[&run]).unwrap();
        // Peapod's own directories get search rights for others, and nothing more.
        assert_eq!(mode(&run), 0o701);
        assert_eq!(mode(&run.join("sandboxes")), 0o751);
        // Another's directory is named, not changed.
        set(tmp.path(), 0o700);
        let e = super::searchable(&leaf, &[&run]).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{} (mode 700) is not", tmp.path().display())),
            "{e}"
        );
        assert_eq!(mode(tmp.path()), 0o700);
        set(tmp.path(), 0o755);
    }
}
