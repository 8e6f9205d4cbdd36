//! Registry credentials matched to images as the kubelet's credential keyring does: Docker
//! `config.json` contents (`kubernetes.io/dockerconfigjson` Secrets, the node's file) and
//! per-host users, keyed by `host[/path]`, the longest matching key first.

use base64::Engine;

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl Credential {
    /// The credential in an `auth` field: `base64(user:password)`.
    pub fn from_auth(auth: &str) -> Result<Credential, String> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| e.to_string())?;
        let raw = String::from_utf8(raw).map_err(|_| "not UTF-8".to_string())?;
        let (u, p) = raw
            .split_once(':')
            .ok_or_else(|| "not USER:PASSWORD".to_string())?;
        Ok(Credential {
            username: u.to_string(),
            password: p.to_string(),
        })
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({:?}, <redacted>)", self.username)
    }
}

/// Credentials that could not be read; the message names the source and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CredentialError(pub String);

/// Credentials keyed by `host[/path]`, from one or more sources, in the order given.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    entries: Vec<(String, Credential)>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Keyring {
        Keyring::default()
    }

    /// Adds the credentials of a Docker `config.json` (`{"auths": {...}}`) or of a legacy
    /// `.dockercfg` (the `auths` map itself). `source` names it in errors.
    pub fn add_docker_config(&mut self, json: &[u8], source: &str) -> Result<(), CredentialError> {
        let bad = |why: String| CredentialError(format!("credentials in {source}: {why}"));
        let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
        let auths = match v.get("auths") {
            Some(a) => a,
            None if v.is_object() && v.get("credHelpers").is_none() => &v,
            None => return Ok(()),
        };
        let Some(auths) = auths.as_object() else {
            return Err(bad("\"auths\" is not an object".into()));
        };
        for (key, entry) in auths {
            let text = |k: &str| entry.get(k).and_then(|v| v.as_str()).unwrap_or_default();
            let cred = if !text("auth").is_empty() {
                Credential::from_auth(text("auth"))
                    .map_err(|why| bad(format!("auths.{key:?}.auth: {why}")))?
            } else if !text("username").is_empty() {
                Credential {
                    username: text("username").to_string(),
                    password: text("password").to_string(),
                }
            } else if !text("identitytoken").is_empty() {
                Credential {
                    username: "<token>".into(),
                    password: text("identitytoken").to_string(),
                }
            } else {
                continue;
            };
            self.add(key, cred);
        }
        Ok(())
    }

    /// Adds one credential for `key` (`host`, `host/path`, or a URL).
    pub fn add(&mut self, key: &str, cred: Credential) {
        self.entries.push((normalize_key(key), cred));
    }

    /// Whether there is no credential at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The credentials for `registry/repository`: the entries whose key is the registry or
    /// a path prefix of the repository, longest key first, then in insertion order.
    pub fn lookup(&self, registry: &str, repository: &str) -> Vec<Credential> {
        let registry = canonical_host(registry);
        let full = format!("{registry}/{repository}");
        let mut found: Vec<(usize, usize, &Credential)> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, (k, _))| {
                *k == registry
                    || (full.starts_with(k.as_str()) && full.as_bytes().get(k.len()) == Some(&b'/'))
            })
            .map(|(i, (k, c))| (k.len(), i, c))
            .collect();
        found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut out: Vec<Credential> = Vec::new();
        for (_, _, c) in found {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
        out
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `https://host:5000/` → `host:5000`.
fn normalize_key(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let k = k.trim_end_matches('/');
    let (host, path) = match k.split_once('/') {
        Some((h, p)) => (h, p),
        None => (k, ""),
    };
    let host = canonical_host(host);
    let path = path.trim_end_matches('/');
    if path.is_empty() || (host == "docker.io" && (path == "v1" || path == "v2")) {
        host
    } else {
        format!("{host}/{path}")
    }
}

/// The names Docker Hub goes by all mean `docker.io`.
fn canonical_host(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        h => h.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_and_lookup() {
        let mut k = Keyring::new();
        let json = br#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "YWxpY2U6czNjcmV0"},
            "127.0.0.1:5000": {"username": "bob", "password": "pw"},
            "127.0.0.1:5000/team": {"auth": "Y2Fyb2w6eA=="}
        }}"#;
        k.add_docker_config(json, "test").unwrap();
        let hub = k.lookup("docker.io", "library/busybox");
        assert_eq!(hub.len(), 1);
        assert_eq!(hub[0].username, "alice");
        assert_eq!(hub[0].password, "s3cret");
        let team = k.lookup("127.0.0.1:5000", "team/app");
        assert_eq!(team[0].username, "carol");
        assert_eq!(team[1].username, "bob");
        assert_eq!(k.lookup("127.0.0.1:5000", "teamx/app").len(), 1);
        assert!(k.lookup("example.com", "a").is_empty());
        let err = k
            .add_docker_config(br#"{"auths": {"x": {"auth": "!!"}}}"#, "f")
            .unwrap_err()
            .to_string();
        assert!(err.contains("auths.\"x\".auth"), "{err}");
    }

    #[test]
    fn legacy_dockercfg() {
        let mut k = Keyring::new();
        k.add_docker_config(br#"{"reg.example:443": {"auth": "dTpw"}}"#, "cfg")
            .unwrap();
        assert_eq!(k.lookup("reg.example:443", "a/b")[0].username, "u");
    }
}
