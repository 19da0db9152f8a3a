//! The real reconcile loop (`Agent::run`) against the simulated engine on tokio's paused clock:
//! what it creates, restarts, keeps, replaces and removes, and what it leaves alone. Waits are
//! on the agent's reports, each bounded; the clock only moves when every task waits, so the
//! times measured here are the loop's own, exactly.
//!
//! These prove the loop's decisions, not that Docker does what the engine promises: that is
//! what the tests against the real engine are for.

use std::sync::Arc;
use std::time::Duration;

use cj_runtime::{
    ContainerRuntime, ContainerState, CreateRequest, RuntimeError, SimMatch, SimOp, SimRuntime,
    labels,
};
use cj_spec::OnFailure;
use coding_job_agent::{
    Agent, AgentConfig, AgentReport, Assignment, ContainerEventKind, Health, Phase, TaskKey,
};
use support::running;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

mod support;

const IMAGE: &str = "app:1";
const HOST: &str = "sim-host";
const CLUSTER: &str = "sim-cluster";
/// How long any one awaited report may take, on the paused clock.
const WITHIN: Duration = Duration::from_secs(120);

/// A task of service `s` in env `e` whose job is `name`, from the job's YAML lines after its
/// name and image.
fn task(name: &str, more_yaml: &str) -> (TaskKey, cj_spec::TaskSpec) {
    let yaml = format!("service: s\njobs:\n  - name: {name}\n    image: {IMAGE}\n{more_yaml}");
    let spec = cj_spec::parse_service("t.yaml", &yaml).unwrap();
    let key = TaskKey {
        env: "e".into(),
        service: "s".into(),
        job: name.into(),
        task: name.into(),
    };
    (key, spec.jobs[0].tasks[0].clone())
}

fn assignment(name: &str, more_yaml: &str, on_failure: OnFailure) -> Assignment {
    let (key, spec) = task(name, more_yaml);
    Assignment::new(key, 1, spec, HOST.into(), on_failure)
}

/// The containers the engine was asked to create, start, stop or remove since call `from`.
fn container_changes_since(sim: &SimRuntime, from: usize) -> Vec<SimOp> {
    sim.calls()[from..]
        .iter()
        .map(|call| call.op)
        .filter(|op| {
            matches!(
                op,
                SimOp::Create | SimOp::Start | SimOp::Stop | SimOp::Remove
            )
        })
        .collect()
}

fn engine() -> SimRuntime {
    let sim = SimRuntime::new();
    sim.add_image(IMAGE);
    sim
}

/// One agent's loop on the engine, with the server's ends of its channels.
struct Running {
    assignments: watch::Sender<Option<Arc<Vec<Assignment>>>>,
    reports: mpsc::UnboundedReceiver<AgentReport>,
    /// Every report read so far.
    seen: Vec<AgentReport>,
    agent: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(sim: &SimRuntime) -> Running {
        let (report_sender, reports) = mpsc::unbounded_channel();
        let config = AgentConfig {
            host: HOST.into(),
            cluster: CLUSTER.into(),
            resync_interval: Duration::from_secs(30),
            stop_grace_seconds: 10,
            stats_interval: Duration::from_secs(3600),
            host_size: None,
            artifact_cache: Default::default(),
        };
        let agent = Arc::new(Agent::new(Arc::new(sim.clone()), config, report_sender));
        let (assignments, receiver) = watch::channel(None);
        Running {
            assignments,
            reports,
            seen: Vec::new(),
            agent: tokio::spawn(agent.run(receiver)),
        }
    }

    fn assign(&self, assignments: Vec<Assignment>) {
        self.assignments.send_replace(Some(Arc::new(assignments)));
    }

    /// The next report (after those already read) that `matches`, within [`WITHIN`].
    async fn wait_for(
        &mut self,
        what: &str,
        matches: impl Fn(&AgentReport) -> bool,
    ) -> AgentReport {
        let deadline = Instant::now() + WITHIN;
        loop {
            let report = match tokio::time::timeout_at(deadline, self.reports.recv()).await {
                Ok(Some(report)) => report,
                Ok(None) => panic!("the agent ended while waiting for {what}"),
                Err(_) => panic!("no report {what} within {WITHIN:?}; seen: {:#?}", self.seen),
            };
            self.seen.push(report.clone());
            if matches(&report) {
                return report;
            }
        }
    }

    /// Waits for `key` to be reported running with `config_hash`; returns its container.
    async fn running(&mut self, key: &TaskKey, config_hash: &str) -> String {
        let report = self
            .wait_for(&format!("of {key} running"), |report| {
                running(report, key, config_hash).is_some()
            })
            .await;
        running(&report, key, config_hash).unwrap()
    }

    /// Ends the loop (its assignments' sender gone) and waits for it.
    async fn stop(self) {
        drop(self.assignments);
        tokio::time::timeout(WITHIN, self.agent)
            .await
            .expect("the loop ends with its assignments")
            .unwrap();
    }
}

fn is_phase(report: &AgentReport, task: &TaskKey, wanted: impl Fn(&Phase) -> bool) -> bool {
    matches!(report, AgentReport::Phase { key, phase, .. } if key == task && wanted(phase))
}

fn container_event(report: &AgentReport, id: &str, kind: ContainerEventKind) -> bool {
    matches!(report, AgentReport::Container { event, .. }
        if event.container_id == id && event.kind == kind)
}

#[tokio::test(start_paused = true)]
async fn assigned_tasks_are_created_started_and_reported_running() {
    let sim = engine();
    let mut agent = Running::start(&sim);
    let web = assignment("web", "", OnFailure::Restart);
    let db = assignment("db", "    env: {A: b}\n", OnFailure::Restart);
    agent.assign(vec![web.clone(), db.clone()]);
    let web_id = agent.running(&web.key, &web.config_hash).await;
    let db_id = agent.running(&db.key, &db.config_hash).await;
    agent
        .wait_for("of a snapshot with both running", |report| {
            matches!(report, AgentReport::Snapshot { containers, .. }
                if containers.len() == 2 && containers.iter().all(|c| c.state == ContainerState::Running))
        })
        .await;

    let web_container = sim.container(&web_id).unwrap();
    assert_eq!(web_container.state, ContainerState::Running);
    assert_eq!(web_container.labels[labels::CLUSTER], CLUSTER);
    assert_eq!(web_container.labels[labels::CONFIG_HASH], web.config_hash);
    assert_eq!(web_container.labels[labels::HOST], HOST);
    assert_eq!(sim.container(&db_id).unwrap().labels[labels::TASK], "db");
    assert_eq!(sim.containers().len(), 2);
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_death_is_restarted_at_once_then_after_pauses_doubling_from_one_second() {
    let sim = engine();
    let run = Duration::from_millis(100);
    sim.die_after(SimMatch::Task("web".into()), 1, run);
    let mut agent = Running::start(&sim);
    let web = assignment("web", "", OnFailure::Restart);
    agent.assign(vec![web.clone()]);
    let id = agent.running(&web.key, &web.config_hash).await;
    agent
        .wait_for("of a backoff of 4 s", |report| {
            is_phase(report, &web.key, |phase| {
                matches!(phase, Phase::BackingOff { millis: 4000, .. })
            })
        })
        .await;
    agent
        .wait_for("of the fifth start", |report| {
            container_event(report, &id, ContainerEventKind::Started)
                && sim.container(&id).unwrap().starts == 5
        })
        .await;

    let starts: Vec<Instant> = sim
        .calls_of(SimOp::Start)
        .into_iter()
        .map(|call| call.at)
        .collect();
    let pauses: Vec<Duration> = starts
        .windows(2)
        .map(|pair| pair[1] - pair[0] - run)
        .collect();
    let expected = [0, 1000, 2000, 4000].map(Duration::from_millis);
    assert_eq!(pauses, expected, "restarted in place after each death");
    assert_eq!(sim.containers().len(), 1, "the same container every time");
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn on_failure_keep_leaves_the_dead_container_as_it_is() {
    let sim = engine();
    sim.die_after(SimMatch::Task("web".into()), 7, Duration::from_secs(1));
    let mut agent = Running::start(&sim);
    let web = assignment("web", "", OnFailure::Keep);
    agent.assign(vec![web.clone()]);
    let id = agent.running(&web.key, &web.config_hash).await;
    agent
        .wait_for("of the container kept", |report| {
            is_phase(report, &web.key, |phase| {
                matches!(phase, Phase::Kept { container_id, reason }
                    if *container_id == id && reason.contains("code 7"))
            })
        })
        .await;
    // Several resyncs later it is still there, dead, never started again.
    tokio::time::sleep(Duration::from_secs(120)).await;
    let kept = sim.container(&id).unwrap();
    assert_eq!(
        (kept.state, kept.exit_code, kept.starts),
        (ContainerState::Exited, Some(7), 1)
    );
    assert_eq!(sim.containers().len(), 1);
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_changed_config_with_a_port_stops_the_old_container_before_creating_the_new() {
    let sim = engine();
    let mut agent = Running::start(&sim);
    let v1 = assignment("web", "    port: 8080\n", OnFailure::Restart);
    agent.assign(vec![v1.clone()]);
    let old = agent.running(&v1.key, &v1.config_hash).await;

    let mut v2 = assignment(
        "web",
        "    port: 8080\n    env: {V: '2'}\n",
        OnFailure::Restart,
    );
    v2.version = 2;
    assert_ne!(v1.config_hash, v2.config_hash);
    // Both would need port 8080 on this host: the server says stop first.
    assert!(!v2.start_first);
    agent.assign(vec![v2.clone()]);
    let new = agent.running(&v2.key, &v2.config_hash).await;

    let calls = sim.calls();
    let stopped = calls
        .iter()
        .position(|call| call.op == SimOp::Stop && call.target == old)
        .expect("the old container was stopped");
    let new_name = sim.container(&new).unwrap().name;
    let created = calls
        .iter()
        .position(|call| call.op == SimOp::Create && call.target == new_name)
        .unwrap();
    assert!(
        stopped < created,
        "stopped before the replacement was created"
    );
    let old = sim.container(&old).unwrap();
    assert_eq!(old.state, ContainerState::Exited, "kept for its logs");
    assert_eq!(sim.container(&new).unwrap().state, ContainerState::Running);
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn start_first_keeps_the_old_container_until_the_new_one_is_healthy() {
    let sim = engine();
    sim.set_exec(&["ready"], 1, "");
    let mut agent = Running::start(&sim);
    let v1 = assignment("web", "", OnFailure::Restart);
    agent.assign(vec![v1.clone()]);
    let old = agent.running(&v1.key, &v1.config_hash).await;

    let check = "    check: {exec: [ready], interval: 1s, start_period: 10m}\n";
    let mut v2 = assignment("web", check, OnFailure::Restart);
    v2.version = 2;
    v2.start_first = true;
    agent.assign(vec![v2.clone()]);
    let new = agent.running(&v2.key, &v2.config_hash).await;
    // Its check fails for a while: the old container keeps serving.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(sim.container(&old).unwrap().state, ContainerState::Running);
    assert_eq!(sim.container(&new).unwrap().state, ContainerState::Running);
    assert!(sim.calls_of(SimOp::Stop).is_empty());

    sim.set_exec(&["ready"], 0, "");
    agent
        .wait_for("of the new container healthy", |report| {
            matches!(report, AgentReport::Health { container_id, health: Health::Healthy, .. }
                if *container_id == new)
        })
        .await;
    agent
        .wait_for("of the old container stopped", |report| {
            container_event(report, &old, ContainerEventKind::Stopped)
        })
        .await;
    assert_eq!(sim.container(&new).unwrap().starts, 1);
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_task_no_longer_assigned_is_stopped_and_removed() {
    let sim = engine();
    let mut agent = Running::start(&sim);
    let web = assignment("web", "", OnFailure::Restart);
    let db = assignment("db", "", OnFailure::Restart);
    agent.assign(vec![web.clone(), db.clone()]);
    let web_id = agent.running(&web.key, &web.config_hash).await;
    let db_id = agent.running(&db.key, &db.config_hash).await;

    agent.assign(vec![web.clone()]);
    agent
        .wait_for("of db removed", |report| {
            is_phase(report, &db.key, |phase| *phase == Phase::Removed)
        })
        .await;
    assert!(sim.container(&db_id).is_none());
    assert_eq!(
        sim.calls()
            .iter()
            .filter(|call| call.target == db_id)
            .map(|call| call.op)
            .filter(|op| matches!(op, SimOp::Stop | SimOp::Remove))
            .collect::<Vec<_>>(),
        [SimOp::Stop, SimOp::Remove]
    );
    assert_eq!(sim.container(&web_id).unwrap().starts, 1, "web left alone");
    agent.stop().await;
}

/// A container of this cluster's that a previous agent left running.
async fn leftover(sim: &SimRuntime, name: &str) -> String {
    let (key, spec) = task(name, "");
    let request = CreateRequest {
        name: format!("{name}_s_e_1"),
        image: IMAGE.into(),
        labels: [
            (labels::CLUSTER, CLUSTER),
            (labels::ENV, &key.env),
            (labels::SERVICE, &key.service),
            (labels::JOB, &key.job),
            (labels::TASK, &key.task),
            (labels::CONFIG_HASH, &spec.config_hash()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect(),
        task: spec,
        mounts: Vec::new(),
    };
    let id = sim.create(&request).await.unwrap();
    sim.start(&id).await.unwrap();
    id
}

#[tokio::test(start_paused = true)]
async fn before_the_first_assignments_nothing_is_touched() {
    let sim = engine();
    let id = leftover(&sim, "old").await;
    let calls_before = sim.calls().len();
    let mut agent = Running::start(&sim);
    // Several resyncs pass with no assignments yet.
    tokio::time::sleep(Duration::from_secs(300)).await;
    let changes = container_changes_since(&sim, calls_before);
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(sim.container(&id).unwrap().state, ContainerState::Running);

    // Assignments that do not name it, once they come, do remove it.
    agent.assign(Vec::new());
    agent
        .wait_for("of the leftover removed", |report| {
            container_event(report, &id, ContainerEventKind::Removed)
        })
        .await;
    assert!(sim.containers().is_empty());
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_agent_restarted_readopts_a_matching_container_without_restarting_it() {
    let sim = engine();
    let web = assignment("web", "", OnFailure::Restart);
    let mut first = Running::start(&sim);
    first.assign(vec![web.clone()]);
    let id = first.running(&web.key, &web.config_hash).await;
    first.stop().await;

    let calls_before = sim.calls().len();
    let mut second = Running::start(&sim);
    second.assign(vec![web.clone()]);
    assert_eq!(second.running(&web.key, &web.config_hash).await, id);
    tokio::time::sleep(Duration::from_secs(120)).await;
    let changes = container_changes_since(&sim, calls_before);
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(sim.container(&id).unwrap().starts, 1);
    second.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_create_is_reported_and_tried_again_after_a_pause() {
    let sim = engine();
    sim.fail_next(
        SimOp::Create,
        RuntimeError::InvalidConfig("no space left on device".into()),
    );
    let mut agent = Running::start(&sim);
    let web = assignment("web", "", OnFailure::Restart);
    agent.assign(vec![web.clone()]);
    agent
        .wait_for("of the failure", |report| {
            is_phase(report, &web.key, |phase| {
                matches!(phase, Phase::Failed { reason } if reason.contains("no space left"))
            })
        })
        .await;
    let failed_at = Instant::now();
    agent.running(&web.key, &web.config_hash).await;
    assert_eq!(
        failed_at.elapsed(),
        Duration::from_secs(1),
        "the first pause"
    );
    assert_eq!(sim.calls_of(SimOp::Create).len(), 2);
    agent.stop().await;
}
