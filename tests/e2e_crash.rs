//! Crash safety with real parts: the agent SIGKILLs itself at a failpoint
//! during a real apply (feature `failpoints`), then a normal apply must
//! converge — no half-written file, no orphaned unit, and no unit restarted
//! that did not need it.
#![cfg(feature = "failpoints")]

mod support;

use std::time::Duration;

use support::{serial, stderr, stdout, web_spec, Workspace};

const FAILPOINTS: &[&str] = &[
    "write-before-rename",
    "after-write",
    "before-reload",
    "after-reload",
    "before-clear",
    "after-jobs",
    "before-inputs-save",
    "before-history-finish",
];

/// Failpoints after every job finished and the pending record was cleared:
/// the next apply has nothing left to do.
const AFTER_THE_JOBS: &[&str] = &["after-jobs", "before-inputs-save", "before-history-finish"];

fn crash_then_converge(i: usize, failpoint: &str) {
    let ws = Workspace::new(&format!("crash{i}"));
    let (a, b, c) = (
        format!("e2e-cr{i}-a"),
        format!("e2e-cr{i}-b"),
        format!("e2e-cr{i}-c"),
    );
    let port = 18250 + 3 * i as u16;
    ws.spec("10-a.toml", &web_spec(&a, port, "echo a1", ""));
    ws.spec("20-b.toml", &web_spec(&b, port + 1, "echo b1", ""));
    ws.spec("30-c.toml", &web_spec(&c, port + 2, "echo c1", ""));
    ws.agent_ok(&["apply"]);
    let b_pid = ws.env.unit_prop(&format!("{b}.service"), "MainPID");

    // Change a, remove c, and die at the failpoint.
    ws.spec("10-a.toml", &web_spec(&a, port, "echo a2", ""));
    ws.remove_spec("30-c.toml");
    let mut args: Vec<String> = vec![
        "env".into(),
        format!("DEPLOY_AGENT_FAILPOINT={failpoint}"),
        Workspace::bin().into(),
        "apply".into(),
    ];
    for (flag, path) in [
        ("--config", &ws.config),
        ("--specs", &ws.specs),
        ("--output-dir", &ws.output),
        ("--state-dir", &ws.state),
    ] {
        args.push(flag.into());
        args.push(path.to_string_lossy().into_owned());
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ws.env.user(&argv);
    assert!(
        stderr(&out).contains(&format!("failpoint {failpoint}")),
        "{failpoint}: the agent died there: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(!out.status.success());

    // A normal apply finishes the job.
    let a_before = ws.env.unit_prop(&format!("{a}.service"), "MainPID");
    let out = ws.agent_ok(&["apply"]);
    if AFTER_THE_JOBS.contains(&failpoint) {
        assert_eq!(
            out.trim(),
            "No changes.",
            "{failpoint}: everything was done before the crash"
        );
        assert_eq!(
            ws.env.unit_prop(&format!("{a}.service"), "MainPID"),
            a_before,
            "{failpoint}: a not restarted twice"
        );
    }
    ws.env.wait_for(
        &format!("{failpoint}: a on its new version"),
        Duration::from_secs(20),
        || ws.curl(port).as_deref() == Some("a2"),
    );
    assert_eq!(
        ws.env.unit_prop(&format!("{c}.service"), "ActiveState"),
        "inactive",
        "{failpoint}: no orphaned unit"
    );
    assert!(
        !ws.output.join(format!("{c}.container")).exists(),
        "{failpoint}: c's file removed"
    );
    let names: Vec<String> = std::fs::read_dir(&ws.output)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with('.')),
        "{failpoint}: no temp file left: {names:?}"
    );
    for n in &names {
        let text = std::fs::read_to_string(ws.output.join(n)).unwrap();
        assert!(
            text.ends_with("WantedBy=default.target\n") || n.ends_with(".network"),
            "{failpoint}: {n} complete"
        );
    }
    assert_eq!(
        ws.env.unit_prop(&format!("{b}.service"), "MainPID"),
        b_pid,
        "{failpoint}: b never restarted"
    );
    assert!(
        !ws.state.join("pending.json").exists(),
        "{failpoint}: nothing left pending"
    );
    assert_eq!(
        ws.agent_ok(&["apply"]).trim(),
        "No changes.",
        "{failpoint}: converged"
    );
    // History matches what runs: the crashed apply is a generation, settled
    // (never left pending), and the newest generation holds a2.
    let history: serde_json::Value =
        serde_json::from_str(&ws.agent_ok(&["history", "--json"])).unwrap();
    let gens = history.as_array().unwrap();
    assert!(
        gens.iter().all(|g| g["outcome"] != "pending"),
        "{failpoint}: a generation left pending: {history}"
    );
    let newest = gens
        .iter()
        .max_by_key(|g| g["generation"].as_u64())
        .unwrap();
    let n = newest["generation"].as_u64().unwrap();
    // The generation names its file lists, which name its rendered files'
    // objects (all by SHA-256).
    let gens_dir = ws.state.join("generations");
    let json = |p: std::path::PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let record = json(gens_dir.join(format!("{n:06}/meta.json")));
    let name = format!("{a}.container");
    let object = record["manifests"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .map(|m| json(gens_dir.join("objects").join(m.as_str().unwrap())))
        .flat_map(|list| list["rendered"].as_array().cloned().unwrap_or_default())
        .find(|entry| entry[0] == name.as_str())
        .and_then(|entry| entry[1].as_str().map(String::from))
        .unwrap_or_else(|| panic!("{failpoint}: generation {n} names no {name}"));
    let rendered = gens_dir.join("objects").join(object);
    assert!(
        std::fs::read_to_string(&rendered)
            .unwrap()
            .contains("echo a2"),
        "{failpoint}: generation {n} is not what runs: {history}"
    );
    if AFTER_THE_JOBS.contains(&failpoint) {
        assert_eq!(newest["outcome"], "ok", "{failpoint}: {history}");
        assert_eq!(gens.len(), 2, "{failpoint}: no extra generation: {history}");
    }
}

#[test]
fn a_crash_at_any_point_of_an_apply_converges_on_the_next_one() {
    let _g = serial();
    for (i, fp) in FAILPOINTS.iter().enumerate() {
        crash_then_converge(i, fp);
    }
}
