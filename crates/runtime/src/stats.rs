//! What containers and sandboxes use (CRI `ContainerStats`, `PodSandboxStats` and their
//! lists): CPU and memory from their cgroups, the writable layer's size on disk, and the
//! pod's network traffic from its namespace.

use std::collections::BTreeMap;
use std::path::Path;

use peapod_oci::cgroup;
use serde::{Deserialize, Serialize};

use crate::types::*;
use crate::{Result, Runtime};

/// CPU use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStats {
    /// CPU time used since it started, in nanoseconds.
    pub usage_core_nano_seconds: u64,
    /// CPU time per second since the previous sample (nanocores); `None` on the first.
    pub usage_nano_cores: Option<u64>,
}

pub use cgroup::MemoryUsage as MemoryStats;

/// One container's use (CRI `ContainerStats`).
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStats {
    /// Container ID.
    pub id: String,
    /// Its sandbox.
    pub sandbox_id: String,
    /// Name and attempt.
    pub metadata: ContainerMetadata,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it was sampled, in nanoseconds since the epoch.
    pub timestamp_ns: i64,
    /// CPU, when its cgroup exists.
    pub cpu: Option<CpuStats>,
    /// Memory, when its cgroup exists.
    pub memory: Option<MemoryStats>,
    /// Its writable layer on disk.
    pub writable_layer: Option<FsUsage>,
}

/// Traffic on one network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceStats {
    /// Interface name.
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Send errors.
    pub tx_errors: u64,
}

/// One sandbox's use (CRI `PodSandboxStats`).
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxStats {
    /// Sandbox ID.
    pub id: String,
    /// Its metadata.
    pub metadata: SandboxMetadata,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it was sampled, in nanoseconds since the epoch.
    pub timestamp_ns: i64,
    /// CPU of everything in it.
    pub cpu: Option<CpuStats>,
    /// Memory of everything in it.
    pub memory: Option<MemoryStats>,
    /// Its interfaces (not loopback); empty with the node's network.
    pub interfaces: Vec<InterfaceStats>,
    /// Processes in it.
    pub process_count: u64,
    /// Its containers.
    pub containers: Vec<ContainerStats>,
}

fn now_ns() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}

impl Runtime {
    /// CPU stats of `key` from `cpu_ns` sampled at `at`, with the rate since its previous
    /// sample.
    fn cpu(&self, key: &str, at: i64, cpu_ns: Option<u64>) -> Option<CpuStats> {
        let cpu_ns = cpu_ns?;
        let mut prev = self.cpu_samples.lock().unwrap();
        // Objects removed by another process leave their samples: keep the map bounded.
        if prev.len() > 4096 {
            prev.clear();
        }
        let rate = prev
            .insert(key.to_string(), (at, cpu_ns))
            .and_then(|(t, c)| nano_cores(t, c, at, cpu_ns));
        Some(CpuStats {
            usage_core_nano_seconds: cpu_ns,
            usage_nano_cores: rate,
        })
    }

    fn stats_of(&self, c: &ContainerStatus) -> ContainerStats {
        let at = now_ns();
        let u = cgroup::usage(&self.container_cgroup(&c.sandbox_id, &c.id));
        ContainerStats {
            id: c.id.clone(),
            sandbox_id: c.sandbox_id.clone(),
            metadata: c.metadata.clone(),
            labels: c.labels.clone(),
            annotations: c.annotations.clone(),
            timestamp_ns: at,
            cpu: self.cpu(&c.id, at, u.cpu_ns),
            memory: u.memory,
            writable_layer: Some(disk_usage(&self.container_storage(&c.id))),
        }
    }

    /// `ContainerStats`.
    pub fn container_stats(&self, id: &str) -> Result<ContainerStats> {
        Ok(self.stats_of(&self.status_of(id)?))
    }

    /// `ListContainerStats`: every container `filter` selects.
    pub fn list_container_stats(&self, filter: &ContainerFilter) -> Vec<ContainerStats> {
        self.list_containers_impl(filter)
            .iter()
            .map(|c| self.stats_of(c))
            .collect()
    }

    fn sandbox_stats_of(&self, s: &SandboxStatus) -> SandboxStats {
        let at = now_ns();
        let containers = self.list_container_stats(&ContainerFilter::sandbox(&s.id));
        let parent = self
            .sandbox_record(&s.id)
            .map(|r| r.config.cgroup_parent)
            .unwrap_or_default();
        // The pod's cgroup holds the infra and every container; without one, add them up.
        let (cpu_ns, memory, process_count) = if !parent.trim_matches('/').is_empty() {
            let u = cgroup::usage(&parent);
            (u.cpu_ns, u.memory, u.pids)
        } else {
            let infra = cgroup::usage(&self.container_cgroup(&s.id, &s.id));
            let mut cpu = infra.cpu_ns;
            let mut mem = infra.memory;
            let mut pids = infra.pids;
            for c in &containers {
                let u = cgroup::usage(&self.container_cgroup(&s.id, &c.id));
                cpu = add(cpu, u.cpu_ns);
                pids += u.pids;
                mem = match (mem, u.memory) {
                    (Some(a), Some(b)) => Some(MemoryStats {
                        usage: a.usage + b.usage,
                        working_set: a.working_set + b.working_set,
                        rss: a.rss + b.rss,
                        page_faults: a.page_faults + b.page_faults,
                        major_page_faults: a.major_page_faults + b.major_page_faults,
                        limit: None,
                    }),
                    (a, b) => a.or(b),
                };
            }
            (cpu, mem, pids)
        };
        let interfaces = if s.infra_pid > 0 && s.netns.is_some() {
            std::fs::read_to_string(format!("/proc/{}/net/dev", s.infra_pid))
                .map(|t| net_dev(&t))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        SandboxStats {
            id: s.id.clone(),
            metadata: s.metadata.clone(),
            labels: s.labels.clone(),
            annotations: s.annotations.clone(),
            timestamp_ns: at,
            cpu: self.cpu(&s.id, at, cpu_ns),
            memory,
            interfaces,
            process_count,
            containers,
        }
    }

    /// `PodSandboxStats`.
    pub fn pod_sandbox_stats(&self, id: &str) -> Result<SandboxStats> {
        let s = crate::cri::RuntimeService::pod_sandbox_status(self, id)?;
        Ok(self.sandbox_stats_of(&s))
    }

    /// `ListPodSandboxStats`: every sandbox `filter` selects.
    pub fn list_pod_sandbox_stats(&self, filter: &SandboxFilter) -> Vec<SandboxStats> {
        self.list_sandboxes(filter)
            .iter()
            .map(|s| self.sandbox_stats_of(s))
            .collect()
    }
}

fn add(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

/// CPU time per second of wall time between two samples, in nanocores.
fn nano_cores(t0: i64, cpu0: u64, t1: i64, cpu1: u64) -> Option<u64> {
    let dt = t1.checked_sub(t0).filter(|d| *d > 0)? as u128;
    let dc = cpu1.checked_sub(cpu0)? as u128;
    Some((dc * 1_000_000_000 / dt) as u64)
}

/// The interfaces of a `/proc/PID/net/dev` table, loopback left out.
fn net_dev(text: &str) -> Vec<InterfaceStats> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (name != "lo" && f.len() >= 11).then(|| InterfaceStats {
                name: name.to_string(),
                rx_bytes: f[0],
                rx_errors: f[2],
                tx_bytes: f[8],
                tx_errors: f[10],
            })
        })
        .collect()
}

/// What the files under `dir` take on disk.
pub(crate) fn disk_usage(dir: &Path) -> FsUsage {
    use std::os::unix::fs::MetadataExt;
    let (mut used_bytes, mut inodes_used) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            inodes_used += 1;
            if m.is_dir() {
                stack.push(e.path());
            } else {
                used_bytes += m.blocks() * 512;
            }
        }
    }
    FsUsage {
        mountpoint: dir.display().to_string(),
        used_bytes,
        inodes_used,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nano_cores_are_cpu_time_per_second() {
        // Half a CPU second over one second: half a core.
        assert_eq!(
            nano_cores(0, 0, 1_000_000_000, 500_000_000),
            Some(500_000_000)
        );
        assert_eq!(nano_cores(5, 10, 5, 20), None, "no time passed");
        assert_eq!(nano_cores(0, 20, 10, 10), None, "the counter went back");
    }

    #[test]
    fn interfaces_come_from_proc_net_dev_without_loopback() {
        let t = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:    2048      10    1    0    0     0          0         0     4096      20    2    0    0     0       0          0
";
        assert_eq!(
            net_dev(t),
            vec![InterfaceStats {
                name: "eth0".into(),
                rx_bytes: 2048,
                rx_errors: 1,
                tx_bytes: 4096,
                tx_errors: 2,
            }]
        );
    }
}
