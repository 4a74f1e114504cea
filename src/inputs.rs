//! Inputs that change a container without changing its unit file: env
//! files, host files mounted read-only, and secret source files. Each
//! container's inputs are hashed; when the hash differs from the last
//! applied one, the unit is restarted. Secret sources are turned into
//! Podman secrets before any unit starts; their values are read only to
//! hash them and to hand them to `podman secret create` on stdin.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::spec::{Container, MountSource, SpecSet};

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(
        "secret source {path} is readable by group or others (mode {mode:o}); make it 0600 or 0400"
    )]
    SecretPermissions { path: PathBuf, mode: u32 },
    #[error("secret source {path}: {source}")]
    SecretRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the Podman secret {name:?}: {message}")]
    SecretCreate { name: String, message: String },
    #[error("{path}: {op}: {source}")]
    State {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
}

/// The files a container reads at start that its unit file only names.
pub fn files_of(c: &Container) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = c.env_files.clone();
    for m in &c.volumes {
        if let MountSource::Host(p) = &m.source {
            if m.read_only() {
                out.push(p.clone());
            }
        }
    }
    out.extend(c.secrets.iter().filter_map(|s| s.source.clone()));
    out
}

/// Hash of the current contents of a container's inputs; a missing or
/// unreadable file hashes as such (so its appearance is a change too).
pub fn hash_of(c: &Container) -> String {
    let mut h = Sha256::new();
    for p in files_of(c) {
        h.update(p.as_os_str().as_encoded_bytes());
        h.update([0]);
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => match std::fs::read(&p) {
                Ok(bytes) => {
                    h.update(b"file\0");
                    h.update(bytes);
                }
                Err(e) => h.update(format!("unreadable {:?}\0", e.kind()).as_bytes()),
            },
            // A directory mount: its listing and mtimes are enough to notice a change.
            Ok(m) if m.is_dir() => {
                h.update(format!("dir {} {}\0", m.mtime(), m.mtime_nsec()).as_bytes())
            }
            Ok(_) => h.update(b"other\0"),
            Err(_) => h.update(b"missing\0"),
        }
        h.update([0xff]);
    }
    hex::encode(h.finalize())
}

/// container file name (`web.container`) -> input hash, for containers with inputs.
pub type Hashes = BTreeMap<String, String>;

pub fn hashes(set: &SpecSet) -> Hashes {
    set.containers
        .values()
        .filter(|c| !files_of(c).is_empty())
        .map(|c| (format!("{}.container", c.name), hash_of(c)))
        .collect()
}

fn state_path(state_dir: &Path) -> PathBuf {
    state_dir.join("inputs.json")
}

/// The hashes as of the last successful apply.
pub fn load(state_dir: &Path) -> Hashes {
    std::fs::read_to_string(state_path(state_dir))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

pub fn save(state_dir: &Path, h: &Hashes) -> Result<(), InputError> {
    let path = state_path(state_dir);
    let err = |op| {
        let path = path.clone();
        move |source| InputError::State { path, op, source }
    };
    std::fs::create_dir_all(state_dir).map_err(err("cannot create"))?;
    let tmp = state_dir.join(".inputs.json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(h).expect("hashes serialize"),
    )
    .map_err(err("cannot write"))?;
    std::fs::rename(&tmp, &path).map_err(err("cannot rename"))
}

/// Containers whose inputs changed since `old` (new containers are not
/// listed: they start anyway). Reason names the kind of input.
pub fn changed(set: &SpecSet, old: &Hashes, new: &Hashes) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (file, hash) in new {
        match old.get(file) {
            Some(h) if h != hash => {
                let name = file.trim_end_matches(".container");
                let what = set
                    .containers
                    .get(name)
                    .map(describe_inputs)
                    .unwrap_or_else(|| "an input file".into());
                out.insert(file.clone(), format!("{what} changed"));
            }
            _ => {}
        }
    }
    out
}

fn describe_inputs(c: &Container) -> String {
    let mut kinds = Vec::new();
    if !c.env_files.is_empty() {
        kinds.push("env file");
    }
    if c.volumes
        .iter()
        .any(|m| matches!(m.source, MountSource::Host(_)) && m.read_only())
    {
        kinds.push("mounted file");
    }
    if c.secrets.iter().any(|s| s.source.is_some()) {
        kinds.push("secret");
    }
    format!("an input ({})", kinds.join(", "))
}

/// Checks a secret source: a regular file readable by its owner only.
pub fn check_secret_source(path: &Path) -> Result<(), InputError> {
    let meta = std::fs::metadata(path).map_err(|source| InputError::SecretRead {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(InputError::SecretPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Creates or replaces the Podman secrets that have a `source`, for the
/// containers in `names` (or all when `None`). The value goes to podman on
/// stdin; it is never logged or kept.
pub fn sync_secrets(set: &SpecSet, only: Option<&[String]>) -> Result<Vec<String>, InputError> {
    let mut done = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for c in set.containers.values() {
        if only.is_some_and(|o| !o.contains(&c.name)) {
            continue;
        }
        for s in &c.secrets {
            let Some(src) = &s.source else { continue };
            if !seen.insert(s.name.clone()) {
                continue;
            }
            check_secret_source(src)?;
            let value = std::fs::read(src).map_err(|source| InputError::SecretRead {
                path: src.clone(),
                source,
            })?;
            let mut child = Command::new("podman")
                .args(["secret", "create", "--replace", &s.name, "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| InputError::SecretCreate {
                    name: s.name.clone(),
                    message: format!("cannot run podman: {e}"),
                })?;
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(&value);
            }
            let out = child
                .wait_with_output()
                .map_err(|e| InputError::SecretCreate {
                    name: s.name.clone(),
                    message: e.to_string(),
                })?;
            if !out.status.success() {
                return Err(InputError::SecretCreate {
                    name: s.name.clone(),
                    message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                });
            }
            done.push(s.name.clone());
        }
    }
    Ok(done)
}

/// Directories to watch so that an input change triggers an apply.
pub fn watch_dirs(set: &SpecSet) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = set
        .containers
        .values()
        .flat_map(files_of)
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn set_with(dir: &Path) -> SpecSet {
        let text = format!(
            "[container.web]\nimage = \"x\"\nenv_files = [\"{d}/web.env\"]\nvolumes = [\"{d}/conf:/etc/conf:ro\", \"{d}/rw:/rw\"]\n[container.db]\nimage = \"x\"\nsecrets = [{{ name = \"pw\", type = \"env\", target = \"PW\", source = \"{d}/pw\" }}]\n[container.plain]\nimage = \"x\"\n",
            d = dir.display()
        );
        crate::spec::load_texts(&[(PathBuf::from("a.toml"), text)]).unwrap()
    }

    #[test]
    fn env_file_and_ro_mount_changes_are_noticed_per_container() {
        let d = tempfile::tempdir().unwrap();
        let set = set_with(d.path());
        std::fs::write(d.path().join("web.env"), "A=1\n").unwrap();
        std::fs::write(d.path().join("conf"), "x").unwrap();
        std::fs::write(d.path().join("rw"), "x").unwrap();
        std::fs::write(d.path().join("pw"), "secret").unwrap();
        let h1 = hashes(&set);
        assert_eq!(
            h1.keys().collect::<Vec<_>>(),
            ["db.container", "web.container"]
        );
        std::fs::write(d.path().join("rw"), "changed").unwrap();
        assert_eq!(
            hashes(&set),
            h1,
            "a read-write mount is the container's own data, not an input"
        );
        std::fs::write(d.path().join("web.env"), "A=2\n").unwrap();
        let h2 = hashes(&set);
        let c = changed(&set, &h1, &h2);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c["web.container"],
            "an input (env file, mounted file) changed"
        );
        std::fs::write(d.path().join("pw"), "other").unwrap();
        let c = changed(&set, &h2, &hashes(&set));
        assert_eq!(c["db.container"], "an input (secret) changed");
        assert!(
            !c.values().any(|r| r.contains("other")),
            "no secret value in a reason"
        );
    }

    #[test]
    fn secret_sources_must_be_private() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pw");
        std::fs::write(&p, "x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = check_secret_source(&p).unwrap_err().to_string();
        assert!(e.contains("readable by group or others (mode 640)"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_secret_source(&p).unwrap();
    }

    #[test]
    fn state_round_trip_and_watch_dirs() {
        let d = tempfile::tempdir().unwrap();
        let set = set_with(d.path());
        let h = hashes(&set);
        save(d.path(), &h).unwrap();
        assert_eq!(load(d.path()), h);
        assert_eq!(watch_dirs(&set), [d.path().to_path_buf()]);
    }
}
