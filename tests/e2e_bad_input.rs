//! The bad-input table: every kind of bad spec gets exit 2 from `validate`
//! with the file, line and key, and `apply` against the real user manager
//! leaves the running service and the last good rendering untouched.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::{serial, stderr, web_spec, Workspace};

/// (what, spec text, expected fragment of the error: "FILE:LINE:COL: KEY: ...")
fn table() -> Vec<(&'static str, String, String)> {
    let good = web_spec("e2e-bad", 18231, "echo ok", "");
    let with = |extra: &str| format!("{good}{extra}\n");
    vec![
        ("malformed TOML", "[container.e2e-bad\nimage = \"x\"\n".into(), "20-bad.toml:1:".into()),
        ("unknown key", with("imagee = \"x\""), "20-bad.toml:8:1: container.e2e-bad.imagee: unknown key (did you mean `image`?)".into()),
        ("misspelt table", "[contianer.x]\nimage = \"x\"\n".into(), "20-bad.toml:1:2: contianer: unknown key (did you mean `container`?)".into()),
        ("wrong type", with("read_only = \"yes\""), "20-bad.toml:8:13: container.e2e-bad.read_only: expected true or false".into()),
        ("bad size", with("[container.e2e-bad.resources]\nmemory = \"12Q\""), "20-bad.toml:9:10: container.e2e-bad.resources.memory: invalid size".into()),
        ("negative size", with("[container.e2e-bad.resources]\nmemory = -1"), "20-bad.toml:9:10: container.e2e-bad.resources.memory: size -1".into()),
        ("zero cpus", with("[container.e2e-bad.resources]\ncpus = 0"), "20-bad.toml:9:8: container.e2e-bad.resources.cpus: 0 is not a valid CPU count".into()),
        ("bad duration", with("stop_timeout = \"10 seconds\""), "20-bad.toml:8:16: container.e2e-bad.stop_timeout: invalid duration".into()),
        ("bad port", "[container.e2e-bad]\nimage = \"x\"\nports = [\"99999:80\"]\n".into(), "20-bad.toml:3:10: container.e2e-bad.ports[0]: invalid host port".into()),
        ("name with /", "[container.\"a/b\"]\nimage = \"x\"\n".into(), "20-bad.toml:1:12: container.a/b: invalid name".into()),
        ("name with ..", "[container.\"..\"]\nimage = \"x\"\n".into(), "20-bad.toml:1:12: container...: invalid name".into()),
        ("name with a space", "[container.\"a b\"]\nimage = \"x\"\n".into(), "20-bad.toml:1:12: container.a b: invalid name".into()),
        ("bidi override in a name", "[container.\"ab\\u202Ec\"]\nimage = \"x\"\n".into(), ": invalid name".into()),
        ("newline injection", with("user = \"root\\n[Service]\\nExecStartPre=/bin/sh\""), "20-bad.toml:8:8: container.e2e-bad.user: contains the forbidden character \\u{a}".into()),
        ("NUL injection", with("env = { A = \"x\\u0000y\" }"), "20-bad.toml:8:13: container.e2e-bad.env.A: contains the forbidden character \\u{0}".into()),
        ("zero-width character", with("labels = { a = \"x\\u200By\" }"), "container.e2e-bad.labels.a: contains the forbidden character \\u{200b}".into()),
        ("duplicate across files", "[container.e2e-bad]\nimage = \"x\"\n".into(), "20-bad.toml:1:12: container.e2e-bad: container \"e2e-bad\" is already defined in".into()),
        ("missing dependency", "[container.e2e-bad2]\nimage = \"x\"\nrequires = [\"e2e-bda\"]\n".into(), "20-bad.toml:3:13: container.e2e-bad2.requires[0]: no container named \"e2e-bda\" (did you mean `e2e-bad`?)".into()),
        ("cycle", "[container.c1]\nimage = \"x\"\nafter = [\"c2\"]\n[container.c2]\nimage = \"x\"\nafter = [\"c1\"]\n".into(), "20-bad.toml:1:12: container.c1: dependency cycle: c1 -> c2 -> c1".into()),
    ]
}

/// Puts a bad file in place.
type MakeBad<'a> = Box<dyn Fn() + 'a>;

fn validate(ws: &Workspace) -> (Option<i32>, String) {
    let out = ws.agent(&["validate"]);
    (out.status.code(), stderr(&out))
}

#[test]
fn every_kind_of_bad_spec_is_refused_and_nothing_running_changes() {
    let _g = serial();
    let ws = Workspace::new("badinput");
    ws.spec("10-good.toml", &web_spec("e2e-bad", 18231, "echo ok", ""));
    ws.agent_ok(&["apply"]);
    let pid = ws.env.unit_prop("e2e-bad.service", "MainPID");
    let rendered = std::fs::read(ws.output.join("e2e-bad.container")).unwrap();
    let bad = ws.specs.join("20-bad.toml");
    // The good spec moves to 20-bad.toml for the table (so lines are those of
    // the file under test), except where the table needs it beside.
    for (what, text, want) in table() {
        if what == "duplicate across files" || what == "missing dependency" {
            ws.spec("10-good.toml", &web_spec("e2e-bad", 18231, "echo ok", ""));
        } else {
            std::fs::remove_file(ws.specs.join("10-good.toml")).ok();
        }
        ws.env.write(&bad, &text);
        let (code, err) = validate(&ws);
        assert_eq!(code, Some(2), "{what}: {err}");
        assert!(err.contains(&want), "{what}: expected {want:?} in:\n{err}");
        let out = ws.agent(&["apply"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{what}: apply: {}",
            stderr(&out)
        );
        assert_eq!(
            ws.env.unit_prop("e2e-bad.service", "MainPID"),
            pid,
            "{what}: the service kept running"
        );
        assert_eq!(
            std::fs::read(ws.output.join("e2e-bad.container")).unwrap(),
            rendered,
            "{what}: rendering untouched"
        );
    }
    std::fs::remove_file(&bad).unwrap();
    ws.spec("10-good.toml", &web_spec("e2e-bad", 18231, "echo ok", ""));

    // Files that are not specs at all.
    let cases: Vec<(&str, MakeBad, &str)> = vec![
        (
            "a directory",
            Box::new(|| std::fs::create_dir(&bad).unwrap()),
            "20-bad.toml: is a directory, not a spec file",
        ),
        (
            "not UTF-8",
            Box::new(|| {
                ws.env
                    .write_bytes(&bad, b"[container.x]\nimage = \"\xff\"\n")
            }),
            "20-bad.toml:2:10: is not valid UTF-8",
        ),
        (
            "huge",
            Box::new(|| ws.env.write_bytes(&bad, &vec![b'#'; 2 << 20])),
            "is 2097152 bytes, more than the 1048576 bytes a spec file may have",
        ),
        (
            "unreadable",
            Box::new(|| {
                ws.env.write(&bad, "[container.x]\nimage = \"x\"\n");
                std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o000)).unwrap();
            }),
            "20-bad.toml: cannot read: Permission denied",
        ),
        (
            "writable by others",
            Box::new(|| {
                ws.env.write(&bad, "[container.x]\nimage = \"x\"\n");
                std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o666)).unwrap();
            }),
            "is writable by everyone (mode 666); refusing to apply specs others can write",
        ),
    ];
    for (what, make, want) in cases {
        make();
        let (code, err) = validate(&ws);
        assert_eq!(code, Some(2), "{what}: {err}");
        assert!(err.contains(want), "{what}: expected {want:?} in:\n{err}");
        assert_eq!(ws.agent(&["apply"]).status.code(), Some(2), "{what}");
        assert_eq!(
            ws.env.unit_prop("e2e-bad.service", "MainPID"),
            pid,
            "{what}: the service kept running"
        );
        assert_eq!(
            std::fs::read(ws.output.join("e2e-bad.container")).unwrap(),
            rendered,
            "{what}"
        );
        if bad.is_dir() {
            std::fs::remove_dir(&bad).unwrap();
        } else {
            std::fs::remove_file(&bad).unwrap();
        }
    }
    assert_eq!(ws.agent_ok(&["apply"]).trim(), "No changes.");
}
