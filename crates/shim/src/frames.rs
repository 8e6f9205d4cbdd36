//! An interactive session (exec or attach) over a supervisor's socket. After the request
//! and its answer, the connection carries frames both ways: a kind byte, a big-endian
//! 32-bit length, and that many bytes.
//!
//! To the supervisor: input, end of input, terminal size (two big-endian 16-bit numbers,
//! width then height). From it: standard output, standard error, and last the end (a
//! big-endian 32-bit exit code, or nothing when there is none); then it closes.

use peapod_runtime::{Chunk, OutputStream, StreamSession};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

const INPUT: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const RESIZE: u8 = 3;
const END: u8 = 4;
const INPUT_END: u8 = 5;

/// Frames larger than this are refused.
const MAX_FRAME: u32 = 1 << 20;

async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: u8,
    data: &[u8],
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(5 + data.len());
    buf.push(kind);
    buf.extend_from_slice(&(data.len() as u32).to_be_bytes());
    buf.extend_from_slice(data);
    w.write_all(&buf).await
}

/// The next frame; `None` at the end of the connection.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!("a frame of {len} bytes")));
    }
    let mut data = vec![0u8; len as usize];
    r.read_exact(&mut data).await?;
    Ok(Some((head[0], data)))
}

/// Supervisor side: carries `session` over `conn` until its output has ended (then sends
/// the end) or the peer has gone.
pub(crate) async fn serve(conn: UnixStream, session: StreamSession) {
    let StreamSession {
        mut output,
        mut input,
        resize,
        exit,
        ..
    } = session;
    let (mut rd, mut wr) = conn.into_split();
    let from_peer = async move {
        while let Ok(Some((kind, data))) = read_frame(&mut rd).await {
            match kind {
                INPUT => {
                    if let Some(tx) = &input
                        && tx.send(data).await.is_err()
                    {
                        input = None;
                    }
                }
                INPUT_END => input = None,
                RESIZE if data.len() == 4 => {
                    let w = u16::from_be_bytes([data[0], data[1]]);
                    let h = u16::from_be_bytes([data[2], data[3]]);
                    let _ = resize.send((w, h)).await;
                }
                _ => {}
            }
        }
    };
    let to_peer = async move {
        while let Some(c) = output.recv().await {
            let kind = match c.stream {
                OutputStream::Stdout => STDOUT,
                OutputStream::Stderr => STDERR,
            };
            if write_frame(&mut wr, kind, &c.data).await.is_err() {
                return;
            }
        }
        let code = exit.await.ok().flatten();
        let payload = code.map(|c| c.to_be_bytes().to_vec()).unwrap_or_default();
        let _ = write_frame(&mut wr, END, &payload).await;
        let _ = wr.shutdown().await;
    };
    // The session is over when its output is (the peer is told), or when the peer goes.
    tokio::select! {
        _ = to_peer => {}
        _ = from_peer => {}
    }
}

/// Server side: the session a supervisor carries over `conn`.
pub(crate) fn client(conn: UnixStream, tty: bool, with_input: bool) -> StreamSession {
    let (mut rd, mut wr) = conn.into_split();
    let (out_tx, output) = mpsc::channel::<Chunk>(64);
    let (in_tx, mut in_rx) = mpsc::channel::<Vec<u8>>(16);
    let (resize, mut resize_rx) = mpsc::channel::<(u16, u16)>(4);
    let (exit_tx, exit) = oneshot::channel();
    tokio::spawn(async move {
        let mut input_open = with_input;
        loop {
            tokio::select! {
                d = in_rx.recv(), if input_open => {
                    let sent = match d {
                        Some(d) => write_frame(&mut wr, INPUT, &d).await,
                        None => {
                            input_open = false;
                            write_frame(&mut wr, INPUT_END, &[]).await
                        }
                    };
                    if sent.is_err() {
                        return;
                    }
                }
                r = resize_rx.recv() => match r {
                    Some((w, h)) => {
                        let mut b = w.to_be_bytes().to_vec();
                        b.extend_from_slice(&h.to_be_bytes());
                        if write_frame(&mut wr, RESIZE, &b).await.is_err() {
                            return;
                        }
                    }
                    // The session's owner has gone: so does the connection.
                    None => return,
                },
            }
        }
    });
    tokio::spawn(async move {
        let mut code = None;
        while let Ok(Some((kind, data))) = read_frame(&mut rd).await {
            let stream = match kind {
                STDOUT => OutputStream::Stdout,
                STDERR => OutputStream::Stderr,
                END => {
                    if let Ok(b) = <[u8; 4]>::try_from(data.as_slice()) {
                        code = Some(i32::from_be_bytes(b));
                    }
                    break;
                }
                _ => continue,
            };
            let chunk = Chunk {
                stream,
                data: data.into(),
            };
            if out_tx.send(chunk).await.is_err() {
                break;
            }
        }
        let _ = exit_tx.send(code);
    });
    StreamSession {
        output,
        input: with_input.then_some(in_tx),
        resize,
        tty,
        exit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_end_cleanly() {
        let (mut a, mut b) = tokio::io::duplex(64);
        write_frame(&mut a, STDOUT, b"hello").await.unwrap();
        write_frame(&mut a, END, &7i32.to_be_bytes()).await.unwrap();
        drop(a);
        assert_eq!(
            read_frame(&mut b).await.unwrap(),
            Some((STDOUT, b"hello".to_vec()))
        );
        assert_eq!(
            read_frame(&mut b).await.unwrap(),
            Some((END, 7i32.to_be_bytes().to_vec()))
        );
        assert_eq!(read_frame(&mut b).await.unwrap(), None);
    }

    #[tokio::test]
    async fn oversized_frames_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[STDOUT, 0xff, 0xff, 0xff, 0xff])
            .await
            .unwrap();
        assert!(read_frame(&mut b).await.is_err());
    }

    #[tokio::test]
    async fn a_session_crosses_a_socket_both_ways() {
        let (near, far) = UnixStream::pair().unwrap();
        // The process side: echoes input as output, then exits with 3.
        let (out_tx, out_rx) = mpsc::channel(8);
        let (in_tx, mut in_rx) = mpsc::channel::<Vec<u8>>(8);
        let (resize_tx, mut resize_rx) = mpsc::channel(4);
        let (exit_tx, exit_rx) = oneshot::channel();
        tokio::spawn(async move {
            while let Some(d) = in_rx.recv().await {
                let c = Chunk {
                    stream: OutputStream::Stderr,
                    data: d.into(),
                };
                out_tx.send(c).await.unwrap();
            }
            let _ = exit_tx.send(Some(3));
        });
        let session = StreamSession {
            output: out_rx,
            input: Some(in_tx),
            resize: resize_tx,
            tty: false,
            exit: exit_rx,
        };
        tokio::spawn(serve(far, session));
        let mut s = client(near, false, true);
        s.resize.send((80, 24)).await.unwrap();
        assert_eq!(resize_rx.recv().await, Some((80, 24)));
        s.input
            .as_ref()
            .unwrap()
            .send(b"ping".to_vec())
            .await
            .unwrap();
        let c = s.output.recv().await.unwrap();
        assert_eq!((c.stream, &*c.data), (OutputStream::Stderr, &b"ping"[..]));
        drop(s.input.take());
        assert!(s.output.recv().await.is_none());
        assert_eq!(s.exit.await.unwrap(), Some(3));
    }
}
