//! `dev`'s router keeps its certificates in its own server's store, called in process: the same
//! records `/v1/router/...` keeps for standalone routers. The router binds before the server's
//! state exists (so the URLs the server shows carry the router's port); calls made before
//! [`ServerCertificates::attach`] fail, and the router tries again.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cj_api::certificates::{ChallengeAnswer, LeaseRequest, StoredCertificate};
use cj_router::CertificateStore;
use cj_router::tls::store::{StoreError, StoreResult};
use cj_server::{Failure, ServerState};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

#[derive(Default)]
pub struct ServerCertificates {
    state: OnceLock<Arc<ServerState>>,
}

impl ServerCertificates {
    pub fn attach(&self, state: Arc<ServerState>) {
        let _ = self.state.set(state);
    }

    fn with<T>(&self, call: impl FnOnce(&ServerState) -> Result<T, Failure>) -> StoreResult<T> {
        let state = self
            .state
            .get()
            .ok_or_else(|| StoreError::new("the server is still starting"))?;
        call(state).map_err(|failure| StoreError::new(failure.to_string()))
    }
}

impl CertificateStore for ServerCertificates {
    fn certificate<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<StoredCertificate>>> {
        async move { self.with(|state| state.router_certificate(name)) }.boxed()
    }

    fn put_certificate<'a>(
        &'a self,
        name: &'a str,
        certificate: &'a StoredCertificate,
    ) -> BoxFuture<'a, StoreResult<()>> {
        async move { self.with(|state| state.put_router_certificate(name, certificate)) }.boxed()
    }

    fn challenge<'a>(&'a self, token: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>> {
        async move {
            let answer = self.with(|state| state.router_challenge(token))?;
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
            let answer = ChallengeAnswer {
                key_authorization: key_authorization.to_owned(),
            };
            self.with(|state| state.put_router_challenge(token, &answer))
        }
        .boxed()
    }

    fn remove_challenge<'a>(&'a self, token: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        async move { self.with(|state| state.remove_router_challenge(token)) }.boxed()
    }

    fn lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        async move {
            let request = LeaseRequest {
                holder: holder.to_owned(),
                ttl_seconds: ttl.as_secs(),
            };
            let answer = self.with(|state| state.router_lease(name, &request))?;
            Ok(answer.granted)
        }
        .boxed()
    }
}
