//! Vars files (`--vars FILE`): a YAML mapping of variable names to single values (strings,
//! numbers, true/false). Values are kept as written, so `1.10` stays `1.10` rather than the
//! number 1.1, and every problem is reported as `FILE:LINE:COL: message`, naming the variable.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use cj_spec::shown;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Error, NonFiniteFloatPolicy, Options, Spanned};

use crate::client::{CliError, CliResult};

/// Reads and parses the vars file at `path`; any problem is bad input.
pub fn read(path: &Path) -> CliResult<BTreeMap<String, String>> {
    let cannot_read = |error: std::io::Error| {
        CliError::bad_input(format!("cannot read {}: {error}", path.display()))
    };
    let size = std::fs::metadata(path).map_err(cannot_read)?.len();
    // The variables travel in one request, which the server bounds as it bounds a service file.
    if size > cj_spec::MAX_SOURCE_BYTES as u64 {
        return Err(CliError::bad_input(format!(
            "{}: the file is {size} bytes; a vars file may be at most {} bytes",
            path.display(),
            cj_spec::MAX_SOURCE_BYTES
        )));
    }
    let source = std::fs::read_to_string(path).map_err(cannot_read)?;
    parse(&path.display().to_string(), &source).map_err(CliError::bad_input)
}

/// The variables in `source` (`file` only names it in errors), or every problem found, one per
/// line.
pub fn parse(file: &str, source: &str) -> Result<BTreeMap<String, String>, String> {
    // First the shape of every value, with its place: a value read as text cannot say whether
    // it was a list, and a value read as it is typed loses how a number was written.
    let shapes: BTreeMap<String, Spanned<Shape>> =
        serde_saphyr::from_str_with_options(source, options())
            .map_err(|error| located(file, &error))?;
    let mut problems: Vec<(u64, u64, String)> = Vec::new();
    for (name, shape) in &shapes {
        let problem = match shape.value {
            Shape::Scalar => continue,
            Shape::Null => "no value; write \"\" for an empty one",
            Shape::List => "expected a single value (a string, number or true/false), found a list",
            Shape::Mapping => {
                "expected a single value (a string, number or true/false), found a mapping"
            }
        };
        let at = &shape.referenced;
        problems.push((
            at.line().max(1),
            at.column().max(1),
            format!("{}: {problem}", shown(name)),
        ));
    }
    if !problems.is_empty() {
        problems.sort();
        let mut lines: Vec<String> = problems
            .iter()
            .map(|(line, column, problem)| format!("{file}:{line}:{column}: {problem}"))
            .collect();
        if lines.len() > 1 {
            lines.push(format!("error: {file} was refused; nothing was sent"));
        }
        return Err(lines.join("\n"));
    }
    // Then every value as written.
    serde_saphyr::from_str_with_options(source, options()).map_err(|error| located(file, &error))
}

/// One document, no duplicate names, no tags we do not know (`!secret` would otherwise be
/// dropped silently, leaving a secret unmarked).
fn options() -> Options {
    let mut options = Options::default();
    // Errors are rendered here, with their location; the library's source snippet is not used.
    options.with_snippet = false;
    options.reject_unsupported_tags = true;
    // `.inf` and `.nan` are text to a variable, not numbers to refuse.
    options.non_finite_float_policy = NonFiniteFloatPolicy::AsString;
    options
}

/// What a value is, as far as a variable cares.
enum Shape {
    Scalar,
    Null,
    List,
    Mapping,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Shape, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_none<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Shape, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Shape, A::Error> {
        while items.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shape::List)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Shape, A::Error> {
        while entries.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Shape::Mapping)
    }
}

/// `FILE:LINE:COL: message` for a parser error.
fn located(file: &str, error: &Error) -> String {
    let (line, column) = error
        .location()
        .filter(|at| at.line() >= 1)
        .map(|at| (at.line(), at.column().max(1)))
        .unwrap_or((1, 1));
    format!("{file}:{line}:{column}: {}", describe(error))
}

/// A parser error in the terms of a vars file, without its location.
fn describe(error: &Error) -> String {
    match error.without_snippet() {
        Error::AliasError { error, .. } => describe(error),
        Error::Unexpected {
            expected: "mapping start",
            ..
        } => "expected a mapping of variable names to values (NAME: value)".into(),
        // Names are read as text, so only a name can be something else.
        Error::Unexpected {
            expected: "string scalar",
            ..
        } => "a variable's name must be a single value, not a list or mapping".into(),
        Error::DuplicateMappingKey { key: Some(key), .. } => {
            format!(
                "\"{}\" is set twice; each variable may appear once",
                shown(key)
            )
        }
        Error::DuplicateMappingKey { key: None, .. } => {
            "a variable is set twice; each may appear once".into()
        }
        Error::MultipleDocuments { .. } => "the file holds more than one YAML document \
             (separated by `---`); put every variable in one mapping"
            .into(),
        Error::UnsupportedTag { tag, .. } => format!(
            "the tag \"{}\" is not supported; remove it (mark a secret with --secret NAME)",
            shown(tag)
        ),
        other => parser_message(&other.to_string()),
    }
}

/// The parser's own message, cleaned of its location (reported separately) and advice to
/// programmers.
fn parser_message(message: &str) -> String {
    cj_spec::capped(cj_spec::yaml_message_text(message), 200)
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn vars(source: &str) -> Vec<(String, String)> {
        match parse("vars.yaml", source) {
            Ok(vars) => vars.into_iter().collect(),
            Err(error) => panic!("{error}"),
        }
    }

    fn refused(source: &str) -> String {
        match parse("vars.yaml", source) {
            Ok(vars) => panic!("accepted: {vars:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn values_are_kept_as_written() {
        let source = "db_name: shop\nport: 5432\nratio: 1.10\nhex: 0x1F\nflag: true\n\
                      quoted: \"007\"\nempty: ''\nbig: 99999999999999999999999\n\
                      inf: .inf\nanchored: &a x\naliased: *a\n1: one\n";
        assert_eq!(
            vars(source),
            [
                ("1", "one"),
                ("aliased", "x"),
                ("anchored", "x"),
                ("big", "99999999999999999999999"),
                ("db_name", "shop"),
                ("empty", ""),
                ("flag", "true"),
                ("hex", "0x1F"),
                ("inf", ".inf"),
                ("port", "5432"),
                ("quoted", "007"),
                ("ratio", "1.10"),
            ]
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
        );
    }

    #[test]
    fn an_empty_file_has_no_variables() {
        assert!(vars("").is_empty());
        assert!(vars("# nothing yet\n").is_empty());
    }

    #[test]
    fn nested_and_missing_values_are_refused_by_name_and_place() {
        assert_eq!(
            refused("a: 1\nhosts: [x, y]\n"),
            "vars.yaml:2:8: hosts: expected a single value (a string, number or true/false), \
             found a list"
        );
        assert_eq!(
            refused("db:\n  name: shop\nb: 2\nempty: ~\n"),
            "vars.yaml:2:3: db: expected a single value (a string, number or true/false), \
             found a mapping\n\
             vars.yaml:4:8: empty: no value; write \"\" for an empty one\n\
             error: vars.yaml was refused; nothing was sent"
        );
    }

    #[test]
    fn a_file_that_is_not_a_mapping_is_refused_where_it_starts() {
        for source in ["- a\n- b\n", "just text\n", "~\n"] {
            assert_eq!(
                refused(source),
                "vars.yaml:1:1: expected a mapping of variable names to values (NAME: value)",
                "{source:?}"
            );
        }
        assert_eq!(
            refused("? [a, b]\n: c\n"),
            "vars.yaml:1:3: a variable's name must be a single value, not a list or mapping"
        );
    }

    #[test]
    fn yaml_mistakes_are_located() {
        assert_eq!(
            refused("a: 1\nb: 2\na: 3\n"),
            "vars.yaml:3:1: \"a\" is set twice; each variable may appear once"
        );
        assert_eq!(
            refused("password: !secret x\n"),
            "vars.yaml:1:19: the tag \"!secret\" is not supported; remove it (mark a secret \
             with --secret NAME)"
        );
        assert!(refused("a: 1\n---\nb: 2\n").starts_with("vars.yaml:3:1: the file holds more"));
        let syntax = refused("a: [1\n");
        assert!(syntax.starts_with("vars.yaml:1:4: "), "{syntax}");
        assert!(!syntax.contains(" at line "), "{syntax}");
        let syntax = refused("a: b: c\n");
        assert_eq!(
            syntax,
            "vars.yaml:1:5: mapping values are not allowed in this context"
        );
    }
}
