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
    /// The pod (`pod/NAME` works too); optional with -l.
    name: Option<String>,
    /// The container; optional when the pod has one container.
    #[arg(short, long)]
    container: Option<String>,
    /// Namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// With -f and several containers (-l, --all-containers): at most this many streams.
    #[arg(long, default_value_t = 5)]
    max_log_requests: usize,
    /// Keep printing new lines until the container stops.
    #[arg(short, long)]
    follow: bool,
    /// The logs of the previous instance of the container.
    #[arg(short, long)]
    previous: bool,
    /// Prefix each line with its time.
    #[arg(long)]
    timestamps: bool,
    /// Only the last N lines (-1: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    tail: i64,
    /// Only lines newer than this: `30s`, `5m`, `1h`.
    #[arg(long)]
    since: Option<String>,
    /// Prefix each line with `[pod/NAME/CONTAINER]`.
    #[arg(long)]
    prefix: bool,
    /// Every container of the pod (init containers first).
    #[arg(long)]
    all_containers: bool,
    /// The pods matching this label selector.
    #[arg(short = 'l', long)]
    selector: Option<String>,
}

/// How lines are picked and printed.
struct Shape {
    timestamps: bool,
    tail: Option<usize>,
    since: Option<jiff::Timestamp>,
    prefix: Option<String>,
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
    let pods: Vec<PodHandle> = match (&args.name, &args.selector) {
        (Some(n), _) => vec![crate::util::resolve_pod(cfg, &args.namespace, n)?],
        (None, Some(sel)) => {
            let sel = peapod_types::selector::parse(sel).map_err(anyhow::Error::msg)?;
            peapod_shim::list_pods(cfg)
                .into_iter()
                .filter(|p| {
                    p.namespace() == args.namespace
                        && sel.matches(p.current().metadata.labels.as_ref())
                })
                .collect()
        }
        (None, None) => bail!("give a pod name, or a selector with -l"),
    };
    let many_pods = args.selector.is_some();
    let mut targets: Vec<(PodHandle, String)> = Vec::new();
    for h in pods {
        let names: Vec<String> = if args.all_containers {
            let spec = h.pod.spec();
            spec.init_containers
                .iter()
                .flatten()
                .chain(spec.containers.iter())
                .map(|c| c.name.clone())
                .collect()
        } else if many_pods && args.container.is_none() {
            vec![h.pod.spec().containers[0].name.clone()]
        } else {
            vec![pick_container(&h, args.container.as_deref())?]
        };
        for n in names {
            targets.push((h.clone(), n));
        }
    }
    if args.follow && targets.len() > args.max_log_requests {
        bail!(
            "you are attempting to follow {} log streams, but maximum allowed concurrency is {}, use --max-log-requests to increase the limit",
            targets.len(),
            args.max_log_requests
        );
    }
    let since = match &args.since {
        Some(d) => Some(jiff::Timestamp::now() - crate::wait::parse_duration(d)?),
        None => None,
    };
    let several = targets.len() > 1;
    // (pod, container, instance count, log file, shape)
    let mut streams = Vec::new();
    for (h, container) in &targets {
        let Some(count) = restart_count(h, container) else {
            if several {
                continue;
            }
            bail!(
                "container {container:?} in pod {:?} is waiting to start",
                h.name()
            );
        };
        let n = if args.previous {
            if count == 0 {
                bail!(
                    "previous terminated container {container:?} in pod {:?} not found",
                    h.name()
                );
            }
            count - 1
        } else {
            count
        };
        let shape = Shape {
            timestamps: args.timestamps,
            tail: usize::try_from(args.tail).ok(),
            since,
            prefix: args
                .prefix
                .then(|| format!("[pod/{}/{container}] ", h.name())),
        };
        let path: PathBuf = h.paths.log_dir.join(container).join(format!("{n}.log"));
        streams.push((h, container, count, path, shape));
    }
    let follow = args.follow && !args.previous;
    if follow && streams.len() > 1 {
        // Every stream at once, each on a thread of its own, until each container stops.
        return std::thread::scope(|s| {
            let all: Vec<_> = streams
                .iter()
                .map(|(h, container, count, path, shape)| {
                    s.spawn(move || {
                        print_log(path, shape, || still_running(cfg, h, container, *count))
                    })
                })
                .collect();
            for t in all {
                t.join()
                    .map_err(|_| anyhow::anyhow!("a log stream failed"))??;
            }
            Ok(0)
        });
    }
    for (h, container, count, path, shape) in &streams {
        print_log(path, shape, || {
            follow && still_running(cfg, h, container, *count)
        })?;
    }
    Ok(0)
}

/// Prints what the current (or last) instance of `container` of pod `h` has logged.
pub(crate) fn print_log_of(h: &PodHandle, container: &str) -> Result<()> {
    let Some(n) = restart_count(h, container) else {
        return Ok(());
    };
    let shape = Shape {
        timestamps: false,
        tail: None,
        since: None,
        prefix: None,
    };
    let path = h.paths.log_dir.join(container).join(format!("{n}.log"));
    print_log(&path, &shape, || false)
}

/// Prints the CRI log at `path` as `shape` says, then, while `more()`, what is added.
fn print_log(path: &std::path::Path, shape: &Shape, more: impl Fn() -> bool) -> Result<()> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut reader = BufReader::new(file);
    // Each line is written whole under the lock, so that several followed containers'
    // lines interleave only between lines.
    let out = std::io::stdout();
    let mut partial = String::new();
    let mut line = String::new();
    // What is there already, so that --tail can count back from its end.
    let mut backlog: Vec<(String, String)> = Vec::new();
    let mut caught_up = false;
    let emit = |out: &std::io::Stdout, time: &str, text: &str| -> Result<()> {
        let mut line = String::new();
        if let Some(p) = &shape.prefix {
            line.push_str(p);
        }
        if shape.timestamps {
            line.push_str(time);
            line.push(' ');
        }
        line.push_str(text);
        line.push('\n');
        let mut o = out.lock();
        o.write_all(line.as_bytes())?;
        o.flush()?;
        Ok(())
    };
    loop {
        line.clear();
        let read = reader.read_line(&mut line)?;
        if read > 0 && line.ends_with('\n') {
            if let Some(rec) = peapod_types::cri_log::parse(line.trim_end_matches('\n')) {
                partial.push_str(rec.text);
                if !rec.partial {
                    let fresh = shape
                        .since
                        .is_none_or(|s| rec.time.parse::<jiff::Timestamp>().is_ok_and(|t| t >= s));
                    if fresh {
                        if caught_up {
                            emit(&out, rec.time, &partial)?;
                        } else {
                            backlog.push((rec.time.to_string(), partial.clone()));
                        }
                    }
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
        if !caught_up {
            let skip = shape.tail.map_or(0, |t| backlog.len().saturating_sub(t));
            for (time, text) in backlog.drain(..).skip(skip) {
                emit(&out, &time, &text)?;
            }
            caught_up = true;
        }
        if !more() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
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
