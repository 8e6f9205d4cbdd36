//! What a pod's containers share: localhost, IPC, UTS, and (when asked) PIDs.

use std::collections::HashMap;
use std::time::Duration;

use crate::harness::*;

/// The namespace view of `describe`: process → (kind → inode).
fn namespace_view(env: &Env, pod: &str) -> HashMap<String, HashMap<String, String>> {
    let out = env.ok(&["describe", "pod", pod]);
    let mut lines = out
        .lines()
        .skip_while(|l| !l.starts_with("Namespaces:"))
        .skip(1);
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut view = HashMap::new();
    for l in lines.take_while(|l| l.starts_with("  ")) {
        let cells: Vec<&str> = l.split_whitespace().collect();
        let row: HashMap<String, String> = header
            .iter()
            .zip(&cells)
            .skip(2)
            .map(|(h, c)| (h.clone(), c.to_string()))
            .collect();
        view.insert(cells[0].to_string(), row);
    }
    view
}

/// Scenario 4: a backend on 127.0.0.1:2368 in one container is reached by a proxy in
/// another; net, IPC and UTS namespaces are the infra's everywhere, mount namespaces
/// differ, and the host name is the pod's name.
#[test]
fn shared_localhost_and_namespaces() {
    let env = Env::new();
    let name = format!("proxy-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:
  - name: backend
    image: {IMAGE}
    command: [sh, -c, 'mkdir -p /www && echo ghost backend > /www/index.html && exec httpd -f -p 127.0.0.1:2368 -h /www']
  - name: proxy
    image: {IMAGE}
    command: [sh, -c, 'while true; do nc -l -p 8080 -e nc 127.0.0.1 2368; done']
"
        ),
    ));
    env.wait_phase(&name, "Running");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, out) = env.exec(
            &name,
            "proxy",
            &["wget", "-qO-", "http://127.0.0.1:8080/index.html"],
        );
        if code == 0 {
            assert_eq!(out, "ghost backend\n");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the proxy never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let view = namespace_view(&env, &name);
    let infra = &view["(infra)"];
    for c in ["backend", "proxy"] {
        for k in ["NET", "IPC", "UTS"] {
            assert_eq!(
                view[c][k], infra[k],
                "{c} does not share the pod's {k} namespace: {view:?}"
            );
        }
        assert_ne!(
            view[c]["MNT"], infra["MNT"],
            "{c} shares the infra's mount namespace"
        );
        assert_ne!(
            view[c]["PID"], infra["PID"],
            "{c} shares the infra's PID namespace without shareProcessNamespace"
        );
        assert_eq!(env.exec(&name, c, &["hostname"]), (0, format!("{name}\n")));
        assert_eq!(
            env.exec(&name, c, &["cat", "/etc/hostname"]),
            (0, format!("{name}\n"))
        );
    }
    assert_ne!(view["backend"]["MNT"], view["proxy"]["MNT"]);
    // The host's namespaces are not the pod's.
    let host_net = std::fs::metadata("/proc/self/ns/net")
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    assert_ne!(infra["NET"], host_net.to_string());
}

/// Scenario 5: with shareProcessNamespace the infra is PID 1 for every container, each sees
/// the others' processes, and orphaned zombies are reaped; without it, each container has
/// its own PID 1.
#[test]
fn shared_process_namespace_and_reaping() {
    let env = Env::new();
    let shared = format!("pidshare-{}", unique());
    env.apply_ok(&pod_yaml(
        &shared,
        &format!(
            "  shareProcessNamespace: true
  containers:
  - {{name: a, image: {IMAGE}, command: [sleep, '1234']}}
  - {{name: b, image: {IMAGE}, command: [sh, -c, 'sleep 4321']}}
"
        ),
    ));
    env.wait_phase(&shared, "Running");
    let (_, ps) = env.exec(&shared, "a", &["ps", "-o", "pid,stat,args"]);
    let pid1 = ps
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_default()
        .to_string();
    assert!(
        pid1.ends_with("/pause"),
        "PID 1 is not the infra process:\n{ps}"
    );
    assert!(
        ps.contains("sleep 4321"),
        "container b's process is not visible:\n{ps}"
    );
    // Orphans whose parent exits are reparented to PID 1 (the infra), which reaps them.
    let (code, _) = env.exec(
        &shared,
        "b",
        &["sh", "-c", "for i in 1 2 3 4 5; do (sleep 0.2 &); done"],
    );
    assert_eq!(code, 0);
    std::thread::sleep(Duration::from_millis(1200));
    let (_, ps) = env.exec(&shared, "a", &["ps", "-o", "pid,stat,args"]);
    let zombies: Vec<&str> = ps
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|s| s.starts_with('Z'))
        })
        .collect();
    assert!(zombies.is_empty(), "zombies left in the pod:\n{ps}");

    let own = format!("pidown-{}", unique());
    env.apply_ok(&pod_yaml(
        &own,
        &format!(
            "  containers:
  - {{name: a, image: {IMAGE}, command: [sleep, '1234']}}
  - {{name: b, image: {IMAGE}, command: [sleep, '4321']}}
"
        ),
    ));
    env.wait_phase(&own, "Running");
    let (_, ps) = env.exec(&own, "a", &["ps", "-o", "pid,args"]);
    let pid1 = ps
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_default()
        .to_string();
    assert!(
        pid1.ends_with("sleep 1234"),
        "PID 1 is not the container's own process:\n{ps}"
    );
    assert!(
        !ps.contains("4321") && !ps.contains("pause"),
        "another container's processes are visible:\n{ps}"
    );
}
