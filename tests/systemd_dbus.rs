//! The systemd D-Bus client (`deploy_agent::systemd`) against a real systemd
//! over a real D-Bus: each test boots its own systemd in a PID + mount
//! namespace (tests/support/sysns.rs) and talks to that namespace's system
//! bus from the host. Unit files go to the namespace's /run/systemd/system.
//! Results are cross-checked with `systemctl` inside the namespace where the
//! point is to not trust the code under test.
//!
//! Needs root; fails (never skips) when systemd cannot be booted.

#[path = "support/sysns.rs"]
mod sysns;

use std::time::{Duration, Instant};

use deploy_agent::systemd::{
    JobKind, JobResult, MainExit, Scope, Systemd, SystemdError, UnitChange,
};
use futures_util::StreamExt;
use sysns::SystemNs;

const JOBS: Duration = Duration::from_secs(30);

/// Boots a namespace and connects to its system bus.
async fn boot(name: &str) -> (SystemNs, Systemd) {
    let ns = SystemNs::boot(name);
    let sd = Systemd::connect_address(&ns.bus_address(), Scope::System)
        .await
        .unwrap_or_else(|e| panic!("connecting to the namespace's system bus: {e}"));
    (ns, sd)
}

/// A unit name unique to this test process: the namespaces share the host's
/// cgroup tree, so two test runs must not use the same service names.
fn unit(name: &str) -> String {
    format!("sdt{}-{name}.service", std::process::id())
}

fn sleeper(extra: &str) -> String {
    format!("[Service]\nExecStart=/bin/sleep infinity\n{extra}\n")
}

fn job(kind: JobKind, unit: &str) -> (JobKind, String) {
    (kind, unit.to_string())
}

/// The next change of a watch, or a failure after `within`.
async fn next_change(
    watch: &mut deploy_agent::systemd::UnitWatch,
    within: Duration,
) -> Result<UnitChange, SystemdError> {
    tokio::time::timeout(within, watch.next())
        .await
        .expect("no unit change within the deadline")
        .expect("the watch ended without an error")
}

#[tokio::test]
async fn connects_to_a_real_manager_with_external_auth_as_root() {
    let (ns, sd) = boot("sdt-connect").await;
    let version = sd.version().await.unwrap();
    assert_eq!(
        version.split_whitespace().next(),
        ns.show("", "Version").split_whitespace().next(),
        "the manager we reached is the namespace's"
    );
    let state = sd.system_state().await.unwrap();
    assert!(
        state == "running" || state == "degraded",
        "system state {state}"
    );
    assert!(sd.is_connected().await);

    // connect(Auto) as root means the system bus, found through
    // DBUS_SYSTEM_BUS_ADDRESS (only this test touches that variable).
    assert_eq!(Scope::Auto.resolve(), Scope::System);
    std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", ns.bus_address());
    assert_eq!(Scope::Auto.bus_address(), ns.bus_address());
    let auto = Systemd::connect(Scope::Auto).await.unwrap();
    assert_eq!(auto.version().await.unwrap(), version);
    std::env::set_var(
        "DBUS_SYSTEM_BUS_ADDRESS",
        "unix:path=/nonexistent/system_bus_socket",
    );
    let err = Systemd::connect(Scope::System).await.err().unwrap();
    std::env::remove_var("DBUS_SYSTEM_BUS_ADDRESS");
    assert!(matches!(err, SystemdError::Connect { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("system bus at unix:path=/nonexistent/system_bus_socket"),
        "{err}"
    );
}

#[tokio::test]
async fn reload_makes_a_new_unit_loadable_and_is_observable_from_outside() {
    let (ns, sd) = boot("sdt-reload").await;
    let name = unit("fresh");
    let witness = || ns.show("", "UnitsLoadTimestampMonotonic");

    // Reads and jobs are no reload: the manager's own timestamp stays put.
    let before = witness();
    let t0 = sd.units_load_timestamp().await.unwrap();
    assert_eq!(t0.to_string(), before);
    assert_eq!(sd.unit_status(&name).await.unwrap().load_state, "not-found");
    let o = sd
        .run_jobs(&[job(JobKind::Stop, &name)], JOBS)
        .await
        .unwrap();
    assert!(o[0].ok(), "{}", o[0].describe());
    assert_eq!(witness(), before, "no reload without reload()");
    assert_eq!(sd.reloads(), 0);

    ns.write_unit(&name, &sleeper(""));
    let started = Instant::now();
    sd.reload().await.unwrap();
    let took = started.elapsed();
    eprintln!("daemon-reload (basic.target, a handful of units): {took:?}");
    assert_eq!(sd.reloads(), 1);
    let after = witness();
    assert_ne!(after, before, "systemd itself saw a reload");
    assert_eq!(sd.units_load_timestamp().await.unwrap().to_string(), after);

    // reload() returned after the reload: the unit is there at once.
    let st = sd.unit_status(&name).await.unwrap();
    assert_eq!(st.load_state, "loaded");
    assert_eq!(
        st.fragment_path.as_deref(),
        Some(std::path::Path::new(&format!("/run/systemd/system/{name}")))
    );
    let t = Instant::now();
    let o = sd
        .run_jobs(&[job(JobKind::Start, &name)], JOBS)
        .await
        .unwrap();
    eprintln!(
        "start of one unit (run_jobs, incl. status): {:?}",
        t.elapsed()
    );
    assert!(o[0].ok(), "{}", o[0].describe());
    assert_eq!(ns.show(&name, "ActiveState"), "active");
}

#[tokio::test]
async fn start_order_follows_after_whatever_order_the_jobs_come_in() {
    let (ns, sd) = boot("sdt-order").await;
    let (a, b) = (unit("first"), unit("second"));
    // a takes a while to become active; b must wait for it.
    ns.write_unit(
        &a,
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sleep 0.5\n",
    );
    ns.write_unit(&b, &sleeper(&format!("[Unit]\nRequires={a}\nAfter={a}\n")));
    sd.reload().await.unwrap();
    // b first: systemd pulls a in through Requires= and orders by After=.
    let o = sd
        .run_jobs(&[job(JobKind::Start, &b), job(JobKind::Start, &a)], JOBS)
        .await
        .unwrap();
    assert_eq!(o.len(), 2);
    assert_eq!(
        (o[0].unit.as_str(), o[1].unit.as_str()),
        (b.as_str(), a.as_str())
    );
    assert!(o.iter().all(|o| o.ok()), "{o:?}");
    let sa = o[1].status.as_ref().unwrap();
    let sb = o[0].status.as_ref().unwrap();
    let (ta, tb) = (
        sa.active_enter_timestamp.expect("a became active"),
        sb.active_enter_timestamp.expect("b became active"),
    );
    assert!(tb >= ta, "b ({tb:?}) started before a was up ({ta:?})");
    // a's oneshot ran for 0.5 s: b cannot have started with it.
    let a_began: u64 = ns
        .show(&a, "InactiveExitTimestampMonotonic")
        .parse()
        .unwrap();
    let b_began: u64 = ns
        .show(&b, "InactiveExitTimestampMonotonic")
        .parse()
        .unwrap();
    assert!(
        b_began >= a_began + 400_000,
        "b left inactive {}µs after a",
        b_began.saturating_sub(a_began)
    );
}

#[tokio::test]
async fn a_failing_unit_reports_its_own_reason_and_its_dependents_fail_as_dependency() {
    let (ns, sd) = boot("sdt-fail").await;
    let (bad, dependent, fine) = (unit("exit3"), unit("needs-exit3"), unit("fine"));
    ns.write_unit(
        &bad,
        "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'exit 3'\n",
    );
    ns.write_unit(
        &dependent,
        &sleeper(&format!("[Unit]\nRequires={bad}\nAfter={bad}\n")),
    );
    ns.write_unit(&fine, &sleeper(""));
    sd.reload().await.unwrap();
    let o = sd
        .run_jobs(
            &[
                job(JobKind::Start, &fine),
                job(JobKind::Start, &bad),
                job(JobKind::Start, &dependent),
            ],
            JOBS,
        )
        .await
        .unwrap();
    assert!(o[0].ok(), "{}", o[0].describe());

    assert_eq!(o[1].result, JobResult::Failed);
    let st = o[1].status.as_ref().expect("status of the failed unit");
    assert_eq!(st.load_state, "loaded");
    assert_eq!(
        (st.active_state.as_str(), st.sub_state.as_str()),
        ("failed", "failed")
    );
    assert_eq!(st.service_result.as_deref(), Some("exit-code"));
    assert_eq!(st.main_exit, Some(MainExit::Exited(3)));
    assert_eq!(
        o[1].describe(),
        "start job failed; unit is failed/failed, result exit-code, exit status 3"
    );
    // The same facts, from systemd itself.
    assert_eq!(ns.show(&bad, "Result"), "exit-code");
    assert_eq!(ns.show(&bad, "ExecMainStatus"), "3");

    assert_eq!(o[2].result, JobResult::Dependency);
    assert!(!o[2].ok());
    assert!(
        o[2].describe()
            .starts_with("not started: a unit it requires did not start"),
        "{}",
        o[2].describe()
    );
}

#[tokio::test]
async fn a_missing_unit_is_reported_as_not_found() {
    let (_ns, sd) = boot("sdt-missing").await;
    let name = unit("never-generated");
    let o = sd
        .run_jobs(
            &[job(JobKind::Start, &name), job(JobKind::Stop, &name)],
            JOBS,
        )
        .await
        .unwrap();
    assert_eq!(o[0].result, JobResult::NotQueued);
    let st = o[0].status.as_ref().unwrap();
    assert_eq!(st.load_state, "not-found");
    assert!(
        st.load_error.as_deref().unwrap_or("").contains("not found"),
        "{:?}",
        st.load_error
    );
    assert!(
        o[0].describe().starts_with(&format!(
            "unit not found: Podman's Quadlet generator did not produce {name}"
        )),
        "{}",
        o[0].describe()
    );
    // Stopping what is not there is not a failure.
    assert!(o[1].ok(), "{}", o[1].describe());
    // TryRestart of a unit that does not exist is refused by systemd (not
    // queued, "not found"), as a start is: never reported as done.
    let o = sd
        .run_jobs(&[job(JobKind::TryRestart, &name)], JOBS)
        .await
        .unwrap();
    assert_eq!(o[0].result, JobResult::NotQueued, "{}", o[0].describe());
    assert!(o[0].describe().contains("not found"), "{}", o[0].describe());
}

#[tokio::test]
async fn stop_works_and_the_watch_sees_active_then_inactive() {
    let (ns, sd) = boot("sdt-watch").await;
    let name = unit("watched");
    ns.write_unit(&name, &sleeper(""));
    sd.reload().await.unwrap();
    let o = sd
        .run_jobs(&[job(JobKind::Start, &name)], JOBS)
        .await
        .unwrap();
    assert!(o[0].ok(), "{}", o[0].describe());

    let mut watch = sd.watch_units(std::slice::from_ref(&name)).await.unwrap();
    let first = next_change(&mut watch, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        (
            first.unit.as_str(),
            first.active_state.as_str(),
            first.sub_state.as_str()
        ),
        (name.as_str(), "active", "running"),
        "the first item is the state when the watch began"
    );

    let o = sd
        .run_jobs(&[job(JobKind::Stop, &name)], JOBS)
        .await
        .unwrap();
    assert!(o[0].ok(), "{}", o[0].describe());
    let st = o[0].status.as_ref().unwrap();
    assert_eq!(st.active_state, "inactive");
    assert_eq!(st.main_pid, 0);

    let mut seen = vec![];
    loop {
        let c = next_change(&mut watch, Duration::from_secs(10))
            .await
            .unwrap();
        seen.push(format!("{}/{}", c.active_state, c.sub_state));
        if c.active_state == "inactive" {
            break;
        }
    }
    assert_eq!(seen.last().unwrap(), "inactive/dead", "{seen:?}");
    eprintln!("watch saw: active/running -> {}", seen.join(" -> "));

    // Restart through the same watch: it keeps following.
    let o = sd
        .run_jobs(&[job(JobKind::Restart, &name)], JOBS)
        .await
        .unwrap();
    assert!(o[0].ok(), "{}", o[0].describe());
    loop {
        let c = next_change(&mut watch, Duration::from_secs(10))
            .await
            .unwrap();
        if c.active_state == "active" {
            break;
        }
    }
}

#[tokio::test]
async fn unit_status_reads_limits_identity_and_treats_unset_as_none() {
    let (ns, sd) = boot("sdt-status").await;
    let (limited, plain) = (unit("limited"), unit("plain"));
    ns.write_unit(&limited, &sleeper("MemoryMax=64M\nCPUQuota=50%"));
    ns.write_unit(&plain, &sleeper(""));
    sd.reload().await.unwrap();
    let o = sd
        .run_jobs(
            &[job(JobKind::Start, &limited), job(JobKind::Start, &plain)],
            JOBS,
        )
        .await
        .unwrap();
    assert!(o.iter().all(|o| o.ok()), "{o:?}");

    let st = sd.unit_status(&limited).await.unwrap();
    assert_eq!(st.name, limited);
    assert_eq!(
        (st.active_state.as_str(), st.sub_state.as_str()),
        ("active", "running")
    );
    assert_eq!(st.memory_max, Some(64 * 1024 * 1024));
    assert_eq!(st.cpu_quota_per_sec_usec, Some(500_000));
    assert_eq!(st.main_pid.to_string(), ns.show(&limited, "MainPID"));
    assert!(st.main_pid > 0);
    assert_eq!(st.n_restarts, 0);
    assert_eq!(st.service_result.as_deref(), Some("success"));
    assert_eq!(st.main_exit, None, "the main process has not exited");
    assert_eq!(
        st.invocation_id.as_deref(),
        Some(ns.show(&limited, "InvocationID").as_str())
    );
    assert_eq!(st.invocation_id.as_ref().unwrap().len(), 32);
    assert!(st.active_enter_timestamp.is_some());

    let st = sd.unit_status(&plain).await.unwrap();
    assert_eq!(st.memory_max, None, "MemoryMax=infinity is None");
    assert_eq!(st.cpu_quota_per_sec_usec, None, "no CPUQuota is None");

    // A unit that never ran.
    ns.write_unit(&unit("idle"), &sleeper(""));
    sd.reload().await.unwrap();
    let st = sd.unit_status(&unit("idle")).await.unwrap();
    assert_eq!(
        (st.load_state.as_str(), st.active_state.as_str()),
        ("loaded", "inactive")
    );
    assert_eq!(st.active_enter_timestamp, None);
    assert_eq!(st.main_pid, 0);
    assert_eq!(st.memory_current, None);

    // Listing by pattern finds the loaded ones.
    let listed = sd
        .list_units(&[&format!("sdt{}-*", std::process::id())])
        .await
        .unwrap();
    let names: Vec<&str> = listed.iter().map(|u| u.name.as_str()).collect();
    assert!(names.contains(&limited.as_str()), "{names:?}");
    assert!(names.contains(&plain.as_str()), "{names:?}");
    let l = listed.iter().find(|u| u.name == limited).unwrap();
    assert_eq!(
        (l.load_state.as_str(), l.active_state.as_str()),
        ("loaded", "active")
    );
}

#[tokio::test]
async fn losing_the_bus_ends_the_watch_with_an_error_not_a_hang() {
    let (ns, sd) = boot("sdt-busgone").await;
    let name = unit("orphan");
    ns.write_unit(&name, &sleeper(""));
    sd.reload().await.unwrap();
    let mut watch = sd.watch_units(std::slice::from_ref(&name)).await.unwrap();
    let first = next_change(&mut watch, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(first.active_state, "inactive");
    // Watching nothing is quiet until the bus goes.
    let mut nothing = sd.watch_units(&[]).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), nothing.next())
            .await
            .is_err(),
        "an empty watch yields nothing"
    );
    // The daemon's form: (unit, ActiveState), closing when the bus goes.
    let mut active = sd.watch_active(std::slice::from_ref(&name)).await.unwrap();
    assert_eq!(active.recv().await, Some((name.clone(), "inactive".into())));

    // The bus goes away under us. Whichever the client notices first (systemd
    // dropping its name as dbus stops, or the socket closing), it is an
    // error that says "reconnect", and it comes at once.
    let o = ns.systemctl(&["stop", "dbus.socket", "dbus.service"]);
    assert!(o.status.success(), "{o:?}");
    let end = next_change(&mut watch, Duration::from_secs(10)).await;
    assert!(
        matches!(
            end,
            Err(SystemdError::Disconnected | SystemdError::ManagerGone)
        ),
        "{end:?}"
    );
    assert!(end.unwrap_err().is_disconnect());
    let end = tokio::time::timeout(Duration::from_secs(5), nothing.next()).await;
    assert!(
        matches!(end, Ok(Some(Err(ref e))) if e.is_disconnect()),
        "{end:?}"
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .unwrap()
            .is_none(),
        "the watch ends after its error"
    );
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), active.recv())
            .await
            .expect("watch_active's channel closes"),
        None
    );
    tokio::time::timeout(Duration::from_secs(5), sd.closed())
        .await
        .expect("closed() resolves");
    assert!(!sd.is_connected().await);
    let err = sd
        .run_jobs(&[job(JobKind::Start, &name)], JOBS)
        .await
        .unwrap_err();
    assert!(err.is_disconnect(), "{err:?}");
}

#[tokio::test]
async fn a_manager_that_leaves_the_bus_ends_the_watch() {
    let (ns, sd) = boot("sdt-reexec").await;
    let name = unit("steady");
    ns.write_unit(&name, &sleeper(""));
    sd.reload().await.unwrap();
    let mut watch = sd.watch_units(std::slice::from_ref(&name)).await.unwrap();
    next_change(&mut watch, Duration::from_secs(5))
        .await
        .unwrap();
    // daemon-reexec: PID 1 re-executes and re-registers on the bus.
    let o = ns.systemctl(&["daemon-reexec"]);
    assert!(o.status.success(), "{o:?}");
    let end = next_change(&mut watch, Duration::from_secs(10)).await;
    assert!(matches!(end, Err(SystemdError::ManagerGone)), "{end:?}");
    // A new connection works once the manager is back.
    let again = Systemd::connect_address(&ns.bus_address(), Scope::System)
        .await
        .unwrap();
    assert!(again.is_connected().await);
}

/// Many units in one go: more JobRemoved signals than zbus queues per stream
/// (64) arrive while the jobs are still being queued; the client must keep
/// draining them or the connection stalls. Also measures.
#[tokio::test]
async fn a_hundred_units_start_status_and_stop_in_one_batch() {
    const N: usize = 100;
    let (ns, sd) = boot("sdt-batch").await;
    eprintln!("boot to running: {:?}", ns.boot_time);
    let names: Vec<String> = (0..N).map(|i| unit(&format!("batch{i:03}"))).collect();
    for n in &names {
        ns.write_unit(n, &sleeper(""));
    }
    let t = Instant::now();
    sd.reload().await.unwrap();
    let reload = t.elapsed();

    let starts: Vec<_> = names.iter().map(|n| job(JobKind::Start, n)).collect();
    let t = Instant::now();
    let o = sd.run_jobs(&starts, JOBS).await.unwrap();
    let start = t.elapsed();
    let failed: Vec<String> = o.iter().filter(|o| !o.ok()).map(|o| o.describe()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(o
        .iter()
        .all(|o| o.status.as_ref().unwrap().active_state == "active"));

    let t = Instant::now();
    for n in &names {
        assert_eq!(sd.unit_status(n).await.unwrap().active_state, "active");
    }
    let status = t.elapsed();

    let t = Instant::now();
    let mut watch = sd.watch_units(&names).await.unwrap();
    let watch_setup = t.elapsed();
    for _ in 0..N {
        next_change(&mut watch, Duration::from_secs(5))
            .await
            .unwrap();
    }

    let stops: Vec<_> = names.iter().map(|n| job(JobKind::Stop, n)).collect();
    let t = Instant::now();
    let o = sd.run_jobs(&stops, JOBS).await.unwrap();
    let stop = t.elapsed();
    assert!(o.iter().all(|o| o.ok()), "{o:?}");
    let mut inactive = std::collections::BTreeSet::new();
    while inactive.len() < N {
        let c = next_change(&mut watch, Duration::from_secs(10))
            .await
            .unwrap();
        if c.active_state == "inactive" {
            inactive.insert(c.unit);
        }
    }
    eprintln!(
        "{N} units: daemon-reload {reload:?}; start (run_jobs, incl. status) {start:?}; \
         unit_status one by one {status:?}; watch_units setup {watch_setup:?}; stop {stop:?}"
    );
}
