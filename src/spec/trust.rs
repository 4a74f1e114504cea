//! Who may write specs. A spec decides what runs as the agent's user (as
//! root for the system agent), so a spec file, the specs directory and every
//! directory above it must be writable only by root and the agent's user, or
//! by a group the operator trusts (`trusted_group` in agent.toml); otherwise
//! someone else could make the agent run any container. Symlinks on the way
//! are followed, and each link's own owner is checked too.
//!
//! Rules, like OpenSSH's StrictModes:
//! - owner: root or the agent's user (every checked path, links included);
//! - writable by others: refused, except for a sticky directory above the
//!   specs directory (`/tmp`: others cannot rename what they do not own);
//! - writable by the group: refused unless the group is root's (gid 0) or
//!   the trusted group (same sticky exception).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

const STICKY: u32 = 0o1000;

/// Whose writes the agent accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trust {
    /// The agent's effective user.
    pub uid: u32,
    /// A group whose members may write specs (`trusted_group`), if any.
    pub group: Option<u32>,
}

impl Trust {
    /// This process's user, no trusted group.
    pub fn this_process() -> Trust {
        Trust {
            uid: nix::unistd::geteuid().as_raw(),
            group: None,
        }
    }

    /// The specs directory: itself, every directory above it, and every
    /// symlink on the way to it.
    pub fn check_specs_dir(&self, dir: &Path) -> Result<(), String> {
        self.check_links(dir)?;
        let real =
            fs::canonicalize(dir).map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
        self.check(&real, "specs directory", false)?;
        for above in real.ancestors().skip(1) {
            self.check(above, "directory above the specs", true)?;
        }
        Ok(())
    }

    /// A spec file; when it is a symlink, the link and the directories
    /// holding its target too (the specs directory itself is checked by
    /// [`check_specs_dir`](Self::check_specs_dir)). Returns whether it is
    /// a symlink.
    pub fn check_spec_file(&self, path: &Path) -> Result<bool, String> {
        let link = fs::symlink_metadata(path).map_err(|e| format!("cannot read: {e}"))?;
        if !link.file_type().is_symlink() {
            return self
                .check_meta(path, &link, "spec file", false)
                .map(|()| false);
        }
        self.check_links(path)?;
        let real = fs::canonicalize(path).map_err(|e| format!("cannot resolve: {e}"))?;
        self.check(&real, "spec file", false)?;
        for above in real.ancestors().skip(1) {
            self.check(above, "directory above the spec file", true)?;
        }
        Ok(true)
    }

    /// Every symlink met while resolving `path` (links to links included).
    fn check_links(&self, path: &Path) -> Result<(), String> {
        let mut todo = vec![absolute(path)];
        let mut seen = 0;
        while let Some(p) = todo.pop() {
            let mut prefix = PathBuf::new();
            for c in p.components() {
                prefix.push(c);
                if !matches!(c, Component::Normal(_)) {
                    continue;
                }
                let Ok(meta) = fs::symlink_metadata(&prefix) else {
                    break; // reported when the path is resolved
                };
                if meta.file_type().is_symlink() {
                    self.check_owner(&prefix, &meta, "symlink")?;
                    seen += 1;
                    if seen > 40 {
                        return Err(format!("{}: too many levels of symlinks", path.display()));
                    }
                    if let Ok(target) = fs::read_link(&prefix) {
                        let parent = prefix.parent().unwrap_or(Path::new("/"));
                        todo.push(parent.join(target));
                    }
                }
            }
        }
        Ok(())
    }

    fn check(&self, path: &Path, what: &str, sticky_ok: bool) -> Result<(), String> {
        let meta =
            fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        self.check_meta(path, &meta, what, sticky_ok)
    }

    fn check_meta(
        &self,
        path: &Path,
        meta: &fs::Metadata,
        what: &str,
        sticky_ok: bool,
    ) -> Result<(), String> {
        self.check_owner(path, meta, what)?;
        let mode = meta.mode() & 0o7777;
        let sticky = sticky_ok && meta.is_dir() && mode & STICKY != 0;
        if mode & 0o002 != 0 && !sticky {
            return Err(format!(
                "{what} {} is writable by everyone (mode {mode:o}); refusing to apply specs others can write",
                path.display()
            ));
        }
        let trusted_group = meta.gid() == 0 || Some(meta.gid()) == self.group;
        if mode & 0o020 != 0 && !sticky && !trusted_group {
            return Err(format!(
                "{what} {} is writable by its group (gid {}, mode {mode:o}); refusing to apply specs others can write (chmod g-w, or set trusted_group in agent.toml if every member of that group may deploy containers)",
                path.display(),
                meta.gid()
            ));
        }
        Ok(())
    }

    fn check_owner(&self, path: &Path, meta: &fs::Metadata, what: &str) -> Result<(), String> {
        if meta.uid() != 0 && meta.uid() != self.uid {
            return Err(format!(
                "{what} {} is owned by uid {}, not by root or the agent's user (uid {}); refusing to apply specs others can write",
                path.display(),
                meta.uid(),
                self.uid
            ));
        }
        Ok(())
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{chown, symlink, PermissionsExt};

    /// A specs dir in a private temp dir (root-owned, mode 700) below /tmp.
    fn setup() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let specs = d.path().join("specs");
        fs::create_dir(&specs).unwrap();
        fs::write(specs.join("a.toml"), "").unwrap();
        mode(&specs.join("a.toml"), 0o644);
        mode(&specs, 0o755);
        (d, specs)
    }

    fn mode(p: &Path, m: u32) {
        fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    }

    fn me() -> Trust {
        Trust::this_process()
    }

    const OTHER: u32 = 4242;
    const GROUP: u32 = 4343;

    #[test]
    fn private_layout_is_accepted() {
        let (_d, specs) = setup();
        me().check_specs_dir(&specs).unwrap();
        me().check_spec_file(&specs.join("a.toml")).unwrap();
    }

    #[test]
    fn group_writable_is_refused_unless_the_group_is_trusted() {
        if !nix::unistd::geteuid().is_root() {
            return; // chgrp to an arbitrary group needs root; CI runs as root
        }
        let (_d, specs) = setup();
        let file = specs.join("a.toml");
        chown(&file, None, Some(GROUP)).unwrap();
        mode(&file, 0o664);
        let e = me().check_spec_file(&file).unwrap_err();
        assert!(
            e.contains("writable by its group (gid 4343, mode 664)"),
            "{e}"
        );
        assert!(e.contains("trusted_group"), "{e}");
        let trusted = Trust {
            group: Some(GROUP),
            ..me()
        };
        trusted.check_spec_file(&file).unwrap();

        chown(&specs, None, Some(GROUP)).unwrap();
        mode(&specs, 0o2775);
        let e = me().check_specs_dir(&specs).unwrap_err();
        assert!(e.starts_with("specs directory"), "{e}");
        trusted.check_specs_dir(&specs).unwrap();
        // Root's group is root's.
        chown(&specs, None, Some(0)).unwrap();
        me().check_specs_dir(&specs).unwrap();
    }

    #[test]
    fn a_writable_directory_above_is_refused_a_sticky_one_is_not() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let (d, specs) = setup();
        let above = d.path();
        mode(above, 0o777);
        let e = me().check_specs_dir(&specs).unwrap_err();
        assert!(e.starts_with("directory above the specs"), "{e}");
        assert!(e.contains("writable by everyone"), "{e}");
        mode(above, 0o1777); // like /tmp
        me().check_specs_dir(&specs).unwrap();
        // ... but the specs directory itself may not be, sticky or not.
        mode(above, 0o700);
        mode(&specs, 0o1777);
        assert!(me().check_specs_dir(&specs).is_err());
        mode(&specs, 0o755);
        chown(above, Some(OTHER), None).unwrap();
        let e = me().check_specs_dir(&specs).unwrap_err();
        assert!(e.contains("owned by uid 4242"), "{e}");
        chown(above, Some(0), None).unwrap();
    }

    #[test]
    fn symlinks_owners_and_targets_are_checked() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let (d, specs) = setup();
        // A symlinked specs dir: its target's directories count.
        let link = d.path().join("current");
        symlink(&specs, &link).unwrap();
        me().check_specs_dir(&link).unwrap();
        std::os::unix::fs::lchown(&link, Some(OTHER), None).unwrap();
        let e = me().check_specs_dir(&link).unwrap_err();
        assert!(e.starts_with("symlink"), "{e}");
        assert!(e.contains("owned by uid 4242"), "{e}");

        // A spec file linked to a file in a directory others can write.
        let shared = d.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::write(shared.join("b.toml"), "").unwrap();
        mode(&shared.join("b.toml"), 0o644);
        mode(&shared, 0o777);
        symlink(shared.join("b.toml"), specs.join("b.toml")).unwrap();
        let e = me().check_spec_file(&specs.join("b.toml")).unwrap_err();
        assert!(e.contains("directory above the spec file"), "{e}");
        mode(&shared, 0o755);
        me().check_spec_file(&specs.join("b.toml")).unwrap();
    }
}
