//! What a pull is asked for and what it reports: the platform to pick from an index,
//! credentials to try first, and progress callbacks.

use std::sync::Arc;

use serde_json::Value;

use crate::auth::Keyring;
use crate::digest::Digest;
use crate::{Error, Result};

/// An OS/architecture pair (with an optional variant), as in image indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `v8`, `v7`, … when it matters.
    pub variant: Option<String>,
}

impl Platform {
    /// This host's platform.
    pub fn host() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: crate::archive::host_arch().into(),
            variant: None,
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: parts.get(2).map(|v| v.to_string()),
            }),
            _ => Err(Error::Format(format!(
                "invalid platform {s:?}: expected OS/ARCH[/VARIANT]"
            ))),
        }
    }

    pub(crate) fn matches(&self, p: &Value) -> bool {
        p["os"] == self.os.as_str()
            && p["architecture"] == self.architecture.as_str()
            && self
                .variant
                .as_deref()
                .is_none_or(|v| p["variant"].as_str().is_none_or(|pv| pv == v))
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// What a pull reports as it goes.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The manifest is known: these layers (digest, compressed size) make the image.
    Resolved {
        /// The manifest's digest.
        manifest: Digest,
        /// The layers, bottom first.
        layers: Vec<(Digest, u64)>,
    },
    /// The layer is already in the store.
    Exists(Digest),
    /// `done` of `total` bytes of the layer have arrived.
    Downloading {
        /// The layer.
        layer: Digest,
        /// Bytes so far.
        done: u64,
        /// Announced size.
        total: u64,
    },
    /// The layer is downloaded and verified.
    Downloaded(Digest),
    /// The layer is unpacked into its snapshot.
    Unpacked(Digest),
}

/// Receives progress reports; called from several tasks at once.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Options of one pull or push.
#[derive(Clone, Default)]
pub struct PullOptions {
    /// Credentials that come before the node's (a pod's `imagePullSecrets`).
    pub keyring: Keyring,
    /// The platform wanted from an index; this host's by default.
    pub platform: Option<Platform>,
    /// Progress reports.
    pub progress: Option<ProgressFn>,
}
