//! The merged Compose model -> spec tables: names, the top-level
//! networks, volumes, secrets and configs, and which services are active
//! (profiles). Each service's keys are converted in `service.rs`.
//!
//! Names follow Compose: containers `PROJECT-SERVICE` (Compose names them
//! `PROJECT-SERVICE-1`; there is one replica here, so no number), networks
//! and volumes `PROJECT_NAME` unless they set `name:`, and the network
//! Compose makes for services without `networks:` is `PROJECT_default`.
//! Services keep their Compose name as a network alias, so they reach
//! each other by it as under Compose.

pub mod service;
pub mod syntax;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::emit::{Row, Table, Value};
use super::interpolate::Vars;
use super::yaml::{Node, Pos};
use crate::spec::values::check_name;

/// What a refusal takes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Only this key (`--partial` writes the rest of the service).
    Key,
    /// The whole service.
    Service(String),
    /// The whole import (a file error): `--partial` cannot help.
    Import,
}

/// Something the importer cannot honour, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: Pos,
    pub key: String,
    pub message: String,
    pub scope: Scope,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.at, self.key, self.message)
    }
}

/// A file to write beside the specs (a secret's or a config's content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub path: PathBuf,
    pub content: Vec<u8>,
}

/// The converted project.
#[derive(Debug, Default)]
pub struct Converted {
    /// `(spec file stem, tables)`; the networks/volumes file first.
    pub groups: Vec<(String, Vec<Table>)>,
    pub payloads: Vec<Payload>,
    pub problems: Vec<Problem>,
    /// Services left out on purpose (profiles), for the report.
    pub inactive: Vec<String>,
}

/// Settings of one conversion.
pub struct Settings {
    pub project: String,
    /// Relative host paths are relative to this (the first file's directory).
    pub project_dir: PathBuf,
    /// Where secret and config contents are written (absolute).
    pub files_dir: PathBuf,
    pub profiles: BTreeSet<String>,
}

/// State shared by the conversion of all services.
pub struct Ctx<'a> {
    pub s: &'a Settings,
    pub vars: &'a mut Vars,
    pub model: &'a Node,
    pub problems: Vec<Problem>,
    pub payloads: Vec<Payload>,
    /// Compose service name -> container spec name (active services).
    pub containers: BTreeMap<String, String>,
    /// Compose network/volume/secret/config name -> spec (or Podman) name.
    pub networks: BTreeMap<String, String>,
    pub volumes: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
    pub configs: BTreeMap<String, PathBuf>,
    pub default_network_used: bool,
}

impl Ctx<'_> {
    pub fn refuse(&mut self, at: &Pos, key: &str, message: impl Into<String>, scope: Scope) {
        self.problems.push(Problem {
            at: at.clone(),
            key: key.to_string(),
            message: message.into(),
            scope,
        });
    }

    pub fn default_network(&self) -> String {
        format!("{}_default", self.s.project)
    }
}

/// Converts a merged model (top-level mapping).
pub fn convert(model: &Node, s: &Settings, vars: &mut Vars) -> Converted {
    let mut ctx = Ctx {
        s,
        vars,
        model,
        problems: vec![],
        payloads: vec![],
        containers: BTreeMap::new(),
        networks: BTreeMap::new(),
        volumes: BTreeMap::new(),
        secrets: BTreeMap::new(),
        configs: BTreeMap::new(),
        default_network_used: false,
    };
    let mut out = Converted::default();
    let mut shared = Vec::new();
    shared.extend(networks(&mut ctx));
    shared.extend(volumes(&mut ctx));
    secrets(&mut ctx);
    configs(&mut ctx);
    let active = active_services(&mut ctx, &mut out.inactive);
    let mut services = Vec::new();
    for (name, svc) in &active {
        if let Some(tables) = service::convert(&mut ctx, name, svc) {
            services.push((ctx.containers[name.as_str()].clone(), tables));
        }
    }
    if ctx.default_network_used {
        shared.insert(
            0,
            table(
                "network",
                &ctx.default_network(),
                vec![],
                vec!["The network Compose creates for services that name none.".into()],
            ),
        );
    }
    if !shared.is_empty() {
        out.groups.push((format!("{}-shared", s.project), shared));
    }
    out.groups.extend(services);
    out.problems = ctx.problems;
    out.payloads = ctx.payloads;
    out
}

pub fn table(kind: &str, name: &str, rows: Vec<Row>, notes: Vec<String>) -> Table {
    Table {
        path: vec![kind.to_string(), name.to_string()],
        notes,
        rows,
    }
}

pub fn row(key: &str, value: Value) -> Row {
    Row {
        key: key.to_string(),
        value,
        notes: vec![],
    }
}

/// The services to import: those without `profiles`, or with one enabled.
fn active_services(ctx: &mut Ctx, inactive: &mut Vec<String>) -> Vec<(String, Node)> {
    let Some(services) = ctx.model.get("services").and_then(Node::map) else {
        let at = ctx.model.at.clone();
        ctx.refuse(&at, "services", "no services defined", Scope::Import);
        return vec![];
    };
    let mut out = Vec::new();
    for (k, svc) in services {
        let profiles = svc
            .get("profiles")
            .map(|p| syntax::strings(p).unwrap_or_default())
            .unwrap_or_default();
        if !profiles.is_empty() && !profiles.iter().any(|p| ctx.s.profiles.contains(p)) {
            inactive.push(format!("{} (profiles: {})", k.name, profiles.join(", ")));
            continue;
        }
        let name = container_name(ctx, &k.name, svc);
        ctx.containers.insert(k.name.clone(), name);
        out.push((k.name.clone(), svc.clone()));
    }
    out
}

/// `container_name`, or `PROJECT-SERVICE`.
fn container_name(ctx: &mut Ctx, service: &str, svc: &Node) -> String {
    if let Some(n) = svc.get("container_name") {
        let name = n.str().unwrap_or_default().to_string();
        match check_name(&name) {
            Ok(()) => return name,
            Err(e) => ctx.refuse(
                &n.at,
                &format!("services.{service}.container_name"),
                format!("{e}; using the default name instead"),
                Scope::Key,
            ),
        }
    }
    let name = format!("{}-{}", ctx.s.project, service.to_ascii_lowercase());
    if let Err(e) = check_name(&name) {
        let at = svc.at.clone();
        ctx.refuse(
            &at,
            &format!("services.{service}"),
            e,
            Scope::Service(service.into()),
        );
    }
    name
}

/// The spec name of a top-level resource: `name:` if set (verbatim, as
/// Compose uses it), else `PROJECT_KEY`.
fn resource_name(ctx: &mut Ctx, kind: &str, key: &str, def: &Node) -> Option<String> {
    let name = match def.get("name").and_then(Node::str) {
        Some(n) => n.to_string(),
        None if external(def) => key.to_string(),
        None => format!("{}_{key}", ctx.s.project),
    };
    match check_name(&name) {
        Ok(()) => Some(name),
        Err(e) => {
            ctx.refuse(&def.at, &format!("{kind}.{key}"), e, Scope::Import);
            None
        }
    }
}

fn external(def: &Node) -> bool {
    def.get("external").and_then(Node::str) == Some("true")
}

/// Keys of a top-level definition this converter does not know.
fn unknown_keys(ctx: &mut Ctx, kind: &str, key: &str, def: &Node, known: &[&str]) {
    for (k, _) in def.map().unwrap_or_default() {
        if !known.contains(&k.name.as_str()) && !k.name.starts_with("x-") {
            ctx.refuse(
                &k.at,
                &format!("{kind}.{key}.{}", k.name),
                "not supported by the importer",
                Scope::Import,
            );
        }
    }
}

fn networks(ctx: &mut Ctx) -> Vec<Table> {
    let mut tables = Vec::new();
    let defs = ctx
        .model
        .get("networks")
        .and_then(Node::map)
        .unwrap_or_default();
    for (k, def) in defs {
        let key = &k.name;
        unknown_keys(
            ctx,
            "networks",
            key,
            def,
            &[
                "name",
                "driver",
                "driver_opts",
                "ipam",
                "internal",
                "enable_ipv6",
                "labels",
                "external",
                "attachable",
            ],
        );
        let Some(name) = resource_name(ctx, "networks", key, def) else {
            continue;
        };
        ctx.networks.insert(key.clone(), name.clone());
        let mut rows = Vec::new();
        let mut notes = vec![format!("Compose network {key:?}.")];
        if external(def) {
            rows.push(row("external", Value::Bool(true)));
            tables.push(table("network", &name, rows, notes));
            continue;
        }
        if let Some(d) = def
            .get("driver")
            .and_then(Node::str)
            .filter(|d| *d != "bridge")
        {
            rows.push(row("driver", Value::Str(d.into())));
        }
        let ipam = def
            .get("ipam")
            .and_then(|i| i.get("config"))
            .and_then(Node::seq);
        if let Some(first) = ipam.and_then(|c| c.first()) {
            for (from, to) in [("subnet", "subnet"), ("gateway", "gateway")] {
                if let Some(v) = first.get(from).and_then(Node::str) {
                    rows.push(row(to, Value::Str(v.into())));
                }
            }
            if ipam.is_some_and(|c| c.len() > 1) {
                notes.push("approximation: only the first ipam.config entry is imported".into());
            }
        }
        for (from, to) in [("internal", "internal"), ("enable_ipv6", "ipv6")] {
            if def.get(from).and_then(Node::str) == Some("true") {
                rows.push(row(to, Value::Bool(true)));
            }
        }
        for (from, to) in [("labels", "labels"), ("driver_opts", "options")] {
            if let Some(m) = def.get(from) {
                rows.push(row(to, Value::Map(pairs(m))));
            }
        }
        if def.get("attachable").is_some() {
            notes.push(
                "`attachable` is a Swarm setting; Podman networks are always attachable".into(),
            );
        }
        tables.push(table("network", &name, rows, notes));
    }
    tables
}

/// A list-or-mapping of strings as (key, value) pairs ("" for null).
pub fn pairs(n: &Node) -> Vec<(String, String)> {
    let mut n = n.clone();
    if n.seq().is_some() {
        let mut svc = Node {
            at: n.at.clone(),
            tag: Default::default(),
            val: super::yaml::Val::Map(vec![(
                super::yaml::Key {
                    name: "labels".into(),
                    at: n.at.clone(),
                },
                n.clone(),
            )]),
        };
        super::merge::normalize_service(&mut svc);
        n = svc.get("labels").cloned().unwrap_or(n);
    }
    syntax::string_map(&n)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect()
}

fn volumes(ctx: &mut Ctx) -> Vec<Table> {
    let mut tables = Vec::new();
    let defs = ctx
        .model
        .get("volumes")
        .and_then(Node::map)
        .unwrap_or_default();
    for (k, def) in defs {
        let key = &k.name;
        unknown_keys(
            ctx,
            "volumes",
            key,
            def,
            &["name", "driver", "driver_opts", "labels", "external"],
        );
        let Some(name) = resource_name(ctx, "volumes", key, def) else {
            continue;
        };
        ctx.volumes.insert(key.clone(), name.clone());
        let mut rows = Vec::new();
        let mut notes = vec![format!("Compose volume {key:?}.")];
        if external(def) {
            notes.push(
                "approximation: external in Compose. Declared here so containers can mount it; \
                 Quadlet creates volumes with --ignore, so the existing volume is used as it is"
                    .into(),
            );
        }
        if let Some(d) = def
            .get("driver")
            .and_then(Node::str)
            .filter(|d| *d != "local")
        {
            rows.push(row("driver", Value::Str(d.into())));
        }
        if let Some(o) = def.get("driver_opts") {
            ctx.refuse(
                &o.at,
                &format!("volumes.{key}.driver_opts"),
                "volume driver options have no spec key (use a host path bind mount instead)",
                Scope::Key,
            );
        }
        if let Some(m) = def.get("labels") {
            rows.push(row("labels", Value::Map(pairs(m))));
        }
        tables.push(table("volume", &name, rows, notes));
    }
    tables
}

/// Top-level `secrets`: each becomes a file under `files_dir/secrets/`
/// (or stays an existing Podman secret when `external`).
fn secrets(ctx: &mut Ctx) {
    let defs = ctx
        .model
        .get("secrets")
        .and_then(Node::map)
        .unwrap_or_default();
    for (k, def) in defs {
        let key = &k.name;
        unknown_keys(
            ctx,
            "secrets",
            key,
            def,
            &["name", "file", "environment", "external"],
        );
        let Some(name) = resource_name(ctx, "secrets", key, def) else {
            continue;
        };
        if !external(def) {
            let dest = ctx.s.files_dir.join("secrets").join(&name);
            if !payload(ctx, "secrets", key, def, dest) {
                continue;
            }
        }
        ctx.secrets.insert(key.clone(), name);
    }
}

/// Top-level `configs`: files under `files_dir/configs/`, bind-mounted.
fn configs(ctx: &mut Ctx) {
    let defs = ctx
        .model
        .get("configs")
        .and_then(Node::map)
        .unwrap_or_default();
    for (k, def) in defs {
        let key = &k.name;
        unknown_keys(
            ctx,
            "configs",
            key,
            def,
            &["name", "file", "environment", "content", "external"],
        );
        if external(def) {
            ctx.refuse(
                &def.at,
                &format!("configs.{key}.external"),
                "Podman has no configs to refer to",
                Scope::Key,
            );
            continue;
        }
        let Some(name) = resource_name(ctx, "configs", key, def) else {
            continue;
        };
        let dest = ctx.s.files_dir.join("configs").join(&name);
        if payload(ctx, "configs", key, def, dest.clone()) {
            ctx.configs.insert(key.clone(), dest);
        }
    }
}

/// Reads a secret's or config's content (`file`, `environment`, `content`)
/// and queues it for `dest`. False (and a problem) if it cannot.
fn payload(ctx: &mut Ctx, kind: &str, key: &str, def: &Node, dest: PathBuf) -> bool {
    let content = if let Some(f) = def.get("file").and_then(Node::str) {
        let path = syntax::normalize(&ctx.s.project_dir.join(f));
        crate::userfile::read_capped(&path, super::MAX_PAYLOAD_BYTES).map_err(|e| e.to_string())
    } else if let Some(v) = def.get("environment").and_then(Node::str) {
        ctx.vars
            .secret(v)
            .map(String::into_bytes)
            .ok_or_else(|| format!("environment variable {v} is not set"))
    } else if let Some(c) = def.get("content").and_then(Node::str) {
        Ok(c.as_bytes().to_vec())
    } else {
        Err("needs `file`, `environment` or `content`".into())
    };
    match content {
        Ok(content) => {
            ctx.payloads.push(Payload {
                path: dest,
                content,
            });
            true
        }
        Err(e) => {
            ctx.refuse(&def.at, &format!("{kind}.{key}"), e, Scope::Import);
            false
        }
    }
}
