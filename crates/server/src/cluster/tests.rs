//! Two servers on one store, in one process over loopback: one leads, the other forwards to it,
//! and the other leads once the first resigns.

use std::sync::Arc;
use std::time::Duration;

use cj_api::servers::ClusterMember;
use cj_store::{EmbeddedStore, OffWorker, Store};
use tokio::sync::oneshot;

use crate::edge::auth::AuthMode;
use crate::startup::{ClusterOptions, ServerOptions, StoreChoice};

struct Member {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start(name: &str, store: &Arc<dyn Store>) -> Member {
    let dir = tempfile::tempdir().unwrap();
    let options = ServerOptions {
        data_dir: dir.path().to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        config: Default::default(),
        tls: None,
        auth: AuthMode::Required,
        public_read: true,
        reset_admin_token: false,
        scheduling: Default::default(),
        cluster: ClusterOptions {
            name: Some(name.to_owned()),
            advertise: None,
            peer_tls: None,
            store: StoreChoice::Shared(store.clone()),
        },
    };
    let (ready, url) = oneshot::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(crate::cluster::run_server(
        options,
        move |started| {
            let _ = ready.send(started.url.clone());
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let url = tokio::time::timeout(Duration::from_secs(10), url)
        .await
        .expect("the server is ready within 10 s")
        .unwrap();
    Member {
        url,
        stop: Some(stop),
        done,
        _dir: dir,
    }
}

/// `GET /v1/servers`: the status (0 when the connection closed without an answer: one kept
/// open across a change of leadership ends with the term that served it) and the list.
async fn servers(url: &str) -> (u16, Option<Vec<ClusterMember>>) {
    let Ok(response) = reqwest::get(format!("{url}/v1/servers")).await else {
        return (0, None);
    };
    let status = response.status().as_u16();
    (status, response.json().await.ok())
}

fn leader(servers: &[ClusterMember]) -> Option<&str> {
    servers
        .iter()
        .find(|server| server.leader)
        .map(|server| server.name.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_leads_the_other_forwards_and_takes_over_when_it_resigns() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(OffWorker::new(
        EmbeddedStore::open(&dir.path().join("store.redb")).unwrap(),
    ));
    let mut first = start("first", &store).await;
    let second = start("second", &store).await;

    // Asked of either, the answer is the leader's: both registered, `first` leads.
    for url in [&first.url, &second.url] {
        let (status, listed) = servers(url).await;
        assert_eq!(status, 200, "GET /v1/servers of {url}");
        let listed = listed.unwrap();
        let names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["first", "second"]);
        assert_eq!(leader(&listed), Some("first"));
    }

    // `first` resigns: `second` leads at once (well before the lease's TTL) and answers.
    let resigned_at = std::time::Instant::now();
    first.stop.take().unwrap().send(()).unwrap();
    first.done.await.unwrap().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, listed) = servers(&second.url).await;
        if status == 200 && listed.as_deref().and_then(leader) == Some("second") {
            let listed = listed.unwrap();
            assert_eq!(listed.len(), 1, "the resigned server is gone: {listed:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "second never led (last answer {status})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        resigned_at.elapsed() < crate::cluster::session::SESSION_TTL,
        "took over after {:?}, not at once",
        resigned_at.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_is_gone_stops_leading_and_follows() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(OffWorker::new(
        EmbeddedStore::open(&dir.path().join("store.redb")).unwrap(),
    ));
    let first = start("first", &store).await;
    let second = start("second", &store).await;
    let (_, listed) = servers(&second.url).await;
    assert_eq!(listed.as_deref().and_then(leader), Some("first"));

    // What a leader cut off from the store lives through: its lease expires.
    let lease = store
        .get(crate::cluster::leadership::LEADER)
        .unwrap()
        .unwrap()
        .lease
        .unwrap();
    store.revoke_lease(lease).unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // Both answer, both say `second` leads, and `first` registered again (a new session).
        let mut seen = Vec::new();
        for url in [&first.url, &second.url] {
            let (status, listed) = servers(url).await;
            seen.push((status, listed));
        }
        let settled = seen.iter().all(|(status, listed)| {
            *status == 200
                && listed.as_deref().and_then(leader) == Some("second")
                && listed.as_ref().is_some_and(|l| l.len() == 2)
        });
        if settled {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never settled on the second server: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
