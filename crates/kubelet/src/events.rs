//! Events, recorded as the kubelet records them: repeated events are folded into one with a
//! count and first and last times.

use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Recorder {
    /// Events so far.
    pub events: Vec<Event>,
}

/// How many distinct events a pod keeps.
const MAX_EVENTS: usize = 200;

impl Recorder {
    /// Records an event, folding it into an identical earlier one.
    pub fn record(
        &mut self,
        type_: &str,
        reason: &str,
        field_path: &str,
        message: impl Into<String>,
    ) {
        let message = message.into();
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
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
