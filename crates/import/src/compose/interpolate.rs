//! Compose's interpolation (`${VAR}`, `${VAR:-default}`, `${VAR?error}`, `$$`) read into
//! pieces, so a value becomes a template with `{{ vars.VAR }}` where the config templates it,
//! or is resolved to its defaults where the config takes a plain value (a port number).

use crate::report::Report;
use crate::text::{literal, looks_secret, var_ref};

/// One piece of an interpolated value.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    /// `${NAME}`, `${NAME:-default}`: the variable, and the default as resolved.
    Var {
        name: String,
        default: Option<String>,
    },
    /// `${NAME:+text}`: `text` when the variable is set and not empty.
    IfSet {
        name: String,
        text: String,
    },
    /// Another job's `HOST:PORT` (`{{ addr("job") }}`), put in by address rewriting.
    Addr(String),
}

/// A value read into pieces.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Interpolated(pub Vec<Piece>);

impl Interpolated {
    /// The value as a template of the config.
    pub fn template(&self) -> String {
        let mut text = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(part) => text.push_str(&literal(part)),
                Piece::Var { name, .. } => text.push_str(&var_ref(name)),
                Piece::IfSet { name, text: set } => text.push_str(&format!(
                    "{{% if vars.{name} %}}{}{{% endif %}}",
                    literal(set)
                )),
                Piece::Addr(job) => text.push_str(&format!("{{{{ addr(\"{job}\") }}}}")),
            }
        }
        text
    }

    /// The value with every variable at its default (unset ones empty).
    pub fn resolved(&self) -> String {
        let mut text = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(part) => text.push_str(part),
                Piece::Var { default, .. } => text.push_str(default.as_deref().unwrap_or("")),
                Piece::IfSet { .. } => {}
                Piece::Addr(job) => text.push_str(job),
            }
        }
        text
    }

    pub fn has_variables(&self) -> bool {
        self.0.iter().any(|piece| !matches!(piece, Piece::Text(_)))
    }

    /// Names of the variables it uses.
    pub fn variables(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter_map(|piece| match piece {
                Piece::Var { name, .. } | Piece::IfSet { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Records its variables in the report, as used at `path`.
    pub fn record(&self, report: &mut Report, path: &str) {
        for piece in &self.0 {
            match piece {
                Piece::Var { name, default } => {
                    report.variable(name, default.as_deref(), looks_secret(name), path)
                }
                Piece::IfSet { name, .. } => report.variable(name, None, looks_secret(name), path),
                _ => {}
            }
        }
    }
}

/// Reads `value`; a malformed reference (`${`, `${1x}`) is kept as text and reported.
pub fn interpolate(value: &str, path: &str, report: &mut Report) -> Interpolated {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        text.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            text.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            match braced(inner, path, report) {
                Some((piece, consumed)) => {
                    flush(&mut text, &mut pieces);
                    pieces.push(piece);
                    rest = &inner[consumed..];
                }
                None => {
                    report.note(
                        path,
                        format!("`${{` without a valid variable in {value:?}: kept as text"),
                    );
                    text.push('$');
                    rest = after;
                }
            }
        } else {
            let length = after
                .char_indices()
                .take_while(|(index, c)| {
                    c.is_ascii_alphanumeric() && !(*index == 0 && c.is_ascii_digit()) || *c == '_'
                })
                .count();
            if length == 0 {
                text.push('$');
                rest = after;
            } else {
                flush(&mut text, &mut pieces);
                pieces.push(Piece::Var {
                    name: after[..length].to_string(),
                    default: None,
                });
                rest = &after[length..];
            }
        }
    }
    text.push_str(rest);
    flush(&mut text, &mut pieces);
    Interpolated(pieces)
}

fn flush(text: &mut String, pieces: &mut Vec<Piece>) {
    if !text.is_empty() {
        pieces.push(Piece::Text(std::mem::take(text)));
    }
}

/// `NAME}`, `NAME:-default}`, ...: the piece and how many bytes of `inner` it took.
fn braced(inner: &str, path: &str, report: &mut Report) -> Option<(Piece, usize)> {
    let name_length = inner
        .char_indices()
        .take_while(|(index, c)| {
            c.is_ascii_alphanumeric() && !(*index == 0 && c.is_ascii_digit()) || *c == '_'
        })
        .count();
    if name_length == 0 {
        return None;
    }
    let name = inner[..name_length].to_string();
    let after = &inner[name_length..];
    if after.starts_with('}') {
        return Some((
            Piece::Var {
                name,
                default: None,
            },
            name_length + 1,
        ));
    }
    let operator = ["-", ":-", "?", ":?", "+", ":+"]
        .into_iter()
        .filter(|operator| after.starts_with(operator))
        .max_by_key(|operator| operator.len())?;
    let body_start = name_length + operator.len();
    let body_length = closing_brace(&inner[body_start..])?;
    let body = &inner[body_start..body_start + body_length];
    let consumed = body_start + body_length + 1;
    // The default or alternative may itself hold variables: `${A:-https://${B:-x}}`.
    let nested = interpolate(body, path, report);
    nested.record(report, path);
    let piece = match operator {
        "-" | ":-" => Piece::Var {
            name,
            default: Some(nested.resolved()),
        },
        "?" | ":?" => {
            let message = if body.is_empty() {
                format!("{name} must be set")
            } else {
                body.to_string()
            };
            report.required(&name, &message, path);
            Piece::Var {
                name,
                default: None,
            }
        }
        _ => Piece::IfSet {
            name,
            text: nested.resolved(),
        },
    };
    Some((piece, consumed))
}

/// Where the `}` closing a reference's body is, counting nested `${...}`.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = body.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'$' if bytes.get(index + 1) == Some(&b'{') => {
                depth += 1;
                index += 1;
            }
            b'}' if depth == 0 => return Some(index),
            b'}' => depth -= 1,
            _ => {}
        }
        index += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(value: &str) -> (Interpolated, Report) {
        let mut report = Report::default();
        (interpolate(value, "x", &mut report), report)
    }

    #[test]
    fn plain_text_stays_text() {
        let (value, _) = read("hello $$HOME");
        assert_eq!(value.template(), "hello $HOME");
        assert!(!value.has_variables());
    }

    #[test]
    fn references_become_variables_with_their_defaults() {
        let (value, report) = read("${HOST:-localhost}:${PORT}/$NAME");
        assert_eq!(
            value.template(),
            "{{ vars.HOST }}:{{ vars.PORT }}/{{ vars.NAME }}"
        );
        assert_eq!(value.resolved(), "localhost:/");
        let _ = report;
    }

    #[test]
    fn nested_defaults_resolve() {
        let (value, _) = read("${SERVER_NAME:-https://${HOST:-example.com}}");
        assert_eq!(
            value.0,
            vec![Piece::Var {
                name: "SERVER_NAME".into(),
                default: Some("https://example.com".into())
            }]
        );
    }

    #[test]
    fn required_and_alternative_forms() {
        let (value, mut report) = read("${TOKEN?set the token}${DEBUG:+--debug}");
        assert_eq!(
            value.template(),
            "{{ vars.TOKEN }}{% if vars.DEBUG %}--debug{% endif %}"
        );
        value.record(&mut report, "x");
        let import = report.finish(Vec::new());
        assert_eq!(
            import.variables[1].required.as_deref(),
            Some("set the token")
        );
    }

    #[test]
    fn a_broken_reference_is_kept_as_text() {
        let (value, report) = read("cost: ${ 5");
        assert_eq!(value.template(), "cost: ${ 5");
        assert_eq!(report.finish(Vec::new()).notes.len(), 1);
    }
}
