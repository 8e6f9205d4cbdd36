//! Probes: readiness, liveness and startup with exec, httpGet (named port), tcpSocket and
//! grpc (against a health server the test runs inside the pod's network namespace).

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

fn condition(pod: &Value, kind: &str) -> String {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .and_then(|c| c["status"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn readiness_flips_both_ways_while_running() {
    let env = Env::new();
    let name = format!("ready-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:
  - name: c
    image: {IMAGE}
    command: [sleep, '3600']
    readinessProbe:
      exec: {{command: [cat, /tmp/ready]}}
      periodSeconds: 1
      failureThreshold: 1
"
        ),
    ));
    let pod = env.wait_phase(&name, "Running");
    assert_eq!(cstatus(&pod, "c")["ready"], false);
    assert_eq!(condition(&pod, "Ready"), "False");
    env.exec(&name, "c", &["touch", "/tmp/ready"]);
    let pod = env.wait_for(&name, Duration::from_secs(10), |p| {
        condition(p, "Ready") == "True"
    });
    assert_eq!(cstatus(&pod, "c")["ready"], true);
    assert_eq!(condition(&pod, "ContainersReady"), "True");
    env.exec(&name, "c", &["rm", "/tmp/ready"]);
    let pod = env.wait_for(&name, Duration::from_secs(10), |p| {
        condition(p, "Ready") == "False"
    });
    assert_eq!(cstatus(&pod, "c")["restartCount"], 0);
    assert!(cstatus(&pod, "c")["state"]["running"].is_object());
    let events = env.ok(&["get", "events"]);
    assert!(
        events.contains("Readiness probe failed: cat: can't open '/tmp/ready'"),
        "{events}"
    );
}

#[test]
fn liveness_failures_restart_the_container() {
    let env = Env::new();
    let name = format!("live-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {IMAGE}
    command: [sleep, '3600']
    livenessProbe:
      exec: {{command: [sh, -c, 'echo not alive; exit 1']}}
      periodSeconds: 1
      failureThreshold: 3
"
        ),
    ));
    env.wait_phase(&name, "Running");
    let pod = env.wait_for(&name, Duration::from_secs(20), |p| {
        cstatus(p, "c")["restartCount"].as_i64() >= Some(1)
    });
    let c = cstatus(&pod, "c");
    assert_eq!(c["restartCount"], 1);
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 137);
    let events = env.ok(&["get", "events"]);
    assert!(
        events.contains("Liveness probe failed: not alive"),
        "{events}"
    );
    assert!(
        events.contains("Container c failed liveness probe, will be restarted"),
        "{events}"
    );
}

#[test]
fn startup_probe_gates_liveness_and_http_by_named_port() {
    let env = Env::new();
    let name = format!("startup-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:
  - name: web
    image: {IMAGE}
    command: [sh, -c, 'mkdir /www && echo ok > /www/index.html && sleep 3 && touch /tmp/started && exec httpd -f -p 8080 -h /www']
    ports: [{{name: http, containerPort: 8080}}]
    startupProbe:
      exec: {{command: [test, -f, /tmp/started]}}
      periodSeconds: 1
      failureThreshold: 30
    livenessProbe:
      httpGet: {{path: /index.html, port: http}}
      periodSeconds: 1
      failureThreshold: 1
    readinessProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 1
  - name: missing
    image: {IMAGE}
    command: [sleep, '3600']
    readinessProbe:
      httpGet: {{path: /nothing-here, port: 8080}}
      periodSeconds: 1
"
        ),
    ));
    let pod = env.wait_phase(&name, "Running");
    assert_eq!(cstatus(&pod, "web")["started"], false);
    assert_eq!(cstatus(&pod, "web")["ready"], false);
    let pod = env.wait_for(&name, Duration::from_secs(15), |p| {
        cstatus(p, "web")["ready"] == true
    });
    let web = cstatus(&pod, "web");
    assert_eq!(web["started"], true);
    // Liveness (failureThreshold 1) would have killed it had it run before startup passed.
    assert_eq!(web["restartCount"], 0);
    assert_eq!(cstatus(&pod, "missing")["ready"], false);
    let events = env.ok(&["get", "events"]);
    assert!(
        events.contains("Readiness probe failed: HTTP probe failed with statuscode: 404"),
        "{events}"
    );
    assert!(!events.contains("Liveness probe failed"), "{events}");
}

/// A gRPC health server of the test's own, listening inside the pod's network namespace;
/// `status` sets the service's serving status (true: SERVING).
struct HealthServer {
    status: tokio::sync::mpsc::Sender<bool>,
}

impl HealthServer {
    fn start(netns: &std::path::Path, port: u16, service: &'static str) -> HealthServer {
        let listener = peapod_oci::ns::listen_tcp_in(netns, ([0, 0, 0, 0], port).into()).unwrap();
        listener.set_nonblocking(true).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bool>(4);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (reporter, service_impl) = tonic_health::server::health_reporter();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                tokio::spawn(
                    tonic::transport::Server::builder()
                        .add_service(service_impl)
                        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                            listener,
                        )),
                );
                while let Some(serving) = rx.recv().await {
                    let st = if serving {
                        tonic_health::ServingStatus::Serving
                    } else {
                        tonic_health::ServingStatus::NotServing
                    };
                    reporter.set_service_status(service, st).await;
                }
            });
        });
        HealthServer { status: tx }
    }

    fn set(&self, serving: bool) {
        self.status.blocking_send(serving).unwrap();
    }
}

#[test]
fn grpc_probe_against_a_health_server() {
    let env = Env::new();
    let name = format!("grpc-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:
  - name: c
    image: {IMAGE}
    command: [sleep, '3600']
    readinessProbe:
      grpc: {{port: 50051, service: app}}
      periodSeconds: 1
      failureThreshold: 1
"
        ),
    ));
    env.wait_phase(&name, "Running");
    // Nothing listens yet.
    let pod = env.wait_for(&name, Duration::from_secs(10), |_| {
        env.ok(&["get", "events"])
            .contains("Readiness probe failed")
    });
    assert_eq!(condition(&pod, "Ready"), "False");
    let events = env.ok(&["get", "events"]);
    let ip = pod["status"]["podIP"].as_str().unwrap();
    assert!(
        events.contains(&format!(
            "error: failed to connect service at \"{ip}:50051\": dial tcp {ip}:50051: connect: connection refused"
        )),
        "{events}"
    );

    let infra = env.state(&name)["infra_pid"].as_i64().unwrap();
    let server = HealthServer::start(
        std::path::Path::new(&format!("/proc/{infra}/ns/net")),
        50051,
        "app",
    );
    server.set(true);
    let pod = env.wait_for(&name, Duration::from_secs(10), |p| {
        condition(p, "Ready") == "True"
    });
    assert_eq!(cstatus(&pod, "c")["ready"], true);

    server.set(false);
    let pod = env.wait_for(&name, Duration::from_secs(10), |p| {
        condition(p, "Ready") == "False"
    });
    assert_eq!(cstatus(&pod, "c")["restartCount"], 0);
    let events = env.ok(&["describe", "pod", &name]);
    assert!(
        events
            .contains("Readiness probe failed: service unhealthy (responded with \"NOT_SERVING\")"),
        "{events}"
    );
}

/// An HTTPS probe against a server with a self-signed certificate (not verified, as the
/// kubelet does): `openssl s_server` run inside the pod's network namespace.
#[test]
fn https_probe_skips_certificate_verification() {
    let env = Env::new();
    let (key, cert) = (env.path().join("key.pem"), env.path().join("cert.pem"));
    let st = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=not-the-pod", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let name = format!("https-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:
  - name: c
    image: {IMAGE}
    command: [sleep, '3600']
    readinessProbe:
      httpGet: {{scheme: HTTPS, port: 8443, path: /}}
      periodSeconds: 1
      failureThreshold: 1
"
        ),
    ));
    env.wait_phase(&name, "Running");
    let ip = env.pod(&name)["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    env.wait_for(&name, Duration::from_secs(10), |_| {
        env.ok(&["get", "events"]).contains(&format!(
            "Readiness probe failed: Get \"https://{ip}:8443/\": dial tcp {ip}:8443: connect: connection refused"
        ))
    });
    let infra = env.state(&name)["infra_pid"].as_i64().unwrap();
    let mut server = std::process::Command::new("nsenter")
        .arg(format!("--net=/proc/{infra}/ns/net"))
        .args([
            "openssl", "s_server", "-quiet", "-www", "-accept", "8443", "-key",
        ])
        .arg(&key)
        .arg("-cert")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        env.wait_for(&name, Duration::from_secs(15), |p| {
            condition(p, "Ready") == "True"
        })
    }));
    let _ = server.kill();
    let _ = server.wait();
    let pod = ready.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert_eq!(cstatus(&pod, "c")["ready"], true);
}
