//! Helpers shared by the registry tests: a runtime, stores, archives, settings, layers.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use peapod_image::Store;
use peapod_testkit::HOST_BUSYBOX;
use peapod_types::config::Registries;

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A store of its own, holding the archive's images.
pub fn loaded(dir: &Path, archive: &Path) -> Store {
    let store = Store::open(dir).unwrap();
    store.load_archive(archive).unwrap();
    store
}

pub fn busybox_archive(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(format!("{}.tar", name.replace(['/', ':'], "_")));
    peapod_testkit::write_busybox_archive(HOST_BUSYBOX.as_ref(), name, &p).unwrap();
    p
}

pub fn settings() -> Registries {
    Registries {
        // No credentials from the environment of whoever runs the tests.
        auth_file: Some("/nonexistent/peapod-test-auth.json".into()),
        ..Registries::default()
    }
}

/// A layer of `n` bytes that does not compress.
pub fn noise_layer(path: &str, n: usize, seed: u64) -> Vec<u8> {
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

pub fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}
