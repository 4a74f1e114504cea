//! Podman's own tools as validators: the Quadlet generator's dry run and
//! `podman --version`.
//!
//! Owns finding the installed generator, running it with `-dryrun` over a
//! directory of rendered files, and turning what it prints into either the
//! generated services or a [`QuadletError::Rejected`] carrying its own
//! messages. On a real host the generator's errors otherwise go only to the
//! kernel log and the unit is just "not found"; the reconciler calls
//! [`dry_run`] before `daemon-reload` to refuse what Quadlet rejects.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::render::{PodmanVersion, VersionError};

/// Where distributions install the generator (Debian/Fedora, Arch/openSUSE).
pub const GENERATOR_PATHS: &[&str] = &["/usr/libexec/podman/quadlet", "/usr/lib/podman/quadlet"];

/// Environment variable naming the generator to use instead.
pub const GENERATOR_ENV: &str = "QUADLET";

#[derive(Debug, thiserror::Error)]
pub enum QuadletError {
    #[error("Podman's Quadlet generator is not installed (looked in {}; set {GENERATOR_ENV} to its path)", .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFound { searched: Vec<PathBuf> },
    #[error("cannot run {}: {source}", .program.display())]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    /// The generator printed errors or warnings (or failed): its own words.
    #[error("Podman's Quadlet generator rejected the files:\n  {}", .messages.join("\n  "))]
    Rejected { messages: Vec<String> },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
    #[error(transparent)]
    Version(#[from] VersionError),
}

/// What a clean dry run generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRun {
    /// Generated service name (`web.service`) -> its text.
    pub services: BTreeMap<String, String>,
}

/// The generator to run: `$QUADLET` if set, else the first installed one.
pub fn find_generator() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(GENERATOR_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    GENERATOR_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Runs the installed generator over the Quadlet files in `dir` (`-user`
/// for a rootless agent). See [`dry_run_with`].
pub fn dry_run(dir: &Path, user: bool) -> Result<DryRun, QuadletError> {
    let generator = find_generator().ok_or_else(|| QuadletError::NotFound {
        searched: GENERATOR_PATHS.iter().map(PathBuf::from).collect(),
    })?;
    dry_run_with(&generator, dir, user)
}

/// Runs `generator -dryrun [-user]` with `QUADLET_UNIT_DIRS=dir` (only
/// `dir` is read). Any error or warning it prints, or a failed exit, is a
/// [`QuadletError::Rejected`] with its messages (paths inside `dir` shown
/// relative to it).
pub fn dry_run_with(generator: &Path, dir: &Path, user: bool) -> Result<DryRun, QuadletError> {
    let mut cmd = Command::new(generator);
    cmd.arg("-dryrun");
    if user {
        cmd.arg("-user");
    }
    cmd.env("QUADLET_UNIT_DIRS", dir);
    let out = cmd.output().map_err(|source| QuadletError::Spawn {
        program: generator.to_path_buf(),
        source,
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut messages = messages(&stderr, dir);
    if !out.status.success() && messages.is_empty() {
        messages.push(format!("the generator exited with {}", out.status));
    }
    if !messages.is_empty() {
        return Err(QuadletError::Rejected { messages });
    }
    Ok(DryRun {
        services: parse_services(&stdout),
    })
}

/// What the generator logs in dry-run mode that is not a finding.
const DEBUG_PREFIXES: &[&str] = &[
    "Loading source unit file ",
    "Loading source drop-in file ",
    "No files parsed from ",
    "Starting quadlet-generator",
    "writing ",
    "Creating symlink ",
];

/// The generator's findings: each non-empty stderr line without its
/// `quadlet-generator[PID]: ` prefix, debug lines left out.
fn messages(stderr: &str, dir: &Path) -> Vec<String> {
    let mut prefixes = vec![format!("{}/", dir.display())];
    if let Ok(canon) = dir.canonicalize() {
        prefixes.push(format!("{}/", canon.display()));
    }
    stderr
        .lines()
        .map(|l| strip_log_prefix(l.trim_end()))
        .filter(|l| !l.is_empty() && !DEBUG_PREFIXES.iter().any(|p| l.starts_with(p)))
        .map(|l| {
            prefixes
                .iter()
                .fold(l.to_string(), |m, p| m.replace(p.as_str(), ""))
        })
        .collect()
}

fn strip_log_prefix(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix("quadlet-generator[") {
        if let Some((pid, msg)) = rest.split_once("]: ") {
            if pid.bytes().all(|b| b.is_ascii_digit()) {
                return msg;
            }
        }
    }
    line
}

/// Splits the dry-run output (`---NAME.service---` then the file) per service.
fn parse_services(stdout: &str) -> BTreeMap<String, String> {
    let mut services = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in stdout.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        let header = bare
            .strip_prefix("---")
            .and_then(|r| r.strip_suffix("---"))
            .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace));
        if let Some(name) = header {
            if let Some((n, t)) = current.take() {
                services.insert(n, finish(t));
            }
            let name = name.rsplit('/').next().unwrap_or(name);
            current = Some((name.to_string(), String::new()));
        } else if let Some((_, t)) = current.as_mut() {
            t.push_str(line);
        }
    }
    if let Some((n, t)) = current {
        services.insert(n, finish(t));
    }
    services
}

/// The generator prints a blank line after each file.
fn finish(mut text: String) -> String {
    while text.ends_with("\n\n") {
        text.pop();
    }
    text
}

/// The installed Podman's version, from `podman --version`.
pub fn detect_podman_version() -> Result<PodmanVersion, QuadletError> {
    detect_podman_version_of(Path::new("podman"))
}

/// The version `program --version` reports (a Podman binary).
pub fn detect_podman_version_of(program: &Path) -> Result<PodmanVersion, QuadletError> {
    let program = program.display().to_string();
    let out = Command::new(&program)
        .arg("--version")
        .output()
        .map_err(|source| QuadletError::Spawn {
            program: program.clone().into(),
            source,
        })?;
    if !out.status.success() {
        return Err(QuadletError::Failed {
            program: format!("{program} --version"),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(PodmanVersion::parse(&String::from_utf8_lossy(&out.stdout))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_drop_prefix_and_debug_lines_and_scratch_dir() {
        let dir = Path::new("/tmp/scratch-x");
        let stderr = "quadlet-generator[12]: Loading source unit file /tmp/scratch-x/a.container\n\
quadlet-generator[12]: Warning: a.container specifies the image \"x\" which not a fully qualified image name.\n\
quadlet-generator[12]: converting \"bad.container\": unsupported key 'Memory' in group 'Container' in /tmp/scratch-x/bad.container\n\
converting \"b2.container\": no Image or Rootfs key specified\n";
        assert_eq!(
            messages(stderr, dir),
            [
                "Warning: a.container specifies the image \"x\" which not a fully qualified image name.",
                "converting \"bad.container\": unsupported key 'Memory' in group 'Container' in bad.container",
                "converting \"b2.container\": no Image or Rootfs key specified",
            ]
        );
        assert!(messages("quadlet-generator[1]: No files parsed from map[]\n", dir).is_empty());
    }

    #[test]
    fn services_are_split_per_unit() {
        let out = "---a.service---\n[Unit]\nX=1\n\n[Service]\nY=2\n\n---/run/b-network.service---\n[Service]\nZ=3\n\n";
        let s = parse_services(out);
        assert_eq!(s["a.service"], "[Unit]\nX=1\n\n[Service]\nY=2\n");
        assert_eq!(s["b-network.service"], "[Service]\nZ=3\n");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn missing_generator_is_a_spawn_error_naming_it() {
        let e =
            dry_run_with(Path::new("/nonexistent/quadlet"), Path::new("/tmp"), true).unwrap_err();
        assert!(matches!(e, QuadletError::Spawn { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/quadlet"));
    }

    #[test]
    fn a_failing_generator_without_messages_is_rejected() {
        let e = dry_run_with(Path::new("/bin/false"), Path::new("/tmp"), false).unwrap_err();
        match e {
            QuadletError::Rejected { messages } => {
                assert_eq!(messages.len(), 1);
                assert!(messages[0].contains("exited"), "{messages:?}");
            }
            e => panic!("{e}"),
        }
    }
}
