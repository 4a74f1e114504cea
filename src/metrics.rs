//! Metrics without a port: the daemon's figures as a Prometheus text-format
//! file for node_exporter's textfile collector (`metrics_file` in
//! agent.toml). The daemon owns one [`Metrics`], tells it what changed (an
//! apply finished, a rollback, a unit's state or health changed) and it
//! rewrites the whole file atomically (a temporary file in the same
//! directory, renamed over the old one), so the collector never reads half a
//! file. Nothing is written on a probe that changes nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
#[error("cannot write the metrics file {path}: {source}")]
pub struct MetricsError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// systemd's ActiveState values, each always present in `deploy_agent_units`
/// so a state that empties reads 0 rather than vanishing.
const ACTIVE_STATES: &[&str] = &[
    "active",
    "activating",
    "deactivating",
    "inactive",
    "failed",
    "reloading",
];

/// The supervisor's health states (see `supervise::health_kinds`).
pub const HEALTH_STATES: &[&str] = &["starting", "healthy", "unhealthy", "failed", "stopped"];

#[derive(Debug, Clone, Copy, PartialEq)]
struct LastApply {
    ok: bool,
    duration: Duration,
    at: SystemTime,
}

/// What the file says, kept between writes.
#[derive(Debug, Default)]
pub struct Metrics {
    path: Option<PathBuf>,
    generation: Option<u64>,
    last_apply: Option<LastApply>,
    applies_ok: u64,
    applies_failed: u64,
    rollbacks: u64,
    /// Container unit -> ActiveState (`None` until systemd has said).
    units: BTreeMap<String, Option<String>>,
    /// Checked unit -> health state (one of [`HEALTH_STATES`]).
    health: BTreeMap<String, &'static str>,
}

impl Metrics {
    /// `path`: where to write; `None` (not configured) writes nothing.
    pub fn new(path: Option<PathBuf>, generation: Option<u64>) -> Metrics {
        Metrics {
            path,
            generation,
            ..Metrics::default()
        }
    }

    pub fn enabled(&self) -> bool {
        self.path.is_some()
    }

    /// An apply ended.
    pub fn applied(&mut self, ok: bool, duration: Duration) {
        self.last_apply = Some(LastApply {
            ok,
            duration,
            at: SystemTime::now(),
        });
        if ok {
            self.applies_ok += 1;
        } else {
            self.applies_failed += 1;
        }
    }

    /// A generation was recorded (by an apply or a rollback).
    pub fn generation(&mut self, generation: u64) {
        self.generation = Some(generation);
    }

    pub fn rolled_back(&mut self) {
        self.rollbacks += 1;
    }

    /// The containers' units now: drops the ones no longer managed.
    pub fn set_units(&mut self, units: &[String]) {
        self.units.retain(|u, _| units.contains(u));
        for u in units {
            self.units.entry(u.clone()).or_default();
        }
    }

    /// A unit's ActiveState; true if that is news.
    pub fn unit_state(&mut self, unit: &str, state: &str) -> bool {
        match self.units.get_mut(unit) {
            Some(Some(s)) if s == state => false,
            Some(s) => {
                *s = Some(state.to_string());
                true
            }
            None => false,
        }
    }

    /// Every checked unit's health.
    pub fn set_health(&mut self, health: BTreeMap<String, &'static str>) {
        self.health = health;
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        family(
            &mut s,
            "deploy_agent_units",
            "gauge",
            "Managed container units by systemd ActiveState.",
        );
        for state in ACTIVE_STATES {
            let n = self
                .units
                .values()
                .filter(|s| s.as_deref() == Some(*state))
                .count();
            let _ = writeln!(s, "deploy_agent_units{{state=\"{state}\"}} {n}");
        }
        family(
            &mut s,
            "deploy_agent_unit_health",
            "gauge",
            "Health of each unit with a health check: 1 for its current state, 0 for the others.",
        );
        for (unit, now) in &self.health {
            for state in HEALTH_STATES {
                let v = u8::from(now == state);
                let _ = writeln!(
                    s,
                    "deploy_agent_unit_health{{unit=\"{}\",state=\"{state}\"}} {v}",
                    escape(unit)
                );
            }
        }
        if let Some(g) = self.generation {
            family(
                &mut s,
                "deploy_agent_generation",
                "gauge",
                "The newest generation applied.",
            );
            let _ = writeln!(s, "deploy_agent_generation {g}");
        }
        if let Some(a) = self.last_apply {
            family(
                &mut s,
                "deploy_agent_last_apply_success",
                "gauge",
                "1 if the last apply succeeded, 0 if it failed.",
            );
            let _ = writeln!(s, "deploy_agent_last_apply_success {}", u8::from(a.ok));
            family(
                &mut s,
                "deploy_agent_last_apply_duration_seconds",
                "gauge",
                "How long the last apply took.",
            );
            let _ = writeln!(
                s,
                "deploy_agent_last_apply_duration_seconds {:.3}",
                a.duration.as_secs_f64()
            );
            family(
                &mut s,
                "deploy_agent_last_apply_timestamp_seconds",
                "gauge",
                "When the last apply ended, in seconds since the epoch.",
            );
            let at =
                a.at.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default();
            let _ = writeln!(
                s,
                "deploy_agent_last_apply_timestamp_seconds {}",
                at.as_secs()
            );
        }
        family(
            &mut s,
            "deploy_agent_applies_total",
            "counter",
            "Applies since the daemon started, by result.",
        );
        let _ = writeln!(
            s,
            "deploy_agent_applies_total{{result=\"ok\"}} {}",
            self.applies_ok
        );
        let _ = writeln!(
            s,
            "deploy_agent_applies_total{{result=\"failed\"}} {}",
            self.applies_failed
        );
        family(
            &mut s,
            "deploy_agent_rollbacks_total",
            "counter",
            "Rollbacks after failed health checks since the daemon started.",
        );
        let _ = writeln!(s, "deploy_agent_rollbacks_total {}", self.rollbacks);
        s
    }

    /// Rewrites the file (if configured), atomically.
    pub fn write(&self) -> Result<(), MetricsError> {
        match &self.path {
            Some(path) => write_atomic(path, &self.render()),
            None => Ok(()),
        }
    }
}

fn family(s: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(s, "# HELP {name} {help}");
    let _ = writeln!(s, "# TYPE {name} {kind}");
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes `text` to a temporary file next to `path` (readable by the
/// collector's user: 0644), then renames it over `path`.
fn write_atomic(path: &Path, text: &str) -> Result<(), MetricsError> {
    let err = |source| MetricsError {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // The collector reads only `*.prom`: the temporary name must not match.
    let mut tmp = tempfile::Builder::new()
        .prefix(".deploy-agent-metrics")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(text.as_bytes()).map_err(err)?;
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_and_writes_atomically() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("deploy_agent.prom");
        let mut m = Metrics::new(Some(path.clone()), Some(3));
        m.set_units(&["web.service".into(), "db.service".into()]);
        assert!(m.unit_state("web.service", "active"));
        assert!(!m.unit_state("web.service", "active"), "no news");
        assert!(!m.unit_state("other.service", "active"), "not managed");
        m.set_health(BTreeMap::from([("web.service".into(), "healthy")]));
        m.applied(true, Duration::from_millis(1500));
        m.generation(4);
        m.rolled_back();
        m.write().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        for line in [
            "deploy_agent_units{state=\"active\"} 1",
            "deploy_agent_units{state=\"inactive\"} 0",
            "deploy_agent_units{state=\"failed\"} 0",
            "deploy_agent_unit_health{unit=\"web.service\",state=\"healthy\"} 1",
            "deploy_agent_unit_health{unit=\"web.service\",state=\"failed\"} 0",
            "deploy_agent_generation 4",
            "deploy_agent_last_apply_success 1",
            "deploy_agent_last_apply_duration_seconds 1.500",
            "deploy_agent_applies_total{result=\"ok\"} 1",
            "deploy_agent_rollbacks_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("deploy_agent.prom")],
            "no temporary left"
        );
        m.set_units(&["db.service".into()]);
        assert!(!m
            .render()
            .contains("deploy_agent_units{state=\"active\"} 1"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn an_unwritable_place_is_a_located_error() {
        let m = Metrics::new(Some("/nonexistent/dir/x.prom".into()), None);
        let e = m.write().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot write the metrics file /nonexistent/dir/x.prom"),
            "{e}"
        );
        assert!(Metrics::new(None, None).write().is_ok());
    }
}
