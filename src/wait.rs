//! `apply --wait`: after an apply's jobs, follows each unit it started or
//! restarted until the unit is settled, and says how each one ended.
//!
//! - With a health check: settled at its first passing probe (healthy);
//!   failing probes after the start period, `retries` in a row, make it
//!   unhealthy. Probes run at the check's interval (`cmd` checks through
//!   `podman healthcheck run`, the others by the agent).
//! - Without one: active, and still active [`SETTLE`] after it became so
//!   (a container that exits at once with an error takes its unit down in
//!   that time, though its start job succeeded).
//! - Either way a unit that leaves `active` has failed, at once.
//! - The deadline ends the wait for whatever is not settled yet.
//!
//! Unit states come from systemd's PropertiesChanged signals, not polling.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::health::probe::probe_container;
use crate::spec::{units, Health, SpecSet};
use crate::systemd::{Systemd, SystemdError};

/// How long a unit without a health check must stay active.
pub const SETTLE: Duration = Duration::from_secs(3);

/// How a unit ended the wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Its health check passed.
    Healthy(String),
    /// No health check: active for [`SETTLE`].
    Active,
    /// Its health check failed `retries` times in a row.
    Unhealthy(String),
    /// The unit left `active` (the state it went to).
    Stopped(String),
    /// Not settled when the deadline came (the state it was in).
    TimedOut(String),
}

impl Settled {
    pub fn ok(&self) -> bool {
        matches!(self, Settled::Healthy(_) | Settled::Active)
    }

    /// `healthy`, `unhealthy` or `none` (no check, or never probed).
    pub fn health(&self) -> &'static str {
        match self {
            Settled::Healthy(_) => "healthy",
            Settled::Unhealthy(_) => "unhealthy",
            _ => "none",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Settled::Healthy(d) => format!("healthy ({d})"),
            Settled::Active => format!("active for {}s", SETTLE.as_secs()),
            Settled::Unhealthy(d) => format!("unhealthy: {d}"),
            Settled::Stopped(s) => format!("the unit stopped ({s})"),
            Settled::TimedOut(s) => format!("not settled in time (unit {s})"),
        }
    }
}

/// One unit being followed.
struct Follow {
    container: String,
    health: Option<Health>,
    active_since: Option<Instant>,
    state: String,
    next_probe: Instant,
    failures: u32,
    last: String,
}

impl Follow {
    /// When this unit next needs looking at (a probe, or its settle time).
    fn due(&self) -> Option<Instant> {
        match (&self.health, self.active_since) {
            (Some(_), Some(_)) => Some(self.next_probe),
            (None, Some(since)) => Some(since + SETTLE),
            (_, None) => None,
        }
    }
}

/// Follows `started` (unit names) until each is settled or `limit` passes.
pub async fn wait(
    sd: &Systemd,
    set: &SpecSet,
    started: &[String],
    limit: Duration,
) -> Result<BTreeMap<String, Settled>, SystemdError> {
    let deadline = Instant::now() + limit;
    let mut follow: BTreeMap<String, Follow> = set
        .containers
        .values()
        .map(|c| (units::container(&c.name), c))
        .filter(|(u, _)| started.contains(u))
        .map(|(u, c)| {
            let f = Follow {
                container: c.name.clone(),
                health: c.health.clone(),
                active_since: None,
                state: "unknown".into(),
                next_probe: Instant::now(),
                failures: 0,
                last: String::new(),
            };
            (u, f)
        })
        .collect();
    let names: Vec<String> = follow.keys().cloned().collect();
    let mut done = BTreeMap::new();
    if names.is_empty() {
        return Ok(done);
    }
    let mut states = sd.watch_active(&names).await?;
    let started_at = Instant::now();
    while !follow.is_empty() {
        let due = follow.values().filter_map(Follow::due).min();
        tokio::select! {
            ev = states.recv() => {
                let Some((unit, state)) = ev else {
                    return Err(SystemdError::Disconnected);
                };
                if let Some(f) = follow.get_mut(&unit) {
                    if let Some(s) = on_state(f, &state) {
                        follow.remove(&unit);
                        // systemd's reason (result, exit status) says more.
                        let s = match (s, sd.unit_status(&unit).await) {
                            (Settled::Stopped(_), Ok(st)) => Settled::Stopped(st.why()),
                            (s, _) => s,
                        };
                        done.insert(unit, s);
                    }
                }
            }
            _ = tokio::time::sleep_until(due.unwrap_or(deadline)), if due.is_some() => {
                let now = Instant::now();
                for (unit, f) in follow.iter_mut() {
                    if f.due().is_some_and(|t| t <= now) {
                        if let Some(s) = look(f, started_at).await {
                            done.insert(unit.clone(), s);
                        }
                    }
                }
                follow.retain(|u, _| !done.contains_key(u));
            }
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    for (unit, f) in follow {
        done.insert(unit, Settled::TimedOut(f.state));
    }
    Ok(done)
}

/// A state from systemd: leaving `active` settles the unit as stopped.
/// Before it was active, only `inactive` or `failed` count (it may still
/// be activating); once active, any other state does (systemd restarting
/// it after a crash goes through `deactivating` and `activating`).
fn on_state(f: &mut Follow, state: &str) -> Option<Settled> {
    let was_active = f.active_since.is_some();
    f.state = state.to_string();
    match state {
        "active" | "reloading" => {
            f.active_since.get_or_insert_with(Instant::now);
            None
        }
        "inactive" | "failed" => Some(Settled::Stopped(state.to_string())),
        _ if was_active => Some(Settled::Stopped(state.to_string())),
        _ => None,
    }
}

/// A due look at an active unit: the settle time passed, or a probe.
async fn look(f: &mut Follow, started_at: Instant) -> Option<Settled> {
    let Some(h) = &f.health else {
        return Some(Settled::Active);
    };
    let r = probe_container(&f.container, &h.check, h.timeout).await;
    f.next_probe = Instant::now() + h.interval.max(Duration::from_millis(100));
    if r.ok {
        return Some(Settled::Healthy(r.detail));
    }
    f.last = r.detail;
    if started_at.elapsed() >= h.start_period {
        f.failures += 1;
        if f.failures >= h.retries.max(1) {
            return Some(Settled::Unhealthy(f.last.clone()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn follow() -> Follow {
        Follow {
            container: "web".into(),
            health: None,
            active_since: None,
            state: String::new(),
            next_probe: Instant::now(),
            failures: 0,
            last: String::new(),
        }
    }

    #[test]
    fn leaving_active_is_a_failure_activating_first_is_not() {
        let mut f = follow();
        assert_eq!(on_state(&mut f, "activating"), None);
        assert_eq!(on_state(&mut f, "active"), None);
        assert!(f.due().is_some(), "settles SETTLE after it became active");
        // Restart= after a crash: through activating again.
        assert_eq!(
            on_state(&mut f, "activating"),
            Some(Settled::Stopped("activating".into()))
        );
        let mut f = follow();
        assert_eq!(
            on_state(&mut f, "failed"),
            Some(Settled::Stopped("failed".into())),
            "already down when the watch began"
        );
    }
}
