//! `env:` clear values and secret names; a role's env merged over the top level's, as Kamal
//! merges them (clear values key by key, secret names added); and `env.tags`, values for the
//! hosts that carry a tag, written as templates that choose by task name.

use serde_json::Value;

use super::Reader;
use crate::fields::{Fields, item, join};
use crate::service_file::Job;
use crate::text::{looks_secret, scalar, var_name, var_ref};

/// One `env` section as Kamal reads it.
#[derive(Debug, Clone, Default)]
pub struct EnvSection {
    entries: Vec<Entry>,
    /// `tags:` (top level only): each tag's own section, in the order written.
    tags: Vec<Tag>,
}

#[derive(Debug, Clone)]
struct Tag {
    name: String,
    path: String,
    env: EnvSection,
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    value: EnvValue,
    /// Where it is written, for the report.
    path: String,
}

#[derive(Debug, Clone, PartialEq)]
enum EnvValue {
    /// A clear value as written (with its ERB markers).
    Clear(String),
    /// A secret, read from the secret of this name (`KEY:ALIAS`; the key itself otherwise).
    Secret(String),
}

/// A host of a job and its Kamal tags.
pub struct TaggedHost<'a> {
    pub name: &'a str,
    pub tags: &'a [String],
}

impl EnvSection {
    /// Reads `value` at `path`: either `NAME: value` pairs, or `clear`, `secret` and (where
    /// `tags_allowed`) `tags`.
    pub fn read(value: &Value, path: &str, tags_allowed: bool, reader: &mut Reader) -> Self {
        let mut section = EnvSection::default();
        let Some(map) = super::mapping(value, path, reader) else {
            return section;
        };
        let structured = ["clear", "secret", "tags"]
            .iter()
            .any(|key| map.contains_key(*key));
        if !structured {
            section.read_clear(value, path, reader);
            return section;
        }
        let mut fields = Fields::new(path, value);
        if let Some(clear) = fields.take("clear") {
            section.read_clear(clear, &fields.at("clear"), reader);
        }
        if let Some(secret) = fields.take("secret") {
            section.read_secrets(secret, &fields.at("secret"), reader);
        }
        if tags_allowed && let Some(tags) = fields.take("tags") {
            let tags_path = fields.at("tags");
            if let Some(tag_map) = super::mapping(tags, &tags_path, reader) {
                for (tag, tag_env) in tag_map {
                    let tag_path = join(&tags_path, &reader.erb.restore(tag));
                    let env = EnvSection::read(tag_env, &tag_path, false, reader);
                    section.tags.push(Tag {
                        name: tag.clone(),
                        path: tag_path,
                        env,
                    });
                }
            }
        }
        reader.leave_rest(fields, |key| match key {
            "tags" => Some("tags apply only to the top-level env, as in Kamal"),
            _ => None,
        });
        section
    }

    fn read_clear(&mut self, value: &Value, path: &str, reader: &mut Reader) {
        let Some(map) = super::mapping(value, path, reader) else {
            return;
        };
        for (key, value) in map {
            let entry_path = join(path, &reader.erb.restore(key));
            let Some(key) = env_key(key, &entry_path, reader) else {
                continue;
            };
            let text = match value {
                Value::Null => String::new(),
                other => match scalar(other) {
                    Some(text) => text,
                    None => {
                        reader.left(&entry_path, other, "expected a string, number or boolean");
                        continue;
                    }
                },
            };
            self.set(Entry {
                key,
                value: EnvValue::Clear(text),
                path: entry_path,
            });
        }
    }

    fn read_secrets(&mut self, value: &Value, path: &str, reader: &mut Reader) {
        let Some(items) = value.as_array() else {
            reader.left(path, value, "expected a list of secret names");
            return;
        };
        if !items.is_empty() && reader.first("secrets") {
            reader.note(
                path,
                "Kamal reads secrets from .kamal/secrets (Kamal 1: .env) when it deploys; here each is a secret variable of the environment: `coding-job env vars ENV --secret NAME --set NAME=VALUE`",
            );
        }
        for (index, secret) in items.iter().enumerate() {
            let entry_path = item(path, index);
            let Some(text) = scalar(secret) else {
                reader.left(&entry_path, secret, "expected a secret name");
                continue;
            };
            let Some(text) = reader.plain(&text, &entry_path, "secret name") else {
                continue;
            };
            // `KEY:ALIAS` sets KEY from the secret ALIAS (Kamal 2).
            let (key, alias) = match text.split_once(':') {
                Some((key, alias)) => (key.trim(), alias.trim()),
                None => (text.trim(), text.trim()),
            };
            let Some(key) = env_key(key, &entry_path, reader) else {
                continue;
            };
            self.set(Entry {
                key,
                value: EnvValue::Secret(alias.to_string()),
                path: entry_path,
            });
        }
    }

    fn set(&mut self, entry: Entry) {
        match self.entries.iter_mut().find(|old| old.key == entry.key) {
            Some(old) => *old = entry,
            None => self.entries.push(entry),
        }
    }

    fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.key == key)
    }

    /// `over` merged over this section, as Kamal merges a role's env over the top level's.
    pub fn merged(&self, over: &EnvSection) -> EnvSection {
        let mut merged = self.clone();
        for entry in &over.entries {
            merged.set(entry.clone());
        }
        merged
    }

    /// Writes this section into `job`, whose tasks run on `hosts` (one each): a value that
    /// differs between hosts (`env.tags`) is a template choosing by task name.
    pub fn apply(&self, job: &mut Job, hosts: &[TaggedHost], reader: &mut Reader) {
        let used: Vec<&Tag> = self
            .tags
            .iter()
            .filter(|tag| hosts.iter().any(|host| host.tags.contains(&tag.name)))
            .collect();
        for tag in &self.tags {
            if hosts.is_empty() {
                let why = "env tags apply to the hosts of a role, and this job has none written";
                reader.left(&tag.path, &Value::String(tag.name.clone()), why);
            }
        }
        if used.is_empty() {
            for entry in &self.entries {
                let value = entry_template(entry, reader);
                write(job, entry, value, reader);
            }
            return;
        }
        let per_task: Vec<(String, EnvSection)> = hosts
            .iter()
            .map(|host| {
                let mut env = EnvSection {
                    entries: self.entries.clone(),
                    tags: Vec::new(),
                };
                for tag in host.tags {
                    if let Some(tagged) = self.tags.iter().find(|known| &known.name == tag) {
                        env = env.merged(&tagged.env);
                    }
                }
                (format!("{}-{}", job.name, host.name), env)
            })
            .collect();
        let mut keys: Vec<&str> = Vec::new();
        for (_, env) in &per_task {
            for entry in &env.entries {
                if !keys.contains(&entry.key.as_str()) {
                    keys.push(&entry.key);
                }
            }
        }
        for key in keys {
            let values: Vec<Option<&Entry>> =
                per_task.iter().map(|(_, env)| env.get(key)).collect();
            let first = values[0];
            let same = values
                .iter()
                .all(|value| value.map(|entry| &entry.value) == first.map(|entry| &entry.value));
            let written = self
                .get(key)
                .or(first)
                .or_else(|| values.iter().flatten().next().copied());
            let Some(written) = written else { continue };
            if same && first.is_some() {
                let value = entry_template(written, reader);
                write(job, written, value, reader);
                continue;
            }
            let otherwise = self
                .get(key)
                .map(|entry| entry_template(entry, reader))
                .unwrap_or_default();
            let mut branches: Vec<(String, Vec<&str>)> = Vec::new();
            for ((task, _), value) in per_task.iter().zip(&values) {
                let text = value
                    .map(|entry| entry_template(entry, reader))
                    .unwrap_or_default();
                if text == otherwise {
                    continue;
                }
                match branches.iter_mut().find(|(known, _)| *known == text) {
                    Some((_, tasks)) => tasks.push(task),
                    None => branches.push((text, vec![task])),
                }
            }
            let value = choose_by_task(&branches, &otherwise);
            write(job, written, value, reader);
        }
        for tag in used {
            let tagged: Vec<&str> = hosts
                .iter()
                .filter(|host| host.tags.contains(&tag.name))
                .map(|host| host.name)
                .collect();
            reader.note(
                &tag.path,
                format!(
                    "applied to the tasks on the hosts tagged {} ({}) by env values that are templates choosing on task.name; a variable only this tag sets is empty on the other hosts, where Kamal leaves it unset",
                    tag.name,
                    tagged.join(", ")
                ),
            );
        }
    }
}

/// Sets `key` in the job's env, unless the value is empty: Kamal passes no empty clear value.
fn write(job: &mut Job, entry: &Entry, value: String, reader: &mut Reader) {
    if value.trim().is_empty() && matches!(entry.value, EnvValue::Clear(_)) {
        reader.note(
            &entry.path,
            "empty: Kamal passes no empty value to the container, so it is not set here either",
        );
        return;
    }
    job.env.insert(entry.key.clone(), value);
}

/// `{% if task.name == "a" or ... %}V{% elif ... %}W{% else %}OTHERWISE{% endif %}`.
fn choose_by_task(branches: &[(String, Vec<&str>)], otherwise: &str) -> String {
    if branches.is_empty() {
        return otherwise.to_string();
    }
    let mut template = String::new();
    for (index, (value, tasks)) in branches.iter().enumerate() {
        let condition = tasks
            .iter()
            .map(|task| format!("task.name == \"{task}\""))
            .collect::<Vec<_>>()
            .join(" or ");
        let keyword = if index == 0 { "if" } else { "elif" };
        template.push_str(&format!("{{% {keyword} {condition} %}}{value}"));
    }
    if !otherwise.is_empty() {
        template.push_str(&format!("{{% else %}}{otherwise}"));
    }
    template.push_str("{% endif %}");
    template
}

/// The template of one entry's value: a clear value with its variables, or a secret variable.
fn entry_template(entry: &Entry, reader: &mut Reader) -> String {
    match &entry.value {
        EnvValue::Clear(text) => clear_template(text, &entry.path, reader),
        EnvValue::Secret(alias) => {
            let name = var_name(alias);
            reader.report.variable(&name, None, true, &entry.path);
            var_ref(&name)
        }
    }
}

/// A clear value as a template. Kamal lets the host's shell expand `${NAME}` in clear values
/// when it starts the container (it escapes any other `$`): each becomes the variable `NAME`.
pub fn clear_template(text: &str, path: &str, reader: &mut Reader) -> String {
    let mut template = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        let plain_name = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let (before, variable) = match plain_name {
            true => (&rest[..start], Some(name)),
            false => (&rest[..start + 2 + end + 1], None),
        };
        template.push_str(&reader.template(before, path));
        if let Some(name) = variable {
            reader.report.variable(name, None, looks_secret(name), path);
            template.push_str(&var_ref(&var_name(name)));
            reader.note(
                path,
                format!(
                    "`${{{name}}}` is expanded by the host's shell when Kamal starts the container; here it is the variable {name}, set for each environment"
                ),
            );
        }
        rest = &after[end + 1..];
    }
    template.push_str(&reader.template(rest, path));
    template
}

/// `key` as an environment variable name, or `None` (reported) when it cannot be one.
fn env_key(key: &str, path: &str, reader: &mut Reader) -> Option<String> {
    let key = reader.plain(key, path, "variable name")?;
    let valid = !key.is_empty()
        && key.len() <= 256
        && !key
            .chars()
            .any(|c| c == '=' || c.is_whitespace() || c.is_control());
    if !valid {
        let why = "not an environment variable name: 1 to 256 bytes without '=', spaces or control characters";
        reader.left(path, &Value::String(key), why);
        return None;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_differ_by_host_choose_by_task_name() {
        let check = |branches: &[(&str, &[&str])], otherwise: &str, expected: &str| {
            let branches: Vec<(String, Vec<&str>)> = branches
                .iter()
                .map(|(value, tasks)| (value.to_string(), tasks.to_vec()))
                .collect();
            assert_eq!(choose_by_task(&branches, otherwise), expected);
        };
        check(&[], "info", "info");
        check(
            &[("debug", &["web-a", "web-b"])],
            "",
            r#"{% if task.name == "web-a" or task.name == "web-b" %}debug{% endif %}"#,
        );
        check(
            &[("debug", &["web-a"]), ("trace", &["web-c"])],
            "info",
            r#"{% if task.name == "web-a" %}debug{% elif task.name == "web-c" %}trace{% else %}info{% endif %}"#,
        );
    }
}
