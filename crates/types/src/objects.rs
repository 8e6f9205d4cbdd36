//! ConfigMaps and Secrets as the API server takes them: `stringData` folded into `data`,
//! keys and sizes checked (`ValidateConfigMap`, `ValidateSecret`), with its messages.

use std::collections::BTreeMap;

use crate::api::{ConfigMap, PersistentVolumeClaim, Secret};
use crate::field::{ErrorKind, FieldError};

/// The most bytes a ConfigMap's or Secret's data may hold.
pub const MAX_DATA_SIZE: usize = 1024 * 1024;

const KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// The problems with `key` as a ConfigMap or Secret key; empty when it is valid.
pub fn config_key(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    if key.len() > 253 {
        out.push("must be no more than 253 characters".to_string());
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        out.push(KEY_MSG.to_string());
    }
    match key {
        "." => out.push("must not be '.'".to_string()),
        ".." => out.push("must not be '..'".to_string()),
        k if k.starts_with("..") => out.push("must not start with '..'".to_string()),
        _ => {}
    }
    out
}

fn name(path: &str, name: Option<&str>, errs: &mut Vec<FieldError>) {
    match name {
        None | Some("") => errs.push(FieldError::required(path, "name or generateName is required")),
        Some(n) if !crate::validate::is_dns1123_subdomain(n) => errs.push(FieldError::invalid(
            path,
            n,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )),
        _ => {}
    }
}

fn keys<'a>(field: &str, keys: impl Iterator<Item = &'a String>, errs: &mut Vec<FieldError>) {
    for k in keys {
        for msg in config_key(k) {
            errs.push(FieldError::invalid(
                format!("{field}[{k}]"),
                k.as_str(),
                msg,
            ));
        }
    }
}

fn too_long(path: &str, size: usize, errs: &mut Vec<FieldError>) {
    if size > MAX_DATA_SIZE {
        errs.push(FieldError::new(
            path,
            ErrorKind::TooLong,
            (),
            format!("may not be more than {MAX_DATA_SIZE} bytes"),
        ));
    }
}

/// Defaults (the namespace) and validates a ConfigMap.
pub fn config_map(cm: &mut ConfigMap) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ns = cm.metadata.namespace.get_or_insert_with(String::new);
    if ns.is_empty() {
        *ns = "default".into();
    }
    name("metadata.name", cm.metadata.name.as_deref(), &mut errs);
    let data = cm.data.clone().unwrap_or_default();
    let binary = cm.binary_data.clone().unwrap_or_default();
    keys("data", data.keys(), &mut errs);
    keys("binaryData", binary.keys(), &mut errs);
    for k in binary.keys().filter(|k| data.contains_key(*k)) {
        errs.push(FieldError::invalid(
            format!("data[{k}]"),
            k.as_str(),
            "duplicate of key present in binaryData",
        ));
    }
    let size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
        + binary
            .iter()
            .map(|(k, v)| k.len() + v.0.len())
            .sum::<usize>();
    too_long("", size, &mut errs);
    errs
}

/// Defaults (the namespace, type `Opaque`, `stringData` into `data`) and validates a Secret.
pub fn secret(s: &mut Secret) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ns = s.metadata.namespace.get_or_insert_with(String::new);
    if ns.is_empty() {
        *ns = "default".into();
    }
    name("metadata.name", s.metadata.name.as_deref(), &mut errs);
    let t = s.type_.get_or_insert_with(|| "Opaque".into());
    if t.is_empty() {
        *t = "Opaque".into();
    }
    if let Some(sd) = s.string_data.take() {
        keys("stringData", sd.keys(), &mut errs);
        let data = s.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in sd {
            data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
        }
    }
    let data = s.data.clone().unwrap_or_default();
    keys("data", data.keys(), &mut errs);
    let size: usize = data.iter().map(|(k, v)| k.len() + v.0.len()).sum();
    too_long("data", size, &mut errs);
    let required: &[&str] = match s.type_.as_deref().unwrap_or_default() {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        _ => &[],
    };
    for k in required {
        if !data.contains_key(*k) {
            errs.push(FieldError::required(format!("data[{k}]"), ""));
        }
    }
    if s.type_.as_deref() == Some("kubernetes.io/basic-auth")
        && !data.contains_key("username")
        && !data.contains_key("password")
    {
        errs.push(FieldError::required(
            "data[username]",
            "either username or password is required",
        ));
    }
    errs
}

/// Defaults (the namespace, `volumeMode: Filesystem`) and validates a claim, as
/// `ValidatePersistentVolumeClaim` does for what peapod uses of it.
pub fn claim(c: &mut PersistentVolumeClaim) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ns = c.metadata.namespace.get_or_insert_with(String::new);
    if ns.is_empty() {
        *ns = "default".into();
    }
    name("metadata.name", c.metadata.name.as_deref(), &mut errs);
    let spec = c.spec.get_or_insert_with(Default::default);
    spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
    let modes = spec.access_modes.clone().unwrap_or_default();
    if modes.is_empty() {
        errs.push(FieldError::required(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    const MODES: &[&str] = &[
        "ReadOnlyMany",
        "ReadWriteMany",
        "ReadWriteOnce",
        "ReadWriteOncePod",
    ];
    for m in &modes {
        if !MODES.contains(&m.as_str()) {
            errs.push(FieldError::not_supported(
                "spec.accessModes",
                m.as_str(),
                MODES,
            ));
        }
    }
    if spec.volume_mode.as_deref() == Some("Block") {
        errs.push(FieldError::forbidden(
            "spec.volumeMode",
            "block volumes are not supported by peapod",
        ));
    }
    match spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
    {
        None => errs.push(FieldError::required("spec.resources[storage]", "")),
        Some(q) => match crate::quantity::parse_quantity(&q.0) {
            Err(msg) => errs.push(FieldError::invalid(
                "spec.resources.requests[storage]",
                q.0.as_str(),
                msg,
            )),
            Ok(v) if v.nanos <= 0 => errs.push(FieldError::invalid(
                "spec.resources.requests[storage]",
                q.0.as_str(),
                "must be greater than zero",
            )),
            Ok(_) => {}
        },
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        let v = crate::yaml::documents(yaml).unwrap().remove(0);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn config_maps() {
        let mut cm: ConfigMap = load(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: game}\ndata: {lives: '3', ui.properties: 'x=1', 'bad/key': z}\nbinaryData: {lives: AAE=}\n",
        );
        let e: Vec<String> = config_map(&mut cm).iter().map(|e| e.to_string()).collect();
        assert_eq!(
            e,
            [
                format!("data[bad/key]: Invalid value: \"bad/key\": {KEY_MSG}"),
                "data[lives]: Invalid value: \"lives\": duplicate of key present in binaryData"
                    .to_string(),
            ]
        );
        assert_eq!(cm.metadata.namespace.as_deref(), Some("default"));
        let mut big: ConfigMap = load(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata: {{k: '{}'}}\n",
            "x".repeat(MAX_DATA_SIZE)
        ));
        let e: Vec<String> = config_map(&mut big).iter().map(|e| e.to_string()).collect();
        assert_eq!(e, [": Too long: may not be more than 1048576 bytes"]);
    }

    #[test]
    fn claims() {
        let mut c: PersistentVolumeClaim = load(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n",
        );
        assert!(claim(&mut c).is_empty());
        assert_eq!(c.spec.unwrap().volume_mode.as_deref(), Some("Filesystem"));
        let mut bad: PersistentVolumeClaim = load(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec: {accessModes: [ReadWriteSometimes]}\n",
        );
        let e: Vec<String> = claim(&mut bad).iter().map(|e| e.to_string()).collect();
        assert_eq!(
            e,
            [
                "spec.accessModes: Unsupported value: \"ReadWriteSometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                "spec.resources[storage]: Required value",
            ]
        );
    }

    #[test]
    fn secrets() {
        let mut s: Secret = load(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: cGFzcw==}\nstringData: {username: admin}\n",
        );
        assert!(secret(&mut s).is_empty());
        let data = s.data.unwrap();
        assert_eq!(data["username"].0, b"admin");
        assert_eq!(data["password"].0, b"pass");
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        let mut tls: Secret = load(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: t}\ntype: kubernetes.io/tls\ndata: {tls.crt: eA==}\n",
        );
        let e: Vec<String> = secret(&mut tls).iter().map(|e| e.to_string()).collect();
        assert_eq!(e, ["data[tls.key]: Required value"]);
        assert_eq!(config_key("..data"), ["must not start with '..'"]);
    }
}
