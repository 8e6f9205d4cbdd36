//! The kubelet's rules for a pod's phase and conditions (`pkg/kubelet/kubelet_pods.go`
//! `getPhase`, `pkg/kubelet/status/generate.go`), as pure functions of the spec and the
//! container statuses.

use crate::api::{Container, ContainerStatus, PodSpec};

/// Whether `c` is a native sidecar (an init container with `restartPolicy: Always`).
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn find<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

fn state_of(s: &ContainerStatus) -> (bool, Option<i32>, bool) {
    let st = s.state.as_ref();
    let running = st.is_some_and(|st| st.running.is_some());
    let terminated = st
        .and_then(|st| st.terminated.as_ref())
        .map(|t| t.exit_code);
    let waiting = st.is_some_and(|st| st.waiting.is_some());
    (running, terminated, waiting)
}

fn last_exit(s: &ContainerStatus) -> Option<i32> {
    s.last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .map(|t| t.exit_code)
}

/// The pod phase: `Pending`, `Running`, `Succeeded` or `Failed`.
///
/// `statuses` holds init and app container statuses together; `pod_is_terminal` is true once
/// the kubelet has decided the pod will run no more containers (deleted, deadline exceeded).
pub fn pod_phase(
    spec: &PodSpec,
    statuses: &[ContainerStatus],
    pod_is_terminal: bool,
) -> &'static str {
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    let never = spec.restart_policy.as_deref() == Some("Never");
    let (mut pending_init, mut pending_sidecar, mut failed_init) = (0, 0, 0);
    for c in inits.iter().filter(|c| !is_sidecar(c)) {
        let Some(s) = find(statuses, &c.name) else {
            pending_init += 1;
            continue;
        };
        match state_of(s) {
            (true, _, _) => pending_init += 1,
            (_, Some(code), _) => failed_init += (code != 0) as u32,
            (_, _, true) => match last_exit(s) {
                Some(code) => failed_init += (code != 0) as u32,
                None => pending_init += 1,
            },
            _ => pending_init += 1,
        }
    }
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in inits.iter().filter(|c| is_sidecar(c)) {
        let Some(s) = find(statuses, &c.name) else {
            unknown += 1;
            continue;
        };
        match state_of(s) {
            (true, _, _) => {
                if s.started != Some(true) {
                    pending_sidecar += 1;
                }
                running += 1;
            }
            (_, Some(_), _) => {}
            (_, _, true) => {
                if last_exit(s).is_none() {
                    pending_sidecar += 1;
                    waiting += 1;
                }
            }
            _ => {
                pending_sidecar += 1;
                unknown += 1;
            }
        }
    }
    for c in &spec.containers {
        let Some(s) = find(statuses, &c.name) else {
            unknown += 1;
            continue;
        };
        match state_of(s) {
            (true, _, _) => running += 1,
            (_, Some(code), _) => {
                stopped += 1;
                succeeded += (code == 0) as u32;
            }
            (_, _, true) => {
                if last_exit(s).is_some() {
                    stopped += 1;
                } else {
                    waiting += 1;
                }
            }
            _ => unknown += 1,
        }
    }
    if failed_init > 0 && never {
        return "Failed";
    }
    let initialized = has_any_regular_started(spec, statuses);
    if pending_init > 0 || (pending_sidecar > 0 && !initialized) || waiting > 0 {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal {
            return if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        return match spec.restart_policy.as_deref() {
            Some("Always") | None => "Running",
            _ if stopped == succeeded => "Succeeded",
            Some("Never") => "Failed",
            _ => "Running",
        };
    }
    "Pending"
}

/// Whether any regular (app) container has ever started: the pod was initialized before.
pub fn has_any_regular_started(spec: &PodSpec, statuses: &[ContainerStatus]) -> bool {
    spec.containers.iter().any(|c| {
        find(statuses, &c.name).is_some_and(|s| {
            let st = s.state.as_ref();
            st.is_some_and(|st| st.running.is_some() || st.terminated.is_some())
                || last_exit(s).is_some()
        })
    })
}

/// A condition without its timestamps: `(type, status, reason, message)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The condition type, e.g. `Ready`.
    pub type_: &'static str,
    /// `True` or `False`.
    pub status: bool,
    /// A CamelCase reason, when false or notable.
    pub reason: Option<&'static str>,
    /// A human message, when false.
    pub message: Option<String>,
}

fn go_list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

/// The pod's conditions in the order they become true: PodScheduled,
/// PodReadyToStartContainers, Initialized, ContainersReady, Ready.
///
/// `init_statuses` and `statuses` are the init and app container statuses; `sandbox_ready`
/// says whether the sandbox and its network exist.
pub fn conditions(
    spec: &PodSpec,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    phase: &str,
    sandbox_ready: bool,
) -> Vec<Condition> {
    let mut all: Vec<ContainerStatus> = init_statuses.to_vec();
    all.extend_from_slice(statuses);
    let terminal = |t: &'static str| Condition {
        type_: t,
        status: false,
        reason: Some(if phase == "Succeeded" {
            "PodCompleted"
        } else {
            "PodFailed"
        }),
        message: None,
    };

    // Initialized.
    let mut unknown = Vec::new();
    let mut incomplete = Vec::new();
    for c in spec.init_containers.iter().flatten() {
        let Some(s) = find(init_statuses, &c.name) else {
            unknown.push(c.name.clone());
            continue;
        };
        if is_sidecar(c) {
            if s.started != Some(true) {
                incomplete.push(c.name.clone());
            }
        } else if s
            .state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .is_none_or(|t| t.exit_code != 0)
        {
            incomplete.push(c.name.clone());
        }
    }
    let initialized = if phase == "Succeeded" && unknown.is_empty() {
        Condition {
            type_: "Initialized",
            status: true,
            reason: Some("PodCompleted"),
            message: None,
        }
    } else if has_any_regular_started(spec, statuses) {
        Condition {
            type_: "Initialized",
            status: true,
            reason: None,
            message: None,
        }
    } else {
        let mut msgs = Vec::new();
        if !unknown.is_empty() {
            msgs.push(format!(
                "containers with unknown status: {}",
                go_list(&unknown)
            ));
        }
        if !incomplete.is_empty() {
            msgs.push(format!(
                "containers with incomplete status: {}",
                go_list(&incomplete)
            ));
        }
        if msgs.is_empty() {
            Condition {
                type_: "Initialized",
                status: true,
                reason: None,
                message: None,
            }
        } else {
            Condition {
                type_: "Initialized",
                status: false,
                reason: Some("ContainersNotInitialized"),
                message: Some(msgs.join(", ")),
            }
        }
    };

    // ContainersReady and Ready.
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_sidecar(c));
    for c in sidecars.chain(spec.containers.iter()) {
        match find(&all, &c.name) {
            Some(s) if !s.ready => unready.push(c.name.clone()),
            Some(_) => {}
            None => unknown.push(c.name.clone()),
        }
    }
    let ready = |t: &'static str| {
        if (phase == "Succeeded" && unknown.is_empty()) || phase == "Failed" {
            return terminal(t);
        }
        let mut msgs = Vec::new();
        if !unknown.is_empty() {
            msgs.push(format!(
                "containers with unknown status: {}",
                go_list(&unknown)
            ));
        }
        if !unready.is_empty() {
            msgs.push(format!(
                "containers with unready status: {}",
                go_list(&unready)
            ));
        }
        if msgs.is_empty() {
            Condition {
                type_: t,
                status: true,
                reason: None,
                message: None,
            }
        } else {
            Condition {
                type_: t,
                status: false,
                reason: Some("ContainersNotReady"),
                message: Some(msgs.join(", ")),
            }
        }
    };

    vec![
        Condition {
            type_: "PodScheduled",
            status: true,
            reason: None,
            message: None,
        },
        Condition {
            type_: "PodReadyToStartContainers",
            status: sandbox_ready,
            reason: None,
            message: None,
        },
        initialized,
        ready("ContainersReady"),
        ready("Ready"),
    ]
}

/// The pod's QoS class from its containers' requests and limits
/// (`pkg/apis/core/v1/helper/qos`).
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        let r = c.resources.as_ref();
        let requests = r.and_then(|r| r.requests.as_ref());
        let limits = r.and_then(|r| r.limits.as_ref());
        for res in ["cpu", "memory"] {
            let req = requests.and_then(|m| m.get(res));
            let lim = limits.and_then(|m| m.get(res));
            if req.is_some() || lim.is_some() {
                any = true;
            }
            match (req, lim) {
                (Some(q), Some(l)) if q.0 == l.0 => {}
                (None, Some(_)) => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    };

    fn spec(policy: &str, inits: &[&str], apps: &[&str]) -> PodSpec {
        let mk = |n: &&str| Container {
            name: n.to_string(),
            ..Default::default()
        };
        PodSpec {
            restart_policy: Some(policy.into()),
            init_containers: Some(inits.iter().map(mk).collect()),
            containers: apps.iter().map(mk).collect(),
            ..Default::default()
        }
    }

    fn running(name: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            started: Some(true),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn exited(name: &str, code: i32) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn backing_off(name: &str, code: i32) -> ContainerStatus {
        let mut s = exited(name, code);
        s.last_state = s.state.take();
        s.state = Some(ContainerState {
            waiting: Some(ContainerStateWaiting::default()),
            ..Default::default()
        });
        s
    }

    #[test]
    fn phases() {
        let a = spec("Always", &[], &["a"]);
        assert_eq!(pod_phase(&a, &[], false), "Pending");
        assert_eq!(pod_phase(&a, &[running("a")], false), "Running");
        assert_eq!(pod_phase(&a, &[exited("a", 0)], false), "Running");
        assert_eq!(pod_phase(&a, &[backing_off("a", 1)], false), "Running");
        let o = spec("OnFailure", &[], &["a"]);
        assert_eq!(pod_phase(&o, &[exited("a", 0)], false), "Succeeded");
        assert_eq!(pod_phase(&o, &[backing_off("a", 1)], false), "Running");
        let n = spec("Never", &[], &["a", "b"]);
        assert_eq!(
            pod_phase(&n, &[exited("a", 0), exited("b", 1)], false),
            "Failed"
        );
        assert_eq!(
            pod_phase(&n, &[exited("a", 0), running("b")], false),
            "Running"
        );
        let i = spec("Never", &["i"], &["a"]);
        assert_eq!(pod_phase(&i, &[running("i")], false), "Pending");
        assert_eq!(pod_phase(&i, &[exited("i", 1)], false), "Failed");
        let i = spec("OnFailure", &["i"], &["a"]);
        assert_eq!(pod_phase(&i, &[backing_off("i", 1)], false), "Pending");
    }

    #[test]
    fn condition_messages() {
        let s = spec("Always", &["i1", "i2"], &["a", "b"]);
        let c = conditions(&s, &[exited("i1", 0), running("i2")], &[], "Pending", true);
        assert_eq!(
            c[2].message.as_deref(),
            Some("containers with incomplete status: [i2]")
        );
        assert_eq!(
            c[3].message.as_deref(),
            Some("containers with unknown status: [a b]")
        );
        let c = conditions(
            &s,
            &[exited("i1", 0), exited("i2", 0)],
            &[running("a"), running("b")],
            "Running",
            true,
        );
        assert!(c[2].status);
        assert_eq!(
            c[4].message.as_deref(),
            Some("containers with unready status: [a b]")
        );
    }

    fn with_sidecar(policy: &str, apps: &[&str]) -> PodSpec {
        let mut s = spec(policy, &["side"], apps);
        s.init_containers.as_mut().unwrap()[0].restart_policy = Some("Always".into());
        s
    }

    fn not_started(name: &str) -> ContainerStatus {
        let mut s = running(name);
        s.started = Some(false);
        s
    }

    fn waiting_fresh(name: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting::default()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn phase_table_of_sidecars() {
        let s = with_sidecar("Never", &["a"]);
        // A sidecar counts as pending initialization until it has started.
        assert_eq!(pod_phase(&s, &[not_started("side")], false), "Pending");
        assert_eq!(
            pod_phase(&s, &[running("side")], false),
            "Pending",
            "the app has not started"
        );
        assert_eq!(
            pod_phase(&s, &[running("side"), running("a")], false),
            "Running"
        );
        // A terminated sidecar does not count: the app decides.
        assert_eq!(
            pod_phase(&s, &[exited("side", 137), exited("a", 0)], false),
            "Succeeded"
        );
        assert_eq!(
            pod_phase(&s, &[exited("side", 0), exited("a", 1)], false),
            "Failed"
        );
        // While the sidecar still runs beside a finished app the pod is Running (the
        // kubelet then kills it, and the phase follows).
        assert_eq!(
            pod_phase(&s, &[running("side"), exited("a", 0)], false),
            "Running"
        );
        // An app that waits to start keeps the pod Pending.
        assert_eq!(
            pod_phase(&s, &[running("side"), waiting_fresh("a")], false),
            "Pending"
        );
    }

    #[test]
    fn phase_table_of_restart_policies_when_everything_exited() {
        for (policy, codes, want) in [
            ("Always", [0, 0], "Running"),
            ("Always", [0, 1], "Running"),
            ("OnFailure", [0, 0], "Succeeded"),
            ("OnFailure", [0, 1], "Running"),
            ("Never", [0, 0], "Succeeded"),
            ("Never", [0, 1], "Failed"),
        ] {
            let s = spec(policy, &[], &["a", "b"]);
            let st = [exited("a", codes[0]), exited("b", codes[1])];
            assert_eq!(pod_phase(&s, &st, false), want, "{policy} {codes:?}");
        }
    }

    #[test]
    fn a_terminal_pod_succeeds_or_fails_by_its_exit_codes() {
        let s = spec("Always", &[], &["a", "b"]);
        assert_eq!(
            pod_phase(&s, &[exited("a", 0), exited("b", 0)], true),
            "Succeeded"
        );
        assert_eq!(
            pod_phase(&s, &[exited("a", 0), exited("b", 137)], true),
            "Failed"
        );
    }

    #[test]
    fn an_unknown_app_container_leaves_the_pod_pending() {
        let s = spec("Always", &[], &["a", "b"]);
        assert_eq!(pod_phase(&s, &[running("a")], false), "Pending");
    }

    #[test]
    fn qos_classes() {
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        let q = |v: &str| Quantity(v.to_string());
        let mut s = spec("Always", &[], &["a"]);
        assert_eq!(qos_class(&s), "BestEffort");
        s.containers[0].resources = Some(crate::api::ResourceRequirements {
            limits: Some([("cpu".into(), q("1")), ("memory".into(), q("1Gi"))].into()),
            requests: Some([("cpu".into(), q("1")), ("memory".into(), q("1Gi"))].into()),
            ..Default::default()
        });
        assert_eq!(qos_class(&s), "Guaranteed");
        s.containers[0].resources.as_mut().unwrap().requests =
            Some([("cpu".into(), q("500m"))].into());
        assert_eq!(qos_class(&s), "Burstable");
    }

    #[test]
    fn conditions_of_a_finished_pod() {
        let s = spec("Never", &["i"], &["a"]);
        let c = conditions(&s, &[exited("i", 0)], &[exited("a", 0)], "Succeeded", false);
        let by = |t: &str| c.iter().find(|x| x.type_ == t).unwrap().clone();
        assert_eq!(by("Initialized").reason, Some("PodCompleted"));
        assert!(by("Initialized").status);
        assert_eq!(by("Ready").reason, Some("PodCompleted"));
        assert!(!by("Ready").status);
        assert!(!by("PodReadyToStartContainers").status);
        let failed = conditions(&s, &[exited("i", 0)], &[exited("a", 1)], "Failed", false);
        assert_eq!(failed[4].reason, Some("PodFailed"));
    }
}
