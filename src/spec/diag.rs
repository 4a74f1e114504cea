//! Spec diagnostics: one error = file, line, column, key, message, hint.
//!
//! Validation never stops at the first problem; every error found is
//! collected into [`SpecErrors`] so `validate` can print them all.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in one spec file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub file: PathBuf,
    /// 1-based line and column, when the problem has a place in the file.
    pub line: Option<usize>,
    pub col: Option<usize>,
    /// Dotted key path, e.g. `container.web.health.interval`.
    pub key: Option<String>,
    pub message: String,
    /// "did you mean ..." and similar advice.
    pub hint: Option<String>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.col {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            // Keys come from the file as written: a NUL, an escape sequence
            // or a bidi override must not reach the terminal or the journal.
            for c in key.chars() {
                if super::values::check_unit_safe(c.encode_utf8(&mut [0; 4])).is_ok() {
                    write!(f, "{c}")?;
                } else {
                    write!(f, "{}", c.escape_unicode())?;
                }
            }
            write!(f, ": ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// Every error found in a spec directory, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

impl SpecErrors {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn iter(&self) -> impl Iterator<Item = &SpecError> {
        self.0.iter()
    }
}

/// Collects errors for one file, turning byte spans into line:col.
pub(crate) struct Reporter<'a> {
    file: &'a Path,
    src: &'a str,
    pub(crate) errors: Vec<SpecError>,
}

impl<'a> Reporter<'a> {
    pub(crate) fn new(file: &'a Path, src: &'a str) -> Self {
        Reporter {
            file,
            src,
            errors: Vec::new(),
        }
    }

    pub(crate) fn at(&self, span: Option<Range<usize>>) -> Loc {
        match span {
            Some(span) => {
                let (line, col) = line_col(self.src, span.start);
                Loc {
                    file: self.file.to_path_buf(),
                    line: Some(line),
                    col: Some(col),
                }
            }
            None => Loc {
                file: self.file.to_path_buf(),
                line: None,
                col: None,
            },
        }
    }

    pub(crate) fn error(
        &mut self,
        span: Option<Range<usize>>,
        key: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let loc = self.at(span);
        self.errors.push(loc.error(key, message, hint));
    }
}

/// A place in a spec file, kept for errors found after parsing (cross-file checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub col: Option<usize>,
}

impl Loc {
    pub fn file(file: &Path) -> Loc {
        Loc {
            file: file.to_path_buf(),
            line: None,
            col: None,
        }
    }

    pub fn error(&self, key: &str, message: impl Into<String>, hint: Option<String>) -> SpecError {
        SpecError {
            file: self.file.clone(),
            line: self.line,
            col: self.col,
            key: (!key.is_empty()).then(|| key.to_string()),
            message: message.into(),
            hint,
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(word, c);
        let dist = strsim::damerau_levenshtein(word, c);
        let close = dist <= 2.max(word.len() / 3) || score >= 0.85;
        if close && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_lines_and_chars() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        // 'é' is two bytes but one column
        assert_eq!(line_col(src, 9), (2, 3));
    }

    #[test]
    fn suggests_near_misses_only() {
        let keys = ["image", "command", "entrypoint", "ports"];
        assert_eq!(
            did_you_mean("imgae", keys).as_deref(),
            Some("did you mean `image`?")
        );
        assert_eq!(
            did_you_mean("port", keys).as_deref(),
            Some("did you mean `ports`?")
        );
        assert_eq!(did_you_mean("zzzzzzzz", keys), None);
    }

    #[test]
    fn display_has_file_line_col_key_and_hint() {
        let e = SpecError {
            file: "specs/web.toml".into(),
            line: Some(3),
            col: Some(1),
            key: Some("container.web.imgae".into()),
            message: "unknown key".into(),
            hint: Some("did you mean `image`?".into()),
        };
        assert_eq!(
            e.to_string(),
            "specs/web.toml:3:1: container.web.imgae: unknown key (did you mean `image`?)"
        );
        let e = SpecError {
            key: Some("container.web.im\u{1b}[2J\u{202E}age\0".into()),
            hint: None,
            ..e
        };
        assert_eq!(
            e.to_string(),
            "specs/web.toml:3:1: container.web.im\\u{1b}[2J\\u{202e}age\\u{0}: unknown key"
        );
    }
}
