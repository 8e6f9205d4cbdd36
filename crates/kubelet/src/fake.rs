//! A runtime in memory for the worker's tests: sandboxes and containers whose processes
//! follow a script (run, exit after a while, ignore the stop signal), on Tokio's clock, with
//! every stop, network release and removal counted.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peapod_runtime::{
    AuthConfig, ContainerConfig, ContainerEvent, ContainerEventKind, ContainerFilter,
    ContainerState, ContainerStatus, ContainerUser, Error, ExecSyncResult, FsUsage, ImageInfo,
    ImageService, PulledImage, Result, RuntimeConditions, RuntimeService, SandboxConfig,
    SandboxFilter, SandboxState, SandboxStatus, Version,
};
use tokio::sync::broadcast;

use crate::clock::Clock;

/// What a container's process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Runs until stopped; its stop signal ends it (exit 143).
    Run,
    /// Runs until stopped and ignores its stop signal: only SIGKILL ends it (exit 137).
    IgnoreTerm,
    /// Exits with this code after this long.
    Exit(Duration, i32),
}

/// Calls counted by the fake.
#[derive(Debug, Clone, Default)]
pub struct Calls {
    /// Stop signals sent, by container ID (StopContainer on a running container).
    pub stops: HashMap<String, u32>,
    /// Network releases (the CNI DEL a real runtime runs), by sandbox ID.
    pub network_releases: HashMap<String, u32>,
    /// RemovePodSandbox calls that removed something, by sandbox ID.
    pub sandbox_removals: HashMap<String, u32>,
    /// Starts, in order: (container name, attempt, clock seconds since the fake was made).
    pub starts: Vec<(String, u32, f64)>,
    /// Pulls, in order.
    pub pulls: Vec<String>,
    /// Pod-level resource updates (UpdatePodSandboxResources), in order.
    pub pod_resources: Vec<(String, peapod_runtime::Resources)>,
}

#[derive(Default)]
struct State {
    sandboxes: BTreeMap<String, (SandboxStatus, bool)>,
    containers: BTreeMap<String, (ContainerStatus, ContainerConfig)>,
    calls: Calls,
    seq: u64,
}

type ExecFn = dyn Fn(&str, &[String]) -> (i32, String) + Send + Sync;
type ScriptFn = dyn Fn(&str, u32) -> Script + Send + Sync;

/// The fake runtime.
pub struct FakeRuntime {
    state: Mutex<State>,
    events: broadcast::Sender<ContainerEvent>,
    script: Box<ScriptFn>,
    exec: Mutex<Arc<ExecFn>>,
    clock: Arc<dyn Clock>,
    start: jiff::Timestamp,
    images: Mutex<Vec<String>>,
    pull_errors: Mutex<HashMap<String, String>>,
    resize_error: Mutex<Option<String>>,
    me: std::sync::Weak<FakeRuntime>,
}

impl FakeRuntime {
    /// A fake whose containers follow `script(name, attempt)`, with `images` present.
    pub fn new(
        clock: Arc<dyn Clock>,
        images: &[&str],
        script: impl Fn(&str, u32) -> Script + Send + Sync + 'static,
    ) -> Arc<FakeRuntime> {
        let start = clock.now();
        Arc::new_cyclic(|me| FakeRuntime {
            state: Mutex::new(State::default()),
            events: broadcast::channel(1024).0,
            script: Box::new(script),
            exec: Mutex::new(Arc::new(|_: &str, _: &[String]| (0, String::new()))),
            clock,
            start,
            images: Mutex::new(images.iter().map(|s| s.to_string()).collect()),
            pull_errors: Mutex::new(HashMap::new()),
            resize_error: Mutex::new(None),
            me: me.clone(),
        })
    }

    /// What `exec_sync` answers: `f(container name, command)`.
    pub fn on_exec(&self, f: impl Fn(&str, &[String]) -> (i32, String) + Send + Sync + 'static) {
        *self.exec.lock().unwrap() = Arc::new(f);
    }

    /// Makes pulls of `image` fail with `message` (or succeed, when `None`).
    pub fn fail_pulls(&self, image: &str, message: Option<&str>) {
        let mut e = self.pull_errors.lock().unwrap();
        match message {
            Some(m) => e.insert(image.to_string(), m.to_string()),
            None => e.remove(image),
        };
    }

    /// Makes UpdateContainerResources fail with `message` (or succeed, when `None`).
    pub fn fail_resizes(&self, message: Option<&str>) {
        *self.resize_error.lock().unwrap() = message.map(String::from);
    }

    /// The calls so far.
    pub fn calls(&self) -> Calls {
        self.state.lock().unwrap().calls.clone()
    }

    /// Every container, newest first.
    pub fn containers(&self) -> Vec<ContainerStatus> {
        let mut v: Vec<ContainerStatus> = self
            .state
            .lock()
            .unwrap()
            .containers
            .values()
            .map(|(s, _)| s.clone())
            .collect();
        v.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        v
    }

    /// Every sandbox, newest first.
    pub fn sandboxes(&self) -> Vec<SandboxStatus> {
        let mut v: Vec<SandboxStatus> = self
            .state
            .lock()
            .unwrap()
            .sandboxes
            .values()
            .map(|(s, _)| s.clone())
            .collect();
        v.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        v
    }

    /// The infra process of sandbox `id` dies.
    pub fn kill_infra(&self, id: &str) {
        let mut st = self.state.lock().unwrap();
        if let Some((s, _)) = st.sandboxes.get_mut(id) {
            s.state = SandboxState::NotReady;
            s.infra_pid = 0;
        }
        drop(st);
        self.emit(id, id, ContainerEventKind::Stopped);
    }

    fn stamp(&self, st: &mut State) -> String {
        st.seq += 1;
        let t = self.clock.now();
        crate::clock::after(t, Duration::from_nanos(st.seq))
            .strftime("%Y-%m-%dT%H:%M:%S%.9fZ")
            .to_string()
    }

    fn emit(&self, id: &str, sandbox_id: &str, kind: ContainerEventKind) {
        let _ = self.events.send(ContainerEvent {
            id: id.to_string(),
            sandbox_id: sandbox_id.to_string(),
            kind,
        });
    }

    /// Ends container `id` with `code`, if it runs.
    fn exit(&self, id: &str, code: i32) {
        let mut st = self.state.lock().unwrap();
        let now = self.stamp(&mut st);
        let Some((s, _)) = st.containers.get_mut(id) else {
            return;
        };
        if s.state != ContainerState::Running {
            return;
        }
        s.state = ContainerState::Exited;
        s.exit_code = code;
        s.reason = if code == 0 { "Completed" } else { "Error" }.into();
        s.finished_at = Some(now);
        s.pid = 0;
        let sb = s.sandbox_id.clone();
        drop(st);
        self.emit(id, &sb, ContainerEventKind::Stopped);
    }

    fn script_of(&self, id: &str) -> Option<Script> {
        let st = self.state.lock().unwrap();
        let (s, _) = st.containers.get(id)?;
        Some((self.script)(&s.metadata.name, s.metadata.attempt))
    }
}

fn not_found(kind: &'static str, id: &str) -> Error {
    Error::NotFound {
        kind,
        id: id.to_string(),
    }
}

impl RuntimeService for FakeRuntime {
    fn version(&self) -> Version {
        Version {
            runtime_api_version: "v1".into(),
            runtime_name: "fake".into(),
            runtime_version: "0".into(),
        }
    }

    fn status(&self) -> RuntimeConditions {
        RuntimeConditions {
            runtime_ready: true,
            network_ready: true,
            network_reason: String::new(),
            network_message: String::new(),
        }
    }

    async fn run_pod_sandbox(&self, config: SandboxConfig) -> Result<String> {
        let mut st = self.state.lock().unwrap();
        let created_at = self.stamp(&mut st);
        let id = format!("sb{}", st.seq);
        let status = SandboxStatus {
            id: id.clone(),
            metadata: config.metadata.clone(),
            state: SandboxState::Ready,
            created_at,
            ip: Some("10.0.0.2".into()),
            additional_ips: Vec::new(),
            infra_pid: 1000 + st.seq as i32,
            netns: Some(format!("/fake/{id}/netns").into()),
            namespaces: config.namespaces,
            labels: config.labels,
            annotations: config.annotations,
        };
        st.sandboxes.insert(id.clone(), (status, true));
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let running: Vec<String> = {
            let st = self.state.lock().unwrap();
            st.containers
                .values()
                .filter(|(c, _)| c.sandbox_id == id && c.state == ContainerState::Running)
                .map(|(c, _)| c.id.clone())
                .collect()
        };
        for c in running {
            self.exit(&c, 137);
        }
        let mut st = self.state.lock().unwrap();
        let Some((s, attached)) = st.sandboxes.get_mut(id) else {
            return Ok(());
        };
        s.state = SandboxState::NotReady;
        s.infra_pid = 0;
        s.netns = None;
        if std::mem::take(attached) {
            *st.calls.network_releases.entry(id.to_string()).or_default() += 1;
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        if !self.state.lock().unwrap().sandboxes.contains_key(id) {
            return Ok(());
        }
        self.stop_pod_sandbox(id).await?;
        let mut st = self.state.lock().unwrap();
        st.containers.retain(|_, (c, _)| c.sandbox_id != id);
        st.sandboxes.remove(id);
        *st.calls.sandbox_removals.entry(id.to_string()).or_default() += 1;
        Ok(())
    }

    fn pod_sandbox_status(&self, id: &str) -> Result<SandboxStatus> {
        let st = self.state.lock().unwrap();
        st.sandboxes
            .get(id)
            .map(|(s, _)| s.clone())
            .ok_or_else(|| not_found("sandbox", id))
    }

    fn list_pod_sandbox(&self, filter: &SandboxFilter) -> Result<Vec<SandboxStatus>> {
        Ok(self
            .sandboxes()
            .into_iter()
            .filter(|s| filter.matches(s))
            .collect())
    }

    async fn create_container(&self, sandbox_id: &str, config: ContainerConfig) -> Result<String> {
        let mut st = self.state.lock().unwrap();
        let ready = st
            .sandboxes
            .get(sandbox_id)
            .is_some_and(|(s, _)| s.state == SandboxState::Ready);
        if !ready {
            return Err(Error::State(format!("sandbox {sandbox_id} is not ready")));
        }
        let created_at = self.stamp(&mut st);
        let id = format!(
            "{}-{}-{}",
            config.metadata.name, config.metadata.attempt, st.seq
        );
        let status = ContainerStatus {
            id: id.clone(),
            sandbox_id: sandbox_id.to_string(),
            metadata: config.metadata.clone(),
            state: ContainerState::Created,
            created_at,
            started_at: None,
            finished_at: None,
            exit_code: 0,
            signal: None,
            reason: String::new(),
            message: String::new(),
            image: config.image.clone(),
            image_ref: format!("{}@sha256:00", config.image),
            log_path: "/nonexistent".into(),
            pid: 0,
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            mounts: config.mounts.clone(),
            // As an image without /etc/passwd gives them.
            user: Some(ContainerUser {
                uid: config.security.run_as_user.unwrap_or(0) as u32,
                gid: config.security.run_as_group.unwrap_or(0) as u32,
                supplemental_groups: std::iter::once(config.security.run_as_group.unwrap_or(0))
                    .chain(config.security.supplemental_groups.iter().copied())
                    .map(|g| g as u32)
                    .collect(),
            }),
            resources: Some(config.resources.clone()),
        };
        st.containers.insert(id.clone(), (status, config));
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let script = {
            let mut st = self.state.lock().unwrap();
            let now = self.stamp(&mut st);
            let since = self.clock.now().duration_since(self.start).as_secs_f64();
            let (s, _) = st
                .containers
                .get_mut(id)
                .ok_or_else(|| not_found("container", id))?;
            s.state = ContainerState::Running;
            s.started_at = Some(now);
            s.pid = 2000;
            let entry = (s.metadata.name.clone(), s.metadata.attempt, since);
            let script = (self.script)(&s.metadata.name, s.metadata.attempt);
            st.calls.starts.push(entry);
            script
        };
        if let Script::Exit(after, code) = script {
            let me = self.me.upgrade().expect("fake alive");
            let id = id.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                me.exit(&id, code);
            });
        }
        Ok(())
    }

    async fn stop_container(&self, id: &str, timeout: Duration) -> Result<()> {
        let running = {
            let mut st = self.state.lock().unwrap();
            let running = st
                .containers
                .get(id)
                .is_some_and(|(s, _)| s.state == ContainerState::Running);
            if running {
                *st.calls.stops.entry(id.to_string()).or_default() += 1;
            }
            running
        };
        if !running {
            return Ok(());
        }
        match self.script_of(id) {
            Some(Script::IgnoreTerm) if !timeout.is_zero() => {
                tokio::time::sleep(timeout).await;
                self.exit(id, 137);
            }
            _ if timeout.is_zero() => self.exit(id, 137),
            _ => self.exit(id, 143),
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let mut st = self.state.lock().unwrap();
        st.containers.remove(id);
        Ok(())
    }

    async fn update_container_resources(
        &self,
        id: &str,
        resources: peapod_runtime::Resources,
    ) -> Result<()> {
        if let Some(m) = self.resize_error.lock().unwrap().clone() {
            return Err(Error::State(m));
        }
        let mut st = self.state.lock().unwrap();
        let c = st.containers.get_mut(id).ok_or_else(|| Error::NotFound {
            kind: "container",
            id: id.to_string(),
        })?;
        c.1.resources = resources;
        c.0.resources = Some(c.1.resources.clone());
        Ok(())
    }

    async fn update_pod_sandbox_resources(
        &self,
        id: &str,
        resources: peapod_runtime::Resources,
    ) -> Result<()> {
        let mut st = self.state.lock().unwrap();
        st.calls.pod_resources.push((id.to_string(), resources));
        Ok(())
    }

    async fn reopen_container_log(&self, id: &str) -> Result<()> {
        self.container_status(id).map(|_| ())
    }

    fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        let st = self.state.lock().unwrap();
        st.containers
            .get(id)
            .map(|(s, _)| s.clone())
            .ok_or_else(|| not_found("container", id))
    }

    fn list_containers(&self, filter: &ContainerFilter) -> Result<Vec<ContainerStatus>> {
        Ok(self
            .containers()
            .into_iter()
            .filter(|c| filter.matches(c))
            .collect())
    }

    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        _timeout: Duration,
    ) -> Result<ExecSyncResult> {
        let name = self.container_status(id)?.metadata.name;
        let f = Arc::clone(&self.exec.lock().unwrap());
        let (exit_code, out) = f(&name, &cmd);
        Ok(ExecSyncResult {
            exit_code,
            stdout: out.into_bytes(),
            stderr: Vec::new(),
        })
    }

    async fn exec_streams(
        &self,
        _id: &str,
        _cmd: Vec<String>,
        _tty: bool,
        _stdin: bool,
    ) -> Result<peapod_runtime::StreamSession> {
        Err(Error::State("the pod controller opens no sessions".into()))
    }

    async fn attach_streams(
        &self,
        _id: &str,
        _stdin: bool,
    ) -> Result<peapod_runtime::StreamSession> {
        Err(Error::State("the pod controller opens no sessions".into()))
    }

    fn container_stats(&self, id: &str) -> Result<peapod_runtime::ContainerStats> {
        Err(Error::State(format!(
            "the fake runtime keeps no stats ({id})"
        )))
    }

    fn list_container_stats(
        &self,
        _filter: &ContainerFilter,
    ) -> Result<Vec<peapod_runtime::ContainerStats>> {
        Ok(Vec::new())
    }

    fn pod_sandbox_stats(&self, id: &str) -> Result<peapod_runtime::SandboxStats> {
        Err(Error::State(format!(
            "the fake runtime keeps no stats ({id})"
        )))
    }

    fn list_pod_sandbox_stats(
        &self,
        _filter: &SandboxFilter,
    ) -> Result<Vec<peapod_runtime::SandboxStats>> {
        Ok(Vec::new())
    }

    fn container_events(&self) -> broadcast::Receiver<ContainerEvent> {
        self.events.subscribe()
    }

    async fn dial(
        &self,
        _sandbox: &str,
        addr: SocketAddr,
        _t: Duration,
    ) -> std::io::Result<TcpStream> {
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("the fake runtime has no network ({addr})"),
        ))
    }
}

impl ImageService for FakeRuntime {
    async fn pull_image(&self, image: &str, _auth: Option<AuthConfig>) -> Result<PulledImage> {
        self.state
            .lock()
            .unwrap()
            .calls
            .pulls
            .push(image.to_string());
        if let Some(e) = self.pull_errors.lock().unwrap().get(image) {
            return Err(Error::State(e.clone()));
        }
        self.images.lock().unwrap().push(image.to_string());
        Ok(PulledImage {
            id: "sha256:00".into(),
            image_ref: format!("{image}@sha256:00"),
            size: 1234,
        })
    }

    fn image_status(&self, image: &str) -> Result<Option<ImageInfo>> {
        let present = self.images.lock().unwrap().iter().any(|i| i == image);
        Ok(present.then(|| ImageInfo {
            id: "sha256:00".into(),
            repo_tags: vec![image.to_string()],
            repo_digests: Vec::new(),
            size: 1234,
            uid: None,
            username: String::new(),
        }))
    }

    fn list_images(&self) -> Result<Vec<ImageInfo>> {
        Ok(Vec::new())
    }

    fn remove_image(&self, _image: &str) -> Result<()> {
        Ok(())
    }

    fn image_fs_info(&self) -> Result<FsUsage> {
        Ok(FsUsage {
            mountpoint: "/fake".into(),
            used_bytes: 0,
            inodes_used: 0,
        })
    }
}
