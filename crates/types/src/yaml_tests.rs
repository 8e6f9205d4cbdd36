use serde_json::json;

use super::*;

fn one(text: &str) -> Value {
    let mut docs = documents(text).unwrap();
    assert_eq!(docs.len(), 1, "{text}");
    docs.remove(0)
}

/// Each plain scalar with the JSON value `kubectl` sends for it (go-yaml v2, then
/// sigs.k8s.io/yaml's conversion to JSON).
#[test]
fn plain_scalars_as_kubectl_reads_them() {
    let table = [
        ("0400", json!(256)),
        ("0644", json!(420)),
        ("0o17", json!(15)),
        ("0x1F", json!(31)),
        ("0b101", json!(5)),
        ("-0x10", json!(-16)),
        ("+12", json!(12)),
        ("1_000", json!(1000)),
        ("0", json!(0)),
        ("08", json!(8)),
        ("1e3", json!(1000)),
        ("1.0", json!(1)),
        ("0.5", json!(0.5)),
        (".5", json!(0.5)),
        ("-1.25e-2", json!(-0.0125)),
        ("18446744073709551615", json!(18446744073709551615u64)),
        ("yes", json!(true)),
        ("Yes", json!(true)),
        ("on", json!(true)),
        ("ON", json!(true)),
        ("y", json!(true)),
        ("True", json!(true)),
        ("no", json!(false)),
        ("off", json!(false)),
        ("N", json!(false)),
        ("FALSE", json!(false)),
        ("~", json!(null)),
        ("null", json!(null)),
        ("NULL", json!(null)),
        ("yEs", json!("yEs")),
        ("1.5.3", json!("1.5.3")),
        ("10:30", json!("10:30")),
        ("2024-01-02", json!("2024-01-02")),
        ("1Gi", json!("1Gi")),
        ("500m", json!("500m")),
        ("-x", json!("-x")),
        ("0x", json!("0x")),
        ("089", json!(89)),
    ];
    for (text, want) in table {
        assert_eq!(one(&format!("v: {text}\n"))["v"], want, "{text}");
    }
    assert_eq!(one("v:\n")["v"], json!(null));
}

#[test]
fn quoted_and_block_scalars_stay_strings() {
    let v = one("a: '0400'\nb: \"yes\"\nc: |\n  on\nd: >-\n  08\ne: !!str 0400\nf: !!int \"12\"\n");
    assert_eq!(
        v,
        json!({"a": "0400", "b": "yes", "c": "on\n", "d": "08", "e": "0400", "f": 12})
    );
}

#[test]
fn go_yaml_escapes_in_double_quotes() {
    let v = one("a: \"it\\'s\"\nb: \"tab\\there \\\"q\\\" \\\\'\"\nc: [\"x\\'y\", \"\\'\"]\n");
    assert_eq!(
        v,
        json!({"a": "it's", "b": "tab\there \"q\" \\'", "c": ["x'y", "'"]})
    );
    let e = documents("a: \"bad \\q\"\n").unwrap_err();
    assert!(
        e.contains("unknown escape character") && e.contains("line 1"),
        "{e}"
    );
}

#[test]
fn keys_become_strings_as_json_needs() {
    let v = one("labels: {yes: a, 1: b, 0x10: c, \"2\": e, 1.5: f}\n");
    assert_eq!(
        v["labels"],
        json!({"true": "a", "1": "b", "16": "c", "2": "e", "1.5": "f"})
    );
    let e = documents("{yes: a, on: b}\n").unwrap_err();
    assert_eq!(e, "mapping key \"true\" already defined (line 1)");
}

#[test]
fn anchors_aliases_and_merge_keys() {
    let v = one(
        "base: &b {image: busybox, imagePullPolicy: Never}\nc1:\n  <<: *b\n  name: one\n  image: other\nlist: [*b, &n 3, *n]\n",
    );
    assert_eq!(
        v["c1"],
        json!({"name": "one", "image": "other", "imagePullPolicy": "Never"})
    );
    assert_eq!(v["list"][1], json!(3));
    assert_eq!(v["list"][2], json!(3));
    assert_eq!(v["list"][0]["image"], json!("busybox"));
}

#[test]
fn documents_duplicates_and_errors() {
    let docs = documents("a: 1\n---\n---\nb: 2\n...\n").unwrap();
    assert_eq!(docs, [json!({"a": 1}), json!(null), json!({"b": 2})]);
    let e = documents("a: 1\nb: 2\na: 3\n").unwrap_err();
    assert_eq!(e, "mapping key \"a\" already defined (line 3)");
    let e = documents("a: [1, 2\n").unwrap_err();
    assert!(e.contains("line"), "{e}");
    let e = documents("a: .inf\n").unwrap_err();
    assert!(e.contains(".inf cannot be represented in JSON"), "{e}");
}
