//! The agents make their engines match what the server wants, and keep them so: `up` makes
//! the containers, a container that dies is started again, `down` removes them, and neither a
//! restarted agent nor a restarted server restarts anything that runs.

use std::collections::BTreeSet;
use std::time::Duration;

use cj_runtime::{ContainerState, labels};

use crate::support::{IMAGE, SimCluster, label};

/// `web`: two unpinned tasks; `db`: one pinned to host-2.
fn shop() -> String {
    format!(
        "service: shop\njobs:\n\
         \x20 - name: web\n    image: {IMAGE}\n    instances: 2\n    command: [serve]\n\
         \x20 - name: db\n    image: {IMAGE}\n    run_on_host: host-2\n    command: [store]\n"
    )
}

/// Every container of every engine, with its host: (host, id, task, running, starts).
pub(crate) fn everything(cluster: &SimCluster) -> BTreeSet<(String, String, String, bool, u32)> {
    cluster
        .engines()
        .into_iter()
        .flat_map(|(host, engine)| {
            engine.containers().into_iter().map(move |c| {
                let task = label(&c, labels::TASK).to_owned();
                let running = c.state == ContainerState::Running;
                (host.clone(), c.id, task, running, c.starts)
            })
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn up_makes_the_engines_run_every_task_a_death_is_restarted_and_down_removes_them() {
    let cluster = SimCluster::start(&["host-1", "host-2"], Duration::from_secs(30)).await;
    cluster.api.push("shop.yaml", &shop()).await;
    let up = cluster.api.operation("up", "shop").await;
    assert!(up.ok && up.changed.len() == 3, "{up:?}");
    // Each task runs once, where it belongs, made from the pushed version.
    let web: Vec<String> = cluster
        .running_everywhere("web")
        .iter()
        .map(|(_, c)| label(c, labels::TASK).to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(web, ["web-1", "web-2"]);
    assert_eq!(cluster.running_everywhere("web").len(), 2);
    let db = cluster.running("host-2", "db");
    assert_eq!(db.len(), 1);
    assert!(cluster.running("host-1", "db").is_empty());
    for (_, container) in cluster.running_everywhere("web") {
        assert_eq!(label(&container, labels::VERSION), "1");
        assert_eq!(container.image, IMAGE);
    }

    // A death the agent did not cause: the same container runs again.
    assert!(cluster.engine("host-2").kill(&db[0].id, 137));
    cluster
        .until("the dead task to run again", Duration::from_secs(10), |c| {
            let now = c.engine("host-2").container(&db[0].id)?;
            (now.starts == 2 && now.state == ContainerState::Running).then_some(())
        })
        .await;
    let history = cluster.api.history("shop/db").await;
    assert!(
        history
            .events
            .iter()
            .any(|e| e.kind == "died" && e.exit_code == Some(137)),
        "{:?}",
        history.events
    );

    let down = cluster.api.operation("down", "shop").await;
    assert!(down.ok, "{down:?}");
    assert!(
        everything(&cluster).is_empty(),
        "{:?}",
        everything(&cluster)
    );
}

#[tokio::test(start_paused = true)]
async fn a_restarted_agent_or_server_adopts_what_runs_and_restarts_nothing() {
    let mut cluster = SimCluster::start(&["host-1", "host-2"], Duration::from_secs(30)).await;
    cluster.api.push("shop.yaml", &shop()).await;
    assert!(cluster.api.operation("up", "shop").await.ok);
    let before = everything(&cluster);
    assert_eq!(before.len(), 3);

    cluster.stop_agent("host-2").await;
    cluster.start_agent("host-2");
    cluster.wait_for_hosts(&["host-2"], "ready").await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(everything(&cluster), before);

    cluster.restart_server().await;
    cluster.wait_for_hosts(&["host-1", "host-2"], "ready").await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(everything(&cluster), before);
    let status = cluster.api.status("shop").await;
    assert_eq!(status.len(), 3, "{status:?}");
    assert!(
        status.iter().all(|row| row.state == "running"),
        "{status:?}"
    );
    // And `up` again finds everything as wanted.
    let up = cluster.api.operation("up", "shop").await;
    assert!(
        up.ok && up.changed.is_empty() && up.unchanged.len() == 3,
        "{up:?}"
    );
    assert_eq!(everything(&cluster), before);
}
