//! End to end: a container stopped outside a change (issue 14 item 2).
//! `podman stop` ends a container with 143, which the rendered
//! `SuccessExitStatus=143` counts as a clean exit, so systemd's
//! `Restart=on-failure` leaves it down, and the files still match the specs.
//! The daemon sees the unit stop and starts it again (journal
//! `MESSAGE_ID=…c09`), `plan` lists it, `apply` starts it; a `restart = "no"`
//! container stays stopped.

mod support;

use std::time::Duration;

use support::{serial, stdout, web_spec, Workspace};

const UNIT_DRIFT: &str = "MESSAGE_ID=5b3e0c0a8f4d4c55a1d2e36f9a7b1c09";

fn web(name: &str, port: u16, body: &str, extra: &str) -> String {
    web_spec(name, port, &format!("echo {body}"), extra)
}

#[test]
fn the_daemon_starts_again_what_podman_stop_and_rm_took_down() {
    let _g = serial();
    let ws = Workspace::new("drift");
    ws.spec("10-a.toml", &web("e2e-drift", 18206, "a", ""));
    ws.spec(
        "20-no.toml",
        &web("e2e-drift-no", 18207, "no", "restart = \"no\""),
    );
    let d = ws.start_daemon();
    ws.env.wait_for("both up", Duration::from_secs(30), || {
        ws.curl(18206).as_deref() == Some("a") && ws.curl(18207).as_deref() == Some("no")
    });
    for how in [
        &["podman", "stop", "-t", "1", "e2e-drift"][..],
        &["podman", "rm", "-f", "e2e-drift"],
    ] {
        let invocation = ws.env.unit_prop("e2e-drift.service", "InvocationID");
        // Both go down at once (the restart = "no" one stays down from the
        // first round on).
        if ws.env.unit_prop("e2e-drift-no.service", "ActiveState") == "active" {
            ws.env
                .user_ok(&["podman", "stop", "-t", "1", "e2e-drift-no"]);
        }
        ws.env.user_ok(how);
        ws.env
            .wait_for("e2e-drift started again", Duration::from_secs(60), || {
                ws.curl(18206).as_deref() == Some("a")
                    && ws.env.unit_prop("e2e-drift.service", "InvocationID") != invocation
            });
        assert_eq!(
            ws.env.unit_prop("e2e-drift-no.service", "ActiveState"),
            "inactive",
            "restart = \"no\": stays stopped ({how:?})"
        );
    }
    let entries = d.journal(&[UNIT_DRIFT, "UNIT=e2e-drift.service"]);
    assert!(entries.len() >= 2, "a drift entry per stop: {entries:?}");
    let m = entries[0]["MESSAGE"].as_str().unwrap();
    assert!(
        m.contains("e2e-drift.service is stopped outside a change (inactive)"),
        "{m}"
    );
    assert!(d
        .journal(&[UNIT_DRIFT, "UNIT=e2e-drift-no.service"])
        .is_empty());
}

#[test]
fn plan_shows_and_apply_starts_a_unit_stopped_outside_a_change() {
    let _g = serial();
    let ws = Workspace::new("driftcli");
    ws.spec("10-a.toml", &web("e2e-driftc", 18208, "a", ""));
    ws.agent_ok(&["apply"]);
    ws.env.wait_for("up", Duration::from_secs(30), || {
        ws.curl(18208).as_deref() == Some("a")
    });
    assert_eq!(
        ws.agent_ok(&["plan"]).trim(),
        "No changes: the output directory and the units match the specs."
    );
    // Settled: that plan is remembered (`reconcile/stamp.rs`), and the
    // next one answers from it, still asking systemd about the units.
    std::thread::sleep(Duration::from_millis(2100));
    ws.agent_ok(&["plan"]);
    let stamped = ws.agent(&["-v", "plan", "--json"]);
    let err = String::from_utf8_lossy(&stamped.stderr);
    assert!(err.contains("nothing a plan reads changed"), "{err}");
    assert!(
        stdout(&stamped).contains("\"drift_checked\": true"),
        "{}",
        stdout(&stamped)
    );
    ws.env.user_ok(&["podman", "stop", "-t", "1", "e2e-driftc"]);
    ws.env.wait_for("down", Duration::from_secs(30), || {
        ws.env.unit_prop("e2e-driftc.service", "ActiveState") == "inactive"
    });
    let plan = ws.agent(&["plan"]);
    let text = stdout(&plan);
    assert!(plan.status.success(), "{text}");
    assert!(
        text.contains("e2e-driftc.service")
            && text.contains("(stopped outside a change (inactive))"),
        "{text}"
    );
    let out = ws.agent_ok(&["apply"]);
    assert!(out.contains("e2e-driftc.service"), "{out}");
    ws.env.wait_for("up again", Duration::from_secs(30), || {
        ws.curl(18208).as_deref() == Some("a")
    });
    assert_eq!(ws.agent_ok(&["apply"]).trim(), "No changes.");
}

/// Issue 14 item 9: the specs directory emptied under a running daemon (a
/// failed mount, a half-done checkout) removes nothing: the daemon refuses
/// (`MESSAGE_ID=…c0a`, STATUS says so) and the service keeps running; an
/// explicit `apply --allow-empty` removes it.
#[test]
fn an_emptied_specs_dir_removes_nothing_until_asked() {
    let _g = serial();
    let ws = Workspace::new("empty");
    ws.spec("10-e.toml", &web("e2e-empty", 18212, "e", ""));
    let d = ws.start_daemon();
    ws.env.wait_for("up", Duration::from_secs(30), || {
        ws.curl(18212).as_deref() == Some("e")
    });
    let pid = ws.env.unit_prop("e2e-empty.service", "MainPID");
    ws.remove_spec("10-e.toml");
    ws.env.wait_for(
        "the refusal in the journal",
        Duration::from_secs(30),
        || {
            !d.journal(&["MESSAGE_ID=5b3e0c0a8f4d4c55a1d2e36f9a7b1c0a"])
                .is_empty()
        },
    );
    assert!(
        d.status_text()
            .contains("no specs in the specs directory; keeping what runs"),
        "{}",
        d.status_text()
    );
    assert_eq!(ws.env.unit_prop("e2e-empty.service", "MainPID"), pid);
    assert!(ws.output.join("e2e-empty.container").exists());
    drop(d);
    let out = ws.agent(&["apply"]);
    assert_eq!(out.status.code(), Some(2));
    let out = ws.agent_ok(&["apply", "--allow-empty"]);
    assert!(out.contains("stop    e2e-empty.service"), "{out}");
    assert_eq!(
        ws.env.unit_prop("e2e-empty.service", "ActiveState"),
        "inactive"
    );
}

/// Issue 14 item 7: a container that ignores SIGTERM, with a 2 s
/// `stop_timeout` and a network of its own. Removing its spec stops it:
/// Podman kills it after 2 s and cleans up within `TimeoutStopSec=` (the
/// stop timeout plus 30 s), so the unit ends stopped, not failed, and the
/// container is gone, and its network can be removed.
#[test]
fn a_container_that_ignores_sigterm_stops_cleanly() {
    let _g = serial();
    let ws = Workspace::new("sigterm");
    ws.spec(
        "10-t.toml",
        "[network.e2e_term_net]\n\n[container.e2e-term]\nimage = \"localhost/busybox:latest\"\npull = \"never\"\nnetworks = [\"e2e_term_net\"]\nstop_timeout = \"2s\"\ncommand = [\"sh\", \"-c\", \"trap '' TERM; while :; do sleep 1; done\"]\n",
    );
    ws.agent_ok(&["apply"]);
    assert_eq!(
        ws.env.unit_prop("e2e-term.service", "ActiveState"),
        "active"
    );
    ws.remove_spec("10-t.toml");
    let out = ws.agent(&["apply", "--allow-empty"]);
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        support::stderr(&out)
    );
    // Killed after 2 s (137): a clean stop, not a failure.
    let show = ws.env.user_ok(&[
        "systemctl",
        "--user",
        "show",
        "-p",
        "ActiveState,Result,ExecMainStatus",
        "e2e-term.service",
    ]);
    assert!(
        show.contains("ActiveState=inactive") && show.contains("Result=success"),
        "{show}"
    );
    ws.env
        .wait_for("the container removed", Duration::from_secs(30), || {
            let ps = ws
                .env
                .user_ok(&["podman", "ps", "-a", "--format", "{{.Names}}"]);
            !ps.lines().any(|n| n == "e2e-term")
        });
    // Nothing is left attached: the network (Quadlet leaves it in place
    // when its unit stops) can be removed.
    ws.env.user_ok(&["podman", "network", "rm", "e2e_term_net"]);
}

/// ... while a container killed by the OOM killer (also 137) outside a stop
/// is still restarted (`RestartForceExitStatus=137`).
#[test]
fn an_oom_killed_container_is_still_restarted() {
    let _g = serial();
    let ws = Workspace::new("oomrestart");
    ws.spec(
        "10-o.toml",
        "[container.e2e-oom]\nimage = \"localhost/busybox:latest\"\npull = \"never\"\ncommand = [\"sh\", \"-c\", \"sleep 5; exec tail /dev/zero\"]\n[container.e2e-oom.resources]\nmemory = \"64M\"\n",
    );
    ws.agent_ok(&["apply"]);
    ws.env.wait_for(
        "a restart after the OOM kill",
        Duration::from_secs(60),
        || ws.env.unit_prop("e2e-oom.service", "NRestarts") != "0",
    );
    let _ = ws
        .env
        .user(&["systemctl", "--user", "reset-failed", "e2e-oom.service"]);
}

/// Issue 14 item 8: `rollback --to N` whose image has been removed since
/// (and may not be pulled) is refused before anything stops: the working
/// container keeps serving.
#[test]
fn a_rollback_whose_image_is_gone_changes_nothing() {
    let _g = serial();
    let ws = Workspace::new("rbgone");
    let image = "localhost/e2e-rb-gone:1";
    ws.env
        .user_ok(&["podman", "tag", "localhost/busybox:latest", image]);
    let spec = |img: &str, body: &str| {
        web_spec("e2e-rbg", 18213, &format!("echo {body}"), "")
            .replace("localhost/busybox:latest", img)
    };
    ws.spec("10-g.toml", &spec(image, "old"));
    ws.agent_ok(&["apply"]);
    ws.spec("10-g.toml", &spec("localhost/busybox:latest", "new"));
    ws.agent_ok(&["apply"]);
    ws.env.wait_for("new", Duration::from_secs(30), || {
        ws.curl(18213).as_deref() == Some("new")
    });
    ws.env.user_ok(&["podman", "rmi", image]);
    let invocation = ws.env.unit_prop("e2e-rbg.service", "InvocationID");

    let out = ws.agent(&["rollback", "--to", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = support::stderr(&out);
    assert!(
        err.contains("needs image localhost/e2e-rb-gone:1, which is not on this host")
            && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(ws.curl(18213).as_deref(), Some("new"));
    assert_eq!(
        ws.env.unit_prop("e2e-rbg.service", "InvocationID"),
        invocation,
        "the working container was not touched"
    );
}

/// Issue 14 item 10: a user whose manager has no session bus (no
/// dbus-user-session): `deploy-agent run` says so at once and exits 1,
/// rather than retrying until the unit's 10-minute start timeout.
#[test]
fn run_without_a_session_bus_fails_at_once_with_a_hint() {
    let _g = serial();
    let ws = Workspace::new("nobus");
    let start = std::time::Instant::now();
    let out = ws.agent_env(
        &[
            "-u",
            "DBUS_SESSION_BUS_ADDRESS",
            "XDG_RUNTIME_DIR=/nonexistent/runtime",
        ],
        &["run"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", support::stderr(&out));
    assert!(start.elapsed() < Duration::from_secs(20), "at once");
    let err = support::stderr(&out);
    assert!(
        err.contains("/nonexistent/runtime/bus does not exist")
            && err.contains("dbus-user-session"),
        "{err}"
    );
}
