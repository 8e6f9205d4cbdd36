//! Test helpers: pods from a few words, and snapshots built instance by instance.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use peapod_runtime::{
    ContainerMetadata, ContainerState, ContainerStatus, NamespaceMode, NamespaceOptions,
    SandboxMetadata, SandboxState, SandboxStatus,
};
use peapod_types::api::Container;
use peapod_types::pod::DefaultedPod;

use crate::snapshot::PodSnapshot;

/// The test clock's `s`-th second (from 2023-11-14T22:13:20Z).
pub fn t(s: u64) -> Timestamp {
    crate::clock::after(
        Timestamp::from_second(1_700_000_000).unwrap(),
        Duration::from_secs(s),
    )
}

/// Pod `web` (UID `u1`) with these init and app containers, all `image: busybox:1`.
pub fn pod(policy: &str, inits: &[&str], apps: &[&str]) -> DefaultedPod {
    let list = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("{{name: {n}, image: 'busybox:1'}}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    pod_yaml(&format!(
        "  restartPolicy: {policy}\n  initContainers: [{}]\n  containers: [{}]\n",
        list(inits),
        list(apps)
    ))
}

/// Pod `web` (UID `u1`) with this spec (indented by two spaces).
pub fn pod_yaml(spec: &str) -> DefaultedPod {
    let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n{spec}");
    let mut p = peapod_types::manifest::parse(&text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .pods
        .remove(0);
    p.metadata.uid = Some("u1".into());
    DefaultedPod::new(p)
}

/// Makes init container `name` a sidecar, with the probes `extra` (YAML fields) gives.
pub fn sidecar(p: DefaultedPod, name: &str, extra: &str) -> DefaultedPod {
    let frag: Container = serde_yaml_ng::from_str(&format!("{{name: {name}, {extra}}}")).unwrap();
    let mut pod = p.into_pod();
    let spec = pod.spec.as_mut().unwrap();
    let c = spec
        .init_containers
        .iter_mut()
        .flatten()
        .find(|c| c.name == name)
        .unwrap();
    c.restart_policy = Some("Always".into());
    c.startup_probe = frag.startup_probe.or(c.startup_probe.take());
    c.liveness_probe = frag.liveness_probe.or(c.liveness_probe.take());
    c.readiness_probe = frag.readiness_probe.or(c.readiness_probe.take());
    DefaultedPod::new(pod)
}

fn at(seq: u32) -> String {
    let t = Timestamp::from_second(1_600_000_000).unwrap();
    crate::clock::after(t, Duration::from_millis(seq as u64))
        .strftime("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string()
}

/// A snapshot built one object at a time; later objects are newer.
#[derive(Debug, Clone, Default)]
pub struct Snap {
    sandboxes: Vec<SandboxStatus>,
    containers: Vec<ContainerStatus>,
    seq: u32,
}

impl Snap {
    /// One ready sandbox.
    pub fn ready() -> Snap {
        let mut s = Snap::default();
        s.sandbox(SandboxState::Ready, 0, NamespaceMode::Pod);
        s
    }

    /// One sandbox whose infra process died.
    pub fn dead() -> Snap {
        let mut s = Snap::default();
        s.sandbox(SandboxState::NotReady, 0, NamespaceMode::Pod);
        s
    }

    /// Adds a newer sandbox.
    pub fn sandbox(&mut self, state: SandboxState, attempt: u32, net: NamespaceMode) -> &mut Snap {
        self.seq += 1;
        self.sandboxes.push(SandboxStatus {
            id: format!("sb{}", self.seq),
            metadata: SandboxMetadata {
                name: "web".into(),
                uid: "u1".into(),
                namespace: "default".into(),
                attempt,
            },
            state,
            created_at: at(self.seq),
            ip: Some("10.0.0.2".into()),
            additional_ips: Vec::new(),
            infra_pid: if state == SandboxState::Ready { 100 } else { 0 },
            netns: None,
            namespaces: NamespaceOptions {
                network: net,
                ..Default::default()
            },
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        });
        self
    }

    /// Adds a newer instance of container `name`.
    pub fn with(
        mut self,
        name: &str,
        attempt: u32,
        state: ContainerState,
        exit_code: i32,
        finished: Option<Timestamp>,
    ) -> Snap {
        self.seq += 1;
        let sandbox_id = self
            .sandboxes
            .last()
            .map(|s| s.id.clone())
            .unwrap_or_default();
        let started = finished.map(|f| f.strftime("%Y-%m-%dT%H:%M:%S%.9fZ").to_string());
        self.containers.push(ContainerStatus {
            id: format!("{name}-{attempt}-{}", self.seq),
            sandbox_id,
            metadata: ContainerMetadata {
                name: name.into(),
                attempt,
            },
            state,
            created_at: at(self.seq),
            started_at: Some(at(self.seq)),
            finished_at: started,
            exit_code,
            signal: None,
            reason: match (state, exit_code) {
                (ContainerState::Exited, 0) => "Completed".into(),
                (ContainerState::Exited, _) => "Error".into(),
                _ => String::new(),
            },
            message: String::new(),
            image: "busybox:1".into(),
            image_ref: "docker.io/library/busybox@sha256:00".into(),
            log_path: format!("/nonexistent/{name}/{attempt}.log").into(),
            pid: if state == ContainerState::Running {
                200
            } else {
                0
            },
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            mounts: Vec::new(),
            user: None,
            resources: None,
        });
        self
    }

    /// Adds a running instance.
    pub fn run(self, name: &str, attempt: u32) -> Snap {
        self.with(name, attempt, ContainerState::Running, 0, None)
    }

    /// Adds an instance that exited with `code` at `finished`.
    pub fn exit(self, name: &str, attempt: u32, code: i32, finished: Timestamp) -> Snap {
        self.with(name, attempt, ContainerState::Exited, code, Some(finished))
    }

    /// The newest instance added.
    pub fn last_mut(&mut self) -> &mut ContainerStatus {
        self.containers.last_mut().unwrap()
    }

    /// The ID of instance `attempt` of `name`.
    pub fn id_of(&self, name: &str, attempt: u32) -> String {
        self.containers
            .iter()
            .rev()
            .find(|c| c.metadata.name == name && c.metadata.attempt == attempt)
            .map(|c| c.id.clone())
            .unwrap()
    }

    /// The snapshot, newest first.
    pub fn build(self) -> PodSnapshot {
        let mut sandboxes = self.sandboxes;
        sandboxes.reverse();
        let mut containers = self.containers;
        containers.reverse();
        PodSnapshot {
            sandboxes,
            containers,
            messages: Default::default(),
        }
    }
}
