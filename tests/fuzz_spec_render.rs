//! Property-based fuzzing of spec parsing + validation + rendering
//! (proptest; cargo-fuzz needs a nightly toolchain this project does not
//! have). Hostile strings — newlines, NUL, `%`, quotes, backslashes,
//! brackets, Unicode tricks — go into every string-valued key. Properties:
//! nothing panics, and every file that renders re-parses as a unit file
//! with exactly the sections and keys the renderer may write: no value can
//! add a line, a key or a section. Failing cases are kept in
//! `tests/fuzz_spec_render.proptest-regressions` and re-run first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use deploy_agent::render::{render, PodmanVersion, RenderOptions};
use deploy_agent::spec::load_texts;
use proptest::prelude::*;

/// Sections and keys each kind of file may contain.
fn allowed(ext: &str) -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let unit = (
        "Unit",
        BTreeSet::from(["Description", "Requires", "Wants", "After"]),
    );
    let mut m = BTreeMap::from([unit]);
    match ext {
        "container" => {
            m.insert(
                "Container",
                BTreeSet::from([
                    "ContainerName",
                    "Image",
                    "Pull",
                    "AutoUpdate",
                    "Entrypoint",
                    "Exec",
                    "User",
                    "Group",
                    "WorkingDir",
                    "ReadOnly",
                    "Network",
                    "PublishPort",
                    "Volume",
                    "Environment",
                    "EnvironmentFile",
                    "Secret",
                    "Label",
                    "HealthCmd",
                    "HealthInterval",
                    "HealthTimeout",
                    "HealthRetries",
                    "HealthStartPeriod",
                    "PidsLimit",
                    "StopTimeout",
                    "PodmanArgs",
                    "RunInit",
                    "Memory",
                ]),
            );
            m.insert(
                "Service",
                BTreeSet::from([
                    "Restart",
                    "SuccessExitStatus",
                    "TimeoutStartSec",
                    "TimeoutStopSec",
                    "MemoryMax",
                    "MemoryLow",
                    "CPUQuota",
                ]),
            );
            m.insert("Install", BTreeSet::from(["WantedBy"]));
        }
        "network" => {
            m.insert(
                "Network",
                BTreeSet::from([
                    "NetworkName",
                    "Driver",
                    "Subnet",
                    "Gateway",
                    "Internal",
                    "IPv6",
                    "Label",
                ]),
            );
        }
        "volume" => {
            m.insert("Volume", BTreeSet::from(["VolumeName", "Driver", "Label"]));
        }
        other => panic!("unexpected file kind {other}"),
    }
    m
}

/// A strict reading of a unit file: every line is a comment, blank, a known
/// section header or `Key=value` with a known key; no continuation lines.
fn check_unit_file(name: &str, text: &str) -> Result<(), String> {
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let allowed = allowed(ext);
    let mut section: Option<&str> = None;
    let mut seen_sections = BTreeSet::new();
    for (i, line) in text.split('\n').enumerate() {
        let at = || format!("{name}:{}: {line:?}", i + 1);
        if line.contains('\r') || line.contains('\0') {
            return Err(format!("raw CR/NUL at {}", at()));
        }
        if line.ends_with('\\') {
            return Err(format!("continuation line at {}", at()));
        }
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let Some((k, _)) = allowed.get_key_value(s) else {
                return Err(format!("unexpected section at {}", at()));
            };
            if !seen_sections.insert(*k) {
                return Err(format!("section repeated at {}", at()));
            }
            section = Some(k);
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            return Err(format!("not a key=value line at {}", at()));
        };
        let Some(sec) = section else {
            return Err(format!("key outside a section at {}", at()));
        };
        if !allowed[sec].contains(key) {
            return Err(format!("unexpected key in [{sec}] at {}", at()));
        }
    }
    Ok(())
}

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        // Plain-looking values that must render.
        "[a-zA-Z0-9 ._/:=-]{0,20}",
        // Everything unit files care about.
        proptest::collection::vec(
            prop_oneof![
                Just("\n".to_string()),
                Just("\r".to_string()),
                Just("\0".to_string()),
                Just("%".to_string()),
                Just("%h".to_string()),
                Just("\"".to_string()),
                Just("'".to_string()),
                Just("\\".to_string()),
                Just("\\\n".to_string()),
                Just("[Service]".to_string()),
                Just("ExecStartPre=/bin/sh".to_string()),
                Just("$HOME".to_string()),
                Just("${X}".to_string()),
                Just(" ".to_string()),
                Just("\t".to_string()),
                Just("\u{202E}".to_string()),
                Just("\u{200B}".to_string()),
                Just("é".to_string()),
                Just(";".to_string()),
                Just("#".to_string()),
                "[a-z]{1,5}",
            ],
            0..8
        )
        .prop_map(|v| v.concat()),
        any::<String>(),
    ]
}

/// A TOML string literal for any Rust string (TOML basic string escaping).
fn toml_str(s: &str) -> String {
    toml_edit::Value::from(s).to_string().trim().to_string()
}

#[derive(Debug, Clone)]
struct Values {
    image: String,
    cmd: Vec<String>,
    env_val: String,
    label_val: String,
    user: String,
    workdir: String,
    health_cmd: Vec<String>,
    net_label: String,
    vol_label: String,
    port: String,
    volume: String,
    secret_target: String,
}

fn values() -> impl Strategy<Value = Values> {
    (
        (
            hostile_string(),
            proptest::collection::vec(hostile_string(), 1..4),
            hostile_string(),
            hostile_string(),
        ),
        (
            hostile_string(),
            hostile_string(),
            proptest::collection::vec(hostile_string(), 1..3),
        ),
        (hostile_string(), hostile_string()),
        (hostile_string(), hostile_string(), hostile_string()),
    )
        .prop_map(
            |(
                (image, cmd, env_val, label_val),
                (user, workdir, health_cmd),
                (net_label, vol_label),
                (port, volume, secret_target),
            )| Values {
                image,
                cmd,
                env_val,
                label_val,
                user,
                workdir: format!("/{workdir}"),
                health_cmd,
                net_label,
                vol_label,
                port,
                volume,
                secret_target,
            },
        )
}

fn spec_text(v: &Values) -> String {
    let arr = |xs: &[String]| {
        format!(
            "[{}]",
            xs.iter()
                .map(|x| toml_str(x))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "[network.fz_net]\nlabels = {{ l = {nl} }}\n[volume.fz_vol]\nlabels = {{ l = {vl} }}\n\
         [container.fz]\nimage = {image}\ncommand = {cmd}\nenv = {{ A = {env} }}\nlabels = {{ \"k\" = {label} }}\n\
         user = {user}\nworkdir = {workdir}\nnetworks = [\"fz_net\"]\nvolumes = [\"fz_vol:/data\", {volume}]\nports = [{port}]\n\
         secrets = [{{ name = \"s\", type = \"mount\", target = {target} }}]\n\
         [container.fz.health]\ncmd = {hc}\n",
        nl = toml_str(&v.net_label),
        vl = toml_str(&v.vol_label),
        image = toml_str(&v.image),
        cmd = arr(&v.cmd),
        env = toml_str(&v.env_val),
        label = toml_str(&v.label_val),
        user = toml_str(&v.user),
        workdir = toml_str(&v.workdir),
        volume = toml_str(&v.volume),
        port = toml_str(&v.port),
        target = toml_str(&v.secret_target),
        hc = arr(&v.health_cmd),
    )
}

fn run_case(file: &str, text: &str) -> Result<(), TestCaseError> {
    let specs = vec![(PathBuf::from(file), text.to_string())];
    let Ok(set) = load_texts(&specs) else {
        return Ok(()); // rejected with errors (and no panic): fine
    };
    for v in ["4.4", "4.9", "5.4"] {
        let opts = RenderOptions {
            podman: PodmanVersion::parse(v).unwrap(),
            ..Default::default()
        };
        if let Ok(files) = render(&set, &opts) {
            for (name, f) in files {
                check_unit_file(&name, &f.contents).map_err(TestCaseError::fail)?;
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512),
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn hostile_values_never_inject_unit_syntax(v in values(), file in "[a-z%\n ]{1,8}") {
        let file = format!("/etc/deploy-agent/specs/{file}.toml");
        run_case(&file, &spec_text(&v))?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = load_texts(&[(PathBuf::from("a.toml"), text)]);
    }

    #[test]
    fn mutated_reference_specs_never_panic(cut in 0usize..4000, insert in hostile_string()) {
        let base: String = ["00-network", "10-postgres", "20-redis", "30-django", "40-celery"]
            .iter()
            .map(|f| std::fs::read_to_string(format!("{}/tests/fixtures/senex/{f}.toml", env!("CARGO_MANIFEST_DIR"))).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let mut cut = cut.min(base.len());
        while !base.is_char_boundary(cut) {
            cut -= 1;
        }
        let text = format!("{}{}{}", &base[..cut], insert, &base[cut..]);
        run_case("senex.toml", &text)?;
    }
}

#[test]
fn the_checker_catches_an_injected_key() {
    let bad = "[Container]\nImage=x\nExecStartPre=/bin/evil\n";
    assert!(check_unit_file("a.container", bad).is_err());
    assert!(check_unit_file("a.container", "[Container]\nImage=x \\\n").is_err());
    assert!(check_unit_file("a.container", "[Service]\n[Service]\n").is_err());
    assert!(check_unit_file("a.container", "[Container]\nImage=x\n").is_ok());
}
