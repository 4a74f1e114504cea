//! A private, real systemd for the D-Bus client tests: the host's
//! `/lib/systemd/systemd` booted as PID 1 of its own PID + mount + UTS
//! namespace, with its own tmpfs `/run` (its bus socket, its unit directory
//! `/run/systemd/system`) and a throwaway journal. The host's `/etc/systemd`
//! is never written to.
//!
//! The test process reaches the namespace's system bus from outside through
//! `/proc/PID/root/run/dbus/system_bus_socket` (EXTERNAL auth as root).
//!
//! No namespace outlives its test: `Drop` powers it off (SIGKILL after a
//! deadline); if the test process dies first, `setpriv --pdeathsig` kills
//! `unshare` with the spawning thread and `unshare --kill-child` kills the
//! namespace's PID 1, which ends every process in it.
//!
//! If systemd cannot be booted, the test fails and says why; it never skips.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Units that make no sense in the namespace (hardware, clock, the host's
/// timers and daemons); masked in its `/run` before boot. Names that do not
/// exist in a given systemd version are harmless.
const MASKED: &[&str] = &[
    "systemd-udevd.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
    "systemd-udev-load-credentials.service",
    "systemd-timesyncd.service",
    "systemd-sysctl.service",
    "systemd-pstore.service",
    "systemd-binfmt.service",
    "systemd-modules-load.service",
    "systemd-hwdb-update.service",
    "systemd-firstboot.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "man-db.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "netavark-dhcp-proxy.socket",
];

/// Runs on the host: puts itself into a new cgroup `$1` in every hierarchy,
/// then unshares. With its own cgroup namespace rooted there, the
/// namespace's systemd keeps its units under that cgroup: it never shares
/// (or removes) `/system.slice` & co. with the host or another namespace
/// (a shared tree made units fail with Result=resources when one namespace
/// removed a slice another was creating a unit in).
const OUTER: &str = r#"
set -e
cg=$1; shift
while read -r _ dir type _; do
  case $type in cgroup|cgroup2) ;; *) continue ;; esac
  mkdir -p "$dir/$cg"
  # A new v1 cpuset has no CPUs and no memory nodes: inherit the parent's.
  if [ -f "$dir/$cg/cpuset.cpus" ]; then
    cat "$dir/cpuset.cpus" >"$dir/$cg/cpuset.cpus"
    cat "$dir/cpuset.mems" >"$dir/$cg/cpuset.mems"
  fi
  echo $$ >"$dir/$cg/cgroup.procs"
done </proc/self/mounts
exec unshare --cgroup --pid --fork --kill-child=SIGKILL --mount --mount-proc --uts \
  --propagation private -- /bin/bash -c "$INNER" sysns "$@"
"#;

/// Runs in the new namespaces: its own /run, the cgroup hierarchies mounted
/// again (so that they show this cgroup namespace's root), a throwaway
/// journal, the masks; then becomes systemd. basic.target, not
/// multi-user.target: nothing the host enables for multi-user (databases,
/// sshd, getty) starts here, and the network namespace is the host's.
const INNER: &str = r#"
set -e
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p /run/systemd/system
grep -E ' cgroup2? ' /proc/self/mounts >/run/sysns-cgroup-mounts
while read -r _ dir type opts _; do
  umount "$dir"
  mount -t "$type" -o "$opts" "$type" "$dir"
done </run/sysns-cgroup-mounts
rm /run/sysns-cgroup-mounts
name=$1; shift
for u in "$@"; do ln -s /dev/null "/run/systemd/system/$u"; done
if [ -d /var/log/journal ]; then mount -t tmpfs -o mode=2755 tmpfs /var/log/journal; fi
hostname "$name"
exec /lib/systemd/systemd --system --unit=basic.target --show-status=no
"#;

const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(30);

pub struct SystemNs {
    name: String,
    /// The namespace's cgroup, directly under the root of every hierarchy.
    cgroup: String,
    unshare: Child,
    pid: u32,
    log: PathBuf,
    _dir: tempfile::TempDir,
    /// How long the boot took, to `running` (or `degraded`).
    pub boot_time: Duration,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

impl SystemNs {
    /// Boots a namespace named `name` (its hostname) and waits until its
    /// systemd says `running` or `degraded`. Panics with the reason otherwise.
    pub fn boot(name: &str) -> SystemNs {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the systemd D-Bus tests boot a real systemd in a PID + mount namespace and must run as root"
        );
        assert!(
            Path::new("/lib/systemd/systemd").exists(),
            "/lib/systemd/systemd is missing: install systemd to run the systemd D-Bus tests"
        );
        remove_stale();
        let dir = tempfile::Builder::new()
            .prefix(&format!("deploy-agent-sysns-{}-", std::process::id()))
            .tempdir_in("/var/tmp")
            .expect("temp dir for the namespace's log");
        let log = dir.path().join("boot.log");
        let out = std::fs::File::create(&log).expect("boot log");
        let started = Instant::now();
        let cgroup = format!("deploy-agent-test-{name}-{}", std::process::id());
        let unshare = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--"])
            .args(["/bin/bash", "-c", OUTER, "sysns", &cgroup, name])
            .args(MASKED)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("INNER", INNER)
            // systemd then skips the units that only make sense on hardware.
            .env("container", "deploy-agent-test")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("boot log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run setpriv/unshare to boot systemd in a namespace: {e}")
            });
        let mut ns = SystemNs {
            name: name.to_string(),
            cgroup,
            pid: 0,
            unshare,
            log,
            _dir: dir,
            boot_time: Duration::ZERO,
        };
        ns.pid = ns.find_pid1(started);
        ns.wait_running(started);
        ns.boot_time = started.elapsed();
        ns
    }

    /// The host PID of the namespace's PID 1, once it is systemd.
    fn find_pid1(&mut self, started: Instant) -> u32 {
        let upid = self.unshare.id();
        loop {
            if let Ok(Some(status)) = self.unshare.try_wait() {
                panic!(
                    "the namespace for systemd ended at once ({status}):\n{}",
                    self.boot_log()
                );
            }
            let children = std::fs::read_to_string(format!("/proc/{upid}/task/{upid}/children"))
                .unwrap_or_default();
            if let Some(pid) = children
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<u32>().ok())
            {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() == "systemd" {
                    return pid;
                }
            }
            assert!(
                started.elapsed() < BOOT_TIMEOUT,
                "no systemd appeared in the namespace within {BOOT_TIMEOUT:?}:\n{}",
                self.boot_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_running(&mut self, started: Instant) {
        let mut state = String::new();
        while started.elapsed() < BOOT_TIMEOUT {
            if let Ok(Some(status)) = self.unshare.try_wait() {
                panic!(
                    "systemd in the namespace exited while booting ({status}):\n{}",
                    self.boot_log()
                );
            }
            state = text(&self.systemctl(&["is-system-running"]).stdout);
            match state.as_str() {
                "running" => return,
                "degraded" => {
                    let failed = self.systemctl(&["--failed", "--no-legend", "--plain"]);
                    eprintln!(
                        "sysns {}: systemd is degraded; failed units:\n{}",
                        self.name,
                        text(&failed.stdout)
                    );
                    return;
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let jobs = self.systemctl(&["list-jobs", "--no-pager"]);
        panic!(
            "systemd in the namespace is still '{state}' after {BOOT_TIMEOUT:?}; jobs:\n{}\nboot log:\n{}",
            text(&jobs.stdout),
            self.boot_log()
        );
    }

    fn boot_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Host PID of the namespace's systemd.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The namespace's root as the host sees it.
    pub fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid))
    }

    /// The namespace's system bus, reachable from the host.
    pub fn bus_address(&self) -> String {
        format!(
            "unix:path={}/run/dbus/system_bus_socket",
            self.root().display()
        )
    }

    /// The namespace's `/run/systemd/system`, from the host.
    pub fn unit_dir(&self) -> PathBuf {
        self.root().join("run/systemd/system")
    }

    /// Writes a unit file into the namespace's `/run/systemd/system`.
    pub fn write_unit(&self, name: &str, text: &str) {
        let path = self.unit_dir().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Runs a command inside the namespace (all its namespaces, as root).
    pub fn run(&self, cmd: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.pid.to_string(), "-a", "--"])
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    /// `systemctl ARGS` inside the namespace: a witness independent of the
    /// code under test.
    pub fn systemctl(&self, args: &[&str]) -> Output {
        let mut cmd = vec!["systemctl"];
        cmd.extend_from_slice(args);
        self.run(&cmd)
    }

    /// `systemctl show -p PROP --value UNIT` (UNIT "" = the manager).
    pub fn show(&self, unit: &str, prop: &str) -> String {
        let mut args = vec!["show", "-p", prop, "--value"];
        if !unit.is_empty() {
            args.push(unit);
        }
        let o = self.systemctl(&args);
        assert!(
            o.status.success(),
            "systemctl show {prop} {unit}: {}",
            text(&o.stderr)
        );
        text(&o.stdout)
    }
}

impl Drop for SystemNs {
    fn drop(&mut self) {
        // Power off: systemd stops its units and exits; reboot() in a PID
        // namespace ends its init, then unshare exits.
        if self.pid != 0 {
            let _ = Command::new("nsenter")
                .args(["-t", &self.pid.to_string(), "-a", "--"])
                .args(["systemctl", "poweroff", "--no-block"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + POWEROFF_TIMEOUT;
        let mut ended = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.unshare.try_wait() {
                ended = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !ended {
            eprintln!(
                "sysns {}: no poweroff within {POWEROFF_TIMEOUT:?}; killing the namespace",
                self.name
            );
            // unshare --kill-child passes the SIGKILL on to the namespace's init.
            let _ = self.unshare.kill();
            let _ = self.unshare.wait();
        }
        self.remove_cgroups();
    }
}

/// The mount points of the host's cgroup hierarchies (v1 and v2).
fn cgroup_mounts() -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && (f[2] == "cgroup" || f[2] == "cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .collect()
}

/// Empty cgroups and boot logs left by test processes that were killed
/// before their namespaces' `Drop` ran (the namespaces die with them).
fn remove_stale() {
    if let Ok(entries) = std::fs::read_dir("/var/tmp") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("deploy-agent-sysns-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    for mount in cgroup_mounts() {
        let Ok(entries) = std::fs::read_dir(&mount) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix("deploy-agent-test-")
                .and_then(|rest| rest.rsplit('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = remove_tree(&e.path());
            }
        }
    }
}

impl SystemNs {
    /// Removes the namespace's (by now empty) cgroup subtree from every
    /// hierarchy; processes of a killed namespace may take a moment to go.
    fn remove_cgroups(&self) {
        let roots: Vec<PathBuf> = cgroup_mounts()
            .into_iter()
            .map(|m| m.join(&self.cgroup))
            .filter(|p| p.exists())
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut left: Vec<PathBuf> = roots;
        while !left.is_empty() {
            left.retain(|root| remove_tree(root).is_err());
            if Instant::now() > deadline {
                eprintln!("sysns {}: cannot remove cgroups {left:?}", self.name);
                return;
            }
            if !left.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// rmdir a cgroup and the cgroups below it, deepest first (a cgroup's
/// files go with its directory).
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}
