//! Scenario 8: broken manifests are refused with the API server's messages, and nothing is
//! created.

use crate::harness::*;

#[test]
fn broken_manifests_are_refused_and_create_nothing() {
    let env = Env::new();
    let head =
        |name: &str| format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "duplicate names across init and app",
            format!(
                "{}  initContainers:\n  - {{name: setup, image: {IMAGE}}}\n  - {{name: app, image: {IMAGE}}}\n  containers:\n  - {{name: app, image: {IMAGE}}}\n",
                head("dup")
            ),
            "spec.initContainers[1].name: Duplicate value: \"app\"",
        ),
        (
            "missing image",
            format!("{}  containers:\n  - {{name: app}}\n", head("noimage")),
            "spec.containers[0].image: Required value",
        ),
        (
            "a quantity that does not parse",
            format!(
                "{}  containers:\n  - {{name: app, image: {IMAGE}, resources: {{limits: {{memory: 1GB}}}}}}\n",
                head("badquantity")
            ),
            "spec.containers[0].resources.limits[memory]: Invalid value: \"1GB\": quantities must match the regular expression",
        ),
        (
            "a request above its limit",
            format!(
                "{}  containers:\n  - {{name: app, image: {IMAGE}, resources: {{limits: {{cpu: 1}}, requests: {{cpu: 1500m}}}}}}\n",
                head("overrequest")
            ),
            "spec.containers[0].resources.requests: Invalid value: \"1500m\": must be less than or equal to cpu limit of 1",
        ),
        (
            "an unquoted yes where a string belongs, as kubectl reads it",
            format!(
                "{}  containers:\n  - {{name: app, image: {IMAGE}, env: [{{name: DEBUG, value: yes}}]}}\n",
                head("yamlbool")
            ),
            "spec.containers[0].env[0].value: Invalid value: invalid type: boolean `true`, expected a string (as in kubectl, an unquoted yes, no, on, off, y or n is a boolean: quote it)",
        ),
        (
            "undeclared volume",
            format!(
                "{}  containers:\n  - {{name: app, image: {IMAGE}, volumeMounts: [{{name: nope, mountPath: /x}}]}}\n",
                head("novol")
            ),
            "spec.containers[0].volumeMounts[0].name: Not found: \"nope\"",
        ),
        (
            "bad YAML",
            format!(
                "{}  containers:\n  - name: app\n     image: {IMAGE}\n",
                head("badyaml")
            ),
            "invalid YAML: ",
        ),
        (
            "unknown field",
            format!(
                "{}  containers:\n  - {{name: app, image: {IMAGE}, imagePullPolcy: Never}}\n",
                head("unknown")
            ),
            "spec.containers[0].imagePullPolcy: Unknown field",
        ),
        (
            "invalid name",
            format!(
                "{}  containers:\n  - {{name: app, image: {IMAGE}}}\n",
                head("Bad_Name")
            ),
            "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain",
        ),
        (
            "one bad pod among good ones",
            format!(
                "{}  containers:\n  - {{name: app, image: {IMAGE}}}\n---\n{}  restartPolicy: Sometimes\n  containers:\n  - {{name: app, image: {IMAGE}}}\n",
                head("good"),
                head("bad")
            ),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        ),
    ];
    for (what, yaml, expected) in cases {
        let out = env.apply(&yaml);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: accepted");
        assert!(
            err.contains(expected),
            "{what}: expected {expected:?} in:\n{err}"
        );
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{what}: not one line:\n{err}"
        );
        assert!(env.pod_names().is_empty(), "{what}: something was created");
        assert!(
            env.leftovers().is_empty(),
            "{what}: left {:?}",
            env.leftovers()
        );
    }
    let out = env.apply("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: app\n     image: x\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 8 column"), "no position in {err}");
}

#[test]
fn what_the_api_server_accepts_runs_or_fails_where_a_kubelet_would() {
    let env = Env::new();
    // A negative grace period: a warning, then 1 second; YAML 1.1 numbers as kubectl
    // reads them (0x10 is 16); a relative mount path passes validation and is refused
    // when the container is created.
    let name = format!("accepted-{}", unique());
    let out = env.apply(&pod_yaml(
        &name,
        &format!(
            "  terminationGracePeriodSeconds: -5\n  volumes: [{{name: v, emptyDir: {{}}}}]\n  containers:\n  - name: app\n    image: {IMAGE}\n    command: [sh, -c, 'echo $NUM; sleep 3600']\n    env: [{{name: NUM, value: \"0x10\"}}]\n    ports: [{{containerPort: 0x10}}]\n  - name: rel\n    image: {IMAGE}\n    command: [sleep, '3600']\n    volumeMounts: [{{name: v, mountPath: data}}]\n"
        ),
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "Warning: pod \"NAME\": spec.terminationGracePeriodSeconds: must be >= 0; negative values are invalid and will be treated as 1"
                .replace("NAME", &name)
                .as_str()
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pod = env.wait_for(&name, std::time::Duration::from_secs(30), |p| {
        cstatus(p, "rel")["state"]["waiting"]["reason"] == "CreateContainerError"
            && cstatus(p, "app")["state"]["running"].is_object()
    });
    assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 1);
    assert_eq!(
        pod["spec"]["containers"][0]["ports"][0]["containerPort"],
        16
    );
    let msg = cstatus(&pod, "rel")["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains("\"data\" is not an absolute path"), "{msg}");
    assert_eq!(env.ok(&["logs", &name, "-c", "app"]), "0x10\n");
    env.ok(&["delete", "pod", &name, "--force"]);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[test]
fn the_node_admits_only_pods_its_labels_match() {
    let env = Env::with_config(0.2, 1.0, "node_labels = { disktype = \"ssd\" }");
    let tag = unique();
    let pod = |name: &str, extra: &str| {
        pod_yaml(
            name,
            &format!(
                "{extra}  containers:\n  - name: app\n    image: {IMAGE}\n    command: [sleep, '3600']\n"
            ),
        )
    };
    let windows = format!("windows-{tag}");
    env.apply_ok(&pod(
        &windows,
        "  nodeSelector:\n    kubernetes.io/os: windows\n",
    ));
    let ssd = format!("ssd-{tag}");
    env.apply_ok(&pod(
        &ssd,
        "  nodeSelector: {disktype: ssd, kubernetes.io/os: linux}\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions: [{key: kubernetes.io/arch, operator: Exists}]\n",
    ));
    let rejected = env.wait_for(&windows, std::time::Duration::from_secs(20), |p| {
        p["status"]["phase"] == "Failed"
    });
    assert_eq!(rejected["status"]["reason"], "NodeAffinity");
    assert_eq!(
        rejected["status"]["message"],
        "Pod was rejected: Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
    );
    assert!(rejected["status"]["containerStatuses"].is_null());
    let get = env.ok(&["get", "pods", &windows]);
    assert!(get.contains("NodeAffinity"), "{get}");
    let events = env.ok(&["get", "events"]);
    assert!(events.contains("NodeAffinity"), "{events}");
    env.wait_for(&ssd, std::time::Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Running"
    });
    for name in [&windows, &ssd] {
        env.ok(&["delete", "pod", name, "--force"]);
    }
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[test]
fn config_maps_and_secrets_feed_the_environment() {
    let env = Env::new();
    let tag = unique();
    let objects = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings-{tag}}}\ndata: {{LEVEL: debug, MODE: fast}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: creds-{tag}}}\nstringData: {{password: s3cret}}\n"
    );
    let name = format!("envfrom-{tag}");
    let pod = pod_yaml(
        &name,
        &format!(
            "  restartPolicy: Never\n  containers:\n  - name: app\n    image: {IMAGE}\n    command: [sh, -c, 'echo $APP_LEVEL $APP_MODE $PASSWORD']\n    envFrom: [{{configMapRef: {{name: settings-{tag}}}, prefix: APP_}}]\n    env: [{{name: PASSWORD, valueFrom: {{secretKeyRef: {{name: creds-{tag}, key: password}}}}}}]\n"
        ),
    );
    // The pod first, alone: it waits for what it refers to.
    env.apply_ok(&pod);
    let waiting = env.wait_for(&name, std::time::Duration::from_secs(20), |p| {
        cstatus(p, "app")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    });
    assert_eq!(
        cstatus(&waiting, "app")["state"]["waiting"]["message"],
        format!("configmap \"settings-{tag}\" not found")
    );
    // Then the objects: it starts with their values.
    let out = env.apply(&objects);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("configmap/settings-{tag} created")),
        "{text}"
    );
    assert!(
        text.contains(&format!("secret/creds-{tag} created")),
        "{text}"
    );
    env.wait_phase(&name, "Succeeded");
    assert_eq!(env.ok(&["logs", &name]), "debug fast s3cret\n");
    // The same objects again change nothing.
    let again = env.apply(&objects);
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .contains(&format!("configmap/settings-{tag} unchanged"))
    );
    env.ok(&["delete", "pod", &name, "--force"]);
    // Listed as kubectl lists them.
    let cms = env.ok(&["get", "cm"]);
    let row: Vec<&str> = cms
        .lines()
        .find(|l| l.starts_with(&format!("settings-{tag}")))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        cms.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["NAME", "DATA", "AGE"]
    );
    assert_eq!(
        &row[..2],
        [format!("settings-{tag}").as_str(), "2"],
        "{cms}"
    );
    let secrets = env.ok(&["get", "secrets"]);
    assert!(
        secrets
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()[..3]
                == [format!("creds-{tag}").as_str(), "Opaque", "1"]),
        "{secrets}"
    );
    let yaml = env.ok(&["get", &format!("configmap/settings-{tag}"), "-o", "yaml"]);
    assert!(
        yaml.contains("kind: ConfigMap") && yaml.contains("LEVEL: debug"),
        "{yaml}"
    );
    // Deleted as kubectl deletes them, by TYPE NAME or TYPE/NAME.
    let out = env.ok(&["delete", "cm", &format!("settings-{tag}")]);
    assert_eq!(out, format!("configmap \"settings-{tag}\" deleted\n"));
    let out = env.ok(&["delete", &format!("secret/creds-{tag}")]);
    assert_eq!(out, format!("secret \"creds-{tag}\" deleted\n"));
    let gone = env.run(&["delete", "configmap", &format!("settings-{tag}")]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));
}

#[test]
fn dry_runs_create_nothing() {
    let env = Env::new();
    let name = format!("dry-{}", unique());
    let yaml = pod_yaml(
        &name,
        &format!("  containers:\n  - name: app\n    image: {IMAGE}\n"),
    );
    let file = env.path().join("dry.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let f = file.to_str().unwrap();
    let out = env.ok(&["apply", "-f", f, "--dry-run=client"]);
    assert_eq!(out, format!("pod/{name} created (dry run)\n"));
    // The server's dry run shows the pod as it would run: with the API server's defaults.
    let out = env.ok(&["apply", "-f", f, "--dry-run=server", "-o", "yaml"]);
    let v: serde_json::Value = serde_yaml_ng::from_str(&out).unwrap();
    assert_eq!(v["kind"], "Pod");
    assert_eq!(v["spec"]["restartPolicy"], "Always");
    assert_eq!(v["spec"]["terminationGracePeriodSeconds"], 30);
    assert_eq!(v["spec"]["serviceAccountName"], "default");
    assert_eq!(
        v["spec"]["containers"][0]["terminationMessagePath"],
        "/dev/termination-log"
    );
    // Only the server's dry run checks what the API server checks.
    let bad = pod_yaml(
        &name,
        &format!(
            "  containers:\n  - name: app\n    image: {IMAGE}\n    resources: {{limits: {{cpu: 1}}, requests: {{cpu: 2}}}}\n"
        ),
    );
    std::fs::write(&file, &bad).unwrap();
    env.ok(&["apply", "-f", f, "--dry-run=client"]);
    let out = env.run(&["apply", "-f", f, "--dry-run=server"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("must be less than or equal to cpu limit of 1")
    );
    assert!(env.pod_names().is_empty(), "a dry run created something");
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}
