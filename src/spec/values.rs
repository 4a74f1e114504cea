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
    let source = if src.starts_with('/') {
        MountSource::Host(check_abs_path(src)?)
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
