//! The per-pod sync loop: one snapshot per pass, the status computed once from it and
//! published, the plan asked and its steps taken; then a wait for the next runtime event,
//! probe result, timer or command. Deletion stops every container once, then removes the
//! sandboxes and the pod's files through [`crate::cleanup`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use peapod_runtime::{ContainerState, RuntimeService, SandboxStatus};
use peapod_types::backoff::{Backoff, BackoffTable};
use peapod_types::credentials::Keyring;
use peapod_types::pod::{DefaultedPod, ProbeKind};
use tokio::sync::{mpsc, watch};

use crate::clock::{Clock, after, deadline};
use crate::config::NodeCapacity;
use crate::events::Recorder;
use crate::images::ImageManager;
use crate::plan::{PlanInput, plan};
use crate::prober::{self, Target};
use crate::probes::{ProbeManager, failed_message};
use crate::snapshot::{self, PodSnapshot};
use crate::status::{
    ConditionTimes, DEADLINE_MESSAGE, Reasons, StatusInput, Terminal, deadline_exceeded, pod_status,
};
use crate::{ContainerRef, PodState};

/// Settings of the pod controller.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// The node name pods see.
    pub node_name: String,
    /// The host's IP address.
    pub host_ip: String,
    /// The pod's directory (volumes, /etc/hosts, termination messages).
    pub pod_dir: PathBuf,
    /// The pod's log directory.
    pub log_dir: PathBuf,
    /// Crash-loop and image-pull back-off.
    pub backoff: Backoff,
    /// Cluster DNS servers for `ClusterFirst` (the host's resolv.conf when empty).
    pub cluster_dns: Vec<String>,
    /// Cluster domain.
    pub cluster_domain: String,
    /// The pod's parent cgroup.
    pub cgroup_parent: String,
    /// The most processes a pod may have (`podPidsLimit`); unlimited when `None`.
    pub pod_pids_limit: Option<i64>,
    /// Credentials from the pod's `imagePullSecrets`, tried before the node's.
    pub pull_keyring: Keyring,
    /// What the node has.
    pub node: NodeCapacity,
    /// The node's `/etc/resolv.conf`.
    pub host_resolv_conf: String,
    /// The node's `/etc/hosts`.
    pub host_hosts: String,
    /// Where `Localhost` seccomp profiles are (`<root>/seccomp`).
    pub seccomp_root: PathBuf,
    /// The node's labels, for admission (`nodeSelector`, node affinity).
    pub node_labels: std::collections::BTreeMap<String, String>,
    /// Whether the host enforces AppArmor (pods that ask for it are refused otherwise).
    pub apparmor_enabled: bool,
    /// The node's resources for admission and resizes, looked at when needed:
    /// allocatable, and what the other pods request at that moment.
    pub node_resources: NodeResources,
    /// The IDs allocated to the pod's user namespace, for a pod with `hostUsers: false`,
    /// or why there are none to give it.
    pub user_namespace: Result<Option<peapod_runtime::UserNamespace>, String>,
    /// The hugepage sizes the host has, in bytes.
    pub hugepage_sizes: Vec<u64>,
}

/// What a worker can be told.
#[derive(Debug)]
pub enum Command {
    /// Delete the pod, giving containers `grace` seconds to stop.
    Delete {
        /// Grace period in seconds; the pod's own when `None`.
        grace: Option<i64>,
    },
    /// The pod's containers' CPU and memory (an in-place resize) or images changed, as
    /// the API server accepted: `pod` is the pod as now applied.
    Update {
        /// The pod with its new resources and images.
        pod: Box<peapod_types::api::Pod>,
    },
}

/// One probe run's outcome, sent back to the loop.
#[derive(Debug)]
pub(crate) struct ProbeOutcome {
    pub container_id: String,
    pub container: String,
    pub kind: ProbeKind,
    pub ok: bool,
    pub output: String,
}

/// What the controller remembers between passes (everything else is read again).
pub(crate) struct Memory {
    /// The pod's sandboxes, once known (newest last).
    pub sandbox_ids: Option<Vec<String>>,
    /// Start failures by container name (the kubelet's reason cache).
    pub reasons: Reasons,
    /// A container whose start failed is not tried again before this time (the pod
    /// worker's requeue), even when another step of the pass makes the loop look again.
    pub retry: HashMap<String, Timestamp>,
    /// Crash-loop back-off by container name.
    pub crash: BackoffTable,
    /// Image pulls.
    pub images: ImageManager,
    /// Probe state by instance.
    pub probes: ProbeManager,
    /// Termination messages read so far, by instance.
    pub messages: HashMap<String, String>,
    /// Condition transition times.
    pub times: ConditionTimes,
    /// The terminal phase, once reached, and whether its containers were stopped.
    pub terminal: Option<(Terminal, bool)>,
    /// The instance whose postStart hook runs.
    pub hook_running: Option<String>,
    /// Volume name → host path, once set up.
    pub volumes: Option<HashMap<String, PathBuf>>,
    /// When the pod started on this node.
    pub start_time: Timestamp,
    /// Instances being stopped in the background (a liveness or startup failure, a
    /// changed spec): they are not killed twice, and nothing else waits for them.
    pub killing: std::collections::HashSet<String>,
    /// When local storage was last measured for the eviction checks.
    pub storage_checked: Option<Timestamp>,
    /// The grace period the terminal phase's kills get, when not the pod's (0 for an
    /// eviction, as the eviction manager kills).
    pub terminal_grace: Option<Duration>,
    /// A resize the node cannot give (`PodResizePending`). The pod keeps what it was given.
    pub pending_resize: Option<PendingResize>,
    /// Since when a given resize has been carried out (`PodResizeInProgress`), and why the
    /// last attempt failed, if it did.
    pub resizing: Option<(Timestamp, Option<String>)>,
}

/// The node's resources as admission counts them, looked at when asked.
#[derive(Clone)]
pub struct NodeResources(Arc<dyn Fn() -> Vec<peapod_types::admission::NodeResource> + Send + Sync>);

impl NodeResources {
    /// Resources found by `look`.
    pub fn new(
        look: impl Fn() -> Vec<peapod_types::admission::NodeResource> + Send + Sync + 'static,
    ) -> Self {
        NodeResources(Arc::new(look))
    }

    /// What the node has and what the other pods request, now.
    pub fn now(&self) -> Vec<peapod_types::admission::NodeResource> {
        (self.0)()
    }
}

impl std::fmt::Debug for NodeResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeResources")
    }
}

/// A resize not given to the pod yet.
#[derive(Debug, Clone)]
pub struct PendingResize {
    /// The spec asked for.
    pub spec: peapod_types::api::PodSpec,
    /// Infeasible or Deferred.
    pub why: peapod_types::resize::Pending,
    /// The condition's message.
    pub message: String,
    /// Since when it has been pending for this reason.
    pub since: Timestamp,
    /// When a deferred one was last looked at again.
    pub checked: Timestamp,
}

/// How often a deferred resize is tried again.
const DEFERRED_RETRY: Duration = Duration::from_secs(3);

/// What woke the worker.
enum Woken {
    /// A container event (whether it is this pod's).
    Event(bool),
    /// A probe result.
    Probe(ProbeOutcome),
    /// Its timer.
    Timer,
    /// A background kill ended.
    Killed((String, String, Option<String>)),
    /// A command, or the end of commands.
    Command(Option<Command>),
}

/// How often volumes made from ConfigMaps, Secrets and the downward API are brought up to
/// date (the kubelet's sync period is a minute; its object cache adds to that).
const VOLUME_REFRESH: Duration = Duration::from_secs(10);

/// How often the state is published while a kill is awaited.
const PUBLISH_WHILE_KILLING: Duration = Duration::from_millis(200);

/// What receives the pod's state after every change.
type Publisher = Box<dyn FnMut(&PodState) + Send>;

/// The controller of one pod, over a CRI runtime.
pub struct PodWorker<R> {
    pub(crate) rt: Arc<R>,
    pub(crate) pod: DefaultedPod,
    pub(crate) cfg: KubeletConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) recorder: Recorder,
    pub(crate) mem: Memory,
    pub(crate) terminating: bool,
    publisher: Option<Publisher>,
    last_published: Vec<u8>,
    /// Becomes true when the pod's deletion is asked for.
    pub(crate) deleting: watch::Receiver<bool>,
    probe_tx: mpsc::Sender<ProbeOutcome>,
    probe_rx: Option<mpsc::Receiver<ProbeOutcome>>,
    /// Background kills report here: (instance, container, preStop failure).
    pub(crate) killed_tx: mpsc::Sender<(String, String, Option<String>)>,
    killed_rx: Option<mpsc::Receiver<(String, String, Option<String>)>>,
    /// The ConfigMaps and Secrets the pod may refer to.
    pub(crate) objects: Arc<dyn crate::objects::ObjectSource>,
}

impl<R: RuntimeService + peapod_runtime::ImageService> PodWorker<R> {
    /// A worker for a defaulted, validated pod with its UID set.
    pub fn new(rt: Arc<R>, pod: DefaultedPod, cfg: KubeletConfig, clock: Arc<dyn Clock>) -> Self {
        let (probe_tx, probe_rx) = mpsc::channel(64);
        let (killed_tx, killed_rx) = mpsc::channel(64);
        let now = clock.now();
        // In the kubelet's order: resources fit, node affinity, then AppArmor.
        let admission =
            peapod_types::admission::admit_resources(pod.spec(), &cfg.node_resources.now())
                .and_then(|()| {
                    peapod_types::admission::admit(pod.spec(), &cfg.node_name, &cfg.node_labels)
                })
                .and_then(|()| {
                    peapod_types::admission::admit_apparmor(
                        pod.pod().metadata.annotations.as_ref(),
                        pod.spec(),
                        cfg.apparmor_enabled,
                    )
                });
        let mut worker = PodWorker {
            rt,
            pod,
            mem: Memory {
                sandbox_ids: None,
                reasons: Reasons::new(),
                retry: HashMap::new(),
                crash: BackoffTable::new(cfg.backoff),
                images: ImageManager::new(cfg.backoff),
                probes: ProbeManager::default(),
                messages: HashMap::new(),
                times: ConditionTimes::default(),
                terminal: None,
                hook_running: None,
                volumes: None,
                start_time: now,
                killing: Default::default(),
                storage_checked: None,
                terminal_grace: None,
                pending_resize: None,
                resizing: None,
            },
            cfg,
            recorder: Recorder::new(Arc::clone(&clock)),
            clock,
            terminating: false,
            publisher: None,
            last_published: Vec::new(),
            deleting: watch::channel(false).1,
            probe_tx,
            probe_rx: Some(probe_rx),
            killed_tx,
            killed_rx: Some(killed_rx),
            objects: Arc::new(crate::objects::MemoryObjects::default()),
        };
        // A pod the node does not admit fails at once: nothing of it is created.
        if let Err(r) = admission {
            worker.recorder.warning(&r.reason, "", r.message.clone());
            let reason = Some((r.reason, format!("Pod was rejected: {}", r.message)));
            let failed = Terminal {
                phase: "Failed",
                reason,
                rejected: true,
            };
            worker.mem.terminal = Some((failed, true));
        }
        worker
    }

    /// Looks the pod's ConfigMaps and Secrets up in `objects`.
    pub fn with_objects(mut self, objects: Arc<dyn crate::objects::ObjectSource>) -> Self {
        self.objects = objects;
        self
    }

    /// Runs the pod until it is deleted, publishing its state after every change.
    pub async fn run(
        mut self,
        mut requests: mpsc::Receiver<Command>,
        publish: impl FnMut(&PodState) + Send + 'static,
    ) {
        self.publisher = Some(Box::new(publish));
        // A delete request is also announced at once, so that a pull or hook that runs when
        // it comes is cut short (the kubelet cancels the sync's context the same way).
        let (deleting, deleting_rx) = watch::channel(false);
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
        let mut events = self.rt.container_events();
        let mut killed_rx = self.killed_rx.take().expect("run once");
        let msg = format!(
            "Successfully assigned {}/{} to {}",
            self.pod.namespace(),
            self.pod.name(),
            self.cfg.node_name
        );
        // A pod the node rejects was never placed on it.
        if self.mem.terminal.is_none() {
            self.recorder.normal("Scheduled", "", msg);
        }
        // The pod is Pending from the start, before anything is made for it.
        self.publish_fresh();
        let mut wake = self.sync().await;
        loop {
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(deadline(&*self.clock, at)).await,
                    None => std::future::pending().await,
                }
            };
            // The probe results are the worker's own again while a pass runs, so that a
            // long kill inside it can take them (`while_publishing`).
            let mut probe_rx = self.probe_rx.take().expect("the worker's probe results");
            let woken = tokio::select! {
                ev = events.recv() => Woken::Event(match ev {
                    Ok(ev) => self.is_ours(&ev.sandbox_id),
                    // Missed events: look again.
                    Err(_) => true,
                }),
                Some(r) = probe_rx.recv() => Woken::Probe(r),
                Some(k) = killed_rx.recv() => Woken::Killed(k),
                _ = sleep => Woken::Timer,
                cmd = commands.recv() => Woken::Command(cmd),
            };
            self.probe_rx = Some(probe_rx);
            let resync = match woken {
                Woken::Event(ours) => ours,
                Woken::Probe(r) => self.probe_outcome(r),
                Woken::Timer => true,
                Woken::Killed((id, name, failed)) => {
                    self.mem.killing.remove(&id);
                    if let Some(m) = failed {
                        let path = self.pod.field_path(&name);
                        self.recorder.warning("FailedPreStopHook", &path, m);
                    }
                    true
                }
                Woken::Command(Some(Command::Delete { grace })) => {
                    self.terminating = true;
                    self.publish_fresh();
                    self.terminate(grace).await;
                    return;
                }
                Woken::Command(Some(Command::Update { pod })) => {
                    self.update_to(*pod);
                    true
                }
                Woken::Command(None) => {
                    std::future::pending::<()>().await;
                    false
                }
            };
            if resync {
                wake = self.sync().await;
            } else {
                wake = earliest(wake, self.mem.probes.next_due());
            }
        }
    }

    /// Takes `new`'s deadline, tolerations and grace period, and the new images and CPU and
    /// memory of its containers: the images at once
    /// (the plan restarts what runs another), the resources as the kubelet allocates a
    /// resize: where the node has room for the pod's requests; otherwise the resize stays
    /// pending (`Infeasible`, or `Deferred` until the other pods leave room) and the pod
    /// keeps what it has.
    fn update_to(&mut self, new: peapod_types::api::Pod) {
        let Some(new_spec) = new.spec else {
            return;
        };
        // The pod-level fields an update may change apply at once.
        let mut base = self.pod.pod().clone();
        if let Some(s) = base.spec.as_mut() {
            s.active_deadline_seconds = new_spec.active_deadline_seconds;
            s.tolerations = new_spec.tolerations.clone();
            s.termination_grace_period_seconds = new_spec.termination_grace_period_seconds;
        }
        let with_images = copy_from(&base, &new_spec, |c, n| c.image = n.image.clone());
        let resized = copy_from(&with_images, &new_spec, |c, n| {
            c.resources = n.resources.clone()
        });
        if resized.spec == with_images.spec {
            self.pod = DefaultedPod::new(resized);
            self.publish_fresh();
            return;
        }
        let spec = resized.spec.as_ref().expect("a pod has a spec");
        match peapod_types::resize::allocate(spec, &self.cfg.node_resources.now()) {
            Err((why, message)) => {
                let now = self.clock.now();
                let since = match &self.mem.pending_resize {
                    Some(p) if p.why == why => p.since,
                    _ => now,
                };
                self.mem.pending_resize = Some(PendingResize {
                    spec: spec.clone(),
                    why,
                    message,
                    since,
                    checked: now,
                });
                // The new images are taken all the same.
                self.pod = DefaultedPod::new(with_images);
            }
            Ok(()) => {
                self.mem.pending_resize = None;
                self.pod = DefaultedPod::new(resized);
            }
        }
        self.publish_fresh();
    }

    fn is_ours(&self, sandbox_id: &str) -> bool {
        self.mem
            .sandbox_ids
            .as_ref()
            .is_some_and(|ids| ids.iter().any(|i| i == sandbox_id))
    }

    /// Applies a probe outcome; true when a pass is needed.
    fn probe_outcome(&mut self, r: ProbeOutcome) -> bool {
        if !r.ok {
            let path = self.pod.field_path(&r.container);
            self.recorder
                .warning("Unhealthy", &path, failed_message(r.kind, &r.output));
        }
        let now = self.clock.now();
        let rep = self.mem.probes.report(&r.container_id, r.kind, r.ok, now);
        rep.changed || rep.failed
    }

    /// The snapshot of this pod now.
    pub(crate) fn snapshot(&mut self) -> PodSnapshot {
        let specs: Vec<&peapod_types::api::Container> =
            self.pod.all_containers().map(|(_, c)| c).collect();
        let snap = snapshot::take(
            &*self.rt,
            self.pod.uid(),
            self.mem.sandbox_ids.as_deref(),
            &specs,
            &mut self.mem.messages,
        );
        if self.mem.sandbox_ids.is_none() {
            self.mem.sandbox_ids =
                Some(snap.sandboxes.iter().rev().map(|s| s.id.clone()).collect());
        }
        snap
    }

    /// Passes until one changes nothing in the runtime; returns when to look again. Each
    /// pass reads one snapshot; the plan and the published status both come from it (a
    /// pass that changed the runtime leaves the status to the next one).
    async fn sync(&mut self) -> Option<Timestamp> {
        loop {
            let snap = self.snapshot();
            let now = self.clock.now();
            if let Some((_, stopped)) = &self.mem.terminal {
                if *stopped {
                    self.publish(&snap, now);
                    return None;
                }
                // Terminal: what still runs (sidecars) stops within the grace period, and
                // the sandbox goes; the status is published by the next pass.
                let grace = self
                    .mem
                    .terminal_grace
                    .unwrap_or_else(|| Duration::from_secs(self.pod.grace_period() as u64));
                self.kill_all(&snap, grace).await;
                if let Some((_, stopped)) = self.mem.terminal.as_mut() {
                    *stopped = true;
                }
                continue;
            }
            if deadline_exceeded(&self.pod, self.mem.start_time, now) {
                self.recorder
                    .normal("DeadlineExceeded", "", DEADLINE_MESSAGE);
                let reason = Some(("DeadlineExceeded".to_string(), DEADLINE_MESSAGE.to_string()));
                self.mem.terminal = Some((
                    Terminal {
                        phase: "Failed",
                        reason,
                        rejected: false,
                    },
                    false,
                ));
                continue;
            }
            let running: Vec<(&str, &peapod_types::api::Container, Timestamp)> = snap
                .running()
                .filter_map(|s| {
                    let slot = self.pod.slot_of(&s.metadata.name)?;
                    let started = crate::clock::parse(s.started_at.as_deref()).unwrap_or(now);
                    Some((s.id.as_str(), self.pod.container(slot), started))
                })
                .collect();
            self.mem.probes.sync(running);
            if self.mem.volumes.is_none() {
                match crate::volumes::setup(&self.cfg.pod_dir, self.pod.spec())
                    .and_then(|mut v| self.project_volumes(&mut v).map(|()| v))
                {
                    Ok(v) => self.mem.volumes = Some(v),
                    Err(e) => {
                        self.recorder.warning("FailedMount", "", e.to_string());
                        self.publish(&snap, now);
                        return Some(after(now, Duration::from_secs(2)));
                    }
                }
            } else if let Some(mut v) = self.mem.volumes.take() {
                // ConfigMap, Secret and downward API files follow their sources.
                if let Err(e) = self.project_volumes(&mut v) {
                    tracing::warn!("refreshing volumes: {e}");
                }
                self.mem.volumes = Some(v);
            }
            if let Some(message) = self.storage_violation(&snap, now).await {
                self.recorder.warning("Evicted", "", message.clone());
                self.mem.terminal = Some((
                    Terminal {
                        phase: "Failed",
                        reason: Some(("Evicted".to_string(), message)),
                        rejected: false,
                    },
                    false,
                ));
                self.mem.terminal_grace = Some(Duration::ZERO);
                continue;
            }
            self.retry_deferred_resize(now);
            self.start_probes(&snap, now);
            let probes = &self.mem.probes;
            let probe = |id: &str, k: ProbeKind| probes.result(id, k);
            let steps = plan(&PlanInput {
                pod: &self.pod,
                snap: &snap,
                probe: &probe,
                backoff: &self.mem.crash,
                now,
            });
            let outcome = self.execute(steps, &snap).await;
            self.collect_sandboxes(&snap).await;
            if *self.deleting.borrow() {
                return None;
            }
            if outcome.changed {
                continue;
            }
            let phase = self.publish(&snap, now);
            if phase == "Succeeded" || phase == "Failed" {
                self.mem.terminal = Some((
                    Terminal {
                        phase,
                        reason: None,
                        rejected: false,
                    },
                    false,
                ));
                continue;
            }
            let deadline_at = self
                .pod
                .active_deadline()
                .map(|d| after(self.mem.start_time, d));
            let wake = earliest(outcome.wake, self.mem.probes.next_due());
            let refresh = self
                .pod
                .spec()
                .volumes
                .iter()
                .flatten()
                .any(crate::projection::is_projected)
                .then(|| after(now, VOLUME_REFRESH));
            let storage = self
                .mem
                .storage_checked
                .filter(|_| crate::eviction::watched(self.pod.spec()))
                .map(|t| after(t, crate::eviction::INTERVAL));
            let deferred = self
                .mem
                .pending_resize
                .as_ref()
                .filter(|p| p.why == peapod_types::resize::Pending::Deferred)
                .map(|p| after(p.checked, DEFERRED_RETRY));
            return earliest(
                earliest(earliest(earliest(wake, deadline_at), refresh), storage),
                deferred,
            );
        }
    }

    /// A deferred resize is given to the pod once the node has room for it beside the
    /// other pods (the kubelet retries them as pods go), looked at every [`DEFERRED_RETRY`];
    /// the plan then carries it out.
    fn retry_deferred_resize(&mut self, now: Timestamp) {
        let Some(p) = self.mem.pending_resize.as_mut() else {
            return;
        };
        if p.why != peapod_types::resize::Pending::Deferred
            || now < after(p.checked, DEFERRED_RETRY)
        {
            return;
        }
        match peapod_types::resize::allocate(&p.spec, &self.cfg.node_resources.now()) {
            Ok(()) => {
                let mut pod = self.pod.pod().clone();
                pod.spec = Some(p.spec.clone());
                self.mem.pending_resize = None;
                self.pod = DefaultedPod::new(pod);
            }
            Err((why, message)) => {
                if why != p.why {
                    p.since = now;
                }
                (p.why, p.message, p.checked) = (why, message, now);
            }
        }
    }

    /// The eviction manager's local-storage check, when due (every
    /// [`crate::eviction::INTERVAL`]) and the pod has limits it watches: emptyDir volumes
    /// on disk, and each running container's writable layer and logs.
    async fn storage_violation(&mut self, snap: &PodSnapshot, now: Timestamp) -> Option<String> {
        if !crate::eviction::watched(self.pod.spec()) {
            return None;
        }
        if self
            .mem
            .storage_checked
            .is_some_and(|t| now < after(t, crate::eviction::INTERVAL))
        {
            return None;
        }
        self.mem.storage_checked = Some(now);
        let mut usage = crate::eviction::StorageUsage::default();
        if let Some(vols) = &self.mem.volumes {
            for v in self.pod.spec().volumes.iter().flatten() {
                let on_disk = v
                    .empty_dir
                    .as_ref()
                    .is_some_and(|e| e.medium.as_deref() != Some("Memory"));
                if let (true, Some(path)) = (on_disk, vols.get(&v.name)) {
                    usage
                        .empty_dirs
                        .push((v.name.clone(), crate::eviction::disk_usage(path)));
                }
            }
        }
        for s in snap.running() {
            let name = s.metadata.name.clone();
            let layer = self
                .rt
                .container_stats(&s.id)
                .ok()
                .and_then(|st| st.writable_layer)
                .map_or(0, |w| w.used_bytes);
            let logs = crate::eviction::disk_usage(&self.cfg.log_dir.join(&name));
            usage.containers.push((name, layer + logs));
        }
        crate::eviction::violation(self.pod.spec(), &usage)
    }

    /// Hands the due probe runs to tasks of their own; outcomes come back to the loop.
    fn start_probes(&mut self, snap: &PodSnapshot, now: Timestamp) {
        let Some(sandbox) = snap.ready_sandbox().cloned() else {
            return;
        };
        for d in self.mem.probes.due(now) {
            let Some(slot) = self.pod.slot_of(&d.container) else {
                continue;
            };
            let c = self.pod.container(slot).clone();
            let target = self.target(&sandbox, &d.container_id);
            let tx = self.probe_tx.clone();
            tokio::spawn(async move {
                let (ok, output) = prober::run(&d.spec, &c, &target).await;
                let _ = tx
                    .send(ProbeOutcome {
                        container_id: d.container_id,
                        container: d.container,
                        kind: d.spec.kind,
                        ok,
                        output,
                    })
                    .await;
            });
        }
    }

    /// How probes and hooks reach instance `container_id`: through the sandbox, at the
    /// pod's IP (the node's with the host network, else loopback).
    pub(crate) fn target(&self, sandbox: &SandboxStatus, container_id: &str) -> Target<R> {
        let ip = if self.pod.host_network() {
            Some(self.cfg.host_ip.clone())
        } else {
            sandbox.ip.clone()
        };
        Target {
            rt: Arc::clone(&self.rt),
            sandbox_id: sandbox.id.clone(),
            host: ip
                .and_then(|ip| ip.parse().ok())
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
            container_id: container_id.to_string(),
        }
    }

    /// Removes the sandboxes of earlier attempts once nothing of theirs is kept.
    async fn collect_sandboxes(&mut self, snap: &PodSnapshot) {
        for s in snap.sandboxes.iter().skip(1) {
            let empty = !snap.containers.iter().any(|c| c.sandbox_id == s.id);
            if empty && s.state != peapod_runtime::SandboxState::Ready {
                match self.rt.remove_pod_sandbox(&s.id).await {
                    Ok(()) => {
                        if let Some(ids) = self.mem.sandbox_ids.as_mut() {
                            ids.retain(|i| *i != s.id);
                        }
                    }
                    Err(e) => tracing::warn!(sandbox = %s.id, "removing an old sandbox: {e}"),
                }
            }
        }
    }

    /// Computes the status from `snap` and publishes the state if it changed; returns the
    /// phase.
    pub(crate) fn publish(&mut self, snap: &PodSnapshot, now: Timestamp) -> &'static str {
        let probes = &self.mem.probes;
        let started = |id: &str| probes.started(id);
        let ready = |id: &str| probes.ready(id);
        let terminal = self.mem.terminal.as_ref().map(|(t, _)| t);
        let input = StatusInput {
            pod: &self.pod,
            snap,
            reasons: &self.mem.reasons,
            started: &started,
            ready: &ready,
            hook_running: self.mem.hook_running.as_deref(),
            host_ip: &self.cfg.host_ip,
            start_time: self.mem.start_time,
            terminal,
        };
        let status = pod_status(&input, &mut self.mem.times, now);
        let phase = match status.phase.as_deref() {
            Some("Running") => "Running",
            Some("Succeeded") => "Succeeded",
            Some("Failed") => "Failed",
            _ => "Pending",
        };
        let mut pod = self.pod.pod().clone();
        let mut status = status;
        if let Some(pending) = &self.mem.pending_resize {
            // The spec as applied; the pod runs with what it was given.
            pod.spec = Some(pending.spec.clone());
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(peapod_types::api::PodCondition {
                    type_: "PodResizePending".into(),
                    status: "True".into(),
                    reason: Some(pending.why.reason().to_string()),
                    message: Some(pending.message.clone()),
                    last_probe_time: None,
                    last_transition_time: Some(peapod_types::meta::Time(pending.since)),
                    ..Default::default()
                });
        }
        // As the kubelet's isPodResizeInProgress: a running container does not have yet
        // the resources the pod was given (the plan's own test for a resize).
        let in_progress = self.terminating || self.mem.terminal.is_some();
        let in_progress = !in_progress
            && snap.running().any(|s| {
                self.pod.slot_of(&s.metadata.name).is_some_and(|slot| {
                    crate::plan::resize_action(self.pod.container(slot), s)
                        != crate::plan::ResizeAction::None
                })
            });
        match (&mut self.mem.resizing, in_progress) {
            (None, true) => self.mem.resizing = Some((now, None)),
            (Some(_), false) => self.mem.resizing = None,
            _ => {}
        }
        if let Some((since, error)) = &self.mem.resizing {
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(peapod_types::api::PodCondition {
                    type_: "PodResizeInProgress".into(),
                    status: "True".into(),
                    reason: error.as_ref().map(|_| "Error".to_string()),
                    message: error.clone(),
                    last_transition_time: Some(peapod_types::meta::Time(*since)),
                    ..Default::default()
                });
        }
        pod.status = Some(status);
        let containers = self
            .pod
            .all_containers()
            .filter_map(|(slot, c)| {
                let latest = snap.latest(&c.name)?;
                Some(ContainerRef {
                    name: c.name.clone(),
                    id: latest.id.clone(),
                    previous_id: snap.previous(&c.name).map(|p| p.id.clone()),
                    pid: if latest.state == ContainerState::Running {
                        latest.pid
                    } else {
                        0
                    },
                    init: matches!(slot, peapod_types::pod::Slot::Init(_)),
                })
            })
            .collect();
        let state = PodState {
            pod,
            events: self.recorder.events.clone(),
            sandbox_id: snap.latest_sandbox().map(|s| s.id.clone()),
            infra_pid: snap.ready_sandbox().map_or(0, |s| s.infra_pid),
            containers,
            terminating: self.terminating,
        };
        let data = serde_json::to_vec(&state).expect("the state serializes");
        if data != self.last_published {
            if let Some(p) = self.publisher.as_mut() {
                p(&state);
            }
            self.last_published = data;
        }
        phase
    }

    /// Awaits `fut` (a kill, which may take the whole grace period) while the pod's status
    /// and events stay current: probes run and their results are taken, and the state is
    /// published as containers exit, as the kubelet's status manager and recorder work beside its pod
    /// worker.
    pub(crate) async fn while_publishing<T>(
        &mut self,
        fut: impl std::future::Future<Output = T>,
    ) -> T {
        let mut fut = std::pin::pin!(fut);
        self.publish_fresh();
        loop {
            tokio::select! {
                out = &mut fut => return out,
                _ = tokio::time::sleep(PUBLISH_WHILE_KILLING) => {
                    let mut outcomes = Vec::new();
                    if let Some(rx) = self.probe_rx.as_mut() {
                        while let Ok(o) = rx.try_recv() {
                            outcomes.push(o);
                        }
                    }
                    for o in outcomes {
                        self.probe_outcome(o);
                    }
                    let snap = self.snapshot();
                    let now = self.clock.now();
                    self.start_probes(&snap, now);
                    self.publish(&snap, now);
                }
            }
        }
    }

    /// Finds the claims' directories, and writes the volumes made from objects
    /// (ConfigMaps, Secrets, the downward API) into `volumes`, Secrets and projections on tmpfs; a file set that did not change is not
    /// written again.
    fn project_volumes(
        &self,
        volumes: &mut HashMap<String, PathBuf>,
    ) -> Result<(), crate::volumes::VolumeError> {
        for v in self.pod.spec().volumes.iter().flatten() {
            let fail = |message: String| crate::volumes::VolumeError {
                volume: v.name.clone(),
                message,
            };
            if let Some(c) = &v.persistent_volume_claim {
                let dir = self
                    .objects
                    .claim_dir(self.pod.namespace(), &c.claim_name)
                    .ok_or_else(|| {
                        fail(format!(
                            "persistentvolumeclaim {:?} not found",
                            c.claim_name
                        ))
                    })?;
                volumes.insert(v.name.clone(), dir);
                continue;
            }
            let Some(files) =
                crate::projection::payload(&self.pod, v, &*self.objects, self.cfg.node)
                    .map_err(fail)?
            else {
                continue;
            };
            // With an fsGroup, the files are the group's to read (the kubelet's read-only
            // SetVolumeOwnership).
            let fs_group = self
                .pod
                .spec()
                .security_context
                .as_ref()
                .and_then(|s| s.fs_group);
            let files: crate::projection::Payload = match fs_group {
                Some(_) => files
                    .into_iter()
                    .map(|(k, (d, m))| (k, (d, m | 0o440)))
                    .collect(),
                None => files,
            };
            let dir = crate::projection::dir_of(&self.cfg.pod_dir, v);
            if v.config_map.is_none() {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| fail(format!("creating {}: {e}", dir.display())))?;
                peapod_runtime::host::mount_tmpfs(&dir, None, 0o755)
                    .map_err(|e| fail(e.to_string()))?;
            }
            let changed = crate::projection::write_atomic(&dir, &files).map_err(fail)?;
            if let (Some(gid), true) = (fs_group, changed) {
                crate::projection::give_to_group(&dir, gid as u32).map_err(fail)?;
            }
            volumes.insert(v.name.clone(), dir);
        }
        Ok(())
    }

    /// Publishes from a fresh snapshot (before a long step: a pull, a hook, a kill).
    pub(crate) fn publish_fresh(&mut self) {
        let snap = self.snapshot();
        let now = self.clock.now();
        self.publish(&snap, now);
    }

    /// Deletes the pod: stops every container within the grace period (once each), then
    /// removes the sandboxes, volumes and files.
    async fn terminate(&mut self, grace: Option<i64>) {
        let snap = self.snapshot();
        let grace = grace.unwrap_or(self.pod.grace_period()).max(0) as u64;
        self.kill_all(&snap, Duration::from_secs(grace)).await;
        if let Err(e) = crate::cleanup::remove_pod(
            &*self.rt,
            self.pod.uid(),
            &self.cfg.pod_dir,
            &self.cfg.log_dir,
        )
        .await
        {
            tracing::error!("removing pod {}: {e}", self.pod.label());
        }
    }
}

/// The earlier of two optional times.
pub(crate) fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The restart count of a container's next instance when the runtime has none of it: one
/// more than the highest `N.log` in its log directory (the kubelet's
/// `calcRestartCountByLogDir`), else 0.
pub(crate) fn attempt_from_logs(log_dir: &std::path::Path, name: &str) -> u32 {
    std::fs::read_dir(log_dir.join(name))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".log")?
                .parse::<u32>()
                .ok()
        })
        .max()
        .map_or(0, |n| n + 1)
}

/// `pod` with `copy(container, new)` applied to each of its containers and the one of
/// `spec` at the same place (init containers likewise).
fn copy_from(
    pod: &peapod_types::api::Pod,
    spec: &peapod_types::api::PodSpec,
    copy: impl Fn(&mut peapod_types::api::Container, &peapod_types::api::Container),
) -> peapod_types::api::Pod {
    let mut pod = pod.clone();
    if let Some(s) = pod.spec.as_mut() {
        for (c, n) in s.containers.iter_mut().zip(&spec.containers) {
            copy(c, n);
        }
        for (c, n) in s
            .init_containers
            .iter_mut()
            .flatten()
            .zip(spec.init_containers.iter().flatten())
        {
            copy(c, n);
        }
    }
    pod
}
