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

/// One range of a user namespace's ID map: `length` IDs from `container_id` inside are
/// `host_id` onwards outside (a line of `/proc/PID/uid_map`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdMap {
    /// First ID inside the namespace.
    pub container_id: u32,
    /// The host ID it is.
    pub host_id: u32,
    /// How many IDs.
    pub length: u32,
}

/// The host ID that `id` inside a namespace mapped by `maps` is, if it is mapped.
pub fn host_id(maps: &[IdMap], id: u32) -> Option<u32> {
    maps.iter().find_map(|m| {
        let off = id.checked_sub(m.container_id)?;
        (off < m.length).then(|| m.host_id + off)
    })
}

/// Creates a user namespace mapped by `uids` and `gids`, pinned by a bind mount at
/// `user_pin`, and with `net_pin` a network namespace it owns, pinned there with loopback
/// up. A pod's namespaces must belong to its user namespace for its root to administer
/// them (mount sysfs, set the host name): the others are made by the pod's first process,
/// which joins this one.
///
/// The namespaces are made by a forked child that does nothing but `unshare` and wait, so
/// the caller's own namespaces never change. Both pins live until unmounted
/// ([`remove_netns`] for both).
pub fn create_userns(
    user_pin: &Path,
    net_pin: Option<&Path>,
    uids: &[IdMap],
    gids: &[IdMap],
) -> Result<()> {
    let pins: Vec<&Path> = std::iter::once(user_pin).chain(net_pin).collect();
    for pin in &pins {
        if let Some(dir) = pin.parent() {
            std::fs::create_dir_all(dir).map_err(crate::io("creating", dir))?;
        }
        std::fs::File::create(pin).map_err(crate::io("creating", *pin))?;
    }
    let result = make_userns(user_pin, net_pin, uids, gids);
    if result.is_err() {
        for pin in &pins {
            let _ = remove_netns(pin);
        }
    }
    result
}

fn make_userns(
    user_pin: &Path,
    net_pin: Option<&Path>,
    uids: &[IdMap],
    gids: &[IdMap],
) -> Result<()> {
    use std::io::{Read, Write};
    let failed = |context: &'static str| {
        move |source: std::io::Error| Error::Sys {
            context,
            path: user_pin.to_path_buf(),
            source,
        }
    };
    let (ready_r, ready_w) = pipe().map_err(failed("making a pipe for"))?;
    let (go_r, go_w) = pipe().map_err(failed("making a pipe for"))?;
    let flags = libc::CLONE_NEWUSER
        | if net_pin.is_some() {
            libc::CLONE_NEWNET
        } else {
            0
        };
    use std::os::fd::AsRawFd;
    let (rr, rw, gr) = (ready_r.as_raw_fd(), ready_w.as_raw_fd(), go_r.as_raw_fd());
    // SAFETY: the child runs only async-signal-safe system calls (unshare, write, read,
    // _exit) on fds it inherited, then exits; it never returns into Rust code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(failed("forking a process to make")(
            std::io::Error::last_os_error(),
        ));
    }
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            libc::close(rr);
            let status: u8 = if libc::unshare(flags) == 0 {
                0
            } else {
                (*libc::__errno_location()).clamp(1, 255) as u8
            };
            libc::write(rw, (&status as *const u8).cast(), 1);
            let mut b = 0u8;
            libc::read(gr, (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop(ready_w);
    drop(go_r);
    let mut go = std::fs::File::from(go_w);
    let outcome = (|| -> Result<()> {
        let mut status = [0u8];
        let n = std::fs::File::from(ready_r)
            .read(&mut status)
            .map_err(failed("waiting for the process making"))?;
        if n == 0 {
            return Err(failed("making")(std::io::Error::other(
                "the process making it exited",
            )));
        }
        if status[0] != 0 {
            return Err(failed("unsharing the user namespace for")(
                std::io::Error::from_raw_os_error(status[0] as i32),
            ));
        }
        let line = |maps: &[IdMap]| -> String {
            maps.iter()
                .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.length))
                .collect()
        };
        for (file, maps) in [("uid_map", uids), ("gid_map", gids)] {
            let path = PathBuf::from(format!("/proc/{pid}/{file}"));
            std::fs::write(&path, line(maps)).map_err(crate::io("writing", &path))?;
        }
        let pin = |kind: &str, at: &Path| {
            let me = PathBuf::from(format!("/proc/{pid}/ns/{kind}"));
            mount(Some(&me), at, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(sys("pinning a namespace at", at))
        };
        pin("user", user_pin)?;
        if let Some(net) = net_pin {
            pin("net", net)?;
        }
        Ok(())
    })();
    let _ = go.write_all(&[1]);
    drop(go);
    if outcome.is_err() {
        // SAFETY: kill takes a pid and a signal.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    // Another reaper of this process may have reaped it already.
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    outcome?;
    if let Some(net) = net_pin {
        let net = net.to_path_buf();
        std::thread::spawn(move || {
            let f = std::fs::File::open(&net)?;
            nix::sched::setns(&f, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            loopback_up()
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the loopback thread panicked")))
        .map_err(failed("bringing up loopback in the network namespace of"))?;
    }
    Ok(())
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two fds, owned below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned these fds.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
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
