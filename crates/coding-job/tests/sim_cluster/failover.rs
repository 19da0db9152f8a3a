//! Agents given several servers (`--server http://a.localhost:7400,http://b.localhost:7400`): one
//! that refuses is passed over, and a link that moves from one server to another restarts
//! nothing.

use std::time::Duration;

use crate::reconcile::everything;
use crate::support::network::Dial;
use crate::support::{IMAGE, SimCluster};

/// Names under `localhost`: the in-process server is a `dev` on loopback, which answers no
/// other name.
const SERVERS: &str = "http://a.localhost:7400, http://b.localhost:7400";

fn shop() -> String {
    format!(
        "service: shop\njobs:\n\
         \x20 - name: web\n    image: {IMAGE}\n    instances: 2\n    command: [serve]\n"
    )
}

/// The dials `host`'s agent made, from the `skip`th on: (server, connected).
fn dials_of(cluster: &SimCluster, host: &str, skip: usize) -> Vec<(String, bool)> {
    cluster
        .network
        .dials()
        .into_iter()
        .filter(|dial: &Dial| dial.host == host)
        .skip(skip)
        .map(|dial| (dial.server, dial.connected))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn an_agent_links_through_the_second_server_when_the_first_refuses() {
    let cluster = SimCluster::start_with_servers(
        &["host-1"],
        Duration::from_secs(30),
        SERVERS,
        &["a.localhost"],
    )
    .await;
    assert_eq!(
        dials_of(&cluster, "host-1", 0),
        [
            ("a.localhost".to_owned(), false),
            ("b.localhost".to_owned(), true)
        ]
    );
    cluster.api.push("shop.yaml", &shop()).await;
    assert!(cluster.api.operation("up", "shop").await.ok);
    assert_eq!(cluster.running("host-1", "web").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_moves_to_another_server_restarts_nothing() {
    let mut cluster = SimCluster::start_with_servers(
        &["host-1", "host-2"],
        Duration::from_secs(30),
        SERVERS,
        &[],
    )
    .await;
    cluster.api.push("shop.yaml", &shop()).await;
    assert!(cluster.api.operation("up", "shop").await.ok);
    let before = everything(&cluster);
    assert_eq!(before.len(), 2);
    let dialled = |cluster: &SimCluster, host| dials_of(cluster, host, 0).len();
    let (from_1, from_2) = (dialled(&cluster, "host-1"), dialled(&cluster, "host-2"));
    for host in ["host-1", "host-2"] {
        assert!(
            dials_of(&cluster, host, 0)
                .iter()
                .all(|(server, _)| server == "a.localhost"),
            "{host}: {:?}",
            dials_of(&cluster, host, 0)
        );
    }

    // a goes away for good; another server of the installation answers as b.
    cluster.network.refuse("a.localhost");
    cluster.restart_server().await;
    cluster.wait_for_hosts(&["host-1", "host-2"], "ready").await;
    // The next server is dialled first, at once: a is not tried again.
    assert_eq!(
        dials_of(&cluster, "host-1", from_1),
        [("b.localhost".to_owned(), true)]
    );
    assert_eq!(
        dials_of(&cluster, "host-2", from_2),
        [("b.localhost".to_owned(), true)]
    );
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(everything(&cluster), before);
    let up = cluster.api.operation("up", "shop").await;
    assert!(up.ok && up.changed.is_empty(), "{up:?}");
    assert_eq!(everything(&cluster), before);
}
