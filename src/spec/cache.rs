//! Parsed spec files kept between loads (the daemon loads the specs on
//! every change): a file is parsed again only when its text changed. Every
//! file is still read (through the same checks as an uncached load: who may
//! write it, regular file, size cap) and compared whole with the text it was
//! parsed from, so an edit that keeps the size and modification time is
//! seen too; the cross-file checks run over every file each time, so the
//! result is exactly what an uncached load gives.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::parse::{parse_file, ParsedFile};
use super::SpecFile;

#[derive(Debug, Default)]
pub struct SpecCache {
    /// Path -> (text parsed, what parsing it gave).
    files: BTreeMap<PathBuf, (String, ParsedFile)>,
    /// Files parsed by the last load (for tests and the benchmarks).
    parsed_last: usize,
}

impl SpecCache {
    /// How many files the last load parsed (the others came from the cache).
    pub fn parsed_last(&self) -> usize {
        self.parsed_last
    }

    /// The parse of each of `files`: cached when the text is the same;
    /// forgets files no longer given.
    pub(super) fn parse(&mut self, files: &[SpecFile]) -> Vec<ParsedFile> {
        self.parsed_last = 0;
        let mut kept = BTreeMap::new();
        let parsed = files
            .iter()
            .map(|f| {
                let entry = match self.files.remove(&f.path) {
                    Some((text, parsed)) if text == f.text => (text, parsed),
                    _ => {
                        self.parsed_last += 1;
                        (f.text.clone(), parse_file(&f.path, &f.text))
                    }
                };
                let out = entry.1.clone();
                kept.insert(f.path.clone(), entry);
                out
            })
            .collect();
        self.files = kept;
        parsed
    }
}
