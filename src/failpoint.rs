//! Failpoints for crash-safety tests (feature `failpoints` only).
//!
//! `DEPLOY_AGENT_FAILPOINT=NAME` makes the process SIGKILL itself when it
//! reaches `failpoint!("NAME")`, the way a power cut or `kill -9` would.
//! Without the feature the macro compiles to nothing.

/// Marks a point where a crash must leave the host consistent.
#[macro_export]
macro_rules! failpoint {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        $crate::failpoint::hit($name);
    };
}

#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    if std::env::var("DEPLOY_AGENT_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: killing myself");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
