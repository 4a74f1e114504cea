//! End to end: `on_failure = "restart"` acting on a real unit of the real
//! user manager. "restart the unit, with backoff `restart_delay`, then twice
//! as long each time, and at most `max_restarts` restarts an hour; then the
//! agent gives up and says so": the starts are counted and timed from the
//! user manager's own journal entries, not from the agent's.

mod support;

use std::time::Duration;

use support::{serial, web_spec, Workspace, UNIT_STARTED};

const HEALTH_RESTART: &str = "MESSAGE_ID=3fb04091a5c59f804bcc58698e50f74b";
const HEALTH_GAVE_UP: &str = "MESSAGE_ID=8fc03c6ad142053b02fdeff31add758f";

/// The entry's `__REALTIME_TIMESTAMP`, in microseconds.
fn at(e: &serde_json::Value) -> u64 {
    e["__REALTIME_TIMESTAMP"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no timestamp: {e}"))
}

#[test]
fn restart_policy_backs_off_on_a_real_unit_then_gives_up() {
    let _g = serial();
    let ws = Workspace::new("restartpolicy");
    let unit = "e2e-rp.service";
    // The container serves on 18205; its check connects to 18206, where
    // nothing listens: every probe fails.
    ws.spec(
        "10-rp.toml",
        &format!(
            "{}\n[container.e2e-rp.health]\ntcp = \"127.0.0.1:18206\"\ninterval = \"1s\"\ntimeout = \"1s\"\nretries = 1\non_failure = \"restart\"\nrestart_delay = \"1s\"\nmax_restarts = 3\n",
            web_spec(
                "e2e-rp",
                18205,
                "echo rp",
                "[container.e2e-rp.resources]\nmemory = \"64M\""
            )
        ),
    );
    let cursor = ws.env.journal_cursor();
    let d = ws.start_daemon();
    ws.env
        .wait_for("the agent gives up", Duration::from_secs(120), || {
            !d.journal(&[HEALTH_GAVE_UP]).is_empty()
        });
    let gave_up = d.journal(&[HEALTH_GAVE_UP, &format!("UNIT={unit}")]);
    let g = gave_up.first().expect("a gave-up entry for the unit");
    assert!(
        g["MESSAGE"]
            .as_str()
            .unwrap()
            .contains("3 restarts within 1h"),
        "{g}"
    );
    // A fourth restart would come 8 s after the fourth failure: watch for
    // 12 s after giving up (an observation window, not a timing claim), and
    // the unit must not have been started again.
    let now_us = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64
    };
    let settled = at(g) + 12_000_000;
    std::thread::sleep(Duration::from_micros(settled.saturating_sub(now_us())));
    let starts = ws.env.unit_events(&cursor, unit, UNIT_STARTED);
    assert_eq!(
        starts.len(),
        4,
        "the first start and 3 restarts, then none: {:?}",
        starts.iter().map(at).collect::<Vec<_>>()
    );
    // Each restart waited at least its backoff after the start before it
    // (the failure is seen at the first probe, so the gap is the probe plus
    // the delay): 1 s, 2 s, 4 s.
    for (i, pair) in starts.windows(2).enumerate() {
        let gap = at(&pair[1]) - at(&pair[0]);
        let delay = 1_000_000u64 << i;
        assert!(
            gap >= delay,
            "restart {} came {gap} µs after the start before it, less than its backoff {delay} µs",
            i + 1
        );
    }
    let restarts = d.journal(&[HEALTH_RESTART, &format!("UNIT={unit}")]);
    assert_eq!(
        restarts.len(),
        3,
        "the agent's restart entries: {restarts:?}"
    );
    let r = ws.env.unit_prop(unit, "ActiveState");
    assert_eq!(r, "active", "giving up leaves the unit as it is");

    // status --json: the restarts, and memory use against the limit.
    let out = ws.agent(&["status", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a unit failed its checks: exit 1"
    );
    let status: serde_json::Value =
        serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let row = status["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["unit"] == unit)
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(row["restarts"], 3, "{row}");
    assert_eq!(row["health"], "failed", "{row}");
    assert_eq!(row["memory_max"], 64 * 1024 * 1024, "{row}");
    assert!(
        row["memory_current"].as_u64().is_some_and(|m| m > 0),
        "{row}"
    );
    drop(d);
}
