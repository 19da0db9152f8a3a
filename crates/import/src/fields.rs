//! Walking a source's tree so nothing is dropped silently: an importer takes the keys it
//! understands from a mapping, and hands back the rest, each reported with its path.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::report::Report;
use crate::text::shown;

/// The keys of one mapping of the source, at `path`, and which of them were taken.
pub struct Fields<'a> {
    path: String,
    map: Option<&'a Map<String, Value>>,
    taken: BTreeSet<&'a str>,
}

impl<'a> Fields<'a> {
    /// The mapping `value` at `path`; a value that is not a mapping has no keys.
    pub fn new(path: impl Into<String>, value: &'a Value) -> Self {
        Fields {
            path: path.into(),
            map: value.as_object(),
            taken: BTreeSet::new(),
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path of key `key` of this mapping.
    pub fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Takes key `key`: it counts as handled, whatever the importer does with it.
    pub fn take(&mut self, key: &str) -> Option<&'a Value> {
        let (key, value) = self.map?.get_key_value(key)?;
        self.taken.insert(key.as_str());
        Some(value)
    }

    /// Takes key `key` when it is a string (or a number or boolean, as text).
    pub fn text(&mut self, key: &str) -> Option<String> {
        self.take(key).and_then(crate::text::scalar)
    }

    /// The keys not taken, in the source's order.
    pub fn rest(&self) -> Vec<(&'a str, &'a Value)> {
        let Some(map) = self.map else {
            return Vec::new();
        };
        map.iter()
            .filter(|(key, _)| !self.taken.contains(key.as_str()))
            .map(|(key, value)| (key.as_str(), value))
            .collect()
    }

    /// Reports every key not taken as not carried, with the reason `why` gives for its name
    /// (`None`: a construct the importer does not know).
    pub fn leave_rest(self, report: &mut Report, why: impl Fn(&str) -> Option<&'static str>) {
        for (key, value) in self.rest() {
            let reason = why(key).unwrap_or("not a construct coding-job carries over");
            report.left(join(&self.path, key), shown(value), reason);
        }
    }
}

/// `services.web` + `ports` = `services.web.ports`; list items as `ports[0]`.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else if key.starts_with('[') {
        format!("{path}{key}")
    } else {
        format!("{path}.{key}")
    }
}

/// The path of item `index` of the list at `path`.
pub fn item(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}
