//! A Quadlet / systemd unit file as systemd reads it, with line numbers:
//! `[Section]` headers, `Key=value` entries (repeated keys kept in order),
//! comment lines starting `#` or `;`, and lines continued by a trailing
//! `\` (as Quadlet's own parser reads them: each line trimmed, the `\`
//! removed, the lines joined; comment lines inside a continuation are
//! skipped). Values are kept raw (trimmed): whether a
//! value is one word or several is up to the key, see [`words`], which
//! splits the way Quadlet's `LookupAllStrv`/`LookupAllArgs` do (systemd's
//! `extract_first_word` with quotes and C escapes).

/// One `Key=value` line (or continued lines), located by its first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// A section and its entries, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

/// A parsed unit file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unit {
    pub sections: Vec<Section>,
}

/// A line systemd would refuse, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

impl Unit {
    /// Every entry of section `name`, in file order.
    pub fn section<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> {
        self.sections
            .iter()
            .filter(move |s| s.name == name)
            .flat_map(|s| s.entries.iter())
    }

    /// The last value of `key` in `section` (systemd's rule for single values).
    pub fn last(&self, section: &str, key: &str) -> Option<&Entry> {
        self.sections
            .iter()
            .rev()
            .filter(|s| s.name == section)
            .flat_map(|s| s.entries.iter().rev())
            .find(|e| e.key == key)
    }
}

/// Parses `text`. Errors: an entry before any section, a line that is
/// neither a header, an entry nor a comment, a header without `]`.
pub fn parse(text: &str) -> Result<Unit, SyntaxError> {
    let mut unit = Unit::default();
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    while let Some((n, raw)) = lines.next() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest.strip_suffix(']').ok_or_else(|| SyntaxError {
                line: n,
                message: format!("section header {line:?} has no closing `]`"),
            })?;
            unit.sections.push(Section {
                name: name.to_string(),
                line: n,
                entries: vec![],
            });
            continue;
        }
        let full = continued(line, &mut lines);
        let (key, value) = full.split_once('=').ok_or_else(|| SyntaxError {
            line: n,
            message: format!("{line:?} is not `Key=value`, a section header or a comment"),
        })?;
        let section = unit.sections.last_mut().ok_or_else(|| SyntaxError {
            line: n,
            message: format!("{:?} comes before any [Section]", key.trim()),
        })?;
        section.entries.push(Entry {
            key: key.trim().to_string(),
            value: value.trim().to_string(),
            line: n,
        });
    }
    Ok(unit)
}

/// `line` joined with the lines it continues into (trailing `\`).
fn continued<'a>(line: &str, lines: &mut impl Iterator<Item = (usize, &'a str)>) -> String {
    let mut full = String::new();
    let mut cur = line.to_string();
    loop {
        match cur.strip_suffix('\\') {
            Some(head) => full.push_str(head),
            None => {
                full.push_str(&cur);
                return full;
            }
        }
        // Comment lines inside a continuation are skipped (systemd).
        let next = lines.find(|(_, l)| {
            let t = l.trim_start();
            !(t.starts_with('#') || t.starts_with(';'))
        });
        match next {
            Some((_, l)) => cur = l.trim().to_string(),
            None => return full,
        }
    }
}

/// The words of `value` as Quadlet splits them: separated by whitespace,
/// `"..."` and `'...'` quote (and are removed), `\` escapes C-style
/// (`\n`, `\t`, `\\`, `\"`, `\xHH`, ...). Errors on an unclosed quote.
pub fn words(value: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => word.push(unescape(&mut chars)?),
                (q, None) if q == '"' || q == '\'' => quote = Some(q),
                (q, Some(open)) if q == open => quote = None,
                (w, None) if w.is_whitespace() => break,
                (c, _) => word.push(c),
            }
        }
        if let Some(q) = quote {
            return Err(format!("{value:?} has an unclosed {q}"));
        }
        out.push(word);
    }
}

/// The character a C escape (after `\`) stands for.
fn unescape(chars: &mut std::iter::Peekable<std::str::Chars>) -> Result<char, String> {
    let c = chars.next().ok_or("ends with a lone backslash")?;
    Ok(match c {
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        'a' => '\u{7}',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'v' => '\u{b}',
        's' => ' ',
        'x' => {
            let hex: String = (0..2).filter_map(|_| chars.next()).collect();
            u32::from_str_radix(&hex, 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| format!("\\x{hex} is not a hex escape"))?
        }
        other => other,
    })
}

/// systemd's boolean (`yes`/`true`/`on`/`1`, `no`/`false`/`off`/`0`).
pub fn boolean(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_repeated_keys_comments_and_lines() {
        let u = parse(
            "# head\n[Container]\nImage=a\n; note\nLabel=x=1\nLabel=y=2\n\n[Service]\nRestart=always\n",
        )
        .unwrap();
        let labels: Vec<_> = u
            .section("Container")
            .filter(|e| e.key == "Label")
            .collect();
        assert_eq!(labels.len(), 2);
        assert_eq!((labels[1].value.as_str(), labels[1].line), ("y=2", 6));
        assert_eq!(u.last("Service", "Restart").unwrap().line, 9);
    }

    #[test]
    fn continuation_joins_lines_and_skips_comments() {
        let u = parse("[Container]\nExec=a \\\n# c\n  b \\\n  c\nImage=i\n").unwrap();
        let e = u.last("Container", "Exec").unwrap();
        assert_eq!((e.value.as_str(), e.line), ("a b c", 2));
        assert_eq!(u.last("Container", "Image").unwrap().line, 6);
    }

    #[test]
    fn bad_lines_are_located() {
        assert_eq!(parse("Image=a\n").unwrap_err().line, 1);
        assert_eq!(parse("[Container]\n\njunk\n").unwrap_err().line, 3);
        assert_eq!(parse("[Container\n").unwrap_err().line, 1);
    }

    #[test]
    fn words_unquote_and_unescape() {
        assert_eq!(
            words(r#"a "b c" 'd "e"' f\ g "h\"i" x\x41"#).unwrap(),
            ["a", "b c", "d \"e\"", "f g", "h\"i", "xA"]
        );
        assert_eq!(words("  ").unwrap(), Vec::<String>::new());
        assert!(words("\"open").is_err());
    }

    #[test]
    fn booleans_as_systemd_reads_them() {
        assert_eq!(boolean("Yes"), Some(true));
        assert_eq!(boolean("off"), Some(false));
        assert_eq!(boolean("maybe"), None);
    }
}
