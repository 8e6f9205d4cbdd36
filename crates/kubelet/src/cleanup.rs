//! Removing what a pod leaves once its containers are stopped: its sandboxes (through
//! RemovePodSandbox, which owns everything of theirs), its volumes and its files. The
//! worker calls it when a pod is deleted, and the shim's clients when a pod's worker is gone.

use std::path::Path;

use peapod_runtime::{RuntimeService, SandboxFilter};

/// Why a pod could not be removed completely.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    /// The runtime could not remove a sandbox.
    #[error("removing sandbox {id}: {source}")]
    Sandbox {
        /// The sandbox.
        id: String,
        /// The runtime's error.
        source: peapod_runtime::Error,
    },
    /// A file or mount of the pod could not be removed.
    #[error("removing {what}: {source}")]
    Files {
        /// What.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Removes every sandbox labelled with pod `uid`, then the pod's volumes, its directory
/// and its log directory. Doing it twice is fine.
pub async fn remove_pod<R: RuntimeService>(
    rt: &R,
    uid: &str,
    pod_dir: &Path,
    log_dir: &Path,
) -> Result<(), CleanupError> {
    let sandboxes = rt
        .list_pod_sandbox(&SandboxFilter::pod(uid))
        .map_err(|source| CleanupError::Sandbox {
            id: format!("(list of pod {uid})"),
            source,
        })?;
    for sb in sandboxes {
        rt.remove_pod_sandbox(&sb.id)
            .await
            .map_err(|source| CleanupError::Sandbox {
                id: sb.id.clone(),
                source,
            })?;
    }
    crate::volumes::teardown(pod_dir).map_err(|source| CleanupError::Files {
        what: format!("the volumes of {}", pod_dir.display()),
        source,
    })?;
    for d in [pod_dir, log_dir] {
        match std::fs::remove_dir_all(d) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(CleanupError::Files {
                    what: d.display().to_string(),
                    source: e,
                });
            }
            _ => {}
        }
    }
    Ok(())
}
