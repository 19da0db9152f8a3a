//! Compose services reach each other by name on a private network; coding-job's tasks run on
//! their hosts' network and reach each other through `{{ addr("job") }}` (`HOST:PORT` of that
//! job's tasks). A value naming another service with a port (`db:5432`) or in a URL
//! (`http://api/`) is rewritten to the address.

use std::collections::BTreeMap;

use super::interpolate::{Interpolated, Piece};

/// A use of another service's address found in a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// The Compose service named.
    pub service: String,
    /// The port written with it (`db:5432`), or the scheme's (`http://api/`: 80).
    pub port: Option<u16>,
}

/// Rewrites the references to `targets` (Compose service name → what `addr` takes: `job` or
/// `service/job`) in the text of `value`; returns the references found.
pub fn rewrite(value: &mut Interpolated, targets: &BTreeMap<String, String>) -> Vec<Reference> {
    let mut found = Vec::new();
    let mut pieces = Vec::new();
    for piece in std::mem::take(&mut value.0) {
        match piece {
            Piece::Text(text) => rewrite_text(&text, targets, &mut pieces, &mut found),
            other => pieces.push(other),
        }
    }
    value.0 = pieces;
    found
}

fn rewrite_text(
    text: &str,
    targets: &BTreeMap<String, String>,
    pieces: &mut Vec<Piece>,
    found: &mut Vec<Reference>,
) {
    // Longest names first: `db-replica` before `db`.
    let mut names: Vec<&String> = targets.keys().collect();
    names.sort_by_key(|name| std::cmp::Reverse(name.len()));
    let mut plain = String::new();
    let mut index = 0;
    let bytes = text.as_bytes();
    'scan: while index < text.len() {
        let at_boundary = index == 0 || !is_name_byte(bytes[index - 1]);
        if at_boundary {
            for name in &names {
                if !text[index..].starts_with(name.as_str()) {
                    continue;
                }
                let end = index + name.len();
                if let Some((port, length)) = port_after(&text[end..]) {
                    push_addr(&mut plain, pieces, &targets[*name]);
                    found.push(Reference {
                        service: (*name).clone(),
                        port: Some(port),
                    });
                    index = end + length;
                    continue 'scan;
                }
                let in_url = text[..index].ends_with("://");
                let ends = text[end..]
                    .chars()
                    .next()
                    .is_none_or(|c| matches!(c, '/' | '?' | '#' | '"' | '\'' | ' ' | ','));
                if in_url && ends {
                    let scheme = text[..index - 3]
                        .rsplit(|c: char| !c.is_ascii_alphanumeric())
                        .next()
                        .unwrap_or("");
                    push_addr(&mut plain, pieces, &targets[*name]);
                    found.push(Reference {
                        service: (*name).clone(),
                        port: scheme_port(scheme),
                    });
                    index = end;
                    continue 'scan;
                }
            }
        }
        let c = text[index..].chars().next().unwrap_or(' ');
        plain.push(c);
        index += c.len_utf8();
    }
    if !plain.is_empty() {
        pieces.push(Piece::Text(plain));
    }
}

fn push_addr(plain: &mut String, pieces: &mut Vec<Piece>, target: &str) {
    if !plain.is_empty() {
        pieces.push(Piece::Text(std::mem::take(plain)));
    }
    pieces.push(Piece::Addr(target.to_string()));
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-')
}

/// `:5432` followed by something that is not part of a name: the port and the bytes it took.
fn port_after(rest: &str) -> Option<(u16, usize)> {
    let digits = rest.strip_prefix(':')?;
    let length = digits.bytes().take_while(u8::is_ascii_digit).count();
    if length == 0
        || digits
            .as_bytes()
            .get(length)
            .is_some_and(|&b| is_name_byte(b))
    {
        return None;
    }
    let port = digits[..length]
        .parse::<u16>()
        .ok()
        .filter(|&port| port > 0)?;
    Some((port, length + 1))
}

fn scheme_port(scheme: &str) -> Option<u16> {
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "postgres" | "postgresql" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "amqp" => Some(5672),
        "mongodb" => Some(27017),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::interpolate::interpolate;
    use crate::report::Report;

    fn rewritten(value: &str) -> (String, Vec<Reference>) {
        let targets: BTreeMap<String, String> = [
            ("db".to_string(), "db".to_string()),
            ("db-replica".to_string(), "db-replica".to_string()),
            ("api".to_string(), "backend/api".to_string()),
        ]
        .into();
        let mut report = Report::default();
        let mut value = interpolate(value, "x", &mut report);
        let found = rewrite(&mut value, &targets);
        (value.template(), found)
    }

    #[test]
    fn host_and_port_becomes_the_address() {
        let (text, found) = rewritten("postgres://u:${PW}@db:5432/app");
        assert_eq!(text, "postgres://u:{{ vars.PW }}@{{ addr(\"db\") }}/app");
        assert_eq!(found[0].port, Some(5432));
    }

    #[test]
    fn a_url_without_a_port_takes_the_schemes() {
        let (text, found) = rewritten("http://api/v1");
        assert_eq!(text, "http://{{ addr(\"backend/api\") }}/v1");
        assert_eq!(found[0].port, Some(80));
    }

    #[test]
    fn longer_names_and_word_boundaries_are_respected() {
        assert_eq!(rewritten("db-replica:5433").0, "{{ addr(\"db-replica\") }}");
        assert_eq!(rewritten("mydb:5432").0, "mydb:5432");
        assert_eq!(rewritten("db:5432x").0, "db:5432x");
        assert_eq!(rewritten("the db is up").0, "the db is up");
        assert_eq!(rewritten("redis://db").1[0].port, Some(6379));
    }
}
