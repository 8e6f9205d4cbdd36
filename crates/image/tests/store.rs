//! The store against real archives and a real file system.

use peapod_image::Store;

#[test]
fn loads_oci_archive_and_unpacks_once() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("busybox.tar");
    peapod_testkit::write_busybox_archive(
        "/bin/busybox".as_ref(),
        "localhost/t/busybox:1",
        &archive,
    )
    .unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let images = store.load_archive(&archive).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].name, "localhost/t/busybox:1");
    let img = store.get("localhost/t/busybox:1").unwrap();
    assert_eq!(store.get(&img.config_digest.hex()[..12]).unwrap(), img);
    assert_eq!(
        store
            .get(&format!("localhost/t/busybox@{}", img.manifest_digest))
            .unwrap(),
        img
    );
    let snaps = store.snapshots(&img).unwrap();
    assert_eq!(snaps.len(), 1);
    assert!(snaps[0].join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(snaps[0].join("bin/sh"))
            .unwrap()
            .to_str(),
        Some("busybox")
    );
    let before = std::fs::metadata(snaps[0].join("bin/busybox"))
        .unwrap()
        .modified()
        .unwrap();
    // A second image with the same layer reuses the snapshot.
    let archive2 = dir.path().join("again.tar");
    peapod_testkit::write_busybox_archive(
        "/bin/busybox".as_ref(),
        "localhost/t/other:2",
        &archive2,
    )
    .unwrap();
    let other = store.load_archive(&archive2).unwrap().remove(0);
    assert_eq!(store.snapshots(&other).unwrap(), snaps);
    assert_eq!(
        std::fs::metadata(snaps[0].join("bin/busybox"))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
    let cfg = store.config(&img).unwrap();
    assert_eq!(cfg.cmd, ["sh"]);
    assert!(store.get("localhost/t/missing:1").is_err());
    // Nothing is left in tmp.
    assert_eq!(
        std::fs::read_dir(dir.path().join("store/tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn docker_save_archive_and_whiteouts() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    // Two layers: the second deletes a file and makes a directory opaque.
    let mk = |entries: &[(&str, &[u8])]| {
        let mut t = tar::Builder::new(Vec::new());
        for (p, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            t.append_data(&mut h, p, *data).unwrap();
        }
        t.into_inner().unwrap()
    };
    let l1 = mk(&[("a/keep", b"1"), ("a/gone", b"2"), ("d/old", b"3")]);
    let l2 = mk(&[
        ("a/.wh.gone", b""),
        ("d/.wh..wh..opq", b""),
        ("d/new", b"4"),
    ]);
    let sha = |d: &[u8]| peapod_image::Digest::of(d).to_string();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [sha(&l1), sha(&l2)]}
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": "cfg.json", "RepoTags": ["example/app:v1"], "Layers": ["l1/layer.tar", "l2/layer.tar"]}
    ]))
    .unwrap();
    let path = dir.path().join("save.tar");
    let mut t = tar::Builder::new(std::fs::File::create(&path).unwrap());
    for (p, data) in [
        ("manifest.json", &manifest),
        ("cfg.json", &config),
        ("l1/layer.tar", &l1),
        ("l2/layer.tar", &l2),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        t.append_data(&mut h, p, data.as_slice()).unwrap();
    }
    t.into_inner().unwrap().flush().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let img = store.load_archive(&path).unwrap().remove(0);
    assert_eq!(img.name, "docker.io/example/app:v1");
    let snaps = store.snapshots(&img).unwrap();
    use std::os::unix::fs::FileTypeExt;
    let wh = std::fs::symlink_metadata(snaps[1].join("a/gone")).unwrap();
    assert!(wh.file_type().is_char_device());
    let opaque =
        rustix::fs::getxattr(snaps[1].join("d"), "trusted.overlay.opaque", &mut [0u8; 4]).unwrap();
    assert_eq!(opaque, 1);
    assert_eq!(store.config(&img).unwrap().entrypoint, ["/bin/true"]);
}

#[test]
fn refuses_traversal_and_bad_digests() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let wrong = peapod_image::Digest::of(b"other");
    let err = store
        .put_blob(&b"content"[..], Some(&wrong), "test")
        .unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("store/blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("store/tmp"))
            .unwrap()
            .count(),
        0
    );
}
