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
        "  restartPolicy: Sometimes\n  securityContext: {supplementalGroupsPolicy: Loose}\n  initContainers: [{name: i, image: busybox, livenessProbe: {exec: {command: ['true']}}}]\n  containers: [{name: a, image: busybox, ports: [{containerPort: 70000}]}]\n",
    );
    assert_eq!(
        e,
        [
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            "spec.securityContext.supplementalGroupsPolicy: Unsupported value: \"Loose\": supported values: \"Merge\", \"Strict\"",
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

#[test]
fn fields_peapod_does_not_implement_are_refused() {
    let e = errors(
        "  hostUsers: false\n  runtimeClassName: kata\n  readinessGates: [{conditionType: x}]\n  setHostnameAsFQDN: true\n  ephemeralContainers: [{name: dbg, image: busybox}]\n  containers:\n  - name: a\n    image: busybox\n    envFrom: [{configMapRef: {name: cm}}]\n    volumeMounts: [{name: v, mountPath: /v, subPathExpr: $(POD), readOnly: true, recursiveReadOnly: Enabled}]\n  volumes: [{name: v, emptyDir: {}}]\n",
    );
    assert_eq!(
        e,
        [
            "spec.ephemeralContainers: Forbidden: cannot be set on create",
            "spec.hostUsers: Forbidden: user namespaces (hostUsers: false) are not supported by peapod",
            "spec.runtimeClassName: Forbidden: runtime classes are not supported by peapod",
            "spec.readinessGates: Forbidden: readiness gates are not supported by peapod",
            "spec.setHostnameAsFQDN: Forbidden: setHostnameAsFQDN is not supported by peapod",
            "spec.containers[0].envFrom: Forbidden: envFrom is not supported by peapod",
            "spec.containers[0].volumeMounts[0].subPathExpr: Forbidden: subPathExpr is not supported by peapod",
        ]
    );
    // What only a scheduler or an API server acts on is accepted.
    assert!(errors(
        "  tolerations: [{operator: Exists}]\n  priorityClassName: high\n  serviceAccountName: sa\n  securityContext: {seLinuxOptions: {level: 's0:c1'}, supplementalGroupsPolicy: Merge}\n  containers: [{name: a, image: busybox, securityContext: {procMount: Default}}]\n"
    )
    .is_empty());
    assert_eq!(
        errors(
            "  containers: [{name: a, image: busybox, securityContext: {procMount: Unmasked}}]\n"
        ),
        [
            "spec.containers[0].securityContext.procMount: Invalid value: \"Unmasked\": `hostUsers` must be false to use `Unmasked`"
        ]
    );
}

#[test]
fn sysctls_safe_unsafe_and_namespaced() {
    let e = errors(
        "  hostNetwork: true\n  securityContext:\n    sysctls: [{name: kernel.shm_rmid_forced, value: '1'}, {name: kernel.msgmax, value: '1'}, {name: net.ipv4.tcp_syncookies, value: '1'}, {name: 'Bad!', value: '1'}, {name: kernel/shm_rmid_forced, value: '0'}]\n  containers: [{name: a, image: busybox}]\n",
    );
    assert_eq!(
        e,
        [
            "spec.securityContext.sysctls[1].name: Forbidden: forbidden sysctl: \"kernel.msgmax\" not allowlisted (peapod allows the kubelet's safe sysctls only)",
            "spec.securityContext.sysctls[2].name: Forbidden: \"net.ipv4.tcp_syncookies\" not allowed with host net enabled",
            "spec.securityContext.sysctls[3].name: Invalid value: \"Bad!\": must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$",
            "spec.securityContext.sysctls[4].name: Duplicate value: \"kernel/shm_rmid_forced\"",
        ]
    );
}

#[test]
fn recursive_read_only_mounts() {
    let e = errors(
        "  volumes: [{name: v, emptyDir: {}}]\n  containers:\n  - name: a\n    image: busybox\n    volumeMounts: [{name: v, mountPath: /a, recursiveReadOnly: Enabled}, {name: v, mountPath: /b, readOnly: true, recursiveReadOnly: IfPossible, mountPropagation: HostToContainer}, {name: v, mountPath: /c, readOnly: true, recursiveReadOnly: Always}, {name: v, mountPath: /d, readOnly: true, recursiveReadOnly: Enabled}]\n",
    );
    assert_eq!(
        e,
        [
            "spec.containers[0].volumeMounts[0].recursiveReadOnly: Forbidden: may only be specified when readOnly is true",
            "spec.containers[0].volumeMounts[1].recursiveReadOnly: Forbidden: may only be specified when mountPropagation is None or not specified",
            "spec.containers[0].volumeMounts[2].recursiveReadOnly: Unsupported value: \"Always\": supported values: \"Disabled\", \"IfPossible\", \"Enabled\"",
        ]
    );
}
