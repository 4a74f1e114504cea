//! End to end: inputs a unit file only names — secrets from files and env
//! files — with the real user manager and rootless Podman.

mod support;

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
