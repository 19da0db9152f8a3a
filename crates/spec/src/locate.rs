//! Where each value of a file is written, by field path (`jobs[0].env.DB_URL`,
//! `jobs[1].docker_config.docker_hostconfig.Binds[0]`).
//!
//! The raw types keep locations (`Spanned`) for the fields checked after parsing, but not for
//! values inside maps and lists read as a whole (environment values, command arguments, Docker
//! fields). A template in one of those is checked after parsing too, so its problems are located
//! by reading the file's YAML events once more and following the key path. The file has been
//! read successfully by then, so the events are those serde saw; a value reached only through a
//! merge key (`<<`) has no path of its own here and the caller falls back to a location it has.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

use crate::settings::key_segment;

/// Where one value starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    /// 1-based.
    pub line: u64,
    /// 1-based.
    pub column: u64,
    /// A literal block scalar (`|`), placed at its text's first line: it keeps its lines, so a
    /// line within the value is a line of the file.
    pub literal_block: bool,
}

/// The place of every value of a file, by field path.
pub(crate) struct Locator {
    places: HashMap<String, Place>,
}

/// A mapping or list being read, and where in it the reader is.
enum Frame {
    Mapping {
        path: String,
        /// The key read last, while its value is awaited.
        key: Option<String>,
    },
    List {
        path: String,
        next_index: usize,
    },
    /// A mapping or list used as a key: its contents have no path.
    Key {
        depth: usize,
    },
}

impl Locator {
    pub fn new(source: &str) -> Self {
        let mut places = HashMap::new();
        let mut frames: Vec<Frame> = Vec::new();
        let mut root_done = false;
        for next in Parser::new_from_str(source) {
            let Ok((event, span)) = next else { break };
            let place = Place {
                line: span.start.line() as u64,
                column: span.start.col() as u64 + 1,
                literal_block: matches!(&event, Event::Scalar(_, ScalarStyle::Literal, ..)),
            };
            let starts = match &event {
                Event::Scalar(..) | Event::Alias(_) => Some(false),
                Event::SequenceStart(..) | Event::MappingStart(..) => Some(true),
                Event::SequenceEnd | Event::MappingEnd => {
                    Self::end(&mut frames);
                    None
                }
                _ => None,
            };
            let Some(is_collection) = starts else {
                continue;
            };
            if let Some(Frame::Key { depth }) = frames.last_mut() {
                if is_collection {
                    *depth += 1;
                }
                continue;
            }
            // The path of this node, or None if it is a key.
            let path = match frames.last_mut() {
                None if root_done => break,
                None => {
                    root_done = true;
                    Some(String::new())
                }
                Some(Frame::Mapping { path, key }) => match key.take() {
                    Some(key) => Some(child(path, &key_segment(&key))),
                    None => {
                        *key = Some(match &event {
                            Event::Scalar(text, ..) => text.to_string(),
                            _ => "?".to_owned(),
                        });
                        if is_collection {
                            frames.push(Frame::Key { depth: 1 });
                        }
                        None
                    }
                },
                Some(Frame::List { path, next_index }) => {
                    *next_index += 1;
                    Some(child(path, &format!("[{}]", *next_index - 1)))
                }
                Some(Frame::Key { .. }) => None,
            };
            let Some(path) = path else { continue };
            if is_collection {
                let frame = match event {
                    Event::SequenceStart(..) => Frame::List {
                        path: path.clone(),
                        next_index: 0,
                    },
                    _ => Frame::Mapping {
                        path: path.clone(),
                        key: None,
                    },
                };
                frames.push(frame);
            }
            places.entry(path).or_insert(place);
        }
        Locator { places }
    }

    /// Closes the innermost mapping or list (or one level of a key's).
    fn end(frames: &mut Vec<Frame>) {
        match frames.last_mut() {
            Some(Frame::Key { depth }) if *depth > 1 => *depth -= 1,
            _ => {
                frames.pop();
            }
        }
    }

    pub fn place(&self, path: &str) -> Option<Place> {
        self.places.get(path).copied()
    }
}

/// `parent` + `segment`, without a leading dot at the top level (`jobs`, not `.jobs`).
fn child(parent: &str, segment: &str) -> String {
    if parent.is_empty() {
        segment.strip_prefix('.').unwrap_or(segment).to_owned()
    } else {
        format!("{parent}{segment}")
    }
}

#[cfg(test)]
mod tests {
    use super::{Locator, Place};

    fn at(line: u64, column: u64) -> Option<Place> {
        Some(Place {
            line,
            column,
            literal_block: false,
        })
    }

    #[test]
    fn values_are_found_by_their_field_path() {
        let source = "service: s\njobs:\n  - name: a\n    env: {A: \"x\", \"B C\": y}\n    docker_config:\n      docker_hostconfig:\n        Binds:\n          - /a:/a\n          - /b:/b\n    command: [sh, -c]\n";
        let locator = Locator::new(source);
        assert_eq!(locator.place("service"), at(1, 10));
        assert_eq!(locator.place("jobs[0].name"), at(3, 11));
        assert_eq!(locator.place("jobs[0].env.A"), at(4, 14));
        assert_eq!(locator.place("jobs[0].env[\"B C\"]"), at(4, 26));
        assert_eq!(
            locator.place("jobs[0].docker_config.docker_hostconfig.Binds[1]"),
            at(9, 13)
        );
        assert_eq!(locator.place("jobs[0].command[1]"), at(10, 19));
        assert_eq!(locator.place("jobs[0].missing"), None);
    }

    #[test]
    fn a_literal_block_is_marked() {
        let source = "a:\n  b: |\n    x\n    y\n  c: [{k: v}]\n";
        let locator = Locator::new(source);
        let block = locator.place("a.b").unwrap();
        assert!(block.literal_block);
        assert_eq!(
            block.line, 3,
            "the place of a block is its text's first line"
        );
        assert_eq!(locator.place("a.c[0].k"), at(5, 11));
    }

    #[test]
    fn mappings_used_as_keys_have_no_path() {
        let source = "a:\n  ? {x: 1}\n  : v\n  b: w\n";
        let locator = Locator::new(source);
        assert_eq!(locator.place("a.b"), at(4, 6));
        assert_eq!(locator.place("a.x"), None);
    }
}
