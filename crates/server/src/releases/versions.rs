//! Pushed versions: every push stores the file as written and its parsed form, under the next
//! version number, atomically (compare-and-swap on the `latest` pointer), so concurrent pushes
//! never share a number and a crash never leaves half a version. [`Versions`] reads them back,
//! parsed once and cached.

use cj_api::{PushResponse, VersionInfo};
use cj_spec::ServiceSpec;
use cj_store::{Compare, Op, Page, StoreJson, TxnOutcome};

use crate::base::now_rfc3339;
use crate::error::Failure;
use crate::keys;
use crate::state::ServerState;

pub mod record;
#[allow(unused_imports)]
pub(crate) use record::*;

impl ServerState {
    /// Parses and stores a new version. A rejected file changes nothing.
    pub fn push(
        &self,
        env: &str,
        file: &str,
        source: &str,
        user: &str,
        check_revision: Option<u64>,
    ) -> Result<PushResponse, Failure> {
        let record = self.check_env_writable(env)?.unwrap_or_default();
        let mut spec = cj_spec::parse_service(file, source).map_err(Failure::InvalidConfig)?;
        spec.map_hosts(&record.host_map);
        let vars = crate::envs::records::values(&record.vars);
        let job_exists = |service: &str, job: &str| self.job_in_env(env, service, job);
        let scope = cj_spec::TemplateScope {
            env,
            service: &spec.service,
            vars: &vars,
            job_exists: &job_exists,
        };
        cj_spec::check_templates(file, source, &scope).map_err(Failure::InvalidConfig)?;
        self.store_version(env, file, source, spec, user, check_revision)
    }

    /// Stores a parsed file as the service's next version, unless it is the latest version's
    /// file exactly (then nothing is stored, as `kubectl apply` and Nomad do). With
    /// `check_revision`, refuses if anything about the service changed after that revision
    /// (optimistic concurrency).
    pub fn store_version(
        &self,
        env: &str,
        file: &str,
        source: &str,
        spec: cj_spec::ServiceSpec,
        user: &str,
        check_revision: Option<u64>,
    ) -> Result<PushResponse, Failure> {
        if let Some(expected) = check_revision {
            let current = self.service_revision(env, &spec.service)?;
            if current > expected {
                return Err(Failure::Conflict(format!(
                    "service {} changed since revision {expected} (now {current}): run `diff` again",
                    spec.service
                )));
            }
        }
        loop {
            let next = self.next_version(env, file, source, &spec, user, None)?;
            if !next.stored() {
                return Ok(PushResponse {
                    env: env.to_owned(),
                    service: spec.service,
                    version: next.version,
                    previous: next.previous,
                    changed: false,
                    stored: false,
                    revision: self.store.revision()?,
                });
            }
            // Lost a race with another push: read the new latest and try again.
            if let TxnOutcome::Committed { revision } = self.store.txn(&next.compares, &next.ops)? {
                self.announce_version(env, &spec.service, next.version, user);
                return Ok(PushResponse {
                    env: env.to_owned(),
                    service: spec.service,
                    version: next.version,
                    previous: next.previous,
                    changed: true,
                    stored: true,
                    revision,
                });
            }
        }
    }

    /// The writes that store `source` as the service's next version, with the comparison that
    /// makes them fail if another version was stored meanwhile; none if `source` is the latest
    /// version's file exactly.
    pub fn next_version(
        &self,
        env: &str,
        file: &str,
        source: &str,
        spec: &ServiceSpec,
        user: &str,
        copied_from: Option<CopiedFrom>,
    ) -> Result<NextVersion, Failure> {
        let latest_key = keys::latest(env, &spec.service);
        let latest = self.store.get(&latest_key)?;
        let previous: Option<u64> = latest.as_ref().map(|kv| kv.json()).transpose()?;
        if let Some(previous) = previous
            && self.versions.get(env, &spec.service, previous)?.source == source
        {
            return Ok(NextVersion {
                version: previous,
                previous: Some(previous),
                compares: Vec::new(),
                ops: Vec::new(),
            });
        }
        let version = previous.unwrap_or(0) + 1;
        let record = VersionRecord {
            env: env.to_owned(),
            service: spec.service.clone(),
            version,
            file: file.to_owned(),
            source: source.to_owned(),
            spec: spec.clone(),
            pushed_at: now_rfc3339(),
            pushed_by: user.to_owned(),
            copied_from,
        };
        let compares = vec![Compare::mod_revision(
            latest_key.clone(),
            latest.as_ref().map(|kv| kv.mod_revision),
        )];
        let ops = vec![
            Op::put(
                keys::version(env, &spec.service, version),
                to_json(&record)?,
            ),
            Op::put(
                keys::version_info(env, &spec.service, version),
                to_json(&record.info())?,
            ),
            Op::put(latest_key, to_json(&version)?),
        ];
        Ok(NextVersion {
            version,
            previous,
            compares,
            ops,
        })
    }

    /// Ops hear of every new version, whoever made it (a push or an `update`), and agents
    /// pre-warm its images.
    pub fn announce_version(&self, env: &str, service: &str, version: u64, user: &str) {
        // A counter, not `publish_assignments`: a version changes no assignment, and publishing
        // would recompute placement and every host's assignments for nothing; the agents' pre-warm
        // tasks only need to look again.
        self.versions.announce_stored();
        self.notifier
            .send(crate::observe::notify::Notification::Push {
                env: env.to_owned(),
                service: service.to_owned(),
                version,
                user: user.to_owned(),
                at: now_rfc3339(),
            });
    }

    /// The last revision at which anything about the service changed: a push, `up`/`down`, or
    /// a deployment step.
    pub fn service_revision(&self, env: &str, service: &str) -> Result<u64, Failure> {
        let mut revision = self
            .store
            .get(&keys::latest(env, service))?
            .map(|kv| kv.mod_revision)
            .unwrap_or(0);
        for prefix in [
            keys::desired_of_service(env, service),
            keys::deployments(env, service),
        ] {
            for kv in self.store.range(&prefix)? {
                revision = revision.max(kv.mod_revision);
            }
        }
        Ok(revision)
    }

    pub fn latest_version(&self, env: &str, service: &str) -> Result<Option<u64>, Failure> {
        Ok(self.store.get_json(&keys::latest(env, service))?)
    }

    /// The names of every service pushed to `env`.
    pub fn service_names(&self, env: &str) -> Result<Vec<String>, Failure> {
        check_env_name(env)?;
        self.distinct_children(&keys::services(env))
    }

    /// Every (environment, service) pushed, in key order.
    pub fn all_services(&self) -> Result<Vec<(String, String)>, Failure> {
        let mut services = Vec::new();
        for env in self.distinct_children(keys::SERVICES_ALL)? {
            for service in self.distinct_children(&keys::services(&env))? {
                services.push((env.clone(), service));
            }
        }
        Ok(services)
    }

    /// The distinct first segments of the keys under `prefix` (`prefix/SEGMENT/...`). Skips
    /// from one segment to the next instead of reading every key under it: a service's keys
    /// hold whole files.
    pub(crate) fn distinct_children(&self, prefix: &str) -> Result<Vec<String>, Failure> {
        let mut names = Vec::new();
        let mut beyond = None;
        loop {
            let page = Page {
                limit: 1,
                newest_first: false,
                beyond,
            };
            let Some(kv) = self.store.range_page(prefix, &page)?.into_iter().next() else {
                return Ok(names);
            };
            let Some((name, _)) = kv.key[prefix.len()..].split_once('/') else {
                // A key directly under the prefix: step over it.
                beyond = Some(kv.key);
                continue;
            };
            // Past every key under this segment.
            beyond = Some(format!("{prefix}{name}/{}", char::MAX));
            names.push(name.to_owned());
        }
    }

    /// At most `limit` versions of a service, the newest first, older than `before` when given.
    /// Reads the small per-version summaries, never the files, so a long history is cheap.
    pub fn version_infos(
        &self,
        env: &str,
        service: &str,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<VersionInfo>, Failure> {
        let page = Page {
            beyond: before.map(|version| keys::version_info(env, service, version)),
            ..Page::newest(limit)
        };
        Ok(self
            .store
            .range_page_json(&keys::version_infos(env, service), &page)?)
    }

    /// Writes the summary of every version that has none: stores made before summaries were
    /// kept. Runs when the server starts, once: a marker records that it is done.
    pub fn write_missing_version_infos(&self) -> Result<(), Failure> {
        if self.store.get(keys::VERSION_INFOS_WRITTEN)?.is_some() {
            return Ok(());
        }
        let mut written = 0;
        for kv in self.store.range("services/")? {
            if !kv.key.contains("/versions/") {
                continue;
            }
            let record: VersionRecord = kv.json()?;
            let key = keys::version_info(&record.env, &record.service, record.version);
            if self.store.get(&key)?.is_none() {
                self.store.put(&key, to_json(&record.info())?)?;
                written += 1;
            }
        }
        if written > 0 {
            tracing::info!(
                written,
                "wrote the summaries of versions stored before them"
            );
        }
        self.store
            .put(keys::VERSION_INFOS_WRITTEN, to_json(&true)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use cj_store::StoreJson;

    use super::*;
    use crate::testing::server;

    fn file(version: u64) -> String {
        format!("service: web\njobs:\n  - name: web\n    image: web:{version}\n")
    }

    fn push(state: &ServerState, version: u64) -> PushResponse {
        state
            .push("production", "web.yaml", &file(version), "alice", None)
            .unwrap()
    }

    #[tokio::test]
    async fn versions_are_listed_newest_first_a_page_at_a_time() {
        let (_dir, state) = server().await;
        for version in 1..=7 {
            assert_eq!(push(&state, version).version, version);
        }
        let numbers = |limit, before| -> Vec<u64> {
            state
                .version_infos("production", "web", limit, before)
                .unwrap()
                .iter()
                .map(|info| info.version)
                .collect()
        };
        assert_eq!(numbers(3, None), [7, 6, 5]);
        assert_eq!(numbers(3, Some(5)), [4, 3, 2]);
        assert_eq!(numbers(3, Some(2)), [1]);
        assert_eq!(numbers(3, Some(1)), Vec::<u64>::new());
    }

    #[tokio::test]
    async fn the_same_file_again_stores_nothing() {
        let (_dir, state) = server().await;
        push(&state, 1);
        let revision = state.store.revision().unwrap();
        let again = push(&state, 1);
        assert_eq!(
            (again.version, again.stored, again.changed),
            (1, false, false)
        );
        assert_eq!(state.store.revision().unwrap(), revision);
        assert_eq!(push(&state, 2).version, 2);
        // Back to an older file is a change: it is the latest that counts.
        assert_eq!(push(&state, 1).version, 3);
    }

    #[tokio::test]
    async fn versions_stored_before_summaries_get_them_once_at_start() {
        let (_dir, state) = server().await;
        for version in 1..=3 {
            push(&state, version);
        }
        // As an older server left them: records without summaries, and no marker.
        for version in 1..=3 {
            state
                .store
                .delete(&keys::version_info("production", "web", version))
                .unwrap();
        }
        assert!(
            state
                .version_infos("production", "web", 10, None)
                .unwrap()
                .is_empty()
        );
        state.write_missing_version_infos().unwrap();
        let listed: Vec<(u64, String)> = state
            .version_infos("production", "web", 10, None)
            .unwrap()
            .into_iter()
            .map(|info| (info.version, info.pushed_by))
            .collect();
        assert_eq!(
            listed,
            [
                (3, "alice".into()),
                (2, "alice".into()),
                (1, "alice".into())
            ]
        );
        assert_eq!(
            state
                .store
                .get_json::<bool>(keys::VERSION_INFOS_WRITTEN)
                .unwrap(),
            Some(true)
        );
    }

    #[tokio::test]
    async fn services_are_listed_without_reading_their_versions() {
        let (_dir, state) = server().await;
        for service in ["b-svc", "a-svc", "c"] {
            let source = format!("service: {service}\njobs:\n  - name: j\n    image: i:1\n");
            state
                .push("production", "f.yaml", &source, "alice", None)
                .unwrap();
        }
        state
            .push(
                "staging",
                "f.yaml",
                "service: other\njobs:\n  - name: j\n",
                "bob",
                None,
            )
            .unwrap();
        assert_eq!(
            state.service_names("production").unwrap(),
            ["a-svc", "b-svc", "c"]
        );
        assert_eq!(state.service_names("staging").unwrap(), ["other"]);
        assert!(state.service_names("nothing").unwrap().is_empty());
        let all: Vec<String> = state
            .all_services()
            .unwrap()
            .into_iter()
            .map(|(env, service)| format!("{env}/{service}"))
            .collect();
        assert_eq!(
            all,
            [
                "production/a-svc",
                "production/b-svc",
                "production/c",
                "staging/other"
            ]
        );
    }
}
