//! Webhook notifications: tells ops when a config is pushed and how rollouts and tasks fare.
//!
//! The server config lists webhook URLs; [`Notifier::send`] POSTs each [`Notification`] to
//! every one of them as JSON. Sending is fire-and-forget so that a slow or dead receiver can
//! never hold up the operation that reported something (a rollout must not wait for Slack).
//! Each URL has its own background worker and queue, which keeps that URL's events in the order
//! they were sent and keeps one bad receiver from delaying the others.
//!
//! Delivery is at most once per attempt schedule: a failed POST is retried with growing pauses,
//! then given up with a warning. Events queued but not delivered are lost when the server
//! stops; notifications are a courtesy, the store remains the record of what happened.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::observe::webhook_format::{self, Webhook, WebhookFormat};

/// One notification. Serialized as JSON with an "event" tag, e.g.
/// `{"event":"push","env":"production","service":"core","version":3,"user":"alice","at":"2026-11-22T00:00:00Z"}`.
/// `at` is an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Notification {
    Push {
        env: String,
        service: String,
        version: u64,
        user: String,
        at: String,
    },
    RolloutStarted {
        env: String,
        service: String,
        deployment: String,
        kind: String,
        jobs: Vec<String>,
        user: String,
        at: String,
    },
    RolloutFinished {
        env: String,
        service: String,
        deployment: String,
        kind: String,
        at: String,
    },
    RolloutFailed {
        env: String,
        service: String,
        deployment: String,
        kind: String,
        reason: String,
        rolled_back: bool,
        at: String,
    },
    TaskUnhealthy {
        env: String,
        service: String,
        job: String,
        task: String,
        container_id: String,
        detail: String,
        at: String,
    },
    /// An alert's condition began (see `alerts`); sent once per alert.
    AlertFiring {
        alert: String,
        rule: String,
        subject: String,
        message: String,
        at: String,
    },
    /// An alert's condition ended.
    AlertResolved {
        alert: String,
        rule: String,
        subject: String,
        message: String,
        started: String,
        at: String,
    },
}

impl Notification {
    /// The JSON "event" tag, for log lines.
    pub fn event_name(&self) -> &'static str {
        match self {
            Notification::Push { .. } => "push",
            Notification::RolloutStarted { .. } => "rollout_started",
            Notification::RolloutFinished { .. } => "rollout_finished",
            Notification::RolloutFailed { .. } => "rollout_failed",
            Notification::TaskUnhealthy { .. } => "task_unhealthy",
            Notification::AlertFiring { .. } => "alert_firing",
            Notification::AlertResolved { .. } => "alert_resolved",
        }
    }
}

/// A receiver that does not answer within this is treated as a failed attempt; without it a
/// hung receiver would stall its queue forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

const USER_AGENT: &str = concat!("coding-job/", env!("CARGO_PKG_VERSION"));

/// How many events may wait per URL behind the one being delivered. A dead receiver costs up
/// to about 45 s per event (6 attempts of up to 5 s each plus 15.5 s of pauses), so events can
/// arrive faster than it drains; past this limit new events for that URL are dropped (and the
/// drop is logged) rather than letting memory grow without end. 1000 small JSON events is a
/// few hundred KB at most, and far more than any burst of pushes and rollouts.
const BACKLOG_LIMIT: usize = 1000;

/// Pauses between attempts: 6 attempts over about 15.5 s, enough to ride out a receiver's
/// restart without holding its queue for long.
fn default_retry_pauses() -> Vec<Duration> {
    [500, 1_000, 2_000, 4_000, 8_000]
        .into_iter()
        .map(Duration::from_millis)
        .collect()
}

/// Queues notifications for every configured webhook URL. Cheap to clone; clones share the
/// queues. The workers stop once every clone is dropped and their queues are drained.
#[derive(Clone)]
pub struct Notifier {
    endpoints: Arc<[Endpoint]>,
}

/// One webhook URL as seen from [`Notifier::send`]: the way into its worker's queue.
struct Endpoint {
    /// `scheme://host:port` only, for log lines: the path and query of a webhook URL often
    /// carry its secret token.
    origin: String,
    queue: mpsc::Sender<Queued>,
    format: WebhookFormat,
    /// Set while events are being dropped because the backlog is full, so that an overflow is
    /// logged once when it starts and once when it ends, not once per dropped event.
    overflowing: AtomicBool,
}

/// An event on its way: serialized once in `send` and shared by every URL.
struct Queued {
    event: &'static str,
    body: Bytes,
}

/// What a worker needs besides its queue; tests shorten the pauses and the backlog.
struct Options {
    retry_pauses: Vec<Duration>,
    backlog_limit: usize,
    /// Production honours the `HTTP_PROXY` family of variables as any HTTP client would; tests
    /// talk only to loopback receivers and must never be routed through a proxy.
    use_proxy_from_environment: bool,
}

impl Notifier {
    /// One background worker per URL (spawned on the current tokio runtime). An empty list
    /// makes a Notifier that drops everything. URLs that do not parse are logged and skipped:
    /// notifications must never stop the server from starting.
    ///
    /// # Panics
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn new(urls: Vec<String>) -> Notifier {
        Notifier::with_retry_pauses(urls, default_retry_pauses())
    }

    /// Like [`Notifier::new`], each URL with its payload format.
    pub fn for_webhooks(webhooks: Vec<Webhook>) -> Notifier {
        let options = Options {
            retry_pauses: default_retry_pauses(),
            backlog_limit: BACKLOG_LIMIT,
            use_proxy_from_environment: true,
        };
        Notifier::start_webhooks(webhooks, options).0
    }

    /// Like [`Notifier::new`] with another schedule of pauses between attempts: an event is
    /// tried `retry_pauses.len() + 1` times.
    pub fn with_retry_pauses(urls: Vec<String>, retry_pauses: Vec<Duration>) -> Notifier {
        let options = Options {
            retry_pauses,
            backlog_limit: BACKLOG_LIMIT,
            use_proxy_from_environment: true,
        };
        Notifier::start(urls, options).0
    }

    /// Queues the event for every URL and returns at once (never awaits network IO, never
    /// fails). A URL whose backlog is full drops the event.
    pub fn send(&self, notification: Notification) {
        if self.endpoints.is_empty() {
            return;
        }
        let event = notification.event_name();
        // Each format's body is made once and shared by every URL of that format.
        let mut bodies: Vec<(WebhookFormat, Bytes)> = Vec::new();
        for endpoint in self.endpoints.iter() {
            let body = match bodies.iter().find(|(format, _)| *format == endpoint.format) {
                Some((_, body)) => body.clone(),
                None => match webhook_format::body(endpoint.format, &notification) {
                    Ok(body) => {
                        let body = Bytes::from(body);
                        bodies.push((endpoint.format, body.clone()));
                        body
                    }
                    // Unreachable for these plain types; a lost notification must still not
                    // take the caller down with it.
                    Err(error) => {
                        tracing::warn!(event, %error, "cannot serialize a notification; dropped");
                        return;
                    }
                },
            };
            endpoint.queue(Queued { event, body });
        }
    }

    /// Spawns the workers; also returns their handles so that tests can see them finish.
    fn start(urls: Vec<String>, options: Options) -> (Notifier, Vec<JoinHandle<()>>) {
        let webhooks = urls.into_iter().map(Webhook::from).collect();
        Notifier::start_webhooks(webhooks, options)
    }

    fn start_webhooks(webhooks: Vec<Webhook>, options: Options) -> (Notifier, Vec<JoinHandle<()>>) {
        let nothing = || Notifier {
            endpoints: Arc::from(Vec::new()),
        };
        if webhooks.is_empty() {
            return (nothing(), Vec::new());
        }
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(USER_AGENT);
        if !options.use_proxy_from_environment {
            builder = builder.no_proxy();
        }
        let client = match builder.build() {
            Ok(client) => client,
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "cannot create the webhook client; notifications are off");
                return (nothing(), Vec::new());
            }
        };
        let retry_pauses: Arc<[Duration]> = Arc::from(options.retry_pauses);

        let mut endpoints = Vec::new();
        let mut workers = Vec::new();
        for (position, webhook) in webhooks.into_iter().enumerate() {
            let url = match reqwest::Url::parse(&webhook.url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => url,
                // The URL itself is not logged: it may hold a secret, and its position in the
                // `notify:` list is enough to find it.
                _ => {
                    tracing::warn!(position, "notify: entry is not an http(s) URL; skipped");
                    continue;
                }
            };
            let origin = url.origin().ascii_serialization();
            let (sender, receiver) = mpsc::channel(options.backlog_limit.max(1));
            let worker = Worker {
                client: client.clone(),
                url,
                origin: origin.clone(),
                retry_pauses: retry_pauses.clone(),
            };
            workers.push(tokio::spawn(worker.run(receiver)));
            endpoints.push(Endpoint {
                origin,
                queue: sender,
                format: webhook.format,
                overflowing: AtomicBool::new(false),
            });
        }
        let notifier = Notifier {
            endpoints: Arc::from(endpoints),
        };
        (notifier, workers)
    }
}

impl Endpoint {
    fn queue(&self, queued: Queued) {
        let event = queued.event;
        match self.queue.try_send(queued) {
            Ok(()) => {
                if self.overflowing.swap(false, Ordering::Relaxed) {
                    tracing::warn!(receiver = %self.origin, "webhook backlog has room again");
                }
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.overflowing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        receiver = %self.origin,
                        event,
                        "webhook backlog is full; dropping new notifications until it drains"
                    );
                }
            }
            // The worker is gone only when the runtime is shutting down; nothing to tell.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Delivers one URL's events, one at a time, in queue order.
struct Worker {
    client: reqwest::Client,
    url: reqwest::Url,
    origin: String,
    retry_pauses: Arc<[Duration]>,
}

impl Worker {
    async fn run(self, mut queue: mpsc::Receiver<Queued>) {
        while let Some(queued) = queue.recv().await {
            self.deliver(&queued).await;
        }
    }

    /// Tries until the receiver accepts or the pauses run out. The next event waits meanwhile:
    /// delivering it first would break the order the receiver sees.
    async fn deliver(&self, queued: &Queued) {
        let mut pauses = self.retry_pauses.iter();
        let mut attempts = 1;
        loop {
            let error = match self.post(&queued.body).await {
                Ok(()) => return,
                Err(error) => error,
            };
            let Some(pause) = pauses.next() else {
                tracing::warn!(
                    receiver = %self.origin,
                    event = queued.event,
                    attempts,
                    error = %error_chain(&error),
                    "webhook notification not delivered; giving up on it"
                );
                return;
            };
            tracing::debug!(
                receiver = %self.origin,
                event = queued.event,
                attempts,
                error = %error_chain(&error),
                ?pause,
                "webhook notification failed; retrying"
            );
            tokio::time::sleep(*pause).await;
            attempts += 1;
        }
    }

    async fn post(&self, body: &Bytes) -> Result<(), DeliveryError> {
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await
            // reqwest puts the URL in its messages; it may hold a secret.
            .map_err(|error| DeliveryError::Request(error.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Status(status))
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("request failed")]
    Request(#[source] reqwest::Error),
    #[error("receiver answered {0}")]
    Status(reqwest::StatusCode),
}

/// The error and its causes on one line: reqwest's own message ("error sending request") says
/// nothing about why without them.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Instant;

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use serde_json::{Value, json};
    use tokio::sync::Semaphore;

    use super::*;

    fn push(service: &str, version: u64) -> Notification {
        Notification::Push {
            env: "production".into(),
            service: service.into(),
            version,
            user: "alice".into(),
            at: "2026-11-22T00:00:00Z".into(),
        }
    }

    fn every_kind() -> Vec<Notification> {
        vec![
            push("core", 3),
            Notification::RolloutStarted {
                env: "production".into(),
                service: "core".into(),
                deployment: "d-1".into(),
                kind: "up".into(),
                jobs: vec!["web".into(), "worker".into()],
                user: "alice".into(),
                at: "2026-11-22T00:00:01Z".into(),
            },
            Notification::RolloutFinished {
                env: "production".into(),
                service: "core".into(),
                deployment: "d-1".into(),
                kind: "up".into(),
                at: "2026-11-22T00:00:02Z".into(),
            },
            Notification::RolloutFailed {
                env: "production".into(),
                service: "core".into(),
                deployment: "d-2".into(),
                kind: "up".into(),
                reason: "web-1 did not become healthy".into(),
                rolled_back: true,
                at: "2026-11-22T00:00:03Z".into(),
            },
            Notification::TaskUnhealthy {
                env: "production".into(),
                service: "core".into(),
                job: "web".into(),
                task: "web-1".into(),
                container_id: "abc123".into(),
                detail: "health check failed 3 times".into(),
                at: "2026-11-22T00:00:04Z".into(),
            },
        ]
    }

    /// Tests talk to loopback receivers only, never through a proxy.
    fn test_options(retry_pauses: Vec<Duration>) -> Options {
        Options {
            retry_pauses,
            backlog_limit: BACKLOG_LIMIT,
            use_proxy_from_environment: false,
        }
    }

    fn millis(pauses: &[u64]) -> Vec<Duration> {
        pauses.iter().copied().map(Duration::from_millis).collect()
    }

    /// What a test receiver saw of one request, and what it answered.
    #[derive(Debug, Clone)]
    struct Received {
        body: Value,
        content_type: String,
        user_agent: String,
        answered: StatusCode,
        arrived: Instant,
    }

    type Answer = dyn Fn(usize, &Value) -> StatusCode + Send + Sync;

    struct ReceiverState {
        received: Mutex<Vec<Received>>,
        /// Chooses the status from how many requests came before this one and the body.
        answer: Box<Answer>,
        /// Each request waits for a permit before answering, so a test can hold the worker
        /// mid-delivery.
        gate: Option<Arc<Semaphore>>,
    }

    /// An HTTP server on 127.0.0.1 that records every request.
    struct TestReceiver {
        url: String,
        state: Arc<ReceiverState>,
    }

    impl TestReceiver {
        async fn start(
            answer: impl Fn(usize, &Value) -> StatusCode + Send + Sync + 'static,
        ) -> TestReceiver {
            TestReceiver::start_gated(None, answer).await
        }

        async fn accepting() -> TestReceiver {
            TestReceiver::start(|_, _| StatusCode::OK).await
        }

        async fn start_gated(
            gate: Option<Arc<Semaphore>>,
            answer: impl Fn(usize, &Value) -> StatusCode + Send + Sync + 'static,
        ) -> TestReceiver {
            let state = Arc::new(ReceiverState {
                received: Mutex::new(Vec::new()),
                answer: Box::new(answer),
                gate,
            });
            let router = axum::Router::new()
                .route("/hook/{token}", axum::routing::post(record))
                .with_state(state.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
            TestReceiver {
                url: format!("http://{address}/hook/secret-token"),
                state,
            }
        }

        fn received(&self) -> Vec<Received> {
            self.state.received.lock().unwrap().clone()
        }

        /// Waits (at most 10 s) until `count` requests have arrived.
        async fn wait_for(&self, count: usize) -> Vec<Received> {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let received = self.received();
                if received.len() >= count {
                    return received;
                }
                assert!(
                    Instant::now() < deadline,
                    "expected {count} requests, got {}: {received:#?}",
                    received.len()
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    async fn record(
        State(state): State<Arc<ReceiverState>>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> StatusCode {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let answered = {
            let mut received = state.received.lock().unwrap();
            let answered = (state.answer)(received.len(), &body);
            received.push(Received {
                body,
                content_type: header("content-type"),
                user_agent: header("user-agent"),
                answered,
                arrived: Instant::now(),
            });
            answered
        };
        if let Some(gate) = &state.gate {
            let _permit = gate.acquire().await.unwrap();
        }
        answered
    }

    fn bodies(received: &[Received]) -> Vec<Value> {
        received
            .iter()
            .map(|request| request.body.clone())
            .collect()
    }

    fn json_of(notifications: &[Notification]) -> Vec<Value> {
        notifications
            .iter()
            .map(|notification| serde_json::to_value(notification).unwrap())
            .collect()
    }

    #[test]
    fn notifications_serialize_with_an_event_tag() {
        assert_eq!(
            serde_json::to_string(&push("core", 3)).unwrap(),
            r#"{"event":"push","env":"production","service":"core","version":3,"user":"alice","at":"2026-11-22T00:00:00Z"}"#
        );
        let tags: Vec<Value> = json_of(&every_kind())
            .into_iter()
            .map(|value| value["event"].clone())
            .collect();
        assert_eq!(
            tags,
            [
                "push",
                "rollout_started",
                "rollout_finished",
                "rollout_failed",
                "task_unhealthy"
            ]
        );
        for notification in every_kind() {
            let value = serde_json::to_value(&notification).unwrap();
            assert_eq!(value["event"], notification.event_name());
            assert_eq!(
                serde_json::from_value::<Notification>(value).unwrap(),
                notification
            );
        }
        assert_eq!(
            json_of(&every_kind())[3],
            json!({
                "event": "rollout_failed", "env": "production", "service": "core",
                "deployment": "d-2", "kind": "up", "reason": "web-1 did not become healthy",
                "rolled_back": true, "at": "2026-11-22T00:00:03Z"
            })
        );
    }

    #[tokio::test]
    async fn events_reach_every_url_in_the_order_sent() {
        let first = TestReceiver::accepting().await;
        let second = TestReceiver::accepting().await;
        let (notifier, _) = Notifier::start(
            vec![first.url.clone(), second.url.clone()],
            test_options(millis(&[10])),
        );
        let mut sent = every_kind();
        sent.extend((4..20).map(|version| push("core", version)));
        for notification in &sent {
            notifier.send(notification.clone());
        }
        for receiver in [&first, &second] {
            let received = receiver.wait_for(sent.len()).await;
            assert_eq!(bodies(&received), json_of(&sent));
            for request in &received {
                assert_eq!(request.content_type, "application/json");
                assert_eq!(request.user_agent, USER_AGENT);
                assert!(request.user_agent.starts_with("coding-job/"));
            }
        }
    }

    #[tokio::test]
    async fn a_failed_event_is_retried_and_later_events_wait_for_it() {
        let receiver = TestReceiver::start(|earlier, _| match earlier {
            0 | 1 => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::OK,
        })
        .await;
        let (notifier, _) =
            Notifier::start(vec![receiver.url.clone()], test_options(millis(&[20, 40])));
        let sent = vec![push("core", 1), push("core", 2), push("core", 3)];
        for notification in &sent {
            notifier.send(notification.clone());
        }

        let received = receiver.wait_for(5).await;
        let expected = json_of(&sent);
        assert_eq!(
            bodies(&received),
            [0, 0, 0, 1, 2].map(|index| expected[index].clone())
        );
        let answered: Vec<u16> = received.iter().map(|r| r.answered.as_u16()).collect();
        assert_eq!(answered, [500, 500, 200, 200, 200]);
        // The pauses grow as scheduled.
        assert!(received[1].arrived - received[0].arrived >= Duration::from_millis(20));
        assert!(received[2].arrived - received[1].arrived >= Duration::from_millis(40));
    }

    #[tokio::test]
    async fn an_event_that_keeps_failing_is_given_up_and_the_next_one_delivered() {
        let receiver = TestReceiver::start(|_, body| {
            if body["service"] == "doomed" {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
        })
        .await;
        let (notifier, _) =
            Notifier::start(vec![receiver.url.clone()], test_options(millis(&[1, 1])));
        notifier.send(push("doomed", 1));
        notifier.send(push("core", 2));

        let received = receiver.wait_for(4).await;
        let services: Vec<&Value> = received.iter().map(|r| &r.body["service"]).collect();
        assert_eq!(services, ["doomed", "doomed", "doomed", "core"]);
    }

    #[tokio::test]
    async fn send_returns_at_once_when_the_receiver_is_down() {
        // A port nobody listens on: bind one, then let it go.
        let down = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/hook", listener.local_addr().unwrap())
        };
        let (notifier, workers) =
            Notifier::start(vec![down], test_options(millis(&[1, 1, 1, 1, 1])));

        let started = Instant::now();
        for version in 0..100 {
            notifier.send(push("core", version));
        }
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_millis(50),
            "100 sends took {elapsed:?}"
        );

        // Once the notifier is gone the worker works through its queue (every attempt refused)
        // and ends; a panic would show up here as a join error.
        drop(notifier);
        for worker in workers {
            tokio::time::timeout(Duration::from_secs(30), worker)
                .await
                .expect("the worker did not finish")
                .expect("the worker panicked");
        }
    }

    #[tokio::test]
    async fn a_full_backlog_drops_new_events_and_keeps_the_rest_in_order() {
        let gate = Arc::new(Semaphore::new(0));
        let receiver = TestReceiver::start_gated(Some(gate.clone()), |_, _| StatusCode::OK).await;
        let options = Options {
            backlog_limit: 2,
            ..test_options(millis(&[10]))
        };
        let (notifier, _) = Notifier::start(vec![receiver.url.clone()], options);

        // Version 1 is in flight (held by the gate), 2 and 3 fill the backlog, 4 is dropped.
        notifier.send(push("core", 1));
        receiver.wait_for(1).await;
        for version in 2..=4 {
            notifier.send(push("core", version));
        }
        gate.add_permits(1_000);
        receiver.wait_for(3).await;
        // Sent after the backlog drained, 5 arrives right after 3: 4 was never queued.
        notifier.send(push("core", 5));

        let received = receiver.wait_for(4).await;
        let versions: Vec<&Value> = received.iter().map(|r| &r.body["version"]).collect();
        assert_eq!(versions, [1, 2, 3, 5]);
    }

    #[tokio::test]
    async fn an_empty_url_list_drops_everything() {
        let notifier = Notifier::new(Vec::new());
        for notification in every_kind() {
            notifier.send(notification);
        }
        assert!(notifier.endpoints.is_empty());
    }

    #[tokio::test]
    async fn urls_that_do_not_parse_are_skipped() {
        let receiver = TestReceiver::accepting().await;
        let urls = vec![
            "not a url".to_owned(),
            "ftp://127.0.0.1/hook".to_owned(),
            receiver.url.clone(),
        ];
        let (notifier, _) = Notifier::start(urls, test_options(millis(&[1])));
        assert_eq!(notifier.endpoints.len(), 1);
        notifier.send(push("core", 1));
        assert_eq!(
            bodies(&receiver.wait_for(1).await),
            json_of(&[push("core", 1)])
        );
    }
}
