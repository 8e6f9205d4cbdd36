//! `peapod image load|ls|inspect|rm`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use peapod_types::config::Config;
use peapod_types::image_ref::Reference;

use crate::util::print_table;

/// Image commands.
#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Import an OCI image-layout archive or a `docker save` archive.
    Load {
        /// The archive.
        #[arg(short = 'i', long = "input", value_name = "FILE")]
        input: Option<PathBuf>,
        /// The archive (positional form).
        file: Option<PathBuf>,
    },
    /// List images.
    #[command(alias = "list")]
    Ls,
    /// Show images in detail: names, digests, layers and the image's config, as JSON.
    Inspect {
        /// Names or IDs.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove images.
    Rm {
        /// Names or IDs.
        #[arg(required = true)]
        names: Vec<String>,
        /// Remove even if a container uses it.
        #[arg(short, long)]
        force: bool,
    },
}

fn store(cfg: &Config) -> Result<peapod_image::Store> {
    Ok(peapod_image::Store::open(cfg.root.join("images"))?)
}

pub fn run(cfg: &Config, cmd: &Cmd) -> Result<i32> {
    match cmd {
        Cmd::Load { input, file } => {
            let Some(path) = input.as_ref().or(file.as_ref()) else {
                bail!("give the archive to load")
            };
            for img in store(cfg)?.load_archive(path)? {
                println!("Loaded image: {}", img.name);
            }
        }
        Cmd::Ls => {
            let mut rows = vec![
                ["IMAGE", "TAG", "IMAGE ID", "DIGEST", "SIZE", "AGE"]
                    .map(String::from)
                    .to_vec(),
            ];
            for img in store(cfg)?.images()? {
                let r = Reference::parse(&img.name)?;
                let added = img
                    .added
                    .parse::<jiff::Timestamp>()
                    .ok()
                    .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
                rows.push(vec![
                    r.repo(),
                    r.tag.clone().unwrap_or_else(|| "<none>".into()),
                    img.config_digest.hex()[..12].to_string(),
                    format!("sha256:{}", &img.manifest_digest.hex()[..12]),
                    human_size(img.size),
                    crate::util::age(added.as_ref()),
                ]);
            }
            print_table(&rows);
        }
        Cmd::Inspect { names } => {
            let st = store(cfg)?;
            let mut out = Vec::new();
            for n in names {
                let img = st.get(n)?;
                let config: serde_json::Value =
                    serde_json::from_slice(&st.read_blob(&img.config_digest)?)?;
                out.push(serde_json::json!({
                    "Id": img.config_digest.hex(),
                    "Digest": img.manifest_digest.to_string(),
                    "RepoTags": [img.name],
                    "RepoDigests": [img.repo_digest()],
                    "Created": config.get("created"),
                    "Added": img.added,
                    "Size": img.size,
                    "Architecture": config.get("architecture"),
                    "Os": config.get("os"),
                    "Config": config.get("config"),
                    "RootFS": {
                        "Type": "layers",
                        "Layers": img.diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    },
                    "LayerBlobs": img.layers.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Cmd::Rm { names, force } => {
            let st = store(cfg)?;
            let rt = peapod_runtime::Runtime::new(peapod_shim::runtime_config(cfg))?;
            let users = rt.list_containers(None);
            for n in names {
                let img = st.get(n)?;
                let user = users.iter().find(|c| {
                    c.image_ref == img.repo_digest()
                        || st.get(&c.image).is_ok_and(|i| i.name == img.name)
                });
                if let Some(c) = user
                    && !force
                {
                    bail!(
                        "image {:?} is in use by container {} ({}); use --force to remove it anyway",
                        img.name,
                        c.metadata.name,
                        &c.id[..12]
                    );
                }
                st.remove(n)?;
                println!("Untagged: {}", img.name);
            }
        }
    }
    Ok(0)
}

fn human_size(b: u64) -> String {
    let (v, u) = if b >= 1 << 30 {
        (b as f64 / (1u64 << 30) as f64, "GiB")
    } else if b >= 1 << 20 {
        (b as f64 / (1u64 << 20) as f64, "MiB")
    } else if b >= 1 << 10 {
        (b as f64 / 1024.0, "KiB")
    } else {
        return format!("{b}B");
    };
    format!("{v:.1}{u}")
}
