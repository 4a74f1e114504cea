//! The Quadlet keys whose spec form is not the registry's generic reading
//! (`Ty::Custom` keys and the agent's own names): references to other unit
//! files (`Network=x.network`, `Volume=x.volume:/p`, `Pod=x.pod`,
//! `Image=x.image`), values
//! the spec types differently (`Exec=` words, `HealthCmd=`, `CPUQuota=`),
//! keys read together (`RemapUsers=` with `RemapUid=`, a network's several
//! `Subnet=`), and keys the agent writes itself. One function per key,
//! found through [`HANDLERS`]; each says in a comment on the spec what it
//! approximates. A value the typed key does not take but Podman does (an
//! anonymous volume, `Secret=` options, ...) stays the same `podman run`
//! argument, in `podman_args` ([`as_podman_arg`]).

use super::convert::{argv, duration, items, Ctx};
use super::unit::{self, Entry};
use crate::import::compose::emit::Value;
use crate::spec::keys::Section;
use crate::spec::values;

type Handler = fn(&mut Ctx, &[&Entry]);

use Section::{Container as C, Install as I, Network as N, Pod as P, Service as S, Unit as U};

/// (section, Quadlet key, conversion). A section of `Container` also
/// applies to `[Pod]` where the key is listed for `P`.
const HANDLERS: &[(Section, &str, Handler)] = &[
    (C, "Image", image),
    (Section::Image, "Image", |cx, e| string(cx, e, "image")),
    (Section::Image, "Creds", creds),
    (C, "Exec", exec),
    (C, "Entrypoint", entrypoint),
    (C, "PublishPort", ports),
    (P, "PublishPort", ports),
    (C, "Volume", volumes),
    (P, "Volume", volumes),
    (C, "Network", networks),
    (P, "Network", networks),
    (C, "Environment", env),
    (C, "EnvironmentFile", env_files),
    (C, "Secret", secrets),
    (C, "Mask", mask),
    (C, "Label", labels),
    (N, "Label", labels),
    (Section::Volume, "Label", labels),
    (C, "User", user),
    (C, "Group", group),
    (C, "WorkingDir", |cx, e| string(cx, e, "workdir")),
    (C, "ReadOnly", read_only),
    (C, "RunInit", |cx, e| boolean(cx, e, "init")),
    (C, "Pull", |cx, e| string(cx, e, "pull")),
    (C, "AutoUpdate", |cx, e| string(cx, e, "auto_update")),
    (C, "Pod", pod),
    (C, "RemapUsers", remap_users),
    (C, "RemapUid", remap_part),
    (C, "RemapGid", remap_part),
    (C, "RemapUidSize", remap_part),
    (P, "RemapUid", remap_part),
    (P, "RemapGid", remap_part),
    (P, "RemapUidSize", remap_part),
    (C, "VolatileTmp", volatile_tmp),
    (P, "RemapUsers", remap_users),
    (C, "StopTimeout", stop_timeout),
    (C, "PidsLimit", pids),
    (C, "HealthCmd", health_cmd),
    (C, "HealthInterval", |cx, e| {
        health_duration(cx, e, "interval")
    }),
    (C, "HealthTimeout", |cx, e| {
        health_duration(cx, e, "timeout")
    }),
    (C, "HealthStartPeriod", |cx, e| {
        health_duration(cx, e, "start_period")
    }),
    (C, "HealthRetries", health_retries),
    (C, "ContainerName", own_name),
    (C, "ServiceName", service_name),
    (P, "ServiceName", service_name),
    (N, "ServiceName", service_name),
    (Section::Volume, "ServiceName", service_name),
    (P, "PodName", own_name),
    (N, "NetworkName", own_name),
    (Section::Volume, "VolumeName", own_name),
    (N, "Subnet", |cx, e| {
        subnet_part(cx, e, Some("subnet"), "--subnet")
    }),
    (N, "Gateway", |cx, e| {
        subnet_part(cx, e, Some("gateway"), "--gateway")
    }),
    (N, "IPRange", |cx, e| subnet_part(cx, e, None, "--ip-range")),
    (N, "Internal", |cx, e| boolean(cx, e, "internal")),
    (N, "IPv6", |cx, e| boolean(cx, e, "ipv6")),
    (N, "Driver", |cx, e| string(cx, e, "driver")),
    (Section::Volume, "Driver", |cx, e| string(cx, e, "driver")),
    (S, "Restart", restart),
    (S, "TimeoutStartSec", start_timeout),
    (S, "MemoryMax", |cx, e| resource(cx, e, "memory")),
    (S, "MemoryLow", |cx, e| {
        resource(cx, e, "memory_reservation")
    }),
    (S, "CPUQuota", cpus),
    (U, "Description", description),
    (U, "Requires", |cx, e| deps(cx, e, "requires")),
    (U, "After", |cx, e| deps(cx, e, "after")),
    (U, "Wants", |cx, e| deps(cx, e, "wants")),
    (I, "WantedBy", wanted_by),
];

/// Converts `key` if a handler owns it; false: the generic path decides.
pub fn convert(cx: &mut Ctx, section: Section, key: &str, entries: &[&Entry]) -> bool {
    let owner = match cx.kind {
        "pod" if section == C => return false,
        // `restart`, `start_timeout`, `resources`: a container's keys; the
        // other kinds keep their [Service] keys in the escape hatch.
        "network" | "volume" | "image" if section == S => return false,
        _ => section,
    };
    match HANDLERS.iter().find(|(s, k, _)| *s == owner && *k == key) {
        Some((_, _, f)) => {
            f(cx, entries);
            true
        }
        None => false,
    }
}

fn last<'e>(entries: &[&'e Entry]) -> &'e Entry {
    entries.last().expect("a key has an entry")
}

fn string(cx: &mut Ctx, entries: &[&Entry], key: &str) {
    let v = unquoted(&last(entries).value);
    cx.set(None, key, Value::Str(v), vec![]);
}

/// A value that is one quoted word loses its quotes, as Quadlet reads it.
pub fn unquoted(v: &str) -> String {
    let quoted = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
    match unit::words(v) {
        Ok(w) if quoted && w.len() == 1 => w[0].clone(),
        _ => v.to_string(),
    }
}

/// A relative host path, resolved against the unit file's directory as
/// Quadlet does (`./data`, `env`); absolute paths and specifiers as written.
fn host_path(cx: &Ctx, p: &str) -> String {
    if p.starts_with('/') || p.starts_with('%') {
        return p.to_string();
    }
    let dir = cx.file.parent().unwrap_or(std::path::Path::new("/"));
    crate::import::compose::convert::syntax::normalize(&dir.join(p))
        .to_string_lossy()
        .into_owned()
}

/// `Subnet=`, `Gateway=`, `IPRange=` of a network with several subnets:
/// the spec's `subnet` and `gateway` take one, so all of them become the
/// same `podman network create` arguments in the escape hatch's
/// `PodmanArgs=`, in their order (Podman pairs the n-th `--gateway` and
/// `--ip-range` with the n-th `--subnet`). With one subnet: the typed keys
/// (`IPRange=` then goes to the escape hatch as it is).
fn subnet_part(cx: &mut Ctx, entries: &[&Entry], key: Option<&str>, flag: &str) {
    let subnets = cx
        .unit
        .section("Network")
        .filter(|e| e.key == "Subnet")
        .count();
    if subnets <= 1 {
        return match key {
            Some(k) => string(cx, entries, k),
            None => {
                let v = entries.iter().map(|e| e.value.clone()).collect();
                cx.append(Some("quadlet"), &entries[0].key, v, vec![]);
            }
        };
    }
    let args: Vec<String> = entries
        .iter()
        .map(|e| format!("{flag} {}", e.value))
        .collect();
    let why = format!(
        "approximation: {}= of a network with several subnets, as {flag}",
        entries[0].key
    );
    cx.append(Some("quadlet"), "PodmanArgs", args, vec![why]);
}

/// `ReadOnly=no` written out: Quadlet passes `--read-only=false` (which
/// overrides a `read_only` in containers.conf); the spec's `false` writes
/// nothing, so it stays that podman argument.
fn read_only(cx: &mut Ctx, entries: &[&Entry]) {
    let e = last(entries);
    match unit::boolean(&e.value) {
        Some(false) => {
            let why = "ReadOnly=no overrides containers.conf";
            as_podman_arg(cx, e, &["--read-only=false"], "read_only", why)
        }
        _ => boolean(cx, entries, "read_only"),
    }
}

fn boolean(cx: &mut Ctx, entries: &[&Entry], key: &str) {
    let e = last(entries);
    match unit::boolean(&e.value) {
        Some(b) => cx.set(None, key, Value::Bool(b), vec![]),
        None => cx.problem(e, format!("{:?} is not a boolean", e.value)),
    }
}

fn image(cx: &mut Ctx, entries: &[&Entry]) {
    let e = last(entries);
    if e.value.ends_with(".image") {
        let name = cx.reference(&e.value.clone());
        let unit = Value::Map(vec![("unit".into(), name)]);
        return cx.set(None, "image", unit, vec![]);
    }
    if e.value.ends_with(".build") {
        return cx.problem(
            e,
            "an image built by a .build unit is not carried over: build the image and name it itself",
        );
    }
    string(cx, entries, "image")
}

/// `Creds=` is a registry password in the unit file: the spec refuses it.
fn creds(cx: &mut Ctx, entries: &[&Entry]) {
    cx.problem(
        last(entries),
        "registry credentials in a unit file are not carried over (a secret): put them in a file with `podman login --authfile FILE` and set `auth_file`",
    );
}

fn exec(cx: &mut Ctx, entries: &[&Entry]) {
    let e = last(entries);
    match unit::words(&e.value) {
        Ok(w) if !w.is_empty() => cx.set(None, "command", Value::List(w), vec![]),
        Ok(_) => cx.problem(e, "an empty Exec= is not carried over"),
        Err(m) => cx.problem(e, m),
    }
}

fn entrypoint(cx: &mut Ctx, entries: &[&Entry]) {
    let e = last(entries);
    if e.value.starts_with('[') {
        match argv(&e.value) {
            Ok(a) => cx.set(None, "entrypoint", Value::List(a), vec![]),
            Err(m) => cx.problem(e, m),
        }
        return;
    }
    let why = "Quadlet passes the string to --entrypoint, which Podman runs as one \
               program; the spec writes it as a one-element JSON array (the same for Podman)";
    cx.approx(None, "entrypoint", Value::List(vec![e.value.clone()]), why);
}

/// A value the typed key `typed` does not take, carried over as the
/// `podman run` argument Quadlet makes of it (`podman_args`), with a
/// comment. Values with `$` or `%` (which systemd would expand there, and
/// `podman_args` keeps as written) stay a problem.
fn as_podman_arg(cx: &mut Ctx, e: &Entry, arg: &[&str], typed: &str, why: &str) {
    if e.value.contains(['$', '%']) || arg.iter().any(|a| values::check_word(a).is_err()) {
        return cx.problem(e, why.to_string());
    }
    let note = format!(
        "approximation: {}={} is not a value `{typed}` takes ({why}): the same podman argument",
        e.key, e.value
    );
    let args = arg.iter().map(|a| a.to_string()).collect();
    cx.append(None, "podman_args", args, vec![note]);
}

fn ports(cx: &mut Ctx, entries: &[&Entry]) {
    let mut out = Vec::new();
    for e in entries {
        match values::parse_port(&e.value) {
            Ok(_) => out.push(e.value.clone()),
            Err(m) => as_podman_arg(cx, e, &["--publish", &e.value], "ports", &m),
        }
    }
    if !out.is_empty() {
        cx.set(None, "ports", Value::List(out), vec![]);
    }
}

/// `Mask=` values: paths; Quadlet's `a:b` lists (one `--security-opt`
/// each) make all of them podman arguments, in their order.
fn mask(cx: &mut Ctx, entries: &[&Entry]) {
    let bad = entries
        .iter()
        .find_map(|e| values::check_container_path(&e.value).err());
    match bad {
        None => {
            let paths = entries.iter().map(|e| e.value.clone()).collect();
            cx.append(None, "mask", paths, vec![]);
        }
        Some(m) => {
            for e in entries {
                let opt = format!("mask={}", e.value);
                as_podman_arg(cx, e, &["--security-opt", &opt], "mask", &m);
            }
        }
    }
}

/// `x.volume:/p[:o]` -> `x:/p[:o]` (and the reference); host paths as they
/// are; a named volume no unit declares, an anonymous one and what the
/// typed key refuses are podman arguments, as under Quadlet.
fn volumes(cx: &mut Ctx, entries: &[&Entry]) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for e in entries {
        let Some((src, rest)) = e.value.split_once(':') else {
            let why = "an anonymous volume, new and empty at every start as under Quadlet";
            as_podman_arg(cx, e, &["-v", &e.value], "volumes", why);
            continue;
        };
        let src = match src.strip_suffix(".volume") {
            Some(stem) => cx.reference(&format!("{stem}.volume")),
            None if src.starts_with('/') || src.starts_with('%') => src.to_string(),
            None if src.starts_with('.') => {
                let why =
                    "a relative source, resolved against the unit file's directory as Quadlet does";
                notes.push(format!("approximation: {why}"));
                host_path(cx, src)
            }
            None => {
                let why = "a volume Podman creates on first use, which no .volume file declares";
                as_podman_arg(cx, e, &["-v", &e.value], "volumes", why);
                continue;
            }
        };
        let v = format!("{src}:{rest}");
        match values::parse_mount(&v) {
            Ok(_) => out.push(v),
            Err(m) => as_podman_arg(cx, e, &["-v", &v], "volumes", &m),
        }
    }
    cx.set(None, "volumes", Value::List(out), notes);
}

/// Podman's network modes, which are not networks to declare.
const MODES: &[&str] = &[
    "host",
    "none",
    "private",
    "pasta",
    "slirp4netns",
    "bridge",
    "podman",
];

fn networks(cx: &mut Ctx, entries: &[&Entry]) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for e in entries {
        let v = e.value.as_str();
        if v.contains(':') || v.ends_with(".container") {
            return cx.problem(
                e,
                format!(
                    "network {v:?} (options, or another container's network) is not carried over"
                ),
            );
        }
        let name = match v.strip_suffix(".network") {
            Some(_) => cx.reference(v),
            None if MODES.contains(&v) => v.to_string(),
            None => {
                cx.external.push(v.to_string());
                notes.push(format!(
                    "network {v:?} is not a .network unit: declared `external = true`"
                ));
                v.to_string()
            }
        };
        out.push(name);
    }
    cx.set(None, "networks", Value::List(out), notes);
}

/// `NAME=VALUE` words -> a table (`Environment=`, `Label=`).
fn pairs(cx: &mut Ctx, entries: &[&Entry], qkey: &str, key: &str) {
    let its = match items(qkey, entries) {
        Ok(i) => i,
        Err((e, m)) => return cx.problem(e.unwrap_or(entries[0]), m),
    };
    let mut m: Vec<(String, String)> = Vec::new();
    for (s, e) in its {
        let Some((a, b)) = s.split_once('=') else {
            return cx.problem(e, format!("{s:?} is not NAME=VALUE"));
        };
        m.retain(|(k, _)| k != a);
        m.push((a.to_string(), b.to_string()));
    }
    cx.set(None, key, Value::Map(m), vec![]);
}

fn env(cx: &mut Ctx, entries: &[&Entry]) {
    pairs(cx, entries, "Environment", "env")
}

fn labels(cx: &mut Ctx, entries: &[&Entry]) {
    pairs(cx, entries, "Label", "labels")
}

fn env_files(cx: &mut Ctx, entries: &[&Entry]) {
    match items("EnvironmentFile", entries) {
        Ok(its) => {
            let rel = its.iter().any(|(s, _)| !s.starts_with(['/', '%']));
            let v = its.iter().map(|(s, _)| host_path(cx, s)).collect();
            let notes = match rel {
                true => vec!["approximation: relative paths resolved against the unit file's directory, as Quadlet does".into()],
                false => vec![],
            };
            cx.set(None, "env_files", Value::List(v), notes);
        }
        Err((e, m)) => cx.problem(e.unwrap_or(entries[0]), m),
    }
}

/// `NAME[,type=T][,target=X]` -> `{ name, type, target }`.
fn secrets(cx: &mut Ctx, entries: &[&Entry]) {
    let its = match items("Secret", entries) {
        Ok(i) => i,
        Err((e, m)) => return cx.problem(e.unwrap_or(entries[0]), m),
    };
    let mut out = Vec::new();
    for (s, e) in its {
        match secret(&s) {
            Ok(t) => out.push(t),
            Err(m) => {
                let arg = Entry {
                    value: s.clone(),
                    ..e.clone()
                };
                as_podman_arg(cx, &arg, &["--secret", &s], "secrets", &m)
            }
        }
    }
    if out.is_empty() {
        return;
    }
    cx.set(None, "secrets", Value::Tables(out), vec![]);
}

/// `NAME[,type=T][,target=X]` (or `source=NAME,...`) as a secret's table.
fn secret(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut name = None;
    let mut t = Vec::new();
    for p in s.split(',') {
        match p.split_once('=') {
            None if name.is_none() => name = Some(p.to_string()),
            Some(("source", v)) if name.is_none() => name = Some(v.to_string()),
            Some((k @ ("type" | "target"), v)) => t.push((k.to_string(), v.to_string())),
            _ => return Err(format!("secret option {p:?} has no spec key")),
        }
    }
    let name = name.ok_or_else(|| format!("secret {s:?} names no secret"))?;
    t.insert(0, ("name".to_string(), name));
    Ok(t)
}

fn user(cx: &mut Ctx, entries: &[&Entry]) {
    string(cx, entries, "user")
}

/// `Group=` joins `User=` as `user = "U:G"`.
fn group(cx: &mut Ctx, entries: &[&Entry]) {
    let e = last(entries);
    let t = cx.table(None);
    match t.rows.iter_mut().find(|r| r.key == "user") {
        Some(r) => {
            if let Value::Str(u) = &mut r.value {
                *u = format!("{u}:{}", e.value);
            }
        }
        None => cx.problem(e, "Group= without User= has no spec equivalent"),
    }
}

fn pod(cx: &mut Ctx, entries: &[&Entry]) {
    let e = last(entries);
    match e.value.strip_suffix(".pod") {
        Some(_) => {
            let name = cx.reference(&e.value.clone());
            cx.set(None, "pod", Value::Str(name), vec![]);
        }
        None => cx.problem(e, "a pod that is not a .pod unit is not carried over"),
    }
}

/// `VolatileTmp=yes` is Quadlet's older way to write this tmpfs on `/tmp`.
fn volatile_tmp(cx: &mut Ctx, entries: &[&Entry]) {
    let e = last(entries);
    let read_only = cx.unit.last("Container", "ReadOnly");
    if read_only.is_some_and(|r| unit::boolean(&r.value) == Some(true)) {
        return; // Quadlet adds no tmpfs: --read-only mounts one on /tmp itself
    }
    match unit::boolean(&e.value) {
        Some(true) => {
            let tmp = "/tmp:rw,size=512M,mode=1777".to_string();
            let why = "approximation: VolatileTmp=yes is the tmpfs Quadlet mounts for it";
            cx.append(None, "tmpfs", vec![tmp], vec![why.into()]);
        }
        Some(false) => {}
        None => cx.problem(e, format!("{:?} is not a boolean", e.value)),
    }
}

/// `RemapUsers=` (with `RemapUid=`, `RemapGid=`, `RemapUidSize=`) is
/// Quadlet's older spelling of `UserNS=` (or `UIDMap=`/`GIDMap=` for
/// `manual`); the values are joined the way Quadlet joins them.
fn remap_users(cx: &mut Ctx, entries: &[&Entry]) {
    let e = last(entries);
    let section = if cx.kind == "pod" { "Pod" } else { "Container" };
    let all = |k: &str| -> Vec<String> {
        cx.unit
            .section(section)
            .filter(|x| x.key == k)
            .map(|x| x.value.clone())
            .collect()
    };
    let (uids, gids, size) = (all("RemapUid"), all("RemapGid"), all("RemapUidSize"));
    let why = "RemapUsers= is Quadlet's older spelling of UserNS=";
    let userns = match e.value.as_str() {
        "keep-id" => {
            let opts: Vec<String> = (uids.last().map(|u| format!("uid={u}")).into_iter())
                .chain(gids.last().map(|g| format!("gid={g}")))
                .collect();
            join_opts("keep-id", &opts)
        }
        "auto" => {
            let opts: Vec<String> = (uids.iter().map(|u| format!("uidmapping={u}")))
                .chain(gids.iter().map(|g| format!("gidmapping={g}")))
                .chain(size.last().map(|s| format!("size={s}")))
                .collect();
            join_opts("auto", &opts)
        }
        "manual" if cx.kind == "container" => {
            cx.approx(None, "uid_map", Value::List(uids), why);
            cx.approx(None, "gid_map", Value::List(gids), why);
            return;
        }
        "manual" => {
            let maps = uids.iter().map(|u| ["--uidmap", u.as_str()]);
            let maps = maps.chain(gids.iter().map(|g| ["--gidmap", g.as_str()]));
            let args: Vec<String> = maps.flatten().map(str::to_string).collect();
            let note = format!("approximation: {why}; a pod has no uid_map, so podman arguments");
            cx.append(None, "podman_args", args, vec![note]);
            return;
        }
        v => return cx.problem(e, format!("RemapUsers={v} has no spec equivalent here")),
    };
    if let Err(m) = values::check_userns(&userns) {
        return cx.problem(e, m);
    }
    cx.approx(None, "userns", Value::Str(userns), why);
}

fn join_opts(mode: &str, opts: &[String]) -> String {
    match opts.is_empty() {
        true => mode.to_string(),
        false => format!("{mode}:{}", opts.join(",")),
    }
}

/// `RemapUid=` and the like are read with `RemapUsers=`.
fn remap_part(cx: &mut Ctx, entries: &[&Entry]) {
    let section = if cx.kind == "pod" { "Pod" } else { "Container" };
    if cx.unit.last(section, "RemapUsers").is_none() {
        cx.problem(
            entries[0],
            "without RemapUsers= this key does nothing; not carried over",
        );
    }
}

fn stop_timeout(cx: &mut Ctx, entries: &[&Entry]) {
    let e = last(entries);
    match duration(&e.value) {
        Ok(d) => cx.set(None, "stop_timeout", Value::Str(d), vec![]),
        Err(m) => cx.problem(e, m),
    }
}

fn pids(cx: &mut Ctx, entries: &[&Entry]) {
    let e = last(entries);
    match e.value.parse::<i64>() {
        Ok(n) if (1..=4_194_304).contains(&n) => {
            cx.set(Some("resources"), "pids", Value::Int(n), vec![])
        }
        Ok(n) => {
            let why = "more than the kernel's 4194304, or no limit";
            as_podman_arg(
                cx,
                e,
                &["--pids-limit", &n.to_string()],
                "resources.pids",
                why,
            )
        }
        _ => cx.problem(e, "PidsLimit= is not an integer"),
    }
}

fn health_cmd(cx: &mut Ctx, entries: &[&Entry]) {
    let e = last(entries);
    let cmd = if e.value.starts_with('[') {
        match argv(&e.value) {
            Ok(a) => a,
            Err(m) => return cx.problem(e, m),
        }
    } else {
        vec!["CMD-SHELL".to_string(), e.value.clone()]
    };
    if cmd.first().is_some_and(|w| w.eq_ignore_ascii_case("none")) {
        return cx.problem(
            e,
            "HealthCmd=none has no spec equivalent (leave `health` out)",
        );
    }
    let why = "the agent renders Podman's health defaults (interval 30s, timeout 5s, \
               3 retries) where the file left them to Podman";
    cx.approx(Some("health"), "cmd", Value::List(cmd), why);
    let note = "Quadlet's health check only marks the container; the agent does not act on it";
    cx.set(
        Some("health"),
        "on_failure",
        Value::Str("none".into()),
        vec![note.into()],
    );
}

fn health_duration(cx: &mut Ctx, entries: &[&Entry], key: &str) {
    let e = last(entries);
    match duration(&e.value) {
        Ok(d) => cx.set(Some("health"), key, Value::Str(d), vec![]),
        Err(m) => cx.problem(e, m),
    }
}

fn health_retries(cx: &mut Ctx, entries: &[&Entry]) {
    let e = last(entries);
    match e.value.parse::<i64>() {
        Ok(n) => cx.set(Some("health"), "retries", Value::Int(n), vec![]),
        Err(_) => cx.problem(e, "not an integer"),
    }
}

/// `ContainerName=`, `NetworkName=`, ...: the agent names the object after
/// the spec (the converter already picked the spec's name from it).
fn own_name(cx: &mut Ctx, entries: &[&Entry]) {
    let e = last(entries);
    if e.value != cx.name {
        let text = format!(
            "approximation: {}={} is not carried over: deploy-agent names it {:?}",
            e.key, e.value, cx.name
        );
        cx.note(text);
    }
}

/// The agent names units after the spec; `ServiceName=` is dropped.
fn service_name(cx: &mut Ctx, entries: &[&Entry]) {
    let e = last(entries);
    cx.note(format!(
        "approximation: ServiceName={} is not carried over: deploy-agent names the unit after the spec",
        e.value
    ));
}

fn restart(cx: &mut Ctx, entries: &[&Entry]) {
    let e = last(entries);
    match e.value.as_str() {
        v @ ("always" | "on-failure" | "no") => {
            cx.set(None, "restart", Value::Str(v.into()), vec![])
        }
        v => cx.problem(
            e,
            format!("Restart={v} has no spec equivalent (always, on-failure, no)"),
        ),
    }
}

fn start_timeout(cx: &mut Ctx, entries: &[&Entry]) {
    let e = last(entries);
    match duration(&e.value) {
        Ok(d) => cx.set(None, "start_timeout", Value::Str(d), vec![]),
        Err(m) => cx.problem(e, m),
    }
}

fn resource(cx: &mut Ctx, entries: &[&Entry], key: &str) {
    let e = last(entries);
    match values::parse_size(&e.value) {
        Ok(_) => cx.set(Some("resources"), key, Value::Str(e.value.clone()), vec![]),
        Err(m) => cx.problem(e, m),
    }
}

fn cpus(cx: &mut Ctx, entries: &[&Entry]) {
    let e = last(entries);
    match e
        .value
        .strip_suffix('%')
        .and_then(|p| p.parse::<f64>().ok())
    {
        Some(p) if p > 0.0 => cx.set(Some("resources"), "cpus", Value::Float(p / 100.0), vec![]),
        _ => cx.problem(e, "only CPUQuota=N% is carried over"),
    }
}

fn description(cx: &mut Ctx, entries: &[&Entry]) {
    let e = last(entries);
    cx.note(format!(
        "Description={} (deploy-agent writes its own description)",
        e.value
    ));
}

/// `Requires=x.service` of a container this import converts -> `requires`.
fn deps(cx: &mut Ctx, entries: &[&Entry], key: &str) {
    let mut out = Vec::new();
    for e in entries {
        for w in unit::words(&e.value).unwrap_or_default() {
            let stem = w.strip_suffix(".service").unwrap_or(&w);
            let file = format!("{stem}.container");
            if !cx.known.contains(&file) {
                return cx.problem(
                    e,
                    format!("{w}: `{key}` names containers of the import only, not other units"),
                );
            }
            out.push(cx.names.get(&file).cloned().unwrap_or(stem.to_string()));
        }
    }
    cx.set(None, key, Value::List(out), vec![]);
}

/// `WantedBy=default.target` is what the agent writes; another target is
/// kept in the escape hatch, next to the agent's.
fn wanted_by(cx: &mut Ctx, entries: &[&Entry]) {
    let mut other = Vec::new();
    for e in entries {
        other.extend(
            unit::words(&e.value)
                .unwrap_or_default()
                .into_iter()
                .filter(|w| w != "default.target"),
        );
    }
    if !other.is_empty() {
        let why = "deploy-agent also adds WantedBy=default.target";
        cx.approx(Some("install"), "WantedBy", Value::List(other), why);
    }
}
