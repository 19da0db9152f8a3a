//! What an import carried, changed and left out, gathered while the importers walk a file.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{Import, ImportedFile};

/// A template variable the imported files use (`{{ vars.NAME }}`): set it in the environment
/// (`coding-job env vars ENV --set NAME=VALUE`) before pushing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variable {
    pub name: String,
    /// The value the source gave when the variable is unset (`${PORT:-8080}`), if any.
    pub default: Option<String>,
    /// Whether its value is secret: set it with `--secret NAME`; it is never shown.
    pub secret: bool,
    /// Where the source uses it, first use first.
    pub used_at: Vec<String>,
    /// What the source says when it is unset (`${VAR?message}`), if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required: Option<String>,
}

/// A construct carried with a change the user should know of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub path: String,
    pub note: String,
}

/// A construct of the source that the service files do not carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotCarried {
    /// Where it is in the source (`services.web.networks`).
    pub path: String,
    /// What it was, shortly (`network aliases`, or the value as written).
    pub what: String,
    /// Why it was left.
    pub why: String,
}

#[derive(Debug, Default)]
pub struct Report {
    variables: BTreeMap<String, Variable>,
    notes: Vec<Note>,
    not_carried: Vec<NotCarried>,
}

impl Report {
    /// Records a use of variable `name` at `path`. A default or secrecy learnt from any use
    /// applies to the variable as a whole.
    pub fn variable(&mut self, name: &str, default: Option<&str>, secret: bool, path: &str) {
        let variable = self
            .variables
            .entry(name.to_string())
            .or_insert_with(|| Variable {
                name: name.to_string(),
                default: None,
                secret: false,
                used_at: Vec::new(),
                required: None,
            });
        if variable.default.is_none() {
            variable.default = default.map(str::to_string);
        }
        variable.secret |= secret;
        if !variable.used_at.iter().any(|used| used == path) {
            variable.used_at.push(path.to_string());
        }
    }

    /// Records the message `${VAR?message}` gives for an unset variable.
    pub fn required(&mut self, name: &str, message: &str, path: &str) {
        self.variable(name, None, false, path);
        if let Some(variable) = self.variables.get_mut(name) {
            variable.required.get_or_insert_with(|| message.to_string());
        }
    }

    /// Gives a variable the value a file beside the source sets (Compose's `.env`), if the
    /// import uses it.
    pub fn set_default_from(&mut self, name: &str, value: &str, file: &str) {
        // A secret's value is not repeated in the report: it is set with `--secret`.
        if let Some(variable) = self
            .variables
            .get_mut(name)
            .filter(|variable| !variable.secret)
        {
            variable.default = Some(value.to_string());
            let path = variable.used_at.first().cloned().unwrap_or_default();
            self.note(
                path,
                format!("{name}: its value {file} sets is its default"),
            );
        }
    }

    /// Marks a variable secret (a Kamal `env.secret`, a Compose secret, a password).
    pub fn mark_secret(&mut self, name: &str) {
        if let Some(variable) = self.variables.get_mut(name) {
            variable.secret = true;
        }
    }

    pub fn is_secret(&self, name: &str) -> bool {
        self.variables
            .get(name)
            .is_some_and(|variable| variable.secret)
    }

    pub fn note(&mut self, path: impl Into<String>, note: impl Into<String>) {
        let note = Note {
            path: path.into(),
            note: note.into(),
        };
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    pub fn left(
        &mut self,
        path: impl Into<String>,
        what: impl Into<String>,
        why: impl Into<String>,
    ) {
        self.not_carried.push(NotCarried {
            path: path.into(),
            what: what.into(),
            why: why.into(),
        });
    }

    pub(crate) fn finish(self, files: Vec<ImportedFile>) -> Import {
        Import {
            files,
            variables: self.variables.into_values().collect(),
            notes: self.notes,
            not_carried: self.not_carried,
        }
    }
}
