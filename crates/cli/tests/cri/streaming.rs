//! Exec, Attach and PortForward through the streaming server, as a kubelet (or kubectl
//! through it) connects: an HTTP upgrade to SPDY/3.1 with Kubernetes' stream protocols,
//! or to WebSocket with the channel protocol.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use peapod_cri::proto as pb;
use peapod_cri::streaming::spdy::{Connection, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::*;

/// Upgrades a request to `url` to SPDY/3.1 offering `protocols`; returns the connection
/// and the protocol the server chose.
async fn spdy(url: &str, protocols: &str) -> (Connection, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut tcp = TcpStream::connect(host).await.unwrap();
    let req = format!(
        "POST /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocols}\r\nContent-Length: 0\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(tcp.read(&mut b).await.unwrap(), 1, "the server hung up");
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let chosen = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("X-Stream-Protocol-Version")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (Connection::new(tcp, false), chosen)
}

async fn open(conn: &Connection, headers: &[(&str, &str)]) -> Stream {
    let h = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::time::timeout(Duration::from_secs(10), conn.open(h))
        .await
        .expect("the server accepts streams in time")
        .unwrap()
}

async fn read_all(s: &mut Stream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(d) = tokio::time::timeout(Duration::from_secs(20), s.read())
        .await
        .expect("the stream ends")
    {
        out.extend(d);
    }
    out
}

/// Reads `s` until its output contains `what`.
async fn read_until(s: &mut Stream, what: &str) -> String {
    let mut out = Vec::new();
    while !String::from_utf8_lossy(&out).contains(what) {
        let d = tokio::time::timeout(Duration::from_secs(20), s.read())
            .await
            .unwrap_or_else(|_| panic!("no {what:?} in {:?}", String::from_utf8_lossy(&out)))
            .unwrap_or_else(|| {
                panic!(
                    "ended without {what:?}: {:?}",
                    String::from_utf8_lossy(&out)
                )
            });
        out.extend(d);
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn sandbox(s: &Server, rt: &mut Rt, name: &str) -> (String, pb::PodSandboxConfig) {
    let config = s.sandbox_config(name, &unique());
    let id = rt
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    (id, config)
}

async fn run(
    rt: &mut Rt,
    sb: &str,
    config: &pb::PodSandboxConfig,
    c: pb::ContainerConfig,
) -> String {
    let id = rt
        .create_container(pb::CreateContainerRequest {
            pod_sandbox_id: sb.into(),
            config: Some(c),
            sandbox_config: Some(config.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .container_id;
    rt.start_container(pb::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    wait_state(rt, &id, pb::ContainerState::ContainerRunning).await;
    id
}

async fn exec_url(rt: &mut Rt, id: &str, cmd: &[&str], tty: bool, stdin: bool) -> String {
    rt.exec(pb::ExecRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        stderr: !tty,
    })
    .await
    .unwrap()
    .into_inner()
    .url
}

#[tokio::test(flavor = "current_thread")]
async fn exec_and_attach_over_spdy() {
    let s = Server::start().await;
    let mut rt = s.runtime().await.unwrap();
    let (sb, config) = sandbox(&s, &mut rt, "streams").await;
    let id = run(&mut rt, &sb, &config, container("main", "sleep 3600")).await;

    // Without a terminal: both outputs apart, and the exit code in a v4 status.
    let url = exec_url(
        &mut rt,
        &id,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        false,
        false,
    )
    .await;
    let (conn, proto) = spdy(&url, "v4.channel.k8s.io, v3.channel.k8s.io").await;
    assert_eq!(proto, "v4.channel.k8s.io");
    let mut error = open(&conn, &[("streamType", "error")]).await;
    let mut stdout = open(&conn, &[("streamType", "stdout")]).await;
    let mut stderr = open(&conn, &[("streamType", "stderr")]).await;
    assert_eq!(read_all(&mut stdout).await, b"out\n");
    assert_eq!(read_all(&mut stderr).await, b"err\n");
    let status: serde_json::Value = serde_json::from_slice(&read_all(&mut error).await).unwrap();
    assert_eq!(status["status"], "Failure", "{status}");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");
    conn.closed().await;

    // A token is good once.
    let again = reqwest_status(&url).await;
    assert_eq!(again, 404);

    // With a terminal and input: the shell runs what it reads, at the size it was given.
    let url = exec_url(&mut rt, &id, &["sh"], true, true).await;
    let (conn, _) = spdy(&url, "v4.channel.k8s.io").await;
    let mut error = open(&conn, &[("streamtype", "error")]).await;
    let stdin = open(&conn, &[("streamtype", "stdin")]).await;
    let mut stdout = open(&conn, &[("streamtype", "stdout")]).await;
    let resize = open(&conn, &[("streamtype", "resize")]).await;
    resize
        .writer()
        .write(br#"{"Width":100,"Height":30}"#)
        .await
        .unwrap();
    stdin
        .writer()
        .write(b"tty; echo $((6*7)); stty size\n")
        .await
        .unwrap();
    let out = read_until(&mut stdout, "30 100").await;
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(out.contains("42"), "{out}");
    stdin.writer().write(b"exit 0\n").await.unwrap();
    read_all(&mut stdout).await;
    let status = String::from_utf8(read_all(&mut error).await).unwrap();
    assert_eq!(status, r#"{"metadata":{},"status":"Success"}"#);

    // Attach to a container that reads its input once: what is written comes back, and
    // closing the input ends the container.
    let mut c = container("cat", "cat");
    c.stdin = true;
    c.stdin_once = true;
    let cat = run(&mut rt, &sb, &config, c).await;
    let url = rt
        .attach(pb::AttachRequest {
            container_id: cat.clone(),
            stdin: true,
            tty: false,
            stdout: true,
            stderr: true,
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let (conn, _) = spdy(&url, "v4.channel.k8s.io").await;
    let mut error = open(&conn, &[("streamtype", "error")]).await;
    let stdin = open(&conn, &[("streamtype", "stdin")]).await;
    let mut stdout = open(&conn, &[("streamtype", "stdout")]).await;
    let _stderr = open(&conn, &[("streamtype", "stderr")]).await;
    stdin.writer().write(b"echoed back\n").await.unwrap();
    assert_eq!(
        read_until(&mut stdout, "echoed back\n").await,
        "echoed back\n"
    );
    stdin.writer().close().await.unwrap();
    read_all(&mut stdout).await;
    let status = String::from_utf8(read_all(&mut error).await).unwrap();
    assert!(status.contains("Success"), "{status}");
    let st = wait_state(&mut rt, &cat, pb::ContainerState::ContainerExited).await;
    assert_eq!(st.exit_code, 0);
    let log = std::fs::read_to_string(&st.log_path).unwrap();
    assert!(log.contains(" stdout F echoed back"), "{log}");

    // What cannot be streamed is refused at the RPC.
    let e = rt
        .exec(pb::ExecRequest {
            container_id: cat,
            cmd: vec!["true".into()],
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    let e = rt
        .exec(pb::ExecRequest {
            container_id: id.clone(),
            cmd: vec!["true".into()],
            tty: true,
            stderr: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");

    rt.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: sb })
        .await
        .unwrap();
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

/// The status of a plain GET to `url`.
async fn reqwest_status(url: &str) -> u16 {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut tcp = TcpStream::connect(host).await.unwrap();
    let req = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    tcp.read_to_string(&mut resp).await.unwrap();
    resp.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn port_forward_over_spdy_and_exec_over_websocket() {
    let s = Server::start().await;
    let mut rt = s.runtime().await.unwrap();
    let (sb, config) = sandbox(&s, &mut rt, "web").await;
    let script = "mkdir -p /www && echo served from the pod > /www/index.html && exec httpd -f -p 8080 -h /www";
    let id = run(&mut rt, &sb, &config, container("httpd", script)).await;
    let pf = |sb: String| {
        let mut rt = rt.clone();
        async move {
            rt.port_forward(pb::PortForwardRequest {
                pod_sandbox_id: sb,
                port: vec![8080],
            })
            .await
            .unwrap()
            .into_inner()
            .url
        }
    };
    let (conn, proto) = spdy(&pf(sb.clone()).await, "portforward.k8s.io").await;
    assert_eq!(proto, "portforward.k8s.io");
    // Two connections on one session, as kubectl makes them; the server may take a moment
    // to listen.
    let mut body = String::new();
    for request in ["0", "1"] {
        for _ in 0..50 {
            let mut error = open(
                &conn,
                &[
                    ("streamtype", "error"),
                    ("port", "8080"),
                    ("requestid", request),
                ],
            )
            .await;
            let mut data = open(
                &conn,
                &[
                    ("streamtype", "data"),
                    ("port", "8080"),
                    ("requestid", request),
                ],
            )
            .await;
            data.writer()
                .write(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
                .await
                .unwrap();
            body = String::from_utf8_lossy(&read_all(&mut data).await).into_owned();
            let err = read_all(&mut error).await;
            if body.contains("served from the pod") {
                assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(body.contains("served from the pod"), "{body}");
    }
    // A closed port is reported on the error stream.
    let mut error = open(
        &conn,
        &[("streamtype", "error"), ("port", "9"), ("requestid", "2")],
    )
    .await;
    let mut data = open(
        &conn,
        &[("streamtype", "data"), ("port", "9"), ("requestid", "2")],
    )
    .await;
    let err = String::from_utf8(read_all(&mut error).await).unwrap();
    assert!(err.contains("error forwarding port 9"), "{err}");
    assert!(read_all(&mut data).await.is_empty());
    drop(conn);

    // Exec over WebSocket (v5): channel 1 and 2 carry the outputs, channel 3 the status.
    let url = exec_url(
        &mut rt,
        &id,
        &["sh", "-c", "read x; echo got $x; echo e >&2; exit 2"],
        false,
        true,
    )
    .await;
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url)
            .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v5.channel.k8s.io, v4.channel.k8s.io".parse().unwrap(),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers()["Sec-WebSocket-Protocol"],
        "v5.channel.k8s.io"
    );
    ws.send(Message::binary(b"\x00input\n".to_vec()))
        .await
        .unwrap();
    // Closing channel 0 (v5's close signal) ends the input.
    ws.send(Message::binary(vec![255, 0])).await.unwrap();
    let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(Ok(m)) = tokio::time::timeout(Duration::from_secs(20), ws.next())
        .await
        .expect("the session ends")
    {
        let Message::Binary(b) = m else { continue };
        let Some((&ch, rest)) = b.split_first() else {
            continue;
        };
        match ch {
            1 => out.extend_from_slice(rest),
            2 => err.extend_from_slice(rest),
            3 => status.extend_from_slice(rest),
            _ => {}
        }
    }
    assert_eq!(out, b"got input\n");
    assert_eq!(err, b"e\n");
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(status["details"]["causes"][0]["message"], "2", "{status}");

    rt.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: sb })
        .await
        .unwrap();
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}
