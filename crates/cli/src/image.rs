//! `peapod image pull|push|load|ls|inspect|rm|prune`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use peapod_types::config::Config;
use peapod_types::image_ref::Reference;

use crate::util::print_table;

/// Image commands.
#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Pull an image from its registry (or a configured mirror).
    #[command(after_help = "Examples:
  peapod image pull busybox
  peapod image pull --platform linux/arm64 registry.example.com/team/app:1.2")]
    Pull {
        /// The image, e.g. `busybox`, `registry.example.com/team/app:1.2` or `app@sha256:…`.
        name: String,
        /// The platform to pick from a multi-platform image (`os/arch[/variant]`).
        #[arg(long)]
        platform: Option<String>,
        /// Print only the image's name and digest when done.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Push a stored image to its registry (or under another name).
    #[command(after_help = "Examples:
  peapod image push localhost:5000/app:1.0
  peapod image push app:1.0 localhost:5000/team/app:1.0")]
    Push {
        /// The stored image.
        name: String,
        /// Push under this name instead.
        target: Option<String>,
    },
    /// Import an OCI image-layout archive or a `docker save` archive.
    #[command(after_help = "Examples:
  peapod image load -i busybox.tar
  docker save app:1.0 > app.tar && peapod image load app.tar")]
    Load {
        /// The archive.
        #[arg(short = 'i', long = "input", value_name = "FILE")]
        input: Option<PathBuf>,
        /// The archive (positional form).
        file: Option<PathBuf>,
    },
    /// List images.
    #[command(
        alias = "list",
        after_help = "Examples:
  peapod image ls"
    )]
    Ls,
    /// Show images in detail: names, digests, layers and the image's config, as JSON.
    #[command(after_help = "Examples:
  peapod image inspect localhost/peapod/busybox:1.0")]
    Inspect {
        /// Names or IDs.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove every image no container uses, then the blobs and snapshots nothing needs.
    #[command(after_help = "Examples:
  peapod image prune")]
    Prune,
    /// Remove images.
    #[command(after_help = "Examples:
  peapod image rm busybox
  peapod image rm --force app:1.0")]
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

/// The store for reading: listing and inspecting create nothing.
fn read_store(cfg: &Config) -> peapod_image::Store {
    peapod_image::Store::open_read_only(cfg.root.join("images"))
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(f))
}

fn registry(cfg: &Config) -> Result<peapod_image::Registry> {
    Ok(peapod_image::Registry::new(
        store(cfg)?,
        cfg.registries.clone(),
    )?)
}

/// The names of images that containers use.
fn images_in_use(cfg: &Config, st: &peapod_image::Store) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for c in peapod_shim::containers(cfg)? {
        for img in st.images()? {
            if (c.image_ref == img.repo_digest()
                || st.get(&c.image).is_ok_and(|i| i.name == img.name))
                && !names.contains(&img.name)
            {
                names.push(img.name.clone());
            }
        }
    }
    Ok(names)
}

pub fn run(cfg: &Config, cmd: &Cmd) -> Result<i32> {
    match cmd {
        Cmd::Pull {
            name,
            platform,
            quiet,
        } => {
            let reg = registry(cfg)?;
            let platform = platform
                .as_deref()
                .map(peapod_image::Platform::parse)
                .transpose()?;
            let display = (!quiet).then(|| crate::progress::Display::new(name));
            let opts = peapod_image::PullOptions {
                platform,
                progress: display.as_ref().map(|d| d.callback()),
                ..Default::default()
            };
            let started = std::time::Instant::now();
            let img = block_on(reg.pull(name, &opts))??;
            if let Some(d) = display {
                d.finish();
                println!(
                    "Pulled {} ({}, {}) in {:.1}s",
                    img.name,
                    img.top_digest(),
                    human_size(img.size),
                    started.elapsed().as_secs_f64()
                );
            } else {
                println!("{}@{}", img.name, img.top_digest());
            }
        }
        Cmd::Push { name, target } => {
            let reg = registry(cfg)?;
            let target_name = target.clone();
            let digest = block_on(reg.push(
                name,
                target_name.as_deref(),
                &peapod_image::PullOptions::default(),
            ))??;
            let shown = match target {
                Some(t) => Reference::parse(t)?.to_string(),
                None => store(cfg)?.get(name)?.name,
            };
            println!("Pushed {shown}@{digest}");
        }
        Cmd::Prune => {
            let st = store(cfg)?;
            let keep = images_in_use(cfg, &st)?;
            let p = st.prune(&keep)?;
            for n in &p.images {
                println!("Deleted: {n}");
            }
            println!(
                "Removed {} image(s), {} blob(s) ({}), {} snapshot(s)",
                p.images.len(),
                p.blobs,
                human_size(p.bytes),
                p.snapshots
            );
        }
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
            for img in read_store(cfg).images()? {
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
                    format!("sha256:{}", &img.top_digest().hex()[..12]),
                    human_size(img.size),
                    crate::util::age(added.as_ref()),
                ]);
            }
            print_table(&rows);
        }
        Cmd::Inspect { names } => {
            let st = read_store(cfg);
            let mut out = Vec::new();
            for n in names {
                let img = st.get(n)?;
                let config: serde_json::Value =
                    serde_json::from_slice(&st.read_blob(&img.config_digest)?)?;
                out.push(serde_json::json!({
                    "Id": img.config_digest.hex(),
                    "Digest": img.top_digest().to_string(),
                    "ManifestDigest": img.manifest_digest.to_string(),
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
            let users = peapod_shim::containers(cfg)?;
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

pub(crate) fn human_size(b: u64) -> String {
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
