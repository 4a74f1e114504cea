//! Probes: the `http`/`https` and `tcp` checks the agent runs itself, and
//! Podman's verdict for in-container `cmd` checks.
//!
//! Every probe is bounded by its timeout and ends in a [`ProbeResult`] whose
//! `detail` is one short line for operators: `HTTP 200`, `HTTP 500 (expected
//! 200)`, `connection refused`, `timed out after 3s`, `certificate not
//! trusted: ...`. [`try_probe`] gives the same outcome as a typed error.
//!
//! HTTPS trusts the system's roots plus the spec's optional `ca_file`; a
//! server whose certificate chains to neither is refused. The `ca_file` is
//! read through [`crate::userfile`]: a FIFO or device there is an error,
//! never a blocked thread or an endless read. Plain `http://` is spoken by
//! the private `http1` module, everything else by reqwest. Redirects are not
//! followed (the status is compared exactly with `expect_status`), proxies
//! from the environment are ignored and no connection is reused, so each
//! probe opens a fresh connection to the service itself.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::spec::model::HealthCheck;
use crate::userfile::{self, UserFileError};

/// Largest `ca_file` read: a bundle of every public root is about 200 KiB.
pub const MAX_CA_FILE_BYTES: u64 = 1 << 20;

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub ok: bool,
    /// One line for operators, e.g. `HTTP 500 (expected 200)`.
    pub detail: String,
    /// Wall time the probe took (at most about its timeout).
    pub elapsed: Duration,
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("timed out after {}", fmt_duration(*.0))]
    Timeout(Duration),
    #[error("connection refused")]
    Refused,
    #[error("certificate not trusted: {0}")]
    Untrusted(String),
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("HTTP {status} (expected {expected})")]
    Status { status: u16, expected: u16 },
    #[error("ca_file {0}")]
    CaFile(#[source] UserFileError),
    #[error("ca_file {} holds no usable PEM certificate", path.display())]
    CaPem { path: PathBuf },
    /// Any other HTTP client failure, with its whole cause chain.
    #[error("{0}")]
    Http(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    /// Podman ran the in-container check and it failed.
    #[error("podman healthcheck: {0}")]
    PodmanUnhealthy(String),
    /// Podman could not run the check (no such container, no healthcheck, ...).
    #[error("podman healthcheck run failed{}: {stderr}", code.map(|c| format!(" (exit {c})")).unwrap_or_default())]
    Podman { code: Option<i32>, stderr: String },
    #[error("cannot run podman: {0}")]
    PodmanSpawn(#[source] io::Error),
    /// `cmd` checks run inside the container; see [`probe_container`].
    #[error("in-container `cmd` checks are run by Podman; ask Podman for its verdict")]
    NotAgentSide,
}

/// Installs ring as the process's rustls `CryptoProvider`, once. Harmless
/// when one is installed already (then that one stays).
pub fn ensure_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Runs an agent-side check (`http` or `tcp`) within `timeout`.
/// A `cmd` check gives `ok: false` with [`ProbeError::NotAgentSide`]'s text;
/// use [`probe_container`] where the check may be a `cmd` one.
pub async fn probe(check: &HealthCheck, timeout: Duration) -> ProbeResult {
    timed(try_probe(check, timeout)).await
}

/// [`probe`] with a typed error: `Ok` carries the detail of a passing probe.
pub async fn try_probe(check: &HealthCheck, timeout: Duration) -> Result<String, ProbeError> {
    match check {
        HealthCheck::Http {
            url,
            expect_status,
            ca_file,
        } => within(timeout, http(url, *expect_status, ca_file.as_deref())).await,
        HealthCheck::Tcp { addr } => within(timeout, tcp(addr)).await,
        HealthCheck::Cmd(_) => Err(ProbeError::NotAgentSide),
    }
}

/// Probes a container's check of any kind: `cmd` checks through Podman
/// ([`podman_verdict`]) with `container` as Podman's container name, the
/// others as [`probe`] does.
pub async fn probe_container(
    container: &str,
    check: &HealthCheck,
    timeout: Duration,
) -> ProbeResult {
    match check {
        HealthCheck::Cmd(_) => podman_verdict(container, timeout).await,
        _ => probe(check, timeout).await,
    }
}

/// Asks Podman to run the container's own healthcheck once
/// (`podman healthcheck run NAME`, as the agent's user, so a rootless agent
/// sees its own containers). Exit 0 is healthy, 1 unhealthy; anything else
/// means Podman could not run the check.
pub async fn podman_verdict(container: &str, timeout: Duration) -> ProbeResult {
    timed(within(timeout, async {
        let out = tokio::process::Command::new("podman")
            .args(["healthcheck", "run", container])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(ProbeError::PodmanSpawn)?;
        interpret_podman(
            out.status.code(),
            &String::from_utf8_lossy(&out.stdout),
            &String::from_utf8_lossy(&out.stderr),
        )
    }))
    .await
}

/// Podman's exit status and output -> verdict.
fn interpret_podman(code: Option<i32>, stdout: &str, stderr: &str) -> Result<String, ProbeError> {
    match code {
        Some(0) => Ok("podman: healthy".to_string()),
        Some(1) => Err(ProbeError::PodmanUnhealthy(
            first_line(stdout).unwrap_or("unhealthy").to_string(),
        )),
        _ => Err(ProbeError::Podman {
            code,
            stderr: podman_error_line(stderr)
                .unwrap_or("no message")
                .to_string(),
        }),
    }
}

fn first_line(s: &str) -> Option<&str> {
    s.lines().map(str::trim).find(|l| !l.is_empty())
}

/// The line of Podman's stderr that says what went wrong: its `Error: ...`
/// line, else the first line that is not one of its logged warnings (such
/// as the cgroup v1 deprecation notice it prints before every error).
fn podman_error_line(stderr: &str) -> Option<&str> {
    let mut lines = stderr.lines().map(str::trim).filter(|l| !l.is_empty());
    lines
        .clone()
        .find(|l| l.starts_with("Error: "))
        .or_else(|| lines.clone().find(|l| !l.contains("level=warning")))
        .or_else(|| lines.next())
}

async fn timed(fut: impl Future<Output = Result<String, ProbeError>>) -> ProbeResult {
    let start = Instant::now();
    let outcome = fut.await;
    let elapsed = start.elapsed();
    match outcome {
        Ok(detail) => ProbeResult {
            ok: true,
            detail,
            elapsed,
        },
        Err(e) => ProbeResult {
            ok: false,
            detail: e.to_string(),
            elapsed,
        },
    }
}

async fn within<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or(Err(ProbeError::Timeout(timeout)))
}

async fn tcp(addr: &str) -> Result<String, ProbeError> {
    match tokio::net::TcpStream::connect(addr).await {
        Ok(stream) => Ok(match stream.peer_addr() {
            Ok(peer) => format!("connected to {peer}"),
            Err(_) => format!("connected to {addr}"),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Err(ProbeError::Refused),
        Err(source) => Err(ProbeError::Connect {
            addr: addr.to_string(),
            source,
        }),
    }
}

async fn http(url: &str, expected: u16, ca_file: Option<&Path>) -> Result<String, ProbeError> {
    let status = match super::http1::plain(url).filter(|_| ca_file.is_none()) {
        Some(plain) => super::http1::status(&plain).await?,
        None => through_reqwest(url, ca_file).await?,
    };
    if status == expected {
        Ok(format!("HTTP {status}"))
    } else {
        Err(ProbeError::Status { status, expected })
    }
}

/// The status of `GET url` through reqwest: `https://` (with the spec's
/// `ca_file`), and URLs that carry credentials.
async fn through_reqwest(url: &str, ca_file: Option<&Path>) -> Result<u16, ProbeError> {
    let extra_root = match ca_file {
        Some(path) => {
            // A plain call: the open never blocks (O_NONBLOCK, a FIFO or
            // device is refused) and at most 1 MiB of a regular file is read.
            let pem = userfile::read_capped(path, MAX_CA_FILE_BYTES).map_err(ProbeError::CaFile)?;
            Some((path, pem))
        }
        None => None,
    };
    let client = client_for(extra_root)?;
    let response = client.get(url).send().await.map_err(classify)?;
    Ok(response.status().as_u16())
}

/// One client per `ca_file` (and one without), rebuilt when the file's
/// content changes, so the system roots are not loaded again on every probe
/// while a renewed CA is still picked up.
fn client_for(extra_root: Option<(&Path, Vec<u8>)>) -> Result<reqwest::Client, ProbeError> {
    type Cache = HashMap<Option<PathBuf>, (Vec<u8>, reqwest::Client)>;
    static CLIENTS: OnceLock<Mutex<Cache>> = OnceLock::new();

    let (key, pem) = match extra_root {
        Some((path, pem)) => (Some(path.to_path_buf()), pem),
        None => (None, Vec::new()),
    };
    let mut cache = CLIENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some((cached_pem, client)) = cache.get(&key) {
        if *cached_pem == pem {
            return Ok(client.clone());
        }
    }
    let client = build_client(key.as_deref(), &pem)?;
    cache.insert(key, (pem, client.clone()));
    Ok(client)
}

fn build_client(ca_file: Option<&Path>, pem: &[u8]) -> Result<reqwest::Client, ProbeError> {
    ensure_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .user_agent(concat!(
            "deploy-agent/",
            env!("CARGO_PKG_VERSION"),
            " health probe"
        ));
    if let Some(path) = ca_file {
        let no_cert = || ProbeError::CaPem {
            path: path.to_path_buf(),
        };
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|_| no_cert())?;
        if certs.is_empty() {
            return Err(no_cert());
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| ProbeError::Http(error_chain(&e)))
}

/// Finds the cause operators care about in a reqwest error's chain: a TLS
/// verdict, a refused connection; else the whole chain as text.
fn classify(err: reqwest::Error) -> ProbeError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return from_rustls(tls);
        }
        let io = e.downcast_ref::<io::Error>();
        if io.is_some_and(|io| io.kind() == io::ErrorKind::ConnectionRefused) {
            return ProbeError::Refused;
        }
        // io::Error::source() skips the error it wraps (hyper-rustls wraps
        // the handshake's io::Error, which wraps rustls's), so step into it.
        cause = match io.and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    ProbeError::Http(error_chain(&err))
}

fn from_rustls(err: &rustls::Error) -> ProbeError {
    match err {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            ProbeError::Untrusted(
                "unknown issuer (self-signed, or its CA is neither a system root nor in ca_file)"
                    .to_string(),
            )
        }
        rustls::Error::InvalidCertificate(e) => ProbeError::Untrusted(e.to_string()),
        other => ProbeError::Tls(other.to_string()),
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = e.source();
    }
    text
}

/// `3s`, `1500ms`, `5m`, `1h`: durations as the spec writes them.
pub(crate) fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs, d.subsec_nanos()) {
        (0, 0) => "0s".to_string(),
        (s, 0) if s % 3600 == 0 => format!("{}h", s / 3600),
        (s, 0) if s % 60 == 0 => format!("{}m", s / 60),
        (s, 0) => format!("{s}s"),
        _ => format!("{}ms", d.as_millis()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_exit_codes() {
        assert_eq!(
            interpret_podman(Some(0), "", "").unwrap(),
            "podman: healthy"
        );
        let e = interpret_podman(Some(1), "unhealthy\n", "").unwrap_err();
        assert_eq!(e.to_string(), "podman healthcheck: unhealthy");
        let e = interpret_podman(
            Some(125),
            "",
            "Error: no container with name or ID \"x\" found\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "podman healthcheck run failed (exit 125): Error: no container with name or ID \"x\" found"
        );
        let e = interpret_podman(None, "", "").unwrap_err();
        assert_eq!(e.to_string(), "podman healthcheck run failed: no message");
        // Podman's warnings (cgroup v1 on every command) come first; the
        // error is what matters.
        let e = interpret_podman(
            Some(125),
            "",
            "time=\"2026-11-27T11:20:56Z\" level=warning msg=\"Using cgroups-v1 which is deprecated\"\n\
             Error: no container with name or ID \"x\" found: no such container\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "podman healthcheck run failed (exit 125): Error: no container with name or ID \"x\" found: no such container"
        );
        let e = interpret_podman(Some(2), "", "time=\"t\" level=warning msg=\"w\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "podman healthcheck run failed (exit 2): time=\"t\" level=warning msg=\"w\""
        );
    }

    #[test]
    fn durations_read_like_the_spec() {
        assert_eq!(fmt_duration(Duration::from_secs(3)), "3s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(fmt_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(fmt_duration(Duration::ZERO), "0s");
        assert_eq!(fmt_duration(Duration::from_secs(90)), "90s");
        assert_eq!(fmt_duration(Duration::from_secs(300)), "5m");
        assert_eq!(fmt_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(
            ProbeError::Timeout(Duration::from_secs(3)).to_string(),
            "timed out after 3s"
        );
    }

    #[tokio::test]
    async fn cmd_checks_are_not_run_by_the_agent() {
        let r = probe(
            &HealthCheck::Cmd(vec!["true".into()]),
            Duration::from_secs(1),
        )
        .await;
        assert!(!r.ok);
        assert!(r.detail.contains("run by Podman"), "{}", r.detail);
    }

    #[tokio::test]
    async fn unreadable_ca_file_is_reported() {
        let check = HealthCheck::Http {
            url: "https://127.0.0.1:9/".into(),
            expect_status: 200,
            ca_file: Some("/nonexistent/ca.pem".into()),
        };
        let r = probe(&check, Duration::from_secs(2)).await;
        assert!(!r.ok);
        assert!(
            r.detail
                .starts_with("ca_file /nonexistent/ca.pem: cannot read: "),
            "{}",
            r.detail
        );
    }

    /// Probes `ca_file` on a thread of its own, failing (not hanging) the
    /// test if the probe has not returned within 10 s.
    fn probe_with_ca_file(path: &Path) -> ProbeResult {
        let check = HealthCheck::Http {
            url: "https://127.0.0.1:9/".into(),
            expect_status: 200,
            ca_file: Some(path.to_path_buf()),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let r = rt.block_on(probe(&check, Duration::from_secs(2)));
            let _ = tx.send(r);
            // A read still blocked in the pool must not hold this thread.
            rt.shutdown_background();
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the probe did not return within 10 s")
    }

    #[test]
    fn a_fifo_ca_file_fails_the_probe_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("ca.pem");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let r = probe_with_ca_file(&fifo);
        assert!(!r.ok);
        assert_eq!(
            r.detail,
            format!(
                "ca_file {}: is not a regular file: it is a FIFO (named pipe), which could block a reader forever",
                fifo.display()
            )
        );
        assert!(r.elapsed < Duration::from_secs(1), "{:?}", r.elapsed);
    }

    #[test]
    fn a_device_ca_file_fails_the_probe_at_once() {
        let r = probe_with_ca_file(Path::new("/dev/zero"));
        assert!(!r.ok);
        assert_eq!(
            r.detail,
            "ca_file /dev/zero: is not a regular file: it is a character device"
        );
        assert!(r.elapsed < Duration::from_secs(1), "{:?}", r.elapsed);
    }

    #[tokio::test]
    async fn ca_file_without_a_certificate_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let check = HealthCheck::Http {
            url: "https://127.0.0.1:9/".into(),
            expect_status: 200,
            ca_file: Some(path.clone()),
        };
        let r = probe(&check, Duration::from_secs(2)).await;
        assert!(!r.ok);
        assert_eq!(
            r.detail,
            format!("ca_file {} holds no usable PEM certificate", path.display())
        );
    }
}
