//! Writing container logs in the CRI format (`peapod_types::cri_log` describes it): what a
//! container prints on its pipes becomes records in its log file.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::stdio::{Chunk, OutputStream, read_chunks};

use peapod_types::cri_log::split_long;
pub use peapod_types::cri_log::{LogLine, MAX_LINE, parse};

fn record(out: &Mutex<File>, stream: &str, tag: char, text: &[u8]) {
    let mut buf = Vec::with_capacity(text.len() + 48);
    buf.extend_from_slice(crate::now().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(stream.as_bytes());
    buf.push(b' ');
    buf.push(tag as u8);
    buf.push(b' ');
    buf.extend_from_slice(text);
    buf.push(b'\n');
    // One write per record: with O_APPEND, records of both streams never interleave.
    let _ = out.lock().unwrap().write_all(&buf);
}

/// Copies what `fd` yields (a pipe, or a terminal's master end) into `out` as CRI records
/// of `stream`, and as raw chunks to `tee` for attached readers, until the last writer
/// closes it.
pub(crate) async fn copy(
    fd: OwnedFd,
    stream: OutputStream,
    out: Arc<Mutex<File>>,
    tee: Option<broadcast::Sender<Chunk>>,
) {
    let name = match stream {
        OutputStream::Stdout => "stdout",
        OutputStream::Stderr => "stderr",
    };
    let mut pending: Vec<u8> = Vec::new();
    read_chunks(fd, |data| {
        if let Some(tee) = &tee {
            let _ = tee.send(Chunk {
                stream,
                data: data.into(),
            });
        }
        pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = &pending[start..start + pos];
            for chunk in split_long(line) {
                record(&out, name, chunk.1, chunk.0);
            }
            start += pos + 1;
        }
        pending.drain(..start);
        while pending.len() >= MAX_LINE {
            record(&out, name, 'P', &pending[..MAX_LINE]);
            pending.drain(..MAX_LINE);
        }
    })
    .await;
    if !pending.is_empty() {
        record(&out, name, 'F', &pending);
    }
}
