//! Every real file of the import corpus (`../shared/import-corpus/`, beside the project; or
//! `CODING_JOB_IMPORT_CORPUS`) imports, every service file written is accepted by the config's
//! own checks once the reported variables are set, and each report is a snapshot. The corpus
//! belongs to its authors and is not part of this repository: without it the tests say so and
//! pass.

mod common;

use std::path::Path;

use common::{accepted_by_push, corpus, files};

use coding_job_import::{Format, Import, Options, Source, import};

/// The report as the snapshot keeps it: what was written, the variables, the notes and what
/// was left out.
fn report(imported: &Import) -> String {
    let mut text = String::new();
    for file in &imported.files {
        text.push_str(&format!(
            "file {}: jobs {}\n",
            file.path,
            file.jobs.join(", ")
        ));
    }
    for variable in &imported.variables {
        text.push_str(&format!(
            "variable {}{}{}\n",
            variable.name,
            variable
                .default
                .as_ref()
                .map(|default| format!(" (default {default:?})"))
                .unwrap_or_default(),
            if variable.secret { " secret" } else { "" }
        ));
    }
    for note in &imported.notes {
        text.push_str(&format!("note {}: {}\n", note.path, note.note));
    }
    for left in &imported.not_carried {
        text.push_str(&format!(
            "left {}: {} ({})\n",
            left.path, left.what, left.why
        ));
    }
    text
}

fn import_all(kind: &str, format: Format) {
    let Some(corpus) = corpus() else { return };
    let mut failures = Vec::new();
    for path in files(&corpus.join(kind)) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let source = Source {
            file: &name,
            text: &text,
        };
        let options = Options::default();
        match import(format, &source, &options) {
            Ok(imported) => {
                if let Err(problem) = accepted_by_push(&imported) {
                    failures.push(format!("{name}: not accepted:\n{problem}"));
                }
                insta::assert_snapshot!(format!("{kind}__{name}"), report(&imported));
            }
            Err(error) => failures.push(format!("{name}: {error}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_compose_file_imports_and_is_accepted() {
    import_all("compose", Format::Compose);
}

#[test]
fn every_marathon_file_imports_and_is_accepted() {
    import_all("marathon", Format::Marathon);
}

#[test]
fn every_kamal_file_imports_and_is_accepted() {
    import_all("kamal", Format::Kamal);
}

/// The demo's Compose file (`examples/compose`) imports into what the demo pushes and serves.
#[test]
fn the_bundled_compose_example_imports_as_the_demo_expects() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/compose/docker-compose.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let source = Source {
        file: "docker-compose.yml",
        text: &text,
    };
    let imported = import(Format::Compose, &source, &Options::default()).unwrap();
    accepted_by_push(&imported).unwrap();
    let shop = &imported.files[0];
    assert_eq!(
        (shop.path.as_str(), shop.jobs.clone()),
        ("shop.yaml", vec!["api".to_string(), "web".to_string()])
    );
    assert!(
        shop.text.contains(r#"API_URL: http://{{ addr("api") }}"#),
        "{}",
        shop.text
    );
    assert!(shop.text.contains("route: web"), "{}", shop.text);
    let names: Vec<&str> = imported.variables.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["GREETING"]);
}
