//! Images through the CLI: `image ls` and `rm`, the image's STOPSIGNAL and
//! `lifecycle.stopSignal`, and an image's entrypoint as the infra process (`infra_image`).

use std::time::{Duration, Instant};

use crate::harness::*;

#[test]
fn image_ls_and_rm() {
    let env = Env::new();
    env.load_image(
        "localhost/peapod/other:2.0",
        &peapod_testkit::ImageOptions::default(),
    );
    let ls = env.ok(&["image", "ls"]);
    let rows: Vec<Vec<&str>> = ls.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows[0],
        ["IMAGE", "TAG", "IMAGE", "ID", "DIGEST", "SIZE", "AGE"]
    );
    assert_eq!(rows.len(), 3, "{ls}");
    let busybox = rows
        .iter()
        .find(|r| r[0] == "localhost/peapod/busybox")
        .unwrap_or_else(|| panic!("{ls}"));
    assert_eq!(busybox[1], "1.0");
    assert_eq!(busybox[2].len(), 12);
    assert!(busybox[3].starts_with("sha256:"));
    assert!(
        rows.iter()
            .any(|r| r[0] == "localhost/peapod/other" && r[1] == "2.0")
    );

    // inspect: the same image, with its config and layers.
    let info: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", IMAGE])).unwrap();
    let info = &info[0];
    assert_eq!(info["RepoTags"][0], IMAGE);
    let id = info["Id"].as_str().unwrap();
    assert_eq!(id.len(), 64);
    assert!(id.starts_with(busybox[2]), "{info}");
    assert!(
        info["Digest"].as_str().unwrap().starts_with(busybox[3]),
        "{info}"
    );
    assert_eq!(info["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(info["Os"], "linux");
    assert_eq!(info["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert!(
        info["RepoDigests"][0]
            .as_str()
            .unwrap()
            .starts_with("localhost/peapod/busybox@sha256:")
    );
    let out = env.run(&["image", "inspect", "localhost/peapod/nope:1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("localhost/peapod/nope"));

    // An image a container uses is kept unless forced.
    let name = format!("user-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        "  containers:\n  - name: app\n    image: localhost/peapod/other:2.0\n    command: [sleep, '3600']\n",
    ));
    env.wait_phase(&name, "Running");
    let out = env.run(&["image", "rm", "localhost/peapod/other:2.0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by container app"), "{err}");
    assert!(env.ok(&["image", "ls"]).contains("localhost/peapod/other"));

    env.ok(&["delete", "pod", &name, "--force"]);
    let out = env.ok(&["image", "rm", "localhost/peapod/other:2.0"]);
    assert_eq!(out, "Untagged: localhost/peapod/other:2.0\n");
    let ls = env.ok(&["image", "ls"]);
    assert!(!ls.contains("localhost/peapod/other"), "{ls}");
    assert!(ls.contains("localhost/peapod/busybox"), "{ls}");

    // Removing what is not there names it.
    let out = env.run(&["image", "rm", "localhost/peapod/other:2.0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("localhost/peapod/other"), "{err}");

    // --force removes an image in use; the running container keeps its root.
    let name = format!("forced-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:\n  - name: app\n    image: {IMAGE}\n    command: [sleep, '3600']\n"
        ),
    ));
    env.wait_phase(&name, "Running");
    env.ok(&["image", "rm", "--force", IMAGE]);
    assert_eq!(env.exec(&name, "app", &["true"]).0, 0);
    env.ok(&["delete", "pod", &name, "--force"]);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

/// The image's STOPSIGNAL is what a graceful delete sends; `lifecycle.stopSignal` overrides it.
#[test]
fn image_stop_signal_and_lifecycle_stop_signal() {
    let env = Env::new();
    let img = "localhost/peapod/stopsignal:1.0";
    env.load_image(
        img,
        &peapod_testkit::ImageOptions {
            stop_signal: Some("SIGUSR1".into()),
            ..Default::default()
        },
    );
    let out = env.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let name = format!("stopsig-{}", unique());
    let trap = |file: &str| {
        format!(
            "[sh, -c, 'for s in TERM USR1 USR2; do trap \"echo $s > /out/{file}; exit 0\" $s; done; while true; do sleep 0.1; done']"
        )
    };
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  terminationGracePeriodSeconds: 10
  os: {{name: linux}}
  containers:
  - name: from-image
    image: {img}
    command: {}
    volumeMounts: [{{name: out, mountPath: /out}}]
  - name: from-spec
    image: {img}
    command: {}
    lifecycle: {{stopSignal: SIGUSR2}}
    volumeMounts: [{{name: out, mountPath: /out}}]
  - name: default
    image: {IMAGE}
    command: {}
    volumeMounts: [{{name: out, mountPath: /out}}]
  volumes:
  - {{name: out, hostPath: {{path: {}}}}}
",
            trap("from-image"),
            trap("from-spec"),
            trap("default"),
            out.display()
        ),
    ));
    env.wait_phase(&name, "Running");
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    env.ok(&["delete", "pod", &name]);
    assert!(t0.elapsed() < Duration::from_secs(8), "a trap did not fire");
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_default();
    assert_eq!(read("from-image"), "USR1\n");
    assert_eq!(read("from-spec"), "USR2\n");
    assert_eq!(read("default"), "TERM\n");
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

/// With `infra_image` set, the infra process is that image's entrypoint, in the image's
/// root, holding the namespaces the containers join.
#[test]
fn infra_image_runs_the_images_entrypoint() {
    let infra = "localhost/peapod/infra:1.0";
    let env = Env::with_config(0.2, 1.0, &format!("infra_image = \"{infra}\""));
    env.load_image(
        infra,
        &peapod_testkit::ImageOptions {
            entrypoint: vec!["sleep".into()],
            cmd: vec!["2147483647".into()],
            ..Default::default()
        },
    );
    let name = format!("infraimg-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:
  - name: app
    image: {IMAGE}
    command: [sleep, '3600']
"
        ),
    ));
    env.wait_phase(&name, "Running");
    let state = env.state(&name);
    let infra_pid = state["infra_pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no infra_pid in {state}"));
    let cmdline = std::fs::read(format!("/proc/{infra_pid}/cmdline")).unwrap();
    assert_eq!(cmdline, b"sleep\x002147483647\x00");
    let app_pid = state["containers"][0]["pid"].as_i64().unwrap();
    for ns in ["net", "ipc", "uts"] {
        let a = std::fs::read_link(format!("/proc/{infra_pid}/ns/{ns}")).unwrap();
        let b = std::fs::read_link(format!("/proc/{app_pid}/ns/{ns}")).unwrap();
        assert_eq!(a, b, "{ns} namespace not shared with the image's infra");
    }
    // The infra's root is the image's: it has busybox.
    assert!(
        std::path::Path::new(&format!("/proc/{infra_pid}/root/bin/busybox")).exists(),
        "the infra does not run in the image's root"
    );
    env.ok(&["delete", "pod", &name, "--force"]);
    assert!(!alive(infra_pid));
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());

    // An infra image that is not there: a clear error, nothing left.
    let env = Env::with_config(0.2, 1.0, "infra_image = \"localhost/peapod/missing:1.0\"");
    let name = format!("noinfra-{}", unique());
    env.apply(&pod_yaml(
        &name,
        &format!(
            "  containers:\n  - name: app\n    image: {IMAGE}\n    command: [sleep, '3600']\n"
        ),
    ));
    let pod = env.wait_for(&name, Duration::from_secs(30), |_| {
        env.ok(&["get", "events"])
            .contains("FailedCreatePodSandBox")
    });
    let events = env.ok(&["get", "events"]);
    assert!(
        events.contains("FailedCreatePodSandBox") && events.contains("localhost/peapod/missing"),
        "{events}\n{}",
        pod["status"]
    );
    env.ok(&["delete", "pod", &name, "--force"]);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}
