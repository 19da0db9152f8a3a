//! Text from a request that the server keeps and shows again (a pushed file's name, who made a
//! change): control characters removed and the length bounded, so a NUL, a newline or a
//! megabyte-long name cannot end up in the store, in `history` tables or in log lines. Values
//! only echoed in error messages are cut by [`crate::error::shown`].

/// The longest file name kept with a version, in characters.
pub const MAX_FILE_NAME_CHARS: usize = 255;
/// The longest user name kept in the audit trail, in characters.
pub const MAX_USER_CHARS: usize = 64;

/// A pushed file's name as it is stored and shown.
pub fn file_name(name: &str) -> String {
    bounded(name, MAX_FILE_NAME_CHARS)
}

/// The identity a request claims (the `x-coding-job-user` header), as it is stored; `unknown`
/// when nothing printable is left.
pub fn user(name: &str) -> String {
    let user = bounded(name.trim(), MAX_USER_CHARS);
    if user.trim().is_empty() {
        "unknown".into()
    } else {
        user
    }
}

/// `text` without control characters, cut to at most `max_chars` characters (on a character
/// boundary; a cut value ends with "…", which counts towards the bound).
pub fn bounded(text: &str, max_chars: usize) -> String {
    let printable: String = text.chars().filter(|c| !c.is_control()).collect();
    cj_spec::capped(&printable, max_chars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_removed() {
        assert_eq!(file_name("core\0.yaml\n"), "core.yaml");
        assert_eq!(file_name("a\r\n\tb\u{1b}[31m"), "ab[31m");
        assert_eq!(user("alice\nroot"), "aliceroot");
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let long = "é".repeat(100_000);
        let cut = file_name(&long);
        assert_eq!(cut.chars().count(), MAX_FILE_NAME_CHARS);
        assert!(cut.ends_with('…'));
        assert!(cut.starts_with("éé"));
        assert_eq!(user(&"x".repeat(65)).chars().count(), MAX_USER_CHARS);
        assert_eq!(user(&"x".repeat(64)), "x".repeat(64));
    }

    #[test]
    fn an_empty_user_is_unknown() {
        assert_eq!(user(""), "unknown");
        assert_eq!(user("\0\n "), "unknown");
        assert_eq!(user("  bob "), "bob");
    }

    #[test]
    fn ordinary_names_are_kept() {
        assert_eq!(file_name("examples/core.yaml"), "examples/core.yaml");
        assert_eq!(
            file_name("dir with spaces/é.yaml"),
            "dir with spaces/é.yaml"
        );
        assert_eq!(user("jose.garcía"), "jose.garcía");
    }
}
