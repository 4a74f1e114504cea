//! `deploy-agent status`: each managed unit's state as systemd reports it,
//! with the health the daemon last saw, memory use against the limit, and
//! the generation applied.

use std::fmt::Write as _;

use serde::Serialize;

use crate::config::Config;
use crate::history::History;
use crate::reconcile::unit_for_file;
use crate::systemd::Systemd;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub unit: String,
    pub file: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    pub health: String,
    pub last_check: Option<String>,
    pub last_result: Option<String>,
    pub restarts: u32,
    pub memory_current: Option<u64>,
    pub memory_max: Option<u64>,
    pub generation: Option<u64>,
    /// Why the unit is not running, when the agent can tell: e.g. a unit it
    /// requires that is not active (a health-gated dependency that never
    /// became healthy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

pub async fn collect(cfg: &Config, sd: &Systemd) -> anyhow::Result<Vec<Row>> {
    let current = crate::output::scan(&cfg.output_dir)?;
    let health = crate::supervise::load(&cfg.state_dir);
    let generation = History::new(&cfg.state_dir).latest()?.map(|m| m.generation);
    let mut rows = Vec::new();
    for file in current.managed.keys() {
        let Some(unit) = unit_for_file(file) else {
            continue;
        };
        let st = sd.unit_status(&unit).await?;
        let h = health.get(&unit);
        rows.push(Row {
            unit: unit.clone(),
            file: file.clone(),
            load_state: st.load_state,
            active_state: st.active_state,
            sub_state: st.sub_state,
            health: h.map(|h| h.state.clone()).unwrap_or_else(|| {
                if file.ends_with(".container") {
                    "no check".into()
                } else {
                    "-".into()
                }
            }),
            last_check: h.and_then(|h| h.last_check).map(|t| {
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(t),
                )
                .to_string()
            }),
            last_result: h.and_then(|h| h.last_result.clone()),
            restarts: st.n_restarts + h.map(|h| h.restarts).unwrap_or(0),
            memory_current: st.memory_current,
            memory_max: st.memory_max,
            generation: h.and_then(|h| h.generation).or(generation),
            note: None,
        });
    }
    add_dependency_notes(&mut rows, &current.managed);
    for (file, kind) in &current.foreign {
        if let Some(unit) = unit_for_file(file) {
            rows.push(unmanaged_row(
                unit.clone(),
                file,
                *kind,
                sd.unit_status(&unit).await?,
            ));
        }
    }
    Ok(rows)
}

/// A Quadlet file in the output directory without the agent's mark (edited
/// by hand, or never the agent's): listed, so that it does not vanish from
/// `status`, with what to do.
fn unmanaged_row(
    unit: String,
    file: &str,
    kind: crate::output::ForeignKind,
    st: crate::systemd::UnitStatus,
) -> Row {
    let what = match kind {
        crate::output::ForeignKind::Unmarked => "has no deploy-agent mark",
        crate::output::ForeignKind::Symlink => "is a symlink",
    };
    Row {
        unit,
        file: file.to_string(),
        load_state: st.load_state,
        active_state: st.active_state,
        sub_state: st.sub_state,
        health: "-".into(),
        last_check: None,
        last_result: None,
        restarts: st.n_restarts,
        memory_current: st.memory_current,
        memory_max: st.memory_max,
        generation: None,
        note: Some(format!(
            "not managed: {file} {what} (edited by hand, or not written by deploy-agent); the agent will not touch it: remove it, then apply"
        )),
    }
}

/// For each unit not active, the first unit it `Requires=` (in its rendered
/// file) that is not active either: that is why it is not running.
fn add_dependency_notes(rows: &mut [Row], files: &std::collections::BTreeMap<String, String>) {
    let state: std::collections::BTreeMap<String, (String, String)> = rows
        .iter()
        .map(|r| (r.unit.clone(), (r.active_state.clone(), r.health.clone())))
        .collect();
    for r in rows.iter_mut().filter(|r| r.active_state != "active") {
        let Some(text) = files.get(&r.file) else {
            continue;
        };
        let blocked = text
            .lines()
            .filter_map(|l| l.strip_prefix("Requires="))
            .find_map(|dep| {
                let (active, health) = state.get(dep)?;
                (active != "active").then_some((dep, active, health))
            });
        if let Some((dep, active, health)) = blocked {
            r.note = Some(format!(
                "not started: requires {dep}, which is {active}{}",
                if health == "no check" || health == "-" {
                    String::new()
                } else {
                    format!(" (health: {health}; it must be healthy before its dependents start)")
                }
            ));
        }
    }
}

/// Whether every row is well: the unit active, its health not unhealthy or
/// failed (`status` exits 1 otherwise, for monitoring scripts).
pub fn all_well(rows: &[Row]) -> bool {
    rows.iter().all(|r| {
        r.active_state == "active"
            && !matches!(r.health.as_str(), "unhealthy" | "failed")
            && !r
                .note
                .as_deref()
                .is_some_and(|n| n.starts_with("not managed"))
    })
}

pub fn table(rows: &[Row]) -> String {
    if rows.is_empty() {
        return "No managed units.\n".into();
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<32} {:<18} {:<22} {:>8} {:>17} {:>4}  LAST CHECK",
        "UNIT", "STATE", "HEALTH", "RESTARTS", "MEMORY/LIMIT", "GEN"
    );
    for r in rows {
        let mem = match (r.memory_current, r.memory_max) {
            (Some(c), Some(m)) => {
                format!("{}/{}", crate::budget::human(c), crate::budget::human(m))
            }
            (Some(c), None) => format!("{}/-", crate::budget::human(c)),
            (None, Some(m)) => format!("-/{}", crate::budget::human(m)),
            (None, None) => "-".into(),
        };
        let _ = writeln!(
            s,
            "{:<32} {:<18} {:<22} {:>8} {:>17} {:>4}  {}",
            r.unit,
            format!("{}/{}", r.active_state, r.sub_state),
            r.health,
            r.restarts,
            mem,
            r.generation
                .map(|g| g.to_string())
                .unwrap_or_else(|| "-".into()),
            match (&r.last_check, &r.last_result) {
                (Some(t), Some(res)) => format!("{t} {res}"),
                _ => "-".into(),
            }
        );
        if let Some(n) = &r.note {
            let _ = writeln!(s, "  {}: {n}", r.unit);
        }
    }
    s
}
