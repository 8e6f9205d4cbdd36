//! The CRI traits implemented by [`Runtime`]: each operation is the runtime's own, named
//! as the CRI names it.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use peapod_image::{Credential, PullOptions};
use peapod_types::image_ref::Reference;
use tokio::sync::broadcast;

use crate::cri::{ImageService, RuntimeService};
use crate::stats::{ContainerStats, SandboxStats};
use crate::stdio::StreamSession;
use crate::types::*;
use crate::{Error, Result, Runtime};

impl RuntimeService for Runtime {
    fn version(&self) -> Version {
        Version {
            runtime_api_version: "v1".into(),
            runtime_name: "peapod".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn status(&self) -> RuntimeConditions {
        let (network_ready, network_message) = match self.network_check() {
            Ok(()) => (true, String::new()),
            Err(e) => (false, e.to_string()),
        };
        RuntimeConditions {
            runtime_ready: true,
            network_ready,
            network_reason: if network_ready {
                String::new()
            } else {
                "NetworkPluginNotReady".into()
            },
            network_message,
        }
    }

    async fn run_pod_sandbox(&self, config: SandboxConfig) -> Result<String> {
        self.run_sandbox(config).await
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        self.stop_sandbox(id).await
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        self.remove_sandbox(id).await
    }

    fn pod_sandbox_status(&self, id: &str) -> Result<SandboxStatus> {
        self.sandbox_status(id)
    }

    fn list_pod_sandbox(&self, filter: &SandboxFilter) -> Result<Vec<SandboxStatus>> {
        Ok(self.list_sandboxes(filter))
    }

    async fn create_container(&self, sandbox_id: &str, config: ContainerConfig) -> Result<String> {
        self.create_container_impl(sandbox_id, config)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.start_container_impl(id)
    }

    async fn stop_container(&self, id: &str, timeout: Duration) -> Result<()> {
        self.stop_container_impl(id, timeout).await
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.remove_container_impl(id).await
    }

    async fn update_container_resources(&self, id: &str, resources: Resources) -> Result<()> {
        self.update_container_resources_impl(id, &resources)
    }

    async fn update_pod_sandbox_resources(&self, id: &str, resources: Resources) -> Result<()> {
        self.update_pod_sandbox_resources_impl(id, &resources)
    }

    async fn reopen_container_log(&self, id: &str) -> Result<()> {
        self.reopen_container_log_impl(id)
    }

    fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        self.status_of(id)
    }

    fn list_containers(&self, filter: &ContainerFilter) -> Result<Vec<ContainerStatus>> {
        Ok(self.list_containers_impl(filter))
    }

    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecSyncResult> {
        self.exec_sync_impl(id, cmd, timeout).await
    }

    async fn exec_streams(
        &self,
        id: &str,
        cmd: Vec<String>,
        tty: bool,
        stdin: bool,
    ) -> Result<StreamSession> {
        let s = self.exec_interactive(id, cmd, tty, stdin).await?;
        Ok(StreamSession::over(s.attached, Some(s.exit)))
    }

    async fn attach_streams(&self, id: &str, stdin: bool) -> Result<StreamSession> {
        Ok(StreamSession::over(self.attach(id, stdin)?, None))
    }

    fn container_stats(&self, id: &str) -> Result<ContainerStats> {
        Runtime::container_stats(self, id)
    }

    fn list_container_stats(&self, filter: &ContainerFilter) -> Result<Vec<ContainerStats>> {
        Ok(Runtime::list_container_stats(self, filter))
    }

    fn pod_sandbox_stats(&self, id: &str) -> Result<SandboxStats> {
        Runtime::pod_sandbox_stats(self, id)
    }

    fn list_pod_sandbox_stats(&self, filter: &SandboxFilter) -> Result<Vec<SandboxStats>> {
        Ok(Runtime::list_pod_sandbox_stats(self, filter))
    }

    fn container_events(&self) -> broadcast::Receiver<ContainerEvent> {
        self.events.subscribe()
    }

    async fn dial(
        &self,
        sandbox_id: &str,
        addr: SocketAddr,
        timeout: Duration,
    ) -> std::io::Result<TcpStream> {
        let sandbox = self
            .sandbox_status(sandbox_id)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string()))?;
        let netns = sandbox.netns;
        tokio::task::spawn_blocking(move || {
            peapod_oci::ns::connect_tcp_in(netns.as_deref(), addr, timeout)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// What the CRI reports of `img`: every tag and repository digest of its ID in `all`.
fn image_info(
    st: &peapod_image::Store,
    img: &peapod_image::Image,
    all: &[peapod_image::Image],
) -> ImageInfo {
    let user = st.config(img).ok().and_then(|c| c.user).unwrap_or_default();
    let (uid, username) = image_user(&user);
    let same: Vec<_> = all.iter().filter(|i| i.id() == img.id()).collect();
    let mut repo_tags: Vec<String> = same
        .iter()
        .filter(|i| !i.name.contains('@'))
        .map(|i| i.name.clone())
        .collect();
    repo_tags.sort();
    let mut repo_digests: Vec<String> = same.iter().map(|i| i.repo_digest()).collect();
    if repo_digests.is_empty() {
        repo_digests.push(img.repo_digest());
    }
    repo_digests.sort();
    repo_digests.dedup();
    ImageInfo {
        id: img.id().to_string(),
        repo_tags,
        repo_digests,
        size: img.size,
        uid,
        username,
    }
}

/// An image's `USER` (`uid`, `uid:gid`, `name`, `name:group`) as the CRI reports it: the
/// UID when the user is a number, else its name (which only the container's own
/// `/etc/passwd` resolves, once it runs).
pub(crate) fn image_user(user: &str) -> (Option<i64>, String) {
    let name = user.split(':').next().unwrap_or_default();
    match name.parse::<i64>() {
        _ if name.is_empty() => (None, String::new()),
        Ok(uid) => (Some(uid), String::new()),
        Err(_) => (None, name.to_string()),
    }
}

impl ImageService for Runtime {
    async fn pull_image(&self, image: &str, auth: Option<AuthConfig>) -> Result<PulledImage> {
        let mut opts = PullOptions::default();
        if let Some(a) = auth {
            let key = if a.server_address.is_empty() {
                Reference::parse(image)
                    .map_err(peapod_image::Error::from)?
                    .registry
            } else {
                a.server_address.clone()
            };
            opts.keyring.add(&key, credential(&a)?);
        }
        let img = self.registry.pull(image, &opts).await?;
        Ok(PulledImage {
            id: img.id().to_string(),
            image_ref: img.repo_digest(),
            size: img.size,
        })
    }

    fn image_status(&self, image: &str) -> Result<Option<ImageInfo>> {
        match self.images.get(image) {
            Ok(img) => Ok(Some(image_info(&self.images, &img, &self.images.images()?))),
            Err(peapod_image::Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn list_images(&self) -> Result<Vec<ImageInfo>> {
        let all = self.images.images()?;
        let mut seen = std::collections::HashSet::new();
        Ok(all
            .iter()
            .filter(|i| seen.insert(i.id().clone()))
            .map(|i| image_info(&self.images, i, &all))
            .collect())
    }

    fn remove_image(&self, image: &str) -> Result<()> {
        match self.images.get(image) {
            Ok(img) => {
                self.images.remove_id(img.id())?;
                Ok(())
            }
            Err(peapod_image::Error::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn image_fs_info(&self) -> Result<FsUsage> {
        Ok(crate::stats::disk_usage(self.images.dir()))
    }
}

/// The user name and password of a CRI `AuthConfig`.
fn credential(a: &AuthConfig) -> Result<Credential> {
    if !a.username.is_empty() {
        return Ok(Credential {
            username: a.username.clone(),
            password: a.password.clone(),
        });
    }
    if !a.identity_token.is_empty() {
        return Ok(Credential {
            username: "<token>".into(),
            password: a.identity_token.clone(),
        });
    }
    Credential::from_auth(&a.auth)
        .map_err(|why| Error::State(format!("auth config: \"auth\": {why}")))
}

#[cfg(test)]
mod tests {
    use super::image_user;

    #[test]
    fn image_users_are_numbers_or_names() {
        assert_eq!(image_user(""), (None, String::new()));
        assert_eq!(image_user("1000"), (Some(1000), String::new()));
        assert_eq!(image_user("0:0"), (Some(0), String::new()));
        assert_eq!(image_user("1003:1004"), (Some(1003), String::new()));
        assert_eq!(image_user("www-data"), (None, "www-data".to_string()));
        assert_eq!(image_user("root:wheel"), (None, "root".to_string()));
    }
}
