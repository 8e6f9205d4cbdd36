//! The sync loop.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use peapod_runtime::{
    ContainerState as RtState, ContainerStatus as RtStatus, DnsConfig, NamespaceMode,
    NamespaceOptions, PortMapping, Runtime, SandboxConfig, SandboxMetadata, SandboxState,
};
use peapod_types::api::{Container, Pod};
use peapod_types::backoff::Backoff;
use peapod_types::phase::is_sidecar;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{PodFacts, container_config, hosts_file, pod_hostname};
use crate::events::Recorder;
use crate::hooks;
use crate::probes::{self, ContainerProbes};
use crate::{ContainerRef, PodState};

/// Settings of the pod controller.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// The node name pods see.
    pub node_name: String,
    /// The host's IP address.
    pub host_ip: String,
    /// The pod's directory (volumes, /etc/hosts, termination logs).
    pub pod_dir: PathBuf,
    /// The pod's log directory.
    pub log_dir: PathBuf,
    /// Crash-loop back-off.
    pub backoff: Backoff,
    /// Cluster DNS servers for `ClusterFirst` (the host's resolv.conf when empty).
    pub cluster_dns: Vec<String>,
    /// Cluster domain.
    pub cluster_domain: String,
    /// The pod's parent cgroup.
    pub cgroup_parent: String,
    /// Credentials from the pod's `imagePullSecrets`, tried before the node's.
    pub pull_keyring: peapod_image::Keyring,
}

/// What a worker can be told.
#[derive(Debug)]
pub enum Command {
    /// Delete the pod, giving containers `grace` seconds to stop.
    Delete {
        /// Grace period in seconds; the pod's own when `None`.
        grace: Option<i64>,
    },
}

/// The kubelet's per-container back-off entry (`flowcontrol.Backoff`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BackoffEntry {
    pub delay: Duration,
    pub last_update: Instant,
}

/// What the worker remembers about one container name.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// Runtime IDs of the instances kept (the latest last; at most two).
    pub instances: Vec<String>,
    /// How many instances were created, over the pod's life.
    pub created: u32,
    /// Why the container waits, when it does: (reason, message).
    pub waiting: Option<(String, String)>,
    /// Crash-loop back-off.
    pub backoff: Option<BackoffEntry>,
    /// Image pull back-off.
    pub pull_backoff: Option<BackoffEntry>,
}

/// What receives the pod's state after every change.
type Publisher = Box<dyn FnMut(&PodState) + Send>;

/// The controller of one pod.
pub struct PodWorker {
    pub(crate) rt: Arc<Runtime>,
    pub(crate) pod: Pod,
    pub(crate) cfg: KubeletConfig,
    pub(crate) recorder: Recorder,
    pub(crate) sandbox_id: Option<String>,
    pub(crate) sandbox_attempt: u32,
    pub(crate) slots: HashMap<String, Slot>,
    pub(crate) volumes: HashMap<String, PathBuf>,
    /// Terminal phase reached (sticky).
    pub(crate) terminal_phase: Option<&'static str>,
    pub(crate) terminating: bool,
    pub(crate) start_time: jiff::Timestamp,
    pub(crate) conditions: HashMap<&'static str, (bool, jiff::Timestamp)>,
    /// Probe state by container instance ID.
    pub(crate) probes: HashMap<String, ContainerProbes>,
    /// Termination messages of exited instances, read once (by container ID).
    pub(crate) messages: std::sync::Mutex<HashMap<String, String>>,
    /// The pod status's reason and message (e.g. DeadlineExceeded).
    pub(crate) status_reason: Option<(String, String)>,
    /// The container instance whose postStart hook is running (it is not yet Running).
    pub(crate) hook_running: Option<String>,
    /// Where the state goes after every change.
    publisher: Option<Publisher>,
    /// Becomes true when the pod's deletion is asked for.
    deleting: tokio::sync::watch::Receiver<bool>,
}

impl PodWorker {
    /// A worker for a defaulted, validated pod with its UID set.
    pub fn new(rt: Arc<Runtime>, pod: Pod, cfg: KubeletConfig) -> Self {
        PodWorker {
            rt,
            pod,
            cfg,
            recorder: Recorder::default(),
            sandbox_id: None,
            sandbox_attempt: 0,
            slots: HashMap::new(),
            volumes: HashMap::new(),
            terminal_phase: None,
            terminating: false,
            start_time: jiff::Timestamp::now(),
            conditions: HashMap::new(),
            probes: HashMap::new(),
            messages: Default::default(),
            status_reason: None,
            hook_running: None,
            publisher: None,
            deleting: tokio::sync::watch::channel(false).1,
        }
    }

    fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }

    fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// `name_namespace(uid)`, as the kubelet formats a pod in messages.
    pub(crate) fn pod_label(&self) -> String {
        format!(
            "{}_{}({})",
            self.name(),
            self.namespace(),
            self.pod.metadata.uid.as_deref().unwrap_or_default()
        )
    }

    fn spec(&self) -> &peapod_types::api::PodSpec {
        self.pod.spec.as_ref().expect("defaulted pod has a spec")
    }

    pub(crate) fn field_path(&self, name: &str) -> String {
        let init = self
            .spec()
            .init_containers
            .iter()
            .flatten()
            .any(|c| c.name == name);
        if init {
            format!("spec.initContainers{{{name}}}")
        } else {
            format!("spec.containers{{{name}}}")
        }
    }

    /// Runs the pod until it is deleted, publishing its state after every change.
    pub async fn run(
        mut self,
        mut requests: mpsc::Receiver<Command>,
        publish: impl FnMut(&PodState) + Send + 'static,
    ) {
        self.publisher = Some(Box::new(publish));
        // A delete request is also announced at once, so a hook that is running when it
        // comes is cut short (the kubelet cancels the sync's context the same way).
        let (deleting, deleting_rx) = tokio::sync::watch::channel(false);
        self.deleting = deleting_rx;
        let (forward, mut commands) = mpsc::channel(4);
        tokio::spawn(async move {
            while let Some(cmd) = requests.recv().await {
                if matches!(cmd, Command::Delete { .. }) {
                    let _ = deleting.send(true);
                }
                if forward.send(cmd).await.is_err() {
                    break;
                }
            }
        });
        let mut events = self.rt.subscribe();
        let node = self.cfg.node_name.clone();
        let msg = format!(
            "Successfully assigned {}/{} to {node}",
            self.namespace(),
            self.name()
        );
        self.recorder.normal("Scheduled", "", msg);
        loop {
            let wake = self.sync().await;
            self.publish();
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = events.recv() => {
                    if let Ok(ev) = ev
                        && self.sandbox_id.as_deref() != Some(ev.sandbox_id.as_str())
                    {
                        continue;
                    }
                }
                _ = sleep => {}
                cmd = commands.recv() => match cmd {
                    Some(Command::Delete { grace }) => {
                        self.terminating = true;
                        self.publish();
                        self.terminate(grace).await;
                        return;
                    }
                    None => std::future::pending::<()>().await,
                },
            }
        }
    }

    /// Publishes the current state.
    fn publish(&mut self) {
        let state = self.state();
        if let Some(p) = self.publisher.as_mut() {
            p(&state);
        }
    }

    /// One pass of the kubelet's SyncPod; returns when to look again (besides events).
    async fn sync(&mut self) -> Option<Instant> {
        if self.terminal_phase.is_some() {
            return None;
        }
        // activeDeadlineSeconds, counted from the pod's start time.
        let mut deadline_at = None;
        if let Some(secs) = self.spec().active_deadline_seconds {
            let active = jiff::Timestamp::now().duration_since(self.start_time);
            let left = jiff::SignedDuration::from_secs(secs) - active;
            if left <= jiff::SignedDuration::ZERO {
                let msg = "Pod was active on the node longer than the specified deadline";
                self.recorder.normal("DeadlineExceeded", "", msg);
                self.status_reason = Some(("DeadlineExceeded".into(), msg.into()));
                self.finish("Failed").await;
                return None;
            }
            deadline_at = Some(Instant::now() + left.unsigned_abs());
        }
        if let Some(wake) = self.ensure_sandbox().await {
            return Some(deadline_at.map_or(wake, |d| d.min(wake)));
        }
        let now = Instant::now();
        let mut wake: Option<Instant> = deadline_at;
        let mut soonest = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        let never = self.spec().restart_policy.as_deref() == Some("Never");

        // Init containers: one at a time, in order; sidecars count once started.
        let inits: Vec<Container> = self.spec().init_containers.clone().unwrap_or_default();
        let mut initialized = true;
        for c in &inits {
            let latest = self.latest(&c.name);
            let sidecar = is_sidecar(c);
            match latest.as_ref().map(|s| s.state) {
                // A sidecar lets the next init container start once it has started.
                Some(RtState::Running) if sidecar && self.started(latest.as_ref()) => continue,
                Some(RtState::Running) if sidecar => {
                    initialized = false;
                    break;
                }
                Some(RtState::Running) | Some(RtState::Created) => {
                    initialized = false;
                    break;
                }
                Some(RtState::Exited)
                    if !sidecar && latest.as_ref().is_some_and(|s| s.exit_code == 0) =>
                {
                    continue;
                }
                Some(RtState::Exited) | Some(RtState::Unknown) => {
                    let status = latest.expect("matched Some");
                    if !sidecar && never {
                        // A failed init container fails a pod that never restarts.
                        initialized = false;
                        break;
                    }
                    if let Some(at) = self.restart(c, &status, now).await {
                        soonest(at);
                    }
                    initialized = false;
                    if !sidecar {
                        break;
                    }
                }
                None => {
                    if let Some(at) = self.start(c).await {
                        soonest(at);
                    }
                    let latest = self.latest(&c.name);
                    let started = latest.as_ref().is_some_and(|s| s.state == RtState::Running)
                        && self.started(latest.as_ref());
                    if !sidecar || !started {
                        initialized = false;
                        break;
                    }
                }
            }
        }

        if initialized {
            let apps: Vec<Container> = self.spec().containers.clone();
            let policy = self
                .spec()
                .restart_policy
                .clone()
                .unwrap_or_else(|| "Always".into());
            for c in &apps {
                match self.latest(&c.name) {
                    None => {
                        if let Some(at) = self.start(c).await {
                            soonest(at);
                        }
                    }
                    Some(s) if s.state == RtState::Exited || s.state == RtState::Unknown => {
                        let again = match policy.as_str() {
                            "Always" => true,
                            "OnFailure" => s.exit_code != 0,
                            _ => false,
                        };
                        if again && let Some(at) = self.restart(c, &s, now).await {
                            soonest(at);
                        }
                    }
                    Some(_) => {}
                }
            }
            // Every app container is done and none will run again: the kubelet kills the
            // pod, so sidecars do not keep it alive; they stop in reverse order and the
            // phase follows from the app containers alone.
            let done = |s: &RtStatus| match policy.as_str() {
                "Always" => false,
                "OnFailure" => s.exit_code == 0,
                _ => true,
            };
            let apps_done = apps.iter().all(|c| {
                self.latest(&c.name).is_some_and(|s| {
                    matches!(s.state, RtState::Exited | RtState::Unknown) && done(&s)
                })
            });
            let sidecar_running = inits.iter().any(|c| {
                is_sidecar(c)
                    && self
                        .latest(&c.name)
                        .is_some_and(|s| s.state == RtState::Running)
            });
            if apps_done && sidecar_running {
                let grace = self.spec().termination_grace_period_seconds;
                self.stop_all(grace).await;
            }
        }

        if let Some(at) = self.run_probes().await {
            soonest(at);
        }

        let phase = self.phase();
        if phase == "Succeeded" || phase == "Failed" {
            self.finish(phase).await;
            return None;
        }
        wake
    }

    /// Whether a running instance counts as started (its startup probe passed, or none).
    pub(crate) fn started(&self, s: Option<&RtStatus>) -> bool {
        s.is_some_and(|s| match self.probes.get(&s.id) {
            Some(p) => p.started(),
            // Not probed yet: started only if there is no startup probe to pass.
            None => !self
                .spec()
                .containers
                .iter()
                .chain(self.spec().init_containers.iter().flatten())
                .any(|c| c.name == s.metadata.name && c.startup_probe.is_some()),
        })
    }

    /// Whether a running instance is ready by its probes.
    pub(crate) fn probed_ready(&self, s: &RtStatus) -> bool {
        self.probes.get(&s.id).is_none_or(|p| p.ready())
    }

    /// Runs the probes that are due; returns when the next one is.
    async fn run_probes(&mut self) -> Option<Instant> {
        let spec = self.spec().clone();
        let candidates: Vec<Container> = spec
            .containers
            .iter()
            .chain(
                spec.init_containers
                    .iter()
                    .flatten()
                    .filter(|c| is_sidecar(c)),
            )
            .filter(|c| {
                c.startup_probe.is_some()
                    || c.liveness_probe.is_some()
                    || c.readiness_probe.is_some()
            })
            .cloned()
            .collect();
        let live: Vec<String> = self
            .slots
            .values()
            .filter_map(|s| s.instances.last().cloned())
            .collect();
        self.probes.retain(|id, _| live.contains(id));
        if candidates.is_empty() {
            return None;
        }
        let pod_target = self.target();
        let mut wake: Option<Instant> = None;
        for c in &candidates {
            let Some(s) = self.latest(&c.name).filter(|s| s.state == RtState::Running) else {
                continue;
            };
            let now = Instant::now();
            let started_at = instant_of(s.started_at.as_deref(), now);
            let workers = self
                .probes
                .entry(s.id.clone())
                .or_insert_with(|| ContainerProbes::new(c, started_at))
                .workers
                .len();
            let target = pod_target.of(&s.id);
            let path = self.field_path(&c.name);
            let mut kill: Option<(probes::Kind, Option<i64>)> = None;
            for i in 0..workers {
                let entry = self.probes.get(&s.id).expect("inserted above");
                let started = entry.started();
                let w = entry.workers[i].clone();
                let gated = w.kind != probes::Kind::Startup && !started;
                let done = w.kind == probes::Kind::Startup && w.result == Some(true);
                if gated || done {
                    continue;
                }
                if w.next_at > Instant::now() {
                    wake = Some(wake.map_or(w.next_at, |t: Instant| t.min(w.next_at)));
                    continue;
                }
                let (ok, output) = probes::run(&w.probe, c, &target).await;
                let entry = self.probes.get_mut(&s.id).expect("inserted above");
                let w = &mut entry.workers[i];
                let before = w.result;
                w.next_at = Instant::now() + probes::period(&w.probe);
                let failed = probes::record(w, ok);
                let (kind, next, after) = (w.kind, w.next_at, w.result);
                let grace = w.probe.termination_grace_period_seconds;
                if !ok {
                    self.recorder.warning(
                        "Unhealthy",
                        &path,
                        probes::failed_message(kind, &output),
                    );
                }
                // A changed result changes status (and may let init go on): look again now.
                let next = if before != after {
                    Instant::now()
                } else {
                    next
                };
                wake = Some(wake.map_or(next, |t: Instant| t.min(next)));
                if failed && kind != probes::Kind::Readiness {
                    kill = Some((kind, grace));
                    break;
                }
            }
            if let Some((kind, grace)) = kill {
                self.recorder
                    .normal("Killing", &path, probes::restart_message(kind, &c.name));
                let grace = grace
                    .or(spec.termination_grace_period_seconds)
                    .unwrap_or(30)
                    .max(0) as u64;
                let label = self.pod_label();
                let failed = hooks::kill(c, &target, &label, Duration::from_secs(grace)).await;
                if let Some(msg) = failed {
                    self.recorder.warning("FailedPreStopHook", &path, msg);
                }
                self.probes.remove(&s.id);
                wake = Some(Instant::now());
            }
        }
        wake
    }

    /// How probes and hooks reach the pod's containers: its netns and IP (the node's with
    /// the host network, else loopback). Give it a container with [`probes::Target::of`].
    pub(crate) fn target(&self) -> probes::Target {
        let sandbox = self
            .sandbox_id
            .as_ref()
            .and_then(|id| self.rt.pod_sandbox_status(id).ok());
        let netns = sandbox.as_ref().and_then(|s| s.netns.clone());
        let ip = if self.spec().host_network == Some(true) {
            Some(self.cfg.host_ip.clone())
        } else {
            sandbox.and_then(|s| s.ip)
        };
        let host = ip
            .and_then(|ip| ip.parse().ok())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        probes::Target {
            netns,
            host,
            rt: Arc::clone(&self.rt),
            container_id: String::new(),
        }
    }

    /// Makes sure a ready sandbox exists; returns a retry time when it could not.
    async fn ensure_sandbox(&mut self) -> Option<Instant> {
        let ready = self.sandbox_id.as_ref().is_some_and(|id| {
            self.rt
                .pod_sandbox_status(id)
                .is_ok_and(|s| s.state == SandboxState::Ready)
        });
        if ready {
            return None;
        }
        if let Some(old) = self.sandbox_id.take() {
            // The infra process died: kill everything and start over in a new sandbox, init
            // containers included, as the kubelet does.
            self.recorder.normal(
                "SandboxChanged",
                "",
                "Pod sandbox changed, it will be killed and re-created.",
            );
            if let Err(e) = self.rt.remove_pod_sandbox(&old).await {
                self.recorder
                    .warning("FailedKillPod", "", format!("error killing pod: {e}"));
            }
            for slot in self.slots.values_mut() {
                slot.instances.clear();
            }
            self.messages.lock().unwrap().clear();
            self.sandbox_attempt += 1;
        }
        match crate::volumes::setup(&self.cfg.pod_dir, self.spec()) {
            Ok(v) => self.volumes = v,
            Err(e) => {
                self.recorder.warning("FailedMount", "", e.to_string());
                return Some(Instant::now() + Duration::from_secs(2));
            }
        }
        let config = self.sandbox_config();
        match self.rt.run_pod_sandbox(config).await {
            Ok(id) => {
                self.sandbox_id = Some(id);
                // /etc/hosts names the pod's own IP, known only now.
                let hosts = hosts_file(&self.pod, &self.pod_ip(), &self.cfg.cluster_domain);
                if let Err(e) = std::fs::write(self.cfg.pod_dir.join("etc-hosts"), hosts) {
                    self.recorder.warning(
                        "FailedCreatePodSandBox",
                        "",
                        format!("writing /etc/hosts: {e}"),
                    );
                }
                None
            }
            Err(e) => {
                self.recorder.warning(
                    "FailedCreatePodSandBox",
                    "",
                    format!("Failed to create pod sandbox: {e}"),
                );
                Some(Instant::now() + Duration::from_secs(2))
            }
        }
    }

    fn sandbox_config(&self) -> SandboxConfig {
        let spec = self.spec();
        let m = &self.pod.metadata;
        let host_net = spec.host_network == Some(true);
        let node = |b: Option<bool>| {
            if b == Some(true) {
                NamespaceMode::Node
            } else {
                NamespaceMode::Pod
            }
        };
        SandboxConfig {
            metadata: SandboxMetadata {
                name: self.name().to_string(),
                uid: m.uid.clone().unwrap_or_default(),
                namespace: self.namespace().to_string(),
                attempt: self.sandbox_attempt,
            },
            hostname: pod_hostname(&self.pod),
            log_directory: self.cfg.log_dir.clone(),
            dns: self.dns_config(),
            port_mappings: spec
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .filter(|p| !host_net && p.host_port.is_some_and(|h| h > 0))
                .map(|p| PortMapping {
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    container_port: p.container_port,
                    host_port: p.host_port.unwrap_or_default(),
                    host_ip: p.host_ip.clone().unwrap_or_default(),
                })
                .collect(),
            labels: [
                (
                    "io.kubernetes.pod.name".to_string(),
                    self.name().to_string(),
                ),
                (
                    "io.kubernetes.pod.namespace".to_string(),
                    self.namespace().to_string(),
                ),
                (
                    "io.kubernetes.pod.uid".to_string(),
                    m.uid.clone().unwrap_or_default(),
                ),
            ]
            .into(),
            annotations: m.annotations.clone().unwrap_or_default(),
            cgroup_parent: self.cfg.cgroup_parent.clone(),
            namespaces: NamespaceOptions {
                network: if host_net {
                    NamespaceMode::Node
                } else {
                    NamespaceMode::Pod
                },
                pid: if spec.host_pid == Some(true) {
                    NamespaceMode::Node
                } else if spec.share_process_namespace == Some(true) {
                    NamespaceMode::Pod
                } else {
                    NamespaceMode::Container
                },
                ipc: node(spec.host_ipc),
            },
        }
    }

    /// DNS settings by `dnsPolicy`, as the kubelet's `GetPodDNS` computes them.
    fn dns_config(&self) -> DnsConfig {
        let spec = self.spec();
        let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
        let host_net = spec.host_network == Some(true);
        let mut dns = DnsConfig::default();
        let cluster = !self.cfg.cluster_dns.is_empty()
            && (policy == "ClusterFirstWithHostNet" || (policy == "ClusterFirst" && !host_net));
        if cluster {
            let ns = self.namespace();
            let d = &self.cfg.cluster_domain;
            dns.servers = self.cfg.cluster_dns.clone();
            dns.searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            dns.options = vec!["ndots:5".into()];
        } else if policy != "None" {
            // Default (and ClusterFirst without cluster DNS): the host's settings.
            let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            for line in host.lines() {
                let mut words = line.split_whitespace();
                match words.next() {
                    Some("nameserver") => dns.servers.extend(words.next().map(str::to_string)),
                    Some("search") => dns.searches = words.map(str::to_string).collect(),
                    Some("options") => dns.options = words.map(str::to_string).collect(),
                    _ => {}
                }
            }
        }
        if let Some(c) = &spec.dns_config {
            for s in c.nameservers.iter().flatten() {
                if !dns.servers.contains(s) {
                    dns.servers.push(s.clone());
                }
            }
            for s in c.searches.iter().flatten() {
                if !dns.searches.contains(s) {
                    dns.searches.push(s.clone());
                }
            }
            for o in c.options.iter().flatten() {
                let opt = match &o.value {
                    Some(v) => format!("{}:{v}", o.name.clone().unwrap_or_default()),
                    None => o.name.clone().unwrap_or_default(),
                };
                let key = opt.split(':').next().unwrap_or_default().to_string();
                dns.options
                    .retain(|x| x.split(':').next() != Some(key.as_str()));
                dns.options.push(opt);
            }
        }
        dns
    }

    pub(crate) fn pod_ip(&self) -> String {
        self.pod_ips().into_iter().next().unwrap_or_default()
    }

    /// The pod's IPs: the node's with the host network, else the sandbox's.
    pub(crate) fn pod_ips(&self) -> Vec<String> {
        if self.spec().host_network == Some(true) {
            return vec![self.cfg.host_ip.clone()];
        }
        self.sandbox_id
            .as_ref()
            .and_then(|id| self.rt.pod_sandbox_status(id).ok())
            .map(|s| s.ip.into_iter().chain(s.additional_ips).collect())
            .unwrap_or_default()
    }

    /// The latest instance of container `name`, as the runtime reports it.
    pub(crate) fn latest(&self, name: &str) -> Option<RtStatus> {
        let id = self.slots.get(name)?.instances.last()?;
        self.rt.container_status(id).ok()
    }

    /// The instance before the latest one.
    pub(crate) fn previous(&self, name: &str) -> Option<RtStatus> {
        let slot = self.slots.get(name)?;
        let n = slot.instances.len();
        if n < 2 {
            return None;
        }
        self.rt.container_status(&slot.instances[n - 2]).ok()
    }

    /// Restarts an exited container, unless it must wait out its back-off (the kubelet's
    /// `doBackOff`): returns when to look again.
    async fn restart(&mut self, c: &Container, exited: &RtStatus, now: Instant) -> Option<Instant> {
        let finished = instant_of(exited.finished_at.as_deref(), now);
        let cfg = self.cfg.backoff;
        let label = self.pod_label();
        let path = self.field_path(&c.name);
        let slot = self.slots.entry(c.name.clone()).or_default();
        // An entry not updated for longer than the reset time is forgotten
        // (flowcontrol.Backoff's hasExpired): a container that ran that long restarts at
        // once, and its next back-off starts from the base again.
        let expired = |b: &BackoffEntry| {
            finished.saturating_duration_since(b.last_update) > cfg.reset_after()
        };
        if let Some(b) = slot.backoff
            && !expired(&b)
            && now.duration_since(finished) < b.delay
        {
            let msg = format!(
                "back-off {} restarting failed container={} pod={label}",
                go_duration(b.delay),
                c.name
            );
            slot.waiting = Some(("CrashLoopBackOff".into(), msg));
            let event = format!(
                "Back-off restarting failed container {} in pod {label}",
                c.name
            );
            self.recorder.warning("BackOff", &path, event);
            return Some(finished + b.delay);
        }
        let delay = match slot.backoff {
            Some(b) if !expired(&b) => (b.delay * 2).min(Duration::from_secs_f64(cfg.max_seconds)),
            _ => cfg.delay(1),
        };
        slot.backoff = Some(BackoffEntry {
            delay,
            last_update: now,
        });
        self.start(c).await
    }

    /// Pulls (by policy), creates and starts a new instance of `c`; returns a retry time
    /// when it must wait (image back-off).
    async fn start(&mut self, c: &Container) -> Option<Instant> {
        let path = self.field_path(&c.name);
        if let Err((reason, message, retry)) = self.ensure_image(c).await {
            if reason.is_empty() {
                return None;
            }
            self.recorder
                .warning("Failed", &path, format!("Error: {reason}"));
            self.slots.entry(c.name.clone()).or_default().waiting = Some((reason, message));
            return Some(retry);
        }
        let sandbox = self.sandbox_id.clone()?;
        let attempt = self.slots.get(&c.name).map_or(0, |s| s.created);
        let pod_ip = self.pod_ip();
        let facts = PodFacts {
            pod: &self.pod,
            pod_ip: &pod_ip,
            host_ip: &self.cfg.host_ip,
            node_name: &self.cfg.node_name,
            volumes: &self.volumes,
            pod_dir: &self.cfg.pod_dir,
        };
        let config = match container_config(&facts, c, attempt) {
            Ok(cfg) => cfg,
            Err(e) => {
                self.recorder
                    .warning("Failed", &path, format!("Error: {e}"));
                self.slots.entry(c.name.clone()).or_default().waiting =
                    Some((e.reason.into(), e.message));
                return Some(Instant::now() + Duration::from_secs(2));
            }
        };
        let id = match self.rt.create_container(&sandbox, config) {
            Ok(id) => id,
            Err(e) => {
                self.recorder
                    .warning("Failed", &path, format!("Error: {e}"));
                self.slots.entry(c.name.clone()).or_default().waiting =
                    Some(("CreateContainerError".into(), e.to_string()));
                return Some(Instant::now() + Duration::from_secs(2));
            }
        };
        // Keep the new instance and the one before it (for `logs --previous`); older go.
        let slot = self.slots.entry(c.name.clone()).or_default();
        slot.created += 1;
        slot.waiting = None;
        slot.pull_backoff = None;
        slot.instances.push(id.clone());
        let stale: Vec<String> = if slot.instances.len() > 2 {
            slot.instances.drain(..slot.instances.len() - 2).collect()
        } else {
            Vec::new()
        };
        for old in stale {
            self.messages.lock().unwrap().remove(&old);
            let _ = self.rt.remove_container(&old).await;
        }
        self.recorder
            .normal("Created", &path, format!("Created container: {}", c.name));
        match self.rt.start_container(&id) {
            Ok(()) => {
                self.recorder
                    .normal("Started", &path, format!("Started container {}", c.name))
            }
            Err(e) => {
                self.recorder
                    .warning("Failed", &path, format!("Error: {e}"));
                return None;
            }
        }
        // postStart runs before anything else happens to the pod (the kubelet's sync
        // waits for it too), so the container is not seen running until it returns.
        if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            // What is known so far is published first: the container shows as being
            // created while its hook runs.
            self.hook_running = Some(id.clone());
            self.publish();
            let target = self.target().of(&id);
            let label = self.pod_label();
            let mut deleting = self.deleting.clone();
            let outcome = tokio::select! {
                r = hooks::run(h, c, &target, &label, hooks::HOOK_LIMIT) => r,
                Ok(_) = deleting.wait_for(|d| *d) => {
                    // The pod is being deleted: the hook is abandoned (its process killed)
                    // and the container left to the termination.
                    self.hook_running = None;
                    return None;
                }
            };
            if let Err(msg) = outcome {
                self.recorder
                    .warning("FailedPostStartHook", &path, msg.clone());
                self.recorder
                    .normal("Killing", &path, "FailedPostStartHook");
                let grace = self.spec().termination_grace_period_seconds.unwrap_or(30);
                let grace = Duration::from_secs(grace.max(0) as u64);
                if let Some(m) = hooks::kill(c, &target, &label, grace).await {
                    self.recorder.warning("FailedPreStopHook", &path, m);
                }
                if self.would_restart(c) {
                    self.slots.entry(c.name.clone()).or_default().waiting =
                        Some(("PostStartHookError".into(), msg));
                }
            }
            self.hook_running = None;
        }
        None
    }

    /// Whether an exited `c` is restarted: sidecars always; init containers unless the
    /// policy is Never (after a failure); app containers by the pod's policy.
    fn would_restart(&self, c: &Container) -> bool {
        let policy = self.spec().restart_policy.as_deref().unwrap_or("Always");
        if is_sidecar(c) {
            return true;
        }
        policy != "Never"
    }

    /// Applies the image pull policy as the kubelet's image manager does, pulling when it
    /// must (unless in back-off). The error is (reason, message, when to try again).
    async fn ensure_image(&mut self, c: &Container) -> Result<(), (String, String, Instant)> {
        let image = c.image.clone().unwrap_or_default();
        let path = self.field_path(&c.name);
        let now = Instant::now();
        if let Err(e) = peapod_types::image_ref::Reference::parse(&image) {
            return Err((
                "InvalidImageName".into(),
                format!("Failed to apply default image tag {image:?}: {e}"),
                now + Duration::from_secs(10),
            ));
        }
        let present = self.rt.images().get(&image).is_ok();
        let policy = c.image_pull_policy.as_deref().unwrap_or("IfNotPresent");
        if present && policy != "Always" {
            self.recorder.normal(
                "Pulled",
                &path,
                format!("Container image {image:?} already present on machine"),
            );
            return Ok(());
        }
        if policy == "Never" {
            let message =
                format!("Container image {image:?} is not present with pull policy of Never");
            self.recorder
                .warning("ErrImageNeverPull", &path, message.clone());
            return Err((
                "ErrImageNeverPull".into(),
                message,
                now + Duration::from_secs(10),
            ));
        }
        let base = self.cfg.backoff;
        let slot = self.slots.entry(c.name.clone()).or_default();
        if let Some(b) = slot.pull_backoff
            && now.duration_since(b.last_update) < b.delay
        {
            let last = slot
                .waiting
                .as_ref()
                .filter(|(r, _)| r == "ErrImagePull" || r == "ImagePullBackOff")
                .map(|(_, m)| {
                    m.rsplit_once("ErrImagePull: ")
                        .map_or(m.clone(), |(_, m)| m.to_string())
                })
                .unwrap_or_default();
            self.recorder.normal(
                "BackOff",
                &path,
                format!("Back-off pulling image {image:?}"),
            );
            return Err((
                "ImagePullBackOff".into(),
                format!("Back-off pulling image {image:?}: ErrImagePull: {last}"),
                // The pod worker's own retry period (the base back-off) or the end of
                // this back-off, whichever comes first.
                (b.last_update + b.delay).min(now + base.delay(1)),
            ));
        }
        self.recorder
            .normal("Pulling", &path, format!("Pulling image {image:?}"));
        // Publish first: the container waits in ContainerCreating while the pull runs.
        self.publish();
        let opts = peapod_image::PullOptions {
            keyring: self.cfg.pull_keyring.clone(),
            ..Default::default()
        };
        let started = Instant::now();
        let mut deleting = self.deleting.clone();
        let result = tokio::select! {
            r = self.rt.pull_image(&image, &opts) => r,
            Ok(_) = deleting.wait_for(|d| *d) => {
                // Abandoned for the deletion: no reason to report.
                return Err((String::new(), String::new(), now));
            }
        };
        let slot = self.slots.entry(c.name.clone()).or_default();
        match result {
            Ok(img) => {
                slot.pull_backoff = None;
                let took = started.elapsed().as_secs_f64();
                self.recorder.normal(
                    "Pulled",
                    &path,
                    format!(
                        "Successfully pulled image {image:?} in {took:.3}s ({took:.3}s including waiting). Image size: {} bytes.",
                        img.size
                    ),
                );
                Ok(())
            }
            Err(e) => {
                let delay = match slot.pull_backoff {
                    // flowcontrol.Backoff: an entry unused for twice the maximum starts over.
                    Some(b)
                        if now.duration_since(b.last_update)
                            <= Duration::from_secs_f64(base.max_seconds * 2.0) =>
                    {
                        (b.delay * 2).min(Duration::from_secs_f64(base.max_seconds))
                    }
                    _ => base.delay(1),
                };
                slot.pull_backoff = Some(BackoffEntry {
                    delay,
                    last_update: Instant::now(),
                });
                let message = e.to_string();
                self.recorder.warning(
                    "Failed",
                    &path,
                    format!("Failed to pull image {image:?}: {message}"),
                );
                // The pod worker syncs again after its retry period, not after the back-off:
                // in between, the container shows ImagePullBackOff.
                Err((
                    "ErrImagePull".into(),
                    message,
                    Instant::now() + base.delay(1).min(delay),
                ))
            }
        }
    }

    /// The pod reached a terminal phase: stop what still runs (sidecars) and the sandbox.
    async fn finish(&mut self, phase: &'static str) {
        self.terminal_phase = Some(phase);
        self.stop_all(Some(
            self.spec().termination_grace_period_seconds.unwrap_or(30),
        ))
        .await;
        if let Some(id) = &self.sandbox_id
            && let Err(e) = self.rt.stop_pod_sandbox(id).await
        {
            self.recorder
                .warning("FailedKillPod", "", format!("error killing pod: {e}"));
        }
    }

    /// Stops every running container: app containers together, then sidecars in reverse
    /// order, all within the grace period.
    async fn stop_all(&mut self, grace: Option<i64>) {
        let grace = Duration::from_secs(grace.unwrap_or(30).max(0) as u64);
        let deadline = Instant::now() + grace;
        let spec = self.spec().clone();
        let apps: Vec<&Container> = spec.containers.iter().collect();
        let inits: Vec<&Container> = spec.init_containers.iter().flatten().rev().collect();
        let pod_target = self.target();
        for group in [apps, inits] {
            let mut stops = Vec::new();
            for c in group {
                if let Some(s) = self.latest(&c.name).filter(|s| s.state == RtState::Running) {
                    let path = self.field_path(&c.name);
                    self.recorder.normal(
                        "Killing",
                        &path,
                        format!("Stopping container {}", c.name),
                    );
                    let target = pod_target.of(&s.id);
                    let label = self.pod_label();
                    let c = (*c).clone();
                    let left = deadline.saturating_duration_since(Instant::now());
                    stops.push(async move {
                        let failed = hooks::kill(&c, &target, &label, left).await;
                        (c.name, failed)
                    });
                }
            }
            for (name, failed) in join_all(stops).await {
                if let Some(msg) = failed {
                    let path = self.field_path(&name);
                    self.recorder.warning("FailedPreStopHook", &path, msg);
                }
            }
        }
    }

    /// Deletes the pod: stops containers within the grace period, then removes the sandbox,
    /// volumes and logs.
    async fn terminate(&mut self, grace: Option<i64>) {
        let grace = grace.or(self.spec().termination_grace_period_seconds);
        self.stop_all(grace).await;
        if let Some(id) = self.sandbox_id.take()
            && let Err(e) = self.rt.remove_pod_sandbox(&id).await
        {
            tracing::error!("removing sandbox {id}: {e}");
        }
        for slot in self.slots.values() {
            for id in &slot.instances {
                let _ = self.rt.remove_container(id).await;
            }
        }
        if let Err(e) = crate::volumes::teardown(&self.cfg.pod_dir) {
            tracing::error!("removing volumes: {e}");
        }
        let _ = std::fs::remove_dir_all(&self.cfg.pod_dir);
        let _ = std::fs::remove_dir_all(&self.cfg.log_dir);
        if !self.cfg.cgroup_parent.is_empty() {
            let _ = peapod_oci::cgroup::remove(&self.cfg.cgroup_parent);
            if let Some((top, _)) = self
                .cfg
                .cgroup_parent
                .trim_start_matches('/')
                .split_once('/')
            {
                peapod_oci::cgroup::remove_if_empty(top);
            }
        }
    }

    /// The published state.
    pub fn state(&mut self) -> PodState {
        let status = self.status();
        let mut pod = self.pod.clone();
        pod.status = Some(status);
        let mut containers = Vec::new();
        let spec = self.spec();
        let all = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| (c, true))
            .chain(spec.containers.iter().map(|c| (c, false)));
        for (c, init) in all {
            if let Some(slot) = self.slots.get(&c.name)
                && let Some(id) = slot.instances.last()
            {
                let pid = self.rt.container_status(id).map(|s| s.pid).unwrap_or(0);
                let previous_id = slot
                    .instances
                    .len()
                    .checked_sub(2)
                    .map(|i| slot.instances[i].clone());
                containers.push(ContainerRef {
                    name: c.name.clone(),
                    id: id.clone(),
                    previous_id,
                    pid,
                    init,
                });
            }
        }
        let infra_pid = self
            .sandbox_id
            .as_ref()
            .and_then(|id| self.rt.pod_sandbox_status(id).ok())
            .map_or(0, |s| s.infra_pid);
        PodState {
            pod,
            events: self.recorder.events.clone(),
            sandbox_id: self.sandbox_id.clone(),
            infra_pid,
            containers,
            terminating: self.terminating,
        }
    }
}

async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut set = Vec::with_capacity(futs.len());
    let mut futs: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    // Poll all together; they are few.
    let mut done: Vec<Option<F::Output>> = (0..futs.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futs.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    for d in done {
        set.extend(d);
    }
    set
}

/// The instant a runtime timestamp corresponds to.
fn instant_of(ts: Option<&str>, now: Instant) -> Instant {
    let Some(t) = ts.and_then(|s| s.parse::<jiff::Timestamp>().ok()) else {
        return now;
    };
    let ago = jiff::Timestamp::now().duration_since(t);
    let ago = Duration::try_from(ago).unwrap_or_default();
    now.checked_sub(ago).unwrap_or(now)
}

/// A duration the way Go prints one (`10s`, `1m20s`, `5m0s`, `500ms`).
pub(crate) fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    let (m, s) = ((secs / 60.0).floor() as u64, secs % 60.0);
    let s = if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    };
    if m == 0 {
        format!("{s}s")
    } else {
        format!("{m}m{s}s")
    }
}
