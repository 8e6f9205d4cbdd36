//! CNI results (versions 0.3.0 to 1.x share this shape for what peapod reads).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An interface a plugin created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// MAC address.
    #[serde(default)]
    pub mac: String,
    /// Namespace path, empty for the host's.
    #[serde(default)]
    pub sandbox: String,
}

/// An address assigned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address with prefix, e.g. `10.85.0.2/16`.
    pub address: String,
    /// Gateway.
    #[serde(default)]
    pub gateway: Option<String>,
    /// Index into `interfaces`.
    #[serde(default)]
    pub interface: Option<usize>,
}

impl IpConfig {
    /// The address without its prefix length.
    pub fn ip(&self) -> &str {
        self.address.split('/').next().unwrap_or_default()
    }
}

/// A route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination.
    pub dst: String,
    /// Gateway.
    #[serde(default)]
    pub gw: Option<String>,
}

/// The result of an ADD chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    /// Result version.
    #[serde(default)]
    pub cni_version: String,
    /// Interfaces.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Addresses.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// Routes.
    #[serde(default)]
    pub routes: Vec<Route>,
}

impl CniResult {
    /// Reads what peapod needs from a result object; unknown fields are ignored.
    pub fn from_value(v: &Value) -> CniResult {
        serde_json::from_value(v.clone()).unwrap_or_default()
    }

    /// The pod's addresses: those on the container-side interface (one with a sandbox)
    /// when interfaces are given, IPv4 first.
    pub fn pod_ips(&self, ifname: &str) -> Vec<String> {
        let mut ips: Vec<String> = self
            .ips
            .iter()
            .filter(
                |ip| match ip.interface.and_then(|i| self.interfaces.get(i)) {
                    Some(iface) => !iface.sandbox.is_empty() || iface.name == ifname,
                    None => true,
                },
            )
            .map(|ip| ip.ip().to_string())
            .collect();
        ips.sort_by_key(|ip| ip.contains(':'));
        ips.dedup();
        ips
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_ips_from_the_container_interface() {
        let r = CniResult::from_value(&serde_json::json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "br0", "mac": "aa"},
                {"name": "veth1", "mac": "bb"},
                {"name": "eth0", "mac": "cc", "sandbox": "/run/netns/x"}
            ],
            "ips": [
                {"address": "fd00::5/64", "interface": 2},
                {"address": "10.85.0.5/16", "gateway": "10.85.0.1", "interface": 2},
                {"address": "10.85.0.1/16", "interface": 0}
            ]
        }));
        assert_eq!(r.pod_ips("eth0"), ["10.85.0.5", "fd00::5"]);
    }
}
