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

/// The groups the image's `/etc/group` lists `user` (a name, or a UID named through
/// `/etc/passwd`) as a member of, as containerd merges them; none when the user has no name.
pub(crate) fn image_groups(rootfs: &Path, user: &str) -> Vec<u32> {
    let name = match user.parse::<u32>() {
        Ok(_) => {
            let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
            match entries(&passwd).find(|f| f.get(2) == Some(&user)) {
                Some(f) => f[0].to_string(),
                None => return Vec::new(),
            }
        }
        Err(_) => user.to_string(),
    };
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    entries(&group)
        .filter(|f| f.first() != Some(&name.as_str()))
        .filter(|f| {
            f.get(3)
                .is_some_and(|members| members.split(',').any(|m| m.trim() == name))
        })
        .filter_map(|f| f.get(2)?.parse().ok())
        .collect()
}

/// The supplementary groups of a process running as `gid`: its primary group first, then
/// (unless `strict`) the image's groups for the user, then the requested groups, each once.
pub(crate) fn supplementary_groups(gid: u32, image: &[u32], requested: &[i64]) -> Vec<u32> {
    let mut out = vec![gid];
    for g in image
        .iter()
        .copied()
        .chain(requested.iter().map(|g| *g as u32))
    {
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\ndefault-user:x:1000:1000::/home:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\ndefault-user:x:1000:default-user\n\
             group-defined-in-image:x:50000:other,default-user\nwheel:x:10:root\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn image_groups_by_uid_and_by_name() {
        let d = rootfs();
        assert_eq!(image_groups(d.path(), "1000"), [50000]);
        assert_eq!(image_groups(d.path(), "default-user"), [50000]);
        assert_eq!(image_groups(d.path(), "0"), [10]);
        assert!(image_groups(d.path(), "4242").is_empty());
    }

    #[test]
    fn primary_group_comes_first_and_nothing_twice() {
        assert_eq!(
            supplementary_groups(1000, &[50000], &[1234, 1000]),
            [1000, 50000, 1234]
        );
        assert_eq!(supplementary_groups(0, &[], &[]), [0]);
    }

    #[test]
    fn resolve_forms() {
        let d = rootfs();
        assert_eq!(resolve(d.path(), "1000").unwrap(), (1000, 1000));
        assert_eq!(resolve(d.path(), "default-user:wheel").unwrap(), (1000, 10));
        assert_eq!(resolve(d.path(), "7:8").unwrap(), (7, 8));
        assert!(
            resolve(d.path(), "nobody")
                .unwrap_err()
                .contains("unable to find user nobody")
        );
    }
}
