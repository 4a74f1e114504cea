//! Apply: carry out a plan against the output directory and systemd.
//!
//! Order: refuse what Quadlet rejects; record the intent (`pending.json`);
//! stop removed units; write the files (atomically, one directory fsync);
//! one daemon-reload; start and restart in dependency order (the calls go
//! out in that order without awaiting each reply), waiting for each job's
//! result. If the process dies
//! anywhere in between, the next apply finds `pending.json` and finishes the
//! job: it reloads and acts on the recorded units even though their files
//! already match, and restarts nothing else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::plan::{self, ActionKind, Extra, Plan, UnitAction};
use crate::output::{self, OutputError};
use crate::spec::SpecSet;
use crate::systemd::{JobKind, JobOutcome, Systemd, SystemdError};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{}", .0.join("\n"))]
    Conflicts(Vec<String>),
    #[error("Podman's Quadlet generator rejected the rendered files; nothing was changed:\n{0}")]
    QuadletRejected(String),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Systemd(#[from] SystemdError),
    #[error("{path}: {op}: {source}")]
    State {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
}

/// What an apply did, for the report, the journal and the exit code.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub plan: Plan,
    pub reloaded: bool,
    /// Each unit action and how its job ended.
    pub results: Vec<(UnitAction, JobOutcome)>,
    /// Changes held back before the apply, with why (an image that could
    /// not be pulled: the old container keeps running).
    pub held: Vec<String>,
}

impl Report {
    pub fn failures(&self) -> Vec<String> {
        self.held
            .iter()
            .cloned()
            .chain(
                self.results
                    .iter()
                    .filter(|(_, o)| !o.ok())
                    .map(|(a, o)| format!("{} {}: {}", verb(a.kind), a.unit, o.describe())),
            )
            .collect()
    }
    pub fn ok(&self) -> bool {
        self.held.is_empty() && self.results.iter().all(|(_, o)| o.ok())
    }
}

pub fn verb(k: ActionKind) -> &'static str {
    match k {
        ActionKind::Stop => "stop",
        ActionKind::Start => "start",
        ActionKind::Restart => "restart",
    }
}

/// The intent of an apply in progress, written before anything changes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Pending {
    /// Files whose units must be (re)started: name -> reason.
    pub restart: BTreeMap<String, String>,
    /// Units to stop.
    pub stop: BTreeMap<String, String>,
}

impl Pending {
    fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("pending.json")
    }

    /// The pending intent of an interrupted apply, if any.
    pub fn load(state_dir: &Path) -> Option<Pending> {
        let text = std::fs::read_to_string(Self::path(state_dir)).ok()?;
        match serde_json::from_str(&text) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!("ignoring unreadable pending.json: {e}");
                None
            }
        }
    }

    pub fn extra(self) -> Extra {
        let reason = |r: String| format!("finishing an interrupted apply ({r})");
        Extra {
            restart: self
                .restart
                .into_iter()
                .map(|(k, v)| (k, reason(v)))
                .collect(),
            stop: self.stop.into_iter().map(|(k, v)| (k, reason(v))).collect(),
            force_reload: true,
            allow_empty: false,
        }
    }

    fn save(&self, state_dir: &Path) -> Result<(), ApplyError> {
        let err = |op| {
            let path = Self::path(state_dir);
            move |source| ApplyError::State { path, op, source }
        };
        std::fs::create_dir_all(state_dir).map_err(err("cannot create state directory"))?;
        let tmp = state_dir.join(".pending.json.tmp");
        let json = serde_json::to_vec_pretty(self).expect("pending serializes");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(err("cannot write"))?;
            f.write_all(&json).map_err(err("cannot write"))?;
            f.sync_all().map_err(err("cannot fsync"))?;
        }
        std::fs::rename(&tmp, Self::path(state_dir)).map_err(err("cannot rename"))?;
        std::fs::File::open(state_dir)
            .and_then(|d| d.sync_all())
            .map_err(err("cannot fsync"))
    }

    fn clear(state_dir: &Path) -> Result<(), ApplyError> {
        match std::fs::remove_file(Self::path(state_dir)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ApplyError::State {
                path: Self::path(state_dir),
                op: "cannot remove",
                source,
            }),
        }
    }
}

/// Where and how to apply.
pub struct Target<'a> {
    pub output_dir: &'a Path,
    pub state_dir: &'a Path,
    /// Rootless: Quadlet runs with `-user`.
    pub user: bool,
    /// Per-job wait limit.
    pub job_timeout: Duration,
    /// Output files known by identity from earlier scans.
    pub scans: &'a std::cell::RefCell<output::ScanCache>,
}

/// Computes the plan for `desired` against the output directory, including
/// whatever an interrupted apply left to do.
pub fn make_plan(
    set: &SpecSet,
    desired: &BTreeMap<String, String>,
    target: &Target<'_>,
    mut extra: Extra,
) -> Result<Plan, ApplyError> {
    let current = output::scan_cached(
        target.output_dir,
        &mut target.scans.borrow_mut(),
        std::time::SystemTime::now(),
    )?;
    if let Some(p) = Pending::load(target.state_dir) {
        let e = p.extra();
        extra.restart.extend(e.restart);
        extra.stop.extend(e.stop);
        extra.force_reload |= e.force_reload;
    }
    Ok(plan::compute(set, desired, &current, &extra))
}

/// Runs Podman's Quadlet generator over `desired` in a scratch directory.
/// A missing generator is not an error here (the caller decides).
pub fn check_with_quadlet(
    desired: &BTreeMap<String, String>,
    user: bool,
) -> Result<(), ApplyError> {
    let Some(generator) = crate::quadlet::find_generator() else {
        tracing::debug!("no Quadlet generator installed; skipping the dry run");
        return Ok(());
    };
    let scratch = scratch_dir()?;
    for (name, text) in desired {
        let p = scratch.path().join(name);
        std::fs::write(&p, text).map_err(|source| ApplyError::State {
            path: p.clone(),
            op: "cannot write",
            source,
        })?;
    }
    match crate::quadlet::dry_run_with(&generator, scratch.path(), user) {
        Ok(_) => Ok(()),
        Err(crate::quadlet::QuadletError::Rejected { messages }) => {
            Err(ApplyError::QuadletRejected(messages.join("\n")))
        }
        Err(e) => Err(ApplyError::QuadletRejected(e.to_string())),
    }
}

/// A scratch directory for the dry run, in memory where there is one
/// (`$XDG_RUNTIME_DIR`, `/dev/shm`): creating a thousand small files on a
/// disk file system costs more than the generator's run over them.
fn scratch_dir() -> Result<tempfile::TempDir, ApplyError> {
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    let places = runtime
        .into_iter()
        .chain([PathBuf::from("/dev/shm"), std::env::temp_dir()]);
    let mut last = None;
    for dir in places.filter(|d| d.is_dir()) {
        match tempfile::Builder::new()
            .prefix("deploy-agent-check")
            .tempdir_in(&dir)
        {
            Ok(t) => return Ok(t),
            Err(e) => last = Some((dir, e)),
        }
    }
    let (path, source) = last.unwrap_or_else(|| {
        (
            std::env::temp_dir(),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    });
    Err(ApplyError::State {
        path,
        op: "cannot create a scratch directory",
        source,
    })
}

/// Carries out `plan`. Returns a report even when units fail; errors are
/// for what stops the apply itself (systemd unreachable, a write failed).
pub async fn execute(
    sd: &Systemd,
    plan: Plan,
    desired: &BTreeMap<String, String>,
    target: &Target<'_>,
) -> Result<Report, ApplyError> {
    let mut report = Report {
        plan,
        ..Default::default()
    };
    let plan = &report.plan;
    if !plan.conflicts.is_empty() {
        return Err(ApplyError::Conflicts(plan.conflicts.clone()));
    }
    if plan.is_noop() {
        return Ok(report);
    }
    if plan.files_changed() {
        check_with_quadlet(&super::affected::to_check(plan, desired), target.user)?;
    }

    let pending = Pending {
        restart: plan
            .actions
            .iter()
            .filter(|a| a.kind != ActionKind::Stop)
            .filter_map(|a| file_for_unit(desired, &a.unit).map(|f| (f, a.reason.clone())))
            .collect(),
        stop: plan
            .actions
            .iter()
            .filter(|a| a.kind == ActionKind::Stop)
            .map(|a| (a.unit.clone(), a.reason.clone()))
            .collect(),
    };
    pending.save(target.state_dir)?;

    let (stops, starts): (Vec<UnitAction>, Vec<UnitAction>) = plan
        .actions
        .iter()
        .cloned()
        .partition(|a| a.kind == ActionKind::Stop);
    let mut results = Vec::new();
    if !stops.is_empty() {
        let jobs: Vec<(JobKind, String)> = stops
            .iter()
            .map(|a| (JobKind::Stop, a.unit.clone()))
            .collect();
        let outcomes = sd.run_jobs(&jobs, target.job_timeout).await?;
        results.extend(stops.into_iter().zip(outcomes));
    }

    output::ensure_dir(target.output_dir)?;
    let leftovers = output::clean_temp_files(target.output_dir)?;
    if leftovers > 0 {
        tracing::info!("removed {leftovers} temp file(s) of an interrupted write");
    }
    let write: Vec<(&str, &str)> = plan
        .add
        .iter()
        .chain(&plan.change)
        .map(|f| (f.name.as_str(), f.new.as_deref().unwrap_or_default()))
        .collect();
    let remove: Vec<&str> = plan.remove.iter().map(|f| f.name.as_str()).collect();
    output::update(target.output_dir, &write, &remove)?;
    crate::failpoint!("before-reload");
    if plan.reload {
        sd.reload().await?;
        report.reloaded = true;
    }
    crate::failpoint!("after-reload");

    if !starts.is_empty() {
        let jobs: Vec<(JobKind, String)> = starts
            .iter()
            .map(|a| {
                let kind = match a.kind {
                    ActionKind::Start => JobKind::Start,
                    _ => JobKind::Restart,
                };
                (kind, a.unit.clone())
            })
            .collect();
        let outcomes = sd.run_jobs(&jobs, target.job_timeout).await?;
        results.extend(starts.into_iter().zip(outcomes));
    }
    // Cleared as soon as the jobs are done: a crash after this point must not
    // make the next apply restart these units a second time (one before it
    // does: the jobs' results were not kept).
    crate::failpoint!("before-clear");
    Pending::clear(target.state_dir)?;
    crate::failpoint!("after-jobs");
    report.results = results;
    Ok(report)
}

fn file_for_unit(desired: &BTreeMap<String, String>, unit: &str) -> Option<String> {
    desired
        .keys()
        .find(|f| plan::unit_for_file(f).as_deref() == Some(unit))
        .cloned()
}
