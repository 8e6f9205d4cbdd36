//! Workload objects — `Deployment`, `ReplicaSet`, `DaemonSet` (apps/v1) and `Job` (batch/v1):
//! the API server's defaults and validation, and the pods their controllers make from the
//! pod template (names, labels, owner references).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::{Pod, PodTemplateSpec};
use crate::field::FieldError;

/// One workload object, of any of the kinds peapod runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    /// apps/v1 Deployment.
    Deployment(Deployment),
    /// apps/v1 ReplicaSet.
    ReplicaSet(ReplicaSet),
    /// apps/v1 DaemonSet.
    DaemonSet(DaemonSet),
    /// batch/v1 Job.
    Job(Job),
}

/// The kinds of [`Workload`], by their plural (the store's directory names), in the order a
/// controller pass takes them.
pub const KINDS: &[&str] = &["deployments", "replicasets", "daemonsets", "jobs"];

/// `Job` pods' labels naming their Job (the first two are the current ones; the API server
/// still sets the older two as well).
pub const JOB_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// The label a Deployment's ReplicaSets and their pods carry: the template's hash.
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

impl Workload {
    /// The kind, as `kind:` spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Workload::Deployment(_) => "Deployment",
            Workload::ReplicaSet(_) => "ReplicaSet",
            Workload::DaemonSet(_) => "DaemonSet",
            Workload::Job(_) => "Job",
        }
    }

    /// `apps/v1` or `batch/v1`.
    pub fn api_version(&self) -> &'static str {
        match self {
            Workload::Job(_) => "batch/v1",
            _ => "apps/v1",
        }
    }

    /// The plural, lower case (`deployments`), as the store and kubectl's URLs name it.
    pub fn plural(&self) -> &'static str {
        match self {
            Workload::Deployment(_) => "deployments",
            Workload::ReplicaSet(_) => "replicasets",
            Workload::DaemonSet(_) => "daemonsets",
            Workload::Job(_) => "jobs",
        }
    }

    /// What kubectl prints before `/NAME`: `deployment.apps`, `job.batch`.
    pub fn resource(&self) -> String {
        let group = self.api_version().trim_end_matches("/v1");
        format!("{}.{group}", self.kind().to_lowercase())
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Workload::Deployment(o) => &o.metadata,
            Workload::ReplicaSet(o) => &o.metadata,
            Workload::DaemonSet(o) => &o.metadata,
            Workload::Job(o) => &o.metadata,
        }
    }

    /// The object's metadata, to change.
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Workload::Deployment(o) => &mut o.metadata,
            Workload::ReplicaSet(o) => &mut o.metadata,
            Workload::DaemonSet(o) => &mut o.metadata,
            Workload::Job(o) => &mut o.metadata,
        }
    }

    /// Name and namespace (`default` when unset).
    pub fn name(&self) -> (String, String) {
        let m = self.metadata();
        (
            m.namespace.clone().unwrap_or_else(|| "default".into()),
            m.name.clone().unwrap_or_default(),
        )
    }

    /// The pod template (an empty one if the spec is missing).
    pub fn template(&self) -> PodTemplateSpec {
        match self {
            Workload::Deployment(o) => o.spec.as_ref().map(|s| s.template.clone()),
            Workload::ReplicaSet(o) => o.spec.as_ref().and_then(|s| s.template.clone()),
            Workload::DaemonSet(o) => o.spec.as_ref().map(|s| s.template.clone()),
            Workload::Job(o) => o.spec.as_ref().map(|s| s.template.clone()),
        }
        .unwrap_or_default()
    }

    fn template_mut(&mut self) -> Option<&mut PodTemplateSpec> {
        match self {
            Workload::Deployment(o) => o.spec.as_mut().map(|s| &mut s.template),
            Workload::ReplicaSet(o) => o.spec.as_mut().and_then(|s| s.template.as_mut()),
            Workload::DaemonSet(o) => o.spec.as_mut().map(|s| &mut s.template),
            Workload::Job(o) => o.spec.as_mut().map(|s| &mut s.template),
        }
    }

    /// The label selector.
    pub fn selector(&self) -> Option<&LabelSelector> {
        match self {
            Workload::Deployment(o) => o.spec.as_ref().map(|s| &s.selector),
            Workload::ReplicaSet(o) => o.spec.as_ref().map(|s| &s.selector),
            Workload::DaemonSet(o) => o.spec.as_ref().map(|s| &s.selector),
            Workload::Job(o) => o.spec.as_ref().and_then(|s| s.selector.as_ref()),
        }
    }

    /// The spec alone, as JSON (what decides whether an apply changed anything).
    pub fn spec_value(&self) -> serde_json::Value {
        match self {
            Workload::Deployment(o) => serde_json::to_value(&o.spec),
            Workload::ReplicaSet(o) => serde_json::to_value(&o.spec),
            Workload::DaemonSet(o) => serde_json::to_value(&o.spec),
            Workload::Job(o) => serde_json::to_value(&o.spec),
        }
        .expect("specs serialize")
    }

    /// The whole object as JSON, with `apiVersion` and `kind`.
    pub fn to_value(&self) -> serde_json::Value {
        let mut v = match self {
            Workload::Deployment(o) => serde_json::to_value(o),
            Workload::ReplicaSet(o) => serde_json::to_value(o),
            Workload::DaemonSet(o) => serde_json::to_value(o),
            Workload::Job(o) => serde_json::to_value(o),
        }
        .expect("objects serialize");
        v["apiVersion"] = self.api_version().into();
        v["kind"] = self.kind().into();
        v
    }

    /// Reads a stored object of the kind whose plural is `plural`.
    pub fn from_value(plural: &str, v: serde_json::Value) -> Option<Workload> {
        Some(match plural {
            "deployments" => Workload::Deployment(serde_json::from_value(v).ok()?),
            "replicasets" => Workload::ReplicaSet(serde_json::from_value(v).ok()?),
            "daemonsets" => Workload::DaemonSet(serde_json::from_value(v).ok()?),
            "jobs" => Workload::Job(serde_json::from_value(v).ok()?),
            _ => return None,
        })
    }

    /// An owner reference to this object, as its controller.
    pub fn owner_reference(&self) -> OwnerReference {
        let m = self.metadata();
        OwnerReference {
            api_version: self.api_version().into(),
            kind: self.kind().into(),
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

/// The API server's defaults for a workload (before it has a UID; see [`assign_uid`]).
pub fn defaults(w: &mut Workload) {
    let ns = w.metadata_mut().namespace.get_or_insert_with(String::new);
    if ns.is_empty() {
        *ns = "default".into();
    }
    let pct = |s: &str| Some(IntOrString::String(s.into()));
    match w {
        Workload::Deployment(d) => {
            if let Some(s) = d.spec.as_mut() {
                s.replicas.get_or_insert(1);
                s.revision_history_limit.get_or_insert(10);
                s.progress_deadline_seconds.get_or_insert(600);
                let st = s.strategy.get_or_insert_with(Default::default);
                let ty = st.type_.get_or_insert_with(|| "RollingUpdate".into());
                if ty == "RollingUpdate" {
                    let ru = st.rolling_update.get_or_insert_with(Default::default);
                    if ru.max_surge.is_none() {
                        ru.max_surge = pct("25%");
                    }
                    if ru.max_unavailable.is_none() {
                        ru.max_unavailable = pct("25%");
                    }
                }
            }
        }
        Workload::ReplicaSet(r) => {
            if let Some(s) = r.spec.as_mut() {
                s.replicas.get_or_insert(1);
            }
        }
        Workload::DaemonSet(d) => {
            if let Some(s) = d.spec.as_mut() {
                s.revision_history_limit.get_or_insert(10);
                let st = s.update_strategy.get_or_insert_with(Default::default);
                let ty = st.type_.get_or_insert_with(|| "RollingUpdate".into());
                if ty == "RollingUpdate" {
                    let ru = st.rolling_update.get_or_insert_with(Default::default);
                    if ru.max_unavailable.is_none() {
                        ru.max_unavailable = Some(IntOrString::Int(1));
                    }
                    if ru.max_surge.is_none() {
                        ru.max_surge = Some(IntOrString::Int(0));
                    }
                }
            }
        }
        Workload::Job(j) => {
            if let Some(s) = j.spec.as_mut() {
                if s.completions.is_none() && s.parallelism.is_none() {
                    s.completions = Some(1);
                }
                s.parallelism.get_or_insert(1);
                s.backoff_limit.get_or_insert(6);
                s.completion_mode.get_or_insert_with(|| "NonIndexed".into());
                s.suspend.get_or_insert(false);
                s.manual_selector.get_or_insert(false);
                s.pod_replacement_policy
                    .get_or_insert_with(|| "TerminatingOrFailed".into());
            }
        }
    }
    let ns = w.name().0;
    if let Some(t) = w.template_mut() {
        // The template's spec gets a pod's defaults, as the API server gives them; a Job's
        // restart policy is left for validation to require.
        let mut pod = Pod {
            metadata: ObjectMeta {
                namespace: Some(ns),
                ..Default::default()
            },
            spec: t.spec.take(),
            ..Default::default()
        };
        let restart = pod.spec.as_ref().and_then(|s| s.restart_policy.clone());
        crate::defaults::pod(&mut pod);
        if matches!(w, Workload::Job(_)) {
            if let Some(s) = pod.spec.as_mut() {
                s.restart_policy = restart;
            }
        }
        if let Some(t) = w.template_mut() {
            t.spec = pod.spec;
        }
    }
}

/// Gives a new object its UID and, for a Job, the selector and labels the API server
/// generates from it.
pub fn assign_uid(w: &mut Workload, uid: &str) {
    w.metadata_mut().uid = Some(uid.to_string());
    if let Workload::Job(j) = w {
        let name = j.metadata.name.clone().unwrap_or_default();
        let Some(s) = j.spec.as_mut() else { return };
        if s.manual_selector != Some(true) && s.selector.is_none() {
            s.selector = Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(JOB_UID_LABEL.into(), uid.into())])),
                ..Default::default()
            });
        }
        let labels = s.template.metadata.get_or_insert_with(Default::default);
        let labels = labels.labels.get_or_insert_with(Default::default);
        for (k, v) in [
            (JOB_UID_LABEL, uid),
            (JOB_NAME_LABEL, name.as_str()),
            ("controller-uid", uid),
            ("job-name", name.as_str()),
        ] {
            labels.entry(k.into()).or_insert_with(|| v.into());
        }
    }
}

/// Whether a selector's requirements hold for `labels` (`LabelSelectorAsSelector`); an
/// unparsable expression matches nothing.
pub fn selector_matches(sel: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    as_selector(sel).is_ok_and(|s| s.matches(labels))
}

/// A `LabelSelector` as a [`crate::selector::Selector`].
pub fn as_selector(sel: &LabelSelector) -> Result<crate::selector::Selector, String> {
    use crate::selector::{Requirement, Selector};
    let mut reqs = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        reqs.push(Requirement::In(k.clone(), vec![v.clone()]));
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default();
        reqs.push(match e.operator.as_str() {
            "In" => Requirement::In(e.key.clone(), values),
            "NotIn" => Requirement::NotIn(e.key.clone(), values),
            "Exists" => Requirement::Exists(e.key.clone()),
            "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
            other => return Err(format!("{other:?} is not a valid label selector operator")),
        });
    }
    Ok(Selector(reqs))
}

fn non_negative(path: &str, v: Option<i32>, errs: &mut Vec<FieldError>) {
    if let Some(v) = v.filter(|v| *v < 0) {
        errs.push(FieldError::invalid(
            path,
            v,
            "must be greater than or equal to 0",
        ));
    }
}

fn selector_errors(sel: Option<&LabelSelector>, w: &Workload, errs: &mut Vec<FieldError>) {
    let Some(sel) = sel else {
        errs.push(FieldError::required("spec.selector", ""));
        return;
    };
    let empty = sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty());
    if empty {
        errs.push(FieldError::new(
            "spec.selector",
            crate::field::ErrorKind::Invalid,
            Raw("{}".into()),
            format!(
                "empty selector is invalid for {}",
                w.kind().to_lowercase().replace("replicaset", "deployment")
            ),
        ));
        return;
    }
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let path = format!("spec.selector.matchExpressions[{i}]");
        match e.operator.as_str() {
            "In" | "NotIn" if e.values.as_ref().is_none_or(|v| v.is_empty()) => {
                errs.push(FieldError::required(
                    format!("{path}.values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ))
            }
            "Exists" | "DoesNotExist" if e.values.as_ref().is_some_and(|v| !v.is_empty()) => errs
                .push(FieldError::forbidden(
                    format!("{path}.values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::not_supported(
                format!("{path}.operator"),
                other,
                &["In", "NotIn", "Exists", "DoesNotExist"],
            )),
        }
    }
    let labels = w.template().metadata.and_then(|m| m.labels);
    if !selector_matches(sel, labels.as_ref()) {
        let shown: Vec<String> = labels
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k:?}:{v:?}"))
            .collect();
        errs.push(FieldError::new(
            "spec.template.metadata.labels",
            crate::field::ErrorKind::Invalid,
            Raw(format!("map[string]string{{{}}}", shown.join(", "))),
            "`selector` does not match template `labels`",
        ));
    }
}

/// A value shown as it is, unquoted.
struct Raw(String);

impl crate::field::Value for Raw {
    fn render(&self) -> String {
        self.0.clone()
    }
}

fn int_or_percent(path: &str, v: Option<&IntOrString>, errs: &mut Vec<FieldError>) -> bool {
    match v {
        None | Some(IntOrString::Int(0)) => false,
        Some(IntOrString::Int(n)) if *n < 0 => {
            errs.push(FieldError::invalid(
                path,
                *n,
                "must be greater than or equal to 0",
            ));
            false
        }
        Some(IntOrString::Int(_)) => true,
        Some(IntOrString::String(s)) => {
            match s.strip_suffix('%').and_then(|n| n.parse::<u32>().ok()) {
                Some(n) if n > 100 => {
                    errs.push(FieldError::invalid(
                        path,
                        s,
                        "must not be greater than 100%",
                    ));
                    true
                }
                Some(n) => n > 0,
                None => {
                    errs.push(FieldError::invalid(
                        path,
                        s,
                        "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                    ));
                    false
                }
            }
        }
    }
}

/// Something peapod does not do, named by its field.
fn unsupported(path: &str, what: &str) -> FieldError {
    FieldError::forbidden(path, format!("not supported by peapod: {what}"))
}

/// The API server's validation of a defaulted workload, and refusals of what peapod does not
/// do (each naming its field).
pub fn validate(w: &Workload) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let m = w.metadata();
    match m.name.as_deref() {
        None | Some("") => errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(n) if !crate::validate::is_dns1123_subdomain(n) || n.len() > 253 => errs.push(
            FieldError::invalid("metadata.name", n, crate::validate::SUBDOMAIN_MSG),
        ),
        Some(_) => {}
    }
    if let Some(l) = &m.labels {
        crate::names::labels("metadata.labels", l, &mut errs);
    }
    if let Some(a) = &m.annotations {
        crate::names::annotations("metadata.annotations", a, &mut errs);
    }
    let has_spec = match w {
        Workload::Deployment(d) => d.spec.is_some(),
        Workload::ReplicaSet(r) => r.spec.as_ref().is_some_and(|s| s.template.is_some()),
        Workload::DaemonSet(d) => d.spec.is_some(),
        Workload::Job(j) => j.spec.is_some(),
    };
    if !has_spec {
        errs.push(FieldError::required(
            if matches!(w, Workload::ReplicaSet(_)) {
                "spec.template"
            } else {
                "spec"
            },
            "",
        ));
        return errs;
    }
    let template = w.template();
    let restart = template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone());
    match w {
        Workload::Deployment(d) => {
            let s = d.spec.as_ref().expect("checked");
            non_negative("spec.replicas", s.replicas, &mut errs);
            non_negative("spec.minReadySeconds", s.min_ready_seconds, &mut errs);
            selector_errors(Some(&s.selector), w, &mut errs);
            let st = s.strategy.clone().unwrap_or_default();
            match st.type_.as_deref() {
                Some("Recreate") if st.rolling_update.is_some() => {
                    errs.push(FieldError::forbidden(
                        "spec.strategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'Recreate'",
                    ))
                }
                Some("RollingUpdate") => {
                    let ru = st.rolling_update.unwrap_or_default();
                    let surge = int_or_percent(
                        "spec.strategy.rollingUpdate.maxSurge",
                        ru.max_surge.as_ref(),
                        &mut errs,
                    );
                    let unavailable = int_or_percent(
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        ru.max_unavailable.as_ref(),
                        &mut errs,
                    );
                    if !surge && !unavailable {
                        errs.push(FieldError::invalid(
                            "spec.strategy.rollingUpdate.maxUnavailable",
                            0,
                            "may not be 0 when `maxSurge` is 0",
                        ));
                    }
                }
                Some("Recreate") => {}
                other => errs.push(FieldError::not_supported(
                    "spec.strategy.type",
                    other.unwrap_or_default(),
                    &["Recreate", "RollingUpdate"],
                )),
            }
            if s.paused == Some(true) {
                errs.push(unsupported(
                    "spec.paused",
                    "a paused Deployment (there is no `rollout resume`)",
                ));
            }
        }
        Workload::ReplicaSet(r) => {
            let s = r.spec.as_ref().expect("checked");
            non_negative("spec.replicas", s.replicas, &mut errs);
            non_negative("spec.minReadySeconds", s.min_ready_seconds, &mut errs);
            selector_errors(Some(&s.selector), w, &mut errs);
        }
        Workload::DaemonSet(d) => {
            let s = d.spec.as_ref().expect("checked");
            non_negative("spec.minReadySeconds", s.min_ready_seconds, &mut errs);
            selector_errors(Some(&s.selector), w, &mut errs);
            let st = s.update_strategy.clone().unwrap_or_default();
            match st.type_.as_deref() {
                Some("RollingUpdate" | "OnDelete") => {}
                other => errs.push(FieldError::not_supported(
                    "spec.updateStrategy.type",
                    other.unwrap_or_default(),
                    &["OnDelete", "RollingUpdate"],
                )),
            }
        }
        Workload::Job(j) => {
            let s = j.spec.as_ref().expect("checked");
            non_negative("spec.parallelism", s.parallelism, &mut errs);
            non_negative("spec.completions", s.completions, &mut errs);
            non_negative("spec.backoffLimit", s.backoff_limit, &mut errs);
            if let Some(d) = s.active_deadline_seconds.filter(|d| *d <= 0) {
                errs.push(FieldError::invalid(
                    "spec.activeDeadlineSeconds",
                    d,
                    "must be greater than 0",
                ));
            }
            if let Some(t) = s.ttl_seconds_after_finished.filter(|t| *t < 0) {
                errs.push(FieldError::invalid(
                    "spec.ttlSecondsAfterFinished",
                    t,
                    "must be greater than or equal to 0",
                ));
            }
            if s.manual_selector == Some(true) || s.selector.is_some() {
                selector_errors(s.selector.as_ref(), w, &mut errs);
            }
            match restart.as_deref() {
                Some("OnFailure" | "Never") => {}
                None | Some("") => errs.push(FieldError::required(
                    "spec.template.spec.restartPolicy",
                    "valid values: \"OnFailure\", \"Never\"",
                )),
                Some(other) => errs.push(FieldError::not_supported(
                    "spec.template.spec.restartPolicy",
                    other,
                    &["OnFailure", "Never"],
                )),
            }
            match s.completion_mode.as_deref() {
                Some("NonIndexed") | None => {}
                Some("Indexed") => errs.push(unsupported(
                    "spec.completionMode",
                    "Indexed jobs (NonIndexed only)",
                )),
                Some(other) => errs.push(FieldError::not_supported(
                    "spec.completionMode",
                    other,
                    &["NonIndexed", "Indexed"],
                )),
            }
            for (set, path, what) in [
                (
                    s.pod_failure_policy.is_some(),
                    "spec.podFailurePolicy",
                    "pod failure policies",
                ),
                (
                    s.success_policy.is_some(),
                    "spec.successPolicy",
                    "success policies",
                ),
                (
                    s.backoff_limit_per_index.is_some(),
                    "spec.backoffLimitPerIndex",
                    "per-index back-off limits",
                ),
                (
                    s.max_failed_indexes.is_some(),
                    "spec.maxFailedIndexes",
                    "failed indexes",
                ),
                (
                    s.suspend == Some(true),
                    "spec.suspend",
                    "suspended jobs (there is no way to resume one)",
                ),
                (
                    s.managed_by
                        .as_deref()
                        .is_some_and(|m| m != "kubernetes.io/job-controller"),
                    "spec.managedBy",
                    "controllers other than peapod's own",
                ),
            ] {
                if set {
                    errs.push(unsupported(path, what));
                }
            }
        }
    }
    if !matches!(w, Workload::Job(_)) && restart.as_deref() != Some("Always") {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            restart.unwrap_or_default(),
            &["Always"],
        ));
    }
    // The template is validated as the pods made from it will be.
    let mut pod = template_pod(w, &template);
    pod.metadata.name = Some("template".into());
    for mut e in crate::validate::pod(&pod) {
        if e.path.starts_with("metadata.name") {
            continue;
        }
        if matches!(w, Workload::Job(_)) && e.path == "spec.restartPolicy" {
            continue;
        }
        e.path = format!("spec.template.{}", e.path);
        errs.push(e);
    }
    errs
}

/// The pod `template` makes for `owner`, not yet named: namespace, labels, annotations, the
/// owner reference, the spec.
pub fn template_pod(owner: &Workload, template: &PodTemplateSpec) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            namespace: Some(owner.name().0),
            labels: meta.labels,
            annotations: meta.annotations,
            owner_references: Some(vec![owner.owner_reference()]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        ..Default::default()
    }
}

/// The characters Kubernetes' generated names are made of (`rand.SafeEncodeString`): no
/// vowels, no digits easily confused with letters.
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `rand.SafeEncodeString`: each byte mapped into [`SAFE`].
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| SAFE[b as usize % SAFE.len()] as char)
        .collect()
}

/// A random suffix of `n` safe characters, from `random` bytes (one per character), as the
/// API server's `generateName` makes them.
pub fn suffix(random: &[u8]) -> String {
    random
        .iter()
        .map(|b| SAFE[*b as usize % SAFE.len()] as char)
        .collect()
}

/// The template's hash as a Deployment's controller names its ReplicaSets: FNV-1a (32 bits)
/// of the template (its canonical JSON here) and the collision count, in safe characters.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut h: u32 = 0x811c9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(&serde_json::to_vec(template).expect("templates serialize"));
    if let Some(c) = collision_count {
        feed(&c.to_le_bytes());
    }
    safe_encode(&h.to_string())
}

/// An absolute number from an int-or-percent of `total`, rounding up or down
/// (`intstr.GetScaledValueFromIntOrPercent`).
pub fn scaled(v: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    match v {
        None => 0,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => {
            let p: i64 = s
                .strip_suffix('%')
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let x = p * i64::from(total);
            (if round_up { (x + 99) / 100 } else { x / 100 }) as i32
        }
    }
}

#[cfg(test)]
#[path = "workloads_tests.rs"]
mod tests;
