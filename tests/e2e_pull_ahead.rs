//! End to end: an image update whose pull fails changes nothing that runs.
//! The agent pulls a changed container's missing image before it stops the
//! old container; when the pull fails, the old container keeps serving,
//! its rendered file stays as it was, the apply exits 1 and says why, and
//! it is logged with the PULL_FAILED id. (The downtime of a successful
//! update with and without pulling ahead is measured against a real local
//! registry by benches/pull_ahead.sh.)

mod support;

use support::{serial, stderr, stdout, web_spec, Workspace};

/// With -v the CLI's diagnostics carry their journal fields.
const PULL_FAILED_FIELD: &str = "message_id=5b3e0c0a8f4d4c55a1d2e36f9a7b1c0b";

#[test]
fn a_failed_pull_leaves_the_old_container_serving() {
    let _g = serial();
    let ws = Workspace::new("pullfail");
    let port = 18235;
    ws.spec("10-web.toml", &web_spec("e2e-pf", port, "echo one", ""));
    let out = ws.agent(&["apply"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(ws.curl(port).as_deref(), Some("one"));
    let file = ws.output.join("e2e-pf.container");
    let before = std::fs::read_to_string(&file).unwrap();
    let pid = ws.env.unit_prop("e2e-pf.service", "MainPID");

    // A new image from a registry that does not answer (nothing listens on
    // the port), and a setting change with it.
    let spec = web_spec("e2e-pf", port, "echo two", "")
        .replace("localhost/busybox:latest", "127.0.0.1:18236/nothing:v9")
        .replace("pull = \"never\"", "pull = \"missing\"");
    ws.spec("10-web.toml", &spec);
    let out = ws.agent(&["apply", "-v"]);
    let (o, e) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    assert!(
        format!("{o}{e}").contains("e2e-pf.service: pulling 127.0.0.1:18236/nothing:v9 failed"),
        "{o}{e}"
    );
    assert!(
        format!("{o}{e}").contains("the old container keeps running"),
        "{o}{e}"
    );
    assert_eq!(ws.curl(port).as_deref(), Some("one"), "the old one serves");
    assert_eq!(
        ws.env.unit_prop("e2e-pf.service", "MainPID"),
        pid,
        "not restarted"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    // The CLI says it on stderr as an error (the daemon in the journal),
    // with the same id.
    assert!(
        e.lines()
            .any(|l| l.starts_with("error: e2e-pf.service: pulling")
                && l.contains(PULL_FAILED_FIELD)),
        "{e}"
    );
    // `plan` still shows the change: the next apply tries again.
    let plan = ws.agent_ok(&["plan"]);
    assert!(plan.contains("~ e2e-pf.container (changed)"), "{plan}");
}
