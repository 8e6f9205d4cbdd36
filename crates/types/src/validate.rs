//! The API server's validation of a pod (`pkg/apis/core/validation`), for the fields peapod
//! runs. Every problem is reported, each by field path, in the API server's words.

use std::collections::{BTreeMap, HashSet};

use crate::api::{Container, Pod, PodSpec, Probe, Volume};
use crate::field::FieldError;

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
pub(crate) const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// Field paths supported in `env[].valueFrom.fieldRef.fieldPath`.
pub const FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// `metadata.labels['KEY']` or `metadata.annotations['KEY']` → (the map's path, KEY).
pub fn field_subscript(path: &str) -> Option<(&'static str, &str)> {
    ["metadata.labels", "metadata.annotations"]
        .into_iter()
        .find_map(|prefix| {
            let key = path
                .strip_prefix(prefix)?
                .strip_prefix("['")?
                .strip_suffix("']")?;
            Some((prefix, key))
        })
}

/// `IsEnvVarName` as relaxed in Kubernetes 1.32: printable ASCII other than `=`.
pub fn is_env_var_name(s: &str) -> bool {
    !s.is_empty() && !s.contains('=') && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Whether `s` is a DNS-1123 label.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `s` is a DNS-1123 subdomain.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn label(path: &str, value: &str, errs: &mut Vec<FieldError>) {
    if value.len() > 63 {
        errs.push(FieldError::invalid(
            path,
            value,
            "must be no more than 63 characters",
        ));
    } else if !is_dns1123_label(value) {
        errs.push(FieldError::invalid(path, value, LABEL_MSG));
    }
}

fn one_of(path: &str, value: Option<&str>, allowed: &[&str], errs: &mut Vec<FieldError>) {
    if let Some(v) = value
        && !allowed.contains(&v)
    {
        errs.push(FieldError::not_supported(path, v, allowed));
    }
}

/// The API server's warnings for a pod as given (before defaults): accepted, but probably
/// not what was meant.
pub fn warnings(pod: &Pod) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(g) = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        && g < 0
    {
        out.push("spec.terminationGracePeriodSeconds: must be >= 0; negative values are invalid and will be treated as 1".to_string());
    }
    out
}

/// Validates a (defaulted) pod; an empty list means it is valid.
pub fn pod(pod: &Pod) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let m = &pod.metadata;
    match (m.name.as_deref(), m.generate_name.as_deref()) {
        (None | Some(""), None | Some("")) => errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        (Some(n), _) if !n.is_empty() => {
            if n.len() > 253 {
                errs.push(FieldError::invalid(
                    "metadata.name",
                    n,
                    "must be no more than 253 characters",
                ));
            } else if !is_dns1123_subdomain(n) {
                errs.push(FieldError::invalid("metadata.name", n, SUBDOMAIN_MSG));
            }
        }
        _ => {}
    }
    if let Some(ns) = m.namespace.as_deref() {
        label("metadata.namespace", ns, &mut errs);
    }
    if let Some(l) = &m.labels {
        crate::names::labels("metadata.labels", l, &mut errs);
    }
    if let Some(a) = &m.annotations {
        crate::names::annotations("metadata.annotations", a, &mut errs);
    }
    match &pod.spec {
        Some(spec) => self::spec(spec, &mut errs),
        None => errs.push(FieldError::required("spec", "")),
    }
    errs
}

fn spec(spec: &PodSpec, errs: &mut Vec<FieldError>) {
    one_of(
        "spec.restartPolicy",
        spec.restart_policy.as_deref(),
        &["Always", "OnFailure", "Never"],
        errs,
    );
    one_of(
        "spec.securityContext.supplementalGroupsPolicy",
        spec.security_context
            .as_ref()
            .and_then(|s| s.supplemental_groups_policy.as_deref()),
        &["Merge", "Strict"],
        errs,
    );
    one_of(
        "spec.securityContext.fsGroupChangePolicy",
        spec.security_context
            .as_ref()
            .and_then(|s| s.fs_group_change_policy.as_deref()),
        &["Always", "OnRootMismatch"],
        errs,
    );
    one_of(
        "spec.dnsPolicy",
        spec.dns_policy.as_deref(),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        errs,
    );
    if let Some(d) = spec.active_deadline_seconds
        && d <= 0
    {
        errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            d,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    if let Some(h) = spec.hostname.as_deref() {
        label("spec.hostname", h, errs);
    }
    if let Some(s) = spec.subdomain.as_deref() {
        label("spec.subdomain", s, errs);
    }
    if spec.dns_policy.as_deref() == Some("None") && spec.dns_config.is_none() {
        errs.push(FieldError::required(
            "spec.dnsConfig",
            "must provide `dnsConfig` when `dnsPolicy` is None",
        ));
    }
    tolerations(spec, errs);
    if spec.host_pid == Some(true) && spec.share_process_namespace == Some(true) {
        errs.push(FieldError::invalid(
            "spec.securityContext.shareProcessNamespace",
            "true",
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }

    if let Some(sc) = &spec.security_context {
        profiles(
            "spec.securityContext",
            sc.seccomp_profile
                .as_ref()
                .map(|p| (p.type_.as_str(), p.localhost_profile.as_deref())),
            sc.app_armor_profile
                .as_ref()
                .map(|p| (p.type_.as_str(), p.localhost_profile.as_deref())),
            errs,
        );
    }

    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        errs.push(FieldError::forbidden(
            "spec.ephemeralContainers",
            "cannot be set on create",
        ));
    }
    sysctls(spec, errs);
    unsupported(spec, errs);

    let volumes = volumes(spec.volumes.as_deref().unwrap_or_default(), errs);

    if spec.containers.is_empty() {
        errs.push(FieldError::required("spec.containers", ""));
    }
    let mut names = HashSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let path = format!("spec.containers[{i}]");
        container(&path, c, &volumes, &mut names, spec, errs);
        if c.restart_policy.is_some() {
            errs.push(FieldError::forbidden(
                format!("{path}.restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let path = format!("spec.initContainers[{i}]");
        container(&path, c, &volumes, &mut names, spec, errs);
        let sidecar = c.restart_policy.as_deref() == Some("Always");
        if let Some(rp) = c.restart_policy.as_deref()
            && !sidecar
        {
            errs.push(FieldError::not_supported(
                format!("{path}.restartPolicy"),
                rp,
                &["Always"],
            ));
        }
        if !sidecar {
            for (field, set) in [
                ("lifecycle", c.lifecycle.is_some()),
                ("livenessProbe", c.liveness_probe.is_some()),
                ("readinessProbe", c.readiness_probe.is_some()),
                ("startupProbe", c.startup_probe.is_some()),
            ] {
                if set {
                    errs.push(FieldError::forbidden(
                        format!("{path}.{field}"),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
}

/// Validates a security context's `seccompProfile` and `appArmorProfile` (type, then
/// localhost profile), each given as (type, localhostProfile).
fn profiles(
    path: &str,
    seccomp: Option<(&str, Option<&str>)>,
    apparmor: Option<(&str, Option<&str>)>,
    errs: &mut Vec<FieldError>,
) {
    for (field, kind, profile) in [
        ("seccompProfile", "seccomp", seccomp),
        ("appArmorProfile", "AppArmor", apparmor),
    ] {
        let Some((typ, local)) = profile else {
            continue;
        };
        let p = format!("{path}.{field}");
        one_of(
            &format!("{p}.type"),
            Some(typ),
            &["Localhost", "RuntimeDefault", "Unconfined"],
            errs,
        );
        let lp = format!("{p}.localhostProfile");
        match (typ, local) {
            ("Localhost", None) => errs.push(FieldError::required(
                lp,
                format!("must be set when {kind} type is Localhost"),
            )),
            ("Localhost", Some("")) if kind == "AppArmor" => errs.push(FieldError::invalid(
                lp,
                "",
                "must be set when AppArmor type is Localhost",
            )),
            ("Localhost", Some(l)) if kind == "seccomp" => {
                if l.starts_with('/') {
                    errs.push(FieldError::invalid(lp, l, "must be a relative path"));
                } else if l.split('/').any(|c| c == "..") {
                    errs.push(FieldError::invalid(lp, l, "must not contain '..'"));
                }
            }
            (_, Some(l)) if typ != "Localhost" => errs.push(FieldError::invalid(
                lp,
                l,
                format!("can only be set when {kind} type is Localhost"),
            )),
            _ => {}
        }
    }
}

/// The sysctls the kubelet allows without `allowedUnsafeSysctls`: namespaced, and unable
/// to affect other pods.
pub const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// Validates `securityContext.sysctls`: names as the API server checks them, then the
/// kubelet's safe set and its namespace rules (unsafe ones are refused: peapod has no
/// `allowedUnsafeSysctls`).
fn sysctls(spec: &PodSpec, errs: &mut Vec<FieldError>) {
    let Some(list) = spec
        .security_context
        .as_ref()
        .and_then(|s| s.sysctls.as_ref())
    else {
        return;
    };
    let mut seen = HashSet::new();
    for (i, s) in list.iter().enumerate() {
        let path = format!("spec.securityContext.sysctls[{i}]");
        let valid = !s.name.is_empty()
            && s.name.len() <= 253
            && s.name.split(['.', '/']).all(|part| {
                !part.is_empty()
                    && part.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
                    })
            });
        if !valid {
            errs.push(FieldError::invalid(
                format!("{path}.name"),
                &s.name,
                "must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$",
            ));
            continue;
        }
        if !seen.insert(s.name.replace('/', ".")) {
            errs.push(FieldError::duplicate(format!("{path}.name"), &s.name));
            continue;
        }
        let name = s.name.replace('/', ".");
        if !SAFE_SYSCTLS.contains(&name.as_str()) {
            errs.push(FieldError::forbidden(
                format!("{path}.name"),
                format!("forbidden sysctl: {name:?} not allowlisted (peapod allows the kubelet's safe sysctls only)"),
            ));
        } else if name.starts_with("net.") && spec.host_network == Some(true) {
            errs.push(FieldError::forbidden(
                format!("{path}.name"),
                format!("{name:?} not allowed with host net enabled"),
            ));
        } else if name.starts_with("kernel.shm") && spec.host_ipc == Some(true) {
            errs.push(FieldError::forbidden(
                format!("{path}.name"),
                format!("{name:?} not allowed with host ipc enabled"),
            ));
        }
    }
}

const NOT_SUPPORTED: &str = "not supported by peapod";

/// Fields peapod does not implement, refused rather than ignored. Fields that only the
/// scheduler or an API server acts on (tolerations, priority, topology spread, service
/// accounts) and those for hosts peapod is not on (SELinux, Windows) are accepted, as a
/// kubelet on such a node would.
fn unsupported(spec: &PodSpec, errs: &mut Vec<FieldError>) {
    let mut out = Vec::new();
    let mut refuse = |path: String, what: &str| {
        out.push(FieldError::forbidden(
            path,
            format!("{what} {NOT_SUPPORTED}"),
        ))
    };
    // The API server's validateHostUsers: a pod's own user namespace goes with its own
    // network, PID and IPC namespaces (its field names as it spells them).
    if spec.host_users == Some(false) {
        for (on, field) in [
            (spec.host_network, "spec.hostNetwork"),
            (spec.host_pid, "spec.HostPID"),
            (spec.host_ipc, "spec.HostIPC"),
        ] {
            if on == Some(true) {
                errs.push(FieldError::forbidden(field, "when `hostUsers` is false"));
            }
        }
    }
    if spec
        .runtime_class_name
        .as_deref()
        .is_some_and(|r| !r.is_empty())
    {
        refuse("spec.runtimeClassName".into(), "runtime classes are");
    }
    if spec.readiness_gates.as_ref().is_some_and(|g| !g.is_empty()) {
        refuse("spec.readinessGates".into(), "readiness gates are");
    }
    if spec.resources.is_some() {
        refuse(
            "spec.resources".into(),
            "pod-level resources (an alpha feature in Kubernetes 1.33) are",
        );
    }
    if spec.resource_claims.as_ref().is_some_and(|c| !c.is_empty()) {
        refuse("spec.resourceClaims".into(), "dynamic resource claims are");
    }
    if spec.set_hostname_as_fqdn == Some(true) {
        refuse("spec.setHostnameAsFQDN".into(), "setHostnameAsFQDN is");
    }
    let all = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (format!("spec.initContainers[{i}]"), c))
        .chain(
            spec.containers
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("spec.containers[{i}]"), c)),
        );
    for (path, c) in all {
        if c.volume_devices.as_ref().is_some_and(|d| !d.is_empty()) {
            refuse(format!("{path}.volumeDevices"), "block volumes are");
        }
        if c.resources
            .as_ref()
            .and_then(|r| r.claims.as_ref())
            .is_some_and(|cl| !cl.is_empty())
        {
            refuse(
                format!("{path}.resources.claims"),
                "dynamic resource claims are",
            );
        }
        let pm = c
            .security_context
            .as_ref()
            .and_then(|s| s.proc_mount.as_deref());
        if pm == Some("Unmasked") && spec.host_users != Some(false) {
            errs.push(FieldError::invalid(
                format!("{path}.securityContext.procMount"),
                "Unmasked",
                "`hostUsers` must be false to use `Unmasked`",
            ));
        }
    }
    errs.extend(out);
}

/// The volume types peapod sets up.
const SUPPORTED_VOLUMES: &[&str] = &[
    "emptyDir",
    "hostPath",
    "configMap",
    "secret",
    "downwardAPI",
    "projected",
    "persistentVolumeClaim",
];

/// `items`, modes and sources of the volumes made from objects.
fn projections(path: &str, v: &Volume, errs: &mut Vec<FieldError>) {
    let mode = |p: String, m: Option<i32>, errs: &mut Vec<FieldError>| {
        if let Some(m) = m
            && !(0..=0o777).contains(&m)
        {
            errs.push(FieldError::invalid(
                p,
                m,
                "must be a number between 0 and 0777 (octal), both inclusive",
            ));
        }
    };
    let item_path = |p: String, rel: &str, errs: &mut Vec<FieldError>| {
        if rel.is_empty() {
            errs.push(FieldError::required(p, ""));
        } else if rel.starts_with('/') {
            errs.push(FieldError::invalid(p, rel, "must be a relative path"));
        } else if rel.split('/').any(|c| c == "..") {
            errs.push(FieldError::invalid(p, rel, "must not contain '..'"));
        } else if rel.starts_with("..") {
            errs.push(FieldError::invalid(p, rel, "must not start with '..'"));
        }
    };
    let items = |p: &str, list: Option<&Vec<crate::api::KeyToPath>>, errs: &mut Vec<FieldError>| {
        for (i, it) in list.into_iter().flatten().enumerate() {
            if it.key.is_empty() {
                errs.push(FieldError::required(format!("{p}.items[{i}].key"), ""));
            }
            item_path(format!("{p}.items[{i}].path"), &it.path, errs);
            mode(format!("{p}.items[{i}].mode"), it.mode, errs);
        }
    };
    let downward = |p: &str,
                    list: Option<&Vec<crate::api::DownwardAPIVolumeFile>>,
                    errs: &mut Vec<FieldError>| {
        for (i, it) in list.into_iter().flatten().enumerate() {
            item_path(format!("{p}.items[{i}].path"), &it.path, errs);
            mode(format!("{p}.items[{i}].mode"), it.mode, errs);
            if let Some(f) = &it.field_ref {
                let ok = [
                    "metadata.name",
                    "metadata.namespace",
                    "metadata.uid",
                    "metadata.labels",
                    "metadata.annotations",
                ]
                .contains(&f.field_path.as_str())
                    || field_subscript(&f.field_path).is_some();
                if !ok {
                    errs.push(FieldError::not_supported(
                        format!("{p}.items[{i}].fieldRef.fieldPath"),
                        f.field_path.as_str(),
                        &[
                            "metadata.annotations",
                            "metadata.labels",
                            "metadata.name",
                            "metadata.namespace",
                            "metadata.uid",
                        ],
                    ));
                }
            }
        }
    };
    if let Some(c) = &v.config_map {
        items(&format!("{path}.configMap"), c.items.as_ref(), errs);
        mode(
            format!("{path}.configMap.defaultMode"),
            c.default_mode,
            errs,
        );
    }
    if let Some(s) = &v.secret {
        items(&format!("{path}.secret"), s.items.as_ref(), errs);
        mode(format!("{path}.secret.defaultMode"), s.default_mode, errs);
    }
    if let Some(d) = &v.downward_api {
        downward(&format!("{path}.downwardAPI"), d.items.as_ref(), errs);
        mode(
            format!("{path}.downwardAPI.defaultMode"),
            d.default_mode,
            errs,
        );
    }
    if let Some(pr) = &v.projected {
        mode(
            format!("{path}.projected.defaultMode"),
            pr.default_mode,
            errs,
        );
        for (i, src) in pr.sources.iter().flatten().enumerate() {
            let sp = format!("{path}.projected.sources[{i}]");
            if let Some(c) = &src.config_map {
                items(&format!("{sp}.configMap"), c.items.as_ref(), errs);
            }
            if let Some(s) = &src.secret {
                items(&format!("{sp}.secret"), s.items.as_ref(), errs);
            }
            if let Some(d) = &src.downward_api {
                downward(&format!("{sp}.downwardAPI"), d.items.as_ref(), errs);
            }
            if src.service_account_token.is_some() {
                errs.push(FieldError::forbidden(
                    format!("{sp}.serviceAccountToken"),
                    format!("service account tokens are {NOT_SUPPORTED} (there is no API server to issue them)"),
                ));
            }
            if src.cluster_trust_bundle.is_some() {
                errs.push(FieldError::forbidden(
                    format!("{sp}.clusterTrustBundle"),
                    format!("cluster trust bundles are {NOT_SUPPORTED} (there is no API server to hold them)"),
                ));
            }
        }
    }
}

/// Validates the volumes; returns the declared names.
fn volumes(vols: &[Volume], errs: &mut Vec<FieldError>) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, v) in vols.iter().enumerate() {
        let path = format!("spec.volumes[{i}]");
        if v.name.is_empty() {
            errs.push(FieldError::required(format!("{path}.name"), ""));
        } else {
            label(&format!("{path}.name"), &v.name, errs);
            if !names.insert(v.name.clone()) {
                errs.push(FieldError::duplicate(format!("{path}.name"), &v.name));
            }
        }
        // Which sources are set: every key of the serialized volume except `name`.
        let sources: Vec<String> = match serde_json::to_value(v) {
            Ok(serde_json::Value::Object(map)) => map
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| k != "name")
                .collect(),
            _ => Vec::new(),
        };
        match sources.as_slice() {
            [] => errs.push(FieldError::required(
                path.clone(),
                "must specify a volume type",
            )),
            [one] if SUPPORTED_VOLUMES.contains(&one.as_str()) => {}
            [one] => errs.push(FieldError::forbidden(
                format!("{path}.{one}"),
                format!(
                    "this volume type is not supported by peapod (supported: {})",
                    SUPPORTED_VOLUMES.join(", ")
                ),
            )),
            [_, second, ..] => errs.push(FieldError::forbidden(
                format!("{path}.{second}"),
                "may not specify more than 1 volume type",
            )),
        }
        if let Some(ed) = &v.empty_dir {
            one_of(
                &format!("{path}.emptyDir.medium"),
                ed.medium.as_deref().filter(|m| !m.is_empty()),
                &["", "Memory"],
                errs,
            );
            if let Some(q) = &ed.size_limit
                && crate::quantity::parse(&q.0).is_none()
            {
                errs.push(FieldError::invalid(
                    format!("{path}.emptyDir.sizeLimit"),
                    &q.0,
                    "must be a quantity",
                ));
            }
        }
        projections(&path, v, errs);
        if let Some(c) = &v.persistent_volume_claim
            && c.claim_name.is_empty()
        {
            errs.push(FieldError::required(
                format!("{path}.persistentVolumeClaim.claimName"),
                "",
            ));
        }
        if let Some(hp) = &v.host_path {
            if hp.path.is_empty() {
                errs.push(FieldError::required(format!("{path}.hostPath.path"), ""));
            } else if hp.path.split('/').any(|c| c == "..") {
                errs.push(FieldError::invalid(
                    format!("{path}.hostPath.path"),
                    &hp.path,
                    "must not contain '..'",
                ));
            }
            one_of(
                &format!("{path}.hostPath.type"),
                hp.type_.as_deref(),
                &[
                    "",
                    "DirectoryOrCreate",
                    "Directory",
                    "FileOrCreate",
                    "File",
                    "Socket",
                    "CharDevice",
                    "BlockDevice",
                ],
                errs,
            );
        }
    }
    names
}

fn container(
    path: &str,
    c: &Container,
    volumes: &HashSet<String>,
    names: &mut HashSet<String>,
    spec: &PodSpec,
    errs: &mut Vec<FieldError>,
) {
    if c.name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else {
        label(&format!("{path}.name"), &c.name, errs);
        if !names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(format!("{path}.name"), &c.name));
        }
    }
    match c.image.as_deref() {
        None | Some("") => errs.push(FieldError::required(format!("{path}.image"), "")),
        Some(i) if i.trim() != i => errs.push(FieldError::invalid(
            format!("{path}.image"),
            i,
            "must not have leading or trailing whitespace",
        )),
        _ => {}
    }
    one_of(
        &format!("{path}.imagePullPolicy"),
        c.image_pull_policy.as_deref(),
        &["Always", "IfNotPresent", "Never"],
        errs,
    );
    one_of(
        &format!("{path}.terminationMessagePolicy"),
        c.termination_message_policy.as_deref(),
        &["File", "FallbackToLogsOnError"],
        errs,
    );
    if let Some(sc) = &c.security_context {
        profiles(
            &format!("{path}.securityContext"),
            sc.seccomp_profile
                .as_ref()
                .map(|p| (p.type_.as_str(), p.localhost_profile.as_deref())),
            sc.app_armor_profile
                .as_ref()
                .map(|p| (p.type_.as_str(), p.localhost_profile.as_deref())),
            errs,
        );
    }
    if let Some(t) = c.termination_message_path.as_deref()
        && !t.starts_with('/')
    {
        errs.push(FieldError::invalid(
            format!("{path}.terminationMessagePath"),
            t,
            "must be an absolute path",
        ));
    }

    if let Some(r) = &c.resources {
        resources(&format!("{path}.resources"), r, errs);
    }
    if let Some(l) = &c.lifecycle {
        for (field, h) in [("postStart", &l.post_start), ("preStop", &l.pre_stop)] {
            if let Some(h) = h {
                handler(
                    &format!("{path}.lifecycle.{field}"),
                    &[
                        ("exec", h.exec.is_some()),
                        ("httpGet", h.http_get.is_some()),
                        ("tcpSocket", h.tcp_socket.is_some()),
                        ("sleep", h.sleep.is_some()),
                    ],
                    errs,
                );
            }
        }
    }
    let mut port_names = HashSet::new();
    for (i, p) in c.ports.iter().flatten().enumerate() {
        let pp = format!("{path}.ports[{i}]");
        if p.container_port == 0 {
            errs.push(FieldError::required(format!("{pp}.containerPort"), ""));
        } else if !(1..=65535).contains(&p.container_port) {
            errs.push(FieldError::invalid(
                format!("{pp}.containerPort"),
                p.container_port,
                "must be between 1 and 65535, inclusive",
            ));
        }
        if let Some(h) = p.host_port
            && !(0..=65535).contains(&h)
        {
            errs.push(FieldError::invalid(
                format!("{pp}.hostPort"),
                h,
                "must be between 1 and 65535, inclusive",
            ));
        }
        if spec.host_network == Some(true)
            && let Some(h) = p.host_port
            && h != 0
            && h != p.container_port
        {
            errs.push(FieldError::invalid(
                format!("{pp}.hostPort"),
                h,
                "must match `containerPort` when `hostNetwork` is true",
            ));
        }
        one_of(
            &format!("{pp}.protocol"),
            p.protocol.as_deref(),
            &["SCTP", "TCP", "UDP"],
            errs,
        );
        if let Some(n) = p.name.as_deref() {
            let problems = port_name(n);
            for msg in &problems {
                errs.push(FieldError::invalid(format!("{pp}.name"), n, msg.as_str()));
            }
            if problems.is_empty() && !port_names.insert(n.to_string()) {
                errs.push(FieldError::duplicate(format!("{pp}.name"), n));
            }
        }
    }

    for (i, e) in c.env.iter().flatten().enumerate() {
        let ep = format!("{path}.env[{i}]");
        if e.name.is_empty() {
            errs.push(FieldError::required(format!("{ep}.name"), ""));
        } else if !is_env_var_name(&e.name) {
            errs.push(FieldError::invalid(
                format!("{ep}.name"),
                &e.name,
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
        if let Some(vf) = &e.value_from {
            if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
                errs.push(FieldError::invalid(
                    format!("{ep}.valueFrom"),
                    "",
                    "may not be specified when `value` is not empty",
                ));
            }
            let n = [
                vf.field_ref.is_some(),
                vf.resource_field_ref.is_some(),
                vf.config_map_key_ref.is_some(),
                vf.secret_key_ref.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if n != 1 {
                errs.push(FieldError::invalid(
                    format!("{ep}.valueFrom"),
                    (),
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                ));
            }
            if let Some(f) = &vf.field_ref {
                field_path(
                    &format!("{ep}.valueFrom.fieldRef.fieldPath"),
                    &f.field_path,
                    errs,
                );
            }
        }
    }

    for (i, src) in c.env_from.iter().flatten().enumerate() {
        let ep = format!("{path}.envFrom[{i}]");
        let refs = [
            src.config_map_ref
                .as_ref()
                .map(|r| ("configMapRef", r.name.as_str())),
            src.secret_ref
                .as_ref()
                .map(|r| ("secretRef", r.name.as_str())),
        ];
        let given: Vec<(&str, &str)> = refs.into_iter().flatten().collect();
        match given.as_slice() {
            [(field, "")] => errs.push(FieldError::required(format!("{ep}.{field}.name"), "")),
            [_] => {}
            [] => errs.push(FieldError::invalid(
                ep.clone(),
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            )),
            _ => errs.push(FieldError::invalid(
                ep.clone(),
                "",
                "may not have more than one field specified at a time",
            )),
        }
        if let Some(p) = src.prefix.as_deref().filter(|p| !p.is_empty())
            && !is_env_var_name(p)
        {
            errs.push(FieldError::invalid(
                format!("{ep}.prefix"),
                p,
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
    }

    let mut mount_paths = HashSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = format!("{path}.volumeMounts[{i}]");
        if m.name.is_empty() {
            errs.push(FieldError::required(format!("{mp}.name"), ""));
        } else if !volumes.contains(&m.name) {
            errs.push(FieldError::new(
                format!("{mp}.name"),
                crate::field::ErrorKind::NotFound,
                &m.name,
                "",
            ));
        }
        // Relative (or Windows) paths pass here, as in the API server; the runtime refuses
        // them when it creates the container.
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(format!("{mp}.mountPath"), ""));
        } else if !mount_paths.insert(m.mount_path.clone()) {
            errs.push(FieldError::invalid(
                format!("{mp}.mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
        let sub_path = m.sub_path.as_deref().filter(|s| !s.is_empty());
        let sub_path_expr = m.sub_path_expr.as_deref().filter(|s| !s.is_empty());
        if let (Some(_), Some(e)) = (sub_path, sub_path_expr) {
            errs.push(FieldError::invalid(
                format!("{mp}.subPathExpr"),
                e,
                "subPathExpr and subPath are mutually exclusive",
            ));
        }
        for (field, value) in [("subPath", sub_path), ("subPathExpr", sub_path_expr)] {
            let Some(sp) = value else { continue };
            if sp.starts_with('/') {
                errs.push(FieldError::invalid(
                    format!("{mp}.{field}"),
                    sp,
                    "must be a relative path",
                ));
            } else if sp.split('/').any(|c| c == "..") {
                errs.push(FieldError::invalid(
                    format!("{mp}.{field}"),
                    sp,
                    "must not contain '..'",
                ));
            }
        }
        if let Some(r) = m.recursive_read_only.as_deref() {
            let rp = format!("{mp}.recursiveReadOnly");
            if !["Disabled", "IfPossible", "Enabled"].contains(&r) {
                errs.push(FieldError::not_supported(
                    rp,
                    r,
                    &["Disabled", "IfPossible", "Enabled"],
                ));
            } else if r != "Disabled" && m.read_only != Some(true) {
                errs.push(FieldError::forbidden(
                    rp,
                    "may only be specified when readOnly is true",
                ));
            } else if r != "Disabled" && m.mount_propagation.as_deref().is_some_and(|p| p != "None")
            {
                errs.push(FieldError::forbidden(
                    rp,
                    "may only be specified when mountPropagation is None or not specified",
                ));
            }
        }
        if let Some(p) = m.mount_propagation.as_deref() {
            let privileged = c
                .security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false);
            if !["Bidirectional", "HostToContainer", "None"].contains(&p) {
                errs.push(FieldError::not_supported(
                    format!("{mp}.mountPropagation"),
                    p,
                    &["Bidirectional", "HostToContainer", "None"],
                ));
            } else if p == "Bidirectional" && !privileged {
                errs.push(FieldError::forbidden(
                    format!("{mp}.mountPropagation"),
                    "Bidirectional mount propagation is available only to privileged containers",
                ));
            }
        }
    }

    for (field, probe) in [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        if let Some(p) = probe {
            self::probe(
                &format!("{path}.{field}"),
                p,
                field != "readinessProbe",
                errs,
            );
        }
    }
}

fn probe(path: &str, p: &Probe, success_must_be_one: bool, errs: &mut Vec<FieldError>) {
    handler(
        path,
        &[
            ("exec", p.exec.is_some()),
            ("httpGet", p.http_get.is_some()),
            ("tcpSocket", p.tcp_socket.is_some()),
            ("grpc", p.grpc.is_some()),
        ],
        errs,
    );
    let fields: BTreeMap<&str, Option<i32>> = [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ]
    .into_iter()
    .collect();
    for (name, v) in fields {
        if let Some(v) = v
            && v < 0
        {
            errs.push(FieldError::invalid(
                format!("{path}.{name}"),
                v,
                "must be greater than or equal to 0",
            ));
        }
    }
    if success_must_be_one
        && let Some(s) = p.success_threshold
        && s != 1
    {
        errs.push(FieldError::invalid(
            format!("{path}.successThreshold"),
            s,
            "must be 1",
        ));
    }
}

/// Exactly one handler of a probe or lifecycle hook; a second one is named by its path.
fn handler(path: &str, set: &[(&str, bool)], errs: &mut Vec<FieldError>) {
    let mut given = set.iter().filter(|(_, s)| *s).map(|(n, _)| *n);
    match (given.next(), given.next()) {
        (None, _) => errs.push(FieldError::required(path, "must specify a handler type")),
        (Some(_), Some(second)) => errs.push(FieldError::forbidden(
            format!("{path}.{second}"),
            "may not specify more than 1 handler type",
        )),
        _ => {}
    }
}

/// `IsValidPortName`: each problem separately, as the API server lists them.
fn port_name(n: &str) -> Vec<String> {
    let mut out = Vec::new();
    if n.len() > 15 {
        out.push("must be no more than 15 characters".to_string());
    }
    if n.is_empty()
        || !n
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        out.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !n.bytes().any(|b| b.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)".into());
    }
    if n.contains("--") {
        out.push("must not contain consecutive hyphens".into());
    }
    if n.starts_with('-') || n.ends_with('-') {
        out.push("must not begin or end with a hyphen".into());
    }
    out
}

/// A downward-API field path for env: one of [`FIELD_PATHS`], or a label or annotation by
/// key (`metadata.labels['app']`).
fn field_path(path: &str, value: &str, errs: &mut Vec<FieldError>) {
    match field_subscript(value) {
        Some((_, key)) => {
            for msg in crate::names::qualified_name(key) {
                errs.push(FieldError::invalid(path, key, msg));
            }
        }
        None => one_of(path, Some(value), FIELD_PATHS, errs),
    }
}

/// `spec.tolerations`, as `ValidateTolerations` checks them.
fn tolerations(spec: &PodSpec, errs: &mut Vec<FieldError>) {
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        let path = format!("spec.tolerations[{i}]");
        let key = t.key.as_deref().unwrap_or("");
        if !key.is_empty() {
            for msg in crate::names::qualified_name(key) {
                errs.push(FieldError::invalid(format!("{path}.key"), key, msg));
            }
        }
        let op = t.operator.as_deref().unwrap_or("");
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                format!("{path}.operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && t.effect.as_deref() != Some("NoExecute") {
            errs.push(FieldError::invalid(
                format!("{path}.effect"),
                t.effect.as_deref().unwrap_or(""),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        let value = t.value.as_deref().unwrap_or("");
        match op {
            "" | "Equal" => {
                for msg in crate::names::label_value(value) {
                    errs.push(FieldError::invalid(format!("{path}.operator"), value, msg));
                }
            }
            "Exists" if !value.is_empty() => errs.push(FieldError::invalid(
                format!("{path}.operator"),
                value,
                "value must be empty when `operator` is 'Exists'",
            )),
            "Exists" => {}
            // Numeric comparisons came after the release peapod follows.
            "Lt" | "Gt" => errs.push(FieldError::forbidden(
                format!("{path}.operator"),
                format!(
                    "{op:?} is not supported by this version of peapod, which follows the Kubernetes {} API (the operator is newer)",
                    crate::KUBERNETES_VERSION
                ),
            )),
            other => errs.push(FieldError::not_supported(
                format!("{path}.operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        one_of(
            &format!("{path}.effect"),
            t.effect.as_deref().filter(|e| !e.is_empty()),
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            errs,
        );
    }
}

/// A container's `resources`, as `ValidateContainerResourceRequirements` checks them.
fn resources(path: &str, r: &crate::api::ResourceRequirements, errs: &mut Vec<FieldError>) {
    use crate::quantity::parse_quantity;
    let empty = BTreeMap::new();
    let limits = r.limits.as_ref().unwrap_or(&empty);
    let requests = r.requests.as_ref().unwrap_or(&empty);
    let mut parsed_limits = BTreeMap::new();
    for (field, map) in [("limits", limits), ("requests", requests)] {
        for (name, q) in map {
            let qp = format!("{path}.{field}[{name}]");
            resource_name(&qp, name, errs);
            match parse_quantity(&q.0) {
                Err(msg) => errs.push(FieldError::invalid(&qp, q.0.as_str(), msg)),
                Ok(v) if v.nanos < 0 => errs.push(FieldError::invalid(
                    &qp,
                    q.0.as_str(),
                    "must be greater than or equal to 0",
                )),
                Ok(v) if extended(name) && v.nanos % 1_000_000_000 != 0 => {
                    errs.push(FieldError::invalid(&qp, q.0.as_str(), "must be an integer"))
                }
                Ok(v) if field == "limits" => {
                    parsed_limits.insert(name.as_str(), v);
                }
                Ok(v) => {
                    let overcommit = !name.starts_with("hugepages-") && !extended(name);
                    match parsed_limits.get(name.as_str()) {
                        Some(l) if !overcommit && v.nanos != l.nanos => {
                            errs.push(FieldError::invalid(
                                format!("{path}.requests"),
                                v.canonical(),
                                format!("must be equal to {name} limit of {}", l.canonical()),
                            ))
                        }
                        Some(l) if v.nanos > l.nanos => errs.push(FieldError::invalid(
                            format!("{path}.requests"),
                            v.canonical(),
                            format!(
                                "must be less than or equal to {name} limit of {}",
                                l.canonical()
                            ),
                        )),
                        None if !overcommit => errs.push(FieldError::required(
                            format!("{path}.limits"),
                            "Limit must be set for non overcommitable resources",
                        )),
                        _ => {}
                    }
                }
            }
        }
    }
    let any = |n: &str| limits.contains_key(n) || requests.contains_key(n);
    if limits.keys().any(|k| k.starts_with("hugepages-")) && !any("cpu") && !any("memory") {
        errs.push(FieldError::forbidden(
            format!("{path}.limits"),
            "HugePages require cpu or memory",
        ));
    }
}

/// Whether `name` is an extended resource (`example.com/gpu`): integer and not overcommitted.
fn extended(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

/// `validateContainerResourceName`.
fn resource_name(path: &str, name: &str, errs: &mut Vec<FieldError>) {
    let problems = crate::names::qualified_name(name);
    for msg in &problems {
        errs.push(FieldError::invalid(path, name, msg.as_str()));
    }
    if !problems.is_empty() {
        return;
    }
    if !name.contains('/') {
        let standard = matches!(name, "cpu" | "memory" | "ephemeral-storage")
            || name
                .strip_prefix("hugepages-")
                .is_some_and(|size| crate::quantity::parse_quantity(size).is_ok());
        if !standard {
            errs.push(FieldError::invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if extended(name)
        && !crate::names::qualified_name(&format!("requests.{name}")).is_empty()
    {
        errs.push(FieldError::invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
