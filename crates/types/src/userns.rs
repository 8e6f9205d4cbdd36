//! The kubelet's user namespace manager as pure rules: the IDs a node gives pods with
//! `hostUsers: false` (the subordinate IDs of the `kubelet` user, else every ID from 65536
//! up), the block of 65,536 a pod gets, and the record of it kept in the pod's directory.

use serde::{Deserialize, Serialize};

/// IDs in each pod's user namespace (the kubelet's default `idsPerPod`).
pub const IDS_PER_POD: u32 = 65536;

/// Pods a node must be able to give a user namespace (the kubelet's default `maxPods`).
pub const MAX_PODS: u64 = 110;

/// The IDs pods' user namespaces are taken from: `first` and `len` IDs after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeRange {
    /// First ID, a multiple of [`IDS_PER_POD`].
    pub first: u32,
    /// How many IDs, a multiple of [`IDS_PER_POD`].
    pub len: u64,
}

impl NodeRange {
    /// Without a `kubelet` user: every ID from 65536 to the last.
    pub const DEFAULT: NodeRange = NodeRange {
        first: IDS_PER_POD,
        len: (1 << 32) - IDS_PER_POD as u64,
    };

    /// The node's range from the host's `/etc/passwd`, `/etc/subuid` and `/etc/subgid`, as
    /// the kubelet reads it: the default when there is no `kubelet` user, else its one
    /// range of subordinate IDs, the same for users and groups, checked as the kubelet
    /// checks it.
    pub fn from_host(passwd: &str, subuid: &str, subgid: &str) -> Result<NodeRange, String> {
        let Some(uid) = passwd.lines().find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some("kubelet")).then(|| f.nth(1).unwrap_or("").to_string())
        }) else {
            return Ok(NodeRange::DEFAULT);
        };
        let ranges = |file: &str| -> Vec<(u64, u64)> {
            file.lines()
                .filter_map(|l| {
                    let mut f = l.trim().split(':');
                    let owner = f.next()?;
                    let (start, count) = (f.next()?.parse().ok()?, f.next()?.parse().ok()?);
                    (owner == "kubelet" || owner == uid).then_some((start, count))
                })
                .collect()
        };
        let (uids, gids) = (ranges(subuid), ranges(subgid));
        if uids != gids {
            return Err("different UID and GID mappings for user \"kubelet\"".into());
        }
        let (first, len) = match uids.as_slice() {
            [one] => *one,
            [] => return Err("no subordinate IDs for user \"kubelet\"".into()),
            _ => return Err("more than one range of subordinate IDs for user \"kubelet\"".into()),
        };
        let per_pod = u64::from(IDS_PER_POD);
        if first % per_pod != 0 {
            return Err(format!(
                "kubelet user assigned ID {first} is not a multiple of {per_pod}"
            ));
        }
        if first < per_pod {
            return Err(format!(
                "kubelet user assigned ID {first} must be greater or equal to {per_pod}"
            ));
        }
        if len % per_pod != 0 {
            return Err(format!(
                "kubelet user assigned IDs length {len} is not a multiple of {per_pod}"
            ));
        }
        if len / per_pod < MAX_PODS {
            return Err(format!(
                "kubelet user assigned IDs are not enough to support {MAX_PODS} pods"
            ));
        }
        if first + len > 1 << 32 {
            return Err(format!(
                "kubelet user assigned IDs {first}+{len} go past the last ID"
            ));
        }
        Ok(NodeRange {
            first: first as u32,
            len,
        })
    }

    /// The first ID of a free block for a new pod, given the first IDs of the blocks other
    /// pods hold: a scan from the block `seed` points at (the kubelet starts at a random
    /// one), wrapping around. `None` when every block is taken.
    pub fn pick(&self, used: &std::collections::BTreeSet<u32>, seed: u64) -> Option<u32> {
        let blocks = self.len / u64::from(IDS_PER_POD);
        if blocks == 0 {
            return None;
        }
        let start = seed % blocks;
        (0..blocks)
            .map(|i| (start + i) % blocks)
            .map(|b| (u64::from(self.first) + b * u64::from(IDS_PER_POD)) as u32)
            .find(|id| !used.contains(id))
    }
}

/// One range of an ID map, as the kubelet records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdMapping {
    /// The first host ID.
    pub host_id: u32,
    /// The first ID inside.
    pub container_id: u32,
    /// How many.
    pub length: u32,
}

/// A pod's user namespace, as the kubelet keeps it in the pod's directory (`userns`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodUserNamespace {
    /// User IDs.
    pub uid_mappings: Vec<IdMapping>,
    /// Group IDs.
    pub gid_mappings: Vec<IdMapping>,
}

impl PodUserNamespace {
    /// The namespace of the block starting at host ID `first`: IDs 0 to 65535 inside.
    pub fn block(first: u32) -> PodUserNamespace {
        let m = IdMapping {
            host_id: first,
            container_id: 0,
            length: IDS_PER_POD,
        };
        PodUserNamespace {
            uid_mappings: vec![m],
            gid_mappings: vec![m],
        }
    }

    /// Reads a recorded namespace, checked as the kubelet checks what it reads back.
    pub fn parse(text: &str) -> Result<PodUserNamespace, String> {
        let ns: PodUserNamespace = serde_json::from_str(text)
            .map_err(|e| format!("invalid user namespace mappings file: {e}"))?;
        if ns.uid_mappings.len() != 1 {
            return Err(
                "invalid user namespace configuration: no more than one mapping allowed.".into(),
            );
        }
        if ns.uid_mappings != ns.gid_mappings {
            return Err(
                "invalid user namespace configuration: GID and UID mapping should be identical"
                    .into(),
            );
        }
        let m = ns.uid_mappings[0];
        if m.container_id != 0 {
            return Err("invalid user namespace configuration: UID 0 must be mapped".into());
        }
        if m.length != IDS_PER_POD || m.host_id % IDS_PER_POD != 0 {
            return Err(format!(
                "wrong user namespace range {}+{}",
                m.host_id, m.length
            ));
        }
        Ok(ns)
    }

    /// The first host ID of its block.
    pub fn first(&self) -> u32 {
        self.uid_mappings.first().map_or(0, |m| m.host_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn without_a_kubelet_user_pods_get_ids_from_65536_up() {
        let r = NodeRange::from_host("root:x:0:0::/root:/bin/sh\n", "", "").unwrap();
        assert_eq!(r, NodeRange::DEFAULT);
        assert_eq!(u64::from(r.first) + r.len, 1 << 32);
    }

    #[test]
    fn the_kubelet_users_subordinate_ids_are_the_range() {
        let passwd = "root:x:0:0::/root:/bin/sh\nkubelet:x:999:999::/:/bin/false\n";
        let sub = "alice:100000:65536\nkubelet:65536:7208960\n";
        assert_eq!(
            NodeRange::from_host(passwd, sub, sub).unwrap(),
            NodeRange {
                first: 65536,
                len: 7208960
            }
        );
        // By UID too.
        let by_uid = "999:131072:7208960\n";
        assert_eq!(
            NodeRange::from_host(passwd, by_uid, by_uid).unwrap().first,
            131072
        );
        let err = |s: &str, g: &str| NodeRange::from_host(passwd, s, g).unwrap_err();
        assert_eq!(
            err(sub, "kubelet:131072:7208960\n"),
            "different UID and GID mappings for user \"kubelet\""
        );
        assert_eq!(
            err("kubelet:65537:7208960\n", "kubelet:65537:7208960\n"),
            "kubelet user assigned ID 65537 is not a multiple of 65536"
        );
        assert_eq!(
            err("kubelet:0:7208960\n", "kubelet:0:7208960\n"),
            "kubelet user assigned ID 0 must be greater or equal to 65536"
        );
        assert_eq!(
            err("kubelet:65536:655360\n", "kubelet:65536:655360\n"),
            "kubelet user assigned IDs are not enough to support 110 pods"
        );
        assert_eq!(err("", ""), "no subordinate IDs for user \"kubelet\"");
    }

    #[test]
    fn a_pod_gets_a_free_block_scanning_from_the_seed() {
        let r = NodeRange {
            first: 65536,
            len: 3 * 65536,
        };
        let mut used = BTreeSet::new();
        assert_eq!(r.pick(&used, 1), Some(131072));
        used.insert(131072);
        assert_eq!(r.pick(&used, 1), Some(196608));
        used.insert(196608);
        // Wraps around to the first block.
        assert_eq!(r.pick(&used, 1), Some(65536));
        used.insert(65536);
        assert_eq!(r.pick(&used, 7), None);
        // The default range never hands out IDs below 65536 or past the last one.
        let d = NodeRange::DEFAULT;
        for seed in [0, 1, u64::MAX, 65535] {
            let id = d.pick(&BTreeSet::new(), seed).unwrap();
            assert!(id >= 65536 && id % 65536 == 0);
            assert!(u64::from(id) + 65536 <= 1 << 32);
        }
    }

    #[test]
    fn the_record_reads_back_as_the_kubelet_writes_it() {
        let ns = PodUserNamespace::block(196608);
        let text = serde_json::to_string(&ns).unwrap();
        assert_eq!(
            text,
            r#"{"uidMappings":[{"hostId":196608,"containerId":0,"length":65536}],"gidMappings":[{"hostId":196608,"containerId":0,"length":65536}]}"#
        );
        assert_eq!(PodUserNamespace::parse(&text).unwrap(), ns);
        assert_eq!(ns.first(), 196608);
        let bad = text.replacen("\"containerId\":0", "\"containerId\":1", 2);
        assert_eq!(
            PodUserNamespace::parse(&bad).unwrap_err(),
            "invalid user namespace configuration: UID 0 must be mapped"
        );
        let uneven = text.replacen("196608", "262144", 1);
        assert!(
            PodUserNamespace::parse(&uneven)
                .unwrap_err()
                .contains("should be identical")
        );
    }
}
