//! Who may write specs (README "What is checked"), through the real binary
//! on the host: `validate` refuses a spec file writable by a group that is
//! not root's, and a specs directory below a directory others can write;
//! `trusted_group` in agent.toml (a name or a gid) lets a group write; a
//! `trusted_group` that names no group is an error. Needs root (chgrp to
//! an arbitrary group); CI runs as root.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

const SPEC: &str = "[container.web]\nimage = \"localhost/busybox:latest\"\n";
const GID: u32 = 4343;

/// `validate` with `dir/specs` and an agent.toml of `[agent]` lines.
fn validate(dir: &Path, agent_lines: &str) -> Output {
    let toml = format!("[agent]\npodman_version = \"5.4\"\n{agent_lines}");
    std::fs::write(dir.join("agent.toml"), toml).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_deploy-agent"))
        .arg("validate")
        .arg("--config")
        .arg(dir.join("agent.toml"))
        .arg("--specs")
        .arg(dir.join("specs"))
        .env_remove("DEPLOY_AGENT_CONFIG")
        .env_remove("DEPLOY_AGENT_SPECS")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn mode(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn a_group_writable_spec_is_refused_unless_its_group_is_trusted() {
    if !root() {
        eprintln!("skipped: needs root to chgrp");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let specs = d.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    let file = specs.join("web.toml");
    std::fs::write(&file, SPEC).unwrap();
    nix::unistd::chown(&file, None, Some(nix::unistd::Gid::from_raw(GID))).unwrap();
    mode(&file, 0o664);

    let out = validate(d.path(), "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("web.toml is writable by its group (gid 4343, mode 664)"),
        "{}",
        text(&out)
    );
    let out = validate(d.path(), "trusted_group = \"4343\"\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A name that is no group: an error naming the setting.
    let out = validate(d.path(), "trusted_group = \"no-such-group-x\"\n");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("agent.trusted_group: no group named \"no-such-group-x\""),
        "{}",
        text(&out)
    );
    // A name that resolves, to another group: still refused.
    let out = validate(d.path(), "trusted_group = \"root\"\n");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn a_specs_dir_below_a_directory_others_can_write_is_refused() {
    if !root() {
        eprintln!("skipped: needs a root-owned temp dir layout");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let shared = d.path().join("shared");
    let specs = shared.join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::write(specs.join("web.toml"), SPEC).unwrap();
    // validate() writes agent.toml next to specs, i.e. in `shared`.
    mode(&shared, 0o777);
    let out = validate(&shared, "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("directory above the specs")
            && text(&out).contains("is writable by everyone (mode 777)"),
        "{}",
        text(&out)
    );
    mode(&shared, 0o1777);
    let out = validate(&shared, "");
    assert_eq!(
        out.status.code(),
        Some(0),
        "sticky, like /tmp: {}",
        text(&out)
    );
}
