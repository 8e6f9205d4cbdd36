//! Scenario 9: graceful deletion, and nothing left behind.

use std::time::{Duration, Instant};

use crate::harness::*;

#[test]
fn sigterm_trap_and_grace_period() {
    let env = Env::new();
    let name = format!("grace-{}", unique());
    let out = env.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  terminationGracePeriodSeconds: 2
  containers:
  - name: trapper
    image: {IMAGE}
    command: [sh, -c, 'trap \"echo trapped > /out/trapped; exit 0\" TERM; while true; do sleep 0.1; done']
    volumeMounts: [{{name: out, mountPath: /out}}]
  - name: ignorer
    image: {IMAGE}
    command: [sh, -c, 'trap \"\" TERM; while true; do sleep 0.1; done']
  volumes:
  - {{name: out, hostPath: {{path: {}}}}}
",
            out.display()
        ),
    ));
    env.wait_phase(&name, "Running");
    std::thread::sleep(Duration::from_millis(300));
    let state = env.state(&name);
    let pids: Vec<i64> = state["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["pid"].as_i64().unwrap())
        .collect();
    let t0 = Instant::now();
    env.ok(&["delete", "pod", &name]);
    let took = t0.elapsed();
    assert_eq!(
        std::fs::read_to_string(out.join("trapped")).unwrap(),
        "trapped\n",
        "the trap did not run"
    );
    assert!(
        took >= Duration::from_secs(2),
        "the SIGTERM-ignoring container was killed before the grace period ({took:?})"
    );
    assert!(took < Duration::from_secs(8), "deletion took {took:?}");
    for p in pids {
        assert!(!alive(p), "process {p} survived the deletion");
    }
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[test]
fn twenty_pods_leave_nothing_behind() {
    let env = Env::new();
    let tag = unique();
    let mut yaml = String::new();
    for i in 0..20 {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: many-{i}-{tag}\nspec:\n  containers:\n  - {{name: c, image: {IMAGE}, command: [sleep, '3600'], volumeMounts: [{{name: v, mountPath: /v}}]}}\n  volumes:\n  - {{name: v, emptyDir: {{medium: Memory}}}}\n"
        ));
    }
    let file = env.path().join("many.yaml");
    std::fs::write(&file, &yaml).unwrap();
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait"]);
    let mut pids = Vec::new();
    let mut uids = Vec::new();
    for i in 0..20 {
        let name = format!("many-{i}-{tag}");
        let st = env.state(&name);
        pids.push(st["infra_pid"].as_i64().unwrap());
        pids.extend(
            st["containers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["pid"].as_i64().unwrap()),
        );
        uids.push(st["pod"]["metadata"]["uid"].as_str().unwrap().to_string());
    }
    assert!(pids.iter().all(|p| *p > 0 && alive(*p)));
    env.ok(&["delete", "-f", file.to_str().unwrap(), "--force"]);
    assert!(env.pod_names().is_empty());
    for p in &pids {
        assert!(!alive(*p), "process {p} survived");
    }
    for uid in &uids {
        for qos in ["", "burstable/", "besteffort/"] {
            let dirs = peapod_oci::cgroup::dirs(&format!("/peapod/kubepods/{qos}pod{uid}"));
            assert!(dirs.is_empty(), "cgroups left: {dirs:?}");
        }
    }
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

/// A CNI plugin directory whose `bridge` logs each call to `log`, then runs the real one.
fn counting_bridge(dir: &std::path::Path, log: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let wrappers = dir.join("cni-wrappers");
    std::fs::create_dir_all(&wrappers).unwrap();
    let real = ["/usr/lib/cni/bridge", "/opt/cni/bin/bridge"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("the bridge plugin (containernetworking-plugins)");
    let script = wrappers.join("bridge");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$CNI_COMMAND $CNI_CONTAINERID\" >> {}\nexec {real} \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    wrappers
}

/// Traced deletion: one CNI DEL for the pod's sandbox, and one stop signal for each
/// container (counted by the containers themselves, which ignore it until SIGKILL).
#[test]
fn a_delete_runs_cni_del_once_and_stops_each_container_once() {
    let scratch = tempfile::tempdir().unwrap();
    let log = scratch.path().join("cni-calls");
    let wrappers = counting_bridge(scratch.path(), &log);
    let env = Env::with_network(
        0.2,
        1.0,
        "",
        &format!(
            "plugin_dirs = [\"{}\", \"/usr/lib/cni\", \"/opt/cni/bin\"]",
            wrappers.display()
        ),
    );
    let out = env.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let name = format!("traced-{}", unique());
    let container = |c: &str| {
        format!(
            "  - name: {c}
    image: {IMAGE}
    command: [sh, -c, 'trap \"echo term >> /out/{c}\" TERM; while true; do sleep 0.1; done']
    volumeMounts: [{{name: out, mountPath: /out}}]
"
        )
    };
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  terminationGracePeriodSeconds: 1
  initContainers:
{}    restartPolicy: Always
  containers:
{}{}  volumes:
  - {{name: out, hostPath: {{path: {}}}}}
",
            container("side"),
            container("a"),
            container("b"),
            out.display()
        ),
    ));
    env.wait_phase(&name, "Running");
    std::thread::sleep(Duration::from_millis(300));
    env.ok(&["delete", "pod", &name]);
    let calls = std::fs::read_to_string(&log).unwrap();
    let adds = calls.lines().filter(|l| l.starts_with("ADD ")).count();
    let dels = calls.lines().filter(|l| l.starts_with("DEL ")).count();
    assert_eq!((adds, dels), (1, 1), "CNI calls:\n{calls}");
    for c in ["side", "a", "b"] {
        let terms = std::fs::read_to_string(out.join(c)).unwrap_or_default();
        assert_eq!(
            terms,
            "term\n",
            "{c} got its stop signal {} times",
            terms.lines().count()
        );
    }
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}
