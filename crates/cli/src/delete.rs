//! `peapod delete pod NAME…` and `peapod delete -f FILE`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use peapod_shim::{PodHandle, Request};
use peapod_types::config::Config;

/// Arguments of `delete`.
#[derive(clap::Args)]
pub struct Args {
    /// `pod` (or `pods`), followed by names.
    #[arg(value_name = "pod NAME")]
    targets: Vec<String>,
    /// Delete the pods a manifest names.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Seconds containers get to stop; the pod's terminationGracePeriodSeconds by default.
    #[arg(long, value_name = "SECONDS")]
    grace_period: Option<i64>,
    /// Kill at once (grace period 0).
    #[arg(long)]
    force: bool,
}

pub fn run(cfg: &Config, args: &Args) -> Result<i32> {
    let mut names: Vec<(String, String)> = Vec::new();
    if let Some(f) = &args.file {
        let text = crate::apply::read_manifest(f)?;
        let m = peapod_types::manifest::load(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        for p in m.pods.into_iter().map(peapod_types::pod::DefaultedPod::new) {
            names.push((p.namespace().to_string(), p.name().to_string()));
        }
    } else {
        let mut it = args.targets.iter();
        match it.next().map(String::as_str) {
            Some("pod" | "pods" | "po") => {}
            Some(other) => bail!("unsupported resource type {other:?}: only pods can be deleted"),
            None => bail!("give `pod NAME…` or `-f FILE`"),
        }
        names.extend(it.map(|n| {
            (
                args.namespace.clone(),
                n.trim_start_matches("pod/").to_string(),
            )
        }));
        if names.is_empty() {
            bail!("give the name of the pod to delete");
        }
    }
    let grace = if args.force {
        Some(0)
    } else {
        args.grace_period
    };
    let mut code = 0;
    for (ns, name) in names {
        let pod = match crate::util::find_pod(cfg, &ns, &name) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                code = 1;
                continue;
            }
        };
        delete(cfg, &pod, grace).with_context(|| format!("deleting pod {name:?}"))?;
        println!("pod \"{name}\" deleted");
    }
    Ok(code)
}

/// Deletes one pod through its shim, or directly when the shim is gone.
pub fn delete(cfg: &Config, pod: &PodHandle, grace: Option<i64>) -> Result<()> {
    let pod_grace = pod.pod.grace_period();
    let wait = Duration::from_secs((grace.unwrap_or(pod_grace).max(0) as u64) + 60);
    if pod.shim_alive {
        match peapod_shim::request(&pod.paths.socket(), &Request::Delete { grace }, wait) {
            Ok(r) if r.ok => return Ok(()),
            Ok(r) => bail!("{}", r.error),
            Err(e) if peapod_shim::list_pods(cfg).iter().all(|p| p.uid != pod.uid) => {
                tracing::debug!("shim closed early: {e}");
                return Ok(());
            }
            Err(e) => {
                tracing::warn!("the shim did not complete the deletion ({e}); cleaning up directly")
            }
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(peapod_shim::cleanup_orphan(cfg, pod))?;
    Ok(())
}
