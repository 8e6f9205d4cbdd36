//! `peapod apply -f FILE`.

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use peapod_shim::Paths;
use peapod_types::config::Config;

use crate::util::new_uid;

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

pub fn run(cfg: &Config, args: &Args, shim_args: &[OsString]) -> Result<i32> {
    let text = read_manifest(&args.file)?;
    let manifests = peapod_types::manifest::load(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let existing = peapod_shim::list_pods(cfg);
    // Decide everything before creating anything.
    let mut to_create = Vec::new();
    for mut pod in manifests.pods {
        if pod.metadata.name.as_deref().is_none_or(str::is_empty) {
            let prefix = pod.metadata.generate_name.clone().unwrap_or_default();
            pod.metadata.name = Some(format!("{prefix}{}", &new_uid()[..5]));
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        if let Some(old) = existing
            .iter()
            .find(|p| p.name() == name && p.namespace() == ns)
        {
            if old.pod.spec == pod.spec {
                println!("pod/{name} unchanged");
                continue;
            }
            bail!(
                "pod {name:?} already exists in namespace {ns:?} with a different spec; pods cannot be updated in place: delete it first"
            );
        }
        if to_create.iter().any(|p: &peapod_types::api::Pod| {
            p.metadata.name == pod.metadata.name && p.metadata.namespace == pod.metadata.namespace
        }) {
            bail!("pod {name:?} appears twice in {}", args.file.display());
        }
        to_create.push(pod);
    }
    let exe = std::env::current_exe().context("locating the peapod executable")?;
    let mut created = Vec::new();
    for mut pod in to_create {
        let uid = new_uid();
        pod.metadata.uid = Some(uid.clone());
        pod.metadata.creation_timestamp = Some(Time(jiff::Timestamp::now()));
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let paths = Paths::new(cfg, &uid, &ns, &name);
        std::fs::create_dir_all(&paths.run_dir)
            .with_context(|| format!("creating {}", paths.run_dir.display()))?;
        std::fs::write(paths.pod_file(), serde_json::to_vec(&pod)?)?;
        if let Err(e) = peapod_shim::spawn(&exe, shim_args, &uid, &paths.run_dir) {
            let _ = std::fs::remove_dir_all(&paths.run_dir);
            return Err(e).with_context(|| format!("starting pod {name:?}"));
        }
        println!("pod/{name} created");
        created.push((ns, name));
    }
    if args.wait {
        return wait(cfg, &created, Duration::from_secs(args.timeout));
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
