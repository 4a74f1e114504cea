//! `import compose` golden tests: each directory under
//! tests/fixtures/compose/ is a Compose project; `expected/` holds the spec
//! files the importer must write, `expected/problems.txt` what it must
//! refuse and `expected/payloads.txt` the secret/config files it writes.
//! Absolute paths of the fixture show as `$PROJECT`, the files directory
//! is `/etc/deploy-agent/files`.
//!
//! `UPDATE_GOLDEN=1 cargo test --test import_compose` rewrites `expected/`
//! from the importer's output (review the diff before committing).
//!
//! An optional `args` file gives the options, one per line: `-f FILE`,
//! `--profile NAME`, `--project-name NAME`, `--env-file FILE`, `env K=V`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use deploy_agent::import::compose::{self, Options};

const FILES_DIR: &str = "/etc/deploy-agent/files";

/// Spec keys of the issue-12 naming contract that this branch's spec
/// parser does not know yet: stripped before the parse check below.
const ISSUE_12_KEYS: &[&str] = &[
    "cap_add",
    "cap_drop",
    "no_new_privileges",
    "devices",
    "tmpfs",
    "userns",
    "group_add",
    "security_label_disable",
    "hostname",
    "network_aliases",
    "dns",
    "dns_search",
    "dns_options",
    "extra_hosts",
    "ulimits",
    "sysctls",
    "shm_size",
    "log_driver",
    "log_opt",
    "stop_signal",
    "restart_delay",
    "podman_args",
    "memory_swap_max",
    "cpu_weight",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose")
}

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

fn options(dir: &Path) -> Options {
    let mut o = Options {
        cwd: dir.to_path_buf(),
        out: PathBuf::from("/etc/deploy-agent/specs"),
        files_dir: Some(FILES_DIR.into()),
        env: BTreeMap::new(),
        ..Default::default()
    };
    let args = std::fs::read_to_string(dir.join("args")).unwrap_or_default();
    for line in args.lines().filter(|l| !l.trim().is_empty()) {
        let (flag, value) = line.split_once(' ').unwrap();
        match flag {
            "-f" => o.files.push(value.into()),
            "--profile" => o.profiles.push(value.into()),
            "--project-name" => o.project_name = Some(value.into()),
            "--env-file" => o.env_file = Some(value.into()),
            "env" => {
                let (k, v) = value.split_once('=').unwrap();
                o.env.insert(k.into(), v.into());
            }
            f => panic!("{}: unknown option {f}", dir.display()),
        }
    }
    o
}

/// The importer's output for one case, as `(file name, text)`, paths made
/// machine-independent.
fn run(dir: &Path) -> (compose::Import, Vec<(String, String)>) {
    let imp = compose::import(&options(dir));
    let here = dir.to_string_lossy().into_owned();
    let fix = |s: &str| s.replace(&here, "$PROJECT");
    let mut out: Vec<(String, String)> =
        imp.specs.iter().map(|(n, t)| (n.clone(), fix(t))).collect();
    let problems: String = imp
        .problems
        .iter()
        .map(|p| format!("{}\n", fix(&p.to_string())))
        .collect();
    let payloads: String = imp
        .payloads
        .iter()
        .map(|p| format!("{} ({} bytes)\n", p.path.display(), p.content.len()))
        .collect();
    out.push(("problems.txt".into(), problems));
    out.push(("payloads.txt".into(), payloads));
    (imp, out)
}

#[test]
fn golden() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    assert!(cases().len() >= 10, "at least 10 Compose projects");
    for dir in cases() {
        let (_, out) = run(&dir);
        let expected = dir.join("expected");
        if update {
            let _ = std::fs::remove_dir_all(&expected);
            std::fs::create_dir_all(&expected).unwrap();
            for (name, text) in &out {
                std::fs::write(expected.join(name), text).unwrap();
            }
            continue;
        }
        let mut want: Vec<String> = std::fs::read_dir(&expected)
            .unwrap_or_else(|e| panic!("{}: {e}", expected.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        want.sort();
        let mut got: Vec<String> = out.iter().map(|(n, _)| n.clone()).collect();
        got.sort();
        if want != got {
            failures.push(format!(
                "{}: files {got:?}, expected {want:?}",
                dir.display()
            ));
            continue;
        }
        for (name, text) in &out {
            let exp = std::fs::read_to_string(expected.join(name)).unwrap();
            if &exp != text {
                let diff = similar::TextDiff::from_lines(&exp, text)
                    .unified_diff()
                    .to_string();
                failures.push(format!("{}/{name}:\n{diff}", dir.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Removes the rows (and multi-line arrays) of the issue-12 keys.
fn strip_issue_12_keys(text: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if skipping {
            skipping = line != "]";
            continue;
        }
        let key = line.split([' ', '=']).next().unwrap_or("");
        if ISSUE_12_KEYS.contains(&key) {
            skipping = line.trim_end().ends_with('[');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    // Sub-tables that only had issue-12 keys stay as empty tables: fine.
    out
}

/// The spec parser of this branch accepts every imported file once the
/// issue-12 keys are taken out, so everything else is checked now.
#[test]
fn output_parses_without_the_issue_12_keys() {
    let mut failures = Vec::new();
    for dir in cases() {
        let (imp, _) = run(&dir);
        if imp.specs.is_empty() {
            continue;
        }
        let files: Vec<(PathBuf, String)> = imp
            .specs
            .iter()
            .map(|(n, t)| (PathBuf::from(n), strip_issue_12_keys(t)))
            .collect();
        if let Err(e) = deploy_agent::spec::load_texts(&files) {
            failures.push(format!("{}:\n{e}", dir.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The whole output, issue-12 keys included, validates: true once the
/// issue-12 keys are merged (run with --ignored until then).
#[test]
fn output_validates_with_the_issue_12_keys() {
    let mut failures = Vec::new();
    for dir in cases() {
        let (imp, _) = run(&dir);
        if imp.specs.is_empty() {
            continue;
        }
        if let Err(e) = compose::validate(&imp, Path::new("/etc/deploy-agent/specs")) {
            failures.push(format!("{}:\n{e}", dir.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn strip_removes_rows_and_wrapped_arrays() {
    let text =
        "[container.a]\nimage = \"x\"\ncap_add = [\"A\"]\ndns = [\n    \"1\",\n]\nuser = \"u\"\n";
    assert_eq!(
        strip_issue_12_keys(text),
        "[container.a]\nimage = \"x\"\nuser = \"u\"\n"
    );
}
