//! What each systemd release reads: the first release with each key of the
//! `[Unit]`, `[Service]` and `[Install]` sections that deploy-agent can
//! write (the key registry's `svc(...)`/`unit(...)` keys, the templates'
//! own lines) or that is newer than the oldest systemd it supports, and the
//! gate that refuses a spec needing a newer systemd than the target's.
//!
//! The target systemd is `systemd_version` in agent.toml, else the
//! manager's `Version` property where a command talks to it (`plan`,
//! `apply`, the daemon); unknown (offline `validate`/`render`): no gate.
//!
//! Figures: the "Added in version N." notes of systemd 257's man pages
//! systemd.unit(5), systemd.service(5), systemd.resource-control(5),
//! systemd.exec(5) and systemd.kill(5) (the notes start at 183; a key with
//! none is older). [`Since::Always`]: in every systemd deploy-agent
//! supports ([`SystemdVersion::OLDEST_SUPPORTED`], RHEL 9's 252); the
//! figure is kept in the entry's source for reference.

use std::fmt;

use super::RenderError;
use crate::spec::keys::{self, Section, Table};
use crate::spec::model::{RawKeys, Settings};

/// A systemd release: its major version, which is what systemd numbers
/// (`252.39-1~deb12u1` is 252 with a distribution's patches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SystemdVersion(pub u32);

/// `systemd_version` text (or a manager's `Version`) that names no release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read a systemd version from {text:?}: expected e.g. \"252\", \"255.4\" or \"252.39-1~deb12u1\"")]
pub struct SystemdVersionError {
    pub text: String,
}

impl SystemdVersion {
    /// The oldest systemd of a distribution deploy-agent supports (RHEL 9;
    /// Debian 12 has 252 too).
    pub const OLDEST_SUPPORTED: SystemdVersion = SystemdVersion(252);

    /// Reads `"252"`, `"v255"`, `"257.9+deb13"`, `"252.39-1~deb12u1"` (the
    /// manager's `Version`) or `"systemd 252 (252.39-1~deb12u1)"`
    /// (`systemctl --version`): the leading number of the first word that
    /// starts with one.
    pub fn parse(text: &str) -> Result<SystemdVersion, SystemdVersionError> {
        text.split_whitespace()
            .find_map(|w| {
                let w = w.strip_prefix('v').unwrap_or(w);
                let end = w.find(|c: char| !c.is_ascii_digit()).unwrap_or(w.len());
                let rest_ok = w[end..].chars().next().is_none_or(|c| !c.is_alphabetic());
                (end > 0 && end <= 6 && rest_ok)
                    .then(|| w[..end].parse().ok())
                    .flatten()
                    .filter(|&n| n > 0)
                    .map(SystemdVersion)
            })
            .ok_or_else(|| SystemdVersionError {
                text: text.to_string(),
            })
    }
}

impl fmt::Display for SystemdVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The first systemd with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// In every supported systemd (at most [`SystemdVersion::OLDEST_SUPPORTED`]).
    Always,
    /// Newer than the oldest supported systemd.
    V(u32),
}

/// One key: its section, name, first systemd, and where that figure is from.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub section: Section,
    pub key: &'static str,
    pub since: Since,
    pub source: &'static str,
}

const fn e(section: Section, key: &'static str, since: Since, source: &'static str) -> Entry {
    Entry {
        section,
        key,
        since,
        source,
    }
}

use Section::{Install as I, Service as S, Unit as U};
use Since::{Always as A, V};

/// Every systemd key deploy-agent writes, and the newer keys an escape
/// hatch may name; sorted by section and key.
pub const KEYS: &[Entry] = &[
    e(U, "After", A, "systemd.unit(5): 201"),
    e(U, "Description", A, "systemd.unit(5): 201"),
    e(U, "Requires", A, "systemd.unit(5): 201"),
    e(U, "StartLimitBurst", A, "systemd.unit(5): 229"),
    e(U, "StartLimitIntervalSec", A, "systemd.unit(5): 229"),
    e(U, "SurviveFinalKillSignal", V(255), "systemd.unit(5): 255"),
    e(U, "Wants", A, "systemd.unit(5): 201"),
    e(U, "WantsMountsFor", V(256), "systemd.unit(5): 256"),
    e(S, "BindLogSockets", V(257), "systemd.exec(5): 257"),
    e(S, "CPUQuota", A, "systemd.resource-control(5): 213"),
    e(S, "CPUWeight", A, "systemd.resource-control(5): 232"),
    e(
        S,
        "CoredumpReceive",
        V(255),
        "systemd.resource-control(5): 255",
    ),
    e(
        S,
        "DelegateSubgroup",
        V(254),
        "systemd.resource-control(5): 254",
    ),
    e(S, "ExecStartPost", A, "systemd.service(5): no note (older)"),
    e(S, "ExtensionImagePolicy", V(254), "systemd.exec(5): 254"),
    e(
        S,
        "FileDescriptorStorePreserve",
        V(254),
        "systemd.service(5): 254",
    ),
    e(S, "ImportCredential", V(254), "systemd.exec(5): 254"),
    e(S, "LogFilterPatterns", V(253), "systemd.exec(5): 253"),
    e(
        S,
        "ManagedOOMMemoryPressureDurationSec",
        V(257),
        "systemd.resource-control(5): 257",
    ),
    e(S, "MemoryHigh", A, "systemd.resource-control(5): 231"),
    e(S, "MemoryKSM", V(254), "systemd.exec(5): 254"),
    e(
        S,
        "MemoryLow",
        A,
        "systemd.resource-control(5): 240 (MemoryMin=; MemoryLow= 231)",
    ),
    e(S, "MemoryMax", A, "systemd.resource-control(5): 231"),
    e(
        S,
        "MemoryPressureThresholdSec",
        V(254),
        "systemd.resource-control(5): 254",
    ),
    e(
        S,
        "MemoryPressureWatch",
        V(254),
        "systemd.resource-control(5): 254",
    ),
    e(S, "MemorySwapMax", A, "systemd.resource-control(5): 232"),
    e(
        S,
        "MemoryZSwapMax",
        V(253),
        "systemd.resource-control(5): 253",
    ),
    e(
        S,
        "MemoryZSwapWriteback",
        V(256),
        "systemd.resource-control(5): 256",
    ),
    e(S, "MountImagePolicy", V(254), "systemd.exec(5): 254"),
    e(S, "NFTSet", V(255), "systemd.resource-control(5): 255"),
    e(S, "OOMPolicy", A, "systemd.service(5): 243"),
    e(S, "OpenFile", V(253), "systemd.service(5): 253"),
    e(S, "PrivatePIDs", V(257), "systemd.exec(5): 257"),
    e(S, "ReloadSignal", V(253), "systemd.service(5): 253"),
    e(S, "Restart", A, "systemd.service(5): no note (older)"),
    e(S, "RestartForceExitStatus", A, "systemd.service(5): 215"),
    e(S, "RestartMaxDelaySec", V(254), "systemd.service(5): 254"),
    e(S, "RestartMode", V(254), "systemd.service(5): 254"),
    e(S, "RestartSec", A, "systemd.service(5): no note (older)"),
    e(S, "RestartSteps", V(254), "systemd.service(5): 254"),
    e(S, "RootEphemeral", V(254), "systemd.exec(5): 254"),
    e(S, "RootImagePolicy", V(254), "systemd.exec(5): 254"),
    e(S, "SetLoginEnvironment", V(255), "systemd.exec(5): 255"),
    e(
        S,
        "StartupMemoryZSwapMax",
        V(253),
        "systemd.resource-control(5): 253",
    ),
    e(S, "SuccessExitStatus", A, "systemd.service(5): 189"),
    e(S, "TimeoutStartSec", A, "systemd.service(5): 188"),
    e(S, "TimeoutStopSec", A, "systemd.service(5): 188"),
    e(I, "WantedBy", A, "systemd.unit(5): 201"),
];

/// The entry of `key` in `section`, if the table has one.
pub fn entry(section: Section, key: &str) -> Option<&'static Entry> {
    KEYS.iter().find(|e| e.section == section && e.key == key)
}

/// The release `key` of `section` needs beyond the oldest supported one.
pub fn needs(section: Section, key: &str) -> Option<u32> {
    match entry(section, key)?.since {
        Since::V(n) => Some(n),
        Since::Always => None,
    }
}

/// Refuses the first systemd key of one unit's spec that `have` lacks: a
/// generic spec key (`restart_steps`) or an escape-hatch key in [`KEYS`]
/// (`tables`: where its spec keys come from). `None`: the target is
/// unknown, nothing is refused. Rendering calls it for each unit it renders.
pub(super) fn check_one(
    unit: &str,
    tables: &[Table],
    settings: &Settings,
    raw: &RawKeys,
    have: Option<SystemdVersion>,
) -> Result<(), RenderError> {
    let Some(have) = have else { return Ok(()) };
    let refuse = |key: &str, needs: u32, feature: String| RenderError::SystemdUnsupported {
        unit: unit.to_string(),
        key: key.to_string(),
        feature,
        needs: SystemdVersion(needs),
        have,
    };
    for k in keys::KEYS.iter().filter(|k| tables.contains(&k.table)) {
        let Some((section, skey)) = k.quadlet.filter(|(s, _)| s.is_systemd()) else {
            continue;
        };
        match needs(section, skey) {
            Some(n) if have.0 < n && settings.contains_key(k.name) => {
                return Err(refuse(skey, n, super::generic::spec_name(k)));
            }
            _ => {}
        }
    }
    for (section, entries) in raw.iter().filter(|(s, _)| s.is_systemd()) {
        for (key, _) in entries {
            match needs(*section, key) {
                Some(n) if have.0 < n => {
                    let feature = format!("[{}] {key}= of the escape hatch", section.name());
                    return Err(refuse(key, n, feature));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
