//! Unit tests of the plan: one per rule of `computePodActions`, init and sidecar ordering,
//! sandbox recreation and the crash-loop back-off.

use std::collections::HashMap;

use jiff::Timestamp;
use peapod_runtime::{ContainerState as S, NamespaceMode, SandboxState};
use peapod_types::backoff::{Backoff, BackoffTable};
use peapod_types::pod::{DefaultedPod, ProbeKind, Slot};

use super::*;
use crate::testutil::{Snap, pod, t};

struct Case {
    pod: DefaultedPod,
    snap: PodSnapshot,
    probes: HashMap<(String, ProbeKind), bool>,
    backoff: BackoffTable,
    now: Timestamp,
}

impl Case {
    fn new(pod: DefaultedPod, snap: Snap) -> Case {
        Case {
            pod,
            snap: snap.build(),
            probes: HashMap::new(),
            backoff: BackoffTable::new(Backoff::default()),
            now: t(100),
        }
    }

    fn probe(mut self, id: &str, kind: ProbeKind, ok: bool) -> Case {
        self.probes.insert((id.to_string(), kind), ok);
        self
    }

    fn steps(&self) -> Vec<Step> {
        let probe = |id: &str, k: ProbeKind| self.probes.get(&(id.to_string(), k)).copied();
        plan(&PlanInput {
            pod: &self.pod,
            snap: &self.snap,
            probe: &probe,
            backoff: &self.backoff,
            now: self.now,
        })
    }
}

fn apps(policy: &str, names: &[&str]) -> DefaultedPod {
    pod(policy, &[], names)
}

const START0: Step = Step::Start(Slot::App(0));

#[test]
fn a_new_pod_gets_a_sandbox_then_its_app_containers_together() {
    let c = Case::new(apps("Always", &["a", "b"]), Snap::default());
    assert_eq!(
        c.steps(),
        [
            Step::CreateSandbox {
                attempt: 0,
                changed: false
            },
            START0,
            Step::Start(Slot::App(1)),
        ]
    );
}

#[test]
fn a_new_pod_with_init_containers_starts_only_the_first() {
    let c = Case::new(pod("Always", &["i1", "i2"], &["a"]), Snap::default());
    assert_eq!(
        c.steps(),
        [
            Step::CreateSandbox {
                attempt: 0,
                changed: false
            },
            Step::Start(Slot::Init(0)),
        ]
    );
}

#[test]
fn init_containers_run_one_at_a_time_in_order() {
    let p = pod("Always", &["i1", "i2"], &["a", "b"]);
    let running = Snap::ready().run("i1", 0);
    assert!(
        Case::new(p.clone(), running).steps().is_empty(),
        "i1 still runs"
    );
    let first_done = Snap::ready().exit("i1", 0, 0, t(1));
    assert_eq!(
        Case::new(p.clone(), first_done).steps(),
        [Step::Start(Slot::Init(1))]
    );
    let all_done = Snap::ready().exit("i1", 0, 0, t(1)).exit("i2", 0, 0, t(2));
    assert_eq!(
        Case::new(p, all_done).steps(),
        [START0, Step::Start(Slot::App(1))],
        "app containers start together once every init container succeeded"
    );
}

#[test]
fn a_failed_init_container_is_retried_unless_the_pod_never_restarts() {
    for (policy, retried) in [("Always", true), ("OnFailure", true), ("Never", false)] {
        let p = pod(policy, &["i1", "i2"], &["a"]);
        let s = Snap::ready().exit("i1", 0, 0, t(1)).exit("i2", 0, 3, t(2));
        let steps = Case::new(p, s).steps();
        if retried {
            assert_eq!(steps, [Step::Start(Slot::Init(1))], "{policy}");
        } else {
            assert_eq!(steps, [Step::KillPod(PodKill::Done)], "{policy}");
        }
    }
}

#[test]
fn an_oom_killed_init_container_has_failed_even_with_exit_code_zero() {
    let p = pod("Never", &["i"], &["a"]);
    let mut s = Snap::ready().exit("i", 0, 0, t(1));
    s.last_mut().reason = "OOMKilled".into();
    assert_eq!(Case::new(p, s).steps(), [Step::KillPod(PodKill::Done)]);
}

#[test]
fn an_init_container_in_unknown_state_is_killed_then_started() {
    let p = pod("Always", &["i"], &["a"]);
    let s = Snap::ready().with("i", 0, S::Unknown, 0, None);
    let steps = Case::new(p, s).steps();
    assert!(matches!(
        &steps[0],
        Step::KillContainer { reason: KillReason::Unknown, message, .. }
            if message == "Init container is in \"unknown\" state, try killing it before restart"
    ));
    assert_eq!(steps[1], Step::Start(Slot::Init(0)));
}

#[test]
fn a_started_sidecar_lets_the_next_init_container_start() {
    let p = pod("Always", &["side", "i2"], &["a"]);
    let p = crate::testutil::sidecar(p, "side", "");
    let s = Snap::ready().run("side", 0);
    assert_eq!(Case::new(p, s).steps(), [Step::Start(Slot::Init(1))]);
}

#[test]
fn a_sidecar_with_a_startup_probe_holds_the_next_init_until_the_probe_passes() {
    let p = crate::testutil::sidecar(
        pod("Always", &["side", "i2"], &["a"]),
        "side",
        "startupProbe: {exec: {command: [x]}}",
    );
    let s = Snap::ready().run("side", 0);
    let id = s.id_of("side", 0);
    assert!(
        Case::new(p.clone(), s.clone()).steps().is_empty(),
        "probe not settled"
    );
    let passed = Case::new(p.clone(), s.clone()).probe(&id, ProbeKind::Startup, true);
    assert_eq!(passed.steps(), [Step::Start(Slot::Init(1))]);
    let failed = Case::new(p, s).probe(&id, ProbeKind::Startup, false);
    let steps = failed.steps();
    assert!(matches!(
        &steps[0],
        Step::KillContainer { reason: KillReason::StartupProbe, message, slot: Slot::Init(0), .. }
            if message == "Init container side failed startup probe"
    ));
    assert_eq!(steps[1], Step::Start(Slot::Init(0)));
}

#[test]
fn an_exited_sidecar_restarts_beside_running_apps_whatever_the_policy() {
    for policy in ["Always", "OnFailure", "Never"] {
        let p = crate::testutil::sidecar(pod(policy, &["side"], &["a"]), "side", "");
        let s = Snap::ready().exit("side", 0, 0, t(1)).run("a", 0);
        assert_eq!(
            Case::new(p, s).steps(),
            [Step::Start(Slot::Init(0))],
            "{policy}"
        );
    }
}

#[test]
fn a_sidecar_failing_liveness_is_restarted() {
    let p = crate::testutil::sidecar(
        pod("Always", &["side"], &["a"]),
        "side",
        "livenessProbe: {exec: {command: [x]}}",
    );
    let s = Snap::ready().run("side", 0).run("a", 0);
    let id = s.id_of("side", 0);
    let steps = Case::new(p, s)
        .probe(&id, ProbeKind::Liveness, false)
        .steps();
    assert!(matches!(
        &steps[0],
        Step::KillContainer { reason: KillReason::LivenessProbe, message, .. }
            if message == "Init container side failed liveness probe"
    ));
    assert_eq!(steps[1], Step::Start(Slot::Init(0)));
}

#[test]
fn once_apps_have_run_completed_init_containers_are_left_alone() {
    let p = pod("Always", &["i"], &["a"]);
    // The init container's instance is gone (removed), but the app runs.
    let s = Snap::ready().run("a", 0);
    assert!(Case::new(p, s).steps().is_empty());
}

#[test]
fn restart_matrix_of_app_containers() {
    for (policy, code, restarts) in [
        ("Always", 0, true),
        ("Always", 1, true),
        ("OnFailure", 0, false),
        ("OnFailure", 1, true),
        ("Never", 0, false),
        ("Never", 1, false),
    ] {
        let p = apps(policy, &["a", "b"]);
        let s = Snap::ready().exit("a", 0, code, t(1)).run("b", 0);
        let steps = Case::new(p, s).steps();
        assert_eq!(!steps.is_empty(), restarts, "{policy}/{code}: {steps:?}");
        if restarts {
            assert_eq!(steps, [START0], "{policy}/{code}");
        }
    }
}

#[test]
fn every_app_done_for_good_kills_the_pod_and_its_sidecars() {
    let p = crate::testutil::sidecar(pod("Never", &["side"], &["a"]), "side", "");
    let s = Snap::ready().run("side", 0).exit("a", 0, 0, t(5));
    assert_eq!(Case::new(p, s).steps(), [Step::KillPod(PodKill::Done)]);
    let p = apps("OnFailure", &["a"]);
    let s = Snap::ready().exit("a", 0, 0, t(5));
    assert_eq!(Case::new(p, s).steps(), [Step::KillPod(PodKill::Done)]);
}

#[test]
fn liveness_failure_kills_and_restarts_by_policy() {
    let p = apps("Always", &["a"]);
    let s = Snap::ready().run("a", 0);
    let id = s.id_of("a", 0);
    let steps = Case::new(p, s.clone())
        .probe(&id, ProbeKind::Liveness, false)
        .steps();
    assert_eq!(
        steps,
        [
            Step::KillContainer {
                id: id.clone(),
                slot: Slot::App(0),
                reason: KillReason::LivenessProbe,
                message: "Container a failed liveness probe, will be restarted".into(),
            },
            START0
        ]
    );
    // With Never the container is not restarted, so nothing keeps the pod: it is killed.
    let never = Case::new(apps("Never", &["a"]), s).probe(&id, ProbeKind::Liveness, false);
    assert_eq!(never.steps(), [Step::KillPod(PodKill::Done)]);
}

#[test]
fn startup_failure_kills_too_and_passing_probes_keep_the_container() {
    let p = apps("Always", &["a"]);
    let s = Snap::ready().run("a", 0);
    let id = s.id_of("a", 0);
    let steps = Case::new(p.clone(), s.clone())
        .probe(&id, ProbeKind::Startup, false)
        .steps();
    assert!(
        matches!(&steps[0], Step::KillContainer { reason: KillReason::StartupProbe, message, .. }
        if message == "Container a failed startup probe, will be restarted")
    );
    let fine = Case::new(p, s).probe(&id, ProbeKind::Liveness, true).probe(
        &id,
        ProbeKind::Readiness,
        false,
    );
    assert!(fine.steps().is_empty(), "a readiness failure never kills");
}

#[test]
fn an_app_in_unknown_state_is_killed_before_it_starts_again() {
    let s = Snap::ready().with("a", 0, S::Unknown, 0, None);
    let id = s.id_of("a", 0);
    let steps = Case::new(apps("Never", &["a"]), s).steps();
    assert_eq!(
        steps,
        [
            Step::KillContainer {
                id,
                slot: Slot::App(0),
                reason: KillReason::Unknown,
                message: "Container is in \"unknown\" state, try killing it before restart".into(),
            },
            START0
        ]
    );
}

#[test]
fn a_dead_sandbox_is_replaced_and_init_containers_run_again() {
    let p = pod("Always", &["i"], &["a"]);
    let s = Snap::dead().exit("i", 0, 0, t(1)).run("a", 0);
    assert_eq!(
        Case::new(p, s).steps(),
        [
            Step::KillPod(PodKill::SandboxChanged),
            Step::PurgeInitContainers,
            Step::CreateSandbox {
                attempt: 1,
                changed: true
            },
            Step::Start(Slot::Init(0)),
        ]
    );
}

#[test]
fn a_dead_sandbox_of_a_pod_that_never_restarts_is_not_replaced() {
    let s = Snap::dead().run("a", 0);
    assert_eq!(
        Case::new(apps("Never", &["a"]), s).steps(),
        [Step::KillPod(PodKill::SandboxChanged)]
    );
}

#[test]
fn a_dead_sandbox_is_not_replaced_when_nothing_is_left_to_run() {
    let s = Snap::dead().exit("a", 0, 0, t(1));
    assert_eq!(
        Case::new(apps("OnFailure", &["a"]), s).steps(),
        [Step::KillPod(PodKill::SandboxChanged)]
    );
}

#[test]
fn without_init_containers_a_new_sandbox_restarts_what_must_run() {
    let s = Snap::dead().exit("a", 0, 0, t(1)).exit("b", 0, 2, t(1));
    assert_eq!(
        Case::new(apps("OnFailure", &["a", "b"]), s).steps(),
        [
            Step::KillPod(PodKill::SandboxChanged),
            Step::PurgeInitContainers,
            Step::CreateSandbox {
                attempt: 1,
                changed: true
            },
            Step::Start(Slot::App(1)),
        ]
    );
}

#[test]
fn two_ready_sandboxes_or_a_changed_network_mean_a_new_sandbox() {
    let mut s = Snap::ready().run("a", 0);
    s.sandbox(SandboxState::Ready, 1, NamespaceMode::Pod);
    assert!(matches!(
        Case::new(apps("Always", &["a"]), s).steps()[..],
        [Step::KillPod(PodKill::SandboxChanged), ..]
    ));
    let mut host = Snap::default();
    host.sandbox(SandboxState::Ready, 0, NamespaceMode::Node);
    let (changed, attempt) = sandbox_changed(&apps("Always", &["a"]), &host.build());
    assert!(changed);
    assert_eq!(attempt, 1);
}

#[test]
fn crash_loop_back_off_waits_from_the_last_exit() {
    let p = apps("Always", &["a"]);
    let s = Snap::ready().exit("a", 0, 1, t(100));
    let mut c = Case::new(p, s);
    c.backoff.next("a", t(90), t(90));
    c.backoff.next("a", t(100), t(100));
    c.now = t(105);
    let uid = c.pod.uid().to_string();
    assert_eq!(
        c.steps(),
        [Step::BackOff {
            slot: Slot::App(0),
            until: t(120),
            message: format!("back-off 20s restarting failed container=a pod=web_default({uid})"),
        }]
    );
    c.now = t(120);
    assert_eq!(c.steps(), [START0]);
}

#[test]
fn a_container_that_ran_longer_than_the_reset_time_restarts_at_once() {
    let p = apps("Always", &["a"]);
    let s = Snap::ready().exit("a", 0, 1, t(1000));
    let mut c = Case::new(p, s);
    c.backoff.next("a", t(0), t(0));
    c.now = t(1000);
    assert_eq!(c.steps(), [START0]);
}

#[test]
fn purged_init_containers_start_without_back_off() {
    let p = pod("Always", &["i"], &["a"]);
    let s = Snap::dead().exit("i", 0, 1, t(100)).run("a", 0);
    let mut c = Case::new(p, s);
    c.backoff.next("i", t(100), t(100));
    c.now = t(101);
    assert_eq!(c.steps().last(), Some(&Step::Start(Slot::Init(0))));
}

#[test]
fn should_restart_by_state_and_policy() {
    use peapod_types::pod::RestartPolicy as P;
    let p = apps("Always", &["a"]);
    let c = p.container(Slot::App(0));
    let s = Snap::ready().exit("a", 0, 0, t(1)).build();
    let exited = s.latest("a");
    assert!(should_restart(c, P::Always, None));
    assert!(should_restart(c, P::Always, exited));
    assert!(!should_restart(c, P::OnFailure, exited));
    assert!(!should_restart(c, P::Never, exited));
    let running = Snap::ready().run("a", 0).build();
    assert!(!should_restart(c, P::Always, running.latest("a")));
    let created = Snap::ready().with("a", 0, S::Created, 0, None).build();
    assert!(should_restart(c, P::Never, created.latest("a")));
}

/// A pod of one app container `a` with `resources` (and `extra` fields).
fn sized(resources: &str, extra: &str) -> DefaultedPod {
    crate::testutil::pod_yaml(&format!(
        "  containers: [{{name: a, image: 'busybox:1', resources: {resources}{extra}}}]\n"
    ))
}

#[test]
fn a_resize_updates_a_running_container_in_place_with_the_pods_totals() {
    let old = sized("{limits: {cpu: 200m, memory: 64Mi}}", "");
    let mut s = Snap::ready().run("a", 0);
    s.last_mut().resources = Some(crate::config::container_resources(
        &old.spec().containers[0],
    ));
    let id = s.id_of("a", 0);
    // Unchanged: nothing to do.
    assert!(Case::new(old.clone(), s.clone()).steps().is_empty());
    let new = sized("{limits: {cpu: 400m, memory: 128Mi}}", "");
    let want = crate::config::container_resources(&new.spec().containers[0]);
    assert_eq!(want.cpu_quota, Some(40_000));
    assert_eq!(want.memory_limit_in_bytes, Some(128 << 20));
    let now = crate::config::container_resources(&old.spec().containers[0]);
    assert_eq!(
        Case::new(new.clone(), s).steps(),
        [Step::Resize {
            pod: crate::sandbox_config::pod_resources(&new, None),
            containers: vec![(id, Slot::App(0), want, now)],
        }]
    );
}

#[test]
fn a_resize_restarts_the_container_where_its_policy_says_so() {
    let policy = ", resizePolicy: [{resourceName: memory, restartPolicy: RestartContainer}]";
    let old = sized("{limits: {cpu: 200m, memory: 64Mi}}", policy);
    let mut s = Snap::ready().run("a", 0);
    s.last_mut().resources = Some(crate::config::container_resources(
        &old.spec().containers[0],
    ));
    let id = s.id_of("a", 0);
    // CPU alone is NotRequired: in place.
    let cpu = sized("{limits: {cpu: 300m, memory: 64Mi}}", policy);
    assert!(
        matches!(&Case::new(cpu, s.clone()).steps()[..], [Step::Resize { containers, .. }] if containers.len() == 1)
    );
    // Memory restarts it.
    let mem = sized("{limits: {cpu: 200m, memory: 32Mi}}", policy);
    let steps = Case::new(mem, s).steps();
    assert_eq!(
        steps[0],
        Step::KillContainer {
            id,
            slot: Slot::App(0),
            reason: KillReason::Resize,
            message: "Container a resize requires restart".into(),
        }
    );
    assert!(matches!(&steps[1], Step::Resize { containers, .. } if containers.is_empty()));
    assert_eq!(steps[2], START0);
}

#[test]
fn a_runtime_that_does_not_report_resources_is_not_resized() {
    let s = Snap::ready().run("a", 0);
    let new = sized("{limits: {cpu: 400m}}", "");
    assert!(Case::new(new, s).steps().is_empty());
}

#[test]
fn a_new_image_restarts_the_container_whatever_the_policy() {
    let p = crate::testutil::pod_yaml(
        "  restartPolicy: Never\n  containers: [{name: a, image: 'busybox:2'}]\n",
    );
    let s = Snap::ready().run("a", 0);
    let id = s.id_of("a", 0);
    assert_eq!(
        Case::new(p, s).steps(),
        [
            Step::KillContainer {
                id,
                slot: Slot::App(0),
                reason: KillReason::Changed,
                message: "Container a definition changed, will be restarted".into(),
            },
            START0,
        ]
    );
}
