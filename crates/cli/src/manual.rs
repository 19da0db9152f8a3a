//! `completion SHELL` and `man`: the shell completion scripts and the manual page, generated
//! from the same definitions the parser uses, so neither can fall behind a new flag; and
//! [`markdown`], the same reference as the page `docs/cli.md`, which a test keeps equal to it.

use std::io::Write;

use clap::{Arg, Command, CommandFactory};

use crate::args::Cli;

/// The completion script for `shell`.
pub fn completion(shell: clap_complete::Shell, out: &mut dyn Write) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "coding-job", out);
}

/// The manual page, in roff: the top command and a section per subcommand.
pub fn man(out: &mut dyn Write) -> std::io::Result<()> {
    let command = Cli::command();
    let page = clap_mangen::Man::new(command.clone());
    page.render_title(out)?;
    page.render_name_section(out)?;
    page.render_synopsis_section(out)?;
    page.render_description_section(out)?;
    page.render_options_section(out)?;
    page.render_subcommands_section(out)?;
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        let name = format!("coding-job {}", sub.get_name());
        let sub = sub.clone().bin_name(name.clone());
        let page = clap_mangen::Man::new(sub.clone());
        writeln!(out, ".SH \"{}\"", name.to_uppercase())?;
        page.render_synopsis_section(out)?;
        page.render_description_section(out)?;
        page.render_options_section(out)?;
        if sub.has_subcommands() {
            page.render_subcommands_section(out)?;
        }
    }
    page.render_version_section(out)?;
    Ok(())
}

/// How `docs/cli.md` says where it comes from and how to make it again.
const MARKDOWN_HEADER: &str = "\
# Command-line reference

Every command, subcommand, argument and option of `coding-job`, with its help, default and
environment variable. For a tour see the [README](../README.md); for what the commands do, in
prose, [usage.md](usage.md); the service files they push are described in [config.md](config.md).

This page is generated from the parser's own definitions (`markdown` in
`crates/cli/src/manual.rs`), as `coding-job man` and `coding-job completion` are; do not edit
it by hand. A test fails when it differs from the definitions; to write it again, run
`UPDATE_DOCS=1 cargo test -p coding-job-cli cli_reference`.

Every command takes `-h`/`--help`. Exit codes: 0 done, 1 failed, 2 bad input (`exec` and
`env run`: the command's own).
";

/// The whole command line as markdown: the global options, then a section per command and
/// subcommand, in the order `--help` lists them, with their arguments and options. Hidden
/// commands and options are left out, and nothing depends on the machine it runs on (no
/// version, no environment variable's value), so the text changes only with the definitions.
pub fn markdown() -> String {
    let mut command = Cli::command();
    command.build();
    let mut out = String::from(MARKDOWN_HEADER);
    out.push_str("\n## Commands\n\n");
    for (sub, depth) in visible_tree(&command, 0) {
        let indent = "  ".repeat(depth);
        let name = full_name(sub);
        let about = sub
            .get_about()
            .map(|about| first_sentence(&about.to_string()));
        let anchor = name.replace(' ', "-");
        out.push_str(&format!("{indent}- [{name}](#{anchor})"));
        if let Some(about) = about {
            out.push_str(&format!(": {about}"));
        }
        out.push('\n');
    }
    out.push_str("\n## Global options\n\n");
    out.push_str("These are taken by every command, before or after its name.\n\n");
    let globals: Vec<&Arg> = command
        .get_arguments()
        .filter(|arg| shown_arg(arg) && arg.is_global_set())
        .collect();
    render_args(&mut out, &globals);
    for (sub, depth) in visible_tree(&command, 0) {
        render_command(&mut out, sub, depth);
    }
    let end = out.trim_end().len();
    out.truncate(end);
    out.push('\n');
    out
}

/// The visible subcommands of `command`, depth first, each with its depth below the top.
fn visible_tree(command: &Command, depth: usize) -> Vec<(&Command, usize)> {
    let mut found = Vec::new();
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        found.push((sub, depth));
        found.extend(visible_tree(sub, depth + 1));
    }
    found
}

/// `coding-job env create`: the name clap gives a built subcommand.
fn full_name(command: &Command) -> String {
    command
        .get_bin_name()
        .unwrap_or(command.get_name())
        .to_owned()
}

/// One command's section: what it does, its other names, its usage line, its arguments and
/// options (the global ones are listed once, at the top) and its subcommands.
fn render_command(out: &mut String, command: &Command, depth: usize) {
    let name = full_name(command);
    let hashes = "#".repeat((depth + 2).min(6));
    out.push_str(&format!("{hashes} {name}\n\n"));
    let about = command.get_long_about().or(command.get_about());
    if let Some(about) = about {
        out.push_str(&sentences(&about.to_string()));
        out.push_str("\n\n");
    }
    let aliases: Vec<&str> = command.get_all_aliases().collect();
    if !aliases.is_empty() {
        let parent = name.rsplit_once(' ').map_or("", |(parent, _)| parent);
        let aliases: Vec<String> = aliases
            .iter()
            .map(|alias| format!("`{parent} {alias}`"))
            .collect();
        out.push_str(&format!("Also: {}.\n\n", aliases.join(", ")));
    }
    let usage = command.clone().render_usage().to_string();
    let usage = usage.trim_start_matches("Usage:").trim();
    out.push_str(&format!("```\n{usage}\n```\n\n"));
    let own: Vec<&Arg> = command
        .get_arguments()
        .filter(|arg| shown_arg(arg) && !arg.is_global_set())
        .collect();
    let (positionals, options): (Vec<&Arg>, Vec<&Arg>) =
        own.into_iter().partition(|arg| arg.is_positional());
    if !positionals.is_empty() {
        out.push_str("Arguments:\n\n");
        render_args(out, &positionals);
    }
    if !options.is_empty() {
        out.push_str("Options:\n\n");
        render_args(out, &options);
    }
    let subs: Vec<&Command> = visible_tree(command, 0)
        .into_iter()
        .filter(|(_, sub_depth)| *sub_depth == 0)
        .map(|(sub, _)| sub)
        .collect();
    if !subs.is_empty() {
        out.push_str("Subcommands:\n\n");
        for sub in subs {
            let anchor = full_name(sub).replace(' ', "-");
            let about = sub
                .get_about()
                .map(|about| first_sentence(&about.to_string()));
            out.push_str(&format!("- [`{}`](#{anchor})", sub.get_name()));
            if let Some(about) = about {
                out.push_str(&format!(": {about}"));
            }
            out.push('\n');
        }
        out.push('\n');
    }
}

/// Whether an argument belongs in the reference: not hidden, and not clap's own `--help` or
/// `--version` (said once, in the header).
fn shown_arg(arg: &Arg) -> bool {
    !arg.is_hide_set() && !matches!(arg.get_id().as_str(), "help" | "version")
}

/// One list item per argument: its names, its help, and what it may be, defaults to and is read
/// from, as sentences.
fn render_args(out: &mut String, args: &[&Arg]) {
    for arg in args {
        let mut text = Vec::new();
        if let Some(help) = arg.get_long_help().or(arg.get_help()) {
            text.push(sentences(&help.to_string()));
        }
        if arg.get_action().takes_values() {
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|value| !value.is_hide_set())
                .map(|value| format!("`{}`", value.get_name()))
                .collect();
            if !values.is_empty() && !arg.is_hide_possible_values_set() {
                text.push(format!("One of {}.", values.join(", ")));
            }
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|value| format!("`{}`", value.to_string_lossy()))
                .collect();
            if !defaults.is_empty() && !arg.is_hide_default_value_set() {
                text.push(format!("Default {}.", defaults.join(" ")));
            }
        }
        if let Some(env) = arg.get_env().filter(|_| !arg.is_hide_env_set()) {
            text.push(format!("Env `{}`.", env.to_string_lossy()));
        }
        if arg.is_required_set() && !arg.is_positional() {
            text.push("Required.".to_owned());
        }
        out.push_str(&format!("- {}", arg_names(arg)));
        if !text.is_empty() {
            out.push_str(": ");
            out.push_str(&text.join(" ").replace('\n', "\n  "));
        }
        out.push('\n');
    }
    out.push('\n');
}

/// `-f`, `--follow` or `--tail <N>` or `<TARGET>...`, each in code.
fn arg_names(arg: &Arg) -> String {
    let value_names: Vec<String> = match arg.get_value_names() {
        Some(names) => names.iter().map(|name| name.to_string()).collect(),
        None => vec![arg.get_id().as_str().to_uppercase()],
    };
    let many = arg
        .get_num_args()
        .is_some_and(|range| range.max_values() > value_names.len());
    let mut value = value_names
        .iter()
        .map(|name| format!("<{name}>"))
        .collect::<Vec<_>>()
        .join(" ");
    if many {
        value.push_str("...");
    }
    if arg.is_positional() {
        return format!("`{value}`");
    }
    let mut names = Vec::new();
    if let Some(short) = arg.get_short() {
        names.push(format!("-{short}"));
    }
    if let Some(long) = arg.get_long() {
        names.push(format!("--{long}"));
    }
    for alias in arg.get_visible_aliases().unwrap_or_default() {
        names.push(format!("--{alias}"));
    }
    let names = names
        .iter()
        .map(|name| match arg.get_action().takes_values() {
            true => format!("`{name} {value}`"),
            false => format!("`{name}`"),
        })
        .collect::<Vec<_>>();
    names.join(", ")
}

/// The first sentence of a help text, for the lists of commands (a full stop inside code does
/// not end it).
fn first_sentence(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    let mut in_code = false;
    let mut end = line.len();
    for (at, c) in line.char_indices() {
        match c {
            '`' => in_code = !in_code,
            '.' if !in_code && line[at + 1..].starts_with(' ') => {
                end = at;
                break;
            }
            _ => {}
        }
    }
    escaped(line[..end].trim_end_matches('.'))
}

/// A help text as sentences: escaped, and ending with a full stop (clap drops the last one).
fn sentences(text: &str) -> String {
    let text = escaped(text.trim_end());
    match text.ends_with(['.', ':', '!', '?']) {
        true => text,
        false => format!("{text}."),
    }
}

/// `text` with the characters markdown would read as markup outside code spans (`<`, `>`)
/// written as entities, so `<FILE>` in a help text shows as written.
fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    for c in text.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '<' if !in_code => out.push_str("&lt;"),
            '>' if !in_code => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion_of(shell: clap_complete::Shell) -> String {
        let mut out = Vec::new();
        completion(shell, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn completions_know_every_command_and_flag() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let script = completion_of(shell);
            for word in ["rolling-update", "sim", "token-file", "host-down-after"] {
                assert!(script.contains(word), "{shell}: no {word}");
            }
        }
        assert!(completion_of(clap_complete::Shell::Bash).contains("complete -F"));
        assert!(completion_of(clap_complete::Shell::Fish).contains("complete -c coding-job"));
    }

    #[test]
    fn the_manual_has_a_section_per_command() {
        let mut out = Vec::new();
        man(&mut out).unwrap();
        let page = String::from_utf8(out).unwrap();
        assert!(
            page.starts_with(".ie") || page.starts_with(".TH"),
            "{}",
            &page[..80]
        );
        for section in [".SH \"COMING-JOB UP\"", ".SH \"COMING-JOB SIM\""] {
            let section = section.replace("COMING", "CODING");
            assert!(page.contains(&section), "no {section}");
        }
        assert!(page.contains("host\\-down\\-after") || page.contains("host-down-after"));
    }
}
