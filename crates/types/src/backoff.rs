//! The kubelet's back-off (`flowcontrol.Backoff`): a delay per key that starts at the base,
//! doubles on every further failure up to the maximum, and is forgotten once the key has
//! been quiet for the reset time. One type serves the crash-loop back-off (keyed by
//! container) and the image-pull back-off (keyed by image).

use std::collections::HashMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// Back-off settings; the defaults are the kubelet's: 10 s doubling to 300 s, reset after
/// 600 s (twice the maximum).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Backoff {
    /// First delay, in seconds.
    pub base_seconds: f64,
    /// Largest delay, in seconds.
    pub max_seconds: f64,
    /// A key quiet for this long starts over from the base, in seconds.
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
    /// The delay before retry number `n` of a run of failures (`n` = 1 for the first):
    /// base × 2^(n-1), capped at the maximum.
    pub fn delay(&self, n: u32) -> Duration {
        let exp = n.saturating_sub(1).min(30) as i32;
        let secs = (self.base_seconds * 2f64.powi(exp)).min(self.max_seconds);
        Duration::from_secs_f64(secs.max(0.0))
    }

    /// The first delay.
    pub fn base(&self) -> Duration {
        self.delay(1)
    }

    /// The largest delay.
    pub fn max(&self) -> Duration {
        Duration::from_secs_f64(self.max_seconds.max(0.0))
    }

    /// How long a key must stay quiet to start over.
    pub fn reset_after(&self) -> Duration {
        Duration::from_secs_f64(self.reset_seconds.max(0.0))
    }
}

/// One key's state.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    delay: Duration,
    last_update: Timestamp,
}

/// Back-off state per key, against an explicit clock (every method takes `now`).
#[derive(Debug, Clone, Default)]
pub struct BackoffTable {
    settings: Backoff,
    entries: HashMap<String, Entry>,
}

fn since(later: Timestamp, earlier: Timestamp) -> SignedDuration {
    later.duration_since(earlier)
}

fn longer_than(d: SignedDuration, limit: Duration) -> bool {
    d > SignedDuration::try_from(limit).unwrap_or(SignedDuration::MAX)
}

impl BackoffTable {
    /// An empty table with these settings.
    pub fn new(settings: Backoff) -> BackoffTable {
        BackoffTable {
            settings,
            entries: HashMap::new(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> Backoff {
        self.settings
    }

    /// Whether an entry last updated at `last_update` is forgotten by an event at `at`.
    fn expired(&self, e: &Entry, at: Timestamp) -> bool {
        longer_than(since(at, e.last_update), self.settings.reset_after())
    }

    /// Records a failure of `key` that happened at `event_time` (`Next`): the delay starts
    /// at the base, or doubles (capped) if the previous one is still remembered.
    pub fn next(&mut self, key: &str, event_time: Timestamp, now: Timestamp) {
        let delay = match self.entries.get(key) {
            Some(e) if !self.expired(e, event_time) => (e.delay * 2).min(self.settings.max()),
            _ => self.settings.base(),
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                delay,
                last_update: now,
            },
        );
    }

    /// The current delay of `key`, if it has one.
    pub fn get(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.delay)
    }

    /// Whether `key` must still wait after an event at `event_time` (`IsInBackOffSince`):
    /// less than its delay has passed since then.
    pub fn in_backoff_since(&self, key: &str, event_time: Timestamp, now: Timestamp) -> bool {
        match self.entries.get(key) {
            Some(e) if !self.expired(e, event_time) => {
                !longer_than_or_eq(since(now, event_time), e.delay)
            }
            _ => false,
        }
    }

    /// Whether `key` must still wait, counted from its last update
    /// (`IsInBackOffSinceUpdate`, used for image pulls).
    pub fn in_backoff_since_update(&self, key: &str, now: Timestamp) -> bool {
        match self.entries.get(key) {
            Some(e) if !self.expired(e, now) => {
                !longer_than_or_eq(since(now, e.last_update), e.delay)
            }
            _ => false,
        }
    }

    /// When `key`'s wait after `event_time` ends, if it has one.
    pub fn wait_ends(&self, key: &str, event_time: Timestamp) -> Option<Timestamp> {
        let e = self.entries.get(key)?;
        if self.expired(e, event_time) {
            return None;
        }
        event_time.checked_add(e.delay).ok()
    }

    /// When `key`'s wait counted from its last update ends, if it has one.
    pub fn update_wait_ends(&self, key: &str) -> Option<Timestamp> {
        let e = self.entries.get(key)?;
        e.last_update.checked_add(e.delay).ok()
    }

    /// Forgets `key`.
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Forgets every key quiet for longer than the reset time (`GC`).
    pub fn gc(&mut self, now: Timestamp) {
        let reset = self.settings.reset_after();
        self.entries
            .retain(|_, e| !longer_than(since(now, e.last_update), reset));
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn longer_than_or_eq(d: SignedDuration, limit: Duration) -> bool {
    d >= SignedDuration::try_from(limit).unwrap_or(SignedDuration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn table() -> BackoffTable {
        BackoffTable::new(Backoff::default())
    }

    #[test]
    fn doubles_and_caps() {
        let b = Backoff::default();
        let secs: Vec<u64> = (1..=7).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn next_starts_at_the_base_then_doubles_to_the_cap() {
        let mut b = table();
        let mut seen = Vec::new();
        for i in 0..8 {
            b.next("c", t(i), t(i));
            seen.push(b.get("c").unwrap().as_secs());
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn in_backoff_since_counts_from_the_event() {
        let mut b = table();
        assert!(
            !b.in_backoff_since("c", t(0), t(0)),
            "unknown keys never wait"
        );
        b.next("c", t(0), t(0));
        assert!(b.in_backoff_since("c", t(0), t(9)));
        assert!(
            !b.in_backoff_since("c", t(0), t(10)),
            "exactly the delay has passed"
        );
        assert_eq!(b.wait_ends("c", t(0)), Some(t(10)));
        // A later exit is measured from its own time.
        assert!(b.in_backoff_since("c", t(30), t(35)));
    }

    #[test]
    fn a_key_quiet_for_the_reset_time_starts_over() {
        let mut b = table();
        b.next("c", t(0), t(0));
        b.next("c", t(1), t(1));
        assert_eq!(b.get("c"), Some(Duration::from_secs(20)));
        // The container ran for more than 600 s before failing again.
        assert!(!b.in_backoff_since("c", t(700), t(700)));
        assert_eq!(b.wait_ends("c", t(700)), None);
        b.next("c", t(700), t(700));
        assert_eq!(b.get("c"), Some(Duration::from_secs(10)));
        // Exactly the reset time is not yet longer than it.
        b.next("c", t(1300), t(1300));
        assert_eq!(b.get("c"), Some(Duration::from_secs(20)));
    }

    #[test]
    fn since_update_counts_from_the_last_failure() {
        let mut b = table();
        b.next("img", t(0), t(5));
        assert!(b.in_backoff_since_update("img", t(14)));
        assert!(!b.in_backoff_since_update("img", t(15)));
        assert_eq!(b.update_wait_ends("img"), Some(t(15)));
        assert!(!b.in_backoff_since_update("other", t(0)));
    }

    #[test]
    fn gc_and_reset_forget_keys() {
        let mut b = table();
        b.next("old", t(0), t(0));
        b.next("new", t(500), t(500));
        b.gc(t(601));
        assert_eq!(b.get("old"), None);
        assert!(b.get("new").is_some());
        b.reset("new");
        assert!(b.is_empty());
    }

    #[test]
    fn settings_from_the_config() {
        let b = Backoff {
            base_seconds: 0.2,
            max_seconds: 1.0,
            reset_seconds: 2.0,
        };
        let mut tb = BackoffTable::new(b);
        for i in 0..4 {
            tb.next("c", t(i), t(i));
        }
        assert_eq!(tb.get("c"), Some(Duration::from_secs(1)));
        assert_eq!(b.base(), Duration::from_millis(200));
        assert_eq!(b.reset_after(), Duration::from_secs(2));
    }
}
