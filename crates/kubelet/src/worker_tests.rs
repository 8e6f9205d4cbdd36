//! The sync loop against the fake runtime, on Tokio's paused clock: events in, runtime
//! calls and published states out.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use peapod_types::pod::DefaultedPod;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::clock::{Clock, TokioClock};
use crate::config::NodeCapacity;
use crate::fake::{FakeRuntime, Script};
use crate::testutil::pod_yaml;
use crate::{Command, KubeletConfig, PodState, PodWorker};

const IMG: &str = "busybox:1";

struct Harness {
    rt: Arc<FakeRuntime>,
    state: Arc<Mutex<Option<PodState>>>,
    tx: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<()>,
    dir: tempfile::TempDir,
    clock: Arc<dyn Clock>,
}

fn config(dir: &std::path::Path) -> KubeletConfig {
    KubeletConfig {
        node_name: "node-1".into(),
        host_ip: "192.0.2.1".into(),
        pod_dir: dir.join("pod"),
        log_dir: dir.join("logs"),
        backoff: Default::default(),
        cluster_dns: Vec::new(),
        cluster_domain: "cluster.local".into(),
        cgroup_parent: "/peapod/podu1".into(),
        pod_pids_limit: None,
        pull_keyring: Default::default(),
        node: NodeCapacity {
            cpus: 2,
            memory: 1 << 30,
        },
        host_resolv_conf: "nameserver 192.0.2.53\n".into(),
        host_hosts: String::new(),
        seccomp_root: dir.join("seccomp"),
        node_labels: peapod_types::admission::node_labels("node-1", &Default::default()),
        apparmor_enabled: false,
        node_resources: crate::NodeResources::new(|| {
            let r = |name: &str, capacity| peapod_types::admission::NodeResource {
                name: name.into(),
                capacity,
                used: 0,
            };
            vec![r("cpu", 2000), r("memory", 1 << 30)]
        }),
        user_namespace: Ok(None),
        hugepage_sizes: vec![2 << 20],
    }
}

impl Harness {
    fn start(
        pod: DefaultedPod,
        script: impl Fn(&str, u32) -> Script + Send + Sync + 'static,
    ) -> Harness {
        Self::start_with(pod, &[IMG], script, |_| {})
    }

    fn start_with(
        pod: DefaultedPod,
        images: &[&str],
        script: impl Fn(&str, u32) -> Script + Send + Sync + 'static,
        setup: impl FnOnce(&FakeRuntime),
    ) -> Harness {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(
            Timestamp::from_second(1_700_000_000).unwrap(),
        ));
        let rt = FakeRuntime::new(Arc::clone(&clock), images, script);
        setup(&rt);
        let dir = tempfile::tempdir().unwrap();
        let worker = PodWorker::new(Arc::clone(&rt), pod, config(dir.path()), Arc::clone(&clock));
        let state = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&state);
        let (tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(worker.run(rx, move |s: &PodState| {
            *sink.lock().unwrap() = Some(s.clone());
        }));
        Harness {
            rt,
            state,
            tx,
            task,
            dir,
            clock,
        }
    }

    /// The last published pod, as JSON.
    fn pod(&self) -> Value {
        let s = self.state.lock().unwrap().clone();
        s.map(|s| serde_json::to_value(s.pod).unwrap())
            .unwrap_or(Value::Null)
    }

    fn events(&self) -> Vec<String> {
        let s = self.state.lock().unwrap().clone();
        s.map(|s| {
            s.events
                .iter()
                .map(|e| format!("{} {}", e.reason, e.message))
                .collect()
        })
        .unwrap_or_default()
    }

    /// Waits (on the paused clock) until the published pod satisfies `pred`.
    async fn wait(&self, what: &str, max: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let end = tokio::time::Instant::now() + max;
        loop {
            let pod = self.pod();
            if pred(&pod) {
                return pod;
            }
            if tokio::time::Instant::now() > end {
                panic!("{what}: timed out; last status {}", pod["status"]);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn elapsed(&self) -> f64 {
        self.clock
            .now()
            .duration_since(Timestamp::from_second(1_700_000_000).unwrap())
            .as_secs_f64()
    }

    async fn delete(self, grace: Option<i64>) -> (Arc<FakeRuntime>, tempfile::TempDir) {
        self.tx.send(Command::Delete { grace }).await.unwrap();
        tokio::time::timeout(Duration::from_secs(600), self.task)
            .await
            .expect("the worker ends after a delete")
            .unwrap();
        (self.rt, self.dir)
    }
}

fn cs<'a>(pod: &'a Value, name: &str) -> &'a Value {
    for key in ["containerStatuses", "initContainerStatuses"] {
        if let Some(s) = pod["status"][key]
            .as_array()
            .and_then(|l| l.iter().find(|s| s["name"] == name))
        {
            return s;
        }
    }
    &Value::Null
}

fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or_default()
}

fn run_forever(_: &str, _: u32) -> Script {
    Script::Run
}

#[tokio::test(start_paused = true)]
async fn a_pod_runs_and_reports_its_events() {
    let h = Harness::start(
        pod_yaml("  containers: [{name: a, image: 'busybox:1'}, {name: b, image: 'busybox:1'}]\n"),
        run_forever,
    );
    let pod = h
        .wait("running", Duration::from_secs(5), |p| phase(p) == "Running")
        .await;
    assert_eq!(cs(&pod, "a")["ready"], true);
    let conds: Vec<&Value> = pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert!(conds.iter().all(|c| c["status"] == "True"), "{conds:?}");
    let ev = h.events();
    for want in [
        "Scheduled Successfully assigned default/web to node-1",
        "Pulled Container image \"busybox:1\" already present on machine",
        "Created Created container: a",
        "Started Started container b",
    ] {
        assert!(ev.iter().any(|e| e == want), "{want}: {ev:?}");
    }
    assert_eq!(h.rt.sandboxes().len(), 1);
    assert_eq!(h.rt.calls().starts.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn init_containers_run_in_order_before_the_apps_start_together() {
    let h = Harness::start(
        pod_yaml(
            "  initContainers: [{name: i1, image: 'busybox:1'}, {name: i2, image: 'busybox:1'}]\n  containers: [{name: a, image: 'busybox:1'}, {name: b, image: 'busybox:1'}]\n",
        ),
        |name, _| match name {
            "i1" | "i2" => Script::Exit(Duration::from_secs(1), 0),
            _ => Script::Run,
        },
    );
    h.wait("running", Duration::from_secs(10), |p| {
        phase(p) == "Running"
    })
    .await;
    let starts = h.rt.calls().starts;
    let names: Vec<&str> = starts.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names, ["i1", "i2", "a", "b"]);
    assert!(starts[1].2 >= 1.0 && starts[2].2 >= 2.0, "{starts:?}");
    assert_eq!(starts[2].2, starts[3].2, "apps start together");
}

#[tokio::test(start_paused = true)]
async fn a_failed_init_container_fails_a_pod_that_never_restarts() {
    let h = Harness::start(
        pod_yaml(
            "  restartPolicy: Never\n  initContainers: [{name: i, image: 'busybox:1'}]\n  containers: [{name: a, image: 'busybox:1'}]\n",
        ),
        |name, _| match name {
            "i" => Script::Exit(Duration::from_millis(100), 2),
            _ => Script::Run,
        },
    );
    let pod = h
        .wait("failed", Duration::from_secs(10), |p| phase(p) == "Failed")
        .await;
    assert_eq!(cs(&pod, "i")["state"]["terminated"]["exitCode"], 2);
    assert_eq!(
        cs(&pod, "a")["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    assert!(h.rt.calls().starts.iter().all(|s| s.0 != "a"));
    assert!(
        h.rt.sandboxes()
            .iter()
            .all(|s| s.state == peapod_runtime::SandboxState::NotReady)
    );
}

#[tokio::test(start_paused = true)]
async fn crash_loops_restart_at_once_then_back_off_ten_twenty_forty_seconds() {
    let h = Harness::start(
        pod_yaml("  containers: [{name: a, image: 'busybox:1'}]\n"),
        |_, _| Script::Exit(Duration::ZERO, 1),
    );
    let pod = h
        .wait("fifth start", Duration::from_secs(200), |p| {
            cs(p, "a")["restartCount"] == 4
        })
        .await;
    // The first exit creates the back-off entry (the kubelet's doBackOff): the first
    // restart is at once, then 10 s, 20 s, 40 s.
    let times: Vec<f64> = h.rt.calls().starts.iter().map(|s| s.2).collect();
    let gaps: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]).round()).collect();
    assert_eq!(gaps, [0.0, 10.0, 20.0, 40.0], "{times:?}");
    assert_eq!(cs(&pod, "a")["restartCount"], 4);
    let pod = h
        .wait("back-off shown", Duration::from_secs(5), |p| {
            cs(p, "a")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        })
        .await;
    assert_eq!(
        cs(&pod, "a")["state"]["waiting"]["message"],
        "back-off 1m20s restarting failed container=a pod=web_default(u1)"
    );
    assert_eq!(cs(&pod, "a")["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(phase(&pod), "Running");
    assert!(
        h.events()
            .iter()
            .any(|e| e == "BackOff Back-off restarting failed container a in pod web_default(u1)")
    );
}

#[tokio::test(start_paused = true)]
async fn a_delete_stops_each_container_once_and_releases_the_network_once() {
    let h = Harness::start(
        pod_yaml(
            "  initContainers: [{name: side, image: 'busybox:1', restartPolicy: Always}]\n  containers: [{name: a, image: 'busybox:1'}, {name: b, image: 'busybox:1'}]\n",
        ),
        run_forever,
    );
    h.wait("running", Duration::from_secs(5), |p| phase(p) == "Running")
        .await;
    let ids: Vec<String> = h.rt.containers().iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids.len(), 3);
    let pod_dir = h.dir.path().join("pod");
    assert!(pod_dir.exists());
    let (rt, dir) = h.delete(Some(5)).await;
    let calls = rt.calls();
    for id in &ids {
        assert_eq!(calls.stops.get(id), Some(&1), "{id}: {calls:?}");
    }
    assert_eq!(calls.network_releases.values().sum::<u32>(), 1, "{calls:?}");
    assert_eq!(calls.sandbox_removals.values().sum::<u32>(), 1, "{calls:?}");
    assert!(rt.sandboxes().is_empty() && rt.containers().is_empty());
    assert!(!dir.path().join("pod").exists() && !dir.path().join("logs").exists());
}

#[tokio::test(start_paused = true)]
async fn the_grace_period_bounds_a_container_that_ignores_its_stop_signal() {
    let h = Harness::start(
        pod_yaml(
            "  terminationGracePeriodSeconds: 7\n  containers: [{name: a, image: 'busybox:1'}]\n",
        ),
        |_, _| Script::IgnoreTerm,
    );
    h.wait("running", Duration::from_secs(5), |p| phase(p) == "Running")
        .await;
    let (rt, _dir) = h.delete_timed().await;
    let id = rt.calls().stops.keys().next().cloned().unwrap();
    assert_eq!(rt.calls().stops[&id], 1);
}

impl Harness {
    /// Deletes with the pod's own grace period and checks how long it took.
    async fn delete_timed(self) -> (Arc<FakeRuntime>, tempfile::TempDir) {
        let clock = Arc::clone(&self.clock);
        let t0 = clock.now();
        let out = self.delete(None).await;
        let took = clock.now().duration_since(t0).as_secs_f64();
        assert!((7.0..7.5).contains(&took), "took {took}s");
        out
    }
}

#[tokio::test(start_paused = true)]
async fn sidecars_stopped_after_a_spent_grace_period_still_get_their_signal() {
    let h = Harness::start(
        pod_yaml(
            "  terminationGracePeriodSeconds: 1\n  initContainers: [{name: side, image: 'busybox:1', restartPolicy: Always}]\n  containers: [{name: a, image: 'busybox:1'}]\n",
        ),
        |_, _| Script::IgnoreTerm,
    );
    h.wait("running", Duration::from_secs(5), |p| phase(p) == "Running")
        .await;
    let clock = Arc::clone(&h.clock);
    let t0 = clock.now();
    let (rt, _dir) = h.delete(None).await;
    let took = clock.now().duration_since(t0).as_secs_f64();
    // The app waits 2 s (the minimum), then the sidecar gets its own 2 s.
    assert!((4.0..4.5).contains(&took), "took {took}s");
    assert!(rt.calls().stops.values().all(|n| *n == 1));
}

#[tokio::test(start_paused = true)]
async fn a_dead_sandbox_is_replaced_and_init_containers_run_again() {
    let h = Harness::start(
        pod_yaml(
            "  initContainers: [{name: i, image: 'busybox:1'}]\n  containers: [{name: a, image: 'busybox:1'}]\n",
        ),
        |name, _| match name {
            "i" => Script::Exit(Duration::from_millis(100), 0),
            _ => Script::Run,
        },
    );
    h.wait("running", Duration::from_secs(5), |p| phase(p) == "Running")
        .await;
    let first = h.rt.sandboxes()[0].id.clone();
    h.rt.kill_infra(&first);
    let pod = h
        .wait("recreated", Duration::from_secs(10), |p| {
            cs(p, "a")["restartCount"] == 1 && cs(p, "a")["state"]["running"].is_object()
        })
        .await;
    assert_eq!(
        cs(&pod, "i")["restartCount"],
        1,
        "counted from the log directory"
    );
    let boxes = h.rt.sandboxes();
    assert_eq!(boxes[0].metadata.attempt, 1);
    assert_ne!(boxes[0].id, first);
    let names: Vec<String> = h.rt.calls().starts.iter().map(|s| s.0.clone()).collect();
    assert_eq!(names, ["i", "a", "i", "a"]);
    assert!(
        h.events()
            .iter()
            .any(|e| e == "SandboxChanged Pod sandbox changed, it will be killed and re-created.")
    );
}

#[tokio::test(start_paused = true)]
async fn liveness_failures_restart_the_container() {
    let h = Harness::start_with(
        pod_yaml(
            "  containers:\n  - name: a\n    image: 'busybox:1'\n    livenessProbe: {exec: {command: [check]}, periodSeconds: 1, failureThreshold: 2}\n",
        ),
        &[IMG],
        run_forever,
        |rt| rt.on_exec(|_, _| (1, "not alive".into())),
    );
    let pod = h
        .wait("restarted", Duration::from_secs(60), |p| {
            cs(p, "a")["restartCount"] == 1
        })
        .await;
    assert_eq!(cs(&pod, "a")["lastState"]["terminated"]["exitCode"], 143);
    let ev = h.events();
    assert!(
        ev.iter()
            .any(|e| e == "Unhealthy Liveness probe failed: not alive"),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|e| e == "Killing Container a failed liveness probe, will be restarted"),
        "{ev:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn readiness_drives_the_ready_condition() {
    let ready = Arc::new(Mutex::new(false));
    let flag = Arc::clone(&ready);
    let h = Harness::start_with(
        pod_yaml(
            "  containers:\n  - name: a\n    image: 'busybox:1'\n    readinessProbe: {exec: {command: [check]}, periodSeconds: 1, failureThreshold: 1}\n",
        ),
        &[IMG],
        run_forever,
        move |rt| {
            rt.on_exec(move |_, _| {
                if *flag.lock().unwrap() {
                    (0, String::new())
                } else {
                    (1, "no".into())
                }
            })
        },
    );
    let pod = h
        .wait("running", Duration::from_secs(5), |p| phase(p) == "Running")
        .await;
    assert_eq!(cs(&pod, "a")["ready"], false);
    *ready.lock().unwrap() = true;
    h.wait("ready", Duration::from_secs(5), |p| {
        cs(p, "a")["ready"] == true
    })
    .await;
    *ready.lock().unwrap() = false;
    let pod = h
        .wait("unready", Duration::from_secs(5), |p| {
            cs(p, "a")["ready"] == false
        })
        .await;
    assert_eq!(cs(&pod, "a")["restartCount"], 0, "readiness never restarts");
}

#[tokio::test(start_paused = true)]
async fn sidecars_stop_after_the_apps_are_done_and_the_pod_succeeds() {
    let h = Harness::start(
        pod_yaml(
            "  restartPolicy: Never\n  initContainers: [{name: side, image: 'busybox:1', restartPolicy: Always}]\n  containers: [{name: a, image: 'busybox:1'}]\n",
        ),
        |name, _| match name {
            "a" => Script::Exit(Duration::from_secs(2), 0),
            _ => Script::Run,
        },
    );
    let pod = h
        .wait("succeeded", Duration::from_secs(60), |p| {
            phase(p) == "Succeeded"
        })
        .await;
    assert!(cs(&pod, "side")["state"]["terminated"].is_object());
    assert!(
        h.events()
            .iter()
            .any(|e| e == "Killing Stopping container side")
    );
    assert_eq!(cs(&pod, "side")["restartCount"], 0);
}

#[tokio::test(start_paused = true)]
async fn the_active_deadline_fails_the_pod() {
    let h = Harness::start(
        pod_yaml("  activeDeadlineSeconds: 3\n  containers: [{name: a, image: 'busybox:1'}]\n"),
        run_forever,
    );
    let pod = h
        .wait("failed", Duration::from_secs(60), |p| phase(p) == "Failed")
        .await;
    assert_eq!(pod["status"]["reason"], "DeadlineExceeded");
    assert!(h.elapsed() >= 3.0);
    h.wait("killed", Duration::from_secs(60), |p| {
        cs(p, "a")["state"]["terminated"].is_object()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_resize_that_fails_is_in_progress_with_the_error_until_it_goes_through() {
    let spec = |cpu: &str| {
        format!(
            "  containers: [{{name: a, image: 'busybox:1', resources: {{requests: {{cpu: {cpu}}}}}}}]\n"
        )
    };
    let h = Harness::start(pod_yaml(&spec("100m")), run_forever);
    h.wait("running", Duration::from_secs(60), |p| {
        phase(p) == "Running"
    })
    .await;
    let condition = |p: &Value| {
        p["status"]["conditions"].as_array().and_then(|c| {
            c.iter()
                .find(|c| c["type"] == "PodResizeInProgress")
                .cloned()
        })
    };
    assert!(condition(&h.pod()).is_none());
    h.rt.fail_resizes(Some("the cgroup is gone"));
    let new = pod_yaml(&spec("200m"));
    h.tx.send(Command::Update {
        pod: Box::new(new.pod().clone()),
    })
    .await
    .unwrap();
    let p = h
        .wait("in progress", Duration::from_secs(60), |p| {
            condition(p).is_some()
        })
        .await;
    let c = condition(&p).unwrap();
    assert_eq!(c["status"], "True");
    assert_eq!(c["reason"], "Error");
    assert_eq!(
        c["message"],
        "Failed to resize container a: the cgroup is gone"
    );
    assert!(h.events().iter().any(|e| e.starts_with("FailedResize")));
    // Once the runtime takes it (the next pass tries again), the condition goes.
    h.rt.fail_resizes(None);
    h.tx.send(Command::Update {
        pod: Box::new(new.pod().clone()),
    })
    .await
    .unwrap();
    let p = h
        .wait("resized", Duration::from_secs(60), |p| {
            condition(p).is_none()
        })
        .await;
    assert_eq!(cs(&p, "a")["resources"]["requests"]["cpu"], "200m");
}

#[tokio::test(start_paused = true)]
async fn image_pull_failures_back_off_then_the_pod_runs() {
    let img = "registry.example/app:1";
    let h = Harness::start_with(
        pod_yaml("  containers: [{name: a, image: 'registry.example/app:1'}]\n"),
        &[],
        run_forever,
        |rt| rt.fail_pulls(img, Some("manifest unknown")),
    );
    let pod = h
        .wait("ErrImagePull", Duration::from_secs(5), |p| {
            cs(p, "a")["state"]["waiting"]["reason"] == "ErrImagePull"
        })
        .await;
    assert_eq!(
        cs(&pod, "a")["state"]["waiting"]["message"],
        "manifest unknown"
    );
    let pod = h
        .wait("ImagePullBackOff", Duration::from_secs(60), |p| {
            cs(p, "a")["state"]["waiting"]["reason"] == "ImagePullBackOff"
        })
        .await;
    assert_eq!(
        cs(&pod, "a")["state"]["waiting"]["message"],
        "Back-off pulling image \"registry.example/app:1\": ErrImagePull: manifest unknown"
    );
    h.rt.fail_pulls(img, None);
    h.wait("running", Duration::from_secs(120), |p| {
        phase(p) == "Running"
    })
    .await;
    let ev = h.events();
    assert!(
        ev.iter()
            .any(|e| e.starts_with("Pulled Successfully pulled image \"registry.example/app:1\"")),
        "{ev:?}"
    );
    assert!(
        ev.iter().any(|e| e == "Failed Error: ErrImagePull"),
        "{ev:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_post_start_hook_kills_the_container_which_restarts() {
    let h = Harness::start_with(
        pod_yaml(
            "  terminationGracePeriodSeconds: 1\n  containers:\n  - name: a\n    image: 'busybox:1'\n    lifecycle: {postStart: {exec: {command: [hook]}}}\n",
        ),
        &[IMG],
        run_forever,
        |rt| rt.on_exec(|_, _| (3, "bad".into())),
    );
    let pod = h
        .wait("restarted", Duration::from_secs(60), |p| {
            cs(p, "a")["restartCount"].as_i64() >= Some(1)
        })
        .await;
    assert!(cs(&pod, "a")["lastState"]["terminated"].is_object());
    let ev = h.events();
    assert!(ev.iter().any(|e| e.starts_with("FailedPostStartHook Exec lifecycle hook ([hook]) for Container \"a\" in Pod \"web_default(u1)\" failed")), "{ev:?}");
}

#[tokio::test(start_paused = true)]
async fn a_sidecar_startup_probe_holds_the_next_init_container() {
    let ok = Arc::new(Mutex::new(false));
    let flag = Arc::clone(&ok);
    let h = Harness::start_with(
        pod_yaml(
            "  initContainers:\n  - {name: side, image: 'busybox:1', restartPolicy: Always, startupProbe: {exec: {command: [check]}, periodSeconds: 1, failureThreshold: 100}}\n  - {name: i2, image: 'busybox:1'}\n  containers: [{name: a, image: 'busybox:1'}]\n",
        ),
        &[IMG],
        |name, _| match name {
            "i2" => Script::Exit(Duration::from_millis(10), 0),
            _ => Script::Run,
        },
        move |rt| {
            rt.on_exec(move |_, _| {
                if *flag.lock().unwrap() {
                    (0, String::new())
                } else {
                    (1, String::new())
                }
            })
        },
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let names: Vec<String> = h.rt.calls().starts.iter().map(|s| s.0.clone()).collect();
    assert_eq!(names, ["side"], "i2 waits for the sidecar's startup probe");
    *ok.lock().unwrap() = true;
    h.wait("running", Duration::from_secs(10), |p| {
        phase(p) == "Running"
    })
    .await;
    let names: Vec<String> = h.rt.calls().starts.iter().map(|s| s.0.clone()).collect();
    assert_eq!(names, ["side", "i2", "a"]);
}

#[tokio::test(start_paused = true)]
async fn a_pod_the_node_does_not_match_is_rejected_and_nothing_runs() {
    let h = Harness::start(
        pod_yaml(
            "  nodeSelector: {kubernetes.io/os: windows}\n  containers: [{name: a, image: 'busybox:1'}]\n",
        ),
        run_forever,
    );
    let pod = h
        .wait("failed", Duration::from_secs(10), |p| phase(p) == "Failed")
        .await;
    assert_eq!(pod["status"]["reason"], "NodeAffinity");
    assert_eq!(
        pod["status"]["message"],
        "Pod was rejected: Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
    );
    assert_eq!(
        h.events(),
        [
            "NodeAffinity Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
        ]
    );
    assert!(pod["status"]["containerStatuses"].is_null());
    assert!(pod["status"]["conditions"].is_null());
    assert_eq!(pod["status"]["qosClass"], "BestEffort");
    assert!(h.rt.sandboxes().is_empty());
    assert!(h.rt.calls().starts.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_status_is_published_while_a_sidecar_takes_its_grace_period_to_stop() {
    let h = Harness::start(
        pod_yaml(
            "  restartPolicy: Never\n  terminationGracePeriodSeconds: 30\n  initContainers: [{name: side, image: 'busybox:1', restartPolicy: Always}]\n  containers: [{name: app, image: 'busybox:1'}]\n",
        ),
        |name, _| match name {
            "app" => Script::Exit(Duration::from_secs(1), 0),
            _ => Script::IgnoreTerm,
        },
    );
    // Long before the sidecar's 30 s are over, the app is shown terminated and the
    // sidecar's Killing event is out; the pod is Running while its sidecar runs, as the
    // kubelet's getPhase has it.
    let pod = h
        .wait("the app's exit", Duration::from_secs(5), |p| {
            cs(p, "app")["state"]["terminated"]["exitCode"] == 0
        })
        .await;
    assert!(h.elapsed() < 5.0, "{}", h.elapsed());
    assert_eq!(phase(&pod), "Running");
    assert_eq!(cs(&pod, "app")["ready"], false);
    let stopping = h
        .wait(
            "the sidecar's Killing event",
            Duration::from_secs(5),
            |_| {
                h.events()
                    .iter()
                    .any(|e| e == "Killing Stopping container side")
            },
        )
        .await;
    assert!(cs(&stopping, "side")["state"]["running"].is_object());
    assert!(h.elapsed() < 5.0, "{}", h.elapsed());
    // Then the sidecar is killed at the end of the grace period.
    let done = h
        .wait("the sidecar killed", Duration::from_secs(40), |p| {
            cs(p, "side")["state"]["terminated"]["exitCode"] == 137
        })
        .await;
    assert_eq!(phase(&done), "Succeeded");
    assert!(h.elapsed() >= 30.0, "{}", h.elapsed());
}

#[tokio::test(start_paused = true)]
async fn probes_and_events_go_on_while_a_container_is_killed() {
    // Container a fails its liveness probe and ignores SIGTERM, so its kill takes the
    // whole 30 s; meanwhile b's readiness probe fails, and that is seen at once.
    let h = Harness::start_with(
        pod_yaml(
            "  terminationGracePeriodSeconds: 30\n  containers:\n  - name: a\n    image: 'busybox:1'\n    livenessProbe: {exec: {command: [alive]}, periodSeconds: 1, failureThreshold: 1}\n  - name: b\n    image: 'busybox:1'\n    readinessProbe: {exec: {command: [ready]}, periodSeconds: 1, failureThreshold: 1}\n",
        ),
        &[IMG],
        |name, _| match name {
            "a" => Script::IgnoreTerm,
            _ => Script::Run,
        },
        |rt| {
            // a fails from 2 s on; b is ready until 6 s, when a's kill is under way.
            let t0 = tokio::time::Instant::now();
            rt.on_exec(move |_, cmd| {
                let at = t0.elapsed().as_secs_f64();
                match cmd.first().map(String::as_str) {
                    Some("alive") if at >= 2.0 => (1, "not alive".into()),
                    Some("ready") if at >= 6.0 => (1, "not ready".into()),
                    _ => (0, String::new()),
                }
            })
        },
    );
    h.wait("b ready", Duration::from_secs(5), |p| {
        cs(p, "b")["ready"] == true
    })
    .await;
    h.wait("a's kill began", Duration::from_secs(10), |_| {
        h.events()
            .iter()
            .any(|e| e == "Killing Container a failed liveness probe, will be restarted")
    })
    .await;
    let began = h.elapsed();
    assert!(
        !h.events()
            .iter()
            .any(|e| e.starts_with("Unhealthy Readiness")),
        "b failed too early for this test"
    );
    let pod = h
        .wait("b's readiness failure", Duration::from_secs(10), |p| {
            cs(p, "b")["ready"] == false
                && h.events()
                    .iter()
                    .any(|e| e == "Unhealthy Readiness probe failed: not ready")
        })
        .await;
    assert!(
        h.elapsed() < began + 10.0,
        "seen only after the kill: {} vs {began}",
        h.elapsed()
    );
    assert!(
        cs(&pod, "a")["state"]["running"].is_object(),
        "a is still being killed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_kill_does_not_hold_back_the_other_containers() {
    // a fails its liveness probe and takes its whole 30 s to stop; meanwhile b crashes and
    // is restarted at once.
    let h = Harness::start_with(
        pod_yaml(
            "  terminationGracePeriodSeconds: 30\n  containers:\n  - name: a\n    image: 'busybox:1'\n    livenessProbe: {exec: {command: [alive]}, periodSeconds: 1, failureThreshold: 1, initialDelaySeconds: 2}\n  - name: b\n    image: 'busybox:1'\n",
        ),
        &[IMG],
        |name, attempt| match (name, attempt) {
            ("a", _) => Script::IgnoreTerm,
            ("b", 0) => Script::Exit(Duration::from_secs(5), 1),
            _ => Script::Run,
        },
        |rt| rt.on_exec(|_, _| (1, "not alive".into())),
    );
    let pod = h
        .wait("b restarted", Duration::from_secs(20), |p| {
            cs(p, "b")["restartCount"] == 1 && cs(p, "b")["state"]["running"].is_object()
        })
        .await;
    assert!(h.elapsed() < 15.0, "b waited for a's kill: {}", h.elapsed());
    assert!(
        cs(&pod, "a")["state"]["running"].is_object(),
        "a is still stopping"
    );
    assert_eq!(cs(&pod, "a")["restartCount"], 0);
    // a is restarted once its kill is over, and only once at a time.
    let pod = h
        .wait("a restarted", Duration::from_secs(60), |p| {
            cs(p, "a")["restartCount"] == 1
        })
        .await;
    assert!(h.elapsed() >= 30.0, "{}", h.elapsed());
    assert_eq!(cs(&pod, "a")["lastState"]["terminated"]["exitCode"], 137);
    let a_starts = h.rt.calls().starts.iter().filter(|s| s.0 == "a").count();
    assert_eq!(a_starts, 2);
}
