//! End to end: inputs a unit file only names — secrets from files and env
//! files — with the real user manager and rootless Podman.

mod support;

use std::time::Duration;

use support::{serial, stderr, stdout, web_spec, Workspace};

/// Every file under `dir`, for "the value appears nowhere else".
fn grep_tree(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            hits.extend(grep_tree(&p, needle));
        } else if std::fs::read(&p).is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle)) {
            hits.push(p.display().to_string());
        }
    }
    hits
}

#[test]
fn a_secret_from_a_file_reaches_the_container_and_nothing_else() {
    let _g = serial();
    let ws = Workspace::new("secret");
    let value = "s3cr3t-v4lue-e2e";
    let src = ws.root.join("secrets/e2e_pw");
    ws.env.write(&src, value);
    // Group/other-readable secret sources are refused.
    std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let spec = web_spec(
        "e2e-sec",
        18201,
        "echo pw=$PW",
        &format!(
            "secrets = [{{ name = \"e2e_pw\", type = \"env\", target = \"PW\", source = \"{}\" }}]",
            src.display()
        ),
    );
    ws.spec("10-sec.toml", &spec);
    let out = ws.agent(&["apply"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("readable by group or others"),
        "{}",
        stderr(&out)
    );
    std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

    let out = ws.agent(&["apply"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    ws.env
        .wait_for("httpd", std::time::Duration::from_secs(20), || {
            ws.curl(18201).is_some()
        });
    assert_eq!(
        ws.curl(18201).unwrap(),
        format!("pw={value}"),
        "the container got the secret as an env var"
    );
    let plan = ws.agent(&["plan"]);
    for (what, text) in [
        ("apply stdout", stdout(&out)),
        ("apply stderr", stderr(&out)),
        ("plan", stdout(&plan) + &stderr(&plan)),
    ] {
        assert!(!text.contains(value), "secret value in {what}: {text}");
    }
    assert_eq!(
        grep_tree(&ws.output, value),
        Vec::<String>::new(),
        "rendered files"
    );
    assert_eq!(
        grep_tree(&ws.state, value),
        Vec::<String>::new(),
        "history and state"
    );
    let journal = ws
        .env
        .user_ok(&["journalctl", "--user", "--no-pager", "-n", "2000"]);
    assert!(!journal.contains(value), "secret value in the journal");
    let env = ws
        .env
        .user_ok(&["podman", "inspect", "-f", "{{.Config.Env}}", "e2e-sec"]);
    assert!(
        !env.contains(value),
        "podman keeps the secret out of the container config: {env}"
    );

    // Changing the file updates the Podman secret and restarts its unit.
    let pid = ws.env.unit_prop("e2e-sec.service", "MainPID");
    ws.env.write(&src, "rotated-e2e");
    std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = ws.agent_ok(&["apply"]);
    assert!(out.contains("restart e2e-sec.service"), "{out}");
    assert!(out.contains("an input (secret) changed"), "{out}");
    assert_ne!(ws.env.unit_prop("e2e-sec.service", "MainPID"), pid);
    ws.env.wait_for(
        "the rotated secret",
        std::time::Duration::from_secs(20),
        || ws.curl(18201).as_deref() == Some("pw=rotated-e2e"),
    );
}

#[test]
fn touching_an_env_file_restarts_exactly_its_unit() {
    let _g = serial();
    let ws = Workspace::new("envfile");
    let env_file = ws.root.join("env/app.env");
    ws.env.write(&env_file, "GREETING=hello\n");
    ws.spec(
        "10-app.toml",
        &web_spec(
            "e2e-env-app",
            18202,
            "echo $GREETING",
            &format!("env_files = [\"{}\"]", env_file.display()),
        ),
    );
    ws.spec(
        "20-other.toml",
        &web_spec("e2e-env-other", 18203, "echo other", ""),
    );
    ws.agent_ok(&["apply"]);
    ws.env
        .wait_for("httpd", std::time::Duration::from_secs(20), || {
            ws.curl(18202).is_some()
        });
    assert_eq!(ws.curl(18202).as_deref(), Some("hello"));
    let app = ws.env.unit_prop("e2e-env-app.service", "MainPID");
    let other = ws.env.unit_prop("e2e-env-other.service", "MainPID");
    let rendered = std::fs::read_to_string(ws.output.join("e2e-env-app.container")).unwrap();

    ws.env.write(&env_file, "GREETING=bonjour\n");
    let out = ws.agent_ok(&["apply"]);
    assert!(out.contains("restart e2e-env-app.service"), "{out}");
    assert!(!out.contains("e2e-env-other.service"), "{out}");
    assert_eq!(
        std::fs::read_to_string(ws.output.join("e2e-env-app.container")).unwrap(),
        rendered,
        "the unit file did not change"
    );
    assert_ne!(ws.env.unit_prop("e2e-env-app.service", "MainPID"), app);
    assert_eq!(
        ws.env.unit_prop("e2e-env-other.service", "MainPID"),
        other,
        "exactly its unit"
    );
    ws.env
        .wait_for("the new env", std::time::Duration::from_secs(20), || {
            ws.curl(18202).as_deref() == Some("bonjour")
        });
    assert_eq!(ws.agent_ok(&["apply"]).trim(), "No changes.");
}

/// The daemon, not a hand-run `apply`: saving an env file or a secret source
/// is enough ("The daemon watches their directories"), and after a rotation
/// neither secret value is anywhere the agent writes: its journal entries
/// (every field), the user journal, rendered files, state, history,
/// `status --json`.
#[test]
fn the_daemon_applies_saved_env_files_and_secrets_and_never_logs_a_secret() {
    let _g = serial();
    let ws = Workspace::new("daemoninputs");
    let (first, rotated) = ("s3cr3t-first-d43m0n", "s3cr3t-rotated-d43m0n");
    let env_file = ws.root.join("env/app.env");
    let src = ws.root.join("secrets/d_pw");
    ws.env.write(&env_file, "GREETING=hello\n");
    ws.env.write(&src, first);
    let private = |p: &std::path::Path| {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap()
    };
    private(&src);
    ws.spec(
        "10-app.toml",
        &web_spec(
            "e2e-dinp",
            18204,
            "echo $GREETING pw=$PW",
            &format!(
                "env_files = [\"{}\"]\nsecrets = [{{ name = \"d_pw\", type = \"env\", target = \"PW\", source = \"{}\" }}]",
                env_file.display(),
                src.display()
            ),
        ),
    );
    let cursor = ws.env.journal_cursor();
    let d = ws.start_daemon();
    let ws = &ws;
    let serves = |want: String| move || ws.curl(18204).as_deref() == Some(want.as_str());
    ws.env.wait_for(
        "the first value",
        Duration::from_secs(30),
        serves(format!("hello pw={first}")),
    );

    ws.env.write(&env_file, "GREETING=bonjour\n");
    ws.env.wait_for(
        "the daemon applies the saved env file",
        Duration::from_secs(30),
        serves(format!("bonjour pw={first}")),
    );
    ws.env.write(&src, rotated);
    private(&src);
    ws.env.wait_for(
        "the daemon applies the rotated secret",
        Duration::from_secs(30),
        serves(format!("bonjour pw={rotated}")),
    );

    // The daemon said why it restarted, once per saved file.
    let reasons: String = d
        .journal(&[])
        .iter()
        .filter_map(|e| e["MESSAGE"].as_str().map(str::to_string))
        .collect::<Vec<_>>()
        .join("\n");
    // (One hash per container: the reason names every kind of input it
    // has, not the one that changed.)
    assert_eq!(
        reasons
            .matches("done (an input (env file, secret) changed)")
            .count(),
        2,
        "{reasons}"
    );
    let after = format!("--after-cursor={cursor}");
    let journal = ws.env.user_ok(&[
        "journalctl",
        "--user",
        "-o",
        "json",
        "--all",
        "--no-pager",
        &after,
    ]);
    let status = ws.agent_ok(&["status", "--json"]);
    let history = ws.agent_ok(&["history", "--json"]);
    for value in [first, rotated] {
        assert!(!journal.contains(value), "{value} in the user journal");
        for (what, dir) in [("rendered files", &ws.output), ("state", &ws.state)] {
            assert_eq!(grep_tree(dir, value), Vec::<String>::new(), "{what}");
        }
        assert!(!status.contains(value), "{value} in status: {status}");
        assert!(!history.contains(value), "{value} in history: {history}");
    }
    drop(d);
}

/// Issue 14 item 9: a Podman secret the agent made from a `source` file is
/// removed from Podman's store once no spec names it; one the operator
/// made by hand (no `source`) is left alone.
#[test]
fn a_secret_no_spec_names_any_more_is_removed_from_podman() {
    let _g = serial();
    let ws = Workspace::new("secretgc");
    let src = ws.root.join("secrets/gc_pw");
    ws.env.write(&src, "gc-value");
    std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let _ = ws.env.user(&["podman", "secret", "rm", "gc_by_hand"]);
    let mut hand =
        ws.env
            .spawn_user(&["podman", "secret", "create", "gc_by_hand", "/etc/hostname"]);
    assert!(hand.wait().unwrap().success());
    ws.spec(
        "10-a.toml",
        &web_spec(
            "e2e-gc-a",
            18214,
            "echo a",
            &format!(
                "secrets = [{{ name = \"gc_pw\", type = \"env\", target = \"PW\", source = \"{}\" }}, {{ name = \"gc_by_hand\" }}]",
                src.display()
            ),
        ),
    );
    ws.spec("20-b.toml", &web_spec("e2e-gc-b", 18215, "echo b", ""));
    ws.agent_ok(&["apply"]);
    let secrets = || {
        ws.env
            .user_ok(&["podman", "secret", "ls", "--format", "{{.Name}}"])
    };
    assert!(secrets().lines().any(|n| n == "gc_pw"), "{}", secrets());

    ws.remove_spec("10-a.toml");
    ws.agent_ok(&["apply"]);
    let now = secrets();
    assert!(!now.lines().any(|n| n == "gc_pw"), "removed: {now}");
    assert!(
        now.lines().any(|n| n == "gc_by_hand"),
        "the operator's kept: {now}"
    );
    let _ = ws.env.user(&["podman", "secret", "rm", "gc_by_hand"]);
}
