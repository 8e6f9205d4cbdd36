//! The kubelet's pod-level cgroup (`pkg/kubelet/cm`): where a pod's cgroup goes by its QoS
//! class (the cgroupfs driver's `kubepods`, `kubepods/burstable`, `kubepods/besteffort`),
//! and the limits `ResourceConfigForPod` gives it from the containers' requests and limits.

use crate::api::{Container, PodSpec};

/// `MinShares`: the CPU shares of a pod that requests no CPU.
pub const MIN_SHARES: u64 = 2;
/// `MaxShares`.
pub const MAX_SHARES: u64 = 262_144;
/// The CFS period the kubelet uses, in microseconds.
pub const CPU_PERIOD: i64 = 100_000;
/// `MinQuotaPeriod`: the smallest quota written, in microseconds.
pub const MIN_QUOTA: i64 = 1_000;

/// A pod's cgroup settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroup {
    /// `Guaranteed`, `Burstable` or `BestEffort`.
    pub qos: &'static str,
    /// Where pods of its class go, below the node's root: `kubepods` (Guaranteed),
    /// `kubepods/burstable`, `kubepods/besteffort`.
    pub parent: &'static str,
    /// `cpu.shares` (cgroup v2: the weight they convert to).
    pub cpu_shares: u64,
    /// CFS quota per [`CPU_PERIOD`], when every container has a CPU limit.
    pub cpu_quota: Option<i64>,
    /// Memory limit in bytes, when every container has a memory limit.
    pub memory: Option<i64>,
}

/// A quantity in thousandths of its unit (CPU in millicores), rounded up.
fn milli(q: &str) -> Option<i128> {
    let q = crate::quantity::parse_quantity(q).ok()?;
    Some((q.nanos + 999_999) / 1_000_000)
}

/// A quantity in its unit (bytes), rounded up.
fn whole(q: &str) -> Option<i128> {
    let q = crate::quantity::parse_quantity(q).ok()?;
    Some((q.nanos + 999_999_999) / 1_000_000_000)
}

/// `MilliCPUToShares`.
pub fn milli_cpu_to_shares(milli: i128) -> u64 {
    if milli <= 0 {
        return MIN_SHARES;
    }
    ((milli * 1024 / 1000) as u64).clamp(MIN_SHARES, MAX_SHARES)
}

/// `MilliCPUToQuota` for [`CPU_PERIOD`].
pub fn milli_cpu_to_quota(milli: i128) -> i64 {
    if milli <= 0 {
        return 0;
    }
    ((milli * i128::from(CPU_PERIOD) / 1000) as i64).max(MIN_QUOTA)
}

/// One container's value of `res` (CPU in millicores, memory in bytes): its `requests`, or
/// its limit where the request is absent (the API server defaults one to the other).
fn value(c: &Container, res: &str, requests: bool) -> Option<i128> {
    let r = c.resources.as_ref()?;
    let from = |m: &Option<
        std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >| {
        m.as_ref().and_then(|m| m.get(res)).and_then(|q| {
            if res == "cpu" {
                milli(&q.0)
            } else {
                whole(&q.0)
            }
        })
    };
    if requests {
        from(&r.requests).or_else(|| from(&r.limits))
    } else {
        from(&r.limits)
    }
}

/// `resource.PodRequests` / `PodLimits` of one resource: the app containers and sidecars
/// together, or the largest init container (with the sidecars started before it) if more.
/// Also whether every container declared it (for limits).
fn pod_total(spec: &PodSpec, res: &str, requests: bool) -> (i128, bool) {
    let mut declared = true;
    let mut get = |c: &Container| {
        let v = value(c, res, requests);
        if v.unwrap_or(0) == 0 {
            declared = false;
        }
        v.unwrap_or(0)
    };
    let mut total: i128 = spec.containers.iter().map(&mut get).sum();
    let mut sidecars: i128 = 0;
    let mut init_max: i128 = 0;
    for c in spec.init_containers.iter().flatten() {
        let v = get(c);
        if c.restart_policy.as_deref() == Some("Always") {
            total += v;
            sidecars += v;
            init_max = init_max.max(sidecars);
        } else {
            init_max = init_max.max(v + sidecars);
        }
    }
    (total.max(init_max), declared)
}

/// The pod's request of `resource` (`resource.PodRequests`): CPU in millicores, the rest
/// in their units (bytes).
pub fn pod_request(spec: &PodSpec, resource: &str) -> i128 {
    pod_total(spec, resource, true).0
}

/// `ResourceConfigForPod` with CPU limits enforced: the pod's cgroup settings.
pub fn pod_cgroup(spec: &PodSpec) -> PodCgroup {
    let qos = crate::phase::qos_class(spec);
    let (cpu_requests, _) = pod_total(spec, "cpu", true);
    let (cpu_limits, cpu_declared) = pod_total(spec, "cpu", false);
    let (memory_limits, memory_declared) = pod_total(spec, "memory", false);
    let shares = milli_cpu_to_shares(cpu_requests);
    let quota = milli_cpu_to_quota(cpu_limits);
    match qos {
        "Guaranteed" => PodCgroup {
            qos,
            parent: "kubepods",
            cpu_shares: shares,
            cpu_quota: Some(quota),
            memory: Some(memory_limits as i64),
        },
        "Burstable" => PodCgroup {
            qos,
            parent: "kubepods/burstable",
            cpu_shares: shares,
            cpu_quota: cpu_declared.then_some(quota),
            memory: memory_declared.then_some(memory_limits as i64),
        },
        _ => PodCgroup {
            qos,
            parent: "kubepods/besteffort",
            cpu_shares: MIN_SHARES,
            cpu_quota: None,
            memory: None,
        },
    }
}

/// The pod's cgroup below the node's `root` (e.g. `/peapod`):
/// `/peapod/kubepods/burstable/pod<uid>`.
pub fn pod_cgroup_path(root: &str, spec: &PodSpec, uid: &str) -> String {
    format!(
        "{}/{}/pod{uid}",
        root.trim_end_matches('/'),
        pod_cgroup(spec).parent
    )
}

/// A hugepage size as the CRI names it (`2MB`, `1GB`, `64KB`: the kubelet's
/// `HugePageUnitSizeFromByteSize`, 1024-based).
pub fn page_size_name(bytes: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let (mut size, mut unit) = (bytes, 0);
    while size >= 1024 && size % 1024 == 0 && unit + 1 < units.len() {
        size /= 1024;
        unit += 1;
    }
    format!("{size}{}", units[unit])
}

/// The `hugepages-<size>` resources the pod's containers request or limit, sorted.
pub fn hugepage_resources(spec: &PodSpec) -> Vec<String> {
    let mut names: Vec<String> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .filter_map(|c| c.resources.as_ref())
        .flat_map(|r| r.requests.iter().chain(&r.limits).flat_map(|m| m.keys()))
        .filter(|k| k.starts_with("hugepages-"))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The pod cgroup's hugetlb limits, as `ResourceConfigForPod` and the pod container
/// manager set them: for every page size the host has (`sizes`, bytes), what the pod
/// requests of it (hugepages requests equal limits), else 0.
pub fn pod_hugepage_limits(spec: &PodSpec, sizes: &[u64]) -> Vec<(String, u64)> {
    let names = hugepage_resources(spec);
    per_host_size(sizes, |size| {
        let total: i128 = names
            .iter()
            .filter(|n| crate::quantity::parse(n.trim_start_matches("hugepages-")) == Some(size))
            .map(|n| pod_request(spec, n))
            .sum();
        total.max(0) as u64
    })
}

/// Each page size of the host (bytes, in order, once) by CRI name, with `amount(size)`.
fn per_host_size(sizes: &[u64], amount: impl Fn(u64) -> u64) -> Vec<(String, u64)> {
    let mut all: Vec<u64> = sizes.to_vec();
    all.sort_unstable();
    all.dedup();
    all.into_iter()
        .map(|size| (page_size_name(size), amount(size)))
        .collect()
}

/// The hugetlb limits of a container, as the kubelet's `GetHugepageLimitsFromResources`
/// makes them: every page size the host has (`sizes`, in bytes) limited to 0, but for the
/// sizes the container's `hugepages-<size>` limits name. Page sizes by CRI name, in bytes.
pub fn hugepage_limits(
    limits: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
    sizes: &[u64],
) -> Vec<(String, u64)> {
    let asked: Vec<(u64, u64)> = limits
        .into_iter()
        .flatten()
        .filter_map(|(name, q)| {
            let size = crate::quantity::parse(name.strip_prefix("hugepages-")?)?;
            Some((size, crate::quantity::parse(&q.0)?))
        })
        .collect();
    per_host_size(sizes, |size| {
        asked
            .iter()
            .find(|(s, _)| *s == size)
            .map_or(0, |(_, l)| *l)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> PodSpec {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{yaml}");
        let m = crate::manifest::load(&text).unwrap();
        m.pods[0].spec.clone().unwrap()
    }

    #[test]
    fn conversions_as_the_kubelet_has_them() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(250), 256);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(10_000_000), 262_144);
        assert_eq!(milli_cpu_to_quota(250), 25_000);
        assert_eq!(milli_cpu_to_quota(5), 1_000, "never under MinQuotaPeriod");
        assert_eq!(milli_cpu_to_quota(0), 0);
        assert_eq!(milli("1.5"), Some(1500));
        assert_eq!(milli("100m"), Some(100));
        assert_eq!(whole("64Mi"), Some(64 << 20));
    }

    #[test]
    fn each_class_in_its_place_with_its_limits() {
        let g = pod_cgroup(&spec(
            "  containers:\n  - {name: a, image: x, resources: {limits: {cpu: 500m, memory: 64Mi}}}\n  - {name: b, image: x, resources: {limits: {cpu: 250m, memory: 32Mi}}}\n",
        ));
        assert_eq!(
            g,
            PodCgroup {
                qos: "Guaranteed",
                parent: "kubepods",
                cpu_shares: 768,
                cpu_quota: Some(75_000),
                memory: Some(96 << 20),
            }
        );
        // Burstable: shares from requests; no quota unless every container has a CPU
        // limit, no memory limit unless every container has one.
        let b = pod_cgroup(&spec(
            "  containers:\n  - {name: a, image: x, resources: {requests: {cpu: 100m}, limits: {memory: 64Mi}}}\n  - {name: b, image: x}\n",
        ));
        assert_eq!(
            (b.qos, b.parent, b.cpu_shares, b.cpu_quota, b.memory),
            ("Burstable", "kubepods/burstable", 102, None, None)
        );
        let b = pod_cgroup(&spec(
            "  containers:\n  - {name: a, image: x, resources: {requests: {cpu: 100m, memory: 10Mi}, limits: {cpu: '1', memory: 64Mi}}}\n",
        ));
        assert_eq!((b.cpu_quota, b.memory), (Some(100_000), Some(64 << 20)));
        let e = pod_cgroup(&spec("  containers: [{name: a, image: x}]\n"));
        assert_eq!(
            (e.qos, e.parent, e.cpu_shares, e.cpu_quota, e.memory),
            ("BestEffort", "kubepods/besteffort", 2, None, None)
        );
        assert_eq!(
            pod_cgroup_path(
                "/peapod/",
                &spec("  containers: [{name: a, image: x}]\n"),
                "u1"
            ),
            "/peapod/kubepods/besteffort/podu1"
        );
    }

    #[test]
    fn init_containers_count_as_the_largest_of_them_or_the_app_containers() {
        // An init container larger than the app containers sets the pod's figure.
        let s = spec(
            "  initContainers:\n  - {name: i, image: x, resources: {limits: {cpu: '2', memory: 1Gi}}}\n  containers:\n  - {name: a, image: x, resources: {limits: {cpu: 500m, memory: 64Mi}}}\n",
        );
        let g = pod_cgroup(&s);
        assert_eq!(
            (g.cpu_shares, g.cpu_quota, g.memory),
            (2048, Some(200_000), Some(1 << 30))
        );
        // A sidecar adds to the app containers and to the init containers after it.
        let s = spec(
            "  initContainers:\n  - {name: s, image: x, restartPolicy: Always, resources: {requests: {cpu: 300m}}}\n  - {name: i, image: x, resources: {requests: {cpu: 400m}}}\n  containers:\n  - {name: a, image: x, resources: {requests: {cpu: 100m}}}\n",
        );
        // max(300 + 100, 300 + 400) = 700m
        assert_eq!(pod_cgroup(&s).cpu_shares, milli_cpu_to_shares(700));
    }

    #[test]
    fn hugepage_limits_name_every_host_size_zero_unless_asked() {
        assert_eq!(page_size_name(2 << 20), "2MB");
        assert_eq!(page_size_name(1 << 30), "1GB");
        assert_eq!(page_size_name(64 << 10), "64KB");
        let limits: std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        > = [
            (
                "hugepages-2Mi".to_string(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("100Mi".into()),
            ),
            (
                "memory".to_string(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("1Gi".into()),
            ),
        ]
        .into();
        assert_eq!(
            hugepage_limits(Some(&limits), &[1 << 30, 2 << 20]),
            [("2MB".to_string(), 100 << 20), ("1GB".to_string(), 0)]
        );
        assert_eq!(hugepage_limits(None, &[2 << 20]), [("2MB".to_string(), 0)]);
        assert!(hugepage_limits(Some(&limits), &[]).is_empty());
    }

    #[test]
    fn the_pod_cgroup_limits_every_host_size_by_what_the_pod_requests() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({"containers": [
            {"name": "a", "image": "b", "resources": {"limits": {"hugepages-2Mi": "64Mi", "memory": "1Gi"}}},
            {"name": "c", "image": "b", "resources": {"limits": {"hugepages-2Mi": "32Mi", "memory": "1Gi"}}},
        ]}))
        .unwrap();
        assert_eq!(
            pod_hugepage_limits(&spec, &[2 << 20, 1 << 30]),
            [("2MB".to_string(), 96 << 20), ("1GB".to_string(), 0)]
        );
    }
}
