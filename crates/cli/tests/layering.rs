//! The crates' dependency edges, read from `cargo metadata`, are the ones ARCHITECTURE.md
//! states: the CLI reaches the runtime only through the shim, the pod controller only
//! through the runtime's CRI traits, and the leaves depend on nothing of ours but `types`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Each crate's normal (non-dev) dependencies among peapod's own crates.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(manifest)
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut edges = BTreeMap::new();
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap().to_string();
        let deps: BTreeSet<String> = p["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"] != "dev")
            .filter_map(|d| d["name"].as_str())
            .filter(|n| n.starts_with("peapod-"))
            .map(str::to_string)
            .collect();
        edges.insert(name, deps);
    }
    edges
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| format!("peapod-{n}")).collect()
}

#[test]
fn dependency_edges_are_the_stated_ones() {
    let e = edges();
    let want: BTreeMap<String, BTreeSet<String>> = [
        (
            "cli",
            set(&["controllers", "shim", "cri", "image", "types"]),
        ),
        ("controllers", set(&["shim", "types"])),
        ("cri", set(&["runtime", "types"])),
        ("shim", set(&["kubelet", "runtime", "types"])),
        ("kubelet", set(&["runtime", "types"])),
        ("runtime", set(&["oci", "image", "cni", "types"])),
        ("image", set(&["types"])),
        ("oci", set(&[])),
        ("cni", set(&[])),
        ("types", set(&[])),
        ("pause", set(&[])),
        ("testkit", set(&[])),
    ]
    .into_iter()
    .map(|(k, v)| (format!("peapod-{k}"), v))
    .collect();
    assert_eq!(
        e, want,
        "the crate graph changed: update ARCHITECTURE.md and this test together"
    );
}

#[test]
fn the_infra_binary_depends_on_nothing_at_all() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../pause/Cargo.toml");
    let text = std::fs::read_to_string(manifest).unwrap();
    let deps = text
        .split("[dependencies]")
        .nth(1)
        .map(|rest| rest.split("\n[").next().unwrap_or("").trim().to_string())
        .unwrap_or_default();
    assert!(deps.is_empty(), "peapod-pause has dependencies: {deps}");
}
