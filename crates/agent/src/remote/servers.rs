//! The servers an agent may link to (`--server URL,URL,...`: servers of one installation,
//! sharing one store) and the order it dials them in. A link that drops, or a dial that fails,
//! moves on to the next server in the list at once; only after a whole round of the list
//! without a lasting link does the agent wait, with the backoff of a single server. Which
//! server the link goes through changes nothing on the host: every server of the installation
//! publishes the same assignments, and the reconcile loop carries on across links.

use std::time::Duration;

use cj_net::TlsClient;

use super::LinkError;

/// The first pause after a round without a link; it doubles up to `MAX_RECONNECT_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(200);
/// A link that lasted this long was a real one: losing it starts a new round, so the next
/// server is tried at once. A shorter one (a server that accepts, then drops at once) counts
/// as a failed attempt, so such servers cannot make the agent dial without pause.
const LASTING_LINK: Duration = Duration::from_secs(1);

/// One server: its URL as given, its agents' endpoint, and the TLS to dial it with.
#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    /// `http://HOST:PORT` as given, for messages.
    pub server: String,
    /// `ws://HOST:PORT/v1/agent/connect` (or `wss://`).
    pub url: String,
    /// Set for a `wss://` endpoint.
    pub tls: Option<TlsClient>,
}

/// The endpoints of `servers`, one URL or several separated by commas, in order. `tls` is what
/// an `https` server's certificate is checked against (the web roots when `None`).
pub(super) fn endpoints(
    servers: &str,
    tls: Option<&TlsClient>,
) -> Result<Vec<Endpoint>, LinkError> {
    let mut endpoints: Vec<Endpoint> = Vec::new();
    for server in servers.split(',').map(str::trim) {
        let url = websocket_url(server)?;
        if endpoints.iter().any(|known| known.url == url) {
            continue;
        }
        endpoints.push(Endpoint {
            server: server.trim_end_matches('/').to_owned(),
            tls: url
                .starts_with("wss://")
                .then(|| tls.cloned().unwrap_or_default()),
            url,
        });
    }
    Ok(endpoints)
}

/// `http://HOST:PORT` -> `ws://HOST:PORT/v1/agent/connect` (`https` -> `wss`).
fn websocket_url(server: &str) -> Result<String, LinkError> {
    let base = server.trim_end_matches('/');
    let rest = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        return Err(LinkError::BadUrl(server.to_owned()));
    };
    if rest.ends_with("://") {
        return Err(LinkError::BadUrl(server.to_owned()));
    }
    Ok(format!("{rest}/v1/agent/connect"))
}

/// Which server to dial next, and how long to wait before dialling it.
#[derive(Debug)]
pub(super) struct Rotation {
    count: usize,
    next: usize,
    /// Connections ended (or never made) since the last pause or the last lasting link.
    attempts: usize,
    pause: Duration,
    max_pause: Duration,
}

impl Rotation {
    pub fn new(count: usize, max_pause: Duration) -> Rotation {
        Rotation {
            count: count.max(1),
            next: 0,
            attempts: 0,
            pause: FIRST_PAUSE,
            max_pause,
        }
    }

    /// The index of the server to dial now.
    pub fn current(&self) -> usize {
        self.next
    }

    /// The connection to the current server ended, after a link that lasted `linked_for` (or
    /// none); the next server is current. Returns how long to wait before dialling it: nothing
    /// within a round, the backoff after a whole round.
    pub fn ended(&mut self, linked_for: Option<Duration>) -> Duration {
        self.next = (self.next + 1) % self.count;
        match linked_for {
            Some(lasted) => {
                self.pause = FIRST_PAUSE;
                self.attempts = if lasted >= LASTING_LINK {
                    1
                } else {
                    self.attempts + 1
                };
            }
            None => self.attempts += 1,
        }
        if self.attempts < self.count {
            return Duration::ZERO;
        }
        self.attempts = 0;
        let wait = self.pause;
        self.pause = (self.pause * 2).min(self.max_pause);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_millis(500);

    #[test]
    fn server_urls_become_the_agent_endpoints_in_order() {
        let urls = |servers: &str| -> Result<Vec<String>, LinkError> {
            Ok(endpoints(servers, None)?
                .into_iter()
                .map(|endpoint| endpoint.url)
                .collect())
        };
        assert_eq!(
            urls("http://10.0.0.1:7400/").unwrap(),
            ["ws://10.0.0.1:7400/v1/agent/connect"]
        );
        assert_eq!(
            urls("https://cj.example.com").unwrap(),
            ["wss://cj.example.com/v1/agent/connect"]
        );
        assert_eq!(
            urls("https://a:7400, https://b:7400,https://c:7400,https://a:7400").unwrap(),
            [
                "wss://a:7400/v1/agent/connect",
                "wss://b:7400/v1/agent/connect",
                "wss://c:7400/v1/agent/connect"
            ]
        );
        for bad in [
            "10.0.0.1:7400",
            "",
            "http://a:7400,",
            "http://a,,http://b",
            "http://",
        ] {
            assert!(urls(bad).is_err(), "{bad:?} was accepted");
        }
        let mixed = endpoints("http://a:7400,https://b:7400", None).unwrap();
        assert!(mixed[0].tls.is_none() && mixed[1].tls.is_some());
    }

    /// The pauses before each dial, for sessions that end as `linked` says (`None`: the dial
    /// failed), and the server each dial goes to.
    fn check(servers: usize, linked: &[Option<u64>], expected: &[(u64, usize)]) {
        let mut rotation = Rotation::new(servers, MAX);
        let mut dials = vec![(0, rotation.current())];
        for linked_ms in linked {
            let pause = rotation.ended(linked_ms.map(Duration::from_millis));
            dials.push((pause.as_millis() as u64, rotation.current()));
        }
        assert_eq!(dials, expected);
    }

    #[test]
    fn one_server_is_dialled_again_with_the_backoff() {
        check(
            1,
            &[None, None, None, None, Some(60_000), None],
            &[
                (0, 0),
                (200, 0),
                (400, 0),
                (500, 0),
                (500, 0),
                (200, 0),
                (400, 0),
            ],
        );
    }

    #[test]
    fn several_servers_are_dialled_in_turn_with_the_backoff_between_rounds() {
        // Nothing answers: a round of three at once, then a pause.
        check(
            3,
            &[None, None, None, None, None, None],
            &[(0, 0), (0, 1), (0, 2), (200, 0), (0, 1), (0, 2), (400, 0)],
        );
        // A lasting link to the second is lost: the third is dialled at once, then the first.
        check(
            3,
            &[None, Some(60_000), None, None, None],
            &[(0, 0), (0, 1), (0, 2), (0, 0), (200, 1), (0, 2)],
        );
    }

    #[test]
    fn servers_that_drop_every_link_at_once_cannot_make_the_agent_spin() {
        check(
            2,
            &[Some(10), Some(10), Some(10), Some(10)],
            &[(0, 0), (0, 1), (200, 0), (0, 1), (200, 0)],
        );
    }
}
