//! Obtaining one name's certificate from an ACME server (RFC 8555) with `instant-acme`, by the
//! HTTP-01 challenge: the answer is put in the shared store, so whichever router the ACME
//! server reaches on port 80 answers it, and removed once the order is decided. The ACME
//! client's requests go through the router's own `reqwest` client (its trust: the web roots
//! plus `--acme-ca-cert`).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use cj_api::certificates::StoredCertificate;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response};
use instant_acme::{
    Account, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType, HttpClient,
    Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use tokio::sync::OnceCell;

use super::material;
use super::store::CertificateStore;

/// How long the ACME server may take to validate a challenge, then to issue.
const VALIDATION_TIME: Duration = Duration::from_secs(90);

/// Why a name got no certificate, in words for its page and the log.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("the ACME server refused the account: {0}")]
    Account(String),
    #[error("the ACME server failed the order: {0}")]
    Order(String),
    #[error("the challenge for {name} failed: {reason}")]
    Challenge { name: String, reason: String },
    #[error("the ACME server offers no HTTP-01 challenge for {name}")]
    NoHttpChallenge { name: String },
    #[error("the order for {name} ended {status}")]
    NotReady { name: String, status: String },
    #[error(transparent)]
    Store(#[from] super::store::StoreError),
    #[error("the issued certificate cannot be used: {0}")]
    Certificate(#[from] material::MaterialError),
}

/// An ACME directory and the account on it, made on first use (one per router process).
pub(crate) struct Acme {
    directory: String,
    contact: Vec<String>,
    http: reqwest::Client,
    account: OnceCell<Account>,
}

impl Acme {
    pub(crate) fn new(directory: String, email: Option<&str>, http: reqwest::Client) -> Acme {
        Acme {
            directory,
            contact: email
                .map(|email| format!("mailto:{email}"))
                .into_iter()
                .collect(),
            http,
            account: OnceCell::new(),
        }
    }

    async fn account(&self) -> Result<&Account, AcmeError> {
        self.account
            .get_or_try_init(|| async {
                let contact: Vec<&str> = self.contact.iter().map(String::as_str).collect();
                let builder = Account::builder_with_http(Box::new(ReqwestHttp(self.http.clone())));
                let (account, _credentials) = builder
                    .create(
                        &NewAccount {
                            contact: &contact,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        self.directory.clone(),
                        None,
                    )
                    .await
                    .map_err(|error| AcmeError::Account(error.to_string()))?;
                Ok(account)
            })
            .await
    }

    /// Orders a certificate for `name`, answering its challenge through `store`.
    pub(crate) async fn obtain(
        &self,
        name: &str,
        store: &dyn CertificateStore,
    ) -> Result<StoredCertificate, AcmeError> {
        let mut tokens = Vec::new();
        let obtained = self.order(name, store, &mut tokens).await;
        for token in &tokens {
            if let Err(error) = store.remove_challenge(token).await {
                tracing::debug!(%error, "failed to remove a challenge answer");
            }
        }
        obtained
    }

    async fn order(
        &self,
        name: &str,
        store: &dyn CertificateStore,
        tokens: &mut Vec<String>,
    ) -> Result<StoredCertificate, AcmeError> {
        let account = self.account().await?;
        let identifiers = [Identifier::Dns(name.to_owned())];
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|error| AcmeError::Order(error.to_string()))?;
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization =
                authorization.map_err(|error| AcmeError::Order(error.to_string()))?;
            if authorization.status != AuthorizationStatus::Pending {
                continue;
            }
            let mut challenge =
                authorization
                    .challenge(ChallengeType::Http01)
                    .ok_or_else(|| AcmeError::NoHttpChallenge {
                        name: name.to_owned(),
                    })?;
            let key_authorization = challenge.key_authorization();
            store
                .put_challenge(&challenge.token, key_authorization.as_str())
                .await?;
            tokens.push(challenge.token.clone());
            challenge
                .set_ready()
                .await
                .map_err(|error| AcmeError::Order(error.to_string()))?;
        }
        let retries = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(VALIDATION_TIME);
        let status = order.poll_ready(&retries).await;
        match status {
            Ok(OrderStatus::Ready) => {}
            Ok(status) => return Err(self.why_not_ready(name, &mut order, status).await),
            Err(error) => return Err(AcmeError::Order(error.to_string())),
        }
        let key_pem = order
            .finalize()
            .await
            .map_err(|error| AcmeError::Order(error.to_string()))?;
        let chain_pem = order
            .poll_certificate(&retries)
            .await
            .map_err(|error| AcmeError::Order(error.to_string()))?;
        let not_after = material::not_after(&chain_pem)?;
        Ok(StoredCertificate {
            chain_pem,
            key_pem,
            not_after,
        })
    }

    /// The error of the failed challenge, as the ACME server words it.
    async fn why_not_ready(
        &self,
        name: &str,
        order: &mut instant_acme::Order,
        status: OrderStatus,
    ) -> AcmeError {
        let mut authorizations = order.authorizations();
        while let Some(Ok(mut authorization)) = authorizations.next().await {
            let Ok(state) = authorization.refresh().await else {
                continue;
            };
            let problem = state
                .challenges
                .iter()
                .find_map(|challenge| challenge.error.as_ref());
            if let Some(problem) = problem {
                return AcmeError::Challenge {
                    name: name.to_owned(),
                    reason: problem
                        .detail
                        .clone()
                        .unwrap_or_else(|| problem.to_string()),
                };
            }
        }
        AcmeError::NotReady {
            name: name.to_owned(),
            status: format!("{status:?}").to_ascii_lowercase(),
        }
    }
}

/// `instant-acme`'s HTTP client trait over `reqwest`.
struct ReqwestHttp(reqwest::Client);

impl HttpClient for ReqwestHttp {
    fn request(
        &self,
        request: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let http = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let answer = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|error| instant_acme::Error::Other(Box::new(error)))?;
            let mut response = Response::builder().status(answer.status());
            if let Some(headers) = response.headers_mut() {
                *headers = answer.headers().clone();
            }
            let body = answer
                .bytes()
                .await
                .map_err(|error| instant_acme::Error::Other(Box::new(error)))?;
            let response = response.body(Full::new(body))?;
            Ok(BytesResponse::from(response))
        })
    }
}
