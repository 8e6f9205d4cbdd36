//! `peapod get pods` (tables, `-o wide|yaml|json|name`, `-w`); `get events` is in
//! `events.rs` and `describe` in `describe.rs`.

use anyhow::{Result, bail};
use peapod_shim::PodHandle;
use peapod_types::api::{ContainerState, ContainerStatus, Pod};
use peapod_types::config::Config;

use crate::util::{age, column_widths, format_row, print_table};

/// Arguments of `get`.
#[derive(clap::Args)]
pub struct GetArgs {
    /// `pods` (or `pod`, `po`) or `events`.
    pub(crate) resource: String,
    /// Only this pod.
    pub(crate) name: Option<String>,
    /// Namespace.
    #[arg(short, long, default_value = "default")]
    pub(crate) namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub(crate) all_namespaces: bool,
    /// Output format: wide, yaml, json or name.
    #[arg(short, long)]
    pub(crate) output: Option<String>,
    /// After listing, keep watching: print each change as it happens (until interrupted).
    #[arg(short, long)]
    pub(crate) watch: bool,
}

/// The pods the arguments name (by namespace and name), none being fine.
pub(crate) fn matching(cfg: &Config, args: &GetArgs) -> Vec<PodHandle> {
    peapod_shim::list_pods(cfg)
        .into_iter()
        .filter(|p| args.all_namespaces || p.namespace() == args.namespace)
        .filter(|p| args.name.as_deref().is_none_or(|n| p.name() == n))
        .collect()
}

/// The pods the arguments name; a named pod that is not there is an error.
pub(crate) fn selected(cfg: &Config, args: &GetArgs) -> Result<Vec<PodHandle>> {
    let pods = matching(cfg, args);
    if let Some(n) = &args.name
        && pods.is_empty()
    {
        bail!("pods {n:?} not found in namespace {:?}", args.namespace);
    }
    Ok(pods)
}

pub fn get(cfg: &Config, args: &GetArgs) -> Result<i32> {
    match args.resource.as_str() {
        "pods" | "pod" | "po" => {}
        "events" | "event" | "ev" => return crate::events::get_events(cfg, args),
        other => bail!("unsupported resource type {other:?}: peapod knows pods and events"),
    }
    let pods = selected(cfg, args)?;
    let objects: Vec<Pod> = pods.iter().map(PodHandle::current).collect();
    match args.output.as_deref() {
        Some("yaml") | Some("json") => {
            let value = if args.name.is_some() && objects.len() == 1 {
                serde_json::to_value(&objects[0])?
            } else {
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects, "metadata": {"resourceVersion": ""}})
            };
            print_object(args, &value)?;
        }
        Some("name") => {
            for p in &objects {
                println!("pod/{}", p.metadata.name.as_deref().unwrap_or_default());
            }
        }
        Some("wide") | None => {
            if objects.is_empty() && !args.watch {
                eprintln!("No resources found in {} namespace.", args.namespace);
                return Ok(0);
            }
            let mut rows = vec![pod_header(args)];
            for (pod, h) in objects.iter().zip(&pods) {
                rows.push(pod_row(cfg, args, pod, h));
            }
            print_table(&rows);
            if args.watch {
                watch_pods(cfg, args, column_widths(&rows), &pods);
            }
            return Ok(0);
        }
        Some(other) => bail!("unsupported output format {other:?}: use wide, yaml, json or name"),
    }
    if args.watch {
        let widths = Vec::new();
        watch_pods(cfg, args, widths, &pods);
    }
    Ok(0)
}

pub(crate) fn print_object(args: &GetArgs, value: &serde_json::Value) -> Result<()> {
    if args.output.as_deref() == Some("json") {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", serde_yaml_ng::to_string(value)?);
    }
    Ok(())
}

fn pod_header(args: &GetArgs) -> Vec<String> {
    let mut header: Vec<String> = Vec::new();
    if args.all_namespaces {
        header.push("NAMESPACE".into());
    }
    header.extend(["NAME", "READY", "STATUS", "RESTARTS", "AGE"].map(String::from));
    if args.output.is_some() {
        header.extend(["IP", "NODE"].map(String::from));
    }
    header
}

/// One line of the pods table (AGE is the fifth column, or the sixth with -A).
fn pod_row(cfg: &Config, args: &GetArgs, pod: &Pod, h: &PodHandle) -> Vec<String> {
    let mut row = Vec::new();
    if args.all_namespaces {
        row.push(h.namespace().to_string());
    }
    let (ready, status, restarts) = summary(pod, h.state.as_ref().is_some_and(|s| s.terminating));
    row.extend([
        h.name().to_string(),
        ready,
        status,
        restarts,
        age(pod.metadata.creation_timestamp.as_ref()),
    ]);
    if args.output.is_some() {
        let st = pod.status.as_ref();
        row.push(
            st.and_then(|s| s.pod_ip.clone())
                .unwrap_or_else(|| "<none>".into()),
        );
        row.push(
            pod.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_else(|| peapod_shim::node_name(cfg)),
        );
    }
    row
}

/// How often `-w` looks at the pods' published state.
pub(crate) const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// `get pods -w`: prints a pod again each time its status changes (its row, or the
/// object with -o json|yaml|name), as kubectl's watch does, until interrupted.
fn watch_pods(cfg: &Config, args: &GetArgs, widths: Vec<usize>, initial: &[PodHandle]) -> ! {
    // What was last shown of each pod, by UID: its row without AGE for the table, its
    // status otherwise.
    let table = !matches!(args.output.as_deref(), Some("json" | "yaml" | "name"));
    let age_col = if args.all_namespaces { 5 } else { 4 };
    let key = |h: &PodHandle| -> String {
        let pod = h.current();
        if table {
            let mut row = pod_row(cfg, args, &pod, h);
            row.remove(age_col);
            return row.join("\u{1f}");
        }
        let terminating = h.state.as_ref().is_some_and(|s| s.terminating);
        format!(
            "{}|{terminating}",
            serde_json::to_string(&pod.status).unwrap_or_default()
        )
    };
    let mut shown: std::collections::HashMap<String, String> =
        initial.iter().map(|h| (h.uid.clone(), key(h))).collect();
    loop {
        std::thread::sleep(WATCH_INTERVAL);
        let pods = matching(cfg, args);
        for h in &pods {
            let k = key(h);
            if shown.get(&h.uid) == Some(&k) {
                continue;
            }
            shown.insert(h.uid.clone(), k);
            let pod = h.current();
            let out = match args.output.as_deref() {
                Some("name") => {
                    println!("pod/{}", h.name());
                    Ok(())
                }
                Some("json") | Some("yaml") => serde_json::to_value(&pod)
                    .map_err(anyhow::Error::from)
                    .and_then(|v| print_object(args, &v)),
                _ => {
                    println!("{}", format_row(&pod_row(cfg, args, &pod, h), &widths));
                    Ok(())
                }
            };
            if out.is_err() {
                std::process::exit(1);
            }
        }
        shown.retain(|uid, _| pods.iter().any(|h| &h.uid == uid));
        use std::io::Write;
        if std::io::stdout().flush().is_err() {
            std::process::exit(0);
        }
    }
}

/// READY, STATUS and RESTARTS as kubectl's pod printer computes them.
pub fn summary(pod: &Pod, terminating: bool) -> (String, String, String) {
    let st = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let mut reason = st
        .reason
        .clone()
        .or(st.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    let mut restarts = 0;
    let mut last_restart: Option<jiff::Timestamp> = None;
    let mut note_restart = |c: &ContainerStatus| {
        restarts += c.restart_count;
        if let Some(t) = c
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .and_then(|t| t.finished_at.as_ref())
        {
            last_restart = Some(last_restart.map_or(t.0, |l: jiff::Timestamp| l.max(t.0)));
        }
    };
    let inits = st.init_container_statuses.clone().unwrap_or_default();
    let n_init = spec.init_containers.as_ref().map_or(0, Vec::len);
    let mut initializing = false;
    for (i, c) in inits.iter().enumerate() {
        note_restart(c);
        let state = c.state.clone().unwrap_or_default();
        let sidecar = spec
            .init_containers
            .iter()
            .flatten()
            .any(|s| s.name == c.name && s.restart_policy.as_deref() == Some("Always"));
        if let Some(t) = &state.terminated
            && t.exit_code == 0
        {
            continue;
        }
        if sidecar && state.running.is_some() && c.started == Some(true) {
            continue;
        }
        initializing = true;
        reason = match (&state.terminated, &state.waiting) {
            (Some(t), _) => match &t.reason {
                Some(r) if !r.is_empty() => format!("Init:{r}"),
                _ if t.signal.unwrap_or(0) != 0 => format!("Init:Signal:{}", t.signal.unwrap_or(0)),
                _ => format!("Init:ExitCode:{}", t.exit_code),
            },
            (_, Some(w))
                if w.reason
                    .as_deref()
                    .is_some_and(|r| !r.is_empty() && r != "PodInitializing") =>
            {
                format!("Init:{}", w.reason.clone().unwrap_or_default())
            }
            _ => format!("Init:{i}/{n_init}"),
        };
        break;
    }
    let statuses = st.container_statuses.clone().unwrap_or_default();
    let mut ready = 0;
    if !initializing {
        let mut has_running = false;
        for c in statuses.iter().rev() {
            note_restart(c);
            let state: ContainerState = c.state.clone().unwrap_or_default();
            if let Some(w) = state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty())
            {
                reason = w;
            } else if let Some(t) = &state.terminated {
                reason = match &t.reason {
                    Some(r) if !r.is_empty() => r.clone(),
                    _ if t.signal.unwrap_or(0) != 0 => format!("Signal:{}", t.signal.unwrap_or(0)),
                    _ => format!("ExitCode:{}", t.exit_code),
                };
            } else if c.ready && state.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".into();
        }
    }
    if st.phase.as_deref() == Some("Unknown") {
        reason = "Unknown".into();
    } else if terminating {
        reason = "Terminating".into();
    }
    let restarts = match last_restart {
        Some(t) if restarts > 0 => {
            let d = std::time::Duration::try_from(jiff::Timestamp::now().duration_since(t))
                .unwrap_or_default();
            format!("{restarts} ({} ago)", crate::util::human_duration(d))
        }
        _ => restarts.to_string(),
    };
    (
        format!("{ready}/{}", spec.containers.len()),
        reason,
        restarts,
    )
}
