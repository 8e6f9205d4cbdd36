//! Namespaces seen from the host: pinned network namespaces, namespace inodes, pidfds.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

use crate::spec::NsKind;
use crate::{Error, Result, sys};

/// Creates a new network namespace pinned by a bind mount at `pin`, with loopback up.
///
/// The namespace is made on a short-lived thread (`unshare` affects only that thread), so the
/// caller's own namespace never changes. It lives until [`remove_netns`], whatever happens to
/// the processes inside it.
pub fn create_netns(pin: &Path) -> Result<()> {
    if let Some(dir) = pin.parent() {
        std::fs::create_dir_all(dir).map_err(crate::io("creating", dir))?;
    }
    std::fs::File::create(pin).map_err(crate::io("creating", pin))?;
    let pin_owned = pin.to_path_buf();
    let result = std::thread::spawn(move || -> Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(sys("unsharing the network namespace for", &pin_owned))?;
        let me = PathBuf::from(format!("/proc/self/task/{}/ns/net", nix::unistd::gettid()));
        mount(
            Some(&me),
            &pin_owned,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys("pinning network namespace at", &pin_owned))?;
        loopback_up().map_err(|e| Error::Sys {
            context: "bringing up loopback in",
            path: pin_owned.clone(),
            source: e,
        })
    })
    .join()
    .unwrap_or_else(|_| Err(Error::Spec("network namespace thread panicked".into())));
    if result.is_err() {
        let _ = remove_netns(pin);
    }
    result
}

/// Unpins and deletes the network namespace at `pin`; a missing one is fine.
pub fn remove_netns(pin: &Path) -> Result<()> {
    crate::mount::unmount(pin)?;
    match std::fs::remove_file(pin) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Sys {
            context: "removing",
            path: pin.into(),
            source: e,
        }),
    }
}

/// Sets `lo` up in the calling thread's network namespace.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: plain socket/ioctl calls on a zeroed `ifreq` naming "lo"; the fd is owned below.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let _owned = OwnedFd::from_raw_fd(fd);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The inode of `pid`'s namespace of `kind`: equal inodes mean a shared namespace.
pub fn inode(pid: i32, kind: NsKind) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/{}", kind.proc_name()))
        .ok()
        .map(|m| m.ino())
}

/// The inode of the namespace pinned or linked at `path`.
pub fn inode_of_path(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Opens a pidfd for `pid`: readable once the process has exited.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Error::Sys {
            context: "opening pidfd for",
            path: format!("pid {pid}").into(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: the kernel just returned this fd to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Binds a TCP listener to `addr` inside the network namespace at `netns`, entered on a
/// short-lived thread like [`connect_tcp_in`]; the listener stays in that namespace.
pub fn listen_tcp_in(
    netns: &Path,
    addr: std::net::SocketAddr,
) -> std::io::Result<std::net::TcpListener> {
    let netns = netns.to_path_buf();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&netns)?;
        nix::sched::setns(&f, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        std::net::TcpListener::bind(addr)
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("the listening thread panicked")))
}

/// Opens a TCP connection to `addr` from inside the network namespace at `netns` (the
/// host's when `None`), within `timeout`. The namespace is entered on a short-lived thread,
/// so the caller's never changes; the socket stays in the namespace it was made in.
pub fn connect_tcp_in(
    netns: Option<&Path>,
    addr: std::net::SocketAddr,
    timeout: std::time::Duration,
) -> std::io::Result<std::net::TcpStream> {
    let Some(netns) = netns else {
        return std::net::TcpStream::connect_timeout(&addr, timeout);
    };
    let netns = netns.to_path_buf();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&netns)?;
        nix::sched::setns(&f, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        std::net::TcpStream::connect_timeout(&addr, timeout)
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("the connecting thread panicked")))
}
