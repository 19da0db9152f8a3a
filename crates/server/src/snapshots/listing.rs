//! `volumes`: every volume of every task that is up, with its host and its newest snapshot.

use std::collections::HashMap;

use cj_api::snapshots::{SnapshotRecord, VolumeRow};
use cj_store::StoreJson;

use crate::error::Failure;
use crate::keys;
use crate::state::{DesiredJob, ServerState};

impl ServerState {
    /// The volumes of the tasks `target` names in `env` (every service's without one).
    pub fn volume_rows(&self, env: &str, target: Option<&str>) -> Result<Vec<VolumeRow>, Failure> {
        let services = match target {
            Some(target) => vec![self.resolve(env, target)?],
            None => self
                .service_names(env)?
                .iter()
                .map(|service| self.resolve(env, service))
                .collect::<Result<_, _>>()?,
        };
        // (service, task, volume) -> its snapshots, newest first.
        let mut snapshots: HashMap<(String, String, String), Vec<SnapshotRecord>> = HashMap::new();
        for record in self.snapshot_records()? {
            if record.env == env {
                let key = (
                    record.service.clone(),
                    record.task.clone(),
                    record.volume.clone(),
                );
                snapshots.entry(key).or_default().push(record);
            }
        }
        let mut rows = Vec::new();
        for scope in services {
            for job in &scope.jobs {
                let desired: Option<DesiredJob> =
                    self.store
                        .get_json(&keys::desired(env, &scope.service, job))?;
                let Some(desired) = desired else { continue };
                for task in self.desired_tasks(&desired)? {
                    if scope
                        .task
                        .as_ref()
                        .is_some_and(|wanted| *wanted != task.key.task)
                    {
                        continue;
                    }
                    let host = self.scheduler.host_of(&task.key, &task.spec);
                    for volume in &task.spec.volumes {
                        let kept = snapshots
                            .get(&(
                                task.key.service.clone(),
                                task.key.task.clone(),
                                volume.name.clone(),
                            ))
                            .map(Vec::as_slice)
                            .unwrap_or_default();
                        rows.push(VolumeRow {
                            env: env.to_owned(),
                            service: task.key.service.clone(),
                            job: task.key.job.clone(),
                            task: task.key.task.clone(),
                            volume: volume.name.clone(),
                            mount: volume.mount.clone(),
                            host: host.clone(),
                            docker_name: task.key.volume_name(&volume.name, &self.cluster),
                            seed: volume.seed.as_deref().map(shown_seed),
                            last_snapshot: kept.first().cloned(),
                            snapshots: kept.len(),
                        });
                    }
                }
            }
        }
        Ok(rows)
    }
}

/// A seed as listings show it: a URL without its user, password and query.
fn shown_seed(seed: &str) -> String {
    let Some((scheme, rest)) = seed.split_once("://") else {
        return seed.to_owned();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let rest = match rest.split_once('/') {
        Some((authority, path)) => {
            let host = authority.rsplit('@').next().unwrap_or_default();
            format!("{host}/{path}")
        }
        None => rest.rsplit('@').next().unwrap_or_default().to_owned(),
    };
    format!("{scheme}://{rest}")
}

#[cfg(test)]
mod tests {
    use super::shown_seed;

    #[test]
    fn seeds_are_shown_without_credentials_or_query() {
        assert_eq!(
            shown_seed("https://u:p@files.internal/std/1.tar.gz?sig=abc"),
            "https://files.internal/std/1.tar.gz"
        );
        assert_eq!(shown_seed("/srv/seed.tar"), "/srv/seed.tar");
    }
}
