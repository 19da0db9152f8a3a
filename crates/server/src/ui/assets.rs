//! `/ui/static/{file}`: the stylesheet, the pages' script and the event stream's shared worker, compiled into the binary (nothing is
//! fetched at run time).

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::Failure;

const FILES: &[(&str, &str, &str)] = &[
    (
        "ui.css",
        "text/css; charset=utf-8",
        include_str!("static/ui.css"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_str!("static/ui.js"),
    ),
    (
        "events.js",
        "text/javascript; charset=utf-8",
        include_str!("static/events.js"),
    ),
];

pub async fn file(Path(name): Path<String>) -> Result<Response, Failure> {
    let (_, content_type, body) =
        FILES
            .iter()
            .find(|(file, _, _)| *file == name)
            .ok_or_else(|| {
                Failure::NotFound(format!(
                    "no static file {}: there are ui.css, ui.js and events.js",
                    crate::error::shown(&name)
                ))
            })?;
    Ok((
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        *body,
    )
        .into_response())
}
