//! `peapod describe pod`: status, containers, conditions, namespaces and events.

use anyhow::{Result, bail};
use peapod_shim::PodHandle;
use peapod_types::api::{ContainerState, ContainerStatus};
use peapod_types::config::Config;

use crate::util::{age, print_table};

/// The namespaces shown, as `/proc/PID/ns/` names them.
const NAMESPACES: [&str; 6] = ["net", "ipc", "uts", "pid", "mnt", "cgroup"];

/// The inode of `pid`'s namespace `kind`: equal inodes mean a shared namespace.
fn ns_inode(pid: i32, kind: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|m| m.ino())
}

/// Arguments of `describe`.
#[derive(clap::Args)]
pub struct DescribeArgs {
    /// `pod` (`pods`, `po`), `configmap`, `secret`, `pvc`, `deployment`, `replicaset`,
    /// `daemonset` or `job`; or `TYPE/NAME`.
    resource: String,
    /// The name.
    name: Option<String>,
    /// Namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
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
    let (kind, name) = match (args.resource.split_once('/'), &args.name) {
        (Some((k, n)), None) => (k, n),
        (None, Some(n)) => (args.resource.as_str(), n.as_str()),
        (Some(_), Some(_)) => bail!("there is already a name in {:?}", args.resource),
        (None, None) => bail!("give a name: describe TYPE NAME or TYPE/NAME"),
    };
    if let Some(plural) = crate::describe_objects::kind_of(kind)? {
        return crate::describe_objects::describe(cfg, plural, &args.namespace, name);
    }
    let h = crate::util::find_pod(cfg, &args.namespace, name)?;
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
    // The phase, as kubectl describe prints it (the reason has a line of its own).
    let phase = st.phase.clone().unwrap_or_else(|| "Pending".into());
    let terminating = h.state.as_ref().is_some_and(|s| s.terminating);
    if terminating && phase != "Succeeded" && phase != "Failed" {
        println!("Status:       Terminating");
    } else {
        println!("Status:       {phase}");
    }
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
    header.extend(NAMESPACES.iter().map(|k| k.to_uppercase()));
    let mut rows = vec![header];
    for (name, pid) in procs {
        let mut row = vec![format!("  {name}"), pid.to_string()];
        for k in NAMESPACES {
            row.push(ns_inode(pid, k).map_or("-".into(), |i| i.to_string()));
        }
        rows.push(row);
    }
    print_table(&rows);
}
