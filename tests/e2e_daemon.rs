//! End to end: `deploy-agent run` under the real user manager (as a
//! transient Type=notify service), watching its specs, with real
//! containers, health checks and the journal.

mod support;

use std::time::Duration;

use support::{serial, web_spec, Workspace};

const SPEC_INVALID: &str = "MESSAGE_ID=5b3e0c0a8f4d4c55a1d2e36f9a7b1c04";
const HEALTH_ROLLBACK: &str = "MESSAGE_ID=a7ce01afcb5ebd7a79511c3d359f9e3f";

fn web(name: &str, port: u16, body: &str, extra: &str) -> String {
    web_spec(name, port, &format!("echo {body}"), extra)
}

#[test]
fn watching_daemon_restarts_only_the_edited_unit_and_keeps_all_on_a_broken_edit() {
    let _g = serial();
    let ws = Workspace::new("watch");
    ws.spec("10-a.toml", &web("e2e-w-a", 18191, "a1", ""));
    ws.spec("20-b.toml", &web("e2e-w-b", 18192, "b1", ""));
    let d = ws.start_daemon();
    // Type=notify: systemd-run returned after READY, i.e. after the first apply.
    assert_eq!(ws.env.unit_prop("e2e-w-a.service", "ActiveState"), "active");
    assert_eq!(ws.env.unit_prop("e2e-w-b.service", "ActiveState"), "active");
    let status = d.status_text();
    assert!(status.contains("2 services"), "STATUS= line: {status}");
    let a_pid = ws.env.unit_prop("e2e-w-a.service", "MainPID");
    let b_pid = ws.env.unit_prop("e2e-w-b.service", "MainPID");

    // An editor saving by rename.
    let tmp = ws.specs.join(".10-a.toml.swp");
    ws.env.write(
        &tmp,
        &web("e2e-w-a", 18191, "a2", "env = { EDITED = \"1\" }"),
    );
    std::fs::rename(&tmp, ws.specs.join("10-a.toml")).unwrap();
    ws.env.wait_for(
        "a to restart with the edit",
        Duration::from_secs(30),
        || ws.curl(18191).as_deref() == Some("a2"),
    );
    assert_ne!(ws.env.unit_prop("e2e-w-a.service", "MainPID"), a_pid);
    assert_eq!(
        ws.env.unit_prop("e2e-w-b.service", "MainPID"),
        b_pid,
        "b kept its PID"
    );

    // A broken edit: errors in the journal with file and line, nothing changes.
    let a_pid = ws.env.unit_prop("e2e-w-a.service", "MainPID");
    let rendered = std::fs::read_to_string(ws.output.join("e2e-w-a.container")).unwrap();
    ws.spec(
        "10-a.toml",
        &web("e2e-w-a", 18191, "a3", "restart = \"sometimes\""),
    );
    let file = ws.specs.join("10-a.toml").to_string_lossy().into_owned();
    ws.env.wait_for(
        "the spec error in the journal",
        Duration::from_secs(20),
        || {
            d.journal(&[SPEC_INVALID])
                .iter()
                .any(|e| e["SPEC_FILE"] == file.as_str())
        },
    );
    let entries = d.journal(&[SPEC_INVALID, &format!("SPEC_FILE={file}")]);
    let e = &entries[0];
    assert_eq!(e["SPEC_LINE"], "7", "{e}");
    assert_eq!(e["SPEC_KEY"], "container.e2e-w-a.restart", "{e}");
    assert!(
        e["MESSAGE"].as_str().unwrap().contains("10-a.toml:7:11"),
        "{e}"
    );
    assert_eq!(e["PRIORITY"], "3", "{e}");
    assert_eq!(
        ws.env.unit_prop("e2e-w-a.service", "MainPID"),
        a_pid,
        "nothing restarted"
    );
    assert_eq!(
        ws.env.unit_prop("e2e-w-b.service", "MainPID"),
        b_pid,
        "nothing restarted"
    );
    assert_eq!(
        std::fs::read_to_string(ws.output.join("e2e-w-a.container")).unwrap(),
        rendered,
        "nothing rewritten"
    );
    assert_eq!(ws.curl(18191).as_deref(), Some("a2"));
    assert!(
        d.status_text().contains("specs invalid"),
        "{}",
        d.status_text()
    );

    // SIGHUP re-applies (nothing to do) and the agent stays up.
    ws.spec(
        "10-a.toml",
        &web("e2e-w-a", 18191, "a2", "env = { EDITED = \"1\" }"),
    );
    let hups = || d.journal(&["TRIGGER=SIGHUP"]).len();
    let before = hups();
    ws.env
        .user_ok(&["systemctl", "--user", "kill", "-s", "HUP", &d.unit]);
    // The SIGHUP itself made an apply (an ignored signal would leave no entry).
    ws.env.wait_for(
        "an apply triggered by SIGHUP",
        Duration::from_secs(30),
        || hups() > before,
    );
    assert_eq!(ws.env.unit_prop(&d.unit, "ActiveState"), "active");
    assert_eq!(
        ws.env.unit_prop("e2e-w-a.service", "MainPID"),
        a_pid,
        "same specs: no restart"
    );

    // Stopping the agent leaves the services running.
    ws.env.user_ok(&["systemctl", "--user", "stop", &d.unit]);
    assert_eq!(ws.env.unit_prop("e2e-w-b.service", "MainPID"), b_pid);
}

#[test]
fn a_new_version_that_never_becomes_healthy_is_rolled_back() {
    let _g = serial();
    let ws = Workspace::new("rollback");
    let health = |path: &str| {
        format!(
            "[container.e2e-rb.health]\nhttp = \"http://127.0.0.1:18193/{path}\"\ninterval = \"1s\"\ntimeout = \"1s\"\nretries = 2\nstart_period = \"3s\"\non_failure = \"rollback\"\n"
        )
    };
    ws.spec(
        "10-rb.toml",
        &format!("{}\n{}", web("e2e-rb", 18193, "v1", ""), health("health")),
    );
    let d = ws.start_daemon();
    ws.env.wait_for("v1 healthy", Duration::from_secs(30), || {
        d.status_text().contains("1 healthy")
    });
    // v2 answers 404 on its health URL: it never becomes healthy.
    ws.spec(
        "10-rb.toml",
        &format!("{}\n{}", web("e2e-rb", 18193, "v2", ""), health("missing")),
    );
    ws.env.wait_for(
        "the rollback in the journal",
        Duration::from_secs(60),
        || !d.journal(&[HEALTH_ROLLBACK]).is_empty(),
    );
    ws.env
        .wait_for("v1 back in service", Duration::from_secs(30), || {
            ws.curl(18193).as_deref() == Some("v1")
        });
    let entries = d.journal(&[HEALTH_ROLLBACK, "UNIT=e2e-rb.service"]);
    let e = entries
        .iter()
        .find(|e| {
            e["MESSAGE"]
                .as_str()
                .unwrap_or("")
                .contains("rolling it back to its version of generation 1")
        })
        .unwrap_or_else(|| panic!("the agent's rollback entry: {entries:?}"));
    assert_eq!(e["PRIORITY"], "3", "{e}");
    assert_eq!(e["ROLLBACK_TO"], "1", "{e}");
    let failed = d.journal(&[
        "MESSAGE_ID=bccc854ec651e0ff6be6316224fe0cac",
        "UNIT=e2e-rb.service",
    ]);
    let f = failed.first().expect("a health_failed entry");
    assert!(f["RESULT"].as_str().unwrap().contains("HTTP 404"), "{f}");
    assert!(
        f["CHECK"]
            .as_str()
            .unwrap()
            .contains("http://127.0.0.1:18193/missing"),
        "{f}"
    );
    assert!(
        f["SPEC_FILE"].as_str().unwrap().ends_with("10-rb.toml"),
        "{f}"
    );
    assert!(f.get("GENERATION").is_some(), "{f}");

    // status --json: the rolled-back unit runs, becomes healthy again, on the rollback's generation.
    let row = || {
        // (Exit 1 while the unit is not healthy yet: the row is what counts.)
        let status = support::stdout(&ws.agent(&["status", "--json"]));
        let rows: serde_json::Value = serde_json::from_str(&status).unwrap();
        rows["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["unit"] == "e2e-rb.service")
            .cloned()
            .unwrap()
    };
    ws.env.wait_for(
        "healthy again in status --json",
        Duration::from_secs(30),
        || row()["health"] == "healthy",
    );
    let r = row();
    assert_eq!(r["active_state"], "active", "{r}");
    assert_eq!(r["last_result"], "HTTP 200", "{r}");
    assert!(
        r["generation"].as_u64().unwrap() >= 3,
        "the rollback is a generation of its own: {r}"
    );
    assert!(r["memory_current"].as_u64().is_some(), "{r}");
    let history = ws.agent_ok(&["history", "--json"]);
    let gens: serde_json::Value = serde_json::from_str(&history).unwrap();
    let gens = gens.as_array().unwrap();
    assert!(
        gens.iter().any(|g| g["origin"]
            .as_str()
            .unwrap()
            .starts_with("rollback of e2e-rb")),
        "{history}"
    );
    assert!(gens.iter().any(|g| g["health"] == "unhealthy"), "{history}");

    // The rollback sticks: an edit of another spec applies, and e2e-rb stays
    // on v1, not restarted, its rendered file v1's; until its own spec changes.
    let invocation = ws.env.unit_prop("e2e-rb.service", "InvocationID");
    ws.spec("20-other.toml", &web("e2e-rb-other", 18196, "other", ""));
    ws.env.wait_for(
        "the unrelated edit applied",
        Duration::from_secs(30),
        || ws.curl(18196).as_deref() == Some("other"),
    );
    assert_eq!(
        ws.curl(18193).as_deref(),
        Some("v1"),
        "still the good version"
    );
    assert_eq!(
        ws.env.unit_prop("e2e-rb.service", "InvocationID"),
        invocation,
        "the rolled-back unit was not restarted by the unrelated edit"
    );
    let rendered = std::fs::read_to_string(ws.output.join("e2e-rb.container")).unwrap();
    assert!(rendered.contains("echo v1"), "{rendered}");
    // ... and through a restart of the daemon (a package upgrade does one):
    // the pin is in the state directory, not in the old process.
    drop(d);
    let d = ws.start_daemon();
    assert_eq!(
        ws.curl(18193).as_deref(),
        Some("v1"),
        "still the good version"
    );
    assert_eq!(
        ws.env.unit_prop("e2e-rb.service", "InvocationID"),
        invocation,
        "the restarted daemon did not redeploy the failing version"
    );
    ws.spec(
        "10-rb.toml",
        &format!("{}\n{}", web("e2e-rb", 18193, "v3", ""), health("health")),
    );
    ws.env.wait_for(
        "its own spec change applied",
        Duration::from_secs(30),
        || ws.curl(18193).as_deref() == Some("v3"),
    );
    drop(d);
}

#[test]
fn the_daemon_reconnects_when_the_user_bus_restarts() {
    let _g = serial();
    let ws = Workspace::new("busrestart");
    let health = "[container.e2e-bus.health]\ntcp = \"127.0.0.1:18194\"\ninterval = \"2s\"\ntimeout = \"1s\"\n";
    ws.spec(
        "10-bus.toml",
        &format!("{}\n{health}", web("e2e-bus", 18194, "v1", "")),
    );
    let d = ws.start_daemon();
    let pid = ws.env.unit_prop(&d.unit, "MainPID");
    // A real fault: the user's D-Bus broker goes away and comes back; every
    // client connection, the agent's included, is dropped.
    ws.env
        .user_ok(&["systemctl", "--user", "restart", "dbus.service"]);
    ws.env
        .wait_for("the agent to notice", Duration::from_secs(30), || {
            !d.journal(&["MESSAGE_ID=5b3e0c0a8f4d4c55a1d2e36f9a7b1c07"])
                .is_empty()
        });
    // Still the same process, and it applies again.
    assert_eq!(ws.env.unit_prop(&d.unit, "MainPID"), pid);
    ws.spec(
        "10-bus.toml",
        &format!("{}\n{health}", web("e2e-bus", 18194, "v2", "")),
    );
    ws.env.wait_for(
        "the edit applied after reconnecting",
        Duration::from_secs(60),
        || ws.curl(18194).as_deref() == Some("v2"),
    );
    assert_eq!(ws.env.unit_prop(&d.unit, "ActiveState"), "active");
}

#[test]
fn bursts_of_file_events_and_sighup_storms_coalesce() {
    let _g = serial();
    let ws = Workspace::new("storm");
    ws.spec("10-st.toml", &web("e2e-storm", 18195, "v0", ""));
    let d = ws.start_daemon();
    let triggers = |what: &str| d.journal(&[&format!("TRIGGER={what}")]).len();

    // 1,000 writes in a burst (as a checkout or a sync tool makes), ending on v1.
    let path = ws.specs.join("10-st.toml");
    for i in 0..1000 {
        let body = if i == 999 { "v1" } else { "vx" };
        std::fs::write(&path, web("e2e-storm", 18195, body, "")).unwrap();
    }
    ws.env
        .wait_for("the burst applied", Duration::from_secs(30), || {
            ws.curl(18195).as_deref() == Some("v1")
        });
    // Counted once no trigger has come for 2 s (ten debounce windows).
    let quiet = Duration::from_secs(2);
    let n = ws
        .env
        .settled("applies", quiet, Duration::from_secs(60), || {
            triggers("specs changed")
        });
    // Coalescing, not a timing claim: a stall of the writer longer than the
    // debounce may split the burst, so a few applies are allowed.
    assert!((1..=5).contains(&n), "1,000 file events made {n} applies");

    // 200 SIGHUPs as fast as a shell sends them.
    let pid = ws.env.unit_prop(&d.unit, "MainPID");
    ws.env.user_ok(&[
        "sh",
        "-c",
        &format!("for i in $(seq 200); do kill -HUP {pid}; done"),
    ]);
    let n = ws
        .env
        .settled("applies", quiet, Duration::from_secs(60), || {
            triggers("SIGHUP")
        });
    assert!((1..=5).contains(&n), "200 SIGHUPs made {n} applies");
    assert_eq!(
        ws.env.unit_prop(&d.unit, "MainPID"),
        pid,
        "the agent is still the same process"
    );
}

/// Issue 14 item 3: deploy tools replace directories rather than edit them.
/// The specs path is a symlink swapped 100 times (a new release directory
/// each time, the old one deleted: `ln -sfn` done atomically, as git,
/// Ansible and rsync-based tools do) while its content keeps changing; the
/// daemon ends on the last version, still applies an edit in the final
/// directory, and then survives the symlink being replaced by a plain
/// directory (`rm -rf specs; mkdir specs`).
#[test]
fn the_watch_survives_the_specs_dir_being_swapped_and_replaced() {
    let _g = serial();
    let ws = Workspace::new("swap");
    let releases = ws.root.join("releases");
    let release = |i: u32, body: &str| {
        let dir = releases.join(i.to_string());
        ws.env
            .write(&dir.join("10-sw.toml"), &web("e2e-swap", 18198, body, ""));
        dir
    };
    let swap_to = |dir: &std::path::Path| {
        let tmp = ws.root.join("specs.tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(dir, &tmp).unwrap();
        std::fs::rename(&tmp, &ws.specs).unwrap();
    };
    std::fs::remove_dir_all(&ws.specs).unwrap();
    swap_to(&release(0, "v0"));
    let d = ws.start_daemon();
    ws.env.wait_for("v0", Duration::from_secs(30), || {
        ws.curl(18198).as_deref() == Some("v0")
    });
    for i in 1..=100 {
        swap_to(&release(i, &format!("v{i}")));
        std::fs::remove_dir_all(releases.join((i - 1).to_string())).unwrap();
    }
    ws.env
        .wait_for("the last release applied", Duration::from_secs(60), || {
            ws.curl(18198).as_deref() == Some("v100")
        });
    // An edit inside the final target: it is watched.
    release(100, "edited");
    ws.env
        .wait_for("the edit applied", Duration::from_secs(30), || {
            ws.curl(18198).as_deref() == Some("edited")
        });
    // The symlink replaced by a directory of its own.
    std::fs::remove_file(&ws.specs).unwrap();
    ws.spec("10-sw.toml", &web("e2e-swap", 18198, "plain", ""));
    ws.env.wait_for(
        "the plain directory applied",
        Duration::from_secs(30),
        || ws.curl(18198).as_deref() == Some("plain"),
    );
    ws.spec("10-sw.toml", &web("e2e-swap", 18198, "plain2", ""));
    ws.env
        .wait_for("an edit in it applied", Duration::from_secs(30), || {
            ws.curl(18198).as_deref() == Some("plain2")
        });
    drop(d);
}

/// "WATCHDOG pings": under `WatchdogSec=2s` the daemon is still the same
/// process, active, after 10 s with nothing to do (systemd kills a service
/// that misses its pings, with Result=watchdog).
#[test]
fn the_daemon_keeps_its_watchdog_fed() {
    let _g = serial();
    let ws = Workspace::new("watchdog");
    ws.spec("10-wd.toml", &web("e2e-wd", 18199, "wd", ""));
    let d = ws.start_daemon_watchdog("2s");
    let pid = ws.env.unit_prop(&d.unit, "MainPID");
    assert_eq!(ws.env.unit_prop(&d.unit, "WatchdogUSec"), "2s");
    // An observation window, five watchdog periods long.
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(ws.env.unit_prop(&d.unit, "ActiveState"), "active");
    assert_eq!(ws.env.unit_prop(&d.unit, "MainPID"), pid);
    assert_eq!(ws.env.unit_prop(&d.unit, "Result"), "success");
}
