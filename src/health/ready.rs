//! `deploy-agent wait-healthy`: the waiter a health-gated unit runs as its
//! `ExecStartPost=` (see `render::readiness`), so that its start job ends
//! only once its check first passes, and systemd starts the containers that
//! depend on it only then.
//!
//! It probes every `every` until the first pass (exit 0) or until `within`
//! has gone by (exit 1, the start job fails and the dependents are not
//! started). Its lines go to the unit's journal through stderr.

use std::time::{Duration, Instant};

use crate::spec::model::HealthCheck;

use super::probe::probe_container;

/// The check did not pass in time.
#[derive(Debug, thiserror::Error)]
#[error("{name}: not healthy within {}: last check: {last}", crate::render::duration(*within))]
pub struct NotHealthy {
    pub name: String,
    pub within: Duration,
    pub last: String,
}

/// What to wait for.
#[derive(Debug, Clone)]
pub struct WaitSpec {
    /// Container name (Podman's, for `cmd` checks).
    pub name: String,
    pub check: HealthCheck,
    pub within: Duration,
    pub probe_timeout: Duration,
    pub every: Duration,
}

/// Probes until the first pass; returns how long it took.
pub async fn wait_healthy(w: &WaitSpec) -> Result<Duration, NotHealthy> {
    let t0 = Instant::now();
    let mut said = None::<Instant>;
    loop {
        let r = probe_container(&w.name, &w.check, w.probe_timeout).await;
        if r.ok {
            eprintln!(
                "{}: healthy after {} ({})",
                w.name,
                crate::render::duration(round_ms(t0.elapsed())),
                r.detail
            );
            return Ok(t0.elapsed());
        }
        if t0.elapsed() + w.every > w.within {
            return Err(NotHealthy {
                name: w.name.clone(),
                within: w.within,
                last: r.detail,
            });
        }
        // A line now and then, not one per probe.
        if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            eprintln!(
                "{}: waiting to be healthy before its dependents start: {}",
                w.name, r.detail
            );
            said = Some(Instant::now());
        }
        tokio::time::sleep(w.every).await;
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(addr: String, within: Duration) -> WaitSpec {
        WaitSpec {
            name: "db".into(),
            check: HealthCheck::Tcp { addr },
            within,
            probe_timeout: Duration::from_millis(200),
            every: Duration::from_millis(50),
        }
    }

    #[tokio::test]
    async fn passes_once_the_port_listens() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr = format!("127.0.0.1:{port}");
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
            std::thread::sleep(Duration::from_secs(2));
            drop(l);
        });
        let took = wait_healthy(&spec(addr, Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(took >= Duration::from_millis(250), "{took:?}");
        late.join().unwrap();
    }

    #[tokio::test]
    async fn gives_up_after_within_and_says_why() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t0 = Instant::now();
        let e = wait_healthy(&spec(
            format!("127.0.0.1:{port}"),
            Duration::from_millis(400),
        ))
        .await
        .unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(2));
        let text = e.to_string();
        assert!(text.starts_with("db: not healthy within 400ms"), "{text}");
        assert!(text.contains("refused"), "{text}");
    }
}
