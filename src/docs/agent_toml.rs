//! deploy-agent.toml(5): the agent settings file.
//!
//! The key lists mirror `config::known_keys()`; the tests fail when a key is
//! missing here or documented but not accepted, and check the defaults
//! shown against the ones the parser applies.

use clap_mangen::roff::Roff;

use super::markup::{example, file, inline, keys, para, section, see_also, title, Key};
use crate::config::DEFAULT_CONFIG;

pub(super) fn page(source: &str, date: &str) -> Roff {
    let mut r = Roff::new();
    title(&mut r, "deploy-agent.toml", "5", source, date);
    section(&mut r, "NAME");
    r.text(inline("deploy-agent.toml - settings of deploy-agent"));
    section(&mut r, "SYNOPSIS");
    r.text(inline(&format!("`{DEFAULT_CONFIG}`")));
    description(&mut r);
    section(&mut r, "[agent]");
    keys(&mut r, AGENT);
    section(&mut r, "[host]");
    para(
        &mut r,
        "The host's budget: `validate`, `plan`, `apply` and the daemon add up the \
         services' `[container.NAME.resources]` against it. Memory reservations adding \
         up to more than `memory` are an error; hard memory limits adding up to more, or \
         CPU quotas adding up to more than `cpus`, are warnings.",
    );
    keys(&mut r, HOST);
    examples(&mut r);
    files(&mut r);
    see_also(
        &mut r,
        &[
            ("deploy-agent", "1"),
            ("deploy-agent-run", "1"),
            ("deploy-agent-specs", "5"),
            ("podman-systemd.unit", "5"),
            ("systemctl", "1"),
        ],
    );
    r
}

fn description(r: &mut Roff) {
    section(r, "DESCRIPTION");
    para(
        r,
        &format!(
            "deploy-agent reads its settings from `{DEFAULT_CONFIG}` if that file exists, \
             or from the file `--config` or `DEPLOY_AGENT_CONFIG` names, which must exist. \
             The file is TOML with the tables `[agent]` and `[host]`; the file, each table \
             and each key are optional. An unknown table or key, or a bad value, is an \
             error naming the file, line and column: every command exits with status 2, \
             and the agent's units do not restart it until the file is fixed."
        ),
    );
    para(
        r,
        "The options `--specs`, `--output-dir` and `--state-dir` (and the environment \
         variable `DEPLOY_AGENT_SPECS`) win over the keys of the same meaning. The daemon \
         reads the file only when it starts: after a change, restart it with `systemctl \
         --user restart deploy-agent` (user agent) or `systemctl restart \
         deploy-agent-system` (system agent).",
    );
    para(
        r,
        "A user agent is deploy-agent run by a user other than root (rootless Podman, \
         the user's systemd manager); run as root it is the system agent (rootful \
         Podman, the system manager). Some defaults differ between them. A path starting \
         with `~/` is taken relative to the home directory (`HOME`) of the user the agent \
         runs as.",
    );
}

fn examples(r: &mut Roff) {
    section(r, "EXAMPLES");
    example(
        r,
        "Every key with its default, for a user agent (the installed file has these \
         lines commented out):",
        DEFAULTS,
    );
    example(
        r,
        "A system agent reading another specs directory and rendering for Podman 4.9 \
         (whatever version is installed), on a host whose containers may use 6 GiB of \
         memory and 3 cores:",
        "[agent]\nspecs_dir = \"/srv/deploy/specs\"\npodman_version = \"4.9\"\n\n\
         [host]\nmemory = \"6G\"\ncpus = 3",
    );
    example(
        r,
        "Check the file and the specs with it, then restart the agent to use it:",
        "deploy-agent validate\nsystemctl --user restart deploy-agent",
    );
}

fn files(r: &mut Roff) {
    section(r, "FILES");
    file(
        r,
        DEFAULT_CONFIG,
        "The settings file. The package installs it with every line commented out \
         (a configuration file: upgrades keep your changes).",
    );
}

/// The defaults of a user agent as an agent.toml; the tests check that it
/// parses to the same settings as an empty file.
const DEFAULTS: &str = r#"[agent]
specs_dir = "/etc/deploy-agent/specs"
output_dir = "~/.config/containers/systemd/deploy-agent"
state_dir = "~/.local/state/deploy-agent"
debounce = "500ms"
history = 20
# podman_version = "5.4"
# systemd_version = "257"
# trusted_group = "deploy"
allow_empty = false
pull_ahead = true
# metrics_file = "/var/lib/node_exporter/textfile_collector/deploy_agent.prom"
watch = true

[host]
# memory = "8G"
# cpus = 4"#;

const AGENT: &[Key] = &[
    Key {
        name: "specs_dir",
        kind: "path, default `/etc/deploy-agent/specs`",
        text: "The specs directory; see `deploy-agent-specs`(5). Every agent reads the same \
               one unless told otherwise: run one kind of agent (user or system) per specs \
               directory.",
    },
    Key {
        name: "output_dir",
        kind: "path, default: see below",
        text: "Where the rendered Quadlet files go. Default for a user agent: \
               `$XDG_CONFIG_HOME/containers/systemd/deploy-agent` (normally \
               `~/.config/containers/systemd/deploy-agent`); for the system agent: \
               `/etc/containers/systemd/deploy-agent`. Quadlet reads only its own \
               directories and their subdirectories (see `podman-systemd.unit`(5)): files \
               elsewhere never become units. deploy-agent touches only the files in it that \
               carry its \"generated by deploy-agent\" mark.",
    },
    Key {
        name: "state_dir",
        kind: "path, default: see below",
        text: "The history of applied generations, the health state and the hashes of the \
               containers' input files. Default for a user agent: \
               `$XDG_STATE_HOME/deploy-agent` (normally `~/.local/state/deploy-agent`); for \
               the system agent: `/var/lib/deploy-agent`. The system unit may write only \
               its default output and state directories (`ProtectSystem=strict`): give it \
               others with a `ReadWritePaths=` drop-in (`systemctl edit \
               deploy-agent-system`).",
    },
    Key {
        name: "debounce",
        kind: "duration, default `500ms`",
        text: "How long the specs directory (and the directories of env files, read-only \
               mounted files and secret sources) must be quiet before the daemon applies a \
               change; SIGHUPs within it make one apply. A duration is a number and a unit \
               (`ms`, `s`, `m`, `h`), or a sum such as `\"1m30s\"`.",
    },
    Key {
        name: "history",
        kind: "integer, at least 1, default `20`",
        text: "How many applied generations to keep for `deploy-agent history` and \
               `deploy-agent rollback`; older ones are deleted.",
    },
    Key {
        name: "podman_version",
        kind: "string, default: the installed Podman's",
        text: "The Podman version to render for, e.g. `\"4.9\"` or `\"5.4.2\"`: no \
               rendered file uses a key that version lacks. Without it the agent asks \
               `podman --version`, and if that fails renders for the newest version it \
               knows, with a warning. Set it when the files are rendered on one machine for \
               another, or to keep the files stable across a Podman upgrade.",
    },
    Key {
        name: "systemd_version",
        kind: "string, default: the manager's",
        text: "The systemd version to render for, e.g. `\"252\"` (RHEL 9, Debian 12) \
               or `\"257\"`: a spec key that writes a `[Service]`, `[Unit]` or \
               `[Install]` key that version lacks (`restart_steps` needs 254) is an \
               error naming both versions, as for Podman. Without it, `plan`, `apply` \
               and the daemon take the version of the systemd they talk to; `validate` \
               and `render`, which need no systemd, then check no systemd key. At least \
               252, the oldest systemd of a supported distribution. Set it to check \
               specs offline for another host.",
    },
    Key {
        name: "allow_empty",
        kind: "boolean, default `false`",
        text: "Whether a specs directory without specs may remove every service the agent \
               runs. By default such an apply is refused and logged (a failed mount or a \
               half-done checkout looks the same); `deploy-agent apply --allow-empty` does \
               it once.",
    },
    Key {
        name: "pull_ahead",
        kind: "boolean, default `true`",
        text: "Whether `apply` pulls the image of a container it is about to start or \
               restart, when that image is not on the host yet, before it stops the old \
               container: the download is then not downtime. A pull that fails leaves the \
               old container running and its change not applied (logged with \
               `MESSAGE_ID=5b3e0c0a8f4d4c55a1d2e36f9a7b1c0b`; the next apply tries again). \
               Containers with `pull = \"never\"` are not pulled.",
    },
    Key {
        name: "trusted_group",
        kind: "group name or gid, default none",
        text: "A group whose members may write specs. Without it a spec file, the specs \
               directory, every directory above it and every symlink on the way must be \
               owned by root or the agent's user and writable by no one else (root's group \
               aside): whoever writes a spec decides what runs as the agent's user, as root \
               for the system agent. With it, those may also be writable by this group.",
    },
    Key {
        name: "metrics_file",
        kind: "path ending in `.prom`, default none",
        text: "Where the daemon writes its metrics in the Prometheus text format, for \
               node_exporter's textfile collector (e.g. \
               `/var/lib/node_exporter/textfile_collector/deploy_agent.prom`; the agent's \
               user must be able to write to that directory). Rewritten atomically when an \
               apply ends and when a unit's state or health changes: \
               `deploy_agent_units{state}`, `deploy_agent_unit_health{unit,state}`, \
               `deploy_agent_generation`, `deploy_agent_last_apply_success`, \
               `deploy_agent_last_apply_duration_seconds`, \
               `deploy_agent_last_apply_timestamp_seconds`, `deploy_agent_applies_total{result}` \
               and `deploy_agent_rollbacks_total`. Without it no file is written.",
    },
    Key {
        name: "watch",
        kind: "boolean, default `true`",
        text: "Whether the daemon applies by itself when the specs or the containers' \
               input files change. Set it to `false` on hosts driven by a deployment \
               engine (the Ansible role in `ansible/`, a Flight Control hook) that writes \
               the specs and then runs `deploy-agent apply --wait --json` itself: the \
               daemon applying first would leave that apply nothing to wait for, and the \
               engine would not see a failed health check. The daemon still applies at \
               start and on SIGHUP (`systemctl reload`), starts units stopped outside a \
               change, and runs the health checks.",
    },
];

const HOST: &[Key] = &[
    Key {
        name: "memory",
        kind: "size, default: this machine's memory",
        text: "The memory the containers may use together: bytes, or a string with `K`, \
               `M`, `G` or `T` (powers of 1024), e.g. `\"8G\"`. Default: `MemTotal` of \
               `/proc/meminfo`.",
    },
    Key {
        name: "cpus",
        kind: "number, default: this machine's CPUs",
        text: "The cores the containers may use together, more than 0; fractions allowed. \
               Default: the number of CPUs available to the agent.",
    },
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::config::{known_keys, Config, Env, Overrides};

    fn documented(table: &str) -> &'static [Key] {
        match table {
            "agent" => AGENT,
            "host" => HOST,
            other => panic!("[{other}] is not documented in deploy-agent.toml(5)"),
        }
    }

    #[test]
    fn documents_exactly_the_keys_the_parser_accepts() {
        for (table, accepted) in known_keys() {
            let accepted: BTreeSet<&str> = accepted.iter().copied().collect();
            let documented: BTreeSet<&str> = documented(table).iter().map(|k| k.name).collect();
            assert_eq!(
                documented, accepted,
                "[{table}]: the page's keys (left) differ from the parser's (right)"
            );
        }
    }

    #[test]
    fn the_page_lists_every_key_under_its_table() {
        let page = page("deploy-agent 0", "2000-01-01").to_roff();
        for (table, accepted) in known_keys() {
            let start = page
                .find(&format!(".SH [{table}]\n"))
                .unwrap_or_else(|| panic!("no section [{table}]"));
            let end = page[start + 1..]
                .find(".SH ")
                .map_or(page.len(), |i| start + 1 + i);
            for key in accepted {
                assert!(
                    page[start..end].contains(&format!(".TP\n\\fB{key}\\fR (")),
                    "{key} is not documented under [{table}]"
                );
            }
        }
    }

    fn env(root: bool, home: &str) -> Env {
        Env {
            root,
            home: Some(home.into()),
            xdg_config_home: None,
            xdg_state_home: None,
        }
    }

    #[test]
    fn the_defaults_shown_are_the_parsers() {
        let none = Overrides::default();
        let e = env(false, "/home/a");
        let shown = Config::from_text(DEFAULTS, Path::new("x"), &none, &e).unwrap();
        let default = Config::from_text("", Path::new("x"), &none, &e).unwrap();
        assert_eq!(shown, default);
    }

    #[test]
    fn the_default_paths_in_the_text_are_the_parsers() {
        let text = page("deploy-agent 0", "2000-01-01")
            .to_roff()
            .replace("\\-", "-");
        let none = Overrides::default();
        let xdg = Env {
            xdg_config_home: Some("$XDG_CONFIG_HOME".into()),
            xdg_state_home: Some("$XDG_STATE_HOME".into()),
            ..env(false, "~")
        };
        for e in [env(true, "/root"), env(false, "~"), xdg] {
            let c = Config::from_text("", Path::new("x"), &none, &e).unwrap();
            let paths: [PathBuf; 3] = [c.specs_dir, c.output_dir, c.state_dir];
            for p in paths {
                let p = p.display().to_string();
                assert!(text.contains(&format!("\\fB{p}\\fR")), "{p}");
            }
        }
    }
}
