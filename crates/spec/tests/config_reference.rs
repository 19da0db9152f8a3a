//! `docs/config.md`, the service file reference, checked against the parser so the two cannot
//! drift apart:
//!
//! - every ```` ```yaml ```` block of it with a top-level `service:` is a whole service file,
//!   and must load with [`parse_service`] as written;
//! - every key the parser accepts, at every level of the file, is named (as `` `key` ``) in the
//!   section of the reference that documents that level, and so is every value of the enum
//!   fields (`on_failure`, `on_host_lost`).
//!
//! The accepted keys are not listed by hand: they are asked of the parser itself. Every mapping
//! of a service file is read by a serde type with `deny_unknown_fields`, and serde answers an
//! unknown key with the whole list of the keys that type accepts (`unknown field "x" (expected
//! one of: a, b, c)` once the spec crate has put it in words). So each level is probed with a
//! small file that holds an unknown key at that level, and the list is read back from the
//! error. A new field in `raw.rs` is thereby a new name the reference must mention; a level
//! whose error stops carrying the list fails the test instead of passing quietly. Enum values
//! are read the same way from serde's "unknown variant" answer. This needs nothing from the
//! crate beyond its public `parse_service`, and no list to keep in step; only a new *kind* of
//! mapping (a new nested section) needs a line in [`LEVELS`] for its own keys to be probed (its
//! name, a key of its parent, is checked already).
//!
//! Not levels here: `env` and `constraints` (maps of the user's own keys), and the two Docker sections, whose keys are Docker's field names (checked against
//! the Engine API's list in `docker_fields.rs`, and described by Docker's documentation).

use coding_job_spec::parse_service;

/// The key no type accepts, fed to each level.
const PROBE: &str = "zz_probe";

/// A mapping of the service file, how to reach it, and the heading of its section in the
/// reference. `{}` in the file is where the probe goes.
struct Level {
    what: &'static str,
    file: &'static str,
    /// Where the parser must say the probe is: proof that it reached the intended type.
    path: &'static str,
    section: &'static str,
}

const LEVELS: &[Level] = &[
    Level {
        what: "the file's top level",
        file: "{}: 1\nservice: s\njobs: [{name: a}]\n",
        path: "zz_probe",
        section: "## The file",
    },
    Level {
        what: "a job",
        file: "service: s\njobs:\n  - {}: 1\n    name: a\n",
        path: "jobs[0].zz_probe",
        section: "## Jobs",
    },
    Level {
        what: "a task",
        file: "service: s\njobs:\n  - name: a\n    tasks:\n      - {}: 1\n        name: t\n",
        path: "jobs[0].tasks[0].zz_probe",
        section: "## Tasks",
    },
    Level {
        what: "check",
        file: "service: s\njobs:\n  - name: a\n    check:\n      {}: 1\n",
        path: "jobs[0].check.zz_probe",
        section: "## Checks: `check`",
    },
    Level {
        what: "update",
        file: "service: s\njobs:\n  - name: a\n    update:\n      {}: 1\n",
        path: "jobs[0].update.zz_probe",
        section: "## Rollouts: `update`",
    },
    Level {
        what: "resources",
        file: "service: s\njobs:\n  - name: a\n    resources:\n      {}: 1\n",
        path: "jobs[0].resources.zz_probe",
        section: "## Resources: `resources`",
    },
    Level {
        what: "route",
        file: "service: s\njobs:\n  - name: a\n    route:\n      {}: 1\n",
        path: "jobs[0].route.zz_probe",
        section: "## Routes: `route`",
    },
    Level {
        what: "a volume",
        file: "service: s\njobs:\n  - name: a\n    volumes:\n      - {}: 1\n",
        path: "jobs[0].volumes[0].zz_probe",
        section: "## Volumes: `volumes`",
    },
    Level {
        what: "artifact",
        file: "service: s\njobs:\n  - name: a\n    artifact:\n      {}: 1\n",
        path: "jobs[0].artifact.zz_probe",
        section: "## Artifacts: `artifact`",
    },
    Level {
        what: "docker_config",
        file: "service: s\njobs:\n  - name: a\n    docker_config:\n      {}: 1\n",
        path: "jobs[0].docker_config.zz_probe",
        section: "## Docker fields: `docker_config`",
    },
];

/// Fields whose value is one of a few words, how to reach each, and their section.
const ENUMS: &[Level] = &[
    Level {
        what: "on_failure",
        file: "service: s\njobs:\n  - name: a\n    on_failure: {}\n",
        path: "jobs[0].on_failure",
        section: "## Jobs",
    },
    Level {
        what: "on_host_lost",
        file: "service: s\njobs:\n  - name: a\n    on_host_lost: {}\n",
        path: "jobs[0].on_host_lost",
        section: "## Jobs",
    },
];

fn reference() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md");
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
}

/// The text under `heading` (a whole line of the reference), up to the next heading of the
/// same or a higher level.
fn section<'a>(reference: &'a str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let mut lines = reference.split_inclusive('\n');
    let mut start = 0;
    for line in lines.by_ref() {
        start += line.len();
        if line.trim_end() == heading {
            break;
        }
    }
    assert!(
        start < reference.len(),
        "docs/config.md has no heading `{heading}`"
    );
    let mut end = start;
    let mut in_code = false;
    for line in lines {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        let is_heading = !in_code && hashes > 0 && line[hashes..].starts_with(' ');
        if is_heading && hashes <= level {
            break;
        }
        end += line.len();
    }
    &reference[start..end]
}

/// The list serde gives after `marker` in the error `file` gets (the probe put in place), up to
/// the closing parenthesis or the end of the message.
fn expected_after(level: &Level, marker: &str) -> Vec<String> {
    let file = level.file.replace("{}", PROBE);
    let error = match parse_service("probe.yaml", &file) {
        Ok(_) => panic!("{}: the probe key was accepted:\n{file}", level.what),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains(&format!(": {}: ", level.path)),
        "{}: the probe did not reach `{}`: {error}",
        level.what,
        level.path
    );
    let list = error
        .split_once(marker)
        .map(|(_, list)| list)
        .unwrap_or_else(|| {
            panic!(
                "{}: no `{marker}` in the parser's answer: {error}",
                level.what
            )
        });
    let list = list.split(')').next().unwrap_or(list);
    let names: Vec<String> = list
        .split(',')
        .map(|name| name.trim().trim_matches(['"', '`']).to_owned())
        .filter(|name| !name.is_empty())
        .collect();
    assert!(
        names.len() >= 2,
        "{}: cannot read the expected names from: {error}",
        level.what
    );
    names
}

/// `names` missing from `heading`'s section of the reference, each as `` `name` ``.
fn missing_in(reference: &str, heading: &str, names: &[String]) -> Vec<String> {
    let text = section(reference, heading);
    names
        .iter()
        .filter(|name| !text.contains(&format!("`{name}`")))
        .cloned()
        .collect()
}

#[test]
fn every_field_the_parser_accepts_is_in_its_section() {
    let reference = reference();
    let mut problems = Vec::new();
    for level in LEVELS {
        let fields = expected_after(level, "expected one of: ");
        for name in missing_in(&reference, level.section, &fields) {
            problems.push(format!(
                "`{name}` ({}) is not named in section `{}`",
                level.what, level.section
            ));
        }
    }
    for field in ENUMS {
        let values = expected_after(field, "expected one of ");
        for value in missing_in(&reference, field.section, &values) {
            problems.push(format!(
                "value `{value}` of {} is not named in section `{}`",
                field.what, field.section
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/config.md is behind the parser (crates/spec/src/raw.rs):\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_service_file_in_the_config_reference_loads() {
    let reference = reference();
    let mut blocks = Vec::new();
    let mut block: Option<(usize, String)> = None;
    for (index, line) in reference.lines().enumerate() {
        match &mut block {
            None if line.trim_end() == "```yaml" => block = Some((index + 2, String::new())),
            Some((first_line, text)) if line.trim_end() == "```" => {
                blocks.push((*first_line, std::mem::take(text)));
                block = None;
            }
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    assert!(
        block.is_none(),
        "docs/config.md has an unclosed ```yaml block"
    );
    let files: Vec<_> = blocks
        .iter()
        .filter(|(_, text)| text.lines().any(|line| line.starts_with("service:")))
        .collect();
    assert!(
        files.len() >= 3,
        "expected the reference's examples of whole files, found {}",
        files.len()
    );
    let mut problems = Vec::new();
    for (first_line, text) in files {
        let name = format!("docs/config.md (the block at line {first_line})");
        if let Err(errors) = parse_service(&name, text) {
            problems.push(errors.to_string());
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
