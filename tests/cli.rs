//! The command line as operators use it, on the host (no systemd needed):
//! validate, render, plan, exit codes, and apply with systemd unreachable.

use std::path::Path;
use std::process::{Command, Output};

/// `deploy-agent` with no bus to reach, whichever the agent picks (system
/// as root, session otherwise): nothing on this machine is touched, and an
/// `apply` stops where it would need systemd.
fn offline() -> Command {
    let mut c = bin();
    c.env(
        "DBUS_SYSTEM_BUS_ADDRESS",
        "unix:path=/nonexistent/system_bus_socket",
    )
    .env(
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent/session_bus_socket",
    );
    c
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deploy-agent"));
    c.env_remove("DEPLOY_AGENT_CONFIG")
        .env_remove("DEPLOY_AGENT_SPECS");
    c
}

fn run(args: &[&str], dir: &Path) -> Output {
    let config = dir.join("agent.toml");
    if !config.exists() {
        std::fs::write(&config, "").unwrap();
    }
    bin()
        .args(args)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Every file of a directory with its bytes, sorted by name.
fn snapshot(dir: &Path) -> Vec<(std::ffi::OsString, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    v.sort();
    v
}

fn senex() -> String {
    format!("{}/tests/fixtures/senex", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn validate_senex_and_render_deterministically() {
    let d = tempfile::tempdir().unwrap();
    let o = run(&["validate", "--specs", &senex()], d.path());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.contains("5 file(s) OK: 5 container(s), 1 network(s), 2 volume(s)"),
        "{out}"
    );
    let a = d.path().join("a");
    let b = d.path().join("b");
    for out in [&a, &b] {
        let o = run(
            &[
                "render",
                "--specs",
                &senex(),
                "--out",
                out.to_str().unwrap(),
            ],
            d.path(),
        );
        assert!(o.status.success(), "{:?}", text(&o));
    }
    let mut names: Vec<_> = std::fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names.len(), 8);
    for n in names {
        assert_eq!(
            std::fs::read(a.join(&n)).unwrap(),
            std::fs::read(b.join(&n)).unwrap(),
            "{n:?} byte-for-byte"
        );
    }
}

#[test]
fn validate_prints_every_error_and_exits_2() {
    let d = tempfile::tempdir().unwrap();
    let specs = d.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    std::fs::write(specs.join("a.toml"), "[container.web]\nimage = \"x\"\nimgae = \"y\"\n[container.web.resources]\nmemory = \"12Q\"\n").unwrap();
    std::fs::write(
        specs.join("b.toml"),
        "[container.web]\nimage = \"x\"\nrequires = [\"db\"]\n",
    )
    .unwrap();
    let o = run(&["validate", "--specs", specs.to_str().unwrap()], d.path());
    assert_eq!(o.status.code(), Some(2));
    let (_, err) = text(&o);
    assert!(
        err.contains("a.toml:3:1: container.web.imgae: unknown key (did you mean `image`?)"),
        "{err}"
    );
    assert!(
        err.contains("a.toml:5:10: container.web.resources.memory: invalid size \"12Q\""),
        "{err}"
    );
    assert!(
        err.contains("b.toml:1:12: container.web: container \"web\" is already defined in"),
        "{err}"
    );
    // validate changes nothing in any case: it does not say so.
    assert!(
        err.contains("3 error(s).") && !err.contains("nothing was changed"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2_and_help_explains_exit_codes() {
    let o = bin().args(["apply", "--timeout", "soon"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = bin().arg("--help").output().unwrap();
    let (out, _) = text(&o);
    assert!(
        out.contains("Exit codes: 0 success, 1 operational failure"),
        "{out}"
    );
    for cmd in [
        "run", "validate", "render", "plan", "apply", "status", "history", "rollback",
    ] {
        assert!(out.contains(&format!("  {cmd} ")), "{cmd} in --help: {out}");
    }
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("agent.toml"), "[agent]\nhistroy = 3\n").unwrap();
    let o = run(&["validate", "--specs", &senex()], d.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o)
            .1
            .contains("agent.toml:2:1: unknown field `histroy`"),
        "{:?}",
        text(&o)
    );
}

#[test]
fn plan_shows_files_diffs_and_unit_actions() {
    let d = tempfile::tempdir().unwrap();
    let out_dir = d.path().join("out");
    let specs = d.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    for f in std::fs::read_dir(senex()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), specs.join(f.file_name())).unwrap();
    }
    // Pretend the rendered set was applied, then change one spec.
    let o = run(
        &[
            "render",
            "--specs",
            specs.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
        d.path(),
    );
    assert!(o.status.success());
    let redis = specs.join("20-redis.toml");
    let t = std::fs::read_to_string(&redis)
        .unwrap()
        .replace("memory = \"50M\"", "memory = \"64M\"");
    std::fs::write(&redis, t).unwrap();
    std::fs::remove_file(specs.join("40-celery.toml")).unwrap();
    let o = run(
        &[
            "plan",
            "--specs",
            specs.to_str().unwrap(),
            "--output-dir",
            out_dir.to_str().unwrap(),
            "--state-dir",
            d.path().join("st").to_str().unwrap(),
        ],
        d.path(),
    );
    let (out, err) = text(&o);
    assert!(out.contains("~ redis.container (changed)"), "{out}{err}");
    assert!(
        out.contains("-MemoryMax=50M") && out.contains("+MemoryMax=64M"),
        "{out}"
    );
    assert!(out.contains("- celery-beat.container (removed)"), "{out}");
    assert!(out.contains("stop    celery-worker.service"), "{out}");
    assert!(out.contains("restart redis.service"), "{out}");
    // Nothing requires django any more: its health gate goes, which its
    // next start will use; it is not restarted for it.
    assert!(out.contains("~ django.container (changed)"), "{out}");
    assert!(!out.contains("restart django.service"), "{out}");
    assert!(
        out.contains("0 to add, 2 to change, 2 to remove; 1 daemon-reload, 3 unit action(s)."),
        "{out}"
    );
}

#[test]
fn apply_with_systemd_unreachable_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let out_dir = d.path().join("out");
    let state = d.path().join("st");
    let o = run(
        &[
            "render",
            "--specs",
            &senex(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
        d.path(),
    );
    assert!(o.status.success());
    std::fs::write(out_dir.join("operator.container"), "[Container]\nImage=x\n").unwrap();
    let before = snapshot(&out_dir);
    let specs = d.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    std::fs::write(specs.join("web.toml"), "[container.web]\nimage = \"x\"\n").unwrap();
    let config = d.path().join("agent.toml");
    std::fs::write(&config, "").unwrap();
    let o = offline()
        .args([
            "apply",
            "--config",
            config.to_str().unwrap(),
            "--specs",
            specs.to_str().unwrap(),
        ])
        .args([
            "--output-dir",
            out_dir.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    let (_, err) = text(&o);
    assert!(
        err.contains("cannot reach systemd over D-Bus; nothing was changed"),
        "{err}"
    );
    let after = snapshot(&out_dir);
    assert_eq!(
        before, after,
        "the last good rendering and foreign files are untouched"
    );
    assert!(
        !state.join("generations").exists(),
        "no generation recorded"
    );
}

#[test]
fn symlinks_and_foreign_files_in_the_output_dir_are_conflicts_never_targets() {
    let d = tempfile::tempdir().unwrap();
    let specs = d.path().join("specs");
    let out_dir = d.path().join("out");
    std::fs::create_dir(&specs).unwrap();
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::write(
        specs.join("a.toml"),
        "[container.evil]\nimage = \"x\"\n[container.mine]\nimage = \"x\"\n",
    )
    .unwrap();
    let target = d.path().join("outside");
    std::fs::write(&target, "keep me").unwrap();
    std::os::unix::fs::symlink(&target, out_dir.join("evil.container")).unwrap();
    std::fs::write(
        out_dir.join("mine.container"),
        "[Container]\nImage=operator\n",
    )
    .unwrap();
    let o = run(
        &[
            "plan",
            "--specs",
            specs.to_str().unwrap(),
            "--output-dir",
            out_dir.to_str().unwrap(),
            "--state-dir",
            d.path().join("st").to_str().unwrap(),
        ],
        d.path(),
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(
        out.contains(
            "! conflict: evil.container: the output directory already has a symlink with this name"
        ),
        "{out}"
    );
    assert!(out.contains("! conflict: mine.container: the output directory already has a file not generated by deploy-agent"), "{out}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    assert_eq!(
        std::fs::read_to_string(out_dir.join("mine.container")).unwrap(),
        "[Container]\nImage=operator\n"
    );
}

/// `run`, failing the test instead of hanging it (see [`within_20s`]).
fn run_within_20s(args: &[&str], dir: &Path) -> Output {
    let config = dir.join("agent.toml");
    if !config.exists() {
        std::fs::write(&config, "").unwrap();
    }
    let mut cmd = offline();
    cmd.args(args).arg("--config").arg(&config);
    within_20s(cmd)
}

/// Runs `cmd` (made by [`offline`]), killing it and failing the test if it
/// has not ended within 20 s.
fn within_20s(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("{cmd:?} still running after 20 s: {:?}", text(&o));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// validate, plan and apply on `specs` (state and output under `d`): each
/// exits 2 with `want` on stderr, and nothing is written.
fn refused_by_every_command(d: &Path, specs: &Path, want: &str) {
    let out_dir = d.join("out");
    let state = d.join("st");
    let dirs = [
        "--specs",
        specs.to_str().unwrap(),
        "--output-dir",
        out_dir.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    for cmd in ["validate", "plan", "apply"] {
        let args: Vec<&str> = if cmd == "validate" {
            vec![cmd, dirs[0], dirs[1]]
        } else {
            std::iter::once(cmd).chain(dirs).collect()
        };
        let o = run_within_20s(&args, d);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {out}{err}");
        assert!(err.contains(want), "{cmd}: {err}");
        let summary = if cmd == "apply" {
            "1 error(s); nothing was changed."
        } else {
            "1 error(s)."
        };
        assert!(err.contains(summary), "{cmd}: {err}");
        assert!(!out_dir.exists() && !state.exists(), "{cmd} wrote nothing");
    }
}

#[test]
fn a_fifo_secret_source_is_a_spec_error_not_a_hang() {
    let d = tempfile::tempdir().unwrap();
    let specs = d.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    let pipe = d.path().join("db_password");
    nix::unistd::mkfifo(&pipe, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let spec = specs.join("web.toml");
    std::fs::write(
        &spec,
        format!(
            "[container.web]\nimage = \"x\"\nsecrets = [{{ name = \"pw\", type = \"env\", target = \"PW\", source = \"{}\" }}]\n",
            pipe.display()
        ),
    )
    .unwrap();
    refused_by_every_command(
        d.path(),
        &specs,
        &format!(
            "{}:3:65: container.web.secrets[0].source: secret source {}: is not a regular file: it is a FIFO (named pipe), which could block a reader forever",
            spec.display(),
            pipe.display()
        ),
    );
}

#[test]
fn a_ca_file_of_dev_zero_is_a_spec_error() {
    let d = tempfile::tempdir().unwrap();
    let specs = d.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    let spec = specs.join("web.toml");
    std::fs::write(
        &spec,
        "[container.web]\nimage = \"x\"\n[container.web.health]\nhttp = \"https://127.0.0.1:8443/\"\nca_file = \"/dev/zero\"\n",
    )
    .unwrap();
    refused_by_every_command(
        d.path(),
        &specs,
        &format!(
            "{}:5:11: container.web.health.ca_file: ca_file /dev/zero: is not a regular file: it is a character device",
            spec.display()
        ),
    );
}

#[test]
fn an_agent_toml_that_is_a_fifo_or_a_device_is_refused_at_once() {
    let d = tempfile::tempdir().unwrap();
    let pipe = d.path().join("agent.toml");
    nix::unistd::mkfifo(&pipe, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for (config, what) in [
        (
            pipe.to_str().unwrap(),
            "a FIFO (named pipe), which could block a reader forever",
        ),
        ("/dev/zero", "a character device"),
    ] {
        let mut cmd = offline();
        cmd.args(["validate", "--config", config, "--specs", &senex()]);
        let o = within_20s(cmd);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{config}: {out}{err}");
        assert_eq!(
            err,
            format!("error: {config}: is not a regular file: it is {what}\n")
        );
    }
}

#[path = "support/schema.rs"]
mod schema;

fn apply_result_schema() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/apply-result.schema.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `apply --json` of invalid specs: exit 2, and one result document (valid
/// against the documented schema) with each error located.
#[test]
fn apply_json_reports_spec_errors_located_in_the_documented_format() {
    let d = tempfile::tempdir().unwrap();
    let specs = d.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    std::fs::write(
        specs.join("a.toml"),
        "[container.web]\nimage = \"x\"\nimgae = \"y\"\n",
    )
    .unwrap();
    let o = run(
        &[
            "apply",
            "--json",
            "--wait",
            "--specs",
            specs.to_str().unwrap(),
        ],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    let (out, _) = text(&o);
    let doc: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        schema::violations(&apply_result_schema(), &doc),
        Vec::<String>::new(),
        "{doc}"
    );
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["changed"], false);
    let e = &doc["errors"][0];
    assert!(e["file"].as_str().unwrap().ends_with("a.toml"), "{e}");
    assert_eq!(
        (e["line"].as_u64(), e["col"].as_u64()),
        (Some(3), Some(1)),
        "{e}"
    );
    assert_eq!(e["key"], "container.web.imgae", "{e}");
}

/// The schema checker finds what breaks the format (so the test above can fail).
#[test]
fn the_schema_checker_catches_a_wrong_document() {
    let schema = apply_result_schema();
    let good = serde_json::json!({
        "version": 1, "changed": true, "ok": true, "generation": 3, "waited": true,
        "units": [{"unit": "web.service", "action": "restart", "reason": "web.container changed",
                   "job": "done", "settled": "healthy", "health": "healthy",
                   "detail": "healthy (HTTP 200)", "rolled_back_to": null}],
        "errors": []
    });
    assert_eq!(schema::violations(&schema, &good), Vec::<String>::new());
    for (what, bad) in [
        ("version 2", serde_json::json!({"version": 2})),
        (
            "settled unknown",
            serde_json::json!({"units": [{"settled": "fine"}]}),
        ),
        ("extra field", serde_json::json!({"surprise": 1})),
        ("ok a string", serde_json::json!({"ok": "yes"})),
    ] {
        let mut doc = good.clone();
        match (bad.get("units"), &mut doc) {
            (Some(u), serde_json::Value::Object(o)) => {
                o["units"][0]["settled"] = u[0]["settled"].clone();
            }
            (None, serde_json::Value::Object(o)) => {
                for (k, v) in bad.as_object().unwrap() {
                    o.insert(k.clone(), v.clone());
                }
            }
            _ => unreachable!(),
        }
        assert!(
            !schema::violations(&schema, &doc).is_empty(),
            "{what} not caught"
        );
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("changed");
    assert!(
        !schema::violations(&schema, &missing).is_empty(),
        "missing field not caught"
    );
}

/// An empty specs directory (a failed mount, a half-done checkout) while
/// the output directory holds the agent's files: `apply` and `plan` refuse
/// to remove every service, say how to do it on purpose, and change
/// nothing; `allow_empty = true` in agent.toml lets the apply through (to
/// an unreachable systemd here, so it gets as far as the bus).
#[test]
fn an_empty_specs_dir_does_not_remove_every_service() {
    let d = tempfile::tempdir().unwrap();
    let out_dir = d.path().join("out");
    let o = run(
        &[
            "render",
            "--specs",
            &senex(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
        d.path(),
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let before = snapshot(&out_dir);
    let specs = d.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    let apply = |config: &str, cmd: &str| {
        let c = d.path().join("agent.toml");
        std::fs::write(&c, config).unwrap();
        offline()
            .args([
                cmd,
                "--config",
                c.to_str().unwrap(),
                "--specs",
                specs.to_str().unwrap(),
            ])
            .args(["--output-dir", out_dir.to_str().unwrap()])
            .args(["--state-dir", d.path().join("st").to_str().unwrap()])
            .output()
            .unwrap()
    };
    for cmd in ["apply", "plan"] {
        let o = apply("", cmd);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {:?}", text(&o));
        let (_, err) = text(&o);
        assert!(
            err.contains("has no specs, but 8 service file(s) the agent made are in place"),
            "{err}"
        );
        assert!(err.contains("deploy-agent apply --allow-empty"), "{err}");
        assert_eq!(snapshot(&out_dir), before, "{cmd}: nothing changed");
    }
    // Allowed: past the guard, on to the (unreachable) bus.
    let o = apply("[agent]\nallow_empty = true\n", "apply");
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    assert!(
        text(&o).1.contains("cannot reach systemd"),
        "{:?}",
        text(&o)
    );
}

/// `plan` and `apply` say which manager and which directories they act on
/// (`sudo deploy-agent apply` is the system manager with root's paths).
#[test]
fn plan_and_apply_name_their_manager_and_paths() {
    let d = tempfile::tempdir().unwrap();
    let specs = d.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    std::fs::write(specs.join("web.toml"), "[container.web]\nimage = \"x\"\n").unwrap();
    let out_dir = d.path().join("out");
    let state = d.path().join("st");
    let manager = if nix::unistd::geteuid().is_root() {
        "the system manager".to_string()
    } else {
        format!("the user manager of uid {}", nix::unistd::geteuid())
    };
    std::fs::write(d.path().join("agent.toml"), "").unwrap();
    for cmd in ["plan", "apply"] {
        // No manager answers: nothing on this machine is touched.
        let o = offline()
            .args([
                cmd,
                "--config",
                d.path().join("agent.toml").to_str().unwrap(),
            ])
            .args(["--specs", specs.to_str().unwrap()])
            .args(["--output-dir", out_dir.to_str().unwrap()])
            .args(["--state-dir", state.to_str().unwrap()])
            .output()
            .unwrap();
        let (_, err) = text(&o);
        let want = format!(
            "deploy-agent: {manager}; specs {}, output {}, state {}",
            specs.display(),
            out_dir.display(),
            state.display()
        );
        assert!(err.lines().next() == Some(want.as_str()), "{cmd}: {err}");
    }
}

#[test]
fn user_and_system_choose_the_manager_and_its_paths() {
    let d = tempfile::tempdir().unwrap();
    let specs = d.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    std::fs::write(specs.join("web.toml"), "[container.web]\nimage = \"x\"\n").unwrap();
    std::fs::write(d.path().join("agent.toml"), "").unwrap();
    let home = d.path().join("home");
    let scope_line = |flag: &str| {
        let o = offline()
            .args(["plan", flag, "--specs"])
            .arg(&specs)
            .arg("--config")
            .arg(d.path().join("agent.toml"))
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_STATE_HOME")
            .output()
            .unwrap();
        let (_, err) = text(&o);
        err.lines()
            .find(|l| l.starts_with("deploy-agent: the "))
            .unwrap_or_else(|| panic!("no scope line for {flag}:\n{err}"))
            .to_string()
    };
    if nix::unistd::geteuid().is_root() {
        // As root, --user picks root's own user manager and its XDG paths.
        let user = scope_line("--user");
        assert!(
            user.starts_with("deploy-agent: the user manager of uid 0;"),
            "{user}"
        );
        assert!(
            user.contains(&format!(
                "output {}/.config/containers/systemd/deploy-agent",
                home.display()
            )),
            "{user}"
        );
        let system = scope_line("--system");
        assert!(
            system.starts_with("deploy-agent: the system manager;"),
            "{system}"
        );
        assert!(
            system.contains("output /etc/containers/systemd/deploy-agent"),
            "{system}"
        );
    } else {
        let o = offline().args(["plan", "--system"]).output().unwrap();
        assert_eq!(o.status.code(), Some(2));
        assert!(text(&o).1.contains("--system acts on the system manager"));
    }
    let o = offline()
        .args(["plan", "--user", "--system"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "the two flags exclude each other");
}

#[test]
fn a_key_the_target_podman_lacks_is_reported_at_its_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let specs = d.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    std::fs::write(
        specs.join("a.toml"),
        "[container.web]\nimage = \"x\"\n  stop_signal = \"SIGINT\"\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("agent.toml"),
        "[agent]\npodman_version = \"4.9\"\n",
    )
    .unwrap();
    let o = run(&["validate", "--specs", specs.to_str().unwrap()], d.path());
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    let want = format!(
        "{}/a.toml:3:3: web.service: stop_signal needs",
        specs.display()
    );
    assert!(err.contains(&want), "{err}");
    assert!(
        !err.contains("nothing was changed"),
        "validate changes nothing anyway: {err}"
    );
}

/// The same for a key the target systemd lacks, the target pinned in
/// agent.toml (offline: `validate` reads no manager's version).
#[test]
fn a_key_the_target_systemd_lacks_is_reported_at_its_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let specs = d.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    std::fs::write(
        specs.join("a.toml"),
        "[container.web]\nimage = \"x\"\nrestart_steps = 4\n",
    )
    .unwrap();
    let config = d.path().join("agent.toml");
    std::fs::write(&config, "[agent]\nsystemd_version = \"252\"\n").unwrap();
    let o = run(&["validate", "--specs", specs.to_str().unwrap()], d.path());
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    let want = format!(
        "{}/a.toml:3:1: web.service: restart_steps needs systemd's RestartSteps= \
         (systemd 254 or newer), but the target is systemd 252",
        specs.display()
    );
    assert!(err.contains(&want), "{err}");
    // An escape-hatch key of the table: at its own line.
    std::fs::write(
        specs.join("a.toml"),
        "[container.web]\nimage = \"x\"\n[container.web.service]\nEnvironment = \"A=1\"\n  OpenFile = \"/etc/hosts\"\n",
    )
    .unwrap();
    let o = run(&["validate", "--specs", specs.to_str().unwrap()], d.path());
    let want = format!(
        "{}/a.toml:5:3: web.service: [Service] OpenFile= of the escape hatch needs systemd's \
         OpenFile= (systemd 253 or newer), but the target is systemd 252",
        specs.display()
    );
    assert!(text(&o).1.contains(&want), "{:?}", text(&o));
    // Not pinned, no manager: not checked.
    std::fs::write(&config, "").unwrap();
    let o = run(&["validate", "--specs", specs.to_str().unwrap()], d.path());
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    std::fs::write(&config, "[agent]\nsystemd_version = \"254\"\n").unwrap();
    let o = run(&["validate", "--specs", specs.to_str().unwrap()], d.path());
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
}

fn fixture_schema(name: &str) -> serde_json::Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Parses `o`'s stdout as one JSON document valid against `schema`.
fn json_doc(o: &Output, schema: &str) -> serde_json::Value {
    let (out, err) = text(o);
    let doc: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_eq!(
        schema::violations(&fixture_schema(schema), &doc),
        Vec::<String>::new(),
        "{doc}"
    );
    doc
}

/// `validate --json`: one document, each error located (file, line,
/// column, key, message); a good set is counted.
#[test]
fn validate_json_locates_every_error_in_the_documented_format() {
    let d = tempfile::tempdir().unwrap();
    let specs = d.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    std::fs::write(
        specs.join("a.toml"),
        "[container.web]\nimage = \"x\"\nimgae = \"y\"\n",
    )
    .unwrap();
    std::fs::write(
        specs.join("b.toml"),
        "[container.db]\nimage = \"x\"\nmemory = \"lots\"\n",
    )
    .unwrap();
    let o = run(
        &["validate", "--json", "--specs", specs.to_str().unwrap()],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
    let doc = json_doc(&o, "validate-result.schema.json");
    assert_eq!(doc["ok"], false);
    let errors = doc["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{doc}");
    let at = |e: &serde_json::Value| {
        (
            e["file"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string(),
            e["line"].as_u64(),
            e["col"].as_u64(),
            e["key"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        at(&errors[0]),
        (
            "a.toml".into(),
            Some(3),
            Some(1),
            "container.web.imgae".into()
        )
    );
    assert!(
        errors[0]["message"].as_str().unwrap().contains("image"),
        "{doc}"
    );
    assert_eq!(
        at(&errors[1]),
        (
            "b.toml".into(),
            Some(3),
            Some(1),
            "container.db.memory".into()
        )
    );

    let o = run(&["validate", "--json", "--specs", &senex()], d.path());
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let doc = json_doc(&o, "validate-result.schema.json");
    assert_eq!(
        (
            &doc["ok"],
            &doc["files"],
            &doc["containers"],
            &doc["networks"],
            &doc["volumes"]
        ),
        (&true.into(), &5.into(), &5.into(), &1.into(), &2.into()),
        "{doc}"
    );
}

/// `plan --json` and `plan --detailed-exitcode`: 0 when `apply` has
/// nothing to do, 3 when changes are pending (0 without the flag), 2 for
/// invalid specs, with the documented document each time.
#[test]
fn plan_detailed_exitcode_and_json_say_whether_changes_are_pending() {
    let d = tempfile::tempdir().unwrap();
    let out_dir = d.path().join("out");
    let specs = d.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    for f in std::fs::read_dir(senex()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), specs.join(f.file_name())).unwrap();
    }
    let o = run(
        &[
            "render",
            "--specs",
            specs.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
        d.path(),
    );
    assert!(o.status.success(), "{:?}", text(&o));
    std::fs::write(d.path().join("agent.toml"), "").unwrap();
    let plan = |extra: &[&str]| {
        offline()
            .arg("plan")
            .args(extra)
            .args(["--config", d.path().join("agent.toml").to_str().unwrap()])
            .args(["--specs", specs.to_str().unwrap()])
            .args(["--output-dir", out_dir.to_str().unwrap()])
            .args(["--state-dir", d.path().join("st").to_str().unwrap()])
            .output()
            .unwrap()
    };
    // What is in place is what the specs render: nothing to do.
    let o = plan(&["--json", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let doc = json_doc(&o, "plan-result.schema.json");
    assert_eq!(
        (&doc["ok"], &doc["changes"]),
        (&true.into(), &false.into()),
        "{doc}"
    );
    assert_eq!(doc["drift_checked"], false, "no systemd to ask: {doc}");

    let redis = specs.join("20-redis.toml");
    let t = std::fs::read_to_string(&redis)
        .unwrap()
        .replace("memory = \"50M\"", "memory = \"64M\"");
    std::fs::write(&redis, t).unwrap();
    let before = snapshot(&out_dir);
    let o = plan(&["--json", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(3), "{:?}", text(&o));
    let doc = json_doc(&o, "plan-result.schema.json");
    assert_eq!(doc["changes"], true, "{doc}");
    assert_eq!(doc["change"][0]["name"], "redis.container", "{doc}");
    assert_eq!(doc["actions"][0]["kind"], "restart", "{doc}");
    assert_eq!(plan(&["--detailed-exitcode"]).status.code(), Some(3));
    assert_eq!(
        plan(&["--json"]).status.code(),
        Some(0),
        "pending is not an error"
    );
    assert_eq!(snapshot(&out_dir), before, "plan changes nothing");

    std::fs::write(specs.join("99-bad.toml"), "[container.x]\nimgae = 1\n").unwrap();
    let o = plan(&["--json", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
    let doc = json_doc(&o, "plan-result.schema.json");
    assert_eq!(
        (&doc["ok"], &doc["changes"]),
        (&false.into(), &false.into()),
        "{doc}"
    );
    let e = &doc["errors"][0];
    assert!(
        e["file"].as_str().unwrap().ends_with("99-bad.toml"),
        "{doc}"
    );
    assert_eq!(
        (e["line"].as_u64(), e["col"].as_u64()),
        (Some(2), Some(1)),
        "{doc}"
    );
}

/// A plan that found nothing to change is remembered in the state
/// directory (`reconcile/stamp.rs`): the next one answers without parsing,
/// and any change to what a plan reads (a spec edited in place to the same
/// size, an env file swapped for a FIFO, an output file edited) is planned
/// in full again.
#[test]
fn a_plan_with_nothing_to_change_is_remembered_until_anything_it_read_changes() {
    let d = tempfile::tempdir().unwrap();
    let (out_dir, specs, st) = (
        d.path().join("out"),
        d.path().join("specs"),
        d.path().join("st"),
    );
    std::fs::create_dir(&specs).unwrap();
    std::fs::create_dir(&st).unwrap();
    for f in std::fs::read_dir(senex()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), specs.join(f.file_name())).unwrap();
    }
    let env = d.path().join("tool.env");
    std::fs::write(&env, "A=1\n").unwrap();
    let tool = format!(
        "[container.tool]\nimage = \"docker.io/library/busybox:1\"\nenv_files = [{:?}]\n",
        env.to_str().unwrap()
    );
    std::fs::write(specs.join("50-tool.toml"), tool).unwrap();
    let specs_arg = specs.to_str().unwrap();
    let o = run(
        &[
            "render",
            "--specs",
            specs_arg,
            "--out",
            out_dir.to_str().unwrap(),
        ],
        d.path(),
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let plan = |verbose: bool| {
        let mut c = offline();
        if verbose {
            c.arg("-v");
        }
        c.args(["plan", "--detailed-exitcode"])
            .args(["--config", d.path().join("agent.toml").to_str().unwrap()])
            .args(["--specs", specs_arg])
            .args(["--output-dir", out_dir.to_str().unwrap()])
            .args(["--state-dir", st.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let stamped = |o: &Output| text(o).1.contains("nothing a plan reads changed");
    let settle = || std::thread::sleep(std::time::Duration::from_millis(2100));
    settle();
    let warnings = |o: &Output| {
        let e = text(o).1;
        e.lines()
            .filter(|l| l.starts_with("warning:"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let full = plan(false);
    assert_eq!(full.status.code(), Some(0), "{:?}", text(&full));
    assert!(!stamped(&full) && st.join("plan-stamp.json").is_file());
    let o = plan(true);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(stamped(&o), "answered from the stamp: {:?}", text(&o));
    assert_eq!(text(&o).0, text(&full).0);
    // celery-beat and celery-worker have no memory limit: said again.
    assert!(!warnings(&full).is_empty());
    assert_eq!(warnings(&o), warnings(&full));

    std::fs::remove_file(&env).unwrap();
    nix::unistd::mkfifo(&env, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let o = plan(true);
    assert_eq!(o.status.code(), Some(2), "a FIFO env file: {:?}", text(&o));
    assert!(text(&o).1.contains("50-tool.toml:3:"), "{:?}", text(&o));
    std::fs::remove_file(&env).unwrap();
    std::fs::write(&env, "A=1\n").unwrap();
    settle();
    assert_eq!(plan(false).status.code(), Some(0));
    assert!(stamped(&plan(true)));

    // In place, same size, at once: only the ctime tells.
    let redis = specs.join("20-redis.toml");
    let was = std::fs::read_to_string(&redis).unwrap();
    std::fs::write(&redis, was.replace("memory = \"50M\"", "memory = \"64M\"")).unwrap();
    let o = plan(true);
    assert_eq!(o.status.code(), Some(3), "{:?}", text(&o));
    assert!(
        !stamped(&o) && text(&o).0.contains("redis.container"),
        "{:?}",
        text(&o)
    );
    std::fs::write(&redis, was).unwrap();
    settle();
    assert_eq!(plan(false).status.code(), Some(0));
    assert!(stamped(&plan(true)));

    let unit = out_dir.join("redis.container");
    let mut t = std::fs::read_to_string(&unit).unwrap();
    t.push('\n');
    std::fs::write(&unit, t).unwrap();
    let o = plan(true);
    assert_eq!(
        o.status.code(),
        Some(3),
        "an output file edited: {:?}",
        text(&o)
    );
    assert!(!stamped(&o), "{:?}", text(&o));
}

/// `status --json` as the library builds it: valid against its schema,
/// `ok` false as soon as one unit is not active. (The real command needs a
/// manager; the e2e tests check its output against the same schema.)
#[test]
fn status_json_is_versioned_and_matches_its_schema() {
    let row = deploy_agent::status::Row {
        unit: "web.service".into(),
        file: "web.container".into(),
        load_state: "loaded".into(),
        active_state: "active".into(),
        sub_state: "running".into(),
        health: "healthy".into(),
        last_check: Some("2026-01-01T00:00:00Z".into()),
        last_result: Some("HTTP 200".into()),
        restarts: 0,
        memory_current: Some(1 << 20),
        memory_max: None,
        generation: Some(4),
        note: None,
    };
    let mut down = row.clone();
    down.note = Some("not started: requires db.service, which is failed".into());
    down.unit = "db.service".into();
    down.active_state = "failed".into();
    let well = deploy_agent::formats::StatusDoc::new(Some(4), vec![row.clone()]);
    let ill = deploy_agent::formats::StatusDoc::new(Some(4), vec![row, down]);
    for (doc, ok) in [(well, true), (ill, false)] {
        let v = serde_json::to_value(&doc).unwrap();
        assert_eq!(
            schema::violations(&fixture_schema("status-result.schema.json"), &v),
            Vec::<String>::new(),
            "{v}"
        );
        assert_eq!(
            (v["version"].as_u64(), v["ok"].as_bool()),
            (Some(1), Some(ok))
        );
    }
    // With no manager to ask: exit 1, said on stderr, no half document.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("agent.toml"), "").unwrap();
    let o = offline()
        .args([
            "status",
            "--json",
            "--config",
            d.path().join("agent.toml").to_str().unwrap(),
        ])
        .args(["--state-dir", d.path().join("st").to_str().unwrap()])
        .args(["--output-dir", d.path().join("out").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    assert!(
        text(&o).0.is_empty() && text(&o).1.contains("cannot reach systemd"),
        "{:?}",
        text(&o)
    );
}
