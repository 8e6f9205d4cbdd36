//! Pod networking through CNI: addresses, hostPort, pod to pod, hostNetwork, DNS and hosts
//! files, and DEL in every way a pod can go.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;

/// `curl URL`, retried for a few seconds while the pod comes up.
fn curl(url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("curl")
            .args(["-fsS", "--max-time", "2", url])
            .output()
            .expect("curl is installed");
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        if Instant::now() > deadline {
            panic!("curl {url}: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn host_port(env: &Env, k: u32) -> u32 {
    20000 + env.net.index * 4 + k
}

fn in_subnet(env: &Env, ip: &str) -> bool {
    ip.starts_with(env.net.subnet.trim_end_matches("0/24")) && ip != env.net.gateway()
}

#[test]
fn proxy_on_host_port_reaches_backend_on_localhost() {
    let env = Env::new();
    let name = format!("proxy-{}", unique());
    let port = host_port(&env, 0);
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:
  - name: backend
    image: {IMAGE}
    command: [sh, -c, 'mkdir -p /www && echo hello through the proxy > /www/index.html && exec httpd -f -p 127.0.0.1:2368 -h /www']
  - name: proxy
    image: {IMAGE}
    command: [nc, -ll, -p, '80', -e, nc, 127.0.0.1, '2368']
    ports:
    - {{containerPort: 80, hostPort: {port}}}
"
        ),
    ));
    let pod = env.wait_phase(&name, "Running");
    let ip = pod["status"]["podIP"].as_str().unwrap().to_string();
    assert!(in_subnet(&env, &ip), "podIP {ip} not in {}", env.net.subnet);
    assert_eq!(pod["status"]["podIPs"][0]["ip"], ip.as_str());
    let host_ip = pod["status"]["hostIP"].as_str().unwrap().to_string();
    assert!(!host_ip.is_empty());
    let wide = env.ok(&["get", "pods", &name, "-o", "wide"]);
    assert!(wide.contains(&ip), "{wide}");

    assert_eq!(
        curl(&format!("http://127.0.0.1:{port}/")),
        "hello through the proxy\n"
    );
    assert_eq!(
        curl(&format!("http://{host_ip}:{port}/")),
        "hello through the proxy\n"
    );

    // The same hostPort again: the second pod cannot have it, and nothing is made for it.
    let second = format!("proxy2-{}", unique());
    env.apply_ok(&pod_yaml(
        &second,
        &format!(
            "  containers:
  - name: c
    image: {IMAGE}
    command: [sleep, '3600']
    ports:
    - {{containerPort: 81, hostPort: {port}}}
"
        ),
    ));
    let want = format!("hostPort {port}/TCP is already used by pod default/{name}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = env.ok(&["describe", "pod", &second]);
        if d.contains("FailedCreatePodSandBox") && d.contains(&want) {
            break;
        }
        assert!(Instant::now() < deadline, "no such event:\n{d}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(env.pod(&second)["status"]["phase"], "Pending");
    assert_eq!(env.leases(), 1, "only the first pod holds an address");
    let cached = std::fs::read_dir(env.path().join("lib/cni/cache"))
        .unwrap()
        .count();
    assert_eq!(cached, 1, "only the first pod is attached");
    // The first pod still answers.
    assert_eq!(
        curl(&format!("http://127.0.0.1:{port}/")),
        "hello through the proxy\n"
    );

    env.ok(&["delete", "pod", &name, &second, "--force"]);
    assert!(env.leftovers().is_empty(), "{:#?}", env.leftovers());
    let refused = Command::new("curl")
        .args([
            "-fsS",
            "--max-time",
            "1",
            &format!("http://127.0.0.1:{port}/"),
        ])
        .status()
        .unwrap();
    assert!(
        !refused.success(),
        "the host port still answers after delete"
    );
}

#[test]
fn pod_to_pod_and_host_network() {
    let env = Env::new();
    let a = format!("srv-{}", unique());
    let b = format!("cli-{}", unique());
    let h = format!("hostnet-{}", unique());
    env.apply_ok(&pod_yaml(
        &a,
        &format!(
            "  containers:
  - name: web
    image: {IMAGE}
    command: [sh, -c, 'mkdir /www && echo served by A > /www/index.html && exec httpd -f -p 8080 -h /www']
"
        ),
    ));
    let ip_a = env.wait_phase(&a, "Running")["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    env.apply_ok(&pod_yaml(
        &b,
        &format!("  containers:\n  - {{name: c, image: {IMAGE}, command: [sleep, '3600']}}\n"),
    ));
    let ip_b = env.wait_phase(&b, "Running")["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(ip_a, ip_b);
    let url = format!("http://{ip_a}:8080/");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, out) = env.exec(&b, "c", &["timeout", "3", "wget", "-qO-", &url]);
        if code == 0 {
            assert_eq!(out, "served by A\n");
            break;
        }
        assert!(Instant::now() < deadline, "pod B cannot reach {url}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The pod's own interface carries its address.
    let (_, addr) = env.exec(&b, "c", &["ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("{ip_b}/24")), "{addr}");

    env.apply_ok(&pod_yaml(
        &h,
        &format!(
            "  hostNetwork: true\n  containers:\n  - {{name: c, image: {IMAGE}, command: [sleep, '3600']}}\n"
        ),
    ));
    let pod = env.wait_phase(&h, "Running");
    assert_eq!(pod["status"]["podIP"], pod["status"]["hostIP"]);
    let (_, links) = env.exec(&h, "c", &["ip", "-o", "link"]);
    assert!(
        links.contains(&env.net.bridge),
        "the host's bridge {} is not visible:\n{links}",
        env.net.bridge
    );
    let (_, hostname) = env.exec(&h, "c", &["hostname"]);
    assert_eq!(
        hostname.trim(),
        nix::unistd::gethostname().unwrap().to_string_lossy()
    );
    assert_eq!(env.leases(), 2, "the host-network pod takes no address");
    env.ok(&["delete", "pod", &a, &b, &h, "--force"]);
    assert!(env.leftovers().is_empty(), "{:#?}", env.leftovers());
}

fn file_in(env: &Env, pod: &str, path: &str) -> String {
    let (code, out) = env.exec(pod, "c", &["cat", path]);
    assert_eq!(code, 0, "cat {path} in {pod}");
    out
}

#[test]
fn resolv_conf_by_dns_policy_and_hosts_file() {
    let env = Env::with_config(
        0.2,
        1.0,
        "[dns]\ncluster_dns = [\"10.96.0.10\"]\ncluster_domain = \"cluster.test\"",
    );
    let t = unique();
    let sleep = format!("  - {{name: c, image: {IMAGE}, command: [sleep, '3600']}}\n");
    let manifests = [
        (format!("cf-{t}"), String::new()),
        (format!("def-{t}"), "  dnsPolicy: Default\n".to_string()),
        (
            format!("none-{t}"),
            "  dnsPolicy: None
  dnsConfig:
    nameservers: [192.0.2.53]
    searches: [a.example, b.example]
    options: [{name: ndots, value: '2'}, {name: edns0}]
"
            .to_string(),
        ),
        (
            format!("hosts-{t}"),
            "  hostname: web-0
  subdomain: web
  hostAliases:
  - {ip: 10.1.2.3, hostnames: [foo.local, bar.local]}
  dnsConfig:
    options: [{name: ndots, value: '1'}]
"
            .to_string(),
        ),
    ];
    for (name, extra) in &manifests {
        env.apply_ok(&pod_yaml(name, &format!("{extra}  containers:\n{sleep}")));
    }
    for (name, _) in &manifests {
        env.wait_phase(name, "Running");
    }
    assert_eq!(
        file_in(&env, &manifests[0].0, "/etc/resolv.conf"),
        "search default.svc.cluster.test svc.cluster.test cluster.test\nnameserver 10.96.0.10\noptions ndots:5\n"
    );
    let host: Vec<String> = std::fs::read_to_string("/etc/resolv.conf")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("nameserver"))
        .map(str::to_string)
        .collect();
    let def = file_in(&env, &manifests[1].0, "/etc/resolv.conf");
    for ns in &host {
        assert!(def.contains(ns.as_str()), "{ns:?} missing from\n{def}");
    }
    assert!(!def.contains("10.96.0.10"));
    assert_eq!(
        file_in(&env, &manifests[2].0, "/etc/resolv.conf"),
        "search a.example b.example\nnameserver 192.0.2.53\noptions ndots:2 edns0\n"
    );
    let hosts_pod = &manifests[3].0;
    assert_eq!(
        file_in(&env, hosts_pod, "/etc/resolv.conf"),
        "search default.svc.cluster.test svc.cluster.test cluster.test\nnameserver 10.96.0.10\noptions ndots:1\n"
    );
    let ip = env.pod(hosts_pod)["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let hosts = file_in(&env, hosts_pod, "/etc/hosts");
    assert!(
        hosts.contains(&format!(
            "{ip}\tweb-0.web.default.svc.cluster.test\tweb-0\n"
        )),
        "{hosts}"
    );
    assert!(hosts.contains("127.0.0.1\tlocalhost\n"), "{hosts}");
    assert!(
        hosts.contains("# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n"),
        "{hosts}"
    );
    let (_, fqdn) = env.exec(hosts_pod, "c", &["hostname"]);
    assert_eq!(fqdn.trim(), "web-0");
    for (name, _) in &manifests {
        env.ok(&["delete", "pod", name, "--force"]);
    }

    // Without cluster DNS, ClusterFirst falls back to the host's resolv.conf.
    let plain = Env::new();
    let name = format!("fallback-{t}");
    plain.apply_ok(&pod_yaml(&name, &format!("  containers:\n{sleep}")));
    plain.wait_phase(&name, "Running");
    let rc = file_in(&plain, &name, "/etc/resolv.conf");
    for ns in &host {
        assert!(rc.contains(ns.as_str()), "{ns:?} missing from\n{rc}");
    }
}

#[test]
fn del_runs_after_the_infra_or_the_shim_is_killed() {
    let env = Env::new();
    let name = format!("killed-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!("  containers:\n  - {{name: c, image: {IMAGE}, command: [sleep, '3600']}}\n"),
    ));
    let first_ip = env.wait_phase(&name, "Running")["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let infra = env.state(&name)["infra_pid"].as_i64().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(infra as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    // A new sandbox: the old one's address is released, the new one has its own.
    let pod = env.wait_for(&name, Duration::from_secs(20), |p| {
        p["status"]["phase"] == "Running"
            && p["status"]["podIP"]
                .as_str()
                .is_some_and(|ip| ip != first_ip)
            && cstatus(p, "c")["ready"] == true
    });
    assert!(in_subnet(&env, pod["status"]["podIP"].as_str().unwrap()));
    assert_eq!(
        env.leases(),
        1,
        "the first sandbox's address was not released"
    );
    let events = env.ok(&["get", "events"]);
    assert!(events.contains("SandboxChanged"), "{events}");

    let shim = env.shim_pid(&name);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shim), nix::sys::signal::SIGKILL).unwrap();
    env.wait_phase(&name, "Unknown");
    env.ok(&["delete", "pod", &name, "--force"]);
    assert!(env.leftovers().is_empty(), "{:#?}", env.leftovers());
}

#[test]
fn two_hundred_cycles_leak_nothing() {
    let env = Env::new();
    let port = host_port(&env, 1);
    let file = env.path().join("cycle.yaml");
    let name = format!("cycle-{}", unique());
    std::fs::write(
        &file,
        pod_yaml(
            &name,
            &format!(
                "  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: {IMAGE}\n    command: [sleep, '3600']\n    ports: [{{containerPort: 80, hostPort: {port}}}]\n"
            ),
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    for i in 0..200 {
        env.ok(&["apply", "-f", f, "--wait"]);
        assert_eq!(env.leases(), 1, "cycle {i}");
        env.ok(&["delete", "-f", f, "--force"]);
        assert_eq!(env.leases(), 0, "cycle {i}: the address is still leased");
    }
    assert!(env.leftovers().is_empty(), "{:#?}", env.leftovers());
    assert_eq!(netns_count(env.path()), 0, "network namespaces leaked");
}

/// Network namespaces pinned below `dir` (this test's roots; tests running beside it pin
/// their own elsewhere).
fn netns_count(dir: &std::path::Path) -> usize {
    let dir = dir.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains("nsfs") && l.contains("net:["))
        .filter(|l| l.split(' ').nth(4).is_some_and(|p| p.starts_with(&dir)))
        .count()
}

#[test]
fn broken_cni_configuration_is_reported_and_leaks_nothing() {
    let env = Env::new();
    let dir = env.path().join("net.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("10-broken.conflist"),
        "{\"cniVersion\": \"1.0.0\", \"name\": ",
    )
    .unwrap();
    let name = format!("broken-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!("  containers:\n  - {{name: c, image: {IMAGE}, command: [sleep, '3600']}}\n"),
    ));
    let wait_event = |text: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let d = env.ok(&["describe", "pod", &name]);
            if d.contains("FailedCreatePodSandBox") && d.contains(text) {
                return;
            }
            assert!(Instant::now() < deadline, "no event with {text:?}:\n{d}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_event(&format!(
        "{}: EOF while parsing",
        dir.join("10-broken.conflist").display()
    ));
    assert_eq!(env.pod(&name)["status"]["phase"], "Pending");
    assert!(
        env.network_leftovers().is_empty(),
        "{:?}",
        env.network_leftovers()
    );

    std::fs::write(
        dir.join("10-broken.conflist"),
        format!(
            r#"{{"cniVersion":"1.0.0","name":"b","plugins":[{{"type":"bridge","bridge":"{}"}},{{"type":"no-such-plugin"}}]}}"#,
            env.net.bridge
        ),
    )
    .unwrap();
    wait_event("plugin \"no-such-plugin\" not found in /opt/cni/bin:/usr/lib/cni");
    assert!(
        env.network_leftovers().is_empty(),
        "{:?}",
        env.network_leftovers()
    );

    // Fixed: the pod comes up on the next attempt.
    std::fs::remove_file(dir.join("10-broken.conflist")).unwrap();
    env.wait_phase(&name, "Running");
    env.ok(&["delete", "pod", &name, "--force"]);
    assert!(env.leftovers().is_empty(), "{:#?}", env.leftovers());
}

#[test]
fn attachments_left_by_a_reboot_are_released_by_the_next_pod() {
    let env = Env::new();
    let lost = format!("lost-{}", unique());
    env.apply_ok(&pod_yaml(
        &lost,
        &format!("  containers:\n  - {{name: c, image: {IMAGE}, command: [sleep, '3600']}}\n"),
    ));
    env.wait_phase(&lost, "Running");
    assert_eq!(env.leases(), 1);
    // What a reboot does: every process gone, /run (mounts, namespaces, records) wiped,
    // iptables rules gone; the persistent root, with the CNI cache and leases, kept.
    let shim = env.shim_pid(&lost);
    let state = env.state(&lost);
    let sandbox = state["sandbox_id"].as_str().unwrap().to_string();
    let kill = |pid: i64| {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::SIGKILL,
        );
    };
    kill(shim.into());
    kill(state["infra_pid"].as_i64().unwrap());
    for c in state["containers"].as_array().unwrap() {
        kill(c["pid"].as_i64().unwrap());
    }
    std::thread::sleep(Duration::from_millis(200));
    let uid = state["pod"]["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    // A BestEffort pod: its cgroup is under kubepods/besteffort.
    peapod_oci::cgroup::remove(&format!("/peapod/kubepods/besteffort/pod{uid}")).unwrap();
    let run = env.path().join("run");
    let mut targets: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|t| t.starts_with(&*run.to_string_lossy()))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        nix::mount::umount2(t.as_str(), nix::mount::MntFlags::MNT_DETACH).unwrap();
    }
    std::fs::remove_dir_all(&run).unwrap();
    let saved = Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&saved.stdout).into_owned();
    let mut chains = Vec::new();
    for l in rules
        .lines()
        .filter(|l| l.contains(&sandbox) && l.starts_with("-A "))
    {
        let args: Vec<String> = l[3..]
            .split(' ')
            .map(|a| a.trim_matches('"').to_string())
            .collect();
        if let Some(j) = args.iter().position(|a| a == "-j") {
            chains.push(args[j + 1].clone());
        }
        let del = format!("iptables -t nat -D {}", &l[3..]);
        assert!(
            Command::new("sh")
                .args(["-c", &del])
                .status()
                .unwrap()
                .success(),
            "{del}"
        );
    }
    for c in chains.iter().filter(|c| c.starts_with("CNI-")) {
        let _ = Command::new("iptables")
            .args(["-t", "nat", "-F", c])
            .status();
        let _ = Command::new("iptables")
            .args(["-t", "nat", "-X", c])
            .status();
    }
    assert_eq!(env.leases(), 1, "the lost pod's address is still leased");

    let next = format!("next-{}", unique());
    env.apply_ok(&pod_yaml(
        &next,
        &format!("  containers:\n  - {{name: c, image: {IMAGE}, command: [sleep, '3600']}}\n"),
    ));
    env.wait_phase(&next, "Running");
    assert_eq!(env.leases(), 1, "only the new pod holds an address");
    let cached: Vec<_> = std::fs::read_dir(env.path().join("lib/cni/cache"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!cached.iter().any(|c| c.contains(&sandbox)), "{cached:?}");
    env.ok(&["delete", "pod", &next, "--force"]);
    assert!(
        env.network_leftovers().is_empty(),
        "{:#?}",
        env.network_leftovers()
    );
}

/// A network namespace standing for the world outside the host, joined to the host by a
/// veth pair (`host` on the host side, `outside` in the namespace), removed on drop.
struct Outside {
    name: String,
    link: String,
    host: String,
    outside: String,
}

impl Outside {
    fn new(index: u32) -> Outside {
        let base = index * 4;
        let net = format!("10.{}.{}.", 250 + base / 65536, (base / 256) % 256);
        let o = Outside {
            name: format!("ppout{index}"),
            link: format!("ppo{index}"),
            host: format!("{net}{}", base % 256 + 1),
            outside: format!("{net}{}", base % 256 + 2),
        };
        let ip = |args: &str| {
            let ok = Command::new("sh")
                .args(["-c", &format!("ip {args}")])
                .status()
                .unwrap()
                .success();
            assert!(ok, "ip {args}");
        };
        // What a killed run of this test left is taken down first.
        o.remove();
        ip(&format!("netns add {}", o.name));
        ip(&format!(
            "link add {} type veth peer name eth0 netns {}",
            o.link, o.name
        ));
        ip(&format!("addr add {}/30 dev {}", o.host, o.link));
        ip(&format!("link set {} up", o.link));
        ip(&format!(
            "-n {} addr add {}/30 dev eth0 && ip -n {} link set eth0 up",
            o.name, o.outside, o.name
        ));
        o
    }

    /// Removes the veth pair and the namespace.
    fn remove(&self) {
        for args in [["link", "del", &self.link], ["netns", "del", &self.name]] {
            let _ = Command::new("ip")
                .args(args)
                .stderr(std::process::Stdio::null())
                .status();
        }
    }

    /// Serves one HTTP request on port 8080 inside the namespace, answering with the
    /// address the connection came from; returns that address.
    fn serve_one(&self) -> std::thread::JoinHandle<String> {
        use std::io::{Read, Write};
        let ns = std::fs::File::open(format!("/run/netns/{}", self.name)).unwrap();
        std::thread::spawn(move || {
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let l = std::net::TcpListener::bind("0.0.0.0:8080").unwrap();
            let (mut s, peer) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let peer = peer.ip().to_string();
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{peer}",
                peer.len()
            );
            peer
        })
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        self.remove();
    }
}

#[test]
fn traffic_leaving_the_pod_network_is_masqueraded_by_the_networks_own_rules() {
    let env = Env::new();
    let outside = Outside::new(env.net.index);
    let served = outside.serve_one();
    let names = [format!("out-{}", unique()), format!("out2-{}", unique())];
    for n in &names {
        env.apply_ok(&pod_yaml(
            n,
            &format!("  containers:\n  - {{name: c, image: {IMAGE}, command: [sleep, '3600']}}\n"),
        ));
        env.wait_phase(n, "Running");
    }
    // The outside has no route to the pod subnet: only a masqueraded connection, whose
    // source is the host's address on that link, is answered.
    let url = format!("http://{}:8080/", outside.outside);
    let (code, out) = env.exec(&names[0], "c", &["timeout", "5", "wget", "-qO-", &url]);
    assert_eq!(code, 0, "the pod cannot reach {url}: {out}");
    assert_eq!(out, outside.host);
    assert_eq!(served.join().unwrap(), outside.host);
    // One set of rules for the network, whatever the number of pods: a masquerade rule and
    // two forward rules, naming its bridge.
    let rules = peapod_testkit::network_rules(&env.net.bridge);
    let tables: Vec<&str> = rules.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(tables, ["nat", "filter", "filter"], "{rules:#?}");
    assert!(
        rules[0].1.contains(&format!("-s {} ", env.net.subnet))
            && rules[0].1.contains("MASQUERADE"),
        "{rules:#?}"
    );
    env.ok(&["delete", "pod", &names[0], &names[1], "--force"]);
    assert!(env.leftovers().is_empty(), "{:#?}", env.leftovers());
}
