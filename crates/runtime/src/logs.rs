//! Writing container logs in the CRI format (`peapod_types::cri_log` describes it): what a
//! container prints on its pipes becomes records in its log file.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use tokio::io::unix::AsyncFd;

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

/// Copies what the pipe `fd` yields into `out` as CRI records of `stream`, until the last
/// writer closes the pipe.
pub(crate) async fn copy(fd: OwnedFd, stream: &'static str, out: Arc<Mutex<File>>) {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    // SAFETY: the pipe's fd is owned by the AsyncFd for as long as it is registered.
    let Ok(afd) = (unsafe { AsyncFd::register(fd) }) else {
        return;
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let Ok(mut guard) = afd.readable().await else {
            break;
        };
        let n = match guard
            .try_io(|fd| nix::unistd::read(fd.get_ref(), &mut buf).map_err(std::io::Error::from))
        {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(Err(_)) => break,
            Err(_would_block) => continue,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(pos) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = &pending[start..start + pos];
            for chunk in split_long(line) {
                record(&out, stream, chunk.1, chunk.0);
            }
            start += pos + 1;
        }
        pending.drain(..start);
        while pending.len() >= MAX_LINE {
            record(&out, stream, 'P', &pending[..MAX_LINE]);
            pending.drain(..MAX_LINE);
        }
    }
    if !pending.is_empty() {
        record(&out, stream, 'F', &pending);
    }
}
