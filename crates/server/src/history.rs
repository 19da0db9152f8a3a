//! A job's history: every pushed version of its service, every container it ran and every
//! change in their lives.

use cj_api::{ContainerRecord, HistoryEvent, HistoryResponse};
use cj_store::StoreJson;

use crate::error::ApiFailure;
use crate::keys;
use crate::state::ServerState;

impl ServerState {
    pub fn history(&self, env: &str, target: &str) -> Result<HistoryResponse, ApiFailure> {
        let resolved = self.resolve(env, target)?;
        let [job] = resolved.jobs.as_slice() else {
            return Err(ApiFailure::BadRequest(format!(
                "history is kept per job; name one: {}",
                resolved
                    .jobs
                    .iter()
                    .map(|job| format!("{}/{job}", resolved.service))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let mut containers: Vec<ContainerRecord> =
            self.store
                .range_json(&keys::containers(env, &resolved.service, job))?;
        containers.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        let events: Vec<HistoryEvent> =
            self.store
                .range_json(&keys::events(env, &resolved.service, job))?;
        Ok(HistoryResponse {
            env: env.to_owned(),
            service: resolved.service.clone(),
            job: job.clone(),
            versions: self.version_infos(env, &resolved.service)?,
            containers,
            events,
        })
    }
}
