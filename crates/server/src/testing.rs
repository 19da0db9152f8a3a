//! What the server's unit tests share.

use std::sync::Arc;

use crate::state::ServerState;

/// A server state on a fresh store.
pub async fn server() -> (tempfile::TempDir, Arc<ServerState>) {
    let dir = tempfile::tempdir().unwrap();
    let store = cj_store::EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
    let state = ServerState::new(
        Arc::new(store),
        "test".into(),
        Some("host-1".into()),
        crate::config::ServerConfig::default(),
        crate::state::StateOptions::default(),
    );
    (dir, state)
}
