//! Unit tests of the probe state: delays, periods, thresholds, gating and holds.

use peapod_types::api::Container;
use peapod_types::pod::ProbeKind;

use super::*;
use crate::testutil::t;

fn container(yaml: &str) -> Container {
    let mut c: Container = serde_yaml_ng::from_str(yaml).unwrap();
    peapod_types::defaults::container(&mut c);
    c
}

fn kinds(due: &[DueProbe]) -> Vec<ProbeKind> {
    due.iter().map(|d| d.spec.kind).collect()
}

#[test]
fn no_probe_before_the_initial_delay() {
    let c = container("{name: a, readinessProbe: {exec: {command: [x]}, initialDelaySeconds: 5}}");
    let mut m = ProbeManager::default();
    m.sync([("id", &c, t(0))]);
    assert!(m.due(t(4)).is_empty());
    assert_eq!(m.next_due(), Some(t(5)));
    assert_eq!(kinds(&m.due(t(5))), [ProbeKind::Readiness]);
}

#[test]
fn a_run_in_flight_is_not_handed_out_twice_and_the_period_follows_its_report() {
    let c = container("{name: a, livenessProbe: {exec: {command: [x]}, periodSeconds: 3}}");
    let mut m = ProbeManager::default();
    m.sync([("id", &c, t(0))]);
    assert_eq!(m.due(t(0)).len(), 1);
    assert!(m.due(t(1)).is_empty(), "still in flight");
    assert_eq!(m.next_due(), None);
    m.report("id", ProbeKind::Liveness, true, t(1));
    assert!(m.due(t(3)).is_empty());
    assert_eq!(m.due(t(4)).len(), 1);
}

#[test]
fn startup_gates_liveness_and_readiness_then_stops() {
    let c = container(
        "{name: a, startupProbe: {exec: {command: [x]}, periodSeconds: 1}, livenessProbe: {exec: {command: [x]}}, readinessProbe: {exec: {command: [x]}}}",
    );
    let mut m = ProbeManager::default();
    m.sync([("id", &c, t(0))]);
    assert!(!m.started("id"));
    assert!(!m.ready("id"));
    assert_eq!(kinds(&m.due(t(0))), [ProbeKind::Startup]);
    let r = m.report("id", ProbeKind::Startup, true, t(0));
    assert!(r.changed && !r.failed);
    assert!(m.started("id"));
    assert!(!m.ready("id"), "readiness has not passed yet");
    assert_eq!(
        kinds(&m.due(t(1))),
        [ProbeKind::Liveness, ProbeKind::Readiness],
        "the startup probe does not run again"
    );
    m.report("id", ProbeKind::Readiness, true, t(1));
    assert!(m.ready("id"));
}

#[test]
fn liveness_fails_at_the_threshold_and_holds() {
    let c = container(
        "{name: a, livenessProbe: {exec: {command: [x]}, periodSeconds: 1, failureThreshold: 3}}",
    );
    let mut m = ProbeManager::default();
    m.sync([("id", &c, t(0))]);
    for (i, expect_failed) in [(0, false), (1, false), (2, true)] {
        assert_eq!(m.due(t(i)).len(), 1);
        let r = m.report("id", ProbeKind::Liveness, false, t(i));
        assert_eq!(r.failed, expect_failed, "run {i}");
    }
    assert_eq!(m.result("id", ProbeKind::Liveness), Some(false));
    assert!(m.due(t(10)).is_empty(), "on hold until a new instance");
    // A new instance of the container starts over.
    m.sync([("id2", &c, t(11))]);
    assert_eq!(m.result("id", ProbeKind::Liveness), None);
    assert_eq!(m.due(t(11)).len(), 1);
}

#[test]
fn a_success_resets_the_failure_count() {
    let c = container(
        "{name: a, livenessProbe: {exec: {command: [x]}, periodSeconds: 1, failureThreshold: 2}}",
    );
    let mut m = ProbeManager::default();
    m.sync([("id", &c, t(0))]);
    for (i, ok) in [false, true, false, true].into_iter().enumerate() {
        m.due(t(i as u64));
        assert!(!m.report("id", ProbeKind::Liveness, ok, t(i as u64)).failed);
    }
    assert_eq!(m.result("id", ProbeKind::Liveness), Some(true));
}

#[test]
fn readiness_needs_its_success_threshold_and_flips_back() {
    let c = container(
        "{name: a, readinessProbe: {exec: {command: [x]}, periodSeconds: 1, successThreshold: 2, failureThreshold: 1}}",
    );
    let mut m = ProbeManager::default();
    m.sync([("id", &c, t(0))]);
    m.due(t(0));
    assert!(!m.report("id", ProbeKind::Readiness, true, t(0)).changed);
    assert!(!m.ready("id"));
    m.due(t(1));
    assert!(m.report("id", ProbeKind::Readiness, true, t(1)).changed);
    assert!(m.ready("id"));
    m.due(t(2));
    let r = m.report("id", ProbeKind::Readiness, false, t(2));
    assert!(r.changed && r.failed);
    assert!(!m.ready("id"));
    assert_eq!(
        m.due(t(3)).len(),
        1,
        "readiness failures do not hold the probes"
    );
}

#[test]
fn startup_failure_holds_every_probe() {
    let c = container(
        "{name: a, startupProbe: {exec: {command: [x]}, failureThreshold: 1}, readinessProbe: {exec: {command: [x]}}}",
    );
    let mut m = ProbeManager::default();
    m.sync([("id", &c, t(0))]);
    m.due(t(0));
    assert!(m.report("id", ProbeKind::Startup, false, t(0)).failed);
    assert_eq!(m.result("id", ProbeKind::Startup), Some(false));
    assert!(m.due(t(100)).is_empty());
    assert_eq!(m.next_due(), None);
}

#[test]
fn instances_without_probes_are_started_and_ready() {
    let c = container("{name: a}");
    let mut m = ProbeManager::default();
    m.sync([("id", &c, t(0))]);
    assert!(m.started("id") && m.ready("id"));
    assert!(m.due(t(0)).is_empty());
    assert_eq!(m.next_due(), None);
}

#[test]
fn reports_for_forgotten_instances_change_nothing() {
    let c = container("{name: a, livenessProbe: {exec: {command: [x]}}}");
    let mut m = ProbeManager::default();
    m.sync([("id", &c, t(0))]);
    m.sync([]);
    let r = m.report("id", ProbeKind::Liveness, false, t(0));
    assert!(!r.changed && !r.failed);
    assert_eq!(
        failed_message(ProbeKind::Liveness, "boom"),
        "Liveness probe failed: boom"
    );
}
