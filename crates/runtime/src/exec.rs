//! ExecSync and Exec: processes started in a running container, and waiting for a process
//! to exit without blocking the thread.

use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use peapod_oci::{ExecProcess, ExecRequest, Stdio, ns};
use tokio::io::unix::AsyncFd;

use std::sync::Arc;

use crate::stdio::{Attached, OutputStream, relay};
use crate::types::*;
use crate::{Error, Result, Runtime, io};

/// An interactive exec: its streams, and its exit code once it has exited.
pub struct ExecSession {
    /// Its streams.
    pub attached: Attached,
    /// Its exit code (128 + signal when a signal ended it).
    pub exit: tokio::sync::oneshot::Receiver<i32>,
}

impl Runtime {
    /// Starts a process in a running container (CRI `Exec`). Its PID is a child of the
    /// caller (reap it with `__WALL`).
    pub fn exec(&self, id: &str, req: ExecRequest) -> Result<ExecProcess> {
        let status = self.status_of(id)?;
        if status.state != ContainerState::Running {
            return Err(Error::State(format!(
                "container {} is not running",
                status.metadata.name
            )));
        }
        Ok(self.exec.exec(&status.id, req)?)
    }

    /// Starts `cmd` in running container `id` for an interactive caller (CRI `Exec`):
    /// with a terminal or pipes, with or without an input. The session's output ends, and
    /// `exit` tells the exit code, once the process has exited and its output is drained.
    pub async fn exec_interactive(
        &self,
        id: &str,
        cmd: Vec<String>,
        tty: bool,
        stdin: bool,
    ) -> Result<ExecSession> {
        let (output, rx) = tokio::sync::broadcast::channel(256);
        let (ended_tx, ended) = tokio::sync::watch::channel(false);
        let mut relays = Vec::new();
        let (pid, attached) = if tty {
            let p = self.exec(
                id,
                ExecRequest {
                    args: cmd,
                    env: Default::default(),
                    cwd: None,
                    stdio: None,
                    tty: true,
                },
            )?;
            let master = p
                .pty
                .map(Arc::new)
                .ok_or_else(|| Error::State("the exec's terminal was not received".into()))?;
            let reader = master
                .try_clone()
                .map_err(io("duplicating", "a terminal"))?;
            relays.push(tokio::spawn(relay(reader, OutputStream::Stdout, output)));
            let writer = stdin.then_some(&*master);
            let attached = Attached::exclusive(rx, writer, Some(master.clone()), ended)?;
            (p.pid, attached)
        } else {
            let (in_r, in_w) = match stdin {
                true => {
                    let (r, w) = pipe()?;
                    (r, Some(w))
                }
                false => (
                    std::fs::File::open("/dev/null")
                        .map_err(io("opening", "/dev/null"))?
                        .into(),
                    None,
                ),
            };
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            let p = self.exec(
                id,
                ExecRequest {
                    args: cmd,
                    env: Default::default(),
                    cwd: None,
                    stdio: Some(Stdio {
                        stdin: Some(in_r),
                        stdout: out_w,
                        stderr: err_w,
                    }),
                    tty: false,
                },
            )?;
            relays.push(tokio::spawn(relay(
                out_r,
                OutputStream::Stdout,
                output.clone(),
            )));
            relays.push(tokio::spawn(relay(err_r, OutputStream::Stderr, output)));
            let attached = Attached::exclusive(rx, in_w.as_ref(), None, ended)?;
            (p.pid, attached)
        };
        let mut claim = crate::reaper::Claim::new(pid);
        let (exit_tx, exit) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            exited(pid).await;
            let status = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::__WALL));
            claim.reaped = true;
            drop(claim);
            // What the process printed last is still in the pipes (or the terminal).
            for r in relays {
                let _ = tokio::time::timeout(Duration::from_secs(2), r).await;
            }
            ended_tx.send_replace(true);
            let _ = exit_tx.send(exit_code(status));
        });
        Ok(ExecSession { attached, exit })
    }

    /// Runs `cmd` in running container `id` and collects its output (CRI `ExecSync`). Past
    /// `timeout` the process is killed and the call fails. Each stream keeps its first
    /// 64 KiB (a pipe's worth); a process writing more blocks until the timeout.
    pub(crate) async fn exec_sync_impl(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecSyncResult> {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let null = std::fs::File::open("/dev/null").map_err(io("opening", "/dev/null"))?;
        let pid = self
            .exec(
                id,
                ExecRequest {
                    args: cmd,
                    env: Default::default(),
                    cwd: None,
                    stdio: Some(Stdio {
                        stdin: Some(null.into()),
                        stdout: out_w,
                        stderr: err_w,
                    }),
                    tty: false,
                },
            )?
            .pid;
        let mut claim = crate::reaper::Claim::new(pid);
        let reap =
            |flags: WaitPidFlag| waitpid(Pid::from_raw(pid), Some(WaitPidFlag::__WALL | flags));
        if tokio::time::timeout(timeout, exited(pid)).await.is_err() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = reap(WaitPidFlag::empty());
            claim.reaped = true;
            return Err(Error::State(format!(
                "command timed out after {}s",
                timeout.as_secs_f64()
            )));
        }
        let status = reap(WaitPidFlag::empty());
        claim.reaped = true;
        Ok(ExecSyncResult {
            exit_code: exit_code(status),
            stdout: drain(out_r),
            stderr: drain(err_r),
        })
    }
}

/// An exec's exit code from its wait status (128 + signal for a signalled one).
fn exit_code(status: nix::Result<WaitStatus>) -> i32 {
    match status {
        Ok(WaitStatus::Exited(_, c)) => c,
        Ok(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
        _ => -1,
    }
}

/// Returns once process `pid` (a child of this process) has exited, without reaping it.
pub(crate) async fn exited(pid: i32) {
    // SAFETY: the pidfd is owned by the AsyncFd for as long as it is registered.
    let watched = ns::pidfd_open(pid)
        .ok()
        .and_then(|fd| unsafe { AsyncFd::register(fd) }.ok());
    match watched {
        Some(fd) => {
            let _ = fd.readable().await;
        }
        // No pidfd: look every few milliseconds.
        None => {
            while crate::container::alive(pid) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// Reads what a pipe holds, without blocking.
fn drain(fd: OwnedFd) -> Vec<u8> {
    let _ = nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = nix::unistd::read(&fd, &mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// A pipe whose ends close on exec.
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::Io {
        context: "creating",
        path: "a pipe".into(),
        source: e.into(),
    })
}
