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
