//! ERB in a Kamal file. Kamal runs `deploy.yml` through Ruby's ERB before it reads the YAML, so
//! a tag can stand anywhere: in a value, in a key, in a comment. Each output tag (`<%= ... %>`)
//! is swapped for a marker before the YAML is read, and the marker is read back where its value
//! is used: `ENV["X"]`, `ENV.fetch("X", "d")` and `ENV["X"] || "d"` become the variable `X`
//! (with its default); any other Ruby is reported with its file and line and kept as text where
//! text is harmless. A tag in a YAML comment leaves no marker in the tree and so is never
//! reported, as Kamal's output for it is never read either.

use serde_json::Value;

use super::Reader;
use crate::ImportError;
use crate::report::Report;
use crate::text::{literal, looks_secret, shown, var_name, var_ref};

/// Brackets a marker: characters of Unicode's private use area, which YAML reads as text and a
/// deployment file does not otherwise hold.
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

/// The output tags of the files read, in the order met.
#[derive(Debug, Default)]
pub struct Erb {
    tags: Vec<Tag>,
}

/// One `<%= ... %>` tag.
#[derive(Debug)]
pub struct Tag {
    /// Where it is written, as `deploy.yml:12`.
    pub at: String,
    /// The tag as written.
    pub text: String,
    /// What it reads from the environment, when that is all it does.
    pub env: Option<EnvRead>,
}

/// `ENV["NAME"]`, `ENV.fetch("NAME", "default")` and the like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvRead {
    pub name: String,
    pub default: Option<String>,
}

/// A piece of a value: text as written, or a tag.
pub enum Piece<'a> {
    Text(&'a str),
    Tag(&'a Tag),
}

impl Erb {
    /// `text` with every output tag replaced by a marker, ready to be read as YAML. Comments
    /// (`<%# %>`) print nothing and are dropped; code (`<% %>`) is dropped and reported, as what
    /// it would do is only known when Kamal runs it.
    pub fn expand(
        &mut self,
        file: &str,
        text: &str,
        report: &mut Report,
    ) -> Result<String, ImportError> {
        let mut expanded = String::with_capacity(text.len());
        let mut rest = text;
        let mut line = 1;
        while let Some(start) = rest.find("<%") {
            let before = &rest[..start];
            line += before.matches('\n').count();
            expanded.push_str(before);
            let after = &rest[start + 2..];
            if let Some(escaped) = after.strip_prefix('%') {
                // `<%%` writes `<%`.
                expanded.push_str("<%");
                rest = escaped;
                continue;
            }
            let Some(end) = after.find("%>") else {
                return Err(ImportError {
                    file: file.to_string(),
                    line: Some(line),
                    column: None,
                    message: "an ERB tag `<%` is not closed by `%>`".into(),
                });
            };
            let body = &after[..end];
            let written = &rest[start..start + 2 + end + 2];
            let at = format!("{file}:{line}");
            if let Some(expression) = body.strip_prefix('=') {
                let expression = expression.trim().trim_end_matches('-').trim_end();
                expanded.push(OPEN);
                expanded.push_str(&self.tags.len().to_string());
                expanded.push(CLOSE);
                self.tags.push(Tag {
                    at,
                    text: written.to_string(),
                    env: env_read(expression),
                });
            } else if !body.starts_with('#') && !in_comment(&expanded) {
                report.left(
                    at,
                    shown(&Value::String(written.to_string())),
                    "Ruby code Kamal runs when it reads the file: it is dropped here, and the text around it is read as written",
                );
            }
            line += written.matches('\n').count();
            rest = &after[end + 2..];
        }
        expanded.push_str(rest);
        Ok(expanded)
    }

    /// `text` cut into written text and tags.
    pub fn pieces<'a>(&'a self, text: &'a str) -> Vec<Piece<'a>> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find(OPEN) {
            let tail = &rest[open + OPEN.len_utf8()..];
            let tag = tail
                .find(CLOSE)
                .and_then(|close| Some((close, tail[..close].parse::<usize>().ok()?)))
                .and_then(|(close, index)| Some((close, self.tags.get(index)?)));
            let Some((close, tag)) = tag else { break };
            if open > 0 {
                pieces.push(Piece::Text(&rest[..open]));
            }
            pieces.push(Piece::Tag(tag));
            rest = &tail[close + CLOSE.len_utf8()..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest));
        }
        pieces
    }

    pub fn has_tags(text: &str) -> bool {
        text.contains(OPEN)
    }

    /// `text` as written, tags and all.
    pub fn restore(&self, text: &str) -> String {
        self.pieces(text)
            .into_iter()
            .map(|piece| match piece {
                Piece::Text(text) => text,
                Piece::Tag(tag) => tag.text.as_str(),
            })
            .collect()
    }

    /// `value` as written, for a report.
    pub fn restore_value(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(text) => Value::String(self.restore(text)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|item| self.restore_value(item)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, item)| (self.restore(key), self.restore_value(item)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Where the tags of `value` are written, as `deploy.yml:3`, each once.
    pub fn places(&self, value: &serde_json::Value) -> Vec<String> {
        use serde_json::Value;
        let mut places: Vec<String> = Vec::new();
        let mut texts: Vec<&str> = Vec::new();
        let mut stack = vec![value];
        while let Some(value) = stack.pop() {
            match value {
                Value::String(text) => texts.push(text),
                Value::Array(items) => stack.extend(items.iter().rev()),
                Value::Object(map) => {
                    for (key, item) in map.iter().rev() {
                        texts.push(key);
                        stack.push(item);
                    }
                }
                _ => {}
            }
        }
        for text in texts {
            for piece in self.pieces(text) {
                if let Piece::Tag(tag) = piece
                    && !places.contains(&tag.at)
                {
                    places.push(tag.at.clone());
                }
            }
        }
        places
    }

    /// Where the first tag of `text` that is not an environment read is written.
    fn first_ruby(&self, text: &str) -> Option<String> {
        self.pieces(text).into_iter().find_map(|piece| match piece {
            Piece::Tag(tag) if tag.env.is_none() => Some(tag.at.clone()),
            _ => None,
        })
    }
}

/// Values with ERB in them, as each kind of field can take them.
impl Reader<'_> {
    /// `text` as a template of a rendered field: environment reads become variables (recorded
    /// as used at `path`), written text is kept literally, and any other Ruby is kept as text and
    /// reported, the value being one where text does no harm (an env value, an argument).
    pub fn template(&mut self, text: &str, path: &str) -> String {
        let pieces: Vec<(String, Option<EnvRead>, Option<String>)> = self
            .erb
            .pieces(text)
            .into_iter()
            .map(|piece| match piece {
                Piece::Text(text) => (text.to_string(), None, None),
                Piece::Tag(tag) => (tag.text.clone(), tag.env.clone(), Some(tag.at.clone())),
            })
            .collect();
        let mut templated = String::new();
        for (written, read, at) in pieces {
            match (read, at) {
                (Some(read), _) => templated.push_str(&self.variable(&read, path)),
                (None, Some(at)) => {
                    templated.push_str(&literal(&written));
                    self.left_written(
                        path,
                        &Value::String(written),
                        &[at],
                        "Ruby that Kamal runs when it reads the file, kept here as text: write its value, or a {{ vars.NAME }} variable, in its place",
                    );
                }
                (None, None) => templated.push_str(&literal(&written)),
            }
        }
        templated
    }

    /// [`Self::template`] for a field where Ruby kept as text would break it (an image, a
    /// check): `None`, reported as left out, when the value holds any.
    pub fn strict_template(&mut self, text: &str, path: &str, what: &str) -> Option<String> {
        if let Some(at) = self.erb.first_ruby(text) {
            let written = Value::String(self.erb.restore(text));
            let why = format!(
                "the {what} is computed by Ruby when Kamal reads the file; write its value here"
            );
            self.left_written(path, &written, &[at], why);
            return None;
        }
        Some(self.template(text, path))
    }

    /// `text` for a field that is not rendered (a host, a name, a port): `None`, reported as
    /// left out, when it holds any tag, as no variable can stand there.
    pub fn plain(&mut self, text: &str, path: &str, what: &str) -> Option<String> {
        if !Erb::has_tags(text) {
            return Some(text.to_string());
        }
        let why = format!(
            "the {what} comes from ERB, and a {what} cannot be a variable here: write its value"
        );
        self.left(path, &Value::String(text.to_string()), why);
        None
    }

    /// `{{ vars.NAME }}` for an environment read, recorded in the report.
    fn variable(&mut self, read: &EnvRead, path: &str) -> String {
        let name = var_name(&read.name);
        let secret = looks_secret(&read.name);
        self.report
            .variable(&name, read.default.as_deref(), secret, path);
        var_ref(&name)
    }
}

/// Whether the text written so far ends inside a YAML comment: a `#` at the start of the line
/// or after a space.
fn in_comment(expanded: &str) -> bool {
    let line = expanded.rsplit('\n').next().unwrap_or("");
    line.trim_start().starts_with('#') || line.contains(" #")
}

/// What an ERB expression reads from the environment, if that is all it does: `ENV["X"]`,
/// `ENV['X']`, `ENV.fetch("X")`, `ENV.fetch("X", "d")`, `ENV.fetch("X") { "d" }`, each
/// optionally followed by `|| "d"`.
pub fn env_read(expression: &str) -> Option<EnvRead> {
    let mut rest = expression.trim().strip_prefix("ENV")?;
    let (name, mut default);
    if let Some(index) = rest.strip_prefix('[') {
        let (quoted, after) = string_literal(index.trim_start())?;
        rest = after.trim_start().strip_prefix(']')?;
        name = quoted;
        default = None;
    } else {
        let call = rest
            .strip_prefix(".fetch")?
            .trim_start()
            .strip_prefix('(')?;
        let (quoted, after) = string_literal(call.trim_start())?;
        name = quoted;
        rest = after.trim_start();
        default = None;
        if let Some(second) = rest.strip_prefix(',') {
            let (value, after) = literal_value(second.trim_start())?;
            default = Some(value);
            rest = after.trim_start();
        }
        rest = rest.strip_prefix(')')?.trim_start();
        if let Some(block) = rest.strip_prefix('{') {
            let (value, after) = literal_value(block.trim_start())?;
            default = Some(value);
            rest = after.trim_start().strip_prefix('}')?;
        }
    }
    let rest = rest.trim_start();
    if let Some(alternative) = rest.strip_prefix("||") {
        let (value, after) = literal_value(alternative.trim_start())?;
        if !after.trim().is_empty() || default.is_some() {
            return None;
        }
        default = Some(value);
    } else if !rest.is_empty() {
        return None;
    }
    let plain_name =
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    plain_name.then_some(EnvRead { name, default })
}

/// A Ruby string literal without escapes or interpolation, and the text after it.
fn string_literal(text: &str) -> Option<(String, &str)> {
    let quote = text.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let body = &text[1..];
    let end = body.find(quote)?;
    let value = &body[..end];
    if value.contains('\\') || (quote == '"' && value.contains("#{")) {
        return None;
    }
    Some((value.to_string(), &body[end + 1..]))
}

/// A string or number literal, as text, and the text after it.
fn literal_value(text: &str) -> Option<(String, &str)> {
    if let Some(found) = string_literal(text) {
        return Some(found);
    }
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(text.len());
    let number = &text[..end];
    (!number.is_empty() && number.parse::<f64>().is_ok())
        .then(|| (number.to_string(), &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(expression: &str) -> Option<(String, Option<String>)> {
        env_read(expression).map(|read| (read.name, read.default))
    }

    #[test]
    fn environment_reads_are_recognised() {
        let plain = Some(("X".to_string(), None));
        let with_default = Some(("X".to_string(), Some("d".to_string())));
        assert_eq!(read(r#"ENV["X"]"#), plain);
        assert_eq!(read("ENV['X']"), plain);
        assert_eq!(read(r#"ENV.fetch("X")"#), plain);
        assert_eq!(read(r#"ENV.fetch("X", "d")"#), with_default);
        assert_eq!(read(r#"ENV.fetch('X') { 'd' }"#), with_default);
        assert_eq!(read(r#"ENV["X"] || "d""#), with_default);
        assert_eq!(
            read(r#"ENV.fetch("PORT", 3000)"#),
            Some(("PORT".to_string(), Some("3000".to_string())))
        );
    }

    #[test]
    fn other_ruby_is_not_an_environment_read() {
        for expression in [
            "`git rev-parse HEAD`",
            "Kamal::Utils.docker_arch",
            r#"ENV["A"] || ENV["B"]"#,
            r#"ENV["X"].upcase"#,
            r#"ENV["X#{y}"]"#,
            r#"ENV.fetch("X", "a") || "b""#,
            "%x(aws ecr get-login-password)",
        ] {
            assert_eq!(read(expression), None, "{expression}");
        }
    }

    #[test]
    fn tags_become_markers_and_read_back_as_written() {
        let mut erb = Erb::default();
        let mut report = Report::default();
        let text = "image: <%= ENV['USER'] %>/app\n# <%= `date` %>\nhost: <%= `hostname` %>\n";
        let expanded = erb.expand("deploy.yml", text, &mut report).unwrap();
        assert!(!expanded.contains("<%"));
        assert_eq!(erb.restore(&expanded), text);
        assert_eq!(erb.tags[2].at, "deploy.yml:3");
        assert_eq!(
            erb.places(&serde_json::json!({"a": [expanded]})),
            ["deploy.yml:1", "deploy.yml:2", "deploy.yml:3"]
        );
        let mut reader = Reader::new(&mut report);
        reader.erb = erb;
        let templated = reader.template(&expanded.lines().next().unwrap()[7..], "image");
        assert_eq!(templated, "{{ vars.USER }}/app");
    }

    #[test]
    fn code_tags_are_dropped_and_reported_unless_in_a_comment() {
        let mut erb = Erb::default();
        let mut report = Report::default();
        let text = "<% if true %>\na: 1\n# <% x %>\n<%# a comment %>\n<%%= not a tag\n";
        let expanded = erb.expand("deploy.yml", text, &mut report).unwrap();
        assert_eq!(expanded, "\na: 1\n# \n\n<%= not a tag\n");
        let import = report.finish(Vec::new());
        assert_eq!(import.not_carried.len(), 1);
        assert_eq!(import.not_carried[0].path, "deploy.yml:1");
    }

    #[test]
    fn an_unclosed_tag_is_an_error_at_its_line() {
        let mut erb = Erb::default();
        let error = erb
            .expand("deploy.yml", "a: 1\nb: <%= x\n", &mut Report::default())
            .unwrap_err();
        assert_eq!(error.line, Some(2));
    }
}
