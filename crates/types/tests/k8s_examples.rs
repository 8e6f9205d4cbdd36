//! The Kubernetes documentation's manifests, as users copy them (`k8s-examples`, every file
//! valid Kubernetes): each is accepted, or refused only for what peapod documents as
//! unsupported, with the field named.

use peapod_types::field::ErrorKind;
use peapod_types::manifest::{ManifestError, load};

/// Whether a refusal is one the README documents: an object kind peapod does not run, a
/// volume type or field it does not implement, or a field newer than the API it follows.
fn documented(e: &peapod_types::field::FieldError) -> bool {
    let kind_or_version = e.kind == ErrorKind::NotSupported
        && (e.path.ends_with("kind") || e.path.ends_with("apiVersion"));
    let unsupported = e.kind == ErrorKind::Forbidden
        && (e.detail.contains("not supported by peapod")
            || e.detail.contains("not supported by this version of peapod"));
    kind_or_version || unsupported
}

#[test]
fn documentation_manifests_are_accepted_or_refused_for_documented_reasons() {
    let Some(root) = peapod_testkit::k8s_examples() else {
        eprintln!("k8s-examples not found: set PEAPOD_K8S_EXAMPLES to run this test");
        return;
    };
    let all = peapod_testkit::manifest_files(&root.join("website"));
    assert!(all.len() > 150, "{} files", all.len());
    let (mut accepted, mut refused, mut wrong) = (0, 0, Vec::new());
    for f in &all {
        let text = std::fs::read_to_string(f).unwrap();
        let rel = f.strip_prefix(&root).unwrap().display().to_string();
        match load(&text) {
            Ok(_) => accepted += 1,
            Err(ManifestError::Invalid(objs)) => {
                let bad: Vec<String> = objs
                    .iter()
                    .flat_map(|o| o.errors.iter())
                    .filter(|e| !documented(e))
                    .map(|e| e.to_string())
                    .collect();
                if bad.is_empty() {
                    refused += 1;
                } else {
                    wrong.push(format!("{rel}: {}", bad.join("; ")));
                }
            }
            Err(e) => wrong.push(format!("{rel}: {e}")),
        }
    }
    eprintln!("{accepted} accepted, {refused} refused for documented reasons");
    assert!(wrong.is_empty(), "refused wrongly:\n{}", wrong.join("\n"));
}

/// Octal file modes as the documentation writes them (`defaultMode: 0400`) are read as
/// kubectl reads them.
#[test]
fn octal_modes_in_the_documentation_are_read_as_kubectl_reads_them() {
    let Some(root) = peapod_testkit::k8s_examples() else {
        return;
    };
    let text = std::fs::read_to_string(root.join("website/pods/emptydir-volume-mode.yaml"))
        .expect("the emptyDir mode example");
    assert!(text.contains("mode: 01777"));
    let docs = peapod_types::yaml::documents(&text).unwrap();
    assert_eq!(docs[0]["spec"]["volumes"][0]["emptyDir"]["mode"], 1023);
}
