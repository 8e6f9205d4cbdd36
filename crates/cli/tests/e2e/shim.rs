//! Scenario 10: the shim supervises without the CLI; without the shim the pod is Unknown.

use std::time::Duration;

use crate::harness::*;

#[test]
fn shim_supervises_alone_and_its_loss_shows_unknown() {
    let env = Env::new();
    let name = format!("shim-{}", unique());
    env.apply_ok(&pod_yaml(&name, &format!("  containers:\n  - {{name: c, image: {IMAGE}, command: [sh, -c, 'sleep 0.2; exit 1']}}\n")));
    // No CLI runs between these polls: the restarts are the shim's doing.
    let pod = env.wait_for(&name, Duration::from_secs(20), |p| {
        p["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0)
            >= 2
    });
    assert_eq!(pod["status"]["phase"], "Running");
    let shim = env.shim_pid(&name);
    let infra = env.state(&name)["infra_pid"].as_i64().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shim), nix::sys::signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(env.pod(&name)["status"]["phase"], "Unknown");
    let row = env.ok(&["get", "pods", &name]);
    assert!(row.contains("Unknown"), "{row}");
    // Deleting a pod whose shim is gone still removes everything.
    env.ok(&["delete", "pod", &name, "--force"]);
    assert!(!alive(infra), "the infra process survived");
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}
