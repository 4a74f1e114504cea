//! Quadlet units -> spec tables. Each `[Section] Key=` is carried over by,
//! in this order: a hand-written conversion for keys whose spec form
//! differs from Quadlet's (`custom.rs`: references, typed values); the
//! spec key the registry (`spec::keys`) declares for that Quadlet key and
//! section, read by the key's type and checked by its validator; the
//! escape hatch (`[container.NAME.quadlet|unit|service|install]`, checked
//! by the spec parser's own rule); else a located [`Problem`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::unit::{self, Entry, Unit};
use crate::import::compose::emit::{Row, Table as TomlTable, Value};
use crate::spec::keys::{self, Key, Section, Table, Ty};

/// Something that could not be carried over, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// The conversion of one unit file: its tables, what it references.
pub struct Ctx<'a> {
    pub file: PathBuf,
    /// `[container.NAME]`, `[pod.NAME]`, ...: the spec table's kind and name.
    pub kind: &'static str,
    pub name: String,
    pub tables: Vec<TomlTable>,
    pub problems: Vec<Problem>,
    /// Unit files this one names (`x.network`, `x.volume`, `x.pod`).
    pub refs: BTreeSet<String>,
    /// Networks used by name that no `.network` file declares.
    pub external: Vec<String>,
    /// The unit files being imported (to tell a managed container's
    /// `x.service` from another unit).
    pub known: &'a BTreeSet<String>,
    /// The spec name of each unit file (`x.network` -> its `NetworkName=`).
    pub names: &'a BTreeMap<String, String>,
    /// The whole file, for keys read together (`RemapUsers=` and `RemapUid=`).
    pub unit: &'a Unit,
}

impl Ctx<'_> {
    pub fn problem(&mut self, e: &Entry, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            line: e.line,
            key: e.key.clone(),
            message: message.into(),
        });
    }

    /// The table `[kind.NAME(.sub)]`, created on first use.
    pub fn table(&mut self, sub: Option<&str>) -> &mut TomlTable {
        let mut path = vec![self.kind.to_string(), self.name.clone()];
        path.extend(sub.map(str::to_string));
        let i = match self.tables.iter().position(|t| t.path == path) {
            Some(i) => i,
            None => {
                self.tables.push(TomlTable {
                    path,
                    ..Default::default()
                });
                self.tables.len() - 1
            }
        };
        &mut self.tables[i]
    }

    /// `key = value` in `[kind.NAME(.sub)]`, with comments above it.
    pub fn set(&mut self, sub: Option<&str>, key: &str, value: Value, notes: Vec<String>) {
        self.table(sub).rows.push(Row {
            key: key.to_string(),
            value,
            notes,
        });
    }

    /// Items added to the list `key` (created if missing).
    pub fn append(&mut self, sub: Option<&str>, key: &str, items: Vec<String>, notes: Vec<String>) {
        let t = self.table(sub);
        let Some(row) = t.rows.iter_mut().find(|r| r.key == key) else {
            return t.rows.push(Row {
                key: key.to_string(),
                value: Value::List(items),
                notes,
            });
        };
        if let Value::Str(one) = &row.value {
            row.value = Value::List(vec![one.clone()]);
        }
        if let Value::List(l) = &mut row.value {
            l.extend(items);
        }
        row.notes.extend(notes);
    }

    /// A value carried over with a difference, said in a comment.
    pub fn approx(&mut self, sub: Option<&str>, key: &str, value: Value, why: &str) {
        self.set(sub, key, value, vec![format!("approximation: {why}")]);
    }

    /// The spec name of the unit file `file` (`x.network`), recorded as a
    /// reference.
    pub fn reference(&mut self, file: &str) -> String {
        self.refs.insert(file.to_string());
        match self.names.get(file) {
            Some(n) => n.clone(),
            None => format!("systemd-{}", file.rsplit_once('.').map_or(file, |(s, _)| s)),
        }
    }

    /// A comment on the main table (something dropped on purpose).
    pub fn note(&mut self, text: String) {
        self.table(None).notes.push(text);
    }
}

/// Entries grouped by key, in the order keys first appear.
pub fn by_key<'u>(entries: impl Iterator<Item = &'u Entry>) -> Vec<(String, Vec<&'u Entry>)> {
    let mut out: Vec<(String, Vec<&Entry>)> = Vec::new();
    for e in entries {
        match out.iter_mut().find(|(k, _)| *k == e.key) {
            Some((_, v)) => v.push(e),
            None => out.push((e.key.clone(), vec![e])),
        }
    }
    out
}

/// The spec section for a unit-file section name.
pub fn section_of(name: &str) -> Option<Section> {
    [
        Section::Unit,
        Section::Container,
        Section::Pod,
        Section::Network,
        Section::Volume,
        Section::Image,
        Section::Service,
        Section::Install,
    ]
    .into_iter()
    .find(|s| s.name() == name)
}

/// Converts every section of `unit` for the spec table `table`.
pub fn sections(cx: &mut Ctx, unit: &Unit, table: Table, main: Section) {
    for s in &unit.sections {
        let section = section_of(&s.name).filter(|x| *x == main || x.is_systemd());
        let Some(section) = section else {
            let e = Entry {
                key: format!("[{}]", s.name),
                value: String::new(),
                line: s.line,
            };
            cx.problem(&e, "this section is not carried over (no spec equivalent)");
            continue;
        };
        for (key, entries) in by_key(s.entries.iter()) {
            one_key(cx, table, section, &key, &entries);
        }
    }
}

/// One key with all its entries (repeated keys in order).
fn one_key(cx: &mut Ctx, table: Table, section: Section, key: &str, entries: &[&Entry]) {
    if super::custom::convert(cx, section, key, entries) {
        return;
    }
    match keys::typed_for(table, section, key) {
        Some(k) if k.is_generic() => generic(cx, k, entries),
        Some(k) => cx.problem(
            entries[0],
            format!(
                "the importer has no conversion to `{}` for this value",
                k.name
            ),
        ),
        None => raw(cx, table, section, key, entries),
    }
}

/// The sub-table of a typed key: `[container.NAME.health]`, ...
fn sub_of(k: &Key) -> Option<&'static str> {
    match k.table {
        Table::Health => Some("health"),
        Table::Resources => Some("resources"),
        _ => None,
    }
}

/// A registry key read by its type from the entries, checked by its
/// validator.
fn generic(cx: &mut Ctx, k: &'static Key, entries: &[&Entry]) {
    let qkey = k.quadlet.map(|(_, q)| q).unwrap_or_default();
    let last = *entries.last().expect("a key has an entry");
    let is_list = matches!(k.ty, Ty::List(_) | Ty::Map(..));
    if !is_list && last.value.is_empty() {
        return; // `Key=` unsets a single value: Quadlet writes nothing
    }
    match typed_value(k, qkey, entries) {
        Ok(Value::List(l)) if l.is_empty() => {}
        Ok(Value::Map(m)) if m.is_empty() => {}
        Ok(Value::List(l)) => cx.append(sub_of(k), k.name, l, vec![]),
        Ok(v) => cx.set(sub_of(k), k.name, v, vec![]),
        Err((e, msg)) => cx.problem(e.unwrap_or(last), msg),
    }
}

type Fail<'e> = (Option<&'e Entry>, String);

/// The items of a list-like key: words for keys Quadlet splits, else one
/// per line. An empty value resets the list, as in Quadlet and systemd.
pub fn items<'e>(qkey: &str, entries: &[&'e Entry]) -> Result<Vec<(String, &'e Entry)>, Fail<'e>> {
    let split = keys::SPLIT_KEYS.contains(&qkey);
    let mut out = Vec::new();
    for e in entries {
        if e.value.is_empty() {
            out.clear();
            continue;
        }
        if split {
            let ws = unit::words(&e.value).map_err(|m| (Some(*e), m))?;
            out.extend(ws.into_iter().map(|w| (w, *e)));
        } else {
            out.push((e.value.clone(), *e));
        }
    }
    Ok(out)
}

fn checked<'e>(check: keys::Check, s: &str, e: &'e Entry) -> Result<(), Fail<'e>> {
    check(s).map_err(|m| (Some(e), m))
}

fn typed_value<'e>(k: &Key, qkey: &str, entries: &[&'e Entry]) -> Result<Value, Fail<'e>> {
    let last = *entries.last().expect("a key has an entry");
    let v = last.value.as_str();
    let not = |what: &str| (Some(last), format!("{v:?} is not {what}"));
    Ok(match k.ty {
        Ty::List(check) => {
            let its = items(qkey, entries)?;
            for (s, e) in &its {
                checked(check, s, e)?;
            }
            Value::List(its.into_iter().map(|(s, _)| s).collect())
        }
        Ty::Map(kc, vc) => {
            let mut m = Vec::new();
            for (s, e) in items(qkey, entries)? {
                let (a, b) = s
                    .split_once('=')
                    .ok_or_else(|| (Some(e), format!("{s:?} is not NAME=VALUE")))?;
                checked(kc, a, e)?;
                checked(vc, b, e)?;
                m.push((a.to_string(), b.to_string()));
            }
            Value::Map(m)
        }
        Ty::Bool => Value::Bool(unit::boolean(v).ok_or_else(|| not("a boolean"))?),
        Ty::BoolOr(opts) => match unit::boolean(v) {
            Some(b) => Value::Bool(b),
            None if opts.contains(&v) => Value::Str(v.into()),
            None => return Err(not("a boolean or one of the words the key takes")),
        },
        Ty::Int(lo, hi) => match v.parse::<i64>() {
            Ok(n) if (lo..=hi).contains(&n) => Value::Int(n),
            _ => return Err(not(&format!("an integer from {lo} to {hi}"))),
        },
        Ty::Duration => Value::Str(duration(v).map_err(|m| (Some(last), m))?),
        Ty::Size => Value::Str(v.to_string()),
        Ty::Str(check) => {
            let v = super::custom::unquoted(v);
            checked(check, &v, last)?;
            Value::Str(v)
        }
        Ty::Choice(opts) if opts.contains(&v) => Value::Str(v.into()),
        Ty::Choice(opts) => return Err(not(&format!("one of {}", opts.join(", ")))),
        Ty::Argv => Value::List(argv(v).map_err(|m| (Some(last), m))?),
        Ty::Custom => unreachable!("custom keys are converted in custom.rs"),
    })
}

/// An exec-form value: a JSON array as is, else its words.
pub fn argv(v: &str) -> Result<Vec<String>, String> {
    if v.starts_with('[') {
        return serde_json::from_str(v).map_err(|e| format!("{v:?} is not a JSON array: {e}"));
    }
    unit::words(v)
}

/// A systemd time span as a spec duration: `10` is seconds, `5min 3s` loses
/// its spaces; checked with the spec's own parser.
pub fn duration(v: &str) -> Result<String, String> {
    let s: String = if v.bytes().all(|b| b.is_ascii_digit()) {
        format!("{v}s")
    } else {
        v.split_whitespace().collect::<Vec<_>>().concat()
    };
    let s = s.replace("sec", "s");
    crate::spec::values::parse_duration(&s)?;
    Ok(s)
}

/// The escape-hatch table for a section.
fn raw_table(section: Section) -> &'static str {
    match section {
        Section::Unit => "unit",
        Section::Service => "service",
        Section::Install => "install",
        _ => "quadlet",
    }
}

/// A key without a typed spec key: the escape hatch, where the parser's
/// rule allows the key.
fn raw(cx: &mut Ctx, table: Table, section: Section, key: &str, entries: &[&Entry]) {
    if let Err((msg, hint)) = crate::spec::parse::raw_key_ok(table, section, key) {
        let hint = hint.map(|h| format!(" ({h})")).unwrap_or_default();
        return cx.problem(entries[0], format!("{msg}{hint}"));
    }
    let mut vals = Vec::new();
    for e in entries {
        if e.value.is_empty() || e.value.ends_with('\\') {
            return cx.problem(e, "an empty value (a reset) is not carried over");
        }
        vals.push(e.value.clone());
    }
    let value = match <[String; 1]>::try_from(vals) {
        Ok([one]) => Value::Str(one),
        Err(many) => Value::List(many),
    };
    match value {
        Value::List(l) => cx.append(Some(raw_table(section)), key, l, vec![]),
        v => cx.set(Some(raw_table(section)), key, v, vec![]),
    }
}
