//! Colour in the CLI's output, decided once for the whole process: `--color auto|always|never`
//! (or `CODING_JOB_COLOR`), and `NO_COLOR` (no-color.org), which `auto` obeys. Every coloured
//! word goes through here: text written through `anstream`'s `print!`/`eprintln!` carries its
//! escape codes, and the stream drops them when colour is off for it (in `auto`, when it is not
//! a terminal); tables are styled by comfy-table, told the same choice by [`style_table`].

use std::ffi::{OsStr, OsString};

use anstream::ColorChoice;
use anstyle::{AnsiColor, Style};

/// `--color`: when to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorMode {
    /// On a terminal, unless `NO_COLOR` is set (and not empty).
    #[default]
    Auto,
    /// Always, even into a pipe or a file, and whatever `NO_COLOR` says.
    Always,
    /// Never.
    Never,
}

/// What `mode` and the value of `NO_COLOR` make of colour. An explicit `--color always` wins
/// over `NO_COLOR`, as no-color.org asks of a program's own options; `auto` is left to the
/// stream, which knows whether it is a terminal.
pub fn choice(mode: ColorMode, no_color: Option<&OsStr>) -> ColorChoice {
    match mode {
        ColorMode::Always => ColorChoice::Always,
        ColorMode::Never => ColorChoice::Never,
        ColorMode::Auto if no_color.is_some_and(|value| !value.is_empty()) => ColorChoice::Never,
        ColorMode::Auto => ColorChoice::Auto,
    }
}

/// Makes `mode` the process's choice, for every `anstream` stream (clap's help and errors
/// among them), for [`stdout_has_color`], and for the terminal library that styles tables
/// (which reads `NO_COLOR` by itself, and so would drop the colour of `--color always`).
pub fn apply(mode: ColorMode) {
    let choice = choice(mode, std::env::var_os("NO_COLOR").as_deref());
    choice.write_global();
    crossterm::style::Colored::set_ansi_color_disabled(choice == ColorChoice::Never);
}

/// `--color` as the raw command line gives it, before clap parses it: so that clap's own help
/// and errors obey it too. The last `--color` before a `--` counts (as clap reads a repeated
/// flag), then `CODING_JOB_COLOR`; a value clap would refuse counts as `auto`.
pub fn mode_in_args(
    args: impl IntoIterator<Item = OsString>,
    from_env: Option<&OsStr>,
) -> ColorMode {
    let parse = |value: &OsStr| {
        value
            .to_str()
            .and_then(|text| <ColorMode as clap::ValueEnum>::from_str(text, true).ok())
    };
    let mut mode = None;
    let mut args = args.into_iter().skip(1);
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else { continue };
        if text == "--" {
            break;
        }
        if text == "--color" {
            mode = args.next().map(|value| parse(&value).unwrap_or_default());
        } else if let Some(value) = text.strip_prefix("--color=") {
            mode = Some(parse(OsStr::new(value)).unwrap_or_default());
        }
    }
    mode.or_else(|| from_env.and_then(parse))
        .unwrap_or_default()
}

/// Whether what is printed to stdout is coloured.
pub fn stdout_has_color() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != ColorChoice::Never
}

/// Whether what is written to stderr is coloured (the long-lived processes' log lines).
pub fn stderr_has_color() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != ColorChoice::Never
}

/// What a coloured word says about the thing it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Running and healthy, done, added.
    Good,
    /// On its way, waiting, changed.
    Busy,
    /// Failed, unhealthy, down, removed.
    Bad,
    /// Section lines of a diff (`@@ ... @@`).
    Frame,
    /// Nothing to say: left as it is.
    Plain,
}

impl Tone {
    fn color(self) -> Option<AnsiColor> {
        match self {
            Tone::Good => Some(AnsiColor::Green),
            Tone::Busy => Some(AnsiColor::Yellow),
            Tone::Bad => Some(AnsiColor::Red),
            Tone::Frame => Some(AnsiColor::Cyan),
            Tone::Plain => None,
        }
    }

    fn style(self) -> Style {
        Style::new().fg_color(self.color().map(Into::into))
    }

    fn table_color(self) -> Option<comfy_table::Color> {
        self.color().map(|color| match color {
            AnsiColor::Green => comfy_table::Color::DarkGreen,
            AnsiColor::Yellow => comfy_table::Color::DarkYellow,
            AnsiColor::Red => comfy_table::Color::DarkRed,
            _ => comfy_table::Color::DarkCyan,
        })
    }
}

/// `text` with `tone`'s escape codes around it, for `anstream`'s print macros (which drop them
/// when colour is off).
pub fn paint(tone: Tone, text: &str) -> String {
    let style = tone.style();
    format!("{style}{text}{style:#}")
}

/// `error:` in bold red, for a message on stderr.
pub fn error_label() -> String {
    let style = Style::new().bold().fg_color(Some(AnsiColor::Red.into()));
    format!("{style}error:{style:#}")
}

/// A table cell of `text` in `tone`.
pub fn cell(tone: Tone, text: impl Into<String>) -> comfy_table::Cell {
    let cell = comfy_table::Cell::new(text.into());
    match tone.table_color() {
        Some(color) => cell.fg(color),
        None => cell,
    }
}

/// Tells a table whether to style its cells: comfy-table asks the terminal itself otherwise,
/// and would know neither `--color` nor `NO_COLOR`. Only the text is styled, so lines end
/// without padding inside the escape codes.
pub fn style_table(table: &mut comfy_table::Table) {
    if stdout_has_color() {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    table.style_text_only();
}

/// The tone of a task's state (and its check's verdict) in `status`.
pub fn task_tone(state: &str, health: Option<&str>) -> Tone {
    match (state, health) {
        (_, Some("unhealthy")) | ("failed" | "exited" | "dead", _) => Tone::Bad,
        ("running", None | Some("healthy")) => Tone::Good,
        ("down", _) => Tone::Plain,
        _ => Tone::Busy,
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::{OsStr, OsString};

    use anstream::ColorChoice;

    use super::{ColorMode, Tone, choice, mode_in_args, paint, task_tone};

    #[test]
    fn no_color_turns_auto_off_but_not_always() {
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        for (mode, no_color, expected) in [
            (ColorMode::Auto, None, ColorChoice::Auto),
            (ColorMode::Auto, set, ColorChoice::Never),
            // no-color.org: set and empty is as if it were not set.
            (ColorMode::Auto, empty, ColorChoice::Auto),
            (ColorMode::Always, set, ColorChoice::Always),
            (ColorMode::Always, None, ColorChoice::Always),
            (ColorMode::Never, None, ColorChoice::Never),
            (ColorMode::Never, empty, ColorChoice::Never),
        ] {
            assert_eq!(choice(mode, no_color), expected, "{mode:?}, {no_color:?}");
        }
    }

    #[test]
    fn color_before_parsing_is_the_last_flag_then_the_environment() {
        let mode = |args: &[&str], env: Option<&str>| {
            let args = std::iter::once("coding-job")
                .chain(args.iter().copied())
                .map(OsString::from);
            mode_in_args(args, env.map(OsStr::new))
        };
        assert_eq!(mode(&["status"], None), ColorMode::Auto);
        assert_eq!(
            mode(&["status", "--color", "never"], None),
            ColorMode::Never
        );
        assert_eq!(
            mode(&["--color=always", "diff", "f"], None),
            ColorMode::Always
        );
        assert_eq!(
            mode(&["--color", "never", "status", "--color=ALWAYS"], None),
            ColorMode::Always
        );
        assert_eq!(mode(&["status"], Some("never")), ColorMode::Never);
        assert_eq!(
            mode(&["status", "--color", "always"], Some("never")),
            ColorMode::Always
        );
        assert_eq!(
            mode(&["--color", "sometimes"], Some("never")),
            ColorMode::Auto
        );
        // After `--` the words are a command's (`exec TASK -- ls --color=never`).
        assert_eq!(
            mode(&["exec", "t", "--", "ls", "--color=never"], None),
            ColorMode::Auto
        );
    }

    #[test]
    fn painted_text_carries_its_codes_and_plain_text_none() {
        assert_eq!(paint(Tone::Bad, "x"), "\u{1b}[31mx\u{1b}[0m");
        assert_eq!(paint(Tone::Plain, "x"), "x");
    }

    #[test]
    fn task_states_read_as_their_colour() {
        for (state, health, expected) in [
            ("running", None, Tone::Good),
            ("running", Some("healthy"), Tone::Good),
            ("running", Some("starting"), Tone::Busy),
            ("running", Some("unhealthy"), Tone::Bad),
            ("pulling", None, Tone::Busy),
            ("failed", None, Tone::Bad),
            ("exited", None, Tone::Bad),
            ("down", None, Tone::Plain),
        ] {
            assert_eq!(task_tone(state, health), expected, "{state} {health:?}");
        }
    }
}
