//! Probe state per container instance, as the kubelet's prober workers keep it: when each
//! probe is next due, its run of successes or failures, and the result its thresholds
//! settled on. The startup probe gates the other two and stops once it has passed; a
//! liveness or startup failure puts the instance's probes on hold until a new instance
//! replaces it. Nothing here runs a probe: the worker runs the handlers and reports.

use std::collections::HashMap;

use jiff::Timestamp;
use peapod_types::api::Container;
use peapod_types::pod::{ContainerExt, ProbeKind, ProbeSpec};

use crate::clock::after;

/// One probe of one instance.
#[derive(Debug, Clone)]
struct ProbeState {
    spec: ProbeSpec,
    next_due: Timestamp,
    successes: u32,
    failures: u32,
    /// What the thresholds settled on; `None` before they did.
    result: Option<bool>,
    /// A run has been handed out and not reported yet.
    in_flight: bool,
}

/// The probes of one instance.
#[derive(Debug, Clone)]
struct InstanceProbes {
    probes: Vec<ProbeState>,
    /// A liveness or startup failure was reported: no more runs.
    on_hold: bool,
}

impl InstanceProbes {
    fn get(&self, kind: ProbeKind) -> Option<&ProbeState> {
        self.probes.iter().find(|p| p.spec.kind == kind)
    }

    fn started(&self) -> bool {
        self.get(ProbeKind::Startup)
            .is_none_or(|p| p.result == Some(true))
    }
}

/// A probe run to make now.
#[derive(Debug, Clone, PartialEq)]
pub struct DueProbe {
    /// The instance.
    pub container_id: String,
    /// The container's name.
    pub container: String,
    /// The probe.
    pub spec: ProbeSpec,
}

/// What reporting an outcome changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    /// The settled result changed (status, conditions or the plan may change).
    pub changed: bool,
    /// The result is now a failure.
    pub failed: bool,
}

/// Probe state of every running instance of a pod.
#[derive(Debug, Clone, Default)]
pub struct ProbeManager {
    instances: HashMap<String, (String, InstanceProbes)>,
}

impl ProbeManager {
    /// Keeps state for the running instances given as (container ID, spec, start time),
    /// creating it for new ones (first run after `initialDelaySeconds`), and forgets every
    /// other instance.
    pub fn sync<'a>(
        &mut self,
        running: impl IntoIterator<Item = (&'a str, &'a Container, Timestamp)>,
    ) {
        let mut keep = Vec::new();
        for (id, c, started) in running {
            keep.push(id.to_string());
            let specs = c.probes();
            if specs.is_empty() || self.instances.contains_key(id) {
                continue;
            }
            let probes = specs
                .into_iter()
                .map(|spec| ProbeState {
                    next_due: after(started, spec.initial_delay),
                    spec,
                    successes: 0,
                    failures: 0,
                    result: None,
                    in_flight: false,
                })
                .collect();
            self.instances.insert(
                id.to_string(),
                (
                    c.name.clone(),
                    InstanceProbes {
                        probes,
                        on_hold: false,
                    },
                ),
            );
        }
        self.instances.retain(|id, _| keep.contains(id));
    }

    /// The runs due at `now`, marked as in flight: startup until it passes, the others only
    /// once it has.
    pub fn due(&mut self, now: Timestamp) -> Vec<DueProbe> {
        let mut out = Vec::new();
        for (id, (name, inst)) in &mut self.instances {
            if inst.on_hold {
                continue;
            }
            let started = inst.started();
            for p in &mut inst.probes {
                let gated = match p.spec.kind {
                    ProbeKind::Startup => started,
                    _ => !started,
                };
                if gated || p.in_flight || p.next_due > now {
                    continue;
                }
                p.in_flight = true;
                out.push(DueProbe {
                    container_id: id.clone(),
                    container: name.clone(),
                    spec: p.spec.clone(),
                });
            }
        }
        out.sort_by(|a, b| (&a.container, a.spec.kind).cmp(&(&b.container, b.spec.kind)));
        out
    }

    /// Applies one outcome of `kind` for instance `id`, reported at `now`.
    pub fn report(&mut self, id: &str, kind: ProbeKind, ok: bool, now: Timestamp) -> Reported {
        let none = Reported {
            changed: false,
            failed: false,
        };
        let Some((_, inst)) = self.instances.get_mut(id) else {
            return none;
        };
        let Some(p) = inst.probes.iter_mut().find(|p| p.spec.kind == kind) else {
            return none;
        };
        p.in_flight = false;
        p.next_due = after(now, p.spec.period);
        let before = p.result;
        if ok {
            p.failures = 0;
            p.successes += 1;
            if p.successes >= p.spec.success_threshold {
                p.result = Some(true);
            }
        } else {
            p.successes = 0;
            p.failures += 1;
            if p.failures >= p.spec.failure_threshold {
                p.result = Some(false);
            }
        }
        let failed = p.result == Some(false) && !ok;
        if failed && kind != ProbeKind::Readiness {
            inst.on_hold = true;
        }
        Reported {
            changed: before != p.result,
            failed,
        }
    }

    /// Whether instance `id` counts as started: its startup probe passed, or it has none.
    pub fn started(&self, id: &str) -> bool {
        self.instances.get(id).is_none_or(|(_, i)| i.started())
    }

    /// Whether instance `id` is ready: started, and its readiness probe passing (or none).
    pub fn ready(&self, id: &str) -> bool {
        self.instances.get(id).is_none_or(|(_, i)| {
            i.started()
                && i.get(ProbeKind::Readiness)
                    .is_none_or(|p| p.result == Some(true))
        })
    }

    /// The settled result of probe `kind` of instance `id` (`None` while unknown, or when
    /// it has no such probe).
    pub fn result(&self, id: &str, kind: ProbeKind) -> Option<bool> {
        self.instances.get(id)?.1.get(kind)?.result
    }

    /// When the next run is due (runs in flight excluded).
    pub fn next_due(&self) -> Option<Timestamp> {
        self.instances
            .values()
            .filter(|(_, i)| !i.on_hold)
            .flat_map(|(_, i)| {
                let started = i.started();
                i.probes.iter().filter(move |p| {
                    let gated = match p.spec.kind {
                        ProbeKind::Startup => started,
                        _ => !started,
                    };
                    !gated && !p.in_flight
                })
            })
            .map(|p| p.next_due)
            .min()
    }
}

/// The event message of a failed run: `Liveness probe failed: …`.
pub fn failed_message(kind: ProbeKind, output: &str) -> String {
    format!("{} probe failed: {output}", kind.label())
}

#[cfg(test)]
#[path = "probes_tests.rs"]
mod tests;
