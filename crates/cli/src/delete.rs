//! `peapod delete pod NAME…` and `peapod delete -f FILE`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use peapod_shim::PodHandle;
use peapod_types::config::Config;

/// Arguments of `delete`.
#[derive(clap::Args)]
pub struct Args {
    /// A type (`pod`, `configmap`, `secret`, `pvc`, `deployment`, `replicaset`, `daemonset`,
    /// `job`, or their plurals and short names) followed by names; or `TYPE/NAME…`.
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
    /// Everything of the type whose labels match: `k=v`, `k!=v`, `k in (a,b)`, ...
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Everything of the type in the namespace.
    #[arg(long)]
    all: bool,
}

/// The names of the objects of `kind` (as [`kind_of`] names it) in `ns` that `sel` selects.
fn labelled(
    cfg: &Config,
    kind: &str,
    ns: &str,
    sel: &peapod_types::selector::Selector,
) -> Vec<String> {
    let store = peapod_shim::objects::ObjectStore::new(cfg);
    if kind == "pod" {
        return peapod_shim::list_pods(cfg)
            .into_iter()
            .filter(|p| p.namespace() == ns && sel.matches(p.current().metadata.labels.as_ref()))
            .map(|p| p.name().to_string())
            .collect();
    }
    if peapod_types::workloads::KINDS.contains(&kind) {
        return store
            .workloads(kind)
            .into_iter()
            .filter(|w| w.name().0 == ns && sel.matches(w.metadata().labels.as_ref()))
            .map(|w| w.name().1)
            .collect();
    }
    let plural = format!("{kind}s");
    store
        .names(&plural, ns)
        .into_iter()
        .filter(|n| {
            let labels = match kind {
                "configmap" => store.get_config_map(ns, n).and_then(|o| o.metadata.labels),
                "secret" => store.get_secret(ns, n).and_then(|o| o.metadata.labels),
                _ => store.get_claim(ns, n).and_then(|o| o.metadata.labels),
            };
            sel.matches(labels.as_ref())
        })
        .collect()
}

/// A kind `delete` takes, by any of kubectl's names for it.
fn kind_of(word: &str) -> Option<&'static str> {
    match word {
        "pod" | "pods" | "po" => Some("pod"),
        other => crate::objects::kind_of(other)
            .map(|k| k.trim_end_matches('s'))
            .or_else(|| crate::workloads::kind_of(other)),
    }
}

pub fn run(cfg: &Config, args: &Args) -> Result<i32> {
    // (kind, namespace, name)
    let mut targets: Vec<(&'static str, String, String)> = Vec::new();
    if let Some(f) = &args.file {
        let text = crate::apply::read_manifest(f)?;
        let m = peapod_types::manifest::load(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        for p in m.pods.into_iter().map(peapod_types::pod::DefaultedPod::new) {
            targets.push(("pod", p.namespace().to_string(), p.name().to_string()));
        }
        let meta = |m: &peapod_types::meta::ObjectMeta| {
            (
                m.namespace.clone().unwrap_or_else(|| "default".into()),
                m.name.clone().unwrap_or_default(),
            )
        };
        for cm in &m.config_maps {
            let (ns, name) = meta(&cm.metadata);
            targets.push(("configmap", ns, name));
        }
        for s in &m.secrets {
            let (ns, name) = meta(&s.metadata);
            targets.push(("secret", ns, name));
        }
        for c in &m.claims {
            let (ns, name) = meta(&c.metadata);
            targets.push(("persistentvolumeclaim", ns, name));
        }
        for w in &m.workloads {
            let (ns, name) = w.name();
            targets.push((w.plural(), ns, name));
        }
    } else {
        let mut it = args.targets.iter().peekable();
        // `TYPE NAME...`, or `TYPE/NAME...`.
        let kind = match it.peek().map(|s| s.as_str()) {
            Some(w) if !w.contains('/') => {
                let k = kind_of(w).ok_or_else(|| {
                    anyhow::anyhow!("unsupported resource type {w:?}: pods, configmaps, secrets, persistentvolumeclaims, deployments, replicasets, daemonsets and jobs can be deleted")
                })?;
                it.next();
                Some(k)
            }
            Some(_) => None,
            None => bail!("give `pod NAME…`, `TYPE/NAME…` or `-f FILE`"),
        };
        for t in it {
            let (k, name) = match (kind, t.split_once('/')) {
                (_, Some((k, n))) => (
                    kind_of(k).ok_or_else(|| anyhow::anyhow!("unsupported resource type {k:?}"))?,
                    n,
                ),
                (Some(k), None) => (k, t.as_str()),
                (None, None) => bail!("give the type of {t:?}"),
            };
            targets.push((k, args.namespace.clone(), name.to_string()));
        }
        if args.selector.is_some() || args.all {
            let Some(kind) = kind else {
                bail!("give the type of what -l or --all selects: delete pods -l app=web");
            };
            let sel = match &args.selector {
                Some(s) => peapod_types::selector::parse(s).map_err(anyhow::Error::msg)?,
                None => Default::default(),
            };
            let found = labelled(cfg, kind, &args.namespace, &sel);
            if found.is_empty() && targets.is_empty() {
                eprintln!("No resources found");
                return Ok(0);
            }
            targets.extend(found.into_iter().map(|n| (kind, args.namespace.clone(), n)));
        }
        if targets.is_empty() {
            bail!("give the name of what to delete");
        }
    }
    let grace = if args.force {
        Some(0)
    } else {
        args.grace_period
    };
    let store = peapod_shim::objects::ObjectStore::new(cfg);
    let mut code = 0;
    for (kind, ns, name) in targets {
        if peapod_types::workloads::KINDS.contains(&kind) {
            code = code.max(crate::workloads::delete(cfg, kind, &ns, &name, grace)?);
            continue;
        }
        if kind == "persistentvolumeclaim" {
            let users: Vec<String> = crate::objects::claim_users(cfg, &ns, &name);
            if !users.is_empty() {
                eprintln!(
                    "error: persistentvolumeclaim {name:?} is in use by pod {}: delete the pod first",
                    users.join(", ")
                );
                code = 1;
            } else if store.delete_claim(&ns, &name) {
                println!("persistentvolumeclaim \"{name}\" deleted");
            } else {
                eprintln!(
                    "Error from server (NotFound): persistentvolumeclaims \"{name}\" not found"
                );
                code = 1;
            }
            continue;
        }
        if kind != "pod" {
            if store.delete(&format!("{kind}s"), &ns, &name) {
                println!("{kind} \"{name}\" deleted");
            } else {
                eprintln!("Error from server (NotFound): {kind}s \"{name}\" not found");
                code = 1;
            }
            continue;
        }
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
    Ok(peapod_shim::delete_pod(cfg, pod, grace)?)
}
