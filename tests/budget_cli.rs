//! The host budget (README "Limits and budgets"), through the real binary on
//! the host, no systemd needed:
//!
//! * reservations adding up to more than agent.toml `[host] memory` make
//!   `validate` and `apply` exit 2 with "memory reservations add up to ...",
//!   and `apply` writes nothing: no rendered file, no state, and it never
//!   gets as far as the bus (the check comes before systemd);
//! * hard limits (and CPU quotas) adding up to more are a warning: `validate`
//!   exits 0, `apply` goes on past the budget (to an unreachable systemd);
//! * without `[host] memory` the host is this machine (MemTotal), and
//!   without `[host] cpus` its cores.
//!
//! `validate` and `apply` run the check in different places
//! (`commands::validate`, `Agent::plan`), so each has its own test; each
//! fails when its check is disabled.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use deploy_agent::budget::human;

/// README's example: 270M of reservations, 580M of limits, 2.5 CPUs.
const STACK: &str = r#"
[container.db]
image = "docker.io/library/postgres:16"
[container.db.resources]
memory = "200M"
memory_reservation = "150M"
cpus = 1.0

[container.web]
image = "registry.example.com/app:1.2.3"
[container.web.resources]
memory = "300M"
memory_reservation = "120M"
cpus = 1.5

[container.cache]
image = "docker.io/library/redis:7"
[container.cache.resources]
memory = "80M"
"#;

const RESERVATIONS_ERROR: &str = "memory reservations add up to 270M (db 150M + web 120M), more than the host's 256M: the host cannot honour them";
const LIMITS_WARNING_256: &str = "hard memory limits add up to 580M (cache 80M + db 200M + web 300M), more than the host's 256M: if all services reach their limits the host runs out of memory";
const LIMITS_WARNING_512: &str = "hard memory limits add up to 580M (cache 80M + db 200M + web 300M), more than the host's 512M: if all services reach their limits the host runs out of memory";
const CPU_WARNING: &str =
    "CPU quotas add up to 2.5 cores, more than the host's 2: services will share them";

/// A temp dir with `specs/stack.toml` and `agent.toml`; output and state
/// dirs are paths in it (the output dir exists and is empty).
struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new(agent_toml: &str, spec: &str) -> Host {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("specs")).unwrap();
        std::fs::write(dir.path().join("specs/stack.toml"), spec).unwrap();
        std::fs::write(dir.path().join("agent.toml"), agent_toml).unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        Host { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `deploy-agent CMD` with this host's config and dirs; systemd is
    /// unreachable whichever bus the agent picks, so that an apply that got
    /// past the budget stops at the bus (exit 1) and touches no real manager.
    fn run(&self, cmd: &str) -> Output {
        let p = |n: &str| self.path(n).into_os_string();
        Command::new(env!("CARGO_BIN_EXE_deploy-agent"))
            .env_remove("DEPLOY_AGENT_CONFIG")
            .env_remove("DEPLOY_AGENT_SPECS")
            .env_remove("RUST_LOG")
            .env(
                "DBUS_SYSTEM_BUS_ADDRESS",
                "unix:path=/nonexistent/system_bus_socket",
            )
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                "unix:path=/nonexistent/session_bus_socket",
            )
            .arg(cmd)
            .arg("--config")
            .arg(p("agent.toml"))
            .arg("--specs")
            .arg(p("specs"))
            .arg("--output-dir")
            .arg(p("out"))
            .arg("--state-dir")
            .arg(p("state"))
            .output()
            .unwrap()
    }

    /// Nothing written: the output dir still empty, no state dir content.
    fn assert_untouched(&self) {
        let out: Vec<_> = std::fs::read_dir(self.path("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(out.is_empty(), "files written to the output dir: {out:?}");
        let state = self.path("state");
        if state.exists() {
            let st: Vec<_> = walk(&state);
            assert!(st.is_empty(), "state written: {st:?}");
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walk(&p));
        }
        v.push(p);
    }
    v
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const HOST_256M: &str = "[agent]\npodman_version = \"5.4\"\n[host]\nmemory = \"256M\"\ncpus = 4\n";

#[test]
fn validate_refuses_reservations_over_the_host_memory() {
    let h = Host::new(HOST_256M, STACK);
    let o = h.run("validate");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(
        err.lines()
            .any(|l| l == format!("error: {RESERVATIONS_ERROR}")),
        "{err}"
    );
    // The limits are over too: the warning comes with the error.
    assert!(
        err.lines()
            .any(|l| l == format!("warning: {LIMITS_WARNING_256}")),
        "{err}"
    );
    assert!(!out.contains("OK"), "{out}");
    h.assert_untouched();
}

#[test]
fn apply_refuses_reservations_over_the_host_memory_before_touching_anything() {
    let h = Host::new(HOST_256M, STACK);
    let o = h.run("apply");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(
        err.contains("the services do not fit the host; nothing was changed"),
        "{err}"
    );
    assert!(err.lines().any(|l| l == RESERVATIONS_ERROR), "{err}");
    // Refused before the bus: systemd (unreachable here) was never asked.
    assert!(!err.contains("cannot reach systemd"), "{err}");
    h.assert_untouched();
}

#[test]
fn hard_limits_and_cpus_over_the_host_are_warnings() {
    let h = Host::new(
        "[agent]\npodman_version = \"5.4\"\n[host]\nmemory = \"512M\"\ncpus = 2\n",
        STACK,
    );
    let o = h.run("validate");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(
        err.lines()
            .any(|l| l == format!("warning: {LIMITS_WARNING_512}")),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l == format!("warning: {CPU_WARNING}")),
        "{err}"
    );
    assert!(!err.contains("error"), "{err}");
    assert!(
        out.contains("1 file(s) OK: 3 container(s), 0 network(s), 0 volume(s)"),
        "{out}"
    );

    // apply is not refused either: it gets past the budget to systemd,
    // which is unreachable here (exit 1, nothing changed).
    let o = h.run("apply");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        err.contains("cannot reach systemd over D-Bus; nothing was changed"),
        "{err}"
    );
    // One diagnostic style: the same warning line as validate's, no colour.
    assert!(
        err.lines()
            .any(|l| l == format!("warning: {LIMITS_WARNING_512}")),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(!err.contains("do not fit the host"), "{err}");
    h.assert_untouched();
}

/// MemTotal of this machine, in bytes.
fn mem_total() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("MemTotal in /proc/meminfo");
    kb * 1024
}

#[test]
fn without_host_memory_the_host_is_this_machine() {
    let total = mem_total();
    // One reservation 1M over this machine's RAM (sizes are in whole M here).
    let over = (total >> 20) + 1;
    let spec = |m: u64| {
        format!(
            "[container.big]\nimage = \"x\"\n[container.big.resources]\nmemory = \"{m}M\"\nmemory_reservation = \"{m}M\"\n"
        )
    };
    let h = Host::new("[agent]\npodman_version = \"5.4\"\n", &spec(over));
    let o = h.run("validate");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    let want = format!(
        "error: memory reservations add up to {} (big {}), more than the host's {}: the host cannot honour them",
        human(over << 20),
        human(over << 20),
        human(total)
    );
    assert!(err.lines().any(|l| l == want), "want {want:?} in:\n{err}");

    // Half this machine's RAM fits.
    let h = Host::new("[agent]\npodman_version = \"5.4\"\n", &spec(over / 2));
    let o = h.run("validate");
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(
        !text(&o).1.contains("memory reservations"),
        "{:?}",
        text(&o)
    );
}

/// This machine's cores, as `nproc` counts them (the CPUs this process may
/// run on; Rust's count also honours a cgroup CPU quota, which `nproc`
/// does not, so where they differ the agent's is used and said so).
fn cores() -> u64 {
    let rust = std::thread::available_parallelism().unwrap().get() as u64;
    let nproc = Command::new("nproc")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    if nproc.is_some_and(|n| n != rust) {
        eprintln!("nproc says {nproc:?}, available_parallelism {rust}: using {rust}");
    }
    rust
}

#[test]
fn without_host_cpus_the_host_is_this_machines_cores() {
    let n = cores();
    let spec = |cpus: u64| {
        format!("[container.big]\nimage = \"x\"\n[container.big.resources]\ncpus = {cpus}\n")
    };
    // One core more than this machine has: the warning, naming its count.
    let h = Host::new("[agent]\npodman_version = \"5.4\"\n", &spec(n + 1));
    let o = h.run("validate");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let want = format!(
        "warning: CPU quotas add up to {} cores, more than the host's {n}: services will share them",
        n + 1
    );
    assert!(err.lines().any(|l| l == want), "want {want:?} in:\n{err}");

    // Exactly this machine's cores fit: no warning at all.
    let h = Host::new("[agent]\npodman_version = \"5.4\"\n", &spec(n));
    let o = h.run("validate");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(!err.contains("CPU quotas"), "{err}");
    assert!(!err.contains("warning"), "{err}");
}
