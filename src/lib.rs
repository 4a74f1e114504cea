//! deploy-agent: TOML specs -> Podman Quadlet files -> systemd over D-Bus.
//!
//! One module per concern; `main.rs` only wires the CLI to them.

pub mod agent;
pub mod budget;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
#[cfg(feature = "gen-docs")]
pub mod docs;
pub mod drift;
pub mod failpoint;
pub mod formats;
pub mod health;
pub mod history;
pub mod images;
pub mod import;
pub mod inputs;
pub mod journal;
pub mod lock;
pub mod metrics;
pub mod output;
pub mod pins;
pub mod podman_cache;
pub mod quadlet;
pub mod reconcile;
pub mod render;
pub mod result;
pub mod secret_store;
pub mod spec;
pub mod status;
pub mod supervise;
pub mod systemd;
pub mod userfile;
pub mod wait;
pub mod watch;
