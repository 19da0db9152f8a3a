//! etcd's failures in the store's terms. etcd says what went wrong in a gRPC status (a code and
//! a message such as "etcdserver: requested lease not found"); the messages matched here are
//! those of etcd 3.4's `rpctypes`, stable across its releases.

use etcd_client::Error;
use tonic::Code;

use crate::types::StoreError;

/// A failure that has no meaning of its own to the store: unreachable or overloaded (the caller
/// retries later) or anything else.
pub(super) fn store_error(error: Error) -> StoreError {
    match &error {
        Error::GRpcStatus(status) => match status.code() {
            // No leader, a leader change, a request timeout, a closed connection.
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                StoreError::Unavailable(format!("etcd: {}", status.message()))
            }
            _ => StoreError::Backend(format!("etcd: {}", status.message())),
        },
        Error::TransportError(_) | Error::IoError(_) => {
            StoreError::Unavailable(format!("cannot reach etcd: {error}"))
        }
        _ => StoreError::Backend(format!("etcd: {error}")),
    }
}

fn message(error: &Error) -> Option<&str> {
    match error {
        Error::GRpcStatus(status) => Some(status.message()),
        Error::LeaseKeepAliveError(message) => Some(message),
        _ => None,
    }
}

/// "requested lease not found": a put, revoke or keep-alive named a lease that has ended.
pub(super) fn is_lease_not_found(error: &Error) -> bool {
    message(error).is_some_and(|message| message.contains("lease not found"))
}

/// "mvcc: required revision is a future revision": a compaction past the current revision.
pub(super) fn is_future_revision(error: &Error) -> bool {
    message(error).is_some_and(|message| message.contains("future revision"))
}

/// "mvcc: required revision has been compacted": a compaction at or before an earlier one.
pub(super) fn is_compacted(error: &Error) -> bool {
    message(error).is_some_and(|message| message.contains("has been compacted"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code, message: &str) -> Error {
        Error::GRpcStatus(tonic::Status::new(code, message))
    }

    #[test]
    fn etcd_failures_become_store_errors() {
        let lease = status(Code::NotFound, "etcdserver: requested lease not found");
        assert!(is_lease_not_found(&lease));
        assert!(is_lease_not_found(&Error::LeaseKeepAliveError(
            "lease not found".into()
        )));
        assert!(is_future_revision(&status(
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision"
        )));
        assert!(is_compacted(&status(
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted"
        )));
        let no_leader = store_error(status(Code::Unavailable, "etcdserver: no leader"));
        assert_eq!(
            no_leader.to_string(),
            "the store is unavailable: etcd: etcdserver: no leader"
        );
        let other = store_error(status(
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request",
        ));
        assert!(matches!(other, StoreError::Backend(_)), "{other:?}");
    }
}
