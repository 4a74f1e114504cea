//! Reconcile: turn a validated spec set into files and unit actions (plan),
//! and carry them out against systemd (apply), crash-safely.

pub mod affected;
pub mod apply;
pub mod plan;
pub mod stamp;

pub use plan::{compute, describe, unit_for_file, ActionKind, Extra, Plan, UnitAction};
