//! Pulling and pushing against a real registry (Debian's `docker-registry`) on loopback:
//! tags, digests, indexes, compressions, verification, interrupted and coalesced pulls.

use std::process::Command;
use std::sync::Arc;

use peapod_image::{Progress, PullOptions, Registry, Store};
use peapod_testkit::{
    Compression, HOST_BUSYBOX, ImageOptions, RegistryOptions, TestRegistry, busybox_layer,
    write_image_archive, write_multiarch_archive,
};

mod common;
use common::*;

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
