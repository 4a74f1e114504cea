//! Which desired files Podman's generator must see in an apply's dry run.
//!
//! The generator turns each Quadlet file into a unit on its own, except
//! that a file naming another Quadlet file (`Network=x.network`,
//! `Volume=y.volume:/data`, `Pod=z.pod`, ...) makes it read that file too.
//! Files that did not change were accepted by the dry run of the apply that
//! wrote them, with the files they named then; so the files to check are
//! the written ones, the files naming one written or removed (what they
//! read changed or went away), and everything those name in turn: the same
//! verdict as a dry run of every file, at the cost of the change.

use std::collections::{BTreeMap, BTreeSet};

use super::plan::Plan;

/// The words of `text` that may name another file: any word of a
/// `Key=value` line, split at blanks, `:` and `,`, but `own`.
fn words<'a>(own: &'a str, text: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    text.lines()
        .filter(|l| !l.trim_start().starts_with(['#', ';', '[']))
        .filter_map(|l| l.split_once('=').map(|(_, v)| v))
        .flat_map(|v| v.split(|c: char| c.is_whitespace() || c == ':' || c == ','))
        .filter(move |w| *w != own)
}

/// The `files` that `text` names.
fn named<'f>(own: &str, text: &str, files: &BTreeSet<&'f str>) -> BTreeSet<&'f str> {
    words(own, text)
        .filter_map(|w| files.get(w).copied())
        .collect()
}

/// The part of `desired` the dry run of `plan` must cover (see the module doc).
pub fn to_check(plan: &Plan, desired: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let files: BTreeSet<&str> = desired
        .keys()
        .chain(plan.remove.iter().map(|f| &f.name))
        .map(String::as_str)
        .collect();
    let written: BTreeSet<&str> = plan
        .add
        .iter()
        .chain(&plan.change)
        .map(|f| f.name.as_str())
        .collect();
    let touched: BTreeSet<&str> = written
        .iter()
        .copied()
        .chain(plan.remove.iter().map(|f| f.name.as_str()))
        .collect();
    if desired.keys().all(|name| written.contains(name.as_str())) {
        // Every file is new or changed (a first plan): all of them, and
        // whatever they name is among them.
        return desired.clone();
    }
    // A file names a touched one only if its text contains that name: with
    // a few touched, that substring test spares splitting every other file
    // into words (cost of the change, not of the host).
    let may_name = |text: &str| touched.len() > 4 || touched.iter().any(|t| text.contains(t));
    let mut todo: Vec<&str> = written.iter().copied().collect();
    todo.extend(
        desired
            .iter()
            .filter(|(name, text)| may_name(text) && words(name, text).any(|w| touched.contains(w)))
            .map(|(name, _)| name.as_str()),
    );
    let mut out = BTreeMap::new();
    while let Some(name) = todo.pop() {
        let Some(text) = desired.get(name) else {
            continue;
        };
        if out.insert(name.to_string(), text.clone()).is_none() {
            todo.extend(named(name, text, &files));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::plan::FileChange;

    fn change(name: &str) -> FileChange {
        FileChange {
            name: name.into(),
            old: None,
            new: Some(String::new()),
        }
    }

    fn desired() -> BTreeMap<String, String> {
        [
            (
                "a.container",
                "[Container]\nNetwork=net.network\nVolume=vol.volume:/data:Z\n",
            ),
            (
                "b.container",
                "[Container]\nNetwork=net.network\n# Volume=vol.volume\n",
            ),
            ("c.container", "[Container]\nNetwork=other.network\n"),
            (
                "d.container",
                "[Container]\nNetwork=host\n[Unit]\nRequires=a.service\n",
            ),
            ("net.network", "[Network]\nSubnet=10.0.0.0/24\n"),
            ("other.network", "[Network]\n"),
            ("vol.volume", "[Volume]\n"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    fn names(plan: &Plan) -> Vec<String> {
        to_check(plan, &desired()).into_keys().collect()
    }

    /// With Podman's generator (when installed): the files chosen pass
    /// where the changed file alone is rejected for what it names.
    #[test]
    fn the_generator_accepts_what_is_chosen_and_needs_what_it_names() {
        if crate::quadlet::find_generator().is_none() {
            eprintln!("no Quadlet generator installed; skipped");
            return;
        }
        let set = crate::spec::load_texts(&[(
            "s.toml".into(),
            "[network.backend]\n[volume.data]\n[container.db]\nimage = \"localhost/db\"\nnetworks = [\"backend\"]\nvolumes = [\"data:/data\"]\n[container.web]\nimage = \"localhost/web\"\n".into(),
        )])
        .unwrap();
        let desired: BTreeMap<String, String> = crate::render::render(&set, &Default::default())
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.contents))
            .collect();
        let plan = Plan {
            change: vec![change("db.container")],
            ..Plan::default()
        };
        let chosen = to_check(&plan, &desired);
        assert_eq!(
            chosen.keys().collect::<Vec<_>>(),
            ["backend.network", "data.volume", "db.container"]
        );
        crate::reconcile::apply::check_with_quadlet(&chosen, true).unwrap();
        let alone = BTreeMap::from([("db.container".to_string(), desired["db.container"].clone())]);
        let e = crate::reconcile::apply::check_with_quadlet(&alone, true).unwrap_err();
        assert!(e.to_string().contains("not found"), "{e}");
    }

    #[test]
    fn the_written_files_what_they_name_and_what_names_them() {
        let mut plan = Plan::default();
        assert!(names(&plan).is_empty(), "nothing written: nothing to check");
        plan.change = vec![change("a.container")];
        assert_eq!(names(&plan), ["a.container", "net.network", "vol.volume"]);
        // A network changed: its containers read it, and what they name.
        plan.change = vec![change("net.network")];
        assert_eq!(
            names(&plan),
            ["a.container", "b.container", "net.network", "vol.volume"]
        );
        // A container no file names, naming nothing.
        plan.change = vec![change("d.container")];
        assert_eq!(names(&plan), ["d.container"]);
        // A removed file: whoever still names it is checked (and fails).
        plan.change = vec![];
        plan.remove = vec![change("gone.volume")];
        let mut d = desired();
        d.insert(
            "e.container".into(),
            "[Container]\nVolume=gone.volume:/x\n".into(),
        );
        assert_eq!(
            to_check(&plan, &d).into_keys().collect::<Vec<_>>(),
            ["e.container"]
        );
        // Many touched (no substring prefilter): the same rule.
        plan.remove = ["x", "y", "z", "w"]
            .map(|n| change(&format!("{n}.volume")))
            .into();
        plan.change = vec![change("net.network")];
        assert_eq!(
            names(&plan),
            ["a.container", "b.container", "net.network", "vol.volume"]
        );
        // Every file written (a first plan): all of them.
        plan.remove = vec![];
        plan.add = desired().keys().map(|n| change(n)).collect();
        plan.change = vec![];
        assert_eq!(names(&plan), desired().into_keys().collect::<Vec<_>>());
    }
}
