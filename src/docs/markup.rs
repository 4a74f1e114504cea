//! Small helpers over the roff writer, so that the pages read as text:
//! in every text given here, `backquoted` words are set in bold (keys,
//! commands, values), the rest in roman; the writer escapes both.

use clap_mangen::roff::{bold, italic, roman, Inline, Roff};

/// One documented key of a TOML table.
pub(crate) struct Key {
    pub name: &'static str,
    /// Type and default, e.g. "duration, default `30s`".
    pub kind: &'static str,
    pub text: &'static str,
}

/// `text` with its `backquoted` spans in bold.
pub(crate) fn inline(text: &str) -> Vec<Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, s)| !s.is_empty())
        .map(|(i, s)| if i % 2 == 1 { bold(s) } else { roman(s) })
        .collect()
}

/// The `.TH` line of a page written here in full.
pub(crate) fn title(r: &mut Roff, name: &str, section: &str, source: &str, date: &str) {
    r.control("TH", [name, section, date, source, super::MANUAL]);
    layout(r);
}

/// No hyphenation and a ragged right margin: paths, unit names and
/// variables stay whole (and can be copied), lines have no wide gaps.
pub fn layout(r: &mut Roff) {
    r.control("nh", []);
    r.control("ad", ["l"]);
}

pub(crate) fn section(r: &mut Roff, title: &str) {
    r.control("SH", [title]);
}

pub(crate) fn subsection(r: &mut Roff, title: &str) {
    r.control("SS", [title]);
}

/// A paragraph.
pub(crate) fn para(r: &mut Roff, text: &str) {
    r.control("PP", []);
    r.text(inline(text));
}

/// A tagged paragraph: `tag` on its own line, `text` indented below.
pub(crate) fn item(r: &mut Roff, tag: &str, text: &str) {
    r.control("TP", []);
    r.text(inline(tag));
    r.text(inline(text));
}

/// A tagged paragraph whose tag is a file name (in italics).
pub(crate) fn file(r: &mut Roff, path: &str, text: &str) {
    r.control("TP", []);
    r.text([italic(path)]);
    r.text(inline(text));
}

/// Keys of a table: `name (kind)`, then what it does.
pub(crate) fn keys(r: &mut Roff, keys: &[Key]) {
    for k in keys {
        key_item(r, k.name, k.kind, k.text);
    }
}

/// One documented key: its name, type and default, and text.
pub(crate) fn key_item(r: &mut Roff, name: &str, kind: &str, text: &str) {
    r.control("TP", []);
    let mut tag = vec![bold(name), roman(" (")];
    tag.extend(inline(kind));
    tag.push(roman(")"));
    r.text(tag);
    r.text(inline(text));
}

/// Lines shown as they are (commands, file contents), indented.
pub(crate) fn literal(r: &mut Roff, lines: &str) {
    r.control("RS", ["4"]);
    r.control("nf", []);
    for line in lines.lines() {
        if line.is_empty() {
            r.control("sp", []);
        } else {
            r.text([roman(line)]);
        }
    }
    r.control("fi", []);
    r.control("RE", []);
}

/// An example: what it does, then the lines.
pub(crate) fn example(r: &mut Roff, what: &str, lines: &str) {
    para(r, what);
    literal(r, lines);
}

/// `page(section)` references, comma-separated, as one paragraph.
pub(crate) fn see_also(r: &mut Roff, pages: &[(&str, &str)]) {
    section(r, "SEE ALSO");
    let mut line = Vec::new();
    for (i, (page, sect)) in pages.iter().enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(*page));
        line.push(roman(format!("({sect})")));
    }
    r.text(line);
}
