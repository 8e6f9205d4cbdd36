//! Manifests: YAML or JSON, one or many documents: `Pod`, `List`, `Secret`, `ConfigMap`,
//! `PersistentVolumeClaim`, and the workloads `Deployment`, `ReplicaSet`, `DaemonSet` (apps/v1)
//! and `Job` (batch/v1).
//! YAML is read as `kubectl` reads it ([`crate::yaml`]).
//!
//! Decoding is strict, like `kubectl apply --validate=strict`: a field the schema does not
//! know is an error naming its path, and so is a value of the wrong type. Syntax errors carry
//! the line and column the YAML parser reports.

use std::fmt;

use serde_json::Value;

use crate::api::{ConfigMap, PersistentVolumeClaim, Pod, Secret};
use crate::field::{ErrorKind, FieldError};

/// The objects found in one manifest file.
#[derive(Debug, Default, Clone)]
pub struct Manifests {
    /// Pods, in the order they appear.
    pub pods: Vec<Pod>,
    /// Secrets, kept for pods that name them (for example in `imagePullSecrets`).
    pub secrets: Vec<Secret>,
    /// ConfigMaps.
    pub config_maps: Vec<ConfigMap>,
    /// PersistentVolumeClaims.
    pub claims: Vec<PersistentVolumeClaim>,
    /// Deployments, ReplicaSets, DaemonSets and Jobs.
    pub workloads: Vec<crate::workloads::Workload>,
    /// The API server's warnings about what was accepted, as `Warning: ...` lines say them.
    pub warnings: Vec<String>,
}

impl Manifests {
    /// Puts every object that names no namespace in `namespace`; one that names another
    /// namespace is refused with kubectl's message.
    pub fn in_namespace(&mut self, namespace: &str) -> Result<(), ManifestError> {
        let metas = (self.pods.iter_mut().map(|o| &mut o.metadata))
            .chain(self.secrets.iter_mut().map(|o| &mut o.metadata))
            .chain(self.config_maps.iter_mut().map(|o| &mut o.metadata))
            .chain(self.claims.iter_mut().map(|o| &mut o.metadata))
            .chain(self.workloads.iter_mut().map(|o| o.metadata_mut()));
        for meta in metas {
            match meta.namespace.as_deref() {
                None | Some("") => meta.namespace = Some(namespace.to_string()),
                Some(ns) if ns == namespace => {}
                Some(ns) => {
                    return Err(ManifestError::Namespace {
                        object: ns.to_string(),
                        asked: namespace.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// The problems found in one object of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectErrors {
    /// The object, as `pod "web"` or `document 2`.
    pub object: String,
    /// Every problem found, by field path.
    pub errors: Vec<FieldError>,
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The text is not YAML (or JSON); the message has the line and column.
    #[error("invalid YAML: {0}")]
    Syntax(String),
    /// One or more objects are invalid.
    #[error("{}", render_invalid(.0))]
    Invalid(Vec<ObjectErrors>),
    /// The manifest holds no object at all.
    #[error("no objects found in the manifest")]
    Empty,
    /// An object names a namespace other than the one asked for (`apply -n`).
    #[error(
        "the namespace from the provided object {object:?} does not match the namespace {asked:?}. You must pass '--namespace={object}' to perform this operation."
    )]
    Namespace {
        /// The object's namespace.
        object: String,
        /// The namespace asked for.
        asked: String,
    },
}

impl ManifestError {
    /// All field errors, flattened, for tests and tools.
    pub fn field_errors(&self) -> Vec<&FieldError> {
        match self {
            ManifestError::Invalid(objs) => objs.iter().flat_map(|o| o.errors.iter()).collect(),
            _ => Vec::new(),
        }
    }
}

fn render_invalid(objs: &[ObjectErrors]) -> String {
    let mut out = String::new();
    for (i, o) in objs.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if o.errors.len() == 1 {
            out.push_str(&format!("{} is invalid: {}", o.object, o.errors[0]));
        } else {
            out.push_str(&format!("{} is invalid:", o.object));
            for e in &o.errors {
                out.push_str(&format!("\n  * {e}"));
            }
        }
    }
    out
}

impl fmt::Display for ObjectErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render_invalid(std::slice::from_ref(self)))
    }
}

/// Parses every document of `text`, strictly. Defaults and validation are applied separately
/// ([`crate::defaults`], [`crate::validate`]); [`load`] does all three.
pub fn parse(text: &str) -> Result<Manifests, ManifestError> {
    let mut out = Manifests::default();
    let mut problems = Vec::new();
    let docs = crate::yaml::documents(text).map_err(ManifestError::Syntax)?;
    for (i, value) in docs.into_iter().enumerate() {
        if value.is_null() {
            continue;
        }
        object(
            value,
            &format!("document {}", i + 1),
            "",
            &mut out,
            &mut problems,
        );
    }
    if !problems.is_empty() {
        return Err(ManifestError::Invalid(problems));
    }
    if out.pods.is_empty()
        && out.secrets.is_empty()
        && out.config_maps.is_empty()
        && out.claims.is_empty()
        && out.workloads.is_empty()
    {
        return Err(ManifestError::Empty);
    }
    Ok(out)
}

/// Parses, defaults and validates: what `apply` needs before it creates anything.
pub fn load(text: &str) -> Result<Manifests, ManifestError> {
    load_in(text, None)
}

/// Like [`load`], with every object that names no namespace put in `namespace`, as
/// `kubectl apply -n NAMESPACE` does (an object that names another one is an error).
pub fn load_in(text: &str, namespace: Option<&str>) -> Result<Manifests, ManifestError> {
    let mut m = parse(text)?;
    if let Some(ns) = namespace {
        m.in_namespace(ns)?;
    }
    let mut problems = Vec::new();
    let mut report = |kind: &str, meta: &crate::meta::ObjectMeta, errors: Vec<FieldError>| {
        if !errors.is_empty() {
            let name = meta.name.clone().unwrap_or_default();
            problems.push(ObjectErrors {
                object: format!("{kind} {name:?}"),
                errors,
            });
        }
    };
    for pod in &mut m.pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        for w in crate::validate::warnings(pod) {
            m.warnings.push(format!("pod {name:?}: {w}"));
        }
        crate::defaults::pod(pod);
        report("pod", &pod.metadata, crate::validate::pod(pod));
    }
    for cm in &mut m.config_maps {
        let errors = crate::objects::config_map(cm);
        report("configmap", &cm.metadata, errors);
    }
    for c in &mut m.claims {
        let errors = crate::objects::claim(c);
        report("persistentvolumeclaim", &c.metadata, errors);
    }
    for w in &mut m.workloads {
        crate::workloads::defaults(w);
        let errors = crate::workloads::validate(w);
        let kind = w.kind().to_lowercase();
        report(&kind, &w.metadata().clone(), errors);
    }
    for secret in &mut m.secrets {
        let errors = crate::objects::secret(secret);
        report("secret", &secret.metadata, errors);
    }
    if !problems.is_empty() {
        return Err(ManifestError::Invalid(problems));
    }
    Ok(m)
}

fn object(
    value: Value,
    label: &str,
    prefix: &str,
    out: &mut Manifests,
    problems: &mut Vec<ObjectErrors>,
) {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let what = match &name {
        Some(n) if !kind.is_empty() => format!("{} {n:?}", kind.to_lowercase()),
        _ => label.to_string(),
    };
    let fail = |problems: &mut Vec<ObjectErrors>, errors: Vec<FieldError>| {
        problems.push(ObjectErrors {
            object: what.clone(),
            errors,
        })
    };
    if kind.is_empty() {
        return fail(
            problems,
            vec![FieldError::required(format!("{prefix}kind"), "")],
        );
    }
    let want = match kind.as_str() {
        "Deployment" | "ReplicaSet" | "DaemonSet" => "apps/v1",
        "Job" => "batch/v1",
        _ => "v1",
    };
    if api_version != want {
        let e = if api_version.is_empty() {
            FieldError::required(format!("{prefix}apiVersion"), "")
        } else {
            FieldError::not_supported(format!("{prefix}apiVersion"), api_version, &[want])
        };
        return fail(problems, vec![e]);
    }
    use crate::workloads::Workload;
    if want == "apps/v1" && value.get("spec").is_some() && value.pointer("/spec/selector").is_none()
    {
        // The typed spec would take a missing selector for an empty one.
        return fail(
            problems,
            vec![FieldError::required(format!("{prefix}spec.selector"), "")],
        );
    }
    match kind.as_str() {
        "Deployment" => match strict(&value, prefix) {
            Ok(o) => out.workloads.push(Workload::Deployment(o)),
            Err(errors) => fail(problems, errors),
        },
        "ReplicaSet" => match strict(&value, prefix) {
            Ok(o) => out.workloads.push(Workload::ReplicaSet(o)),
            Err(errors) => fail(problems, errors),
        },
        "DaemonSet" => match strict(&value, prefix) {
            Ok(o) => out.workloads.push(Workload::DaemonSet(o)),
            Err(errors) => fail(problems, errors),
        },
        "Job" => match strict(&value, prefix) {
            Ok(o) => out.workloads.push(Workload::Job(o)),
            Err(errors) => fail(problems, errors),
        },
        "Pod" => match strict::<Pod>(&value, prefix) {
            Ok(pod) => out.pods.push(pod),
            Err(errors) => fail(problems, errors),
        },
        "Secret" => match strict::<Secret>(&value, prefix) {
            Ok(s) => out.secrets.push(s),
            Err(errors) => fail(problems, errors),
        },
        "ConfigMap" => match strict::<ConfigMap>(&value, prefix) {
            Ok(c) => out.config_maps.push(c),
            Err(errors) => fail(problems, errors),
        },
        "PersistentVolumeClaim" => match strict::<PersistentVolumeClaim>(&value, prefix) {
            Ok(c) => out.claims.push(c),
            Err(errors) => fail(problems, errors),
        },
        "List" => {
            let Some(items) = value.get("items").and_then(Value::as_array) else {
                return fail(
                    problems,
                    vec![FieldError::required(format!("{prefix}items"), "")],
                );
            };
            for (i, item) in items.iter().enumerate() {
                object(
                    item.clone(),
                    &format!("{label} items[{i}]"),
                    &format!("{prefix}items[{i}]."),
                    out,
                    problems,
                );
            }
        }
        other => fail(
            problems,
            vec![FieldError::not_supported(
                format!("{prefix}kind"),
                other,
                &[
                    "Pod",
                    "List",
                    "Secret",
                    "ConfigMap",
                    "PersistentVolumeClaim",
                    "Deployment",
                    "ReplicaSet",
                    "DaemonSet",
                    "Job",
                ],
            )],
        ),
    }
}

/// Pod fields of Kubernetes releases after the one peapod follows, by the end of their path.
const NEWER_FIELDS: &[&str] = &[
    ".restartPolicyRules",
    ".valueFrom.fileKeyRef",
    ".podCertificate",
    ".securityContext.cgroupOptions",
    ".emptyDir.mode",
    "spec.hostnameOverride",
    "spec.workloadRef",
];

/// Deserializes `value` as `T`, turning ignored (unknown) fields and type errors into field
/// errors with their paths.
fn strict<T: serde::de::DeserializeOwned>(
    value: &Value,
    prefix: &str,
) -> Result<T, Vec<FieldError>> {
    let mut unknown = Vec::new();
    let mut record = |p: serde_ignored::Path<'_>| unknown.push(ignored_path(&p));
    let de = serde_ignored::Deserializer::new(value, &mut record);
    let result: Result<T, _> = serde_path_to_error::deserialize(de);
    let mut errors: Vec<FieldError> = unknown
        .into_iter()
        .map(|p| {
            let path = format!("{prefix}{p}");
            if NEWER_FIELDS.iter().any(|f| path.ends_with(f)) {
                FieldError::forbidden(
                    path,
                    format!(
                        "not supported by this version of peapod, which follows the Kubernetes {} API (the field is newer)",
                        crate::KUBERNETES_VERSION
                    ),
                )
            } else {
                FieldError::new(path, ErrorKind::Unknown, (), "")
            }
        })
        .collect();
    match result {
        Ok(v) if errors.is_empty() => Ok(v),
        Ok(_) => Err(errors),
        Err(e) => {
            let path = json_path(e.path());
            let mut msg = e.inner().to_string();
            if msg.starts_with("invalid type: boolean") && msg.ends_with("expected a string") {
                msg.push_str(
                    " (as in kubectl, an unquoted yes, no, on, off, y or n is a boolean: quote it)",
                );
            }
            let join = |field: &str| {
                if path.is_empty() {
                    format!("{prefix}{field}")
                } else {
                    format!("{prefix}{path}.{field}")
                }
            };
            let err = match msg
                .strip_prefix("missing field `")
                .and_then(|r| r.strip_suffix('`'))
            {
                Some(field) => FieldError::required(join(field), ""),
                None => FieldError::new(format!("{prefix}{path}"), ErrorKind::Invalid, (), msg),
            };
            errors.push(err);
            Err(errors)
        }
    }
}

fn ignored_path(p: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match p {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => {
            let parent = ignored_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

fn json_path(p: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut s = String::new();
    for seg in p.iter() {
        match seg {
            Segment::Seq { index } => s.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(key);
            }
            Segment::Enum { variant } => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_and_list() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: busybox}]}\n---\n\
                    {\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"b\"}, \"spec\": {\"containers\": [{\"name\": \"c\", \"image\": \"busybox\"}]}}]}\n";
        let m = parse(text).unwrap();
        let names: Vec<_> = m
            .pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn unknown_fields_are_named_by_path() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    imagePullPolcy: Never\n";
        let err = parse(text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pod \"a\" is invalid: spec.containers[0].imagePullPolcy: Unknown field"
        );
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let err = parse("apiVersion: v1\nkind: Pod\nmetadata: {name: a\n").unwrap_err();
        let s = err.to_string();
        assert!(s.starts_with("invalid YAML: "), "{s}");
        assert!(s.contains("line 4 column 1") || s.contains("line 3"), "{s}");
    }

    #[test]
    fn missing_and_mistyped_fields() {
        let err = load("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{image: busybox}]}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "pod \"a\" is invalid: spec.containers[0].name: Required value"
        );
        let err = parse("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: 3}\n")
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("pod \"a\" is invalid: spec.containers: Invalid value: "),
            "{err}"
        );
    }

    #[test]
    fn newer_fields_are_named_as_such() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  volumes: [{name: v, emptyDir: {mode: 01777}}]\n  containers: [{name: c, image: busybox}]\n";
        assert_eq!(
            parse(text).unwrap_err().to_string(),
            format!(
                "pod \"a\" is invalid: spec.volumes[0].emptyDir.mode: Forbidden: not supported by this version of peapod, which follows the Kubernetes {} API (the field is newer)",
                crate::KUBERNETES_VERSION
            )
        );
    }

    #[test]
    fn apply_n_fills_in_the_namespace_and_refuses_another() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n\
                    apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: dev}\n\
                    spec: {containers: [{name: a, image: b}]}\n";
        let m = load_in(text, Some("dev")).unwrap();
        assert_eq!(m.config_maps[0].metadata.namespace.as_deref(), Some("dev"));
        assert_eq!(m.pods[0].metadata.namespace.as_deref(), Some("dev"));
        let e = load_in(text, Some("prod")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the namespace from the provided object \"dev\" does not match the namespace \"prod\". You must pass '--namespace=dev' to perform this operation."
        );
        let plain = load(text).unwrap();
        assert_ne!(
            plain.config_maps[0].metadata.namespace.as_deref(),
            Some("dev")
        );
    }

    #[test]
    fn unsupported_kind() {
        let err = parse("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "service \"a\" is invalid: kind: Unsupported value: \"Service\": supported values: \"Pod\", \"List\", \"Secret\", \"ConfigMap\", \"PersistentVolumeClaim\", \"Deployment\", \"ReplicaSet\", \"DaemonSet\", \"Job\""
        );
    }
}
