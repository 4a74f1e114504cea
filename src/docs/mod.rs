//! The man pages' text beyond what clap generates (feature `gen-docs`):
//! the extra sections of deploy-agent(1) and its subcommand pages, and the
//! section-5 pages for the spec format and agent.toml. Written with
//! clap_mangen's roff writer, which escapes the text.
//!
//! The key lists of the section-5 pages are checked against the parsers'
//! own lists (`spec::parse::*_KEYS`, `config::known_keys`) by the tests, so a
//! key the parser accepts cannot go undocumented.

mod agent_toml;
mod man1;
mod markup;
mod specs;

use clap_mangen::roff::Roff;

pub use man1::{subcommand_sections, top_level_sections};
pub use markup::layout;
pub use specs::markdown_reference;

/// The `.TH` manual name of every page.
pub const MANUAL: &str = "deploy-agent manual";

/// A section-5 page: its file name and its whole text.
pub struct Page {
    pub file_name: &'static str,
    pub roff: Roff,
}

/// The section-5 pages. `source` and `date` go into the `.TH` line
/// (`"deploy-agent 0.1.0"`, `"2026-01-31"`).
pub fn section5_pages(source: &str, date: &str) -> Vec<Page> {
    vec![
        Page {
            file_name: "deploy-agent-specs.5",
            roff: specs::page(source, date),
        },
        Page {
            file_name: "deploy-agent.toml.5",
            roff: agent_toml::page(source, date),
        },
    ]
}
