//! `deploy-agent import quadlet`: Quadlet unit files -> spec files.
//!
//! Stages: `unit` (parse as systemd reads a unit file, keeping lines),
//! `convert` + `custom` (each key to a typed spec key, the escape hatch,
//! or a located problem). This module finds the files (a directory's
//! `.container`/`.pod`/`.network`/`.volume`/`.image` files, or the files
//! named, plus the `.network`/`.volume`/`.pod`/`.image` files they
//! reference, looked up beside
//! them), reads them through `userfile`, writes one spec file per unit
//! file (`web.container` -> `web.container.toml`), checks the result with
//! the spec parser, and writes it.

pub mod convert;
pub mod custom;
pub mod unit;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use super::WriteError;
use crate::import::compose::emit::{self, Row, Table as TomlTable, Value};
use crate::spec::keys::{Section, Table};
use convert::Ctx;
pub use convert::Problem;

/// Largest unit file read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// First line of every file the importer writes (how it knows its own).
pub const MARK: &str = "# Imported from Quadlet by deploy-agent import quadlet.";

/// What each kind of unit file becomes: (extension, spec table, its
/// TOML name, its Quadlet section).
const KINDS: &[(&str, Table, &str, Section)] = &[
    (
        "container",
        Table::Container,
        "container",
        Section::Container,
    ),
    ("pod", Table::Pod, "pod", Section::Pod),
    ("network", Table::Network, "network", Section::Network),
    ("volume", Table::Volume, "volume", Section::Volume),
    ("image", Table::Image, "image", Section::Image),
];

/// Unit files refused, and why.
const REFUSED: &[(&str, &str)] = &[
    (
        "kube",
        "a .kube unit runs a Kubernetes YAML; specs have no equivalent",
    ),
    (
        "build",
        "a .build unit is not carried over: build the image and name it in `image`",
    ),
];

/// The name key of each kind's section (`NetworkName=`): the spec's name.
const NAME_KEYS: &[(&str, &str, &str)] = &[
    ("container", "Container", "ContainerName"),
    ("pod", "Pod", "PodName"),
    ("network", "Network", "NetworkName"),
    ("volume", "Volume", "VolumeName"),
];

/// The import, ready to write.
#[derive(Debug, Default)]
pub struct Import {
    /// `(file name, text)` of each spec file.
    pub specs: Vec<(String, String)>,
    pub problems: Vec<Problem>,
    /// Problems that stop the import even with `--partial` (a file that
    /// cannot be read or parsed, a refused kind).
    pub fatal: bool,
}

/// A read and parsed unit file.
struct Source {
    path: PathBuf,
    unit: unit::Unit,
}

/// Reads and converts `paths` (files or directories); never writes.
pub fn import(paths: &[PathBuf]) -> Import {
    let mut imp = Import::default();
    let sources = collect(paths, &mut imp);
    let known: BTreeSet<String> = sources.keys().cloned().collect();
    let names: BTreeMap<String, String> = sources
        .iter()
        .map(|(f, s)| (f.clone(), spec_name(f, &s.unit)))
        .collect();
    let mut external = Vec::new();
    for (file, src) in &sources {
        let Some(cx) = convert_one(file, src, &known, &names, &mut imp) else {
            continue;
        };
        external.extend(cx.external.iter().cloned());
        imp.problems.extend(cx.problems);
        imp.specs
            .push(spec_text(&format!("{file}.toml"), &src.path, cx.tables));
    }
    external_specs(&external, &names, &mut imp);
    imp
}

/// The unit files an import of `paths` reads: those named, those in the
/// directories named, and the files they reference.
pub fn files_read(paths: &[PathBuf]) -> Vec<PathBuf> {
    let sources = collect(paths, &mut Import::default());
    sources.into_values().map(|s| s.path).collect()
}

/// Reads `paths` and, transitively, the unit files they reference
/// (beside the file that names them).
fn collect(paths: &[PathBuf], imp: &mut Import) -> BTreeMap<String, Source> {
    let roots = root_files(paths, imp);
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    let mut queue: Vec<PathBuf> = roots.into_iter().rev().collect();
    while let Some(p) = queue.pop() {
        let name = file_name(&p);
        if sources.contains_key(&name) {
            continue;
        }
        let Some(src) = load(&p, imp) else {
            continue;
        };
        for r in references(&src.unit) {
            if !sources.contains_key(&r) {
                queue.push(p.parent().unwrap_or(Path::new(".")).join(&r));
            }
        }
        sources.insert(name, src);
    }
    sources
}

/// The files named, and the unit files of the directories named.
fn root_files(paths: &[PathBuf], imp: &mut Import) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if !p.is_dir() {
            out.push(p.clone());
            continue;
        }
        match std::fs::read_dir(p) {
            Ok(rd) => {
                let mut fs: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| kind_of(f).is_some() || refused(f).is_some())
                    .collect();
                fs.sort();
                out.extend(fs);
            }
            Err(e) => fatal(imp, p, format!("cannot read the directory: {e}")),
        }
    }
    out
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn extension(p: &Path) -> &str {
    p.extension().and_then(|e| e.to_str()).unwrap_or("")
}

fn kind_of(p: &Path) -> Option<&'static (&'static str, Table, &'static str, Section)> {
    KINDS.iter().find(|k| k.0 == extension(p))
}

fn refused(p: &Path) -> Option<&'static str> {
    REFUSED.iter().find(|r| r.0 == extension(p)).map(|r| r.1)
}

fn fatal(imp: &mut Import, path: &Path, message: String) {
    imp.fatal = true;
    imp.problems.push(Problem {
        file: path.to_path_buf(),
        line: 1,
        key: String::new(),
        message,
    });
}

/// Reads and parses one unit file (refusing the kinds specs cannot say).
fn load(path: &Path, imp: &mut Import) -> Option<Source> {
    if let Some(why) = refused(path) {
        fatal(imp, path, why.to_string());
        return None;
    }
    if kind_of(path).is_none() {
        let m = "not a .container, .pod, .network, .volume or .image file".to_string();
        fatal(imp, path, m);
        return None;
    }
    let text = crate::userfile::read_capped(path, MAX_FILE_BYTES)
        .map_err(|e| e.problem())
        .and_then(|b| String::from_utf8(b).map_err(|_| "is not valid UTF-8".to_string()));
    let text = match text {
        Ok(t) => t,
        Err(m) => {
            fatal(imp, path, m);
            return None;
        }
    };
    match unit::parse(&text) {
        Ok(unit) => Some(Source {
            path: path.to_path_buf(),
            unit,
        }),
        Err(e) => {
            fatal(imp, path, e.message);
            imp.problems.last_mut().expect("just pushed").line = e.line;
            None
        }
    }
}

/// The unit files a unit names: `Network=x.network`, `Volume=x.volume:/p`,
/// `Pod=x.pod`, `Image=x.image`.
fn references(u: &unit::Unit) -> Vec<String> {
    let mut out = Vec::new();
    for s in ["Container", "Pod"] {
        for e in u.section(s) {
            let head = e.value.split(':').next().unwrap_or("");
            let wanted = match e.key.as_str() {
                "Network" => head.ends_with(".network"),
                "Volume" => head.ends_with(".volume"),
                "Pod" => head.ends_with(".pod"),
                "Image" => e.value.ends_with(".image"),
                _ => false,
            };
            if wanted {
                out.push(head.to_string());
            }
        }
    }
    out
}

/// The spec name of a unit file: the name of the Podman object Quadlet
/// makes of it, so that it stays the same object (a volume keeps its
/// data): its `NetworkName=` (etc.) when that is a valid spec name, else
/// Quadlet's default `systemd-STEM`; a container without `ContainerName=`
/// is named after the file (Quadlet's `systemd-%N` is the unit's name,
/// which the agent's unit for the spec STEM has too: STEM.service).
fn spec_name(file: &str, u: &unit::Unit) -> String {
    let (stem, ext) = file.rsplit_once('.').unwrap_or((file, ""));
    let Some((_, section, key)) = NAME_KEYS.iter().find(|(k, _, _)| *k == ext) else {
        return stem.to_string();
    };
    let named = u
        .last(section, key)
        .map(|e| custom::unquoted(&e.value))
        .filter(|n| crate::spec::values::check_name(n).is_ok());
    match (named, ext) {
        (Some(n), _) => n,
        (None, "container") => stem.to_string(),
        (None, _) => format!("systemd-{stem}"),
    }
}

fn convert_one<'a>(
    file: &str,
    src: &'a Source,
    known: &'a BTreeSet<String>,
    names: &'a BTreeMap<String, String>,
    imp: &mut Import,
) -> Option<Ctx<'a>> {
    let &(_, table, kind, section) = kind_of(&src.path)?;
    let name = names[file].clone();
    if let Err(m) = crate::spec::values::check_name(&name) {
        fatal(
            imp,
            &src.path,
            format!("the spec name {name:?} (from the file name): {m}"),
        );
        return None;
    }
    let mut cx = Ctx {
        file: src.path.clone(),
        kind,
        name,
        tables: vec![],
        problems: vec![],
        refs: BTreeSet::new(),
        external: vec![],
        known,
        names,
        unit: &src.unit,
    };
    name_notes(&mut cx, file, section);
    cx.table(None);
    convert::sections(&mut cx, &src.unit, table, section);
    if kind == "container" && src.unit.last("Service", "Restart").is_none() {
        let why = "no Restart= in the file: systemd does not restart it (the spec's default is on-failure)";
        cx.set(None, "restart", Value::Str("no".into()), vec![why.into()]);
    }
    Some(cx)
}

/// Comments on where the spec's name comes from (see [`spec_name`]).
fn name_notes(cx: &mut Ctx, file: &str, section: Section) {
    let kind = cx.kind;
    if kind == "container" && cx.unit.last("Container", "ContainerName").is_none() {
        cx.note(format!(
            "approximation: Quadlet names the container systemd-{}; deploy-agent names it {}.",
            cx.name, cx.name
        ));
    }
    if cx.name == format!("systemd-{}", file.rsplit_once('.').map_or(file, |(s, _)| s)) {
        cx.note(format!(
            "Quadlet's name for this {kind} (no {}Name= in the file), kept so that it stays the same Podman {kind}.",
            section.name()
        ));
    }
}

/// `[network.NAME] external = true` for networks used by name that no
/// `.network` file declares, one spec file each.
fn external_specs(external: &[String], names: &BTreeMap<String, String>, imp: &mut Import) {
    let mut done = BTreeSet::new();
    for name in external {
        let file = format!("{name}.network");
        if names.contains_key(&file) || !done.insert(file.clone()) {
            continue;
        }
        let t = TomlTable {
            path: vec!["network".into(), name.clone()],
            notes: vec![format!(
                "A network the Quadlet files use without a {name}.network unit."
            )],
            rows: vec![Row {
                key: "external".into(),
                value: Value::Bool(true),
                notes: vec![],
            }],
        };
        imp.specs.push(spec_text(
            &format!("{file}.toml"),
            Path::new(&file),
            vec![t],
        ));
    }
}

/// One spec file's text: the header naming the source, then the tables
/// (the main table first).
fn spec_text(name: &str, source: &Path, mut tables: Vec<TomlTable>) -> (String, String) {
    tables.sort_by_key(|t| t.path.len());
    let f = emit::File {
        name: name.to_string(),
        header: vec![
            MARK.trim_start_matches("# ").to_string(),
            format!("Source: {}.", source.display()),
            "Lines starting \"approximation:\" say where the spec differs from the Quadlet file."
                .into(),
        ],
        tables,
    };
    (f.name.clone(), emit::file(&f))
}

/// Writes the specs into `out`. Refuses, before writing anything, to
/// replace a file the importer did not write.
pub fn write(imp: &Import, out: &Path) -> Result<(), WriteError> {
    super::refuse_foreign(out, &imp.specs, MARK, MAX_FILE_BYTES)?;
    super::write_specs(out, &imp.specs)
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
