//! `${VAR}` interpolation and `.env` files, as `docker compose config`
//! resolves them: at import time, recording every variable used.
//!
//! Forms: `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty),
//! `${VAR-default}` (unset), `${VAR:?error}`, `${VAR?error}`,
//! `${VAR:+alt}`, `${VAR+alt}`, and `$$` for a literal `$`. Defaults and
//! alternatives are interpolated themselves (`${A:-${B}}`). An unset
//! variable without a default becomes "" with a warning, as in Compose.
//! The process environment wins over the `.env` file.

use std::collections::BTreeMap;

use super::yaml::{Node, Val};

/// Where a variable's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Environment,
    EnvFile,
    Unset,
}

/// The variables one can use, and a record of the ones used.
#[derive(Debug, Default)]
pub struct Vars {
    process: BTreeMap<String, String>,
    env_file: BTreeMap<String, String>,
    /// Every variable looked up: its value (None: unset) and source.
    pub used: BTreeMap<String, (Option<String>, Source)>,
}

impl Vars {
    pub fn new(process: BTreeMap<String, String>, env_file: BTreeMap<String, String>) -> Vars {
        Vars {
            process,
            env_file,
            used: BTreeMap::new(),
        }
    }

    /// A variable's value without recording it: for secrets, whose values
    /// must not be listed in the specs.
    pub fn secret(&self, name: &str) -> Option<String> {
        self.process.get(name).or(self.env_file.get(name)).cloned()
    }

    /// Looks a variable up (process environment first), recording it.
    pub fn get(&mut self, name: &str) -> Option<String> {
        let (value, source) = match (self.process.get(name), self.env_file.get(name)) {
            (Some(v), _) => (Some(v.clone()), Source::Environment),
            (None, Some(v)) => (Some(v.clone()), Source::EnvFile),
            (None, None) => (None, Source::Unset),
        };
        self.used.insert(name.to_string(), (value.clone(), source));
        value
    }
}

/// Replaces every `${...}` in the string values of `node`; returns the
/// problems (with the key path) instead of stopping at the first.
pub fn node(n: &mut Node, path: &str, vars: &mut Vars, problems: &mut Vec<(String, String)>) {
    match &mut n.val {
        Val::Scalar(text, kind) => {
            if text.contains('$') {
                match string(text, vars) {
                    Ok(s) => {
                        *text = s;
                        *kind = super::yaml::Kind::Str;
                    }
                    Err(e) => problems.push((path.to_string(), e)),
                }
            }
        }
        Val::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                node(item, &format!("{path}[{i}]"), vars, problems);
            }
        }
        Val::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                let p = if path.is_empty() {
                    k.name.clone()
                } else {
                    format!("{path}.{}", k.name)
                };
                node(v, &p, vars, problems);
            }
        }
    }
}

/// Interpolates one string.
pub fn string(s: &str, vars: &mut Vars) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = closing_brace(r).ok_or_else(|| format!("unclosed `${{` in {s:?}"))?;
            out.push_str(&braced(&r[..end], vars)?);
            rest = &r[end + 1..];
        } else {
            let len = name_len(rest);
            if len == 0 {
                return Err(format!(
                    "invalid interpolation in {s:?}: `$` must start `${{NAME}}`, `$NAME` or `$$`"
                ));
            }
            out.push_str(&vars.get(&rest[..len]).unwrap_or_default());
            rest = &rest[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The index of the `}` closing a `${`, counting nested `${ }`.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn name_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.first()
        .is_none_or(|c| !(c.is_ascii_alphabetic() || *c == b'_'))
    {
        return 0;
    }
    b.iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count()
}

/// `NAME`, `NAME:-x`, `NAME-x`, `NAME:?x`, `NAME?x`, `NAME:+x`, `NAME+x`.
fn braced(inner: &str, vars: &mut Vars) -> Result<String, String> {
    let len = name_len(inner);
    let (name, op) = inner.split_at(len);
    if name.is_empty() {
        return Err(format!(
            "invalid interpolation `${{{inner}}}`: no variable name"
        ));
    }
    let value = vars.get(name);
    let (colon, op) = match op.strip_prefix(':') {
        Some(o) => (true, o),
        None => (false, op),
    };
    // With a colon, an empty value counts as unset.
    let set = value.as_deref().is_some_and(|v| !colon || !v.is_empty());
    let arg = op.get(1..).unwrap_or("");
    match op.chars().next() {
        None if !colon => Ok(value.unwrap_or_default()),
        Some('-') if set => Ok(value.unwrap_or_default()),
        Some('-') => string(arg, vars),
        Some('+') if set => string(arg, vars),
        Some('+') => Ok(String::new()),
        Some('?') if set => Ok(value.unwrap_or_default()),
        Some('?') => {
            let msg = string(arg, vars)?;
            Err(format!(
                "required variable {name} is missing a value: {msg}"
            ))
        }
        _ => Err(format!("invalid interpolation `${{{inner}}}`")),
    }
}

/// Parses a `.env` file the way Compose reads one: `KEY=VALUE` lines,
/// optional `export `, `#` comments, single quotes literal, double quotes
/// with `\n`-style escapes, unquoted values trimmed and cut at ` #`;
/// unquoted and double-quoted values are interpolated with the variables
/// defined above them and the process environment.
pub fn parse_env_file(
    text: &str,
    process: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, (usize, String)> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let (key, raw) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (line, ""),
        };
        if name_len(key) != key.len() {
            return Err((i + 1, format!("invalid variable name {key:?}")));
        }
        let mut vars = Vars::new(process.clone(), out.clone());
        let value = env_value(raw, &mut vars).map_err(|e| (i + 1, e))?;
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

fn env_value(raw: &str, vars: &mut Vars) -> Result<String, String> {
    if let Some(body) = raw.strip_prefix('\'') {
        return body
            .strip_suffix('\'')
            .map(str::to_string)
            .ok_or_else(|| "unclosed single quote".to_string());
    }
    if let Some(body) = raw.strip_prefix('"') {
        let body = body
            .strip_suffix('"')
            .ok_or_else(|| "unclosed double quote".to_string())?;
        let unescaped = body
            .replace("\\n", "\n")
            .replace("\\t", "\t")
            .replace("\\\"", "\"")
            .replace("\\\\", "\\");
        return string(&unescaped, vars);
    }
    let value = match raw.find(" #") {
        Some(i) => raw[..i].trim_end(),
        None => raw,
    };
    string(value, vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        let process = [("TAG", "16"), ("EMPTY", "")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let file = [("PORT", "8080"), ("TAG", "15")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        Vars::new(process, file)
    }

    fn i(s: &str) -> Result<String, String> {
        string(s, &mut vars())
    }

    #[test]
    fn forms() {
        assert_eq!(i("postgres:${TAG}").unwrap(), "postgres:16");
        assert_eq!(i("$PORT:80").unwrap(), "8080:80");
        assert_eq!(i("${NOPE:-5432}").unwrap(), "5432");
        assert_eq!(i("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(i("${EMPTY-d}").unwrap(), "");
        assert_eq!(i("${NOPE-d}").unwrap(), "d");
        assert_eq!(i("${TAG:+set}").unwrap(), "set");
        assert_eq!(i("${NOPE+set}").unwrap(), "");
        assert_eq!(i("${NOPE:-${PORT}}").unwrap(), "8080");
        assert_eq!(i("$${TAG} $$").unwrap(), "${TAG} $");
        assert_eq!(i("${NOPE}").unwrap(), "");
    }

    #[test]
    fn required_and_malformed() {
        assert!(i("${NOPE:?set NOPE}").unwrap_err().contains("set NOPE"));
        assert!(i("${EMPTY:?x}").is_err());
        assert_eq!(i("${EMPTY?x}").unwrap(), "");
        assert!(i("${TAG").unwrap_err().contains("unclosed"));
        assert!(i("$1").is_err());
        assert!(i("${:-x}").is_err());
        assert!(i("${TAG!x}").is_err());
    }

    #[test]
    fn records_what_was_used() {
        let mut v = vars();
        string("${TAG} ${PORT} ${NOPE:-x}", &mut v).unwrap();
        assert_eq!(v.used["TAG"], (Some("16".into()), Source::Environment));
        assert_eq!(v.used["PORT"], (Some("8080".into()), Source::EnvFile));
        assert_eq!(v.used["NOPE"], (None, Source::Unset));
    }

    #[test]
    fn env_file_syntax() {
        let text = "# c\nexport A=1\nB = 'x ${A}'\nC=\"l1\\nl2 ${A}\"\nD=v # note\nE=${A}2\nF\n";
        let env = parse_env_file(text, &BTreeMap::new()).unwrap();
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "x ${A}");
        assert_eq!(env["C"], "l1\nl2 1");
        assert_eq!(env["D"], "v");
        assert_eq!(env["E"], "12");
        assert_eq!(env["F"], "");
        assert_eq!(
            parse_env_file("A B=1\n", &BTreeMap::new()).unwrap_err().0,
            1
        );
    }
}
