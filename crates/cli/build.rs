//! Links `peapod` as a position-dependent executable: with no load-time relocations, its
//! read-only data stays clean and is shared between every pod's shim instead of being copied
//! into each one.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bin=peapod=-no-pie");
    }
}
