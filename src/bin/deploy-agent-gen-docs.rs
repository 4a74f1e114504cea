//! Build tool for packaging: writes the man pages (one for `deploy-agent`, one
//! per subcommand) and the bash, zsh and fish completions, all generated from
//! the clap definition in `deploy_agent::cli`, so they cannot drift from
//! `--help`.
//!
//! Usage: `deploy-agent-gen-docs OUT_DIR`; writes
//!
//! ```text
//! OUT_DIR/man/deploy-agent.1, OUT_DIR/man/deploy-agent-SUBCOMMAND.1
//! OUT_DIR/completions/bash/deploy-agent
//! OUT_DIR/completions/zsh/_deploy-agent
//! OUT_DIR/completions/fish/deploy-agent.fish
//! ```
//!
//! Built only with `--features gen-docs`; it is not installed by the packages.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;
use deploy_agent::cli::Cli;

const BIN: &str = "deploy-agent";

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        bail!("usage: deploy-agent-gen-docs OUT_DIR");
    };
    let out = PathBuf::from(out);
    let pages = write_man_pages(&out.join("man"))?;
    let completions = write_completions(&out.join("completions"))?;
    for p in pages.iter().chain(&completions) {
        println!("{}", p.display());
    }
    Ok(())
}

/// One page for the top-level command and one per (visible) subcommand, named
/// `deploy-agent-SUB.1` as git and podman do.
fn write_man_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // build() propagates the global options and sets each subcommand's
    // display name to "deploy-agent-SUB".
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let sub_refs: Vec<String> = subs
        .iter()
        .map(|s| format!("{BIN}-{}", s.get_name()))
        .collect();

    let mut written = vec![write_page(dir, cmd, |r| top_level_sections(r, &sub_refs))?];
    for sub in subs {
        written.push(write_page(dir, sub, |r| {
            r.control("SH", ["SEE ALSO"]);
            r.text([bold(BIN), roman("(1)")]);
        })?);
    }
    Ok(written)
}

/// Renders clap's sections for `cmd`, then the extra ones `extra` adds.
fn write_page(dir: &Path, cmd: clap::Command, extra: impl FnOnce(&mut Roff)) -> Result<PathBuf> {
    let man = Man::new(cmd)
        .source(format!("{BIN} {}", env!("CARGO_PKG_VERSION")))
        .manual("deploy-agent manual");
    let path = dir.join(man.get_filename());
    let mut extra_roff = Roff::new();
    extra(&mut extra_roff);
    let write = || -> std::io::Result<()> {
        let mut w = BufWriter::new(File::create(&path)?);
        man.render(&mut w)?;
        // to_roff: without the preamble that render() already wrote.
        w.write_all(extra_roff.to_roff().as_bytes())?;
        w.flush()
    };
    write().with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// FILES and SEE ALSO for deploy-agent(1): where an operator finds things.
fn top_level_sections(r: &mut Roff, sub_pages: &[String]) {
    r.control("SH", ["FILES"]);
    let files = [
        (
            "/etc/deploy-agent/agent.toml",
            "Agent settings; every key is optional (see the commented defaults in the installed file).",
        ),
        (
            "/etc/deploy-agent/specs/*.toml",
            "The specs, read in lexical order. Examples: /usr/share/doc/deploy-agent/examples/.",
        ),
        (
            "~/.config/containers/systemd/deploy-agent/",
            "Rendered Quadlet files of a rootless (user) agent; /etc/containers/systemd/deploy-agent/ as root.",
        ),
        (
            "~/.local/state/deploy-agent/",
            "History of applied generations; /var/lib/deploy-agent/ as root.",
        ),
        (
            "/usr/lib/systemd/user/deploy-agent.service",
            "The user unit: systemctl --user enable --now deploy-agent.",
        ),
        (
            "/usr/lib/systemd/system/deploy-agent-system.service",
            "The system-wide (root) agent: systemctl enable --now deploy-agent-system.",
        ),
    ];
    for (path, what) in files {
        r.control("TP", []);
        r.text([italic(path)]);
        r.text([roman(what)]);
    }
    r.control("SH", ["SEE ALSO"]);
    let mut refs: Vec<_> = sub_pages
        .iter()
        .flat_map(|p| [bold(p.as_str()), roman("(1), ")])
        .collect();
    for (page, sep) in [
        ("podman-systemd.unit", "(5), "),
        ("systemctl", "(1), "),
        ("systemd.service", "(5)"),
    ] {
        refs.push(bold(page));
        refs.push(roman(sep));
    }
    r.text(refs);
}

fn write_completions(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (shell, sub, file) in [
        (Shell::Bash, "bash", BIN.to_string()),
        (Shell::Zsh, "zsh", format!("_{BIN}")),
        (Shell::Fish, "fish", format!("{BIN}.fish")),
    ] {
        let sub = dir.join(sub);
        fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
        let path = sub.join(file);
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), BIN, &mut buf);
        fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
