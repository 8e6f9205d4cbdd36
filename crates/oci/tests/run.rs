//! Runs a real busybox container through the libcontainer executor.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use peapod_oci::{
    ContainerSpec, Executor, Libcontainer, MountSpec, NamespaceSpec, NsKind, Stdio, Streams, mount,
    ns,
};

/// Runs `script` with busybox's `sh` in a container whose spec `tweak` may change; returns
/// its exit code and its output. Checks that nothing is left behind.
fn run_busybox(script: &str, tweak: impl FnOnce(&mut ContainerSpec)) -> (i32, String) {
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

    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let id = format!("oci-test-{}-{n}", std::process::id());
    let mut spec = ContainerSpec {
        rootfs: d.join("rootfs"),
        args: vec!["sh".into(), "-c".into(), script.into()],
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
            propagation: Default::default(),
            recursive_readonly: false,
        }],
        cgroups_path: format!("/peapod-test/{id}"),
        ..Default::default()
    };
    tweak(&mut spec);
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
    let WaitStatus::Exited(_, code) = status else {
        panic!("{status:?}");
    };
    exec.delete(&id).unwrap();
    peapod_oci::cgroup::remove(&format!("/peapod-test/{id}")).unwrap();
    peapod_oci::cgroup::remove_if_empty("peapod-test");
    assert!(peapod_oci::cgroup::dirs(&format!("/peapod-test/{id}")).is_empty());
    mount::unmount(&d.join("rootfs")).unwrap();
    ns::remove_netns(&netns).unwrap();
    assert!(!mount::is_mounted(&netns));
    assert!(!d.join("state").join(&id).exists());
    (code, out)
}

#[test]
fn runs_busybox_in_a_pinned_netns() {
    let (code, out) = run_busybox(
        "hostname; cat /data/hello; ip addr show lo | grep -c UP; exit 3",
        |_| {},
    );
    assert_eq!(code, 3);
    assert_eq!(out, "testpod\nfrom the host\n1\n");
}

#[test]
fn the_default_seccomp_profile_filters_and_a_localhost_profile_blocks_its_calls() {
    let (code, out) = run_busybox(
        "grep -E '^(Seccomp|Seccomp_filters):' /proc/self/status; hostname other 2>&1; echo $?",
        |s| s.seccomp = peapod_oci::Seccomp::RuntimeDefault,
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("Seccomp:\t2\nSeccomp_filters:\t1\n"),
        "{out}"
    );
    assert!(
        out.ends_with("1\n"),
        "sethostname needs CAP_SYS_ADMIN: {out}"
    );

    let (code, out) = run_busybox("hostname other && hostname", |s| {
        s.seccomp = peapod_oci::Seccomp::RuntimeDefault;
        s.cap_add = vec!["SYS_ADMIN".into()];
    });
    assert_eq!((code, out.as_str()), (0, "other\n"));

    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let (code, out) = run_busybox("mkdir /made 2>&1; touch /file && echo touched", |s| {
        s.seccomp = peapod_oci::Seccomp::Localhost(profile.clone());
    });
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Permission denied"), "{out}");
    assert!(out.ends_with("touched\n"), "{out}");
}
