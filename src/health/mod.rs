//! Health: everything that decides whether a managed container is healthy
//! and what to do about it.
//!
//! This module owns
//! - the probes the agent runs itself (`http`/`https` and `tcp`, each with a
//!   timeout) and the read of Podman's verdict for in-container `cmd` checks
//!   ([`probe`]);
//! - the pure per-unit health state machine: start period, retries,
//!   recovery, restarts with exponential backoff and a restart cap, rollback
//!   of a generation that never became healthy ([`machine`]);
//! - the waiter a health-gated unit runs before its dependents start
//!   ([`ready`], `deploy-agent wait-healthy`);
//! - the journal event kinds with their stable `MESSAGE_ID`s and syslog
//!   priorities ([`event`]).
//!
//! It does not own scheduling, restarting units or logging: the daemon loop
//! asks the machine when to wake ([`HealthMachine::due_at`]), runs the
//! probes and carries out the [`Action`]s, and logs the [`Transition`]s with
//! tracing fields.

pub mod event;
mod http1;
pub mod machine;
pub mod probe;
pub mod ready;

pub use event::HealthEvent;
pub use machine::{
    Action, Backoff, HealthMachine, HealthState, Output, Policy, StartKind, Transition,
};
pub use probe::{
    ensure_crypto_provider, podman_verdict, probe, probe_container, try_probe, ProbeError,
    ProbeResult,
};
