//! deploy-agent-specs(5): the spec file format.
//!
//! The keys come from the spec key registry (`spec::keys`), the same table
//! the parser, the renderer and the version gates read; so does the
//! README's key reference ([`markdown_reference`]).

use clap_mangen::roff::Roff;

use super::markup::{example, item, key_item, literal, para, section, see_also, subsection, title};
use crate::config::DEFAULT_SPECS_DIR;
use crate::spec::keys::{self as registry, Table};
use crate::spec::{BUILTIN_NETWORKS, MAX_SPEC_FILE_BYTES};

pub(super) fn page(source: &str, date: &str) -> Roff {
    let mut r = Roff::new();
    title(&mut r, "deploy-agent-specs", "5", source, date);
    section(&mut r, "NAME");
    r.text(super::markup::inline(
        "deploy-agent-specs - container, network, volume, pod and image specs for deploy-agent",
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
    pods(&mut r);
    images(&mut r);
    podman_versions(&mut r);
    systemd_versions(&mut r);
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
    keys_of(r, Table::Container);
    subsection(r, "Resources");
    para(
        r,
        "`[container.NAME.resources]` limits the service. The limits cover the whole \
         service (Quadlet runs it with `--cgroups=split`: conmon and the container). What \
         the kernel enforces depends on the host's cgroups; see \
         `systemd.resource-control`(5).",
    );
    keys_of(r, Table::Resources);
    subsection(r, "Health checks");
    para(
        r,
        "`[container.NAME.health]` takes exactly one of `cmd`, `http` and `tcp`. \
         Failures within `start_period` do not count; `retries` failures in a row make \
         the unit failed, and `on_failure` says what happens then. Every change of \
         health goes to the journal (see `deploy-agent`(1), JOURNAL).",
    );
    keys_of(r, Table::Health);
    subsection(r, "Secrets");
    para(
        r,
        "Each entry of `secrets` is a table, written inline \
         (`secrets = [{ name = \"db_password\", type = \"env\", target = \"PGPASSWORD\" }]`) \
         or as `[[container.NAME.secrets]]` sections. It renders `Secret=`: Podman gives \
         the container the secret's value, which never appears in a rendered file, the \
         plan, the journal or the history. A secret may be listed once per container.",
    );
    keys_of(r, Table::Secret);
}

fn networks(r: &mut Roff) {
    section(r, "NETWORKS");
    para(
        r,
        "`[network.NAME]` creates the Podman network `NAME` (Quadlet `NetworkName=`). A \
         table without keys is a network with Podman's defaults.",
    );
    keys_of(r, Table::Network);
}

fn volumes(r: &mut Roff) {
    section(r, "VOLUMES");
    para(
        r,
        "`[volume.NAME]` creates the named Podman volume `NAME` (Quadlet `VolumeName=`); \
         containers mount it with `volumes = [\"NAME:/path\"]`. A table without keys is a \
         volume with Podman's defaults.",
    );
    keys_of(r, Table::Volume);
}

fn images(r: &mut Roff) {
    section(r, "IMAGES");
    para(
        r,
        "`[image.NAME]` pulls an image before the containers that run it start \
         (`NAME.image`, the unit `NAME-image.service`, Podman 4.8): for pull options a \
         container's `image` cannot say (`auth_file`, `tls_verify`, `arch`, `retry`, ...). \
         A container runs it with `image = { unit = \"NAME\" }` (or `image.unit = \"NAME\"`), \
         which renders `Image=NAME.image`; Quadlet makes the container require the \
         image's unit and start after it. A change of the `[image.NAME]` pulls again and \
         restarts the containers that run it. `creds` is refused: credentials in a unit file \
         are a secret; use `auth_file`.",
    );
    keys_of(r, Table::Image);
}

fn pods(r: &mut Roff) {
    section(r, "PODS");
    para(
        r,
        "`[pod.NAME]` creates the Podman pod `NAME` (`NAME.pod`, the unit \
         `NAME-pod.service`, Podman 5.0). Containers join it with `pod = \"NAME\"`: they \
         share its network namespace, so they reach each other on `localhost`, and its \
         published ports. A container in a pod has no `ports` or `networks` of its own.",
    );
    keys_of(r, Table::Pod);
    subsection(r, "Escape hatch");
    para(
        r,
        "For what no typed key says yet: `[container.NAME.quadlet]` (and \
         `[pod.NAME.quadlet]`, `[network.NAME.quadlet]`, `[volume.NAME.quadlet]`, \
         `[image.NAME.quadlet]`) take raw `[Container]` (`[Pod]`, `[Network]`, `[Volume]`, \
         `[Image]`) keys, `.unit`, `.service` \
         and `.install` raw `[Unit]`, `[Service]` and `[Install]` keys, each \
         `Key = \"value\"` or `Key = [\"value\", ...]` (one line per value). A Quadlet \
         key must be one the target Podman's Quadlet knows; a key a typed key renders \
         is refused with the typed key's name; the keys Quadlet and deploy-agent set \
         themselves (`ExecStart=`, `Type=`, `Description=`, ...) are refused. Values \
         are written as they are, as in a hand-written file (systemd specifiers and \
         `$` included), and still may not hold control characters; the generator's \
         dry run checks them before any reload.",
    );
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
        "`entrypoint`; `stop_timeout` as `StopTimeout=` (before: `--stop-timeout`); pods",
    );
    para(
        r,
        "Every other key that renders a Quadlet key needs the first Podman whose \
         Quadlet has that key; the key's entry above says which.",
    );
}

fn systemd_versions(r: &mut Roff) {
    section(r, "SYSTEMD VERSIONS");
    para(
        r,
        &format!(
            "`[Unit]`, `[Service]` and `[Install]` keys are systemd's, which ignores a key \
             it does not know. `plan`, `apply` and the daemon render for the systemd they \
             talk to (or `systemd_version` in agent.toml; `validate` and `render` check \
             these keys only with it) and refuse a spec that needs a newer one, naming the \
             key and both versions; so are the newer keys an escape hatch names. The \
             oldest supported systemd is {}; these keys need a newer one:",
            crate::render::SystemdVersion::OLDEST_SUPPORTED
        ),
    );
    for k in registry::KEYS {
        if let Some((section, q)) = k.quadlet.filter(|(s, _)| s.is_systemd()) {
            if let Some(n) = crate::render::systemd_keys::needs(section, q) {
                item(r, &n.to_string(), &format!("`{}` (`{q}=`)", k.name));
            }
        }
    }
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
    para(
        r,
        &format!(
            "Specifiers and variables on purpose: a host path (`volumes` source, \
             `env_files`, `devices`, a `mounts` `source=`) may start with one of {}, which \
             systemd replaces (the agent user's home, runtime, state, configuration, cache \
             and log directories, and its uid); any other `%` is written `%%`. `${{NAME}}` \
             is left to systemd's environment expansion in `command`, `env` values and \
             `podman_args` only for the names listed in `expand_env`; any other `$` is \
             written `$$`.",
            crate::spec::values::PATH_SPECIFIERS
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
}

/// The registry's keys of `table`, as the page documents them.
fn keys_of(r: &mut Roff, table: Table) {
    for k in registry::of(table) {
        key_item(r, k.name, k.kind, &doc_text(k));
    }
}

/// A key's documentation; for a generic key, with the key it renders.
pub(crate) fn doc_text(k: &registry::Key) -> String {
    match k.quadlet {
        Some((section, q)) if k.is_generic() => {
            let since = if section.is_systemd() {
                crate::render::systemd_keys::needs(section, q).map(|n| format!(" (systemd {n})"))
            } else {
                crate::render::quadlet_keys::since(section, q)
                    .map(|v| format!(" (Podman {}.{})", v.major, v.minor))
            };
            let since = since.unwrap_or_default();
            format!("{} Renders `{q}=` in `[{}]`{since}.", k.doc, section.name())
        }
        _ => k.doc.to_string(),
    }
}

/// The README's key reference: every key of every table, generated.
pub fn markdown_reference() -> String {
    let mut out = String::from("| table | key | type | meaning |\n|---|---|---|---|\n");
    for k in registry::KEYS {
        let table = match k.table {
            Table::Container => "container",
            Table::Resources => "container.resources",
            Table::Health => "container.health",
            Table::Secret => "container.secrets[]",
            Table::Network => "network",
            Table::Volume => "volume",
            Table::Pod => "pod",
            Table::Image => "image",
        };
        let text = doc_text(k).split_whitespace().collect::<Vec<_>>().join(" ");
        out.push_str(&format!(
            "| `{table}` | `{}` | {} | {} |\n",
            k.name,
            k.kind,
            text.replace('|', "\\|")
        ));
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse;
    use crate::spec::values::MOUNT_OPTIONS;

    /// Each table of the format: the page's subsection title and the registry's table.
    fn tables() -> [(&'static str, Table); 8] {
        [
            ("CONTAINERS", Table::Container),
            ("Resources", Table::Resources),
            ("Health checks", Table::Health),
            ("Secrets", Table::Secret),
            ("NETWORKS", Table::Network),
            ("VOLUMES", Table::Volume),
            ("PODS", Table::Pod),
            ("IMAGES", Table::Image),
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
    fn the_readme_carries_the_generated_key_reference() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let (begin, end) = ("<!-- keys:begin -->\n", "<!-- keys:end -->");
        let a = readme
            .find(begin)
            .expect("README.md has the keys:begin mark")
            + begin.len();
        let b = readme.find(end).expect("README.md has the keys:end mark");
        let want = markdown_reference();
        if std::env::var_os("UPDATE_README").is_some_and(|v| v == "1") {
            let text = format!("{}{want}{}", &readme[..a], &readme[b..]);
            std::fs::write(&path, text).unwrap();
            return;
        }
        assert_eq!(
            &readme[a..b],
            want,
            "README.md's key reference is stale (UPDATE_README=1 rewrites it)"
        );
    }

    /// The page and the README (generated from `doc_text`) say which keys
    /// need a newer systemd than the oldest supported, and which one.
    #[test]
    fn keys_needing_a_newer_systemd_say_so() {
        let page = page("deploy-agent 0", "2000-01-01").to_roff();
        let text = part(&page, "SYSTEMD VERSIONS");
        let mut n = 0;
        for k in registry::KEYS {
            let Some((section, q)) = k.quadlet.filter(|(s, _)| s.is_systemd()) else {
                continue;
            };
            let Some(v) = crate::render::systemd_keys::needs(section, q) else {
                assert!(!doc_text(k).contains("(systemd "), "{}", k.name);
                continue;
            };
            n += 1;
            assert!(
                doc_text(k).contains(&format!("(systemd {v})")),
                "{}",
                k.name
            );
            assert!(
                text.contains(&format!("\\fB{}\\fR", k.name)),
                "{}: {text}",
                k.name
            );
        }
        assert!(
            n >= 2,
            "restart_steps and restart_max_delay need systemd 254"
        );
    }

    #[test]
    fn the_page_lists_every_key_under_its_table() {
        let page = page("deploy-agent 0", "2000-01-01").to_roff();
        for (heading, table) in tables() {
            let text = part(&page, heading);
            for key in registry::names(table) {
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
