//! Changing a job's image in a file as written: only the image values change, every other byte
//! (comments, order, quoting) stays, so the stored versions diff cleanly.

use serde_saphyr::Spanned;

use crate::error::SpecErrors;
use crate::yaml::parse_raw;

/// `source` with the `image:` of `job` (on the job and on each of its tasks) set to `image`.
/// Returns `None` if the job does not exist or names no image anywhere.
pub fn set_job_image(
    file: &str,
    source: &str,
    job: &str,
    image: &str,
) -> Result<Option<String>, SpecErrors> {
    let raw = parse_raw(file, source)?;
    let Some(raw_job) = raw.jobs.value.iter().find(|j| j.name.value == job) else {
        return Ok(None);
    };
    let mut values: Vec<&Spanned<String>> = raw_job.image.iter().collect();
    if let Some(tasks) = &raw_job.tasks {
        values.extend(tasks.value.iter().filter_map(|task| task.image.as_ref()));
    }
    let mut ranges: Vec<(usize, usize)> = values
        .iter()
        .filter_map(|value| {
            let span = value.referenced.span();
            Some((span.byte_offset()? as usize, span.byte_len()? as usize))
        })
        .collect();
    if ranges.is_empty() {
        return Ok(None);
    }
    ranges.sort();
    let mut rewritten = source.to_owned();
    // From the end, so earlier offsets stay valid.
    for (offset, len) in ranges.into_iter().rev() {
        let written = &source[offset..offset + len];
        let replacement = match written.chars().next() {
            Some('"') => format!("\"{image}\""),
            Some('\'') => format!("'{image}'"),
            _ => image.to_owned(),
        };
        rewritten.replace_range(offset..offset + len, &replacement);
    }
    Ok(Some(rewritten))
}

#[cfg(test)]
mod tests {
    use super::set_job_image;

    #[test]
    fn only_the_jobs_images_change() {
        let source = "service: s # the blog\njobs:\n  - name: blog\n    image: \"blog:1\"\n    tasks:\n      - name: b1\n      - name: b2\n        image: 'blog:1'\n  - name: other\n    image: blog:1\n";
        let rewritten = set_job_image("s.yaml", source, "blog", "reg:5000/blog:2")
            .unwrap()
            .unwrap();
        assert_eq!(
            rewritten,
            "service: s # the blog\njobs:\n  - name: blog\n    image: \"reg:5000/blog:2\"\n    tasks:\n      - name: b1\n      - name: b2\n        image: 'reg:5000/blog:2'\n  - name: other\n    image: blog:1\n"
        );
        let spec = crate::parse_service("s.yaml", &rewritten).unwrap();
        assert_eq!(
            spec.jobs[0].tasks[1].image.as_deref(),
            Some("reg:5000/blog:2")
        );
    }

    #[test]
    fn a_job_without_an_image_is_none() {
        let source = "service: s\njobs:\n  - name: a\n";
        assert_eq!(set_job_image("s.yaml", source, "a", "x:1").unwrap(), None);
        assert_eq!(
            set_job_image("s.yaml", source, "missing", "x:1").unwrap(),
            None
        );
    }
}
