//! What the server's unit tests share.

use std::sync::Arc;

use crate::state::ServerState;

/// A server state on a fresh store. (The Docker engine is only connected to, never used.)
pub async fn server() -> (tempfile::TempDir, Arc<ServerState>) {
    let dir = tempfile::tempdir().unwrap();
    let store = cj_store::EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
    let runtime = Arc::new(cj_runtime::DockerRuntime::connect().await.unwrap());
    let state = ServerState::new(
        Arc::new(store),
        "test".into(),
        "host-1".into(),
        runtime,
        crate::config::ServerConfig::default(),
    );
    (dir, state)
}
