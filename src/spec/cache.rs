//! Parsed spec files kept between loads (the daemon loads the specs on
//! every change): a file is read again only when its identity changed, and
//! parsed again only when its text changed.
//!
//! Identity is what `lstat` says of the path: device, inode, size, mtime and
//! ctime ([`FileKey`]). Any write, rename over it, `chmod` or `chown` moves
//! its ctime, which no one can set back, so an unchanged identity means the
//! same bytes and the same owner and mode the trust check accepted. It is
//! remembered only for a file that was settled when read (older than the
//! file system's timestamp granularity: see `FileKey::settled`), and never
//! for a symlink (its target can change under the same link); such files
//! are read through the same checks as an uncached load every time and
//! compared whole with the text they were parsed from. The cross-file
//! checks run over every file each time, so the result is exactly what an
//! uncached load gives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::parse::{parse_files, ParsedFile};
use super::SpecFile;
use crate::userfile::FileKey;

#[derive(Debug, Default)]
pub struct SpecCache {
    files: BTreeMap<PathBuf, Entry>,
    /// Files parsed by the last load (for tests and the benchmarks).
    parsed_last: usize,
    /// Files read by the last load.
    read_last: usize,
}

#[derive(Debug)]
struct Entry {
    /// The text parsed.
    text: String,
    /// What parsing it gave.
    parsed: ParsedFile,
    /// The file's identity when it was read, if settled then.
    key: Option<FileKey>,
}

impl SpecCache {
    /// How many files the last load parsed (the others came from the cache).
    pub fn parsed_last(&self) -> usize {
        self.parsed_last
    }

    /// How many files the last load read (the others were known by identity).
    pub fn read_last(&self) -> usize {
        self.read_last
    }

    /// The text of `path` and its identity as last read, if `lstat` finds
    /// it as it was then (a regular file with the same identity). Counts a
    /// read otherwise.
    pub(super) fn known(&mut self, path: &Path) -> Option<(String, FileKey)> {
        let known = self.files.get(path).and_then(|e| {
            let key = e.key?;
            let meta = std::fs::symlink_metadata(path).ok()?;
            (meta.file_type().is_file() && FileKey::of(&meta) == key).then(|| (e.text.clone(), key))
        });
        if known.is_none() {
            self.read_last += 1;
        }
        known
    }

    /// The parse of each of `files` (with the identity to remember for
    /// each: `None` when not settled): cached when the text is the same;
    /// forgets files no longer given. Ends a load.
    pub(super) fn parse(&mut self, files: &[(SpecFile, Option<FileKey>)]) -> Vec<ParsedFile> {
        let mut kept = BTreeMap::new();
        // Each file's entry when its text is the one parsed before.
        let known: Vec<Option<Entry>> = (files.iter())
            .map(|(f, _)| self.files.remove(&f.path).filter(|e| e.text == f.text))
            .collect();
        let unknown: Vec<(&Path, &str)> = (files.iter().zip(&known))
            .filter(|(_, known)| known.is_none())
            .map(|((f, _), _)| (f.path.as_path(), f.text.as_str()))
            .collect();
        self.parsed_last = unknown.len();
        let mut fresh = parse_files(&unknown).into_iter();
        let parsed = (files.iter().zip(known))
            .map(|((f, read_as), known)| {
                let mut entry = known.unwrap_or_else(|| Entry {
                    text: f.text.clone(),
                    parsed: fresh.next().expect("one parse per unknown file"),
                    key: None,
                });
                entry.key = *read_as;
                let out = entry.parsed.clone();
                kept.insert(f.path.clone(), entry);
                out
            })
            .collect();
        self.files = kept;
        parsed
    }

    /// Starts a load.
    pub(super) fn begin(&mut self) {
        self.read_last = 0;
    }
}
