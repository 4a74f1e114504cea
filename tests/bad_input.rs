//! The bad-input table: every kind of bad spec, and what the agent does
//! with it.
//!
//! * On the host (as root, temp dirs, no systemd needed): `validate` exits 2
//!   and prints one located error per problem, `FILE:LINE:COL: KEY: message`
//!   (only `FILE: message` for a file that has no line to point at), every
//!   line naming the file, no raw control or bidi character copied from the
//!   file to the terminal, and nothing written anywhere.
//! * Against the real user manager (tests/env): with a good spec applied
//!   and its container running, each bad spec in turn makes `apply` exit 2
//!   with the same errors, and the container keeps its MainPID, its
//!   rendered file stays byte-identical, no file appears or vanishes in the
//!   output dir, no generation is recorded and nothing is left pending.
//!   Cases only an unprivileged user can see (a mode-000 file) run there.
//!
//! `%` is not bad input: the renderer escapes it (the contract allows
//! "rejected or escaped"). The end-to-end part proves that with the real
//! systemd and Quadlet: the good container's `%h`, `%n` and `%%` reach the
//! container literally. That a rendered file never gets a key the spec did
//! not ask for is tests/fuzz_spec_render.rs.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::{serial, stderr, stdout, web_spec, Workspace};

/// What a spec-directory entry is.
enum Content {
    Text(String),
    Bytes(Vec<u8>),
    Dir,
    Fifo,
    Symlink(&'static str),
    /// A spec file owned by this uid (neither root nor the agent's user).
    OwnedBy(u32, String),
    /// A spec file with this mode.
    Mode(u32, String),
    /// A spec file of this group (not root's), writable by it (mode 664).
    GroupWritable(u32, String),
}

struct Case {
    what: String,
    files: Vec<(&'static str, Content)>,
    /// Fragments stderr must contain, each one whole error as printed:
    /// "/FILE:LINE:COL: KEY: message...".
    want: Vec<String>,
    /// How many errors validate must report ("N error(s); nothing was changed.").
    errors: usize,
    /// Only visible to an unprivileged user (root reads a mode-000 file).
    user_only: bool,
}

fn case(what: &str, files: Vec<(&'static str, Content)>, want: &[&str], errors: usize) -> Case {
    Case {
        what: what.to_string(),
        files,
        want: want.iter().map(|s| s.to_string()).collect(),
        errors,
        user_only: false,
    }
}

fn bad(text: &str) -> Vec<(&'static str, Content)> {
    vec![("20-bad.toml", Content::Text(text.to_string()))]
}

const NAME_RULE: &str = "names are 1-63 characters of a-z, 0-9, '_', '.', '-', start with a letter or digit, and contain no '..'";

/// The hand-written cases: each kind of mistake, with the exact place and key.
fn table() -> Vec<Case> {
    let inv = |s: &str| format!("invalid name \"{s}\": {NAME_RULE}");
    let long = "a".repeat(64);
    vec![
        // Malformed TOML: the parser's message, at the right line and column.
        case("unclosed table header", bad("[container.b1\nimage = \"x\"\n"),
            &["/20-bad.toml:1:14: malformed TOML: invalid table header"], 1),
        case("a key twice", bad("[container.b1]\nimage = \"x\"\nimage = \"y\"\n"),
            &["/20-bad.toml:3:1: malformed TOML: duplicate key `image` in table `container.b1`"], 1),
        case("a raw NUL byte in a string", vec![("20-bad.toml", Content::Bytes(b"[container.b1]\nimage = \"a\0b\"\n".to_vec()))],
            &["/20-bad.toml:2:11: malformed TOML: invalid basic string"], 1),
        case("a bare carriage return", vec![("20-bad.toml", Content::Bytes(b"[container.b1]\nimage = \"x\"\r\nuser = \"a\"\rb\n".to_vec()))],
            &["/20-bad.toml:3:11: malformed TOML: expected newline"], 1),
        case("an unterminated string", bad("[container.b1]\nimage = \"x\"\nuser = \"abc\n"),
            &["/20-bad.toml:3:12: malformed TOML: invalid basic string"], 1),
        // Unknown and misspelt keys, at every level, with "did you mean".
        case("a misspelt top-level table", bad("[contianer.b1]\nimage = \"x\"\n"),
            &["/20-bad.toml:1:2: contianer: unknown key (did you mean `container`?)"], 1),
        case("unknown and misspelt keys", bad("[container.b1]\nimage = \"x\"\nimagee = \"x\"\nzzzzzzzzzz = 1\n[container.b1.resources]\nmemroy = \"1M\"\n[container.b1.health]\ntcp = \"127.0.0.1:1\"\nintervall = \"1s\"\n[network.n1]\nsubnett = \"10.0.0.0/8\"\n[volume.v1]\ndriverr = \"local\"\n"),
            &["/20-bad.toml:3:1: container.b1.imagee: unknown key (did you mean `image`?)",
              "/20-bad.toml:4:1: container.b1.zzzzzzzzzz: unknown key (expected one of: image, command,",
              "/20-bad.toml:6:1: container.b1.resources.memroy: unknown key (did you mean `memory`?)",
              "/20-bad.toml:9:1: container.b1.health.intervall: unknown key (did you mean `interval`?)",
              "/20-bad.toml:11:1: network.n1.subnett: unknown key (did you mean `subnet`?)",
              "/20-bad.toml:13:1: volume.v1.driverr: unknown key (did you mean `driver`?)"], 6),
        case("a misspelt secret field", bad("[container.b1]\nimage = \"x\"\nsecrets = [{ name = \"s\", targt = \"X\" }]\n"),
            &["/20-bad.toml:3:26: container.b1.secrets[0].targt: unknown key (did you mean `target`?)"], 1),
        case("unknown key with control characters in its name", bad("[container.b1]\nimage = \"x\"\n\"ima\\u001b[2J\\u202Ege\\u0000\" = \"x\"\n"),
            &["/20-bad.toml:3:1: container.b1.ima\\u{1b}[2J\\u{202e}ge\\u{0}: unknown key"], 1),
        // Wrong types.
        case("top-level keys that are not tables", bad("container = 5\nnetwork = \"n\"\n"),
            &["/20-bad.toml:1:13: container: expected a table, found an integer",
              "/20-bad.toml:2:11: network: expected a table, found a string"], 2),
        case("wrong types", bad("[network.n1]\ninternal = \"no\"\n[container.b1]\nimage = 1\nports = \"80:80\"\nread_only = \"yes\"\nenv = [\"A=1\"]\ncommand = \"sh -c x\"\nresources = 5\nhealth = true\nrequires = \"b2\"\n[container.b2]\nimage = \"x\"\nlabels = { a = [1] }\n[container.b2.resources]\npids = \"5\"\ncpus = \"1\"\n[[container.b3]]\nimage = \"x\"\n"),
            &["/20-bad.toml:2:12: network.n1.internal: expected true or false, found a string",
              "/20-bad.toml:4:9: container.b1.image: expected a string, found an integer",
              "/20-bad.toml:5:9: container.b1.ports: expected an array of strings, found a string",
              "/20-bad.toml:6:13: container.b1.read_only: expected true or false, found a string",
              "/20-bad.toml:7:7: container.b1.env: expected a table, found an array",
              "/20-bad.toml:8:11: container.b1.command: expected an array of strings, found a string",
              "/20-bad.toml:9:13: container.b1.resources: expected a table, found an integer",
              "/20-bad.toml:10:10: container.b1.health: expected a table, found a boolean",
              "/20-bad.toml:11:12: container.b1.requires: expected an array of strings, found a string",
              "/20-bad.toml:14:16: container.b2.labels.a: expected a string, found an array",
              "/20-bad.toml:16:8: container.b2.resources.pids: expected an integer, found a string",
              "/20-bad.toml:17:8: container.b2.resources.cpus: expected a number of cores like 1.0 or 0.5, found a string",
              "/20-bad.toml:18:1: container.b3: expected a table, found an array of tables"], 13),
        // Sizes, CPUs, durations, ports, choices.
        case("bad sizes", bad("[container.b1]\nimage = \"x\"\n[container.b1.resources]\nmemory = \"12Q\"\nmemory_reservation = \"200MB\"\n[container.b2]\nimage = \"x\"\n[container.b2.resources]\nmemory = -1\nmemory_reservation = 0\n[container.b3]\nimage = \"x\"\n[container.b3.resources]\nmemory = \"1.5G\"\n[container.b4]\nimage = \"x\"\n[container.b4.resources]\nmemory = \"99999999999T\"\n[container.b5]\nimage = \"x\"\n[container.b5.resources]\nmemory = \"100M\"\nmemory_reservation = \"200M\"\n"),
            &["/20-bad.toml:4:10: container.b1.resources.memory: invalid size \"12Q\"",
              "/20-bad.toml:5:22: container.b1.resources.memory_reservation: invalid size \"200MB\"",
              "/20-bad.toml:9:10: container.b2.resources.memory: size -1 must be greater than zero",
              "/20-bad.toml:10:22: container.b2.resources.memory_reservation: size 0 must be greater than zero",
              "/20-bad.toml:14:10: container.b3.resources.memory: invalid size \"1.5G\"",
              "/20-bad.toml:18:10: container.b4.resources.memory: size \"99999999999T\" is too large",
              "/20-bad.toml:23:22: container.b5.resources.memory_reservation: the reservation (209715200 bytes) is larger than the hard limit `memory` (104857600 bytes)"], 7),
        case("bad CPU and pids values", bad("[container.b1]\nimage = \"x\"\n[container.b1.resources]\ncpus = 0.125\n[container.b2]\nimage = \"x\"\n[container.b2.resources]\ncpus = 0\n[container.b3]\nimage = \"x\"\n[container.b3.resources]\ncpus = -1\npids = 0\n"),
            &["/20-bad.toml:4:8: container.b1.resources.cpus: 0.125 has more precision than systemd's CPUQuota",
              "/20-bad.toml:8:8: container.b2.resources.cpus: 0 is not a valid CPU count",
              "/20-bad.toml:12:8: container.b3.resources.cpus: -1 is not a valid CPU count",
              "/20-bad.toml:13:8: container.b3.resources.pids: 0 is out of range: must be between 1 and 4194304"], 4),
        case("bad durations", bad("[container.b1]\nimage = \"x\"\nstop_timeout = \"10 seconds\"\nstart_timeout = \"10\"\n[container.b2]\nimage = \"x\"\nstop_timeout = \"1d\"\nstart_timeout = \"1000h\"\n[container.b3]\nimage = \"x\"\nstop_timeout = \"0s\"\nstart_timeout = \"-1s\"\n[container.b3.health]\ntcp = \"127.0.0.1:1\"\ninterval = \"1.5s\"\nstart_period = 30\n"),
            &["/20-bad.toml:3:16: container.b1.stop_timeout: invalid duration \"10 seconds\"",
              "/20-bad.toml:4:17: container.b1.start_timeout: invalid duration \"10\"",
              "/20-bad.toml:7:16: container.b2.stop_timeout: invalid duration \"1d\"",
              "/20-bad.toml:8:17: container.b2.start_timeout: duration \"1000h\" is longer than 30 days",
              "/20-bad.toml:11:16: container.b3.stop_timeout: must be longer than zero",
              "/20-bad.toml:12:17: container.b3.start_timeout: invalid duration \"-1s\"",
              "/20-bad.toml:15:12: container.b3.health.interval: invalid duration \"1.5s\"",
              "/20-bad.toml:16:16: container.b3.health.start_period: expected a string, found an integer"], 8),
        case("bad ports", bad("[container.b1]\nimage = \"x\"\nports = [\"99999:80\", \"0:80\", \"80\", \"a:80\", \"80:80/sctp\", \"1.2.3:80:80\", \"[::1:80:80\", \"1:2:3:4\"]\n"),
            &["/20-bad.toml:3:10: container.b1.ports[0]: invalid host port \"99999\": ports are 1-65535",
              "/20-bad.toml:3:22: container.b1.ports[1]: invalid host port \"0\": ports are 1-65535",
              "/20-bad.toml:3:30: container.b1.ports[2]: invalid port \"80\"",
              "/20-bad.toml:3:36: container.b1.ports[3]: invalid host port \"a\"",
              "/20-bad.toml:3:44: container.b1.ports[4]: invalid protocol \"sctp\" in port \"80:80/sctp\"",
              "/20-bad.toml:3:58: container.b1.ports[5]: invalid IP address \"1.2.3\" in port \"1.2.3:80:80\"",
              "/20-bad.toml:3:73: container.b1.ports[6]: invalid port \"[::1:80:80\": an IPv6 address is written [addr]:host:container",
              "/20-bad.toml:3:87: container.b1.ports[7]: invalid port \"1:2:3:4\""], 8),
        case("bad choices and empty commands", bad("[container.b1]\nimage = \"x\"\nrestart = \"sometimes\"\npull = \"alwayz\"\nauto_update = \"yes\"\ncommand = []\nentrypoint = [\"sh\", \"\"]\n[volume.v1]\ndriver = \"nfs\"\n"),
            &["/20-bad.toml:3:11: container.b1.restart: invalid value \"sometimes\" (expected one of: always, on-failure, no)",
              "/20-bad.toml:4:8: container.b1.pull: invalid value \"alwayz\" (did you mean `always`?)",
              "/20-bad.toml:5:15: container.b1.auto_update: invalid value \"yes\" (expected one of: registry, local)",
              "/20-bad.toml:6:11: container.b1.command: must not be empty",
              "/20-bad.toml:9:10: volume.v1.driver: invalid value \"nfs\" (expected one of: local, image)"], 5),
        // Names: path tricks, case, length, look-alike and invisible Unicode.
        case("names with /, .., spaces and Unicode tricks", bad(&format!("[container.\"a/b\"]\nimage = \"x\"\n[container.\"..\"]\nimage = \"x\"\n[container.\"a b\"]\nimage = \"x\"\n[container.Web]\nimage = \"x\"\n[container.-web]\nimage = \"x\"\n[container.\".hidden\"]\nimage = \"x\"\n[container.\"\"]\nimage = \"x\"\n[container.{long}]\nimage = \"x\"\n[container.\"a..b\"]\nimage = \"x\"\n[container.\"ab\\u202Ec\"]\nimage = \"x\"\n[container.\"a\\u200Bb\"]\nimage = \"x\"\n[container.\"w\\u0435b\"]\nimage = \"x\"\n[container.\"\\uFF57eb\"]\nimage = \"x\"\n[container.\"we\\u0301b\"]\nimage = \"x\"\n[network.\"n/1\"]\n[volume.\"v..1\"]\n[container.ok1]\nimage = \"x\"\nrequires = [\"../etc\"]\nnetworks = [\"a b\"]\n")),
            &[&format!("/20-bad.toml:1:12: container.a/b: {}", inv("a/b")),
              &format!("/20-bad.toml:3:12: container...: {}", inv("..")),
              &format!("/20-bad.toml:5:12: container.a b: {}", inv("a b")),
              &format!("/20-bad.toml:7:12: container.Web: {}", inv("Web")),
              &format!("/20-bad.toml:9:12: container.-web: {}", inv("-web")),
              &format!("/20-bad.toml:11:12: container..hidden: {}", inv(".hidden")),
              &format!("/20-bad.toml:13:12: container.: {}", inv("")),
              &format!("/20-bad.toml:15:12: container.{long}: {}", inv(&long)),
              &format!("/20-bad.toml:17:12: container.a..b: {}", inv("a..b")),
              &format!("/20-bad.toml:19:12: container.ab\\u{{202e}}c: {}", inv("ab\\u{202e}c")),
              &format!("/20-bad.toml:21:12: container.a\\u{{200b}}b: {}", inv("a\\u{200b}b")),
              &format!("/20-bad.toml:23:12: container.w\u{435}b: {}", inv("w\\u{435}b")),
              &format!("/20-bad.toml:25:12: container.\u{ff57}eb: {}", inv("\\u{ff57}eb")),
              &format!("/20-bad.toml:27:12: container.we\u{301}b: {}", inv("we\\u{301}b")),
              &format!("/20-bad.toml:29:10: network.n/1: {}", inv("n/1")),
              &format!("/20-bad.toml:30:9: volume.v..1: {}", inv("v..1")),
              &format!("/20-bad.toml:33:13: container.ok1.requires[0]: {}", inv("../etc")),
              &format!("/20-bad.toml:34:13: container.ok1.networks[0]: {}", inv("a b"))], 18),
        case("path tricks in mounts and paths", bad("[container.b1]\nimage = \"x\"\nvolumes = [\"../x:/y\", \"/etc/../shadow:/x\", \"data:relative\", \"/srv:/x:rx\", \"/srv:/x:ro,rw\", \"Data:/x\"]\nenv_files = [\"relative.env\", \"/etc/../x.env\"]\nworkdir = \"app\"\n"),
            &[&format!("/20-bad.toml:3:12: container.b1.volumes[0]: volume \"../x:/y\": {}", inv("../x")),
              "/20-bad.toml:3:23: container.b1.volumes[1]: path \"/etc/../shadow\" must not contain '..'",
              "/20-bad.toml:3:44: container.b1.volumes[2]: path \"relative\" must be absolute",
              "/20-bad.toml:3:61: container.b1.volumes[3]: unknown mount option \"rx\" in \"/srv:/x:rx\" (did you mean `ro`?)",
              "/20-bad.toml:3:75: container.b1.volumes[4]: volume \"/srv:/x:ro,rw\" is both ro and rw",
              &format!("/20-bad.toml:3:92: container.b1.volumes[5]: volume \"Data:/x\": {}", inv("Data")),
              "/20-bad.toml:4:14: container.b1.env_files[0]: path \"relative.env\" must be absolute",
              "/20-bad.toml:4:30: container.b1.env_files[1]: path \"/etc/../x.env\" must not contain '..'",
              "/20-bad.toml:5:11: container.b1.workdir: path \"app\" must be absolute"], 9),
        // Injection through TOML's own multi-line strings.
        case("newlines through multi-line strings", bad("[container.b1]\nimage = \"x\"\ncommand = [\"sh\", \"\"\"a\nExecStartPre=/bin/evil\"\"\"]\nuser = '''ro\n[Service]'''\n"),
            &["/20-bad.toml:3:18: container.b1.command[1]: contains the forbidden character \\u{a} at position 2",
              "/20-bad.toml:5:8: container.b1.user: contains the forbidden character \\u{a} at position 3"], 2),
        // Cross-file: duplicates, unit-name collisions, references, cycles.
        case("duplicate names across files",
            vec![("15-first.toml", Content::Text("[container.dup1]\nimage = \"x\"\n[network.dupn]\n[volume.dupv]\n".into())),
                 ("20-bad.toml", Content::Text("[volume.dupv]\n[network.dupn]\n[container.dup1]\nimage = \"y\"\n".into()))],
            &["/20-bad.toml:3:12: container.dup1: container \"dup1\" is already defined in ",
              "/15-first.toml:1 (names must be unique across all spec files)",
              "/20-bad.toml:2:10: network.dupn: network \"dupn\" is already defined in ",
              "/15-first.toml:3 (names",
              "/20-bad.toml:1:9: volume.dupv: volume \"dupv\" is already defined in ",
              "/15-first.toml:4 (names"], 3),
        case("a unit-name collision across files",
            vec![("15-first.toml", Content::Text("[network.db]\n".into())),
                 ("20-bad.toml", Content::Text("[container.db-network]\nimage = \"x\"\n".into()))],
            &["/15-first.toml:1:10: network.db: would become the unit db-network.service, which container.db-network already becomes"], 1),
        case("missing dependencies", bad("[container.api]\nimage = \"x\"\nrequires = [\"nope\"]\nafter = [\"databse\"]\nwants = [\"cache\"]\nnetworks = [\"backend_nett\"]\nvolumes = [\"pgdata:/data\"]\n[container.database]\nimage = \"x\"\n[network.backend_net]\n"),
            &["/20-bad.toml:3:13: container.api.requires[0]: no container named \"nope\"",
              "/20-bad.toml:4:10: container.api.after[0]: no container named \"databse\" (did you mean `database`?)",
              "/20-bad.toml:5:10: container.api.wants[0]: no container named \"cache\"",
              "/20-bad.toml:6:13: container.api.networks[0]: no network named \"backend_nett\" (did you mean `backend_net`?)",
              "/20-bad.toml:7:12: container.api.volumes[0]: no volume named \"pgdata\""], 5),
        case("dependency cycles, one across files",
            vec![("15-first.toml", Content::Text("[container.c1]\nimage = \"x\"\nrequires = [\"c2\"]\n".into())),
                 ("20-bad.toml", Content::Text("[container.c2]\nimage = \"x\"\nafter = [\"c3\"]\n[container.c3]\nimage = \"x\"\nwants = [\"c1\"]\n[container.selfish]\nimage = \"x\"\nrequires = [\"selfish\"]\n".into()))],
            &["/20-bad.toml:9:13: container.selfish.requires[0]: container \"selfish\" cannot depend on itself",
              "/15-first.toml:1:12: container.c1: dependency cycle: c1 -> c2 -> c3 -> c1"], 2),
        // Health checks, networks, secrets.
        case("bad health checks", bad("[container.h1]\nimage = \"x\"\n[container.h1.health]\ncmd = [\"true\"]\ntcp = \"127.0.0.1:1\"\n[container.h2]\nimage = \"x\"\n[container.h2.health]\ninterval = \"10s\"\n[container.h3]\nimage = \"x\"\n[container.h3.health]\ntcp = \"127.0.0.1:1\"\ninterval = \"1s\"\ntimeout = \"2s\"\nexpect_status = 200\n[container.h4]\nimage = \"x\"\n[container.h4.health]\nhttp = \"ftp://x/\"\n[container.h5]\nimage = \"x\"\n[container.h5.health]\nhttp = \"http://127.0.0.1/\"\nca_file = \"/etc/ca.pem\"\nexpect_status = 99\nretries = 0\non_failure = \"reboot\"\n"),
            &["/20-bad.toml:3:1: container.h1.health: only one of `cmd`, `http` or `tcp` may be set, found cmd and tcp",
              "/20-bad.toml:8:1: container.h2.health: a health check needs one of `cmd`, `http` or `tcp`",
              "/20-bad.toml:16:17: container.h3.health.expect_status: `expect_status` only applies to an `http` check",
              "/20-bad.toml:12:1: container.h3.health.timeout: the timeout of an `http` or `tcp` check is longer than its interval",
              "/20-bad.toml:20:8: container.h4.health.http: invalid URL \"ftp://x/\": the scheme must be http or https",
              "/20-bad.toml:26:17: container.h5.health.expect_status: 99 is out of range: must be between 100 and 599",
              "/20-bad.toml:27:11: container.h5.health.retries: 0 is out of range: must be between 1 and 1000",
              "/20-bad.toml:28:14: container.h5.health.on_failure: invalid value \"reboot\"",
              "/20-bad.toml:25:11: container.h5.health.ca_file: `ca_file` only applies to an https:// check"], 9),
        case("bad networks", bad("[network.n1]\nsubnet = \"172.20.0.0/33\"\n[network.n2]\nsubnet = \"172.20.0.0/16\"\ngateway = \"10.0.0.1\"\n[network.n3]\nexternal = true\nsubnet = \"10.0.0.0/8\"\n[network.n4]\ngateway = \"10.0.0.1\"\ndriver = \"bridgee\"\n"),
            &["/20-bad.toml:2:10: network.n1.subnet: invalid subnet \"172.20.0.0/33\"",
              "/20-bad.toml:5:11: network.n2.gateway: gateway 10.0.0.1 is not inside subnet 172.20.0.0/16",
              "/20-bad.toml:6:10: network.n3: an external network is managed outside deploy-agent: `external = true` takes no other keys",
              "/20-bad.toml:11:10: network.n4.driver: invalid value \"bridgee\" (did you mean `bridge`?)",
              "/20-bad.toml:10:11: network.n4.gateway: a gateway needs a `subnet`"], 5),
        case("bad secrets", bad("[container.s1]\nimage = \"x\"\nsecrets = [{ name = \"a\", type = \"env\", target = \"1BAD\" }, { name = \"a\" }, { type = \"env\" }, { name = \"b\", type = \"file\" }, { name = \"c\", source = \"rel/path\" }]\n"),
            &["/20-bad.toml:3:49: container.s1.secrets[0].target: invalid environment variable name \"1BAD\"",
              "/20-bad.toml:3:75: container.s1.secrets[2]: missing required key `name`",
              "/20-bad.toml:3:114: container.s1.secrets[3].type: invalid value \"file\" (expected one of: env, mount)",
              "/20-bad.toml:3:147: container.s1.secrets[4].source: path \"rel/path\" must be absolute"], 4),
        // Files that are not spec files at all.
        case("a directory", vec![("20-bad.toml", Content::Dir)],
            &["/20-bad.toml: is a directory, not a spec file"], 1),
        case("a FIFO (reading it would block forever)", vec![("20-bad.toml", Content::Fifo)],
            &["/20-bad.toml: is not a regular file"], 1),
        case("a symlink to /dev/zero (endless)", vec![("20-bad.toml", Content::Symlink("/dev/zero"))],
            &["/20-bad.toml: is not a regular file"], 1),
        case("a dangling symlink", vec![("20-bad.toml", Content::Symlink("/nonexistent/spec.toml"))],
            &["/20-bad.toml: cannot read: No such file or directory"], 1),
        case("huge (1 MiB + 1 byte)", vec![("20-bad.toml", Content::Bytes(vec![b'#'; (1 << 20) + 1]))],
            &["/20-bad.toml: is 1048577 bytes, more than the 1048576 bytes a spec file may have"], 1),
        case("not UTF-8", vec![("20-bad.toml", Content::Bytes(b"[container.u1]\nimage = \"x\"\nuser = \"\xff\xfe\"\n".to_vec()))],
            &["/20-bad.toml:3:9: is not valid UTF-8"], 1),
        case("owned by another user", vec![("20-bad.toml", Content::OwnedBy(4242, "[container.o1]\nimage = \"x\"\n".into()))],
            &["/20-bad.toml: spec file ", "/20-bad.toml is owned by uid 4242, not by root or the agent's user"], 1),
        case("writable by its group", vec![("20-bad.toml", Content::GroupWritable(4343, "[container.g1]\nimage = \"x\"\n".into()))],
            &["/20-bad.toml: spec file ", "/20-bad.toml is writable by its group (gid 4343, mode 664)", "trusted_group"], 1),
        Case {
            user_only: true,
            ..case("unreadable (mode 000)", vec![("20-bad.toml", Content::Mode(0o000, "[container.m1]\nimage = \"x\"\n".into()))],
                &["/20-bad.toml: cannot read: Permission denied"], 1)
        },
    ]
}

/// Characters that are control or invisible formatting characters: never
/// in a unit file, and printed escaped in an error.
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{2028}' | '\u{2029}')
}

/// A key as the error shows it.
fn shown(key: &str) -> String {
    key.chars()
        .map(|c| {
            if invisible(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Where an injected character ends up, and what the error must say.
enum Expect {
    Value,
    EnvName,
    Name,
}

/// Every string value of the format (and every key or name that becomes
/// part of a unit), one per entity, with `{X}` where the character goes.
/// (entity, key path below the entity, lines; the last line holds `{X}`.)
const STRING_VALUES: &[(&str, &str, &str, Expect)] = &[
    (
        "container",
        "image",
        "image = \"localhost/busy{X}box\"",
        Expect::Value,
    ),
    (
        "container",
        "command[1]",
        "command = [\"sh\", \"ec{X}ho\"]",
        Expect::Value,
    ),
    (
        "container",
        "entrypoint[0]",
        "entrypoint = [\"/bin/s{X}h\"]",
        Expect::Value,
    ),
    (
        "container",
        "ports[0]",
        "ports = [\"127.0.0.1:18300:8{X}0\"]",
        Expect::Value,
    ),
    (
        "container",
        "volumes[0]",
        "volumes = [\"/srv/da{X}ta:/data\"]",
        Expect::Value,
    ),
    (
        "container",
        "networks[0]",
        "networks = [\"ho{X}st\"]",
        Expect::Value,
    ),
    (
        "container",
        "env.A",
        "env = { A = \"x{X}y\" }",
        Expect::Value,
    ),
    (
        "container",
        "env.A{X}B",
        "env = { \"A{X}B\" = \"x\" }",
        Expect::EnvName,
    ),
    (
        "container",
        "env_files[0]",
        "env_files = [\"/etc/a{X}.env\"]",
        Expect::Value,
    ),
    (
        "container",
        "labels.k",
        "labels = { k = \"v{X}\" }",
        Expect::Value,
    ),
    (
        "container",
        "labels.k{X}",
        "labels = { \"k{X}\" = \"v\" }",
        Expect::Value,
    ),
    ("container", "user", "user = \"ro{X}ot\"", Expect::Value),
    (
        "container",
        "workdir",
        "workdir = \"/sr{X}v\"",
        Expect::Value,
    ),
    ("container", "pull", "pull = \"ne{X}ver\"", Expect::Value),
    (
        "container",
        "auto_update",
        "auto_update = \"lo{X}cal\"",
        Expect::Value,
    ),
    (
        "container",
        "restart",
        "restart = \"al{X}ways\"",
        Expect::Value,
    ),
    (
        "container",
        "start_timeout",
        "start_timeout = \"1{X}0s\"",
        Expect::Value,
    ),
    (
        "container",
        "stop_timeout",
        "stop_timeout = \"10s{X}\"",
        Expect::Value,
    ),
    (
        "container",
        "requires[0]",
        "requires = [\"e2{X}e\"]",
        Expect::Value,
    ),
    (
        "container",
        "after[0]",
        "after = [\"e{X}2e\"]",
        Expect::Value,
    ),
    (
        "container",
        "wants[0]",
        "wants = [\"{X}e2e\"]",
        Expect::Value,
    ),
    (
        "container",
        "secrets[0].name",
        "secrets = [{ name = \"s{X}\", type = \"env\", target = \"S\" }]",
        Expect::Value,
    ),
    (
        "container",
        "secrets[0].type",
        "secrets = [{ name = \"s\", type = \"e{X}nv\", target = \"S\" }]",
        Expect::Value,
    ),
    (
        "container",
        "secrets[0].target",
        "secrets = [{ name = \"s\", target = \"/run/s{X}\" }]",
        Expect::Value,
    ),
    (
        "container",
        "secrets[0].source",
        "secrets = [{ name = \"s\", source = \"/etc/s{X}\" }]",
        Expect::Value,
    ),
    (
        "container",
        "resources.memory",
        "[container.{N}.resources]\nmemory = \"2{X}00M\"",
        Expect::Value,
    ),
    (
        "container",
        "resources.memory_reservation",
        "[container.{N}.resources]\nmemory_reservation = \"1{X}M\"",
        Expect::Value,
    ),
    (
        "container",
        "health.cmd[0]",
        "[container.{N}.health]\ncmd = [\"tr{X}ue\"]",
        Expect::Value,
    ),
    (
        "container",
        "health.http",
        "[container.{N}.health]\nhttp = \"http://127.0.0.1:1/h{X}\"",
        Expect::Value,
    ),
    (
        "container",
        "health.tcp",
        "[container.{N}.health]\ntcp = \"127.0.0.1{X}:1\"",
        Expect::Value,
    ),
    (
        "container",
        "health.ca_file",
        "[container.{N}.health]\nhttp = \"https://x/\"\nca_file = \"/etc/c{X}a.pem\"",
        Expect::Value,
    ),
    (
        "container",
        "health.interval",
        "[container.{N}.health]\ntcp = \"127.0.0.1:1\"\ninterval = \"3{X}0s\"",
        Expect::Value,
    ),
    (
        "container",
        "health.timeout",
        "[container.{N}.health]\ntcp = \"127.0.0.1:1\"\ntimeout = \"1s{X}\"",
        Expect::Value,
    ),
    (
        "container",
        "health.start_period",
        "[container.{N}.health]\ntcp = \"127.0.0.1:1\"\nstart_period = \"{X}1s\"",
        Expect::Value,
    ),
    (
        "container",
        "health.on_failure",
        "[container.{N}.health]\ntcp = \"127.0.0.1:1\"\non_failure = \"no{X}ne\"",
        Expect::Value,
    ),
    (
        "network",
        "subnet",
        "subnet = \"10.{X}0.0.0/8\"",
        Expect::Value,
    ),
    (
        "network",
        "gateway",
        "subnet = \"10.0.0.0/8\"\ngateway = \"10.0.0.{X}1\"",
        Expect::Value,
    ),
    ("network", "driver", "driver = \"bri{X}dge\"", Expect::Value),
    (
        "network",
        "labels.a{X}",
        "labels = { \"a{X}\" = \"b\" }",
        Expect::Value,
    ),
    (
        "network",
        "labels.c",
        "labels = { c = \"d{X}\" }",
        Expect::Value,
    ),
    ("volume", "driver", "driver = \"lo{X}cal\"", Expect::Value),
    (
        "volume",
        "labels.a{X}",
        "labels = { \"a{X}\" = \"b\" }",
        Expect::Value,
    ),
    (
        "volume",
        "labels.c",
        "labels = { c = \"d{X}\" }",
        Expect::Value,
    ),
    // The names themselves (table keys).
    ("container", "", "[container.\"x{X}y\"]", Expect::Name),
    ("network", "", "[network.\"n{X}\"]", Expect::Name),
    ("volume", "", "[volume.\"v{X}\"]", Expect::Name),
];

/// Control characters (C0, DEL, C1), bidi overrides and isolates,
/// zero-width characters, the BOM and the line separator.
const INJECTED: &[char] = &[
    '\n', '\r', '\0', '\t', '\u{1b}', '\u{7f}', '\u{85}', '\u{202E}', '\u{2066}', '\u{200B}',
    '\u{FEFF}', '\u{2028}',
];

/// One case per injected character: a file with that character in every
/// string value, each in its own entity, each expected at its own line,
/// column and key.
fn injection_cases() -> Vec<Case> {
    INJECTED
        .iter()
        .map(|&c| {
            let esc = format!("\\u{:04X}", c as u32);
            let mut text = String::new();
            let mut want = Vec::new();
            for (i, (kind, key, lines, expect)) in STRING_VALUES.iter().enumerate() {
                let name = format!("{}{i}", &kind[..1]);
                let mut line_no = text.lines().count();
                if !matches!(expect, Expect::Name) {
                    text.push_str(&format!("[{kind}.{name}]\n"));
                    line_no += 1;
                    if *kind == "container" && *key != "image" {
                        text.push_str("image = \"x\"\n");
                        line_no += 1;
                    }
                }
                let lines = lines.replace("{N}", &name);
                let last = lines.lines().last().unwrap();
                line_no += lines.lines().count();
                // The value's (or key's) string starts at the quote before {X}.
                let col = last[..last.find("{X}").unwrap()].rfind('"').unwrap() + 1;
                text.push_str(&lines.replace("{X}", &esc));
                text.push('\n');
                if *kind == "container" && matches!(expect, Expect::Name) {
                    text.push_str("image = \"x\"\n");
                }
                let raw_key = match expect {
                    Expect::Name => {
                        let q = &last[last.find('"').unwrap() + 1..last.rfind('"').unwrap()];
                        format!("{kind}.{}", q.replace("{X}", &c.to_string()))
                    }
                    _ => format!("{kind}.{name}.{}", key.replace("{X}", &c.to_string())),
                };
                let message = match expect {
                    Expect::Value => {
                        format!("contains the forbidden character {}", c.escape_unicode())
                    }
                    Expect::EnvName => "invalid environment variable name".to_string(),
                    Expect::Name => "invalid name".to_string(),
                };
                want.push(format!(
                    "/20-bad.toml:{line_no}:{col}: {}: {message}",
                    shown(&raw_key)
                ));
            }
            Case {
                what: format!("{} in every string value", c.escape_unicode()),
                files: bad(&text),
                errors: want.len(),
                want,
                user_only: false,
            }
        })
        .collect()
}

fn all_cases() -> Vec<Case> {
    let mut v = table();
    v.extend(injection_cases());
    v
}

/// Puts a case's files into `dir`; `chown` makes them the test user's.
fn put(dir: &Path, files: &[(&'static str, Content)], chown: &dyn Fn(&Path)) {
    for (name, content) in files {
        let p = dir.join(name);
        match content {
            Content::Text(t) => std::fs::write(&p, t).unwrap(),
            Content::Bytes(b) => std::fs::write(&p, b).unwrap(),
            Content::Dir => std::fs::create_dir(&p).unwrap(),
            Content::Fifo => {
                nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap()
            }
            Content::Symlink(target) => std::os::unix::fs::symlink(target, &p).unwrap(),
            Content::OwnedBy(_, t) | Content::Mode(_, t) | Content::GroupWritable(_, t) => {
                std::fs::write(&p, t).unwrap()
            }
        }
        if !matches!(content, Content::Symlink(_)) {
            chown(&p);
        }
        match content {
            Content::OwnedBy(uid, _) => {
                nix::unistd::chown(&p, Some(nix::unistd::Uid::from_raw(*uid)), None).unwrap()
            }
            Content::Mode(mode, _) => {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap()
            }
            Content::GroupWritable(gid, _) => {
                nix::unistd::chown(&p, None, Some(nix::unistd::Gid::from_raw(*gid))).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o664)).unwrap()
            }
            _ => {}
        }
    }
}

fn remove(dir: &Path, files: &[(&'static str, Content)]) {
    for (name, content) in files {
        let p = dir.join(name);
        if matches!(content, Content::Dir) {
            std::fs::remove_dir(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
}

/// The exit code and stderr must be those of refused specs, with every
/// wanted error, the right number of errors, every line naming a spec
/// file, and nothing from the file that could rewrite the terminal.
fn check(c: &Case, specs: &Path, what: &str, code: Option<i32>, err: &str) {
    let ctx = format!("{} ({what})", c.what);
    assert_eq!(code, Some(2), "{ctx}: exit code; stderr:\n{err}");
    for w in &c.want {
        assert!(
            err.contains(w.as_str()),
            "{ctx}: expected\n  {w}\nin:\n{err}"
        );
    }
    // Only a command that could have changed something says it did not.
    let summary = if what.starts_with("validate") {
        format!("{} error(s).", c.errors)
    } else {
        format!("{} error(s); nothing was changed.", c.errors)
    };
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.last().copied(),
        Some(summary.as_str()),
        "{ctx}:\n{err}"
    );
    let prefix = format!("{}/", specs.display());
    // `apply` first names the manager and paths it acts on: not an error.
    let first = usize::from(
        lines
            .first()
            .is_some_and(|l| l.starts_with("deploy-agent: the ")),
    );
    for l in &lines[first..lines.len() - 1] {
        assert!(
            l.starts_with(&prefix) || l.starts_with(char::is_whitespace) || !l.contains(": "),
            "{ctx}: an error that does not name its file: {l:?}\n{err}"
        );
    }
    let errors = lines.iter().filter(|l| l.starts_with(&prefix)).count();
    assert_eq!(errors, c.errors, "{ctx}: number of errors:\n{err}");
    assert!(
        !err.chars().any(|ch| ch != '\n' && invisible(ch)),
        "{ctx}: a raw control or invisible character reached the output: {err:?}"
    );
}

#[test]
fn validate_refuses_every_kind_of_bad_spec_with_file_line_and_key() {
    let mut seen = 0;
    for c in all_cases().iter().filter(|c| !c.user_only) {
        let d = tempfile::tempdir().unwrap();
        let specs = d.path().join("specs");
        std::fs::create_dir(&specs).unwrap();
        std::fs::set_permissions(&specs, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(d.path().join("agent.toml"), "").unwrap();
        put(&specs, &c.files, &|_| {});
        let out = Command::new(env!("CARGO_BIN_EXE_deploy-agent"))
            .env_remove("DEPLOY_AGENT_CONFIG")
            .env_remove("DEPLOY_AGENT_SPECS")
            .arg("validate")
            .arg("--specs")
            .arg(&specs)
            .arg("--config")
            .arg(d.path().join("agent.toml"))
            .arg("--output-dir")
            .arg(d.path().join("out"))
            .arg("--state-dir")
            .arg(d.path().join("state"))
            .output()
            .unwrap();
        check(
            c,
            &specs,
            "validate as root",
            out.status.code(),
            &stderr(&out),
        );
        assert_eq!(stdout(&out), "", "{}: nothing on stdout", c.what);
        assert!(
            !d.path().join("out").exists() && !d.path().join("state").exists(),
            "{}: validate wrote nothing",
            c.what
        );
        seen += 1;
    }
    assert!(seen > 40, "the table ran ({seen} cases)");
}

/// The good spec's container: `%` specifiers and `$` in the command and the
/// environment, which must reach the container exactly as written.
const GOOD_PORT: u16 = 18300;
const GOOD_BODY: &str = "100%h %n %%|%h|x$y";

fn good() -> String {
    web_spec(
        "e2e-bi",
        GOOD_PORT,
        r#"echo \"$PCT|%h|x\\$y\""#,
        r#"env = { PCT = "100%h %n %%" }"#,
    )
}

fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn generations(state: &Path) -> usize {
    std::fs::read_dir(state.join("generations"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn apply_refuses_every_kind_of_bad_spec_and_nothing_running_changes() {
    let _g = serial();
    let ws = Workspace::new("badin");
    ws.spec("10-good.toml", &good());
    ws.agent_ok(&["apply"]);
    ws.env.wait_for(
        "the good container to answer",
        std::time::Duration::from_secs(20),
        || ws.curl(GOOD_PORT).is_some(),
    );
    assert_eq!(
        ws.curl(GOOD_PORT).as_deref(),
        Some(GOOD_BODY),
        "`%` specifiers and `$` reach the container literally"
    );
    let pid = ws.env.unit_prop("e2e-bi.service", "MainPID");
    let output = listing(&ws.output);
    let gens = generations(&ws.state);
    assert!(gens >= 1);

    // Also as an edit of the running container's own file.
    let mut cases = all_cases();
    cases.push(case(
        "an edit of the running spec's own file",
        vec![("10-good.toml", Content::Text(format!("{}read_only = \"yes\"\n", good())))],
        &["/10-good.toml:8:13: container.e2e-bi.read_only: expected true or false, found a string"],
        1,
    ));
    let chown = |p: &Path| ws.env.chown(p);
    for c in &cases {
        put(&ws.specs, &c.files, &chown);
        if c.user_only {
            let out = ws.agent(&["validate"]);
            check(
                c,
                &ws.specs,
                "validate as the user",
                out.status.code(),
                &stderr(&out),
            );
        }
        let out = ws.agent(&["apply"]);
        check(c, &ws.specs, "apply", out.status.code(), &stderr(&out));
        assert_eq!(
            ws.env.unit_prop("e2e-bi.service", "MainPID"),
            pid,
            "{}: the running container was not touched",
            c.what
        );
        assert!(
            listing(&ws.output) == output,
            "{}: the output directory is byte-identical",
            c.what
        );
        assert_eq!(
            generations(&ws.state),
            gens,
            "{}: no generation recorded",
            c.what
        );
        assert!(
            !ws.state.join("pending.json").exists(),
            "{}: nothing pending",
            c.what
        );
        if c.files.iter().any(|(n, _)| *n == "10-good.toml") {
            ws.spec("10-good.toml", &good());
        } else {
            remove(&ws.specs, &c.files);
        }
    }
    assert_eq!(ws.agent_ok(&["apply"]).trim(), "No changes.");
    assert_eq!(ws.env.unit_prop("e2e-bi.service", "MainPID"), pid);
    assert_eq!(ws.curl(GOOD_PORT).as_deref(), Some(GOOD_BODY));
}
