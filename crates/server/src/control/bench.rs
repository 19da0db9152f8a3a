//! What `benches/one_change.rs` measures: the assignment controller over a store holding many
//! desired tasks, linked hosts without agents behind them, and the time from one service's
//! change being written to its assignments being published.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cj_store::StoreJson;

use super::publisher::Publisher;
use crate::keys;
use crate::state::{DesiredJob, ServerState, StateOptions};

/// A server with `services` services of `per_service` unpinned tasks each, placed over
/// `hosts` linked hosts, with its controller running.
pub struct PublishFixture {
    _dir: tempfile::TempDir,
    state: Arc<ServerState>,
    services: usize,
    per_service: usize,
    generation: u64,
}

const ENV: &str = "production";

fn service_name(n: usize) -> String {
    format!("s{n:06}")
}

impl PublishFixture {
    /// Builds the store in `under` (a tmpfs keeps the setup short; it does not change what is
    /// measured, which reads and writes little).
    pub async fn new(
        under: &std::path::Path,
        services: usize,
        per_service: usize,
        hosts: usize,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir_in(under)?;
        let store = cj_store::EmbeddedStore::open(&dir.path().join("store.redb"))?;
        let state = ServerState::new(
            Arc::new(store),
            "bench".into(),
            None,
            crate::config::ServerConfig::default(),
            StateOptions::default(),
        );
        for n in 1..=hosts {
            let host = format!("host-{n:04}");
            state.hosts.joined(
                &host,
                Some(format!("10.0.{}.{}", n / 250, n % 250)),
                BTreeMap::new(),
            );
            state.links.link_without_agent(&host);
        }
        let fixture = PublishFixture {
            _dir: dir,
            state,
            services,
            per_service,
            generation: 0,
        };
        for n in 0..services {
            fixture.push(n)?;
            fixture.desire(n)?;
        }
        let (publisher, at) =
            Publisher::start(fixture.state.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
        tokio::spawn(publisher.run(at));
        Ok(fixture)
    }

    fn push(&self, n: usize) -> anyhow::Result<()> {
        let service = service_name(n);
        let source = format!(
            "service: {service}\njobs:\n  - name: app\n    image: app:1\n    instances: {}\n    env: {{ SERVICE: {service} }}\n",
            self.per_service
        );
        self.state
            .push(ENV, &format!("{service}.yaml"), &source, "bench", None)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }

    fn desire(&self, n: usize) -> anyhow::Result<u64> {
        let service = service_name(n);
        let desired = DesiredJob {
            env: ENV.into(),
            service: service.clone(),
            job: "app".into(),
            version: 1,
            since: String::new(),
            by: "bench".into(),
            task_versions: BTreeMap::new(),
            restart_generations: (1..=self.per_service)
                .map(|task| (format!("app-{task}"), self.generation))
                .collect(),
            volume_sources: BTreeMap::new(),
        };
        Ok(self
            .state
            .store
            .put_json(&keys::desired(ENV, &service, "app"), &desired)?)
    }

    /// Every desired task, as published.
    pub fn published_tasks(&self) -> usize {
        self.state
            .scheduler
            .current()
            .map_or(0, |published| published.len())
    }

    /// One change: a reload of every task of one service (a new container each), written to
    /// the store. The time from the write to its assignments being published, and how long the
    /// controller's publish of it took.
    pub async fn one_change(&mut self, n: usize) -> anyhow::Result<(Duration, Duration)> {
        self.generation += 1;
        let started = Instant::now();
        let revision = self.desire(n % self.services)?;
        self.state
            .scheduler
            .wait_published(revision)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok((started.elapsed(), self.state.scheduler.last_publish_took()))
    }

    /// Everything placed and published again: what every change cost before publishing was
    /// incremental.
    pub async fn everything(&self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.state
            .scheduler
            .republish()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(started.elapsed())
    }
}
