//! Key-by-key tests of the whole import on small Compose texts.

use super::*;

/// Imports `yaml` (written to a temp dir as compose.yaml) and returns the
/// text of the container spec of service `svc` (project "t"), and problems.
fn one(yaml: &str, svc: &str) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), yaml).unwrap();
    let imp = import(&Options {
        cwd: dir.path().into(),
        out: "/o".into(),
        project_name: Some("t".into()),
        ..Default::default()
    });
    let name = format!("t-{svc}.toml");
    let text = imp
        .specs
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| t.clone())
        .unwrap_or_default();
    let problems = imp
        .problems
        .iter()
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect();
    (text, problems)
}

fn has(text: &str, line: &str) -> bool {
    text.lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == line)
}

#[test]
fn restart_policies() {
    for (compose, spec) in [
        ("no", "no"),
        ("always", "always"),
        ("unless-stopped", "always"),
        ("on-failure", "on-failure"),
        ("on-failure:3", "on-failure"),
    ] {
        let (t, p) = one(
            &format!("services:\n  a:\n    image: x/y\n    restart: \"{compose}\"\n"),
            "a",
        );
        assert!(has(&t, &format!("restart = \"{spec}\"")), "{compose}: {t}");
        assert!(p.is_empty());
    }
    let (_, p) = one(
        "services:\n  a:\n    image: x/y\n    restart: sometimes\n",
        "a",
    );
    assert!(p[0].contains("unknown restart policy"), "{p:?}");
}

#[test]
fn healthcheck_forms() {
    let base = "services:\n  a:\n    image: x/y\n    healthcheck:\n      test: ";
    let (t, _) = one(
        &format!("{base}[\"CMD\", \"curl\", \"-f\", \"http://x\"]\n"),
        "a",
    );
    assert!(has(&t, "cmd = [\"curl\", \"-f\", \"http://x\"]"), "{t}");
    assert!(
        has(&t, "timeout = \"30s\"") && has(&t, "retries = 3"),
        "Docker's defaults: {t}"
    );
    let (t, _) = one(&format!("{base}[\"CMD-SHELL\", \"pg_isready\"]\n"), "a");
    assert!(
        has(&t, "cmd = [\"/bin/sh\", \"-c\", \"pg_isready\"]"),
        "{t}"
    );
    let (t, _) = one(&format!("{base}pg_isready -q\n"), "a");
    assert!(
        has(&t, "cmd = [\"/bin/sh\", \"-c\", \"pg_isready -q\"]"),
        "{t}"
    );
    let (t, _) = one(&format!("{base}[\"NONE\"]\n"), "a");
    assert!(!t.contains("[container.t-a.health]"), "{t}");
    let (_, p) = one(&format!("{base}[\"RUN\", \"x\"]\n"), "a");
    assert!(p[0].contains("CMD, CMD-SHELL or NONE"), "{p:?}");
}

#[test]
fn depends_on_conditions() {
    let y = "services:
  db:
    image: x/db
    healthcheck: {test: [CMD, ok]}
  cache:
    image: x/cache
  opt:
    image: x/opt
  web:
    image: x/web
    depends_on:
      db: {condition: service_healthy}
      cache: {condition: service_started}
      opt: {condition: service_started, required: false}
";
    let (t, p) = one(y, "web");
    assert!(p.is_empty(), "{p:?}");
    assert!(has(&t, "requires = [\"t-db\", \"t-cache\"]"), "{t}");
    assert!(has(&t, "wants = [\"t-opt\"]"), "{t}");
    assert!(t.contains("service_started (cache)"), "{t}");
    let (_, p) = one("services:\n  db: {image: x/db}\n  web:\n    image: x/w\n    depends_on: {db: {condition: service_healthy}}\n", "web");
    assert!(p[0].contains("has no healthcheck"), "{p:?}");
    let (_, p) = one(
        "services:\n  web:\n    image: x/w\n    depends_on: [nothere]\n",
        "web",
    );
    assert!(p[0].contains("not a service"), "{p:?}");
}

#[test]
fn environment_list_and_map_and_labels() {
    let (t, _) = one(
        "services:\n  a:\n    image: x/y\n    environment: [A=1, B=x=y]\n    labels: {k: v}\n",
        "a",
    );
    assert!(has(&t, "env = { A = \"1\", B = \"x=y\" }"), "{t}");
    assert!(has(&t, "labels = { k = \"v\" }"), "{t}");
    let (t, _) = one(
        "services:\n  a:\n    image: x/y\n    environment: {N: 5, F: false}\n",
        "a",
    );
    assert!(has(&t, "env = { N = \"5\", F = \"false\" }"), "{t}");
    let (_, p) = one(
        "services:\n  a:\n    image: x/y\n    environment: [\"bad name=1\"]\n",
        "a",
    );
    assert_eq!(p.len(), 1, "{p:?}");
}

#[test]
fn container_name_and_naming_rule() {
    let (t, _) = one(
        "services:\n  a:\n    image: x/y\n    container_name: mine\n",
        "a",
    );
    assert!(t.is_empty(), "named after container_name instead");
    let (_, p) = one(
        "services:\n  a:\n    image: x/y\n    container_name: Bad_Name\n",
        "a",
    );
    assert!(p[0].contains("container_name"), "{p:?}");
}

#[test]
fn network_mode_and_unknown_network() {
    let (t, _) = one(
        "services:\n  a:\n    image: x/y\n    network_mode: host\n",
        "a",
    );
    assert!(
        has(&t, "networks = [\"host\"]") && !t.contains("network_aliases"),
        "{t}"
    );
    let (_, p) = one(
        "services:\n  a:\n    image: x/y\n    networks: [nope]\n",
        "a",
    );
    assert!(p[0].contains("not declared"), "{p:?}");
    let (_, p) = one("services:\n  a:\n    image: x/y\n    networks:\n      n: {ipv4_address: 10.0.0.2}\nnetworks:\n  n: {}\n", "a");
    assert!(p[0].contains("fixed addresses"), "{p:?}");
}

#[test]
fn refusals_are_all_listed_with_lines() {
    let y = "services:\n  a:\n    build: .\n  b:\n    image: x/y\n    deploy: {replicas: 2}\n    bogus: 1\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), y).unwrap();
    let imp = import(&Options {
        cwd: dir.path().into(),
        out: "/o".into(),
        ..Default::default()
    });
    let lines: Vec<(usize, &str)> = imp
        .problems
        .iter()
        .map(|p| (p.at.line, p.key.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (3, "services.a.build"),
            (6, "services.b.deploy.replicas"),
            (7, "services.b.bogus")
        ]
    );
    assert_eq!(imp.problems[0].scope, Scope::Service("a".into()));
    assert_eq!(imp.problems[1].scope, Scope::Key);
    // The service refused whole is not written; the other one is.
    assert_eq!(
        imp.specs
            .iter()
            .filter(|(n, _)| n.ends_with("-b.toml"))
            .count(),
        1
    );
    assert!(!imp.specs.iter().any(|(n, _)| n.ends_with("-a.toml")));
}

#[test]
fn file_errors_stop_the_import() {
    let (_, p) = one("services:\n  a: [\n", "a");
    assert!(p[0].contains("invalid YAML"), "{p:?}");
    let (_, p) = one(
        "services:\n  a:\n    image: ${NEED:?please set NEED}\n",
        "a",
    );
    assert!(p[0].contains("please set NEED"), "{p:?}");
    let (_, p) = one("include: [other.yaml]\nservices:\n  a: {image: x/y}\n", "a");
    assert!(p[0].contains("include"), "{p:?}");
}

#[test]
fn project_name_is_normalized() {
    let o = Options {
        project_name: Some("My App!".into()),
        ..Default::default()
    };
    assert_eq!(
        project_name(
            &o,
            &yaml::parse(&Arc::new("x".into()), "{}").unwrap(),
            Path::new("/x")
        ),
        "myapp"
    );
    let o = Options::default();
    let m = yaml::parse(&Arc::new("x".into()), "name: Named\n").unwrap();
    assert_eq!(project_name(&o, &m, Path::new("/srv/dir")), "named");
}

#[test]
fn secrets_are_files_never_inline() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "hunter2").unwrap();
    let y = "services:\n  a:\n    image: x/y\n    secrets: [pw]\nsecrets:\n  pw: {file: ./pw}\n";
    std::fs::write(dir.path().join("compose.yaml"), y).unwrap();
    let out = dir.path().join("out");
    let imp = import(&Options {
        cwd: dir.path().into(),
        out: out.clone(),
        project_name: Some("t".into()),
        ..Default::default()
    });
    assert!(imp.problems.is_empty(), "{:?}", imp.problems);
    assert!(imp.specs.iter().all(|(_, t)| !t.contains("hunter2")));
    write(&imp, &out).unwrap();
    let file = out.join("files/secrets/t_pw");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hunter2");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A second run rewrites its own files; a foreign file is never replaced.
    write(&imp, &out).unwrap();
    std::fs::write(out.join("t-a.toml"), "[container.x]\n").unwrap();
    assert!(matches!(write(&imp, &out), Err(WriteError::NotOurs(_))));
}
