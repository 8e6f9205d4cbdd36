//! Taking the plan's steps through the runtime, as the kubelet's `SyncPod` does: killing the
//! pod or one container (preStop hook, stop signal, grace period), making a sandbox, and
//! starting a container (image, config, create, start, postStart hook), with the kubelet's
//! events and waiting reasons.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use peapod_runtime::{ContainerState, ImageService, RuntimeService, SandboxStatus};
use peapod_types::api::Container;
use peapod_types::pod::{ContainerExt, Slot};

use crate::clock::after;
use crate::config::{PodFacts, container_config, termination_log_path, verify_run_as_non_root};
use crate::hooks;
use crate::images::{Decision, pull_credentials};
use crate::plan::{PodKill, Step, backoff_key};
use crate::sandbox_config::{SandboxFacts, hosts_file, sandbox_config};
use crate::snapshot::PodSnapshot;
use crate::worker::{PodWorker, attempt_from_logs, earliest};

/// What taking the steps did.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The runtime changed: look again at once.
    pub changed: bool,
    /// When to look again otherwise.
    pub wake: Option<Timestamp>,
}

/// How a start went.
enum Started {
    Yes,
    /// It must wait; `changed` when something was made in the runtime anyway.
    No {
        wake: Option<Timestamp>,
        changed: bool,
    },
    /// The pod is being deleted.
    Abandoned,
}

/// How long a failed sandbox creation waits before the next try.
const SANDBOX_RETRY: Duration = Duration::from_secs(2);

impl<R: RuntimeService + ImageService> PodWorker<R> {
    /// Takes `steps`, which were planned from `snap`.
    pub(crate) async fn execute(&mut self, steps: Vec<Step>, snap: &PodSnapshot) -> Outcome {
        let mut out = Outcome::default();
        let mut sandbox: Option<SandboxStatus> = snap.ready_sandbox().cloned();
        for step in steps {
            if *self.deleting.borrow() {
                break;
            }
            match step {
                Step::KillPod(kind) => {
                    let grace = match kind {
                        // The sandbox is gone: its containers die at once and start over.
                        PodKill::SandboxChanged => Duration::ZERO,
                        PodKill::Done => Duration::from_secs(self.pod.grace_period() as u64),
                    };
                    out.changed |= self.kill_all(snap, grace).await;
                    sandbox = None;
                }
                Step::PurgeInitContainers => {
                    for c in self.pod.init_containers() {
                        for i in snap.instances(&c.name) {
                            if let Err(e) = self.rt.remove_container(&i.id).await {
                                tracing::warn!(container = %i.id, "purging an init container: {e}");
                            }
                            out.changed = true;
                        }
                    }
                }
                Step::CreateSandbox { attempt, changed } => {
                    if changed {
                        self.recorder.normal(
                            "SandboxChanged",
                            "",
                            "Pod sandbox changed, it will be killed and re-created.",
                        );
                    }
                    match self.create_sandbox(attempt).await {
                        Ok(s) => {
                            sandbox = Some(s);
                            out.changed = true;
                        }
                        Err(msg) => {
                            self.recorder.warning("FailedCreatePodSandBox", "", msg);
                            out.wake = Some(after(self.clock.now(), SANDBOX_RETRY));
                            return out;
                        }
                    }
                }
                Step::KillContainer {
                    id,
                    slot,
                    reason,
                    message,
                } => {
                    if self.mem.killing.contains(&id) {
                        continue;
                    }
                    let c = self.pod.container(slot).clone();
                    let path = self.pod.field_path(&c.name);
                    self.recorder.normal("Killing", &path, message);
                    let probe_grace = reason
                        .probe()
                        .and_then(|k| c.probe(k))
                        .and_then(|p| p.termination_grace);
                    let grace = hooks::grace_for(self.pod.grace_period(), probe_grace);
                    let owner = snap
                        .containers
                        .iter()
                        .find(|s| s.id == id)
                        .and_then(|s| snap.sandboxes.iter().find(|b| b.id == s.sandbox_id));
                    // The kill runs on its own: the other containers, probes, status and
                    // events go on; its end wakes the worker.
                    if let Some(sb) = owner {
                        let target = self.target(sb, &id);
                        let label = self.pod.label();
                        let done = self.killed_tx.clone();
                        self.mem.killing.insert(id.clone());
                        tokio::spawn(async move {
                            let failed = hooks::kill(&c, &target, &label, grace).await;
                            let _ = done.send((id, c.name.clone(), failed)).await;
                        });
                    }
                    self.publish_fresh();
                }
                Step::Start(slot) => {
                    let Some(sb) = sandbox.clone() else {
                        continue;
                    };
                    let name = &self.pod.container(slot).name;
                    // Its previous instance is still being stopped: the end of that kill
                    // brings another pass, which starts it.
                    if snap
                        .instances(name)
                        .any(|i| self.mem.killing.contains(&i.id))
                    {
                        continue;
                    }
                    if let Some(at) = self.mem.retry.get(name).copied()
                        && at > self.clock.now()
                    {
                        out.wake = earliest(out.wake, Some(at));
                        continue;
                    }
                    match self.start(slot, &sb, snap).await {
                        Started::Yes => out.changed = true,
                        Started::No { wake, changed } => {
                            out.changed |= changed;
                            out.wake = earliest(out.wake, wake);
                            let c = self.pod.container(slot);
                            if matches!(slot, Slot::Init(_)) && !c.is_sidecar() {
                                // The pod cannot initialize: nothing after it starts.
                                return out;
                            }
                        }
                        Started::Abandoned => return out,
                    }
                }
                Step::Resize { pod, containers } => {
                    let Some(sb) = sandbox.clone() else {
                        continue;
                    };
                    out.changed |= self.resize(&sb.id, pod, containers).await;
                }
                Step::BackOff {
                    slot,
                    until,
                    message,
                } => {
                    let name = self.pod.container(slot).name.clone();
                    let path = self.pod.field_path(&name);
                    let event = format!(
                        "Back-off restarting failed container {name} in pod {}",
                        self.pod.label()
                    );
                    self.recorder.warning("BackOff", &path, event);
                    self.mem
                        .reasons
                        .insert(name, ("CrashLoopBackOff".into(), message));
                    out.wake = earliest(out.wake, Some(until));
                }
            }
        }
        out
    }

    /// Stops every running container of `snap` as the kubelet's `killPodWithSyncResult`
    /// does: app containers together, then sidecars one by one in reverse order, all
    /// within `grace`; then every sandbox. Returns whether anything was running.
    pub(crate) async fn kill_all(&mut self, snap: &PodSnapshot, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        let running = |c: &Container| {
            snap.latest(&c.name)
                .filter(|s| s.state == ContainerState::Running)
                .cloned()
        };
        let apps: Vec<(Container, _)> = self
            .pod
            .containers()
            .iter()
            .filter_map(|c| running(c).map(|s| (c.clone(), s)))
            .collect();
        let inits: Vec<(Container, _)> = self
            .pod
            .init_containers()
            .iter()
            .rev()
            .filter_map(|c| running(c).map(|s| (c.clone(), s)))
            .collect();
        let mut did = !apps.is_empty() || !inits.is_empty();
        let label = self.pod.label();
        let mut kills = Vec::new();
        for (c, s) in &apps {
            let path = self.pod.field_path(&c.name);
            self.recorder
                .normal("Killing", &path, format!("Stopping container {}", c.name));
            let sb = snap.sandboxes.iter().find(|b| b.id == s.sandbox_id);
            if let Some(sb) = sb {
                let target = self.target(sb, &s.id);
                let (c, label) = (c.clone(), label.clone());
                let left = remaining(deadline, grace);
                kills.push(async move {
                    (c.name.clone(), hooks::kill(&c, &target, &label, left).await)
                });
            }
        }
        for (name, failed) in self.while_publishing(futures_join(kills)).await {
            if let Some(m) = failed {
                let path = self.pod.field_path(&name);
                self.recorder.warning("FailedPreStopHook", &path, m);
            }
        }
        for (c, s) in &inits {
            let path = self.pod.field_path(&c.name);
            self.recorder
                .normal("Killing", &path, format!("Stopping container {}", c.name));
            if let Some(sb) = snap.sandboxes.iter().find(|b| b.id == s.sandbox_id) {
                let target = self.target(sb, &s.id);
                let left = remaining(deadline, grace);
                let failed = self
                    .while_publishing(hooks::kill(c, &target, &label, left))
                    .await;
                if let Some(m) = failed {
                    self.recorder.warning("FailedPreStopHook", &path, m);
                }
            }
        }
        for sb in &snap.sandboxes {
            if sb.state == peapod_runtime::SandboxState::Ready || sb.netns.is_some() {
                did = true;
            }
            if let Err(e) = self.rt.stop_pod_sandbox(&sb.id).await {
                self.recorder
                    .warning("FailedKillPod", "", format!("error killing pod: {e}"));
            }
        }
        did
    }

    /// Creates sandbox number `attempt` and the pod's `/etc/hosts` (which names its IP).
    async fn create_sandbox(&mut self, attempt: u32) -> Result<SandboxStatus, String> {
        let facts = SandboxFacts {
            cluster_dns: &self.cfg.cluster_dns,
            cluster_domain: &self.cfg.cluster_domain,
            host_resolv_conf: &self.cfg.host_resolv_conf,
            log_dir: &self.cfg.log_dir,
            cgroup_parent: &self.cfg.cgroup_parent,
            pod_pids_limit: self.cfg.pod_pids_limit,
            user_namespace: self.cfg.user_namespace.as_ref().map_err(|e| {
                format!(
                    "Failed to generate sandbox config for pod \"{}/{}\": create user namespace: {e}",
                    self.pod.namespace(),
                    self.pod.name()
                )
            })?.as_ref(),
            hugepage_sizes: &self.cfg.hugepage_sizes,
        };
        let config = sandbox_config(&self.pod, &facts, attempt);
        let id = self
            .rt
            .run_pod_sandbox(config)
            .await
            .map_err(|e| format!("Failed to create pod sandbox: {e}"))?;
        self.mem
            .sandbox_ids
            .get_or_insert_with(Vec::new)
            .push(id.clone());
        let status = self
            .rt
            .pod_sandbox_status(&id)
            .map_err(|e| format!("Failed to create pod sandbox: {e}"))?;
        let ip = crate::status::pod_ips(&self.pod, &snapshot_of(&status), &self.cfg.host_ip)
            .into_iter()
            .next()
            .unwrap_or_default();
        let hosts = hosts_file(
            &self.pod,
            &ip,
            &self.cfg.cluster_domain,
            &self.cfg.host_hosts,
        );
        let file = self.cfg.pod_dir.join("etc-hosts");
        std::fs::create_dir_all(&self.cfg.pod_dir)
            .and_then(|()| std::fs::write(&file, hosts))
            .map_err(|e| format!("writing {}: {e}", file.display()))?;
        Ok(status)
    }

    /// Starts a new instance of the container at `slot` in `sandbox` (the kubelet's
    /// `startContainer`).
    async fn start(&mut self, slot: Slot, sandbox: &SandboxStatus, snap: &PodSnapshot) -> Started {
        let c = self.pod.container(slot).clone();
        let path = self.pod.field_path(&c.name);
        // The event says `Error: ` and the reason for image failures, the error itself for
        // the others, as the kubelet's do.
        let fail =
            |w: &mut Self, reason: &str, message: String, wake: Option<Timestamp>, changed| {
                let shown = match reason {
                    "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError" => {
                        message.as_str()
                    }
                    _ => reason,
                };
                w.recorder
                    .warning("Failed", &path, format!("Error: {shown}"));
                w.mem
                    .reasons
                    .insert(c.name.clone(), (reason.to_string(), message));
                match wake {
                    Some(at) => w.mem.retry.insert(c.name.clone(), at),
                    None => w.mem.retry.remove(&c.name),
                };
                Started::No { wake, changed }
            };
        match self.ensure_image(&c).await {
            Ok(()) => {}
            Err(None) => return Started::Abandoned,
            Err(Some((reason, message, wake))) => {
                return fail(self, &reason, message, Some(wake), false);
            }
        }
        let now = self.clock.now();
        if let Some(exited) = snap.latest_exited(&c.name)
            && let Some(finished) = crate::clock::parse(exited.finished_at.as_deref())
        {
            self.mem.crash.next(&backoff_key(&c), finished, now);
        }
        let attempt = match snap.latest(&c.name) {
            Some(s) => s.metadata.attempt + 1,
            None => attempt_from_logs(&self.cfg.log_dir, &c.name),
        };
        let retry = Some(after(now, SANDBOX_RETRY));
        if let Err(e) = self.make_termination_log(&c, attempt) {
            return fail(self, "CreateContainerConfigError", e, retry, false);
        }
        let ips = crate::status::pod_ips(&self.pod, &snapshot_of(sandbox), &self.cfg.host_ip);
        let no_volumes = Default::default();
        let facts = PodFacts {
            pod: &self.pod,
            pod_ip: ips.first().map_or("", String::as_str),
            host_ip: &self.cfg.host_ip,
            node_name: &self.cfg.node_name,
            volumes: self.mem.volumes.as_ref().unwrap_or(&no_volumes),
            pod_dir: &self.cfg.pod_dir,
            node: self.cfg.node,
            seccomp_root: &self.cfg.seccomp_root,
            objects: &*self.objects,
            user_namespace: self
                .cfg
                .user_namespace
                .as_ref()
                .ok()
                .and_then(Option::as_ref),
            hugepage_sizes: &self.cfg.hugepage_sizes,
        };
        let image = self.rt.image_status(c.image_name()).ok().flatten();
        let (uid, username) = image.map_or((None, String::new()), |i| (i.uid, i.username));
        let config = match verify_run_as_non_root(&self.pod, &c, uid, &username)
            .and_then(|()| container_config(&facts, &c, attempt))
        {
            Ok(cfg) => cfg,
            Err(e) => {
                let reason = e.reason;
                return fail(self, reason, e.message, retry, false);
            }
        };
        // Instances before the newest one go: the new one and the one before it are kept.
        for old in snap.instances(&c.name).skip(1) {
            if let Err(e) = self.rt.remove_container(&old.id).await {
                tracing::warn!(container = %old.id, "removing an old instance: {e}");
            }
        }
        let id = match self.rt.create_container(&sandbox.id, config).await {
            Ok(id) => id,
            Err(e) => return fail(self, "CreateContainerError", e.to_string(), retry, false),
        };
        self.recorder
            .normal("Created", &path, format!("Created container: {}", c.name));
        if let Err(e) = self.rt.start_container(&id).await {
            return fail(self, "RunContainerError", e.to_string(), None, true);
        }
        self.recorder
            .normal("Started", &path, format!("Started container {}", c.name));
        self.mem.reasons.remove(&c.name);
        self.mem.retry.remove(&c.name);
        let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.clone()) else {
            return Started::Yes;
        };
        // postStart runs before anything else happens to the pod (the kubelet's sync waits
        // for it too); meanwhile the container shows as being created.
        self.mem.hook_running = Some(id.clone());
        self.publish_fresh();
        let target = self.target(sandbox, &id);
        let label = self.pod.label();
        let mut deleting = self.deleting.clone();
        let outcome = tokio::select! {
            r = hooks::run(&hook, &c, &target, &label, hooks::HOOK_LIMIT) => Some(r),
            Ok(_) = deleting.wait_for(|d| *d) => None,
        };
        self.mem.hook_running = None;
        let Some(outcome) = outcome else {
            // Deleted: the hook is abandoned (its process killed) and the container left to
            // the termination.
            return Started::Abandoned;
        };
        if let Err(msg) = outcome {
            self.recorder
                .warning("FailedPostStartHook", &path, msg.clone());
            self.recorder
                .normal("Killing", &path, "FailedPostStartHook");
            let grace = Duration::from_secs(self.pod.grace_period() as u64);
            if let Some(m) = hooks::kill(&c, &target, &label, grace).await {
                self.recorder.warning("FailedPreStopHook", &path, m);
            }
            self.mem
                .reasons
                .insert(c.name.clone(), ("PostStartHookError".into(), msg));
        }
        Started::Yes
    }

    /// The empty termination message file of run `attempt`, writable by any user.
    fn make_termination_log(&self, c: &Container, attempt: u32) -> Result<(), String> {
        if c.termination_message_path().is_empty() {
            return Ok(());
        }
        let file = termination_log_path(&self.cfg.pod_dir, &c.name, attempt);
        let made = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&file, ""))
            .and_then(|()| {
                std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            });
        made.map_err(|e| format!("creating {}: {e}", file.display()))
    }

    /// Applies the image pull policy (the kubelet's `EnsureImageExists`), pulling with the
    /// pod's credentials first. The error is the waiting reason, message and retry time;
    /// `None` when the pod is being deleted.
    async fn ensure_image(
        &mut self,
        c: &Container,
    ) -> Result<(), Option<(String, String, Timestamp)>> {
        let image = c.image_name().to_string();
        let path = self.pod.field_path(&c.name);
        let now = self.clock.now();
        let present = self.rt.image_status(&image).ok().flatten().is_some();
        match self
            .mem
            .images
            .decide(&image, c.pull_policy(), present, now)
        {
            Decision::Present => {
                let msg = format!("Container image {image:?} already present on machine");
                self.recorder.normal("Pulled", &path, msg);
                return Ok(());
            }
            Decision::Wait(reason, message, wake) => {
                match reason.as_str() {
                    "ErrImageNeverPull" => {
                        self.recorder
                            .warning("ErrImageNeverPull", &path, message.clone())
                    }
                    "ImagePullBackOff" => self.recorder.normal(
                        "BackOff",
                        &path,
                        format!("Back-off pulling image {image:?}"),
                    ),
                    _ => {}
                }
                return Err(Some((reason, message, wake)));
            }
            Decision::Pull => {}
        }
        self.recorder
            .normal("Pulling", &path, format!("Pulling image {image:?}"));
        // The container waits in ContainerCreating while the pull runs.
        self.publish_fresh();
        let started = Instant::now();
        let creds = pull_credentials(&self.cfg.pull_keyring, &image);
        let attempts: Vec<Option<peapod_runtime::AuthConfig>> = if creds.is_empty() {
            vec![None]
        } else {
            creds.into_iter().map(Some).collect()
        };
        let mut result = Err(String::new());
        for auth in attempts {
            let mut deleting = self.deleting.clone();
            let pulled = tokio::select! {
                r = self.rt.pull_image(&image, auth) => r,
                Ok(_) = deleting.wait_for(|d| *d) => return Err(None),
            };
            result = pulled.map_err(|e| e.to_string());
            if result.is_ok() {
                break;
            }
        }
        let now = self.clock.now();
        match result {
            Ok(img) => {
                let took = started.elapsed().as_secs_f64();
                self.mem.images.succeeded(&image, now);
                self.recorder.normal(
                    "Pulled",
                    &path,
                    format!(
                        "Successfully pulled image {image:?} in {took:.3}s ({took:.3}s including waiting). Image size: {} bytes.",
                        img.size
                    ),
                );
                Ok(())
            }
            Err(message) => {
                self.recorder.warning(
                    "Failed",
                    &path,
                    format!("Failed to pull image {image:?}: {message}"),
                );
                let wake = self.mem.images.failed(&image, &message, now);
                Err(Some(("ErrImagePull".into(), message, wake)))
            }
        }
    }
}

/// What is left of a grace period of `grace` ending at `deadline`: once it has run out, a
/// container killed with a grace period still gets its stop signal and the minimum wait
/// (`killContainer` never goes below 2 s); only a zero grace period kills at once.
fn remaining(deadline: tokio::time::Instant, grace: Duration) -> Duration {
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    if grace.is_zero() {
        Duration::ZERO
    } else {
        left.max(Duration::from_millis(1))
    }
}

/// A snapshot holding just `sandbox`, for the status helpers that read IPs.
fn snapshot_of(sandbox: &SandboxStatus) -> PodSnapshot {
    PodSnapshot {
        sandboxes: vec![sandbox.clone()],
        ..Default::default()
    }
}

/// Polls every future to completion, concurrently; their outputs in order.
async fn futures_join<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = (0..futs.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futs.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

impl<R: RuntimeService + ImageService> PodWorker<R> {
    /// Applies new CPU and memory to running containers and to the pod's cgroup, as the
    /// kubelet's `doPodResizeAction` does: when anything grows, the pod's cgroup first, so
    /// that no container is given more than its pod; when all shrink, the containers first.
    /// True when something changed.
    async fn resize(
        &mut self,
        sandbox: &str,
        pod: peapod_runtime::Resources,
        containers: Vec<(
            String,
            Slot,
            peapod_runtime::Resources,
            peapod_runtime::Resources,
        )>,
    ) -> bool {
        let grows = containers.iter().any(|(_, _, want, now)| {
            let more = |a: Option<i64>, b: Option<i64>| match (a, b) {
                (Some(a), Some(b)) => a > b,
                (None, Some(_)) => true,
                _ => false,
            };
            more(want.memory_limit_in_bytes, now.memory_limit_in_bytes)
                || more(want.cpu_quota, now.cpu_quota)
                || want.cpu_shares > now.cpu_shares
        });
        let mut changed = false;
        if grows
            && let Err(e) = self
                .rt
                .update_pod_sandbox_resources(sandbox, pod.clone())
                .await
        {
            tracing::warn!("resizing the pod's cgroup: {e}");
        }
        for (id, slot, want, _) in containers {
            let name = self.pod.container(slot).name.clone();
            match self.rt.update_container_resources(&id, want).await {
                Ok(()) => changed = true,
                Err(e) => {
                    let path = self.pod.field_path(&name);
                    let message = format!("Failed to resize container {name}: {e}");
                    self.recorder
                        .warning("FailedResize", &path, message.clone());
                    // Shown on PodResizeInProgress until a resize goes through.
                    let since = self.mem.resizing.as_ref().map_or(self.clock.now(), |r| r.0);
                    self.mem.resizing = Some((since, Some(message)));
                }
            }
        }
        if !grows && let Err(e) = self.rt.update_pod_sandbox_resources(sandbox, pod).await {
            tracing::warn!("resizing the pod's cgroup: {e}");
        }
        changed
    }
}
