//! Image references, by Docker's grammar (distribution's `reference` package):
//! `[REGISTRY[:PORT]/]REPOSITORY[:TAG][@DIGEST]`.
//!
//! The first path component is a registry only if it looks like a host (contains '.' or ':' or
//! is "localhost"). Everything else lives on Docker Hub, whose single-component repositories
//! are really `library/NAME`. This is the one implementation: configs are checked with it at
//! push, the server checks `update --tag` with [`is_valid_tag`], and the registry client
//! re-exports [`ImageRef`].

use std::fmt;

use crate::error::shown;
use crate::limits::MAX_IMAGE_NAME_LEN;

/// The registry name users write for Docker Hub, and the aliases Docker accepts for it.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_ALIASES: [&str; 3] = [DOCKER_HUB, "index.docker.io", "registry-1.docker.io"];

/// Longest tag, by the grammar.
const MAX_TAG_LEN: usize = 128;

/// Longest digest we read (`sha512:` and 128 hex digits is the longest in use).
const MAX_DIGEST_LEN: usize = 256;

/// "127.0.0.1:5000/team/blog:59559fd" -> registry Some("127.0.0.1:5000"), repository
/// "team/blog", tag Some("59559fd").
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// The registry host (and port) as written; `None` is Docker Hub.
    pub registry: Option<String>,
    /// The repository as written (without Docker Hub's implicit `library/`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Why a text is not an image reference. `reference` is shortened for messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference \"{reference}\": {reason}")]
pub struct ReferenceError {
    pub reference: String,
    pub reason: String,
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<ImageRef, ReferenceError> {
        let invalid = |reason: String| ReferenceError {
            reference: shown(text),
            reason,
        };
        let (name_and_tag, digest) = match text.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (text, None),
        };
        if let Some(digest) = digest.filter(|digest| !is_digest(digest)) {
            return Err(invalid(format!(
                "\"{}\" is not a digest like sha256:HEX (an algorithm, ':' and at least 32 hex digits)",
                shown(digest)
            )));
        }
        // A ':' after the last '/' starts the tag; one before it is a registry port.
        let (name, tag) = match name_and_tag.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
            _ => (name_and_tag, None),
        };
        if let Some(tag) = tag.filter(|tag| !is_valid_tag(tag)) {
            return Err(invalid(format!(
                "\"{}\" is not a tag (letters, digits, '_', '.' and '-', not starting with '.' or '-', at most 128)",
                shown(tag)
            )));
        }
        if name.len() > MAX_IMAGE_NAME_LEN {
            return Err(invalid(format!(
                "the name before the tag is {} characters long; at most {MAX_IMAGE_NAME_LEN} are allowed",
                name.len()
            )));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if looks_like_host(first) => (Some(first), rest),
            _ => (None, name),
        };
        if let Some(registry) = registry.filter(|host| !is_host(host)) {
            return Err(invalid(format!(
                "\"{}\" is not a registry host (a host name or IP address, optionally with :PORT)",
                shown(registry)
            )));
        }
        if repository.is_empty() {
            return Err(invalid("the repository name is missing".to_owned()));
        }
        if !repository.split('/').all(is_path_component) {
            return Err(invalid(format!(
                "\"{}\" is not a repository name (lowercase letters and digits, separated by '.', '_', '__' or '-' within a component and by '/' between them)",
                shown(repository)
            )));
        }
        Ok(ImageRef {
            registry: registry.map(str::to_string),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// The full reference text with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> String {
        match &self.registry {
            Some(registry) => format!("{registry}/{}:{tag}", self.repository),
            None => format!("{}:{tag}", self.repository),
        }
    }

    /// The registry as users name it: the host as written, or "docker.io" for Docker Hub.
    pub fn registry_name(&self) -> &str {
        self.registry.as_deref().unwrap_or(DOCKER_HUB)
    }

    pub fn is_docker_hub(&self) -> bool {
        is_docker_hub(self.registry_name())
    }

    /// The repository name in API paths: Docker Hub's official images live under `library/`.
    pub fn api_repository(&self) -> String {
        if self.is_docker_hub() && !self.repository.contains('/') {
            format!("library/{}", self.repository)
        } else {
            self.repository.clone()
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(registry) = &self.registry {
            write!(f, "{registry}/")?;
        }
        write!(f, "{}", self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Whether a registry host (as configured or written in a reference) means Docker Hub.
pub fn is_docker_hub(host: &str) -> bool {
    DOCKER_HUB_ALIASES
        .iter()
        .any(|alias| alias.eq_ignore_ascii_case(host))
}

/// A tag by the grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    tag.len() <= MAX_TAG_LEN
        && tag.bytes().next().is_some_and(word)
        && tag.bytes().all(|c| word(c) || c == b'.' || c == b'-')
}

fn looks_like_host(component: &str) -> bool {
    component.contains(['.', ':']) || component == "localhost"
}

/// `HOST[:PORT]`, where HOST is a domain name, an IPv4 address or a bracketed IPv6 address.
fn is_host(text: &str) -> bool {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((address, after)) = rest.split_once(']') else {
            return false;
        };
        let address_ok = !address.is_empty()
            && address
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.');
        if !address_ok {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port_ok = port.is_none_or(|port| {
        (1..=5).contains(&port.len()) && port.bytes().all(|c| c.is_ascii_digit())
    });
    let domain_ok = text.starts_with('[') || host.split('.').all(is_domain_component);
    port_ok && domain_ok
}

/// `[A-Za-z0-9]` or `[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]`.
fn is_domain_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }
        _ => false,
    }
}

/// `[a-z0-9]+` runs joined by one separator each: `.`, `_`, `__` or any number of `-`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alphanumeric = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut at = 0;
    loop {
        let run_start = at;
        while at < bytes.len() && alphanumeric(bytes[at]) {
            at += 1;
        }
        if at == run_start {
            return false;
        }
        if at == bytes.len() {
            return true;
        }
        let separator_start = at;
        while at < bytes.len() && !alphanumeric(bytes[at]) {
            at += 1;
        }
        let separator = &bytes[separator_start..at];
        let separator_ok =
            matches!(separator, b"." | b"_" | b"__") || separator.iter().all(|c| *c == b'-');
        if !separator_ok {
            return false;
        }
    }
}

/// `ALGORITHM:HEX`: algorithm components `[A-Za-z][A-Za-z0-9]*` joined by one of `+._-`, and at
/// least 32 hex digits.
fn is_digest(digest: &str) -> bool {
    if digest.len() > MAX_DIGEST_LEN {
        return false;
    }
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let component_ok = |component: &str| {
        component
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && component.bytes().all(|c| c.is_ascii_alphanumeric())
    };
    algorithm.split(['+', '.', '_', '-']).all(component_ok)
        && hex.len() >= 32
        && hex.bytes().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Parses `text` and compares (registry, repository, tag, digest, API repository).
    fn check(text: &str, expected: (Option<&str>, &str, Option<&str>, Option<&str>, &str)) {
        let image = ImageRef::parse(text).unwrap();
        let actual = (
            image.registry.as_deref(),
            image.repository.as_str(),
            image.tag.as_deref(),
            image.digest.as_deref(),
            image.api_repository(),
        );
        assert_eq!(
            actual,
            (
                expected.0,
                expected.1,
                expected.2,
                expected.3,
                expected.4.to_string()
            )
        );
        assert_eq!(image.to_string(), text, "Display gives back the text");
    }

    fn check_invalid(text: &str, expected_reason: &str) {
        let error = ImageRef::parse(text).unwrap_err().to_string();
        assert!(error.contains(expected_reason), "{text}: {error}");
        assert!(error.len() < 400, "{error}");
    }

    #[test]
    fn registry_hosts_by_dockers_rules() {
        let host = Some("127.0.0.1:5000");
        check(
            "127.0.0.1:5000/team/blog:59559fd",
            (host, "team/blog", Some("59559fd"), None, "team/blog"),
        );
        check(
            "127.0.0.1:5000/team/blog",
            (host, "team/blog", None, None, "team/blog"),
        );
        check(
            "localhost/blog:1",
            (Some("localhost"), "blog", Some("1"), None, "blog"),
        );
        check(
            "localhost:5000/blog",
            (Some("localhost:5000"), "blog", None, None, "blog"),
        );
        check(
            "[::1]:5000/blog:v1",
            (Some("[::1]:5000"), "blog", Some("v1"), None, "blog"),
        );
        let example = Some("registry.example.com");
        check(
            "registry.example.com/a/b/c:v1.2-rc_3",
            (example, "a/b/c", Some("v1.2-rc_3"), None, "a/b/c"),
        );
    }

    #[test]
    fn docker_hub_gets_library_prefix_only_for_single_components() {
        check("busybox", (None, "busybox", None, None, "library/busybox"));
        check(
            "busybox:1.36",
            (None, "busybox", Some("1.36"), None, "library/busybox"),
        );
        check(
            "team/blog:1",
            (None, "team/blog", Some("1"), None, "team/blog"),
        );
        check(
            "docker.io/busybox",
            (Some("docker.io"), "busybox", None, None, "library/busybox"),
        );
        // Not a host: no '.', no ':' and not "localhost".
        check(
            "myregistry/blog",
            (None, "myregistry/blog", None, None, "myregistry/blog"),
        );
    }

    #[test]
    fn digests_are_kept_and_tags_may_come_with_them() {
        check(
            &format!("busybox@{DIGEST}"),
            (None, "busybox", None, Some(DIGEST), "library/busybox"),
        );
        let text = format!("127.0.0.1:5000/blog:1@{DIGEST}");
        check(
            &text,
            (
                Some("127.0.0.1:5000"),
                "blog",
                Some("1"),
                Some(DIGEST),
                "blog",
            ),
        );
    }

    #[test]
    fn repository_components_follow_the_grammar() {
        for valid in [
            "a",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "a1.b2_c3-d4",
            "0",
        ] {
            assert!(is_path_component(valid), "{valid}");
        }
        for invalid in [
            "", "A", "a..b", "a___b", "a._b", "-a", "a-", ".a", "a.", "é", "a b",
        ] {
            assert!(!is_path_component(invalid), "{invalid}");
        }
    }

    #[test]
    fn tags_follow_the_grammar() {
        assert!(is_valid_tag("v1.2-rc_3"));
        assert!(is_valid_tag("_x"));
        assert!(is_valid_tag(&"a".repeat(128)));
        assert!(!is_valid_tag(&"a".repeat(129)));
        assert!(!is_valid_tag(""));
        assert!(!is_valid_tag("-x"));
        assert!(!is_valid_tag(".x"));
        assert!(!is_valid_tag("a b"));
        assert!(!is_valid_tag("a\0"));
        assert!(!is_valid_tag("é"));
    }

    #[test]
    fn invalid_references_say_why() {
        check_invalid("", "repository name is missing");
        check_invalid("127.0.0.1:5000/", "repository name is missing");
        check_invalid("Team/blog", "not a repository name");
        check_invalid("team//blog", "not a repository name");
        check_invalid("team/blog-", "not a repository name");
        check_invalid("blog:", "not a tag");
        check_invalid("blog:-x", "not a tag");
        check_invalid("blog@sha256:short", "not a digest");
        check_invalid("blog@nocolon", "not a digest");
        check_invalid("bad host!.com/blog", "not a registry host");
        check_invalid("-bad.com/blog", "not a registry host");
        check_invalid("bad.com:99999999/blog", "not a registry host");
        check_invalid("UPPER CASE:tag with space@@", "not a digest");
        check_invalid("UPPER CASE:tag with space", "not a tag");
        check_invalid("UPPER CASE", "not a repository name");
        check_invalid("\0", "not a repository name");
        check_invalid(&"a".repeat(256), "at most 255");
        check_invalid(&"a".repeat(1 << 20), "at most 255");
        check_invalid(&format!("a:{}", "b".repeat(1 << 20)), "not a tag");
    }
}
