//! Secret values never leave the server except towards the container that needs them: a
//! job's `secret_env` keys and an environment's secret variables are masked (`******`) in
//! every answer that could show them (a version's file, a diff, Docker's inspect) whatever
//! the caller's role. Only the agent's assignments carry the real values.

use cj_spec::ServiceSpec;

/// What a masked value reads as.
pub use cj_api::SECRET_MASK as MASK;

/// A value shorter than this is masked only where it is written as a secret key's value: on
/// its own, "1" or "yes" would mask unrelated text everywhere.
pub(crate) const MIN_MASKED_ANYWHERE: usize = 6;

/// The `secret_env` keys of a service's jobs with each value its tasks give them.
pub fn secret_env_values(spec: &ServiceSpec) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for job in &spec.jobs {
        for key in &job.secret_env {
            for task in &job.tasks {
                if let Some(value) = task.env.get(key)
                    && !value.is_empty()
                    && !pairs.iter().any(|(k, v)| k == key && v == value)
                {
                    pairs.push((key.clone(), value.clone()));
                }
            }
        }
    }
    pairs
}

/// The file as written with the values of its `secret_env` keys masked: where each is written
/// after its key (`KEY: value`, `KEY: "value"`, `KEY=value`), and anywhere else it appears
/// when it is long enough not to be mistaken for other text.
pub fn mask_source(source: &str, spec: &ServiceSpec) -> String {
    let pairs = secret_env_values(spec);
    if pairs.is_empty() {
        return source.to_owned();
    }
    let mut masked = source.to_owned();
    for (key, value) in &pairs {
        masked = mask_after_key(&masked, key, value);
    }
    let values: Vec<String> = pairs
        .into_iter()
        .map(|(_, value)| value)
        .filter(|value| value.len() >= MIN_MASKED_ANYWHERE)
        .collect();
    mask_text(&masked, &values)
}

/// Every occurrence of `KEY` followed by `:` or `=` (spaces and a quote allowed between) and
/// then `value`, with the value masked.
fn mask_after_key(text: &str, key: &str, value: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(key) {
        let (before, from_key) = rest.split_at(at);
        out.push_str(before);
        out.push_str(key);
        let after_key = &from_key[key.len()..];
        let separator_len = after_key
            .char_indices()
            .find(|(_, c)| !matches!(c, ' ' | '\t' | ':' | '=' | '"' | '\''))
            .map(|(index, _)| index)
            .unwrap_or(after_key.len());
        let separator = &after_key[..separator_len];
        let names_a_value = separator.contains(':') || separator.contains('=');
        if names_a_value && after_key[separator_len..].starts_with(value) {
            out.push_str(separator);
            out.push_str(MASK);
            rest = &after_key[separator_len + value.len()..];
        } else {
            rest = after_key;
        }
    }
    out.push_str(rest);
    out
}

/// `text` with every occurrence of each of `secrets` masked.
pub fn mask_text(text: &str, secrets: &[String]) -> String {
    let mut masked = text.to_owned();
    for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
        if masked.contains(secret.as_str()) {
            masked = masked.replace(secret.as_str(), MASK);
        }
    }
    masked
}

/// Replaces every occurrence of a secret value in the strings of `value` with [`MASK`], and
/// the value of every `KEY=value` string whose key is one of `keys` (Docker's `Config.Env`).
pub fn mask_json(value: &mut serde_json::Value, secrets: &[String], keys: &[String]) {
    match value {
        serde_json::Value::String(text) => {
            if let Some((key, _)) = text.split_once('=')
                && keys.iter().any(|secret_key| secret_key == key)
            {
                *text = format!("{key}={MASK}");
                return;
            }
            *text = mask_text(text, secrets);
        }
        serde_json::Value::Array(items) => {
            items.iter_mut().for_each(|v| mask_json(v, secrets, keys));
        }
        serde_json::Value::Object(map) => {
            map.values_mut().for_each(|v| mask_json(v, secrets, keys));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ServiceSpec {
        cj_spec::parse_service("s.yaml", yaml).unwrap()
    }

    #[test]
    fn secret_env_values_are_masked_where_written_and_long_ones_everywhere() {
        let yaml = "service: s\njobs:\n  - name: db\n    image: db:1\n    env: { DB_PASSWORD: \"hunter22\", PIN: '42', USER: shop }\n    secret_env: [DB_PASSWORD, PIN]\n    command: [sh, -c, 'echo hunter22']\n    tasks:\n      - name: db\n      - name: db-2\n        env: [\"PIN=42\", \"DB_PASSWORD=other-secret\"]\n";
        let masked = mask_source(yaml, &spec(yaml));
        assert!(!masked.contains("hunter22"), "{masked}");
        assert!(!masked.contains("other-secret"), "{masked}");
        assert!(masked.contains("DB_PASSWORD: \"******\""), "{masked}");
        assert!(masked.contains("PIN: '******'"), "{masked}");
        assert!(masked.contains("\"PIN=******\""), "{masked}");
        assert!(masked.contains("USER: shop"), "{masked}");
        // A short value is masked only as the key's value, not as any "42" in the file.
        let short = "service: s\njobs:\n  - name: db\n    image: db:42\n    env: { PIN: 42 }\n    secret_env: [PIN]\n";
        let masked = mask_source(short, &spec(short));
        assert!(
            masked.contains("image: db:42") && masked.contains("PIN: ******"),
            "{masked}"
        );
    }

    #[test]
    fn docker_env_entries_of_secret_keys_are_masked_in_inspect() {
        let mut inspect = serde_json::json!({"Config": {"Env": ["PIN=42", "USER=shop",
            "URL=mysql://u:longsecret@db"], "Cmd": ["echo", "longsecret"]}});
        mask_json(&mut inspect, &["longsecret".into()], &["PIN".into()]);
        assert_eq!(
            inspect,
            serde_json::json!({"Config": {"Env": ["PIN=******", "USER=shop",
                "URL=mysql://u:******@db"], "Cmd": ["echo", "******"]}})
        );
    }
}
