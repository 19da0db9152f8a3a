//! Seeds: the tarball a newly created volume is filled from, a file on the task's host or an
//! `http(s)` URL, read as a stream (never whole into memory) and handed to the engine, which
//! unpacks it (plain tar, or gzip, bzip2 or xz compressed).
//!
//! When the stream breaks, the engine only sees its request cut short; so the source's own
//! error is kept aside ([`Seed::read_error`]) to be the reason the task shows.

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cj_runtime::ArchiveStream;
use futures_util::{StreamExt, TryStreamExt};

/// How much of a file is read at a time.
const CHUNK: usize = 64 * 1024;

/// A seed being read.
pub(crate) struct Seed {
    pub archive: ArchiveStream,
    /// Why reading the source failed, if it did.
    pub read_error: Arc<Mutex<Option<String>>>,
}

/// The client seeds are downloaded with: a server that does not answer, or stops sending, is
/// given up on rather than holding the task forever; a large seed takes as long as it takes.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .build()
        .expect("a client with timeouts builds")
}

pub(crate) fn is_url(seed: &str) -> bool {
    seed.starts_with("http://") || seed.starts_with("https://")
}

/// Opens `seed` for reading; the error says why it cannot be (`No such file or directory`,
/// `HTTP 404 Not Found`).
pub(crate) async fn open(http: &reqwest::Client, seed: &str) -> Result<Seed, String> {
    let archive: ArchiveStream = if is_url(seed) {
        // Errors without the URL: the caller names the seed as `shown` writes it.
        let response = http
            .get(seed)
            .send()
            .await
            .map_err(|error| reason(&error.without_url()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        response
            .bytes_stream()
            .map_err(|error| std::io::Error::other(error.without_url()))
            .boxed()
    } else {
        let file = tokio::fs::File::open(seed)
            .await
            .map_err(|error| reason(&error))?;
        tokio_util::io::ReaderStream::with_capacity(file, CHUNK).boxed()
    };
    let read_error = Arc::new(Mutex::new(None));
    let slot = read_error.clone();
    let archive = archive
        .inspect_err(move |error| {
            let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| reason(error));
        })
        .boxed();
    Ok(Seed {
        archive,
        read_error,
    })
}

/// The seed as messages show it: a URL without its user and password, and without its query
/// (presigned URLs carry their signature there).
pub(crate) fn shown(seed: &str) -> String {
    if !is_url(seed) {
        return seed.to_owned();
    }
    let Ok(mut url) = reqwest::Url::parse(seed) else {
        return "(an invalid URL)".to_owned();
    };
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let had_query = url.query().is_some();
    url.set_query(None);
    if had_query {
        format!("{url}?...")
    } else {
        url.to_string()
    }
}

/// An error and its causes, in words: `error sending request for url (...): connection
/// refused`. An OS error reads as the OS says it (`No such file or directory`), without Rust's
/// `(os error 2)`.
pub(crate) fn reason(error: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        let text = match error.downcast_ref::<std::io::Error>() {
            Some(io) if io.raw_os_error().is_some() => os_words(io),
            _ => error.to_string(),
        };
        // Wrappers often repeat their cause's words.
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        next = error.source();
    }
    parts.join(": ")
}

fn os_words(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_secrets() {
        assert_eq!(shown("/srv/seed.tgz"), "/srv/seed.tgz");
        assert_eq!(
            shown("https://user:secret@example.com/db.tar.gz?X-Signature=abc"),
            "https://example.com/db.tar.gz?..."
        );
        assert_eq!(
            shown("http://example.com/db.tar"),
            "http://example.com/db.tar"
        );
    }

    #[tokio::test]
    async fn a_missing_file_says_so_in_the_systems_words() {
        let error = open(&client(), "/nonexistent/seed.tar.gz").await.err();
        assert_eq!(error.as_deref(), Some("No such file or directory"));
    }

    #[tokio::test]
    async fn a_file_is_read_in_pieces_and_a_directory_fails_while_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.tar");
        std::fs::write(&path, vec![7u8; CHUNK * 2 + 1]).unwrap();
        let seed = open(&client(), path.to_str().unwrap()).await.unwrap();
        let pieces: Vec<_> = seed.archive.collect().await;
        assert_eq!(pieces.len(), 3);
        let total: usize = pieces.iter().map(|p| p.as_ref().unwrap().len()).sum();
        assert_eq!(total, CHUNK * 2 + 1);

        let seed = open(&client(), dir.path().to_str().unwrap()).await.unwrap();
        let pieces: Vec<_> = seed.archive.collect().await;
        assert!(pieces.iter().any(Result::is_err));
        assert_eq!(
            seed.read_error.lock().unwrap().as_deref(),
            Some("Is a directory")
        );
    }

    #[tokio::test]
    async fn a_url_that_answers_an_error_status_says_which() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/seed.tar.gz", listener.local_addr().unwrap());
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let answer = "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
            socket.write_all(answer.as_bytes()).await.unwrap();
        });
        let error = open(&client(), &url).await.err();
        assert_eq!(error.as_deref(), Some("HTTP 404 Not Found"));
    }
}
