//! The importer on small unit files: typed keys, the escape hatch,
//! references, located problems.

use super::*;

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (n, t) in files {
        std::fs::write(d.path().join(n), t).unwrap();
    }
    d
}

fn spec<'a>(imp: &'a Import, name: &str) -> &'a str {
    &imp.specs.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn typed_keys_escape_hatch_and_references() {
    let d = dir_with(&[
        (
            "web.container",
            "[Unit]\nDescription=Web\n[Container]\nImage=docker.io/library/nginx:1\n\
             Network=app.network\nVolume=data.volume:/srv:Z\nAddCapability=NET_ADMIN \\\n  SYS_TIME\n\
             Environment=A=1 \"B=two words\"\nCgroupsMode=no-conmon\n[Service]\nRestart=always\nRestartSec=5\n",
        ),
        ("app.network", "[Network]\nNetworkName=appnet\nInternal=yes\n"),
        ("data.volume", "[Volume]\n"),
    ]);
    let imp = import(&[d.path().join("web.container")]);
    assert!(imp.problems.is_empty(), "{:?}", imp.problems);
    let web = spec(&imp, "web.container.toml");
    assert!(web.starts_with(MARK), "{web}");
    for want in [
        "networks = [\"appnet\"]",
        "volumes = [\"systemd-data:/srv:Z\"]",
        "cap_add = [\"NET_ADMIN\", \"SYS_TIME\"]",
        "B = \"two words\"",
        "restart_delay = \"5s\"",
        "[container.web.quadlet]\nCgroupsMode = \"no-conmon\"",
    ] {
        let flat = web
            .split(' ')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(flat.contains(want), "{want:?} in\n{web}");
    }
    assert!(spec(&imp, "app.network.toml").contains("[network.appnet]"));
    validate(&imp, Path::new("/specs")).unwrap();
}

#[test]
fn what_cannot_be_carried_over_is_located() {
    let d = dir_with(&[(
        "web.container",
        "[Container]\nImage=i.build\nExec=a\nNetwork=other.container\n[Quadlet]\nDefaultDependencies=no\n",
    )]);
    let imp = import(&[d.path().to_path_buf()]);
    let lines: Vec<(usize, &str)> = imp
        .problems
        .iter()
        .map(|p| (p.line, p.key.as_str()))
        .collect();
    assert_eq!(lines, [(2, "Image"), (4, "Network"), (5, "[Quadlet]")]);
    assert!(!imp.fatal);
}

#[test]
fn refused_kinds_and_bad_syntax_are_fatal() {
    let d = dir_with(&[("a.kube", "[Kube]\n"), ("b.container", "Image=x\n")]);
    let imp = import(&[d.path().to_path_buf()]);
    assert!(imp.fatal);
    let msgs: Vec<String> = imp.problems.iter().map(|p| p.to_string()).collect();
    assert!(msgs[0].contains("a.kube:1: a .kube unit"), "{msgs:?}");
    assert!(
        msgs[1].contains("b.container:1: \"Image\" comes before"),
        "{msgs:?}"
    );
}

#[test]
fn never_overwrites_a_file_it_did_not_write() {
    let d = dir_with(&[("web.container", "[Container]\nImage=x\n")]);
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("web.container.toml"), "# mine\n").unwrap();
    let imp = import(&[d.path().to_path_buf()]);
    assert!(matches!(
        write(&imp, out.path()),
        Err(WriteError::NotOurs(_))
    ));
    std::fs::remove_file(out.path().join("web.container.toml")).unwrap();
    write(&imp, out.path()).unwrap();
    write(&imp, out.path()).unwrap();
}

#[test]
fn what_a_typed_key_cannot_say_stays_the_same_podman_argument() {
    let d = dir_with(&[
        (
            "web.container",
            "[Container]\nImage=x\nVolume=/anon\nVolume=named:/n\nVolume=/h:/c\n\
             Secret=tok,uid=1000\nPublishPort=${P}:80\n",
        ),
        (
            "two.network",
            "[Network]\nSubnet=10.1.0.0/24\nSubnet=10.2.0.0/24\nIPRange=10.1.0.0/28\n",
        ),
    ]);
    let imp = import(&[d.path().to_path_buf()]);
    let at: Vec<(usize, &str)> = imp
        .problems
        .iter()
        .map(|p| (p.line, p.key.as_str()))
        .collect();
    assert_eq!(
        at,
        [(7, "PublishPort")],
        "a `$` stays a problem: {:?}",
        imp.problems
    );
    let web = spec(&imp, "web.container.toml");
    assert!(
        web.contains(
            r#"podman_args = ["-v", "/anon", "-v", "named:/n", "--secret", "tok,uid=1000"]"#
        ),
        "{web}"
    );
    assert_eq!(web.matches("# approximation: Volume=").count(), 2, "{web}");
    assert!(
        web.contains("volumes") && web.contains("\"/h:/c\""),
        "{web}"
    );
    let net = spec(&imp, "two.network.toml");
    assert!(
        net.contains(r#"PodmanArgs = ["--subnet 10.1.0.0/24", "--subnet 10.2.0.0/24", "--ip-range 10.1.0.0/28"]"#),
        "{net}"
    );
}
