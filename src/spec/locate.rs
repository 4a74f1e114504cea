//! Where in the spec files a rendered unit's setting was written: render
//! errors (a key the target Podman lacks, a value a unit file cannot hold)
//! name a unit and a spec key, and operators need `file:line:col`.
//!
//! Best effort over the files' text: the table `[KIND.NAME]` (or one of its
//! sub-tables) that made the unit, and in it the line that sets the key's
//! last part; the table's own line when the key is not written there.

use std::path::PathBuf;

use super::model::{Kind, TABLES};
use super::SpecSet;

/// `file:line:col` of `key` (a spec key path such as `stop_signal` or
/// `health.cmd`, or `None`) in the table of the spec object behind `unit`.
pub fn locate(set: &SpecSet, unit: &str, key: Option<&str>) -> Option<(PathBuf, usize, usize)> {
    let name = object_name(unit);
    let last = key.and_then(|k| k.rsplit('.').next());
    for f in &set.files {
        let mut table_line = None;
        for (i, line) in f.text.lines().enumerate() {
            let t = line.trim();
            if let Some(header) = t.strip_prefix('[').and_then(|h| h.split(']').next()) {
                let in_ours = TABLES.iter().any(|k| {
                    header == format!("{k}.{name}") || header.starts_with(&format!("{k}.{name}."))
                });
                match (in_ours, table_line) {
                    (true, None) => table_line = Some(i + 1),
                    (false, Some(at)) if last.is_none() => return Some((f.path.clone(), at, 1)),
                    _ => {}
                }
                continue;
            }
            if table_line.is_none() {
                continue;
            }
            if let Some(k) = last {
                let key_text = t.split('=').next().unwrap_or("").trim().trim_matches('"');
                if key_text == k {
                    let col = line.len() - line.trim_start().len() + 1;
                    return Some((f.path.clone(), i + 1, col));
                }
            }
        }
        if let Some(at) = table_line {
            return Some((f.path.clone(), at, 1));
        }
    }
    None
}

/// `web.service` -> `web`, `net-network.service` -> `net`, ...
fn object_name(unit: &str) -> &str {
    Kind::of_unit(unit).1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SpecFile;

    fn set(text: &str) -> SpecSet {
        SpecSet {
            files: vec![SpecFile {
                path: "/s/a.toml".into(),
                text: text.into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn finds_the_key_line_in_the_units_table() {
        let s = set("[container.db]\nimage = \"x\"\n\n[container.web]\nimage = \"y\"\n  stop_signal = \"SIGINT\"\n[container.web.health]\ncmd = [\"true\"]\n");
        assert_eq!(
            locate(&s, "web.service", Some("stop_signal")),
            Some(("/s/a.toml".into(), 6, 3))
        );
        assert_eq!(
            locate(&s, "web.service", Some("health.cmd")),
            Some(("/s/a.toml".into(), 8, 1))
        );
        // Not written there (a default): the table's line.
        assert_eq!(
            locate(&s, "web.service", Some("pull")),
            Some(("/s/a.toml".into(), 4, 1))
        );
        assert_eq!(
            locate(&s, "db.service", None),
            Some(("/s/a.toml".into(), 1, 1))
        );
        assert_eq!(locate(&s, "nope.service", None), None);
    }

    #[test]
    fn networks_volumes_and_images_by_their_unit_names() {
        let s = set("[network.lan]\nsubnet = \"10.0.0.0/24\"\n[volume.data]\ndriver = \"local\"\n[image.app]\nimage = \"x\"\nretry = 5\n");
        assert_eq!(
            locate(&s, "app-image.service", Some("retry")),
            Some(("/s/a.toml".into(), 7, 1))
        );
        assert_eq!(
            locate(&s, "lan-network.service", Some("subnet")),
            Some(("/s/a.toml".into(), 2, 1))
        );
        assert_eq!(
            locate(&s, "data-volume.service", Some("driver")),
            Some(("/s/a.toml".into(), 4, 1))
        );
    }
}
