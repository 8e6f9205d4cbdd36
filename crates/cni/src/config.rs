//! Network configuration files: finding, parsing, and writing peapod's default one.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::{Error, Result};

/// A network configuration list (a `.conflist`, or a single-plugin `.conf` lifted into one).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfList {
    /// The file it came from.
    pub file: PathBuf,
    /// `name`.
    pub name: String,
    /// `cniVersion`.
    pub cni_version: String,
    /// `disableCheck`.
    pub disable_check: bool,
    /// Each plugin's configuration object, in chain order.
    pub plugins: Vec<Value>,
}

impl ConfList {
    /// Parses a configuration file's text; `file` is used in messages only.
    pub fn parse(file: &Path, text: &str) -> Result<ConfList> {
        let bad = |msg: String| Error::Config {
            file: file.to_path_buf(),
            msg,
        };
        let v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let Value::Object(obj) = &v else {
            return Err(bad("not a JSON object".into()));
        };
        let str_field = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        let name = str_field("name").ok_or_else(|| bad("missing \"name\"".into()))?;
        let cni_version = str_field("cniVersion").unwrap_or_else(|| "0.1.0".into());
        let plugins = match obj.get("plugins") {
            Some(Value::Array(p)) => p.clone(),
            Some(_) => return Err(bad("\"plugins\" is not an array".into())),
            // A single plugin configuration.
            None => vec![v.clone()],
        };
        if plugins.is_empty() {
            return Err(bad("\"plugins\" is empty".into()));
        }
        for (i, p) in plugins.iter().enumerate() {
            if p.get("type")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(bad(format!("plugins[{i}] has no \"type\"")));
            }
        }
        Ok(ConfList {
            file: file.to_path_buf(),
            name,
            cni_version,
            disable_check: obj
                .get("disableCheck")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            plugins,
        })
    }

    /// Reads and parses one file.
    pub fn load(file: &Path) -> Result<ConfList> {
        let text = std::fs::read_to_string(file).map_err(|e| Error::Config {
            file: file.to_path_buf(),
            msg: e.to_string(),
        })?;
        Self::parse(file, &text)
    }

    /// The plugin types in chain order.
    pub fn plugin_types(&self) -> Vec<&str> {
        self.plugins
            .iter()
            .filter_map(|p| p.get("type").and_then(Value::as_str))
            .collect()
    }
}

/// The configuration files in `dir` (`.conf`, `.conflist`, `.json`), sorted by name, as
/// libcni orders them. A missing directory has none.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("conf" | "conflist" | "json")
                )
        })
        .collect();
    out.sort();
    out
}

/// The first network configuration in `dir`, by file name; `None` when there is none. A
/// file that exists but cannot be parsed is an error naming it: silently skipping it would
/// attach pods to a network the user did not mean.
pub fn first_in(dir: &Path) -> Result<Option<ConfList>> {
    match files(dir).first() {
        Some(f) => ConfList::load(f).map(Some),
        None => Ok(None),
    }
}

/// What peapod's own default network looks like.
#[derive(Debug, Clone)]
pub struct DefaultNetwork {
    /// Network name (also the host-local IPAM's directory name).
    pub name: String,
    /// Bridge interface on the host.
    pub bridge: String,
    /// IPv4 subnet, e.g. `10.85.0.0/16`.
    pub subnet: String,
    /// Where host-local keeps its allocations.
    pub ipam_dir: PathBuf,
}

/// peapod's default conflist: the bridge plugin with host-local IPAM, and portmap for
/// hostPort. Masquerading and forwarding are the network's own rules
/// ([`crate::rules`]), made once rather than by plugins for every pod.
pub fn default_conflist(net: &DefaultNetwork) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": net.name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": net.bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": net.ipam_dir,
                    "ranges": [[{"subnet": net.subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    })
}

/// peapod's default network, kept in `dir` as `10-peapod.conflist`: written there when it
/// is missing or differs from what this version of peapod makes (an older one's).
pub fn default_in(dir: &Path, net: &DefaultNetwork) -> Result<ConfList> {
    let file = dir.join("10-peapod.conflist");
    let want = default_conflist(net);
    let current = std::fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    if current.as_ref() != Some(&want) {
        write_json(&file, &want).map_err(|e| Error::Config {
            file: file.clone(),
            msg: format!("writing: {e}"),
        })?;
        tracing::info!("wrote the default pod network {}", file.display());
    }
    ConfList::load(&file)
}

/// Writes `value` to `path` atomically: a temporary file of its own (so that concurrent
/// writers never share one) renamed over it.
pub(crate) fn write_json(path: &Path, value: &Value) -> std::io::Result<()> {
    write_bytes(
        path,
        &serde_json::to_vec_pretty(value).expect("JSON values serialize"),
    )
}

/// Writes `text` to `path` atomically, as [`write_json`] does.
pub(crate) fn write_text(path: &Path, text: &str) -> std::io::Result<()> {
    write_bytes(path, text.as_bytes())
}

fn write_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_plugin_conf_becomes_a_list() {
        let c = ConfList::parse(
            Path::new("10-x.conf"),
            r#"{"cniVersion":"0.4.0","name":"x","type":"bridge"}"#,
        )
        .unwrap();
        assert_eq!(c.plugin_types(), ["bridge"]);
        assert_eq!(c.cni_version, "0.4.0");
    }

    #[test]
    fn errors_name_the_file() {
        let e = ConfList::parse(Path::new("/e/99-bad.conflist"), "{ nope").unwrap_err();
        assert!(e.to_string().starts_with("/e/99-bad.conflist: "), "{e}");
        let e = ConfList::parse(
            Path::new("a.conflist"),
            r#"{"name":"n","plugins":[{"type":"bridge"},{}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "a.conflist: plugins[1] has no \"type\"");
    }

    #[test]
    fn first_file_by_name() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("20-b.conflist"), r#"{"name":"b","type":"x"}"#).unwrap();
        std::fs::write(d.path().join("10-a.conf"), r#"{"name":"a","type":"x"}"#).unwrap();
        std::fs::write(d.path().join("00-ignored.txt"), "").unwrap();
        assert_eq!(first_in(d.path()).unwrap().unwrap().name, "a");
        assert!(first_in(&d.path().join("missing")).unwrap().is_none());
    }

    fn network(dir: &Path) -> DefaultNetwork {
        DefaultNetwork {
            name: "n".into(),
            bridge: "nbr0".into(),
            subnet: "10.1.0.0/16".into(),
            ipam_dir: dir.join("ipam"),
        }
    }

    #[test]
    fn concurrent_first_use_writes_the_default_once_without_failing() {
        let d = tempfile::tempdir().unwrap();
        let net = network(d.path());
        std::thread::scope(|s| {
            let all: Vec<_> = (0..16)
                .map(|_| s.spawn(|| default_in(&d.path().join("net.d"), &net)))
                .collect();
            for t in all {
                assert_eq!(t.join().unwrap().unwrap().name, "n");
            }
        });
        let left: Vec<_> = std::fs::read_dir(d.path().join("net.d"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["10-peapod.conflist"], "no temporary file is left");
    }

    #[test]
    fn an_older_default_network_is_replaced_and_a_current_one_kept() {
        let d = tempfile::tempdir().unwrap();
        let net = network(d.path());
        let file = d.path().join("10-peapod.conflist");
        let mut old = default_conflist(&net);
        old["plugins"][0]["ipMasq"] = json!(true);
        old["plugins"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "firewall"}));
        write_json(&file, &old).unwrap();
        let c = default_in(d.path(), &net).unwrap();
        assert_eq!(c.plugin_types(), ["bridge", "portmap"]);
        assert_eq!(c.plugins[0]["ipMasq"], json!(false));
        let written = std::fs::metadata(&file).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        default_in(d.path(), &net).unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().modified().unwrap(),
            written
        );
    }
}
