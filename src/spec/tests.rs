//! Parsing and validation tests: one per error kind, each checking the place.

use super::*;
use std::time::Duration;

fn load(files: &[(&str, &str)]) -> Result<SpecSet, SpecErrors> {
    let files: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.to_string()))
        .collect();
    load_texts(&files)
}

fn errs(files: &[(&str, &str)]) -> Vec<String> {
    match load(files) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

fn one_err(text: &str) -> String {
    let e = errs(&[("s.toml", text)]);
    assert_eq!(e.len(), 1, "{e:#?}");
    e[0].clone()
}

const WEB: &str = "[container.web]\nimage = \"localhost/busybox\"\n";

#[test]
fn senex_reference_stack_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/senex");
    let set = load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        set.containers.keys().collect::<Vec<_>>(),
        [
            "celery-beat",
            "celery-worker",
            "django",
            "postgres",
            "redis"
        ]
    );
    assert_eq!(set.networks.len(), 1);
    assert_eq!(set.volumes.len(), 2);
    let pg = &set.containers["postgres"];
    assert_eq!(pg.resources.memory, Some(200 << 20));
    assert_eq!(pg.resources.cpus, Some(1.0));
    assert_eq!(pg.secrets[0].kind, SecretKind::Env);
    assert_eq!(pg.start_timeout, Some(Duration::from_secs(120)));
    let dj = &set.containers["django"];
    assert_eq!(dj.requires, ["postgres", "redis"]);
    let h = dj.health.as_ref().unwrap();
    assert_eq!(h.on_failure, OnFailure::Rollback);
    assert_eq!(h.start_period, Duration::from_secs(40));
    assert!(matches!(
        &h.check,
        HealthCheck::Http {
            expect_status: 200,
            ..
        }
    ));
    let order: Vec<&str> = set
        .containers_in_order()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let pos = |n| order.iter().position(|x| *x == n).unwrap();
    assert!(pos("postgres") < pos("django") && pos("redis") < pos("django"));
    assert!(pos("django") < pos("celery-worker"));
}

#[test]
fn malformed_toml_has_line_and_col() {
    let e = one_err("[container.web]\nimage = \"x\nports = []\n");
    assert!(e.starts_with("s.toml:2:"), "{e}");
    assert!(e.contains("malformed TOML"), "{e}");
}

#[test]
fn unknown_key_with_did_you_mean() {
    let e = one_err("[container.web]\nimage = \"x\"\nimgae = \"y\"\n");
    assert_eq!(
        e,
        "s.toml:3:1: container.web.imgae: unknown key (did you mean `image`?)"
    );
    let e = one_err("[container.web]\nimage = \"x\"\n[container.web.resources]\nmemroy = \"1M\"\n");
    assert!(
        e.contains(
            "s.toml:4:1: container.web.resources.memroy: unknown key (did you mean `memory`?)"
        ),
        "{e}"
    );
    let e = one_err("[contaner.web]\nimage = \"x\"\n");
    assert!(
        e.contains("contaner: unknown key (did you mean `container`?)"),
        "{e}"
    );
}

#[test]
fn all_errors_are_reported_not_just_the_first() {
    let e = errs(&[(
        "s.toml",
        "[container.web]\nimage = \"x\"\nimgae = 1\nports = [\"80\"]\nrestart = \"sometimes\"\n[container.web.resources]\nmemory = \"12Q\"\ncpus = 0\n",
    )]);
    assert_eq!(e.len(), 5, "{e:#?}");
    assert!(
        e[1].contains("s.toml:4:10: container.web.ports[0]"),
        "{e:#?}"
    );
    assert!(
        e[2].contains("container.web.restart: invalid value \"sometimes\""),
        "{e:#?}"
    );
    assert!(
        e[3].contains("s.toml:7:10: container.web.resources.memory: invalid size \"12Q\""),
        "{e:#?}"
    );
    assert!(
        e[4].contains("resources.cpus: 0 is not a valid CPU count"),
        "{e:#?}"
    );
}

#[test]
fn wrong_types() {
    assert!(one_err("[container.web]\nimage = 3\n")
        .contains("container.web.image: expected a string, found an integer"));
    assert!(one_err(&format!("{WEB}read_only = \"yes\"\n")).contains("expected true or false"));
    assert!(
        one_err(&format!("{WEB}command = \"sh -c x\"\n")).contains("expected an array of strings")
    );
    assert!(
        one_err(&format!("{WEB}command = [\"sh\", 1]\n")).contains("command[1]: expected a string")
    );
    assert!(one_err("[container]\nweb = 1\n").contains("container.web: expected a table"));
    assert!(
        one_err(&format!("{WEB}env = [\"A=1\"]\n")).contains("container.web.env: expected a table")
    );
}

#[test]
fn missing_image() {
    assert!(one_err("[container.web]\nuser = \"1\"\n")
        .contains("s.toml:1:12: container.web: missing required key `image`"));
}

#[test]
fn bad_sizes_durations_ports_cpus() {
    for (snippet, want) in [
        (
            "[container.web.resources]\nmemory = -1\n",
            "size -1 must be greater than zero",
        ),
        (
            "[container.web.resources]\nmemory = 0\n",
            "size 0 must be greater than zero",
        ),
        (
            "[container.web.resources]\nmemory = \"12Q\"\n",
            "invalid size",
        ),
        (
            "[container.web.resources]\ncpus = -1\n",
            "not a valid CPU count",
        ),
        ("[container.web.resources]\ncpus = 0.333\n", "two decimals"),
        (
            "[container.web.resources]\ncpus = \"1\"\n",
            "expected a number of cores",
        ),
        ("[container.web.resources]\npids = 0\n", "out of range"),
        (
            "[container.web.resources]\nmemory = \"100M\"\nmemory_reservation = \"200M\"\n",
            "larger than the hard limit",
        ),
        (
            "[container.web.health]\ntcp = \"x:1\"\ninterval = \"10\"\n",
            "invalid duration",
        ),
        (
            "[container.web.health]\ntcp = \"x:1\"\ninterval = \"0s\"\n",
            "longer than zero",
        ),
        (
            "[container.web.health]\ntcp = \"x:1\"\ntimeout = \"1m\"\ninterval = \"10s\"\n",
            "is longer than its interval",
        ),
        (
            "[container.web.health]\ntcp = \"x:99999\"\n",
            "invalid TCP address",
        ),
        (
            "[container.web.health]\nhttp = \"ftp://x/\"\n",
            "scheme must be http or https",
        ),
        (
            "[container.web.health]\nretries = 3\n",
            "needs one of `cmd`, `http` or `tcp`",
        ),
        (
            "[container.web.health]\ntcp = \"x:1\"\ncmd = [\"true\"]\n",
            "only one of",
        ),
        (
            "[container.web.health]\ntcp = \"x:1\"\nexpect_status = 200\n",
            "only applies to an `http` check",
        ),
        (
            "[container.web.health]\nhttp = \"http://x/\"\nexpect_status = 999\n",
            "out of range",
        ),
    ] {
        let e = one_err(&format!("{WEB}{snippet}"));
        assert!(e.contains(want), "{snippet:?}: {e}");
    }
    for snippet in [
        "ports = [\"0:80\"]",
        "ports = [\"80:70000\"]",
        "ports = [\"x\"]",
        "start_timeout = \"5 s\"",
        "stop_timeout = \"-1s\"",
    ] {
        one_err(&format!("{WEB}{snippet}\n"));
    }
}

#[test]
fn names_with_path_tricks_are_rejected() {
    for name in [
        "\"../etc\"",
        "\"a/b\"",
        "\"a b\"",
        "\"Web\"",
        "\"wéb\"",
        "\"we\\u202Eb\"",
        "\".hidden\"",
        "\"\"",
    ] {
        let e = one_err(&format!("[container.{name}]\nimage = \"x\"\n"));
        assert!(e.contains("invalid name"), "{name}: {e}");
        assert!(e.starts_with("s.toml:1:"), "{e}");
    }
    let e = one_err(&format!("{WEB}volumes = [\"/etc/../shadow:/x\"]\n"));
    assert!(e.contains("must not contain '..'"), "{e}");
    let e = one_err(&format!("{WEB}env_files = [\"relative.env\"]\n"));
    assert!(e.contains("must be absolute"), "{e}");
}

#[test]
fn injection_in_every_kind_of_string_is_rejected() {
    for (snippet, key) in [
        (
            "image = \"x\\n[Service]\\nExecStartPre=/bin/evil\"",
            "container.web.image",
        ),
        (
            "command = [\"sh\", \"-c\", \"a\\nb\"]",
            "container.web.command[2]",
        ),
        ("env = { A = \"1\\nExecStart=/x\" }", "container.web.env.A"),
        ("labels = { a = \"x\\u0000y\" }", "container.web.labels.a"),
        ("user = \"root\\r\"", "container.web.user"),
        ("workdir = \"/x\\n\"", "container.web.workdir"),
    ] {
        let text =
            WEB.replace("image = \"localhost/busybox\"\n", "") + "image = \"localhost/busybox\"\n";
        let text = if snippet.starts_with("image") {
            format!("[container.web]\n{snippet}\n")
        } else {
            format!("{text}{snippet}\n")
        };
        let e = one_err(&text);
        assert!(e.contains(key), "{snippet}: {e}");
        assert!(e.contains("forbidden character"), "{snippet}: {e}");
    }
    // `%` is fine in a value: the renderer escapes it.
    load(&[("s.toml", &format!("{WEB}env = {{ P = \"100%\" }}\n"))]).unwrap();
}

#[test]
fn duplicate_names_across_files_name_both() {
    let e = errs(&[("a.toml", WEB), ("b.toml", WEB)]);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "b.toml:1:12: container.web: container \"web\" is already defined in a.toml:1"
        ),
        "{}",
        e[0]
    );
}

#[test]
fn unit_name_collisions_across_kinds() {
    let e = errs(&[(
        "a.toml",
        "[network.db]\n[container.db-network]\nimage = \"x\"\n",
    )]);
    assert!(e[0].contains("db-network.service"), "{e:?}");
}

#[test]
fn missing_references_with_hints() {
    let e = errs(&[(
        "a.toml",
        "[network.senex_net]\n[volume.pgdata]\n[container.db]\nimage = \"x\"\n[container.web]\nimage = \"x\"\nrequires = [\"bd\"]\nnetworks = [\"senex-net\"]\nvolumes = [\"pgdta:/data\"]\nafter = [\"web\"]\n",
    )]);
    assert_eq!(e.len(), 4, "{e:#?}");
    assert!(e[0].contains("a.toml:7:13: container.web.requires[0]: no container named \"bd\" (did you mean `db`?)"), "{e:#?}");
    assert!(
        e[1].contains("no network named \"senex-net\" (did you mean `senex_net`?)"),
        "{e:#?}"
    );
    assert!(
        e[2].contains("no volume named \"pgdta\" (did you mean `pgdata`?)"),
        "{e:#?}"
    );
    assert!(e[3].contains("cannot depend on itself"), "{e:#?}");
}

#[test]
fn external_and_builtin_networks() {
    load(&[("a.toml", "[network.corp]\nexternal = true\n[container.web]\nimage = \"x\"\nnetworks = [\"corp\", \"host\"]\n")]).unwrap();
    let e = one_err("[network.corp]\nexternal = true\nsubnet = \"10.0.0.0/8\"\n");
    assert!(e.contains("takes no other keys"), "{e}");
}

#[test]
fn network_values() {
    assert!(one_err("[network.n]\nsubnet = \"10.0.0.0/33\"\n").contains("invalid subnet"));
    assert!(
        one_err("[network.n]\nsubnet = \"10.0.0.0/8\"\ngateway = \"11.0.0.1\"\n")
            .contains("not inside subnet")
    );
    assert!(one_err("[network.n]\ndriver = \"bridg\"\n").contains("did you mean `bridge`"));
}

#[test]
fn dependency_cycles() {
    let e = errs(&[(
        "a.toml",
        "[container.a]\nimage = \"x\"\nrequires = [\"b\"]\n[container.b]\nimage = \"x\"\nafter = [\"c\"]\n[container.c]\nimage = \"x\"\nwants = [\"a\"]\n",
    )]);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].contains("a.toml:1:12: container.a: dependency cycle: a -> b -> c -> a"),
        "{}",
        e[0]
    );
}

/// README "Health, rollback and history": a health table with only its
/// check gets `interval` 30s, `timeout` 5s, `retries` 3, `start_period` 0s,
/// `on_failure` restart, and an `http` check `expect_status` 200. Both
/// sides are checked: the parser's values, and the README's sentences
/// written with those values.
#[test]
fn health_defaults_are_the_readmes() {
    let set = load(&[(
        "s.toml",
        &format!("{WEB}[container.web.health]\ntcp = \"127.0.0.1:8080\"\n"),
    )])
    .unwrap_or_else(|e| panic!("{e}"));
    let h = set.containers["web"].health.as_ref().unwrap();
    assert_eq!(
        h.check,
        HealthCheck::Tcp {
            addr: "127.0.0.1:8080".into()
        }
    );
    assert_eq!(h.interval, Duration::from_secs(30));
    assert_eq!(h.timeout, Duration::from_secs(5));
    assert_eq!(h.retries, 3);
    assert_eq!(h.start_period, Duration::ZERO);
    assert_eq!(h.on_failure, OnFailure::Restart);

    // `expect_status` belongs to an `http` check only (with `tcp` it is an
    // error, see `bad_sizes_durations_ports_cpus`): its default there.
    let set = load(&[(
        "s.toml",
        &format!("{WEB}[container.web.health]\nhttp = \"http://127.0.0.1:8080/\"\n"),
    )])
    .unwrap_or_else(|e| panic!("{e}"));
    let http = set.containers["web"].health.as_ref().unwrap();
    let HealthCheck::Http { expect_status, .. } = http.check else {
        panic!("{:?}", http.check)
    };
    assert_eq!(expect_status, 200);
    assert_eq!(
        (http.interval, http.timeout, http.retries, http.start_period),
        (h.interval, h.timeout, h.retries, h.start_period)
    );
    assert_eq!(http.on_failure, OnFailure::Restart);

    // What README.md says, with the values the parser chose.
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let secs = |d: Duration| {
        assert_eq!(d.subsec_nanos(), 0, "{d:?}");
        format!("{}s", d.as_secs())
    };
    for want in [
        format!(
            "`interval` (default {}), `timeout` ({}), `retries` ({}) and `start_period` ({}) apply to all three",
            secs(h.interval),
            secs(h.timeout),
            h.retries,
            secs(h.start_period)
        ),
        format!("with `expect_status` (default {expect_status})"),
        "- `restart` (default):".to_string(),
    ] {
        assert!(readme.contains(&want), "README.md does not say: {want}");
    }
}

#[test]
fn secrets() {
    let set = load(&[(
        "a.toml",
        &format!("{WEB}secrets = [{{ name = \"db_password\", type = \"env\", target = \"PW\" }}, {{ name = \"tls\", source = \"/etc/deploy-agent/secrets/tls\" }}]\n"),
    )])
    .unwrap();
    let s = &set.containers["web"].secrets;
    assert_eq!(s[0].kind, SecretKind::Env);
    assert_eq!(s[1].kind, SecretKind::Mount);
    assert_eq!(
        s[1].source.as_deref(),
        Some(Path::new("/etc/deploy-agent/secrets/tls"))
    );
    for (snippet, want) in [
        (
            "secrets = [{ type = \"env\" }]",
            "missing required key `name`",
        ),
        (
            "secrets = [{ name = \"x\", typ = \"env\" }]",
            "did you mean `type`",
        ),
        (
            "secrets = [{ name = \"x\", type = \"env\", target = \"A-B\" }]",
            "invalid environment variable name",
        ),
        (
            "secrets = [{ name = \"x\", target = \"../x\" }]",
            "invalid secret target",
        ),
        (
            "secrets = [{ name = \"x\", source = \"rel\" }]",
            "must be absolute",
        ),
        ("secrets = [\"x\"]", "expected a table"),
    ] {
        let e = one_err(&format!("{WEB}{snippet}\n"));
        assert!(e.contains(want), "{snippet}: {e}");
    }
}

#[test]
fn env_values_may_be_numbers_and_names_are_checked() {
    let set = load(&[(
        "a.toml",
        &format!("{WEB}env = {{ PORT = 8000, DEBUG = false }}\n"),
    )])
    .unwrap();
    assert_eq!(set.containers["web"].env["PORT"], "8000");
    assert!(one_err(&format!("{WEB}env = {{ \"A-B\" = \"1\" }}\n"))
        .contains("invalid environment variable name"));
}

mod files {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    #[test]
    fn reads_toml_files_in_lexical_order_and_ignores_others() {
        let d = dir();
        fs::write(
            d.path().join("20-b.toml"),
            "[container.b]\nimage = \"x\"\nafter = [\"a\"]\n",
        )
        .unwrap();
        fs::write(d.path().join("10-a.toml"), "[container.a]\nimage = \"x\"\n").unwrap();
        fs::write(d.path().join("notes.txt"), "not toml [").unwrap();
        fs::write(d.path().join(".20-b.toml.swp"), "junk").unwrap();
        fs::write(d.path().join(".#20-b.toml"), "junk [").unwrap();
        let set = load_dir(d.path()).unwrap();
        let files: Vec<_> = set
            .files
            .iter()
            .map(|f| f.path.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(files, ["10-a.toml", "20-b.toml"]);
    }

    #[test]
    fn directory_unreadable_not_utf8_huge() {
        let d = dir();
        fs::create_dir(d.path().join("a.toml")).unwrap();
        fs::write(
            d.path().join("b.toml"),
            b"[container.b]\nimage = \"\xff\"\n",
        )
        .unwrap();
        fs::write(
            d.path().join("c.toml"),
            vec![b'#'; (MAX_SPEC_FILE_BYTES + 1) as usize],
        )
        .unwrap();
        let e: Vec<String> = load_dir(d.path())
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(
            e[0].ends_with("a.toml: is a directory, not a spec file"),
            "{e:#?}"
        );
        assert!(e[1].contains("b.toml:2:10: is not valid UTF-8"), "{e:#?}");
        assert!(e[2].contains("more than the 1048576 bytes"), "{e:#?}");
    }

    /// What an unreadable spec file must give: one error, naming the file,
    /// saying it cannot be read (the file is not skipped).
    fn check_unreadable(dir: &Path) {
        let errors = load_dir(dir).unwrap_err();
        let e: Vec<&SpecError> = errors.iter().collect();
        assert_eq!(e.len(), 1, "{errors}");
        assert_eq!(e[0].file, dir.join("a.toml"), "{errors}");
        assert!(
            e[0].message.starts_with("cannot read: ") && e[0].message.contains("Permission denied"),
            "{errors}"
        );
    }

    /// Root reads a mode-000 file, so as root the check runs in a child
    /// process with the uid and gid of `nobody` (and no supplementary
    /// groups): this test binary again, running only this test.
    #[test]
    fn unreadable_file() {
        const DIR_VAR: &str = "DEPLOY_AGENT_TEST_UNREADABLE_DIR";
        if let Some(d) = std::env::var_os(DIR_VAR) {
            // In the child.
            assert!(!nix::unistd::geteuid().is_root(), "the child runs as root");
            check_unreadable(Path::new(&d));
            return;
        }
        let d = dir();
        let p = d.path().join("a.toml");
        fs::write(&p, WEB).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
        if !nix::unistd::geteuid().is_root() {
            check_unreadable(d.path());
            return;
        }

        use std::os::unix::process::CommandExt;
        let (uid, gid) = match nix::unistd::User::from_name("nobody") {
            Ok(Some(u)) => (u.uid.as_raw(), u.gid.as_raw()),
            _ => (65534, 65534),
        };
        // `deploy_agent::spec::tests::files` -> `spec::tests::files::unreadable_file`
        let (_, module) = module_path!().split_once("::").unwrap();
        let test = format!("{module}::unreadable_file");
        let run = |exe: &Path| {
            std::process::Command::new(exe)
                .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
                .env(DIR_VAR, d.path())
                .current_dir("/")
                .uid(uid)
                .gid(gid)
                .output()
        };
        let exe = std::env::current_exe().unwrap();
        let mut out = run(&exe);
        let mut copy = None;
        if matches!(&out, Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EACCES as i32)) {
            // nobody cannot reach the test binary (a checkout under /root):
            // run a copy of it from a directory nobody can reach.
            let bin = dir();
            let exe_copy = bin.path().join("unit-tests");
            fs::copy(&exe, &exe_copy).unwrap();
            fs::set_permissions(&exe_copy, fs::Permissions::from_mode(0o755)).unwrap();
            for _ in 0..50 {
                out = run(&exe_copy);
                // Another test's fork may briefly hold the copy open for writing.
                match &out {
                    Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32) => {
                        std::thread::sleep(std::time::Duration::from_millis(100))
                    }
                    _ => break,
                }
            }
            copy = Some(bin);
        }
        let out = out.unwrap_or_else(|e| panic!("cannot run {test} as uid {uid}: {e}"));
        drop(copy);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report = format!(
            "{}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{report}");
        // It ran (a filter that matches nothing passes too).
        assert!(stdout.contains(&format!("test {test} ... ok")), "{report}");
        assert!(stdout.contains("test result: ok. 1 passed"), "{report}");
    }

    #[test]
    fn world_writable_specs_are_refused() {
        let d = dir();
        let p = d.path().join("a.toml");
        fs::write(&p, WEB).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
        let e = load_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains("writable by everyone"), "{e}");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let e = load_dir(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("specs directory") && e.contains("writable by everyone"),
            "{e}"
        );
    }

    #[test]
    fn missing_dir() {
        let e = load_dir(Path::new("/nonexistent/specs"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read the specs directory"), "{e}");
    }
}

/// A cached load parses only what changed and gives exactly what an
/// uncached load gives, cross-file errors included.
#[test]
fn a_cached_load_parses_only_changed_files_and_equals_an_uncached_one() {
    let d = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(d.path().join(name), text).unwrap();
    write("10-net.toml", "[network.backend]\n");
    write(
        "20-db.toml",
        "[container.db]\nimage = \"localhost/db\"\nnetworks = [\"backend\"]\n",
    );
    write(
        "30-web.toml",
        "[container.web]\nimage = \"localhost/web\"\nrequires = [\"db\"]\n",
    );
    let trust = Trust::this_process();
    let mut cache = SpecCache::default();
    let check = |cache: &mut SpecCache, parsed: usize| {
        let cached = load_dir_cached(d.path(), &trust, cache);
        assert_eq!(cache.parsed_last(), parsed);
        let plain = load_dir(d.path());
        match (cached, plain) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("cached {a:?} vs uncached {b:?}"),
        }
    };
    check(&mut cache, 3);
    check(&mut cache, 0);
    // Same size, same modification time: still seen.
    let web = d.path().join("30-web.toml");
    let mtime = std::fs::metadata(&web).unwrap().modified().unwrap();
    write(
        "30-web.toml",
        "[container.web]\nimage = \"localhost/wob\"\nrequires = [\"db\"]\n",
    );
    std::fs::File::options()
        .write(true)
        .open(&web)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    check(&mut cache, 1);
    // A cross-file error made by an unchanged file's new neighbour.
    write("40-dup.toml", "[container.db]\nimage = \"localhost/x\"\n");
    check(&mut cache, 1);
    // A reference an unchanged file makes, broken by removing its target.
    std::fs::remove_file(d.path().join("40-dup.toml")).unwrap();
    std::fs::remove_file(d.path().join("10-net.toml")).unwrap();
    check(&mut cache, 0);
    write("10-net.toml", "[network.backend]\n");
    check(&mut cache, 1);
}

/// A settled file whose identity did not change is not read again; any
/// write, `chmod` or replacement moves the identity, and is seen.
#[test]
fn a_cached_load_reads_only_files_whose_identity_changed() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let path = |name: &str| d.path().join(name);
    let write = |name: &str, text: &str| std::fs::write(path(name), text).unwrap();
    write("10-a.toml", "[container.a]\nimage = \"localhost/a\"\n");
    write("20-b.toml", "[container.b]\nimage = \"localhost/b\"\n");
    let trust = Trust::this_process();
    let mut cache = SpecCache::default();
    // As if every file were older than the timestamp granularity.
    let later = std::time::SystemTime::now() + Duration::from_secs(60);
    let mut load = |reads: usize, parses: usize| {
        let got = load_dir_cached_at(d.path(), &trust, &mut cache, later);
        assert_eq!((cache.read_last(), cache.parsed_last()), (reads, parses));
        match (got, load_dir(d.path())) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("cached {a:?} vs uncached {b:?}"),
        }
    };
    load(2, 2);
    load(0, 0);
    // Same size, mtime set back: the ctime moved.
    let mtime = fs::metadata(path("20-b.toml")).unwrap().modified().unwrap();
    write("20-b.toml", "[container.b]\nimage = \"localhost/c\"\n");
    fs::File::options()
        .write(true)
        .open(path("20-b.toml"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    load(1, 1);
    load(0, 0);
    // Made writable by everyone: read again, and refused as uncached.
    fs::set_permissions(path("10-a.toml"), fs::Permissions::from_mode(0o666)).unwrap();
    load(1, 0);
    fs::set_permissions(path("10-a.toml"), fs::Permissions::from_mode(0o644)).unwrap();
    load(1, 1); // a refused file is forgotten
    load(0, 0);
    // Replaced by a symlink to the same text: read every time.
    fs::rename(path("20-b.toml"), d.path().join("b.real")).unwrap();
    std::os::unix::fs::symlink("b.real", path("20-b.toml")).unwrap();
    load(1, 0);
    load(1, 0);
}

/// Enough files to be parsed on several threads give what parsing them one
/// by one gives: the same entries in the same order, each error at its own
/// file and line.
#[test]
fn many_files_parse_on_all_cores_as_they_would_one_by_one() {
    let files: Vec<(PathBuf, String)> = (0..300)
        .map(|i| {
            let extra = if i % 50 == 7 { "bogus = 1\n" } else { "" };
            let text = format!("[container.c{i}]\nimage = \"x\"\n{extra}");
            (PathBuf::from(format!("/specs/f{i:03}.toml")), text)
        })
        .collect();
    let texts: Vec<(&Path, &str)> = (files.iter())
        .map(|(p, t)| (p.as_path(), t.as_str()))
        .collect();
    let together = super::parse::parse_files(&texts);
    let one_by_one = texts.iter().map(|(p, t)| super::parse::parse_file(p, t));
    assert_eq!(together.len(), files.len());
    for (a, b) in together.iter().zip(one_by_one) {
        let names = |p: &super::parse::ParsedFile| -> Vec<String> {
            p.containers.iter().map(|(c, ..)| c.name.clone()).collect()
        };
        assert_eq!(names(a), names(&b));
        assert_eq!(a.errors, b.errors);
    }
    let failing: Vec<usize> = (together.iter().enumerate())
        .filter(|(_, p)| !p.errors.is_empty())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(failing, [7, 57, 107, 157, 207, 257]);
    assert_eq!(
        together[57].errors[0].file,
        PathBuf::from("/specs/f057.toml")
    );
    assert_eq!(together[57].errors[0].line, Some(3));
}
