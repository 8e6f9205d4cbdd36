//! One look at the runtime per pass of the sync loop: the pod's sandboxes and container
//! instances, newest first (the kubelet's `PodStatus`), and what is read once from an
//! exited instance (its termination message). The plan and the status are both computed
//! from the same snapshot.

use std::collections::HashMap;

use peapod_runtime::{
    ContainerFilter, ContainerState, ContainerStatus, RuntimeService, SandboxFilter, SandboxState,
    SandboxStatus,
};
use peapod_types::api::Container;
use peapod_types::pod::ContainerExt;

/// The pod as the runtime has it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodSnapshot {
    /// Sandboxes, newest first.
    pub sandboxes: Vec<SandboxStatus>,
    /// Container instances of every sandbox, newest first.
    pub containers: Vec<ContainerStatus>,
    /// Termination messages of exited instances, by container ID.
    pub messages: HashMap<String, String>,
}

impl PodSnapshot {
    /// The newest sandbox.
    pub fn latest_sandbox(&self) -> Option<&SandboxStatus> {
        self.sandboxes.first()
    }

    /// The newest sandbox, if it is ready.
    pub fn ready_sandbox(&self) -> Option<&SandboxStatus> {
        self.latest_sandbox()
            .filter(|s| s.state == SandboxState::Ready)
    }

    /// The instances of container `name`, newest first.
    pub fn instances<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a ContainerStatus> + use<'a, 'n> {
        self.containers
            .iter()
            .filter(move |c| c.metadata.name == name)
    }

    /// The newest instance of container `name` (`FindContainerStatusByName`).
    pub fn latest(&self, name: &str) -> Option<&ContainerStatus> {
        self.instances(name).next()
    }

    /// The instance before the newest one.
    pub fn previous(&self, name: &str) -> Option<&ContainerStatus> {
        self.instances(name).nth(1)
    }

    /// The newest exited instance of container `name`.
    pub fn latest_exited(&self, name: &str) -> Option<&ContainerStatus> {
        self.instances(name)
            .find(|c| c.state == ContainerState::Exited)
    }

    /// Instances whose process runs.
    pub fn running(&self) -> impl Iterator<Item = &ContainerStatus> {
        self.containers
            .iter()
            .filter(|c| c.state == ContainerState::Running)
    }

    /// The termination message of instance `id`, if one was read.
    pub fn message(&self, id: &str) -> Option<&str> {
        self.messages.get(id).map(String::as_str)
    }
}

/// Reads the snapshot of a pod whose sandboxes are `sandbox_ids` (or, when `None`, every
/// sandbox labelled with `uid`). Termination messages already in `messages` are reused;
/// new ones are read for exited instances of the containers in `spec`.
pub fn take<R: RuntimeService>(
    rt: &R,
    uid: &str,
    sandbox_ids: Option<&[String]>,
    specs: &[&Container],
    messages: &mut HashMap<String, String>,
) -> PodSnapshot {
    let mut sandboxes: Vec<SandboxStatus> = match sandbox_ids {
        Some(ids) => ids
            .iter()
            .filter_map(|id| rt.pod_sandbox_status(id).ok())
            .collect(),
        None => rt
            .list_pod_sandbox(&SandboxFilter::pod(uid))
            .unwrap_or_default(),
    };
    sandboxes.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    let mut containers: Vec<ContainerStatus> = Vec::new();
    for s in &sandboxes {
        containers.extend(
            rt.list_containers(&ContainerFilter::sandbox(&s.id))
                .unwrap_or_default(),
        );
    }
    containers.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    messages.retain(|id, _| containers.iter().any(|c| c.id == *id));
    for c in &containers {
        let exited = matches!(c.state, ContainerState::Exited | ContainerState::Unknown);
        if !exited || messages.contains_key(&c.id) {
            continue;
        }
        if let Some(spec) = specs.iter().find(|s| s.name == c.metadata.name) {
            messages.insert(c.id.clone(), termination_message(spec, c));
        }
    }
    PodSnapshot {
        sandboxes,
        containers,
        messages: messages.clone(),
    }
}

/// The kubelet's limits: a message file is read up to 4 KiB; a log fallback takes the last
/// 80 lines, at most 2 KiB.
const MAX_MESSAGE: usize = 4096;
const MAX_LOG_LINES: usize = 80;
const MAX_LOG_BYTES: usize = 2048;

/// `state.terminated.message`: the termination message file, else (with
/// `FallbackToLogsOnError` and a failure) the end of the log, else the runtime's message.
pub fn termination_message(c: &Container, s: &ContainerStatus) -> String {
    let path = c.termination_message_path();
    let mut msg = String::new();
    if !path.is_empty()
        && let Some(m) = s.mounts.iter().find(|m| m.container_path == path)
        && let Ok(data) = std::fs::read(&m.host_path)
    {
        msg = String::from_utf8_lossy(&data[..data.len().min(MAX_MESSAGE)]).into_owned();
    }
    if msg.is_empty() && c.falls_back_to_logs() && s.exit_code != 0 {
        let log = std::fs::read_to_string(&s.log_path).unwrap_or_default();
        msg = log_tail(&peapod_types::cri_log::text_of(&log));
    }
    if msg.is_empty() {
        s.message.clone()
    } else {
        msg
    }
}

/// The last 80 lines of `text`, at most 2 KiB of them (cut at a character boundary).
pub fn log_tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(MAX_LOG_LINES)..].join("\n");
    let start = tail.len().saturating_sub(MAX_LOG_BYTES);
    let start = (start..=tail.len())
        .find(|i| tail.is_char_boundary(*i))
        .unwrap_or(tail.len());
    tail[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_80_lines_and_2_kib() {
        let text: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        let t = log_tail(&text);
        assert_eq!(t.lines().count(), 80);
        assert!(t.starts_with("line 21\n") && t.ends_with("line 100"));
        let long: String = (0..80).map(|_| format!("{}\n", "é".repeat(40))).collect();
        let t = log_tail(&long);
        assert!(t.len() <= 2048, "{}", t.len());
        assert!(t.chars().all(|c| c == 'é' || c == '\n'));
    }
}
