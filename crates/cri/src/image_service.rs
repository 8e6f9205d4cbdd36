//! The CRI `ImageService` over gRPC, as conversions onto the runtime's image trait.

use tonic::{Request, Response, Status};

use crate::convert;
use crate::proto::{self as pb, image_service_server::ImageService};
use crate::{Backend, Cri, status_of};

fn image_name(spec: Option<&pb::ImageSpec>) -> Result<String, Status> {
    spec.map(|s| s.image.clone())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Status::invalid_argument("image.image: required"))
}

#[tonic::async_trait]
impl<R: Backend> ImageService for Cri<R> {
    async fn list_images(
        &self,
        req: Request<pb::ListImagesRequest>,
    ) -> Result<Response<pb::ListImagesResponse>, Status> {
        let want = req
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|s| s.image)
            .filter(|s| !s.is_empty());
        self.logged("ListImages", async {
            let images = match want {
                Some(name) => self
                    .rt
                    .image_status(&name)
                    .map_err(status_of)?
                    .into_iter()
                    .collect(),
                None => self.rt.list_images().map_err(status_of)?,
            };
            Ok(pb::ListImagesResponse {
                images: images.iter().map(convert::image).collect(),
            })
        })
        .await
    }

    async fn image_status(
        &self,
        req: Request<pb::ImageStatusRequest>,
    ) -> Result<Response<pb::ImageStatusResponse>, Status> {
        let req = req.into_inner();
        self.logged("ImageStatus", async {
            let name = image_name(req.image.as_ref())?;
            // An image the store does not have is no error: the answer has no image.
            let found = self.rt.image_status(&name).map_err(status_of)?;
            let info = match (&found, req.verbose) {
                (Some(i), true) => [(
                    "info".to_string(),
                    serde_json::json!({"id": i.id, "size": i.size}).to_string(),
                )]
                .into(),
                _ => Default::default(),
            };
            Ok(pb::ImageStatusResponse {
                image: found.as_ref().map(convert::image),
                info,
            })
        })
        .await
    }

    async fn pull_image(
        &self,
        req: Request<pb::PullImageRequest>,
    ) -> Result<Response<pb::PullImageResponse>, Status> {
        let req = req.into_inner();
        self.logged("PullImage", async {
            let name = image_name(req.image.as_ref())?;
            let auth = req.auth.as_ref().map(convert::auth);
            let pulled = self.rt.pull_image(&name, auth).await.map_err(status_of)?;
            Ok(pb::PullImageResponse {
                image_ref: pulled.id,
            })
        })
        .await
    }

    async fn remove_image(
        &self,
        req: Request<pb::RemoveImageRequest>,
    ) -> Result<Response<pb::RemoveImageResponse>, Status> {
        let req = req.into_inner();
        self.logged("RemoveImage", async {
            let name = image_name(req.image.as_ref())?;
            self.rt.remove_image(&name).map_err(status_of)?;
            Ok(pb::RemoveImageResponse {})
        })
        .await
    }

    async fn image_fs_info(
        &self,
        _req: Request<pb::ImageFsInfoRequest>,
    ) -> Result<Response<pb::ImageFsInfoResponse>, Status> {
        self.logged("ImageFsInfo", async {
            let u = self.rt.image_fs_info().map_err(status_of)?;
            let usage = pb::FilesystemUsage {
                timestamp: jiff::Timestamp::now().as_nanosecond() as i64,
                fs_id: Some(pb::FilesystemIdentifier {
                    mountpoint: u.mountpoint,
                }),
                used_bytes: Some(pb::UInt64Value {
                    value: u.used_bytes,
                }),
                inodes_used: Some(pb::UInt64Value {
                    value: u.inodes_used,
                }),
            };
            Ok(pb::ImageFsInfoResponse {
                image_filesystems: vec![usage.clone()],
                container_filesystems: vec![usage],
            })
        })
        .await
    }
}
