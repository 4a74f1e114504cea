//! Watching: spec-directory changes (inotify via `notify`) and signals,
//! turned into debounced triggers for the daemon loop.
//!
//! Debouncing happens here, in the async loop, rather than in a debouncer
//! thread: an idle agent then has no timer ticking at all, and a burst of
//! events (an editor's save-by-rename, a `git checkout` of 1,000 files)
//! becomes one trigger once the directory has been quiet for `debounce`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch {path}: {source}")]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
}

/// Watches a set of directories for changes to the files that matter.
pub struct DirWatcher {
    _watcher: RecommendedWatcher,
    rx: mpsc::UnboundedReceiver<PathBuf>,
    debounce: Duration,
    /// The burst being collected, and when it counts as over. Kept here,
    /// not in `next`, so that `next` is cancel-safe (see there).
    pending: BTreeSet<PathBuf>,
    quiet_at: tokio::time::Instant,
}

impl DirWatcher {
    /// Watches `dirs` (non-recursively). Changes to any entry are reported;
    /// `next` filters nothing, callers decide what a path means.
    pub fn new(dirs: &[&Path], debounce: Duration) -> Result<DirWatcher, WatchError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
                Ok(ev) => {
                    if ev.kind.is_access() {
                        return;
                    }
                    for p in ev.paths {
                        let _ = tx.send(p);
                    }
                }
                Err(e) => tracing::warn!("file watch error: {e}"),
            })
            .map_err(|source| WatchError::Watch {
                path: PathBuf::new(),
                source,
            })?;
        for dir in dirs {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError::Watch {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        Ok(DirWatcher {
            _watcher: watcher,
            rx,
            debounce,
            pending: BTreeSet::new(),
            quiet_at: tokio::time::Instant::now(),
        })
    }

    /// Waits for a change, then until nothing has changed for the debounce
    /// period; returns every path touched in that burst.
    /// `None` when the watcher has stopped.
    ///
    /// Cancel-safe: the daemon polls this in a `select!` that drops it
    /// whenever another branch (a health check's timer, ...) wins. The
    /// paths received so far stay in `pending` for the next call; with them
    /// in a local, such a drop lost the change for good.
    pub async fn next(&mut self) -> Option<BTreeSet<PathBuf>> {
        if self.pending.is_empty() {
            let first = self.rx.recv().await?;
            self.pending.insert(first);
            self.quiet_at = tokio::time::Instant::now() + self.debounce;
        }
        loop {
            match tokio::time::timeout_at(self.quiet_at, self.rx.recv()).await {
                Ok(Some(p)) => {
                    self.pending.insert(p);
                    self.quiet_at = tokio::time::Instant::now() + self.debounce;
                }
                Ok(None) | Err(_) => return Some(std::mem::take(&mut self.pending)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst (1,000 files written in batches, then an editor's save by
    /// rename) becomes one trigger, and nothing of it is left for a second.
    ///
    /// Timing: the debounce is long (1 s) next to what separates the burst's
    /// events (batches 150 ms apart), so a loaded machine that delays the
    /// writer or notify's thread by a few hundred milliseconds does not
    /// split the burst; yet the burst lasts longer than the debounce, so
    /// only a quiet period that starts again with every event keeps it in
    /// one trigger. Nothing waits a fixed time for something not to happen:
    /// the end is a file written after the trigger, and the next trigger
    /// must be that file alone.
    #[tokio::test]
    async fn burst_of_writes_and_rename_saves_become_one_trigger() {
        const DEBOUNCE: Duration = Duration::from_secs(1);
        const BATCHES: usize = 10;
        const GAP: Duration = Duration::from_millis(150);
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_path_buf();
        let mut w = DirWatcher::new(&[&dir], DEBOUNCE).unwrap();

        // Written while the watcher waits, as in the daemon.
        let writer = std::thread::spawn({
            let dir = dir.clone();
            move || {
                let start = std::time::Instant::now();
                for batch in 0..BATCHES {
                    if batch > 0 {
                        std::thread::sleep(GAP);
                    }
                    for i in 0..100 {
                        let name = format!("{}.toml", batch * 100 + i);
                        std::fs::write(dir.join(name), "x").unwrap();
                    }
                }
                // An editor saving by rename.
                std::fs::write(dir.join(".web.toml.swp"), "new").unwrap();
                std::fs::rename(dir.join(".web.toml.swp"), dir.join("web.toml")).unwrap();
                start.elapsed()
            }
        });
        let paths = tokio::time::timeout(Duration::from_secs(60), w.next())
            .await
            .expect("a trigger within a minute")
            .expect("the watcher runs");
        let lasted = writer.join().unwrap();
        assert!(lasted > DEBOUNCE, "the burst lasted {lasted:?}");

        let mut burst: BTreeSet<PathBuf> = (0..BATCHES * 100)
            .map(|i| dir.join(format!("{i}.toml")))
            .collect();
        burst.insert(dir.join(".web.toml.swp"));
        burst.insert(dir.join("web.toml"));
        let missing: Vec<_> = burst.difference(&paths).collect();
        assert!(
            missing.is_empty(),
            "the first trigger ({} paths) lacks {} of the burst, e.g. {:?}",
            paths.len(),
            missing.len(),
            &missing[..missing.len().min(3)]
        );

        // Nothing of the burst left: the next trigger is a later file alone.
        let end = dir.join("end.toml");
        std::fs::write(&end, "x").unwrap();
        let next = tokio::time::timeout(Duration::from_secs(60), w.next())
            .await
            .expect("a trigger for end.toml within a minute")
            .expect("the watcher runs");
        let others: Vec<_> = next.iter().filter(|p| **p != end).collect();
        assert!(
            next.contains(&end) && others.is_empty(),
            "a second trigger with {} other paths, e.g. {:?}",
            others.len(),
            &others[..others.len().min(3)]
        );
    }

    #[tokio::test]
    async fn a_change_survives_a_cancelled_wait() {
        let d = tempfile::tempdir().unwrap();
        let mut w = DirWatcher::new(&[d.path()], Duration::from_millis(300)).unwrap();
        std::fs::write(d.path().join("web.toml"), "x").unwrap();
        // Another select! branch wins while the burst is being debounced.
        assert!(tokio::time::timeout(Duration::from_millis(100), w.next())
            .await
            .is_err());
        let paths = tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .expect("the change is still reported")
            .unwrap();
        assert!(paths.contains(&d.path().join("web.toml")), "{paths:?}");
    }
}
