//! ExecSync and Exec: processes started in a running container, and waiting for a process
//! to exit without blocking the thread.

use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use peapod_oci::{ExecProcess, ExecRequest, Stdio, ns};
use tokio::io::unix::AsyncFd;

use crate::types::*;
use crate::{Error, Result, Runtime, io};

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
        let exit_code = match status {
            Ok(WaitStatus::Exited(_, c)) => c,
            Ok(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
            _ => -1,
        };
        Ok(ExecSyncResult {
            exit_code,
            stdout: drain(out_r),
            stderr: drain(err_r),
        })
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
