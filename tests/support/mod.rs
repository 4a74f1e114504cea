//! Harness for the end-to-end tests: the real systemd user manager and
//! rootless Podman brought up by `tests/env/testenv up`.
//!
//! Nothing here fakes systemd or Podman: commands run as the unprivileged
//! test user inside the booted namespace. If the environment is not up,
//! every test that needs it fails with a message saying how to bring it up.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The test user (`TESTENV_USER`, as for `tests/env/testenv`).
pub fn user_name() -> String {
    std::env::var("TESTENV_USER").unwrap_or_else(|_| "agent".into())
}

pub struct TestEnv {
    script: PathBuf,
    pub home: PathBuf,
    pub uid: u32,
}

fn home_of(user: &str) -> PathBuf {
    let out = Command::new("getent")
        .args(["passwd", user])
        .output()
        .expect("getent");
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    PathBuf::from(
        line.trim()
            .split(':')
            .nth(5)
            .expect("home directory of the test user"),
    )
}

/// The stdout of a command that must have succeeded.
fn succeeded(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A spec for a busybox httpd container (local image, never pulled, init
/// for fast stops) serving `/health` with the output of `script`, on
/// 127.0.0.1:`port`; `extra` is added to its table.
pub fn web_spec(name: &str, port: u16, script: &str, extra: &str) -> String {
    format!(
        r#"[container.{name}]
image = "localhost/busybox:latest"
pull = "never"
init = true
ports = ["127.0.0.1:{port}:8080"]
command = ["sh", "-c", "mkdir -p /www && {script} > /www/health && exec httpd -f -p 8080 -h /www"]
{extra}
"#
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// End-to-end tests share one user manager: they run one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

impl TestEnv {
    pub fn get() -> &'static TestEnv {
        static ENV: OnceLock<TestEnv> = OnceLock::new();
        ENV.get_or_init(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/env/testenv");
            let out = Command::new("bash")
                .arg(&script)
                .arg("status")
                .output()
                .expect("run tests/env/testenv status");
            assert!(
                out.status.success() && text(&out.stdout).contains("up"),
                "the real systemd + Podman test environment is not up.\n\
                 Bring it up (as root) with: bash tests/env/testenv install && bash tests/env/testenv up\n\
                 testenv status said: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            let user = user_name();
            let id = Command::new("id").args(["-u", &user]).output().expect("id");
            let uid = text(&id.stdout).trim().parse().expect("uid of the test user");
            TestEnv {
                script,
                home: home_of(&user),
                uid,
            }
        })
    }

    /// Runs `args` as the test user inside the namespace.
    pub fn user(&self, args: &[&str]) -> Output {
        Command::new("bash")
            .arg(&self.script)
            .arg("user")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run testenv user")
    }

    /// Like `user`, but the command must succeed; returns stdout.
    pub fn user_ok(&self, args: &[&str]) -> String {
        succeeded(&format!("{args:?}"), self.user(args))
    }

    pub fn root(&self, args: &[&str]) -> Output {
        Command::new("bash")
            .arg(&self.script)
            .arg("root")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run testenv root")
    }

    /// `systemctl --user show -p PROP --value UNIT`.
    pub fn unit_prop(&self, unit: &str, prop: &str) -> String {
        self.user_ok(&["systemctl", "--user", "show", "-p", prop, "--value", unit])
            .trim()
            .to_string()
    }

    /// Writes a file the test user owns (the namespace shares /home with the host).
    pub fn write(&self, path: &Path, contents: &str) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
            self.chown_tree(dir);
        }
        std::fs::write(path, contents).unwrap();
        self.chown(path);
    }

    pub fn write_bytes(&self, path: &Path, contents: &[u8]) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
            self.chown_tree(dir);
        }
        std::fs::write(path, contents).unwrap();
        self.chown(path);
    }

    pub fn chown(&self, path: &Path) {
        nix::unistd::chown(
            path,
            Some(nix::unistd::Uid::from_raw(self.uid)),
            Some(nix::unistd::Gid::from_raw(self.uid)),
        )
        .or_else(|_| {
            // The user's primary group may have another id.
            nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(self.uid)), None)
        })
        .unwrap();
    }

    fn chown_tree(&self, dir: &Path) {
        let mut d = Some(dir);
        while let Some(p) = d {
            if !p.starts_with(&self.home) || p == self.home {
                break;
            }
            self.chown(p);
            d = p.parent();
        }
    }

    /// Polls `f` until it returns true or `limit` passes (for state that
    /// systemd/podman reach asynchronously, not for timing claims).
    pub fn wait_for(&self, what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("timed out after {limit:?} waiting for {what}");
    }

    /// Polls the count `f` until it has not changed for `quiet` (at most
    /// `limit`), and returns it: for "how many X happened" once activity has
    /// died down, instead of a fixed sleep that a slow machine outlasts.
    pub fn settled(
        &self,
        what: &str,
        quiet: Duration,
        limit: Duration,
        mut f: impl FnMut() -> usize,
    ) -> usize {
        let start = Instant::now();
        let (mut last, mut since) = (f(), Instant::now());
        while start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(250));
            let now = f();
            if now != last {
                (last, since) = (now, Instant::now());
            } else if since.elapsed() >= quiet {
                return now;
            }
        }
        panic!("{what} still changing after {limit:?} (last {last})");
    }
}

/// A test's own specs/output/state directories under the test user's home,
/// and the agent binary run as that user against them.
pub struct Workspace {
    pub env: &'static TestEnv,
    pub name: String,
    pub root: PathBuf,
    pub specs: PathBuf,
    pub output: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
}

impl Workspace {
    /// Fresh directories; whatever a previous run of this test left running is
    /// stopped first (by applying an empty specs dir with the agent itself).
    pub fn new(name: &str) -> Workspace {
        let env = TestEnv::get();
        let root = env.home.join("e2e").join(name);
        let ws = Workspace {
            env,
            name: name.to_string(),
            specs: root.join("specs"),
            output: env
                .home
                .join(format!(".config/containers/systemd/e2e-{name}")),
            state: root.join("state"),
            config: root.join("agent.toml"),
            root,
        };
        if ws.output.exists() {
            env.write(&ws.specs.join(".keep"), "");
            env.write(&ws.config, "");
            ws.stop_all();
        }
        let _ = std::fs::remove_dir_all(&ws.root);
        let _ = std::fs::remove_dir_all(&ws.output);
        env.write(&ws.config, "");
        env.write(&ws.specs.join(".keep"), "");
        ws
    }

    pub fn bin() -> &'static str {
        env!("CARGO_BIN_EXE_deploy-agent")
    }

    /// Stops this workspace's units with the agent itself (an empty specs
    /// directory), so no container outlives its test or holds its port.
    fn stop_all(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.specs) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().ends_with(".toml") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let _ = self.agent(&["apply", "--allow-empty"]);
    }

    /// Runs `deploy-agent ARGS` as the test user with this workspace's dirs.
    pub fn agent(&self, args: &[&str]) -> Output {
        let mut full: Vec<&str> = vec![Self::bin()];
        full.extend_from_slice(args);
        let specs = self.specs.to_string_lossy().into_owned();
        let output = self.output.to_string_lossy().into_owned();
        let state = self.state.to_string_lossy().into_owned();
        let config = self.config.to_string_lossy().into_owned();
        full.extend_from_slice(&[
            "--config",
            &config,
            "--specs",
            &specs,
            "--output-dir",
            &output,
            "--state-dir",
            &state,
        ]);
        self.env.user(&full)
    }

    pub fn agent_ok(&self, args: &[&str]) -> String {
        succeeded(&format!("deploy-agent {args:?}"), self.agent(args))
    }

    /// GET http://127.0.0.1:PORT/health from inside the namespace; the body, if it answered.
    pub fn curl(&self, port: u16) -> Option<String> {
        let url = format!("http://127.0.0.1:{port}/health");
        let out = self.env.user(&["curl", "-fsS", "--max-time", "2", &url]);
        out.status
            .success()
            .then(|| text(&out.stdout).trim().to_string())
    }

    pub fn spec(&self, file: &str, contents: &str) {
        self.env.write(&self.specs.join(file), contents);
    }

    pub fn remove_spec(&self, file: &str) {
        std::fs::remove_file(self.specs.join(file)).unwrap();
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        self.stop_all();
    }
}

pub fn stdout(o: &Output) -> String {
    text(&o.stdout)
}

pub fn stderr(o: &Output) -> String {
    text(&o.stderr)
}

/// `deploy-agent run` as a transient user service (`systemd-run --user`,
/// Type=notify: it returns once the agent said READY, i.e. after its first
/// apply). Its stderr is the journal, so the journal entries are the real ones.
pub struct Daemon<'w> {
    pub ws: &'w Workspace,
    pub unit: String,
    pub invocation: String,
}

impl Workspace {
    pub fn start_daemon(&self) -> Daemon<'_> {
        self.start_daemon_watchdog("20s")
    }

    /// [`start_daemon`](Self::start_daemon) with `WatchdogSec=` of `watchdog`.
    pub fn start_daemon_watchdog(&self, watchdog: &str) -> Daemon<'_> {
        let unit = format!("e2e-agent-{}", self.name);
        let watchdog = format!("WatchdogSec={watchdog}");
        let _ = self
            .env
            .user(&["systemctl", "--user", "stop", &format!("{unit}.service")]);
        let _ = self.env.user(&[
            "systemctl",
            "--user",
            "reset-failed",
            &format!("{unit}.service"),
        ]);
        let specs = self.specs.to_string_lossy().into_owned();
        let output = self.output.to_string_lossy().into_owned();
        let state = self.state.to_string_lossy().into_owned();
        let config = self.config.to_string_lossy().into_owned();
        let out = self.env.user(&[
            "systemd-run",
            "--user",
            "--unit",
            &unit,
            "--service-type=notify",
            "-p",
            &watchdog,
            "-p",
            "NotifyAccess=main",
            "--setenv=PODMAN_IGNORE_CGROUPSV1_WARNING=1",
            Self::bin(),
            "run",
            "--config",
            &config,
            "--specs",
            &specs,
            "--output-dir",
            &output,
            "--state-dir",
            &state,
        ]);
        assert!(
            out.status.success(),
            "systemd-run failed: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let unit = format!("{unit}.service");
        let invocation = self.env.unit_prop(&unit, "InvocationID");
        Daemon {
            ws: self,
            unit,
            invocation,
        }
    }
}

impl Daemon<'_> {
    /// Journal entries of the daemon as JSON objects, optionally filtered by FIELD=VALUE matches.
    pub fn journal(&self, matches: &[&str]) -> Vec<serde_json::Value> {
        // Only this run of the daemon: the journal keeps earlier runs' entries.
        let invocation = format!("_SYSTEMD_INVOCATION_ID={}", self.invocation);
        let mut args = vec![
            "journalctl",
            "--user",
            "-u",
            &self.unit,
            "-o",
            "json",
            "--no-pager",
            &invocation,
        ];
        args.extend_from_slice(matches);
        let out = self.ws.env.user(&args);
        stdout(&out)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn status_text(&self) -> String {
        self.ws.env.unit_prop(&self.unit, "StatusText")
    }
}

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        let _ = self
            .ws
            .env
            .user(&["systemctl", "--user", "stop", &self.unit]);
    }
}

/// `MESSAGE_ID`s systemd's manager logs for a unit's jobs.
pub const UNIT_STARTED: &str = "39f53479d3a045ac8e11786248231fbf";
pub const UNIT_STOPPED: &str = "9d1aaa27d60140bd96365438aad20286";

impl TestEnv {
    /// The user journal's current end, to read only what comes after.
    pub fn journal_cursor(&self) -> String {
        let out = self.user_ok(&[
            "journalctl",
            "--user",
            "-n",
            "0",
            "--show-cursor",
            "--no-pager",
        ]);
        out.lines()
            .find_map(|l| l.strip_prefix("-- cursor: "))
            .unwrap_or_else(|| panic!("no cursor in: {out}"))
            .trim()
            .to_string()
    }

    /// The user manager's entries about `unit` with `message_id` after `cursor`.
    pub fn unit_events(
        &self,
        cursor: &str,
        unit: &str,
        message_id: &str,
    ) -> Vec<serde_json::Value> {
        let unit_match = format!("USER_UNIT={unit}");
        let id = format!("MESSAGE_ID={message_id}");
        self.journal_after(cursor, &[&unit_match, &id])
    }

    /// The user journal's entries after `cursor` that have every
    /// FIELD=VALUE of `matches`, as JSON objects.
    pub fn journal_after(&self, cursor: &str, matches: &[&str]) -> Vec<serde_json::Value> {
        let after = format!("--after-cursor={cursor}");
        let mut args = vec!["journalctl", "--user", "-o", "json", "--no-pager", &after];
        args.extend_from_slice(matches);
        stdout(&self.user(&args))
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Starts `args` as the test user in the background; the caller waits on it.
    pub fn spawn_user(&self, args: &[&str]) -> std::process::Child {
        Command::new("bash")
            .arg(&self.script)
            .arg("user")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn testenv user")
    }
}

impl Workspace {
    /// `deploy-agent ARGS` with this workspace's dirs and extra environment
    /// (`VAR=value`, e.g. `DEPLOY_AGENT_FAILPOINT=after-write`).
    pub fn agent_env(&self, env: &[&str], args: &[&str]) -> Output {
        let mut full: Vec<String> = vec!["env".into()];
        full.extend(env.iter().map(|s| s.to_string()));
        full.push(Self::bin().into());
        full.extend(args.iter().map(|s| s.to_string()));
        for (flag, path) in [
            ("--config", &self.config),
            ("--specs", &self.specs),
            ("--output-dir", &self.output),
            ("--state-dir", &self.state),
        ] {
            full.push(flag.into());
            full.push(path.to_string_lossy().into_owned());
        }
        let argv: Vec<&str> = full.iter().map(String::as_str).collect();
        self.env.user(&argv)
    }
}
