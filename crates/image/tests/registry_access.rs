//! Reaching registries: basic and bearer-token credentials, pull secrets, TLS with a
//! private CA, and mirrors, against a real registry on loopback.

use peapod_image::{Credential, Error, Keyring, PullOptions, Registry, Store};
use peapod_testkit::{RegistryOptions, TestRegistry, make_test_ca};
use peapod_types::config::{Registries, RegistryHost};

mod common;
use common::*;

#[test]
fn basic_auth_from_config_file_and_pull_secret() {
    let d = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(
        &d.path().join("reg"),
        &RegistryOptions {
            basic_auth: Some(("alice".into(), "s3cret".into())),
            ..Default::default()
        },
    )
    .unwrap();
    let name = format!("{}/private/busybox:1", reg.addr);
    let src = loaded(&d.path().join("src"), &busybox_archive(d.path(), &name));
    let mut good = Keyring::new();
    good.add(
        &reg.addr,
        Credential {
            username: "alice".into(),
            password: "s3cret".into(),
        },
    );
    let with = |k: &Keyring| PullOptions {
        keyring: k.clone(),
        ..Default::default()
    };
    let pusher = Registry::new(src, settings()).unwrap();
    let err = rt()
        .block_on(pusher.push(&name, None, &PullOptions::default()))
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized(_)), "{err}");
    rt().block_on(pusher.push(&name, None, &with(&good)))
        .unwrap();

    let store = Store::open(d.path().join("store")).unwrap();
    let client = Registry::new(store.clone(), settings()).unwrap();
    // Anonymous, then wrong credentials: a clear refusal, nothing stored.
    let err = rt()
        .block_on(client.pull(&name, &PullOptions::default()))
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized(_)), "{err}");
    assert!(err.to_string().contains("credentials"), "{err}");
    let mut bad = Keyring::new();
    bad.add(
        &reg.addr,
        Credential {
            username: "alice".into(),
            password: "wrong".into(),
        },
    );
    let err = rt().block_on(client.pull(&name, &with(&bad))).unwrap_err();
    assert!(matches!(err, Error::Unauthorized(_)), "{err}");
    assert!(store.images().unwrap().is_empty());
    assert_eq!(entries(&store.dir().join("blobs/sha256")), 0);
    // A pull secret (a dockerconfigjson) works; a wrong one before it is skipped.
    let mut secret = bad.clone();
    let json = format!(
        r#"{{"auths": {{"{}": {{"auth": "YWxpY2U6czNjcmV0"}}}}}}"#,
        reg.addr
    );
    secret.add_docker_config(json.as_bytes(), "secret").unwrap();
    rt().block_on(client.pull(&name, &with(&secret))).unwrap();
    // So does the node's credentials file.
    let auth_file = d.path().join("auth.json");
    std::fs::write(&auth_file, &json).unwrap();
    let store2 = Store::open(d.path().join("store2")).unwrap();
    let node = Registry::new(
        store2.clone(),
        Registries {
            auth_file: Some(auth_file),
            ..Registries::default()
        },
    )
    .unwrap();
    rt().block_on(node.pull(&name, &PullOptions::default()))
        .unwrap();
    // And the config file's own user for the host.
    let store3 = Store::open(d.path().join("store3")).unwrap();
    let mut s = settings();
    s.hosts.insert(
        reg.addr.clone(),
        RegistryHost {
            username: Some("alice".into()),
            password: Some("s3cret".into()),
            ..Default::default()
        },
    );
    rt().block_on(
        Registry::new(store3, s)
            .unwrap()
            .pull(&name, &PullOptions::default()),
    )
    .unwrap();
}

#[test]
fn tls_with_a_test_ca() {
    let d = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_test_ca(&d.path().join("pki")).unwrap();
    let reg = TestRegistry::start(
        &d.path().join("reg"),
        &RegistryOptions {
            tls: Some((cert, key)),
            ..Default::default()
        },
    )
    .unwrap();
    let name = format!("{}/tls/busybox:1", reg.addr);
    let src = loaded(&d.path().join("src"), &busybox_archive(d.path(), &name));
    let mut s = settings();
    s.hosts.insert(
        reg.addr.clone(),
        RegistryHost {
            ca_files: vec![ca],
            ..Default::default()
        },
    );
    rt().block_on(Registry::new(src, s.clone()).unwrap().push(
        &name,
        None,
        &PullOptions::default(),
    ))
    .unwrap();
    let store = Store::open(d.path().join("store")).unwrap();
    rt().block_on(
        Registry::new(store.clone(), s)
            .unwrap()
            .pull(&name, &PullOptions::default()),
    )
    .unwrap();
    // HTTPS without the CA: the certificate is not trusted.
    let mut untrusted = settings();
    untrusted.hosts.insert(
        reg.addr.clone(),
        RegistryHost {
            insecure: Some(false),
            ..Default::default()
        },
    );
    let other = Store::open(d.path().join("other")).unwrap();
    let err = rt()
        .block_on(
            Registry::new(other, untrusted)
                .unwrap()
                .pull(&name, &PullOptions::default()),
        )
        .unwrap_err()
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[test]
fn mirror_serves_another_registry() {
    let d = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(&d.path().join("reg"), &RegistryOptions::default()).unwrap();
    let local = format!("{}/e2e/busybox:1.0", reg.addr);
    let src = loaded(&d.path().join("src"), &busybox_archive(d.path(), &local));
    rt().block_on(Registry::new(src, settings()).unwrap().push(
        &local,
        None,
        &PullOptions::default(),
    ))
    .unwrap();
    let mut s = settings();
    s.hosts.insert(
        "registry.k8s.io".into(),
        RegistryHost {
            // A dead mirror first: it is skipped.
            mirrors: vec!["http://127.0.0.1:9".into(), format!("http://{}", reg.addr)],
            ..Default::default()
        },
    );
    let store = Store::open(d.path().join("store")).unwrap();
    let img = rt()
        .block_on(
            Registry::new(store.clone(), s)
                .unwrap()
                .pull("registry.k8s.io/e2e/busybox:1.0", &PullOptions::default()),
        )
        .unwrap();
    assert_eq!(img.name, "registry.k8s.io/e2e/busybox:1.0");
    assert!(store.get("registry.k8s.io/e2e/busybox:1.0").is_ok());
}

#[test]
fn bearer_tokens_from_the_registrys_challenge() {
    let d = tempfile::tempdir().unwrap();
    let tokens =
        peapod_testkit::TokenServer::start(&d.path().join("token"), "carol", "t0ken").unwrap();
    let reg = TestRegistry::start(
        &d.path().join("reg"),
        &RegistryOptions {
            token: Some((tokens.realm.clone(), tokens.cert.clone())),
            ..Default::default()
        },
    )
    .unwrap();
    let name = format!("{}/tok/busybox:1", reg.addr);
    let src = loaded(&d.path().join("src"), &busybox_archive(d.path(), &name));
    let mut good = Keyring::new();
    good.add(
        &reg.addr,
        Credential {
            username: "carol".into(),
            password: "t0ken".into(),
        },
    );
    let with = |k: &Keyring| PullOptions {
        keyring: k.clone(),
        ..Default::default()
    };
    rt().block_on(
        Registry::new(src, settings())
            .unwrap()
            .push(&name, None, &with(&good)),
    )
    .unwrap();
    assert!(tokens.issued() >= 1, "no token was asked for");
    let store = Store::open(d.path().join("store")).unwrap();
    let client = Registry::new(store.clone(), settings()).unwrap();
    let err = rt()
        .block_on(client.pull(&name, &PullOptions::default()))
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized(_)), "{err}");
    let mut bad = Keyring::new();
    bad.add(
        &reg.addr,
        Credential {
            username: "carol".into(),
            password: "nope".into(),
        },
    );
    let refused = tokens.refused();
    let err = rt().block_on(client.pull(&name, &with(&bad))).unwrap_err();
    assert!(matches!(err, Error::Unauthorized(_)), "{err}");
    assert!(tokens.refused() > refused, "the token server was not asked");
    let issued = tokens.issued();
    let img = rt().block_on(client.pull(&name, &with(&good))).unwrap();
    assert!(tokens.issued() > issued);
    assert!(
        store.snapshots(&img).unwrap()[0]
            .join("bin/busybox")
            .exists()
    );
}
