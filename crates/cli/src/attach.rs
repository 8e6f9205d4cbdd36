//! `peapod attach POD [-c C] [-i] [-t]`, as `kubectl attach`: the output of a container's
//! main process from now on, and with `-i` our input to it, through the pod's shim.

use std::io::Write;

use anyhow::{Context, Result, bail};
use nix::sys::termios::SetArg;
use peapod_types::config::Config;

/// Arguments of `attach`.
#[derive(clap::Args)]
pub struct Args {
    /// The pod (`NAME`, `pod/NAME`, or a workload such as `deploy/NAME`).
    name: String,
    /// The container; optional when the pod has one container.
    #[arg(short, long)]
    container: Option<String>,
    /// Namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Pass standard input to the container (it must have `stdin: true`).
    #[arg(short = 'i', long)]
    stdin: bool,
    /// Standard input is a terminal (the container must have `tty: true`).
    #[arg(short, long)]
    tty: bool,
}

pub fn run(cfg: &Config, args: &Args) -> Result<i32> {
    let h = crate::util::resolve_pod(cfg, &args.namespace, &args.name)?;
    attach(cfg, &h, args.container.as_deref(), args.stdin, args.tty)?;
    Ok(0)
}

/// Attaches to a container of pod `h` until its output ends (it exited, or detached).
pub(crate) fn attach(
    cfg: &Config,
    h: &peapod_shim::PodHandle,
    container: Option<&str>,
    stdin: bool,
    tty: bool,
) -> Result<()> {
    let _ = cfg;
    if !h.shim_alive {
        bail!("pod {:?} is not running (phase Unknown)", h.name());
    }
    let c = crate::exec::started_container(h, container)?;
    let spec = h
        .pod
        .spec()
        .containers
        .iter()
        .find(|s| s.name == c.name)
        .cloned()
        .unwrap_or_default();
    if stdin && spec.stdin != Some(true) {
        bail!(
            "Unable to use stdin - container {:?} did not allocate one (set stdin: true)",
            c.name
        );
    }
    let tty = if tty && spec.tty != Some(true) {
        eprintln!(
            "Unable to use a TTY - container {} did not allocate one",
            c.name
        );
        false
    } else {
        tty && spec.tty == Some(true)
    };
    let socket = h.paths.socket();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut session = peapod_shim::attach(&socket, &c.id, stdin, tty)
            .await
            .with_context(|| format!("attaching to container {:?}", c.name))?;
        if tty {
            eprintln!("If you don't see a command prompt, try pressing enter.");
        }
        // A terminal of ours goes raw and lends its size.
        let term = std::io::stdin();
        let saved = if tty {
            nix::sys::termios::tcgetattr(&term).ok()
        } else {
            None
        };
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            nix::sys::termios::cfmakeraw(&mut raw);
            let _ = nix::sys::termios::tcsetattr(&term, SetArg::TCSANOW, &raw);
            if let Some((w, h)) = window_size() {
                let _ = session.resize.send((w, h)).await;
            }
        }
        if let Some(input) = session.input.take() {
            // Blocking reads on a thread of their own; the end of our input ends theirs.
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    match std::io::Read::read(&mut std::io::stdin(), &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if input.blocking_send(buf[..n].to_vec()).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
        while let Some(chunk) = session.output.recv().await {
            let written = match chunk.stream {
                peapod_shim::OutputStream::Stderr => {
                    let mut e = std::io::stderr();
                    e.write_all(&chunk.data).and_then(|_| e.flush())
                }
                _ => {
                    let mut o = std::io::stdout();
                    o.write_all(&chunk.data).and_then(|_| o.flush())
                }
            };
            if written.is_err() {
                break;
            }
        }
        if let Some(saved) = &saved {
            let _ = nix::sys::termios::tcsetattr(&term, SetArg::TCSANOW, saved);
        }
        Ok(())
    })
}

/// The size of our terminal, if standard output is one: (width, height).
fn window_size() -> Option<(u16, u16)> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer.
    let r = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some((ws.ws_col, ws.ws_row))
}
