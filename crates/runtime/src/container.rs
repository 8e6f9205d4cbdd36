//! CreateContainer, StartContainer, StopContainer, RemoveContainer, ContainerStatus,
//! ListContainers, and the watcher that learns of a container's exit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use peapod_oci::{Stdio, Streams, mount, ns};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use crate::records::{self, ContainerRecord};
use crate::stdio::{ContainerStreams, OutputStream};
use crate::types::*;
use crate::{Error, Result, Runtime, io, new_id, now, resolve_id};

impl Runtime {
    /// CreateContainer: the root file system and bundle of a container in a ready sandbox.
    /// The process is created by `StartContainer`.
    pub(crate) fn create_container_impl(
        &self,
        sandbox_id: &str,
        mut config: ContainerConfig,
    ) -> Result<String> {
        let sandbox_id = resolve_id(&self.sandboxes_dir(), sandbox_id, "sandbox")?;
        let sb = self.sandbox_record(&sandbox_id)?;
        if sb.status.state != SandboxState::Ready || sb.status.infra_pid <= 0 {
            return Err(Error::State(format!("sandbox {sandbox_id} is not ready")));
        }
        let img = self.images.get(&config.image)?;
        let icfg = self.images.config(&img)?;
        if config.stop_signal.is_none() {
            config.stop_signal = icfg.stop_signal.clone();
        }
        let id = new_id();
        let dir = self.container_dir(&id);
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let result = (|| -> Result<ContainerStatus> {
            let userns = crate::sandbox::userns_of(&sb.config, &self.sandbox_dir(&sandbox_id));
            let rootfs = self.mount_image_rootfs(
                &img,
                &dir.join("rootfs"),
                &self.container_storage(&id),
                userns.as_ref(),
            )?;
            let sources = idmapped_sources(&config.mounts, userns.as_ref(), &dir.join("idmap"))?;
            let spec = crate::spec::container_spec(
                &sb,
                &config,
                &icfg,
                rootfs,
                &self.sandbox_dir(&sandbox_id),
                &id,
                &sources,
            )?;
            peapod_oci::spec::write_bundle(&dir.join("bundle"), &spec)?;
            let user = ContainerUser {
                uid: spec.uid,
                gid: spec.gid,
                supplemental_groups: spec.additional_gids.clone(),
            };
            // Without a log directory and path the output is not kept, as CRI runtimes do.
            let log_path =
                if sb.config.log_directory.as_os_str().is_empty() || config.log_path.is_empty() {
                    PathBuf::new()
                } else {
                    sb.config.log_directory.join(&config.log_path)
                };
            if let Some(parent) = log_path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
            }
            let index = self.sandbox_index(&sandbox_id);
            std::fs::create_dir_all(&index).map_err(io("creating", &index))?;
            std::fs::write(index.join(&id), "").map_err(io("writing", index.join(&id)))?;
            Ok(ContainerStatus {
                id: id.clone(),
                sandbox_id: sandbox_id.clone(),
                metadata: config.metadata.clone(),
                state: ContainerState::Created,
                created_at: now(),
                started_at: None,
                finished_at: None,
                exit_code: 0,
                signal: None,
                reason: String::new(),
                message: String::new(),
                image: config.image.clone(),
                image_ref: img.repo_digest(),
                log_path,
                pid: 0,
                labels: config.labels.clone(),
                annotations: config.annotations.clone(),
                mounts: config.mounts.clone(),
                user: Some(user),
                resources: Some(config.resources.clone()),
            })
        })();
        let saved =
            result.and_then(|status| records::save(&dir, &ContainerRecord { status, config }));
        match saved {
            Ok(()) => {
                self.emit(&id, &sandbox_id, ContainerEventKind::Created);
                Ok(id)
            }
            Err(e) => {
                let _ = mount::unmount_all_under(&dir);
                let _ = std::fs::remove_dir_all(&dir);
                let _ = std::fs::remove_dir_all(self.container_storage(&id));
                let _ = std::fs::remove_file(self.sandbox_index(&sandbox_id).join(&id));
                Err(e)
            }
        }
    }

    /// StartContainer. A process that cannot be started leaves the container exited with
    /// code 128 and reason `StartError`.
    pub(crate) fn start_container_impl(&self, id: &str) -> Result<()> {
        let id = resolve_id(&self.containers_dir(), id, "container")?;
        let dir = self.container_dir(&id);
        let mut rec = self.container_record(&id)?;
        if rec.status.state != ContainerState::Created {
            return Err(Error::State(format!(
                "container {id} is {:?}, not created",
                rec.status.state
            )));
        }
        let log_path = match rec.status.log_path.as_os_str().is_empty() {
            true => Path::new("/dev/null"),
            false => rec.status.log_path.as_path(),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(io("opening log", log_path))?;
        let log = Arc::new(Mutex::new(log));
        let sandbox_id = rec.status.sandbox_id.clone();
        let started = self
            .create_with_streams(&id, &sandbox_id, &dir, &rec.config, log)
            .and_then(|pid| {
                if let Err(e) = self.exec.start(&id) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    return Err(e.into());
                }
                Ok(pid)
            });
        match started {
            Ok(pid) => {
                rec.status.state = ContainerState::Running;
                rec.status.pid = pid;
                rec.status.started_at = Some(now());
                records::save(&dir, &rec)?;
                self.emit(&id, &rec.status.sandbox_id, ContainerEventKind::Started);
                Ok(())
            }
            Err(e) => {
                let _ = self.exec.delete(&id);
                reap_leftovers_soon();
                rec.status.state = ContainerState::Exited;
                rec.status.exit_code = 128;
                rec.status.reason = "StartError".into();
                rec.status.message = e.to_string();
                rec.status.finished_at = Some(now());
                rec.status.started_at = rec.status.finished_at.clone();
                records::save(&dir, &rec)?;
                self.emit(&id, &rec.status.sandbox_id, ContainerEventKind::Stopped);
                Err(e)
            }
        }
    }

    /// UpdateContainerResources: the given limits replace the container's (others stay),
    /// in its record and, while it runs, in its cgroup.
    pub(crate) fn update_container_resources_impl(
        &self,
        id: &str,
        res: &crate::types::Resources,
    ) -> Result<()> {
        let id = resolve_id(&self.containers_dir(), id, "container")?;
        let dir = self.container_dir(&id);
        let mut rec = self.container_record(&id)?;
        if rec.status.state == ContainerState::Exited {
            return Err(Error::State(format!("container {id} has exited")));
        }
        if rec.status.state == ContainerState::Running {
            let sb = self.sandbox_record(&rec.status.sandbox_id)?;
            let rel = format!("{}/{}", sb.config.cgroup_parent, id);
            let limits = peapod_oci::cgroup::Limits {
                memory: res.memory_limit_in_bytes,
                cpu_quota: res.cpu_quota,
                cpu_shares: res.cpu_shares,
                pids: res.pids_limit,
            };
            peapod_oci::cgroup::update(&rel, &limits).map_err(|e| {
                Error::State(format!("updating the resources of container {id}: {e}"))
            })?;
        }
        let r = &mut rec.config.resources;
        r.memory_limit_in_bytes = res.memory_limit_in_bytes.or(r.memory_limit_in_bytes);
        r.cpu_quota = res.cpu_quota.or(r.cpu_quota);
        r.cpu_shares = res.cpu_shares.or(r.cpu_shares);
        rec.status.resources = Some(r.clone());
        records::save(&dir, &rec)?;
        Ok(())
    }

    /// ReopenContainerLog: a running container's output goes to a newly opened file at its
    /// log path (after log rotation renamed the old one).
    pub(crate) fn reopen_container_log_impl(&self, id: &str) -> Result<()> {
        let id = resolve_id(&self.containers_dir(), id, "container")?;
        let rec = self.container_record(&id)?;
        let streams = self.live.lock().unwrap().streams.get(&id).cloned();
        let Some(streams) = streams.filter(|_| rec.status.state == ContainerState::Running) else {
            return Err(Error::State(format!("container {id} is not running")));
        };
        let path = &rec.status.log_path;
        if path.as_os_str().is_empty() {
            return Ok(());
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io("opening log", path))?;
        streams.reopen_log(file);
        Ok(())
    }

    /// Creates container `id`'s process with its streams: pipes (or a terminal) whose
    /// output goes to `log` and to attached readers, and, with `stdin`, an input attached
    /// writers reach. Watches its exit. Returns its PID.
    fn create_with_streams(
        &self,
        id: &str,
        sandbox_id: &str,
        dir: &Path,
        config: &ContainerConfig,
        log: Arc<Mutex<std::fs::File>>,
    ) -> Result<i32> {
        let (stdin_r, stdin_w) = match config.stdin && !config.tty {
            true => {
                let (r, w) = crate::exec::pipe()?;
                (Some(r), Some(w))
            }
            false => (None, None),
        };
        let bundle = dir.join("bundle");
        let (created, copiers, streams) = if config.tty {
            let created = self.exec.create(id, &bundle, Streams::Terminal)?;
            let master = created.pty.as_ref().map(|m| m.try_clone());
            let master = match master {
                Some(Ok(m)) => m,
                _ => {
                    let _ = kill(Pid::from_raw(created.pid), Signal::SIGKILL);
                    return Err(Error::State("the container's terminal was lost".into()));
                }
            };
            let pty = created.pty.map(Arc::new);
            let stdin = match config.stdin {
                true => pty.as_deref().and_then(|m| m.try_clone().ok()),
                false => None,
            };
            let (streams, output) =
                ContainerStreams::new(stdin, config.stdin_once, pty, log.clone());
            let copier = tokio::spawn(crate::logs::copy(
                master,
                OutputStream::Stdout,
                log,
                Some(output),
            ));
            (created.pid, vec![copier], streams)
        } else {
            let (out_r, out_w) = crate::exec::pipe()?;
            let (err_r, err_w) = crate::exec::pipe()?;
            let stdio = Stdio {
                stdin: stdin_r,
                stdout: out_w,
                stderr: err_w,
            };
            let created = self.exec.create(id, &bundle, Streams::Pipes(stdio))?;
            let (streams, output) =
                ContainerStreams::new(stdin_w, config.stdin_once, None, log.clone());
            let copiers = vec![
                tokio::spawn(crate::logs::copy(
                    out_r,
                    OutputStream::Stdout,
                    log.clone(),
                    Some(output.clone()),
                )),
                tokio::spawn(crate::logs::copy(
                    err_r,
                    OutputStream::Stderr,
                    log,
                    Some(output),
                )),
            ];
            (created.pid, copiers, streams)
        };
        self.live
            .lock()
            .unwrap()
            .streams
            .insert(id.to_string(), streams);
        if let Err(e) = self.watch_exit_with_logs(id, sandbox_id, created, copiers) {
            let _ = kill(Pid::from_raw(created), Signal::SIGKILL);
            self.live.lock().unwrap().streams.remove(id);
            return Err(e);
        }
        Ok(created)
    }

    pub(crate) fn watch_exit(&self, id: &str, sandbox_id: &str, pid: i32) -> Result<()> {
        self.watch_exit_with_logs(id, sandbox_id, pid, Vec::new())
    }

    /// Watches `pid` through a pidfd; once it exits, reaps it, waits (briefly) for its logs
    /// to drain, records the exit and tells the subscribers.
    fn watch_exit_with_logs(
        &self,
        id: &str,
        sandbox_id: &str,
        pid: i32,
        copiers: Vec<tokio::task::JoinHandle<()>>,
    ) -> Result<()> {
        let pidfd = ns::pidfd_open(pid)?;
        crate::reaper::claim(pid);
        let (tx, rx) = watch::channel(false);
        self.live.lock().unwrap().exited.insert(id.to_string(), rx);
        let (rt, id, sandbox_id) = (self.arc(), id.to_string(), sandbox_id.to_string());
        tokio::spawn(async move {
            // SAFETY: the pidfd is owned by the AsyncFd for as long as it is registered.
            if let Ok(afd) = unsafe { AsyncFd::register(pidfd) } {
                let _ = afd.readable().await;
            }
            let status = waitpid(
                Pid::from_raw(pid),
                Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG),
            );
            crate::reaper::release(pid);
            if id == sandbox_id {
                rt.infra_exited(&id);
            } else {
                for c in copiers {
                    let _ = tokio::time::timeout(Duration::from_secs(2), c).await;
                }
                rt.container_exited(&id, status);
                if let Some(s) = rt.live.lock().unwrap().streams.remove(&id) {
                    s.end();
                }
            }
            let _ = tx.send(true);
        });
        Ok(())
    }

    fn container_exited(&self, id: &str, status: nix::Result<WaitStatus>) {
        let dir = self.container_dir(id);
        let Some(mut rec) = records::load::<ContainerRecord>(&dir) else {
            return;
        };
        let (code, signal) = match status {
            Ok(WaitStatus::Exited(_, c)) => (c, None),
            Ok(WaitStatus::Signaled(_, s, _)) => (128 + s as i32, Some(s as i32)),
            other => {
                tracing::warn!("container {id}: no exit status ({other:?})");
                (255, None)
            }
        };
        let cgroup = self.container_cgroup(&rec.status.sandbox_id, id);
        rec.status.state = ContainerState::Exited;
        rec.status.exit_code = code;
        rec.status.signal = signal;
        rec.status.reason = if oom_killed(&cgroup) {
            "OOMKilled".into()
        } else if code == 0 {
            "Completed".into()
        } else {
            "Error".into()
        };
        rec.status.finished_at = Some(now());
        rec.status.pid = 0;
        let _ = records::save(&dir, &rec);
        if let Err(e) = self.exec.delete(id) {
            tracing::warn!(container = %id, "releasing the exited container: {e}");
        }
        self.emit(id, &rec.status.sandbox_id, ContainerEventKind::Stopped);
    }

    /// The cgroup of container `id` in sandbox `sandbox_id`.
    pub(crate) fn container_cgroup(&self, sandbox_id: &str, id: &str) -> String {
        let parent = self
            .sandbox_record(sandbox_id)
            .map(|s| s.config.cgroup_parent)
            .unwrap_or_default();
        format!("{parent}/{id}")
    }

    /// StopContainer: the stop signal, then SIGKILL after `timeout` (at once when zero).
    /// A container that does not run is left as it is, without a signal.
    pub(crate) async fn stop_container_impl(&self, id: &str, timeout: Duration) -> Result<()> {
        let Ok(id) = resolve_id(&self.containers_dir(), id, "container") else {
            return Ok(());
        };
        let Ok(rec) = self.container_record(&id) else {
            return Ok(());
        };
        if rec.status.state != ContainerState::Running || rec.status.pid <= 0 {
            return Ok(());
        }
        let pid = rec.status.pid;
        if !timeout.is_zero() {
            let sig = rec
                .config
                .stop_signal
                .as_deref()
                .and_then(parse_signal)
                .unwrap_or(Signal::SIGTERM);
            if self.kill_and_wait(&id, pid, sig, timeout).await {
                return Ok(());
            }
        }
        self.kill_and_wait(&id, pid, Signal::SIGKILL, Duration::from_secs(30))
            .await;
        Ok(())
    }

    /// Sends `sig` to `pid` and waits up to `timeout` for it to exit; true if it did.
    pub(crate) async fn kill_and_wait(
        &self,
        id: &str,
        pid: i32,
        sig: Signal,
        timeout: Duration,
    ) -> bool {
        let _ = kill(Pid::from_raw(pid), sig);
        let watched = self.live.lock().unwrap().exited.contains_key(id);
        if watched {
            tokio::time::timeout(timeout, self.wait_exit(id))
                .await
                .is_ok()
        } else {
            // Not our child: poll until the process is gone.
            let deadline = tokio::time::Instant::now() + timeout;
            while tokio::time::Instant::now() < deadline {
                if !alive(pid) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            !alive(pid)
        }
    }

    /// RemoveContainer: a running container is killed first; then its executor state,
    /// cgroup, mounts, writable layer and record go. A missing one is fine.
    pub(crate) async fn remove_container_impl(&self, id: &str) -> Result<()> {
        let Ok(id) = resolve_id(&self.containers_dir(), id, "container") else {
            return Ok(());
        };
        let dir = self.container_dir(&id);
        let rec = records::load::<ContainerRecord>(&dir);
        if let Some(r) = &rec
            && self.sandbox_record(&r.status.sandbox_id).is_err()
            && records::load::<crate::records::SandboxRecord>(
                &self.sandbox_dir(&r.status.sandbox_id),
            )
            .is_some()
        {
            // Another front end's container: not ours to see.
            return Ok(());
        }
        if let Some(r) = &rec
            && r.status.state == ContainerState::Running
            && r.status.pid > 0
        {
            self.kill_and_wait(&id, r.status.pid, Signal::SIGKILL, Duration::from_secs(30))
                .await;
        }
        self.exec.delete(&id)?;
        if let Some(rec) = &rec {
            let cg = self.container_cgroup(&rec.status.sandbox_id, &id);
            crate::sandbox::kill_cgroup(&cg);
            crate::sandbox::remove_cgroup(&cg).await?;
        }
        mount::unmount_all_under(&dir)?;
        for d in [dir, self.container_storage(&id)] {
            remove_dir(&d)?;
        }
        self.live.lock().unwrap().exited.remove(&id);
        self.cpu_samples.lock().unwrap().remove(&id);
        if let Some(rec) = rec {
            let _ = std::fs::remove_file(self.sandbox_index(&rec.status.sandbox_id).join(&id));
            self.emit(&id, &rec.status.sandbox_id, ContainerEventKind::Deleted);
        }
        Ok(())
    }

    /// The record of container `id`, if its sandbox is in this runtime's scope.
    fn container_record(&self, id: &str) -> Result<ContainerRecord> {
        records::load::<ContainerRecord>(&self.container_dir(id))
            .filter(|r| self.sandbox_record(&r.status.sandbox_id).is_ok())
            .ok_or(Error::NotFound {
                kind: "container",
                id: id.to_string(),
            })
    }

    /// ContainerStatus. Read by a process that did not start it, a running container whose
    /// process is gone shows as `Unknown`.
    pub(crate) fn status_of(&self, id: &str) -> Result<ContainerStatus> {
        let id = resolve_id(&self.containers_dir(), id, "container")?;
        Ok(self.checked(self.container_record(&id)?.status))
    }

    /// The config container `id` was made from.
    pub fn container_config(&self, id: &str) -> Result<ContainerConfig> {
        let id = resolve_id(&self.containers_dir(), id, "container")?;
        Ok(self.container_record(&id)?.config)
    }

    /// ListContainers, newest first. With a sandbox in the filter only that sandbox's
    /// index is read.
    pub(crate) fn list_containers_impl(&self, filter: &ContainerFilter) -> Vec<ContainerStatus> {
        let records: Vec<ContainerRecord> = match &filter.pod_sandbox_id {
            Some(sb) => {
                let sb = resolve_id(&self.sandboxes_dir(), sb, "sandbox").unwrap_or(sb.clone());
                if self.sandbox_record(&sb).is_err() {
                    return Vec::new();
                }
                std::fs::read_dir(self.sandbox_index(&sb))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| {
                        records::load(&self.container_dir(&e.file_name().to_string_lossy()))
                    })
                    .collect()
            }
            None => {
                let mine: std::collections::HashSet<String> = self
                    .list_sandboxes(&SandboxFilter::default())
                    .into_iter()
                    .map(|s| s.id)
                    .collect();
                records::load_all::<ContainerRecord>(&self.containers_dir())
                    .into_iter()
                    .filter(|r| mine.contains(&r.status.sandbox_id))
                    .collect()
            }
        };
        let mut out: Vec<ContainerStatus> = records
            .into_iter()
            .map(|r| self.checked(r.status))
            .filter(|s| filter.matches(s))
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        out
    }

    /// A running container whose process is gone is `Unknown`, unless this runtime, or
    /// the live process that owns its sandbox, watches it: then its exit is on its way to
    /// the record.
    fn checked(&self, mut s: ContainerStatus) -> ContainerStatus {
        if s.state == ContainerState::Running
            && !alive(s.pid)
            && !self.live.lock().unwrap().exited.contains_key(&s.id)
            && self.live_owner(&s.sandbox_id).is_none()
        {
            s.state = ContainerState::Unknown;
        }
        s
    }
}

/// Removes a directory tree; a missing one is fine.
pub(crate) fn remove_dir(d: &std::path::Path) -> Result<()> {
    match std::fs::remove_dir_all(d) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io {
            context: "removing",
            path: d.into(),
            source: e,
        }),
    }
}

/// Reaps what a failed create leaves behind, now and a little later (its processes may
/// still be on their way out).
pub(crate) fn reap_leftovers_soon() {
    peapod_oci::executor::reap_leftovers();
    tokio::spawn(async {
        for ms in [10, 100, 1000] {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            peapod_oci::executor::reap_leftovers();
        }
    });
}

/// Whether `pid` names a live (not zombie) process.
pub(crate) fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// When process `pid` started, in clock ticks after boot (`/proc/PID/stat` field 22).
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Parses `SIGTERM`, `TERM` or `15`.
pub fn parse_signal(s: &str) -> Option<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    name.parse().ok()
}

/// Whether the memory cgroup of `rel` recorded an OOM kill.
fn oom_killed(rel: &str) -> bool {
    peapod_oci::cgroup::dirs(rel).iter().any(|d| {
        ["memory.events", "memory.oom_control"].iter().any(|f| {
            std::fs::read_to_string(d.join(f)).is_ok_and(|s| {
                s.lines().any(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .is_some_and(|n| n > 0)
                })
            })
        })
    })
}

/// Where each of a container's mounts comes from: its host path, or for a mount with ID
/// maps an ID-mapped view of it made under `staging` (unmounted with the container).
fn idmapped_sources(
    mounts: &[Mount],
    userns: Option<&crate::sandbox::PodUserns>,
    staging: &Path,
) -> Result<Vec<PathBuf>> {
    let mut out = Vec::with_capacity(mounts.len());
    for (i, m) in mounts.iter().enumerate() {
        if m.uid_mappings.is_empty() && m.gid_mappings.is_empty() {
            out.push(m.host_path.clone());
            continue;
        }
        let Some(u) =
            userns.filter(|u| u.maps.uids == m.uid_mappings && u.maps.gids == m.gid_mappings)
        else {
            return Err(Error::State(format!(
                "mount {}: ID-mapped mounts must use the sandbox's user namespace mappings",
                m.container_path
            )));
        };
        let meta = std::fs::metadata(&m.host_path).map_err(io("reading", &m.host_path))?;
        std::fs::create_dir_all(staging).map_err(io("creating", staging))?;
        let view = staging.join(i.to_string());
        if meta.is_dir() {
            std::fs::create_dir_all(&view).map_err(io("creating", &view))?;
        } else {
            std::fs::File::create(&view).map_err(io("creating", &view))?;
        }
        mount::idmapped_bind(&m.host_path, &view, &u.pin)?;
        out.push(view);
    }
    Ok(out)
}
