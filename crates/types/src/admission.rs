//! The kubelet's admission of a pod it is given directly (a static pod): the node's labels
//! must satisfy the pod's `nodeSelector` and required node affinity
//! (`GeneralPredicates` in `pkg/kubelet/lifecycle`), and a pod that asks for AppArmor needs
//! a host that enforces it (`appArmorAdmitHandler`). A refused pod is `Failed`.

use std::collections::BTreeMap;

use crate::api::{NodeSelectorRequirement, NodeSelectorTerm, PodSpec};

/// Why a pod was not admitted: the pod's `status.reason`, and the detail the kubelet's
/// event carries (its `status.message` is `Pod was rejected: ` and this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `NodeAffinity`.
    pub reason: String,
    /// `Predicate NodeAffinity failed: ...`.
    pub message: String,
}

/// The labels a kubelet gives its node: host name, OS and architecture, then `extra`.
pub fn node_labels(hostname: &str, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    };
    let mut labels = BTreeMap::from([
        (
            "kubernetes.io/hostname".to_string(),
            hostname.to_lowercase(),
        ),
        (
            "kubernetes.io/os".to_string(),
            std::env::consts::OS.to_string(),
        ),
        ("kubernetes.io/arch".to_string(), arch.to_string()),
        (
            "beta.kubernetes.io/os".to_string(),
            std::env::consts::OS.to_string(),
        ),
        ("beta.kubernetes.io/arch".to_string(), arch.to_string()),
    ]);
    labels.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}

/// Admits `spec` on a node named `node_name` with `labels`, or says why not.
pub fn admit(
    spec: &PodSpec,
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<(), Rejection> {
    if node_matches(spec, node_name, labels) {
        return Ok(());
    }
    Err(Rejection {
        reason: "NodeAffinity".into(),
        message: "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
            .into(),
    })
}

/// One resource of the node as admission sees it: what it can give (allocatable; CPU in
/// millicores, the rest in bytes) and what the pods already admitted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeResource {
    /// `cpu`, `memory`, `hugepages-2Mi`, ...
    pub name: String,
    /// Allocatable.
    pub capacity: i128,
    /// Requested by the other pods.
    pub used: i128,
}

/// The kubelet's resource fit (`noderesources.Fits` in its admission): every resource the
/// pod requests must fit in what the node has left, CPU and memory first, then hugepages.
/// Resources the node does not know (extended resources) are not checked, as the kubelet
/// drops them before admission.
pub fn admit_resources(spec: &PodSpec, node: &[NodeResource]) -> Result<(), Rejection> {
    let mut names: Vec<String> = vec!["cpu".into(), "memory".into()];
    names.extend(crate::cgroups::hugepage_resources(spec));
    for name in names {
        let requested = crate::cgroups::pod_request(spec, &name);
        if requested <= 0 {
            continue;
        }
        let (capacity, used) = node
            .iter()
            .find(|r| r.name == name)
            .map_or((0, 0), |r| (r.capacity, r.used));
        if requested > capacity - used {
            return Err(Rejection {
                reason: format!("OutOf{name}"),
                message: format!(
                    "Node didn't have enough resource: {name}, requested: {requested}, used: {used}, capacity: {capacity}"
                ),
            });
        }
    }
    Ok(())
}

/// The annotation prefix of the AppArmor profiles before the `appArmorProfile` field.
const APPARMOR_ANNOTATION: &str = "container.apparmor.security.beta.kubernetes.io/";

/// Whether the pod asks for AppArmor: a pod or container `appArmorProfile` other than
/// `Unconfined`, or a profile other than `unconfined` in the beta annotations.
pub fn wants_apparmor(annotations: Option<&BTreeMap<String, String>>, spec: &PodSpec) -> bool {
    let confined =
        |p: Option<&crate::api::AppArmorProfile>| p.is_some_and(|p| p.type_ != "Unconfined");
    let pod = confined(
        spec.security_context
            .as_ref()
            .and_then(|s| s.app_armor_profile.as_ref()),
    );
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .any(|c| {
            confined(
                c.security_context
                    .as_ref()
                    .and_then(|s| s.app_armor_profile.as_ref()),
            )
        });
    let annotated = annotations
        .into_iter()
        .flatten()
        .any(|(k, v)| k.starts_with(APPARMOR_ANNOTATION) && v != "unconfined");
    pod || containers || annotated
}

/// Admits a pod that asks for AppArmor only where the host enforces it (`host_enabled`).
pub fn admit_apparmor(
    annotations: Option<&BTreeMap<String, String>>,
    spec: &PodSpec,
    host_enabled: bool,
) -> Result<(), Rejection> {
    if host_enabled || !wants_apparmor(annotations, spec) {
        return Ok(());
    }
    Err(Rejection {
        reason: "AppArmor".into(),
        message: "Cannot enforce AppArmor: AppArmor is not enabled on the host".into(),
    })
}

fn node_matches(spec: &PodSpec, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let affinity_ok = match required {
        None => true,
        // Terms are ORed; a term with no requirements matches nothing.
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, node_name, labels)),
    };
    selector_ok && affinity_ok
}

fn term_matches(t: &NodeSelectorTerm, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or_default();
    let fields = t.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let value = (r.key == "metadata.name").then_some(node_name);
            requirement(r, value)
        })
}

/// One requirement against the node's value for its key (None: the node has no such key).
fn requirement(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(number),
                values.first().and_then(|s| number(s)),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> PodSpec {
        let v = crate::yaml::documents(&format!("{yaml}containers: [{{name: a, image: b}}]\n"))
            .unwrap()
            .remove(0);
        serde_json::from_value(v).unwrap()
    }

    fn labels() -> BTreeMap<String, String> {
        node_labels(
            "Node-1",
            &BTreeMap::from([
                ("disktype".into(), "ssd".into()),
                ("gen".into(), "5".into()),
            ]),
        )
    }

    #[test]
    fn requests_must_fit_in_what_the_node_has_left() {
        let node = |cpu: i128, used: i128| {
            vec![
                NodeResource {
                    name: "cpu".into(),
                    capacity: cpu,
                    used,
                },
                NodeResource {
                    name: "memory".into(),
                    capacity: 1 << 30,
                    used: 0,
                },
            ]
        };
        let small =
            spec("initContainers: [{name: i, image: b, resources: {requests: {cpu: 1500m}}}]\n");
        assert_eq!(admit_resources(&small, &node(2000, 0)), Ok(()));
        assert_eq!(
            admit_resources(&small, &node(2000, 1000)),
            Err(Rejection {
                reason: "OutOfcpu".into(),
                message: "Node didn't have enough resource: cpu, requested: 1500, used: 1000, capacity: 2000".into(),
            })
        );
        // Hugepages the node has none of.
        let huge = spec(
            "initContainers: [{name: i, image: b, resources: {limits: {hugepages-2Mi: 4Mi, memory: 8Mi}}}]\n",
        );
        assert_eq!(
            admit_resources(&huge, &node(2000, 0)),
            Err(Rejection {
                reason: "OutOfhugepages-2Mi".into(),
                message: "Node didn't have enough resource: hugepages-2Mi, requested: 4194304, used: 0, capacity: 0".into(),
            })
        );
        // Extended resources are not the node's to check.
        let dongle = spec(
            "initContainers: [{name: i, image: b, resources: {limits: {example.com/dongle: 3}}}]\n",
        );
        assert_eq!(admit_resources(&dongle, &node(2000, 0)), Ok(()));
    }

    #[test]
    fn apparmor_is_admitted_only_where_the_host_enforces_it() {
        let runtime_default = spec("securityContext: {appArmorProfile: {type: RuntimeDefault}}\n");
        let unconfined = spec("securityContext: {appArmorProfile: {type: Unconfined}}\n");
        let container = spec(
            "initContainers: [{name: i, image: b, securityContext: {appArmorProfile: {type: Localhost, localhostProfile: p}}}]\n",
        );
        let plain = spec("");
        let refused = Err(Rejection {
            reason: "AppArmor".into(),
            message: "Cannot enforce AppArmor: AppArmor is not enabled on the host".into(),
        });
        assert_eq!(admit_apparmor(None, &runtime_default, false), refused);
        assert_eq!(admit_apparmor(None, &container, false), refused);
        assert_eq!(admit_apparmor(None, &runtime_default, true), Ok(()));
        assert_eq!(admit_apparmor(None, &unconfined, false), Ok(()));
        assert_eq!(admit_apparmor(None, &plain, false), Ok(()));
        let key = format!("{APPARMOR_ANNOTATION}a");
        let beta = |v: &str| BTreeMap::from([(key.clone(), v.to_string())]);
        assert_eq!(
            admit_apparmor(Some(&beta("runtime/default")), &plain, false),
            refused
        );
        assert_eq!(
            admit_apparmor(Some(&beta("unconfined")), &plain, false),
            Ok(())
        );
    }

    #[test]
    fn node_labels_are_the_kubelets() {
        let l = labels();
        assert_eq!(l["kubernetes.io/hostname"], "node-1");
        assert_eq!(l["kubernetes.io/os"], "linux");
        assert!(["amd64", "arm64"].contains(&l["kubernetes.io/arch"].as_str()));
        assert_eq!(l["disktype"], "ssd");
    }

    #[test]
    fn selectors_and_required_affinity() {
        let admitted = |y: &str| admit(&spec(y), "node-1", &labels()).is_ok();
        assert!(admitted(""));
        assert!(admitted(
            "nodeSelector: {disktype: ssd, kubernetes.io/os: linux}\n"
        ));
        assert!(!admitted("nodeSelector: {disktype: hdd}\n"));
        assert!(!admitted("nodeSelector: {kubernetes.io/os: windows}\n"));
        let aff = |terms: &str| {
            format!(
                "affinity: {{nodeAffinity: {{requiredDuringSchedulingIgnoredDuringExecution: {{nodeSelectorTerms: {terms}}}}}}}\n"
            )
        };
        assert!(admitted(&aff(
            "[{matchExpressions: [{key: disktype, operator: In, values: [ssd, nvme]}]}]"
        )));
        assert!(!admitted(&aff(
            "[{matchExpressions: [{key: disktype, operator: NotIn, values: [ssd]}]}]"
        )));
        // Terms are ORed, expressions within one ANDed.
        assert!(admitted(&aff(
            "[{matchExpressions: [{key: zone, operator: Exists}]}, {matchExpressions: [{key: gen, operator: Gt, values: ['4']}, {key: zone, operator: DoesNotExist}]}]"
        )));
        assert!(!admitted(&aff(
            "[{matchExpressions: [{key: gen, operator: Lt, values: ['4']}]}]"
        )));
        assert!(admitted(&aff(
            "[{matchFields: [{key: metadata.name, operator: In, values: [node-1]}]}]"
        )));
        assert!(!admitted(&aff("[{}]")));
        // Preferred affinity is the scheduler's business.
        assert!(admitted(
            "affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 1, preference: {matchExpressions: [{key: disktype, operator: In, values: [hdd]}]}}]}}\n"
        ));
        let r = admit(
            &spec("nodeSelector: {disktype: hdd}\n"),
            "node-1",
            &labels(),
        )
        .unwrap_err();
        assert_eq!(r.reason, "NodeAffinity");
        assert_eq!(
            r.message,
            "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
        );
    }
}
