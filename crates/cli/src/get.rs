//! `peapod get pods`, `peapod get events` and `peapod describe pod`.

use anyhow::{Result, bail};
use peapod_shim::PodHandle;
use peapod_types::api::{ContainerState, ContainerStatus, Pod};
use peapod_types::config::Config;

use crate::util::{age, column_widths, format_row, print_table};

/// Arguments of `get`.
#[derive(clap::Args)]
pub struct GetArgs {
    /// `pods` (or `pod`, `po`) or `events`.
    resource: String,
    /// Only this pod.
    name: Option<String>,
    /// Namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Output format: wide, yaml, json or name.
    #[arg(short, long)]
    output: Option<String>,
    /// After listing, keep watching: print each change as it happens (until interrupted).
    #[arg(short, long)]
    watch: bool,
}

/// Arguments of `describe`.
#[derive(clap::Args)]
pub struct DescribeArgs {
    /// `pod` (or `pods`, `po`).
    resource: String,
    /// The pod's name.
    name: String,
    /// Namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
}

/// The pods the arguments name (by namespace and name), none being fine.
fn matching(cfg: &Config, args: &GetArgs) -> Vec<PodHandle> {
    peapod_shim::list_pods(cfg)
        .into_iter()
        .filter(|p| args.all_namespaces || p.namespace() == args.namespace)
        .filter(|p| args.name.as_deref().is_none_or(|n| p.name() == n))
        .collect()
}

/// The pods the arguments name; a named pod that is not there is an error.
fn selected(cfg: &Config, args: &GetArgs) -> Result<Vec<PodHandle>> {
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
        "events" | "event" | "ev" => return get_events(cfg, args),
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

fn print_object(args: &GetArgs, value: &serde_json::Value) -> Result<()> {
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
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

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

/// Every event of `pods` with its pod's name, oldest first.
fn events_of(pods: &[PodHandle]) -> Vec<(String, String, usize, peapod_kubelet::Event)> {
    let mut all = Vec::new();
    for p in pods {
        for (i, e) in p
            .state
            .as_ref()
            .map(|s| s.events.clone())
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            all.push((p.uid.clone(), p.name().to_string(), i, e));
        }
    }
    all.sort_by(|a, b| a.3.last_timestamp.cmp(&b.3.last_timestamp));
    all
}

fn event_row(name: &str, e: &peapod_kubelet::Event, wide: bool) -> Vec<String> {
    let time = |t: &str| {
        t.parse::<jiff::Timestamp>()
            .ok()
            .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time)
    };
    let mut row = vec![
        age(time(&e.last_timestamp).as_ref()),
        e.type_.clone(),
        e.reason.clone(),
        format!("pod/{name}"),
    ];
    if wide {
        row.extend([
            e.field_path.clone(),
            e.source.clone(),
            e.message.clone(),
            age(time(&e.first_timestamp).as_ref()),
            e.count.to_string(),
        ]);
    } else {
        row.push(e.message.clone());
    }
    row
}

/// An event as the API shows one (`v1 Event`).
fn event_object(h: &PodHandle, i: usize, e: &peapod_kubelet::Event) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{}.{i}", h.name()), "namespace": h.namespace()},
        "involvedObject": {
            "apiVersion": "v1", "kind": "Pod", "name": h.name(), "namespace": h.namespace(),
            "uid": h.uid, "fieldPath": Some(&e.field_path).filter(|f| !f.is_empty()),
        },
        "type": e.type_, "reason": e.reason, "message": e.message, "count": e.count,
        "firstTimestamp": e.first_timestamp, "lastTimestamp": e.last_timestamp,
        "source": {"component": e.source},
    })
}

fn get_events(cfg: &Config, args: &GetArgs) -> Result<i32> {
    let pods = selected(cfg, args)?;
    if let Some("json" | "yaml") = args.output.as_deref() {
        let mut items = Vec::new();
        for h in &pods {
            for (i, e) in h.state.iter().flat_map(|s| s.events.iter()).enumerate() {
                items.push(event_object(h, i, e));
            }
        }
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}});
        print_object(args, &list)?;
        return Ok(0);
    }
    let wide = match args.output.as_deref() {
        None => false,
        Some("wide") => true,
        Some(other) => {
            bail!("unsupported output format {other:?} for events: use wide, yaml or json")
        }
    };
    let mut header = vec!["LAST SEEN", "TYPE", "REASON", "OBJECT"];
    if wide {
        header.extend(["SUBOBJECT", "SOURCE", "MESSAGE", "FIRST SEEN", "COUNT"]);
    } else {
        header.push("MESSAGE");
    }
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    let all = events_of(&pods);
    // Seen: (pod UID, index) -> count.
    let mut seen: std::collections::HashMap<(String, usize), u32> = Default::default();
    for (uid, name, i, e) in &all {
        rows.push(event_row(name, e, wide));
        seen.insert((uid.clone(), *i), e.count);
    }
    if rows.len() == 1 && !args.watch {
        eprintln!("No events found in {} namespace.", args.namespace);
        return Ok(0);
    }
    print_table(&rows);
    if !args.watch {
        return Ok(0);
    }
    // -w: each new event, and each repeat of one (its count went up), as it happens.
    let widths = column_widths(&rows);
    loop {
        std::thread::sleep(WATCH_INTERVAL);
        let pods = matching(cfg, args);
        for (uid, name, i, e) in events_of(&pods) {
            let k = (uid, i);
            if seen.get(&k) == Some(&e.count) {
                continue;
            }
            seen.insert(k, e.count);
            println!("{}", format_row(&event_row(&name, &e, wide), &widths));
        }
        use std::io::Write;
        if std::io::stdout().flush().is_err() {
            return Ok(0);
        }
    }
}

fn state_text(s: &ContainerState, indent: &str) -> String {
    let time = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.as_ref()
            .map(|t| t.0.strftime("%a, %d %b %Y %H:%M:%S %z").to_string())
            .unwrap_or_default()
    };
    if let Some(r) = &s.running {
        format!("Running\n{indent}  Started:      {}", time(&r.started_at))
    } else if let Some(t) = &s.terminated {
        let mut out = format!(
            "Terminated\n{indent}  Reason:       {}",
            t.reason.clone().unwrap_or_default()
        );
        if let Some(m) = &t.message {
            out.push_str(&format!("\n{indent}  Message:      {m}"));
        }
        out.push_str(&format!("\n{indent}  Exit Code:    {}", t.exit_code));
        if let Some(sig) = t.signal {
            out.push_str(&format!("\n{indent}  Signal:       {sig}"));
        }
        out.push_str(&format!(
            "\n{indent}  Started:      {}",
            time(&t.started_at)
        ));
        out.push_str(&format!(
            "\n{indent}  Finished:     {}",
            time(&t.finished_at)
        ));
        out
    } else if let Some(w) = &s.waiting {
        let mut out = format!(
            "Waiting\n{indent}  Reason:       {}",
            w.reason.clone().unwrap_or_default()
        );
        if let Some(m) = &w.message {
            out.push_str(&format!("\n{indent}  Message:      {m}"));
        }
        out
    } else {
        "<none>".into()
    }
}

pub fn describe(cfg: &Config, args: &DescribeArgs) -> Result<i32> {
    if !matches!(args.resource.as_str(), "pod" | "pods" | "po") {
        bail!(
            "unsupported resource type {:?}: peapod describes pods",
            args.resource
        );
    }
    let h = crate::util::find_pod(cfg, &args.namespace, &args.name)?;
    let pod = h.current();
    let spec = pod.spec.clone().unwrap_or_default();
    let st = pod.status.clone().unwrap_or_default();
    let m = &pod.metadata;
    let kv = |map: &Option<std::collections::BTreeMap<String, String>>| match map {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n              "),
        _ => "<none>".into(),
    };
    println!("Name:         {}", m.name.as_deref().unwrap_or_default());
    println!(
        "Namespace:    {}",
        m.namespace.as_deref().unwrap_or_default()
    );
    println!("UID:          {}", m.uid.as_deref().unwrap_or_default());
    println!(
        "Node:         {}/{}",
        peapod_shim::node_name(cfg),
        st.host_ip.clone().unwrap_or_default()
    );
    println!(
        "Start Time:   {}",
        st.start_time
            .as_ref()
            .map(|t| t.0.strftime("%a, %d %b %Y %H:%M:%S %z").to_string())
            .unwrap_or_default()
    );
    println!("Labels:       {}", kv(&m.labels));
    println!("Annotations:  {}", kv(&m.annotations));
    let (_, status, _) = summary(&pod, h.state.as_ref().is_some_and(|s| s.terminating));
    println!("Status:       {status}");
    if let Some(r) = &st.reason {
        println!("Reason:       {r}");
    }
    if let Some(msg) = &st.message {
        println!("Message:      {msg}");
    }
    println!("IP:           {}", st.pod_ip.clone().unwrap_or_default());
    let print_containers =
        |title: &str, containers: &[peapod_types::api::Container], statuses: &[ContainerStatus]| {
            if containers.is_empty() {
                return;
            }
            println!("{title}:");
            for c in containers {
                let s = statuses
                    .iter()
                    .find(|s| s.name == c.name)
                    .cloned()
                    .unwrap_or_default();
                println!("  {}:", c.name);
                println!(
                    "    Container ID:  {}",
                    s.container_id.clone().unwrap_or_default()
                );
                println!("    Image:         {}", c.image.clone().unwrap_or_default());
                println!("    Image ID:      {}", s.image_id);
                if let Some(cmd) = &c.command {
                    println!(
                        "    Command:\n{}",
                        cmd.iter()
                            .map(|a| format!("      {a}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    );
                }
                if let Some(a) = &c.args {
                    println!(
                        "    Args:\n{}",
                        a.iter()
                            .map(|a| format!("      {a}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    );
                }
                println!(
                    "    State:          {}",
                    s.state
                        .as_ref()
                        .map_or("<none>".into(), |x| state_text(x, "    "))
                );
                if let Some(l) = s.last_state.as_ref().filter(|l| l.terminated.is_some()) {
                    println!("    Last State:     {}", state_text(l, "    "));
                }
                println!(
                    "    Ready:          {}",
                    if s.ready { "True" } else { "False" }
                );
                println!("    Restart Count:  {}", s.restart_count);
                match &c.env {
                    Some(env) if !env.is_empty() => {
                        println!("    Environment:");
                        for e in env {
                            let v = match &e.value_from {
                                Some(vf) => match &vf.field_ref {
                                    Some(f) => format!(
                                        " ({}:{})",
                                        f.api_version.clone().unwrap_or_default(),
                                        f.field_path
                                    ),
                                    None => "<set from a reference>".into(),
                                },
                                None => e.value.clone().unwrap_or_default(),
                            };
                            println!("      {}:  {v}", e.name);
                        }
                    }
                    _ => println!("    Environment:    <none>"),
                }
                match &c.volume_mounts {
                    Some(ms) if !ms.is_empty() => {
                        println!("    Mounts:");
                        for vm in ms {
                            let ro = if vm.read_only == Some(true) {
                                "ro"
                            } else {
                                "rw"
                            };
                            let sub = vm
                                .sub_path
                                .as_ref()
                                .map(|s| format!(",path=\"{s}\""))
                                .unwrap_or_default();
                            println!("      {} from {} ({ro}{sub})", vm.mount_path, vm.name);
                        }
                    }
                    _ => println!("    Mounts:         <none>"),
                }
            }
        };
    print_containers(
        "Init Containers",
        spec.init_containers.as_deref().unwrap_or_default(),
        st.init_container_statuses.as_deref().unwrap_or_default(),
    );
    print_containers(
        "Containers",
        &spec.containers,
        st.container_statuses.as_deref().unwrap_or_default(),
    );
    println!("Conditions:");
    let mut rows = vec![vec!["  Type".to_string(), "Status".to_string()]];
    for c in st.conditions.iter().flatten() {
        rows.push(vec![format!("  {}", c.type_), c.status.clone()]);
    }
    print_table(&rows);
    println!("Volumes:");
    for v in spec.volumes.iter().flatten() {
        println!("  {}:", v.name);
        if let Some(ed) = &v.empty_dir {
            println!(
                "    Type:       EmptyDir (a temporary directory that shares a pod's lifetime)"
            );
            println!("    Medium:     {}", ed.medium.clone().unwrap_or_default());
            println!(
                "    SizeLimit:  {}",
                ed.size_limit
                    .as_ref()
                    .map_or("<unset>".into(), |q| q.0.clone())
            );
        }
        if let Some(hp) = &v.host_path {
            println!("    Type:          HostPath (bare host directory volume)");
            println!("    Path:          {}", hp.path);
            println!(
                "    HostPathType:  {}",
                hp.type_.clone().unwrap_or_default()
            );
        }
    }
    println!("QoS Class:    {}", st.qos_class.clone().unwrap_or_default());
    namespaces(&h);
    println!("Events:");
    let events = h
        .state
        .as_ref()
        .map(|s| s.events.clone())
        .unwrap_or_default();
    if events.is_empty() {
        println!("  <none>");
    } else {
        let mut rows = vec![
            ["  Type", "Reason", "Age", "From", "Message"]
                .map(String::from)
                .to_vec(),
        ];
        let mut dashes = vec!["  ----".to_string()];
        dashes.extend(["------", "---", "----", "-------"].map(String::from));
        rows.push(dashes);
        for e in events {
            let first = e
                .first_timestamp
                .parse::<jiff::Timestamp>()
                .ok()
                .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
            let last = e
                .last_timestamp
                .parse::<jiff::Timestamp>()
                .ok()
                .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
            let when = if e.count > 1 {
                format!(
                    "{} (x{} over {})",
                    age(last.as_ref()),
                    e.count,
                    age(first.as_ref())
                )
            } else {
                age(first.as_ref())
            };
            rows.push(vec![
                format!("  {}", e.type_),
                e.reason,
                when,
                e.source,
                e.message,
            ]);
        }
        print_table(&rows);
    }
    Ok(0)
}

/// The namespace view: which namespaces the infra process and each container use.
fn namespaces(h: &PodHandle) {
    use peapod_oci::NsKind;
    let Some(state) = &h.state else { return };
    let mut procs: Vec<(String, i32)> = Vec::new();
    if state.infra_pid > 0 {
        procs.push(("(infra)".into(), state.infra_pid));
    }
    for c in &state.containers {
        if c.pid > 0 {
            procs.push((c.name.clone(), c.pid));
        }
    }
    println!("Namespaces:");
    if procs.is_empty() || !h.shim_alive {
        println!("  <no running processes>");
        return;
    }
    let mut header = vec!["  PROCESS".to_string(), "PID".to_string()];
    header.extend(NsKind::ALL.iter().map(|k| k.proc_name().to_uppercase()));
    let mut rows = vec![header];
    for (name, pid) in procs {
        let mut row = vec![format!("  {name}"), pid.to_string()];
        for k in NsKind::ALL {
            row.push(peapod_oci::ns::inode(pid, k).map_or("-".into(), |i| i.to_string()));
        }
        rows.push(row);
    }
    print_table(&rows);
}
