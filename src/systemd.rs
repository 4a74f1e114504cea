//! systemd over D-Bus (zbus): the only module that talks to the service
//! manager. It owns the connection to the user or system bus, daemon-reload,
//! unit jobs waited on through `JobRemoved`, unit state (`LoadUnit` and the
//! Unit/Service properties), listing units by pattern, and watching units
//! through `PropertiesChanged` signals.
//!
//! Rootless agents talk to their user manager on the session bus, root to
//! PID 1 on the system bus. Nothing here shells out to `systemctl`.
//!
//! Two rules keep the connection from stalling: zbus stops reading the socket
//! while any signal stream's queue is full, so every signal stream is drained
//! continuously (`run_jobs` drains `JobRemoved` while it queues jobs;
//! `watch_units` forwards from its own task into an unbounded channel), and
//! every call has a deadline, so a wedged manager becomes an error, not a hang.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::stream::{select_all, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use zbus::proxy::CacheProperties;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

const SERVICE: &str = "org.freedesktop.systemd1";
const UNIT_INTERFACE: &str = "org.freedesktop.systemd1.Unit";

/// Deadline for an ordinary call (systemctl's default is 25 s too).
const CALL_TIMEOUT: Duration = Duration::from_secs(25);
/// Deadline for daemon-reload: generators (Quadlet) run inside it, and on a
/// large or slow host that takes seconds; systemctl allows minutes.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// Units whose state is read at once (see `run_jobs`).
const STATUS_CONCURRENCY: usize = 4;

mod pipeline;
use pipeline::{Pipeline, JOB_WINDOW};

/// The outcomes of one `run_jobs`, filled in from the calls' replies (the
/// job's path) and `JobRemoved` (its result), whichever comes first.
struct Tracker {
    outcomes: Vec<JobOutcome>,
    /// Job path -> the indexes waiting for it (a unit listed twice may get
    /// the same, merged, job).
    pending: HashMap<OwnedObjectPath, Vec<usize>>,
    /// Results that arrived before we knew their job's path.
    early: HashMap<OwnedObjectPath, String>,
}

impl Tracker {
    /// The reply to job `i`'s call: its job queued, or why not. Err only
    /// when the manager is gone.
    fn on_reply(&mut self, i: usize, m: zbus::Message) -> Result<(), SystemdError> {
        let queued = match m.message_type() {
            zbus::message::Type::MethodReturn => m.body().deserialize::<OwnedObjectPath>(),
            _ => Err(zbus::Error::from(m)),
        };
        let o = &mut self.outcomes[i];
        match queued {
            Ok(job) => match self.early.remove(&job) {
                Some(r) => o.result = JobResult::parse(&r),
                None => self.pending.entry(job).or_default().push(i),
            },
            Err(zbus::Error::MethodError(name, _, _))
                if o.kind == JobKind::Stop
                    && name.as_str() == "org.freedesktop.systemd1.NoSuchUnit" =>
            {
                // Stopping a unit that is not there: already done.
                o.result = JobResult::Done;
            }
            Err(e) if is_gone(&e) => {
                return Err(SystemdError::Call {
                    what: format!("queueing {} of {}", o.kind, o.unit),
                    source: Box::new(e),
                })
            }
            Err(e) => {
                o.result = JobResult::NotQueued;
                o.error = Some(e.to_string());
            }
        }
        Ok(())
    }

    /// `JobRemoved` for `job`; kept for later when `early` (its call's reply
    /// may still come).
    fn on_removed(&mut self, job: &OwnedObjectPath, result: &str, early: bool) {
        match self.pending.remove(job) {
            Some(waiting) => {
                for w in waiting {
                    self.outcomes[w].result = JobResult::parse(result);
                }
            }
            None if early => {
                self.early.insert(job.clone(), result.to_string());
            }
            None => {}
        }
    }
}

/// The serial of the call `m` answers, if it is a reply.
fn reply_to(m: &zbus::Message) -> Option<u32> {
    match m.message_type() {
        zbus::message::Type::MethodReturn | zbus::message::Type::Error => {
            m.header().reply_serial().map(|s| s.get())
        }
        _ => None,
    }
}

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
    fn try_restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn list_units_by_patterns(
        &self,
        states: &[&str],
        patterns: &[&str],
    ) -> zbus::Result<Vec<ListedUnitRow>>;
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
    #[zbus(property)]
    fn system_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn units_load_timestamp_monotonic(&self) -> zbus::Result<u64>;
}

/// One row of `ListUnitsByPatterns`: name, description, load state, active
/// state, sub state, followed unit, unit path, job id, job type, job path.
type ListedUnitRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1"
)]
trait Unit {
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn load_error(&self) -> zbus::Result<(String, String)>;
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn fragment_path(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn active_enter_timestamp(&self) -> zbus::Result<u64>;
    #[zbus(property, name = "InvocationID")]
    fn invocation_id(&self) -> zbus::Result<Vec<u8>>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1"
)]
trait Service {
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
    #[zbus(property, name = "ExecMainCode")]
    fn exec_main_code(&self) -> zbus::Result<i32>;
    #[zbus(property, name = "ExecMainStatus")]
    fn exec_main_status(&self) -> zbus::Result<i32>;
    #[zbus(property, name = "MainPID")]
    fn main_pid(&self) -> zbus::Result<u32>;
    #[zbus(property, name = "NRestarts")]
    fn n_restarts(&self) -> zbus::Result<u32>;
    #[zbus(property, name = "MemoryCurrent")]
    fn memory_current(&self) -> zbus::Result<u64>;
    #[zbus(property, name = "MemoryMax")]
    fn memory_max(&self) -> zbus::Result<u64>;
    #[zbus(property, name = "CPUQuotaPerSecUSec")]
    fn cpu_quota_per_sec_usec(&self) -> zbus::Result<u64>;
}

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("cannot connect to the {scope} bus at {address}: {source}")]
    Connect {
        scope: Scope,
        address: String,
        source: Box<zbus::Error>,
    },
    #[error("systemd did not answer on the {scope} bus at {address}: {source}")]
    NoManager {
        scope: Scope,
        address: String,
        source: Box<zbus::Error>,
    },
    #[error("daemon-reload failed: {0}")]
    Reload(Box<zbus::Error>),
    #[error("{what}: {source}")]
    Call {
        what: String,
        source: Box<zbus::Error>,
    },
    #[error("{what}: systemd did not answer within {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("the connection to systemd's bus was closed")]
    Disconnected,
    #[error("systemd left the bus or restarted (daemon-reexec, shutdown)")]
    ManagerGone,
}

impl SystemdError {
    /// True when the connection is unusable and the caller should reconnect.
    pub fn is_disconnect(&self) -> bool {
        match self {
            SystemdError::Disconnected | SystemdError::ManagerGone => true,
            SystemdError::Call { source, .. } | SystemdError::Reload(source) => is_gone(source),
            _ => false,
        }
    }
}

fn is_gone(e: &zbus::Error) -> bool {
    match e {
        zbus::Error::InputOutput(_) => true,
        zbus::Error::MethodError(name, _, _) => matches!(
            name.as_str(),
            "org.freedesktop.DBus.Error.ServiceUnknown"
                | "org.freedesktop.DBus.Error.NameHasNoOwner"
                | "org.freedesktop.DBus.Error.NoReply"
                | "org.freedesktop.DBus.Error.Disconnected"
        ),
        _ => false,
    }
}

/// Runs `fut` with a deadline, naming the step in the error.
async fn call<T>(
    what: impl FnOnce() -> String,
    after: Duration,
    fut: impl Future<Output = zbus::Result<T>>,
) -> Result<T, SystemdError> {
    match tokio::time::timeout(after, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(SystemdError::Call {
            what: what(),
            source: Box::new(e),
        }),
        Err(_) => Err(SystemdError::Timeout {
            what: what(),
            after,
        }),
    }
}

/// Which manager: the user's (rootless) or the system's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The user manager, on the session bus.
    User,
    /// PID 1, on the system bus.
    System,
    /// System when running as root (euid 0), user otherwise.
    Auto,
}

impl Scope {
    /// `Auto` resolved for this process.
    pub fn resolve(self) -> Scope {
        match self {
            Scope::Auto if nix::unistd::geteuid().is_root() => Scope::System,
            Scope::Auto => Scope::User,
            s => s,
        }
    }

    /// The bus address for this scope, as `dbus` clients find it:
    /// `DBUS_SESSION_BUS_ADDRESS`, else `$XDG_RUNTIME_DIR/bus`, else
    /// `/run/user/EUID/bus` for the user bus; `DBUS_SYSTEM_BUS_ADDRESS`, else
    /// `/run/dbus/system_bus_socket` for the system bus.
    pub fn bus_address(self) -> String {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        match self.resolve() {
            Scope::System => env("DBUS_SYSTEM_BUS_ADDRESS")
                .unwrap_or_else(|| "unix:path=/run/dbus/system_bus_socket".into()),
            _ => env("DBUS_SESSION_BUS_ADDRESS").unwrap_or_else(|| {
                let dir = env("XDG_RUNTIME_DIR")
                    .unwrap_or_else(|| format!("/run/user/{}", nix::unistd::geteuid().as_raw()));
                format!("unix:path={dir}/bus")
            }),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::User => "user (session)",
            Scope::System => "system",
            Scope::Auto => "default",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Start,
    Restart,
    Stop,
    /// Restart if running, else nothing.
    TryRestart,
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobKind::Start => "start",
            JobKind::Restart => "restart",
            JobKind::Stop => "stop",
            JobKind::TryRestart => "try-restart",
        })
    }
}

/// How a job ended: systemd's `JobRemoved` result, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    Done,
    Failed,
    Timeout,
    Dependency,
    Canceled,
    Skipped,
    /// Any other result systemd reports (invalid, assert, unsupported,
    /// collected, once, frozen, ...).
    Other(String),
    /// The job could not be queued; `JobOutcome::error` says why.
    NotQueued,
    /// No `JobRemoved` within the caller's deadline: the job may still be
    /// queued or running (it is left to systemd, not cancelled).
    NoAnswer,
}

impl JobResult {
    fn parse(s: &str) -> JobResult {
        match s {
            "done" => JobResult::Done,
            "failed" => JobResult::Failed,
            "timeout" => JobResult::Timeout,
            "dependency" => JobResult::Dependency,
            "canceled" => JobResult::Canceled,
            "skipped" => JobResult::Skipped,
            other => JobResult::Other(other.to_string()),
        }
    }
}

impl fmt::Display for JobResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobResult::Done => "done",
            JobResult::Failed => "failed",
            JobResult::Timeout => "timeout",
            JobResult::Dependency => "dependency",
            JobResult::Canceled => "canceled",
            JobResult::Skipped => "skipped",
            JobResult::Other(s) => s,
            JobResult::NotQueued => "not queued",
            JobResult::NoAnswer => "no answer",
        })
    }
}

/// How one job ended, with the unit's own reason when it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    pub kind: JobKind,
    pub unit: String,
    pub result: JobResult,
    /// What went wrong beyond the result: the D-Bus error when the job could
    /// not be queued, the deadline when no answer came, or why the unit's
    /// state could not be read.
    pub error: Option<String>,
    /// The unit's state once the job ended (load state and error, active and
    /// sub state, the service's `Result` and main process exit); `None` if it
    /// could not be read.
    pub status: Option<UnitStatus>,
}

impl JobOutcome {
    pub fn ok(&self) -> bool {
        matches!(self.result, JobResult::Done | JobResult::Skipped)
    }

    /// The failure in operator words.
    pub fn describe(&self) -> String {
        if self.ok() {
            return self.result.to_string();
        }
        let st = self.status.as_ref();
        match st.map(|s| s.load_state.as_str()) {
            Some("not-found") => {
                return format!(
                    "unit not found: Podman's Quadlet generator did not produce {} (check `deploy-agent plan` and the generator's messages)",
                    self.unit
                )
            }
            Some("masked") => return format!("unit {} is masked", self.unit),
            Some(state) if state != "loaded" && !state.is_empty() => {
                let why = st.and_then(|s| s.load_error.as_deref()).unwrap_or("");
                return format!("unit {} cannot be loaded ({state}): {why}", self.unit);
            }
            _ => {}
        }
        let mut s = match (&self.result, &self.error) {
            (JobResult::Dependency, _) => "not started: a unit it requires did not start (one with a health check must be healthy in time; see `deploy-agent status`)".to_string(),
            (JobResult::NotQueued, Some(e)) => format!("{} not queued: {e}", self.kind),
            (JobResult::NoAnswer, Some(e)) => format!("{} still pending: {e}", self.kind),
            (r, None) => format!("{} job {r}", self.kind),
            (r, Some(e)) => format!("{} job {r} ({e})", self.kind),
        };
        if let Some(st) = st.filter(|st| !st.active_state.is_empty()) {
            s.push_str(&format!("; {}", st.why()));
        }
        s
    }
}

impl UnitStatus {
    /// The unit's state and, for a service that ended badly, systemd's
    /// reason: `unit is failed/failed, result exit-code, exit status 3`.
    pub fn why(&self) -> String {
        let mut s = format!("unit is {}/{}", self.active_state, self.sub_state);
        if let Some(r) = self.service_result.as_deref().filter(|r| *r != "success") {
            s.push_str(&format!(", result {r}"));
        }
        match self.main_exit {
            Some(MainExit::Exited(0)) | None => {}
            Some(MainExit::Exited(code)) => s.push_str(&format!(", exit status {code}")),
            Some(MainExit::Killed(sig)) => s.push_str(&format!(", killed by signal {sig}")),
            Some(MainExit::Dumped(sig)) => s.push_str(&format!(", dumped core on signal {sig}")),
        }
        s
    }
}

/// How a service's main process last ended (`ExecMainCode` +
/// `ExecMainStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MainExit {
    /// exit(status)
    Exited(i32),
    /// Killed by this signal.
    Killed(i32),
    /// Killed by this signal and dumped core.
    Dumped(i32),
}

impl MainExit {
    fn from_code(code: i32, status: i32) -> Option<MainExit> {
        // CLD_EXITED, CLD_KILLED, CLD_DUMPED; 0 = has not exited.
        match code {
            1 => Some(MainExit::Exited(status)),
            2 => Some(MainExit::Killed(status)),
            3 => Some(MainExit::Dumped(status)),
            _ => None,
        }
    }
}

/// A unit's state, for `status`, job outcomes and the tests. Service fields
/// are empty for other unit types and for units that are not loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitStatus {
    pub name: String,
    pub load_state: String,
    /// `LoadError`'s message when loading failed (not-found, bad-setting).
    pub load_error: Option<String>,
    pub active_state: String,
    pub sub_state: String,
    pub fragment_path: Option<PathBuf>,
    pub active_enter_timestamp: Option<SystemTime>,
    /// The current (or last) run's invocation ID, hex.
    pub invocation_id: Option<String>,
    pub main_pid: u32,
    pub n_restarts: u32,
    pub memory_current: Option<u64>,
    pub memory_max: Option<u64>,
    pub cpu_quota_per_sec_usec: Option<u64>,
    /// The service's `Result`: success, exit-code, signal, timeout, oom-kill, ...
    pub service_result: Option<String>,
    pub main_exit: Option<MainExit>,
}

/// A unit from `list_units`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUnit {
    pub name: String,
    pub description: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
}

/// A watched unit's state, as `PropertiesChanged` reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitChange {
    pub unit: String,
    pub active_state: String,
    pub sub_state: String,
}

/// "Not set" / "infinity" in systemd's u64 properties.
fn set(v: u64) -> Option<u64> {
    (v != u64::MAX).then_some(v)
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

pub struct Systemd {
    conn: zbus::Connection,
    manager: ManagerProxy<'static>,
    reloads: AtomicU64,
}

impl Systemd {
    /// Connects to the manager of `scope` (see [`Scope::bus_address`]) and
    /// subscribes to its signals.
    pub async fn connect(scope: Scope) -> Result<Systemd, SystemdError> {
        let scope = scope.resolve();
        Self::connect_address(&scope.bus_address(), scope).await
    }

    /// Connects through an explicit bus address (tests, unusual setups).
    pub async fn connect_address(address: &str, scope: Scope) -> Result<Systemd, SystemdError> {
        let scope = scope.resolve();
        let connect_err = |source| SystemdError::Connect {
            scope,
            address: address.to_string(),
            source: Box::new(source),
        };
        let conn = tokio::time::timeout(CALL_TIMEOUT, async {
            zbus::connection::Builder::address(address)?.build().await
        })
        .await
        .map_err(|_| SystemdError::Timeout {
            what: format!("connecting to the {scope} bus at {address}"),
            after: CALL_TIMEOUT,
        })?
        .map_err(connect_err)?;
        let no_manager = |source| SystemdError::NoManager {
            scope,
            address: address.to_string(),
            source: Box::new(source),
        };
        let manager = ManagerProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(no_manager)?;
        // Without Subscribe() systemd sends no unit signals (PropertiesChanged,
        // JobRemoved of others' jobs) to this connection.
        tokio::time::timeout(CALL_TIMEOUT, manager.subscribe())
            .await
            .map_err(|_| SystemdError::Timeout {
                what: format!("subscribing to systemd on the {scope} bus at {address}"),
                after: CALL_TIMEOUT,
            })?
            .map_err(no_manager)?;
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

    /// The manager's version string, e.g. "257.13-1~deb13u1".
    pub async fn version(&self) -> Result<String, SystemdError> {
        call(
            || "reading systemd's version".into(),
            CALL_TIMEOUT,
            self.manager.version(),
        )
        .await
    }

    /// The manager's `SystemState`: initializing, starting, running, degraded,
    /// maintenance, stopping.
    pub async fn system_state(&self) -> Result<String, SystemdError> {
        call(
            || "reading systemd's state".into(),
            CALL_TIMEOUT,
            self.manager.system_state(),
        )
        .await
    }

    /// daemon-reload; returns when the manager has reloaded (systemd answers
    /// `Reload()` only after the generators ran and the units were loaded).
    pub async fn reload(&self) -> Result<(), SystemdError> {
        match tokio::time::timeout(RELOAD_TIMEOUT, self.manager.reload()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(SystemdError::Reload(Box::new(e))),
            Err(_) => {
                return Err(SystemdError::Timeout {
                    what: "daemon-reload".into(),
                    after: RELOAD_TIMEOUT,
                })
            }
        }
        self.reloads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// How many daemon-reloads this connection issued (and systemd finished).
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// The manager's own record of its last unit (re)load:
    /// `UnitsLoadTimestampMonotonic`, CLOCK_MONOTONIC µs. It changes on every
    /// daemon-reload, whoever asked for it, so comparing it before and after
    /// proves whether a reload happened without trusting [`Self::reloads`].
    pub async fn units_load_timestamp(&self) -> Result<u64, SystemdError> {
        call(
            || "reading UnitsLoadTimestampMonotonic".into(),
            CALL_TIMEOUT,
            self.manager.units_load_timestamp_monotonic(),
        )
        .await
    }

    /// Sends the call queueing `job`; returns its serial (the reply's key).
    async fn send_job(&self, (kind, unit): &(JobKind, String)) -> Result<u32, SystemdError> {
        let err = |e| SystemdError::Call {
            what: format!("queueing {kind} of {unit}"),
            source: Box::new(e),
        };
        let msg = self.job_call(*kind, unit).map_err(err)?;
        self.conn.send(&msg).await.map_err(err)?;
        Ok(msg.primary_header().serial_num().get())
    }

    /// The manager's method call queueing `kind` of `unit` (mode "replace").
    fn job_call(&self, kind: JobKind, unit: &str) -> zbus::Result<zbus::Message> {
        let method = match kind {
            JobKind::Start => "StartUnit",
            JobKind::Restart => "RestartUnit",
            JobKind::Stop => "StopUnit",
            JobKind::TryRestart => "TryRestartUnit",
        };
        let mut b = zbus::Message::method_call("/org/freedesktop/systemd1", method)?
            .destination(SERVICE)?
            .interface("org.freedesktop.systemd1.Manager")?;
        if let Some(me) = self.conn.unique_name() {
            b = b.sender(me.clone())?;
        }
        b.build(&(unit, "replace"))
    }

    /// Queues the jobs in the order given (mode "replace"; the calls go out
    /// in that order without awaiting each reply, see [`pipeline`]) and
    /// waits for each one's `JobRemoved`, at most `timeout` in all. The outcomes come in the
    /// order of `jobs`, each with the unit's state once its job ended.
    ///
    /// `JobRemoved` is subscribed to before the first job is queued, and
    /// drained while the others are queued, so no result is missed and the
    /// connection never stalls on a full signal queue. Jobs without an answer
    /// by the deadline are reported as [`JobResult::NoAnswer`] and left to
    /// systemd. Err only when the connection itself fails.
    pub async fn run_jobs(
        &self,
        jobs: &[(JobKind, String)],
        timeout: Duration,
    ) -> Result<Vec<JobOutcome>, SystemdError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + timeout;
        let mut removed = tokio::time::timeout_at(deadline, self.manager.receive_job_removed())
            .await
            .map_err(|_| SystemdError::Timeout {
                what: "subscribing to JobRemoved".into(),
                after: timeout,
            })?
            .map_err(|e| SystemdError::Call {
                what: "subscribing to JobRemoved".into(),
                source: Box::new(e),
            })?;
        let mut t = Tracker {
            outcomes: jobs
                .iter()
                .map(|(kind, unit)| JobOutcome {
                    kind: *kind,
                    unit: unit.clone(),
                    result: JobResult::NoAnswer,
                    error: None,
                    status: None,
                })
                .collect(),
            pending: HashMap::new(),
            early: HashMap::new(),
        };
        // Calls go out in job order without awaiting each reply (see
        // [`pipeline`]); replies are read from the connection's stream,
        // opened before the first call.
        let mut replies = zbus::MessageStream::from(&self.conn);
        let mut pipe = Pipeline::new(jobs.len(), JOB_WINDOW);
        let mut timed_out = false;
        while !pipe.done() {
            while let Some(i) = pipe.next_to_send() {
                pipe.sent(self.send_job(&jobs[i]).await?);
            }
            tokio::select! {
                biased;
                m = replies.next() => {
                    let Some(Ok(m)) = m else { return Err(SystemdError::Disconnected) };
                    if let Some(i) = reply_to(&m).and_then(|s| pipe.replied(s)) {
                        t.on_reply(i, m)?;
                    }
                }
                s = removed.next() => {
                    let s = s.ok_or(SystemdError::Disconnected)?;
                    if let Ok(a) = s.args() {
                        t.on_removed(&a.job, &a.result, true);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    // Calls in flight may or may not have queued their job
                    // (they stay NoAnswer); the later ones were never sent.
                    timed_out = true;
                    for o in &mut t.outcomes[pipe.unsent()] {
                        o.result = JobResult::NotQueued;
                        o.error = Some(format!("no time left of {timeout:?} to queue it"));
                    }
                    break;
                }
            }
        }
        drop(replies);

        while !t.pending.is_empty() && !timed_out {
            let signal = match tokio::time::timeout_at(deadline, removed.next()).await {
                Ok(Some(s)) => s,
                Ok(None) => return Err(SystemdError::Disconnected),
                Err(_) => break,
            };
            let Ok(args) = signal.args() else { continue };
            t.on_removed(&args.job, &args.result, false);
        }
        let mut outcomes = t.outcomes;
        drop(removed);
        for o in outcomes.iter_mut() {
            if o.result == JobResult::NoAnswer {
                o.error = Some(format!("no result within {timeout:?}"));
            }
        }

        // The units' own account, a few units at a time: dbus-daemon refuses
        // more than 128 pending calls per connection on the system bus
        // (max_replies_per_connection), and one status reads up to 8
        // properties at once.
        let statuses: Vec<_> = futures_util::stream::iter(&outcomes)
            .map(|o| self.unit_status(&o.unit))
            .buffered(STATUS_CONCURRENCY)
            .collect()
            .await;
        for (o, st) in outcomes.iter_mut().zip(statuses) {
            match st {
                Ok(st) => o.status = Some(st),
                Err(e) if e.is_disconnect() => return Err(e),
                Err(e) => {
                    o.error
                        .get_or_insert_with(|| format!("cannot read the unit's state: {e}"));
                }
            }
        }
        Ok(outcomes)
    }

    async fn unit_path(&self, unit: &str) -> Result<OwnedObjectPath, SystemdError> {
        // LoadUnit, not GetUnit: GetUnit fails for units that are not in
        // memory (inactive units are garbage-collected), LoadUnit loads the
        // unit and also answers for one without a file (load state
        // not-found), which is what the status must say.
        call(
            || format!("looking up {unit}"),
            CALL_TIMEOUT,
            self.manager.load_unit(unit),
        )
        .await
    }

    /// A proxy for one unit object, without a property cache: every read
    /// asks systemd (a cache would also add a match rule per proxy).
    async fn object<P>(&self, path: &OwnedObjectPath) -> zbus::Result<P>
    where
        P: From<zbus::Proxy<'static>> + zbus::proxy::Defaults,
    {
        zbus::proxy::Builder::<P>::new(&self.conn)
            .path(path.clone())?
            .cache_properties(CacheProperties::No)
            .build()
            .await
    }

    /// Fresh (uncached) state of a unit; the properties are read concurrently.
    pub async fn unit_status(&self, unit: &str) -> Result<UnitStatus, SystemdError> {
        let path = self.unit_path(unit).await?;
        let what = || format!("reading the state of {unit}");
        let u: UnitProxy = call(what, CALL_TIMEOUT, self.object(&path)).await?;
        let (load_state, load_error, active_state, sub_state, fragment, entered, invocation) =
            call(what, CALL_TIMEOUT, async {
                futures_util::try_join!(
                    u.load_state(),
                    u.load_error(),
                    u.active_state(),
                    u.sub_state(),
                    u.fragment_path(),
                    u.active_enter_timestamp(),
                    u.invocation_id(),
                )
            })
            .await?;
        let mut st = UnitStatus {
            name: unit.to_string(),
            load_state,
            load_error: non_empty(load_error.1).or(non_empty(load_error.0)),
            active_state,
            sub_state,
            fragment_path: non_empty(fragment).map(PathBuf::from),
            active_enter_timestamp: (entered != 0)
                .then(|| UNIX_EPOCH + Duration::from_micros(entered)),
            invocation_id: (!invocation.is_empty()).then(|| hex::encode(&invocation)),
            ..Default::default()
        };
        if unit.ends_with(".service") && st.load_state == "loaded" {
            let s: ServiceProxy = call(what, CALL_TIMEOUT, self.object(&path)).await?;
            let (result, code, status, pid, restarts, mem, mem_max, quota) =
                call(what, CALL_TIMEOUT, async {
                    futures_util::try_join!(
                        s.result(),
                        s.exec_main_code(),
                        s.exec_main_status(),
                        s.main_pid(),
                        s.n_restarts(),
                        s.memory_current(),
                        s.memory_max(),
                        s.cpu_quota_per_sec_usec(),
                    )
                })
                .await?;
            st.service_result = Some(result);
            st.main_exit = MainExit::from_code(code, status);
            st.main_pid = pid;
            st.n_restarts = restarts;
            st.memory_current = set(mem);
            st.memory_max = set(mem_max);
            st.cpu_quota_per_sec_usec = set(quota);
        }
        Ok(st)
    }

    /// Units in memory whose names match any of `patterns` (shell globs, e.g.
    /// `web-*.service`), in any state. Units that are not loaded (inactive
    /// and garbage-collected) are not listed: use [`Self::unit_status`] for a
    /// known name.
    pub async fn list_units(&self, patterns: &[&str]) -> Result<Vec<ListedUnit>, SystemdError> {
        let rows = call(
            || format!("listing units matching {patterns:?}"),
            CALL_TIMEOUT,
            self.manager.list_units_by_patterns(&[], patterns),
        )
        .await?;
        let mut units: Vec<ListedUnit> = rows
            .into_iter()
            .map(
                |(name, description, load_state, active_state, sub_state, ..)| ListedUnit {
                    name,
                    description,
                    load_state,
                    active_state,
                    sub_state,
                },
            )
            .collect();
        units.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(units)
    }

    /// Follows the ActiveState/SubState of `units` through their
    /// `PropertiesChanged` signals (no polling).
    ///
    /// The first item for each unit is its state when the watch began (read
    /// after subscribing, so no change in between is lost); then one item per
    /// change of (active, sub) state. systemd coalesces changes within one
    /// iteration of its event loop, so short-lived states can be skipped.
    /// When the connection closes, or systemd leaves the bus or re-executes
    /// (its bus name changes owner), the stream yields one `Err`
    /// ([`SystemdError::Disconnected`] or [`SystemdError::ManagerGone`]) and
    /// ends: the caller reconnects and re-reads the states.
    pub async fn watch_units(&self, units: &[String]) -> Result<UnitWatch, SystemdError> {
        let dbus = zbus::fdo::DBusProxy::new(&self.conn)
            .await
            .map_err(|e| SystemdError::Call {
                what: "watching systemd's bus name".into(),
                source: Box::new(e),
            })?;
        let owner = call(
            || "watching systemd's bus name".into(),
            CALL_TIMEOUT,
            dbus.receive_name_owner_changed_with_args(&[(0, SERVICE)]),
        )
        .await?;
        let mut streams = Vec::with_capacity(units.len());
        let mut paths = Vec::with_capacity(units.len());
        for unit in units {
            let path = self.unit_path(unit).await?;
            let what = || format!("watching {unit}");
            let rule = zbus::MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .sender(SERVICE)
                .and_then(|b| b.path(path.clone()))
                .and_then(|b| b.interface("org.freedesktop.DBus.Properties"))
                .and_then(|b| b.member("PropertiesChanged"))
                .and_then(|b| b.add_arg(UNIT_INTERFACE))
                .map_err(|e| SystemdError::Call {
                    what: what(),
                    source: Box::new(e),
                })?
                .build();
            let stream = call(
                what,
                CALL_TIMEOUT,
                zbus::MessageStream::for_match_rule(rule, &self.conn, None),
            )
            .await?;
            let name = unit.clone();
            streams.push(stream.map(move |m| (name.clone(), m)).boxed());
            paths.push(path);
        }
        // Never ends by itself, so an empty watch waits too: the end of the
        // connection shows on the name-owner stream as well.
        streams.push(futures_util::stream::pending().boxed());
        // Subscribed: now the starting state.
        let initial: Vec<_> = futures_util::stream::iter(units.iter().zip(&paths))
            .map(|(unit, path)| async move {
                let u: UnitProxy = self.object(path).await?;
                let (active_state, sub_state) =
                    futures_util::try_join!(u.active_state(), u.sub_state())?;
                zbus::Result::Ok(UnitChange {
                    unit: unit.clone(),
                    active_state,
                    sub_state,
                })
            })
            .buffered(4 * STATUS_CONCURRENCY)
            .collect()
            .await;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut last: HashMap<String, (String, String)> = HashMap::new();
        for (unit, change) in units.iter().zip(initial) {
            let change = change.map_err(|e| SystemdError::Call {
                what: format!("reading the state of {unit}"),
                source: Box::new(e),
            })?;
            last.insert(
                unit.clone(),
                (change.active_state.clone(), change.sub_state.clone()),
            );
            let _ = tx.send(Ok(change));
        }
        let task = tokio::spawn(forward_changes(select_all(streams), owner, last, tx));
        Ok(UnitWatch { rx, task })
    }

    /// Follows ActiveState of `units` (see [`Self::watch_units`]). Sends
    /// (unit, active_state), first the state when the watch began; the
    /// channel closes when the connection to systemd ends, which the caller
    /// takes as "reconnect".
    pub async fn watch_active(
        &self,
        units: &[String],
    ) -> Result<mpsc::UnboundedReceiver<(String, String)>, SystemdError> {
        let mut watch = self.watch_units(units).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    item = watch.next() => match item {
                        Some(Ok(c)) => {
                            if tx.send((c.unit, c.active_state)).is_err() {
                                return;
                            }
                        }
                        Some(Err(_)) | None => return,
                    },
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(rx)
    }
}

/// The watch task: drains the unit signal streams (so the connection never
/// stalls) and ends with an error when the bus or the manager goes away.
async fn forward_changes(
    mut changes: impl Stream<Item = (String, zbus::Result<zbus::Message>)> + Unpin,
    mut owner: zbus::fdo::NameOwnerChangedStream,
    mut last: HashMap<String, (String, String)>,
    tx: mpsc::UnboundedSender<Result<UnitChange, SystemdError>>,
) {
    let end = loop {
        tokio::select! {
            item = changes.next() => match item {
                None | Some((_, Err(_))) => break SystemdError::Disconnected,
                Some((unit, Ok(msg))) => {
                    let Ok((_, changed, _)) = msg
                        .body()
                        .deserialize::<(String, HashMap<String, OwnedValue>, Vec<String>)>()
                    else {
                        continue;
                    };
                    let prop = |k: &str| {
                        changed
                            .get(k)
                            .and_then(|v| String::try_from(v.clone()).ok())
                    };
                    let (active, sub) = (prop("ActiveState"), prop("SubState"));
                    if active.is_none() && sub.is_none() {
                        continue;
                    }
                    let prev = last.entry(unit.clone()).or_default();
                    let next = (
                        active.unwrap_or_else(|| prev.0.clone()),
                        sub.unwrap_or_else(|| prev.1.clone()),
                    );
                    if *prev == next {
                        continue;
                    }
                    *prev = next.clone();
                    let change = UnitChange { unit, active_state: next.0, sub_state: next.1 };
                    if tx.send(Ok(change)).is_err() {
                        return;
                    }
                }
            },
            item = owner.next() => match item {
                None => break SystemdError::Disconnected,
                Some(signal) => {
                    // The name left its owner: systemd exited, or re-executed
                    // (daemon-reexec hands the name straight to the new
                    // instance, old owner -> new owner, with no gap).
                    let gone = signal.args().map(|a| a.old_owner().is_some()).unwrap_or(false);
                    if gone {
                        break SystemdError::ManagerGone;
                    }
                }
            },
            _ = tx.closed() => return,
        }
    };
    let _ = tx.send(Err(end));
}

/// The stream of [`Systemd::watch_units`]. Dropping it ends the watch.
pub struct UnitWatch {
    rx: mpsc::UnboundedReceiver<Result<UnitChange, SystemdError>>,
    task: tokio::task::JoinHandle<()>,
}

impl Stream for UnitWatch {
    type Item = Result<UnitChange, SystemdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for UnitWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    /// Replies and `JobRemoved` signals in either order: each job gets its
    /// own result; a stop of a unit that is not there is done.
    #[test]
    fn replies_and_job_results_meet_in_either_order() {
        use super::*;
        let call = |unit: &str| {
            zbus::Message::method_call("/org/freedesktop/systemd1", "StartUnit")
                .unwrap()
                .build(&(unit, "replace"))
                .unwrap()
        };
        let job = |n: u32| {
            OwnedObjectPath::try_from(format!("/org/freedesktop/systemd1/job/{n}")).unwrap()
        };
        let ok = |c: &zbus::Message, n: u32| {
            zbus::Message::method_return(&c.header())
                .unwrap()
                .build(&job(n))
                .unwrap()
        };
        let outcome = |kind, unit: &str| JobOutcome {
            kind,
            unit: unit.into(),
            result: JobResult::NoAnswer,
            error: None,
            status: None,
        };
        let mut t = Tracker {
            outcomes: vec![
                outcome(JobKind::Stop, "gone.service"),
                outcome(JobKind::Start, "a.service"),
                outcome(JobKind::Start, "b.service"),
                outcome(JobKind::Restart, "c.service"),
            ],
            pending: HashMap::new(),
            early: HashMap::new(),
        };
        let calls: Vec<zbus::Message> = ["gone", "a", "b", "c"].into_iter().map(call).collect();
        let serial = |m: &zbus::Message| m.primary_header().serial_num().get();
        // a's job ends before its call's reply is read.
        t.on_removed(&job(1), "done", true);
        let r = ok(&calls[1], 1);
        assert_eq!(reply_to(&r), Some(serial(&calls[1])));
        t.on_reply(1, r).unwrap();
        // b: reply, then its result.
        t.on_reply(2, ok(&calls[2], 2)).unwrap();
        t.on_removed(&job(2), "failed", true);
        // The stop of a unit that is not there.
        let none = zbus::Message::error(&calls[0].header(), "org.freedesktop.systemd1.NoSuchUnit")
            .unwrap()
            .build(&("Unit gone.service not loaded.",))
            .unwrap();
        t.on_reply(0, none).unwrap();
        // c refused.
        let refused = zbus::Message::error(
            &calls[3].header(),
            "org.freedesktop.DBus.Error.AccessDenied",
        )
        .unwrap()
        .build(&("no",))
        .unwrap();
        t.on_reply(3, refused).unwrap();
        let results: Vec<&JobResult> = t.outcomes.iter().map(|o| &o.result).collect();
        assert_eq!(
            results,
            [
                &JobResult::Done,
                &JobResult::Done,
                &JobResult::Failed,
                &JobResult::NotQueued
            ]
        );
        assert!(t.outcomes[3].error.as_deref().unwrap().contains("no"));
        assert!(t.pending.is_empty() && t.early.is_empty());
        assert_eq!(reply_to(&calls[0]), None, "a call is no reply");
        // The manager gone: the apply stops.
        let gone = zbus::Message::error(&calls[1].header(), "org.freedesktop.DBus.Error.NoReply")
            .unwrap()
            .build(&("timeout",))
            .unwrap();
        assert!(t.on_reply(1, gone).is_err());
    }

    use super::*;

    fn failed(status: UnitStatus) -> JobOutcome {
        JobOutcome {
            kind: JobKind::Start,
            unit: status.name.clone(),
            result: JobResult::Failed,
            error: None,
            status: Some(status),
        }
    }

    #[test]
    fn describes_a_failed_service_with_its_own_reason() {
        let o = failed(UnitStatus {
            name: "web.service".into(),
            load_state: "loaded".into(),
            active_state: "failed".into(),
            sub_state: "failed".into(),
            service_result: Some("exit-code".into()),
            main_exit: Some(MainExit::Exited(3)),
            ..Default::default()
        });
        assert!(!o.ok());
        assert_eq!(
            o.describe(),
            "start job failed; unit is failed/failed, result exit-code, exit status 3"
        );
    }

    #[test]
    fn describes_a_missing_unit_as_not_generated() {
        let o = JobOutcome {
            result: JobResult::NotQueued,
            error: Some("Unit web.service not found.".into()),
            ..failed(UnitStatus {
                name: "web.service".into(),
                load_state: "not-found".into(),
                load_error: Some("Unit web.service not found.".into()),
                ..Default::default()
            })
        };
        assert!(o
            .describe()
            .starts_with("unit not found: Podman's Quadlet generator did not produce web.service"));
    }

    #[test]
    fn describes_a_kill_and_a_bad_setting() {
        let o = failed(UnitStatus {
            name: "a.service".into(),
            load_state: "loaded".into(),
            active_state: "failed".into(),
            sub_state: "failed".into(),
            service_result: Some("oom-kill".into()),
            main_exit: Some(MainExit::Killed(9)),
            ..Default::default()
        });
        assert!(o
            .describe()
            .ends_with("result oom-kill, killed by signal 9"));
        let o = failed(UnitStatus {
            name: "b.service".into(),
            load_state: "bad-setting".into(),
            load_error: Some("Unit b.service has a bad unit file setting.".into()),
            ..Default::default()
        });
        assert_eq!(
            o.describe(),
            "unit b.service cannot be loaded (bad-setting): Unit b.service has a bad unit file setting."
        );
    }

    #[test]
    fn job_results_round_trip() {
        for r in [
            "done",
            "failed",
            "timeout",
            "dependency",
            "canceled",
            "skipped",
        ] {
            assert_eq!(JobResult::parse(r).to_string(), r);
        }
        assert_eq!(
            JobResult::parse("frozen"),
            JobResult::Other("frozen".into())
        );
        assert!(JobOutcome {
            kind: JobKind::TryRestart,
            unit: "x.service".into(),
            result: JobResult::Skipped,
            error: None,
            status: None,
        }
        .ok());
    }

    #[test]
    fn unset_values_are_none() {
        assert_eq!(set(u64::MAX), None);
        assert_eq!(set(67108864), Some(67108864));
        assert_eq!(MainExit::from_code(0, 0), None);
        assert_eq!(MainExit::from_code(1, 3), Some(MainExit::Exited(3)));
    }
}
