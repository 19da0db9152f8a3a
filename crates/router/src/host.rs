//! Which route a `Host` names: `NAME.ENV.DOMAIN` is route NAME in ENV, `NAME.DOMAIN` is route
//! NAME in `production`, the bare `DOMAIN` is the status page. Ports are ignored and names
//! compared without case, as DNS does.

use std::borrow::Cow;

/// The environment a name without one belongs to.
pub(crate) const DEFAULT_ENV: &str = "production";

/// What a request's host asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    /// The bare domain.
    Status,
    /// A name under the domain. `explicit_env` is false for `NAME.DOMAIN`.
    Route {
        env: &'a str,
        name: &'a str,
        explicit_env: bool,
    },
    /// A host that is not under the domain (or no host at all).
    Foreign,
}

/// `domain` in the form [`target`] compares with: lower case, no trailing dot.
pub(crate) fn normalize_domain(domain: &str) -> String {
    domain.trim().trim_matches('.').to_ascii_lowercase()
}

/// `host` in lower case; borrowed when it already is, as nearly every client sends it.
pub(crate) fn lowercase(host: &str) -> Cow<'_, str> {
    if host.bytes().any(|byte| byte.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// What `host` (lower case, maybe with a port) asks for under `domain` (normalized).
pub(crate) fn target<'a>(host: &'a str, domain: &str) -> Target<'a> {
    // An IPv6 literal is never a name under the domain.
    if host.starts_with('[') {
        return Target::Foreign;
    }
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|byte| byte.is_ascii_digit()) => name,
        Some(_) => return Target::Foreign,
        None => host,
    };
    // A fully qualified `name.domain.` is the same name.
    let host = host.strip_suffix('.').unwrap_or(host);
    if host == domain {
        return Target::Status;
    }
    let Some(prefix) = host
        .strip_suffix(domain)
        .and_then(|prefix| prefix.strip_suffix('.'))
    else {
        return Target::Foreign;
    };
    // Route names hold no dots, so the last label before the domain is the environment.
    let (name, env, explicit_env) = match prefix.rsplit_once('.') {
        Some((name, env)) => (name, env, true),
        None => (prefix, DEFAULT_ENV, false),
    };
    if name.is_empty() || env.is_empty() {
        return Target::Foreign;
    }
    Target::Route {
        env,
        name,
        explicit_env,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = "apps.example.com";

    fn route(env: &str, name: &str, explicit_env: bool) -> Target<'static> {
        Target::Route {
            env: env.to_owned().leak(),
            name: name.to_owned().leak(),
            explicit_env,
        }
    }

    #[test]
    fn names_with_and_without_an_environment() {
        assert_eq!(
            target("blog.staging.apps.example.com", DOMAIN),
            route("staging", "blog", true)
        );
        assert_eq!(
            target("blog.apps.example.com", DOMAIN),
            route("production", "blog", false)
        );
        assert_eq!(
            target("blog.pr-12.apps.example.com:8080", DOMAIN),
            route("pr-12", "blog", true)
        );
        assert_eq!(
            target("blog.apps.example.com.", DOMAIN),
            route("production", "blog", false)
        );
    }

    #[test]
    fn the_bare_domain_is_the_status_page() {
        assert_eq!(target("apps.example.com", DOMAIN), Target::Status);
        assert_eq!(target("apps.example.com:80", DOMAIN), Target::Status);
        assert_eq!(target("apps.example.com.", DOMAIN), Target::Status);
    }

    #[test]
    fn other_hosts_are_foreign() {
        for host in [
            "example.com",
            "otherapps.example.com",
            "blog.apps.example.org",
            ".apps.example.com",
            "blog..apps.example.com",
            "[::1]:80",
            "127.0.0.1:8080",
            "apps.example.com:http",
            "",
        ] {
            assert_eq!(target(host, DOMAIN), Target::Foreign, "{host}");
        }
    }

    #[test]
    fn case_is_ignored() {
        let host = lowercase("Blog.Staging.APPS.example.com");
        assert_eq!(
            target(&host, &normalize_domain("Apps.Example.Com.")),
            route("staging", "blog", true)
        );
        assert!(matches!(lowercase("blog.apps"), Cow::Borrowed(_)));
    }
}
