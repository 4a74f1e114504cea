//! Spec files: loading, parsing and validation into the typed model.
//!
//! Owns the operator-facing spec format (`shared/spec-format.md`): the files
//! of a spec directory are read in lexical order, every error names the file,
//! line, column and key, and all errors are collected before giving up.

mod cache;
mod diag;
pub mod keys;
pub mod locate;
pub mod model;
// pub(crate): its key lists (`CONTAINER_KEYS`, ...) are what the man page
// deploy-agent-specs(5) is checked against.
pub(crate) mod parse;
mod trust;
mod validate;
pub mod values;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::userfile::FileKey;

pub use cache::SpecCache;
pub use diag::{did_you_mean, line_col, Loc, SpecError, SpecErrors};
pub use model::*;
pub use trust::Trust;
pub use validate::BUILTIN_NETWORKS;

/// Largest spec file accepted; anything bigger is a mistake, not a spec.
pub const MAX_SPEC_FILE_BYTES: u64 = 1 << 20;

/// Loads and validates every `*.toml` file of `dir` (lexical order; dot-files
/// and other names are ignored), trusting root and this process's user.
pub fn load_dir(dir: &Path) -> Result<SpecSet, SpecErrors> {
    load_dir_trusting(dir, &Trust::this_process())
}

/// [`load_dir`], accepting spec files and directories `trust` says may
/// write them (see [`Trust`]).
pub fn load_dir_trusting(dir: &Path, trust: &Trust) -> Result<SpecSet, SpecErrors> {
    let mut errors = Vec::new();
    let files = read_dir(dir, trust, None, SystemTime::now(), &mut errors);
    let set = build(files.into_iter().map(|(f, _)| f).collect(), &mut errors);
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(SpecErrors(errors))
    }
}

/// [`load_dir_trusting`], parsing again only the files whose text changed
/// since the last load through `cache` (the result is the same).
pub fn load_dir_cached(
    dir: &Path,
    trust: &Trust,
    cache: &mut SpecCache,
) -> Result<SpecSet, SpecErrors> {
    load_dir_cached_at(dir, trust, cache, SystemTime::now())
}

/// [`load_dir_cached`] with files settled as of `now` (tests move it on).
fn load_dir_cached_at(
    dir: &Path,
    trust: &Trust,
    cache: &mut SpecCache,
    now: SystemTime,
) -> Result<SpecSet, SpecErrors> {
    let mut errors = Vec::new();
    cache.begin();
    let files = read_dir(dir, trust, Some(cache), now, &mut errors);
    let parsed = cache.parse(&files);
    let files = files.into_iter().map(|(f, _)| f).collect();
    let set = validate::merge(parsed, files, &mut errors);
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(SpecErrors(errors))
    }
}

/// Validates specs given as (path, text) pairs, in the order given.
/// Used by tests and fuzzing; `load_dir` goes through here too.
pub fn load_texts(files: &[(PathBuf, String)]) -> Result<SpecSet, SpecErrors> {
    let mut errors = Vec::new();
    let files = files
        .iter()
        .map(|(p, t)| SpecFile {
            path: p.clone(),
            text: t.clone(),
        })
        .collect();
    let set = build(files, &mut errors);
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(SpecErrors(errors))
    }
}

fn build(files: Vec<SpecFile>, errors: &mut Vec<SpecError>) -> SpecSet {
    let texts: Vec<(&Path, &str)> = (files.iter())
        .map(|f| (f.path.as_path(), f.text.as_str()))
        .collect();
    let parsed = parse::parse_files(&texts);
    validate::merge(parsed, files, errors)
}

/// The spec file names of `dir` that are read, in order.
pub fn spec_file_names(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| is_spec_file_name(p))
        .collect();
    names.sort();
    Ok(names)
}

/// `*.toml`, not hidden (editors keep `.name.toml.swp`, `.#name.toml` locks).
pub fn is_spec_file_name(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".toml") && !n.starts_with('.') && n.len() > 5)
}

/// The spec files of `dir`, each with the identity a cache may remember it
/// by (see `cache.rs`): read, or known to `cache` by that identity.
fn read_dir(
    dir: &Path,
    trust: &Trust,
    mut cache: Option<&mut SpecCache>,
    now: SystemTime,
    errors: &mut Vec<SpecError>,
) -> Vec<(SpecFile, Option<FileKey>)> {
    let here = Loc::file(dir);
    let meta = match fs::metadata(dir) {
        Ok(m) => m,
        Err(e) => {
            errors.push(here.error("", format!("cannot read the specs directory: {e}"), None));
            return vec![];
        }
    };
    if !meta.is_dir() {
        errors.push(here.error("", "the specs path is not a directory", None));
        return vec![];
    }
    if let Err(e) = trust.check_specs_dir(dir) {
        errors.push(here.error("", e, None));
        return vec![];
    }
    let names = match spec_file_names(dir) {
        Ok(n) => n,
        Err(e) => {
            errors.push(here.error("", format!("cannot list the specs directory: {e}"), None));
            return vec![];
        }
    };
    let mut files = Vec::new();
    for path in names {
        if let Some((text, key)) = cache.as_mut().and_then(|c| c.known(&path)) {
            files.push((SpecFile { path, text }, Some(key)));
            continue;
        }
        match read_spec_file(&path, trust) {
            Ok((text, key)) => {
                let key = key.filter(|k| k.settled(now));
                files.push((SpecFile { path, text }, key));
            }
            Err(e) => errors.push(e),
        }
    }
    files
}

/// The text of a spec file, and its identity when it is not a symlink.
// The error is built once per bad file; its size does not matter.
#[allow(clippy::result_large_err)]
fn read_spec_file(path: &Path, trust: &Trust) -> Result<(String, Option<FileKey>), SpecError> {
    let here = Loc::file(path);
    // Opened without blocking (a FIFO, a device or a file over the cap is
    // refused) and checked on the open file: what is read is what was checked.
    let file = crate::userfile::open(path, MAX_SPEC_FILE_BYTES)
        .map_err(|e| here.error("", spec_file_problem(e), None))?;
    let link = trust
        .check_spec_file(path)
        .map_err(|e| here.error("", e, None))?;
    let key = (!link).then(|| file.key());
    let bytes = file
        .read_all()
        .map_err(|e| here.error("", spec_file_problem(e), None))?;
    String::from_utf8(bytes)
        .map(|text| (text, key))
        .map_err(|e| {
            let valid = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned();
            let (line, col) = line_col(&text, text.len());
            SpecError {
                file: path.to_path_buf(),
                line: Some(line),
                col: Some(col),
                key: None,
                message: "is not valid UTF-8".into(),
                hint: None,
            }
        })
}

/// Why a spec file was not read, in the words of the other spec errors.
fn spec_file_problem(e: crate::userfile::UserFileError) -> String {
    use crate::userfile::{FileKind, UserFileError};
    match e {
        UserFileError::NotRegular {
            kind: FileKind::Directory,
            ..
        } => "is a directory, not a spec file".into(),
        UserFileError::TooLarge { size, cap, .. } => {
            format!("is {size} bytes, more than the {cap} bytes a spec file may have")
        }
        e => e.problem(),
    }
}

#[cfg(test)]
mod tests;
