//! User namespaces (`hostUsers: false`): each pod gets its own block of 65,536 host IDs,
//! root inside is an unprivileged user outside, and the image and the volumes keep their
//! owners inside through ID-mapped mounts.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use crate::harness::*;

/// The host UID of the process whose command line holds `marker`.
fn host_uid_of(marker: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if !cmd.contains(marker) {
            return None;
        }
        std::fs::metadata(e.path()).ok().map(|m| m.uid())
    })
}

/// The first host ID of the only range in a `uid_map`/`gid_map` text.
fn first_host_id(map: &str) -> u32 {
    let f: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(f.len(), 3, "one range: {map:?}");
    assert_eq!(f[0], "0", "{map:?}");
    assert_eq!(f[2], "65536", "{map:?}");
    f[1].parse().unwrap()
}

#[test]
fn pods_with_host_users_false_get_their_own_user_namespace() {
    let env = Env::new();
    let host = env.path().join("hostdir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("owned"), "x").unwrap();
    std::os::unix::fs::chown(host.join("owned"), Some(1234), Some(2345)).unwrap();
    let names: Vec<String> = (0..2).map(|i| format!("userns{i}-{}", unique())).collect();
    let sleeps: Vec<String> = (0..2).map(|i| format!("{}", 36000 + i)).collect();
    for (i, name) in names.iter().enumerate() {
        env.apply_ok(&pod_yaml(
            name,
            &format!(
                "  hostUsers: false
  containers:
  - name: app
    image: {IMAGE}
    command: [sh, -c, 'echo root > /etc/written && touch /data/made && sleep {sleep}']
    securityContext:
      procMount: {proc_mount}
    volumeMounts:
    - {{name: data, mountPath: /data}}
    - {{name: host, mountPath: /host}}
  volumes:
  - {{name: data, emptyDir: {{}}}}
  - {{name: host, hostPath: {{path: {host}}}}}
",
                sleep = sleeps[i],
                proc_mount = if i == 0 { "Default" } else { "Unmasked" },
                host = host.display(),
            ),
        ));
    }
    let mut firsts = Vec::new();
    for (i, name) in names.iter().enumerate() {
        env.wait_for(name, Duration::from_secs(30), |p| {
            p["status"]["phase"] == "Running"
        });
        let (code, uid_map) = env.exec(name, "app", &["cat", "/proc/self/uid_map"]);
        assert_eq!(code, 0, "{uid_map}");
        let first = first_host_id(&uid_map);
        assert!(first >= 65536 && first % 65536 == 0, "{uid_map}");
        let (_, gid_map) = env.exec(name, "app", &["cat", "/proc/self/gid_map"]);
        assert_eq!(first_host_id(&gid_map), first);
        firsts.push(first);

        // Root inside, an ID of the pod's block outside.
        let (_, id) = env.exec(name, "app", &["id"]);
        assert!(id.starts_with("uid=0(root) gid=0(root)"), "{id}");
        let marker = format!("sleep {}", sleeps[i]);
        assert_eq!(host_uid_of(&marker), Some(first), "{marker}");

        // The image's files are root's inside, and root could write to /etc; what it
        // writes is stored as the pod's root on the host.
        let (code, ls) = env.exec(
            name,
            "app",
            &[
                "sh",
                "-c",
                "stat -c '%u:%g' /etc/passwd /etc/written /data/made /host/owned",
            ],
        );
        assert_eq!(code, 0, "{ls}");
        assert_eq!(ls, "0:0\n0:0\n0:0\n1234:2345\n", "owners inside");
        // Volumes are ID-mapped: on the host the emptyDir file is root's, as the kubelet's.
        let pod = env.pod(name);
        let uid = pod["metadata"]["uid"].as_str().unwrap();
        let made = env.path().join(format!(
            "lib/pods/{uid}/volumes/kubernetes.io~empty-dir/data/made"
        ));
        let meta = std::fs::metadata(&made).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", made.display());

        // /proc is masked by default; Unmasked leaves it whole.
        let (_, mounts) = env.exec(name, "app", &["cat", "/proc/self/mountinfo"]);
        let masked = mounts.contains(" /proc/keys ");
        assert_eq!(masked, i == 0, "procMount of pod {i}: {mounts}");
        // The pod's own user namespace is not the host's.
        let (_, ns) = env.exec(name, "app", &["readlink", "/proc/self/ns/user"]);
        let host_ns = std::fs::read_link("/proc/self/ns/user").unwrap();
        assert_ne!(ns.trim(), host_ns.to_string_lossy(), "user namespace");
    }
    assert_ne!(firsts[0], firsts[1], "two pods share no IDs");

    // A user other than root: its process and an exec into it are that user of the pod's
    // block, with the container's capabilities and no_new_privs.
    let user = format!("usernsuser-{}", unique());
    env.apply_ok(&pod_yaml(
        &user,
        &format!(
            "  hostUsers: false
  securityContext: {{runAsUser: 1000, runAsGroup: 3000, supplementalGroups: [4000]}}
  containers:
  - name: app
    image: {IMAGE}
    command: [sleep, '36002']
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {{drop: [ALL]}}
"
        ),
    ));
    env.wait_for(&user, Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Running"
    });
    let (code, who) = env.exec(
        &user,
        "app",
        &[
            "sh",
            "-c",
            "id; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; cat /proc/self/uid_map",
        ],
    );
    assert_eq!(code, 0, "{who}");
    assert!(
        who.starts_with(
            "uid=1000(default-user) gid=3000 groups=3000,4000,50000(group-defined-in-image)\n"
        ),
        "{who}"
    );
    assert!(who.contains("CapEff:\t0000000000000000"), "{who}");
    assert!(who.contains("NoNewPrivs:\t1"), "{who}");
    let first = first_host_id(who.lines().last().unwrap());
    assert!(!firsts.contains(&first), "a third block: {who}");
    assert_eq!(host_uid_of("sleep 36002"), Some(first + 1000));
    let out = env.run(&["exec", "-t", &user, "--", "id", "-u"]);
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    assert_eq!(text.trim(), "1000", "exec -t: {text}");

    // A pod's own user namespace goes with its own network, as the API server says.
    let bad = env.apply(&pod_yaml(
        &format!("usernsnet-{}", unique()),
        &format!(
            "  hostUsers: false\n  hostNetwork: true\n  containers: [{{name: a, image: {IMAGE}}}]\n"
        ),
    ));
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("spec.hostNetwork: Forbidden: when `hostUsers` is false"),
        "{err}"
    );

    let names: Vec<String> = names.into_iter().chain([user]).collect();
    for name in &names {
        env.ok(&["delete", "pod", name, "--force"]);
    }
    for name in &names {
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            !env.pod_names().contains(name)
        });
        assert!(gone, "{name} deleted");
    }
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
    for s in sleeps.iter().map(String::as_str).chain(["36002"]) {
        assert_eq!(host_uid_of(&format!("sleep {s}")), None, "no process left");
    }
}
