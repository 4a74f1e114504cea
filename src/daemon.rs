//! `deploy-agent run`: the daemon's one loop.
//!
//! Apply at start, then wait on file changes, SIGHUP, health timers, unit state changes and
//! SIGTERM in a single `select!`. Bad specs are logged and change nothing;
//! a lost systemd connection is re-made with backoff and followed by an
//! apply. systemd hears READY, STATUS and WATCHDOG through sd_notify.

use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::agent::{Agent, AgentError, Applied};
use crate::config::Config;
use crate::history::Verdict;
use crate::journal::ids;
use crate::metrics::Metrics;
use crate::reconcile::apply::ApplyError;
use crate::reconcile::ActionKind;
use crate::reconcile::Extra;
use crate::supervise::{Command, Supervisor};
use crate::systemd::JobKind;
use crate::systemd::{Scope, Systemd};
use crate::watch::DirWatcher;

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    // Not under systemd: NOTIFY_SOCKET is unset and this is a no-op.
    let _ = sd_notify::notify(false, states);
}

fn status(line: &str) {
    notify(&[sd_notify::NotifyState::Status(line)]);
}

/// Connects to the manager, retrying with backoff (1 s doubling to 30 s)
/// until it answers or a termination signal arrives (`None`).
async fn connect_with_backoff(
    scope: Scope,
    term: &mut tokio::signal::unix::Signal,
) -> Option<Systemd> {
    let mut delay = Duration::from_secs(1);
    loop {
        match Systemd::connect(scope).await {
            Ok(sd) => return Some(sd),
            Err(e) => {
                tracing::error!(
                    message_id = ids::SYSTEMD_UNREACHABLE,
                    "cannot reach systemd: {e}; retrying in {delay:?}"
                );
                status(&format!("waiting for systemd: {e}"));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = term.recv() => return None,
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// The user agent's bus socket does not exist at all: no retry will make it
/// appear (a bus that is restarting keeps its socket), so say why at once
/// instead of retrying until the unit's 10-minute start timeout.
fn missing_user_bus(scope: Scope) -> Option<String> {
    if scope.resolve() == Scope::System {
        return None;
    }
    let address = scope.bus_address();
    let path = address.strip_prefix("unix:path=")?;
    let path = path.split(',').next().unwrap_or(path);
    (!std::path::Path::new(path).exists()).then(|| {
        format!(
            "the user's D-Bus socket {path} does not exist: the user manager has no session bus. \
             Install dbus-user-session (Debian, Ubuntu) or dbus-broker/dbus-daemon's user units, \
             then log in again or restart user@UID.service"
        )
    })
}

/// When to retry an apply that systemd cut short, and the delay used: 1 s
/// doubling to 30 s. Nothing else may come to finish it (a manager re-exec
/// or a reply lost on the bus leaves the connection up, so no reconnect
/// follows, and no file changes again).
fn next_retry(previous: Option<Duration>) -> (tokio::time::Instant, Duration) {
    let delay = previous.map_or(Duration::from_secs(1), |d| {
        (d * 2).min(Duration::from_secs(30))
    });
    tracing::warn!(
        message_id = ids::SYSTEMD_UNREACHABLE,
        "systemd cut the apply short; retrying in {delay:?}"
    );
    (tokio::time::Instant::now() + delay, delay)
}

/// The daemon's state between events.
struct Daemon {
    agent: Agent,
    sd: Systemd,
    scope: Scope,
    supervisor: Supervisor,
    /// ActiveState changes of the containers' units (PropertiesChanged).
    unit_events: Option<mpsc::UnboundedReceiver<(String, String)>>,
    active: BTreeMap<String, String>,
    /// Units that must not be started again when they stop (`restart = "no"`).
    stay_stopped: BTreeSet<String>,
    /// A unit stopped outside a change: when to apply (which starts it
    /// again), and the pacing of such applies (see [`DriftPacing`]).
    drift_at: Option<tokio::time::Instant>,
    drift: DriftPacing,
    last_line: String,
    metrics: Metrics,
}

/// How soon an apply follows a unit stopped outside a change: 1 s, then
/// twice as long for each such apply within 10 minutes of the last one, at
/// most 5 minutes, so a container that keeps dying is not started in a
/// tight loop; back to 1 s after 10 quiet minutes.
#[derive(Debug, Default)]
struct DriftPacing {
    delay: Option<Duration>,
    last: Option<Instant>,
}

impl DriftPacing {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(300);
    const QUIET: Duration = Duration::from_secs(600);

    fn next(&mut self, now: Instant) -> Duration {
        let recent = self
            .last
            .is_some_and(|t| now.duration_since(t) < Self::QUIET);
        let delay = match (self.delay, recent) {
            (Some(d), true) => (d * 2).min(Self::MAX),
            _ => Self::FIRST,
        };
        self.delay = Some(delay);
        self.last = Some(now);
        delay
    }
}

impl Daemon {
    /// One apply with its outcome in the journal and the STATUS line.
    /// True if systemd cut it short (the caller retries it).
    async fn apply(&mut self, origin: &str) -> bool {
        tracing::info!(trigger = origin, "checking the specs ({origin})");
        let started = Instant::now();
        match self.agent.apply(&self.sd, origin, Extra::default()).await {
            Ok(applied) => {
                self.metrics.applied(applied.report.ok(), started.elapsed());
                self.after_apply(applied).await;
                false
            }
            Err(e) => {
                self.metrics.applied(false, started.elapsed());
                self.write_metrics(true);
                let systemd = matches!(e, AgentError::Apply(ApplyError::Systemd(_)));
                self.last_line = match &e {
                    AgentError::Invalid(errs) => {
                        format!("specs invalid ({} error(s)); keeping what runs", errs.len())
                    }
                    AgentError::EmptySpecs { .. } => {
                        "no specs in the specs directory; keeping what runs".into()
                    }
                    AgentError::Apply(ApplyError::Systemd(err)) => {
                        format!("systemd unreachable: {err}")
                    }
                    other => format!(
                        "apply failed: {}",
                        other.to_string().lines().next().unwrap_or("")
                    ),
                };
                self.report();
                systemd
            }
        }
    }

    async fn after_apply(&mut self, mut applied: Applied) {
        // A pinned (rolled-back) container keeps the health check of the
        // version it runs (health checks live in the spec, not in the unit
        // file), not the one its spec now asks for.
        let pins = self.agent.pins.borrow().0.clone();
        for (file, pin) in &pins {
            let Some(name) = file.strip_suffix(".container") else {
                continue;
            };
            if let Some(c) = applied.set.containers.get_mut(name) {
                std::sync::Arc::make_mut(c).health = self.health_of(pin.generation, name);
            }
        }
        let r = &applied.report;
        let started: BTreeSet<String> = r
            .results
            .iter()
            .filter(|(a, o)| a.kind != ActionKind::Stop && o.ok())
            .map(|(a, _)| a.unit.clone())
            .collect();
        self.last_line = match (applied.generation, r.ok()) {
            (None, _) => String::new(),
            (Some(g), true) => format!("generation {g} applied"),
            (Some(g), false) => format!("generation {g}: {}", r.failures().join("; ")),
        };
        self.supervisor
            .update(&applied.set, &started, applied.generation, Instant::now());
        // Every container's unit: health checks follow starts and stops,
        // and a stop outside a change is drift.
        let units: Vec<String> = applied
            .set
            .containers
            .values()
            .map(|c| crate::spec::units::container(&c.name))
            .collect();
        self.stay_stopped = applied
            .set
            .containers
            .values()
            .filter(|c| c.restart == crate::spec::Restart::No)
            .map(|c| crate::spec::units::container(&c.name))
            .collect();
        self.active.clear();
        // The newest in the history, not only the daemon's own: with watch =
        // false a deployment engine's `apply` records them, and the daemon's
        // apply on reload changes nothing.
        let newest = self.agent.history().latest().ok().flatten();
        if let Some(g) = newest.map(|m| m.generation).or(applied.generation) {
            self.metrics.generation(g);
        }
        self.metrics.set_units(&units);
        self.write_metrics(true);
        self.unit_events = match self.sd.watch_active(&units).await {
            Ok(rx) => Some(rx),
            Err(e) => {
                tracing::warn!("cannot follow unit states: {e}");
                None
            }
        };
        self.report();
    }

    /// Rewrites the metrics file if configured and `news` or a unit's
    /// health changed; a failure is logged, never fatal.
    fn write_metrics(&mut self, news: bool) {
        let health = self.supervisor.take_health_changed();
        if !self.metrics.enabled() || !(news || health) {
            return;
        }
        self.metrics.set_health(self.supervisor.health_kinds());
        if let Err(e) = self.metrics.write() {
            tracing::warn!("{e}");
        }
    }

    /// STATUS= line: the health summary, and what the last apply said.
    fn report(&self) {
        let mut line = self.supervisor.summary();
        if !self.last_line.is_empty() {
            line = format!("{line}; {}", self.last_line);
        }
        status(&line);
    }

    async fn run_commands(&mut self, cmds: Vec<Command>) {
        for cmd in cmds {
            match cmd {
                Command::Restart { unit } => {
                    match self
                        .sd
                        .run_jobs(&[(JobKind::Restart, unit.clone())], self.agent.job_timeout)
                        .await
                    {
                        Ok(o) if o.iter().all(|o| o.ok()) => {}
                        Ok(o) => tracing::error!(
                            message_id = ids::UNIT_FAILED,
                            unit = %unit,
                            "restart after failed health checks: {}",
                            o.first().map(|o| o.describe()).unwrap_or_default()
                        ),
                        Err(e) => tracing::error!(unit = %unit, "cannot restart: {e}"),
                    }
                    self.supervisor.on_unit(&unit, true, Instant::now());
                }
                Command::Rollback { container, unit } => self.rollback(&container, &unit).await,
            }
        }
        self.write_metrics(false);
        self.report();
    }

    /// The health check `container` had in `generation`'s specs.
    fn health_of(&self, generation: u64, container: &str) -> Option<crate::spec::Health> {
        self.agent
            .history()
            .specs(generation)
            .ok()
            .and_then(|s| crate::spec::load_texts(&s).ok())
            .and_then(|s| s.containers.get(container).and_then(|c| c.health.clone()))
    }

    /// Puts `container` back on the newest earlier good generation's file
    /// (see [`Agent::roll_back`]), and follows it with that version's check.
    async fn rollback(&mut self, container: &str, unit: &str) {
        match self.agent.roll_back(&self.sd, container).await {
            Ok(Some((generation, applied))) => {
                self.metrics.rolled_back();
                let g = applied.generation;
                self.after_apply(applied).await;
                if let Some(g) = g {
                    self.last_line = format!(
                        "rolled back {container} to generation {generation} (now generation {g})"
                    );
                    self.report();
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(unit = %unit, "rollback of {container} failed: {e}"),
        }
    }

    fn on_unit_state(&mut self, unit: String, state: String) {
        // The first value of a property stream is the state at subscription
        // time, not a change: the supervisor already knows it from the apply.
        let Some(previous) = self.active.get(&unit) else {
            let news = self.metrics.unit_state(&unit, &state);
            self.write_metrics(news);
            self.active.insert(unit, state);
            return;
        };
        let was_active = previous == "active";
        let is_active = state == "active";
        if is_active != was_active && (is_active || state == "inactive" || state == "failed") {
            self.supervisor.on_unit(&unit, is_active, Instant::now());
        }
        let went_down = crate::drift::went_down(previous, &state);
        let news = self.metrics.unit_state(&unit, &state);
        self.write_metrics(news);
        if went_down && !self.stay_stopped.contains(&unit) && self.drift_at.is_none() {
            // The apply reads the states again: a unit back up by then
            // (a restart job, systemd's Restart=) is left alone.
            let delay = self.drift.next(Instant::now());
            tracing::info!(unit = %unit, "{unit} stopped ({state}); checking in {delay:?}");
            self.drift_at = Some(tokio::time::Instant::now() + delay);
        }
        self.active.insert(unit, state);
    }
}

async fn recv_unit(
    rx: &mut Option<mpsc::UnboundedReceiver<(String, String)>>,
) -> Option<(String, String)> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs the daemon until SIGTERM/SIGINT. Returns the exit code.
pub async fn run(cfg: Config) -> anyhow::Result<u8> {
    let scope = if cfg.system {
        Scope::System
    } else {
        Scope::User
    };
    let debounce = cfg.debounce;
    let specs_dir = cfg.specs_dir.clone();
    let agent = match Agent::new(cfg, Duration::from_secs(300)) {
        Ok(a) => a.remembering_renders(),
        Err(e) => {
            tracing::error!("{e}");
            return Ok(crate::commands::EXIT_INVALID);
        }
    };
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let watch = agent.cfg.watch;
    let mut watcher = match watch.then(|| DirWatcher::new(&[&specs_dir], debounce)) {
        // Editors' swap files and other names do not postpone an apply.
        Some(Ok(w)) => Some(w.only(crate::spec::is_spec_file_name)),
        Some(Err(e)) => {
            tracing::error!(
                "{e}; create the specs directory (see tmpfiles.d) or set agent.specs_dir"
            );
            return Ok(crate::commands::EXIT_FAILED);
        }
        None => {
            tracing::info!(
                "watch = false: applying at start, on SIGHUP and for units stopped outside a change only"
            );
            None
        }
    };
    // The watchdog pings from its own task on the same single-threaded
    // runtime: it keeps pinging while an apply waits minutes on unit jobs, and
    // stops if the runtime itself hangs, which is what WatchdogSec= is for.
    let mut watchdog_usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut watchdog_usec) {
        let every = Duration::from_micros(watchdog_usec.max(2)) / 2;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                notify(&[sd_notify::NotifyState::Watchdog]);
            }
        });
    }

    tracing::info!(
        specs = %specs_dir.display(),
        output = %agent.cfg.output_dir.display(),
        podman = %agent.podman,
        "deploy-agent starting"
    );
    if let Some(hint) = missing_user_bus(scope) {
        tracing::error!(message_id = ids::SYSTEMD_UNREACHABLE, "{hint}");
        return Ok(crate::commands::EXIT_FAILED);
    }
    let Some(sd) = connect_with_backoff(scope, &mut term).await else {
        return Ok(crate::commands::EXIT_OK);
    };
    agent.learn_systemd(&sd).await;
    let supervisor = Supervisor::new(&agent.cfg.state_dir);
    let generation = agent
        .history()
        .latest()
        .ok()
        .flatten()
        .map(|m| m.generation);
    let metrics = Metrics::new(agent.cfg.metrics_file.clone(), generation);
    let mut d = Daemon {
        agent,
        sd,
        scope,
        supervisor,
        unit_events: None,
        active: BTreeMap::new(),
        stay_stopped: BTreeSet::new(),
        drift_at: None,
        drift: DriftPacing::default(),
        last_line: String::new(),
        metrics,
    };
    // Input files (env files, mounted files, secret sources) live outside the
    // specs directory; watch their directories too.
    let mut inputs_watcher = input_watcher(&d, debounce, watch);
    let mut retry = d.apply("start").await.then(|| next_retry(None));
    // The rendered files: a hand edit, a removal or a lost mark is noticed
    // when it happens, not at the next trigger.
    let mut output_watcher = watch.then(|| output_watcher_for(&d, debounce)).flatten();
    notify(&[sd_notify::NotifyState::Ready]);

    loop {
        let due = d.supervisor.next_due().map(tokio::time::Instant::from_std);
        let reason = tokio::select! {
            paths = next_specs(&mut watcher) => {
                let Some(paths) = paths else { anyhow::bail!("the file watcher stopped") };
                if !paths.iter().any(|p| p == &specs_dir || crate::spec::is_spec_file_name(p)) {
                    continue;
                }
                tracing::info!(paths = paths.len(), "specs changed");
                "specs changed"
            }
            _ = next_output(&mut output_watcher) => {
                let drift = d.agent.output_drift();
                if drift.is_empty() {
                    continue; // the agent's own writes
                }
                tracing::warn!(
                    message_id = ids::OUTPUT_EDITED,
                    "rendered files changed outside the agent ({}): applying the specs again",
                    drift.join(", ")
                );
                "rendered files changed outside the agent"
            }
            paths = next_input(&mut inputs_watcher) => {
                tracing::info!(paths = paths.len(), "input files changed");
                "input files changed"
            }
            _ = hup.recv() => {
                // Fold a storm of SIGHUPs into one apply.
                while tokio::time::timeout(debounce, hup.recv()).await.is_ok() {}
                tracing::info!("SIGHUP: re-applying");
                "SIGHUP"
            }
            _ = async { tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)).await }, if due.is_some() => {
                let cmds = d.supervisor.tick(Instant::now());
                d.run_commands(cmds).await;
                continue;
            }
            (name, epoch, result) = d.supervisor.next_result() => {
                let cmds = d.supervisor.on_result(&name, epoch, result, Instant::now());
                // The history is read and written only when the verdict changes.
                if let Some(ok) = d.supervisor.verdict_change() {
                    if let Ok(Some(latest)) = d.agent.history().latest() {
                        let v = if ok { Verdict::Healthy } else { Verdict::Unhealthy };
                        let _ = d.agent.history().set_health(latest.generation, v);
                    }
                }
                d.run_commands(cmds).await;
                continue;
            }
            ev = recv_unit(&mut d.unit_events) => {
                match ev {
                    Some((unit, state)) => { d.on_unit_state(unit, state); d.report(); continue; }
                    None => {
                        d.unit_events = None;
                        if d.sd.is_connected().await { continue; }
                        "systemd connection lost"
                    }
                }
            }
            _ = d.sd.closed() => {
                tracing::warn!(message_id = ids::SYSTEMD_UNREACHABLE, "the connection to systemd's bus was closed");
                "systemd connection lost"
            }
            _ = async { tokio::time::sleep_until(retry.map_or_else(tokio::time::Instant::now, |r| r.0)).await }, if retry.is_some() => {
                "retry after a systemd error"
            }
            _ = async { tokio::time::sleep_until(d.drift_at.unwrap_or_else(tokio::time::Instant::now)).await }, if d.drift_at.is_some() => {
                d.drift_at = None;
                "a unit stopped outside a change"
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        notify(&[sd_notify::NotifyState::Reloading]);
        if !d.sd.is_connected().await {
            tracing::warn!(
                message_id = ids::SYSTEMD_UNREACHABLE,
                "lost the connection to systemd; reconnecting"
            );
            let Some(new) = connect_with_backoff(d.scope, &mut term).await else {
                break;
            };
            // A reconnect may follow a systemd upgrade (daemon-reexec).
            d.agent.learn_systemd(&new).await;
            d.sd = new;
        }
        retry = d
            .apply(reason)
            .await
            .then(|| next_retry(retry.map(|r| r.1)));
        inputs_watcher = input_watcher(&d, debounce, watch);
        if output_watcher.is_none() && watch {
            output_watcher = output_watcher_for(&d, debounce);
        }
        notify(&[sd_notify::NotifyState::Ready]);
    }
    notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping"),
    ]);
    d.supervisor.flush();
    tracing::info!("deploy-agent stopping; services keep running");
    Ok(crate::commands::EXIT_OK)
}

/// A watcher over the output directory's Quadlet files (none until the
/// directory exists).
fn output_watcher_for(d: &Daemon, debounce: Duration) -> Option<DirWatcher> {
    let dir = &d.agent.cfg.output_dir;
    if !dir.is_dir() {
        return None;
    }
    match DirWatcher::new(&[dir.as_path()], debounce) {
        Ok(w) => Some(w.only(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| crate::reconcile::unit_for_file(n).is_some())
        })),
        Err(e) => {
            tracing::warn!("cannot watch the rendered files: {e}");
            None
        }
    }
}

async fn next_output(w: &mut Option<DirWatcher>) {
    match w {
        Some(watcher) => {
            if watcher.next().await.is_none() {
                *w = None;
            }
        }
        None => std::future::pending().await,
    }
}

/// The next change in the specs directory (never, with `watch = false`).
async fn next_specs(w: &mut Option<DirWatcher>) -> Option<BTreeSet<std::path::PathBuf>> {
    match w {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

/// A watcher over the directories of the containers' input files (none if
/// there are none, or with `watch = false`).
fn input_watcher(
    d: &Daemon,
    debounce: Duration,
    watch: bool,
) -> Option<(DirWatcher, BTreeSet<std::path::PathBuf>)> {
    if !watch {
        return None;
    }
    let set = d.agent.load_specs().ok()?;
    let files: BTreeSet<std::path::PathBuf> = set
        .containers
        .values()
        .flat_map(|c| crate::inputs::files_of(c))
        .collect();
    let dirs = crate::inputs::watch_dirs(&set);
    let dirs: Vec<&std::path::Path> = dirs
        .iter()
        .map(|p| p.as_path())
        .filter(|p| p.is_dir())
        .collect();
    if dirs.is_empty() {
        return None;
    }
    match DirWatcher::new(&dirs, debounce) {
        Ok(w) => {
            let named = files.clone();
            Some((w.only(move |p| named.contains(p)), files))
        }
        Err(e) => {
            tracing::warn!("cannot watch input files: {e}");
            None
        }
    }
}

async fn next_input(
    w: &mut Option<(DirWatcher, BTreeSet<std::path::PathBuf>)>,
) -> BTreeSet<std::path::PathBuf> {
    let Some((watcher, files)) = w else {
        return std::future::pending().await;
    };
    loop {
        match watcher.next().await {
            Some(paths) => {
                let hit: BTreeSet<_> = paths.into_iter().filter(|p| files.contains(p)).collect();
                if !hit.is_empty() {
                    return hit;
                }
            }
            None => return std::future::pending().await,
        }
    }
}
