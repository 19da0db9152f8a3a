//! The servers a command may talk to: `--server` (or `CODING_JOB_SERVER`) is one URL or
//! several of one installation separated by commas. A request goes to the server that last
//! answered (the first, to begin with); one that cannot connect to it (refused, unreachable,
//! timed out, or no TLS session with it) tries the next ones in order, and the one that
//! answers is kept for the rest of the command. Nothing of the request has been sent when a
//! connection cannot be made, so moving on is safe for every request; a request that got an
//! answer, whatever its status, is never sent again.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The servers, in the order given, each as a normalised base URL without a trailing `/`.
#[derive(Debug)]
pub struct Servers {
    urls: Vec<String>,
    /// The one that answered last; requests start there.
    current: AtomicUsize,
}

impl Servers {
    /// Parses `http(s)://HOST:PORT[,http(s)://HOST:PORT...]`; the message names the entry
    /// that is wrong.
    pub fn parse(text: &str) -> Result<Servers, String> {
        let mut urls: Vec<String> = Vec::new();
        for entry in text.split(',').map(str::trim) {
            let url = reqwest::Url::parse(entry).map_err(|error| {
                format!(
                    "invalid server URL \"{entry}\" ({error}): expected http://HOST:PORT or \
                     https://HOST:PORT, several separated by commas"
                )
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(format!(
                    "invalid server URL \"{entry}\": expected http://HOST:PORT or https://HOST:PORT"
                ));
            }
            // As reqwest writes it (lower-case host, no default port), so a request's URL
            // starts with its server's.
            let base = url.as_str().trim_end_matches('/').to_owned();
            if !urls.contains(&base) {
                urls.push(base);
            }
        }
        Ok(Servers {
            urls,
            current: AtomicUsize::new(0),
        })
    }

    /// The server requests go to now.
    pub fn current(&self) -> &str {
        &self.urls[self.current.load(Ordering::Relaxed)]
    }

    pub fn all(&self) -> &[String] {
        &self.urls
    }

    /// Every server, the current one first, then those after it in order (wrapping around).
    pub fn in_turn(&self) -> impl Iterator<Item = (usize, &str)> {
        let start = self.current.load(Ordering::Relaxed);
        (0..self.urls.len()).map(move |step| {
            let index = (start + step) % self.urls.len();
            (index, self.urls[index].as_str())
        })
    }

    /// The server at `index` answered: later requests go to it.
    pub fn answered(&self, index: usize) {
        self.current.store(index, Ordering::Relaxed);
    }

    /// `url` (made from one of the servers) with `server` in place of the server it was made
    /// from; `None` if it was made from none of them.
    pub fn moved(&self, url: &str, server: &str) -> Option<String> {
        self.urls.iter().find_map(|base| {
            let rest = url.strip_prefix(base.as_str())?;
            (rest.is_empty() || rest.starts_with(['/', '?'])).then(|| format!("{server}{rest}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_servers_in_order_without_repeats() {
        let servers =
            Servers::parse("https://a:7400, https://B:7400/,https://c:7400,https://a:7400")
                .unwrap();
        assert_eq!(
            servers.all(),
            ["https://a:7400", "https://b:7400", "https://c:7400"]
        );
        assert_eq!(servers.current(), "https://a:7400");
        let single = Servers::parse("http://127.0.0.1:7400").unwrap();
        assert_eq!(single.all(), ["http://127.0.0.1:7400"]);
        // A server behind a path keeps it; a default port is dropped, as reqwest does.
        let prefixed = Servers::parse("https://cj.example.com:443/api/").unwrap();
        assert_eq!(prefixed.all(), ["https://cj.example.com/api"]);
    }

    #[test]
    fn a_wrong_entry_is_named() {
        for (text, named) in [
            ("", "\"\""),
            ("http://a:7400,", "\"\""),
            ("http://a:7400,b:7400", "\"b:7400\""),
            ("ftp://a", "\"ftp://a\""),
            ("http://a:7400,,http://b:7400", "\"\""),
        ] {
            let error = Servers::parse(text).unwrap_err();
            assert!(error.contains(named), "{text}: {error}");
        }
    }

    #[test]
    fn requests_start_at_the_server_that_answered_last() {
        let servers = Servers::parse("http://a:1,http://b:2,http://c:3").unwrap();
        let order = |servers: &Servers| -> Vec<usize> {
            servers.in_turn().map(|(index, _)| index).collect()
        };
        assert_eq!(order(&servers), [0, 1, 2]);
        servers.answered(1);
        assert_eq!(servers.current(), "http://b:2");
        assert_eq!(order(&servers), [1, 2, 0]);
    }

    #[test]
    fn a_request_moves_to_another_server_with_its_path_and_query() {
        let servers = Servers::parse("http://a:1,https://b.example/api").unwrap();
        assert_eq!(
            servers.moved("http://a:1/v1/status?env=x", "https://b.example/api"),
            Some("https://b.example/api/v1/status?env=x".into())
        );
        assert_eq!(
            servers.moved("https://b.example/api/v1/logs", "http://a:1"),
            Some("http://a:1/v1/logs".into())
        );
        assert_eq!(servers.moved("http://a:10/v1/status", "http://b"), None);
    }
}
