//! The per-unit health state machine. Pure: no I/O, no clock, no sleeping;
//! every input carries its `Instant`, every output is data.
//!
//! ```text
//!            on_started                 success
//! Stopped ─────────────▶ Starting ─────────────────▶ Healthy ◀──────┐
//!                          │  failure after start_period  │ failure   │ success
//!                          ▼                              ▼           │ (Recovered)
//!                        Unhealthy { consecutive_failures: 1..retries } ──┤
//!                          │ failure number `retries`                 │
//!                          ▼                                          │
//!                        Failed ──────────────────────────────────────┘
//!                          │ on_failure: restart (after backoff) | rollback | none
//! ```
//!
//! Failures during the start period do not count; a success ends it.
//! `on_stopped` goes to `Stopped` from anywhere and cancels what is pending.
//!
//! The daemon drives it like this: sleep until [`HealthMachine::due_at`]
//! (with none, wait for an event), call [`HealthMachine::tick`], carry out the [`Action`]s (a `Probe` runs in
//! the background and its result comes back through
//! [`HealthMachine::on_probe`]), log the [`Transition`]s; report unit starts
//! and stops with [`HealthMachine::on_started`] / [`HealthMachine::on_stopped`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::event::HealthEvent;
use super::probe::{fmt_duration, ProbeResult};
use crate::spec::model::{Health, OnFailure};

/// Where a unit's health stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Not running; nothing is probed.
    Stopped,
    /// (Re)started, no success yet; failures within the start period do not count.
    Starting,
    Healthy,
    /// Counted failures in a row, fewer than `retries`.
    Unhealthy {
        consecutive_failures: u32,
    },
    /// `retries` failures in a row.
    Failed,
}

/// How a unit came to be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartKind {
    /// A new generation was applied (or rolled back to): rollback, restart
    /// count and give-up start afresh.
    NewGeneration,
    /// The same generation restarted (by the agent, systemd or an operator).
    Restart,
}

/// What the daemon should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Run the unit's probe now and report with [`HealthMachine::on_probe`].
    Probe,
    /// Restart the unit, then report [`HealthMachine::on_started`] with
    /// [`StartKind::Restart`].
    Restart,
    /// Roll back to the previous generation.
    Rollback,
}

/// One event for the journal. `from == to` for the events that are actions
/// rather than state changes (restart, rollback, gave up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub event: HealthEvent,
    pub from: HealthState,
    pub to: HealthState,
    pub detail: String,
}

/// What one input produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub transitions: Vec<Transition>,
    pub actions: Vec<Action>,
}

impl Output {
    pub fn is_empty(&self) -> bool {
        self.transitions.is_empty() && self.actions.is_empty()
    }

    fn event(&mut self, event: HealthEvent, from: HealthState, to: HealthState, detail: String) {
        self.transitions.push(Transition {
            event,
            from,
            to,
            detail,
        });
    }
}

/// Restart pacing for `on_failure = "restart"`: the restart that follows `n`
/// earlier restarts within `window` waits `initial * 2^n`, at most
/// `max_delay`; once `max_restarts` restarts happened within `window`, the
/// agent gives up instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max_delay: Duration,
    pub max_restarts: u32,
    pub window: Duration,
}

impl Default for Backoff {
    /// 10s, 20s, 40s, 80s, 160s (at most 5 min), then give up: at most 5
    /// restarts within an hour.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(10),
            max_delay: Duration::from_secs(300),
            max_restarts: 5,
            window: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The wait before a restart that follows `earlier` restarts in the window.
    pub fn delay(&self, earlier: u32) -> Duration {
        let factor = 1u32 << earlier.min(20);
        self.initial.saturating_mul(factor).min(self.max_delay)
    }
}

/// A unit's health settings, from its spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub interval: Duration,
    pub timeout: Duration,
    /// Failures in a row that make the unit `Failed` (at least 1).
    pub retries: u32,
    pub start_period: Duration,
    pub on_failure: OnFailure,
    pub backoff: Backoff,
}

impl Policy {
    pub fn from_health(health: &Health) -> Self {
        Policy {
            interval: health.interval,
            timeout: health.timeout,
            retries: health.retries,
            start_period: health.start_period,
            on_failure: health.on_failure,
            backoff: Backoff {
                initial: health.restart_delay,
                max_restarts: health.max_restarts,
                ..Backoff::default()
            },
        }
    }

    /// Never probe more often than this, whatever the spec says.
    const MIN_INTERVAL: Duration = Duration::from_millis(100);

    fn interval(&self) -> Duration {
        self.interval.max(Self::MIN_INTERVAL)
    }

    fn retries(&self) -> u32 {
        self.retries.max(1)
    }
}

/// The health of one unit. See the module docs for the states.
#[derive(Debug, Clone)]
pub struct HealthMachine {
    policy: Policy,
    state: HealthState,
    started_at: Option<Instant>,
    /// When the next probe is due; `None` while nothing is to be probed.
    next_probe_at: Option<Instant>,
    /// A probe was asked for and its result has not come back.
    probing: bool,
    /// This generation was healthy at least once.
    ever_healthy: bool,
    rolled_back: bool,
    /// A restart is scheduled (backoff running).
    restart_at: Option<Instant>,
    /// Restarts the agent asked for, oldest first, pruned to the window.
    restarts: VecDeque<Instant>,
    gave_up: bool,
}

impl HealthMachine {
    /// A machine for a unit that is not running yet.
    pub fn new(policy: Policy) -> Self {
        HealthMachine {
            policy,
            state: HealthState::Stopped,
            started_at: None,
            next_probe_at: None,
            probing: false,
            ever_healthy: false,
            rolled_back: false,
            restart_at: None,
            restarts: VecDeque::new(),
            gave_up: false,
        }
    }

    pub fn state(&self) -> HealthState {
        self.state
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Too many restarts within the window: the agent no longer restarts
    /// this unit until it is healthy again or a new generation starts.
    pub fn gave_up(&self) -> bool {
        self.gave_up
    }

    /// The unit started at `at`.
    pub fn on_started(&mut self, at: Instant, kind: StartKind) -> Output {
        if kind == StartKind::NewGeneration {
            self.ever_healthy = false;
            self.rolled_back = false;
            self.restarts.clear();
            self.gave_up = false;
        }
        let from = self.state;
        self.state = HealthState::Starting;
        self.started_at = Some(at);
        self.next_probe_at = Some(at + self.policy.interval());
        self.probing = false;
        self.restart_at = None;
        let mut out = Output::default();
        out.event(
            HealthEvent::Starting,
            from,
            HealthState::Starting,
            format!(
                "start period {}, probing every {}",
                fmt_duration(self.policy.start_period),
                fmt_duration(self.policy.interval())
            ),
        );
        out
    }

    /// The unit stopped (or failed as a systemd unit) at `at`: stop probing,
    /// drop a pending restart, ignore a probe still under way.
    pub fn on_stopped(&mut self, _at: Instant) -> Output {
        self.state = HealthState::Stopped;
        self.started_at = None;
        self.next_probe_at = None;
        self.probing = false;
        self.restart_at = None;
        Output::default()
    }

    /// Time has come to `now`: asks for a probe when one is due, carries out
    /// a restart whose backoff has run out.
    pub fn tick(&mut self, now: Instant) -> Output {
        let mut out = Output::default();
        if self.restart_at.is_some_and(|t| now >= t) {
            self.restart_at = None;
            self.next_probe_at = None;
            self.probing = false;
            self.prune_restarts(now);
            self.restarts.push_back(now);
            out.event(
                HealthEvent::Restart,
                self.state,
                self.state,
                format!(
                    "restart {} of at most {} within {}",
                    self.restarts.len(),
                    self.policy.backoff.max_restarts,
                    fmt_duration(self.policy.backoff.window)
                ),
            );
            out.actions.push(Action::Restart);
            return out;
        }
        if !self.probing && self.next_probe_at.is_some_and(|t| now >= t) {
            self.probing = true;
            self.next_probe_at = Some(now + self.policy.interval());
            out.actions.push(Action::Probe);
        }
        out
    }

    /// When [`tick`](Self::tick) has something to do next: a due probe or
    /// restart. `None` while only an event can move the machine on
    /// (stopped, or a probe under way whose result will come). Never
    /// earlier than one interval after the last probe started.
    pub fn due_at(&self) -> Option<Instant> {
        let probe = self.next_probe_at.filter(|_| !self.probing);
        match (probe, self.restart_at) {
            (Some(p), Some(r)) => Some(p.min(r)),
            (p, r) => p.or(r),
        }
    }

    /// The result of the probe asked for by [`Action::Probe`], finished at
    /// `at`. A result nobody asked for (e.g. from before a restart) is ignored.
    pub fn on_probe(&mut self, result: &ProbeResult, at: Instant) -> Output {
        let mut out = Output::default();
        if !self.probing {
            return out;
        }
        self.probing = false;
        let from = self.state;
        if result.ok {
            self.ever_healthy = true;
            let event = match from {
                HealthState::Starting => HealthEvent::Healthy,
                HealthState::Unhealthy { .. } | HealthState::Failed => HealthEvent::Recovered,
                HealthState::Healthy | HealthState::Stopped => return out,
            };
            self.state = HealthState::Healthy;
            self.restart_at = None;
            self.gave_up = false;
            out.event(event, from, HealthState::Healthy, result.detail.clone());
            return out;
        }
        let failures = match from {
            HealthState::Starting if self.in_start_period(at) => return out,
            HealthState::Starting | HealthState::Healthy => 1,
            HealthState::Unhealthy {
                consecutive_failures,
            } => consecutive_failures + 1,
            HealthState::Failed | HealthState::Stopped => return out,
        };
        let retries = self.policy.retries();
        if failures < retries {
            self.state = HealthState::Unhealthy {
                consecutive_failures: failures,
            };
            if !matches!(from, HealthState::Unhealthy { .. }) {
                out.event(
                    HealthEvent::Unhealthy,
                    from,
                    self.state,
                    format!("failure {failures} of {retries}: {}", result.detail),
                );
            }
            return out;
        }
        self.state = HealthState::Failed;
        self.on_failed(
            from,
            at,
            format!("failure {failures} of {retries}: {}", result.detail),
            &mut out,
        );
        out
    }

    fn in_start_period(&self, at: Instant) -> bool {
        self.started_at
            .is_some_and(|s| at < s + self.policy.start_period)
    }

    fn prune_restarts(&mut self, now: Instant) {
        let window = self.policy.backoff.window;
        while self
            .restarts
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= window)
        {
            self.restarts.pop_front();
        }
    }

    /// Retries are spent: report, and act as `on_failure` says.
    fn on_failed(&mut self, from: HealthState, at: Instant, detail: String, out: &mut Output) {
        let failed = HealthState::Failed;
        match self.policy.on_failure {
            OnFailure::None => {
                out.event(HealthEvent::Failed, from, failed, detail);
            }
            OnFailure::Rollback if !self.ever_healthy && !self.rolled_back => {
                self.rolled_back = true;
                out.event(HealthEvent::Failed, from, failed, detail.clone());
                out.event(
                    HealthEvent::Rollback,
                    failed,
                    failed,
                    format!("never healthy since this generation started; {detail}"),
                );
                out.actions.push(Action::Rollback);
            }
            OnFailure::Rollback => {
                let why = if self.rolled_back {
                    "rollback already asked for"
                } else {
                    "this generation was healthy before, so no rollback"
                };
                out.event(
                    HealthEvent::Failed,
                    from,
                    failed,
                    format!("{detail}; {why}"),
                );
            }
            OnFailure::Restart if self.gave_up => {
                out.event(
                    HealthEvent::Failed,
                    from,
                    failed,
                    format!("{detail}; gave up restarting"),
                );
            }
            OnFailure::Restart => {
                self.prune_restarts(at);
                let backoff = self.policy.backoff;
                let earlier = self.restarts.len() as u32;
                if earlier >= backoff.max_restarts {
                    self.gave_up = true;
                    out.event(HealthEvent::Failed, from, failed, detail);
                    out.event(
                        HealthEvent::GaveUp,
                        failed,
                        failed,
                        format!(
                            "{earlier} restarts within {}; not restarting again until healthy or a new generation",
                            fmt_duration(backoff.window)
                        ),
                    );
                } else {
                    let delay = backoff.delay(earlier);
                    self.restart_at = Some(at + delay);
                    out.event(
                        HealthEvent::Failed,
                        from,
                        failed,
                        format!("{detail}; restart in {}", fmt_duration(delay)),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthEvent as E;
    use HealthState as S;

    const INTERVAL: Duration = Duration::from_secs(10);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn machine(on_failure: OnFailure, retries: u32, start_period: Duration) -> HealthMachine {
        HealthMachine::new(Policy {
            interval: INTERVAL,
            timeout: secs(3),
            retries,
            start_period,
            on_failure,
            backoff: Backoff::default(),
        })
    }

    fn pass() -> ProbeResult {
        ProbeResult {
            ok: true,
            detail: "HTTP 200".into(),
            elapsed: Duration::from_millis(5),
        }
    }

    fn fail() -> ProbeResult {
        ProbeResult {
            ok: false,
            detail: "HTTP 500 (expected 200)".into(),
            elapsed: Duration::from_millis(5),
        }
    }

    impl HealthMachine {
        /// The tests' clock: [`HealthMachine::due_at`], else one interval
        /// after `now`.
        fn next_due(&self, now: Instant) -> Instant {
            self.due_at()
                .unwrap_or_else(|| now + self.policy.interval())
        }
    }

    /// Ticks at the next due time (not before `now`), expects a probe request, answers it.
    /// Returns the probe time and the output of the answer.
    fn probe_next(m: &mut HealthMachine, now: Instant, result: ProbeResult) -> (Instant, Output) {
        let at = m.next_due(now).max(now);
        let ticked = m.tick(at);
        assert_eq!(ticked.actions, vec![Action::Probe], "at {:?}", at - now);
        assert!(ticked.transitions.is_empty());
        (at, m.on_probe(&result, at))
    }

    fn events(out: &Output) -> Vec<HealthEvent> {
        out.transitions.iter().map(|t| t.event).collect()
    }

    /// Started at t0, start period 0, first probe passes: Healthy.
    fn healthy(on_failure: OnFailure, retries: u32) -> (HealthMachine, Instant) {
        let t0 = Instant::now();
        let mut m = machine(on_failure, retries, Duration::ZERO);
        m.on_started(t0, StartKind::NewGeneration);
        let (t, out) = probe_next(&mut m, t0, pass());
        assert_eq!(events(&out), [E::Healthy]);
        (m, t)
    }

    /// Fails `n` probes in a row from `now`; returns the last time and outputs.
    fn fail_n(m: &mut HealthMachine, mut now: Instant, n: u32) -> (Instant, Vec<Output>) {
        let mut outs = Vec::new();
        for _ in 0..n {
            let (t, out) = probe_next(m, now, fail());
            now = t;
            outs.push(out);
        }
        (now, outs)
    }

    #[test]
    fn a_stopped_unit_is_not_probed() {
        let t0 = Instant::now();
        let mut m = machine(OnFailure::Restart, 3, secs(30));
        assert_eq!(m.state(), S::Stopped);
        assert!(m.tick(t0 + secs(3600)).is_empty());
        assert_eq!(m.next_due(t0), t0 + INTERVAL);
    }

    #[test]
    fn start_reports_starting_and_first_probe_comes_one_interval_later() {
        let t0 = Instant::now();
        let mut m = machine(OnFailure::Restart, 3, secs(30));
        let out = m.on_started(t0, StartKind::NewGeneration);
        assert_eq!(
            out.transitions,
            vec![Transition {
                event: E::Starting,
                from: S::Stopped,
                to: S::Starting,
                detail: "start period 30s, probing every 10s".into(),
            }]
        );
        assert!(out.actions.is_empty());
        assert_eq!(m.next_due(t0), t0 + INTERVAL);
        assert!(m.tick(t0 + secs(9)).is_empty());
        assert_eq!(m.tick(t0 + INTERVAL).actions, vec![Action::Probe]);
    }

    #[test]
    fn never_two_probes_at_once_nor_faster_than_the_interval() {
        let t0 = Instant::now();
        let mut m = machine(OnFailure::Restart, 3, Duration::ZERO);
        m.on_started(t0, StartKind::NewGeneration);
        let t1 = t0 + INTERVAL;
        assert_eq!(m.tick(t1).actions, vec![Action::Probe]);
        // In flight: nothing more is asked for, even long after.
        assert!(m.tick(t1 + secs(25)).is_empty());
        // The result comes back fast; the next probe still waits one interval
        // from the start of the last.
        m.on_probe(&pass(), t1 + Duration::from_millis(5));
        assert_eq!(m.next_due(t1), t1 + INTERVAL);
        assert!(m.tick(t1 + secs(9)).is_empty());
    }

    #[test]
    fn a_result_nobody_asked_for_is_ignored() {
        let t0 = Instant::now();
        let mut m = machine(OnFailure::Restart, 1, Duration::ZERO);
        m.on_started(t0, StartKind::NewGeneration);
        assert!(m.on_probe(&fail(), t0 + secs(1)).is_empty());
        assert_eq!(m.state(), S::Starting);
    }

    #[test]
    fn a_success_ends_the_start_period() {
        let t0 = Instant::now();
        let mut m = machine(OnFailure::Restart, 3, secs(60));
        m.on_started(t0, StartKind::NewGeneration);
        let (_, out) = probe_next(&mut m, t0, pass());
        assert_eq!(
            out.transitions,
            vec![Transition {
                event: E::Healthy,
                from: S::Starting,
                to: S::Healthy,
                detail: "HTTP 200".into(),
            }]
        );
        assert_eq!(m.state(), S::Healthy);
        // The next failure counts at once, though we are within 60s of the start.
        let (_, out) = probe_next(&mut m, t0, fail());
        assert_eq!(events(&out), [E::Unhealthy]);
        assert_eq!(
            m.state(),
            S::Unhealthy {
                consecutive_failures: 1
            }
        );
    }

    #[test]
    fn failures_within_the_start_period_do_not_count() {
        let t0 = Instant::now();
        let mut m = machine(OnFailure::Restart, 2, secs(30));
        m.on_started(t0, StartKind::NewGeneration);
        // Probes at 10s and 20s fail quietly.
        let (t, outs) = fail_n(&mut m, t0, 2);
        assert_eq!(t, t0 + secs(20));
        assert!(outs.iter().all(Output::is_empty));
        assert_eq!(m.state(), S::Starting);
        // At 30s the start period is over: this one counts.
        let (t, out) = probe_next(&mut m, t, fail());
        assert_eq!(t, t0 + secs(30));
        assert_eq!(events(&out), [E::Unhealthy]);
        assert_eq!(out.transitions[0].from, S::Starting);
        assert_eq!(
            out.transitions[0].detail,
            "failure 1 of 2: HTTP 500 (expected 200)"
        );
        let (_, out) = probe_next(&mut m, t, fail());
        assert_eq!(events(&out), [E::Failed]);
        assert_eq!(m.state(), S::Failed);
    }

    #[test]
    fn retries_count_consecutive_failures_then_fail() {
        let (mut m, t) = healthy(OnFailure::None, 3);
        let (_, outs) = fail_n(&mut m, t, 3);
        // Unhealthy is reported once, on entering it; the count still goes up.
        assert_eq!(events(&outs[0]), [E::Unhealthy]);
        assert_eq!(
            (outs[0].transitions[0].from, outs[0].transitions[0].to),
            (
                S::Healthy,
                S::Unhealthy {
                    consecutive_failures: 1
                }
            )
        );
        assert!(outs[1].is_empty());
        assert_eq!(
            outs[2].transitions,
            vec![Transition {
                event: E::Failed,
                from: S::Unhealthy {
                    consecutive_failures: 2
                },
                to: S::Failed,
                detail: "failure 3 of 3: HTTP 500 (expected 200)".into(),
            }]
        );
        // on_failure = none: reporting only, and nothing more while it stays failed.
        assert!(outs[2].actions.is_empty());
        let (_, outs) = fail_n(&mut m, t, 2);
        assert!(outs.iter().all(Output::is_empty));
        assert_eq!(m.state(), S::Failed);
    }

    #[test]
    fn one_retry_fails_at_the_first_failure() {
        let (mut m, t) = healthy(OnFailure::None, 1);
        let (_, out) = probe_next(&mut m, t, fail());
        assert_eq!(events(&out), [E::Failed]);
        assert_eq!(out.transitions[0].from, S::Healthy);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let (mut m, t) = healthy(OnFailure::Restart, 3);
        let (t, _) = fail_n(&mut m, t, 2);
        let (t, out) = probe_next(&mut m, t, pass());
        assert_eq!(events(&out), [E::Recovered]);
        let (_, outs) = fail_n(&mut m, t, 2);
        assert_eq!(events(&outs[0]), [E::Unhealthy]);
        assert_eq!(
            m.state(),
            S::Unhealthy {
                consecutive_failures: 2
            }
        );
    }

    #[test]
    fn recovered_after_unhealthy() {
        let (mut m, t) = healthy(OnFailure::Restart, 3);
        let (t, _) = fail_n(&mut m, t, 1);
        let (_, out) = probe_next(&mut m, t, pass());
        assert_eq!(
            out.transitions,
            vec![Transition {
                event: E::Recovered,
                from: S::Unhealthy {
                    consecutive_failures: 1
                },
                to: S::Healthy,
                detail: "HTTP 200".into(),
            }]
        );
        assert!(out.actions.is_empty());
    }

    #[test]
    fn restart_after_backoff_and_the_restart_resets() {
        let (mut m, t) = healthy(OnFailure::Restart, 2);
        let (t, outs) = fail_n(&mut m, t, 2);
        assert_eq!(
            outs[1].transitions[0].detail,
            "failure 2 of 2: HTTP 500 (expected 200); restart in 10s"
        );
        assert!(
            outs[1].actions.is_empty(),
            "the restart waits for its backoff"
        );
        // The restart is what is due next (before the next probe would be).
        assert_eq!(m.next_due(t), t + secs(10));
        assert!(m.tick(t + secs(9)).actions.is_empty());
        let out = m.tick(t + secs(10));
        assert_eq!(out.actions, vec![Action::Restart]);
        assert_eq!(
            out.transitions,
            vec![Transition {
                event: E::Restart,
                from: S::Failed,
                to: S::Failed,
                detail: "restart 1 of at most 5 within 1h".into(),
            }]
        );
        // Until the unit is back, nothing is probed or restarted again.
        assert!(m.tick(t + secs(100)).is_empty());
        let back = t + secs(12);
        let out = m.on_started(back, StartKind::Restart);
        assert_eq!(events(&out), [E::Starting]);
        assert_eq!(out.transitions[0].from, S::Failed);
        assert_eq!(m.state(), S::Starting);
        // The count starts over: one failure is Unhealthy{1}, not Failed.
        let (_, out) = probe_next(&mut m, back, fail());
        assert_eq!(events(&out), [E::Unhealthy]);
        assert_eq!(
            m.state(),
            S::Unhealthy {
                consecutive_failures: 1
            }
        );
    }

    /// Fails probes from `now` until the unit is `Failed`; returns the time
    /// and the output of the failure that made it so.
    fn fail_until_failed(m: &mut HealthMachine, mut now: Instant) -> (Instant, Output) {
        loop {
            let (t, out) = probe_next(m, now, fail());
            now = t;
            if m.state() == S::Failed {
                return (t, out);
            }
        }
    }

    /// Drives a crash loop: fail until failed, keep failing until the
    /// restart is due, start again; at most `cycles` times. Returns the backoff delays seen and the
    /// output of the last failure.
    fn crash_loop(
        m: &mut HealthMachine,
        mut now: Instant,
        cycles: usize,
    ) -> (Vec<Duration>, Output) {
        let mut delays = Vec::new();
        let mut last = Output::default();
        for _ in 0..cycles {
            let (t, out) = fail_until_failed(m, now);
            last = out;
            if m.gave_up() {
                break;
            }
            // Probing goes on during the backoff (still failing) until the
            // restart is due.
            let due = loop {
                let due = m.next_due(t);
                let out = m.tick(due);
                if out.actions == [Action::Restart] {
                    break due;
                }
                assert_eq!(out.actions, vec![Action::Probe]);
                assert!(m.on_probe(&fail(), due).is_empty());
            };
            delays.push(due - t);
            now = due + secs(1);
            m.on_started(now, StartKind::Restart);
        }
        (delays, last)
    }

    #[test]
    fn backoff_doubles_then_gives_up_at_the_cap() {
        let (mut m, t) = healthy(OnFailure::Restart, 2);
        let (delays, last) = crash_loop(&mut m, t, 10);
        assert_eq!(delays, [10, 20, 40, 80, 160].map(secs));
        assert_eq!(events(&last), [E::Failed, E::GaveUp]);
        assert_eq!(
            last.transitions[1].detail,
            "5 restarts within 1h; not restarting again until healthy or a new generation"
        );
        assert!(last.actions.is_empty());
        assert!(m.gave_up());
        // No restart is pending; probing goes on to notice a recovery.
        let now = m.next_due(t + secs(10_000));
        assert_eq!(m.tick(now).actions, vec![Action::Probe]);
        let out = m.on_probe(&pass(), now);
        assert_eq!(events(&out), [E::Recovered]);
        assert!(!m.gave_up());
    }

    #[test]
    fn backoff_delay_is_capped() {
        let b = Backoff::default();
        assert_eq!(b.delay(0), secs(10));
        assert_eq!(b.delay(4), secs(160));
        assert_eq!(b.delay(5), secs(300));
        assert_eq!(b.delay(40), secs(300));
    }

    #[test]
    fn restarts_older_than_the_window_are_forgotten() {
        let (mut m, t) = healthy(OnFailure::Restart, 2);
        let (delays, _) = crash_loop(&mut m, t, 2);
        assert_eq!(delays, [10, 20].map(secs));
        // Healthy for over an hour, then failing again: back to the first delay.
        let now = m.next_due(t + secs(100));
        assert_eq!(m.tick(now).actions, vec![Action::Probe]);
        m.on_probe(&pass(), now);
        let later = now + secs(3700);
        let (t, outs) = fail_n(&mut m, later, 2);
        assert_eq!(events(&outs[1]), [E::Failed]);
        assert_eq!(m.next_due(t), t + secs(10));
    }

    #[test]
    fn a_recovery_during_backoff_cancels_the_restart() {
        let (mut m, t) = healthy(OnFailure::Restart, 1);
        // Make the backoff longer than the interval: two earlier restarts.
        let (_, _) = crash_loop(&mut m, t, 2);
        let (t, outs) = fail_n(&mut m, t + secs(100), 1);
        assert!(outs[0].transitions[0].detail.ends_with("restart in 40s"));
        // The probe one interval later passes.
        let (t, out) = probe_next(&mut m, t, pass());
        assert_eq!(events(&out), [E::Recovered]);
        assert_eq!(out.transitions[0].from, S::Failed);
        assert_eq!(m.next_due(t), t + INTERVAL);
        assert!(!m.tick(t + secs(60)).actions.contains(&Action::Restart));
    }

    #[test]
    fn rollback_when_the_new_generation_never_becomes_healthy() {
        let t0 = Instant::now();
        let mut m = machine(OnFailure::Rollback, 3, secs(25));
        m.on_started(t0, StartKind::NewGeneration);
        // 10s, 20s: start period; 30s, 40s, 50s: counted, the third fails.
        let (t, outs) = fail_n(&mut m, t0, 5);
        assert_eq!(t, t0 + secs(50));
        assert_eq!(events(&outs[4]), [E::Failed, E::Rollback]);
        assert_eq!(outs[4].actions, vec![Action::Rollback]);
        // Asked for once only.
        let (_, outs) = fail_n(&mut m, t, 3);
        assert!(outs.iter().all(|o| o.actions.is_empty()));
        // The rolled-back generation starts afresh and may be rolled back too.
        let t1 = t + secs(60);
        m.on_started(t1, StartKind::NewGeneration);
        let (_, outs) = fail_n(&mut m, t1, 5);
        assert_eq!(outs[4].actions, vec![Action::Rollback]);
    }

    #[test]
    fn no_rollback_once_the_generation_was_healthy() {
        let (mut m, t) = healthy(OnFailure::Rollback, 2);
        let (t, outs) = fail_n(&mut m, t, 2);
        assert_eq!(events(&outs[1]), [E::Failed]);
        assert!(outs[1].actions.is_empty());
        assert!(outs[1].transitions[0]
            .detail
            .ends_with("this generation was healthy before, so no rollback"));
        // Not even after a restart of the same generation.
        m.on_started(t + secs(5), StartKind::Restart);
        let (_, outs) = fail_n(&mut m, t + secs(5), 2);
        assert!(outs[1].actions.is_empty());
    }

    #[test]
    fn stopping_cancels_the_pending_restart_and_the_probe() {
        let (mut m, t) = healthy(OnFailure::Restart, 1);
        let (t, _) = fail_n(&mut m, t, 1);
        assert_eq!(m.next_due(t), t + secs(10));
        assert!(m.on_stopped(t + secs(1)).is_empty());
        assert_eq!(m.state(), S::Stopped);
        assert!(m.tick(t + secs(3600)).is_empty());
        // A probe under way when the unit stops does not count.
        let (mut m, t) = healthy(OnFailure::Restart, 1);
        let due = m.next_due(t);
        assert_eq!(m.tick(due).actions, vec![Action::Probe]);
        m.on_stopped(due);
        assert!(m.on_probe(&fail(), due + secs(1)).is_empty());
        assert_eq!(m.state(), S::Stopped);
    }

    #[test]
    fn a_new_generation_lifts_the_give_up() {
        let (mut m, t) = healthy(OnFailure::Restart, 2);
        crash_loop(&mut m, t, 10);
        assert!(m.gave_up());
        let t1 = t + secs(5000);
        m.on_started(t1, StartKind::NewGeneration);
        assert!(!m.gave_up());
        let (t, outs) = fail_n(&mut m, t1, 2);
        assert_eq!(events(&outs[1]), [E::Failed]);
        assert_eq!(m.next_due(t), t + secs(10));
    }

    #[test]
    fn policy_from_spec() {
        let h = Health {
            check: crate::spec::model::HealthCheck::Tcp {
                addr: "127.0.0.1:1".into(),
            },
            interval: secs(30),
            timeout: secs(5),
            retries: 3,
            start_period: secs(40),
            on_failure: OnFailure::Rollback,
            restart_delay: secs(2),
            max_restarts: 3,
        };
        let p = Policy::from_health(&h);
        assert_eq!(p.interval, secs(30));
        assert_eq!(p.timeout, secs(5));
        assert_eq!(p.retries, 3);
        assert_eq!(p.start_period, secs(40));
        assert_eq!(p.on_failure, OnFailure::Rollback);
        assert_eq!(p.backoff.initial, secs(2));
        assert_eq!(p.backoff.max_restarts, 3);
        assert_eq!(p.backoff.max_delay, Backoff::default().max_delay);
        assert_eq!(p.backoff.window, Backoff::default().window);
    }
}
