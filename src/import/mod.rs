//! Importers: other tools' files -> deploy-agent spec files.
//!
//! Each importer converts; writing its spec files (and never over a file it
//! did not write, recognised by its own mark) is shared here.

pub mod compose;
pub mod quadlet;

use std::path::{Path, PathBuf};

/// Why an importer did not write.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0} exists and was not written by the importer; not overwriting it")]
    NotOurs(PathBuf),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `NotOurs` for the first of `specs` that exists in `out` without `mark`
/// at its start (read through `userfile`, at most `cap` bytes).
pub fn refuse_foreign(
    out: &Path,
    specs: &[(String, String)],
    mark: &str,
    cap: u64,
) -> Result<(), WriteError> {
    for (name, _) in specs {
        let p = out.join(name);
        let ours =
            crate::userfile::read_capped(&p, cap).is_ok_and(|t| t.starts_with(mark.as_bytes()));
        if p.exists() && !ours {
            return Err(WriteError::NotOurs(p));
        }
    }
    Ok(())
}

/// Creates `out` and writes `specs` into it.
pub fn write_specs(out: &Path, specs: &[(String, String)]) -> Result<(), WriteError> {
    std::fs::create_dir_all(out).map_err(io_error(out))?;
    for (name, text) in specs {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(io_error(&p))?;
    }
    Ok(())
}

/// Maps an I/O error on `path` to a [`WriteError`].
pub fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError::Io { path, source }
}
