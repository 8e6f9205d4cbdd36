//! What each controller does in one pass, decided from the object, its pods and the time:
//! pure functions, so that every rule has a unit test.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use peapod_types::k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetStatus, Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet,
    ReplicaSetSpec, ReplicaSetStatus,
};
use peapod_types::k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use peapod_types::meta::{LabelSelector, ObjectMeta, Time};
use peapod_types::workloads::{TEMPLATE_HASH_LABEL, Workload, scaled, template_hash};

use crate::view::{PodView, to_delete};

/// Pods to start and pods to delete.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ScalePlan {
    /// How many new pods to make from the template.
    pub create: usize,
    /// Names of the pods to delete.
    pub delete: Vec<String>,
}

/// The ReplicaSet controller's pass: as many active pods as `desired`.
pub fn replica_set(desired: i32, pods: &[&PodView]) -> ScalePlan {
    let active = pods.iter().filter(|p| p.active()).count() as i64;
    let diff = active - i64::from(desired.max(0));
    if diff < 0 {
        ScalePlan {
            create: (-diff) as usize,
            delete: Vec::new(),
        }
    } else {
        ScalePlan {
            create: 0,
            delete: to_delete(pods, diff as usize)
                .into_iter()
                .map(|p| p.name.clone())
                .collect(),
        }
    }
}

/// A ReplicaSet's status from its pods.
pub fn replica_set_status(rs: &ReplicaSet, pods: &[&PodView], now: Timestamp) -> ReplicaSetStatus {
    let min_ready = rs
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let active = pods.iter().filter(|p| p.active()).count() as i32;
    ReplicaSetStatus {
        replicas: active,
        fully_labeled_replicas: Some(active),
        ready_replicas: Some(pods.iter().filter(|p| p.ready()).count() as i32),
        available_replicas: Some(pods.iter().filter(|p| p.available(min_ready, now)).count() as i32),
        terminating_replicas: None,
        observed_generation: rs.metadata.generation,
        conditions: None,
    }
}

/// The Deployment controller's pass.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DeploymentPlan {
    /// A ReplicaSet to create for the current template.
    pub create: Option<ReplicaSet>,
    /// ReplicaSets whose `spec.replicas` changes: name, replicas.
    pub scale: Vec<(String, i32)>,
    /// Old ReplicaSets, empty, beyond `revisionHistoryLimit`, to delete.
    pub delete: Vec<String>,
    /// The Deployment's new status.
    pub status: DeploymentStatus,
}

/// The annotation that numbers a Deployment's ReplicaSets.
const REVISION: &str = "deployment.kubernetes.io/revision";

fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// The ReplicaSet a Deployment makes for its current template: named `NAME-HASH`, labelled
/// and selected by the hash as well, owned by the Deployment.
pub fn new_replica_set(d: &Deployment, hash: &str, revision: i64, replicas: i32) -> ReplicaSet {
    let w = Workload::Deployment(d.clone());
    let spec = d.spec.clone().unwrap_or_default();
    let mut template = spec.template.clone();
    let tm = template.metadata.get_or_insert_with(Default::default);
    tm.labels
        .get_or_insert_with(Default::default)
        .insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    let mut selector: LabelSelector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    let mut labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    let desired = spec.replicas.unwrap_or(1);
    let surge = match &spec.strategy {
        Some(s) if s.type_.as_deref() == Some("RollingUpdate") => scaled(
            s.rolling_update.as_ref().and_then(|r| r.max_surge.as_ref()),
            desired,
            true,
        ),
        _ => 0,
    };
    let (ns, name) = w.name();
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}")),
            namespace: Some(ns),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([
                (REVISION.to_string(), revision.to_string()),
                (
                    "deployment.kubernetes.io/desired-replicas".into(),
                    desired.to_string(),
                ),
                (
                    "deployment.kubernetes.io/max-replicas".into(),
                    (desired + surge).to_string(),
                ),
            ])),
            owner_references: Some(vec![w.owner_reference()]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

/// The Deployment controller's pass over `d` and the ReplicaSets it owns (each with the
/// pods it owns): a rollout by its strategy, scaling, history cleanup and status.
pub fn deployment(
    d: &Deployment,
    sets: &[(ReplicaSet, Vec<&PodView>)],
    now: Timestamp,
) -> DeploymentPlan {
    let spec = d.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1).max(0);
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let hash = template_hash(
        &spec.template,
        d.status.as_ref().and_then(|s| s.collision_count),
    );
    let name = d.metadata.name.clone().unwrap_or_default();
    let new_name = format!("{name}-{hash}");
    let mut plan = DeploymentPlan::default();
    // Replicas as this pass leaves them, by ReplicaSet name.
    let mut replicas: BTreeMap<String, i32> = sets
        .iter()
        .map(|(rs, _)| {
            (
                rs.metadata.name.clone().unwrap_or_default(),
                rs_replicas(rs),
            )
        })
        .collect();
    let available_of = |rs_name: &str| -> i32 {
        sets.iter()
            .filter(|(rs, _)| rs.metadata.name.as_deref() == Some(rs_name))
            .flat_map(|(_, pods)| pods.iter())
            .filter(|p| p.available(min_ready, now))
            .count() as i32
    };
    let active_of = |rs_name: &str| -> i32 {
        sets.iter()
            .filter(|(rs, _)| rs.metadata.name.as_deref() == Some(rs_name))
            .flat_map(|(_, pods)| pods.iter())
            .filter(|p| p.active())
            .count() as i32
    };
    // Old sets, oldest first.
    let mut old: Vec<&ReplicaSet> = sets
        .iter()
        .map(|(rs, _)| rs)
        .filter(|rs| rs.metadata.name.as_deref() != Some(new_name.as_str()))
        .collect();
    old.sort_by_key(|rs| {
        (
            revision(rs),
            rs.metadata.creation_timestamp.clone().map(|t| t.0),
        )
    });
    let old_names: Vec<String> = old
        .iter()
        .map(|rs| rs.metadata.name.clone().unwrap_or_default())
        .collect();
    let exists = replicas.contains_key(&new_name);
    let old_replicas: i32 = old_names.iter().map(|n| replicas[n]).sum();
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let ru = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.clone());
    let max_surge = if recreate {
        0
    } else {
        scaled(
            ru.as_ref().and_then(|r| r.max_surge.as_ref()),
            desired,
            true,
        )
    };
    let max_unavailable = if recreate {
        0
    } else {
        scaled(
            ru.as_ref().and_then(|r| r.max_unavailable.as_ref()),
            desired,
            false,
        )
        .min(desired)
    };
    // The new set's replicas.
    let mut new_replicas = replicas.get(&new_name).copied().unwrap_or(0);
    if recreate {
        for n in &old_names {
            replicas.insert(n.clone(), 0);
        }
        let old_pods: i32 = old_names.iter().map(|n| active_of(n)).sum();
        new_replicas = if old_pods == 0 { desired } else { 0 };
    } else if old_replicas == 0 {
        new_replicas = desired;
    } else {
        let total: i32 = replicas.values().sum::<i32>() + if exists { 0 } else { new_replicas };
        if new_replicas < desired {
            let room = (desired + max_surge - total).max(0);
            new_replicas += room.min(desired - new_replicas);
        } else if new_replicas > desired {
            new_replicas = desired;
        }
        // Old sets shrink while at least desired - maxUnavailable stay available.
        let min_available = desired - max_unavailable;
        let new_unavailable = (new_replicas - available_of(&new_name)).max(0);
        let all: i32 = replicas
            .iter()
            .filter(|(n, _)| **n != new_name)
            .map(|(_, r)| *r)
            .sum::<i32>()
            + new_replicas;
        let mut budget = (all - min_available - new_unavailable).max(0);
        // First the old sets' pods that are not available anyway.
        for n in &old_names {
            let r = replicas[n];
            let unhealthy = (r - available_of(n)).max(0).min(budget);
            replicas.insert(n.clone(), r - unhealthy);
            budget -= unhealthy;
        }
        // Then available ones, as long as enough stay available.
        let available: i32 = replicas.keys().map(|n| available_of(n)).sum::<i32>();
        let mut can = (available - min_available).max(0).min(budget);
        for n in &old_names {
            let r = replicas[n];
            let down = r.min(can);
            replicas.insert(n.clone(), r - down);
            can -= down;
        }
    }
    if !exists {
        let next = old.iter().map(|rs| revision(rs)).max().unwrap_or(0) + 1;
        plan.create = Some(new_replica_set(d, &hash, next, new_replicas));
    } else if replicas[&new_name] != new_replicas {
        plan.scale.push((new_name.clone(), new_replicas));
    }
    for (rs, _) in sets {
        let n = rs.metadata.name.clone().unwrap_or_default();
        if n != new_name && replicas[&n] != rs_replicas(rs) {
            let r = replicas[&n];
            plan.scale.push((n, r));
        }
    }
    // History: empty old sets beyond the limit, oldest first.
    let limit = spec.revision_history_limit.unwrap_or(10).max(0) as usize;
    let empty: Vec<&String> = old_names
        .iter()
        .filter(|n| replicas[*n] == 0 && active_of(n) == 0)
        .collect();
    if empty.len() > limit {
        plan.delete = empty[..empty.len() - limit]
            .iter()
            .map(|n| n.to_string())
            .collect();
    }
    // Status.
    let pods = || sets.iter().flat_map(|(_, p)| p.iter());
    let total = pods().filter(|p| p.active()).count() as i32;
    let updated = active_of(&new_name);
    let ready = pods().filter(|p| p.ready()).count() as i32;
    let available = pods().filter(|p| p.available(min_ready, now)).count() as i32;
    let old_status = d.status.clone().unwrap_or_default();
    let mut conditions = old_status.conditions.clone().unwrap_or_default();
    let minimum = available >= desired - max_unavailable;
    set_deployment_condition(
        &mut conditions,
        "Available",
        minimum,
        if minimum {
            "MinimumReplicasAvailable"
        } else {
            "MinimumReplicasUnavailable"
        },
        if minimum {
            "Deployment has minimum availability."
        } else {
            "Deployment does not have minimum availability."
        },
        now,
        false,
    );
    let complete = updated == desired
        && available == desired
        && total == desired
        && old_names.iter().all(|n| active_of(n) == 0);
    let counts = (total, updated, ready, available);
    let before = (
        old_status.replicas.unwrap_or(0),
        old_status.updated_replicas.unwrap_or(0),
        old_status.ready_replicas.unwrap_or(0),
        old_status.available_replicas.unwrap_or(0),
    );
    let progressed = counts != before || !exists;
    let deadline =
        SignedDuration::from_secs(i64::from(spec.progress_deadline_seconds.unwrap_or(600)));
    let last_progress = conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .and_then(|c| c.last_update_time.as_ref())
        .map(|t| t.0);
    if complete {
        set_deployment_condition(
            &mut conditions,
            "Progressing",
            true,
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{new_name}\" has successfully progressed."),
            now,
            false,
        );
    } else if !exists {
        set_deployment_condition(
            &mut conditions,
            "Progressing",
            true,
            "NewReplicaSetCreated",
            &format!("Created new replica set \"{new_name}\""),
            now,
            false,
        );
    } else if progressed {
        set_deployment_condition(
            &mut conditions,
            "Progressing",
            true,
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{new_name}\" is progressing."),
            now,
            true,
        );
    } else if last_progress.is_some_and(|t| t + deadline < now) {
        set_deployment_condition(
            &mut conditions,
            "Progressing",
            false,
            "ProgressDeadlineExceeded",
            &format!("ReplicaSet \"{new_name}\" has timed out progressing."),
            now,
            false,
        );
    }
    plan.status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(total),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((desired - available).max(0)),
        conditions: Some(conditions),
        collision_count: old_status.collision_count,
        terminating_replicas: None,
    };
    plan
}

fn set_deployment_condition(
    conditions: &mut Vec<DeploymentCondition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
    touch: bool,
) {
    let status = if status { "True" } else { "False" };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Some(Time(now));
            }
            if touch
                || c.status != status
                || c.reason.as_deref() != Some(reason)
                || c.message.as_deref() != Some(message)
            {
                c.last_update_time = Some(Time(now));
            }
            c.status = status.into();
            c.reason = Some(reason.into());
            c.message = Some(message.into());
        }
        None => conditions.push(DeploymentCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_transition_time: Some(Time(now)),
            last_update_time: Some(Time(now)),
        }),
    }
}

/// The label a DaemonSet's pods carry with the hash of the template they were made from.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// The DaemonSet controller's pass on this one node: one pod from the current template when
/// the node admits it, none otherwise; an out-of-date pod replaced by its update strategy.
pub fn daemon_set(
    ds: &DaemonSet,
    admitted: bool,
    pods: &[&PodView],
    now: Timestamp,
) -> (ScalePlan, DaemonSetStatus) {
    let spec = ds.spec.clone().unwrap_or_default();
    let hash = template_hash(&spec.template, None);
    let current = |p: &&&PodView| p.labels.get(REVISION_HASH_LABEL) == Some(&hash);
    let active: Vec<&PodView> = pods.iter().copied().filter(|p| p.active()).collect();
    let mut plan = ScalePlan::default();
    let on_delete = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        == Some("OnDelete");
    if !admitted {
        plan.delete = active.iter().map(|p| p.name.clone()).collect();
    } else if active.is_empty() {
        plan.create = 1;
    } else {
        let (fresh, stale): (Vec<&PodView>, Vec<&PodView>) =
            active.iter().partition(|p| current(p));
        if !on_delete && !stale.is_empty() {
            let surge = spec
                .update_strategy
                .as_ref()
                .and_then(|s| s.rolling_update.as_ref())
                .map(|r| scaled(r.max_surge.as_ref(), 1, true))
                .unwrap_or(0);
            if surge > 0 {
                // The new pod first; the old one goes once the new one is available.
                match fresh.first() {
                    None => plan.create = 1,
                    Some(f) if f.available(spec.min_ready_seconds.unwrap_or(0), now) => {
                        plan.delete = stale.iter().map(|p| p.name.clone()).collect()
                    }
                    Some(_) => {}
                }
            } else {
                plan.delete = stale.iter().map(|p| p.name.clone()).collect();
            }
        }
        // More than one pod on the node: the newest go.
        let keep_one: Vec<&PodView> = if fresh.is_empty() {
            stale.clone()
        } else {
            fresh.clone()
        };
        if keep_one.len() > 1 {
            for p in to_delete(&keep_one, keep_one.len() - 1) {
                if !plan.delete.contains(&p.name) {
                    plan.delete.push(p.name.clone());
                }
            }
        }
    }
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let status = DaemonSetStatus {
        current_number_scheduled: active.len() as i32,
        desired_number_scheduled: i32::from(admitted),
        number_misscheduled: if admitted { 0 } else { active.len() as i32 },
        number_ready: active.iter().filter(|p| p.ready()).count() as i32,
        number_available: Some(
            active
                .iter()
                .filter(|p| p.available(min_ready, now))
                .count() as i32,
        ),
        number_unavailable: Some(
            (i32::from(admitted)
                - active
                    .iter()
                    .filter(|p| p.available(min_ready, now))
                    .count() as i32)
                .max(0),
        ),
        updated_number_scheduled: Some(active.iter().filter(|p| current(p)).count() as i32),
        observed_generation: ds.metadata.generation,
        collision_count: None,
        conditions: None,
    };
    (plan, status)
}

/// The Job controller's pass.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct JobPlan {
    /// Pods to start.
    pub create: usize,
    /// Pods to delete (the job failed, or parallelism went down).
    pub delete: Vec<String>,
    /// The Job's new status.
    pub status: JobStatus,
    /// The Job finished `ttlSecondsAfterFinished` ago: delete it with its pods.
    pub expired: bool,
    /// When the next pod may start after failures, if creation is held back.
    pub wait_until: Option<Timestamp>,
}

/// The Job controller's back-off before a failed pod is replaced: 10 s, doubled per failure,
/// at most 6 minutes.
pub fn job_backoff(failures: i32) -> SignedDuration {
    if failures <= 0 {
        return SignedDuration::ZERO;
    }
    let secs = 10i64.saturating_mul(1 << (failures - 1).min(6));
    SignedDuration::from_secs(secs.min(360))
}

fn finished_condition(status: &JobStatus) -> Option<&JobCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

fn job_condition(type_: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The Job controller's pass over `job` and the pods it owns.
pub fn job(job: &Job, pods: &[&PodView], now: Timestamp) -> JobPlan {
    let spec = job.spec.clone().unwrap_or_default();
    let mut status = job.status.clone().unwrap_or_default();
    let mut plan = JobPlan::default();
    let active: Vec<&PodView> = pods.iter().copied().filter(|p| p.active()).collect();
    let succeeded = pods.iter().filter(|p| p.phase == "Succeeded").count() as i32;
    let failed = pods.iter().filter(|p| p.phase == "Failed").count() as i32;
    let restarts: i32 = if spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure")
    {
        active.iter().map(|p| p.restarts).sum()
    } else {
        0
    };
    status.start_time.get_or_insert(Time(now));
    status.succeeded = Some(succeeded);
    status.failed = Some(failed);
    status.ready = Some(active.iter().filter(|p| p.ready()).count() as i32);
    status.terminating = Some(pods.iter().filter(|p| p.terminating).count() as i32);
    if let Some(done) = finished_condition(&status).cloned() {
        // Finished: its pods are left as they are; only the TTL remains.
        status.active = Some(active.len() as i32);
        if let (Some(ttl), Some(at)) = (spec.ttl_seconds_after_finished, done.last_transition_time)
        {
            plan.expired = at.0 + SignedDuration::from_secs(i64::from(ttl)) <= now;
        }
        plan.delete = active.iter().map(|p| p.name.clone()).collect();
        plan.status = status;
        return plan;
    }
    let started = status.start_time.as_ref().map_or(now, |t| t.0);
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let failure = if failed + restarts > backoff_limit {
        Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ))
    } else if spec
        .active_deadline_seconds
        .is_some_and(|d| started + SignedDuration::from_secs(d) <= now)
    {
        Some((
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ))
    } else {
        None
    };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some((reason, message)) = failure {
        if !conditions.iter().any(|c| c.type_ == "FailureTarget") {
            conditions.push(job_condition("FailureTarget", reason, message, now));
        }
        plan.delete = active.iter().map(|p| p.name.clone()).collect();
        if active.is_empty() && !pods.iter().any(|p| p.terminating) {
            conditions.push(job_condition("Failed", reason, message, now));
        }
        status.active = Some(active.len() as i32);
        plan.status = status;
        return plan;
    }
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let complete = match spec.completions {
        Some(c) => succeeded >= c,
        // A work queue: done once one pod succeeded and none is left running.
        None => succeeded > 0 && active.is_empty(),
    };
    if complete || (spec.completions.is_none() && succeeded > 0) {
        let (reason, message) = (
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        );
        if !conditions.iter().any(|c| c.type_ == "SuccessCriteriaMet") {
            conditions.push(job_condition("SuccessCriteriaMet", reason, message, now));
        }
        if spec.completions.is_some() {
            plan.delete = active.iter().map(|p| p.name.clone()).collect();
        }
        if active.is_empty() && !pods.iter().any(|p| p.terminating) {
            conditions.push(job_condition("Complete", reason, message, now));
            status.completion_time = Some(Time(now));
        }
        status.active = Some(active.len() as i32);
        plan.status = status;
        return plan;
    }
    let want = match spec.completions {
        Some(c) => parallelism.min(c - succeeded),
        None => parallelism,
    }
    .max(0);
    let have = active.len() as i32;
    if have > want {
        plan.delete = to_delete(&active, (have - want) as usize)
            .into_iter()
            .map(|p| p.name.clone())
            .collect();
    } else if have < want {
        let last_failure = pods
            .iter()
            .filter(|p| p.phase == "Failed")
            .filter_map(|p| p.finished_at.or(Some(p.created)))
            .max();
        let until = last_failure.map(|t| t + job_backoff(failed));
        match until {
            Some(u) if u > now => plan.wait_until = Some(u),
            _ => plan.create = (want - have) as usize,
        }
    }
    status.active = Some(have);
    plan.status = status;
    plan
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
