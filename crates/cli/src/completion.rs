//! Shell completion: `peapod completion bash|zsh|fish` prints the script to source; the
//! shell then asks `peapod` itself (with `COMPLETE=<shell>` set, through clap_complete's
//! engine) and gets commands, flags, and the names of what exists: resource types, pods,
//! workloads, ConfigMaps and Secrets by name, and a pod's containers for `-c`.

use std::ffi::OsStr;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::CommandFactory;
use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};
use clap_complete::env::{CompleteEnv, Shells};
use peapod_types::config::Config;

/// The types `get`, `describe`, `delete` and `wait` take, as completed.
const TYPES: &[&str] = &[
    "pods",
    "deployments",
    "replicasets",
    "daemonsets",
    "jobs",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "events",
];

/// Answers a completion request and exits, when the shell made one; returns otherwise.
pub fn complete() {
    CompleteEnv::with_factory(command).complete();
}

/// Prints the registration script for `shell`.
pub fn script(shell: &str) -> Result<i32> {
    let shells = Shells::builtins();
    let Some(s) = shells.completer(shell) else {
        bail!("unsupported shell {shell:?}: use bash, zsh, fish, elvish or powershell");
    };
    let mut out = Vec::new();
    s.write_registration("COMPLETE", "peapod", "peapod", "peapod", &mut out)?;
    std::io::Write::write_all(&mut std::io::stdout(), &out)?;
    Ok(0)
}

/// The command line, with the completers of values that name objects.
fn command() -> clap::Command {
    let with = |sc: clap::Command, arg: &'static str, f: fn(&OsStr) -> Vec<CompletionCandidate>| {
        sc.mut_arg(arg, |a| a.add(ArgValueCompleter::new(f)))
    };
    let mut cmd = crate::Cli::command();
    for (sub, arg, f) in [
        (
            "exec",
            "name",
            pods as fn(&OsStr) -> Vec<CompletionCandidate>,
        ),
        ("exec", "container", containers),
        // clap numbers exec's trailing command (`last`) first: the pod is completed there.
        ("exec", "command", pods),
        ("logs", "name", pods),
        ("logs", "container", containers),
        ("attach", "name", pods),
        ("attach", "container", containers),
        ("port-forward", "pod", pods),
        ("get", "resource", typed),
        ("get", "name", typed),
        ("describe", "resource", typed),
        ("describe", "name", typed),
        ("delete", "targets", typed),
        ("wait", "targets", typed),
    ] {
        cmd = cmd.mut_subcommand(sub, |sc| with(sc, arg, f));
    }
    cmd
}

/// The words of the command line being completed (after the `--` the shell passes).
fn words() -> Vec<String> {
    let all: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match all.iter().position(|a| a == "--") {
        Some(i) => all[i + 1..].iter().skip(1).cloned().collect(),
        None => Vec::new(),
    }
}

/// The value of flag `long` (or `short`) in `words`, as `--x V`, `--x=V`, `-x V`.
fn flag(words: &[String], long: &str, short: Option<&str>) -> Option<String> {
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if let Some(v) = w.strip_prefix(&format!("{long}=")) {
            return Some(v.to_string());
        }
        if w == long || short.is_some_and(|s| w == s) {
            return it.next().cloned();
        }
    }
    None
}

/// The configuration the command line names, as `main` would load it.
fn config(words: &[String]) -> Option<Config> {
    let file = flag(words, "--config", None)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("PEAPOD_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/etc/peapod/config.toml"));
    let mut cfg = match std::fs::read_to_string(&file) {
        Ok(text) => Config::from_toml(&text).ok()?,
        Err(_) => Config::default(),
    };
    if let Some(r) = flag(words, "--root", None) {
        cfg.root = r.into();
    }
    if let Some(r) = flag(words, "--run-root", None) {
        cfg.run_root = r.into();
    }
    Some(cfg)
}

fn namespace(words: &[String]) -> String {
    flag(words, "--namespace", Some("-n")).unwrap_or_else(|| "default".into())
}

/// Flags whose value is the next word.
const VALUED: &[&str] = &[
    "-n",
    "--namespace",
    "-c",
    "--container",
    "-o",
    "--output",
    "-l",
    "--selector",
    "-f",
    "--filename",
    "--config",
    "--root",
    "--run-root",
    "--for",
    "--timeout",
    "--field-selector",
    "--sort-by",
    "--tail",
    "--since",
    "--grace-period",
    "--address",
];

/// The positional words after the subcommand (flags and their values left out), without
/// the word being completed (the last).
fn positionals(words: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip = false;
    let done = words.len().saturating_sub(1);
    for w in &words[..done] {
        if skip {
            skip = false;
        } else if w.starts_with('-') {
            skip = VALUED.contains(&w.as_str());
        } else {
            out.push(w.clone());
        }
    }
    // The first is the subcommand.
    out.into_iter().skip(1).collect()
}

fn matching(names: impl IntoIterator<Item = String>, current: &str) -> Vec<CompletionCandidate> {
    let mut v: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with(current))
        .collect();
    v.sort();
    v.dedup();
    v.into_iter().map(CompletionCandidate::new).collect()
}

/// Names of the objects of `plural` (or pods) in `ns`.
fn names_of(cfg: &Config, plural: &str, ns: &str) -> Vec<String> {
    let store = peapod_shim::objects::ObjectStore::new(cfg);
    match plural {
        "pods" => peapod_shim::list_pods(cfg)
            .into_iter()
            .filter(|p| p.namespace() == ns)
            .map(|p| p.name().to_string())
            .collect(),
        "configmaps" | "secrets" | "persistentvolumeclaims" => store.names(plural, ns),
        "events" => Vec::new(),
        kind => store
            .workloads(kind)
            .into_iter()
            .filter(|w| w.name().0 == ns)
            .map(|w| w.name().1)
            .collect(),
    }
}

/// The plural of a type word, as the commands take them.
fn plural(word: &str) -> Option<&'static str> {
    match word {
        "pod" | "pods" | "po" => Some("pods"),
        "event" | "events" | "ev" => Some("events"),
        w => crate::objects::kind_of(w).or_else(|| crate::workloads::kind_of(w)),
    }
}

/// `TYPE/NAME` candidates for `current` (which has a `/`).
fn slash_names(cfg: &Config, ns: &str, current: &str) -> Vec<CompletionCandidate> {
    let (t, _) = current.split_once('/').unwrap_or((current, ""));
    match plural(t) {
        Some(p) => matching(
            names_of(cfg, p, ns).into_iter().map(|n| format!("{t}/{n}")),
            current,
        ),
        None => Vec::new(),
    }
}

fn pods(current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    let words = words();
    let Some(cfg) = config(&words) else {
        return Vec::new();
    };
    let ns = namespace(&words);
    // After `--` come a command's words, not a pod.
    if words[..words.len().saturating_sub(1)]
        .iter()
        .any(|w| w == "--")
    {
        return Vec::new();
    }
    if current.contains('/') {
        return slash_names(&cfg, &ns, &current);
    }
    matching(names_of(&cfg, "pods", &ns), &current)
}

fn containers(current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    let words = words();
    let Some(cfg) = config(&words) else {
        return Vec::new();
    };
    let ns = namespace(&words);
    let Some(pod) = positionals(&words).into_iter().next() else {
        return Vec::new();
    };
    let Ok(h) = crate::util::resolve_pod(&cfg, &ns, &pod) else {
        return Vec::new();
    };
    let spec = h.pod.spec();
    matching(
        spec.init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .map(|c| c.name.clone()),
        &current,
    )
}

/// A type, then names of that type; or `TYPE/NAME`.
fn typed(current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    let words = words();
    let Some(cfg) = config(&words) else {
        return Vec::new();
    };
    let ns = namespace(&words);
    if current.contains('/') {
        return slash_names(&cfg, &ns, &current);
    }
    match positionals(&words).first().and_then(|t| plural(t)) {
        Some(p) => matching(names_of(&cfg, p, &ns), &current),
        None => matching(TYPES.iter().map(|t| t.to_string()), &current),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn flags_and_positionals_of_a_partial_command_line() {
        let words = w("--config /c.toml exec -n prod -c app web -- sh");
        assert_eq!(flag(&words, "--config", None).as_deref(), Some("/c.toml"));
        assert_eq!(namespace(&words), "prod");
        assert_eq!(namespace(&w("get pods --namespace=kube x")), "kube");
        assert_eq!(positionals(&w("--config /c exec -c app web ")), ["web"]);
        assert_eq!(positionals(&w("get -o wide pods ")), ["pods"]);
        assert!(positionals(&w("get ")).is_empty());
        assert_eq!(plural("deploy"), Some("deployments"));
        assert_eq!(plural("cm"), Some("configmaps"));
        assert_eq!(plural("nope"), None);
    }
}
