//! Runs CNI plugin chains as the CNI specification describes
//! (<https://github.com/containernetworking/cni/blob/main/SPEC.md>): ADD in chain order with
//! `prevResult` passed along, DEL in reverse order with the cached result, CHECK with it;
//! `runtimeConfig` filled for the capabilities each plugin declares (`portMappings`, `dns`).
//!
//! Every attachment is cached (configuration, runtime arguments and result) before ADD runs,
//! so that DEL can always be run later with exactly what ADD saw, even after a crash.
//!
//! Plugins run asynchronously: the caller's thread is never blocked while a plugin works.
//! How a plugin process is started is a [`PluginExec`] (libcni's `invoke.Exec`), so that a
//! process that reaps children itself can start plugins its own way.

pub mod config;
mod result;
pub mod rules;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Output;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use config::{ConfList, DefaultNetwork};
pub use result::{CniResult, Interface, IpConfig, Route};

/// Errors from loading configurations and running plugins.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration file is unreadable or invalid.
    #[error("{}: {msg}", file.display())]
    Config {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A plugin named by the configuration is in none of the plugin directories.
    #[error("{}: plugin {plugin:?} not found in {dirs}", file.display())]
    PluginNotFound {
        /// The configuration file naming it.
        file: PathBuf,
        /// Plugin type.
        plugin: String,
        /// The directories searched, colon-separated.
        dirs: String,
    },
    /// A plugin ran and reported an error.
    #[error("plugin {plugin:?} ({}) failed on {command}: {msg}", file.display())]
    Plugin {
        /// The configuration file.
        file: PathBuf,
        /// Plugin type.
        plugin: String,
        /// ADD, DEL or CHECK.
        command: &'static str,
        /// The plugin's own message (with its details, when given).
        msg: String,
    },
    /// The default network's own firewall rules could not be made.
    #[error("network {network:?}: {msg}")]
    Rules {
        /// The network.
        network: String,
        /// What failed.
        msg: String,
    },
    /// Reading or writing peapod's own files.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Finds plugin `name` in `dirs`, in order.
pub fn find_plugin(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    if name.contains('/') {
        return None;
    }
    dirs.iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// A host port to publish (`runtimeConfig.portMappings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// Port on the host.
    pub host_port: u16,
    /// Port in the pod.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// Host address, empty for all.
    #[serde(rename = "hostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// DNS settings (`runtimeConfig.dns`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers.
    pub servers: Vec<String>,
    /// Search domains.
    pub searches: Vec<String>,
    /// resolv.conf options.
    pub options: Vec<String>,
}

/// What one attachment is about: the container side of a CNI call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// `CNI_CONTAINERID`: the sandbox ID.
    pub container_id: String,
    /// `CNI_NETNS`: path of the network namespace.
    pub netns: PathBuf,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`, e.g. `K8S_POD_NAME`.
    pub args: Vec<(String, String)>,
    /// Published ports.
    pub port_mappings: Vec<PortMapping>,
    /// DNS settings, for plugins with the `dns` capability.
    pub dns: Option<Dns>,
}

/// What is cached for an attachment.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    /// The configuration file ADD used.
    file: PathBuf,
    /// Its full text, as parsed then.
    conflist: Value,
    attachment: Attachment,
    /// The final result, once ADD succeeded.
    result: Option<Value>,
}

/// A plugin run's future: the process's exit status and output.
pub type ExecFuture<'a> = Pin<Box<dyn Future<Output = std::io::Result<Output>> + Send + 'a>>;

/// Starts plugin processes (and the iptables runs of [`rules`]): runs `bin` with `args`
/// and the caller's environment plus `env`, writes `stdin` to it and collects its exit
/// status and output.
pub trait PluginExec: Send + Sync {
    /// Runs one program.
    fn exec<'a>(
        &'a self,
        bin: &'a Path,
        args: &'a [String],
        env: &'a [(String, String)],
        stdin: Vec<u8>,
    ) -> ExecFuture<'a>;
}

/// Runs plugins with Tokio's process support.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioExec;

impl PluginExec for TokioExec {
    fn exec<'a>(
        &'a self,
        bin: &'a Path,
        args: &'a [String],
        env: &'a [(String, String)],
        stdin: Vec<u8>,
    ) -> ExecFuture<'a> {
        Box::pin(async move {
            use tokio::io::AsyncWriteExt;
            let mut child = tokio::process::Command::new(bin)
                .args(args)
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()?;
            if let Some(mut input) = child.stdin.take() {
                // A plugin may exit without reading; its exit status tells what happened.
                let now = write_now(&input, &stdin);
                let _ = input.write_all(&stdin[now..]).await;
            }
            child.wait_with_output().await
        })
    }
}

/// Writes as much of `data` as the non-blocking `pipe` takes without waiting; returns how
/// much that was. A plugin's configuration written this way, and its stdin closed, lets the
/// plugin work even if its future is not polled again for a while.
pub fn write_now(pipe: &impl std::os::fd::AsFd, data: &[u8]) -> usize {
    let mut done = 0;
    while done < data.len() {
        match nix::unistd::write(pipe, &data[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    done
}

/// CNI plugin invoker with a result cache.
#[derive(Clone)]
pub struct Cni {
    /// Where plugins are looked for, in order (`CNI_PATH`).
    pub plugin_dirs: Vec<PathBuf>,
    /// Where attachments are cached, one file per container ID.
    pub cache_dir: PathBuf,
    /// How plugin processes are started.
    exec: Arc<dyn PluginExec>,
}

impl std::fmt::Debug for Cni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cni")
            .field("plugin_dirs", &self.plugin_dirs)
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

impl Cni {
    /// An invoker that starts plugins with [`TokioExec`].
    pub fn new(plugin_dirs: Vec<PathBuf>, cache_dir: PathBuf) -> Cni {
        Cni::with_exec(plugin_dirs, cache_dir, Arc::new(TokioExec))
    }

    /// An invoker that starts plugins with `exec`.
    pub fn with_exec(
        plugin_dirs: Vec<PathBuf>,
        cache_dir: PathBuf,
        exec: Arc<dyn PluginExec>,
    ) -> Cni {
        Cni {
            plugin_dirs,
            cache_dir,
            exec,
        }
    }

    fn cache_path(&self, container_id: &str) -> PathBuf {
        self.cache_dir.join(format!("{container_id}.json"))
    }

    /// Checks that every plugin `net` names exists, before anything runs.
    pub fn check_plugins(&self, net: &ConfList) -> Result<()> {
        for t in net.plugin_types() {
            if find_plugin(t, &self.plugin_dirs).is_none() {
                return Err(self.not_found(net, t));
            }
        }
        Ok(())
    }

    fn not_found(&self, net: &ConfList, plugin: &str) -> Error {
        Error::PluginNotFound {
            file: net.file.clone(),
            plugin: plugin.to_string(),
            dirs: self.cni_path(),
        }
    }

    fn cni_path(&self) -> String {
        self.plugin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// ADD: attaches the container to `net`. The attachment is cached first, so that
    /// [`Cni::del`] undoes whatever part of it happened, even when ADD fails.
    pub async fn add(&self, net: &ConfList, att: &Attachment) -> Result<CniResult> {
        self.check_plugins(net)?;
        let mut cached = Cached {
            file: net.file.clone(),
            conflist: conflist_value(net),
            attachment: att.clone(),
            result: None,
        };
        self.save(att, &cached)?;
        let mut prev: Option<Value> = None;
        for plugin in &net.plugins {
            let out = self.invoke("ADD", net, plugin, att, prev.as_ref()).await?;
            prev = Some(out);
        }
        let result = prev.unwrap_or(Value::Null);
        cached.result = Some(result.clone());
        self.save(att, &cached)?;
        Ok(CniResult::from_value(&result))
    }

    /// DEL: detaches what [`Cni::add`] attached for `container_id`, in reverse chain order,
    /// with the configuration and arguments ADD used. Succeeds when nothing is cached (never
    /// added, or already deleted); the cache entry goes only when every plugin succeeded.
    pub async fn del(&self, container_id: &str) -> Result<()> {
        let path = self.cache_path(container_id);
        let cached = match self.read_cache(container_id) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(()),
            Err(e @ Error::Config { .. }) => {
                tracing::warn!("dropping unreadable CNI cache: {e}");
                let _ = std::fs::remove_file(&path);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let net = ConfList::parse(&cached.file, &cached.conflist.to_string())?;
        let mut att = cached.attachment.clone();
        // A namespace already gone is passed as empty, as the specification asks.
        if !att.netns.exists() {
            att.netns = PathBuf::new();
        }
        let prev = cached.result.as_ref().filter(|_| version_at_least(&net, 4));
        for plugin in net.plugins.iter().rev() {
            self.invoke("DEL", &net, plugin, &att, prev).await?;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io {
                context: "removing",
                path,
                source: e,
            }),
        }
    }

    /// Drops the cache entry of `container_id` without running DEL: for an attachment whose
    /// DEL can never succeed (its plugins reject their own configuration).
    pub fn forget(&self, container_id: &str) {
        let _ = std::fs::remove_file(self.cache_path(container_id));
    }

    /// CHECK: asks every plugin whether the attachment is still as ADD left it. Only for
    /// `cniVersion` 0.4.0 and later, and not when the configuration disables it.
    pub async fn check(&self, container_id: &str) -> Result<()> {
        let cached = self.read_cache(container_id)?.ok_or_else(|| Error::Io {
            context: "reading",
            path: self.cache_path(container_id),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        let net = ConfList::parse(&cached.file, &cached.conflist.to_string())?;
        if !version_at_least(&net, 4) || net.disable_check {
            return Ok(());
        }
        for plugin in &net.plugins {
            self.invoke(
                "CHECK",
                &net,
                plugin,
                &cached.attachment,
                cached.result.as_ref(),
            )
            .await?;
        }
        Ok(())
    }

    /// The cached attachment of `container_id`; `None` when there is none.
    fn read_cache(&self, container_id: &str) -> Result<Option<Cached>> {
        let path = self.cache_path(container_id);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Io {
                    context: "reading",
                    path,
                    source: e,
                });
            }
        };
        serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| Error::Config {
                file: path,
                msg: e.to_string(),
            })
    }

    /// The container IDs with a cached attachment.
    pub fn cached(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(&self.cache_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".json").map(str::to_string)
            })
            .collect();
        out.sort();
        out
    }

    fn save(&self, att: &Attachment, cached: &Cached) -> Result<()> {
        let path = self.cache_path(&att.container_id);
        let value = serde_json::to_value(cached).expect("cache entries serialize");
        config::write_json(&path, &value).map_err(|e| Error::Io {
            context: "writing",
            path,
            source: e,
        })
    }

    /// Runs one plugin with one command; returns what it printed (its result).
    async fn invoke(
        &self,
        command: &'static str,
        net: &ConfList,
        plugin: &Value,
        att: &Attachment,
        prev: Option<&Value>,
    ) -> Result<Value> {
        let kind = plugin
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let bin = find_plugin(kind, &self.plugin_dirs).ok_or_else(|| self.not_found(net, kind))?;
        let stdin = plugin_config(net, plugin, att, prev);
        // `IgnoreUnknown` lets plugins that take no Kubernetes arguments accept them, as
        // every Kubernetes runtime passes it.
        let args = if att.args.is_empty() {
            String::new()
        } else {
            std::iter::once("IgnoreUnknown=1".to_string())
                .chain(att.args.iter().map(|(k, v)| format!("{k}={v}")))
                .collect::<Vec<_>>()
                .join(";")
        };
        let fail = |msg: String| Error::Plugin {
            file: net.file.clone(),
            plugin: kind.to_string(),
            command,
            msg,
        };
        let env = [
            ("CNI_COMMAND".to_string(), command.to_string()),
            ("CNI_CONTAINERID".into(), att.container_id.clone()),
            ("CNI_NETNS".into(), att.netns.display().to_string()),
            ("CNI_IFNAME".into(), att.ifname.clone()),
            ("CNI_ARGS".into(), args),
            ("CNI_PATH".into(), self.cni_path()),
        ];
        let data = serde_json::to_vec(&stdin).expect("plugin configs serialize");
        let out = self
            .exec
            .exec(&bin, &[], &env, data)
            .await
            .map_err(|e| fail(format!("running {}: {e}", bin.display())))?;
        if !out.status.success() {
            return Err(fail(error_message(&out.stdout, &out.stderr, out.status)));
        }
        tracing::debug!(plugin = kind, command, "CNI plugin succeeded");
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(prev.cloned().unwrap_or(Value::Null));
        }
        serde_json::from_slice(&out.stdout)
            .map_err(|e| fail(format!("unreadable result: {e}: {}", lossy(&out.stdout))))
    }
}

/// The configuration one plugin receives on stdin.
fn plugin_config(net: &ConfList, plugin: &Value, att: &Attachment, prev: Option<&Value>) -> Value {
    let mut conf = plugin.clone();
    let obj = conf.as_object_mut().expect("plugin configs are objects");
    obj.insert("name".into(), json!(net.name));
    obj.insert("cniVersion".into(), json!(net.cni_version));
    if let Some(p) = prev {
        obj.insert("prevResult".into(), p.clone());
    }
    let caps = plugin.get("capabilities").cloned().unwrap_or(Value::Null);
    let mut runtime = serde_json::Map::new();
    if caps.get("portMappings") == Some(&Value::Bool(true)) && !att.port_mappings.is_empty() {
        runtime.insert("portMappings".into(), json!(att.port_mappings));
    }
    if caps.get("dns") == Some(&Value::Bool(true))
        && let Some(dns) = &att.dns
    {
        runtime.insert("dns".into(), json!(dns));
    }
    if !runtime.is_empty() {
        obj.insert("runtimeConfig".into(), Value::Object(runtime));
    }
    conf
}

/// The plugin's own message: the error object's `msg` and `details` when it printed one,
/// else its stderr, else its exit status.
fn error_message(stdout: &[u8], stderr: &[u8], status: std::process::ExitStatus) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(stdout)
        && let Some(msg) = v.get("msg").and_then(Value::as_str)
    {
        let code = v.get("code").and_then(Value::as_u64).unwrap_or(0);
        return match v.get("details").and_then(Value::as_str) {
            Some(d) if !d.is_empty() => format!("{msg}: {d} (code {code})"),
            _ => format!("{msg} (code {code})"),
        };
    }
    let err = lossy(stderr);
    if !err.is_empty() {
        return err;
    }
    let out = lossy(stdout);
    if !out.is_empty() {
        return out;
    }
    format!("exited with {status}")
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

fn conflist_value(net: &ConfList) -> Value {
    json!({
        "cniVersion": net.cni_version,
        "name": net.name,
        "disableCheck": net.disable_check,
        "plugins": net.plugins,
    })
}

/// Whether the configuration's version is at least 0.`minor`.0 (or any 1.x).
fn version_at_least(net: &ConfList, minor: u32) -> bool {
    let mut parts = net
        .cni_version
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let min = parts.next().unwrap_or(0);
    major >= 1 || min >= minor
}

/// Checks shared by every [`PluginExec`].
#[cfg(any(test, feature = "test-util"))]
pub mod testing {
    use super::PluginExec;
    use std::path::Path;
    use std::time::{Duration, Instant};

    /// Panics unless a plugin started by `exec` gets all of its stdin, and its end, in the
    /// poll that starts it: the caller may block its thread before polling again. Call it
    /// from a current-thread runtime, where nothing else polls the future.
    pub async fn plugin_starts_in_one_poll(exec: &dyn PluginExec) {
        let dir = tempfile::tempdir().unwrap();
        let got = dir.path().join("got");
        // The file appears only once `cat` has read to the end of its input.
        let args = vec![
            "-c".to_string(),
            format!("cat > {0}.part && mv {0}.part {0}", got.display()),
        ];
        let config = br#"{"cniVersion":"1.0.0","name":"n","type":"t"}"#.repeat(100);
        let mut run = exec.exec(Path::new("/bin/sh"), &args, &[], config.clone());
        tokio::select! {
            biased;
            _ = &mut run => panic!("the plugin finished within its first poll"),
            () = std::future::ready(()) => {}
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !got.exists() {
            assert!(
                Instant::now() < deadline,
                "the plugin did not get its whole configuration while its future was not polled"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(std::fs::read(&got).unwrap(), config);
        let out = run.await.unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[tokio::test(flavor = "current_thread")]
    async fn tokio_exec_writes_a_plugins_configuration_in_the_poll_that_starts_it() {
        testing::plugin_starts_in_one_poll(&TokioExec).await;
    }

    fn net(version: &str) -> ConfList {
        ConfList::parse(
            Path::new("n.conflist"),
            &format!(
                r#"{{"cniVersion":"{version}","name":"n","plugins":[{{"type":"bridge"}},{{"type":"portmap","capabilities":{{"portMappings":true}}}}]}}"#
            ),
        )
        .unwrap()
    }

    #[test]
    fn runtime_config_only_for_declared_capabilities() {
        let n = net("1.0.0");
        let att = Attachment {
            port_mappings: vec![PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into(),
                host_ip: String::new(),
            }],
            dns: Some(Dns::default()),
            ..Default::default()
        };
        let prev = json!({"cniVersion": "1.0.0", "ips": []});
        let bridge = plugin_config(&n, &n.plugins[0], &att, None);
        assert_eq!(bridge["name"], "n");
        assert!(bridge.get("runtimeConfig").is_none());
        assert!(bridge.get("prevResult").is_none());
        let pm = plugin_config(&n, &n.plugins[1], &att, Some(&prev));
        assert_eq!(
            pm["runtimeConfig"]["portMappings"][0],
            json!({"hostPort": 8080, "containerPort": 80, "protocol": "tcp"})
        );
        assert!(pm["runtimeConfig"].get("dns").is_none());
        assert_eq!(pm["prevResult"], prev);
    }

    #[test]
    fn versions() {
        assert!(version_at_least(&net("1.0.0"), 4));
        assert!(version_at_least(&net("0.4.0"), 4));
        assert!(!version_at_least(&net("0.3.1"), 4));
    }

    #[test]
    fn plugin_error_messages() {
        let ok = std::process::ExitStatus::default();
        assert_eq!(
            error_message(br#"{"code":7,"msg":"bad","details":"why"}"#, b"", ok),
            "bad: why (code 7)"
        );
        assert_eq!(error_message(b"", b"boom\n", ok), "boom");
    }
}
