//! The imported specs as TOML text, in the style of the project's own
//! specs: one table per entry, keys aligned, short values inline, a
//! comment line above every value that is an approximation.

use std::fmt::Write;

/// A value of a spec key.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<String>),
    /// An inline table of strings, in this order.
    Map(Vec<(String, String)>),
    /// An inline table of already-rendered TOML values (ulimits).
    RawMap(Vec<(String, String)>),
    /// An array of inline tables of strings (secrets).
    Tables(Vec<Vec<(String, String)>>),
}

/// `key = value`, with the comments that go above it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: String,
    pub value: Value,
    pub notes: Vec<String>,
}

/// `[kind.NAME]` or `[kind.NAME.sub]` and its rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// Dotted path, each part quoted as needed: `["container", "web", "health"]`.
    pub path: Vec<String>,
    /// Comments above the table header.
    pub notes: Vec<String>,
    pub rows: Vec<Row>,
}

/// One spec file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct File {
    pub name: String,
    pub header: Vec<String>,
    pub tables: Vec<Table>,
}

/// Lists longer than this (as one line) are written one item per line.
const WRAP: usize = 88;

pub fn file(f: &File) -> String {
    let mut out = String::new();
    for line in &f.header {
        comment(&mut out, "", line);
    }
    for t in &f.tables {
        out.push('\n');
        table(&mut out, t);
    }
    out
}

fn table(out: &mut String, t: &Table) {
    for n in &t.notes {
        comment(out, "", n);
    }
    let path: Vec<String> = t.path.iter().map(|p| key(p)).collect();
    let _ = writeln!(out, "[{}]", path.join("."));
    let width = t.rows.iter().map(|r| key(&r.key).len()).max().unwrap_or(0);
    for r in &t.rows {
        for n in &r.notes {
            comment(out, "", n);
        }
        let k = key(&r.key);
        let _ = writeln!(out, "{k:width$} = {}", value(&r.value, width + 3));
    }
}

fn comment(out: &mut String, indent: &str, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "{indent}# {line}");
    }
}

/// A bare key, or a quoted one when it has other characters.
pub fn key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        k.to_string()
    } else {
        string(k)
    }
}

/// A TOML basic string.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn value(v: &Value, indent: usize) -> String {
    match v {
        Value::Str(s) => string(s),
        Value::Int(i) => i.to_string(),
        Value::Float(f) if f.fract() == 0.0 => format!("{f:.1}"),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::List(items) => list(items.iter().map(|s| string(s)).collect(), indent),
        Value::Map(kv) => inline(kv.iter().map(|(k, v)| (k.clone(), string(v)))),
        Value::RawMap(kv) => inline(kv.iter().cloned()),
        Value::Tables(ts) => list(
            ts.iter()
                .map(|kv| inline(kv.iter().map(|(k, v)| (k.clone(), string(v)))))
                .collect(),
            indent,
        ),
    }
}

fn inline(kv: impl Iterator<Item = (String, String)>) -> String {
    let parts: Vec<String> = kv.map(|(k, v)| format!("{} = {v}", key(&k))).collect();
    if parts.is_empty() {
        "{}".into()
    } else {
        format!("{{ {} }}", parts.join(", "))
    }
}

fn list(items: Vec<String>, indent: usize) -> String {
    let one = format!("[{}]", items.join(", "));
    if one.len() + indent <= WRAP || items.len() < 2 {
        return one;
    }
    let mut out = String::from("[\n");
    for i in items {
        let _ = writeln!(out, "    {i},");
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, value: Value) -> Row {
        Row {
            key: key.into(),
            value,
            notes: vec![],
        }
    }

    #[test]
    fn writes_aligned_rows_and_notes() {
        let mut t = Table {
            path: vec!["container".into(), "a.b".into()],
            notes: vec![],
            rows: vec![
                row("image", Value::Str("x".into())),
                row("read_only", Value::Bool(true)),
                row("env", Value::Map(vec![("A B".into(), "q\"\n".into())])),
            ],
        };
        t.rows[1].notes.push("approximation".into());
        let f = File {
            name: "a.toml".into(),
            header: vec!["head".into()],
            tables: vec![t],
        };
        assert_eq!(
            file(&f),
            "# head\n\n[container.\"a.b\"]\nimage     = \"x\"\n# approximation\nread_only = true\nenv       = { \"A B\" = \"q\\\"\\n\" }\n"
        );
    }

    #[test]
    fn long_lists_wrap_and_parse_back() {
        let items: Vec<String> = (0..20).map(|i| format!("argument-{i}")).collect();
        let text = format!(
            "x = {}\ny = {}\n",
            value(&Value::List(items.clone()), 4),
            value(&Value::Float(1.0), 0)
        );
        assert!(text.contains("[\n    \"argument-0\",\n"));
        let doc: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(doc["x"].as_array().unwrap().len(), 20);
        assert_eq!(doc["y"].as_float(), Some(1.0));
    }

    #[test]
    fn control_characters_are_escaped() {
        let s = string("a\u{1}b\\");
        assert_eq!(s, "\"a\\u0001b\\\\\"");
        let doc: toml::Table = toml::from_str(&format!("k = {s}")).unwrap();
        assert_eq!(doc["k"].as_str(), Some("a\u{1}b\\"));
    }
}
