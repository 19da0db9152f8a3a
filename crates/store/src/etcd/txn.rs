//! Transactions: the store's comparisons and writes as one etcd Txn, and what to wait for before
//! answering, so that the caller's next read (from the mirror) sees what it just did.
//!
//! A committed transaction that changed something waits for the mirror to reach its revision.
//! A failed one also reads the compared keys (in etcd's `else` branch, in the same
//! transaction) and waits until the mirror shows them as etcd did, so a compare-and-swap that
//! lost a race reads the winner's value on its next try instead of failing again on a stale one.

use etcd_client::{Client, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse};

use super::decode::header_revision;
use super::errors::{is_lease_not_found, store_error};
use super::keys::Namespace;
use super::mirror::Sight;
use super::{EtcdStore, REQUEST_DEADLINE, kv_client};
use crate::compare::{Compare, CompareOp, CompareTarget};
use crate::types::{LeaseId, Op, StoreError, TxnOutcome};

pub(super) fn txn(
    store: &EtcdStore,
    compares: &[Compare],
    ops: &[Op],
) -> Result<TxnOutcome, StoreError> {
    store.shared.mirror.check_up()?;
    let namespace = &store.shared.namespace;
    let read_back = GetOptions::new().with_keys_only();
    let request = Txn::new()
        .when(
            compares
                .iter()
                .map(|compare| condition(namespace, compare))
                .collect::<Vec<_>>(),
        )
        .and_then(
            ops.iter()
                .map(|op| write(namespace, op))
                .collect::<Vec<_>>(),
        )
        .or_else(
            compares
                .iter()
                .map(|compare| TxnOp::get(namespace.key(&compare.key), Some(read_back.clone())))
                .collect::<Vec<_>>(),
        );
    let mut leases: Vec<LeaseId> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Put { lease, .. } => *lease,
            Op::Delete { .. } => None,
        })
        .collect();
    leases.sort();
    leases.dedup();
    let response = store.call(
        "a transaction",
        REQUEST_DEADLINE,
        move |client| async move {
            match kv_client(&client).txn(request).await {
                Ok(response) => Ok(response),
                Err(error) if is_lease_not_found(&error) => Err(StoreError::LeaseNotFound(
                    ended_lease(client, &leases).await,
                )),
                Err(error) => Err(store_error(error)),
            }
        },
    )?;
    let at = header_revision(response.header());
    if !response.succeeded() {
        store.await_own(&failed_sights(compares, &response, at));
        return Ok(TxnOutcome::Failed);
    }
    // A delete of a missing key changes nothing, and etcd then moves no revision.
    let changed = response.op_responses().iter().any(|answer| match answer {
        TxnOpResponse::Put(_) => true,
        TxnOpResponse::Delete(deleted) => deleted.deleted() > 0,
        TxnOpResponse::Get(_) | TxnOpResponse::Txn(_) => false,
    });
    if changed {
        store.await_own(&[Sight::Revision(at)]);
    }
    Ok(TxnOutcome::Committed { revision: at })
}

/// What the compared keys were when the comparisons failed (read back by the `else` branch).
fn failed_sights(compares: &[Compare], response: &TxnResponse, at: u64) -> Vec<Sight> {
    compares
        .iter()
        .zip(response.op_responses())
        .map(|(compare, answer)| {
            let found = match answer {
                TxnOpResponse::Get(found) => found.kvs().first().map(|kv| kv.mod_revision()),
                _ => None,
            };
            Sight::Key {
                key: compare.key.clone(),
                mod_revision: found.map(|revision| u64::try_from(revision).unwrap_or(0)),
                at,
            }
        })
        .collect()
}

/// The lease of `leases` that etcd no longer has; etcd's error does not name it. With one lease
/// (as nearly always) it is that one; otherwise each is asked after, and the first that etcd
/// reports gone (a TTL of -1) is named.
async fn ended_lease(client: Client, leases: &[LeaseId]) -> LeaseId {
    if let [lease] = leases {
        return *lease;
    }
    let mut lease_client = client.lease_client();
    for lease in leases {
        match lease_client.time_to_live(lease.0, None).await {
            Ok(status) if status.ttl() < 0 => return *lease,
            Err(error) if is_lease_not_found(&error) => return *lease,
            _ => {}
        }
    }
    leases.first().copied().unwrap_or(LeaseId(0))
}

fn condition(namespace: &Namespace, compare: &Compare) -> etcd_client::Compare {
    let key = namespace.key(&compare.key);
    let op = match compare.op {
        CompareOp::Equal => etcd_client::CompareOp::Equal,
        CompareOp::NotEqual => etcd_client::CompareOp::NotEqual,
        CompareOp::Greater => etcd_client::CompareOp::Greater,
        CompareOp::Less => etcd_client::CompareOp::Less,
    };
    let number = |number: u64| i64::try_from(number).unwrap_or(i64::MAX);
    match &compare.target {
        CompareTarget::Value(value) => etcd_client::Compare::value(key, op, value.clone()),
        CompareTarget::Version(version) => etcd_client::Compare::version(key, op, number(*version)),
        CompareTarget::CreateRevision(revision) => {
            etcd_client::Compare::create_revision(key, op, number(*revision))
        }
        CompareTarget::ModRevision(revision) => {
            etcd_client::Compare::mod_revision(key, op, number(*revision))
        }
    }
}

fn write(namespace: &Namespace, op: &Op) -> TxnOp {
    match op {
        Op::Put { key, value, lease } => {
            let options = lease.map(|lease| PutOptions::new().with_lease(lease.0));
            TxnOp::put(namespace.key(key), value.clone(), options)
        }
        Op::Delete { key } => TxnOp::delete(namespace.key(key), None),
    }
}
