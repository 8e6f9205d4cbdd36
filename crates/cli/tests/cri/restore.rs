//! Live restore: the server killed with SIGKILL and started again finds every sandbox and
//! container as it was, with the exits that happened meanwhile; a SIGTERM stops serving
//! and leaves everything running.

use std::time::Duration;

use peapod_cri::proto as pb;

use crate::harness::*;

#[tokio::test(flavor = "current_thread")]
async fn a_killed_server_restarts_onto_what_runs() {
    let mut s = Server::start().await;
    let mut rt = s.runtime().await.unwrap();
    let config = s.sandbox_config("restore", &unique());
    let sb = rt
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    let mut ids = Vec::new();
    for (name, script) in [
        ("runs", "while true; do sleep 0.1; done"),
        ("exited", "exit 4"),
        ("exits-later", "sleep 2; exit 9"),
    ] {
        let id = rt
            .create_container(pb::CreateContainerRequest {
                pod_sandbox_id: sb.clone(),
                config: Some(container(name, script)),
                sandbox_config: Some(config.clone()),
            })
            .await
            .unwrap()
            .into_inner()
            .container_id;
        rt.start_container(pb::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
        ids.push(id);
    }
    wait_state(&mut rt, &ids[1], pb::ContainerState::ContainerExited).await;
    let before = rt
        .list_containers(pb::ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    s.kill();
    // While the server is down, a container exits.
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.launch().await;
    let mut rt = s.runtime().await.unwrap();
    let after = rt
        .list_containers(pb::ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    let mut a: Vec<&str> = after.iter().map(|c| c.id.as_str()).collect();
    let mut b: Vec<&str> = before.iter().map(|c| c.id.as_str()).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "the same containers");
    let status = |rt: &mut Rt, id: &str| {
        let mut rt = rt.clone();
        let id = id.to_string();
        async move {
            rt.container_status(pb::ContainerStatusRequest {
                container_id: id,
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap()
        }
    };
    let runs = status(&mut rt, &ids[0]).await;
    assert_eq!(runs.state, pb::ContainerState::ContainerRunning as i32);
    let exited = status(&mut rt, &ids[1]).await;
    assert_eq!(
        (exited.state, exited.exit_code),
        (pb::ContainerState::ContainerExited as i32, 4)
    );
    let later = status(&mut rt, &ids[2]).await;
    assert_eq!(
        (later.state, later.exit_code),
        (pb::ContainerState::ContainerExited as i32, 9),
        "the exit while the server was down was recorded"
    );
    let sbs = rt
        .list_pod_sandbox(pb::ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(sbs.len(), 1);
    assert_eq!(sbs[0].state, pb::PodSandboxState::SandboxReady as i32);
    // Exec still reaches the running container through its supervisor.
    let r = rt
        .exec_sync(pb::ExecSyncRequest {
            container_id: ids[0].clone(),
            cmd: vec!["echo".into(), "back".into()],
            timeout: 5,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.stdout, b"back\n");

    // SIGTERM: the server stops, the sandbox runs on.
    assert!(s.terminate().success());
    assert!(!s.socket.exists(), "the socket is removed");
    s.launch().await;
    let mut rt = s.runtime().await.unwrap();
    assert_eq!(
        status(&mut rt, &ids[0]).await.state,
        pb::ContainerState::ContainerRunning as i32
    );
    rt.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: sb })
        .await
        .unwrap();
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

#[tokio::test(flavor = "current_thread")]
async fn an_interrupted_creation_is_cleaned_at_start() {
    let mut s = Server::start().await;
    s.kill();
    // What a crash in the middle of RunPodSandbox leaves: a supervisor directory, and a
    // sandbox record that never became ready, owned by a process that is gone.
    let id = "ab".repeat(32);
    let shim_dir = s.path().join("run/cri").join(&id);
    std::fs::create_dir_all(&shim_dir).unwrap();
    std::fs::write(shim_dir.join("config.json"), "{}").unwrap();
    let sb_dir = s.path().join("run/sandboxes").join(&id);
    std::fs::create_dir_all(&sb_dir).unwrap();
    let record = serde_json::json!({
        "status": {
            "id": id, "metadata": {"name": "x", "uid": "u", "namespace": "n", "attempt": 0},
            "state": "NotReady", "created_at": "2026-01-01T00:00:00Z", "ip": null,
            "infra_pid": 0, "netns": null,
            "namespaces": {"network": "Pod", "pid": "Container", "ipc": "Pod"},
            "labels": {}, "annotations": {}
        },
        "config": {
            "metadata": {"name": "x", "uid": "u", "namespace": "n", "attempt": 0},
            "hostname": "x", "log_directory": "/nonexistent", "dns": {"servers": [], "searches": [], "options": []},
            "port_mappings": [], "labels": {}, "annotations": {}, "cgroup_parent": "",
            "namespaces": {"network": "Pod", "pid": "Container", "ipc": "Pod"}
        },
        "scope": "cri", "owner_pid": 999999, "made": false
    });
    std::fs::write(sb_dir.join("record.json"), record.to_string()).unwrap();
    s.launch().await;
    let mut rt = s.runtime().await.unwrap();
    let listed = rt
        .list_pod_sandbox(pb::ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert!(listed.is_empty(), "{listed:?}");
    assert!(!shim_dir.exists() && !sb_dir.exists());
}
