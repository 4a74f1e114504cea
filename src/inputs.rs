//! Inputs that change a container without changing its unit file: env
//! files, host files mounted read-only, and secret source files. Each
//! container's inputs are hashed; when the hash differs from the last
//! applied one, the unit is restarted. Secret sources are turned into
//! Podman secrets before any unit starts; their values are read only to
//! hash them and to hand them to `podman secret create` on stdin.
//!
//! Every such file is read through [`crate::userfile`] (no FIFO blocks the
//! agent, no device or huge file is loaded), and [`check`] refuses, before
//! anything is applied, an env file, secret source or health `ca_file`
//! that is not a regular file or is larger than its cap.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::spec::{Container, HealthCheck, MountSource, SpecError, SpecErrors, SpecSet};
use crate::userfile::{self, UserFileError};

/// Podman refuses a secret of 512000 bytes or more ("secret data must be
/// larger than 0 and less than 512000 bytes", containers/common
/// pkg/secrets), so a larger source is refused before Podman is asked.
pub const MAX_SECRET_BYTES: u64 = 512_000 - 1;
/// An env file this large is a mistake: Linux takes at most 128 KiB per
/// variable and a quarter of the stack limit (2 MiB by default) for all.
pub const MAX_ENV_FILE_BYTES: u64 = 1 << 20;
/// Host files mounted read-only are hashed in 64 KiB chunks, never loaded,
/// and the digest is cached while the file's identity (device, inode,
/// size, mtime, ctime) stays the same. A file larger than this is not read
/// at all: that identity stands for its content, so hashing never keeps
/// the agent (and its watchdog pings) busy for long; reading 1 GiB takes
/// about a second.
pub const MAX_HASHED_MOUNT_BYTES: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(
        "secret source {path} is readable by group or others (mode {mode:o}); make it 0600 or 0400"
    )]
    SecretPermissions { path: PathBuf, mode: u32 },
    #[error("secret source {0}")]
    SecretRead(#[source] UserFileError),
    #[error("cannot create the Podman secret {name:?}: {message}")]
    SecretCreate { name: String, message: String },
    #[error("{path}: {op}: {source}")]
    State {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
}

/// What a file named in a spec is to its container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    EnvFile,
    /// A host path mounted read-only (`volumes` with `ro`).
    Mount,
    SecretSource,
    /// A health check's `ca_file`: read by the agent, not by the container.
    CaFile,
}

impl InputKind {
    fn noun(self) -> &'static str {
        match self {
            InputKind::EnvFile => "env file",
            InputKind::Mount => "mounted file",
            InputKind::SecretSource => "secret source",
            InputKind::CaFile => "ca_file",
        }
    }

    /// The most the agent reads of such a file (a mounted file is only
    /// hashed; see [`MAX_HASHED_MOUNT_BYTES`]).
    pub fn cap(self) -> u64 {
        match self {
            InputKind::EnvFile => MAX_ENV_FILE_BYTES,
            InputKind::Mount => u64::MAX,
            InputKind::SecretSource => MAX_SECRET_BYTES,
            InputKind::CaFile => crate::health::probe::MAX_CA_FILE_BYTES,
        }
    }
}

/// One step of a key path in a spec file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A file a container's spec names, and the key that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub path: PathBuf,
    pub kind: InputKind,
    /// From the top of the spec file: `container`, NAME, `secrets`, 0, `source`.
    pub key: Vec<Seg>,
}

impl Input {
    /// The key as errors show it: `container.web.secrets[0].source`.
    pub fn key_text(&self) -> String {
        let mut out = String::new();
        for s in &self.key {
            match s {
                Seg::Key(k) if out.is_empty() => out.push_str(k),
                Seg::Key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

/// The files a container reads at start that its unit file only names, in
/// the order they are hashed: env files, read-only host mounts, secret sources.
pub fn inputs_of(c: &Container) -> Vec<Input> {
    let at = |rest: &[Seg]| {
        let mut key = vec![Seg::Key("container".into()), Seg::Key(c.name.clone())];
        key.extend_from_slice(rest);
        key
    };
    let mut out: Vec<Input> = c
        .env_files
        .iter()
        .enumerate()
        // A path starting with a systemd specifier (`%h/...`) is systemd's to
        // resolve: not watched.
        .filter(|(_, p)| p.is_absolute())
        .map(|(i, p)| Input {
            path: p.clone(),
            kind: InputKind::EnvFile,
            key: at(&[Seg::Key("env_files".into()), Seg::Index(i)]),
        })
        .collect();
    for (i, m) in c.volumes.iter().enumerate() {
        if let MountSource::Host(p) = &m.source {
            if m.read_only() && p.is_absolute() {
                out.push(Input {
                    path: p.clone(),
                    kind: InputKind::Mount,
                    key: at(&[Seg::Key("volumes".into()), Seg::Index(i)]),
                });
            }
        }
    }
    for (i, s) in c.secrets.iter().enumerate() {
        if let Some(p) = &s.source {
            out.push(Input {
                path: p.clone(),
                kind: InputKind::SecretSource,
                key: at(&[
                    Seg::Key("secrets".into()),
                    Seg::Index(i),
                    Seg::Key("source".into()),
                ]),
            });
        }
    }
    out
}

/// Every file a container's spec names that the agent looks at: its
/// inputs ([`inputs_of`]) and a health check's `ca_file`.
fn named_by(c: &Container) -> Vec<Input> {
    let mut files = inputs_of(c);
    if let Some(HealthCheck::Http {
        ca_file: Some(p), ..
    }) = c.health.as_ref().map(|h| &h.check)
    {
        files.push(Input {
            path: p.clone(),
            kind: InputKind::CaFile,
            key: vec![
                Seg::Key("container".into()),
                Seg::Key(c.name.clone()),
                Seg::Key("health".into()),
                Seg::Key("ca_file".into()),
            ],
        });
    }
    files
}

/// The paths of every file the specs of `set` name (see [`named_by`]), in
/// container order: what a plan's verdict depends on besides the specs.
pub fn paths(set: &SpecSet) -> Vec<PathBuf> {
    set.containers
        .values()
        .flat_map(|c| named_by(c).into_iter().map(|i| i.path))
        .collect()
}

/// The files a container reads at start that its unit file only names.
pub fn files_of(c: &Container) -> Vec<PathBuf> {
    inputs_of(c).into_iter().map(|i| i.path).collect()
}

/// Refuses, before anything is applied, an env file, secret source or
/// health `ca_file` that is not a regular file (a FIFO, a device, a
/// directory, ...) or is larger than the agent reads of it; each error
/// names the spec file, the line and the key. A missing or unreadable file
/// is not an error here: it is reported where it is used, as before.
///
/// Read-only mounts are not refused: a socket (`podman.sock:ro`), a device
/// (`/dev/null` over a file) or a FIFO is a legitimate mount, and none of
/// them is read: only regular files are hashed.
pub fn check(set: &SpecSet) -> Result<(), SpecErrors> {
    let mut errors = Vec::new();
    for c in set.containers.values() {
        let files = named_by(c);
        for input in files {
            if input.kind == InputKind::Mount {
                continue;
            }
            match userfile::open(&input.path, input.kind.cap()) {
                Ok(_) | Err(UserFileError::Io { .. }) => {}
                Err(e) => errors.push(located(
                    set,
                    c,
                    &input,
                    format!("{} {e}", input.kind.noun()),
                )),
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(SpecErrors(errors))
    }
}

/// An error at the place in `c`'s spec file where `input` is named (the
/// file alone if the key cannot be found there).
fn located(set: &SpecSet, c: &Container, input: &Input, message: String) -> SpecError {
    let place = set.files.iter().find(|f| f.path == c.source).and_then(|f| {
        span_of(&f.text, &input.key).map(|s| crate::spec::line_col(&f.text, s.start))
    });
    SpecError {
        file: c.source.clone(),
        line: place.map(|p| p.0),
        col: place.map(|p| p.1),
        key: Some(input.key_text()),
        message,
        hint: None,
    }
}

/// The byte span of the value at `key` in a spec file's text.
fn span_of(text: &str, key: &[Seg]) -> Option<std::ops::Range<usize>> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut item = doc.as_item();
    for s in key {
        item = match s {
            Seg::Key(k) => item.get(k.as_str())?,
            Seg::Index(i) => item.get(*i)?,
        };
    }
    item.span()
}

/// What a container's input adds to its hash: a regular file's content
/// (read later, not at all if cached; by its identity and read cap), or a
/// few bytes that stand for it.
enum Part {
    File(userfile::FileKey, u64),
    Said(Vec<u8>),
}

/// What an input contributes: a regular file by its identity from `stat`
/// (opened only when its digest is not cached), anything else as said.
fn part_of(input: &Input) -> Part {
    let said = |s: &str| Part::Said(s.as_bytes().to_vec());
    let meta = match std::fs::metadata(&input.path) {
        Ok(m) => m,
        Err(_) => return said("missing\0"),
    };
    // A directory mount: its listing and mtimes are enough to notice a change.
    if meta.is_dir() {
        return said(&format!("dir {} {}\0", meta.mtime(), meta.mtime_nsec()));
    }
    // A socket, a device or a FIFO is never read.
    if !meta.is_file() {
        return said("other\0");
    }
    let k = userfile::FileKey::of(&meta);
    if input.kind == InputKind::Mount && meta.len() > MAX_HASHED_MOUNT_BYTES {
        return said(&format!(
            "large {} {} {} {} {}\0",
            k.dev, k.ino, k.size, k.mtime_ns, k.ctime_ns
        ));
    }
    Part::File(k, input.kind.cap())
}

fn unreadable(e: &UserFileError) -> Vec<u8> {
    match e {
        UserFileError::Io { source, .. } => format!("unreadable {:?}\0", source.kind()),
        // Swapped for something else since the stat.
        UserFileError::NotRegular { .. } => "other\0".into(),
        UserFileError::TooLarge { .. } => "unreadable TooLarge\0".into(),
        UserFileError::Grew { .. } => "unreadable Grew\0".into(),
    }
    .into_bytes()
}

/// Hash of the current contents of a container's inputs; a missing or
/// unreadable file hashes as such (so its appearance is a change too).
///
/// The digest is the one earlier versions stored (a regular file adds its
/// path, `file`, its bytes), so an upgrade restarts nothing; files are
/// streamed, and the result is cached while no file's identity changes.
pub fn hash_of(c: &Container) -> String {
    let mut parts = Vec::new();
    // Everything the digest depends on but the files' content.
    let mut tag = b"inputs\0".to_vec();
    let mut keys = Vec::new();
    for input in inputs_of(c) {
        let part = part_of(&input);
        tag.extend_from_slice(input.path.as_os_str().as_encoded_bytes());
        tag.push(0);
        match &part {
            Part::File(key, _) => {
                tag.extend_from_slice(b"file\0");
                keys.push(*key);
            }
            Part::Said(b) => tag.extend_from_slice(b),
        }
        tag.push(0xff);
        parts.push((input.path, part));
    }
    let digest = userfile::cached(&tag, &keys, move || {
        let mut h = Sha256::new();
        let mut complete = true;
        for (path, part) in parts {
            h.update(path.as_os_str().as_encoded_bytes());
            h.update([0]);
            match part {
                Part::Said(b) => h.update(b),
                Part::File(key, cap) => {
                    let before = h.clone();
                    h.update(b"file\0");
                    let read = userfile::open(&path, cap).and_then(|f| {
                        // Changed since the stat: this content, not cached.
                        complete &= f.key() == key;
                        f.stream(|chunk| h.update(chunk))
                    });
                    if let Err(e) = read {
                        h = before;
                        h.update(unreadable(&e));
                        complete = false;
                    }
                }
            }
            h.update([0xff]);
        }
        let digest: [u8; 32] = h.finalize().into();
        // A read that failed half-way is not cached.
        if complete {
            Ok(digest)
        } else {
            Err(digest)
        }
    })
    .unwrap_or_else(|d| d);
    hex::encode(digest)
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
                    .map(|c| describe_inputs(c))
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
    let file = userfile::open(path, MAX_SECRET_BYTES).map_err(InputError::SecretRead)?;
    check_private(path, file.metadata())
}

fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<(), InputError> {
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
            // The mode checked is the open file's: what is read is what was checked.
            let file = userfile::open(src, MAX_SECRET_BYTES).map_err(InputError::SecretRead)?;
            check_private(src, file.metadata())?;
            let value = file.read_all().map_err(InputError::SecretRead)?;
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
        .flat_map(|c| files_of(c))
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

    /// How earlier versions hashed a container's inputs (reading each file
    /// whole): what `inputs.json` holds after an upgrade.
    fn earlier_hash_of(c: &Container) -> String {
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

    #[test]
    fn the_digest_is_the_one_earlier_versions_stored() {
        let d = tempfile::tempdir().unwrap();
        let p = |n: &str| d.path().join(n);
        std::fs::write(p("web.env"), "A=1\n").unwrap();
        // Larger than one read chunk, not a multiple of it.
        std::fs::write(p("conf"), vec![7u8; 3 * userfile::CHUNK + 5]).unwrap();
        std::fs::create_dir(p("confdir")).unwrap();
        std::fs::write(p("pw"), "secret").unwrap();
        std::fs::set_permissions(p("pw"), std::fs::Permissions::from_mode(0o000)).unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(p("sock")).unwrap();
        let text = format!(
            "[container.web]\nimage = \"x\"\nenv_files = [\"{d}/web.env\", \"{d}/missing.env\"]\nvolumes = [\"{d}/conf:/c:ro\", \"{d}/confdir:/d:ro\", \"{d}/sock:/s:ro\"]\nsecrets = [{{ name = \"pw\", source = \"{d}/pw\" }}]\n",
            d = d.path().display()
        );
        let set = crate::spec::load_texts(&[(PathBuf::from("a.toml"), text)]).unwrap();
        let c = &set.containers["web"];
        assert_eq!(hash_of(c), earlier_hash_of(c));
        // And again, from the cache or not.
        assert_eq!(hash_of(c), earlier_hash_of(c));
    }

    #[test]
    fn a_fifo_secret_source_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let pipe = userfile::tests::fifo(d.path());
        let text = format!(
            "[container.web]\nimage = \"x\"\nsecrets = [{{ name = \"pw\", source = \"{}\" }}]\n",
            pipe.display()
        );
        let set = crate::spec::load_texts(&[(PathBuf::from("a.toml"), text)]).unwrap();
        let e = userfile::tests::within_5s("sync_secrets with a FIFO source", move || {
            sync_secrets(&set, None)
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "secret source {}: is not a regular file: it is a FIFO (named pipe), which could block a reader forever",
                pipe.display()
            )
        );
    }

    #[test]
    fn check_refuses_fifos_devices_and_oversized_files_at_their_keys() {
        let d = tempfile::tempdir().unwrap();
        let pipe = userfile::tests::fifo(d.path());
        let big = d.path().join("big.env");
        std::fs::write(&big, vec![b'#'; MAX_ENV_FILE_BYTES as usize + 1]).unwrap();
        let big_secret = d.path().join("big_secret");
        std::fs::write(&big_secret, vec![b'x'; 512_000]).unwrap();
        let ok = d.path().join("ok.env");
        std::fs::write(&ok, "A=1\n").unwrap();
        let sock = d.path().join("sock");
        let _sock = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let d = d.path().display();
        let p = pipe.display();
        let text = format!(
            r#"[container.web]
image = "x"
env_files = ["{d}/ok.env", "/dev/zero", "{d}/big.env", "{d}/missing.env"]
secrets = [{{ name = "a", source = "{d}/ok.env" }}, {{ name = "b", source = "{p}" }}]
volumes = ["{p}:/p:ro", "/dev/null:/etc/masked:ro", "{d}/sock:/run/podman.sock:ro", "{d}:/d:ro"]

[container.web.health]
http = "https://127.0.0.1:8443/"
ca_file = "/dev/zero"

[[container.db.secrets]]
name = "big"
source = "{d}/big_secret"
[container.db]
image = "x"
"#
        );
        // `/specs/a.toml:LINE:COL`, COL where `needle` starts on that line.
        let at = |line: usize, needle: &str| {
            let l = text.lines().nth(line - 1).unwrap();
            format!("/specs/a.toml:{line}:{}", l.find(needle).unwrap() + 1)
        };
        let want = [
            format!("{}: container.db.secrets[0].source: secret source {d}/big_secret: is 512000 bytes (500.0 KiB), more than the 511999 bytes (500.0 KiB) allowed", at(13, "\"")),
            format!("{}: container.web.env_files[1]: env file /dev/zero: is not a regular file: it is a character device", at(3, "\"/dev/zero")),
            format!("{}: container.web.env_files[2]: env file {d}/big.env: is 1048577 bytes (1.0 MiB), more than the 1048576 bytes (1.0 MiB) allowed", at(3, &format!("\"{d}/big.env"))),
            format!("{}: container.web.secrets[1].source: secret source {p}: is not a regular file: it is a FIFO (named pipe), which could block a reader forever", at(4, &format!("\"{p}\" }}"))),
            format!("{}: container.web.health.ca_file: ca_file /dev/zero: is not a regular file: it is a character device", at(9, "\"")),
        ];
        let file = PathBuf::from("/specs/a.toml");
        let set = crate::spec::load_texts(&[(file, text.clone())]).unwrap();
        let errors: Vec<String> = check(&set)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errors, want,
            "no error for the good, the missing, or any read-only mount"
        );
    }

    #[test]
    fn a_mounted_file_over_the_hashing_cap_is_not_read() {
        let d = tempfile::tempdir().unwrap();
        let big = d.path().join("disk.img");
        // Sparse: no disk space, but reading it would take a while.
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_HASHED_MOUNT_BYTES + 1).unwrap();
        let text = format!(
            "[container.vm]\nimage = \"x\"\nvolumes = [\"{}:/disk.img:ro\"]\n",
            big.display()
        );
        let set = crate::spec::load_texts(&[(PathBuf::from("a.toml"), text)]).unwrap();
        let c = &set.containers["vm"];
        let (h1, read) = userfile::tests::bytes_read(|| hash_of(c));
        assert_eq!(read, 0);
        f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60))
            .unwrap();
        let (h2, read) = userfile::tests::bytes_read(|| hash_of(c));
        assert_eq!(read, 0);
        assert_ne!(h1, h2, "a new mtime is a change");
    }
}
