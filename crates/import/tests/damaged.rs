//! Damaged files: every corpus file (and the bundled example) with lines dropped, doubled or
//! swapped for lines of other files, thousands of variants in all. An import may refuse a
//! variant (a located error) but never panics, and whatever it writes `push` would accept.

mod common;

use std::path::Path;

use coding_job_import::{Format, Options, Source, import};

/// A small deterministic generator, so a failure names a variant that can be made again.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % below.max(1)
    }
}

fn variant(lines: &[&str], donors: &[&str], random: &mut Lcg) -> String {
    let mut out: Vec<&str> = lines.to_vec();
    for _ in 0..=random.next(3) {
        let at = random.next(out.len());
        match random.next(3) {
            0 if !out.is_empty() => {
                out.remove(at);
            }
            1 if !out.is_empty() => {
                let line = out[at];
                out.insert(at, line);
            }
            _ => {
                let donor = donors[random.next(donors.len())];
                if at < out.len() {
                    out[at] = donor;
                } else {
                    out.push(donor);
                }
            }
        }
    }
    out.join("\n")
}

#[test]
fn damaged_files_are_refused_or_imported_into_files_push_accepts() {
    let mut sources: Vec<(Format, String, String)> = Vec::new();
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/compose/docker-compose.yml");
    sources.push((
        Format::Compose,
        "docker-compose.yml".into(),
        std::fs::read_to_string(example).unwrap(),
    ));
    if let Some(corpus) = common::corpus() {
        for (kind, format) in [
            ("compose", Format::Compose),
            ("marathon", Format::Marathon),
            ("kamal", Format::Kamal),
        ] {
            for path in common::files(&corpus.join(kind)) {
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                sources.push((format, name, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let all_lines: Vec<&str> = sources
        .iter()
        .flat_map(|(_, _, text)| text.lines())
        .collect();
    let mut random = Lcg(7);
    let mut imported = 0;
    let mut refused = 0;
    for (format, name, text) in &sources {
        let lines: Vec<&str> = text.lines().collect();
        for round in 0..150 {
            let damaged = variant(&lines, &all_lines, &mut random);
            let source = Source {
                file: name,
                text: &damaged,
            };
            match import(*format, &source, &Options::default()) {
                Ok(result) => {
                    imported += 1;
                    if let Err(problem) = common::accepted_by_push(&result) {
                        panic!(
                            "{name}, variant {round}: not accepted:\n{problem}\n--- source:\n{damaged}"
                        );
                    }
                }
                Err(_) => refused += 1,
            }
        }
    }
    eprintln!("{imported} variants imported, {refused} refused");
    assert!(imported > 0);
}
