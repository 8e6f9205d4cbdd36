use super::*;

fn load(yaml: &str) -> Result<Workload, String> {
    let m = crate::manifest::load(yaml).map_err(|e| e.to_string())?;
    Ok(m.workloads.into_iter().next().expect("one workload"))
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: busybox}]
";

const JOB: &str = "apiVersion: batch/v1
kind: Job
metadata: {name: pi}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
";

#[test]
fn the_api_servers_defaults() {
    let Workload::Deployment(d) = load(DEPLOYMENT).unwrap() else {
        panic!()
    };
    let s = d.spec.unwrap();
    assert_eq!(s.replicas, Some(1));
    assert_eq!(s.revision_history_limit, Some(10));
    assert_eq!(s.progress_deadline_seconds, Some(600));
    let st = s.strategy.unwrap();
    assert_eq!(st.type_.as_deref(), Some("RollingUpdate"));
    let ru = st.rolling_update.unwrap();
    assert_eq!(ru.max_surge, Some(IntOrString::String("25%".into())));
    assert_eq!(ru.max_unavailable, Some(IntOrString::String("25%".into())));
    let ps = s.template.spec.unwrap();
    assert_eq!(ps.restart_policy.as_deref(), Some("Always"));
    assert_eq!(ps.termination_grace_period_seconds, Some(30));
    assert_eq!(d.metadata.namespace.as_deref(), Some("default"));

    let Workload::Job(j) = load(JOB).unwrap() else {
        panic!()
    };
    let s = j.spec.unwrap();
    assert_eq!(
        (s.completions, s.parallelism, s.backoff_limit),
        (Some(1), Some(1), Some(6))
    );
    assert_eq!(s.completion_mode.as_deref(), Some("NonIndexed"));
    // A work queue: parallelism without completions leaves completions unset.
    let Workload::Job(j) =
        load(&JOB.replace("spec:\n  template", "spec:\n  parallelism: 3\n  template")).unwrap()
    else {
        panic!()
    };
    let s = j.spec.unwrap();
    assert_eq!((s.completions, s.parallelism), (None, Some(3)));
}

#[test]
fn the_api_servers_messages() {
    let e = load(&DEPLOYMENT.replace("labels: {app: web}", "labels: {app: api}")).unwrap_err();
    assert_eq!(
        e,
        "deployment \"web\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"api\"}: `selector` does not match template `labels`"
    );
    let e = load(&DEPLOYMENT.replace(
        "      containers",
        "      restartPolicy: Never\n      containers",
    ))
    .unwrap_err();
    assert_eq!(
        e,
        "deployment \"web\" is invalid: spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
    );
    let e = load(&DEPLOYMENT.replace("spec:\n  selector", "spec:\n  replicas: -1\n  selector"))
        .unwrap_err();
    assert_eq!(
        e,
        "deployment \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    );
    let e = load(&DEPLOYMENT.replace("image: busybox", "image: \"\"")).unwrap_err();
    assert_eq!(
        e,
        "deployment \"web\" is invalid: spec.template.spec.containers[0].image: Required value"
    );
    let e = load(&DEPLOYMENT.replace("  selector: {matchLabels: {app: web}}\n", "")).unwrap_err();
    assert!(e.contains("spec.selector: Required value"), "{e}");
    let e = load(&DEPLOYMENT.replace(
        "spec:\n  selector",
        "spec:\n  strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}\n  selector",
    ))
    .unwrap_err();
    assert_eq!(
        e,
        "deployment \"web\" is invalid: spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"
    );
    let e = load(&JOB.replace("      restartPolicy: Never\n", "")).unwrap_err();
    assert_eq!(
        e,
        "job \"pi\" is invalid: spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
    );
    let e = load(&JOB.replace("Never", "Always")).unwrap_err();
    assert_eq!(
        e,
        "job \"pi\" is invalid: spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
    );
    let e = load("apiVersion: v1\nkind: Deployment\nmetadata: {name: a}\n").unwrap_err();
    assert_eq!(
        e,
        "deployment \"a\" is invalid: apiVersion: Unsupported value: \"v1\": supported values: \"apps/v1\""
    );
}

#[test]
fn what_peapod_does_not_do_is_refused_by_field() {
    let e = load(&JOB.replace(
        "spec:\n  template",
        "spec:\n  completionMode: Indexed\n  completions: 2\n  template",
    ))
    .unwrap_err();
    assert_eq!(
        e,
        "job \"pi\" is invalid: spec.completionMode: Forbidden: not supported by peapod: Indexed jobs (NonIndexed only)"
    );
    let e = load(&JOB.replace(
        "spec:\n  template",
        "spec:\n  podFailurePolicy: {rules: []}\n  template",
    ))
    .unwrap_err();
    assert!(
        e.contains("spec.podFailurePolicy: Forbidden: not supported by peapod"),
        "{e}"
    );
    let e = load(&DEPLOYMENT.replace("spec:\n  selector", "spec:\n  paused: true\n  selector"))
        .unwrap_err();
    assert!(e.contains("spec.paused: Forbidden"), "{e}");
}

#[test]
fn jobs_get_their_selector_and_labels_from_their_uid() {
    let mut w = load(JOB).unwrap();
    assign_uid(&mut w, "u-1");
    let t = w.template();
    let labels = t.metadata.unwrap().labels.unwrap();
    assert_eq!(labels[JOB_UID_LABEL], "u-1");
    assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
    assert_eq!(labels["job-name"], "pi");
    assert!(selector_matches(w.selector().unwrap(), Some(&labels)));
    assert_eq!(w.resource(), "job.batch");
    let pod = template_pod(&w, &w.template());
    let owner = &pod.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("Job", "pi", "u-1")
    );
    assert_eq!(owner.controller, Some(true));
}

#[test]
fn names_and_hashes_as_kubernetes_makes_them() {
    // rand.SafeEncodeString maps each byte into the alphabet: digits become 4-9, b, c, d, f.
    assert_eq!(safe_encode("0123456789"), "456789bcdf");
    assert_eq!(suffix(&[0, 1, 26, 27, 255]), "bc9bq");
    let w = load(DEPLOYMENT).unwrap();
    let t = w.template();
    let h = template_hash(&t, None);
    assert_eq!(h, template_hash(&t, None), "stable");
    assert!(h.chars().all(|c| "456789bcdf".contains(c)), "{h}");
    assert_ne!(
        h,
        template_hash(&t, Some(1)),
        "the collision count changes it"
    );
    let other = load(&DEPLOYMENT.replace("busybox", "busybox:1")).unwrap();
    assert_ne!(h, template_hash(&other.template(), None));
}

#[test]
fn int_or_percent_scaled_as_kubernetes_rounds() {
    let p = |s: &str| IntOrString::String(s.into());
    assert_eq!(scaled(Some(&p("25%")), 3, true), 1);
    assert_eq!(scaled(Some(&p("25%")), 3, false), 0);
    assert_eq!(scaled(Some(&p("25%")), 4, false), 1);
    assert_eq!(scaled(Some(&IntOrString::Int(2)), 10, false), 2);
    assert_eq!(scaled(None, 10, true), 0);
}

#[test]
fn label_selectors_with_expressions() {
    let sel: LabelSelector = serde_json::from_value(serde_json::json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}, {"key": "x", "operator": "DoesNotExist"}]
    }))
    .unwrap();
    let l = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert!(selector_matches(
        &sel,
        Some(&l(&[("app", "web"), ("tier", "b")]))
    ));
    assert!(!selector_matches(
        &sel,
        Some(&l(&[("app", "web"), ("tier", "c")]))
    ));
    assert!(!selector_matches(
        &sel,
        Some(&l(&[("app", "web"), ("tier", "a"), ("x", "1")]))
    ));
}
