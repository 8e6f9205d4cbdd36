//! The image store: content-addressed blobs, named images, and unpacked layer snapshots.
//!
//! Layout under the store directory:
//! ```text
//! blobs/sha256/<hex>     every blob (manifests, configs, layers), verified against its digest
//! images.json            name → image record (manifest and config digests, layers, chain IDs)
//! snapshots/<chainid>/   one unpacked layer in overlay format (whiteouts as 0:0 char devices,
//!                        opaque directories as trusted.overlay.opaque=y), shared by all images
//! tmp/                   work in progress; nothing here is ever read as content
//! locks/                 one lock file per blob or snapshot being fetched or unpacked
//! ```
//! Every write goes to `tmp/` first and is renamed into place, so a crash leaves either the
//! old or the new state; `images.json` is updated last and under a lock.

mod archive;
mod auth;
mod digest;
mod fetch;
mod options;
mod pull;
mod push;
mod store;
mod unpack;

pub use auth::{Credential, Keyring};
pub use digest::Digest;
pub use options::{Platform, Progress, ProgressFn, PullOptions};
pub use pull::Registry;
pub use store::{Image, ImageConfig, Pruned, Store};

use std::path::PathBuf;

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image name that does not parse.
    #[error(transparent)]
    InvalidName(#[from] peapod_types::image_ref::InvalidReference),
    /// The image is not in the store.
    #[error("image {0:?} not found in the store")]
    NotFound(String),
    /// Content whose digest is not the one announced.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being verified.
        what: String,
        /// The announced digest.
        expected: String,
        /// The computed digest.
        actual: String,
    },
    /// An archive or blob that is not what it claims to be.
    #[error("{0}")]
    Format(String),
    /// A registry refused or failed a request.
    #[error("{0}")]
    Registry(String),
    /// The registry wants credentials, or refused the ones given.
    #[error("{0}")]
    Unauthorized(String),
    /// The image is used by a container.
    #[error("image {0:?} is in use by a container")]
    InUse(String),
    /// A file system operation failed.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Results of the image store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) trait IoContext<T> {
    fn at(self, context: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, context: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            context,
            path: path.into(),
            source,
        })
    }
}
