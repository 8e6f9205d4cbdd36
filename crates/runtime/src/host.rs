//! Host operations the pod controller needs for its volumes (a memory-backed `emptyDir` is
//! a tmpfs), offered here so that mounts stay in the runtime layer.

use std::path::Path;

use crate::Result;

/// Mounts a tmpfs of at most `size` bytes (unlimited when `None`) with root mode `mode` at
/// `target`, unless something is mounted there already.
pub fn mount_tmpfs(target: &Path, size: Option<u64>, mode: u32) -> Result<()> {
    if peapod_oci::mount::is_mounted(target) {
        return Ok(());
    }
    Ok(peapod_oci::mount::tmpfs(target, size, mode)?)
}

/// Unmounts everything mounted at or below `dir`, deepest first.
pub fn unmount_all_under(dir: &Path) -> Result<()> {
    Ok(peapod_oci::mount::unmount_all_under(dir)?)
}
