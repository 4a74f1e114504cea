//! "Never writes a key that version lacks" (README "Supported Podman
//! versions"), checked against Podman's own documentation rather than the
//! renderer's table: `tests/fixtures/quadlet-keys-podman-*.txt` list the
//! keys podman-systemd.unit(5) documents for each section at a release tag:
//! every version the gate table names (4.4: the first Quadlet, 4.5 ... 4.8,
//! 5.0, 5.5: the newest the renderer knows) and the one before each (4.9: the
//! oldest the packages support; 5.4: the end-to-end tests'), so each gate's
//! version is pinned from both sides.
//!
//! For each of those versions, the senex reference stack and a set of specs
//! that uses every gated feature are rendered: every key of every
//! `[Container]`, `[Network]` and `[Volume]` section must be documented for
//! that version; a spec refused for the version must be refused for a key
//! that version does not document, and every spec whose keys it does
//! document must render (the gates are neither too loose nor too strict).
//! The gate table itself (`render::since`) is checked against the same lists.
//!
//! What this cannot check: the `[Unit]`/`[Service]`/`[Install]` keys
//! (systemd's, not Quadlet's), the meaning of a value (`User=` taken as a
//! name only from 4.8, `since::USER_NAME`: the documentation says "numeric
//! UID" throughout; src/render/tests.rs checks the gate against the table),
//! and what a real Podman 4.9 generator makes of the files (no such
//! generator here; tests/render_quadlet.rs runs the installed one, 5.4 in
//! the test environment). A key Podman accepts but does not document would
//! be reported as missing: the lists are the documentation, not the code.

use std::collections::BTreeSet;
use std::path::PathBuf;

use deploy_agent::render::{render, since, PodmanVersion, RenderError, RenderOptions, Rendering};
use deploy_agent::spec::SpecSet;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The versions with a documented key list, and the list's file.
const DOCUMENTED: &[(PodmanVersion, &str)] = &[
    (PodmanVersion::new(4, 4, 0), "quadlet-keys-podman-4.4.txt"),
    (PodmanVersion::new(4, 5, 0), "quadlet-keys-podman-4.5.txt"),
    (PodmanVersion::new(4, 6, 0), "quadlet-keys-podman-4.6.txt"),
    (PodmanVersion::new(4, 7, 0), "quadlet-keys-podman-4.7.txt"),
    (PodmanVersion::new(4, 8, 0), "quadlet-keys-podman-4.8.txt"),
    (PodmanVersion::new(4, 9, 0), "quadlet-keys-podman-4.9.txt"),
    (PodmanVersion::new(5, 0, 0), "quadlet-keys-podman-5.0.txt"),
    (PodmanVersion::new(5, 4, 0), "quadlet-keys-podman-5.4.txt"),
    (PodmanVersion::new(5, 5, 0), "quadlet-keys-podman-5.5.txt"),
];

/// The renderer's key gates: (section, key, first Podman the renderer writes it for).
const GATES: &[(&str, &str, PodmanVersion)] = &[
    ("Container", "HealthCmd", since::HEALTH),
    ("Container", "HealthInterval", since::HEALTH),
    ("Container", "HealthTimeout", since::HEALTH),
    ("Container", "HealthRetries", since::HEALTH),
    ("Container", "HealthStartPeriod", since::HEALTH),
    ("Container", "Secret", since::SECRET),
    ("Container", "AutoUpdate", since::AUTO_UPDATE),
    ("Container", "Pull", since::PULL),
    ("Container", "WorkingDir", since::WORKING_DIR),
    ("Network", "NetworkName", since::NETWORK_NAME),
    ("Volume", "VolumeName", since::VOLUME_NAME),
    ("Container", "PidsLimit", since::PIDS_LIMIT),
    ("Volume", "Driver", since::VOLUME_DRIVER),
    ("Container", "Entrypoint", since::ENTRYPOINT),
    ("Container", "StopTimeout", since::STOP_TIMEOUT),
    ("Container", "Memory", since::MEMORY),
    ("Image", "Image", since::IMAGE),
];

type Keys = BTreeSet<(String, String)>;

fn documented(file: &str) -> Keys {
    let path = PathBuf::from(FIXTURES).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let keys: Keys = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (s, k) = l
                .split_once(' ')
                .unwrap_or_else(|| panic!("{file}: not `Section Key`: {l:?}"));
            (s.to_string(), k.to_string())
        })
        .collect();
    assert!(keys.len() > 40, "{file}: {} keys", keys.len());
    keys
}

fn has(doc: &Keys, section: &str, key: &str) -> bool {
    doc.contains(&(section.to_string(), key.to_string()))
}

/// The Quadlet section of a rendered file, by its extension.
fn quadlet_section(file: &str) -> &'static str {
    match file.rsplit('.').next() {
        Some("container") => "Container",
        Some("network") => "Network",
        Some("volume") => "Volume",
        _ => panic!("unexpected rendered file {file}"),
    }
}

/// The keys of the Quadlet section of a rendered file; panics on a section
/// that is neither systemd's own nor the file's Quadlet section.
fn quadlet_keys(file: &str, text: &str) -> Vec<(String, String)> {
    let own = quadlet_section(file);
    let mut section = String::new();
    let mut keys = Vec::new();
    let mut seen_own = false;
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            assert!(
                ["Unit", "Service", "Install", own].contains(&s),
                "{file}: unexpected section [{s}]"
            );
            seen_own |= s == own;
            section = s.to_string();
            continue;
        }
        let (key, _) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{file}: not a key=value line: {line:?}"));
        if section == own {
            keys.push((section.clone(), key.to_string()));
        }
    }
    assert!(seen_own, "{file}: no [{own}] section");
    keys
}

/// A refused unit and the (section, key) it was refused for.
type Refusal = (String, &'static str, &'static str);

/// Renders `set` for `v`, dropping each unit the renderer refuses until the
/// rest renders. Returns the rendering and the refusals.
fn render_dropping_refused(mut set: SpecSet, v: PodmanVersion) -> (Rendering, Vec<Refusal>) {
    let opts = RenderOptions {
        podman: v,
        pull_default: None,
        ..Default::default()
    };
    let mut refused = Vec::new();
    loop {
        match render(&set, &opts) {
            Ok(r) => return (r, refused),
            Err(RenderError::Unsupported {
                unit,
                key,
                needs,
                have,
                ..
            }) => {
                assert_eq!(have, v);
                assert!(needs > v, "{unit}: refused {key} for {v}, needing {needs}");
                let (gone, section) = if let Some(n) = unit.strip_suffix("-network.service") {
                    (set.networks.remove(n).is_some(), "Network")
                } else if let Some(n) = unit.strip_suffix("-volume.service") {
                    (set.volumes.remove(n).is_some(), "Volume")
                } else {
                    let n = unit.strip_suffix(".service").unwrap();
                    (set.containers.remove(n).is_some(), "Container")
                };
                assert!(gone, "refused unit {unit} is in the set");
                refused.push((unit, section, key));
            }
            Err(e) => panic!("rendering for Podman {v}: {e}"),
        }
    }
}

/// Every Quadlet key of `r` is documented in `doc`, and no key the gate
/// table puts after `v` is there.
fn assert_documented(r: &Rendering, v: PodmanVersion, doc: &Keys, what: &str) {
    for (file, f) in r {
        for (section, key) in quadlet_keys(file, &f.contents) {
            assert!(
                has(doc, &section, &key),
                "{what}: {file} has [{section}] {key}= but Podman {v}'s documentation has no such key:\n{}",
                f.contents
            );
            for (gs, gk, needs) in GATES {
                assert!(
                    !(section == *gs && key == *gk && *needs > v),
                    "{what}: {file} has [{section}] {key}=, which the gate table says needs Podman {needs}, for Podman {v}"
                );
            }
        }
    }
}

/// One spec per gated feature (each its own unit, so that a refusal drops
/// only that feature), and a base container with every ungated key.
const FEATURES: &str = r#"
[network.net]
subnet = "172.20.0.0/16"
gateway = "172.20.0.1"
internal = true
ipv6 = true
driver = "bridge"
labels = { team = "ops" }

[volume.plain]
labels = { backup = "daily" }

[volume.drv]
driver = "local"

[container.base]
image = "registry.example.com/app:1.2.3"
command = ["app", "--port", "8000"]
networks = ["net"]
ports = ["127.0.0.1:8000:8000", "53:5353/udp"]
volumes = ["plain:/data:Z", "/etc/app/app.conf:/app.conf:ro"]
env = { A = "1" }
env_files = ["/etc/app/.env"]
labels = { team = "trading" }
user = "1000:1000"
read_only = true
init = true
restart = "always"
start_timeout = "120s"
requires = ["health"]
after = ["secret"]
wants = ["pull"]
[container.base.resources]
memory_reservation = "100M"
cpus = 0.5
[container.base.health]
http = "http://127.0.0.1:8000/"

[container.health]
image = "x"
[container.health.health]
cmd = ["pg_isready"]
start_period = "30s"

[container.secret]
image = "x"
secrets = [{ name = "db_password", type = "env", target = "DB_PASSWORD" }]

[container.pull]
image = "x"
pull = "newer"

[container.autoupdate]
image = "x"
auto_update = "registry"

[container.workdir]
image = "x"
workdir = "/app"

[container.pids]
image = "x"
[container.pids.resources]
pids = 512

[container.entrypoint]
image = "x"
entrypoint = ["/usr/bin/tini", "--"]

[container.stop]
image = "x"
stop_timeout = "90s"

[container.memory]
image = "x"
[container.memory.resources]
memory = "64M"
"#;

/// The Quadlet keys each unit of FEATURES must carry: it renders (with all
/// of them) iff the target's documentation has all of them, else it is
/// refused for one of those it lacks.
const NEEDS: &[(&str, &[(&str, &str)])] = &[
    (
        "net-network.service",
        &[
            ("Network", "NetworkName"),
            ("Network", "Driver"),
            ("Network", "Subnet"),
            ("Network", "Gateway"),
            ("Network", "Internal"),
            ("Network", "IPv6"),
            ("Network", "Label"),
        ],
    ),
    (
        "plain-volume.service",
        &[("Volume", "VolumeName"), ("Volume", "Label")],
    ),
    (
        "drv-volume.service",
        &[("Volume", "VolumeName"), ("Volume", "Driver")],
    ),
    (
        "base.service",
        &[
            ("Container", "ContainerName"),
            ("Container", "Image"),
            ("Container", "Exec"),
            // (Group= too, before 4.8: User=1000:1000 is split there.)
            ("Container", "User"),
            ("Container", "ReadOnly"),
            ("Container", "RunInit"),
            ("Container", "Network"),
            ("Container", "PublishPort"),
            ("Container", "Volume"),
            ("Container", "Environment"),
            ("Container", "EnvironmentFile"),
            ("Container", "Label"),
        ],
    ),
    (
        "health.service",
        &[
            ("Container", "HealthCmd"),
            ("Container", "HealthInterval"),
            ("Container", "HealthTimeout"),
            ("Container", "HealthRetries"),
            ("Container", "HealthStartPeriod"),
        ],
    ),
    ("secret.service", &[("Container", "Secret")]),
    ("pull.service", &[("Container", "Pull")]),
    ("autoupdate.service", &[("Container", "AutoUpdate")]),
    ("workdir.service", &[("Container", "WorkingDir")]),
    ("pids.service", &[("Container", "PidsLimit")]),
    ("entrypoint.service", &[("Container", "Entrypoint")]),
    // Optional keys, checked below: another way (PodmanArgs=) or none
    // (MemoryMax= alone) where the target lacks them.
    ("stop.service", &[]),
    ("memory.service", &[]),
];

fn features() -> SpecSet {
    deploy_agent::spec::load_texts(&[(PathBuf::from("/specs/features.toml"), FEATURES.into())])
        .unwrap_or_else(|e| panic!("the feature specs load: {e}"))
}

fn senex() -> SpecSet {
    deploy_agent::spec::load_dir(&PathBuf::from(FIXTURES).join("senex"))
        .unwrap_or_else(|e| panic!("the senex specs load: {e}"))
}

#[test]
fn the_gate_table_agrees_with_podmans_documentation() {
    for (v, file) in DOCUMENTED {
        let doc = documented(file);
        for (section, key, needs) in GATES {
            assert_eq!(
                has(&doc, section, key),
                v >= needs,
                "[{section}] {key}=: the gate says Podman {needs}; Podman {v}'s documentation ({file}) {} it",
                if has(&doc, section, key) { "has" } else { "lacks" }
            );
        }
    }
}

#[test]
fn senex_renders_only_documented_keys() {
    for (v, file) in DOCUMENTED {
        let doc = documented(file);
        let (r, refused) = render_dropping_refused(senex(), *v);
        for (unit, section, key) in &refused {
            assert!(
                !has(&doc, section, key),
                "senex: {unit} refused for Podman {v} for [{section}] {key}=, which its documentation has"
            );
        }
        if *v >= PodmanVersion::new(4, 9, 0) {
            assert!(
                refused.is_empty(),
                "senex renders whole for Podman {v}: {refused:?}"
            );
            assert_eq!(r.len(), 8);
        }
        assert_documented(&r, *v, &doc, "senex");
    }
}

#[test]
fn every_gated_feature_renders_only_documented_keys() {
    for (v, file) in DOCUMENTED {
        let doc = documented(file);
        let set = features();
        let units: BTreeSet<String> = set
            .containers
            .keys()
            .map(|c| format!("{c}.service"))
            .chain(set.networks.keys().map(|n| format!("{n}-network.service")))
            .chain(set.volumes.keys().map(|n| format!("{n}-volume.service")))
            .collect();
        let listed: BTreeSet<String> = NEEDS.iter().map(|(u, _)| u.to_string()).collect();
        assert_eq!(units, listed, "every unit has its NEEDS entry");
        let (r, refused) = render_dropping_refused(set, *v);
        assert_documented(&r, *v, &doc, "features");

        for (unit, needs) in NEEDS {
            let lacking: Vec<(&str, &str)> = needs
                .iter()
                .filter(|(s, k)| !has(&doc, s, k))
                .copied()
                .collect();
            let refusal = refused.iter().find(|(u, _, _)| u == unit);
            match refusal {
                Some((_, section, key)) => assert!(
                    lacking.contains(&(*section, *key)),
                    "{unit} refused for Podman {v} for [{section}] {key}=, which its documentation has"
                ),
                None => assert!(
                    lacking.is_empty(),
                    "{unit} rendered for Podman {v}, which lacks {lacking:?}"
                ),
            }
            // A unit that rendered carries the keys it needs: the spec
            // really exercises the gate.
            if refusal.is_none() {
                let file = r
                    .iter()
                    .find(|(_, f)| f.unit == *unit)
                    .map(|(name, f)| (name, &f.contents))
                    .unwrap_or_else(|| panic!("{unit} rendered"));
                let keys = quadlet_keys(file.0, file.1);
                for (s, k) in needs.iter() {
                    assert!(
                        keys.contains(&(s.to_string(), k.to_string())),
                        "{unit} for Podman {v} lacks {k}=:\n{}",
                        file.1
                    );
                }
            }
        }

        // The optional keys: written where documented, else the fallback.
        let stop = &r["stop.container"].contents;
        if has(&doc, "Container", "StopTimeout") {
            assert!(stop.contains("\nStopTimeout=90\n"), "{v}: {stop}");
        } else {
            assert!(
                stop.contains("\nPodmanArgs=\"--stop-timeout=90\"\n"),
                "{v}: {stop}"
            );
        }
        let memory = &r["memory.container"].contents;
        assert!(memory.contains("\nMemoryMax=64M\n"), "{v}: {memory}");
        assert_eq!(
            memory.contains("\nMemory=64M\n"),
            has(&doc, "Container", "Memory"),
            "{v}: {memory}"
        );
    }
}

/// The real binary renders for agent.toml's `podman_version`: a spec that
/// needs a newer Podman is exit 2 with the key, the feature and both
/// versions; the same spec passes for a Podman that has the key.
#[test]
fn validate_renders_for_the_podman_version_of_agent_toml() {
    let d = tempfile::tempdir().unwrap();
    let specs = d.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    std::fs::write(
        specs.join("web.toml"),
        "[container.web]\nimage = \"x\"\nentrypoint = [\"/e\"]\n",
    )
    .unwrap();
    let validate = |version: &str| {
        let config = d.path().join("agent.toml");
        std::fs::write(
            &config,
            format!("[agent]\npodman_version = \"{version}\"\n"),
        )
        .unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_deploy-agent"))
            .env_remove("DEPLOY_AGENT_CONFIG")
            .env_remove("DEPLOY_AGENT_SPECS")
            .arg("validate")
            .arg("--config")
            .arg(&config)
            .arg("--specs")
            .arg(&specs)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, err) = validate("4.9");
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        err.contains("web.service: entrypoint needs Quadlet's Entrypoint= (Podman 5.0.0 or newer), but the target is Podman 4.9.0"),
        "{err}"
    );
    let (code, out, err) = validate("5.0");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.trim_end().ends_with("(Podman 5.0.0)"), "{out}");
}
