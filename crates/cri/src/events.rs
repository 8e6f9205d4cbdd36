//! `GetContainerEvents`: container and sandbox life-cycle events, found by relisting.
//!
//! The server tells what its own handlers did (creations, starts, stops, removals) at
//! once. Containers exit, and sandboxes lose their infra process, in their own
//! supervisors, so the server also lists what exists every [`PERIOD`] and compares it with
//! what it knew. The lister starts with the first subscriber and runs for the server's
//! life; every subscriber gets every event from its subscription on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use peapod_runtime::{ContainerFilter, ContainerState, SandboxFilter, SandboxState};
use tokio::sync::broadcast;

use crate::Backend;
use crate::convert;
use crate::proto as pb;

/// How often the lister looks.
pub const PERIOD: Duration = Duration::from_millis(500);

/// The life-cycle state of a container or sandbox, as events tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Made, not started.
    Created,
    /// Running (a ready sandbox).
    Running,
    /// Stopped (a sandbox that is not ready).
    Stopped,
}

/// The events that take `before` to `now` (object ID → phase), in ID order, each object's
/// in the order they happened. An object first seen running is created and started; one
/// first seen stopped is created, started and stopped.
pub fn diff(
    before: &HashMap<String, Phase>,
    now: &HashMap<String, Phase>,
) -> Vec<(String, pb::ContainerEventType)> {
    use pb::ContainerEventType as E;
    let mut out = Vec::new();
    let mut ids: Vec<&String> = now.keys().chain(before.keys()).collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        let steps: &[E] = match (before.get(id), now.get(id)) {
            (None, Some(Phase::Created)) => &[E::ContainerCreatedEvent],
            (None, Some(Phase::Running)) => &[E::ContainerCreatedEvent, E::ContainerStartedEvent],
            (None, Some(Phase::Stopped)) => &[
                E::ContainerCreatedEvent,
                E::ContainerStartedEvent,
                E::ContainerStoppedEvent,
            ],
            (Some(Phase::Created), Some(Phase::Running)) => &[E::ContainerStartedEvent],
            (Some(Phase::Created), Some(Phase::Stopped)) => {
                &[E::ContainerStartedEvent, E::ContainerStoppedEvent]
            }
            (Some(Phase::Running), Some(Phase::Stopped)) => &[E::ContainerStoppedEvent],
            (Some(Phase::Running), None) => &[E::ContainerStoppedEvent, E::ContainerDeletedEvent],
            (Some(_), None) => &[E::ContainerDeletedEvent],
            _ => &[],
        };
        out.extend(steps.iter().map(|e| (id.clone(), *e)));
    }
    out
}

/// Every container and sandbox now, by ID.
fn snapshot<R: Backend>(rt: &R) -> HashMap<String, Phase> {
    let mut out = HashMap::new();
    for c in rt
        .list_containers(&ContainerFilter::default())
        .unwrap_or_default()
    {
        let phase = match c.state {
            ContainerState::Created => Phase::Created,
            ContainerState::Running => Phase::Running,
            ContainerState::Exited | ContainerState::Unknown => Phase::Stopped,
        };
        out.insert(c.id, phase);
    }
    for s in rt
        .list_pod_sandbox(&SandboxFilter::default())
        .unwrap_or_default()
    {
        let phase = match s.state {
            SandboxState::Ready => Phase::Running,
            SandboxState::NotReady => Phase::Stopped,
        };
        out.insert(s.id, phase);
    }
    out
}

/// The event about `id`, with its sandbox's status and that sandbox's containers.
fn response<R: Backend>(
    rt: &R,
    id: &str,
    kind: pb::ContainerEventType,
) -> pb::ContainerEventResponse {
    let sandbox_id = match rt.container_status(id) {
        Ok(c) => c.sandbox_id,
        Err(_) => id.to_string(),
    };
    let sandbox = rt.pod_sandbox_status(&sandbox_id).ok();
    let containers = rt
        .list_containers(&ContainerFilter {
            pod_sandbox_id: Some(sandbox_id),
            ..Default::default()
        })
        .unwrap_or_default();
    let image_id = |name: &str| {
        rt.image_status(name)
            .ok()
            .flatten()
            .map(|i| i.id)
            .unwrap_or_default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default();
    pb::ContainerEventResponse {
        container_id: id.to_string(),
        container_event_type: kind as i32,
        created_at: now,
        pod_sandbox_status: sandbox.as_ref().map(convert::sandbox_status),
        containers_statuses: containers
            .iter()
            .map(|c| convert::container_status(c, &image_id(&c.image)))
            .collect(),
    }
}

/// What the server knows of every object's phase, and the subscribers to its changes.
pub struct Hub {
    tx: broadcast::Sender<pb::ContainerEventResponse>,
    state: Mutex<HashMap<String, Phase>>,
    lister: OnceLock<()>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            tx: broadcast::channel(1024).0,
            state: Mutex::default(),
            lister: OnceLock::new(),
        }
    }
}

impl Hub {
    /// A new subscriber; the first one starts the lister over `rt`.
    pub fn subscribe<R: Backend>(
        self: &Arc<Self>,
        rt: Arc<R>,
    ) -> broadcast::Receiver<pb::ContainerEventResponse> {
        let rx = self.tx.subscribe();
        self.lister.get_or_init(|| {
            *self.state.lock().unwrap() = snapshot(&*rt);
            let hub = Arc::clone(self);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(PERIOD).await;
                    let now = snapshot(&*rt);
                    let mut ids: Vec<String> = hub.state.lock().unwrap().keys().cloned().collect();
                    ids.extend(now.keys().cloned());
                    ids.sort();
                    ids.dedup();
                    for id in ids {
                        hub.observe(&*rt, &id, now.get(&id).copied());
                    }
                }
            });
        });
        rx
    }

    /// Object `id` is now in `phase` (`None`: removed); tells subscribers what changed.
    /// Handlers call it after what they did, so that changes too quick for the lister are
    /// told too.
    pub fn observe<R: Backend>(&self, rt: &R, id: &str, phase: Option<Phase>) {
        let events = {
            let mut state = self.state.lock().unwrap();
            let before: HashMap<String, Phase> = state
                .get(id)
                .map(|p| (id.to_string(), *p))
                .into_iter()
                .collect();
            let now: HashMap<String, Phase> =
                phase.map(|p| (id.to_string(), p)).into_iter().collect();
            match phase {
                Some(p) => state.insert(id.to_string(), p),
                None => state.remove(id),
            };
            diff(&before, &now)
        };
        if self.tx.receiver_count() == 0 {
            return;
        }
        for (id, kind) in events {
            let _ = self.tx.send(response(rt, &id, kind));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::ContainerEventType as E;

    fn map(items: &[(&str, Phase)]) -> HashMap<String, Phase> {
        items.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn changes_between_two_lists_become_events() {
        let before = map(&[
            ("a", Phase::Created),
            ("b", Phase::Running),
            ("c", Phase::Stopped),
            ("d", Phase::Running),
            ("g", Phase::Running),
        ]);
        let now = map(&[
            ("a", Phase::Running),
            ("b", Phase::Stopped),
            ("d", Phase::Running),
            ("e", Phase::Running),
            ("f", Phase::Stopped),
        ]);
        let got: Vec<(String, E)> = diff(&before, &now);
        let want = [
            ("a", E::ContainerStartedEvent),
            ("b", E::ContainerStoppedEvent),
            ("c", E::ContainerDeletedEvent),
            ("e", E::ContainerCreatedEvent),
            ("e", E::ContainerStartedEvent),
            ("f", E::ContainerCreatedEvent),
            ("f", E::ContainerStartedEvent),
            ("f", E::ContainerStoppedEvent),
            ("g", E::ContainerStoppedEvent),
            ("g", E::ContainerDeletedEvent),
        ];
        assert_eq!(
            got,
            want.iter()
                .map(|(i, e)| (i.to_string(), *e))
                .collect::<Vec<_>>()
        );
        assert!(diff(&now, &now).is_empty());
    }
}
