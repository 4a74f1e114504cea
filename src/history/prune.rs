//! Pruning: keeps the newest generations, then removes the objects no kept
//! generation names, and what a crash left of an interrupted record.
//!
//! Cheap in the common case: only the objects of the removed generations
//! that no kept generation names can go — their manifests that no kept
//! record names, those manifests' files, and the objects a removed record
//! of the inline layout names. Each such object is then looked up in sets
//! of what is kept: the manifests kept records name, the objects kept
//! inline records name, and the files the kept manifests of the object's
//! bucket name (every name of an object is in its bucket, see
//! [`manifest`](super::manifest)), so only the manifests of the buckets
//! concerned are read. Objects a crash left unnamed are found by a full
//! mark and sweep, after a crash left a temp record and every `keep`
//! generations. A kept manifest that cannot be read keeps every object of
//! its bucket: an object is removed only when it is known unnamed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use super::manifest::{bucket, Manifest, BUCKETS};
use super::objects::Objects;
use super::{io, step, History, HistoryError, Record};

/// What the kept generations name, as far as a decision needs it.
#[derive(Default)]
struct Kept {
    /// Manifests named by kept records, by bucket.
    manifests: BTreeMap<u8, BTreeSet<String>>,
    /// Objects named by kept records: their manifests, and every object a
    /// kept record of the inline layout names.
    named: BTreeSet<String>,
    /// Files named by the kept manifests of the buckets read.
    files: BTreeSet<String>,
    /// Buckets with a kept manifest that could not be read.
    unknown: BTreeSet<u8>,
}

impl Kept {
    fn of(records: &[Record]) -> Kept {
        let mut kept = Kept::default();
        for r in records {
            for (b, h) in r.manifests.iter().flatten() {
                kept.manifests.entry(*b).or_default().insert(h.clone());
                kept.named.insert(h.clone());
            }
            if let Some(c) = &r.objects {
                kept.named.extend(c.names().map(str::to_string));
            }
        }
        kept
    }

    /// Reads the kept manifests of `buckets`.
    fn read(&mut self, objects: &Objects, buckets: impl IntoIterator<Item = u8>) {
        for b in buckets {
            for h in self.manifests.get(&b).into_iter().flatten() {
                match Manifest::read(objects, h) {
                    Ok(m) => self.files.extend(m.objects().map(str::to_string)),
                    Err(_) => {
                        self.unknown.insert(b);
                    }
                }
            }
        }
    }

    /// Whether `object` stays (once its bucket's manifests were read).
    fn keeps(&self, object: &str) -> bool {
        self.named.contains(object)
            || self.files.contains(object)
            || self.unknown.contains(&bucket(object))
    }
}

impl History {
    /// Keeps the newest `keep` generations, then removes the objects none
    /// of them names and what a crash left of an interrupted record.
    pub(super) fn prune(&self, keep: u32) -> Result<(), HistoryError> {
        let nums = self.numbers()?;
        let excess = nums.len().saturating_sub(keep.max(1) as usize);
        let mut gone = Vec::new();
        for n in &nums[..excess] {
            gone.push(self.record_of(*n)?);
            let d = self.gen_dir(*n);
            fs::remove_dir_all(&d).map_err(io(&d, "cannot remove"))?;
        }
        step!("history-after-prune");
        let crashed = self.remove_temp_records();
        let kept_nums = &nums[excess..];
        let periodic = kept_nums
            .last()
            .is_some_and(|n| n % u64::from(keep.max(1)) == 0);
        if crashed || periodic {
            return self.sweep_all(kept_nums);
        }
        if gone.is_empty() {
            return Ok(());
        }
        let mut kept = Kept::of(&self.records(kept_nums)?);
        let objects = self.objects();
        let candidates = Self::candidates(&objects, &gone, &kept);
        kept.read(
            &objects,
            candidates
                .iter()
                .map(|c| bucket(c))
                .collect::<BTreeSet<_>>(),
        );
        for object in candidates.iter().filter(|c| !kept.keeps(c)) {
            objects.remove(object)?;
            step!("history-prune-partway");
        }
        Ok(())
    }

    fn records(&self, nums: &[u64]) -> Result<Vec<Record>, HistoryError> {
        nums.iter().map(|n| self.record_of(*n)).collect()
    }

    /// The objects the `gone` records name that no kept record names
    /// directly: their manifests no kept record names, those manifests'
    /// files, and the objects of inline records. (A manifest that cannot be
    /// read any more leaves its files to the next full sweep.)
    fn candidates(objects: &Objects, gone: &[Record], kept: &Kept) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for r in gone {
            for h in r.manifests.iter().flat_map(|m| m.values()) {
                if kept.named.contains(h) || !seen.insert(h) {
                    continue;
                }
                if let Ok(m) = Manifest::read(objects, h) {
                    out.extend(m.objects().map(str::to_string));
                }
                out.insert(h.clone());
            }
            if let Some(c) = &r.objects {
                out.extend(c.names().map(str::to_string));
            }
        }
        out.retain(|o| !kept.named.contains(o));
        out
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

    /// Removes every object the records of `kept` do not name, directly or
    /// through their manifests.
    fn sweep_all(&self, kept: &[u64]) -> Result<(), HistoryError> {
        let mut kept = Kept::of(&self.records(kept)?);
        let objects = self.objects();
        kept.read(&objects, 0..BUCKETS);
        objects.sweep(|o| kept.keeps(o))?;
        Ok(())
    }
}
