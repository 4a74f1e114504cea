//! End to end: health-gated ordering on the real user manager. A container
//! that `requires` another with a health check starts only once that one is
//! healthy, whether Podman gates it (`Notify=healthy`, a `cmd` check) or the
//! agent's waiter does (`ExecStartPost=deploy-agent wait-healthy`, an `http`
//! check); a dependency that never gets healthy leaves its dependents not
//! started, and `status` says why. Times come from the user manager's own
//! unit properties (monotonic µs), not from the agent.

mod support;

use std::time::Duration;

use support::{serial, stderr, stdout, web_spec, Workspace};

/// A busybox container whose `cmd` check passes `after` seconds after it starts.
fn slow_db(name: &str, after: u32, extra: &str) -> String {
    format!(
        r#"[container.{name}]
image = "localhost/busybox:latest"
pull = "never"
init = true
command = ["sh", "-c", "sleep {after}; touch /tmp/ok; exec sleep 100000"]
[container.{name}.health]
cmd = ["test", "-e", "/tmp/ok"]
interval = "1s"
timeout = "1s"
retries = 3
start_period = "20s"
{extra}
"#
    )
}

fn sleeper(name: &str, requires: &str) -> String {
    format!(
        r#"[container.{name}]
image = "localhost/busybox:latest"
pull = "never"
init = true
command = ["sleep", "100000"]
requires = ["{requires}"]
"#
    )
}

fn mono(ws: &Workspace, unit: &str, prop: &str) -> u64 {
    let v = ws.env.unit_prop(unit, prop);
    v.parse()
        .unwrap_or_else(|_| panic!("{unit} {prop}: {v:?} is not a number"))
}

/// (dependency started, dependency ready, dependent started), in µs.
fn times(ws: &Workspace, dep: &str, web: &str) -> (u64, u64, u64) {
    (
        mono(ws, dep, "ExecMainStartTimestampMonotonic"),
        mono(ws, dep, "ActiveEnterTimestampMonotonic"),
        mono(ws, web, "ExecMainStartTimestampMonotonic"),
    )
}

fn assert_gated(t: (u64, u64, u64), healthy_after_us: u64, run: usize) {
    let (dep_start, dep_ready, web_start) = t;
    assert!(
        dep_ready >= dep_start + healthy_after_us,
        "run {run}: the dependency was ready {} µs after it started, before its check could pass",
        dep_ready - dep_start
    );
    assert!(
        web_start >= dep_ready,
        "run {run}: the dependent started {} µs before its dependency was healthy",
        dep_ready - web_start
    );
}

#[test]
fn podman_gate_web_starts_after_db_is_healthy_20_of_20() {
    let _g = serial();
    let ws = Workspace::new("gatecmd");
    // Four independent db/web pairs, so the 20 cold starts (5 per pair) run
    // four at a time: each still waits its own db's 5 s.
    const PAIRS: usize = 4;
    let spec: String = (0..PAIRS)
        .map(|k| {
            format!(
                "{}\n{}\n",
                slow_db(&format!("e2e-gdb{k}"), 5, ""),
                sleeper(&format!("e2e-gweb{k}"), &format!("e2e-gdb{k}"))
            )
        })
        .collect();
    ws.spec("10-gate.toml", &spec);
    let out = ws.agent(&["apply"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let file = std::fs::read_to_string(ws.output.join("e2e-gdb0.container")).unwrap();
    assert!(file.contains("\nNotify=healthy\n"), "{file}");
    let runs = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for k in 0..PAIRS {
            let (ws, runs) = (&ws, &runs);
            scope.spawn(move || {
                let (db, web) = (
                    format!("e2e-gdb{k}.service"),
                    format!("e2e-gweb{k}.service"),
                );
                // The apply was the first start; then cold starts through
                // systemd alone, as at boot: starting the dependent pulls the
                // dependency in (Requires=) and waits for it (After=).
                for run in 1..=20 / PAIRS {
                    if run > 1 {
                        ws.env.user_ok(&["systemctl", "--user", "stop", &web, &db]);
                        ws.env.user_ok(&["systemctl", "--user", "start", &web]);
                    }
                    assert_gated(times(ws, &db, &web), 5_000_000, run);
                    runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(runs.into_inner(), 20, "20 of 20 runs gated");
}

#[test]
fn agent_gate_waits_for_an_http_check() {
    let _g = serial();
    let ws = Workspace::new("gatehttp");
    let (db, web) = ("e2e-hdb.service", "e2e-hweb.service");
    // httpd listens only once the script (3 s) has run: refused until then.
    let db_spec = web_spec(
        "e2e-hdb",
        18231,
        "sleep 3 && echo ok",
        "[container.e2e-hdb.health]\nhttp = \"http://127.0.0.1:18231/health\"\ninterval = \"1s\"\ntimeout = \"1s\"\nretries = 2\nstart_period = \"20s\"\n",
    );
    ws.spec(
        "10-gate.toml",
        &format!("{db_spec}\n{}", sleeper("e2e-hweb", "e2e-hdb")),
    );
    let out = ws.agent(&["apply"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let file = std::fs::read_to_string(ws.output.join("e2e-hdb.container")).unwrap();
    assert!(file.contains("\nExecStartPost="), "{file}");
    assert!(
        file.contains("\"wait-healthy\" \"e2e-hdb\" \"--http\""),
        "{file}"
    );
    assert_gated(times(&ws, db, web), 3_000_000, 1);
    for run in 2..=3 {
        ws.env.user_ok(&["systemctl", "--user", "stop", web, db]);
        ws.env.user_ok(&["systemctl", "--user", "start", web]);
        assert_gated(times(&ws, db, web), 3_000_000, run);
    }
    // The waiter said so in the dependency's own journal.
    let said = ws
        .env
        .user_ok(&["journalctl", "--user", "-u", db, "-o", "cat", "--no-pager"]);
    assert!(said.contains("e2e-hdb: healthy after"), "{said}");
}

#[test]
fn an_unhealthy_dependency_leaves_its_dependents_not_started() {
    let _g = serial();
    let ws = Workspace::new("gatebad");
    let (db, web) = ("e2e-udb.service", "e2e-uweb.service");
    // Never healthy; a health budget of 3 s on a 5 s start timeout.
    let db_spec = r#"[container.e2e-udb]
image = "localhost/busybox:latest"
pull = "never"
init = true
command = ["sleep", "100000"]
start_timeout = "5s"
[container.e2e-udb.health]
cmd = ["false"]
interval = "1s"
timeout = "1s"
retries = 2
on_failure = "none"
"#;
    ws.spec(
        "10-gate.toml",
        &format!("{db_spec}\n{}", sleeper("e2e-uweb", "e2e-udb")),
    );
    let t0 = std::time::Instant::now();
    let out = ws.agent(&["apply"]);
    let (o, e) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "gave up after {:?}",
        t0.elapsed()
    );
    assert!(
        o.lines().any(|l| l.contains("e2e-uweb.service")
            && l.contains("FAILED: not started: a unit it requires did not start")),
        "{o}{e}"
    );
    assert_ne!(ws.env.unit_prop(db, "ActiveState"), "active");
    assert_eq!(ws.env.unit_prop(web, "ActiveState"), "inactive");
    assert_eq!(
        ws.env.unit_prop(web, "ExecMainStartTimestampMonotonic"),
        "0",
        "web never ran"
    );
    let st = ws.agent(&["status"]);
    assert_eq!(st.status.code(), Some(1));
    let text = stdout(&st);
    assert!(
        text.contains("e2e-uweb.service: not started: requires e2e-udb.service, which is"),
        "{text}"
    );
}
