//! Links `peapod-pause` as a static executable with no C runtime or libc.
fn main() {
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--gc-sections",
        "-Wl,--build-id=none",
        "-Wl,-z,norelro",
        "-Wl,-z,noexecstack",
        "-Wl,-s",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
