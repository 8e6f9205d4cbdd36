//! `peapod`: run Kubernetes pods on one Linux host, with a kubectl-shaped command line.

mod apply;
mod attach;
mod completion;
mod cp;
mod delete;
mod describe;
mod describe_objects;
mod events;
mod exec;
mod get;
mod image;
mod jsonpath;
mod logs;
mod objects;
mod port_forward;
mod progress;
mod run;
mod serve;
mod top;
mod util;
mod wait;
mod workloads;

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use peapod_types::config::Config;

/// Run Kubernetes pods on this host, as a kubelet would.
#[derive(Parser)]
#[command(name = "peapod", version, about, propagate_version = true)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "PEAPOD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Persistent state directory (images, volumes, logs).
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Volatile state directory (pod records, sockets, mounts).
    #[arg(long, global = true, value_name = "DIR")]
    run_root: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create or keep the objects of a manifest (YAML or JSON, `-` for standard input).
    #[command(after_help = "Examples:
  # Run the pods, ConfigMaps, Secrets and claims of a file, and wait until the pods run
  peapod apply -f pod.yaml --wait

  # Read the manifest from standard input
  cat pod.yaml | peapod apply -f -

  # Put the objects that name no namespace in namespace dev
  peapod apply -n dev -f pod.yaml

  # Show the pod as it would run (defaulted and validated), creating nothing
  peapod apply -f pod.yaml --dry-run=server -o yaml")]
    Apply(apply::Args),
    /// Create the objects of a manifest; a pod that exists already is an error.
    #[command(after_help = "Examples:
  # Create the pod of a file (AlreadyExists if it is there)
  peapod create -f pod.yaml")]
    Create(apply::Args),
    /// Create a pod of one container, as `kubectl run`.
    #[command(after_help = "Examples:
  # A pod named hello, running echo once
  peapod run hello --image=localhost/peapod/busybox:1.0 --restart=Never -- echo hi

  # With a variable and a port, the arguments given as the command
  peapod run web --image=nginx --env=MODE=dev --port=80 --command -- nginx -g 'daemon off;'

  # A shell in a new pod, removed when the shell exits
  peapod run -it --rm --restart=Never tmp --image=localhost/peapod/busybox:1.0 -- sh")]
    Run(run::Args),
    /// Show pods, events, ConfigMaps, Secrets or claims.
    #[command(after_help = "Examples:
  # Every pod of the namespace, with IP and node
  peapod get pods -o wide

  # The pods labelled app=web, with their labels
  peapod get pods -l app=web --show-labels

  # One field of one pod
  peapod get pod web -o jsonpath='{.status.podIP}'

  # ConfigMaps, Secrets and claims
  peapod get cm,secrets
  peapod get pvc

  # Events as they happen
  peapod get events -w")]
    Get(get::GetArgs),
    /// Show a pod in detail: status, containers, namespaces, events.
    #[command(after_help = "Examples:
  # The pod web
  peapod describe pod web")]
    Describe(describe::DescribeArgs),
    /// Print a container's logs.
    #[command(after_help = "Examples:
  # The only container of pod web, followed
  peapod logs web -f

  # The last 20 lines of container fetch, with times
  peapod logs web -c fetch --tail=20 --timestamps

  # Every container of the pods labelled app=web, each line prefixed
  peapod logs -l app=web --all-containers --prefix")]
    Logs(logs::Args),
    /// CPU and memory use of running pods, as `kubectl top pod`.
    #[command(after_help = "Examples:
  # Every pod of the namespace
  peapod top pod

  # Each container of pod web
  peapod top pod web --containers")]
    Top(top::Args),
    /// Attach to the main process of a running container.
    #[command(after_help = "Examples:
  # The output of pod web's only container, from now on
  peapod attach web

  # Input and a terminal too (the container has stdin: true and tty: true)
  peapod attach -it shell -c sh")]
    Attach(attach::Args),
    /// Run a command in a container.
    #[command(after_help = "Examples:
  # A shell in container web of pod web
  peapod exec -it web -c web -- sh

  # One command, its exit code passed on
  peapod exec web -- cat /etc/hostname")]
    Exec(exec::Args),
    /// Delete pods, workloads, ConfigMaps, Secrets and claims, by name or by manifest.
    #[command(after_help = "Examples:
  # A pod, at once
  peapod delete pod web --force

  # A Deployment with its ReplicaSets and pods
  peapod delete deployment web

  # What a file made
  peapod delete -f pod.yaml

  # By TYPE/NAME
  peapod delete cm/settings secret/db pvc/data")]
    Delete(delete::Args),
    /// Wait for a condition, a deletion or a JSONPath value of pods or workloads.
    #[command(after_help = "Examples:
  # Until pod web is Ready, for at most a minute
  peapod wait pod/web --for=condition=Ready --timeout=60s

  # Until deployment web is available, and job pi complete
  peapod wait deployment/web --for=condition=Available
  peapod wait job/pi --for=condition=complete --timeout=5m

  # Until the pods labelled app=job have succeeded
  peapod wait pods -l app=job --for=jsonpath='{.status.phase}'=Succeeded

  # Until pod web is gone
  peapod wait pod/web --for=delete")]
    Wait(wait::Args),
    /// Copy files and directories to and from containers.
    #[command(after_help = "Examples:
  # A file out of pod web
  peapod cp web:/etc/nginx/nginx.conf ./nginx.conf

  # A directory into container app of pod web
  peapod cp ./site web:/usr/share/nginx/html -c app")]
    Cp(cp::Args),
    /// Forward local ports to a pod's ports.
    #[command(after_help = "Examples:
  # Local port 8080 to port 80 of pod web, on loopback
  peapod port-forward pod/web 8080:80

  # A free local port, on every address
  peapod port-forward pod/web :80 --address 0.0.0.0")]
    PortForward(port_forward::Args),
    /// Manage images.
    #[command(subcommand)]
    Image(image::Cmd),
    /// Serve the Kubernetes CRI (for a kubelet or crictl) on a unix socket.
    #[command(after_help = "Examples:
  # On the default socket (/run/peapod/peapod.sock)
  peapod serve

  # For crictl, on a socket of its own
  peapod serve --socket /tmp/peapod.sock
  crictl --runtime-endpoint unix:///tmp/peapod.sock pods")]
    Serve(serve::Args),
    /// Run the supervising process of one pod (started by `apply`).
    #[command(name = "__shim", hide = true)]
    Shim {
        /// The pod's UID.
        uid: String,
    },
    /// Print the shell completion script for bash, zsh or fish.
    #[command(after_help = "Examples:
  # In this bash session
  source <(peapod completion bash)

  # For every zsh session
  peapod completion zsh > \"${fpath[1]}/_peapod\"

  # fish
  peapod completion fish | source")]
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: String,
    },
    /// Run the workload controllers (started by `apply`).
    #[command(name = "__controllers", hide = true)]
    Controllers,
    /// Run the supervising process of one CRI sandbox (started by `serve`).
    #[command(name = "__cri-shim", hide = true)]
    CriShim {
        /// The sandbox's ID.
        id: String,
        /// A pipe to write one byte to once the sandbox is made and served.
        #[arg(long)]
        ready_fd: Option<i32>,
    },
}

/// The configuration: the file (absent is fine), then the flags.
fn load_config(cli: &Cli) -> Result<Config> {
    let (path, explicit) = match &cli.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from("/etc/peapod/config.toml"), false),
    };
    let mut cfg = match std::fs::read_to_string(&path) {
        Ok(text) => {
            Config::from_toml(&text).with_context(|| format!("config file {}", path.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Config::default(),
        Err(e) => return Err(e).with_context(|| format!("reading config file {}", path.display())),
    };
    if let Some(r) = &cli.root {
        cfg.root = r.clone();
    }
    if let Some(r) = &cli.run_root {
        cfg.run_root = r.clone();
    }
    cfg.root = absolute(&cfg.root)?;
    cfg.run_root = absolute(&cfg.run_root)?;
    Ok(cfg)
}

fn absolute(p: &std::path::Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

/// The global arguments a shim needs to see the same configuration.
fn shim_args(cli: &Cli, cfg: &Config) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    if let Some(c) = &cli.config {
        out.push("--config".into());
        out.push(absolute(c).unwrap_or_else(|_| c.clone()).into());
    }
    out.push("--root".into());
    out.push(cfg.root.clone().into());
    out.push("--run-root".into());
    out.push(cfg.run_root.clone().into());
    out
}

fn main() {
    // A shell asking for completions gets them, and nothing else runs.
    completion::complete();
    let cli = Cli::parse();
    let shim = matches!(
        cli.command,
        Cmd::Shim { .. } | Cmd::CriShim { .. } | Cmd::Serve(_) | Cmd::Controllers
    );
    let filter = tracing_subscriber::EnvFilter::try_from_env("PEAPOD_LOG").unwrap_or_else(|_| {
        // libcontainer logs from inside the container's own processes, before they exec:
        // its warnings would land in the container's log, so only its errors are shown.
        let base = if shim { "info" } else { "warn" };
        tracing_subscriber::EnvFilter::new(format!("{base},libcontainer=error,libcgroups=error"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(!shim && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", util::chain(&e));
            1
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<i32> {
    let cfg = load_config(&cli)?;
    match &cli.command {
        Cmd::Apply(a) => apply::run(&cfg, a, &shim_args(&cli, &cfg), false),
        Cmd::Create(a) => apply::run(&cfg, a, &shim_args(&cli, &cfg), true),
        Cmd::Run(a) => run::run(&cfg, a, &shim_args(&cli, &cfg)),
        Cmd::Get(a) => get::get(&cfg, a),
        Cmd::Wait(a) => wait::run(&cfg, a),
        Cmd::Cp(a) => cp::run(&cfg, a),
        Cmd::PortForward(a) => port_forward::run(&cfg, a),
        Cmd::Describe(a) => describe::describe(&cfg, a),
        Cmd::Logs(a) => logs::run(&cfg, a),
        Cmd::Exec(a) => exec::run(&cfg, a),
        Cmd::Attach(a) => attach::run(&cfg, a),
        Cmd::Top(a) => top::run(&cfg, a),
        Cmd::Delete(a) => delete::run(&cfg, a),
        Cmd::Image(c) => image::run(&cfg, c),
        Cmd::Serve(a) => serve::run(&cfg, a, shim_args(&cli, &cfg)),
        Cmd::Shim { uid } => {
            peapod_shim::run(cfg, uid).with_context(|| format!("shim of pod {uid}"))?;
            Ok(0)
        }
        Cmd::Completion { shell } => completion::script(shell),
        Cmd::Controllers => {
            let exe = std::env::current_exe().context("locating the peapod executable")?;
            peapod_controllers::manager::run(&cfg, exe, shim_args(&cli, &cfg))
                .map_err(anyhow::Error::msg)?;
            Ok(0)
        }
        Cmd::CriShim { id, ready_fd } => {
            peapod_shim::sandbox_shim::run_sandbox_shim(cfg, id, *ready_fd)
                .with_context(|| format!("supervisor of sandbox {id}"))?;
            Ok(0)
        }
    }
}
