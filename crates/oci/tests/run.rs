//! Runs a real busybox container through the libcontainer executor.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use peapod_oci::{
    ContainerSpec, Executor, Libcontainer, MountSpec, NamespaceSpec, NsKind, Stdio, Streams, mount,
    ns,
};

#[test]
fn runs_busybox_in_a_pinned_netns() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let archive = d.join("bb.tar");
    peapod_testkit::write_busybox_archive("/bin/busybox".as_ref(), "localhost/t/bb:1", &archive)
        .unwrap();
    let store = peapod_image::Store::open(d.join("store")).unwrap();
    let img = store.load_archive(&archive).unwrap().remove(0);
    let lowers = store.snapshots(&img).unwrap();
    for sub in ["upper", "work", "rootfs", "vol"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::fs::write(d.join("vol/hello"), "from the host\n").unwrap();
    mount::overlay(
        &lowers,
        &d.join("upper"),
        &d.join("work"),
        &d.join("rootfs"),
    )
    .unwrap();
    let netns = d.join("netns");
    ns::create_netns(&netns).unwrap();

    let id = format!("oci-test-{}", std::process::id());
    let spec = ContainerSpec {
        rootfs: d.join("rootfs"),
        args: vec![
            "sh".into(),
            "-c".into(),
            "hostname; cat /data/hello; ip addr show lo | grep -c UP; exit 3".into(),
        ],
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        hostname: Some("testpod".into()),
        namespaces: vec![
            NamespaceSpec {
                kind: NsKind::Net,
                path: Some(netns.clone()),
            },
            NamespaceSpec {
                kind: NsKind::Uts,
                path: None,
            },
            NamespaceSpec {
                kind: NsKind::Ipc,
                path: None,
            },
            NamespaceSpec {
                kind: NsKind::Pid,
                path: None,
            },
            NamespaceSpec {
                kind: NsKind::Mnt,
                path: None,
            },
        ],
        mounts: vec![MountSpec::Bind {
            source: d.join("vol"),
            destination: "/data".into(),
            readonly: true,
        }],
        cgroups_path: format!("/peapod-test/{id}"),
        ..Default::default()
    };
    let bundle = d.join("bundle");
    peapod_oci::spec::write_bundle(&bundle, &spec).unwrap();
    let (r, w) = nix::unistd::pipe().unwrap();
    let w2: OwnedFd = w.as_fd().try_clone_to_owned().unwrap();
    let exec = Libcontainer::new(d.join("state"));
    let pid = exec
        .create(
            &id,
            &bundle,
            Streams::Pipes(Stdio {
                stdin: None,
                stdout: w,
                stderr: w2,
            }),
        )
        .unwrap()
        .pid;
    let pidfd = ns::pidfd_open(pid).unwrap();
    exec.start(&id).unwrap();
    let mut out = String::new();
    std::fs::File::from(r).read_to_string(&mut out).unwrap();
    let mut pfd = [nix::poll::PollFd::new(
        pidfd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(5000u16)).unwrap();
    let status = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::__WALL)).unwrap();
    assert_eq!(status, WaitStatus::Exited(Pid::from_raw(pid), 3));
    assert_eq!(out, "testpod\nfrom the host\n1\n");
    exec.delete(&id).unwrap();
    peapod_oci::cgroup::remove(&format!("/peapod-test/{id}")).unwrap();
    peapod_oci::cgroup::remove_if_empty("peapod-test");
    assert!(peapod_oci::cgroup::dirs(&format!("/peapod-test/{id}")).is_empty());
    mount::unmount(&d.join("rootfs")).unwrap();
    ns::remove_netns(&netns).unwrap();
    assert!(!mount::is_mounted(&netns));
    assert!(!d.join("state").join(&id).exists());
}
