//! `[image.NAME]` specs (issue 12's `.image` units): they render to golden
//! `NAME.image` files that Podman's own Quadlet generator accepts, with a
//! `podman image pull` carrying every key; a container that runs one
//! (`image = { unit = "NAME" }`) gets `Image=NAME.image`, which the
//! generator turns into the image's name and a dependency on the pull;
//! bad values and references are located errors; `creds` is refused; a
//! target older than Podman 4.8 is refused naming the key and versions.
//!
//! `UPDATE_GOLDEN=1` rewrites tests/golden/images.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use deploy_agent::quadlet;
use deploy_agent::render::{render, PodmanVersion, RenderOptions, Rendering};
use deploy_agent::spec::{load_texts, SpecSet};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/images");

const STACK: &str = r#"
[image.app]
image = "registry.example.com/team/app:2.1"
auth_file = "%h/.config/containers/auth.json"
cert_dir = "/etc/containers/certs.d/registry.example.com"
tls_verify = false
arch = "arm64"
os = "linux"
variant = "v8"
podman_args = ["--quiet"]

[image.app.quadlet]
GlobalArgs = "--log-level=info"

[image.app.service]
TimeoutStartSec = "900"

[image.archive]
image = "docker-archive:/srv/images/tool.tar"
image_tag = "localhost/tool:1"
all_tags = false
decryption_key = "/etc/keys/image.pem"

[container.web]
image = { unit = "app" }
ports = ["8080:80"]

[container.tool]
image.unit = "archive"
command = ["tool", "--serve"]
"#;

fn stack() -> SpecSet {
    load_texts(&[(
        PathBuf::from("/etc/deploy-agent/specs/images.toml"),
        STACK.into(),
    )])
    .unwrap_or_else(|e| panic!("the stack loads: {e}"))
}

fn opts(podman: PodmanVersion) -> RenderOptions {
    RenderOptions {
        podman,
        ..Default::default()
    }
}

const V5_4: PodmanVersion = PodmanVersion::new(5, 4, 2);

fn check_golden(rendering: &Rendering) {
    let dir = Path::new(GOLDEN);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(dir).unwrap();
        for (name, f) in rendering {
            std::fs::write(dir.join(name), &f.contents).unwrap();
        }
        return;
    }
    for (name, f) in rendering {
        let want = std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e} (UPDATE_GOLDEN=1 writes it)"));
        assert_eq!(f.contents, want, "{name} differs from its golden file");
    }
    let on_disk = std::fs::read_dir(dir).unwrap().count();
    assert_eq!(on_disk, rendering.len(), "golden files in {GOLDEN}");
}

#[test]
fn image_units_render_their_golden_files() {
    let r = render(&stack(), &opts(V5_4)).unwrap();
    assert_eq!(
        r.keys().cloned().collect::<Vec<_>>(),
        [
            "app.image",
            "archive.image",
            "tool.container",
            "web.container"
        ]
    );
    assert_eq!(r["app.image"].unit, "app-image.service");
    assert!(r["web.container"]
        .contents
        .lines()
        .any(|l| l == "Image=app.image"));
    check_golden(&r);
}

#[test]
fn a_container_of_an_image_unit_runs_the_image_it_pulls() {
    let set = stack();
    // What pull-ahead, history and status see: the image itself.
    assert_eq!(
        set.containers["web"].image,
        "registry.example.com/team/app:2.1"
    );
    assert_eq!(set.containers["tool"].image, "localhost/tool:1");
    assert_eq!(
        set.containers["tool"].image_unit.as_deref(),
        Some("archive")
    );
}

fn line<'a>(services: &'a BTreeMap<String, String>, unit: &str, key: &str) -> &'a str {
    let text = services
        .get(unit)
        .unwrap_or_else(|| panic!("{unit} generated: {:?}", services.keys()));
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|l| l.strip_prefix('=')))
        .unwrap_or_else(|| panic!("{unit} has {key}=:\n{text}"))
}

#[test]
fn podmans_generator_accepts_image_units_and_carries_every_key() {
    let Some(g) = quadlet::find_generator() else {
        if std::env::var_os("DEPLOY_AGENT_ALLOW_NO_QUADLET").is_some_and(|v| v == "1") {
            eprintln!("SKIPPED: no Quadlet generator");
            return;
        }
        panic!(
            "Podman's Quadlet generator is not installed (DEPLOY_AGENT_ALLOW_NO_QUADLET=1 skips)"
        );
    };
    let r = render(&stack(), &opts(V5_4)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, f) in &r {
        std::fs::write(dir.path().join(name), &f.contents).unwrap();
    }
    let dry = quadlet::dry_run_with(&g, dir.path(), true)
        .unwrap_or_else(|e| panic!("Quadlet rejected the image units: {e}"));
    let s = &dry.services;

    let pull = line(s, "app-image.service", "ExecStart");
    for want in [
        "--log-level=info",
        "image pull",
        "--authfile %h/.config/containers/auth.json",
        "--cert-dir /etc/containers/certs.d/registry.example.com",
        "--tls-verify=false",
        "--arch arm64",
        "--os linux",
        "--variant v8",
        "--quiet",
        "registry.example.com/team/app:2.1",
    ] {
        assert!(pull.contains(want), "the pull lacks {want}: {pull}");
    }
    assert_eq!(line(s, "app-image.service", "TimeoutStartSec"), "900");
    let archive = line(s, "archive-image.service", "ExecStart");
    for want in [
        "--decryption-key /etc/keys/image.pem",
        "docker-archive:/srv/images/tool.tar",
    ] {
        assert!(archive.contains(want), "the pull lacks {want}: {archive}");
    }

    // The container runs the image (ImageTag= where set) after its pull.
    let web = line(s, "web.service", "ExecStart");
    assert!(web.ends_with(" registry.example.com/team/app:2.1"), "{web}");
    for want in ["Requires=app-image.service", "After=app-image.service"] {
        assert!(s["web.service"].lines().any(|l| l == want), "{want}");
    }
    let tool = line(s, "tool.service", "ExecStart");
    assert!(tool.contains(" localhost/tool:1 tool --serve"), "{tool}");
    for want in [
        "Requires=archive-image.service",
        "After=archive-image.service",
    ] {
        assert!(s["tool.service"].lines().any(|l| l == want), "{want}");
    }
}

fn errors(text: &str) -> Vec<String> {
    match load_texts(&[(PathBuf::from("/specs/s.toml"), text.into())]) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn bad_image_units_and_references_are_located_errors() {
    let e = errors(
        "[image.app]\ntls_verifi = false\nretry = -1\nauth_file = \"auth.json\"\n\
         creds = \"me:secret\"\n[image.app.quadlet]\nCreds = \"me:secret\"\nImage = \"x\"\n\
         [container.web]\nimage = { unit = \"ap\" }\n[container.db]\nimage = { name = \"x\" }\n\
         [image.app-image]\nimage = \"y\"\n[container.app-image-image]\nimage = \"z\"\n",
    );
    let want = [
        "s.toml:1:8: image.app: missing required key `image`",
        "s.toml:2:1: image.app.tls_verifi: unknown key (did you mean `tls_verify`?)",
        "s.toml:3:9: image.app.retry: -1 is out of range",
        "s.toml:4:13: image.app.auth_file: path \"auth.json\" must be absolute",
        "s.toml:5:1: image.app.creds: refused: registry credentials in a unit file are a secret",
        "s.toml:7:1: image.app.quadlet.Creds: [Image] Creds= is refused",
        "s.toml:8:1: image.app.quadlet.Image: Image= is what a typed key renders (use `image` instead)",
        "s.toml:10:18: container.web.image.unit: no image named \"ap\" (did you mean `app`?)",
        "s.toml:12:11: container.db.image.name: unknown key (expected one of: unit)",
        "s.toml:12:9: container.db.image: missing required key `unit`",
        "s.toml:13:8: image.app-image: would become the unit app-image-image.service, which container.app-image-image already becomes",
    ];
    for w in want {
        assert!(e.iter().any(|e| e.contains(w)), "missing {w:?} in:\n{e:#?}");
    }
    assert_eq!(e.len(), want.len(), "{e:#?}");
}

#[test]
fn image_units_need_podman_4_8() {
    let set = stack();
    assert!(render(&set, &opts(PodmanVersion::new(4, 8, 0))).is_ok());
    let e = render(&set, &opts(PodmanVersion::new(4, 7, 1)))
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with(
            "needs Quadlet's Image= (Podman 4.8.0 or newer), but the target is Podman 4.7.1"
        ),
        "{e}"
    );
    // A key of a later Podman: `retry` came with 5.5.
    let retry = load_texts(&[(
        PathBuf::from("/s/a.toml"),
        "[image.a]\nimage = \"x\"\nretry = 5\nretry_delay = \"30s\"\n".into(),
    )])
    .unwrap();
    assert!(render(&retry, &opts(PodmanVersion::new(5, 5, 0))).is_ok());
    assert_eq!(
        render(&retry, &opts(V5_4)).unwrap_err().to_string(),
        "a-image.service: retry needs Quadlet's Retry= (Podman 5.5.0 or newer), but the target is Podman 5.4.2"
    );
}
