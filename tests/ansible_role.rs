//! The Ansible role in `ansible/` on the host, without touching it: the
//! role and the example playbook pass `ansible-lint` and
//! `ansible-playbook --syntax-check`; the example spec template renders to
//! specs `deploy-agent validate` accepts; and the role's apply tasks,
//! run by a real `ansible-playbook` with the real binary, turn the agent's
//! JSON into the task's failure with the agent's errors as its message.
//! The agent runs there as `nobody`, which has no user manager: nothing
//! gets past validation or the bus. Ansible and ansible-lint come from
//! Debian (`tests/env/testenv install`). Runs as root (the role uses
//! runuser, as it does on a host).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ansible_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ansible")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// An Ansible command with its state (caches, temporary files) in `tmp`,
/// and no bus anywhere to reach.
fn ansible(program: &str, tmp: &Path) -> Command {
    let mut c = Command::new(program);
    c.env("HOME", tmp)
        .env("ANSIBLE_LOCAL_TEMP", tmp.join("ansible-local"))
        .env("ANSIBLE_REMOTE_TEMP", tmp.join("ansible-remote"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_ROLES_PATH", ansible_dir().join("roles"))
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            "unix:path=/nonexistent/system_bus_socket",
        )
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/session_bus_socket",
        );
    c
}

/// A copy of `ansible/` (the linter writes its cache into the project it checks).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            if e.file_name() != ".ansible" {
                copy_tree(&e.path(), &dest);
            }
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn the_role_and_playbook_pass_ansible_lint_and_syntax_check() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("ansible");
    copy_tree(&ansible_dir(), &copy);
    let o = ansible("ansible-lint", tmp.path())
        .arg("--offline")
        .current_dir(&copy)
        .output()
        .expect("ansible-lint (Debian package ansible-lint; tests/env/testenv install)");
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("0 failure(s), 0 warning(s)"),
        "{}",
        text(&o)
    );
    let o = ansible("ansible-playbook", tmp.path())
        .args([
            "--syntax-check",
            "-i",
            "inventory.example.yml",
            "rollout.yml",
        ])
        .current_dir(&copy)
        .output()
        .expect("ansible-playbook (Debian package ansible-core)");
    assert!(o.status.success(), "{}", text(&o));
    let play = std::fs::read_to_string(copy.join("rollout.yml")).unwrap();
    assert!(play.contains("serial: [1, \"30%\", \"100%\"]"), "{play}");
    assert!(play.contains("max_fail_percentage: 0"), "{play}");
}

#[test]
fn the_example_template_renders_specs_the_agent_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let specs = tmp.path().join("specs");
    let secrets = tmp.path().join("secrets");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::create_dir_all(&secrets).unwrap();
    let token = secrets.join("web_token");
    std::fs::write(&token, "s3cret").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let src = ansible_dir().join("templates/web.toml.j2");
    let o = ansible("ansible", tmp.path())
        .args(["localhost", "-c", "local", "-m", "ansible.builtin.template"])
        .arg("-a")
        .arg(format!(
            "src={} dest={}",
            src.display(),
            specs.join("10-web.toml").display()
        ))
        .args(["-e", "web_port=18080", "-e", "web_version=v1"])
        .args(["-e", "web_message='hello from web1'"])
        .arg("-e")
        .arg(format!("deploy_agent_secrets_dir={}", secrets.display()))
        .output()
        .expect("ansible (Debian package ansible-core)");
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(tmp.path().join("agent.toml"), "").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_deploy-agent"))
        .args(["validate", "--json", "--config"])
        .arg(tmp.path().join("agent.toml"))
        .arg("--specs")
        .arg(&specs)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (&doc["ok"], &doc["containers"]),
        (&true.into(), &1.into()),
        "{doc}"
    );
}

/// The role's apply tasks on `specs`: the output of `ansible-playbook`.
fn play_apply(tmp: &Path, specs: &str) -> Output {
    let dir = tmp.join("host");
    let home = dir.join("home");
    let state = dir.join("state");
    let spec_dir = dir.join("specs");
    for d in [&home, &state, &spec_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    for d in [tmp, &dir] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for d in [&home, &state] {
        nix::unistd::chown(d.as_path(), Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    }
    std::fs::write(spec_dir.join("10-web.toml"), specs).unwrap();
    let playbook = format!(
        r#"---
- name: The role's apply and its report
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    deploy_agent_user: nobody
    deploy_agent_uid: "65534"
    deploy_agent_home: "{home}"
    deploy_agent_config_file: "{dir}/agent.toml"
    deploy_agent_specs_dir: "{dir}/specs"
    deploy_agent_wait: 10s
    deploy_agent_binary: "{bin}"
    deploy_agent_settings:
      output_dir: "{dir}/out"
      state_dir: "{state}"
  tasks:
    - name: Write agent.toml
      ansible.builtin.template:
        src: "{roles}/deploy_agent/templates/agent.toml.j2"
        dest: "{dir}/agent.toml"
        mode: "0644"
    - name: Apply as the role does
      ansible.builtin.import_role:
        name: deploy_agent
        tasks_from: apply
"#,
        home = home.display(),
        dir = dir.display(),
        state = state.display(),
        roles = ansible_dir().join("roles").display(),
        bin = env!("CARGO_BIN_EXE_deploy-agent"),
    );
    std::fs::write(tmp.join("play.yml"), playbook).unwrap();
    ansible("ansible-playbook", tmp)
        .args(["-i", "localhost,"])
        .arg(tmp.join("play.yml"))
        .output()
        .expect("ansible-playbook (Debian package ansible-core)")
}

#[test]
fn the_role_fails_the_host_with_the_agents_errors() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "runs as root: the role runs the agent with runuser"
    );
    // Invalid specs: each error located, as the task's message.
    let tmp = tempfile::tempdir().unwrap();
    let o = play_apply(
        tmp.path(),
        "[container.web]\nimage = \"x\"\nimgae = \"y\"\n",
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains("TASK [deploy_agent : Fail with the agent's errors]"),
        "{out}"
    );
    assert!(out.contains("deploy-agent apply exited 2:"), "{out}");
    assert!(
        out.contains("/specs/10-web.toml:3:1: container.web.imgae: "),
        "{out}"
    );
    assert!(out.contains("failed=1"), "{out}");
    let agent_toml = std::fs::read_to_string(tmp.path().join("host/agent.toml")).unwrap();
    assert!(agent_toml.contains("watch = false\n"), "{agent_toml}");

    // Valid specs, no manager to reach: failed, with the agent's reason.
    let tmp = tempfile::tempdir().unwrap();
    let o = play_apply(tmp.path(), "[container.web]\nimage = \"x\"\n");
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("deploy-agent apply exited 1:"), "{out}");
    assert!(out.contains("cannot reach systemd"), "{out}");
    assert!(
        !tmp.path().join("host/out").exists(),
        "nothing rendered into the output directory"
    );
}
