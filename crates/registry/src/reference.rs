//! Image references, parsed by Docker's rules: `[REGISTRY/]REPOSITORY[:TAG][@DIGEST]`, where the
//! first path component is a registry only if it looks like a host (contains '.' or ':' or is
//! "localhost"). Everything else lives on Docker Hub, whose single-component repositories are
//! really `library/NAME`.

use std::fmt;

use crate::RegistryError;

/// The registry name users write for Docker Hub, and the aliases Docker accepts for it.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_ALIASES: [&str; 3] = [DOCKER_HUB, "index.docker.io", "registry-1.docker.io"];

/// "127.0.0.1:5000/team/blog:59559fd" -> registry Some("127.0.0.1:5000"), repository
/// "team/blog", tag Some("59559fd").
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// The registry host as written; `None` is Docker Hub.
    pub registry: Option<String>,
    /// The repository as written (without Docker Hub's implicit `library/`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<ImageRef, RegistryError> {
        let invalid = |reason: &str| RegistryError::InvalidReference {
            reference: text.to_string(),
            reason: reason.to_string(),
        };
        let (name_and_tag, digest) = match text.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (text, None),
        };
        if let Some(digest) = digest.filter(|digest| !is_digest(digest)) {
            return Err(invalid(&format!(
                "{digest:?} is not a digest like sha256:HEX"
            )));
        }
        // A ':' after the last '/' starts the tag; one before it is a registry port.
        let (name, tag) = match name_and_tag.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
            _ => (name_and_tag, None),
        };
        if let Some(tag) = tag.filter(|tag| !is_tag(tag)) {
            return Err(invalid(&format!(
                "{tag:?} is not a tag (letters, digits, '_', '.', '-'; at most 128)"
            )));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if looks_like_host(first) => (Some(first), rest),
            _ => (None, name),
        };
        if let Some(registry) = registry.filter(|host| !is_host(host)) {
            return Err(invalid(&format!("{registry:?} is not a registry host")));
        }
        if repository.is_empty() {
            return Err(invalid("the repository name is missing"));
        }
        if !repository.split('/').all(is_path_component) {
            return Err(invalid(&format!(
                "{repository:?} is not a repository name (lowercase letters, digits and '.', '_', '-' between '/')"
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
pub(crate) fn is_docker_hub(host: &str) -> bool {
    DOCKER_HUB_ALIASES
        .iter()
        .any(|alias| alias.eq_ignore_ascii_case(host))
}

fn looks_like_host(component: &str) -> bool {
    component.contains(['.', ':']) || component == "localhost"
}

fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
}

fn is_path_component(component: &str) -> bool {
    let edges_ok =
        |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    edges_ok(component.chars().next())
        && edges_ok(component.chars().last())
        && component
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

fn is_tag(tag: &str) -> bool {
    tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn is_digest(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    !algorithm.is_empty()
        && algorithm
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
        && encoded.len() >= 32
        && encoded
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "=_-".contains(c))
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
    }

    #[test]
    fn with_tag_replaces_tag_and_drops_digest() {
        let image = ImageRef::parse(&format!("127.0.0.1:5000/team/blog:1@{DIGEST}")).unwrap();
        assert_eq!(image.with_tag("2"), "127.0.0.1:5000/team/blog:2");
        assert_eq!(
            ImageRef::parse("busybox").unwrap().with_tag("1.36"),
            "busybox:1.36"
        );
    }
}
