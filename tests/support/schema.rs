//! Checks a JSON document against a JSON Schema, for the subset the
//! project's schemas use: `type` (one or several), `enum`, `required`,
//! `properties`, `additionalProperties: false`, `items`. Written here rather
//! than taken from a crate: the full validators pull dozens of crates into
//! the vendored sources the packages are built from, for five keywords.
//! A keyword outside the subset is an error, so a schema cannot silently
//! ask for more than is checked.

use serde_json::Value;

/// Every violation of `schema` by `doc`, with its JSON path; empty when valid.
pub fn violations(schema: &Value, doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(schema, doc, "$", &mut out);
    out
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check(schema: &Value, doc: &Value, at: &str, out: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        out.push(format!("{at}: the schema is not an object"));
        return;
    };
    for key in s.keys() {
        let known = [
            "$schema",
            "title",
            "description",
            "type",
            "enum",
            "required",
            "properties",
            "additionalProperties",
            "items",
        ];
        if !known.contains(&key.as_str()) {
            out.push(format!(
                "{at}: schema keyword {key} is not supported by this checker"
            ));
        }
    }
    if let Some(t) = s.get("type") {
        let allowed: Vec<&str> = match t {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = type_of(doc);
        if !allowed
            .iter()
            .any(|a| *a == actual || (*a == "number" && actual == "integer"))
        {
            out.push(format!("{at}: {actual}, expected {allowed:?}"));
            return;
        }
    }
    if let Some(Value::Array(options)) = s.get("enum") {
        if !options.contains(doc) {
            out.push(format!("{at}: {doc} is not one of {options:?}"));
        }
    }
    if let (Some(props), Value::Object(o)) = (s.get("properties").and_then(Value::as_object), doc) {
        for req in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let req = req.as_str().unwrap_or_default();
            if !o.contains_key(req) {
                out.push(format!("{at}: missing {req}"));
            }
        }
        for (k, v) in o {
            match props.get(k) {
                Some(p) => check(p, v, &format!("{at}.{k}"), out),
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    out.push(format!("{at}: unexpected property {k}"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Value::Array(a)) = (s.get("items"), doc) {
        for (i, v) in a.iter().enumerate() {
            check(items, v, &format!("{at}[{i}]"), out);
        }
    }
}
