//! `artifact:` the task's code as a tarball a fixed image runs (seed 002: "the container pulls
//! the compiled code at start, any version chosen by a parameter"). `url` and `sha256` may be
//! templates, checked once rendered ([`crate::render_task`]); `path` never is. A task's
//! `artifact` replaces its job's, like every other setting.

use serde_saphyr::Spanned;

use crate::error::shown;
use crate::limits::{MAX_ARTIFACT_PATH_LEN, MAX_VOLUME_PATH_LEN};
use crate::model::ArtifactSpec;
use crate::parse::Checker;
use crate::raw::RawArtifact;
use crate::template_syntax::is_template;
use crate::volumes::seed_problem;

impl Checker<'_> {
    /// The artifact written at `path` (a job or a task), checked.
    pub(crate) fn artifact(
        &mut self,
        path: &str,
        raw: &Spanned<RawArtifact>,
    ) -> Option<ArtifactSpec> {
        let path = format!("{path}.artifact");
        let RawArtifact {
            url,
            sha256,
            path: unpack_to,
        } = &raw.value;
        let mut valid = true;

        let url_path = format!("{path}.url");
        // A template's length and characters bound the stored spec, so they are checked now;
        // the rest once rendered.
        let unfit =
            url.value.len() > MAX_VOLUME_PATH_LEN || url.value.chars().any(char::is_control);
        let url_problem = match unfit {
            true => seed_problem(&url.value),
            false if self.template_value(&url.referenced, &url_path, &url.value) => None,
            false => seed_problem(&url.value),
        };
        if let Some(problem) = url_problem {
            self.error(&url.referenced, url_path, problem);
            valid = false;
        }

        let sha_path = format!("{path}.sha256");
        let sha_problem = match sha256.value.len() > MAX_VOLUME_PATH_LEN {
            true => sha256_problem(&sha256.value),
            false if self.template_value(&sha256.referenced, &sha_path, &sha256.value) => None,
            false => sha256_problem(&sha256.value),
        };
        if let Some(problem) = sha_problem {
            self.error(&sha256.referenced, sha_path, problem);
            valid = false;
        }

        let unpack_path = format!("{path}.path");
        if self.refuse_template(&unpack_to.referenced, &unpack_path, &unpack_to.value) {
            valid = false;
        } else if let Some(problem) = path_problem(&unpack_to.value) {
            self.error(&unpack_to.referenced, unpack_path, problem);
            valid = false;
        }

        valid.then(|| ArtifactSpec {
            url: url.value.clone(),
            sha256: normalized_sha256(&sha256.value),
            path: unpack_to.value.clone(),
        })
    }
}

/// Why `sha256` is not a SHA-256 in hex, if it is not.
pub(crate) fn sha256_problem(sha256: &str) -> Option<String> {
    let digits = sha256.trim();
    let valid = digits.len() == 64 && digits.chars().all(|c| c.is_ascii_hexdigit());
    (!valid).then(|| {
        format!(
            "expected a SHA-256 of 64 hex digits (as `sha256sum` prints it), found \"{}\"",
            shown(sha256)
        )
    })
}

/// A checksum as compared and as cache files are named: lowercase, without spaces around it.
/// A template is kept as written.
pub(crate) fn normalized_sha256(sha256: &str) -> String {
    if is_template(sha256) {
        sha256.to_owned()
    } else {
        sha256.trim().to_ascii_lowercase()
    }
}

/// Why `path` is not a directory of the container an artifact can be unpacked into.
pub(crate) fn path_problem(path: &str) -> Option<String> {
    if path.len() > MAX_ARTIFACT_PATH_LEN {
        return Some(format!(
            "the path is {} bytes; at most {MAX_ARTIFACT_PATH_LEN} are accepted",
            path.len()
        ));
    }
    if !path.starts_with('/') {
        return Some(format!(
            "expected an absolute path in the container, such as /app, found \"{}\"",
            shown(path)
        ));
    }
    if path.chars().any(char::is_control) {
        return Some(format!(
            "the path \"{}\" contains a control character",
            shown(path)
        ));
    }
    let odd_segment = path
        .trim_end_matches('/')
        .split('/')
        .skip(1)
        .any(|segment| matches!(segment, "" | "." | ".."));
    if odd_segment && path != "/" {
        return Some(format!(
            "the path \"{}\" has an empty, `.` or `..` segment; write it plainly, such as /app",
            shown(path)
        ));
    }
    None
}

/// Whether an artifact's URL or checksum is a template, rendered for each environment.
pub(crate) fn artifact_is_template(artifact: &ArtifactSpec) -> bool {
    is_template(&artifact.url) || is_template(&artifact.sha256)
}

#[cfg(test)]
mod tests {
    use super::{path_problem, sha256_problem};
    use crate::parse_service;

    const SHA: &str = "1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988";

    fn errors(settings: &str) -> String {
        parse_service(
            "s.yaml",
            &format!("service: core\njobs:\n  - name: api\n    image: runtime:17\n{settings}"),
        )
        .unwrap_err()
        .to_string()
    }

    #[test]
    fn a_tasks_artifact_replaces_its_jobs() {
        let spec = parse_service(
            "s.yaml",
            &format!(
                "service: core\njobs:\n  - name: api\n    image: runtime:17\n    artifact: {{ url: \"http://a.internal/api/{{{{ vars.v }}}}.tar.gz\", sha256: \"{{{{ vars.sha }}}}\", path: /app }}\n    tasks:\n      - name: api-1\n      - name: api-2\n        artifact: {{ url: /srv/api.tgz, sha256: {}, path: /srv/app/ }}\n",
                SHA.to_uppercase()
            ),
        )
        .unwrap();
        let tasks = &spec.jobs[0].tasks;
        let first = tasks[0].artifact.as_ref().unwrap();
        assert_eq!(first.url, "http://a.internal/api/{{ vars.v }}.tar.gz");
        assert_eq!(first.sha256, "{{ vars.sha }}");
        let second = tasks[1].artifact.as_ref().unwrap();
        assert_eq!(
            (
                second.url.as_str(),
                second.sha256.as_str(),
                second.path.as_str()
            ),
            ("/srv/api.tgz", SHA, "/srv/app/")
        );
    }

    #[test]
    fn every_field_is_checked_where_it_is_written() {
        let message =
            errors("    artifact:\n      url: api.zip\n      sha256: 1f2e\n      path: app\n");
        assert_eq!(
            message,
            [
                "s.yaml:6:12: jobs[0].artifact.url: expected a tarball on the host (an absolute path ending in .tar, .tar.gz or .tgz) or an http:// or https:// URL, found \"api.zip\"",
                "s.yaml:7:15: jobs[0].artifact.sha256: expected a SHA-256 of 64 hex digits (as `sha256sum` prints it), found \"1f2e\"",
                "s.yaml:8:13: jobs[0].artifact.path: expected an absolute path in the container, such as /app, found \"app\"",
            ]
            .join("\n")
        );
    }

    #[test]
    fn unknown_and_missing_fields_are_refused() {
        let unknown = errors(&format!(
            "    artifact: {{ url: /a.tar, sha256: {SHA}, path: /app, mode: x }}\n"
        ));
        assert!(
            unknown.starts_with("s.yaml:5:")
                && unknown.contains("jobs[0].artifact.mode: unknown field \"mode\"")
                && unknown.contains("(expected one of: url, sha256, path)"),
            "{unknown}"
        );
        let missing = errors("    artifact: { url: /a.tar, path: /app }\n");
        assert!(
            missing.contains("jobs[0].artifact: missing required field \"sha256\""),
            "{missing}"
        );
    }

    #[test]
    fn the_path_is_never_a_template() {
        assert!(
            errors(&format!(
                "    artifact: {{ url: /a.tar, sha256: {SHA}, path: \"/{{{{ vars.dir }}}}\" }}\n"
            ))
            .contains("jobs[0].artifact.path: templates are not allowed in path")
        );
    }

    #[test]
    fn checksums_and_paths_follow_their_rules() {
        assert_eq!(sha256_problem(SHA), None);
        assert_eq!(sha256_problem(&SHA.to_uppercase()), None);
        for bad in ["", "1f2e", &format!("{SHA}0"), &SHA.replace('1', "g")] {
            assert!(sha256_problem(bad).is_some(), "{bad}");
        }
        for good in ["/app", "/", "/srv/app/", "/opt/my-app_1.2"] {
            assert_eq!(path_problem(good), None, "{good}");
        }
        for bad in [
            "app",
            "/a/../b",
            "/a//b",
            "/./a",
            "/a\nb",
            &format!("/{}", "a".repeat(100)),
        ] {
            assert!(path_problem(bad).is_some(), "{bad:?}");
        }
    }
}
