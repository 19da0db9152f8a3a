//! What the conformance suite cannot ask of every backend, asked of the etcd one against a real
//! etcd: it fails fast while etcd is out of reach and recovers by itself, with what others
//! wrote meanwhile; it lists again after a compaction of what it missed; it keeps to its
//! namespace; and it can be called from async code. Every wait has a deadline.

#[path = "support/etcd.rs"]
mod etcd_server;
#[path = "support/proxy.rs"]
mod proxy;

use std::time::{Duration, Instant};

use coding_job_store::{
    EtcdOptions, EtcdStore, EtcdTls, Store, StoreError, WatchEvent, WatchKind, WatchStream,
};
use etcd_server::{EtcdServer, ServerTls};
use futures_util::StreamExt;
use proxy::Proxy;

/// How long a store may take to notice etcd is out of reach (a closed connection at once; a
/// silent one after the informer's 3 s silence limit) and then to answer a call.
const NOTICE: Duration = Duration::from_secs(10);
/// How long a store may take to be back after etcd is (its retries back off to 2 s).
const RECOVER: Duration = Duration::from_secs(20);

fn connect(endpoints: &[String], namespace: &str) -> EtcdStore {
    let options = EtcdOptions {
        namespace: namespace.into(),
    };
    EtcdStore::connect(endpoints, None, options).expect("the store connects to etcd")
}

fn unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Unavailable(_)))
}

/// Polls `condition` until it holds; panics after `deadline`.
fn eventually(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !condition() {
        assert!(Instant::now() < until, "{what}: not within {deadline:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn value(store: &EtcdStore, key: &str) -> Option<Vec<u8>> {
    store.get(key).ok().flatten().map(|kv| kv.value)
}

/// The next `count` items of `watch`, each within `deadline`.
fn next(watch: &mut WatchStream, count: usize) -> Vec<Result<WatchEvent, StoreError>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut seen = Vec::new();
        for _ in 0..count {
            match tokio::time::timeout(RECOVER, watch.next()).await {
                Ok(Some(item)) => seen.push(item),
                Ok(None) => panic!("the watch ended after {seen:?}"),
                Err(_) => panic!("no change within {RECOVER:?} after {seen:?}"),
            }
        }
        seen
    })
}

fn summary(items: Vec<Result<WatchEvent, StoreError>>) -> Vec<(String, WatchKind)> {
    items
        .into_iter()
        .map(|item| item.expect("a change"))
        .map(|event| (event.key, event.kind))
        .collect()
}

#[test]
fn a_stopped_etcd_makes_calls_fail_fast_then_the_store_recovers_with_others_writes() {
    let mut etcd = EtcdServer::start();
    let store = connect(&etcd.endpoints(), "/cj/");
    store.put("k", b"1".to_vec()).unwrap();
    let mut watch = store.watch("", store.revision().unwrap()).unwrap();
    etcd.stop();
    eventually("reads unavailable", NOTICE, || unavailable(store.get("k")));
    let started = Instant::now();
    assert!(unavailable(store.put("k", b"x".to_vec())));
    assert!(unavailable(store.range("")));
    assert!(unavailable(store.watch("", 0).map(|_| ())));
    assert!(unavailable(store.grant_lease(Duration::from_secs(5))));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "calls fail fast"
    );
    etcd.restart();
    let other = connect(&etcd.endpoints(), "/cj/");
    other.put("k", b"2".to_vec()).unwrap();
    other.put("new", b"3".to_vec()).unwrap();
    eventually("the store sees the other's writes", RECOVER, || {
        value(&store, "new").is_some()
    });
    assert_eq!(value(&store, "k").as_deref(), Some(&b"2"[..]));
    store.put("k", b"4".to_vec()).unwrap();
    assert_eq!(value(&store, "k").as_deref(), Some(&b"4"[..]));
    // Another process reads it once its own mirror has it.
    eventually("the other sees the store's write", RECOVER, || {
        value(&other, "k").as_deref() == Some(&b"4"[..])
    });
    // The watch opened before etcd stopped carries on without a gap.
    let expected = [
        ("k".to_owned(), WatchKind::Put),
        ("new".to_owned(), WatchKind::Put),
        ("k".to_owned(), WatchKind::Put),
    ];
    assert_eq!(summary(next(&mut watch, 3)), expected);
}

#[test]
fn a_cut_off_store_is_unavailable_then_catches_up_with_what_it_missed() {
    let etcd = EtcdServer::start();
    let proxy = Proxy::to(etcd.client_address());
    let store = connect(&proxy.endpoints(), "/cj/");
    let other = connect(&etcd.endpoints(), "/cj/");
    for key in ["a", "b", "c"] {
        store.put(key, b"1".to_vec()).unwrap();
    }
    let mut watch = store.watch("", store.revision().unwrap()).unwrap();
    proxy.cut();
    eventually("reads unavailable", NOTICE, || unavailable(store.get("a")));
    other.put("b", b"2".to_vec()).unwrap();
    other.delete("a").unwrap();
    other.put("t", b"1".to_vec()).unwrap();
    other.delete("t").unwrap();
    // Still out of reach: still unavailable, never the old view.
    assert!(unavailable(store.get("a")));
    proxy.open();
    eventually("the store is back", RECOVER, || store.get("a").is_ok());
    assert_eq!(store.get("a").unwrap(), None);
    assert_eq!(value(&store, "b").as_deref(), Some(&b"2"[..]));
    // Back once its keys are as etcd's; the changes that left no trace (`t`) may follow.
    eventually("the store reaches the other's revision", RECOVER, || {
        store.revision().ok() == other.revision().ok()
    });
    let expected = [
        ("b".to_owned(), WatchKind::Put),
        ("a".to_owned(), WatchKind::Delete),
        ("t".to_owned(), WatchKind::Put),
        ("t".to_owned(), WatchKind::Delete),
    ];
    assert_eq!(summary(next(&mut watch, 4)), expected);
}

#[test]
fn a_silent_connection_makes_the_store_unavailable() {
    let etcd = EtcdServer::start();
    let proxy = Proxy::to(etcd.client_address());
    let store = connect(&proxy.endpoints(), "/cj/");
    store.put("k", b"1".to_vec()).unwrap();
    proxy.stall();
    eventually("reads unavailable", NOTICE, || unavailable(store.get("k")));
    proxy.open();
    eventually("the store is back", RECOVER, || store.get("k").is_ok());
    store.put("k", b"2".to_vec()).unwrap();
    assert_eq!(value(&store, "k").as_deref(), Some(&b"2"[..]));
}

#[test]
fn a_compaction_while_the_store_is_behind_makes_it_list_again_and_its_watches_lag() {
    let etcd = EtcdServer::start();
    let proxy = Proxy::to(etcd.client_address());
    let store = connect(&proxy.endpoints(), "/cj/");
    let other = connect(&etcd.endpoints(), "/cj/");
    store.put("a", b"1".to_vec()).unwrap();
    store.put("b", b"1".to_vec()).unwrap();
    let behind = store.revision().unwrap();
    let mut watch = store.watch("", behind).unwrap();
    proxy.cut();
    eventually("reads unavailable", NOTICE, || unavailable(store.get("a")));
    other.delete("a").unwrap();
    other.put("b", b"2".to_vec()).unwrap();
    other.compact(other.revision().unwrap()).unwrap();
    proxy.open();
    eventually("the store is back", RECOVER, || store.get("b").is_ok());
    assert_eq!(store.get("a").unwrap(), None);
    assert_eq!(value(&store, "b").as_deref(), Some(&b"2"[..]));
    let lagged = next(&mut watch, 1).remove(0);
    assert!(matches!(lagged, Err(StoreError::Lagged)), "{lagged:?}");
    assert!(matches!(
        store.watch("", behind).map(|_| ()),
        Err(StoreError::Compacted { requested, .. }) if requested == behind
    ));
    // Watching from the current revision works again.
    let mut watch = store.watch("", store.revision().unwrap()).unwrap();
    other.put("c", b"1".to_vec()).unwrap();
    assert_eq!(
        summary(next(&mut watch, 1)),
        [("c".to_owned(), WatchKind::Put)]
    );
}

#[test]
fn keys_outside_the_namespace_are_not_seen_and_history_reaches_past_them() {
    let etcd = EtcdServer::start();
    let ours = connect(&etcd.endpoints(), "/ours/");
    let theirs = connect(&etcd.endpoints(), "/theirs/");
    let start = ours.revision().unwrap();
    ours.put("x", b"1".to_vec()).unwrap();
    theirs.put("x", b"2".to_vec()).unwrap();
    theirs.put("y", b"2".to_vec()).unwrap();
    drop(ours);
    // Connected after others wrote: its revision is the listing's, not one of its own changes.
    let ours = connect(&etcd.endpoints(), "/ours/");
    assert_eq!(ours.revision().unwrap(), start + 3);
    let keys: Vec<String> = ours
        .range("")
        .unwrap()
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, ["x"]);
    let history = ours.history("", start).unwrap();
    assert_eq!(
        summary(history.into_iter().map(Ok).collect()),
        [("x".to_owned(), WatchKind::Put)]
    );
    let mut watch = ours.watch("", start).unwrap();
    ours.put("z", b"1".to_vec()).unwrap();
    let seen = summary(next(&mut watch, 2));
    assert_eq!(
        seen,
        [
            ("x".to_owned(), WatchKind::Put),
            ("z".to_owned(), WatchKind::Put)
        ]
    );
    assert_eq!(value(&theirs, "x").as_deref(), Some(&b"2"[..]));
    assert_eq!(theirs.get("z").unwrap(), None);
}

/// A page of a listing, or a watch catching up after an outage, carries many values in one
/// answer: each value is within etcd's request limit (1.5 MiB), all of them far over gRPC's
/// default 4 MiB answer.
#[test]
fn many_large_values_are_listed_and_caught_up() {
    let etcd = EtcdServer::start();
    let proxy = Proxy::to(etcd.client_address());
    let store = connect(&proxy.endpoints(), "/cj/");
    let other = connect(&etcd.endpoints(), "/cj/");
    let large = vec![b'x'; 1 << 20];
    proxy.cut();
    eventually("reads unavailable", NOTICE, || {
        unavailable(store.get("big/0"))
    });
    for n in 0..8 {
        other.put(&format!("big/{n}"), large.clone()).unwrap();
    }
    proxy.open();
    eventually("the store caught up", RECOVER, || {
        store.get("big/7").is_ok_and(|kv| kv.is_some())
    });
    drop(store);
    let listed = connect(&etcd.endpoints(), "/cj/");
    assert_eq!(listed.range("big/").unwrap().len(), 8);
}

/// A value over etcd's request limit (1.5 MiB by default) is refused as an error of the store,
/// not as a passing unavailability worth retrying, and writes nothing.
#[test]
fn a_write_over_etcds_request_limit_is_refused() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd.endpoints(), "/cj/");
    let before = store.revision().unwrap();
    let refused = store.put("huge", vec![b'x'; 2 << 20]);
    assert!(
        matches!(refused, Err(StoreError::Backend(_))),
        "{refused:?}"
    );
    assert_eq!(store.revision().unwrap(), before);
    assert_eq!(store.get("huge").unwrap(), None);
}

/// The server calls the store from its async workers, sometimes without `block_in_place`.
#[test]
fn calls_from_async_workers_do_not_panic() {
    let etcd = EtcdServer::start();
    let store = std::sync::Arc::new(connect(&etcd.endpoints(), "/cj/"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let on_worker = store.clone();
    let seen = runtime.block_on(async move {
        let task = tokio::spawn(async move {
            let mut watch = on_worker.watch("", on_worker.revision()?)?;
            on_worker.put("k", b"1".to_vec())?;
            let lease = on_worker.grant_lease(Duration::from_secs(5))?;
            on_worker.keep_alive(lease)?;
            on_worker.revoke_lease(lease)?;
            let event = tokio::time::timeout(RECOVER, watch.next()).await;
            event.expect("a change in time").expect("a change")
        });
        task.await.expect("the task does not panic")
    });
    assert_eq!(seen.unwrap().key, "k");
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    current
        .block_on(async { store.put("k", b"2".to_vec()) })
        .unwrap();
}

#[test]
fn connecting_to_an_unreachable_etcd_fails_within_its_deadline() {
    let nobody = vec![format!("http://127.0.0.1:{}", etcd_server::free_port())];
    let started = Instant::now();
    let refused = EtcdStore::connect(&nobody, None, EtcdOptions::default()).map(|_| ());
    assert!(unavailable(refused), "connecting to nobody");
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// The informer asks etcd for a progress answer when the watch is quiet; etcd 3.4 must answer,
/// or the store would give its watch up every few seconds.
#[test]
fn a_quiet_store_stays_available() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd.endpoints(), "/cj/");
    store.put("k", b"1".to_vec()).unwrap();
    let quiet_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < quiet_until {
        assert_eq!(
            value(&store, "k").as_deref(),
            Some(&b"1"[..]),
            "available while quiet"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_store_speaks_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = certificates(dir.path());
    let etcd = EtcdServer::start_with_tls(server);
    let store = EtcdStore::connect(
        &etcd.endpoints(),
        Some(client.clone()),
        EtcdOptions::default(),
    )
    .expect("the store connects over TLS");
    store.put("k", b"1".to_vec()).unwrap();
    assert_eq!(value(&store, "k").as_deref(), Some(&b"1"[..]));
    let lease = store.grant_lease(Duration::from_secs(5)).unwrap();
    store.revoke_lease(lease).unwrap();
    // Without its certificate, etcd does not let the client in.
    let anonymous = EtcdTls {
        cert: None,
        key: None,
        ..client
    };
    let refused = EtcdStore::connect(&etcd.endpoints(), Some(anonymous), EtcdOptions::default());
    assert!(unavailable(refused.map(|_| ())));
}

/// A CA, a certificate it signed for etcd on 127.0.0.1, and one it signed for the client.
fn certificates(dir: &std::path::Path) -> (ServerTls, EtcdTls) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "etcd test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let signed = |name: &str, file: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let (cert_path, key_path) = (
            dir.join(format!("{file}.pem")),
            dir.join(format!("{file}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    };
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let (server_cert, server_key) = signed("127.0.0.1", "etcd");
    let (client_cert, client_key) = signed("coding-job", "client");
    let server = ServerTls {
        cert: server_cert,
        key: server_key,
        ca: ca_path.clone(),
    };
    let client = EtcdTls {
        ca: ca_path,
        cert: Some(client_cert),
        key: Some(client_key),
    };
    (server, client)
}
