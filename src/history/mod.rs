//! History: every apply that changed something is a numbered generation in
//! the state directory — the specs as read, the rendered files, when, what
//! happened and the health verdict — so `rollback` can re-apply one.
//!
//! Layout: `STATE/generations/NNNNNN/meta.json` per generation, and the
//! files' contents stored once each by their SHA-256 in
//! `STATE/generations/objects/HASH`: a generation's `meta.json` names the
//! object of each spec and rendered file, so a generation costs one new
//! record plus the files that changed, not a copy of every file. Objects no
//! generation names any more are removed when generations are pruned.
//! Generations are written to a temp dir and renamed into place after their
//! objects, so a crash never leaves a half generation nor one naming a
//! missing object. A generation is recorded `pending` before any unit is
//! touched and finished after, so history never lacks what runs: a crash in
//! between leaves it `pending` until the next apply settles it. Secret
//! values never reach here: specs only name secret source files.
//!
//! Older agents kept full copies (`NNNNNN/{specs/, rendered/}`): they are
//! read as they are and moved to objects by the next record (see
//! [`History::migrate`]), one generation at a time, crash-safe.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

mod legacy;
mod objects;

use objects::Objects;

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
    #[error("{path}: damaged history object: {why}")]
    BadObject { path: PathBuf, why: &'static str },
    #[cfg(test)]
    #[error("simulated crash at {0}")]
    Crashed(&'static str),
}

pub(crate) fn io<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> HistoryError + 'a {
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

/// `meta.json` on disk: the record shown by `history` plus the objects of
/// the generation's files (absent in a generation an older agent wrote).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    #[serde(flatten)]
    meta: Meta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    objects: Option<Content>,
}

/// The objects of a generation's files.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct Content {
    /// One per `Meta::spec_files`, in that order.
    specs: Vec<String>,
    /// Rendered file name -> object.
    rendered: BTreeMap<String, String>,
}

impl Content {
    fn names(&self) -> impl Iterator<Item = &str> {
        self.specs
            .iter()
            .chain(self.rendered.values())
            .map(String::as_str)
    }
}

pub struct History {
    dir: PathBuf,
}

/// Crash points: `failpoint!` (SIGKILL, feature `failpoints`) and, in unit
/// tests, an early return at the point named by `tests::crash_at`, which
/// leaves the state directory as a crash there would.
macro_rules! step {
    ($name:literal) => {
        crate::failpoint!($name);
        #[cfg(test)]
        if $crate::history::tests::crash_here($name) {
            return Err(HistoryError::Crashed($name));
        }
    };
}
pub(crate) use step;

impl History {
    pub fn new(state_dir: &Path) -> History {
        History {
            dir: state_dir.join("generations"),
        }
    }

    fn gen_dir(&self, n: u64) -> PathBuf {
        self.dir.join(format!("{n:06}"))
    }

    fn objects(&self) -> Objects {
        Objects::new(self.dir.join("objects"))
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
        self.record_of(n).map(|r| r.meta)
    }

    fn record_of(&self, n: u64) -> Result<Record, HistoryError> {
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

    /// Writes `record` as `dir/meta.json` atomically.
    fn write_record(dir: &Path, record: &Record) -> Result<(), HistoryError> {
        let path = dir.join("meta.json");
        let tmp = dir.join(".meta.json.tmp");
        // Compact: with the objects of every file, a record is O(files).
        let json = serde_json::to_string(record).expect("meta serializes");
        fs::write(&tmp, json).map_err(io(&tmp, "cannot write"))?;
        fs::rename(&tmp, &path).map_err(io(&path, "cannot rename into place"))
    }

    pub fn load(&self, n: u64) -> Result<Generation, HistoryError> {
        let record = self.record_of(n)?;
        let rendered = match &record.objects {
            Some(c) => {
                let objects = self.objects();
                c.rendered
                    .iter()
                    .map(|(name, h)| Ok((name.clone(), objects.get(h)?)))
                    .collect::<Result<_, HistoryError>>()?
            }
            None => legacy::rendered(&self.gen_dir(n), &record.meta)?,
        };
        Ok(Generation {
            meta: record.meta,
            rendered,
        })
    }

    /// The spec files of generation `n` as they were read: (original path, text).
    pub fn specs(&self, n: u64) -> Result<Vec<(PathBuf, String)>, HistoryError> {
        let record = self.record_of(n)?;
        let Some(c) = &record.objects else {
            return legacy::specs(&self.gen_dir(n), &record.meta);
        };
        let objects = self.objects();
        record
            .meta
            .spec_files
            .iter()
            .zip(&c.specs)
            .map(|(path, h)| Ok((PathBuf::from(path), objects.get(h)?)))
            .collect()
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
    /// Writes only the objects of texts no kept generation has, and moves
    /// generations an older agent wrote to objects first.
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
        self.migrate()?;
        let n = self.numbers()?.last().copied().unwrap_or(0) + 1;
        let objects = self.objects();
        let content = Content {
            specs: specs
                .iter()
                .map(|(_, text)| objects.put(text))
                .collect::<Result<_, _>>()?,
            rendered: rendered
                .iter()
                .map(|(name, text)| Ok((name.clone(), objects.put(text)?)))
                .collect::<Result<_, HistoryError>>()?,
        };
        step!("history-after-objects");
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
            spec_files: specs.iter().map(|(p, _)| p.display().to_string()).collect(),
            files: rendered.keys().cloned().collect(),
            note: None,
        };
        let tmp = self.dir.join(format!(".tmp-{n:06}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(io(&tmp, "cannot create"))?;
        let record = Record {
            meta,
            objects: Some(content),
        };
        Self::write_record(&tmp, &record)?;
        let dest = self.gen_dir(n);
        fs::rename(&tmp, &dest).map_err(io(&dest, "cannot rename into place"))?;
        step!("history-after-rename");
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
        let mut record = self.record_of(n)?;
        let before = record.meta.clone();
        change(&mut record.meta);
        if record.meta == before {
            return Ok(());
        }
        Self::write_record(&self.gen_dir(n), &record)
    }

    /// Keeps the newest `keep` generations, then removes the objects none
    /// of them names and what a crash left of an interrupted record.
    ///
    /// Cheap in the common case: only the objects the removed generations
    /// named are candidates, and one stays when a kept record's text
    /// contains its name (a record names objects by their 64-hex SHA-256,
    /// which nothing else in it looks like; a false match only keeps an
    /// object). Objects a crash left unnamed are found by a full mark and
    /// sweep, after a crash left a temp record and every `keep` generations.
    fn prune(&self, keep: u32) -> Result<(), HistoryError> {
        let nums = self.numbers()?;
        let excess = nums.len().saturating_sub(keep.max(1) as usize);
        let mut candidates = BTreeSet::new();
        for n in &nums[..excess] {
            if let Some(c) = self.record_of(*n)?.objects {
                candidates.extend(c.names().map(str::to_string));
            }
            let d = self.gen_dir(*n);
            fs::remove_dir_all(&d).map_err(io(&d, "cannot remove"))?;
        }
        step!("history-after-prune");
        let crashed = self.remove_temp_records();
        let kept = &nums[excess..];
        let periodic = kept.last().is_some_and(|n| n % u64::from(keep.max(1)) == 0);
        if crashed || periodic {
            return self.sweep_all(kept);
        }
        if candidates.is_empty() {
            return Ok(());
        }
        let texts: Vec<String> = kept
            .iter()
            .map(|n| {
                let p = self.gen_dir(*n).join("meta.json");
                fs::read_to_string(&p).map_err(io(&p, "cannot read"))
            })
            .collect::<Result<_, _>>()?;
        let objects = self.objects();
        for name in candidates {
            if !texts.iter().any(|t| t.contains(&name)) {
                objects.remove(&name)?;
            }
        }
        Ok(())
    }

    /// Removes what a crash left of records being written; whether any.
    fn remove_temp_records(&self) -> bool {
        let mut found = false;
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    found = true;
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        found
    }

    /// Removes every object the records of `kept` do not name.
    fn sweep_all(&self, kept: &[u64]) -> Result<(), HistoryError> {
        let records: Vec<Record> = kept
            .iter()
            .map(|n| self.record_of(*n))
            .collect::<Result<_, _>>()?;
        let named = records
            .iter()
            .filter_map(|r| r.objects.as_ref())
            .flat_map(Content::names)
            .collect();
        self.objects().sweep(&named)?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        static CRASH_AT: Cell<Option<&'static str>> = const { Cell::new(None) };
    }

    /// Makes the next `step!(name)` of this thread return `Crashed`.
    fn crash_at(name: Option<&'static str>) {
        CRASH_AT.with(|c| c.set(name));
    }

    pub(crate) fn crash_here(name: &str) -> bool {
        CRASH_AT.with(|c| c.get() == Some(name))
    }

    /// Everything a generation holds, as `history` and `rollback` read it.
    type Snapshot = (Meta, BTreeMap<String, String>, Vec<(PathBuf, String)>);
    fn snapshot(h: &History) -> Vec<Snapshot> {
        h.numbers()
            .unwrap()
            .into_iter()
            .map(|n| {
                let g = h.load(n).unwrap();
                (g.meta, g.rendered, h.specs(n).unwrap())
            })
            .collect()
    }

    fn object_count(state: &Path) -> usize {
        fs::read_dir(state.join("generations/objects"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// A generation as agents before the object store wrote it.
    fn write_old(state: &Path, n: u64, specs: &[(&str, &str)], rendered: &[(&str, &str)]) {
        let dir = state.join(format!("generations/{n:06}"));
        fs::create_dir_all(dir.join("specs")).unwrap();
        fs::create_dir_all(dir.join("rendered")).unwrap();
        for (i, (path, text)) in specs.iter().enumerate() {
            let base = Path::new(path).file_name().unwrap().to_str().unwrap();
            fs::write(dir.join(format!("specs/{i:03}-{base}")), text).unwrap();
        }
        for (name, text) in rendered {
            fs::write(dir.join("rendered").join(name), text).unwrap();
        }
        let meta = Meta {
            generation: n,
            time: 1_700_000_000 + n,
            outcome: Outcome::Ok,
            errors: vec![],
            origin: "apply".into(),
            health: Verdict::Healthy,
            spec_files: specs.iter().map(|(p, _)| p.to_string()).collect(),
            files: rendered.iter().map(|(f, _)| f.to_string()).collect(),
            note: None,
        };
        fs::write(
            dir.join("meta.json"),
            serde_json::to_string_pretty(&meta).unwrap(),
        )
        .unwrap();
    }

    fn old_state() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let spec = ("/specs/web.toml", "[container.web]\n");
        write_old(d.path(), 1, &[spec], &[("web.container", "v1")]);
        write_old(
            d.path(),
            2,
            &[spec, ("/specs/db.toml", "[container.db]\n")],
            &[("web.container", "v1"), ("db.container", "d1")],
        );
        d
    }

    #[test]
    fn old_generations_are_read_as_they_are_and_migrated_by_the_next_record() {
        let d = old_state();
        let h = History::new(d.path());
        let before = snapshot(&h);
        assert_eq!(before[1].1["db.container"], "d1");
        assert_eq!(before[1].2[1].1, "[container.db]\n");
        let n = h
            .record(
                &[],
                &files(&[("web.container", "v1")]),
                Outcome::Ok,
                vec![],
                "apply",
                20,
            )
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(snapshot(&h)[..2], before[..], "nothing lost or changed");
        for n in 1..=2 {
            let dir = d.path().join(format!("generations/{n:06}"));
            assert!(!dir.join("specs").exists() && !dir.join("rendered").exists());
        }
        // web.toml, db.toml, v1, d1: each once.
        assert_eq!(object_count(d.path()), 4);
        assert_eq!(h.migrate().unwrap(), 0, "nothing left to migrate");
    }

    #[test]
    fn a_crash_at_any_step_of_the_migration_loses_nothing_and_the_next_record_finishes_it() {
        for point in [
            "migrate-after-objects",
            "migrate-after-record",
            "migrate-after-remove",
        ] {
            let d = old_state();
            let h = History::new(d.path());
            let before = snapshot(&h);
            let r = files(&[("web.container", "v2")]);
            crash_at(Some(point));
            let e = h.record(&[], &r, Outcome::Ok, vec![], "apply", 20);
            crash_at(None);
            assert!(
                matches!(e, Err(HistoryError::Crashed(p)) if p == point),
                "{point}: {e:?}"
            );
            assert_eq!(snapshot(&h), before, "{point}: readable as before");
            h.record(&[], &r, Outcome::Ok, vec![], "apply", 20).unwrap();
            assert_eq!(snapshot(&h)[..2], before[..], "{point}");
            assert_eq!(h.load(3).unwrap().rendered, r, "{point}");
            assert_eq!(h.migrate().unwrap(), 0, "{point}");
            assert_eq!(object_count(d.path()), 5, "{point}: no stray object");
        }
    }

    #[test]
    fn a_crash_while_recording_keeps_the_history_whole() {
        for point in [
            "history-after-objects",
            "history-after-rename",
            "history-after-prune",
        ] {
            let d = tempfile::tempdir().unwrap();
            let h = History::new(d.path());
            for v in ["v1", "v2"] {
                h.record(
                    &[],
                    &files(&[("web.container", v)]),
                    Outcome::Ok,
                    vec![],
                    "apply",
                    2,
                )
                .unwrap();
            }
            crash_at(Some(point));
            let r = files(&[("web.container", "v3")]);
            let e = h.record(&[], &r, Outcome::Ok, vec![], "apply", 2);
            crash_at(None);
            assert!(matches!(e, Err(HistoryError::Crashed(_))), "{point}: {e:?}");
            for n in h.numbers().unwrap() {
                h.load(n).unwrap();
            }
            // The next records: an object the crash left unnamed goes by
            // the periodic full sweep at the latest.
            for v in ["v4", "v5"] {
                let r = files(&[("web.container", v)]);
                h.record(&[], &r, Outcome::Ok, vec![], "apply", 2).unwrap();
            }
            let kept: Vec<String> = h
                .numbers()
                .unwrap()
                .into_iter()
                .map(|n| h.load(n).unwrap().rendered["web.container"].clone())
                .collect();
            assert_eq!(kept, ["v4", "v5"], "{point}");
            assert_eq!(object_count(d.path()), 2, "{point}: only what is named");
        }
    }

    #[test]
    fn a_generation_costs_the_files_that_changed() {
        let d = tempfile::tempdir().unwrap();
        let h = History::new(d.path());
        let mut r: BTreeMap<String, String> = (0..100)
            .map(|i| (format!("s{i}.container"), format!("v0 {i}")))
            .collect();
        let specs: Vec<(PathBuf, String)> = (0..100)
            .map(|i| {
                (
                    PathBuf::from(format!("/specs/s{i}.toml")),
                    format!("spec {i}"),
                )
            })
            .collect();
        h.record(&specs, &r, Outcome::Ok, vec![], "apply", 3)
            .unwrap();
        assert_eq!(object_count(d.path()), 200);
        for round in 1..=5 {
            r.insert("s7.container".into(), format!("v{round} 7"));
            h.record(&specs, &r, Outcome::Ok, vec![], "apply", 3)
                .unwrap();
            // One new object per generation; the oldest ones' go with them.
            assert_eq!(object_count(d.path()), 200 + round.min(2), "round {round}");
        }
        assert_eq!(
            h.specs(8).unwrap_err().to_string(),
            HistoryError::NoSuchGeneration(8).to_string()
        );
        assert_eq!(h.specs(6).unwrap(), specs);
    }

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
