//! Several Compose files -> one model, by the Compose merge rules
//! (compose-spec "Merge and override"), and `extends`.
//!
//! Mappings merge key by key; sequences append; `command`, `entrypoint`
//! and `healthcheck.test` are replaced; `ports`, `volumes`, `secrets` and
//! `configs` are unique by their target (a later entry replaces an earlier
//! one with the same key); `!reset` removes a value and `!override`
//! replaces it whole. Before merging, the keys that may be a list or a
//! mapping (`environment`, `labels`, `depends_on`, ...) are put in their
//! mapping form so that overrides work per entry, as in Compose.

use super::yaml::{Key, Kind, Node, Pos, Tag, Val};

/// Service keys whose list form is turned into a mapping before merging:
/// (key, separator of `NAME<sep>VALUE` items).
const LIST_TO_MAP: &[(&str, &[char])] = &[
    ("environment", &['=']),
    ("labels", &['=']),
    ("annotations", &['=']),
    ("sysctls", &['=']),
    ("extra_hosts", &['=', ':']),
];

/// Service keys that may be one string or a list of strings.
const STRING_OR_LIST: &[&str] = &["dns", "dns_search", "env_file", "tmpfs"];

/// Keys replaced, not merged, by a later file.
const REPLACED: &[&str] = &["command", "entrypoint", "test"];

/// Lists whose entries are unique by target.
const UNIQUE: &[&str] = &["ports", "volumes", "secrets", "configs"];

/// Puts a service's keys in the form merging expects.
pub fn normalize_service(svc: &mut Node) {
    let Val::Map(entries) = &mut svc.val else {
        return;
    };
    for (k, v) in entries.iter_mut() {
        let name = k.name.as_str();
        if let Some((_, seps)) = LIST_TO_MAP.iter().find(|(n, _)| *n == name) {
            list_to_map(v, seps);
        } else if STRING_OR_LIST.contains(&name) && v.str().is_some() {
            let item = v.clone();
            v.val = Val::Seq(vec![item]);
        } else if name == "depends_on" || name == "networks" {
            names_to_map(v, name == "depends_on");
        }
    }
}

/// `["A=1", "B"]` -> `{A: "1", B: null}`.
fn list_to_map(v: &mut Node, seps: &[char]) {
    let Val::Seq(items) = &v.val else {
        return;
    };
    let entries = items
        .iter()
        .filter_map(|item| {
            let s = item.str()?;
            let (name, value) = match s.split_once(seps) {
                Some((n, val)) => (n, Node::scalar(item.at.clone(), val, Kind::Str)),
                None => (s, Node::scalar(item.at.clone(), "", Kind::Null)),
            };
            let key = Key {
                name: name.trim().to_string(),
                at: item.at.clone(),
            };
            Some((key, value))
        })
        .collect();
    v.val = Val::Map(entries);
}

/// `[db, cache]` -> `{db: {condition: service_started}, cache: ...}` for
/// depends_on, `{db: null}` for networks.
fn names_to_map(v: &mut Node, depends_on: bool) {
    let Val::Seq(items) = &v.val else {
        return;
    };
    let entries = items
        .iter()
        .filter_map(|item| {
            let name = item.str()?.to_string();
            let value = if depends_on {
                let cond = Node::scalar(item.at.clone(), "service_started", Kind::Str);
                let key = Key {
                    name: "condition".into(),
                    at: item.at.clone(),
                };
                Node {
                    at: item.at.clone(),
                    tag: Tag::None,
                    val: Val::Map(vec![(key, cond)]),
                }
            } else {
                Node::scalar(item.at.clone(), "", Kind::Null)
            };
            Some((
                Key {
                    name,
                    at: item.at.clone(),
                },
                value,
            ))
        })
        .collect();
    v.val = Val::Map(entries);
}

/// Merges `over` into `base` (both normalized); `key` is the name `base`
/// has in its parent, which decides the exceptions.
pub fn merge(base: &mut Node, over: Node, key: &str) {
    if over.tag == Tag::Override || REPLACED.contains(&key) {
        *base = over;
        return;
    }
    match (&mut base.val, over.val) {
        (Val::Map(b), Val::Map(o)) => {
            for (k, v) in o {
                let at = b.iter().position(|(bk, _)| bk.name == k.name);
                match (at, v.tag) {
                    (Some(i), Tag::Reset) => {
                        b.remove(i);
                    }
                    (None, Tag::Reset) => {}
                    (Some(i), _) => merge(&mut b[i].1, v, &k.name),
                    (None, _) => b.push((k, v)),
                }
            }
        }
        (Val::Seq(b), Val::Seq(o)) if UNIQUE.contains(&key) => {
            for item in o {
                let id = unique_key(key, &item);
                match b.iter().position(|x| unique_key(key, x) == id) {
                    Some(i) if id.is_some() => b[i] = item,
                    _ => b.push(item),
                }
            }
        }
        (Val::Seq(b), Val::Seq(o)) => b.extend(o),
        (_, val) => {
            base.val = val;
            base.at = over.at;
        }
    }
}

/// The identity of a `ports`/`volumes`/`secrets`/`configs` entry.
fn unique_key(key: &str, item: &Node) -> Option<String> {
    if let Some(s) = item.str() {
        return Some(match key {
            "volumes" => {
                let parts: Vec<&str> = s.split(':').collect();
                match parts.len() {
                    1 => parts[0].to_string(),
                    _ => parts[1].to_string(),
                }
            }
            "secrets" => format!("/run/secrets/{s}"),
            "configs" => format!("/{s}"),
            _ => s.to_string(),
        });
    }
    let get = |k: &str| item.get(k).and_then(Node::str).unwrap_or("").to_string();
    Some(match key {
        "ports" => format!(
            "{}:{}:{}/{}",
            get("host_ip"),
            get("published"),
            get("target"),
            get("protocol")
        ),
        _ if !get("target").is_empty() => get("target"),
        "secrets" => format!("/run/secrets/{}", get("source")),
        "configs" => format!("/{}", get("source")),
        _ => return None,
    })
}

/// A problem with `extends`.
#[derive(Debug)]
pub struct ExtendsError {
    pub at: Pos,
    pub message: String,
}

/// Resolves `extends` in the `services` of one file. `load` reads another
/// file's services (for `extends.file`), relative to this file.
pub fn resolve_extends(
    services: &mut Node,
    load: &mut dyn FnMut(&str, &Pos) -> Result<Node, ExtendsError>,
) -> Result<(), ExtendsError> {
    let names: Vec<String> = match services.map() {
        Some(m) => m.iter().map(|(k, _)| k.name.clone()).collect(),
        None => return Ok(()),
    };
    for name in names {
        let mut seen = vec![];
        let resolved = extended(services, &name, load, &mut seen)?;
        if let Val::Map(m) = &mut services.val {
            if let Some(slot) = m.iter_mut().find(|(k, _)| k.name == name) {
                slot.1 = resolved;
            }
        }
    }
    Ok(())
}

fn extended(
    services: &Node,
    name: &str,
    load: &mut dyn FnMut(&str, &Pos) -> Result<Node, ExtendsError>,
    seen: &mut Vec<String>,
) -> Result<Node, ExtendsError> {
    let svc = services.get(name).cloned().ok_or_else(|| ExtendsError {
        at: services.at.clone(),
        message: format!("extends names service {name:?}, which is not defined"),
    })?;
    let Some(ext) = svc.get("extends").cloned() else {
        return Ok(svc);
    };
    if seen.iter().any(|s| s == name) {
        return Err(ExtendsError {
            at: ext.at,
            message: format!("extends loops: {} -> {name}", seen.join(" -> ")),
        });
    }
    seen.push(name.to_string());
    let (base_name, file) = match (ext.str(), ext.get("service").and_then(Node::str)) {
        (Some(s), _) | (None, Some(s)) => (s.to_string(), ext.get("file").and_then(Node::str)),
        _ => {
            return Err(ExtendsError {
                at: ext.at,
                message: "extends takes a service name or {service, file}".into(),
            })
        }
    };
    let mut base = match file {
        Some(f) => {
            let mut other = load(f, &ext.at)?;
            resolve_extends(&mut other, load)?;
            other.get(&base_name).cloned().ok_or_else(|| ExtendsError {
                at: ext.at.clone(),
                message: format!("extends: {f} defines no service {base_name:?}"),
            })?
        }
        None => extended(services, &base_name, load, seen)?,
    };
    let mut own = svc;
    if let Val::Map(m) = &mut own.val {
        m.retain(|(k, _)| k.name != "extends");
    }
    normalize_service(&mut base);
    normalize_service(&mut own);
    merge(&mut base, own, "");
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::super::yaml::parse;
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn p(text: &str) -> Node {
        parse(&Arc::new(PathBuf::from("c.yaml")), text).unwrap()
    }

    fn merged(a: &str, b: &str) -> Node {
        let mut a = p(a);
        let mut b = p(b);
        normalize_service(&mut a);
        normalize_service(&mut b);
        merge(&mut a, b, "");
        a
    }

    fn strs(n: &Node) -> Vec<String> {
        n.seq()
            .unwrap()
            .iter()
            .map(|i| i.str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn mappings_merge_and_scalars_override() {
        let m = merged(
            "image: a\nenvironment: [A=1, B=2]\n",
            "image: b\nenvironment: {B: 3}\n",
        );
        assert_eq!(m.get("image").unwrap().str(), Some("b"));
        let env = m.get("environment").unwrap();
        assert_eq!(env.get("A").unwrap().str(), Some("1"));
        assert_eq!(env.get("B").unwrap().str(), Some("3"));
    }

    #[test]
    fn sequences_append_commands_replace() {
        let m = merged(
            "dns: 1.1.1.1\ncommand: [a, b]\nhealthcheck: {test: [CMD, x], retries: 2}\n",
            "dns: [8.8.8.8]\ncommand: [c]\nhealthcheck: {test: [CMD, y]}\n",
        );
        assert_eq!(strs(m.get("dns").unwrap()), ["1.1.1.1", "8.8.8.8"]);
        assert_eq!(strs(m.get("command").unwrap()), ["c"]);
        let hc = m.get("healthcheck").unwrap();
        assert_eq!(strs(hc.get("test").unwrap()), ["CMD", "y"]);
        assert_eq!(hc.get("retries").unwrap().str(), Some("2"));
    }

    #[test]
    fn unique_resources_replace_by_target() {
        let m = merged(
            "volumes: [foo:/app, /a:/a]\nports: ['80:80']\n",
            "volumes: [bar:/app, {type: bind, source: /b, target: /b}]\nports: ['80:80', '443:443']\n",
        );
        assert_eq!(m.get("volumes").unwrap().seq().unwrap().len(), 3);
        assert_eq!(
            m.get("volumes").unwrap().seq().unwrap()[0].str(),
            Some("bar:/app")
        );
        assert_eq!(strs(m.get("ports").unwrap()), ["80:80", "443:443"]);
    }

    #[test]
    fn reset_and_override() {
        let m = merged(
            "ports: ['8080:80']\nenvironment: {FOO: BAR, X: 1}\ncap_add: [A]\n",
            "ports: !reset []\nenvironment: {FOO: !reset null}\ncap_add: !override [B]\n",
        );
        assert!(m.get("ports").is_none());
        assert!(m.get("environment").unwrap().get("FOO").is_none());
        assert_eq!(strs(m.get("cap_add").unwrap()), ["B"]);
    }

    #[test]
    fn depends_on_list_becomes_conditions() {
        let m = merged(
            "depends_on: [db]\n",
            "depends_on: {cache: {condition: service_healthy}}\n",
        );
        let d = m.get("depends_on").unwrap();
        let cond = |s: &str| {
            d.get(s)
                .unwrap()
                .get("condition")
                .unwrap()
                .str()
                .unwrap()
                .to_string()
        };
        assert_eq!(cond("db"), "service_started");
        assert_eq!(cond("cache"), "service_healthy");
    }

    #[test]
    fn extends_in_file_and_loops() {
        let mut s = p("base: {image: a, environment: [A=1]}\nweb: {extends: base, environment: [B=2]}\nx: {extends: {service: web}}\n");
        resolve_extends(&mut s, &mut |_, at| {
            Err(ExtendsError {
                at: at.clone(),
                message: "no".into(),
            })
        })
        .unwrap();
        let x = s.get("x").unwrap();
        assert_eq!(x.get("image").unwrap().str(), Some("a"));
        assert_eq!(
            x.get("environment").unwrap().get("B").unwrap().str(),
            Some("2")
        );
        assert!(x.get("extends").is_none());
        let mut l = p("a: {extends: b}\nb: {extends: a}\n");
        let e = resolve_extends(&mut l, &mut |_, at| {
            Err(ExtendsError {
                at: at.clone(),
                message: "no".into(),
            })
        })
        .unwrap_err();
        assert!(e.message.contains("loops"), "{}", e.message);
    }
}
