//! `GET /v1/store/snapshot` (admin): a consistent copy of the whole store, taken while the
//! server serves, for `coding-job store snapshot`. The store writes it (`Store::snapshot`, one
//! read view) on a blocking thread into a small queue that the answer streams from, so a
//! large store is never held in memory and a slow reader slows only the copy. A store with
//! its own tool for copies (etcd) is answered 501 naming that tool, before anything is sent.
//!
//! The copy holds token hashes and secret values like the store does: only admins may take
//! one, and every copy taken is in the audit log.

use std::io::Write;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cj_api::ApiError;
use cj_store::SnapshotError;
use futures_util::{StreamExt, stream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::Failure;
use crate::state::AppState;

/// How many pieces of the copy may wait for the reader (each up to the store's 64 KiB
/// buffer): enough to keep the connection busy, little enough to stay small.
const PIECES_WAITING: usize = 8;

type Piece = Result<Bytes, std::io::Error>;

#[utoipa::path(
    get,
    path = "/v1/store/snapshot",
    operation_id = "store_snapshot",
    responses(
        (status = 200, description = "a consistent copy of the whole store, streamed: one JSON \
            record per line (a header with the revision, the leases, every key with its \
            revisions and version, then an end record with the counts and a SHA-256 of what \
            precedes it); `coding-job store restore` builds a store from it",
            content_type = "application/x-ndjson", body = String),
        (status = 501, description = "the server's store is not the embedded one: an etcd \
            store is copied with `etcdctl snapshot save`", body = ApiError),
    )
)]
pub async fn snapshot(State(state): AppState) -> Result<Response, Failure> {
    let (pieces, mut received) = mpsc::channel::<Piece>(PIECES_WAITING);
    let store = state.store.clone();
    let copy = tokio::task::spawn_blocking(move || {
        let mut out = QueueWriter {
            pieces: pieces.clone(),
        };
        let taken = store.snapshot(&mut out);
        match &taken {
            Ok(summary) => tracing::info!(
                revision = summary.revision,
                keys = summary.keys,
                bytes = summary.bytes,
                "store snapshot taken"
            ),
            Err(error) => {
                tracing::warn!(%error, "store snapshot failed");
                // A copy under way is cut short, so its reader sees it unfinished.
                let _ = pieces.blocking_send(Err(std::io::Error::other(error.to_string())));
            }
        }
        taken
    });
    match received.recv().await {
        Some(Ok(first)) => {
            let rest = ReceiverStream::new(received);
            let body = Body::from_stream(stream::once(async { Ok(first) }).chain(rest));
            Ok((
                [
                    (header::CONTENT_TYPE, "application/x-ndjson"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"coding-job-store.snapshot\"",
                    ),
                ],
                body,
            )
                .into_response())
        }
        // Nothing was written: the store refused, or failed at once.
        Some(Err(_)) | None => match copy.await {
            Ok(Err(SnapshotError::Unsupported(reason))) => Err(Failure::Refused {
                status: 501,
                message: reason,
            }),
            Ok(Err(error)) => Err(Failure::Internal(format!("store snapshot: {error}"))),
            Ok(Ok(_)) => Err(Failure::Internal(
                "store snapshot: the store wrote nothing".into(),
            )),
            Err(error) => Err(Failure::Internal(format!("store snapshot: {error}"))),
        },
    }
}

/// The store's writer: each write is a piece in the queue, waiting while the queue is full.
/// Once the reader is gone (the client went away) every write fails, which ends the copy.
struct QueueWriter {
    pieces: mpsc::Sender<Piece>,
}

impl Write for QueueWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.pieces
            .blocking_send(Ok(Bytes::copy_from_slice(bytes)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the reader left"))?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::http::StatusCode;
    use cj_store::{
        Compare, EmbeddedStore, KeyValue, LeaseId, Op, Page, SnapshotSummary, Store, StoreError,
        TxnOutcome, WatchEvent, WatchStream,
    };

    use super::*;
    use crate::state::ServerState;

    async fn body_of(response: Response) -> Bytes {
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_answer_is_a_whole_snapshot_of_the_store() {
        let (_dir, state) = crate::testing::server().await;
        for n in 0..50 {
            // Values larger than one piece of the queue, so the answer comes in many.
            let value = format!("\"{}\"", "x".repeat(20_000 + n));
            state
                .store
                .put(&format!("k/{n:03}"), value.into_bytes())
                .unwrap();
        }
        let response = snapshot(State(state.clone())).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/x-ndjson"
        );
        let body = body_of(response).await;
        let summary = cj_store::snapshot::check(&body[..]).unwrap();
        assert_eq!(summary.revision, state.store.revision().unwrap());
        assert_eq!(summary.keys, state.store.range("").unwrap().len() as u64);
        assert_eq!(summary.bytes, body.len() as u64);
    }

    /// A store that copies itself with a tool of its own, as one on etcd would.
    struct CopiedElsewhere(EmbeddedStore);

    const ETCD: &str = "snapshots of an etcd store are taken with `etcdctl snapshot save`";

    impl Store for CopiedElsewhere {
        fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
            self.0.get(key)
        }
        fn range(&self, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
            self.0.range(prefix)
        }
        fn range_page(&self, prefix: &str, page: &Page) -> Result<Vec<KeyValue>, StoreError> {
            self.0.range_page(prefix, page)
        }
        fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<TxnOutcome, StoreError> {
            self.0.txn(compares, ops)
        }
        fn revision(&self) -> Result<u64, StoreError> {
            self.0.revision()
        }
        fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream, StoreError> {
            self.0.watch(prefix, after)
        }
        fn history(&self, prefix: &str, after: u64) -> Result<Vec<WatchEvent>, StoreError> {
            self.0.history(prefix, after)
        }
        fn compact(&self, revision: u64) -> Result<(), StoreError> {
            self.0.compact(revision)
        }
        fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
            self.0.grant_lease(ttl)
        }
        fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
            self.0.keep_alive(lease)
        }
        fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
            self.0.revoke_lease(lease)
        }
        fn snapshot(&self, _: &mut dyn Write) -> Result<SnapshotSummary, SnapshotError> {
            Err(SnapshotError::Unsupported(ETCD.into()))
        }
    }

    #[tokio::test]
    async fn a_store_with_its_own_copies_is_answered_501_naming_its_tool() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
        let state = ServerState::new(
            Arc::new(CopiedElsewhere(store)),
            "test".into(),
            None,
            crate::config::ServerConfig::default(),
            crate::state::StateOptions::default(),
        );
        let failure = snapshot(State(state)).await.unwrap_err();
        let response = failure.into_response();
        assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED);
        let body: serde_json::Value = serde_json::from_slice(&body_of(response).await).unwrap();
        assert_eq!(body["code"], "not_implemented");
        assert_eq!(body["error"], ETCD);
    }
}
