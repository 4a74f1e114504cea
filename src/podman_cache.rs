//! The installed Podman's version, remembered in the state directory
//! (`podman-version.json`) keyed by the `podman` binary found in `PATH`:
//! its path, device, inode, modification time and size. `podman --version`
//! (a Go program starting: ~28 ms, most of a small `validate`) runs only
//! when that binary changed: an upgrade replaces it (new inode, mtime).
//! The cache is written only into an existing state directory, and a cache
//! that cannot be read or written is only a missed shortcut.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::quadlet::QuadletError;
use crate::render::PodmanVersion;

const FILE: &str = "podman-version.json";

/// What identifies one installed binary, and the version it reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    path: PathBuf,
    dev: u64,
    ino: u64,
    mtime_ns: i128,
    size: u64,
    version: String,
}

impl Entry {
    fn of(path: &Path, version: &str) -> Option<Entry> {
        let m = std::fs::metadata(path).ok()?;
        Some(Entry {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            size: m.size(),
            version: version.to_string(),
        })
    }
}

/// `podman` as `PATH` finds it (the binary `podman --version` would run).
pub fn find_podman() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("podman"))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
}

/// The installed Podman's version: cached for the binary in `PATH`, else
/// from `podman --version` (and cached in `state_dir`).
pub fn detect(state_dir: &Path) -> Result<PodmanVersion, QuadletError> {
    match find_podman() {
        Some(bin) => detect_with(state_dir, &bin, crate::quadlet::detect_podman_version_of),
        None => crate::quadlet::detect_podman_version(),
    }
}

/// [`detect`] for the binary `bin`, with `ask` running it.
pub fn detect_with(
    state_dir: &Path,
    bin: &Path,
    ask: impl FnOnce(&Path) -> Result<PodmanVersion, QuadletError>,
) -> Result<PodmanVersion, QuadletError> {
    let file = state_dir.join(FILE);
    let cached: Option<Entry> = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    if let Some(c) = cached {
        if Entry::of(bin, &c.version).as_ref() == Some(&c) {
            if let Ok(v) = PodmanVersion::parse(&c.version) {
                return Ok(v);
            }
        }
    }
    let version = ask(bin)?;
    if state_dir.is_dir() {
        if let Some(entry) = Entry::of(bin, &version.to_string()) {
            let tmp = state_dir.join(format!(".{FILE}.tmp-{}", std::process::id()));
            let json = serde_json::to_vec_pretty(&entry).expect("entry serializes");
            let saved = std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, &file));
            if let Err(e) = saved {
                let _ = std::fs::remove_file(&tmp);
                tracing::debug!("cannot cache the Podman version in {}: {e}", file.display());
            }
        }
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn asks_once_per_binary_and_again_when_it_changes() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("podman");
        std::fs::write(&bin, "binary v1").unwrap();
        let asked = Cell::new(0);
        let ask = |v: &'static str| {
            let asked = &asked;
            move |_: &Path| {
                asked.set(asked.get() + 1);
                Ok(PodmanVersion::parse(v).unwrap())
            }
        };
        let state = d.path().join("state");
        // No state directory: asked every time, nothing written.
        detect_with(&state, &bin, ask("5.4.2")).unwrap();
        assert!(!state.exists());
        std::fs::create_dir(&state).unwrap();
        for _ in 0..3 {
            let v = detect_with(&state, &bin, ask("5.4.2")).unwrap();
            assert_eq!(v, PodmanVersion::new(5, 4, 2));
        }
        assert_eq!(asked.get(), 2, "the cache answers after the first");
        // An upgrade: another binary in its place.
        std::fs::write(&bin, "binary v2, longer").unwrap();
        let v = detect_with(&state, &bin, ask("5.5.0")).unwrap();
        assert_eq!((v, asked.get()), (PodmanVersion::new(5, 5, 0), 3));
        // A damaged cache is asked past.
        std::fs::write(state.join(FILE), "{").unwrap();
        detect_with(&state, &bin, ask("5.5.0")).unwrap();
        assert_eq!(asked.get(), 4);
        // Another binary on another path is another entry.
        let other = d.path().join("podman2");
        std::fs::write(&other, "binary v2, longer").unwrap();
        detect_with(&state, &other, ask("4.9.0")).unwrap();
        assert_eq!(asked.get(), 5);
    }
}
