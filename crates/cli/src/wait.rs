//! `peapod wait`, as `kubectl wait`: for a condition, for a deletion, or for a JSONPath
//! value, on pods named or selected, with a timeout.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use peapod_types::config::Config;

/// Arguments of `wait`.
#[derive(clap::Args)]
pub struct Args {
    /// Pods: `pod/NAME`, or `pod NAME...` (or all of them, with -l or --all).
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

pub fn run(cfg: &Config, args: &Args) -> Result<i32> {
    let want = want(&args.for_)?;
    let timeout = parse_duration(&args.timeout)?;
    let mut names: Vec<String> = Vec::new();
    let mut it = args.targets.iter().peekable();
    if it
        .peek()
        .is_some_and(|t| matches!(t.as_str(), "pod" | "pods" | "po"))
    {
        it.next();
    }
    for t in it {
        let name = match t.split_once('/') {
            Some(("pod" | "pods" | "po", n)) => n,
            Some((k, _)) => bail!("unsupported resource type {k:?}: peapod waits for pods"),
            None => t.as_str(),
        };
        names.push(name.to_string());
    }
    if args.all || args.selector.is_some() {
        let sel = match &args.selector {
            Some(s) => peapod_types::selector::parse(s).map_err(anyhow::Error::msg)?,
            None => Default::default(),
        };
        for p in peapod_shim::list_pods(cfg) {
            if p.namespace() == args.namespace && sel.matches(p.current().metadata.labels.as_ref())
            {
                names.push(p.name().to_string());
            }
        }
        if names.is_empty() {
            bail!("no matching resources found");
        }
    }
    if names.is_empty() {
        bail!("give the pods to wait for: pod/NAME, -l SELECTOR or --all");
    }
    let deadline = Instant::now() + timeout;
    let mut code = 0;
    for name in names {
        loop {
            let pod = peapod_shim::list_pods(cfg)
                .into_iter()
                .find(|p| p.namespace() == args.namespace && p.name() == name);
            let met = match (&want, &pod) {
                (Want::Delete, None) => true,
                (Want::Delete, Some(_)) => false,
                (_, None) => {
                    eprintln!("Error from server (NotFound): pods {name:?} not found");
                    code = 1;
                    break;
                }
                (Want::Condition(t, v), Some(p)) => p
                    .current()
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_.to_lowercase() == *t && c.status.to_lowercase() == *v),
                (Want::JsonPath(expr, v), Some(p)) => {
                    let value = serde_json::to_value(p.current())?;
                    crate::jsonpath::lookup(&value, expr)?
                        .is_some_and(|x| crate::jsonpath::text(x) == *v)
                }
            };
            if met {
                println!("pod/{name} condition met");
                break;
            }
            if Instant::now() >= deadline {
                eprintln!("error: timed out waiting for the condition on pods/{name}");
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
