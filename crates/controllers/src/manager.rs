//! The controller process (`peapod __controllers`): one per state root, started by `apply`
//! when it stores a workload, it runs a pass of every controller every half second under
//! the object store's lock, and exits once no workload is left.
//!
//! A pass: Deployments (their ReplicaSets), ReplicaSets (their pods), DaemonSets, Jobs, then
//! the garbage collector (pods and ReplicaSets whose owner is gone are deleted).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use peapod_shim::objects::ObjectStore;
use peapod_shim::{PodHandle, ShimError};
use peapod_types::api::Pod;
use peapod_types::config::Config;
use peapod_types::k8s_openapi::api::apps::v1::ReplicaSet;
use peapod_types::workloads::{KINDS, Workload};

use crate::plan;
use crate::view::PodView;

/// How often the controllers run.
const PERIOD: Duration = Duration::from_millis(500);

/// The lock the running controller process holds.
fn lock_file(cfg: &Config) -> PathBuf {
    cfg.run_root.join("controllers.lock")
}

fn try_lock(cfg: &Config) -> std::io::Result<Option<nix::fcntl::Flock<std::fs::File>>> {
    std::fs::create_dir_all(&cfg.run_root)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_file(cfg))?;
    Ok(nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).ok())
}

/// Starts the controller process (`exe ARGS… __controllers`, detached, logging to
/// `run_root/controllers.log`) unless one runs.
pub fn ensure_running(cfg: &Config, exe: &Path, args: &[OsString]) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    if try_lock(cfg)?.is_none() {
        return Ok(());
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(cfg.run_root.join("controllers.log"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(args)
        .arg("__controllers")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    cmd.spawn()?;
    Ok(())
}

/// The controller process: passes until no workload is left and no deletion is under way.
/// Returns at once if another one runs.
pub fn run(cfg: &Config, exe: PathBuf, shim_args: Vec<OsString>) -> Result<(), String> {
    let Some(_lock) = try_lock(cfg).map_err(|e| format!("locking the controllers: {e}"))? else {
        return Ok(());
    };
    tracing::info!("controllers started");
    let mut m = Manager {
        cfg: cfg.clone(),
        store: ObjectStore::new(cfg),
        exe,
        shim_args,
        deleting: Arc::new(Mutex::new(BTreeSet::new())),
        shims: Vec::new(),
        node: peapod_shim::node_name(cfg),
        node_labels: peapod_types::admission::node_labels(
            &peapod_shim::node_name(cfg),
            &cfg.node_labels,
        ),
    };
    let mut idle = 0;
    loop {
        m.reap();
        let busy = m.pass()?;
        let deleting = !m.deleting.lock().expect("not poisoned").is_empty();
        idle = if busy || deleting { 0 } else { idle + 1 };
        // Two empty passes in a row: an apply between them finds the lock still held.
        if idle >= 2 {
            break;
        }
        std::thread::sleep(PERIOD);
    }
    tracing::info!("no workloads left; controllers stop");
    Ok(())
}

struct Manager {
    cfg: Config,
    store: ObjectStore,
    exe: PathBuf,
    shim_args: Vec<OsString>,
    /// UIDs of the pods being deleted (by threads of their own).
    deleting: Arc<Mutex<BTreeSet<String>>>,
    /// The shims this process started: its children, reaped when they exit.
    shims: Vec<i32>,
    node: String,
    node_labels: BTreeMap<String, String>,
}

/// A random suffix as `generateName` makes them.
fn random_suffix() -> String {
    let mut b = [0u8; 5];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    peapod_types::workloads::suffix(&b)
}

impl Manager {
    fn reap(&mut self) {
        use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
        self.shims.retain(|pid| {
            !matches!(
                waitpid(nix::unistd::Pid::from_raw(*pid), Some(WaitPidFlag::WNOHANG)),
                Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(_)
            )
        });
    }

    /// One pass of every controller; whether any workload exists.
    fn pass(&mut self) -> Result<bool, String> {
        let _lock = self.store.lock()?;
        let now = Timestamp::now();
        let handles = peapod_shim::list_pods(&self.cfg);
        let deleting = self.deleting.lock().expect("not poisoned").clone();
        let views: Vec<PodView> = handles
            .iter()
            .map(|h| PodView::of(&h.current(), deleting.contains(&h.uid)))
            .collect();
        let mut names: BTreeSet<(String, String)> = views
            .iter()
            .map(|v| (v.namespace.clone(), v.name.clone()))
            .collect();
        let owned = |uid: &str| -> Vec<&PodView> {
            views
                .iter()
                .filter(|v| v.owner.as_deref() == Some(uid))
                .collect()
        };
        let mut any = false;

        // Deployments manage ReplicaSets.
        let sets = self.store.workloads("replicasets");
        for w in self.store.workloads("deployments") {
            any = true;
            let Workload::Deployment(d) = &w else {
                continue;
            };
            let uid = d.metadata.uid.clone().unwrap_or_default();
            let mine: Vec<(ReplicaSet, Vec<&PodView>)> = sets
                .iter()
                .filter_map(|s| match s {
                    Workload::ReplicaSet(rs) if controller_uid(&rs.metadata) == Some(&uid) => {
                        let pods = owned(rs.metadata.uid.as_deref().unwrap_or_default());
                        Some((rs.clone(), pods))
                    }
                    _ => None,
                })
                .collect();
            let p = plan::deployment(d, &mine, now);
            if let Some(rs) = p.create {
                let name = rs.metadata.name.clone().unwrap_or_default();
                tracing::info!("deployment {:?}: created replica set {name:?}", w.name().1);
                self.store.put_workload(&Workload::ReplicaSet(rs))?;
            }
            for (name, replicas) in &p.scale {
                if let Some((rs, _)) = mine
                    .iter()
                    .find(|(rs, _)| rs.metadata.name.as_deref() == Some(name.as_str()))
                {
                    let mut rs = rs.clone();
                    rs.spec.get_or_insert_with(Default::default).replicas = Some(*replicas);
                    if let Some(a) = rs.metadata.annotations.as_mut() {
                        a.insert(
                            "deployment.kubernetes.io/desired-replicas".into(),
                            d.spec
                                .as_ref()
                                .and_then(|s| s.replicas)
                                .unwrap_or(1)
                                .to_string(),
                        );
                    }
                    tracing::info!("deployment {:?}: scaled {name:?} to {replicas}", w.name().1);
                    self.store.put_workload(&Workload::ReplicaSet(rs))?;
                }
            }
            for name in &p.delete {
                self.store.delete("replicasets", &w.name().0, name);
            }
            let mut d = d.clone();
            if d.status.as_ref() != Some(&p.status) {
                d.status = Some(p.status);
                self.save(&Workload::Deployment(d))?;
            }
        }

        // ReplicaSets manage pods.
        for w in self.store.workloads("replicasets") {
            any = true;
            let Workload::ReplicaSet(rs) = &w else {
                continue;
            };
            let pods = owned(rs.metadata.uid.as_deref().unwrap_or_default());
            let desired = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let p = plan::replica_set(desired, &pods);
            self.execute(&w, &p, &handles, &mut names, |_| {});
            let status = plan::replica_set_status(rs, &pods, now);
            if rs.status.as_ref() != Some(&status) {
                let mut rs = rs.clone();
                rs.status = Some(status);
                self.save(&Workload::ReplicaSet(rs))?;
            }
        }

        // DaemonSets: one pod on this node.
        for w in self.store.workloads("daemonsets") {
            any = true;
            let Workload::DaemonSet(ds) = &w else {
                continue;
            };
            let pods = owned(ds.metadata.uid.as_deref().unwrap_or_default());
            let template = w.template();
            let admitted = peapod_types::admission::admit(
                &template.spec.clone().unwrap_or_default(),
                &self.node,
                &self.node_labels,
            )
            .is_ok();
            let (p, status) = plan::daemon_set(ds, admitted, &pods, now);
            let hash = peapod_types::workloads::template_hash(&template, None);
            let generation = ds.metadata.generation.unwrap_or(1).to_string();
            self.execute(&w, &p, &handles, &mut names, |pod| {
                let labels = pod.metadata.labels.get_or_insert_with(Default::default);
                labels.insert(plan::REVISION_HASH_LABEL.into(), hash.clone());
                labels.insert("pod-template-generation".into(), generation.clone());
            });
            if ds.status.as_ref() != Some(&status) {
                let mut ds = ds.clone();
                ds.status = Some(status);
                self.save(&Workload::DaemonSet(ds))?;
            }
        }

        // Jobs.
        for w in self.store.workloads("jobs") {
            any = true;
            let Workload::Job(j) = &w else { continue };
            let pods = owned(j.metadata.uid.as_deref().unwrap_or_default());
            let p = plan::job(j, &pods, now);
            if p.expired {
                tracing::info!(
                    "job {:?}: deleted after its ttlSecondsAfterFinished",
                    w.name().1
                );
                self.store.delete("jobs", &w.name().0, &w.name().1);
                continue;
            }
            let scale = plan::ScalePlan {
                create: p.create,
                delete: p.delete.clone(),
            };
            self.execute(&w, &scale, &handles, &mut names, |_| {});
            if j.status.as_ref() != Some(&p.status) {
                let mut j = j.clone();
                j.status = Some(p.status);
                self.save(&Workload::Job(j))?;
            }
        }

        self.collect_garbage(&handles, &views);
        Ok(any)
    }

    fn save(&self, w: &Workload) -> Result<(), String> {
        self.store
            .save_workload(w)
            .map(|_| ())
            .map_err(|e| format!("saving {} {:?}: {e}", w.kind(), w.name().1))
    }

    /// Creates and deletes pods for `owner` as `p` says; `adjust` finishes each new pod.
    fn execute(
        &mut self,
        owner: &Workload,
        p: &plan::ScalePlan,
        handles: &[PodHandle],
        names: &mut BTreeSet<(String, String)>,
        adjust: impl Fn(&mut Pod),
    ) {
        let (ns, owner_name) = owner.name();
        for name in &p.delete {
            if let Some(h) = handles
                .iter()
                .find(|h| h.namespace() == ns && h.name() == name)
            {
                tracing::info!("{} {owner_name:?}: deleting pod {name:?}", owner.kind());
                self.delete_in_background(h.clone());
            }
        }
        for _ in 0..p.create {
            let template = owner.template();
            let mut pod = peapod_types::workloads::template_pod(owner, &template);
            let prefix = format!("{owner_name}-");
            let name = loop {
                let n = format!("{prefix}{}", random_suffix());
                if !names.contains(&(ns.clone(), n.clone())) {
                    break n;
                }
            };
            names.insert((ns.clone(), name.clone()));
            pod.metadata.generate_name = Some(prefix);
            pod.metadata.name = Some(name.clone());
            adjust(&mut pod);
            peapod_types::defaults::pod(&mut pod);
            let secrets = match peapod_shim::pull_secrets(
                &pod,
                |ns, n| self.store.get_secret(ns, n),
                |w| tracing::warn!("{w}"),
            ) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("{} {owner_name:?}: {e}", owner.kind());
                    continue;
                }
            };
            match peapod_shim::create_pod(&self.cfg, pod, &secrets, &self.exe, &self.shim_args) {
                Ok(uid) => {
                    tracing::info!("{} {owner_name:?}: created pod {name:?}", owner.kind());
                    let pid_file = peapod_shim::Paths::new(&self.cfg, &uid).pid_file();
                    if let Some(pid) = std::fs::read_to_string(pid_file)
                        .ok()
                        .and_then(|s| s.trim().parse().ok())
                    {
                        self.shims.push(pid);
                    }
                }
                Err(e) => tracing::warn!(
                    "{} {owner_name:?}: creating pod {name:?}: {e}",
                    owner.kind()
                ),
            }
        }
    }

    fn delete_in_background(&self, h: PodHandle) {
        let mut deleting = self.deleting.lock().expect("not poisoned");
        if !deleting.insert(h.uid.clone()) {
            return;
        }
        let (cfg, set) = (self.cfg.clone(), self.deleting.clone());
        std::thread::spawn(move || {
            if let Err(e) = peapod_shim::delete_pod(&cfg, &h, None) {
                tracing::warn!("deleting pod {:?}: {e}", h.name());
            }
            set.lock().expect("not poisoned").remove(&h.uid);
        });
    }

    /// Pods and ReplicaSets whose controlling owner (of a kind peapod runs) is gone.
    fn collect_garbage(&mut self, handles: &[PodHandle], views: &[PodView]) {
        let mut live: BTreeSet<String> = BTreeSet::new();
        for kind in KINDS {
            for w in self.store.workloads(kind) {
                live.extend(w.metadata().uid.clone());
            }
        }
        let managed = |refs: &Option<Vec<peapod_types::meta::OwnerReference>>| {
            refs.iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .filter(|o| {
                    matches!(
                        o.kind.as_str(),
                        "Deployment" | "ReplicaSet" | "DaemonSet" | "Job"
                    )
                })
                .map(|o| o.uid.clone())
        };
        for w in self.store.workloads("replicasets") {
            if let Some(owner) = managed(&w.metadata().owner_references)
                && !live.contains(&owner)
            {
                let (ns, name) = w.name();
                tracing::info!("replica set {name:?}: its owner is gone; deleting it");
                self.store.delete("replicasets", &ns, &name);
            }
        }
        for (h, v) in handles.iter().zip(views) {
            if v.terminating {
                continue;
            }
            if let Some(owner) = managed(&h.pod.pod().metadata.owner_references)
                && !live.contains(&owner)
            {
                tracing::info!("pod {:?}: its owner is gone; deleting it", h.name());
                self.delete_in_background(h.clone());
            }
        }
    }
}

fn controller_uid(m: &peapod_types::meta::ObjectMeta) -> Option<&String> {
    m.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| &o.uid)
}

/// Deletes a workload as `kubectl delete` does, with its dependents: a Deployment's
/// ReplicaSets and every pod they own, a ReplicaSet's, DaemonSet's or Job's pods. Returns
/// false if there was no such object.
pub fn delete_workload(
    cfg: &Config,
    plural: &str,
    ns: &str,
    name: &str,
    grace: Option<i64>,
) -> Result<bool, String> {
    let store = ObjectStore::new(cfg);
    let mut owners = BTreeSet::new();
    {
        let _lock = store.lock()?;
        let Some(w) = store.get_workload(plural, ns, name) else {
            return Ok(false);
        };
        let uid = w.metadata().uid.clone().unwrap_or_default();
        if plural == "deployments" {
            for rs in store.workloads("replicasets") {
                if controller_uid(rs.metadata()) == Some(&uid) {
                    owners.extend(rs.metadata().uid.clone());
                    store.delete("replicasets", ns, &rs.name().1);
                }
            }
        }
        owners.insert(uid);
        store.delete(plural, ns, name);
    }
    let pods: Vec<PodHandle> = peapod_shim::list_pods(cfg)
        .into_iter()
        .filter(|h| controller_uid(&h.pod.pod().metadata).is_some_and(|u| owners.contains(u)))
        .collect();
    let results: Vec<Result<(), ShimError>> = std::thread::scope(|s| {
        let all: Vec<_> = pods
            .iter()
            .map(|h| s.spawn(move || peapod_shim::delete_pod(cfg, h, grace)))
            .collect();
        all.into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(ShimError::Shim("panicked".into())))
            })
            .collect()
    });
    for (h, r) in pods.iter().zip(results) {
        r.map_err(|e| format!("deleting pod {:?}: {e}", h.name()))?;
    }
    Ok(true)
}
