//! Tag names of one repository, page by page: `n` tags at a time, each page asked for with `last`
//! set to the greatest tag seen so far (registries list tags in lexical order).

use std::collections::BTreeSet;

use crate::RegistryError;
use crate::listing::Listing;

/// Every tag name, sorted and without duplicates (pages may overlap if tags change meanwhile).
pub(crate) async fn list_tag_names(
    listing: &Listing,
    page_size: usize,
) -> Result<Vec<String>, RegistryError> {
    let mut names = BTreeSet::new();
    let mut last: Option<String> = None;
    loop {
        let page = listing.tags_page(page_size, last.as_deref()).await?;
        let (page_len, known) = (page.len(), names.len());
        names.extend(page);
        if !more_pages(page_size, page_len, names.len() - known) {
            break;
        }
        last = names.last().cloned();
    }
    Ok(names.into_iter().collect())
}

/// Whether to ask for another page after one of `page_len` tags, `new_tags` of them not seen
/// before. A short page is the last. A page without new tags ends the listing too: a registry
/// that ignores `n` sends every tag at once, and one that also ignores `last` would send them
/// again forever.
fn more_pages(page_size: usize, page_len: usize, new_tags: usize) -> bool {
    page_len >= page_size && new_tags > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_pages_with_new_tags_ask_for_more() {
        for (page_size, page_len, new_tags, expected) in [
            (2, 2, 2, true),
            (2, 2, 1, true),
            // A registry ignoring `n`: everything in the first page, then the same page again.
            (2, 3, 3, true),
            (2, 3, 0, false),
            (2, 1, 1, false),
            (2, 0, 0, false),
        ] {
            assert_eq!(
                more_pages(page_size, page_len, new_tags),
                expected,
                "{page_size} {page_len} {new_tags}"
            );
        }
    }
}
