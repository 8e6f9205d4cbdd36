//! `peapod get configmaps|secrets|pvc` (`cm`, `secret`, `persistentvolumeclaims`), as
//! kubectl lists them.

use anyhow::{Result, bail};
use peapod_shim::objects::ObjectStore;
use peapod_types::api::{ConfigMap, Secret};
use peapod_types::config::Config;

use crate::get::{GetArgs, print_object};
use crate::util::{age, print_table};

/// The store's directory name for a kind kubectl may call by any of its names.
pub(crate) fn kind_of(word: &str) -> Option<&'static str> {
    match word {
        "configmap" | "configmaps" | "cm" => Some("configmaps"),
        "secret" | "secrets" => Some("secrets"),
        "persistentvolumeclaim" | "persistentvolumeclaims" | "pvc" => {
            Some("persistentvolumeclaims")
        }
        _ => None,
    }
}

/// The names of the pods in `ns` that mount claim `name`.
pub(crate) fn claim_users(cfg: &Config, ns: &str, name: &str) -> Vec<String> {
    peapod_shim::list_pods(cfg)
        .into_iter()
        .filter(|p| {
            p.namespace() == ns
                && p.pod.spec().volumes.iter().flatten().any(|v| {
                    v.persistent_volume_claim
                        .as_ref()
                        .is_some_and(|c| c.claim_name == name)
                })
        })
        .map(|p| p.name().to_string())
        .collect()
}

/// Lists or shows ConfigMaps or Secrets.
pub fn get(cfg: &Config, args: &GetArgs, kind: &'static str) -> Result<i32> {
    let store = ObjectStore::new(cfg);
    let namespaces = if args.all_namespaces {
        store.namespaces(kind)
    } else {
        vec![args.namespace.clone()]
    };
    let selector = match &args.selector {
        Some(s) => Some(peapod_types::selector::parse(s).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let mut items: Vec<(String, serde_json::Value)> = Vec::new();
    for ns in &namespaces {
        for name in store.names(kind, ns) {
            if args.name.as_deref().is_some_and(|n| n != name) {
                continue;
            }
            let value = if kind == "secrets" {
                serde_json::to_value(store.get_secret(ns, &name))?
            } else if kind == "persistentvolumeclaims" {
                serde_json::to_value(store.get_claim(ns, &name))?
            } else {
                serde_json::to_value(store.get_config_map(ns, &name))?
            };
            let labels: Option<std::collections::BTreeMap<String, String>> =
                serde_json::from_value(value["metadata"]["labels"].clone()).ok();
            if !value.is_null() && selector.as_ref().is_none_or(|s| s.matches(labels.as_ref())) {
                items.push((ns.clone(), value));
            }
        }
    }
    if let Some(expr) = &args.sort_by {
        crate::get::sort_by(&mut items, |(_, v)| v.clone(), expr)?;
    }
    let singular = kind.trim_end_matches('s');
    if let Some(n) = &args.name
        && items.is_empty()
    {
        eprintln!("Error from server (NotFound): {kind} {n:?} not found");
        return Ok(1);
    }
    let kind_name = match kind {
        "secrets" => "Secret",
        "persistentvolumeclaims" => "PersistentVolumeClaim",
        _ => "ConfigMap",
    };
    match args.output.as_deref() {
        Some("yaml") | Some("json") => {
            let mut objs: Vec<serde_json::Value> = items.into_iter().map(|(_, v)| v).collect();
            for o in &mut objs {
                o["apiVersion"] = "v1".into();
                o["kind"] = kind_name.into();
            }
            let value = if args.name.is_some() && objs.len() == 1 {
                objs.remove(0)
            } else {
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objs, "metadata": {"resourceVersion": ""}})
            };
            print_object(args, &value)?;
        }
        Some("name") => {
            for (_, v) in &items {
                println!(
                    "{singular}/{}",
                    v["metadata"]["name"].as_str().unwrap_or_default()
                );
            }
        }
        Some(o) if o.starts_with("custom-columns=") => {
            let values: Vec<serde_json::Value> = items.into_iter().map(|(_, v)| v).collect();
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
            if kind == "persistentvolumeclaims" {
                print_claims(args, &items)?;
                return Ok(0);
            }
            let mut head: Vec<String> = Vec::new();
            if args.all_namespaces {
                head.push("NAMESPACE".into());
            }
            head.push("NAME".into());
            if kind == "secrets" {
                head.push("TYPE".into());
            }
            head.extend(["DATA".to_string(), "AGE".to_string()]);
            let mut rows = vec![head];
            for (ns, v) in &items {
                let mut row = Vec::new();
                if args.all_namespaces {
                    row.push(ns.clone());
                }
                let (name, kind_col, count, created) = if kind == "secrets" {
                    let s: Secret = serde_json::from_value(v.clone())?;
                    (
                        s.metadata.name.clone().unwrap_or_default(),
                        s.type_.clone(),
                        s.data.as_ref().map_or(0, |d| d.len()),
                        s.metadata.creation_timestamp.clone(),
                    )
                } else {
                    let c: ConfigMap = serde_json::from_value(v.clone())?;
                    (
                        c.metadata.name.clone().unwrap_or_default(),
                        None,
                        c.data.as_ref().map_or(0, |d| d.len())
                            + c.binary_data.as_ref().map_or(0, |d| d.len()),
                        c.metadata.creation_timestamp.clone(),
                    )
                };
                row.push(name);
                if kind == "secrets" {
                    row.push(kind_col.unwrap_or_else(|| "Opaque".into()));
                }
                row.push(count.to_string());
                row.push(age(created.as_ref()));
                rows.push(row);
            }
            print_table(&rows);
        }
        Some(other) => bail!("unsupported output format {other:?}: use yaml, json or name"),
    }
    Ok(0)
}

/// kubectl's short names of access modes.
fn access_mode(m: &str) -> &str {
    match m {
        "ReadWriteOnce" => "RWO",
        "ReadOnlyMany" => "ROX",
        "ReadWriteMany" => "RWX",
        "ReadWriteOncePod" => "RWOP",
        other => other,
    }
}

fn print_claims(args: &GetArgs, items: &[(String, serde_json::Value)]) -> Result<()> {
    let mut head: Vec<String> = Vec::new();
    if args.all_namespaces {
        head.push("NAMESPACE".into());
    }
    head.extend(
        [
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE",
        ]
        .map(String::from),
    );
    let mut rows = vec![head];
    for (ns, v) in items {
        let c: peapod_types::api::PersistentVolumeClaim = serde_json::from_value(v.clone())?;
        let spec = c.spec.clone().unwrap_or_default();
        let status = c.status.clone().unwrap_or_default();
        let mut row = Vec::new();
        if args.all_namespaces {
            row.push(ns.clone());
        }
        row.push(c.metadata.name.clone().unwrap_or_default());
        row.push(status.phase.clone().unwrap_or_else(|| "Pending".into()));
        row.push(spec.volume_name.clone().unwrap_or_default());
        row.push(
            status
                .capacity
                .as_ref()
                .and_then(|c| c.get("storage"))
                .map(|q| q.0.clone())
                .unwrap_or_default(),
        );
        row.push(
            status
                .access_modes
                .iter()
                .flatten()
                .map(|m| access_mode(m))
                .collect::<Vec<_>>()
                .join(","),
        );
        row.push(
            spec.storage_class_name
                .clone()
                .unwrap_or_else(|| "<unset>".into()),
        );
        row.push(
            spec.volume_attributes_class_name
                .clone()
                .unwrap_or_else(|| "<unset>".into()),
        );
        row.push(age(c.metadata.creation_timestamp.as_ref()));
        rows.push(row);
    }
    print_table(&rows);
    Ok(())
}
