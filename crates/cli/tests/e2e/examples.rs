//! The Kubernetes documentation's manifests (`k8s-examples`), run as users run them: every
//! one whose images have a stand-in here (busybox, nginx, pause) is applied unchanged, with
//! its images pulled by their upstream names through registry mirrors for `docker.io`,
//! `registry.k8s.io` and `k8s.gcr.io` that lead to a registry on loopback.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use peapod_testkit::{ImageOptions, RegistryOptions, TestRegistry};
use serde_json::Value;

use crate::harness::*;

/// What stands in for an upstream repository: a busybox image with the command that
/// plays the part (nginx: a web server on port 80 serving its document root; pause: an
/// idle process that exits on SIGTERM).
fn stand_in(repository: &str) -> Option<&'static str> {
    match repository {
        "docker.io/library/busybox" | "registry.k8s.io/busybox" => Some("busybox"),
        "docker.io/library/nginx" | "registry.k8s.io/nginx" => Some("nginx"),
        "registry.k8s.io/pause" | "k8s.gcr.io/pause" => Some("pause"),
        _ => None,
    }
}

fn stand_in_options(kind: &str) -> ImageOptions {
    let sh = |script: &str| vec!["sh".to_string(), "-c".into(), script.into()];
    match kind {
        "nginx" => ImageOptions {
            cmd: sh(
                "mkdir -p /usr/share/nginx/html && exec httpd -f -p 80 -h /usr/share/nginx/html",
            ),
            stop_signal: Some("SIGQUIT".into()),
            ..Default::default()
        },
        "pause" => ImageOptions {
            entrypoint: sh("trap 'exit 0' TERM INT; while :; do sleep 1; done"),
            cmd: Vec::new(),
            ..Default::default()
        },
        _ => ImageOptions::default(),
    }
}

/// `repository` and tag of an image reference, normalized as a container runtime does.
fn normalize(image: &str) -> (String, String) {
    let (name, tag) = match image.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (image, "latest"),
    };
    let first = name.split('/').next().unwrap();
    let repo = if !name.contains('/') {
        format!("docker.io/library/{name}")
    } else if first.contains('.') || first.contains(':') || first == "localhost" {
        name.to_string()
    } else {
        format!("docker.io/{name}")
    };
    (repo, tag.to_string())
}

/// Every `image` in a document, wherever it is (pod spec or workload template).
fn images(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("image", Value::String(s)) => out.push(s.clone()),
                    _ => images(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| images(x, out)),
        _ => {}
    }
}

/// An object a document refers to: (kind, name), and the keys it reads from it.
type Reference = ((String, String), BTreeSet<String>);

/// Every ConfigMap, Secret or PersistentVolumeClaim a document refers to, with the keys it
/// names.
fn references(v: &Value, out: &mut BTreeMap<(String, String), BTreeSet<String>>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let kind = match k.as_str() {
                    "configMapKeyRef" | "configMapRef" | "configMap" => Some("ConfigMap"),
                    "secretKeyRef" | "secretRef" | "secret" => Some("Secret"),
                    "persistentVolumeClaim" => Some("PersistentVolumeClaim"),
                    _ => None,
                };
                let name = ["name", "secretName", "claimName"]
                    .iter()
                    .find_map(|f| x[f].as_str());
                if let (Some(kind), Some(name)) = (kind, name) {
                    let keys = out.entry((kind.to_string(), name.to_string())).or_default();
                    keys.extend(x["key"].as_str().map(str::to_string));
                    for item in x["items"].as_array().into_iter().flatten() {
                        keys.extend(item["key"].as_str().map(str::to_string));
                    }
                }
                references(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        _ => {}
    }
}

/// The keys an object defines (`data`, `stringData`, `binaryData`).
fn keys(doc: &Value) -> BTreeSet<String> {
    ["data", "stringData", "binaryData"]
        .iter()
        .filter_map(|f| doc[f].as_object())
        .flat_map(|m| m.keys().cloned())
        .collect()
}

/// An object the documentation has the reader create by hand before the example: a
/// ConfigMap or Secret with `keys` (two made-up ones when the example reads them all), or
/// a claim of 1Gi.
fn made_by_hand(kind: &str, name: &str, keys: &BTreeSet<String>) -> String {
    let mut keys: Vec<String> = keys.iter().cloned().collect();
    if keys.is_empty() {
        keys = vec!["SPECIAL_LEVEL".into(), "SPECIAL_TYPE".into()];
    }
    let data: String = keys
        .iter()
        .map(|k| format!("  {k}: 'value of {k}'\n"))
        .collect();
    match kind {
        "ConfigMap" => {
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata:\n{data}")
        }
        "Secret" => {
            format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\nstringData:\n{data}")
        }
        _ => format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n"
        ),
    }
}

/// One corpus file to run: its path, documents, and the objects it needs from other files.
struct Example {
    rel: String,
    path: PathBuf,
    /// Manifests to apply first: the corpus's own, or what the documentation has the reader
    /// create by hand (`kubectl create configmap ... --from-literal`).
    needs: Vec<String>,
    /// The namespace the file names (else it is applied in one of its own).
    namespace: Option<String>,
    expect: Expect,
    /// What its pods request of CPU, in millicores.
    cpu: i128,
}

/// The node's CPU in millicores.
fn node_cpu() -> i128 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as i128 * 1000
}

/// The examples in batches of at most eight that the node's CPU can hold together, as
/// the kubelet admits pods only while their requests fit.
fn batches(examples: &[Example]) -> Vec<Vec<&Example>> {
    let mut out: Vec<Vec<&Example>> = Vec::new();
    let mut sum = 0;
    for ex in examples {
        let fits = out
            .last()
            .is_some_and(|b| b.len() < 8 && sum + ex.cpu <= node_cpu());
        if !fits {
            out.push(Vec::new());
            sum = 0;
        }
        if ex.expect != Expect::Rejected("OutOfcpu") {
            sum += ex.cpu;
        }
        out.last_mut().unwrap().push(ex);
    }
    out
}

/// What a kubelet on this host does with an example.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Its containers run.
    Runs,
    /// Admission refuses it with this reason.
    Rejected(&'static str),
    /// An init container fetches from the internet, which this machine has not: it runs
    /// and fails, and the pod stays in its init containers, as on an offline node.
    Offline,
}

/// What some examples print, as the documentation shows it: (file, text in the logs).
const PRINTS: &[(&str, &str)] = &[
    (
        "website/service/networking/hostaliases-pod.yaml",
        "# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\tbar.remote",
    ),
    (
        "website/pods/pod-configmap-envFrom.yaml",
        "SPECIAL_LEVEL=value of SPECIAL_LEVEL",
    ),
    // Pod name and namespace, then the pod's IP and its service account.
    (
        "website/pods/inject/dapi-envars-pod.yaml",
        "\ndapi-envars-fieldref\nex-",
    ),
    ("website/pods/inject/dapi-envars-pod.yaml", "\ndefault\n"),
];

/// The examples that need the internet.
const ONLINE: &[&str] = &["website/pods/init-containers.yaml"];

/// Whether a document asks for AppArmor (a profile other than Unconfined, or a beta
/// annotation other than `unconfined`).
fn wants_apparmor(doc: &Value) -> bool {
    fn profile(v: &Value) -> bool {
        match v {
            Value::Object(m) => m
                .iter()
                .any(|(k, x)| (k == "appArmorProfile" && x["type"] != "Unconfined") || profile(x)),
            Value::Array(a) => a.iter().any(profile),
            _ => false,
        }
    }
    let annotated = doc["metadata"]["annotations"].as_object().is_some_and(|m| {
        m.iter().any(|(k, v)| {
            k.starts_with("container.apparmor.security.beta.kubernetes.io/") && v != "unconfined"
        })
    });
    profile(doc) || annotated
}

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

/// The corpus files that run here: Pods (and ConfigMaps, Secrets, workloads) for Linux
/// nodes whose every image has a stand-in, which peapod accepts.
fn runnable(root: &Path) -> (Vec<Example>, BTreeSet<(String, String)>) {
    let all = peapod_testkit::manifest_files(&root.join("website"));
    let parsed: Vec<(PathBuf, Vec<Value>)> = all
        .into_iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            let docs = peapod_types::yaml::documents(&text).ok()?;
            Some((p, docs))
        })
        .collect();
    // Where each ConfigMap, Secret and claim of the corpus is defined, with its keys.
    let mut defined: Vec<(Reference, PathBuf)> = Vec::new();
    for (p, docs) in &parsed {
        for d in docs {
            if let (Some(kind @ ("ConfigMap" | "Secret" | "PersistentVolumeClaim")), Some(name)) =
                (d["kind"].as_str(), d["metadata"]["name"].as_str())
            {
                defined.push((((kind.to_string(), name.to_string()), keys(d)), p.clone()));
            }
        }
    }
    let mut out = Vec::new();
    let mut tags = BTreeSet::new();
    for (p, docs) in parsed {
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        let runs = ["Pod", "Deployment", "ReplicaSet", "DaemonSet", "Job"];
        if !kinds.iter().any(|k| runs.contains(k))
            || !kinds
                .iter()
                .all(|k| runs.contains(k) || ["ConfigMap", "Secret"].contains(k))
            || rel.contains("/windows/")
        {
            continue;
        }
        let mut imgs = Vec::new();
        docs.iter().for_each(|d| images(d, &mut imgs));
        let refs: Vec<(String, String)> = imgs.iter().map(|i| normalize(i)).collect();
        if refs.is_empty() || refs.iter().any(|(r, _)| stand_in(r).is_none()) {
            continue;
        }
        // Only what peapod accepts: the rest is the refusals the types tests cover.
        let Ok(loaded) = peapod_types::manifest::load(&std::fs::read_to_string(&p).unwrap()) else {
            continue;
        };
        let cpu: i128 = loaded
            .pods
            .iter()
            .filter_map(|p| p.spec.as_ref())
            .map(|s| peapod_types::cgroups::pod_request(s, "cpu"))
            .sum();
        let mut wanted = BTreeMap::new();
        docs.iter().for_each(|d| references(d, &mut wanted));
        let own: BTreeSet<(String, String)> = docs
            .iter()
            .filter_map(|d| {
                Some((
                    d["kind"].as_str()?.to_string(),
                    d["metadata"]["name"].as_str()?.to_string(),
                ))
            })
            .collect();
        // The first definition elsewhere that has every key the file reads, else one made
        // with those keys.
        let mut needs = BTreeSet::new();
        for (k, want) in wanted.iter().filter(|(k, _)| !own.contains(*k)) {
            match defined
                .iter()
                .find(|((dk, have), _)| dk == k && want.is_subset(have))
            {
                Some((_, p)) => needs.insert(std::fs::read_to_string(p).unwrap()),
                None => needs.insert(made_by_hand(&k.0, &k.1, want)),
            };
        }
        let namespace = docs
            .iter()
            .find_map(|d| d["metadata"]["namespace"].as_str().map(str::to_string));
        let expect = if docs.iter().any(wants_apparmor) && !apparmor_enabled() {
            Expect::Rejected("AppArmor")
        } else if cpu > node_cpu() {
            Expect::Rejected("OutOfcpu")
        } else if ONLINE.contains(&rel.as_str()) {
            Expect::Offline
        } else {
            Expect::Runs
        };
        tags.extend(refs);
        out.push(Example {
            rel,
            path: p,
            needs: needs.into_iter().collect(),
            namespace,
            expect,
            cpu,
        });
    }
    (out, tags)
}

/// Waiting reasons that mean the pod could not be made as asked.
const ERRORS: &[&str] = &[
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "PostStartHookError",
];

/// Each container's state, init containers first: (name, state key, reason).
fn states(pod: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for key in ["initContainerStatuses", "containerStatuses"] {
        for s in pod["status"][key].as_array().into_iter().flatten() {
            let (state, detail) = s["state"]
                .as_object()
                .and_then(|m| m.iter().next())
                .map(|(k, v)| (k.clone(), v["reason"].as_str().unwrap_or("").to_string()))
                .unwrap_or_default();
            out.push((s["name"].as_str().unwrap_or("").to_string(), state, detail));
        }
    }
    out
}

/// Whether the pod got as far as Kubernetes takes it: finished, or running with every app
/// container started, or still in its init containers with one of them run.
fn settled(pod: &Value) -> bool {
    let list = |k: &str| pod["status"][k].as_array().cloned().unwrap_or_default();
    let ran = |s: &Value| {
        s["state"]["running"].is_object()
            || s["state"]["terminated"].is_object()
            || s["lastState"]["terminated"].is_object()
    };
    let apps = list("containerStatuses");
    match pod["status"]["phase"].as_str().unwrap_or("") {
        "Succeeded" | "Failed" => true,
        "Running" => !apps.is_empty() && apps.iter().all(ran),
        _ => {
            list("initContainerStatuses").iter().any(ran)
                && apps
                    .iter()
                    .all(|s| s["state"]["waiting"]["reason"] == "PodInitializing")
        }
    }
}

/// Whether the pod is where a kubelet on this host takes the example.
fn as_expected(expect: Expect, p: &Value) -> bool {
    let phase = p["status"]["phase"].as_str().unwrap_or("");
    let errors = states(p)
        .iter()
        .any(|(_, _, r)| ERRORS.contains(&r.as_str()));
    let failed = !failures(p).is_empty();
    match expect {
        Expect::Runs => settled(p) && !errors && !failed && phase != "Failed",
        Expect::Offline => phase == "Pending" && settled(p) && failed && !errors,
        Expect::Rejected(reason) => phase == "Failed" && p["status"]["reason"] == reason,
    }
}

/// Exit codes other than 0 of the pod's containers, now or before: (container, code).
fn failures(pod: &Value) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for key in ["initContainerStatuses", "containerStatuses"] {
        for c in pod["status"][key].as_array().into_iter().flatten() {
            for t in [&c["state"]["terminated"], &c["lastState"]["terminated"]] {
                if let Some(code) = t["exitCode"].as_i64().filter(|x| *x != 0) {
                    out.push((c["name"].as_str().unwrap_or("").to_string(), code));
                }
            }
        }
    }
    out
}

/// Every runnable documentation example is applied unchanged (with the ConfigMaps and
/// Secrets it names from other files of the corpus, as the documentation has the reader
/// create them first) and gets as far as it does on a Kubernetes node: no container is
/// refused or left unstartable, and no pod fails but those the documentation makes fail.
/// Deleting them leaves nothing behind.
#[test]
fn documentation_examples_run_with_stand_in_images() {
    let Some(root) = peapod_testkit::k8s_examples() else {
        eprintln!("k8s-examples not found: set PEAPOD_K8S_EXAMPLES to run this test");
        return;
    };
    let (examples, tags) = runnable(&root);
    assert!(
        examples.len() >= 60,
        "only {} runnable examples",
        examples.len()
    );

    let dir = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(&dir.path().join("reg"), &RegistryOptions::default()).unwrap();
    let mirrors: String = ["docker.io", "registry.k8s.io", "k8s.gcr.io"]
        .iter()
        .map(|h| {
            format!(
                "[registries.hosts.\"{h}\"]\nmirrors = [\"http://{}\"]\n",
                reg.addr
            )
        })
        .collect();
    // The node is labelled as the documentation has the reader label it.
    let env = Env::with_config(
        0.2,
        1.0,
        &format!(
            "node_labels = {{ disktype = \"ssd\", \"topology.kubernetes.io/zone\" = \"antarctica-east1\" }}\n\
             [registries]\nauth_file = \"/nonexistent/auth.json\"\n{mirrors}"
        ),
    );
    // The stand-ins, pushed under every upstream name and tag the examples use.
    for kind in ["busybox", "nginx", "pause"] {
        env.load_image(
            &format!("localhost/stand-in/{kind}:1"),
            &stand_in_options(kind),
        );
    }
    for (repo, tag) in &tags {
        let path = repo.split_once('/').unwrap().1;
        let kind = stand_in(repo).unwrap();
        env.ok(&[
            "image",
            "push",
            &format!("localhost/stand-in/{kind}:1"),
            &format!("{}/{path}:{tag}", reg.addr),
        ]);
    }

    let mut wrong = Vec::new();
    for (batch_no, batch) in batches(&examples).into_iter().enumerate() {
        let mut applied = Vec::new();
        for (i, ex) in batch.iter().enumerate() {
            let ns = ex
                .namespace
                .clone()
                .unwrap_or_else(|| format!("ex-{batch_no}-{i}"));
            let mut ok = true;
            let mut files = Vec::new();
            for (j, text) in ex.needs.iter().enumerate() {
                let f = env.path().join(format!("needs-{batch_no}-{i}-{j}.yaml"));
                std::fs::write(&f, text).unwrap();
                files.push(f);
            }
            files.push(ex.path.clone());
            for f in &files {
                let out = env.run(&["apply", "-n", &ns, "-f", f.to_str().unwrap()]);
                if !out.status.success() {
                    wrong.push(format!(
                        "{}: apply -f {}: {}",
                        ex.rel,
                        f.display(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                    ok = false;
                }
            }
            if ok {
                applied.push((ex, ns));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        for (ex, ns) in &applied {
            let pods = loop {
                let list: Value =
                    serde_json::from_str(&env.ok(&["get", "pods", "-n", ns, "-o", "json"]))
                        .unwrap();
                let pods = list["items"].as_array().cloned().unwrap_or_default();
                if (!pods.is_empty() && pods.iter().all(|p| as_expected(ex.expect, p)))
                    || Instant::now() > deadline
                {
                    break pods;
                }
                std::thread::sleep(Duration::from_millis(200));
            };
            eprintln!("{}:", ex.rel);
            if pods.is_empty() {
                wrong.push(format!("{}: no pod was made", ex.rel));
            }
            for p in &pods {
                let name = p["metadata"]["name"].as_str().unwrap_or("");
                let phase = p["status"]["phase"].as_str().unwrap_or("");
                let st = states(p);
                eprintln!("  {name} {phase} {st:?}");
                let failed = failures(p);
                for (c, code) in &failed {
                    let logs = env.run(&["logs", "-n", ns, name, "-c", c, "-p"]);
                    eprintln!(
                        "    {c} exited {code}: {}",
                        String::from_utf8_lossy(&logs.stdout).trim()
                    );
                }
                for (_, want) in PRINTS.iter().filter(|(f, _)| *f == ex.rel) {
                    let logs = env.run(&["logs", "-n", ns, name]);
                    let logs = String::from_utf8_lossy(&logs.stdout);
                    if !logs.contains(want) {
                        wrong.push(format!("{}: logs lack {want:?}:\n{logs}", ex.rel));
                    }
                }
                if !as_expected(ex.expect, p) {
                    wrong.push(format!(
                        "{}: pod {name} {phase} {st:?} {}",
                        ex.rel,
                        p["status"]["message"].as_str().unwrap_or("")
                    ));
                }
            }
        }
        for (_, ns) in &applied {
            for kind in ["deployments", "daemonsets", "jobs", "replicasets", "pods"] {
                let out = env.run(&["delete", kind, "--all", "-n", ns, "--force"]);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !env.pod_names().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        wrong.is_empty(),
        "examples that did not run as on Kubernetes:\n{}",
        wrong.join("\n")
    );
    assert_eq!(env.leftovers(), Vec::<String>::new());
}
