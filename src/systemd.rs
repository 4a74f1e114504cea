//! systemd over D-Bus (zbus): daemon-reload, unit jobs waited on through
//! `JobRemoved`, unit properties, and `PropertiesChanged` for watching.
//!
//! Rootless agents talk to their user manager on the session bus, root to
//! PID 1 on the system bus. Nothing here shells out to `systemctl`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use zbus::proxy::CacheProperties;
use zbus::zvariant::OwnedObjectPath;

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Manager {
    fn subscribe(&self) -> zbus::Result<()>;
    fn reload(&self) -> zbus::Result<()>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1"
)]
trait Unit {
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn load_error(&self) -> zbus::Result<(String, String)>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1"
)]
trait Service {
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
    #[zbus(property, name = "ExecMainStatus")]
    fn exec_main_status(&self) -> zbus::Result<i32>;
    #[zbus(property, name = "ExecMainCode")]
    fn exec_main_code(&self) -> zbus::Result<i32>;
    #[zbus(property, name = "MainPID")]
    fn main_pid(&self) -> zbus::Result<u32>;
    #[zbus(property, name = "NRestarts")]
    fn n_restarts(&self) -> zbus::Result<u32>;
    #[zbus(property, name = "MemoryCurrent")]
    fn memory_current(&self) -> zbus::Result<u64>;
    #[zbus(property, name = "MemoryMax")]
    fn memory_max(&self) -> zbus::Result<u64>;
}

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("cannot connect to the {scope} bus: {source}")]
    Connect {
        scope: &'static str,
        source: Box<zbus::Error>,
    },
    #[error("systemd did not answer on the {scope} bus: {source}")]
    NoManager {
        scope: &'static str,
        source: Box<zbus::Error>,
    },
    #[error("daemon-reload failed: {0}")]
    Reload(Box<zbus::Error>),
    #[error("D-Bus call failed: {0}")]
    Call(Box<zbus::Error>),
    #[error("the connection to systemd ended while waiting for jobs")]
    Disconnected,
}

impl From<zbus::Error> for SystemdError {
    fn from(e: zbus::Error) -> Self {
        SystemdError::Call(Box::new(e))
    }
}

/// Which manager: the user's (rootless) or the system's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    User,
    System,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::User => "user (session)",
            Scope::System => "system",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Start,
    Restart,
    Stop,
}

/// How one job ended, with the unit's own reason when it failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobOutcome {
    pub unit: String,
    /// systemd's job result: done, failed, timeout, dependency, canceled, skipped;
    /// "error" when the job could not even be queued.
    pub result: String,
    /// The D-Bus error when the job could not be queued.
    pub error: Option<String>,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    /// The service's `Result` (exit-code, signal, timeout, oom-kill, ...).
    pub service_result: Option<String>,
    pub exit_status: Option<i32>,
}

impl JobOutcome {
    pub fn ok(&self) -> bool {
        self.result == "done" || self.result == "skipped"
    }

    /// The failure in operator words.
    pub fn describe(&self) -> String {
        if self.ok() {
            return self.result.clone();
        }
        if self.load_state == "not-found" {
            return format!(
                "unit not found: Podman's Quadlet generator did not produce {} (check `deploy-agent plan` and the generator's messages)",
                self.unit
            );
        }
        let mut s = format!("job {}", self.result);
        if let Some(e) = &self.error {
            s.push_str(&format!(": {e}"));
        }
        if !self.active_state.is_empty() {
            s.push_str(&format!(
                "; unit is {}/{}",
                self.active_state, self.sub_state
            ));
        }
        if let Some(r) = self.service_result.as_deref().filter(|r| *r != "success") {
            s.push_str(&format!(", result {r}"));
        }
        if let Some(code) = self.exit_status.filter(|c| *c != 0) {
            s.push_str(&format!(", exit status {code}"));
        }
        s
    }
}

/// A unit's state, for `status` and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitStatus {
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    pub main_pid: u32,
    pub n_restarts: u32,
    pub memory_current: Option<u64>,
    pub memory_max: Option<u64>,
    pub service_result: Option<String>,
    pub exit_status: Option<i32>,
}

/// "Not set" in systemd's u64 properties.
fn set(v: u64) -> Option<u64> {
    (v != u64::MAX).then_some(v)
}

pub struct Systemd {
    conn: zbus::Connection,
    manager: ManagerProxy<'static>,
    reloads: AtomicU64,
}

impl Systemd {
    /// Connects to the manager of `scope` and subscribes to its signals.
    pub async fn connect(scope: Scope) -> Result<Systemd, SystemdError> {
        let conn = match scope {
            Scope::User => zbus::Connection::session().await,
            Scope::System => zbus::Connection::system().await,
        }
        .map_err(|source| SystemdError::Connect {
            scope: scope.name(),
            source: Box::new(source),
        })?;
        Self::on(conn, scope).await
    }

    /// Connects through an explicit bus address (tests, unusual setups).
    pub async fn connect_address(address: &str, scope: Scope) -> Result<Systemd, SystemdError> {
        let conn = zbus::connection::Builder::address(address)
            .map_err(|source| SystemdError::Connect {
                scope: scope.name(),
                source: Box::new(source),
            })?
            .build()
            .await
            .map_err(|source| SystemdError::Connect {
                scope: scope.name(),
                source: Box::new(source),
            })?;
        Self::on(conn, scope).await
    }

    async fn on(conn: zbus::Connection, scope: Scope) -> Result<Systemd, SystemdError> {
        let manager = ManagerProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|source| SystemdError::NoManager {
                scope: scope.name(),
                source: Box::new(source),
            })?;
        manager
            .subscribe()
            .await
            .map_err(|source| SystemdError::NoManager {
                scope: scope.name(),
                source: Box::new(source),
            })?;
        Ok(Systemd {
            conn,
            manager,
            reloads: AtomicU64::new(0),
        })
    }

    /// True while the manager answers.
    pub async fn is_connected(&self) -> bool {
        tokio::time::timeout(Duration::from_secs(5), self.manager.version())
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Resolves when the connection to the bus is gone (the bus or the
    /// manager went away): the caller reconnects.
    pub async fn closed(&self) {
        self.conn.closed().await
    }

    /// daemon-reload; returns when the manager has reloaded.
    pub async fn reload(&self) -> Result<(), SystemdError> {
        self.manager
            .reload()
            .await
            .map_err(|e| SystemdError::Reload(Box::new(e)))?;
        self.reloads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// How many daemon-reloads this connection issued.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Queues the jobs in the order given (mode "replace") and waits for each
    /// one's `JobRemoved`, at most `timeout` in all.
    pub async fn run_jobs(
        &self,
        jobs: &[(JobKind, String)],
        timeout: Duration,
    ) -> Result<Vec<JobOutcome>, SystemdError> {
        // Subscribe before queueing, so no JobRemoved can be missed.
        let mut removed = self.manager.receive_job_removed().await?;
        let mut outcomes: Vec<JobOutcome> = jobs
            .iter()
            .map(|(_, unit)| JobOutcome {
                unit: unit.clone(),
                ..Default::default()
            })
            .collect();
        let mut pending: HashMap<OwnedObjectPath, usize> = HashMap::new();
        for (i, (kind, unit)) in jobs.iter().enumerate() {
            let queued = match kind {
                JobKind::Start => self.manager.start_unit(unit, "replace").await,
                JobKind::Restart => self.manager.restart_unit(unit, "replace").await,
                JobKind::Stop => self.manager.stop_unit(unit, "replace").await,
            };
            match queued {
                Ok(job) => {
                    pending.insert(job, i);
                }
                Err(zbus::Error::MethodError(name, msg, _))
                    if *kind == JobKind::Stop
                        && name.as_str() == "org.freedesktop.systemd1.NoSuchUnit" =>
                {
                    // Stopping a unit that is not there: already done.
                    let _ = msg;
                    outcomes[i].result = "done".into();
                }
                Err(e) => {
                    outcomes[i].result = "error".into();
                    outcomes[i].error = Some(e.to_string());
                }
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while !pending.is_empty() {
            let next = tokio::time::timeout_at(deadline, removed.next()).await;
            let signal = match next {
                Ok(Some(s)) => s,
                Ok(None) => return Err(SystemdError::Disconnected),
                Err(_) => {
                    for i in pending.values() {
                        outcomes[*i].result = "timeout".into();
                        outcomes[*i].error = Some(format!("no result within {timeout:?}"));
                    }
                    break;
                }
            };
            let args = signal.args()?;
            if let Some(i) = pending.remove(&args.job) {
                outcomes[i].result = args.result.clone();
            }
        }
        for o in outcomes.iter_mut() {
            if let Ok(st) = self.unit_status(&o.unit).await {
                o.load_state = st.load_state;
                o.active_state = st.active_state;
                o.sub_state = st.sub_state;
                o.service_result = st.service_result;
                o.exit_status = st.exit_status;
            }
        }
        Ok(outcomes)
    }

    async fn unit_path(&self, unit: &str) -> Result<OwnedObjectPath, SystemdError> {
        Ok(self.manager.load_unit(unit).await?)
    }

    /// Fresh (uncached) state of a unit.
    pub async fn unit_status(&self, unit: &str) -> Result<UnitStatus, SystemdError> {
        let path = self.unit_path(unit).await?;
        let u = UnitProxy::builder(&self.conn)
            .path(path.clone())?
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        let mut st = UnitStatus {
            load_state: u.load_state().await?,
            active_state: u.active_state().await?,
            sub_state: u.sub_state().await?,
            ..Default::default()
        };
        if unit.ends_with(".service") && st.load_state == "loaded" {
            let s = ServiceProxy::builder(&self.conn)
                .path(path)?
                .cache_properties(CacheProperties::No)
                .build()
                .await?;
            st.main_pid = s.main_pid().await.unwrap_or(0);
            st.n_restarts = s.n_restarts().await.unwrap_or(0);
            st.memory_current = s.memory_current().await.ok().and_then(set);
            st.memory_max = s.memory_max().await.ok().and_then(set);
            st.service_result = s.result().await.ok();
            st.exit_status = s.exec_main_status().await.ok();
        }
        Ok(st)
    }

    /// Follows ActiveState of `units` through PropertiesChanged signals.
    /// Sends (unit, active_state) on every change; the channel closes when the
    /// connection to systemd ends, which the caller takes as "reconnect".
    pub async fn watch_active(
        &self,
        units: &[String],
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<(String, String)>, SystemdError> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        for unit in units {
            let path = self.unit_path(unit).await?;
            let proxy = UnitProxy::builder(&self.conn).path(path)?.build().await?;
            let mut changes = proxy.receive_active_state_changed().await;
            let tx = tx.clone();
            let unit = unit.clone();
            tokio::spawn(async move {
                while let Some(c) = changes.next().await {
                    if let Ok(state) = c.get().await {
                        if tx.send((unit.clone(), state)).is_err() {
                            return;
                        }
                    }
                }
            });
        }
        Ok(rx)
    }
}
