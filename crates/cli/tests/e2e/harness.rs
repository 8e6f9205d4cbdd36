//! The test environment: temporary roots, the busybox image, and helpers to drive peapod.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const IMAGE: &str = "localhost/peapod/busybox:1.0";

/// One test's world: its own state roots and config file (in a temporary directory
/// removed with it), the busybox image loaded, and a network of its own.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// This environment's own bridge and subnet.
    pub net: peapod_testkit::TestNet,
}

impl Env {
    /// A fresh environment with the busybox image loaded and a fast crash-loop back-off.
    pub fn new() -> Env {
        Self::with_config(0.2, 1.0, "")
    }

    pub fn with_backoff(base: f64, max: f64) -> Env {
        Self::with_config(base, max, "")
    }

    /// An environment whose config file also has `extra` (TOML, top-level keys first). The
    /// back-off resets after twice its maximum, as the kubelet's does.
    /// Its pod network is peapod's default network, on a bridge and subnet of its own.
    pub fn with_config(base: f64, max: f64, extra: &str) -> Env {
        Self::with_network(base, max, extra, "")
    }

    /// Like [`Env::with_config`], with `network` (TOML keys) added to the `[network]` table.
    pub fn with_network(base: f64, max: f64, extra: &str, network: &str) -> Env {
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_peapod"));
        assert!(
            exe.with_file_name("peapod-pause").is_file(),
            "peapod-pause is not built next to peapod: run `cargo build --workspace` first"
        );
        let dir = tempfile::Builder::new()
            .prefix("peapod-e2e-")
            .tempdir()
            .unwrap();
        let net = peapod_testkit::TestNet::reserve();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "root = \"{0}/lib\"\nrun_root = \"{0}/run\"\n{extra}\n[backoff]\nbase_seconds = {base}\nmax_seconds = {max}\nreset_seconds = {reset}\n\
                 [network]\nconfig_dir = \"{0}/net.d\"\ndefault_bridge = \"{1}\"\ndefault_subnet = \"{2}\"\n{network}\n",
                dir.path().display(),
                net.bridge,
                net.subnet,
                reset = 2.0 * max,
            ),
        )
        .unwrap();
        let env = Env { dir, config, net };
        // The busybox image, built in the environment's own directory (removed with it).
        let archive = env.path().join("busybox.tar");
        peapod_testkit::write_busybox_archive(
            peapod_testkit::HOST_BUSYBOX.as_ref(),
            IMAGE,
            &archive,
        )
        .expect("building the busybox image (is busybox-static installed?)");
        let out = env.run(&["image", "load", archive.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "image load failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        env
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Builds a busybox image named `name` with the config `opts` and loads it.
    pub fn load_image(&self, name: &str, opts: &peapod_testkit::ImageOptions) {
        let p = self.path().join(format!("image-{}.tar", unique()));
        peapod_testkit::write_busybox_archive_with(
            peapod_testkit::HOST_BUSYBOX.as_ref(),
            name,
            opts,
            &p,
        )
        .unwrap();
        self.ok(&["image", "load", p.to_str().unwrap()]);
    }

    /// Runs `peapod ARGS` with this environment's configuration.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_peapod"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs `peapod ARGS`, which must succeed; returns standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "peapod {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Applies a manifest given as text.
    pub fn apply(&self, yaml: &str) -> Output {
        let f = self.path().join(format!("manifest-{}.yaml", unique()));
        std::fs::write(&f, yaml).unwrap();
        self.run(&["apply", "-f", f.to_str().unwrap()])
    }

    pub fn apply_ok(&self, yaml: &str) {
        let out = self.apply(yaml);
        assert!(
            out.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The pod as `get pods NAME -o json` shows it.
    pub fn pod(&self, name: &str) -> Value {
        serde_json::from_str(&self.ok(&["get", "pods", name, "-o", "json"])).unwrap()
    }

    /// Polls the pod until `pred` holds; panics with the last status after `timeout`.
    pub fn wait_for(&self, name: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let pod = self.pod(name);
            if pred(&pod) {
                return pod;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for pod {name}; last status:\n{}",
                    serde_json::to_string_pretty(&pod["status"]).unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_phase(&self, name: &str, phase: &str) -> Value {
        self.wait_for(name, Duration::from_secs(30), |p| {
            p["status"]["phase"] == phase
        })
    }

    /// Runs a command in a container; returns (exit code, stdout).
    pub fn exec(&self, pod: &str, container: &str, cmd: &[&str]) -> (i32, String) {
        let mut args = vec!["exec", pod, "-c", container, "--"];
        args.extend_from_slice(cmd);
        let out = self.run(&args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// The shim's PID of pod `name`.
    pub fn shim_pid(&self, name: &str) -> i32 {
        let uid = self.pod(name)["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string();
        let p = self.path().join("run/pods").join(uid).join("shim.pid");
        std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
    }

    /// The state file of pod `name` (infra and container PIDs).
    pub fn state(&self, name: &str) -> Value {
        let uid = self.pod(name)["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string();
        let p = self.path().join("run/pods").join(uid).join("state.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    /// Names of this environment's pods.
    pub fn pod_names(&self) -> Vec<String> {
        let out = self.run(&["get", "pods", "-A", "-o", "name"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_start_matches("pod/").to_string())
            .collect()
    }

    /// Everything this environment has left on the machine: mounts under its directory,
    /// cgroups of its pods, state entries.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let dir = self.path().to_string_lossy().to_string();
        for l in std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
        {
            if l.contains(&dir) {
                left.push(format!("mount: {l}"));
            }
        }
        for sub in [
            "run/pods",
            "run/sandboxes",
            "run/containers",
            "lib/containers",
            "lib/pods",
            "lib/logs",
        ] {
            for e in std::fs::read_dir(self.path().join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                left.push(format!("state: {}", e.path().display()));
            }
        }
        left.extend(self.network_leftovers());
        left
    }

    /// What this environment's network still holds: cached attachments, leased addresses,
    /// veths on its bridge, iptables rules naming its subnet (other than the network's own).
    pub fn network_leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let lib = self.path().join("lib/cni");
        for e in std::fs::read_dir(lib.join("cache"))
            .into_iter()
            .flatten()
            .flatten()
        {
            left.push(format!("CNI cache: {}", e.path().display()));
        }
        for ip in peapod_testkit::leased_addresses(&lib.join("networks/peapod")) {
            left.push(format!("leased address: {ip}"));
        }
        let brif = format!("/sys/class/net/{}/brif", self.net.bridge);
        for e in std::fs::read_dir(brif).into_iter().flatten().flatten() {
            left.push(format!(
                "veth on the bridge: {}",
                e.file_name().to_string_lossy()
            ));
        }
        let prefix = self.net.subnet.trim_end_matches("0/24");
        let rules = Command::new("iptables-save").output().unwrap();
        for l in String::from_utf8_lossy(&rules.stdout).lines() {
            // The network's own rules belong to it, not to a pod, like its bridge.
            if l.contains(prefix) && !l.contains("peapod network") {
                left.push(format!("iptables: {l}"));
            }
        }
        left
    }

    /// Whether this environment's controller process runs (holds its lock).
    pub fn controllers_running(&self) -> bool {
        let Ok(f) = std::fs::File::open(self.path().join("run/controllers.lock")) else {
            return false;
        };
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockSharedNonblock).is_err()
    }

    /// How many addresses this environment's network has leased.
    pub fn leases(&self) -> usize {
        peapod_testkit::leased_addresses(&self.path().join("lib/cni/networks/peapod")).len()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Workloads first, so that no controller makes new pods; then its process is gone.
        for kind in ["deployments", "replicasets", "daemonsets", "jobs"] {
            let out = self.run(&["get", kind, "-A", "-o", "name"]);
            for name in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = self.run(&["delete", name, "--force"]);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.controllers_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        for name in self.pod_names() {
            let _ = self.run(&["delete", "pod", &name, "--force"]);
        }
    }
}

/// A name no other test uses.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether `pid` is a live process.
pub fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, r)| !r.starts_with('Z'))
    })
}

/// A one-line pod manifest helper: `pod(name, restartPolicy, extra spec YAML)`.
pub fn pod_yaml(name: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

/// The status of container `c` (app or init).
pub fn cstatus<'a>(pod: &'a Value, c: &str) -> &'a Value {
    for key in ["containerStatuses", "initContainerStatuses"] {
        if let Some(list) = pod["status"][key].as_array()
            && let Some(s) = list.iter().find(|s| s["name"] == c)
        {
            return s;
        }
    }
    panic!("no status for container {c}: {}", pod["status"]);
}
