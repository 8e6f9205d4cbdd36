//! `peapod apply -f FILE`.

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use peapod_types::config::Config;

use peapod_shim::new_uid;

/// Arguments of `apply`.
#[derive(clap::Args)]
pub struct Args {
    /// Manifest file (YAML or JSON, one or more documents); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    file: PathBuf,
    /// Namespace of the objects that name none (one that names another is refused).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Wait until every pod is Running or finished.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Create nothing: `client` checks the file against the schema; `server` also
    /// applies the API server's defaults and validation, as the pod would run.
    #[arg(long, value_name = "client|server", num_args = 0..=1, default_missing_value = "client")]
    dry_run: Option<String>,
    /// Print the objects (yaml, json) or their names (name) instead of what was done.
    #[arg(short, long)]
    output: Option<String>,
}

/// `apply --dry-run`: what would be created, printed, and nothing created.
pub(crate) fn dry_run(
    text: &str,
    file: &std::path::Path,
    mode: &str,
    output: Option<&str>,
    namespace: Option<&str>,
) -> Result<i32> {
    let (server, suffix) = match mode {
        "client" => (false, "(dry run)"),
        "server" => (true, "(server dry run)"),
        other => bail!("invalid --dry-run value {other:?}: use client or server"),
    };
    let m = if server {
        peapod_types::manifest::load_in(text, namespace)
    } else {
        peapod_types::manifest::parse(text).and_then(|mut m| {
            if let Some(ns) = namespace {
                m.in_namespace(ns)?;
            }
            Ok(m)
        })
    }
    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    for w in &m.warnings {
        eprintln!("Warning: {w}");
    }
    let mut objects: Vec<(String, serde_json::Value)> = Vec::new();
    for cm in &m.config_maps {
        let mut v = serde_json::to_value(cm)?;
        v["apiVersion"] = "v1".into();
        v["kind"] = "ConfigMap".into();
        objects.push(("configmap".into(), v));
    }
    for sec in &m.secrets {
        let mut v = serde_json::to_value(sec)?;
        v["apiVersion"] = "v1".into();
        v["kind"] = "Secret".into();
        objects.push(("secret".into(), v));
    }
    for pod in &m.pods {
        let mut v = serde_json::to_value(pod)?;
        v["apiVersion"] = "v1".into();
        v["kind"] = "Pod".into();
        objects.push(("pod".into(), v));
    }
    for w in &m.workloads {
        objects.push((w.resource(), w.to_value()));
    }
    match output {
        None => {
            for (kind, v) in &objects {
                let name = v["metadata"]["name"].as_str().unwrap_or_default();
                println!("{kind}/{name} created {suffix}");
            }
        }
        Some("name") => {
            for (kind, v) in &objects {
                println!(
                    "{kind}/{}",
                    v["metadata"]["name"].as_str().unwrap_or_default()
                );
            }
        }
        Some(fmt @ ("yaml" | "json")) => {
            let value = match objects.len() {
                1 => objects.remove(0).1,
                _ => {
                    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects.into_iter().map(|(_, v)| v).collect::<Vec<_>>(), "metadata": {"resourceVersion": ""}})
                }
            };
            if fmt == "json" {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", serde_yaml_ng::to_string(&value)?);
            }
        }
        Some(other) => bail!("unsupported output format {other:?}: use yaml, json or name"),
    }
    Ok(0)
}

/// Reads a manifest from a file or standard input.
pub fn read_manifest(file: &std::path::Path) -> Result<String> {
    if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
    }
}

/// `apply`, or with `create_only` `create`.
pub fn run(cfg: &Config, args: &Args, shim_args: &[OsString], create_only: bool) -> Result<i32> {
    let text = read_manifest(&args.file)?;
    if let Some(mode) = &args.dry_run {
        return dry_run(
            &text,
            &args.file,
            mode,
            args.output.as_deref(),
            args.namespace.as_deref(),
        );
    }
    if args.output.is_some() {
        bail!("-o is for --dry-run; use `peapod get` to see what was applied");
    }
    let source = args.file.display().to_string();
    let wait = args.wait.then(|| Duration::from_secs(args.timeout));
    let target = Target {
        source: &source,
        namespace: args.namespace.as_deref(),
    };
    apply_text(cfg, &text, &target, create_only, wait, shim_args)
}

/// Where a manifest comes from (for messages) and the namespace `-n` asked for.
pub(crate) struct Target<'a> {
    pub source: &'a str,
    pub namespace: Option<&'a str>,
}

/// Applies manifest `text` (from `source`, for messages): objects stored, pods created.
/// With `create_only`, an existing pod of the same name is an error, as `kubectl create`
/// and `kubectl run` have it; otherwise an identical one is left unchanged.
pub(crate) fn apply_text(
    cfg: &Config,
    text: &str,
    target: &Target,
    create_only: bool,
    wait_for: Option<Duration>,
    shim_args: &[OsString],
) -> Result<i32> {
    let source = target.source;
    let manifests = peapod_types::manifest::load_in(text, target.namespace)
        .map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
    for w in &manifests.warnings {
        eprintln!("Warning: {w}");
    }
    let existing = peapod_shim::list_pods(cfg);
    let store = peapod_shim::objects::ObjectStore::new(cfg);
    // Decide everything before creating anything.
    let mut to_create = Vec::new();
    let mut resizes = Vec::new();
    for mut pod in manifests.pods {
        if pod.metadata.name.as_deref().is_none_or(str::is_empty) {
            let prefix = pod.metadata.generate_name.clone().unwrap_or_default();
            pod.metadata.name = Some(format!("{prefix}{}", &new_uid()[..5]));
        }
        let defaulted = peapod_types::pod::DefaultedPod::new(pod.clone());
        let (name, ns) = (
            defaulted.name().to_string(),
            defaulted.namespace().to_string(),
        );
        if let Some(old) = existing
            .iter()
            .find(|p| p.name() == name && p.namespace() == ns)
        {
            if create_only {
                bail!("Error from server (AlreadyExists): pods {name:?} already exists");
            }
            // The API server's defaults, so that only what was written counts.
            let defaulted_new = defaulted.pod();
            match peapod_types::resize::check_update(old.pod.pod(), defaulted_new) {
                Ok(peapod_types::resize::Update::Unchanged) => {
                    println!("pod/{name} unchanged");
                }
                Ok(peapod_types::resize::Update::InPlace { .. }) => {
                    resizes.push((old.clone(), defaulted_new.clone()));
                }
                Err(errs) => {
                    let body = if errs.len() == 1 {
                        errs[0].clone()
                    } else {
                        errs.iter().map(|e| format!("\n  * {e}")).collect()
                    };
                    bail!("{source}: pod {name:?} is invalid: {body}");
                }
            }
            continue;
        }
        if to_create
            .iter()
            .any(|(p, _): &(peapod_types::api::Pod, _)| {
                p.metadata.name == pod.metadata.name
                    && p.metadata.namespace == pod.metadata.namespace
            })
        {
            bail!("pod {name:?} appears twice in {source}");
        }
        let secrets = peapod_shim::pull_secrets(
            &pod,
            |ns, name| {
                manifests
                    .secrets
                    .iter()
                    .find(|s| {
                        s.metadata.name.as_deref() == Some(name)
                            && s.metadata.namespace.as_deref().unwrap_or("default") == ns
                    })
                    .cloned()
                    .or_else(|| store.get_secret(ns, name))
            },
            |w| eprintln!("warning: {w}"),
        )
        .map_err(anyhow::Error::msg)?;
        to_create.push((pod, secrets));
    }
    // ConfigMaps and Secrets first, so that the pods of the same file find them.
    for cm in &manifests.config_maps {
        let name = cm.metadata.name.clone().unwrap_or_default();
        let done = store.put_config_map(cm).map_err(anyhow::Error::msg)?;
        println!("configmap/{name} {done}");
    }
    for s in &manifests.secrets {
        let name = s.metadata.name.clone().unwrap_or_default();
        let done = store.put_secret(s).map_err(anyhow::Error::msg)?;
        println!("secret/{name} {done}");
    }
    for c in &manifests.claims {
        let name = c.metadata.name.clone().unwrap_or_default();
        let done = store.put_claim(c).map_err(anyhow::Error::msg)?;
        println!("persistentvolumeclaim/{name} {done}");
    }
    if !manifests.workloads.is_empty() {
        let _lock = store.lock().map_err(anyhow::Error::msg)?;
        for w in &manifests.workloads {
            let (ns, name) = w.name();
            if create_only && store.get_workload(w.plural(), &ns, &name).is_some() {
                bail!(
                    "Error from server (AlreadyExists): {}.{} {name:?} already exists",
                    w.plural(),
                    w.api_version().trim_end_matches("/v1")
                );
            }
        }
        for w in &manifests.workloads {
            let done = store.put_workload(w).map_err(anyhow::Error::msg)?;
            println!("{}/{} {done}", w.resource(), w.name().1);
        }
    }
    let exe = std::env::current_exe().context("locating the peapod executable")?;
    if !manifests.workloads.is_empty() {
        peapod_controllers::manager::ensure_running(cfg, &exe, shim_args)
            .context("starting the workload controllers")?;
    }
    for (old, new) in resizes {
        let name = old.pod.name().to_string();
        peapod_shim::update_pod(&old, &new).with_context(|| format!("updating pod {name:?}"))?;
        println!("pod/{name} configured");
    }
    let mut created = Vec::new();
    for (pod, secrets) in to_create {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        peapod_shim::create_pod(cfg, pod, &secrets, &exe, shim_args)
            .with_context(|| format!("starting pod {name:?}"))?;
        println!("pod/{name} created");
        created.push((ns, name));
    }
    if let Some(timeout) = wait_for {
        return wait(cfg, &created, timeout);
    }
    Ok(0)
}

/// Waits until each pod is Running, Succeeded or Failed; 1 if any failed or timed out.
fn wait(cfg: &Config, pods: &[(String, String)], timeout: Duration) -> Result<i32> {
    let deadline = Instant::now() + timeout;
    let mut code = 0;
    for (ns, name) in pods {
        loop {
            let p = crate::util::find_pod(cfg, ns, name)?;
            let phase = p.current().status.and_then(|s| s.phase).unwrap_or_default();
            match phase.as_str() {
                "Running" | "Succeeded" => break,
                "Failed" | "Unknown" => {
                    eprintln!("pod/{name} is {phase}");
                    code = 1;
                    break;
                }
                _ if Instant::now() > deadline => {
                    eprintln!("pod/{name}: timed out waiting, still {phase}");
                    code = 1;
                    break;
                }
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
    Ok(code)
}
