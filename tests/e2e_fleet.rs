//! Many hosts through Ansible, canary first (issue 16): three hosts, each
//! a real systemd with its own user manager, rootless Podman, network
//! namespace and hostname (`support/fleet.rs`), driven by a real
//! `ansible-playbook` running the shipped `ansible/rollout.yml` over an
//! nsenter connection (`tests/fleet/connection_plugins/nsenter.py`), with
//! the secret from an Ansible Vault file.
//!
//! Scenarios: a fresh rollout to all hosts; a re-run that changes nothing
//! anywhere (no unit restarted); a change whose health check fails on the
//! canary: the canary rolls back, the play stops, no other host is touched
//! (generation, unit start time, spec file); a good change after that
//! reaches every host. Figures on stderr: the rollout's wall time against
//! the sum of the per-host `apply --wait` times, and the hosts changed
//! after a failing canary (must be 0).
//!
//! Runs as root with systemd, Podman, Ansible and curl installed
//! (`tests/env/testenv install`); it does not use the testenv namespace.

#[path = "support/fleet.rs"]
mod fleet;
#[path = "support/schema.rs"]
mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use fleet::Host;

const PORT: u16 = 18480;
const TOKEN: &str = "fleet-vault-token-5f1c";

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            if e.file_name() != ".ansible" {
                copy_tree(&e.path(), &to.join(e.file_name()));
            }
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The shipped `ansible/` directory with a test inventory and a Vault file.
struct Controller {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Controller {
    fn new(hosts: &[Host], bin: &str) -> Controller {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ansible");
        copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("ansible"), &dir);
        let mut inv = String::from("deploy_agent_hosts:\n  hosts:\n");
        for h in hosts {
            inv.push_str(&format!(
                "    {n}:\n      ansible_nsenter_pid: {p}\n      web_message: hello from {n}\n",
                n = h.name,
                p = h.pid
            ));
        }
        inv.push_str(
            "  vars:\n    ansible_connection: nsenter\n    ansible_become_method: ansible.builtin.su\n\
             \x20   ansible_python_interpreter: /usr/bin/python3\n",
        );
        // Extra variables: they win over the example's group_vars.
        std::fs::write(
            tmp.path().join("fleet-vars.yml"),
            format!(
                "deploy_agent_user: {user}\ndeploy_agent_install: false\ndeploy_agent_binary: {bin}\n\
                 deploy_agent_config_file: /srv/deploy-agent/agent.toml\n\
                 deploy_agent_specs_dir: /srv/deploy-agent/specs\n\
                 deploy_agent_secrets_dir: /srv/deploy-agent/secrets\n\
                 deploy_agent_wait: 90s\nweb_port: {PORT}\nweb_host_network: true\n\
                 deploy_agent_settings:\n  metrics_file: /home/{user}/deploy_agent.prom\n",
                user = fleet::USER,
            ),
        )
        .unwrap();
        std::fs::write(dir.join("inventory.yml"), inv).unwrap();
        std::fs::write(tmp.path().join("vault-pass"), "fleet-test-pass\n").unwrap();
        let vault = dir.join("group_vars/deploy_agent_hosts/vault.yml");
        std::fs::write(&vault, format!("vault_web_token: {TOKEN}\n")).unwrap();
        let c = Controller { dir, _tmp: tmp };
        let o = c
            .ansible("ansible-vault")
            .args(["encrypt", "--vault-password-file"])
            .arg(c.pass())
            .arg(&vault)
            .output()
            .expect("ansible-vault");
        assert!(o.status.success(), "{}", text(&o));
        assert!(!std::fs::read_to_string(&vault).unwrap().contains(TOKEN));
        c
    }

    fn pass(&self) -> PathBuf {
        self.dir.parent().unwrap().join("vault-pass")
    }

    fn ansible(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        let home = self.dir.parent().unwrap();
        c.current_dir(&self.dir)
            .env("HOME", home)
            .env("ANSIBLE_LOCAL_TEMP", home.join("ansible-local"))
            .env("ANSIBLE_REMOTE_TEMP", "/tmp/.ansible-fleet")
            .env("ANSIBLE_NOCOLOR", "1")
            .env(
                "ANSIBLE_CONNECTION_PLUGINS",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fleet/connection_plugins"),
            );
        c
    }

    /// `ansible-playbook rollout.yml` with `extra` variables; its output and wall time.
    fn rollout(&self, extra: &[(&str, &str)]) -> (Output, Duration) {
        let mut c = self.ansible("ansible-playbook");
        c.args([
            "-i",
            "inventory.yml",
            "rollout.yml",
            "--vault-password-file",
        ])
        .arg(self.pass())
        .arg("-e")
        .arg(format!(
            "@{}",
            self.dir.parent().unwrap().join("fleet-vars.yml").display()
        ));
        for (k, v) in extra {
            c.args(["-e", &format!("{k}={v}")]);
        }
        let t = Instant::now();
        let o = c.output().expect("ansible-playbook");
        let wall = t.elapsed();
        eprintln!("---- ansible-playbook {extra:?} ({wall:.1?})\n{}", text(&o));
        (o, wall)
    }
}

/// What the play recap says per host: `changed=` and `failed=`.
fn recap(out: &str) -> BTreeMap<String, (u32, u32)> {
    let field = |line: &str, key: &str| -> u32 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    out.split("PLAY RECAP")
        .nth(1)
        .unwrap_or("")
        .lines()
        .filter(|l| l.contains(" : ok="))
        .map(|l| {
            let host = l.split_whitespace().next().unwrap().to_string();
            (host, (field(l, "changed="), field(l, "failed=")))
        })
        .collect()
}

/// The role's "apply took H:MM:SS.ffffff" per host.
fn apply_times(out: &str) -> BTreeMap<String, Duration> {
    out.lines()
        .filter_map(|l| {
            let rest = l.split("deploy-agent on ").nth(1)?;
            let host = rest.split(':').next()?.to_string();
            let t = rest
                .split("apply took ")
                .nth(1)?
                .trim()
                .trim_end_matches('"');
            let mut parts = t.split(':');
            let h: f64 = parts.next()?.parse().ok()?;
            let m: f64 = parts.next()?.parse().ok()?;
            let s: f64 = parts.next()?.parse().ok()?;
            Some((host, Duration::from_secs_f64(h * 3600.0 + m * 60.0 + s)))
        })
        .collect()
}

/// A host as the test sees it, independently of Ansible.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    generation: Option<u64>,
    started: String,
    spec: String,
}

fn seen(h: &Host) -> Seen {
    let o = h.user(&[
        env!("CARGO_BIN_EXE_deploy-agent"),
        "status",
        "--json",
        "--config",
        "/srv/deploy-agent/agent.toml",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{}: status --json: {e}: {}", h.name, text(&o)));
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/status-result.schema.json")).unwrap();
    assert_eq!(
        schema::violations(&schema, &doc),
        Vec::<String>::new(),
        "{doc}"
    );
    Seen {
        generation: doc["generation"].as_u64(),
        started: h.unit_prop("web.service", "ActiveEnterTimestampMonotonic"),
        spec: std::fs::read_to_string(format!(
            "/proc/{}/root/srv/deploy-agent/specs/10-web.toml",
            h.pid
        ))
        .unwrap_or_default(),
    }
}

#[test]
fn fleet_rollout_canary_first_through_ansible() {
    let bin = env!("CARGO_BIN_EXE_deploy-agent");
    let t = Instant::now();
    let hosts: Vec<Host> = (1..=3)
        .map(|i| Host::boot(&format!("fleet{i}"), Path::new(bin)))
        .collect();
    eprintln!("3 hosts booted, images imported in {:.1?}", t.elapsed());
    for h in &hosts {
        assert_eq!(text(&h.root(&["hostname"])).trim(), h.name);
    }
    let ctl = Controller::new(&hosts, bin);

    // 1. Fresh rollout: every host changed, serving v1.
    let (o, wall) = ctl.rollout(&[("web_version", "v1")]);
    let out = text(&o);
    assert!(o.status.success(), "fresh rollout failed");
    assert!(
        !out.contains(TOKEN),
        "the Vault secret is in Ansible's output"
    );
    let times = apply_times(&out);
    for h in &hosts {
        assert!(recap(&out)[&h.name].0 > 0, "{} not changed", h.name);
        assert_eq!(
            h.curl(PORT, "health"),
            Ok(format!("hello from {} v1", h.name))
        );
        assert!(times.contains_key(&h.name), "no apply time for {}", h.name);
    }
    let sum: Duration = times.values().sum();
    eprintln!(
        "FIGURE fresh rollout to 3 hosts: wall {wall:.2?}, sum of per-host apply --wait {sum:.2?}, ratio {:.2}",
        wall.as_secs_f64() / sum.as_secs_f64()
    );
    let before: Vec<Seen> = hosts.iter().map(seen).collect();
    for (h, s) in hosts.iter().zip(&before) {
        assert_eq!(s.generation, Some(1), "{}", h.name);
        let secret = h.root(&["stat", "-c", "%U %a", "/srv/deploy-agent/secrets/web_token"]);
        assert_eq!(text(&secret).trim(), format!("{} 600", fleet::USER));
    }

    // 2. The same again: nothing changed, no unit touched.
    let (o, _) = ctl.rollout(&[("web_version", "v1")]);
    assert!(o.status.success(), "re-run failed");
    for (h, s) in hosts.iter().zip(&before) {
        assert_eq!(
            recap(&text(&o))[&h.name],
            (0, 0),
            "{} changed on a re-run",
            h.name
        );
        assert_eq!(&seen(h), s, "{} touched by a re-run", h.name);
    }

    // 3. A change whose check fails: the canary rolls back, the play stops there.
    let (o, _) = ctl.rollout(&[("web_version", "v2"), ("web_health_path", "moved")]);
    let out = text(&o);
    assert!(!o.status.success(), "a failing canary must fail the play");
    assert!(
        out.contains("rolled back to generation 1"),
        "the agent's reason is the task's message"
    );
    let r = recap(&out);
    assert_eq!(r[&hosts[0].name].1, 1, "the canary failed");
    let canary = seen(&hosts[0]);
    assert_ne!(
        canary.generation, before[0].generation,
        "the canary applied and rolled back"
    );
    assert_eq!(
        hosts[0].curl(PORT, "health"),
        Ok("hello from fleet1 v1".to_string()),
        "v1 back on the canary"
    );
    let changed_after_canary = hosts[1..]
        .iter()
        .zip(&before[1..])
        .filter(|(h, s)| seen(h) != **s || r.get(&h.name).is_some_and(|x| x.0 > 0))
        .count();
    eprintln!("FIGURE hosts changed after a failing canary: {changed_after_canary} (must be 0)");
    assert_eq!(changed_after_canary, 0);

    // The daemon's metrics file, rewritten on the reload after the role's
    // apply: the canary's newest generation, its unit healthy again.
    let metrics = || {
        std::fs::read_to_string(format!(
            "/proc/{}/root/home/{}/deploy_agent.prom",
            hosts[0].pid,
            fleet::USER
        ))
        .unwrap_or_default()
    };
    let want = [
        format!("deploy_agent_generation {}", canary.generation.unwrap()),
        "deploy_agent_unit_health{unit=\"web.service\",state=\"healthy\"} 1".to_string(),
        "deploy_agent_units{state=\"active\"} 1".to_string(),
        "deploy_agent_last_apply_success 1".to_string(),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !want.iter().all(|w| metrics().lines().any(|l| l == w)) {
        assert!(
            Instant::now() < deadline,
            "metrics on the canary:\n{}",
            metrics()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // 4. A good change after: everywhere.
    let (o, wall) = ctl.rollout(&[("web_version", "v3")]);
    assert!(o.status.success(), "good change failed");
    let sum: Duration = apply_times(&text(&o)).values().sum();
    eprintln!(
        "FIGURE change rolled out to 3 hosts (restarts): wall {wall:.2?}, sum of per-host apply --wait {sum:.2?}, ratio {:.2}",
        wall.as_secs_f64() / sum.as_secs_f64()
    );
    for (h, s) in hosts.iter().zip(&before) {
        assert_eq!(
            h.curl(PORT, "health"),
            Ok(format!("hello from {} v3", h.name))
        );
        assert!(
            seen(h).generation > s.generation,
            "{} got no new generation",
            h.name
        );
    }
}
