//! The result of `apply` as one versioned JSON document (`apply --json`),
//! for scripts and fleet tools (Ansible's `changed`/`failed`). Its format is
//! documented in README.md ("apply --json") and checked against
//! `tests/fixtures/apply-result.schema.json` by the tests. Fields are only
//! ever added within a version; a change of meaning bumps `version`.

use serde::Serialize;

use crate::agent::{AgentError, Applied};
use crate::reconcile::apply::verb;
use crate::wait::Settled;

pub const VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct ApplyResult {
    pub version: u32,
    /// Whether anything was changed (a generation was recorded).
    pub changed: bool,
    /// Everything asked for is running (and, with `--wait`, settled healthy
    /// or active); the exit status is 0 exactly when this is true.
    pub ok: bool,
    pub generation: Option<u64>,
    /// Whether `--wait` followed the units.
    pub waited: bool,
    pub units: Vec<UnitResult>,
    pub errors: Vec<ErrorEntry>,
}

#[derive(Debug, Serialize)]
pub struct UnitResult {
    pub unit: String,
    /// `start`, `restart` or `stop`.
    pub action: &'static str,
    /// Why the unit was acted on.
    pub reason: String,
    /// The systemd job: `done`, or `failed: ...`.
    pub job: String,
    /// With `--wait`: `healthy`, `active`, `unhealthy`, `stopped`,
    /// `timeout`; `null` without.
    pub settled: Option<&'static str>,
    /// `healthy`, `unhealthy` or `none`.
    pub health: &'static str,
    /// One line for operators.
    pub detail: String,
    /// The generation this unit's container was rolled back to, if it was.
    pub rolled_back_to: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct ErrorEntry {
    pub file: Option<String>,
    pub line: Option<usize>,
    pub col: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl ApplyResult {
    /// The result of an apply, before any waiting.
    pub fn applied(applied: &Applied) -> ApplyResult {
        let r = &applied.report;
        let units = r
            .results
            .iter()
            .map(|(a, o)| UnitResult {
                unit: a.unit.clone(),
                action: verb(a.kind),
                reason: a.reason.clone(),
                job: if o.ok() {
                    "done".into()
                } else {
                    format!("failed: {}", o.describe())
                },
                settled: None,
                health: "none",
                detail: String::new(),
                rolled_back_to: None,
            })
            .collect();
        ApplyResult {
            version: VERSION,
            changed: applied.generation.is_some(),
            ok: r.ok(),
            generation: applied.generation,
            waited: false,
            units,
            errors: r.failures().into_iter().map(ErrorEntry::message).collect(),
        }
    }

    /// An apply that did not happen: invalid specs (each error located), an
    /// unreachable systemd, ...
    pub fn refused(e: &AgentError) -> ApplyResult {
        ApplyResult {
            errors: ErrorEntry::of(e),
            ..ApplyResult::failed(String::new())
        }
    }

    /// Nothing applied, for `message` (systemd unreachable, ...).
    pub fn failed(message: String) -> ApplyResult {
        ApplyResult {
            version: VERSION,
            changed: false,
            ok: false,
            generation: None,
            waited: false,
            units: vec![],
            errors: vec![ErrorEntry::message(message)],
        }
    }

    /// Records how `unit` settled (and whether it was rolled back).
    pub fn settle(&mut self, unit: &str, s: &Settled, rolled_back_to: Option<u64>) {
        self.waited = true;
        let Some(u) = self.units.iter_mut().find(|u| u.unit == unit) else {
            return;
        };
        u.settled = Some(match s {
            Settled::Healthy(_) => "healthy",
            Settled::Active => "active",
            Settled::Unhealthy(_) => "unhealthy",
            Settled::Stopped(_) => "stopped",
            Settled::TimedOut(_) => "timeout",
        });
        u.health = s.health();
        u.detail = s.describe();
        u.rolled_back_to = rolled_back_to;
        if !s.ok() {
            self.ok = false;
            let what = match rolled_back_to {
                Some(g) => format!("; rolled back to generation {g}"),
                None => String::new(),
            };
            self.errors.push(ErrorEntry::message(format!(
                "{unit}: {}{what}",
                s.describe()
            )));
        }
    }
}

impl ErrorEntry {
    /// The entries of an agent error: one per spec error, located (the
    /// hint, if any, in parentheses after the message); otherwise one with
    /// the whole message.
    pub fn of(e: &AgentError) -> Vec<ErrorEntry> {
        match e {
            AgentError::Invalid(errs) => errs.0.iter().map(ErrorEntry::located).collect(),
            AgentError::RenderAt {
                file,
                line,
                col,
                error,
            } => vec![ErrorEntry {
                file: Some(file.display().to_string()),
                line: Some(*line),
                col: Some(*col),
                key: None,
                message: error.to_string(),
            }],
            other => vec![ErrorEntry::message(other.to_string())],
        }
    }

    pub fn located(e: &crate::spec::SpecError) -> ErrorEntry {
        ErrorEntry {
            file: Some(e.file.display().to_string()),
            line: e.line,
            col: e.col,
            key: e.key.clone(),
            message: match &e.hint {
                Some(h) => format!("{} ({h})", e.message),
                None => e.message.clone(),
            },
        }
    }

    pub fn message(message: String) -> ErrorEntry {
        ErrorEntry {
            file: None,
            line: None,
            col: None,
            key: None,
            message,
        }
    }
}
