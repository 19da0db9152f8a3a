//! Leases are etcd's own: etcd keeps their deadlines, renews them and deletes their keys when
//! they end, whether or not this process is running. etcd grants whole seconds (and no less
//! than its own minimum, about 1.5 times its election timeout), so a TTL is rounded up; the
//! TTL etcd keeps is what `keep_alive` answers.

use std::time::Duration;

use super::decode::header_revision;
use super::errors::{is_lease_not_found, store_error};
use super::mirror::Sight;
use super::{EtcdStore, REQUEST_DEADLINE};
use crate::types::{LeaseId, StoreError};

pub(super) fn grant(store: &EtcdStore, ttl: Duration) -> Result<LeaseId, StoreError> {
    store.shared.mirror.check_up()?;
    let seconds = whole_seconds(ttl);
    let granted = store.call(
        "a lease grant",
        REQUEST_DEADLINE,
        move |client| async move {
            client
                .lease_client()
                .grant(seconds, None)
                .await
                .map_err(store_error)
        },
    )?;
    if !granted.error().is_empty() {
        return Err(StoreError::Backend(format!(
            "etcd refused a lease: {}",
            granted.error()
        )));
    }
    Ok(LeaseId(granted.id()))
}

pub(super) fn keep_alive(store: &EtcdStore, lease: LeaseId) -> Result<Duration, StoreError> {
    store.shared.mirror.check_up()?;
    store.call(
        "a lease keep-alive",
        REQUEST_DEADLINE,
        move |client| async move {
            let ended = |error: etcd_client::Error| match is_lease_not_found(&error) {
                true => StoreError::LeaseNotFound(lease),
                false => store_error(error),
            };
            // Opening the stream renews the lease once, but etcd-client keeps that answer to itself;
            // a second renewal says the TTL.
            let (mut keeper, mut answers) = client
                .lease_client()
                .keep_alive(lease.0)
                .await
                .map_err(ended)?;
            keeper.keep_alive().await.map_err(ended)?;
            let answer =
                answers.message().await.map_err(ended)?.ok_or_else(|| {
                    StoreError::Unavailable("etcd closed a lease keep-alive".into())
                })?;
            // A TTL of 0: the lease expired or was revoked.
            match u64::try_from(answer.ttl()) {
                Ok(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
                _ => Err(StoreError::LeaseNotFound(lease)),
            }
        },
    )
}

pub(super) fn revoke(store: &EtcdStore, lease: LeaseId) -> Result<(), StoreError> {
    store.shared.mirror.check_up()?;
    let revoked =
        store.call(
            "a lease revoke",
            REQUEST_DEADLINE,
            move |client| async move {
                client.lease_client().revoke(lease.0).await.map_err(
                    |error| match is_lease_not_found(&error) {
                        true => StoreError::LeaseNotFound(lease),
                        false => store_error(error),
                    },
                )
            },
        )?;
    store.await_own(&[Sight::LeaseEnded {
        lease,
        at: header_revision(revoked.header()),
    }]);
    Ok(())
}

/// `ttl` in whole seconds, rounded up, at least one.
fn whole_seconds(ttl: Duration) -> i64 {
    let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(seconds.max(1)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ttl_is_rounded_up_to_whole_seconds() {
        for (ttl, seconds) in [
            (Duration::ZERO, 1),
            (Duration::from_millis(300), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_secs(60), 60),
        ] {
            assert_eq!(whole_seconds(ttl), seconds, "{ttl:?}");
        }
    }
}
