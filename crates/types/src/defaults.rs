//! The defaults the API server applies to a pod before any kubelet sees it
//! (`pkg/apis/core/v1/defaults.go`). `k8s-openapi` applies none of them.

use crate::api::{Container, Pod, PodSpec, Probe};
use crate::image_ref::Reference;

/// Applies every default to `pod`, in place.
pub fn pod(pod: &mut Pod) {
    let ns = pod.metadata.namespace.get_or_insert_with(String::new);
    if ns.is_empty() {
        *ns = "default".into();
    }
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    set(&mut spec.restart_policy, "Always");
    set(&mut spec.dns_policy, "ClusterFirst");
    set(&mut spec.scheduler_name, "default-scheduler");
    // The API server's pod strategy makes a negative grace period 1 (with a warning).
    let grace = spec.termination_grace_period_seconds.get_or_insert(30);
    if *grace < 0 {
        *grace = 1;
    }
    // The ServiceAccount admission plugin names the namespace's default account.
    set(&mut spec.service_account_name, "default");
    spec.security_context.get_or_insert_with(Default::default);
    spec.enable_service_links.get_or_insert(true);
    spec.priority.get_or_insert(0);
    for c in spec.init_containers.iter_mut().flatten() {
        container(c);
    }
    for c in &mut spec.containers {
        container(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        if let Some(hp) = &mut v.host_path {
            hp.type_.get_or_insert_with(String::new);
        }
    }
}

fn set(field: &mut Option<String>, value: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value.to_string());
    }
}

/// Defaults of one container (init, sidecar or app).
pub fn container(c: &mut Container) {
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        let latest = c
            .image
            .as_deref()
            .and_then(|i| Reference::parse(i).ok())
            .is_none_or(|r| r.is_latest());
        c.image_pull_policy = Some(if latest { "Always" } else { "IfNotPresent" }.into());
    }
    set(&mut c.termination_message_path, "/dev/termination-log");
    set(&mut c.termination_message_policy, "File");
    for p in c.ports.iter_mut().flatten() {
        set(&mut p.protocol, "TCP");
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        self::probe(probe);
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            set(&mut f.api_version, "v1");
        }
    }
    if let Some(r) = &mut c.resources
        && let Some(limits) = &r.limits
    {
        let requests = r.requests.get_or_insert_with(Default::default);
        // A limit that does not parse is reported once, as the limit it is.
        for (k, v) in limits {
            if crate::quantity::parse_quantity(&v.0).is_err() {
                continue;
            }
            requests.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

fn probe(p: &mut Probe) {
    p.timeout_seconds.get_or_insert(1);
    p.period_seconds.get_or_insert(10);
    p.success_threshold.get_or_insert(1);
    p.failure_threshold.get_or_insert(3);
    if let Some(h) = &mut p.http_get {
        set(&mut h.scheme, "HTTP");
        set(&mut h.path, "/");
    }
    if let Some(g) = &mut p.grpc {
        g.service.get_or_insert_with(String::new);
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::parse;

    #[test]
    fn api_server_defaults() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - {name: a, image: busybox, ports: [{containerPort: 80}], readinessProbe: {tcpSocket: {port: 80}}}\n  - {name: b, image: 'busybox:1.36'}\n  - {name: c, image: 'busybox:1.36', imagePullPolicy: Never}\n";
        let mut pod = parse(text).unwrap().pods.remove(0);
        super::pod(&mut pod);
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        let pol: Vec<_> = spec
            .containers
            .iter()
            .map(|c| c.image_pull_policy.clone().unwrap())
            .collect();
        assert_eq!(pol, ["Always", "IfNotPresent", "Never"]);
        let a = &spec.containers[0];
        assert_eq!(
            a.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
        assert_eq!(
            a.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("TCP")
        );
        let p = a.readiness_probe.as_ref().unwrap();
        assert_eq!(
            (p.timeout_seconds, p.period_seconds, p.failure_threshold),
            (Some(1), Some(10), Some(3))
        );
    }
}
