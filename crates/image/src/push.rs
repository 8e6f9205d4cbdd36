//! Pushing a stored image to a registry: the blobs it lacks, then the manifest.

use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use serde_json::Value;

use crate::digest::Digest;
use crate::options::PullOptions;
use crate::pull::{Endpoint, OCI_MANIFEST, Registry, classify, http_header};
use crate::store::Image;
use crate::{Error, Result};
use peapod_types::image_ref::Reference;

impl Registry {
    /// Pushes the stored image `name` to `target` (its own name by default): blobs the
    /// registry lacks, then the manifest. Returns the manifest digest.
    pub async fn push(
        &self,
        name: &str,
        target: Option<&str>,
        opts: &PullOptions,
    ) -> Result<Digest> {
        let image = self.store.get(name)?;
        let target = Reference::parse(target.unwrap_or(&image.name))?;
        let e = self.endpoint(&target.registry);
        let auths = self.auths(opts, &e.host, &target.repository);
        let last = auths.len() - 1;
        for (i, auth) in auths.into_iter().enumerate() {
            let client = self.client(&e)?;
            match self.push_with(&client, &e, &image, &target, &auth).await {
                Err(Error::Unauthorized(_)) if i < last => continue,
                other => return other,
            }
        }
        unreachable!("at least one credential (anonymous) is tried")
    }

    async fn push_with(
        &self,
        client: &Client,
        e: &Endpoint,
        image: &Image,
        target: &Reference,
        auth: &RegistryAuth,
    ) -> Result<Digest> {
        let name = target.to_string();
        let ctx = |err: OciDistributionError| classify(&name, &e.host, err);
        let oref = oci_client::Reference::with_tag(
            e.host.clone(),
            target.repository.clone(),
            target.tag.clone().unwrap_or_else(|| "latest".into()),
        );
        client
            .auth(&oref, auth, RegistryOperation::Push)
            .await
            .map_err(ctx)?;
        for d in image.layers.iter().chain([&image.config_digest]) {
            if client.blob_exists(&oref, d.as_str()).await.map_err(ctx)? {
                continue;
            }
            let data = self.store.read_blob(d)?;
            client
                .push_blob(&oref, data, d.as_str())
                .await
                .map_err(ctx)?;
        }
        let manifest = self.store.read_blob(&image.manifest_digest)?;
        let doc: Value = serde_json::from_slice(&manifest)
            .map_err(|err| Error::Format(format!("manifest of {}: {err}", image.name)))?;
        let mt = doc["mediaType"]
            .as_str()
            .unwrap_or(OCI_MANIFEST)
            .to_string();
        let mt = http_header(&mt)?;
        client
            .push_manifest_raw(&oref, manifest, mt)
            .await
            .map_err(ctx)?;
        Ok(image.manifest_digest.clone())
    }
}
