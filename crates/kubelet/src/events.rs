//! Events, recorded as the kubelet records them: repeated events are folded into one with a
//! count and first and last times.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;

/// One event about the pod or one of its containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    /// CamelCase reason, e.g. `Started`.
    pub reason: String,
    /// Human message.
    pub message: String,
    /// The part of the pod it is about, e.g. `spec.containers{app}`; empty for the pod.
    pub field_path: String,
    /// How many times it happened.
    pub count: u32,
    /// First time (RFC 3339).
    pub first_timestamp: String,
    /// Last time (RFC 3339).
    pub last_timestamp: String,
    /// Reporting component.
    pub source: String,
}

/// The events of one pod, oldest first.
#[derive(Clone)]
pub struct Recorder {
    /// Events so far.
    pub events: Vec<Event>,
    clock: Arc<dyn Clock>,
}

/// How many distinct events a pod keeps.
const MAX_EVENTS: usize = 200;

impl Recorder {
    /// A recorder stamping events with `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Recorder {
        Recorder {
            events: Vec::new(),
            clock,
        }
    }

    /// Records an event, folding it into an identical earlier one.
    pub fn record(
        &mut self,
        type_: &str,
        reason: &str,
        field_path: &str,
        message: impl Into<String>,
    ) {
        let message = message.into();
        let now = self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        tracing::info!(reason, field_path, "{message}");
        if let Some(e) = self.events.iter_mut().find(|e| {
            e.reason == reason
                && e.message == message
                && e.field_path == field_path
                && e.type_ == type_
        }) {
            e.count += 1;
            e.last_timestamp = now;
            return;
        }
        if self.events.len() >= MAX_EVENTS {
            self.events.remove(0);
        }
        self.events.push(Event {
            type_: type_.into(),
            reason: reason.into(),
            message,
            field_path: field_path.into(),
            count: 1,
            first_timestamp: now.clone(),
            last_timestamp: now,
            source: "kubelet".into(),
        });
    }

    /// A normal event.
    pub fn normal(&mut self, reason: &str, field_path: &str, message: impl Into<String>) {
        self.record("Normal", reason, field_path, message)
    }

    /// A warning.
    pub fn warning(&mut self, reason: &str, field_path: &str, message: impl Into<String>) {
        self.record("Warning", reason, field_path, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;

    #[tokio::test(start_paused = true)]
    async fn repeated_events_fold_into_one_with_a_count() {
        let base = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let mut r = Recorder::new(Arc::new(TokioClock::starting_at(base)));
        r.warning("BackOff", "spec.containers{a}", "Back-off");
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        r.warning("BackOff", "spec.containers{a}", "Back-off");
        r.normal("Started", "spec.containers{a}", "Started container a");
        assert_eq!(r.events.len(), 2);
        let e = &r.events[0];
        assert_eq!((e.count, e.type_.as_str()), (2, "Warning"));
        assert_eq!(e.first_timestamp, "2023-11-14T22:13:20Z");
        assert_eq!(e.last_timestamp, "2023-11-14T22:13:23Z");
        assert_eq!(e.source, "kubelet");
    }

    #[test]
    fn a_pod_keeps_its_last_200_events() {
        let mut r = Recorder::new(Arc::new(crate::clock::SystemClock));
        for i in 0..250 {
            r.normal("Pulled", "", format!("event {i}"));
        }
        assert_eq!(r.events.len(), MAX_EVENTS);
        assert_eq!(r.events[0].message, "event 50");
    }
}
