//! The validated, typed spec model: what the rest of the agent consumes.
//!
//! Everything here has passed validation (see `validate.rs`): names match the
//! naming rule, references resolve, no value can inject unit-file syntax.
//! Renderers and the reconciler never see raw TOML.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// All specs of a spec directory, validated together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpecSet {
    /// Shared: a load that found a file unchanged shares its containers
    /// with the load before (see `spec/cache.rs`).
    pub containers: BTreeMap<String, Arc<Container>>,
    pub networks: BTreeMap<String, Network>,
    pub volumes: BTreeMap<String, Volume>,
    pub pods: BTreeMap<String, Pod>,
    pub images: BTreeMap<String, Image>,
    /// The spec files read, in lexical order, with their full text.
    pub files: Vec<SpecFile>,
}

/// One spec file as read from disk (kept for history and for `source` marks).
#[derive(Debug, Clone, PartialEq)]
pub struct SpecFile {
    pub path: PathBuf,
    pub text: String,
}

/// `[network.NAME]` -> `NAME.network` -> `NAME-network.service`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Network {
    pub name: String,
    /// Spec file this network came from.
    pub source: PathBuf,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub internal: bool,
    pub ipv6: bool,
    /// An existing network the agent does not manage: nothing is rendered,
    /// containers join it by its plain name.
    pub external: bool,
    pub driver: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The generic keys (`spec::keys`) that were set.
    pub settings: Settings,
    /// The escape hatch (`[network.NAME.quadlet]`, `.unit`, `.service`, `.install`).
    pub raw: RawKeys,
}

/// `[volume.NAME]` -> `NAME.volume` -> `NAME-volume.service`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Volume {
    pub name: String,
    pub source: PathBuf,
    pub driver: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub settings: Settings,
    /// The escape hatch (`[volume.NAME.quadlet]`, `.unit`, `.service`, `.install`).
    pub raw: RawKeys,
}

/// `[pod.NAME]` -> `NAME.pod` -> `NAME-pod.service`: containers that join
/// it (`pod = "NAME"`) share its network namespace and ports.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pod {
    pub name: String,
    pub source: PathBuf,
    pub ports: Vec<PortMapping>,
    pub networks: Vec<String>,
    pub volumes: Vec<Mount>,
    pub labels: BTreeMap<String, String>,
    pub settings: Settings,
    pub raw: RawKeys,
}

/// `[image.NAME]` -> `NAME.image` -> `NAME-image.service`: Quadlet pulls
/// the image before the containers that name it (`image = { unit = "NAME" }`)
/// start.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Image {
    pub name: String,
    pub source: PathBuf,
    /// The image reference pulled (`Image=`).
    pub image: String,
    pub settings: Settings,
    pub raw: RawKeys,
}

/// The value of a generic key (`spec::keys`), typed by its `Ty`.
#[derive(Debug, Clone, PartialEq)]
pub enum Setting {
    Str(String),
    List(Vec<String>),
    Map(BTreeMap<String, String>),
    Bool(bool),
    Int(i64),
    Duration(Duration),
    Size(u64),
}

/// Generic keys by spec name (unique across a container's own, `resources`
/// and `health` tables), in name order.
pub type Settings = BTreeMap<&'static str, Setting>;

/// The escape hatch (`[container.NAME.quadlet]`, `.unit`, `.service`,
/// `.install`): raw keys per section, each with its values, in spec order.
pub type RawKeys = BTreeMap<Section, Vec<(String, Vec<String>)>>;

pub use super::keys::Section;

/// `[container.NAME]` -> `NAME.container` -> `NAME.service`.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub name: String,
    pub source: PathBuf,
    /// The image reference. With `image_unit`, the `[image.NAME]`'s
    /// `image` (filled in by validation).
    pub image: String,
    /// `image = { unit = "NAME" }`: the `[image.NAME]` that pulls the image
    /// (renders `Image=NAME.image`).
    pub image_unit: Option<String>,
    /// Exec form; each element one argument. `None`: the image's default.
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub ports: Vec<PortMapping>,
    pub volumes: Vec<Mount>,
    /// Declared networks (by spec name) or external networks by plain name.
    pub networks: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub env_files: Vec<PathBuf>,
    pub secrets: Vec<Secret>,
    pub labels: BTreeMap<String, String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub read_only: bool,
    /// Run an init process as PID 1 in the container (`RunInit=`): signals
    /// reach the service and zombies are reaped.
    pub init: bool,
    pub pull: Option<Pull>,
    pub auto_update: Option<AutoUpdate>,
    pub restart: Restart,
    pub start_timeout: Option<Duration>,
    pub stop_timeout: Option<Duration>,
    /// Container names (spec names, not unit names).
    pub requires: Vec<String>,
    pub after: Vec<String>,
    pub wants: Vec<String>,
    pub resources: Resources,
    pub health: Option<Health>,
    /// `pod`: the `[pod.NAME]` the container joins.
    pub pod: Option<String>,
    /// The generic keys of the container and its `resources` and `health` tables.
    pub settings: Settings,
    /// The escape hatch.
    pub raw: RawKeys,
}

/// `"[ip:]host:container[/proto]"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub ip: Option<String>,
    pub host: u16,
    pub container: u16,
    pub proto: Proto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// `"SOURCE:TARGET[:OPTIONS]"` where SOURCE is a declared volume or an absolute host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: MountSource,
    pub target: String,
    /// Comma-separated options as written (`ro`, `Z`, `z`, `rw`, ...), split.
    pub options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A `[volume.NAME]` declared in the specs.
    Volume(String),
    /// An absolute host path.
    Host(PathBuf),
}

impl Mount {
    pub fn read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}

/// `{ name, type, target, source }`: a Podman secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub name: String,
    pub kind: SecretKind,
    /// Env var name (`env`) or path / file name in the container (`mount`).
    pub target: Option<String>,
    /// A file the agent creates/updates the Podman secret from.
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    Env,
    Mount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pull {
    Missing,
    Always,
    Newer,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoUpdate {
    Registry,
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    Always,
    #[default]
    OnFailure,
    No,
}

/// `[container.NAME.resources]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resources {
    /// Hard limit in bytes.
    pub memory: Option<u64>,
    /// Soft limit (reservation) in bytes.
    pub memory_reservation: Option<u64>,
    /// Cores, > 0.
    pub cpus: Option<f64>,
    pub pids: Option<u32>,
}

/// `[container.NAME.health]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub check: HealthCheck,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
    pub on_failure: OnFailure,
    /// `on_failure = "restart"`: the first restart's delay (doubling after).
    pub restart_delay: Duration,
    /// `on_failure = "restart"`: restarts within an hour before giving up.
    pub max_restarts: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HealthCheck {
    /// In-container command, run by Podman (Quadlet `HealthCmd=`).
    Cmd(Vec<String>),
    /// Agent-side HTTP(S) probe.
    Http {
        url: String,
        expect_status: u16,
        /// Extra CA certificate (PEM) trusted for this probe besides the system roots.
        ca_file: Option<PathBuf>,
    },
    /// Agent-side TCP connect probe, `host:port`.
    Tcp { addr: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    #[default]
    Restart,
    Rollback,
    None,
}

/// Health defaults (Podman's own where it has one).
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_HEALTH_RETRIES: u32 = 3;
pub const DEFAULT_RESTART_DELAY: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_RESTARTS: u32 = 5;

/// The kinds of spec object: the top-level tables, their Quadlet file
/// extensions and unit names, in start order (every unit of a kind starts
/// before the units of the kinds after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Network,
    Volume,
    Image,
    Pod,
    Container,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Network,
        Kind::Volume,
        Kind::Image,
        Kind::Pod,
        Kind::Container,
    ];

    /// The top-level spec table, which is also the Quadlet file extension.
    pub const fn table(self) -> &'static str {
        match self {
            Kind::Network => "network",
            Kind::Volume => "volume",
            Kind::Image => "image",
            Kind::Pod => "pod",
            Kind::Container => "container",
        }
    }

    /// What Quadlet adds to the file's stem for the unit name
    /// (`net.network` -> `net-network.service`).
    pub const fn unit_suffix(self) -> &'static str {
        match self {
            Kind::Network => "-network",
            Kind::Volume => "-volume",
            Kind::Image => "-image",
            Kind::Pod => "-pod",
            Kind::Container => "",
        }
    }

    /// The Quadlet file of object `name`: `web.container`.
    pub fn file(self, name: &str) -> String {
        format!("{name}.{}", self.table())
    }

    /// The unit Quadlet makes of object `name`: `web.service`, `net-network.service`.
    pub fn unit(self, name: &str) -> String {
        format!("{name}{}.service", self.unit_suffix())
    }

    /// The kind of a Quadlet file extension.
    pub fn from_ext(ext: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.table() == ext)
    }

    /// The object behind a unit name: `net-network.service` -> (Network, `net`).
    /// A name with no kind's suffix is a container's.
    pub fn of_unit(unit: &str) -> (Kind, &str) {
        let base = unit.strip_suffix(".service").unwrap_or(unit);
        Kind::ALL
            .into_iter()
            .filter(|k| *k != Kind::Container)
            .find_map(|k| base.strip_suffix(k.unit_suffix()).map(|n| (k, n)))
            .unwrap_or((Kind::Container, base))
    }
}

/// The top-level tables of a spec file (`Kind::table` of every kind).
pub const TABLES: [&str; Kind::ALL.len()] = {
    let mut out = [""; Kind::ALL.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = Kind::ALL[i].table();
        i += 1;
    }
    out
};

/// Unit-name helpers shared by render, reconcile and status.
pub mod units {
    use super::Kind;

    pub fn container(name: &str) -> String {
        Kind::Container.unit(name)
    }
    pub fn network(name: &str) -> String {
        Kind::Network.unit(name)
    }
    pub fn volume(name: &str) -> String {
        Kind::Volume.unit(name)
    }
    pub fn pod(name: &str) -> String {
        Kind::Pod.unit(name)
    }
    pub fn image(name: &str) -> String {
        Kind::Image.unit(name)
    }
}

impl SpecSet {
    /// Containers in dependency order (requires/after/wants before dependents),
    /// ties broken by name, so the order is deterministic.
    /// Validation guarantees there is no cycle.
    pub fn containers_in_order(&self) -> Vec<&Container> {
        let mut done: std::collections::BTreeSet<&str> = Default::default();
        let mut out = Vec::new();
        fn visit<'a>(
            set: &'a SpecSet,
            name: &'a str,
            done: &mut std::collections::BTreeSet<&'a str>,
            out: &mut Vec<&'a Container>,
        ) {
            if done.contains(name) {
                return;
            }
            let Some(c) = set.containers.get(name) else {
                return;
            };
            done.insert(name);
            for dep in c.requires.iter().chain(&c.after).chain(&c.wants) {
                visit(set, dep, done, out);
            }
            out.push(c);
        }
        for name in self.containers.keys() {
            visit(self, name, &mut done, &mut out);
        }
        out
    }
}
