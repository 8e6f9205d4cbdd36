//! Lifecycle hooks (postStart, preStop with exec, httpGet and sleep) and
//! activeDeadlineSeconds, with the status fields and events a kubelet gives.

use std::time::{Duration, Instant};

use crate::harness::*;

fn out_dir(env: &Env) -> std::path::PathBuf {
    let out = env.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    out
}

#[test]
fn post_start_finishes_before_the_container_counts_as_running() {
    let env = Env::new();
    let out = out_dir(&env);
    let name = format!("poststart-{}", unique());
    // The hook waits for the container's own process to have started, so it provably runs
    // alongside it, then takes a second.
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:
  - name: app
    image: {IMAGE}
    command: [sh, -c, 'touch /out/main; while true; do sleep 0.1; done']
    lifecycle:
      postStart:
        exec: {{command: [sh, -c, 'while [ ! -e /out/main ]; do sleep 0.05; done; sleep 1; echo done > /out/hook']}}
    volumeMounts: [{{name: out, mountPath: /out}}]
  volumes:
  - {{name: out, hostPath: {{path: {}}}}}
",
            out.display()
        ),
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut saw_waiting_during_hook = false;
    loop {
        let pod = env.pod(&name);
        if pod["status"]["containerStatuses"].is_null() {
            continue;
        }
        let st = &cstatus(&pod, "app")["state"];
        // Status first, then the file: a running container implies a finished hook.
        if st["running"].is_object() {
            assert_eq!(
                std::fs::read_to_string(out.join("hook")).unwrap_or_default(),
                "done\n",
                "running before its postStart hook returned"
            );
            break;
        }
        if out.join("main").exists() && !out.join("hook").exists() {
            assert_eq!(st["waiting"]["reason"], "ContainerCreating", "{st}");
            saw_waiting_during_hook = true;
        }
        assert!(
            Instant::now() < deadline,
            "never running: {}",
            pod["status"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(saw_waiting_during_hook, "never looked while the hook ran");
}

#[test]
fn failing_post_start_kills_and_restarts_the_container() {
    let env = Env::new();
    let name = format!("poststart-fail-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {IMAGE}
    command: [sleep, '3600']
    lifecycle:
      postStart:
        exec: {{command: [sh, -c, 'echo bad; exit 3']}}
  - name: web
    image: {IMAGE}
    command: [sleep, '3600']
    lifecycle:
      postStart:
        httpGet: {{path: /hook, port: 9}}
"
        ),
    ));
    let pod = env.wait_for(&name, Duration::from_secs(30), |p| {
        !p["status"]["containerStatuses"].is_null()
            && ["app", "web"]
                .iter()
                .all(|c| cstatus(p, c)["restartCount"].as_i64() >= Some(1))
    });
    for c in ["app", "web"] {
        let s = cstatus(&pod, c);
        let last = &s["lastState"]["terminated"];
        assert_eq!(last["exitCode"], 137, "{c}: {s}");
        assert_eq!(last["reason"], "Error", "{c}: {s}");
    }
    let events = env.ok(&["describe", "pod", &name]);
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let label = format!("{name}_default({uid})");
    let want_exec = format!(
        "Exec lifecycle hook ([sh -c echo bad; exit 3]) for Container \"app\" in Pod \"{label}\" failed - error: command 'sh -c echo bad; exit 3' exited with 3: , message: \"bad\\n\""
    );
    assert!(events.contains(&want_exec), "{events}");
    let want_http = format!(
        "HTTP lifecycle hook (/hook) for Container \"web\" in Pod \"{label}\" failed - error: Get \"http://"
    );
    assert!(events.contains(&want_http), "{events}");
    assert!(events.contains(":9/hook\": dial tcp"), "{events}");
    assert!(events.contains("FailedPostStartHook"), "{events}");
    // While it waits to start again, the reason is the hook's or the back-off's.
    let pod = env.wait_for(&name, Duration::from_secs(30), |p| {
        cstatus(p, "app")["state"]["waiting"]["reason"].is_string()
    });
    let reason = cstatus(&pod, "app")["state"]["waiting"]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        ["PostStartHookError", "CrashLoopBackOff"].contains(&reason.as_str()),
        "{reason}"
    );
}

#[test]
fn pre_stop_runs_before_the_stop_signal() {
    let env = Env::new();
    let out = out_dir(&env);
    let name = format!("prestop-{}", unique());
    // exec, httpGet (a CGI script of busybox httpd records the call) and sleep handlers.
    let cgi = "mkdir -p /www/cgi-bin; printf \"#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho ok\\necho http >> /out/web\\n\" > /www/cgi-bin/hook; chmod +x /www/cgi-bin/hook; trap \"echo term >> /out/web; exit 0\" TERM; httpd -f -p 8080 -h /www & wait";
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  terminationGracePeriodSeconds: 20
  containers:
  - name: app
    image: {IMAGE}
    command: [sh, -c, 'trap \"echo term >> /out/app; exit 0\" TERM; while true; do sleep 0.1; done']
    lifecycle:
      preStop:
        exec: {{command: [sh, -c, 'echo prestop >> /out/app']}}
    volumeMounts: [{{name: out, mountPath: /out}}]
  - name: web
    image: {IMAGE}
    command: [sh, -c, '{cgi}']
    lifecycle:
      preStop:
        httpGet: {{path: /cgi-bin/hook, port: 8080}}
    volumeMounts: [{{name: out, mountPath: /out}}]
  - name: sleeper
    image: {IMAGE}
    command: [sh, -c, 'trap \"touch /out/sleeper; exit 0\" TERM; while true; do sleep 0.1; done']
    lifecycle:
      preStop:
        sleep: {{seconds: 2}}
    volumeMounts: [{{name: out, mountPath: /out}}]
  volumes:
  - {{name: out, hostPath: {{path: {}}}}}
",
            out.display()
        ),
    ));
    env.wait_phase(&name, "Running");
    std::thread::sleep(Duration::from_millis(500));
    let t0 = std::time::SystemTime::now();
    env.ok(&["delete", "pod", &name]);
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_default();
    assert_eq!(read("app"), "prestop\nterm\n");
    assert_eq!(read("web"), "http\nterm\n");
    // The sleep hook held the stop signal back for its 2 seconds.
    let signalled = std::fs::metadata(out.join("sleeper"))
        .and_then(|m| m.modified())
        .expect("the sleeper got no SIGTERM");
    let after = signalled.duration_since(t0).unwrap();
    assert!(
        after >= Duration::from_secs(2) && after < Duration::from_secs(6),
        "{after:?}"
    );
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

/// A preStop hook longer than the grace period is cut there; the container then gets the
/// kubelet's 2 s minimum before SIGKILL.
#[test]
fn slow_pre_stop_is_cut_at_the_grace_period() {
    let env = Env::new();
    let out = out_dir(&env);
    let name = format!("slowstop-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  terminationGracePeriodSeconds: 3
  containers:
  - name: app
    image: {IMAGE}
    command: [sh, -c, 'trap \"echo term >> /out/app\" TERM; while true; do sleep 0.1; done']
    lifecycle:
      preStop:
        exec: {{command: [sh, -c, 'echo prestop >> /out/app; sleep 100; echo finished >> /out/app']}}
    volumeMounts: [{{name: out, mountPath: /out}}]
  volumes:
  - {{name: out, hostPath: {{path: {}}}}}
",
            out.display()
        ),
    ));
    env.wait_phase(&name, "Running");
    let t0 = Instant::now();
    env.ok(&["delete", "pod", &name]);
    let took = t0.elapsed();
    // 3 s of hook, then SIGTERM (trapped, ignored), then SIGKILL 2 s later.
    assert!(
        took >= Duration::from_millis(4800) && took < Duration::from_secs(9),
        "{took:?}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("app")).unwrap(),
        "prestop\nterm\n"
    );
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[test]
fn active_deadline_fails_the_pod() {
    let env = Env::new();
    let name = format!("deadline-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  activeDeadlineSeconds: 5
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {IMAGE}
    command: [sleep, '3600']
"
        ),
    ));
    env.wait_phase(&name, "Running");
    let t0 = Instant::now();
    // Failed is published at once, while the container is still being stopped (as the
    // kubelet publishes before it kills); then the container is shown killed.
    let failed = env.wait_phase(&name, "Failed");
    assert!(t0.elapsed() < Duration::from_secs(9), "{:?}", t0.elapsed());
    assert_eq!(failed["status"]["reason"], "DeadlineExceeded");
    let pod = env.wait_for(&name, Duration::from_secs(10), |p| {
        cstatus(p, "app")["state"]["terminated"].is_object()
    });
    assert_eq!(pod["status"]["phase"], "Failed");
    assert_eq!(pod["status"]["reason"], "DeadlineExceeded");
    assert_eq!(
        pod["status"]["message"],
        "Pod was active on the node longer than the specified deadline"
    );
    let t = &cstatus(&pod, "app")["state"]["terminated"];
    assert_eq!(t["exitCode"], 137, "{t}");
    let events = env.ok(&["get", "events"]);
    assert!(events.contains("DeadlineExceeded"), "{events}");
    // The phase sticks.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(env.pod(&name)["status"]["phase"], "Failed");
}

/// `apply` may lower a running pod's deadline (as the API server allows, and not raise
/// it): the pod is failed by the new one.
#[test]
fn a_lowered_deadline_applies_to_the_running_pod() {
    let env = Env::new();
    let name = format!("deadline2-{}", unique());
    let manifest = |deadline: u32| {
        pod_yaml(
            &name,
            &format!(
                "  activeDeadlineSeconds: {deadline}
  terminationGracePeriodSeconds: 1
  tolerations: [{{key: a, operator: Exists}}]
  containers:
  - name: app
    image: {IMAGE}
    command: [sleep, '3600']
"
            ),
        )
    };
    env.apply_ok(&manifest(3600));
    env.wait_phase(&name, "Running");
    let out = env.apply(&manifest(7200));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.activeDeadlineSeconds: Invalid value: 7200: must be less than or equal to previous value"),
        "{err}"
    );
    let out = env.apply(&manifest(3));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("pod/{name} configured")));
    let failed = env.wait_phase(&name, "Failed");
    assert_eq!(failed["status"]["reason"], "DeadlineExceeded");
    assert_eq!(failed["spec"]["activeDeadlineSeconds"], 3);
    env.ok(&["delete", "pod", &name]);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

/// Deleting a pod whose postStart hook is still running cuts the hook short: the deletion
/// does not wait for it.
#[test]
fn delete_cuts_a_running_post_start_hook() {
    let env = Env::new();
    let name = format!("hookdel-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {IMAGE}
    command: [sleep, '3600']
    lifecycle:
      postStart:
        exec: {{command: [sleep, '120']}}
"
        ),
    ));
    // The hook runs: the container is created but does not count as running.
    env.wait_for(&name, Duration::from_secs(20), |p| {
        !p["status"]["containerStatuses"].is_null()
            && cstatus(p, "app")["containerID"].is_string()
            && cstatus(p, "app")["state"]["waiting"]["reason"] == "ContainerCreating"
    });
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    env.ok(&["delete", "pod", &name]);
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(8), "deletion waited {took:?}");
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}
