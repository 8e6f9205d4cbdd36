//! The OCI description of a container: its config as the CRI gave it, its image's config
//! and its sandbox's namespaces and files, combined as containerd combines them.

use std::path::PathBuf;

use peapod_oci::{ContainerSpec, MountSpec, NamespaceSpec, NsKind};

use crate::types::*;
use crate::{Error, Result, io};

/// The OCI description of a container, from its config, its image and its sandbox.
pub(crate) fn container_spec(
    sb: &crate::records::SandboxRecord,
    config: &ContainerConfig,
    icfg: &peapod_image::ImageConfig,
    rootfs: PathBuf,
    sandbox_dir: &std::path::Path,
    id: &str,
    sources: &[PathBuf],
) -> Result<ContainerSpec> {
    // Kubernetes' command/args rules, as containerd applies them.
    let (mut command, mut args) = (config.command.clone(), config.args.clone());
    if command.is_empty() {
        if args.is_empty() {
            args = icfg.cmd.clone();
        }
        command = icfg.entrypoint.clone();
    }
    let argv: Vec<String> = command.into_iter().chain(args).collect();
    if argv.is_empty() {
        return Err(Error::State(
            "no command specified: neither the container nor its image gives one".into(),
        ));
    }
    let mut env: Vec<String> = icfg.env.clone();
    let mut set = |k: &str, v: &str| {
        let kv = format!("{k}={v}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').is_some_and(|(ek, _)| ek == k))
        {
            Some(e) => *e = kv,
            None => env.push(kv),
        }
    };
    set(
        "HOSTNAME",
        std::fs::read_to_string(sandbox_dir.join("hostname"))
            .unwrap_or_default()
            .trim(),
    );
    for (k, v) in &config.envs {
        set(k, v);
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    let cwd = if !config.working_dir.is_empty() {
        config.working_dir.clone()
    } else {
        icfg.working_dir.clone().unwrap_or_else(|| "/".into())
    };
    let cwd_host = rootfs.join(cwd.trim_start_matches('/'));
    if !cwd_host.exists() {
        std::fs::create_dir_all(&cwd_host).map_err(io("creating working directory", &cwd_host))?;
    }
    let sec = &config.security;
    if sec.privileged && !sb.config.privileged {
        return Err(Error::State(
            "a privileged container needs a privileged sandbox".into(),
        ));
    }
    if let Some(why) = sec.apparmor.refusal(crate::types::AppArmor::host_enabled()) {
        return Err(Error::State(why));
    }
    if sec.run_as_group.is_some()
        && sec.run_as_user.is_none()
        && sec.run_as_username.as_deref().is_none_or(str::is_empty)
    {
        return Err(Error::State(
            "run_as_group is set without run_as_user or run_as_username".into(),
        ));
    }
    // The security context's user replaces the image's, which is then not looked up.
    let (uid, mut gid) = if let Some(u) = sec.run_as_user {
        let gid = crate::user::resolve(&rootfs, &u.to_string())
            .map(|(_, g)| g)
            .unwrap_or(0);
        (u as u32, gid)
    } else if let Some(name) = sec.run_as_username.as_deref().filter(|n| !n.is_empty()) {
        crate::user::resolve(&rootfs, name).map_err(Error::State)?
    } else if let Some(u) = &icfg.user {
        crate::user::resolve(&rootfs, u).map_err(Error::State)?
    } else {
        (0, 0)
    };
    if let Some(g) = sec.run_as_group {
        gid = g as u32;
    }
    let image_groups = match sec.supplemental_groups_policy {
        SupplementalGroupsPolicy::Strict => Vec::new(),
        SupplementalGroupsPolicy::Merge => {
            let user = match (&sec.run_as_username, sec.run_as_user, &icfg.user) {
                (Some(name), _, _) if !name.is_empty() => name.clone(),
                (_, Some(u), _) => u.to_string(),
                (_, _, Some(u)) if !u.is_empty() => u.split(':').next().unwrap_or(u).to_string(),
                _ => "0".to_string(),
            };
            crate::user::image_groups(&rootfs, &user)
        }
    };
    let additional_gids =
        crate::user::supplementary_groups(gid, &image_groups, &sec.supplemental_groups);

    let mut mounts: Vec<MountSpec> = config
        .mounts
        .iter()
        .zip(sources)
        .map(|(m, source)| MountSpec::Bind {
            source: source.clone(),
            destination: m.container_path.clone(),
            readonly: m.readonly,
            propagation: m.propagation,
            recursive_readonly: m.recursive_readonly,
        })
        .collect();
    for m in &config.mounts {
        if !m.container_path.starts_with('/') {
            return Err(Error::State(format!(
                "mount destination {:?} is not an absolute path",
                m.container_path
            )));
        }
        check_propagation(m)?;
    }
    let given = |p: &str| config.mounts.iter().any(|m| m.container_path == p);
    for (file, dest) in [
        ("hostname", "/etc/hostname"),
        ("resolv.conf", "/etc/resolv.conf"),
    ] {
        if !given(dest) {
            mounts.push(MountSpec::Bind {
                source: sandbox_dir.join(file),
                destination: dest.into(),
                readonly: false,
                propagation: Default::default(),
                recursive_readonly: false,
            });
        }
    }
    if sandbox_dir.join("shm").is_dir() && !given("/dev/shm") {
        mounts.push(MountSpec::Bind {
            source: sandbox_dir.join("shm"),
            destination: "/dev/shm".into(),
            readonly: false,
            propagation: Default::default(),
            recursive_readonly: false,
        });
    }

    let infra = sb.status.infra_pid;
    let proc_ns = |k: &str| Some(PathBuf::from(format!("/proc/{infra}/ns/{k}")));
    let mut namespaces = vec![NamespaceSpec {
        kind: NsKind::Mnt,
        path: None,
    }];
    if sb.config.user_namespace.is_some() {
        namespaces.push(NamespaceSpec {
            kind: NsKind::User,
            path: Some(sandbox_dir.join(crate::sandbox::USERNS)),
        });
    }
    if let Some(netns) = &sb.status.netns {
        namespaces.push(NamespaceSpec {
            kind: NsKind::Net,
            path: Some(netns.clone()),
        });
        namespaces.push(NamespaceSpec {
            kind: NsKind::Uts,
            path: proc_ns("uts"),
        });
    }
    if sb.status.namespaces.ipc != NamespaceMode::Node {
        namespaces.push(NamespaceSpec {
            kind: NsKind::Ipc,
            path: proc_ns("ipc"),
        });
    }
    match sec.pid_namespace {
        NamespaceMode::Pod => namespaces.push(NamespaceSpec {
            kind: NsKind::Pid,
            path: proc_ns("pid"),
        }),
        NamespaceMode::Container => namespaces.push(NamespaceSpec {
            kind: NsKind::Pid,
            path: None,
        }),
        NamespaceMode::Node => {}
    }
    let mut annotations: std::collections::HashMap<String, String> = config
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(
        "io.kubernetes.cri.container-type".into(),
        "container".into(),
    );
    annotations.insert("io.kubernetes.cri.sandbox-id".into(), sb.status.id.clone());
    Ok(ContainerSpec {
        rootfs,
        readonly_rootfs: sec.readonly_rootfs,
        args: argv,
        env,
        cwd,
        uid,
        gid,
        additional_gids,
        hostname: None,
        terminal: config.tty,
        namespaces,
        mounts,
        cgroups_path: format!("{}/{}", sb.config.cgroup_parent, id),
        cap_add: sec.add_capabilities.clone(),
        cap_drop: sec.drop_capabilities.clone(),
        privileged: sec.privileged,
        no_new_privileges: sec.no_new_privs,
        memory_limit: config.resources.memory_limit_in_bytes,
        cpu_quota: config.resources.cpu_quota,
        cpu_shares: config.resources.cpu_shares,
        hugepage_limits: config
            .resources
            .hugepage_limits
            .iter()
            .map(|h| (h.page_size.clone(), h.limit))
            .collect(),
        annotations,
        masked_paths: sec.masked_paths.clone(),
        readonly_paths: sec.readonly_paths.clone(),
        seccomp: sec.seccomp.clone(),
        devices: config.devices.clone(),
        ..Default::default()
    })
}

/// A shared or slave bind mount needs a host side that can carry mounts to it: a shared
/// mount for `Bidirectional`, shared or slave for `HostToContainer` (as containerd checks).
fn check_propagation(m: &crate::types::Mount) -> Result<()> {
    use peapod_oci::Propagation;
    if m.recursive_readonly && (!m.readonly || m.propagation != Propagation::Private) {
        return Err(Error::State(format!(
            "recursive read-only mount {} must be read-only, with private propagation",
            m.container_path
        )));
    }
    if m.propagation == Propagation::Private {
        return Ok(());
    }
    let (point, shared, slave) = peapod_oci::mount::propagation_of(&m.host_path)?;
    let fits = match m.propagation {
        Propagation::Bidirectional => shared,
        _ => shared || slave,
    };
    if fits {
        return Ok(());
    }
    let want = match m.propagation {
        Propagation::Bidirectional => "a shared mount",
        _ => "a shared or slave mount",
    };
    Err(Error::State(format!(
        "path {} is mounted on {} but it is not {want}",
        m.host_path.display(),
        point.display()
    )))
}
