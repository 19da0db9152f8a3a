//! Rendering a task's templates for where it runs: its environment's variables, its port, and
//! the addresses of the jobs it names (`{{ addr("db") }}`).
//!
//! Versions keep the file as written, so one file serves every environment; a task is rendered
//! each time the server reads what it wants (`ServerState::desired_tasks`), and the rendered
//! configuration is what the config hash is taken of. A variable that changes, or a job that
//! moves, therefore changes exactly the tasks that use it, and only those are replaced.

use std::collections::{BTreeMap, BTreeSet};

use cj_api::agent::TaskKey;
use cj_spec::RenderContext;
use cj_store::StoreJson;

use crate::error::Failure;
use crate::keys;
use crate::state::{DesiredJob, DesiredTask, ServerState};

/// A job, by environment, service and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobRef {
    pub env: String,
    pub service: String,
    pub job: String,
}

impl ServerState {
    /// Renders `tasks` in place, reading each environment's variables once. A template that
    /// cannot be rendered leaves its task as written with the reason in `render_error` (it is
    /// then not assigned); a store failure is an error.
    pub fn render_tasks(&self, tasks: &mut [DesiredTask]) -> Result<(), Failure> {
        self.render_tasks_noting(tasks, &mut BTreeSet::new())
    }

    /// [`ServerState::render_tasks`], adding to `named` every job whose addresses the templates
    /// asked for: when one of those moves, these tasks must be rendered again.
    pub fn render_tasks_noting(
        &self,
        tasks: &mut [DesiredTask],
        named: &mut BTreeSet<JobRef>,
    ) -> Result<(), Failure> {
        let mut values: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for task in tasks.iter_mut().filter(|task| task.spec.needs_rendering()) {
            if !values.contains_key(&task.key.env) {
                let vars = self
                    .env_record(&task.key.env)?
                    .map(|record| crate::envs::records::values(&record.vars))
                    .unwrap_or_default();
                values.insert(task.key.env.clone(), vars);
            }
            self.render(task, &values[&task.key.env], named)?;
        }
        Ok(())
    }

    /// Renders one task with its environment's variables `vars`.
    fn render(
        &self,
        task: &mut DesiredTask,
        vars: &BTreeMap<String, String>,
        named: &mut BTreeSet<JobRef>,
    ) -> Result<(), Failure> {
        let record = self
            .versions
            .get(&task.key.env, &task.key.service, task.version)?;
        let Some(job) = record.spec.job(&task.key.job) else {
            return Ok(());
        };
        let env = task.key.env.clone();
        let service = task.key.service.clone();
        let lookup_error = std::cell::RefCell::new(None);
        let asked = std::cell::RefCell::new(Vec::new());
        let addr = |target_service: &str, target_job: &str| -> Vec<String> {
            let target_service = if target_service.is_empty() {
                service.as_str()
            } else {
                target_service
            };
            asked.borrow_mut().push(JobRef {
                env: env.clone(),
                service: target_service.to_owned(),
                job: target_job.to_owned(),
            });
            match self.job_addresses(&env, target_service, target_job) {
                Ok(addresses) => addresses,
                Err(error) => {
                    *lookup_error.borrow_mut() = Some(error.to_string());
                    Vec::new()
                }
            }
        };
        let context = RenderContext {
            env: &env,
            vars,
            addr: &addr,
        };
        match cj_spec::render_task(&service, job, &task.spec, &context) {
            Ok(rendered) => {
                task.spec = rendered;
                task.render_error = None;
            }
            Err(reason) => task.render_error = Some(reason),
        }
        named.extend(asked.into_inner());
        if let Some(error) = lookup_error.into_inner() {
            return Err(Failure::Internal(error));
        }
        Ok(())
    }

    /// `HOST:PORT` of every placed task of a job that is up in `env`, in task order: what
    /// `{{ addr("job") }}` renders to and `env run` exports. Empty for a job that is not up.
    pub fn job_addresses(
        &self,
        env: &str,
        service: &str,
        job: &str,
    ) -> Result<Vec<String>, Failure> {
        let Some(desired) = self
            .store
            .get_json::<DesiredJob>(&keys::desired(env, service, job))?
        else {
            return Ok(Vec::new());
        };
        let mut addresses = Vec::new();
        for task in self.raw_desired_tasks(&desired)? {
            if task.spec.port == 0 {
                continue;
            }
            if let Some(address) = self.task_host_address(&task.key, &task.spec) {
                addresses.push(format!("{address}:{}", task.spec.port));
            }
        }
        Ok(addresses)
    }

    /// The address a task's host is reached at, if the task has a host and the host is known.
    pub fn task_host_address(&self, key: &TaskKey, spec: &cj_spec::TaskSpec) -> Option<String> {
        let host = self.scheduler.host_of(key, spec)?;
        self.host_address(&host)
    }

    /// The address a host is reached at: what the agent running its tasks advertised or
    /// connected from.
    pub fn host_address(&self, host: &str) -> Option<String> {
        self.hosts.address_of(self.serving_host(host))
    }
}
