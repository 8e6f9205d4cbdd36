//! `peapod cp`, as `kubectl cp`: files and directories between the machine and a
//! container, carried as a tar stream through `tar` run in the container (which must have
//! it, as with kubectl).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use peapod_shim::{ExecRequest, Stdio};
use peapod_types::config::Config;

/// Arguments of `cp`.
#[derive(clap::Args)]
pub struct Args {
    /// From: a local path, or `POD:PATH`.
    src: String,
    /// To: a local path, or `POD:PATH`.
    dest: String,
    /// The container; optional when the pod has one container.
    #[arg(short, long)]
    container: Option<String>,
    /// Namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
}

/// `POD:PATH` (or `NAMESPACE/POD:PATH`) → (namespace, pod, path); a local path → None.
fn remote<'a>(s: &'a str, ns: &'a str) -> Option<(&'a str, &'a str, &'a str)> {
    let (pod, path) = s.split_once(':')?;
    if pod.is_empty() || pod.matches('/').count() > 1 {
        return None;
    }
    Some(match pod.split_once('/') {
        Some((n, p)) => (n, p, path),
        None => (ns, pod, path),
    })
}

/// Runs `argv` in the container with the given standard input and output; its exit code.
fn exec(
    cfg: &Config,
    ns: &str,
    pod: &str,
    container: Option<&str>,
    argv: &[&str],
    stdin: OwnedFd,
    stdout: OwnedFd,
) -> Result<i32> {
    let h = crate::util::find_pod(cfg, ns, pod)?;
    let c = crate::exec::started_container(&h, container)?;
    let req = ExecRequest {
        args: argv.iter().map(|s| s.to_string()).collect(),
        env: Default::default(),
        cwd: None,
        stdio: Some(Stdio {
            stdin: Some(stdin),
            stdout,
            stderr: std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned()?,
        }),
        tty: false,
    };
    let proc = peapod_shim::exec(cfg, &c.id, req).context("exec tar in the container")?;
    loop {
        match waitpid(Pid::from_raw(proc.pid), Some(WaitPidFlag::__WALL)) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn split(path: &str) -> (String, String) {
    let p = Path::new(path.trim_end_matches('/'));
    let dir = p
        .parent()
        .map(|d| d.display().to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| ".".into());
    let base = p
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, base)
}

pub fn run(cfg: &Config, args: &Args) -> Result<i32> {
    match (
        remote(&args.src, &args.namespace),
        remote(&args.dest, &args.namespace),
    ) {
        (Some((ns, pod, path)), None) => from_pod(cfg, args, ns, pod, path),
        (None, Some((ns, pod, path))) => to_pod(cfg, args, ns, pod, path),
        (Some(_), Some(_)) => bail!("one of the two paths must be local"),
        (None, None) => bail!("one of the two paths must be in a pod: POD:PATH"),
    }
}

fn from_pod(cfg: &Config, args: &Args, ns: &str, pod: &str, path: &str) -> Result<i32> {
    let (dir, base) = split(path);
    if base.is_empty() {
        bail!("give a file or directory in the pod, not {path:?}");
    }
    let (r, w) = nix::unistd::pipe()?;
    let devnull: OwnedFd = std::fs::File::open("/dev/null")?.into();
    let argv = ["tar", "cf", "-", "-C", dir.as_str(), base.as_str()];
    let dest = PathBuf::from(&args.dest);
    let reader = std::thread::spawn(move || -> Result<()> {
        let mut ar = tar::Archive::new(std::fs::File::from(r));
        for entry in ar.entries()? {
            let mut e = entry?;
            let p = e.path()?.into_owned();
            let mut parts = p.components();
            parts.next(); // the top-level name: it becomes `dest`
            let rest: PathBuf = parts.collect();
            if rest
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                bail!("refusing {}: it leaves the destination", p.display());
            }
            let target = if rest.as_os_str().is_empty() {
                dest.clone()
            } else {
                dest.join(rest)
            };
            if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            e.unpack(&target)
                .with_context(|| format!("writing {}", target.display()))?;
        }
        Ok(())
    });
    let code = exec(cfg, ns, pod, args.container.as_deref(), &argv, devnull, w)?;
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("the tar reader panicked"))??;
    if code != 0 {
        bail!("tar in the container exited with {code}");
    }
    Ok(0)
}

fn to_pod(cfg: &Config, args: &Args, ns: &str, pod: &str, path: &str) -> Result<i32> {
    let src = PathBuf::from(&args.src);
    let meta = std::fs::metadata(&src).with_context(|| format!("{}", src.display()))?;
    let (dir, base) = split(path);
    if base.is_empty() {
        bail!("give the path in the pod to copy to, not {path:?}");
    }
    let (r, w) = nix::unistd::pipe()?;
    let writer = std::thread::spawn(move || -> Result<()> {
        let mut b = tar::Builder::new(std::fs::File::from(w));
        b.follow_symlinks(false);
        if meta.is_dir() {
            b.append_dir_all(&base, &src)?;
        } else {
            b.append_path_with_name(&src, &base)?;
        }
        b.finish()?;
        Ok(())
    });
    let devnull: OwnedFd = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")?
        .into();
    let argv = ["tar", "xf", "-", "-C", dir.as_str()];
    let code = exec(cfg, ns, pod, args.container.as_deref(), &argv, r, devnull)?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the tar writer panicked"))??;
    if code != 0 {
        bail!("tar in the container exited with {code}");
    }
    Ok(0)
}
