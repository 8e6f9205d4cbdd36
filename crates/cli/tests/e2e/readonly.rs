//! Read-only commands (`get`, `describe`, `logs`, `image ls`, `image inspect`) change
//! nothing on the host: no state directory is made, no file appears or goes, no CNI plugin
//! runs.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::*;

fn tree(root: &Path, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let p = e.path();
        out.insert(p.display().to_string());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            tree(&p, out);
        }
    }
}

fn read_commands(pod: &str) -> Vec<Vec<String>> {
    [
        vec!["get", "pods"],
        vec!["get", "pods", "-A", "-o", "json"],
        vec!["get", "events", "-o", "wide"],
        vec!["describe", "pod", pod],
        vec!["logs", pod],
        vec!["image", "ls"],
        vec!["image", "inspect", IMAGE],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(str::to_string).collect())
    .collect()
}

#[test]
fn on_a_fresh_machine_read_commands_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "root = \"{0}/lib\"\nrun_root = \"{0}/run\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    for args in read_commands("nothing") {
        let _ = Command::new(env!("CARGO_BIN_EXE_peapod"))
            .arg("--config")
            .arg(&config)
            .args(&args)
            .output()
            .unwrap();
    }
    assert!(
        !dir.path().join("lib").exists(),
        "the state root was created"
    );
    assert!(!dir.path().join("run").exists(), "the run root was created");
}

#[test]
fn beside_a_running_pod_read_commands_change_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let calls = scratch.path().join("cni-calls");
    let wrappers = scratch.path().join("wrappers");
    std::fs::create_dir_all(&wrappers).unwrap();
    for plugin in ["bridge", "portmap", "host-local"] {
        use std::os::unix::fs::PermissionsExt;
        let p = wrappers.join(plugin);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho \"$CNI_COMMAND\" >> {}\nexec /usr/lib/cni/{plugin} \"$@\"\n",
                calls.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let env = Env::with_network(
        0.2,
        1.0,
        "",
        &format!(
            "plugin_dirs = [\"{}\", \"/usr/lib/cni\"]",
            wrappers.display()
        ),
    );
    let name = format!("ro-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!("  containers:\n  - {{name: c, image: {IMAGE}, command: [sleep, '3600']}}\n"),
    ));
    env.wait_phase(&name, "Running");
    std::thread::sleep(Duration::from_millis(300));
    let before_calls = std::fs::read_to_string(&calls).unwrap();
    let mut before = BTreeSet::new();
    tree(&env.path().join("lib"), &mut before);
    tree(&env.path().join("run"), &mut before);
    for args in read_commands(&name) {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        env.run(&refs);
    }
    let mut after = BTreeSet::new();
    tree(&env.path().join("lib"), &mut after);
    tree(&env.path().join("run"), &mut after);
    let made: Vec<&String> = after.difference(&before).collect();
    let gone: Vec<&String> = before.difference(&after).collect();
    assert!(
        made.is_empty() && gone.is_empty(),
        "made {made:?}, removed {gone:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        before_calls,
        "a read-only command ran a CNI plugin"
    );
    env.ok(&["delete", "pod", &name, "--force"]);
}
