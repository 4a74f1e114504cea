//! Plain `http://` probes: one `GET` over a fresh TCP connection, read up
//! to the end of the response head, then the connection is closed.
//!
//! This is what a health probe needs of HTTP and no more: no pool, no
//! redirects, no proxies, no body. The response head is parsed by
//! `httparse`, the parser hyper itself uses. `https://` URLs and URLs with
//! credentials go through reqwest ([`super::probe`]) instead.
//!
//! Why not reqwest for plain HTTP too: at 1,000 services probed every 10 s
//! its client stack (tower layers, the pool, a dispatch task and channel
//! per request) cost about 50 µs of CPU per probe, as much as the kernel's
//! own work for the connection, and put an idle daemon over 1 % of a core
//! (benches/RESULTS.md section 5).

use std::io;
use std::net::SocketAddr;

use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::probe::ProbeError;

/// Largest response head read; hyper's default limit is larger, but a
/// health endpoint that sends more than this before its status is broken.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Most header lines accepted in a response head (hyper's default).
const MAX_HEADERS: usize = 100;

/// A URL this module can probe: `http://`, no user or password in it.
pub fn plain(url: &str) -> Option<Url> {
    let url = Url::parse(url).ok()?;
    let plain = url.scheme() == "http" && url.username().is_empty() && url.password().is_none();
    plain.then_some(url)
}

/// The status of `GET url` (a URL [`plain`] accepted).
pub async fn status(url: &Url) -> Result<u16, ProbeError> {
    let mut stream = connect(url).await?;
    stream
        .write_all(request(url).as_bytes())
        .await
        .map_err(|e| ProbeError::Http(format!("sending the request: {e}")))?;
    read_status(&mut stream).await
}

async fn connect(url: &Url) -> Result<TcpStream, ProbeError> {
    let port = url.port_or_known_default().unwrap_or(80);
    let connected = match url.host() {
        Some(url::Host::Ipv4(ip)) => TcpStream::connect(SocketAddr::from((ip, port))).await,
        Some(url::Host::Ipv6(ip)) => TcpStream::connect(SocketAddr::from((ip, port))).await,
        Some(url::Host::Domain(name)) => TcpStream::connect((name, port)).await,
        None => return Err(ProbeError::Http(format!("{url}: no host"))),
    };
    connected.map_err(|source| match source.kind() {
        io::ErrorKind::ConnectionRefused => ProbeError::Refused,
        _ => ProbeError::Connect {
            addr: format!("{}:{port}", url.host_str().unwrap_or_default()),
            source,
        },
    })
}

/// The request: the URL's path and query, its host (and port when the URL
/// names one) as `Host`, and `Connection: close`.
fn request(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    let host = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: deploy-agent/{} health probe\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Reads until a final (non-1xx) response head is complete; its status.
async fn read_status(stream: &mut TcpStream) -> Result<u16, ProbeError> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        match parse(&head)? {
            Parsed::Final(status) => return Ok(status),
            Parsed::Interim(len) => {
                head.drain(..len);
                continue;
            }
            Parsed::Partial if head.len() > MAX_HEAD_BYTES => {
                return Err(ProbeError::Http(format!(
                    "response head larger than {} KiB",
                    MAX_HEAD_BYTES / 1024
                )));
            }
            Parsed::Partial => {}
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| ProbeError::Http(format!("reading the response: {e}")))?;
        if n == 0 {
            return Err(ProbeError::Http(match head.is_empty() {
                true => "connection closed without a response".to_string(),
                false => "connection closed in the middle of the response head".to_string(),
            }));
        }
        head.extend_from_slice(&chunk[..n]);
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Partial,
    /// A 1xx head of this many bytes, to be skipped.
    Interim(usize),
    Final(u16),
}

fn parse(head: &[u8]) -> Result<Parsed, ProbeError> {
    if head.is_empty() {
        return Ok(Parsed::Partial);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Partial) => Ok(Parsed::Partial),
        Ok(httparse::Status::Complete(len)) => match response.code.unwrap_or(0) {
            // 101 would switch protocols, which a GET without Upgrade never asks.
            code @ 100..=199 if code != 101 => Ok(Parsed::Interim(len)),
            code => Ok(Parsed::Final(code)),
        },
        Err(e) => Err(ProbeError::Http(format!("invalid HTTP response: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_without_credentials_is_taken() {
        assert!(plain("http://127.0.0.1:8080/health").is_some());
        assert!(plain("http://localhost/").is_some());
        assert!(plain("https://127.0.0.1/").is_none());
        assert!(plain("http://user:pw@127.0.0.1/").is_none());
        assert!(plain("http://user@127.0.0.1/").is_none());
        assert!(plain("not a url").is_none());
    }

    #[test]
    fn the_request_names_path_query_and_host() {
        let r = request(&plain("http://127.0.0.1:8080/a/b?x=1&y=2#frag").unwrap());
        assert!(
            r.starts_with("GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"),
            "{r}"
        );
        assert!(r.ends_with("Connection: close\r\n\r\n"), "{r}");
        let r = request(&plain("http://[::1]/").unwrap());
        assert!(r.starts_with("GET / HTTP/1.1\r\nHost: [::1]\r\n"), "{r}");
        // The scheme's own port is not written, as browsers and curl do.
        let r = request(&plain("http://example.test:80").unwrap());
        assert!(
            r.starts_with("GET / HTTP/1.1\r\nHost: example.test\r\n"),
            "{r}"
        );
    }

    #[test]
    fn heads_parse_to_a_status_and_interim_ones_are_skipped() {
        assert_eq!(parse(b"").unwrap(), Parsed::Partial);
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nA: b\r\n").unwrap(),
            Parsed::Partial
        );
        assert_eq!(
            parse(b"HTTP/1.1 503 Busy\r\nA: b\r\n\r\nbody").unwrap(),
            Parsed::Final(503)
        );
        assert_eq!(parse(b"HTTP/1.0 204 \r\n\r\n").unwrap(), Parsed::Final(204));
        let early = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n";
        assert_eq!(parse(early).unwrap(), Parsed::Interim(early.len()));
        let e = parse(b"SSH-2.0-OpenSSH_9.2\r\n").unwrap_err();
        assert!(e.to_string().starts_with("invalid HTTP response: "), "{e}");
    }
}
