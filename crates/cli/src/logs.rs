//! `peapod logs NAME`.

use std::io::{BufRead, BufReader, Seek, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use peapod_shim::PodHandle;
use peapod_types::config::Config;

/// Arguments of `logs`.
#[derive(clap::Args)]
pub struct Args {
    /// The pod (`pod/NAME` works too).
    name: String,
    /// The container; optional when the pod has one container.
    #[arg(short, long)]
    container: Option<String>,
    /// Namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Keep printing new lines until the container stops.
    #[arg(short, long)]
    follow: bool,
    /// The logs of the previous instance of the container.
    #[arg(short, long)]
    previous: bool,
    /// Prefix each line with its time.
    #[arg(long)]
    timestamps: bool,
}

/// Picks the container: the named one, or the only one.
pub fn pick_container(h: &PodHandle, name: Option<&str>) -> Result<String> {
    let spec = h.pod.spec();
    let all: Vec<String> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .map(|c| c.name.clone())
        .collect();
    match name {
        Some(n) if all.iter().any(|c| c == n) => Ok(n.to_string()),
        Some(n) => bail!("container {n:?} is not valid for pod {:?}", h.name()),
        None if spec.containers.len() == 1 => Ok(spec.containers[0].name.clone()),
        None => bail!(
            "a container name must be specified for pod {}, choose one of: [{}]",
            h.name(),
            spec.containers
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

fn restart_count(h: &PodHandle, container: &str) -> Option<i32> {
    let st = h.current().status?;
    st.init_container_statuses
        .into_iter()
        .flatten()
        .chain(st.container_statuses.into_iter().flatten())
        .find(|s| s.name == container)
        .filter(|s| s.container_id.is_some() || s.restart_count > 0)
        .map(|s| s.restart_count)
}

pub fn run(cfg: &Config, args: &Args) -> Result<i32> {
    let name = args.name.trim_start_matches("pod/");
    let h = crate::util::find_pod(cfg, &args.namespace, name)?;
    let container = pick_container(&h, args.container.as_deref())?;
    let Some(count) = restart_count(&h, &container) else {
        bail!("container {container:?} in pod {name:?} is waiting to start");
    };
    let n = if args.previous {
        if count == 0 {
            bail!("previous terminated container {container:?} in pod {name:?} not found");
        }
        count - 1
    } else {
        count
    };
    let path: PathBuf = h.paths.log_dir.join(&container).join(format!("{n}.log"));
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut reader = BufReader::new(file);
    let mut out = std::io::stdout().lock();
    let mut partial = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader.read_line(&mut line)?;
        if read > 0 && line.ends_with('\n') {
            if let Some(rec) = peapod_types::cri_log::parse(line.trim_end_matches('\n')) {
                partial.push_str(rec.text);
                if !rec.partial {
                    if args.timestamps {
                        write!(out, "{} ", rec.time)?;
                    }
                    writeln!(out, "{partial}")?;
                    partial.clear();
                }
            }
            continue;
        }
        if read > 0 {
            // An incomplete record: read it again once it is complete.
            let pos = reader.stream_position()? - read as u64;
            reader.seek(std::io::SeekFrom::Start(pos))?;
        }
        if !args.follow || args.previous || !still_running(cfg, &h, &container, count) {
            break;
        }
        out.flush()?;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(0)
}

fn still_running(cfg: &Config, h: &PodHandle, container: &str, count: i32) -> bool {
    let Ok(now) = crate::util::find_pod(cfg, h.namespace(), h.name()) else {
        return false;
    };
    if !now.shim_alive {
        return false;
    }
    let st = now.current().status.unwrap_or_default();
    st.init_container_statuses
        .into_iter()
        .flatten()
        .chain(st.container_statuses.into_iter().flatten())
        .find(|s| s.name == container)
        .is_some_and(|s| {
            s.restart_count == count && s.state.is_some_and(|st| st.terminated.is_none())
        })
}
