//! One apply, end to end: load specs -> render -> plan -> execute -> record.
//!
//! Shared by the one-shot commands and the daemon, so `apply` and `run`
//! behave the same. Logs each step to the journal with its MESSAGE_ID.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::history::{History, HistoryError, Outcome};
use crate::journal::ids;
use crate::reconcile::apply::{self, ApplyError, Report, Target};
use crate::reconcile::{Extra, Plan};
use crate::render::{PodmanVersion, RenderError, RenderOptions};
use crate::spec::{SpecErrors, SpecSet};
use crate::systemd::Systemd;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the specs are invalid; nothing was changed:\n{0}")]
    Invalid(SpecErrors),
    #[error("cannot render the specs; nothing was changed: {0}")]
    Render(#[from] RenderError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("the services do not fit the host; nothing was changed:\n{}", .0.join("\n"))]
    Budget(Vec<String>),
    #[error(transparent)]
    Inputs(#[from] crate::inputs::InputError),
}

impl AgentError {
    /// Exit code per the contract: 2 for what the operator wrote, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Invalid(_) | AgentError::Render(_) | AgentError::Budget(_) => 2,
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

/// A container rolled back after its new version failed its health checks:
/// while the specs still render `bad`, the agent keeps `good` in place.
#[derive(Debug, Clone, PartialEq)]
pub struct Pin {
    pub bad: String,
    pub good: String,
    pub generation: u64,
    /// The health check of the good version (health checks live in the
    /// spec, not in the unit file, so they are pinned too).
    pub health: Option<crate::spec::Health>,
}

pub struct Agent {
    pub cfg: Config,
    pub podman: PodmanVersion,
    pub job_timeout: Duration,
    /// Rolled-back containers, by file name (see [`Pin`]).
    pub pins: std::cell::RefCell<BTreeMap<String, Pin>>,
}

impl Agent {
    /// The Podman version to render for: `podman_version` from agent.toml,
    /// else the installed one, else the newest this agent knows (with a warning).
    pub fn new(cfg: Config, job_timeout: Duration) -> Result<Agent, RenderError> {
        let podman = match &cfg.podman_version {
            Some(v) => PodmanVersion::parse(v)?,
            None => match crate::quadlet::detect_podman_version() {
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
            cfg,
            podman,
            job_timeout,
            pins: Default::default(),
        })
    }

    pub fn load_specs(&self) -> Result<SpecSet, AgentError> {
        let dir = &self.cfg.specs_dir;
        let trust = self.cfg.trust().map_err(|e| {
            AgentError::Invalid(crate::spec::SpecErrors(vec![
                crate::spec::Loc::file(dir).error("", e, None)
            ]))
        })?;
        let set = crate::spec::load_dir_trusting(dir, &trust).map_err(AgentError::Invalid)?;
        // A FIFO, device or oversized env file, secret source or ca_file is
        // a spec error, found before anything is applied.
        crate::inputs::check(&set).map_err(AgentError::Invalid)?;
        Ok(set)
    }

    pub fn render(&self, set: &SpecSet) -> Result<BTreeMap<String, String>, AgentError> {
        let opts = RenderOptions {
            podman: self.podman,
            ..Default::default()
        };
        let r = crate::render::render(set, &opts)?;
        let mut desired: BTreeMap<String, String> =
            r.into_iter().map(|(k, v)| (k, v.contents)).collect();
        // A rolled-back container stays on its good version while the specs
        // still ask for the one that failed; a spec change lifts the pin.
        self.pins.borrow_mut().retain(|file, pin| match desired.get_mut(file) {
            Some(text) if *text == pin.bad => {
                tracing::info!(
                    unit = %crate::reconcile::unit_for_file(file).unwrap_or_default(),
                    "{file}: keeping the version of generation {} (the spec's version failed its health check; change the spec to try again)",
                    pin.generation
                );
                *text = pin.good.clone();
                true
            }
            _ => false,
        });
        Ok(desired)
    }

    pub fn target(&self) -> Target<'_> {
        Target {
            output_dir: &self.cfg.output_dir,
            state_dir: &self.cfg.state_dir,
            user: !self.cfg.system,
            job_timeout: self.job_timeout,
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
        let plan = apply::make_plan(&set, &desired, &self.target(), extra)?;
        Ok((set, desired, plan))
    }

    /// The host budget check for `set` (agent.toml `[host]`, else this machine).
    pub fn budget(&self, set: &SpecSet) -> crate::budget::Verdict {
        let host = crate::budget::Host::detect(self.cfg.host_memory, self.cfg.host_cpus);
        crate::budget::check(set, host)
    }

    /// Applies the specs: the whole pipeline, logged, recorded in history.
    pub async fn apply(
        &self,
        sd: &Systemd,
        origin: &str,
        extra: Extra,
    ) -> Result<Applied, AgentError> {
        let started = Instant::now();
        let planned = match self.load_specs() {
            Ok(set) => {
                let extra = self.with_drift(sd, &set, extra, true).await;
                self.plan_set(set, extra)
            }
            Err(e) => Err(e),
        };
        let (set, desired, plan) = match planned {
            Ok(x) => x,
            Err(e) => {
                log_failure(&e);
                return Err(e);
            }
        };
        self.execute(sd, plan, &desired, set, origin, started).await
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
        match crate::drift::stopped(sd, set).await {
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
    pub async fn apply_rendering(
        &self,
        sd: &Systemd,
        set: &SpecSet,
        desired: &BTreeMap<String, String>,
        origin: &str,
    ) -> Result<Applied, AgentError> {
        let started = Instant::now();
        let plan = apply::make_plan(set, desired, &self.target(), Extra::default())?;
        self.execute(sd, plan, desired, set.clone(), origin, started)
            .await
    }

    async fn execute(
        &self,
        sd: &Systemd,
        plan: Plan,
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
        let noop = plan.is_noop() && plan.conflicts.is_empty();
        if let Some(n) = history.settle_interrupted(desired, noop)? {
            tracing::warn!(
                generation = n,
                "generation {n} was interrupted by a crash; settled as {}",
                if noop { "ok" } else { "interrupted" }
            );
        }
        if noop {
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
        if let Err(e) = crate::inputs::sync_secrets(&set, Some(&starting)) {
            let e = AgentError::from(e);
            log_failure(&e);
            return Err(e);
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
            crate::inputs::save(&self.cfg.state_dir, &crate::inputs::hashes(&set))?;
        }
        let outcome = if failures.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
        crate::failpoint!("before-history-finish");
        history.finish(generation, outcome, failures.clone())?;
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
        AgentError::Apply(ApplyError::QuadletRejected(_)) => {
            tracing::error!(message_id = ids::QUADLET_REJECTED, "{e}");
        }
        AgentError::Apply(ApplyError::Systemd(_)) => {
            tracing::error!(message_id = ids::SYSTEMD_UNREACHABLE, "{e}");
        }
        _ => tracing::error!("{e}"),
    }
}
