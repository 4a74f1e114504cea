//! The Podman secrets the agent made from `source` files: remembered in
//! `STATE/secrets.json`, and removed from Podman's store once no spec names
//! them any more (a secret the operator created by hand, without `source`,
//! is never the agent's to remove).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::spec::SpecSet;

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("secrets.json")
}

/// The names of the secrets the agent made.
pub fn made(state_dir: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path(state_dir))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn save(state_dir: &Path, names: &BTreeSet<String>) -> std::io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let p = path(state_dir);
    let tmp = p.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string(names).expect("names serialize"))?;
    std::fs::rename(&tmp, &p)
}

/// Remembers `names` as made by the agent.
pub fn remember(state_dir: &Path, names: &[String]) -> std::io::Result<()> {
    let mut all = made(state_dir);
    let before = all.len();
    all.extend(names.iter().cloned());
    if all.len() == before {
        return Ok(());
    }
    save(state_dir, &all)
}

/// The secrets of `made` that no spec of `set` names from a source.
fn unused(made: &BTreeSet<String>, set: &SpecSet) -> BTreeSet<String> {
    let named: BTreeSet<&str> = set
        .containers
        .values()
        .flat_map(|c| c.secrets.iter())
        .filter(|s| s.source.is_some())
        .map(|s| s.name.as_str())
        .collect();
    made.iter()
        .filter(|n| !named.contains(n.as_str()))
        .cloned()
        .collect()
}

/// Removes the secrets the agent made that no spec names any more (after
/// the apply stopped what used them); forgets those removed or already
/// gone. A removal Podman refuses is logged and tried again next time.
pub fn prune(state_dir: &Path, set: &SpecSet) {
    let mut all = made(state_dir);
    let unused = unused(&all, set);
    if unused.is_empty() {
        return;
    }
    for name in unused {
        let out = std::process::Command::new("podman")
            .args(["secret", "rm", &name])
            .stdin(std::process::Stdio::null())
            .output();
        let gone = match out {
            Ok(o) if o.status.success() => {
                tracing::info!("removed the Podman secret {name:?}: no spec names it any more");
                true
            }
            Ok(o) if String::from_utf8_lossy(&o.stderr).contains("no such secret") => true,
            Ok(o) => {
                tracing::warn!(
                    "cannot remove the Podman secret {name:?} no spec names any more: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                false
            }
            Err(e) => {
                tracing::warn!("cannot run podman to remove the secret {name:?}: {e}");
                false
            }
        };
        if gone {
            all.remove(&name);
        }
    }
    if let Err(e) = save(state_dir, &all) {
        tracing::warn!("{}: {e}", path(state_dir).display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf as P;

    #[test]
    fn only_secrets_made_from_a_source_and_no_longer_named_are_unused() {
        let d = tempfile::tempdir().unwrap();
        let spec = "[container.web]\nimage = \"x\"\nsecrets = [{ name = \"kept\", source = \"/run/k\" }, { name = \"by_hand\" }]\n";
        let set = crate::spec::load_texts(&[(P::from("a.toml"), spec.into())]).unwrap();
        remember(d.path(), &["kept".into(), "dropped".into()]).unwrap();
        assert_eq!(
            unused(&made(d.path()), &set),
            BTreeSet::from(["dropped".to_string()])
        );
        assert!(!made(d.path()).contains("by_hand"));
    }
}
