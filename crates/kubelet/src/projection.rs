//! Volumes whose files are made from objects: `configMap`, `secret`, `downwardAPI` and
//! `projected` (of those three). What goes in them is a pure function of the pod and the
//! objects ([`payload`]); they are written as the kubelet's atomic writer writes them
//! ([`write_atomic`]): the files in a timestamped directory, `..data` a symlink to it
//! swapped in one rename, and each top-level name a symlink through `..data`, so a reader
//! sees the old set or the new one, never a mix. Secrets are on tmpfs, never on disk.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use peapod_types::api::{DownwardAPIVolumeFile, KeyToPath, Volume};
use peapod_types::pod::DefaultedPod;

use crate::objects::ObjectSource;

/// The files of a volume: relative path → (content, mode).
pub type Payload = BTreeMap<String, (Vec<u8>, u32)>;

/// The kubelet's default file mode for these volumes (0644).
pub const DEFAULT_MODE: u32 = 0o644;

/// Whether `v` is a volume whose files are made from objects.
pub fn is_projected(v: &Volume) -> bool {
    v.config_map.is_some()
        || v.secret.is_some()
        || v.downward_api.is_some()
        || v.projected.is_some()
}

/// Where volume `v` of the pod in `pod_dir` lives.
pub fn dir_of(pod_dir: &Path, v: &Volume) -> PathBuf {
    let plugin = if v.config_map.is_some() {
        "kubernetes.io~configmap"
    } else if v.secret.is_some() {
        "kubernetes.io~secret"
    } else if v.downward_api.is_some() {
        "kubernetes.io~downward-api"
    } else {
        "kubernetes.io~projected"
    };
    crate::volumes::volume_dir(pod_dir)
        .join(plugin)
        .join(&v.name)
}

fn mode_of(item: Option<i32>, default: Option<i32>) -> u32 {
    item.or(default).map_or(DEFAULT_MODE, |m| m as u32 & 0o777)
}

/// The files of `data` (all keys, or `items` only), as the configMap and secret plugins
/// make them; a missing object is an error unless `optional`.
fn from_data(
    what: &str,
    name: &str,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    optional: bool,
    out: &mut Payload,
) -> Result<(), String> {
    let Some(data) = data else {
        return match optional {
            true => Ok(()),
            false => Err(format!("{what} {name:?} not found")),
        };
    };
    match items {
        None => {
            for (k, v) in data {
                out.insert(k, (v, mode_of(None, default_mode)));
            }
        }
        Some(items) => {
            for it in items {
                match data.get(&it.key) {
                    Some(v) => {
                        out.insert(it.path.clone(), (v.clone(), mode_of(it.mode, default_mode)));
                    }
                    None if optional => {}
                    None => {
                        let kind = if what == "secret" {
                            "secret"
                        } else {
                            "configmap"
                        };
                        return Err(format!(
                            "{kind} references non-existent {} key: {}",
                            if what == "secret" { "secret" } else { "config" },
                            it.key
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn config_map_data(
    objects: &dyn ObjectSource,
    ns: &str,
    name: &str,
) -> Option<BTreeMap<String, Vec<u8>>> {
    objects.config_map(ns, name).map(|cm| {
        let mut d: BTreeMap<String, Vec<u8>> = cm
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        d.extend(
            cm.binary_data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0)),
        );
        d
    })
}

fn secret_data(
    objects: &dyn ObjectSource,
    ns: &str,
    name: &str,
) -> Option<BTreeMap<String, Vec<u8>>> {
    objects.secret(ns, name).map(|s| {
        s.data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect()
    })
}

/// `key="value"` lines, sorted, as the downward API writes labels and annotations.
fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn downward(
    pod: &DefaultedPod,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
    node: crate::config::NodeCapacity,
    out: &mut Payload,
) -> Result<(), String> {
    let m = &pod.pod().metadata;
    for it in items {
        let value = if let Some(f) = &it.field_ref {
            match f.field_path.as_str() {
                "metadata.labels" => format_map(m.labels.as_ref()),
                "metadata.annotations" => format_map(m.annotations.as_ref()),
                other => pod
                    .metadata_field(other)
                    .ok_or_else(|| format!("unsupported fieldPath: {other}"))?,
            }
        } else if let Some(r) = &it.resource_field_ref {
            let name = r.container_name.as_deref().unwrap_or_default();
            let c = pod
                .all_containers()
                .map(|(_, c)| c)
                .find(|c| c.name == name)
                .ok_or_else(|| format!("container {name:?} not found in the pod"))?;
            crate::config::resource_value_of(c, r, node)?
        } else {
            continue;
        };
        out.insert(
            it.path.clone(),
            (value.into_bytes(), mode_of(it.mode, default_mode)),
        );
    }
    Ok(())
}

/// The files of volume `v` of `pod` now; `None` when `v` is not made from objects.
pub fn payload(
    pod: &DefaultedPod,
    v: &Volume,
    objects: &dyn ObjectSource,
    node: crate::config::NodeCapacity,
) -> Result<Option<Payload>, String> {
    let ns = pod.namespace();
    let mut out = Payload::new();
    if let Some(c) = &v.config_map {
        let data = config_map_data(objects, ns, &c.name);
        from_data(
            "configmap",
            &c.name,
            data,
            c.items.as_deref(),
            c.default_mode,
            c.optional == Some(true),
            &mut out,
        )?;
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let data = secret_data(objects, ns, &name);
        from_data(
            "secret",
            &name,
            data,
            s.items.as_deref(),
            s.default_mode,
            s.optional == Some(true),
            &mut out,
        )?;
    } else if let Some(d) = &v.downward_api {
        downward(
            pod,
            d.items.as_deref().unwrap_or_default(),
            d.default_mode,
            node,
            &mut out,
        )?;
    } else if let Some(p) = &v.projected {
        let mode = p.default_mode;
        for src in p.sources.iter().flatten() {
            if let Some(c) = &src.config_map {
                let data = config_map_data(objects, ns, &c.name);
                from_data(
                    "configmap",
                    &c.name,
                    data,
                    c.items.as_deref(),
                    mode,
                    c.optional == Some(true),
                    &mut out,
                )?;
            }
            if let Some(s) = &src.secret {
                let data = secret_data(objects, ns, &s.name);
                from_data(
                    "secret",
                    &s.name,
                    data,
                    s.items.as_deref(),
                    mode,
                    s.optional == Some(true),
                    &mut out,
                )?;
            }
            if let Some(d) = &src.downward_api {
                downward(
                    pod,
                    d.items.as_deref().unwrap_or_default(),
                    mode,
                    node,
                    &mut out,
                )?;
            }
        }
    } else {
        return Ok(None);
    }
    Ok(Some(out))
}

fn io(what: &str, p: &Path) -> impl FnOnce(std::io::Error) -> String {
    let p = p.display().to_string();
    let what = what.to_string();
    move |e| format!("{what} {p}: {e}")
}

/// The files under `dir`, relative, with content and mode.
fn read_tree(root: &Path) -> Payload {
    let mut out = Payload::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for e in entries.flatten() {
            let r = rel.join(e.file_name());
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(r);
            } else if let Ok(data) = std::fs::read(root.join(&r)) {
                out.insert(
                    r.display().to_string(),
                    (data, m.permissions().mode() & 0o777),
                );
            }
        }
    }
    out
}

/// Writes `files` into `dir` as the kubelet's atomic writer does; true when anything
/// changed (nothing is written when the payload is what is there).
pub fn write_atomic(dir: &Path, files: &Payload) -> Result<bool, String> {
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let data_link = dir.join("..data");
    let old = std::fs::read_link(&data_link).ok();
    if let Some(old) = &old
        && read_tree(&dir.join(old)) == *files
    {
        return Ok(false);
    }
    let now = jiff::Timestamp::now();
    let stamp = format!("..{}", now.strftime("%Y_%m_%d_%H_%M_%S.%f"));
    let ts = dir.join(&stamp);
    std::fs::create_dir(&ts).map_err(io("creating", &ts))?;
    let _ = std::fs::set_permissions(&ts, std::fs::Permissions::from_mode(0o755));
    for (rel, (data, mode)) in files {
        let p = ts.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
        }
        std::fs::write(&p, data).map_err(io("writing", &p))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))
            .map_err(io("chmod", &p))?;
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp).map_err(io("linking", &tmp))?;
    std::fs::rename(&tmp, &data_link).map_err(io("renaming", &data_link))?;
    // The names users see: one symlink per top-level entry, through ..data.
    let top: std::collections::BTreeSet<String> = files
        .keys()
        .filter_map(|k| k.split('/').next().map(str::to_string))
        .collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link)
                .map_err(io("linking", &link))?;
        }
    }
    for e in std::fs::read_dir(dir)
        .map_err(io("reading", dir))?
        .flatten()
    {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("..") {
            if n != "..data" && n != stamp && e.path().is_dir() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        } else if !top.contains(&n) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(true)
}

/// Gives the files and directories of a written volume to group `gid` (directories
/// set-group-ID and searchable by it); symlinks are left alone.
pub fn give_to_group(dir: &Path, gid: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).map_err(io("reading", &p))?;
        if m.file_type().is_symlink() {
            continue;
        }
        std::os::unix::fs::lchown(&p, None, Some(gid)).map_err(io("chown", &p))?;
        if m.is_dir() {
            let mode = m.mode() & 0o7777 | 0o2000 | 0o550;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
                .map_err(io("chmod", &p))?;
            for e in std::fs::read_dir(&p).map_err(io("reading", &p))? {
                stack.push(e.map_err(io("reading", &p))?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::MemoryObjects;

    fn pod(spec: &str) -> DefaultedPod {
        crate::testutil::pod_yaml(spec)
    }

    fn objects() -> MemoryObjects {
        let o = MemoryObjects::default();
        o.put_config_map(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "cfg", "namespace": "default"},
                "data": {"game.properties": "lives=3", "ui": "dark"},
                "binaryData": {"blob": "AAE="}
            }))
            .unwrap(),
        );
        o.put_secret(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "sec", "namespace": "default"},
                "data": {"password": "c2VjcmV0"}
            }))
            .unwrap(),
        );
        o
    }

    const NODE: crate::config::NodeCapacity = crate::config::NodeCapacity {
        cpus: 2,
        memory: 1 << 30,
    };

    fn files(spec: &str) -> Result<Vec<(String, String, u32)>, String> {
        let p = pod(spec);
        let v = p.spec().volumes.as_ref().unwrap()[0].clone();
        let out = payload(&p, &v, &objects(), NODE)?.unwrap();
        Ok(out
            .into_iter()
            .map(|(k, (d, m))| (k, String::from_utf8_lossy(&d).into_owned(), m))
            .collect())
    }

    fn c() -> &'static str {
        "  containers: [{name: a, image: b, resources: {limits: {memory: 64Mi}}}]\n"
    }

    #[test]
    fn config_map_and_secret_files() {
        let all = files(&format!(
            "  volumes: [{{name: v, configMap: {{name: cfg}}}}]\n{}",
            c()
        ))
        .unwrap();
        assert_eq!(
            all,
            [
                ("blob".into(), "\u{0}\u{1}".into(), 0o644),
                ("game.properties".into(), "lives=3".into(), 0o644),
                ("ui".into(), "dark".into(), 0o644),
            ]
        );
        let items = files(&format!(
            "  volumes: [{{name: v, configMap: {{name: cfg, defaultMode: 0400, items: [{{key: ui, path: conf/ui.txt}}, {{key: game.properties, path: g, mode: 0600}}]}}}}]\n{}",
            c()
        ))
        .unwrap();
        assert_eq!(
            items,
            [
                ("conf/ui.txt".into(), "dark".into(), 0o400),
                ("g".into(), "lives=3".into(), 0o600)
            ]
        );
        assert_eq!(
            files(&format!(
                "  volumes: [{{name: v, secret: {{secretName: sec}}}}]\n{}",
                c()
            ))
            .unwrap(),
            [("password".into(), "secret".into(), 0o644)]
        );
        assert_eq!(
            files(&format!(
                "  volumes: [{{name: v, secret: {{secretName: nope}}}}]\n{}",
                c()
            ))
            .unwrap_err(),
            "secret \"nope\" not found"
        );
        assert!(
            files(&format!(
                "  volumes: [{{name: v, secret: {{secretName: nope, optional: true}}}}]\n{}",
                c()
            ))
            .unwrap()
            .is_empty()
        );
        assert_eq!(
            files(&format!("  volumes: [{{name: v, configMap: {{name: cfg, items: [{{key: nope, path: x}}]}}}}]\n{}", c())).unwrap_err(),
            "configmap references non-existent config key: nope"
        );
    }

    #[test]
    fn downward_and_projected_files() {
        let spec = format!(
            "  volumes:\n  - name: v\n    projected:\n      sources:\n      - downwardAPI: {{items: [{{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}, {{path: name, fieldRef: {{fieldPath: metadata.name}}}}, {{path: mem, resourceFieldRef: {{containerName: a, resource: limits.memory}}}}]}}\n      - configMap: {{name: cfg, items: [{{key: ui, path: ui}}]}}\n{}",
            c()
        );
        let mut p = pod(&spec);
        let mut raw = p.pod().clone();
        raw.metadata.labels =
            Some([("app".into(), "web".into()), ("tier".into(), "a\"b".into())].into());
        p = DefaultedPod::new(raw);
        let v = p.spec().volumes.as_ref().unwrap()[0].clone();
        let out = payload(&p, &v, &objects(), NODE).unwrap().unwrap();
        let text = |k: &str| String::from_utf8_lossy(&out[k].0).into_owned();
        assert_eq!(text("labels"), "app=\"web\"\ntier=\"a\\\"b\"");
        assert_eq!(text("name"), "web");
        assert_eq!(text("mem"), "67108864");
        assert_eq!(text("ui"), "dark");
    }

    #[test]
    fn atomic_writes_swap_the_data_link() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join("vol");
        let mut p = Payload::new();
        p.insert("a".into(), (b"1".to_vec(), 0o644));
        p.insert("d/b".into(), (b"2".to_vec(), 0o600));
        assert!(write_atomic(&v, &p).unwrap());
        assert!(
            !write_atomic(&v, &p).unwrap(),
            "unchanged payload, nothing written"
        );
        assert_eq!(std::fs::read_to_string(v.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(v.join("d/b")).unwrap(), "2");
        assert_eq!(
            std::fs::read_link(v.join("a")).unwrap(),
            Path::new("..data/a")
        );
        let first = std::fs::read_link(v.join("..data")).unwrap();
        p.remove("d/b");
        p.insert("a".into(), (b"3".to_vec(), 0o644));
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(write_atomic(&v, &p).unwrap());
        assert_eq!(std::fs::read_to_string(v.join("a")).unwrap(), "3");
        assert!(!v.join("d").exists(), "a name no longer given is gone");
        assert!(!v.join(&first).exists(), "the old data is gone");
        let names: Vec<String> = std::fs::read_dir(&v)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("..2"))
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, ["..data", "a"]);
    }
}
