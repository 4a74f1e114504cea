//! The import round trip: Podman's Quadlet generator on the original unit
//! files and on `import quadlet` -> `render` must generate the same
//! service, up to what [`normalize`] ignores. The peer suite is Podman's
//! own Quadlet test files (`tests/fixtures/quadlet-podman/`, see its
//! README): every file the installed generator accepts is imported;
//! those that do not come out the same are listed, with the reason, in
//! `EXPECTED-FAILURES.txt`, and the test fails when a file not listed
//! fails or a listed one passes. `UPDATE_EXPECTED=1` rewrites the list.
//!
//! Without a Quadlet generator the test fails, unless
//! `DEPLOY_AGENT_ALLOW_NO_QUADLET=1`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use deploy_agent::import::quadlet::{self, unit};
use deploy_agent::render::{render, PodmanVersion, RenderOptions};

const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/quadlet-podman");
const OWN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/quadlet-own");
const TARGET: PodmanVersion = PodmanVersion::new(5, 4, 2);

fn generator() -> Option<PathBuf> {
    let found = deploy_agent::quadlet::find_generator();
    if found.is_none() {
        let skip = std::env::var_os("DEPLOY_AGENT_ALLOW_NO_QUADLET").is_some_and(|v| v == "1");
        assert!(
            skip,
            "no Quadlet generator installed (DEPLOY_AGENT_ALLOW_NO_QUADLET=1 skips)"
        );
    }
    found
}

/// `generator -dryrun -user` over `dir`: service name -> text. Files it
/// rejects generate nothing (their errors go to stderr, ignored here).
fn generate(generator: &Path, dir: &Path) -> BTreeMap<String, String> {
    let out = Command::new(generator)
        .args(["-dryrun", "-user"])
        .env("QUADLET_UNIT_DIRS", dir)
        .output()
        .expect("the generator runs");
    let mut services = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(name) = line.strip_prefix("---").and_then(|l| l.strip_suffix("---")) {
            services.extend(current.take());
            current = Some((name.to_string(), String::new()));
        } else if let Some((_, t)) = current.as_mut() {
            t.push_str(line);
            t.push('\n');
        }
    }
    services.extend(current);
    services
}

/// The service generated from the unit file named `file`, by its
/// `SourcePath=`.
fn service_of<'a>(services: &'a BTreeMap<String, String>, file: &str) -> Option<&'a String> {
    services.values().find(|t| {
        t.lines()
            .any(|l| l.starts_with("SourcePath=") && l.ends_with(&format!("/{file}")))
    })
}

/// What the round trip compares: per section, `(key, value)` in a
/// canonical order. What it ignores, and why:
///
/// - sections `X-*`: the generator's echo of the input file, whose text
///   naturally differs (the comparison is of what it generates from it);
/// - comments: the agent's header and notes;
/// - `[Unit] SourcePath=`, `Description=`: the input's path, and the
///   description the agent writes for every unit;
/// - `[Service] SuccessExitStatus=`, `RestartForceExitStatus=`: the agent's
///   own additions (a `podman stop` is a clean stop);
/// - `[Service] TimeoutStopSec=` when the original has none: the agent's
///   addition (`stop_timeout` + 30 s, so systemd does not kill Podman
///   while it stops the container);
/// - `[Service] Restart=no`: systemd's default, which the importer writes
///   where the file has no `Restart=` (the spec's default differs);
/// - `[Install] WantedBy=default.target`: the agent's, on every unit;
/// - `--name NAME` in `Exec*=` lines: the agent names containers after the
///   spec, Quadlet `systemd-%N`;
/// - the order of different options of `podman run`/`create` (and of an
///   image's `podman image pull`): Quadlet itself writes some in Go map
///   order (`--ip`/`--ip6`, `--arch`/`--authfile` swap between runs),
///   so options are sorted by flag, a repeated flag keeping its order;
/// - a unit name (`Requires=basic-network.service`, a pod's
///   `%t/basic-pod.pod-id`) is replaced by the file the unit was generated
///   from: the agent names units after specs (which keep the Podman
///   object's name, `systemd-basic`), Quadlet after the file or its
///   `ServiceName=`. The Podman names themselves must match;
/// - a list of units (`WantedBy=a b`, `After=`, ...) is compared one
///   unit per line, as systemd reads it;
/// - `*Sec=` values are compared as time spans (`10` is `10s` to systemd);
/// - `--entrypoint '["X"]'` is read as `--entrypoint X` (Podman runs both
///   as the one program X), a `--shm-size`/`--memory` value in upper case
///   (Podman reads `5g` as `5G`), a `--publish` value without `/tcp`
///   (Podman's default protocol), a `--secret` value without `source=`
///   before the name and without `type=mount` (Podman's default);
/// - the values of `--sysctl`, `--ulimit`, `--env`, `--label`,
///   `--annotation`, `--log-opt` are sorted among themselves: each sets a
///   distinct key, so their order does not matter to Podman, and the spec
///   holds them as a table sorted by key; so are those of `-v`,
///   `--publish`, `--secret`, `--expose`, `--device`, `--tmpfs`, `--mount`:
///   each names a distinct target (Podman refuses two on one), and what a
///   typed key cannot say goes to `podman_args`, written after the rest.
///
/// Entries are sorted by section and key, keeping the order of a repeated
/// key's values: systemd reads sections and keys in any order, a list in
/// its order.
fn normalize(
    service: &str,
    original: Option<&str>,
    units: &Units,
) -> Vec<(String, String, String)> {
    let u = unit::parse(service).expect("the generator writes unit files");
    let had_timeout_stop = original.is_none_or(|o| o.contains("\nTimeoutStopSec="));
    let mut out = Vec::new();
    for s in u.sections.iter().filter(|s| !s.name.starts_with("X-")) {
        let entries: Vec<(String, String, String)> = s
            .entries
            .iter()
            .filter(|e| !ignored(&s.name, &e.key, &e.value, had_timeout_stop))
            .flat_map(split_unit_list)
            .map(|e| {
                let v = if e.key.starts_with("Exec") {
                    exec_line(&e.value, units)
                } else if e.key.ends_with("Sec") {
                    time_span(&e.value)
                } else {
                    rename_units(&e.value, units)
                };
                (s.name.clone(), e.key.clone(), v)
            })
            .collect();
        out.extend(entries);
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

/// Unit names systemd reads as a space-separated list: one line with two
/// names is two lines with one.
const UNIT_LISTS: &[&str] = &[
    "WantedBy",
    "RequiredBy",
    "Alias",
    "Wants",
    "Requires",
    "After",
    "Before",
    "BindsTo",
    "PartOf",
];

fn split_unit_list(e: &unit::Entry) -> Vec<unit::Entry> {
    if !UNIT_LISTS.contains(&e.key.as_str()) || e.value.is_empty() {
        return vec![e.clone()];
    }
    let words = unit::words(&e.value).unwrap_or_default();
    words
        .into_iter()
        .map(|w| unit::Entry {
            value: w,
            ..e.clone()
        })
        .collect()
}

fn ignored(section: &str, key: &str, value: &str, had_timeout_stop: bool) -> bool {
    match (section, key) {
        ("Unit", "SourcePath" | "Description") => true,
        ("Service", "SuccessExitStatus" | "RestartForceExitStatus") => true,
        ("Service", "TimeoutStopSec") => !had_timeout_stop,
        ("Service", "Restart") => value == "no",
        ("Install", "WantedBy") => value == "default.target",
        _ => false,
    }
}

/// Options whose values Podman reads in any order: each sets a distinct
/// key (`--sysctl`, `--env`, ...; the spec holds them as a table sorted by
/// key) or a distinct target (`-v`, `--publish`, ...; Podman refuses two
/// on one target); the importer may carry some over as `podman_args`.
const KEYED_OPTIONS: &[&str] = &[
    "--sysctl",
    "--ulimit",
    "--env",
    "--label",
    "--annotation",
    "--log-opt",
    "-v",
    "--publish",
    "--secret",
    "--expose",
    "--device",
    "--tmpfs",
    "--mount",
];

/// Options whose value is a size, where Podman reads `5g` as `5G`.
const SIZE_OPTIONS: &[&str] = &["--shm-size", "--memory"];

/// Flags Quadlet writes without a value (others take the next word,
/// unless it is a flag itself).
const BOOL_FLAGS: &[&str] = &[
    "--rm",
    "--ignore",
    "--replace",
    "-d",
    "--read-only",
    "--init",
    "--privileged",
    "--no-hosts",
    "--tty",
    "-t",
    "--interactive",
    "-i",
    "--tls-verify",
    "--all-tags",
];

/// An `Exec*=` line normalized: after `run`/`create`/`pull`, the options as
/// groups (flag and value), sorted by flag (stably: a repeated flag keeps
/// its order), then the positional words (image, command) as they are.
fn exec_line(v: &str, units: &Units) -> String {
    let words: Vec<String> = unit::words(v)
        .expect("Exec lines are quoted right")
        .into_iter()
        .map(|w| rename_units(&w, units))
        .collect();
    let sub = words
        .iter()
        .position(|w| w == "run" || w == "create" || w == "pull");
    let Some(sub) = sub else {
        return words.join(" ");
    };
    let (head, rest) = words.split_at(sub + 1);
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut i = 0;
    while i < rest.len() && rest[i].starts_with('-') {
        let w = &rest[i];
        let next_is_flag = rest.get(i + 1).is_none_or(|n| n.starts_with('-'));
        let takes_value = !w.contains('=') && !BOOL_FLAGS.contains(&w.as_str()) && !next_is_flag;
        let n = if takes_value { 2 } else { 1 };
        groups.push(rest[i..(i + n).min(rest.len())].to_vec());
        i += n;
    }
    groups.retain(|g| g[0] != "--name");
    for g in groups.iter_mut().filter(|g| g.len() == 2) {
        if g[0] == "--entrypoint" {
            g[1] = one_element_json(&g[1]).unwrap_or(g[1].clone());
        } else if SIZE_OPTIONS.contains(&g[0].as_str()) {
            g[1] = g[1].to_ascii_uppercase();
        } else if g[0] == "--publish" {
            g[1] = g[1].strip_suffix("/tcp").unwrap_or(&g[1]).to_string();
        } else if g[0] == "--secret" {
            g[1] = canonical_secret(&g[1]);
        }
    }
    sort_keyed(&mut groups);
    groups.sort_by(|a, b| a[0].split('=').next().cmp(&b[0].split('=').next()));
    let mut out = head.to_vec();
    out.extend(groups.into_iter().flatten());
    out.extend(rest[i..].iter().cloned());
    out.join(" ")
}

/// Generated unit name (`web.service`) -> the file it was generated from
/// (`web.container`, or for the import the file the spec came from).
type Units = BTreeMap<String, String>;

/// The units of a generator run, by their `SourcePath=`; `origin` maps a
/// source file name to the file it stands for.
fn units_of(services: &BTreeMap<String, String>, origin: impl Fn(&str) -> String) -> Units {
    let mut units = Units::new();
    for (name, text) in services {
        if let Some(p) = text.lines().find_map(|l| l.strip_prefix("SourcePath=")) {
            let file = p.rsplit('/').next().unwrap_or(p);
            units.insert(name.clone(), origin(file));
        }
    }
    units
}

/// Unit names in `v` replaced by the file they were generated from: a
/// unit name (`basic.service`, `%t/basic-pod.pod-id`) is the agent's
/// business, the file it stands for is what must match.
fn rename_units(v: &str, units: &Units) -> String {
    let mut out = v.to_string();
    for (unit, file) in units {
        let stem = unit.strip_suffix(".service").unwrap_or(unit);
        out = out
            .split(' ')
            .map(|w| {
                if w == unit {
                    format!("<{file}>")
                } else if let Some(head) = w.strip_suffix(&format!("/{stem}.pod-id")) {
                    format!("{head}/<{file}>.pod-id")
                } else {
                    w.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    out
}

/// A systemd time span (`*Sec=`) in milliseconds: `10`, `10s` and
/// `10000ms` are the same to systemd.
fn time_span(v: &str) -> String {
    let s: String = v.split_whitespace().collect::<Vec<_>>().concat();
    let s = if s.bytes().all(|b| b.is_ascii_digit()) {
        format!("{s}s")
    } else {
        s
    };
    deploy_agent::spec::values::parse_duration(&s.replace("sec", "s"))
        .map_or(v.to_string(), |d| format!("{}ms", d.as_millis()))
}

/// A `--secret` value as Podman reads it: `source=NAME` is `NAME`, and
/// `type=mount` is the default.
fn canonical_secret(v: &str) -> String {
    let parts: Vec<&str> = v
        .split(',')
        .map(|p| p.strip_prefix("source=").unwrap_or(p))
        .filter(|p| *p != "type=mount")
        .collect();
    parts.join(",")
}

/// `["top -b"]` -> `top -b`: `--entrypoint` with a JSON array of one
/// string is the same entrypoint as that string (one program, not split).
fn one_element_json(w: &str) -> Option<String> {
    let v: Vec<String> = serde_json::from_str(w).ok()?;
    <[String; 1]>::try_from(v).ok().map(|[one]| one)
}

/// Sorts the values of each [`KEYED_OPTIONS`] option among its own groups.
fn sort_keyed(groups: &mut [Vec<String>]) {
    for opt in KEYED_OPTIONS {
        let at: Vec<usize> = (0..groups.len())
            .filter(|&i| groups[i].len() == 2 && groups[i][0] == *opt)
            .collect();
        let mut vals: Vec<String> = at.iter().map(|&i| groups[i][1].clone()).collect();
        vals.sort();
        for (i, v) in at.into_iter().zip(vals) {
            groups[i][1] = v;
        }
    }
}

/// Why `file` (in `dir`) does not come out the same; `None`: it does.
/// `Err`: the generator rejects the original (not counted).
fn round_trip(generator: &Path, dir: &Path, file: &str) -> Result<Option<String>, ()> {
    let files = quadlet::files_read(&[dir.join(file)]);
    let orig_dir = tempfile::tempdir().unwrap();
    for f in &files {
        std::fs::copy(f, orig_dir.path().join(f.file_name().unwrap())).unwrap();
    }
    let generated = generate(generator, orig_dir.path());
    let Some(original) = service_of(&generated, file) else {
        return Err(());
    };
    let units = units_of(&generated, str::to_string);
    let spec_dir = tempfile::tempdir().unwrap();
    let imported = imported_service(generator, orig_dir.path(), spec_dir.path(), file);
    let why = imported.and_then(|(again, units_again)| {
        let a = normalize(original, None, &units);
        let b = normalize(&again, Some(original), &units_again);
        first_difference(&a, &b).map_or(Ok(()), Err)
    });
    Ok(why
        .err()
        .map(|w| untemp(w, &[orig_dir.path(), spec_dir.path()])))
}

/// `import` -> `render` -> the generator: the service of `file`'s spec,
/// and the units of the run.
fn imported_service(
    generator: &Path,
    dir: &Path,
    spec_dir: &Path,
    file: &str,
) -> Result<(String, Units), String> {
    let imp = quadlet::import(&[dir.join(file)]);
    if let Some(p) = imp.problems.first() {
        let more = imp.problems.len() - 1;
        return Err(format!("not carried over: {p} (+{more} more)"));
    }
    let texts: Vec<(PathBuf, String)> = imp
        .specs
        .iter()
        .map(|(n, t)| (spec_dir.join(n), t.clone()))
        .collect();
    let set = deploy_agent::spec::load_texts(&texts)
        .map_err(|e| format!("the imported spec does not validate: {e}"))?;
    let opts = RenderOptions {
        podman: TARGET,
        ..Default::default()
    };
    let rendering = render(&set, &opts).map_err(|e| format!("render: {e}"))?;
    let out_dir = tempfile::tempdir().unwrap();
    let mut unit_name = None;
    for (name, f) in &rendering {
        std::fs::write(out_dir.path().join(name), &f.contents).unwrap();
        if f.source.file_name() == Some(format!("{file}.toml").as_ref()) {
            unit_name = Some(f.unit.clone());
        }
    }
    let generated = generate(generator, out_dir.path());
    let origin = |rendered: &str| {
        let spec = rendering
            .get(rendered)
            .map(|f| f.source.clone())
            .unwrap_or_default();
        let spec = spec
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        spec.strip_suffix(".toml").unwrap_or(&spec).to_string()
    };
    let units = units_of(&generated, origin);
    unit_name
        .and_then(|u| generated.get(&u).cloned())
        .map(|s| (s, units))
        .ok_or_else(|| "the generator rejects the rendered file".into())
}

/// `why` without the temporary directories' paths (the list is stable).
fn untemp(why: String, dirs: &[&Path]) -> String {
    dirs.iter()
        .fold(why, |w, d| w.replace(&format!("{}/", d.display()), ""))
}

type Normal = [(String, String, String)];

fn first_difference(a: &Normal, b: &Normal) -> Option<String> {
    let show = |e: Option<&(String, String, String)>| {
        e.map_or("nothing".into(), |(s, k, v)| format!("[{s}] {k}={v}"))
    };
    (0..a.len().max(b.len()))
        .find(|&i| a.get(i) != b.get(i))
        .map(|i| format!("differs: {} became {}", show(a.get(i)), show(b.get(i))))
}

/// Every unit file of `dir` (not the files they only reference). Podman's
/// test files copied here have no `.image` files; the own samples do.
fn unit_files(dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| {
            [".container", ".pod", ".network", ".volume", ".image"]
                .iter()
                .any(|x| n.ends_with(x))
        })
        .collect();
    v.sort();
    v
}

/// Runs the round trip over `dir`: (files accepted by the generator,
/// failures: file -> reason).
fn suite(generator: &Path, dir: &str) -> (usize, BTreeMap<String, String>) {
    let mut accepted = 0;
    let mut failures = BTreeMap::new();
    for f in unit_files(dir) {
        match round_trip(generator, Path::new(dir), &f) {
            Err(()) => {}
            Ok(why) => {
                accepted += 1;
                if let Some(why) = why {
                    failures.insert(f, why.replace('\n', " "));
                }
            }
        }
    }
    (accepted, failures)
}

#[test]
fn podman_test_suite_round_trips() {
    let Some(g) = generator() else { return };
    let (total, failures) = suite(&g, PEERS);
    let exact = total - failures.len();
    eprintln!(
        "quadlet import round trip, Podman {TARGET} test files: {exact} / {total} exact ({:.1}%)",
        100.0 * exact as f64 / total as f64
    );
    let path = Path::new(PEERS).join("EXPECTED-FAILURES.txt");
    let text: String = failures
        .iter()
        .map(|(f, why)| format!("{f}: {why}\n"))
        .collect();
    if std::env::var_os("UPDATE_EXPECTED").is_some_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let listed = std::fs::read_to_string(&path).unwrap_or_default();
    let listed: BTreeMap<&str, &str> = listed.lines().filter_map(|l| l.split_once(": ")).collect();
    let new: Vec<_> = failures
        .keys()
        .filter(|f| !listed.contains_key(f.as_str()))
        .collect();
    let fixed: Vec<_> = listed
        .keys()
        .filter(|f| !failures.contains_key(**f))
        .collect();
    assert!(
        new.is_empty() && fixed.is_empty(),
        "failing but not listed: {new:?}\nlisted but passing: {fixed:?}\n\
         (UPDATE_EXPECTED=1 rewrites the list)\n{text}"
    );
}

#[test]
fn own_samples_round_trip_exactly() {
    let Some(g) = generator() else { return };
    let (total, failures) = suite(&g, OWN);
    assert!(total >= 4, "the generator accepts the samples ({total})");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_normalizer_sees_a_changed_argument() {
    let a = "[Service]\nExecStart=/usr/bin/podman run --name systemd-%N --ip 1.2.3.4 --cap-drop=all img\n";
    let b = "[Service]\nExecStart=/usr/bin/podman run --cap-drop=all --name web --ip 1.2.3.4 img\n\
             SuccessExitStatus=143 137\n[Install]\nWantedBy=default.target\n";
    let c =
        "[Service]\nExecStart=/usr/bin/podman run --name web --ip 1.2.3.4 --cap-drop=chown img\n";
    let d =
        "[Service]\nExecStart=/usr/bin/podman run --name web --ip 1.2.3.4 --cap-drop=all img x\n";
    let none = Units::new();
    assert_eq!(normalize(a, None, &none), normalize(b, Some(a), &none));
    for other in [c, d] {
        let (x, y) = (normalize(a, None, &none), normalize(other, Some(a), &none));
        assert!(first_difference(&x, &y).is_some());
    }
}

#[test]
fn readme_shows_the_real_output() {
    let dir = Path::new(OWN);
    let imp = quadlet::import(&[dir.join("immich-server.container")]);
    assert!(imp.problems.is_empty(), "{:?}", imp.problems);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (name, text) in &imp.specs {
        let shown = text.replace(&format!("{}/", dir.display()), "");
        assert!(
            readme.contains(&shown),
            "README's output of {name} is stale:\n{shown}"
        );
    }
}

fn cli(args: &[&str], cwd: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_deploy-agent"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn cli_lists_what_it_cannot_carry_over_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("web.container"),
        "[Unit]\nWants=network-online.target\n[Container]\nImage=docker.io/library/nginx\n\
         [Quadlet]\nDefaultDependencies=no\n",
    )
    .unwrap();
    let (code, text) = cli(
        &["import", "quadlet", "web.container", "--out", "specs"],
        d.path(),
    );
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("web.container:2: Wants: network-online.target"),
        "{text}"
    );
    assert!(
        text.contains("web.container:5: [Quadlet]: this section"),
        "{text}"
    );
    assert!(!d.path().join("specs").exists());

    let (code, text) = cli(
        &["import", "quadlet", ".", "--out", "specs", "--partial"],
        d.path(),
    );
    assert_eq!(code, 2, "{text}");
    let spec = std::fs::read_to_string(d.path().join("specs/web.container.toml")).unwrap();
    assert!(
        spec.contains("\"docker.io/library/nginx\"") && !spec.contains("network-online"),
        "{spec}"
    );

    std::fs::write(d.path().join("specs/web.container.toml"), "# mine\n").unwrap();
    let (code, text) = cli(
        &["import", "quadlet", ".", "--out", "specs", "--partial"],
        d.path(),
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not overwriting it"), "{text}");
}

#[test]
fn an_image_unit_and_its_container_are_carried_over() {
    let dir = Path::new(OWN);
    let imp = quadlet::import(&[dir.join("homebridge.container")]);
    assert!(imp.problems.is_empty(), "{:?}", imp.problems);
    let names: Vec<&str> = imp.specs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["homebridge.container.toml", "homebridge.image.toml"]
    );
    let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let container = words(&imp.specs[0].1);
    assert!(
        container.contains("image = { unit = \"homebridge\" }"),
        "{container}"
    );
    let image = words(&imp.specs[1].1);
    for want in [
        "[image.homebridge]",
        "image = \"docker.io/homebridge/homebridge:2024-09-01\"",
        "auth_file = \"/etc/containers/auth.json\"",
        "tls_verify = true",
        "arch = \"amd64\"",
    ] {
        assert!(image.contains(want), "{want} in {image}");
    }
}

#[test]
fn creds_in_an_image_unit_are_not_carried_over() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("app.image"),
        "[Image]\nImage=registry.example.com/app:1\nCreds=me:secret\n",
    )
    .unwrap();
    let imp = quadlet::import(&[d.path().join("app.image")]);
    let p: Vec<String> = imp.problems.iter().map(|p| p.to_string()).collect();
    assert!(
        p.len() == 1
            && p[0].contains("app.image:3: Creds: registry credentials")
            && !p[0].contains("me:secret"),
        "{p:?}"
    );
    assert!(imp.specs.iter().all(|(_, t)| !t.contains("me:secret")));
}

#[test]
fn cli_refuses_kube_and_build_files() {
    let d = tempfile::tempdir().unwrap();
    for f in ["a.kube", "c.build"] {
        std::fs::write(d.path().join(f), "[X]\n").unwrap();
    }
    let (code, text) = cli(
        &["import", "quadlet", ".", "--out", "specs", "--partial"],
        d.path(),
    );
    assert_eq!(code, 2, "{text}");
    for f in ["a.kube:1: a .kube unit", "c.build:1: a .build unit"] {
        assert!(text.contains(f), "{f} in {text}");
    }
    assert!(!d.path().join("specs").exists());
}
