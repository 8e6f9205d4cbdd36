//! `peapod wait`, as `kubectl wait`: for a condition, for a deletion, or for a JSONPath
//! value, on pods or workloads named or selected, with a timeout.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use peapod_types::config::Config;

/// Arguments of `wait`.
#[derive(clap::Args)]
pub struct Args {
    /// `pod/NAME`, `deployment/NAME`, `job/NAME`, ... or `TYPE NAME...` (or all of a type,
    /// with -l or --all).
    targets: Vec<String>,
    /// `condition=Ready` (any condition type, `=false` for the opposite), `delete`, or
    /// `jsonpath={.status.phase}=Running`.
    #[arg(long = "for")]
    for_: String,
    /// How long to wait: `30s`, `5m`, `1h`.
    #[arg(long, default_value = "30s")]
    timeout: String,
    /// Namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Label selector.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Every pod of the namespace.
    #[arg(long)]
    all: bool,
}

enum Want {
    Condition(String, String),
    Delete,
    JsonPath(String, String),
}

/// A duration as kubectl takes it: a number with `ms`, `s`, `m` or `h`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration> {
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid duration {s:?}: give e.g. 30s, 5m or 1h"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid duration {s:?}: give e.g. 30s, 5m or 1h"),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn want(s: &str) -> Result<Want> {
    if s == "delete" {
        return Ok(Want::Delete);
    }
    if let Some(c) = s.strip_prefix("condition=") {
        let (t, v) = c.split_once('=').unwrap_or((c, "true"));
        return Ok(Want::Condition(t.to_lowercase(), v.to_lowercase()));
    }
    if let Some(j) = s.strip_prefix("jsonpath=") {
        let Some(close) = j.rfind('}') else {
            bail!("--for=jsonpath needs {{...}}=VALUE");
        };
        let value = j[close + 1..].strip_prefix('=').unwrap_or("").to_string();
        let expr = j[..close].trim_start_matches('{').to_string();
        if value.is_empty() {
            bail!("--for=jsonpath needs a value: jsonpath={{{expr}}}=VALUE");
        }
        return Ok(Want::JsonPath(expr, value));
    }
    bail!("unrecognized condition: {s:?} (give condition=TYPE, delete or jsonpath={{...}}=VALUE)")
}

/// The plural of a kind `wait` takes: pods and the workload kinds.
fn kind_of(word: &str) -> Result<&'static str> {
    match word {
        "pod" | "pods" | "po" => Ok("pods"),
        w => crate::workloads::kind_of(w).ok_or_else(|| {
            anyhow::anyhow!(
                "unsupported resource type {w:?}: peapod waits for pods, deployments, replicasets, daemonsets and jobs"
            )
        }),
    }
}

/// kubectl's name of a kind in `KIND/NAME condition met`.
fn printed(kind: &str) -> &'static str {
    if kind == "pods" {
        "pod"
    } else {
        crate::workloads::resource(kind)
    }
}

/// The object as JSON, if it exists.
fn fetch(cfg: &Config, kind: &str, ns: &str, name: &str) -> Option<serde_json::Value> {
    if kind == "pods" {
        peapod_shim::list_pods(cfg)
            .into_iter()
            .find(|p| p.namespace() == ns && p.name() == name)
            .and_then(|p| serde_json::to_value(p.current()).ok())
    } else {
        peapod_shim::objects::ObjectStore::new(cfg)
            .get_workload(kind, ns, name)
            .map(|w| w.to_value())
    }
}

/// The names of the objects of `kind` in `ns` whose labels `sel` selects.
fn selected(
    cfg: &Config,
    kind: &str,
    ns: &str,
    sel: &peapod_types::selector::Selector,
) -> Vec<String> {
    if kind == "pods" {
        peapod_shim::list_pods(cfg)
            .into_iter()
            .filter(|p| p.namespace() == ns && sel.matches(p.current().metadata.labels.as_ref()))
            .map(|p| p.name().to_string())
            .collect()
    } else {
        peapod_shim::objects::ObjectStore::new(cfg)
            .workloads(kind)
            .into_iter()
            .filter(|w| w.name().0 == ns && sel.matches(w.metadata().labels.as_ref()))
            .map(|w| w.name().1)
            .collect()
    }
}

/// Whether `value` (an object as JSON) satisfies `want`.
fn met(want: &Want, value: &serde_json::Value) -> Result<bool> {
    Ok(match want {
        Want::Delete => false,
        Want::Condition(t, v) => value["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| {
                c["type"].as_str().unwrap_or_default().to_lowercase() == *t
                    && c["status"].as_str().unwrap_or_default().to_lowercase() == *v
            }),
        Want::JsonPath(expr, v) => {
            crate::jsonpath::lookup(value, expr)?.is_some_and(|x| crate::jsonpath::text(x) == *v)
        }
    })
}

pub fn run(cfg: &Config, args: &Args) -> Result<i32> {
    let want = want(&args.for_)?;
    let timeout = parse_duration(&args.timeout)?;
    // (kind, name)
    let mut targets: Vec<(&'static str, String)> = Vec::new();
    let mut it = args.targets.iter().peekable();
    let mut kind = "pods";
    if let Some(first) = it.peek().filter(|t| !t.contains('/')) {
        if let Ok(k) = kind_of(first) {
            kind = k;
            it.next();
        }
    }
    for t in it {
        match t.split_once('/') {
            Some((k, n)) => targets.push((kind_of(k)?, n.to_string())),
            None => targets.push((kind, t.clone())),
        }
    }
    if args.all || args.selector.is_some() {
        let sel = match &args.selector {
            Some(s) => peapod_types::selector::parse(s).map_err(anyhow::Error::msg)?,
            None => Default::default(),
        };
        let found = selected(cfg, kind, &args.namespace, &sel);
        if found.is_empty() {
            bail!("no matching resources found");
        }
        targets.extend(found.into_iter().map(|n| (kind, n)));
    }
    if targets.is_empty() {
        bail!("give what to wait for: pod/NAME, deployment/NAME, job/NAME, -l SELECTOR or --all");
    }
    let deadline = Instant::now() + timeout;
    let mut code = 0;
    for (kind, name) in targets {
        loop {
            let done = match (&want, fetch(cfg, kind, &args.namespace, &name)) {
                (Want::Delete, None) => true,
                (_, None) => {
                    eprintln!("Error from server (NotFound): {kind} {name:?} not found");
                    code = 1;
                    break;
                }
                (w, Some(v)) => met(w, &v)?,
            };
            if done {
                println!("{}/{name} condition met", printed(kind));
                break;
            }
            if Instant::now() >= deadline {
                eprintln!("error: timed out waiting for the condition on {kind}/{name}");
                code = 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_conditions() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("30").is_err());
        assert!(
            matches!(want("condition=Ready").unwrap(), Want::Condition(t, v) if t == "ready" && v == "true")
        );
        assert!(
            matches!(want("jsonpath={.status.phase}=Running").unwrap(), Want::JsonPath(e, v) if e == ".status.phase" && v == "Running")
        );
        assert!(want("jsonpath={.status.phase}").is_err());
        assert!(want("ready").is_err());
    }
}
