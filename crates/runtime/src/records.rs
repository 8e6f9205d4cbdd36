//! Persisted records of sandboxes and containers.

use std::path::Path;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::types::*;
use crate::{Result, io};

/// A sandbox as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SandboxRecord {
    pub status: SandboxStatus,
    pub config: SandboxConfig,
    /// Whether a CNI attachment may exist (ADD was attempted and no DEL succeeded since).
    #[serde(default)]
    pub network_attached: bool,
    /// StopPodSandbox has run to its end; stopping again does nothing.
    #[serde(default)]
    pub stopped: bool,
    /// Which front end the sandbox belongs to ([`crate::RuntimeConfig::scope`]).
    #[serde(default)]
    pub scope: String,
    /// The process that started the sandbox's processes and records their exits.
    #[serde(default)]
    pub owner_pid: i32,
    /// Its start time (clock ticks after boot), telling it from a later process with the
    /// same PID.
    #[serde(default)]
    pub owner_start: u64,
    /// RunPodSandbox completed (a record without it is a creation in progress, or one a
    /// crash interrupted).
    #[serde(default)]
    pub made: bool,
}

/// A container as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ContainerRecord {
    pub status: ContainerStatus,
    pub config: ContainerConfig,
}

const RECORD: &str = "record.json";

pub(crate) fn save<T: Serialize>(dir: &Path, value: &T) -> Result<()> {
    let path = dir.join(RECORD);
    let data = serde_json::to_vec_pretty(value).expect("records serialize");
    // A temporary file of its own, so that concurrent saves never share one.
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io("creating a file in", dir))?;
    std::io::Write::write_all(&mut tmp, &data).map_err(io("writing", tmp.path()))?;
    tmp.persist(&path)
        .map_err(|e| e.error)
        .map_err(io("renaming", &path))?;
    Ok(())
}

pub(crate) fn load<T: DeserializeOwned>(dir: &Path) -> Option<T> {
    let data = std::fs::read(dir.join(RECORD)).ok()?;
    serde_json::from_slice(&data).ok()
}

pub(crate) fn load_all<T: DeserializeOwned>(dir: &Path) -> Vec<T> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if let Some(r) = load(&e.path()) {
            out.push(r);
        }
    }
    out
}
