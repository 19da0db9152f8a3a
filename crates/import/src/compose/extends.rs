//! `extends:` within the file: a service starts from another service's definition, merged as
//! Compose merges (mappings key by key, the lists Compose appends appended, the rest replaced).

use serde_json::{Map, Value};

use crate::report::Report;

/// Keys whose lists Compose appends to the base's instead of replacing.
const APPENDED: &[&str] = &[
    "ports",
    "expose",
    "dns",
    "dns_search",
    "cap_add",
    "cap_drop",
    "devices",
    "external_links",
    "volumes",
    "tmpfs",
    "security_opt",
    "env_file",
];

/// Resolves every service's `extends` of a service in the same file, in place. One from
/// another file cannot be read here: it stays, and is reported by the service's import.
pub fn resolve(services: &mut Map<String, Value>, report: &mut Report) {
    let names: Vec<String> = services.keys().cloned().collect();
    for name in names {
        let mut chain = Vec::new();
        if let Some(resolved) = resolved(&name, services, &mut chain, report) {
            services.insert(name, resolved);
        }
    }
}

/// The service `name` with its `extends` applied; `None` when it extends nothing in this file.
fn resolved(
    name: &str,
    services: &Map<String, Value>,
    chain: &mut Vec<String>,
    report: &mut Report,
) -> Option<Value> {
    let service = services.get(name)?;
    let extends = service.get("extends")?;
    let (base, file) = match extends {
        Value::String(base) => (base.clone(), None),
        Value::Object(fields) => (
            fields.get("service")?.as_str()?.to_string(),
            fields.get("file").and_then(Value::as_str),
        ),
        _ => return None,
    };
    if file.is_some() {
        return None;
    }
    let path = format!("services.{name}.extends");
    if chain.iter().any(|seen| seen == name) {
        report.note(path, format!("extends {base} in a cycle: left as written"));
        return None;
    }
    chain.push(name.to_string());
    let base_value = match resolved(&base, services, chain, report) {
        Some(value) => value,
        None => match services.get(&base) {
            Some(value) => value.clone(),
            None => {
                report.note(path, format!("extends {base}, which is not in the file"));
                return None;
            }
        },
    };
    chain.pop();
    let mut merged = base_value;
    if let Value::Object(fields) = &mut merged {
        fields.remove("extends");
        // A service's dependencies and profiles are its own, never inherited (Compose).
        fields.remove("depends_on");
        fields.remove("profiles");
    }
    let mut own = service.clone();
    if let Value::Object(fields) = &mut own {
        fields.remove("extends");
    }
    merge(&mut merged, own, "");
    report.note(path, format!("merged the settings of service {base}"));
    Some(merged)
}

/// Merges `over` into `base` as Compose does.
fn merge(base: &mut Value, over: Value, key: &str) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value, &key),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (Value::Array(base), Value::Array(over)) if APPENDED.contains(&key) => {
            for item in over {
                if !base.contains(&item) {
                    base.push(item);
                }
            }
        }
        (base, over) => *base = over,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extends_merges_maps_appends_ports_and_replaces_commands() {
        let mut services = json!({
            "base": {"image": "app:1", "environment": {"A": "1", "B": "2"}, "ports": ["80"], "command": "a"},
            "web": {"extends": {"service": "base"}, "environment": {"B": "3"}, "ports": ["81"], "command": "b"},
            "deep": {"extends": "web", "image": "app:2"}
        });
        let mut report = Report::default();
        resolve(services.as_object_mut().unwrap(), &mut report);
        assert_eq!(
            services["web"],
            json!({"image": "app:1", "environment": {"A": "1", "B": "3"}, "ports": ["80", "81"], "command": "b"})
        );
        assert_eq!(services["deep"]["image"], "app:2");
        assert_eq!(services["deep"]["ports"], json!(["80", "81"]));
    }

    #[test]
    fn a_cycle_is_left_as_written() {
        let mut services = json!({"a": {"extends": "b"}, "b": {"extends": "a"}});
        let mut report = Report::default();
        resolve(services.as_object_mut().unwrap(), &mut report);
        let notes = report.finish(Vec::new()).notes;
        assert!(
            notes.iter().any(|note| note.note.contains("cycle")),
            "{notes:?}"
        );
    }
}
