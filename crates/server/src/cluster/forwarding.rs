//! What a follower adds to a request it forwards to the leader: the caller's address, and the
//! cluster's relay secret that proves a server of the cluster forwarded it (see
//! `edge::relay`). The leader believes the address only with the secret.

use axum::http::HeaderMap;
use cj_store::{Compare, Op, Store, StoreError, TxnOutcome};

/// The caller's address, as the follower that forwarded the request saw it.
pub const FORWARDED_FOR: &str = "x-coding-job-forwarded-for";
/// The cluster's relay secret: proof that a [`FORWARDED_FOR`] comes from one of its servers.
pub const RELAY_SECRET: &str = "x-coding-job-relay";
/// Where the relay secret is kept: every server of the cluster reads it from the store.
pub const RELAY_SECRET_KEY: &str = "cluster/relay-secret";

/// The cluster's relay secret, made by the first server to start.
pub fn relay_secret(store: &dyn Store) -> Result<String, StoreError> {
    if let Some(kv) = store.get(RELAY_SECRET_KEY)? {
        return Ok(String::from_utf8_lossy(&kv.value).into_owned());
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| StoreError::Backend(error.to_string()))?;
    let secret = hex::encode(bytes);
    let made = store.txn(
        &[Compare::absent(RELAY_SECRET_KEY)],
        &[Op::put(RELAY_SECRET_KEY, secret.clone().into_bytes())],
    )?;
    match made {
        TxnOutcome::Committed { .. } => Ok(secret),
        // Another server made it first: theirs is the cluster's.
        TxnOutcome::Failed => relay_secret(store),
    }
}

/// The caller a request was forwarded for, if a server of this cluster forwarded it.
pub fn forwarded_for(headers: &HeaderMap, secret: &str) -> Option<String> {
    let given = headers.get(RELAY_SECRET)?.as_bytes();
    let same: bool = subtle::ConstantTimeEq::ct_eq(given, secret.as_bytes()).into();
    if !same {
        return None;
    }
    let address = headers.get(FORWARDED_FOR)?.to_str().ok()?;
    address
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| ip.to_string())
}
