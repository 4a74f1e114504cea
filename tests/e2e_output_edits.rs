//! End to end: rendered files changed outside the agent (issue 14 item 9).
//! The daemon watches its output directory: a hand edit or a removal of a
//! rendered file is noticed when it happens (journal `MESSAGE_ID=…c0c`) and
//! the file is put back as the specs say; a file that lost its mark is
//! refused with the same id, and `status` lists it as not managed (exit 1)
//! instead of letting it vanish.

mod support;

use std::time::Duration;

use support::{serial, stdout, web_spec, Workspace};

const OUTPUT_EDITED: &str = "MESSAGE_ID=5b3e0c0a8f4d4c55a1d2e36f9a7b1c0c";

#[test]
fn hand_edits_and_removals_of_rendered_files_are_undone_and_said() {
    let _g = serial();
    let ws = Workspace::new("outedit");
    ws.spec("10-a.toml", &web_spec("e2e-oe", 18237, "echo a", ""));
    let d = ws.start_daemon();
    ws.env.wait_for("up", Duration::from_secs(30), || {
        ws.curl(18237).as_deref() == Some("a")
    });
    let file = ws.output.join("e2e-oe.container");
    let rendered = std::fs::read_to_string(&file).unwrap();

    // A hand edit of a setting: put back, and said.
    ws.env
        .write(&file, &rendered.replace("echo a", "echo hacked"));
    ws.env
        .wait_for("the edit undone", Duration::from_secs(20), || {
            std::fs::read_to_string(&file).is_ok_and(|t| t == rendered)
        });
    ws.env
        .wait_for("the edit said", Duration::from_secs(10), || {
            !d.journal(&[OUTPUT_EDITED]).is_empty()
        });
    let said = d.journal(&[OUTPUT_EDITED]);
    assert!(
        said[0]["MESSAGE"]
            .as_str()
            .unwrap()
            .contains("rendered files changed outside the agent (e2e-oe.container)"),
        "{said:?}"
    );

    // A removal: put back.
    std::fs::remove_file(&file).unwrap();
    ws.env
        .wait_for("the file restored", Duration::from_secs(20), || {
            std::fs::read_to_string(&file).is_ok_and(|t| t == rendered)
        });
    ws.env
        .wait_for("still serving", Duration::from_secs(30), || {
            ws.curl(18237).as_deref() == Some("a")
        });

    // The mark removed: refused and said, listed by status as not managed.
    let unmarked: String = rendered
        .lines()
        .filter(|l| !l.starts_with("# deploy-agent: generated"))
        .map(|l| format!("{l}\n"))
        .collect();
    let before = d.journal(&[OUTPUT_EDITED]).len();
    ws.env.write(&file, &unmarked);
    ws.env
        .wait_for("the refusal said", Duration::from_secs(20), || {
            d.journal(&[OUTPUT_EDITED]).len() > before
        });
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        unmarked,
        "not touched"
    );
    let st = ws.agent(&["status"]);
    assert_eq!(st.status.code(), Some(1));
    let text = stdout(&st);
    assert!(
        text.contains("e2e-oe.service: not managed: e2e-oe.container has no deploy-agent mark"),
        "{text}"
    );
    drop(d);
}
