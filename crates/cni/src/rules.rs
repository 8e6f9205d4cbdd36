//! The network-wide firewall rules of peapod's default network, made once per boot: one
//! rule that masquerades what leaves the pod subnet for another interface, and three that
//! let pods' traffic through a host whose `FORWARD` policy drops (out of the bridge, replies
//! into it, and host-port connections the portmap plugin forwards into it). They stand in
//! for the bridge plugin's `ipMasq` and for the firewall plugin, which made a chain and
//! rules per pod: a dozen iptables runs when a pod started and as many when it went. Like
//! the bridge itself, the rules outlive the pods; every one carries the comment
//! [`comment`] names, which is how they are found and removed.

use std::path::Path;
use std::time::Duration;

use crate::{Cni, DefaultNetwork, Error, Result};

/// One iptables rule: table, chain, whether it goes first in the chain (else last), and
/// its matches and target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `nat` or `filter`.
    pub table: &'static str,
    /// `POSTROUTING` or `FORWARD`.
    pub chain: &'static str,
    /// Inserted at the top of the chain, ahead of rules that would drop the traffic.
    pub first: bool,
    /// Matches and target, as iptables arguments.
    pub spec: Vec<String>,
}

/// The comment on every rule of network `name`.
pub fn comment(name: &str) -> String {
    format!("peapod network {name}")
}

/// Whether `subnet` (`a.b.c.d/n` or an IPv6 prefix) is IPv6.
fn is_v6(subnet: &str) -> bool {
    subnet.contains(':')
}

/// The program that manages rules for `subnet`'s address family.
pub fn program(subnet: &str) -> &'static str {
    if is_v6(subnet) {
        "ip6tables"
    } else {
        "iptables"
    }
}

/// The rules network `net` needs.
pub fn rules(net: &DefaultNetwork) -> Vec<Rule> {
    let multicast = if is_v6(&net.subnet) {
        "ff00::/8"
    } else {
        "224.0.0.0/4"
    };
    let tagged = |spec: &[&str], target: &str| -> Vec<String> {
        spec.iter()
            .map(|s| s.to_string())
            .chain(["-m", "comment", "--comment"].map(String::from))
            .chain([comment(&net.name), "-j".into(), target.into()])
            .collect()
    };
    let bridge = net.bridge.as_str();
    vec![
        Rule {
            table: "nat",
            chain: "POSTROUTING",
            first: false,
            spec: tagged(
                &["-s", &net.subnet, "!", "-d", multicast, "!", "-o", bridge],
                "MASQUERADE",
            ),
        },
        Rule {
            table: "filter",
            chain: "FORWARD",
            first: true,
            spec: tagged(&["-i", bridge], "ACCEPT"),
        },
        Rule {
            table: "filter",
            chain: "FORWARD",
            first: true,
            spec: tagged(
                &[
                    "-o",
                    bridge,
                    "-m",
                    "conntrack",
                    "--ctstate",
                    "RELATED,ESTABLISHED,DNAT",
                ],
                "ACCEPT",
            ),
        },
    ]
}

/// What the marker file holds once `net`'s rules are made during boot `boot_id`.
fn marker_text(net: &DefaultNetwork, boot_id: &str) -> String {
    let mut text = format!("{}\n", boot_id.trim());
    for r in rules(net) {
        text.push_str(&format!("{} {} {}\n", r.table, r.chain, r.spec.join(" ")));
    }
    text
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default()
}

/// Finds `name` in `PATH`, then in the usual system directories (a supervisor may run with
/// a short `PATH`).
fn find_program(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<_> = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(Into::into))
        .collect();
    crate::find_plugin(name, &dirs)
}

impl Cni {
    /// Makes `net`'s rules ([`rules`]) that are missing, unless `marker` records that they
    /// were made since the host booted (rules do not survive a reboot; the marker may).
    /// Concurrent callers, in any process, take turns on a lock beside the marker.
    pub async fn ensure_rules(&self, net: &DefaultNetwork, marker: &Path) -> Result<()> {
        let want = marker_text(net, &boot_id());
        if std::fs::read_to_string(marker).is_ok_and(|m| m == want) {
            return Ok(());
        }
        let io = |context| {
            move |source| Error::Io {
                context,
                path: marker.to_path_buf(),
                source,
            }
        };
        if let Some(dir) = marker.parent() {
            std::fs::create_dir_all(dir).map_err(io("creating the directory of"))?;
        }
        let lock_path = marker.with_extension("lock");
        let file = std::fs::File::create(&lock_path).map_err(io("creating the lock of"))?;
        let mut file = Some(file);
        let _lock = loop {
            match nix::fcntl::Flock::lock(
                file.take().expect("the lock file is kept until locked"),
                nix::fcntl::FlockArg::LockExclusiveNonblock,
            ) {
                Ok(l) => break l,
                Err((f, _)) => {
                    file = Some(f);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        };
        if std::fs::read_to_string(marker).is_ok_and(|m| m == want) {
            return Ok(());
        }
        let name = program(&net.subnet);
        let bin = find_program(name).ok_or_else(|| Error::Rules {
            network: net.name.clone(),
            msg: format!(
                "{name} not found in PATH: the network masquerades pods' traffic with it \
                 (install the iptables package)"
            ),
        })?;
        for r in rules(net) {
            let mut check = vec!["-w", "-t", r.table, "-C", r.chain];
            check.extend(r.spec.iter().map(String::as_str));
            if self.run_program(&bin, &check).await?.status.success() {
                continue;
            }
            let mut add = vec!["-w", "-t", r.table];
            if r.first {
                add.extend(["-I", r.chain, "1"]);
            } else {
                add.extend(["-A", r.chain]);
            }
            add.extend(r.spec.iter().map(String::as_str));
            let out = self.run_program(&bin, &add).await?;
            if !out.status.success() {
                return Err(Error::Rules {
                    network: net.name.clone(),
                    msg: format!(
                        "{name} {}: {}",
                        add.join(" "),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                });
            }
        }
        crate::config::write_text(marker, &want).map_err(io("writing"))?;
        Ok(())
    }

    async fn run_program(&self, bin: &Path, args: &[&str]) -> Result<std::process::Output> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        self.exec
            .exec(bin, &args, &[], Vec::new())
            .await
            .map_err(|source| Error::Io {
                context: "running",
                path: bin.to_path_buf(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(subnet: &str) -> DefaultNetwork {
        DefaultNetwork {
            name: "peapod".into(),
            bridge: "peapod0".into(),
            subnet: subnet.into(),
            ipam_dir: "/x".into(),
        }
    }

    #[test]
    fn masquerade_what_leaves_the_subnet_by_another_interface() {
        let r = &rules(&net("10.85.0.0/16"))[0];
        assert_eq!((r.table, r.chain, r.first), ("nat", "POSTROUTING", false));
        assert_eq!(
            r.spec.join(" "),
            "-s 10.85.0.0/16 ! -d 224.0.0.0/4 ! -o peapod0 -m comment --comment \
             peapod network peapod -j MASQUERADE"
        );
    }

    #[test]
    fn forward_rules_go_first_and_name_the_bridge() {
        let all = rules(&net("10.85.0.0/16"));
        let fwd: Vec<String> = all[1..].iter().map(|r| r.spec.join(" ")).collect();
        assert!(all[1..].iter().all(|r| r.table == "filter" && r.first));
        assert_eq!(
            fwd,
            [
                "-i peapod0 -m comment --comment peapod network peapod -j ACCEPT",
                "-o peapod0 -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -m comment \
                 --comment peapod network peapod -j ACCEPT",
            ]
        );
    }

    #[test]
    fn ipv6_subnets_use_ip6tables_and_the_ipv6_multicast_prefix() {
        assert_eq!(program("fd00:85::/64"), "ip6tables");
        assert_eq!(program("10.85.0.0/16"), "iptables");
        let r = &rules(&net("fd00:85::/64"))[0];
        assert!(r.spec.join(" ").contains("! -d ff00::/8"), "{r:?}");
    }

    #[test]
    fn the_marker_changes_with_the_boot_and_the_rules() {
        let a = marker_text(&net("10.85.0.0/16"), "boot-1\n");
        assert!(
            a.starts_with("boot-1\nnat POSTROUTING -s 10.85.0.0/16"),
            "{a}"
        );
        assert_ne!(a, marker_text(&net("10.85.0.0/16"), "boot-2"));
        assert_ne!(a, marker_text(&net("10.86.0.0/16"), "boot-1"));
    }
}
