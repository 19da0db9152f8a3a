//! `import compose|marathon|kamal|jobs FILE`: another tool's file turned into service files.
//! The files go to stdout (YAML documents) or into `-o DIR`; the report goes to stderr, so
//! stdout stays a valid YAML stream. With `--json`, everything is one JSON document on stdout.

use std::path::{Path, PathBuf};

use cj_import::{Format, Import, Options, Source};

use crate::args::{ImportCommand, ImportOutputArgs};
use crate::color::{Tone, paint};

/// Runs the import; returns the exit code (0 written, 2 unreadable input). `env` is the
/// environment the report's `env vars` command names.
pub fn run(command: ImportCommand, env: &str) -> i32 {
    let (format, file, destination, output) = match command {
        ImportCommand::Compose(args) => (Format::Compose, args.file, None, args.output),
        ImportCommand::Marathon(args) => (Format::Marathon, args.file, None, args.output),
        ImportCommand::Jobs(args) => (Format::Jobs, args.file, None, args.output),
        ImportCommand::Kamal(args) => (Format::Kamal, args.file, args.destination, args.output),
    };
    match import(format, &file, destination.as_deref(), &output, env) {
        Ok(code) => code,
        Err(message) => {
            anstream::eprintln!("{} {message}", crate::color::error_label());
            2
        }
    }
}

fn import(
    format: Format,
    file: &Path,
    destination: Option<&str>,
    output: &ImportOutputArgs,
    env: &str,
) -> Result<i32, String> {
    let shown = file.display().to_string();
    let text = read(file)?;
    let directory = file
        .parent()
        .map(|parent| {
            if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            }
        })
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let base_dir = std::fs::canonicalize(&directory)
        .ok()
        .map(|dir| dir.display().to_string());
    let read_beside = |name: &str| std::fs::read_to_string(directory.join(name)).ok();
    let destination_file = destination.map(|destination| destination_path(file, destination));
    let destination_text = match &destination_file {
        Some(path) => Some(read(path)?),
        None => None,
    };
    let destination_name = destination_file
        .as_ref()
        .map(|path| path.display().to_string());
    // Compose's project defaults to the directory's name, as `docker compose` does.
    let project = output.project.clone().or_else(|| match format {
        Format::Compose if !has_name(&text) => base_dir
            .as_deref()
            .and_then(|dir| Path::new(dir).file_name())
            .map(|name| name.to_string_lossy().to_ascii_lowercase()),
        _ => None,
    });
    let options = Options {
        project: project.as_deref(),
        destination: destination_text.as_deref().map(|text| Source {
            file: destination_name.as_deref().unwrap_or(""),
            text,
        }),
        read_beside: Some(&read_beside),
        base_dir: base_dir.as_deref(),
    };
    let source = Source {
        file: &shown,
        text: &text,
    };
    let imported =
        cj_import::import(format, &source, &options).map_err(|error| error.to_string())?;

    if let Some(dir) = &output.output_dir {
        write_files(dir, &imported)?;
    }
    if output.json {
        let text = serde_json::to_string_pretty(&imported).map_err(|error| error.to_string())?;
        println!("{text}");
        return Ok(0);
    }
    if output.output_dir.is_none() {
        for (index, file) in imported.files.iter().enumerate() {
            if index > 0 {
                println!("---");
            }
            print!("{}", file.text);
        }
    }
    // Through anstream, so the colours go when stderr is not a terminal (or `--color never`).
    anstream::eprint!(
        "{}",
        report(&shown, &imported, output.output_dir.as_deref(), env)
    );
    Ok(0)
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|error| format!("{}: cannot read: {error}", path.display()))
}

/// `config/deploy.yml` with destination `staging`: `config/deploy.staging.yml`.
fn destination_path(file: &Path, destination: &str) -> PathBuf {
    let stem = file.file_stem().unwrap_or_default().to_string_lossy();
    let extension = file
        .extension()
        .map(|extension| format!(".{}", extension.to_string_lossy()))
        .unwrap_or_default();
    file.with_file_name(format!("{stem}.{destination}{extension}"))
}

/// Whether a Compose file names its project at the top (`name: shop`).
fn has_name(text: &str) -> bool {
    text.lines().any(|line| line.starts_with("name:"))
}

fn write_files(dir: &Path, imported: &Import) -> Result<(), String> {
    std::fs::create_dir_all(dir)
        .map_err(|error| format!("{}: cannot create: {error}", dir.display()))?;
    for file in &imported.files {
        let path = dir.join(&file.path);
        std::fs::write(&path, &file.text)
            .map_err(|error| format!("{}: cannot write: {error}", path.display()))?;
    }
    Ok(())
}

/// The report for a person: what was written, the variables to set (as the command that sets
/// them), what changed on the way and what was left out.
fn report(source: &str, imported: &Import, dir: Option<&Path>, env: &str) -> String {
    let mut text = String::new();
    let jobs: usize = imported.files.iter().map(|file| file.jobs.len()).sum();
    text.push_str(&format!(
        "{} {source}: {} service file{}, {jobs} job{}\n",
        paint(Tone::Good, "imported"),
        imported.files.len(),
        plural(imported.files.len()),
        plural(jobs),
    ));
    let shown_dir = dir.map(|dir| dir.display().to_string());
    for file in &imported.files {
        let path = match &shown_dir {
            Some(dir) => format!("{dir}/{}", file.path),
            None => format!("{} (stdout)", file.path),
        };
        text.push_str(&format!("  {path}: {}\n", file.jobs.join(", ")));
    }
    if !imported.variables.is_empty() {
        text.push_str(&format!(
            "\n{} {} (set them in each environment before pushing):\n",
            paint(Tone::Busy, "variables"),
            imported.variables.len()
        ));
        text.push_str(&format!("  {}\n", set_command(imported, env)));
        for variable in imported
            .variables
            .iter()
            .filter(|variable| variable.required.is_some())
        {
            text.push_str(&format!(
                "  {}: {}\n",
                variable.name,
                variable.required.as_deref().unwrap_or("")
            ));
        }
    }
    if !imported.notes.is_empty() {
        text.push_str(&format!(
            "\n{} {}:\n",
            paint(Tone::Busy, "changed on the way"),
            imported.notes.len()
        ));
        // The same change in many places (an address rewritten in every worker) once, with
        // the first place and how many more.
        let mut grouped: Vec<(&str, &str, usize)> = Vec::new();
        for note in &imported.notes {
            match grouped.iter_mut().find(|(_, text, _)| *text == note.note) {
                Some((_, _, more)) => *more += 1,
                None => grouped.push((&note.path, &note.note, 0)),
            }
        }
        for (path, note, more) in grouped {
            let more = match more {
                0 => String::new(),
                1 => " (and 1 more place)".into(),
                n => format!(" (and {n} more places)"),
            };
            text.push_str(&format!("  {path}{more}: {note}\n"));
        }
    }
    if !imported.not_carried.is_empty() {
        text.push_str(&format!(
            "\n{} {}:\n",
            paint(Tone::Bad, "not carried"),
            imported.not_carried.len()
        ));
        for left in &imported.not_carried {
            text.push_str(&format!(
                "  {}: {}\n    {}\n",
                left.path, left.what, left.why
            ));
        }
    }
    let files = match &shown_dir {
        Some(dir) => imported
            .files
            .iter()
            .map(|file| format!("{dir}/{}", file.path))
            .collect::<Vec<_>>()
            .join(" "),
        None => "FILE.yaml".into(),
    };
    let first = imported
        .files
        .first()
        .map(|file| file.service.as_str())
        .unwrap_or("");
    text.push_str(&format!(
        "\nnext: coding-job push {files} && coding-job up {first}\n"
    ));
    text
}

/// `coding-job env vars ENV --set A=1 --secret B --set B=...`: defaults filled in,
/// the others (and every secret) left for the user.
fn set_command(imported: &Import, env: &str) -> String {
    let mut words = vec![format!("coding-job env vars {}", shell_words::quote(env))];
    for variable in &imported.variables {
        if variable.secret {
            words.push(format!("--secret {0} --set {0}=...", variable.name));
            continue;
        }
        match &variable.default {
            Some(value) => words.push(format!(
                "--set {}",
                shell_words::quote(&format!("{}={value}", variable.name))
            )),
            None => words.push(format!("--set {}=...", variable.name)),
        }
    }
    words.join(" \\\n      ")
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destination_file_sits_beside_the_base() {
        assert_eq!(
            destination_path(Path::new("config/deploy.yml"), "staging"),
            PathBuf::from("config/deploy.staging.yml")
        );
    }
}
