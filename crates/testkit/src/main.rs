//! `peapod-busybox-image OUT.tar [NAME]`: writes the busybox test image as an OCI archive.

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next() else {
        anyhow::bail!("usage: peapod-busybox-image OUT.tar [NAME]");
    };
    let name = args
        .next()
        .unwrap_or_else(|| peapod_testkit::BUSYBOX_IMAGE.to_string());
    peapod_testkit::write_busybox_archive(
        peapod_testkit::HOST_BUSYBOX.as_ref(),
        &name,
        out.as_ref(),
    )?;
    println!("{out}: {name}");
    Ok(())
}
