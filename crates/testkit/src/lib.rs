//! Builds a small OCI image archive from the host's static busybox, so tests and examples
//! need no registry: one gzip layer with `/bin/busybox`, a symlink per applet, `/etc/passwd`,
//! `/etc/group` and the usual empty directories. The output is deterministic: the same
//! busybox gives the same digests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::json;
use sha2::{Digest, Sha256};

/// The name tests and examples give the image.
pub const BUSYBOX_IMAGE: &str = "localhost/peapod/busybox:1.0";

/// Where Debian's `busybox-static` puts busybox.
pub const HOST_BUSYBOX: &str = "/bin/busybox";

fn sha(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_path(path).expect("short path");
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(size);
    h
}

/// The uncompressed layer tar of the busybox image.
pub fn busybox_layer(busybox: &Path) -> Result<Vec<u8>> {
    let bin = std::fs::read(busybox).with_context(|| format!("reading {}", busybox.display()))?;
    let out = Command::new(busybox)
        .arg("--list")
        .output()
        .context("running busybox --list")?;
    if !out.status.success() {
        bail!("{} --list failed", busybox.display());
    }
    let mut applets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    applets.sort();
    let mut t = tar::Builder::new(Vec::new());
    for (dir, mode) in [
        ("bin/", 0o755),
        ("dev/", 0o755),
        ("etc/", 0o755),
        ("home/", 0o755),
        ("proc/", 0o555),
        ("root/", 0o700),
        ("sys/", 0o555),
        ("tmp/", 0o1777),
        ("usr/", 0o755),
        ("usr/bin/", 0o755),
        ("var/", 0o755),
        ("var/www/", 0o755),
    ] {
        let mut h = header(dir, tar::EntryType::Directory, mode, 0);
        t.append_data(&mut h, dir, std::io::empty())?;
    }
    let mut h = header(
        "bin/busybox",
        tar::EntryType::Regular,
        0o755,
        bin.len() as u64,
    );
    t.append_data(&mut h, "bin/busybox", bin.as_slice())?;
    for a in applets.iter().filter(|a| *a != "busybox") {
        let mut h = header(&format!("bin/{a}"), tar::EntryType::Symlink, 0o777, 0);
        t.append_link(&mut h, format!("bin/{a}"), "busybox")?;
    }
    // Debian's busybox is built without `printenv`, which the upstream image has.
    if !applets.iter().any(|a| a == "printenv") {
        let script = "#!/bin/sh\n[ $# -eq 0 ] && exec env\nfor v; do eval \"[ -n \\\"\\${$v+x}\\\" ] && printf '%s\\\\n' \\\"\\$$v\\\"\"; done\n";
        let mut h = header(
            "bin/printenv",
            tar::EntryType::Regular,
            0o755,
            script.len() as u64,
        );
        t.append_data(&mut h, "bin/printenv", script.as_bytes())?;
    }
    let passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
                  default-user:x:1000:1000::/tmp:/bin/sh\n";
    let group = "root:x:0:\nnobody:x:65534:\ndefault-user:x:1000:\n\
                 group-defined-in-image:x:50000:default-user\n";
    for (p, data) in [("etc/passwd", passwd), ("etc/group", group)] {
        let mut h = header(p, tar::EntryType::Regular, 0o644, data.len() as u64);
        t.append_data(&mut h, p, data.as_bytes())?;
    }
    Ok(t.into_inner()?)
}

/// The parts of an image's config a test may want to change.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// `Entrypoint` (none when empty).
    pub entrypoint: Vec<String>,
    /// `Cmd`; `["sh"]` by default.
    pub cmd: Vec<String>,
    /// `StopSignal`, e.g. `SIGUSR1`.
    pub stop_signal: Option<String>,
    /// `User`, e.g. `1000`, `nobody` or `nobody:nobody` (the image's `/etc/passwd` has
    /// `root`, `nobody` and `default-user` (1000), which `/etc/group` makes a member of
    /// `group-defined-in-image` (50000)).
    pub user: Option<String>,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            entrypoint: Vec::new(),
            cmd: vec!["sh".into()],
            stop_signal: None,
            user: None,
        }
    }
}

/// Writes an OCI image-layout archive named `name` to `out`, built from `busybox`.
pub fn write_busybox_archive(busybox: &Path, name: &str, out: &Path) -> Result<()> {
    write_busybox_archive_with(busybox, name, &ImageOptions::default(), out)
}

/// Like [`write_busybox_archive`], with the image config's entrypoint, cmd, stop signal and
/// user given by `opts`.
pub fn write_busybox_archive_with(
    busybox: &Path,
    name: &str,
    opts: &ImageOptions,
    out: &Path,
) -> Result<()> {
    let tar = busybox_layer(busybox)?;
    write_image_archive(name, &[(tar, Compression::Gzip)], opts, out)
}

/// How a layer is stored in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// The blobs of one image: config, manifest and layer blobs.
type ImageBlobs = (Vec<u8>, Vec<u8>, Vec<Vec<u8>>);

/// The blobs of one image.
fn image_blobs(
    layers: &[(Vec<u8>, Compression)],
    opts: &ImageOptions,
    arch: &str,
) -> Result<ImageBlobs> {
    let mut blobs = Vec::new();
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for (tar, c) in layers {
        diff_ids.push(sha(tar));
        let (blob, mt) = match c {
            Compression::None => (tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
            Compression::Gzip => {
                let mut gz = flate2::GzBuilder::new()
                    .mtime(0)
                    .write(Vec::new(), flate2::Compression::fast());
                gz.write_all(tar)?;
                (gz.finish()?, "application/vnd.oci.image.layer.v1.tar+gzip")
            }
            Compression::Zstd => (
                zstd::encode_all(tar.as_slice(), 3)?,
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
        };
        descriptors.push(json!({"mediaType": mt, "digest": sha(&blob), "size": blob.len()}));
        blobs.push(blob);
    }
    let mut image_config = json!({
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": opts.cmd,
    });
    if !opts.entrypoint.is_empty() {
        image_config["Entrypoint"] = json!(opts.entrypoint);
    }
    if let Some(user) = &opts.user {
        image_config["User"] = json!(user);
    }
    if let Some(sig) = &opts.stop_signal {
        image_config["StopSignal"] = json!(sig);
    }
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "peapod-testkit"}],
    }))?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config), "size": config.len()},
        "layers": descriptors,
    }))?;
    Ok((config, manifest, blobs))
}

/// Writes a benchmark image of about `mb` MiB unpacked: the busybox layer and three
/// gzip layers of files that are half text (compressible) and half noise, as real images are.
pub fn write_big_archive(name: &str, mb: usize, out: &Path) -> Result<()> {
    let mut layers = vec![(busybox_layer(HOST_BUSYBOX.as_ref())?, Compression::Gzip)];
    let words = [
        "container",
        "pod",
        "kernel",
        "namespace",
        "cgroup",
        "overlay",
        "layer",
        "image",
        "registry",
        "manifest",
        "digest",
        "snapshot",
        "runtime",
        "sandbox",
        "volume",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let per_layer = (mb << 20) / 3;
    let file_size = 1 << 20;
    for l in 0..3 {
        let mut t = tar::Builder::new(Vec::new());
        let mut h = header(&format!("data{l}/"), tar::EntryType::Directory, 0o755, 0);
        t.append_data(&mut h, format!("data{l}/"), std::io::empty())?;
        for f in 0..per_layer / file_size {
            let mut data = Vec::with_capacity(file_size);
            if f % 2 == 0 {
                while data.len() < file_size {
                    data.extend_from_slice(
                        words[(next() % words.len() as u64) as usize].as_bytes(),
                    );
                    data.push(if next() % 8 == 0 { b'\n' } else { b' ' });
                }
                data.truncate(file_size);
            } else {
                while data.len() < file_size {
                    data.extend_from_slice(&next().to_le_bytes());
                }
            }
            let path = format!("data{l}/file{f}");
            let mut h = header(&path, tar::EntryType::Regular, 0o644, data.len() as u64);
            t.append_data(&mut h, &path, data.as_slice())?;
        }
        layers.push((t.into_inner()?, Compression::Gzip));
    }
    write_image_archive(name, &layers, &ImageOptions::default(), out)
}

/// This host's architecture as OCI names it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

/// Writes an OCI image-layout archive named `name` to `out` whose layers are the given
/// uncompressed tars, each stored with its compression.
pub fn write_image_archive(
    name: &str,
    layers: &[(Vec<u8>, Compression)],
    opts: &ImageOptions,
    out: &Path,
) -> Result<()> {
    let (config, manifest, blobs) = image_blobs(layers, opts, host_arch())?;
    let top = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(&manifest), "size": manifest.len()});
    let mut all = vec![config, manifest];
    all.extend(blobs);
    write_layout(name, top, &all, out)
}

/// Writes an archive whose name resolves to an image index with two images: `layers` for
/// this host's architecture, and a one-file image for another architecture.
pub fn write_multiarch_archive(
    name: &str,
    layers: &[(Vec<u8>, Compression)],
    out: &Path,
) -> Result<()> {
    let other = if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let opts = ImageOptions::default();
    let (c1, m1, b1) = image_blobs(layers, &opts, host_arch())?;
    let mut t = tar::Builder::new(Vec::new());
    let mut h = header("wrong-arch", tar::EntryType::Regular, 0o644, 5);
    t.append_data(&mut h, "wrong-arch", &b"other"[..])?;
    let (c2, m2, b2) = image_blobs(&[(t.into_inner()?, Compression::Gzip)], &opts, other)?;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(&m2), "size": m2.len(), "platform": {"os": "linux", "architecture": other}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(&m1), "size": m1.len(), "platform": {"os": "linux", "architecture": host_arch()}},
        ],
    }))?;
    let top = json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(&index), "size": index.len()});
    let mut all = vec![index, c1, m1, c2, m2];
    all.extend(b1);
    all.extend(b2);
    write_layout(name, top, &all, out)
}

fn write_layout(
    name: &str,
    mut top: serde_json::Value,
    blobs: &[Vec<u8>],
    out: &Path,
) -> Result<()> {
    top["annotations"] = json!({
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": name.rsplit_once(':').map_or("latest", |(_, t)| t),
    });
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [top],
    }))?;
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut t = tar::Builder::new(std::io::BufWriter::new(file));
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    let mut files: Vec<(String, &[u8])> =
        vec![("oci-layout".into(), layout), ("index.json".into(), &index)];
    for blob in blobs {
        files.push((format!("blobs/sha256/{}", &sha(blob)[7..]), blob));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files.dedup_by(|a, b| a.0 == b.0);
    for (path, data) in files {
        let mut h = header(&path, tar::EntryType::Regular, 0o644, data.len() as u64);
        t.append_data(&mut h, &path, data)?;
    }
    t.into_inner()?.flush()?;
    Ok(())
}

/// A network identity reserved for one test: a bridge name and a /24 no other test holds.
/// Reservations are files under `/run/peapod-test-nets` holding the owner's PID; a dead
/// owner's reservation is taken over. Dropping it releases it.
pub struct TestNet {
    /// Index of the reservation.
    pub index: u32,
    /// Bridge interface name (at most 15 bytes).
    pub bridge: String,
    /// IPv4 subnet, e.g. `10.100.3.0/24`.
    pub subnet: String,
    lock: std::path::PathBuf,
}

impl TestNet {
    /// Reserves a free network identity.
    pub fn reserve() -> TestNet {
        let dir = Path::new("/run/peapod-test-nets");
        std::fs::create_dir_all(dir).expect("creating /run/peapod-test-nets");
        let me = std::process::id();
        for index in 0..20_000u32 {
            let lock = dir.join(index.to_string());
            let taken = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock);
            let ok = match taken {
                Ok(mut f) => f.write_all(me.to_string().as_bytes()).is_ok(),
                Err(_) => {
                    // Take over a reservation whose owner is gone.
                    let owner = std::fs::read_to_string(&lock).unwrap_or_default();
                    let alive = owner
                        .trim()
                        .parse::<u32>()
                        .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
                    !alive && !owner.is_empty() && {
                        let tmp = dir.join(format!(".{index}.{me}"));
                        std::fs::write(&tmp, me.to_string()).is_ok()
                            && std::fs::rename(&tmp, &lock).is_ok()
                    }
                }
            };
            // Two processes may take over the same stale file: the rename's last writer wins.
            if ok && std::fs::read_to_string(&lock).is_ok_and(|o| o == me.to_string()) {
                return TestNet {
                    index,
                    bridge: format!("pptest{index}"),
                    subnet: format!("10.{}.{}.0/24", 100 + index / 256, index % 256),
                    lock,
                };
            }
        }
        panic!("no free test network");
    }

    /// The gateway address (the bridge's), `.1` of the subnet.
    pub fn gateway(&self) -> String {
        self.subnet.replace(".0/24", ".1")
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // The bridge plugin leaves its bridge behind on DEL, by design, and peapod's default
        // network leaves its rules.
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(std::process::Stdio::null())
            .status();
        remove_network_rules(&self.bridge);
        let _ = std::fs::remove_file(&self.lock);
    }
}

/// The iptables rules of peapod's default network on `bridge` (the ones with a
/// `peapod network` comment that name it), as `(table, rule)` with the rule as
/// `iptables-save` prints it after `-A `.
pub fn network_rules(bridge: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for table in ["nat", "filter"] {
        let Ok(saved) = Command::new("iptables-save").args(["-t", table]).output() else {
            continue;
        };
        for l in String::from_utf8_lossy(&saved.stdout).lines() {
            let named = l.split(' ').any(|w| w == bridge);
            if let Some(rule) = l.strip_prefix("-A ")
                && named
                && l.contains("peapod network")
            {
                out.push((table.to_string(), rule.to_string()));
            }
        }
    }
    out
}

/// Removes [`network_rules`]`(bridge)`.
pub fn remove_network_rules(bridge: &str) {
    for (table, rule) in network_rules(bridge) {
        // The shell undoes iptables-save's quoting of the comment.
        let _ = Command::new("sh")
            .args(["-c", &format!("iptables -w -t {table} -D {rule}")])
            .status();
    }
}

/// The addresses host-local IPAM has leased in `dir` (one network's data directory): its
/// files named by an IP address.
pub fn leased_addresses(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

mod registry;
mod token;
pub use registry::{RegistryOptions, TestRegistry, make_test_ca};
pub use token::{TOKEN_ISSUER, TOKEN_SERVICE, TokenServer};

/// The Kubernetes documentation's example manifests (`k8s-examples`): `$PEAPOD_K8S_EXAMPLES`,
/// or the shared directory beside the checkout; `None` when neither is there.
pub fn k8s_examples() -> Option<PathBuf> {
    [
        std::env::var_os("PEAPOD_K8S_EXAMPLES").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/k8s-examples")),
        Some(PathBuf::from("/work/shared/k8s-examples")),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.join("website").is_dir())
}

/// Every YAML or JSON file below `dir`, sorted.
pub fn manifest_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "json") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}
