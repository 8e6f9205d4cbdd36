//! `peapod run NAME --image=IMAGE [-- ARGS]`, as `kubectl run`: one pod of one container,
//! both named NAME, labelled `run=NAME`.

use std::ffi::OsString;

use anyhow::{Result, bail};
use peapod_types::config::Config;
use serde_json::json;

/// Arguments of `run`.
#[derive(clap::Args)]
pub struct Args {
    /// The pod's (and its container's) name.
    name: String,
    /// The image.
    #[arg(long)]
    image: String,
    /// The pod's restartPolicy: Always, OnFailure or Never.
    #[arg(long, default_value = "Always")]
    restart: String,
    /// Environment variables, `KEY=VALUE` (repeatable).
    #[arg(long = "env")]
    env: Vec<String>,
    /// The port the container exposes.
    #[arg(long)]
    port: Option<i32>,
    /// Labels, `k=v,k2=v2` (instead of `run=NAME`).
    #[arg(short = 'l', long)]
    labels: Option<String>,
    /// The words after `--` are the command, not its arguments.
    #[arg(long)]
    command: bool,
    /// The image pull policy.
    #[arg(long)]
    image_pull_policy: Option<String>,
    /// Namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Print the pod (with -o yaml|json) instead of creating it: `client` or `server`.
    #[arg(long, value_name = "client|server", num_args = 0..=1, default_missing_value = "client")]
    dry_run: Option<String>,
    /// With --dry-run: yaml, json or name.
    #[arg(short, long)]
    output: Option<String>,
    /// Delete the pod once the attached session ends (with -i or -t).
    #[arg(long)]
    rm: bool,
    /// Keep the container's standard input open and attach to it (`stdin`, `stdinOnce`).
    #[arg(short = 'i', long)]
    stdin: bool,
    /// Give the container a terminal and attach to it.
    #[arg(short, long)]
    tty: bool,
    /// Arguments (or, with --command, the command).
    #[arg(last = true)]
    args: Vec<String>,
}

/// The pod `kubectl run` would make of `a`.
fn pod(a: &Args) -> Result<serde_json::Value> {
    let labels: serde_json::Map<String, serde_json::Value> = match &a.labels {
        Some(l) => l
            .split(',')
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => Ok((k.trim().to_string(), json!(v.trim()))),
                None => bail!("invalid label {kv:?}: give k=v"),
            })
            .collect::<Result<_>>()?,
        None => [("run".to_string(), json!(a.name))].into_iter().collect(),
    };
    let mut c = json!({"name": a.name, "image": a.image});
    if !a.args.is_empty() {
        c[if a.command { "command" } else { "args" }] = json!(a.args);
    }
    if !a.env.is_empty() {
        let env: Vec<serde_json::Value> = a
            .env
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => Ok(json!({"name": k, "value": v})),
                None => bail!("invalid env {kv:?}: give KEY=VALUE"),
            })
            .collect::<Result<_>>()?;
        c["env"] = json!(env);
    }
    if let Some(p) = a.port {
        c["ports"] = json!([{"containerPort": p}]);
    }
    if let Some(p) = &a.image_pull_policy {
        c["imagePullPolicy"] = json!(p);
    }
    if a.stdin {
        c["stdin"] = json!(true);
        c["stdinOnce"] = json!(true);
    }
    if a.tty {
        c["tty"] = json!(true);
    }
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": a.name, "namespace": a.namespace, "labels": labels},
        "spec": {"restartPolicy": a.restart, "containers": [c]}
    }))
}

pub fn run(cfg: &Config, a: &Args, shim_args: &[OsString]) -> Result<i32> {
    let attach = a.stdin || a.tty;
    if a.rm && !attach {
        bail!("--rm should only be used for attached containers (give -i or -t)");
    }
    let text = serde_json::to_string(&pod(a)?)?;
    if let Some(mode) = &a.dry_run {
        return crate::apply::dry_run(
            &text,
            std::path::Path::new("run"),
            mode,
            a.output.as_deref(),
            None,
        );
    }
    if a.output.is_some() {
        bail!("-o is for --dry-run");
    }
    let code = crate::apply::apply_text(
        cfg,
        &text,
        &crate::apply::Target {
            source: "run",
            namespace: None,
        },
        true,
        None,
        shim_args,
    )?;
    if !attach || code != 0 {
        return Ok(code);
    }
    let result = attach_and_wait(cfg, a);
    if a.rm {
        let h = crate::util::find_pod(cfg, &a.namespace, &a.name)?;
        crate::delete::delete(cfg, &h, None)?;
        println!("pod \"{}\" deleted", a.name);
    }
    result
}

/// Waits for the container to start, attaches to it until its output ends, and returns
/// its exit code when it has ended (0 while it runs on), as `kubectl run -i` does.
fn attach_and_wait(cfg: &Config, a: &Args) -> Result<i32> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let terminated = |p: &peapod_types::api::Pod| -> Option<i32> {
        let s = p.status.as_ref()?.container_statuses.as_ref()?.first()?;
        s.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code)
    };
    loop {
        let h = crate::util::find_pod(cfg, &a.namespace, &a.name)?;
        let pod = h.current();
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
        if let Some(code) = terminated(&pod) {
            // It ended before we could attach: its log says what it printed.
            crate::logs::print_log_of(&h, &a.name)?;
            return Ok(code);
        }
        if phase.as_deref() == Some("Running") {
            crate::attach::attach(cfg, &h, None, a.stdin, a.tty)?;
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!("timed out waiting for pod {:?} to start", a.name);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The session ended: the container has exited, or is about to.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < until {
        let h = crate::util::find_pod(cfg, &a.namespace, &a.name)?;
        if let Some(code) = terminated(&h.current()) {
            return Ok(code);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: Args,
    }

    #[test]
    fn the_pod_kubectl_run_makes() {
        let t = T::parse_from([
            "x",
            "web",
            "--image=nginx",
            "--restart=Never",
            "--env=A=1",
            "--port=80",
            "--",
            "sleep",
            "10",
        ]);
        let p = pod(&t.a).unwrap();
        assert_eq!(p["metadata"]["labels"], json!({"run": "web"}));
        assert_eq!(p["spec"]["restartPolicy"], "Never");
        let c = &p["spec"]["containers"][0];
        assert_eq!(c["name"], "web");
        assert_eq!(c["args"], json!(["sleep", "10"]));
        assert_eq!(c["env"], json!([{"name": "A", "value": "1"}]));
        assert_eq!(c["ports"], json!([{"containerPort": 80}]));
        let t = T::parse_from([
            "x",
            "job",
            "--image=busybox",
            "--command",
            "-l",
            "a=b",
            "--",
            "sh",
            "-c",
            "true",
        ]);
        let p = pod(&t.a).unwrap();
        assert_eq!(
            p["spec"]["containers"][0]["command"],
            json!(["sh", "-c", "true"])
        );
        assert_eq!(p["metadata"]["labels"], json!({"a": "b"}));
    }
}
