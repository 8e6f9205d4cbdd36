//! Pod cgroups as the kubelet lays them out: by QoS class under `kubepods`, with the
//! pod-level CPU shares, quota and memory limit its containers add up to.

use crate::harness::*;

/// The value of cgroup file `v1`/`v2` for cgroup `rel`, in whichever layout has it.
fn read(rel: &str, v1: &str, v2: &str) -> Option<String> {
    for d in peapod_oci::cgroup::dirs(rel) {
        for f in [v1, v2] {
            if let Ok(s) = std::fs::read_to_string(d.join(f)) {
                return Some(s.trim().to_string());
            }
        }
    }
    None
}

#[test]
fn pods_get_cgroups_by_qos_class_with_their_limits() {
    // The node's podPidsLimit applies to every pod's cgroup.
    let env = Env::with_config(0.2, 1.0, "pod_pids_limit = 40");
    let id = unique();
    let pod = |name: &str, resources: &str| {
        pod_yaml(
            &format!("{name}-{id}"),
            &format!(
                "  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, image: {IMAGE}, command: [sleep, '3600']{resources}}}\n  - {{name: d, image: {IMAGE}, command: [sleep, '3600']{resources}}}\n"
            ),
        )
    };
    env.apply_ok(&pod(
        "g",
        ", resources: {limits: {cpu: 250m, memory: 32Mi}}",
    ));
    env.apply_ok(&pod("b", ", resources: {requests: {cpu: 100m}}"));
    env.apply_ok(&pod("e", ""));
    let mut uids = Vec::new();
    for (name, qos, parent) in [
        ("g", "Guaranteed", "kubepods"),
        ("b", "Burstable", "kubepods/burstable"),
        ("e", "BestEffort", "kubepods/besteffort"),
    ] {
        let name = format!("{name}-{id}");
        let p = env.wait_phase(&name, "Running");
        assert_eq!(p["status"]["qosClass"], qos);
        let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
        let rel = format!("/peapod/{parent}/pod{uid}");
        // The containers' processes live below the pod's cgroup.
        let state = env.state(&name);
        let pid = state["containers"][0]["pid"].as_i64().unwrap();
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(cg.contains(&format!("{rel}/")), "{rel} not in\n{cg}");
        let describe = env.ok(&["describe", "pod", &name]);
        assert!(
            describe.contains(&format!("QoS Class:    {qos}")),
            "{describe}"
        );
        uids.push((rel, qos));
    }
    // Pod-level limits: the sum of the containers' (the kubelet's ResourceConfigForPod).
    let (g, _) = &uids[0];
    let shares = read(g, "cpu.shares", "cpu.weight").unwrap();
    assert!(shares == "512" || shares == "20", "{shares}");
    let quota = read(g, "cpu.cfs_quota_us", "cpu.max").unwrap();
    assert!(quota == "50000" || quota == "50000 100000", "{quota}");
    let mem = read(g, "memory.limit_in_bytes", "memory.max").unwrap();
    assert_eq!(mem, (64u64 << 20).to_string());
    // Burstable without limits: shares from the requests (2 × 100m), no quota, no limit.
    let (b, _) = &uids[1];
    let shares = read(b, "cpu.shares", "cpu.weight").unwrap();
    assert!(shares == "204" || shares == "8", "{shares}");
    let quota = read(b, "cpu.cfs_quota_us", "cpu.max").unwrap();
    assert!(quota == "-1" || quota.starts_with("max"), "{quota}");
    // BestEffort: the minimum shares.
    let (e, _) = &uids[2];
    let shares = read(e, "cpu.shares", "cpu.weight").unwrap();
    assert!(shares == "2" || shares == "1", "{shares}");
    // The QoS level, as the kubelet's QoS container manager sets it: kubepods has the
    // node's CPUs, besteffort the minimum, burstable at least this pod's requests (other
    // tests' burstable pods may be there too).
    let cpus = std::thread::available_parallelism().unwrap().get() as u64;
    let shares = |rel: &str| {
        let v = read(rel, "cpu.shares", "cpu.weight").unwrap();
        let n: u64 = v.parse().unwrap();
        if peapod_oci::cgroup::dirs(rel)
            .iter()
            .any(|d| d.join("cpu.shares").exists())
        {
            n
        } else {
            peapod_oci::cgroup::weight_to_shares(n)
        }
    };
    assert!(shares("/peapod/kubepods").abs_diff(cpus * 1024) <= 27);
    assert!(shares("/peapod/kubepods/besteffort") <= 27);
    assert!(shares("/peapod/kubepods/burstable") >= 204 - 27);
    // The pids limit holds: the pod already runs a few processes, so 60 more cannot start.
    assert_eq!(read(e, "pids.max", "pids.max").as_deref(), Some("40"));
    let out = env.run(&[
        "exec",
        &format!("e-{id}"),
        "-c",
        "c",
        "--",
        "sh",
        "-c",
        "n=0; for i in $(seq 60); do sleep 3 & n=$((n+1)); done; wait",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("can't fork") || err.contains("Resource temporarily unavailable"),
        "{err}"
    );

    for n in ["g", "b", "e"] {
        env.ok(&["delete", "pod", &format!("{n}-{id}")]);
    }
    for (rel, _) in &uids {
        assert!(
            peapod_oci::cgroup::dirs(rel).is_empty(),
            "{rel} left behind"
        );
    }
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

/// The eviction manager's local-storage limits: an emptyDir over its sizeLimit, a
/// container over its ephemeral-storage limit; the pod is Failed with reason Evicted and
/// the kubelet's message, its containers killed.
#[test]
fn pods_over_their_local_storage_limits_are_evicted() {
    let env = Env::new();
    let id = unique();
    let dir = format!("dir-{id}");
    env.apply_ok(&pod_yaml(
        &dir,
        &format!(
            "  containers:\n  - {{name: c, image: {IMAGE}, command: [sh, -c, 'head -c 8000000 /dev/zero > /cache/f; sleep 3600'], volumeMounts: [{{name: cache, mountPath: /cache}}]}}\n  volumes: [{{name: cache, emptyDir: {{sizeLimit: 5Mi}}}}]\n"
        ),
    ));
    let layer = format!("layer-{id}");
    env.apply_ok(&pod_yaml(
        &layer,
        &format!(
            "  containers:\n  - {{name: c, image: {IMAGE}, command: [sh, -c, 'head -c 6000000 /dev/zero > /big; sleep 3600'], resources: {{limits: {{ephemeral-storage: 2Mi}}}}}}\n"
        ),
    ));
    let evicted = |name: &str| {
        env.wait_for(name, std::time::Duration::from_secs(40), |p| {
            p["status"]["phase"] == "Failed" && cstatus(p, "c")["state"]["terminated"].is_object()
        })
    };
    let p = evicted(&dir);
    assert_eq!(p["status"]["reason"], "Evicted");
    assert_eq!(
        p["status"]["message"],
        "Usage of EmptyDir volume \"cache\" exceeds the limit \"5Mi\". "
    );
    assert_eq!(
        cstatus(&p, "c")["state"]["terminated"]["exitCode"],
        137,
        "{p}"
    );
    let disruption = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "DisruptionTarget")
        .cloned()
        .unwrap_or_default();
    assert_eq!(disruption["reason"], "TerminationByKubelet", "{p}");
    let p = evicted(&layer);
    assert_eq!(p["status"]["reason"], "Evicted");
    assert_eq!(
        p["status"]["message"],
        "Pod ephemeral local storage usage exceeds the total limit of containers 2Mi. "
    );
    let events = env.ok(&["get", "events"]);
    assert!(events.contains("Evicted"), "{events}");
    for n in [&dir, &layer] {
        env.ok(&["delete", "pod", n]);
    }
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

/// In-place resize (`InPlacePodVerticalScaling`): applying the same pod with other CPU and
/// memory changes the running containers' cgroups without a restart where `resizePolicy`
/// says NotRequired, restarts the container where it says RestartContainer, and reports
/// the new resources in the status; what the API server refuses is refused with its
/// messages, and a resize the node cannot hold stays pending as Infeasible.
#[test]
fn resize_in_place_follows_the_resize_policy() {
    let env = Env::new();
    let name = format!("resize-{}", unique());
    let manifest = |cpu: &str, mem: &str, image: &str| {
        pod_yaml(
            &name,
            &format!(
                "  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: {image}
    command: [sleep, '3600']
    resources: {{requests: {{cpu: 100m, memory: 32Mi}}, limits: {{cpu: {cpu}, memory: {mem}}}}}
  - name: cache
    image: {IMAGE}
    command: [sleep, '3600']
    resizePolicy: [{{resourceName: memory, restartPolicy: RestartContainer}}]
    resources: {{requests: {{memory: 32Mi}}, limits: {{memory: {mem}}}}}
"
            ),
        )
    };
    env.apply_ok(&manifest("200m", "64Mi", IMAGE));
    let p = env.wait_phase(&name, "Running");
    let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    let pod_rel = format!("/peapod/kubepods/burstable/pod{uid}");
    let id_of = |p: &serde_json::Value, c: &str| {
        cstatus(p, c)["containerID"]
            .as_str()
            .unwrap()
            .trim_start_matches("peapod://")
            .to_string()
    };
    let web = id_of(&p, "web");
    let quota = |rel: &str| read(rel, "cpu.cfs_quota_us", "cpu.max").unwrap();
    let memory = |rel: &str| read(rel, "memory.limit_in_bytes", "memory.max").unwrap();
    assert!(quota(&format!("{pod_rel}/{web}")).starts_with("20000"));
    assert_eq!(
        memory(&format!("{pod_rel}/{web}")),
        (64u64 << 20).to_string()
    );

    // Up: web in place, cache restarted for its memory.
    let out = env.apply(&manifest("400m", "128Mi", IMAGE));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("pod/{name} configured")));
    let p = env.wait_for(&name, std::time::Duration::from_secs(30), |p| {
        cstatus(p, "cache")["restartCount"] == 1
            && cstatus(p, "cache")["state"]["running"].is_object()
            && cstatus(p, "web")["resources"]["limits"]["cpu"] == "400m"
    });
    assert_eq!(id_of(&p, "web"), web, "web was not restarted");
    assert_eq!(cstatus(&p, "web")["restartCount"], 0);
    assert_eq!(cstatus(&p, "web")["resources"]["limits"]["memory"], "128Mi");
    assert_eq!(cstatus(&p, "web")["resources"]["requests"]["cpu"], "100m");
    assert!(quota(&format!("{pod_rel}/{web}")).starts_with("40000"));
    assert_eq!(
        memory(&format!("{pod_rel}/{web}")),
        (128u64 << 20).to_string()
    );
    let cache = id_of(&p, "cache");
    assert_eq!(
        memory(&format!("{pod_rel}/{cache}")),
        (128u64 << 20).to_string()
    );
    // The pod's cgroup holds both: 2 × 128Mi.
    assert_eq!(memory(&pod_rel), (256u64 << 20).to_string());
    assert_eq!(
        p["spec"]["containers"][0]["resources"]["limits"]["cpu"],
        "400m"
    );
    let describe = env.ok(&["describe", "pod", &name]);
    assert!(
        describe.contains("Container cache resize requires restart"),
        "{describe}"
    );

    // What the API server refuses.
    let err = |out: std::process::Output| String::from_utf8_lossy(&out.stderr).to_string();
    let e = err(env.apply(&manifest("400m", "64Mi", IMAGE)));
    assert!(
        e.contains("spec.containers[0].resources.limits[memory]: Forbidden: memory limits cannot be decreased unless resizePolicy is RestartContainer"),
        "{e}"
    );
    let e = err(env.apply(&manifest("400m", "128Mi", IMAGE).replace(
        "command: [sleep, '3600']\n    resources: {requests: {cpu: 100m",
        "command: [sleep, '3601']\n    resources: {requests: {cpu: 100m",
    )));
    assert!(
        e.contains("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"),
        "{e}"
    );

    // A new image is allowed: the container restarts with it, as its definition changed.
    let other = "localhost/peapod/other:1";
    env.load_image(other, &peapod_testkit::ImageOptions::default());
    let out = env.apply(&manifest("400m", "128Mi", other));
    assert!(out.status.success(), "{}", err(out));
    let p = env.wait_for(&name, std::time::Duration::from_secs(30), |p| {
        cstatus(p, "web")["restartCount"] == 1 && cstatus(p, "web")["state"]["running"].is_object()
    });
    assert_eq!(cstatus(&p, "web")["image"], other);
    assert_eq!(cstatus(&p, "cache")["restartCount"], 1);
    let web = id_of(&p, "web");
    let describe = env.ok(&["describe", "pod", &name]);
    assert!(
        describe.contains("Container web definition changed, will be restarted"),
        "{describe}"
    );

    // More CPU than the node has: pending, Infeasible; the containers keep what they have.
    let out = env.apply(&manifest("4000", "128Mi", other).replace("cpu: 100m", "cpu: 4000"));
    assert!(out.status.success(), "{}", err(out));
    let p = env.wait_for(&name, std::time::Duration::from_secs(10), |p| {
        p["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "PodResizePending"))
    });
    let cond = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "PodResizePending")
        .unwrap()
        .clone();
    assert_eq!(cond["reason"], "Infeasible");
    let msg = cond["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Node didn't have enough capacity: cpu, requested: 4000000, capacity: "),
        "{msg}"
    );
    assert_eq!(
        p["spec"]["containers"][0]["resources"]["limits"]["cpu"],
        "4000"
    );
    assert!(quota(&format!("{pod_rel}/{web}")).starts_with("40000"));

    env.ok(&["delete", "pod", &name]);
    assert!(peapod_oci::cgroup::dirs(&pod_rel).is_empty());
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

/// The kubelet's resource admission: a pod whose requests do not fit in what the node has
/// left (allocatable less what the other pods request) is Failed with reason `OutOfcpu`,
/// and one asking for hugepages the node has not reserved with `OutOfhugepages-2Mi`;
/// nothing of either is created.
#[test]
fn pods_that_do_not_fit_the_node_are_rejected() {
    let env = Env::new();
    let id = unique();
    let cpus = std::thread::available_parallelism().unwrap().get();
    let pod = |name: &str, resources: &str| {
        pod_yaml(
            &format!("{name}-{id}"),
            &format!(
                "  containers:\n  - {{name: c, image: {IMAGE}, command: [sleep, '3600'], resources: {resources}}}\n"
            ),
        )
    };
    // Most of the node's CPU, then more than is left.
    let most = cpus * 1000 - 100;
    env.apply_ok(&pod("big", &format!("{{requests: {{cpu: {most}m}}}}")));
    env.wait_phase(&format!("big-{id}"), "Running");
    env.apply_ok(&pod("more", "{requests: {cpu: 200m}}"));
    let p = env.wait_phase(&format!("more-{id}"), "Failed");
    assert_eq!(p["status"]["reason"], "OutOfcpu");
    assert_eq!(
        p["status"]["message"],
        format!(
            "Pod was rejected: Node didn't have enough resource: cpu, requested: 200, used: {most}, capacity: {}",
            cpus * 1000
        )
    );
    assert!(p["status"]["containerStatuses"][0]["containerID"].is_null());
    let events = env.ok(&["describe", "pod", &format!("more-{id}")]);
    assert!(events.contains("OutOfcpu"), "{events}");
    // Once the big one is gone, the same pod fits.
    env.ok(&["delete", "pod", &format!("big-{id}"), "--grace-period", "0"]);
    env.ok(&["delete", "pod", &format!("more-{id}")]);
    env.apply_ok(&pod("more", "{requests: {cpu: 200m}}"));
    env.wait_phase(&format!("more-{id}"), "Running");

    let reserved: u64 =
        std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")
            .map_or(0, |s| s.trim().parse().unwrap_or(0));
    if reserved < 1024 {
        env.apply_ok(&pod(
            "huge",
            "{limits: {hugepages-2Mi: 2Gi, memory: 64Mi, cpu: 10m}}",
        ));
        let p = env.wait_phase(&format!("huge-{id}"), "Failed");
        assert_eq!(p["status"]["reason"], "OutOfhugepages-2Mi");
        let msg = p["status"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with("Pod was rejected: Node didn't have enough resource: hugepages-2Mi, requested: 2147483648, used: 0, capacity: "),
            "{msg}"
        );
        env.ok(&["delete", "pod", &format!("huge-{id}")]);
    }
    env.ok(&["delete", "pod", &format!("more-{id}")]);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

/// A resize that fits the node but not beside the other pods is `Deferred`, with the
/// admission's message, and is given to the pod once another pod leaves room.
#[test]
fn a_resize_is_deferred_until_the_node_has_room() {
    let env = Env::new();
    let id = unique();
    let cpus = std::thread::available_parallelism().unwrap().get();
    let (big, small) = (format!("big-{id}"), format!("small-{id}"));
    let pod = |name: &str, cpu: &str| {
        pod_yaml(
            name,
            &format!(
                "  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, image: {IMAGE}, command: [sleep, '3600'], resources: {{requests: {{cpu: {cpu}}}}}}}\n"
            ),
        )
    };
    let most = cpus * 1000 - 500;
    env.apply_ok(&pod(&big, &format!("{most}m")));
    env.apply_ok(&pod(&small, "100m"));
    let p = env.wait_phase(&small, "Running");
    let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    let pod_rel = format!("/peapod/kubepods/burstable/pod{uid}");
    env.wait_phase(&big, "Running");
    let condition = |p: &serde_json::Value| {
        p["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "PodResizePending").cloned())
    };
    let out = env.apply(&pod(&small, "1000m"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = env.wait_for(&small, std::time::Duration::from_secs(10), |p| {
        condition(p).is_some()
    });
    let cond = condition(&p).unwrap();
    assert_eq!(cond["reason"], "Deferred");
    assert_eq!(
        cond["message"],
        format!(
            "Node didn't have enough resource: cpu, requested: 1000, used: {most}, capacity: {}",
            cpus * 1000
        )
    );
    // The pod keeps what it has meanwhile: 100m is 102 shares.
    let shares = || read(&pod_rel, "cpu.shares", "cpu.weight").unwrap();
    // (cpu.weight on cgroup v2: the kubelet's conversion of 102 shares.)
    assert!(["102", "4"].contains(&shares().as_str()), "{}", shares());
    assert_eq!(cstatus(&p, "c")["resources"]["requests"]["cpu"], "100m");

    // Once the big pod is gone, the resize is given and carried out in place.
    env.ok(&["delete", "pod", &big, "--grace-period", "0"]);
    let p = env.wait_for(&small, std::time::Duration::from_secs(15), |p| {
        condition(p).is_none() && cstatus(p, "c")["resources"]["requests"]["cpu"] == "1"
    });
    assert!(condition(&p).is_none(), "{p}");
    assert_eq!(cstatus(&p, "c")["restartCount"], 0);
    assert!(["1024", "39"].contains(&shares().as_str()), "{}", shares());
    env.ok(&["delete", "pod", &small]);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

/// An OOM kill decided at the pod's cgroup (here its limit is lowered below what a
/// container asks for, which the pod's own limits never do) is the victim container's:
/// OOMKilled with 137, as the kernel counts the kill in the victim's own memory cgroup.
#[test]
fn a_pod_level_oom_kill_is_the_victim_containers() {
    let env = Env::new();
    let name = format!("podoom-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: hog
    image: {IMAGE}
    command: [sh, -c, 'while [ ! -e /tmp/go ]; do sleep 0.1; done; exec dd if=/dev/zero of=/dev/null bs=96M count=1']
    resources: {{limits: {{memory: 256Mi}}}}
  - name: idle
    image: {IMAGE}
    command: [sleep, '3600']
    resources: {{limits: {{memory: 64Mi}}}}
"
        ),
    ));
    let p = env.wait_phase(&name, "Running");
    let uid = p["metadata"]["uid"].as_str().unwrap();
    let pod_rel = format!("/peapod/kubepods/burstable/pod{uid}");
    let limit = peapod_oci::cgroup::dirs(&pod_rel)
        .into_iter()
        .flat_map(|d| [d.join("memory.limit_in_bytes"), d.join("memory.max")])
        .find(|f| f.exists())
        .expect("the pod's memory cgroup");
    assert_eq!(
        std::fs::read_to_string(&limit).unwrap().trim(),
        (320u64 << 20).to_string(),
        "the pod's limit is its containers' sum"
    );
    std::fs::write(&limit, (48u64 << 20).to_string()).unwrap();
    let (code, out) = env.exec(&name, "hog", &["touch", "/tmp/go"]);
    assert_eq!(code, 0, "{out}");
    let p = env.wait_for(&name, std::time::Duration::from_secs(20), |p| {
        cstatus(p, "hog")["state"]["terminated"].is_object()
    });
    let t = &cstatus(&p, "hog")["state"]["terminated"];
    assert_eq!(t["reason"], "OOMKilled", "{t}");
    assert_eq!(t["exitCode"], 137, "{t}");
    assert!(cstatus(&p, "idle")["state"]["running"].is_object());
    env.ok(&["delete", "pod", &name]);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}
