//! One Compose service -> `[container.NAME]` (+ `.resources`, `.health`).
//!
//! Each Compose key has one handler in [`HANDLERS`]; keys Compose has that
//! change nothing for a systemd service are in [`IGNORED`] with the reason
//! written next to them in the spec; anything else is refused with its
//! `file:line`. Spec key names are those of the spec format and of the
//! shared naming contract (cap_add, devices, tmpfs, ulimits, ...).

use super::super::emit::{Row, Table, Value};
use super::super::yaml::{Kind, Node, Val};
use super::syntax::{self, VolSource};
use super::{pairs, row, Ctx, Scope};

/// The converted keys of one service, by sub-table.
pub struct Svc {
    pub service: String,
    pub spec: String,
    main: Vec<Row>,
    resources: Vec<Row>,
    health: Vec<Row>,
    notes: Vec<String>,
    aliases: Vec<String>,
}

#[derive(Clone, Copy)]
enum Sub {
    Main,
    Resources,
    Health,
}

impl Svc {
    fn rows(&mut self, sub: Sub) -> &mut Vec<Row> {
        match sub {
            Sub::Main => &mut self.main,
            Sub::Resources => &mut self.resources,
            Sub::Health => &mut self.health,
        }
    }

    /// Sets `key` (replacing an earlier value); returns the row for notes.
    fn set(&mut self, sub: Sub, key: &str, value: Value) -> &mut Row {
        let rows = self.rows(sub);
        match rows.iter().position(|r| r.key == key) {
            Some(i) => {
                rows[i].value = value;
                &mut rows[i]
            }
            None => {
                rows.push(row(key, value));
                rows.last_mut().expect("just pushed")
            }
        }
    }

    fn has(&self, key: &str) -> bool {
        self.main.iter().any(|r| r.key == key)
    }

    /// Appends to a list key.
    fn extend(&mut self, key: &str, items: Vec<String>) -> &mut Row {
        let r = self.set_default(key, Value::List(vec![]));
        if let Value::List(l) = &mut r.value {
            l.extend(items);
        }
        r
    }

    fn set_default(&mut self, key: &str, value: Value) -> &mut Row {
        if !self.has(key) {
            self.main.push(row(key, value));
        }
        self.main
            .iter_mut()
            .find(|r| r.key == key)
            .expect("present")
    }

    fn note(&mut self, sub: Sub, key: &str, text: String) {
        if let Some(r) = self.rows(sub).iter_mut().find(|r| r.key == key) {
            r.notes.push(text);
        }
    }
}

type Handler = fn(&mut Ctx, &mut Svc, &Node) -> Result<(), String>;

/// Compose service key -> handler.
const HANDLERS: &[(&str, Handler)] = &[
    ("image", image),
    ("build", build),
    ("command", |_, s, n| cmd(s, "command", n)),
    ("entrypoint", |_, s, n| cmd(s, "entrypoint", n)),
    ("container_name", |_, _, _| Ok(())),
    ("hostname", |_, s, n| string(s, "hostname", n)),
    ("user", |_, s, n| string(s, "user", n)),
    ("working_dir", |_, s, n| string(s, "workdir", n)),
    ("userns_mode", |_, s, n| string(s, "userns", n)),
    ("stop_signal", |_, s, n| string(s, "stop_signal", n)),
    ("read_only", |_, s, n| boolean(s, "read_only", n)),
    ("init", |_, s, n| boolean(s, "init", n)),
    ("environment", environment),
    ("env_file", env_file),
    ("labels", |_, s, n| map(s, "labels", n)),
    ("sysctls", |_, s, n| map(s, "sysctls", n)),
    ("ports", ports),
    ("volumes", volumes),
    ("tmpfs", |_, s, n| list(s, "tmpfs", n)),
    ("networks", networks),
    ("network_mode", network_mode),
    ("depends_on", depends_on),
    ("healthcheck", healthcheck),
    ("restart", restart),
    ("deploy", deploy),
    ("mem_limit", |_, s, n| size(s, "memory", n)),
    ("mem_reservation", |_, s, n| {
        size(s, "memory_reservation", n)
    }),
    ("memswap_limit", memswap),
    ("cpus", |_, s, n| cpus(s, n)),
    ("cpu_shares", cpu_shares),
    ("pids_limit", pids),
    ("shm_size", shm_size),
    ("cap_add", |_, s, n| list(s, "cap_add", n)),
    ("cap_drop", |_, s, n| list(s, "cap_drop", n)),
    ("devices", devices),
    ("group_add", |_, s, n| list(s, "group_add", n)),
    ("dns", |_, s, n| list(s, "dns", n)),
    ("dns_search", |_, s, n| list(s, "dns_search", n)),
    ("dns_opt", |_, s, n| list(s, "dns_options", n)),
    ("extra_hosts", extra_hosts),
    ("security_opt", security_opt),
    ("privileged", privileged),
    ("ulimits", ulimits),
    ("logging", logging),
    ("stop_grace_period", |_, s, n| {
        duration(s, "stop_timeout", n)
    }),
    ("pull_policy", pull_policy),
    ("secrets", secrets),
    ("configs", configs),
    ("profiles", |_, _, _| Ok(())),
];

/// Keys that change nothing for a systemd-run container, and why.
const IGNORED: &[(&str, &str)] = &[
    (
        "expose",
        "`expose` only documents ports; containers on a network reach every port",
    ),
    (
        "stdin_open",
        "a systemd service has no terminal to attach (`stdin_open` dropped)",
    ),
    (
        "tty",
        "a systemd service has no terminal to attach (`tty` dropped)",
    ),
    (
        "links",
        "`links` dropped: services on a shared network reach each other by service name",
    ),
    (
        "platform",
        "`platform` dropped: the image for the host's platform is pulled",
    ),
];

/// Row order in `[container.NAME]`, as in the project's own specs.
const ORDER: &[&str] = &[
    "image",
    "pull",
    "command",
    "entrypoint",
    "user",
    "workdir",
    "hostname",
    "ports",
    "volumes",
    "tmpfs",
    "networks",
    "network_aliases",
    "dns",
    "dns_search",
    "dns_options",
    "extra_hosts",
    "env",
    "env_files",
    "secrets",
    "labels",
    "cap_add",
    "cap_drop",
    "no_new_privileges",
    "security_label_disable",
    "devices",
    "group_add",
    "userns",
    "read_only",
    "init",
    "sysctls",
    "ulimits",
    "shm_size",
    "log_driver",
    "log_opt",
    "podman_args",
    "restart",
    "restart_delay",
    "stop_signal",
    "stop_timeout",
    "requires",
    "after",
    "wants",
];

/// Converts one service; `None` when it is refused whole.
pub fn convert(ctx: &mut Ctx, service: &str, svc: &Node) -> Option<Vec<Table>> {
    let spec = ctx.containers[service].clone();
    let mut s = Svc {
        service: service.to_string(),
        spec,
        main: vec![],
        resources: vec![],
        health: vec![],
        notes: vec![],
        aliases: vec![],
    };
    let before = ctx.problems.len();
    let entries = svc.map().unwrap_or_default();
    for (k, v) in entries {
        let key = format!("services.{service}.{}", k.name);
        if let Some((_, h)) = HANDLERS.iter().find(|(n, _)| *n == k.name) {
            if let Err(e) = h(ctx, &mut s, v) {
                ctx.refuse(&v.at, &key, e, Scope::Key);
            }
        } else if let Some((_, why)) = IGNORED.iter().find(|(n, _)| *n == k.name) {
            s.notes.push(why.to_string());
        } else if !k.name.starts_with("x-") {
            let known = HANDLERS
                .iter()
                .map(|(n, _)| *n)
                .chain(IGNORED.iter().map(|(n, _)| *n));
            let hint = crate::spec::did_you_mean(&k.name, known)
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            ctx.refuse(
                &k.at,
                &key,
                format!("not supported by the importer{hint}"),
                Scope::Key,
            );
        }
    }
    finish(ctx, &mut s, svc);
    let whole = ctx.problems[before..]
        .iter()
        .any(|p| p.scope == Scope::Service(service.to_string()));
    (!whole).then(|| tables(s))
}

/// What depends on several keys: the image check, the default network and
/// the service-name alias.
fn finish(ctx: &mut Ctx, s: &mut Svc, svc: &Node) {
    if !s.has("image") && svc.get("build").is_none() {
        ctx.refuse(
            &svc.at,
            &format!("services.{}", s.service),
            "has no `image`",
            Scope::Service(s.service.clone()),
        );
    }
    let own_network = svc.get("network_mode").is_some();
    if !own_network && !s.has("networks") {
        ctx.default_network_used = true;
        let def = ctx.default_network();
        s.extend("networks", vec![def]);
    }
    if !own_network {
        let mut aliases = vec![s.service.clone()];
        aliases.extend(std::mem::take(&mut s.aliases));
        aliases.dedup();
        s.set(Sub::Main, "network_aliases", Value::List(aliases))
            .notes
            .push("Compose's DNS names: the service name (and aliases) on its networks".into());
    }
}

fn tables(mut s: Svc) -> Vec<Table> {
    s.main.sort_by_key(|r| {
        ORDER
            .iter()
            .position(|k| *k == r.key)
            .unwrap_or(ORDER.len())
    });
    let mut notes = vec![format!("Compose service {:?}.", s.service)];
    notes.extend(s.notes);
    let mut out = vec![super::table("container", &s.spec, s.main, notes)];
    for (sub, rows) in [("resources", s.resources), ("health", s.health)] {
        if !rows.is_empty() {
            out.push(Table {
                path: vec!["container".into(), s.spec.clone(), sub.into()],
                notes: vec![],
                rows,
            });
        }
    }
    out
}

// ------------------------------------------------------------ plain keys

fn text(n: &Node) -> Result<String, String> {
    syntax::scalar_text(n)
        .filter(|_| !n.is_null())
        .ok_or_else(|| format!("expected a value, found {}", n.what()))
}

fn string(s: &mut Svc, key: &str, n: &Node) -> Result<(), String> {
    s.set(Sub::Main, key, Value::Str(text(n)?));
    Ok(())
}

fn boolean(s: &mut Svc, key: &str, n: &Node) -> Result<(), String> {
    match &n.val {
        Val::Scalar(_, Kind::Bool(b)) => {
            if *b {
                s.set(Sub::Main, key, Value::Bool(true));
            }
            Ok(())
        }
        _ => Err(format!("expected true or false, found {}", n.what())),
    }
}

fn list(s: &mut Svc, key: &str, n: &Node) -> Result<(), String> {
    let items = syntax::strings(n)?;
    s.extend(key, items);
    Ok(())
}

fn map(s: &mut Svc, key: &str, n: &Node) -> Result<(), String> {
    s.set(Sub::Main, key, Value::Map(pairs(n)));
    Ok(())
}

fn duration(s: &mut Svc, key: &str, n: &Node) -> Result<(), String> {
    s.set(Sub::Main, key, Value::Str(syntax::duration(n)?));
    Ok(())
}

fn size(s: &mut Svc, key: &str, n: &Node) -> Result<(), String> {
    if matches!(n.val, Val::Scalar(_, Kind::Int(-1) | Kind::Int(0))) {
        return Ok(());
    }
    s.set(Sub::Resources, key, Value::Str(syntax::size(n)?));
    Ok(())
}

fn cpus(s: &mut Svc, n: &Node) -> Result<(), String> {
    let c: f64 = text(n)?.parse().map_err(|_| {
        format!(
            "expected a number of CPUs, found {:?}",
            text(n).unwrap_or_default()
        )
    })?;
    if c > 0.0 {
        s.set(Sub::Resources, "cpus", Value::Float(c));
    }
    Ok(())
}

fn pids(_: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    match n.val {
        Val::Scalar(_, Kind::Int(p)) if p > 0 => {
            s.set(Sub::Resources, "pids", Value::Int(p));
            Ok(())
        }
        Val::Scalar(_, Kind::Int(_)) => Ok(()),
        _ => Err(format!("expected a number, found {}", n.what())),
    }
}

fn shm_size(_: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    s.set(Sub::Main, "shm_size", Value::Str(syntax::size(n)?));
    Ok(())
}

fn cpu_shares(_: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    let shares: u64 = text(n)?
        .parse()
        .map_err(|_| "expected a number".to_string())?;
    // The cgroup v1 -> v2 conversion crun and runc use.
    let weight = 1 + (shares.clamp(2, 262144) - 2) * 9999 / 262142;
    s.set(Sub::Resources, "cpu_weight", Value::Int(weight as i64))
        .notes
        .push(format!(
            "approximation: cpu_shares = {shares} as a cgroup v2 CPU weight"
        ));
    Ok(())
}

fn memswap(_: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    if matches!(n.val, Val::Scalar(_, Kind::Int(-1))) {
        s.notes
            .push("memswap_limit = -1 (unlimited swap) is the default here".into());
        return Ok(());
    }
    let total = crate::spec::values::parse_size(&syntax::size(n)?)?;
    let memory = s
        .resources
        .iter()
        .find(|r| r.key == "memory")
        .and_then(|r| match &r.value {
            Value::Str(v) => crate::spec::values::parse_size(v).ok(),
            _ => None,
        })
        .ok_or("memswap_limit needs mem_limit (written before it)")?;
    if total > memory {
        s.set(
            Sub::Resources,
            "memory_swap_max",
            Value::Str(syntax::size_text(total - memory)),
        )
        .notes
        .push("memswap_limit is memory + swap; this is the swap part".into());
    }
    Ok(())
}

// ------------------------------------------------------------ image, commands

fn image(_: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    let orig = text(n)?;
    let (full, changed) = syntax::image(&orig);
    let r = s.set(Sub::Main, "image", Value::Str(full));
    if changed {
        r.notes.push(format!(
            "Compose's {orig:?}: Docker Hub, written in full for Podman"
        ));
    }
    Ok(())
}

fn build(ctx: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    let svc = ctx.model.get("services").and_then(|m| m.get(&s.service));
    if svc.and_then(|v| v.get("image")).is_none() {
        let key = format!("services.{}.build", s.service);
        ctx.refuse(
            &n.at,
            &key,
            "`build:` without `image:`: build and push the image, then name it in `image:`",
            Scope::Service(s.service.clone()),
        );
    } else {
        s.notes
            .push("`build:` dropped: the image named in `image:` is pulled, not built".into());
    }
    Ok(())
}

fn cmd(s: &mut Svc, key: &str, n: &Node) -> Result<(), String> {
    let words = syntax::command(n)?;
    if words.is_empty() || words == [""] {
        return Err(format!(
            "an empty `{key}` (clearing the image's) is not supported"
        ));
    }
    let r = s.set(Sub::Main, key, Value::List(words));
    if n.str().is_some() {
        r.notes
            .push("split from a string the way Compose splits it (shell words)".into());
    }
    Ok(())
}

// ------------------------------------------------------------ environment

fn environment(ctx: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    let mut env = Vec::new();
    for (k, v) in syntax::string_map(n)? {
        crate::spec::values::check_env_name(&k)?;
        match v.or_else(|| ctx.vars.get(&k)) {
            Some(v) => env.push((k, v)),
            None => s.notes.push(format!(
                "environment {k}: unset where imported, left out (as Compose does)"
            )),
        }
    }
    s.set(Sub::Main, "env", Value::Map(env));
    Ok(())
}

fn env_file(ctx: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    let items = n
        .seq()
        .ok_or_else(|| format!("expected a list, found {}", n.what()))?;
    let mut paths = Vec::new();
    for item in items {
        let (path, required) = match item.str() {
            Some(p) => (p.to_string(), true),
            None => (
                item.get("path")
                    .and_then(Node::str)
                    .ok_or("env_file entry needs `path`")?
                    .to_string(),
                item.get("required").and_then(Node::str) != Some("false"),
            ),
        };
        let abs = syntax::normalize(&ctx.s.project_dir.join(&path));
        if !abs.is_file() {
            if required {
                return Err(format!("env file {} does not exist", abs.display()));
            }
            s.notes
                .push(format!("env_file {path}: optional and missing, left out"));
            continue;
        }
        paths.push(abs.to_string_lossy().into_owned());
    }
    if !paths.is_empty() {
        s.extend("env_files", paths).notes.push(
            "approximation: Podman reads these when the container starts; it takes \
             KEY=VALUE lines as they are (no quotes or ${} like Compose)"
                .into(),
        );
    }
    Ok(())
}

// ------------------------------------------------------------ ports, volumes

fn ports(_: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    let items = n
        .seq()
        .ok_or_else(|| format!("expected a list, found {}", n.what()))?;
    let mut out = Vec::new();
    for item in items {
        let p = match item.str() {
            Some(t) => syntax::port_short(t)?,
            None => syntax::port_long(item)?,
        };
        out.extend(p.specs);
    }
    s.extend("ports", out);
    Ok(())
}

fn volumes(ctx: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    let items = n
        .seq()
        .ok_or_else(|| format!("expected a list, found {}", n.what()))?;
    let mut mounts = Vec::new();
    for item in items {
        let e = match item.str() {
            Some(t) => syntax::volume_short(t, &ctx.s.project_dir)?,
            None => syntax::volume_long(item, &ctx.s.project_dir)?,
        };
        if let Some(t) = e.tmpfs {
            s.extend("tmpfs", vec![t]);
            continue;
        }
        let source = match &e.source {
            VolSource::Named(v) => ctx.volumes.get(v).cloned().ok_or_else(|| {
                format!("volume {v:?} is not declared in the top-level `volumes:`")
            })?,
            VolSource::Host(p) => p.to_string_lossy().into_owned(),
            VolSource::Anonymous => {
                return Err(format!(
                    "anonymous volume at {}: Compose keeps it across re-creation, a systemd \
                     container would lose it; declare a named volume and mount NAME:{}",
                    e.target, e.target
                ))
            }
        };
        let mut m = format!("{source}:{}", e.target);
        if !e.options.is_empty() {
            m = format!("{m}:{}", e.options.join(","));
        }
        crate::spec::values::parse_mount(&m)?;
        if !e.dropped.is_empty() {
            s.notes.push(format!(
                "volume {}: {} dropped (Docker Desktop only)",
                e.target,
                e.dropped.join(",")
            ));
        }
        mounts.push(m);
    }
    s.extend("volumes", mounts);
    Ok(())
}

fn devices(_: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    let items = n
        .seq()
        .ok_or_else(|| format!("expected a list, found {}", n.what()))?;
    let mut out = Vec::new();
    for item in items {
        out.push(match item.str() {
            Some(d) => d.to_string(),
            None => {
                let get = |k: &str| item.get(k).and_then(Node::str);
                let src = get("source").ok_or("a device needs `source`")?;
                let tgt = get("target").unwrap_or(src);
                match get("permissions") {
                    Some(p) => format!("{src}:{tgt}:{p}"),
                    None => format!("{src}:{tgt}"),
                }
            }
        });
    }
    s.extend("devices", out);
    Ok(())
}

// ------------------------------------------------------------ networks

fn networks(ctx: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    let entries = n
        .map()
        .ok_or_else(|| format!("expected a list or mapping, found {}", n.what()))?;
    let mut names = Vec::new();
    for (k, v) in entries {
        let name = ctx.networks.get(&k.name).cloned().ok_or_else(|| {
            format!(
                "network {:?} is not declared in the top-level `networks:`",
                k.name
            )
        })?;
        names.push(name);
        if let Some(a) = v.get("aliases") {
            s.aliases.extend(syntax::strings(a)?);
        }
        for key in [
            "ipv4_address",
            "ipv6_address",
            "mac_address",
            "link_local_ips",
        ] {
            if v.get(key).is_some() {
                return Err(format!(
                    "networks.{}.{key}: fixed addresses have no spec key",
                    k.name
                ));
            }
        }
    }
    if entries.len() > 1 && !s.aliases.is_empty() {
        s.notes.push(
            "approximation: Podman gives the aliases on every network the container joins".into(),
        );
    }
    s.extend("networks", names);
    Ok(())
}

fn network_mode(ctx: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    let mode = text(n)?;
    let net = match mode.as_str() {
        "host" | "none" => mode.clone(),
        "bridge" | "default" => "podman".to_string(),
        m if m.starts_with("service:") || m.starts_with("container:") => {
            let key = format!("services.{}.network_mode", s.service);
            ctx.refuse(
                &n.at,
                &key,
                format!("{m:?}: sharing another container's network namespace is not supported"),
                Scope::Service(s.service.clone()),
            );
            return Ok(());
        }
        m => return Err(format!("network_mode {m:?} is not supported")),
    };
    let r = s.extend("networks", vec![net]);
    if mode == "bridge" || mode == "default" {
        r.notes
            .push("Docker's default bridge is Podman's network `podman`".into());
    }
    Ok(())
}

fn extra_hosts(_: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    let hosts = pairs(n)
        .into_iter()
        .map(|(h, ip)| format!("{h}:{ip}"))
        .collect();
    s.extend("extra_hosts", hosts);
    Ok(())
}

// ------------------------------------------------------------ dependencies

fn depends_on(ctx: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    let entries = n
        .map()
        .ok_or_else(|| format!("expected a list or mapping, found {}", n.what()))?;
    let (mut requires, mut wants) = (vec![], vec![]);
    let (mut healthy, mut started) = (vec![], vec![]);
    for (k, v) in entries {
        let key = format!("services.{}.depends_on.{}", s.service, k.name);
        let Some(dep) = ctx.containers.get(&k.name).cloned() else {
            ctx.refuse(
                &k.at,
                &key,
                "not a service of this project, or in a profile not enabled",
                Scope::Key,
            );
            continue;
        };
        let cond = v
            .get("condition")
            .and_then(Node::str)
            .unwrap_or("service_started");
        if let Err(e) = condition(ctx, &k.name, cond) {
            ctx.refuse(&v.at, &key, e, Scope::Key);
            continue;
        }
        if v.get("required").and_then(Node::str) == Some("false") {
            wants.push(dep);
            continue;
        }
        match cond {
            "service_healthy" => healthy.push(k.name.clone()),
            _ => started.push(k.name.clone()),
        }
        requires.push(dep);
    }
    if !requires.is_empty() {
        let r = s.extend("requires", requires);
        if !healthy.is_empty() {
            r.notes.push(format!(
                "service_healthy ({}): requires on a container with a health check waits until it is healthy",
                healthy.join(", ")
            ));
        }
        if !started.is_empty() {
            r.notes.push(format!(
                "service_started ({}): started first (Requires= + After=), not waited on further",
                started.join(", ")
            ));
        }
    }
    if !wants.is_empty() {
        s.extend("wants", wants)
            .notes
            .push("required: false -> wants (started first if it can be)".into());
    }
    Ok(())
}

/// Whether a `depends_on` condition can be honoured for dependency `dep`.
fn condition(ctx: &Ctx, dep: &str, cond: &str) -> Result<(), String> {
    match cond {
        "service_started" => Ok(()),
        "service_healthy" => {
            let dep_svc = ctx.model.get("services").and_then(|m| m.get(dep));
            let has_check = dep_svc
                .and_then(|d| d.get("healthcheck"))
                .is_some_and(|h| h.get("disable").and_then(Node::str) != Some("true"));
            if has_check {
                Ok(())
            } else {
                Err(format!("service_healthy, but {dep} has no healthcheck"))
            }
        }
        "service_completed_successfully" => Err(
            "service_completed_successfully: systemd orders units by their start, \
             not by a container's exit; run that step before applying"
                .into(),
        ),
        c => Err(format!("unknown condition {c:?}")),
    }
}

// ------------------------------------------------------------ health, restart

fn healthcheck(_: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    if n.get("disable").and_then(Node::str) == Some("true") {
        s.notes.push("healthcheck disabled in Compose: no health check here (an image HEALTHCHECK still runs)".into());
        return Ok(());
    }
    let Some(test) = n.get("test") else {
        return Err("a healthcheck needs `test` (the image's own check is not imported)".into());
    };
    let words = match &test.val {
        Val::Scalar(t, _) => vec!["/bin/sh".into(), "-c".into(), t.clone()],
        Val::Seq(_) => {
            let w = syntax::strings(test)?;
            match w.first().map(String::as_str) {
                Some("NONE") => {
                    s.notes
                        .push("healthcheck test NONE: no health check here".into());
                    return Ok(());
                }
                Some("CMD") => w[1..].to_vec(),
                Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), w[1..].join(" ")],
                _ => return Err("healthcheck test lists start with CMD, CMD-SHELL or NONE".into()),
            }
        }
        _ => {
            return Err(format!(
                "healthcheck test: expected a string or list, found {}",
                test.what()
            ))
        }
    };
    if words.is_empty() {
        return Err("an empty healthcheck test".into());
    }
    s.set(Sub::Health, "cmd", Value::List(words));
    // Docker's defaults, written out: the spec's own differ (timeout 5s).
    for (key, default) in [("interval", "30s"), ("timeout", "30s")] {
        let v = match n.get(key) {
            Some(d) => syntax::duration(d)?,
            None => default.into(),
        };
        s.set(Sub::Health, key, Value::Str(v));
    }
    let retries = match n.get("retries") {
        Some(r) => text(r)?
            .parse::<i64>()
            .map_err(|_| "retries: expected a number")?,
        None => 3,
    };
    s.set(Sub::Health, "retries", Value::Int(retries));
    if let Some(sp) = n.get("start_period") {
        s.set(
            Sub::Health,
            "start_period",
            Value::Str(syntax::duration(sp)?),
        );
    }
    if n.get("start_interval").is_some() {
        s.notes.push(
            "healthcheck start_interval dropped: checks run every `interval` from the start".into(),
        );
    }
    s.set(Sub::Health, "on_failure", Value::Str("none".into()));
    s.note(
        Sub::Health,
        "on_failure",
        "Compose only marks the container unhealthy; \"restart\" or \"rollback\" would act on it"
            .into(),
    );
    Ok(())
}

fn restart(_: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    let policy = text(n)?;
    let (value, note) = match policy.as_str() {
        "no" => ("no", None),
        "always" => ("always", None),
        "on-failure" => ("on-failure", None),
        "unless-stopped" => (
            "always",
            Some("unless-stopped: a unit stopped with systemctl stays stopped, so \"always\" is the same".to_string()),
        ),
        p if p.starts_with("on-failure:") => (
            "on-failure",
            Some(format!("approximation: {p}: systemd's start limit, not a count of {}, ends the retries", &p[11..])),
        ),
        p => return Err(format!("unknown restart policy {p:?}")),
    };
    let r = s.set(Sub::Main, "restart", Value::Str(value.into()));
    r.notes.extend(note);
    Ok(())
}

fn deploy(ctx: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    let service = s.service.clone();
    let key = |k: &str| format!("services.{service}.deploy.{k}");
    for (k, v) in n.map().unwrap_or_default() {
        match k.name.as_str() {
            "replicas" => match text(v)?.parse::<i64>() {
                Ok(1) => {}
                _ => ctx.refuse(
                    &v.at,
                    &key("replicas"),
                    "one container per service: replicas must be 1",
                    Scope::Key,
                ),
            },
            "mode" if v.str() == Some("replicated") || v.str() == Some("global") => {}
            "resources" => resources(ctx, s, v)?,
            "restart_policy" => restart_policy(s, v)?,
            "labels" | "placement" | "update_config" | "rollback_config" | "endpoint_mode" => {
                s.notes.push(format!(
                    "deploy.{} dropped: Swarm only (Compose ignores it too)",
                    k.name
                ));
            }
            _ => ctx.refuse(
                &k.at,
                &key(&k.name),
                "not supported by the importer",
                Scope::Key,
            ),
        }
    }
    Ok(())
}

fn resources(ctx: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    if let Some(l) = n.get("limits") {
        if let Some(m) = l.get("memory") {
            size(s, "memory", m)?;
        }
        if let Some(c) = l.get("cpus") {
            cpus(s, c)?;
        }
        if let Some(p) = l.get("pids") {
            pids(ctx, s, p)?;
        }
    }
    if let Some(r) = n.get("reservations") {
        if let Some(m) = r.get("memory") {
            size(s, "memory_reservation", m)?;
        }
        if r.get("cpus").is_some() {
            s.notes.push(
                "deploy.resources.reservations.cpus dropped: cgroups have no CPU reservation"
                    .into(),
            );
        }
        if let Some(d) = r.get("devices") {
            let key = format!(
                "services.{}.deploy.resources.reservations.devices",
                s.service
            );
            ctx.refuse(
                &d.at,
                &key,
                "device reservations (GPUs): use `devices` with the device nodes",
                Scope::Key,
            );
        }
    }
    Ok(())
}

fn restart_policy(s: &mut Svc, n: &Node) -> Result<(), String> {
    let policy = match n.get("condition").and_then(Node::str).unwrap_or("any") {
        "none" => "no",
        "on-failure" => "on-failure",
        "any" => "always",
        c => return Err(format!("unknown restart_policy.condition {c:?}")),
    };
    if !s.has("restart") {
        s.set(Sub::Main, "restart", Value::Str(policy.into()));
    }
    if let Some(d) = n.get("delay") {
        s.set(Sub::Main, "restart_delay", Value::Str(syntax::duration(d)?));
    }
    if n.get("max_attempts").is_some() || n.get("window").is_some() {
        s.note(Sub::Main, "restart", "approximation: restart_policy max_attempts/window dropped; systemd's start limit applies".into());
    }
    Ok(())
}

// ------------------------------------------------------------ security, limits

fn security_opt(_: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    for opt in syntax::strings(n)? {
        let norm = opt.replace(':', "=");
        match norm.as_str() {
            "label=disable" => {
                s.set(Sub::Main, "security_label_disable", Value::Bool(true));
            }
            "no-new-privileges" | "no-new-privileges=true" => {
                s.set(Sub::Main, "no_new_privileges", Value::Bool(true));
            }
            "no-new-privileges=false" => {}
            _ => {
                s.extend("podman_args", vec![format!("--security-opt={opt}")])
                    .notes
                    .push(format!(
                        "security_opt {opt:?} has no spec key: passed to podman as is"
                    ));
            }
        }
    }
    Ok(())
}

fn privileged(_: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    if matches!(n.val, Val::Scalar(_, Kind::Bool(true))) {
        s.extend("podman_args", vec!["--privileged".into()])
            .notes
            .push("privileged has no spec key: passed to podman as is".into());
    }
    Ok(())
}

fn ulimits(_: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    let entries = n
        .map()
        .ok_or_else(|| format!("expected a mapping, found {}", n.what()))?;
    let mut out = Vec::new();
    for (k, v) in entries {
        let value = match (&v.val, v.get("soft"), v.get("hard")) {
            (Val::Scalar(_, Kind::Int(i)), _, _) => i.to_string(),
            (_, Some(soft), Some(hard)) => {
                super::super::emit::string(&format!("{}:{}", text(soft)?, text(hard)?))
            }
            _ => return Err(format!("ulimits.{}: a number or {{soft, hard}}", k.name)),
        };
        out.push((k.name.clone(), value));
    }
    s.set(Sub::Main, "ulimits", Value::RawMap(out));
    Ok(())
}

/// Log drivers Podman has.
const LOG_DRIVERS: &[&str] = &["journald", "k8s-file", "json-file", "none", "passthrough"];

fn logging(_: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    if let Some(d) = n.get("driver") {
        let d = text(d)?;
        if !LOG_DRIVERS.contains(&d.as_str()) {
            return Err(format!(
                "log driver {d:?}: Podman has {}",
                LOG_DRIVERS.join(", ")
            ));
        }
        s.set(Sub::Main, "log_driver", Value::Str(d));
    }
    if let Some(o) = n.get("options") {
        s.set(Sub::Main, "log_opt", Value::Map(pairs(o)));
    }
    Ok(())
}

fn pull_policy(_: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    let p = text(n)?;
    let v = match p.as_str() {
        "always" => "always",
        "never" => "never",
        "missing" | "if_not_present" => "missing",
        "build" => return Err("pull_policy build: images are pulled, not built".into()),
        _ => "newer",
    };
    let r = s.set(Sub::Main, "pull", Value::Str(v.into()));
    if v == "newer" {
        r.notes.push(format!(
            "approximation: pull_policy {p:?}: pulled when the registry has a newer image"
        ));
    }
    Ok(())
}

// ------------------------------------------------------------ secrets, configs

fn secrets(ctx: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    let items = n
        .seq()
        .ok_or_else(|| format!("expected a list, found {}", n.what()))?;
    let mut out = Vec::new();
    for item in items {
        let (src, target) = reference(item)?;
        let name =
            ctx.secrets.get(&src).cloned().ok_or_else(|| {
                format!("secret {src:?} is not declared in the top-level `secrets:`")
            })?;
        let mut t = vec![
            ("name".into(), name.clone()),
            ("type".into(), "mount".into()),
        ];
        t.push(("target".into(), target.unwrap_or(src.clone())));
        let file = ctx.s.files_dir.join("secrets").join(&name);
        if ctx.payloads.iter().any(|p| p.path == file) {
            t.push(("source".into(), file.to_string_lossy().into_owned()));
        }
        if ["uid", "gid", "mode"].iter().any(|k| item.get(k).is_some()) {
            s.notes.push(format!(
                "secret {src}: uid/gid/mode dropped (Podman's defaults: root, 0444)"
            ));
        }
        out.push(t);
    }
    s.set(Sub::Main, "secrets", Value::Tables(out));
    Ok(())
}

/// `name` or `{source, target}`.
fn reference(item: &Node) -> Result<(String, Option<String>), String> {
    match item.str() {
        Some(n) => Ok((n.to_string(), None)),
        None => {
            let src = item
                .get("source")
                .and_then(Node::str)
                .ok_or("needs `source`")?;
            Ok((
                src.to_string(),
                item.get("target").and_then(Node::str).map(str::to_string),
            ))
        }
    }
}

fn configs(ctx: &mut Ctx, s: &mut Svc, n: &Node) -> Result<(), String> {
    let items = n
        .seq()
        .ok_or_else(|| format!("expected a list, found {}", n.what()))?;
    let mut mounts = Vec::new();
    for item in items {
        let (src, target) = reference(item)?;
        let file =
            ctx.configs.get(&src).cloned().ok_or_else(|| {
                format!("config {src:?} is not declared in the top-level `configs:`")
            })?;
        let target = target.unwrap_or_else(|| format!("/{src}"));
        let m = format!("{}:{target}:ro", file.display());
        crate::spec::values::parse_mount(&m)?;
        mounts.push(m);
    }
    s.extend("volumes", mounts)
        .notes
        .push("configs: bind-mounted read-only from the files the import wrote".into());
    Ok(())
}
