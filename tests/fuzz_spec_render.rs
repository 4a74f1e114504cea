//! Property-based fuzzing of spec parsing + validation + rendering
//! (proptest; cargo-fuzz needs a nightly toolchain this project does not
//! have). Failing cases are kept in
//! `tests/fuzz_spec_render.proptest-regressions` and re-run first.
//!
//! `hostile_values_never_inject_unit_syntax` generates specs whose free-text
//! values hold everything a unit file cares about (`%`, `$`, quotes,
//! backslashes, `;`, `#`, `[Section]`, `Key=`, spaces, Unicode) in the forms
//! validation accepts, so that most cases are accepted and rendered. Each
//! rendered file must have exactly the lines, sections and keys of a twin
//! spec with tame values, and every hostile value must read back intact
//! through a model of how Quadlet and systemd read the key it went into.
//! Some cases instead hold a control or invisible character (validation
//! must reject it, with the file, line, column and key), or a value that
//! validates but cannot be written into a unit file (the renderer must
//! refuse it). The share of accepted cases is counted and checked, so the
//! test cannot quietly turn into a test of rejections only.
//!
//! `escape_functions_follow_the_unit_file_rules` checks the escaping
//! functions of `src/render/escape.rs` directly against the same model,
//! including the guards that validation makes unreachable from a spec.
//!
//! `tests/mutation-check.sh` shows that these tests fail when a guard is
//! taken out.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use deploy_agent::render::{escape, render, PodmanVersion, RenderError, RenderOptions};
use deploy_agent::spec::{load_texts, SpecSet};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError, TestRunner};

/// Sections and keys each kind of file may contain.
fn allowed(ext: &str) -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let unit = (
        "Unit",
        BTreeSet::from(["Description", "Requires", "Wants", "After"]),
    );
    let mut m = BTreeMap::from([unit]);
    match ext {
        "container" => {
            m.insert(
                "Container",
                BTreeSet::from([
                    "ContainerName",
                    "Image",
                    "Pull",
                    "AutoUpdate",
                    "Entrypoint",
                    "Exec",
                    "User",
                    "Group",
                    "WorkingDir",
                    "ReadOnly",
                    "Network",
                    "PublishPort",
                    "Volume",
                    "Environment",
                    "EnvironmentFile",
                    "Secret",
                    "Label",
                    "HealthCmd",
                    "HealthInterval",
                    "HealthTimeout",
                    "HealthRetries",
                    "HealthStartPeriod",
                    "PidsLimit",
                    "StopTimeout",
                    "PodmanArgs",
                    "RunInit",
                    "Memory",
                    // The health gate of a container others depend on.
                    "Notify",
                ]),
            );
            m.insert(
                "Service",
                BTreeSet::from([
                    "Restart",
                    "SuccessExitStatus",
                    "RestartForceExitStatus",
                    "TimeoutStartSec",
                    // The health gate's waiter (render::readiness).
                    "ExecStartPost",
                    "TimeoutStopSec",
                    "MemoryMax",
                    "MemoryLow",
                    "CPUQuota",
                ]),
            );
            m.insert("Install", BTreeSet::from(["WantedBy"]));
        }
        "network" => {
            m.insert(
                "Network",
                BTreeSet::from([
                    "NetworkName",
                    "Driver",
                    "Subnet",
                    "Gateway",
                    "Internal",
                    "IPv6",
                    "Label",
                ]),
            );
        }
        "volume" => {
            m.insert("Volume", BTreeSet::from(["VolumeName", "Driver", "Label"]));
        }
        other => panic!("unexpected file kind {other}"),
    }
    m
}

/// A strict reading of a unit file: every line is a comment, blank, a known
/// section header or `Key=value` with a known key; no continuation lines.
fn check_unit_file(name: &str, text: &str) -> Result<(), String> {
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let allowed = allowed(ext);
    let mut section: Option<&str> = None;
    let mut seen_sections = BTreeSet::new();
    for (i, line) in text.split('\n').enumerate() {
        let at = || format!("{name}:{}: {line:?}", i + 1);
        if line.chars().any(forbidden) {
            return Err(format!(
                "control or invisible formatting character at {}",
                at()
            ));
        }
        if line.ends_with('\\') {
            return Err(format!("continuation line at {}", at()));
        }
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let Some((k, _)) = allowed.get_key_value(s) else {
                return Err(format!("unexpected section at {}", at()));
            };
            if !seen_sections.insert(*k) {
                return Err(format!("section repeated at {}", at()));
            }
            section = Some(k);
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            return Err(format!("not a key=value line at {}", at()));
        };
        let Some(sec) = section else {
            return Err(format!("key outside a section at {}", at()));
        };
        if !allowed[sec].contains(key) {
            return Err(format!("unexpected key in [{sec}] at {}", at()));
        }
    }
    Ok(())
}

// ------------------------------------------------- how unit files are read

/// The characters no value may carry into a unit file: control characters
/// and invisible formatting (the set `check_unit_safe` and `check_chars`
/// refuse).
fn forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{2028}' | '\u{2029}')
}

/// The lines of a unit file, reduced to what they are: blank, comment,
/// section header or `Key=`. Equal skeletons: same lines, sections, keys.
fn skeleton(text: &str) -> Vec<String> {
    text.split('\n')
        .map(|line| {
            if line.is_empty() {
                String::new()
            } else if line.starts_with('#') || line.starts_with(';') {
                "#".into()
            } else if line.starts_with('[') {
                line.to_string()
            } else {
                match line.split_once('=') {
                    Some((k, _)) => format!("{k}="),
                    None => format!("?{line}"),
                }
            }
        })
        .collect()
}

/// The values of `key` in a unit file, in order.
fn values_of<'t>(text: &'t str, key: &str) -> Vec<&'t str> {
    text.split('\n')
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .collect()
}

/// systemd reads `%%` as `%` (specifiers) and, in `ExecStart=`, `$$` as `$`
/// (environment expansion); a lone `%` or `$` would be expanded.
fn undouble(v: &str, dollar: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if (c == '%' || (c == '$' && dollar)) && chars.next() != Some(c) {
            return Err(format!("lone {c:?} in {v:?}: systemd would expand it"));
        }
        out.push(c);
    }
    Ok(out)
}

/// The checks shared by values read as they are (`check_raw`).
fn raw_line_ok(v: &str) -> Result<(), String> {
    if v.chars().any(forbidden) {
        return Err(format!("{v:?} holds a control character"));
    }
    if v.is_empty() {
        return Err("empty value: resets the key".into());
    }
    if v.starts_with(char::is_whitespace) || v.ends_with(char::is_whitespace) {
        return Err(format!("{v:?}: the unit-file parser trims the space"));
    }
    if v.ends_with('\\') {
        return Err(format!("{v:?}: a trailing backslash joins the next line"));
    }
    Ok(())
}

/// A single-value Quadlet key that ends up in `ExecStart=` (`Image=`,
/// `User=`, `WorkingDir=`, `Volume=`, ...): Quadlet takes it raw but strips
/// a `"` at either end; systemd then reads `%%` and `$$`; a lone `;` is a
/// command separator.
fn read_value(v: &str) -> Result<String, String> {
    raw_line_ok(v)?;
    if v.starts_with('"') || v.ends_with('"') {
        return Err(format!("{v:?}: Quadlet strips a quote at either end"));
    }
    if v == ";" {
        return Err("a lone ';' separates commands in ExecStart=".into());
    }
    undouble(v, true)
}

/// A setting systemd reads with specifier expansion (`Description=`, ...).
fn read_setting(v: &str) -> Result<String, String> {
    raw_line_ok(v)?;
    undouble(v, false)
}

/// One C escape after a backslash (systemd's cunescape, as Quadlet ports it).
fn cunescape(e: char, rest: &mut std::iter::Peekable<std::str::Chars>) -> Result<char, String> {
    let mut hex = |n: usize, radix: u32| -> Result<char, String> {
        let digits: String = (0..n).filter_map(|_| rest.next()).collect();
        u32::from_str_radix(&digits, radix)
            .ok()
            .filter(|_| digits.len() == n)
            .and_then(char::from_u32)
            .ok_or_else(|| format!("bad escape \\{e}{digits}"))
    };
    Ok(match e {
        '\\' | '"' | '\'' => e,
        'a' => '\u{7}',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\u{b}',
        's' => ' ',
        'x' => hex(2, 16)?,
        'u' => hex(4, 16)?,
        'U' => hex(8, 16)?,
        '0'..='7' => {
            let digits: String = std::iter::once(e)
                .chain((0..2).filter_map(|_| rest.next()))
                .collect();
            u32::from_str_radix(&digits, 8)
                .ok()
                .filter(|_| digits.len() == 3)
                .and_then(char::from_u32)
                .ok_or_else(|| format!("bad escape \\{digits}"))?
        }
        _ => return Err(format!("unknown escape \\{e}")),
    })
}

/// A key Quadlet splits into words (`Exec=`, `Environment=`, `Label=`,
/// `Secret=`, `EnvironmentFile=`): systemd's extract_first_word with
/// unquoting and C unescaping, as Quadlet ports it; an empty word stops
/// Quadlet's splitter. Each word then goes into `ExecStart=`, where systemd
/// reads `%%` and `$$`.
fn read_words(v: &str) -> Result<Vec<String>, String> {
    raw_line_ok(v)?;
    let mut words = Vec::new();
    let mut chars = v.chars().peekable();
    loop {
        while chars.next_if(|c| matches!(c, ' ' | '\t')).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut w = String::new();
        let mut quote = None;
        loop {
            let Some(c) = chars.next() else {
                if quote.is_some() {
                    return Err(format!("unterminated quote in {v:?}"));
                }
                break;
            };
            match (quote, c) {
                (_, '\\') => {
                    let e = chars.next().ok_or("a lone backslash at the end")?;
                    w.push(cunescape(e, &mut chars)?);
                }
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, ' ' | '\t') => break,
                (_, c) => w.push(c),
            }
        }
        if w.is_empty() {
            return Err(format!(
                "empty word in {v:?}: Quadlet's splitter stops there"
            ));
        }
        if w == ";" {
            return Err(format!("a lone ';' word in {v:?} separates commands"));
        }
        words.push(undouble(&w, true)?);
    }
    Ok(words)
}

/// An argument vector Podman reads as a JSON array (`Entrypoint=`, `HealthCmd=`).
fn read_json(v: &str) -> Result<Vec<String>, String> {
    let text = read_value(v)?;
    serde_json::from_str(&text).map_err(|e| format!("{text:?} is not a JSON array: {e}"))
}

/// `sh` reading `'…'` and `\'` (the one-word health command).
fn sh_unquote(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("\\'") {
            out.push('\'');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('\'') {
            let end = r.find('\'').ok_or("unterminated '")?;
            out.push_str(&r[..end]);
            rest = &r[end + 1..];
        } else {
            return Err(format!("unquoted text {rest:?}"));
        }
    }
    Ok(out)
}

// ------------------------------------------------------------- generation

/// Pieces of free text validation accepts and unit files care about.
const PIECES: &[&str] = &[
    "%",
    "%h",
    "%%",
    "%n",
    "\"",
    "'",
    "\\",
    "\\\\",
    "\\n",
    "\\x41",
    "\\\"",
    "[Service]",
    "[Unit]",
    "ExecStartPre=/bin/sh -c evil",
    "Environment=X=1",
    "$HOME",
    "${X}",
    "$$",
    "$",
    " ",
    "  ",
    ";",
    " ; ",
    "#",
    "=",
    ",",
    ":",
    "*",
    "`id`",
    "$(id)",
    "&&",
    "|",
    ">",
    "{{ x }}",
    "{% raw %}",
    "{#",
    "é",
    "日本",
    "🦀",
    "\u{A0}",
    "\u{3000}",
    "\u{2002}",
    "\u{AD}",
    "\u{301}",
    "\u{FFFD}",
];

/// Characters validation must refuse wherever they appear.
const POISON: &[char] = &[
    '\n', '\r', '\0', '\t', '\u{1}', '\u{1b}', '\u{1f}', '\u{7f}', '\u{85}', '\u{9b}', '\u{200B}',
    '\u{200E}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{FEFF}', '\u{2028}', '\u{2029}',
];

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(PIECES).prop_map(str::to_string),
        1 => "[a-z]{1,5}",
        1 => "[A-Z0-9_.-]{1,3}",
    ]
}

/// Free text: env and label values, arguments.
fn free() -> impl Strategy<Value = String> {
    proptest::collection::vec(piece(), 0..7).prop_map(|v| v.concat())
}

/// An `Exec=` word: not empty, not a lone `;` (the renderer refuses those).
fn word() -> impl Strategy<Value = String> {
    proptest::collection::vec(piece(), 1..6).prop_map(|v| match v.concat() {
        s if s == ";" => ";;".into(),
        s => s,
    })
}

/// Free text without whitespace (images, user names).
fn no_space() -> impl Strategy<Value = String> {
    free().prop_map(|s| s.chars().filter(|c| !c.is_whitespace()).collect())
}

/// A piece of a path: no ':' or ',' (they separate mount parts), no '..'.
fn path_part() -> impl Strategy<Value = String> {
    free().prop_map(|s| s.replace([':', ','], "_").replace("..", "._"))
}

fn port() -> impl Strategy<Value = (String, String)> {
    (
        proptest::sample::select(&[None, Some("127.0.0.1"), Some("[::1]"), Some("[fe80::1]")][..]),
        1u16..,
        1u16..,
        proptest::sample::select(&["", "/tcp", "/udp"][..]),
    )
        .prop_map(|(ip, host, container, proto)| {
            let ip = ip.map(|ip| format!("{ip}:")).unwrap_or_default();
            let written = if proto == "/udp" { proto } else { "" };
            (
                format!("{ip}{host}:{container}{proto}"),
                format!("{ip}{host}:{container}{written}"),
            )
        })
}

/// One spec: a network, a volume and a container using them, with a hostile
/// value in every free-text key.
#[derive(Debug, Clone)]
struct Case {
    file: String,
    net_label: String,
    vol_label: String,
    image: String,
    command: Vec<String>,
    entrypoint: Option<Vec<String>>,
    env_val: String,
    label_key: String,
    label_val: String,
    user: String,
    workdir: String,
    mount: String,
    env_file: String,
    port: String,
    /// `PublishPort=` as the renderer writes `port`.
    port_written: String,
    secret_target: String,
    health_cmd: Vec<String>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (
            "[a-z0-9%#;= '\"$\\[\\]\\\\-]{1,8}",
            free(),
            free(),
            ("[a-z]{1,8}(\\.[a-z]{2,3})?", no_space(), "[a-z0-9]{1,6}")
                .prop_map(|(reg, h, tag)| format!("{reg}/{h}:{tag}")),
            proptest::collection::vec(word(), 1..4),
            proptest::option::of(proptest::collection::vec(free(), 1..3)),
        ),
        (
            free(),
            no_space().prop_map(|k| format!("k{}", k.replace('=', "_"))),
            free(),
            prop_oneof![
                "[0-9]{1,5}",
                "[0-9]{1,5}:[0-9]{1,5}",
                no_space().prop_map(|h| format!("u{h}z")),
            ],
            path_part().prop_map(|p| format!("/srv/{p}/w")),
        ),
        (
            (
                path_part(),
                path_part(),
                proptest::option::of(proptest::sample::select(
                    &["ro", "Z", "ro,Z", "rw,nosuid"][..],
                )),
            )
                .prop_map(|(a, b, o)| {
                    let o = o.map(|o| format!(":{o}")).unwrap_or_default();
                    format!("/h{a}/src:/t{b}/dst{o}")
                }),
            path_part().prop_map(|p| format!("/etc/{p}/e.env")),
            port(),
            prop_oneof![
                path_part().prop_map(|p| format!("/run/{p}/t")),
                free().prop_map(|f| format!("t{}", f.replace(['/', ','], "_"))),
            ],
            prop_oneof![
                word().prop_map(|w| vec![format!("probe{w}")]),
                (word(), proptest::collection::vec(free(), 1..3)).prop_map(|(w, mut rest)| {
                    rest.insert(0, format!("probe{w}"));
                    rest
                }),
            ],
        ),
    )
        .prop_map(
            |(
                (file, net_label, vol_label, image, command, entrypoint),
                (env_val, label_key, label_val, user, workdir),
                (mount, env_file, (port, port_written), secret_target, health_cmd),
            )| Case {
                file,
                net_label,
                vol_label,
                image,
                command,
                entrypoint,
                env_val,
                label_key,
                label_val,
                user,
                workdir,
                mount,
                env_file,
                port,
                port_written,
                secret_target,
                health_cmd,
            },
        )
}

impl Case {
    fn path(&self) -> String {
        format!("/etc/deploy-agent/specs/{}.toml", self.file)
    }

    /// Every value that can be poisoned, with the key validation names it by.
    fn fields_mut(&mut self) -> Vec<(String, &mut String)> {
        let mut v: Vec<(String, &mut String)> = vec![
            ("network.fz_net.labels.l".into(), &mut self.net_label),
            ("volume.fz_vol.labels.l".into(), &mut self.vol_label),
            ("container.fz.image".into(), &mut self.image),
            ("container.fz.env.A".into(), &mut self.env_val),
            (
                format!("container.fz.labels.{}", self.label_key),
                &mut self.label_val,
            ),
            ("container.fz.user".into(), &mut self.user),
            ("container.fz.workdir".into(), &mut self.workdir),
            ("container.fz.volumes[1]".into(), &mut self.mount),
            ("container.fz.env_files[0]".into(), &mut self.env_file),
            ("container.fz.ports[0]".into(), &mut self.port),
            (
                "container.fz.secrets[0].target".into(),
                &mut self.secret_target,
            ),
        ];
        for (i, c) in self.command.iter_mut().enumerate() {
            v.push((format!("container.fz.command[{i}]"), c));
        }
        for (i, c) in self.entrypoint.iter_mut().flatten().enumerate() {
            v.push((format!("container.fz.entrypoint[{i}]"), c));
        }
        for (i, c) in self.health_cmd.iter_mut().enumerate() {
            v.push((format!("container.fz.health.cmd[{i}]"), c));
        }
        v
    }

    /// The same spec with tame values: what the rendered files' shape must be.
    fn twin(&self) -> Case {
        let tame = |s: &String| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "/:._-,".contains(c) {
                        c
                    } else {
                        'x'
                    }
                })
                .collect()
        };
        let tame_all = |v: &Vec<String>| v.iter().map(tame).collect::<Vec<_>>();
        Case {
            file: tame(&self.file),
            net_label: tame(&self.net_label),
            vol_label: tame(&self.vol_label),
            image: tame(&self.image),
            command: tame_all(&self.command),
            entrypoint: self.entrypoint.as_ref().map(tame_all),
            env_val: tame(&self.env_val),
            label_key: tame(&self.label_key),
            label_val: tame(&self.label_val),
            user: tame(&self.user),
            workdir: tame(&self.workdir),
            mount: tame(&self.mount),
            env_file: tame(&self.env_file),
            port: self.port.clone(),
            port_written: self.port_written.clone(),
            secret_target: tame(&self.secret_target),
            health_cmd: tame_all(&self.health_cmd),
        }
    }
}

/// A TOML basic string, on one line whatever the value holds.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if forbidden(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Builds spec text and records where each value's literal starts
/// (line, column in characters: what a located error must name).
#[derive(Default)]
struct SpecText {
    lines: Vec<String>,
    cur: String,
    places: BTreeMap<String, (usize, usize)>,
}

impl SpecText {
    fn raw(&mut self, s: &str) -> &mut Self {
        self.cur.push_str(s);
        self
    }
    fn lit(&mut self, key: &str, v: &str) -> &mut Self {
        let place = (self.lines.len() + 1, self.cur.chars().count() + 1);
        self.places.insert(key.to_string(), place);
        self.cur.push_str(&toml_str(v));
        self
    }
    fn list(&mut self, key: &str, vs: &[String]) -> &mut Self {
        self.raw("[");
        for (i, v) in vs.iter().enumerate() {
            if i > 0 {
                self.raw(", ");
            }
            self.lit(&format!("{key}[{i}]"), v);
        }
        self.raw("]")
    }
    fn end(&mut self) -> &mut Self {
        self.lines.push(std::mem::take(&mut self.cur));
        self
    }
}

fn spec_text(c: &Case) -> (String, BTreeMap<String, (usize, usize)>) {
    let mut t = SpecText::default();
    t.raw("[network.fz_net]").end();
    t.raw("labels = { l = ")
        .lit("network.fz_net.labels.l", &c.net_label)
        .raw(" }")
        .end();
    t.raw("[volume.fz_vol]").end();
    t.raw("labels = { l = ")
        .lit("volume.fz_vol.labels.l", &c.vol_label)
        .raw(" }")
        .end();
    t.raw("[container.fz]").end();
    t.raw("image = ").lit("container.fz.image", &c.image).end();
    t.raw("command = ")
        .list("container.fz.command", &c.command)
        .end();
    if let Some(ep) = &c.entrypoint {
        t.raw("entrypoint = ")
            .list("container.fz.entrypoint", ep)
            .end();
    }
    t.raw("env = { A = ")
        .lit("container.fz.env.A", &c.env_val)
        .raw(" }")
        .end();
    let label = format!("container.fz.labels.{}", c.label_key);
    t.raw(&format!("labels = {{ {} = ", toml_str(&c.label_key)))
        .lit(&label, &c.label_val)
        .raw(" }")
        .end();
    t.raw("user = ").lit("container.fz.user", &c.user).end();
    t.raw("workdir = ")
        .lit("container.fz.workdir", &c.workdir)
        .end();
    t.raw("networks = [\"fz_net\"]").end();
    t.raw("volumes = [\"fz_vol:/data\", ")
        .lit("container.fz.volumes[1]", &c.mount)
        .raw("]")
        .end();
    t.raw("env_files = [")
        .lit("container.fz.env_files[0]", &c.env_file)
        .raw("]")
        .end();
    t.raw("ports = [")
        .lit("container.fz.ports[0]", &c.port)
        .raw("]")
        .end();
    t.raw("secrets = [{ name = \"s\", type = \"mount\", target = ")
        .lit("container.fz.secrets[0].target", &c.secret_target)
        .raw(" }]")
        .end();
    t.raw("[container.fz.health]").end();
    t.raw("cmd = ")
        .list("container.fz.health.cmd", &c.health_cmd)
        .end();
    t.end();
    (t.lines.join("\n"), t.places)
}

/// What a case is for.
#[derive(Debug, Clone)]
enum Expect {
    /// Valid: must validate, render and read back intact.
    Render,
    /// A control character in `key`: validation must reject it there.
    Reject { key: String },
    /// Valid for validation, but the renderer must refuse `value`.
    Refuse { value: String },
}

/// How a generated case is spoiled, if it is.
#[derive(Debug, Clone)]
enum Fault {
    None,
    /// Insert `ch` into the `field`-th value (modulo) at char `at` (modulo).
    Poison {
        field: usize,
        at: usize,
        ch: char,
    },
    /// The `kind`-th way (modulo) to write a value that validates but cannot
    /// go into a unit file.
    Refuse {
        kind: usize,
        ch: char,
    },
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        84 => Just(Fault::None),
        8 => (any::<usize>(), any::<usize>(), proptest::sample::select(POISON))
            .prop_map(|(field, at, ch)| Fault::Poison { field, at, ch }),
        8 => (any::<usize>(), proptest::sample::select(POISON))
            .prop_map(|(kind, ch)| Fault::Refuse { kind, ch }),
    ]
}

/// The values that pass validation but that the renderer must refuse.
const REFUSALS: usize = 16;

fn spoil(mut c: Case, f: Fault) -> (Case, Expect) {
    match f {
        Fault::None => (c, Expect::Render),
        Fault::Poison { field, at, ch } => {
            let mut fields = c.fields_mut();
            let n = fields.len();
            let (key, v) = &mut fields[field % n];
            let at = at % (v.chars().count() + 1);
            let byte = v.char_indices().nth(at).map_or(v.len(), |(i, _)| i);
            v.insert(byte, ch);
            let key = key.clone();
            (c, Expect::Reject { key })
        }
        Fault::Refuse { kind, ch } => {
            let value = match kind % REFUSALS {
                0 => {
                    c.image.push('\\');
                    c.image.clone()
                }
                1 => {
                    c.image.insert(0, '"');
                    c.image.clone()
                }
                2 => {
                    c.image.push('"');
                    c.image.clone()
                }
                3 => {
                    c.image = ";".into();
                    c.image.clone()
                }
                4 => {
                    c.image.push_str(".image");
                    c.image.clone()
                }
                5 => {
                    c.user = "admin\\".into();
                    c.user.clone()
                }
                6 => {
                    c.user = "\"admin".into();
                    c.user.clone()
                }
                7 => {
                    c.user = ";".into();
                    c.user.clone()
                }
                8 => {
                    c.workdir.push(' ');
                    c.workdir.clone()
                }
                9 => {
                    c.workdir.push('\\');
                    c.workdir.clone()
                }
                10 => {
                    c.workdir.push('"');
                    c.workdir.clone()
                }
                11 => {
                    let i = ch as usize % c.command.len();
                    c.command[i] = String::new();
                    String::new()
                }
                12 => {
                    let i = ch as usize % c.command.len();
                    c.command[i] = ";".into();
                    ";".into()
                }
                13 => {
                    c.mount = "/srv/data:/data ".into();
                    c.mount.clone()
                }
                14 => {
                    c.health_cmd = vec!["nOnE".into(), "x".into()];
                    "nOnE".into()
                }
                _ => {
                    // The file name goes into the header comment.
                    let at = c.file.len() / 2;
                    c.file.insert(at, ch);
                    format!("{}.toml", c.file)
                }
            };
            (c, Expect::Refuse { value })
        }
    }
}

// ------------------------------------------------------------ the checks

fn opts(v: &str) -> RenderOptions {
    RenderOptions {
        podman: PodmanVersion::parse(v).unwrap(),
        ..Default::default()
    }
}

/// Targets: before `User=` names (4.8), before `Entrypoint=` (5.0), current.
const VERSIONS: &[&str] = &["4.7", "4.9", "5.4"];
/// The target every valid case must render for.
const FULL: &str = "5.4";

#[derive(Default)]
struct Stats {
    total: Cell<usize>,
    accepted: Cell<usize>,
    rendered: Cell<usize>,
    refused: Cell<usize>,
    rejected: Cell<usize>,
}

fn bump(c: &Cell<usize>) {
    c.set(c.get() + 1);
}

fn fail(msg: impl Into<String>) -> TestCaseError {
    TestCaseError::fail(msg.into())
}

fn load(path: &str, text: &str) -> Result<SpecSet, deploy_agent::spec::SpecErrors> {
    load_texts(&[(PathBuf::from(path), text.to_string())])
}

/// `got` must read back as `want`.
fn same<T: PartialEq + std::fmt::Debug>(
    what: &str,
    got: Result<T, String>,
    want: &T,
) -> Result<(), String> {
    match got {
        Ok(g) if g == *want => Ok(()),
        Ok(g) => Err(format!("{what} reads back as {g:?}, not {want:?}")),
        Err(e) => Err(format!("{what} cannot be read back as {want:?}: {e}")),
    }
}

/// The one value of `key` in `text`.
fn one<'t>(text: &'t str, key: &str) -> Result<&'t str, String> {
    match values_of(text, key).as_slice() {
        [v] => Ok(v),
        vs => Err(format!("{} {key}= lines, expected 1", vs.len())),
    }
}

/// Every hostile value of `c` reads back intact from the files rendered for `v`.
fn check_round_trip(c: &Case, v: PodmanVersion, name: &str, text: &str) -> Result<(), String> {
    let header = text.split('\n').next().unwrap_or("");
    // The header names the spec file by its name (hostile, as generated).
    let file = format!("{}.toml", c.file);
    if !(header.starts_with("# Generated by deploy-agent from ") && header.contains(&file)) {
        return Err(format!("the header line {header:?} does not name {file:?}"));
    }
    let words = |k: &str| read_words(one(text, k)?);
    let value = |k: &str| read_value(one(text, k)?);
    match name {
        "fz_net.network" => same("Label", words("Label"), &vec![format!("l={}", c.net_label)]),
        "fz_vol.volume" => same("Label", words("Label"), &vec![format!("l={}", c.vol_label)]),
        "fz.container" => {
            same("Image", value("Image"), &c.image)?;
            same("Exec", words("Exec"), &c.command)?;
            match &c.entrypoint {
                Some(ep) => same("Entrypoint", read_json(one(text, "Entrypoint")?), ep)?,
                None if values_of(text, "Entrypoint").is_empty() => {}
                None => return Err("an Entrypoint= no spec asked for".into()),
            }
            let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            match c.user.split_once(':') {
                Some((uid, gid)) if v < PodmanVersion::new(4, 8, 0) => {
                    same("User", value("User"), &uid.to_string())?;
                    same("Group", value("Group"), &gid.to_string())?;
                }
                None if v < PodmanVersion::new(4, 8, 0) && !numeric(&c.user) => {
                    return Err(format!("user name {:?} rendered for {v}", c.user))
                }
                _ => {
                    same("User", value("User"), &c.user)?;
                    if !values_of(text, "Group").is_empty() {
                        return Err("a Group= no spec asked for".into());
                    }
                }
            }
            same("WorkingDir", value("WorkingDir"), &c.workdir)?;
            let vols: Vec<_> = values_of(text, "Volume")
                .into_iter()
                .map(read_value)
                .collect();
            same(
                "Volume",
                vols.into_iter().collect(),
                &vec!["fz_vol.volume:/data".to_string(), c.mount.clone()],
            )?;
            same(
                "EnvironmentFile",
                words("EnvironmentFile"),
                &vec![c.env_file.clone()],
            )?;
            same("PublishPort", value("PublishPort"), &c.port_written)?;
            same(
                "Secret",
                words("Secret"),
                &vec![format!("s,type=mount,target={}", c.secret_target)],
            )?;
            same(
                "Environment",
                words("Environment"),
                &vec![format!("A={}", c.env_val)],
            )?;
            same(
                "Label",
                words("Label"),
                &vec![format!("{}={}", c.label_key, c.label_val)],
            )?;
            same(
                "Description",
                read_setting(one(text, "Description")?),
                &"deploy-agent container fz".to_string(),
            )?;
            // A one-word health command runs through `sh -c`: it must come
            // back as that word, quoted for the shell.
            let hc = read_json(one(text, "HealthCmd")?)?;
            match (c.health_cmd.as_slice(), hc.as_slice()) {
                ([w], [shell, script]) if shell == "CMD-SHELL" => same(
                    "HealthCmd",
                    script
                        .strip_prefix("exec ")
                        .ok_or_else(|| format!("{script:?} is not `exec '…'`"))
                        .and_then(sh_unquote),
                    w,
                ),
                _ => same("HealthCmd", Ok(hc), &c.health_cmd),
            }
        }
        other => Err(format!("unexpected file {other}")),
    }
}

fn check_case(c: &Case, expect: &Expect, stats: &Stats) -> Result<(), TestCaseError> {
    bump(&stats.total);
    let path = c.path();
    let (text, places) = spec_text(c);
    let loaded = load(&path, &text);
    let set = match (expect, loaded) {
        (Expect::Reject { key }, Ok(_)) => {
            return Err(fail(format!(
                "validation accepted a control character in {key}:\n{text}"
            )))
        }
        (Expect::Reject { key }, Err(errs)) => {
            bump(&stats.rejected);
            let all = errs.to_string();
            let [e] = errs.0.as_slice() else {
                return Err(fail(format!(
                    "expected one error, at {key}, got:\n{all}\n{text}"
                )));
            };
            let (line, col) = places[key];
            let located = e.file == std::path::Path::new(&path)
                && e.key.as_deref() == Some(key.as_str())
                && e.line == Some(line)
                && e.col == Some(col)
                && e.message.contains("forbidden character");
            if !located {
                return Err(fail(format!(
                    "expected a forbidden-character error at {path}:{line}:{col}: {key}, got {e:?}\n{text}"
                )));
            }
            return Ok(());
        }
        (_, Err(errs)) => {
            return Err(fail(format!(
                "validation rejected a valid spec:\n{errs}\n{text}"
            )))
        }
        (_, Ok(set)) => set,
    };
    bump(&stats.accepted);

    if let Expect::Refuse { value } = expect {
        bump(&stats.refused);
        for v in VERSIONS {
            match render(&set, &opts(v)) {
                Ok(files) => {
                    return Err(fail(format!(
                        "rendered {value:?}, which cannot go into a unit file, for Podman {v}:\n{}",
                        files
                            .values()
                            .map(|f| f.contents.as_str())
                            .collect::<String>()
                    )))
                }
                Err(RenderError::BadValue { value: got, .. }) if got == *value => {}
                Err(e) if *v != FULL => {
                    if !matches!(
                        e,
                        RenderError::Unsupported { .. } | RenderError::BadValue { .. }
                    ) {
                        return Err(fail(format!("Podman {v}: {e}")));
                    }
                }
                Err(e) => {
                    return Err(fail(format!(
                        "expected {value:?} to be refused for Podman {v}, got: {e}"
                    )))
                }
            }
        }
        return Ok(());
    }

    let twin_case = c.twin();
    let (twin_text, _) = spec_text(&twin_case);
    let twin = load(&twin_case.path(), &twin_text)
        .map_err(|e| fail(format!("the tame twin does not validate: {e}\n{twin_text}")))?;
    for v in VERSIONS {
        let o = opts(v);
        let (files, twin_files) = match (render(&set, &o), render(&twin, &o)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(RenderError::Unsupported { .. }), Err(RenderError::Unsupported { .. }))
                if *v != FULL =>
            {
                continue
            }
            (r, t) => {
                return Err(fail(format!(
                    "Podman {v}: the spec renders to {:?}, its tame twin to {:?}\n{text}",
                    r.map(|_| ()),
                    t.map(|_| ())
                )))
            }
        };
        let names: Vec<_> = files.keys().collect();
        prop_assert_eq!(names, twin_files.keys().collect::<Vec<_>>());
        for (name, f) in &files {
            let at = || format!("Podman {v}, {name}:\n{}\nfrom:\n{text}", f.contents);
            check_unit_file(name, &f.contents).map_err(|e| fail(format!("{e}\n{}", at())))?;
            let twin = &twin_files[name].contents;
            if skeleton(&f.contents) != skeleton(twin) {
                return Err(fail(format!(
                    "the lines differ from those of the tame twin:\n{twin}\n{}",
                    at()
                )));
            }
            check_round_trip(c, o.podman, name, &f.contents)
                .map_err(|e| fail(format!("{e}\n{}", at())))?;
        }
    }
    bump(&stats.rendered);
    Ok(())
}

fn fuzz_cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(512)
}

fn config(test: &'static str) -> ProptestConfig {
    ProptestConfig {
        cases: fuzz_cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        source_file: Some(file!()),
        test_name: Some(test),
        ..ProptestConfig::default()
    }
}

#[test]
fn hostile_values_never_inject_unit_syntax() {
    let stats = Stats::default();
    let mut runner = TestRunner::new(config("hostile_values_never_inject_unit_syntax"));
    let strategy = (case(), fault()).prop_map(|(c, f)| spoil(c, f));
    let result = runner.run(&strategy, |(c, expect)| check_case(&c, &expect, &stats));
    if let Err(e) = result {
        panic!("{e}\n{runner}");
    }
    let (total, accepted, rendered, refused, rejected) = (
        stats.total.get(),
        stats.accepted.get(),
        stats.rendered.get(),
        stats.refused.get(),
        stats.rejected.get(),
    );
    eprintln!(
        "hostile_values_never_inject_unit_syntax: {total} cases: {accepted} accepted by validation \
         ({rendered} rendered and read back, {refused} refused by the renderer), \
         {rejected} rejected by validation with a located error"
    );
    assert_eq!(total, accepted + rejected);
    // Most cases must reach the renderer, or the test checks only rejections.
    // (Below 100 cases chance alone may make the share smaller.)
    if total >= 100 {
        assert!(
            accepted * 100 > total * 80,
            "only {accepted} of {total} cases passed validation"
        );
        assert!(
            rendered * 100 > total * 70,
            "only {rendered} of {total} cases were rendered and checked"
        );
        assert!(refused > 0 && rejected > 0, "no refusals or no rejections");
    }
}

// ------------------------------------------- the escaping functions alone

fn any_text() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        6 => piece(),
        1 => proptest::sample::select(POISON).prop_map(String::from),
        1 => proptest::sample::select(&["", ";", " ", "\"", "\\", "x"][..]).prop_map(str::to_string),
    ];
    prop_oneof![
        4 => proptest::collection::vec(part, 0..5).prop_map(|v| v.concat()),
        1 => any::<String>(),
    ]
}

fn check_escape(ws: &[String]) -> Result<(), String> {
    let chars_ok = |s: &str| !s.chars().any(forbidden);
    let raw_ok = |s: &str| raw_line_ok(s).is_ok();
    let word_ok = |s: &str| chars_ok(s) && !s.is_empty() && s != ";";
    /// `got` must be a refusal exactly when not `ok`, and else read back as `want`.
    fn expect<T: std::fmt::Debug + PartialEq>(
        what: &str,
        s: &[String],
        got: Result<String, escape::ValueError>,
        ok: bool,
        read: impl Fn(&str) -> Result<T, String>,
        want: T,
    ) -> Result<(), String> {
        match got {
            Ok(out) if ok => {
                if out.chars().any(forbidden) {
                    return Err(format!("{what}({s:?}) wrote {out:?}"));
                }
                same(&format!("{what}({s:?}) = {out:?}"), read(&out), &want)
            }
            Ok(out) => Err(format!("{what}({s:?}) wrote {out:?}, but must refuse it")),
            Err(e) if ok => Err(format!("{what}({s:?}) refused a valid value: {e}")),
            Err(_) => Ok(()),
        }
    }
    for s in ws {
        let one = std::slice::from_ref(s);
        expect(
            "comment",
            one,
            escape::comment(s),
            chars_ok(s),
            |o| Ok(o.to_string()),
            s.clone(),
        )?;
        expect(
            "plain",
            one,
            escape::plain(s),
            raw_ok(s),
            |o| Ok(o.to_string()),
            s.clone(),
        )?;
        expect(
            "setting",
            one,
            escape::setting(s),
            raw_ok(s),
            read_setting,
            s.clone(),
        )?;
        let value_ok = raw_ok(s) && !s.starts_with('"') && !s.ends_with('"') && s != ";";
        expect(
            "value",
            one,
            escape::value(s),
            value_ok,
            read_value,
            s.clone(),
        )?;
        expect(
            "word",
            one,
            escape::word(s),
            word_ok(s),
            read_words,
            vec![s.clone()],
        )?;
    }
    // (The templates write `Exec=`/`PodmanArgs=` only for a non-empty list.)
    if !ws.is_empty() {
        let all_words = ws.iter().all(|w| word_ok(w));
        expect(
            "words",
            ws,
            escape::words(ws),
            all_words,
            read_words,
            ws.to_vec(),
        )?;
    }
    let all_chars = ws.iter().all(|w| chars_ok(w));
    expect(
        "json_argv",
        ws,
        escape::json_argv(ws),
        all_chars,
        read_json,
        ws.to_vec(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: fuzz_cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    /// Every escaping function refuses exactly what cannot be written and
    /// writes everything else so that it reads back intact.
    #[test]
    fn escape_functions_follow_the_unit_file_rules(ws in proptest::collection::vec(any_text(), 0..4)) {
        check_escape(&ws).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = load_texts(&[(PathBuf::from("a.toml"), text)]);
    }

    #[test]
    fn mutated_reference_specs_never_panic(cut in 0usize..4000, insert in any_text()) {
        let base: String = ["00-network", "10-postgres", "20-redis", "30-django", "40-celery"]
            .iter()
            .map(|f| std::fs::read_to_string(format!("{}/tests/fixtures/senex/{f}.toml", env!("CARGO_MANIFEST_DIR"))).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let mut cut = cut.min(base.len());
        while !base.is_char_boundary(cut) {
            cut -= 1;
        }
        let text = format!("{}{}{}", &base[..cut], insert, &base[cut..]);
        if let Ok(set) = load_texts(&[(PathBuf::from("senex.toml"), text)]) {
            for v in VERSIONS {
                if let Ok(files) = render(&set, &opts(v)) {
                    for (name, f) in files {
                        check_unit_file(&name, &f.contents).map_err(TestCaseError::fail)?;
                    }
                }
            }
        }
    }
}

#[test]
fn the_checker_catches_an_injected_key() {
    let bad = "[Container]\nImage=x\nExecStartPre=/bin/evil\n";
    assert!(check_unit_file("a.container", bad).is_err());
    assert!(check_unit_file("a.container", "[Container]\nImage=x \\\n").is_err());
    assert!(check_unit_file("a.container", "[Service]\n[Service]\n").is_err());
    assert!(check_unit_file("a.container", "[Container]\nImage=x\r\n").is_err());
    assert!(check_unit_file("a.container", "[Container]\nImage=x\n").is_ok());
    assert_ne!(skeleton("[A]\nK=1\n"), skeleton("[A]\nK=1\nK=2\n"));
}

#[test]
fn the_readers_model_quadlet_and_systemd() {
    let w = |s: &str| read_words(s);
    assert_eq!(
        w(r#""a b" "c\"d\\e" "100%%" "$$X""#).unwrap(),
        ["a b", "c\"d\\e", "100%", "$X"]
    );
    assert_eq!(w(r#"a"b c"'d' \x41"#).unwrap(), ["ab cd", "A"]);
    assert!(w(r#""a" "" "b""#).is_err(), "an empty word stops Quadlet");
    assert!(w("a ;").is_err());
    assert!(w(r#""unterminated"#).is_err());
    assert!(w("100%").is_err(), "a lone % is a specifier");
    assert!(w("\"a\\qb\"").is_err());
    assert_eq!(read_value("a%%b$$c").unwrap(), "a%b$c");
    for bad in ["", " a", "a ", "\"a", "a\"", "a\\", ";", "$HOME", "a\nb"] {
        assert!(read_value(bad).is_err(), "{bad:?}");
    }
    assert_eq!(read_setting("a%%b$c").unwrap(), "a%b$c");
    assert_eq!(read_json(r#"["a","%%","$$"]"#).unwrap(), ["a", "%", "$"]);
    assert_eq!(sh_unquote(r"'it'\''s'").unwrap(), "it's");
    assert_eq!(
        undouble("%%%", true),
        Err("lone '%' in \"%%%\": systemd would expand it".into())
    );
}

#[test]
fn every_poisoned_field_and_every_refusal_on_a_fixed_spec() {
    // What the fuzz test draws at random, each once, on a fixed spec: a
    // control character in each value (rejected, located), each value the
    // renderer must refuse, and the spec as it is (rendered, read back).
    let mut c = Case {
        file: "web".into(),
        net_label: "n".into(),
        vol_label: "v".into(),
        image: "reg/img:1".into(),
        command: vec!["a".into(), "b".into()],
        entrypoint: Some(vec!["ep".into()]),
        env_val: "e".into(),
        label_key: "k".into(),
        label_val: "l".into(),
        user: "1000".into(),
        workdir: "/srv/w".into(),
        mount: "/h/src:/t/dst".into(),
        env_file: "/etc/e.env".into(),
        port: "80:80".into(),
        port_written: "80:80".into(),
        secret_target: "t".into(),
        health_cmd: vec!["probe".into()],
    };
    let (text, places) = spec_text(&c);
    let set = load(&c.path(), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(set.containers["fz"].command.as_deref().unwrap(), ["a", "b"]);
    assert_eq!(places["container.fz.command[1]"], (7, 17));
    let n = c.fields_mut().len();
    for field in 0..n {
        let (c, expect) = spoil(
            c.clone(),
            Fault::Poison {
                field,
                at: 1,
                ch: '\n',
            },
        );
        check_case(&c, &expect, &Stats::default()).unwrap_or_else(|e| panic!("{e}"));
    }
    for kind in 0..REFUSALS {
        let (c, expect) = spoil(c.clone(), Fault::Refuse { kind, ch: '\n' });
        check_case(&c, &expect, &Stats::default()).unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
    check_case(&c, &Expect::Render, &Stats::default()).unwrap_or_else(|e| panic!("{e}"));
}
