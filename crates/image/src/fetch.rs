//! Downloading one blob into the store: streamed to a temporary file, hashed and
//! size-checked, then renamed into place; coalesced with other downloads of it by a lock.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use oci_client::Client;
use oci_client::errors::OciDistributionError;

use crate::digest::{Digest, Hashing};
use crate::options::{Progress, ProgressFn};
use crate::pull::classify;
use crate::store::Store;
use crate::{Error, IoContext, Result};

/// What every layer task needs to download into the store.
#[derive(Clone)]
pub(crate) struct Fetch {
    pub(crate) store: Store,
    pub(crate) client: Client,
    pub(crate) oref: oci_client::Reference,
    pub(crate) name: String,
    pub(crate) progress: Option<ProgressFn>,
}

impl Fetch {
    /// Downloads the blob unless the store has it; verified, then renamed into place.
    pub(crate) async fn blob(&self, digest: &Digest, size: u64, layer: bool) -> Result<()> {
        let report = |p: Progress| {
            if layer && let Some(f) = &self.progress {
                f(&p)
            }
        };
        if self.store.has_blob(digest) {
            report(Progress::Exists(digest.clone()));
            return Ok(());
        }
        let lock = self
            .store
            .lock_key(&format!("blob-{}", digest.hex()))
            .await?;
        if self.store.has_blob(digest) {
            lock.done();
            report(Progress::Exists(digest.clone()));
            return Ok(());
        }
        let what = if layer { "layer" } else { "config" };
        let ctx = |err: OciDistributionError| classify(&self.name, self.oref.registry(), err);
        let mut stream = self
            .client
            .pull_blob_stream(&self.oref, digest.as_str())
            .await
            .map_err(ctx)?;
        let tmp = self.store.temp_path("download");
        let cleanup = Cleanup(tmp.clone());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .at("creating", &tmp)?;
        let mut out = Hashing::new(std::io::BufWriter::with_capacity(1 << 20, file));
        let mut done = 0u64;
        // The first chunk is reported at once, then every 100 ms.
        let mut last_report = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(Instant::now);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|err| {
                Error::Registry(format!(
                    "{}: downloading {what} {digest}: {}",
                    self.name,
                    chain_text(&err)
                ))
            })?;
            done += chunk.len() as u64;
            if size > 0 && done > size {
                return Err(Error::Format(format!(
                    "{}: {what} {digest} is larger than the {size} bytes announced",
                    self.name
                )));
            }
            out.write_all(&chunk).at("writing", &tmp)?;
            if last_report.elapsed() >= Duration::from_millis(100) {
                last_report = Instant::now();
                report(Progress::Downloading {
                    layer: digest.clone(),
                    done,
                    total: size,
                });
            }
        }
        let (actual, n, w) = out.finish();
        if actual != *digest {
            return Err(Error::DigestMismatch {
                what: format!("{what} of {}", self.name),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        if size > 0 && n != size {
            return Err(Error::Format(format!(
                "{}: {what} {digest} has {n} bytes, {size} announced",
                self.name
            )));
        }
        let f = w
            .into_inner()
            .map_err(|e| e.into_error())
            .at("writing", &tmp)?;
        f.sync_all().at("syncing", &tmp)?;
        let dst = self.store.blob_path(digest);
        std::fs::rename(&tmp, &dst).at("storing blob", &dst)?;
        cleanup.disarm();
        lock.done();
        report(Progress::Downloading {
            layer: digest.clone(),
            done: n,
            total: size,
        });
        report(Progress::Downloaded(digest.clone()));
        Ok(())
    }
}

pub(crate) fn chain_text(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut src = err.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg.push_str(&format!(": {t}"));
        }
        src = s.source();
    }
    msg
}

/// Removes a temporary file when dropped, also when the task is aborted.
pub(crate) struct Cleanup(pub(crate) PathBuf);

impl Cleanup {
    pub(crate) fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
