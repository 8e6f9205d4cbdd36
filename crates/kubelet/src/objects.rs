//! Where the pod controller finds the ConfigMaps, Secrets and claims a pod refers to (the
//! kubelet's configmap and secret managers, and its volume manager's claims). Looked up again at every use, so an object
//! that appears later lets a waiting container start.

use std::collections::HashMap;
use std::sync::Mutex;

use peapod_types::api::{ConfigMap, Secret};

/// A source of ConfigMaps and Secrets by namespace and name.
pub trait ObjectSource: Send + Sync {
    /// The ConfigMap, if it exists.
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap>;
    /// The Secret, if it exists.
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret>;
    /// The directory holding a PersistentVolumeClaim's data, if the claim exists.
    fn claim_dir(&self, _namespace: &str, _name: &str) -> Option<std::path::PathBuf> {
        None
    }
}

/// Objects held in memory (tests, and pods run without a store).
#[derive(Default)]
pub struct MemoryObjects {
    config_maps: Mutex<HashMap<(String, String), ConfigMap>>,
    secrets: Mutex<HashMap<(String, String), Secret>>,
}

fn key(meta: &peapod_types::meta::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_else(|| "default".into()),
        meta.name.clone().unwrap_or_default(),
    )
}

impl MemoryObjects {
    /// Adds or replaces a ConfigMap.
    pub fn put_config_map(&self, cm: ConfigMap) {
        let k = key(&cm.metadata);
        self.config_maps.lock().unwrap().insert(k, cm);
    }

    /// Adds or replaces a Secret.
    pub fn put_secret(&self, s: Secret) {
        let k = key(&s.metadata);
        self.secrets.lock().unwrap().insert(k, s);
    }
}

impl ObjectSource for MemoryObjects {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        let k = (namespace.to_string(), name.to_string());
        self.config_maps.lock().unwrap().get(&k).cloned()
    }

    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        let k = (namespace.to_string(), name.to_string());
        self.secrets.lock().unwrap().get(&k).cloned()
    }
}
