use super::*;
use peapod_types::workloads::Workload;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_000_000 + s).unwrap()
}

fn pod(name: &str, phase: &str, ready: bool, created: i64) -> PodView {
    PodView {
        name: name.into(),
        namespace: "default".into(),
        uid: format!("uid-{name}"),
        owner: None,
        labels: BTreeMap::new(),
        phase: phase.into(),
        created: at(created),
        terminating: false,
        ready_since: ready.then(|| at(created + 1)),
        restarts: 0,
        finished_at: (phase == "Failed" || phase == "Succeeded").then(|| at(created + 2)),
    }
}

fn load(yaml: &str) -> Workload {
    let mut w = peapod_types::manifest::load(yaml)
        .unwrap()
        .workloads
        .remove(0);
    peapod_types::workloads::assign_uid(&mut w, "owner-uid");
    w.metadata_mut().generation = Some(1);
    w
}

fn deployment(replicas: i32, strategy: &str, image: &str) -> Deployment {
    let Workload::Deployment(d) = load(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: {replicas}\n  strategy: {strategy}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: c, image: {image}}}]}}\n"
    )) else {
        panic!()
    };
    d
}

fn job(spec: &str) -> Job {
    let Workload::Job(j) = load(&format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: pi}}\nspec:\n{spec}  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: busybox}}]\n"
    )) else {
        panic!()
    };
    j
}

#[test]
fn replica_sets_converge_on_their_replicas() {
    let a = pod("a", "Running", true, 1);
    let b = pod("b", "Pending", false, 2);
    let c = pod("c", "Failed", false, 0);
    assert_eq!(
        replica_set(3, &[&a, &b, &c]).create,
        1,
        "a failed pod does not count"
    );
    assert_eq!(
        replica_set(1, &[&a, &b, &c]),
        ScalePlan {
            create: 0,
            delete: vec!["b".into()]
        }
    );
    assert_eq!(replica_set(2, &[&a, &b]), ScalePlan::default());
    let mut t = pod("t", "Running", true, 3);
    t.terminating = true;
    assert_eq!(
        replica_set(2, &[&a, &t]).create,
        1,
        "a terminating pod does not count"
    );
}

#[test]
fn a_new_deployment_makes_its_replica_set_at_full_scale() {
    let d = deployment(3, "{}", "busybox");
    let plan = deployment_plan(&d, &[], at(0));
    let rs = plan.create.expect("a ReplicaSet");
    let hash = template_hash(&d.spec.clone().unwrap().template, None);
    assert_eq!(rs.metadata.name, Some(format!("web-{hash}")));
    assert_eq!(rs.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(rs.metadata.annotations.as_ref().unwrap()[REVISION], "1");
    assert_eq!(
        rs.spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap()[TEMPLATE_HASH_LABEL],
        hash
    );
    let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Deployment", "owner-uid")
    );
    let c = plan.status.conditions.unwrap();
    let progressing = c.iter().find(|c| c.type_ == "Progressing").unwrap();
    assert_eq!(progressing.reason.as_deref(), Some("NewReplicaSetCreated"));
    assert_eq!(
        progressing.message.as_deref(),
        Some(format!("Created new replica set \"web-{hash}\"").as_str())
    );
}

fn deployment_plan(
    d: &Deployment,
    sets: &[(ReplicaSet, Vec<&PodView>)],
    now: Timestamp,
) -> DeploymentPlan {
    super::deployment(d, sets, now)
}

#[test]
fn a_rolling_update_surges_then_retires_old_pods_as_new_ones_become_available() {
    // 4 replicas, 25%: one extra pod, one unavailable.
    let v1 = deployment(4, "{}", "busybox");
    let old = new_replica_set(&v1, "old", 1, 4);
    let olds: Vec<PodView> = (0..4)
        .map(|i| pod(&format!("o{i}"), "Running", true, i))
        .collect();
    let v2 = deployment(4, "{}", "busybox:2");
    let plan = deployment_plan(&v2, &[(old.clone(), olds.iter().collect())], at(100));
    let new = plan.create.clone().expect("the new ReplicaSet");
    assert_eq!(new.metadata.annotations.as_ref().unwrap()[REVISION], "2");
    // maxSurge 1: the new set starts at 1; maxUnavailable 1: one old pod may go at once.
    assert_eq!(new.spec.as_ref().unwrap().replicas, Some(1));
    assert_eq!(plan.scale, vec![("web-old".to_string(), 3)]);
    // Next pass: the new pod is up but not yet ready: nothing more may go.
    let mut new = new;
    let new_name = new.metadata.name.clone().unwrap();
    let mut old = old;
    old.spec.as_mut().unwrap().replicas = Some(3);
    let n0 = pod("n0", "Running", false, 101);
    let olds3: Vec<&PodView> = olds.iter().take(3).collect();
    let plan = deployment_plan(
        &v2,
        &[(old.clone(), olds3.clone()), (new.clone(), vec![&n0])],
        at(102),
    );
    assert_eq!(plan.create, None);
    assert_eq!(plan.scale, vec![(new_name.clone(), 2)], "{:?}", plan.scale);
    // With two new pods ready, old ones are retired.
    new.spec.as_mut().unwrap().replicas = Some(2);
    let n0 = pod("n0", "Running", true, 101);
    let n1 = pod("n1", "Running", true, 102);
    let plan = deployment_plan(
        &v2,
        &[(old.clone(), olds3.clone()), (new.clone(), vec![&n0, &n1])],
        at(110),
    );
    let old_after = plan.scale.iter().find(|(n, _)| n == "web-old").unwrap().1;
    assert!(old_after < 3, "{:?}", plan.scale);
    // Done: the new set at 4, the old at 0, the condition says so.
    new.spec.as_mut().unwrap().replicas = Some(4);
    old.spec.as_mut().unwrap().replicas = Some(0);
    let ns: Vec<PodView> = (0..4)
        .map(|i| pod(&format!("n{i}"), "Running", true, 101 + i))
        .collect();
    let plan = deployment_plan(&v2, &[(old, vec![]), (new, ns.iter().collect())], at(200));
    assert!(plan.scale.is_empty(), "{:?}", plan.scale);
    let c = plan.status.conditions.unwrap();
    let p = c.iter().find(|c| c.type_ == "Progressing").unwrap();
    assert_eq!(p.reason.as_deref(), Some("NewReplicaSetAvailable"));
    let a = c.iter().find(|c| c.type_ == "Available").unwrap();
    assert_eq!(
        (a.status.as_str(), a.reason.as_deref()),
        ("True", Some("MinimumReplicasAvailable"))
    );
    assert_eq!(plan.status.updated_replicas, Some(4));
}

#[test]
fn recreate_stops_every_old_pod_before_the_new_set_grows() {
    let v1 = deployment(2, "{type: Recreate}", "busybox");
    let old = new_replica_set(&v1, "old", 1, 2);
    let olds: Vec<PodView> = (0..2)
        .map(|i| pod(&format!("o{i}"), "Running", true, i))
        .collect();
    let v2 = deployment(2, "{type: Recreate}", "busybox:2");
    let plan = deployment_plan(&v2, &[(old.clone(), olds.iter().collect())], at(10));
    assert_eq!(plan.create.unwrap().spec.unwrap().replicas, Some(0));
    assert_eq!(plan.scale, vec![("web-old".to_string(), 0)]);
    let mut old = old;
    old.spec.as_mut().unwrap().replicas = Some(0);
    let new = new_replica_set(
        &v2,
        &template_hash(&v2.spec.clone().unwrap().template, None),
        2,
        0,
    );
    let plan = deployment_plan(&v2, &[(old, vec![]), (new.clone(), vec![])], at(20));
    assert_eq!(plan.scale, vec![(new.metadata.name.unwrap(), 2)]);
}

#[test]
fn scaling_without_a_template_change_scales_the_current_set() {
    let d = deployment(5, "{}", "busybox");
    let hash = template_hash(&d.spec.clone().unwrap().template, None);
    let rs = new_replica_set(&d, &hash, 1, 2);
    let plan = deployment_plan(&d, &[(rs, vec![])], at(0));
    assert_eq!(plan.scale, vec![(format!("web-{hash}"), 5)]);
}

#[test]
fn history_beyond_the_limit_is_deleted() {
    let mut d = deployment(1, "{}", "busybox");
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    let hash = template_hash(&d.spec.clone().unwrap().template, None);
    let sets: Vec<(ReplicaSet, Vec<&PodView>)> = vec![
        (new_replica_set(&d, "r1", 1, 0), vec![]),
        (new_replica_set(&d, "r2", 2, 0), vec![]),
        (new_replica_set(&d, &hash, 3, 1), vec![]),
    ];
    assert_eq!(deployment_plan(&d, &sets, at(0)).delete, ["web-r1"]);
}

#[test]
fn daemon_sets_run_one_current_pod_where_admitted() {
    let Workload::DaemonSet(ds) = load(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: a}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
    ) else {
        panic!()
    };
    let (plan, status) = daemon_set(&ds, true, &[], at(0));
    assert_eq!((plan.create, status.desired_number_scheduled), (1, 1));
    let (plan, status) = daemon_set(&ds, false, &[], at(0));
    assert_eq!((plan.create, status.desired_number_scheduled), (0, 0));
    // An out-of-date pod is replaced (maxUnavailable 1, maxSurge 0): deleted first.
    let mut stale = pod("agent-x", "Running", true, 0);
    stale
        .labels
        .insert(REVISION_HASH_LABEL.into(), "old".into());
    let (plan, status) = daemon_set(&ds, true, &[&stale], at(10));
    assert_eq!(plan.delete, ["agent-x"]);
    assert_eq!(status.updated_number_scheduled, Some(0));
    let mut fresh = stale.clone();
    fresh.labels.insert(
        REVISION_HASH_LABEL.into(),
        template_hash(&ds.spec.clone().unwrap().template, None),
    );
    let (plan, status) = daemon_set(&ds, true, &[&fresh], at(10));
    assert_eq!(plan, ScalePlan::default());
    assert_eq!(
        (status.number_ready, status.updated_number_scheduled),
        (1, Some(1))
    );
}

#[test]
fn jobs_run_completions_with_parallelism() {
    let j = job("  completions: 3\n  parallelism: 2\n");
    let plan = super::job(&j, &[], at(0));
    assert_eq!(plan.create, 2);
    assert_eq!(plan.status.start_time, Some(Time(at(0))));
    let a = pod("a", "Succeeded", false, 0);
    let b = pod("b", "Running", true, 0);
    let plan = super::job(&j, &[&a, &b], at(5));
    // Two completions left, parallelism 2: a second pod runs beside b.
    assert_eq!(
        (plan.create, plan.status.active, plan.status.succeeded),
        (1, Some(1), Some(1))
    );
    let b = pod("b", "Succeeded", false, 0);
    let plan = super::job(&j, &[&a, &b], at(6));
    assert_eq!(plan.create, 1, "only one completion is left");
    let c = pod("c", "Succeeded", false, 6);
    let mut done = j.clone();
    let plan = super::job(&j, &[&a, &b, &c], at(9));
    let types: Vec<_> = plan
        .status
        .conditions
        .iter()
        .flatten()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
    assert_eq!(plan.status.completion_time, Some(Time(at(9))));
    done.status = Some(plan.status);
    let plan = super::job(&done, &[&a, &b, &c], at(20));
    assert_eq!(
        (plan.create, plan.expired),
        (0, false),
        "a finished job stays finished"
    );
}

#[test]
fn failed_pods_are_replaced_after_back_off_until_the_limit() {
    let j = job("  backoffLimit: 2\n");
    let f1 = pod("f1", "Failed", false, 0); // finished at 2
    let plan = super::job(&j, &[&f1], at(5));
    assert_eq!(
        (plan.create, plan.wait_until),
        (0, Some(at(12))),
        "10 s after the failure"
    );
    assert_eq!(super::job(&j, &[&f1], at(12)).create, 1);
    let f2 = pod("f2", "Failed", false, 20);
    assert_eq!(
        super::job(&j, &[&f1, &f2], at(30)).wait_until,
        Some(at(42)),
        "20 s after two"
    );
    let f3 = pod("f3", "Failed", false, 50);
    let plan = super::job(&j, &[&f1, &f2, &f3], at(60));
    let c = plan.status.conditions.unwrap();
    let failed = c.iter().find(|c| c.type_ == "Failed").unwrap();
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(
        failed.message.as_deref(),
        Some("Job has reached the specified backoff limit")
    );
    assert!(c.iter().any(|c| c.type_ == "FailureTarget"));
    assert_eq!(job_backoff(10), SignedDuration::from_secs(360));
}

#[test]
fn a_job_past_its_deadline_fails_and_its_pods_are_stopped() {
    let mut j = job("  activeDeadlineSeconds: 5\n");
    j.status = Some(JobStatus {
        start_time: Some(Time(at(0))),
        ..Default::default()
    });
    let r = pod("r", "Running", true, 0);
    let plan = super::job(&j, &[&r], at(6));
    assert_eq!(plan.delete, ["r"]);
    let c = plan.status.conditions.clone().unwrap();
    assert_eq!(c[0].type_, "FailureTarget");
    assert_eq!(c[0].reason.as_deref(), Some("DeadlineExceeded"));
    assert!(
        !c.iter().any(|c| c.type_ == "Failed"),
        "not until its pods are gone"
    );
    j.status = Some(plan.status);
    let plan = super::job(&j, &[], at(7));
    let c = plan.status.conditions.unwrap();
    assert!(c.iter().any(|c| c.type_ == "Failed"
        && c.message.as_deref() == Some("Job was active longer than specified deadline")));
}

#[test]
fn finished_jobs_expire_after_their_ttl() {
    let mut j = job("  ttlSecondsAfterFinished: 30\n");
    let a = pod("a", "Succeeded", false, 0);
    let plan = super::job(&j, &[&a], at(10));
    j.status = Some(plan.status);
    assert!(!super::job(&j, &[&a], at(39)).expired);
    assert!(super::job(&j, &[&a], at(40)).expired);
}

#[test]
fn work_queues_finish_when_one_pod_succeeded_and_the_rest_stopped() {
    let j = job("  parallelism: 2\n");
    assert_eq!(super::job(&j, &[], at(0)).create, 2);
    let a = pod("a", "Succeeded", false, 0);
    let b = pod("b", "Running", true, 0);
    let plan = super::job(&j, &[&a, &b], at(5));
    assert_eq!(
        (plan.create, plan.delete.len()),
        (0, 0),
        "the others finish on their own"
    );
    let types: Vec<_> = plan
        .status
        .conditions
        .iter()
        .flatten()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet"]);
    let b = pod("b", "Succeeded", false, 0);
    let plan = super::job(&j, &[&a, &b], at(6));
    assert!(
        plan.status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Complete")
    );
}
