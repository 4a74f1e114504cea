//! Command line: argument definitions (clap) and their help text.
//!
//! The commands themselves live in `commands.rs`; this module only says what
//! an operator can type, so the man page and completions are generated from it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Run containers from TOML specs as systemd services.
///
/// Specs under the specs directory (default /etc/deploy-agent/specs) describe
/// containers, networks and volumes. deploy-agent renders them as Podman
/// Quadlet files, reloads systemd once per change set and starts, restarts or
/// stops only the units whose files changed.
///
/// Exit codes: 0 success, 1 operational failure (a unit failed, systemd
/// unreachable), 2 invalid specs or usage; see EXIT STATUS in deploy-agent(1).
#[derive(Debug, Parser)]
#[command(
    name = "deploy-agent",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Agent settings file [default: /etc/deploy-agent/agent.toml, if it exists]
    #[arg(long, global = true, value_name = "PATH", env = "DEPLOY_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of spec files (*.toml, read in lexical order); overrides agent.toml
    #[arg(long, global = true, value_name = "DIR", env = "DEPLOY_AGENT_SPECS")]
    pub specs: Option<PathBuf>,
    /// Where rendered Quadlet files go; overrides agent.toml
    /// [default: ~/.config/containers/systemd/deploy-agent, or /etc/containers/systemd/deploy-agent as root]
    #[arg(long, global = true, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// History and last good rendering; overrides agent.toml
    /// [default: ~/.local/state/deploy-agent, or /var/lib/deploy-agent as root]
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Act on the calling user's systemd manager and paths, even as root
    /// [default: the user manager, or the system manager as root]
    #[arg(long, global = true, conflicts_with = "system")]
    pub user: bool,
    /// Act on the system manager and the system paths (needs root)
    #[arg(long, global = true)]
    pub system: bool,
    /// More log output (-v debug, -vv trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as a daemon: apply, then watch the specs and re-apply on change or
    /// SIGHUP; run health checks; report to systemd (sd_notify).
    Run,
    /// Parse and check all specs; print every error with file:line:col.
    Validate {
        /// Print one JSON document, version 1: ok, counts, errors (file,
        /// line, col, key, message) and warnings
        #[arg(long)]
        json: bool,
    },
    /// Write the Quadlet files that would be applied into DIR; touches neither
    /// systemd nor the output directory.
    Render {
        /// Directory to write into (created if missing)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Show what `apply` would change: files added, changed (as a diff) or
    /// removed, and the unit actions, without doing it.
    Plan {
        /// Print the plan as one JSON document, version 1: ok, changes,
        /// drift_checked, add, change, remove, actions, conflicts, reload,
        /// errors
        #[arg(long)]
        json: bool,
        /// Exit 0 when there is nothing to apply, 3 when changes are
        /// pending, 2 for invalid specs or conflicts, 1 when the plan could
        /// not be made
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Apply once: write files, one daemon-reload, start/restart/stop the
    /// affected units in dependency order, wait for the jobs, report.
    Apply(ApplyCmd),
    /// Managed units: active state, health, memory use against the limit,
    /// generation. Exits 1 when a unit is not active or is unhealthy.
    Status {
        /// Print one JSON document, version 1: ok, generation, units
        #[arg(long)]
        json: bool,
    },
    /// List applied generations.
    History {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Re-apply an earlier generation's rendering (default: the newest good
    /// one before the current). What differs from the specs stays rolled
    /// back (the daemon too keeps it) until the spec of that container
    /// changes.
    Rollback {
        /// Generation number to go back to (see `history`)
        #[arg(long, value_name = "GEN")]
        to: Option<u64>,
        /// Show what the rollback would change, and change nothing
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        apply: ApplyArgs,
    },
    /// Wait until a container's health check first passes; exit 1 if it
    /// does not within --within. Rendered as ExecStartPost= of a container
    /// other containers requires/after, so that they start only once it is
    /// healthy (see "Health-gated ordering" in deploy-agent(5)); not
    /// usually typed by hand.
    WaitHealthy(WaitHealthyCmd),
    /// Convert another tool's files into spec files.
    #[command(subcommand)]
    Import(ImportCmd),
}

#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("check").required(true).args(["podman", "http", "tcp"])))]
pub struct WaitHealthyCmd {
    /// The container (Podman's name, for --podman)
    pub name: String,
    /// Ask Podman to run the container's own healthcheck (`cmd` checks)
    #[arg(long)]
    pub podman: bool,
    /// Probe this http:// or https:// URL
    #[arg(long, value_name = "URL")]
    pub http: Option<String>,
    /// The HTTP status that counts as healthy
    #[arg(long, value_name = "CODE", default_value_t = 200, requires = "http")]
    pub expect_status: u16,
    /// An extra CA certificate (PEM) trusted for --http
    #[arg(long, value_name = "PATH", requires = "http")]
    pub ca_file: Option<PathBuf>,
    /// Connect to this host:port
    #[arg(long, value_name = "HOST:PORT")]
    pub tcp: Option<String>,
    /// Give up after this long
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
    pub within: std::time::Duration,
    /// Timeout of one probe
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration_arg)]
    pub probe_timeout: std::time::Duration,
    /// Time between probes
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration_arg)]
    pub every: std::time::Duration,
}

#[derive(Debug, Subcommand)]
pub enum ImportCmd {
    /// Convert a Compose project into spec files, one per service plus one
    /// for its networks and volumes.
    ///
    /// Reads the files the way `docker compose config` does: several -f
    /// files merged, `.env` and ${VAR} interpolation resolved now (the
    /// variables used are listed in each file's header), profiles, extends,
    /// YAML anchors. Every place where the spec differs from what Compose
    /// would do carries a comment starting "approximation:". Secret and
    /// config contents are written as files under --secrets-dir (mode
    /// 0600), never into the specs.
    ///
    /// What a spec cannot express (a `build:` without `image:`, replicas
    /// above 1, `network_mode: service:X`, a port on a random host port,
    /// ...) is refused: all of it is listed with file:line and key, and
    /// nothing is written (exit 2); with --partial the rest is written,
    /// and the exit status is still 2.
    ///
    /// Names: containers are PROJECT-SERVICE (or `container_name`),
    /// networks and volumes PROJECT_NAME (or their `name:`), as Compose
    /// names them; each container keeps its service name as a network
    /// alias.
    Compose(ComposeArgs),
    /// Convert Quadlet files (.container, .pod, .network, .volume, .image)
    /// into spec files, one per unit file (web.container -> web.container.toml).
    ///
    /// Reads the files named, or the unit files of the directories named,
    /// and the .network, .volume, .pod and .image files they reference (looked up
    /// beside them). Each key becomes the typed spec key that renders it,
    /// else an escape-hatch entry ([container.NAME.quadlet], .unit,
    /// .service, .install); every place where the spec differs from the
    /// file carries a comment starting "approximation:". .kube and .build
    /// files are refused.
    ///
    /// What a spec cannot express is listed with file:line and key, and
    /// nothing is written (exit 2); with --partial the rest is written,
    /// and the exit status is still 2.
    Quadlet(QuadletArgs),
}

#[derive(Debug, Clone, Args)]
pub struct QuadletArgs {
    /// Quadlet files, or directories of them
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Directory to write the spec files into (created if missing); files the
    /// importer did not write are never replaced
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Write what can be converted and list the rest, instead of writing
    /// nothing when something cannot be converted
    #[arg(long)]
    pub partial: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ComposeArgs {
    /// Compose file; repeat to merge several, in order, like `docker compose
    /// -f`. Default: compose.yaml (or docker-compose.yml, ...) here, and its
    /// compose.override.yaml if there is one
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Variables for ${VAR} interpolation [default: .env beside the first file, if any];
    /// the environment wins over it, as in Compose
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// Project name, the prefix of every name [default: COMPOSE_PROJECT_NAME, the
    /// file's `name:`, or the first file's directory name]
    #[arg(short = 'p', long, value_name = "NAME")]
    pub project_name: Option<String>,
    /// Enable services of this profile (repeatable; COMPOSE_PROFILES too)
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
    /// Directory to write the spec files into (created if missing); files the
    /// importer did not write are never replaced
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Where secret and config contents are written, as files the specs refer
    /// to by absolute path [default: OUT/files]
    #[arg(long, value_name = "DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Write what can be converted and list the rest, instead of writing
    /// nothing when something cannot be converted
    #[arg(long)]
    pub partial: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ApplyCmd {
    #[command(flatten)]
    pub args: ApplyArgs,
    /// After the jobs, follow every unit started or restarted until it is
    /// healthy (without a health check: active for 3 s) or has failed, for
    /// at most DURATION (default 5m); roll back those with
    /// on_failure = "rollback" that failed. Exit 0 only if all settled well
    #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "5m",
          require_equals = true, value_parser = parse_duration_arg)]
    pub wait: Option<std::time::Duration>,
    /// Print the result as one JSON document, version 1: changed, ok,
    /// generation, waited, units (unit, action, reason, job, settled,
    /// health, detail, rolled_back_to) and errors (file, line, col, key,
    /// message)
    #[arg(long)]
    pub json: bool,
    /// Apply even if the specs directory has no specs: stop and remove
    /// every service the agent made (refused by default, see allow_empty
    /// in deploy-agent.toml(5))
    #[arg(long)]
    pub allow_empty: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// How long to wait for each unit job (start/restart/stop), and for
    /// another deploy-agent's apply to finish first
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration_arg)]
    pub timeout: std::time::Duration,
}

fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    crate::spec::values::parse_duration(s)
}

impl Cli {
    /// The clap command, for man pages and completions.
    pub fn command() -> clap::Command {
        <Cli as clap::CommandFactory>::command()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_global_flags_after_the_command() {
        let c = Cli::try_parse_from(["deploy-agent", "render", "--out", "/tmp/x", "--specs", "/s"])
            .unwrap();
        assert_eq!(c.global.specs.as_deref(), Some(std::path::Path::new("/s")));
        assert!(matches!(c.command, Command::Render { .. }));
        let c = Cli::try_parse_from(["deploy-agent", "rollback", "--to", "3"]).unwrap();
        assert!(matches!(c.command, Command::Rollback { to: Some(3), .. }));
        assert!(Cli::try_parse_from(["deploy-agent", "apply", "--timeout", "fast"]).is_err());
    }
}
