//! Reading a file from a path the operator controls: spec files,
//! agent.toml, env files, secret sources, a health check's `ca_file`, and
//! the host files mounted read-only into containers (hashed, not loaded).
//!
//! This module is THE way the agent reads such a file, because a path in a
//! spec can name anything: a FIFO (reading it blocks forever), a device
//! (`/dev/zero` never ends, some devices act on open), a directory, or a
//! file far larger than anything the agent should hold in memory. So:
//!
//! * the path is stat'ed first and anything but a regular file is refused
//!   without being opened;
//! * it is opened with `O_NONBLOCK | O_CLOEXEC | O_NOCTTY` (so even a FIFO
//!   swapped in after the stat does not block the open), and the open
//!   descriptor is fstat'ed: what is read is what was checked;
//! * a file larger than the caller's cap is refused, and at most cap + 1
//!   bytes are ever read, so a file that grows while being read is caught;
//! * hashing streams in 64 KiB chunks, and a digest is cached by the
//!   file's identity (device, inode, size, mtime, ctime), so an unchanged
//!   multi-GB mounted file is read once per process, not on every plan.
//!
//! Every error names the path and says what is wrong in an operator's
//! words ([`UserFileError`]).

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::OFlag;
use sha2::{Digest, Sha256};

/// Hashing reads this much at a time.
pub const CHUNK: usize = 64 * 1024;

/// What a path is when it is not a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Other,
}

impl FileKind {
    /// `None` for a regular file.
    fn of(meta: &Metadata) -> Option<FileKind> {
        let t = meta.file_type();
        if t.is_file() {
            return None;
        }
        Some(if t.is_dir() {
            FileKind::Directory
        } else if t.is_fifo() {
            FileKind::Fifo
        } else if t.is_socket() {
            FileKind::Socket
        } else if t.is_char_device() {
            FileKind::CharDevice
        } else if t.is_block_device() {
            FileKind::BlockDevice
        } else {
            FileKind::Other
        })
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Directory => "a directory",
            FileKind::Fifo => "a FIFO (named pipe), which could block a reader forever",
            FileKind::Socket => "a socket",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Other => "neither a file nor a directory",
        })
    }
}

/// Why a file from a user-controlled path was not read. `Display` is
/// `PATH: problem`; [`UserFileError::problem`] is the part after the path.
#[derive(Debug, thiserror::Error)]
pub enum UserFileError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: is not a regular file: it is {kind}", path.display())]
    NotRegular { path: PathBuf, kind: FileKind },
    #[error("{}: is {}, more than the {} allowed", path.display(), bytes(*size), bytes(*cap))]
    TooLarge { path: PathBuf, size: u64, cap: u64 },
    #[error("{}: grew past the {} allowed while it was being read", path.display(), bytes(*cap))]
    Grew { path: PathBuf, cap: u64 },
}

impl UserFileError {
    pub fn path(&self) -> &Path {
        match self {
            UserFileError::Io { path, .. }
            | UserFileError::NotRegular { path, .. }
            | UserFileError::TooLarge { path, .. }
            | UserFileError::Grew { path, .. } => path,
        }
    }

    /// What is wrong, without the path (for callers that name it themselves).
    pub fn problem(&self) -> String {
        let all = self.to_string();
        let prefix = format!("{}: ", self.path().display());
        all.strip_prefix(&prefix).unwrap_or(&all).to_string()
    }

    /// The path does not exist (or a directory on the way does not).
    pub fn is_not_found(&self) -> bool {
        matches!(self, UserFileError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    fn io(path: &Path) -> impl FnOnce(io::Error) -> UserFileError + '_ {
        move |source| UserFileError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `1048577 bytes (1.0 MiB)`: exact, and readable when large.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{n} bytes ({v:.1} {})", UNITS[unit])
}

/// A file's identity and version: when none of these changed, neither did
/// its content (as far as the kernel's bookkeeping can tell).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileKey {
    pub fn of(meta: &Metadata) -> FileKey {
        let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Old enough that a same-size rewrite would show in mtime or ctime.
    /// Timestamps are only as fine as the file system keeps them (a kernel
    /// tick on ext4 or XFS, 2 s on FAT): a file written again within that
    /// time can keep both, so a digest of a file that recent is not cached.
    pub fn settled(&self, now: SystemTime) -> bool {
        let now = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(_) => return false,
        };
        let newest = self.mtime_ns.max(self.ctime_ns);
        now - newest > SETTLE.as_nanos() as i128
    }
}

/// See [`FileKey::settled`].
const SETTLE: Duration = Duration::from_secs(2);

/// A regular file, open and checked, not read yet.
#[derive(Debug)]
pub struct UserFile {
    path: PathBuf,
    file: File,
    meta: Metadata,
    cap: u64,
}

/// Opens a file from a user-controlled path for reading: only a regular
/// file of at most `cap` bytes (see the module's documentation).
pub fn open(path: &Path, cap: u64) -> Result<UserFile, UserFileError> {
    // Refused without being opened: opening a device can act on it.
    let meta = std::fs::metadata(path).map_err(UserFileError::io(path))?;
    refuse_non_regular(path, &meta)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY).bits())
        .open(path)
        .map_err(UserFileError::io(path))?;
    // What was opened may not be what was stat'ed: check the descriptor.
    let meta = file.metadata().map_err(UserFileError::io(path))?;
    refuse_non_regular(path, &meta)?;
    if meta.len() > cap {
        return Err(UserFileError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            cap,
        });
    }
    Ok(UserFile {
        path: path.to_path_buf(),
        file,
        meta,
        cap,
    })
}

fn refuse_non_regular(path: &Path, meta: &Metadata) -> Result<(), UserFileError> {
    match FileKind::of(meta) {
        None => Ok(()),
        Some(kind) => Err(UserFileError::NotRegular {
            path: path.to_path_buf(),
            kind,
        }),
    }
}

impl UserFile {
    /// The open file's own metadata (fstat), e.g. for an owner or mode check.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    pub fn key(&self) -> FileKey {
        FileKey::of(&self.meta)
    }

    /// The whole file (at most `cap` bytes).
    pub fn read_all(self) -> Result<Vec<u8>, UserFileError> {
        let mut out = Vec::with_capacity(self.meta.len() as usize);
        self.stream(|chunk| out.extend_from_slice(chunk))?;
        Ok(out)
    }

    /// Feeds the file to `sink` in chunks of at most [`CHUNK`] bytes;
    /// returns how many bytes it read. Reads at most `cap` + 1 bytes: one
    /// more is an error, the file grew since it was checked.
    pub fn stream(self, mut sink: impl FnMut(&[u8])) -> Result<u64, UserFileError> {
        let mut limited = (&self.file).take(self.cap.saturating_add(1));
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = match limited.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(UserFileError::io(&self.path)(e)),
            };
            total += n as u64;
            #[cfg(test)]
            tests::count_read(n);
            if total > self.cap {
                return Err(UserFileError::Grew {
                    path: self.path,
                    cap: self.cap,
                });
            }
            sink(&buf[..n]);
        }
    }
}

/// Reads a whole file from a user-controlled path: a regular file of at
/// most `cap` bytes, never blocking on a FIFO.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, UserFileError> {
    open(path, cap)?.read_all()
}

/// SHA-256 of a file's content (what `sha256sum` prints), streamed; a file
/// whose identity did not change since it was last hashed is not read again.
pub fn hash_file(path: &Path, cap: u64) -> Result<[u8; 32], UserFileError> {
    let file = open(path, cap)?;
    cached(b"sha256", &[file.key()], || {
        let mut h = Sha256::new();
        file.stream(|chunk| h.update(chunk))?;
        Ok(h.finalize().into())
    })
}

/// Digests are cached per process; past this many, the cache starts over.
const CACHE_MAX: usize = 4096;

type CacheKey = (Vec<u8>, Vec<FileKey>);

fn cache() -> std::sync::MutexGuard<'static, HashMap<CacheKey, [u8; 32]>> {
    static CACHE: OnceLock<Mutex<HashMap<CacheKey, [u8; 32]>>> = OnceLock::new();
    CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// A digest computed from the content of `files` (and whatever `tag`
/// stands for: what is computed, and any other input), cached by the
/// files' identities. `compute` runs only on a miss; an error from it is
/// returned and not cached, and neither is a digest of a file modified
/// within the last 2 s (see [`FileKey::settled`]).
pub fn cached<E>(
    tag: &[u8],
    files: &[FileKey],
    compute: impl FnOnce() -> Result<[u8; 32], E>,
) -> Result<[u8; 32], E> {
    let key = (tag.to_vec(), files.to_vec());
    if let Some(d) = cache().get(&key) {
        return Ok(*d);
    }
    // Not locked while reading: a multi-GB file takes seconds.
    let digest = compute()?;
    let now = SystemTime::now();
    if files.iter().all(|f| f.settled(now)) {
        let mut c = cache();
        if c.len() >= CACHE_MAX {
            c.clear();
        }
        c.insert(key, digest);
    }
    Ok(digest)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::mpsc;

    thread_local! {
        static READ: Cell<u64> = const { Cell::new(0) };
    }

    pub(super) fn count_read(n: usize) {
        READ.with(|r| r.set(r.get() + n as u64));
    }

    /// Bytes this thread read from files while running `f`.
    pub(crate) fn bytes_read<T>(f: impl FnOnce() -> T) -> (T, u64) {
        let before = READ.with(Cell::get);
        let out = f();
        (out, READ.with(Cell::get) - before)
    }

    /// Runs `f` on a thread of its own and fails the test, rather than
    /// hanging it, if `f` has not returned within 5 s.
    pub(crate) fn within_5s<T: Send + 'static>(
        what: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("{what}: still blocked after 5 s"))
    }

    pub(crate) fn fifo(dir: &Path) -> PathBuf {
        let p = dir.join("pipe");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        p
    }

    #[test]
    fn a_regular_file_is_read_and_hashed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, "hello\n").unwrap();
        assert_eq!(read_capped(&p, 6).unwrap(), b"hello\n");
        assert_eq!(read_capped(&p, 1 << 20).unwrap(), b"hello\n");
        assert_eq!(
            hex::encode(hash_file(&p, 1 << 20).unwrap()),
            // sha256sum of "hello\n"
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        let empty = d.path().join("empty");
        std::fs::write(&empty, "").unwrap();
        assert_eq!(read_capped(&empty, 0).unwrap(), b"");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let p = fifo(d.path());
        let q = p.clone();
        let e = within_5s("read_capped of a FIFO", move || read_capped(&q, 1 << 20)).unwrap_err();
        assert!(
            matches!(
                e,
                UserFileError::NotRegular {
                    kind: FileKind::Fifo,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "{}: is not a regular file: it is a FIFO (named pipe), which could block a reader forever",
                p.display()
            )
        );
        let q = p.clone();
        let e = within_5s("hash_file of a FIFO", move || hash_file(&q, 1 << 20)).unwrap_err();
        assert!(matches!(e, UserFileError::NotRegular { .. }), "{e:?}");
        // A symlink to it is the FIFO too.
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        let e = within_5s("read_capped of a symlink to a FIFO", move || {
            read_capped(&link, 1 << 20)
        })
        .unwrap_err();
        assert!(matches!(e, UserFileError::NotRegular { .. }), "{e:?}");
    }

    #[test]
    fn devices_are_refused() {
        for dev in ["/dev/zero", "/dev/null", "/dev/urandom"] {
            let e = within_5s(dev, move || read_capped(Path::new(dev), 1 << 20)).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{dev}: is not a regular file: it is a character device")
            );
            let e = within_5s(dev, move || hash_file(Path::new(dev), 1 << 20)).unwrap_err();
            assert!(matches!(e, UserFileError::NotRegular { .. }), "{e:?}");
        }
    }

    #[test]
    fn a_directory_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = read_capped(d.path(), 1 << 20).unwrap_err();
        assert!(
            matches!(
                e,
                UserFileError::NotRegular {
                    kind: FileKind::Directory,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.problem(), "is not a regular file: it is a directory");
    }

    #[test]
    fn a_socket_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let e = read_capped(&p, 1 << 20).unwrap_err();
        assert_eq!(e.problem(), "is not a regular file: it is a socket");
    }

    #[test]
    fn a_file_over_the_cap_is_refused_and_not_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big");
        std::fs::write(&p, vec![b'x'; 2 * 1024 * 1024 + 1]).unwrap();
        let (r, read) = bytes_read(|| read_capped(&p, 1 << 20));
        let e = r.unwrap_err();
        assert_eq!(read, 0, "refused on its size, before reading");
        assert_eq!(
            e.to_string(),
            format!(
                "{}: is 2097153 bytes (2.0 MiB), more than the 1048576 bytes (1.0 MiB) allowed",
                p.display()
            )
        );
        let (r, read) = bytes_read(|| hash_file(&p, 1 << 20));
        assert!(matches!(r, Err(UserFileError::TooLarge { .. })), "{r:?}");
        assert_eq!(read, 0);
        // Exactly the cap is fine.
        assert_eq!(read_capped(&p, 2 * 1024 * 1024 + 1).unwrap().len(), 2097153);
    }

    #[test]
    fn missing_and_unreadable_files_say_so() {
        let e = read_capped(Path::new("/nonexistent/x"), 10).unwrap_err();
        assert!(e.is_not_found());
        assert!(
            e.to_string()
                .starts_with("/nonexistent/x: cannot read: No such file or directory"),
            "{e}"
        );
    }

    #[test]
    fn the_hash_cache_skips_unchanged_files_and_sees_changes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("mounted");
        let a = vec![b'a'; 3 * CHUNK + 17];
        std::fs::write(&p, &a).unwrap();
        // Only a file older than the settling time is cached.
        std::thread::sleep(SETTLE + Duration::from_millis(100));
        let (first, read) = bytes_read(|| hash_file(&p, u64::MAX).unwrap());
        assert_eq!(read, a.len() as u64);
        assert_eq!(first, <[u8; 32]>::from(Sha256::digest(&a)));
        let (again, read) = bytes_read(|| hash_file(&p, u64::MAX).unwrap());
        assert_eq!(again, first);
        assert_eq!(read, 0, "an unchanged file is not read again");

        // Same size, new content, a new mtime: hashed again.
        let b = vec![b'b'; a.len()];
        std::fs::write(&p, &b).unwrap();
        let f = File::options().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        let (changed, read) = bytes_read(|| hash_file(&p, u64::MAX).unwrap());
        assert_eq!(read, b.len() as u64);
        assert_ne!(changed, first);
        assert_eq!(changed, <[u8; 32]>::from(Sha256::digest(&b)));
        // Just written (ctime is now): not cached, so read every time.
        let (_, read) = bytes_read(|| hash_file(&p, u64::MAX).unwrap());
        assert_eq!(
            read,
            b.len() as u64,
            "a digest of a fresh file is not cached"
        );
    }

    #[test]
    fn settled_means_older_than_the_timestamp_granularity() {
        let key = |secs: i128| FileKey {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns: secs * 1_000_000_000,
            ctime_ns: secs * 1_000_000_000,
        };
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        assert!(key(990).settled(now));
        assert!(!key(999).settled(now));
        assert!(
            !key(1005).settled(now),
            "a time in the future is not settled"
        );
    }

    #[test]
    fn sizes_read_exact_and_human() {
        assert_eq!(bytes(0), "0 bytes");
        assert_eq!(bytes(1023), "1023 bytes");
        assert_eq!(bytes(1 << 20), "1048576 bytes (1.0 MiB)");
        assert_eq!(bytes(64 << 30), "68719476736 bytes (64.0 GiB)");
    }
}
