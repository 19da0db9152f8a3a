//! Ports: `port: auto` gives a task a port of its own, and fixed ports of two environments must
//! not meet on one host.
//!
//! An allocated port is unique across the whole installation, not only on the task's host, so it
//! never depends on where the task is placed: a task that moves to another host keeps its port,
//! and a rollout or restart reuses it. Allocations are stored (`ports/PPPPP` names the task,
//! `task-ports/...` the port) and written with compare-and-swap, so two servers' requests never
//! hand out one port twice; they are released when the environment is destroyed.

use std::collections::BTreeSet;

use cj_api::agent::TaskKey;
use cj_store::{Compare, Op, StoreJson, TxnOutcome};

use crate::error::Failure;
use crate::keys;
use crate::releases::versions::to_json;
use crate::state::{DesiredTask, ServerState};

impl ServerState {
    /// The port allocated to `key`, allocating one from the range if it has none yet.
    pub fn allocated_port(&self, key: &TaskKey) -> Result<u16, Failure> {
        let task_key = keys::task_port(key);
        loop {
            if let Some(port) = self.store.get_json::<u16>(&task_key)? {
                return Ok(port);
            }
            let taken: BTreeSet<u16> = self
                .store
                .range(keys::PORTS)?
                .iter()
                .filter_map(|entry| entry.key.trim_start_matches(keys::PORTS).parse().ok())
                .collect();
            let Some(port) = self.port_range.clone().find(|port| !taken.contains(port)) else {
                return Err(Failure::Conflict(format!(
                    "no port is free in the range {}-{} for {key} (`port: auto`); destroy unused environments or widen --port-range",
                    self.port_range.start(),
                    self.port_range.end()
                )));
            };
            // Both keys must still be absent: another allocation for this task, or of this
            // port, makes the transaction fail and the loop read again.
            let compares = vec![
                Compare::absent(task_key.clone()),
                Compare::absent(keys::port(port)),
            ];
            let ops = vec![
                Op::put(keys::port(port), to_json(key)?),
                Op::put(task_key.clone(), to_json(&port)?),
            ];
            if let TxnOutcome::Committed { .. } = self.store.txn(&compares, &ops)? {
                tracing::info!(task = %key, env = key.env, port, "port allocated");
                return Ok(port);
            }
        }
    }

    /// Releases every port allocated to tasks of `env`; returns how many.
    pub fn release_ports(&self, env: &str) -> Result<usize, Failure> {
        let allocations = self.store.range(&keys::task_ports_of_env(env))?;
        let mut ops = Vec::new();
        for entry in &allocations {
            let port: u16 = entry.json()?;
            ops.push(Op::Delete {
                key: keys::port(port),
            });
            ops.push(Op::Delete {
                key: entry.key.clone(),
            });
        }
        if !ops.is_empty() {
            self.store.txn(&[], &ops)?;
        }
        Ok(allocations.len())
    }

    /// Refuses tasks about to start whose fixed port another environment's task already uses on
    /// the same host; `port: auto` or `--map-hosts` is the way out, and the message says so.
    pub fn check_fixed_ports(&self, starting: &[DesiredTask]) -> Result<(), Failure> {
        let pinned: Vec<&DesiredTask> = starting
            .iter()
            .filter(|task| !task.spec.auto_port && task.spec.port != 0)
            .filter(|task| task.spec.run_on_host.is_some())
            .collect();
        if pinned.is_empty() {
            return Ok(());
        }
        for desired in self.desired_jobs(keys::DESIRED_ALL)? {
            for other in self.raw_desired_tasks(&desired)? {
                if other.spec.auto_port || other.spec.port == 0 {
                    continue;
                }
                let Some(other_host) = self.scheduler.host_of(&other.key, &other.spec) else {
                    continue;
                };
                for task in &pinned {
                    let host = task.spec.run_on_host.as_deref().unwrap_or_default();
                    if task.key.env != other.key.env
                        && task.spec.port == other.spec.port
                        && host == other_host
                    {
                        return Err(Failure::Conflict(format!(
                            "port {} on host {host} is already used by {} in environment {}, so {} in {} cannot have it: give the job `port: auto`, or move it with `env create --map-hosts {host}=OTHER_HOST`",
                            task.spec.port, other.key, other.key.env, task.key, task.key.env
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ports_are_unique_stable_and_released_with_their_environment() {
        let (_dir, state) = crate::testing::server().await;
        let key = |env: &str, task: &str| TaskKey {
            env: env.into(),
            service: "s".into(),
            job: "j".into(),
            task: task.into(),
        };
        let first = state.allocated_port(&key("dev-1", "a")).unwrap();
        let second = state.allocated_port(&key("dev-1", "b")).unwrap();
        let other_env = state.allocated_port(&key("dev-2", "a")).unwrap();
        assert_ne!(first, second);
        assert_ne!(first, other_env);
        assert_eq!(state.allocated_port(&key("dev-1", "a")).unwrap(), first);
        assert_eq!(state.release_ports("dev-1").unwrap(), 2);
        assert_eq!(state.allocated_port(&key("dev-2", "a")).unwrap(), other_env);
        // A released port is given out again.
        assert_eq!(state.allocated_port(&key("dev-3", "a")).unwrap(), first);
    }
}
