//! The lines of the generic spec keys (`spec::keys`) and of the escape
//! hatch (`[container.NAME.quadlet]`, `.unit`, `.service`, `.install`):
//! each built, version-gated and escaped here from the key registry, and
//! placed by the templates at the end of their section (`extra`).

use serde::Serialize;

use super::escape;
use super::quadlet_keys;
use super::{bytes, duration, Gate, PodmanVersion, RenderError};
use crate::spec::keys::{self, Esc, Section, Table};
use crate::spec::model::{RawKeys, Setting, Settings};

/// Finished lines (`Key=escaped value`) per section of one file.
#[derive(Serialize, Default, Debug)]
pub(super) struct Extra {
    pub unit: Vec<String>,
    /// The file's own Quadlet section (`[Container]`, `[Pod]`, ...).
    pub main: Vec<String>,
    pub service: Vec<String>,
    pub install: Vec<String>,
}

impl Extra {
    fn push(&mut self, section: Section, line: String) {
        match section {
            Section::Unit => self.unit.push(line),
            Section::Service => self.service.push(line),
            Section::Install => self.install.push(line),
            _ => self.main.push(line),
        }
    }
}

/// The spec words for a key in a gate's message: `health.startup_cmd`.
pub(super) fn spec_name(k: &keys::Key) -> String {
    match k.table {
        Table::Resources => format!("resources.{}", k.name),
        Table::Health => format!("health.{}", k.name),
        _ => k.name.to_string(),
    }
}

/// A setting's values as text, one per line of its key.
fn texts(v: &Setting) -> Vec<String> {
    match v {
        Setting::Str(s) => vec![s.clone()],
        Setting::List(l) => l.clone(),
        Setting::Map(m) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        Setting::Bool(b) => vec![b.to_string()],
        Setting::Int(n) => vec![n.to_string()],
        Setting::Duration(d) => vec![duration(*d)],
        Setting::Size(b) => vec![bytes(*b)],
    }
}

/// Adds the lines of `tables`' generic keys set in `settings` (except
/// `PodmanArgs=`, which the caller merges with its own arguments).
pub(super) fn settings(
    tables: &[Table],
    settings: &Settings,
    g: &Gate,
    extra: &mut Extra,
) -> Result<(), RenderError> {
    for k in keys::KEYS
        .iter()
        .filter(|k| tables.contains(&k.table) && k.is_generic())
    {
        let (Some(v), Some((section, qkey))) = (settings.get(k.name), k.quadlet) else {
            continue;
        };
        if qkey == "PodmanArgs" {
            continue;
        }
        if !section.is_systemd() {
            let since = quadlet_keys::since(section, qkey).unwrap_or(PodmanVersion::NEWEST);
            g.need(qkey, since, || spec_name(k))?;
        }
        if qkey == "Notify" && matches!(v, Setting::Str(_)) {
            g.need("Notify", super::since::NOTIFY_HEALTHY, || {
                "notify = \"healthy\"".into()
            })?;
        }
        let esc = k.esc();
        if esc == Esc::Json {
            let line = escape::json_argv(&texts(v)).map_err(|e| g.bad(&e.value, e.reason))?;
            extra.push(section, format!("{qkey}={line}"));
            continue;
        }
        for t in texts(v) {
            let written = match esc {
                Esc::Raw => escape::value(&t),
                Esc::Word => escape::word(&t),
                Esc::Path => escape::path_value(&t),
                Esc::PathWord => escape::path_word(&t),
                Esc::Plain => escape::plain(&t),
                Esc::Json => unreachable!(),
            }
            .map_err(|e| g.bad(&e.value, e.reason))?;
            extra.push(section, format!("{qkey}={written}"));
        }
    }
    Ok(())
}

/// The `PodmanArgs=` words a generic `podman_args` adds.
pub(super) fn podman_args(settings: &Settings) -> Vec<String> {
    match settings.get("podman_args") {
        Some(Setting::List(l)) => l.clone(),
        _ => vec![],
    }
}

/// The escape hatch's lines. A Quadlet key the target lacks is refused
/// like a typed key; values are written as they are (a hand-written file's
/// meaning: specifiers and `$` are systemd's), free of control characters.
pub(super) fn raw(raw: &RawKeys, g: &Gate, extra: &mut Extra) -> Result<(), RenderError> {
    for (section, entries) in raw {
        for (key, values) in entries {
            if !section.is_systemd() {
                let known = quadlet_keys::KEYS
                    .iter()
                    .find(|(s, k, _)| s == section && k == key);
                match known {
                    Some((_, k, since)) => g.need(k, *since, || {
                        format!("[{}] {key}= of the escape hatch", section.name())
                    })?,
                    None => {
                        return Err(g.bad(key, "is not a key the target's Quadlet knows"));
                    }
                }
            }
            for v in values {
                let written = escape::plain(v).map_err(|e| g.bad(&e.value, e.reason))?;
                extra.push(*section, format!("{key}={written}"));
            }
        }
    }
    Ok(())
}
