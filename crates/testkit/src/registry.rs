//! A real OCI registry (Debian's `docker-registry`, the CNCF distribution server) on a free
//! loopback port, with its storage in a directory of the test's, optionally behind basic
//! authentication and TLS. Its request log tells tests what was downloaded.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How to set the registry up.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Require HTTP basic authentication with this user and password.
    pub basic_auth: Option<(String, String)>,
    /// Serve HTTPS with this certificate and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Require bearer tokens from this server (its realm and signing certificate).
    pub token: Option<(String, PathBuf)>,
}

/// A running registry; killed when dropped.
pub struct TestRegistry {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Where it keeps its content (`docker/registry/v2/...`).
    pub storage: PathBuf,
    log: PathBuf,
    config: PathBuf,
}

impl TestRegistry {
    /// Starts a registry with its files under `dir`.
    pub fn start(dir: &Path, opts: &RegistryOptions) -> Result<TestRegistry> {
        std::fs::create_dir_all(dir)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.join("storage");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            storage.display()
        );
        if let Some((cert, key)) = &opts.tls {
            yaml += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
        }
        if let Some((user, pass)) = &opts.basic_auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .context("running htpasswd (apache2-utils)")?;
            if !out.status.success() {
                bail!("htpasswd failed");
            }
            let file = dir.join("htpasswd");
            std::fs::write(&file, &out.stdout)?;
            yaml += &format!(
                "auth:\n  htpasswd:\n    realm: peapod-test\n    path: {}\n",
                file.display()
            );
        }
        if let Some((realm, cert)) = &opts.token {
            yaml += &format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                crate::TOKEN_SERVICE,
                crate::TOKEN_ISSUER,
                cert.display()
            );
        }
        let config = dir.join("config.yml");
        std::fs::write(&config, yaml)?;
        let log = dir.join("registry.log");
        let mut r = TestRegistry {
            child: None,
            addr,
            storage,
            log,
            config,
        };
        r.restart()?;
        Ok(r)
    }

    /// Starts the registry again (after [`TestRegistry::kill`]), on the same port and storage.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting docker-registry (Debian package docker-registry)")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&self.addr).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "the registry did not listen on {}: {}",
                    self.addr,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The registry's PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Kills the registry at once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// How many times a blob with this digest was fetched (`GET …/blobs/DIGEST`).
    pub fn blob_gets(&self, digest: &str) -> usize {
        self.gets(&format!("/blobs/{digest} "))
    }

    /// How many `GET /v2/…` requests had `needle` in their path (e.g. `/manifests/1.0 `).
    pub fn gets(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"GET /v2/") && l.contains(needle))
            .count()
    }

    /// The path of a blob in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Makes a test CA and a server certificate for 127.0.0.1 and localhost signed by it, in
/// `dir`; returns (ca.pem, cert.pem, key.pem).
pub fn make_test_ca(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let run = |args: &[&str]| -> Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .context("running openssl")?;
        if !out.status.success() {
            bail!(
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=peapod test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ])?;
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ])?;
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )?;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ])?;
    Ok((
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    ))
}
