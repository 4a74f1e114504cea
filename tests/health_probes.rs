//! The agent-side health probes against real servers on 127.0.0.1: a tiny
//! HTTP/1.1 server whose answer can be switched, the same over TLS with a
//! self-signed certificate made at test time, plain TCP listeners, and a
//! server that accepts but never answers.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deploy_agent::health::{ensure_crypto_provider, probe, probe_container, ProbeResult};
use deploy_agent::spec::model::HealthCheck;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::rustls;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A server on 127.0.0.1 answering every request with the current `status`,
/// over TLS when `tls` is given.
struct Server {
    port: u16,
    status: Arc<AtomicU16>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let status = Arc::new(AtomicU16::new(200));
        let answer = status.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let status = answer.load(Ordering::SeqCst);
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            // A client that does not trust us ends the handshake.
                            if let Ok(stream) = acceptor.accept(stream).await {
                                respond(stream, status).await;
                            }
                        }
                        None => respond(stream, status).await,
                    }
                });
            }
        });
        Server { port, status, task }
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Stops accepting and closes the listening socket. The port stays
    /// bound (not listening) while the returned socket lives, so that no
    /// other process on the host can take it meanwhile and answer.
    async fn shut_down(self) -> TcpSocket {
        self.task.abort();
        let _ = self.task.await;
        let held = TcpSocket::new_v4().unwrap();
        held.set_reuseaddr(true).unwrap();
        held.bind(([127, 0, 0, 1], self.port).into()).unwrap();
        held
    }
}

/// Reads a request head (up to its blank line); `None` if the client
/// closed or failed first.
async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    Some(head)
}

/// Reads one request head and answers it, then closes the connection.
async fn respond(mut stream: impl AsyncRead + AsyncWrite + Unpin, status: u16) {
    if read_head(&mut stream).await.is_none() {
        return;
    }
    let reply = format!(
        "HTTP/1.1 {status} Whatever\r\nContent-Length: 2\r\nLocation: /elsewhere\r\nConnection: close\r\n\r\nok"
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn http(url: String, expect_status: u16, ca_file: Option<PathBuf>) -> HealthCheck {
    HealthCheck::Http {
        url,
        expect_status,
        ca_file,
    }
}

fn assert_ok(r: &ProbeResult, detail: &str) {
    assert!(r.ok, "expected ok, got: {}", r.detail);
    assert_eq!(r.detail, detail);
}

fn assert_fails(r: &ProbeResult, detail_starts: &str) {
    assert!(!r.ok, "expected a failure, got ok: {}", r.detail);
    assert!(
        r.detail.starts_with(detail_starts),
        "detail {:?} does not start with {:?}",
        r.detail,
        detail_starts
    );
}

/// A port nothing listens on: bound, not listening, while the returned
/// socket lives (a released port could be taken by another process).
fn closed_port() -> (u16, TcpSocket) {
    let held = TcpSocket::new_v4().unwrap();
    held.bind(([127, 0, 0, 1], 0).into()).unwrap();
    (held.local_addr().unwrap().port(), held)
}

#[tokio::test]
async fn http_probe_follows_the_server_healthy_then_500_then_gone() {
    let server = Server::start(None).await;
    let check = http(
        format!("http://127.0.0.1:{}/health/", server.port),
        200,
        None,
    );

    assert_ok(&probe(&check, TIMEOUT).await, "HTTP 200");

    server.answer(500);
    assert_fails(&probe(&check, TIMEOUT).await, "HTTP 500");
    assert_eq!(
        probe(&check, TIMEOUT).await.detail,
        "HTTP 500 (expected 200)"
    );

    let _held = server.shut_down().await;
    let r = probe(&check, TIMEOUT).await;
    assert_fails(&r, "connection refused");
    assert_eq!(r.detail, "connection refused");
}

#[tokio::test]
async fn status_is_compared_exactly_and_redirects_are_not_followed() {
    let server = Server::start(None).await;
    let url = format!("http://127.0.0.1:{}/", server.port);

    server.answer(204);
    assert_fails(
        &probe(&http(url.clone(), 200, None), TIMEOUT).await,
        "HTTP 204 (expected 200)",
    );
    assert_ok(
        &probe(&http(url.clone(), 204, None), TIMEOUT).await,
        "HTTP 204",
    );

    server.answer(301);
    assert_fails(
        &probe(&http(url.clone(), 200, None), TIMEOUT).await,
        "HTTP 301 (expected 200)",
    );
    server.shut_down().await;
}

/// A server on 127.0.0.1 that answers its one connection with `reply`,
/// written in pieces of at most `piece` bytes, then closes it. Its task
/// gives back the request it read.
async fn one_reply(reply: Vec<u8>, piece: usize) -> (u16, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let head = read_head(&mut stream).await.unwrap_or_default();
        for part in reply.chunks(piece.max(1)) {
            let _ = stream.write_all(part).await;
            let _ = stream.flush().await;
        }
        let _ = stream.shutdown().await;
        String::from_utf8_lossy(&head).into_owned()
    });
    (port, task)
}

#[tokio::test]
async fn plain_http_sends_path_query_and_host_and_reads_a_head_in_pieces() {
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
    let (port, server) = one_reply(reply, 3).await;
    let url = format!("http://localhost:{port}/health/ready?deep=1#top");
    assert_ok(&probe(&http(url, 200, None), TIMEOUT).await, "HTTP 200");
    let request = server.await.unwrap();
    assert!(
        request.starts_with(&format!(
            "GET /health/ready?deep=1 HTTP/1.1\r\nHost: localhost:{port}\r\n"
        )),
        "{request}"
    );
    assert!(request.contains("\r\nConnection: close\r\n"), "{request}");
}

#[tokio::test]
async fn plain_http_skips_interim_heads_and_names_broken_answers() {
    let cases: [(&[u8], Result<&str, &str>); 5] = [
        (
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            Ok("HTTP 204"),
        ),
        (b"SSH-2.0-OpenSSH_9.2p1\r\n", Err("invalid HTTP response: ")),
        (b"", Err("connection closed without a response")),
        (
            b"HTTP/1.1 200 OK\r\nContent-",
            Err("connection closed in the middle of the response head"),
        ),
        (b"", Err("response head larger than 64 KiB")),
    ];
    for (i, (reply, want)) in cases.into_iter().enumerate() {
        let mut reply = reply.to_vec();
        if i == 4 {
            // A head past the limit: one header of 70 KiB.
            reply = b"HTTP/1.1 200 OK\r\nX-Padding: ".to_vec();
            reply.resize(70 * 1024, b'a');
        }
        let (port, server) = one_reply(reply, 1000).await;
        let check = http(format!("http://127.0.0.1:{port}/"), 204, None);
        let r = probe(&check, TIMEOUT).await;
        match want {
            Ok(detail) => assert_ok(&r, detail),
            Err(detail) => assert_fails(&r, detail),
        }
        server.abort();
    }
}

/// A self-signed certificate for 127.0.0.1 and a TLS acceptor serving it;
/// the certificate's PEM is written to `dir/name`.
fn self_signed(dir: &std::path::Path, name: &str) -> (tokio_rustls::TlsAcceptor, PathBuf) {
    ensure_crypto_provider();
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let pem_path = dir.join(name);
    std::fs::write(&pem_path, cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), pem_path)
}

#[tokio::test]
async fn https_self_signed_is_refused_unless_ca_file_trusts_it() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, ca) = self_signed(dir.path(), "server.pem");
    let (_, other_ca) = self_signed(dir.path(), "other.pem");
    let server = Server::start(Some(acceptor)).await;
    let url = format!("https://127.0.0.1:{}/health/", server.port);

    // System roots only: refused.
    let r = probe(&http(url.clone(), 200, None), TIMEOUT).await;
    assert_fails(&r, "certificate not trusted: unknown issuer");

    // Another self-signed certificate as ca_file does not help (it has the
    // same subject, so rustls finds it and then rejects the signature).
    let r = probe(&http(url.clone(), 200, Some(other_ca)), TIMEOUT).await;
    assert_fails(&r, "certificate not trusted: ");

    // The server's own certificate as ca_file: trusted.
    assert_ok(
        &probe(&http(url.clone(), 200, Some(ca.clone())), TIMEOUT).await,
        "HTTP 200",
    );

    // And the status still counts over TLS.
    server.answer(503);
    assert_fails(
        &probe(&http(url, 200, Some(ca)), TIMEOUT).await,
        "HTTP 503 (expected 200)",
    );
    server.shut_down().await;
}

#[tokio::test]
async fn tcp_probe_open_and_closed_ports() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = listener.local_addr().unwrap();
    let r = probe(
        &HealthCheck::Tcp {
            addr: open.to_string(),
        },
        TIMEOUT,
    )
    .await;
    assert_ok(&r, &format!("connected to {open}"));

    let (port, _held) = closed_port();
    let closed = format!("127.0.0.1:{port}");
    let r = probe(&HealthCheck::Tcp { addr: closed }, TIMEOUT).await;
    assert_fails(&r, "connection refused");
    assert_eq!(r.detail, "connection refused");
    drop(listener);
}

#[tokio::test]
async fn http_probe_times_out_on_a_server_that_never_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and holds every connection, never writes a byte.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let timeout = Duration::from_millis(300);
    let check = http(format!("http://127.0.0.1:{port}/"), 200, None);
    let r = probe(&check, timeout).await;
    assert_fails(&r, "timed out");
    assert_eq!(r.detail, "timed out after 300ms");
    assert!(r.elapsed >= timeout, "{:?}", r.elapsed);
    assert!(r.elapsed < Duration::from_secs(3), "{:?}", r.elapsed);

    // https against the same silent server times out in the handshake.
    let check = http(format!("https://127.0.0.1:{port}/"), 200, None);
    assert_eq!(
        probe(&check, Duration::from_secs(1)).await.detail,
        "timed out after 1s"
    );
    silent.abort();
}

#[tokio::test]
async fn probe_container_runs_agent_side_checks_itself() {
    let server = Server::start(None).await;
    let check = http(format!("http://127.0.0.1:{}/", server.port), 200, None);
    // No container of that name is needed for an agent-side check.
    assert_ok(
        &probe_container("no-such-container", &check, TIMEOUT).await,
        "HTTP 200",
    );
    server.shut_down().await;
}

#[tokio::test]
async fn cmd_check_of_a_missing_container_is_a_failure() {
    let check = HealthCheck::Cmd(vec!["true".to_string()]);
    let r = probe_container("deploy-agent-test-no-such-container", &check, TIMEOUT).await;
    assert!(!r.ok, "{}", r.detail);
    // Podman is asked, and says there is no such container; only on a host
    // without Podman (never CI: tests/env/testenv install brings it) is
    // "cannot run podman" the right answer.
    let podman_installed = std::process::Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let want = if podman_installed {
        "podman healthcheck run failed (exit 125): "
    } else {
        "cannot run podman: "
    };
    assert!(r.detail.starts_with(want), "want {want:?}: {}", r.detail);
    if podman_installed {
        assert!(r.detail.contains("no such container"), "{}", r.detail);
    }
}
