//! Version, Status, RuntimeConfig, and the sandbox RPCs with their filters and idempotence.

use peapod_cri::proto as pb;

use crate::harness::*;

#[tokio::test(flavor = "current_thread")]
async fn version_status_and_runtime_config() {
    let s = Server::start().await;
    let mut rt = s.runtime().await.unwrap();
    let v = rt
        .version(pb::VersionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (v.runtime_name.as_str(), v.runtime_api_version.as_str()),
        ("peapod", "v1")
    );
    assert_eq!(v.version, "0.1.0");
    let st = rt
        .status(pb::StatusRequest { verbose: true })
        .await
        .unwrap()
        .into_inner();
    let conds = st.status.unwrap().conditions;
    let by = |t: &str| conds.iter().find(|c| c.r#type == t).unwrap().clone();
    assert!(by("RuntimeReady").status);
    assert!(by("NetworkReady").status, "{:?}", by("NetworkReady"));
    assert!(st.info.contains_key("info"));
    let rc = rt
        .runtime_config(pb::RuntimeConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rc.linux.unwrap().cgroup_driver,
        pb::CgroupDriver::Cgroupfs as i32
    );
    rt.update_runtime_config(pb::UpdateRuntimeConfigRequest {
        runtime_config: Some(pb::RuntimeConfig {
            network_config: Some(pb::NetworkConfig {
                pod_cidr: "10.244.0.0/24".into(),
            }),
        }),
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn sandboxes_run_list_stop_and_remove() {
    let s = Server::start().await;
    let mut rt = s.runtime().await.unwrap();
    let uid = unique();
    let config = s.sandbox_config("web", &uid);
    let id = rt
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    let status = rt
        .pod_sandbox_status(pb::PodSandboxStatusRequest {
            pod_sandbox_id: id.clone(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner();
    let st = status.status.unwrap();
    assert_eq!(st.state, pb::PodSandboxState::SandboxReady as i32);
    assert_eq!(
        st.metadata.clone().unwrap(),
        config.metadata.clone().unwrap()
    );
    assert_eq!(st.labels["app"], "web");
    assert_eq!(st.annotations["note"], "kept as given");
    let ip = st.network.unwrap().ip;
    assert!(
        ip.starts_with(s.net.subnet.trim_end_matches("0/24")),
        "{ip}"
    );
    assert!(status.info["info"].contains("\"pid\""));
    assert!(st.created_at > 0);

    // Filters: by ID prefix, by state, by labels.
    let list = |f: pb::PodSandboxFilter| {
        let mut rt = rt.clone();
        async move {
            rt.list_pod_sandbox(pb::ListPodSandboxRequest { filter: Some(f) })
                .await
                .unwrap()
                .into_inner()
                .items
        }
    };
    assert_eq!(
        list(pb::PodSandboxFilter {
            id: id[..12].into(),
            ..Default::default()
        })
        .await
        .len(),
        1
    );
    let ready = pb::PodSandboxStateValue {
        state: pb::PodSandboxState::SandboxReady as i32,
    };
    assert_eq!(
        list(pb::PodSandboxFilter {
            state: Some(ready),
            ..Default::default()
        })
        .await
        .len(),
        1
    );
    let wrong = pb::PodSandboxFilter {
        label_selector: [("app".to_string(), "other".to_string())].into(),
        ..Default::default()
    };
    assert!(list(wrong).await.is_empty());

    // An unknown handler and missing metadata are refused, naming the field.
    let e = rt
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: "kata".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let e = rt
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(pb::PodSandboxConfig::default()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.message(), "config.metadata: required");

    // The pod's resources are taken for a known sandbox (its cgroup is the kubelet's).
    let resources = pb::LinuxContainerResources {
        cpu_shares: 512,
        memory_limit_in_bytes: 256 << 20,
        ..Default::default()
    };
    rt.update_pod_sandbox_resources(pb::UpdatePodSandboxResourcesRequest {
        pod_sandbox_id: id.clone(),
        overhead: None,
        resources: Some(resources.clone()),
    })
    .await
    .unwrap();
    let e = rt
        .update_pod_sandbox_resources(pb::UpdatePodSandboxResourcesRequest {
            pod_sandbox_id: "0".repeat(64),
            overhead: None,
            resources: Some(resources),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");

    // Stop and remove are idempotent, and fine for IDs never seen.
    for _ in 0..2 {
        rt.stop_pod_sandbox(pb::StopPodSandboxRequest {
            pod_sandbox_id: id.clone(),
        })
        .await
        .unwrap();
    }
    let st = rt
        .pod_sandbox_status(pb::PodSandboxStatusRequest {
            pod_sandbox_id: id.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(st.state, pb::PodSandboxState::SandboxNotready as i32);
    for _ in 0..2 {
        rt.remove_pod_sandbox(pb::RemovePodSandboxRequest {
            pod_sandbox_id: id.clone(),
        })
        .await
        .unwrap();
    }
    rt.stop_pod_sandbox(pb::StopPodSandboxRequest {
        pod_sandbox_id: "0".repeat(64),
    })
    .await
    .unwrap();
    rt.remove_pod_sandbox(pb::RemovePodSandboxRequest {
        pod_sandbox_id: "no-such".into(),
    })
    .await
    .unwrap();
    let e = rt
        .pod_sandbox_status(pb::PodSandboxStatusRequest {
            pod_sandbox_id: id,
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

#[tokio::test(flavor = "current_thread")]
async fn twenty_sandboxes_at_once() {
    let s = Server::start().await;
    let rt = s.runtime().await.unwrap();
    let tag = unique();
    let runs = (0..20).map(|i| {
        let mut rt = rt.clone();
        let config = s.sandbox_config(&format!("burst-{i}"), &format!("{tag}-{i}"));
        async move {
            rt.run_pod_sandbox(pb::RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await
            .map(|r| r.into_inner().pod_sandbox_id)
        }
    });
    let ids: Vec<String> = futures_join(runs.collect())
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let mut rt = rt;
    let listed = rt
        .list_pod_sandbox(pb::ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(listed.len(), 20);
    let mut ips = std::collections::HashSet::new();
    for id in &ids {
        let st = rt
            .pod_sandbox_status(pb::PodSandboxStatusRequest {
                pod_sandbox_id: id.clone(),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap();
        assert_eq!(st.state, pb::PodSandboxState::SandboxReady as i32);
        assert!(
            ips.insert(st.network.unwrap().ip),
            "two sandboxes share an address"
        );
    }
    for id in ids {
        rt.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: id })
            .await
            .unwrap();
    }
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

/// Polls all futures together; their outputs in order.
pub async fn futures_join<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut out: Vec<Option<F::Output>> = Vec::new();
    let mut boxed: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    out.resize_with(boxed.len(), || None);
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in boxed.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
