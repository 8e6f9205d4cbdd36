//! `peapod get pods` (tables, `-o wide|yaml|json|name`, `-w`); `get events` is in
//! `events.rs` and `describe` in `describe.rs`.

use anyhow::{Result, bail};
use peapod_shim::PodHandle;
use peapod_types::api::{ContainerState, ContainerStatus, Pod};
use peapod_types::config::Config;

use crate::util::{age, column_widths, format_row, print_table};

/// Arguments of `get`.
#[derive(clap::Args, Clone)]
pub struct GetArgs {
    /// `pods` (`pod`, `po`), `events` (`ev`), `configmaps` (`cm`), `secrets`, `pvc`,
    /// `deployments` (`deploy`), `replicasets` (`rs`), `daemonsets` (`ds`) or `jobs`; or
    /// `TYPE/NAME`.
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
    /// Label selector: `k=v`, `k!=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`, comma-joined.
    #[arg(short = 'l', long)]
    pub(crate) selector: Option<String>,
    /// Field selector: `metadata.name`, `metadata.namespace`, `status.phase` or
    /// `spec.nodeName`, with `=`, `==` or `!=`, comma-joined.
    #[arg(long)]
    pub(crate) field_selector: Option<String>,
    /// A LABELS column.
    #[arg(long)]
    pub(crate) show_labels: bool,
    /// No header line.
    #[arg(long)]
    pub(crate) no_headers: bool,
    /// Sort by the value of a JSONPath expression (`.metadata.name`, `{.status.phase}`).
    #[arg(long, value_name = "JSONPATH")]
    pub(crate) sort_by: Option<String>,
}

/// Sorts `items` as kubectl's `--sort-by` does: by the value `expr` names in each (as
/// `value` gives it), numbers numerically, strings (timestamps too) lexically, a missing
/// value first.
pub(crate) fn sort_by<T>(
    items: &mut Vec<T>,
    value: impl Fn(&T) -> serde_json::Value,
    expr: &str,
) -> Result<()> {
    let expr = expr.trim();
    let expr = expr
        .strip_prefix('{')
        .and_then(|e| e.strip_suffix('}'))
        .unwrap_or(expr);
    crate::jsonpath::lookup(&serde_json::Value::Null, expr)?;
    let mut keyed: Vec<(Option<serde_json::Value>, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let v = value(it);
            (crate::jsonpath::lookup(&v, expr).ok().flatten().cloned(), i)
        })
        .collect();
    keyed.sort_by(|(a, _), (b, _)| {
        use serde_json::Value as V;
        match (a, b) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, _) => std::cmp::Ordering::Less,
            (_, None) => std::cmp::Ordering::Greater,
            (Some(V::Number(x)), Some(V::Number(y))) => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(std::cmp::Ordering::Equal),
            (Some(x), Some(y)) => crate::jsonpath::text(x).cmp(&crate::jsonpath::text(y)),
        }
    });
    let mut slots: Vec<Option<T>> = std::mem::take(items).into_iter().map(Some).collect();
    *items = keyed
        .into_iter()
        .map(|(_, i)| slots[i].take().expect("each index once"))
        .collect();
    Ok(())
}

/// kubectl's `-o custom-columns=HEADER:EXPR,...` table over `values` (several results of
/// one expression joined by commas, `<none>` for none).
pub(crate) fn custom_columns(
    spec: &str,
    values: &[serde_json::Value],
    no_headers: bool,
) -> Result<Vec<Vec<String>>> {
    let mut cols = Vec::new();
    for c in spec.split(',') {
        let Some((head, expr)) = c.split_once(':') else {
            bail!(
                "custom-columns format specified but found no column named in {c:?}: give HEADER:JSONPATH"
            );
        };
        let expr = expr.trim();
        let expr = expr
            .strip_prefix('{')
            .and_then(|e| e.strip_suffix('}'))
            .unwrap_or(expr);
        crate::jsonpath::lookup(&serde_json::Value::Null, expr)?;
        cols.push((head.to_string(), expr.to_string()));
    }
    let mut rows = Vec::new();
    if !no_headers {
        rows.push(cols.iter().map(|(h, _)| h.clone()).collect());
    }
    for v in values {
        let mut row = Vec::new();
        for (_, expr) in &cols {
            let found: Vec<String> = crate::jsonpath::lookup_all(v, expr)?
                .into_iter()
                .map(crate::jsonpath::text)
                .collect();
            row.push(if found.is_empty() {
                "<none>".into()
            } else {
                found.join(",")
            });
        }
        rows.push(row);
    }
    Ok(rows)
}

/// A field selector's requirements: (field, wanted value, equal or not).
pub(crate) fn field_selector(s: &str) -> Result<Vec<(String, String, bool)>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (field, value, eq) = if let Some((f, v)) = part.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            (f, v, true)
        } else {
            bail!("invalid field selector {part:?}: give field=value or field!=value");
        };
        let field = field.trim();
        if ![
            "metadata.name",
            "metadata.namespace",
            "status.phase",
            "spec.nodeName",
        ]
        .contains(&field)
        {
            bail!(
                "field label not supported: {field} (peapod takes metadata.name, metadata.namespace, status.phase and spec.nodeName)"
            );
        }
        out.push((field.to_string(), value.trim().to_string(), eq));
    }
    Ok(out)
}

/// Whether `pod` passes the label and field selectors of `args`.
fn selected_by(args: &GetArgs, cfg: &Config, pod: &Pod) -> Result<bool> {
    if let Some(sel) = &args.selector {
        let sel = peapod_types::selector::parse(sel).map_err(anyhow::Error::msg)?;
        if !sel.matches(pod.metadata.labels.as_ref()) {
            return Ok(false);
        }
    }
    if let Some(fs) = &args.field_selector {
        for (field, want, eq) in field_selector(fs)? {
            let have = match field.as_str() {
                "metadata.name" => pod.metadata.name.clone().unwrap_or_default(),
                "metadata.namespace" => pod.metadata.namespace.clone().unwrap_or_default(),
                "status.phase" => pod
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default(),
                _ => pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_else(|| peapod_shim::node_name(cfg)),
            };
            if (have == want) != eq {
                return Ok(false);
            }
        }
    }
    Ok(true)
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
    // TYPE,TYPE: each in turn, as kubectl lists them.
    if args.resource.contains(',') && !args.resource.contains('/') {
        let mut code = 0;
        for (i, t) in args.resource.split(',').enumerate() {
            if i > 0 && args.output.is_none() {
                println!();
            }
            let mut one = args.clone();
            one.resource = t.to_string();
            code = code.max(get(cfg, &one)?);
        }
        return Ok(code);
    }
    // TYPE/NAME is TYPE NAME.
    let mut args = args.clone();
    if let Some((t, n)) = args.resource.clone().split_once('/') {
        if args.name.is_some() {
            bail!("there is already a name in {:?}", args.resource);
        }
        args.resource = t.to_string();
        args.name = Some(n.to_string());
    }
    let args = &args;
    match args.resource.as_str() {
        "pods" | "pod" | "po" => {}
        "events" | "event" | "ev" => return crate::events::get_events(cfg, args),
        other => {
            if let Some(kind) = crate::objects::kind_of(other) {
                return crate::objects::get(cfg, args, kind);
            }
            if let Some(kind) = crate::workloads::kind_of(other) {
                return crate::workloads::get(cfg, args, kind);
            }
            bail!(
                "unsupported resource type {other:?}: peapod knows pods, events, configmaps, secrets, persistentvolumeclaims, deployments, replicasets, daemonsets and jobs"
            )
        }
    }
    let mut pods = Vec::new();
    for h in selected(cfg, args)? {
        if selected_by(args, cfg, &h.current())? {
            pods.push(h);
        }
    }
    let mut objects: Vec<Pod> = pods.iter().map(PodHandle::current).collect();
    if let Some(expr) = &args.sort_by {
        let mut both: Vec<(PodHandle, Pod)> = pods.into_iter().zip(objects).collect();
        sort_by(
            &mut both,
            |(_, p)| serde_json::to_value(p).unwrap_or_default(),
            expr,
        )?;
        (pods, objects) = both.into_iter().unzip();
    }
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
        Some(o) if o.starts_with("jsonpath=") => {
            let template = &o["jsonpath=".len()..];
            // One pod: the template applies to it; several: to the List, as kubectl.
            let value = if args.name.is_some() && objects.len() == 1 {
                serde_json::to_value(&objects[0])?
            } else {
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects})
            };
            print!("{}", crate::jsonpath::render(template, &value)?);
        }
        Some(o) if o.starts_with("custom-columns=") => {
            let values: Vec<serde_json::Value> = objects
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?;
            print_table(&custom_columns(
                &o["custom-columns=".len()..],
                &values,
                args.no_headers,
            )?);
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
            if args.no_headers {
                let widths = column_widths(&rows);
                for r in &rows[1..] {
                    println!("{}", crate::util::format_row(r, &widths));
                }
            } else {
                print_table(&rows);
            }
            if args.watch {
                watch_pods(cfg, args, column_widths(&rows), &pods);
            }
            return Ok(0);
        }
        Some(other) => bail!(
            "unsupported output format {other:?}: use wide, yaml, json, name, jsonpath=TEMPLATE or custom-columns=SPEC"
        ),
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
    if args.show_labels {
        header.push("LABELS".into());
    }
    header
}

/// kubectl's LABELS column: `k=v` pairs joined by commas, or `<none>`.
pub(crate) fn labels_column(labels: Option<&std::collections::BTreeMap<String, String>>) -> String {
    let pairs: Vec<String> = labels
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if pairs.is_empty() {
        "<none>".into()
    } else {
        pairs.join(",")
    }
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
    if args.show_labels {
        row.push(labels_column(pod.metadata.labels.as_ref()));
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

/// READY, STATUS and RESTARTS as kubectl's pod printer (`printPod`) computes them.
pub fn summary(pod: &Pod, terminating: bool) -> (String, String, String) {
    let st = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let phase = st.phase.clone().unwrap_or_else(|| "Pending".into());
    let mut reason = st.reason.clone().unwrap_or_else(|| phase.clone());
    let sidecar = |name: &str| {
        spec.init_containers
            .iter()
            .flatten()
            .any(|s| s.name == name && s.restart_policy.as_deref() == Some("Always"))
    };
    let n_init = spec.init_containers.as_ref().map_or(0, Vec::len);
    let total = spec.containers.len()
        + spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| sidecar(&c.name))
            .count();
    let (mut ready, mut restarts, mut sidecar_restarts) = (0, 0, 0);
    let (mut last, mut sidecar_last): (Option<jiff::Timestamp>, Option<jiff::Timestamp>) =
        (None, None);
    let finished = |c: &ContainerStatus| {
        c.last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .and_then(|t| t.finished_at.as_ref())
            .map(|t| t.0)
    };
    let later = |a: Option<jiff::Timestamp>, b: Option<jiff::Timestamp>| match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let inits = st.init_container_statuses.clone().unwrap_or_default();
    let mut initializing = false;
    for (i, c) in inits.iter().enumerate() {
        restarts += c.restart_count;
        last = later(last, finished(c));
        let is_sidecar = sidecar(&c.name);
        if is_sidecar {
            sidecar_restarts += c.restart_count;
            sidecar_last = later(sidecar_last, finished(c));
        }
        let state = c.state.clone().unwrap_or_default();
        if state.terminated.as_ref().is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if is_sidecar && c.started == Some(true) {
            if c.ready {
                ready += 1;
            }
            continue;
        }
        reason = match (&state.terminated, &state.waiting) {
            (Some(t), _) => match t.reason.as_deref() {
                Some(r) if !r.is_empty() => format!("Init:{r}"),
                _ if t.signal.unwrap_or(0) != 0 => {
                    format!("Init:Signal:{}", t.signal.unwrap_or(0))
                }
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
        initializing = true;
        break;
    }
    let condition = |t: &str| {
        st.conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == t && c.status == "True")
    };
    if !initializing || condition("Initialized") {
        restarts = sidecar_restarts;
        last = sidecar_last;
        let mut has_running = false;
        for c in st.container_statuses.iter().flatten().rev() {
            restarts += c.restart_count;
            last = later(last, finished(c));
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
            reason = if condition("Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .into();
        }
    }
    let terminal = phase == "Succeeded" || phase == "Failed";
    if phase == "Unknown" {
        reason = "Unknown".into();
    } else if terminating && !terminal {
        reason = "Terminating".into();
    }
    let restarts = match last {
        Some(t) if restarts > 0 => {
            let d = std::time::Duration::try_from(jiff::Timestamp::now().duration_since(t))
                .unwrap_or_default();
            format!("{restarts} ({} ago)", crate::util::human_duration(d))
        }
        _ => restarts.to_string(),
    };
    (format!("{ready}/{total}"), reason, restarts)
}

#[cfg(test)]
mod tests {
    use super::summary;
    use peapod_types::api::Pod;

    fn pod(spec: &str, status: &str) -> Pod {
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {spec}\nstatus: {status}\n"
        );
        let v = peapod_types::yaml::documents(&text).unwrap().remove(0);
        serde_json::from_value(v).unwrap()
    }

    const SIDECAR: &str = "{initContainers: [{name: side, image: i, restartPolicy: Always}], containers: [{name: app, image: i}]}";

    #[test]
    fn started_sidecars_count_as_ready() {
        let p = pod(
            SIDECAR,
            "{phase: Running, conditions: [{type: Initialized, status: 'True'}, {type: Ready, status: 'True'}], \
             initContainerStatuses: [{name: side, image: i, imageID: '', ready: true, started: true, restartCount: 0, state: {running: {}}}], \
             containerStatuses: [{name: app, image: i, imageID: '', ready: true, restartCount: 0, state: {running: {}}}]}",
        );
        assert_eq!(
            summary(&p, false),
            ("2/2".into(), "Running".into(), "0".into())
        );
    }

    #[test]
    fn a_succeeded_pod_whose_sidecar_was_stopped_is_completed() {
        let p = pod(
            SIDECAR,
            "{phase: Succeeded, conditions: [{type: Initialized, status: 'True'}, {type: Ready, status: 'False'}], \
             initContainerStatuses: [{name: side, image: i, imageID: '', ready: false, started: false, restartCount: 0, state: {terminated: {exitCode: 143, reason: Error}}}], \
             containerStatuses: [{name: app, image: i, imageID: '', ready: false, restartCount: 0, state: {terminated: {exitCode: 0, reason: Completed}}}]}",
        );
        assert_eq!(
            summary(&p, false),
            ("0/2".into(), "Completed".into(), "0".into())
        );
        // Deleting a pod that has finished does not make it Terminating.
        assert_eq!(summary(&p, true).1, "Completed");
    }

    #[test]
    fn a_running_pod_with_a_finished_container_is_not_ready() {
        let p = pod(
            "{containers: [{name: a, image: i}, {name: b, image: i}]}",
            "{phase: Running, conditions: [{type: Ready, status: 'False'}], \
             containerStatuses: [{name: a, image: i, imageID: '', ready: true, restartCount: 0, state: {running: {}}}, \
             {name: b, image: i, imageID: '', ready: false, restartCount: 0, state: {terminated: {exitCode: 0, reason: Completed}}}]}",
        );
        assert_eq!(
            summary(&p, false),
            ("1/2".into(), "NotReady".into(), "0".into())
        );
        assert_eq!(summary(&p, true).1, "Terminating");
    }

    #[test]
    fn init_failures_and_rejections() {
        let p = pod(
            "{initContainers: [{name: i, image: i}], containers: [{name: a, image: i}]}",
            "{phase: Pending, initContainerStatuses: [{name: i, image: i, imageID: '', ready: false, restartCount: 2, state: {waiting: {reason: CrashLoopBackOff}}}], \
             containerStatuses: [{name: a, image: i, imageID: '', ready: false, restartCount: 0, state: {waiting: {reason: PodInitializing}}}]}",
        );
        assert_eq!(
            summary(&p, false),
            ("0/1".into(), "Init:CrashLoopBackOff".into(), "2".into())
        );
        let p = pod(
            "{containers: [{name: a, image: i}]}",
            "{phase: Failed, reason: NodeAffinity, message: 'Pod was rejected: x'}",
        );
        assert_eq!(
            summary(&p, false),
            ("0/1".into(), "NodeAffinity".into(), "0".into())
        );
    }
}
