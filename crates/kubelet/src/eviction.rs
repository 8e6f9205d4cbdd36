//! The eviction manager's local-storage checks for one pod (`localStorageEviction`): an
//! `emptyDir` over its `sizeLimit`, a container over its `ephemeral-storage` limit, the pod
//! over the sum of its containers' limits. Pure: the usage figures come from the caller.

use peapod_types::api::PodSpec;

/// How often the pod's usage is measured (the kubelet's housekeeping period).
pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// What the pod uses on local storage, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageUsage {
    /// Each disk-backed `emptyDir` volume, by name.
    pub empty_dirs: Vec<(String, u64)>,
    /// Each container's writable layer and logs, by name.
    pub containers: Vec<(String, u64)>,
}

fn bytes(q: &str) -> Option<u64> {
    let q = peapod_types::quantity::parse_quantity(q).ok()?;
    u64::try_from((q.nanos + 999_999_999) / 1_000_000_000).ok()
}

fn canonical(q: &str) -> String {
    peapod_types::quantity::parse_quantity(q)
        .map(|q| q.canonical())
        .unwrap_or_else(|_| q.to_string())
}

/// Whether `spec` has anything these checks watch (so that pods without are never walked).
pub fn watched(spec: &PodSpec) -> bool {
    let sized_dir = spec.volumes.iter().flatten().any(|v| {
        v.empty_dir
            .as_ref()
            .is_some_and(|e| e.medium.as_deref() != Some("Memory") && e.size_limit.is_some())
    });
    let limited = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| ephemeral_limit(c).is_some());
    sized_dir || limited
}

fn ephemeral_limit(c: &peapod_types::api::Container) -> Option<(u64, String)> {
    let q = c
        .resources
        .as_ref()?
        .limits
        .as_ref()?
        .get("ephemeral-storage")?;
    Some((bytes(&q.0)?, canonical(&q.0)))
}

/// The eviction's message when the pod is over a limit, in the kubelet's checking order
/// (emptyDir volumes, then the pod, then each container), `None` when it is not.
pub fn violation(spec: &PodSpec, usage: &StorageUsage) -> Option<String> {
    for v in spec.volumes.iter().flatten() {
        let Some(ed) = &v.empty_dir else { continue };
        if ed.medium.as_deref() == Some("Memory") {
            // A tmpfs sized by the limit: writes past it fail instead.
            continue;
        }
        let Some(limit) = &ed.size_limit else {
            continue;
        };
        let Some(max) = bytes(&limit.0) else { continue };
        let used = usage
            .empty_dirs
            .iter()
            .find(|(n, _)| *n == v.name)
            .map_or(0, |(_, u)| *u);
        if used > max {
            return Some(format!(
                "Usage of EmptyDir volume {:?} exceeds the limit {:?}. ",
                v.name,
                canonical(&limit.0)
            ));
        }
    }
    // The pod: its limit is what its containers declare together (`PodLimits`), its usage
    // that of every container and local volume.
    let all: Vec<&peapod_types::api::Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    if all.iter().any(|c| ephemeral_limit(c).is_some()) {
        let apps: u64 = spec
            .containers
            .iter()
            .filter_map(ephemeral_limit)
            .map(|(b, _)| b)
            .sum();
        let inits = spec
            .init_containers
            .iter()
            .flatten()
            .filter_map(ephemeral_limit)
            .map(|(b, _)| b)
            .max()
            .unwrap_or(0);
        let total = apps.max(inits);
        let used: u64 = usage.empty_dirs.iter().map(|(_, u)| u).sum::<u64>()
            + usage.containers.iter().map(|(_, u)| u).sum::<u64>();
        if used > total {
            // The sum keeps the binary form when it has one, as Kubernetes' quantities do.
            let text = if total % 1024 == 0 {
                format!("{}Ki", total / 1024)
            } else {
                total.to_string()
            };
            let total_q = canonical(&text);
            return Some(format!(
                "Pod ephemeral local storage usage exceeds the total limit of containers {total_q}. "
            ));
        }
    }
    for c in &all {
        let Some((max, shown)) = ephemeral_limit(c) else {
            continue;
        };
        let used = usage
            .containers
            .iter()
            .find(|(n, _)| *n == c.name)
            .map_or(0, |(_, u)| *u);
        if used > max {
            return Some(format!(
                "Container {} exceeded its local ephemeral storage limit {shown:?}. ",
                c.name
            ));
        }
    }
    None
}

/// The bytes the files below `dir` take (not following links, not crossing into other
/// file systems' mounts is left to the caller's choice of directories).
pub fn disk_usage(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> PodSpec {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{yaml}");
        peapod_types::manifest::load(&text).unwrap().pods[0]
            .spec
            .clone()
            .unwrap()
    }

    #[test]
    fn empty_dirs_over_their_size_limit() {
        let s = spec(
            "  containers: [{name: c, image: x}]\n  volumes:\n  - {name: cache, emptyDir: {sizeLimit: 10Mi}}\n  - {name: ram, emptyDir: {medium: Memory, sizeLimit: 1Mi}}\n",
        );
        assert!(watched(&s));
        let usage = |n: u64| StorageUsage {
            empty_dirs: vec![("cache".into(), n), ("ram".into(), 50 << 20)],
            containers: vec![],
        };
        assert_eq!(
            violation(&s, &usage(10 << 20)),
            None,
            "at the limit is fine"
        );
        assert_eq!(
            violation(&s, &usage((10 << 20) + 1)).as_deref(),
            Some("Usage of EmptyDir volume \"cache\" exceeds the limit \"10Mi\". ")
        );
        assert!(!watched(&spec("  containers: [{name: c, image: x}]\n")));
    }

    #[test]
    fn containers_and_the_pod_over_their_ephemeral_storage() {
        let s = spec(
            "  containers:\n  - {name: a, image: x, resources: {limits: {ephemeral-storage: 4Mi}}}\n  - {name: b, image: x}\n",
        );
        let u = |a: u64, b: u64| StorageUsage {
            empty_dirs: vec![],
            containers: vec![("a".into(), a), ("b".into(), b)],
        };
        // The pod's limit is what its containers declare (4Mi): b's use counts towards it.
        assert_eq!(
            violation(&s, &u(1 << 20, 100 << 20)).as_deref(),
            Some("Pod ephemeral local storage usage exceeds the total limit of containers 4Mi. ")
        );
        assert_eq!(violation(&s, &u(1 << 20, 1 << 20)), None);
        // A container over its own limit while the pod is within its total.
        let two = spec(
            "  containers:\n  - {name: a, image: x, resources: {limits: {ephemeral-storage: 4Mi}}}\n  - {name: b, image: x, resources: {limits: {ephemeral-storage: 4Mi}}}\n",
        );
        assert_eq!(
            violation(&two, &u(5 << 20, 0)).as_deref(),
            Some("Container a exceeded its local ephemeral storage limit \"4Mi\". ")
        );
        let both = spec(
            "  containers:\n  - {name: a, image: x, resources: {limits: {ephemeral-storage: 4Mi}}}\n  - {name: b, image: x, resources: {limits: {ephemeral-storage: 4Mi}}}\n  volumes: [{name: d, emptyDir: {}}]\n",
        );
        let over = StorageUsage {
            empty_dirs: vec![("d".into(), 6 << 20)],
            containers: vec![("a".into(), 1 << 20), ("b".into(), 2 << 20)],
        };
        assert_eq!(
            violation(&both, &over).as_deref(),
            Some("Pod ephemeral local storage usage exceeds the total limit of containers 8Mi. ")
        );
    }

    #[test]
    fn disk_usage_counts_blocks_below_a_directory() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/f"), vec![1u8; 64 * 1024]).unwrap();
        assert!(disk_usage(d.path()) >= 64 * 1024);
        assert_eq!(disk_usage(&d.path().join("missing")), 0);
    }
}
