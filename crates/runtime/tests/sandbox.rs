//! The runtime's CRI-shaped operations against the real kernel.

use std::path::PathBuf;
use std::time::Duration;

use peapod_runtime::*;

fn pause_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join("peapod-pause");
    assert!(
        p.is_file(),
        "{} missing: run `cargo build --workspace` first",
        p.display()
    );
    p
}

#[tokio::test(flavor = "current_thread")]
async fn sandbox_with_two_containers_shares_localhost() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let net = peapod_testkit::TestNet::reserve();
    let rt = Runtime::new(RuntimeConfig {
        root: d.join("root"),
        run_root: d.join("run"),
        pause_path: pause_binary(),
        infra_image: None,
        registries: Default::default(),
        cgroup_root: "/peapod-test".into(),
        scope: "pods".into(),
        network: Some(NetworkSettings {
            config_dir: d.join("no-such-dir"),
            plugin_dirs: vec!["/usr/lib/cni".into(), "/opt/cni/bin".into()],
            default_bridge: net.bridge.clone(),
            default_subnet: net.subnet.clone(),
        }),
    })
    .unwrap();
    let archive = d.join("bb.tar");
    peapod_testkit::write_busybox_archive("/bin/busybox".as_ref(), "localhost/t/bb:1", &archive)
        .unwrap();
    rt.images().load_archive(&archive).unwrap();

    let uid = format!("rt-{}", std::process::id());
    let sb = rt
        .run_pod_sandbox(SandboxConfig {
            metadata: SandboxMetadata {
                name: "web".into(),
                uid: uid.clone(),
                namespace: "default".into(),
                attempt: 0,
            },
            hostname: "web".into(),
            log_directory: d.join("logs"),
            cgroup_parent: format!("/peapod-test/pod{uid}"),
            ..Default::default()
        })
        .await
        .unwrap();
    let status = rt.pod_sandbox_status(&sb).unwrap();
    assert_eq!(status.state, SandboxState::Ready);
    let ip = status.ip.clone().expect("the sandbox has an IP");
    assert!(
        ip.starts_with(net.subnet.trim_end_matches("0/24")),
        "{ip} not in {}",
        net.subnet
    );
    assert_ne!(ip, net.gateway());

    let server = rt
        .create_container(
            &sb,
            ContainerConfig {
                metadata: ContainerMetadata {
                    name: "server".into(),
                    attempt: 0,
                },
                image: "localhost/t/bb:1".into(),
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo ready; exec nc -l -p 2368 -e echo pong".into(),
                ],
                log_path: "server/0.log".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    rt.start_container(&server).await.unwrap();
    let client = rt
        .create_container(
            &sb,
            ContainerConfig {
                metadata: ContainerMetadata {
                    name: "client".into(),
                    attempt: 0,
                },
                image: "localhost/t/bb:1".into(),
                command: vec!["sh".into(), "-c".into()],
                args: vec![
                    "sleep 0.3; nc 127.0.0.1 2368 </dev/null; hostname; echo oops >&2; exit 7"
                        .into(),
                ],
                log_path: "client/0.log".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    rt.start_container(&client).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), rt.wait_exit(&client))
        .await
        .unwrap();
    let st = rt.container_status(&client).unwrap();
    assert_eq!(
        (st.state, st.exit_code, st.reason.as_str()),
        (ContainerState::Exited, 7, "Error")
    );
    let log = std::fs::read_to_string(d.join("logs/client/0.log")).unwrap();
    let lines: Vec<(String, String)> = log
        .lines()
        .map(|l| {
            let r = logs::parse(l).unwrap();
            (r.stream.to_string(), r.text.to_string())
        })
        .collect();
    assert!(lines.contains(&("stdout".into(), "pong".into())), "{log}");
    assert!(lines.contains(&("stdout".into(), "web".into())), "{log}");
    assert!(lines.contains(&("stderr".into(), "oops".into())), "{log}");

    // A missing executable is a start error with exit code 128.
    let bad = rt
        .create_container(
            &sb,
            ContainerConfig {
                metadata: ContainerMetadata {
                    name: "bad".into(),
                    attempt: 0,
                },
                image: "localhost/t/bb:1".into(),
                command: vec!["/no/such/binary".into()],
                log_path: "bad/0.log".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(rt.start_container(&bad).await.is_err());
    let st = rt.container_status(&bad).unwrap();
    assert_eq!((st.exit_code, st.reason.as_str()), (128, "StartError"));

    rt.stop_container(&server, Duration::from_secs(5))
        .await
        .unwrap();
    rt.stop_container(&server, Duration::from_secs(5))
        .await
        .unwrap(); // idempotent
    assert_eq!(
        rt.container_status(&server).unwrap().state,
        ContainerState::Exited
    );
    rt.remove_pod_sandbox(&sb).await.unwrap();
    rt.remove_pod_sandbox(&sb).await.unwrap(); // idempotent
    assert!(rt.list_containers(&Default::default()).unwrap().is_empty());
    // No process of the pod is left, not even a zombie of the failed start.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut children = String::new();
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        children.push_str(&std::fs::read_to_string(t.path().join("children")).unwrap_or_default());
    }
    assert_eq!(children.trim(), "", "child processes left");
    assert!(rt.list_pod_sandbox(&Default::default()).unwrap().is_empty());
    let cache = d.join("root/cni/cache");
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        0,
        "CNI cache left"
    );
    let ipam = d.join("root/cni/networks/peapod");
    let leased = peapod_testkit::leased_addresses(&ipam).len();
    assert_eq!(leased, 0, "addresses left leased in {}", ipam.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(d.to_str().unwrap()),
        "mounts left:\n{mounts}"
    );
    assert!(peapod_oci::cgroup::dirs(&format!("/peapod-test/pod{uid}")).is_empty());
    peapod_oci::cgroup::remove_if_empty("peapod-test");
    assert_eq!(
        std::fs::read_dir(d.join("run/containers")).unwrap().count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(d.join("root/containers"))
            .unwrap()
            .count(),
        0
    );
}
