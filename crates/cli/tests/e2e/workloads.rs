//! Deployments, ReplicaSets, DaemonSets and Jobs: their pods named, labelled and owned as
//! their controllers make them, kept at their replicas, rolled out, completed, and deleted
//! with everything they made.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

fn get(env: &Env, what: &str) -> Value {
    serde_json::from_str(&env.ok(&["get", what, "-o", "json"])).unwrap()
}

/// Polls `get WHAT -o json` until `pred` holds.
fn wait_get(env: &Env, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let v = get(env, what);
        if pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting on {what}:\n{}\npods: {}",
            serde_json::to_string_pretty(&v).unwrap(),
            env.ok(&["get", "pods"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn running_pods(v: &Value) -> Vec<Value> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .cloned()
        .collect()
}

fn deployment(replicas: u32, value: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, labels: {{app: web}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: {IMAGE}
        command: [sleep, '3600']
        env: [{{name: VERSION, value: '{value}'}}]
        readinessProbe: {{exec: {{command: ['true']}}, periodSeconds: 1}}
"
    )
}

#[test]
fn a_deployment_scales_heals_rolls_out_and_goes_with_its_pods() {
    let env = Env::new();
    let out = env.apply(&deployment(2, "one"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "deployment.apps/web created\n"
    );
    let pods = wait_get(&env, "pods", Duration::from_secs(30), |v| {
        running_pods(v).len() == 2
    });
    let rs = get(&env, "replicasets");
    let rs = &rs["items"][0];
    let rs_name = rs["metadata"]["name"].as_str().unwrap().to_string();
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(rs_name, format!("web-{hash}"));
    assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    for p in running_pods(&pods) {
        let name = p["metadata"]["name"].as_str().unwrap();
        let suffix = name.strip_prefix(&format!("{rs_name}-")).unwrap();
        assert_eq!(suffix.len(), 5, "{name}");
        assert_eq!(p["metadata"]["labels"]["pod-template-hash"], hash.as_str());
        assert_eq!(p["metadata"]["generateName"], format!("{rs_name}-"));
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(
            (owner["kind"].as_str(), owner["name"].as_str()),
            (Some("ReplicaSet"), Some(rs_name.as_str()))
        );
        assert_eq!(owner["controller"], true);
    }
    wait_get(&env, "deployment/web", Duration::from_secs(30), |d| {
        d["status"]["readyReplicas"] == 2 && d["status"]["availableReplicas"] == 2
    });
    assert_eq!(
        env.ok(&[
            "wait",
            "deployment/web",
            "--for=condition=Available",
            "--timeout=30s"
        ]),
        "deployment.apps/web condition met\n"
    );
    let d = env.ok(&["describe", "deployment/web"]);
    assert!(
        d.contains(
            "Replicas:               2 desired | 2 updated | 2 total | 2 available | 0 unavailable"
        ),
        "{d}"
    );
    assert!(
        d.contains(&format!(
            "NewReplicaSet:   {rs_name} (2/2 replicas created)"
        )),
        "{d}"
    );
    assert!(
        d.contains("  Available     True    MinimumReplicasAvailable"),
        "{d}"
    );
    let table = env.ok(&["get", "deployments"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("web    2/2     2            2"), "{table}");
    // The same manifest again changes nothing.
    let out = env.apply(&deployment(2, "one"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "deployment.apps/web unchanged\n"
    );

    // A deleted pod is replaced.
    let victim = running_pods(&pods)[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok(&["delete", "pod", &victim]);
    wait_get(&env, "pods", Duration::from_secs(30), |v| {
        let run = running_pods(v);
        run.len() == 2 && run.iter().all(|p| p["metadata"]["name"] != victim.as_str())
    });

    // Scaling up.
    assert_eq!(
        String::from_utf8_lossy(&env.apply(&deployment(3, "one")).stdout),
        "deployment.apps/web configured\n"
    );
    wait_get(&env, "pods", Duration::from_secs(30), |v| {
        running_pods(v).len() == 3
    });

    // A new template rolls out: a new ReplicaSet, every pod replaced, the old set at zero.
    env.apply_ok(&deployment(3, "two"));
    let d = wait_get(&env, "deployment/web", Duration::from_secs(60), |d| {
        d["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["reason"] == "NewReplicaSetAvailable"))
            && d["status"]["updatedReplicas"] == 3
            && d["metadata"]["generation"] == 3
    });
    assert_eq!(d["status"]["observedGeneration"], 3);
    let sets = get(&env, "replicasets");
    let sets = sets["items"].as_array().unwrap();
    assert_eq!(sets.len(), 2, "{sets:?}");
    let old = sets
        .iter()
        .find(|s| s["metadata"]["name"] == rs_name.as_str())
        .unwrap();
    assert_eq!(old["spec"]["replicas"], 0);
    let new = sets
        .iter()
        .find(|s| s["metadata"]["name"] != rs_name.as_str())
        .unwrap();
    assert_eq!(
        new["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    let pods = wait_get(&env, "pods", Duration::from_secs(30), |v| {
        v["items"].as_array().unwrap().len() == 3
    });
    for p in pods["items"].as_array().unwrap() {
        assert_ne!(p["metadata"]["labels"]["pod-template-hash"], hash.as_str());
        let name = p["metadata"]["name"].as_str().unwrap();
        let (code, out) = env.exec(name, "c", &["sh", "-c", "echo $VERSION"]);
        assert_eq!((code, out.as_str()), (0, "two\n"));
    }

    // exec takes a workload for one of its pods, as kubectl's do.
    let out = env.run(&["exec", "deploy/web", "--", "sh", "-c", "echo $VERSION"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "two\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("Found 3 pods, using pod/web-"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Deleting the Deployment takes its ReplicaSets and pods, and the controllers stop.
    assert_eq!(
        env.ok(&["delete", "deployment", "web"]),
        "deployment.apps \"web\" deleted\n"
    );
    assert!(env.pod_names().is_empty(), "{:?}", env.pod_names());
    assert!(env.ok(&["get", "rs", "-o", "name"]).is_empty());
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.controllers_running() {
        assert!(
            Instant::now() < deadline,
            "the controller process did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

fn job(name: &str, spec: &str, command: &str) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
{spec}  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: {IMAGE}
        command: [sh, -c, '{command}']
"
    )
}

#[test]
fn jobs_complete_their_completions_or_fail_at_their_backoff_limit() {
    let env = Env::new();
    env.apply_ok(&job(
        "count",
        "  completions: 3\n  parallelism: 2\n",
        "echo done",
    ));
    assert_eq!(
        env.ok(&[
            "wait",
            "--for=condition=complete",
            "job/count",
            "--timeout=60s"
        ]),
        "job.batch/count condition met\n"
    );
    // logs takes a Job for one of its pods, as kubectl's does.
    assert_eq!(env.ok(&["logs", "job/count"]), "done\n");
    let j = get(&env, "job/count");
    assert_eq!(j["status"]["succeeded"], 3);
    assert!(j["status"]["completionTime"].is_string());
    let uid = j["metadata"]["uid"].as_str().unwrap();
    let pods = env.ok(&[
        "get",
        "pods",
        "-l",
        &format!("batch.kubernetes.io/controller-uid={uid}"),
        "-o",
        "json",
    ]);
    let pods: Value = serde_json::from_str(&pods).unwrap();
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 3);
    for p in pods {
        assert_eq!(p["status"]["phase"], "Succeeded");
        assert_eq!(p["metadata"]["labels"]["job-name"], "count");
        assert!(
            p["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("count-")
        );
        let name = p["metadata"]["name"].as_str().unwrap();
        assert_eq!(env.ok(&["logs", name]), "done\n");
    }
    let d = env.ok(&["describe", "job", "count"]);
    assert!(
        d.contains("Pods Statuses:      0 Active (0 Ready) / 3 Succeeded / 0 Failed"),
        "{d}"
    );
    assert!(
        d.contains("  Complete             True    CompletionsReached"),
        "{d}"
    );
    // ConfigMaps and Secrets are described as kubectl describes them.
    env.apply_ok("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: game}\ndata: {lives: '3'}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: secret}\n");
    assert_eq!(
        env.ok(&["describe", "cm", "game"]),
        "Name:         game\nNamespace:    default\nLabels:       <none>\nAnnotations:  <none>\n\nData\n====\nlives:\n----\n3\n\n\nBinaryData\n====\n\nEvents:  <none>\n"
    );
    assert!(
        env.ok(&["describe", "secret/db"])
            .ends_with("Type:  Opaque\n\nData\n====\npassword:  6 bytes\n")
    );
    let table = env.ok(&["get", "jobs"]);
    assert!(table.contains("count   Complete   3/3"), "{table}");

    // Each failure is retried after the Job controller's back-off (10 s after the first),
    // until more than backoffLimit pods failed.
    env.apply_ok(&job("fails", "  backoffLimit: 1\n", "exit 3"));
    let j = wait_get(&env, "job/fails", Duration::from_secs(60), |j| {
        j["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Failed"))
    });
    let failed = j["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .unwrap()
        .clone();
    assert_eq!(failed["reason"], "BackoffLimitExceeded");
    assert_eq!(
        failed["message"],
        "Job has reached the specified backoff limit"
    );
    assert_eq!(j["status"]["failed"], 2);
    assert_eq!(j["status"]["active"], 0);

    // Deleting a Job takes its pods.
    env.ok(&["delete", "job/count", "jobs/fails"]);
    assert!(env.pod_names().is_empty(), "{:?}", env.pod_names());
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[test]
fn a_daemon_set_runs_one_pod_on_a_matching_node_and_a_replica_set_runs_alone() {
    let env = Env::new();
    let spec = |kind: &str, extra: &str| {
        format!(
            "apiVersion: apps/v1
kind: {kind}
metadata: {{name: agent}}
spec:
{extra}  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{{name: c, image: {IMAGE}, command: [sleep, '3600']}}]
"
        )
    };
    env.apply_ok(&spec("DaemonSet", ""));
    let ds = wait_get(&env, "daemonset/agent", Duration::from_secs(30), |d| {
        d["status"]["numberReady"] == 1
    });
    assert_eq!(ds["status"]["desiredNumberScheduled"], 1);
    let pods = get(&env, "pods");
    let p = &pods["items"][0];
    assert!(p["metadata"]["labels"]["controller-revision-hash"].is_string());
    assert_eq!(p["metadata"]["labels"]["pod-template-generation"], "1");
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
    // A node selector this node does not match: no pod.
    env.apply_ok(&spec("DaemonSet", "").replace(
        "      terminationGracePeriodSeconds",
        "      nodeSelector: {disktype: ssd}\n      terminationGracePeriodSeconds",
    ));
    wait_get(&env, "daemonset/agent", Duration::from_secs(30), |d| {
        d["status"]["desiredNumberScheduled"] == 0 && d["status"]["currentNumberScheduled"] == 0
    });
    let table = env.ok(&["get", "ds"]);
    assert!(table.contains("disktype=ssd"), "{table}");
    env.ok(&["delete", "ds", "agent"]);

    env.apply_ok(&spec("ReplicaSet", "  replicas: 2\n"));
    wait_get(&env, "replicaset/agent", Duration::from_secs(30), |r| {
        r["status"]["readyReplicas"] == 2
    });
    let table = env.ok(&["get", "rs"]);
    assert!(table.contains("agent   2         2         2"), "{table}");
    env.ok(&["delete", "-f", &{
        let f = env.path().join("rs.yaml");
        std::fs::write(&f, spec("ReplicaSet", "  replicas: 2\n")).unwrap();
        f.to_string_lossy().into_owned()
    }]);
    assert!(env.pod_names().is_empty(), "{:?}", env.pod_names());
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}
