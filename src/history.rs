//! History: every apply that changed something is a numbered generation in
//! the state directory — the specs as read, the rendered files, when, what
//! happened and the health verdict — so `rollback` can re-apply one.
//!
//! Layout: `STATE/generations/NNNNNN/{meta.json, specs/, rendered/}`.
//! Generations are written to a temp dir and renamed into place, so a crash
//! never leaves a half generation. A generation is recorded `pending` before
//! any unit is touched and finished after, so history never lacks what
//! runs: a crash in between leaves it `pending` until the next apply settles
//! it. Secret values never reach here: specs only name secret source files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("{path}: unreadable generation record: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("no generation {0} in the history (see `deploy-agent history`)")]
    NoSuchGeneration(u64),
    #[error("no earlier good generation to roll back to")]
    NothingToRollBackTo,
}

fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> HistoryError + 'a {
    move |source| HistoryError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every unit job succeeded.
    Ok,
    /// At least one unit job failed.
    Failed,
    /// Recorded before the units were touched: the apply is under way, or a
    /// crash stopped it (until the next apply settles it).
    Pending,
    /// A crash stopped the apply, and the next apply had to change units
    /// again to make them match: what this generation ran is not known.
    Interrupted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    #[default]
    Unknown,
    Healthy,
    Unhealthy,
}

/// `meta.json` of a generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub generation: u64,
    /// Seconds since the epoch.
    pub time: u64,
    pub outcome: Outcome,
    /// Failures in operator words, empty when ok.
    pub errors: Vec<String>,
    /// What made this generation: "apply", "run", "rollback to 3", ...
    pub origin: String,
    pub health: Verdict,
    /// Spec file paths as read.
    pub spec_files: Vec<String>,
    /// Rendered file names.
    pub files: Vec<String>,
    /// How an interrupted apply was settled, for the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Meta {
    pub fn time_rfc3339(&self) -> String {
        humantime::format_rfc3339_seconds(
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(self.time),
        )
        .to_string()
    }
}

/// A generation loaded back.
#[derive(Debug, Clone)]
pub struct Generation {
    pub meta: Meta,
    pub rendered: BTreeMap<String, String>,
}

pub struct History {
    dir: PathBuf,
}

impl History {
    pub fn new(state_dir: &Path) -> History {
        History {
            dir: state_dir.join("generations"),
        }
    }

    fn gen_dir(&self, n: u64) -> PathBuf {
        self.dir.join(format!("{n:06}"))
    }

    /// Generation numbers present, ascending.
    pub fn numbers(&self) -> Result<Vec<u64>, HistoryError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io(&self.dir, "cannot list")(e)),
        };
        let mut out: Vec<u64> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    pub fn list(&self) -> Result<Vec<Meta>, HistoryError> {
        self.numbers()?.into_iter().map(|n| self.meta(n)).collect()
    }

    pub fn meta(&self, n: u64) -> Result<Meta, HistoryError> {
        let path = self.gen_dir(n).join("meta.json");
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HistoryError::NoSuchGeneration(n))
            }
            Err(e) => return Err(io(&path, "cannot read")(e)),
        };
        serde_json::from_str(&text).map_err(|source| HistoryError::Corrupt { path, source })
    }

    pub fn load(&self, n: u64) -> Result<Generation, HistoryError> {
        let meta = self.meta(n)?;
        let dir = self.gen_dir(n).join("rendered");
        let mut rendered = BTreeMap::new();
        for name in &meta.files {
            let p = dir.join(name);
            rendered.insert(
                name.clone(),
                fs::read_to_string(&p).map_err(io(&p, "cannot read"))?,
            );
        }
        Ok(Generation { meta, rendered })
    }

    /// The spec files of generation `n` as they were read: (original path, text).
    pub fn specs(&self, n: u64) -> Result<Vec<(PathBuf, String)>, HistoryError> {
        let meta = self.meta(n)?;
        let dir = self.gen_dir(n).join("specs");
        let mut out = Vec::new();
        for (i, path) in meta.spec_files.iter().enumerate() {
            let base = Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let p = dir.join(format!("{i:03}-{base}"));
            out.push((
                PathBuf::from(path),
                fs::read_to_string(&p).map_err(io(&p, "cannot read"))?,
            ));
        }
        Ok(out)
    }

    pub fn latest(&self) -> Result<Option<Meta>, HistoryError> {
        match self.numbers()?.last() {
            Some(n) => self.meta(*n).map(Some),
            None => Ok(None),
        }
    }

    /// The newest good generation before `before` (or before the latest).
    pub fn previous_good(&self, before: Option<u64>) -> Result<Generation, HistoryError> {
        let nums = self.numbers()?;
        let limit = before.or_else(|| nums.last().copied()).unwrap_or(0);
        for n in nums.into_iter().rev().filter(|n| *n < limit) {
            let m = self.meta(n)?;
            if m.outcome == Outcome::Ok && m.health != Verdict::Unhealthy {
                return self.load(n);
            }
        }
        Err(HistoryError::NothingToRollBackTo)
    }

    /// Records a new generation; returns its number. Keeps at most `keep`.
    pub fn record(
        &self,
        specs: &[(PathBuf, String)],
        rendered: &BTreeMap<String, String>,
        outcome: Outcome,
        errors: Vec<String>,
        origin: &str,
        keep: u32,
    ) -> Result<u64, HistoryError> {
        fs::create_dir_all(&self.dir).map_err(io(&self.dir, "cannot create"))?;
        let n = self.numbers()?.last().copied().unwrap_or(0) + 1;
        let tmp = self.dir.join(format!(".tmp-{n:06}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let write = |p: PathBuf, text: &str| fs::write(&p, text).map_err(io(&p, "cannot write"));
        fs::create_dir_all(tmp.join("specs")).map_err(io(&tmp, "cannot create"))?;
        fs::create_dir_all(tmp.join("rendered")).map_err(io(&tmp, "cannot create"))?;
        let mut spec_files = Vec::new();
        for (i, (path, text)) in specs.iter().enumerate() {
            let base = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            write(tmp.join("specs").join(format!("{i:03}-{base}")), text)?;
            spec_files.push(path.display().to_string());
        }
        for (name, text) in rendered {
            write(tmp.join("rendered").join(name), text)?;
        }
        let meta = Meta {
            generation: n,
            time: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            outcome,
            errors,
            origin: origin.to_string(),
            health: Verdict::Unknown,
            spec_files,
            files: rendered.keys().cloned().collect(),
            note: None,
        };
        let json = serde_json::to_string_pretty(&meta).expect("meta serializes");
        write(tmp.join("meta.json"), &json)?;
        let dest = self.gen_dir(n);
        fs::rename(&tmp, &dest).map_err(io(&dest, "cannot rename into place"))?;
        self.prune(keep)?;
        Ok(n)
    }

    /// Sets the health verdict of a generation.
    pub fn set_health(&self, n: u64, health: Verdict) -> Result<(), HistoryError> {
        self.update(n, |m| m.health = health)
    }

    /// Finishes a generation recorded as [`Outcome::Pending`].
    pub fn finish(
        &self,
        n: u64,
        outcome: Outcome,
        errors: Vec<String>,
    ) -> Result<(), HistoryError> {
        self.update(n, |m| {
            m.outcome = outcome;
            m.errors = errors;
        })
    }

    /// Settles the newest generation if a crash left it pending: `Ok` when
    /// the apply now under way found nothing left to do (`converged`: the
    /// units run exactly its files), `Interrupted` otherwise. Returns the
    /// generation settled.
    pub fn settle_interrupted(
        &self,
        desired: &BTreeMap<String, String>,
        converged: bool,
    ) -> Result<Option<u64>, HistoryError> {
        let Some(latest) = self.latest()? else {
            return Ok(None);
        };
        if latest.outcome != Outcome::Pending {
            return Ok(None);
        }
        let n = latest.generation;
        let same = self.load(n)?.rendered == *desired;
        self.update(n, |m| {
            if converged && same {
                m.outcome = Outcome::Ok;
                m.note = Some(
                    "the agent stopped before recording the end of this apply; \
                     the next apply found every unit as specified"
                        .into(),
                );
            } else {
                m.outcome = Outcome::Interrupted;
                m.note = Some(
                    "the agent stopped before this apply finished; \
                     the next apply changed units again"
                        .into(),
                );
            }
        })?;
        Ok(Some(n))
    }

    /// Rewrites a generation's `meta.json` (atomically) with `change` applied.
    fn update(&self, n: u64, change: impl FnOnce(&mut Meta)) -> Result<(), HistoryError> {
        let mut meta = self.meta(n)?;
        let before = meta.clone();
        change(&mut meta);
        if meta == before {
            return Ok(());
        }
        let path = self.gen_dir(n).join("meta.json");
        let tmp = self.gen_dir(n).join(".meta.json.tmp");
        let json = serde_json::to_string_pretty(&meta).expect("meta serializes");
        fs::write(&tmp, json).map_err(io(&tmp, "cannot write"))?;
        fs::rename(&tmp, &path).map_err(io(&path, "cannot rename into place"))
    }

    fn prune(&self, keep: u32) -> Result<(), HistoryError> {
        let nums = self.numbers()?;
        let excess = nums.len().saturating_sub(keep.max(1) as usize);
        for n in &nums[..excess] {
            let d = self.gen_dir(*n);
            fs::remove_dir_all(&d).map_err(io(&d, "cannot remove"))?;
        }
        // Leftovers of a record interrupted by a crash.
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn record_list_load_prune() {
        let d = tempfile::tempdir().unwrap();
        let h = History::new(d.path());
        assert!(h.list().unwrap().is_empty());
        let specs = vec![(
            PathBuf::from("/etc/deploy-agent/specs/web.toml"),
            "[container.web]\n".to_string(),
        )];
        for i in 1..=4 {
            let n = h
                .record(
                    &specs,
                    &files(&[("web.container", &format!("v{i}"))]),
                    Outcome::Ok,
                    vec![],
                    "apply",
                    3,
                )
                .unwrap();
            assert_eq!(n, i);
        }
        assert_eq!(h.numbers().unwrap(), [2, 3, 4]);
        let g = h.load(3).unwrap();
        assert_eq!(g.rendered["web.container"], "v3");
        assert_eq!(g.meta.spec_files, ["/etc/deploy-agent/specs/web.toml"]);
        assert_eq!(h.specs(3).unwrap(), specs);
        assert!(matches!(h.load(1), Err(HistoryError::NoSuchGeneration(1))));
    }

    #[test]
    fn a_pending_generation_is_settled_by_the_next_apply() {
        let d = tempfile::tempdir().unwrap();
        let h = History::new(d.path());
        let r = |v: &str| files(&[("web.container", v)]);
        // Finished normally: nothing to settle.
        let n = h.record(&[], &r("a"), Outcome::Pending, vec![], "apply", 10);
        h.finish(n.unwrap(), Outcome::Ok, vec![]).unwrap();
        assert_eq!(h.settle_interrupted(&r("a"), true).unwrap(), None);
        // A crash after the jobs: the next apply finds nothing to do.
        h.record(&[], &r("b"), Outcome::Pending, vec![], "apply", 10)
            .unwrap();
        assert_eq!(h.settle_interrupted(&r("b"), true).unwrap(), Some(2));
        let m = h.meta(2).unwrap();
        assert_eq!(m.outcome, Outcome::Ok);
        assert!(m.note.unwrap().contains("found every unit as specified"));
        assert_eq!(h.settle_interrupted(&r("b"), true).unwrap(), None, "once");
        // A crash before the jobs: the next apply has work to do, or the
        // specs changed since.
        for (desired, converged) in [(r("c"), false), (r("other"), true)] {
            let n = h
                .record(&[], &r("c"), Outcome::Pending, vec![], "apply", 10)
                .unwrap();
            assert_eq!(h.settle_interrupted(&desired, converged).unwrap(), Some(n));
            assert_eq!(h.meta(n).unwrap().outcome, Outcome::Interrupted);
        }
        // Neither pending nor interrupted generations are rolled back to.
        h.record(&[], &r("d"), Outcome::Pending, vec![], "apply", 10)
            .unwrap();
        assert_eq!(h.previous_good(None).unwrap().meta.generation, 2);
    }

    #[test]
    fn previous_good_skips_failed_and_unhealthy() {
        let d = tempfile::tempdir().unwrap();
        let h = History::new(d.path());
        let r = |v: &str| files(&[("web.container", v)]);
        h.record(&[], &r("good"), Outcome::Ok, vec![], "apply", 10)
            .unwrap();
        h.record(
            &[],
            &r("failed"),
            Outcome::Failed,
            vec!["web.service failed".into()],
            "apply",
            10,
        )
        .unwrap();
        h.record(&[], &r("sick"), Outcome::Ok, vec![], "apply", 10)
            .unwrap();
        h.set_health(3, Verdict::Unhealthy).unwrap();
        h.record(&[], &r("new"), Outcome::Ok, vec![], "apply", 10)
            .unwrap();
        assert_eq!(
            h.previous_good(None).unwrap().rendered["web.container"],
            "good"
        );
        assert_eq!(h.previous_good(Some(4)).unwrap().meta.generation, 1);
        assert!(matches!(
            h.previous_good(Some(1)),
            Err(HistoryError::NothingToRollBackTo)
        ));
    }
}
