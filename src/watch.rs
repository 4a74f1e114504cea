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
        })
    }

    /// Waits for a change, then until nothing has changed for the debounce
    /// period; returns every path touched in that burst.
    /// `None` when the watcher has stopped.
    pub async fn next(&mut self) -> Option<BTreeSet<PathBuf>> {
        let first = self.rx.recv().await?;
        let mut paths = BTreeSet::from([first]);
        loop {
            match tokio::time::timeout(self.debounce, self.rx.recv()).await {
                Ok(Some(p)) => {
                    paths.insert(p);
                }
                Ok(None) | Err(_) => return Some(paths),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn burst_of_writes_and_rename_saves_become_one_trigger() {
        let d = tempfile::tempdir().unwrap();
        let mut w = DirWatcher::new(&[d.path()], Duration::from_millis(200)).unwrap();
        for i in 0..1000 {
            std::fs::write(d.path().join(format!("{i}.toml")), "x").unwrap();
        }
        // An editor saving by rename.
        std::fs::write(d.path().join(".web.toml.swp"), "new").unwrap();
        std::fs::rename(d.path().join(".web.toml.swp"), d.path().join("web.toml")).unwrap();
        let paths = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap()
            .unwrap();
        assert!(paths.contains(&d.path().join("web.toml")), "rename seen");
        assert!(
            paths.len() >= 1000,
            "all paths in one trigger: {}",
            paths.len()
        );
        // Nothing more pending: the burst was one trigger.
        assert!(tokio::time::timeout(Duration::from_millis(400), w.next())
            .await
            .is_err());
    }
}
