//! Templates where they are written in a file: each one is checked against the template
//! language ([`crate::template_syntax`]) once, where it is written; one in a field that is not
//! rendered (names, hosts, dependencies, routes, constraints) is refused; and every name a
//! template uses is recorded with its place, for [`crate::check_templates`].
//!
//! Rendered fields: the image, command arguments, environment values, Docker field values (at
//! any depth), the check's URL and command, volume seeds, and an artifact's URL and checksum.

use serde_saphyr::Location;

use crate::docker_fields::DockerFields;
use crate::parse::Checker;
use crate::settings::key_segment;
use crate::template_syntax::{Reference, is_template, read_template};

/// A name a template uses, and where.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TemplateUse {
    pub line: u64,
    pub column: u64,
    /// The field path of the value.
    pub path: String,
    pub reference: Reference,
}

/// What may hold templates, for the error about a field that may not.
const RENDERED_FIELDS: &str = "only image, command, env values, docker_config values, check, volume seeds and artifact url and sha256 are rendered";

impl Checker<'_> {
    /// Checks `text` written at `path` if it is a template, and records the names it uses;
    /// returns whether it is one. `at` locates it when the file has no place for `path` (a
    /// value reached through a merge key).
    pub(crate) fn template_value(&mut self, at: &Location, path: &str, text: &str) -> bool {
        if !is_template(text) {
            return false;
        }
        match read_template(text) {
            Ok(references) => {
                for found in references {
                    let (line, column) = self.place_in_value(at, path, found.line);
                    let template_use = TemplateUse {
                        line,
                        column,
                        path: path.to_owned(),
                        reference: found.item,
                    };
                    if self.template_uses_seen.insert(template_use.clone()) {
                        self.template_uses.push(template_use);
                    }
                }
            }
            Err(problems) => {
                for problem in problems {
                    let (line, column) = self.place_in_value(at, path, problem.line);
                    self.error_at(line, column, path, problem.item);
                }
            }
        }
        true
    }

    /// Reports a template in a field that is not rendered (named by the last part of `path`);
    /// returns whether there was one.
    pub(crate) fn refuse_template(&mut self, at: &Location, path: &str, text: &str) -> bool {
        let field = last_field(path).to_owned();
        self.refuse_template_in(at, path, text, &field)
    }

    /// [`Self::refuse_template`] for a field named `field` in the message.
    pub(crate) fn refuse_template_in(
        &mut self,
        at: &Location,
        path: &str,
        text: &str,
        field: &str,
    ) -> bool {
        if !is_template(text) {
            return false;
        }
        let message = format!("templates are not allowed in {field}; {RENDERED_FIELDS}");
        self.error(at, path, message);
        true
    }

    /// Checks the templates in one Docker section's values; names are never rendered.
    pub(crate) fn docker_templates(&mut self, section: &str, fields: &DockerFields) {
        for (key, value) in &fields.0 {
            let path = format!("{section}{}", key_segment(&key.value));
            let at = &key.referenced;
            if !self.refuse_template_in(at, &path, &key.value, "Docker field names") {
                self.json_templates(at, &path, value);
            }
        }
    }

    fn json_templates(&mut self, at: &Location, path: &str, value: &serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(text) => {
                self.template_value(at, path, text);
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.json_templates(at, &format!("{path}[{index}]"), item);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let item_path = format!("{path}{}", key_segment(key));
                    if !self.refuse_template_in(at, &item_path, key, "Docker field names") {
                        self.json_templates(at, &item_path, item);
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// The file's line and column of line `template_line` of the value at `path`. Only a literal
    /// block (`|`) keeps the template's lines as the file's; any other value is located at its
    /// start.
    fn place_in_value(&mut self, at: &Location, path: &str, template_line: usize) -> (u64, u64) {
        let (source, locator) = self.locator();
        let Some(place) = locator.place(path) else {
            return (at.line(), at.column());
        };
        if !place.literal_block {
            return (place.line, place.column);
        }
        // The block's place is its text's first line.
        let line = place.line + template_line.saturating_sub(1) as u64;
        let indented = usize::try_from(line - 1)
            .ok()
            .and_then(|index| source.lines().nth(index));
        match indented {
            Some(text) if !text.trim().is_empty() => {
                let indent = text.len() - text.trim_start_matches(' ').len();
                (line, indent as u64 + 1)
            }
            _ => (place.line, place.column),
        }
    }
}

/// `service` for `service`, `hosts` for `jobs[0].hosts[2]`.
fn last_field(path: &str) -> &str {
    let mut field = path;
    while let Some(open) = field.rfind('[').filter(|_| field.ends_with(']')) {
        field = &field[..open];
    }
    field.rsplit('.').next().unwrap_or(field)
}

#[cfg(test)]
mod tests {
    use super::last_field;
    use crate::parse::parse_with_templates;
    use crate::parse_service;
    use crate::template_syntax::Reference;

    fn errors(source: &str) -> String {
        parse_service("s.yaml", source).unwrap_err().to_string()
    }

    #[test]
    fn the_field_of_a_path_is_its_last_key() {
        assert_eq!(last_field("service"), "service");
        assert_eq!(last_field("jobs[0].hosts[2]"), "hosts");
        assert_eq!(last_field("jobs[0].run_on_host"), "run_on_host");
    }

    #[test]
    fn templates_in_rendered_fields_are_recorded_with_their_place() {
        let source = "service: core\njobs:\n  - name: api\n    image: \"reg/{{ vars.image }}:1\"\n    env: { DB: \"{{ addr('db') }}\" }\n    docker_config:\n      docker_config:\n        Labels: { env: \"{{ env.name }}\" }\n    command: |\n      sh\n      {{ vars.flag }}\n  - name: db\n";
        let (spec, uses) = parse_with_templates("s.yaml", source).unwrap();
        assert_eq!(
            spec.jobs[0].tasks[0].image.as_deref(),
            Some("reg/{{ vars.image }}:1")
        );
        let found: Vec<(u64, u64, &str, &Reference)> = uses
            .iter()
            .map(|u| (u.line, u.column, u.path.as_str(), &u.reference))
            .collect();
        assert_eq!(
            found,
            [
                (4, 12, "jobs[0].image", &Reference::Var("image".into())),
                (11, 7, "jobs[0].command", &Reference::Var("flag".into())),
                (
                    5,
                    16,
                    "jobs[0].env.DB",
                    &Reference::Addr {
                        service: None,
                        job: "db".into()
                    }
                ),
                (
                    8,
                    24,
                    "jobs[0].docker_config.docker_config.Labels.env",
                    &Reference::EnvName
                ),
            ]
        );
    }

    #[test]
    fn a_syntax_error_is_located_at_its_value_and_line() {
        assert_eq!(
            errors("service: core\njobs:\n  - name: api\n    env:\n      A: \"{{ vars.x \"\n"),
            "s.yaml:5:10: jobs[0].env.A: template syntax error: unexpected end of input, expected end of variable block (to write {{ or {% as text, put the value in {% raw %}...{% endraw %})"
        );
        assert_eq!(
            errors(
                "service: core\njobs:\n  - name: api\n    env:\n      A: |\n        first\n        {{ nope }}\n"
            ),
            "s.yaml:7:9: jobs[0].env.A: unknown name `nope` in template; use env.name, vars.NAME, task.name, task.index, port or addr(\"job\")"
        );
    }

    #[test]
    fn templates_where_nothing_is_rendered_are_refused() {
        let message = errors(
            "service: core\njobs:\n  - name: api\n    instances: 2\n    hosts: [\"{{ vars.host }}\"]\n    constraints: { zone: \"{{ vars.zone }}\" }\n    env: { \"{{ x }}\": 1 }\n    docker_config:\n      docker_hostconfig:\n        LogConfig: { Config: { \"{{ k }}\": v } }\n",
        );
        let lines: Vec<&str> = message.lines().collect();
        assert_eq!(lines.len(), 4, "{message}");
        for expected in [
            "s.yaml:5:13: jobs[0].hosts[0]: templates are not allowed in hosts; only image, command, env values, docker_config values, check, volume seeds and artifact url and sha256 are rendered",
            "s.yaml:7:10: jobs[0].env[\"{{ x }}\"]: templates are not allowed in env names",
            "LogConfig.Config[\"{{ k }}\"]: templates are not allowed in Docker field names",
            "s.yaml:6:26: jobs[0].constraints.zone: templates are not allowed in constraints",
        ] {
            assert!(
                lines.iter().any(|line| line.contains(expected)),
                "{expected}\n{message}"
            );
        }
    }

    #[test]
    fn a_raw_block_writes_braces_as_text() {
        let spec = parse_service(
            "s.yaml",
            "service: core\njobs:\n  - name: api\n    docker_config:\n      docker_hostconfig:\n        LogConfig: { Type: json-file, Config: { tag: \"{% raw %}{{.Name}}{% endraw %}\" } }\n",
        )
        .unwrap();
        assert_eq!(
            spec.jobs[0].tasks[0].docker_hostconfig["LogConfig"]["Config"]["tag"],
            "{% raw %}{{.Name}}{% endraw %}"
        );
    }
}
