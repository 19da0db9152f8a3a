//! Small conversions every importer needs: names the config accepts, template text, durations
//! and sizes as the config writes them.

use serde_json::Value;

/// `text` as a template that renders to itself: text that holds template syntax is wrapped in
/// `{% raw %}` so `{{` stays text.
pub fn literal(text: &str) -> String {
    if cj_spec::is_template(text) {
        // `{% endraw %}` cannot appear inside a raw block: split around it.
        text.split("{% endraw %}")
            .map(|piece| format!("{{% raw %}}{piece}{{% endraw %}}"))
            .collect::<Vec<_>>()
            .join("{{ \"{% endraw %}\" }}")
    } else {
        text.to_string()
    }
}

/// A job, service or host name the config accepts (1 to 63 letters, digits, `-`, `_` or `.`),
/// made from `raw` by replacing anything else with `-`.
pub fn name(raw: &str) -> String {
    let mut name: String = raw
        .trim_matches('/')
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '-',
        })
        .collect();
    if name.is_empty() {
        name.push_str("unnamed");
    }
    while name.len() > 63 {
        name.pop();
    }
    name
}

/// A volume name the config accepts (1 to 40 lowercase letters, digits or `-`, starting with
/// a letter), made from `raw`: `db_data` becomes `db-data`, `/var/lib/data` `var-lib-data`.
pub fn volume_name(raw: &str) -> String {
    let mut name = String::new();
    for c in raw.to_ascii_lowercase().chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        let starting = name.is_empty();
        if (starting && !c.is_ascii_lowercase()) || (c == '-' && name.ends_with('-')) {
            continue;
        }
        name.push(c);
    }
    name.truncate(40);
    let name = name.trim_end_matches('-').to_string();
    if name.is_empty() { "data".into() } else { name }
}

/// Whether `path` is what an http check takes: a path (`/health`) or an `http(s)://` URL, at
/// most 2048 characters, without spaces or control characters.
pub fn is_check_path(path: &str) -> bool {
    (path.starts_with('/') || path.starts_with("http://") || path.starts_with("https://"))
        && path.len() <= 2048
        && !path.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A variable name usable as `{{ vars.NAME }}`: a letter or `_`, then letters, digits or `_`.
pub fn var_name(raw: &str) -> String {
    let mut name: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// `{{ vars.NAME }}`.
pub fn var_ref(name: &str) -> String {
    format!("{{{{ vars.{name} }}}}")
}

/// Whether a variable or key of this name most likely holds a secret.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "PRIVATE_KEY",
        "API_KEY",
        "CREDENTIAL",
    ]
    .iter()
    .any(|word| upper.contains(word))
        || upper.ends_with("_KEY")
        || upper == "KEY"
}

/// Milliseconds as the config writes a duration: `500ms`, `30s`, `1m30s`, `2h`.
pub fn duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut seconds = ms / 1000;
    let mut text = String::new();
    for (unit, size) in [("h", 3600), ("m", 60)] {
        if seconds >= size {
            text.push_str(&format!("{}{unit}", seconds / size));
            seconds %= size;
        }
    }
    if seconds > 0 {
        text.push_str(&format!("{seconds}s"));
    }
    text
}

/// Bytes as the config writes a memory size: `512m`, `2g`, or bytes when not whole MiB.
pub fn memory(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes.is_multiple_of(1024 * MIB) {
        format!("{}g", bytes / (1024 * MIB))
    } else if bytes.is_multiple_of(MIB) {
        format!("{}m", bytes / MIB)
    } else {
        bytes.to_string()
    }
}

/// A value shown in a report: scalars as written, the rest as compact JSON, cut to 80 chars.
pub fn shown(value: &Value) -> String {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    };
    let mut shown: String = text.chars().take(80).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    shown.replace('\n', "\\n")
}

/// Null, `""`, `[]` or `{}`: a value that says "not set" (as Marathon's GET answers write it).
pub fn is_unset(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// A scalar as text (`8080`, `true`, `web`); `None` for lists, maps and null.
pub fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A list of scalars, or one scalar written alone (`cap_add: NET_ADMIN`), as text.
pub fn scalars(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().filter_map(scalar).collect(),
        other => scalar(other).into_iter().collect(),
    }
}

/// A command written as a string (split like a shell would) or a list of strings.
pub fn argv(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(line) => shell_words::split(line).ok(),
        Value::Array(items) => items.iter().map(scalar).collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_text_with_template_syntax_is_kept_raw() {
        assert_eq!(literal("plain $HOME"), "plain $HOME");
        assert_eq!(literal("a {{ b }}"), "{% raw %}a {{ b }}{% endraw %}");
    }

    #[test]
    fn names_are_made_acceptable() {
        assert_eq!(name("/product/db"), "product-db");
        assert_eq!(name("web_1.x"), "web_1.x");
        assert_eq!(name(&"a".repeat(70)).len(), 63);
        assert_eq!(var_name("db-password"), "db_password");
        assert_eq!(volume_name("db_data"), "db-data");
        assert_eq!(
            volume_name("/usr/src/app/node_modules"),
            "usr-src-app-node-modules"
        );
        assert_eq!(volume_name("__"), "data");
        assert_eq!(var_name("1x"), "_1x");
    }

    #[test]
    fn durations_and_sizes_read_as_written_by_hand() {
        assert_eq!(duration(90_000), "1m30s");
        assert_eq!(duration(500), "500ms");
        assert_eq!(duration(7_200_000), "2h");
        assert_eq!(memory(512 * 1024 * 1024), "512m");
        assert_eq!(memory(2 * 1024 * 1024 * 1024), "2g");
    }

    #[test]
    fn secret_looking_names() {
        assert!(looks_secret("POSTGRES_PASSWORD"));
        assert!(looks_secret("SECRET_KEY_BASE"));
        assert!(looks_secret("RAILS_MASTER_KEY"));
        assert!(!looks_secret("KEYCLOAK_URL"));
        assert!(!looks_secret("DB_HOST"));
    }
}
