//! `deploy-agent import compose` on the command line: exit codes, the
//! list of refusals (every one, with file:line and key), `--partial`, and
//! that nothing is written when the import is refused.

use std::path::Path;
use std::process::{Command, Output};

fn import(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deploy-agent"))
        .args(["import", "compose"])
        .args(args)
        .current_dir(dir)
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_PROFILES")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const REFUSED: &str = "services:
  built:
    build: ./app
  scaled:
    image: docker.io/library/nginx:1.27
    deploy:
      replicas: 3
  sidecar:
    image: docker.io/library/busybox:1.36
    network_mode: service:scaled
";

/// A file whose output uses only keys this branch's spec parser knows
/// except `network_aliases` (every import writes it): see the report of
/// issue 17 for the tests that need the issue-12 keys.
const PLAIN: &str = "name: plain
services:
  db:
    image: docker.io/library/postgres:16
    healthcheck: {test: [CMD, pg_isready]}
  web:
    image: docker.io/library/nginx:1.27
    depends_on: {db: {condition: service_healthy}}
";

#[test]
fn refusals_are_listed_all_at_once_with_exit_2_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), REFUSED).unwrap();
    let o = import(dir.path(), &["--out", "out"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    for want in [
        "compose.yaml:3: services.built.build:",
        "compose.yaml:7: services.scaled.deploy.replicas:",
        "compose.yaml:10: services.sidecar.network_mode:",
        "3 problem(s): nothing written (--partial writes the rest)",
    ] {
        assert!(err.contains(want), "{want:?} in:\n{err}");
    }
    assert!(!dir.path().join("out").exists());
}

#[test]
fn file_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let o = import(dir.path(), &["--out", "out"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no Compose file here"),
        "{}",
        stderr(&o)
    );
    std::fs::write(dir.path().join("c.yaml"), "services: [\n").unwrap();
    let o = import(dir.path(), &["-f", "c.yaml", "--out", "out"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("c.yaml:"), "{}", stderr(&o));
    // Not even --partial writes anything when a file cannot be read.
    let o = import(dir.path(), &["-f", "c.yaml", "--out", "out", "--partial"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!dir.path().join("out").exists());
    let o = import(dir.path(), &["--out"]);
    assert_eq!(o.status.code(), Some(2), "usage error");
}

#[test]
fn help_explains_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let o = import(dir.path(), &["--help"]);
    let out = String::from_utf8_lossy(&o.stdout);
    for want in [
        "--partial",
        "--secrets-dir",
        "--env-file",
        "--project-name",
        "approximation:",
    ] {
        assert!(out.contains(want), "{want} in:\n{out}");
    }
}

/// Needs the issue-12 keys: the written specs are validated first, and
/// every import writes `network_aliases`.
#[test]
fn partial_writes_the_rest_and_lists_what_it_left_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("compose.yaml"),
        format!("{REFUSED}  ok:\n    image: docker.io/library/redis:7\n"),
    )
    .unwrap();
    let o = import(dir.path(), &["--out", "out", "-p", "p", "--partial"]);
    // Written, and still exit 2: something was not carried over.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("left out (--partial): 3 item(s)"), "{out}");
    assert!(stderr(&o).contains("services.built.build"));
    let written = dir.path().join("out");
    assert!(written.join("p-ok.toml").exists());
    assert!(
        written.join("p-scaled.toml").exists(),
        "replicas left out, the service written"
    );
    assert!(!written.join("p-built.toml").exists());
    assert!(!written.join("p-sidecar.toml").exists());
}

/// Needs the issue-12 keys, as above.
#[test]
fn a_clean_import_exits_0_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), PLAIN).unwrap();
    let o = import(dir.path(), &["--out", "specs"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = Command::new(env!("CARGO_BIN_EXE_deploy-agent"))
        .args(["validate", "--specs"])
        .arg(dir.path().join("specs"))
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", stderr(&v));
}
