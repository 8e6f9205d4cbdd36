//! Container logs in the CRI format: one record per line,
//! `<RFC 3339 nano time> <stdout|stderr> <F|P> <text>`, where `P` marks a partial line (a
//! line longer than [`MAX_LINE`] is split) and `F` a full one.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use tokio::io::unix::AsyncFd;

/// The longest line written as one record.
pub const MAX_LINE: usize = 16 * 1024;

/// One parsed log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// Timestamp as written.
    pub time: &'a str,
    /// `stdout` or `stderr`.
    pub stream: &'a str,
    /// Whether the line continues in the next record.
    pub partial: bool,
    /// The text, without the newline.
    pub text: &'a str,
}

/// Parses one record; `None` for a malformed line.
pub fn parse(line: &str) -> Option<LogLine<'_>> {
    let mut it = line.splitn(4, ' ');
    let time = it.next()?;
    let stream = it.next()?;
    let tag = it.next()?;
    let text = it.next().unwrap_or("");
    Some(LogLine {
        time,
        stream,
        partial: tag.starts_with('P'),
        text,
    })
}

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

/// Splits a line into records of at most [`MAX_LINE`] bytes: all partial but the last.
fn split_long(line: &[u8]) -> Vec<(&[u8], char)> {
    if line.len() <= MAX_LINE {
        return vec![(line, 'F')];
    }
    let chunks: Vec<&[u8]> = line.chunks(MAX_LINE).collect();
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| (c, if i == last { 'F' } else { 'P' }))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_records() {
        let l = super::parse("2026-01-01T00:00:00.000000001Z stderr P half a line").unwrap();
        assert_eq!(
            (l.stream, l.partial, l.text),
            ("stderr", true, "half a line")
        );
        let l = super::parse("2026-01-01T00:00:00Z stdout F ").unwrap();
        assert_eq!(l.text, "");
        assert_eq!(
            super::split_long(&[b'x'; super::MAX_LINE + 1])
                .iter()
                .map(|c| c.1)
                .collect::<String>(),
            "PF"
        );
    }
}
