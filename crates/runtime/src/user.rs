//! Resolving an image's `User` (`uid`, `uid:gid`, `name`, `name:group`) against the
//! container's own `/etc/passwd` and `/etc/group`, as containerd does.

use std::path::Path;

/// Resolves `user` in the root file system at `rootfs`; returns (uid, gid).
pub(crate) fn resolve(rootfs: &Path, user: &str) -> Result<(u32, u32), String> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let (uid, mut gid) = match u.parse::<u32>() {
        Ok(uid) => {
            let gid = entries(&passwd)
                .find(|f| f.get(2) == Some(&u))
                .and_then(|f| f.get(3)?.parse().ok());
            (uid, gid.unwrap_or(0))
        }
        Err(_) => {
            let f = entries(&passwd)
                .find(|f| f.first() == Some(&u))
                .ok_or_else(|| {
                    format!("unable to find user {u}: no matching entries in passwd file")
                })?;
            let uid = f
                .get(2)
                .and_then(|s| s.parse().ok())
                .ok_or("malformed passwd entry")?;
            (uid, f.get(3).and_then(|s| s.parse().ok()).unwrap_or(0))
        }
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
                let f = entries(&group)
                    .find(|f| f.first() == Some(&g))
                    .ok_or_else(|| {
                        format!("unable to find group {g}: no matching entries in group file")
                    })?;
                f.get(2)
                    .and_then(|s| s.parse().ok())
                    .ok_or("malformed group entry")?
            }
        };
    }
    Ok((uid, gid))
}

fn entries(file: &str) -> impl Iterator<Item = Vec<&str>> {
    file.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}
