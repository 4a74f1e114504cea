//! Rendering against its references: golden files for the senex stack, and
//! Podman's real Quadlet generator (`quadlet -dryrun`), which must accept
//! every rendered file without a warning and generate services that carry
//! what the specs say, with every value arriving intact in `ExecStart=`.
//!
//! `UPDATE_GOLDEN=1` rewrites the golden files. Without a Quadlet generator
//! the generator tests fail, unless `DEPLOY_AGENT_ALLOW_NO_QUADLET=1`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use deploy_agent::quadlet::{self, DryRun};
use deploy_agent::render::{render, PodmanVersion, RenderOptions, Rendering};
use deploy_agent::spec::model::*;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/senex");
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");
/// Where the specs live on a real host: what the goldens' marks name.
const SPECS_DIR: &str = "/etc/deploy-agent/specs";

const V5_4: PodmanVersion = PodmanVersion::new(5, 4, 2);
const V4_9: PodmanVersion = PodmanVersion::new(4, 9, 3);

/// The senex specs through the real spec loader, with their sources shown
/// as if read from /etc/deploy-agent/specs (goldens hold no machine paths).
fn senex() -> SpecSet {
    let mut set = deploy_agent::spec::load_dir(Path::new(FIXTURE))
        .unwrap_or_else(|e| panic!("the senex specs load: {e}"));
    let reroot = |p: &mut PathBuf| {
        *p = Path::new(SPECS_DIR).join(p.file_name().expect("a file name"));
    };
    set.containers
        .values_mut()
        .for_each(|c| reroot(&mut std::sync::Arc::make_mut(c).source));
    set.networks
        .values_mut()
        .for_each(|n| reroot(&mut n.source));
    set.volumes.values_mut().for_each(|v| reroot(&mut v.source));
    set
}

fn opts(podman: PodmanVersion) -> RenderOptions {
    RenderOptions {
        podman,
        pull_default: None,
        ..Default::default()
    }
}

// ---------------------------------------------------------------- goldens

fn check_golden(dir: &str, rendering: &Rendering) {
    let dir = Path::new(GOLDEN).join(dir);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).unwrap();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if !rendering.contains_key(p.file_name().unwrap().to_str().unwrap()) {
                std::fs::remove_file(&p).unwrap();
            }
        }
        for (name, f) in rendering {
            std::fs::write(dir.join(name), &f.contents).unwrap();
        }
        eprintln!("rewrote {}", dir.display());
        return;
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    assert_eq!(
        on_disk,
        rendering.keys().cloned().collect::<Vec<_>>(),
        "golden files in {} (UPDATE_GOLDEN=1 rewrites them)",
        dir.display()
    );
    for (name, f) in rendering {
        let want = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(
            f.contents == want,
            "{name} differs from {} (UPDATE_GOLDEN=1 rewrites it):\n{}",
            dir.join(name).display(),
            similar::TextDiff::from_lines(&want, &f.contents)
                .unified_diff()
                .header("golden", "rendered")
        );
    }
}

#[test]
fn senex_golden_podman_5_4() {
    check_golden("senex", &render(&senex(), &opts(V5_4)).unwrap());
}

#[test]
fn senex_golden_podman_4_9() {
    check_golden("senex-podman-4.9", &render(&senex(), &opts(V4_9)).unwrap());
}

#[test]
fn senex_needs_podman_4_5_for_its_secret_and_health_check() {
    let e = render(&senex(), &opts(PodmanVersion::new(4, 4, 0))).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("needs Quadlet's") && msg.contains("4.4.0"),
        "{msg}"
    );
}

/// Render time for the senex stack (10 files). Run with `--nocapture` to see it.
#[test]
fn senex_render_time() {
    let set = senex();
    let o = opts(V5_4);
    render(&set, &o).unwrap(); // templates parsed once, outside the timing
    let n = 1000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(render(std::hint::black_box(&set), &o).unwrap());
    }
    let per = t.elapsed() / n;
    eprintln!("senex: {per:?} per render of the whole stack (mean of {n}, this build's profile)");
    assert!(per < Duration::from_millis(50), "{per:?}");
}

// ---------------------------------------------------------------- the real generator

/// The installed generator; a clear failure (not a skip) when missing.
fn generator() -> Option<PathBuf> {
    match quadlet::find_generator() {
        Some(g) if g.is_file() => Some(g),
        _ => {
            let env = match std::env::var_os(quadlet::GENERATOR_ENV) {
                Some(v) => format!(
                    "{}={} is not a file",
                    quadlet::GENERATOR_ENV,
                    v.to_string_lossy()
                ),
                None => format!("{} is not set", quadlet::GENERATOR_ENV),
            };
            let msg = format!(
                "Podman's Quadlet generator is not installed (looked at {}; {env}). \
                 Install Podman >= 4.4 with Quadlet (tests/env/testenv install does), \
                 or set DEPLOY_AGENT_ALLOW_NO_QUADLET=1 to skip these tests.",
                quadlet::GENERATOR_PATHS.join(", "),
            );
            if std::env::var_os("DEPLOY_AGENT_ALLOW_NO_QUADLET").is_some_and(|v| v == "1") {
                eprintln!("SKIPPED: {msg}");
                None
            } else {
                panic!("{msg}");
            }
        }
    }
}

fn dry_run(rendering: &Rendering, user: bool) -> Option<DryRun> {
    let g = generator()?;
    let dir = tempfile::tempdir().unwrap();
    for (name, f) in rendering {
        std::fs::write(dir.path().join(name), &f.contents).unwrap();
    }
    match quadlet::dry_run_with(&g, dir.path(), user) {
        Ok(d) => Some(d),
        Err(e) => panic!("Quadlet rejected the rendering: {e}"),
    }
}

/// systemd's own reading of the generated services (`systemd-analyze
/// verify`): no warning about any line (an invalid value, an unknown
/// escape, an unresolvable specifier, a second command in `ExecStart=`).
/// Skipped with a note where systemd-analyze is not installed.
fn systemd_verify(dry: &DryRun, user: bool) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (name, text) in &dry.services {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        paths.push(p);
    }
    let mut cmd = std::process::Command::new("systemd-analyze");
    if user {
        cmd.arg("--user").env("XDG_RUNTIME_DIR", runtime.path());
    }
    let out = match cmd.arg("verify").args(&paths).output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("NOTE: systemd-analyze not run ({e}); systemd's reading of the services not checked");
            return;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify (user={user}) complains:\n{text}"
    );
}

/// The values of `key=` lines of one section of a unit file.
fn values(unit: &str, section: &str, key: &str) -> Vec<String> {
    let mut cur = "";
    let mut out = Vec::new();
    for line in unit.lines() {
        if line.starts_with('[') {
            cur = line;
        } else if cur == format!("[{section}]") {
            if let Some(v) = line.strip_prefix(&format!("{key}=")) {
                out.push(v.to_string());
            }
        }
    }
    out
}

/// `ExecStart=` as the argument vector systemd runs, following systemd's
/// rules: specifiers (`%%` -> `%`; others kept as written), word splitting
/// with quotes and C escapes, then environment expansion (`$$` -> `$`).
/// Panics on anything that would make systemd read it otherwise: a lone `;`
/// (a second command) or a `$` expansion.
fn exec_start(unit: &str) -> Vec<String> {
    let lines = values(unit, "Service", "ExecStart");
    assert_eq!(lines.len(), 1, "one ExecStart= in:\n{unit}");
    let line = &lines[0];
    let mut spec = String::new();
    let mut it = line.chars().peekable();
    while let Some(c) = it.next() {
        if c == '%' {
            match it.next() {
                Some('%') => spec.push('%'),
                Some(x) => {
                    assert!("tNnh".contains(x), "unexpected specifier %{x} in {line}");
                    spec.push('%');
                    spec.push(x);
                }
                None => panic!("lone % at the end of {line}"),
            }
        } else {
            spec.push(c);
        }
    }
    split_words(&spec)
        .into_iter()
        .map(|(w, quoted)| {
            assert!(quoted || w != ";", "a lone ';' splits ExecStart= in {line}");
            expand_env(&w)
        })
        .collect()
}

/// systemd's extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE) over a line.
fn split_words(s: &str) -> Vec<(String, bool)> {
    let mut words = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        if it.peek().is_none() {
            return words;
        }
        let mut w = String::new();
        let mut quoted = false;
        let mut quote: Option<char> = None;
        while let Some(c) = it.next() {
            match (quote, c) {
                (_, '\\') => w.push(cunescape(&mut it)),
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => w.push(c),
                (None, '"' | '\'') => {
                    quote = Some(c);
                    quoted = true;
                }
                (None, c) if c.is_whitespace() => break,
                (None, c) => w.push(c),
            }
        }
        assert!(quote.is_none(), "unbalanced quotes in {s}");
        words.push((w, quoted));
    }
}

fn cunescape(it: &mut std::iter::Peekable<std::str::Chars>) -> char {
    let c = it.next().expect("a character after a backslash");
    match c {
        'a' => '\x07',
        'b' => '\x08',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        's' => ' ',
        '\\' | '"' | '\'' => c,
        'x' => {
            let h: String = [it.next().unwrap(), it.next().unwrap()].iter().collect();
            char::from(u8::from_str_radix(&h, 16).unwrap())
        }
        c => panic!("escape \\{c} that this test does not model"),
    }
}

fn expand_env(w: &str) -> String {
    let mut out = String::new();
    let mut it = w.chars().peekable();
    while let Some(c) = it.next() {
        if c == '$' {
            match it.peek() {
                Some('$') => {
                    it.next();
                    out.push('$');
                }
                Some(n) if *n == '{' || n.is_ascii_alphabetic() || *n == '_' => {
                    panic!("systemd would expand a variable in {w:?}")
                }
                _ => out.push('$'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value after each `flag` in `argv`.
fn flag_values<'a>(argv: &'a [String], flag: &str) -> Vec<&'a str> {
    argv.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

fn has_pair(argv: &[String], flag: &str, value: &str) -> bool {
    flag_values(argv, flag).contains(&value)
}

#[test]
fn senex_passes_the_real_quadlet_generator() {
    // The health waiter of gated units is this build's binary, as the agent
    // renders it (systemd-analyze checks that it is executable).
    let opts = RenderOptions {
        agent_exe: env!("CARGO_BIN_EXE_deploy-agent"),
        ..opts(V5_4)
    };
    let rendering = render(&senex(), &opts).unwrap();
    for user in [true, false] {
        let Some(dry) = dry_run(&rendering, user) else {
            return;
        };
        check_senex_services(&rendering, &dry);
        systemd_verify(&dry, user);
    }
}

fn check_senex_services(rendering: &Rendering, dry: &DryRun) {
    // Every unit generated, nothing else.
    let want: Vec<&str> = rendering.values().map(|f| f.unit.as_str()).collect();
    let mut want = want;
    want.sort();
    assert_eq!(
        dry.services.keys().map(String::as_str).collect::<Vec<_>>(),
        want
    );
    let s = |u: &str| dry.services[u].as_str();

    // The network keeps its plain name.
    let net = exec_start(s("senex_net-network.service"));
    assert_eq!(net[1..4], ["network", "create", "--ignore"]);
    assert!(has_pair(&net, "--subnet", "172.20.0.0/16"), "{net:?}");
    assert_eq!(net.last().unwrap(), "senex_net");
    for v in ["postgres_data", "redis_data"] {
        let argv = exec_start(s(&format!("{v}-volume.service")));
        assert_eq!(argv[1..4], ["volume", "create", "--ignore"]);
        assert_eq!(argv.last().unwrap(), v);
    }

    // postgres: network, port, volume, env, secret, health check, limits.
    let pg = s("postgres.service");
    let argv = exec_start(pg);
    assert!(has_pair(&argv, "--name", "postgres"));
    assert!(has_pair(&argv, "--network", "senex_net"));
    assert!(has_pair(&argv, "--publish", "5432:5432"));
    assert!(has_pair(
        &argv,
        "-v",
        "postgres_data:/var/lib/postgresql/data:Z"
    ));
    assert!(has_pair(&argv, "--env", "POSTGRES_DB=senextrader"));
    assert!(has_pair(&argv, "--env", "POSTGRES_USER=senex_user"));
    assert!(has_pair(
        &argv,
        "--secret",
        "db_password,type=env,target=POSTGRES_PASSWORD"
    ));
    let hc: Vec<String> =
        serde_json::from_str(flag_values(&argv, "--health-cmd")[0]).expect("JSON health command");
    assert_eq!(hc, ["pg_isready", "-U", "senex_user"]);
    assert!(has_pair(&argv, "--health-interval", "10s"));
    assert!(has_pair(&argv, "--health-timeout", "3s"));
    assert!(has_pair(&argv, "--health-retries", "3"));
    assert_eq!(argv.last().unwrap(), "docker.io/library/postgres:16");
    for dep in ["senex_net-network.service", "postgres_data-volume.service"] {
        assert!(
            values(pg, "Unit", "Requires").contains(&dep.to_string()),
            "{dep}"
        );
        assert!(
            values(pg, "Unit", "After").contains(&dep.to_string()),
            "{dep}"
        );
    }
    assert_eq!(values(pg, "Service", "MemoryMax"), ["200M"]);
    assert_eq!(values(pg, "Service", "MemoryLow"), ["150M"]);
    assert_eq!(values(pg, "Service", "CPUQuota"), ["100%"]);
    assert_eq!(values(pg, "Service", "Restart"), ["always"]);
    // celery and django require postgres: its start ends when it is healthy
    // (Notify=healthy), within start_timeout 120s + its health budget
    // (start_period 0 + 10s × 3 retries + 3s timeout).
    assert!(argv.iter().any(|a| a == "--sdnotify=healthy"), "{argv:?}");
    assert_eq!(values(pg, "Service", "TimeoutStartSec"), ["153s"]);
    assert_eq!(values(pg, "Install", "WantedBy"), ["default.target"]);

    // redis: named volume plus a read-only host file, command, 0.3 CPU.
    let rd = s("redis.service");
    let argv = exec_start(rd);
    assert!(has_pair(&argv, "-v", "redis_data:/data:Z"));
    assert!(has_pair(
        &argv,
        "-v",
        "/etc/deploy-agent/files/redis.conf:/usr/local/etc/redis/redis.conf:ro,Z"
    ));
    assert_eq!(
        argv[argv.len() - 3..],
        [
            "docker.io/library/redis:7-alpine",
            "redis-server",
            "/usr/local/etc/redis/redis.conf"
        ]
    );
    let hc: Vec<String> = serde_json::from_str(flag_values(&argv, "--health-cmd")[0]).unwrap();
    assert_eq!(hc, ["redis-cli", "ping"]);
    assert_eq!(values(rd, "Service", "CPUQuota"), ["30%"]);
    assert_eq!(values(rd, "Service", "MemoryMax"), ["50M"]);

    // django: requires and is ordered after postgres and redis; env file;
    // the HTTP check is the agent's, not Podman's.
    let dj = s("django.service");
    let argv = exec_start(dj);
    let requires = values(dj, "Unit", "Requires");
    let after = values(dj, "Unit", "After");
    for dep in ["postgres.service", "redis.service"] {
        assert!(requires.contains(&dep.to_string()), "{requires:?}");
        assert!(after.contains(&dep.to_string()), "{after:?}");
    }
    assert!(has_pair(&argv, "--publish", "127.0.0.1:8000:8000"));
    assert!(has_pair(&argv, "--env-file", "/etc/senex-trader/.env"));
    assert!(has_pair(
        &argv,
        "--env",
        "DJANGO_SETTINGS_MODULE=senextrader.settings.production"
    ));
    assert!(flag_values(&argv, "--health-cmd").is_empty());
    assert_eq!(
        argv[argv.len() - 6..],
        [
            "daphne",
            "-b",
            "0.0.0.0",
            "-p",
            "8000",
            "senextrader.asgi:application"
        ]
    );
    assert_eq!(values(dj, "Service", "MemoryMax"), ["150M"]);
    assert_eq!(values(dj, "Service", "CPUQuota"), ["100%"]);

    // celery-worker: 300 s to stop for Podman; systemd waits 30 s longer
    // for Podman's kill and clean-up after it.
    let cw = s("celery-worker.service");
    let argv = exec_start(cw);
    assert!(has_pair(&argv, "--stop-timeout", "300"), "{argv:?}");
    assert_eq!(values(cw, "Service", "TimeoutStopSec"), ["330s"]);
    assert!(values(cw, "Unit", "After").contains(&"django.service".to_string()));
    assert!(values(cw, "Unit", "Requires").contains(&"redis.service".to_string()));
    assert!(argv.contains(&"--max-tasks-per-child=100".to_string()));
}

#[test]
fn senex_for_podman_4_9_passes_the_real_quadlet_generator() {
    // A 5.4 generator reads 4.9 files too; this checks the PodmanArgs route.
    let rendering = render(&senex(), &opts(V4_9)).unwrap();
    let Some(dry) = dry_run(&rendering, true) else {
        return;
    };
    let argv = exec_start(&dry.services["celery-worker.service"]);
    assert!(argv.contains(&"--stop-timeout=300".to_string()), "{argv:?}");
    // Without Notify=healthy (5.0), the agent's waiter gates postgres.
    let pg = &dry.services["postgres.service"];
    assert_eq!(
        values(pg, "Service", "ExecStartPost"),
        [
            r#""/usr/bin/deploy-agent" "wait-healthy" "postgres" "--podman" "--within" "33s" "--probe-timeout" "3s" "--every" "1s""#
        ]
    );
}

// ---------------------------------------------------------------- hostile values

/// Deterministic pseudo-random words over the characters that mean
/// something to a unit file, Quadlet, systemd, JSON or a shell.
fn hostile_words(n: usize) -> Vec<String> {
    const ALPHABET: &[&str] = &[
        "a", "Z", "0", " ", " ", "\"", "\"", "'", "\\", "\\", "$", "$", "%", "%", ";", "{", "}",
        "=", ",", ":", "#", "[", "]", "*", "?", "!", "&", "|", "<", ">", "(", ")", "~", "`", "-",
        "/", "\\n", "\\\"", "$HOME", "${X}", "%n", "%%", "ü", "€", "😀",
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let len = 1 + (next() % 10) as usize;
            let w: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            if w == ";" {
                "x;".into()
            } else {
                w
            }
        })
        .collect()
}

fn hostile_container(words: &[String]) -> Container {
    let fixed = [
        "two words",
        r#"say "hi""#,
        r"back\slash",
        r"trailing\",
        "100%",
        "%n",
        "$HOME",
        "${X}",
        "$$",
        "'single'",
        "x;y",
        ";x",
        "#hash",
        "--flag=value with spaces",
        "ünï©ødé",
        " leading and trailing ",
    ];
    let mut command: Vec<String> = fixed.iter().map(|s| s.to_string()).collect();
    command.extend(words.iter().cloned());
    let mut env: BTreeMap<String, String> = words
        .iter()
        .take(60)
        .enumerate()
        .map(|(i, w)| (format!("R{i:03}"), w.clone()))
        .collect();
    env.insert("QUOTES".into(), r#"a "b" 'c' \d"#.into());
    env.insert("EMPTY".into(), String::new());
    Container {
        name: "hostile".into(),
        source: "/etc/deploy-agent/specs/hostile.toml".into(),
        image: "localhost/busybox:latest".into(),
        image_unit: None,
        command: Some(command),
        entrypoint: Some(vec![
            r#"/bin/"sh" 100% $X \"#.into(),
            "-c".into(),
            "".into(),
        ]),
        ports: vec![],
        volumes: vec![Mount {
            source: MountSource::Host("/srv/data-100%".into()),
            target: "/data".into(),
            options: vec!["ro".into()],
        }],
        networks: vec![],
        env,
        env_files: vec![PathBuf::from("/etc/my app/100%/$x.env")],
        secrets: vec![Secret {
            name: "db_password".into(),
            kind: SecretKind::Env,
            target: Some("DB_PASSWORD".into()),
            source: None,
        }],
        labels: [("note".to_string(), r#"a "quoted" \ %s $v"#.to_string())].into(),
        user: Some("app$user".into()),
        workdir: Some(r"/srv/my dir/100%/$x/back\slash".into()),
        read_only: true,
        init: true,
        pull: Some(Pull::Never),
        auto_update: None,
        restart: Restart::OnFailure,
        start_timeout: None,
        stop_timeout: None,
        requires: vec![],
        after: vec![],
        wants: vec![],
        resources: Resources {
            memory: Some(64 << 20),
            memory_reservation: None,
            cpus: Some(0.125),
            pids: Some(100),
        },
        health: Some(Health {
            check: HealthCheck::Cmd(
                [
                    vec!["/bin/check".to_string(), "".into()],
                    words[..20].to_vec(),
                ]
                .concat(),
            ),
            interval: Duration::from_secs(5),
            timeout: Duration::from_millis(1500),
            retries: 2,
            start_period: Duration::ZERO,
            on_failure: OnFailure::Restart,
            restart_delay: std::time::Duration::from_secs(10),
            max_restarts: 5,
        }),
        pod: None,
        settings: Default::default(),
        raw: Default::default(),
    }
}

#[test]
fn hostile_values_arrive_intact_in_exec_start() {
    let words = hostile_words(300);
    let mut c = hostile_container(&words);
    // An empty argument cannot pass through Quadlet: refused, not lost.
    c.command.as_mut().unwrap().push(String::new());
    let set = SpecSet {
        containers: [(c.name.clone(), c.clone().into())].into(),
        ..Default::default()
    };
    let e = render(&set, &opts(V5_4)).unwrap_err().to_string();
    assert!(e.contains("empty argument"), "{e}");
    c.command.as_mut().unwrap().pop();

    let set = SpecSet {
        containers: [(c.name.clone(), c.clone().into())].into(),
        ..Default::default()
    };
    let rendering = render(&set, &opts(V5_4)).unwrap();
    let Some(dry) = dry_run(&rendering, true) else {
        return;
    };
    systemd_verify(&dry, true);
    let unit = &dry.services["hostile.service"];
    let argv = exec_start(unit);

    // The command: every word, in order, after the image.
    let image_at = argv
        .iter()
        .position(|a| a == "localhost/busybox:latest")
        .expect("the image");
    assert_eq!(
        &argv[image_at + 1..],
        c.command.as_ref().unwrap().as_slice()
    );
    // Environment, as KEY=VALUE words.
    let env: Vec<&str> = flag_values(&argv, "--env");
    for (k, v) in &c.env {
        assert!(
            env.contains(&format!("{k}={v}").as_str()),
            "{k}={v:?} not in {env:?}"
        );
    }
    assert!(has_pair(&argv, "--label", r#"note=a "quoted" \ %s $v"#));
    assert!(has_pair(&argv, "--env-file", "/etc/my app/100%/$x.env"));
    assert!(has_pair(
        &argv,
        "--workdir",
        r"/srv/my dir/100%/$x/back\slash"
    ));
    assert!(has_pair(&argv, "--user", "app$user"));
    assert!(has_pair(&argv, "-v", "/srv/data-100%:/data:ro"));
    assert!(has_pair(
        &argv,
        "--secret",
        "db_password,type=env,target=DB_PASSWORD"
    ));
    assert!(has_pair(&argv, "--pull", "never"));
    assert!(has_pair(&argv, "--pids-limit", "100"));
    assert!(argv.contains(&"--read-only".to_string()));
    // Podman reads --entrypoint and --health-cmd as JSON arrays.
    let ep: Vec<String> = serde_json::from_str(flag_values(&argv, "--entrypoint")[0]).unwrap();
    assert_eq!(&ep, c.entrypoint.as_ref().unwrap());
    let hc: Vec<String> = serde_json::from_str(flag_values(&argv, "--health-cmd")[0]).unwrap();
    let HealthCheck::Cmd(want) = &c.health.as_ref().unwrap().check else {
        unreachable!()
    };
    assert_eq!(&hc, want);
    assert!(has_pair(&argv, "--health-timeout", "1500ms"));
    assert_eq!(values(unit, "Service", "CPUQuota"), ["12.5%"]);
    assert_eq!(values(unit, "Service", "MemoryMax"), ["64M"]);
}

#[test]
fn quadlet_rejections_carry_the_generators_words() {
    let Some(g) = generator() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.container"),
        "[Container]\nImage=localhost/busybox:latest\nMemory=10M\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("short.container"),
        "[Container]\nImage=busybox\n",
    )
    .unwrap();
    match quadlet::dry_run_with(&g, dir.path(), true) {
        Err(quadlet::QuadletError::Rejected { messages }) => {
            let all = messages.join("\n");
            assert!(all.contains("unsupported key 'Memory'"), "{all}");
            assert!(all.contains("not a fully qualified image name"), "{all}");
            assert!(!all.contains(&dir.path().display().to_string()), "{all}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn installed_podman_version_is_detected() {
    if generator().is_none() {
        return;
    }
    let v = quadlet::detect_podman_version().expect("podman --version");
    assert!(
        v >= PodmanVersion::new(4, 4, 0),
        "{v}: Quadlet needs Podman 4.4"
    );
    // The installed Podman renders senex (it has Quadlet, so 4.4+; senex needs 4.7 names).
    if v >= PodmanVersion::new(4, 7, 0) {
        render(&senex(), &opts(v)).unwrap();
    }
}
