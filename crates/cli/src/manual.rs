//! `completion SHELL` and `man`: the shell completion scripts and the manual page, generated
//! from the same definitions the parser uses, so neither can fall behind a new flag.

use std::io::Write;

use clap::CommandFactory;

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
