//! Volumes shared between containers: emptyDir (disk and memory), hostPath, subPath, readOnly.

use std::time::Duration;

use crate::harness::*;

fn fetch_until(env: &Env, pod: &str, container: &str, url: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, out) = env.exec(pod, container, &["wget", "-qO-", url]);
        if code == 0 {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "fetching {url} kept failing"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Scenario 1: a writer puts index.html into an emptyDir, busybox httpd serves it, and a
/// fetch over 127.0.0.1 inside the pod returns the text.
#[test]
fn shared_empty_dir_served_over_localhost() {
    let env = Env::new();
    let name = format!("share-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:
  - name: writer
    image: {IMAGE}
    command: [sh, -c, 'echo \"Hello from the debian container\" > /pod-data/index.html; exec sleep 3600']
    volumeMounts: [{{name: shared-data, mountPath: /pod-data}}]
  - name: web
    image: {IMAGE}
    command: [httpd, -f, -p, '80', -h, /usr/share/nginx/html]
    volumeMounts: [{{name: shared-data, mountPath: /usr/share/nginx/html}}]
  volumes:
  - name: shared-data
    emptyDir: {{}}
"
        ),
    ));
    env.wait_phase(&name, "Running");
    let body = fetch_until(&env, &name, "writer", "http://127.0.0.1:80/index.html");
    assert_eq!(body, "Hello from the debian container\n");
}

/// Scenario 2: an init container copies a file into an emptyDir; the app container sees it
/// at its own mount path.
#[test]
fn init_container_fills_volume_for_app() {
    let env = Env::new();
    let name = format!("initcopy-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  initContainers:
  - name: copy
    image: {IMAGE}
    command: [sh, -c, 'cp /etc/group /work/copied && echo seeded >> /work/copied']
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: app
    image: {IMAGE}
    command: [sh, -c, 'cat /srv/input/copied; exec sleep 3600']
    volumeMounts: [{{name: work, mountPath: /srv/input}}]
  volumes:
  - name: work
    emptyDir: {{}}
"
        ),
    ));
    env.wait_phase(&name, "Running");
    let (code, out) = env.exec(&name, "app", &["cat", "/srv/input/copied"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("root:x:0:") && out.ends_with("seeded\n"),
        "{out}"
    );
    let init = cstatus(&env.pod(&name), "copy").clone();
    assert_eq!(init["state"]["terminated"]["reason"], "Completed");
    assert_eq!(init["ready"], true);
}

/// hostPath types and their checks, readOnly, subPath and a memory-backed emptyDir with
/// its size limit.
#[test]
fn host_path_sub_path_read_only_and_memory() {
    let env = Env::new();
    let name = format!("hp-{}", unique());
    let host = env.path().join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("hello"), "from the host\n").unwrap();
    let created = env.path().join("made/by/peapod");
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:
  - name: app
    image: {IMAGE}
    command: [sleep, '3600']
    volumeMounts:
    - {{name: host, mountPath: /host, readOnly: true}}
    - {{name: made, mountPath: /made}}
    - {{name: mem, mountPath: /mem}}
    - {{name: mem, mountPath: /sub, subPath: a/b}}
  volumes:
  - name: host
    hostPath: {{path: {}, type: Directory}}
  - name: made
    hostPath: {{path: {}, type: DirectoryOrCreate}}
  - name: mem
    emptyDir: {{medium: Memory, sizeLimit: 8Mi}}
",
            host.display(),
            created.display()
        ),
    ));
    env.wait_phase(&name, "Running");
    assert_eq!(
        env.exec(&name, "app", &["cat", "/host/hello"]),
        (0, "from the host\n".into())
    );
    assert_ne!(
        env.exec(&name, "app", &["touch", "/host/nope"]).0,
        0,
        "a readOnly mount is writable"
    );
    assert!(
        created.is_dir(),
        "DirectoryOrCreate did not create the directory"
    );
    assert_eq!(
        env.exec(
            &name,
            "app",
            &["sh", "-c", "echo x > /made/f && cat /made/f"]
        )
        .0,
        0
    );
    let (_, df) = env.exec(&name, "app", &["sh", "-c", "grep ' /mem ' /proc/mounts"]);
    assert!(df.contains("tmpfs") && df.contains("size=8192k"), "{df}");
    assert_eq!(
        env.exec(
            &name,
            "app",
            &["sh", "-c", "echo deep > /sub/f && cat /mem/a/b/f"]
        ),
        (0, "deep\n".into())
    );
    // The memory-backed volume refuses writes past its limit.
    assert_ne!(
        env.exec(
            &name,
            "app",
            &["dd", "if=/dev/zero", "of=/mem/big", "bs=1M", "count=16"]
        )
        .0,
        0
    );
}

/// A hostPath whose type check fails keeps the pod pending with a FailedMount event and
/// creates no sandbox.
#[test]
fn host_path_type_check_failure() {
    let env = Env::new();
    let name = format!("hpbad-{}", unique());
    let file = env.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:
  - {{name: app, image: {IMAGE}, command: [sleep, '3600'], volumeMounts: [{{name: d, mountPath: /d}}]}}
  volumes:
  - name: d
    hostPath: {{path: {}, type: Directory}}
",
            file.display()
        ),
    ));
    std::thread::sleep(Duration::from_millis(500));
    let pod = env.pod(&name);
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(
        cstatus(&pod, "app")["state"]["waiting"]["reason"],
        "ContainerCreating"
    );
    let out = env.ok(&["get", "events"]);
    assert!(
        out.contains(&format!(
            "hostPath type check failed: {} is not a directory",
            file.display()
        )),
        "{out}"
    );
}

#[test]
fn sub_path_expr_mounts_the_directory_named_by_the_containers_variables() {
    let env = Env::new();
    let name = format!("subexpr-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  volumes: [{{name: logs, emptyDir: {{}}}}]
  containers:
  - name: writer
    image: {IMAGE}
    command: [sh, -c, 'echo hello > /logs/out; sleep 3600']
    env:
    - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    volumeMounts: [{{name: logs, mountPath: /logs, subPathExpr: 'pods/$(POD_NAME)'}}]
  - name: reader
    image: {IMAGE}
    command: [sleep, '3600']
    volumeMounts: [{{name: logs, mountPath: /all}}]
"
        ),
    ));
    env.wait_phase(&name, "Running");
    let path = format!("/all/pods/{name}/out");
    let mut out = String::new();
    for _ in 0..50 {
        let (code, text) = env.exec(&name, "reader", &["cat", &path]);
        if code == 0 {
            out = text;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(out, "hello\n");
    env.ok(&["delete", "pod", &name, "--force"]);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[test]
fn config_map_secret_and_downward_api_volumes() {
    let env = Env::new();
    let tag = unique();
    let objects = |lives: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: game-{tag}}}\ndata: {{lives: '{lives}', ui.properties: 'color=dark'}}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {{name: db-{tag}}}\nstringData: {{password: s3cret}}\n"
        )
    };
    let name = format!("projvol-{tag}");
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  volumes:
  - {{name: cfg, configMap: {{name: game-{tag}}}}}
  - {{name: sec, secret: {{secretName: db-{tag}, defaultMode: 0400}}}}
  - name: info
    downwardAPI:
      items:
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
  containers:
  - name: app
    image: {IMAGE}
    command: [sleep, '3600']
    volumeMounts:
    - {{name: cfg, mountPath: /etc/game}}
    - {{name: sec, mountPath: /etc/db}}
    - {{name: info, mountPath: /etc/info}}
"
        ),
    ));
    // The objects are not there yet: the volume cannot be set up, and the pod waits.
    let pending = env.wait_for(&name, std::time::Duration::from_secs(20), |_| {
        env.ok(&["get", "events"]).contains("FailedMount")
    });
    assert_eq!(pending["status"]["phase"], "Pending");
    let events = env.ok(&["get", "events"]);
    assert!(
        events.contains(&format!("configmap \"game-{tag}\" not found")),
        "{events}"
    );
    env.apply_ok(&objects("3"));
    env.wait_phase(&name, "Running");
    let sh = |cmd: &str| {
        let (code, out) = env.exec(&name, "app", &["sh", "-c", cmd]);
        assert_eq!(code, 0, "{cmd}: {out}");
        out
    };
    assert_eq!(
        sh("cat /etc/game/lives /etc/game/ui.properties"),
        "3color=dark"
    );
    assert_eq!(sh("cat /etc/db/password"), "s3cret");
    assert_eq!(sh("stat -L -c %a /etc/db/password"), "400\n");
    assert_eq!(sh("cat /etc/info/name"), name);
    // The atomic writer's layout, read-only mounts, and the Secret on tmpfs.
    assert_eq!(sh("readlink /etc/game/lives"), "..data/lives\n");
    assert!(sh("touch /etc/game/x 2>&1 || echo refused").contains("refused"));
    assert!(sh("grep ' /etc/db ' /proc/mounts").starts_with("tmpfs "));
    // An update of the ConfigMap reaches the mounted files.
    env.apply_ok(&objects("4"));
    let mut seen = String::new();
    for _ in 0..40 {
        seen = sh("cat /etc/game/lives");
        if seen == "4" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(seen, "4", "the update did not arrive");
    env.ok(&["delete", "pod", &name, "--force"]);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[test]
fn fs_group_can_read_a_secret_volume() {
    let env = Env::new();
    let tag = unique();
    let name = format!("fsgsecret-{tag}");
    env.apply_ok(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: key-{tag}}}\nstringData: {{token: abc}}\n---\n{}",
        pod_yaml(
            &name,
            &format!(
                "  securityContext: {{runAsUser: 1000, fsGroup: 2000}}\n  volumes: [{{name: s, secret: {{secretName: key-{tag}, defaultMode: 0400}}}}]\n  containers:\n  - name: app\n    image: {IMAGE}\n    command: [sleep, '3600']\n    volumeMounts: [{{name: s, mountPath: /s}}]\n"
            ),
        )
    ));
    env.wait_phase(&name, "Running");
    let (code, out) = env.exec(
        &name,
        "app",
        &["sh", "-c", "stat -L -c '%a %g' /s/token; cat /s/token"],
    );
    assert_eq!((code, out.as_str()), (0, "440 2000\nabc"));
    env.ok(&["delete", "pod", &name, "--force"]);
}

#[test]
fn a_claims_data_outlives_its_pods() {
    let env = Env::new();
    let tag = unique();
    let claim = format!("data-{tag}");
    let pod = |name: &str, cmd: &str| {
        pod_yaml(
            name,
            &format!(
                "  restartPolicy: Never\n  volumes: [{{name: d, persistentVolumeClaim: {{claimName: {claim}}}}}]\n  containers:\n  - name: app\n    image: {IMAGE}\n    command: [sh, -c, '{cmd}']\n    volumeMounts: [{{name: d, mountPath: /data}}]\n"
            ),
        )
    };
    // Without the claim the pod waits, as for a missing object.
    let writer = format!("writer-{tag}");
    env.apply_ok(&pod(&writer, "echo kept > /data/file"));
    env.wait_for(&writer, std::time::Duration::from_secs(20), |_| {
        env.ok(&["get", "events"])
            .contains(&format!("persistentvolumeclaim \"{claim}\" not found"))
    });
    let out = env.apply(&format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {claim}}}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n"
    ));
    let out = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.contains(&format!("persistentvolumeclaim/{claim} created")),
        "{out}"
    );
    env.wait_phase(&writer, "Succeeded");
    env.ok(&["delete", "pod", &writer]);
    let reader = format!("reader-{tag}");
    env.apply_ok(&pod(&reader, "cat /data/file"));
    env.wait_phase(&reader, "Succeeded");
    assert_eq!(env.ok(&["logs", &reader]), "kept\n");
    let table = env.ok(&["get", "pvc"]);
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with(&claim))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row[1], "Bound", "{table}");
    assert!(row[2].starts_with("pvc-"), "{table}");
    assert_eq!(&row[3..5], ["1Gi", "RWO"], "{table}");
    // In use: not deleted; then deleted with its data.
    let busy = env.run(&["delete", "pvc", &claim]);
    assert!(!busy.status.success());
    assert!(String::from_utf8_lossy(&busy.stderr).contains("in use by pod"));
    env.ok(&["delete", "pod", &reader]);
    assert_eq!(
        env.ok(&["delete", "pvc", &claim]),
        format!("persistentvolumeclaim \"{claim}\" deleted\n")
    );
    assert!(!env.path().join("lib/claims/default").join(&claim).exists());
}
