//! Init container order, the restart matrix, init failures, crash-loop back-off and
//! termination messages.

use std::time::Duration;

use crate::harness::*;

/// Scenario 3: init-container-1, then init-container-2, then the app, proven by records
/// in a shared file; the app starts only after both exited 0.
#[test]
fn init_containers_run_in_order() {
    let env = Env::new();
    let name = format!("order-{}", unique());
    let step =
        |n: &str| format!("echo {n} start >> /log/order; sleep 0.3; echo {n} done >> /log/order");
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  initContainers:
  - {{name: init-container-1, image: {IMAGE}, command: [sh, -c, '{}'], volumeMounts: [{{name: log, mountPath: /log}}]}}
  - {{name: init-container-2, image: {IMAGE}, command: [sh, -c, '{}'], volumeMounts: [{{name: log, mountPath: /log}}]}}
  containers:
  - {{name: app, image: {IMAGE}, command: [sh, -c, 'echo app start >> /log/order; exec sleep 3600'], volumeMounts: [{{name: log, mountPath: /log}}]}}
  volumes:
  - {{name: log, emptyDir: {{}}}}
",
            step("init-container-1"),
            step("init-container-2")
        ),
    ));
    // While initializing, the pod is Pending and the app waits with PodInitializing.
    let early = env.pod(&name);
    if early["status"]["phase"] == "Pending" {
        let app = cstatus(&early, "app");
        assert_eq!(
            app["state"]["waiting"]["reason"], "PodInitializing",
            "{app}"
        );
    }
    let pod = env.wait_phase(&name, "Running");
    let (_, order) = env.exec(&name, "app", &["cat", "/log/order"]);
    assert_eq!(
        order,
        "init-container-1 start\ninit-container-1 done\ninit-container-2 start\ninit-container-2 done\napp start\n"
    );
    let t = |v: &serde_json::Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let i2 = cstatus(&pod, "init-container-2")["state"]["terminated"].clone();
    assert_eq!(i2["exitCode"], 0);
    let app_started = t(&cstatus(&pod, "app")["state"]["running"]["startedAt"]);
    assert!(t(&i2["finishedAt"]) <= app_started);
    let conds = pod["status"]["conditions"].as_array().unwrap();
    let types: Vec<&str> = conds.iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "PodScheduled",
            "PodReadyToStartContainers",
            "Initialized",
            "ContainersReady",
            "Ready"
        ]
    );
    assert!(conds.iter().all(|c| c["status"] == "True"), "{conds:?}");
}

fn restart_case(policy: &str, code: i32) -> (serde_json::Value, String) {
    let env = Env::new();
    let name = format!("rs-{}-{code}-{}", policy.to_lowercase(), unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!("  restartPolicy: {policy}\n  containers:\n  - {{name: c, image: {IMAGE}, command: [sh, -c, 'sleep 0.1; exit {code}']}}\n"),
    ));
    let restarts = policy == "Always" || (policy == "OnFailure" && code != 0);
    let pod = if restarts {
        env.wait_for(&name, Duration::from_secs(30), |p| {
            p["status"]["containerStatuses"][0]["restartCount"]
                .as_i64()
                .unwrap_or(0)
                >= 2
        })
    } else {
        env.wait_for(&name, Duration::from_secs(30), |p| {
            p["status"]["phase"] == "Succeeded" || p["status"]["phase"] == "Failed"
        })
    };
    let row = env.ok(&["get", "pods", &name]);
    (pod, row)
}

/// Scenario 6: exit 0 and exit 1 under Always, OnFailure and Never give the kubelet's phase,
/// reasons and restart counts.
#[test]
fn restart_matrix() {
    let cases = [
        ("Always", 0, "Running", "Completed"),
        ("Always", 1, "Running", "Error"),
        ("OnFailure", 0, "Succeeded", "Completed"),
        ("OnFailure", 1, "Running", "Error"),
        ("Never", 0, "Succeeded", "Completed"),
        ("Never", 1, "Failed", "Error"),
    ];
    let handles: Vec<_> = cases
        .iter()
        .map(|&(policy, code, phase, reason)| {
            std::thread::spawn(move || {
                let (pod, row) = restart_case(policy, code);
                let c = &pod["status"]["containerStatuses"][0];
                let restarts = policy == "Always" || (policy == "OnFailure" && code != 0);
                assert_eq!(
                    pod["status"]["phase"], phase,
                    "{policy}/{code}: {}",
                    pod["status"]
                );
                if restarts {
                    assert!(c["restartCount"].as_i64().unwrap() >= 2, "{policy}/{code}");
                    assert_eq!(
                        c["lastState"]["terminated"]["reason"], reason,
                        "{policy}/{code}: {c}"
                    );
                    assert_eq!(c["lastState"]["terminated"]["exitCode"], code);
                } else {
                    assert_eq!(c["restartCount"], 0, "{policy}/{code}");
                    assert_eq!(
                        c["state"]["terminated"]["reason"], reason,
                        "{policy}/{code}: {c}"
                    );
                    assert_eq!(c["state"]["terminated"]["exitCode"], code);
                    assert!(c["containerID"].as_str().unwrap().starts_with("peapod://"));
                    let ready = pod["status"]["conditions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|x| x["type"] == "Ready")
                        .unwrap()
                        .clone();
                    assert_eq!(ready["status"], "False");
                    assert_eq!(
                        ready["reason"],
                        if code == 0 {
                            "PodCompleted"
                        } else {
                            "PodFailed"
                        }
                    );
                    let shown = if code == 0 { "Completed" } else { "Error" };
                    assert!(row.contains(shown), "{row}");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// A crash loop waits with CrashLoopBackOff and the kubelet's message between restarts.
#[test]
fn crash_loop_back_off_is_reported() {
    let env = Env::with_backoff(2.0, 4.0);
    let name = format!("crash-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!("  containers:\n  - {{name: c, image: {IMAGE}, command: [sh, -c, 'exit 3']}}\n"),
    ));
    let pod = env.wait_for(&name, Duration::from_secs(20), |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    let c = cstatus(&pod, "c");
    let msg = c["state"]["waiting"]["message"].as_str().unwrap();
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        msg,
        format!("back-off 2s restarting failed container=c pod={name}_default({uid})")
    );
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 3);
    assert_eq!(c["restartCount"], 1);
    assert!(env.ok(&["get", "pods", &name]).contains("CrashLoopBackOff"));
    assert!(
        env.ok(&["get", "events"])
            .contains("Back-off restarting failed container c")
    );
    // Repeats are one event with a count, and first and last times (-o json, -o wide).
    let events: serde_json::Value =
        serde_json::from_str(&env.ok(&["get", "events", "-o", "json"])).unwrap();
    let started = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reason"] == "Started")
        .unwrap();
    assert_eq!(started["kind"], "Event");
    assert_eq!(started["involvedObject"]["name"], name.as_str());
    assert_eq!(started["involvedObject"]["fieldPath"], "spec.containers{c}");
    assert!(started["count"].as_u64().unwrap() >= 2, "{started}");
    assert!(started["firstTimestamp"].as_str() <= started["lastTimestamp"].as_str());
    let wide = env.ok(&["get", "events", "-o", "wide"]);
    assert!(
        wide.lines().next().unwrap().ends_with("FIRST SEEN   COUNT"),
        "{wide}"
    );
    let row = wide.lines().find(|l| l.contains("Started")).unwrap();
    let count: u64 = row.split_whitespace().last().unwrap().parse().unwrap();
    assert!(count >= started["count"].as_u64().unwrap(), "{wide}");
}

/// Scenario 7: a failing init container fails a Never pod (the app never starts) and is
/// retried under OnFailure until a flag file lets it pass.
#[test]
fn init_failure_by_restart_policy() {
    let env = Env::new();
    let never = format!("initnever-{}", unique());
    env.apply_ok(&pod_yaml(
        &never,
        &format!("  restartPolicy: Never\n  initContainers:\n  - {{name: check, image: {IMAGE}, command: [sh, -c, 'exit 2']}}\n  containers:\n  - {{name: app, image: {IMAGE}, command: [sleep, '3600']}}\n"),
    ));
    let pod = env.wait_phase(&never, "Failed");
    let init = cstatus(&pod, "check");
    assert_eq!(init["state"]["terminated"]["exitCode"], 2);
    assert_eq!(init["restartCount"], 0);
    let app = cstatus(&pod, "app");
    assert_eq!(app["state"]["waiting"]["reason"], "PodInitializing");
    assert!(
        app.get("containerID").is_none_or(|v| v.is_null()),
        "the app container was created: {app}"
    );
    assert!(env.ok(&["get", "pods", &never]).contains("Init:Error"));

    let flag = env.path().join("flag");
    std::fs::create_dir_all(&flag).unwrap();
    let retry = format!("initretry-{}", unique());
    env.apply_ok(&pod_yaml(
        &retry,
        &format!(
            "  restartPolicy: OnFailure\n  initContainers:\n  - {{name: check, image: {IMAGE}, command: [sh, -c, 'test -f /flag/ok'], volumeMounts: [{{name: flag, mountPath: /flag}}]}}\n  containers:\n  - {{name: app, image: {IMAGE}, command: [sleep, '3600']}}\n  volumes:\n  - {{name: flag, hostPath: {{path: {}}}}}\n",
            flag.display()
        ),
    ));
    env.wait_for(&retry, Duration::from_secs(20), |p| {
        p["status"]["initContainerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0)
            >= 1
    });
    assert_eq!(env.pod(&retry)["status"]["phase"], "Pending");
    std::fs::write(flag.join("ok"), "").unwrap();
    let pod = env.wait_phase(&retry, "Running");
    assert_eq!(cstatus(&pod, "check")["state"]["terminated"]["exitCode"], 0);
    assert!(cstatus(&pod, "app")["state"]["running"].is_object());
}

/// An image that is not in the store waits with ErrImageNeverPull under policy Never.
#[test]
fn missing_image_waits_never_crashes() {
    let env = Env::new();
    let name = format!("noimg-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        "  containers:\n  - {name: c, image: 'localhost/nowhere/none:1', imagePullPolicy: Never}\n",
    ));
    let pod = env.wait_for(&name, Duration::from_secs(10), |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImageNeverPull"
    });
    assert_eq!(pod["status"]["phase"], "Pending");
    let msg = cstatus(&pod, "c")["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        msg,
        "Container image \"localhost/nowhere/none:1\" is not present with pull policy of Never"
    );
}

#[test]
fn termination_messages_by_policy() {
    let env = Env::new();
    let name = format!("tmsg-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  restartPolicy: Never
  containers:
  - name: file
    image: {IMAGE}
    command: [sh, -c, 'echo -n bye from the file > /dev/termination-log; echo ignored']
  - name: custom
    image: {IMAGE}
    terminationMessagePath: /tmp/why
    command: [sh, -c, 'echo -n custom path > /tmp/why; exit 3']
  - name: logs
    image: {IMAGE}
    terminationMessagePolicy: FallbackToLogsOnError
    command: [sh, -c, 'for i in $(seq 1 100); do echo line $i; done; exit 1']
  - name: nofallback
    image: {IMAGE}
    command: [sh, -c, 'echo not a message; exit 1']
"
        ),
    ));
    let pod = env.wait_phase(&name, "Failed");
    let msg = |c: &str| cstatus(&pod, c)["state"]["terminated"]["message"].clone();
    assert_eq!(msg("file"), "bye from the file");
    assert_eq!(msg("custom"), "custom path");
    let logs = msg("logs").as_str().unwrap().to_string();
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.len(), 80, "{logs}");
    assert_eq!((lines[0], lines[79]), ("line 21", "line 100"));
    assert!(msg("nofallback").is_null(), "{}", msg("nofallback"));
}

/// A message file is read up to 4 KiB; a pod's messages share 12 KiB, so with five
/// containers each keeps 12288 / 5 = 2457 bytes.
#[test]
fn termination_messages_share_the_pods_12_kib() {
    let env = Env::new();
    let name = format!("tbudget-{}", unique());
    let writer = |n: usize| {
        format!(
            "  - name: c{n}\n    image: {IMAGE}\n    command: [sh, -c, 'head -c 6000 /dev/zero | tr \"\\\\0\" {n} > /dev/termination-log']\n"
        )
    };
    let one = pod_yaml(
        &name,
        &format!("  restartPolicy: Never\n  containers:\n{}", writer(1)),
    );
    env.apply_ok(&one);
    let pod = env.wait_phase(&name, "Succeeded");
    let m = cstatus(&pod, "c1")["state"]["terminated"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(m.len(), 4096, "one container keeps 4 KiB");
    assert!(m.bytes().all(|b| b == b'1'));

    let name = format!("tbudget5-{}", unique());
    let five: String = (1..=5).map(writer).collect();
    env.apply_ok(&pod_yaml(
        &name,
        &format!("  restartPolicy: Never\n  containers:\n{five}"),
    ));
    let pod = env.wait_phase(&name, "Succeeded");
    let mut total = 0;
    for n in 1..=5 {
        let m = cstatus(&pod, &format!("c{n}"))["state"]["terminated"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(m.len(), 12 * 1024 / 5, "c{n}");
        assert!(m.bytes().all(|b| b == b'0' + n as u8));
        total += m.len();
    }
    assert!(total <= 12 * 1024);
}

/// Start times of a container, from `/proc/uptime` lines it appended to `file` (one clock
/// for host and container, in hundredths of a second).
fn starts(file: &std::path::Path) -> Vec<f64> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The crash-loop back-off doubles (base, 2×base, 4×base, capped at the maximum): the
/// kubelet's 10, 20, 40 s with the base lowered to 0.5 s. The first restart is immediate.
/// A container that then runs longer than the reset time (2 × maximum) restarts at once and
/// its back-off starts again from the base.
#[test]
fn back_off_doubles_then_resets() {
    let env = Env::with_backoff(0.5, 2.0);
    let data = env.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let name = format!("backoff-{}", unique());
    // Runs 1-5 fail at once; run 6 lives 5 s (past the 4 s reset) and fails; run 7 and on
    // fail at once.
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:
  - name: c
    image: {IMAGE}
    command: [sh, -c, 'cat /proc/uptime >> /data/starts; n=$(wc -l < /data/starts); if [ $n -eq 6 ]; then sleep 5; fi; exit 1']
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes:
  - {{name: data, hostPath: {{path: {}}}}}
",
            data.display()
        ),
    ));
    let file = data.join("starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while starts(&file).len() < 8 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {:?}",
            starts(&file)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = starts(&file);
    let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    // Immediate, 0.5, 1, 2, 2 (capped); then the 5 s run, restarted at once (its entry
    // expired); then the base again.
    // A back-off is a least delay: each gap is at least its delay (less 0.1 s of clock
    // granularity) and, on a loaded machine, may run up to a second over.
    let want = [0.0, 0.5, 1.0, 2.0, 2.0, 5.0];
    for (i, (g, w)) in gaps.iter().zip(want).enumerate() {
        assert!(
            *g >= w - 0.1 && *g <= w + 1.0,
            "gap {i} is {g:.2}s, want {w}s (all: {gaps:.2?})"
        );
    }
    // After the reset the next delay is the base again, not the 2 s maximum.
    assert!(
        gaps[6] >= 0.4 && gaps[6] < 1.5,
        "not reset after a long run: {gaps:.2?}"
    );
    let pod = env.pod(&name);
    assert!(cstatus(&pod, "c")["restartCount"].as_i64().unwrap() >= 7);
}

/// `tty: true` gives the container a terminal (its output is logged as stdout); `stdin:
/// true` keeps its standard input open, so `cat` waits, where without it `cat` reads
/// end-of-file at once and exits.
#[test]
fn terminals_and_standard_input() {
    let env = Env::new();
    let name = format!("tty-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  restartPolicy: Never
  containers:
  - {{name: term, image: {IMAGE}, tty: true, command: [sh, -c, '[ -t 1 ] && echo on a terminal >&2; exec sleep 3600']}}
  - {{name: open, image: {IMAGE}, stdin: true, command: [cat]}}
  - {{name: closed, image: {IMAGE}, command: [cat]}}
"
        ),
    ));
    let pod = env.wait_for(&name, Duration::from_secs(20), |p| {
        !cstatus(p, "closed")["state"]["terminated"].is_null()
            && !cstatus(p, "term")["state"]["running"].is_null()
    });
    assert_eq!(
        cstatus(&pod, "closed")["state"]["terminated"]["exitCode"],
        0
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let logs = loop {
        let logs = env.ok(&["logs", &name, "-c", "term"]);
        if logs.contains("on a terminal") || std::time::Instant::now() > deadline {
            break logs;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(logs.contains("on a terminal"), "{logs:?}");
    std::thread::sleep(Duration::from_millis(500));
    let pod = env.pod(&name);
    assert!(
        !cstatus(&pod, "open")["state"]["running"].is_null(),
        "cat waits on an open input: {pod}"
    );
    env.ok(&["delete", "pod", &name, "--force"]);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}
