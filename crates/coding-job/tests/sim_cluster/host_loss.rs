//! A host that goes silent, as `fencing.rs` and `placement.rs` lose hosts on the test bed: after
//! `--host-down-after` its unpinned tasks run on another host while its pinned ones wait for it,
//! and when it links again the stale copies still running on its engine stop. With
//! `on_host_lost: stop` the cut-off host stops its copy itself, before the server moves it.

use std::time::Duration;

use cj_runtime::labels;
use tokio::time::Instant;

use crate::support::{IMAGE, SimCluster, label};

const HOSTS: [&str; 3] = ["host-1", "host-2", "host-3"];
const DOWN_AFTER: Duration = Duration::from_secs(2);

/// `web` with two unpinned tasks (and `more` lines), and one `db` pinned to each host.
fn shop(more: &str) -> String {
    format!(
        "service: shop\njobs:\n\
         \x20 - name: web\n    image: {IMAGE}\n    instances: 2\n    command: [serve]\n{more}\
         \x20 - name: db\n    image: {IMAGE}\n    hosts: [host-1, host-2, host-3]\n    command: [store]\n"
    )
}

/// The hosts whose engines run `web`, and the one that runs none.
fn web_hosts(cluster: &SimCluster) -> (Vec<String>, String) {
    let busy: Vec<String> = cluster
        .running_everywhere("web")
        .into_iter()
        .map(|(host, _)| host)
        .collect();
    assert_eq!(busy.len(), 2, "{busy:?}");
    let free = HOSTS
        .iter()
        .find(|h| !busy.iter().any(|b| b == *h))
        .unwrap();
    (busy, (*free).to_owned())
}

/// Brings `shop` up on three hosts; the cluster, a host running a `web` task (with that task's
/// name) and the host running none.
async fn shop_up(more: &str) -> (SimCluster, String, String, String) {
    let cluster = SimCluster::start(&HOSTS, DOWN_AFTER).await;
    cluster.api.push("shop.yaml", &shop(more)).await;
    let up = cluster.api.operation("up", "shop").await;
    assert!(up.ok, "{up:?}");
    let (busy, free) = web_hosts(&cluster);
    let lost = busy[0].clone();
    let task = label(&cluster.running(&lost, "web")[0], labels::TASK).to_owned();
    (cluster, lost, task, free)
}

#[tokio::test(start_paused = true)]
async fn a_cut_hosts_task_moves_after_host_down_after_and_its_stale_copy_stops_when_it_links_again()
{
    let (cluster, cut, task, free) = shop_up("").await;
    let db_before = cluster.running(&cut, "db");
    let sampler = cluster.sampler();
    let cut_at = Instant::now();
    cluster.cut(&cut);

    let moved_at = cluster
        .until(
            "web to run on the free host",
            Duration::from_secs(20),
            |c| (!c.running(&free, "web").is_empty()).then(Instant::now),
        )
        .await;
    let took = moved_at - cut_at;
    // Down time counts from the host's last message, at most a ping (D/5) before the cut; the
    // move follows within a second.
    assert!(
        took >= DOWN_AFTER - DOWN_AFTER / 5 && took <= DOWN_AFTER + Duration::from_secs(1),
        "moved {took:?} after the cut"
    );
    // Cut off, the host runs on as it was: its copy of the task is stale, not stopped.
    assert_eq!(cluster.running(&cut, "web").len(), 1);
    assert_eq!(cluster.running(&cut, "db"), db_before);
    let status = cluster.api.status("shop/web").await;
    assert_eq!(status.len(), 2, "status shows each task once: {status:?}");
    let row = status.iter().find(|row| row.task == task).unwrap();
    assert_eq!(row.host, free, "{row:?}");

    tokio::time::sleep_until(cut_at + Duration::from_secs(10)).await;
    let healed_at = Instant::now();
    cluster.heal(&cut);
    cluster
        .until("the stale copy to stop", Duration::from_secs(10), |c| {
            c.running(&cut, "web").is_empty().then_some(())
        })
        .await;
    cluster.wait_for_hosts(&[cut.as_str()], "ready").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stale_until = sampler.last_running_on(&cut, "web").unwrap();
    assert!(
        stale_until < healed_at + Duration::from_secs(3),
        "the stale copy ran {:?} after the heal",
        stale_until - healed_at
    );
    // Never more than one copy of the task once the host heard the server again, and the
    // pinned task on the cut host was never touched nor started elsewhere.
    assert_eq!(
        sampler.most_copies_after("web", &task, healed_at + Duration::from_secs(3)),
        1
    );
    assert_eq!(cluster.running(&cut, "db"), db_before);
    assert!(
        sampler
            .seen("db")
            .iter()
            .all(|s| s.task == format!("db-{}", s.host))
    );
    let history = cluster.api.history("shop/web").await;
    let reason = format!("moved from {cut}: host down");
    assert!(
        history
            .events
            .iter()
            .any(|e| e.kind == "moved" && e.detail.as_deref() == Some(reason.as_str())),
        "{:?}",
        history.events
    );
}

#[tokio::test(start_paused = true)]
async fn an_agent_back_after_its_task_moved_stops_the_stale_copy_at_once() {
    let (mut cluster, lost, task, free) = shop_up("").await;
    let sampler = cluster.sampler();
    cluster.stop_agent(&lost).await;
    // Its containers run on without their agent.
    assert_eq!(cluster.running(&lost, "web").len(), 1);
    cluster
        .until(
            "web to run on the free host",
            Duration::from_secs(20),
            |c| (!c.running(&free, "web").is_empty()).then_some(()),
        )
        .await;
    let back_at = Instant::now();
    cluster.start_agent(&lost);
    cluster
        .until("the stale copy to stop", Duration::from_secs(10), |c| {
            c.running(&lost, "web").is_empty().then_some(())
        })
        .await;
    let stale_until = sampler.last_running_on(&lost, "web").unwrap();
    assert!(
        stale_until < back_at + Duration::from_secs(1),
        "the stale copy ran {:?} after its agent started",
        stale_until - back_at
    );
    cluster.wait_for_hosts(&[lost.as_str()], "ready").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cluster.running_everywhere("web").len(), 2);
    assert_eq!(
        sampler.most_copies_after("web", &task, back_at + Duration::from_secs(1)),
        1
    );
    // The pinned task was adopted as it ran.
    let db = cluster.running(&lost, "db");
    assert_eq!(db.len(), 1);
    assert_eq!(db[0].starts, 1);
}

#[tokio::test(start_paused = true)]
async fn on_host_lost_stop_stops_a_cut_off_copy_before_the_server_moves_it() {
    let (cluster, cut, task, free) = shop_up("    on_host_lost: stop\n").await;
    let sampler = cluster.sampler();
    let cut_at = Instant::now();
    cluster.cut(&cut);
    let moved = cluster
        .until(
            "web to run on the free host",
            Duration::from_secs(20),
            |_| sampler.first_running_on_after(&free, "web", cut_at),
        )
        .await;
    let stopped = sampler.last_running_on(&cut, "web").unwrap();
    assert!(
        stopped < moved,
        "two copies ran at once: the cut-off one was last seen {:?} after the cut, the new one \
         first seen {:?} after it",
        stopped - cut_at,
        moved - cut_at
    );
    assert_eq!(sampler.most_copies_after("web", &task, cut_at), 1);
    // Its pinned task, without the policy, runs on.
    assert_eq!(cluster.running(&cut, "db").len(), 1);
    cluster.heal(&cut);
    cluster.wait_for_hosts(&[cut.as_str()], "ready").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cluster.running_everywhere("web").len(), 2);
    assert!(cluster.running(&cut, "web").is_empty());
}
