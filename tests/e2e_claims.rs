//! End to end: README claims about systemd and Podman that no other test
//! proves, each on the real test environment (`tests/env/testenv up`):
//!
//! * "Exit codes: ... 1 operational failure (a unit job failed ...)":
//!   `apply` of a container whose start job fails exits 1 and says which
//!   unit failed and why (one that dies right after a successful start is
//!   `apply --wait`'s, `tests/e2e_apply_wait.rs`);
//! * "reloads systemd once per change set": an apply that adds (and one
//!   that changes) several unit files makes exactly one daemon-reload of the
//!   user manager, a no-op apply none. Counted from the user manager's own
//!   journal lines, not from the agent;
//! * "`cmd = [...]`: run inside the container by Podman (`HealthCmd=`) ...
//!   the agent reads Podman's verdict": a real container's in-container
//!   check goes unhealthy and healthy as a file inside the container comes
//!   and goes, as the daemon's journal and `status --json` report.

mod support;

use std::time::Duration;

use support::{serial, stderr, stdout, web_spec, Daemon, TestEnv, Workspace};

const HEALTH_HEALTHY: &str = "a3c0629e21e16e6c733c798d253e3fc0";
const HEALTH_UNHEALTHY: &str = "9a288bad0f6eefca96d220223e237e4d";
const HEALTH_RECOVERED: &str = "f327278a3cceed3972603ecf8adf5652";
const UNIT_FAILED: &str = "5b3e0c0a8f4d4c55a1d2e36f9a7b1c05";

fn web(name: &str, port: u16, body: &str, extra: &str) -> String {
    web_spec(name, port, &format!("echo {body}"), extra)
}

/// The line of `apply`'s report for `unit` ("start   UNIT   done|FAILED: ...").
fn report_line<'a>(out: &'a str, unit: &str) -> &'a str {
    out.lines()
        .find(|l| {
            let mut words = l.split_whitespace();
            matches!(words.next(), Some("start" | "restart" | "stop"))
                && words.next() == Some(unit)
                && (l.contains(" done") || l.contains("FAILED"))
        })
        .unwrap_or_else(|| panic!("no result line for {unit} in:\n{out}"))
}

// ---------------------------------------------------------------------------
// 1. Exit code 1 when a unit failed.
// ---------------------------------------------------------------------------

/// Clears the units' failed state when dropped (after the workspace that
/// stopped them, if declared before it): a failed unit whose file is gone
/// stays listed as failed in the user manager until `reset-failed`.
struct ResetFailed(Vec<String>);

impl Drop for ResetFailed {
    fn drop(&mut self) {
        let mut args = vec!["systemctl", "--user", "reset-failed"];
        args.extend(self.0.iter().map(String::as_str));
        let _ = TestEnv::get().user(&args);
    }
}

/// A container spec with `image` and `command`, never restarted by systemd.
fn once(name: &str, image: &str, command: &str) -> String {
    format!(
        "[container.{name}]\nimage = \"{image}\"\npull = \"never\"\ninit = true\nrestart = \"no\"\ncommand = {command}\n"
    )
}

/// Applies `10-ok.toml` (a web container that starts fine) and
/// `20-bad.toml` = `bad` (the container `NAME-bad`) and checks the claim:
/// exit 1, the failed unit named with `why`, the good one not blamed, the
/// generation recorded as failed. Then the control: `20-bad.toml` fixed
/// (a command that keeps running) must exit 0, so the 1 was the failed
/// unit's doing and nothing else's.
fn apply_with_a_failing_unit(ws: &Workspace, name: &str, port: u16, bad: &str, why: &str) {
    let (ok_unit, bad_unit) = (format!("{name}-ok.service"), format!("{name}-bad.service"));
    ws.spec("10-ok.toml", &web(&format!("{name}-ok"), port, "ok", ""));
    ws.spec("20-bad.toml", bad);

    let out = ws.agent(&["apply"]);
    let (so, se) = (stdout(&out), stderr(&out));
    // systemd's own verdict first, so a failure below says what systemd saw.
    let state = || {
        ws.env.user_ok(&[
            "systemctl",
            "--user",
            "show",
            "-p",
            "ActiveState,Result,ExecMainStatus",
            &bad_unit,
        ])
    };
    ws.env.wait_for(
        "systemd to see the unit failed",
        Duration::from_secs(20),
        || state().contains("ActiveState=failed"),
    );
    let state = state();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a unit failed ({}), so apply must exit 1\nstdout:\n{so}\nstderr:\n{se}",
        state.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    let line = report_line(&so, &bad_unit);
    assert!(line.contains("FAILED"), "{so}");
    assert!(line.contains(why), "why it failed ({why}): {line}");
    assert!(
        report_line(&so, &ok_unit).ends_with("done"),
        "only the failing unit is blamed: {so}"
    );
    assert!(so.contains("applied with failures"), "{so}");
    assert!(
        se.contains(&bad_unit) && se.contains(why),
        "the error on stderr names the unit and the reason: {se}"
    );
    assert_eq!(ws.env.unit_prop(&ok_unit, "ActiveState"), "active");
    // The generation is recorded as failed, with the reason.
    let hist: serde_json::Value =
        serde_json::from_str(&ws.agent_ok(&["history", "--json"])).unwrap();
    let latest = hist.as_array().unwrap().last().unwrap();
    assert_eq!(latest["outcome"], "failed", "{latest}");
    assert!(
        latest["errors"].to_string().contains(&bad_unit),
        "the failure is in the history: {latest}"
    );

    // Control: the same container, fixed.
    ws.spec(
        "20-bad.toml",
        &once(
            &format!("{name}-bad"),
            "localhost/busybox:latest",
            r#"["sleep", "100000"]"#,
        ),
    );
    let out = ws.agent(&["apply"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "nothing failed: exit 0\nstdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(report_line(&stdout(&out), &bad_unit).ends_with("done"));
    assert_eq!(ws.env.unit_prop(&bad_unit, "ActiveState"), "active");
}

/// The unit's start job fails: its image does not exist (and is never
/// pulled), so `podman run` exits 125 before the service is up.
/// Fails if `apply` exited 0 (or 2) although systemd reports the unit
/// failed, if its report did not name the unit, or gave no reason (the
/// exit status), or blamed the unit that started fine.
#[test]
fn apply_exits_1_and_says_why_when_a_unit_fails_to_start() {
    let _g = serial();
    let _reset = ResetFailed(vec![
        "e2e-ufs-bad.service".into(),
        "e2e-ufs-ok.service".into(),
    ]);
    let ws = Workspace::new("unitfail");
    let bad = once(
        "e2e-ufs-bad",
        "localhost/e2e-no-such-image:latest",
        r#"["sleep", "100000"]"#,
    );
    apply_with_a_failing_unit(&ws, "e2e-ufs", 18401, &bad, "exit status 125");
}

// ---------------------------------------------------------------------------
// 2. One daemon-reload per change set.
// ---------------------------------------------------------------------------

/// The user manager's own journal: what it logged after a cursor, read by
/// its PID (the system manager's MainPID of `user@UID.service`).
struct ManagerLog<'e> {
    env: &'e TestEnv,
    pid: String,
}

/// What the user manager logged between a cursor and a fence reload.
struct Reloads {
    /// "Reloading finished in N ms." lines before the fence's request.
    finished: usize,
    /// The requesters' command names of the reloads before the fence, in
    /// order (from "Reload requested from client PID N ('COMM')...").
    requested_by: Vec<String>,
    /// Every manager message in the window, for failure messages.
    messages: Vec<String>,
}

impl<'e> ManagerLog<'e> {
    fn new(env: &'e TestEnv) -> Self {
        let unit = format!("user@{}.service", env.uid);
        let out = env.root(&["systemctl", "show", "-p", "MainPID", "--value", &unit]);
        let pid = stdout(&out).trim().to_string();
        assert!(
            out.status.success() && pid.parse::<u32>().is_ok_and(|p| p > 0),
            "the user manager's PID: {pid:?} {}",
            stderr(&out)
        );
        ManagerLog { env, pid }
    }

    fn messages_after(&self, cursor: &str) -> Vec<String> {
        let pid = format!("_PID={}", self.pid);
        self.env
            .journal_after(cursor, &[&pid])
            .iter()
            .filter_map(|e| e["MESSAGE"].as_str().map(str::to_string))
            .collect()
    }

    /// Makes a reload of its own with `busctl` (a requester nothing else
    /// uses) and waits until the manager has logged it: the manager logs in
    /// order, so everything it logged before is in the journal by then.
    /// Counts the reloads between `cursor` and that fence.
    fn reloads_since(&self, cursor: &str) -> Reloads {
        self.env.user_ok(&[
            "busctl",
            "--user",
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "Reload",
        ]);
        let fence = |m: &[String]| {
            m.iter()
                .position(|l| requester(l).as_deref() == Some("busctl"))
                .filter(|&i| m[i..].iter().any(|l| l.starts_with("Reloading finished")))
        };
        let start = std::time::Instant::now();
        let (messages, at) = loop {
            let messages = self.messages_after(cursor);
            if let Some(at) = fence(&messages) {
                break (messages, at);
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the fence reload (requested by 'busctl') never showed in the user manager's journal; it logged:\n{}",
                messages.join("\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let before = &messages[..at];
        Reloads {
            finished: before
                .iter()
                .filter(|l| l.starts_with("Reloading finished"))
                .count(),
            requested_by: before.iter().filter_map(|l| requester(l)).collect(),
            messages,
        }
    }
}

impl std::fmt::Display for Reloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} reload(s) before the fence, requested by {:?}; the user manager logged:",
            self.finished, self.requested_by
        )?;
        for m in &self.messages {
            writeln!(f, "  {m}")?;
        }
        Ok(())
    }
}

/// `COMM` of "Reload requested from client PID N ('COMM')..." (systemd 257).
fn requester(line: &str) -> Option<String> {
    let rest = line.strip_prefix("Reload requested from client PID ")?;
    let start = rest.find("('")? + 2;
    let len = rest[start..].find("')")?;
    Some(rest[start..start + len].to_string())
}

/// Fails if an apply of a change set made more than one daemon-reload (e.g.
/// one per written file: 4 here) or none, if a no-op apply made one, or if
/// the count is blind or lumps reloads together: the calibration step makes
/// one reload by hand and must count exactly one, then two and must count
/// two; every window ends with a fence reload that must be seen (so a
/// reload logged late cannot be missed), and each counted reload must have
/// been requested by `deploy-agent` (so another client's reload cannot
/// stand in for the agent's).
#[test]
fn one_daemon_reload_per_change_set_and_none_for_a_no_op() {
    let _g = serial();
    let ws = Workspace::new("reloads");
    let log = ManagerLog::new(ws.env);

    // Calibration: one reload by hand is counted as exactly one, and its
    // requester is seen ...
    let cursor = ws.env.journal_cursor();
    ws.env.user_ok(&["systemctl", "--user", "daemon-reload"]);
    let r = log.reloads_since(&cursor);
    assert_eq!(r.finished, 1, "calibration: one reload counts as one: {r}");
    assert_eq!(r.requested_by, ["systemctl"], "{r}");
    // ... and a second reload in the same window as a second one.
    let cursor = ws.env.journal_cursor();
    ws.env.user_ok(&["systemctl", "--user", "daemon-reload"]);
    ws.env.user_ok(&["systemctl", "--user", "daemon-reload"]);
    let r = log.reloads_since(&cursor);
    assert_eq!(r.finished, 2, "calibration: two reloads count as two: {r}");
    assert_eq!(r.requested_by, ["systemctl", "systemctl"], "{r}");

    // A change set of four new files: a network and three containers on it.
    let net = "[network.e2e_rl_net]\nsubnet = \"10.89.241.0/24\"\n";
    let on_net = "networks = [\"e2e_rl_net\"]";
    let specs = |v: &str| {
        ws.spec("00-net.toml", net);
        for (i, port) in [18411u16, 18412, 18413].into_iter().enumerate() {
            ws.spec(
                &format!("1{i}-c.toml"),
                &web(&format!("e2e-rl-{i}"), port, &format!("{v}-{i}"), on_net),
            );
        }
    };
    specs("v1");
    let cursor = ws.env.journal_cursor();
    let out = ws.agent_ok(&["apply"]);
    let r = log.reloads_since(&cursor);
    assert_eq!(
        r.finished, 1,
        "one reload for 4 new files\napply said:\n{out}\n{r}"
    );
    assert_eq!(r.requested_by, ["deploy-agent"], "{r}");
    assert!(out.contains("+ e2e_rl_net.network (new)"), "{out}");
    for (i, port) in [18411u16, 18412, 18413].into_iter().enumerate() {
        assert!(
            out.contains(&format!("+ e2e-rl-{i}.container (new)")),
            "{out}"
        );
        assert_eq!(
            ws.env
                .unit_prop(&format!("e2e-rl-{i}.service"), "ActiveState"),
            "active"
        );
        ws.env
            .wait_for("httpd to answer", Duration::from_secs(20), || {
                ws.curl(port).as_deref() == Some(&format!("v1-{i}"))
            });
    }

    // A change set of three changed files: again one reload, three restarts.
    specs("v2");
    let cursor = ws.env.journal_cursor();
    let out = ws.agent_ok(&["apply"]);
    let r = log.reloads_since(&cursor);
    assert_eq!(
        r.finished, 1,
        "one reload for 3 changed files\napply said:\n{out}\n{r}"
    );
    assert_eq!(r.requested_by, ["deploy-agent"], "{r}");
    for (i, port) in [18411u16, 18412, 18413].into_iter().enumerate() {
        assert!(
            out.contains(&format!("~ e2e-rl-{i}.container (changed)")),
            "{out}"
        );
        ws.env
            .wait_for("the new version", Duration::from_secs(20), || {
                ws.curl(port).as_deref() == Some(&format!("v2-{i}"))
            });
    }

    // Nothing changed: no reload at all.
    let cursor = ws.env.journal_cursor();
    let out = ws.agent_ok(&["apply"]);
    let r = log.reloads_since(&cursor);
    assert_eq!(out.trim(), "No changes.");
    assert_eq!(r.finished, 0, "a no-op apply must not reload: {r}");
    assert_eq!(r.requested_by, Vec::<String>::new(), "{r}");
}

// ---------------------------------------------------------------------------
// 3. A `cmd` health check run by Podman in a real container.
// ---------------------------------------------------------------------------

/// The row of `deploy-agent status --json` for `unit`.
fn status_row(ws: &Workspace, unit: &str) -> serde_json::Value {
    // Exit 1 while a unit is unhealthy: the rows are what is checked here.
    let status = stdout(&ws.agent(&["status", "--json"]));
    let rows: serde_json::Value = serde_json::from_str(&status).unwrap();
    rows["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["unit"] == unit)
        .cloned()
        .unwrap_or_else(|| panic!("no row for {unit}: {status}"))
}

/// The daemon's health events of `unit` with `message_id`.
fn events(d: &Daemon, unit: &str, message_id: &str) -> Vec<serde_json::Value> {
    d.journal(&[&format!("MESSAGE_ID={message_id}"), &format!("UNIT={unit}")])
}

/// Fails if the check is not run inside the container by Podman: a check
/// run by the agent (in its own namespace and /tmp, with its own
/// environment) would never see the file `podman exec` creates in the
/// container, nor the container's environment variable; a container
/// without `HealthCmd=` makes `podman healthcheck run` fail, so it would
/// never become healthy. Fails too if the agent ignored Podman's verdict
/// (healthy with the file absent, or unhealthy once it exists), or if the
/// journal entries and `status --json` did not say so.
#[test]
fn a_cmd_health_check_runs_in_the_container_and_follows_it() {
    let _g = serial();
    let ws = Workspace::new("hcmd");
    // `file`: healthy only while /tmp/ok exists in the container (absent at start).
    // `env`: healthy only where MARK=inside, i.e. in the container's environment.
    let spec = r#"[container.e2e-hc-file]
image = "localhost/busybox:latest"
pull = "never"
init = true
command = ["sleep", "100000"]

[container.e2e-hc-file.health]
cmd = ["sh", "-c", "test -f /tmp/ok"]
interval = "2s"
timeout = "2s"
retries = 1000
on_failure = "none"

[container.e2e-hc-env]
image = "localhost/busybox:latest"
pull = "never"
init = true
env = { MARK = "inside" }
command = ["sleep", "100000"]

[container.e2e-hc-env.health]
cmd = ["sh", "-c", "test \"$MARK\" = inside"]
interval = "2s"
timeout = "2s"
retries = 1000
on_failure = "none"
"#;
    ws.spec("10-hc.toml", spec);
    let d = ws.start_daemon();
    let rendered = std::fs::read_to_string(ws.output.join("e2e-hc-file.container")).unwrap();
    assert!(
        rendered.contains(r#"HealthCmd=["sh","-c","test -f /tmp/ok"]"#),
        "{rendered}"
    );
    // Podman has the check (Quadlet passed HealthCmd= on as --health-cmd).
    let podman_check = ws.env.user_ok(&[
        "podman",
        "inspect",
        "-f",
        "{{json .Config.Healthcheck.Test}}",
        "e2e-hc-file",
    ]);
    assert!(
        podman_check.contains("test -f /tmp/ok"),
        "Podman's healthcheck: {podman_check}"
    );
    let file = "e2e-hc-file.service";
    let env = "e2e-hc-env.service";
    let limit = Duration::from_secs(60);

    // The environment variable exists only in the container: healthy.
    ws.env.wait_for("e2e-hc-env healthy", limit, || {
        !events(&d, env, HEALTH_HEALTHY).is_empty()
    });
    let e = &events(&d, env, HEALTH_HEALTHY)[0];
    assert_eq!(e["RESULT"], "podman: healthy", "{e}");
    assert!(
        e["CHECK"].as_str().unwrap().contains("$MARK"),
        "the check as written: {e}"
    );
    assert!(events(&d, env, HEALTH_UNHEALTHY).is_empty());
    ws.env.wait_for("e2e-hc-env healthy in status", limit, || {
        status_row(&ws, env)["health"] == "healthy"
    });

    // The file is absent: unhealthy, by Podman's verdict.
    ws.env.wait_for("e2e-hc-file unhealthy", limit, || {
        !events(&d, file, HEALTH_UNHEALTHY).is_empty()
    });
    let e = &events(&d, file, HEALTH_UNHEALTHY)[0];
    assert!(
        e["RESULT"].as_str().unwrap().contains("podman healthcheck"),
        "Podman's verdict: {e}"
    );
    assert_eq!(e["CHECK"], "cmd sh -c test -f /tmp/ok", "{e}");
    assert!(
        e["SPEC_FILE"].as_str().unwrap().ends_with("10-hc.toml"),
        "{e}"
    );
    assert!(
        events(&d, file, HEALTH_HEALTHY).is_empty(),
        "never healthy yet"
    );
    ws.env
        .wait_for("e2e-hc-file unhealthy in status", limit, || {
            status_row(&ws, file)["health"]
                .as_str()
                .unwrap()
                .starts_with("unhealthy")
        });
    let row = status_row(&ws, file);
    assert_eq!(row["active_state"], "active", "{row}");
    assert!(
        row["last_result"]
            .as_str()
            .unwrap()
            .contains("podman healthcheck"),
        "{row}"
    );
    // systemctl --user status deploy-agent says so too (sd_notify STATUS=).
    ws.env.wait_for("STATUS= with 1 unhealthy", limit, || {
        d.status_text()
            .contains("2 services: 1 healthy, 1 unhealthy")
    });

    // The file appears in the container only: healthy. Coming from
    // unhealthy, the journal entry is "health: recovered" (f327...); the
    // "health: healthy" id (a3c0...) is the first success after a start,
    // as e2e-hc-env showed above.
    ws.env
        .user_ok(&["podman", "exec", "e2e-hc-file", "touch", "/tmp/ok"]);
    assert!(
        !ws.env.user(&["test", "-e", "/tmp/ok"]).status.success(),
        "the file is in the container, not where the agent runs"
    );
    ws.env.wait_for("e2e-hc-file healthy", limit, || {
        !events(&d, file, HEALTH_RECOVERED).is_empty()
    });
    let e = &events(&d, file, HEALTH_RECOVERED)[0];
    assert_eq!(e["RESULT"], "podman: healthy", "{e}");
    ws.env.wait_for("e2e-hc-file healthy in status", limit, || {
        status_row(&ws, file)["health"] == "healthy"
    });
    assert_eq!(status_row(&ws, file)["last_result"], "podman: healthy");
    ws.env.wait_for("STATUS= with 2 healthy", limit, || {
        d.status_text().starts_with("2 services: 2 healthy")
    });

    // And gone again: unhealthy again.
    ws.env
        .user_ok(&["podman", "exec", "e2e-hc-file", "rm", "/tmp/ok"]);
    ws.env.wait_for("e2e-hc-file unhealthy again", limit, || {
        events(&d, file, HEALTH_UNHEALTHY).len() >= 2
    });
    ws.env
        .wait_for("e2e-hc-file unhealthy again in status", limit, || {
            status_row(&ws, file)["health"]
                .as_str()
                .unwrap()
                .starts_with("unhealthy")
        });
    // No unit job failed along the way: only the health changed.
    assert!(d
        .journal(&[&format!("MESSAGE_ID={UNIT_FAILED}")])
        .is_empty());
    assert_eq!(ws.env.unit_prop(file, "ActiveState"), "active");
    drop(d);
}
