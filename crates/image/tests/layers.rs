//! Layer unpacking as a security boundary, and what it must preserve. Every trick is a layer
//! in a real image archive; the checks look at the host outside the store.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use peapod_image::Store;
use peapod_testkit::{Compression, ImageOptions, write_image_archive};

/// A tar entry written byte for byte, as an attacker would: no path checks.
fn raw(t: &mut tar::Builder<Vec<u8>>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_size(data.len() as u64);
    h.set_cksum();
    t.append(&h, data).unwrap();
}

fn unpack(dir: &Path, layer: Vec<u8>) -> Result<Vec<std::path::PathBuf>, peapod_image::Error> {
    std::fs::create_dir_all(dir).unwrap();
    let archive = dir.join("img.tar");
    write_image_archive(
        "localhost/trick:1",
        &[(layer, Compression::Gzip)],
        &ImageOptions::default(),
        &archive,
    )
    .unwrap();
    let store = Store::open(dir.join("store")).unwrap();
    let img = store.load_archive(&archive).unwrap().remove(0);
    store.snapshots(&img)
}

/// Everything under `dir`, with sizes, to see that nothing changed.
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            out.push((e.path().display().to_string(), m.len()));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn malicious_layers_touch_nothing_outside_the_store() {
    let base = tempfile::tempdir().unwrap();
    let outside = base.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), b"precious").unwrap();
    let o = outside.display().to_string();
    let before = listing(&outside);
    type Trick = (&'static str, Box<dyn Fn(&mut tar::Builder<Vec<u8>>)>);
    let tricks: Vec<Trick> = vec![
        (
            "dot-dot traversal",
            Box::new(|t| {
                raw(
                    t,
                    "../../../outside/evil",
                    tar::EntryType::Regular,
                    "",
                    b"x",
                )
            }),
        ),
        (
            "symlink then write through it",
            Box::new(move |t| {
                raw(t, "esc", tar::EntryType::Symlink, &o, b"");
                raw(t, "esc/evil", tar::EntryType::Regular, "", b"x");
            }),
        ),
        (
            "relative symlink then write through it",
            Box::new(|t| {
                raw(
                    t,
                    "esc",
                    tar::EntryType::Symlink,
                    "../../../../../../../../",
                    b"",
                );
                raw(t, "esc/tmp/evil", tar::EntryType::Regular, "", b"x");
            }),
        ),
        ("hardlink to an absolute path", {
            let v = format!("{}/victim", outside.display());
            Box::new(move |t| raw(t, "stolen", tar::EntryType::Link, &v, b""))
        }),
        (
            "hardlink through dot-dot",
            Box::new(|t| {
                raw(
                    t,
                    "stolen",
                    tar::EntryType::Link,
                    "../../../../../outside/victim",
                    b"",
                )
            }),
        ),
        ("hardlink through a symlink", {
            let o = outside.display().to_string();
            Box::new(move |t| {
                raw(t, "esc", tar::EntryType::Symlink, &o, b"");
                raw(t, "stolen", tar::EntryType::Link, "esc/victim", b"");
            })
        }),
        ("whiteout through a symlink", {
            let o = outside.display().to_string();
            Box::new(move |t| {
                raw(t, "esc", tar::EntryType::Symlink, &o, b"");
                raw(t, "esc/.wh.victim", tar::EntryType::Regular, "", b"");
            })
        }),
        ("opaque marker through a symlink", {
            let o = outside.display().to_string();
            Box::new(move |t| {
                raw(t, "esc", tar::EntryType::Symlink, &o, b"");
                raw(t, "esc/.wh..wh..opq", tar::EntryType::Regular, "", b"");
            })
        }),
        (
            "whiteout of a parent",
            Box::new(|t| raw(t, "../.wh.outside", tar::EntryType::Regular, "", b"")),
        ),
        (
            "whiteout of dot-dot",
            Box::new(|t| raw(t, "a/.wh...", tar::EntryType::Regular, "", b"")),
        ),
        ("device node through a symlink", {
            let o = outside.display().to_string();
            Box::new(move |t| {
                raw(t, "esc", tar::EntryType::Symlink, &o, b"");
                raw(t, "esc/null", tar::EntryType::Char, "", b"");
            })
        }),
    ];
    for (i, (what, build)) in tricks.iter().enumerate() {
        let dir = base.path().join(format!("case{i}"));
        let mut t = tar::Builder::new(Vec::new());
        build(&mut t);
        let err = unpack(&dir, t.into_inner().unwrap());
        assert!(err.is_err(), "{what}: unpacked without complaint");
        let msg = err.unwrap_err().to_string();
        eprintln!("{what}: {msg}");
        assert!(msg.contains("layer sha256:"), "{what}: {msg}");
        assert_eq!(listing(&outside), before, "{what}: the outside changed");
        assert_eq!(
            std::fs::read(outside.join("victim")).unwrap(),
            b"precious",
            "{what}"
        );
        // A refused layer leaves no snapshot and no temporary files.
        let store = dir.join("store");
        assert_eq!(
            std::fs::read_dir(store.join("snapshots")).unwrap().count(),
            0,
            "{what}"
        );
        assert_eq!(
            std::fs::read_dir(store.join("tmp")).unwrap().count(),
            0,
            "{what}"
        );
    }
}

#[test]
fn absolute_paths_are_kept_inside_the_snapshot() {
    let base = tempfile::tempdir().unwrap();
    let target = base.path().join("outside-abs");
    let name = format!("{}/evil", target.display());
    let mut t = tar::Builder::new(Vec::new());
    raw(&mut t, &name, tar::EntryType::Regular, "", b"x");
    let snaps = unpack(&base.path().join("case"), t.into_inner().unwrap()).unwrap();
    assert!(!target.exists(), "an absolute path was written on the host");
    let inside = snaps[0].join(name.trim_start_matches('/'));
    assert_eq!(std::fs::read(inside).unwrap(), b"x");
}

#[test]
fn unpacking_preserves_metadata_and_special_files() {
    let base = tempfile::tempdir().unwrap();
    let mut t = tar::Builder::new(Vec::new());
    fn add(
        t: &mut tar::Builder<Vec<u8>>,
        path: &str,
        kind: tar::EntryType,
        mode: u32,
        uid: u64,
        data: &[u8],
    ) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid + 1);
        h.set_mtime(1_500_000_000);
        h.set_size(data.len() as u64);
        if kind == tar::EntryType::Char {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        t.append_data(&mut h, path, data).unwrap();
    }
    add(&mut t, "dir/", tar::EntryType::Directory, 0o750, 1000, b"");
    add(
        &mut t,
        "dir/suid",
        tar::EntryType::Regular,
        0o4755,
        0,
        b"#!/bin/sh\n",
    );
    add(
        &mut t,
        "dir/owned",
        tar::EntryType::Regular,
        0o640,
        1234,
        b"data",
    );
    add(&mut t, "dev/null", tar::EntryType::Char, 0o666, 0, b"");
    add(&mut t, "run/fifo", tar::EntryType::Fifo, 0o600, 0, b"");
    // An extended attribute as PAX records it.
    let mut pax = tar::Header::new_ustar();
    let key = "SCHILY.xattr";
    let line = format!("{key}.user.peapod=yes\n");
    let len = line.len() + 3;
    let body = format!("{len} {line}");
    assert_eq!(body.len(), len);
    pax.set_entry_type(tar::EntryType::XHeader);
    pax.set_path("PaxHeaders/x").unwrap();
    pax.set_size(body.len() as u64);
    pax.set_cksum();
    t.append(&pax, body.as_bytes()).unwrap();
    add(&mut t, "dir/xattr", tar::EntryType::Regular, 0o644, 0, b"x");
    let snaps = unpack(base.path(), t.into_inner().unwrap()).unwrap();
    let fs = &snaps[0];
    let m = std::fs::metadata(fs.join("dir/suid")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o4755, "setuid kept");
    let m = std::fs::metadata(fs.join("dir/owned")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 1235));
    assert_eq!(m.mtime(), 1_500_000_000);
    let d = std::fs::metadata(fs.join("dir")).unwrap();
    assert_eq!(d.permissions().mode() & 0o7777, 0o750);
    assert_eq!(
        (d.uid(), d.mtime()),
        (1000, 1_500_000_000),
        "directory times last"
    );
    let n = std::fs::metadata(fs.join("dev/null")).unwrap();
    assert!(n.file_type().is_char_device());
    assert_eq!(n.rdev(), nix::sys::stat::makedev(1, 3));
    assert!(
        std::fs::metadata(fs.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let mut buf = [0u8; 8];
    let n = rustix::fs::getxattr(fs.join("dir/xattr"), "user.peapod", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"yes");
}
