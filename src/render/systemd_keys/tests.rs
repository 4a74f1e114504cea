use std::path::PathBuf;

use super::*;
use crate::render::{render, RenderOptions, TEMPLATE_SOURCES};
use crate::spec::{load_texts, SpecSet};

fn set(text: &str) -> SpecSet {
    load_texts(&[(PathBuf::from("/s/a.toml"), text.into())]).unwrap()
}

fn for_systemd(v: Option<u32>) -> RenderOptions {
    RenderOptions {
        systemd: v.map(SystemdVersion),
        ..Default::default()
    }
}

#[test]
fn versions_parse_from_the_managers_text_and_a_pin() {
    for (text, want) in [
        ("252.39-1~deb12u1", 252),
        ("255", 255),
        ("257.9+deb13", 257),
        ("256.7-1.fc41", 256),
        ("v254", 254),
        ("systemd 252 (252.39-1~deb12u1)", 252),
        (" 253 ", 253),
    ] {
        assert_eq!(
            SystemdVersion::parse(text),
            Ok(SystemdVersion(want)),
            "{text}"
        );
    }
    for bad in ["", "systemd", "252abc", "0", "v", "1234567", "-252"] {
        let e = SystemdVersion::parse(bad).unwrap_err();
        assert_eq!(e.text, bad);
        assert!(
            e.to_string().contains("cannot read a systemd version"),
            "{e}"
        );
    }
}

#[test]
fn a_key_newer_than_the_target_systemd_is_refused_with_both_versions() {
    let s = set("[container.a]\nimage = \"x\"\nrestart_steps = 5\n");
    let e = render(&s, &for_systemd(Some(252))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "a.service: restart_steps needs systemd's RestartSteps= (systemd 254 or newer), \
         but the target is systemd 252"
    );
    let text = &render(&s, &for_systemd(Some(254))).unwrap()["a.container"].contents;
    assert!(text.contains("\nRestartSteps=5\n"), "{text}");
    // Unknown target (offline): rendered, not checked.
    assert!(render(&s, &for_systemd(None)).is_ok());
}

#[test]
fn keys_every_supported_systemd_has_are_never_refused() {
    let s = set(
        "[container.a]\nimage = \"x\"\nstart_limit_burst = 3\nrestart_delay = \"5s\"\n\
         [container.a.resources]\nmemory = \"1G\"\nmemory_high = \"800M\"\noom_policy = \"stop\"\n\
         [container.a.service]\nEnvironment = \"A=1\"\nNotAKeyAnyoneKnows = \"1\"\n",
    );
    assert!(render(&s, &for_systemd(Some(252))).is_ok());
}

#[test]
fn escape_hatch_keys_in_the_table_are_gated_and_unknown_ones_left_to_systemd() {
    let s = set("[volume.v]\n[volume.v.service]\nMemoryZSwapMax = \"0\"\n");
    let e = render(&s, &for_systemd(Some(252))).unwrap_err().to_string();
    assert_eq!(
        e,
        "v-volume.service: [Service] MemoryZSwapMax= of the escape hatch needs systemd's \
         MemoryZSwapMax= (systemd 253 or newer), but the target is systemd 252"
    );
    assert!(render(&s, &for_systemd(Some(253))).is_ok());
    let s = set("[container.a]\nimage = \"x\"\n[container.a.unit]\nWantsMountsFor = \"/srv\"\n");
    assert!(render(&s, &for_systemd(Some(255))).is_err());
    assert!(render(&s, &for_systemd(Some(256))).is_ok());
}

/// The table's order and meaning: one entry per key, sorted, and a
/// version only where it is newer than the oldest supported systemd.
#[test]
fn the_table_is_sorted_and_its_versions_are_above_the_oldest_supported() {
    for w in KEYS.windows(2) {
        assert!(
            (w[0].section, w[0].key) < (w[1].section, w[1].key),
            "{} before {}",
            w[0].key,
            w[1].key
        );
    }
    for e in KEYS {
        assert!(e.section.is_systemd(), "{}", e.key);
        if let Since::V(n) = e.since {
            assert!(
                n > SystemdVersion::OLDEST_SUPPORTED.0,
                "{}: {n} is Always",
                e.key
            );
        }
        assert!(e.source.contains("(5): "), "{}: {}", e.key, e.source);
    }
}

/// Every `[Unit]`/`[Service]`/`[Install]` key the registry renders has an
/// entry; the templates' own keys (and the registry's keys the templates
/// render, which the gate does not see) are in every supported systemd.
#[test]
fn every_systemd_key_the_agent_can_write_has_an_entry() {
    for k in keys::KEYS {
        let Some((section, skey)) = k.quadlet.filter(|(s, _)| s.is_systemd()) else {
            continue;
        };
        let e = entry(section, skey)
            .unwrap_or_else(|| panic!("{}: [{}] {skey}= has no entry", k.name, section.name()));
        if !k.is_generic() {
            assert_eq!(e.since, Since::Always, "{} is rendered ungated", k.name);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, text) in TEMPLATE_SOURCES {
        for (section, key) in template_keys(text) {
            seen.insert(key);
            let e = entry(section, key)
                .unwrap_or_else(|| panic!("{name}: [{}] {key}= has no entry", section.name()));
            assert_eq!(e.since, Since::Always, "{name} writes {key}= ungated");
        }
    }
    for key in [
        "Description",
        "After",
        "ExecStartPost",
        "MemoryLow",
        "WantedBy",
    ] {
        assert!(
            seen.contains(key),
            "{key} not found in the templates: {seen:?}"
        );
    }
}

/// The `KEY=` lines of a template's systemd sections.
fn template_keys(text: &str) -> Vec<(Section, &str)> {
    let mut section = None;
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = [Section::Unit, Section::Service, Section::Install]
                .into_iter()
                .find(|s| s.name() == h);
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        if let Some(s) = section.filter(|_| key.bytes().all(|b| b.is_ascii_alphanumeric())) {
            out.push((s, key));
        }
    }
    out
}
