//! `peapod describe` of ConfigMaps, Secrets, claims and workloads, laid out as kubectl's
//! describers lay them out: aligned `Key:  value` lines, `Data` sections, a pod template,
//! conditions.

use std::collections::BTreeMap;
use std::fmt::Write;

use anyhow::{Result, bail};
use peapod_shim::objects::ObjectStore;
use peapod_types::api::{PodTemplateSpec, Secret};
use peapod_types::config::Config;
use peapod_types::meta::{ObjectMeta, Time};
use peapod_types::workloads::Workload;

/// Aligned `Key:  value` lines, the values in one column as kubectl's `PrefixWriter` does.
#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn add(&mut self, k: &str, v: impl Into<String>) -> &mut Self {
        self.0.push((k.to_string(), v.into()));
        self
    }

    fn render(&self, indent: &str, out: &mut String) {
        let width = self.0.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0) + 2;
        for (k, v) in &self.0 {
            let key = format!("{k}:");
            let pad = " ".repeat(indent.len() + width);
            let v = v.replace('\n', &format!("\n{pad}"));
            let line = format!("{indent}{key:<width$}{v}");
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
}

fn map_text(m: Option<&BTreeMap<String, String>>, sep: &str) -> String {
    match m {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}{sep}{v}"))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => "<none>".into(),
    }
}

fn time(t: Option<&Time>) -> String {
    t.map(|t| t.0.strftime("%a, %d %b %Y %H:%M:%S %z").to_string())
        .unwrap_or_else(|| "<unset>".into())
}

fn head(m: &ObjectMeta, f: &mut Fields) {
    f.add("Name", m.name.clone().unwrap_or_default());
    f.add("Namespace", m.namespace.clone().unwrap_or_default());
    f.add("Labels", map_text(m.labels.as_ref(), "="));
    f.add("Annotations", map_text(m.annotations.as_ref(), ": "));
}

/// Describes an object of `plural` (a store kind); 1 when there is none.
pub fn describe(cfg: &Config, plural: &str, ns: &str, name: &str) -> Result<i32> {
    let store = ObjectStore::new(cfg);
    let mut out = String::new();
    let found = match plural {
        "configmaps" => store.get_config_map(ns, name).map(|cm| {
            let mut f = Fields::default();
            head(&cm.metadata, &mut f);
            f.render("", &mut out);
            out.push_str("\nData\n====\n");
            for (k, v) in cm.data.iter().flatten() {
                let _ = writeln!(out, "{k}:\n----\n{v}\n");
            }
            out.push_str("\nBinaryData\n====\n");
            for (k, v) in cm.binary_data.iter().flatten() {
                let _ = writeln!(out, "{k}: {} bytes", v.0.len());
            }
            out.push_str("\nEvents:  <none>\n");
        }),
        "secrets" => store.get_secret(ns, name).map(|s: Secret| {
            let mut f = Fields::default();
            head(&s.metadata, &mut f);
            f.render("", &mut out);
            let _ = writeln!(
                out,
                "\nType:  {}\n\nData\n====",
                s.type_.clone().unwrap_or_else(|| "Opaque".into())
            );
            let mut data = Fields::default();
            for (k, v) in s.data.iter().flatten() {
                data.add(k, format!("{} bytes", v.0.len()));
            }
            data.render("", &mut out);
        }),
        "persistentvolumeclaims" => store.get_claim(ns, name).map(|c| {
            let spec = c.spec.clone().unwrap_or_default();
            let st = c.status.clone().unwrap_or_default();
            let users: Vec<String> = crate::objects::claim_users(cfg, ns, name);
            let mut f = Fields::default();
            f.add("Name", name)
                .add("Namespace", ns)
                .add(
                    "StorageClass",
                    spec.storage_class_name.clone().unwrap_or_default(),
                )
                .add("Status", st.phase.clone().unwrap_or_default())
                .add("Volume", spec.volume_name.clone().unwrap_or_default())
                .add("Labels", map_text(c.metadata.labels.as_ref(), "="))
                .add(
                    "Annotations",
                    map_text(c.metadata.annotations.as_ref(), ": "),
                )
                .add(
                    "Capacity",
                    st.capacity
                        .as_ref()
                        .and_then(|c| c.get("storage"))
                        .map(|q| q.0.clone())
                        .unwrap_or_default(),
                )
                .add(
                    "Access Modes",
                    st.access_modes.clone().unwrap_or_default().join(","),
                )
                .add(
                    "VolumeMode",
                    spec.volume_mode
                        .clone()
                        .unwrap_or_else(|| "Filesystem".into()),
                )
                .add(
                    "Used By",
                    if users.is_empty() {
                        "<none>".into()
                    } else {
                        users.join("\n")
                    },
                )
                .add("Events", "<none>");
            f.render("", &mut out);
        }),
        kind => store
            .get_workload(kind, ns, name)
            .map(|w| workload(cfg, &store, &w, &mut out)),
    };
    if found.is_none() {
        eprintln!("Error from server (NotFound): {plural} {name:?} not found");
        return Ok(1);
    }
    print!("{out}");
    Ok(0)
}

fn template(t: &PodTemplateSpec, out: &mut String) {
    out.push_str("Pod Template:\n");
    let meta = t.metadata.clone().unwrap_or_default();
    let spec = t.spec.clone().unwrap_or_default();
    let mut f = Fields::default();
    f.add("Labels", map_text(meta.labels.as_ref(), "="));
    if meta.annotations.as_ref().is_some_and(|a| !a.is_empty()) {
        f.add("Annotations", map_text(meta.annotations.as_ref(), ": "));
    }
    f.add("Containers", "");
    f.render("  ", out);
    for c in &spec.containers {
        let _ = writeln!(out, "   {}:", c.name);
        let mut cf = Fields::default();
        cf.add("Image", c.image.clone().unwrap_or_default());
        let ports: Vec<String> = c
            .ports
            .iter()
            .flatten()
            .map(|p| {
                format!(
                    "{}/{}",
                    p.container_port,
                    p.protocol.clone().unwrap_or_else(|| "TCP".into())
                )
            })
            .collect();
        cf.add(
            "Port",
            if ports.is_empty() {
                "<none>".into()
            } else {
                ports.join(", ")
            },
        );
        if let Some(cmd) = &c.command {
            cf.add("Command", cmd.join("\n"));
        }
        if let Some(args) = &c.args {
            cf.add("Args", args.join("\n"));
        }
        let env: Vec<String> = c
            .env
            .iter()
            .flatten()
            .map(|e| format!("{}:  {}", e.name, e.value.clone().unwrap_or_default()))
            .collect();
        cf.add(
            "Environment",
            if env.is_empty() {
                "<none>".into()
            } else {
                env.join("\n")
            },
        );
        cf.render("    ", out);
    }
    let volumes: Vec<String> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect();
    let _ = writeln!(
        out,
        "  Volumes:  {}",
        if volumes.is_empty() {
            "<none>".into()
        } else {
            volumes.join(", ")
        }
    );
}

/// The `Conditions:` table, laid out as kubectl's tabwriter does (cells padded by two; the
/// type cells of the rows carry a trailing space, as kubectl writes them).
fn conditions(rows: &[(String, String, String)], out: &mut String) {
    if rows.is_empty() {
        return;
    }
    let mut table = vec![
        (
            "Type".to_string(),
            "Status".to_string(),
            "Reason".to_string(),
        ),
        (
            "----".to_string(),
            "------".to_string(),
            "------".to_string(),
        ),
    ];
    table.extend(
        rows.iter()
            .map(|(t, s, r)| (format!("{t} "), s.clone(), r.clone())),
    );
    let w0 = table.iter().map(|r| r.0.len()).max().unwrap_or(0) + 2;
    let w1 = table.iter().map(|r| r.1.len()).max().unwrap_or(0) + 2;
    out.push_str("Conditions:\n");
    for (t, s, r) in &table {
        let _ = writeln!(out, "  {t:<w0$}{s:<w1$}{r}");
    }
}

fn workload(cfg: &Config, store: &ObjectStore, w: &Workload, out: &mut String) {
    let m = w.metadata();
    let uid = m.uid.clone().unwrap_or_default();
    let mut f = Fields::default();
    f.add("Name", m.name.clone().unwrap_or_default());
    f.add("Namespace", m.namespace.clone().unwrap_or_default());
    f.add("CreationTimestamp", time(m.creation_timestamp.as_ref()));
    f.add("Labels", map_text(m.labels.as_ref(), "="));
    f.add("Annotations", map_text(m.annotations.as_ref(), ": "));
    let selector = w
        .selector()
        .and_then(|s| peapod_types::workloads::as_selector(s).ok())
        .map(|s| {
            s.0.iter()
                .map(|r| match r {
                    peapod_types::selector::Requirement::In(k, v) if v.len() == 1 => {
                        format!("{k}={}", v[0])
                    }
                    peapod_types::selector::Requirement::In(k, v) => {
                        format!("{k} in ({})", v.join(","))
                    }
                    peapod_types::selector::Requirement::NotIn(k, v) => {
                        format!("{k} notin ({})", v.join(","))
                    }
                    peapod_types::selector::Requirement::Exists(k) => k.clone(),
                    peapod_types::selector::Requirement::DoesNotExist(k) => format!("!{k}"),
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    f.add("Selector", selector);
    // Pods owned (through ReplicaSets for a Deployment), by phase.
    let pods: Vec<peapod_types::api::Pod> = peapod_shim::list_pods(cfg)
        .into_iter()
        .map(|h| h.current())
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        })
        .collect();
    let phases = |phase: &str| {
        pods.iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(phase))
            .count()
    };
    let pod_statuses = format!(
        "{} Running / {} Waiting / {} Succeeded / {} Failed",
        phases("Running"),
        phases("Pending"),
        phases("Succeeded"),
        phases("Failed")
    );
    let mut conds: Vec<(String, String, String)> = Vec::new();
    match w {
        Workload::Deployment(d) => {
            let s = d.spec.clone().unwrap_or_default();
            let st = d.status.clone().unwrap_or_default();
            f.add(
                "Replicas",
                format!(
                    "{} desired | {} updated | {} total | {} available | {} unavailable",
                    s.replicas.unwrap_or(1),
                    st.updated_replicas.unwrap_or(0),
                    st.replicas.unwrap_or(0),
                    st.available_replicas.unwrap_or(0),
                    st.unavailable_replicas.unwrap_or(0)
                ),
            );
            let strategy = s.strategy.clone().unwrap_or_default();
            f.add("StrategyType", strategy.type_.clone().unwrap_or_default());
            f.add(
                "MinReadySeconds",
                s.min_ready_seconds.unwrap_or(0).to_string(),
            );
            if let Some(ru) = &strategy.rolling_update {
                let show = |v: &Option<
                    peapod_types::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
                >| {
                    match v {
                    Some(peapod_types::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => n.to_string(),
                    Some(peapod_types::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s)) => s.clone(),
                    None => "0".into(),
                }
                };
                f.add(
                    "RollingUpdateStrategy",
                    format!(
                        "{} max unavailable, {} max surge",
                        show(&ru.max_unavailable),
                        show(&ru.max_surge)
                    ),
                );
            }
            f.render("", out);
            template(&s.template, out);
            for c in st.conditions.iter().flatten() {
                conds.push((
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone().unwrap_or_default(),
                ));
            }
            conditions(&conds, out);
            let hash = peapod_types::workloads::template_hash(&s.template, st.collision_count);
            let sets: Vec<Workload> = store
                .workloads("replicasets")
                .into_iter()
                .filter(|rs| {
                    rs.metadata()
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.controller == Some(true) && o.uid == uid)
                })
                .collect();
            let line = |rs: &Workload| {
                let Workload::ReplicaSet(r) = rs else {
                    return String::new();
                };
                format!(
                    "{} ({}/{} replicas created)",
                    rs.name().1,
                    r.status.as_ref().map_or(0, |s| s.replicas),
                    r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
                )
            };
            let (new, old): (Vec<&Workload>, Vec<&Workload>) = sets
                .iter()
                .partition(|rs| rs.name().1.ends_with(&format!("-{hash}")));
            let old: Vec<String> = old.into_iter().map(line).collect();
            let mut f = Fields::default();
            f.add(
                "OldReplicaSets",
                if old.is_empty() {
                    "<none>".into()
                } else {
                    old.join(", ")
                },
            );
            f.add(
                "NewReplicaSet",
                new.first()
                    .map(|rs| line(rs))
                    .unwrap_or_else(|| "<none>".into()),
            );
            f.add("Events", "<none>");
            f.render("", out);
            return;
        }
        Workload::ReplicaSet(r) => {
            let s = r.spec.clone().unwrap_or_default();
            let st = r.status.clone().unwrap_or_default();
            let owner = m
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| format!("{}/{}", o.kind, o.name))
                .unwrap_or_else(|| "<none>".into());
            f.add("Controlled By", owner);
            f.add(
                "Replicas",
                format!(
                    "{} current / {} desired",
                    st.replicas,
                    s.replicas.unwrap_or(1)
                ),
            );
            f.add("Pods Status", pod_statuses);
            f.render("", out);
            template(&s.template.unwrap_or_default(), out);
        }
        Workload::DaemonSet(d) => {
            let s = d.spec.clone().unwrap_or_default();
            let st = d.status.clone().unwrap_or_default();
            f.add(
                "Node-Selector",
                map_text(
                    s.template
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_selector.as_ref()),
                    "=",
                ),
            );
            f.add(
                "Desired Number of Nodes Scheduled",
                st.desired_number_scheduled.to_string(),
            );
            f.add(
                "Current Number of Nodes Scheduled",
                st.current_number_scheduled.to_string(),
            );
            f.add(
                "Number of Nodes Scheduled with Up-to-date Pods",
                st.updated_number_scheduled.unwrap_or(0).to_string(),
            );
            f.add(
                "Number of Nodes Scheduled with Available Pods",
                st.number_available.unwrap_or(0).to_string(),
            );
            f.add(
                "Number of Nodes Misscheduled",
                st.number_misscheduled.to_string(),
            );
            f.add("Pods Status", pod_statuses);
            f.render("", out);
            template(&s.template, out);
        }
        Workload::Job(j) => {
            let s = j.spec.clone().unwrap_or_default();
            let st = j.status.clone().unwrap_or_default();
            f.add("Parallelism", s.parallelism.unwrap_or(1).to_string());
            f.add(
                "Completions",
                s.completions
                    .map_or_else(|| "<unset>".into(), |c| c.to_string()),
            );
            f.add(
                "Completion Mode",
                s.completion_mode.clone().unwrap_or_default(),
            );
            f.add("Suspend", s.suspend.unwrap_or(false).to_string());
            f.add("Backoff Limit", s.backoff_limit.unwrap_or(6).to_string());
            if let Some(d) = s.active_deadline_seconds {
                f.add("Active Deadline Seconds", format!("{d}s"));
            }
            if let Some(t) = s.ttl_seconds_after_finished {
                f.add("TTL Seconds After Finished", t.to_string());
            }
            f.add("Start Time", time(st.start_time.as_ref()));
            if let Some(c) = &st.completion_time {
                f.add("Completed At", time(Some(c)));
                if let Some(s0) = &st.start_time {
                    f.add(
                        "Duration",
                        crate::util::human_duration(
                            std::time::Duration::try_from(c.0.duration_since(s0.0))
                                .unwrap_or_default(),
                        ),
                    );
                }
            }
            f.add(
                "Pods Statuses",
                format!(
                    "{} Active ({} Ready) / {} Succeeded / {} Failed",
                    st.active.unwrap_or(0),
                    st.ready.unwrap_or(0),
                    st.succeeded.unwrap_or(0),
                    st.failed.unwrap_or(0)
                ),
            );
            f.render("", out);
            template(&s.template, out);
            for c in st.conditions.iter().flatten() {
                conds.push((
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone().unwrap_or_default(),
                ));
            }
            conditions(&conds, out);
        }
    }
    out.push_str("Events:  <none>\n");
}

/// The store kind `describe` takes `word` for, if it is not a pod.
pub fn kind_of(word: &str) -> Result<Option<&'static str>> {
    if matches!(word, "pod" | "pods" | "po") {
        return Ok(None);
    }
    if let Some(k) = crate::objects::kind_of(word).or_else(|| crate::workloads::kind_of(word)) {
        return Ok(Some(k));
    }
    bail!(
        "unsupported resource type {word:?}: peapod describes pods, configmaps, secrets, persistentvolumeclaims, deployments, replicasets, daemonsets and jobs"
    )
}
