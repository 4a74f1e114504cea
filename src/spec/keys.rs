//! The spec keys, each declared once: its table, name, type and validator,
//! the Quadlet (or systemd) key and section it renders, and its
//! documentation. Parsing (the accepted key lists, did-you-mean, and the
//! generic reading of every key whose type is not [`Ty::Custom`]),
//! rendering (every generic key, version-gated by the Quadlet key's first
//! Podman release in `render::quadlet_keys`), the escape hatch's refusals
//! ("use `cap_add`") and the reference docs (deploy-agent-specs(5), the
//! README table) all read [`KEYS`].
//!
//! Adding a key: one entry here (with a validator from `values.rs`) plus
//! tests. Keys with [`Ty::Custom`] are read by their own code in `parse.rs`
//! (cross-checked values, references) and rendered by the templates.

use super::values;

/// The table a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Container,
    Resources,
    Health,
    Secret,
    Network,
    Volume,
    Pod,
    Image,
}

/// A section of a rendered unit file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Unit,
    Container,
    Pod,
    Network,
    Volume,
    Image,
    Service,
    Install,
}

impl Section {
    pub fn name(self) -> &'static str {
        match self {
            Section::Unit => "Unit",
            Section::Container => "Container",
            Section::Pod => "Pod",
            Section::Network => "Network",
            Section::Volume => "Volume",
            Section::Image => "Image",
            Section::Service => "Service",
            Section::Install => "Install",
        }
    }

    /// A section systemd reads itself (Quadlet copies it to the service).
    pub fn is_systemd(self) -> bool {
        matches!(self, Section::Unit | Section::Service | Section::Install)
    }
}

/// A check of one string (an element of a list, a value of a table).
pub type Check = fn(&str) -> Result<(), String>;

/// How a key's TOML value is read.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    /// Read by its own code in `parse.rs`.
    Custom,
    Str(Check),
    /// An array of strings, each checked.
    List(Check),
    /// A table: keys checked by the first, values (as text) by the second.
    Map(Check, Check),
    Bool,
    /// `true`, `false`, or one of these strings.
    BoolOr(&'static [&'static str]),
    Int(i64, i64),
    Duration,
    Size,
    /// A non-empty exec-form array.
    Argv,
    /// One of these strings.
    Choice(&'static [&'static str]),
}

/// How a generic key's values are written (see `render/escape.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Esc {
    /// A single value Quadlet takes raw into `ExecStart=`.
    Raw,
    /// A value Quadlet splits into words.
    Word,
    /// A raw value that may start with a systemd path specifier (`%h/...`).
    Path,
    /// A word that may start with a systemd path specifier.
    PathWord,
    /// A systemd setting without specifier expansion (`RestartSec=`).
    Plain,
    /// An argument vector as JSON (`HealthStartupCmd=`).
    Json,
}

/// One spec key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub table: Table,
    pub name: &'static str,
    pub ty: Ty,
    /// The key it renders and its section; `None`: the agent's own.
    pub quadlet: Option<(Section, &'static str)>,
    /// Type and default, for the docs: "duration, default `30s`".
    pub kind: &'static str,
    pub doc: &'static str,
}

impl Key {
    /// Read and rendered from this entry alone (not [`Ty::Custom`]).
    pub fn is_generic(&self) -> bool {
        !matches!(self.ty, Ty::Custom)
    }

    /// How a generic key's values are written.
    pub fn esc(&self) -> Esc {
        match self.quadlet {
            Some((s, _)) if s.is_systemd() => Esc::Plain,
            Some((_, k)) => quadlet_esc(k),
            None => Esc::Raw,
        }
    }
}

/// Quadlet keys whose values it splits into words (`LookupAllStrv`,
/// `LookupAllArgs`, `LookupAllKeyVal` in `quadlet.go`); the others it takes raw.
pub const SPLIT_KEYS: &[&str] = &[
    "AddCapability",
    "DropCapability",
    "AddDevice",
    "Sysctl",
    "UIDMap",
    "GIDMap",
    "LogOpt",
    "Mask",
    "Unmask",
    "EnvironmentFile",
    "Secret",
    "Mount",
    "PodmanArgs",
    "Annotation",
    "Options",
    "Label",
    "Environment",
    "Exec",
    "GlobalArgs",
];

/// Split keys whose values are paths that may start with a specifier.
const PATH_WORD_KEYS: &[&str] = &["AddDevice", "Mount"];

/// Raw keys whose values are host paths that may start with a specifier.
const PATH_KEYS: &[&str] = &["AuthFile", "CertDir", "DecryptionKey"];

fn quadlet_esc(k: &str) -> Esc {
    match k {
        "HealthStartupCmd" => Esc::Json,
        _ if PATH_WORD_KEYS.contains(&k) => Esc::PathWord,
        _ if PATH_KEYS.contains(&k) => Esc::Path,
        _ if SPLIT_KEYS.contains(&k) => Esc::Word,
        _ => Esc::Raw,
    }
}

/// The key `name` of `table`.
pub fn find(table: Table, name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.table == table && k.name == name)
}

/// The names of `table`'s keys, in declaration order.
pub fn names(table: Table) -> Vec<&'static str> {
    of(table).map(|k| k.name).collect()
}

/// The keys of `table`, in declaration order.
pub fn of(table: Table) -> impl Iterator<Item = &'static Key> {
    KEYS.iter().filter(move |k| k.table == table)
}

/// The typed key that renders `section` `quadlet_key` for `table`, if any:
/// the escape hatch refuses it and names this key instead.
pub fn typed_for(table: Table, section: Section, quadlet_key: &str) -> Option<&'static Key> {
    let tables: &[Table] = match table {
        Table::Container => &[Table::Container, Table::Resources, Table::Health],
        t => std::slice::from_ref(match t {
            Table::Pod => &Table::Pod,
            Table::Network => &Table::Network,
            Table::Image => &Table::Image,
            _ => &Table::Volume,
        }),
    };
    KEYS.iter().find(|k| {
        tables.contains(&k.table)
            && k.quadlet
                .is_some_and(|(s, q)| s == section && q.eq_ignore_ascii_case(quadlet_key))
    })
}

const fn key(
    table: Table,
    name: &'static str,
    ty: Ty,
    quadlet: Option<(Section, &'static str)>,
    kind: &'static str,
    doc: &'static str,
) -> Key {
    Key {
        table,
        name,
        ty,
        quadlet,
        kind,
        doc,
    }
}

const fn c(s: &'static str) -> Option<(Section, &'static str)> {
    Some((Section::Container, s))
}
const fn svc(s: &'static str) -> Option<(Section, &'static str)> {
    Some((Section::Service, s))
}
const fn unit(s: &'static str) -> Option<(Section, &'static str)> {
    Some((Section::Unit, s))
}
const fn p(s: &'static str) -> Option<(Section, &'static str)> {
    Some((Section::Pod, s))
}
const fn i(s: &'static str) -> Option<(Section, &'static str)> {
    Some((Section::Image, s))
}

fn any(_: &str) -> Result<(), String> {
    Ok(())
}

use Table::{
    Container as C, Health as H, Image as I, Network as N, Pod as P, Resources as R, Volume as V,
};

/// Every spec key. Within a table, the order is the docs' order.
pub static KEYS: &[Key] = &[
    Key {
        table: Table::Container,
        name: "image",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "Image")),
        kind: "string or `{ unit = \"NAME\" }`, required",
        doc: "The image reference, e.g. `docker.io/library/postgres:16`; no spaces. \
               Renders `Image=`. `{ unit = \"NAME\" }` (or `image.unit = \"NAME\"`): the \
               image an `[image.NAME]` pulls, which Quadlet pulls before the container \
               starts; renders `Image=NAME.image` (Podman 4.8).",
    },
    Key {
        table: Table::Container,
        name: "command",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "Exec")),
        kind: "exec form, default: the image's",
        doc: "The command and its arguments. Renders `Exec=`.",
    },
    Key {
        table: Table::Container,
        name: "entrypoint",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "Entrypoint")),
        kind: "exec form, default: the image's",
        doc: "Replaces the image's entrypoint. Renders `Entrypoint=` (Podman 5.0).",
    },
    Key {
        table: Table::Container,
        name: "ports",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "PublishPort")),
        kind: "array of strings, default none",
        doc: "Published ports, `[IP:]HOST:CONTAINER[/tcp|/udp]`: `\"8080:80\"` (all \
               addresses), `\"127.0.0.1:8080:80\"`, `\"[::1]:8080:80\"`, \
               `\"5353:53/udp\"`. Ports are 1 to 65535. Renders `PublishPort=`.",
    },
    Key {
        table: Table::Container,
        name: "volumes",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "Volume")),
        kind: "array of strings, default none",
        doc: "Mounts, `SOURCE:TARGET[:OPTIONS]`. SOURCE is a volume declared with \
               `[volume.SOURCE]` or an absolute host path, TARGET an absolute path in the \
               container, OPTIONS a comma-separated list of Podman's (`ro`, `rw`, `z`, \
               `Z`, `U`, ...; not both `ro` and `rw`). A host path mounted `ro` is an \
               input: when its contents change, the unit is restarted. Renders `Volume=`.",
    },
    Key {
        table: Table::Container,
        name: "networks",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "Network")),
        kind: "array of strings, default: Podman's default network",
        doc: "Networks to join: a network declared with `[network.NAME]`, one declared \
               with `external = true`, or one of Podman's modes (`host`, `none`, \
               `pasta`, ...). A name that is none of these is an error, never a network \
               created on the fly. Renders `Network=`.",
    },
    Key {
        table: Table::Container,
        name: "env",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "Environment")),
        kind: "table of strings, default none",
        doc: "Environment variables; names are letters, digits and `_`, not starting \
               with a digit. Renders `Environment=`.",
    },
    Key {
        table: Table::Container,
        name: "env_files",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "EnvironmentFile")),
        kind: "array of absolute paths, default none",
        doc: "Files of `NAME=value` lines read when the container starts. They are \
               inputs: when one changes, the unit is restarted. Renders \
               `EnvironmentFile=`.",
    },
    Key {
        table: Table::Container,
        name: "secrets",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "Secret")),
        kind: "array of tables, default none",
        doc: "Podman secrets given to the container; see Secrets.",
    },
    Key {
        table: Table::Container,
        name: "labels",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "Label")),
        kind: "table of strings, default none",
        doc: "Container labels; keys without spaces, `=` or control characters. Renders \
               `Label=`.",
    },
    Key {
        table: Table::Container,
        name: "user",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "User")),
        kind: "string, default: the image's",
        doc: "The user (and group) in the container, a name or `UID[:GID]`, no spaces. \
               Renders `User=`; before Podman 4.8 only a numeric `UID[:GID]`.",
    },
    Key {
        table: Table::Container,
        name: "workdir",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "WorkingDir")),
        kind: "absolute path, default: the image's",
        doc: "The working directory in the container. Renders `WorkingDir=` (Podman 4.6).",
    },
    Key {
        table: Table::Container,
        name: "read_only",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "ReadOnly")),
        kind: "boolean, default `false`",
        doc: "Mount the container's root file system read-only. Renders `ReadOnly=true`.",
    },
    Key {
        table: Table::Container,
        name: "init",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "RunInit")),
        kind: "boolean, default `false`",
        doc: "Run an init process as PID 1 in the container: signals reach the service \
               and zombies are reaped. Renders `RunInit=true`.",
    },
    Key {
        table: Table::Container,
        name: "pull",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "Pull")),
        kind: "string, default `missing` (Podman's)",
        doc: "When to pull the image at start: `missing`, `always`, `newer` or `never`. \
               Renders `Pull=` (Podman 4.6).",
    },
    Key {
        table: Table::Container,
        name: "auto_update",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "AutoUpdate")),
        kind: "string, default none",
        doc: "`registry` or `local`: let `podman auto-update` update the container. \
               Renders `AutoUpdate=` (Podman 4.6).",
    },
    Key {
        table: Table::Container,
        name: "restart",
        ty: Ty::Custom,
        quadlet: Some((Section::Service, "Restart")),
        kind: "string, default `on-failure`",
        doc: "When systemd restarts the service: `always`, `on-failure` or `no`. Renders \
               `Restart=` in `[Service]`.",
    },
    Key {
        table: Table::Container,
        name: "start_timeout",
        ty: Ty::Custom,
        quadlet: Some((Section::Service, "TimeoutStartSec")),
        kind: "duration, default: systemd's",
        doc: "How long the service may take to start (image pull included). Renders \
               `TimeoutStartSec=`.",
    },
    Key {
        table: Table::Container,
        name: "stop_timeout",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "StopTimeout")),
        kind: "duration, default 10 seconds (Podman's)",
        doc: "How long the container gets to stop after SIGTERM before it is killed, in \
               whole seconds (rounded up). Renders `StopTimeout=` (before Podman 5.0: \
               `--stop-timeout`) and `TimeoutStopSec=` 30 seconds longer, so that systemd \
               does not kill Podman while it kills the container and cleans up.",
    },
    Key {
        table: Table::Container,
        name: "requires",
        ty: Ty::Custom,
        quadlet: Some((Section::Unit, "Requires")),
        kind: "array of container names, default none",
        doc: "Containers this one needs: they start first, and when one stops this one \
               stops too. Renders `Requires=` and `After=` on `NAME.service`.",
    },
    Key {
        table: Table::Container,
        name: "after",
        ty: Ty::Custom,
        quadlet: Some((Section::Unit, "After")),
        kind: "array of container names, default none",
        doc: "Containers that start first, without a dependency. Renders `After=`.",
    },
    Key {
        table: Table::Container,
        name: "wants",
        ty: Ty::Custom,
        quadlet: Some((Section::Unit, "Wants")),
        kind: "array of container names, default none",
        doc: "A weak dependency: starting this one starts those too, but their failure \
               does not matter. Renders `Wants=`.",
    },
    Key {
        table: Table::Container,
        name: "resources",
        ty: Ty::Custom,
        quadlet: None,
        kind: "table",
        doc: "Limits; see Resources.",
    },
    Key {
        table: Table::Container,
        name: "health",
        ty: Ty::Custom,
        quadlet: None,
        kind: "table",
        doc: "The health check; see Health checks.",
    },
    // ---- issue 12: keys real Quadlet files use (names: Compose's, else Quadlet's)
    key(C, "pod", Ty::Custom, c("Pod"), "string, default none",
        "A pod declared with `[pod.NAME]` to join: the containers of a pod share its network \
         namespace (they talk over `localhost`) and its ports. Renders `Pod=NAME.pod` (Podman 5.0)."),
    key(C, "cap_add", Ty::List(values::check_capability), c("AddCapability"),
        "array of strings, default none",
        "Capabilities to add, e.g. `\"NET_ADMIN\"` (the `CAP_` prefix is optional)."),
    key(C, "cap_drop", Ty::List(values::check_capability), c("DropCapability"),
        "array of strings, default none",
        "Capabilities to drop, e.g. `\"ALL\"`."),
    key(C, "no_new_privileges", Ty::Bool, c("NoNewPrivileges"), "boolean, default `false`",
        "Processes in the container cannot gain privileges (setuid, file capabilities)."),
    key(C, "devices", Ty::List(values::check_device), c("AddDevice"),
        "array of strings, default none",
        "Host devices, `HOST[:CONTAINER][:PERMS]` (PERMS of `r`, `w`, `m`), e.g. \
         `\"/dev/ttyUSB0\"`."),
    key(C, "tmpfs", Ty::List(values::check_tmpfs), c("Tmpfs"),
        "array of strings, default none",
        "tmpfs mounts, `/PATH[:OPTIONS]`, e.g. `\"/run:size=64M\"`."),
    key(C, "mounts", Ty::List(values::check_typed_mount), c("Mount"),
        "array of strings, default none",
        "Typed mounts in Podman's `--mount` syntax, `type=...,source=...,target=...`."),
    key(C, "userns", Ty::Str(values::check_userns), c("UserNS"), "string, default Podman's",
        "The user namespace: `keep-id` (optionally `keep-id:uid=1000,gid=1000`), `auto`, \
         `host`, `nomap`, `private`, `ns:PATH`."),
    key(C, "uid_map", Ty::List(values::check_id_map), c("UIDMap"),
        "array of strings, default none", "UID mappings, `CONTAINER:HOST:COUNT`."),
    key(C, "gid_map", Ty::List(values::check_id_map), c("GIDMap"),
        "array of strings, default none", "GID mappings, `CONTAINER:HOST:COUNT`."),
    key(C, "group_add", Ty::List(values::check_word), c("GroupAdd"),
        "array of strings, default none",
        "Supplementary groups; `\"keep-groups\"` keeps the user's groups (crun)."),
    key(C, "security_label_disable", Ty::Bool, c("SecurityLabelDisable"),
        "boolean, default `false`", "Turn SELinux label separation off for the container."),
    key(C, "timezone", Ty::Str(values::check_word), c("Timezone"), "string, default the image's",
        "The container's time zone, e.g. `\"Europe/Berlin\"` or `\"local\"`."),
    key(C, "notify", Ty::BoolOr(&["healthy"]), c("Notify"), "boolean or `\"healthy\"`, default `false`",
        "`true`: the container itself sends sd_notify READY; `\"healthy\"`: the service is \
         started once the health check passes (Podman 5.0)."),
    key(C, "hostname", Ty::Str(values::check_hostname), c("HostName"), "string, default the container's id",
        "The container's host name."),
    key(C, "network_aliases", Ty::List(values::check_hostname), c("NetworkAlias"),
        "array of strings, default none", "Further names of the container on its networks."),
    key(C, "dns", Ty::List(values::check_ip), c("DNS"), "array of IP addresses, default none",
        "DNS servers."),
    key(C, "dns_search", Ty::List(values::check_hostname), c("DNSSearch"),
        "array of strings, default none", "DNS search domains."),
    key(C, "dns_options", Ty::List(values::check_word), c("DNSOption"),
        "array of strings, default none", "resolv.conf options, e.g. `\"ndots:2\"`."),
    key(C, "extra_hosts", Ty::List(values::check_extra_host), c("AddHost"),
        "array of strings, default none",
        "`/etc/hosts` entries, `HOST:IP`, e.g. `\"db.local:10.0.0.5\"`."),
    key(C, "ulimits", Ty::Map(values::check_ulimit_name, values::check_ulimit), c("Ulimit"),
        "table, default none",
        "Resource limits, `NAME = \"SOFT[:HARD]\"` or an integer, e.g. `{ nofile = \"1024:4096\" }`."),
    key(C, "sysctls", Ty::Map(values::check_sysctl_key, any), c("Sysctl"),
        "table of strings, default none", "Namespaced kernel parameters, e.g. `{ \"net.ipv4.ip_forward\" = \"1\" }`."),
    key(C, "shm_size", Ty::Size, c("ShmSize"), "size, default Podman's (64M)", "The size of `/dev/shm`."),
    key(C, "log_driver", Ty::Choice(&["journald", "k8s-file", "json-file", "none", "passthrough", "passthrough-tty"]),
        c("LogDriver"), "string, default Podman's",
        "Where the container's output goes: `journald`, `k8s-file` (`json-file` is Podman's \
         other name for it), `none`, `passthrough`, `passthrough-tty`."),
    key(C, "log_opt", Ty::Map(values::check_opt_key, values::check_word), c("LogOpt"),
        "table of strings, default none", "Log driver options, e.g. `{ tag = \"web\" }`."),
    key(C, "stop_signal", Ty::Str(values::check_signal), c("StopSignal"), "string, default `SIGTERM`",
        "The signal that stops the container."),
    key(C, "annotations", Ty::Map(values::check_label_key, any), c("Annotation"),
        "table of strings, default none", "OCI annotations."),
    key(C, "mask", Ty::List(values::check_container_path), c("Mask"),
        "array of absolute paths, default none", "Paths in the container to mask."),
    key(C, "restart_delay", Ty::Duration, svc("RestartSec"), "duration, default systemd's (100ms)",
        "How long systemd waits before restarting the service."),
    key(C, "restart_steps", Ty::Int(1, 1000), svc("RestartSteps"), "integer, default none",
        "Steps in which the restart delay grows up to `restart_max_delay`."),
    key(C, "restart_max_delay", Ty::Duration, svc("RestartMaxDelaySec"), "duration, default none",
        "The longest restart delay."),
    key(C, "start_limit_interval", Ty::Duration, unit("StartLimitIntervalSec"),
        "duration, default systemd's (10s)", "The window for `start_limit_burst`."),
    key(C, "start_limit_burst", Ty::Int(0, 100_000), unit("StartLimitBurst"),
        "integer, default systemd's (5)", "Starts within `start_limit_interval` before systemd gives up."),
    key(C, "systemd_stop_timeout", Ty::Duration, svc("TimeoutStopSec"), "duration, default none",
        "How long systemd waits for the service to stop, without changing Podman's \
         `stop_timeout`; replaces the `TimeoutStopSec=` that `stop_timeout` implies."),
    key(C, "podman_args", Ty::List(values::check_word), c("PodmanArgs"),
        "array of strings, default none",
        "Further `podman run` arguments, each element one argument, e.g. \
         `[\"--cpuset-cpus=0,1\"]`. The long tail; prefer a typed key."),
    key(C, "expand_env", Ty::List(values::check_env_name_ok), None,
        "array of variable names, default none",
        "Variables of the service's environment (`[container.NAME.service] Environment=` or \
         `EnvironmentFile=`) that systemd substitutes where `${NAME}` is written in `command`, \
         `env` values and `podman_args`. Any other `$` is kept as written."),
    key(C, "quadlet", Ty::Custom, None, "table, default none",
        "Raw `[Container]` keys; see Escape hatch."),
    key(C, "unit", Ty::Custom, None, "table, default none", "Raw `[Unit]` keys; see Escape hatch."),
    key(C, "service", Ty::Custom, None, "table, default none", "Raw `[Service]` keys; see Escape hatch."),
    key(C, "install", Ty::Custom, None, "table, default none", "Raw `[Install]` keys; see Escape hatch."),
    Key {
        table: Table::Resources,
        name: "memory",
        ty: Ty::Custom,
        quadlet: Some((Section::Service, "MemoryMax")),
        kind: "size, default none",
        doc: "The hard memory limit. Renders `MemoryMax=` in `[Service]` (and `Memory=` \
               from Podman 5.5).",
    },
    Key {
        table: Table::Resources,
        name: "memory_reservation",
        ty: Ty::Custom,
        quadlet: Some((Section::Service, "MemoryLow")),
        kind: "size, default none",
        doc: "Memory the service keeps under pressure, at most `memory`. Renders \
               `MemoryLow=` (enforced on cgroup v2 only). The reservations of all \
               services must fit the host.",
    },
    Key {
        table: Table::Resources,
        name: "cpus",
        ty: Ty::Custom,
        quadlet: Some((Section::Service, "CPUQuota")),
        kind: "number, default none",
        doc: "Cores, more than 0 and at most 4096, in steps of 0.01: `0.5` is half a \
               core. Renders `CPUQuota=` (`cpus = 0.5` is `CPUQuota=50%`).",
    },
    Key {
        table: Table::Resources,
        name: "pids",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "PidsLimit")),
        kind: "integer, default none",
        doc: "The most processes the container may have, 1 to 4194304. Renders \
               `PidsLimit=` (Podman 4.7).",
    },
    key(R, "memory_high", Ty::Size, svc("MemoryHigh"), "size, default none",
        "Memory use above which the service is throttled and reclaimed."),
    key(R, "memory_swap_max", Ty::Size, svc("MemorySwapMax"), "size, default none",
        "The most swap the service may use."),
    key(R, "cpu_weight", Ty::Int(1, 10_000), svc("CPUWeight"), "integer, default systemd's (100)",
        "The service's share of CPU time under contention, 1 to 10000."),
    key(R, "oom_policy", Ty::Choice(&["continue", "stop", "kill"]), svc("OOMPolicy"),
        "string, default systemd's", "What systemd does when the OOM killer kills a process of the service."),
    Key {
        table: Table::Health,
        name: "cmd",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "HealthCmd")),
        kind: "exec form",
        doc: "A command Podman runs inside the container; exit status 0 is healthy. \
               Docker's forms `[\"CMD\", ...]` and `[\"CMD-SHELL\", \"...\"]` work too; a \
               first word `NONE` is an error. Renders `HealthCmd=` and the other \
               `Health*=` keys (Podman 4.5).",
    },
    Key {
        table: Table::Health,
        name: "http",
        ty: Ty::Custom,
        quadlet: None,
        kind: "string",
        doc: "An `http://` or `https://` URL the agent requests; the answer's status \
               must be `expect_status`. Redirects are not followed and proxy settings in \
               the environment are ignored. HTTPS is verified against the system's roots \
               (and `ca_file`).",
    },
    Key {
        table: Table::Health,
        name: "tcp",
        ty: Ty::Custom,
        quadlet: None,
        kind: "string",
        doc: "`HOST:PORT` the agent connects to; healthy when the connection succeeds.",
    },
    Key {
        table: Table::Health,
        name: "expect_status",
        ty: Ty::Custom,
        quadlet: None,
        kind: "integer, default `200`",
        doc: "The HTTP status an `http` check expects, 100 to 599.",
    },
    Key {
        table: Table::Health,
        name: "ca_file",
        ty: Ty::Custom,
        quadlet: None,
        kind: "absolute path, default none",
        doc: "A PEM CA certificate an `https://` check trusts besides the system's roots \
               (for a self-signed certificate).",
    },
    Key {
        table: Table::Health,
        name: "interval",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "HealthInterval")),
        kind: "duration, default `30s`",
        doc: "Time between checks; more than zero.",
    },
    Key {
        table: Table::Health,
        name: "timeout",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "HealthTimeout")),
        kind: "duration, default `5s`",
        doc: "How long one check may take; more than zero, at most `interval`.",
    },
    Key {
        table: Table::Health,
        name: "retries",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "HealthRetries")),
        kind: "integer, default `3`",
        doc: "Failed checks in a row that make the unit failed, 1 to 1000.",
    },
    Key {
        table: Table::Health,
        name: "start_period",
        ty: Ty::Custom,
        quadlet: Some((Section::Container, "HealthStartPeriod")),
        kind: "duration, default `0s`",
        doc: "Time after a start during which failures do not count.",
    },
    Key {
        table: Table::Health,
        name: "on_failure",
        ty: Ty::Custom,
        quadlet: None,
        kind: "string, default `restart`",
        doc: "What the agent does when the unit fails its checks. `restart`: restart it \
               after `restart_delay`, then twice as long each time (10 s, 20 s, 40 s, ... by \
               default, at most 5 minutes), at most `max_restarts` times an hour, then give \
               up and say so. `rollback`: if this version never became healthy, \
               put the container back on its version from the newest earlier generation \
               that was healthy, and keep it there until its spec changes. `none`: only \
               report.",
    },
    Key {
        table: Table::Health,
        name: "restart_delay",
        ty: Ty::Custom,
        quadlet: None,
        kind: "duration, default `10s`",
        doc: "With `on_failure = \"restart\"`: the wait before the first restart; each \
               further restart within the hour waits twice as long, at most 5 minutes.",
    },
    Key {
        table: Table::Health,
        name: "max_restarts",
        ty: Ty::Custom,
        quadlet: None,
        kind: "integer, default `5`",
        doc: "With `on_failure = \"restart\"`: restarts within an hour before the agent \
               gives up, 1 to 100.",
    },
    key(H, "podman_on_failure", Ty::Choice(&["none", "kill", "restart", "stop"]), c("HealthOnFailure"),
        "string, default `none`",
        "What Podman itself does when a `cmd` check turns unhealthy: `none`, `kill`, `restart`, \
         `stop` (besides the agent's `on_failure`)."),
    key(H, "startup_cmd", Ty::Argv, c("HealthStartupCmd"), "exec form, default none",
        "A startup check Podman runs until it passes once, before the `cmd` check."),
    key(H, "startup_interval", Ty::Duration, c("HealthStartupInterval"), "duration, default Podman's",
        "Time between startup checks."),
    key(H, "startup_retries", Ty::Int(1, 1000), c("HealthStartupRetries"), "integer, default Podman's",
        "Failed startup checks before the container is restarted."),
    key(H, "startup_success", Ty::Int(1, 1000), c("HealthStartupSuccess"), "integer, default Podman's",
        "Passed startup checks needed before the `cmd` check starts."),
    Key {
        table: Table::Secret,
        name: "name",
        ty: Ty::Custom,
        quadlet: None,
        kind: "string, required",
        doc: "The Podman secret's name; the rule of NAMES applies.",
    },
    Key {
        table: Table::Secret,
        name: "type",
        ty: Ty::Custom,
        quadlet: None,
        kind: "string, default `mount`",
        doc: "`env`: the value goes into an environment variable; `mount`: into a file.",
    },
    Key {
        table: Table::Secret,
        name: "target",
        ty: Ty::Custom,
        quadlet: None,
        kind: "string, default: the secret's name (Podman's)",
        doc: "For `env`, the variable's name. For `mount`, a file name (under \
               `/run/secrets/`) or an absolute path.",
    },
    Key {
        table: Table::Secret,
        name: "source",
        ty: Ty::Custom,
        quadlet: None,
        kind: "absolute path, default none",
        doc: "A file with the value. The agent creates or replaces the Podman secret from \
               it before starting the units that use it, and restarts them when it \
               changes. It must not be readable by group or others (`chmod 600`). \
               Without `source`, the secret must exist (`podman secret create`).",
    },
    Key {
        table: Table::Network,
        name: "subnet",
        ty: Ty::Custom,
        quadlet: Some((Section::Network, "Subnet")),
        kind: "string, default: one Podman picks",
        doc: "The subnet in CIDR notation, e.g. `\"172.20.0.0/16\"`. Renders `Subnet=`.",
    },
    Key {
        table: Table::Network,
        name: "gateway",
        ty: Ty::Custom,
        quadlet: Some((Section::Network, "Gateway")),
        kind: "string, default: Podman's",
        doc: "The gateway address, inside `subnet` (which it needs). Renders `Gateway=`.",
    },
    Key {
        table: Table::Network,
        name: "internal",
        ty: Ty::Custom,
        quadlet: Some((Section::Network, "Internal")),
        kind: "boolean, default `false`",
        doc: "No route out of the network. Renders `Internal=true`.",
    },
    Key {
        table: Table::Network,
        name: "ipv6",
        ty: Ty::Custom,
        quadlet: Some((Section::Network, "IPv6")),
        kind: "boolean, default `false`",
        doc: "Enable IPv6. Renders `IPv6=true`.",
    },
    Key {
        table: Table::Network,
        name: "driver",
        ty: Ty::Custom,
        quadlet: Some((Section::Network, "Driver")),
        kind: "string, default `bridge`",
        doc: "`bridge`, `macvlan` or `ipvlan`. Renders `Driver=`.",
    },
    Key {
        table: Table::Network,
        name: "labels",
        ty: Ty::Custom,
        quadlet: Some((Section::Network, "Label")),
        kind: "table of strings, default none",
        doc: "Network labels. Renders `Label=`.",
    },
    Key {
        table: Table::Network,
        name: "external",
        ty: Ty::Custom,
        quadlet: None,
        kind: "boolean, default `false`",
        doc: "The network exists and is managed outside deploy-agent: containers may \
               join it by name, nothing is rendered for it. Takes no other key.",
    },
    key(N, "options", Ty::Map(values::check_opt_key, values::check_word), Some((Section::Network, "Options")),
        "table of strings, default none", "Driver options, e.g. `{ mtu = \"1400\" }`."),
    key(N, "delete_on_stop", Ty::Bool, Some((Section::Network, "NetworkDeleteOnStop")),
        "boolean, default `false`", "Remove the network when its service stops."),
    key(N, "dns", Ty::List(values::check_ip), Some((Section::Network, "DNS")),
        "array of IP addresses, default none", "DNS servers of the network."),
    key(N, "quadlet", Ty::Custom, None, "table, default none", "Raw `[Network]` keys; see Escape hatch."),
    key(N, "unit", Ty::Custom, None, "table, default none", "Raw `[Unit]` keys; see Escape hatch."),
    key(N, "service", Ty::Custom, None, "table, default none", "Raw `[Service]` keys; see Escape hatch."),
    key(N, "install", Ty::Custom, None, "table, default none", "Raw `[Install]` keys; see Escape hatch."),
    Key {
        table: Table::Volume,
        name: "driver",
        ty: Ty::Custom,
        quadlet: Some((Section::Volume, "Driver")),
        kind: "string, default `local`",
        doc: "`local` or `image`. Renders `Driver=` (Podman 4.8).",
    },
    Key {
        table: Table::Volume,
        name: "labels",
        ty: Ty::Custom,
        quadlet: Some((Section::Volume, "Label")),
        kind: "table of strings, default none",
        doc: "Volume labels. Renders `Label=`.",
    },
    key(V, "type", Ty::Str(values::check_word), Some((Section::Volume, "Type")), "string, default none",
        "The file system type of `device`, e.g. `\"nfs\"`."),
    key(V, "device", Ty::Str(values::check_word), Some((Section::Volume, "Device")), "string, default none",
        "The device to mount, e.g. `\"nas.local:/export/media\"`."),
    key(V, "options", Ty::Str(values::check_word), Some((Section::Volume, "Options")), "string, default none",
        "Mount options of `device`, e.g. `\"addr=10.0.0.2,rw\"`."),
    key(V, "quadlet", Ty::Custom, None, "table, default none", "Raw `[Volume]` keys; see Escape hatch."),
    key(V, "unit", Ty::Custom, None, "table, default none", "Raw `[Unit]` keys; see Escape hatch."),
    key(V, "service", Ty::Custom, None, "table, default none", "Raw `[Service]` keys; see Escape hatch."),
    key(V, "install", Ty::Custom, None, "table, default none", "Raw `[Install]` keys; see Escape hatch."),
    key(P, "ports", Ty::Custom, p("PublishPort"), "array of strings, default none",
        "Published ports of the pod, as for a container's `ports`."),
    key(P, "networks", Ty::Custom, p("Network"), "array of strings, default Podman's",
        "Networks the pod joins, as for a container's `networks`."),
    key(P, "volumes", Ty::Custom, p("Volume"), "array of strings, default none",
        "Mounts every container of the pod gets, as for a container's `volumes`."),
    key(P, "labels", Ty::Custom, None, "table of strings, default none",
        "Pod labels. Renders `PodmanArgs=--label=...`."),
    key(P, "hostname", Ty::Str(values::check_hostname), p("HostName"), "string, default none",
        "The pod's host name."),
    key(P, "userns", Ty::Str(values::check_userns), p("UserNS"), "string, default Podman's",
        "The pod's user namespace, as for a container's `userns`."),
    key(P, "network_aliases", Ty::List(values::check_hostname), p("NetworkAlias"),
        "array of strings, default none", "Further names of the pod on its networks."),
    key(P, "dns", Ty::List(values::check_ip), p("DNS"), "array of IP addresses, default none", "DNS servers."),
    key(P, "extra_hosts", Ty::List(values::check_extra_host), p("AddHost"),
        "array of strings, default none", "`/etc/hosts` entries, `HOST:IP`."),
    key(P, "podman_args", Ty::List(values::check_word), p("PodmanArgs"), "array of strings, default none",
        "Further `podman pod create` arguments."),
    key(P, "quadlet", Ty::Custom, None, "table, default none", "Raw `[Pod]` keys; see Escape hatch."),
    key(P, "unit", Ty::Custom, None, "table, default none", "Raw `[Unit]` keys; see Escape hatch."),
    key(P, "service", Ty::Custom, None, "table, default none", "Raw `[Service]` keys; see Escape hatch."),
    key(P, "install", Ty::Custom, None, "table, default none", "Raw `[Install]` keys; see Escape hatch."),
    key(I, "image", Ty::Custom, i("Image"), "string, required",
        "The image to pull, e.g. `\"docker.io/library/nginx:1.27\"`. Renders `Image=` (Podman 4.8)."),
    key(I, "all_tags", Ty::Bool, i("AllTags"), "boolean, default `false`",
        "Pull every tagged image of the repository."),
    key(I, "arch", Ty::Str(values::check_word), i("Arch"), "string, default the host's",
        "The architecture to pull, e.g. `\"arm64\"`."),
    key(I, "os", Ty::Str(values::check_word), i("OS"), "string, default the host's",
        "The operating system to pull, e.g. `\"linux\"`."),
    key(I, "variant", Ty::Str(values::check_word), i("Variant"), "string, default none",
        "The architecture variant to pull, e.g. `\"v7\"`."),
    key(I, "auth_file", Ty::Str(values::check_host_file), i("AuthFile"), "path, default Podman's",
        "The registry credentials file (`podman login --authfile`). A host path, which may \
         start with `%h`, `%t`, ... (see Specifiers)."),
    key(I, "cert_dir", Ty::Str(values::check_host_file), i("CertDir"), "path, default Podman's",
        "A directory of TLS certificates (`*.crt`, `*.cert`, `*.key`) for the registry."),
    key(I, "decryption_key", Ty::Str(values::check_host_file), i("DecryptionKey"),
        "path, default none", "The key that decrypts an encrypted image: a file, without a \
         passphrase (a passphrase would be a secret in the unit file)."),
    key(I, "tls_verify", Ty::Bool, i("TLSVerify"), "boolean, default `true`",
        "Verify the registry's certificate (`false`: an insecure registry)."),
    key(I, "image_tag", Ty::Str(values::check_word), i("ImageTag"), "string, default none",
        "The name the pulled image has when `image` is not a registry reference (an archive \
         such as `docker-archive:/srv/app.tar`); containers run this name."),
    key(I, "retry", Ty::Int(0, 1000), i("Retry"), "integer, default Podman's (3)",
        "How often a failed pull is tried again."),
    key(I, "retry_delay", Ty::Duration, i("RetryDelay"), "duration, default Podman's",
        "The delay between attempts to pull."),
    key(I, "creds", Ty::Custom, None, "refused",
        "Refused: registry credentials written into a unit file are a secret anyone who can \
         read the Quadlet directory can read. Use `auth_file`."),
    key(I, "podman_args", Ty::List(values::check_word), i("PodmanArgs"), "array of strings, default none",
        "Further `podman image pull` arguments."),
    key(I, "quadlet", Ty::Custom, None, "table, default none", "Raw `[Image]` keys; see Escape hatch."),
    key(I, "unit", Ty::Custom, None, "table, default none", "Raw `[Unit]` keys; see Escape hatch."),
    key(I, "service", Ty::Custom, None, "table, default none", "Raw `[Service]` keys; see Escape hatch."),
    key(I, "install", Ty::Custom, None, "table, default none", "Raw `[Install]` keys; see Escape hatch."),
];
