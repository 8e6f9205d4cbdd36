//! The ImageService: list, status, remove, the image file system; and a pull from a real
//! registry on loopback.

use peapod_cri::proto as pb;

use crate::harness::*;

fn spec(image: &str) -> Option<pb::ImageSpec> {
    Some(pb::ImageSpec {
        image: image.into(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "current_thread")]
async fn images_list_status_pull_and_remove() {
    let s = Server::start().await;
    let mut img = s.images().await;
    let all = img
        .list_images(pb::ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .images;
    assert_eq!(all.len(), 1);
    let busybox = &all[0];
    assert!(busybox.id.starts_with("sha256:"));
    assert_eq!(busybox.repo_tags, [IMAGE]);
    assert!(busybox.size > 0);
    let st = img
        .image_status(pb::ImageStatusRequest {
            image: spec(IMAGE),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.image.unwrap().id, busybox.id);
    assert!(st.info.contains_key("info"));
    // By ID too, as a kubelet names images once pulled.
    let by_id = img
        .image_status(pb::ImageStatusRequest {
            image: spec(&busybox.id),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(by_id.image.is_some());
    // A missing image is no error: the answer has no image.
    let none = img
        .image_status(pb::ImageStatusRequest {
            image: spec("localhost/none:1"),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.image.is_none());
    let fs = img
        .image_fs_info(pb::ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(fs.image_filesystems[0].used_bytes.as_ref().unwrap().value > 0);

    // A pull from a registry on loopback (the image pushed there first).
    let dir = tempfile::tempdir().unwrap();
    let reg =
        peapod_testkit::TestRegistry::start(&dir.path().join("reg"), &Default::default()).unwrap();
    let remote = format!("{}/cri/busybox:1", reg.addr);
    let remote2 = format!("{}/cri/busybox:2", reg.addr);
    for name in [&remote, &remote2] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_peapod"))
            .arg("--config")
            .arg(&s.config)
            .args(["image", "push", IMAGE, name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    img.remove_image(pb::RemoveImageRequest { image: spec(IMAGE) })
        .await
        .unwrap();
    img.remove_image(pb::RemoveImageRequest { image: spec(IMAGE) })
        .await
        .unwrap();
    let pulled = img
        .pull_image(pb::PullImageRequest {
            image: spec(&remote),
            auth: None,
            sandbox_config: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pulled.image_ref, busybox.id, "the same image, by ID");
    // A second tag of the same image: one image with both tags, removed with either.
    img.pull_image(pb::PullImageRequest {
        image: spec(&remote2),
        auth: None,
        sandbox_config: None,
    })
    .await
    .unwrap();
    let all = img
        .list_images(pb::ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .images;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].repo_tags, [remote.clone(), remote2.clone()]);
    assert_eq!(all[0].repo_digests.len(), 1, "one repository, one digest");
    let st = img
        .image_status(pb::ImageStatusRequest {
            image: spec(&remote2),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        st.image.unwrap().repo_tags,
        [remote.clone(), remote2.clone()]
    );
    img.remove_image(pb::RemoveImageRequest {
        image: spec(&remote),
    })
    .await
    .unwrap();
    for name in [&remote2, &busybox.id] {
        let st = img
            .image_status(pb::ImageStatusRequest {
                image: spec(name),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(st.image.is_none(), "{name} is gone with its image");
    }
    let missing = img
        .pull_image(pb::PullImageRequest {
            image: spec(&format!("{}/cri/none:1", reg.addr)),
            auth: None,
            sandbox_config: None,
        })
        .await
        .unwrap_err();
    assert_ne!(missing.code(), tonic::Code::Ok);
    assert!(
        s.log().contains("PullImage"),
        "failed RPCs are logged: {}",
        s.log()
    );
}
