use std::collections::BTreeMap;
use std::sync::Arc;

use cj_api::agent::TaskKey;
use cj_store::StoreJson;

use super::publisher::Publisher;
use crate::keys;
use crate::state::{DesiredJob, ServerState};
use crate::testing::server;

/// A server with linked hosts `h1`, `h2` and `h3` (reached at 10.0.0.N) and its assignment
/// controller running.
async fn controlled() -> (tempfile::TempDir, Arc<ServerState>) {
    let (dir, state) = server().await;
    for n in 1..=3 {
        let host = format!("h{n}");
        state
            .hosts
            .joined(&host, Some(format!("10.0.0.{n}")), BTreeMap::new());
        state.links.link_without_agent(&host);
    }
    let (publisher, at) = Publisher::start(state.clone()).unwrap();
    tokio::spawn(publisher.run(at));
    (dir, state)
}

/// Pushes `service` with `jobs` (YAML list items) and writes its desired records straight to
/// the store, as any process on the same store could.
fn desire(state: &ServerState, service: &str, jobs: &str, generation: u64) {
    let source = format!("service: {service}\njobs:\n{jobs}");
    let pushed = state
        .push(
            "production",
            &format!("{service}.yaml"),
            &source,
            "alice",
            None,
        )
        .unwrap();
    let spec = cj_spec::parse_service("x.yaml", &source).unwrap();
    for job in &spec.jobs {
        let desired = DesiredJob {
            env: "production".into(),
            service: service.into(),
            job: job.name.clone(),
            version: pushed.version,
            since: String::new(),
            by: "alice".into(),
            task_versions: BTreeMap::new(),
            restart_generations: job
                .tasks
                .iter()
                .map(|task| (task.name.clone(), generation))
                .collect(),
            volume_sources: BTreeMap::new(),
        };
        let key = keys::desired("production", service, &job.name);
        state.store.put_json(&key, &desired).unwrap();
    }
}

fn task(service: &str, job: &str, task: &str) -> TaskKey {
    TaskKey {
        env: "production".into(),
        service: service.into(),
        job: job.into(),
        task: task.into(),
    }
}

#[tokio::test]
async fn a_write_to_the_store_by_anyone_reaches_the_assignments() {
    let (_dir, state) = controlled().await;
    desire(
        &state,
        "web",
        "  - name: web\n    image: web:1\n    instances: 2\n",
        0,
    );
    state.assignments_caught_up().await.unwrap();
    let published = state.scheduler.current().unwrap();
    let mut hosts: Vec<&str> = ["web-1", "web-2"]
        .iter()
        .map(|name| {
            let assignment = published.assignment_of(&task("web", "web", name));
            assignment.unwrap().declared_host.as_str()
        })
        .collect();
    hosts.sort();
    hosts.dedup();
    assert_eq!(hosts.len(), 2, "two instances spread over two hosts");

    state
        .store
        .delete(&keys::desired("production", "web", "web"))
        .unwrap();
    state.assignments_caught_up().await.unwrap();
    let published = state.scheduler.current().unwrap();
    assert_eq!(published.len(), 0);
    assert!(
        state
            .store
            .range(&keys::placements_of_service("production", "web"))
            .unwrap()
            .is_empty(),
        "placements of tasks no longer desired are forgotten"
    );
}

#[tokio::test]
async fn a_change_to_one_service_leaves_the_others_assignments_untouched() {
    let (_dir, state) = controlled().await;
    let job = |name: &str| format!("  - name: {name}\n    image: {name}:1\n    port: 8080\n");
    desire(&state, "a", &job("a"), 0);
    desire(&state, "b", &job("b"), 0);
    desire(&state, "c", &job("c"), 0);
    state.assignments_caught_up().await.unwrap();
    let before = state.scheduler.current().unwrap();
    let b_before = before.assignment_of(&task("b", "b", "b")).unwrap();
    let mut hosts: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            let assignment = before.assignment_of(&task(name, name, name)).unwrap();
            assignment.declared_host.clone()
        })
        .collect();
    hosts.sort();
    assert_eq!(
        hosts,
        ["h1", "h2", "h3"],
        "port 8080 is taken once per host, across services placed one at a time"
    );

    // A reload of `a`: its assignment changes, `b`'s is the very same one as before.
    desire(&state, "a", &job("a"), 1);
    state.assignments_caught_up().await.unwrap();
    let after = state.scheduler.current().unwrap();
    let a_after = after.assignment_of(&task("a", "a", "a")).unwrap();
    assert_eq!(a_after.restart_generation, 1);
    let b_after = after.assignment_of(&task("b", "b", "b")).unwrap();
    assert!(std::ptr::eq(b_before, b_after), "b was not recomputed");

    // A fourth service needing the port fits nowhere, and says why.
    desire(&state, "d", &job("d"), 0);
    state.assignments_caught_up().await.unwrap();
    assert_eq!(
        state
            .scheduler
            .unplaced_reason(&task("d", "d", "d"))
            .as_deref(),
        Some("port 8080 already used on every eligible host")
    );
}

#[tokio::test]
async fn a_service_that_names_a_moved_job_is_rendered_again() {
    let (_dir, state) = controlled().await;
    desire(
        &state,
        "db",
        "  - name: db\n    image: db:1\n    port: 5432\n    hosts: [h1]\n",
        0,
    );
    desire(
        &state,
        "api",
        "  - name: api\n    image: api:1\n    env: { DB: \"{{ addr('db/db') }}\" }\n",
        0,
    );
    state.assignments_caught_up().await.unwrap();
    let db_address = |state: &ServerState| {
        let published = state.scheduler.current().unwrap();
        let api = published.assignment_of(&task("api", "api", "api")).unwrap();
        api.spec.env.get("DB").cloned().unwrap()
    };
    assert_eq!(db_address(&state), "10.0.0.1:5432");

    // Only `db` changes (it may now run on h2 only); `api` follows it.
    desire(
        &state,
        "db",
        "  - name: db\n    image: db:1\n    port: 5432\n    hosts: [h2]\n",
        0,
    );
    state.assignments_caught_up().await.unwrap();
    assert_eq!(db_address(&state), "10.0.0.2:5432");
}

#[tokio::test]
async fn a_drain_written_to_the_store_moves_the_hosts_tasks() {
    let (_dir, state) = controlled().await;
    desire(&state, "web", "  - name: web\n    image: web:1\n", 0);
    state.assignments_caught_up().await.unwrap();
    let host_of = |state: &ServerState| {
        let published = state.scheduler.current().unwrap();
        let web = published.assignment_of(&task("web", "web", "web")).unwrap();
        web.declared_host.clone()
    };
    let first = host_of(&state);
    let drain = crate::hosts::listing::Drain {
        by: "alice".into(),
        since: String::new(),
    };
    state.store.put_json(&keys::drain(&first), &drain).unwrap();
    state.assignments_caught_up().await.unwrap();
    assert_ne!(host_of(&state), first);
    assert!(state.hosts.is_draining(&first));
}
