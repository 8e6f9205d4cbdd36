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
        "  volumes: [{name: v, emptyDir: {}}, {name: v, emptyDir: {}}]\n  containers:\n  - name: a\n    image: busybox\n    volumeMounts: [{name: v, mountPath: /x}, {name: w, mountPath: /y}, {name: v, mountPath: /x}]\n",
    );
    assert_eq!(
        e,
        [
            "spec.volumes[1].name: Duplicate value: \"v\"",
            "spec.containers[0].volumeMounts[1].name: Not found: \"w\"",
            "spec.containers[0].volumeMounts[2].mountPath: Invalid value: \"/x\": must be unique",
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
        "  runtimeClassName: kata\n  readinessGates: [{conditionType: x}]\n  setHostnameAsFQDN: true\n  ephemeralContainers: [{name: dbg, image: busybox}]\n  containers:\n  - name: a\n    image: busybox\n    volumeMounts: [{name: v, mountPath: /v, readOnly: true, recursiveReadOnly: Enabled}]\n  volumes: [{name: v, emptyDir: {}}]\n",
    );
    assert_eq!(
        e,
        [
            "spec.ephemeralContainers: Forbidden: cannot be set on create",
            "spec.runtimeClassName: Forbidden: runtime classes are not supported by peapod",
            "spec.readinessGates: Forbidden: readiness gates are not supported by peapod",
            "spec.setHostnameAsFQDN: Forbidden: setHostnameAsFQDN is not supported by peapod",
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
fn fs_group_change_policy_is_one_of_its_values() {
    assert!(errors(
        "  securityContext: {fsGroup: 2000, fsGroupChangePolicy: OnRootMismatch}\n  containers: [{name: a, image: busybox}]\n"
    )
    .is_empty());
    assert_eq!(
        errors(
            "  securityContext: {fsGroupChangePolicy: Sometimes}\n  containers: [{name: a, image: busybox}]\n"
        ),
        [
            "spec.securityContext.fsGroupChangePolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnRootMismatch\""
        ]
    );
}

#[test]
fn a_pod_in_its_own_user_namespace_keeps_its_own_host_namespaces() {
    assert!(errors(
        "  hostUsers: false\n  containers: [{name: a, image: busybox, securityContext: {procMount: Unmasked}}]\n"
    )
    .is_empty());
    assert_eq!(
        errors(
            "  hostUsers: false\n  hostNetwork: true\n  hostPID: true\n  hostIPC: true\n  containers: [{name: a, image: busybox}]\n"
        ),
        [
            "spec.hostNetwork: Forbidden: when `hostUsers` is false",
            "spec.HostPID: Forbidden: when `hostUsers` is false",
            "spec.HostIPC: Forbidden: when `hostUsers` is false",
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

/// Each pod with the API server's answer for it.
#[test]
fn the_api_servers_messages() {
    let c = |extra: &str| format!("  containers:\n  - name: a\n    image: busybox\n{extra}");
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            c("    resources: {limits: {memory: 1GB}}\n"),
            vec![
                "spec.containers[0].resources.limits[memory]: Invalid value: \"1GB\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            ],
        ),
        (
            c("    resources: {limits: {cpu: 1}, requests: {cpu: 2}}\n"),
            vec![
                "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            ],
        ),
        (
            c("    resources: {limits: {memory: 1Gi}, requests: {memory: 1536Mi, cpu: 2000m}}\n"),
            vec![
                "spec.containers[0].resources.requests: Invalid value: \"1536Mi\": must be less than or equal to memory limit of 1Gi",
            ],
        ),
        (
            c("    resources: {limits: {cpus: 1}}\n"),
            // Requests are defaulted from limits first, so both are named.
            vec![
                "spec.containers[0].resources.limits[cpus]: Invalid value: \"cpus\": must be a standard resource for containers",
                "spec.containers[0].resources.requests[cpus]: Invalid value: \"cpus\": must be a standard resource for containers",
            ],
        ),
        (
            c("    resources: {requests: {example.com/gpu: 1}}\n"),
            vec![
                "spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources",
            ],
        ),
        (
            c("    resources: {limits: {example.com/gpu: 1, cpu: -1}}\n"),
            vec![
                "spec.containers[0].resources.limits[cpu]: Invalid value: \"-1\": must be greater than or equal to 0",
                "spec.containers[0].resources.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0",
            ],
        ),
        (
            c("    resources: {limits: {hugepages-2Mi: 4Mi}}\n"),
            vec!["spec.containers[0].resources.limits: Forbidden: HugePages require cpu or memory"],
        ),
        (
            c("    lifecycle: {postStart: {}}\n"),
            vec![
                "spec.containers[0].lifecycle.postStart: Required value: must specify a handler type",
            ],
        ),
        (
            c("    lifecycle: {preStop: {exec: {command: [x]}, sleep: {seconds: 1}}}\n"),
            vec![
                "spec.containers[0].lifecycle.preStop.sleep: Forbidden: may not specify more than 1 handler type",
            ],
        ),
        (
            c("    livenessProbe: {exec: {command: ['true']}, tcpSocket: {port: 80}}\n"),
            vec![
                "spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
            ],
        ),
        (
            c("    ports: [{name: HTTP, containerPort: 80}]\n"),
            vec![
                "spec.containers[0].ports[0].name: Invalid value: \"HTTP\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "spec.containers[0].ports[0].name: Invalid value: \"HTTP\": must contain at least one letter (a-z)",
            ],
        ),
        (
            c("    ports: [{hostPort: 8080}]\n"),
            vec!["spec.containers[0].ports[0].containerPort: Required value"],
        ),
        (
            c(
                "    env: [{name: X, value: a, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]\n",
            ),
            vec![
                "spec.containers[0].env[0].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
            ],
        ),
        (
            c(
                "    env: [{name: X, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['bad key']\"}}}]\n",
            ),
            vec![
                "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            ],
        ),
        (
            format!(
                "  tolerations: [{{key: k, operator: Maybe}}, {{operator: Equal}}, {{key: k, effect: NoSchedule, tolerationSeconds: 5}}, {{key: k, operator: Gt, value: '5'}}]\n{}",
                c("")
            ),
            vec![
                "spec.tolerations[0].operator: Unsupported value: \"Maybe\": supported values: \"Equal\", \"Exists\"",
                "spec.tolerations[1].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                "spec.tolerations[2].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
                "spec.tolerations[3].operator: Forbidden: \"Gt\" is not supported by this version of peapod, which follows the Kubernetes 1.33 API (the operator is newer)",
            ],
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(errors(&spec), want, "{spec}");
    }
}

#[test]
fn labels_and_annotations_are_checked() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {app: 'bad value!', 'bad key': x}\nspec: {containers: [{name: a, image: busybox}]}\n";
    let e: Vec<String> = load(text)
        .unwrap_err()
        .field_errors()
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with(
            "metadata.labels: Invalid value: \"bad value!\": a valid label must be an empty string"
        ),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("metadata.labels: Invalid value: \"bad key\": name part must consist"),
        "{e:?}"
    );
}

#[test]
fn what_the_api_server_accepts() {
    // A negative grace period is accepted with a warning and made 1; labels and
    // annotations are reachable through fieldRef; mountPaths compare as exact strings.
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: web}}\nspec:\n  terminationGracePeriodSeconds: -5\n  volumes: [{name: v, emptyDir: {}}, {name: w, emptyDir: {}}]\n  containers:\n  - name: a\n    image: busybox\n    volumeMounts: [{name: v, mountPath: /x}, {name: w, mountPath: /x/}]\n    env:\n    - {name: APP, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}}\n    - {name: NOTE, valueFrom: {fieldRef: {fieldPath: \"metadata.annotations['note']\"}}}\n";
    let m = load(text).unwrap();
    assert_eq!(
        m.warnings,
        [
            "pod \"p\": spec.terminationGracePeriodSeconds: must be >= 0; negative values are invalid and will be treated as 1"
        ]
    );
    let spec = m.pods[0].spec.as_ref().unwrap();
    assert_eq!(spec.termination_grace_period_seconds, Some(1));
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
}
