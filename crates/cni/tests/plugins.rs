//! The CNI invoker against Debian's real plugins (`containernetworking-plugins`), as root.

use std::path::{Path, PathBuf};
use std::process::Command;

use peapod_cni::{Attachment, Cni, ConfList, DefaultNetwork, PortMapping, config};
use peapod_testkit::TestNet;

/// Runs a future to completion on a single-threaded Tokio runtime.
fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn plugin_dirs() -> Vec<PathBuf> {
    vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()]
}

/// A pinned network namespace, removed even when the test fails.
struct Netns(PathBuf);

impl Netns {
    fn new(dir: &Path) -> Netns {
        let p = dir.join("netns");
        peapod_oci::ns::create_netns(&p).unwrap();
        Netns(p)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = peapod_oci::ns::remove_netns(&self.0);
    }
}

fn in_netns(netns: &Path, cmd: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(cmd)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Leases of every network under an IPAM data directory.
fn ipam_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|net| peapod_testkit::leased_addresses(&net.path()))
        .collect()
}

fn iptables_mentions(id: &str) -> usize {
    let out = Command::new("iptables-save").output().unwrap();
    let short = &id[..12];
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(id) || l.contains(short))
        .count()
}

#[test]
fn add_check_del_with_the_default_network() {
    let tn = TestNet::reserve();
    let dir = tempfile::tempdir().unwrap();
    let pinned = Netns::new(dir.path());
    let netns = pinned.0.clone();
    let net = DefaultNetwork {
        name: format!("peapod-{}", tn.bridge),
        bridge: tn.bridge.clone(),
        subnet: tn.subnet.clone(),
        ipam_dir: dir.path().join("ipam"),
    };
    let file = dir.path().join("net.d/10-peapod.conflist");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, config::default_conflist(&net).to_string()).unwrap();
    let conf = config::first_in(file.parent().unwrap()).unwrap().unwrap();
    assert_eq!(conf.plugin_types()[..2], ["bridge", "portmap"]);
    let cni = Cni::new(plugin_dirs(), dir.path().join("cache"));
    let id = format!("{:0>64}", tn.index);
    let att = Attachment {
        container_id: id.clone(),
        netns: netns.clone(),
        ifname: "eth0".into(),
        args: vec![("K8S_POD_NAME".into(), "p".into())],
        port_mappings: vec![PortMapping {
            host_port: 30000 + tn.index as u16,
            container_port: 80,
            protocol: "tcp".into(),
            host_ip: String::new(),
        }],
        dns: None,
    };
    let result = run(cni.add(&conf, &att)).unwrap();
    let ips = result.pod_ips("eth0");
    assert_eq!(ips.len(), 1, "{result:?}");
    let prefix = tn.subnet.trim_end_matches("0/24");
    assert!(ips[0].starts_with(prefix), "{ips:?} not in {}", tn.subnet);
    assert!(in_netns(&netns, &["ip", "-4", "addr", "show", "eth0"]).contains(&ips[0]));
    assert_eq!(ipam_files(&dir.path().join("ipam")), [ips[0].clone()]);
    assert!(
        iptables_mentions(&id) > 0,
        "no NAT rules for the attachment"
    );
    // No CHECK here: Debian's portmap fails CHECK on IPv4-only attachments
    // (containernetworking/plugins#819). The bridge-only test below runs it.
    assert_eq!(cni.cached(), vec![id.clone()]);

    run(cni.del(&id)).unwrap();
    assert!(cni.cached().is_empty());
    assert!(ipam_files(&dir.path().join("ipam")).is_empty());
    assert!(!in_netns(&netns, &["ip", "link"]).contains("eth0"));
    assert_eq!(iptables_mentions(&id), 0, "rules left after DEL");
    // DEL is idempotent.
    run(cni.del(&id)).unwrap();
}

#[test]
fn del_after_the_namespace_is_gone_frees_the_address() {
    let tn = TestNet::reserve();
    let dir = tempfile::tempdir().unwrap();
    let pinned = Netns::new(dir.path());
    let netns = pinned.0.clone();
    let conf = ConfList::parse(
        Path::new("old.conflist"),
        &format!(
            r#"{{"cniVersion":"0.4.0","name":"old-{b}","plugins":[{{"type":"bridge","bridge":"{b}","isGateway":true,
            "ipam":{{"type":"host-local","dataDir":"{d}","subnet":"{s}"}}}}]}}"#,
            b = tn.bridge,
            d = dir.path().join("ipam").display(),
            s = tn.subnet
        ),
    )
    .unwrap();
    let cni = Cni::new(plugin_dirs(), dir.path().join("cache"));
    let id = format!("{:0>64}", tn.index + 7);
    let att = Attachment {
        container_id: id.clone(),
        netns: netns.clone(),
        ifname: "eth0".into(),
        ..Default::default()
    };
    assert_eq!(run(cni.add(&conf, &att)).unwrap().pod_ips("eth0").len(), 1);
    run(cni.check(&id)).unwrap();
    drop(pinned);
    run(cni.del(&id)).unwrap();
    assert!(ipam_files(&dir.path().join("ipam")).is_empty());
}

#[test]
fn broken_configurations_name_file_and_plugin() {
    let tn = TestNet::reserve();
    let dir = tempfile::tempdir().unwrap();
    let cni = Cni::new(plugin_dirs(), dir.path().join("cache"));
    let missing = ConfList::parse(
        Path::new("/etc/x/10-m.conflist"),
        r#"{"cniVersion":"1.0.0","name":"m","plugins":[{"type":"bridge"},{"type":"no-such-plugin"}]}"#,
    )
    .unwrap();
    let att = Attachment {
        container_id: format!("{:0>64}", tn.index + 11),
        netns: "/proc/self/ns/net".into(),
        ifname: "eth0".into(),
        ..Default::default()
    };
    let e = run(cni.add(&missing, &att)).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "/etc/x/10-m.conflist: plugin \"no-such-plugin\" not found in /opt/cni/bin:/usr/lib/cni"
        ),
        "{e}"
    );
    assert!(
        cni.cached().is_empty(),
        "nothing is cached when nothing ran"
    );

    // The plugin's own message comes through, and DEL cleans the failed ADD up.
    let pinned = Netns::new(dir.path());
    let netns = pinned.0.clone();
    let bad = ConfList::parse(
        Path::new("20-bad.conflist"),
        &format!(
            r#"{{"cniVersion":"1.0.0","name":"bad","plugins":[{{"type":"bridge","bridge":"{}",
            "ipam":{{"type":"host-local","dataDir":"{}","ranges":[[{{"subnet":"not-a-subnet"}}]]}}}}]}}"#,
            tn.bridge,
            dir.path().join("ipam").display()
        ),
    )
    .unwrap();
    let att = Attachment {
        netns: netns.clone(),
        ..att
    };
    let e = run(cni.add(&bad, &att)).unwrap_err().to_string();
    assert!(
        e.starts_with("plugin \"bridge\" (20-bad.conflist) failed on ADD: ")
            && e.contains("not-a-subnet"),
        "{e}"
    );
    // Its DEL fails the same way; the entry stays until the caller gives up on it.
    let e = run(cni.del(&att.container_id)).unwrap_err().to_string();
    assert!(
        e.contains("failed on DEL") && e.contains("not-a-subnet"),
        "{e}"
    );
    assert_eq!(cni.cached(), vec![att.container_id.clone()]);
    cni.forget(&att.container_id);
    assert!(cni.cached().is_empty());

    let e = config::first_in(&{
        let d = dir.path().join("net.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("05-broken.conflist"), "{\"name\": ").unwrap();
        d
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("05-broken.conflist: EOF while parsing"), "{e}");
}

#[test]
fn the_default_networks_rules_are_made_once_per_boot_and_never_twice() {
    let tn = TestNet::reserve();
    let dir = tempfile::tempdir().unwrap();
    let net = DefaultNetwork {
        name: format!("peapod-{}", tn.bridge),
        bridge: tn.bridge.clone(),
        subnet: tn.subnet.clone(),
        ipam_dir: dir.path().join("ipam"),
    };
    let cni = Cni::new(plugin_dirs(), dir.path().join("cache"));
    let marker = dir.path().join("rules/net");
    let count = || peapod_testkit::network_rules(&tn.bridge).len();
    assert_eq!(count(), 0);
    // Callers racing on first use make each rule once.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| run(cni.ensure_rules(&net, &marker)).unwrap());
        }
    });
    assert_eq!(
        count(),
        3,
        "{:#?}",
        peapod_testkit::network_rules(&tn.bridge)
    );
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let recorded = std::fs::read_to_string(&marker).unwrap();
    assert!(recorded.starts_with(boot.trim()), "{recorded}");
    // Within the boot the marker is trusted: no iptables run.
    peapod_testkit::remove_network_rules(&tn.bridge);
    run(cni.ensure_rules(&net, &marker)).unwrap();
    assert_eq!(count(), 0);
    // A marker from another boot, or for other rules, is not: what is missing is made.
    std::fs::write(&marker, recorded.replacen(boot.trim(), "another-boot", 1)).unwrap();
    run(cni.ensure_rules(&net, &marker)).unwrap();
    assert_eq!(count(), 3);
    std::fs::write(&marker, "").unwrap();
    run(cni.ensure_rules(&net, &marker)).unwrap();
    assert_eq!(count(), 3, "rules that exist are not added again");
    // Every pod's traffic that leaves the subnet by another interface is masqueraded.
    let nat = &peapod_testkit::network_rules(&tn.bridge)[0];
    assert_eq!(nat.0, "nat");
    assert!(
        nat.1.starts_with(&format!(
            "POSTROUTING -s {} ! -d 224.0.0.0/4 ! -o {} ",
            tn.subnet, tn.bridge
        )),
        "{nat:?}"
    );
}
