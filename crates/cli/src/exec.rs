//! `peapod exec NAME -- CMD…`: a process in a running container, joined to its namespaces,
//! cgroup and root, with its exit code passed through.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{Context, Result, bail};
use nix::sys::termios::SetArg;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use peapod_shim::{ExecRequest, Stdio};
use peapod_types::config::Config;

/// Arguments of `exec`.
#[derive(clap::Args)]
pub struct Args {
    /// The pod.
    name: String,
    /// The container; optional when the pod has one container.
    #[arg(short, long)]
    container: Option<String>,
    /// Namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Pass standard input to the process.
    #[arg(short = 'i', long)]
    stdin: bool,
    /// Give the process a terminal.
    #[arg(short, long)]
    tty: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// The running instance of the named container (or the only one) of pod `h`.
pub(crate) fn started_container(
    h: &peapod_shim::PodHandle,
    container: Option<&str>,
) -> Result<peapod_shim::ContainerRef> {
    let name = crate::logs::pick_container(h, container)?;
    h.state
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == name))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("container {name:?} in pod {:?} has not started", h.name()))
}

fn dup(fd: impl AsFd) -> Result<OwnedFd> {
    Ok(fd.as_fd().try_clone_to_owned()?)
}

pub fn run(cfg: &Config, args: &Args) -> Result<i32> {
    let h = crate::util::resolve_pod(cfg, &args.namespace, &args.name)?;
    let name = h.name().to_string();
    if !h.shim_alive {
        bail!("pod {name:?} is not running (phase Unknown)");
    }
    let c = started_container(&h, args.container.as_deref())?;
    let stdio = if args.tty {
        None
    } else {
        let stdin = if args.stdin {
            dup(std::io::stdin())?
        } else {
            std::fs::File::open("/dev/null")?.into()
        };
        Some(Stdio {
            stdin: Some(stdin),
            stdout: dup(std::io::stdout())?,
            stderr: dup(std::io::stderr())?,
        })
    };
    let req = ExecRequest {
        args: args.command.clone(),
        env: Default::default(),
        cwd: None,
        stdio,
        tty: args.tty,
    };
    let proc = peapod_shim::exec(cfg, &c.id, req)
        .with_context(|| format!("exec in container {:?}", c.name))?;
    // With a terminal: the caller's terminal (if any) goes raw and takes the same size,
    // and the streams are copied both ways until the terminal closes.
    let mut restore = None;
    let mut output = None;
    if let Some(master) = &proc.pty {
        let stdin = std::io::stdin();
        if let Ok(saved) = nix::sys::termios::tcgetattr(&stdin) {
            let mut raw = saved.clone();
            nix::sys::termios::cfmakeraw(&mut raw);
            let _ = nix::sys::termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw);
            restore = Some(saved);
            copy_window_size(&stdin, master);
        }
        output = Some(pump(master, args.stdin)?);
    }
    let status = loop {
        match waitpid(Pid::from_raw(proc.pid), Some(WaitPidFlag::__WALL)) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other,
        }
    };
    // The terminal's last output, once the process is gone (bounded: a background process
    // may still hold the terminal open).
    if let Some(done) = output {
        let _ = done.recv_timeout(std::time::Duration::from_secs(1));
    }
    if let Some(saved) = &restore {
        let _ = nix::sys::termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, saved);
    }
    Ok(match status? {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 1,
    })
}

/// Gives the terminal `master` the window size of the caller's terminal `from`.
fn copy_window_size(from: &impl AsFd, master: &OwnedFd) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ and TIOCSWINSZ read and write one `winsize` through the pointer.
    unsafe {
        if libc::ioctl(from.as_fd().as_raw_fd(), libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Copies standard input to the terminal and the terminal to standard output, on two
/// threads (started after the process exists, so no fork happens while they run). The
/// receiver hears when the terminal's output has ended.
fn pump(master: &OwnedFd, stdin: bool) -> Result<std::sync::mpsc::Receiver<()>> {
    let out = master.try_clone()?;
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match nix::unistd::read(&out, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if nix::unistd::write(std::io::stdout(), &buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = done.send(());
    });
    if stdin {
        let input = master.try_clone()?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match nix::unistd::read(std::io::stdin().as_fd(), &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if nix::unistd::write(&input, &buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    Ok(ended)
}
