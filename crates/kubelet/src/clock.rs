//! The controller's clock: one trait, so that every rule that depends on time can be run
//! against a clock a test moves.

use std::time::Duration;

use jiff::Timestamp;

/// Tells the time.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that follows Tokio's: with Tokio's time paused, it moves only when Tokio's does.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: Timestamp,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `base` now.
    pub fn starting_at(base: Timestamp) -> TokioClock {
        TokioClock {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.base
            .checked_add(self.start.elapsed())
            .unwrap_or(self.base)
    }
}

/// The Tokio deadline at which `clock` will read `at`.
pub fn deadline(clock: &dyn Clock, at: Timestamp) -> tokio::time::Instant {
    tokio::time::Instant::now() + until(clock.now(), at)
}

/// How long from `now` to `at` (zero when `at` has passed).
pub fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// `at` plus `d`.
pub fn after(at: Timestamp, d: Duration) -> Timestamp {
    at.checked_add(d).unwrap_or(at)
}

/// A runtime timestamp (RFC 3339), when there is one that parses.
pub fn parse(ts: Option<&str>) -> Option<Timestamp> {
    ts.and_then(|s| s.parse::<Timestamp>().ok())
}

/// A duration the way Go prints one (`10s`, `1m20s`, `5m0s`, `500ms`).
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    let (m, s) = ((secs / 60.0).floor() as u64, secs % 60.0);
    let s = if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    };
    if m == 0 {
        format!("{s}s")
    } else {
        format!("{m}m{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn until_never_goes_negative() {
        let t = Timestamp::from_second(100).unwrap();
        assert_eq!(
            until(t, after(t, Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(until(after(t, Duration::from_secs(3)), t), Duration::ZERO);
        assert_eq!(parse(Some("garbage")), None);
        assert_eq!(parse(Some("1970-01-01T00:01:40Z")), Some(t));
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_moves_with_paused_time() {
        let base = Timestamp::from_second(1_000).unwrap();
        let c = TokioClock::starting_at(base);
        assert_eq!(c.now(), base);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(c.now(), after(base, Duration::from_secs(5)));
    }
}
