//! Unit tests of the container config: environment and `$(VAR)` expansion, the downward
//! API, resources, mounts, security settings, labels and annotations.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use peapod_runtime::NamespaceMode;
use peapod_types::pod::{DefaultedPod, Slot};

use super::*;
use crate::testutil::pod_yaml;

static NO_OBJECTS: std::sync::LazyLock<crate::objects::MemoryObjects> =
    std::sync::LazyLock::new(Default::default);

const NODE: NodeCapacity = NodeCapacity {
    cpus: 4,
    memory: 8 << 30,
};

fn config_of(
    pod: &DefaultedPod,
    volumes: &HashMap<String, PathBuf>,
) -> Result<ContainerConfig, ConfigError> {
    let facts = PodFacts {
        pod,
        pod_ip: "10.0.0.2",
        host_ip: "192.0.2.1",
        node_name: "node-1",
        volumes,
        pod_dir: Path::new("/pods/u1"),
        node: NODE,
        seccomp_root: Path::new("/var/lib/peapod/seccomp"),
        objects: &*NO_OBJECTS,
        user_namespace: None,
        hugepage_sizes: &[2 << 20, 1 << 30],
    };
    container_config(&facts, pod.container(Slot::App(0)), 3)
}

#[test]
fn in_a_user_namespace_every_mount_is_id_mapped_and_unmasked_proc_is_whole() {
    let pod = pod_yaml(
        "  hostUsers: false\n  containers:\n  - name: a\n    image: b\n    securityContext: {procMount: Unmasked}\n    volumeMounts: [{name: v, mountPath: /v}]\n  volumes: [{name: v, emptyDir: {}}]\n",
    );
    let volumes = HashMap::from([("v".to_string(), PathBuf::from("/pods/u1/volumes/v"))]);
    let map = peapod_runtime::IdMap {
        container_id: 0,
        host_id: 131072,
        length: 65536,
    };
    let userns = peapod_runtime::UserNamespace {
        uids: vec![map],
        gids: vec![map],
    };
    let facts = PodFacts {
        pod: &pod,
        pod_ip: "10.0.0.2",
        host_ip: "192.0.2.1",
        node_name: "node-1",
        volumes: &volumes,
        pod_dir: Path::new("/pods/u1"),
        node: NODE,
        seccomp_root: Path::new("/s"),
        objects: &*NO_OBJECTS,
        user_namespace: Some(&userns),
        hugepage_sizes: &[],
    };
    let c = container_config(&facts, pod.container(Slot::App(0)), 0).unwrap();
    let paths: Vec<&str> = c.mounts.iter().map(|m| m.container_path.as_str()).collect();
    assert_eq!(paths, ["/v", "/etc/hosts", "/dev/termination-log"]);
    for m in &c.mounts {
        assert_eq!((&m.uid_mappings, &m.gid_mappings), (&vec![map], &vec![map]));
    }
    assert_eq!(c.security.masked_paths, Some(Vec::new()));
    assert_eq!(c.security.readonly_paths, Some(Vec::new()));
    // Without one, nothing is mapped and /proc keeps the runtime's default masks.
    let plain = pod_yaml("  containers:\n  - {name: a, image: b}\n");
    let c = config_of(&plain, &HashMap::new()).unwrap();
    assert!(c.mounts.iter().all(|m| m.uid_mappings.is_empty()));
    assert_eq!(c.security.masked_paths, None);
}

fn env_of(spec: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let pod = pod_yaml(spec);
    config_of(&pod, &HashMap::new()).map(|c| c.envs)
}

#[test]
fn environment_in_order_with_references_to_earlier_variables() {
    let env = env_of(
        "  containers:\n  - name: a\n    image: b\n    env:\n    - {name: A, value: one}\n    - {name: B, value: '$(A)-two'}\n    - {name: C, value: '$(MISSING) $$(A)'}\n    - {name: A, value: again}\n",
    )
    .unwrap();
    assert_eq!(
        env,
        [
            ("A".to_string(), "again".to_string()),
            ("B".into(), "one-two".into()),
            ("C".into(), "$(MISSING) $(A)".into()),
        ]
    );
}

#[test]
fn the_downward_api_gives_pod_and_node_facts() {
    let env = env_of(
        "  serviceAccountName: sa\n  containers:\n  - name: a\n    image: b\n    env:\n    - {name: NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n    - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}\n    - {name: UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}\n    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}\n    - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}\n    - {name: HOST, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}\n    - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}\n",
    )
    .unwrap();
    let values: Vec<&str> = env.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(
        values,
        [
            "web",
            "default",
            "u1",
            "node-1",
            "10.0.0.2",
            "192.0.2.1",
            "sa"
        ]
    );
}

#[test]
fn resource_fields_round_up_and_fall_back_to_the_node() {
    let env = env_of(
        "  containers:\n  - name: a\n    image: b\n    resources: {limits: {cpu: 1500m, memory: 64Mi}}\n    env:\n    - {name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}\n    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory}}}\n    - {name: REQ, valueFrom: {resourceFieldRef: {resource: requests.cpu}}}\n",
    )
    .unwrap();
    let values: Vec<&str> = env.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(
        values,
        ["2", "67108864", "2"],
        "requests default to the limits"
    );
    let env = env_of(
        "  containers:\n  - name: a\n    image: b\n    env:\n    - {name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}\n    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory}}}\n",
    )
    .unwrap();
    assert_eq!(env[0].1, "4");
    assert_eq!(env[1].1, (8u64 << 30).to_string());
}

#[test]
fn missing_config_sources_are_config_errors_unless_optional() {
    let e = env_of(
        "  containers:\n  - name: a\n    image: b\n    env: [{name: X, valueFrom: {configMapKeyRef: {name: cm, key: k}}}]\n",
    )
    .unwrap_err();
    assert_eq!(e.reason, "CreateContainerConfigError");
    assert_eq!(e.message, "configmap \"cm\" not found");
    let env = env_of(
        "  containers:\n  - name: a\n    image: b\n    env: [{name: X, valueFrom: {secretKeyRef: {name: s, key: k, optional: true}}}]\n",
    )
    .unwrap();
    assert!(env.is_empty());
}

#[test]
fn command_and_args_expand_the_environment() {
    let pod = pod_yaml(
        "  containers:\n  - name: a\n    image: b\n    command: [sh, -c, 'echo $(GREETING)']\n    args: ['$(GREETING)', '$(NONE)']\n    env: [{name: GREETING, value: hi}]\n",
    );
    let c = config_of(&pod, &HashMap::new()).unwrap();
    assert_eq!(c.command, ["sh", "-c", "echo hi"]);
    assert_eq!(c.args, ["hi", "$(NONE)"]);
}

#[test]
fn mounts_volumes_hosts_file_and_termination_log() {
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("data");
    std::fs::create_dir(&vol).unwrap();
    let pod = pod_yaml(
        "  containers:\n  - name: a\n    image: b\n    volumeMounts: [{name: data, mountPath: /data, readOnly: true}, {name: data, mountPath: /sub, subPath: x/y}]\n  volumes: [{name: data, emptyDir: {}}]\n",
    );
    let vols: HashMap<String, PathBuf> = [("data".to_string(), vol.clone())].into();
    let c = config_of(&pod, &vols).unwrap();
    let m: Vec<(&str, PathBuf, bool)> = c
        .mounts
        .iter()
        .map(|m| (m.container_path.as_str(), m.host_path.clone(), m.readonly))
        .collect();
    assert_eq!(m[0], ("/data", vol.clone(), true));
    assert_eq!(m[1].0, "/sub");
    assert!(m[1].1.ends_with("x/y") && m[1].1.is_dir());
    assert_eq!(
        m[2],
        ("/etc/hosts", PathBuf::from("/pods/u1/etc-hosts"), false)
    );
    assert_eq!(
        m[3],
        (
            "/dev/termination-log",
            termination_log_path(Path::new("/pods/u1"), "a", 3),
            false
        )
    );
    let missing = config_of(&pod, &HashMap::new()).unwrap_err();
    assert_eq!(missing.message, "volume \"data\" is not set up");
}

#[test]
fn security_context_merges_pod_and_container_settings() {
    let pod = pod_yaml(
        "  shareProcessNamespace: true\n  securityContext: {runAsUser: 1000, runAsGroup: 3000, supplementalGroups: [4000]}\n  containers:\n  - name: a\n    image: b\n    securityContext: {runAsUser: 2000, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {add: [NET_ADMIN], drop: [ALL]}}\n",
    );
    let s = config_of(&pod, &HashMap::new()).unwrap().security;
    assert_eq!(s.run_as_user, Some(2000), "the container's setting wins");
    assert_eq!(s.run_as_group, Some(3000));
    assert_eq!(s.supplemental_groups, [4000]);
    assert!(s.readonly_rootfs && s.no_new_privs && !s.privileged);
    assert_eq!(s.add_capabilities, ["NET_ADMIN"]);
    assert_eq!(s.drop_capabilities, ["ALL"]);
    assert_eq!(s.pid_namespace, NamespaceMode::Pod);
}

#[test]
fn resources_become_cgroup_limits() {
    let pod = pod_yaml(
        "  containers:\n  - name: a\n    image: b\n    resources: {requests: {cpu: 250m}, limits: {cpu: '2', memory: 128Mi}}\n",
    );
    let r = config_of(&pod, &HashMap::new()).unwrap().resources;
    assert_eq!(r.memory_limit_in_bytes, Some(128 << 20));
    assert_eq!(r.cpu_quota, Some(200_000));
    assert_eq!(r.cpu_shares, Some(256));
    // Every hugepage size of the host is limited, to 0 unless asked for.
    let limit = |size: &str, limit: u64| peapod_runtime::HugepageLimit {
        page_size: size.into(),
        limit,
    };
    assert_eq!(r.hugepage_limits, [limit("2MB", 0), limit("1GB", 0)]);
    let huge = pod_yaml(
        "  containers:\n  - name: a\n    image: b\n    resources: {limits: {hugepages-2Mi: 64Mi, memory: 128Mi}}\n",
    );
    let r = config_of(&huge, &HashMap::new()).unwrap().resources;
    assert_eq!(r.hugepage_limits, [limit("2MB", 64 << 20), limit("1GB", 0)]);
}

#[test]
fn labels_annotations_metadata_and_log_path() {
    let pod = pod_yaml(
        "  terminationGracePeriodSeconds: 12\n  containers:\n  - name: a\n    image: 'busybox:1'\n    lifecycle: {stopSignal: SIGUSR1}\n",
    );
    let c = config_of(&pod, &HashMap::new()).unwrap();
    assert_eq!((c.metadata.name.as_str(), c.metadata.attempt), ("a", 3));
    assert_eq!(c.log_path, "a/3.log");
    assert_eq!(c.image, "busybox:1");
    assert_eq!(c.labels["io.kubernetes.pod.uid"], "u1");
    assert_eq!(c.labels["io.kubernetes.container.name"], "a");
    assert_eq!(c.annotations["io.kubernetes.container.restartCount"], "3");
    assert_eq!(
        c.annotations["io.kubernetes.pod.terminationGracePeriod"],
        "12"
    );
    assert_eq!(c.stop_signal.as_deref(), Some("SIGUSR1"));
}

#[test]
fn run_as_non_root_refuses_what_would_run_as_root() {
    let base = |sc: &str| {
        pod_yaml(&format!(
            "  securityContext: {{runAsNonRoot: true}}\n  containers:\n  - name: a\n    image: b\n    securityContext: {sc}\n"
        ))
    };
    let check = |p: &DefaultedPod, uid: Option<i64>, name: &str| {
        verify_run_as_non_root(p, p.container(Slot::App(0)), uid, name).map_err(|e| {
            assert_eq!(e.reason, "CreateContainerConfigError");
            e.message
        })
    };
    let plain = base("{}");
    assert_eq!(
        check(&plain, None, ""),
        Err("container has runAsNonRoot and image will run as root (pod: \"web_default(u1)\", container: a)".into()),
        "an image without USER runs as root"
    );
    assert!(check(&plain, Some(0), "").is_err());
    assert_eq!(check(&plain, Some(1000), ""), Ok(()));
    assert_eq!(
        check(&plain, None, "app"),
        Err("container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root (pod: \"web_default(u1)\", container: a)".into())
    );
    assert_eq!(
        check(&base("{runAsUser: 1000}"), Some(0), ""),
        Ok(()),
        "runAsUser wins"
    );
    assert_eq!(
        check(&base("{runAsUser: 0}"), Some(1000), ""),
        Err(
            "container's runAsUser breaks non-root policy (pod: \"web_default(u1)\", container: a)"
                .into()
        )
    );
    assert_eq!(
        check(&base("{runAsNonRoot: false}"), Some(0), ""),
        Ok(()),
        "the container's setting wins"
    );
    let unset = pod_yaml("  containers: [{name: a, image: b}]\n");
    assert_eq!(check(&unset, Some(0), ""), Ok(()));
}

#[test]
fn seccomp_and_apparmor_follow_the_container_then_the_pod() {
    let pod = pod_yaml(
        "  securityContext:\n    seccompProfile: {type: RuntimeDefault}\n    appArmorProfile: {type: RuntimeDefault}\n  containers:\n  - name: a\n    image: busybox\n    securityContext:\n      seccompProfile: {type: Localhost, localhostProfile: prof/a.json}\n",
    );
    let c = config_of(&pod, &HashMap::new()).unwrap();
    assert_eq!(
        c.security.seccomp,
        peapod_runtime::Seccomp::Localhost("/var/lib/peapod/seccomp/prof/a.json".into())
    );
    assert_eq!(
        c.security.apparmor,
        peapod_runtime::AppArmor::RuntimeDefault
    );
    let pod = pod_yaml("  containers:\n  - name: a\n    image: busybox\n");
    let c = config_of(&pod, &HashMap::new()).unwrap();
    assert_eq!(c.security.seccomp, peapod_runtime::Seccomp::Unconfined);
    assert_eq!(c.security.apparmor, peapod_runtime::AppArmor::Unconfined);
}

#[test]
fn fs_group_joins_the_supplemental_groups() {
    let pod = pod_yaml(
        "  securityContext: {fsGroup: 2000, supplementalGroups: [4000]}\n  containers:\n  - name: a\n    image: busybox\n",
    );
    let c = config_of(&pod, &HashMap::new()).unwrap();
    assert_eq!(c.security.supplemental_groups, vec![4000, 2000]);
}

#[test]
fn sub_path_expr_takes_the_containers_variables() {
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("v");
    std::fs::create_dir(&vol).unwrap();
    let volumes = HashMap::from([("v".to_string(), vol.clone())]);
    let pod = pod_yaml(
        "  volumes: [{name: v, emptyDir: {}}]\n  containers:\n  - name: a\n    image: b\n    env:\n    - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n    volumeMounts: [{name: v, mountPath: /logs, subPathExpr: 'pods/$(POD)'}]\n",
    );
    let c = config_of(&pod, &volumes).unwrap();
    let m = c
        .mounts
        .iter()
        .find(|m| m.container_path == "/logs")
        .unwrap();
    assert_eq!(m.host_path, vol.join("pods/web"));
    assert!(m.host_path.is_dir());

    let env = HashMap::from([("A".to_string(), "x".to_string())]);
    assert_eq!(sub_path_expr("$(A)/y", &env).unwrap(), "x/y");
    assert_eq!(
        sub_path_expr("$(A)/$(NOPE)", &env).unwrap_err().message,
        "failed to prepare subPath for volumeMount: missing value for NOPE"
    );
    let env = HashMap::from([("A".to_string(), "..".to_string())]);
    assert!(
        sub_path_expr("$(A)/y", &env)
            .unwrap_err()
            .message
            .contains("must not contain '..'")
    );
}

#[test]
fn env_from_config_maps_and_secrets_with_the_kubelets_errors() {
    let objects = crate::objects::MemoryObjects::default();
    let load = |yaml: &str| peapod_types::yaml::documents(yaml).unwrap().remove(0);
    objects.put_config_map(
        serde_json::from_value(load(
            "metadata: {name: cm, namespace: default}\ndata: {LEVEL: debug, MODE: fast, '1bad': x, 'a=b': w}\n",
        ))
        .unwrap(),
    );
    objects.put_secret(
        serde_json::from_value(load(
            "metadata: {name: sec, namespace: default}\ndata: {password: c2VjcmV0}\n",
        ))
        .unwrap(),
    );
    let env = |spec: &str| {
        let pod = pod_yaml(spec);
        let facts = PodFacts {
            pod: &pod,
            pod_ip: "10.0.0.2",
            host_ip: "192.0.2.1",
            node_name: "node-1",
            volumes: &HashMap::new(),
            pod_dir: Path::new("/pods/u1"),
            node: NODE,
            seccomp_root: Path::new("/s"),
            objects: &objects,
            user_namespace: None,
            hugepage_sizes: &[],
        };
        environment(&facts, pod.container(Slot::App(0))).map_err(|e| (e.reason, e.message))
    };
    let c = |extra: &str| format!("  containers:\n  - name: a\n    image: b\n{extra}");
    // envFrom first (with its prefix, invalid names skipped), then env, which overrides
    // it and may refer to it.
    assert_eq!(
        env(&c("    envFrom: [{configMapRef: {name: cm}, prefix: APP_}, {secretRef: {name: sec}}]\n    env:\n    - {name: APP_MODE, value: slow}\n    - {name: PASS, valueFrom: {secretKeyRef: {name: sec, key: password}}}\n    - {name: WHERE, value: '$(APP_LEVEL)-x'}\n    - {name: LVL, valueFrom: {configMapKeyRef: {name: cm, key: LEVEL}}}\n")).unwrap(),
        [
            ("APP_1bad", "x"),
            ("APP_LEVEL", "debug"),
            ("APP_MODE", "slow"),
            ("password", "secret"),
            ("PASS", "secret"),
            ("WHERE", "debug-x"),
            ("LVL", "debug"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    let err = |extra: &str| env(&c(extra)).unwrap_err();
    assert_eq!(
        err("    envFrom: [{configMapRef: {name: nope}}]\n"),
        (
            "CreateContainerConfigError",
            "configmap \"nope\" not found".into()
        )
    );
    assert_eq!(
        err("    env: [{name: X, valueFrom: {configMapKeyRef: {name: cm, key: NOPE}}}]\n"),
        (
            "CreateContainerConfigError",
            "couldn't find key NOPE in ConfigMap default/cm".into()
        )
    );
    assert_eq!(
        err("    env: [{name: X, valueFrom: {secretKeyRef: {name: gone, key: k}}}]\n"),
        (
            "CreateContainerConfigError",
            "secret \"gone\" not found".into()
        )
    );
    assert_eq!(
        err("    env: [{name: X, valueFrom: {secretKeyRef: {name: sec, key: k}}}]\n"),
        (
            "CreateContainerConfigError",
            "couldn't find key k in Secret default/sec".into()
        )
    );
    // Optional references to what is missing are left out.
    assert_eq!(
        env(&c("    envFrom: [{secretRef: {name: gone, optional: true}}]\n    env: [{name: X, valueFrom: {configMapKeyRef: {name: cm, key: NOPE, optional: true}}}]\n")).unwrap(),
        Vec::<(String, String)>::new()
    );
}
