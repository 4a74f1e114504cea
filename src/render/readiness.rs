//! Health-gated ordering: what makes the start job of a container that other
//! containers `requires`/`after` finish only once it is healthy.
//!
//! systemd starts a dependent when its dependency's start job is done, so
//! "started" has to mean "healthy" for that dependency:
//! - an in-container `cmd` check on Podman 5.0 or newer, on a container
//!   whose spec sets no `notify` of its own: `Notify=healthy` (Podman
//!   reports the unit ready when its healthcheck first passes);
//! - an agent-side `http`/`tcp` check, or a `cmd` check on an older Podman:
//!   `ExecStartPost=deploy-agent wait-healthy ...`, which probes until the
//!   first pass (see `health::ready`).
//!
//! Either way the start job fails if the container is not healthy within its
//! health budget (start period + interval × retries + timeout, what the
//! daemon would allow before calling it failed): systemd then does not start
//! the units that `Requires=` it, and says "dependency" for their jobs.
//! `TimeoutStartSec=` is widened by that budget. A container nobody depends
//! on is unchanged: its start job ends when it runs, as before.

use std::collections::HashSet;
use std::time::Duration;

use crate::spec::model::{Container, HealthCheck, SpecSet};

use super::{duration, since, PodmanVersion};

/// systemd's start timeout when the spec sets none (`DefaultTimeoutStartSec`).
const SYSTEMD_START_TIMEOUT: Duration = Duration::from_secs(90);

/// How a gated container's start job waits for health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// `Notify=healthy`: Podman itself waits.
    pub notify_healthy: bool,
    /// `ExecStartPost=`: the agent's waiter, as an argument vector.
    pub wait_command: Option<Vec<String>>,
    /// `TimeoutStartSec=`: the start timeout plus the health budget.
    pub start_timeout: Duration,
}

/// The containers of `set` that another one requires or orders itself
/// after: computed once per rendering (per container it would be O(n²)).
pub fn depended_on(set: &SpecSet) -> HashSet<String> {
    set.containers
        .values()
        .flat_map(|c| c.requires.iter().chain(&c.after))
        .cloned()
        .collect()
}

/// The readiness gate for `c`, if it has a health check and something
/// depends on it (`depended`: from [`depended_on`]). `agent_exe` is the
/// deploy-agent binary the waiter runs.
pub fn readiness(
    depended: &HashSet<String>,
    c: &Container,
    podman: PodmanVersion,
    agent_exe: &str,
) -> Option<Readiness> {
    let h = c.health.as_ref()?;
    if !depended.contains(&c.name) {
        return None;
    }
    let budget = h.start_period + h.interval * h.retries + h.timeout;
    let start_timeout = c.start_timeout.unwrap_or(SYSTEMD_START_TIMEOUT) + budget;
    // A spec's own `notify` (the container sends READY itself) stays; the
    // waiter gates such a container instead.
    let notify_healthy = matches!(h.check, HealthCheck::Cmd(_))
        && podman >= since::NOTIFY_HEALTHY
        && !c.settings.contains_key("notify");
    let wait_command = (!notify_healthy).then(|| {
        let mut argv = vec![agent_exe.to_string(), "wait-healthy".into(), c.name.clone()];
        argv.extend(check_args(&h.check));
        argv.extend([
            "--within".into(),
            duration(budget),
            "--probe-timeout".into(),
            duration(h.timeout),
            "--every".into(),
            duration(h.interval.min(Duration::from_secs(1))),
        ]);
        argv
    });
    Some(Readiness {
        notify_healthy,
        wait_command,
        start_timeout,
    })
}

/// The waiter's arguments for one kind of check.
fn check_args(check: &HealthCheck) -> Vec<String> {
    match check {
        HealthCheck::Cmd(_) => vec!["--podman".into()],
        HealthCheck::Http {
            url,
            expect_status,
            ca_file,
        } => {
            let mut v = vec![
                "--http".into(),
                url.clone(),
                "--expect-status".into(),
                expect_status.to_string(),
            ];
            if let Some(f) = ca_file {
                v.extend(["--ca-file".into(), f.display().to_string()]);
            }
            v
        }
        HealthCheck::Tcp { addr } => vec!["--tcp".into(), addr.clone()],
    }
}
