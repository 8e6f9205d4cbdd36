//! Unit tests of the status: container states and reasons, restart counts, readiness,
//! termination messages, phases, conditions and their transition times.

use jiff::Timestamp;
use peapod_runtime::ContainerState as S;
use serde_json::{Value, json};

use super::*;
use crate::testutil::{Snap, pod, pod_yaml, sidecar, t};

struct Case {
    pod: DefaultedPod,
    snap: PodSnapshot,
    reasons: Reasons,
    unready: Vec<String>,
    not_started: Vec<String>,
    hook: Option<String>,
    terminal: Option<Terminal>,
}

impl Case {
    fn new(pod: DefaultedPod, snap: Snap) -> Case {
        Case {
            pod,
            snap: snap.build(),
            reasons: Reasons::new(),
            unready: Vec::new(),
            not_started: Vec::new(),
            hook: None,
            terminal: None,
        }
    }

    fn status(&self) -> Value {
        self.status_at(&mut ConditionTimes::default(), t(50))
    }

    fn status_at(&self, times: &mut ConditionTimes, now: Timestamp) -> Value {
        let started = |id: &str| !self.not_started.iter().any(|x| x == id);
        let ready = |id: &str| started(id) && !self.unready.iter().any(|x| x == id);
        let input = StatusInput {
            pod: &self.pod,
            snap: &self.snap,
            reasons: &self.reasons,
            started: &started,
            ready: &ready,
            hook_running: self.hook.as_deref(),
            host_ip: "192.0.2.1",
            start_time: t(0),
            terminal: self.terminal.as_ref(),
        };
        serde_json::to_value(pod_status(&input, times, now)).unwrap()
    }
}

fn cs<'a>(status: &'a Value, name: &str) -> &'a Value {
    for key in ["containerStatuses", "initContainerStatuses"] {
        if let Some(s) = status[key]
            .as_array()
            .and_then(|l| l.iter().find(|s| s["name"] == name))
        {
            return s;
        }
    }
    panic!("no status for {name}: {status}");
}

fn cond<'a>(status: &'a Value, ty: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == ty)
        .unwrap()
}

#[test]
fn containers_without_instances_wait_with_the_default_reason() {
    let plain = Case::new(pod("Always", &[], &["a"]), Snap::default()).status();
    assert_eq!(
        cs(&plain, "a")["state"]["waiting"]["reason"],
        "ContainerCreating"
    );
    assert_eq!(plain["phase"], "Pending");
    assert_eq!(cond(&plain, "PodReadyToStartContainers")["status"], "False");
    let init = Case::new(pod("Always", &["i"], &["a"]), Snap::ready()).status();
    assert_eq!(
        cs(&init, "a")["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    assert_eq!(
        cs(&init, "i")["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    assert_eq!(cond(&init, "PodReadyToStartContainers")["status"], "True");
    assert_eq!(cond(&init, "Initialized")["status"], "False");
}

#[test]
fn a_running_instance_reports_start_readiness_restarts_and_last_state() {
    let snap = Snap::ready().exit("a", 0, 3, t(5)).run("a", 1);
    let mut c = Case::new(pod("Always", &[], &["a"]), snap);
    let s = c.status();
    let a = cs(&s, "a");
    assert!(a["state"]["running"]["startedAt"].is_string());
    assert_eq!(a["restartCount"], 1);
    assert_eq!(a["lastState"]["terminated"]["exitCode"], 3);
    assert_eq!(a["ready"], true);
    assert_eq!(a["started"], true);
    assert!(
        a["containerID"]
            .as_str()
            .unwrap()
            .starts_with("peapod://a-1-")
    );
    assert_eq!(s["phase"], "Running");
    assert_eq!(cond(&s, "Ready")["status"], "True");
    c.unready.push(c.snap.latest("a").unwrap().id.clone());
    let s = c.status();
    assert_eq!(cs(&s, "a")["ready"], false);
    assert_eq!(
        cond(&s, "ContainersReady")["message"],
        "containers with unready status: [a]"
    );
    c.not_started.push(c.snap.latest("a").unwrap().id.clone());
    assert_eq!(cs(&c.status(), "a")["started"], false);
}

#[test]
fn a_running_instance_whose_post_start_hook_runs_is_still_being_created() {
    let snap = Snap::ready().run("a", 0);
    let mut c = Case::new(pod("Always", &[], &["a"]), snap);
    c.hook = Some(c.snap.latest("a").unwrap().id.clone());
    let s = c.status();
    assert_eq!(
        cs(&s, "a")["state"]["waiting"]["reason"],
        "ContainerCreating"
    );
    assert_eq!(s["phase"], "Pending");
}

#[test]
fn a_cached_start_failure_shows_as_waiting_with_the_exit_as_last_state() {
    let snap = Snap::ready().exit("a", 2, 1, t(5));
    let mut c = Case::new(pod("Always", &[], &["a"]), snap);
    c.reasons.insert(
        "a".into(),
        (
            "CrashLoopBackOff".into(),
            "back-off 20s restarting failed container=a".into(),
        ),
    );
    let s = c.status();
    let a = cs(&s, "a");
    assert_eq!(a["state"]["waiting"]["reason"], "CrashLoopBackOff");
    assert_eq!(
        a["state"]["waiting"]["message"],
        "back-off 20s restarting failed container=a"
    );
    assert_eq!(a["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(a["restartCount"], 2);
    assert_eq!(
        s["phase"], "Running",
        "a container that will restart keeps the pod running"
    );
}

#[test]
fn a_cached_reason_is_shown_for_a_container_that_never_ran() {
    let mut c = Case::new(pod("Always", &[], &["a"]), Snap::ready());
    c.reasons
        .insert("a".into(), ("ErrImagePull".into(), "not found".into()));
    let s = c.status();
    assert_eq!(
        cs(&s, "a")["state"]["waiting"],
        json!({"reason": "ErrImagePull", "message": "not found"})
    );
    assert_eq!(s["phase"], "Pending");
}

#[test]
fn a_cached_reason_is_ignored_where_nothing_will_restart() {
    let snap = Snap::ready().exit("a", 0, 1, t(5));
    let mut c = Case::new(pod("Never", &[], &["a"]), snap);
    c.reasons
        .insert("a".into(), ("PostStartHookError".into(), "hook".into()));
    let s = c.status();
    assert_eq!(cs(&s, "a")["state"]["terminated"]["exitCode"], 1);
    assert_eq!(s["phase"], "Failed");
}

#[test]
fn an_exited_instance_shows_its_termination_message() {
    let snap = Snap::ready().exit("a", 0, 0, t(5));
    let mut c = Case::new(pod("OnFailure", &[], &["a"]), snap);
    let id = c.snap.latest("a").unwrap().id.clone();
    c.snap.messages.insert(id, "bye".into());
    let s = c.status();
    let term = &cs(&s, "a")["state"]["terminated"];
    assert_eq!(term["message"], "bye");
    assert_eq!(term["reason"], "Completed");
    assert_eq!(s["phase"], "Succeeded");
    assert_eq!(cond(&s, "Ready")["reason"], "PodCompleted");
}

#[test]
fn a_lost_instance_is_terminated_with_137() {
    let snap = Snap::ready().with("a", 0, S::Unknown, 0, None);
    let s = Case::new(pod("Never", &[], &["a"]), snap).status();
    let term = &cs(&s, "a")["state"]["terminated"];
    assert_eq!(term["exitCode"], 137);
    assert_eq!(term["reason"], "ContainerStatusUnknown");
    assert_eq!(
        term["message"],
        "The container could not be located when the pod was terminated"
    );
}

#[test]
fn init_containers_are_ready_once_completed_and_sidecars_by_their_probes() {
    let p = sidecar(pod("Always", &["i", "side"], &["a"]), "side", "");
    let snap = Snap::ready()
        .exit("i", 0, 0, t(1))
        .run("side", 0)
        .run("a", 0);
    let mut c = Case::new(p, snap);
    let s = c.status();
    assert_eq!(cs(&s, "i")["ready"], true);
    assert_eq!(cs(&s, "side")["ready"], true);
    assert_eq!(cond(&s, "Initialized")["status"], "True");
    c.unready.push(c.snap.latest("side").unwrap().id.clone());
    let s = c.status();
    assert_eq!(cs(&s, "side")["ready"], false);
    assert_eq!(cond(&s, "Ready")["status"], "False");
}

#[test]
fn a_succeeded_init_container_never_shows_a_cached_reason() {
    let p = pod("Always", &["i"], &["a"]);
    let mut c = Case::new(p, Snap::ready().exit("i", 0, 0, t(1)));
    c.reasons
        .insert("i".into(), ("CrashLoopBackOff".into(), "x".into()));
    let s = c.status();
    assert_eq!(cs(&s, "i")["state"]["terminated"]["reason"], "Completed");
}

#[test]
fn termination_messages_share_twelve_kib() {
    let names: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut snap = Snap::ready();
    for n in &refs {
        snap = snap.exit(n, 0, 1, t(1));
    }
    let mut c = Case::new(pod("Never", &[], &refs), snap);
    for n in &refs {
        let id = c.snap.latest(n).unwrap().id.clone();
        c.snap.messages.insert(id, "é".repeat(3000));
    }
    let s = c.status();
    for n in &refs {
        let m = cs(&s, n)["state"]["terminated"]["message"]
            .as_str()
            .unwrap();
        assert!(m.len() <= POD_MESSAGE_LIMIT / 5, "{}", m.len());
        assert!(m.len() >= POD_MESSAGE_LIMIT / 5 - 1);
    }
}

#[test]
fn an_evicted_pod_carries_the_disruption_target_condition() {
    let snap = Snap::ready().run("a", 0);
    let mut c = Case::new(pod("Always", &[], &["a"]), snap);
    let message = "Usage of EmptyDir volume \"cache\" exceeds the limit \"5Mi\". ";
    c.terminal = Some(Terminal {
        phase: "Failed",
        reason: Some(("Evicted".into(), message.into())),
        rejected: false,
    });
    let s = c.status();
    assert_eq!(
        (s["phase"].as_str(), s["reason"].as_str()),
        (Some("Failed"), Some("Evicted"))
    );
    let d = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "DisruptionTarget")
        .expect("a DisruptionTarget condition");
    assert_eq!(d["status"], "True");
    assert_eq!(d["reason"], "TerminationByKubelet");
    assert_eq!(d["message"], message);
    // Other terminal reasons do not have it.
    c.terminal = Some(Terminal {
        phase: "Failed",
        reason: Some(("DeadlineExceeded".into(), DEADLINE_MESSAGE.into())),
        rejected: false,
    });
    let s = c.status();
    assert!(
        !s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "DisruptionTarget")
    );
}

#[test]
fn a_terminal_phase_sticks_with_its_reason() {
    let snap = Snap::ready().run("a", 0);
    let mut c = Case::new(pod("Always", &[], &["a"]), snap);
    c.terminal = Some(Terminal {
        phase: "Failed",
        reason: Some(("DeadlineExceeded".into(), DEADLINE_MESSAGE.into())),
        rejected: false,
    });
    let s = c.status();
    assert_eq!(s["phase"], "Failed");
    assert_eq!(s["reason"], "DeadlineExceeded");
    assert_eq!(s["message"], DEADLINE_MESSAGE);
    assert_eq!(cond(&s, "Ready")["reason"], "PodFailed");
}

#[test]
fn condition_times_change_only_with_the_condition() {
    let mut times = ConditionTimes::default();
    let c = Case::new(pod("Always", &[], &["a"]), Snap::ready());
    let first = c.status_at(&mut times, t(10));
    let again = c.status_at(&mut times, t(20));
    assert_eq!(
        cond(&first, "Ready")["lastTransitionTime"],
        cond(&again, "Ready")["lastTransitionTime"]
    );
    let c = Case::new(pod("Always", &[], &["a"]), Snap::ready().run("a", 0));
    let later = c.status_at(&mut times, t(30));
    assert_ne!(
        cond(&first, "Ready")["lastTransitionTime"],
        cond(&later, "Ready")["lastTransitionTime"]
    );
    assert_eq!(
        cond(&first, "PodScheduled")["lastTransitionTime"],
        cond(&later, "PodScheduled")["lastTransitionTime"]
    );
}

#[test]
fn pod_ips_come_from_the_ready_sandbox_or_the_node() {
    let s = Case::new(pod("Always", &[], &["a"]), Snap::ready()).status();
    assert_eq!(s["podIP"], "10.0.0.2");
    assert_eq!(s["hostIP"], "192.0.2.1");
    assert_eq!(s["qosClass"], "BestEffort");
    let dead = Case::new(pod("Always", &[], &["a"]), Snap::dead()).status();
    assert!(dead["podIP"].is_null());
    let host = pod_yaml("  hostNetwork: true\n  containers: [{name: a, image: b}]\n");
    let s = Case::new(host, Snap::ready()).status();
    assert_eq!(s["podIPs"], json!([{"ip": "192.0.2.1"}]));
}

#[test]
fn active_deadline_counts_from_the_start() {
    let p = pod_yaml("  activeDeadlineSeconds: 5\n  containers: [{name: a, image: b}]\n");
    assert!(!deadline_exceeded(&p, t(0), t(4)));
    assert!(deadline_exceeded(&p, t(0), t(5)));
    assert!(!deadline_exceeded(
        &pod("Always", &[], &["a"]),
        t(0),
        t(10_000)
    ));
}
