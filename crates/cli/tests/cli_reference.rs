//! `docs/cli.md` is the command-line reference generated from the parser's definitions
//! (`manual::markdown`): this test fails when the page and the definitions differ, so a new
//! command or flag cannot go undocumented. `UPDATE_DOCS=1 cargo test -p coding-job-cli
//! cli_reference` writes the page instead of comparing it.

use std::path::Path;

#[test]
fn cli_reference_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
    let generated = coding_job_cli::manual::markdown();
    if std::env::var_os("UPDATE_DOCS").is_some_and(|value| !value.is_empty() && value != "0") {
        std::fs::write(&path, &generated)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        return;
    }
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    if written == generated {
        return;
    }
    let first_difference = written
        .lines()
        .zip(generated.lines())
        .position(|(old, new)| old != new)
        .unwrap_or_else(|| written.lines().count().min(generated.lines().count()));
    let line = |text: &str| {
        text.lines()
            .nth(first_difference)
            .unwrap_or("(end of the page)")
            .to_owned()
    };
    panic!(
        "docs/cli.md is not what the command-line definitions generate; first difference at line {}:\n  docs/cli.md: {}\n  generated:   {}\nwrite it again with: UPDATE_DOCS=1 cargo test -p coding-job-cli cli_reference",
        first_difference + 1,
        line(&written),
        line(&generated),
    );
}

#[test]
fn cli_reference_names_every_command() {
    let page = coding_job_cli::manual::markdown();
    for heading in [
        "## Global options",
        "## coding-job push",
        "## coding-job rolling-update",
        "### coding-job env create",
        "### coding-job store snapshot",
    ] {
        assert!(
            page.lines().any(|line| line == heading),
            "no `{heading}` in the generated reference"
        );
    }
    for text in [
        "`--server <SERVER>`",
        "Env `CODING_JOB_SERVER`.",
        "Default `http://127.0.0.1:7400`.",
        "`--host-down-after <DURATION>`",
        "Also: `coding-job list`.",
    ] {
        assert!(page.contains(text), "no {text} in the generated reference");
    }
}
