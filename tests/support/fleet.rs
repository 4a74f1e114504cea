//! Hosts for the multi-host test (`tests/e2e_fleet.rs`): each one a real
//! systemd booted as PID 1 of its own PID, mount, UTS, IPC, network and
//! cgroup namespaces, with a user manager for the user `fleet` and rootless
//! Podman in that user's own storage.
//!
//! What each host has to itself (nothing of it is shared with the machine,
//! the shared test environment of `tests/env/testenv` or another host):
//! - a cgroup subtree `deploy-agent-fleet-NAME-PID` in every hierarchy,
//!   which its cgroup namespace shows as the root (its units never share
//!   `/system.slice` & co. with anyone);
//! - a tmpfs on `/run` (its buses, `/run/user/UID`, Podman's run root), on
//!   `/tmp` and on `/var/log/journal`;
//! - `/var/lib/systemd/linger`, the user's home (Podman storage, agent
//!   state, user units) and `/srv` (agent.toml, specs, secrets), each bound
//!   from its own state directory under `/var/tmp`;
//! - a network namespace with only `lo` (services listen on the same port on
//!   every host), and its hostname (`/etc/hostname` bound from its state).
//!
//! Never started in it: systemd-tmpfiles (setup, clean timer, /dev), which
//! would act on the machine's shared paths (`/var/tmp`, `/dev`,
//! `/var/lib/containers`), the units that write the machine's `/etc` and
//! `/var` (sysusers, ldconfig, utmp, random seed, ...) and those that act
//! on hardware or the clock.
//! The host's systemd reaches `basic.target`; logind starts on demand (the
//! role's `loginctl enable-linger`).
//!
//! Shared with the machine, read-only in practice: `/usr`, `/etc` (the user
//! `fleet` and its subordinate ids are added once to `/etc/passwd`,
//! `/etc/subuid` and `/etc/subgid`), the deploy-agent binary.
//!
//! No host outlives its test: `Drop` powers it off and removes its cgroups;
//! if the test process dies, `setpriv --pdeathsig` and `unshare
//! --kill-child` end the namespace.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "fleet";
/// Subordinate ids of the user `fleet` unless useradd gave it some: clear
/// of testenv's user (200000); checked not to overlap anyone's.
const SUBIDS: &str = "fleet:400000:65536";
pub const IMAGE: &str = "localhost/busybox:latest";

const MASKED_SYSTEM: &[&str] = &[
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
    "systemd-tmpfiles-setup.service",
    "systemd-tmpfiles-setup-dev.service",
    "systemd-tmpfiles-setup-dev-early.service",
    "systemd-tmpfiles-clean.timer",
    "systemd-tmpfiles-clean.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "man-db.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "netavark-dhcp-proxy.socket",
    "getty.target",
    "console-getty.service",
    // They write the machine's /etc and /var (shared with every host).
    "ldconfig.service",
    "systemd-sysusers.service",
    "systemd-update-done.service",
    "systemd-journal-catalog-update.service",
    "systemd-random-seed.service",
    "systemd-boot-random-seed.service",
    "systemd-update-utmp.service",
    "systemd-update-utmp-runlevel.service",
    "systemd-machine-id-commit.service",
    "systemd-remount-fs.service",
];
/// Waits 90 s for a network-online.target that never comes here.
const MASKED_USER: &[&str] = &["podman-user-wait-network-online.service"];

/// On the machine: a new cgroup in every hierarchy for this shell, then the
/// namespaces.
const OUTER: &str = r#"
set -e
cg=$1
while read -r _ dir type _; do
  case $type in cgroup|cgroup2) ;; *) continue ;; esac
  mkdir -p "$dir/$cg"
  if [ -f "$dir/$cg/cpuset.cpus" ]; then
    cat "$dir/cpuset.cpus" >"$dir/$cg/cpuset.cpus"
    cat "$dir/cpuset.mems" >"$dir/$cg/cpuset.mems"
  fi
  echo $$ >"$dir/$cg/cgroup.procs"
done </proc/self/mounts
shift
exec unshare --cgroup --pid --fork --kill-child=SIGKILL --mount --mount-proc --uts --ipc --net \
  --propagation private -- /bin/bash -c "$INNER" fleet-host "$@"
"#;

/// In the namespaces: its own mounts, then systemd.
const INNER: &str = r#"
set -e
state=$1 name=$2 home=$3
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
cp -a "$state/run-seed/." /run/
grep -E ' cgroup2? ' /proc/self/mounts >/run/fleet-cgroup-mounts
while read -r _ dir type opts _; do
  umount "$dir"
  mount -t "$type" -o "$opts" "$type" "$dir"
done </run/fleet-cgroup-mounts
rm /run/fleet-cgroup-mounts
# A checkout under the machine's /tmp (a CI clone in mktemp -d) stays
# reachable: its binaries' directory is bound to the same path.
share=${4:-}
if [ -n "$share" ]; then mkdir -p /run/fleet-host-tmp && mount --bind /tmp /run/fleet-host-tmp; fi
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
if [ -n "$share" ]; then
  mkdir -p "$share" && mount --bind "/run/fleet-host-tmp/${share#/tmp/}" "$share"
  umount /run/fleet-host-tmp
fi
if [ -d /var/log/journal ]; then mount -t tmpfs -o mode=2755 tmpfs /var/log/journal; fi
mount --bind "$state/linger" /var/lib/systemd/linger
mount --bind "$state/home" "$home"
mount --bind "$state/srv" /srv
# systemd sets the hostname from /etc/hostname at boot.
echo "$name" >"$state/hostname"
mount --bind "$state/hostname" /etc/hostname
ip link set lo up
hostname "$name"
exec /lib/systemd/systemd --system --unit=basic.target --show-status=no
"#;

/// The cgroup v1 delegation of tests/env/testenv (see its README,
/// "cgroups"): rootless Podman's split cgroups need the user's subtree in
/// every v1 hierarchy. Runs as root before the user manager starts.
const DELEGATE_HOOK: &str = r#"#!/bin/sh
set -eu
uid=$1
gid=$(getent passwd "$uid" | cut -d: -f4)
rel=user.slice/user-$uid.slice/user@$uid.service
awk '$3 == "cgroup" { print $2 }' /proc/self/mounts | while read -r mnt; do
    d=$mnt
    for part in user.slice "user-$uid.slice" "user@$uid.service"; do
        d=$d/$part
        [ -d "$d" ] || mkdir "$d"
        if [ -f "$d/cpuset.cpus" ] && [ -z "$(cat "$d/cpuset.cpus")" ]; then
            cat "$(dirname "$d")/cpuset.cpus" >"$d/cpuset.cpus"
            cat "$(dirname "$d")/cpuset.mems" >"$d/cpuset.mems"
        fi
    done
    chown -R "$uid:$gid" "$mnt/$rel"
done
"#;

const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Host {
    pub name: String,
    cgroup: String,
    unshare: Child,
    /// Host PID of the namespace's systemd.
    pub pid: u32,
    pub uid: u32,
    gid: u32,
    /// The user's home as every host sees it (a different directory each).
    pub home: PathBuf,
    state: tempfile::TempDir,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

fn must(what: &str, o: Output) -> String {
    assert!(
        o.status.success(),
        "{what}: {}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// The user `fleet` and its subordinate ids, made once on this machine.
fn ensure_user() -> (u32, u32, PathBuf) {
    if nix::unistd::User::from_name(USER).ok().flatten().is_none() {
        must(
            "useradd fleet",
            Command::new("useradd")
                .args([
                    "--create-home",
                    "--shell",
                    "/bin/bash",
                    "--user-group",
                    USER,
                ])
                .output()
                .expect("useradd"),
        );
    }
    for f in ["/etc/subuid", "/etc/subgid"] {
        let mut t = std::fs::read_to_string(f).unwrap_or_default();
        // useradd may have given it a range already; else the fixed one.
        if !t.lines().any(|l| l.starts_with("fleet:")) {
            if !t.is_empty() && !t.ends_with('\n') {
                t.push('\n');
            }
            t.push_str(SUBIDS);
            t.push('\n');
            std::fs::write(f, &t).unwrap();
        }
        let range = |l: &str| -> Option<(String, u64, u64)> {
            let mut p = l.split(':');
            let u = p.next()?;
            let s: u64 = p.next()?.parse().ok()?;
            let n: u64 = p.next()?.parse().ok()?;
            Some((u.to_string(), s, s + n))
        };
        let ranges: Vec<_> = t.lines().filter_map(range).collect();
        for (u, s, e) in ranges.iter().filter(|r| r.0 == USER) {
            for (o, os, oe) in ranges.iter().filter(|r| r.0 != USER) {
                assert!(e <= os || oe <= s, "{f}: {u}'s ids overlap {o}'s");
            }
        }
    }
    let u = nix::unistd::User::from_name(USER).unwrap().unwrap();
    std::fs::create_dir_all(&u.dir).unwrap();
    (u.uid.as_raw(), u.gid.as_raw(), u.dir)
}

impl Host {
    /// Boots host `name` whose user unit runs `bin`, waits until its
    /// systemd is up, and imports the image into the user's storage.
    pub fn boot(name: &str, bin: &Path) -> Host {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the multi-host test boots systemd in namespaces and must run as root"
        );
        let (uid, gid, home) = ensure_user();
        let state = tempfile::Builder::new()
            .prefix(&format!("deploy-agent-fleet-{name}-"))
            .tempdir_in("/var/tmp")
            .unwrap();
        seed(state.path(), uid, gid, bin);
        let cgroup = format!("deploy-agent-fleet-{name}-{}", std::process::id());
        let log = std::fs::File::create(state.path().join("boot.log")).unwrap();
        let unshare = Command::new("setpriv")
            .args([
                "--pdeathsig",
                "KILL",
                "--",
                "/bin/bash",
                "-c",
                OUTER,
                "fleet",
            ])
            .arg(&cgroup)
            .arg(state.path())
            .arg(name)
            .arg(&home)
            .arg(tmp_share(bin))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("INNER", INNER)
            .env("container", "deploy-agent-fleet")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("setpriv/unshare");
        let mut host = Host {
            name: name.into(),
            cgroup,
            unshare,
            pid: 0,
            uid,
            gid,
            home,
            state,
        };
        let started = Instant::now();
        host.pid = host.find_pid1(started);
        host.wait_running(started);
        // Rootless Podman needs the user's manager (its /run/user/UID) for
        // the import; it goes again after, so that the role is the one that
        // enables lingering.
        host.linger(true);
        host.import_image();
        host.linger(false);
        host
    }

    fn boot_log(&self) -> String {
        std::fs::read_to_string(self.state.path().join("boot.log")).unwrap_or_default()
    }

    fn find_pid1(&mut self, started: Instant) -> u32 {
        let upid = self.unshare.id();
        loop {
            if let Ok(Some(s)) = self.unshare.try_wait() {
                panic!(
                    "{}: the namespace ended at once ({s}):\n{}",
                    self.name,
                    self.boot_log()
                );
            }
            // setpriv -> bash (exec'd unshare) -> systemd
            let children = std::fs::read_to_string(format!("/proc/{upid}/task/{upid}/children"))
                .unwrap_or_default();
            if let Some(pid) = children
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
            {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() == "systemd" {
                    return pid;
                }
            }
            assert!(
                started.elapsed() < BOOT_TIMEOUT,
                "{}: no systemd within {BOOT_TIMEOUT:?}:\n{}",
                self.name,
                self.boot_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_running(&mut self, started: Instant) {
        let mut state = String::new();
        while started.elapsed() < BOOT_TIMEOUT {
            state = text(&self.root(&["systemctl", "is-system-running"]).stdout);
            if state == "running" || state == "degraded" {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{}: systemd is still '{state}' after {BOOT_TIMEOUT:?}:\n{}",
            self.name,
            self.boot_log()
        );
    }

    /// Lingering on or off for the user, and waits until its manager (with
    /// its bus) is up or gone.
    fn linger(&self, on: bool) {
        let verb = if on {
            "enable-linger"
        } else {
            "disable-linger"
        };
        must(verb, self.root(&["loginctl", verb, USER]));
        let unit = format!("user@{}.service", self.uid);
        let bus = format!("/run/user/{}/bus", self.uid);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let active = self
                .root(&["systemctl", "is-active", &unit])
                .status
                .success();
            let bus_up = self.root(&["test", "-S", &bus]).status.success();
            if on == (active && bus_up) && (on || !active) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {unit} still {} after 60 s",
                self.name,
                if on { "not up" } else { "up" }
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `cmd` as root in the host.
    pub fn root(&self, cmd: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.pid.to_string(), "-a", "--"])
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    /// Runs `cmd` as the user `fleet` in the host, on its manager and bus.
    pub fn user(&self, cmd: &[&str]) -> Output {
        let home = format!("HOME={}", self.home.display());
        let run = format!("XDG_RUNTIME_DIR=/run/user/{}", self.uid);
        let bus = format!(
            "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{}/bus",
            self.uid
        );
        Command::new("nsenter")
            .args(["-t", &self.pid.to_string(), "-a", "--", "setpriv"])
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .args(["--init-groups", "--", "env", "-i", &home, &run, &bus])
            .args([
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "PODMAN_IGNORE_CGROUPSV1_WARNING=1",
                "LANG=C.UTF-8",
            ])
            .args(cmd)
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    /// `systemctl --user show -p PROP --value UNIT` for the user.
    pub fn unit_prop(&self, unit: &str, prop: &str) -> String {
        must(
            "systemctl --user show",
            self.user(&["systemctl", "--user", "show", "-p", prop, "--value", unit]),
        )
    }

    /// What the host serves on `port` at `path` (its own loopback), or
    /// why not (curl's error and the unit's state).
    pub fn curl(&self, port: u16, path: &str) -> Result<String, String> {
        let url = format!("http://127.0.0.1:{port}/{path}");
        let o = self.root(&["curl", "-fsS", "--max-time", "2", &url]);
        if o.status.success() {
            return Ok(text(&o.stdout));
        }
        let unit = self.user(&["systemctl", "--user", "status", "--no-pager", "web.service"]);
        Err(format!(
            "{}: {url}: {}\n{}",
            self.name,
            text(&o.stderr),
            text(&unit.stdout)
        ))
    }

    /// The image, from Debian's static busybox, in this host's storage.
    fn import_image(&self) {
        const BUILD: &str = r#"
set -eu
work=$(mktemp -d /tmp/fleet-image.XXXXXX); mkdir -p "$work/rootfs"; cd "$work/rootfs"
mkdir -p bin etc tmp var/www root; chmod 1777 tmp
cp /bin/busybox bin/busybox
for a in $(bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >etc/passwd
printf 'root:x:0:\nnogroup:x:65534:\n' >etc/group
tar --numeric-owner --owner=0 --group=0 -cf ../rootfs.tar .
podman import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' ../rootfs.tar "$1" >/dev/null
rm -rf "$work"
"#;
        must(
            &format!("{}: podman import", self.name),
            self.user(&["sh", "-c", BUILD, "build", IMAGE]),
        );
    }
}

/// The host's state directory: its `/run` seed (masks, the user unit
/// running `bin`, the delegation drop-in), linger, home and `/srv`.
fn seed(state: &Path, uid: u32, gid: u32, bin: &Path) {
    let seed = state.join("run-seed");
    let system = seed.join("systemd/system");
    let user = seed.join("systemd/user");
    std::fs::create_dir_all(system.join("user@.service.d")).unwrap();
    std::fs::create_dir_all(&user).unwrap();
    for u in MASKED_SYSTEM {
        std::os::unix::fs::symlink("/dev/null", system.join(u)).unwrap();
    }
    for u in MASKED_USER {
        std::os::unix::fs::symlink("/dev/null", user.join(u)).unwrap();
    }
    std::fs::create_dir_all(seed.join("environment.d")).unwrap();
    std::fs::write(
        seed.join("environment.d/50-fleet.conf"),
        "PODMAN_IGNORE_CGROUPSV1_WARNING=1\n",
    )
    .unwrap();
    let hook = state.join("delegate-v1");
    std::fs::write(&hook, DELEGATE_HOOK).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        system.join("user@.service.d/50-fleet-delegate-v1.conf"),
        format!(
            "[Service]\nDelegate=yes\nCPUAccounting=yes\nCPUWeight=100\n\
             DeviceAllow=char-* rwm\nDeviceAllow=block-* rwm\nIOAccounting=yes\n\
             ExecStartPre=+{} %i\n",
            hook.display()
        ),
    )
    .unwrap();
    // The packaged user unit, running the binary under test.
    let unit = include_str!("../../units/deploy-agent.service").replace(
        "ExecStart=/usr/bin/deploy-agent run",
        &format!("ExecStart={} run", bin.display()),
    );
    assert!(
        unit.contains(&bin.display().to_string()),
        "ExecStart not replaced"
    );
    std::fs::write(user.join("deploy-agent.service"), unit).unwrap();
    for d in ["linger", "home", "srv"] {
        std::fs::create_dir_all(state.join(d)).unwrap();
    }
    nix::unistd::chown(
        &state.join("home"),
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .unwrap();
    std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.pid != 0 {
            let _ = self.root(&["systemctl", "poweroff", "--no-block"]);
        }
        let deadline = Instant::now() + POWEROFF_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.unshare.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !matches!(self.unshare.try_wait(), Ok(Some(_))) {
            eprintln!(
                "{}: no poweroff within {POWEROFF_TIMEOUT:?}; killing it",
                self.name
            );
            let _ = self.unshare.kill();
            let _ = self.unshare.wait();
        }
        self.remove_cgroups();
    }
}

impl Host {
    /// Removes this host's (by now empty) cgroup subtree everywhere.
    fn remove_cgroups(&self) {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut left: Vec<PathBuf> = mounts
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() > 2 && (f[2] == "cgroup" || f[2] == "cgroup2"))
                    .then(|| Path::new(f[1]).join(&self.cgroup))
            })
            .filter(|p| p.exists())
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !left.is_empty() && Instant::now() < deadline {
            left.retain(|root| remove_tree(root).is_err());
            std::thread::sleep(Duration::from_millis(100));
        }
        if !left.is_empty() {
            eprintln!("{}: cannot remove cgroups {left:?}", self.name);
        }
    }
}

/// rmdir a cgroup and those below it, deepest first.
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

/// `bin`'s directory, when it is under `/tmp` (hidden by each host's own
/// `/tmp` otherwise); an empty argument when not.
fn tmp_share(bin: &Path) -> String {
    let dir = bin
        .canonicalize()
        .ok()
        .and_then(|b| b.parent().map(Path::to_path_buf));
    match dir {
        Some(d) if d.starts_with("/tmp/") => d.display().to_string(),
        _ => String::new(),
    }
}
