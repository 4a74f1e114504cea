//! Cross-file checks over all parsed spec files: unique names, unit-name
//! collisions, references that resolve, and no dependency cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::diag::{did_you_mean, Loc, SpecError};
use super::model::*;
use super::parse::{ParsedFile, Ref, RefKind};

/// Network modes Podman understands without a declared network.
pub const BUILTIN_NETWORKS: &[&str] = &[
    "podman",
    "bridge",
    "host",
    "none",
    "private",
    "pasta",
    "slirp4netns",
];

/// Merges parsed files into a [`SpecSet`], adding cross-file errors to `errors`.
pub(crate) fn merge(
    parsed: Vec<ParsedFile>,
    files: Vec<SpecFile>,
    errors: &mut Vec<SpecError>,
) -> SpecSet {
    let mut set = SpecSet {
        files,
        ..Default::default()
    };
    let mut container_locs: BTreeMap<String, Loc> = BTreeMap::new();
    let mut network_locs: BTreeMap<String, Loc> = BTreeMap::new();
    let mut volume_locs: BTreeMap<String, Loc> = BTreeMap::new();
    let mut pod_locs: BTreeMap<String, Loc> = BTreeMap::new();
    let mut image_locs: BTreeMap<String, Loc> = BTreeMap::new();
    let mut refs: Vec<(String, Ref)> = Vec::new();

    fn dup(kind: &str, name: &str, first: &Loc, again: &Loc) -> SpecError {
        again.error(
            &format!("{kind}.{name}"),
            format!(
                "{kind} {name:?} is already defined in {}{}",
                first.file.display(),
                first.line.map(|l| format!(":{l}")).unwrap_or_default()
            ),
            Some("names must be unique across all spec files".into()),
        )
    }

    for file in parsed {
        errors.extend(file.errors);
        for (c, loc, crefs) in file.containers {
            if let Some(first) = container_locs.get(&c.name) {
                errors.push(dup("container", &c.name, first, &loc));
                continue;
            }
            refs.extend(crefs.into_iter().map(|r| (c.name.clone(), r)));
            container_locs.insert(c.name.clone(), loc);
            set.containers.insert(c.name.clone(), c);
        }
        for (n, loc) in file.networks {
            if let Some(first) = network_locs.get(&n.name) {
                errors.push(dup("network", &n.name, first, &loc));
                continue;
            }
            network_locs.insert(n.name.clone(), loc);
            set.networks.insert(n.name.clone(), n);
        }
        for (v, loc) in file.volumes {
            if let Some(first) = volume_locs.get(&v.name) {
                errors.push(dup("volume", &v.name, first, &loc));
                continue;
            }
            volume_locs.insert(v.name.clone(), loc);
            set.volumes.insert(v.name.clone(), v);
        }
        for (p, loc, prefs) in file.pods {
            if let Some(first) = pod_locs.get(&p.name) {
                errors.push(dup("pod", &p.name, first, &loc));
                continue;
            }
            refs.extend(prefs.into_iter().map(|r| (format!("pod.{}", p.name), r)));
            pod_locs.insert(p.name.clone(), loc);
            set.pods.insert(p.name.clone(), p);
        }
        for (i, loc) in file.images {
            if let Some(first) = image_locs.get(&i.name) {
                errors.push(dup("image", &i.name, first, &loc));
                continue;
            }
            image_locs.insert(i.name.clone(), loc);
            set.images.insert(i.name.clone(), i);
        }
    }

    // Two entries of different kinds must not end up as the same systemd unit.
    let mut unit_owner: BTreeMap<String, (String, &Loc)> = BTreeMap::new();
    let all = [
        (Kind::Container, &container_locs),
        (Kind::Network, &network_locs),
        (Kind::Volume, &volume_locs),
        (Kind::Pod, &pod_locs),
        (Kind::Image, &image_locs),
    ]
    .into_iter()
    .flat_map(|(kind, locs)| {
        locs.iter()
            .map(move |(n, l)| (kind.unit(n), format!("{}.{n}", kind.table()), l))
    });
    for (unit, key, loc) in all {
        if let Some((other, _)) = unit_owner.get(&unit) {
            errors.push(loc.error(
                &key,
                format!("would become the unit {unit}, which {other} already becomes"),
                Some("rename one of them".into()),
            ));
        } else {
            unit_owner.insert(unit, (key, loc));
        }
    }

    for (owner, r) in &refs {
        let (exists, kind) = match r.kind {
            RefKind::Container => (set.containers.contains_key(&r.name), "container"),
            RefKind::Network => (
                set.networks.contains_key(&r.name) || BUILTIN_NETWORKS.contains(&r.name.as_str()),
                "network",
            ),
            RefKind::Volume => (set.volumes.contains_key(&r.name), "volume"),
            RefKind::Pod => (set.pods.contains_key(&r.name), "pod"),
            RefKind::Image => (set.images.contains_key(&r.name), "image"),
        };
        // The names to suggest from, listed only for a reference that does
        // not resolve: listing them for every reference made validation
        // quadratic in the number of containers.
        let candidates = || -> Vec<&str> {
            match r.kind {
                RefKind::Container => set.containers.keys().map(String::as_str).collect(),
                RefKind::Network => set
                    .networks
                    .keys()
                    .map(String::as_str)
                    .chain(BUILTIN_NETWORKS.iter().copied())
                    .collect(),
                RefKind::Volume => set.volumes.keys().map(String::as_str).collect(),
                RefKind::Pod => set.pods.keys().map(String::as_str).collect(),
                RefKind::Image => set.images.keys().map(String::as_str).collect(),
            }
        };
        if r.kind == RefKind::Container && &r.name == owner {
            errors.push(r.loc.error(
                &r.key,
                format!("container {owner:?} cannot depend on itself"),
                None,
            ));
        } else if !exists {
            let hint = did_you_mean(&r.name, candidates()).or_else(|| {
                Some(match r.kind {
                    RefKind::Network => format!(
                        "declare it with [network.{}] (add `external = true` for a network managed outside deploy-agent)",
                        r.name
                    ),
                    RefKind::Volume => format!("declare it with [volume.{}], or use an absolute host path", r.name),
                    RefKind::Container => format!("no [container.{}] in any spec file", r.name),
                    RefKind::Pod => format!("declare it with [pod.{}]", r.name),
                    RefKind::Image => format!("declare it with [image.{}]", r.name),
                })
            });
            errors.push(
                r.loc
                    .error(&r.key, format!("no {kind} named {:?}", r.name), hint),
            );
        }
    }

    resolve_image_units(&mut set);

    for cycle in find_cycles(&set) {
        let first = &cycle[0];
        let loc = container_locs
            .get(first)
            .cloned()
            .unwrap_or_else(|| Loc::file(std::path::Path::new("")));
        errors.push(loc.error(
            &format!("container.{first}"),
            format!("dependency cycle: {}", cycle.join(" -> ")),
            Some("requires, after and wants must not form a loop".into()),
        ));
    }
    set
}

/// A container that runs an `[image.NAME]` runs the image it pulls: its
/// `image_tag` if it has one (as Quadlet resolves `Image=NAME.image`), else
/// its `image`.
fn resolve_image_units(set: &mut SpecSet) {
    for c in set.containers.values_mut() {
        let Some(img) = c.image_unit.as_ref().and_then(|u| set.images.get(u)) else {
            continue;
        };
        Arc::make_mut(c).image = match img.settings.get("image_tag") {
            Some(Setting::Str(tag)) => tag.clone(),
            _ => img.image.clone(),
        };
    }
}

/// Each dependency cycle once, as `a -> b -> a`, starting at its smallest name.
fn find_cycles(set: &SpecSet) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark: BTreeMap<&str, Mark> = set
        .containers
        .keys()
        .map(|k| (k.as_str(), Mark::New))
        .collect();
    let mut seen: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut out = Vec::new();
    fn visit<'a>(
        set: &'a SpecSet,
        n: &'a str,
        stack: &mut Vec<&'a str>,
        mark: &mut BTreeMap<&'a str, Mark>,
        seen: &mut BTreeSet<Vec<String>>,
        out: &mut Vec<Vec<String>>,
    ) {
        mark.insert(n, Mark::Open);
        stack.push(n);
        if let Some(c) = set.containers.get(n) {
            // A self-dependency is reported on its own, not as a cycle.
            for d in c
                .requires
                .iter()
                .chain(&c.after)
                .chain(&c.wants)
                .filter(|d| *d != n)
            {
                match mark.get(d.as_str()).copied() {
                    Some(Mark::New) => visit(set, d, stack, mark, seen, out),
                    Some(Mark::Open) => {
                        let start = stack.iter().position(|s| s == d).unwrap_or(0);
                        let mut cyc: Vec<String> =
                            stack[start..].iter().map(|s| s.to_string()).collect();
                        let min = cyc
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, s)| s.as_str())
                            .map(|(i, _)| i)
                            .unwrap_or(0);
                        cyc.rotate_left(min);
                        if seen.insert(cyc.clone()) {
                            let mut shown = cyc.clone();
                            shown.push(cyc[0].clone());
                            out.push(shown);
                        }
                    }
                    _ => {}
                }
            }
        }
        stack.pop();
        mark.insert(n, Mark::Done);
    }
    let names: Vec<&str> = set.containers.keys().map(String::as_str).collect();
    for n in names {
        if mark.get(n) == Some(&Mark::New) {
            visit(set, n, &mut Vec::new(), &mut mark, &mut seen, &mut out);
        }
    }
    out
}
