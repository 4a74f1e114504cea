//! deploy-agent-specs(5): the spec file format.
//!
//! The key lists mirror the parser's (`spec::parse::*_KEYS`); the tests
//! fail when a key is missing here or documented but not accepted.

use clap_mangen::roff::Roff;

use super::markup::{
    example, item, keys, literal, para, section, see_also, subsection, title, Key,
};
use crate::config::DEFAULT_SPECS_DIR;
use crate::spec::{BUILTIN_NETWORKS, MAX_SPEC_FILE_BYTES};

pub(super) fn page(source: &str, date: &str) -> Roff {
    let mut r = Roff::new();
    title(&mut r, "deploy-agent-specs", "5", source, date);
    section(&mut r, "NAME");
    r.text(super::markup::inline(
        "deploy-agent-specs - container, network and volume specs for deploy-agent",
    ));
    section(&mut r, "SYNOPSIS");
    r.text(super::markup::inline(&format!(
        "`{DEFAULT_SPECS_DIR}/*.toml`"
    )));
    description(&mut r);
    names(&mut r);
    values(&mut r);
    containers(&mut r);
    networks(&mut r);
    volumes(&mut r);
    podman_versions(&mut r);
    checks(&mut r);
    escaping(&mut r);
    examples(&mut r);
    see_also(
        &mut r,
        &[
            ("deploy-agent", "1"),
            ("deploy-agent-validate", "1"),
            ("deploy-agent.toml", "5"),
            ("podman-systemd.unit", "5"),
            ("podman-secret-create", "1"),
            ("systemd.resource-control", "5"),
            ("systemd.unit", "5"),
        ],
    );
    r
}

fn description(r: &mut Roff) {
    section(r, "DESCRIPTION");
    para(
        r,
        &format!(
            "The specs say which containers, networks and volumes deploy-agent runs. They \
             are TOML files in the specs directory (`{DEFAULT_SPECS_DIR}`; `specs_dir` in \
             agent.toml, `--specs` or `DEPLOY_AGENT_SPECS` choose another one). Every file \
             whose name ends in `.toml` and does not start with a dot is read, in lexical \
             order; other names are ignored, so `web.toml.off` switches a file off. Name \
             files so that the order reads well, e.g. `00-network.toml`, `10-db.toml`, \
             `20-web.toml`."
        ),
    );
    para(
        r,
        "A file holds any number of `[container.NAME]`, `[network.NAME]` and \
         `[volume.NAME]` tables; nothing else may stand at the top level. All files are \
         read and checked together: a container may use a network or volume declared in \
         another file. Each entry becomes a Podman Quadlet file in the output directory, \
         and Quadlet makes it a systemd unit (see NAMES).",
    );
    para(
        r,
        "The specs are applied as a whole or not at all: when any file has an error, \
         nothing is written and no unit is touched; `deploy-agent validate` prints every \
         error with its file, line, column and key. A running agent applies a change \
         once the directory has been quiet for `debounce` (agent.toml).",
    );
}

fn names(r: &mut Roff) {
    section(r, "NAMES");
    para(
        r,
        "A NAME is 1 to 63 characters of `a`-`z`, `0`-`9`, `_`, `.` and `-`, starts with a \
         letter or digit and contains no `..` (the pattern \
         `^[a-z0-9][a-z0-9_.-]{0,62}$`): no capitals, spaces, slashes or look-alike \
         Unicode letters. Names are unique per kind across all files; a duplicate is an \
         error naming both places.",
    );
    para(r, "What each entry becomes:");
    item(
        r,
        "`[container.NAME]`",
        "`NAME.container`, the unit `NAME.service`, the container `NAME`.",
    );
    item(
        r,
        "`[network.NAME]`",
        "`NAME.network`, the unit `NAME-network.service`, the Podman network `NAME`.",
    );
    item(
        r,
        "`[volume.NAME]`",
        "`NAME.volume`, the unit `NAME-volume.service`, the Podman volume `NAME`.",
    );
    para(
        r,
        "Two entries that would become the same unit (a container `db-network` and a \
         network `db`) are an error.",
    );
}

fn values(r: &mut Roff) {
    section(r, "VALUE TYPES");
    item(
        r,
        "string",
        "A TOML string. No string may contain a control character (newline, tab, NUL, \
         ...) or an invisible formatting character (zero-width characters, bidirectional \
         overrides, byte order mark, line and paragraph separators).",
    );
    item(
        r,
        "exec form",
        "A non-empty array of strings, one argument each, passed on exactly as written: \
         quotes, spaces, `$` and `%` included; no shell is involved. An empty argument \
         or a lone `;` is an error.",
    );
    item(
        r,
        "duration",
        "A string of a number and a unit, `ms`, `s`, `m` (or `min`) or `h`, or a sum of \
         such parts: `\"500ms\"`, `\"10s\"`, `\"5m\"`, `\"1h\"`, `\"1m30s\"`. At most 30 \
         days.",
    );
    item(
        r,
        "size",
        "A positive integer of bytes, or a string of digits and `K`, `M`, `G` or `T` \
         (powers of 1024; lower case too): `\"200M\"`, `\"1G\"`. Zero, negative sizes and \
         other suffixes are errors.",
    );
    item(
        r,
        "absolute path",
        "Starts with `/`, has no `..` component and no `:` or `,`.",
    );
    item(
        r,
        "table of strings",
        "A TOML table (`{ KEY = \"value\", ... }` or a `[...]` section) whose values are \
         strings; integers, floats and booleans are taken as their text.",
    );
}

fn containers(r: &mut Roff) {
    section(r, "CONTAINERS");
    para(
        r,
        "`[container.NAME]` runs one container as the service `NAME.service`. Only \
         `image` is required.",
    );
    keys(r, CONTAINER);
    subsection(r, "Resources");
    para(
        r,
        "`[container.NAME.resources]` limits the service. The limits cover the whole \
         service (Quadlet runs it with `--cgroups=split`: conmon and the container). What \
         the kernel enforces depends on the host's cgroups; see \
         `systemd.resource-control`(5).",
    );
    keys(r, RESOURCES);
    subsection(r, "Health checks");
    para(
        r,
        "`[container.NAME.health]` takes exactly one of `cmd`, `http` and `tcp`. \
         Failures within `start_period` do not count; `retries` failures in a row make \
         the unit failed, and `on_failure` says what happens then. Every change of \
         health goes to the journal (see `deploy-agent`(1), JOURNAL).",
    );
    keys(r, HEALTH);
    subsection(r, "Secrets");
    para(
        r,
        "Each entry of `secrets` is a table, written inline \
         (`secrets = [{ name = \"db_password\", type = \"env\", target = \"PGPASSWORD\" }]`) \
         or as `[[container.NAME.secrets]]` sections. It renders `Secret=`: Podman gives \
         the container the secret's value, which never appears in a rendered file, the \
         plan, the journal or the history. A secret may be listed once per container.",
    );
    keys(r, SECRET);
}

fn networks(r: &mut Roff) {
    section(r, "NETWORKS");
    para(
        r,
        "`[network.NAME]` creates the Podman network `NAME` (Quadlet `NetworkName=`). A \
         table without keys is a network with Podman's defaults.",
    );
    keys(r, NETWORK);
}

fn volumes(r: &mut Roff) {
    section(r, "VOLUMES");
    para(
        r,
        "`[volume.NAME]` creates the named Podman volume `NAME` (Quadlet `VolumeName=`); \
         containers mount it with `volumes = [\"NAME:/path\"]`. A table without keys is a \
         volume with Podman's defaults.",
    );
    keys(r, VOLUME);
}

fn podman_versions(r: &mut Roff) {
    section(r, "PODMAN VERSIONS");
    para(
        r,
        "The files are rendered for the installed Podman (or `podman_version` in \
         agent.toml) and never use a key that version lacks: a spec that needs a newer \
         Podman is an error naming the key and both versions. Quadlet needs Podman 4.4; \
         then:",
    );
    item(r, "4.5", "health `cmd`, `secrets`");
    item(r, "4.6", "`pull`, `auto_update`, `workdir`");
    item(
        r,
        "4.7",
        "declared networks and volumes (`NetworkName=`, `VolumeName=`), `pids`",
    );
    item(
        r,
        "4.8",
        "`user` as a name (before: a numeric `uid[:gid]` only), volume `driver`",
    );
    item(
        r,
        "5.0",
        "`entrypoint`; `stop_timeout` as `StopTimeout=` (before: `--stop-timeout`)",
    );
}

fn checks(r: &mut Roff) {
    section(r, "WHAT IS CHECKED");
    para(
        r,
        "Besides the type and range of every value, `validate`, `plan`, `apply` and the \
         daemon refuse:",
    );
    for text in [
        "unknown tables and keys (with a \"did you mean\" when one is close), and \
         missing required keys;"
            .to_string(),
        "names outside the rule in NAMES, duplicate names across files and entries \
         that would become the same unit;"
            .into(),
        format!(
            "references that do not resolve: `requires`, `after` and `wants` to a \
             container that is not declared, `volumes` to a volume that is not declared, \
             `networks` to a network that is neither declared nor one of Podman's modes \
             ({});",
            BUILTIN_NETWORKS
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "a container that depends on itself, and dependency cycles through `requires`, \
         `after` and `wants`;"
            .into(),
        "a `gateway` outside its `subnet`, a `memory_reservation` above `memory`, a \
         health `timeout` longer than its `interval`;"
            .into(),
        format!(
            "a spec file larger than {} bytes, not valid UTF-8, or not a regular file;",
            MAX_SPEC_FILE_BYTES
        ),
        "a spec file or specs directory owned by anyone but root and the agent's user, \
         or writable by everyone: whoever can write specs can run containers;"
            .into(),
        "memory reservations (`memory_reservation`) adding up to more than the host's \
         memory (`[host]` in agent.toml). Hard limits and CPU quotas adding up to more \
         than the host has are warnings;"
            .into(),
        "at `apply`: a secret `source` readable by group or others, and rendered files \
         that Podman's own Quadlet generator rejects."
            .into(),
    ] {
        r.control("IP", ["\\(bu", "2"]);
        r.text(super::markup::inline(&text));
    }
}

fn escaping(r: &mut Roff) {
    section(r, "ESCAPING");
    para(
        r,
        "No value can add a key or a section to a rendered file or change the command \
         Quadlet builds. Control and invisible formatting characters are refused \
         everywhere. The words of `command`, `env`, `env_files`, `labels` and `secrets` \
         are each written in double quotes with `\\` and `\"` escaped. `%` is written \
         `%%` and `$` is written `$$` wherever systemd would expand them, so the \
         container gets the value as written. A value Quadlet would change is refused \
         rather than altered: an empty value, one that starts or ends with a space, \
         ends with a backslash, or (where Quadlet strips them) starts or ends with a \
         double quote; a lone `;` argument; an `image` ending in `.image` or `.build`; \
         a `:` in a volume's source or target; a `,` in a secret's `name` or `target`.",
    );
}

fn examples(r: &mut Roff) {
    section(r, "EXAMPLES");
    example(
        r,
        "A database and a web application on their own network:",
        EXAMPLE,
    );
    para(
        r,
        "Check it, see what would change, and apply it (a running agent applies it by \
         itself):",
    );
    literal(
        r,
        "deploy-agent validate\ndeploy-agent plan\ndeploy-agent apply",
    );
}

/// The example spec; the tests check that it is valid.
const EXAMPLE: &str = r#"[network.app_net]
subnet = "172.20.0.0/16"

[volume.db_data]

[container.db]
image = "docker.io/library/postgres:16"
networks = ["app_net"]
volumes = ["db_data:/var/lib/postgresql/data:Z"]
env = { POSTGRES_DB = "app" }
restart = "always"

[[container.db.secrets]]
name = "db_password"
type = "env"
target = "POSTGRES_PASSWORD"
source = "/etc/deploy-agent/secrets/db_password"

[container.db.resources]
memory = "512M"
memory_reservation = "256M"
cpus = 1.0

[container.db.health]
cmd = ["pg_isready", "-U", "postgres"]
interval = "10s"

[container.web]
image = "registry.example.com/app:1.2.3"
networks = ["app_net"]
ports = ["127.0.0.1:8080:8000"]
env_files = ["/etc/app/web.env"]
requires = ["db"]

[container.web.health]
http = "http://127.0.0.1:8080/health"
on_failure = "rollback""#;

const CONTAINER: &[Key] = &[
    Key {
        name: "image",
        kind: "string, required",
        text: "The image reference, e.g. `docker.io/library/postgres:16`; no spaces. \
               Renders `Image=`.",
    },
    Key {
        name: "command",
        kind: "exec form, default: the image's",
        text: "The command and its arguments. Renders `Exec=`.",
    },
    Key {
        name: "entrypoint",
        kind: "exec form, default: the image's",
        text: "Replaces the image's entrypoint. Renders `Entrypoint=` (Podman 5.0).",
    },
    Key {
        name: "ports",
        kind: "array of strings, default none",
        text: "Published ports, `[IP:]HOST:CONTAINER[/tcp|/udp]`: `\"8080:80\"` (all \
               addresses), `\"127.0.0.1:8080:80\"`, `\"[::1]:8080:80\"`, \
               `\"5353:53/udp\"`. Ports are 1 to 65535. Renders `PublishPort=`.",
    },
    Key {
        name: "volumes",
        kind: "array of strings, default none",
        text: "Mounts, `SOURCE:TARGET[:OPTIONS]`. SOURCE is a volume declared with \
               `[volume.SOURCE]` or an absolute host path, TARGET an absolute path in the \
               container, OPTIONS a comma-separated list of Podman's (`ro`, `rw`, `z`, \
               `Z`, `U`, ...; not both `ro` and `rw`). A host path mounted `ro` is an \
               input: when its contents change, the unit is restarted. Renders `Volume=`.",
    },
    Key {
        name: "networks",
        kind: "array of strings, default: Podman's default network",
        text: "Networks to join: a network declared with `[network.NAME]`, one declared \
               with `external = true`, or one of Podman's modes (`host`, `none`, \
               `pasta`, ...). A name that is none of these is an error, never a network \
               created on the fly. Renders `Network=`.",
    },
    Key {
        name: "env",
        kind: "table of strings, default none",
        text: "Environment variables; names are letters, digits and `_`, not starting \
               with a digit. Renders `Environment=`.",
    },
    Key {
        name: "env_files",
        kind: "array of absolute paths, default none",
        text: "Files of `NAME=value` lines read when the container starts. They are \
               inputs: when one changes, the unit is restarted. Renders \
               `EnvironmentFile=`.",
    },
    Key {
        name: "secrets",
        kind: "array of tables, default none",
        text: "Podman secrets given to the container; see Secrets.",
    },
    Key {
        name: "labels",
        kind: "table of strings, default none",
        text: "Container labels; keys without spaces, `=` or control characters. Renders \
               `Label=`.",
    },
    Key {
        name: "user",
        kind: "string, default: the image's",
        text: "The user (and group) in the container, a name or `UID[:GID]`, no spaces. \
               Renders `User=`; before Podman 4.8 only a numeric `UID[:GID]`.",
    },
    Key {
        name: "workdir",
        kind: "absolute path, default: the image's",
        text: "The working directory in the container. Renders `WorkingDir=` (Podman 4.6).",
    },
    Key {
        name: "read_only",
        kind: "boolean, default `false`",
        text: "Mount the container's root file system read-only. Renders `ReadOnly=true`.",
    },
    Key {
        name: "init",
        kind: "boolean, default `false`",
        text: "Run an init process as PID 1 in the container: signals reach the service \
               and zombies are reaped. Renders `RunInit=true`.",
    },
    Key {
        name: "pull",
        kind: "string, default `missing` (Podman's)",
        text: "When to pull the image at start: `missing`, `always`, `newer` or `never`. \
               Renders `Pull=` (Podman 4.6).",
    },
    Key {
        name: "auto_update",
        kind: "string, default none",
        text: "`registry` or `local`: let `podman auto-update` update the container. \
               Renders `AutoUpdate=` (Podman 4.6).",
    },
    Key {
        name: "restart",
        kind: "string, default `on-failure`",
        text: "When systemd restarts the service: `always`, `on-failure` or `no`. Renders \
               `Restart=` in `[Service]`.",
    },
    Key {
        name: "start_timeout",
        kind: "duration, default: systemd's",
        text: "How long the service may take to start (image pull included). Renders \
               `TimeoutStartSec=`.",
    },
    Key {
        name: "stop_timeout",
        kind: "duration, default 10 seconds (Podman's)",
        text: "How long the container gets to stop after SIGTERM before it is killed, in \
               whole seconds (rounded up). Renders `StopTimeout=` (before Podman 5.0: \
               `--stop-timeout`) and `TimeoutStopSec=` 30 seconds longer, so that systemd \
               does not kill Podman while it kills the container and cleans up.",
    },
    Key {
        name: "requires",
        kind: "array of container names, default none",
        text: "Containers this one needs: they start first, and when one stops this one \
               stops too. Renders `Requires=` and `After=` on `NAME.service`.",
    },
    Key {
        name: "after",
        kind: "array of container names, default none",
        text: "Containers that start first, without a dependency. Renders `After=`.",
    },
    Key {
        name: "wants",
        kind: "array of container names, default none",
        text: "A weak dependency: starting this one starts those too, but their failure \
               does not matter. Renders `Wants=`.",
    },
    Key {
        name: "resources",
        kind: "table",
        text: "Limits; see Resources.",
    },
    Key {
        name: "health",
        kind: "table",
        text: "The health check; see Health checks.",
    },
];

const RESOURCES: &[Key] = &[
    Key {
        name: "memory",
        kind: "size, default none",
        text: "The hard memory limit. Renders `MemoryMax=` in `[Service]` (and `Memory=` \
               from Podman 5.5).",
    },
    Key {
        name: "memory_reservation",
        kind: "size, default none",
        text: "Memory the service keeps under pressure, at most `memory`. Renders \
               `MemoryLow=` (enforced on cgroup v2 only). The reservations of all \
               services must fit the host.",
    },
    Key {
        name: "cpus",
        kind: "number, default none",
        text: "Cores, more than 0 and at most 4096, in steps of 0.01: `0.5` is half a \
               core. Renders `CPUQuota=` (`cpus = 0.5` is `CPUQuota=50%`).",
    },
    Key {
        name: "pids",
        kind: "integer, default none",
        text: "The most processes the container may have, 1 to 4194304. Renders \
               `PidsLimit=` (Podman 4.7).",
    },
];

const HEALTH: &[Key] = &[
    Key {
        name: "cmd",
        kind: "exec form",
        text: "A command Podman runs inside the container; exit status 0 is healthy. \
               Docker's forms `[\"CMD\", ...]` and `[\"CMD-SHELL\", \"...\"]` work too; a \
               first word `NONE` is an error. Renders `HealthCmd=` and the other \
               `Health*=` keys (Podman 4.5).",
    },
    Key {
        name: "http",
        kind: "string",
        text: "An `http://` or `https://` URL the agent requests; the answer's status \
               must be `expect_status`. Redirects are not followed and proxy settings in \
               the environment are ignored. HTTPS is verified against the system's roots \
               (and `ca_file`).",
    },
    Key {
        name: "tcp",
        kind: "string",
        text: "`HOST:PORT` the agent connects to; healthy when the connection succeeds.",
    },
    Key {
        name: "expect_status",
        kind: "integer, default `200`",
        text: "The HTTP status an `http` check expects, 100 to 599.",
    },
    Key {
        name: "ca_file",
        kind: "absolute path, default none",
        text: "A PEM CA certificate an `https://` check trusts besides the system's roots \
               (for a self-signed certificate).",
    },
    Key {
        name: "interval",
        kind: "duration, default `30s`",
        text: "Time between checks; more than zero.",
    },
    Key {
        name: "timeout",
        kind: "duration, default `5s`",
        text: "How long one check may take; more than zero, at most `interval`.",
    },
    Key {
        name: "retries",
        kind: "integer, default `3`",
        text: "Failed checks in a row that make the unit failed, 1 to 1000.",
    },
    Key {
        name: "start_period",
        kind: "duration, default `0s`",
        text: "Time after a start during which failures do not count.",
    },
    Key {
        name: "on_failure",
        kind: "string, default `restart`",
        text: "What the agent does when the unit fails its checks. `restart`: restart it \
               after `restart_delay`, then twice as long each time (10 s, 20 s, 40 s, ... by \
               default, at most 5 minutes), at most `max_restarts` times an hour, then give \
               up and say so. `rollback`: if this version never became healthy, \
               put the container back on its version from the newest earlier generation \
               that was healthy, and keep it there until its spec changes. `none`: only \
               report.",
    },
    Key {
        name: "restart_delay",
        kind: "duration, default `10s`",
        text: "With `on_failure = \"restart\"`: the wait before the first restart; each \
               further restart within the hour waits twice as long, at most 5 minutes.",
    },
    Key {
        name: "max_restarts",
        kind: "integer, default `5`",
        text: "With `on_failure = \"restart\"`: restarts within an hour before the agent \
               gives up, 1 to 100.",
    },
];

const SECRET: &[Key] = &[
    Key {
        name: "name",
        kind: "string, required",
        text: "The Podman secret's name; the rule of NAMES applies.",
    },
    Key {
        name: "type",
        kind: "string, default `mount`",
        text: "`env`: the value goes into an environment variable; `mount`: into a file.",
    },
    Key {
        name: "target",
        kind: "string, default: the secret's name (Podman's)",
        text: "For `env`, the variable's name. For `mount`, a file name (under \
               `/run/secrets/`) or an absolute path.",
    },
    Key {
        name: "source",
        kind: "absolute path, default none",
        text: "A file with the value. The agent creates or replaces the Podman secret from \
               it before starting the units that use it, and restarts them when it \
               changes. It must not be readable by group or others (`chmod 600`). \
               Without `source`, the secret must exist (`podman secret create`).",
    },
];

const NETWORK: &[Key] = &[
    Key {
        name: "subnet",
        kind: "string, default: one Podman picks",
        text: "The subnet in CIDR notation, e.g. `\"172.20.0.0/16\"`. Renders `Subnet=`.",
    },
    Key {
        name: "gateway",
        kind: "string, default: Podman's",
        text: "The gateway address, inside `subnet` (which it needs). Renders `Gateway=`.",
    },
    Key {
        name: "internal",
        kind: "boolean, default `false`",
        text: "No route out of the network. Renders `Internal=true`.",
    },
    Key {
        name: "ipv6",
        kind: "boolean, default `false`",
        text: "Enable IPv6. Renders `IPv6=true`.",
    },
    Key {
        name: "driver",
        kind: "string, default `bridge`",
        text: "`bridge`, `macvlan` or `ipvlan`. Renders `Driver=`.",
    },
    Key {
        name: "labels",
        kind: "table of strings, default none",
        text: "Network labels. Renders `Label=`.",
    },
    Key {
        name: "external",
        kind: "boolean, default `false`",
        text: "The network exists and is managed outside deploy-agent: containers may \
               join it by name, nothing is rendered for it. Takes no other key.",
    },
];

const VOLUME: &[Key] = &[
    Key {
        name: "driver",
        kind: "string, default `local`",
        text: "`local` or `image`. Renders `Driver=` (Podman 4.8).",
    },
    Key {
        name: "labels",
        kind: "table of strings, default none",
        text: "Volume labels. Renders `Label=`.",
    },
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::spec::parse;
    use crate::spec::values::MOUNT_OPTIONS;

    /// Each table of the format: the page's subsection title, the parser's
    /// key list, the page's key list.
    fn tables() -> [(&'static str, &'static [&'static str], &'static [Key]); 6] {
        [
            ("CONTAINERS", parse::CONTAINER_KEYS, CONTAINER),
            ("Resources", parse::RESOURCE_KEYS, RESOURCES),
            ("Health checks", parse::HEALTH_KEYS, HEALTH),
            ("Secrets", parse::SECRET_KEYS, SECRET),
            ("NETWORKS", parse::NETWORK_KEYS, NETWORK),
            ("VOLUMES", parse::VOLUME_KEYS, VOLUME),
        ]
    }

    /// The page's text from `heading` to the next heading.
    fn part<'a>(page: &'a str, heading: &str) -> &'a str {
        let start = page
            .lines()
            .position(|l| {
                (l.starts_with(".SH ") || l.starts_with(".SS "))
                    && l[4..].trim_matches('"') == heading
            })
            .unwrap_or_else(|| panic!("no heading {heading:?}"));
        let lines: Vec<&str> = page.lines().collect();
        let end = lines[start + 1..]
            .iter()
            .position(|l| l.starts_with(".SH ") || l.starts_with(".SS "))
            .map_or(lines.len(), |i| start + 1 + i);
        let from = lines[..start].iter().map(|l| l.len() + 1).sum::<usize>();
        let to = lines[..end].iter().map(|l| l.len() + 1).sum::<usize>();
        &page[from..to.min(page.len())]
    }

    #[test]
    fn documents_exactly_the_keys_the_parser_accepts() {
        for (heading, accepted, documented) in tables() {
            let accepted: BTreeSet<&str> = accepted.iter().copied().collect();
            let documented: BTreeSet<&str> = documented.iter().map(|k| k.name).collect();
            assert_eq!(
                documented, accepted,
                "{heading}: the page's keys (left) differ from the parser's (right)"
            );
        }
    }

    #[test]
    fn the_page_lists_every_key_under_its_table() {
        let page = page("deploy-agent 0", "2000-01-01").to_roff();
        for (heading, accepted, _) in tables() {
            let text = part(&page, heading);
            for key in accepted {
                assert!(
                    text.contains(&format!(".TP\n\\fB{key}\\fR (")),
                    "{key} is not documented under {heading}"
                );
            }
        }
        for top in parse::TOP_KEYS {
            assert!(
                page.contains(&format!("\\fB[{top}.NAME]\\fR")),
                "[{top}.NAME]"
            );
        }
    }

    #[test]
    fn the_example_is_valid() {
        let set = crate::spec::load_texts(&[("example.toml".into(), EXAMPLE.to_string())])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set.containers.len(), 2);
    }

    #[test]
    fn mount_options_named_are_real() {
        for o in ["ro", "rw", "z", "Z", "U"] {
            assert!(MOUNT_OPTIONS.contains(&o), "{o}");
        }
    }
}
