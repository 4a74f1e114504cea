//! Compose YAML -> a small positioned tree ([`Node`]).
//!
//! Built from saphyr-parser's events rather than a ready-made document type,
//! because the importer needs what those drop: the line of every key and
//! value (errors say `file:line`), the custom tags Compose defines
//! (`!reset`, `!override`), and the YAML 1.1 merge key `<<` that Compose
//! files use with anchors (`<<: *defaults`), which YAML 1.2 parsers leave
//! as an ordinary key. Aliases are expanded with a node budget, so an alias
//! bomb is an error, not an out-of-memory.

use std::path::PathBuf;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Where a node starts: file and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    pub file: Arc<PathBuf>,
    pub line: usize,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// How a plain scalar resolves under the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str,
}

/// The Compose tags on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tag {
    #[default]
    None,
    /// `!reset`: drop what earlier files said.
    Reset,
    /// `!override`: replace what earlier files said instead of merging.
    Override,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// The text as written (after interpolation) and what it resolves to.
    Scalar(String, Kind),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub at: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub at: Pos,
    pub tag: Tag,
    pub val: Val,
}

/// A YAML problem: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub at: Pos,
    pub message: String,
}

/// Most nodes a document may expand to (aliases included).
const NODE_BUDGET: usize = 1_000_000;

impl Node {
    pub fn scalar(at: Pos, text: &str, kind: Kind) -> Node {
        Node {
            at,
            tag: Tag::None,
            val: Val::Scalar(text.to_string(), kind),
        }
    }

    /// A scalar's text; `None` for null, a sequence or a mapping.
    pub fn str(&self) -> Option<&str> {
        match &self.val {
            Val::Scalar(_, Kind::Null) => None,
            Val::Scalar(s, _) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.val, Val::Scalar(_, Kind::Null))
    }

    pub fn map(&self) -> Option<&[(Key, Node)]> {
        match &self.val {
            Val::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn seq(&self) -> Option<&[Node]> {
        match &self.val {
            Val::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// What the node is, in an error message's words.
    pub fn what(&self) -> &'static str {
        match &self.val {
            Val::Scalar(_, Kind::Null) => "null",
            Val::Scalar(_, Kind::Bool(_)) => "a boolean",
            Val::Scalar(_, Kind::Int(_) | Kind::Float(_)) => "a number",
            Val::Scalar(_, Kind::Str) => "a string",
            Val::Seq(_) => "a list",
            Val::Map(_) => "a mapping",
        }
    }
}

/// Parses the first document of `text` (an empty file is an empty mapping).
pub fn parse(file: &Arc<PathBuf>, text: &str) -> Result<Node, YamlError> {
    let mut b = Builder {
        file: file.clone(),
        stack: vec![],
        anchors: Default::default(),
        nodes: 0,
        done: None,
    };
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| YamlError {
            at: b.pos_line(e.marker().line()),
            message: e.info().to_string(),
        })?;
        b.event(ev, span)?;
        if b.done.is_some() {
            break;
        }
    }
    let empty = Node {
        at: b.pos_line(1),
        tag: Tag::None,
        val: Val::Map(vec![]),
    };
    Ok(b.done.unwrap_or(empty))
}

/// A collection being built, with its anchor id and pending key.
struct Open {
    node: Node,
    anchor: usize,
    key: Option<Key>,
}

struct Builder {
    file: Arc<PathBuf>,
    stack: Vec<Open>,
    anchors: std::collections::HashMap<usize, Node>,
    nodes: usize,
    done: Option<Node>,
}

impl Builder {
    fn pos_line(&self, line: usize) -> Pos {
        Pos {
            file: self.file.clone(),
            line,
        }
    }

    fn event(&mut self, ev: Event<'_>, span: Span) -> Result<(), YamlError> {
        let at = self.pos_line(span.start.line());
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let tag = compose_tag(tag.as_deref());
                let kind = if style == ScalarStyle::Plain {
                    resolve(&text)
                } else {
                    Kind::Str
                };
                let node = Node {
                    at,
                    tag,
                    val: Val::Scalar(text.into_owned(), kind),
                };
                self.add(node, anchor)
            }
            Event::SequenceStart(anchor, tag) => self.open(at, anchor, tag.as_deref(), false),
            Event::MappingStart(anchor, tag) => self.open(at, anchor, tag.as_deref(), true),
            Event::SequenceEnd | Event::MappingEnd => {
                let open = self.stack.pop().expect("balanced events");
                let mut node = open.node;
                if let Val::Map(entries) = node.val {
                    node.val = Val::Map(merge_keys(entries)?);
                }
                self.add(node, open.anchor)
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().ok_or_else(|| YamlError {
                    at: at.clone(),
                    message: "alias to an unknown anchor".into(),
                })?;
                self.count(count_nodes(&node), &at)?;
                self.add(node, 0)
            }
            _ => Ok(()),
        }
    }

    fn open(
        &mut self,
        at: Pos,
        anchor: usize,
        tag: Option<&saphyr_parser::Tag>,
        map: bool,
    ) -> Result<(), YamlError> {
        let val = if map {
            Val::Map(vec![])
        } else {
            Val::Seq(vec![])
        };
        let node = Node {
            at,
            tag: compose_tag(tag),
            val,
        };
        self.stack.push(Open {
            node,
            anchor,
            key: None,
        });
        Ok(())
    }

    fn count(&mut self, n: usize, at: &Pos) -> Result<(), YamlError> {
        self.nodes += n;
        if self.nodes > NODE_BUDGET {
            return Err(YamlError {
                at: at.clone(),
                message: format!("the document expands to more than {NODE_BUDGET} nodes (aliases)"),
            });
        }
        Ok(())
    }

    fn add(&mut self, node: Node, anchor: usize) -> Result<(), YamlError> {
        self.count(1, &node.at)?;
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let Some(parent) = self.stack.last_mut() else {
            self.done = Some(node);
            return Ok(());
        };
        match &mut parent.node.val {
            Val::Seq(items) => items.push(node),
            Val::Map(entries) => match parent.key.take() {
                Some(key) => entries.push((key, node)),
                None => {
                    let name = match &node.val {
                        Val::Scalar(s, _) => s.clone(),
                        _ => {
                            return Err(YamlError {
                                at: node.at,
                                message: "a mapping key must be a plain value".into(),
                            })
                        }
                    };
                    parent.key = Some(Key { name, at: node.at });
                }
            },
            Val::Scalar(..) => unreachable!("scalars are never open"),
        }
        Ok(())
    }
}

fn compose_tag(tag: Option<&saphyr_parser::Tag>) -> Tag {
    match tag {
        Some(t) if t.handle == "!" && t.suffix == "reset" => Tag::Reset,
        Some(t) if t.handle == "!" && t.suffix == "override" => Tag::Override,
        _ => Tag::None,
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
pub fn resolve(s: &str) -> Kind {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" => return Kind::Bool(true),
        "false" | "False" | "FALSE" => return Kind::Bool(false),
        _ => {}
    }
    let digits = |t: &str, radix| !t.is_empty() && i64::from_str_radix(t, radix).is_ok();
    if let Some(h) = s.strip_prefix("0x") {
        if digits(h, 16) {
            return Kind::Int(i64::from_str_radix(h, 16).unwrap_or(0));
        }
    }
    if let Some(o) = s.strip_prefix("0o") {
        if digits(o, 8) {
            return Kind::Int(i64::from_str_radix(o, 8).unwrap_or(0));
        }
    }
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = s.parse() {
            return Kind::Int(i);
        }
    }
    let floaty = body.bytes().any(|b| b.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if floaty {
        if let Ok(f) = s.parse() {
            return Kind::Float(f);
        }
    }
    Kind::Str
}

fn count_nodes(n: &Node) -> usize {
    1 + match &n.val {
        Val::Scalar(..) => 0,
        Val::Seq(s) => s.iter().map(count_nodes).sum(),
        Val::Map(m) => m.iter().map(|(_, v)| count_nodes(v)).sum(),
    }
}

/// Applies `<<` merge keys: the mapping (or list of mappings, earlier ones
/// winning) under `<<` supplies the keys the mapping does not set itself.
fn merge_keys(entries: Vec<(Key, Node)>) -> Result<Vec<(Key, Node)>, YamlError> {
    if !entries.iter().any(|(k, _)| k.name == "<<") {
        return Ok(entries);
    }
    let mut own = Vec::new();
    let mut sources = Vec::new();
    for (k, v) in entries {
        if k.name != "<<" {
            own.push((k, v));
            continue;
        }
        match v.val {
            Val::Map(m) => sources.push(m),
            Val::Seq(items) => {
                for item in items {
                    match item.val {
                        Val::Map(m) => sources.push(m),
                        _ => return Err(merge_error(&item.at)),
                    }
                }
            }
            _ => return Err(merge_error(&v.at)),
        }
    }
    for source in sources {
        for (k, v) in source {
            if !own.iter().any(|(o, _)| o.name == k.name) {
                own.push((k, v));
            }
        }
    }
    Ok(own)
}

fn merge_error(at: &Pos) -> YamlError {
    YamlError {
        at: at.clone(),
        message: "`<<` (merge key) takes a mapping or a list of mappings".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Node {
        parse(&Arc::new(PathBuf::from("c.yaml")), text).unwrap()
    }

    #[test]
    fn keeps_lines_of_keys_and_values() {
        let n = p("a: 1\nb:\n  - x\n  - 'y'\n");
        let (k, v) = &n.map().unwrap()[1];
        assert_eq!((k.name.as_str(), k.at.line), ("b", 2));
        assert_eq!(v.seq().unwrap()[1].at.line, 4);
        assert_eq!(
            n.get("a").unwrap().val,
            Val::Scalar("1".into(), Kind::Int(1))
        );
    }

    #[test]
    fn anchors_and_merge_keys() {
        let n = p("x: &d {a: 1, b: 2}\ny:\n  <<: *d\n  b: 3\nz:\n  <<: [{c: 1}, {c: 2}]\n");
        let y = n.get("y").unwrap();
        assert_eq!(y.get("a").unwrap().str(), Some("1"));
        assert_eq!(y.get("b").unwrap().str(), Some("3"));
        assert_eq!(n.get("z").unwrap().get("c").unwrap().str(), Some("1"));
        assert!(parse(&Arc::new("f".into()), "a:\n  <<: 3\n").is_err());
    }

    #[test]
    fn compose_tags_and_quoting() {
        let n = p("a: !reset null\nb: !override [1]\nc: '5'\nd: yes\n");
        assert_eq!(n.get("a").unwrap().tag, Tag::Reset);
        assert_eq!(n.get("b").unwrap().tag, Tag::Override);
        assert_eq!(n.get("c").unwrap().val, Val::Scalar("5".into(), Kind::Str));
        // YAML 1.2: `yes` is a string.
        assert_eq!(
            n.get("d").unwrap().val,
            Val::Scalar("yes".into(), Kind::Str)
        );
    }

    #[test]
    fn scalar_resolution() {
        assert_eq!(resolve("0.5"), Kind::Float(0.5));
        assert_eq!(resolve("-3"), Kind::Int(-3));
        assert_eq!(resolve("0x1F"), Kind::Int(31));
        assert_eq!(resolve("~"), Kind::Null);
        assert_eq!(resolve("1.2.3"), Kind::Str);
        assert_eq!(resolve("8080:80"), Kind::Str);
    }

    #[test]
    fn alias_bomb_is_an_error() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let prev = format!("*a{}", i - 1);
            let list = vec![prev; 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{list}]\n"));
        }
        let e = parse(&Arc::new("b.yaml".into()), &text).unwrap_err();
        assert!(e.message.contains("more than"), "{e:?}");
    }

    #[test]
    fn syntax_error_has_a_line() {
        let e = parse(&Arc::new("b.yaml".into()), "a: 1\nb: [1,\n").unwrap_err();
        assert!(e.at.line >= 2, "{e:?}");
    }
}
