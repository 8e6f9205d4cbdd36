//! Unit tests of the API server's validation rules.

use crate::manifest::load;

fn errors(spec: &str) -> Vec<String> {
    let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{spec}");
    match load(&text) {
        Ok(_) => Vec::new(),
        Err(e) => e.field_errors().iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn duplicate_names_across_init_and_app() {
    let e = errors(
        "  initContainers: [{name: a, image: busybox}, {name: app, image: busybox}]\n  containers: [{name: app, image: busybox}]\n",
    );
    assert_eq!(e, ["spec.initContainers[1].name: Duplicate value: \"app\""]);
}

#[test]
fn mounts_and_volumes() {
    let e = errors(
        "  volumes: [{name: v, emptyDir: {}}, {name: v, emptyDir: {}}]\n  containers:\n  - name: a\n    image: busybox\n    volumeMounts: [{name: v, mountPath: data}, {name: w, mountPath: /x}, {name: v, mountPath: /x/}]\n",
    );
    assert_eq!(
        e,
        [
            "spec.volumes[1].name: Duplicate value: \"v\"",
            "spec.containers[0].volumeMounts[0].mountPath: Invalid value: \"data\": must be an absolute path",
            "spec.containers[0].volumeMounts[1].name: Not found: \"w\"",
            "spec.containers[0].volumeMounts[2].mountPath: Invalid value: \"/x/\": must be unique",
        ]
    );
}

#[test]
fn enums_ports_probes() {
    let e = errors(
        "  restartPolicy: Sometimes\n  initContainers: [{name: i, image: busybox, livenessProbe: {exec: {command: ['true']}}}]\n  containers: [{name: a, image: busybox, ports: [{containerPort: 70000}]}]\n",
    );
    assert_eq!(
        e,
        [
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
        ]
    );
}

#[test]
fn names() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec: {containers: [{name: a, image: busybox}]}\n";
    let e = load(text).unwrap_err().to_string();
    assert!(e.starts_with("pod \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{e}");
    assert_eq!(
        errors("  containers: [{name: a}]\n"),
        ["spec.containers[0].image: Required value"]
    );
}

#[test]
fn seccomp_and_apparmor_profiles() {
    let e = errors(
        "  securityContext:\n    seccompProfile: {type: Localhost, localhostProfile: ../p.json}\n    appArmorProfile: {type: Strict}\n  containers:\n  - name: a\n    image: busybox\n    securityContext:\n      seccompProfile: {type: RuntimeDefault, localhostProfile: p.json}\n      appArmorProfile: {type: Localhost}\n",
    );
    assert_eq!(
        e,
        [
            "spec.securityContext.seccompProfile.localhostProfile: Invalid value: \"../p.json\": must not contain '..'",
            "spec.securityContext.appArmorProfile.type: Unsupported value: \"Strict\": supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\"",
            "spec.containers[0].securityContext.seccompProfile.localhostProfile: Invalid value: \"p.json\": can only be set when seccomp type is Localhost",
            "spec.containers[0].securityContext.appArmorProfile.localhostProfile: Required value: must be set when AppArmor type is Localhost",
        ]
    );
    assert!(errors("  securityContext:\n    seccompProfile: {type: Localhost, localhostProfile: profiles/p.json}\n  containers: [{name: a, image: busybox}]\n").is_empty());
}

#[test]
fn mount_propagation() {
    let e = errors(
        "  volumes: [{name: v, emptyDir: {}}]\n  containers:\n  - name: a\n    image: busybox\n    volumeMounts: [{name: v, mountPath: /a, mountPropagation: Bidirectional}, {name: v, mountPath: /b, mountPropagation: Shared}, {name: v, mountPath: /c, mountPropagation: HostToContainer}]\n",
    );
    assert_eq!(
        e,
        [
            "spec.containers[0].volumeMounts[0].mountPropagation: Forbidden: Bidirectional mount propagation is available only to privileged containers",
            "spec.containers[0].volumeMounts[1].mountPropagation: Unsupported value: \"Shared\": supported values: \"Bidirectional\", \"HostToContainer\", \"None\"",
        ]
    );
}
