//! What the import tests share: where the corpus is, and the check `push` would make.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cj_spec::ServiceSpec;
use coding_job_import::Import;

pub fn corpus() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("CODING_JOB_IMPORT_CORPUS").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/import-corpus")),
        Some(PathBuf::from("/work/shared/import-corpus")),
    ];
    let found = candidates.into_iter().flatten().find(|dir| dir.is_dir());
    if found.is_none() {
        eprintln!(
            "SKIPPED: the import corpus is absent (looked in $CODING_JOB_IMPORT_CORPUS, ../shared/import-corpus beside the project, /work/shared/import-corpus)"
        );
    }
    found
}

pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// A value for every reported variable: its default, or a stand-in.
fn values(imported: &Import) -> BTreeMap<String, String> {
    imported
        .variables
        .iter()
        .map(|variable| {
            let value = variable
                .default
                .clone()
                .unwrap_or_else(|| "set-by-test".into());
            (variable.name.clone(), value)
        })
        .collect()
}

/// Checks every written file as `push` would, with the variables set; the files as the config
/// reads them.
pub fn accepted_by_push(imported: &Import) -> Result<Vec<ServiceSpec>, String> {
    let vars = values(imported);
    let jobs: BTreeSet<(String, String)> = imported
        .files
        .iter()
        .flat_map(|file| {
            file.jobs
                .iter()
                .map(|job| (file.service.clone(), job.clone()))
        })
        .collect();
    let job_exists =
        |service: &str, job: &str| jobs.contains(&(service.to_string(), job.to_string()));
    let mut specs = Vec::new();
    for file in &imported.files {
        let spec = cj_spec::parse_service(&file.path, &file.text)
            .map_err(|errors| format!("{errors}\n--- {}:\n{}", file.path, file.text))?;
        let scope = cj_spec::TemplateScope {
            env: "production",
            service: &file.service,
            vars: &vars,
            job_exists: &job_exists,
        };
        cj_spec::check_templates(&file.path, &file.text, &scope)
            .map_err(|errors| format!("{errors}\n--- {}:\n{}", file.path, file.text))?;
        specs.push(spec);
    }
    Ok(specs)
}
