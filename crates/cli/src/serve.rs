//! `peapod serve`: the CRI server, for a kubelet or crictl.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, Result};
use peapod_types::config::Config;

/// Arguments of `serve`.
#[derive(clap::Args)]
pub struct Args {
    /// The unix socket to serve on; `[cri] socket` in the config, else
    /// `<run_root>/peapod.sock`.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Where the streaming server (exec, attach, port-forward) listens, `ADDRESS:PORT`;
    /// `[cri] stream_address` in the config, else `127.0.0.1:0` (any free port).
    #[arg(long, value_name = "ADDRESS:PORT")]
    stream_address: Option<String>,
}

pub fn run(cfg: &Config, args: &Args, shim_args: Vec<OsString>) -> Result<i32> {
    let socket = args
        .socket
        .clone()
        .or_else(|| cfg.cri.socket.clone())
        .unwrap_or_else(|| cfg.run_root.join("peapod.sock"));
    let stream_address = args
        .stream_address
        .clone()
        .or_else(|| cfg.cri.stream_address.clone())
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let stream_address: std::net::SocketAddr = stream_address
        .parse()
        .with_context(|| format!("stream address {stream_address:?}: expected ADDRESS:PORT"))?;
    let exe = std::env::current_exe().context("locating the peapod executable")?;
    // One thread: sandbox supervisors are spawned from here, and nothing else forks.
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    tokio.block_on(async {
        let backend = peapod_shim::cri::CriRuntime::open(cfg.clone(), exe, shim_args)
            .await
            .context("opening the runtime")?;
        tokio::spawn(peapod_shim::cri::reap_children());
        peapod_cri::serve(backend, &socket, stream_address).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(0)
}
