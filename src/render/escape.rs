//! Escaping of values for Quadlet files, registered as Tera filters.
//!
//! Where a value goes decides how it must be written. Checked against the
//! Quadlet 5.4.2 sources (`pkg/systemd/parser/{unitfile,split}.go`,
//! `pkg/systemd/quadlet/quadlet.go`) and the real generator:
//!
//! * The unit-file parser trims each line, joins a line ending in `\` with
//!   the next one, and strips leading whitespace from values. So no value
//!   may hold a control character (a newline would start a new key or
//!   section), or end in a backslash.
//! * Split keys (`Exec=`, `Environment=`, `Label=`, `EnvironmentFile=`,
//!   `Secret=`, `PodmanArgs=`) are split into words with quotes removed and
//!   C escapes applied: every word is written `"…"` with `\` and `"`
//!   escaped ([`word`]). An empty word cannot be written: Quadlet's splitter
//!   stops at it and silently drops the rest of the line.
//! * Single-value keys (`Image=`, `ContainerName=`, `User=`, `WorkingDir=`,
//!   `Pull=`, `Entrypoint=`, `HealthCmd=`, `Volume=`, `PublishPort=`,
//!   `Network=`, `Subnet=`, ...) are taken raw: no unquoting, no escapes,
//!   but a `"` at either end is stripped and trailing space trimmed. They
//!   are written as they are ([`value`]) and refused where that would change them.
//! * Quadlet passes all of them on inside the generated `ExecStart=`, which
//!   systemd reads with specifier expansion (`%%` is a `%`), environment
//!   expansion (`$$` is a `$`), and a lone `;` word as a command separator
//!   (Quadlet writes `;` bare, so a `;` argument is refused). So `%` is
//!   written `%%` and `$` is written `$$` everywhere a value reaches
//!   `ExecStart=`.
//! * Keys Quadlet copies for systemd (`[Unit]`, `[Service]`, `[Install]`):
//!   where systemd expands specifiers (`Description=`, `Requires=`,
//!   `After=`, `Wants=`) `%` is written `%%` ([`setting`]); where it does
//!   not (`Restart=`, `Timeout*Sec=`, `Memory*=`, `CPUQuota=`: systemd
//!   rejects `CPUQuota=50%%`) the value is written as it is ([`plain`]).
//! * On purpose, never by accident (issue 12): a host path that *starts*
//!   with one of `spec::values::PATH_SPECIFIERS` (`%h/...`, `%t/...`; also
//!   a `source=` of a typed mount) keeps that specifier for systemd
//!   ([`path_value`], [`path_word`]); and `${NAME}` is kept for systemd's
//!   environment expansion in `command`, `env` values and `podman_args` only
//!   for the names a container lists in `expand_env` ([`word_expanding`]).
//!   Everything else is escaped as above, so no value can add a key,
//!   section or unit either way: the kept spans are specifiers or
//!   `${NAME}` with NAME of letters, digits and `_`.

use std::collections::HashMap;
use std::fmt;

use tera::{Tera, Value};

/// Why a value cannot go into a unit file as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    pub value: String,
    pub reason: String,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}", self.value, self.reason)
    }
}

impl std::error::Error for ValueError {}

fn bad(value: &str, reason: impl Into<String>) -> ValueError {
    ValueError {
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Control characters and invisible formatting characters (the spec parser
/// rejects the same set; this is the renderer's own guard).
pub fn check_chars(v: &str) -> Result<(), ValueError> {
    if let Some(c) = v.chars().find(|&c| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{2028}' | '\u{2029}')
    }) {
        return Err(bad(
            v,
            format!(
                "contains the character {}: control and invisible formatting characters cannot go into a unit file",
                c.escape_unicode()
            ),
        ));
    }
    Ok(())
}

/// Checks shared by raw values: they are written as they are, so anything
/// the parser would change is refused.
fn check_raw(v: &str) -> Result<(), ValueError> {
    check_chars(v)?;
    if v.is_empty() {
        return Err(bad(v, "is empty: an empty value resets the key"));
    }
    if v.starts_with(char::is_whitespace) || v.ends_with(char::is_whitespace) {
        return Err(bad(
            v,
            "starts or ends with a space, which the unit-file parser trims",
        ));
    }
    if v.ends_with('\\') {
        return Err(bad(
            v,
            "ends with a backslash, which would join the next line to it",
        ));
    }
    Ok(())
}

/// Doubles `%` (systemd specifiers) and, when `dollar`, `$` (systemd
/// environment expansion in `ExecStart=`).
fn double(v: &str, dollar: bool, out: &mut String) {
    for c in v.chars() {
        match c {
            '%' => out.push_str("%%"),
            '$' if dollar => out.push_str("$$"),
            c => out.push(c),
        }
    }
}

/// A single-value Quadlet key that ends up in `ExecStart=`: written raw,
/// with `%` and `$` doubled.
pub fn value(v: &str) -> Result<String, ValueError> {
    check_raw(v)?;
    if v.starts_with('"') || v.ends_with('"') {
        return Err(bad(
            v,
            "starts or ends with a double quote, which Quadlet strips",
        ));
    }
    if v == ";" {
        return Err(bad(
            v,
            "is a lone ';', which systemd reads as a command separator",
        ));
    }
    let mut out = String::with_capacity(v.len() + 2);
    double(v, true, &mut out);
    Ok(out)
}

/// A setting systemd reads with specifier expansion (`Description=`,
/// `Requires=`, ...): written raw with `%` doubled.
pub fn setting(v: &str) -> Result<String, ValueError> {
    check_raw(v)?;
    let mut out = String::with_capacity(v.len());
    double(v, false, &mut out);
    Ok(out)
}

/// A setting systemd reads without specifier expansion (`CPUQuota=`,
/// `MemoryMax=`, `TimeoutStartSec=`, `Restart=`): written as it is.
pub fn plain(v: &str) -> Result<String, ValueError> {
    check_raw(v)?;
    Ok(v.to_string())
}

/// Spans of `v` kept as written: a leading path specifier, and one after
/// `source=` / `src=` at the start of a comma-separated option.
pub fn specifier_spans(v: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    for opt in v.split(',') {
        let path_start = if at == 0 && opt.starts_with('%') {
            Some(0)
        } else {
            ["source=", "src="]
                .iter()
                .find(|p| opt.starts_with(**p))
                .map(|p| p.len())
        };
        if let Some(off) = path_start {
            if let Some(spec) = crate::spec::values::specifier_prefix(&opt[off..]) {
                out.push(at + off..at + off + spec.len());
            }
        }
        at += opt.len() + 1;
    }
    out
}

/// Spans of `${NAME}` in `v` for the NAMEs in `names`.
pub fn expansion_spans(v: &str, names: &[String]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = v[from..].find("${") {
        let start = from + i;
        match v[start + 2..].find('}') {
            Some(len) if names.iter().any(|n| *n == v[start + 2..start + 2 + len]) => {
                let end = start + 2 + len + 1;
                out.push(start..end);
                from = end;
            }
            _ => from = start + 2,
        }
    }
    out
}

/// `escape(segment)` for the parts of `v` outside `keep`, the rest as written.
fn keeping(v: &str, keep: &[std::ops::Range<usize>], escape: impl Fn(&str, &mut String)) -> String {
    let mut out = String::with_capacity(v.len() + 4);
    let mut at = 0;
    for r in keep {
        escape(&v[at..r.start], &mut out);
        out.push_str(&v[r.clone()]);
        at = r.end;
    }
    escape(&v[at..], &mut out);
    out
}

/// [`value`], keeping a path specifier written on purpose.
pub fn path_value(v: &str) -> Result<String, ValueError> {
    let plain = value(v)?;
    let keep = specifier_spans(v);
    if keep.is_empty() {
        return Ok(plain);
    }
    Ok(keeping(v, &keep, |s, out| double(s, true, out)))
}

/// [`word`], keeping a path specifier written on purpose.
pub fn path_word(v: &str) -> Result<String, ValueError> {
    word_keeping(v, &specifier_spans(v))
}

/// [`word`], keeping `${NAME}` for the `names` systemd expands.
pub fn word_expanding(v: &str, names: &[String]) -> Result<String, ValueError> {
    if names.is_empty() {
        return word(v);
    }
    word_keeping(v, &expansion_spans(v, names))
}

/// [`word`], with the `keep` spans of `v` as written (the common case,
/// nothing kept, costs what [`word`] does).
fn word_keeping(v: &str, keep: &[std::ops::Range<usize>]) -> Result<String, ValueError> {
    let plain = word(v)?;
    if keep.is_empty() {
        return Ok(plain);
    }
    let mut out = String::with_capacity(v.len() + 4);
    out.push('"');
    out.push_str(&keeping(v, keep, word_inner));
    out.push('"');
    Ok(out)
}

fn word_inner(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
}

/// One word of a key Quadlet splits: `"…"` with `\` and `"` escaped,
/// `%` and `$` doubled.
pub fn word(v: &str) -> Result<String, ValueError> {
    check_chars(v)?;
    if v.is_empty() {
        return Err(bad(
            v,
            "is an empty argument, which Quadlet cannot pass on (its word splitter stops there)",
        ));
    }
    if v == ";" {
        return Err(bad(
            v,
            "is a lone ';', which Quadlet writes bare into ExecStart= where systemd reads it as a command separator",
        ));
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    word_inner(v, &mut out);
    out.push('"');
    Ok(out)
}

/// Words of a key Quadlet splits, space-separated.
pub fn words<S: AsRef<str>>(ws: &[S]) -> Result<String, ValueError> {
    let mut out = String::new();
    for (i, w) in ws.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&word(w.as_ref())?);
    }
    Ok(out)
}

/// An argument vector Podman reads as a JSON array (`--entrypoint`,
/// `--health-cmd`), written as a raw value.
pub fn json_argv<S: AsRef<str>>(ws: &[S]) -> Result<String, ValueError> {
    for w in ws {
        check_chars(w.as_ref())?;
    }
    let ws: Vec<&str> = ws.iter().map(|w| w.as_ref()).collect();
    let json = serde_json::to_string(&ws).expect("a list of strings serializes");
    value(&json)
}

/// The text of a comment line.
pub fn comment(v: &str) -> Result<String, ValueError> {
    check_chars(v)?;
    Ok(v.to_string())
}

// ------------------------------------------------------------ Tera filters

/// The filters every `{{ … }}` in the templates must end with.
pub const FILTERS: &[&str] = &[
    "unit_value",
    "unit_setting",
    "unit_plain",
    "unit_word",
    "unit_words",
    "unit_json",
    "unit_comment",
    "unit_path_value",
    "unit_path_word",
    "unit_line",
];

/// The names of a filter's `expand` argument (`expand_env`), if any.
fn expand_arg(args: &HashMap<String, Value>) -> tera::Result<Vec<String>> {
    match args.get("expand") {
        Some(v) => as_strs("expand", v),
        None => Ok(vec![]),
    }
}

fn as_str<'a>(name: &str, v: &'a Value) -> tera::Result<&'a str> {
    v.as_str()
        .ok_or_else(|| tera::Error::msg(format!("filter {name}: expected a string, got {v}")))
}

fn as_strs(name: &str, v: &Value) -> tera::Result<Vec<String>> {
    let arr = v
        .as_array()
        .ok_or_else(|| tera::Error::msg(format!("filter {name}: expected a list, got {v}")))?;
    arr.iter()
        .map(|x| as_str(name, x).map(str::to_string))
        .collect()
}

fn wrap(name: &str, r: Result<String, ValueError>) -> tera::Result<Value> {
    r.map(Value::String)
        .map_err(|e| tera::Error::chain(format!("filter {name}"), e))
}

/// Registers the escaping filters on `tera`.
pub fn register(tera: &mut Tera) {
    tera.register_filter("unit_value", |v: &Value, _: &HashMap<String, Value>| {
        wrap("unit_value", value(as_str("unit_value", v)?))
    });
    tera.register_filter("unit_setting", |v: &Value, _: &HashMap<String, Value>| {
        wrap("unit_setting", setting(as_str("unit_setting", v)?))
    });
    tera.register_filter("unit_plain", |v: &Value, _: &HashMap<String, Value>| {
        wrap("unit_plain", plain(as_str("unit_plain", v)?))
    });
    tera.register_filter("unit_word", |v: &Value, a: &HashMap<String, Value>| {
        let names = expand_arg(a)?;
        wrap("unit_word", word_expanding(as_str("unit_word", v)?, &names))
    });
    tera.register_filter("unit_words", |v: &Value, a: &HashMap<String, Value>| {
        let names = expand_arg(a)?;
        let ws = as_strs("unit_words", v)?;
        let joined = ws
            .iter()
            .map(|w| word_expanding(w, &names))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join(" "));
        wrap("unit_words", joined)
    });
    tera.register_filter("unit_line", |v: &Value, _: &HashMap<String, Value>| {
        wrap("unit_line", comment(as_str("unit_line", v)?))
    });
    tera.register_filter(
        "unit_path_value",
        |v: &Value, _: &HashMap<String, Value>| {
            wrap("unit_path_value", path_value(as_str("unit_path_value", v)?))
        },
    );
    tera.register_filter("unit_path_word", |v: &Value, _: &HashMap<String, Value>| {
        wrap("unit_path_word", path_word(as_str("unit_path_word", v)?))
    });
    tera.register_filter("unit_json", |v: &Value, _: &HashMap<String, Value>| {
        wrap("unit_json", json_argv(&as_strs("unit_json", v)?))
    });
    tera.register_filter("unit_comment", |v: &Value, _: &HashMap<String, Value>| {
        wrap("unit_comment", comment(as_str("unit_comment", v)?))
    });
}

/// The [`ValueError`] a filter failed with, if that is why rendering failed.
pub fn find_value_error(e: &tera::Error) -> Option<&ValueError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(v) = err.downcast_ref::<ValueError>() {
            return Some(v);
        }
        cur = err.source();
    }
    None
}
