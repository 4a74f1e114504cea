//! Compose value syntaxes -> spec value syntaxes: sizes, durations,
//! image references, port and volume short/long forms, commands.
//! Every function returns the spec text or the reason it cannot.

use std::path::{Component, Path, PathBuf};

use super::super::yaml::{Kind, Node, Val};
use crate::spec::values;

/// A Compose byte size (`512m`, `1gb`, `1.5G`, `1048576`) -> spec size
/// text in the largest exact unit (`"512M"`), or bytes.
pub fn size(n: &Node) -> Result<String, String> {
    let s = n
        .str()
        .ok_or_else(|| format!("expected a size, found {}", n.what()))?;
    let lower = s.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("invalid size {s:?}")),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let bytes = (n * mult as f64).round() as u64;
    if bytes == 0 {
        return Err(format!("size {s:?} is zero"));
    }
    Ok(size_text(bytes))
}

pub fn size_text(bytes: u64) -> String {
    for (unit, m) in [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
        if bytes % m == 0 {
            return format!("{}{unit}", bytes / m);
        }
    }
    bytes.to_string()
}

/// A Go duration (`1m30s`, `2.5s`, `500ms`, `1h`) -> spec duration text
/// in whole seconds, or milliseconds when it has a fraction of a second.
pub fn duration(n: &Node) -> Result<String, String> {
    let s = n
        .str()
        .ok_or_else(|| format!("expected a duration, found {}", n.what()))?;
    let mut rest = s.trim();
    let mut ms = 0f64;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: write e.g. \"10s\", \"1m30s\""))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            u => return Err(format!("invalid duration {s:?}: unknown unit {u:?}")),
        };
        ms += num * factor;
        rest = &rest[unit_len..];
    }
    let ms = ms.round() as u64;
    Ok(if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    })
}

/// A Docker image reference written out in full: Podman resolves short
/// names through its registries configuration (or refuses them), Docker
/// always means Docker Hub. Returns the full name and whether it changed.
pub fn image(s: &str) -> (String, bool) {
    let first = s.split('/').next().unwrap_or("");
    let has_registry =
        s.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        (s.to_string(), false)
    } else if s.contains('/') {
        (format!("docker.io/{s}"), true)
    } else {
        (format!("docker.io/library/{s}"), true)
    }
}

/// `command`/`entrypoint`: a list as is, a string split the way Compose
/// splits it (POSIX shell words: quotes and backslashes, no expansion).
pub fn command(n: &Node) -> Result<Vec<String>, String> {
    match &n.val {
        Val::Seq(items) => items
            .iter()
            .map(|i| scalar_text(i).ok_or_else(|| format!("expected strings, found {}", i.what())))
            .collect(),
        Val::Scalar(s, k) if *k != Kind::Null => {
            shell_words::split(s).map_err(|e| format!("cannot split {s:?} into words: {e}"))
        }
        _ => Err(format!("expected a string or a list, found {}", n.what())),
    }
}

/// A scalar's text (numbers and booleans as written); null is "".
pub fn scalar_text(n: &Node) -> Option<String> {
    match &n.val {
        Val::Scalar(_, Kind::Null) => Some(String::new()),
        Val::Scalar(s, _) => Some(s.clone()),
        _ => None,
    }
}

/// A list of scalars as strings.
pub fn strings(n: &Node) -> Result<Vec<String>, String> {
    match &n.val {
        Val::Seq(items) => items
            .iter()
            .map(|i| {
                scalar_text(i)
                    .ok_or_else(|| format!("expected a list of strings, found {} in it", i.what()))
            })
            .collect(),
        Val::Scalar(s, k) if *k != Kind::Null => Ok(vec![s.clone()]),
        _ => Err(format!("expected a list of strings, found {}", n.what())),
    }
}

/// A mapping of scalars as (key, text) pairs; null values are None.
pub fn string_map(n: &Node) -> Result<Vec<(String, Option<String>)>, String> {
    let m = n
        .map()
        .ok_or_else(|| format!("expected a mapping, found {}", n.what()))?;
    m.iter()
        .map(|(k, v)| match &v.val {
            Val::Scalar(_, Kind::Null) => Ok((k.name.clone(), None)),
            Val::Scalar(s, _) => Ok((k.name.clone(), Some(s.clone()))),
            _ => Err(format!("{}: expected a value, found {}", k.name, v.what())),
        })
        .collect()
}

/// One published port range of the short syntax, expanded.
#[derive(Debug)]
pub struct Ports {
    pub specs: Vec<String>,
}

/// `"[ip:][host[-range]:]container[-range][/proto]"` -> spec port texts.
pub fn port_short(s: &str) -> Result<Ports, String> {
    let (body, proto) = match s.rsplit_once('/') {
        Some((b, p)) => (b, Some(p)),
        None => (s, None),
    };
    let (ip, rest) = match body.strip_prefix('[') {
        Some(after) => {
            let (ip, rest) = after
                .split_once("]:")
                .ok_or_else(|| format!("invalid port {s:?}"))?;
            (Some(format!("[{ip}]")), rest)
        }
        None => {
            let parts: Vec<&str> = body.split(':').collect();
            match parts.len() {
                1 | 2 => (None, body),
                3 => (
                    Some(parts[0].to_string()).filter(|i| !i.is_empty()),
                    &body[parts[0].len() + 1..],
                ),
                _ => return Err(format!("invalid port {s:?}")),
            }
        }
    };
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) if !h.is_empty() => (h, c),
        _ => {
            let c = rest.rsplit(':').next().unwrap_or(rest);
            return Err(format!(
                "port {s:?} publishes container port {c} on a random host port; \
                 a spec needs a fixed one: write \"HOST:{c}\""
            ));
        }
    };
    ports(ip.as_deref(), host, container, proto, s)
}

/// Long syntax `{target, published, host_ip, protocol, mode}`.
pub fn port_long(n: &Node) -> Result<Ports, String> {
    let get = |k: &str| n.get(k).and_then(scalar_text);
    let target = get("target").ok_or("a port needs `target`")?;
    let Some(published) = get("published").filter(|p| !p.is_empty()) else {
        return Err(format!(
            "port {target} is published on a random host port; a spec needs a fixed one: set `published`"
        ));
    };
    let ip = get("host_ip").filter(|i| !i.is_empty()).map(|i| {
        if i.contains(':') {
            format!("[{i}]")
        } else {
            i
        }
    });
    let proto = get("protocol");
    ports(
        ip.as_deref(),
        &published,
        &target,
        proto.as_deref(),
        &target,
    )
}

fn ports(
    ip: Option<&str>,
    host: &str,
    container: &str,
    proto: Option<&str>,
    orig: &str,
) -> Result<Ports, String> {
    let range = |r: &str| -> Result<(u32, u32), String> {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        let p = |x: &str| {
            x.trim()
                .parse::<u32>()
                .map_err(|_| format!("invalid port {orig:?}"))
        };
        Ok((p(a)?, p(b)?))
    };
    let (h0, h1) = range(host)?;
    let (c0, c1) = range(container)?;
    if h1 - h0.min(h1) != c1 - c0.min(c1) {
        return Err(format!(
            "port {orig:?}: the host range and the container range differ in length \
             (Compose would pick one free port of the range; a spec needs a fixed one)"
        ));
    }
    let mut specs = Vec::new();
    for i in 0..=(c1.saturating_sub(c0)) {
        let mut spec = match ip {
            Some(ip) => format!("{ip}:{}:{}", h0 + i, c0 + i),
            None => format!("{}:{}", h0 + i, c0 + i),
        };
        if let Some(p) = proto.filter(|p| *p != "tcp") {
            spec = format!("{spec}/{p}");
        }
        values::parse_port(&spec)?;
        specs.push(spec);
    }
    Ok(Ports { specs })
}

/// Where a volume entry points.
#[derive(Debug, PartialEq)]
pub enum VolSource {
    Named(String),
    Host(PathBuf),
    Anonymous,
}

/// A volume entry of either syntax, before names are mapped.
#[derive(Debug, PartialEq)]
pub struct VolEntry {
    pub source: VolSource,
    pub target: String,
    pub options: Vec<String>,
    /// Options Compose knows that Podman has no use for (dropped, noted).
    pub dropped: Vec<String>,
    /// `type: tmpfs`: a tmpfs entry `/path[:opts]` instead.
    pub tmpfs: Option<String>,
}

/// Mount options that only mean something to Docker Desktop.
const NO_OP_OPTIONS: &[&str] = &["cached", "delegated", "consistent"];

/// `"SOURCE:TARGET[:MODE]"` or `"TARGET"`.
pub fn volume_short(s: &str, base: &Path) -> Result<VolEntry, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, target, mode) = match parts.as_slice() {
        [t] => (None, *t, None),
        [src, t] => (Some(*src), *t, None),
        [src, t, m] => (Some(*src), *t, Some(*m)),
        _ => return Err(format!("invalid volume {s:?}: write SOURCE:TARGET[:MODE]")),
    };
    let mut e = VolEntry {
        source: match src {
            None => VolSource::Anonymous,
            Some(src) => source(src, base)?,
        },
        target: target.to_string(),
        options: vec![],
        dropped: vec![],
        tmpfs: None,
    };
    for o in mode.into_iter().flat_map(|m| m.split(',')) {
        option(&mut e, o)?;
    }
    Ok(e)
}

fn option(e: &mut VolEntry, o: &str) -> Result<(), String> {
    if NO_OP_OPTIONS.contains(&o) {
        e.dropped.push(o.to_string());
    } else if values::MOUNT_OPTIONS.contains(&o) {
        e.options.push(o.to_string());
    } else {
        return Err(format!("unknown volume option {o:?}"));
    }
    Ok(())
}

/// A named volume, or a host path (relative to the project directory,
/// `~` the home directory).
fn source(src: &str, base: &Path) -> Result<VolSource, String> {
    if src.starts_with('/') || src.starts_with('.') || src.starts_with('~') {
        let path = if let Some(rest) = src.strip_prefix('~') {
            let home = std::env::var_os("HOME").ok_or("`~` in a volume, and HOME is not set")?;
            PathBuf::from(home).join(rest.trim_start_matches('/'))
        } else {
            base.join(src)
        };
        Ok(VolSource::Host(normalize(&path)))
    } else {
        Ok(VolSource::Named(src.to_string()))
    }
}

/// `a/./b/../c` -> `a/c`, without touching the file system.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// The long syntax `{type, source, target, read_only, bind, volume, tmpfs}`.
pub fn volume_long(n: &Node, base: &Path) -> Result<VolEntry, String> {
    let get = |k: &str| n.get(k).and_then(scalar_text);
    let kind = get("type").unwrap_or_else(|| "volume".into());
    let target = get("target").ok_or("a volume needs `target`")?;
    let mut e = VolEntry {
        source: VolSource::Anonymous,
        target: target.clone(),
        options: vec![],
        dropped: vec![],
        tmpfs: None,
    };
    let src = get("source").filter(|s| !s.is_empty());
    match (kind.as_str(), src) {
        ("tmpfs", _) => {
            let size = n.get("tmpfs").and_then(|t| t.get("size"));
            let mut spec = target;
            if let Some(size) = size {
                spec = format!("{spec}:size={}", size_bytes(size)?);
            }
            e.tmpfs = Some(spec);
            return Ok(e);
        }
        ("bind", Some(s)) => e.source = source(&s, base)?,
        ("bind", None) => return Err("a bind mount needs `source`".into()),
        ("volume", Some(s)) => e.source = VolSource::Named(s),
        ("volume", None) => {}
        (k, _) => return Err(format!("volume type {k:?} is not supported")),
    }
    if n.get("read_only").and_then(Node::str) == Some("true") {
        e.options.push("ro".into());
    }
    if let Some(b) = n.get("bind") {
        for k in ["selinux", "propagation"] {
            if let Some(o) = b.get(k).and_then(Node::str) {
                option(&mut e, o)?;
            }
        }
    }
    if n.get("volume")
        .and_then(|v| v.get("nocopy"))
        .and_then(Node::str)
        == Some("true")
    {
        e.options.push("nocopy".into());
    }
    if let Some(c) = get("consistency") {
        e.dropped.push(c);
    }
    Ok(e)
}

fn size_bytes(n: &Node) -> Result<u64, String> {
    let text = size(n)?;
    values::parse_size(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn s(text: &str) -> Node {
        let at = super::super::super::yaml::Pos {
            file: Arc::new("c.yaml".into()),
            line: 1,
        };
        Node::scalar(at, text, Kind::Str)
    }

    #[test]
    fn sizes() {
        assert_eq!(size(&s("512m")).unwrap(), "512M");
        assert_eq!(size(&s("1gb")).unwrap(), "1G");
        assert_eq!(size(&s("1.5G")).unwrap(), "1536M");
        assert_eq!(size(&s("1000")).unwrap(), "1000");
        assert_eq!(size(&s("2048")).unwrap(), "2K");
        assert!(size(&s("12x")).is_err());
        assert!(size(&s("0")).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration(&s("1m30s")).unwrap(), "90s");
        assert_eq!(duration(&s("2.5s")).unwrap(), "2500ms");
        assert_eq!(duration(&s("1h")).unwrap(), "3600s");
        assert_eq!(duration(&s("500ms")).unwrap(), "500ms");
        assert!(duration(&s("10")).is_err());
        assert!(duration(&s("1d")).is_err());
    }

    #[test]
    fn images() {
        assert_eq!(image("nginx").0, "docker.io/library/nginx");
        assert_eq!(image("bitnami/redis:7").0, "docker.io/bitnami/redis:7");
        assert_eq!(image("quay.io/a/b"), ("quay.io/a/b".into(), false));
        assert!(!image("localhost/x").1);
        assert!(!image("localhost:5000/x").1);
    }

    #[test]
    fn command_strings_split_like_a_shell() {
        assert_eq!(
            command(&s(r#"sh -c 'echo "a b"' x\ y"#)).unwrap(),
            ["sh", "-c", "echo \"a b\"", "x y"]
        );
        assert!(command(&s("echo 'open")).is_err());
    }

    #[test]
    fn ports_short() {
        assert_eq!(port_short("8080:80").unwrap().specs, ["8080:80"]);
        assert_eq!(
            port_short("127.0.0.1:53:53/udp").unwrap().specs,
            ["127.0.0.1:53:53/udp"]
        );
        assert_eq!(
            port_short("9000-9001:8000-8001").unwrap().specs,
            ["9000:8000", "9001:8001"]
        );
        assert_eq!(port_short("[::1]:80:80").unwrap().specs, ["[::1]:80:80"]);
        assert!(port_short("80").unwrap_err().contains("random host port"));
        assert!(port_short("127.0.0.1::80").unwrap_err().contains("random"));
        assert!(port_short("9000-9005:80").is_err());
        assert!(port_short("8080:80/sctp").is_err());
    }

    #[test]
    fn volumes_short() {
        let base = Path::new("/srv/app");
        let v = volume_short("./data:/data:ro,Z,cached", base).unwrap();
        assert_eq!(v.source, VolSource::Host("/srv/app/data".into()));
        assert_eq!(v.options, ["ro", "Z"]);
        assert_eq!(v.dropped, ["cached"]);
        assert_eq!(
            volume_short("db:/var/lib/db", base).unwrap().source,
            VolSource::Named("db".into())
        );
        assert_eq!(
            volume_short("/cache", base).unwrap().source,
            VolSource::Anonymous
        );
        assert_eq!(
            volume_short("../x:/x", base).unwrap().source,
            VolSource::Host("/srv/x".into())
        );
        assert!(volume_short("a:/b:bogus", base).is_err());
    }
}
