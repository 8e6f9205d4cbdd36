//! `peapod get|delete deployments|replicasets|daemonsets|jobs`, as kubectl prints them.

use anyhow::{Result, bail};
use peapod_shim::objects::ObjectStore;
use peapod_types::config::Config;
use peapod_types::meta::LabelSelector;
use peapod_types::workloads::Workload;

use crate::get::{GetArgs, labels_column, print_object};
use crate::util::{age, print_table};

/// The plural a kind goes by, for any of kubectl's names of it.
pub(crate) fn kind_of(word: &str) -> Option<&'static str> {
    Some(match word {
        "deployment" | "deployments" | "deploy" | "deployment.apps" | "deployments.apps" => {
            "deployments"
        }
        "replicaset" | "replicasets" | "rs" | "replicaset.apps" | "replicasets.apps" => {
            "replicasets"
        }
        "daemonset" | "daemonsets" | "ds" | "daemonset.apps" | "daemonsets.apps" => "daemonsets",
        "job" | "jobs" | "job.batch" | "jobs.batch" => "jobs",
        _ => return None,
    })
}

/// `deployment.apps` for `deployments`, as kubectl names a kind in its messages.
pub(crate) fn resource(plural: &str) -> &'static str {
    match plural {
        "deployments" => "deployment.apps",
        "replicasets" => "replicaset.apps",
        "daemonsets" => "daemonset.apps",
        _ => "job.batch",
    }
}

/// kubectl's rendering of a label selector: `k=v,k2 in (a,b)`, `<none>` when empty.
fn selector_column(s: Option<&LabelSelector>) -> String {
    let Some(s) = s else {
        return "<none>".into();
    };
    let mut parts: Vec<String> = s
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in s.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn duration(from: Option<&jiff::Timestamp>, to: Option<&jiff::Timestamp>) -> String {
    let Some(from) = from else {
        return String::new();
    };
    let to = to.copied().unwrap_or_else(jiff::Timestamp::now);
    crate::util::human_duration(
        std::time::Duration::try_from(to.duration_since(*from)).unwrap_or_default(),
    )
}

/// Lists or shows workloads of one kind.
pub fn get(cfg: &Config, args: &GetArgs, plural: &'static str) -> Result<i32> {
    let store = ObjectStore::new(cfg);
    let selector = match &args.selector {
        Some(s) => Some(peapod_types::selector::parse(s).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let mut items: Vec<Workload> = store
        .workloads(plural)
        .into_iter()
        .filter(|w| args.all_namespaces || w.name().0 == args.namespace)
        .filter(|w| args.name.as_deref().is_none_or(|n| n == w.name().1))
        .filter(|w| {
            selector
                .as_ref()
                .is_none_or(|s| s.matches(w.metadata().labels.as_ref()))
        })
        .collect();
    if let Some(expr) = &args.sort_by {
        crate::get::sort_by(&mut items, Workload::to_value, expr)?;
    }
    if let Some(n) = &args.name
        && items.is_empty()
    {
        eprintln!(
            "Error from server (NotFound): {plural}.{} {n:?} not found",
            resource(plural).split('.').nth(1).unwrap_or_default()
        );
        return Ok(1);
    }
    let one = args.name.is_some() && items.len() == 1;
    let as_value = || {
        if one {
            items[0].to_value()
        } else {
            let all: Vec<serde_json::Value> = items.iter().map(Workload::to_value).collect();
            serde_json::json!({"apiVersion": "v1", "kind": "List", "items": all, "metadata": {"resourceVersion": ""}})
        }
    };
    match args.output.as_deref() {
        Some("yaml" | "json") => print_object(args, &as_value())?,
        Some("name") => {
            for w in &items {
                println!("{}/{}", w.resource(), w.name().1);
            }
        }
        Some(o) if o.starts_with("jsonpath=") => {
            print!(
                "{}",
                crate::jsonpath::render(&o["jsonpath=".len()..], &as_value())?
            );
        }
        Some(o) if o.starts_with("custom-columns=") => {
            let values: Vec<serde_json::Value> = items.iter().map(Workload::to_value).collect();
            print_table(&crate::get::custom_columns(
                &o["custom-columns=".len()..],
                &values,
                args.no_headers,
            )?);
        }
        None | Some("wide") => {
            if items.is_empty() {
                eprintln!("No resources found in {} namespace.", args.namespace);
                return Ok(0);
            }
            print_table(&table(args, plural, &items));
        }
        Some(other) => {
            bail!("unsupported output format {other:?}: use wide, yaml, json, name or jsonpath=")
        }
    }
    Ok(0)
}

fn table(args: &GetArgs, plural: &str, items: &[Workload]) -> Vec<Vec<String>> {
    let wide = args.output.as_deref() == Some("wide");
    let mut head: Vec<&str> = Vec::new();
    if args.all_namespaces {
        head.push("NAMESPACE");
    }
    head.push("NAME");
    head.extend(match plural {
        "deployments" => &["READY", "UP-TO-DATE", "AVAILABLE", "AGE"][..],
        "replicasets" => &["DESIRED", "CURRENT", "READY", "AGE"][..],
        "daemonsets" => &[
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE SELECTOR",
            "AGE",
        ][..],
        _ => &["STATUS", "COMPLETIONS", "DURATION", "AGE"][..],
    });
    if wide {
        head.extend(["CONTAINERS", "IMAGES", "SELECTOR"]);
    }
    if args.show_labels {
        head.push("LABELS");
    }
    let mut rows = Vec::new();
    if !args.no_headers {
        rows.push(head.iter().map(|h| h.to_string()).collect());
    }
    for w in items {
        let mut row = Vec::new();
        if args.all_namespaces {
            row.push(w.name().0);
        }
        row.push(w.name().1);
        let n = |v: Option<i32>| v.unwrap_or(0).to_string();
        match w {
            Workload::Deployment(d) => {
                let s = d.status.clone().unwrap_or_default();
                let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                row.push(format!("{}/{desired}", s.ready_replicas.unwrap_or(0)));
                row.push(n(s.updated_replicas));
                row.push(n(s.available_replicas));
            }
            Workload::ReplicaSet(r) => {
                let s = r.status.clone().unwrap_or_default();
                row.push(n(r.spec.as_ref().and_then(|s| s.replicas)));
                row.push(s.replicas.to_string());
                row.push(n(s.ready_replicas));
            }
            Workload::DaemonSet(d) => {
                let s = d.status.clone().unwrap_or_default();
                row.push(s.desired_number_scheduled.to_string());
                row.push(s.current_number_scheduled.to_string());
                row.push(s.number_ready.to_string());
                row.push(n(s.updated_number_scheduled));
                row.push(n(s.number_available));
                let sel = d
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.spec.as_ref())
                    .and_then(|s| s.node_selector.clone());
                row.push(
                    sel.filter(|m| !m.is_empty())
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_else(|| "<none>".into()),
                );
            }
            Workload::Job(j) => {
                let s = j.status.clone().unwrap_or_default();
                let spec = j.spec.clone().unwrap_or_default();
                let has = |t: &str| {
                    s.conditions
                        .iter()
                        .flatten()
                        .any(|c| c.type_ == t && c.status == "True")
                };
                row.push(
                    if has("Complete") {
                        "Complete"
                    } else if has("Failed") {
                        "Failed"
                    } else if has("FailureTarget") {
                        "FailureTarget"
                    } else if has("SuccessCriteriaMet") {
                        "SuccessCriteriaMet"
                    } else {
                        "Running"
                    }
                    .to_string(),
                );
                let done = s.succeeded.unwrap_or(0);
                row.push(match spec.completions {
                    Some(c) => format!("{done}/{c}"),
                    None => format!("{done}/1 of {}", spec.parallelism.unwrap_or(1)),
                });
                row.push(duration(
                    s.start_time.as_ref().map(|t| &t.0),
                    s.completion_time.as_ref().map(|t| &t.0),
                ));
            }
        }
        row.push(age(w.metadata().creation_timestamp.as_ref()));
        if wide {
            let t = w.template();
            let containers = t.spec.map(|s| s.containers).unwrap_or_default();
            row.push(
                containers
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>()
                    .join(","),
            );
            row.push(
                containers
                    .iter()
                    .map(|c| c.image.clone().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(","),
            );
            row.push(selector_column(w.selector()));
        }
        if args.show_labels {
            row.push(labels_column(w.metadata().labels.as_ref()));
        }
        rows.push(row);
    }
    rows
}

/// `delete` of a workload, with its ReplicaSets and pods; 1 if there was none.
pub fn delete(cfg: &Config, plural: &str, ns: &str, name: &str, grace: Option<i64>) -> Result<i32> {
    match peapod_controllers::manager::delete_workload(cfg, plural, ns, name, grace)
        .map_err(anyhow::Error::msg)?
    {
        true => {
            println!("{} \"{name}\" deleted", resource(plural));
            Ok(0)
        }
        false => {
            eprintln!(
                "Error from server (NotFound): {plural}.{} \"{name}\" not found",
                resource(plural).split('.').nth(1).unwrap_or_default()
            );
            Ok(1)
        }
    }
}
