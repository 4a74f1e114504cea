//! End to end: `apply --wait --json` (issue 13 item 3), the command scripts
//! and fleet tools call: it returns when every unit it started is healthy
//! (without a check: active for 3 s) or has failed, rolling back what fails
//! with `on_failure = "rollback"`; exit 0 only if all settled well; one
//! result document, valid against `tests/fixtures/apply-result.schema.json`,
//! that says `changed: false` on a second run.

mod support;

#[path = "support/schema.rs"]
mod schema;

use std::time::Duration;

use support::{serial, stderr, stdout, web_spec, Workspace};

fn result(ws: &Workspace, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut all = vec!["apply", "--json"];
    all.extend_from_slice(args);
    let out = ws.agent(&all);
    let text = stdout(&out);
    let doc: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}\n{}", stderr(&out)));
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/apply-result.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let v = schema::violations(&schema, &doc);
    assert!(v.is_empty(), "{v:?} in {doc}");
    (out.status.code(), doc)
}

fn unit<'d>(doc: &'d serde_json::Value, name: &str) -> &'d serde_json::Value {
    doc["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["unit"] == name)
        .unwrap_or_else(|| panic!("{name} not in {doc}"))
}

fn health(path: &str) -> String {
    format!(
        "[container.e2e-aw.health]\nhttp = \"http://127.0.0.1:18210/{path}\"\ninterval = \"1s\"\ntimeout = \"1s\"\nretries = 2\nstart_period = \"2s\"\non_failure = \"rollback\"\n"
    )
}

#[test]
fn apply_wait_json_settles_reports_and_rolls_back() {
    let _g = serial();
    let ws = Workspace::new("applywait");
    let spec = |body: &str, path: &str| {
        format!(
            "{}\n{}",
            web_spec("e2e-aw", 18210, &format!("echo {body}"), ""),
            health(path)
        )
    };

    // A good change: healthy, exit 0, changed; again: not changed.
    ws.spec("10-aw.toml", &spec("v1", "health"));
    let (code, doc) = result(&ws, &["--wait=60s"]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(
        (doc["changed"].clone(), doc["ok"].clone()),
        (true.into(), true.into()),
        "{doc}"
    );
    let u = unit(&doc, "e2e-aw.service");
    assert_eq!(u["settled"], "healthy", "{doc}");
    assert_eq!(u["health"], "healthy", "{doc}");
    let started = ws
        .env
        .unit_prop("e2e-aw.service", "ActiveEnterTimestampMonotonic");
    let (code, doc) = result(&ws, &["--wait=60s"]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(doc["changed"], false, "idempotent: {doc}");
    assert!(doc["units"].as_array().unwrap().is_empty(), "{doc}");
    assert_eq!(
        ws.env
            .unit_prop("e2e-aw.service", "ActiveEnterTimestampMonotonic"),
        started,
        "the second apply touches no unit"
    );

    // A change whose check fails: unhealthy, rolled back to v1, exit 1.
    ws.spec("10-aw.toml", &spec("v2", "missing"));
    let (code, doc) = result(&ws, &["--wait=60s"]);
    assert_eq!(code, Some(1), "{doc}");
    let u = unit(&doc, "e2e-aw.service");
    assert_eq!(u["settled"], "unhealthy", "{doc}");
    assert_eq!(u["rolled_back_to"], 1, "{doc}");
    assert!(u["detail"].as_str().unwrap().contains("HTTP 404"), "{doc}");
    ws.env.wait_for("v1 back", Duration::from_secs(30), || {
        ws.curl(18210).as_deref() == Some("v1")
    });
}

/// The claim plain `apply` cannot keep (its start job succeeds): a container
/// that exits at once with an error makes `apply --wait` exit 1, naming it.
#[test]
fn apply_wait_fails_a_container_that_dies_right_after_its_start() {
    let _g = serial();
    let ws = Workspace::new("applywaitdie");
    ws.spec("10-ok.toml", &web_spec("e2e-awd-ok", 18211, "echo ok", ""));
    ws.spec(
        "20-die.toml",
        "[container.e2e-awd-die]\nimage = \"localhost/busybox:latest\"\npull = \"never\"\nrestart = \"no\"\ncommand = [\"sh\", \"-c\", \"sleep 1; echo broken >&2; exit 3\"]\n",
    );
    let (code, doc) = result(&ws, &["--wait=60s"]);
    assert_eq!(code, Some(1), "{doc}");
    assert_eq!(
        unit(&doc, "e2e-awd-die.service")["settled"],
        "stopped",
        "{doc}"
    );
    assert_eq!(
        unit(&doc, "e2e-awd-ok.service")["settled"],
        "active",
        "{doc}"
    );
    assert!(
        doc["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["message"].as_str())
            .any(|m| m.starts_with("e2e-awd-die.service: the unit stopped")
                && m.contains("exit status 3")),
        "{doc}"
    );
    let _ = ws
        .env
        .user(&["systemctl", "--user", "reset-failed", "e2e-awd-die.service"]);
}
