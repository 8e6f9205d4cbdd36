//! What a controller needs to know of a pod, read once per pass.

use std::collections::BTreeMap;

use jiff::Timestamp;
use peapod_types::api::Pod;

/// One pod as the controllers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// UID.
    pub uid: String,
    /// The UID of its controller (the owner reference with `controller: true`).
    pub owner: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Phase (`Pending` before the first status).
    pub phase: String,
    /// Creation time.
    pub created: Timestamp,
    /// Being deleted.
    pub terminating: bool,
    /// Since when it has been Ready, if it is.
    pub ready_since: Option<Timestamp>,
    /// Restarts of all its containers.
    pub restarts: i32,
    /// When its last container finished, for a finished pod.
    pub finished_at: Option<Timestamp>,
}

impl PodView {
    /// The view of `pod`, with `terminating` as the caller knows it.
    pub fn of(pod: &Pod, terminating: bool) -> PodView {
        let m = &pod.metadata;
        let status = pod.status.clone().unwrap_or_default();
        let ready_since = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready" && c.status == "True")
            .map(|c| {
                c.last_transition_time
                    .as_ref()
                    .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
            });
        let statuses = || {
            status
                .container_statuses
                .iter()
                .flatten()
                .chain(status.init_container_statuses.iter().flatten())
        };
        let finished_at = statuses()
            .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
            .map(|t| t.0)
            .max();
        PodView {
            name: m.name.clone().unwrap_or_default(),
            namespace: m.namespace.clone().unwrap_or_else(|| "default".into()),
            uid: m.uid.clone().unwrap_or_default(),
            owner: m
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| o.uid.clone()),
            labels: m.labels.clone().unwrap_or_default(),
            phase: status.phase.unwrap_or_else(|| "Pending".into()),
            created: m
                .creation_timestamp
                .as_ref()
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
            terminating,
            ready_since,
            restarts: statuses().map(|c| c.restart_count).sum(),
            finished_at,
        }
    }

    /// Not finished and not being deleted: what counts towards replicas.
    pub fn active(&self) -> bool {
        !self.terminating && self.phase != "Succeeded" && self.phase != "Failed"
    }

    /// Ready.
    pub fn ready(&self) -> bool {
        self.active() && self.ready_since.is_some()
    }

    /// Ready for at least `min_ready_seconds` at `now` (`podutil.IsPodAvailable`).
    pub fn available(&self, min_ready_seconds: i32, now: Timestamp) -> bool {
        self.active()
            && self.ready_since.is_some_and(|t| {
                min_ready_seconds <= 0
                    || t + jiff::SignedDuration::from_secs(i64::from(min_ready_seconds)) <= now
            })
    }
}

/// Which active pods to delete to scale down by `n`, as the ReplicaSet controller ranks
/// them: not ready before ready, Pending before Running, newer before older.
pub fn to_delete<'a>(pods: &[&'a PodView], n: usize) -> Vec<&'a PodView> {
    let mut active: Vec<&PodView> = pods.iter().copied().filter(|p| p.active()).collect();
    active.sort_by(|a, b| {
        (
            a.ready(),
            a.phase == "Running",
            std::cmp::Reverse(a.created),
        )
            .cmp(&(
                b.ready(),
                b.phase == "Running",
                std::cmp::Reverse(b.created),
            ))
    });
    active.into_iter().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn pod(name: &str, phase: &str, ready: bool, created: i64) -> PodView {
        PodView {
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}"),
            owner: None,
            labels: BTreeMap::new(),
            phase: phase.into(),
            created: Timestamp::from_second(created).unwrap(),
            terminating: false,
            ready_since: ready.then(|| Timestamp::from_second(created + 1).unwrap()),
            restarts: 0,
            finished_at: None,
        }
    }

    #[test]
    fn scale_down_takes_the_least_useful_first() {
        let a = pod("old-ready", "Running", true, 10);
        let b = pod("new-ready", "Running", true, 20);
        let c = pod("pending", "Pending", false, 5);
        let d = pod("running-not-ready", "Running", false, 1);
        let e = pod("done", "Succeeded", false, 30);
        let all = [&a, &b, &c, &d, &e];
        let names: Vec<_> = to_delete(&all, 3).iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["pending", "running-not-ready", "new-ready"]);
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = pod("a", "Running", true, 100);
        let at = |s| Timestamp::from_second(s).unwrap();
        assert!(p.available(0, at(101)));
        assert!(!p.available(10, at(105)));
        assert!(p.available(10, at(111)));
        let mut t = p.clone();
        t.terminating = true;
        assert!(!t.available(0, at(200)));
    }
}
