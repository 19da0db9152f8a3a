//! `diff FILE`: the config diff against the stored version and what a rollout would do, task by
//! task. Also the text diff between two stored versions, for `history --diff`.

use cj_api::{DiffRequest, DiffResponse};
use cj_spec::ChangeKind;
use similar::TextDiff;

use crate::client::{CliError, CliResult, Client};
use crate::color::{Tone, cell, paint};
use crate::output::{print_json, print_table, table};

pub async fn run(client: &Client, args: crate::args::DiffArgs) -> CliResult<i32> {
    let file = args.file.as_path();
    let source = std::fs::read_to_string(file)
        .map_err(|error| CliError::bad_input(format!("cannot read {}: {error}", file.display())))?;
    let request = DiffRequest {
        env: client.env.clone(),
        file: file.display().to_string(),
        source,
    };
    let diff: DiffResponse = client.json(client.post("/v1/diff", &request)).await?;
    // As `git diff --exit-code`: 1 when anything would change.
    let changes = diff.latest_source.as_deref() != Some(diff.source.as_str())
        || diff
            .changes
            .iter()
            .any(|change| change.change != ChangeKind::Unchanged);
    let code = i32::from(args.exit_code && changes);
    if args.json {
        print_json(&diff)?;
        return Ok(code);
    }
    let old_name = match diff.latest_version {
        Some(version) => format!("{} version {version}", diff.service),
        None => format!("{} (not pushed yet)", diff.service),
    };
    print_unified(
        &old_name,
        &file.display().to_string(),
        diff.latest_source.as_deref().unwrap_or(""),
        &diff.source,
    );
    println!();
    let mut plan = table(&["TASK", "PLAN", "WHY"]);
    for change in &diff.changes {
        let (tone, word) = match change.change {
            ChangeKind::Create => (Tone::Good, "create"),
            ChangeKind::Replace => (Tone::Busy, "replace"),
            ChangeKind::Unchanged => (Tone::Plain, "unchanged"),
            ChangeKind::Remove => (Tone::Bad, "remove"),
        };
        plan.add_row(vec![
            format!("{}/{}/{}", diff.service, change.job, change.task).into(),
            cell(tone, word),
            change.reasons.join("; ").into(),
        ]);
    }
    print_table(&plan);
    println!(
        "\nrevision {}: `coding-job push --check-rev {} {}` pushes only if nothing changed since",
        diff.revision,
        diff.revision,
        file.display()
    );
    Ok(code)
}

/// A unified diff, coloured as `--color` says (by default: on a terminal, unless `NO_COLOR` is
/// set).
pub fn print_unified(old_name: &str, new_name: &str, old: &str, new: &str) {
    let diff = TextDiff::from_lines(old, new);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string();
    if text.is_empty() && new.contains(cj_api::SECRET_MASK) {
        // The server masks secret values, so two versions that differ only in one read alike.
        println!(
            "(no changes to the file as shown: secret values are masked, and a change of one does not show)"
        );
        return;
    }
    if text.is_empty() {
        println!("(no changes to the file)");
        return;
    }
    for line in text.lines() {
        anstream::println!("{}", paint(line_tone(line), line));
    }
}

/// A unified diff's line as `git diff` colours it: added, removed, a hunk's header.
fn line_tone(line: &str) -> Tone {
    match line.chars().next() {
        Some('+') if !line.starts_with("+++") => Tone::Good,
        Some('-') if !line.starts_with("---") => Tone::Bad,
        Some('@') if line.starts_with("@@") => Tone::Frame,
        _ => Tone::Plain,
    }
}
