//! The live standard streams of the processes this process started: a container's (what
//! CRI `Attach` connects to) and an interactive exec's (CRI `Exec`). Output goes to every
//! attached reader as it comes (and, for containers, to the log); input comes from whoever
//! holds the stream's writer; a terminal can be resized.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use tokio::io::unix::AsyncFd;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::{Error, Result, Runtime};

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output (and everything a terminal prints).
    Stdout,
    /// Standard error.
    Stderr,
}

/// Output as it was read.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// From where.
    pub stream: OutputStream,
    /// What.
    pub data: Arc<[u8]>,
}

/// Chunks an attached reader may fall behind by before it misses some.
const BACKLOG: usize = 256;

/// The streams of one container started by this process.
pub(crate) struct ContainerStreams {
    output: broadcast::Sender<Chunk>,
    /// Its standard input's writer, while open (`stdin: true` containers).
    stdin: Mutex<Option<Arc<OwnedFd>>>,
    /// Close standard input once the first attached writer is done.
    stdin_once: bool,
    /// The terminal's master end (`tty: true` containers), to resize it.
    pty: Option<Arc<OwnedFd>>,
    /// Becomes true once the process has exited and its output is drained.
    ended: watch::Sender<bool>,
    /// The log file its output is copied to.
    log: Arc<Mutex<std::fs::File>>,
}

impl ContainerStreams {
    /// Streams with `stdin` as the input's writer (a pipe's, or a terminal master's);
    /// returns them and the sender of their output.
    pub(crate) fn new(
        stdin: Option<OwnedFd>,
        stdin_once: bool,
        pty: Option<Arc<OwnedFd>>,
        log: Arc<Mutex<std::fs::File>>,
    ) -> (Arc<ContainerStreams>, broadcast::Sender<Chunk>) {
        let (output, _) = broadcast::channel(BACKLOG);
        let s = Arc::new(ContainerStreams {
            output: output.clone(),
            stdin: Mutex::new(stdin.map(Arc::new)),
            stdin_once,
            pty,
            ended: watch::channel(false).0,
            log,
        });
        (s, output)
    }

    /// Makes the output go to a newly opened `file` from now on (the old one may have
    /// been renamed by log rotation).
    pub(crate) fn reopen_log(&self, file: std::fs::File) {
        *self.log.lock().unwrap() = file;
    }

    /// Tells attached readers that the process has exited and its output is drained.
    pub(crate) fn end(&self) {
        self.ended.send_replace(true);
        self.stdin.lock().unwrap().take();
    }
}

/// A connection to a running process's streams.
pub struct Attached {
    /// Its output from now on (chunks a slow reader missed are skipped).
    pub output: broadcast::Receiver<Chunk>,
    /// Its input, when it has one and it was asked for.
    pub stdin: Option<StdinWriter>,
    /// Whether it has a terminal (its output is all on stdout then).
    pub tty: bool,
    /// Becomes true once its output has ended (the process exited).
    pub ended: watch::Receiver<bool>,
    pty: Option<Arc<OwnedFd>>,
}

impl Attached {
    /// Sets its terminal's size; nothing without a terminal.
    pub fn resize(&self, width: u16, height: u16) {
        if let Some(pty) = &self.pty {
            resize(pty, width, height);
        }
    }
}

/// A caller's end of an interactive session with a process (an attach or an exec), as
/// channels: what the CRI's streaming server and a supervisor's socket carry.
pub struct StreamSession {
    /// Its output, in order; ends once the process has exited and its output is drained,
    /// or the session is over.
    pub output: mpsc::Receiver<Chunk>,
    /// Its input, when asked for and it has one; dropping the sender closes it (for an
    /// exec, or a `stdin_once` container).
    pub input: Option<mpsc::Sender<Vec<u8>>>,
    /// Terminal sizes (width, height); ignored without a terminal.
    pub resize: mpsc::Sender<(u16, u16)>,
    /// Whether it has a terminal.
    pub tty: bool,
    /// Once the output has ended: the exec's exit code, `None` for an attach (or when the
    /// code is unknown).
    pub exit: oneshot::Receiver<Option<i32>>,
}

impl StreamSession {
    /// A session over `attached`, whose end reports `exit` (an exec's code), if any.
    pub fn over(mut attached: Attached, exit: Option<oneshot::Receiver<i32>>) -> StreamSession {
        let (out_tx, out_rx) = mpsc::channel(64);
        let (resize_tx, mut resize_rx) = mpsc::channel::<(u16, u16)>(4);
        let (exit_tx, exit_rx) = oneshot::channel();
        let input = attached.stdin.take().map(|w| {
            let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
            tokio::spawn(async move {
                while let Some(d) = rx.recv().await {
                    if w.write_all(&d).await.is_err() {
                        break;
                    }
                }
            });
            tx
        });
        let pty = attached.pty.clone();
        tokio::spawn(async move {
            while let Some((w, h)) = resize_rx.recv().await {
                if let Some(pty) = &pty {
                    resize(pty, w, h);
                }
            }
        });
        let tty = attached.tty;
        tokio::spawn(async move {
            let Attached {
                mut output,
                mut ended,
                ..
            } = attached;
            loop {
                tokio::select! {
                    biased;
                    r = output.recv() => match r {
                        Ok(c) => {
                            if out_tx.send(c).await.is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    _ = async { ended.wait_for(|e| *e).await.is_ok() } => {
                        // Everything was sent before the end was: take what is left.
                        while let Ok(c) = output.try_recv() {
                            if out_tx.send(c).await.is_err() {
                                return;
                            }
                        }
                        break;
                    }
                    _ = out_tx.closed() => return,
                }
            }
            let code = match exit {
                Some(rx) => rx.await.ok(),
                None => None,
            };
            let _ = exit_tx.send(code);
        });
        StreamSession {
            output: out_rx,
            input,
            resize: resize_tx,
            tty,
            exit: exit_rx,
        }
    }
}

/// Writes to a process's standard input. Dropping it closes the input when the process
/// reads it from this writer alone (an exec), or for a `stdin_once` container.
pub struct StdinWriter {
    fd: AsyncFd<OwnedFd>,
    /// The container's stdin slot, closed on drop (for `stdin_once`).
    close_on_drop: Option<Arc<ContainerStreams>>,
}

impl StdinWriter {
    fn new(fd: &OwnedFd, close_on_drop: Option<Arc<ContainerStreams>>) -> Result<StdinWriter> {
        let dup = fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(crate::io("duplicating", "standard input"))?;
        set_nonblocking(&dup);
        // SAFETY: the descriptor is owned by the AsyncFd for as long as it is registered.
        let fd = unsafe { AsyncFd::register(dup) }
            .map_err(|e| crate::io("polling", "standard input")(e.into()))?;
        Ok(StdinWriter { fd, close_on_drop })
    }

    /// Writes all of `data`, waiting while the process does not read.
    pub async fn write_all(&self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.fd.writable().await?;
            match guard
                .try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(std::io::Error::from))
            {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }
}

impl Drop for StdinWriter {
    fn drop(&mut self) {
        if let Some(s) = &self.close_on_drop {
            s.stdin.lock().unwrap().take();
        }
    }
}

impl Runtime {
    /// Attaches to container `id`'s streams (CRI `Attach`), which only the process that
    /// started it has. `stdin` asks for its input, which it has with `stdin: true` only.
    pub fn attach(&self, id: &str, stdin: bool) -> Result<Attached> {
        let status = self.status_of(id)?;
        let streams = self
            .live
            .lock()
            .unwrap()
            .streams
            .get(&status.id)
            .cloned()
            .ok_or_else(|| {
                Error::State(format!("container {} is not running", status.metadata.name))
            })?;
        let writer = match (stdin, &*streams.stdin.lock().unwrap()) {
            (true, Some(fd)) => Some(StdinWriter::new(
                fd,
                streams.stdin_once.then(|| Arc::clone(&streams)),
            )?),
            _ => None,
        };
        Ok(Attached {
            output: streams.output.subscribe(),
            stdin: writer,
            tty: streams.pty.is_some(),
            ended: streams.ended.subscribe(),
            pty: streams.pty.clone(),
        })
    }
}

impl Attached {
    /// The streams of a process this runtime started for one caller alone (an exec):
    /// `stdin` writes its input (closed when dropped), `pty` is its terminal.
    pub(crate) fn exclusive(
        output: broadcast::Receiver<Chunk>,
        stdin: Option<&OwnedFd>,
        pty: Option<Arc<OwnedFd>>,
        ended: watch::Receiver<bool>,
    ) -> Result<Attached> {
        Ok(Attached {
            output,
            stdin: stdin.map(|fd| StdinWriter::new(fd, None)).transpose()?,
            tty: pty.is_some(),
            ended,
            pty,
        })
    }
}

fn set_nonblocking(fd: &OwnedFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// Sets the size of the terminal whose master end is `pty`.
fn resize(pty: &OwnedFd, width: u16, height: u16) {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which outlives the call.
    unsafe {
        libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &ws);
    }
}

/// Copies what `fd` yields (a pipe, or a terminal's master end) to `output` as `stream`
/// chunks until it ends; terminal masters end with `EIO` once the last slave closes.
pub(crate) async fn relay(fd: OwnedFd, stream: OutputStream, output: broadcast::Sender<Chunk>) {
    read_chunks(fd, |data| {
        let _ = output.send(Chunk {
            stream,
            data: data.into(),
        });
    })
    .await
}

/// Calls `each` with every chunk read from `fd` until it ends or fails.
pub(crate) async fn read_chunks(fd: OwnedFd, mut each: impl FnMut(&[u8])) {
    set_nonblocking(&fd);
    // SAFETY: the descriptor is owned by the AsyncFd for as long as it is registered.
    let Ok(afd) = (unsafe { AsyncFd::register(fd) }) else {
        return;
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let Ok(mut guard) = afd.readable().await else {
            break;
        };
        match guard
            .try_io(|fd| nix::unistd::read(fd.get_ref(), &mut buf).map_err(std::io::Error::from))
        {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => each(&buf[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(Err(_)) => break,
            Err(_would_block) => continue,
        }
    }
}
