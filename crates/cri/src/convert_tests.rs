//! Unit tests of the conversions between CRI messages and the runtime's types.

use super::*;

fn sandbox_pb() -> pb::PodSandboxConfig {
    pb::PodSandboxConfig {
        metadata: Some(pb::PodSandboxMetadata {
            name: "web".into(),
            uid: "u1".into(),
            namespace: "default".into(),
            attempt: 2,
        }),
        hostname: "web".into(),
        log_directory: "/var/log/pods/default_web_u1".into(),
        dns_config: Some(pb::DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec!["default.svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        }),
        port_mappings: vec![pb::PortMapping {
            protocol: pb::Protocol::Udp as i32,
            container_port: 53,
            host_port: 5353,
            host_ip: String::new(),
        }],
        labels: [("app".to_string(), "web".to_string())].into(),
        annotations: [("a".to_string(), "b".to_string())].into(),
        linux: Some(pb::LinuxPodSandboxConfig {
            cgroup_parent: "/kubepods/besteffort/podu1".into(),
            security_context: Some(pb::LinuxSandboxSecurityContext {
                namespace_options: Some(pb::NamespaceOption {
                    network: pb::NamespaceMode::Node as i32,
                    pid: pb::NamespaceMode::Container as i32,
                    ipc: pb::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_sandbox_config_keeps_every_field() {
    let c = sandbox_config(&sandbox_pb()).unwrap();
    assert_eq!(
        (
            c.metadata.name.as_str(),
            c.metadata.uid.as_str(),
            c.metadata.attempt
        ),
        ("web", "u1", 2)
    );
    assert_eq!(
        c.log_directory,
        std::path::Path::new("/var/log/pods/default_web_u1")
    );
    assert_eq!(c.dns.servers, ["10.96.0.10"]);
    assert_eq!(c.port_mappings[0].protocol, "UDP");
    assert_eq!(c.port_mappings[0].host_port, 5353);
    assert_eq!(c.labels["app"], "web");
    assert_eq!(c.annotations["a"], "b");
    assert_eq!(c.cgroup_parent, "/kubepods/besteffort/podu1");
    assert_eq!(c.namespaces.network, rt::NamespaceMode::Node);
    assert_eq!(c.namespaces.pid, rt::NamespaceMode::Container);
    assert_eq!(c.namespaces.ipc, rt::NamespaceMode::Pod);
}

#[test]
fn user_namespaces_of_mode_pod_with_one_mapping_from_zero() {
    let with = |u: pb::UserNamespace| {
        let mut c = sandbox_pb();
        let sc = c.linux.as_mut().unwrap().security_context.as_mut().unwrap();
        sc.namespace_options.as_mut().unwrap().userns_options = Some(u);
        sandbox_config(&c)
    };
    let map = |container_id, host_id| pb::IdMapping {
        container_id,
        host_id,
        length: 100000,
    };
    let pod = |uids: Vec<pb::IdMapping>| pb::UserNamespace {
        mode: pb::NamespaceMode::Pod as i32,
        gids: uids.clone(),
        uids,
    };
    let c = with(pod(vec![map(0, 1000)])).unwrap();
    let want = rt::IdMap {
        container_id: 0,
        host_id: 1000,
        length: 100000,
    };
    let u = c.user_namespace.unwrap();
    assert_eq!((u.uids, u.gids), (vec![want], vec![want]));
    let node = pb::UserNamespace {
        mode: pb::NamespaceMode::Node as i32,
        ..Default::default()
    };
    assert_eq!(with(node).unwrap().user_namespace, None);
    assert_eq!(sandbox_config(&sandbox_pb()).unwrap().user_namespace, None);
    let err = |u| with(u).unwrap_err().message().to_string();
    assert_eq!(
        err(pod(vec![map(0, 1000), map(0, 2000)])),
        "config.linux.security_context.namespace_options.userns_options: user namespace: exactly one uid mapping is supported, 2 given"
    );
    assert_eq!(
        err(pod(vec![map(1, 1000)])),
        "config.linux.security_context.namespace_options.userns_options: user namespace: uid 0 must be mapped (the mapping starts at 1)"
    );
    for mode in [pb::NamespaceMode::Container, pb::NamespaceMode::Target] {
        let e = err(pb::UserNamespace {
            mode: mode as i32,
            ..Default::default()
        });
        assert!(e.contains("only POD and NODE are"), "{e}");
    }
}

#[test]
fn what_cannot_be_honoured_is_refused_by_field() {
    let mut c = sandbox_pb();
    c.metadata = None;
    assert_eq!(
        sandbox_config(&c).unwrap_err().message(),
        "config.metadata: required"
    );
    let mut c = sandbox_pb();
    c.linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .namespace_options
        .as_mut()
        .unwrap()
        .pid = pb::NamespaceMode::Target as i32;
    let e = sandbox_config(&c).unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message()
            .starts_with("config.linux.security_context.namespace_options.pid"),
        "{}",
        e.message()
    );
    let tty = pb::ContainerConfig {
        metadata: Some(pb::ContainerMetadata {
            name: "c".into(),
            attempt: 0,
        }),
        image: Some(pb::ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        }),
        tty: true,
        stdin: true,
        stdin_once: true,
        ..Default::default()
    };
    let c = container_config(&tty).unwrap();
    assert!(
        c.tty && c.stdin && c.stdin_once,
        "terminals and input are kept"
    );
    let bad_env = pb::ContainerConfig {
        envs: vec![pb::KeyValue {
            key: "X".into(),
            value: vec![0xff],
        }],
        tty: false,
        ..tty
    };
    assert_eq!(
        container_config(&bad_env).unwrap_err().message(),
        "config.envs[0].value: \"X\" is not UTF-8"
    );
}

#[test]
fn a_container_config_keeps_every_field() {
    let c = pb::ContainerConfig {
        metadata: Some(pb::ContainerMetadata {
            name: "app".into(),
            attempt: 3,
        }),
        image: Some(pb::ImageSpec {
            image: "sha256:abc".into(),
            ..Default::default()
        }),
        command: vec!["sh".into()],
        args: vec!["-c".into(), "true".into()],
        working_dir: "/w".into(),
        envs: vec![pb::KeyValue {
            key: "A".into(),
            value: b"1".to_vec(),
        }],
        mounts: vec![pb::Mount {
            container_path: "/data".into(),
            host_path: "/srv".into(),
            readonly: true,
            ..Default::default()
        }],
        log_path: "app/3.log".into(),
        stop_signal: pb::Signal::Sigusr1 as i32,
        linux: Some(pb::LinuxContainerConfig {
            resources: Some(pb::LinuxContainerResources {
                cpu_period: 50_000,
                cpu_quota: 25_000,
                cpu_shares: 512,
                memory_limit_in_bytes: 1 << 20,
                ..Default::default()
            }),
            security_context: Some(pb::LinuxContainerSecurityContext {
                run_as_user: Some(pb::Int64Value { value: 1000 }),
                run_as_group: Some(pb::Int64Value { value: 3000 }),
                supplemental_groups: vec![4000],
                readonly_rootfs: true,
                no_new_privs: true,
                capabilities: Some(pb::Capability {
                    add_capabilities: vec!["NET_ADMIN".into()],
                    drop_capabilities: vec!["ALL".into()],
                    ..Default::default()
                }),
                namespace_options: Some(pb::NamespaceOption {
                    pid: pb::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    let r = container_config(&c).unwrap();
    assert_eq!((r.metadata.name.as_str(), r.metadata.attempt), ("app", 3));
    assert_eq!(r.image, "sha256:abc");
    assert_eq!(r.envs, [("A".to_string(), "1".to_string())]);
    assert!(r.mounts[0].readonly);
    assert_eq!(r.log_path, "app/3.log");
    assert_eq!(r.stop_signal.as_deref(), Some("SIGUSR1"));
    assert_eq!(
        r.resources.cpu_quota,
        Some(50_000),
        "rescaled to a 100 ms period"
    );
    assert_eq!(r.resources.cpu_shares, Some(512));
    assert_eq!(r.resources.memory_limit_in_bytes, Some(1 << 20));
    assert_eq!(r.security.run_as_user, Some(1000));
    assert_eq!(r.security.run_as_group, Some(3000));
    assert_eq!(r.security.supplemental_groups, [4000]);
    assert!(r.security.readonly_rootfs && r.security.no_new_privs);
    assert_eq!(r.security.drop_capabilities, ["ALL"]);
    assert_eq!(r.security.pid_namespace, rt::NamespaceMode::Pod);
}

#[test]
fn statuses_come_back_with_nanosecond_times() {
    assert_eq!(nanos(Some("1970-01-01T00:00:01.000000002Z")), 1_000_000_002);
    assert_eq!(nanos(None), 0);
    let s = rt::SandboxStatus {
        id: "sb".into(),
        metadata: rt::SandboxMetadata {
            name: "web".into(),
            uid: "u".into(),
            namespace: "ns".into(),
            attempt: 1,
        },
        state: rt::SandboxState::Ready,
        created_at: "2026-01-01T00:00:00Z".into(),
        ip: Some("10.0.0.2".into()),
        additional_ips: vec!["fd00::2".into()],
        infra_pid: 1,
        netns: None,
        namespaces: Default::default(),
        labels: [("l".to_string(), "v".to_string())].into(),
        annotations: Default::default(),
    };
    let p = sandbox_status(&s);
    assert_eq!(p.state, pb::PodSandboxState::SandboxReady as i32);
    let net = p.network.unwrap();
    assert_eq!(net.ip, "10.0.0.2");
    assert_eq!(net.additional_ips[0].ip, "fd00::2");
    assert_eq!(p.metadata.unwrap().attempt, 1);
    assert_eq!(p.labels["l"], "v");
    let f = sandbox_filter(Some(&pb::PodSandboxFilter {
        id: String::new(),
        state: Some(pb::PodSandboxStateValue {
            state: pb::PodSandboxState::SandboxNotready as i32,
        }),
        label_selector: [("app".to_string(), "x".to_string())].into(),
    }));
    assert_eq!(f.id, None);
    assert_eq!(f.state, Some(rt::SandboxState::NotReady));
    assert!(!f.matches(&s));
}

#[test]
fn seccomp_and_apparmor_profiles_and_their_deprecated_paths() {
    let profile = |t: i32, r: &str| pb::SecurityProfile {
        profile_type: t,
        localhost_ref: r.into(),
    };
    let f = "config.linux.security_context.seccomp";
    // The field wins over the deprecated path; its zero value is RuntimeDefault.
    assert_eq!(
        seccomp(f, Some(&profile(0, "")), "unconfined").unwrap(),
        rt::Seccomp::RuntimeDefault
    );
    assert_eq!(
        seccomp(f, Some(&profile(2, "/p.json")), "").unwrap(),
        rt::Seccomp::Localhost("/p.json".into())
    );
    let err = seccomp(f, Some(&profile(2, "p.json")), "").unwrap_err();
    assert!(err.message().contains("localhost_ref"), "{err:?}");
    assert_eq!(seccomp(f, None, "").unwrap(), rt::Seccomp::Unconfined);
    assert_eq!(
        seccomp(f, None, "runtime/default").unwrap(),
        rt::Seccomp::RuntimeDefault
    );
    assert_eq!(
        seccomp(f, None, "localhost//etc/p.json").unwrap(),
        rt::Seccomp::Localhost("/etc/p.json".into())
    );
    assert!(seccomp(f, None, "strict").is_err());
    let f = "config.linux.security_context.apparmor";
    assert_eq!(
        apparmor(f, Some(&profile(2, "k8s-x")), "").unwrap(),
        rt::AppArmor::Localhost("k8s-x".into())
    );
    assert_eq!(
        apparmor(f, None, "localhost/k8s-y").unwrap(),
        rt::AppArmor::Localhost("k8s-y".into())
    );
    assert_eq!(apparmor(f, None, "").unwrap(), rt::AppArmor::Unconfined);
}

#[test]
fn hugepage_limits_are_kept() {
    let r = resources(&pb::LinuxContainerResources {
        hugepage_limits: vec![
            pb::HugepageLimit {
                page_size: "2MB".into(),
                limit: 64 << 20,
            },
            pb::HugepageLimit {
                page_size: "1GB".into(),
                limit: 0,
            },
        ],
        ..Default::default()
    });
    let got: Vec<(&str, u64)> = r
        .hugepage_limits
        .iter()
        .map(|h| (h.page_size.as_str(), h.limit))
        .collect();
    assert_eq!(got, [("2MB", 64 << 20), ("1GB", 0)]);
}
