//! Parsers for the scalar value syntaxes of the spec format: names,
//! durations, sizes, ports, mounts, and the "safe for a unit file" check.
//!
//! Each returns `Err(message)` in operator words; the caller adds the place.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::model::{Mount, MountSource, PortMapping, Proto};

/// `^[a-z0-9][a-z0-9_.-]{0,62}$`, the rule for container/network/volume names.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.' || b == b'-'
        })
        && name != "."
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        // Escaped: "w\u{435}b" shows the Cyrillic letter that "wеb" hides.
        Err(format!(
            "invalid name \"{}\": names are 1-63 characters of a-z, 0-9, '_', '.', '-', start with a letter or digit, and contain no '..'",
            name.escape_default()
        ))
    }
}

/// Characters that must never reach a unit file: control characters (newline,
/// CR, NUL, tab, ESC, ...) and invisible Unicode formatting (bidi overrides,
/// zero-width characters) that would make a value read differently than it is.
pub fn check_unit_safe(value: &str) -> Result<(), String> {
    for (i, c) in value.chars().enumerate() {
        let bad = c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{2028}' | '\u{2029}');
        if bad {
            return Err(format!(
                "contains the forbidden character {} at position {}: control characters and invisible formatting characters cannot go into a unit file",
                c.escape_unicode(),
                i + 1
            ));
        }
    }
    Ok(())
}

/// `"500ms"`, `"10s"`, `"5m"`, `"1h"`, and sums like `"1m30s"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || {
        format!("invalid duration {s:?}: use a number with a unit, e.g. \"500ms\", \"10s\", \"5m\", \"1h\" (or \"1m30s\")")
    };
    if s.is_empty() {
        return Err(err());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(err());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" | "min" => Duration::from_secs(n.checked_mul(60).ok_or_else(err)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(err)?),
            _ => return Err(err()),
        };
        total = total.checked_add(part).ok_or_else(err)?;
    }
    if total > Duration::from_secs(30 * 24 * 3600) {
        return Err(format!("duration {s:?} is longer than 30 days"));
    }
    Ok(total)
}

/// A size in bytes: `"200M"`, `"1G"`, `"512K"`, `"1048576"` (K/M/G/T are powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let err = || {
        format!("invalid size {s:?}: use bytes or a number with K, M, G or T (powers of 1024), e.g. \"200M\"")
    };
    let (digits, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(err()),
            };
            (&s[..i], mult)
        }
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let n: u64 = digits.parse().map_err(|_| err())?;
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))?;
    if bytes == 0 {
        return Err(format!("size {s:?} must be greater than zero"));
    }
    Ok(bytes)
}

fn parse_port_number(s: &str, what: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) && s.bytes().all(|b| b.is_ascii_digit()) => Ok(n as u16),
        _ => Err(format!("invalid {what} port {s:?}: ports are 1-65535")),
    }
}

/// `"[ip:]host:container[/proto]"`; IPv6 addresses go in brackets: `"[::1]:80:80"`.
pub fn parse_port(s: &str) -> Result<PortMapping, String> {
    let (spec, proto) = match s.rsplit_once('/') {
        Some((spec, "tcp")) => (spec, Proto::Tcp),
        Some((spec, "udp")) => (spec, Proto::Udp),
        Some((_, p)) => {
            return Err(format!(
                "invalid protocol {p:?} in port {s:?}: use tcp or udp"
            ))
        }
        None => (s, Proto::Tcp),
    };
    let (ip, rest) = if let Some(after) = spec.strip_prefix('[') {
        let (ip, rest) = after.split_once("]:").ok_or_else(|| {
            format!("invalid port {s:?}: an IPv6 address is written [addr]:host:container")
        })?;
        ip.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("invalid IPv6 address {ip:?} in port {s:?}"))?;
        (Some(format!("[{ip}]")), rest)
    } else {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.len() {
            2 => (None, spec),
            3 => {
                parts[0]
                    .parse::<std::net::Ipv4Addr>()
                    .map_err(|_| format!("invalid IP address {:?} in port {s:?}", parts[0]))?;
                (Some(parts[0].to_string()), &spec[parts[0].len() + 1..])
            }
            _ => {
                return Err(format!(
                    "invalid port {s:?}: write \"[ip:]host:container[/proto]\", e.g. \"8080:80\" or \"127.0.0.1:8080:80/tcp\""
                ))
            }
        }
    };
    let (host, container) = rest
        .split_once(':')
        .ok_or_else(|| format!("invalid port {s:?}: write \"[ip:]host:container[/proto]\""))?;
    Ok(PortMapping {
        ip,
        host: parse_port_number(host, "host")?,
        container: parse_port_number(container, "container")?,
        proto,
    })
}

/// An absolute, normalised path with no `..`: what a host path or a mount target must be.
pub fn check_abs_path(p: &str) -> Result<PathBuf, String> {
    let path = Path::new(p);
    if !path.is_absolute() {
        return Err(format!("path {p:?} must be absolute"));
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("path {p:?} must not contain '..'"));
    }
    if p.contains(':') || p.contains(',') {
        return Err(format!("path {p:?} must not contain ':' or ','"));
    }
    Ok(path.to_path_buf())
}

/// Mount options Podman accepts on `-v`.
pub const MOUNT_OPTIONS: &[&str] = &[
    "ro", "rw", "z", "Z", "U", "O", "copy", "nocopy", "noexec", "exec", "nosuid", "suid", "nodev",
    "dev", "bind", "rbind", "shared", "rshared", "slave", "rslave", "private", "rprivate", "idmap",
];

/// `"SOURCE:TARGET[:OPTIONS]"`: SOURCE a volume name or an absolute host path.
pub fn parse_mount(s: &str) -> Result<Mount, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, target, opts) = match parts.as_slice() {
        [src, target] => (*src, *target, None),
        [src, target, opts] => (*src, *target, Some(*opts)),
        _ => {
            return Err(format!(
                "invalid volume {s:?}: write \"SOURCE:TARGET[:OPTIONS]\", SOURCE a declared volume or an absolute host path"
            ))
        }
    };
    let source = if src.starts_with('/') || src.starts_with('%') {
        MountSource::Host(check_host_path(src)?)
    } else {
        check_name(src).map_err(|e| format!("volume {s:?}: {e}"))?;
        MountSource::Volume(src.to_string())
    };
    let target = check_abs_path(target)?.to_string_lossy().into_owned();
    let mut options = Vec::new();
    if let Some(opts) = opts {
        for o in opts.split(',') {
            if !MOUNT_OPTIONS.contains(&o) {
                let hint = super::diag::did_you_mean(o, MOUNT_OPTIONS.iter().copied())
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                return Err(format!("unknown mount option {o:?} in {s:?}{hint}"));
            }
            options.push(o.to_string());
        }
        if options.iter().any(|o| o == "ro") && options.iter().any(|o| o == "rw") {
            return Err(format!("volume {s:?} is both ro and rw"));
        }
    }
    Ok(Mount {
        source,
        target,
        options,
    })
}

/// Environment variable names: `^[A-Za-z_][A-Za-z0-9_]*$`.
pub fn check_env_name(k: &str) -> Result<(), String> {
    let ok = k
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid environment variable name {k:?}: use letters, digits and '_', not starting with a digit"
        ))
    }
}

/// Label keys: printable, no whitespace, no '='.
pub fn check_label_key(k: &str) -> Result<(), String> {
    // The key goes into the unit file (`Label=KEY=VALUE`) like a value does.
    check_unit_safe(k)?;
    if k.is_empty()
        || k.chars()
            .any(|c| c.is_whitespace() || c == '=' || c.is_control())
    {
        Err(format!(
            "invalid label key {k:?}: no spaces, '=' or control characters"
        ))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------- issue-12 keys
//
// Checks of the generic keys (`keys.rs`). Each takes one string: an element
// of a list or a value of a table. Values reach the unit file through the
// renderer's escaping; these checks are about meaning, and about what
// Podman would read differently from what the spec says.

/// The systemd specifiers a path-valued key may start with (per-user
/// directories of the agent's user): `%h` home, `%t` runtime directory,
/// `%S` state, `%E` configuration, `%C` cache, `%L` logs, and
/// `/run/user/%U` (the uid). Anywhere else a `%` is written as it is.
pub const PATH_SPECIFIERS: &[&str] = &["%h", "%t", "%S", "%E", "%C", "%L", "/run/user/%U"];

/// The specifier prefix `p` starts with, if any (followed by `/` or the end).
pub fn specifier_prefix(p: &str) -> Option<&'static str> {
    PATH_SPECIFIERS.iter().copied().find(|s| {
        p.strip_prefix(s)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// A host path: absolute, or starting with one of [`PATH_SPECIFIERS`].
pub fn check_host_path(p: &str) -> Result<PathBuf, String> {
    match specifier_prefix(p) {
        Some(spec) => {
            let rest = &p[spec.len()..];
            check_abs_path(if rest.is_empty() { "/" } else { rest })
                .map_err(|e| format!("path {p:?}: {e}"))?;
            Ok(PathBuf::from(p))
        }
        None if p.starts_with('%') => Err(format!(
            "path {p:?} starts with a specifier deploy-agent does not expand there: a host path may start with {}",
            PATH_SPECIFIERS.join(", ")
        )),
        None => check_abs_path(p),
    }
}

/// [`check_host_path`] as a key's check.
pub fn check_host_file(p: &str) -> Result<(), String> {
    check_host_path(p).map(|_| ())
}

/// One word without spaces.
pub fn check_word(s: &str) -> Result<(), String> {
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        return Err(format!(
            "invalid value {s:?}: it must be non-empty and contain no spaces"
        ));
    }
    Ok(())
}

/// `NET_ADMIN`, `CAP_NET_ADMIN`, `ALL`.
pub fn check_capability(s: &str) -> Result<(), String> {
    let name = s.strip_prefix("CAP_").unwrap_or(s);
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!("invalid capability {s:?}: write it in capitals, e.g. \"NET_ADMIN\", \"CAP_SYS_TIME\" or \"ALL\""));
    }
    Ok(())
}

/// `HOST[:CONTAINER][:PERMS]`.
pub fn check_device(s: &str) -> Result<(), String> {
    let parts: Vec<&str> = s.split(':').collect();
    let err =
        |why: &str| format!("invalid device {s:?}: {why}; write \"HOST[:CONTAINER][:PERMS]\"");
    let perms = |p: &str| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| "rwm".contains(c));
    check_host_path(parts[0]).map_err(|e| err(&e))?;
    match parts.as_slice() {
        [_] => Ok(()),
        [_, x] if perms(x) => Ok(()),
        [_, c] | [_, c, _] if !c.starts_with('/') => {
            Err(err("the container path must be absolute"))
        }
        [_, _] => Ok(()),
        [_, _, p] if perms(p) => Ok(()),
        [_, _, _] => Err(err("PERMS are letters of r, w and m")),
        _ => Err(err("too many ':'")),
    }
}

/// `/path[:options]`.
pub fn check_tmpfs(s: &str) -> Result<(), String> {
    let (path, opts) = s.split_once(':').unwrap_or((s, ""));
    check_abs_path(path).map_err(|e| format!("invalid tmpfs {s:?}: {e}"))?;
    if opts.chars().any(char::is_whitespace) {
        return Err(format!("invalid tmpfs {s:?}: options without spaces"));
    }
    Ok(())
}

/// `type=bind,source=...,target=...`: Podman's `--mount`.
pub fn check_typed_mount(s: &str) -> Result<(), String> {
    let err = |why: &str| format!("invalid mount {s:?}: {why}");
    let mut ty = None;
    let mut target = false;
    for part in s.split(',') {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        match k {
            "type" => ty = Some(v),
            "target" | "dst" | "destination" => {
                check_abs_path(v).map_err(|e| err(&e))?;
                target = true
            }
            "source" | "src" if v.starts_with('/') || v.starts_with('%') => {
                check_host_path(v).map_err(|e| err(&e))?;
            }
            "" => return Err(err("an empty option")),
            _ => {}
        }
    }
    match ty {
        None => Err(err(
            "it needs a type=, e.g. \"type=bind,source=/srv/x,target=/x\"",
        )),
        Some("bind" | "volume" | "tmpfs" | "image" | "devpts" | "glob" | "ramfs" | "artifact")
            if target =>
        {
            Ok(())
        }
        Some("bind" | "volume" | "tmpfs" | "image" | "devpts" | "glob" | "ramfs" | "artifact") => {
            Err(err("it needs a target="))
        }
        Some(t) => Err(err(&format!("unknown type {t:?}"))),
    }
}

/// `keep-id[:uid=..,gid=..]`, `auto[:...]`, `host`, `nomap`, `private`, `ns:PATH`.
pub fn check_userns(s: &str) -> Result<(), String> {
    let (mode, rest) = s.split_once(':').unwrap_or((s, ""));
    let ok = match mode {
        "keep-id" | "auto" => true,
        "host" | "nomap" | "private" => rest.is_empty(),
        "ns" => rest.starts_with('/'),
        _ => false,
    };
    if !ok || s.chars().any(char::is_whitespace) {
        return Err(format!("invalid userns {s:?}: one of \"keep-id\" (\"keep-id:uid=1000,gid=1000\"), \"auto\", \"host\", \"nomap\", \"private\", \"ns:PATH\""));
    }
    Ok(())
}

/// `CONTAINER:HOST:COUNT` (Podman's `+`/`@` flags allowed).
pub fn check_id_map(s: &str) -> Result<(), String> {
    let parts: Vec<&str> = s.split(':').collect();
    let num = |p: &str| {
        let p = p.trim_start_matches(['+', '@']);
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
    };
    if parts.len() == 3 && parts.iter().all(|p| num(p)) {
        Ok(())
    } else {
        Err(format!(
            "invalid id mapping {s:?}: write CONTAINER:HOST:COUNT, e.g. \"0:1000:1\""
        ))
    }
}

/// A host name or DNS name: letters, digits, `-`, `.`, `_`.
pub fn check_hostname(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid name {s:?}: letters, digits, '-', '.' and '_', at most 253"
        ))
    }
}

pub fn check_ip(s: &str) -> Result<(), String> {
    s.parse::<std::net::IpAddr>()
        .map(|_| ())
        .map_err(|_| format!("invalid IP address {s:?}"))
}

/// `HOST:IP` (`host-gateway` for the host).
pub fn check_extra_host(s: &str) -> Result<(), String> {
    let err = || format!("invalid host entry {s:?}: write \"HOST:IP\", e.g. \"db.local:10.0.0.5\"");
    let (host, ip) = s.split_once(':').ok_or_else(err)?;
    check_hostname(host).map_err(|_| err())?;
    if ip == "host-gateway" || check_ip(ip).is_ok() {
        Ok(())
    } else {
        Err(err())
    }
}

pub const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

pub fn check_ulimit_name(s: &str) -> Result<(), String> {
    if ULIMITS.contains(&s) {
        return Ok(());
    }
    let hint = super::diag::did_you_mean(s, ULIMITS.iter().copied())
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    Err(format!("unknown ulimit {s:?}{hint}"))
}

/// `SOFT[:HARD]`, each a number or `-1` / `unlimited`.
pub fn check_ulimit(s: &str) -> Result<(), String> {
    let n = |p: &str| {
        p == "-1" || p == "unlimited" || (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let ok = match s.split_once(':') {
        Some((a, b)) => n(a) && n(b),
        None => n(s),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid ulimit {s:?}: write \"SOFT[:HARD]\", numbers or -1"
        ))
    }
}

pub fn check_sysctl_key(s: &str) -> Result<(), String> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
    {
        Ok(())
    } else {
        Err(format!("invalid sysctl name {s:?}"))
    }
}

/// An option name: letters, digits, `_`, `-`, `.`.
pub fn check_opt_key(s: &str) -> Result<(), String> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Ok(())
    } else {
        Err(format!(
            "invalid option name {s:?}: letters, digits, '.', '_' and '-'"
        ))
    }
}

/// `SIGTERM`, `TERM`, `SIGRTMIN+3`, `15`.
pub fn check_signal(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'+');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid signal {s:?}: e.g. \"SIGTERM\", \"SIGINT\" or \"15\""
        ))
    }
}

pub fn check_container_path(s: &str) -> Result<(), String> {
    check_abs_path(s).map(|_| ())
}

pub fn check_env_name_ok(s: &str) -> Result<(), String> {
    check_env_name(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["web", "senex_net", "celery-worker", "a", "0db", "x.y"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "Web",
            "-web",
            "_x",
            "a/b",
            "..",
            "a..b",
            "a b",
            "wéb",
            "web\n",
            &long,
            ".x",
            "we\u{202E}b",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"a".repeat(63)).is_ok());
        assert!(check_name("w\u{435}b")
            .unwrap_err()
            .starts_with("invalid name \"w\\u{435}b\""));
    }

    #[test]
    fn unit_safe() {
        assert!(check_unit_safe("plain value with % and \"quotes\" and \\").is_ok());
        for bad in [
            "a\nb",
            "a\rb",
            "a\0b",
            "a\tb",
            "\u{1b}[0m",
            "a\u{202E}b",
            "a\u{200B}b",
        ] {
            assert!(check_unit_safe(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in [
            "",
            "10",
            "s",
            "-1s",
            "1.5s",
            "10 s",
            "10x",
            "1d",
            "99999999999999999999s",
            "1000h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("200M"), Ok(200 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in [
            "12Q",
            "-1",
            "0",
            "0M",
            "",
            "M",
            "1.5G",
            "1 G",
            "200MB",
            "99999999999T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert!(parse_size("12Q").unwrap_err().contains("K, M, G"));
    }

    #[test]
    fn ports() {
        let p = parse_port("5432:5432").unwrap();
        assert_eq!(
            (p.ip, p.host, p.container, p.proto),
            (None, 5432, 5432, Proto::Tcp)
        );
        let p = parse_port("127.0.0.1:8000:8000").unwrap();
        assert_eq!(p.ip.as_deref(), Some("127.0.0.1"));
        let p = parse_port("[::1]:53:53/udp").unwrap();
        assert_eq!((p.ip.as_deref(), p.proto), (Some("[::1]"), Proto::Udp));
        for bad in [
            "80",
            "0:80",
            "80:70000",
            "a:80",
            "1.2.3:80:80",
            "80:80/sctp",
            "[::1:80:80",
            "1:2:3:4",
            "80:80\n",
        ] {
            assert!(parse_port(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mounts() {
        let m = parse_mount("postgres_data:/var/lib/postgresql/data:Z").unwrap();
        assert_eq!(m.source, MountSource::Volume("postgres_data".into()));
        assert_eq!(m.options, vec!["Z"]);
        let m = parse_mount("/etc/x.conf:/etc/y.conf:ro,Z").unwrap();
        assert_eq!(m.source, MountSource::Host("/etc/x.conf".into()));
        assert!(m.read_only());
        for bad in [
            "data",
            "/etc/../shadow:/x",
            "data:relative",
            "data:/x:rx",
            "Data:/x",
            "../x:/y",
            "data:/x:ro,rw",
            "a:b:c:d",
        ] {
            assert!(parse_mount(bad).is_err(), "{bad:?}");
        }
        assert!(parse_mount("data:/x:rx")
            .unwrap_err()
            .contains("did you mean"));
    }

    #[test]
    fn env_and_labels() {
        assert!(check_env_name("POSTGRES_DB").is_ok());
        assert!(check_env_name("_x1").is_ok());
        for bad in ["1A", "A-B", "", "A B", "A=B"] {
            assert!(check_env_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_label_key("io.example/app").is_ok());
        assert!(check_label_key("a b").is_err());
        assert!(check_label_key("a\u{202E}b").is_err());
        assert!(check_label_key("a\u{200B}b").is_err());
    }
}
