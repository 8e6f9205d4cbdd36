//! `peapod top pod [NAME]`, as `kubectl top pod`: CPU (millicores) and memory (working set)
//! of running pods or, with `--containers`, of each container, from their cgroups.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use peapod_shim::PodHandle;
use peapod_types::config::Config;

use crate::util::print_table;

/// Arguments of `top`.
#[derive(clap::Args)]
pub struct Args {
    /// `pod` (or `pods`, `po`).
    resource: String,
    /// Only this pod.
    name: Option<String>,
    /// Namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Label selector.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// A line per container.
    #[arg(long)]
    containers: bool,
    /// No header line.
    #[arg(long)]
    no_headers: bool,
    /// Sort by `cpu` or `memory`, largest first.
    #[arg(long, value_name = "cpu|memory")]
    sort_by: Option<String>,
}

/// One container's figures: millicores over the sampling window, working-set bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub millicores: u64,
    pub memory: u64,
}

/// Millicores from two cumulative CPU readings (nanoseconds) taken `elapsed` apart.
pub(crate) fn millicores(before_ns: u64, after_ns: u64, elapsed: Duration) -> u64 {
    let window = elapsed.as_nanos().max(1);
    (u128::from(after_ns.saturating_sub(before_ns)) * 1000 / window) as u64
}

/// kubectl's rendering: `250m`, `12Mi`.
pub(crate) fn cells(u: Usage) -> (String, String) {
    (
        format!("{}m", u.millicores),
        format!("{}Mi", u.memory / (1024 * 1024)),
    )
}

pub fn run(cfg: &Config, args: &Args) -> Result<i32> {
    if !matches!(args.resource.as_str(), "pod" | "pods" | "po") {
        bail!(
            "unsupported resource type {:?}: peapod top shows pods",
            args.resource
        );
    }
    let sel = match &args.selector {
        Some(s) => Some(peapod_types::selector::parse(s).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let pods: Vec<PodHandle> = peapod_shim::list_pods(cfg)
        .into_iter()
        .filter(|p| args.all_namespaces || p.namespace() == args.namespace)
        .filter(|p| args.name.as_deref().is_none_or(|n| n == p.name()))
        .filter(|p| {
            sel.as_ref()
                .is_none_or(|s| s.matches(p.current().metadata.labels.as_ref()))
        })
        .filter(|p| p.shim_alive)
        .collect();
    // (pod index, container name, id) of the containers that run.
    let mut running: Vec<(usize, String, String)> = Vec::new();
    for (i, p) in pods.iter().enumerate() {
        for c in p.state.iter().flat_map(|s| s.containers.iter()) {
            if c.pid > 0 {
                running.push((i, c.name.clone(), c.id.clone()));
            }
        }
    }
    if running.is_empty() {
        match &args.name {
            Some(n) => {
                bail!("metrics not available yet for pod {n:?}: it has no running container")
            }
            None => {
                eprintln!("No resources found in {} namespace.", args.namespace);
                return Ok(0);
            }
        }
    }
    // Two readings a second apart: the CPU rate over that window, as metrics-server takes
    // one over its own.
    let ids: Vec<String> = running.iter().map(|(_, _, id)| id.clone()).collect();
    let read = || -> Result<BTreeMap<String, (u64, u64)>> {
        Ok(peapod_shim::container_stats(cfg, &ids)?
            .into_iter()
            .map(|s| {
                let cpu = s.cpu.map_or(0, |c| c.usage_core_nano_seconds);
                let mem = s.memory.map_or(0, |m| m.working_set);
                (s.id, (cpu, mem))
            })
            .collect())
    };
    let t0 = Instant::now();
    let first = read()?;
    std::thread::sleep(Duration::from_secs(1));
    let second = read()?;
    let elapsed = t0.elapsed();
    let usage = |id: &str| -> Option<Usage> {
        let (c0, _) = first.get(id)?;
        let (c1, mem) = second.get(id)?;
        Some(Usage {
            millicores: millicores(*c0, *c1, elapsed),
            memory: *mem,
        })
    };
    // Rows: (namespace, pod, container or "", usage).
    let mut rows: Vec<(String, String, String, Usage)> = Vec::new();
    if args.containers {
        for (i, name, id) in &running {
            if let Some(u) = usage(id) {
                let p = &pods[*i];
                rows.push((p.namespace().into(), p.name().into(), name.clone(), u));
            }
        }
    } else {
        for (i, p) in pods.iter().enumerate() {
            let mut total = Usage::default();
            let mut any = false;
            for (_, _, id) in running.iter().filter(|(j, _, _)| *j == i) {
                if let Some(u) = usage(id) {
                    total.millicores += u.millicores;
                    total.memory += u.memory;
                    any = true;
                }
            }
            if any {
                rows.push((p.namespace().into(), p.name().into(), String::new(), total));
            }
        }
    }
    match args.sort_by.as_deref() {
        None => {}
        Some("cpu") => rows.sort_by_key(|r| std::cmp::Reverse(r.3.millicores)),
        Some("memory") => rows.sort_by_key(|r| std::cmp::Reverse(r.3.memory)),
        Some(other) => bail!("--sort-by accepts only cpu or memory, not {other:?}"),
    }
    let mut table: Vec<Vec<String>> = Vec::new();
    if !args.no_headers {
        let mut head = Vec::new();
        if args.all_namespaces {
            head.push("NAMESPACE".to_string());
        }
        if args.containers {
            head.push("POD".into());
        }
        head.extend(["NAME", "CPU(cores)", "MEMORY(bytes)"].map(String::from));
        table.push(head);
    }
    for (ns, pod, container, u) in rows {
        let mut row = Vec::new();
        if args.all_namespaces {
            row.push(ns);
        }
        row.push(pod);
        if args.containers {
            row.push(container);
        }
        let (cpu, mem) = cells(u);
        row.extend([cpu, mem]);
        table.push(row);
    }
    print_table(&table);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_units_as_kubectl_prints_them() {
        // Half a core for a second.
        assert_eq!(millicores(1_000, 500_001_000, Duration::from_secs(1)), 500);
        assert_eq!(millicores(5, 5, Duration::from_secs(1)), 0);
        assert_eq!(
            millicores(9, 3, Duration::from_secs(1)),
            0,
            "a reset counter"
        );
        assert_eq!(
            cells(Usage {
                millicores: 250,
                memory: 12 * 1024 * 1024 + 5
            }),
            ("250m".to_string(), "12Mi".to_string())
        );
    }
}
