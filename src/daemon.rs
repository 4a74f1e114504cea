//! `deploy-agent run`: the daemon's one loop.
//!
//! Apply at start, then wait on file changes, SIGHUP, the watchdog timer and
//! SIGTERM in a single `select!`. Bad specs are logged and change nothing;
//! a lost systemd connection is re-made with backoff and followed by an
//! apply. systemd hears READY, STATUS and WATCHDOG through sd_notify.

use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use crate::agent::{Agent, AgentError};
use crate::config::Config;
use crate::journal::ids;
use crate::reconcile::apply::ApplyError;
use crate::reconcile::Extra;
use crate::systemd::{Scope, Systemd};
use crate::watch::DirWatcher;

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    // Not under systemd: NOTIFY_SOCKET is unset and this is a no-op.
    let _ = sd_notify::notify(false, states);
}

fn status(line: &str) {
    notify(&[sd_notify::NotifyState::Status(line)]);
}

/// Connects to the manager, retrying with backoff (1 s doubling to 30 s)
/// until it answers or a termination signal arrives (`None`).
async fn connect_with_backoff(
    scope: Scope,
    term: &mut tokio::signal::unix::Signal,
) -> Option<Systemd> {
    let mut delay = Duration::from_secs(1);
    loop {
        match Systemd::connect(scope).await {
            Ok(sd) => return Some(sd),
            Err(e) => {
                tracing::error!(
                    message_id = ids::SYSTEMD_UNREACHABLE,
                    "cannot reach systemd: {e}; retrying in {delay:?}"
                );
                status(&format!("waiting for systemd: {e}"));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = term.recv() => return None,
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// Runs the daemon until SIGTERM/SIGINT. Returns the exit code.
pub async fn run(cfg: Config) -> anyhow::Result<u8> {
    let scope = if cfg.system {
        Scope::System
    } else {
        Scope::User
    };
    let debounce = cfg.debounce;
    let specs_dir = cfg.specs_dir.clone();
    let agent = match Agent::new(cfg, Duration::from_secs(300)) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("{e}");
            return Ok(crate::commands::EXIT_INVALID);
        }
    };
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut watcher = match DirWatcher::new(&[&specs_dir], debounce) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(
                "{e}; create the specs directory (see tmpfiles.d) or set agent.specs_dir"
            );
            return Ok(crate::commands::EXIT_FAILED);
        }
    };
    let mut watchdog_usec = 0u64;
    let watchdog = sd_notify::watchdog_enabled(false, &mut watchdog_usec);
    let watchdog_every = Duration::from_micros(watchdog_usec.max(2)) / 2;
    let mut watchdog_tick = tokio::time::interval(if watchdog {
        watchdog_every
    } else {
        Duration::from_secs(3600)
    });
    watchdog_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    tracing::info!(specs = %specs_dir.display(), output = %agent.cfg.output_dir.display(), podman = %agent.podman, "deploy-agent starting");
    let Some(mut sd) = connect_with_backoff(scope, &mut term).await else {
        return Ok(crate::commands::EXIT_OK);
    };
    let mut ok = apply_logged(&agent, &sd, "run").await;
    notify(&[sd_notify::NotifyState::Ready]);

    loop {
        let reason = tokio::select! {
            paths = watcher.next() => {
                let Some(paths) = paths else { anyhow::bail!("the file watcher stopped") };
                if !paths.iter().any(|p| p == &specs_dir || crate::spec::is_spec_file_name(p)) {
                    continue;
                }
                tracing::info!(paths = paths.len(), "specs changed");
                "specs changed"
            }
            _ = hup.recv() => {
                // Fold a storm of SIGHUPs into one apply.
                while tokio::time::timeout(debounce, hup.recv()).await.is_ok() {}
                tracing::info!("SIGHUP: re-applying");
                "SIGHUP"
            }
            _ = watchdog_tick.tick(), if watchdog => {
                notify(&[sd_notify::NotifyState::Watchdog]);
                continue;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        notify(&[sd_notify::NotifyState::Reloading]);
        ok = apply_logged(&agent, &sd, reason).await;
        if !ok && !sd.is_connected().await {
            tracing::warn!(
                message_id = ids::SYSTEMD_UNREACHABLE,
                "lost the connection to systemd; reconnecting"
            );
            let Some(new) = connect_with_backoff(scope, &mut term).await else {
                break;
            };
            sd = new;
            ok = apply_logged(&agent, &sd, "reconnected").await;
        }
        notify(&[sd_notify::NotifyState::Ready]);
    }
    notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping"),
    ]);
    tracing::info!("deploy-agent stopping; services keep running");
    let _ = ok;
    Ok(crate::commands::EXIT_OK)
}

/// One apply with its outcome in the journal and the STATUS line. True on success.
async fn apply_logged(agent: &Agent, sd: &Systemd, origin: &str) -> bool {
    match agent.apply(sd, origin, Extra::default()).await {
        Ok(applied) => {
            let r = &applied.report;
            let line = match (applied.generation, r.ok()) {
                (None, _) => "up to date".to_string(),
                (Some(g), true) => format!("generation {g} applied"),
                (Some(g), false) => format!("generation {g}: {}", r.failures().join("; ")),
            };
            status(&line);
            r.ok()
        }
        Err(e) => {
            let line = match &e {
                AgentError::Invalid(errs) => {
                    format!("specs invalid ({} error(s)); keeping what runs", errs.len())
                }
                AgentError::Apply(ApplyError::Systemd(err)) => {
                    format!("systemd unreachable: {err}")
                }
                other => format!(
                    "apply failed: {}",
                    other.to_string().lines().next().unwrap_or("")
                ),
            };
            status(&line);
            false
        }
    }
}
