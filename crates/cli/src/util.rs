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
