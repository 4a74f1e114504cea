//! The sections deploy-agent(1) and deploy-agent-COMMAND(1) add after
//! clap's NAME, SYNOPSIS, DESCRIPTION, OPTIONS and SUBCOMMANDS.

use clap_mangen::roff::Roff;

use super::markup::{example, file, item, para, section, see_also};
use crate::commands::{EXIT_CHANGES, EXIT_FAILED, EXIT_INVALID, EXIT_OK};
use crate::config::{DEFAULT_CONFIG, DEFAULT_SPECS_DIR};
use crate::health::HealthEvent;
use crate::journal::ids;
use crate::quadlet::{GENERATOR_ENV, GENERATOR_PATHS};

/// EXIT STATUS, ENVIRONMENT, SIGNALS, FILES, JOURNAL, EXAMPLES and SEE
/// ALSO of deploy-agent(1); `sub_pages` are the subcommands' page names.
pub fn top_level_sections(sub_pages: &[String]) -> Roff {
    let mut r = Roff::new();
    exit_status(&mut r);
    environment(&mut r);
    signals(&mut r);
    files(&mut r);
    journal(&mut r);
    examples(&mut r);
    let mut refs: Vec<(&str, &str)> = sub_pages.iter().map(|p| (p.as_str(), "1")).collect();
    refs.extend([
        ("deploy-agent-specs", "5"),
        ("deploy-agent.toml", "5"),
        ("podman-systemd.unit", "5"),
        ("systemctl", "1"),
        ("journalctl", "1"),
        ("loginctl", "1"),
        ("systemd.service", "5"),
    ]);
    see_also(&mut r, &refs);
    r
}

/// EXIT STATUS (and, for `run`, SIGNALS) and SEE ALSO of the page of the
/// subcommand `name`.
pub fn subcommand_sections(name: &str) -> Roff {
    let mut r = Roff::new();
    section(&mut r, "EXIT STATUS");
    for (code, text) in subcommand_exit_status(name) {
        item(&mut r, &format!("`{code}`"), text);
    }
    para(
        &mut r,
        "See `deploy-agent`(1) for the exit status of every command.",
    );
    if name == "run" {
        signals(&mut r);
    }
    see_also(
        &mut r,
        &[
            ("deploy-agent", "1"),
            ("deploy-agent-specs", "5"),
            ("deploy-agent.toml", "5"),
        ],
    );
    r
}

/// What each exit code means for one command. Empty for an unknown name
/// (the tests check that every command has its list).
fn subcommand_exit_status(name: &str) -> Vec<(u8, &'static str)> {
    const CONFIG: &str = "an invalid agent.toml or a usage error";
    match name {
        "run" => vec![
            (EXIT_OK, "Stopped by SIGTERM or SIGINT."),
            (
                EXIT_FAILED,
                "The specs directory cannot be watched, or another operational error. \
                 Invalid specs do not stop the daemon: it logs them and keeps what runs.",
            ),
            (
                EXIT_INVALID,
                "An invalid agent.toml or `podman_version`, or a usage error; \
                 the units do not restart the agent on this status.",
            ),
        ],
        "validate" => vec![
            (EXIT_OK, "Every spec is valid (warnings do not count)."),
            (
                EXIT_INVALID,
                "A spec error, a spec the target Podman version cannot express, memory \
                 reservations adding up to more than the host has, or \
                 an invalid agent.toml or a usage error.",
            ),
        ],
        "render" => vec![
            (EXIT_OK, "The files were written."),
            (
                EXIT_FAILED,
                "The directory could not be created or written.",
            ),
            (
                EXIT_INVALID,
                "A spec error, a spec the target Podman version cannot express, or \
                 an invalid agent.toml or a usage error.",
            ),
        ],
        "plan" => vec![
            (
                EXIT_OK,
                "The plan was shown (with `--detailed-exitcode`: and there is nothing to apply).",
            ),
            (
                EXIT_CHANGES,
                "With `--detailed-exitcode` only: the specs are valid and `apply` would \
                 change something (files, or units stopped outside a change).",
            ),
            (
                EXIT_FAILED,
                "The output or state directory could not be read.",
            ),
            (
                EXIT_INVALID,
                "A spec error, a spec the target Podman version cannot express, memory \
                 reservations over the host's memory, rendered files that Podman's Quadlet \
                 generator rejects, a file in the output directory that deploy-agent did not \
                 generate where it would write one, no specs while services run, or an \
                 invalid agent.toml or a usage error.",
            ),
        ],
        "apply" => vec![
            (
                EXIT_OK,
                "Every unit job finished (with `--wait`: and every unit it started settled \
                 healthy or active), or there was nothing to change.",
            ),
            (
                EXIT_FAILED,
                "A unit failed to start, restart or stop, or its job did not end within \
                 `--timeout` (the generation is recorded as failed); with `--wait`, a unit \
                 that stopped, stayed unhealthy or did not settle in time (rolled back if its \
                 `on_failure` says so); systemd could not be reached; another deploy-agent \
                 kept the apply lock past `--timeout`; a file could not be written; a Podman \
                 secret could not be created.",
            ),
            (
                EXIT_INVALID,
                "Nothing was changed: as for `plan`, or a secret `source` file readable by \
                 group or others, or no specs while services run (see `--allow-empty`).",
            ),
        ],
        "status" => vec![
            (
                EXIT_OK,
                "The status was shown, and every managed unit is active and none is \
                 unhealthy or failed its health checks.",
            ),
            (
                EXIT_FAILED,
                "The status was shown and a managed unit is not active (failed, stopped) or \
                 unhealthy; or systemd could not be reached, or the output or state \
                 directory could not be read.",
            ),
            (EXIT_INVALID, CONFIG),
        ],
        "history" => vec![
            (EXIT_OK, "The history was shown (an empty history too)."),
            (EXIT_FAILED, "The state directory could not be read."),
            (EXIT_INVALID, CONFIG),
        ],
        "rollback" => vec![
            (
                EXIT_OK,
                "Every unit job finished, or there was nothing to change.",
            ),
            (
                EXIT_FAILED,
                "A unit job failed or did not end within `--timeout`, systemd could not be \
                 reached, or the generation could not be read.",
            ),
            (
                EXIT_INVALID,
                "Nothing was changed: no such generation, no earlier good generation to go \
                 back to, rendered files that Podman's Quadlet generator rejects, a file in \
                 the output directory that deploy-agent did not generate, a secret `source` \
                 file readable by group or others, or an invalid agent.toml or a usage \
                 error.",
            ),
        ],
        "wait-healthy" => vec![
            (EXIT_OK, "The check passed within `--within`."),
            (
                EXIT_FAILED,
                "The check did not pass within `--within` (the unit's start fails, and \
                 systemd does not start the units that require it).",
            ),
            (EXIT_INVALID, "A usage error."),
        ],
        "import" => vec![
            (
                EXIT_OK,
                "Every spec file was written: nothing was left out.",
            ),
            (EXIT_FAILED, "A file could not be written."),
            (
                EXIT_INVALID,
                "Something in the Compose or Quadlet files cannot be expressed in a spec (each \
                 listed with file:line and key; nothing written unless `--partial`, which \
                 writes the rest and still exits 2), a file cannot be read or parsed, a `.kube` \
                 or `.build` file was named, or a usage error.",
            ),
        ],
        _ => vec![],
    }
}

fn exit_status(r: &mut Roff) {
    section(r, "EXIT STATUS");
    item(
        r,
        &format!("`{EXIT_OK}`"),
        "Success. `validate`: every spec is valid (warnings do not count); `plan`: the \
         plan was shown; `apply`, `rollback`: every unit job finished, or there was nothing \
         to change; `run`: the daemon was stopped by SIGTERM or SIGINT.",
    );
    item(
        r,
        &format!("`{EXIT_FAILED}`"),
        "An operational failure: a unit failed to start, restart or stop, or its job did \
         not end within `--timeout` (the generation is recorded as failed); systemd could \
         not be reached over D-Bus; a file in the output or state directory could not be \
         read or written; a Podman secret could not be created; `run` could not watch the \
         specs directory.",
    );
    item(
        r,
        &format!("`{EXIT_INVALID}`"),
        "Invalid input or usage; nothing was changed. A spec error; a spec the target \
         Podman version cannot express; memory reservations adding up to more than the \
         host has; a secret `source` file readable by group or others; rendered files \
         that Podman's Quadlet generator rejects; a file in the output directory that \
         deploy-agent did not generate, where it would write one; an invalid agent.toml or \
         `podman_version`; `rollback` to a generation that does not exist, or with no \
         earlier good one; a command-line usage error.",
    );
    item(
        r,
        &format!("`{EXIT_CHANGES}`"),
        "`plan --detailed-exitcode` only: the specs are valid and changes are pending.",
    );
    para(
        r,
        "The daemon (`run`) does not exit on invalid specs: it logs every error to the \
         journal and leaves what runs alone. Its units set `RestartPreventExitStatus=2`, \
         so that systemd does not restart it in a loop over an error only an edit can fix.",
    );
}

fn environment(r: &mut Roff) {
    section(r, "ENVIRONMENT");
    item(
        r,
        "`DEPLOY_AGENT_CONFIG`",
        &format!(
            "The settings file, as `--config` (which wins). Default: `{DEFAULT_CONFIG}`, \
             if it exists."
        ),
    );
    item(
        r,
        "`DEPLOY_AGENT_SPECS`",
        &format!(
            "The specs directory, as `--specs` (which wins); both override `specs_dir` in \
             agent.toml. Default: `{DEFAULT_SPECS_DIR}`."
        ),
    );
    item(
        r,
        "`HOME`",
        "Expands `~/` in agent.toml paths, and is the base of a user agent's default \
         output and state directories.",
    );
    item(
        r,
        "`XDG_CONFIG_HOME`",
        "A user agent's default output directory is \
         `$XDG_CONFIG_HOME/containers/systemd/deploy-agent` (`~/.config` when unset). \
         Used only if absolute; not used as root.",
    );
    item(
        r,
        "`XDG_STATE_HOME`",
        "A user agent's default state directory is `$XDG_STATE_HOME/deploy-agent` \
         (`~/.local/state` when unset). Used only if absolute; not used as root.",
    );
    item(
        r,
        "`RUST_LOG`",
        "The log filter, instead of the level `-v` sets: a level (`error`, `warn`, `info`, \
         `debug`, `trace`) or directives such as `deploy_agent=debug`. Default: `info` for \
         `run`, `warn` for the other commands, which print their own report.",
    );
    item(
        r,
        "`JOURNAL_STREAM`",
        "Set by systemd. When standard error is that stream, log entries go to the \
         journal with their fields (see JOURNAL); otherwise they are plain lines on \
         standard error.",
    );
    item(
        r,
        "`NOTIFY_SOCKET`",
        "Set by systemd for a `Type=notify` service. `run` sends `READY=1` after the first \
         apply, `RELOADING=1` while it applies a change, a `STATUS=` line with the health \
         summary (as `systemctl status` shows it) and `STOPPING=1`. Unset: nothing is sent.",
    );
    item(
        r,
        "`WATCHDOG_USEC`, `WATCHDOG_PID`",
        "Set by systemd from `WatchdogSec=`: `run` sends `WATCHDOG=1` at half that interval.",
    );
    item(
        r,
        "`DBUS_SESSION_BUS_ADDRESS`, `XDG_RUNTIME_DIR`",
        "How a user agent reaches its user manager: `DBUS_SESSION_BUS_ADDRESS`, else \
         `$XDG_RUNTIME_DIR/bus`, else `/run/user/UID/bus`.",
    );
    item(
        r,
        "`DBUS_SYSTEM_BUS_ADDRESS`",
        "How the system agent (run as root) reaches the system manager; default \
         `unix:path=/run/dbus/system_bus_socket`.",
    );
    item(
        r,
        &format!("`{GENERATOR_ENV}`"),
        &format!(
            "Podman's Quadlet generator, which checks the rendered files before every \
             daemon-reload. Default: the first of {} that exists.",
            GENERATOR_PATHS
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    );
    item(
        r,
        "`PATH`",
        "Where `podman` is found: its version (unless `podman_version` is set), `cmd` \
         health checks, secrets.",
    );
}

/// SIGNALS: what `run` does on each; shared with deploy-agent-run(1).
fn signals(r: &mut Roff) {
    section(r, "SIGNALS");
    item(
        r,
        "`SIGHUP`",
        "The daemon (`run`) reads the specs again and applies them at once, as `systemctl \
         reload` does. \
         SIGHUPs within `debounce` (agent.toml) of each other make one apply; systemd \
         hears `RELOADING=1`, then `READY=1` when the apply is done. agent.toml itself is \
         read only at start: restart the agent after changing it.",
    );
    item(
        r,
        "`SIGTERM`, `SIGINT`",
        "The daemon finishes the apply in progress, if any, and exits with status 0. The \
         containers keep running: they are units of their own.",
    );
    para(r, "The other commands do not handle signals.");
}

fn files(r: &mut Roff) {
    section(r, "FILES");
    para(
        r,
        "deploy-agent run by a user other than root is a user agent: it renders for \
         rootless Podman and drives that user's systemd manager. Run as root, it is the \
         system agent: rootful Podman, the system manager. Their paths differ:",
    );
    file(
        r,
        DEFAULT_CONFIG,
        "Settings; every key is optional and the file too. See `deploy-agent.toml`(5).",
    );
    file(
        r,
        &format!("{DEFAULT_SPECS_DIR}/*.toml"),
        "The specs, read in lexical order; other file names are ignored. See \
         `deploy-agent-specs`(5).",
    );
    file(
        r,
        "~/.config/containers/systemd/deploy-agent/",
        "Rendered Quadlet files of a user agent (`output_dir`). deploy-agent touches only \
         the files in it that carry its \"generated by deploy-agent\" mark.",
    );
    file(
        r,
        "/etc/containers/systemd/deploy-agent/",
        "Rendered Quadlet files of the system agent.",
    );
    file(
        r,
        "~/.local/state/deploy-agent/",
        "State of a user agent (`state_dir`): `generations/` (per applied generation a \
         record of what happened naming the specs as read and the rendered files, each \
         distinct file stored once in `generations/objects/`), `health.json`, \
         `inputs.json` (hashes of env files, read-only mounts and secret sources), \
         `podman-version.json` (the installed Podman's version, kept until the `podman` \
         binary changes), `plan-stamp.json` (the fingerprint of what the last plan that \
         found nothing to change read; safe to delete).",
    );
    file(
        r,
        "/var/lib/deploy-agent/",
        "State of the system agent, laid out the same way.",
    );
    file(
        r,
        "/usr/lib/systemd/user/deploy-agent.service",
        "The user unit: `systemctl --user enable --now deploy-agent`.",
    );
    file(
        r,
        "/usr/lib/systemd/system/deploy-agent-system.service",
        "The system unit: `systemctl enable --now deploy-agent-system`. Run either it or \
         user agents for one specs directory, not both.",
    );
    file(
        r,
        "/usr/lib/tmpfiles.d/deploy-agent.conf",
        "Creates the specs directory and the system agent's state directory.",
    );
    file(r, "/usr/share/doc/deploy-agent/examples/", "Example specs.");
}

fn journal(r: &mut Roff) {
    section(r, "JOURNAL");
    para(
        r,
        "Under systemd every log entry goes to the journal with fields to filter on: \
         `UNIT=` (the container's unit, e.g. `web.service`), `SPEC_FILE=` (the spec file), \
         `SPEC_LINE=` and `SPEC_KEY=` (spec errors), `GENERATION=`, `CHECK=` and `RESULT=` (health \
         checks), and a stable `MESSAGE_ID=` per kind of event:",
    );
    let agent = [
        (ids::APPLY_STARTED, "an apply started"),
        (ids::APPLY_DONE, "an apply finished, every unit job done"),
        (ids::APPLY_FAILED, "an apply finished with failures"),
        (
            ids::SPEC_INVALID,
            "the specs are invalid; nothing was changed",
        ),
        (ids::UNIT_FAILED, "a unit job failed"),
        (
            ids::QUADLET_REJECTED,
            "Podman's Quadlet generator rejected the files; nothing was changed",
        ),
        (ids::SYSTEMD_UNREACHABLE, "systemd unreachable"),
        (ids::ROLLBACK, "a rollback was applied"),
    ];
    for (id, what) in agent {
        item(r, &format!("`{id}`"), what);
    }
    for event in HealthEvent::ALL {
        item(r, &format!("`{}`", event.message_id()), health_event(event));
    }
}

fn health_event(e: HealthEvent) -> &'static str {
    match e {
        HealthEvent::Starting => "health: a unit (re)started; its start period began",
        HealthEvent::Healthy => "health: healthy",
        HealthEvent::Unhealthy => "health: a check failed",
        HealthEvent::Recovered => "health: healthy again",
        HealthEvent::Failed => "health: failed (`retries` checks in a row failed)",
        HealthEvent::Restart => "health: restarting the unit (`on_failure = \"restart\"`)",
        HealthEvent::Rollback => "health: rolling the container back (`on_failure = \"rollback\"`)",
        HealthEvent::GaveUp => "health: too many restarts; the agent stopped restarting the unit",
    }
}

fn examples(r: &mut Roff) {
    section(r, "EXAMPLES");
    example(
        r,
        "Check the specs, look at what would change, apply it once:",
        "deploy-agent validate\ndeploy-agent plan\ndeploy-agent apply",
    );
    example(
        r,
        "Check a directory of specs before installing it:",
        "deploy-agent --specs ./new-specs validate",
    );
    example(
        r,
        "See the Quadlet files the specs become, without touching anything:",
        "deploy-agent render --out /tmp/quadlet",
    );
    example(
        r,
        "The state of the managed units, for people and for scripts:",
        "deploy-agent status\ndeploy-agent status --json",
    );
    example(
        r,
        "List the applied generations; go back to the previous good one, or to \
         generation 12:",
        "deploy-agent history\ndeploy-agent rollback\ndeploy-agent rollback --to 12",
    );
    example(
        r,
        "Run the agent for a user (rootless Podman), and keep it running without a login \
         session:",
        "loginctl enable-linger \"$USER\"\nsystemctl --user enable --now deploy-agent\n\
         systemctl --user status deploy-agent",
    );
    example(
        r,
        "Apply now, without waiting for the file watch:",
        "systemctl --user reload deploy-agent",
    );
    example(
        r,
        "Run the system-wide agent (rootful) instead:",
        "systemctl enable --now deploy-agent-system\njournalctl -u deploy-agent-system -f",
    );
    example(
        r,
        "Follow a user agent's log; one service's entries; spec errors; rollbacks:",
        &format!(
            "journalctl --user -u deploy-agent -f\n\
             journalctl --user -u deploy-agent UNIT=web.service\n\
             journalctl --user -u deploy-agent \\\n    MESSAGE_ID={}\n\
             journalctl --user -u deploy-agent \\\n    MESSAGE_ID={}",
            ids::SPEC_INVALID,
            HealthEvent::Rollback.message_id()
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_its_exit_status() {
        let cmd = crate::cli::Cli::command();
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let codes: Vec<u8> = subcommand_exit_status(sub.get_name())
                .iter()
                .map(|(c, _)| *c)
                .collect();
            assert!(codes.contains(&EXIT_OK), "{}", sub.get_name());
            assert!(codes.contains(&EXIT_INVALID), "{}", sub.get_name());
        }
    }

    #[test]
    fn top_level_page_has_the_sections() {
        let text = top_level_sections(&["deploy-agent-run".into()]).to_roff();
        for s in [
            "EXIT STATUS",
            "ENVIRONMENT",
            "SIGNALS",
            "FILES",
            "JOURNAL",
            "EXAMPLES",
            "SEE ALSO",
        ] {
            assert!(
                text.contains(&format!(".SH {s}\n")) || text.contains(&format!(".SH \"{s}\"\n")),
                "{s}"
            );
        }
        for page in [
            "deploy-agent-run",
            "deploy-agent-specs",
            "deploy-agent.toml",
        ] {
            assert!(
                text.contains(&format!("\\fB{}\\fR", page.replace('-', "\\-"))),
                "{page}"
            );
        }
        assert!(text.contains(ids::SPEC_INVALID));
        for var in [
            "DEPLOY_AGENT_CONFIG",
            "DEPLOY_AGENT_SPECS",
            "RUST_LOG",
            "NOTIFY_SOCKET",
        ] {
            assert!(text.contains(var), "{var}");
        }
    }
}
