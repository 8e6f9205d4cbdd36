//! From a pod to its sandbox: the runtime's sandbox config (`generatePodSandboxConfig`),
//! DNS by `dnsPolicy` (`GetPodDNS`), the host name and the managed `/etc/hosts`. Pure: the
//! host's own resolv.conf and hosts files are given as text.

use std::path::Path;

use peapod_runtime::{
    DnsConfig, NamespaceMode, NamespaceOptions, POD_UID_LABEL, PortMapping, SandboxConfig,
    SandboxMetadata, UserNamespace,
};
use peapod_types::pod::{DefaultedPod, DnsPolicy};

/// What the sandbox config is made from besides the pod.
pub struct SandboxFacts<'a> {
    /// Cluster DNS servers (the host's resolv.conf is used when empty).
    pub cluster_dns: &'a [String],
    /// The cluster domain.
    pub cluster_domain: &'a str,
    /// The host's resolv.conf.
    pub host_resolv_conf: &'a str,
    /// Where container logs go.
    pub log_dir: &'a Path,
    /// The pod's parent cgroup.
    pub cgroup_parent: &'a str,
    /// The most processes the pod may have (the kubelet's `podPidsLimit`).
    pub pod_pids_limit: Option<i64>,
    /// The IDs the pod's user namespace maps (`hostUsers: false`), as allocated to it.
    pub user_namespace: Option<&'a UserNamespace>,
    /// The hugepage sizes the host has, in bytes.
    pub hugepage_sizes: &'a [u64],
}

/// The sandbox config of `pod`'s sandbox number `attempt`.
pub fn sandbox_config(pod: &DefaultedPod, f: &SandboxFacts<'_>, attempt: u32) -> SandboxConfig {
    let host_net = pod.host_network();
    let node = |b: bool| {
        if b {
            NamespaceMode::Node
        } else {
            NamespaceMode::Pod
        }
    };
    SandboxConfig {
        metadata: SandboxMetadata {
            name: pod.name().to_string(),
            uid: pod.uid().to_string(),
            namespace: pod.namespace().to_string(),
            attempt,
        },
        hostname: pod_hostname(pod),
        log_directory: f.log_dir.to_path_buf(),
        dns: dns_config(pod, f.cluster_dns, f.cluster_domain, f.host_resolv_conf),
        port_mappings: pod
            .containers()
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter(|p| !host_net && p.host_port.is_some_and(|h| h > 0))
            .map(|p| PortMapping {
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                container_port: p.container_port,
                host_port: p.host_port.unwrap_or_default(),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
            .collect(),
        labels: [
            ("io.kubernetes.pod.name", pod.name()),
            ("io.kubernetes.pod.namespace", pod.namespace()),
            (POD_UID_LABEL, pod.uid()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        annotations: pod.pod().metadata.annotations.clone().unwrap_or_default(),
        cgroup_parent: f.cgroup_parent.to_string(),
        pod_resources: Some({
            let mut r = pod_resources(pod, f.pod_pids_limit);
            r.hugepage_limits =
                peapod_types::cgroups::pod_hugepage_limits(pod.spec(), f.hugepage_sizes)
                    .into_iter()
                    .map(|(page_size, limit)| peapod_runtime::HugepageLimit { page_size, limit })
                    .collect();
            r
        }),
        namespaces: NamespaceOptions {
            network: node(host_net),
            pid: if pod.host_pid() {
                NamespaceMode::Node
            } else if pod.share_process_namespace() {
                NamespaceMode::Pod
            } else {
                NamespaceMode::Container
            },
            ipc: node(pod.host_ipc()),
        },
        sysctls: pod
            .spec()
            .security_context
            .as_ref()
            .and_then(|s| s.sysctls.as_ref())
            .into_iter()
            .flatten()
            .map(|s| (s.name.replace('/', "."), s.value.clone()))
            .collect(),
        // As the kubelet does: privileged when any of its containers is.
        privileged: pod.all_containers().any(|(_, c)| {
            c.security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false)
        }),
        user_namespace: f.user_namespace.cloned(),
    }
}

/// DNS settings by `dnsPolicy`, as the kubelet's `GetPodDNS` computes them.
pub fn dns_config(
    pod: &DefaultedPod,
    cluster_dns: &[String],
    cluster_domain: &str,
    host_resolv_conf: &str,
) -> DnsConfig {
    let policy = pod.dns_policy();
    let mut dns = DnsConfig::default();
    let cluster = !cluster_dns.is_empty()
        && (policy == DnsPolicy::ClusterFirstWithHostNet
            || (policy == DnsPolicy::ClusterFirst && !pod.host_network()));
    if cluster {
        let ns = pod.namespace();
        let d = cluster_domain;
        dns.servers = cluster_dns.to_vec();
        dns.searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.to_string()];
        dns.options = vec!["ndots:5".into()];
    } else if policy != DnsPolicy::None {
        // Default (and ClusterFirst without cluster DNS): the host's settings.
        for line in host_resolv_conf.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => dns.servers.extend(words.next().map(str::to_string)),
                Some("search") => dns.searches = words.map(str::to_string).collect(),
                Some("options") => dns.options = words.map(str::to_string).collect(),
                _ => {}
            }
        }
    }
    if let Some(c) = &pod.spec().dns_config {
        for s in c.nameservers.iter().flatten() {
            if !dns.servers.contains(s) {
                dns.servers.push(s.clone());
            }
        }
        for s in c.searches.iter().flatten() {
            if !dns.searches.contains(s) {
                dns.searches.push(s.clone());
            }
        }
        for o in c.options.iter().flatten() {
            let opt = match &o.value {
                Some(v) => format!("{}:{v}", o.name.clone().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            let key = opt.split(':').next().unwrap_or_default().to_string();
            dns.options
                .retain(|x| x.split(':').next() != Some(key.as_str()));
            dns.options.push(opt);
        }
    }
    dns
}

/// The pod's host name: `spec.hostname`, else its name (truncated to 63 characters).
pub fn pod_hostname(pod: &DefaultedPod) -> String {
    let h = pod.spec().hostname.clone().filter(|h| !h.is_empty());
    let mut h = h.unwrap_or_else(|| pod.name().to_string());
    h.truncate(63);
    h.trim_end_matches(['-', '.']).to_string()
}

/// The kubelet's managed `/etc/hosts` for the pod; `host_hosts` is the node's own file,
/// which a pod on the host network gets.
pub fn hosts_file(
    pod: &DefaultedPod,
    pod_ip: &str,
    cluster_domain: &str,
    host_hosts: &str,
) -> String {
    let spec = pod.spec();
    let mut s = String::new();
    if pod.host_network() {
        s.push_str("# Kubernetes-managed hosts file (host network).\n");
        s.push_str(host_hosts);
    } else {
        s.push_str("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        s.push_str("fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n");
        if !pod_ip.is_empty() {
            let hostname = pod_hostname(pod);
            match spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => {
                    let ns = pod.namespace();
                    s.push_str(&format!(
                        "{pod_ip}\t{hostname}.{sub}.{ns}.svc.{cluster_domain}\t{hostname}\n"
                    ));
                }
                None => s.push_str(&format!("{pod_ip}\t{hostname}\n")),
            }
        }
    }
    if let Some(aliases) = spec.host_aliases.as_ref().filter(|a| !a.is_empty()) {
        s.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            s.push_str(&format!(
                "{}\t{}\n",
                a.ip,
                a.hostnames.clone().unwrap_or_default().join("\t")
            ));
        }
    }
    s
}

/// The pod cgroup's limits (`ResourceConfigForPod`), with `pids` as the pids limit.
pub fn pod_resources(pod: &DefaultedPod, pids: Option<i64>) -> peapod_runtime::Resources {
    let c = peapod_types::cgroups::pod_cgroup(pod.spec());
    peapod_runtime::Resources {
        memory_limit_in_bytes: c.memory,
        cpu_quota: c.cpu_quota,
        cpu_shares: Some(c.cpu_shares),
        pids_limit: pids,
        hugepage_limits: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::pod_yaml;

    const HOST: &str = "nameserver 192.0.2.53\nsearch corp.example\noptions rotate\n";

    fn facts<'a>(dns: &'a [String]) -> SandboxFacts<'a> {
        SandboxFacts {
            cluster_dns: dns,
            cluster_domain: "cluster.local",
            host_resolv_conf: HOST,
            log_dir: Path::new("/logs"),
            cgroup_parent: "/peapod/podu1",
            pod_pids_limit: Some(1024),
            user_namespace: None,
            hugepage_sizes: &[],
        }
    }

    #[test]
    fn sandbox_config_carries_identity_ports_and_namespaces() {
        let p = pod_yaml(
            "  shareProcessNamespace: true\n  containers:\n  - {name: a, image: b, ports: [{containerPort: 80, hostPort: 8080}, {containerPort: 81}]}\n",
        );
        let c = sandbox_config(&p, &facts(&[]), 2);
        assert_eq!(c.metadata.attempt, 2);
        assert_eq!(
            (c.metadata.name.as_str(), c.metadata.uid.as_str()),
            ("web", "u1")
        );
        assert_eq!(c.labels[POD_UID_LABEL], "u1");
        assert_eq!(c.port_mappings.len(), 1);
        assert_eq!(
            (
                c.port_mappings[0].host_port,
                c.port_mappings[0].protocol.as_str()
            ),
            (8080, "TCP")
        );
        assert_eq!(c.namespaces.pid, NamespaceMode::Pod);
        assert_eq!(c.namespaces.network, NamespaceMode::Pod);
        assert_eq!(c.cgroup_parent, "/peapod/podu1");
        assert_eq!(c.hostname, "web");
    }

    #[test]
    fn host_network_pods_publish_no_ports() {
        let p = pod_yaml(
            "  hostNetwork: true\n  hostIPC: true\n  containers:\n  - {name: a, image: b, ports: [{containerPort: 80, hostPort: 80}]}\n",
        );
        let c = sandbox_config(&p, &facts(&[]), 0);
        assert!(c.port_mappings.is_empty());
        assert_eq!(c.namespaces.network, NamespaceMode::Node);
        assert_eq!(c.namespaces.ipc, NamespaceMode::Node);
        assert_eq!(c.namespaces.pid, NamespaceMode::Container);
    }

    #[test]
    fn dns_by_policy() {
        let cluster = vec!["10.96.0.10".to_string()];
        let p = pod_yaml("  containers: [{name: a, image: b}]\n");
        let d = dns_config(&p, &cluster, "cluster.local", HOST);
        assert_eq!(d.servers, cluster);
        assert_eq!(
            d.searches,
            [
                "default.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
        assert_eq!(d.options, ["ndots:5"]);
        let d = dns_config(&p, &[], "cluster.local", HOST);
        assert_eq!(d.servers, ["192.0.2.53"], "no cluster DNS: the host's");
        assert_eq!(d.searches, ["corp.example"]);
        let host = pod_yaml("  hostNetwork: true\n  containers: [{name: a, image: b}]\n");
        assert_eq!(
            dns_config(&host, &cluster, "c", HOST).servers,
            ["192.0.2.53"]
        );
        let with = pod_yaml(
            "  hostNetwork: true\n  dnsPolicy: ClusterFirstWithHostNet\n  containers: [{name: a, image: b}]\n",
        );
        assert_eq!(dns_config(&with, &cluster, "c", HOST).servers, cluster);
        let none = pod_yaml(
            "  dnsPolicy: None\n  dnsConfig: {nameservers: [1.1.1.1], searches: [a.example], options: [{name: ndots, value: '2'}, {name: edns0}]}\n  containers: [{name: a, image: b}]\n",
        );
        let d = dns_config(&none, &cluster, "c", HOST);
        assert_eq!(d.servers, ["1.1.1.1"]);
        assert_eq!(d.searches, ["a.example"]);
        assert_eq!(d.options, ["ndots:2", "edns0"]);
    }

    #[test]
    fn dns_config_options_replace_the_policys() {
        let p = pod_yaml(
            "  dnsConfig: {options: [{name: ndots, value: '1'}]}\n  containers: [{name: a, image: b}]\n",
        );
        let d = dns_config(&p, &["10.0.0.10".to_string()], "cl", HOST);
        assert_eq!(d.options, ["ndots:1"]);
    }

    #[test]
    fn hosts_file_names_the_pod_and_its_aliases() {
        let p = pod_yaml(
            "  hostname: h\n  subdomain: sub\n  hostAliases: [{ip: 10.1.1.1, hostnames: [x, z]}]\n  containers: [{name: a, image: b}]\n",
        );
        let h = hosts_file(&p, "10.0.0.2", "cluster.local", "");
        assert!(
            h.contains("10.0.0.2\th.sub.default.svc.cluster.local\th\n"),
            "{h}"
        );
        assert!(
            h.contains("# Entries added by HostAliases.\n10.1.1.1\tx\tz\n"),
            "{h}"
        );
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        let host = pod_yaml("  hostNetwork: true\n  containers: [{name: a, image: b}]\n");
        let h = hosts_file(&host, "192.0.2.1", "c", "127.0.0.1 node\n");
        assert_eq!(
            h,
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 node\n"
        );
        let no_ip = hosts_file(
            &pod_yaml("  containers: [{name: a, image: b}]\n"),
            "",
            "c",
            "",
        );
        assert!(!no_ip.contains("web"));
    }

    #[test]
    fn host_names_are_cut_to_63_characters() {
        let long = format!(
            "  hostname: {}-x\n  containers: [{{name: a, image: b}}]\n",
            "a".repeat(62)
        );
        assert_eq!(pod_hostname(&pod_yaml(&long)), "a".repeat(62));
    }
}
