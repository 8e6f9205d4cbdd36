//! `peapod apply -f FILE`.

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use peapod_shim::Paths;
use peapod_types::config::Config;

use peapod_shim::new_uid;

/// Arguments of `apply`.
#[derive(clap::Args)]
pub struct Args {
    /// Manifest file (YAML or JSON, one or more documents); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    file: PathBuf,
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
) -> Result<i32> {
    let (server, suffix) = match mode {
        "client" => (false, "(dry run)"),
        "server" => (true, "(server dry run)"),
        other => bail!("invalid --dry-run value {other:?}: use client or server"),
    };
    let m = if server {
        peapod_types::manifest::load(text)
    } else {
        peapod_types::manifest::parse(text)
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
        return dry_run(&text, &args.file, mode, args.output.as_deref());
    }
    if args.output.is_some() {
        bail!("-o is for --dry-run; use `peapod get` to see what was applied");
    }
    let source = args.file.display().to_string();
    let wait = args.wait.then(|| Duration::from_secs(args.timeout));
    apply_text(cfg, &text, &source, create_only, wait, shim_args)
}

/// Applies manifest `text` (from `source`, for messages): objects stored, pods created.
/// With `create_only`, an existing pod of the same name is an error, as `kubectl create`
/// and `kubectl run` have it; otherwise an identical one is left unchanged.
pub(crate) fn apply_text(
    cfg: &Config,
    text: &str,
    source: &str,
    create_only: bool,
    wait_for: Option<Duration>,
    shim_args: &[OsString],
) -> Result<i32> {
    let manifests =
        peapod_types::manifest::load(text).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
    for w in &manifests.warnings {
        eprintln!("Warning: {w}");
    }
    let existing = peapod_shim::list_pods(cfg);
    // Decide everything before creating anything.
    let mut to_create = Vec::new();
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
            if old.pod.pod().spec == pod.spec {
                println!("pod/{name} unchanged");
                continue;
            }
            bail!(
                "pod {name:?} already exists in namespace {ns:?} with a different spec; pods cannot be updated in place: delete it first"
            );
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
        let secrets = pull_secrets(&pod, &manifests.secrets, &ns)?;
        to_create.push((pod, secrets));
    }
    // ConfigMaps and Secrets first, so that the pods of the same file find them.
    let store = peapod_shim::objects::ObjectStore::new(cfg);
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
    let exe = std::env::current_exe().context("locating the peapod executable")?;
    let mut created = Vec::new();
    for (mut pod, secrets) in to_create {
        let uid = new_uid();
        pod.metadata.uid = Some(uid.clone());
        pod.metadata.creation_timestamp = Some(Time(jiff::Timestamp::now()));
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let paths = Paths::new(cfg, &uid);
        std::fs::create_dir_all(&paths.run_dir)
            .with_context(|| format!("creating {}", paths.run_dir.display()))?;
        std::fs::write(paths.pod_file(), serde_json::to_vec(&pod)?)?;
        if !secrets.is_empty() {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let file = paths.pull_secrets_file();
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file)
                .and_then(|mut f| f.write_all(&serde_json::to_vec(&secrets)?))
                .with_context(|| format!("writing {}", file.display()))?;
        }
        if let Err(e) = peapod_shim::spawn(&exe, shim_args, &uid, &paths.run_dir) {
            let _ = std::fs::remove_dir_all(&paths.run_dir);
            return Err(e).with_context(|| format!("starting pod {name:?}"));
        }
        println!("pod/{name} created");
        created.push((ns, name));
    }
    if let Some(timeout) = wait_for {
        return wait(cfg, &created, timeout);
    }
    Ok(0)
}

/// The Docker configs of the Secrets a pod names in `imagePullSecrets`, in order. A Secret
/// that is not in the file is reported and skipped, as the kubelet does; one of the wrong
/// type or without its key is an error.
fn pull_secrets(
    pod: &peapod_types::api::Pod,
    secrets: &[peapod_types::api::Secret],
    ns: &str,
) -> Result<Vec<serde_json::Value>> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut out = Vec::new();
    let refs = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_ref());
    for (i, r) in refs.into_iter().flatten().enumerate() {
        let field = format!("pod {name:?}: spec.imagePullSecrets[{i}]");
        let Some(s) = secrets.iter().find(|s| {
            s.metadata.name.as_deref() == Some(r.name.as_str())
                && s.metadata.namespace.as_deref().unwrap_or("default") == ns
        }) else {
            eprintln!(
                "warning: {field}: secret {:?} is not in this file; pulling without it",
                r.name
            );
            continue;
        };
        let ty = s.type_.as_deref().unwrap_or("Opaque");
        let key = match ty {
            "kubernetes.io/dockerconfigjson" => ".dockerconfigjson",
            "kubernetes.io/dockercfg" => ".dockercfg",
            other => bail!(
                "{field}: secret {:?} has type {other:?}; image pull secrets are of type kubernetes.io/dockerconfigjson",
                r.name
            ),
        };
        let data: Vec<u8> = match (
            s.data.as_ref().and_then(|d| d.get(key)),
            s.string_data.as_ref().and_then(|d| d.get(key)),
        ) {
            (_, Some(text)) => text.as_bytes().to_vec(),
            (Some(bytes), None) => bytes.0.clone(),
            (None, None) => bail!("{field}: secret {:?} has no data[{key:?}]", r.name),
        };
        let v: serde_json::Value = serde_json::from_slice(&data)
            .with_context(|| format!("{field}: secret {:?}: data[{key:?}]", r.name))?;
        // Check it now, so a bad secret is reported before anything is created.
        peapod_types::credentials::Keyring::new()
            .add_docker_config(&data, &format!("secret {:?}", r.name))
            .with_context(|| field.clone())?;
        out.push(v);
    }
    Ok(out)
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
