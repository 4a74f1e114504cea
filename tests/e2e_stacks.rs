//! End to end: issue 12's keys on the real user manager and rootless
//! Podman. A pod of two containers talking over localhost; `userns =
//! "keep-id"` with a bind mount the container writes (the file on the host
//! belongs to the agent's user); a device; a tmpfs; dropped capabilities and
//! no-new-privileges, read from `/proc/1/status` inside the container;
//! systemd 254's restart tuning, gated on the manager's own version; an
//! `[image.NAME]` unit that pulls (from an OCI archive: no registry needed)
//! before the container that runs it.

mod support;

use std::time::Duration;

use support::{serial, stderr, stdout, Workspace};

fn apply_ok(ws: &Workspace) {
    let out = ws.agent(&["apply"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

/// `podman exec NAME ARGS...` as the test user.
fn exec(ws: &Workspace, name: &str, args: &[&str]) -> String {
    let mut all = vec!["podman", "exec", name];
    all.extend_from_slice(args);
    ws.env.user_ok(&all)
}

#[test]
fn a_pod_of_two_containers_talks_over_localhost() {
    let _g = serial();
    let ws = Workspace::new("stackpod");
    ws.spec(
        "10-pod.toml",
        r#"
[pod.e2e-pod]
ports = ["127.0.0.1:18241:8080"]

[container.e2e-pod-web]
image = "localhost/busybox:latest"
pull = "never"
init = true
pod = "e2e-pod"
command = ["sh", "-c", "mkdir -p /www && echo in-pod > /www/health && exec httpd -f -p 8080 -h /www"]

[container.e2e-pod-client]
image = "localhost/busybox:latest"
pull = "never"
init = true
pod = "e2e-pod"
after = ["e2e-pod-web"]
command = ["sleep", "100000"]
"#,
    );
    apply_ok(&ws);
    assert!(ws.output.join("e2e-pod.pod").exists());
    // The client reaches the web container on the pod's shared localhost.
    let mut got = String::new();
    for _ in 0..50 {
        got = ws
            .env
            .user(&[
                "podman",
                "exec",
                "e2e-pod-client",
                "wget",
                "-qO-",
                "http://127.0.0.1:8080/health",
            ])
            .stdout
            .iter()
            .map(|&b| b as char)
            .collect();
        if got.trim() == "in-pod" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(got.trim(), "in-pod");
    // And the pod publishes it to the host.
    assert_eq!(ws.curl(18241).as_deref(), Some("in-pod"));
    assert_eq!(
        ws.env.unit_prop("e2e-pod-pod.service", "ActiveState"),
        "active"
    );
}

#[test]
fn keep_id_device_tmpfs_and_capabilities_reach_the_container() {
    let _g = serial();
    let ws = Workspace::new("stackkeys");
    let data = ws.root.join("data");
    ws.env.write(&data.join(".keep"), "");
    ws.spec(
        "10-keys.toml",
        &format!(
            r#"
[container.e2e-keys]
image = "localhost/busybox:latest"
pull = "never"
init = true
userns = "keep-id"
volumes = ["{}:/data"]
devices = ["/dev/null:/dev/e2e-null"]
tmpfs = ["/scratch:size=8M"]
cap_drop = ["ALL"]
no_new_privileges = true
restart_steps = 3
restart_max_delay = "30s"
command = ["sh", "-c", "echo written-inside > /data/out && exec sleep 100000"]
"#,
            data.display()
        ),
    );
    apply_ok(&ws);
    let name = "e2e-keys";
    // keep-id: the file the container wrote belongs to the agent's user on the host.
    let out = data.join("out");
    let mut ok = false;
    for _ in 0..50 {
        if std::fs::read_to_string(&out).is_ok_and(|t| t.trim() == "written-inside") {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ok, "the container did not write {}", out.display());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().uid(),
        ws.env.uid,
        "keep-id"
    );
    assert_eq!(
        exec(&ws, name, &["id", "-u"]).trim(),
        ws.env.uid.to_string()
    );
    // The device is there, as a character device.
    let dev = exec(&ws, name, &["ls", "-l", "/dev/e2e-null"]);
    assert!(dev.starts_with('c'), "{dev}");
    // tmpfs, with its size.
    let mounts = exec(&ws, name, &["cat", "/proc/mounts"]);
    let line = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/scratch"))
        .unwrap_or_else(|| panic!("no /scratch mount:\n{mounts}"));
    assert!(line.starts_with("tmpfs /scratch tmpfs"), "{line}");
    assert!(line.contains("size=8192k"), "{line}");
    // cap_drop = ["ALL"] and no_new_privileges, as the kernel sees PID 1.
    let status = exec(&ws, name, &["cat", "/proc/1/status"]);
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {k} in:\n{status}"))
            .to_string()
    };
    assert_eq!(field("CapEff:"), "0000000000000000");
    assert_eq!(field("CapBnd:"), "0000000000000000");
    assert_eq!(field("NoNewPrivs:"), "1");
    // systemd 254's restart tuning passed the gate against the manager's
    // own version (read over D-Bus) and reached the unit.
    assert_eq!(ws.env.unit_prop("e2e-keys.service", "RestartSteps"), "3");
    assert_eq!(
        ws.env.unit_prop("e2e-keys.service", "RestartMaxDelayUSec"),
        "30s"
    );
}

#[test]
fn an_image_unit_pulls_before_the_container_that_runs_it() {
    let _g = serial();
    let ws = Workspace::new("stackimage");
    let tag = "localhost/e2e-image-unit:1";
    // An OCI archive of the test image under `tag` (Quadlet's ImageTag= is
    // the name inside the archive): a pull that needs no registry. The tag
    // is then removed, so only the image unit's pull can bring it back.
    let archive = ws.root.join("busybox.tar");
    ws.env
        .user_ok(&["podman", "tag", "localhost/busybox:latest", tag]);
    ws.env.user_ok(&[
        "podman",
        "save",
        "-q",
        "--format",
        "oci-archive",
        "-o",
        &archive.to_string_lossy(),
        tag,
    ]);
    // `untag IMAGE NAME`: only that name (with no NAME it removes them all).
    ws.env.user_ok(&["podman", "untag", tag, tag]);
    let gone = ws.env.user(&["podman", "image", "exists", tag]);
    assert!(!gone.status.success(), "{tag} is still there");
    ws.spec(
        "10-image.toml",
        &format!(
            r#"
[image.e2e-img]
image = "oci-archive:{}"
image_tag = "{tag}"

[container.e2e-img-web]
image = {{ unit = "e2e-img" }}
init = true
ports = ["127.0.0.1:18243:8080"]
command = ["sh", "-c", "mkdir -p /www && echo from-image-unit > /www/health && exec httpd -f -p 8080 -h /www"]
"#,
            archive.display()
        ),
    );
    // The agent does not pull ahead an image that a .image unit pulls (it
    // would try a registry called localhost and be held back).
    apply_ok(&ws);
    assert!(ws.output.join("e2e-img.image").exists());
    assert_eq!(
        ws.env.unit_prop("e2e-img-image.service", "ActiveState"),
        "active"
    );
    // The container runs the image the unit pulled, under the unit's tag.
    ws.env.user_ok(&["podman", "image", "exists", tag]);
    let image = ws
        .env
        .user_ok(&["podman", "inspect", "-f", "{{.ImageName}}", "e2e-img-web"]);
    assert_eq!(image.trim(), tag);
    ws.env
        .wait_for("the web answers", Duration::from_secs(10), || {
            ws.curl(18243).as_deref() == Some("from-image-unit")
        });
    // systemd orders the container after the pull.
    let after = ws.env.unit_prop("e2e-img-web.service", "After");
    assert!(after.contains("e2e-img-image.service"), "{after}");
    // Removing the spec stops the container and removes both units.
    ws.remove_spec("10-image.toml");
    let out = ws.agent(&["apply", "--allow-empty"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(!ws.output.join("e2e-img.image").exists());
    assert_ne!(
        ws.env.unit_prop("e2e-img-web.service", "ActiveState"),
        "active"
    );
    let _ = ws.env.user(&["podman", "untag", tag, tag]);
}
