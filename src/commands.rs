//! The one-shot commands (validate, render, plan, apply, status, history,
//! rollback): what each prints and which exit code it returns.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::agent::{Agent, AgentError};
use crate::cli::{ApplyArgs, ApplyCmd, Cli, Command, ComposeArgs, ImportCmd, QuadletArgs};
use crate::config::{Config, Env, Overrides};
use crate::formats::{PlanDoc, StatusDoc, ValidateDoc};
use crate::reconcile::{describe, ActionKind, Extra};
use crate::result::{ApplyResult, ErrorEntry};
use crate::systemd::{Scope, Systemd};

/// Exit codes of the contract.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_INVALID: u8 = 2;
/// `plan --detailed-exitcode`: the specs are valid and `apply` would change something.
pub const EXIT_CHANGES: u8 = 3;

/// Runs the parsed command line; never panics on bad input.
pub fn main(cli: Cli) -> ExitCode {
    crate::journal::init(cli.global.verbose, matches!(cli.command, Command::Run));
    // Run by systemd inside a unit's start: needs no settings, specs or bus.
    if let Command::WaitHealthy(w) = &cli.command {
        return wait_healthy(w);
    }
    // Import reads no agent settings: it only writes spec files.
    if let Command::Import(ImportCmd::Compose(args)) = &cli.command {
        return ExitCode::from(import_compose(args));
    }
    if let Command::Import(ImportCmd::Quadlet(args)) = &cli.command {
        return ExitCode::from(import_quadlet(args));
    }
    let over = Overrides {
        config: cli.global.config.clone(),
        specs_dir: cli.global.specs.clone(),
        output_dir: cli.global.output_dir.clone(),
        state_dir: cli.global.state_dir.clone(),
    };
    let mut env = Env::from_process();
    if cli.global.system && !env.root {
        eprintln!(
            "error: --system acts on the system manager and its paths, which needs root (sudo deploy-agent --system ...)"
        );
        return ExitCode::from(EXIT_INVALID);
    }
    if cli.global.user {
        env.root = false;
    }
    let cfg = match Config::load(&over, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let code = rt.block_on(async move {
        match cli.command {
            Command::Run => crate::daemon::run(cfg).await,
            Command::Validate { json } => validate(cfg, json),
            Command::Render { out } => render(cfg, &out),
            Command::Plan {
                json,
                detailed_exitcode,
            } => plan(cfg, json, detailed_exitcode).await,
            Command::Apply(cmd) => apply(cfg, &cmd).await,
            Command::Status { json } => status(cfg, json).await,
            Command::History { json } => history(cfg, json),
            Command::Rollback { to, dry_run, apply } => rollback(cfg, to, dry_run, &apply).await,
            Command::WaitHealthy(_) | Command::Import(_) => {
                unreachable!("handled before the agent settings are read")
            }
        }
    });
    // Not a plain drop: that waits for blocking tasks, and one may still be
    // waiting for another agent's apply lock after this one gave up.
    rt.shutdown_background();
    match code {
        Ok(c) => ExitCode::from(c),
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// `wait-healthy`: exit 0 once healthy, 1 if not in time.
fn wait_healthy(w: &crate::cli::WaitHealthyCmd) -> ExitCode {
    use crate::spec::model::HealthCheck;
    let check = match (&w.http, &w.tcp) {
        (Some(url), _) => HealthCheck::Http {
            url: url.clone(),
            expect_status: w.expect_status,
            ca_file: w.ca_file.clone(),
        },
        (None, Some(addr)) => HealthCheck::Tcp { addr: addr.clone() },
        (None, None) => HealthCheck::Cmd(Vec::new()),
    };
    let spec = crate::health::ready::WaitSpec {
        name: w.name.clone(),
        check,
        within: w.within,
        probe_timeout: w.probe_timeout,
        every: w.every.max(std::time::Duration::from_millis(10)),
    };
    crate::health::ensure_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let r = match rt {
        Ok(rt) => rt.block_on(crate::health::ready::wait_healthy(&spec)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match r {
        Ok(_) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("error: {e}; the units that require it are not started");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// The error and its causes, each said once (many errors already include
/// their source in their own message).
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// `import compose`: every refusal with file:line and key; exit 2 with
/// nothing written, unless `--partial` (the rest written, still exit 2).
fn import_compose(args: &ComposeArgs) -> u8 {
    use crate::import::compose;
    let opts = compose::Options {
        files: args.files.clone(),
        env_file: args.env_file.clone(),
        project_name: args.project_name.clone(),
        profiles: args.profiles.clone(),
        files_dir: args.secrets_dir.clone(),
        out: args.out.clone(),
        env: std::env::vars().collect(),
        cwd: std::env::current_dir().unwrap_or_default(),
    };
    let imp = compose::import(&opts);
    for p in &imp.problems {
        eprintln!("error: {p}");
    }
    let fatal = imp
        .problems
        .iter()
        .any(|p| p.scope == compose::Scope::Import);
    if fatal || (!imp.problems.is_empty() && !args.partial) {
        let hint = if fatal {
            ""
        } else {
            " (--partial writes the rest)"
        };
        eprintln!("{} problem(s): nothing written{hint}", imp.problems.len());
        return EXIT_INVALID;
    }
    if let Err(errs) = compose::validate(&imp, &args.out) {
        for e in errs.iter() {
            eprintln!("error: {e}");
        }
        eprintln!("the imported specs do not validate: nothing written (an importer bug; please report it)");
        return EXIT_INVALID;
    }
    if let Err(e) = compose::write(&imp, &args.out) {
        eprintln!("error: {e}");
        return EXIT_FAILED;
    }
    for s in &imp.inactive {
        println!("not imported: service {s}");
    }
    for v in &imp.variables {
        println!("variable: {v}");
    }
    println!(
        "wrote {} spec file(s) and {} secret/config file(s) for project {:?} to {}",
        imp.specs.len(),
        imp.payloads.len(),
        imp.project,
        args.out.display()
    );
    if !imp.problems.is_empty() {
        println!(
            "left out (--partial): {} item(s), listed above",
            imp.problems.len()
        );
        // As `import quadlet`: something was not carried over.
        return EXIT_INVALID;
    }
    EXIT_OK
}

fn import_quadlet(args: &QuadletArgs) -> u8 {
    use crate::import::quadlet;
    let imp = quadlet::import(&args.paths);
    for p in &imp.problems {
        eprintln!("error: {p}");
    }
    if imp.fatal || (!imp.problems.is_empty() && !args.partial) {
        let hint = if imp.fatal {
            ""
        } else {
            " (--partial writes the rest)"
        };
        eprintln!("{} problem(s): nothing written{hint}", imp.problems.len());
        return EXIT_INVALID;
    }
    if let Err(errs) = quadlet::validate(&imp, &args.out) {
        for e in errs.iter() {
            eprintln!("error: {e}");
        }
        eprintln!(
            "the imported specs do not validate (values the spec format refuses): nothing written"
        );
        return EXIT_INVALID;
    }
    if let Err(e) = quadlet::write(&imp, &args.out) {
        eprintln!("error: {e}");
        return EXIT_FAILED;
    }
    println!(
        "wrote {} spec file(s) to {}",
        imp.specs.len(),
        args.out.display()
    );
    if !imp.problems.is_empty() {
        println!(
            "left out (--partial): {} item(s), listed above",
            imp.problems.len()
        );
        return EXIT_INVALID;
    }
    EXIT_OK
}

fn agent(cfg: Config, args: Option<&ApplyArgs>) -> Result<Agent, u8> {
    let timeout = args
        .map(|a| a.timeout)
        .unwrap_or(std::time::Duration::from_secs(300));
    Agent::new(cfg, timeout).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_INVALID
    })
}

/// Which manager and which directories a command works on, for stderr:
/// `sudo deploy-agent apply` and `deploy-agent apply` act on different
/// managers with different paths.
fn scope_line(cfg: &Config) -> String {
    let manager = if cfg.system {
        "the system manager".to_string()
    } else {
        format!("the user manager of uid {}", nix::unistd::geteuid())
    };
    format!(
        "deploy-agent: {manager}; specs {}, output {}, state {}",
        cfg.specs_dir.display(),
        cfg.output_dir.display(),
        cfg.state_dir.display()
    )
}

/// Prints an agent error the way operators read it; returns the exit code.
/// The agent's errors say what an apply left alone ("nothing was
/// changed"); a read-only command (`validate`, `render`, `plan`) changes
/// nothing in any case, and does not say so.
fn report_error(e: &AgentError, read_only: bool) -> u8 {
    let said = |text: String| {
        if read_only {
            text.replace("; nothing was changed", "")
                .replace(", nothing was changed", "")
        } else {
            text
        }
    };
    match e {
        AgentError::Invalid(errs) => {
            for err in errs.iter() {
                eprintln!("{err}");
            }
            eprintln!(
                "{}",
                said(format!("{} error(s); nothing was changed.", errs.len()))
            );
        }
        other => eprintln!("error: {}", said(other.to_string())),
    }
    e.exit_code()
}

/// What `validate` found: the specs did not load or render, or they did
/// and this is their budget verdict.
enum Checked {
    Refused(AgentError),
    Loaded(crate::spec::SpecSet, crate::budget::Verdict),
}

fn check(agent: &Agent) -> Checked {
    let set = match agent.load_specs() {
        Ok(s) => s,
        Err(e) => return Checked::Refused(e),
    };
    // Rendering catches what only the target Podman version can tell.
    if let Err(e) = agent.render(&set) {
        return Checked::Refused(e);
    }
    let budget = agent.budget(&set);
    Checked::Loaded(set, budget)
}

fn validate(cfg: Config, json: bool) -> Result<u8> {
    let specs_dir = cfg.specs_dir.clone();
    let agent = match Agent::new(cfg, std::time::Duration::from_secs(300)) {
        Ok(a) => a,
        Err(e) if json => {
            let mut doc = ValidateDoc::new(&specs_dir, String::new());
            doc.fail(vec![ErrorEntry::message(e.to_string())]);
            print_doc(&doc);
            return Ok(EXIT_INVALID);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let checked = check(&agent);
    if json {
        let mut doc = ValidateDoc::new(&specs_dir, agent.podman.to_string());
        match checked {
            Checked::Refused(e) => doc.fail(ErrorEntry::of(&e)),
            Checked::Loaded(set, budget) => {
                doc.counts(&set);
                doc.warnings = budget.warnings;
                if !budget.errors.is_empty() {
                    doc.fail(budget.errors.into_iter().map(ErrorEntry::message).collect());
                }
            }
        }
        print_doc(&doc);
        return Ok(if doc.ok { EXIT_OK } else { EXIT_INVALID });
    }
    let (set, budget) = match checked {
        Checked::Refused(e) => return Ok(report_error(&e, true)),
        Checked::Loaded(set, budget) => (set, budget),
    };
    for w in &budget.warnings {
        eprintln!("warning: {w}");
    }
    for e in &budget.errors {
        eprintln!("error: {e}");
    }
    if !budget.errors.is_empty() {
        return Ok(EXIT_INVALID);
    }
    println!(
        "{}: {} file(s) OK: {} container(s), {} network(s), {} volume(s) (Podman {})",
        agent.cfg.specs_dir.display(),
        set.files.len(),
        set.containers.len(),
        set.networks.len(),
        set.volumes.len(),
        agent.podman
    );
    Ok(EXIT_OK)
}

fn render(cfg: Config, out: &Path) -> Result<u8> {
    let agent = match agent(cfg, None) {
        Ok(a) => a,
        Err(c) => return Ok(c),
    };
    let set = match agent.load_specs() {
        Ok(s) => s,
        Err(e) => return Ok(report_error(&e, true)),
    };
    let files = match agent.render(&set) {
        Ok(f) => f,
        Err(e) => return Ok(report_error(&e, true)),
    };
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, text) in &files {
        let p = out.join(name);
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    println!("wrote {} file(s) to {}", files.len(), out.display());
    Ok(EXIT_OK)
}

async fn plan(cfg: Config, json: bool, detailed: bool) -> Result<u8> {
    eprintln!("{}", scope_line(&cfg));
    let refuse = |e: &AgentError| {
        if json {
            print_doc(&PlanDoc::refused(ErrorEntry::of(e)));
            e.exit_code()
        } else {
            report_error(e, true)
        }
    };
    let agent = match Agent::new(cfg, std::time::Duration::from_secs(300)) {
        Ok(a) => a,
        Err(e) => {
            if json {
                print_doc(&PlanDoc::refused(vec![ErrorEntry::message(e.to_string())]));
            } else {
                eprintln!("error: {e}");
            }
            return Ok(EXIT_INVALID);
        }
    };
    let began = std::time::SystemTime::now();
    let sd = reach(&agent).await;
    if let Some(doc) = stamped_plan(&agent, &sd).await {
        return Ok(print_plan(doc, json, detailed));
    }
    let set = match agent.load_specs() {
        Ok(s) => s,
        Err(e) => return Ok(refuse(&e)),
    };
    // Units stopped outside a change are part of the plan when systemd
    // answers; without it the plan is the files' alone, and says so.
    let (extra, drift_checked) = match &sd {
        Ok(sd) => (
            agent.with_drift(sd, &set, Extra::default(), false).await,
            true,
        ),
        Err(e) => {
            no_drift_note(e);
            (Extra::default(), false)
        }
    };
    let (set, desired, plan) = match agent.plan_set(set, extra) {
        Ok(x) => x,
        Err(e) => return Ok(refuse(&e)),
    };
    if plan.files_changed() {
        let check = crate::reconcile::affected::to_check(&plan, &desired);
        if let Err(e) = crate::reconcile::apply::check_with_quadlet(&check, !agent.cfg.system) {
            if json {
                print_doc(&PlanDoc::refused(vec![ErrorEntry::message(e.to_string())]));
            } else {
                print!("{}", describe(&plan));
                eprintln!("error: {e}");
            }
            return Ok(EXIT_INVALID);
        }
    }
    if plan.settled() {
        agent.stamp_noop(&set, began);
    }
    Ok(print_plan(
        PlanDoc::planned(plan, drift_checked),
        json,
        detailed,
    ))
}

/// The manager the agent works for, its systemd version learnt (see
/// [`Agent::learn_systemd`]).
async fn reach(agent: &Agent) -> Result<Systemd, crate::systemd::SystemdError> {
    let sd = Systemd::connect(scope(&agent.cfg)).await;
    if let Ok(sd) = &sd {
        agent.learn_systemd(sd).await;
    }
    sd
}

fn no_drift_note(e: &impl std::fmt::Display) {
    eprintln!("note: cannot reach systemd ({e}); units stopped outside a change are not shown");
}

/// The plan answered from the saved plan stamp (see `reconcile/stamp.rs`):
/// nothing to change, with that plan's warnings, as long as no unit
/// drifted (else `None`, and the full plan says what to do about it).
async fn stamped_plan(
    agent: &Agent,
    sd: &Result<Systemd, crate::systemd::SystemdError>,
) -> Option<PlanDoc> {
    let said = agent.stamped_noop()?;
    tracing::debug!("nothing a plan reads changed since the last plan found nothing to change");
    let drift_checked = match sd {
        Ok(sd) => {
            let out = &agent.cfg.output_dir;
            let stopped = crate::drift::stopped_among(sd, &said.watched, out).await;
            if !stopped.is_ok_and(|s| s.is_empty()) {
                return None;
            }
            true
        }
        Err(e) => {
            no_drift_note(e);
            false
        }
    };
    for w in &said.warnings {
        tracing::warn!("{w}");
    }
    Some(PlanDoc::planned(
        crate::reconcile::Plan::default(),
        drift_checked,
    ))
}

fn print_plan(doc: PlanDoc, json: bool, detailed: bool) -> u8 {
    if json {
        print_doc(&doc);
    } else {
        print!("{}", describe(&doc.plan));
    }
    crate::formats::plan_exit(&doc, detailed)
}

/// Why a command that needs systemd stopped before changing anything.
const UNREACHABLE: &str = "cannot reach systemd over D-Bus; nothing was changed";

async fn connect(cfg: &Config) -> Result<Systemd> {
    Systemd::connect(scope(cfg)).await.context(UNREACHABLE)
}

/// The manager the agent works for: the system's as root, the user's otherwise.
fn scope(cfg: &Config) -> Scope {
    if cfg.system {
        Scope::System
    } else {
        Scope::User
    }
}

async fn apply(cfg: Config, cmd: &ApplyCmd) -> Result<u8> {
    if !cmd.json {
        eprintln!("{}", scope_line(&cfg));
    }
    let agent = match agent(cfg, Some(&cmd.args)) {
        Ok(a) => a,
        Err(c) => return Ok(c),
    };
    let refuse = |e: &AgentError| {
        if cmd.json {
            print_json(&ApplyResult::refused(e));
            e.exit_code()
        } else {
            report_error(e, false)
        }
    };
    let extra = || Extra {
        allow_empty: cmd.allow_empty,
        ..Extra::default()
    };
    // Rendered for the manager's systemd where it answers; validated
    // either way: bad specs are exit 2 even when systemd is down.
    let sd = reach(&agent).await.context(UNREACHABLE);
    let (set, desired) = match agent.plan(extra()) {
        Ok((set, desired, _)) => (set, desired),
        Err(e) => return Ok(refuse(&e)),
    };
    let sd = match sd {
        Ok(sd) => sd,
        Err(e) if cmd.json => {
            print_json(&ApplyResult::failed(chain(&e)));
            return Ok(EXIT_FAILED);
        }
        Err(e) => return Err(e),
    };
    // Planned once more under the lock; loaded and rendered once.
    let applied = match agent
        .apply_rendered(&sd, "apply", extra(), set, desired)
        .await
    {
        Ok(a) => a,
        Err(e) => return Ok(refuse(&e)),
    };
    let mut result = ApplyResult::applied(&applied);
    if !cmd.json {
        print_applied(&applied);
    }
    if let Some(limit) = cmd.wait {
        wait_and_roll_back(&agent, &sd, &applied, limit, &mut result, !cmd.json).await?;
    }
    if cmd.json {
        print_json(&result);
    }
    Ok(if result.ok { EXIT_OK } else { EXIT_FAILED })
}

/// `apply --wait`: follows the units the apply started until they settle,
/// rolls back those that failed with `on_failure = "rollback"`, and records
/// each in `result` (printing a line per unit when `lines`).
async fn wait_and_roll_back(
    agent: &Agent,
    sd: &Systemd,
    applied: &crate::agent::Applied,
    limit: std::time::Duration,
    result: &mut ApplyResult,
    lines: bool,
) -> Result<()> {
    let started: Vec<String> = applied
        .report
        .results
        .iter()
        .filter(|(a, o)| a.kind != ActionKind::Stop && o.ok())
        .map(|(a, _)| a.unit.clone())
        .collect();
    result.waited = true;
    let settled = crate::wait::wait(sd, &applied.set, &started, limit).await?;
    for (unit, s) in &settled {
        let container = unit.trim_end_matches(".service");
        let rollback = applied
            .set
            .containers
            .get(container)
            .and_then(|c| c.health.as_ref())
            .is_some_and(|h| h.on_failure == crate::spec::OnFailure::Rollback);
        let mut rolled_back_to = None;
        if !s.ok() && rollback {
            match agent.roll_back(sd, container).await {
                Ok(Some((g, _))) => rolled_back_to = Some(g),
                Ok(None) => {}
                Err(e) => eprintln!("error: rollback of {container}: {e}"),
            }
        }
        result.settle(unit, s, rolled_back_to);
        if lines {
            let rb = rolled_back_to.map_or(String::new(), |g| {
                format!("; rolled back to generation {g}")
            });
            println!("{:<8}{unit:<32} {}{rb}", "wait", s.describe());
        }
    }
    Ok(())
}

fn print_json(r: &ApplyResult) {
    print_doc(r);
}

fn print_doc<T: serde::Serialize>(doc: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(doc).expect("the documents serialize")
    );
}

fn print_applied(applied: &crate::agent::Applied) -> u8 {
    let r = &applied.report;
    for h in &r.held {
        println!("held back: {h}");
    }
    if r.plan.is_noop() {
        println!("No changes.");
        let _ = std::io::stdout().flush();
        return if r.ok() { EXIT_OK } else { EXIT_FAILED };
    }
    print!("{}", describe(&r.plan));
    for (action, outcome) in &r.results {
        let state = if outcome.ok() {
            "done".to_string()
        } else {
            format!("FAILED: {}", outcome.describe())
        };
        println!(
            "{:<8}{:<32} {state}",
            crate::reconcile::apply::verb(action.kind),
            action.unit
        );
    }
    if let Some(g) = applied.generation {
        println!(
            "generation {g}: {} in {:.2?}",
            if r.ok() {
                "applied"
            } else {
                "applied with failures"
            },
            applied.elapsed
        );
    }
    let _ = std::io::stdout().flush();
    if r.ok() {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

async fn status(cfg: Config, json: bool) -> Result<u8> {
    let sd = connect(&cfg).await?;
    let rows = crate::status::collect(&cfg, &sd).await?;
    let generation = crate::history::History::new(&cfg.state_dir)
        .latest()?
        .map(|m| m.generation);
    let doc = StatusDoc::new(generation, rows);
    if json {
        print_doc(&doc);
    } else {
        print!("{}", crate::status::table(&doc.units));
    }
    Ok(if doc.ok { EXIT_OK } else { EXIT_FAILED })
}

fn history(cfg: Config, json: bool) -> Result<u8> {
    let list = crate::history::History::new(&cfg.state_dir).list()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(EXIT_OK);
    }
    if list.is_empty() {
        println!("No generations yet in {}.", cfg.state_dir.display());
        return Ok(EXIT_OK);
    }
    println!(
        "{:>4}  {:<20}  {:<11}  {:<9}  {:<14}  files",
        "GEN", "TIME", "RESULT", "HEALTH", "ORIGIN"
    );
    for m in list.iter().rev() {
        println!(
            "{:>4}  {:<20}  {:<11}  {:<9}  {:<14}  {}",
            m.generation,
            m.time_rfc3339(),
            format!("{:?}", m.outcome).to_lowercase(),
            format!("{:?}", m.health).to_lowercase(),
            m.origin,
            m.file_count
        );
        for e in m.errors.iter().chain(&m.note) {
            println!("      {e}");
        }
    }
    Ok(EXIT_OK)
}

async fn rollback(cfg: Config, to: Option<u64>, dry_run: bool, args: &ApplyArgs) -> Result<u8> {
    let agent = match agent(cfg, Some(args)) {
        Ok(a) => a,
        Err(c) => return Ok(c),
    };
    let history = agent.history();
    let generation = match to {
        Some(n) => history.load(n),
        None => history.previous_good(None),
    };
    let generation = match generation {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let specs = history.specs(generation.meta.generation)?;
    let set = crate::spec::load_texts(&specs).map_err(|e| {
        anyhow::anyhow!(
            "generation {} has invalid specs: {e}",
            generation.meta.generation
        )
    })?;
    let n = generation.meta.generation;
    let desired: BTreeMap<String, String> = generation.rendered;
    if dry_run {
        let plan =
            crate::reconcile::apply::make_plan(&set, &desired, &agent.target(), Extra::default())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("Rolling back to generation {n} would change:");
        print!("{}", describe(&plan));
        return Ok(EXIT_OK);
    }
    // What the rollback puts back, in place of what the specs render now,
    // stays until a spec changes: saved as pins with the apply, so the
    // daemon's next apply keeps it too. Invalid specs now: nothing to pin
    // against (every apply refuses them anyway).
    let pins = match agent.load_specs().and_then(|now| agent.render_specs(&now)) {
        Ok(now) => crate::pins::between(&now, &desired, n),
        Err(e) => {
            eprintln!("note: the specs do not render now ({e}); nothing pinned");
            crate::pins::Pins::new()
        }
    };
    // The images it needs, before anything stops: a generation whose image
    // is gone would take the working container down for good.
    let current = crate::output::scan(&agent.cfg.output_dir)?.managed;
    let changed: BTreeMap<String, String> = desired
        .iter()
        .filter(|(f, text)| current.get(*f) != Some(*text))
        .map(|(f, t)| (f.clone(), t.clone()))
        .collect();
    if let Err(e) = crate::images::ensure(&changed).await {
        eprintln!("error: rolling back to generation {n}: {e}");
        return Ok(EXIT_FAILED);
    }
    let sd = connect(&agent.cfg).await?;
    let origin = format!("rollback to {}", generation.meta.generation);
    tracing::warn!(
        message_id = crate::journal::ids::ROLLBACK,
        generation = generation.meta.generation,
        "rolling back to generation {}",
        generation.meta.generation
    );
    match agent
        .apply_rendering(&sd, &set, &desired, &origin, Some(&pins))
        .await
    {
        Ok(applied) => Ok(print_applied(&applied)),
        Err(e) => Ok(report_error(&e, false)),
    }
}
