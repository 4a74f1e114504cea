//! Faults, with the real user manager, Podman and journal (tests/env):
//!
//! * crash safety: the agent SIGKILLs itself at each failpoint of a real
//!   apply (feature `failpoints`); the state it leaves is checked (so the
//!   crash is known to have happened where it says), then the next apply,
//!   or the daemon's first one, must converge: the changed container on its
//!   new version, restarted exactly once; the removed one stopped and its
//!   unit gone, even when the crash came between its stop and its file's
//!   removal; the untouched one never restarted; the output directory
//!   exactly what `render` makes, no temp file, nothing pending;
//! * systemd and D-Bus faults under a running daemon: the user manager
//!   re-executing again and again while an edit is applied, and the user bus
//!   gone for several seconds; the agent stays the same process, logs it,
//!   retries with backoff and finishes the apply;
//! * spec edits while a health check ticks every second: none is lost
//!   (the tick wins the daemon's select! during the debounce);
//! * a storm of 1,000 file events of every kind with 200 SIGHUPs in the
//!   middle: a handful of attempts, one change set, one restart;
//! * least privilege: a symlink where a rendered file would go is refused
//!   and its target never written; symlinks and unmarked files in the output
//!   directory are never written, removed or followed; a specs directory
//!   that becomes world-writable is refused while the services keep running,
//!   and the daemon applies again once it is fixed.
//!
//! A fault the environment cannot produce without killing other tests'
//! services is not simulated here: restarting `user@UID.service` ends every
//! user service, the agent's transient unit included.
#![cfg(feature = "failpoints")]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{
    serial, stderr, stdout, web_spec, Daemon, TestEnv, Workspace, UNIT_STARTED, UNIT_STOPPED,
};

const SYSTEMD_UNREACHABLE: &str = "MESSAGE_ID=5b3e0c0a8f4d4c55a1d2e36f9a7b1c07";
const SPEC_INVALID: &str = "MESSAGE_ID=5b3e0c0a8f4d4c55a1d2e36f9a7b1c04";
const APPLY_STARTED: &str = "MESSAGE_ID=5b3e0c0a8f4d4c55a1d2e36f9a7b1c01";

fn web(name: &str, port: u16, body: &str) -> String {
    web_spec(name, port, &format!("echo {body}"), "")
}

/// Every entry of a directory with its bytes (a symlink: its target), sorted.
fn listing(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else {
                String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned()
            };
            (name, what)
        })
        .collect();
    v.sort();
    v
}

/// How many times `unit` started (or stopped) since `cursor`, once the
/// journal has caught up with at least `at_least` of them.
fn count(env: &TestEnv, cursor: &str, unit: &str, id: &str, at_least: usize) -> usize {
    // Wait (up to 5 s) for the events the caller knows must have happened to
    // reach the journal, then flush the journal and count once more, so
    // that events beyond `at_least` are counted too instead of stopping at
    // the number the caller expects.
    let start = Instant::now();
    while env.unit_events(cursor, unit, id).len() < at_least
        && start.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let sync = env.root(&["journalctl", "--sync"]);
    assert!(sync.status.success(), "journalctl --sync: {sync:?}");
    env.unit_events(cursor, unit, id).len()
}

fn svc(name: &str) -> String {
    format!("{name}.service")
}

/// Recovery by a one-shot `apply`, or by the daemon's first apply.
#[derive(Clone, Copy, PartialEq)]
enum Recover {
    Apply,
    Daemon,
}

fn crash_then_converge(i: usize, failpoint: &str, recover: Recover) {
    let ws = Workspace::new(&format!("fault-crash{i}"));
    let (a, b, c) = (format!("fx{i}a"), format!("fx{i}b"), format!("fx{i}c"));
    let port = 18310 + 3 * i as u16;
    let ctx = format!("{failpoint} (case {i})");
    ws.spec("10-a.toml", &web(&a, port, "a1"));
    ws.spec("20-b.toml", &web(&b, port + 1, "b1"));
    ws.spec("30-c.toml", &web(&c, port + 2, "c1"));
    ws.agent_ok(&["apply"]);
    for (p, body) in [(port, "a1"), (port + 1, "b1"), (port + 2, "c1")] {
        ws.env.wait_for(
            &format!("{ctx}: {body} up"),
            Duration::from_secs(20),
            || ws.curl(p).as_deref() == Some(body),
        );
    }
    let b_pid = ws.env.unit_prop(&svc(&b), "MainPID");
    let b_invocation = ws.env.unit_prop(&svc(&b), "InvocationID");
    let cursor = ws.env.journal_cursor();

    // a changes, c goes away; the agent dies at the failpoint.
    ws.spec("10-a.toml", &web(&a, port, "a2"));
    ws.remove_spec("30-c.toml");
    let fp = format!("DEPLOY_AGENT_FAILPOINT={failpoint}");
    let out = ws.agent_env(&[&fp], &["apply"]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "{ctx}: killed by SIGKILL\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains(&format!("failpoint {failpoint}: killing myself")),
        "{ctx}: {}",
        stderr(&out)
    );

    // What the crash left: proof that it came where the failpoint says.
    let a_file = ws.output.join(format!("{a}.container"));
    let c_file = ws.output.join(format!("{c}.container"));
    let a_text = std::fs::read_to_string(&a_file).unwrap();
    let temps: Vec<String> = listing(&ws.output)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with('.'))
        .collect();
    let pending = ws.state.join("pending.json");
    let need_reload = || ws.env.unit_prop(&svc(&a), "NeedDaemonReload");
    // Stops come first: c is stopped at every failpoint.
    assert_eq!(
        ws.env.unit_prop(&svc(&c), "ActiveState"),
        "inactive",
        "{ctx}: c stopped before any file was written"
    );
    assert_eq!(
        ws.env.unit_prop(&svc(&b), "MainPID"),
        b_pid,
        "{ctx}: b untouched by the crashed apply"
    );
    match failpoint {
        "write-before-rename" => {
            assert!(
                temps.len() == 1 && temps[0].starts_with(&format!(".{a}.container.tmp-")),
                "{ctx}: a half-done write: {temps:?}"
            );
            assert!(
                a_text.contains("echo a1"),
                "{ctx}: a's file not replaced yet"
            );
            assert!(c_file.exists(), "{ctx}: c's file still there");
        }
        "after-write" => {
            assert!(temps.is_empty(), "{ctx}: {temps:?}");
            assert!(a_text.contains("echo a2"), "{ctx}: a's file written");
            assert!(
                c_file.exists(),
                "{ctx}: died between c's stop and its file's removal"
            );
        }
        "before-reload" => {
            assert!(a_text.contains("echo a2") && !c_file.exists(), "{ctx}");
            assert_eq!(need_reload(), "yes", "{ctx}: systemd not reloaded yet");
        }
        "after-reload" => {
            assert!(a_text.contains("echo a2") && !c_file.exists(), "{ctx}");
            assert_eq!(need_reload(), "no", "{ctx}: reloaded");
            assert_eq!(
                ws.curl(port).as_deref(),
                Some("a1"),
                "{ctx}: a not restarted yet"
            );
        }
        "after-jobs" => {
            assert_eq!(ws.curl(port).as_deref(), Some("a2"), "{ctx}: a restarted");
        }
        other => panic!("unknown failpoint {other}"),
    }
    assert_eq!(
        pending.exists(),
        failpoint != "after-jobs",
        "{ctx}: pending.json until the jobs are done"
    );

    // The next apply finishes the job.
    let daemon: Option<Daemon> = match recover {
        Recover::Apply => {
            let out = ws.agent_ok(&["apply"]);
            if failpoint == "after-jobs" {
                assert_eq!(
                    out.trim(),
                    "No changes.",
                    "{ctx}: all done before the crash"
                );
            }
            None
        }
        Recover::Daemon => Some(ws.start_daemon()),
    };
    ws.env
        .wait_for(&format!("{ctx}: a on a2"), Duration::from_secs(20), || {
            ws.curl(port).as_deref() == Some("a2")
        });
    assert_eq!(
        count(ws.env, &cursor, &svc(&a), UNIT_STARTED, 1),
        1,
        "{ctx}: a restarted exactly once across the crash and the recovery"
    );
    assert_eq!(ws.env.unit_prop(&svc(&b), "MainPID"), b_pid, "{ctx}: b");
    assert_eq!(
        ws.env.unit_prop(&svc(&b), "InvocationID"),
        b_invocation,
        "{ctx}: b never restarted"
    );
    assert_eq!(
        count(ws.env, &cursor, &svc(&b), UNIT_STOPPED, 0),
        0,
        "{ctx}: b"
    );
    assert_eq!(
        count(ws.env, &cursor, &svc(&c), UNIT_STARTED, 0),
        0,
        "{ctx}: c"
    );
    assert_eq!(
        ws.env.unit_prop(&svc(&c), "LoadState"),
        "not-found",
        "{ctx}: no orphaned unit"
    );
    assert_eq!(
        ws.env.unit_prop(&svc(&c), "ActiveState"),
        "inactive",
        "{ctx}"
    );
    assert!(!pending.exists(), "{ctx}: nothing pending");
    // Exactly the files `render` makes: none half-written, no temp file.
    let expected = ws.root.join("expected");
    ws.agent_ok(&["render", "--out", &expected.to_string_lossy()]);
    assert_eq!(listing(&ws.output), listing(&expected), "{ctx}: output dir");
    if let Some(d) = &daemon {
        assert!(
            d.journal(&[APPLY_STARTED]).len() <= 1,
            "{ctx}: the daemon applied once"
        );
    }
    drop(daemon);
    assert_eq!(
        ws.agent_ok(&["apply"]).trim(),
        "No changes.",
        "{ctx}: converged"
    );
}

#[test]
fn a_crash_at_any_failpoint_converges_restarting_only_the_changed_unit() {
    let _g = serial();
    let failpoints = [
        "write-before-rename",
        "after-write",
        "before-reload",
        "after-reload",
        "after-jobs",
    ];
    for (i, fp) in failpoints.iter().enumerate() {
        crash_then_converge(i, fp, Recover::Apply);
    }
    // Between the reload and the jobs the files already match: only the
    // journal (pending.json) says what is left. The daemon honours it too.
    crash_then_converge(5, "after-reload", Recover::Daemon);
}

/// The agent as a daemon with two containers: `a` gets edited, `b` must stay.
struct Pair<'w> {
    d: Daemon<'w>,
    agent_pid: String,
    b_pid: String,
}

fn pair<'w>(ws: &'w Workspace, a: &str, b: &str, port: u16) -> Pair<'w> {
    ws.spec("10-a.toml", &web(a, port, "a1"));
    ws.spec("20-b.toml", &web(b, port + 1, "b1"));
    let d = ws.start_daemon();
    ws.env.wait_for("a and b up", Duration::from_secs(20), || {
        ws.curl(port).as_deref() == Some("a1") && ws.curl(port + 1).as_deref() == Some("b1")
    });
    Pair {
        agent_pid: ws.env.unit_prop(&d.unit, "MainPID"),
        b_pid: ws.env.unit_prop(&svc(b), "MainPID"),
        d,
    }
}

impl Pair<'_> {
    /// Same agent process, still active; b never restarted; nothing pending.
    fn check_survived(&self, b: &str) {
        let env = self.d.ws.env;
        assert_eq!(
            env.unit_prop(&self.d.unit, "MainPID"),
            self.agent_pid,
            "same agent process"
        );
        // "reloading" while it applies (sd_notify RELOADING=1), then "active".
        env.wait_for("the agent active", Duration::from_secs(30), || {
            env.unit_prop(&self.d.unit, "ActiveState") == "active"
        });
        assert_eq!(env.unit_prop(&svc(b), "MainPID"), self.b_pid, "b untouched");
        env.wait_for("nothing pending", Duration::from_secs(10), || {
            !self.d.ws.state.join("pending.json").exists()
        });
    }
}

#[test]
fn the_daemon_finishes_an_apply_that_manager_reexecs_cut_short() {
    let _g = serial();
    let ws = Workspace::new("fault-reexec");
    let p = pair(&ws, "fx-rx-a", "fx-rx-b", 18330);
    // The user manager re-executes back to back for a few seconds (its bus
    // name and connection go away and come back each time) while an edit
    // is being applied: calls in flight get NoReply, is_connected fails.
    // The edit lands once the storm is under way (its first re-exec done).
    let started = ws.root.join("storm-started");
    let storm = ws.env.spawn_user(&[
        "sh",
        "-c",
        &format!(
            "for i in $(seq 25); do systemctl --user daemon-reexec || exit 1; touch {}; done",
            started.display()
        ),
    ]);
    ws.env
        .wait_for("the storm under way", Duration::from_secs(30), || {
            started.exists()
        });
    ws.spec("10-a.toml", &web("fx-rx-a", 18330, "a2"));
    let out = storm.wait_with_output().unwrap();
    assert!(out.status.success(), "daemon-reexec: {}", stderr(&out));
    ws.env.wait_for(
        "the edit applied after the re-execs",
        Duration::from_secs(60),
        || ws.curl(18330).as_deref() == Some("a2"),
    );
    p.check_survived("fx-rx-b");
    let seen = p.d.journal(&[SYSTEMD_UNREACHABLE]);
    assert!(
        !seen.is_empty(),
        "the agent saw the manager go away (otherwise the storm missed the apply)"
    );
}

/// Starts the user bus again however a test ends.
struct BusBack<'e>(&'e TestEnv);

impl Drop for BusBack<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .user(&["systemctl", "--user", "start", "dbus.socket"]);
    }
}

#[test]
fn the_daemon_rides_out_a_user_bus_outage_with_backoff() {
    let _g = serial();
    let ws = Workspace::new("fault-bus");
    let p = pair(&ws, "fx-bus-a", "fx-bus-b", 18332);
    let cursor_entries = p.d.journal(&[SYSTEMD_UNREACHABLE]).len();
    assert_eq!(cursor_entries, 0);

    // The bus goes away (socket and broker) and stays away.
    let back = BusBack(ws.env);
    ws.env
        .user_ok(&["systemctl", "--user", "stop", "dbus.socket", "dbus.service"]);
    ws.spec("10-a.toml", &web("fx-bus-a", 18332, "a2"));
    let retries = || -> Vec<String> {
        p.d.journal(&[SYSTEMD_UNREACHABLE])
            .iter()
            .filter_map(|e| e["MESSAGE"].as_str().map(str::to_string))
            .filter(|m| m.starts_with("cannot reach systemd"))
            .collect()
    };
    ws.env
        .wait_for("three failed reconnects", Duration::from_secs(20), || {
            retries().len() >= 3
        });
    assert_eq!(
        ws.curl(18332).as_deref(),
        Some("a1"),
        "nothing applied without systemd"
    );
    ws.env
        .user_ok(&["systemctl", "--user", "start", "dbus.socket"]);
    drop(back);
    ws.env.wait_for(
        "the edit applied after the bus came back",
        Duration::from_secs(60),
        || ws.curl(18332).as_deref() == Some("a2"),
    );
    p.check_survived("fx-bus-b");

    // Backoff: 1 s, then doubling.
    let delays: Vec<u64> = retries()
        .iter()
        .map(|m| {
            let s = m.rsplit("retrying in ").next().unwrap();
            s.trim_end_matches('s')
                .parse()
                .unwrap_or_else(|_| panic!("{m}"))
        })
        .collect();
    assert!(delays.len() >= 3, "{delays:?}");
    for (n, d) in delays.iter().enumerate() {
        assert_eq!(*d, (1u64 << n).min(30), "backoff {delays:?}");
    }
    // And the agent really waits that long: measured between the journal
    // entries of consecutive failed reconnects (each entry is written when
    // an attempt has failed, so the gap is the wait plus one attempt).
    let stamps: Vec<f64> =
        p.d.journal(&[SYSTEMD_UNREACHABLE])
            .iter()
            .filter(|e| {
                e["MESSAGE"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("cannot reach systemd"))
            })
            .map(|e| {
                let us: u64 = e["__REALTIME_TIMESTAMP"].as_str().unwrap().parse().unwrap();
                us as f64 / 1e6
            })
            .collect();
    for (n, pair) in stamps.windows(2).enumerate() {
        let (gap, waited) = (pair[1] - pair[0], delays[n] as f64);
        assert!(
            gap >= waited * 0.9 && gap < waited + 10.0,
            "retry {n}: said it would wait {waited} s, the next attempt came after {gap:.2} s"
        );
    }
    // The loss itself is logged too, before the first reconnect: as the
    // bus closing, or (when another event came first) as a failed call.
    let messages: Vec<String> =
        p.d.journal(&[SYSTEMD_UNREACHABLE])
            .iter()
            .filter_map(|e| e["MESSAGE"].as_str().map(str::to_string))
            .collect();
    assert!(
        messages
            .first()
            .is_some_and(|m| m.contains("connection to systemd's bus was closed")
                || m.contains("lost the connection to systemd")),
        "the agent logged losing systemd: {messages:#?}"
    );
}

#[test]
fn a_storm_of_file_events_and_sighups_makes_a_few_attempts_and_one_restart() {
    let _g = serial();
    let ws = Workspace::new("fault-storm");
    ws.spec("10-st.toml", &web("fx-storm", 18334, "v0"));
    let d = ws.start_daemon();
    ws.env.wait_for("v0", Duration::from_secs(20), || {
        ws.curl(18334).as_deref() == Some("v0")
    });
    let agent_pid = ws.env.unit_prop(&d.unit, "MainPID");
    let attempts =
        || d.journal(&["TRIGGER=specs changed"]).len() + d.journal(&["TRIGGER=SIGHUP"]).len();
    let before = attempts();
    let cursor = ws.env.journal_cursor();

    // 200 SIGHUPs from another process while 1,000 file operations run:
    // 250 editor saves (write a swap file, rename it over the spec; always
    // the same new content, so there is one change set) and 250 unrelated
    // spec files created and deleted.
    let hups = ws.env.spawn_user(&[
        "sh",
        "-c",
        &format!("for i in $(seq 200); do kill -HUP {agent_pid} || exit 1; done"),
    ]);
    let v1 = web("fx-storm", 18334, "v1");
    for i in 0..250 {
        let swap = ws.specs.join(".10-st.toml.swp");
        std::fs::write(&swap, &v1).unwrap();
        std::fs::rename(&swap, ws.specs.join("10-st.toml")).unwrap();
        let junk = ws.specs.join(format!("50-junk-{i}.toml"));
        std::fs::write(&junk, "# nothing\n").unwrap();
        std::fs::remove_file(&junk).unwrap();
    }
    let out = hups.wait_with_output().unwrap();
    assert!(out.status.success(), "kill -HUP: {}", stderr(&out));
    ws.env.wait_for("v1", Duration::from_secs(30), || {
        ws.curl(18334).as_deref() == Some("v1")
    });
    // Counted once no attempt has come for 2 s (ten debounce windows).
    let n = ws.env.settled(
        "attempts",
        Duration::from_secs(2),
        Duration::from_secs(60),
        attempts,
    ) - before;
    assert!(
        (1..=8).contains(&n),
        "1,000 file events and 200 SIGHUPs made {n} attempts"
    );
    assert_eq!(
        d.journal(&[APPLY_STARTED]).len(),
        2,
        "the first apply and exactly one change set in the storm"
    );
    assert_eq!(
        count(ws.env, &cursor, "fx-storm.service", UNIT_STARTED, 1),
        1,
        "restarted once"
    );
    assert_eq!(ws.env.unit_prop(&d.unit, "MainPID"), agent_pid);
}

#[test]
fn the_agent_never_follows_a_symlink_or_touches_an_unmarked_file_in_its_output_dir() {
    let _g = serial();
    let ws = Workspace::new("fault-lp");
    let target = ws.root.join("somefile");
    // Valid Quadlet text, so the user manager's generator, which does
    // follow the symlink on every reload, makes a harmless unit of it.
    let original = "[Container]\nImage=localhost/busybox:latest\nExec=true\n# keep me\n";
    ws.env.write(&target, original);
    let mtime = std::fs::metadata(&target).unwrap().modified().unwrap();
    ws.env
        .write(&ws.output.join("README"), "the operator's notes\n");
    let link = ws.output.join("fx-lp-evil.container");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    // Named like the agent's own temp file.
    std::os::unix::fs::symlink(&target, ws.output.join(".fx-lp-evil.container.tmp-1")).unwrap();
    ws.env.write(
        &ws.output.join("fx-lp-mine.container"),
        "[Container]\nImage=localhost/busybox:latest\nExec=true\n",
    );
    ws.env.write(
        &ws.output.join(".operator-notes.tmp-old"),
        "not a temp file of the agent\n",
    );
    let foreign = listing(&ws.output);
    let untouched = |what: &str| {
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            original,
            "{what}: the symlink's target"
        );
        assert_eq!(
            std::fs::metadata(&target).unwrap().modified().unwrap(),
            mtime,
            "{what}: the target not even rewritten"
        );
        let now = listing(&ws.output);
        for f in &foreign {
            assert!(now.contains(f), "{what}: {} untouched: {now:?}", f.0);
        }
    };

    // A spec whose rendered file would go where the symlink is.
    ws.spec(
        "10-lp.toml",
        &format!(
            "{}{}",
            web("fx-lp-ok", 18335, "ok"),
            web("fx-lp-evil", 18336, "evil")
        ),
    );
    let out = ws.agent(&["apply"]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains("fx-lp-evil.container")
            && all.contains("the output directory already has a symlink with this name"),
        "a clear refusal naming the file: {all}"
    );
    untouched("refused apply");
    assert!(
        !ws.output.join("fx-lp-ok.container").exists(),
        "nothing written: {all}"
    );
    assert_eq!(
        ws.env.unit_prop("fx-lp-ok.service", "ActiveState"),
        "inactive"
    );

    // Without that spec the apply goes ahead around the foreign files, and
    // removes none of them although no spec asks for them.
    ws.spec("10-lp.toml", &web("fx-lp-ok", 18335, "ok"));
    ws.agent_ok(&["apply"]);
    ws.env.wait_for("ok up", Duration::from_secs(20), || {
        ws.curl(18335).as_deref() == Some("ok")
    });
    untouched("apply");
    ws.spec("10-lp.toml", &web("fx-lp-ok", 18335, "ok2"));
    ws.agent_ok(&["apply"]);
    ws.env.wait_for("ok2 up", Duration::from_secs(20), || {
        ws.curl(18335).as_deref() == Some("ok2")
    });
    untouched("an apply that rewrote a file");
    ws.remove_spec("10-lp.toml");
    ws.agent_ok(&["apply", "--allow-empty"]);
    assert!(
        !ws.output.join("fx-lp-ok.container").exists(),
        "its own file removed"
    );
    untouched("an apply that removed everything it made");
    assert_eq!(
        ws.env.unit_prop("fx-lp-mine.service", "ActiveState"),
        "inactive",
        "the operator's unit was not started"
    );
    for f in &foreign {
        std::fs::remove_file(ws.output.join(&f.0)).unwrap();
    }
}

#[test]
fn a_world_writable_specs_dir_is_refused_while_the_services_keep_running() {
    use std::os::unix::fs::PermissionsExt;
    let _g = serial();
    let ws = Workspace::new("fault-ww");
    ws.spec("10-w.toml", &web("fx-ww", 18337, "w1"));
    let d = ws.start_daemon();
    ws.env.wait_for("w1", Duration::from_secs(20), || {
        ws.curl(18337).as_deref() == Some("w1")
    });
    let pid = ws.env.unit_prop("fx-ww.service", "MainPID");
    let rendered = std::fs::read(ws.output.join("fx-ww.container")).unwrap();
    let mode = |m: u32| std::fs::set_permissions(&ws.specs, std::fs::Permissions::from_mode(m));

    // Anyone may now write specs: the agent refuses them all, edits included.
    mode(0o777).unwrap();
    ws.spec("10-w.toml", &web("fx-ww", 18337, "w2"));
    ws.env.wait_for(
        "the refusal in the journal",
        Duration::from_secs(20),
        || {
            d.journal(&[SPEC_INVALID]).iter().any(|e| {
                e["MESSAGE"]
                    .as_str()
                    .is_some_and(|m| m.contains("is writable by everyone (mode 777)"))
            })
        },
    );
    // The refusal is logged by the apply attempt itself, which has ended:
    // nothing can have been applied after it.
    assert_eq!(
        ws.env.unit_prop("fx-ww.service", "MainPID"),
        pid,
        "still running"
    );
    assert_eq!(
        ws.curl(18337).as_deref(),
        Some("w1"),
        "the edit was not applied"
    );
    assert_eq!(
        std::fs::read(ws.output.join("fx-ww.container")).unwrap(),
        rendered
    );
    assert!(
        d.status_text().contains("specs invalid"),
        "{}",
        d.status_text()
    );

    // Fixed: the daemon notices the permission change and applies the edit.
    mode(0o755).unwrap();
    ws.env.wait_for(
        "the edit applied once the dir is safe",
        Duration::from_secs(30),
        || ws.curl(18337).as_deref() == Some("w2"),
    );
}

#[test]
fn no_edit_is_lost_while_health_checks_tick() {
    let _g = serial();
    let ws = Workspace::new("fault-tick");
    // A check every 200 ms: its timer fires in every 500 ms debounce window
    // of the daemon's file watcher, and wins the select! there. (on_failure
    // none: only the edits restart the unit, well below systemd's start
    // limit of 5 in 10 s.)
    let health = "[container.fx-tick.health]\ntcp = \"127.0.0.1:18338\"\ninterval = \"200ms\"\ntimeout = \"200ms\"\nstart_period = \"5s\"\non_failure = \"none\"\n";
    let spec = |v: usize| format!("{}{health}", web("fx-tick", 18338, &format!("v{v}")));
    ws.spec("10-t.toml", &spec(0));
    let d = ws.start_daemon();
    ws.env.wait_for("v0", Duration::from_secs(20), || {
        ws.curl(18338).as_deref() == Some("v0")
    });
    let agent_pid = ws.env.unit_prop(&d.unit, "MainPID");
    for v in 1..=3 {
        ws.spec("10-t.toml", &spec(v));
        ws.env.wait_for(
            &format!("edit v{v} applied"),
            Duration::from_secs(15),
            || ws.curl(18338).as_deref() == Some(format!("v{v}").as_str()),
        );
    }
    assert_eq!(ws.env.unit_prop(&d.unit, "MainPID"), agent_pid);
}
