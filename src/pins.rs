//! Rollback pins: a rendered file put back on an earlier generation's
//! version (by a health rollback in the daemon, or `deploy-agent rollback`)
//! stays there while the specs still render what was rolled back from; a
//! change of its spec lifts the pin.
//!
//! Kept in `STATE/pins.json`, read before every render and written by the
//! applies that change them, so a daemon restart, a package upgrade, the CLI
//! and the daemon all see the same pins: a rolled-back container is not
//! redeployed on its failing version by whoever applies next.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One pinned file. `None` stands for "no such file": a rollback to a
/// generation without a container keeps it absent (`good: None`) while the
/// specs still have it, and one with a container the specs have since
/// dropped keeps it (`bad: None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// What the specs rendered when it was pinned.
    pub bad: Option<String>,
    /// What is kept in its place.
    pub good: Option<String>,
    /// The generation `good` comes from.
    pub generation: u64,
}

/// Pins by rendered file name.
pub type Pins = BTreeMap<String, Pin>;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {op}: {source}")]
pub struct PinsError {
    path: PathBuf,
    op: &'static str,
    source: std::io::Error,
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("pins.json")
}

/// Whether no pin is in force: no pins file, or one that holds none (a
/// corrupt file is not "none": reading it warns, so a plan reads it).
pub fn none_saved(state_dir: &Path) -> bool {
    match std::fs::read_to_string(path(state_dir)) {
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        Ok(text) => serde_json::from_str::<Pins>(&text).is_ok_and(|p| p.is_empty()),
    }
}

/// The pins saved in `state_dir`; none when there is no file. An unreadable
/// or corrupt file is reported and counts as none (the specs then apply as
/// written, which is what the operator wrote).
pub fn load(state_dir: &Path) -> Pins {
    let p = path(state_dir);
    match std::fs::read_to_string(&p) {
        Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
            tracing::warn!("{}: unreadable rollback pins, ignored: {e}", p.display());
            Pins::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Pins::new(),
        Err(e) => {
            tracing::warn!("{}: cannot read rollback pins: {e}", p.display());
            Pins::new()
        }
    }
}

/// Saves `pins` (atomically: a crash leaves the old file or the new one).
pub fn save(state_dir: &Path, pins: &Pins) -> Result<(), PinsError> {
    let p = path(state_dir);
    let err = |op, p: &Path| {
        let p = p.to_path_buf();
        move |source| PinsError {
            path: p,
            op,
            source,
        }
    };
    if pins.is_empty() {
        return match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err("cannot remove", &p)(e)),
            _ => Ok(()),
        };
    }
    std::fs::create_dir_all(state_dir).map_err(err("cannot create", state_dir))?;
    let tmp = p.with_extension("json.tmp");
    let json = serde_json::to_string_pretty(pins).expect("pins serialize");
    std::fs::write(&tmp, json).map_err(err("cannot write", &tmp))?;
    std::fs::rename(&tmp, &p).map_err(err("cannot rename into place", &p))
}

/// Applies `pins` to `desired` (file name -> contents): each pin whose file
/// the specs still render as `bad` puts `good` in its place. Returns the
/// pins that still hold (the others were lifted by a spec change).
pub fn apply(pins: Pins, desired: &mut BTreeMap<String, String>) -> Pins {
    pins.into_iter()
        .filter(|(file, pin)| {
            if desired.get(file) != pin.bad.as_ref() {
                return false;
            }
            match &pin.good {
                Some(text) => desired.insert(file.clone(), text.clone()),
                None => desired.remove(file),
            };
            true
        })
        .collect()
}

/// Pins that keep `good` (an earlier generation's rendering) in place of
/// `bad` (the specs' rendering now), for every file where they differ.
pub fn between(
    bad: &BTreeMap<String, String>,
    good: &BTreeMap<String, String>,
    generation: u64,
) -> Pins {
    let mut files: Vec<&String> = bad.keys().chain(good.keys()).collect();
    files.sort();
    files.dedup();
    files
        .into_iter()
        .filter(|f| bad.get(*f) != good.get(*f))
        .map(|f| {
            let pin = Pin {
                bad: bad.get(f).cloned(),
                good: good.get(f).cloned(),
                generation,
            };
            (f.clone(), pin)
        })
        .collect()
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
    fn pins_hold_while_the_specs_render_what_was_rolled_back_from() {
        let now = files(&[("web.container", "v2"), ("new.container", "n")]);
        let then = files(&[("web.container", "v1"), ("old.container", "o")]);
        let pins = between(&now, &then, 3);
        assert_eq!(pins.len(), 3, "{pins:?}");

        // Unchanged specs: the rollback's files, all of them.
        let mut desired = now.clone();
        let kept = apply(pins.clone(), &mut desired);
        assert_eq!(desired, then);
        assert_eq!(kept, pins);

        // web's spec changed (v3): its pin is lifted, the others hold.
        let mut desired = files(&[("web.container", "v3"), ("new.container", "n")]);
        let kept = apply(pins, &mut desired);
        assert_eq!(
            desired,
            files(&[("web.container", "v3"), ("old.container", "o")])
        );
        assert_eq!(kept.len(), 2);
        assert!(!kept.contains_key("web.container"));
    }

    #[test]
    fn saved_and_loaded_and_removed_when_empty() {
        let d = tempfile::tempdir().unwrap();
        assert!(load(d.path()).is_empty());
        let pins = between(
            &files(&[("a.container", "2")]),
            &files(&[("a.container", "1")]),
            7,
        );
        save(d.path(), &pins).unwrap();
        assert_eq!(load(d.path()), pins);
        save(d.path(), &Pins::new()).unwrap();
        assert!(!d.path().join("pins.json").exists());
        std::fs::write(d.path().join("pins.json"), "{not json").unwrap();
        assert!(
            load(d.path()).is_empty(),
            "corrupt: ignored, with a warning"
        );
    }
}
