//! Pulling and pushing against a real registry (Debian's `docker-registry`) on loopback.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use peapod_image::{Credential, Error, Keyring, Progress, PullOptions, Registry, Store};
use peapod_testkit::{
    Compression, HOST_BUSYBOX, ImageOptions, RegistryOptions, TestRegistry, busybox_layer,
    make_test_ca, write_image_archive, write_multiarch_archive,
};
use peapod_types::config::{Registries, RegistryHost};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A store of its own, holding the archive's images.
fn loaded(dir: &Path, archive: &Path) -> Store {
    let store = Store::open(dir).unwrap();
    store.load_archive(archive).unwrap();
    store
}

fn busybox_archive(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(format!("{}.tar", name.replace(['/', ':'], "_")));
    peapod_testkit::write_busybox_archive(HOST_BUSYBOX.as_ref(), name, &p).unwrap();
    p
}

fn settings() -> Registries {
    Registries {
        // No credentials from the environment of whoever runs the tests.
        auth_file: Some("/nonexistent/peapod-test-auth.json".into()),
        ..Registries::default()
    }
}

/// A layer of `n` bytes that does not compress.
fn noise_layer(path: &str, n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let data: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut t = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    t.append_data(&mut h, path, data.as_slice()).unwrap();
    t.into_inner().unwrap()
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

#[test]
fn push_then_pull_by_tag_and_by_digest_and_run_layers() {
    let d = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(&d.path().join("reg"), &RegistryOptions::default()).unwrap();
    let name = format!("{}/peapod/busybox:1.0", reg.addr);
    let src = loaded(&d.path().join("src"), &busybox_archive(d.path(), &name));
    let pushed = rt()
        .block_on(Registry::new(src.clone(), settings()).unwrap().push(
            &name,
            None,
            &PullOptions::default(),
        ))
        .unwrap();
    assert_eq!(pushed, src.get(&name).unwrap().manifest_digest);

    let dst = Store::open(d.path().join("dst")).unwrap();
    let client = Registry::new(dst.clone(), settings()).unwrap();
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ev = events.clone();
    let opts = PullOptions {
        progress: Some(Arc::new(move |p: &Progress| {
            ev.lock().unwrap().push(format!("{p:?}"))
        })),
        ..Default::default()
    };
    let img = rt().block_on(client.pull(&name, &opts)).unwrap();
    assert_eq!(img.name, name);
    assert_eq!(img.manifest_digest, pushed);
    assert_eq!(
        img.repo_digest(),
        format!("{}/peapod/busybox@{pushed}", reg.addr)
    );
    let events = events.lock().unwrap().join("\n");
    assert!(
        events.contains("Resolved") && events.contains("Unpacked"),
        "{events}"
    );
    // Unpacked at pull time: the snapshot is there before any container asks.
    let snap = dst.snapshot_dir(&img.chain_ids()[0]).join("fs");
    assert!(snap.join("bin/busybox").is_file());
    // By digest: the same image under its digest name, nothing downloaded again.
    let gets = reg.blob_gets(img.layers[0].as_str());
    let by_digest = format!("{}/peapod/busybox@{pushed}", reg.addr);
    let again = rt().block_on(client.pull(&by_digest, &opts)).unwrap();
    assert_eq!(again.manifest_digest, pushed);
    assert_eq!(reg.blob_gets(img.layers[0].as_str()), gets);
    assert_eq!(
        dst.get(&by_digest).unwrap().config_digest,
        img.config_digest
    );
    // A digest that is not the tag's is refused.
    let wrong = format!("{}/peapod/busybox@sha256:{}", reg.addr, "0".repeat(64));
    let err = rt().block_on(client.pull(&wrong, &opts)).unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    // A name nobody pushed.
    let err = rt()
        .block_on(client.pull(&format!("{}/nobody/here:1", reg.addr), &opts))
        .unwrap_err();
    assert!(err.to_string().contains("not found on"), "{err}");
}

#[test]
fn skopeo_pushed_images_index_and_compressions() {
    let d = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(&d.path().join("reg"), &RegistryOptions::default()).unwrap();
    let bb = busybox_layer(HOST_BUSYBOX.as_ref()).unwrap();
    // An index with an image for another architecture; layers gzip, zstd and plain.
    let archive = d.path().join("multi.tar");
    write_multiarch_archive(
        "example/multi:1",
        &[
            (bb.clone(), Compression::Gzip),
            (noise_layer("z/data", 1000, 1), Compression::Zstd),
            (noise_layer("plain/data", 1000, 2), Compression::None),
        ],
        &archive,
    )
    .unwrap();
    let copy = |src: String, dst: String, extra: &[&str]| {
        let out = Command::new("skopeo")
            .args(["copy", "--dest-tls-verify=false"])
            .args(extra)
            .arg(&src)
            .arg(&dst)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    copy(
        format!("oci-archive:{}", archive.display()),
        format!("docker://{}/example/multi:1", reg.addr),
        &["--all"],
    );
    // Docker schema 2, written by skopeo's own conversion.
    let single = d.path().join("single.tar");
    write_image_archive(
        "example/v2s2:1",
        &[(bb, Compression::Gzip)],
        &ImageOptions::default(),
        &single,
    )
    .unwrap();
    copy(
        format!("oci-archive:{}", single.display()),
        format!("docker://{}/example/v2s2:1", reg.addr),
        &["--format", "v2s2"],
    );

    let store = Store::open(d.path().join("store")).unwrap();
    let client = Registry::new(store.clone(), settings()).unwrap();
    let img = rt()
        .block_on(client.pull(
            &format!("{}/example/multi:1", reg.addr),
            &PullOptions::default(),
        ))
        .unwrap();
    assert_eq!(img.layers.len(), 3);
    let index = img.index_digest.clone().expect("resolved through an index");
    assert!(img.repo_digest().ends_with(index.as_str()));
    let snaps = store.snapshots(&img).unwrap();
    assert!(snaps[0].join("bin/busybox").exists());
    assert!(snaps[1].join("z/data").exists());
    assert!(snaps[2].join("plain/data").exists());
    assert!(!snaps.iter().any(|s| s.join("wrong-arch").exists()));
    // The other platform on request.
    let other = if peapod_testkit::host_arch() == "arm64" {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    let img2 = rt()
        .block_on(client.pull(
            &format!("{}/example/multi:1", reg.addr),
            &PullOptions {
                platform: Some(peapod_image::Platform::parse(other).unwrap()),
                ..Default::default()
            },
        ))
        .unwrap();
    assert!(
        store.snapshots(&img2).unwrap()[0]
            .join("wrong-arch")
            .exists()
    );

    let v2 = rt()
        .block_on(client.pull(
            &format!("{}/example/v2s2:1", reg.addr),
            &PullOptions::default(),
        ))
        .unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&store.read_blob(&v2.manifest_digest).unwrap()).unwrap();
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert!(
        store.snapshots(&v2).unwrap()[0]
            .join("bin/busybox")
            .exists()
    );
}

#[test]
fn basic_auth_from_config_file_and_pull_secret() {
    let d = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(
        &d.path().join("reg"),
        &RegistryOptions {
            basic_auth: Some(("alice".into(), "s3cret".into())),
            ..Default::default()
        },
    )
    .unwrap();
    let name = format!("{}/private/busybox:1", reg.addr);
    let src = loaded(&d.path().join("src"), &busybox_archive(d.path(), &name));
    let mut good = Keyring::new();
    good.add(
        &reg.addr,
        Credential {
            username: "alice".into(),
            password: "s3cret".into(),
        },
    );
    let with = |k: &Keyring| PullOptions {
        keyring: k.clone(),
        ..Default::default()
    };
    let pusher = Registry::new(src, settings()).unwrap();
    let err = rt()
        .block_on(pusher.push(&name, None, &PullOptions::default()))
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized(_)), "{err}");
    rt().block_on(pusher.push(&name, None, &with(&good)))
        .unwrap();

    let store = Store::open(d.path().join("store")).unwrap();
    let client = Registry::new(store.clone(), settings()).unwrap();
    // Anonymous, then wrong credentials: a clear refusal, nothing stored.
    let err = rt()
        .block_on(client.pull(&name, &PullOptions::default()))
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized(_)), "{err}");
    assert!(err.to_string().contains("credentials"), "{err}");
    let mut bad = Keyring::new();
    bad.add(
        &reg.addr,
        Credential {
            username: "alice".into(),
            password: "wrong".into(),
        },
    );
    let err = rt().block_on(client.pull(&name, &with(&bad))).unwrap_err();
    assert!(matches!(err, Error::Unauthorized(_)), "{err}");
    assert!(store.images().unwrap().is_empty());
    assert_eq!(entries(&store.dir().join("blobs/sha256")), 0);
    // A pull secret (a dockerconfigjson) works; a wrong one before it is skipped.
    let mut secret = bad.clone();
    let json = format!(
        r#"{{"auths": {{"{}": {{"auth": "YWxpY2U6czNjcmV0"}}}}}}"#,
        reg.addr
    );
    secret.add_docker_config(json.as_bytes(), "secret").unwrap();
    rt().block_on(client.pull(&name, &with(&secret))).unwrap();
    // So does the node's credentials file.
    let auth_file = d.path().join("auth.json");
    std::fs::write(&auth_file, &json).unwrap();
    let store2 = Store::open(d.path().join("store2")).unwrap();
    let node = Registry::new(
        store2.clone(),
        Registries {
            auth_file: Some(auth_file),
            ..Registries::default()
        },
    )
    .unwrap();
    rt().block_on(node.pull(&name, &PullOptions::default()))
        .unwrap();
    // And the config file's own user for the host.
    let store3 = Store::open(d.path().join("store3")).unwrap();
    let mut s = settings();
    s.hosts.insert(
        reg.addr.clone(),
        RegistryHost {
            username: Some("alice".into()),
            password: Some("s3cret".into()),
            ..Default::default()
        },
    );
    rt().block_on(
        Registry::new(store3, s)
            .unwrap()
            .pull(&name, &PullOptions::default()),
    )
    .unwrap();
}

#[test]
fn tls_with_a_test_ca() {
    let d = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_test_ca(&d.path().join("pki")).unwrap();
    let reg = TestRegistry::start(
        &d.path().join("reg"),
        &RegistryOptions {
            tls: Some((cert, key)),
            ..Default::default()
        },
    )
    .unwrap();
    let name = format!("{}/tls/busybox:1", reg.addr);
    let src = loaded(&d.path().join("src"), &busybox_archive(d.path(), &name));
    let mut s = settings();
    s.hosts.insert(
        reg.addr.clone(),
        RegistryHost {
            ca_files: vec![ca],
            ..Default::default()
        },
    );
    rt().block_on(Registry::new(src, s.clone()).unwrap().push(
        &name,
        None,
        &PullOptions::default(),
    ))
    .unwrap();
    let store = Store::open(d.path().join("store")).unwrap();
    rt().block_on(
        Registry::new(store.clone(), s)
            .unwrap()
            .pull(&name, &PullOptions::default()),
    )
    .unwrap();
    // HTTPS without the CA: the certificate is not trusted.
    let mut untrusted = settings();
    untrusted.hosts.insert(
        reg.addr.clone(),
        RegistryHost {
            insecure: Some(false),
            ..Default::default()
        },
    );
    let other = Store::open(d.path().join("other")).unwrap();
    let err = rt()
        .block_on(
            Registry::new(other, untrusted)
                .unwrap()
                .pull(&name, &PullOptions::default()),
        )
        .unwrap_err()
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[test]
fn mirror_serves_another_registry() {
    let d = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(&d.path().join("reg"), &RegistryOptions::default()).unwrap();
    let local = format!("{}/e2e/busybox:1.0", reg.addr);
    let src = loaded(&d.path().join("src"), &busybox_archive(d.path(), &local));
    rt().block_on(Registry::new(src, settings()).unwrap().push(
        &local,
        None,
        &PullOptions::default(),
    ))
    .unwrap();
    let mut s = settings();
    s.hosts.insert(
        "registry.k8s.io".into(),
        RegistryHost {
            // A dead mirror first: it is skipped.
            mirrors: vec!["http://127.0.0.1:9".into(), format!("http://{}", reg.addr)],
            ..Default::default()
        },
    );
    let store = Store::open(d.path().join("store")).unwrap();
    let img = rt()
        .block_on(
            Registry::new(store.clone(), s)
                .unwrap()
                .pull("registry.k8s.io/e2e/busybox:1.0", &PullOptions::default()),
        )
        .unwrap();
    assert_eq!(img.name, "registry.k8s.io/e2e/busybox:1.0");
    assert!(store.get("registry.k8s.io/e2e/busybox:1.0").is_ok());
}

#[test]
fn tampered_blob_is_refused_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(&d.path().join("reg"), &RegistryOptions::default()).unwrap();
    let name = format!("{}/t/tampered:1", reg.addr);
    let src = loaded(&d.path().join("src"), &busybox_archive(d.path(), &name));
    rt().block_on(Registry::new(src.clone(), settings()).unwrap().push(
        &name,
        None,
        &PullOptions::default(),
    ))
    .unwrap();
    let layer = src.get(&name).unwrap().layers[0].clone();
    let file = reg.blob_file(layer.as_str());
    let mut data = std::fs::read(&file).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&file, &data).unwrap();
    let store = Store::open(d.path().join("store")).unwrap();
    let err = rt()
        .block_on(
            Registry::new(store.clone(), settings())
                .unwrap()
                .pull(&name, &PullOptions::default()),
        )
        .unwrap_err();
    assert!(err.to_string().contains("digest"), "{err}");
    assert!(!store.has_blob(&layer));
    assert!(store.images().unwrap().is_empty());
    assert_eq!(entries(&store.dir().join("snapshots")), 0);
    assert_eq!(entries(&store.dir().join("tmp")), 0);
}

#[test]
fn registry_killed_mid_pull_then_a_retry_succeeds() {
    let d = tempfile::tempdir().unwrap();
    let mut reg = TestRegistry::start(&d.path().join("reg"), &RegistryOptions::default()).unwrap();
    let name = format!("{}/t/big:1", reg.addr);
    let archive = d.path().join("big.tar");
    write_image_archive(
        &name,
        &[(noise_layer("big", 48 << 20, 7), Compression::None)],
        &ImageOptions::default(),
        &archive,
    )
    .unwrap();
    let src = loaded(&d.path().join("src"), &archive);
    rt().block_on(Registry::new(src.clone(), settings()).unwrap().push(
        &name,
        None,
        &PullOptions::default(),
    ))
    .unwrap();
    let layer = src.get(&name).unwrap().layers[0].clone();
    let store = Store::open(d.path().join("store")).unwrap();
    let client = Registry::new(store.clone(), settings()).unwrap();
    // Kill the registry as soon as the layer starts arriving.
    let pid = Arc::new(std::sync::Mutex::new(Some(reg.pid())));
    let killer = pid.clone();
    let opts = PullOptions {
        progress: Some(Arc::new(move |p: &Progress| {
            if let Progress::Downloading { .. } = p
                && let Some(pid) = killer.lock().unwrap().take()
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        })),
        ..Default::default()
    };
    let err = rt().block_on(client.pull(&name, &opts)).unwrap_err();
    assert!(
        pid.lock().unwrap().is_none(),
        "the layer never started: {err}"
    );
    assert!(!store.has_blob(&layer), "a partial blob is visible");
    assert_eq!(entries(&store.dir().join("tmp")), 0);
    assert!(store.images().unwrap().is_empty());
    reg.restart().unwrap();
    let img = rt()
        .block_on(client.pull(&name, &PullOptions::default()))
        .unwrap();
    assert!(store.snapshots(&img).unwrap()[0].join("big").is_file());
}

#[test]
fn shared_layers_download_and_unpack_once_even_when_pulled_together() {
    let d = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(&d.path().join("reg"), &RegistryOptions::default()).unwrap();
    let bb = busybox_layer(HOST_BUSYBOX.as_ref()).unwrap();
    let base = format!("{}/t/base:1", reg.addr);
    let app = format!("{}/t/app:1", reg.addr);
    let src = Store::open(d.path().join("src")).unwrap();
    for (name, layers) in [
        (&base, vec![(bb.clone(), Compression::Gzip)]),
        (
            &app,
            vec![
                (bb.clone(), Compression::Gzip),
                (noise_layer("app/data", 4 << 20, 3), Compression::Gzip),
            ],
        ),
    ] {
        let a = d.path().join("img.tar");
        write_image_archive(name, &layers, &ImageOptions::default(), &a).unwrap();
        src.load_archive(&a).unwrap();
        rt().block_on(Registry::new(src.clone(), settings()).unwrap().push(
            name,
            None,
            &PullOptions::default(),
        ))
        .unwrap();
    }
    let store = Store::open(d.path().join("store")).unwrap();
    // Five pulls of the app at once, each with its own client and runtime, as five
    // processes would.
    let threads: Vec<_> = (0..5)
        .map(|_| {
            let store = store.clone();
            let app = app.clone();
            std::thread::spawn(move || {
                let client = Registry::new(store, settings()).unwrap();
                rt().block_on(client.pull(&app, &PullOptions::default()))
                    .unwrap()
            })
        })
        .collect();
    let imgs: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let img = &imgs[0];
    // The lock files went with the work they guarded.
    assert_eq!(entries(&store.dir().join("locks")), 0);
    for digest in img.layers.iter().chain([&img.config_digest]) {
        assert_eq!(
            reg.blob_gets(digest.as_str()),
            1,
            "{digest} fetched more than once"
        );
    }
    // The base image shares its layer: nothing to download, the same snapshot.
    let client = Registry::new(store.clone(), settings()).unwrap();
    let b = rt()
        .block_on(client.pull(&base, &PullOptions::default()))
        .unwrap();
    assert_eq!(reg.blob_gets(b.layers[0].as_str()), 1);
    assert_eq!(
        store.snapshots(&b).unwrap()[0],
        store.snapshots(img).unwrap()[0]
    );
    assert_eq!(entries(&store.dir().join("snapshots")), 2);
    // Prune: with the app kept, the base's own blobs go, the shared ones stay.
    let pruned = store.prune(std::slice::from_ref(&img.name)).unwrap();
    assert_eq!(pruned.images, vec![b.name.clone()]);
    assert_eq!(pruned.snapshots, 0);
    assert!(store.has_blob(&b.layers[0]));
    let pruned = store.prune(&[]).unwrap();
    assert_eq!(pruned.snapshots, 2);
    assert_eq!(entries(&store.dir().join("blobs/sha256")), 0);
}

#[test]
fn bearer_tokens_from_the_registrys_challenge() {
    let d = tempfile::tempdir().unwrap();
    let tokens =
        peapod_testkit::TokenServer::start(&d.path().join("token"), "carol", "t0ken").unwrap();
    let reg = TestRegistry::start(
        &d.path().join("reg"),
        &RegistryOptions {
            token: Some((tokens.realm.clone(), tokens.cert.clone())),
            ..Default::default()
        },
    )
    .unwrap();
    let name = format!("{}/tok/busybox:1", reg.addr);
    let src = loaded(&d.path().join("src"), &busybox_archive(d.path(), &name));
    let mut good = Keyring::new();
    good.add(
        &reg.addr,
        Credential {
            username: "carol".into(),
            password: "t0ken".into(),
        },
    );
    let with = |k: &Keyring| PullOptions {
        keyring: k.clone(),
        ..Default::default()
    };
    rt().block_on(
        Registry::new(src, settings())
            .unwrap()
            .push(&name, None, &with(&good)),
    )
    .unwrap();
    assert!(tokens.issued() >= 1, "no token was asked for");
    let store = Store::open(d.path().join("store")).unwrap();
    let client = Registry::new(store.clone(), settings()).unwrap();
    let err = rt()
        .block_on(client.pull(&name, &PullOptions::default()))
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized(_)), "{err}");
    let mut bad = Keyring::new();
    bad.add(
        &reg.addr,
        Credential {
            username: "carol".into(),
            password: "nope".into(),
        },
    );
    let refused = tokens.refused();
    let err = rt().block_on(client.pull(&name, &with(&bad))).unwrap_err();
    assert!(matches!(err, Error::Unauthorized(_)), "{err}");
    assert!(tokens.refused() > refused, "the token server was not asked");
    let issued = tokens.issued();
    let img = rt().block_on(client.pull(&name, &with(&good))).unwrap();
    assert!(tokens.issued() > issued);
    assert!(
        store.snapshots(&img).unwrap()[0]
            .join("bin/busybox")
            .exists()
    );
}
