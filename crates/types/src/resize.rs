//! Updates of a running pod: which changes to its spec the API server lets through (new
//! container images, a lower `activeDeadlineSeconds`, added tolerations, and the in-place
//! resize of `InPlacePodVerticalScaling`, on by default in Kubernetes 1.33), refused with
//! its messages otherwise, and what each container's `resizePolicy` asks for.

use std::collections::BTreeMap;

use crate::api::{Container, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// What applying `new` over a pod that runs as `old` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// The spec is the same.
    Unchanged,
    /// The pod is updated in place.
    InPlace {
        /// Containers' CPU and memory changed: a resize.
        resize: bool,
        /// Containers' images changed: those containers restart with them.
        images: bool,
    },
}

/// The API server's message for a change it does not allow to a pod's spec.
pub const UPDATE_FORBIDDEN: &str = "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Checks `new` against the running `old` as the API server checks an update (and a
/// resize) of a pod; the errors are its messages, one per line.
pub fn check_update(old: &Pod, new: &Pod) -> Result<Update, Vec<String>> {
    let (Some(o), Some(n)) = (&old.spec, &new.spec) else {
        return Err(vec![UPDATE_FORBIDDEN.to_string()]);
    };
    if o == n {
        return Ok(Update::Unchanged);
    }
    if mutable_cleared(o) != mutable_cleared(n) {
        return Err(vec![UPDATE_FORBIDDEN.to_string()]);
    }
    let mut errs = Vec::new();
    pod_fields(o, n, &mut errs);
    let all = |s: &PodSpec| -> Vec<Container> {
        s.init_containers
            .iter()
            .flatten()
            .chain(&s.containers)
            .cloned()
            .collect()
    };
    let images = all(o).iter().zip(all(n)).any(|(a, b)| a.image != b.image);
    for (field, list) in [
        (
            "initContainers",
            n.init_containers.clone().unwrap_or_default(),
        ),
        ("containers", n.containers.clone()),
    ] {
        for (i, c) in list.iter().enumerate() {
            if c.image.as_deref().unwrap_or("").is_empty() {
                errs.push(format!("spec.{field}[{i}].image: Required value"));
            }
        }
    }
    let resize = all(o)
        .iter()
        .zip(all(n))
        .any(|(a, b)| a.resources != b.resources);
    if !resize {
        return if errs.is_empty() {
            Ok(Update::InPlace {
                resize: false,
                images,
            })
        } else {
            Err(errs)
        };
    }
    let old_qos = crate::phase::qos_class(o);
    if crate::phase::qos_class(n) != old_qos {
        errs.push(format!(
            "metadata: Invalid value: \"{old_qos}\": Pod QoS is immutable"
        ));
    }
    let pairs = |list_o: &[Container], list_n: &[Container], field: &'static str| {
        list_o
            .iter()
            .zip(list_n)
            .enumerate()
            .map(|(i, (a, b))| (format!("spec.{field}[{i}]"), a.clone(), b.clone()))
            .collect::<Vec<_>>()
    };
    let init_o = o.init_containers.clone().unwrap_or_default();
    let init_n = n.init_containers.clone().unwrap_or_default();
    let all = pairs(&init_o, &init_n, "initContainers")
        .into_iter()
        .chain(pairs(&o.containers, &n.containers, "containers"));
    for (path, a, b) in all {
        if a.resources == b.resources {
            continue;
        }
        let sidecar = path.starts_with("spec.initContainers")
            && a.restart_policy.as_deref() == Some("Always");
        if path.starts_with("spec.initContainers") && !sidecar {
            errs.push(format!(
                "{path}.resources: Forbidden: resources for non-sidecar init containers are immutable"
            ));
            continue;
        }
        container_change(&path, &a, &b, &mut errs);
    }
    if errs.is_empty() {
        Ok(Update::InPlace {
            resize: true,
            images,
        })
    } else {
        Err(errs)
    }
}

fn container_change(path: &str, a: &Container, b: &Container, errs: &mut Vec<String>) {
    let empty = ResourceRequirements::default();
    let (ra, rb) = (
        a.resources.as_ref().unwrap_or(&empty),
        b.resources.as_ref().unwrap_or(&empty),
    );
    let none = BTreeMap::new();
    for (field, x, y) in [
        ("requests", &ra.requests, &rb.requests),
        ("limits", &ra.limits, &rb.limits),
    ] {
        let (x, y) = (x.as_ref().unwrap_or(&none), y.as_ref().unwrap_or(&none));
        let names: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
        for name in names {
            let (before, after) = (x.get(name), y.get(name));
            if before == after {
                continue;
            }
            if name != "cpu" && name != "memory" {
                errs.push(format!(
                    "{path}.resources.{field}[{name}]: Forbidden: only cpu and memory resources are mutable"
                ));
            } else if after.is_none() {
                let what = if field == "requests" {
                    "resource requests cannot be removed"
                } else {
                    "resource limits cannot be removed"
                };
                errs.push(format!("{path}.resources.{field}: Forbidden: {what}"));
            }
        }
    }
    if ra.claims != rb.claims {
        errs.push(format!(
            "{path}.resources.claims: Forbidden: resource claims cannot be changed"
        ));
    }
    // A lower memory limit cannot be applied to a running process safely: only a restart
    // of the container may lower it.
    let limit = |r: &ResourceRequirements| {
        r.limits
            .as_ref()
            .and_then(|l| l.get("memory"))
            .and_then(|q| crate::quantity::parse(&q.0))
    };
    if let (Some(x), Some(y)) = (limit(ra), limit(rb))
        && y < x
        && policy(b, "memory") == Policy::NotRequired
    {
        errs.push(format!(
            "{path}.resources.limits[memory]: Forbidden: memory limits cannot be decreased unless resizePolicy is RestartContainer"
        ));
    }
}

/// A spec with every container's resources and image left out: what must not change in
/// an update.
fn mutable_cleared(spec: &PodSpec) -> PodSpec {
    let mut s = without_images(spec);
    s.active_deadline_seconds = None;
    s.tolerations = None;
    // A negative grace period may become 1; that is checked in `pod_fields`.
    s.termination_grace_period_seconds = None;
    for c in s
        .containers
        .iter_mut()
        .chain(s.init_containers.iter_mut().flatten())
    {
        c.resources = None;
    }
    s
}

/// The API server's rules for the pod-level fields an update may change: tolerations only
/// added to (or their `tolerationSeconds` changed), `activeDeadlineSeconds` set or
/// lowered, a negative `terminationGracePeriodSeconds` set to 1.
fn pod_fields(o: &PodSpec, n: &PodSpec, errs: &mut Vec<String>) {
    let new_tolerations = n.tolerations.clone().unwrap_or_default();
    let kept = o.tolerations.iter().flatten().all(|old| {
        new_tolerations.iter().any(|t| {
            let mut old = old.clone();
            old.toleration_seconds = t.toleration_seconds;
            old == *t
        })
    });
    if !kept {
        errs.push(
            "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"
                .into(),
        );
    }
    match (o.active_deadline_seconds, n.active_deadline_seconds) {
        (_, Some(d)) if !(0..=i64::from(i32::MAX)).contains(&d) => errs.push(format!(
            "spec.activeDeadlineSeconds: Invalid value: {d}: must be between 0 and 2147483647, inclusive"
        )),
        (Some(old), Some(d)) if d > old => errs.push(format!(
            "spec.activeDeadlineSeconds: Invalid value: {d}: must be less than or equal to previous value"
        )),
        (Some(_), None) => errs.push(
            "spec.activeDeadlineSeconds: Invalid value: \"null\": must not update from a positive integer to nil value"
                .into(),
        ),
        _ => {}
    }
    let (og, ng) = (
        o.termination_grace_period_seconds,
        n.termination_grace_period_seconds,
    );
    if ng != og && !(og.is_some_and(|g| g < 0) && ng == Some(1)) {
        errs.push(UPDATE_FORBIDDEN.to_string());
    }
}

/// A spec with every container's image left out.
fn without_images(spec: &PodSpec) -> PodSpec {
    let mut s = spec.clone();
    for c in s
        .containers
        .iter_mut()
        .chain(s.init_containers.iter_mut().flatten())
    {
        c.image = None;
    }
    s
}

/// What a container's `resizePolicy` says for one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The new value is applied to the running container (the default).
    NotRequired,
    /// The container is restarted with the new value.
    RestartContainer,
}

/// The container's `resizePolicy` for `resource` (`cpu` or `memory`).
pub fn policy(c: &Container, resource: &str) -> Policy {
    match c
        .resize_policy
        .iter()
        .flatten()
        .find(|p| p.resource_name == resource)
        .map(|p| p.restart_policy.as_str())
    {
        Some("RestartContainer") => Policy::RestartContainer,
        _ => Policy::NotRequired,
    }
}

/// A quantity of `milli` thousandths (CPU), as the API shows it.
pub fn cpu_quantity(milli: i64) -> Quantity {
    if milli % 1000 == 0 {
        Quantity((milli / 1000).to_string())
    } else {
        Quantity(format!("{milli}m"))
    }
}

/// Why a resize is not given to a pod yet (the `PodResizePending` condition's reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// More than the node's allocatable CPU or memory: it never will be.
    Infeasible,
    /// More than the node has left beside the other pods: retried as they go or shrink.
    Deferred,
}

impl Pending {
    /// The condition's reason.
    pub fn reason(self) -> &'static str {
        match self {
            Pending::Infeasible => "Infeasible",
            Pending::Deferred => "Deferred",
        }
    }
}

/// The kubelet's `canResizePod`: a pod's new requests (`spec`) are allocated when they
/// fit the node as a new pod would beside the others (`node`: allocatable, and what the
/// other pods request); otherwise the resize is pending, with the kubelet's message.
pub fn allocate(
    spec: &PodSpec,
    node: &[crate::admission::NodeResource],
) -> Result<(), (Pending, String)> {
    let requested = |name: &str| crate::cgroups::pod_request(spec, name);
    let capacity = |name: &str| node.iter().find(|r| r.name == name).map(|r| r.capacity);
    let over = |name: &str| capacity(name).filter(|c| requested(name) > *c);
    // Memory is named first, as the kubelet does.
    if let Some(c) = over("memory")
        .map(|c| ("memory", c))
        .or(over("cpu").map(|c| ("cpu", c)))
    {
        let (name, capacity) = c;
        return Err((
            Pending::Infeasible,
            format!(
                "Node didn't have enough capacity: {name}, requested: {}, capacity: {capacity}",
                requested(name)
            ),
        ));
    }
    crate::admission::admit_resources(spec, node).map_err(|r| (Pending::Deferred, r.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESIZE: Update = Update::InPlace {
        resize: true,
        images: false,
    };

    fn pod(containers: &str) -> Pod {
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n{containers}"
        );
        let v = crate::yaml::documents(&text).unwrap().remove(0);
        serde_json::from_value(v).unwrap()
    }

    fn c(resources: &str, extra: &str) -> String {
        format!("  - {{name: a, image: b, resources: {resources}{extra}}}\n")
    }

    #[test]
    fn only_cpu_and_memory_of_containers_may_change() {
        let old = pod(&c("{requests: {cpu: 100m, memory: 64Mi}}", ""));
        assert_eq!(check_update(&old, &old), Ok(Update::Unchanged));
        let more = pod(&c("{requests: {cpu: 200m, memory: 64Mi}}", ""));
        assert_eq!(check_update(&old, &more), Ok(RESIZE));

        let image =
            pod("  - {name: a, image: c, resources: {requests: {cpu: 100m, memory: 64Mi}}}\n");
        assert_eq!(
            check_update(&old, &image),
            Ok(Update::InPlace {
                resize: false,
                images: true
            })
        );
        let no_image =
            pod("  - {name: a, image: '', resources: {requests: {cpu: 100m, memory: 64Mi}}}\n");
        assert_eq!(
            check_update(&old, &no_image).unwrap_err(),
            vec!["spec.containers[0].image: Required value"]
        );

        let env = pod(&c(
            "{requests: {cpu: 100m, memory: 64Mi}}",
            ", env: [{name: X, value: z}]",
        ));
        assert_eq!(
            check_update(&old, &env).unwrap_err(),
            vec![UPDATE_FORBIDDEN]
        );
    }

    #[test]
    fn resize_rules_of_the_api_server() {
        let burstable = pod(&c("{requests: {cpu: 100m}}", ""));
        let best_effort = pod(&c("{}", ""));
        assert_eq!(
            check_update(&best_effort, &burstable).unwrap_err(),
            vec!["metadata: Invalid value: \"BestEffort\": Pod QoS is immutable"]
        );
        let removed = pod(&c("{requests: {memory: 10Mi}}", ""));
        assert_eq!(
            check_update(&burstable, &removed).unwrap_err(),
            vec![
                "spec.containers[0].resources.requests: Forbidden: resource requests cannot be removed"
            ]
        );
        let storage = pod(&c("{requests: {cpu: 100m, ephemeral-storage: 1Gi}}", ""));
        assert_eq!(
            check_update(&burstable, &storage).unwrap_err(),
            vec![
                "spec.containers[0].resources.requests[ephemeral-storage]: Forbidden: only cpu and memory resources are mutable"
            ]
        );
        let big = pod(&c("{limits: {memory: 100Mi}, requests: {cpu: 100m}}", ""));
        let small = pod(&c("{limits: {memory: 50Mi}, requests: {cpu: 100m}}", ""));
        assert_eq!(
            check_update(&big, &small).unwrap_err(),
            vec![
                "spec.containers[0].resources.limits[memory]: Forbidden: memory limits cannot be decreased unless resizePolicy is RestartContainer"
            ]
        );
        let restart = ", resizePolicy: [{resourceName: memory, restartPolicy: RestartContainer}]";
        let big_r = pod(&c(
            "{limits: {memory: 100Mi}, requests: {cpu: 100m}}",
            restart,
        ));
        let small_r = pod(&c(
            "{limits: {memory: 50Mi}, requests: {cpu: 100m}}",
            restart,
        ));
        assert_eq!(check_update(&big_r, &small_r), Ok(RESIZE));
        assert_eq!(
            policy(&small_r.spec.unwrap().containers[0], "memory"),
            Policy::RestartContainer
        );
    }

    #[test]
    fn init_containers_resize_only_as_sidecars() {
        let with_init = |cpu: &str, policy: &str| {
            let text = format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  initContainers:\n  - {{name: i, image: b{policy}, resources: {{requests: {{cpu: {cpu}}}}}}}\n  containers:\n  - {{name: a, image: b, resources: {{requests: {{cpu: 1}}}}}}\n"
            );
            let v = crate::yaml::documents(&text).unwrap().remove(0);
            serde_json::from_value::<Pod>(v).unwrap()
        };
        assert_eq!(
            check_update(&with_init("100m", ""), &with_init("200m", "")).unwrap_err(),
            vec![
                "spec.initContainers[0].resources: Forbidden: resources for non-sidecar init containers are immutable"
            ]
        );
        let sidecar = ", restartPolicy: Always";
        assert_eq!(
            check_update(&with_init("100m", sidecar), &with_init("200m", sidecar)),
            Ok(RESIZE)
        );
    }

    #[test]
    fn cpu_quantities() {
        assert_eq!(cpu_quantity(1500).0, "1500m");
        assert_eq!(cpu_quantity(2000).0, "2");
    }

    #[test]
    fn a_resize_beyond_the_node_is_infeasible_beyond_what_is_left_deferred() {
        use crate::admission::NodeResource;
        let spec = |cpu: &str, mem: &str| -> PodSpec {
            serde_json::from_value(
                serde_json::json!({"containers": [{"name": "a", "image": "b",
                "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}),
            )
            .unwrap()
        };
        let node = |cpu_used, mem_used| {
            vec![
                NodeResource {
                    name: "cpu".into(),
                    capacity: 2000,
                    used: cpu_used,
                },
                NodeResource {
                    name: "memory".into(),
                    capacity: 1 << 30,
                    used: mem_used,
                },
            ]
        };
        assert_eq!(allocate(&spec("1", "64Mi"), &node(500, 0)), Ok(()));
        assert_eq!(
            allocate(&spec("3", "2Gi"), &node(0, 0)),
            Err((
                Pending::Infeasible,
                "Node didn't have enough capacity: memory, requested: 2147483648, capacity: 1073741824".into()
            ))
        );
        assert_eq!(
            allocate(&spec("3", "64Mi"), &node(0, 0)).unwrap_err().1,
            "Node didn't have enough capacity: cpu, requested: 3000, capacity: 2000"
        );
        let (why, message) = allocate(&spec("1", "64Mi"), &node(1500, 0)).unwrap_err();
        assert_eq!(why.reason(), "Deferred");
        assert_eq!(
            message,
            "Node didn't have enough resource: cpu, requested: 1000, used: 1500, capacity: 2000"
        );
    }

    #[test]
    fn deadlines_tolerations_and_a_negative_grace_period_may_change_as_the_api_server_allows() {
        let with = |spec: &str| pod(&format!("{}  {spec}\n", c("{}", "")));
        let same = Ok(Update::InPlace {
            resize: false,
            images: false,
        });
        let long = with("activeDeadlineSeconds: 600");
        assert_eq!(
            check_update(&long, &with("activeDeadlineSeconds: 30")),
            same
        );
        assert_eq!(check_update(&pod(&c("{}", "")), &long), same);
        assert_eq!(
            check_update(&with("activeDeadlineSeconds: 30"), &long).unwrap_err(),
            [
                "spec.activeDeadlineSeconds: Invalid value: 600: must be less than or equal to previous value"
            ]
        );
        assert_eq!(
            check_update(&long, &pod(&c("{}", ""))).unwrap_err(),
            [
                "spec.activeDeadlineSeconds: Invalid value: \"null\": must not update from a positive integer to nil value"
            ]
        );
        let one = with(
            "tolerations: [{key: a, operator: Exists, effect: NoExecute, tolerationSeconds: 60}]",
        );
        let two = with(
            "tolerations: [{key: a, operator: Exists, effect: NoExecute, tolerationSeconds: 30}, {key: b, operator: Exists}]",
        );
        assert_eq!(check_update(&one, &two), same);
        assert_eq!(
            check_update(&two, &one).unwrap_err(),
            [
                "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"
            ]
        );
        let negative = with("terminationGracePeriodSeconds: -1");
        assert_eq!(
            check_update(&negative, &with("terminationGracePeriodSeconds: 1")),
            same
        );
        assert_eq!(
            check_update(&negative, &with("terminationGracePeriodSeconds: 5")).unwrap_err(),
            [UPDATE_FORBIDDEN]
        );
        assert_eq!(
            check_update(
                &with("terminationGracePeriodSeconds: 5"),
                &with("terminationGracePeriodSeconds: 1")
            )
            .unwrap_err(),
            [UPDATE_FORBIDDEN]
        );
    }
}
