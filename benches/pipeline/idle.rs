//! The idle daemon's health supervision, whole, without systemd: the
//! daemon's own select arms for the supervisor (tick the due machines,
//! which spawn the probes; feed each result back; the history only when the
//! verdict changes) run for a while against real HTTP endpoints, and the
//! CPU the process used is read from the kernel. An idle daemon gets no
//! D-Bus signals, so this is all it does between changes: the probes'
//! HTTP requests, the timers, the bookkeeping.
//!
//! `serve PORT0 N` is the other end: one process answering `200 OK` on
//! 127.0.0.1:PORT0 .. PORT0+N-1, as the generated containers would.

use std::path::Path;
use std::time::{Duration, Instant};

use deploy_agent::history::{History, Outcome, Verdict};
use deploy_agent::supervise::Supervisor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// CPU time of this process so far (ns, every thread: schedstat, the way
/// `benches/scenarios.sh idle` reads the real daemon's).
fn cpu_ns() -> u64 {
    let mut total = 0;
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        total += text
            .split(' ')
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// `idle SPECS SECS`: per mode, every unit of SPECS supervised until all
/// are healthy, then SECS seconds measured. Prints `VALUE` lines.
pub fn idle(specs: &Path, secs: u64) {
    let set = deploy_agent::spec::load_dir(specs).expect("generated specs are valid");
    let n = set.containers.len();
    let state = specs.with_extension("idle-state");
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    let history = History::new(&state);
    let texts = super::spec_texts(&set);
    history
        .record(
            &texts,
            &Default::default(),
            Outcome::Ok,
            vec![],
            "bench",
            20,
        )
        .unwrap();
    let units = set
        .containers
        .keys()
        .map(|c| deploy_agent::spec::units::container(c))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // "as_before": health.json and the history written on every result.
        for (mode, before) in [("now", false), ("as_before", true)] {
            let mut sup = Supervisor::new(&state);
            sup.update(&set, &units, Some(1), Instant::now());
            let warm = Instant::now() + Duration::from_secs(60);
            supervise(&mut sup, &history, warm, before, true).await;
            assert_eq!(
                sup.verdict(),
                Some(true),
                "not all healthy: {}",
                sup.summary()
            );
            let (cpu0, t0) = (cpu_ns(), Instant::now());
            let results = supervise(
                &mut sup,
                &history,
                t0 + Duration::from_secs(secs),
                before,
                false,
            )
            .await;
            let (cpu, wall) = (cpu_ns() - cpu0, t0.elapsed());
            let key = |what: &str| format!("idle.{mode}.{what}.{n}");
            super::value(&key("cpu_us"), cpu / 1000);
            super::value(&key("wall_ms"), wall.as_millis() as u64);
            super::value(&key("results"), results);
            // Hundredths of a percent of one core.
            super::value(&key("cpu_pct_x100"), cpu * 10_000 / wall.as_nanos() as u64);
        }
    });
    let _ = std::fs::remove_dir_all(&state);
}

/// The daemon's two supervisor arms (`daemon.rs`), until `until` or, with
/// `until_healthy`, until every unit is healthy. Returns the results fed.
async fn supervise(
    sup: &mut Supervisor,
    history: &History,
    until: Instant,
    before: bool,
    until_healthy: bool,
) -> u64 {
    let until = tokio::time::Instant::from_std(until);
    let mut results = 0;
    while !(until_healthy && sup.verdict() == Some(true)) {
        let due = sup.next_due().map(tokio::time::Instant::from_std);
        tokio::select! {
            _ = tokio::time::sleep_until(until) => break,
            _ = async { tokio::time::sleep_until(due.unwrap_or(until)).await }, if due.is_some() => {
                let cmds = sup.tick(Instant::now());
                assert!(cmds.is_empty(), "a unit failed: {}", sup.summary());
            }
            (name, epoch, result) = sup.next_result() => {
                results += 1;
                sup.on_result(&name, epoch, result, Instant::now());
                let verdict = if before { sup.flush(); sup.verdict() } else { sup.verdict_change() };
                // As the daemon: the history is read only for a verdict.
                if let Some(ok) = verdict {
                    if let Ok(Some(latest)) = history.latest() {
                        let v = if ok { Verdict::Healthy } else { Verdict::Unhealthy };
                        let _ = history.set_health(latest.generation, v);
                    }
                }
            }
        }
    }
    results
}

/// `serve PORT0 N`: `200 OK` to any request on 127.0.0.1:PORT0.. (N ports).
pub fn serve(port0: u16, n: u16) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        for port in port0..port0 + n {
            let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap_or_else(|e| panic!("cannot listen on {port}: {e}"));
            tokio::spawn(async move {
                while let Ok((mut s, _)) = l.accept().await {
                    tokio::spawn(async move {
                        let mut buf = [0u8; 2048];
                        let _ = s.read(&mut buf).await;
                        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
                        let _ = s.write_all(ok).await;
                    });
                }
            });
        }
        println!("ready");
        std::future::pending::<()>().await
    })
}
