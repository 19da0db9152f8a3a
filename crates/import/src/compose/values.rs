//! Reading one Compose value as the config needs it: a template (interpolated, addresses
//! rewritten), or a plain value with its variables fixed at their defaults.

use std::collections::BTreeMap;

use serde_json::Value;

use super::addresses::{self, Reference};
use super::interpolate::{Interpolated, interpolate};
use crate::report::Report;
use crate::text::{scalar, shown};

/// What a service's conversion needs of the rest of the file.
pub struct FileContext<'a> {
    /// Compose service name → the `depends_on` entry naming its job from this service's file
    /// (`db`, or `shop-seed/db` across files).
    pub dependency_names: &'a dyn Fn(&str) -> String,
    /// The file's top-level `secrets:`.
    pub secrets: Option<&'a Value>,
    /// Reads `env_file:` files beside the Compose file.
    pub read_beside: Option<crate::ReadBeside<'a>>,
    /// Named volumes used by more than one service.
    pub shared_volumes: &'a [String],
    /// The directory bind mounts are relative to, if known.
    pub base_dir: Option<&'a str>,
}

/// What every value of one service is read against.
pub struct Reader<'a> {
    /// Compose service name → what `addr(...)` takes for it.
    pub targets: &'a BTreeMap<String, String>,
    /// The addresses found, with where.
    pub references: Vec<(Reference, String)>,
    pub report: &'a mut Report,
}

impl Reader<'_> {
    /// A templated value (env, command, image, Docker fields): variables become
    /// `{{ vars.NAME }}`, other services' addresses `{{ addr("job") }}`.
    pub fn template(&mut self, value: &Value, path: &str) -> Option<String> {
        let text = scalar(value)?;
        let mut read = interpolate(&text, path, self.report);
        read.record(self.report, path);
        for reference in addresses::rewrite(&mut read, self.targets) {
            self.report.note(
                path,
                format!(
                    "{}{} became {{{{ addr(\"{}\") }}}}: the tasks' HOST:PORT on their hosts' network",
                    reference.service,
                    reference
                        .port
                        .map(|port| format!(":{port}"))
                        .unwrap_or_default(),
                    self.targets[&reference.service]
                ),
            );
            self.references.push((reference, path.to_string()));
        }
        Some(read.template())
    }

    /// A plain value (a port, a count, a size): variables take their defaults, and the report
    /// says so. `None` when a variable without a default is needed.
    pub fn plain(&mut self, value: &Value, path: &str) -> Option<String> {
        let text = scalar(value)?;
        let read: Interpolated = interpolate(&text, path, self.report);
        if !read.has_variables() {
            return Some(read.resolved());
        }
        let names = read.variables().join(", ");
        let unset = read
            .0
            .iter()
            .any(|piece| matches!(piece, super::interpolate::Piece::Var { default: None, .. }));
        if unset {
            self.report.left(
                path,
                shown(value),
                format!("uses {names} without a default, and this field takes no template"),
            );
            return None;
        }
        let resolved = read.resolved();
        self.report.note(
            path,
            format!(
                "{} fixed at its default {resolved:?}: this field takes no template",
                text
            ),
        );
        Some(resolved)
    }

    /// A command: a string split like a shell would, or a list; each argument a template.
    pub fn argv(&mut self, value: &Value, path: &str) -> Option<Vec<String>> {
        match value {
            Value::String(line) => {
                let Ok(words) = shell_words::split(line) else {
                    self.report
                        .left(path, shown(value), "unbalanced quotes: not a command");
                    return None;
                };
                Some(
                    words
                        .iter()
                        .map(|word| {
                            self.template(&Value::String(word.clone()), path)
                                .unwrap_or_default()
                        })
                        .collect(),
                )
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(index, item)| self.template(item, &format!("{path}[{index}]")))
                .collect(),
            _ => None,
        }
    }
}
