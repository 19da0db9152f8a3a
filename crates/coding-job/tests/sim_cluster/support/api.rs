//! The HTTP API as the CLI uses it (the same paths and bodies), over the in-memory network: one
//! connection per call, so a call under way when the server dies ends with it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cj_api::{
    Deployment, DrainResponse, HistoryResponse, HostInfo, OperationEvent, OperationSummary,
    PushResponse, TaskStatus,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::network::{CLIENT_ADDRESS, Network};

const ENV: &str = cj_api::DEFAULT_ENV;
/// The longest any call may take, answer and body, on the paused clock: a call that hangs
/// fails its test instead of holding it forever.
const CALL_DEADLINE: Duration = Duration::from_secs(600);

#[derive(Clone)]
pub struct Api {
    pub network: Arc<Network>,
}

/// A call the server refused, or that did not get through.
#[derive(Debug)]
pub struct Refused {
    pub status: Option<StatusCode>,
    pub body: String,
}

impl Api {
    /// Sends one request; the answer's head, its body still to come.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Response<Incoming>, Refused> {
        let unreachable = |error: &dyn std::fmt::Display| Refused {
            status: None,
            body: error.to_string(),
        };
        let wire = self
            .network
            .connect(None, CLIENT_ADDRESS.parse().unwrap())
            .map_err(|error| unreachable(&error))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(wire))
            .await
            .map_err(|error| unreachable(&error))?;
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            // An open server answers local names and addresses only.
            .header("host", "127.0.0.1:7400")
            .header(cj_api::USER_HEADER, "tester")
            .header("content-type", "application/json");
        let body = body.map(|body| body.to_string()).unwrap_or_default();
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        sender
            .send_request(request)
            .await
            .map_err(|error| unreachable(&error))
    }

    /// A call answered with one JSON document.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, Refused> {
        let what = format!("{method} {path}");
        within_deadline(&what, self.call_once(method, path, body)).await
    }

    async fn call_once<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, Refused> {
        let response = self.send(method, path, body).await?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|error| Refused {
                status: Some(status),
                body: error.to_string(),
            })?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if !status.is_success() {
            return Err(Refused {
                status: Some(status),
                body: text,
            });
        }
        serde_json::from_str(&text).map_err(|error| Refused {
            status: Some(status),
            body: format!("{error}: {text}"),
        })
    }

    /// A call answered with newline-delimited events, read to the end of the stream (or of the
    /// connection).
    pub async fn events(&self, path: &str, body: Value) -> Result<Vec<OperationEvent>, Refused> {
        within_deadline(&format!("POST {path}"), self.events_once(path, body)).await
    }

    async fn events_once(&self, path: &str, body: Value) -> Result<Vec<OperationEvent>, Refused> {
        let response = self.send(Method::POST, path, Some(body)).await?;
        let status = response.status();
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        text.extend_from_slice(data);
                    }
                }
                // The connection ended mid-stream: what came so far is the answer.
                Err(_) => break,
            }
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        if !status.is_success() {
            return Err(Refused {
                status: Some(status),
                body: text,
            });
        }
        Ok(text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: bad progress {line}"))
            })
            .collect())
    }

    pub async fn push(&self, file: &str, source: &str) -> PushResponse {
        let body = json!({ "env": ENV, "file": file, "source": source });
        self.call(Method::POST, "/v1/push", Some(body))
            .await
            .unwrap_or_else(|refused| panic!("push {file}: {refused:?}"))
    }

    /// `up` or `down` of `target`; its summary.
    pub async fn operation(&self, verb: &str, target: &str) -> OperationSummary {
        let body = json!({ "env": ENV, "target": target });
        let events = self
            .events(&format!("/v1/{verb}"), body)
            .await
            .unwrap_or_else(|refused| panic!("{verb} {target}: {refused:?}"));
        summary(&events).unwrap_or_else(|| panic!("{verb} {target}: no summary in {events:?}"))
    }

    /// `rolling-update`, `promote` or `abort` of `target`, followed until it ends or waits for
    /// promotion; every event.
    pub async fn deploy(&self, verb: &str, target: &str) -> Vec<OperationEvent> {
        let body = json!({ "env": ENV, "target": target, "follow": true });
        self.events(&format!("/v1/{verb}"), body)
            .await
            .unwrap_or_else(|refused| panic!("{verb} {target}: {refused:?}"))
    }

    pub async fn status(&self, target: &str) -> Vec<TaskStatus> {
        let path = format!("/v1/status?env={ENV}&target={target}");
        self.call(Method::GET, &path, None)
            .await
            .unwrap_or_else(|refused| panic!("status {target}: {refused:?}"))
    }

    /// The deployments of `service`, newest first.
    pub async fn deployments(&self, service: &str) -> Vec<Deployment> {
        let path = format!("/v1/deployments?env={ENV}&target={service}");
        self.call(Method::GET, &path, None)
            .await
            .unwrap_or_else(|refused| panic!("deployments {service}: {refused:?}"))
    }

    pub async fn history(&self, target: &str) -> HistoryResponse {
        let path = format!("/v1/history?env={ENV}&target={target}");
        self.call(Method::GET, &path, None)
            .await
            .unwrap_or_else(|refused| panic!("history {target}: {refused:?}"))
    }

    pub async fn hosts(&self) -> Result<Vec<HostInfo>, Refused> {
        self.call(Method::GET, "/v1/hosts", None).await
    }

    /// `hosts drain HOST` (`drain`) or `hosts undrain HOST` (`undrain`).
    pub async fn drain(&self, action: &str, host: &str) -> DrainResponse {
        let path = format!("/v1/hosts/{host}/{action}");
        self.call(Method::POST, &path, Some(json!({})))
            .await
            .unwrap_or_else(|refused| panic!("{action} {host}: {refused:?}"))
    }
}

async fn within_deadline<T>(what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(CALL_DEADLINE, call)
        .await
        .unwrap_or_else(|_| panic!("no whole answer to {what} within {CALL_DEADLINE:?}"))
}

/// The summary a stream of progress ended with.
pub fn summary(events: &[OperationEvent]) -> Option<OperationSummary> {
    events.iter().rev().find_map(|event| match event {
        OperationEvent::Summary(summary) => Some(summary.clone()),
        _ => None,
    })
}
