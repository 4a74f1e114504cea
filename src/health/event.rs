//! Health event kinds as they go to the journal: a stable `MESSAGE_ID` per
//! kind (like systemd's catalog ids; generated once at random and fixed
//! forever, so operators can `journalctl MESSAGE_ID=...`) and the syslog
//! priority. Logging itself happens in the daemon with tracing fields.

use std::fmt;

/// One kind of health event. The ids below are part of the operator
/// interface: never change one, only add new kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthEvent {
    /// The unit (re)started; its start period began.
    Starting,
    /// First success after a start.
    Healthy,
    /// A counted probe failure after being healthy or starting.
    Unhealthy,
    /// Healthy again after being unhealthy or failed.
    Recovered,
    /// Retries are spent.
    Failed,
    /// The agent restarts the unit (on_failure = "restart").
    Restart,
    /// The agent rolls back to the previous generation (on_failure = "rollback").
    Rollback,
    /// Too many restarts within the window; the agent stops restarting.
    GaveUp,
}

impl HealthEvent {
    /// Every kind, for catalogs and tests.
    pub const ALL: [HealthEvent; 8] = [
        HealthEvent::Starting,
        HealthEvent::Healthy,
        HealthEvent::Unhealthy,
        HealthEvent::Recovered,
        HealthEvent::Failed,
        HealthEvent::Restart,
        HealthEvent::Rollback,
        HealthEvent::GaveUp,
    ];

    /// The journal `MESSAGE_ID=`: 128 bits as 32 lower-case hex digits.
    pub fn message_id(&self) -> &'static str {
        match self {
            HealthEvent::Starting => "4c7055b8acc155a3fe9119f385323030",
            HealthEvent::Healthy => "a3c0629e21e16e6c733c798d253e3fc0",
            HealthEvent::Unhealthy => "9a288bad0f6eefca96d220223e237e4d",
            HealthEvent::Recovered => "f327278a3cceed3972603ecf8adf5652",
            HealthEvent::Failed => "bccc854ec651e0ff6be6316224fe0cac",
            HealthEvent::Restart => "3fb04091a5c59f804bcc58698e50f74b",
            HealthEvent::Rollback => "a7ce01afcb5ebd7a79511c3d359f9e3f",
            HealthEvent::GaveUp => "8fc03c6ad142053b02fdeff31add758f",
        }
    }

    /// Syslog level for `PRIORITY=`: err 3, warning 4, notice 5, info 6.
    pub fn priority(&self) -> u8 {
        match self {
            HealthEvent::Healthy | HealthEvent::Recovered => 6,
            HealthEvent::Starting => 5,
            HealthEvent::Unhealthy | HealthEvent::Restart => 4,
            HealthEvent::Failed | HealthEvent::GaveUp | HealthEvent::Rollback => 3,
        }
    }

    /// The event's stable name, e.g. `health_gave_up`.
    pub fn name(&self) -> &'static str {
        match self {
            HealthEvent::Starting => "health_starting",
            HealthEvent::Healthy => "health_healthy",
            HealthEvent::Unhealthy => "health_unhealthy",
            HealthEvent::Recovered => "health_recovered",
            HealthEvent::Failed => "health_failed",
            HealthEvent::Restart => "health_restart",
            HealthEvent::Rollback => "health_rollback",
            HealthEvent::GaveUp => "health_gave_up",
        }
    }
}

impl fmt::Display for HealthEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn message_ids_are_128_bit_lower_hex_and_distinct() {
        let ids: BTreeSet<_> = HealthEvent::ALL.iter().map(|e| e.message_id()).collect();
        assert_eq!(ids.len(), HealthEvent::ALL.len());
        for id in ids {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{id}"
            );
        }
    }

    #[test]
    fn ids_do_not_clash_with_the_agents_own() {
        let own = [
            crate::journal::ids::APPLY_STARTED,
            crate::journal::ids::APPLY_DONE,
            crate::journal::ids::APPLY_FAILED,
            crate::journal::ids::SPEC_INVALID,
            crate::journal::ids::UNIT_FAILED,
            crate::journal::ids::QUADLET_REJECTED,
            crate::journal::ids::SYSTEMD_UNREACHABLE,
            crate::journal::ids::ROLLBACK,
        ];
        for e in HealthEvent::ALL {
            assert!(!own.contains(&e.message_id()), "{e}");
        }
    }

    #[test]
    fn priorities_follow_syslog_levels() {
        use HealthEvent::*;
        assert_eq!(Healthy.priority(), 6);
        assert_eq!(Recovered.priority(), 6);
        assert_eq!(Starting.priority(), 5);
        assert_eq!(Unhealthy.priority(), 4);
        assert_eq!(Restart.priority(), 4);
        assert_eq!(Failed.priority(), 3);
        assert_eq!(GaveUp.priority(), 3);
        assert_eq!(Rollback.priority(), 3);
        assert_eq!(GaveUp.to_string(), "health_gave_up");
    }
}
