//! Small helpers shared by the commands.

use anyhow::{Result, bail};
use peapod_shim::PodHandle;
use peapod_types::config::Config;

/// An error and its causes on one line.
pub fn chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// Finds pod `name` in `namespace`.
pub fn find_pod(cfg: &Config, namespace: &str, name: &str) -> Result<PodHandle> {
    match peapod_shim::list_pods(cfg)
        .into_iter()
        .find(|p| p.name() == name && p.namespace() == namespace)
    {
        Some(p) => Ok(p),
        None => bail!("pods {name:?} not found in namespace {namespace:?}"),
    }
}

/// The pod `target` names, as kubectl's `logs`, `exec` and `port-forward` take it: `NAME`,
/// `pod/NAME`, or `deployment/NAME`, `rs/NAME`, `ds/NAME`, `job/NAME` for one of that
/// workload's pods (a running, ready one first; kubectl's note on stderr when there are
/// several).
pub fn resolve_pod(cfg: &Config, namespace: &str, target: &str) -> Result<PodHandle> {
    let (kind, name) = match target.split_once('/') {
        None | Some(("pod" | "pods" | "po", _)) => {
            let name = target.rsplit('/').next().unwrap_or(target);
            return find_pod(cfg, namespace, name);
        }
        Some((k, n)) => (
            crate::workloads::kind_of(k)
                .ok_or_else(|| anyhow::anyhow!("unsupported resource type {k:?}"))?,
            n,
        ),
    };
    let store = peapod_shim::objects::ObjectStore::new(cfg);
    let Some(w) = store.get_workload(kind, namespace, name) else {
        bail!(
            "{kind}.{} {name:?} not found in namespace {namespace:?}",
            crate::workloads::resource(kind)
                .split('.')
                .nth(1)
                .unwrap_or_default()
        );
    };
    let mut owners: Vec<String> = w.metadata().uid.iter().cloned().collect();
    if kind == "deployments" {
        for rs in store.workloads("replicasets") {
            let owned =
                rs.metadata().owner_references.iter().flatten().any(|o| {
                    o.controller == Some(true) && Some(&o.uid) == w.metadata().uid.as_ref()
                });
            if owned {
                owners.extend(rs.metadata().uid.clone());
            }
        }
    }
    let mut pods: Vec<(PodHandle, peapod_types::api::Pod)> = peapod_shim::list_pods(cfg)
        .into_iter()
        .map(|h| {
            let p = h.current();
            (h, p)
        })
        .filter(|(_, p)| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && owners.contains(&o.uid))
        })
        .collect();
    let rank = |p: &peapod_types::api::Pod| {
        let st = p.status.clone().unwrap_or_default();
        let running = st.phase.as_deref() == Some("Running");
        let ready = st
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        (
            std::cmp::Reverse(running),
            std::cmp::Reverse(ready),
            std::cmp::Reverse(p.metadata.creation_timestamp.clone().map(|t| t.0)),
        )
    };
    pods.sort_by_key(|(_, p)| rank(p));
    let count = pods.len();
    match pods.into_iter().next() {
        None => bail!(
            "no pods of {}/{name} found",
            crate::workloads::resource(kind)
        ),
        Some((h, _)) => {
            if count > 1 {
                eprintln!("Found {count} pods, using pod/{}", h.name());
            }
            Ok(h)
        }
    }
}

/// A duration as kubectl prints ages (`HumanDuration`).
pub fn human_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    format!("{}y", hours / 24 / 365)
}

/// The age of a timestamp.
pub fn age(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
    match t {
        Some(t) => {
            let d = jiff::Timestamp::now().duration_since(t.0);
            human_duration(std::time::Duration::try_from(d).unwrap_or_default())
        }
        None => "<unknown>".into(),
    }
}

/// Prints rows as kubectl does: columns padded to their widest cell, three spaces apart.
pub fn print_table(rows: &[Vec<String>]) {
    let widths = column_widths(rows);
    for r in rows {
        println!("{}", format_row(r, &widths));
    }
}

/// The width of each column of `rows`.
pub fn column_widths(rows: &[Vec<String>]) -> Vec<usize> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect()
}

/// One table line: cells padded to `widths`, three spaces apart.
pub fn format_row(r: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, c) in r.iter().enumerate() {
        if i + 1 == r.len() {
            line.push_str(c);
        } else {
            let w = widths.get(i).copied().unwrap_or(0);
            line.push_str(&format!("{c:<w$}   "));
        }
    }
    line.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_like_kubectl() {
        use std::time::Duration;
        let h = |s| super::human_duration(Duration::from_secs(s));
        assert_eq!(h(5), "5s");
        assert_eq!(h(119), "119s");
        assert_eq!(h(125), "2m5s");
        assert_eq!(h(600), "10m");
        assert_eq!(h(3 * 3600 + 60), "3h1m");
        assert_eq!(h(50 * 3600), "2d2h");
    }
}
