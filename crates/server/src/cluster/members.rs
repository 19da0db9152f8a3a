//! The servers of a cluster: each puts `servers/NAME` with its session's lease when it starts,
//! so the key lives exactly as long as the server does. `coding-job servers` lists them, with
//! the one that leads.

use std::sync::Arc;

use cj_api::servers::ClusterMember;
use cj_store::{Op, Store, StoreError, StoreJson};
use serde::{Deserialize, Serialize};

use super::leadership::current_leader;
use super::session::{Session, call};

pub const SERVERS: &str = "servers/";

/// The value of `servers/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRecord {
    pub name: String,
    /// Where its API is reached.
    pub address: String,
    /// The coding-job version it runs.
    pub version: String,
    /// When it started (RFC 3339).
    pub since: String,
}

impl ServerRecord {
    pub fn new(name: &str, address: &str) -> ServerRecord {
        ServerRecord {
            name: name.to_owned(),
            address: address.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            since: crate::base::now_rfc3339(),
        }
    }
}

/// Puts this server's record with the session's lease.
pub async fn register(
    store: &Arc<dyn Store>,
    session: &Session,
    record: &ServerRecord,
) -> Result<(), StoreError> {
    let key = format!("{SERVERS}{}", record.name);
    let value = serde_json::to_vec(record).map_err(StoreError::encode)?;
    let lease = session.lease();
    call(store, move |store| {
        store
            .txn(&[], &[Op::put_with_lease(key, value, lease)])
            .map(drop)
    })
    .await
}

/// Every registered server, the leader marked; by name.
pub fn list(store: &dyn Store) -> Result<Vec<ClusterMember>, StoreError> {
    let leader = current_leader(store)?;
    let records: Vec<ServerRecord> = store.range_json(SERVERS)?;
    Ok(records
        .into_iter()
        .map(|record| {
            let leads = leader.as_ref().is_some_and(|l| l.name == record.name);
            ClusterMember {
                leader: leads,
                leader_since: leader.as_ref().filter(|_| leads).map(|l| l.since.clone()),
                name: record.name,
                address: record.address,
                since: record.since,
                version: record.version,
            }
        })
        .collect())
}
