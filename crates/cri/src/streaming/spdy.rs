//! SPDY/3.1, as Kubernetes streaming uses it: many streams over one connection, each opened
//! with a `SYN_STREAM` carrying headers (which name its role), answered with a
//! `SYN_REPLY`, and carrying `DATA` until a frame with the FIN flag. Header blocks are zlib
//! streams (one per direction for the whole connection) primed with SPDY/3's dictionary.
//!
//! Kubernetes' peers (moby/spdystream) do no flow control, and neither does this: window
//! updates and settings are read and ignored. Either side may open streams (a client with
//! odd IDs, a server with even ones); pings from the peer are answered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// A stream's headers, names in lower case, in the order sent.
pub type Headers = Vec<(String, String)>;

/// The value of header `name` (any case).
pub fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;
const FLAG_FIN: u8 = 0x01;
/// Data is sent in frames of at most this much.
const DATA_CHUNK: usize = 32 * 1024;
/// RST_STREAM status: the stream was refused (nobody takes new streams).
const REFUSED_STREAM: u32 = 3;
/// Most headers a block may hold, and most bytes it may inflate to.
const MAX_HEADERS: usize = 256;
const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// One SPDY frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        /// Stream ID.
        id: u32,
        /// The opener sends nothing more.
        fin: bool,
        /// Headers.
        headers: Headers,
    },
    /// Accepts a stream.
    SynReply {
        /// Stream ID.
        id: u32,
        /// The replier sends nothing more.
        fin: bool,
        /// Headers.
        headers: Headers,
    },
    /// More headers on a stream.
    Headers {
        /// Stream ID.
        id: u32,
        /// The sender sends nothing more.
        fin: bool,
        /// Headers.
        headers: Headers,
    },
    /// Data on a stream.
    Data {
        /// Stream ID.
        id: u32,
        /// The sender sends nothing more.
        fin: bool,
        /// Payload.
        data: Vec<u8>,
    },
    /// Ends a stream at once.
    RstStream {
        /// Stream ID.
        id: u32,
        /// Why.
        status: u32,
    },
    /// A ping (answered with the same ID).
    Ping(u32),
    /// The sender takes no new streams.
    GoAway {
        /// The last stream it took.
        last: u32,
    },
    /// A frame this implementation reads and ignores (settings, window updates, others).
    Ignored,
}

/// SPDY/3's header compression dictionary: length-prefixed words, then a tail of common
/// values.
fn dictionary() -> Vec<u8> {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
        "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct ",
        "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=",
        "iso-8859-1,utf-,*,enq=0.",
    );
    let mut d = Vec::with_capacity(1423);
    for w in WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(TAIL.as_bytes());
    d
}

fn bad(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

/// Encodes and decodes frames; keeps the two header compression streams.
pub struct Codec {
    deflate: Compress,
    inflate: Decompress,
    dict: Vec<u8>,
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new()
    }
}

impl Codec {
    /// A codec for a new connection.
    pub fn new() -> Codec {
        let dict = dictionary();
        let mut deflate = Compress::new(Compression::best(), true);
        deflate
            .set_dictionary(&dict)
            .expect("a fresh zlib stream takes a dictionary");
        Codec {
            deflate,
            inflate: Decompress::new(true),
            dict,
        }
    }

    fn compress(&mut self, headers: &Headers) -> Vec<u8> {
        let mut block = Vec::new();
        block.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (k, v) in headers {
            let k = k.to_ascii_lowercase();
            block.extend_from_slice(&(k.len() as u32).to_be_bytes());
            block.extend_from_slice(k.as_bytes());
            block.extend_from_slice(&(v.len() as u32).to_be_bytes());
            block.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut input = &block[..];
        loop {
            out.reserve(256);
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .expect("deflate does not fail on memory it owns");
            input = &input[(self.deflate.total_in() - before) as usize..];
            // A sync flush is complete once it left spare room in the output.
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }

    fn decompress(&mut self, mut input: &[u8]) -> std::io::Result<Headers> {
        let mut block = Vec::with_capacity(1024);
        loop {
            if block.len() == block.capacity() {
                if block.len() >= MAX_HEADER_BLOCK {
                    return Err(bad("header block too large"));
                }
                block.reserve(block.len());
            }
            let (in_before, out_before) = (self.inflate.total_in(), self.inflate.total_out());
            let primed = match self
                .inflate
                .decompress_vec(input, &mut block, FlushDecompress::Sync)
            {
                Ok(Status::StreamEnd) => break,
                Ok(_) => false,
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(&self.dict)
                        .map_err(|e| bad(format!("header dictionary: {e}")))?;
                    true
                }
                Err(e) => return Err(bad(format!("header block: {e}"))),
            };
            let used = (self.inflate.total_in() - in_before) as usize;
            input = &input[used..];
            if primed {
                continue;
            }
            // Done once the input is used up and the output had room to spare.
            if input.is_empty() && block.len() < block.capacity() {
                break;
            }
            let produced = self.inflate.total_out() - out_before;
            if used == 0 && produced == 0 && block.len() < block.capacity() {
                return Err(bad("header block does not inflate"));
            }
        }
        parse_headers(&block)
    }

    /// Encodes `frame` (which must not be [`Frame::Ignored`]).
    pub fn encode(&mut self, frame: &Frame) -> Vec<u8> {
        let control = |ty: u16, flags: u8, payload: Vec<u8>| {
            let mut out = Vec::with_capacity(8 + payload.len());
            out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
            out.extend_from_slice(&ty.to_be_bytes());
            out.extend_from_slice(&((u32::from(flags) << 24) | payload.len() as u32).to_be_bytes());
            out.extend_from_slice(&payload);
            out
        };
        let fin = |f: bool| if f { FLAG_FIN } else { 0 };
        match frame {
            Frame::SynStream {
                id,
                fin: f,
                headers,
            } => {
                let mut p = Vec::new();
                p.extend_from_slice(&id.to_be_bytes());
                p.extend_from_slice(&0u32.to_be_bytes());
                p.extend_from_slice(&[0, 0]);
                p.extend_from_slice(&self.compress(headers));
                control(SYN_STREAM, fin(*f), p)
            }
            Frame::SynReply {
                id,
                fin: f,
                headers,
            }
            | Frame::Headers {
                id,
                fin: f,
                headers,
            } => {
                let ty = match frame {
                    Frame::SynReply { .. } => SYN_REPLY,
                    _ => HEADERS,
                };
                let mut p = id.to_be_bytes().to_vec();
                p.extend_from_slice(&self.compress(headers));
                control(ty, fin(*f), p)
            }
            Frame::Data { id, fin: f, data } => {
                let mut out = Vec::with_capacity(8 + data.len());
                out.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(
                    &((u32::from(fin(*f)) << 24) | data.len() as u32).to_be_bytes(),
                );
                out.extend_from_slice(data);
                out
            }
            Frame::RstStream { id, status } => {
                let mut p = id.to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control(RST_STREAM, 0, p)
            }
            Frame::Ping(id) => control(PING, 0, id.to_be_bytes().to_vec()),
            Frame::GoAway { last } => {
                let mut p = last.to_be_bytes().to_vec();
                p.extend_from_slice(&0u32.to_be_bytes());
                control(GOAWAY, 0, p)
            }
            Frame::Ignored => Vec::new(),
        }
    }

    /// Reads the next frame; `None` at the end of the connection.
    pub async fn read<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
    ) -> std::io::Result<Option<Frame>> {
        let mut head = [0u8; 8];
        match r.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let flags = head[4];
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).await?;
        let word = |p: &[u8], at: usize| -> std::io::Result<u32> {
            p.get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| bad("frame too short"))
        };
        let fin = flags & FLAG_FIN != 0;
        if head[0] & 0x80 == 0 {
            let id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            return Ok(Some(Frame::Data {
                id,
                fin,
                data: payload,
            }));
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(bad(format!("SPDY version {version}")));
        }
        let ty = u16::from_be_bytes([head[2], head[3]]);
        let frame = match ty {
            SYN_STREAM => {
                let id = word(&payload, 0)? & 0x7fff_ffff;
                let headers = self.decompress(payload.get(10..).ok_or_else(|| bad("short"))?)?;
                Frame::SynStream { id, fin, headers }
            }
            SYN_REPLY | HEADERS => {
                let id = word(&payload, 0)? & 0x7fff_ffff;
                let headers = self.decompress(&payload[4..])?;
                if ty == SYN_REPLY {
                    Frame::SynReply { id, fin, headers }
                } else {
                    Frame::Headers { id, fin, headers }
                }
            }
            RST_STREAM => Frame::RstStream {
                id: word(&payload, 0)? & 0x7fff_ffff,
                status: word(&payload, 4)?,
            },
            PING => Frame::Ping(word(&payload, 0)?),
            GOAWAY => Frame::GoAway {
                last: word(&payload, 0)? & 0x7fff_ffff,
            },
            SETTINGS | WINDOW_UPDATE => Frame::Ignored,
            _ => Frame::Ignored,
        };
        Ok(Some(frame))
    }
}

fn parse_headers(block: &[u8]) -> std::io::Result<Headers> {
    let mut at = 0;
    let mut next = |n: usize| -> std::io::Result<&[u8]> {
        let s = block
            .get(at..at + n)
            .ok_or_else(|| bad("header block truncated"))?;
        at += n;
        Ok(s)
    };
    let count = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let n = count(next(4)?);
    if n > MAX_HEADERS {
        return Err(bad(format!("{n} headers")));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let klen = count(next(4)?);
        let k = String::from_utf8_lossy(next(klen)?).to_ascii_lowercase();
        let vlen = count(next(4)?);
        let v = String::from_utf8_lossy(next(vlen)?).into_owned();
        out.push((k, v));
    }
    Ok(out)
}

/// What the connection's reader knows of a stream.
struct Entry {
    /// Where its data goes; dropped at the peer's FIN.
    data: Option<mpsc::Sender<Vec<u8>>>,
    /// Told when the peer replies (streams this side opened).
    replied: Option<oneshot::Sender<()>>,
}

struct Shared {
    streams: Mutex<HashMap<u32, Entry>>,
}

/// One SPDY connection: streams the peer opens arrive through [`Connection::accept`];
/// [`Connection::open`] opens one.
pub struct Connection {
    out: mpsc::Sender<Frame>,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Stream>>,
    shared: Arc<Shared>,
    next_id: AtomicU32,
    /// Becomes true once the peer has gone (its end of the connection closed).
    gone: tokio::sync::watch::Receiver<bool>,
}

/// One stream: its headers, what the peer sends on it, and a way to send.
pub struct Stream {
    /// Stream ID.
    pub id: u32,
    /// The headers it was opened with.
    pub headers: Headers,
    data: mpsc::Receiver<Vec<u8>>,
    writer: StreamWriter,
}

/// The sending half of a stream.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Frame>,
}

fn closed() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the connection is closed")
}

impl StreamWriter {
    /// Sends `data` (in frames of at most 32 KiB).
    pub async fn write(&self, data: &[u8]) -> std::io::Result<()> {
        for chunk in data.chunks(DATA_CHUNK) {
            let f = Frame::Data {
                id: self.id,
                fin: false,
                data: chunk.to_vec(),
            };
            self.out.send(f).await.map_err(|_| closed())?;
        }
        Ok(())
    }

    /// Ends this side of the stream (a data frame with FIN).
    pub async fn close(&self) -> std::io::Result<()> {
        let f = Frame::Data {
            id: self.id,
            fin: true,
            data: Vec::new(),
        };
        self.out.send(f).await.map_err(|_| closed())
    }

    /// Accepts the stream (a `SYN_REPLY` with no headers).
    pub async fn reply(&self) -> std::io::Result<()> {
        let f = Frame::SynReply {
            id: self.id,
            fin: false,
            headers: Vec::new(),
        };
        self.out.send(f).await.map_err(|_| closed())
    }
}

impl Stream {
    /// The next data the peer sent; `None` once it finished (or reset) the stream.
    pub async fn read(&mut self) -> Option<Vec<u8>> {
        self.data.recv().await
    }

    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The sending half.
    pub fn writer(&self) -> StreamWriter {
        self.writer.clone()
    }

    /// Splits into what the peer sends and the sending half.
    pub fn split(self) -> (mpsc::Receiver<Vec<u8>>, StreamWriter) {
        (self.data, self.writer)
    }
}

impl Connection {
    /// Runs SPDY over `io`; `server` picks the stream IDs this side opens (even, else odd).
    pub fn new<T>(io: T, server: bool) -> Connection
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut rd, mut wr) = tokio::io::split(io);
        let (out, mut out_rx) = mpsc::channel::<Frame>(64);
        let (in_tx, incoming) = mpsc::channel::<Stream>(16);
        let (gone_tx, gone) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            streams: Mutex::new(HashMap::new()),
        });
        // The writer: one encoder, so header blocks go out in the order they were made.
        tokio::spawn(async move {
            let mut codec = Codec::new();
            while let Some(f) = out_rx.recv().await {
                let last = matches!(f, Frame::GoAway { .. });
                if wr.write_all(&codec.encode(&f)).await.is_err() {
                    return;
                }
                if last {
                    let _ = wr.flush().await;
                    let _ = wr.shutdown().await;
                    return;
                }
            }
            let _ = wr.shutdown().await;
        });
        let (sh, o) = (Arc::clone(&shared), out.clone());
        let ours = if server { 0 } else { 1 };
        tokio::spawn(async move {
            let mut codec = Codec::new();
            while let Ok(Some(f)) = codec.read(&mut rd).await {
                match f {
                    Frame::SynStream { id, fin, headers } => {
                        let (tx, rx) = mpsc::channel(32);
                        if !fin {
                            let e = Entry {
                                data: Some(tx),
                                replied: None,
                            };
                            sh.streams.lock().unwrap().insert(id, e);
                        }
                        let s = Stream {
                            id,
                            headers,
                            data: rx,
                            writer: StreamWriter { id, out: o.clone() },
                        };
                        if in_tx.send(s).await.is_err() {
                            let _ = o
                                .send(Frame::RstStream {
                                    id,
                                    status: REFUSED_STREAM,
                                })
                                .await;
                        }
                    }
                    Frame::SynReply { id, fin, .. } => {
                        let mut map = sh.streams.lock().unwrap();
                        if let Some(e) = map.get_mut(&id) {
                            if let Some(r) = e.replied.take() {
                                let _ = r.send(());
                            }
                            if fin {
                                e.data = None;
                            }
                        }
                    }
                    Frame::Data { id, fin, data } => {
                        let tx = {
                            let map = sh.streams.lock().unwrap();
                            map.get(&id).and_then(|e| e.data.clone())
                        };
                        if let Some(tx) = tx
                            && !data.is_empty()
                        {
                            let _ = tx.send(data).await;
                        }
                        if fin && let Some(e) = sh.streams.lock().unwrap().get_mut(&id) {
                            e.data = None;
                        }
                    }
                    Frame::Headers { id, fin: true, .. } => {
                        if let Some(e) = sh.streams.lock().unwrap().get_mut(&id) {
                            e.data = None;
                        }
                    }
                    Frame::RstStream { id, .. } => {
                        sh.streams.lock().unwrap().remove(&id);
                    }
                    Frame::Ping(id) if id % 2 != ours => {
                        let _ = o.send(Frame::Ping(id)).await;
                    }
                    Frame::GoAway { .. } => break,
                    _ => {}
                }
            }
            // The peer has gone: every stream ends.
            sh.streams.lock().unwrap().clear();
            let _ = gone_tx.send(true);
        });
        Connection {
            out,
            incoming: tokio::sync::Mutex::new(incoming),
            shared,
            next_id: AtomicU32::new(if server { 2 } else { 1 }),
            gone,
        }
    }

    /// The next stream the peer opens; `None` once it has gone.
    pub async fn accept(&self) -> Option<Stream> {
        self.incoming.lock().await.recv().await
    }

    /// Opens a stream with `headers` and waits for the peer to accept it.
    pub async fn open(&self, headers: Headers) -> std::io::Result<Stream> {
        let id = self.next_id.fetch_add(2, Ordering::Relaxed);
        let (tx, data) = mpsc::channel(32);
        let (replied_tx, replied) = oneshot::channel();
        self.shared.streams.lock().unwrap().insert(
            id,
            Entry {
                data: Some(tx),
                replied: Some(replied_tx),
            },
        );
        let f = Frame::SynStream {
            id,
            fin: false,
            headers: headers.clone(),
        };
        self.out.send(f).await.map_err(|_| closed())?;
        replied.await.map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "the peer refused the stream",
            )
        })?;
        Ok(Stream {
            id,
            headers,
            data,
            writer: StreamWriter {
                id,
                out: self.out.clone(),
            },
        })
    }

    /// Resolves once the peer has gone.
    pub async fn closed(&self) {
        let mut g = self.gone.clone();
        let _ = g.wait_for(|g| *g).await;
    }

    /// Tells the peer this side is done (GOAWAY) and closes this side of the connection
    /// once everything sent before has gone out.
    pub async fn go_away(&self) {
        let _ = self.out.send(Frame::GoAway { last: 0 }).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // zlib names a dictionary by its Adler-32 checksum.
        let (mut a, mut b) = (1u32, 0u32);
        for &x in &d {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[tokio::test]
    async fn frames_survive_a_round_trip_with_one_compression_stream() {
        let mut tx = Codec::new();
        let mut rx = Codec::new();
        let frames = [
            Frame::SynStream {
                id: 1,
                fin: false,
                headers: vec![("streamtype".into(), "error".into())],
            },
            Frame::SynStream {
                id: 3,
                fin: true,
                headers: vec![
                    ("streamtype".into(), "data".into()),
                    ("port".into(), "80".into()),
                    ("requestid".into(), "0".into()),
                ],
            },
            Frame::SynReply {
                id: 1,
                fin: false,
                headers: Vec::new(),
            },
            Frame::Data {
                id: 3,
                fin: true,
                data: b"hello".to_vec(),
            },
            Frame::RstStream { id: 3, status: 5 },
            Frame::Ping(7),
            Frame::GoAway { last: 3 },
        ];
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend(tx.encode(f));
        }
        let mut r = &wire[..];
        for f in &frames {
            assert_eq!(rx.read(&mut r).await.unwrap().as_ref(), Some(f));
        }
        assert_eq!(rx.read(&mut r).await.unwrap(), None);
    }

    #[tokio::test]
    async fn header_names_are_lower_case_on_the_wire() {
        let mut tx = Codec::new();
        let mut rx = Codec::new();
        let f = Frame::SynStream {
            id: 1,
            fin: false,
            headers: vec![("StreamType".into(), "stdout".into())],
        };
        let wire = tx.encode(&f);
        let Some(Frame::SynStream { headers, .. }) = rx.read(&mut &wire[..]).await.unwrap() else {
            panic!("not a SYN_STREAM");
        };
        assert_eq!(headers, vec![("streamtype".into(), "stdout".into())]);
        assert_eq!(header(&headers, "streamType"), Some("stdout"));
    }

    #[tokio::test]
    async fn garbage_is_an_error_not_a_panic() {
        let mut rx = Codec::new();
        let wire = [
            0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0c, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2,
        ];
        assert!(rx.read(&mut &wire[..]).await.is_err());
        let v2 = [0x80, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1];
        assert!(Codec::new().read(&mut &v2[..]).await.is_err());
    }

    #[tokio::test]
    async fn streams_open_carry_data_both_ways_and_finish() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let client = Connection::new(a, false);
        let server = Connection::new(b, true);
        let srv = tokio::spawn(async move {
            let mut s = server.accept().await.unwrap();
            assert_eq!(s.header("streamtype"), Some("stdin"));
            s.writer().reply().await.unwrap();
            let mut got = Vec::new();
            while let Some(d) = s.read().await {
                got.extend(d);
            }
            s.writer().write(&got.repeat(2)).await.unwrap();
            s.writer().close().await.unwrap();
            server.go_away().await;
            server.closed().await;
        });
        let mut s = client
            .open(vec![("streamtype".into(), "stdin".into())])
            .await
            .unwrap();
        let big = vec![7u8; 100_000];
        s.writer().write(&big).await.unwrap();
        s.writer().close().await.unwrap();
        let mut back = Vec::new();
        while let Some(d) = s.read().await {
            back.extend(d);
        }
        assert_eq!(back.len(), 200_000);
        client.closed().await;
        drop(s);
        drop(client);
        srv.await.unwrap();
    }
}
