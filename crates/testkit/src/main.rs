//! `peapod-busybox-image OUT.tar [NAME] [--big MIB]`: writes the busybox test image as an OCI
//! archive; with `--big`, a multi-layer image of about MIB MiB for benchmarks.

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let big = match args.iter().position(|a| a == "--big") {
        Some(i) => {
            let mb = args.get(i + 1).and_then(|v| v.parse::<usize>().ok());
            let Some(mb) = mb else {
                anyhow::bail!("--big needs a size in MiB");
            };
            args.drain(i..i + 2);
            Some(mb)
        }
        None => None,
    };
    let mut args = args.into_iter();
    let Some(out) = args.next() else {
        anyhow::bail!("usage: peapod-busybox-image OUT.tar [NAME] [--big MIB]");
    };
    let name = args
        .next()
        .unwrap_or_else(|| peapod_testkit::BUSYBOX_IMAGE.to_string());
    match big {
        Some(mb) => peapod_testkit::write_big_archive(&name, mb, out.as_ref())?,
        None => peapod_testkit::write_busybox_archive(
            peapod_testkit::HOST_BUSYBOX.as_ref(),
            &name,
            out.as_ref(),
        )?,
    }
    println!("{out}: {name}");
    Ok(())
}
