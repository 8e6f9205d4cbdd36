//! Pods whose images come from a real registry on loopback: pull secrets, pull policy,
//! back-off and events, mirrors, and the `image pull|push|prune` commands.

use std::time::Duration;

use peapod_testkit::{RegistryOptions, TestRegistry};

use crate::harness::*;

/// A config section that keeps the developer's own credentials out of the test, plus `more`.
fn registries(auth_file: &str, more: &str) -> String {
    format!("[registries]\nauth_file = \"{auth_file}\"\n{more}")
}

fn events(env: &Env, pod: &str) -> String {
    env.ok(&["describe", "pod", pod])
}

#[test]
fn pod_pulls_with_an_image_pull_secret_from_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(
        &dir.path().join("reg"),
        &RegistryOptions {
            basic_auth: Some(("bob".into(), "hunter2".into())),
            ..Default::default()
        },
    )
    .unwrap();
    // The pusher's credentials come from its auth file; the pod's from its Secret.
    let auth = dir.path().join("auth.json");
    std::fs::write(
        &auth,
        format!(
            r#"{{"auths": {{"{}": {{"auth": "Ym9iOmh1bnRlcjI="}}}}}}"#,
            reg.addr
        ),
    )
    .unwrap();
    let pusher = Env::with_config(0.2, 1.0, &registries(auth.to_str().unwrap(), ""));
    let image = format!("{}/team/app:1.0", reg.addr);
    let out = pusher.ok(&["image", "push", IMAGE, &image]);
    assert!(out.contains("Pushed"), "{out}");

    let env = Env::with_config(0.2, 1.0, &registries("/nonexistent/auth.json", ""));
    let name = format!("sec-{}", unique());
    let config_json = format!(
        r#"{{"auths":{{"{}":{{"username":"bob","password":"hunter2"}}}}}}"#,
        reg.addr
    );
    let manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: regcred}}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{config_json}'\n---\n{}",
        pod_yaml(
            &name,
            &format!(
                "  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - {{name: c, image: '{image}', command: [sleep, '300']}}\n"
            )
        )
    );
    env.apply_ok(&manifest);
    let pod = env.wait_phase(&name, "Running");
    let digest = env.ok(&["image", "inspect", &image]);
    let v: serde_json::Value = serde_json::from_str(&digest).unwrap();
    let repo_digest = v[0]["RepoDigests"][0].as_str().unwrap().to_string();
    assert!(repo_digest.starts_with(&format!("{}/team/app@sha256:", reg.addr)));
    assert_eq!(cstatus(&pod, "c")["imageID"], repo_digest.as_str());
    let ev = events(&env, &name);
    assert!(ev.contains(&format!("Pulling image \"{image}\"")), "{ev}");
    assert!(
        ev.contains(&format!("Successfully pulled image \"{image}\" in")),
        "{ev}"
    );
    assert!(ev.contains("Image size:"), "{ev}");
    // Without the secret: a clear refusal.
    let other = format!("nosec-{}", unique());
    env.ok(&["image", "rm", "--force", &image]);
    env.apply_ok(&pod_yaml(
        &other,
        &format!("  containers:\n  - {{name: c, image: '{image}', command: [sleep, '300']}}\n"),
    ));
    let pod = env.wait_for(&other, Duration::from_secs(20), |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"
    });
    let msg = cstatus(&pod, "c")["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("authentication required or credentials rejected"),
        "{msg}"
    );
    env.ok(&["delete", "pod", &name, &other, "--grace-period", "0"]);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[test]
fn missing_image_backs_off_then_runs_once_pushed() {
    let dir = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(&dir.path().join("reg"), &RegistryOptions::default()).unwrap();
    let env = Env::with_config(0.5, 2.0, &registries("/nonexistent/auth.json", ""));
    let image = format!("{}/late/app:2", reg.addr);
    let name = format!("late-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!("  containers:\n  - {{name: c, image: '{image}', command: [sleep, '300']}}\n"),
    ));
    let pod = env.wait_for(&name, Duration::from_secs(20), |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"
    });
    let msg = cstatus(&pod, "c")["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("not found on"), "{msg}");
    let pod = env.wait_for(&name, Duration::from_secs(20), |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    });
    let msg = cstatus(&pod, "c")["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.starts_with(&format!(
            "Back-off pulling image \"{image}\": ErrImagePull: "
        )),
        "{msg}"
    );
    assert_eq!(pod["status"]["phase"], "Pending");
    let ev = events(&env, &name);
    assert!(
        ev.contains(&format!("Failed to pull image \"{image}\"")),
        "{ev}"
    );
    assert!(ev.contains("Error: ErrImagePull"), "{ev}");
    assert!(
        ev.contains(&format!("Back-off pulling image \"{image}\"")),
        "{ev}"
    );
    // Pushed meanwhile: the next attempt after the back-off succeeds.
    env.ok(&["image", "push", IMAGE, &image]);
    env.wait_phase(&name, "Running");
    env.ok(&["delete", "pod", &name, "--grace-period", "0"]);
}

#[test]
fn mirror_for_registry_k8s_io_and_policy_always() {
    let dir = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(&dir.path().join("reg"), &RegistryOptions::default()).unwrap();
    let env = Env::with_config(
        0.2,
        1.0,
        &registries(
            "/nonexistent/auth.json",
            &format!(
                "[registries.hosts.\"registry.k8s.io\"]\nmirrors = [\"http://{}\"]\n",
                reg.addr
            ),
        ),
    );
    env.ok(&[
        "image",
        "push",
        IMAGE,
        &format!("{}/e2e/busybox:1.0", reg.addr),
    ]);
    let name = format!("mirror-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        "  containers:\n  - {name: c, image: 'registry.k8s.io/e2e/busybox:1.0', imagePullPolicy: Always, command: [sleep, '300']}\n",
    ));
    let pod = env.wait_phase(&name, "Running");
    assert!(
        cstatus(&pod, "c")["imageID"]
            .as_str()
            .unwrap()
            .starts_with("registry.k8s.io/e2e/busybox@sha256:")
    );
    let ev = events(&env, &name);
    assert!(
        ev.contains("Successfully pulled image \"registry.k8s.io/e2e/busybox:1.0\""),
        "{ev}"
    );
    // Always pulls even though it is present now: the manifest is fetched again, the
    // layer is not.
    let layer_gets = |env: &Env| {
        let v: serde_json::Value =
            serde_json::from_str(&env.ok(&["image", "inspect", "registry.k8s.io/e2e/busybox:1.0"]))
                .unwrap();
        reg.blob_gets(v[0]["LayerBlobs"][0].as_str().unwrap())
    };
    let layers_before = layer_gets(&env);
    let manifests_before = reg.gets("/manifests/1.0 ");
    assert!(manifests_before >= 1);
    let again = format!("mirror2-{}", unique());
    env.apply_ok(&pod_yaml(
        &again,
        "  containers:\n  - {name: c, image: 'registry.k8s.io/e2e/busybox:1.0', imagePullPolicy: Always, command: [sleep, '300']}\n",
    ));
    env.wait_phase(&again, "Running");
    assert!(events(&env, &again).contains("Successfully pulled image"));
    assert_eq!(layer_gets(&env), layers_before);
    assert!(reg.gets("/manifests/1.0 ") > manifests_before);
    env.ok(&["delete", "pod", &name, &again, "--grace-period", "0"]);
}

#[test]
fn image_pull_ls_prune_and_concurrent_pulls() {
    let dir = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(&dir.path().join("reg"), &RegistryOptions::default()).unwrap();
    let env = Env::with_config(0.2, 1.0, &registries("/nonexistent/auth.json", ""));
    let image = format!("{}/cli/busybox:3", reg.addr);
    env.ok(&["image", "push", IMAGE, &image]);
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["image", "inspect", IMAGE])).unwrap();
    let layer = v[0]["LayerBlobs"][0].as_str().unwrap().to_string();
    // Five pulls at once into an empty store: one download of each blob.
    let fresh = Env::with_config(0.2, 1.0, &registries("/nonexistent/auth.json", ""));
    fresh.ok(&["image", "rm", IMAGE]);
    fresh.ok(&["image", "prune"]);
    let children: Vec<_> = (0..5)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_peapod"))
                .arg("--config")
                .arg(&fresh.config)
                .args(["image", "pull", &image])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        // Not a terminal: plain lines.
        assert!(text.contains(&format!("Pulling {image}")), "{text}");
        assert!(text.contains(&format!("Pulled {image}")), "{text}");
        assert!(!text.contains('\x1b'), "{text}");
    }
    assert_eq!(reg.blob_gets(&layer), 1);
    let ls = fresh.ok(&["image", "ls"]);
    assert!(
        ls.contains(&format!("{}/cli/busybox", reg.addr)) && ls.contains(" 3 "),
        "{ls}"
    );
    // -q prints the name and digest only.
    let q = fresh.ok(&["image", "pull", "-q", &image]);
    assert!(q.trim().starts_with(&format!("{image}@sha256:")), "{q}");
    // A pod uses it: prune keeps it; once the pod is gone, prune empties the store.
    let name = format!("prune-{}", unique());
    fresh.apply_ok(&pod_yaml(
        &name,
        &format!("  containers:\n  - {{name: c, image: '{image}', command: [sleep, '300']}}\n"),
    ));
    fresh.wait_phase(&name, "Running");
    let out = fresh.ok(&["image", "prune"]);
    assert!(out.contains("Removed 0 image(s)"), "{out}");
    fresh.ok(&["delete", "pod", &name, "--grace-period", "0"]);
    let out = fresh.ok(&["image", "prune"]);
    assert!(out.contains(&format!("Deleted: {image}")), "{out}");
    let store = fresh.path().join("lib/images");
    for sub in ["blobs/sha256", "snapshots", "tmp", "locks"] {
        assert_eq!(
            std::fs::read_dir(store.join(sub)).unwrap().count(),
            0,
            "{sub} is not empty after prune"
        );
    }
    // Bad input: a clear error naming the cause.
    let out = fresh.run(&["image", "pull", "--platform", "linux", &image]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid platform"));
}

/// An image that umoci built (from the host's busybox) and skopeo pushed runs as a pod.
#[test]
fn pod_from_an_image_built_by_umoci_and_pushed_by_skopeo() {
    let dir = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(&dir.path().join("reg"), &RegistryOptions::default()).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["umoci", "init", "--layout", "lay"]);
    run(&["umoci", "new", "--image", "lay:bb"]);
    run(&["umoci", "unpack", "--image", "lay:bb", "bundle"]);
    let rootfs = dir.path().join("bundle/rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy(peapod_testkit::HOST_BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep", "cat"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    std::fs::write(rootfs.join("made-by"), "umoci\n").unwrap();
    run(&["umoci", "repack", "--image", "lay:bb", "bundle"]);
    run(&[
        "umoci",
        "config",
        "--image",
        "lay:bb",
        "--config.cmd",
        "sh",
        "--config.env",
        "PATH=/bin",
    ]);
    let image = format!("{}/umoci/bb:1", reg.addr);
    run(&[
        "skopeo",
        "copy",
        "-q",
        "--dest-tls-verify=false",
        "oci:lay:bb",
        &format!("docker://{image}"),
    ]);

    let env = Env::with_config(0.2, 1.0, &registries("/nonexistent/auth.json", ""));
    let name = format!("umoci-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!("  containers:\n  - {{name: c, image: '{image}', command: [sleep, '300']}}\n"),
    ));
    env.wait_phase(&name, "Running");
    let (code, out) = env.exec(&name, "c", &["cat", "/made-by"]);
    assert_eq!((code, out.trim()), (0, "umoci"));
    env.ok(&["delete", "pod", &name, "--grace-period", "0"]);
}

/// On a terminal, `image pull` redraws one line per layer with bytes, rate and time left.
#[test]
fn image_pull_progress_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(&dir.path().join("reg"), &RegistryOptions::default()).unwrap();
    let env = Env::with_config(0.2, 1.0, &registries("/nonexistent/auth.json", ""));
    let image = format!("{}/tty/busybox:1", reg.addr);
    env.ok(&["image", "push", IMAGE, &image]);
    env.ok(&["image", "rm", IMAGE]);
    env.ok(&["image", "prune"]);
    let cmd = format!(
        "{} --config {} image pull {image}",
        env!("CARGO_BIN_EXE_peapod"),
        env.config.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("\x1b["), "no redrawing: {text:?}");
    assert!(text.contains("Pull complete"), "{text:?}");
    assert!(
        text.contains("ETA") || text.contains("Verified"),
        "{text:?}"
    );
    assert!(text.contains(&format!("Pulled {image}")), "{text:?}");
}

/// A configured infra image that is not in the store is pulled when the first sandbox needs it.
#[test]
fn infra_image_is_pulled_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(&dir.path().join("reg"), &RegistryOptions::default()).unwrap();
    let infra = format!("{}/infra/pause:1", reg.addr);
    // Another store builds and pushes the infra image.
    let pusher = Env::with_config(0.2, 1.0, &registries("/nonexistent/auth.json", ""));
    pusher.load_image(
        "localhost/peapod/infra:1.0",
        &peapod_testkit::ImageOptions {
            entrypoint: vec!["sleep".into()],
            cmd: vec!["2147483647".into()],
            ..Default::default()
        },
    );
    pusher.ok(&["image", "push", "localhost/peapod/infra:1.0", &infra]);
    let env = Env::with_config(
        0.2,
        1.0,
        &format!(
            "infra_image = \"{infra}\"\n{}",
            registries("/nonexistent/auth.json", "")
        ),
    );
    let name = format!("infra-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!("  containers:\n  - {{name: c, image: {IMAGE}, command: [sleep, '300']}}\n"),
    ));
    env.wait_phase(&name, "Running");
    assert!(
        env.ok(&["image", "ls"])
            .contains(&format!("{}/infra/pause", reg.addr))
    );
    env.ok(&["delete", "pod", &name, "--force"]);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

/// A pod deleted while its image is being pulled from a registry that never answers goes at
/// once, leaving nothing.
#[test]
fn delete_during_a_hanging_pull() {
    // Accepts connections (the kernel does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let env = Env::with_config(0.2, 1.0, &registries("/nonexistent/auth.json", ""));
    let name = format!("hang-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:\n  - {{name: c, image: '{addr}/hang/app:1', command: [sleep, '300']}}\n"
        ),
    ));
    env.wait_for(&name, Duration::from_secs(20), |_| {
        events(&env, &name).contains("Pulling image")
    });
    let pod = env.pod(&name);
    assert_eq!(
        cstatus(&pod, "c")["state"]["waiting"]["reason"],
        "ContainerCreating"
    );
    let t = std::time::Instant::now();
    env.ok(&["delete", "pod", &name, "--grace-period", "0"]);
    // The pull alone would wait 60 s for an answer (the read timeout).
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "delete waited for the pull"
    );
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
    drop(silent);
}
