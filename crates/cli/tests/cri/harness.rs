//! A `peapod serve` of the test's own (temporary state roots, a private network, the
//! busybox image loaded) and gRPC clients to it, as a kubelet connects.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use pb::image_service_client::ImageServiceClient;
use pb::runtime_service_client::RuntimeServiceClient;
use peapod_cri::proto as pb;
use tonic::transport::Channel;

pub const IMAGE: &str = "localhost/peapod/busybox:1.0";

/// One test's CRI server.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub net: peapod_testkit::TestNet,
    child: Option<Child>,
}

pub type Rt = RuntimeServiceClient<Channel>;
pub type Img = ImageServiceClient<Channel>;

impl Server {
    /// A server on fresh state roots with the busybox image loaded.
    pub async fn start() -> Server {
        let dir = tempfile::Builder::new()
            .prefix("peapod-cri-")
            .tempdir()
            .unwrap();
        let net = peapod_testkit::TestNet::reserve();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "root = \"{0}/lib\"\nrun_root = \"{0}/run\"\n[network]\nconfig_dir = \"{0}/net.d\"\ndefault_bridge = \"{1}\"\ndefault_subnet = \"{2}\"\n",
                dir.path().display(),
                net.bridge,
                net.subnet
            ),
        )
        .unwrap();
        let archive = dir.path().join("busybox.tar");
        peapod_testkit::write_busybox_archive(
            peapod_testkit::HOST_BUSYBOX.as_ref(),
            IMAGE,
            &archive,
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_peapod"))
            .arg("--config")
            .arg(&config)
            .args(["image", "load"])
            .arg(&archive)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let socket = dir.path().join("cri.sock");
        let mut s = Server {
            dir,
            config,
            socket,
            net,
            child: None,
        };
        s.launch().await;
        s
    }

    /// Starts the daemon (again) and waits until it answers.
    pub async fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("serve.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_peapod"))
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .arg("--socket")
            .arg(&self.socket)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut rt) = self.runtime().await
                && rt.version(pb::VersionRequest::default()).await.is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not answer: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The daemon's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Kills the daemon with SIGKILL (its sandboxes' supervisors live on).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the daemon with SIGTERM and waits for it.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::SIGTERM,
        )
        .unwrap();
        c.wait().unwrap()
    }

    async fn channel(&self) -> Result<Channel, tonic::transport::Error> {
        let path = self.socket.clone();
        tonic::transport::Endpoint::from_static("http://[::]:0")
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let path = path.clone();
                async move {
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map(hyper_util::rt::TokioIo::new)
                }
            }))
            .await
    }

    /// A RuntimeService client.
    pub async fn runtime(&self) -> Result<Rt, tonic::transport::Error> {
        Ok(RuntimeServiceClient::new(self.channel().await?))
    }

    /// An ImageService client.
    pub async fn images(&self) -> Img {
        ImageServiceClient::new(self.channel().await.unwrap())
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A sandbox config for pod `name` (UID `uid`), with its logs in the test's directory.
    pub fn sandbox_config(&self, name: &str, uid: &str) -> pb::PodSandboxConfig {
        pb::PodSandboxConfig {
            metadata: Some(pb::PodSandboxMetadata {
                name: name.into(),
                uid: uid.into(),
                namespace: "cri-test".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: self.path().join("logs").join(uid).display().to_string(),
            labels: [("app".to_string(), name.to_string())].into(),
            annotations: [("note".to_string(), "kept as given".to_string())].into(),
            linux: Some(pb::LinuxPodSandboxConfig {
                cgroup_parent: format!("/peapod/cri-test-pod{uid}"),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// What the test left: mounts under its directory, records, supervisors' directories.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let dir = self.path().display().to_string();
        for l in std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
        {
            if l.contains(&dir) {
                left.push(format!("mount: {l}"));
            }
        }
        for sub in [
            "run/sandboxes",
            "run/containers",
            "run/cri",
            "lib/containers",
        ] {
            for e in std::fs::read_dir(self.path().join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                left.push(format!("state: {}", e.path().display()));
            }
        }
        for e in std::fs::read_dir(self.path().join("lib/cni/cache"))
            .into_iter()
            .flatten()
            .flatten()
        {
            left.push(format!("CNI cache: {}", e.path().display()));
        }
        left
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        // `apply`'s pods a failed test left.
        let peapod = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_peapod"))
                .arg("--config")
                .arg(&self.config)
                .args(args)
                .output()
        };
        if let Ok(out) = peapod(&["get", "pods", "-A", "-o", "name"]) {
            for name in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = peapod(&["delete", "pod", name.trim(), "--force"]);
            }
        }
        let any = std::fs::read_dir(self.path().join("run/sandboxes"))
            .into_iter()
            .flatten()
            .flatten()
            .next()
            .is_some();
        if !any {
            return;
        }
        // Whatever a failed test left goes through a fresh server, on a thread of its own
        // (this may run inside the test's runtime).
        let (config, socket, dir) = (
            self.config.clone(),
            self.socket.clone(),
            self.path().to_path_buf(),
        );
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(remove_everything(config, socket, dir));
        })
        .join();
    }
}

async fn remove_everything(config: PathBuf, socket: PathBuf, dir: PathBuf) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_peapod"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .arg("--socket")
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let probe = Server {
        dir: tempfile::tempdir_in(&dir).unwrap(),
        config,
        socket,
        net: peapod_testkit::TestNet::reserve(),
        child: None,
    };
    for _ in 0..500 {
        if let Ok(mut c) = probe.runtime().await
            && let Ok(all) = c
                .list_pod_sandbox(pb::ListPodSandboxRequest::default())
                .await
        {
            for s in all.into_inner().items {
                let _ = c
                    .remove_pod_sandbox(pb::RemovePodSandboxRequest {
                        pod_sandbox_id: s.id,
                    })
                    .await;
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
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

/// A container config running `sh -c script` from the busybox image.
pub fn container(name: &str, script: &str) -> pb::ContainerConfig {
    pb::ContainerConfig {
        metadata: Some(pb::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(pb::ImageSpec {
            image: IMAGE.into(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), script.into()],
        log_path: format!("{name}/0.log"),
        labels: [("container".to_string(), name.to_string())].into(),
        ..Default::default()
    }
}

/// The features the runtime's (only) handler advertises in Status.
pub async fn handler_features(rt: &mut Rt) -> pb::RuntimeHandlerFeatures {
    let status = rt
        .status(pb::StatusRequest { verbose: false })
        .await
        .unwrap()
        .into_inner();
    status.runtime_handlers[0].features.unwrap()
}

/// Polls until container `id` is in `state`; returns its status.
pub async fn wait_state(rt: &mut Rt, id: &str, state: pb::ContainerState) -> pb::ContainerStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = rt
            .container_status(pb::ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap();
        if s.state == state as i32 {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} never reached {state:?}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
