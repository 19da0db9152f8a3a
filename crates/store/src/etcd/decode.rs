//! etcd's key-values and watch events in the store's terms: names without the namespace,
//! revisions as `u64`, lease 0 as no lease.

use etcd_client::{Event, EventType};

use super::keys::{Name, Namespace};
use super::mirror::Observed;
use crate::types::{KeyValue, LeaseId, WatchEvent, WatchKind};

/// etcd's revisions and versions are never negative; a negative one would be a bug there.
fn unsigned(number: i64) -> u64 {
    u64::try_from(number).unwrap_or(0)
}

/// A key-value under the namespace (from a listing or a put event), or `None` outside it.
pub(super) fn observed_put(namespace: &Namespace, kv: &etcd_client::KeyValue) -> Option<Observed> {
    Some(match namespace.name(kv.key())? {
        Name::Ours(key) => Observed::Put(KeyValue {
            key,
            value: kv.value().to_vec(),
            create_revision: unsigned(kv.create_revision()),
            mod_revision: unsigned(kv.mod_revision()),
            version: unsigned(kv.version()),
            lease: (kv.lease() != 0).then_some(LeaseId(kv.lease())),
        }),
        Name::Undecodable(key) => Observed::Undecodable {
            key,
            revision: unsigned(kv.mod_revision()),
            deleted: false,
        },
    })
}

/// A change under the namespace, or `None` outside it.
pub(super) fn observed(namespace: &Namespace, event: &Event) -> Option<Observed> {
    let kv = event.kv()?;
    match event.event_type() {
        EventType::Put => observed_put(namespace, kv),
        // A delete's key-value carries the revision of the delete.
        EventType::Delete => Some(match namespace.name(kv.key())? {
            Name::Ours(key) => Observed::Delete {
                key,
                revision: unsigned(kv.mod_revision()),
            },
            Name::Undecodable(key) => Observed::Undecodable {
                key,
                revision: unsigned(kv.mod_revision()),
                deleted: true,
            },
        }),
    }
}

/// The revision of an event (of its transaction).
pub(super) fn revision(event: &Event) -> u64 {
    event.kv().map_or(0, |kv| unsigned(kv.mod_revision()))
}

/// A change as a watch reports it; `None` for keys that are not ours.
pub(super) fn watch_event(observed: Observed) -> Option<WatchEvent> {
    match observed {
        Observed::Put(kv) => Some(WatchEvent {
            revision: kv.mod_revision,
            key: kv.key,
            kind: WatchKind::Put,
            value: Some(kv.value),
        }),
        Observed::Delete { key, revision } => Some(WatchEvent {
            revision,
            key,
            kind: WatchKind::Delete,
            value: None,
        }),
        Observed::Undecodable { .. } => None,
    }
}

/// The revision in a response's header (the store's revision when etcd answered).
pub(super) fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> u64 {
    header.map_or(0, |header| unsigned(header.revision()))
}
