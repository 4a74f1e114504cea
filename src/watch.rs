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

/// A directory watched by its path: the directory that path names now.
struct Target {
    /// As given: a change of the directory it names is reported so.
    given: PathBuf,
    /// As given, made absolute.
    path: PathBuf,
    /// The directory watched: its real path and (device, inode).
    real: Option<(PathBuf, (u64, u64))>,
}

/// Watches a set of directories for changes to the files that matter.
///
/// By path, not by inode: a directory replaced (`rm -rf specs; mkdir
/// specs`, `mv new specs`), re-created, or reached through a symlink that
/// is swapped (`ln -sfn releases/v2 current`, as git, Ansible and rsync
/// do) is watched again, and the change is reported as a change of the
/// path itself. For that the directories on the way are watched too (the
/// parent and grandparent, before and after symlinks, and the directory
/// holding each symlink); their other entries are ignored.
pub struct DirWatcher {
    /// Rebuilt whenever a target changes (see [`refresh`](Self::refresh)).
    watcher: RecommendedWatcher,
    tx: mpsc::UnboundedSender<PathBuf>,
    rx: mpsc::UnboundedReceiver<PathBuf>,
    targets: Vec<Target>,
    /// Every prefix of each target's path and real path: an event on one
    /// of these may mean a target now names another directory.
    on_the_way: BTreeSet<PathBuf>,
    /// Which entries count (see [`only`](Self::only)).
    matters: Box<dyn Fn(&Path) -> bool + Send>,
    debounce: Duration,
    /// The burst being collected, and when it counts as over. Kept here,
    /// not in `next`, so that `next` is cancel-safe (see there).
    pending: BTreeSet<PathBuf>,
    quiet_at: tokio::time::Instant,
}

impl DirWatcher {
    /// Watches `dirs` (non-recursively); each must exist now. Changes to any
    /// entry are reported; `next` filters nothing else, callers decide what
    /// a path means.
    pub fn new(dirs: &[&Path], debounce: Duration) -> Result<DirWatcher, WatchError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut targets = Vec::new();
        for dir in dirs {
            let path = absolute(dir);
            let Some(real) = resolve(&path) else {
                return Err(WatchError::Watch {
                    path,
                    source: notify::Error::path_not_found(),
                });
            };
            targets.push(Target {
                given: dir.to_path_buf(),
                path,
                real: Some(real),
            });
        }
        let (watcher, on_the_way) = watch_all(&tx, &targets)?;
        Ok(DirWatcher {
            watcher,
            tx,
            rx,
            targets,
            on_the_way,
            matters: Box::new(|_| true),
            debounce,
            pending: BTreeSet::new(),
            quiet_at: tokio::time::Instant::now(),
        })
    }

    /// Re-resolves every target; when one names another directory now, or
    /// its directory had an event itself (`touched`: deleted, re-created,
    /// renamed; a directory re-created at once may get its inode number
    /// back), watches everything again. Returns the paths of the targets
    /// that changed.
    ///
    /// Again means a new watcher, not a new watch in the old one: notify
    /// drops a deleted directory's watch by path, from its own thread, and
    /// could drop the new watch of a directory re-created at that path.
    fn refresh(&mut self, touched: &Path) -> Vec<PathBuf> {
        let mut changed = Vec::new();
        for t in &mut self.targets {
            let now = resolve(&t.path);
            let own = t.path == touched || t.real.as_ref().is_some_and(|(r, _)| r == touched);
            if now != t.real || own {
                t.real = now;
                changed.push(t.given.clone());
            }
        }
        if !changed.is_empty() {
            match watch_all(&self.tx, &self.targets) {
                Ok((watcher, on_the_way)) => {
                    self.watcher = watcher;
                    self.on_the_way = on_the_way;
                }
                Err(e) => tracing::warn!("{e}"),
            }
        }
        changed
    }

    /// A received path that matters: an entry of a watched target, or an
    /// entry on the way to one (then the targets are re-resolved, and a
    /// target that changed is reported by its own path).
    fn take(&mut self, p: PathBuf) {
        if self.on_the_way.contains(&p) || self.targets.iter().any(|t| t.real.is_none()) {
            let changed = self.refresh(&p);
            self.pending.extend(changed);
        }
        // An entry of a target, reported under the target's path as given
        // (its absolute form), not its real path: callers compare it with
        // paths as the specs write them, symlinks and all.
        let (Some(dir), Some(name)) = (p.parent(), p.file_name()) else {
            return;
        };
        let target = self
            .targets
            .iter()
            .find(|t| t.real.as_ref().is_some_and(|(r, _)| r == dir));
        if let Some(t) = target {
            let p = t.path.join(name);
            // Ignored entries (an editor's swap file) do not even extend
            // the quiet period.
            if (self.matters)(&p) {
                self.pending.insert(p);
            }
        }
    }

    /// Only entries for which `matters` is true count; the others are
    /// ignored (they neither trigger nor extend the debounce).
    pub fn only(mut self, matters: impl Fn(&Path) -> bool + Send + 'static) -> DirWatcher {
        self.matters = Box::new(matters);
        self
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
        while self.pending.is_empty() {
            let first = self.rx.recv().await?;
            self.take(first);
            self.quiet_at = tokio::time::Instant::now() + self.debounce;
        }
        loop {
            match tokio::time::timeout_at(self.quiet_at, self.rx.recv()).await {
                Ok(Some(p)) => {
                    let before = self.pending.len();
                    self.take(p);
                    if self.pending.len() > before {
                        self.quiet_at = tokio::time::Instant::now() + self.debounce;
                    }
                }
                Ok(None) | Err(_) => return Some(std::mem::take(&mut self.pending)),
            }
        }
    }
}

/// A watcher over the targets' directories (those that exist now) and the
/// directories on the way to them; and the paths on the way.
fn watch_all(
    tx: &mpsc::UnboundedSender<PathBuf>,
    targets: &[Target],
) -> Result<(RecommendedWatcher, BTreeSet<PathBuf>), WatchError> {
    let tx = tx.clone();
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
    let mut anchors = BTreeSet::new();
    let mut on_the_way = BTreeSet::new();
    for t in targets {
        let real = t.real.as_ref().map(|(r, _)| r.as_path());
        if let Some(r) = real {
            watcher
                .watch(r, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError::Watch {
                    path: t.path.clone(),
                    source,
                })?;
        }
        for p in std::iter::once(t.path.as_path()).chain(real) {
            on_the_way.extend(p.ancestors().map(Path::to_path_buf));
            anchors.extend(p.ancestors().skip(1).take(2).map(Path::to_path_buf));
        }
        for link in t.path.ancestors().filter(|p| p.is_symlink()) {
            anchors.extend(link.parent().map(Path::to_path_buf));
        }
    }
    for a in &anchors {
        // Best effort: a directory on the way may be missing for a moment.
        let _ = watcher.watch(a, RecursiveMode::NonRecursive);
    }
    Ok((watcher, on_the_way))
}

/// `path` made absolute (against the current directory).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The directory `path` names now: its real path and (device, inode).
fn resolve(path: &Path) -> Option<(PathBuf, (u64, u64))> {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(&real).ok()?;
    meta.is_dir().then(|| (real, (meta.dev(), meta.ino())))
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
    /// The next trigger within a minute.
    async fn trigger(w: &mut DirWatcher) -> BTreeSet<PathBuf> {
        tokio::time::timeout(Duration::from_secs(60), w.next())
            .await
            .expect("a trigger within a minute")
            .expect("the watcher runs")
    }

    /// Proves `target` (a watched path) is watched: writes a file in the
    /// directory it names and waits for the trigger that reports it. A
    /// trigger that reports `target` itself (re-resolved: the caller
    /// re-reads all of it) may come first, for changes made before the new
    /// directory was watched; then another file is written. Returns the
    /// triggers that came before.
    async fn seen(w: &mut DirWatcher, target: &Path, name: &str) -> Vec<BTreeSet<PathBuf>> {
        let mut before = Vec::new();
        for attempt in 0.. {
            // Reported under the watched path, written through it.
            let file = target.join(format!("{attempt}-{name}"));
            std::fs::write(&file, "x").unwrap();
            loop {
                let t = trigger(w).await;
                if t.contains(&file) {
                    return before;
                }
                let again = t.contains(target);
                before.push(t);
                if again {
                    break;
                }
            }
        }
        unreachable!()
    }

    /// Entries that do not matter (an editor's swap file saved every
    /// 200 ms) neither trigger nor postpone the trigger of one that does.
    #[tokio::test]
    async fn ignored_entries_do_not_postpone_a_trigger() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_path_buf();
        let mut w = DirWatcher::new(&[&dir], Duration::from_secs(1))
            .unwrap()
            .only(|p| p.extension().is_some_and(|e| e == "toml"));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = std::thread::spawn({
            let (dir, done) = (dir.clone(), done.clone());
            move || {
                std::fs::write(dir.join("web.toml"), "x").unwrap();
                for _ in 0..40 {
                    std::fs::write(dir.join(".web.toml.swp"), "y").unwrap();
                    std::thread::sleep(Duration::from_millis(200));
                }
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let t = trigger(&mut w).await;
        assert!(
            !done.load(std::sync::atomic::Ordering::SeqCst),
            "the trigger waited for the swap file writes to stop"
        );
        assert_eq!(t, BTreeSet::from([dir.join("web.toml")]));
        writer.join().unwrap();
    }

    #[tokio::test]
    async fn a_replaced_directory_is_watched_again() {
        let d = tempfile::tempdir().unwrap();
        let specs = d.path().join("specs");
        std::fs::create_dir(&specs).unwrap();
        let mut w = DirWatcher::new(&[&specs], Duration::from_millis(100)).unwrap();
        seen(&mut w, &specs, "a.toml").await;
        // rm -rf specs; mkdir specs (the path is missing for a moment).
        std::fs::remove_dir_all(&specs).unwrap();
        std::fs::create_dir(&specs).unwrap();
        let before = seen(&mut w, &specs, "b.toml").await;
        assert!(
            before.iter().any(|t| t.contains(&specs)),
            "the replacement is a change of the path: {before:?}"
        );
        // mv new specs, over it.
        let new = d.path().join("specs.new");
        std::fs::create_dir(&new).unwrap();
        std::fs::remove_dir_all(&specs).unwrap();
        std::fs::rename(&new, &specs).unwrap();
        let before = seen(&mut w, &specs, "c.toml").await;
        assert!(before.iter().any(|t| t.contains(&specs)), "{before:?}");
    }

    /// A specs path through a symlink swapped a hundred times (`ln -sfn`,
    /// atomically by rename, as deploy tools do), each new target deleted
    /// again: the watch follows to the newest, and the old ones are left.
    #[tokio::test]
    async fn a_swapped_symlink_is_followed_every_time() {
        let d = tempfile::tempdir().unwrap();
        let releases = d.path().join("releases");
        let current = d.path().join("current");
        std::fs::create_dir_all(releases.join("0")).unwrap();
        std::os::unix::fs::symlink(releases.join("0"), &current).unwrap();
        let mut w = DirWatcher::new(&[&current], Duration::from_millis(100)).unwrap();
        for i in 1..=100 {
            let next = releases.join(i.to_string());
            std::fs::create_dir(&next).unwrap();
            std::fs::write(next.join("web.toml"), i.to_string()).unwrap();
            let tmp = d.path().join("current.tmp");
            std::os::unix::fs::symlink(&next, &tmp).unwrap();
            std::fs::rename(&tmp, &current).unwrap();
            std::fs::remove_dir_all(releases.join((i - 1).to_string())).unwrap();
        }
        let before = seen(&mut w, &current, "edit.toml").await;
        assert!(
            before.iter().any(|t| t.contains(&current)),
            "the swaps were reported as a change of the path: {before:?}"
        );
        // The old target is not watched: its write is not reported, the
        // newest target's is.
        std::fs::create_dir(releases.join("old")).unwrap();
        std::fs::write(releases.join("old/x.toml"), "x").unwrap();
        let old = std::fs::canonicalize(releases.join("old/x.toml")).unwrap();
        let before = seen(&mut w, &current, "end.toml").await;
        assert!(!before.iter().any(|t| t.contains(&old)), "{before:?}");
    }
}
