//! The history's content store: each distinct file text (a spec as read, a
//! rendered file, a generation's file list) kept once, in a file named by
//! the SHA-256 of its bytes.
//! Generations name objects; an object is written before any generation
//! names it (temp file, rename), so a crash leaves at worst an object no
//! generation names, which the next sweep removes.

use std::fs;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{io, HistoryError};

/// Prefix of an object being written (`.tmp-HASH-PID`).
const TEMP_PREFIX: &str = ".tmp-";

pub struct Objects {
    dir: PathBuf,
}

/// The name of `text`'s object: its SHA-256 in lowercase hex.
pub fn hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn is_hash(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Objects {
    pub fn new(dir: PathBuf) -> Objects {
        Objects { dir }
    }

    fn path(&self, hash: &str) -> Result<PathBuf, HistoryError> {
        if !is_hash(hash) {
            return Err(HistoryError::BadObject {
                path: self.dir.join(hash),
                why: "not a SHA-256 name",
            });
        }
        Ok(self.dir.join(hash))
    }

    /// Stores `text` unless an object has it already; returns its name.
    #[cfg(test)]
    pub fn put(&self, text: &str) -> Result<String, HistoryError> {
        let hash = hash(text);
        self.put_as(&hash, text)?;
        Ok(hash)
    }

    /// Stores `text`, whose name the caller computed with [`hash`], unless
    /// an object has it already.
    pub fn put_as(&self, hash: &str, text: &str) -> Result<(), HistoryError> {
        let path = self.path(hash)?;
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            return Ok(());
        }
        fs::create_dir_all(&self.dir).map_err(io(&self.dir, "cannot create"))?;
        let tmp = self
            .dir
            .join(format!("{TEMP_PREFIX}{hash}-{}", std::process::id()));
        fs::write(&tmp, text).map_err(io(&tmp, "cannot write"))?;
        fs::rename(&tmp, &path).map_err(io(&path, "cannot rename into place"))
    }

    /// The text of object `hash`, checked against its name.
    pub fn get(&self, hash: &str) -> Result<String, HistoryError> {
        let path = self.path(hash)?;
        let text = fs::read_to_string(&path).map_err(io(&path, "cannot read"))?;
        if self::hash(&text) != hash {
            return Err(HistoryError::BadObject {
                path,
                why: "its content does not match its name",
            });
        }
        Ok(text)
    }

    /// Removes object `hash` (gone already: nothing to do).
    pub fn remove(&self, hash: &str) -> Result<(), HistoryError> {
        let path = self.path(hash)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path, "cannot remove")(e)),
        }
    }

    /// Where object `hash` would be, for messages.
    pub fn path_of(&self, hash: &str) -> PathBuf {
        self.dir.join(hash)
    }

    /// Removes every object `keep` says no to, and temp files of writes a
    /// crash interrupted. Returns how many files were removed.
    pub fn sweep(&self, keep: impl Fn(&str) -> bool) -> Result<usize, HistoryError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(&self.dir, "cannot list")(e)),
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let stale = if is_hash(name) {
                !keep(name)
            } else {
                name.starts_with(TEMP_PREFIX)
            };
            if stale {
                let p = entry.path();
                fs::remove_file(&p).map_err(io(&p, "cannot remove"))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_once_get_checked_sweep_unreferenced() {
        let d = tempfile::tempdir().unwrap();
        let o = Objects::new(d.path().join("objects"));
        let a = o.put("alpha").unwrap();
        assert_eq!(a, hash("alpha"));
        assert_eq!(o.put("alpha").unwrap(), a, "stored once");
        let b = o.put("beta").unwrap();
        assert_eq!(o.get(&a).unwrap(), "alpha");
        assert_eq!(fs::read_dir(&o.dir).unwrap().count(), 2);

        // A truncated object (a power cut) is an error, not wrong history.
        fs::write(o.dir.join(&b), "bet").unwrap();
        assert!(matches!(o.get(&b), Err(HistoryError::BadObject { .. })));
        assert!(matches!(
            o.get("../../etc/passwd"),
            Err(HistoryError::BadObject { .. })
        ));

        fs::write(o.dir.join(format!(".tmp-{a}-1")), "half").unwrap();
        fs::write(o.dir.join("operator-notes"), "kept").unwrap();
        assert_eq!(o.sweep(|n| n == a).unwrap(), 2);
        let mut left: Vec<String> = fs::read_dir(&o.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [a.clone(), "operator-notes".to_string()]);
    }
}
