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
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time();
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter()))
        .try_init();
}
