//! Agent settings: `agent.toml` plus command-line overrides, resolved into
//! concrete paths for this user (rootless) or for root.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::spec::values::{parse_duration, parse_size};

pub const DEFAULT_CONFIG: &str = "/etc/deploy-agent/agent.toml";
pub const DEFAULT_SPECS_DIR: &str = "/etc/deploy-agent/specs";
/// Largest agent.toml read (the installed one, all comments, is about 2 KiB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `PATH: cannot read: ...`, `PATH: is not a regular file: ...`, ...
    #[error(transparent)]
    Read(crate::userfile::UserFileError),
    #[error("{path}{place}: {message}")]
    Invalid {
        path: PathBuf,
        place: String,
        message: String,
    },
    #[error("cannot find the home directory: set HOME or XDG_CONFIG_HOME/XDG_STATE_HOME")]
    NoHome,
}

/// `agent.toml` as written (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    agent: RawAgent,
    #[serde(default)]
    host: RawHost,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    specs_dir: Option<String>,
    output_dir: Option<String>,
    state_dir: Option<String>,
    debounce: Option<String>,
    history: Option<u32>,
    podman_version: Option<String>,
    systemd_version: Option<toml::Spanned<String>>,
    trusted_group: Option<String>,
    allow_empty: Option<bool>,
    pull_ahead: Option<bool>,
    metrics_file: Option<String>,
    watch: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    memory: Option<toml::Value>,
    cpus: Option<f64>,
}

/// The tables of `agent.toml` and the keys each takes, read from the parser
/// itself (the serde definitions above), so that the documentation can be
/// checked against it: `(table, keys)`.
pub fn known_keys() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("agent", field_names::<RawAgent>()),
        ("host", field_names::<RawHost>()),
    ]
}

/// The field names a `#[derive(Deserialize)]` struct accepts: the list serde
/// hands to `deserialize_struct`, caught by a deserializer that reads nothing.
fn field_names<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error, Visitor};
    type E = serde::de::value::Error;
    struct Fields<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = E;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, E> {
            Err(E::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, E> {
            *self.0 = fields;
            Err(E::custom("only the field names were wanted"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

/// Overrides from the command line; they win over `agent.toml`.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub specs_dir: Option<PathBuf>,
    pub output_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
}

/// Resolved settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub specs_dir: PathBuf,
    pub output_dir: PathBuf,
    pub state_dir: PathBuf,
    pub debounce: Duration,
    pub history: u32,
    /// `podman_version` from agent.toml; `None`: detect the installed one.
    pub podman_version: Option<String>,
    /// `systemd_version` from agent.toml; `None`: the manager's, where reached.
    pub systemd_version: Option<crate::render::SystemdVersion>,
    /// Host budget; `None`: this machine's RAM / cores.
    pub host_memory: Option<u64>,
    pub host_cpus: Option<f64>,
    /// Running as root: system bus, system paths.
    pub system: bool,
    /// `trusted_group`: a group whose members may write specs (a name or
    /// a gid; looked up when the specs are read, see [`Config::trust`]).
    pub trusted_group: Option<String>,
    /// An empty specs directory may remove every service (else refused).
    pub allow_empty: bool,
    /// Pull a changed container's missing image before its unit restarts.
    pub pull_ahead: bool,
    /// Where the daemon writes its Prometheus text-format metrics, if anywhere.
    pub metrics_file: Option<PathBuf>,
    /// The daemon applies on changes to the specs and input files (else only
    /// at start, on SIGHUP and for drift: an engine runs `apply` itself).
    pub watch: bool,
}

/// Where the user's files go, from the environment (XDG base directories).
#[derive(Debug, Clone)]
pub struct Env {
    pub root: bool,
    pub home: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub xdg_state_home: Option<PathBuf>,
}

impl Env {
    pub fn from_process() -> Env {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        Env {
            root: nix::unistd::geteuid().is_root(),
            home: var("HOME"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            xdg_state_home: var("XDG_STATE_HOME"),
        }
    }

    fn expand(&self, p: &str) -> Result<PathBuf, ConfigError> {
        match p.strip_prefix("~/") {
            Some(rest) => Ok(self.home.as_ref().ok_or(ConfigError::NoHome)?.join(rest)),
            None => Ok(PathBuf::from(p)),
        }
    }

    fn default_output_dir(&self) -> Result<PathBuf, ConfigError> {
        if self.root {
            return Ok(PathBuf::from("/etc/containers/systemd/deploy-agent"));
        }
        let base = match &self.xdg_config_home {
            Some(p) => p.clone(),
            None => self
                .home
                .as_ref()
                .ok_or(ConfigError::NoHome)?
                .join(".config"),
        };
        Ok(base.join("containers/systemd/deploy-agent"))
    }

    fn default_state_dir(&self) -> Result<PathBuf, ConfigError> {
        if self.root {
            return Ok(PathBuf::from("/var/lib/deploy-agent"));
        }
        let base = match &self.xdg_state_home {
            Some(p) => p.clone(),
            None => self
                .home
                .as_ref()
                .ok_or(ConfigError::NoHome)?
                .join(".local/state"),
        };
        Ok(base.join("deploy-agent"))
    }
}

impl Config {
    /// Reads `agent.toml` (the `--config` path, or the default one if it
    /// exists) and applies the overrides.
    pub fn load(over: &Overrides, env: &Env) -> Result<Config, ConfigError> {
        let (path, required) = match &over.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        };
        // Read without blocking on a FIFO or reading a device; capped.
        let text = match crate::userfile::read_capped(&path, MAX_CONFIG_BYTES) {
            Ok(bytes) => Some(String::from_utf8(bytes).map_err(|e| ConfigError::Invalid {
                path: path.clone(),
                place: String::new(),
                message: format!("is not valid UTF-8: {}", e.utf8_error()),
            })?),
            Err(e) if !required && e.is_not_found() => None,
            Err(e) => return Err(ConfigError::Read(e)),
        };
        Self::from_text(text.as_deref().unwrap_or(""), &path, over, env)
    }

    pub fn from_text(
        text: &str,
        path: &Path,
        over: &Overrides,
        env: &Env,
    ) -> Result<Config, ConfigError> {
        let invalid = |span: Option<std::ops::Range<usize>>, message: String| {
            let place = span
                .map(|s| {
                    let (l, c) = crate::spec::line_col(text, s.start);
                    format!(":{l}:{c}")
                })
                .unwrap_or_default();
            ConfigError::Invalid {
                path: path.to_path_buf(),
                place,
                message,
            }
        };
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| invalid(e.span(), e.message().trim().to_string()))?;
        let a = raw.agent;
        let path_of = |over: &Option<PathBuf>,
                       raw: &Option<String>|
         -> Result<Option<PathBuf>, ConfigError> {
            match (over, raw) {
                (Some(p), _) => Ok(Some(p.clone())),
                (None, Some(s)) => env.expand(s).map(Some),
                (None, None) => Ok(None),
            }
        };
        let debounce = match &a.debounce {
            Some(d) => {
                parse_duration(d).map_err(|e| invalid(None, format!("agent.debounce: {e}")))?
            }
            None => Duration::from_millis(500),
        };
        let host_memory = match &raw.host.memory {
            None => None,
            Some(toml::Value::Integer(n)) if *n > 0 => Some(*n as u64),
            Some(toml::Value::String(s)) => {
                Some(parse_size(s).map_err(|e| invalid(None, format!("host.memory: {e}")))?)
            }
            Some(v) => return Err(invalid(None, format!("host.memory: invalid size {v}"))),
        };
        if let Some(c) = raw.host.cpus {
            if !(c.is_finite() && c > 0.0) {
                return Err(invalid(
                    None,
                    format!("host.cpus: {c} must be greater than 0"),
                ));
            }
        }
        let systemd_version = match &a.systemd_version {
            Some(v) => Some(systemd_version(v.get_ref()).map_err(|m| invalid(Some(v.span()), m))?),
            None => None,
        };
        if let Some(0) = a.history {
            return Err(invalid(
                None,
                "agent.history: keep at least 1 generation".into(),
            ));
        }
        Ok(Config {
            specs_dir: path_of(&over.specs_dir, &a.specs_dir)?
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SPECS_DIR)),
            output_dir: match path_of(&over.output_dir, &a.output_dir)? {
                Some(p) => p,
                None => env.default_output_dir()?,
            },
            state_dir: match path_of(&over.state_dir, &a.state_dir)? {
                Some(p) => p,
                None => env.default_state_dir()?,
            },
            debounce,
            history: a.history.unwrap_or(20),
            podman_version: a.podman_version,
            systemd_version,
            host_memory,
            host_cpus: raw.host.cpus,
            system: env.root,
            trusted_group: a.trusted_group,
            allow_empty: a.allow_empty.unwrap_or(false),
            pull_ahead: a.pull_ahead.unwrap_or(true),
            watch: a.watch.unwrap_or(true),
            metrics_file: match &a.metrics_file {
                Some(p) if !p.ends_with(".prom") => {
                    return Err(invalid(
                        None,
                        format!("agent.metrics_file: {p:?} must end in .prom (node_exporter's textfile collector reads only those)"),
                    ))
                }
                Some(p) => Some(env.expand(p)?),
                None => None,
            },
        })
    }
}

/// `agent.systemd_version`: a release deploy-agent supports.
fn systemd_version(text: &str) -> Result<crate::render::SystemdVersion, String> {
    use crate::render::SystemdVersion;
    let v = SystemdVersion::parse(text).map_err(|e| format!("agent.systemd_version: {e}"))?;
    if v < SystemdVersion::OLDEST_SUPPORTED {
        return Err(format!(
            "agent.systemd_version: systemd {v} is older than the oldest deploy-agent supports ({})",
            SystemdVersion::OLDEST_SUPPORTED
        ));
    }
    Ok(v)
}

impl Config {
    /// Whose writes to the specs the agent accepts: its own user, root,
    /// and `trusted_group` (looked up now: it may be created after the
    /// agent started).
    pub fn trust(&self) -> Result<crate::spec::Trust, String> {
        let mut t = crate::spec::Trust::this_process();
        if let Some(name) = &self.trusted_group {
            t.group = Some(group_id(name)?);
        }
        Ok(t)
    }
}

/// `trusted_group`: a group name (or a numeric gid) to its gid.
fn group_id(name: &str) -> Result<u32, String> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!(
            "agent.trusted_group: no group named {name:?} on this host"
        )),
        Err(e) => Err(format!(
            "agent.trusted_group: cannot look up group {name:?}: {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_env() -> Env {
        Env {
            root: false,
            home: Some("/home/a".into()),
            xdg_config_home: None,
            xdg_state_home: Some("/xs".into()),
        }
    }

    #[test]
    fn metrics_file_and_watch() {
        let load =
            |t: &str| Config::from_text(t, Path::new("a.toml"), &Overrides::default(), &user_env());
        let c = load("").unwrap();
        assert_eq!((c.metrics_file, c.watch), (None, true));
        let c = load("[agent]\nmetrics_file = \"~/m/deploy_agent.prom\"\nwatch = false\n").unwrap();
        assert_eq!(
            (c.metrics_file, c.watch),
            (Some(PathBuf::from("/home/a/m/deploy_agent.prom")), false)
        );
        let e = load("[agent]\nmetrics_file = \"/x/metrics.txt\"\n").unwrap_err();
        assert!(e.to_string().contains("must end in .prom"), "{e}");
    }

    #[test]
    fn defaults_for_user_and_root() {
        let c =
            Config::from_text("", Path::new("a.toml"), &Overrides::default(), &user_env()).unwrap();
        assert_eq!(c.specs_dir, Path::new("/etc/deploy-agent/specs"));
        assert_eq!(
            c.output_dir,
            Path::new("/home/a/.config/containers/systemd/deploy-agent")
        );
        assert_eq!(c.state_dir, Path::new("/xs/deploy-agent"));
        assert_eq!(c.debounce, Duration::from_millis(500));
        assert_eq!(c.history, 20);
        let root = Env {
            root: true,
            ..user_env()
        };
        let c = Config::from_text("", Path::new("a.toml"), &Overrides::default(), &root).unwrap();
        assert_eq!(
            c.output_dir,
            Path::new("/etc/containers/systemd/deploy-agent")
        );
        assert_eq!(c.state_dir, Path::new("/var/lib/deploy-agent"));
    }

    #[test]
    fn file_values_tilde_and_overrides() {
        let text = "[agent]\nspecs_dir = \"/srv/specs\"\noutput_dir = \"~/q\"\ndebounce = \"2s\"\nhistory = 5\npodman_version = \"4.9\"\n[host]\nmemory = \"512M\"\ncpus = 2\n";
        let over = Overrides {
            specs_dir: Some("/cli/specs".into()),
            ..Default::default()
        };
        let c = Config::from_text(text, Path::new("a.toml"), &over, &user_env()).unwrap();
        assert_eq!(c.specs_dir, Path::new("/cli/specs"));
        assert_eq!(c.output_dir, Path::new("/home/a/q"));
        assert_eq!(c.debounce, Duration::from_secs(2));
        assert_eq!(c.history, 5);
        assert_eq!(c.podman_version.as_deref(), Some("4.9"));
        assert_eq!(c.host_memory, Some(512 << 20));
        assert_eq!(c.host_cpus, Some(2.0));
    }

    #[test]
    fn systemd_version_is_read_and_a_bad_one_located() {
        let read = |v: &str| {
            let text = format!("[agent]\nsystemd_version = {v}\n");
            Config::from_text(
                &text,
                Path::new("a.toml"),
                &Overrides::default(),
                &user_env(),
            )
        };
        let c = read("\"252.39-1~deb12u1\"").unwrap();
        assert_eq!(c.systemd_version, Some(crate::render::SystemdVersion(252)));
        assert_eq!(read("\"257\"").unwrap().systemd_version.unwrap().0, 257);
        let none = Config::from_text("", Path::new("a.toml"), &Default::default(), &user_env());
        assert_eq!(none.unwrap().systemd_version, None);
        let e = read("\"new\"").unwrap_err().to_string();
        assert!(
            e.starts_with(
                "a.toml:2:19: agent.systemd_version: cannot read a systemd version from \"new\""
            ),
            "{e}"
        );
        let e = read("\"247\"").unwrap_err().to_string();
        assert!(
            e.starts_with("a.toml:2:19: agent.systemd_version: systemd 247 is older than"),
            "{e}"
        );
        let e = read("252").unwrap_err().to_string();
        assert!(e.starts_with("a.toml:2:19: "), "{e}");
    }

    #[test]
    fn known_keys_are_the_parsers() {
        let tables: Vec<&str> = known_keys().iter().map(|(t, _)| *t).collect();
        assert_eq!(tables, field_names::<RawConfig>());
        for (table, keys) in known_keys() {
            assert!(!keys.is_empty(), "[{table}]");
            // Each listed key is accepted in its table, and nothing else is.
            for key in keys.iter().copied().chain(["no_such_key"]) {
                let text = format!("[{table}]\n{key} = 1\n");
                let e = Config::from_text(
                    &text,
                    Path::new("a.toml"),
                    &Overrides::default(),
                    &user_env(),
                )
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
                let unknown = e.contains("unknown field");
                assert_eq!(unknown, key == "no_such_key", "{table}.{key}: {e}");
            }
        }
        assert!(known_keys()[0].1.contains(&"specs_dir"));
    }

    /// README "Agent settings": the installed `packaging/agent.toml` lists
    /// every setting, commented out. Each `# key = value` line, under the
    /// `[table]` it sits in, is compared with the parser's keys both ways;
    /// as shipped the file sets nothing, and with every such line
    /// uncommented the parser accepts it.
    #[test]
    fn the_installed_agent_toml_lists_every_key_commented_out() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/agent.toml");
        let text = std::fs::read_to_string(&path).unwrap();

        // As shipped: only table headers, no setting.
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        for (table, v) in &parsed {
            let t = v.as_table().unwrap_or_else(|| panic!("{table} = {v}"));
            assert!(
                t.is_empty(),
                "[{table}] sets {t:?}: it should be commented out"
            );
        }
        let shipped = Config::from_text(&text, &path, &Overrides::default(), &user_env());
        assert_eq!(
            shipped.unwrap(),
            Config::from_text("", &path, &Overrides::default(), &user_env()).unwrap()
        );

        // The commented-out settings: a comment line that, without its `#`,
        // is one TOML `key = value` (prose is not).
        let mut table = String::new();
        let mut listed: Vec<(String, String)> = Vec::new();
        let mut uncommented = String::new();
        for line in text.lines() {
            if let Some(h) = line.strip_prefix('[') {
                table = h.trim_end().trim_end_matches(']').to_string();
                uncommented.push_str(line);
                uncommented.push('\n');
            } else if let Some(rest) = line.strip_prefix('#') {
                let Ok(kv) = toml::from_str::<toml::Table>(rest) else {
                    continue;
                };
                let [(key, value)] = kv.iter().collect::<Vec<_>>()[..] else {
                    continue;
                };
                if value.is_table() {
                    continue; // a commented-out `[header]`
                }
                assert!(!table.is_empty(), "{line:?} is outside any table");
                listed.push((table.clone(), key.clone()));
                uncommented.push_str(rest);
                uncommented.push('\n');
            }
        }
        let mut known: Vec<(String, String)> = known_keys()
            .into_iter()
            .flat_map(|(t, keys)| keys.iter().map(move |k| (t.to_string(), k.to_string())))
            .collect();
        let mut sorted = listed.clone();
        sorted.sort();
        known.sort();
        let missing: Vec<_> = known.iter().filter(|k| !sorted.contains(k)).collect();
        let unknown: Vec<_> = sorted.iter().filter(|k| !known.contains(k)).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "packaging/agent.toml lacks {missing:?}; lists keys the parser does not take: {unknown:?}"
        );
        sorted.dedup();
        assert_eq!(sorted.len(), listed.len(), "a key listed twice: {listed:?}");

        // Uncommented, each example value is one the parser accepts.
        Config::from_text(&uncommented, &path, &Overrides::default(), &user_env())
            .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    }

    #[test]
    fn errors_name_the_file_and_place() {
        let e = Config::from_text(
            "[agent]\nspecs_dri = \"/x\"\n",
            Path::new("agent.toml"),
            &Overrides::default(),
            &user_env(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("agent.toml:2:1: unknown field `specs_dri`"),
            "{e}"
        );
        let e = Config::from_text(
            "[agent]\ndebounce = \"fast\"\n",
            Path::new("agent.toml"),
            &Overrides::default(),
            &user_env(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("agent.debounce: invalid duration"), "{e}");
        let e = Config::from_text(
            "[host]\nmemory = \"12Q\"\n",
            Path::new("agent.toml"),
            &Overrides::default(),
            &user_env(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("host.memory: invalid size"), "{e}");
    }
}
