//! The one-shot commands (validate, render, plan, apply, status, history,
//! rollback): what each prints and which exit code it returns.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::agent::{Agent, AgentError};
use crate::cli::{ApplyArgs, Cli, Command};
use crate::config::{Config, Env, Overrides};
use crate::reconcile::{describe, Extra};
use crate::systemd::{Scope, Systemd};

/// Exit codes of the contract.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_INVALID: u8 = 2;

/// Runs the parsed command line; never panics on bad input.
pub fn main(cli: Cli) -> ExitCode {
    crate::journal::init(cli.global.verbose, matches!(cli.command, Command::Run));
    let over = Overrides {
        config: cli.global.config.clone(),
        specs_dir: cli.global.specs.clone(),
        output_dir: cli.global.output_dir.clone(),
        state_dir: cli.global.state_dir.clone(),
    };
    let cfg = match Config::load(&over, &Env::from_process()) {
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
            Command::Validate => validate(cfg),
            Command::Render { out } => render(cfg, &out),
            Command::Plan { json } => plan(cfg, json).await,
            Command::Apply(args) => apply(cfg, &args).await,
            Command::Status { json } => status(cfg, json).await,
            Command::History { json } => history(cfg, json),
            Command::Rollback { to, apply } => rollback(cfg, to, &apply).await,
        }
    });
    match code {
        Ok(c) => ExitCode::from(c),
        Err(e) => {
            eprintln!("error: {}", chain(&e));
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

fn agent(cfg: Config, args: Option<&ApplyArgs>) -> Result<Agent, u8> {
    let timeout = args
        .map(|a| a.timeout)
        .unwrap_or(std::time::Duration::from_secs(300));
    Agent::new(cfg, timeout).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_INVALID
    })
}

/// Prints an agent error the way operators read it; returns the exit code.
fn report_error(e: &AgentError) -> u8 {
    match e {
        AgentError::Invalid(errs) => {
            for err in errs.iter() {
                eprintln!("{err}");
            }
            eprintln!("{} error(s); nothing was changed.", errs.len());
        }
        other => eprintln!("error: {other}"),
    }
    e.exit_code()
}

fn validate(cfg: Config) -> Result<u8> {
    let agent = match agent(cfg, None) {
        Ok(a) => a,
        Err(c) => return Ok(c),
    };
    let set = match agent.load_specs() {
        Ok(s) => s,
        Err(e) => return Ok(report_error(&e)),
    };
    // Rendering catches what only the target Podman version can tell.
    if let Err(e) = agent.render(&set) {
        return Ok(report_error(&e));
    }
    let budget = agent.budget(&set);
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
        Err(e) => return Ok(report_error(&e)),
    };
    let files = match agent.render(&set) {
        Ok(f) => f,
        Err(e) => return Ok(report_error(&e)),
    };
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, text) in &files {
        let p = out.join(name);
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    println!("wrote {} file(s) to {}", files.len(), out.display());
    Ok(EXIT_OK)
}

async fn plan(cfg: Config, json: bool) -> Result<u8> {
    let agent = match agent(cfg, None) {
        Ok(a) => a,
        Err(c) => return Ok(c),
    };
    let set = match agent.load_specs() {
        Ok(s) => s,
        Err(e) => return Ok(report_error(&e)),
    };
    // Units stopped outside a change are part of the plan when systemd
    // answers; without it the plan is the files' alone, and says so.
    let scope = if agent.cfg.system {
        Scope::System
    } else {
        Scope::User
    };
    let extra = match Systemd::connect(scope).await {
        Ok(sd) => agent.with_drift(&sd, &set, Extra::default(), false).await,
        Err(e) => {
            eprintln!(
                "note: cannot reach systemd ({e}); units stopped outside a change are not shown"
            );
            Extra::default()
        }
    };
    let (_, desired, plan) = match agent.plan_set(set, extra) {
        Ok(x) => x,
        Err(e) => return Ok(report_error(&e)),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", describe(&plan));
    }
    if plan.files_changed() {
        if let Err(e) = crate::reconcile::apply::check_with_quadlet(&desired, !agent.cfg.system) {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    }
    Ok(if plan.conflicts.is_empty() {
        EXIT_OK
    } else {
        EXIT_INVALID
    })
}

async fn connect(cfg: &Config) -> Result<Systemd> {
    let scope = if cfg.system {
        Scope::System
    } else {
        Scope::User
    };
    Systemd::connect(scope)
        .await
        .context("cannot reach systemd over D-Bus; nothing was changed")
}

async fn apply(cfg: Config, args: &ApplyArgs) -> Result<u8> {
    let agent = match agent(cfg, Some(args)) {
        Ok(a) => a,
        Err(c) => return Ok(c),
    };
    // Validate before touching the bus: bad specs are exit 2 even when systemd is down.
    if let Err(e) = agent.plan(Extra::default()) {
        return Ok(report_error(&e));
    }
    let sd = connect(&agent.cfg).await?;
    match agent.apply(&sd, "apply", Extra::default()).await {
        Ok(applied) => Ok(print_applied(&applied)),
        Err(e) => Ok(report_error(&e)),
    }
}

fn print_applied(applied: &crate::agent::Applied) -> u8 {
    let r = &applied.report;
    if r.plan.is_noop() {
        println!("No changes.");
        return EXIT_OK;
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
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", crate::status::table(&rows));
    }
    Ok(EXIT_OK)
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
            m.files.len()
        );
        for e in m.errors.iter().chain(&m.note) {
            println!("      {e}");
        }
    }
    Ok(EXIT_OK)
}

async fn rollback(cfg: Config, to: Option<u64>, args: &ApplyArgs) -> Result<u8> {
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
    let sd = connect(&agent.cfg).await?;
    let origin = format!("rollback to {}", generation.meta.generation);
    tracing::warn!(
        message_id = crate::journal::ids::ROLLBACK,
        generation = generation.meta.generation,
        "rolling back to generation {}",
        generation.meta.generation
    );
    let desired: BTreeMap<String, String> = generation.rendered;
    match agent.apply_rendering(&sd, &set, &desired, &origin).await {
        Ok(applied) => Ok(print_applied(&applied)),
        Err(e) => Ok(report_error(&e)),
    }
}
