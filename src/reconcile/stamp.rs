//! The plan stamp: a `plan` that found nothing to change, remembered in the
//! state directory by the identity of everything it read, so that the next
//! `plan` on an unchanged host answers from `lstat` calls instead of parsing
//! and rendering every spec to find the output directory already matches.
//!
//! What a plan reads, and what the fingerprint therefore covers:
//! * the spec files, by identity, and the specs directory with its listing;
//! * the files the specs name (env files, read-only mounts, secret sources,
//!   CA files), by identity, as listed by the plan that wrote the stamp;
//! * the output directory, its listing and every entry's identity;
//! * the state files a plan reads (`pins.json`, `inputs.json`, `pending.json`);
//! * the agent binary (its templates and rules), by path and identity;
//! * settings as text: the resolved configuration, the trust settings, the
//!   Podman and systemd versions rendered for, the host's size (budget).
//!
//! A file's identity is its device, inode, size, mtime and ctime: any write,
//! rename over it, `chmod` or `chown` moves its ctime (see
//! [`FileKey`]). A stamp is written only when every file and directory in
//! the fingerprint was settled (untouched for 2 s) when that plan began, so
//! nothing it read can have changed between its reads and the fingerprint
//! taken after them. A symlink among the spec or output files, anything that
//! differs, or a stamp that cannot be read means a full plan: the stamp is
//! only ever a shortcut to the answer the full plan gave, and deleting it is
//! always safe.

use std::fs::Metadata;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::userfile::FileKey;

/// Bumped when the fingerprint covers something new: an older stamp never
/// matches.
const FORMAT: u32 = 1;

/// Largest stamp read (about 40 bytes per watched unit and named file).
const MAX_STAMP_BYTES: u64 = 16 << 20;

/// The state files a plan reads.
const STATE_FILES: [&str; 3] = ["pins.json", "inputs.json", "pending.json"];

/// Where a plan reads from, and what it depends on that is not a file.
pub struct Context<'a> {
    /// Settings and versions, each as text (a change in any is a mismatch).
    pub settings: Vec<String>,
    pub specs_dir: &'a Path,
    pub output_dir: &'a Path,
    pub state_dir: &'a Path,
    /// The running agent binary.
    pub exe: &'a Path,
}

/// A plan with nothing to change, as the state directory keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    format: u32,
    fingerprint: String,
    #[serde(flatten)]
    pub said: Said,
}

/// What a stamped plan knew beyond its answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Said {
    /// The files the specs name, in the order they are fingerprinted.
    pub inputs: Vec<PathBuf>,
    /// Container files whose units should be running (for the drift check,
    /// which asks systemd and so is never stamped).
    pub watched: Vec<String>,
    /// The plan's warnings (the host budget's), said again with its answer.
    pub warnings: Vec<String>,
}

impl Stamp {
    /// A stamp for a plan that began at `began` and found nothing to
    /// change; `None` when something it read was not settled by then.
    pub fn taken(cx: &Context<'_>, said: Said, began: SystemTime) -> Option<Stamp> {
        let fingerprint = fingerprint(cx, &said.inputs, Some(began))?;
        Some(Stamp {
            format: FORMAT,
            fingerprint,
            said,
        })
    }

    /// Whether nothing the stamped plan read has changed since.
    pub fn holds(&self, cx: &Context<'_>) -> bool {
        self.format == FORMAT
            && fingerprint(cx, &self.said.inputs, None).is_some_and(|f| f == self.fingerprint)
    }
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("plan-stamp.json")
}

/// The saved stamp; `None` when there is none or it cannot be read.
pub fn load(state_dir: &Path) -> Option<Stamp> {
    let bytes = crate::userfile::open(&path(state_dir), MAX_STAMP_BYTES)
        .and_then(|f| f.read_all())
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Saves `stamp` (a cache: written and renamed, not synced; a torn or lost
/// stamp only means a full plan).
pub fn save(state_dir: &Path, stamp: &Stamp) -> std::io::Result<()> {
    let tmp = state_dir.join(".plan-stamp.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(stamp).expect("a stamp serializes"))?;
    std::fs::rename(&tmp, path(state_dir))
}

/// The digest of everything a plan read; `None` when a file is a symlink
/// where none is remembered, or (with `settled_before`) was touched too
/// recently to be told apart from a later change.
pub fn fingerprint(
    cx: &Context<'_>,
    inputs: &[PathBuf],
    settled_before: Option<SystemTime>,
) -> Option<String> {
    let mut w = Walk {
        hash: Sha256::new(),
        settled_before,
        ok: true,
    };
    w.text(&FORMAT.to_string());
    for s in &cx.settings {
        w.text(s);
    }
    w.stat("exe", cx.exe, std::fs::metadata(cx.exe));
    w.dir("specs", cx.specs_dir, crate::spec::is_spec_file_name);
    w.dir("output", cx.output_dir, |_| true);
    for name in STATE_FILES {
        let p = cx.state_dir.join(name);
        let meta = std::fs::symlink_metadata(&p);
        w.stat("state", &p, meta);
    }
    // As the input hashes see them: through a symlink.
    for p in inputs {
        w.stat("input", p, std::fs::metadata(p));
    }
    w.ok.then(|| hex::encode(w.hash.finalize()))
}

struct Walk {
    hash: Sha256,
    settled_before: Option<SystemTime>,
    ok: bool,
}

impl Walk {
    fn text(&mut self, s: &str) {
        self.hash.update((s.len() as u64).to_le_bytes());
        self.hash.update(s.as_bytes());
    }

    fn stat(&mut self, what: &str, path: &Path, meta: std::io::Result<Metadata>) {
        self.text(what);
        self.text(&path.to_string_lossy());
        match meta {
            Ok(m) => self.key(&m),
            Err(e) => self.text(&format!("absent {:?}", e.kind())),
        }
    }

    fn key(&mut self, m: &Metadata) {
        let k = FileKey::of(m);
        if let Some(t) = self.settled_before {
            self.ok &= k.settled(t);
        }
        let t = m.file_type();
        let kind = [t.is_file(), t.is_dir(), t.is_symlink(), t.is_fifo()];
        self.text(&format!(
            "{kind:?} {} {} {} {} {}",
            k.dev, k.ino, k.size, k.mtime_ns, k.ctime_ns
        ));
    }

    /// A directory (followed), its listing of `wanted` names and each
    /// entry's identity; a symlink entry is never trusted.
    fn dir(&mut self, what: &str, dir: &Path, wanted: impl Fn(&Path) -> bool) {
        self.stat(what, dir, std::fs::metadata(dir));
        let Ok(list) = std::fs::read_dir(dir) else {
            return;
        };
        let mut names: Vec<PathBuf> = list
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| wanted(p))
            .collect();
        names.sort();
        for p in names {
            let meta = std::fs::symlink_metadata(&p);
            if meta.as_ref().is_ok_and(|m| m.file_type().is_symlink()) {
                self.ok = false;
            }
            self.stat(what, &p, meta);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct Host {
        _d: tempfile::TempDir,
        specs: PathBuf,
        out: PathBuf,
        state: PathBuf,
        env: PathBuf,
    }

    fn host() -> Host {
        let d = tempfile::tempdir().unwrap();
        let (specs, out, state) = (d.path().join("s"), d.path().join("o"), d.path().join("st"));
        for p in [&specs, &out, &state] {
            std::fs::create_dir(p).unwrap();
        }
        std::fs::write(specs.join("web.toml"), "x").unwrap();
        std::fs::write(out.join("web.container"), "y").unwrap();
        let env = d.path().join("web.env");
        std::fs::write(&env, "A=1").unwrap();
        Host {
            _d: d,
            specs,
            out,
            state,
            env,
        }
    }

    fn cx<'a>(h: &'a Host, settings: &[&str]) -> Context<'a> {
        Context {
            settings: settings.iter().map(|s| s.to_string()).collect(),
            specs_dir: &h.specs,
            output_dir: &h.out,
            state_dir: &h.state,
            exe: Path::new("/proc/self/exe"),
        }
    }

    fn later() -> SystemTime {
        SystemTime::now() + Duration::from_secs(5)
    }

    fn said(inputs: Vec<PathBuf>) -> Said {
        Said {
            inputs,
            watched: vec!["web.container".to_string()],
            warnings: vec!["web has no memory limit".to_string()],
        }
    }

    fn stamp(h: &Host) -> Stamp {
        Stamp::taken(&cx(h, &["a"]), said(vec![h.env.clone()]), later()).unwrap()
    }

    #[test]
    fn a_stamp_holds_until_anything_the_plan_read_changes() {
        let h = host();
        let s = stamp(&h);
        assert!(s.holds(&cx(&h, &["a"])));
        assert!(!s.holds(&cx(&h, &["b"])), "a setting");
        type Touch = fn(&Host);
        let touches: [(&str, Touch); 7] = [
            ("a spec rewritten, same size", |h| {
                std::fs::write(h.specs.join("web.toml"), "z").unwrap()
            }),
            ("a spec chmod", |h| {
                use std::os::unix::fs::PermissionsExt;
                let p = std::fs::Permissions::from_mode(0o600);
                std::fs::set_permissions(h.specs.join("web.toml"), p).unwrap()
            }),
            ("a spec added", |h| {
                std::fs::write(h.specs.join("db.toml"), "").unwrap()
            }),
            ("an output file edited", |h| {
                std::fs::write(h.out.join("web.container"), "q").unwrap()
            }),
            ("an output file added", |h| {
                std::fs::write(h.out.join("x.volume"), "").unwrap()
            }),
            ("pins saved", |h| {
                std::fs::write(h.state.join("pins.json"), "{}").unwrap()
            }),
            ("an env file removed", |h| {
                std::fs::remove_file(&h.env).unwrap()
            }),
        ];
        for (what, touch) in touches {
            let h = host();
            let s = stamp(&h);
            std::thread::sleep(Duration::from_millis(20));
            touch(&h);
            assert!(!s.holds(&cx(&h, &["a"])), "{what}");
        }
    }

    #[test]
    fn nothing_unsettled_or_symlinked_is_stamped_and_a_saved_stamp_reads_back() {
        let h = host();
        let c = cx(&h, &["a"]);
        // Written just now: a plan that began now may have read it earlier.
        assert!(Stamp::taken(&c, said(vec![]), SystemTime::now()).is_none());
        std::os::unix::fs::symlink(h.specs.join("web.toml"), h.specs.join("l.toml")).unwrap();
        assert!(Stamp::taken(&c, said(vec![]), later()).is_none());
        std::fs::remove_file(h.specs.join("l.toml")).unwrap();
        let s = Stamp::taken(&c, said(vec![]), later()).unwrap();
        save(&h.state, &s).unwrap();
        // The stamp itself is not among the files it covers.
        assert_eq!(load(&h.state), Some(s.clone()));
        assert!(s.holds(&c));
        std::fs::write(path(&h.state), "{torn").unwrap();
        assert_eq!(load(&h.state), None);
    }
}
