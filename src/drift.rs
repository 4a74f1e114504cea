//! Drift: container units the specs want running that are not, because
//! something outside a change stopped them (`podman stop`, `podman rm -f`,
//! `systemctl stop`, a crash systemd gave up on). The files still match
//! the specs, so comparing files sees nothing; the units' states, read from
//! systemd in one call for all of them, do. An apply then starts such units
//! again like any other change, with the reason in its report and journal.
//! `restart = "no"` containers are left as they are: their operator said a
//! stopped container stays stopped.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::spec::{Restart, SpecSet};
use crate::systemd::{Systemd, SystemdError};

/// The states that mean "not running, and nothing is bringing it back".
fn stopped_state(active_state: &str) -> bool {
    matches!(active_state, "inactive" | "failed")
}

/// `file name -> reason` for every container of `set` that should run, whose
/// file is already in `output_dir` (a new one is started as new), and whose
/// unit systemd shows stopped (or has unloaded: an inactive unit nothing
/// refers to). For [`crate::reconcile::Extra::restart`].
pub async fn stopped(
    sd: &Systemd,
    set: &SpecSet,
    output_dir: &Path,
) -> Result<BTreeMap<String, String>, SystemdError> {
    stopped_among(sd, &watched(set), output_dir).await
}

/// The container files of `set` whose units should be running.
pub fn watched(set: &SpecSet) -> Vec<String> {
    set.containers
        .values()
        .filter(|c| c.restart != Restart::No)
        .map(|c| format!("{}.container", c.name))
        .collect()
}

/// [`stopped`] for the container files `watched` (see [`watched`]).
pub async fn stopped_among(
    sd: &Systemd,
    watched: &[String],
    output_dir: &Path,
) -> Result<BTreeMap<String, String>, SystemdError> {
    let wanted: Vec<(&String, String)> = watched
        .iter()
        .filter(|file| output_dir.join(file).is_file())
        .filter_map(|file| Some((file, crate::reconcile::unit_for_file(file)?)))
        .collect();
    if wanted.is_empty() {
        return Ok(BTreeMap::new());
    }
    // Unit names have no glob characters: each pattern matches itself.
    let names: Vec<&str> = wanted.iter().map(|(_, u)| u.as_str()).collect();
    let listed = sd.list_units(&names).await?;
    let state: HashMap<&str, &str> = listed
        .iter()
        .map(|u| (u.name.as_str(), u.active_state.as_str()))
        .collect();
    Ok(wanted
        .into_iter()
        .filter_map(|(file, unit)| match state.get(unit.as_str()) {
            Some(s) if !stopped_state(s) => None,
            s => Some((file.clone(), reason(s.copied().unwrap_or("inactive")))),
        })
        .collect())
}

/// The reason an apply gives for starting a unit that drifted.
pub fn reason(active_state: &str) -> String {
    format!("stopped outside a change ({active_state})")
}

/// Whether a unit state change the daemon saw means its unit stopped
/// (from active, or on the way down through `deactivating`).
pub fn went_down(previous: &str, now: &str) -> bool {
    !stopped_state(previous) && stopped_state(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_settled_stop_is_drift() {
        assert!(went_down("active", "inactive"));
        assert!(went_down("active", "failed"));
        assert!(went_down("deactivating", "inactive"));
        // On the way down or back up: systemd (Restart=) or a job is at work.
        assert!(!went_down("active", "deactivating"));
        assert!(!went_down("active", "activating"));
        assert!(!went_down("inactive", "failed"));
        assert_eq!(reason("failed"), "stopped outside a change (failed)");
    }
}
