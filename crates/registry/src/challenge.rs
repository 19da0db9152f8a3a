//! `WWW-Authenticate` challenges: which scheme a registry wants after a 401 and, for Bearer, where
//! to get a token. Only the first challenge of a header is read; registries send one.

/// What a registry asked for in its 401 answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    /// Get a token from `realm` (with `service` and `scope` as query parameters), then retry with
    /// `Authorization: Bearer TOKEN`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// `None` for a scheme we do not speak or a Bearer challenge without a realm.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(params);
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: param("realm")?,
            service: param("service"),
            scope: param("scope"),
        })
    } else {
        None
    }
}

/// `key=value, key="quoted, value"` pairs. Quoted values may hold commas (scopes such as
/// `repository:a:pull,push` do) and backslash escapes.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.trim().is_empty() {
            return params;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                value.push(c);
            }
            value = value.trim_end().to_string();
        }
        params.push((key.trim().to_string(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(header: &str, expected: Option<Challenge>) {
        assert_eq!(parse_challenge(header), expected, "{header}");
    }

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Option<Challenge> {
        Some(Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
        })
    }

    #[test]
    fn basic() {
        check(r#"Basic realm="basic-realm""#, Some(Challenge::Basic));
        check("basic", Some(Challenge::Basic));
    }

    #[test]
    fn bearer_as_docker_hub_sends_it() {
        check(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
            bearer(
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                Some("repository:library/busybox:pull"),
            ),
        );
    }

    #[test]
    fn bearer_scopes_with_commas_spaces_escapes_and_unquoted_values() {
        check(
            r#"Bearer realm="https://auth.example.com/token", scope="repository:a/b:pull,push",error="insufficient_scope""#,
            bearer(
                "https://auth.example.com/token",
                None,
                Some("repository:a/b:pull,push"),
            ),
        );
        check(
            r#"BEARER Realm=https://auth.example.com/token , service="say \"hi\"""#,
            bearer("https://auth.example.com/token", Some(r#"say "hi""#), None),
        );
    }

    #[test]
    fn unknown_schemes_and_bearer_without_realm_are_not_understood() {
        check(r#"Digest realm="x", nonce="y""#, None);
        check(r#"Bearer service="registry""#, None);
        check("", None);
    }
}
