//! `peapod exec NAME -- CMD…`: a process in a running container, joined to its namespaces,
//! cgroup and root, with its exit code passed through.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{Context, Result, bail};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use peapod_oci::{ExecRequest, Stdio};
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
    #[arg(short, long)]
    stdin: bool,
    /// Give the process a terminal.
    #[arg(short, long)]
    tty: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn dup(fd: impl AsFd) -> Result<OwnedFd> {
    Ok(fd.as_fd().try_clone_to_owned()?)
}

pub fn run(cfg: &Config, args: &Args) -> Result<i32> {
    let name = args.name.trim_start_matches("pod/");
    let h = crate::util::find_pod(cfg, &args.namespace, name)?;
    if !h.shim_alive {
        bail!("pod {name:?} is not running (phase Unknown)");
    }
    let container = crate::logs::pick_container(&h, args.container.as_deref())?;
    let Some(c) = h
        .state
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == container))
        .cloned()
    else {
        bail!("container {container:?} in pod {name:?} has not started");
    };
    let rt = peapod_runtime::Runtime::new(peapod_shim::runtime_config(cfg))?;
    let mut pty: Option<(OwnedFd, nix::sys::termios::Termios)> = None;
    let stdio = if args.tty {
        let p = nix::pty::openpty(None, None).context("allocating a terminal")?;
        let saved = nix::sys::termios::tcgetattr(std::io::stdin()).ok();
        let stdio = Stdio {
            stdin: Some(dup(&p.slave)?),
            stdout: dup(&p.slave)?,
            stderr: dup(&p.slave)?,
        };
        if let Some(saved) = saved {
            let mut raw = saved.clone();
            nix::sys::termios::cfmakeraw(&mut raw);
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                &raw,
            );
            pty = Some((p.master, saved));
        } else {
            pty = Some((p.master, unsafe_default_termios()?));
        }
        stdio
    } else {
        let stdin = if args.stdin {
            dup(std::io::stdin())?
        } else {
            std::fs::File::open("/dev/null")?.into()
        };
        Stdio {
            stdin: Some(stdin),
            stdout: dup(std::io::stdout())?,
            stderr: dup(std::io::stderr())?,
        }
    };
    let req = ExecRequest {
        args: args.command.clone(),
        env: Default::default(),
        cwd: None,
        stdio: Some(stdio),
    };
    let pid = rt
        .exec(&c.id, req)
        .with_context(|| format!("exec in container {container:?}"));
    let pid = match pid {
        Ok(p) => p,
        Err(e) => {
            if let Some((_, saved)) = &pty {
                let _ = nix::sys::termios::tcsetattr(
                    std::io::stdin(),
                    nix::sys::termios::SetArg::TCSANOW,
                    saved,
                );
            }
            return Err(e);
        }
    };
    if let Some((master, _)) = &pty {
        pump(master, args.stdin)?;
    }
    let status = loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::__WALL)) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other,
        }
    };
    if let Some((_, saved)) = &pty {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            saved,
        );
    }
    Ok(match status? {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 1,
    })
}

fn unsafe_default_termios() -> Result<nix::sys::termios::Termios> {
    let p = nix::pty::openpty(None, None)?;
    Ok(nix::sys::termios::tcgetattr(&p.slave)?)
}

/// Copies standard input to the terminal and the terminal to standard output, on two
/// threads (started after the process exists, so no fork happens while they run).
fn pump(master: &OwnedFd, stdin: bool) -> Result<()> {
    let out = master.try_clone()?;
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
    let _ = master.as_raw_fd();
    Ok(())
}
