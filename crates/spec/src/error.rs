//! Errors of a rejected config file: each one is located (file, line, column) and names the field
//! path, so a user can go straight to the mistake.

use std::fmt;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SpecError {
    pub file: String,
    /// 1-based; a problem with the whole file (e.g. an empty file) is at line 1, column 1.
    pub line: u64,
    pub column: u64,
    /// Dotted path of the field, e.g. `jobs[0].image`; `.` for the whole document.
    pub path: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.path, self.message
        )
    }
}

/// All problems found in one file; never empty.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// Longest message of a [`SpecError`], in characters: user values in it are [`shown`] short,
/// and this is the last guard.
pub(crate) const MAX_MESSAGE_CHARS: usize = 400;

/// Longest field path of a [`SpecError`], in characters.
pub(crate) const MAX_PATH_CHARS: usize = 200;

/// Longest user value (in characters) put into a message; the rest is cut off with an ellipsis.
const SHOWN_CHARS: usize = 64;

/// A user's value as it is put into a message: at most [`SHOWN_CHARS`] characters, with quotes,
/// backslashes, control characters and invisible formatting characters escaped, so a message
/// stays one short line whatever the file holds.
pub fn shown(value: &str) -> String {
    let mut text = String::new();
    for (count, c) in value.chars().enumerate() {
        if count == SHOWN_CHARS {
            text.push('…');
            break;
        }
        match c {
            '"' | '\\' | '\0' | '\t' | '\n' | '\r' => text.extend(c.escape_debug()),
            c if c.is_control() || is_invisible(c) => {
                text.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => text.push(c),
        }
    }
    text
}

/// Characters that change how text is displayed without being visible (bidirectional
/// overrides, zero-width characters, the byte order mark).
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// `names` joined with ", ", each [`shown`], cut off after about 200 characters.
pub(crate) fn shown_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut text = String::new();
    for name in names {
        if text.len() > 200 {
            text.push_str(", …");
            break;
        }
        if !text.is_empty() {
            text.push_str(", ");
        }
        text.push_str(&shown(name));
    }
    text
}

/// `text` cut to at most `max` characters, with an ellipsis if anything was cut.
pub fn capped(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((end, _)) if text[end..].chars().nth(1).is_some() => format!("{}…", &text[..end]),
        _ => text.to_owned(),
    }
}

/// Words longer than this get no "did you mean" hint: no name we suggest is that long, and
/// comparing long strings costs time quadratic in their length.
const MAX_HINT_WORD_CHARS: usize = 64;

/// Candidates compared at most, so a hint costs little even for a service of many jobs.
const MAX_HINT_CANDIDATES: usize = 1000;

/// The closest of `candidates` to a misspelt `word`, if one is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    if word.chars().count() > MAX_HINT_WORD_CHARS {
        return None;
    }
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .take(MAX_HINT_CANDIDATES)
        .filter(|candidate| candidate.chars().count() <= MAX_HINT_WORD_CHARS)
        .map(|candidate| {
            (
                strsim::jaro_winkler(&word, &candidate.to_lowercase()),
                candidate,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::{capped, shown};

    #[test]
    fn shown_values_are_short_and_escaped() {
        assert_eq!(shown("core nginx"), "core nginx");
        assert_eq!(shown("a\0b\n\"c\""), "a\\0b\\n\\\"c\\\"");
        assert_eq!(shown("\u{202e}x"), "\\u{202e}x");
        let long = "x".repeat(1_000_000);
        assert_eq!(shown(&long), format!("{}…", "x".repeat(64)));
        assert_eq!(shown(&"é".repeat(64)), "é".repeat(64));
    }

    #[test]
    fn capped_cuts_at_a_character_boundary() {
        assert_eq!(capped("abc", 3), "abc");
        assert_eq!(capped("abcd", 3), "ab…");
        assert_eq!(capped("ééé", 2), "é…");
        assert_eq!(capped("", 2), "");
    }
}
