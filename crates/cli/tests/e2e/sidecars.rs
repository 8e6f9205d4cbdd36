//! Native sidecars (start order, startup gating, restarts, stop order) and the sandbox
//! recreated after its infra process died.

use std::time::Duration;

use crate::harness::*;

/// A native sidecar (init container with restartPolicy Always) ships the app's log from a
/// shared emptyDir: it starts first, runs through the app's life, is stopped after the app
/// finishes, and the pod ends Succeeded.
#[test]
fn native_sidecar_ships_logs_and_stops_after_the_app() {
    let env = Env::new();
    let name = format!("shipper-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: shipper
    image: {IMAGE}
    restartPolicy: Always
    command: [sh, -c, 'touch /logs/app.log; exec tail -F /logs/app.log']
    volumeMounts: [{{name: logs, mountPath: /logs}}]
  containers:
  - name: app
    image: {IMAGE}
    command: [sh, -c, 'for i in 1 2 3 4 5; do echo line $i >> /logs/app.log; sleep 0.3; done']
    volumeMounts: [{{name: logs, mountPath: /logs}}]
  volumes:
  - {{name: logs, emptyDir: {{}}}}
"
        ),
    ));
    // While the app runs, the sidecar runs beside it and is counted in READY.
    let pod = env.wait_for(&name, Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Running"
            && !p["status"]["containerStatuses"].is_null()
            && cstatus(p, "app")["state"]["running"].is_object()
    });
    let shipper = cstatus(&pod, "shipper");
    assert!(shipper["state"]["running"].is_object(), "{shipper}");
    assert_eq!(shipper["started"], true);
    let shipper_started = shipper["state"]["running"]["startedAt"]
        .as_str()
        .unwrap()
        .to_string();
    let app_started = cstatus(&pod, "app")["state"]["running"]["startedAt"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(shipper_started <= app_started);

    let pod = env.wait_phase(&name, "Succeeded");
    let app = &cstatus(&pod, "app")["state"]["terminated"];
    assert_eq!(app["exitCode"], 0);
    assert_eq!(app["reason"], "Completed");
    let shipper = cstatus(&pod, "shipper");
    let stopped = &shipper["state"]["terminated"];
    assert!(
        stopped.is_object(),
        "the sidecar was not stopped: {shipper}"
    );
    assert_eq!(shipper["restartCount"], 0);
    assert!(
        stopped["finishedAt"].as_str().unwrap() >= app["finishedAt"].as_str().unwrap(),
        "sidecar stopped before the app finished"
    );
    // The shipped log holds every line the app wrote.
    let shipped = env.ok(&["logs", &name, "-c", "shipper"]);
    assert_eq!(shipped, "line 1\nline 2\nline 3\nline 4\nline 5\n");
    let events = env.ok(&["describe", "pod", &name]);
    assert!(events.contains("Stopping container shipper"), "{events}");
}

/// Killing the infra process: every container is killed, a new sandbox is made, init
/// containers run again (a hostPath counter proves it), restart counts go up, and the
/// events say why.
#[test]
fn infra_death_recreates_the_sandbox_and_reruns_init() {
    let env = Env::new();
    let data = env.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let name = format!("recreate-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  initContainers:
  - name: init
    image: {IMAGE}
    command: [sh, -c, 'echo run >> /data/count']
    volumeMounts: [{{name: data, mountPath: /data}}]
  containers:
  - name: app
    image: {IMAGE}
    command: [sleep, '3600']
  volumes:
  - {{name: data, hostPath: {{path: {}}}}}
",
            data.display()
        ),
    ));
    env.wait_phase(&name, "Running");
    let count = || {
        std::fs::read_to_string(data.join("count"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(count(), 1);
    let state = env.state(&name);
    let infra = state["infra_pid"].as_i64().unwrap();
    let app = state["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "app")
        .unwrap()["pid"]
        .as_i64()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(infra as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    let pod = env.wait_for(&name, Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Running"
            && cstatus(p, "app")["restartCount"] == 1
            && cstatus(p, "app")["state"]["running"].is_object()
    });
    assert!(!alive(app), "the old app process survived");
    assert_eq!(
        count(),
        2,
        "the init container did not run again, or ran more than once:\n{}",
        env.ok(&["get", "events"])
    );
    let init = cstatus(&pod, "init");
    assert_eq!(init["restartCount"], 1);
    assert_eq!(init["state"]["terminated"]["reason"], "Completed");
    let new_infra = env.state(&name)["infra_pid"].as_i64().unwrap();
    assert_ne!(new_infra, infra);
    assert!(alive(new_infra));
    let events = env.ok(&["get", "events"]);
    assert!(
        events.contains("SandboxChanged")
            && events.contains("Pod sandbox changed, it will be killed and re-created."),
        "{events}"
    );
    env.ok(&["delete", "pod", &name, "--force"]);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

/// A sidecar with a startup probe holds back the next init container until the probe
/// passes; when it exits it is restarted beside the running app, which is left alone.
#[test]
fn sidecar_startup_gates_the_next_init_and_restarts_on_exit() {
    let env = Env::new();
    let data = env.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let name = format!("sidecar-{}", unique());
    let mount = "volumeMounts: [{name: data, mountPath: /data}]";
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  initContainers:
  - name: side
    image: {IMAGE}
    restartPolicy: Always
    command: [sh, -c, 'echo side $(cut -d\" \" -f1 /proc/uptime) >> /data/order; sleep 2; touch /tmp/ok; sleep 2; exit 1']
    startupProbe: {{exec: {{command: [cat, /tmp/ok]}}, periodSeconds: 1}}
    {mount}
  - name: init2
    image: {IMAGE}
    command: [sh, -c, 'echo init2 $(cut -d\" \" -f1 /proc/uptime) >> /data/order']
    {mount}
  containers:
  - name: app
    image: {IMAGE}
    command: [sh, -c, 'echo app $(cut -d\" \" -f1 /proc/uptime) >> /data/order; sleep 3600']
    {mount}
  volumes:
  - {{name: data, hostPath: {{path: {}}}}}
",
            data.display()
        ),
    ));
    let pod = env.wait_for(&name, Duration::from_secs(30), |p| {
        !p["status"]["initContainerStatuses"].is_null()
            && cstatus(p, "side")["restartCount"].as_i64() >= Some(1)
            && cstatus(p, "side")["state"]["running"].is_object()
    });
    let order: Vec<(String, f64)> = std::fs::read_to_string(data.join("order"))
        .unwrap()
        .lines()
        .map(|l| {
            let (n, t) = l.split_once(' ').unwrap();
            (n.to_string(), t.parse().unwrap())
        })
        .collect();
    let names: Vec<&str> = order.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(&names[..4], ["side", "init2", "app", "side"], "{order:?}");
    assert!(
        order[1].1 - order[0].1 >= 1.9,
        "init2 started before the sidecar's startup probe passed: {order:?}"
    );
    let app = cstatus(&pod, "app");
    assert_eq!(app["restartCount"], 0, "{app}");
    assert!(app["state"]["running"].is_object(), "{app}");
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(
        cstatus(&pod, "side")["lastState"]["terminated"]["exitCode"],
        1
    );
}
