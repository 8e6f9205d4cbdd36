//! ConfigMaps and Secrets kept between `apply`s, by namespace and name:
//!
//! ```text
//! <root>/objects/<namespace>/configmaps/<name>.json
//! <run_root>/objects/<namespace>/secrets/<name>.json   (0600, under the volatile root)
//! <root>/objects/<namespace>/persistentvolumeclaims/<name>.json
//! <root>/claims/<namespace>/<name>/                  a claim's data, kept across pods
//! <root>/objects/<namespace>/<deployments|replicasets|daemonsets|jobs>/<name>.json
//! <root>/objects/.lock                               taken by writers of workloads
//! ```
//!
//! Pods' supervisors read them at every use, so a change reaches the next container start.

use std::path::{Path, PathBuf};

use peapod_kubelet::objects::ObjectSource;
use peapod_types::api::{ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimStatus, Secret};
use peapod_types::config::Config;
use peapod_types::workloads::Workload;

/// The object store of one configuration.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    config_maps: PathBuf,
    secrets: PathBuf,
    claims: PathBuf,
}

/// What storing an object did, as `kubectl apply` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// It was new.
    Created,
    /// It replaced a different one.
    Configured,
    /// It was the same as before.
    Unchanged,
}

impl std::fmt::Display for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stored::Created => "created",
            Stored::Configured => "configured",
            Stored::Unchanged => "unchanged",
        })
    }
}

fn name_of(meta: &peapod_types::meta::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_else(|| "default".into()),
        meta.name.clone().unwrap_or_default(),
    )
}

/// A new random UUID (version 4), as the API server assigns to objects.
pub fn new_uid() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The UID and creation time an object is given when it is first stored, and keeps.
fn stamp(meta: &mut peapod_types::meta::ObjectMeta, old: Option<&peapod_types::meta::ObjectMeta>) {
    match old {
        Some(o) => {
            meta.uid = o.uid.clone();
            meta.creation_timestamp = o.creation_timestamp.clone();
        }
        None => {
            let now = jiff::Timestamp::now();
            meta.uid = Some(new_uid());
            meta.creation_timestamp = Some(peapod_types::meta::Time(now));
        }
    }
}

impl ObjectStore {
    /// The store of `cfg`.
    pub fn new(cfg: &Config) -> Self {
        ObjectStore {
            config_maps: cfg.root.join("objects"),
            secrets: cfg.run_root.join("objects"),
            claims: cfg.root.join("claims"),
        }
    }

    fn file(&self, kind: &str, ns: &str, name: &str) -> PathBuf {
        let base = if kind == "secrets" {
            &self.secrets
        } else {
            &self.config_maps
        };
        base.join(ns).join(kind).join(format!("{name}.json"))
    }

    fn read<T: serde::de::DeserializeOwned>(&self, kind: &str, ns: &str, name: &str) -> Option<T> {
        let data = std::fs::read(self.file(kind, ns, name)).ok()?;
        serde_json::from_slice(&data).ok()
    }

    fn write(&self, kind: &str, ns: &str, name: &str, data: &[u8]) -> std::io::Result<Stored> {
        use std::io::Write;
        use std::os::unix::fs::DirBuilderExt;
        let path = self.file(kind, ns, name);
        let before = std::fs::read(&path).ok();
        if before.as_deref() == Some(data) {
            return Ok(Stored::Unchanged);
        }
        let dir = path.parent().expect("a file has a directory");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        // A temporary file of its own (mode 0600), so that concurrent writers never share one.
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(data)?;
        tmp.persist(&path)?;
        Ok(if before.is_some() {
            Stored::Configured
        } else {
            Stored::Created
        })
    }

    /// Stores a (validated) ConfigMap; an immutable one may not change.
    pub fn put_config_map(&self, cm: &ConfigMap) -> Result<Stored, String> {
        let (ns, name) = name_of(&cm.metadata);
        let old = self.read::<ConfigMap>("configmaps", &ns, &name);
        if let Some(old) = &old
            && old.immutable == Some(true)
            && (old.data != cm.data || old.binary_data != cm.binary_data)
        {
            return Err(format!(
                "configmap {name:?} is invalid: data: Forbidden: field is immutable when `immutable` is set"
            ));
        }
        let mut cm = cm.clone();
        stamp(&mut cm.metadata, old.as_ref().map(|o| &o.metadata));
        let data = serde_json::to_vec(&cm).expect("a ConfigMap serializes");
        self.write("configmaps", &ns, &name, &data)
            .map_err(|e| format!("storing configmap {name:?}: {e}"))
    }

    /// Stores a (validated) Secret; an immutable one may not change.
    pub fn put_secret(&self, s: &Secret) -> Result<Stored, String> {
        let (ns, name) = name_of(&s.metadata);
        let old = self.read::<Secret>("secrets", &ns, &name);
        if let Some(old) = &old
            && old.immutable == Some(true)
            && old.data != s.data
        {
            return Err(format!(
                "secret {name:?} is invalid: data: Forbidden: field is immutable when `immutable` is set"
            ));
        }
        let mut s = s.clone();
        stamp(&mut s.metadata, old.as_ref().map(|o| &o.metadata));
        let data = serde_json::to_vec(&s).expect("a Secret serializes");
        self.write("secrets", &ns, &name, &data)
            .map_err(|e| format!("storing secret {name:?}: {e}"))
    }

    /// Stores a (validated) claim, bound at once to a directory of its own (as a local
    /// provisioner binds it); a bound claim's spec may not change.
    pub fn put_claim(&self, c: &PersistentVolumeClaim) -> Result<Stored, String> {
        let (ns, name) = name_of(&c.metadata);
        let old = self.read::<PersistentVolumeClaim>("persistentvolumeclaims", &ns, &name);
        if let Some(old) = &old
            && old.spec != c.spec
        {
            return Err(format!(
                "persistentvolumeclaim {name:?} is invalid: spec: Forbidden: spec is immutable after creation"
            ));
        }
        let mut c = c.clone();
        stamp(&mut c.metadata, old.as_ref().map(|o| &o.metadata));
        let spec = c.spec.clone().unwrap_or_default();
        let storage = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage").cloned());
        let mut spec = spec;
        spec.volume_name = Some(format!(
            "pvc-{}",
            c.metadata.uid.clone().unwrap_or_default()
        ));
        c.spec = Some(spec.clone());
        c.status = Some(PersistentVolumeClaimStatus {
            phase: Some("Bound".into()),
            access_modes: spec.access_modes.clone(),
            capacity: storage.map(|q| [("storage".to_string(), q)].into()),
            ..Default::default()
        });
        let dir = self.claims.join(&ns).join(&name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777));
        let data = serde_json::to_vec(&c).expect("a claim serializes");
        self.write("persistentvolumeclaims", &ns, &name, &data)
            .map_err(|e| format!("storing persistentvolumeclaim {name:?}: {e}"))
    }

    /// A stored claim.
    pub fn get_claim(&self, ns: &str, name: &str) -> Option<PersistentVolumeClaim> {
        self.read("persistentvolumeclaims", ns, name)
    }

    /// Removes a claim and its data.
    pub fn delete_claim(&self, ns: &str, name: &str) -> bool {
        let had = self.delete("persistentvolumeclaims", ns, name);
        let _ = std::fs::remove_dir_all(self.claims.join(ns).join(name));
        had
    }

    /// A stored ConfigMap.
    pub fn get_config_map(&self, ns: &str, name: &str) -> Option<ConfigMap> {
        self.read("configmaps", ns, name)
    }

    /// A stored Secret.
    pub fn get_secret(&self, ns: &str, name: &str) -> Option<Secret> {
        self.read("secrets", ns, name)
    }

    /// Removes an object (`configmaps` or `secrets`); false when there was none.
    pub fn delete(&self, kind: &str, ns: &str, name: &str) -> bool {
        std::fs::remove_file(self.file(kind, ns, name)).is_ok()
    }

    /// The namespaces that hold objects of `kind`, sorted.
    pub fn namespaces(&self, kind: &str) -> Vec<String> {
        let base = if kind == "secrets" {
            &self.secrets
        } else {
            &self.config_maps
        };
        let mut out: Vec<String> = std::fs::read_dir(base)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join(kind).is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }

    /// The names of the objects of `kind` in `ns`, sorted.
    pub fn names(&self, kind: &str, ns: &str) -> Vec<String> {
        let dir = self.file(kind, ns, "x");
        let dir = dir.parent().unwrap_or(Path::new("/nonexistent"));
        let mut out: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_suffix(".json")
                    .filter(|_| !n.starts_with('.'))
                    .map(str::to_string)
            })
            .collect();
        out.sort();
        out
    }
}

/// The store's lock, held while it lives.
pub type StoreLock = nix::fcntl::Flock<std::fs::File>;

impl ObjectStore {
    /// Takes the store's lock: apply's writes of workloads and a controller pass over them
    /// exclude each other, so neither undoes the other's change.
    pub fn lock(&self) -> Result<StoreLock, String> {
        std::fs::create_dir_all(&self.config_maps)
            .map_err(|e| format!("creating {}: {e}", self.config_maps.display()))?;
        let path = self.config_maps.join(".lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("opening {}: {e}", path.display()))?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| format!("locking {}: {e}", path.display()))
    }

    /// Stores a (defaulted, validated) workload as `apply` does, keeping what its
    /// controller recorded: UID, creation time and status. A changed spec raises
    /// `metadata.generation`; fields the API server makes immutable may not change.
    pub fn put_workload(&self, w: &Workload) -> Result<Stored, String> {
        let (ns, name) = w.name();
        let plural = w.plural();
        let old = self.get_workload(plural, &ns, &name);
        let mut w = w.clone();
        let what = format!("{} {name:?}", w.kind().to_lowercase());
        match &old {
            Some(old) => {
                let uid = old.metadata().uid.clone().unwrap_or_default();
                peapod_types::workloads::assign_uid(&mut w, &uid);
                let (m, o) = (w.metadata().clone(), old.metadata());
                if old.spec_value() == w.spec_value()
                    && m.labels == o.labels
                    && m.annotations == o.annotations
                {
                    return Ok(Stored::Unchanged);
                }
                if let Some(field) = immutable_change(old, &w) {
                    return Err(format!(
                        "{what} is invalid: {field}: Invalid value: field is immutable"
                    ));
                }
                let generation =
                    o.generation.unwrap_or(1) + i64::from(old.spec_value() != w.spec_value());
                let meta = w.metadata_mut();
                meta.creation_timestamp = o.creation_timestamp.clone();
                meta.generation = Some(generation);
                set_status_of(&mut w, old);
            }
            None => {
                peapod_types::workloads::assign_uid(&mut w, &new_uid());
                let meta = w.metadata_mut();
                meta.creation_timestamp = Some(peapod_types::meta::Time(jiff::Timestamp::now()));
                meta.generation = Some(1);
            }
        }
        self.save_workload(&w)
            .map_err(|e| format!("storing {what}: {e}"))
    }

    /// Writes a workload as it is (a controller recording its status).
    pub fn save_workload(&self, w: &Workload) -> std::io::Result<Stored> {
        let (ns, name) = w.name();
        let data = serde_json::to_vec(&w.to_value()).expect("workloads serialize");
        self.write(w.plural(), &ns, &name, &data)
    }

    /// A stored workload of the kind whose plural is `plural`.
    pub fn get_workload(&self, plural: &str, ns: &str, name: &str) -> Option<Workload> {
        let v: serde_json::Value = self.read(plural, ns, name)?;
        Workload::from_value(plural, v)
    }

    /// Every stored workload of the kind whose plural is `plural`, in every namespace.
    pub fn workloads(&self, plural: &str) -> Vec<Workload> {
        let mut out = Vec::new();
        for ns in self.namespaces(plural) {
            for name in self.names(plural, &ns) {
                out.extend(self.get_workload(plural, &ns, &name));
            }
        }
        out
    }
}

/// The first field whose change the API server refuses, if any.
fn immutable_change(old: &Workload, new: &Workload) -> Option<&'static str> {
    if old.selector() != new.selector() && !matches!(new, Workload::Job(_)) {
        return Some("spec.selector");
    }
    if let (Workload::Job(o), Workload::Job(n)) = (old, new) {
        let (mut o, mut n) = (o.spec.clone()?, n.spec.clone()?);
        if o.template.spec != n.template.spec {
            return Some("spec.template");
        }
        // What may change on a Job: parallelism, the deadline, the TTL.
        o.parallelism = None;
        n.parallelism = None;
        o.active_deadline_seconds = None;
        n.active_deadline_seconds = None;
        o.ttl_seconds_after_finished = None;
        n.ttl_seconds_after_finished = None;
        (o.template, n.template) = (Default::default(), Default::default());
        o.selector = None;
        n.selector = None;
        if o != n {
            return Some("spec");
        }
    }
    None
}

fn set_status_of(w: &mut Workload, from: &Workload) {
    match (w, from) {
        (Workload::Deployment(a), Workload::Deployment(b)) => a.status = b.status.clone(),
        (Workload::ReplicaSet(a), Workload::ReplicaSet(b)) => a.status = b.status.clone(),
        (Workload::DaemonSet(a), Workload::DaemonSet(b)) => a.status = b.status.clone(),
        (Workload::Job(a), Workload::Job(b)) => a.status = b.status.clone(),
        _ => {}
    }
}

impl ObjectSource for ObjectStore {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        self.get_config_map(namespace, name)
    }

    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.get_secret(namespace, name)
    }

    fn claim_dir(&self, namespace: &str, name: &str) -> Option<PathBuf> {
        self.get_claim(namespace, name)?;
        Some(self.claims.join(namespace).join(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_read_back_and_immutable() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            root: dir.path().join("lib"),
            run_root: dir.path().join("run"),
            ..Default::default()
        };
        let store = ObjectStore::new(&cfg);
        let mut cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "game", "namespace": "default"},
            "data": {"lives": "3"},
            "immutable": true
        }))
        .unwrap();
        assert_eq!(store.put_config_map(&cm).unwrap(), Stored::Created);
        assert_eq!(store.put_config_map(&cm).unwrap(), Stored::Unchanged);
        assert_eq!(
            store.config_map("default", "game").unwrap().data.unwrap()["lives"],
            "3"
        );
        cm.data = Some([("lives".to_string(), "4".to_string())].into());
        assert!(store.put_config_map(&cm).unwrap_err().contains("immutable"));
        let s: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db", "namespace": "default"},
            "data": {"password": "c2VjcmV0"}
        }))
        .unwrap();
        assert_eq!(store.put_secret(&s).unwrap(), Stored::Created);
        let file = cfg.run_root.join("objects/default/secrets/db.json");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(store.names("secrets", "default"), ["db"]);
        assert!(store.delete("secrets", "default", "db"));
        assert!(store.secret("default", "db").is_none());
    }
}
