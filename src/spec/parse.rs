//! One spec file -> typed entries, with every error located.
//!
//! Walks the `toml_edit` document (which keeps byte spans) instead of using
//! serde directly, so that all unknown keys, wrong types and bad values of a
//! file are reported together, each with its line, column and key path.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use toml_edit::{ImDocument, Item, TableLike, Value};

use super::diag::{did_you_mean, Loc, Reporter, SpecError};
use super::keys::{self, Key, Section, Table, Ty};
use super::model::*;
use super::values;

pub(crate) const TOP_KEYS: &[&str] = &TABLES;
pub(crate) const SECRET_KEYS: &[&str] = &["name", "type", "target", "source"];

/// The escape-hatch tables of a container or pod and their sections.
const RAW_TABLES: &[(&str, Section)] = &[
    ("unit", Section::Unit),
    ("service", Section::Service),
    ("install", Section::Install),
];

/// systemd keys Quadlet sets itself or the agent relies on: a raw table may
/// not set them.
const OWNED_SYSTEMD_KEYS: &[(Section, &str)] = &[
    (Section::Unit, "Description"),
    (Section::Unit, "SourcePath"),
    (Section::Service, "ExecStart"),
    (Section::Service, "ExecStop"),
    (Section::Service, "ExecStopPost"),
    (Section::Service, "Type"),
    (Section::Service, "KillMode"),
    (Section::Service, "Delegate"),
    (Section::Service, "NotifyAccess"),
];

/// What a reference names, for the cross-file checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefKind {
    Container,
    Network,
    Volume,
    Pod,
    Image,
}

/// A name used by a container that must resolve to something declared.
#[derive(Debug, Clone)]
pub(crate) struct Ref {
    pub kind: RefKind,
    pub name: String,
    pub key: String,
    pub loc: Loc,
}

/// Entries of one file, with the places the cross-file checks need.
#[derive(Debug, Default, Clone)]
pub(crate) struct ParsedFile {
    pub containers: Vec<(Arc<Container>, Loc, Vec<Ref>)>,
    pub networks: Vec<(Network, Loc)>,
    pub volumes: Vec<(Volume, Loc)>,
    pub pods: Vec<(Pod, Loc, Vec<Ref>)>,
    pub images: Vec<(Image, Loc)>,
    pub errors: Vec<SpecError>,
}

/// An image reference: non-empty, no spaces.
fn check_image_ref(s: &str) -> Result<String, String> {
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        Err(format!(
            "invalid image reference {s:?}: it must be non-empty and contain no spaces"
        ))
    } else {
        Ok(s.to_string())
    }
}

/// Files one parsing thread takes at least: fewer would cost more in
/// thread starts than they save.
const FILES_PER_THREAD: usize = 64;

/// [`parse_file`] of each `(path, text)`, in order. Each file parses on its
/// own (the cross-file checks come after, in `validate::merge`), so many
/// files are split over the host's cores: at 1,000 files, parsing is most
/// of a load.
pub(crate) fn parse_files(files: &[(&Path, &str)]) -> Vec<ParsedFile> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(files.len() / FILES_PER_THREAD).max(1);
    let parse_all = |part: &[(&Path, &str)]| -> Vec<ParsedFile> {
        part.iter().map(|(p, t)| parse_file(p, t)).collect()
    };
    if threads == 1 {
        return parse_all(files);
    }
    std::thread::scope(|scope| {
        let parts: Vec<_> = (files.chunks(files.len().div_ceil(threads)))
            .map(|part| scope.spawn(move || parse_all(part)))
            .collect();
        (parts.into_iter())
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Parses one spec file's text. Never fails: problems are in `errors`.
pub(crate) fn parse_file(path: &Path, text: &str) -> ParsedFile {
    let mut out = ParsedFile::default();
    let mut w = Walker {
        r: Reporter::new(path, text),
        path,
    };
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let msg = e.message().trim().to_string();
            w.r.error(e.span(), "", format!("malformed TOML: {msg}"), None);
            out.errors = w.r.errors;
            return out;
        }
    };
    let root = doc.as_table();
    for (kind, item, _) in w.entries(root, "", Some(TOP_KEYS)) {
        let Some(members) = w.table(item, kind) else {
            continue;
        };
        for (name, item, name_span) in w.entries(members, kind, None) {
            let key = format!("{kind}.{name}");
            if let Err(e) = values::check_name(name) {
                w.r.error(name_span.clone(), &key, e, None);
                continue;
            }
            let loc = w.r.at(name_span.clone().or_else(|| item.span()));
            let Some(t) = w.table(item, &key) else {
                continue;
            };
            match kind {
                "container" => {
                    let (c, refs) = w.container(name, t, &key, name_span);
                    out.containers.push((Arc::new(c), loc, refs));
                }
                "network" => out
                    .networks
                    .push((w.network(name, t, &key, name_span), loc)),
                "pod" => {
                    let (p, refs) = w.pod(name, t, &key);
                    out.pods.push((p, loc, refs));
                }
                "image" => out.images.push((w.image(name, t, &key, name_span), loc)),
                _ => out.volumes.push((w.volume(name, t, &key), loc)),
            }
        }
    }
    out.errors = w.r.errors;
    out
}

struct Walker<'a> {
    r: Reporter<'a>,
    path: &'a Path,
}

fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::Value(v) => match v {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime(_) => "a datetime",
            Value::Array(_) => "an array",
            Value::InlineTable(_) => "a table",
        },
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

type Span = Option<Range<usize>>;

impl<'a> Walker<'a> {
    /// The entries of a table; with `allowed`, unknown keys are reported (with a hint) and dropped.
    fn entries<'t>(
        &mut self,
        t: &'t dyn TableLike,
        prefix: &str,
        allowed: Option<&[&str]>,
    ) -> Vec<(&'t str, &'t Item, Span)> {
        let mut out = Vec::new();
        for (k, item) in t.iter() {
            let span = t
                .get_key_value(k)
                .and_then(|(key, _)| key.span())
                .or_else(|| item.span());
            if let Some(allowed) = allowed {
                if !allowed.contains(&k) {
                    let hint = did_you_mean(k, allowed.iter().copied())
                        .or_else(|| Some(format!("expected one of: {}", allowed.join(", "))));
                    self.r.error(span, &join(prefix, k), "unknown key", hint);
                    continue;
                }
            }
            out.push((k, item, span));
        }
        out
    }

    fn table<'t>(&mut self, item: &'t Item, key: &str) -> Option<&'t dyn TableLike> {
        match item.as_table_like() {
            Some(t) => Some(t),
            None => {
                self.r.error(
                    item.span(),
                    key,
                    format!("expected a table, found {}", type_name(item)),
                    None,
                );
                None
            }
        }
    }

    fn string(&mut self, item: &Item, key: &str) -> Option<String> {
        match item.as_str() {
            Some(s) => {
                if let Err(e) = values::check_unit_safe(s) {
                    self.r.error(item.span(), key, e, None);
                    return None;
                }
                Some(s.to_string())
            }
            None => {
                self.r.error(
                    item.span(),
                    key,
                    format!("expected a string, found {}", type_name(item)),
                    None,
                );
                None
            }
        }
    }

    /// A string value checked by `parse`.
    fn parsed<T>(
        &mut self,
        item: &Item,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.string(item, key)?;
        match parse(&s) {
            Ok(v) => Some(v),
            Err(e) => {
                self.r.error(item.span(), key, e, None);
                None
            }
        }
    }

    fn boolean(&mut self, item: &Item, key: &str) -> Option<bool> {
        let v = item.as_bool();
        if v.is_none() {
            self.r.error(
                item.span(),
                key,
                format!("expected true or false, found {}", type_name(item)),
                None,
            );
        }
        v
    }

    fn integer(&mut self, item: &Item, key: &str, min: i64, max: i64) -> Option<i64> {
        match item.as_integer() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.r.error(
                    item.span(),
                    key,
                    format!("{n} is out of range: must be between {min} and {max}"),
                    None,
                );
                None
            }
            None => {
                self.r.error(
                    item.span(),
                    key,
                    format!("expected an integer, found {}", type_name(item)),
                    None,
                );
                None
            }
        }
    }

    fn choice<T: Copy>(&mut self, item: &Item, key: &str, options: &[(&str, T)]) -> Option<T> {
        let s = self.string(item, key)?;
        if let Some((_, v)) = options.iter().find(|(name, _)| *name == s) {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let hint = did_you_mean(&s, names.iter().copied())
            .unwrap_or_else(|| format!("expected one of: {}", names.join(", ")));
        self.r
            .error(item.span(), key, format!("invalid value {s:?}"), Some(hint));
        None
    }

    /// An array of strings, each with its span.
    fn strings(&mut self, item: &Item, key: &str) -> Option<Vec<(String, Span)>> {
        let Some(arr) = item.as_array() else {
            self.r.error(
                item.span(),
                key,
                format!("expected an array of strings, found {}", type_name(item)),
                None,
            );
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, v) in arr.iter().enumerate() {
            let k = format!("{key}[{i}]");
            match v.as_str() {
                Some(s) => match values::check_unit_safe(s) {
                    Ok(()) => out.push((s.to_string(), v.span())),
                    Err(e) => {
                        self.r.error(v.span(), &k, e, None);
                        ok = false;
                    }
                },
                None => {
                    self.r.error(v.span(), &k, "expected a string", None);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// A non-empty exec-form command.
    fn argv(&mut self, item: &Item, key: &str) -> Option<Vec<String>> {
        let v = self.strings(item, key)?;
        if v.is_empty() {
            self.r.error(
                item.span(),
                key,
                "must not be empty: leave the key out to use the image's default",
                None,
            );
            return None;
        }
        Some(v.into_iter().map(|(s, _)| s).collect())
    }

    /// A table of strings (numbers and booleans are written as text), keys checked by `check_key`.
    fn string_map(
        &mut self,
        item: &Item,
        key: &str,
        check_key: fn(&str) -> Result<(), String>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(t) = self.table(item, key) else {
            return out;
        };
        for (k, v, kspan) in self.entries(t, key, None) {
            let kk = join(key, k);
            if let Err(e) = check_key(k) {
                self.r.error(kspan, &kk, e, None);
                continue;
            }
            let text = match v.as_value() {
                Some(Value::String(s)) => Some(s.value().clone()),
                Some(Value::Integer(n)) => Some(n.value().to_string()),
                Some(Value::Float(f)) => Some(f.value().to_string()),
                Some(Value::Boolean(b)) => Some(b.value().to_string()),
                _ => None,
            };
            match text {
                Some(text) => match values::check_unit_safe(&text) {
                    Ok(()) => {
                        out.insert(k.to_string(), text);
                    }
                    Err(e) => self.r.error(v.span(), &kk, e, None),
                },
                None => self.r.error(
                    v.span(),
                    &kk,
                    format!("expected a string, found {}", type_name(v)),
                    None,
                ),
            }
        }
        out
    }

    fn duration(&mut self, item: &Item, key: &str) -> Option<std::time::Duration> {
        self.parsed(item, key, values::parse_duration)
    }

    /// A size: an integer of bytes or a string with K/M/G/T.
    fn size(&mut self, item: &Item, key: &str) -> Option<u64> {
        if let Some(n) = item.as_integer() {
            if n <= 0 {
                self.r.error(
                    item.span(),
                    key,
                    format!("size {n} must be greater than zero"),
                    None,
                );
                return None;
            }
            return Some(n as u64);
        }
        if item.as_str().is_none() {
            self.r.error(
                item.span(),
                key,
                format!(
                    "expected a size (bytes, or a string like \"200M\"), found {}",
                    type_name(item)
                ),
                None,
            );
            return None;
        }
        self.parsed(item, key, values::parse_size)
    }

    /// Names referenced from `key` (requires/after/wants/networks): each checked and recorded.
    fn refs(&mut self, item: &Item, key: &str, kind: RefKind, refs: &mut Vec<Ref>) -> Vec<String> {
        let mut out = Vec::new();
        for (i, (name, span)) in self
            .strings(item, key)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let k = format!("{key}[{i}]");
            if let Err(e) = values::check_name(&name) {
                self.r.error(span, &k, e, None);
                continue;
            }
            if out.contains(&name) {
                self.r
                    .error(span, &k, format!("{name:?} is listed twice"), None);
                continue;
            }
            refs.push(Ref {
                kind,
                name: name.clone(),
                key: k,
                loc: self.r.at(span),
            });
            out.push(name);
        }
        out
    }

    fn container(
        &mut self,
        name: &str,
        t: &dyn TableLike,
        prefix: &str,
        header: Span,
    ) -> (Container, Vec<Ref>) {
        let mut refs = Vec::new();
        let mut c = Container {
            name: name.to_string(),
            source: self.path.to_path_buf(),
            image: String::new(),
            image_unit: None,
            command: None,
            entrypoint: None,
            ports: vec![],
            volumes: vec![],
            networks: vec![],
            env: BTreeMap::new(),
            env_files: vec![],
            secrets: vec![],
            labels: BTreeMap::new(),
            user: None,
            workdir: None,
            read_only: false,
            init: false,
            pull: None,
            auto_update: None,
            restart: Restart::default(),
            start_timeout: None,
            stop_timeout: None,
            requires: vec![],
            after: vec![],
            wants: vec![],
            resources: Resources::default(),
            health: None,
            pod: None,
            settings: Settings::new(),
            raw: RawKeys::new(),
        };
        let mut has_image = false;
        for (k, item, _) in self.entries(t, prefix, Some(&keys::names(Table::Container))) {
            let key = join(prefix, k);
            let key = key.as_str();
            match k {
                "image" => {
                    has_image = true;
                    if item.is_table_like() {
                        c.image_unit = self.image_unit(item, key, &mut refs);
                    } else if let Some(img) = self.parsed(item, key, check_image_ref) {
                        c.image = img;
                    }
                }
                "command" => c.command = self.argv(item, key),
                "entrypoint" => c.entrypoint = self.argv(item, key),
                "ports" => c.ports = self.ports(item, key),
                "volumes" => c.volumes = self.mounts(item, key, &mut refs),
                "networks" => c.networks = self.refs(item, key, RefKind::Network, &mut refs),
                "requires" => c.requires = self.refs(item, key, RefKind::Container, &mut refs),
                "after" => c.after = self.refs(item, key, RefKind::Container, &mut refs),
                "wants" => c.wants = self.refs(item, key, RefKind::Container, &mut refs),
                "env" => c.env = self.string_map(item, key, values::check_env_name),
                "labels" => c.labels = self.string_map(item, key, values::check_label_key),
                "env_files" => {
                    c.env_files = self
                        .each(item, key, values::check_host_path)
                        .unwrap_or_default();
                }
                "secrets" => c.secrets = self.secrets(item, key),
                "user" => {
                    c.user = self.parsed(item, key, |s| {
                        if s.is_empty() || s.chars().any(char::is_whitespace) {
                            Err(format!(
                                "invalid user {s:?}: a name or uid[:gid], without spaces"
                            ))
                        } else {
                            Ok(s.to_string())
                        }
                    })
                }
                "workdir" => {
                    c.workdir = self
                        .parsed(item, key, values::check_abs_path)
                        .map(|p| p.to_string_lossy().into_owned())
                }
                "read_only" => c.read_only = self.boolean(item, key).unwrap_or(false),
                "init" => c.init = self.boolean(item, key).unwrap_or(false),
                "pull" => {
                    c.pull = self.choice(
                        item,
                        key,
                        &[
                            ("missing", Pull::Missing),
                            ("always", Pull::Always),
                            ("newer", Pull::Newer),
                            ("never", Pull::Never),
                        ],
                    )
                }
                "auto_update" => {
                    c.auto_update = self.choice(
                        item,
                        key,
                        &[
                            ("registry", AutoUpdate::Registry),
                            ("local", AutoUpdate::Local),
                        ],
                    )
                }
                "restart" => {
                    c.restart = self
                        .choice(
                            item,
                            key,
                            &[
                                ("always", Restart::Always),
                                ("on-failure", Restart::OnFailure),
                                ("no", Restart::No),
                            ],
                        )
                        .unwrap_or_default()
                }
                "start_timeout" => c.start_timeout = self.nonzero_duration(item, key),
                "stop_timeout" => c.stop_timeout = self.nonzero_duration(item, key),
                "resources" => c.resources = self.resources(item, key, &mut c.settings),
                "health" => c.health = self.health(item, key, &mut c.settings),
                "pod" => {
                    c.pod = self.refs_one(item, key, RefKind::Pod, &mut refs);
                }
                "quadlet" => self.raw(item, key, Table::Container, Section::Container, &mut c.raw),
                k => {
                    self.raw_or_generic(Table::Container, k, item, key, &mut c.settings, &mut c.raw)
                }
            }
        }
        if !has_image {
            self.r
                .error(header.clone(), prefix, "missing required key `image`", None);
        }
        if c.pod.is_some() && (!c.ports.is_empty() || !c.networks.is_empty()) {
            self.r.error(
                header,
                prefix,
                "a container in a pod has no `ports` or `networks` of its own",
                Some("set them on the [pod.NAME]".into()),
            );
        }
        (c, refs)
    }

    fn ports(&mut self, item: &Item, key: &str) -> Vec<PortMapping> {
        self.each(item, key, values::parse_port).unwrap_or_default()
    }

    /// Each string of the array at `key` through `parse`: the values that
    /// parse; each failure reported at its own `key[i]`.
    fn each<T>(
        &mut self,
        item: &Item,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        let mut out = Vec::new();
        for (i, (s, span)) in self.strings(item, key)?.into_iter().enumerate() {
            match parse(&s) {
                Ok(v) => out.push(v),
                Err(e) => self.r.error(span, &format!("{key}[{i}]"), e, None),
            }
        }
        Some(out)
    }

    fn mounts(&mut self, item: &Item, key: &str, refs: &mut Vec<Ref>) -> Vec<Mount> {
        let mut out = Vec::new();
        for (i, (s, span)) in self
            .strings(item, key)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let k = format!("{key}[{i}]");
            match values::parse_mount(&s) {
                Ok(m) => {
                    if let MountSource::Volume(v) = &m.source {
                        refs.push(Ref {
                            kind: RefKind::Volume,
                            name: v.clone(),
                            key: k,
                            loc: self.r.at(span),
                        });
                    }
                    out.push(m);
                }
                Err(e) => self.r.error(span, &k, e, None),
            }
        }
        out
    }

    /// One name referenced from `key` (`pod`), checked and recorded.
    fn refs_one(
        &mut self,
        item: &Item,
        key: &str,
        kind: RefKind,
        refs: &mut Vec<Ref>,
    ) -> Option<String> {
        let name = self.parsed(item, key, |s| values::check_name(s).map(|_| s.to_string()))?;
        refs.push(Ref {
            kind,
            name: name.clone(),
            key: key.to_string(),
            loc: self.r.at(item.span()),
        });
        Some(name)
    }

    /// A generic key of `table` (see `keys.rs`), read by its type.
    fn generic(
        &mut self,
        table: Table,
        name: &str,
        item: &Item,
        key: &str,
        settings: &mut Settings,
    ) {
        let Some(k) = keys::find(table, name).filter(|k| k.is_generic()) else {
            unreachable!("{name}: the key list and the parser agree");
        };
        if let Some(v) = self.setting(k, item, key) {
            settings.insert(k.name, v);
        }
    }

    /// A raw table (`unit`, `service`, `install`) or a generic key.
    fn raw_or_generic(
        &mut self,
        table: Table,
        name: &str,
        item: &Item,
        key: &str,
        settings: &mut Settings,
        raw: &mut RawKeys,
    ) {
        match RAW_TABLES.iter().find(|(n, _)| *n == name) {
            Some((_, section)) => self.raw(item, key, table, *section, raw),
            None => self.generic(table, name, item, key, settings),
        }
    }

    fn setting(&mut self, k: &Key, item: &Item, key: &str) -> Option<Setting> {
        let check = |c: keys::Check, s: &str| c(s);
        Some(match k.ty {
            Ty::Custom => unreachable!("custom keys have their own code"),
            Ty::Str(c) => {
                Setting::Str(self.parsed(item, key, |s| check(c, s).map(|_| s.to_string()))?)
            }
            Ty::List(c) => Setting::List(self.each(item, key, |s| c(s).map(|()| s.to_string()))?),
            Ty::Map(ck, cv) => {
                let map = self.string_map(item, key, ck);
                let bad: Vec<(String, String)> = map
                    .iter()
                    .filter_map(|(mk, v)| cv(v).err().map(|e| (mk.clone(), e)))
                    .collect();
                for (mk, e) in bad {
                    self.r.error(item.span(), &join(key, &mk), e, None);
                }
                Setting::Map(map)
            }
            Ty::Bool => Setting::Bool(self.boolean(item, key)?),
            Ty::BoolOr(words) => match item.as_bool() {
                Some(b) => Setting::Bool(b),
                None => {
                    let mut opts: Vec<(&str, &str)> = vec![("true", "true"), ("false", "false")];
                    opts.extend(words.iter().map(|w| (*w, *w)));
                    let w = self.choice(item, key, &opts)?;
                    match w {
                        "true" | "false" => Setting::Bool(w == "true"),
                        w => Setting::Str(w.to_string()),
                    }
                }
            },
            Ty::Int(min, max) => Setting::Int(self.integer(item, key, min, max)?),
            Ty::Duration => Setting::Duration(self.nonzero_duration(item, key)?),
            Ty::Size => Setting::Size(self.size(item, key)?),
            Ty::Argv => Setting::List(self.argv(item, key)?),
            Ty::Choice(words) => {
                let opts: Vec<(&str, &str)> = words.iter().map(|w| (*w, *w)).collect();
                Setting::Str(self.choice(item, key, &opts)?.to_string())
            }
        })
    }

    /// An escape-hatch table: `{ Key = "value" or ["v", ...] }` for `section`.
    /// Keys are checked against what the newest known Quadlet has (the
    /// target version is checked at render), against the typed keys (which
    /// must be used instead) and against the keys Quadlet and the agent set.
    fn raw(
        &mut self,
        item: &Item,
        prefix: &str,
        table: Table,
        section: Section,
        raw: &mut RawKeys,
    ) {
        let Some(t) = self.table(item, prefix) else {
            return;
        };
        let mut out = Vec::new();
        for (k, v, span) in self.entries(t, prefix, None) {
            let key = join(prefix, k);
            if let Err(e) = raw_key_ok(table, section, k) {
                let (msg, hint) = e;
                self.r.error(span, &key, msg, hint);
                continue;
            }
            let vals = if v.as_array().is_some() {
                self.strings(v, &key)
                    .map(|v| v.into_iter().map(|(s, _)| s).collect())
            } else {
                self.string(v, &key).map(|s| vec![s])
            };
            let Some(vals) = vals else { continue };
            if let Some(bad) = vals
                .iter()
                .find(|s| s.trim().is_empty() || s.ends_with('\\'))
            {
                self.r.error(
                    v.span(),
                    &key,
                    format!("{bad:?} is empty or ends with a backslash"),
                    None,
                );
                continue;
            }
            out.push((k.to_string(), vals));
        }
        raw.insert(section, out);
    }

    fn pod(&mut self, name: &str, t: &dyn TableLike, prefix: &str) -> (Pod, Vec<Ref>) {
        let mut refs = Vec::new();
        let mut p = Pod {
            name: name.to_string(),
            source: self.path.to_path_buf(),
            ..Default::default()
        };
        for (k, item, _) in self.entries(t, prefix, Some(&keys::names(Table::Pod))) {
            let key = join(prefix, k);
            let key = key.as_str();
            match k {
                "ports" => p.ports = self.ports(item, key),
                "networks" => p.networks = self.refs(item, key, RefKind::Network, &mut refs),
                "volumes" => p.volumes = self.mounts(item, key, &mut refs),
                "labels" => p.labels = self.string_map(item, key, values::check_label_key),
                "quadlet" => self.raw(item, key, Table::Pod, Section::Pod, &mut p.raw),
                k => self.raw_or_generic(Table::Pod, k, item, key, &mut p.settings, &mut p.raw),
            }
        }
        (p, refs)
    }

    /// `image = { unit = "NAME" }`: the `[image.NAME]` a container runs.
    fn image_unit(&mut self, item: &Item, key: &str, refs: &mut Vec<Ref>) -> Option<String> {
        let t = self.table(item, key)?;
        let mut unit = None;
        for (k, v, _) in self.entries(t, key, Some(&["unit"])) {
            unit = self.refs_one(v, &join(key, k), RefKind::Image, refs);
        }
        if unit.is_none() && !t.contains_key("unit") {
            self.r.error(
                item.span(),
                key,
                "missing required key `unit`",
                Some("`image = { unit = \"NAME\" }` names an [image.NAME]".into()),
            );
        }
        unit
    }

    fn image(&mut self, name: &str, t: &dyn TableLike, prefix: &str, header: Span) -> Image {
        let mut img = Image {
            name: name.to_string(),
            source: self.path.to_path_buf(),
            ..Default::default()
        };
        let mut has_image = false;
        for (k, item, span) in self.entries(t, prefix, Some(&keys::names(Table::Image))) {
            let key = join(prefix, k);
            let key = key.as_str();
            match k {
                "image" => {
                    has_image = true;
                    img.image = self.parsed(item, key, check_image_ref).unwrap_or_default();
                }
                "creds" => self.r.error(
                    span,
                    key,
                    "refused: registry credentials in a unit file are a secret anyone who can read the Quadlet directory can read",
                    Some("put them in a file with `podman login --authfile FILE` and set `auth_file`".into()),
                ),
                "quadlet" => self.raw(item, key, Table::Image, Section::Image, &mut img.raw),
                k => self.raw_or_generic(Table::Image, k, item, key, &mut img.settings, &mut img.raw),
            }
        }
        if !has_image {
            self.r
                .error(header, prefix, "missing required key `image`", None);
        }
        img
    }

    fn nonzero_duration(&mut self, item: &Item, key: &str) -> Option<std::time::Duration> {
        let d = self.duration(item, key)?;
        if d.is_zero() {
            self.r
                .error(item.span(), key, "must be longer than zero", None);
            return None;
        }
        Some(d)
    }

    fn secrets(&mut self, item: &Item, key: &str) -> Vec<Secret> {
        let tables: Vec<(&dyn TableLike, Span)> = if let Some(arr) = item.as_array() {
            let mut v = Vec::new();
            for (i, e) in arr.iter().enumerate() {
                match e.as_inline_table() {
                    Some(t) => v.push((t as &dyn TableLike, e.span())),
                    None => self.r.error(
                        e.span(),
                        &format!("{key}[{i}]"),
                        "expected a table like { name = \"db_password\", type = \"env\", target = \"PASSWORD\" }",
                        None,
                    ),
                }
            }
            v
        } else if let Some(aot) = item.as_array_of_tables() {
            aot.iter()
                .map(|t| (t as &dyn TableLike, t.span()))
                .collect()
        } else {
            self.r.error(
                item.span(),
                key,
                format!("expected an array of tables, found {}", type_name(item)),
                None,
            );
            return vec![];
        };
        let mut out: Vec<Secret> = Vec::new();
        for (i, (t, span)) in tables.into_iter().enumerate() {
            let k = format!("{key}[{i}]");
            let mut name = None;
            let mut kind = SecretKind::Mount;
            let mut target = None;
            let mut source = None;
            for (f, v, _) in self.entries(t, &k, Some(SECRET_KEYS)) {
                let fk = join(&k, f);
                match f {
                    "name" => {
                        name = self.parsed(v, &fk, |s| values::check_name(s).map(|_| s.to_string()))
                    }
                    "type" => {
                        kind = self
                            .choice(
                                v,
                                &fk,
                                &[("env", SecretKind::Env), ("mount", SecretKind::Mount)],
                            )
                            .unwrap_or(SecretKind::Mount)
                    }
                    "target" => target = self.string(v, &fk).map(|s| (s, v.span())),
                    "source" => source = self.parsed(v, &fk, values::check_abs_path),
                    _ => unreachable!(),
                }
            }
            let Some(name) = name else {
                if !t.contains_key("name") {
                    self.r.error(span, &k, "missing required key `name`", None);
                }
                continue;
            };
            if let Some((tgt, tspan)) = &target {
                let check = match kind {
                    SecretKind::Env => values::check_env_name(tgt),
                    SecretKind::Mount => {
                        if tgt.starts_with('/') {
                            values::check_abs_path(tgt).map(|_| ())
                        } else if tgt.is_empty()
                            || tgt.contains('/')
                            || tgt == ".."
                            || tgt.contains(',')
                        {
                            Err(format!(
                                "invalid secret target {tgt:?}: a file name or an absolute path"
                            ))
                        } else {
                            Ok(())
                        }
                    }
                };
                if let Err(e) = check {
                    self.r.error(tspan.clone(), &format!("{k}.target"), e, None);
                }
            }
            // One secret may go to several targets (Podman accepts it); the
            // same secret to the same target twice is a mistake.
            let target_text = target.as_ref().map(|(t, _)| t.as_str());
            if out
                .iter()
                .any(|s| s.name == name && s.kind == kind && s.target.as_deref() == target_text)
            {
                self.r.error(
                    span,
                    &k,
                    format!("secret {name:?} is listed twice for the same target"),
                    None,
                );
                continue;
            }
            out.push(Secret {
                name,
                kind,
                target: target.map(|(t, _)| t),
                source,
            });
        }
        out
    }

    fn resources(&mut self, item: &Item, prefix: &str, settings: &mut Settings) -> Resources {
        let mut r = Resources::default();
        let Some(t) = self.table(item, prefix) else {
            return r;
        };
        let mut reservation_span = None;
        for (k, v, _) in self.entries(t, prefix, Some(&keys::names(Table::Resources))) {
            let key = join(prefix, k);
            match k {
                "memory" => r.memory = self.size(v, &key),
                "memory_reservation" => {
                    r.memory_reservation = self.size(v, &key);
                    reservation_span = v.span();
                }
                "cpus" => {
                    let f = match v.as_value() {
                        Some(Value::Float(f)) => Some(*f.value()),
                        Some(Value::Integer(n)) => Some(*n.value() as f64),
                        _ => None,
                    };
                    match f {
                        Some(f) if f.is_finite() && f > 0.0 && f <= 4096.0 => {
                            if (f * 100.0).fract().abs() > 1e-9 {
                                self.r.error(v.span(), &key, format!("{f} has more precision than systemd's CPUQuota (1% of a core): use at most two decimals"), None);
                            } else {
                                r.cpus = Some(f);
                            }
                        }
                        Some(f) => self.r.error(
                            v.span(),
                            &key,
                            format!("{f} is not a valid CPU count: must be greater than 0 (0.5 = half a core)"),
                            None,
                        ),
                        None => self.r.error(
                            v.span(),
                            &key,
                            format!("expected a number of cores like 1.0 or 0.5, found {}", type_name(v)),
                            None,
                        ),
                    }
                }
                "pids" => r.pids = self.integer(v, &key, 1, 4_194_304).map(|n| n as u32),
                k => self.generic(Table::Resources, k, v, &key, settings),
            }
        }
        if let (Some(mem), Some(res)) = (r.memory, r.memory_reservation) {
            if res > mem {
                self.r.error(
                    reservation_span,
                    &join(prefix, "memory_reservation"),
                    format!("the reservation ({res} bytes) is larger than the hard limit `memory` ({mem} bytes)"),
                    None,
                );
            }
        }
        r
    }

    fn health(&mut self, item: &Item, prefix: &str, settings: &mut Settings) -> Option<Health> {
        let t = self.table(item, prefix)?;
        let mut checks: Vec<(&str, HealthCheck)> = Vec::new();
        let mut expect_status = None;
        let mut ca_file = None;
        let mut h = Health {
            check: HealthCheck::Cmd(vec![]),
            interval: DEFAULT_HEALTH_INTERVAL,
            timeout: DEFAULT_HEALTH_TIMEOUT,
            retries: DEFAULT_HEALTH_RETRIES,
            start_period: std::time::Duration::ZERO,
            on_failure: OnFailure::default(),
            restart_delay: DEFAULT_RESTART_DELAY,
            max_restarts: DEFAULT_MAX_RESTARTS,
        };
        let mut ok = true;
        let mut timeout_written = false;
        let errors_before = self.r.errors.len();
        for (k, v, _) in self.entries(t, prefix, Some(&keys::names(Table::Health))) {
            let key = join(prefix, k);
            match k {
                "cmd" => {
                    if let Some(argv) = self.argv(v, &key) {
                        checks.push(("cmd", HealthCheck::Cmd(argv)));
                    }
                }
                "http" => {
                    if let Some(url) = self.parsed(v, &key, check_http_url) {
                        checks.push((
                            "http",
                            HealthCheck::Http {
                                url,
                                expect_status: 200,
                                ca_file: None,
                            },
                        ));
                    }
                }
                "tcp" => {
                    if let Some(addr) = self.parsed(v, &key, check_tcp_addr) {
                        checks.push(("tcp", HealthCheck::Tcp { addr }));
                    }
                }
                "expect_status" => {
                    expect_status = self
                        .integer(v, &key, 100, 599)
                        .map(|n| (n as u16, v.span()))
                }
                "ca_file" => {
                    ca_file = self
                        .parsed(v, &key, values::check_abs_path)
                        .map(|p| (p, v.span()))
                }
                "interval" => h.interval = self.nonzero_duration(v, &key).unwrap_or(h.interval),
                "timeout" => {
                    timeout_written = true;
                    h.timeout = self.nonzero_duration(v, &key).unwrap_or(h.timeout)
                }
                "start_period" => h.start_period = self.duration(v, &key).unwrap_or_default(),
                "retries" => h.retries = self.integer(v, &key, 1, 1000).unwrap_or(3) as u32,
                "restart_delay" => {
                    h.restart_delay = self.nonzero_duration(v, &key).unwrap_or(h.restart_delay)
                }
                "max_restarts" => {
                    h.max_restarts = self.integer(v, &key, 1, 100).unwrap_or(5) as u32
                }
                "on_failure" => {
                    h.on_failure = self
                        .choice(
                            v,
                            &key,
                            &[
                                ("restart", OnFailure::Restart),
                                ("rollback", OnFailure::Rollback),
                                ("none", OnFailure::None),
                            ],
                        )
                        .unwrap_or_default()
                }
                k => self.generic(Table::Health, k, v, &key, settings),
            }
        }
        let header = item.span();
        match checks.len() {
            1 => {
                h.check = checks
                    .pop()
                    .map(|(_, c)| c)
                    .unwrap_or(HealthCheck::Cmd(vec![]))
            }
            0 => {
                if self.r.errors.len() == errors_before {
                    self.r.error(
                        header.clone(),
                        prefix,
                        "a health check needs one of `cmd`, `http` or `tcp`",
                        None,
                    );
                }
                ok = false;
            }
            _ => {
                let names: Vec<&str> = checks.iter().map(|(n, _)| *n).collect();
                self.r.error(
                    header.clone(),
                    prefix,
                    format!(
                        "only one of `cmd`, `http` or `tcp` may be set, found {}",
                        names.join(" and ")
                    ),
                    None,
                );
                ok = false;
            }
        }
        match &mut h.check {
            HealthCheck::Http {
                url,
                expect_status: es,
                ca_file: ca,
            } => {
                if let Some((s, _)) = expect_status {
                    *es = s;
                }
                if let Some((p, span)) = ca_file {
                    if !url.starts_with("https://") {
                        self.r.error(
                            span,
                            &join(prefix, "ca_file"),
                            "`ca_file` only applies to an https:// check",
                            None,
                        );
                    }
                    *ca = Some(p);
                }
            }
            _ if ok => {
                if let Some((_, span)) = expect_status {
                    self.r.error(
                        span,
                        &join(prefix, "expect_status"),
                        "`expect_status` only applies to an `http` check",
                        None,
                    );
                }
                if let Some((_, span)) = ca_file {
                    self.r.error(
                        span,
                        &join(prefix, "ca_file"),
                        "`ca_file` only applies to an `http` check",
                        None,
                    );
                }
            }
            _ => {}
        }
        // Only a timeout the spec writes is compared, and only for the
        // agent's own probes (one at a time per interval); Podman allows a
        // `cmd` check's timeout to be longer than its interval. An unwritten
        // timeout is the default, at most the interval.
        if !timeout_written {
            h.timeout = h.timeout.min(h.interval);
        } else if h.timeout > h.interval && !matches!(h.check, HealthCheck::Cmd(_)) {
            self.r.error(
                header.clone(),
                &join(prefix, "timeout"),
                "the timeout of an `http` or `tcp` check is longer than its interval",
                None,
            );
        }
        ok.then_some(h)
    }

    fn network(&mut self, name: &str, t: &dyn TableLike, prefix: &str, header: Span) -> Network {
        let mut n = Network {
            name: name.to_string(),
            source: self.path.to_path_buf(),
            ..Default::default()
        };
        let mut subnet = None;
        let mut gateway = None;
        let entries = self.entries(t, prefix, Some(&keys::names(Table::Network)));
        for (k, v, _) in &entries {
            let key = join(prefix, k);
            match *k {
                "subnet" => {
                    n.subnet = self.parsed(v, &key, check_subnet).map(|(s, net)| {
                        subnet = Some(net);
                        s
                    })
                }
                "gateway" => {
                    n.gateway = self.parsed(v, &key, |s| {
                        s.parse::<std::net::IpAddr>()
                            .map(|ip| {
                                gateway = Some((ip, v.span()));
                                s.to_string()
                            })
                            .map_err(|_| format!("invalid gateway address {s:?}"))
                    })
                }
                "internal" => n.internal = self.boolean(v, &key).unwrap_or(false),
                "ipv6" => n.ipv6 = self.boolean(v, &key).unwrap_or(false),
                "external" => n.external = self.boolean(v, &key).unwrap_or(false),
                "driver" => {
                    n.driver = self
                        .choice(
                            v,
                            &key,
                            &[
                                ("bridge", "bridge"),
                                ("macvlan", "macvlan"),
                                ("ipvlan", "ipvlan"),
                            ],
                        )
                        .map(str::to_string)
                }
                "labels" => n.labels = self.string_map(v, &key, values::check_label_key),
                "quadlet" => self.raw(v, &key, Table::Network, Section::Network, &mut n.raw),
                k => self.raw_or_generic(Table::Network, k, v, &key, &mut n.settings, &mut n.raw),
            }
        }
        if n.external && entries.len() > 1 {
            self.r.error(
                header,
                prefix,
                "an external network is managed outside deploy-agent: `external = true` takes no other keys",
                None,
            );
        }
        if let Some((gw, span)) = gateway {
            match subnet {
                Some(net) if !net.contains(gw) => self.r.error(
                    span,
                    &join(prefix, "gateway"),
                    format!(
                        "gateway {gw} is not inside subnet {}",
                        n.subnet.as_deref().unwrap_or("")
                    ),
                    None,
                ),
                None => self.r.error(
                    span,
                    &join(prefix, "gateway"),
                    "a gateway needs a `subnet`",
                    None,
                ),
                _ => {}
            }
        }
        n
    }

    fn volume(&mut self, name: &str, t: &dyn TableLike, prefix: &str) -> Volume {
        let mut vol = Volume {
            name: name.to_string(),
            source: self.path.to_path_buf(),
            ..Default::default()
        };
        for (k, v, _) in self.entries(t, prefix, Some(&keys::names(Table::Volume))) {
            let key = join(prefix, k);
            match k {
                "driver" => {
                    vol.driver = self
                        .choice(v, &key, &[("local", "local"), ("image", "image")])
                        .map(str::to_string)
                }
                "labels" => vol.labels = self.string_map(v, &key, values::check_label_key),
                "quadlet" => self.raw(v, &key, Table::Volume, Section::Volume, &mut vol.raw),
                k => {
                    self.raw_or_generic(Table::Volume, k, v, &key, &mut vol.settings, &mut vol.raw)
                }
            }
        }
        vol
    }
}

/// A parsed CIDR, for the gateway check.
#[derive(Debug, Clone, Copy)]
struct Cidr {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl Cidr {
    fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::*;
        match (self.addr, ip) {
            (V4(a), V4(b)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(a) & mask == u32::from(b) & mask
            }
            (V6(a), V6(b)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

fn check_subnet(s: &str) -> Result<(String, Cidr), String> {
    let err = || {
        format!(
            "invalid subnet {s:?}: write an address and a prefix length, e.g. \"172.20.0.0/16\""
        )
    };
    let (ip, prefix) = s.split_once('/').ok_or_else(err)?;
    let addr: std::net::IpAddr = ip.parse().map_err(|_| err())?;
    let prefix: u8 = prefix.parse().map_err(|_| err())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max || prefix.to_string().len() != s.len() - ip.len() - 1 {
        return Err(err());
    }
    Ok((s.to_string(), Cidr { addr, prefix }))
}

fn check_http_url(s: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("invalid URL {s:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "invalid URL {s:?}: the scheme must be http or https"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("invalid URL {s:?}: no host"));
    }
    Ok(s.to_string())
}

fn check_tcp_addr(s: &str) -> Result<String, String> {
    let err = || format!("invalid TCP address {s:?}: write host:port, e.g. \"127.0.0.1:5432\"");
    let (host, port) = s.rsplit_once(':').ok_or_else(err)?;
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err(err());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(s.to_string()),
        _ => Err(err()),
    }
}

/// Whether an escape-hatch table may set `key` in `section`: a known key
/// (Quadlet's, by the newest Podman this agent knows; systemd's, by form),
/// not one a typed key renders, not one Quadlet or the agent sets itself.
pub(crate) fn raw_key_ok(
    table: Table,
    section: Section,
    key: &str,
) -> Result<(), (String, Option<String>)> {
    use crate::render::{quadlet_keys, PodmanVersion};
    if key.is_empty()
        || !key.starts_with(|c: char| c.is_ascii_alphabetic())
        || !key.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err((
            format!("{key:?} is not a unit-file key (letters and digits, starting with a letter)"),
            None,
        ));
    }
    if let Some(typed) = keys::typed_for(table, section, key) {
        return Err((
            format!("{key}= is what a typed key renders"),
            Some(format!("use `{}` instead", typed.name)),
        ));
    }
    if (section, key) == (Section::Image, "Creds") {
        return Err((
            "[Image] Creds= is refused: registry credentials in a unit file are a secret anyone who can read the Quadlet directory can read".into(),
            Some("put them in a file with `podman login --authfile FILE` and set `auth_file`".into()),
        ));
    }
    if section.is_systemd() {
        if OWNED_SYSTEMD_KEYS.contains(&(section, key)) {
            return Err((
                format!(
                    "[{}] {key}= is set by Quadlet or deploy-agent and cannot be changed",
                    section.name()
                ),
                None,
            ));
        }
        return Ok(());
    }
    let known: Vec<&str> = quadlet_keys::known(section, PodmanVersion::NEWEST).collect();
    if [
        "ContainerName",
        "PodName",
        "NetworkName",
        "VolumeName",
        "ServiceName",
    ]
    .contains(&key)
    {
        return Err((
            format!("{key}= is set by deploy-agent from the spec's name"),
            None,
        ));
    }
    if known.contains(&key) {
        return Ok(());
    }
    let hint = did_you_mean(key, known.iter().copied()).or_else(|| {
        Some(format!(
            "Podman {} Quadlet's [{}] keys: see podman-systemd.unit(5)",
            PodmanVersion::NEWEST,
            section.name()
        ))
    });
    Err((
        format!("[{}] {key}= is not a key Quadlet knows", section.name()),
        hint,
    ))
}
