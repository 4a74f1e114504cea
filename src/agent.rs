//! One apply, end to end: load specs -> render -> plan -> execute -> record.
//!
//! Shared by the one-shot commands and the daemon, so `apply` and `run`
//! behave the same. Logs each step to the journal with its MESSAGE_ID.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::budget::Host;
use crate::config::Config;
use crate::history::{History, HistoryError, Outcome};
use crate::journal::ids;
use crate::pins::Pins;
use crate::reconcile::apply::{self, ApplyError, Report, Target};
use crate::reconcile::stamp;
use crate::reconcile::{Extra, Plan};
use crate::render::{PodmanVersion, RenderError, RenderOptions, SystemdVersion};
use crate::spec::{SpecErrors, SpecSet};
use crate::systemd::Systemd;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the specs are invalid; nothing was changed:\n{0}")]
    Invalid(SpecErrors),
    #[error("cannot render the specs; nothing was changed: {0}")]
    Render(#[from] RenderError),
    /// A render error with where the spec wrote what caused it.
    #[error("{}:{line}:{col}: {error}; nothing was changed", file.display())]
    RenderAt {
        file: PathBuf,
        line: usize,
        col: usize,
        error: Box<RenderError>,
    },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("the services do not fit the host; nothing was changed:\n{}", .0.join("\n"))]
    Budget(Vec<String>),
    #[error(transparent)]
    Inputs(#[from] crate::inputs::InputError),
    #[error(transparent)]
    Pins(#[from] crate::pins::PinsError),
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error(
        "the specs directory {dir} has no specs, but {n} service file(s) the agent made are in place ({files}); refusing to remove every service (a failed mount or a half-done checkout looks the same); nothing was changed. To remove them: deploy-agent apply --allow-empty, or allow_empty = true in agent.toml"
    )]
    EmptySpecs {
        dir: PathBuf,
        n: usize,
        files: String,
    },
}

impl AgentError {
    /// Exit code per the contract: 2 for what the operator wrote, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Invalid(_)
            | AgentError::Render(_)
            | AgentError::RenderAt { .. }
            | AgentError::Budget(_)
            | AgentError::EmptySpecs { .. } => 2,
            AgentError::Inputs(crate::inputs::InputError::SecretPermissions { .. }) => 2,
            AgentError::Apply(ApplyError::QuadletRejected(_)) => 2,
            AgentError::Apply(ApplyError::Conflicts(_)) => 2,
            _ => 1,
        }
    }
}

/// The result of one successful apply run.
#[derive(Debug)]
pub struct Applied {
    pub report: Report,
    pub generation: Option<u64>,
    pub elapsed: Duration,
    /// The specs this apply worked from.
    pub set: SpecSet,
}

pub struct Agent {
    pub cfg: Config,
    pub podman: PodmanVersion,
    /// The systemd to render for: `systemd_version` from agent.toml, else
    /// the manager's once a command reached it ([`Agent::learn_systemd`]);
    /// `None`: unknown, not checked.
    pub systemd: std::cell::Cell<Option<SystemdVersion>>,
    pub job_timeout: Duration,
    /// The rollback pins in force: those that held at the last render, or
    /// those a rollback saved (see [`crate::pins`]); and whether they differ
    /// from the saved ones (an apply saves them).
    pub pins: std::cell::RefCell<(Pins, bool)>,
    /// Spec files parsed by earlier loads (the daemon loads on every change).
    specs: std::cell::RefCell<crate::spec::SpecCache>,
    /// Units rendered by earlier renders (see `render/memo.rs`): kept by
    /// the daemon ([`Agent::remembering_renders`]); a one-shot command
    /// would only pay for copies it never reuses.
    renders: Option<std::cell::RefCell<crate::render::Memo>>,
    /// Output files read by earlier plans (see `output::scan_cached`).
    scans: std::cell::RefCell<crate::output::ScanCache>,
}

impl Agent {
    /// The Podman version to render for: `podman_version` from agent.toml,
    /// else the installed one (cached per binary, see
    /// [`crate::podman_cache`]), else the newest this agent knows (with a warning).
    pub fn new(cfg: Config, job_timeout: Duration) -> Result<Agent, RenderError> {
        let podman = match &cfg.podman_version {
            Some(v) => PodmanVersion::parse(v)?,
            None => match crate::podman_cache::detect(&cfg.state_dir) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(
                        "cannot detect the Podman version ({e}); rendering for Podman {}",
                        PodmanVersion::NEWEST
                    );
                    PodmanVersion::NEWEST
                }
            },
        };
        Ok(Agent {
            systemd: std::cell::Cell::new(cfg.systemd_version),
            cfg,
            podman,
            job_timeout,
            pins: Default::default(),
            specs: Default::default(),
            renders: None,
            scans: Default::default(),
        })
    }

    /// This agent keeps what it rendered, to render again only the units
    /// whose inputs changed (for the daemon, which renders on every change).
    pub fn remembering_renders(mut self) -> Agent {
        self.renders = Some(Default::default());
        self
    }

    /// Takes the target systemd from the manager `sd` talks to, unless
    /// agent.toml pins one: one property read, at each connection.
    pub async fn learn_systemd(&self, sd: &Systemd) {
        if self.cfg.systemd_version.is_some() {
            return;
        }
        match sd.version().await.map(|v| SystemdVersion::parse(&v)) {
            Ok(Ok(v)) => self.systemd.set(Some(v)),
            Ok(Err(e)) => tracing::warn!("{e}; systemd keys are not checked"),
            Err(e) => tracing::warn!("{e}; systemd keys are not checked"),
        }
    }

    pub fn load_specs(&self) -> Result<SpecSet, AgentError> {
        let dir = &self.cfg.specs_dir;
        let trust = self.cfg.trust().map_err(|e| {
            AgentError::Invalid(crate::spec::SpecErrors(vec![
                crate::spec::Loc::file(dir).error("", e, None)
            ]))
        })?;
        let set = crate::spec::load_dir_cached(dir, &trust, &mut self.specs.borrow_mut())
            .map_err(AgentError::Invalid)?;
        // A FIFO, device or oversized env file, secret source or ca_file is
        // a spec error, found before anything is applied.
        crate::inputs::check(&set).map_err(AgentError::Invalid)?;
        Ok(set)
    }

    /// The files the specs render, rollback pins not applied.
    pub fn render_specs(&self, set: &SpecSet) -> Result<BTreeMap<String, String>, AgentError> {
        let opts = RenderOptions {
            podman: self.podman,
            systemd: self.systemd.get(),
            agent_exe: agent_exe(),
            ..Default::default()
        };
        let r = match &self.renders {
            Some(memo) => crate::render::render_memo(set, &opts, &mut memo.borrow_mut()),
            None => crate::render::render(set, &opts),
        }
        .map_err(|e| located(set, e))?;
        Ok(r.into_iter().map(|(k, v)| (k, v.contents)).collect())
    }

    /// The files to apply: the specs' rendering with the saved rollback
    /// pins applied (a rolled-back container stays on its good version
    /// while the specs still ask for the one rolled back from).
    pub fn render(&self, set: &SpecSet) -> Result<BTreeMap<String, String>, AgentError> {
        let mut desired = self.render_specs(set)?;
        let saved = crate::pins::load(&self.cfg.state_dir);
        let kept = crate::pins::apply(saved.clone(), &mut desired);
        for (file, pin) in &kept {
            tracing::info!(
                unit = %crate::reconcile::unit_for_file(file).unwrap_or_default(),
                "{file}: keeping the version of generation {} (rolled back to; change the spec to move on)",
                pin.generation
            );
        }
        let changed = kept != saved;
        *self.pins.borrow_mut() = (kept, changed);
        Ok(desired)
    }

    /// Saves the pins of the last render if they changed (a spec change
    /// lifted one): called once an apply has put them in force.
    fn save_pins(&self) -> Result<(), AgentError> {
        let mut pins = self.pins.borrow_mut();
        if pins.1 {
            crate::pins::save(&self.cfg.state_dir, &pins.0)?;
            pins.1 = false;
        }
        Ok(())
    }

    pub fn target(&self) -> Target<'_> {
        Target {
            output_dir: &self.cfg.output_dir,
            state_dir: &self.cfg.state_dir,
            user: !self.cfg.system,
            job_timeout: self.job_timeout,
            scans: &self.scans,
        }
    }

    pub fn history(&self) -> History {
        History::new(&self.cfg.state_dir)
    }

    /// Validates and renders the specs, and plans against the output directory.
    pub fn plan(
        &self,
        extra: Extra,
    ) -> Result<(SpecSet, BTreeMap<String, String>, Plan), AgentError> {
        self.plan_set(self.load_specs()?, extra)
    }

    /// [`plan`](Self::plan) for specs already loaded.
    pub fn plan_set(
        &self,
        set: SpecSet,
        extra: Extra,
    ) -> Result<(SpecSet, BTreeMap<String, String>, Plan), AgentError> {
        let desired = self.render(&set)?;
        self.plan_rendered(set, desired, extra)
    }

    /// [`plan`](Self::plan) for specs loaded and rendered already.
    pub fn plan_rendered(
        &self,
        set: SpecSet,
        desired: BTreeMap<String, String>,
        extra: Extra,
    ) -> Result<(SpecSet, BTreeMap<String, String>, Plan), AgentError> {
        let budget = self.budget(&set);
        for w in &budget.warnings {
            tracing::warn!("{w}");
        }
        if !budget.errors.is_empty() {
            return Err(AgentError::Budget(budget.errors));
        }
        let mut extra = extra;
        let inputs = crate::inputs::hashes(&set);
        let old = crate::inputs::load(&self.cfg.state_dir);
        for (file, reason) in crate::inputs::changed(&set, &old, &inputs) {
            extra.restart.entry(file).or_insert(reason);
        }
        let allow_empty = extra.allow_empty || self.cfg.allow_empty;
        let mut plan = apply::make_plan(&set, &desired, &self.target(), extra)?;
        plan.inputs = Some(inputs);
        if desired.is_empty() && !plan.remove.is_empty() && !allow_empty {
            let names: Vec<&str> = plan.remove.iter().map(|f| f.name.as_str()).collect();
            return Err(AgentError::EmptySpecs {
                dir: self.cfg.specs_dir.clone(),
                n: names.len(),
                files: names.join(", "),
            });
        }
        Ok((set, desired, plan))
    }

    /// What a plan depends on besides files (see [`stamp`]), given the
    /// trust settings and the host's size the caller has already resolved.
    fn stamp_context(&self, trust: &crate::spec::Trust, host: Host) -> stamp::Context<'_> {
        stamp::Context {
            settings: vec![
                env!("CARGO_PKG_VERSION").to_string(),
                format!("{:?}", self.cfg),
                format!("{trust:?}"),
                format!("{:?}", self.podman),
                format!("{:?}", self.systemd.get()),
                format!("{host:?}"),
            ],
            specs_dir: &self.cfg.specs_dir,
            output_dir: &self.cfg.output_dir,
            state_dir: &self.cfg.state_dir,
            exe: std::path::Path::new(agent_exe()),
        }
    }

    /// When the saved plan stamp holds (nothing a plan reads changed since
    /// one found nothing to change), the container files to check for
    /// drift and that plan's warnings; `None`: plan in full.
    pub fn stamped_noop(&self) -> Option<stamp::Said> {
        let stamp = stamp::load(&self.cfg.state_dir)?;
        // Trust is a verdict on owners and modes up to `/`: checked again.
        let trust = self.cfg.trust().ok()?;
        trust.check_specs_dir(&self.cfg.specs_dir).ok()?;
        let context = self.stamp_context(&trust, self.host());
        stamp.holds(&context).then_some(stamp.said)
    }

    /// Remembers that the plan of `set`, begun at `began`, found nothing to
    /// change (with its budget warnings). Not while rollback pins are in
    /// force: they are a passing state, and their notes are not kept.
    pub fn stamp_noop(&self, set: &SpecSet, began: SystemTime) {
        let state = &self.cfg.state_dir;
        if !crate::pins::none_saved(state) || !state.is_dir() {
            tracing::debug!("plan not remembered: pins are in force or no state directory");
            return;
        }
        let Ok(trust) = self.cfg.trust() else {
            return; // the plan itself resolved it; a plan that did not is not stamped
        };
        let host = self.host();
        let said = stamp::Said {
            inputs: crate::inputs::paths(set),
            watched: crate::drift::watched(set),
            warnings: crate::budget::check(set, host).warnings,
        };
        let context = self.stamp_context(&trust, host);
        let Some(s) = stamp::Stamp::taken(&context, said, began) else {
            tracing::debug!("plan not remembered: a file it read changed less than 2 s before it");
            return;
        };
        if let Err(e) = stamp::save(state, &s) {
            tracing::debug!("{}: cannot save the plan stamp: {e}", state.display());
        }
    }

    /// The host budget check for `set` (agent.toml `[host]`, else this machine).
    pub fn budget(&self, set: &SpecSet) -> crate::budget::Verdict {
        crate::budget::check(set, self.host())
    }

    /// The host's size: agent.toml `[host]`, else this machine's.
    fn host(&self) -> Host {
        Host::detect(self.cfg.host_memory, self.cfg.host_cpus)
    }

    /// The rendered files that differ from what the specs (and pins) say:
    /// edited, removed, added or unmarked outside the agent. Empty when the
    /// specs cannot be read (their own error is logged by the apply).
    pub fn output_drift(&self) -> Vec<String> {
        let Ok(set) = self.load_specs() else {
            return Vec::new();
        };
        let Ok((_, _, plan)) = self.plan_set(set, Extra::default()) else {
            return Vec::new();
        };
        plan.add
            .iter()
            .chain(&plan.change)
            .chain(&plan.remove)
            .map(|f| f.name.clone())
            .chain(plan.conflicts.iter().cloned())
            .collect()
    }

    /// Applies the specs: the whole pipeline, logged, recorded in history.
    pub async fn apply(
        &self,
        sd: &Systemd,
        origin: &str,
        extra: Extra,
    ) -> Result<Applied, AgentError> {
        self.apply_from(sd, origin, extra, None).await
    }

    /// [`apply`](Self::apply) of specs loaded and rendered already (`apply`
    /// checks them before it reaches systemd): they are not read or
    /// rendered again; the plan is made again under the lock, against the
    /// output directory and units as they are then.
    pub async fn apply_rendered(
        &self,
        sd: &Systemd,
        origin: &str,
        extra: Extra,
        set: SpecSet,
        desired: BTreeMap<String, String>,
    ) -> Result<Applied, AgentError> {
        self.apply_from(sd, origin, extra, Some((set, desired)))
            .await
    }

    async fn apply_from(
        &self,
        sd: &Systemd,
        origin: &str,
        extra: Extra,
        rendered: Option<(SpecSet, BTreeMap<String, String>)>,
    ) -> Result<Applied, AgentError> {
        let started = Instant::now();
        let _lock = crate::lock::acquire(&self.cfg.state_dir, self.job_timeout).await?;
        let rendered = match rendered {
            Some(r) => Ok(r),
            None => self
                .load_specs()
                .and_then(|set| Ok((self.render(&set)?, set)))
                .map(|(desired, set)| (set, desired)),
        };
        let planned = match rendered {
            Ok((set, desired)) => {
                let extra = self.with_drift(sd, &set, extra, true).await;
                self.plan_rendered(set, desired, extra)
            }
            Err(e) => Err(e),
        };
        let (set, mut desired, mut plan) = match planned {
            Ok(x) => x,
            Err(e) => {
                log_failure(&e);
                return Err(e);
            }
        };
        let held = if self.cfg.pull_ahead {
            crate::images::pull_ahead(&mut plan, &mut desired).await
        } else {
            Vec::new()
        };
        let mut applied = self
            .execute(sd, plan, &desired, set, origin, started)
            .await?;
        applied.report.held = held.iter().map(ToString::to_string).collect();
        Ok(applied)
    }

    /// Puts `container`, which never became healthy in the latest
    /// generation, back on its version from the newest earlier good
    /// generation that has another one, pinned there until its spec
    /// changes. `None` when there is nothing to roll back to (said in the
    /// journal); else the generation rolled back to and the apply.
    pub async fn roll_back(
        &self,
        sd: &Systemd,
        container: &str,
    ) -> Result<Option<(u64, Applied)>, AgentError> {
        let file = format!("{container}.container");
        let unit = crate::spec::units::container(container);
        let history = self.history();
        let Some(latest) = history.latest()? else {
            return Ok(None);
        };
        history.set_health(latest.generation, crate::history::Verdict::Unhealthy)?;
        let current = crate::output::scan(&self.cfg.output_dir)
            .map_err(ApplyError::from)?
            .managed;
        let Some(bad) = current.get(&file).cloned() else {
            return Ok(None);
        };
        let mut before = Some(latest.generation);
        let good = loop {
            match history.previous_good(before) {
                Ok(g) => match g.rendered.get(&file) {
                    Some(text) if *text != bad => break Some((g.meta.generation, text.clone())),
                    _ => before = Some(g.meta.generation),
                },
                Err(_) => break None,
            }
        };
        let rollback_id = crate::health::HealthEvent::Rollback.message_id();
        let Some((generation, good)) = good else {
            tracing::error!(
                message_id = rollback_id,
                unit = %unit,
                "{container} never became healthy, and no earlier good generation has another version of it: nothing to roll back to"
            );
            return Ok(None);
        };
        tracing::error!(
            message_id = rollback_id,
            unit = %unit,
            generation = latest.generation,
            rollback_to = generation,
            "{container} never became healthy in generation {}: rolling it back to its version of generation {generation}",
            latest.generation
        );
        let needed = BTreeMap::from([(file.clone(), good.clone())]);
        if let Err(e) = crate::images::ensure(&needed).await {
            tracing::error!(message_id = rollback_id, unit = %unit, "rollback of {container}: {e}");
            return Ok(None);
        }
        let mut desired = current;
        desired.insert(file.clone(), good.clone());
        // Saved with the apply: whoever applies next (the daemon, a
        // restarted one, the CLI) keeps the good version.
        let mut pins = crate::pins::load(&self.cfg.state_dir);
        let pin = crate::pins::Pin {
            bad: Some(bad),
            good: Some(good),
            generation,
        };
        pins.insert(file, pin);
        let set = match self.load_specs() {
            Ok(s) => s,
            Err(_) => {
                crate::spec::load_texts(&history.specs(generation)?).map_err(AgentError::Invalid)?
            }
        };
        let origin = format!("rollback of {container} to {generation}");
        let applied = self
            .apply_rendering(sd, &set, &desired, &origin, Some(&pins))
            .await?;
        Ok(Some((generation, applied)))
    }

    /// `extra` plus the containers that should run and do not (see
    /// [`crate::drift`]); each is logged when `applying`. Unreadable states
    /// only warn.
    pub async fn with_drift(
        &self,
        sd: &Systemd,
        set: &SpecSet,
        mut extra: Extra,
        applying: bool,
    ) -> Extra {
        match crate::drift::stopped(sd, set, &self.cfg.output_dir).await {
            Ok(stopped) => {
                for (file, reason) in stopped {
                    let unit = crate::reconcile::unit_for_file(&file).unwrap_or_default();
                    if !applying {
                        extra.restart.entry(file).or_insert(reason);
                        continue;
                    }
                    tracing::warn!(
                        message_id = ids::UNIT_DRIFT,
                        unit = %unit,
                        "{unit} is {reason}: starting it again"
                    );
                    extra.restart.entry(file).or_insert(reason);
                }
            }
            Err(e) => tracing::warn!("cannot read the units' states, drift not checked: {e}"),
        }
        extra
    }

    /// Applies an earlier generation's rendered files.
    /// `pins`, when given, replace the saved rollback pins first (under the
    /// same lock), so that whoever applies next keeps this rendering.
    pub async fn apply_rendering(
        &self,
        sd: &Systemd,
        set: &SpecSet,
        desired: &BTreeMap<String, String>,
        origin: &str,
        pins: Option<&Pins>,
    ) -> Result<Applied, AgentError> {
        let started = Instant::now();
        let _lock = crate::lock::acquire(&self.cfg.state_dir, self.job_timeout).await?;
        if let Some(pins) = pins {
            crate::pins::save(&self.cfg.state_dir, pins)?;
            *self.pins.borrow_mut() = (pins.clone(), false);
        }
        let plan = apply::make_plan(set, desired, &self.target(), Extra::default())?;
        self.execute(sd, plan, desired, set.clone(), origin, started)
            .await
    }

    async fn execute(
        &self,
        sd: &Systemd,
        mut plan: Plan,
        desired: &BTreeMap<String, String>,
        set: SpecSet,
        origin: &str,
        started: Instant,
    ) -> Result<Applied, AgentError> {
        let specs: Vec<(PathBuf, String)> = set
            .files
            .iter()
            .map(|f| (f.path.clone(), f.text.clone()))
            .collect();
        let specs = &specs[..];
        let history = self.history();
        let noop = plan.settled();
        if let Some(n) = history.settle_interrupted(desired, noop)? {
            tracing::warn!(
                generation = n,
                "generation {n} was interrupted by a crash; settled as {}",
                if noop { "ok" } else { "interrupted" }
            );
        }
        if noop {
            self.save_pins()?;
            tracing::debug!("no changes");
            return Ok(Applied {
                report: Report {
                    plan,
                    ..Default::default()
                },
                generation: None,
                elapsed: started.elapsed(),
                set,
            });
        }
        tracing::info!(
            message_id = ids::APPLY_STARTED,
            files_added = plan.add.len(),
            files_changed = plan.change.len(),
            files_removed = plan.remove.len(),
            unit_actions = plan.actions.len(),
            "applying: {} added, {} changed, {} removed, {} unit action(s)",
            plan.add.len(),
            plan.change.len(),
            plan.remove.len(),
            plan.actions.len()
        );
        // Podman secrets from files must exist before a unit that uses them starts.
        let starting: Vec<String> = plan
            .actions
            .iter()
            .filter(|a| a.kind != crate::reconcile::ActionKind::Stop)
            .map(|a| a.unit.trim_end_matches(".service").to_string())
            .collect();
        match crate::inputs::sync_secrets(&set, Some(&starting)) {
            Ok(made) => {
                if let Err(e) = crate::secret_store::remember(&self.cfg.state_dir, &made) {
                    tracing::warn!("cannot remember the Podman secrets made: {e}");
                }
            }
            Err(e) => {
                let e = AgentError::from(e);
                log_failure(&e);
                return Err(e);
            }
        }
        // Recorded before any unit is touched, finished after: a crash in
        // between leaves it pending, and history never lacks what runs.
        let generation = history.record(
            specs,
            desired,
            Outcome::Pending,
            vec![],
            origin,
            self.cfg.history,
        )?;
        let inputs = plan.inputs.take();
        let report = match apply::execute(sd, plan, desired, &self.target()).await {
            Ok(r) => r,
            Err(e) => {
                let e = AgentError::from(e);
                log_failure(&e);
                history.finish(generation, Outcome::Failed, vec![e.to_string()])?;
                return Err(e);
            }
        };
        let failures = report.failures();
        for (action, outcome) in &report.results {
            if !outcome.ok() {
                tracing::error!(
                    message_id = ids::UNIT_FAILED,
                    unit = %action.unit,
                    action = apply::verb(action.kind),
                    "{} {} failed: {}",
                    apply::verb(action.kind),
                    action.unit,
                    outcome.describe()
                );
            } else {
                tracing::info!(
                    unit = %action.unit,
                    action = apply::verb(action.kind),
                    "{} {}: done ({})",
                    apply::verb(action.kind),
                    action.unit,
                    action.reason
                );
            }
        }
        crate::failpoint!("before-inputs-save");
        if failures.is_empty() {
            let inputs = inputs.unwrap_or_else(|| crate::inputs::hashes(&set));
            crate::inputs::save(&self.cfg.state_dir, &inputs)?;
        }
        let outcome = if failures.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
        crate::failpoint!("before-history-finish");
        history.finish(generation, outcome, failures.clone())?;
        self.save_pins()?;
        if failures.is_empty() {
            // What used a secret no spec names any more has been stopped.
            crate::secret_store::prune(&self.cfg.state_dir, &set);
        }
        let elapsed = started.elapsed();
        if failures.is_empty() {
            tracing::info!(
                message_id = ids::APPLY_DONE,
                generation,
                elapsed_ms = elapsed.as_millis() as u64,
                "generation {generation} applied in {:.0?}",
                elapsed
            );
        } else {
            tracing::error!(
                message_id = ids::APPLY_FAILED,
                generation,
                "generation {generation} applied with failures: {}",
                failures.join("; ")
            );
        }
        Ok(Applied {
            report,
            generation: Some(generation),
            elapsed,
            set,
        })
    }
}

/// A render error with `file:line:col` of the spec that caused it, where
/// that can be found (see [`crate::spec::locate`]).
fn located(set: &SpecSet, e: RenderError) -> AgentError {
    let is_key = |feature: &str| {
        feature
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
    };
    let (unit, key) = match &e {
        RenderError::Unsupported { unit, feature, .. } => {
            (unit.as_str(), is_key(feature).then_some(feature.as_str()))
        }
        // An escape-hatch key is found by its own name.
        RenderError::SystemdUnsupported {
            unit, feature, key, ..
        } => (
            unit.as_str(),
            Some(if is_key(feature) { feature } else { key }.as_str()),
        ),
        RenderError::BadValue { unit, .. } => (unit.as_str(), None),
        _ => return AgentError::Render(e),
    };
    match crate::spec::locate::locate(set, unit, key) {
        Some((file, line, col)) => AgentError::RenderAt {
            file,
            line,
            col,
            error: Box::new(e),
        },
        None => AgentError::Render(e),
    }
}

/// Logs why an apply did not happen, one journal entry per spec error so
/// each carries its file and line.
pub fn log_failure(e: &AgentError) {
    match e {
        AgentError::Invalid(errs) => {
            for err in errs.iter() {
                tracing::error!(
                    message_id = ids::SPEC_INVALID,
                    spec_file = %err.file.display(),
                    spec_line = err.line.unwrap_or(0) as u64,
                    spec_key = err.key.as_deref().unwrap_or(""),
                    "{err}"
                );
            }
            tracing::error!(
                message_id = ids::SPEC_INVALID,
                "{} spec error(s); nothing was changed, running services keep running",
                errs.len()
            );
        }
        AgentError::Apply(ApplyError::Conflicts(_)) => {
            tracing::error!(message_id = ids::OUTPUT_EDITED, "{e}");
        }
        AgentError::Apply(ApplyError::QuadletRejected(_)) => {
            tracing::error!(message_id = ids::QUADLET_REJECTED, "{e}");
        }
        AgentError::Apply(ApplyError::Systemd(_)) => {
            tracing::error!(message_id = ids::SYSTEMD_UNREACHABLE, "{e}");
        }
        AgentError::EmptySpecs { .. } => {
            tracing::error!(message_id = ids::SPECS_EMPTY, "{e}");
        }
        _ => tracing::error!("{e}"),
    }
}

/// This binary's path, for the health waiter of gated units
/// (`ExecStartPost=`): the packaged `/usr/bin/deploy-agent` where it cannot
/// be found.
fn agent_exe() -> &'static str {
    static EXE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.to_str().map(str::to_string))
            // The binary was replaced under a running daemon (a package
            // upgrade): the new one is at the same path.
            .map(|p| p.trim_end_matches(" (deleted)").to_string())
            .unwrap_or_else(|| crate::render::DEFAULT_AGENT_EXE.to_string())
    })
}
