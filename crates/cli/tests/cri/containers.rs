//! The container RPCs: create, start, status, list with filters, logs in the CRI format,
//! stop with its timeout, ExecSync, remove; and what `apply`'s pods and CRI see of each
//! other.

use std::time::{Duration, Instant};

use peapod_cri::proto as pb;

use crate::harness::*;

async fn sandbox(s: &Server, rt: &mut Rt, name: &str) -> (String, pb::PodSandboxConfig) {
    let config = s.sandbox_config(name, &unique());
    let id = rt
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    (id, config)
}

async fn create(
    rt: &mut Rt,
    sb: &str,
    config: &pb::PodSandboxConfig,
    c: pb::ContainerConfig,
) -> String {
    rt.create_container(pb::CreateContainerRequest {
        pod_sandbox_id: sb.into(),
        config: Some(c),
        sandbox_config: Some(config.clone()),
    })
    .await
    .unwrap()
    .into_inner()
    .container_id
}

#[tokio::test(flavor = "current_thread")]
async fn containers_run_log_exec_stop_and_go() {
    let s = Server::start().await;
    let mut rt = s.runtime().await.unwrap();
    let (sb, config) = sandbox(&s, &mut rt, "app").await;
    let mut c = container(
        "main",
        "echo hello; echo oops >&2; trap '' TERM; while true; do sleep 0.1; done",
    );
    c.envs = vec![pb::KeyValue {
        key: "GREETING".into(),
        value: b"hi".to_vec(),
    }];
    c.annotations = [("a".to_string(), "1".to_string())].into();
    let id = create(&mut rt, &sb, &config, c).await;
    let st = wait_state(&mut rt, &id, pb::ContainerState::ContainerCreated).await;
    assert_eq!(st.metadata.unwrap().name, "main");
    rt.start_container(pb::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    let st = wait_state(&mut rt, &id, pb::ContainerState::ContainerRunning).await;
    assert!(st.started_at > 0);
    assert_eq!(st.annotations["a"], "1");
    assert_eq!(st.labels["container"], "main");
    assert!(st.image_id.starts_with("sha256:"), "{}", st.image_id);
    let log_path = s
        .path()
        .join("logs")
        .join(&config.metadata.as_ref().unwrap().uid)
        .join("main/0.log");
    assert_eq!(st.log_path, log_path.display().to_string());

    // ExecSync: output, exit code, the container's environment, and a timeout.
    let r = rt
        .exec_sync(pb::ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec![
                "sh".into(),
                "-c".into(),
                "echo $GREETING; echo err >&2; exit 3".into(),
            ],
            timeout: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.stdout.as_slice(), r.stderr.as_slice(), r.exit_code),
        (&b"hi\n"[..], &b"err\n"[..], 3)
    );
    let t = Instant::now();
    let e = rt
        .exec_sync(pb::ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["sleep".into(), "30".into()],
            timeout: 1,
        })
        .await
        .unwrap_err();
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the timeout did not hold"
    );
    assert!(e.message().contains("timed out"), "{e:?}");

    // Filters.
    let list = |f: pb::ContainerFilter| {
        let mut rt = rt.clone();
        async move {
            rt.list_containers(pb::ListContainersRequest { filter: Some(f) })
                .await
                .unwrap()
                .into_inner()
                .containers
        }
    };
    let by_sb = list(pb::ContainerFilter {
        pod_sandbox_id: sb.clone(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_sb.len(), 1);
    assert_eq!(by_sb[0].pod_sandbox_id, sb);
    let running = pb::ContainerStateValue {
        state: pb::ContainerState::ContainerRunning as i32,
    };
    assert_eq!(
        list(pb::ContainerFilter {
            state: Some(running),
            ..Default::default()
        })
        .await
        .len(),
        1
    );
    let other = pb::ContainerFilter {
        label_selector: [("container".to_string(), "nope".to_string())].into(),
        ..Default::default()
    };
    assert!(list(other).await.is_empty());

    // A stop that the process ignores ends with SIGKILL after the timeout.
    let t = Instant::now();
    rt.stop_container(pb::StopContainerRequest {
        container_id: id.clone(),
        timeout: 1,
    })
    .await
    .unwrap();
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    let st = wait_state(&mut rt, &id, pb::ContainerState::ContainerExited).await;
    assert_eq!(st.exit_code, 137);
    assert!(st.finished_at >= st.started_at);
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines.iter().any(|l| l.ends_with(" stdout F hello")),
        "{log}"
    );
    assert!(lines.iter().any(|l| l.ends_with(" stderr F oops")), "{log}");
    // Idempotent stop and remove.
    rt.stop_container(pb::StopContainerRequest {
        container_id: id.clone(),
        timeout: 0,
    })
    .await
    .unwrap();
    for _ in 0..2 {
        rt.remove_container(pb::RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
    }
    let e = rt
        .container_status(pb::ContainerStatusRequest {
            container_id: id,
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    rt.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: sb })
        .await
        .unwrap();
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

#[tokio::test(flavor = "current_thread")]
async fn exit_codes_reasons_and_removal_with_the_sandbox() {
    let s = Server::start().await;
    let mut rt = s.runtime().await.unwrap();
    let (sb, config) = sandbox(&s, &mut rt, "exits").await;
    let ok = create(&mut rt, &sb, &config, container("ok", "true")).await;
    let bad = create(&mut rt, &sb, &config, container("bad", "exit 7")).await;
    for id in [&ok, &bad] {
        rt.start_container(pb::StartContainerRequest {
            container_id: id.to_string(),
        })
        .await
        .unwrap();
    }
    let st = wait_state(&mut rt, &ok, pb::ContainerState::ContainerExited).await;
    assert_eq!((st.exit_code, st.reason.as_str()), (0, "Completed"));
    let st = wait_state(&mut rt, &bad, pb::ContainerState::ContainerExited).await;
    assert_eq!((st.exit_code, st.reason.as_str()), (7, "Error"));
    // A missing image is NotFound; starting twice is refused.
    let mut missing = container("m", "true");
    missing.image = Some(pb::ImageSpec {
        image: "localhost/none:1".into(),
        ..Default::default()
    });
    let e = rt
        .create_container(pb::CreateContainerRequest {
            pod_sandbox_id: sb.clone(),
            config: Some(missing),
            sandbox_config: Some(config.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    let e = rt
        .start_container(pb::StartContainerRequest {
            container_id: ok.clone(),
        })
        .await
        .unwrap_err();
    assert_ne!(e.code(), tonic::Code::Ok);
    // Removing the sandbox removes its containers.
    rt.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: sb })
        .await
        .unwrap();
    let left = rt
        .list_containers(pb::ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert!(left.is_empty(), "{left:?}");
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

#[tokio::test(flavor = "current_thread")]
async fn apply_pods_and_cri_sandboxes_do_not_see_each_other() {
    let s = Server::start().await;
    let mut rt = s.runtime().await.unwrap();
    let (sb, _) = sandbox(&s, &mut rt, "cri-side").await;
    let manifest = s.path().join("pod.yaml");
    let name = format!("apply-side-{}", unique());
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - {{name: c, image: {IMAGE}, command: [sleep, '3600']}}\n"
        ),
    )
    .unwrap();
    let peapod = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_peapod"))
            .arg("--config")
            .arg(&s.config)
            .args(args)
            .output()
            .unwrap()
    };
    let out = peapod(&["apply", "-f", manifest.to_str().unwrap(), "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = rt
        .list_pod_sandbox(pb::ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(listed.len(), 1, "the CRI sees apply's pod: {listed:?}");
    assert_eq!(listed[0].id, sb);
    let containers = rt
        .list_containers(pb::ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert!(containers.is_empty(), "{containers:?}");
    let out = peapod(&["get", "pods", "-A", "-o", "name"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("pod/{name}")
    );
    assert!(
        peapod(&["delete", "pod", &name, "--force"])
            .status
            .success()
    );
    rt.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: sb })
        .await
        .unwrap();
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

#[tokio::test(flavor = "current_thread")]
async fn without_a_host_name_or_a_log_path() {
    let s = Server::start().await;
    let mut rt = s.runtime().await.unwrap();
    let mut config = s.sandbox_config("bare", &unique());
    config.hostname.clear();
    config.log_directory.clear();
    let sb = rt
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    let mut c = container("quiet", "echo unkept; sleep 3600");
    c.log_path.clear();
    let id = create(&mut rt, &sb, &config, c).await;
    rt.start_container(pb::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    let st = wait_state(&mut rt, &id, pb::ContainerState::ContainerRunning).await;
    assert_eq!(st.log_path, "", "no log is kept");
    let r = rt
        .exec_sync(pb::ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec![
                "sh".into(),
                "-c".into(),
                "hostname; cat /etc/hostname".into(),
            ],
            timeout: 10,
        })
        .await
        .unwrap()
        .into_inner();
    let node = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        format!("{node}\n{node}\n"),
        "the pod has the node's host name"
    );
    // A host name no kernel takes is refused up front, and leaves nothing.
    let mut long = s.sandbox_config("long", &unique());
    long.hostname = "h".repeat(65);
    let e = rt
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(long),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("longer than 64"), "{e:?}");
    rt.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: sb })
        .await
        .unwrap();
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

#[tokio::test(flavor = "current_thread")]
async fn stats_of_containers_and_sandboxes() {
    let s = Server::start().await;
    let mut rt = s.runtime().await.unwrap();
    let (sb, config) = sandbox(&s, &mut rt, "stats").await;
    // Some CPU time, some memory, a file in the writable layer.
    let c = container(
        "busy",
        "dd if=/dev/zero of=/blob bs=1k count=256 2>/dev/null; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 3600",
    );
    let id = create(&mut rt, &sb, &config, c).await;
    rt.start_container(pb::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    wait_state(&mut rt, &id, pb::ContainerState::ContainerRunning).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let stats = loop {
        let st = rt
            .container_stats(pb::ContainerStatsRequest {
                container_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .stats
            .unwrap();
        let layer = st
            .writable_layer
            .as_ref()
            .unwrap()
            .used_bytes
            .unwrap()
            .value;
        if layer >= 256 * 1024 || Instant::now() > deadline {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(stats.attributes.as_ref().unwrap().id, id);
    assert_eq!(
        stats.attributes.as_ref().unwrap().labels["container"],
        "busy"
    );
    let cpu = stats.cpu.unwrap();
    assert!(cpu.timestamp > 0);
    assert!(cpu.usage_core_nano_seconds.unwrap().value > 0);
    let mem = stats.memory.unwrap();
    assert!(mem.working_set_bytes.unwrap().value > 0);
    assert!(mem.usage_bytes.unwrap().value >= mem.working_set_bytes.unwrap().value);
    let layer = stats.writable_layer.unwrap();
    assert!(layer.used_bytes.unwrap().value >= 256 * 1024, "{layer:?}");
    // A second sample has a rate.
    let again = rt
        .container_stats(pb::ContainerStatsRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    assert!(again.cpu.unwrap().usage_nano_cores.is_some());
    // Lists, by label.
    let list = |sel: &str| {
        let mut rt = rt.clone();
        let sel = sel.to_string();
        async move {
            rt.list_container_stats(pb::ListContainerStatsRequest {
                filter: Some(pb::ContainerStatsFilter {
                    label_selector: [("container".to_string(), sel)].into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .stats
        }
    };
    assert_eq!(list("busy").await.len(), 1);
    assert!(list("other").await.is_empty());
    // The sandbox: everything in it, its processes and its interface.
    let ps = rt
        .pod_sandbox_stats(pb::PodSandboxStatsRequest {
            pod_sandbox_id: sb.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    let linux = ps.linux.unwrap();
    assert!(linux.cpu.unwrap().usage_core_nano_seconds.unwrap().value > 0);
    assert!(
        linux.process.unwrap().process_count.unwrap().value >= 2,
        "infra and sleep"
    );
    let net = linux.network.unwrap();
    assert_eq!(net.default_interface.unwrap().name, "eth0");
    assert_eq!(linux.containers.len(), 1);
    let all = rt
        .list_pod_sandbox_stats(pb::ListPodSandboxStatsRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert!(all.iter().any(|p| p.attributes.as_ref().unwrap().id == sb));
    rt.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: sb })
        .await
        .unwrap();
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

#[tokio::test(flavor = "current_thread")]
async fn log_rotation_and_mount_propagation() {
    let s = Server::start().await;
    let mut rt = s.runtime().await.unwrap();
    let (sb, config) = sandbox(&s, &mut rt, "rotate").await;

    // A host directory made a shared mount, as a node's kubelet directory is. The guard
    // unmounts what the test mounted, even when it fails.
    struct Unmount(Vec<std::path::PathBuf>);
    impl Drop for Unmount {
        fn drop(&mut self) {
            for p in self.0.iter().rev() {
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(p)
                    .status();
            }
        }
    }
    let host = s.path().join(format!("shared-{}", unique()));
    std::fs::create_dir_all(&host).unwrap();
    let mount = |args: &[&str]| {
        let ok = std::process::Command::new("mount")
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount {args:?}");
    };
    let h = host.to_str().unwrap();
    let private = s.path().join(format!("private-{}", unique()));
    let sub = host.join("sub");
    let _guard = Unmount(vec![host.clone(), private.clone(), sub.clone()]);
    mount(&["--bind", h, h]);
    mount(&["--make-rshared", h]);
    // And one made private, whatever the host's root is.
    std::fs::create_dir_all(&private).unwrap();
    let p = private.to_str().unwrap();
    mount(&["--bind", p, p]);
    mount(&["--make-private", p]);

    let mut c = container(
        "writer",
        "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.1; done",
    );
    let mount_of = |path: &std::path::Path, at: &str, p: pb::MountPropagation| pb::Mount {
        container_path: at.into(),
        host_path: path.display().to_string(),
        propagation: p as i32,
        ..Default::default()
    };
    c.mounts = vec![mount_of(
        &host,
        "/shared",
        pb::MountPropagation::PropagationHostToContainer,
    )];
    let id = create(&mut rt, &sb, &config, c).await;
    rt.start_container(pb::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    let st = wait_state(&mut rt, &id, pb::ContainerState::ContainerRunning).await;
    assert_eq!(
        st.mounts[0].propagation,
        pb::MountPropagation::PropagationHostToContainer as i32
    );

    // A mount made on the host after the start reaches the container.
    std::fs::create_dir_all(&sub).unwrap();
    mount(&["-t", "tmpfs", "late", sub.to_str().unwrap()]);
    std::fs::write(sub.join("seen"), "from the host").unwrap();
    let r = rt
        .exec_sync(pb::ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["cat".into(), "/shared/sub/seen".into()],
            timeout: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(String::from_utf8_lossy(&r.stdout), "from the host");

    // Rotation: the log is renamed, then reopened; new lines go to a new file.
    let log = std::path::PathBuf::from(&st.log_path);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).unwrap();
    rt.reopen_container_log(pb::ReopenContainerLogRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let old = std::fs::read_to_string(&rotated).unwrap();
    let new = std::fs::read_to_string(&log).unwrap();
    assert!(old.contains(" stdout F line0\n"), "{old}");
    assert!(!new.is_empty() && !new.contains(" line0\n"), "{new}");
    let last_old: u32 = old
        .lines()
        .last()
        .unwrap()
        .rsplit("line")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let first_new: u32 = new
        .lines()
        .next()
        .unwrap()
        .rsplit("line")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(first_new, last_old + 1, "no line is lost or repeated");

    // Bidirectional needs a shared host side; the message names the path.
    let mut c = container("both", "sleep 3600");
    c.mounts = vec![mount_of(
        &private,
        "/p",
        pb::MountPropagation::PropagationBidirectional,
    )];
    let e = rt
        .create_container(pb::CreateContainerRequest {
            pod_sandbox_id: sb.clone(),
            config: Some(c),
            sandbox_config: Some(config.clone()),
        })
        .await
        .unwrap_err();
    assert!(
        e.message().contains(&format!(
            "path {} is mounted on {} but it is not a shared mount",
            private.display(),
            private.display()
        )),
        "{e:?}"
    );
    let listed = rt
        .list_containers(pb::ListContainersRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(listed.len(), 1, "nothing is left of the refused container");

    // Stopped containers' logs cannot be reopened.
    rt.stop_container(pb::StopContainerRequest {
        container_id: id.clone(),
        timeout: 0,
    })
    .await
    .unwrap();
    let e = rt
        .reopen_container_log(pb::ReopenContainerLogRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("not running"), "{e:?}");

    rt.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: sb })
        .await
        .unwrap();
    drop(_guard);
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

#[tokio::test(flavor = "current_thread")]
async fn resources_are_updated_in_place() {
    let s = Server::start().await;
    let mut rt = s.runtime().await.unwrap();
    let (sb, config) = sandbox(&s, &mut rt, "resize").await;
    let mut c = container("app", "sleep 3600");
    c.linux = Some(pb::LinuxContainerConfig {
        resources: Some(pb::LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            cpu_shares: 512,
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = create(&mut rt, &sb, &config, c).await;
    rt.start_container(pb::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    let started = wait_state(&mut rt, &id, pb::ContainerState::ContainerRunning)
        .await
        .started_at;
    // The container's cgroup, read on the host (v1 or v2, whichever the host has).
    let r = rt
        .exec_sync(pb::ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["cat".into(), "/proc/self/cgroup".into()],
            timeout: 10,
        })
        .await
        .unwrap()
        .into_inner();
    let cgroups = String::from_utf8_lossy(&r.stdout).into_owned();
    let v1 = |ctrl: &str| {
        cgroups.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls
                .split(',')
                .any(|c| c == ctrl)
                .then(|| format!("/sys/fs/cgroup/{ctrl}{path}"))
        })
    };
    let v2 = cgroups
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| format!("/sys/fs/cgroup{p}"));
    let (memory, cpu) = match (v1("memory"), v1("cpu")) {
        (Some(m), Some(c)) => (
            format!("{m}/memory.limit_in_bytes"),
            format!("{c}/cpu.cfs_quota_us"),
        ),
        _ => {
            let d = v2.unwrap();
            (format!("{d}/memory.max"), format!("{d}/cpu.max"))
        }
    };
    let limits = |_: &mut Rt| {
        let (memory, cpu) = (memory.clone(), cpu.clone());
        async move {
            let m = std::fs::read_to_string(&memory).unwrap();
            let c = std::fs::read_to_string(&cpu).unwrap();
            format!("{}\n{}\n", m.trim(), c.split_whitespace().next().unwrap())
        }
    };
    let before = limits(&mut rt).await;
    assert!(before.starts_with(&format!("{}\n", 64 << 20)), "{before}");
    rt.update_container_resources(pb::UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(pb::LinuxContainerResources {
            memory_limit_in_bytes: 128 << 20,
            cpu_period: 100_000,
            cpu_quota: 50_000,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let after = limits(&mut rt).await;
    assert_eq!(after, format!("{}\n50000\n", 128 << 20));
    // Still the same process: nothing was restarted.
    let st = wait_state(&mut rt, &id, pb::ContainerState::ContainerRunning).await;
    assert_eq!(st.started_at, started);
    // ContainerStatus tells the resources it runs with now.
    let linux = st
        .resources
        .and_then(|r| r.linux)
        .expect("resources in the status");
    assert_eq!(linux.memory_limit_in_bytes, 128 << 20);
    assert_eq!((linux.cpu_quota, linux.cpu_period), (50_000, 100_000));
    let e = rt
        .update_container_resources(pb::UpdateContainerResourcesRequest {
            container_id: "nonexistent".into(),
            linux: Some(Default::default()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    rt.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: sb })
        .await
        .unwrap();
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

#[tokio::test(flavor = "current_thread")]
async fn container_events_are_streamed() {
    let s = Server::start().await;
    let mut rt = s.runtime().await.unwrap();
    let mut events = rt
        .get_container_events(pb::GetEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    let (sb, config) = sandbox(&s, &mut rt, "events").await;
    let id = create(&mut rt, &sb, &config, container("short", "exit 3")).await;
    rt.start_container(pb::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    wait_state(&mut rt, &id, pb::ContainerState::ContainerExited).await;
    rt.remove_container(pb::RemoveContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    use pb::ContainerEventType as E;
    let mut seen: Vec<(String, E)> = Vec::new();
    let want_container = [
        E::ContainerCreatedEvent,
        E::ContainerStartedEvent,
        E::ContainerStoppedEvent,
        E::ContainerDeletedEvent,
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.iter().filter(|(i, _)| *i == id).count() < want_container.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, events.message())
            .await
            .unwrap_or_else(|_| panic!("events in time; seen {seen:?}"))
            .unwrap()
            .unwrap();
        let kind = E::try_from(ev.container_event_type).unwrap();
        if ev.container_id == id && kind == E::ContainerStoppedEvent {
            // (A removal seen by the lister may come before the status is read.)
            if let Some(st) = ev.containers_statuses.iter().find(|c| c.id == id) {
                assert_eq!(st.exit_code, 3);
            }
            assert_eq!(ev.pod_sandbox_status.as_ref().unwrap().id, sb);
        }
        seen.push((ev.container_id, kind));
    }
    let of = |x: &str| -> Vec<E> {
        seen.iter()
            .filter(|(i, _)| i == x)
            .map(|(_, e)| *e)
            .collect()
    };
    assert_eq!(of(&id), want_container);
    assert_eq!(
        of(&sb)[..2],
        [E::ContainerCreatedEvent, E::ContainerStartedEvent],
        "the sandbox's own events"
    );
    rt.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: sb })
        .await
        .unwrap();
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

#[tokio::test(flavor = "current_thread")]
async fn host_devices_with_their_permissions() {
    let s = Server::start().await;
    let mut rt = s.runtime().await.unwrap();
    let (sb, config) = sandbox(&s, &mut rt, "devices").await;
    // The kernel's log device: writable by root, so only the device cgroup rule made from
    // the permissions decides whether a write may open it.
    for (name, perms, want) in [("ro", "r", "c\ndenied\n"), ("rw", "rw", "c\nwritten\n")] {
        let mut c = container(name, "sleep 3600");
        c.devices = vec![pb::Device {
            container_path: "/dev/hostkmsg".into(),
            host_path: "/dev/kmsg".into(),
            permissions: perms.into(),
        }];
        let id = create(&mut rt, &sb, &config, c).await;
        rt.start_container(pb::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
        wait_state(&mut rt, &id, pb::ContainerState::ContainerRunning).await;
        let r = rt
            .exec_sync(pb::ExecSyncRequest {
                container_id: id.clone(),
                cmd: vec![
                    "sh".into(),
                    "-c".into(),
                    "ls -l /dev/hostkmsg | cut -c1; \
                     (echo peapod-device-test > /dev/hostkmsg) 2>/dev/null && echo written || echo denied"
                        .into(),
                ],
                timeout: 10,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(String::from_utf8_lossy(&r.stdout), want, "{perms}");
    }
    // Not a device: refused at creation, naming the path.
    let mut c = container("notdev", "true");
    c.devices = vec![pb::Device {
        container_path: "/dev/x".into(),
        host_path: "/etc/hostname".into(),
        permissions: "rwm".into(),
    }];
    let e = rt
        .create_container(pb::CreateContainerRequest {
            pod_sandbox_id: sb.clone(),
            config: Some(c),
            sandbox_config: Some(config.clone()),
        })
        .await
        .unwrap_err();
    assert!(
        e.message().contains("/etc/hostname is not a device node"),
        "{e:?}"
    );
    rt.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: sb })
        .await
        .unwrap();
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

#[tokio::test(flavor = "current_thread")]
async fn recursive_read_only_mounts() {
    let s = Server::start().await;
    let mut rt = s.runtime().await.unwrap();
    let (sb, config) = sandbox(&s, &mut rt, "rro").await;
    // A host directory with a mount below it.
    let host = s.path().join(format!("rro-{}", unique()));
    let sub = host.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "rro-test", sub.to_str().unwrap()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let _guard = Unmount(sub.clone());
    let mount = |rro: bool| pb::Mount {
        container_path: "/data".into(),
        host_path: host.display().to_string(),
        readonly: true,
        recursive_read_only: rro,
        ..Default::default()
    };
    for (name, rro, want) in [
        ("plain", false, "top: no\nsub: yes\n"),
        ("rec", true, "top: no\nsub: no\n"),
    ] {
        let mut c = container(name, "sleep 3600");
        c.mounts = vec![mount(rro)];
        let id = create(&mut rt, &sb, &config, c).await;
        rt.start_container(pb::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
        let st = wait_state(&mut rt, &id, pb::ContainerState::ContainerRunning).await;
        assert_eq!(st.mounts[0].recursive_read_only, rro);
        let r = rt
            .exec_sync(pb::ExecSyncRequest {
                container_id: id.clone(),
                cmd: vec![
                    "sh".into(),
                    "-c".into(),
                    "for d in top sub; do p=/data; [ $d = sub ] && p=/data/sub; \
                     (touch $p/f 2>/dev/null && echo \"$d: yes\") || echo \"$d: no\"; done"
                        .into(),
                ],
                timeout: 10,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(String::from_utf8_lossy(&r.stdout), want, "{name}");
    }
    // Recursive read-only needs a read-only mount.
    let mut c = container("bad", "true");
    c.mounts = vec![pb::Mount {
        readonly: false,
        ..mount(true)
    }];
    let e = rt
        .create_container(pb::CreateContainerRequest {
            pod_sandbox_id: sb.clone(),
            config: Some(c),
            sandbox_config: Some(config.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    // The runtime says it can.
    assert!(handler_features(&mut rt).await.recursive_read_only_mounts);
    rt.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: sb })
        .await
        .unwrap();
    drop(_guard);
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

#[tokio::test(flavor = "current_thread")]
async fn supplemental_groups_policy_and_the_container_user() {
    let s = Server::start().await;
    let mut rt = s.runtime().await.unwrap();
    let status = rt
        .status(pb::StatusRequest { verbose: false })
        .await
        .unwrap()
        .into_inner();
    assert!(status.features.unwrap().supplemental_groups_policy);
    let (sb, config) = sandbox(&s, &mut rt, "groups").await;
    // The image's /etc/group makes user 1000 a member of group 50000.
    for (name, policy, want) in [
        (
            "merge",
            pb::SupplementalGroupsPolicy::Merge,
            vec![1000, 50000, 1234],
        ),
        (
            "strict",
            pb::SupplementalGroupsPolicy::Strict,
            vec![1000, 1234],
        ),
    ] {
        let mut c = container(name, "sleep 3600");
        let sc = c
            .linux
            .get_or_insert_default()
            .security_context
            .get_or_insert_default();
        sc.run_as_user = Some(pb::Int64Value { value: 1000 });
        sc.supplemental_groups = vec![1234];
        sc.set_supplemental_groups_policy(policy);
        let id = create(&mut rt, &sb, &config, c).await;
        rt.start_container(pb::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
        let st = wait_state(&mut rt, &id, pb::ContainerState::ContainerRunning).await;
        let user = st.user.unwrap().linux.unwrap();
        assert_eq!((user.uid, user.gid), (1000, 1000), "{name}");
        assert_eq!(user.supplemental_groups, want, "{name}");
        let r = rt
            .exec_sync(pb::ExecSyncRequest {
                container_id: id.clone(),
                cmd: vec!["cat".into(), "/proc/self/status".into()],
                timeout: 10,
            })
            .await
            .unwrap()
            .into_inner();
        let text = String::from_utf8_lossy(&r.stdout).to_string();
        let mut sorted = want.clone();
        sorted.sort();
        let groups: Vec<String> = sorted.iter().map(|g| g.to_string()).collect();
        assert!(
            text.contains(&format!("Groups:\t{} \n", groups.join(" "))),
            "{name}: {text}"
        );
    }
    rt.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: sb })
        .await
        .unwrap();
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

#[tokio::test(flavor = "current_thread")]
async fn user_namespaces_and_id_mapped_mounts() {
    let s = Server::start().await;
    let mut rt = s.runtime().await.unwrap();
    assert!(handler_features(&mut rt).await.user_namespaces);
    let map = |container_id, host_id| pb::IdMapping {
        container_id,
        host_id,
        length: 65536,
    };
    let userns = |mode: pb::NamespaceMode, maps: Vec<pb::IdMapping>| pb::UserNamespace {
        mode: mode as i32,
        uids: maps.clone(),
        gids: maps,
    };
    let with = |name: &str, u: pb::UserNamespace| {
        let mut config = s.sandbox_config(name, &unique());
        config.linux.as_mut().unwrap().security_context = Some(pb::LinuxSandboxSecurityContext {
            namespace_options: Some(pb::NamespaceOption {
                userns_options: Some(u),
                ..Default::default()
            }),
            ..Default::default()
        });
        config
    };
    // What containerd refuses is refused, and leaves nothing.
    for (name, u) in [
        (
            "two",
            userns(pb::NamespaceMode::Pod, vec![map(0, 131072), map(0, 262144)]),
        ),
        (
            "notroot",
            userns(pb::NamespaceMode::Pod, vec![map(1, 131072)]),
        ),
        ("ctr", userns(pb::NamespaceMode::Container, vec![])),
        ("target", userns(pb::NamespaceMode::Target, vec![])),
    ] {
        let e = rt
            .run_pod_sandbox(pb::RunPodSandboxRequest {
                config: Some(with(name, u)),
                runtime_handler: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{name}: {e:?}");
    }

    let maps = vec![map(0, 131072)];
    let config = with("userns", userns(pb::NamespaceMode::Pod, maps.clone()));
    let sb = rt
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    let host = s.path().join("shared");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("owned"), "x").unwrap();
    std::os::unix::fs::chown(host.join("owned"), Some(1234), Some(2345)).unwrap();
    let mut c = container("app", "touch /data/made /etc/made && sleep 3600");
    c.mounts = vec![pb::Mount {
        container_path: "/data".into(),
        host_path: host.display().to_string(),
        uid_mappings: maps.clone(),
        gid_mappings: maps.clone(),
        ..Default::default()
    }];
    let id = create(&mut rt, &sb, &config, c).await;
    rt.start_container(pb::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    wait_state(&mut rt, &id, pb::ContainerState::ContainerRunning).await;
    let run = |cmd: &str| pb::ExecSyncRequest {
        container_id: id.clone(),
        cmd: vec!["sh".into(), "-c".into(), cmd.into()],
        timeout: 10,
    };
    let out = rt
        .exec_sync(run(
            "for i in $(seq 50); do [ -e /etc/made ] && break; sleep 0.1; done; \
             cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c '%u:%g' /etc/made /data/made /data/owned",
        ))
        .await
        .unwrap()
        .into_inner();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0", "131072", "65536"], "{text}");
    assert_eq!(lines[1], ["0", "131072", "65536"], "{text}");
    assert_eq!(
        &text.lines().skip(2).collect::<Vec<_>>(),
        &["0", "0:0", "0:0", "1234:2345"],
        "{text}"
    );
    // On the host, the ID-mapped volume stores the container root's file as root's.
    use std::os::unix::fs::MetadataExt;
    let made = std::fs::metadata(host.join("made")).unwrap();
    assert_eq!((made.uid(), made.gid()), (0, 0));
    // A mount mapped otherwise than the sandbox is refused.
    let mut other = container("other", "true");
    other.mounts = vec![pb::Mount {
        container_path: "/data".into(),
        host_path: host.display().to_string(),
        uid_mappings: vec![map(0, 262144)],
        gid_mappings: vec![map(0, 262144)],
        ..Default::default()
    }];
    let e = rt
        .create_container(pb::CreateContainerRequest {
            pod_sandbox_id: sb.clone(),
            config: Some(other),
            sandbox_config: Some(config.clone()),
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("sandbox's user namespace"), "{e:?}");
    rt.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: sb })
        .await
        .unwrap();
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}
