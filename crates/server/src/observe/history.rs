//! A job's history: every pushed version of its service, every container it ran and every
//! change in their lives.

use cj_api::{ContainerRecord, HistoryEvent, HistoryResponse};
use cj_store::{Page, StoreJson};

use crate::error::Failure;
use crate::keys;
use crate::state::ServerState;

impl ServerState {
    /// The newest `limit` versions, containers and events of a job, each list oldest first.
    pub fn history(
        &self,
        env: &str,
        target: &str,
        limit: usize,
    ) -> Result<HistoryResponse, Failure> {
        let resolved = self.resolve(env, target)?;
        let [job] = resolved.jobs.as_slice() else {
            return Err(Failure::BadRequest(format!(
                "history is kept per job; name one: {}",
                resolved
                    .jobs
                    .iter()
                    .map(|job| format!("{}/{job}", resolved.service))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        self.history_writer.flush();
        // Container records are keyed by id, not time: read them all (they are small) and keep
        // the newest.
        let mut containers: Vec<ContainerRecord> =
            self.store
                .range_json(&keys::containers(env, &resolved.service, job))?;
        containers.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        containers.drain(..containers.len().saturating_sub(limit));
        let mut events: Vec<HistoryEvent> = self.store.range_page_json(
            &keys::events(env, &resolved.service, job),
            &Page::newest(limit),
        )?;
        events.reverse();
        let mut versions = self.version_infos(env, &resolved.service, limit, None)?;
        versions.reverse();
        Ok(HistoryResponse {
            env: env.to_owned(),
            service: resolved.service.clone(),
            job: job.clone(),
            versions,
            containers,
            events,
        })
    }
}
