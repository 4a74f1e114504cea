//! Peer comparison for `import compose` (issue 17), on the real test
//! environment (`tests/env/testenv up`): for each project under
//! tests/fixtures/compose-e2e/, `podman-compose up -d` (Debian's) and
//! `deploy-agent import compose` + `apply --wait` must give containers whose
//! `podman inspect` agree on image, command, entrypoint, env, ports, mounts,
//! user, capabilities, devices, limits and health check. The differences
//! that are expected are listed, with the reason, in
//! tests/fixtures/compose-e2e/expected-differences.txt; the fields compared
//! here are the others.
//!
//! Also: `depends_on: {db: {condition: service_healthy}}` starts web only
//! after db is healthy.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{serial, Workspace};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose-e2e")
}

/// The fixture project copied to the workspace (readable by the test user).
fn project(ws: &Workspace, case: &str) -> PathBuf {
    let dst = ws.root.join("compose").join(case);
    copy_dir(&fixtures().join(case), &dst, ws);
    dst
}

fn copy_dir(src: &Path, dst: &Path, ws: &Workspace) {
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &to, ws);
        } else {
            ws.env.write_bytes(&to, &std::fs::read(e.path()).unwrap());
        }
    }
}

fn inspect(ws: &Workspace, name: &str) -> Value {
    let out = ws
        .env
        .user_ok(&["podman", "inspect", "--type", "container", name]);
    let v: Value = serde_json::from_str(&out).expect("podman inspect JSON");
    v[0].clone()
}

/// The fields the issue names, as one JSON object per container.
fn compared(c: &Value) -> Value {
    let cfg = &c["Config"];
    let host = &c["HostConfig"];
    let env: Vec<&str> = cfg["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|e| {
            !["PATH=", "HOSTNAME=", "container=", "TERM=", "HOME="]
                .iter()
                .any(|p| e.starts_with(p))
        })
        .collect();
    let mut env = env;
    env.sort();
    let mut mounts: Vec<String> = c["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let src = if m["Type"] == "volume" {
                m["Name"].to_string()
            } else {
                m["Source"].to_string()
            };
            format!("{} {src} -> {} rw={}", m["Type"], m["Destination"], m["RW"])
        })
        .collect();
    mounts.sort();
    serde_json::json!({
        "image": c["ImageName"],
        "command": cfg["Cmd"],
        "entrypoint": cfg["Entrypoint"],
        "env": env,
        "ports": host["PortBindings"],
        "mounts": mounts,
        "user": cfg["User"],
        "cap_add": host["CapAdd"],
        "cap_drop": host["CapDrop"],
        "devices": host["Devices"],
        "memory": host["Memory"],
        "nano_cpus": host["NanoCpus"],
        "pids": host["PidsLimit"],
        "read_only": host["ReadonlyRootfs"],
        "tmpfs": host["Tmpfs"],
        // Twice: the shell string holds one word that is itself the command line.
        "healthcheck": health(&health(&cfg["Healthcheck"])),
        "workdir": cfg["WorkingDir"],
    })
}

/// Podman-compose 1.0.3 passes an exec-form `["CMD", ...]` test as one
/// shell string (`["CMD-SHELL", "/bin/sh -c 'a' 'b'"]`, see
/// expected-differences.txt); read back into words, it is the same command.
fn health(h: &Value) -> Value {
    let mut h = h.clone();
    let test = h["Test"].as_array().cloned().unwrap_or_default();
    let joined = match (
        test.first().and_then(Value::as_str),
        test.get(1).and_then(Value::as_str),
    ) {
        (Some("CMD-SHELL"), Some(t)) if test.len() == 2 => t.strip_prefix("/bin/sh -c "),
        (Some("CMD"), Some(t)) if test.len() == 2 && t.contains(' ') => Some(t),
        _ => None,
    };
    if let Some(words) = joined.and_then(|t| shell_words::split(t).ok()) {
        let mut argv = vec![Value::from("CMD")];
        argv.extend(words.into_iter().map(Value::from));
        h["Test"] = Value::from(argv);
    }
    h
}

/// Runs podman-compose for the project, returns the compared fields of
/// each service's container, then takes the project down.
fn podman_compose(ws: &Workspace, dir: &Path, project: &str, services: &[&str]) -> Vec<Value> {
    let d = dir.to_string_lossy().into_owned();
    let cd = |cmd: &str| {
        ws.env.user_ok(&[
            "sh",
            "-c",
            &format!("cd '{d}' && podman-compose -p {project} {cmd}"),
        ])
    };
    cd("up -d");
    let out = services
        .iter()
        .map(|s| compared(&inspect(ws, &format!("{project}_{s}_1"))))
        .collect();
    cd("down -v");
    out
}

/// Imports the project into the workspace's specs, applies, compares.
fn imported(ws: &Workspace, dir: &Path, project: &str, services: &[&str]) -> Vec<Value> {
    let specs = ws.specs.to_string_lossy().into_owned();
    let d = dir.to_string_lossy().into_owned();
    let import = format!(
        "cd '{d}' && {} import compose --project-name {project} --out '{specs}'",
        Workspace::bin()
    );
    ws.env.user_ok(&["sh", "-c", &import]);
    ws.agent_ok(&["apply", "--wait=2m"]);
    services
        .iter()
        .map(|s| compared(&inspect(ws, &format!("{project}-{s}"))))
        .collect()
}

fn compare(case: &str, services: &[&str]) {
    let _g = serial();
    let ws = Workspace::new(&format!("compose-{case}"));
    let dir = project(&ws, case);
    let project = format!("e2ec{}", case.replace('-', ""));
    let peer = podman_compose(&ws, &dir, &project, services);
    let ours = imported(&ws, &dir, &project, services);
    for (i, s) in services.iter().enumerate() {
        assert_eq!(
            ours[i], peer[i],
            "{case}/{s}: import + apply (left) differs from podman-compose (right) \
             beyond tests/fixtures/compose-e2e/expected-differences.txt"
        );
    }
}

#[test]
fn keys_match_podman_compose() {
    compare("keys", &["web"]);
}

#[test]
fn merged_files_match_podman_compose() {
    compare("multi", &["app"]);
}

#[test]
fn health_gated_dependencies_match_podman_compose() {
    compare("health-gated", &["db", "web"]);
}

#[test]
fn environment_forms_match_podman_compose() {
    compare("env-forms", &["app", "other"]);
}

#[test]
fn string_commands_match_podman_compose() {
    compare("strings", &["app", "plain"]);
}

#[test]
fn long_syntax_ports_match_podman_compose() {
    compare("ports-long", &["web"]);
}

#[test]
fn long_syntax_volumes_match_podman_compose() {
    compare("volumes-long", &["app"]);
}

#[test]
fn resource_limits_match_podman_compose() {
    compare("limits", &["v3", "v2"]);
}

#[test]
fn security_settings_match_podman_compose() {
    compare("security", &["app"]);
}

#[test]
fn networks_and_hosts_match_podman_compose() {
    compare("net-aliases", &["server", "client"]);
}

/// web's container starts only once db's health check passed: db gets
/// healthy 6 s after its start, so web starts at least 6 s after db.
#[test]
fn service_healthy_starts_web_after_db_is_healthy() {
    let _g = serial();
    let ws = Workspace::new("compose-gate");
    let dir = project(&ws, "health-gated");
    imported(&ws, &dir, "e2ecgate", &[]);
    let started = |name: &str| {
        let c = inspect(&ws, name);
        let t = c["State"]["StartedAt"].as_str().unwrap().to_string();
        let out = ws.env.user_ok(&["date", "-d", &t, "+%s.%N"]);
        out.trim().parse::<f64>().unwrap()
    };
    let (db, web) = (started("e2ecgate-db"), started("e2ecgate-web"));
    assert!(
        web - db >= 6.0,
        "web started {:.1}s after db, before db was healthy",
        web - db
    );
    let health = inspect(&ws, "e2ecgate-db")["State"]["Health"]["Status"].clone();
    assert_eq!(health, "healthy");
}

#[test]
fn a_joined_health_test_reads_back_into_words() {
    let h = serde_json::json!({ "Test": ["CMD-SHELL", "/bin/sh -c test' '-f' '/tmp/ready"], "Retries": 3 });
    assert_eq!(
        health(&health(&h)),
        serde_json::json!({ "Test": ["CMD", "test", "-f", "/tmp/ready"], "Retries": 3 })
    );
}
