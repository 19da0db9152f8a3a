//! `/metrics` of a process that is not the server: a standalone `agent` or `router` serves what
//! it records (the agent's reconcile passes, the router's proxied requests) on an address of its
//! own (`--metrics-listen`), for Prometheus to scrape beside the server. The server's `/metrics`
//! holds the cluster's state and host readings; this holds only the process's own series.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::observe::scrape::TEXT_FORMAT;

/// Installs the metrics recorder and serves `GET /metrics` on `listen`, in the background for
/// as long as the process runs; the address it is bound to (for a port 0).
pub async fn serve_metrics(listen: SocketAddr) -> anyhow::Result<SocketAddr> {
    crate::observe::recorder::install();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen for metrics on {listen}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new().route("/metrics", get(render));
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the metrics listener stopped");
        }
    });
    Ok(bound)
}

async fn render() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, TEXT_FORMAT)],
        crate::observe::recorder::render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_what_the_process_records() {
        let bound = serve_metrics("127.0.0.1:0".parse().unwrap()).await.unwrap();
        metrics::histogram!("coding_job_agent_reconcile_duration_seconds").record(0.02);
        let answer = reqwest::get(format!("http://{bound}/metrics"))
            .await
            .unwrap();
        assert_eq!(answer.headers()[header::CONTENT_TYPE.as_str()], TEXT_FORMAT);
        let text = answer.text().await.unwrap();
        assert!(
            text.contains("coding_job_agent_reconcile_duration_seconds_count"),
            "{text}"
        );
        let taken = serve_metrics(bound).await.unwrap_err();
        assert!(taken.to_string().contains(&bound.to_string()), "{taken}");
    }
}
