//! `deploy-agent import compose`: a Compose project -> spec files.
//!
//! Stages, one module each: `yaml` (parse, keeping lines), `interpolate`
//! (`.env`, `${VAR}`), `merge` (several `-f` files, `extends`), `convert`
//! (the model -> spec tables, refusing what a spec cannot say) and `emit`
//! (TOML text). This module reads the files (through `userfile`), runs
//! the stages, checks the result with the spec parser, and writes it.
//!
//! No crate models Compose here: `compose_spec` (what podlet uses) is built
//! on serde_yaml, which is archived and drops the positions every refusal
//! needs (`file:line`), so the model is the positioned YAML tree itself.

pub mod convert;
pub mod emit;
pub mod interpolate;
pub mod merge;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use super::WriteError;
pub use convert::{Problem, Scope};
use interpolate::{Source, Vars};
use yaml::{Node, Pos, Val};

/// Largest Compose, `.env` or extended file read.
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// Largest secret or config content read.
pub const MAX_PAYLOAD_BYTES: u64 = 1 << 20;
/// First line of every file the importer writes (how it knows its own).
pub const MARK: &str = "# Imported from Compose by deploy-agent import compose.";

/// Compose's default file names, in its order of preference.
const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];
const OVERRIDE_FILES: &[&str] = &[
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yaml",
    "docker-compose.override.yml",
];

/// What to import.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Compose files in merge order; empty: Compose's default names in `cwd`.
    pub files: Vec<PathBuf>,
    pub env_file: Option<PathBuf>,
    pub project_name: Option<String>,
    pub profiles: Vec<String>,
    /// Where secret and config contents go (default: `<out>/files`).
    pub files_dir: Option<PathBuf>,
    pub out: PathBuf,
    /// The process environment (interpolation; COMPOSE_PROJECT_NAME,
    /// COMPOSE_PROFILES).
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
}

/// The import, ready to write.
#[derive(Debug, Default)]
pub struct Import {
    /// `(file name, text)` of each spec file.
    pub specs: Vec<(String, String)>,
    pub payloads: Vec<convert::Payload>,
    pub problems: Vec<Problem>,
    pub inactive: Vec<String>,
    pub variables: Vec<String>,
    pub project: String,
}

/// Reads, merges and converts; never writes. File errors are problems of
/// scope `Import`.
pub fn import(o: &Options) -> Import {
    let mut problems = Vec::new();
    let files = compose_files(o, &mut problems);
    let Some(first) = files.first() else {
        return Import {
            problems,
            ..Default::default()
        };
    };
    let project_dir = syntax_parent(first);
    let mut vars = Vars::new(o.env.clone(), env_file(o, &project_dir, &mut problems));
    let mut model: Option<Node> = None;
    for f in &files {
        let Some(mut doc) = load(f, &mut vars, &mut problems) else {
            continue;
        };
        extends(&mut doc, f, &mut vars, &mut problems);
        match &mut model {
            None => model = Some(doc),
            Some(m) => merge::merge(m, doc, ""),
        }
    }
    let Some(model) = model else {
        return Import {
            problems,
            ..Default::default()
        };
    };
    top_level_keys(&model, &mut problems);
    let project = project_name(o, &model, &project_dir);
    let settings = convert::Settings {
        project: project.clone(),
        project_dir: project_dir.clone(),
        files_dir: files_dir(o),
        profiles: profiles(o),
    };
    let c = convert::convert(&model, &settings, &mut vars);
    problems.extend(c.problems);
    let variables = variables(&vars);
    let header = header(&files, &project_dir, &project, &variables);
    let specs = c
        .groups
        .iter()
        .map(|(stem, tables)| {
            let f = emit::File {
                name: format!("{stem}.toml"),
                header: header.clone(),
                tables: tables.clone(),
            };
            (f.name.clone(), emit::file(&f))
        })
        .collect();
    Import {
        specs,
        payloads: c.payloads,
        problems,
        inactive: c.inactive,
        variables,
        project,
    }
}

fn syntax_parent(f: &Path) -> PathBuf {
    f.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// `-f` files made absolute, or Compose's default file (and override).
fn compose_files(o: &Options, problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    if !o.files.is_empty() {
        return o
            .files
            .iter()
            .map(|f| convert::syntax::normalize(&o.cwd.join(f)))
            .collect();
    }
    let pick = |names: &[&str]| names.iter().map(|n| o.cwd.join(n)).find(|p| p.is_file());
    match pick(DEFAULT_FILES) {
        Some(main) => std::iter::once(main).chain(pick(OVERRIDE_FILES)).collect(),
        None => {
            problems.push(import_problem(
                &o.cwd,
                "-f",
                format!(
                    "no Compose file here (looked for {})",
                    DEFAULT_FILES.join(", ")
                ),
            ));
            vec![]
        }
    }
}

fn import_problem(file: &Path, key: &str, message: String) -> Problem {
    Problem {
        at: Pos {
            file: Arc::new(file.to_path_buf()),
            line: 1,
        },
        key: key.into(),
        message,
        scope: Scope::Import,
    }
}

fn read(path: &Path) -> Result<String, String> {
    let bytes = crate::userfile::read_capped(path, MAX_FILE_BYTES).map_err(|e| e.problem())?;
    String::from_utf8(bytes).map_err(|_| "is not valid UTF-8".to_string())
}

/// `--env-file`, or `.env` in the project directory if there is one.
fn env_file(
    o: &Options,
    project_dir: &Path,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, String> {
    let (path, required) = match &o.env_file {
        Some(p) => (o.cwd.join(p), true),
        None => (project_dir.join(".env"), false),
    };
    if !required && !path.exists() {
        return BTreeMap::new();
    }
    let text = match read(&path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(import_problem(&path, "--env-file", e));
            return BTreeMap::new();
        }
    };
    interpolate::parse_env_file(&text, &o.env).unwrap_or_else(|(line, e)| {
        let mut p = import_problem(&path, "--env-file", e);
        p.at.line = line;
        problems.push(p);
        BTreeMap::new()
    })
}

/// One Compose file: read, parsed, interpolated, services normalized.
fn load(path: &Path, vars: &mut Vars, problems: &mut Vec<Problem>) -> Option<Node> {
    let text = match read(path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(import_problem(path, "-f", e));
            return None;
        }
    };
    let mut doc = match yaml::parse(&Arc::new(path.to_path_buf()), &text) {
        Ok(d) => d,
        Err(e) => {
            problems.push(Problem {
                at: e.at,
                key: String::new(),
                message: format!("invalid YAML: {}", e.message),
                scope: Scope::Import,
            });
            return None;
        }
    };
    let mut errs = Vec::new();
    interpolate::node(&mut doc, "", vars, &mut errs);
    for (key, message) in errs {
        let at = locate(&doc, &key);
        problems.push(Problem {
            at,
            key,
            message,
            scope: Scope::Import,
        });
    }
    if let Val::Map(entries) = &mut doc.val {
        for (k, v) in entries.iter_mut() {
            if k.name == "services" {
                if let Val::Map(svcs) = &mut v.val {
                    for (_, s) in svcs.iter_mut() {
                        merge::normalize_service(s);
                    }
                }
            }
        }
    }
    Some(doc)
}

/// The line of a dotted key path (`services.web.ports[0]`), as near as
/// the path goes.
fn locate(doc: &Node, path: &str) -> Pos {
    let mut n = doc;
    for part in path.split('.') {
        let (name, idx) = match part.split_once('[') {
            Some((k, i)) => (k, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        match n.get(name) {
            Some(c) => n = c,
            None => break,
        }
        if let Some(c) = idx.and_then(|i| n.seq().and_then(|s| s.get(i))) {
            n = c;
        }
    }
    n.at.clone()
}

fn extends(doc: &mut Node, file: &Path, vars: &mut Vars, problems: &mut Vec<Problem>) {
    let Val::Map(entries) = &mut doc.val else {
        return;
    };
    let Some((_, services)) = entries.iter_mut().find(|(k, _)| k.name == "services") else {
        return;
    };
    let dir = syntax_parent(file);
    let mut inner = Vec::new();
    let mut loader = |other: &str, at: &Pos| {
        let path = convert::syntax::normalize(&dir.join(other));
        let doc = load(&path, vars, &mut inner).ok_or_else(|| merge::ExtendsError {
            at: at.clone(),
            message: format!("extends: cannot load {}", path.display()),
        })?;
        Ok(doc.get("services").cloned().unwrap_or(doc))
    };
    if let Err(e) = merge::resolve_extends(services, &mut loader) {
        problems.push(Problem {
            at: e.at,
            key: "extends".into(),
            message: e.message,
            scope: Scope::Import,
        });
    }
    problems.extend(inner);
}

/// Top-level keys Compose has that the importer does not.
fn top_level_keys(model: &Node, problems: &mut Vec<Problem>) {
    const KNOWN: &[&str] = &[
        "version", "name", "services", "networks", "volumes", "secrets", "configs",
    ];
    for (k, _) in model.map().unwrap_or_default() {
        if !KNOWN.contains(&k.name.as_str()) && !k.name.starts_with("x-") {
            let message = match k.name.as_str() {
                "include" => {
                    "`include` is not supported: pass the files with -f instead".to_string()
                }
                _ => "not a Compose top-level key the importer knows".to_string(),
            };
            problems.push(Problem {
                at: k.at.clone(),
                key: k.name.clone(),
                message,
                scope: Scope::Import,
            });
        }
    }
}

/// `--project-name`, COMPOSE_PROJECT_NAME, `name:`, the directory name;
/// normalized as Compose does (lower case, `[a-z0-9_-]`).
fn project_name(o: &Options, model: &Node, dir: &Path) -> String {
    let raw = o
        .project_name
        .clone()
        .or_else(|| o.env.get("COMPOSE_PROJECT_NAME").cloned())
        .or_else(|| model.get("name").and_then(Node::str).map(str::to_string))
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let name: String = raw
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    let name = name.trim_start_matches(['_', '-']).to_string();
    if name.is_empty() {
        "compose".into()
    } else {
        name
    }
}

fn profiles(o: &Options) -> BTreeSet<String> {
    let env = o
        .env
        .get("COMPOSE_PROFILES")
        .map(String::as_str)
        .unwrap_or("");
    o.profiles
        .iter()
        .cloned()
        .chain(env.split(',').filter(|p| !p.is_empty()).map(str::to_string))
        .collect()
}

fn files_dir(o: &Options) -> PathBuf {
    let dir = o.files_dir.clone().unwrap_or_else(|| o.out.join("files"));
    convert::syntax::normalize(&o.cwd.join(dir))
}

/// `NAME=value (source)` of each variable interpolated.
fn variables(vars: &Vars) -> Vec<String> {
    vars.used
        .iter()
        .map(|(k, (v, src))| match (v, src) {
            (Some(v), Source::Environment) => format!("{k}={v:?} (environment)"),
            (Some(v), _) => format!("{k}={v:?} (.env file)"),
            (None, _) => format!("{k} unset"),
        })
        .collect()
}

fn header(files: &[PathBuf], dir: &Path, project: &str, variables: &[String]) -> Vec<String> {
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(dir).unwrap_or(f).display().to_string())
        .collect();
    let mut h = vec![
        MARK.trim_start_matches("# ").to_string(),
        format!("Source: {} (project {project:?}).", names.join(" + ")),
    ];
    if !variables.is_empty() {
        h.push(format!("Variables used: {}.", variables.join(", ")));
    }
    h.push("Lines starting \"approximation:\" say where the spec differs from Compose.".into());
    h
}

/// Writes the specs into `out` and the payloads (mode 0600, in 0700
/// directories). Refuses, before writing anything, to replace a file the
/// importer did not write.
pub fn write(imp: &Import, out: &Path) -> Result<(), WriteError> {
    super::refuse_foreign(out, &imp.specs, MARK, MAX_FILE_BYTES)?;
    for p in &imp.payloads {
        if p.path.exists() && std::fs::read(&p.path).ok().as_deref() != Some(&p.content[..]) {
            return Err(WriteError::NotOurs(p.path.clone()));
        }
    }
    super::write_specs(out, &imp.specs)?;
    for p in &imp.payloads {
        write_private(&p.path, &p.content).map_err(super::io_error(&p.path))?;
    }
    Ok(())
}

fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content)
}

/// Checks the specs with the spec parser: the importer's output must be
/// what `deploy-agent validate` accepts.
pub fn validate(imp: &Import, out: &Path) -> Result<(), crate::spec::SpecErrors> {
    let files: Vec<(PathBuf, String)> = imp
        .specs
        .iter()
        .map(|(n, t)| (out.join(n), t.clone()))
        .collect();
    crate::spec::load_texts(&files).map(|_| ())
}

#[cfg(test)]
mod tests;
