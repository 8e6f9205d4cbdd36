//! Who reaps which child.
//!
//! The runtime waits for the processes it starts (containers, infras, `exec_sync`) through
//! their pidfds and reaps each with `waitpid(pid)` to learn its exit status. Those processes
//! inherit `SIGCHLD` as their exit signal, so a process that also reaps orphans (the shim
//! is a child subreaper) must leave them alone: such a process claims each PID here while
//! it is watched, and [`reap_unclaimed`] reaps only the others.
//!
//! Helper processes (CNI plugins) are started by [`spawn_claimed`], which claims the new
//! PID under the same lock [`reap_unclaimed`] holds while it scans, so an early exit is
//! never reaped by the wrong party.

use std::collections::BTreeSet;
use std::sync::Mutex;

use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

static CLAIMED: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Marks `pid` as reaped by its watcher.
pub(crate) fn claim(pid: i32) {
    CLAIMED.lock().unwrap().insert(pid);
}

/// The watcher of `pid` has reaped it (or given it up).
pub(crate) fn release(pid: i32) {
    CLAIMED.lock().unwrap().remove(&pid);
}

/// A claim released on drop. If its watcher is dropped before reaping (a cancelled
/// `exec_sync`), the process is killed and left to [`reap_unclaimed`].
pub(crate) struct Claim {
    pid: i32,
    pub(crate) reaped: bool,
}

impl Claim {
    pub(crate) fn new(pid: i32) -> Claim {
        claim(pid);
        Claim { pid, reaped: false }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = nix::sys::signal::kill(Pid::from_raw(self.pid), nix::sys::signal::SIGKILL);
        }
        release(self.pid);
        if !self.reaped {
            reap_unclaimed();
        }
    }
}

/// Starts `cmd` and claims its PID before anything can reap it; the claim is released
/// when the returned guard is dropped (after the caller has reaped the process).
pub(crate) fn spawn_claimed(
    cmd: &mut std::process::Command,
) -> std::io::Result<(std::process::Child, Claim)> {
    let mut claimed = CLAIMED.lock().unwrap();
    let child = cmd.spawn()?;
    claimed.insert(child.id() as i32);
    drop(claimed);
    let claim = Claim {
        pid: child.id() as i32,
        reaped: false,
    };
    Ok((child, claim))
}

/// Reaps every exited child of this process that no watcher has claimed: orphans handed
/// to a subreaper, and helpers nobody waits for.
pub fn reap_unclaimed() {
    let claimed = CLAIMED.lock().unwrap();
    for (pid, _) in peapod_oci::executor::zombie_children() {
        if claimed.contains(&pid) {
            continue;
        }
        let _ = waitpid(
            Pid::from_raw(pid),
            Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG),
        );
    }
}
