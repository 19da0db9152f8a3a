//! A router's feed of tables from the server: `GET /v1/routes?watch=true`, one JSON table per
//! line, each sent on to the router. The stream is dialled again whenever it fails or ends,
//! with backoff, and the last table stays in force meanwhile: a router that lost its server
//! goes on routing as it last knew. Given several servers of the installation (a
//! comma-separated list), a failed stream moves on to the next one at once; the backoff is
//! between whole rounds of the list.

use std::time::Duration;

use cj_api::routes::RouteTable;
use futures_util::StreamExt;
use tokio::sync::watch;

/// The first wait before dialling again, doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The server writes only on a change, so a quiet stream is normal; but a connection that died
/// without a word (a host gone, a partition) is quiet too. Dialling again after this long
/// finds out, at the cost of one table.
const IDLE_REDIAL: Duration = Duration::from_secs(300);
/// A line longer than this is no table the server would send.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// Follows the server's route table at `server_url` (`http(s)://HOST:PORT`, or several such
/// URLs separated by commas, tried in turn), sending each table that differs from the last to
/// `tx`, until every receiver of `tx` is gone.
///
/// `http` carries the TLS configuration (trusted roots) and must have no overall timeout, as
/// the answer is a stream that does not end. `token` is sent as `Authorization: Bearer`.
pub async fn follow_server(
    server_url: &str,
    token: Option<String>,
    http: reqwest::Client,
    tx: watch::Sender<RouteTable>,
) {
    let servers: Vec<&str> = server_url
        .split(',')
        .map(|server| server.trim().trim_end_matches('/'))
        .filter(|server| !server.is_empty())
        .collect();
    let mut follower = Follower {
        tx: &tx,
        backoff: FIRST_BACKOFF,
        outage: false,
        failures: 0,
    };
    let mut current = 0;
    loop {
        let server_url = servers.get(current).copied().unwrap_or_default();
        let url = format!("{server_url}/v1/routes?watch=true");
        let followed = tokio::select! {
            followed = follower.follow_once(&url, token.as_deref(), &http) => followed,
            () = tx.closed() => return,
        };
        match followed {
            // Quiet for long: dial again at once, as nothing is known to be wrong.
            Ok(()) => {
                tracing::debug!(server = %server_url, "route table stream idle; dialling again");
                continue;
            }
            Err(error) if !follower.outage => {
                follower.outage = true;
                tracing::warn!(
                    server = %server_url, error = %format!("{error:#}"),
                    "lost the server's route table stream; routing on with the last table \
                     while dialling again"
                );
            }
            Err(error) => {
                tracing::debug!(server = %server_url, error = %format!("{error:#}"), "still no route table stream");
            }
        }
        // The next server at once; the backoff only once every one has failed in turn.
        current = (current + 1) % servers.len().max(1);
        follower.failures += 1;
        if follower.failures < servers.len() {
            continue;
        }
        follower.failures = 0;
        tokio::select! {
            () = tokio::time::sleep(follower.backoff) => {}
            () = tx.closed() => return,
        }
        follower.backoff = (follower.backoff * 2).min(MAX_BACKOFF);
    }
}

struct Follower<'a> {
    tx: &'a watch::Sender<RouteTable>,
    backoff: Duration,
    /// Whether the current outage was logged.
    outage: bool,
    /// Servers that failed in turn since the last pause or the last table.
    failures: usize,
}

impl Follower<'_> {
    /// Reads one stream to its end. `Ok` only when it went quiet for [`IDLE_REDIAL`].
    async fn follow_once(
        &mut self,
        url: &str,
        token: Option<&str>,
        http: &reqwest::Client,
    ) -> anyhow::Result<()> {
        let mut request = http.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!("the server answered {status}");
        }
        let mut chunks = response.bytes_stream();
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let Ok(chunk) = tokio::time::timeout(IDLE_REDIAL, chunks.next()).await else {
                return Ok(());
            };
            let Some(chunk) = chunk else {
                anyhow::bail!("the server ended the stream");
            };
            let chunk = chunk?;
            // Only the new bytes can hold a newline not seen yet.
            let mut scan_from = pending.len();
            pending.extend_from_slice(&chunk);
            let mut consumed = 0;
            while let Some(offset) = pending[scan_from..].iter().position(|&byte| byte == b'\n') {
                let end = scan_from + offset;
                let line = pending[consumed..end].trim_ascii();
                if !line.is_empty() {
                    let table: RouteTable = serde_json::from_slice(line)
                        .map_err(|error| anyhow::anyhow!("a line is no route table: {error}"))?;
                    self.publish(table);
                }
                consumed = end + 1;
                scan_from = consumed;
            }
            pending.drain(..consumed);
            if pending.len() > MAX_LINE {
                anyhow::bail!("a line longer than {MAX_LINE} bytes");
            }
        }
    }

    fn publish(&mut self, table: RouteTable) {
        if self.outage {
            self.outage = false;
            tracing::info!("following the server's route table again");
        }
        self.backoff = FIRST_BACKOFF;
        self.failures = 0;
        // The same table again (after dialling again) wakes no router.
        self.tx.send_if_modified(|current| {
            if *current == table {
                return false;
            }
            *current = table;
            true
        });
    }
}
