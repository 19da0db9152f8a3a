//! Where certificates, challenge answers and ordering leases are shared: [`CertificateStore`].
//! A standalone router reaches the server's store through its API ([`ApiCertificateStore`],
//! `/v1/router/...`); `dev` implements the trait over its own state; [`MemoryCertificateStore`]
//! keeps everything in this process, for tests and for a single router that needs nothing kept.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use cj_api::certificates::{ChallengeAnswer, LeaseAnswer, LeaseRequest, StoredCertificate};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use reqwest::StatusCode;

/// A call to the store that did not succeed.
#[derive(Debug, thiserror::Error)]
#[error("certificate store: {reason}")]
pub struct StoreError {
    pub reason: String,
}

impl StoreError {
    pub fn new(reason: impl Into<String>) -> StoreError {
        StoreError {
            reason: reason.into(),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What routers share. Every call may fail (the server out of reach); callers try again later.
pub trait CertificateStore: Send + Sync + 'static {
    /// The certificate kept for the host `name`, if any.
    fn certificate<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<StoredCertificate>>>;
    /// Keeps `certificate` for `name`, replacing the one kept before.
    fn put_certificate<'a>(
        &'a self,
        name: &'a str,
        certificate: &'a StoredCertificate,
    ) -> BoxFuture<'a, StoreResult<()>>;
    /// The key authorization to answer for an HTTP-01 challenge `token`.
    fn challenge<'a>(&'a self, token: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>>;
    fn put_challenge<'a>(
        &'a self,
        token: &'a str,
        key_authorization: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>>;
    fn remove_challenge<'a>(&'a self, token: &'a str) -> BoxFuture<'a, StoreResult<()>>;
    /// Takes (or extends) the right to order `name` for `ttl` as `holder`; `false` when another
    /// holder has it. A zero `ttl` gives it back.
    fn lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<bool>>;
}

/// The server's store through its API, with the router's token.
pub struct ApiCertificateStore {
    servers: Vec<String>,
    token: Option<String>,
    http: reqwest::Client,
}

/// One call to the server may take this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl ApiCertificateStore {
    /// `server_url` as `follow_server` takes it (several comma-separated URLs, tried in turn).
    pub fn new(
        server_url: &str,
        token: Option<String>,
        http: reqwest::Client,
    ) -> ApiCertificateStore {
        let servers = server_url
            .split(',')
            .map(|server| server.trim().trim_end_matches('/').to_owned())
            .filter(|server| !server.is_empty())
            .collect();
        ApiCertificateStore {
            servers,
            token,
            http,
        }
    }

    /// Sends the request `build` makes to each server in turn until one answers: its answer
    /// when it succeeded, `None` for a 404, an error for any other refusal.
    async fn send(
        &self,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> StoreResult<Option<reqwest::Response>> {
        let mut last = StoreError::new("no server to ask");
        for server in &self.servers {
            let mut request = build(server).timeout(REQUEST_TIMEOUT);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) => {
                    last = StoreError::new(format!("{server}: {error}"));
                    continue;
                }
            };
            let status = response.status();
            if status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !status.is_success() {
                let body = response.text().await.unwrap_or_default();
                let body: String = body.chars().take(300).collect();
                return Err(StoreError::new(format!(
                    "{server} answered {status}: {body}"
                )));
            }
            return Ok(Some(response));
        }
        Err(last)
    }

    /// [`send`](Self::send), with the answer's JSON body.
    async fn fetch<T: serde::de::DeserializeOwned>(
        &self,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> StoreResult<Option<T>> {
        match self.send(build).await? {
            Some(response) => response
                .json()
                .await
                .map(Some)
                .map_err(|error| StoreError::new(error.to_string())),
            None => Ok(None),
        }
    }

    /// [`send`](Self::send) for a change: a 404 means the server has no such route (an older
    /// server), which is an error here.
    async fn change(&self, build: impl Fn(&str) -> reqwest::RequestBuilder) -> StoreResult<()> {
        match self.send(build).await? {
            Some(_) => Ok(()),
            None => Err(StoreError::new(
                "the server does not keep certificates (404)",
            )),
        }
    }
}

impl CertificateStore for ApiCertificateStore {
    fn certificate<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<StoredCertificate>>> {
        self.fetch(move |server| {
            self.http
                .get(format!("{server}/v1/router/certificates/{name}"))
        })
        .boxed()
    }

    fn put_certificate<'a>(
        &'a self,
        name: &'a str,
        certificate: &'a StoredCertificate,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.change(move |server| {
            self.http
                .put(format!("{server}/v1/router/certificates/{name}"))
                .json(certificate)
        })
        .boxed()
    }

    fn challenge<'a>(&'a self, token: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>> {
        async move {
            let answer: Option<ChallengeAnswer> = self
                .fetch(move |server| {
                    self.http
                        .get(format!("{server}/v1/router/challenges/{token}"))
                })
                .await?;
            Ok(answer.map(|answer| answer.key_authorization))
        }
        .boxed()
    }

    fn put_challenge<'a>(
        &'a self,
        token: &'a str,
        key_authorization: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        async move {
            let body = ChallengeAnswer {
                key_authorization: key_authorization.to_owned(),
            };
            self.change(|server| {
                self.http
                    .put(format!("{server}/v1/router/challenges/{token}"))
                    .json(&body)
            })
            .await
        }
        .boxed()
    }

    fn remove_challenge<'a>(&'a self, token: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        async move {
            // Gone already is as good as removed.
            self.send(|server| {
                self.http
                    .delete(format!("{server}/v1/router/challenges/{token}"))
            })
            .await
            .map(drop)
        }
        .boxed()
    }

    fn lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        async move {
            let body = LeaseRequest {
                holder: holder.to_owned(),
                ttl_seconds: ttl.as_secs(),
            };
            let answer: Option<LeaseAnswer> = self
                .fetch(|server| {
                    self.http
                        .put(format!("{server}/v1/router/leases/{name}"))
                        .json(&body)
                })
                .await?;
            Ok(answer.is_some_and(|answer| answer.granted))
        }
        .boxed()
    }
}

/// Everything in this process: shared by the routers of one process only.
#[derive(Default)]
pub struct MemoryCertificateStore {
    certificates: Mutex<HashMap<String, StoredCertificate>>,
    challenges: Mutex<HashMap<String, String>>,
    leases: Mutex<HashMap<String, (String, Instant)>>,
}

impl CertificateStore for MemoryCertificateStore {
    fn certificate<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<StoredCertificate>>> {
        let found = lock(&self.certificates).get(name).cloned();
        async move { Ok(found) }.boxed()
    }

    fn put_certificate<'a>(
        &'a self,
        name: &'a str,
        certificate: &'a StoredCertificate,
    ) -> BoxFuture<'a, StoreResult<()>> {
        lock(&self.certificates).insert(name.to_owned(), certificate.clone());
        async { Ok(()) }.boxed()
    }

    fn challenge<'a>(&'a self, token: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>> {
        let found = lock(&self.challenges).get(token).cloned();
        async move { Ok(found) }.boxed()
    }

    fn put_challenge<'a>(
        &'a self,
        token: &'a str,
        key_authorization: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        lock(&self.challenges).insert(token.to_owned(), key_authorization.to_owned());
        async { Ok(()) }.boxed()
    }

    fn remove_challenge<'a>(&'a self, token: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        lock(&self.challenges).remove(token);
        async { Ok(()) }.boxed()
    }

    fn lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let mut leases = lock(&self.leases);
        let now = Instant::now();
        let free = leases
            .get(name)
            .is_none_or(|(owner, until)| owner == holder || *until <= now);
        if free {
            if ttl.is_zero() {
                leases.remove(name);
            } else {
                leases.insert(name.to_owned(), (holder.to_owned(), now + ttl));
            }
        }
        async move { Ok(free) }.boxed()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
