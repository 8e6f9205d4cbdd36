//! The kubelet's `computePodActions` (with `computeInitContainerActions` for native
//! sidecars) and its crash-loop back-off, as one pure function: from the pod, a snapshot
//! of the runtime, the probe results, the back-off state and the time, the steps of one
//! pass, in the order they are to be taken.

use std::time::Duration;

use jiff::Timestamp;
use peapod_runtime::{ContainerState, ContainerStatus, Resources, SandboxState};
use peapod_types::api::Container;
use peapod_types::backoff::BackoffTable;
use peapod_types::pod::{ContainerExt, DefaultedPod, ProbeKind, RestartPolicy, Slot};

use crate::clock::go_duration;
use crate::snapshot::PodSnapshot;

/// Why a container is killed (the kubelet's `containerKillReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    /// Its liveness probe failed.
    LivenessProbe,
    /// Its startup probe failed.
    StartupProbe,
    /// Its state is unknown: it is killed before it runs again.
    Unknown,
    /// Its new CPU or memory needs a restart (`resizePolicy: RestartContainer`).
    Resize,
    /// Its definition changed (a new image): it restarts whatever the restart policy.
    Changed,
}

impl KillReason {
    /// The probe behind the kill, if any.
    pub fn probe(self) -> Option<ProbeKind> {
        match self {
            KillReason::LivenessProbe => Some(ProbeKind::Liveness),
            KillReason::StartupProbe => Some(ProbeKind::Startup),
            KillReason::Unknown | KillReason::Resize | KillReason::Changed => None,
        }
    }
}

/// Why every container of the pod is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodKill {
    /// The sandbox is gone or not ready: everything dies at once and starts over.
    SandboxChanged,
    /// Every app container is done for good: the remaining (sidecars) stop within the
    /// pod's grace period, in reverse order.
    Done,
}

/// One step of a pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Stop every running container and every sandbox of the pod.
    KillPod(PodKill),
    /// Remove every init container instance: they all run again in the new sandbox.
    PurgeInitContainers,
    /// Create a sandbox with this attempt number; `changed` when one existed before.
    CreateSandbox {
        /// The sandbox's attempt number.
        attempt: u32,
        /// Whether it replaces an earlier sandbox.
        changed: bool,
    },
    /// Kill one instance.
    KillContainer {
        /// The instance.
        id: String,
        /// Its container.
        slot: Slot,
        /// Why.
        reason: KillReason,
        /// The `Killing` event's message.
        message: String,
    },
    /// Start a new instance of the container.
    Start(Slot),
    /// Give running containers their new CPU and memory in place, and the pod's cgroup its
    /// new totals.
    Resize {
        /// The pod-level limits (the kubelet's `ResourceConfigForPod`).
        pod: Resources,
        /// The instances: (ID, container, new resources, resources it runs with now).
        containers: Vec<(String, Slot, Resources, Resources)>,
    },
    /// The container would start but waits out its crash-loop back-off.
    BackOff {
        /// The container.
        slot: Slot,
        /// When the wait ends.
        until: Timestamp,
        /// The waiting message (`back-off 20s restarting failed container=…`).
        message: String,
    },
}

/// What the plan reads.
pub struct PlanInput<'a> {
    /// The pod.
    pub pod: &'a DefaultedPod,
    /// The runtime's view of it.
    pub snap: &'a PodSnapshot,
    /// Probe results by instance ID and probe.
    pub probe: &'a dyn Fn(&str, ProbeKind) -> Option<bool>,
    /// Crash-loop back-off, keyed by container name.
    pub backoff: &'a BackoffTable,
    /// Now.
    pub now: Timestamp,
}

/// What the kubelet's `computePodActions` decides, before back-off.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodActions {
    /// Stop everything (`KillPod`), and why.
    pub kill_pod: Option<PodKill>,
    /// Create a sandbox with this attempt number.
    pub create_sandbox: Option<u32>,
    /// Whether a sandbox existed before the one to create.
    pub sandbox_changed: bool,
    /// Init containers (and sidecars) to start, in spec order.
    pub init_to_start: Vec<usize>,
    /// App containers to start.
    pub containers_to_start: Vec<usize>,
    /// Instances to kill: (ID, slot, reason, message).
    pub to_kill: Vec<(String, Slot, KillReason, String)>,
    /// Running instances whose CPU or memory changes in place: (ID, slot, new, now).
    pub to_update: Vec<(String, Slot, Resources, Resources)>,
}

/// What a running instance needs for its container's CPU and memory as the spec has them
/// now (`computePodResizeAction`).
#[derive(Debug, Clone, PartialEq)]
pub enum ResizeAction {
    /// It runs with them.
    None,
    /// They are applied to it as it runs: (new, now).
    Update(Resources, Resources),
    /// It restarts with them: a changed resource's `resizePolicy` is `RestartContainer`.
    Restart,
}

/// The resize a running instance `s` of `c` needs; none when the runtime does not say
/// what it runs with.
pub fn resize_action(c: &Container, s: &ContainerStatus) -> ResizeAction {
    use peapod_types::resize::{Policy, policy};
    let Some(now) = &s.resources else {
        return ResizeAction::None;
    };
    let want = crate::config::container_resources(c);
    let cpu = want.cpu_shares != now.cpu_shares || want.cpu_quota != now.cpu_quota;
    let memory = want.memory_limit_in_bytes != now.memory_limit_in_bytes;
    if (cpu && policy(c, "cpu") == Policy::RestartContainer)
        || (memory && policy(c, "memory") == Policy::RestartContainer)
    {
        ResizeAction::Restart
    } else if cpu || memory {
        ResizeAction::Update(want, now.clone())
    } else {
        ResizeAction::None
    }
}

fn resize_message(c: &Container) -> String {
    format!("Container {} resize requires restart", c.name)
}

/// Whether a new sandbox is needed (`PodSandboxChanged`): (needed, attempt).
pub fn sandbox_changed(pod: &DefaultedPod, snap: &PodSnapshot) -> (bool, u32) {
    let Some(latest) = snap.latest_sandbox() else {
        return (true, 0);
    };
    let ready = snap
        .sandboxes
        .iter()
        .filter(|s| s.state == SandboxState::Ready)
        .count();
    let next = latest.metadata.attempt + 1;
    if ready > 1 || latest.state != SandboxState::Ready {
        return (true, next);
    }
    let host = latest.namespaces.network == peapod_runtime::NamespaceMode::Node;
    if host != pod.host_network() {
        return (true, next);
    }
    (false, latest.metadata.attempt)
}

/// Whether a container whose newest instance is `latest` runs again
/// (`ShouldContainerBeRestarted`). Sidecars always do.
pub fn should_restart(
    c: &Container,
    policy: RestartPolicy,
    latest: Option<&ContainerStatus>,
) -> bool {
    let Some(s) = latest else {
        return true;
    };
    match s.state {
        ContainerState::Running => false,
        ContainerState::Unknown | ContainerState::Created => true,
        ContainerState::Exited if c.is_sidecar() => true,
        ContainerState::Exited => policy.restarts(s.exit_code),
    }
}

/// A regular init container that did not succeed (`isInitContainerFailed`).
fn init_failed(s: &ContainerStatus) -> bool {
    s.reason == "OOMKilled"
        || (s.state == ContainerState::Exited && s.exit_code != 0)
        || s.state == ContainerState::Unknown
}

fn unknown_message(init: bool) -> String {
    let what = if init { "Init container" } else { "Container" };
    format!("{what} is in \"unknown\" state, try killing it before restart")
}

/// `computePodActions`.
pub fn compute(input: &PlanInput<'_>) -> PodActions {
    let pod = input.pod;
    let snap = input.snap;
    let policy = pod.restart_policy();
    let mut a = PodActions::default();
    let (create, attempt) = sandbox_changed(pod, snap);
    if create {
        a.kill_pod = Some(PodKill::SandboxChanged);
        a.create_sandbox = Some(attempt);
        a.sandbox_changed = snap.latest_sandbox().is_some();
        if policy == RestartPolicy::Never && attempt != 0 && !snap.containers.is_empty() {
            // The pod never restarts: its containers ran, so no new sandbox.
            a.create_sandbox = None;
            return a;
        }
        let to_start: Vec<usize> = pod
            .containers()
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                let ok = snap
                    .latest(&c.name)
                    .is_some_and(|s| s.state == ContainerState::Exited && s.exit_code == 0);
                !(policy == RestartPolicy::OnFailure && ok)
            })
            .map(|(i, _)| i)
            .collect();
        if to_start.is_empty() && any_app_created(pod, snap) {
            a.create_sandbox = None;
            return a;
        }
        if pod.has_init_containers() {
            a.init_to_start = vec![0];
        } else {
            a.containers_to_start = to_start;
        }
        return a;
    }

    let initialized = init_actions(input, &mut a);
    if a.kill_pod.is_some() || !initialized {
        return a;
    }

    let mut keep = 0;
    for (idx, c) in pod.containers().iter().enumerate() {
        let latest = snap.latest(&c.name);
        if latest.is_none_or(|s| s.state != ContainerState::Running) {
            if should_restart(c, policy, latest) {
                a.containers_to_start.push(idx);
                if let Some(s) = latest.filter(|s| s.state == ContainerState::Unknown) {
                    a.to_kill.push((
                        s.id.clone(),
                        Slot::App(idx),
                        KillReason::Unknown,
                        unknown_message(false),
                    ));
                }
            }
            continue;
        }
        let s = latest.expect("running");
        if s.image != c.image_name() {
            let message = format!("Container {} definition changed, will be restarted", c.name);
            a.to_kill
                .push((s.id.clone(), Slot::App(idx), KillReason::Changed, message));
            a.containers_to_start.push(idx);
            continue;
        }
        let (reason, what) = if (input.probe)(&s.id, ProbeKind::Liveness) == Some(false) {
            (KillReason::LivenessProbe, "liveness")
        } else if (input.probe)(&s.id, ProbeKind::Startup) == Some(false) {
            (KillReason::StartupProbe, "startup")
        } else {
            keep += 1;
            match resize_action(c, s) {
                ResizeAction::None => {}
                ResizeAction::Update(want, now) => {
                    a.to_update.push((s.id.clone(), Slot::App(idx), want, now));
                }
                ResizeAction::Restart => {
                    a.to_kill.push((
                        s.id.clone(),
                        Slot::App(idx),
                        KillReason::Resize,
                        resize_message(c),
                    ));
                    a.containers_to_start.push(idx);
                }
            }
            continue;
        };
        let mut message = format!("Container {} failed {what} probe", c.name);
        if policy != RestartPolicy::Never {
            message.push_str(", will be restarted");
            a.containers_to_start.push(idx);
        }
        a.to_kill
            .push((s.id.clone(), Slot::App(idx), reason, message));
    }
    if keep == 0 && a.containers_to_start.is_empty() {
        // Every app container is done for good: the pod is killed, so sidecars do not keep
        // it alive, and none is started again.
        a.kill_pod = Some(PodKill::Done);
        a.init_to_start.clear();
    }
    a
}

fn any_app_created(pod: &DefaultedPod, snap: &PodSnapshot) -> bool {
    pod.containers().iter().any(|c| {
        snap.latest(&c.name).is_some_and(|s| {
            matches!(
                s.state,
                ContainerState::Created | ContainerState::Running | ContainerState::Exited
            )
        })
    })
}

/// `computeInitContainerActions`: which init containers and sidecars to start or kill;
/// true once the pod is initialized.
fn init_actions(input: &PlanInput<'_>, a: &mut PodActions) -> bool {
    let pod = input.pod;
    let snap = input.snap;
    let inits = pod.init_containers();
    if inits.is_empty() {
        return true;
    }
    // A created or running app container means initialization happened at some point
    // (exited ones may belong to an earlier sandbox).
    let mut initialized = pod.containers().iter().any(|c| {
        snap.latest(&c.name)
            .is_some_and(|s| matches!(s.state, ContainerState::Created | ContainerState::Running))
    });
    let mut previously = initialized;
    let restart_on_failure = pod.restart_policy() != RestartPolicy::Never;
    let last = inits.len() - 1;
    let mut start: Vec<usize> = Vec::new();
    let probe = |id: &str, k| (input.probe)(id, k);
    for i in (0..inits.len()).rev() {
        let c = &inits[i];
        let sidecar = c.is_sidecar();
        let Some(s) = snap.latest(&c.name) else {
            if previously && sidecar {
                start.push(i);
            }
            continue;
        };
        if previously && !sidecar {
            continue;
        }
        let slot = Slot::Init(i);
        match s.state {
            ContainerState::Created => start.push(i),
            ContainerState::Running if !sidecar => {}
            ContainerState::Running => 'sidecar: {
                if s.image != c.image_name() {
                    let m = format!("Init container {} definition changed", c.name);
                    a.to_kill.push((s.id.clone(), slot, KillReason::Changed, m));
                    start.push(i);
                    break 'sidecar;
                }
                if c.startup_probe.is_some() {
                    match probe(&s.id, ProbeKind::Startup) {
                        Some(true) => {}
                        Some(false) => {
                            let m = format!("Init container {} failed startup probe", c.name);
                            a.to_kill
                                .push((s.id.clone(), slot, KillReason::StartupProbe, m));
                            start.push(i);
                            break 'sidecar;
                        }
                        None => break 'sidecar,
                    }
                }
                if i == last {
                    initialized = true;
                } else if !previously {
                    start.push(i + 1);
                }
                if c.liveness_probe.is_some() && probe(&s.id, ProbeKind::Liveness) == Some(false) {
                    let m = format!("Init container {} failed liveness probe", c.name);
                    a.to_kill
                        .push((s.id.clone(), slot, KillReason::LivenessProbe, m));
                    start.push(i);
                    break 'sidecar;
                }
                match resize_action(c, s) {
                    ResizeAction::None => {}
                    ResizeAction::Update(want, now) => {
                        a.to_update.push((s.id.clone(), slot, want, now));
                    }
                    ResizeAction::Restart => {
                        a.to_kill
                            .push((s.id.clone(), slot, KillReason::Resize, resize_message(c)));
                        start.push(i);
                    }
                }
            }
            ContainerState::Exited if sidecar => start.push(i),
            ContainerState::Exited => {
                if init_failed(s) {
                    if !restart_on_failure {
                        a.kill_pod = Some(PodKill::Done);
                        a.init_to_start.clear();
                        return false;
                    }
                    start.push(i);
                } else if i == last {
                    initialized = true;
                } else {
                    start.push(i + 1);
                }
            }
            ContainerState::Unknown => {
                if !sidecar && !restart_on_failure {
                    a.kill_pod = Some(PodKill::Done);
                    a.init_to_start.clear();
                    return false;
                }
                a.to_kill.push((
                    s.id.clone(),
                    slot,
                    KillReason::Unknown,
                    unknown_message(true),
                ));
                start.push(i);
            }
        }
        previously = true;
    }
    if !previously {
        start.push(0);
    }
    start.reverse();
    start.dedup();
    a.init_to_start = start;
    initialized
}

/// The back-off key of a container.
pub fn backoff_key(c: &Container) -> String {
    c.name.clone()
}

/// Whether starting `c` must wait (the kubelet's `doBackOff`): counted from the finish of
/// its newest exited instance. Returns the wait's end and its message.
pub fn crash_backoff(
    pod: &DefaultedPod,
    c: &Container,
    snap: &PodSnapshot,
    backoff: &BackoffTable,
    now: Timestamp,
) -> Option<(Timestamp, String)> {
    let exited = snap.latest_exited(&c.name)?;
    let finished = crate::clock::parse(exited.finished_at.as_deref())?;
    let key = backoff_key(c);
    if !backoff.in_backoff_since(&key, finished, now) {
        return None;
    }
    let delay = backoff.get(&key).unwrap_or(Duration::ZERO);
    let until = backoff.wait_ends(&key, finished)?;
    let message = format!(
        "back-off {} restarting failed container={} pod={}",
        go_duration(delay),
        c.name,
        pod.label()
    );
    Some((until, message))
}

/// The steps of one pass: the decisions of [`compute`] in the kubelet's `SyncPod` order,
/// with every start checked against the crash-loop back-off.
pub fn plan(input: &PlanInput<'_>) -> Vec<Step> {
    let a = compute(input);
    let mut steps = Vec::new();
    if let Some(kill) = a.kill_pod {
        // A pass that kills the pod with no sandbox to create does nothing else.
        let anything = !input.snap.sandboxes.is_empty();
        if anything {
            steps.push(Step::KillPod(kill));
        }
        if a.create_sandbox.is_some() && anything {
            steps.push(Step::PurgeInitContainers);
        }
    } else {
        for (id, slot, reason, message) in &a.to_kill {
            steps.push(Step::KillContainer {
                id: id.clone(),
                slot: *slot,
                reason: *reason,
                message: message.clone(),
            });
        }
        let resized = a.to_kill.iter().any(|k| k.2 == KillReason::Resize);
        if !a.to_update.is_empty() || resized {
            let pod = crate::sandbox_config::pod_resources(input.pod, None);
            steps.push(Step::Resize {
                pod,
                containers: a.to_update.clone(),
            });
        }
    }
    if let Some(attempt) = a.create_sandbox {
        steps.push(Step::CreateSandbox {
            attempt,
            changed: a.sandbox_changed,
        });
    } else if a.kill_pod.is_some() {
        return steps;
    }
    let starts = a
        .init_to_start
        .iter()
        .map(|i| Slot::Init(*i))
        .chain(a.containers_to_start.iter().map(|i| Slot::App(*i)));
    for slot in starts {
        let c = input.pod.container(slot);
        // After a new sandbox, init containers start from scratch (they were purged).
        let purged = a.create_sandbox.is_some() && matches!(slot, Slot::Init(_));
        let wait = if purged {
            None
        } else {
            crash_backoff(input.pod, c, input.snap, input.backoff, input.now)
        };
        match wait {
            Some((until, message)) => steps.push(Step::BackOff {
                slot,
                until,
                message,
            }),
            None => steps.push(Step::Start(slot)),
        }
    }
    steps
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
