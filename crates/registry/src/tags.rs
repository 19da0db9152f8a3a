//! Tag names of one repository, page by page: `GET /v2/NAME/tags/list?n=N`, then each `Link`
//! header's next page until there is none.

use reqwest::header::LINK;
use reqwest::{Client, StatusCode};
use serde::Deserialize;

use crate::RegistryError;
use crate::transport::Registry;

#[derive(Deserialize)]
struct TagsPage {
    /// `null` for a repository whose tags were all deleted.
    tags: Option<Vec<String>>,
}

/// Every tag name, sorted and without duplicates (pages may overlap if tags change meanwhile).
pub(crate) async fn list_tag_names(
    http: &Client,
    registry: &Registry,
    repository: &str,
    page_size: usize,
) -> Result<Vec<String>, RegistryError> {
    let mut path = format!("/v2/{repository}/tags/list?n={page_size}");
    let mut names = Vec::new();
    loop {
        let response = registry
            .get(http, repository, &path, &["application/json"])
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::RepositoryNotFound {
                    host: registry.name.clone(),
                    repository: repository.to_string(),
                });
            }
            status if !status.is_success() => {
                return Err(registry
                    .status_error(repository, "GET tags/list", response)
                    .await);
            }
            _ => {}
        }
        let next = response
            .headers()
            .get(LINK)
            .and_then(|value| value.to_str().ok())
            .and_then(next_page);
        let page: TagsPage = registry.read_json(repository, "tag list", response).await?;
        names.extend(page.tags.unwrap_or_default());
        match next {
            // A registry that links a page to itself would otherwise keep us here forever.
            Some(next) if next != path => path = next,
            _ => break,
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// The path and query of the `rel="next"` link in a `Link` header such as
/// `</v2/team/blog/tags/list?last=b&n=2>; rel="next"`. An absolute link keeps only its path and
/// query: requests, and so credentials, go only to the registry the config names.
pub(crate) fn next_page(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().strip_prefix('<')?.split_once('>')?;
        let is_next = params.split(';').any(|param| {
            let param = param.trim().replace(' ', "");
            param == "rel=\"next\"" || param == "rel=next"
        });
        if !is_next {
            return None;
        }
        if target.starts_with('/') {
            return Some(target.to_string());
        }
        let url = reqwest::Url::parse(target).ok()?;
        Some(match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(header: &str, expected: Option<&str>) {
        assert_eq!(next_page(header).as_deref(), expected, "{header}");
    }

    #[test]
    fn relative_next_links() {
        check(
            r#"</v2/team/blog/tags/list?last=b&n=2>; rel="next""#,
            Some("/v2/team/blog/tags/list?last=b&n=2"),
        );
        check(
            "</v2/a/tags/list?n=2&last=x>;rel=next",
            Some("/v2/a/tags/list?n=2&last=x"),
        );
    }

    #[test]
    fn absolute_links_keep_only_path_and_query() {
        check(
            r#"<https://elsewhere.example.com/v2/a/tags/list?n=2&last=x>; rel="next""#,
            Some("/v2/a/tags/list?n=2&last=x"),
        );
    }

    #[test]
    fn only_the_next_relation_counts() {
        check(
            r#"</v2/a/tags/list?n=2>; rel="prev", </v2/a/tags/list?n=2&last=z>; rel="next""#,
            Some("/v2/a/tags/list?n=2&last=z"),
        );
        check(r#"</v2/a/tags/list?n=2>; rel="prev""#, None);
        check("", None);
    }
}
