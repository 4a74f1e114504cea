//! One writer at a time. Every apply (the daemon's, `apply`, `rollback`)
//! holds an exclusive `flock` on `STATE/lock` from reading the specs to
//! recording the generation; another one waits for it, saying who holds it,
//! and gives up with a clear error after its timeout. The kernel drops the
//! lock with the process, so a crashed holder never leaves it stuck.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another deploy-agent ({holder}) has been applying for {waited:?}; gave up waiting (nothing was changed)"
    )]
    Busy { holder: String, waited: Duration },
}

/// Held while applying; dropping it releases the lock.
#[derive(Debug)]
pub struct ApplyLock {
    _lock: Flock<File>,
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("lock")
}

/// Takes the apply lock of `state_dir`, waiting at most `wait` for another
/// holder (and saying so once, on stderr/the journal, when it has to wait).
pub async fn acquire(state_dir: &Path, wait: Duration) -> Result<ApplyLock, LockError> {
    let p = path(state_dir);
    let io = |source| LockError::Io {
        path: p.clone(),
        source,
    };
    std::fs::create_dir_all(state_dir).map_err(io)?;
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
    };
    let file = open().map_err(io)?;
    let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let holder = holder(&p);
            tracing::warn!("another deploy-agent ({holder}) is applying; waiting up to {wait:?}");
            // A blocking flock in a thread of its own; if the wait runs
            // out, the thread's lock (taken later) is dropped at once.
            let file = open().map_err(io)?;
            let blocking = tokio::task::spawn_blocking(move || {
                Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| e)
            });
            match tokio::time::timeout(wait, blocking).await {
                Ok(Ok(Ok(l))) => l,
                Ok(Ok(Err(e))) => return Err(io(e.into())),
                Ok(Err(e)) => return Err(io(std::io::Error::other(e))),
                Err(_) => {
                    return Err(LockError::Busy {
                        holder,
                        waited: wait,
                    })
                }
            }
        }
        Err((_, e)) => return Err(io(e.into())),
    };
    // Who holds it, for whoever waits next.
    let mut f = lock
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .map_err(io)?;
    let me = format!("pid {}", std::process::id());
    f.set_len(0)
        .and_then(|_| f.rewind())
        .and_then(|_| f.write_all(me.as_bytes()))
        .map_err(io)?;
    Ok(ApplyLock { _lock: lock })
}

/// What the lock file says about its holder.
fn holder(p: &Path) -> String {
    let mut s = String::new();
    let _ = File::open(p).and_then(|mut f| f.read_to_string(&mut s));
    let s = s.trim();
    if s.is_empty() {
        "pid unknown".into()
    } else {
        s.chars().take(40).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_writer_waits_then_gives_up_or_gets_it() {
        let d = tempfile::tempdir().unwrap();
        let first = acquire(d.path(), Duration::from_secs(1)).await.unwrap();
        let e = acquire(d.path(), Duration::from_millis(300))
            .await
            .unwrap_err()
            .to_string();
        let me = format!("pid {}", std::process::id());
        assert!(e.contains(&me) && e.contains("gave up waiting"), "{e}");
        // Released while the second one waits: it gets the lock.
        let second = tokio::spawn({
            let dir = d.path().to_path_buf();
            async move { acquire(&dir, Duration::from_secs(30)).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(first);
        second.await.unwrap().unwrap();
    }
}
