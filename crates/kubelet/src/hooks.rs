//! Lifecycle hooks and the kubelet's way of killing a container.
//!
//! - `postStart` runs right after the container starts; the container does not count as
//!   running until it returns, and a failure kills it (`FailedPostStartHook`).
//! - `preStop` runs before the stop signal, within the grace period, and what it takes is
//!   taken from the grace period; the container then always gets at least 2 s more.
//!
//! Handlers: `exec` (through the runtime's `exec_sync`), `httpGet` (from inside the pod's
//! network namespace; any response counts as success, as for the kubelet's hooks) and
//! `sleep`.

use std::time::Duration;

use peapod_runtime::RuntimeService;
use peapod_types::api::{Container, LifecycleHandler};
use tokio::time::Instant;

use crate::prober::{self, Target};

/// A hook runs without a limit of its own (a preStop hook is bounded by the grace period);
/// this bounds what an exec hook may take at all.
pub(crate) const HOOK_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// The least time a container is given between its stop signal and SIGKILL, when it is
/// given any (the kubelet's `minimumGracePeriodInSeconds`).
pub(crate) const MINIMUM_GRACE: Duration = Duration::from_secs(2);

/// Runs `h` for container `c`; the error is the kubelet's message for the failure. An exec
/// handler's process is killed (and reaped) once `limit` has passed.
pub(crate) async fn run<R: RuntimeService>(
    h: &LifecycleHandler,
    c: &Container,
    t: &Target<R>,
    pod: &str,
    limit: Duration,
) -> Result<(), String> {
    if let Some(e) = &h.exec {
        let cmd = e.command.clone().unwrap_or_default();
        let shown = format!("[{}]", cmd.join(" "));
        let fail = |error: String, output: String| {
            Err(format!(
                "Exec lifecycle hook ({shown}) for Container {:?} in Pod {pod:?} failed - error: {error}, message: {output:?}",
                c.name
            ))
        };
        let limit = limit.min(HOOK_LIMIT);
        return match t.rt.exec_sync(&t.container_id, cmd.clone(), limit).await {
            Err(e) => fail(e.to_string(), String::new()),
            Ok(r) if r.exit_code == 0 => Ok(()),
            Ok(r) => {
                let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
                out.push_str(&String::from_utf8_lossy(&r.stderr));
                fail(
                    format!("command '{}' exited with {}: ", cmd.join(" "), r.exit_code),
                    out,
                )
            }
        };
    }
    if let Some(g) = &h.http_get {
        let path = g.path.clone().unwrap_or_else(|| "/".into());
        let fail = |error: String| {
            Err(format!(
                "HTTP lifecycle hook ({path}) for Container {:?} in Pod {pod:?} failed - error: {error}",
                c.name
            ))
        };
        // Any response is a success for a hook.
        return match prober::http_action(g, c, t, Duration::from_secs(10)).await {
            Ok(_) => Ok(()),
            Err(e) => fail(e),
        };
    }
    if let Some(s) = &h.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64)).await;
        return Ok(());
    }
    Err(format!(
        "Lifecycle hook for Container {:?} in Pod {pod:?} failed - error: invalid handler: only exec, httpGet and sleep are supported",
        c.name
    ))
}

/// Stops a running container instance as the kubelet's `killContainer` does: its preStop
/// hook first, bounded by `grace`; then its stop signal with what is left of `grace` (at
/// least [`MINIMUM_GRACE`]), then SIGKILL. A zero `grace` kills at once, hook skipped.
/// Returns the preStop hook's failure message, if it failed.
pub(crate) async fn kill<R: RuntimeService>(
    c: &Container,
    t: &Target<R>,
    pod: &str,
    grace: Duration,
) -> Option<String> {
    let mut hook_error = None;
    let mut hook_took = Duration::ZERO;
    if !grace.is_zero()
        && let Some(h) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
    {
        let start = Instant::now();
        match tokio::time::timeout(grace, run(h, c, t, pod, grace)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) if start.elapsed() >= grace => tracing::info!(
                "preStop hook of container {} did not complete in {}s",
                c.name,
                grace.as_secs()
            ),
            Ok(Err(msg)) => hook_error = Some(msg),
            Err(_) => {}
        }
        hook_took = start.elapsed();
    }
    let left = stop_timeout(grace, hook_took);
    if let Err(e) = t.rt.stop_container(&t.container_id, left).await {
        tracing::warn!("stopping container {}: {e}", c.name);
    }
    hook_error
}

/// What is left of `grace` for the stop signal after a preStop hook that took `hook_took`:
/// the kubelet counts whole seconds and always leaves at least [`MINIMUM_GRACE`]; a zero
/// grace period kills at once.
pub(crate) fn stop_timeout(grace: Duration, hook_took: Duration) -> Duration {
    if grace.is_zero() {
        return Duration::ZERO;
    }
    grace
        .saturating_sub(Duration::from_secs(hook_took.as_secs()))
        .max(MINIMUM_GRACE)
}

/// The grace period of a kill: a probe's own `terminationGracePeriodSeconds` for a kill it
/// caused, else the pod's (the kubelet's `killContainer`).
pub(crate) fn grace_for(pod_grace: i64, probe_grace: Option<i64>) -> Duration {
    Duration::from_secs(probe_grace.unwrap_or(pod_grace).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn pre_stop_time_comes_out_of_the_grace_period() {
        assert_eq!(stop_timeout(s(30), s(0)), s(30));
        assert_eq!(
            stop_timeout(s(30), Duration::from_millis(10_900)),
            s(20),
            "whole seconds"
        );
        assert_eq!(
            stop_timeout(s(30), s(29)),
            s(2),
            "at least two seconds are left"
        );
        assert_eq!(
            stop_timeout(s(5), s(60)),
            s(2),
            "a hook past the period still leaves 2 s"
        );
        assert_eq!(stop_timeout(s(1), s(0)), s(2));
        assert_eq!(
            stop_timeout(Duration::ZERO, s(0)),
            Duration::ZERO,
            "force kills at once"
        );
    }

    #[test]
    fn a_probes_grace_period_wins_for_its_kills() {
        assert_eq!(grace_for(30, None), s(30));
        assert_eq!(grace_for(30, Some(3)), s(3));
        assert_eq!(grace_for(-1, None), Duration::ZERO);
    }
}
