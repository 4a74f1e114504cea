//! Plan: the difference between the desired rendering and the output
//! directory, and the unit actions it implies, in dependency order.
//!
//! Pure: no I/O. Given the same inputs it gives the same plan, so `plan`
//! shows exactly what `apply` will do.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::output::{Current, ForeignKind};
use crate::spec::{Kind, SpecSet};

/// What to do to one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Stop,
    Start,
    Restart,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitAction {
    pub kind: ActionKind,
    pub unit: String,
    /// Why, in operator words ("new", "web.container changed", ...).
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub name: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// Everything `apply` would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub add: Vec<FileChange>,
    pub change: Vec<FileChange>,
    pub remove: Vec<FileChange>,
    /// Stops first (dependents before their dependencies), then starts and
    /// restarts (dependencies first).
    pub actions: Vec<UnitAction>,
    /// Desired files that collide with a file the agent does not own.
    pub conflicts: Vec<String>,
    /// Whether apply issues its one daemon-reload (files changed, or an
    /// interrupted apply may have written files without reloading).
    pub reload: bool,
    /// The input hashes the plan was made against (`inputs.rs`): what a
    /// successful apply saves, so that an input changed while it ran is
    /// still a change to the next one. Not part of the plan's document.
    #[serde(skip)]
    pub inputs: Option<crate::inputs::Hashes>,
}

impl Plan {
    /// Nothing to write and nothing to do: apply must not even reload.
    pub fn is_noop(&self) -> bool {
        self.add.is_empty()
            && self.change.is_empty()
            && self.remove.is_empty()
            && self.actions.is_empty()
            && !self.reload
    }

    /// Nothing to do and nothing in the way: what `plan` reports as "No
    /// changes".
    pub fn settled(&self) -> bool {
        self.is_noop() && self.conflicts.is_empty()
    }

    pub fn files_changed(&self) -> bool {
        !(self.add.is_empty() && self.change.is_empty() && self.remove.is_empty())
    }
}

/// The unit Quadlet generates for a file name: `web.container` -> `web.service`,
/// `net.network` -> `net-network.service`, `data.volume` -> `data-volume.service`.
pub fn unit_for_file(name: &str) -> Option<String> {
    let (stem, ext) = name.rsplit_once('.')?;
    Some(match (Kind::from_ext(ext), ext) {
        (Some(kind), _) => kind.unit(stem),
        (None, "build") => format!("{stem}-build.service"),
        (None, "kube") => format!("{stem}.service"),
        _ => return None,
    })
}

/// Start rank: networks, volumes, images and pods before containers (the
/// order of `Kind::ALL`), containers in dependency order.
fn ranks(set: &SpecSet) -> BTreeMap<String, usize> {
    let names = |kind: Kind| -> Vec<&str> {
        match kind {
            Kind::Network => set.networks.keys().map(String::as_str).collect(),
            Kind::Volume => set.volumes.keys().map(String::as_str).collect(),
            Kind::Image => set.images.keys().map(String::as_str).collect(),
            Kind::Pod => set.pods.keys().map(String::as_str).collect(),
            Kind::Container => set
                .containers_in_order()
                .into_iter()
                .map(|c| c.name.as_str())
                .collect(),
        }
    };
    Kind::ALL
        .into_iter()
        .flat_map(|kind| names(kind).into_iter().map(move |n| kind.file(n)))
        .enumerate()
        .map(|(i, file)| (file, i))
        .collect()
}

/// Extra reasons to act on a unit whose file did not change (a secret or an
/// env file changed, or an interrupted apply left it undone).
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// file name -> reason; the unit is restarted (started if its file is new).
    pub restart: BTreeMap<String, String>,
    /// unit -> reason; stopped if its file is no longer desired.
    pub stop: BTreeMap<String, String>,
    /// Reload even if no file changes now.
    pub force_reload: bool,
    /// Specs without any service may remove all the agent's files (see
    /// `AgentError::EmptySpecs`).
    pub allow_empty: bool,
}

/// Whether a changed file differs in comments only (systemd's `#` and `;`
/// lines), or in settings that only act when the unit starts: then its
/// running unit needs no restart, and the next start uses the new file.
fn same_settings(f: &FileChange) -> bool {
    let settings = |text: &Option<String>| -> Vec<String> {
        text.as_deref()
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !(l.is_empty() || l.starts_with('#') || l.starts_with(';')))
            .filter(|l| !start_only(l))
            .map(str::to_string)
            .collect()
    };
    settings(&f.old) == settings(&f.new)
}

/// The health gate (see `render::readiness`) and the start timeout: they
/// decide when a start ends, nothing about a running container. A
/// dependent added or removed elsewhere changes them without a restart.
fn start_only(line: &str) -> bool {
    line == "Notify=healthy"
        || line.starts_with("TimeoutStartSec=")
        || (line.starts_with("ExecStartPost=") && line.contains("\"wait-healthy\""))
}

/// Computes the plan. `desired` is file name -> contents.
pub fn compute(
    set: &SpecSet,
    desired: &BTreeMap<String, String>,
    current: &Current,
    extra: &Extra,
) -> Plan {
    let mut plan = Plan::default();
    let rank = ranks(set);
    for (name, new) in desired {
        if let Some(kind) = current.foreign.get(name) {
            let what = match kind {
                ForeignKind::Symlink => "a symlink",
                ForeignKind::Unmarked => "a file not generated by deploy-agent",
            };
            plan.conflicts.push(format!(
                "{name}: the output directory already has {what} with this name"
            ));
            continue;
        }
        match current.managed.get(name) {
            None => plan.add.push(FileChange {
                name: name.clone(),
                old: None,
                new: Some(new.clone()),
            }),
            Some(old) if old != new => plan.change.push(FileChange {
                name: name.clone(),
                old: Some(old.clone()),
                new: Some(new.clone()),
            }),
            Some(_) => {}
        }
    }
    for (name, old) in &current.managed {
        if !desired.contains_key(name) {
            plan.remove.push(FileChange {
                name: name.clone(),
                old: Some(old.clone()),
                new: None,
            });
        }
    }

    // Stops: containers before networks, volumes, images and pods, reverse name order within.
    let desired_units: BTreeSet<String> = desired.keys().filter_map(|n| unit_for_file(n)).collect();
    let mut stops: Vec<(String, String)> = plan
        .remove
        .iter()
        .filter_map(|f| Some((unit_for_file(&f.name)?, format!("{} removed", f.name))))
        .collect();
    for (unit, reason) in &extra.stop {
        if !desired_units.contains(unit) && !stops.iter().any(|(u, _)| u == unit) {
            stops.push((unit.clone(), reason.clone()));
        }
    }
    let is_container_unit = |u: &str| Kind::of_unit(u).0 == Kind::Container;
    stops.sort_by_key(|(u, _)| (!is_container_unit(u), std::cmp::Reverse(u.clone())));
    for (unit, reason) in stops {
        plan.actions.push(UnitAction {
            kind: ActionKind::Stop,
            unit,
            reason,
        });
    }

    // Starts and restarts in dependency order.
    let mut todo: BTreeMap<String, (ActionKind, String)> = BTreeMap::new();
    for f in &plan.add {
        todo.insert(f.name.clone(), (ActionKind::Start, "new".into()));
    }
    // A file whose settings are the same (only comments differ) is
    // rewritten, and its unit left running.
    for f in plan.change.iter().filter(|f| !same_settings(f)) {
        todo.insert(
            f.name.clone(),
            (ActionKind::Restart, format!("{} changed", f.name)),
        );
    }
    // A container of an `[image.NAME]` runs what `NAME.image` pulls, while
    // its own file (`Image=NAME.image`) stays the same: it restarts too.
    for f in plan.change.iter().filter(|f| f.name.ends_with(".image")) {
        if same_settings(f) {
            continue;
        }
        let line = format!("Image={}", f.name);
        for (name, text) in desired.iter().filter(|(n, _)| n.ends_with(".container")) {
            if text.lines().any(|l| l.trim() == line) {
                todo.entry(name.clone())
                    .or_insert((ActionKind::Restart, format!("{} changed", f.name)));
            }
        }
    }
    let conflicted: BTreeSet<&str> = plan
        .conflicts
        .iter()
        .filter_map(|c| c.split(':').next())
        .collect();
    for (name, reason) in &extra.restart {
        if desired.contains_key(name) && !conflicted.contains(name.as_str()) {
            todo.entry(name.clone())
                .or_insert((ActionKind::Restart, reason.clone()));
        }
    }
    let mut ordered: Vec<(usize, String, ActionKind, String)> = todo
        .into_iter()
        .map(|(name, (kind, reason))| {
            (
                rank.get(&name).copied().unwrap_or(usize::MAX),
                name,
                kind,
                reason,
            )
        })
        .collect();
    ordered.sort();
    for (_, name, kind, reason) in ordered {
        if let Some(unit) = unit_for_file(&name) {
            plan.actions.push(UnitAction { kind, unit, reason });
        }
    }
    plan.reload = plan.files_changed() || extra.force_reload;
    plan
}

/// The plan as an operator reads it: files with diffs, then unit actions.
pub fn describe(plan: &Plan) -> String {
    let mut s = String::new();
    if plan.settled() {
        return "No changes: the output directory and the units match the specs.\n".into();
    }
    for c in &plan.conflicts {
        let _ = writeln!(s, "! conflict: {c}");
    }
    for f in &plan.add {
        let _ = writeln!(s, "+ {} (new)", f.name);
    }
    for f in &plan.change {
        let _ = writeln!(s, "~ {} (changed)", f.name);
        let diff = similar::TextDiff::from_lines(
            f.old.as_deref().unwrap_or(""),
            f.new.as_deref().unwrap_or(""),
        );
        let text = diff
            .unified_diff()
            .context_radius(2)
            .header(&format!("a/{}", f.name), &format!("b/{}", f.name))
            .to_string();
        for line in text.lines() {
            let _ = writeln!(s, "    {line}");
        }
    }
    for f in &plan.remove {
        let _ = writeln!(s, "- {} (removed)", f.name);
    }
    if !plan.actions.is_empty() {
        let _ = writeln!(s, "units:");
        for a in &plan.actions {
            let verb = match a.kind {
                ActionKind::Stop => "stop",
                ActionKind::Start => "start",
                ActionKind::Restart => "restart",
            };
            let _ = writeln!(s, "  {verb:<8}{:<32} ({})", a.unit, a.reason);
        }
    }
    let reload = if plan.reload {
        "1 daemon-reload"
    } else {
        "no daemon-reload"
    };
    let _ = writeln!(
        s,
        "{} to add, {} to change, {} to remove; {}, {} unit action(s).",
        plan.add.len(),
        plan.change.len(),
        plan.remove.len(),
        reload,
        plan.actions.len()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::load_texts;
    use std::path::PathBuf;

    fn set() -> SpecSet {
        load_texts(&[(
            PathBuf::from("a.toml"),
            "[network.net]\n[container.db]\nimage = \"x\"\n[container.web]\nimage = \"x\"\nrequires = [\"db\"]\n[container.aaa]\nimage = \"x\"\nafter = [\"web\"]\n".into(),
        )])
        .unwrap()
    }

    fn desired(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn current(pairs: &[(&str, &str)]) -> Current {
        Current {
            managed: desired(pairs),
            foreign: Default::default(),
        }
    }

    fn actions(p: &Plan) -> Vec<String> {
        p.actions
            .iter()
            .map(|a| format!("{:?} {}", a.kind, a.unit))
            .collect()
    }

    #[test]
    fn unit_names() {
        assert_eq!(
            unit_for_file("web.container").as_deref(),
            Some("web.service")
        );
        assert_eq!(
            unit_for_file("net.network").as_deref(),
            Some("net-network.service")
        );
        assert_eq!(
            unit_for_file("d.volume").as_deref(),
            Some("d-volume.service")
        );
        assert_eq!(unit_for_file("p.pod").as_deref(), Some("p-pod.service"));
        assert_eq!(
            unit_for_file("app.image").as_deref(),
            Some("app-image.service")
        );
        assert_eq!(unit_for_file("x.txt"), None);
    }

    #[test]
    fn images_start_before_containers_and_stop_after_them() {
        let set = load_texts(&[(
            PathBuf::from("a.toml"),
            "[image.app]\nimage = \"x\"\n[container.web]\nimage = { unit = \"app\" }\n".into(),
        )])
        .unwrap();
        let d = desired(&[("web.container", "w"), ("app.image", "i")]);
        let p = compute(&set, &d, &Current::default(), &Extra::default());
        assert_eq!(
            actions(&p),
            ["Start app-image.service", "Start web.service"]
        );
        let cur = current(&[("web.container", "w"), ("app.image", "i")]);
        let p = compute(&set, &desired(&[]), &cur, &Extra::default());
        assert_eq!(actions(&p), ["Stop web.service", "Stop app-image.service"]);
        // A new image: the pull, then the container that runs it.
        let web = "[Container]\nImage=app.image\n";
        let cur = current(&[("web.container", web), ("app.image", "Image=x:1")]);
        let d = desired(&[("web.container", web), ("app.image", "Image=x:2")]);
        let p = compute(&set, &d, &cur, &Extra::default());
        assert_eq!(
            actions(&p),
            ["Restart app-image.service", "Restart web.service"]
        );
    }

    #[test]
    fn first_apply_starts_everything_in_dependency_order() {
        let d = desired(&[
            ("aaa.container", "a"),
            ("db.container", "d"),
            ("web.container", "w"),
            ("net.network", "n"),
        ]);
        let p = compute(&set(), &d, &Current::default(), &Extra::default());
        assert_eq!(p.add.len(), 4);
        assert_eq!(
            actions(&p),
            [
                "Start net-network.service",
                "Start db.service",
                "Start web.service",
                "Start aaa.service"
            ]
        );
    }

    #[test]
    fn nothing_changed_is_a_noop() {
        let d = desired(&[("db.container", "d"), ("web.container", "w")]);
        let p = compute(
            &set(),
            &d,
            &current(&[("db.container", "d"), ("web.container", "w")]),
            &Extra::default(),
        );
        assert!(p.is_noop());
        assert!(describe(&p).starts_with("No changes"));
    }

    #[test]
    fn only_changed_units_restart_and_removed_stop_first() {
        let d = desired(&[("db.container", "d2"), ("web.container", "w")]);
        let cur = current(&[
            ("db.container", "d"),
            ("web.container", "w"),
            ("old.container", "o"),
            ("oldnet.network", "n"),
        ]);
        let p = compute(&set(), &d, &cur, &Extra::default());
        assert_eq!(p.change.len(), 1);
        assert_eq!(p.remove.len(), 2);
        assert_eq!(
            actions(&p),
            [
                "Stop old.service",
                "Stop oldnet-network.service",
                "Restart db.service"
            ]
        );
        let text = describe(&p);
        assert!(text.contains("~ db.container (changed)"), "{text}");
        assert!(text.contains("-d\n") && text.contains("+d2"), "{text}");
        assert!(text.contains("1 daemon-reload"), "{text}");
    }

    #[test]
    fn a_change_of_comments_only_rewrites_the_file_and_restarts_nothing() {
        let d = desired(&[
            (
                "db.container",
                "# from /srv/specs/db.toml\n[Container]\nImage=x\n",
            ),
            (
                "web.container",
                "# from specs/web.toml\n[Container]\nImage=y\n",
            ),
        ]);
        let cur = current(&[
            (
                "db.container",
                "# from specs/db.toml\n[Container]\nImage=x\n",
            ),
            (
                "web.container",
                "# from specs/web.toml\n[Container]\nImage=x\n",
            ),
        ]);
        let p = compute(&set(), &d, &cur, &Extra::default());
        assert_eq!(p.change.len(), 2, "both files are rewritten");
        assert_eq!(
            actions(&p),
            ["Restart web.service"],
            "only the setting change restarts"
        );
    }

    #[test]
    fn a_health_gate_coming_or_going_restarts_nothing() {
        let gate = "[Container]\nImage=x\nNotify=healthy\n[Service]\nExecStartPost=\"/usr/bin/deploy-agent\" \"wait-healthy\" \"db\" \"--podman\"\nTimeoutStartSec=107s\n";
        let d = desired(&[("db.container", "[Container]\nImage=x\n[Service]\n")]);
        let cur = current(&[("db.container", gate)]);
        let p = compute(&set(), &d, &cur, &Extra::default());
        assert_eq!(p.change.len(), 1, "the file is rewritten");
        assert!(actions(&p).is_empty(), "{:?}", actions(&p));
        // Another ExecStartPost= is a setting like any other.
        let d = desired(&[(
            "db.container",
            "[Container]\nImage=x\n[Service]\nExecStartPost=/bin/true\n",
        )]);
        let p = compute(&set(), &d, &cur, &Extra::default());
        assert_eq!(actions(&p), ["Restart db.service"]);
    }

    #[test]
    fn foreign_files_are_conflicts_never_changes() {
        let d = desired(&[("db.container", "d")]);
        let mut cur = Current::default();
        cur.foreign
            .insert("db.container".into(), ForeignKind::Unmarked);
        cur.foreign
            .insert("other.container".into(), ForeignKind::Unmarked);
        let p = compute(&set(), &d, &cur, &Extra::default());
        assert_eq!(p.conflicts.len(), 1);
        assert!(p.add.is_empty() && p.remove.is_empty() && p.actions.is_empty());
    }

    #[test]
    fn extra_restarts_for_unchanged_files() {
        let d = desired(&[("db.container", "d"), ("web.container", "w")]);
        let cur = current(&[("db.container", "d"), ("web.container", "w")]);
        let mut extra = Extra::default();
        extra
            .restart
            .insert("web.container".into(), "env file changed".into());
        extra
            .restart
            .insert("gone.container".into(), "ignored: not desired".into());
        let p = compute(&set(), &d, &cur, &extra);
        assert_eq!(actions(&p), ["Restart web.service"]);
        assert!(!p.files_changed() && !p.reload);
    }

    #[test]
    fn interrupted_apply_is_finished() {
        let d = desired(&[("db.container", "d")]);
        let cur = current(&[("db.container", "d")]);
        let mut extra = Extra {
            force_reload: true,
            ..Default::default()
        };
        extra
            .restart
            .insert("db.container".into(), "interrupted apply".into());
        extra
            .stop
            .insert("old.service".into(), "interrupted apply".into());
        extra
            .stop
            .insert("db.service".into(), "ignored: still desired".into());
        let p = compute(&set(), &d, &cur, &extra);
        assert_eq!(actions(&p), ["Stop old.service", "Restart db.service"]);
        assert!(p.reload && !p.is_noop());
    }
}
