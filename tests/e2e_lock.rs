//! End to end: one writer at a time (issue 13 item 4). While another
//! process holds the apply lock of the state directory (here `flock(1)`,
//! standing in for a daemon in the middle of an apply), `apply` waits for
//! it, says so, and either gives up after its `--timeout` with nothing
//! changed (exit 1) or applies once the lock is free.

mod support;

use std::time::{Duration, Instant};

use support::{serial, stderr, stdout, web_spec, Workspace};

#[test]
fn apply_waits_for_the_lock_and_gives_up_or_applies() {
    let _g = serial();
    let ws = Workspace::new("lock");
    ws.spec("10-l.toml", &web_spec("e2e-lock", 18209, "echo v1", ""));
    ws.agent_ok(&["apply"]);
    ws.env.wait_for("v1", Duration::from_secs(30), || {
        ws.curl(18209).as_deref() == Some("v1")
    });
    ws.spec("10-l.toml", &web_spec("e2e-lock", 18209, "echo v2", ""));

    let lock = ws.state.join("lock");
    let lock = lock.to_string_lossy();
    let held = || {
        !ws.env
            .user(&["flock", "-n", &lock, "true"])
            .status
            .success()
    };
    let holder = ws.env.spawn_user(&["flock", &lock, "sleep", "8"]);
    ws.env
        .wait_for("the lock held", Duration::from_secs(10), held);

    let out = ws.agent(&["apply", "--timeout", "1s"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(err.contains("is applying; waiting up to 1s"), "{err}");
    assert!(
        err.contains("gave up waiting (nothing was changed)"),
        "{err}"
    );
    assert_eq!(ws.curl(18209).as_deref(), Some("v1"), "nothing applied");

    // Waits, then applies once the holder is gone.
    let start = Instant::now();
    let out = ws.agent(&["apply", "--timeout", "60s"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(!held(), "applied only after the holder let go");
    assert!(start.elapsed() > Duration::from_secs(1), "it did wait");
    assert!(
        stdout(&out).contains("restart e2e-lock.service"),
        "{}",
        stdout(&out)
    );
    let _ = holder.wait_with_output();
    ws.env.wait_for("v2", Duration::from_secs(30), || {
        ws.curl(18209).as_deref() == Some("v2")
    });
}
