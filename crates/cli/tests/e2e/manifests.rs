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
            "relative mountPath",
            format!(
                "{}  containers:\n  - {{name: app, image: {IMAGE}, volumeMounts: [{{name: v, mountPath: data}}]}}\n  volumes:\n  - {{name: v, emptyDir: {{}}}}\n",
                head("relmount")
            ),
            "spec.containers[0].volumeMounts[0].mountPath: Invalid value: \"data\": must be an absolute path",
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
