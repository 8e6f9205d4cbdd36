//! The kubelet's crash-loop back-off: 10 s doubling to 300 s, forgotten after a container
//! has run 10 minutes cleanly (`pkg/kubelet/kubelet.go`, `flowcontrol.Backoff`).

use std::time::Duration;

/// Back-off settings; the defaults are the kubelet's.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Backoff {
    /// First delay, in seconds.
    pub base_seconds: f64,
    /// Largest delay, in seconds.
    pub max_seconds: f64,
    /// A container that runs this long without failing resets its back-off, in seconds.
    pub reset_seconds: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_seconds: 10.0,
            max_seconds: 300.0,
            reset_seconds: 600.0,
        }
    }
}

impl Backoff {
    /// The delay before restart number `n` of a crash loop (`n` = 1 for the first restart
    /// after a failure): base × 2^(n-1), capped.
    pub fn delay(&self, n: u32) -> Duration {
        let exp = n.saturating_sub(1).min(30) as i32;
        let secs = (self.base_seconds * 2f64.powi(exp)).min(self.max_seconds);
        Duration::from_secs_f64(secs.max(0.0))
    }

    /// How long a container must run to reset its back-off.
    pub fn reset_after(&self) -> Duration {
        Duration::from_secs_f64(self.reset_seconds.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn doubles_and_caps() {
        let b = super::Backoff::default();
        let secs: Vec<u64> = (1..=7).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 300, 300]);
    }
}
