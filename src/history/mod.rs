//! History: every apply that changed something is a numbered generation in
//! the state directory — the specs as read, the rendered files, when, what
//! happened and the health verdict — so `rollback` can re-apply one.
//!
//! Layout: `STATE/generations/NNNNNN/meta.json` per generation, and the
//! files' contents stored once each by their SHA-256 in
//! `STATE/generations/objects/HASH`. A generation's `meta.json` is its
//! record (what `history` shows, with the number of spec and rendered
//! files) and names up to 64 bucket manifests, objects of the same store
//! that list the spec paths and rendered file names with their objects
//! (see [`manifest`]). An unchanged bucket's manifest is the same object
//! from one generation to the next, so a generation costs its record, the
//! manifests of the buckets that changed and the files that changed, not
//! a copy of every file nor a name per file; and recording skips the files
//! of the buckets the newest generation already names. Objects no kept
//! generation names any more are removed when generations are pruned (see
//! [`prune`]). Generations are written to a temp dir and renamed into
//! place after their objects (files, then manifests), so a crash never
//! leaves a half generation nor one naming a missing object. A generation
//! is recorded `pending` before any unit is touched and finished after, so
//! history never lacks what runs: a crash in between leaves it `pending`
//! until the next apply settles it. Secret values never reach here: specs
//! only name secret source files.
//!
//! Earlier layouts are read as they are: records naming every file's object
//! inline (`objects`, with the lists `spec_files` and `files`), kept until
//! pruned; and full copies (`NNNNNN/{specs/, rendered/}`), moved to objects
//! by the next record (see [`History::migrate`]), one generation at a time,
//! crash-safe.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

mod legacy;
mod manifest;
mod objects;
mod prune;

use manifest::{Listing, Manifest};
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

/// A generation as `history` shows it: the part of `meta.json` that is
/// not file lists.
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
    /// How many spec files were read.
    #[serde(default)]
    pub spec_count: usize,
    /// How many files were rendered.
    #[serde(default)]
    pub file_count: usize,
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

/// `meta.json` on disk: the record shown by `history` plus where the
/// generation's files are, in one of three layouts: `manifests` (this
/// agent's), or the file lists `spec_files` and `files` with `objects`
/// (the layout before), or without (full copies, the one before that).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    #[serde(flatten)]
    meta: Meta,
    /// Bucket -> manifest object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    manifests: Option<BTreeMap<u8, String>>,
    /// Spec file paths as read (earlier layouts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    spec_files: Vec<String>,
    /// Rendered file names (earlier layouts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    files: Vec<String>,
    /// The objects of every file (the layout before manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    objects: Option<Content>,
}

/// The objects of a generation's files, in a record of the layout before
/// manifests.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct Content {
    /// One per `Record::spec_files`, in that order.
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

impl Record {
    /// The file list of a record naming objects inline; None for the other layouts.
    fn inline_listing(&self) -> Option<Listing> {
        let c = self.objects.as_ref()?;
        Some(Listing {
            specs: self
                .spec_files
                .iter()
                .cloned()
                .zip(c.specs.clone())
                .collect(),
            rendered: c.rendered.clone(),
        })
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
        let mut record: Record =
            serde_json::from_str(&text).map_err(|source| HistoryError::Corrupt { path, source })?;
        if record.manifests.is_none() {
            record.meta.spec_count = record.spec_files.len();
            record.meta.file_count = record.files.len();
        }
        Ok(record)
    }

    /// Writes `record` as `dir/meta.json` atomically.
    fn write_record(dir: &Path, record: &Record) -> Result<(), HistoryError> {
        let path = dir.join("meta.json");
        let tmp = dir.join(".meta.json.tmp");
        let json = serde_json::to_string_pretty(record).expect("meta serializes");
        fs::write(&tmp, json).map_err(io(&tmp, "cannot write"))?;
        fs::rename(&tmp, &path).map_err(io(&path, "cannot rename into place"))
    }

    /// The file list of a generation stored in objects (None: full copies).
    fn listing(&self, record: &Record) -> Result<Option<Listing>, HistoryError> {
        let Some(names) = &record.manifests else {
            return Ok(record.inline_listing());
        };
        let objects = self.objects();
        let manifests = names
            .values()
            .map(|h| Manifest::read(&objects, h))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Listing::join(manifests)))
    }

    pub fn load(&self, n: u64) -> Result<Generation, HistoryError> {
        let record = self.record_of(n)?;
        let rendered = match self.listing(&record)? {
            Some(l) => {
                let objects = self.objects();
                l.rendered
                    .into_iter()
                    .map(|(name, h)| Ok((name, objects.get(&h)?)))
                    .collect::<Result<_, HistoryError>>()?
            }
            None => legacy::rendered(&self.gen_dir(n), &record.files)?,
        };
        Ok(Generation {
            meta: record.meta,
            rendered,
        })
    }

    /// The spec files of generation `n` as they were read: (original path, text).
    pub fn specs(&self, n: u64) -> Result<Vec<(PathBuf, String)>, HistoryError> {
        let record = self.record_of(n)?;
        let Some(l) = self.listing(&record)? else {
            return legacy::specs(&self.gen_dir(n), &record.spec_files);
        };
        let objects = self.objects();
        l.specs
            .into_iter()
            .map(|(path, h)| Ok((PathBuf::from(path), objects.get(&h)?)))
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
    /// Writes only the manifests of the buckets that changed since the
    /// newest generation and the objects of their files that no object
    /// holds yet, and moves generations an older agent wrote to objects
    /// first.
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
        let latest = self.numbers()?.last().copied();
        let n = latest.unwrap_or(0) + 1;
        // A kept generation's objects stay while it is kept: its manifests'
        // files need no look. (An unreadable record only costs the look.)
        let named: BTreeSet<String> = latest
            .and_then(|l| self.record_of(l).ok()?.manifests)
            .map(|m| m.into_values().collect())
            .unwrap_or_default();
        let manifests = self.store(specs, rendered, &named)?;
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
            spec_count: specs.len(),
            file_count: rendered.len(),
            note: None,
        };
        let tmp = self.dir.join(format!(".tmp-{n:06}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(io(&tmp, "cannot create"))?;
        let record = Record {
            meta,
            manifests: Some(manifests),
            spec_files: vec![],
            files: vec![],
            objects: None,
        };
        Self::write_record(&tmp, &record)?;
        let dest = self.gen_dir(n);
        fs::rename(&tmp, &dest).map_err(io(&dest, "cannot rename into place"))?;
        step!("history-after-rename");
        self.prune(keep)?;
        Ok(n)
    }

    /// Stores the objects of a generation's files, then the manifests of
    /// its buckets; returns the manifests (bucket -> object). A manifest in
    /// `named` (one a kept generation names) is there with its files, and
    /// is not looked at.
    fn store(
        &self,
        specs: &[(PathBuf, String)],
        rendered: &BTreeMap<String, String>,
        named: &BTreeSet<String>,
    ) -> Result<BTreeMap<u8, String>, HistoryError> {
        let spec_texts = specs.iter().map(|(_, t)| t);
        let spec_objects: Vec<String> = spec_texts.clone().map(|t| objects::hash(t)).collect();
        let file_objects: Vec<String> = rendered.values().map(|t| objects::hash(t)).collect();
        let texts: BTreeMap<&str, &str> = (spec_objects.iter().zip(spec_texts))
            .chain(file_objects.iter().zip(rendered.values()))
            .map(|(h, t)| (h.as_str(), t.as_str()))
            .collect();
        let paths = specs.iter().map(|(p, _)| p.display().to_string());
        let listing = Listing {
            specs: paths.zip(spec_objects.iter().cloned()).collect(),
            rendered: (rendered.keys().cloned())
                .zip(file_objects.iter().cloned())
                .collect(),
        };
        let objects = self.objects();
        let mut names = BTreeMap::new();
        let mut new = Vec::new();
        for (bucket, m) in listing.split() {
            let text = m.text();
            let h = objects::hash(&text);
            if !named.contains(&h) {
                for o in m.objects() {
                    objects.put_as(o, texts[o])?;
                }
                new.push((h.clone(), text));
            }
            names.insert(bucket, h);
        }
        step!("history-after-files");
        for (h, text) in new {
            objects.put_as(&h, &text)?;
        }
        Ok(names)
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
        objects_on_disk(state).len()
    }

    fn objects_on_disk(state: &Path) -> BTreeSet<String> {
        fs::read_dir(state.join("generations/objects"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The distinct manifests the kept generations name.
    fn manifests(h: &History) -> BTreeSet<String> {
        h.numbers()
            .unwrap()
            .into_iter()
            .flat_map(|n| h.record_of(n).unwrap().manifests.unwrap_or_default())
            .map(|(_, m)| m)
            .collect()
    }

    /// Every object the kept generations name, by a mark of its own.
    fn reachable(h: &History) -> BTreeSet<String> {
        let objects = h.objects();
        let mut out = BTreeSet::new();
        for n in h.numbers().unwrap() {
            let r = h.record_of(n).unwrap();
            out.extend(r.objects.iter().flat_map(|c| c.names()).map(String::from));
            for m in r.manifests.unwrap_or_default().into_values() {
                let listed = Manifest::read(&objects, &m).unwrap();
                out.extend(listed.objects().map(String::from));
                out.insert(m);
            }
        }
        out
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
        let meta = serde_json::json!({
            "generation": n,
            "time": 1_700_000_000 + n,
            "outcome": "ok",
            "errors": [],
            "origin": "apply",
            "health": "healthy",
            "spec_files": specs.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            "files": rendered.iter().map(|(f, _)| f).collect::<Vec<_>>(),
        });
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
        // web.toml, db.toml, v1, d1: each once; and the file lists.
        assert_eq!(object_count(d.path()), 4 + manifests(&h).len());
        assert_eq!(objects_on_disk(d.path()), reachable(&h));
        assert_eq!(h.migrate().unwrap(), 0, "nothing left to migrate");
    }

    #[test]
    fn a_crash_at_any_step_of_the_migration_loses_nothing_and_the_next_record_finishes_it() {
        for point in [
            "history-after-files",
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
            assert_eq!(
                object_count(d.path()),
                5 + manifests(&h).len(),
                "{point}: no stray object"
            );
        }
    }

    #[test]
    fn a_crash_while_recording_keeps_the_history_whole() {
        for point in [
            "history-after-objects",
            "history-after-rename",
            "history-after-files",
            "history-after-prune",
            "history-prune-partway",
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
            let before = snapshot(&h);
            crash_at(Some(point));
            let r = files(&[("web.container", "v3")]);
            let e = h.record(&[], &r, Outcome::Ok, vec![], "apply", 2);
            crash_at(None);
            assert!(matches!(e, Err(HistoryError::Crashed(_))), "{point}: {e:?}");
            // What is left is what was: generation 1 at most pruned, 3 whole.
            for (meta, rendered, specs) in snapshot(&h) {
                match before.iter().find(|b| b.0.generation == meta.generation) {
                    Some(b) => assert_eq!(*b, (meta, rendered, specs), "{point}"),
                    None => assert_eq!((meta.generation, rendered), (3, r.clone())),
                }
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
            // v4, v5 and a file list each.
            assert_eq!(object_count(d.path()), 4, "{point}: only what is named");
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
        let lists = manifests(&h).len();
        assert_eq!(object_count(d.path()), 200 + lists);
        for round in 1..=5 {
            r.insert("s7.container".into(), format!("v{round} 7"));
            h.record(&specs, &r, Outcome::Ok, vec![], "apply", 3)
                .unwrap();
            // One new file object per generation, and the file lists of
            // the buckets its old and new object are in; the oldest
            // generations' go with them.
            let lists_now = manifests(&h).len();
            assert!(lists_now <= lists + 2 * round.min(2), "round {round}");
            assert_eq!(
                object_count(d.path()),
                200 + round.min(2) + lists_now,
                "round {round}"
            );
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
        assert_eq!((g.meta.spec_count, g.meta.file_count), (1, 1));
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

    /// A generation as the agent before manifests wrote it: every file's
    /// object named in the record.
    fn write_inline(h: &History, n: u64, specs: &[(&str, &str)], rendered: &[(&str, &str)]) {
        let objects = h.objects();
        let record = Record {
            meta: Meta {
                generation: n,
                time: 1_700_000_000 + n,
                outcome: Outcome::Ok,
                errors: vec![],
                origin: "apply".into(),
                health: Verdict::Healthy,
                spec_count: 0,
                file_count: 0,
                note: None,
            },
            manifests: None,
            spec_files: specs.iter().map(|(p, _)| p.to_string()).collect(),
            files: rendered.iter().map(|(f, _)| f.to_string()).collect(),
            objects: Some(Content {
                specs: specs.iter().map(|(_, t)| objects.put(t).unwrap()).collect(),
                rendered: rendered
                    .iter()
                    .map(|(f, t)| (f.to_string(), objects.put(t).unwrap()))
                    .collect(),
            }),
        };
        let mut json = serde_json::to_value(&record).unwrap();
        for key in ["spec_count", "file_count"] {
            json.as_object_mut().unwrap().remove(key);
        }
        let dir = h.gen_dir(n);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("meta.json"), json.to_string()).unwrap();
    }

    #[test]
    fn inline_records_and_manifests_mixed_prune_to_exactly_what_is_named() {
        let d = tempfile::tempdir().unwrap();
        let h = History::new(d.path());
        let spec = ("/specs/web.toml", "[container.web]\n");
        let db = ("db.container", "d1");
        write_inline(&h, 1, &[spec], &[("web.container", "v1"), db]);
        write_inline(&h, 2, &[spec], &[("web.container", "v2"), db]);
        h.set_health(1, Verdict::Unhealthy).unwrap();
        let m = h.meta(1).unwrap();
        assert_eq!(
            (m.spec_count, m.file_count),
            (1, 2),
            "counted from the lists"
        );
        let mut expect = snapshot(&h);
        let specs = vec![(PathBuf::from(spec.0), spec.1.to_string())];
        // v2 again: an object an inline record names, named by a manifest.
        for v in ["v3", "v2", "v4", "v5", "v6", "v7", "v8"] {
            let r = files(&[("web.container", v), db]);
            let n = h
                .record(&specs, &r, Outcome::Ok, vec![], "apply", 3)
                .unwrap();
            expect.push((h.meta(n).unwrap(), r, specs.clone()));
            assert_eq!(snapshot(&h), expect[expect.len() - 3..], "{v}");
            assert_eq!(objects_on_disk(d.path()), reachable(&h), "{v}: only those");
            if n == 3 {
                let g = h.previous_good(None).unwrap();
                assert_eq!(g.rendered["web.container"], "v2", "rollback to inline");
            }
        }
        assert!(h
            .numbers()
            .unwrap()
            .iter()
            .all(|n| h.record_of(*n).unwrap().objects.is_none()));
    }

    /// Files and bytes under `dir`.
    fn du(dir: &Path) -> (usize, u64) {
        let mut out = (0, 0);
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                let (f, b) = du(&e.path());
                out = (out.0 + f, out.1 + b);
            } else {
                out = (out.0 + 1, out.1 + m.len());
            }
        }
        out
    }

    #[test]
    fn one_change_among_a_thousand_services_costs_a_few_small_files() {
        let d = tempfile::tempdir().unwrap();
        let h = History::new(d.path());
        let name = |i: usize| format!("svc-{i:04}");
        let mut specs: Vec<(PathBuf, String)> = (0..1000)
            .map(|i| {
                let path = format!("/etc/deploy-agent/specs/{}.toml", name(i));
                let text = format!("[container.{}]\nimage = \"app:{i}\"\n", name(i));
                (PathBuf::from(path), text)
            })
            .collect();
        let mut rendered: BTreeMap<String, String> = (0..1000)
            .map(|i| (format!("{}.container", name(i)), format!("Image=app:{i}\n")))
            .collect();
        let record = |specs: &[(PathBuf, String)], r: &BTreeMap<String, String>| {
            h.record(specs, r, Outcome::Ok, vec![], "apply", 20)
                .unwrap()
        };
        record(&specs, &rendered);
        let gens = d.path().join("generations");
        let before = du(&gens);
        specs[7].1.push_str("# edit\n");
        let file = rendered.get_mut("svc-0007.container").unwrap();
        file.push_str("# edit\n");
        let n = record(&specs, &rendered);
        let after = du(&gens);
        let (files, bytes) = (after.0 - before.0, after.1 - before.1);
        // The record, two file objects, the lists of at most four buckets.
        // (15,543 bytes when written: a 5 KB record, 2.5 KB lists.)
        assert!(files <= 7, "{files} files");
        assert!(bytes < 20_000, "{bytes} bytes");
        // The layout before named every file's object in the record.
        let l = h.listing(&h.record_of(n).unwrap()).unwrap().unwrap();
        let inline = serde_json::to_string(&Record {
            meta: h.meta(n).unwrap(),
            manifests: None,
            spec_files: l.specs.iter().map(|(p, _)| p.clone()).collect(),
            files: l.rendered.keys().cloned().collect(),
            objects: Some(Content {
                specs: l.specs.iter().map(|(_, o)| o.clone()).collect(),
                rendered: l.rendered.clone(),
            }),
        })
        .unwrap();
        assert!(inline.len() > 10 * bytes as usize, "{}", inline.len());
        assert_eq!(h.specs(n).unwrap(), specs);
        assert_eq!(h.load(n).unwrap().rendered, rendered);
    }

    #[test]
    fn a_text_two_files_share_is_one_object_kept_while_a_generation_names_either() {
        let same = objects::hash("same");
        for (first, second) in [
            ("a.container", "b.container"),
            ("b.container", "a.container"),
        ] {
            let d = tempfile::tempdir().unwrap();
            let h = History::new(d.path());
            let mut r = files(&[("a.container", "same"), ("b.container", "same")]);
            let mut record = |file: &str, text: &str| {
                r.insert(file.into(), text.into());
                h.record(&[], &r, Outcome::Ok, vec![], "apply", 3).unwrap();
                assert_eq!(objects_on_disk(d.path()), reachable(&h), "{first}");
            };
            record(first, "same");
            assert_eq!(object_count(d.path()), 2, "one object, one file list");
            record(first, "one");
            record(second, "three");
            // Generation 1 goes: 2 still names it as `second`.
            record(first, "four");
            assert!(objects_on_disk(d.path()).contains(&same), "{first}");
            assert_eq!(h.load(2).unwrap().rendered[second], "same");
            // Generation 2 goes: no generation names it.
            record(first, "five");
            assert!(!objects_on_disk(d.path()).contains(&same), "{first}");
        }
    }

    #[test]
    fn specs_read_out_of_the_order_of_their_paths_come_back_in_the_order_read() {
        let d = tempfile::tempdir().unwrap();
        let h = History::new(d.path());
        let specs: Vec<(PathBuf, String)> = ["/b/x.toml", "/a/y.toml", "/a/y.toml", "/c.toml"]
            .iter()
            .enumerate()
            .map(|(i, p)| (PathBuf::from(p), format!("# {i}\n")))
            .collect();
        let n = h
            .record(&specs, &BTreeMap::new(), Outcome::Ok, vec![], "apply", 3)
            .unwrap();
        assert_eq!(h.specs(n).unwrap(), specs);
    }
}
