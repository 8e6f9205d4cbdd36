//! The pod's status by the kubelet's rules (`generateAPIPodStatus`,
//! `convertToAPIContainerStatuses`), as a function of the pod, one snapshot and what the
//! controller remembers (start failures, probe results, the terminal phase).

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use peapod_runtime::{ContainerState as RtState, ContainerStatus as RtStatus, SandboxState};
use peapod_types::api::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, ContainerUser, HostIP, LinuxContainerUser,
    PodCondition, PodIP, PodStatus,
};
use peapod_types::phase::{conditions, pod_phase, qos_class};
use peapod_types::pod::{ContainerExt, DefaultedPod};

use crate::plan::should_restart;
use crate::snapshot::PodSnapshot;

/// What all of a pod's termination messages may hold together.
pub const POD_MESSAGE_LIMIT: usize = 12 * 1024;

/// The message of a pod failed by `activeDeadlineSeconds`.
pub const DEADLINE_MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

/// Why a container could not start, kept until it starts (the kubelet's reason cache).
pub type Reasons = HashMap<String, (String, String)>;

/// A phase the pod reached for good, with the status's reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    /// `Succeeded` or `Failed`.
    pub phase: &'static str,
    /// The status's reason and message, e.g. `DeadlineExceeded`.
    pub reason: Option<(String, String)>,
    /// The node refused the pod: nothing of it ever ran, and its status says only that.
    pub rejected: bool,
}

/// What the status is computed from.
pub struct StatusInput<'a> {
    /// The pod.
    pub pod: &'a DefaultedPod,
    /// The runtime's view of it.
    pub snap: &'a PodSnapshot,
    /// Start failures by container name: (reason, message).
    pub reasons: &'a Reasons,
    /// Whether an instance counts as started (its startup probe passed).
    pub started: &'a dyn Fn(&str) -> bool,
    /// Whether an instance is ready (started and its readiness probe passing).
    pub ready: &'a dyn Fn(&str) -> bool,
    /// The instance whose postStart hook is running: it is not yet running.
    pub hook_running: Option<&'a str>,
    /// The node's IP.
    pub host_ip: &'a str,
    /// When the pod started on this node.
    pub start_time: Timestamp,
    /// The terminal phase, once reached.
    pub terminal: Option<&'a Terminal>,
}

fn time(s: Option<&str>) -> Option<Time> {
    crate::clock::parse(s).map(Time)
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..Default::default()
    }
}

/// `state.terminated` of an exited (or lost) instance.
fn terminated(input: &StatusInput<'_>, s: &RtStatus) -> ContainerState {
    let (code, reason, runtime_message) = if s.state == RtState::Unknown {
        (
            137,
            "ContainerStatusUnknown".to_string(),
            "The container could not be located when the pod was terminated".to_string(),
        )
    } else {
        (s.exit_code, s.reason.clone(), s.message.clone())
    };
    let message = input
        .snap
        .message(&s.id)
        .filter(|m| !m.is_empty() && s.state != RtState::Unknown)
        .map(str::to_string)
        .unwrap_or(runtime_message);
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: code,
            signal: s.signal,
            reason: Some(reason).filter(|r| !r.is_empty()),
            message: Some(message).filter(|m| !m.is_empty()),
            started_at: time(s.started_at.as_deref()),
            finished_at: time(s.finished_at.as_deref()),
            container_id: Some(format!("peapod://{}", s.id)),
        }),
        ..Default::default()
    }
}

/// What a running container has (`convertContainerStatusResources`): CPU limit and
/// request as its cgroup has them (quota, shares), memory limit likewise, the memory request
/// and other resources as allocated; only the kinds (limits, requests) the spec has.
pub(crate) fn running_resources(
    c: &Container,
    s: &peapod_runtime::ContainerStatus,
) -> peapod_types::api::ResourceRequirements {
    use peapod_types::resize::cpu_quantity;
    let spec = c.resources.clone().unwrap_or_default();
    let now = s.resources.clone().unwrap_or_default();
    let limits = spec.limits.map(|mut l| {
        if let Some(q) = now.cpu_quota.filter(|_| l.contains_key("cpu")) {
            // Quota per 100 ms period, in microseconds.
            l.insert("cpu".into(), cpu_quantity(q / 100));
        }
        let given = l
            .get("memory")
            .and_then(|q| peapod_types::quantity::parse(&q.0));
        if let Some(m) = now
            .memory_limit_in_bytes
            .filter(|m| given.is_some_and(|g| g as i64 != *m))
        {
            l.insert("memory".into(), binary_quantity(m));
        }
        l
    });
    let requests = spec.requests.map(|mut r| {
        if let Some(shares) = now.cpu_shares.filter(|_| r.contains_key("cpu")) {
            let milli = (shares * 1000).div_ceil(1024) as i64;
            r.insert("cpu".into(), cpu_quantity(milli));
        }
        r
    });
    peapod_types::api::ResourceRequirements {
        limits,
        requests,
        claims: None,
    }
}

/// Bytes as a quantity in binary units, as the API prints `64Mi`.
fn binary_quantity(bytes: i64) -> k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    let units = [
        ("Ti", 1i64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    let text = units
        .iter()
        .find(|(_, n)| bytes != 0 && bytes % n == 0)
        .map(|(u, n)| format!("{}{u}", bytes / n))
        .unwrap_or_else(|| bytes.to_string());
    k8s_openapi::apimachinery::pkg::api::resource::Quantity(text)
}

/// The status of one container (`convertToAPIContainerStatus` with the reason cache).
fn container_status(input: &StatusInput<'_>, c: &Container, init: bool) -> ContainerStatus {
    let default = if input.pod.has_init_containers() {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let latest = input.snap.latest(&c.name);
    let mut st = ContainerStatus {
        name: c.name.clone(),
        image: c.image_name().to_string(),
        restart_count: latest.map_or(0, |s| s.metadata.attempt as i32),
        started: Some(false),
        ..Default::default()
    };
    let previous = || input.snap.previous(&c.name).map(|p| terminated(input, p));
    let cached = input.reasons.get(&c.name).filter(|_| {
        let succeeded_init = init
            && !c.is_sidecar()
            && latest.is_some_and(|s| s.state == RtState::Exited && s.exit_code == 0);
        !succeeded_init && should_restart(c, input.pod.restart_policy(), latest)
    });
    let Some(s) = latest else {
        st.state = Some(match cached {
            Some((r, m)) => waiting(r, Some(m.clone())),
            None => waiting(default, None),
        });
        return st;
    };
    st.image_id = s.image_ref.clone();
    st.container_id = Some(format!("peapod://{}", s.id));
    st.user = s.user.as_ref().map(|u| ContainerUser {
        linux: Some(LinuxContainerUser {
            uid: u.uid.into(),
            gid: u.gid.into(),
            supplemental_groups: Some(u.supplemental_groups.iter().map(|g| (*g).into()).collect()),
        }),
    });
    match s.state {
        RtState::Running if input.hook_running == Some(s.id.as_str()) => {
            st.state = Some(waiting("ContainerCreating", None));
            st.last_state = previous();
        }
        RtState::Running => {
            st.state = Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: time(s.started_at.as_deref()),
                }),
                ..Default::default()
            });
            st.last_state = previous();
            st.started = Some((input.started)(&s.id));
            st.ready = (!init || c.is_sidecar()) && (input.ready)(&s.id);
            st.resources = Some(running_resources(c, s));
        }
        RtState::Created => {
            st.state = Some(waiting("ContainerCreating", None));
            st.last_state = previous();
        }
        RtState::Exited | RtState::Unknown => {
            match cached {
                Some((reason, msg)) => {
                    st.state = Some(waiting(reason, Some(msg.clone())));
                    st.last_state = Some(terminated(input, s));
                }
                None => {
                    st.state = Some(terminated(input, s));
                    st.last_state = previous();
                }
            }
            st.ready = init && !c.is_sidecar() && s.state == RtState::Exited && s.exit_code == 0;
        }
    }
    st
}

/// Init and app container statuses, with the pod's 12 KiB of termination messages shared
/// evenly among them (the status manager's `normalizeStatus`).
pub fn container_statuses(input: &StatusInput<'_>) -> (Vec<ContainerStatus>, Vec<ContainerStatus>) {
    let mut inits: Vec<ContainerStatus> = input
        .pod
        .init_containers()
        .iter()
        .map(|c| container_status(input, c, true))
        .collect();
    let mut apps: Vec<ContainerStatus> = input
        .pod
        .containers()
        .iter()
        .map(|c| container_status(input, c, false))
        .collect();
    let per = POD_MESSAGE_LIMIT / (inits.len() + apps.len()).max(1);
    for st in inits.iter_mut().chain(apps.iter_mut()) {
        for state in [st.state.as_mut(), st.last_state.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(m) = state.terminated.as_mut().and_then(|t| t.message.as_mut()) {
                truncate_utf8(m, per);
            }
        }
    }
    (inits, apps)
}

/// Cuts `s` to at most `max` bytes, at a character boundary.
fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// When each condition last changed, by type.
#[derive(Debug, Clone, Default)]
pub struct ConditionTimes(HashMap<&'static str, (bool, Timestamp)>);

/// Whether `activeDeadlineSeconds` has passed at `now`.
pub fn deadline_exceeded(pod: &DefaultedPod, start: Timestamp, now: Timestamp) -> bool {
    pod.active_deadline()
        .is_some_and(|d| crate::clock::after(start, d) <= now)
}

/// The full `PodStatus` at `now`; `times` keeps each condition's last transition.
pub fn pod_status(
    input: &StatusInput<'_>,
    times: &mut ConditionTimes,
    now: Timestamp,
) -> PodStatus {
    // The kubelet's rejectPod: the phase, the reason and the QoS class, nothing else.
    if let Some(t) = input.terminal.filter(|t| t.rejected) {
        let (reason, message) = t.reason.clone().unzip();
        return PodStatus {
            phase: Some(t.phase.to_string()),
            reason,
            message,
            start_time: Some(Time(input.start_time)),
            qos_class: Some(qos_class(input.pod.spec()).to_string()),
            ..Default::default()
        };
    }
    let (inits, apps) = container_statuses(input);
    let pod = input.pod;
    let spec = pod.spec();
    let phase = match input.terminal {
        Some(t) => t.phase,
        None => {
            let all: Vec<ContainerStatus> = inits.iter().chain(apps.iter()).cloned().collect();
            pod_phase(spec, &all, false)
        }
    };
    let sandbox_ready = input
        .snap
        .latest_sandbox()
        .is_some_and(|s| s.state == SandboxState::Ready);
    let mut conds: Vec<PodCondition> = conditions(spec, &inits, &apps, phase, sandbox_ready)
        .into_iter()
        .map(|c| {
            let entry = times.0.entry(c.type_).or_insert((c.status, now));
            if entry.0 != c.status {
                *entry = (c.status, now);
            }
            PodCondition {
                type_: c.type_.to_string(),
                status: if c.status { "True" } else { "False" }.to_string(),
                reason: c.reason.map(str::to_string),
                message: c.message,
                last_transition_time: Some(Time(entry.1)),
                last_probe_time: None,
                observed_generation: None,
            }
        })
        .collect();
    // An eviction says so, as the eviction manager marks the pods it kills.
    if let Some(Terminal {
        reason: Some((reason, message)),
        ..
    }) = input.terminal
        && reason == "Evicted"
    {
        let entry = times.0.entry("DisruptionTarget").or_insert((true, now));
        conds.push(PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            reason: Some("TerminationByKubelet".into()),
            message: Some(message.clone()),
            last_transition_time: Some(Time(entry.1)),
            last_probe_time: None,
            observed_generation: None,
        });
    }
    let ips = pod_ips(pod, input.snap, input.host_ip);
    let pod_ips: Vec<PodIP> = ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect();
    let host_ip = input.host_ip.to_string();
    let (reason, message) = input.terminal.and_then(|t| t.reason.clone()).unzip();
    PodStatus {
        phase: Some(phase.to_string()),
        reason,
        message,
        conditions: Some(conds),
        host_ip: Some(host_ip.clone()).filter(|s| !s.is_empty()),
        host_ips: Some(vec![HostIP {
            ip: host_ip.clone(),
        }])
        .filter(|_| !host_ip.is_empty()),
        pod_ip: ips.first().cloned(),
        pod_ips: Some(pod_ips).filter(|v| !v.is_empty()),
        start_time: Some(Time(input.start_time)),
        qos_class: Some(qos_class(spec).to_string()),
        init_container_statuses: Some(inits).filter(|v| !v.is_empty()),
        container_statuses: Some(apps),
        ..Default::default()
    }
}

/// The pod's IPs: the node's with the host network, else its ready sandbox's.
pub fn pod_ips(pod: &DefaultedPod, snap: &PodSnapshot, host_ip: &str) -> Vec<String> {
    if pod.host_network() {
        return vec![host_ip.to_string()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
    }
    snap.ready_sandbox()
        .map(|s| {
            s.ip.clone()
                .into_iter()
                .chain(s.additional_ips.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
