//! Supervision: the daemon's per-unit health machines, the probes they ask
//! for, their transitions as structured journal entries, and `health.json`
//! (what `status` shows). It decides; the daemon loop carries out the
//! restarts and rollbacks it returns, since it owns systemd and the history.
//!
//! Its cost per probe result is O(1) in the number of services unless
//! something changed: `health.json` is rewritten at once on a transition
//! (or a restart), and a result that changes nothing but the unit's last
//! check is written at most [`PERSIST_DEBOUNCE`] later, together with every
//! other such result (see [`Supervisor::next_due`]). The generation's
//! verdict is handed out only when it changes ([`Supervisor::verdict_change`]).
//! Which machines are due, and how many are healthy or failed, is kept in
//! an [`Index`] that every change to a machine updates
//! ([`Supervisor::drive`]), so finding the due ones and the verdict costs
//! O(log services), not a scan of every unit per result.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::health::{
    probe_container, Action, HealthMachine, HealthState, Output, Policy, ProbeResult, StartKind,
    Transition,
};
use crate::spec::{units, HealthCheck, SpecSet};

/// How long a probe result that changed no state may wait before
/// `health.json` shows it (its last check time and result).
pub const PERSIST_DEBOUNCE: std::time::Duration = std::time::Duration::from_secs(5);

/// What the daemon must do for the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Restart this unit (retries spent, backoff waited).
    Restart { unit: String },
    /// Roll this container back to its previous good generation.
    Rollback { container: String, unit: String },
}

struct Watched {
    unit: String,
    spec_file: PathBuf,
    check: HealthCheck,
    machine: HealthMachine,
    /// Bumped on each (re)configuration; late probe results of an older one are dropped.
    epoch: u64,
    last: Option<(SystemTime, ProbeResult)>,
    restarts: u32,
    /// The machine as [`Index`] holds it.
    indexed: Indexed,
}

/// What [`Index`] knows of one machine: when it is due, and its state.
type Indexed = (Option<Instant>, HealthState);

fn indexed(m: &HealthMachine) -> Indexed {
    (m.due_at(), m.state())
}

/// The machines by due time, and the counts the verdict needs.
#[derive(Debug, Default, PartialEq)]
struct Index {
    due: BTreeSet<(Instant, String)>,
    healthy: usize,
    failed: usize,
}

impl Index {
    fn add(&mut self, name: &str, (due, state): Indexed) {
        if let Some(t) = due {
            self.due.insert((t, name.to_string()));
        }
        self.healthy += usize::from(state == HealthState::Healthy);
        self.failed += usize::from(state == HealthState::Failed);
    }

    fn remove(&mut self, name: &str, (due, state): Indexed) {
        if let Some(t) = due {
            self.due.remove(&(t, name.to_string()));
        }
        self.healthy -= usize::from(state == HealthState::Healthy);
        self.failed -= usize::from(state == HealthState::Failed);
    }

    /// Built from scratch: what the kept index must equal.
    #[cfg(debug_assertions)]
    fn of(units: &BTreeMap<String, Watched>) -> Index {
        let mut index = Index::default();
        for (name, w) in units {
            index.add(name, indexed(&w.machine));
        }
        index
    }
}

/// One row of `health.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitHealth {
    pub state: String,
    pub check: String,
    pub last_check: Option<u64>,
    pub last_result: Option<String>,
    pub restarts: u32,
    pub generation: Option<u64>,
}

pub struct Supervisor {
    units: BTreeMap<String, Watched>,
    index: Index,
    /// Containers without a health check: unit name, for the summary.
    unchecked: BTreeSet<String>,
    tx: mpsc::UnboundedSender<(String, u64, ProbeResult)>,
    rx: mpsc::UnboundedReceiver<(String, u64, ProbeResult)>,
    state_dir: PathBuf,
    generation: Option<u64>,
    next_epoch: u64,
    /// A transition was logged since [`Supervisor::take_health_changed`].
    health_changed: bool,
    /// When `health.json` must be rewritten for results not yet in it.
    flush_at: Option<Instant>,
    /// The verdict last handed out by [`Supervisor::verdict_change`].
    reported: Option<bool>,
}

fn state_name(s: HealthState) -> String {
    match s {
        HealthState::Stopped => "stopped".into(),
        HealthState::Starting => "starting".into(),
        HealthState::Healthy => "healthy".into(),
        HealthState::Unhealthy {
            consecutive_failures,
        } => format!("unhealthy ({consecutive_failures} failed)"),
        HealthState::Failed => "failed".into(),
    }
}

/// The state without its count: "unhealthy (2 failed)" is "unhealthy".
fn kind_name(s: HealthState) -> &'static str {
    match s {
        HealthState::Stopped => "stopped",
        HealthState::Starting => "starting",
        HealthState::Healthy => "healthy",
        HealthState::Unhealthy { .. } => "unhealthy",
        HealthState::Failed => "failed",
    }
}

fn check_name(c: &HealthCheck) -> String {
    match c {
        HealthCheck::Cmd(argv) => format!("cmd {}", argv.join(" ")),
        HealthCheck::Http { url, .. } => format!("http {url}"),
        HealthCheck::Tcp { addr } => format!("tcp {addr}"),
    }
}

pub fn health_path(state_dir: &Path) -> PathBuf {
    state_dir.join("health.json")
}

/// `health.json` as the daemon last wrote it (unit -> health).
pub fn load(state_dir: &Path) -> BTreeMap<String, UnitHealth> {
    std::fs::read_to_string(health_path(state_dir))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

impl Supervisor {
    pub fn new(state_dir: &Path) -> Supervisor {
        let (tx, rx) = mpsc::unbounded_channel();
        Supervisor {
            units: BTreeMap::new(),
            index: Index::default(),
            unchecked: BTreeSet::new(),
            tx,
            rx,
            state_dir: state_dir.to_path_buf(),
            generation: None,
            next_epoch: 1,
            health_changed: false,
            flush_at: None,
            reported: None,
        }
    }

    /// After an apply: follow the containers of `set`. Units in `started`
    /// were (re)started by it and begin a new generation; unchanged units
    /// keep their machines; others are dropped.
    pub fn update(
        &mut self,
        set: &SpecSet,
        started: &BTreeSet<String>,
        generation: Option<u64>,
        now: Instant,
    ) {
        if generation.is_some() {
            self.generation = generation;
            // A new generation has no verdict yet.
            self.reported = None;
        }
        self.unchecked = set
            .containers
            .values()
            .filter(|c| c.health.is_none())
            .map(|c| units::container(&c.name))
            .collect();
        let wanted: BTreeSet<&String> = set
            .containers
            .values()
            .filter(|c| c.health.is_some())
            .map(|c| &c.name)
            .collect();
        let gone: Vec<String> = (self.units.keys())
            .filter(|name| !wanted.contains(name))
            .cloned()
            .collect();
        for name in gone {
            self.forget(&name);
        }
        for c in set.containers.values() {
            let Some(h) = &c.health else { continue };
            let unit = units::container(&c.name);
            let policy = Policy::from_health(h);
            let same = self
                .units
                .get(&c.name)
                .is_some_and(|w| w.check == h.check && *w.machine.policy() == policy);
            if same && !started.contains(&unit) {
                continue;
            }
            let mut machine = HealthMachine::new(policy);
            let epoch = self.next_epoch;
            self.next_epoch += 1;
            let out = machine.on_started(now, StartKind::NewGeneration);
            let w = Watched {
                unit: unit.clone(),
                spec_file: c.source.clone(),
                check: h.check.clone(),
                indexed: indexed(&machine),
                machine,
                epoch,
                last: None,
                restarts: 0,
            };
            self.forget(&c.name);
            self.index.add(&c.name, w.indexed);
            self.units.insert(c.name.clone(), w);
            self.log(&c.name, &out.transitions);
        }
        self.persist();
        self.check_index();
    }

    /// Stops following `name`.
    fn forget(&mut self, name: &str) {
        if let Some(w) = self.units.remove(name) {
            self.index.remove(name, w.indexed);
        }
    }

    /// Runs `event` on `name`'s machine and brings the index up to date:
    /// the one way a followed machine changes.
    fn drive(
        &mut self,
        name: &str,
        event: impl FnOnce(&mut HealthMachine) -> Output,
    ) -> Option<Output> {
        let w = self.units.get_mut(name)?;
        let out = event(&mut w.machine);
        let now = indexed(&w.machine);
        if now != w.indexed {
            self.index.remove(name, w.indexed);
            self.index.add(name, now);
            w.indexed = now;
        }
        Some(out)
    }

    /// In debug builds (the tests), that the kept index equals one built
    /// from scratch.
    fn check_index(&self) {
        #[cfg(debug_assertions)]
        assert_eq!(self.index, Index::of(&self.units), "supervisor index");
    }

    /// The earliest moment a machine wants to be ticked, or `health.json`
    /// to be brought up to date.
    /// Machines that wait for an event (a probe under way, a stopped
    /// unit) are not due.
    pub fn next_due(&self) -> Option<Instant> {
        let machines = self.index.due.first().map(|(t, _)| *t);
        match (machines, self.flush_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Writes `health.json` now if results wait for it (at shutdown).
    pub fn flush(&mut self) {
        if self.flush_at.is_some() {
            self.persist();
        }
    }

    /// Ticks every due machine: starts probes, returns restarts/rollbacks;
    /// writes `health.json` when results have waited long enough.
    pub fn tick(&mut self, now: Instant) -> Vec<Command> {
        if self.flush_at.is_some_and(|t| t <= now) {
            self.persist();
        }
        let due: Vec<String> = (self.index.due.iter())
            .take_while(|(t, _)| *t <= now)
            .map(|(_, n)| n.clone())
            .collect();
        let mut cmds = Vec::new();
        let mut changed = false;
        for name in due {
            let Some(out) = self.drive(&name, |m| m.tick(now)) else {
                continue;
            };
            changed |= !out.transitions.is_empty();
            cmds.extend(self.act(&name, out.actions));
            self.log(&name, &out.transitions);
        }
        if changed {
            self.persist();
        }
        self.check_index();
        cmds
    }

    fn act(&mut self, name: &str, actions: Vec<Action>) -> Vec<Command> {
        let Some(w) = self.units.get_mut(name) else {
            return vec![];
        };
        let mut cmds = Vec::new();
        for a in actions {
            match a {
                Action::Probe => {
                    let tx = self.tx.clone();
                    let check = w.check.clone();
                    let timeout = w.machine.policy().timeout;
                    let (name, epoch) = (name.to_string(), w.epoch);
                    tokio::spawn(async move {
                        let r = probe_container(&name, &check, timeout).await;
                        let _ = tx.send((name, epoch, r));
                    });
                }
                Action::Restart => {
                    w.restarts += 1;
                    cmds.push(Command::Restart {
                        unit: w.unit.clone(),
                    });
                }
                Action::Rollback => cmds.push(Command::Rollback {
                    container: name.to_string(),
                    unit: w.unit.clone(),
                }),
            }
        }
        cmds
    }

    /// Waits for the next probe result.
    pub async fn next_result(&mut self) -> (String, u64, ProbeResult) {
        // The supervisor holds a sender itself, so this never ends.
        self.rx.recv().await.expect("the supervisor keeps a sender")
    }

    /// Feeds a probe result to its machine.
    pub fn on_result(
        &mut self,
        name: &str,
        epoch: u64,
        result: ProbeResult,
        now: Instant,
    ) -> Vec<Command> {
        let Some(w) = self.units.get_mut(name) else {
            return vec![];
        };
        if w.epoch != epoch {
            return vec![];
        }
        w.last = Some((SystemTime::now(), result.clone()));
        let out = self
            .drive(name, |m| m.on_probe(&result, now))
            .unwrap_or_default();
        let cmds = self.act(name, out.actions);
        self.log(name, &out.transitions);
        if !out.transitions.is_empty() || !cmds.is_empty() {
            self.persist();
        } else if self.flush_at.is_none() {
            self.flush_at = Some(now + PERSIST_DEBOUNCE);
        }
        self.check_index();
        cmds
    }

    /// The generation's verdict (see [`verdict`](Self::verdict)) when it
    /// differs from the one this last returned since the generation began:
    /// what the history must be told, and only then.
    pub fn verdict_change(&mut self) -> Option<bool> {
        let v = self.verdict()?;
        if self.reported == Some(v) {
            return None;
        }
        self.reported = Some(v);
        Some(v)
    }

    /// A unit was restarted by the agent (after a `Restart` command) or was
    /// seen (re)starting or stopping through systemd's signals.
    pub fn on_unit(&mut self, unit: &str, active: bool, now: Instant) {
        let Some((name, w)) = self.units.iter().find(|(_, w)| w.unit == unit) else {
            return;
        };
        if active && w.machine.state() == HealthState::Starting {
            // Already (re)started: the agent's own restart and systemd's signal for it.
            return;
        }
        let name = name.clone();
        let out = self.drive(&name, |m| match active {
            true => m.on_started(now, StartKind::Restart),
            false => m.on_stopped(now),
        });
        self.log(&name, &out.unwrap_or_default().transitions);
        self.persist();
        self.check_index();
    }

    /// For the generation's verdict: healthy when every checked unit is, unhealthy when one failed.
    pub fn verdict(&self) -> Option<bool> {
        if self.index.failed > 0 {
            return Some(false);
        }
        if !self.units.is_empty() && self.index.healthy == self.units.len() {
            return Some(true);
        }
        None
    }

    /// Each checked unit's health state, by name (see `metrics::HEALTH_STATES`).
    pub fn health_kinds(&self) -> BTreeMap<String, &'static str> {
        self.units
            .values()
            .map(|w| (w.unit.clone(), kind_name(w.machine.state())))
            .collect()
    }

    /// "6 services: 5 healthy, 1 starting".
    pub fn summary(&self) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for w in self.units.values() {
            *counts.entry(kind_name(w.machine.state())).or_default() += 1;
        }
        let total = self.units.len() + self.unchecked.len();
        let noun = if total == 1 { "service" } else { "services" };
        let mut parts: Vec<String> = ["healthy", "starting", "unhealthy", "failed", "stopped"]
            .iter()
            .filter_map(|k| counts.get(k).map(|n| format!("{n} {k}")))
            .collect();
        if !self.unchecked.is_empty() {
            parts.push(format!("{} without health check", self.unchecked.len()));
        }
        if parts.is_empty() {
            format!("{total} {noun}")
        } else {
            format!("{total} {noun}: {}", parts.join(", "))
        }
    }

    /// Whether a unit's health changed since the last call (the daemon
    /// rewrites the metrics then, not on every probe).
    pub fn take_health_changed(&mut self) -> bool {
        std::mem::take(&mut self.health_changed)
    }

    fn log(&mut self, name: &str, transitions: &[Transition]) {
        self.health_changed |= !transitions.is_empty();
        let Some(w) = self.units.get(name) else {
            return;
        };
        for t in transitions {
            let generation = self.generation.unwrap_or(0);
            let check = check_name(&w.check);
            let msg = format!(
                "{}: {} -> {}: {}",
                w.unit,
                state_name(t.from),
                state_name(t.to),
                t.detail
            );
            macro_rules! ev {
                ($lvl:ident) => {
                    tracing::$lvl!(
                        message_id = t.event.message_id(),
                        unit = %w.unit,
                        spec_file = %w.spec_file.display(),
                        generation,
                        check = %check,
                        result = %t.detail,
                        health_event = t.event.name(),
                        health_state = %state_name(t.to),
                        "{msg}"
                    )
                };
            }
            match t.event.priority() {
                0..=3 => ev!(error),
                4 => ev!(warn),
                _ => ev!(info),
            }
        }
    }

    fn persist(&mut self) {
        self.flush_at = None;
        let rows: BTreeMap<String, UnitHealth> = self
            .units
            .values()
            .map(|w| {
                (
                    w.unit.clone(),
                    UnitHealth {
                        state: state_name(w.machine.state()),
                        check: check_name(&w.check),
                        last_check: w
                            .last
                            .as_ref()
                            .and_then(|(t, _)| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                            .map(|d| d.as_secs()),
                        last_result: w.last.as_ref().map(|(_, r)| r.detail.clone()),
                        restarts: w.restarts,
                        generation: self.generation,
                    },
                )
            })
            .collect();
        let path = health_path(&self.state_dir);
        let tmp = self.state_dir.join(".health.json.tmp");
        let json = serde_json::to_vec_pretty(&rows).expect("health serializes");
        if std::fs::create_dir_all(&self.state_dir).is_ok() && std::fs::write(&tmp, json).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A runtime for the probes (the test enters it), a state directory
    /// and a supervisor writing there.
    fn supervisor() -> (tokio::runtime::Runtime, tempfile::TempDir, Supervisor) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let d = tempfile::tempdir().unwrap();
        let s = Supervisor::new(d.path());
        (rt, d, s)
    }

    fn set(text: &str) -> SpecSet {
        crate::spec::load_texts(&[(PathBuf::from("a.toml"), text.into())]).unwrap()
    }

    #[tokio::test]
    async fn follows_checked_containers_and_summarises() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Supervisor::new(d.path());
        let spec = set("[container.a]\nimage = \"x\"\n[container.a.health]\ntcp = \"127.0.0.1:1\"\ninterval = \"1s\"\ntimeout = \"1s\"\nretries = 1\non_failure = \"none\"\n[container.b]\nimage = \"x\"\n");
        let t0 = Instant::now();
        s.update(
            &spec,
            &BTreeSet::from(["a.service".to_string()]),
            Some(7),
            t0,
        );
        assert_eq!(
            s.summary(),
            "2 services: 1 starting, 1 without health check"
        );
        let due = s.next_due().unwrap();
        assert!(due > t0, "first probe one interval after the start");
        assert!(s.tick(due).is_empty());
        let (name, epoch, r) = s.next_result().await;
        assert_eq!(name, "a");
        assert!(!r.ok, "nothing listens on port 1");
        s.on_result(&name, epoch, r, due);
        assert_eq!(s.summary(), "2 services: 1 failed, 1 without health check");
        assert_eq!(s.verdict(), Some(false));
        let h = load(d.path());
        assert_eq!(h["a.service"].state, "failed");
        assert_eq!(h["a.service"].generation, Some(7));
        assert!(h["a.service"]
            .last_result
            .as_deref()
            .unwrap()
            .contains("refused"));
    }

    /// A healthy unit's passing probes change nothing: `health.json` is
    /// not rewritten for each, but within [`PERSIST_DEBOUNCE`] (the
    /// daemon ticks at `next_due`), and the verdict is handed out once.
    #[test]
    fn results_that_change_nothing_are_written_late_and_once() {
        let (rt, d, mut s) = supervisor();
        let _g = rt.enter();
        let spec = set("[container.a]\nimage = \"x\"\n[container.a.health]\ntcp = \"127.0.0.1:1\"\ninterval = \"1h\"\nretries = 2\non_failure = \"none\"\n");
        let t0 = Instant::now();
        s.update(&spec, &BTreeSet::from(["a.service".into()]), Some(1), t0);
        let epoch = s.units["a"].epoch;
        let result = |ok: bool, detail: &str| ProbeResult {
            ok,
            detail: detail.into(),
            elapsed: Duration::ZERO,
        };
        let t1 = t0 + Duration::from_secs(3600);
        s.tick(t1); // asks for a probe; its result is fed by hand
        s.on_result("a", epoch, result(true, "first"), t1);
        assert_eq!(
            load(d.path())["a.service"].state,
            "healthy",
            "a transition: at once"
        );
        assert_eq!(s.verdict_change(), Some(true));
        assert_eq!(
            s.verdict_change(),
            None,
            "the same verdict is not handed out again"
        );

        let t2 = t1 + Duration::from_secs(3600);
        s.tick(t2);
        s.on_result("a", epoch, result(true, "second"), t2);
        let written = load(d.path())["a.service"].clone();
        assert_eq!(
            written.last_result.as_deref(),
            Some("first"),
            "not rewritten"
        );
        assert_eq!(s.verdict_change(), None);
        let due = s.next_due().unwrap();
        assert!(
            due <= t2 + PERSIST_DEBOUNCE,
            "the flush is due soon: {due:?}"
        );
        s.tick(due);
        assert_eq!(
            load(d.path())["a.service"].last_result.as_deref(),
            Some("second")
        );

        // A failure is a transition (healthy -> unhealthy): written at once;
        // the verdict is unchanged until the machine fails.
        let t3 = t2 + Duration::from_secs(3600);
        s.tick(t3);
        s.on_result("a", epoch, result(false, "third"), t3);
        assert_eq!(load(d.path())["a.service"].state, "unhealthy (1 failed)");
        assert_eq!(s.verdict_change(), None);
        // A new generation's verdict is handed out again.
        s.update(&spec, &BTreeSet::new(), Some(2), t3);
        let t4 = t3 + Duration::from_secs(3600);
        s.tick(t4);
        s.on_result("a", epoch, result(true, "fourth"), t4);
        assert_eq!(s.verdict_change(), Some(true));
        let t5 = t4 + Duration::from_secs(3600);
        s.tick(t5);
        s.on_result("a", epoch, result(true, "fifth"), t5);
        s.flush();
        assert_eq!(
            load(d.path())["a.service"].last_result.as_deref(),
            Some("fifth")
        );
    }

    #[test]
    fn unchanged_units_keep_their_machine_and_stale_results_are_dropped() {
        let (rt, _d, mut s) = supervisor();
        let _g = rt.enter();
        let spec =
            set("[container.a]\nimage = \"x\"\n[container.a.health]\ntcp = \"127.0.0.1:1\"\n");
        let t0 = Instant::now();
        s.update(&spec, &BTreeSet::new(), Some(1), t0);
        let epoch = s.units["a"].epoch;
        s.update(&spec, &BTreeSet::new(), Some(2), t0);
        assert_eq!(
            s.units["a"].epoch, epoch,
            "same check, not restarted: same machine"
        );
        s.update(
            &spec,
            &BTreeSet::from(["a.service".to_string()]),
            Some(3),
            t0,
        );
        assert_ne!(
            s.units["a"].epoch, epoch,
            "restarted by the apply: new machine"
        );
        let ok = ProbeResult {
            ok: true,
            detail: "x".into(),
            elapsed: Duration::ZERO,
        };
        assert!(s.on_result("a", epoch, ok, t0).is_empty());
        assert_eq!(
            s.units["a"].machine.state(),
            HealthState::Starting,
            "stale result ignored"
        );
    }

    /// The index answers what a scan of every machine would, through
    /// probes, stops and starts seen from systemd, and units dropped and
    /// replaced by an apply (each step also checks the whole index in
    /// debug builds).
    #[test]
    fn due_times_and_verdict_follow_every_machine_change() {
        let (rt, _d, mut s) = supervisor();
        let _g = rt.enter();
        let check = "[container.NAME.health]\ntcp = \"127.0.0.1:1\"\ninterval = \"10s\"\nretries = 1\non_failure = \"none\"\n";
        let two = ["a", "b"].map(|n| {
            format!(
                "[container.{n}]\nimage = \"x\"\n{}",
                check.replace("NAME", n)
            )
        });
        let spec = set(&two.join(""));
        let started = BTreeSet::from(["a.service".to_string(), "b.service".to_string()]);
        let t0 = Instant::now();
        s.update(&spec, &started, Some(1), t0);
        let t1 = s.next_due().unwrap();
        assert!(s.tick(t1).is_empty());
        assert_eq!(s.next_due(), None, "both probing: only results move them");
        let ok = |detail: &str| ProbeResult {
            ok: true,
            detail: detail.into(),
            elapsed: Duration::ZERO,
        };
        let epoch = |s: &Supervisor, n: &str| s.units[n].epoch;
        s.on_result("a", epoch(&s, "a"), ok("a"), t1);
        assert_eq!(s.verdict(), None, "b still starting");
        s.on_result("b", epoch(&s, "b"), ok("b"), t1);
        assert_eq!(s.verdict(), Some(true));
        assert_eq!(
            s.next_due(),
            Some(t1 + Duration::from_secs(10)),
            "both probed at t1"
        );

        s.on_unit("b.service", false, t1);
        assert_eq!(s.verdict(), None, "b stopped outside a change");
        s.on_unit("b.service", true, t1);
        assert_eq!(s.units["b"].machine.state(), HealthState::Starting);

        // An apply drops b and restarts a: a new machine, starting again.
        let only_a = set(&two[0]);
        s.update(&only_a, &BTreeSet::from(["a.service".into()]), Some(2), t1);
        assert_eq!(s.units.len(), 1);
        assert_eq!(s.verdict(), None);
        let t2 = s.units["a"].machine.due_at().unwrap();
        assert!(s.tick(t2).is_empty());
        let fail = ProbeResult {
            ok: false,
            detail: "refused".into(),
            elapsed: Duration::ZERO,
        };
        s.on_result("a", epoch(&s, "a"), fail, t2 + Duration::from_secs(60));
        assert_eq!(s.verdict(), Some(false));
        assert_eq!(s.index, Index::of(&s.units));
    }
}
