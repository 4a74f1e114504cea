//! Build tool for packaging: writes the man pages and the bash, zsh and fish
//! completions. The section-1 pages (one for `deploy-agent`, one per
//! subcommand) are generated from the clap definition in
//! `deploy_agent::cli`, so they cannot drift from `--help`; the sections
//! clap does not know about, and the section-5 pages for the spec format
//! and agent.toml, come from `deploy_agent::docs`.
//!
//! Usage: `deploy-agent-gen-docs OUT_DIR`; writes
//!
//! ```text
//! OUT_DIR/man/deploy-agent.1, OUT_DIR/man/deploy-agent-SUBCOMMAND.1
//! OUT_DIR/man/deploy-agent-specs.5, OUT_DIR/man/deploy-agent.toml.5
//! OUT_DIR/completions/bash/deploy-agent
//! OUT_DIR/completions/zsh/_deploy-agent
//! OUT_DIR/completions/fish/deploy-agent.fish
//! ```
//!
//! The pages' date is the day of `SOURCE_DATE_EPOCH` if it is set (as
//! package builds set it, for reproducible output), else today.
//!
//! Built only with `--features gen-docs`; it is not installed by the packages.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use clap_complete::Shell;
use clap_mangen::roff::Roff;
use clap_mangen::Man;
use deploy_agent::cli::Cli;
use deploy_agent::docs;

const BIN: &str = "deploy-agent";

/// What the `.TH` line of every page says besides its name.
struct Header {
    source: String,
    date: String,
}

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        bail!("usage: deploy-agent-gen-docs OUT_DIR");
    };
    let out = PathBuf::from(out);
    let header = Header {
        source: format!("{BIN} {}", env!("CARGO_PKG_VERSION")),
        date: page_date()?,
    };
    let man = out.join("man");
    let mut written = write_man_pages(&man, &header)?;
    written.extend(write_section5_pages(&man, &header)?);
    written.extend(write_completions(&out.join("completions"))?);
    for p in &written {
        println!("{}", p.display());
    }
    Ok(())
}

/// `YYYY-MM-DD` of `SOURCE_DATE_EPOCH`, else of now.
fn page_date() -> Result<String> {
    let time = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => {
            let secs: u64 = s
                .trim()
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds"))?;
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
        }
        Err(_) => SystemTime::now(),
    };
    let text = humantime::format_rfc3339_seconds(time).to_string();
    Ok(text[..10].to_string())
}

/// One page for the top-level command and one per (visible) subcommand, named
/// `deploy-agent-SUB.1` as git and podman do.
fn write_man_pages(dir: &Path, header: &Header) -> Result<Vec<PathBuf>> {
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

    let top = docs::top_level_sections(&sub_refs);
    let mut written = vec![write_page(dir, header, cmd, &top)?];
    for sub in subs {
        let extra = docs::subcommand_sections(sub.get_name());
        written.push(write_page(dir, header, sub, &extra)?);
    }
    Ok(written)
}

/// Writes clap's sections for `cmd`, then `extra` (EXIT STATUS, ..., SEE
/// ALSO), then clap's VERSION section.
fn write_page(dir: &Path, header: &Header, cmd: clap::Command, extra: &Roff) -> Result<PathBuf> {
    let has_options = cmd.get_arguments().any(|a| !a.is_hide_set());
    let has_subcommands = cmd.get_subcommands().any(|s| !s.is_hide_set());
    let man = Man::new(cmd)
        .date(&header.date)
        .source(&header.source)
        .manual(docs::MANUAL);
    let path = dir.join(man.get_filename());
    let write = || -> std::io::Result<()> {
        let mut w = BufWriter::new(File::create(&path)?);
        man.render_title(&mut w)?;
        let mut layout = Roff::new();
        docs::layout(&mut layout);
        layout.to_writer(&mut w)?;
        man.render_name_section(&mut w)?;
        man.render_synopsis_section(&mut w)?;
        man.render_description_section(&mut w)?;
        if has_options {
            man.render_options_section(&mut w)?;
        }
        if has_subcommands {
            man.render_subcommands_section(&mut w)?;
        }
        extra.to_writer(&mut w)?;
        man.render_version_section(&mut w)?;
        w.flush()
    };
    write().with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn write_section5_pages(dir: &Path, header: &Header) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for page in docs::section5_pages(&header.source, &header.date) {
        let path = dir.join(page.file_name);
        let write = || -> std::io::Result<()> {
            let mut w = BufWriter::new(File::create(&path)?);
            page.roff.to_writer(&mut w)?;
            w.flush()
        };
        write().with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_page_with_its_sections() {
        let dir = tempfile::tempdir().unwrap();
        let header = Header {
            source: "deploy-agent 0".into(),
            date: "2000-01-01".into(),
        };
        write_man_pages(dir.path(), &header).unwrap();
        write_section5_pages(dir.path(), &header).unwrap();
        let read = |name: &str| fs::read_to_string(dir.path().join(name)).unwrap();
        let top = read("deploy-agent.1");
        let order: Vec<usize> = [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH DESCRIPTION",
            ".SH OPTIONS",
            ".SH SUBCOMMANDS",
            ".SH \"EXIT STATUS\"",
            ".SH ENVIRONMENT",
            ".SH SIGNALS",
            ".SH FILES",
            ".SH EXAMPLES",
            ".SH \"SEE ALSO\"",
            ".SH VERSION",
        ]
        .iter()
        .map(|s| top.find(s).unwrap_or_else(|| panic!("{s} missing")))
        .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "sections out of order"
        );
        assert!(
            top.contains(
                ".TH deploy-agent 1 2000-01-01 \"deploy-agent 0\" \"deploy-agent manual\"\n"
            ),
            "{}",
            top.lines()
                .find(|l| l.starts_with(".TH"))
                .unwrap_or("no .TH")
        );
        let run = read("deploy-agent-run.1");
        assert!(run.contains(".SH \"EXIT STATUS\"") && run.contains(".SH SIGNALS"));
        for page in ["deploy-agent-specs.5", "deploy-agent.toml.5"] {
            let text = read(page);
            assert!(text.contains(".TH deploy-agent"), "{page}");
            assert!(text.contains(".SH NAME"), "{page}");
        }
        // Nothing refers to what the packages do not install: no repository paths.
        for entry in fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let text = fs::read_to_string(&path).unwrap();
            for bad in [
                "../",
                "shared/",
                "src/",
                "README.md",
                "packaging/",
                "tests/",
            ] {
                assert!(!text.contains(bad), "{} mentions {bad}", path.display());
            }
        }
    }
}
