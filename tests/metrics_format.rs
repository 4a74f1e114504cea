//! The metrics file (`metrics_file` in agent.toml) read back by a real
//! Prometheus text-format parser: Python's prometheus_client (Debian
//! `python3-prometheus-client`, installed by `tests/env/testenv install`).
//! The file is what the daemon writes, built here through the same library
//! calls the daemon makes; no systemd needed.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use deploy_agent::metrics::Metrics;

/// Parses `path` with prometheus_client and prints `name{labels} value`
/// per sample, sorted; fails on anything the parser rejects.
const PARSE: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
out = []
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        out.append(f"{fam.type} {s.name}{{{labels}}} {s.value:g}")
print("\n".join(sorted(out)))
"#;

fn parse(path: &std::path::Path) -> Result<String, String> {
    // Debian's python3, where python3-prometheus-client installs.
    let o = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(PARSE)
        .arg(path)
        .output()
        .map_err(|e| format!("/usr/bin/python3: {e} (run tests/env/testenv install)"))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

#[test]
fn the_metrics_file_parses_as_prometheus_text_with_every_family() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("deploy_agent.prom");
    let mut m = Metrics::new(Some(path.clone()), Some(6));
    m.set_units(&[
        "web.service".into(),
        "db.service".into(),
        "odd\"name.service".into(),
    ]);
    m.unit_state("web.service", "active");
    m.unit_state("db.service", "failed");
    m.set_health(BTreeMap::from([
        ("web.service".into(), "healthy"),
        ("odd\"name.service".into(), "unhealthy"),
    ]));
    m.applied(true, Duration::from_millis(2250));
    m.applied(false, Duration::from_millis(800));
    m.generation(7);
    m.rolled_back();
    m.write().unwrap();
    let samples = parse(&path).unwrap_or_else(|e| panic!("the parser rejects the file: {e}"));
    for want in [
        "gauge deploy_agent_units{state=\"active\"} 1",
        "gauge deploy_agent_units{state=\"failed\"} 1",
        "gauge deploy_agent_units{state=\"inactive\"} 0",
        "gauge deploy_agent_unit_health{state=\"healthy\",unit=\"web.service\"} 1",
        "gauge deploy_agent_unit_health{state=\"unhealthy\",unit=\"odd\"name.service\"} 1",
        "gauge deploy_agent_unit_health{state=\"healthy\",unit=\"odd\"name.service\"} 0",
        "gauge deploy_agent_generation{} 7",
        "gauge deploy_agent_last_apply_success{} 0",
        "gauge deploy_agent_last_apply_duration_seconds{} 0.8",
        "counter deploy_agent_applies_total{result=\"ok\"} 1",
        "counter deploy_agent_applies_total{result=\"failed\"} 1",
        "counter deploy_agent_rollbacks_total{} 1",
    ] {
        assert!(
            samples.lines().any(|l| l == want),
            "{want} not in:\n{samples}"
        );
    }
    assert!(
        samples.contains("gauge deploy_agent_last_apply_timestamp_seconds{} "),
        "{samples}"
    );
}

/// The parser is strict enough to catch a broken file (so the test above can fail).
#[test]
fn the_parser_rejects_a_broken_file() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("bad.prom");
    std::fs::write(&path, "deploy_agent_units{state=\"active} 1\n").unwrap();
    assert!(parse(&path).is_err());
}
