//! One pod as a kubelet receives it: defaulted by the API server's rules, with a UID, and
//! read through accessors that give the value the API server always sets, so nothing
//! downstream applies a default a second time.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::{Container, Pod, PodSpec, Probe};

/// `spec.restartPolicy` (and a sidecar's own `restartPolicy: Always`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Restart whenever a container exits.
    Always,
    /// Restart containers that exit with a non-zero code.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    /// Whether a container that exited with `exit_code` runs again under this policy.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

/// `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull before every start.
    Always,
    /// Pull when the image is not in the store.
    IfNotPresent,
    /// Never pull.
    Never,
}

/// `spec.dnsPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsPolicy {
    /// Cluster DNS, except with the host network.
    ClusterFirst,
    /// Cluster DNS, even with the host network.
    ClusterFirstWithHostNet,
    /// The node's resolv.conf.
    Default,
    /// Only `spec.dnsConfig`.
    None,
}

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    /// `startupProbe`: gates the other two.
    Startup,
    /// `livenessProbe`: a failure restarts the container.
    Liveness,
    /// `readinessProbe`: drives `ready`.
    Readiness,
}

impl ProbeKind {
    /// `Startup`, `Liveness` or `Readiness`, as events name them.
    pub fn label(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

/// A probe with its defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSpec {
    /// Which probe.
    pub kind: ProbeKind,
    /// The probe as written (its handler is read from here).
    pub probe: Probe,
    /// `initialDelaySeconds`.
    pub initial_delay: Duration,
    /// `timeoutSeconds` (at least 1 s).
    pub timeout: Duration,
    /// `periodSeconds` (at least 1 s).
    pub period: Duration,
    /// `successThreshold` (at least 1).
    pub success_threshold: u32,
    /// `failureThreshold` (at least 1).
    pub failure_threshold: u32,
    /// The probe's own `terminationGracePeriodSeconds`, if set.
    pub termination_grace: Option<i64>,
}

fn secs(v: Option<i32>, default: i32, min: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(min) as u64)
}

impl ProbeSpec {
    /// The defaulted form of `p`.
    pub fn new(kind: ProbeKind, p: &Probe) -> ProbeSpec {
        ProbeSpec {
            kind,
            probe: p.clone(),
            initial_delay: secs(p.initial_delay_seconds, 0, 0),
            timeout: secs(p.timeout_seconds, 1, 1),
            period: secs(p.period_seconds, 10, 1),
            success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
            termination_grace: p.termination_grace_period_seconds,
        }
    }
}

/// Accessors on a container of a defaulted pod.
pub trait ContainerExt {
    /// Whether it is a native sidecar: an init container with `restartPolicy: Always`.
    fn is_sidecar(&self) -> bool;
    /// The image as written.
    fn image_name(&self) -> &str;
    /// `imagePullPolicy` (defaulted from the tag when absent).
    fn pull_policy(&self) -> PullPolicy;
    /// `terminationMessagePath`; empty means none.
    fn termination_message_path(&self) -> &str;
    /// Whether `terminationMessagePolicy` is `FallbackToLogsOnError`.
    fn falls_back_to_logs(&self) -> bool;
    /// Its probes, defaulted, in the order startup, liveness, readiness.
    fn probes(&self) -> Vec<ProbeSpec>;
    /// The probe of `kind`, defaulted.
    fn probe(&self, kind: ProbeKind) -> Option<ProbeSpec>;
}

impl ContainerExt for Container {
    fn is_sidecar(&self) -> bool {
        self.restart_policy.as_deref() == Some("Always")
    }

    fn image_name(&self) -> &str {
        self.image.as_deref().unwrap_or_default()
    }

    fn pull_policy(&self) -> PullPolicy {
        match self.image_pull_policy.as_deref() {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            _ => {
                let latest = crate::image_ref::Reference::parse(self.image_name())
                    .map_or(true, |r| r.is_latest());
                if latest {
                    PullPolicy::Always
                } else {
                    PullPolicy::IfNotPresent
                }
            }
        }
    }

    fn termination_message_path(&self) -> &str {
        self.termination_message_path
            .as_deref()
            .unwrap_or("/dev/termination-log")
    }

    fn falls_back_to_logs(&self) -> bool {
        self.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
    }

    fn probes(&self) -> Vec<ProbeSpec> {
        [
            ProbeKind::Startup,
            ProbeKind::Liveness,
            ProbeKind::Readiness,
        ]
        .into_iter()
        .filter_map(|k| self.probe(k))
        .collect()
    }

    fn probe(&self, kind: ProbeKind) -> Option<ProbeSpec> {
        let p = match kind {
            ProbeKind::Startup => &self.startup_probe,
            ProbeKind::Liveness => &self.liveness_probe,
            ProbeKind::Readiness => &self.readiness_probe,
        };
        p.as_ref().map(|p| ProbeSpec::new(kind, p))
    }
}

/// Where a container sits in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// `spec.initContainers[i]` (regular init container or sidecar).
    Init(usize),
    /// `spec.containers[i]`.
    App(usize),
}

/// A pod with the API server's defaults applied and a UID: what a kubelet works on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DefaultedPod(Pod);

impl DefaultedPod {
    /// A metadata field the downward API gives (`metadata.name`, `.namespace`, `.uid`,
    /// `metadata.labels['KEY']`, `metadata.annotations['KEY']`); an absent label or
    /// annotation is empty, an unknown path `None`.
    pub fn metadata_field(&self, path: &str) -> Option<String> {
        let m = &self.pod().metadata;
        Some(match path {
            "metadata.name" => m.name.clone().unwrap_or_default(),
            "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
            "metadata.uid" => m.uid.clone().unwrap_or_default(),
            _ => {
                let (map, key) = crate::validate::field_subscript(path)?;
                let map = if map == "metadata.labels" {
                    m.labels.as_ref()
                } else {
                    m.annotations.as_ref()
                };
                map.and_then(|l| l.get(key)).cloned().unwrap_or_default()
            }
        })
    }

    /// Applies the API server's defaults to `pod` (doing it twice changes nothing).
    pub fn new(mut pod: Pod) -> DefaultedPod {
        crate::defaults::pod(&mut pod);
        DefaultedPod(pod)
    }

    /// The pod object.
    pub fn pod(&self) -> &Pod {
        &self.0
    }

    /// The pod object, by value.
    pub fn into_pod(self) -> Pod {
        self.0
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.0.metadata.name.as_deref().unwrap_or_default()
    }

    /// `metadata.namespace` (`default` when none was given).
    pub fn namespace(&self) -> &str {
        self.0.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// `metadata.uid`.
    pub fn uid(&self) -> &str {
        self.0.metadata.uid.as_deref().unwrap_or_default()
    }

    /// The spec.
    pub fn spec(&self) -> &PodSpec {
        self.0.spec.as_ref().expect("a defaulted pod has a spec")
    }

    /// `spec.initContainers`, sidecars included.
    pub fn init_containers(&self) -> &[Container] {
        self.spec().init_containers.as_deref().unwrap_or_default()
    }

    /// `spec.containers`.
    pub fn containers(&self) -> &[Container] {
        &self.spec().containers
    }

    /// The container at `slot`.
    pub fn container(&self, slot: Slot) -> &Container {
        match slot {
            Slot::Init(i) => &self.init_containers()[i],
            Slot::App(i) => &self.containers()[i],
        }
    }

    /// The slot of the container named `name`.
    pub fn slot_of(&self, name: &str) -> Option<Slot> {
        if let Some(i) = self.init_containers().iter().position(|c| c.name == name) {
            return Some(Slot::Init(i));
        }
        self.containers()
            .iter()
            .position(|c| c.name == name)
            .map(Slot::App)
    }

    /// Every container, init containers first, with its slot.
    pub fn all_containers(&self) -> impl Iterator<Item = (Slot, &Container)> {
        let inits = self.init_containers().iter().enumerate();
        let apps = self.containers().iter().enumerate();
        inits
            .map(|(i, c)| (Slot::Init(i), c))
            .chain(apps.map(|(i, c)| (Slot::App(i), c)))
    }

    /// `spec.restartPolicy`.
    pub fn restart_policy(&self) -> RestartPolicy {
        match self.spec().restart_policy.as_deref() {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }

    /// `terminationGracePeriodSeconds`: 30 by default; a negative value counts as 1, as the
    /// API server treats it.
    pub fn grace_period(&self) -> i64 {
        match self.spec().termination_grace_period_seconds {
            None => 30,
            Some(g) if g < 0 => 1,
            Some(g) => g,
        }
    }

    /// `activeDeadlineSeconds`.
    pub fn active_deadline(&self) -> Option<Duration> {
        self.spec()
            .active_deadline_seconds
            .map(|s| Duration::from_secs(s.max(0) as u64))
    }

    /// `hostNetwork`.
    pub fn host_network(&self) -> bool {
        self.spec().host_network == Some(true)
    }

    /// `hostPID`.
    pub fn host_pid(&self) -> bool {
        self.spec().host_pid == Some(true)
    }

    /// `hostIPC`.
    pub fn host_ipc(&self) -> bool {
        self.spec().host_ipc == Some(true)
    }

    /// `shareProcessNamespace`.
    pub fn share_process_namespace(&self) -> bool {
        self.spec().share_process_namespace == Some(true)
    }

    /// `dnsPolicy`.
    pub fn dns_policy(&self) -> DnsPolicy {
        match self.spec().dns_policy.as_deref() {
            Some("ClusterFirstWithHostNet") => DnsPolicy::ClusterFirstWithHostNet,
            Some("Default") => DnsPolicy::Default,
            Some("None") => DnsPolicy::None,
            _ => DnsPolicy::ClusterFirst,
        }
    }

    /// Whether the pod has init containers (sidecars included).
    pub fn has_init_containers(&self) -> bool {
        !self.init_containers().is_empty()
    }

    /// `name_namespace(uid)`, as the kubelet names a pod in messages.
    pub fn label(&self) -> String {
        format!("{}_{}({})", self.name(), self.namespace(), self.uid())
    }

    /// The event field path of container `name`: `spec.containers{NAME}` or
    /// `spec.initContainers{NAME}`.
    pub fn field_path(&self, name: &str) -> String {
        match self.slot_of(name) {
            Some(Slot::Init(_)) => format!("spec.initContainers{{{name}}}"),
            _ => format!("spec.containers{{{name}}}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse;

    fn pod(text: &str) -> DefaultedPod {
        let mut p = parse(text).unwrap().pods.remove(0);
        p.metadata.uid = Some("u1".into());
        DefaultedPod::new(p)
    }

    const BASE: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n";

    #[test]
    fn accessors_give_the_api_servers_defaults() {
        let p = pod(&format!(
            "{BASE}  initContainers: [{{name: i, image: 'b:1'}}, {{name: s, image: b, restartPolicy: Always}}]\n  containers: [{{name: a, image: 'b:1'}}]\n"
        ));
        assert_eq!(p.namespace(), "default");
        assert_eq!(p.restart_policy(), RestartPolicy::Always);
        assert_eq!(p.grace_period(), 30);
        assert_eq!(p.dns_policy(), DnsPolicy::ClusterFirst);
        assert!(!p.host_network() && !p.share_process_namespace());
        assert_eq!(p.label(), "web_default(u1)");
        assert_eq!(p.field_path("i"), "spec.initContainers{i}");
        assert_eq!(p.field_path("a"), "spec.containers{a}");
        assert_eq!(p.slot_of("s"), Some(Slot::Init(1)));
        assert!(p.container(Slot::Init(1)).is_sidecar());
        assert!(!p.container(Slot::Init(0)).is_sidecar());
        assert_eq!(
            p.container(Slot::App(0)).pull_policy(),
            PullPolicy::IfNotPresent
        );
        assert_eq!(p.container(Slot::Init(1)).pull_policy(), PullPolicy::Always);
        assert_eq!(
            p.container(Slot::App(0)).termination_message_path(),
            "/dev/termination-log"
        );
        let order: Vec<&str> = p.all_containers().map(|(_, c)| c.name.as_str()).collect();
        assert_eq!(order, ["i", "s", "a"]);
    }

    #[test]
    fn negative_grace_counts_as_one() {
        let p = pod(&format!(
            "{BASE}  terminationGracePeriodSeconds: -5\n  containers: [{{name: a, image: b}}]\n"
        ));
        assert_eq!(p.grace_period(), 1);
        let p = pod(&format!(
            "{BASE}  terminationGracePeriodSeconds: 0\n  containers: [{{name: a, image: b}}]\n"
        ));
        assert_eq!(p.grace_period(), 0);
    }

    #[test]
    fn restart_policies() {
        assert!(RestartPolicy::Always.restarts(0));
        assert!(!RestartPolicy::OnFailure.restarts(0));
        assert!(RestartPolicy::OnFailure.restarts(2));
        assert!(!RestartPolicy::Never.restarts(1));
        let p = pod(&format!(
            "{BASE}  restartPolicy: OnFailure\n  dnsPolicy: None\n  containers: [{{name: a, image: b}}]\n"
        ));
        assert_eq!(p.restart_policy(), RestartPolicy::OnFailure);
        assert_eq!(p.dns_policy(), DnsPolicy::None);
    }

    #[test]
    fn probe_defaults_and_floors() {
        let p = pod(&format!(
            "{BASE}  containers:\n  - name: a\n    image: b\n    livenessProbe: {{tcpSocket: {{port: 80}}, periodSeconds: 0, failureThreshold: 0, terminationGracePeriodSeconds: 3}}\n    readinessProbe: {{tcpSocket: {{port: 80}}, initialDelaySeconds: 4}}\n"
        ));
        let c = p.container(Slot::App(0));
        let kinds: Vec<ProbeKind> = c.probes().iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [ProbeKind::Liveness, ProbeKind::Readiness]);
        let l = c.probe(ProbeKind::Liveness).unwrap();
        assert_eq!(l.period, Duration::from_secs(1));
        assert_eq!(l.failure_threshold, 1);
        assert_eq!(l.timeout, Duration::from_secs(1));
        assert_eq!(l.termination_grace, Some(3));
        let r = c.probe(ProbeKind::Readiness).unwrap();
        assert_eq!(
            (
                r.initial_delay,
                r.period,
                r.success_threshold,
                r.failure_threshold
            ),
            (Duration::from_secs(4), Duration::from_secs(10), 1, 3)
        );
        assert!(c.probe(ProbeKind::Startup).is_none());
    }

    #[test]
    fn serializes_as_the_pod_itself() {
        let p = pod(&format!("{BASE}  containers: [{{name: a, image: b}}]\n"));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["metadata"]["name"], "web");
        let back: DefaultedPod = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);
    }
}
