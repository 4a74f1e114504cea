//! Which Podman the rendering targets, and which Quadlet key arrived when.
//!
//! The key history comes from the Podman sources (`supportedContainerKeys`,
//! `supportedNetworkKeys`, `supportedVolumeKeys` in
//! `pkg/systemd/quadlet/quadlet.go` at each release tag).

use std::fmt;
use std::str::FromStr;

/// A Podman release, `major.minor.patch`. Ordered, so gates are comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodmanVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// `podman_version` text that names no version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read a Podman version from {text:?}: expected e.g. \"4.9\", \"5.4.2\" or \"podman version 5.4.2\"")]
pub struct VersionError {
    pub text: String,
}

impl PodmanVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        PodmanVersion {
            major,
            minor,
            patch,
        }
    }

    /// The newest Podman whose Quadlet key set this renderer knows.
    pub const NEWEST: PodmanVersion = PodmanVersion::new(5, 5, 0);

    /// Reads `"4.9"`, `"5.4.2"`, `"v5.4.2"`, `"5.0.0-rc1"` or the output of
    /// `podman --version` (`"podman version 5.4.2"`): the first word that
    /// starts with `major.minor`. A missing patch is 0; a suffix after the
    /// numbers (`-dev`, `-rc1`, `~1`) is ignored.
    pub fn parse(text: &str) -> Result<PodmanVersion, VersionError> {
        let err = || VersionError {
            text: text.to_string(),
        };
        text.split_whitespace()
            .find_map(|w| parse_word(w.strip_prefix('v').unwrap_or(w)))
            .ok_or_else(err)
    }
}

fn parse_word(w: &str) -> Option<PodmanVersion> {
    let end = w
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(w.len());
    let nums: Vec<&str> = w[..end].split('.').collect();
    let num = |s: &str| -> Option<u32> {
        if s.is_empty() || s.len() > 6 {
            None
        } else {
            s.parse().ok()
        }
    };
    match nums.as_slice() {
        [a, b] => Some(PodmanVersion::new(num(a)?, num(b)?, 0)),
        [a, b, c] => Some(PodmanVersion::new(num(a)?, num(b)?, num(c)?)),
        _ => None,
    }
}

impl Default for PodmanVersion {
    fn default() -> Self {
        PodmanVersion::NEWEST
    }
}

impl fmt::Display for PodmanVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for PodmanVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PodmanVersion::parse(s)
    }
}

/// The first Podman release with each Quadlet key (or behaviour) we emit.
pub mod since {
    use super::PodmanVersion as V;

    /// Quadlet itself (`.container`, `.network`, `.volume`, PodmanArgs, ...).
    pub const QUADLET: V = V::new(4, 4, 0);
    /// `HealthCmd=`, `HealthInterval=`, `HealthTimeout=`, `HealthRetries=`, `HealthStartPeriod=`.
    pub const HEALTH: V = V::new(4, 5, 0);
    pub const SECRET: V = V::new(4, 5, 0);
    pub const AUTO_UPDATE: V = V::new(4, 6, 0);
    pub const PULL: V = V::new(4, 6, 0);
    pub const WORKING_DIR: V = V::new(4, 6, 0);
    pub const NETWORK_NAME: V = V::new(4, 7, 0);
    pub const VOLUME_NAME: V = V::new(4, 7, 0);
    pub const PIDS_LIMIT: V = V::new(4, 7, 0);
    /// `User=` taken as a string; before, Quadlet read it as a numeric uid
    /// (anything else silently became 0, root) and the gid went to `Group=`.
    pub const USER_NAME: V = V::new(4, 8, 0);
    /// `Driver=` in `[Volume]` (in `[Network]` since 4.4).
    pub const VOLUME_DRIVER: V = V::new(4, 8, 0);
    pub const ENTRYPOINT: V = V::new(5, 0, 0);
    pub const STOP_TIMEOUT: V = V::new(5, 0, 0);
    /// `Memory=` in `[Container]` (not emitted: `[Service] MemoryMax=` works everywhere).
    pub const MEMORY: V = V::new(5, 5, 0);
    /// `Notify=healthy` (`--sdnotify=healthy`): the unit is ready when the
    /// healthcheck first passes.
    pub const NOTIFY_HEALTHY: V = V::new(5, 0, 0);
    /// `Pod=` and `.pod` files.
    pub const POD: V = V::new(5, 0, 0);
    /// `.image` files, and `Image=NAME.image` in a `.container`.
    pub const IMAGE: V = V::new(4, 8, 0);
}
