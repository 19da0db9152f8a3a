//! From YAML text to the types of [`crate::raw`]: serde-saphyr with budgets that keep parsing
//! time and memory small, and its errors put into user terms (where, which field, what was
//! wrong and what is allowed) instead of the library's advice to its programmers.

use serde_path_to_error::Segment;
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Error, Options};

use crate::error::{
    MAX_MESSAGE_CHARS, MAX_PATH_CHARS, SpecError, SpecErrors, capped, did_you_mean, shown,
};
use crate::limits::{MAX_SOURCE_BYTES, MAX_YAML_ALIASES, MAX_YAML_DEPTH, MAX_YAML_NODES};
use crate::raw::RawService;
use crate::units::format_bytes;

/// Parses `source` into the file's raw form; `file` only names the file in errors.
pub(crate) fn parse_raw(file: &str, source: &str) -> Result<RawService, SpecErrors> {
    let whole_file = |message: String| {
        SpecErrors(vec![SpecError {
            file: file.to_owned(),
            line: 1,
            column: 1,
            path: ".".into(),
            message,
        }])
    };
    if source.len() > MAX_SOURCE_BYTES {
        return Err(whole_file(format!(
            "the file is {}; at most {} is accepted",
            format_bytes(source.len() as u64),
            format_bytes(MAX_SOURCE_BYTES as u64)
        )));
    }
    if source.trim().is_empty() {
        return Err(whole_file(
            "the file is empty: expected a mapping with `service` and `jobs`".into(),
        ));
    }
    let mut path = String::from(".");
    let parsed =
        serde_saphyr::with_deserializer_from_str_with_options(source, options(), |deserializer| {
            serde_path_to_error::deserialize(deserializer).map_err(|error| {
                path = user_path(error.path());
                error.into_inner()
            })
        });
    parsed.map_err(|error| {
        let (line, column) = error
            .location()
            .filter(|at| at.line() >= 1)
            .map(|at| (at.line(), at.column().max(1)))
            .unwrap_or((1, 1));
        let message = match error.without_snippet() {
            Error::MultipleDocuments { .. } => several_documents(source),
            _ => describe(&error),
        };
        SpecErrors(vec![SpecError {
            file: file.to_owned(),
            line,
            column,
            path: capped(&path, MAX_PATH_CHARS),
            message: capped(&message, MAX_MESSAGE_CHARS),
        }])
    })
}

/// Parser options: one document, no duplicate keys, and budgets far above what a service file
/// needs but small enough that no file of [`MAX_SOURCE_BYTES`] takes long or much memory.
fn options() -> Options {
    let mut options = Options::default();
    // Errors are rendered by us, with their location; the library's source snippet is not used.
    options.with_snippet = false;
    // A tag we do not know (`!include`, `!secret`) would otherwise be dropped silently.
    options.reject_unsupported_tags = true;
    options.reject_tagged_field_names = true;
    options.budget = serde_saphyr::budget! {
        max_depth: MAX_YAML_DEPTH,
        max_nodes: MAX_YAML_NODES,
        max_events: 3 * MAX_YAML_NODES,
        max_aliases: MAX_YAML_ALIASES,
        max_anchors: MAX_YAML_ALIASES,
        max_merge_keys: MAX_YAML_ALIASES,
        max_total_scalar_bytes: 2 * MAX_SOURCE_BYTES,
        max_total_comment_bytes: 2 * MAX_SOURCE_BYTES,
        max_recorded_anchor_bytes: 2 * MAX_SOURCE_BYTES,
        max_recorded_anchor_events: MAX_YAML_NODES,
        flow_nesting_limit: MAX_YAML_DEPTH,
    };
    options.alias_limits = serde_saphyr::alias_limits! {
        max_total_replayed_events: MAX_YAML_NODES,
        max_replay_stack_depth: MAX_YAML_DEPTH,
    };
    options
}

/// The field path as a user wrote it: `jobs[0].image`, or `.` for the whole document. `Spanned`
/// wrappers add a `value` segment that is ours. serde_path_to_error writes `?` for a key it
/// could not read: a syntax error inside it, or a key read with its location (Docker fields);
/// the path stops there, and the location points at the spot.
fn user_path(path: &serde_path_to_error::Path) -> String {
    let mut text = String::new();
    for segment in path {
        match segment {
            Segment::Map { key } if key == "value" => {}
            Segment::Seq { index } => text.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(&shown(key));
            }
            Segment::Unknown => break,
        }
    }
    if text.is_empty() { ".".into() } else { text }
}

/// "this file holds 2 YAML documents", counted if the other documents can be read.
fn several_documents(source: &str) -> String {
    let documents: Result<Vec<serde::de::IgnoredAny>, _> =
        serde_saphyr::from_str_multiple_with_options::<serde::de::IgnoredAny, _>(source, options());
    let count = match documents {
        Ok(documents) if documents.len() > 1 => format!("{} YAML documents", documents.len()),
        _ => "more than one YAML document".into(),
    };
    format!("this file holds {count} (separated by `---`); put one service per file")
}

/// A serde-saphyr error in user terms, without its location (reported separately).
fn describe(error: &Error) -> String {
    match error.without_snippet() {
        Error::AliasError { error, .. } => describe(error),
        Error::DuplicateMappingKey { key: Some(key), .. } => {
            format!(
                "duplicate key \"{}\" in this mapping; each key may appear once",
                shown(key)
            )
        }
        Error::DuplicateMappingKey { key: None, .. } => {
            "duplicate key in this mapping; each key may appear once".into()
        }
        Error::Budget { breach, .. } => budget_breach(breach),
        Error::AliasReplayCounterOverflow { .. }
        | Error::AliasReplayLimitExceeded { .. }
        | Error::AliasExpansionLimitExceeded { .. }
        | Error::AliasReplayStackDepthExceeded { .. } => format!(
            "the file's aliases (*NAME) expand to too much: at most {MAX_YAML_NODES} values are accepted after expansion"
        ),
        Error::RecursiveReferencesRequireWeakTypes { .. } => {
            "an alias (*NAME) refers to a value that contains it".into()
        }
        Error::UnknownAnchor { .. } => {
            "an alias (*NAME) refers to an anchor (&NAME) that is not defined before it".into()
        }
        Error::NullIntoString { .. } | Error::InvalidCharNull { .. } => {
            "expected a string, found nothing (null)".into()
        }
        Error::NonFiniteFloat { value, .. } => {
            format!("{} is not a finite number", shown(value))
        }
        Error::InvalidBinaryBase64 { .. } => "a !!binary value is not valid base64".into(),
        Error::BinaryNotUtf8 { .. } => "a !!binary value is not UTF-8 text".into(),
        Error::TaggedScalarCannotDeserializeIntoString { .. } => {
            "expected a string without a tag".into()
        }
        Error::UnsupportedTag { tag, .. } | Error::TaggedStructFieldName { tag, .. } => {
            format!(
                "the tag \"{}\" is not supported here; remove it",
                shown(tag)
            )
        }
        Error::MergeKeyNotAllowed { .. } => "a merge key (<<) is not allowed here".into(),
        Error::MergeValueNotMapOrSeqOfMaps { .. } => {
            "a merge key (<<) needs a mapping or a list of mappings".into()
        }
        Error::Eof { .. } => "unexpected end of the file".into(),
        Error::Unexpected { expected, .. } => format!("expected {}", expected_words(expected)),
        Error::InvalidScalar { ty, .. } => format!("expected {}", expected_words(ty)),
        Error::InvalidBooleanStrict { .. } => "expected true or false".into(),
        Error::SerdeInvalidType {
            unexpected,
            expected,
            ..
        }
        | Error::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => format!(
            "expected {}, found {}",
            expected_words(expected),
            found_words(unexpected)
        ),
        Error::SerdeInvalidLength { len, expected, .. } => {
            format!("expected {}, found {len} values", expected_words(expected))
        }
        Error::SerdeUnknownVariant {
            variant, expected, ..
        } => format!(
            "unknown variant \"{}\", expected one of {}",
            shown(variant),
            expected.join(", ")
        ),
        Error::SerdeUnknownField {
            field, expected, ..
        } => unknown_field(field, expected),
        Error::SerdeMissingField { field, .. } => format!("missing required field \"{field}\""),
        Error::QuotingRequired { .. } => "this value must be quoted".into(),
        Error::InvalidUtf8Input => "the file is not UTF-8 text".into(),
        Error::Message { msg, .. } => scanner_message(msg),
        _ => scanner_message(&error.to_string()),
    }
}

/// What a tripped budget means for the file.
fn budget_breach(breach: &BudgetBreach) -> String {
    match breach {
        BudgetBreach::Depth { .. } => format!(
            "the file nests too deeply: at most {MAX_YAML_DEPTH} levels of lists and mappings are accepted"
        ),
        BudgetBreach::Aliases { .. } | BudgetBreach::AliasAnchorRatio { .. } => {
            format!(
                "the file has too many aliases (*NAME): at most {MAX_YAML_ALIASES} are accepted"
            )
        }
        BudgetBreach::Anchors { .. } => {
            format!(
                "the file has too many anchors (&NAME): at most {MAX_YAML_ALIASES} are accepted"
            )
        }
        BudgetBreach::MergeKeys { .. } => format!(
            "the file has too many merge keys (<<): at most {MAX_YAML_ALIASES} are accepted"
        ),
        BudgetBreach::Documents { .. } => {
            "this file holds several YAML documents (separated by `---`); put one service per file"
                .into()
        }
        BudgetBreach::RecordedAnchorEvents { .. } | BudgetBreach::RecordedAnchorBytes { .. } => {
            format!(
                "the file's aliases (*NAME) expand to too much: at most {MAX_YAML_NODES} values are accepted after expansion"
            )
        }
        BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => {
            format!("the file holds too many values: at most {MAX_YAML_NODES} are accepted")
        }
        _ => format!(
            "the file is too large or too complex to read: at most {} of text, {MAX_YAML_NODES} values and {MAX_YAML_DEPTH} levels of nesting are accepted",
            format_bytes(MAX_SOURCE_BYTES as u64)
        ),
    }
}

/// "unknown field "imgae", did you mean "image"? (expected one of: name, image, ...)".
fn unknown_field(field: &str, expected: &[&str]) -> String {
    let mut text = format!("unknown field \"{}\"", shown(field));
    if let Some(hint) = did_you_mean(field, expected.iter().copied()) {
        text.push_str(&format!(", did you mean \"{hint}\"?"));
    }
    text.push_str(&format!(" (expected one of: {})", expected.join(", ")));
    text
}

/// Serde's and the parser's names for what was expected, in words.
fn expected_words(expected: &str) -> String {
    let words = match expected {
        "mapping start" | "map" | "a map" | "struct" => "a mapping (KEY: value)",
        "sequence start" | "seq" | "a sequence" => "a list",
        "string scalar" | "string" | "a string" | "str" => "a string",
        "scalar" => "a single value (not a list or mapping)",
        "bool" | "boolean" | "a boolean" => "true or false",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64" | "i128"
        | "isize" | "an integer" => "a whole number",
        "f32" | "f64" | "a floating point number" => "a number",
        "null" => "nothing (null)",
        "mapping end" => "the end of the mapping",
        other => return shown(other).replace('`', "\""),
    };
    words.to_owned()
}

/// Serde's description of what was found (`string "abc"`, ``integer `5` ``, `sequence`), in
/// words, with the value shortened. Serde quotes strings with their escapes already.
fn found_words(found: &str) -> String {
    if let Some(at) = found.find(['"', '`']) {
        let kind = found[..at].trim_end();
        let value = &found[at + 1..];
        let value = capped(value.strip_suffix(['"', '`']).unwrap_or(value), 64);
        return match kind {
            "string" | "character" => format!("\"{value}\""),
            _ => value,
        };
    }
    match found {
        "sequence" => "a list".into(),
        "map" => "a mapping".into(),
        "unit value" | "Option value" | "null" => "nothing (null)".into(),
        other => shown(other),
    }
}

/// The first line of a YAML parser's message without its location (`line 4 column 5: ...`,
/// `... at line 4, column 5`) and `error: ` prefix, which callers report in their own words.
pub fn yaml_message_text(message: &str) -> &str {
    let first_line = message.lines().next().unwrap_or_default();
    let message = first_line.strip_prefix("error: ").unwrap_or(first_line);
    let message = match message.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") => rest,
        _ => message,
    };
    match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => message,
    }
}

/// A message from the YAML scanner or from our own deserializers, cleaned of the library's
/// location suffix and quoting.
fn scanner_message(message: &str) -> String {
    let message = yaml_message_text(message);
    if let Some(character) = message
        .strip_prefix("unexpected character: `")
        .and_then(|rest| rest.strip_suffix('\''))
    {
        // The parser escapes the character already (`\u{0}`).
        let character = capped(character, 16);
        return if character.starts_with('\\') {
            format!(
                "unexpected character \"{character}\": control characters may only be written as escapes (such as \\t) in double-quoted strings"
            )
        } else {
            format!("unexpected character \"{character}\"; put text with it in quotes")
        };
    }
    if message == "recursion limit exceeded" {
        return budget_breach(&BudgetBreach::Depth { depth: 0 });
    }
    if message.contains("include") {
        return "!include is not supported: a service is one file".into();
    }
    let message = message.trim_end_matches('.').replace('`', "\"");
    if message.is_empty() {
        "this is not valid YAML".into()
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::parse_raw;

    /// The single error `source` gets, as `LINE:COLUMN: PATH: MESSAGE`.
    fn check(source: &str, expected: &str) {
        let errors = parse_raw("f.yaml", source).expect_err("refused");
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(errors.to_string(), format!("f.yaml:{expected}"));
    }

    #[test]
    fn library_advice_is_put_in_user_terms() {
        check(
            "service: a\njobs: []\n---\nservice: b\njobs: []\n",
            "4:1: .: this file holds 2 YAML documents (separated by `---`); put one service per file",
        );
        check(
            "service: a\nservice: b\njobs: []\n",
            "2:1: .: duplicate key \"service\" in this mapping; each key may appear once",
        );
        check(
            "service:\njobs: []\n",
            "1:8: service: expected a string, found nothing (null)",
        );
        check(
            "service: a\njobs: &j [*j]\n",
            "2:11: jobs: an alias (*NAME) refers to a value that contains it",
        );
        check(
            "service: !secret a\njobs: []\n",
            "1:18: .: the tag \"!secret\" is not supported here; remove it",
        );
    }

    #[test]
    fn what_was_found_is_said_in_words() {
        let job = "service: s\njobs:\n  - name: a\n    ";
        check(
            &format!("{job}instances: [1]\n"),
            "4:5: jobs[0].instances: expected a number from 1 to 1000, found a list",
        );
        check(
            &format!("{job}port: {{a: 1}}\n"),
            "4:11: jobs[0].port: expected a port number from 1 to 65535, or auto (0 also means auto)",
        );
        let long = "x".repeat(1000);
        let errors =
            parse_raw("f.yaml", &format!("service: s\njobs: \"{long}\"\n")).expect_err("refused");
        assert!(errors.to_string().len() < 200, "{errors}");
    }

    #[test]
    fn syntax_errors_keep_the_parsers_words() {
        check("\r{\r{", "3:1: .: unclosed bracket '{'");
        check(
            "service: a\u{1}\njobs: []\n",
            "1:10: .: unexpected character \"\\u{1}\": control characters may only be written as escapes (such as \\t) in double-quoted strings",
        );
    }
}
