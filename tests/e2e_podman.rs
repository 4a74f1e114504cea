//! End to end with real parts: the agent, run as an unprivileged user,
//! drives that user's real systemd manager over D-Bus and rootless Podman
//! runs the containers (environment: `tests/env/testenv up`).

mod support;

use std::time::Duration;

use support::{serial, stderr, web_spec, Workspace};

fn web(name: &str, port: u16, body: &str, extra: &str) -> String {
    web_spec(name, port, &format!("echo {body}"), extra)
}

fn main_pid(ws: &Workspace, unit: &str) -> String {
    ws.env.unit_prop(unit, "MainPID")
}

/// The user manager's generator output is made anew on every daemon-reload:
/// its inode tells whether a reload happened, without trusting our own code.
fn generator_stamp(ws: &Workspace) -> String {
    ws.env
        .user_ok(&[
            "sh",
            "-c",
            "stat -c %i:%Z \"$XDG_RUNTIME_DIR/systemd/generator\"",
        ])
        .trim()
        .to_string()
}

#[test]
fn apply_runs_a_container_on_its_network_and_a_second_apply_does_nothing() {
    let _g = serial();
    let ws = Workspace::new("basic");
    ws.spec(
        "10-web.toml",
        &format!(
            "[network.e2e_basic_net]\nsubnet = \"10.89.201.0/24\"\n\n{}",
            web(
                "e2e-basic",
                18181,
                "basic-ok",
                "networks = [\"e2e_basic_net\"]"
            )
        ),
    );
    let out = ws.agent_ok(&["apply"]);
    assert!(out.contains("start   e2e-basic.service"), "{out}");
    assert_eq!(
        ws.env.unit_prop("e2e-basic.service", "ActiveState"),
        "active"
    );
    assert_eq!(
        ws.env
            .unit_prop("e2e_basic_net-network.service", "ActiveState"),
        "active"
    );
    ws.env
        .wait_for("httpd to answer", Duration::from_secs(20), || {
            ws.curl(18181).is_some()
        });
    assert_eq!(ws.curl(18181).as_deref(), Some("basic-ok"));
    let nets = ws.env.user_ok(&[
        "podman",
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "e2e-basic",
    ]);
    assert!(
        nets.contains("e2e_basic_net"),
        "container is on the declared network: {nets}"
    );

    let stamp = generator_stamp(&ws);
    let pid = main_pid(&ws, "e2e-basic.service");
    let out = ws.agent_ok(&["apply"]);
    assert_eq!(out.trim(), "No changes.");
    assert_eq!(
        generator_stamp(&ws),
        stamp,
        "a no-op apply must not daemon-reload"
    );
    assert_eq!(
        main_pid(&ws, "e2e-basic.service"),
        pid,
        "a no-op apply must not restart"
    );
}

#[test]
fn removing_a_spec_stops_its_unit_removes_its_files_and_nothing_else() {
    let _g = serial();
    let ws = Workspace::new("remove");
    ws.spec("10-a.toml", &web("e2e-rm-a", 18182, "a", ""));
    ws.spec("20-b.toml", &web("e2e-rm-b", 18183, "b", ""));
    ws.agent_ok(&["apply"]);
    let foreign = ws.output.join("operator-notes.container");
    ws.env.write(
        &foreign,
        "[Container]\nImage=localhost/busybox:latest\nExec=true\n",
    );
    let b_pid = main_pid(&ws, "e2e-rm-b.service");

    ws.remove_spec("10-a.toml");
    let out = ws.agent_ok(&["apply"]);
    assert!(out.contains("- e2e-rm-a.container (removed)"), "{out}");
    assert!(out.contains("stop    e2e-rm-a.service"), "{out}");
    assert_eq!(
        ws.env.unit_prop("e2e-rm-a.service", "ActiveState"),
        "inactive"
    );
    assert!(!ws.output.join("e2e-rm-a.container").exists());
    assert_eq!(
        std::fs::read_to_string(&foreign).unwrap(),
        "[Container]\nImage=localhost/busybox:latest\nExec=true\n",
        "an unmarked file in the output dir is never touched"
    );
    assert_eq!(
        main_pid(&ws, "e2e-rm-b.service"),
        b_pid,
        "the other unit kept running"
    );
    std::fs::remove_file(&foreign).unwrap();
}

#[test]
fn requires_orders_the_start() {
    let _g = serial();
    let ws = Workspace::new("order");
    ws.spec("10-db.toml", &web("e2e-ord-db", 18184, "db", ""));
    ws.spec(
        "20-app.toml",
        &web("e2e-ord-app", 18185, "app", "requires = [\"e2e-ord-db\"]"),
    );
    ws.agent_ok(&["apply"]);
    let after = ws.env.unit_prop("e2e-ord-app.service", "After");
    assert!(after.contains("e2e-ord-db.service"), "{after}");
    let requires = ws.env.unit_prop("e2e-ord-app.service", "Requires");
    assert!(requires.contains("e2e-ord-db.service"), "{requires}");
    let db: u64 = ws
        .env
        .unit_prop("e2e-ord-db.service", "ActiveEnterTimestampMonotonic")
        .parse()
        .unwrap();
    let app: u64 = ws
        .env
        .unit_prop("e2e-ord-app.service", "ExecMainStartTimestampMonotonic")
        .parse()
        .unwrap();
    assert!(
        db > 0 && app > db,
        "db active at {db}, app started at {app}"
    );
}

#[test]
fn memory_and_cpu_limits_are_in_force() {
    let _g = serial();
    let ws = Workspace::new("limits");
    ws.spec(
        "10-lim.toml",
        &format!(
            "{}\n[container.e2e-lim.resources]\nmemory = \"64M\"\nmemory_reservation = \"32M\"\ncpus = 0.5\npids = 64\n",
            web("e2e-lim", 18186, "lim", "")
        ),
    );
    ws.agent_ok(&["apply"]);
    assert_eq!(ws.env.unit_prop("e2e-lim.service", "MemoryMax"), "67108864");
    assert_eq!(ws.env.unit_prop("e2e-lim.service", "MemoryLow"), "33554432");
    assert_eq!(
        ws.env.unit_prop("e2e-lim.service", "CPUQuotaPerSecUSec"),
        "500ms"
    );
    // What the kernel enforces on this host (cgroup v1 hybrid, the v1
    // controllers delegated to the user by tests/env/testenv): the memory
    // and cpu controllers of the service's cgroup carry the limits.
    let cg = ws.env.unit_prop("e2e-lim.service", "ControlGroup");
    let mem = std::fs::read_to_string(format!("/sys/fs/cgroup/memory{cg}/memory.limit_in_bytes"));
    let quota = std::fs::read_to_string(format!("/sys/fs/cgroup/cpu{cg}/cpu.cfs_quota_us"));
    assert_eq!(
        mem.as_deref().ok().map(str::trim),
        Some("67108864"),
        "memory cgroup of {cg}"
    );
    assert_eq!(
        quota.as_deref().ok().map(str::trim),
        Some("50000"),
        "cpu cgroup of {cg}"
    );
    // MemoryLow= has no cgroup v1 equivalent: systemd shows it, the kernel cannot enforce it here.

    // The kernel enforces them on the container's processes: they sit below
    // the unit's cgroup, an allocation past 64M is OOM-killed, and a busy
    // loop is throttled.
    let pid = ws
        .env
        .user_ok(&["podman", "inspect", "-f", "{{.State.Pid}}", "e2e-lim"]);
    // (In the environment's PID namespace: read there.)
    let cgroups = ws
        .env
        .root(&["cat", &format!("/proc/{}/cgroup", pid.trim())]);
    assert!(cgroups.status.success(), "{cgroups:?}");
    let cgroups = String::from_utf8_lossy(&cgroups.stdout).into_owned();
    let container_cg = |controller: &str| {
        cgroups
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(3, ':').skip(1);
                f.next().zip(f.next())
            })
            .find(|(cs, _)| cs.split(',').any(|c| c == controller))
            .map(|(_, path)| path.to_string())
            .unwrap_or_else(|| panic!("no {controller} cgroup in {cgroups}"))
    };
    for c in ["memory", "cpu"] {
        assert!(
            container_cg(c).starts_with(&format!("{cg}/")),
            "{c} cgroup of the container is {}, not below {cg}",
            container_cg(c)
        );
    }
    let read =
        |path: String| std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let field = |text: &str, key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {text}"))
    };
    let out = ws
        .env
        .user(&["podman", "exec", "e2e-lim", "tail", "/dev/zero"]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "tail /dev/zero past 64M: {}",
        stderr(&out)
    );
    let oom = read(format!(
        "/sys/fs/cgroup/memory{}/memory.oom_control",
        container_cg("memory")
    ));
    assert!(field(&oom, "oom_kill ") >= 1, "no OOM kill counted: {oom}");
    let failcnt = read(format!("/sys/fs/cgroup/memory{cg}/memory.failcnt"));
    assert!(
        failcnt.trim().parse::<u64>().unwrap() >= 1,
        "the unit's limit was never hit"
    );

    let stat = || read(format!("/sys/fs/cgroup/cpu{cg}/cpu.stat"));
    let before = field(&stat(), "nr_throttled ");
    let _ = ws.env.user(&[
        "podman",
        "exec",
        "e2e-lim",
        "timeout",
        "2",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    let after = field(&stat(), "nr_throttled ");
    assert!(
        after > before,
        "a 2 s busy loop at CPUQuota=50% was never throttled (nr_throttled {before} -> {after})"
    );
}

#[test]
fn broken_specs_are_refused_with_located_errors_and_nothing_changes() {
    let _g = serial();
    let ws = Workspace::new("broken");
    ws.spec("10-web.toml", &web("e2e-broken", 18187, "ok", ""));
    ws.agent_ok(&["apply"]);
    let pid = main_pid(&ws, "e2e-broken.service");
    let rendered = std::fs::read_to_string(ws.output.join("e2e-broken.container")).unwrap();
    ws.spec(
        "10-web.toml",
        &web("e2e-broken", 18187, "ok", "memroy = \"64M\""),
    );
    let out = ws.agent(&["apply"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("10-web.toml:7:1: container.e2e-broken.memroy: unknown key"),
        "{err}"
    );
    assert_eq!(
        main_pid(&ws, "e2e-broken.service"),
        pid,
        "nothing stopped or restarted"
    );
    assert_eq!(
        std::fs::read_to_string(ws.output.join("e2e-broken.container")).unwrap(),
        rendered,
        "nothing rewritten"
    );
}

#[test]
fn a_set_quadlet_rejects_is_refused_with_the_generators_own_message() {
    let _g = serial();
    let ws = Workspace::new("quadlet");
    ws.spec("10-web.toml", &web("e2e-q-web", 18188, "q", ""));
    ws.agent_ok(&["apply"]);
    let pid = main_pid(&ws, "e2e-q-web.service");
    let stamp = generator_stamp(&ws);
    // Passes the agent's own validation, but Podman's Quadlet (5.4) needs an
    // Image= for the image volume driver, which the spec format does not carry.
    ws.spec("20-vol.toml", "[volume.e2e_q_vol]\ndriver = \"image\"\n");
    let out = ws.agent(&["apply"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("Quadlet generator rejected"), "{err}");
    assert!(
        err.contains("the key Image is mandatory when using the image driver"),
        "the generator's own words: {err}"
    );
    assert!(
        !ws.output.join("e2e_q_vol.volume").exists(),
        "nothing written"
    );
    assert_eq!(generator_stamp(&ws), stamp, "no daemon-reload");
    assert_eq!(main_pid(&ws, "e2e-q-web.service"), pid, "nothing restarted");
}

#[test]
fn history_lists_generations_and_rollback_re_applies_one() {
    let _g = serial();
    let ws = Workspace::new("gens");
    ws.spec("10-web.toml", &web("e2e-gen", 18189, "g1", ""));
    ws.agent_ok(&["apply"]);
    ws.spec("10-web.toml", &web("e2e-gen", 18189, "g2", ""));
    ws.agent_ok(&["apply"]);
    ws.env.wait_for("g2", Duration::from_secs(20), || {
        ws.curl(18189).as_deref() == Some("g2")
    });

    let out = ws.agent_ok(&["rollback", "--to", "1"]);
    assert!(out.contains("restart e2e-gen.service"), "{out}");
    ws.env.wait_for("g1 back", Duration::from_secs(20), || {
        ws.curl(18189).as_deref() == Some("g1")
    });
    let hist = ws.agent_ok(&["history"]);
    let lines: Vec<&str> = hist.lines().collect();
    assert!(lines[0].starts_with(" GEN"), "{hist}");
    assert!(
        lines[1].trim_start().starts_with('3') && lines[1].contains("rollback to 1"),
        "{hist}"
    );
    assert!(
        lines[2].trim_start().starts_with('2') && lines[2].contains("apply"),
        "{hist}"
    );

    // The rollback sticks while the specs still ask for g2: an apply and
    // the daemon's first apply keep g1, the unit untouched.
    let invocation = ws.env.unit_prop("e2e-gen.service", "InvocationID");
    assert_eq!(ws.agent_ok(&["apply"]).trim(), "No changes.");
    let d = ws.start_daemon();
    assert_eq!(ws.curl(18189).as_deref(), Some("g1"));
    drop(d);
    assert_eq!(
        ws.env.unit_prop("e2e-gen.service", "InvocationID"),
        invocation
    );
    // --dry-run says what a rollback would do, and does nothing.
    let out = ws.agent_ok(&["rollback", "--to", "2", "--dry-run"]);
    assert!(
        out.contains("Rolling back to generation 2 would change:")
            && out.contains("restart e2e-gen.service"),
        "{out}"
    );
    assert_eq!(ws.curl(18189).as_deref(), Some("g1"));

    // Without --to: the good generation before the latest one.
    ws.agent_ok(&["rollback"]);
    ws.env.wait_for("g2 again", Duration::from_secs(20), || {
        ws.curl(18189).as_deref() == Some("g2")
    });
    // Back on what the specs say: nothing pinned, an edit applies.
    ws.spec("10-web.toml", &web("e2e-gen", 18189, "g3", ""));
    ws.agent_ok(&["apply"]);
    ws.env.wait_for("g3", Duration::from_secs(20), || {
        ws.curl(18189).as_deref() == Some("g3")
    });
    let out = ws.agent(&["rollback", "--to", "99"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no generation 99"),
        "{}",
        stderr(&out)
    );
}
