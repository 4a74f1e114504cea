//! The versioned JSON documents of `validate --json`, `plan --json` and
//! `status --json`, for scripts and deployment engines (Ansible, Flight
//! Control hooks). `apply --json` has its own module (`result.rs`). Each
//! document carries `version`; fields are only ever added within a version,
//! a change of meaning bumps it. Their JSON Schemas are under
//! `tests/fixtures/` and the tests check the output against them; README.md
//! ("The host interface") documents them with the exit codes.

use serde::Serialize;

use crate::reconcile::Plan;
use crate::result::ErrorEntry;
use crate::status::Row;

pub const VALIDATE_VERSION: u32 = 1;
pub const PLAN_VERSION: u32 = 1;
pub const STATUS_VERSION: u32 = 1;

/// `validate --json`.
#[derive(Debug, Serialize)]
pub struct ValidateDoc {
    pub version: u32,
    /// No errors: exit status 0.
    pub ok: bool,
    pub specs_dir: String,
    /// Counts of what the specs declare (0 when they do not load).
    pub files: usize,
    pub containers: usize,
    pub networks: usize,
    pub volumes: usize,
    /// The Podman version the specs were checked against.
    pub podman: String,
    pub errors: Vec<ErrorEntry>,
    pub warnings: Vec<String>,
}

impl ValidateDoc {
    pub fn new(specs_dir: &std::path::Path, podman: String) -> ValidateDoc {
        ValidateDoc {
            version: VALIDATE_VERSION,
            ok: true,
            specs_dir: specs_dir.display().to_string(),
            files: 0,
            containers: 0,
            networks: 0,
            volumes: 0,
            podman,
            errors: vec![],
            warnings: vec![],
        }
    }

    pub fn counts(&mut self, set: &crate::spec::SpecSet) {
        self.files = set.files.len();
        self.containers = set.containers.len();
        self.networks = set.networks.len();
        self.volumes = set.volumes.len();
    }

    pub fn fail(&mut self, errors: Vec<ErrorEntry>) {
        self.ok = false;
        self.errors.extend(errors);
    }
}

/// `plan --json`: the plan's fields (`add`, `change`, `remove` with each
/// file's old and new text, `actions`, `conflicts`, `reload`) next to the
/// summary a script needs.
#[derive(Debug, Serialize)]
pub struct PlanDoc {
    pub version: u32,
    /// The specs are valid and the plan has no conflicts.
    pub ok: bool,
    /// `apply` would change something (the `--detailed-exitcode` 3).
    pub changes: bool,
    /// Whether units stopped outside a change were looked for (systemd
    /// answered); when false the plan compares files only.
    pub drift_checked: bool,
    #[serde(flatten)]
    pub plan: Plan,
    pub errors: Vec<ErrorEntry>,
}

impl PlanDoc {
    pub fn planned(plan: Plan, drift_checked: bool) -> PlanDoc {
        let errors = plan
            .conflicts
            .iter()
            .map(|c| ErrorEntry::message(c.clone()))
            .collect::<Vec<_>>();
        PlanDoc {
            version: PLAN_VERSION,
            ok: errors.is_empty(),
            changes: !plan.is_noop(),
            drift_checked,
            plan,
            errors,
        }
    }

    pub fn refused(errors: Vec<ErrorEntry>) -> PlanDoc {
        PlanDoc {
            version: PLAN_VERSION,
            ok: false,
            changes: false,
            drift_checked: false,
            plan: Plan::default(),
            errors,
        }
    }
}

/// `status --json`.
#[derive(Debug, Serialize)]
pub struct StatusDoc {
    pub version: u32,
    /// Every unit active and none unhealthy or failed: exit status 0.
    pub ok: bool,
    /// The newest generation in the history, if any.
    pub generation: Option<u64>,
    pub units: Vec<Row>,
}

impl StatusDoc {
    pub fn new(generation: Option<u64>, units: Vec<Row>) -> StatusDoc {
        StatusDoc {
            version: STATUS_VERSION,
            ok: crate::status::all_well(&units),
            generation,
            units,
        }
    }
}

/// Exit status of `plan --detailed-exitcode` for a plan that could be made:
/// 0 nothing to do, 3 changes pending, 2 conflicts (the errors' code).
pub fn plan_exit(doc: &PlanDoc, detailed: bool) -> u8 {
    match (doc.ok, doc.changes && detailed) {
        (false, _) => crate::commands::EXIT_INVALID,
        (true, true) => crate::commands::EXIT_CHANGES,
        (true, false) => crate::commands::EXIT_OK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::{ActionKind, UnitAction};

    #[test]
    fn the_detailed_exit_status_says_whether_apply_would_change_anything() {
        let noop = PlanDoc::planned(Plan::default(), true);
        assert_eq!((plan_exit(&noop, true), plan_exit(&noop, false)), (0, 0));
        let mut p = Plan::default();
        p.actions.push(UnitAction {
            kind: ActionKind::Start,
            unit: "web.service".into(),
            reason: "stopped outside a change".into(),
        });
        let pending = PlanDoc::planned(p.clone(), true);
        assert!(pending.changes);
        assert_eq!(
            (plan_exit(&pending, true), plan_exit(&pending, false)),
            (3, 0)
        );
        p.conflicts
            .push("web.container: not the agent's file".into());
        let conflict = PlanDoc::planned(p, true);
        assert_eq!(conflict.errors.len(), 1);
        assert_eq!(plan_exit(&conflict, true), 2);
    }
}
