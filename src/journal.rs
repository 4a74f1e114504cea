//! Logging: structured entries to the journal when running under systemd,
//! plain lines on stderr otherwise; and the stable MESSAGE_IDs operators
//! search for (`journalctl --user -u deploy-agent MESSAGE_ID=...`).
//!
//! Event fields become journal fields as written, upper-cased: `unit` ->
//! `UNIT=`, `spec_file` -> `SPEC_FILE=`, `generation` -> `GENERATION=`,
//! `message_id` -> `MESSAGE_ID=`.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Stable ids for the events of the agent itself (health events have theirs in `health`).
pub mod ids {
    /// An apply started (a change set was found).
    pub const APPLY_STARTED: &str = "5b3e0c0a8f4d4c55a1d2e36f9a7b1c01";
    /// An apply finished with every unit job done.
    pub const APPLY_DONE: &str = "5b3e0c0a8f4d4c55a1d2e36f9a7b1c02";
    /// An apply finished with at least one unit failing.
    pub const APPLY_FAILED: &str = "5b3e0c0a8f4d4c55a1d2e36f9a7b1c03";
    /// The specs did not validate; nothing was changed.
    pub const SPEC_INVALID: &str = "5b3e0c0a8f4d4c55a1d2e36f9a7b1c04";
    /// One unit job (start/restart/stop) failed.
    pub const UNIT_FAILED: &str = "5b3e0c0a8f4d4c55a1d2e36f9a7b1c05";
    /// Podman's Quadlet generator rejected the rendered files; nothing was changed.
    pub const QUADLET_REJECTED: &str = "5b3e0c0a8f4d4c55a1d2e36f9a7b1c06";
    /// The connection to systemd was lost or could not be made.
    pub const SYSTEMD_UNREACHABLE: &str = "5b3e0c0a8f4d4c55a1d2e36f9a7b1c07";
    /// A rollback to an earlier generation was applied.
    pub const ROLLBACK: &str = "5b3e0c0a8f4d4c55a1d2e36f9a7b1c08";
    /// A unit the specs want running was stopped outside a change; the
    /// agent starts it again.
    pub const UNIT_DRIFT: &str = "5b3e0c0a8f4d4c55a1d2e36f9a7b1c09";
    /// The specs directory had no specs while services run from it; nothing
    /// was removed (`allow_empty`).
    pub const SPECS_EMPTY: &str = "5b3e0c0a8f4d4c55a1d2e36f9a7b1c0a";
    /// A changed container's new image could not be pulled: its old
    /// container keeps running, its change is not applied.
    pub const PULL_FAILED: &str = "5b3e0c0a8f4d4c55a1d2e36f9a7b1c0b";
    /// A rendered file was edited, removed, or lost its mark outside the
    /// agent: the daemon applies the specs again (an unmarked file is
    /// refused, with where it is).
    pub const OUTPUT_EDITED: &str = "5b3e0c0a8f4d4c55a1d2e36f9a7b1c0c";
}

/// True when stderr is connected to the journal (systemd sets JOURNAL_STREAM
/// to the device:inode of the stream it gave us).
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// Sets up logging once for the process. `verbose`: 0 info for the daemon
/// (warnings only for one-shot commands, which print their own report),
/// 1 debug, 2+ trace.
pub fn init(verbose: u8, daemon: bool) {
    let default = match verbose {
        0 if daemon => "info",
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = || EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    if stderr_is_journal() {
        if let Ok(layer) = tracing_journald::layer() {
            let layer = layer
                .with_field_prefix(None)
                .with_syslog_identifier("deploy-agent".into())
                .with_priority_mappings(tracing_journald::PriorityMappings {
                    error: tracing_journald::Priority::Error,
                    warn: tracing_journald::Priority::Warning,
                    info: tracing_journald::Priority::Informational,
                    debug: tracing_journald::Priority::Debug,
                    trace: tracing_journald::Priority::Debug,
                });
            let _ = tracing_subscriber::registry()
                .with(layer.with_filter(filter()))
                .try_init();
            return;
        }
    }
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .event_format(Diagnostic {
            fields: verbose > 0,
        });
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter()))
        .try_init();
}

/// On a terminal or in a pipe, log lines read like the commands' own
/// diagnostics: `warning: ...`, `error: ...`, no colour, no timestamps;
/// the structured fields (unit, MESSAGE_ID, ...) only with `-v`.
struct Diagnostic {
    fields: bool,
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Diagnostic
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        let mut v = Fields::default();
        event.record(&mut v);
        write!(w, "{level}: {}", v.message)?;
        if self.fields && !v.rest.is_empty() {
            write!(w, " ({})", v.rest.join(", "))?;
        }
        writeln!(w)
    }
}

/// An event's message, and its other fields as `key=value`.
#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<String>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, f: &tracing::field::Field, value: &str) {
        if f.name() == "message" {
            self.message = value.to_string();
        } else {
            self.rest.push(format!("{}={value}", f.name()));
        }
    }

    fn record_debug(&mut self, f: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if f.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.rest.push(format!("{}={value:?}", f.name()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ids;
    use crate::health::event::HealthEvent;
    use std::collections::BTreeMap;

    /// What README's table must say for each of the agent's own ids.
    const MEANINGS: &[(&str, &str, &str)] = &[
        ("APPLY_STARTED", ids::APPLY_STARTED, "apply started"),
        ("APPLY_DONE", ids::APPLY_DONE, "apply done"),
        (
            "APPLY_FAILED",
            ids::APPLY_FAILED,
            "apply finished with failures",
        ),
        (
            "SPEC_INVALID",
            ids::SPEC_INVALID,
            "specs invalid, nothing changed",
        ),
        ("UNIT_FAILED", ids::UNIT_FAILED, "a unit job failed"),
        (
            "QUADLET_REJECTED",
            ids::QUADLET_REJECTED,
            "Podman's Quadlet generator rejected the files, nothing changed",
        ),
        (
            "SYSTEMD_UNREACHABLE",
            ids::SYSTEMD_UNREACHABLE,
            "systemd unreachable",
        ),
        ("ROLLBACK", ids::ROLLBACK, "rollback applied"),
        (
            "UNIT_DRIFT",
            ids::UNIT_DRIFT,
            "a unit was stopped outside a change; starting it again",
        ),
        (
            "SPECS_EMPTY",
            ids::SPECS_EMPTY,
            "no specs while services run, nothing removed",
        ),
        (
            "PULL_FAILED",
            ids::PULL_FAILED,
            "an image could not be pulled; the old container keeps running",
        ),
        (
            "OUTPUT_EDITED",
            ids::OUTPUT_EDITED,
            "a rendered file was edited, removed or lost its mark outside the agent",
        ),
    ];

    fn readme() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
    }

    fn is_id(s: &str) -> bool {
        s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    /// The `| MESSAGE_ID | event |` table of README's "Reading the journal".
    fn readme_table(readme: &str) -> BTreeMap<String, String> {
        let section = readme
            .split("\n## ")
            .find(|s| s.starts_with("Reading the journal"))
            .expect("README.md has a section \"Reading the journal\"");
        let mut table = BTreeMap::new();
        for line in section.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let [_, id, event, _] = cells[..] else {
                continue;
            };
            let Some(id) = id.strip_prefix('`').and_then(|s| s.strip_suffix('`')) else {
                continue;
            };
            assert!(is_id(id), "not a MESSAGE_ID: {line}");
            let old = table.insert(id.to_string(), event.to_string());
            assert!(old.is_none(), "listed twice: {id}");
        }
        assert!(!table.is_empty(), "no MESSAGE_ID table:\n{section}");
        table
    }

    /// README "Reading the journal": the table lists every MESSAGE_ID the
    /// agent logs, each with its meaning, and no id the code does not have;
    /// an id quoted anywhere else in README is one of them too.
    #[test]
    fn the_readmes_message_id_table_is_the_codes() {
        // Every id of `ids`, read from this file, has its meaning above.
        let source = include_str!("journal.rs");
        let declared: Vec<&str> = source
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub const "))
            .filter_map(|l| l.split_once(": &str"))
            .map(|(name, _)| name)
            .collect();
        let named: Vec<&str> = MEANINGS.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(declared, named, "journal::ids and MEANINGS differ");

        let mut code: BTreeMap<&str, String> = BTreeMap::new();
        for (_, id, meaning) in MEANINGS {
            code.insert(id, meaning.to_string());
        }
        for e in HealthEvent::ALL {
            // health_gave_up -> "health: gave up"
            let what = e.name().strip_prefix("health_").unwrap().replace('_', " ");
            assert!(code
                .insert(e.message_id(), format!("health: {what}"))
                .is_none());
        }

        let readme = readme();
        let table = readme_table(&readme);
        for (id, meaning) in &code {
            let event = table
                .get(*id)
                .unwrap_or_else(|| panic!("README's table lacks {id} ({meaning})"));
            // The agent's own: word for word; a health event's name may be
            // followed by a remark, e.g. "health: failed (retries spent)".
            let ok = match event.strip_prefix(meaning.as_str()) {
                Some("") => true,
                Some(rest) => meaning.starts_with("health: ") && rest.starts_with(' '),
                None => false,
            };
            assert!(ok, "README says {id} is {event:?}, the code: {meaning:?}");
        }
        for id in table.keys() {
            assert!(
                code.contains_key(id.as_str()),
                "README lists {id}, unknown to the code"
            );
        }

        // Ids quoted elsewhere (`MESSAGE_ID=...` in examples and prose).
        let mut quoted = 0;
        for word in readme.split(|c: char| !c.is_ascii_alphanumeric()) {
            if is_id(word) {
                assert!(
                    code.contains_key(word),
                    "README quotes {word}, unknown to the code"
                );
                quoted += 1;
            }
        }
        assert!(quoted > table.len(), "{quoted}");
        // The two named in examples mean what their comments say.
        for (comment, id) in [
            ("# spec errors", ids::SPEC_INVALID),
            ("# rollbacks", HealthEvent::Rollback.message_id()),
        ] {
            let line = readme
                .lines()
                .find(|l| l.contains("MESSAGE_ID=") && l.trim_end().ends_with(comment))
                .unwrap_or_else(|| panic!("README has no `MESSAGE_ID=... {comment}`"));
            assert!(line.contains(&format!("MESSAGE_ID={id} ")), "{line}");
        }
        let prose = readme.split_whitespace().collect::<Vec<_>>().join(" ");
        let want = format!(
            "the errors go to the journal (`MESSAGE_ID={}`)",
            ids::SPEC_INVALID
        );
        assert!(prose.contains(&want), "README does not say: {want}");
    }
}
