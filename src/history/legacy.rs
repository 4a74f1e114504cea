//! Generations written by older agents, which kept a full copy of every
//! file: `NNNNNN/specs/III-BASENAME` (in `spec_files` order) and
//! `NNNNNN/rendered/NAME`. They are read as they are, and
//! [`History::migrate`] moves them to objects.
//!
//! Migrating one generation, each step safe to be cut short by a crash:
//! 1. store its files as objects, and their manifests (an object no
//!    generation names yet is harmless: the next sweep removes it if
//!    nothing comes to name it);
//! 2. rewrite its `meta.json` naming the manifests (temp file, rename: the
//!    switch);
//! 3. remove the old copies. A generation whose record names objects but
//!    still has old copies was cut short here: step 3 is done again.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::{io, step, History, HistoryError};

const OLD_DIRS: [&str; 2] = ["specs", "rendered"];

/// The rendered files `files` of an old generation in `dir`.
pub(super) fn rendered(
    dir: &Path,
    files: &[String],
) -> Result<BTreeMap<String, String>, HistoryError> {
    let dir = dir.join("rendered");
    files
        .iter()
        .map(|name| {
            let p = dir.join(name);
            Ok((
                name.clone(),
                fs::read_to_string(&p).map_err(io(&p, "cannot read"))?,
            ))
        })
        .collect()
}

/// The spec files `paths` of an old generation in `dir`: (original path, text).
pub(super) fn specs(dir: &Path, paths: &[String]) -> Result<Vec<(PathBuf, String)>, HistoryError> {
    let dir = dir.join("specs");
    paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let base = Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let p = dir.join(format!("{i:03}-{base}"));
            Ok((
                PathBuf::from(path),
                fs::read_to_string(&p).map_err(io(&p, "cannot read"))?,
            ))
        })
        .collect()
}

fn has_old_copies(dir: &Path) -> bool {
    OLD_DIRS.iter().any(|d| dir.join(d).exists())
}

impl History {
    /// Moves every generation that still has full copies to objects.
    /// Returns how many were migrated or finished.
    pub fn migrate(&self) -> Result<usize, HistoryError> {
        let mut done = 0;
        for n in self.numbers()? {
            let dir = self.gen_dir(n);
            if has_old_copies(&dir) {
                self.migrate_one(n, &dir)?;
                done += 1;
            }
        }
        Ok(done)
    }

    fn migrate_one(&self, n: u64, dir: &Path) -> Result<(), HistoryError> {
        let mut record = self.record_of(n)?;
        if record.objects.is_none() && record.manifests.is_none() {
            let specs = specs(dir, &record.spec_files)?;
            let rendered = rendered(dir, &record.files)?;
            let manifests = self.store(&specs, &rendered, &Default::default())?;
            step!("migrate-after-objects");
            record.manifests = Some(manifests);
            record.spec_files.clear();
            record.files.clear();
            Self::write_record(dir, &record)?;
            step!("migrate-after-record");
        }
        for d in OLD_DIRS {
            let p = dir.join(d);
            match fs::remove_dir_all(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&p, "cannot remove")(e)),
            }
            step!("migrate-after-remove");
        }
        Ok(())
    }
}
