//! Security settings a user relies on: `exec` (and exec probes) run as the container's own
//! user, with its groups, capabilities and `no_new_privs`; `runAsNonRoot` refuses a
//! container that would run as root, with the kubelet's reason and message.

use std::time::Duration;

use crate::harness::*;

/// The status lines of `/proc/self/status` that tell who a process is.
const WHO: &str = "id; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status";

#[test]
fn exec_runs_as_the_containers_user_with_its_groups_and_privileges() {
    let env = Env::new();
    let name = format!("execuser-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  securityContext: {{runAsUser: 1000, runAsGroup: 3000, supplementalGroups: [4000]}}
  containers:
  - name: app
    image: {IMAGE}
    command: [sh, -c, \"({WHO}) > /tmp/main; sleep 3600\"]
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {{drop: [ALL]}}
    readinessProbe:
      exec: {{command: [sh, -c, 'test $(id -u) = 1000 && test $(id -g) = 3000']}}
      periodSeconds: 1
"
        ),
    ));
    let pod = env.wait_for(&name, Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Running" && cstatus(p, "app")["ready"] == true
    });
    assert_eq!(
        cstatus(&pod, "app")["ready"],
        true,
        "the exec probe ran as the user"
    );
    let (code, exec) = env.exec(&name, "app", &["sh", "-c", WHO]);
    assert_eq!(code, 0, "{exec}");
    let (_, main) = env.exec(&name, "app", &["cat", "/tmp/main"]);
    // The primary group, the image's group for user 1000 (Merge), the requested one.
    assert!(
        exec.starts_with(
            "uid=1000(default-user) gid=3000 groups=3000,4000,50000(group-defined-in-image)\n"
        ),
        "{exec}"
    );
    assert!(exec.contains("CapEff:\t0000000000000000"), "{exec}");
    assert!(exec.contains("NoNewPrivs:\t1"), "{exec}");
    // Exactly what the container's own process is.
    assert_eq!(exec, main);
    // The same through a terminal.
    let out = env.run(&["exec", "-t", &name, "--", "id", "-u"]);
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    assert_eq!(text.trim(), "1000", "exec -t: {text}");
    env.ok(&["delete", "pod", &name, "--force"]);
}

#[test]
fn supplemental_groups_policy_strict_leaves_out_the_images_groups() {
    let env = Env::new();
    let name = format!("strict-{}", unique());
    let c = |n: &str| {
        format!("  - name: {n}\n    image: {IMAGE}\n    command: [sh, -c, 'id -G; sleep 3600']\n")
    };
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  securityContext: {{runAsUser: 1000, supplementalGroups: [1234], supplementalGroupsPolicy: Strict}}\n  containers:\n{}",
            c("app")
        ),
    ));
    let pod = env.wait_for(&name, Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Running"
    });
    assert_eq!(
        cstatus(&pod, "app")["user"]["linux"],
        serde_json::json!({"uid": 1000, "gid": 1000, "supplementalGroups": [1000, 1234]})
    );
    let (code, out) = env.exec(&name, "app", &["id", "-G"]);
    assert_eq!((code, out.as_str()), (0, "1000 1234\n"));
    env.ok(&["delete", "pod", &name, "--force"]);

    // Merge, the default, adds the image's group 50000 for user 1000.
    let name = format!("merge-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  securityContext: {{runAsUser: 1000, supplementalGroups: [1234]}}\n  containers:\n{}",
            c("app")
        ),
    ));
    let pod = env.wait_for(&name, Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Running"
    });
    assert_eq!(
        cstatus(&pod, "app")["user"]["linux"]["supplementalGroups"],
        serde_json::json!([1000, 50000, 1234])
    );
    let (_, out) = env.exec(&name, "app", &["id", "-G"]);
    assert_eq!(out, "1000 1234 50000\n");
    let logs = env.ok(&["logs", &name]);
    assert_eq!(logs, "1000 1234 50000\n", "the container's own process");
    env.ok(&["delete", "pod", &name, "--force"]);
}

#[test]
fn run_as_non_root_refuses_a_container_that_would_run_as_root() {
    let env = Env::new();
    env.load_image(
        "localhost/peapod/nobody:1.0",
        &peapod_testkit::ImageOptions {
            user: Some("65534".into()),
            ..Default::default()
        },
    );
    env.load_image(
        "localhost/peapod/named-root:1.0",
        &peapod_testkit::ImageOptions {
            user: Some("root".into()),
            ..Default::default()
        },
    );
    env.load_image(
        "localhost/peapod/ghost:1.0",
        &peapod_testkit::ImageOptions {
            user: Some("ghost".into()),
            ..Default::default()
        },
    );
    let tag = unique();
    let pod = |name: &str, image: &str, sc: &str| {
        pod_yaml(
            name,
            &format!(
                "  securityContext: {{runAsNonRoot: true}}\n  containers:\n  - name: c\n    image: {image}\n    command: [sleep, '3600']\n    securityContext: {sc}\n"
            ),
        )
    };
    let cases = [
        // (name, image, container securityContext, refusal or None)
        (
            "rootimg",
            IMAGE,
            "{}",
            Some("container has runAsNonRoot and image will run as root"),
        ),
        (
            "named-root",
            "localhost/peapod/named-root:1.0",
            "{}",
            Some(
                "container has runAsNonRoot and image has non-numeric user (root), cannot verify user is non-root",
            ),
        ),
        (
            "ghost",
            "localhost/peapod/ghost:1.0",
            "{}",
            Some(
                "container has runAsNonRoot and image has non-numeric user (ghost), cannot verify user is non-root",
            ),
        ),
        (
            "uid0",
            "localhost/peapod/nobody:1.0",
            "{runAsUser: 0}",
            Some("container's runAsUser breaks non-root policy"),
        ),
        ("nobody", "localhost/peapod/nobody:1.0", "{}", None),
        (
            "named-uid",
            "localhost/peapod/ghost:1.0",
            "{runAsUser: 1000}",
            None,
        ),
        ("uid1000", IMAGE, "{runAsUser: 1000}", None),
    ];
    for (n, image, sc, _) in &cases {
        env.apply_ok(&pod(&format!("{n}-{tag}"), image, sc));
    }
    for (n, _, _, refusal) in &cases {
        let name = format!("{n}-{tag}");
        match refusal {
            Some(msg) => {
                let p = env.wait_for(&name, Duration::from_secs(30), |p| {
                    !p["status"]["containerStatuses"].is_null()
                        && cstatus(p, "c")["state"]["waiting"]["reason"]
                            == "CreateContainerConfigError"
                });
                assert_eq!(p["status"]["phase"], "Pending", "{n}");
                let uid = p["metadata"]["uid"].as_str().unwrap();
                let want = format!("{msg} (pod: \"{name}_default({uid})\", container: c)");
                assert_eq!(
                    cstatus(&p, "c")["state"]["waiting"]["message"],
                    want.as_str(),
                    "{n}"
                );
                let events = env.ok(&["get", "events"]);
                assert!(events.contains(&format!("Error: {want}")), "{n}: {events}");
                assert!(
                    cstatus(&p, "c")["containerID"].is_null(),
                    "{n}: no container was made"
                );
            }
            None => {
                env.wait_phase(&name, "Running");
            }
        }
    }
    let (_, uid) = env.exec(&format!("nobody-{tag}"), "c", &["id", "-u"]);
    assert_eq!(uid.trim(), "65534");
    let (_, uid) = env.exec(&format!("uid1000-{tag}"), "c", &["id", "-u"]);
    assert_eq!(uid.trim(), "1000");
    let f = env.path().join("del.yaml");
    let all: String = cases
        .iter()
        .map(|(n, i, s, _)| format!("---\n{}", pod(&format!("{n}-{tag}"), i, s)))
        .collect();
    std::fs::write(&f, all).unwrap();
    env.ok(&["delete", "-f", f.to_str().unwrap(), "--force"]);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[test]
fn seccomp_profiles_filter_the_container_and_its_execs() {
    let env = Env::new();
    let tag = unique();
    // A Localhost profile, relative to `<root>/seccomp` as the kubelet's are to its own.
    let profiles = env.path().join("lib/seccomp/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(
        profiles.join("no-mkdir.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let status = "grep -E '^Seccomp:' /proc/self/status";
    let pod = |name: &str, psc: &str, csc: &str| {
        pod_yaml(
            name,
            &format!(
                "  securityContext: {psc}\n  containers:\n  - name: c\n    image: {IMAGE}\n    command: [sh, -c, \"{status}; sleep 3600\"]\n    securityContext: {csc}\n"
            ),
        )
    };
    let default = format!("default-{tag}");
    let local = format!("local-{tag}");
    let unconfined = format!("unconfined-{tag}");
    let missing = format!("missing-{tag}");
    let apparmor = format!("apparmor-{tag}");
    env.apply_ok(&pod(
        &default,
        "{seccompProfile: {type: RuntimeDefault}}",
        "{}",
    ));
    env.apply_ok(&pod(
        &local,
        "{seccompProfile: {type: RuntimeDefault}}",
        "{seccompProfile: {type: Localhost, localhostProfile: profiles/no-mkdir.json}}",
    ));
    env.apply_ok(&pod(&unconfined, "{}", "{}"));
    env.apply_ok(&pod(
        &missing,
        "{}",
        "{seccompProfile: {type: Localhost, localhostProfile: profiles/absent.json}}",
    ));
    env.apply_ok(&pod(
        &apparmor,
        "{}",
        "{appArmorProfile: {type: Localhost, localhostProfile: k8s-deny-write}}",
    ));
    let apparmor_default = format!("apparmor-default-{tag}");
    env.apply_ok(&pod(
        &apparmor_default,
        "{appArmorProfile: {type: RuntimeDefault}}",
        "{}",
    ));
    for name in [&default, &local, &unconfined] {
        env.wait_phase(name, "Running");
    }
    // The container's process and an exec into it are filtered alike.
    for (name, want) in [(&default, "2"), (&local, "2"), (&unconfined, "0")] {
        let logs = env.ok(&["logs", name]);
        assert_eq!(logs.trim(), format!("Seccomp:\t{want}"), "{name}");
        let (_, exec) = env.exec(name, "c", &["sh", "-c", status]);
        assert_eq!(exec.trim(), format!("Seccomp:\t{want}"), "exec into {name}");
    }
    // The default profile refuses what needs a capability the container lacks, with EPERM.
    let (code, out) = env.exec(&default, "c", &["sh", "-c", "unshare -u true 2>&1"]);
    assert_ne!(code, 0);
    assert!(out.contains("Operation not permitted"), "{out}");
    // The container's profile wins over the pod's.
    let (code, out) = env.exec(&local, "c", &["sh", "-c", "mkdir /made 2>&1"]);
    assert_ne!(code, 0);
    assert!(out.contains("Operation not permitted"), "{out}");
    let (code, _) = env.exec(&unconfined, "c", &["mkdir", "/made"]);
    assert_eq!(code, 0);

    // A pod that asks for AppArmor on a host without it is not admitted, as the kubelet's
    // AppArmor admission refuses it; RuntimeDefault too, and nothing of it is created.
    for name in [&apparmor, &apparmor_default] {
        let p = env.wait_phase(name, "Failed");
        assert_eq!(p["status"]["reason"], "AppArmor", "{name}");
        assert_eq!(
            p["status"]["message"],
            "Pod was rejected: Cannot enforce AppArmor: AppArmor is not enabled on the host"
        );
        assert!(p["status"]["containerStatuses"][0]["containerID"].is_null());
    }
    // A Localhost seccomp profile that is not there stops the container's creation.
    let p = env.wait_for(&missing, Duration::from_secs(30), |p| {
        !p["status"]["containerStatuses"].is_null()
            && cstatus(p, "c")["state"]["waiting"]["reason"] == "CreateContainerError"
    });
    let message = cstatus(&p, "c")["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("profiles/absent.json"), "{message}");

    // Profiles the API server refuses.
    let bad = env.apply(&pod(
        &format!("bad-{tag}"),
        "{seccompProfile: {type: Localhost, localhostProfile: /etc/p.json}}",
        "{seccompProfile: {type: Localhost}}",
    ));
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("spec.securityContext.seccompProfile.localhostProfile: Invalid value: \"/etc/p.json\": must be a relative path"),
        "{err}"
    );
    assert!(
        err.contains("spec.containers[0].securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost"),
        "{err}"
    );
    for name in [
        &default,
        &local,
        &unconfined,
        &missing,
        &apparmor,
        &apparmor_default,
    ] {
        env.ok(&["delete", "pod", name, "--force"]);
    }
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[test]
fn sysctls_and_fs_group_as_the_kubelet_applies_them() {
    let env = Env::new();
    let name = format!("sysctl-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  securityContext:
    fsGroup: 2000
    runAsUser: 1000
    sysctls: [{{name: net.ipv4.ip_local_port_range, value: '40000 41000'}}, {{name: kernel.shm_rmid_forced, value: '1'}}]
  volumes: [{{name: data, emptyDir: {{}}}}]
  containers:
  - name: c
    image: {IMAGE}
    command: [sleep, '3600']
    volumeMounts: [{{name: data, mountPath: /data}}]
"
        ),
    ));
    env.wait_phase(&name, "Running");
    let (_, out) = env.exec(
        &name,
        "c",
        &[
            "sh",
            "-c",
            "cat /proc/sys/net/ipv4/ip_local_port_range /proc/sys/kernel/shm_rmid_forced; id -G; touch /data/f; stat -c '%g %A' /data /data/f",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["40000", "41000"],
        "{out}"
    );
    assert_eq!(lines[1], "1", "{out}");
    assert!(
        lines[2].split(' ').any(|g| g == "2000"),
        "fsGroup joins the groups: {out}"
    );
    assert_eq!(lines[3], "2000 drwxrwsrwx", "{out}");
    assert_eq!(
        lines[4].split(' ').next(),
        Some("2000"),
        "new files belong to the group: {out}"
    );
    // The host's own values are untouched.
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    assert_ne!(host.split_whitespace().next(), Some("40000"));
    env.ok(&["delete", "pod", &name, "--force"]);

    // An unsafe sysctl is refused up front, and nothing is made.
    let bad = format!("unsafe-{}", unique());
    let out = env.apply(&pod_yaml(
        &bad,
        &format!(
            "  securityContext: {{sysctls: [{{name: kernel.msgmax, value: '1'}}]}}\n  containers: [{{name: c, image: {IMAGE}}}]\n"
        ),
    ));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("forbidden sysctl: \"kernel.msgmax\" not allowlisted"),
        "{err}"
    );
    assert!(env.pod_names().is_empty());
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}
