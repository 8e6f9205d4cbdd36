//! Exec and attach sessions as Kubernetes' remote command protocols carry them: over SPDY
//! (one stream per role: `error`, `stdin`, `stdout`, `stderr`, `resize`) and over
//! WebSocket (one channel byte before each message: 0 stdin, 1 stdout, 2 stderr, 3 error,
//! 4 resize; with `v5`, 255 closes a channel). The protocol version (`v4` and later) decides
//! what the error stream says at the end: a JSON `Status` with the exit code, or plain text.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use peapod_runtime::{OutputStream, StreamSession};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::spdy::{self, StreamWriter};
use super::{Io, Options, Target};
use crate::Backend;

/// How long a client may take to open the streams it asked for.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The remote command protocols served over SPDY, preferred first.
pub(crate) const SPDY_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// The remote command protocols served over WebSocket.
pub(crate) const WS_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];

/// What a transport hears from the client.
enum Inbound {
    Stdin(Vec<u8>),
    StdinEnd,
    Resize(u16, u16),
}

/// What a transport tells the client.
enum Outbound {
    Output(OutputStream, Arc<[u8]>),
    /// The error stream's one message (empty for a v1-v3 success), then the end.
    Status(Vec<u8>),
}

/// The error stream's final message.
pub(crate) fn status_message(json_status: bool, result: &Result<Option<i32>, String>) -> Vec<u8> {
    if !json_status {
        return match result {
            Ok(None) | Ok(Some(0)) => Vec::new(),
            Ok(Some(code)) => {
                format!("command terminated with non-zero exit code: exit status {code}")
                    .into_bytes()
            }
            Err(e) => e.clone().into_bytes(),
        };
    }
    let v = match result {
        Ok(None) | Ok(Some(0)) => serde_json::json!({"metadata": {}, "status": "Success"}),
        Ok(Some(code)) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(e) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": e,
            "reason": "InternalError",
        }),
    };
    v.to_string().into_bytes()
}

/// Terminal sizes in a resize stream: JSON objects one after another.
#[derive(Default)]
pub(crate) struct ResizeDecoder {
    buf: Vec<u8>,
}

impl ResizeDecoder {
    /// The sizes completed by `data`.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Vec<(u16, u16)> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Size {
            width: u16,
            height: u16,
        }
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Size>();
        let mut used = 0;
        loop {
            match it.next() {
                Some(Ok(s)) => {
                    out.push((s.width, s.height));
                    used = it.byte_offset();
                }
                Some(Err(e)) if e.is_eof() => break,
                // Garbage: drop what there is.
                Some(Err(_)) => {
                    used = self.buf.len();
                    break;
                }
                None => break,
            }
        }
        self.buf.drain(..used);
        out
    }
}

/// Opens the session the request names.
async fn open<R: Backend>(rt: &R, target: &Target, o: &Options) -> Result<StreamSession, String> {
    let r = match target {
        Target::Exec { container, cmd } => {
            rt.exec_streams(container, cmd.clone(), o.tty, o.stdin)
                .await
        }
        Target::Attach { container } => rt.attach_streams(container, o.stdin).await,
        Target::PortForward { .. } => unreachable!("port forwarding is not a remote command"),
    };
    r.map_err(|e| e.to_string())
}

/// Runs `session` between the client's `inbound` and `outbound` until its output ends;
/// then sends the status.
async fn pump(
    session: Result<StreamSession, String>,
    mut inbound: mpsc::Receiver<Inbound>,
    outbound: mpsc::Sender<Outbound>,
    json_status: bool,
) {
    let mut session = match session {
        Ok(s) => s,
        Err(e) => {
            let _ = outbound
                .send(Outbound::Status(status_message(json_status, &Err(e))))
                .await;
            return;
        }
    };
    let mut input = session.input.take();
    let resize = session.resize.clone();
    // The client's reader may end (its input done) before the output does; a client that
    // is really gone shows when an output can no longer be sent.
    let mut listening = true;
    loop {
        tokio::select! {
            c = session.output.recv() => match c {
                Some(c) => {
                    if outbound.send(Outbound::Output(c.stream, c.data)).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
            m = inbound.recv(), if listening => match m {
                Some(Inbound::Stdin(d)) => {
                    if let Some(i) = &input && i.send(d).await.is_err() {
                        input = None;
                    }
                }
                Some(Inbound::StdinEnd) => input = None,
                Some(Inbound::Resize(w, h)) => {
                    let _ = resize.send((w, h)).await;
                }
                None => {
                    listening = false;
                    input = None;
                }
            },
        }
    }
    drop(input);
    let code = session.exit.await.ok().flatten();
    let _ = outbound
        .send(Outbound::Status(status_message(json_status, &Ok(code))))
        .await;
}

/// Serves one remote command over SPDY (the upgrade already answered with `protocol`).
pub(crate) async fn serve_spdy<R: Backend>(
    rt: Arc<R>,
    conn: spdy::Connection,
    protocol: &str,
    target: Target,
    o: Options,
) {
    let json_status = matches!(protocol, "v4.channel.k8s.io" | "v5.channel.k8s.io");
    let resizable = protocol != "channel.k8s.io" && protocol != "v2.channel.k8s.io";
    // The streams the request said the client opens, the error stream first of all.
    let expected = 1
        + usize::from(o.stdin)
        + usize::from(o.stdout)
        + usize::from(o.stderr && !o.tty)
        + usize::from(o.tty && resizable);
    let mut error: Option<StreamWriter> = None;
    let mut stdout: Option<StreamWriter> = None;
    let mut stderr: Option<StreamWriter> = None;
    let mut stdin = None;
    let mut resize = None;
    let collected = tokio::time::timeout(STREAM_CREATION_TIMEOUT, async {
        let mut n = 0;
        while n < expected {
            let Some(s) = conn.accept().await else {
                return false;
            };
            let w = s.writer();
            if w.reply().await.is_err() {
                return false;
            }
            match s.header("streamtype").unwrap_or_default() {
                "error" => error = Some(w),
                "stdout" => stdout = Some(w),
                "stderr" => stderr = Some(w),
                "stdin" => stdin = Some(s.split().0),
                "resize" => resize = Some(s.split().0),
                other => {
                    tracing::debug!(stream = other, "ignoring a stream of an unknown type");
                    continue;
                }
            }
            n += 1;
        }
        true
    })
    .await;
    if collected != Ok(true) {
        tracing::warn!("streaming: the client did not open its streams in time");
        conn.go_away().await;
        return;
    }
    let (in_tx, in_rx) = mpsc::channel(16);
    if let Some(mut rx) = stdin {
        let tx = in_tx.clone();
        tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                if tx.send(Inbound::Stdin(d)).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(Inbound::StdinEnd).await;
        });
    }
    if let Some(mut rx) = resize {
        let tx = in_tx.clone();
        tokio::spawn(async move {
            let mut dec = ResizeDecoder::default();
            while let Some(d) = rx.recv().await {
                for (w, h) in dec.feed(&d) {
                    if tx.send(Inbound::Resize(w, h)).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    // The session runs while the client is there (`in_tx` is held so the inbound side
    // stays open after the client's input ends; the client leaving ends the loop below).
    let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(16);
    let session = open(&*rt, &target, &o).await;
    let pumping = tokio::spawn(pump(session, in_rx, out_tx, json_status));
    loop {
        let m = tokio::select! {
            m = out_rx.recv() => m,
            _ = conn.closed() => None,
        };
        let Some(m) = m else { break };
        let sent = match m {
            Outbound::Output(stream, data) => {
                let w = match (stream, o.tty) {
                    (OutputStream::Stderr, false) => stderr.as_ref(),
                    _ => stdout.as_ref(),
                };
                match w {
                    Some(w) => w.write(&data).await,
                    None => Ok(()),
                }
            }
            Outbound::Status(msg) => {
                for w in [&stdout, &stderr].into_iter().flatten() {
                    let _ = w.close().await;
                }
                if let Some(e) = &error {
                    if !msg.is_empty() {
                        let _ = e.write(&msg).await;
                    }
                    let _ = e.close().await;
                }
                break;
            }
        };
        if sent.is_err() {
            break;
        }
    }
    drop(in_tx);
    pumping.abort();
    conn.go_away().await;
    // The client closes once it has read everything; a client that does not is left.
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
}

/// Serves one remote command over WebSocket (the handshake done with `protocol`).
pub(crate) async fn serve_ws<R: Backend>(
    rt: Arc<R>,
    ws: WebSocketStream<Io>,
    protocol: &str,
    target: Target,
    o: Options,
) {
    let base64 = protocol.contains("base64");
    let json_status = protocol.starts_with("v4.") || protocol.starts_with("v5.");
    let close_signal = protocol.starts_with("v5.");
    let (mut sink, mut source) = ws.split();
    let encode = move |channel: u8, data: &[u8]| -> Message {
        if base64 {
            use base64::Engine;
            let text = format!(
                "{}{}",
                (b'0' + channel) as char,
                base64::engine::general_purpose::STANDARD.encode(data)
            );
            Message::text(text)
        } else {
            let mut m = Vec::with_capacity(data.len() + 1);
            m.push(channel);
            m.extend_from_slice(data);
            Message::binary(m)
        }
    };
    // An empty message on the first channel the client reads tells it the session is up.
    let first = if o.stdout {
        1
    } else if o.stderr {
        2
    } else {
        3
    };
    if sink.send(encode(first, &[])).await.is_err() {
        return;
    }
    let (in_tx, in_rx) = mpsc::channel(16);
    let stdin_wanted = o.stdin;
    let mut reader = tokio::spawn(async move {
        let mut dec = ResizeDecoder::default();
        while let Some(Ok(m)) = source.next().await {
            let data: Vec<u8> = match m {
                Message::Binary(b) => b.to_vec(),
                Message::Text(t) if base64 => {
                    use base64::Engine;
                    let t = t.as_bytes();
                    let Some((&c, rest)) = t.split_first() else {
                        continue;
                    };
                    let Ok(mut d) = base64::engine::general_purpose::STANDARD.decode(rest) else {
                        continue;
                    };
                    d.insert(0, c.wrapping_sub(b'0'));
                    d
                }
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&channel, payload)) = data.split_first() else {
                continue;
            };
            let msg = match channel {
                0 if stdin_wanted => Inbound::Stdin(payload.to_vec()),
                4 => {
                    for (w, h) in dec.feed(payload) {
                        if in_tx.send(Inbound::Resize(w, h)).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                255 if close_signal && payload == [0] => Inbound::StdinEnd,
                _ => continue,
            };
            if in_tx.send(msg).await.is_err() {
                return;
            }
        }
        // The client closed: its input ends with it.
        let _ = in_tx.send(Inbound::StdinEnd).await;
    });
    let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(16);
    let session = open(&*rt, &target, &o).await;
    let pumping = tokio::spawn(pump(session, in_rx, out_tx, json_status));
    while let Some(m) = out_rx.recv().await {
        let msg = match m {
            Outbound::Output(stream, data) => {
                let channel = match (stream, o.tty) {
                    (OutputStream::Stderr, false) => 2,
                    _ => 1,
                };
                encode(channel, &data)
            }
            Outbound::Status(msg) => {
                if !msg.is_empty() {
                    let _ = sink.send(encode(3, &msg)).await;
                }
                break;
            }
        };
        if sink.send(msg).await.is_err() {
            break;
        }
    }
    pumping.abort();
    // A normal closure: the client's readers end cleanly, and it then reads the status.
    let normal = tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "".into(),
    };
    let _ = sink.send(Message::Close(Some(normal))).await;
    // Read on until the client answers the close: a socket closed with unread input is
    // reset, and a reset can take the client's last unread messages (the status) with it.
    if tokio::time::timeout(Duration::from_secs(5), &mut reader)
        .await
        .is_err()
    {
        reader.abort();
    }
    let _ = sink.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_say_what_kubectl_reads() {
        let ok = status_message(true, &Ok(Some(0)));
        assert_eq!(
            String::from_utf8(ok).unwrap(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let v: serde_json::Value =
            serde_json::from_slice(&status_message(true, &Ok(Some(3)))).unwrap();
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        let v: serde_json::Value =
            serde_json::from_slice(&status_message(true, &Err("no such container".into())))
                .unwrap();
        assert_eq!(v["message"], "no such container");
        assert!(status_message(false, &Ok(Some(0))).is_empty());
        assert!(status_message(false, &Ok(None)).is_empty());
        assert!(
            String::from_utf8(status_message(false, &Ok(Some(2))))
                .unwrap()
                .contains("exit status 2")
        );
    }

    #[test]
    fn resize_messages_may_split_and_join_anywhere() {
        let mut d = ResizeDecoder::default();
        assert_eq!(d.feed(br#"{"Width":80,"Hei"#), vec![]);
        assert_eq!(
            d.feed(b"ght\":24}\n{\"Width\":100,\"Height\":40}{\"Width\":1"),
            vec![(80, 24), (100, 40)]
        );
        assert_eq!(d.feed(br#","Height":2}"#), vec![(1, 2)]);
        assert_eq!(d.feed(b"garbage"), vec![]);
        assert_eq!(d.feed(br#"{"Width":5,"Height":6}"#), vec![(5, 6)]);
    }
}
