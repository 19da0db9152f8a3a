//! The conditions the `alerts:` rules look for, read from the server's state as it is now:
//! what `alerts` fires and resolves alerts from.

use std::collections::HashSet;
use std::time::Duration;

use cj_api::agent::TaskKey;

use crate::base::lock;
use crate::error::Failure;
use crate::keys;
use crate::observe::alert_rules::shown;
use crate::state::ServerState;

/// A condition that holds now.
pub(crate) struct Condition {
    pub rule: &'static str,
    /// What it is about (with `rule`, it names the alert).
    pub subject: String,
    pub message: String,
    /// How long it must hold before it is an alert.
    pub hold: Duration,
}

impl ServerState {
    /// Every condition of every rule that is on, as the state is now.
    pub(crate) fn alert_conditions(&self) -> Result<Vec<Condition>, Failure> {
        let rules = &self.alerts.rules;
        let mut conditions = Vec::new();
        if let Some(rule) = rules.crash_loop {
            let desired = self.desired_task_keys()?;
            let engine = lock(&self.alerts.engine);
            for (key, times) in &engine.restarts {
                let recent = times
                    .iter()
                    .filter(|at| at.elapsed() < rule.within.0)
                    .count();
                if recent >= rule.restarts.0 as usize && desired.contains(key) {
                    let subject = task_subject(key);
                    conditions.push(Condition {
                        rule: "crash_loop",
                        message: format!(
                            "{subject} restarted {recent} times within {}",
                            shown(rule.within.0)
                        ),
                        subject,
                        hold: Duration::ZERO,
                    });
                }
            }
        }
        if let Some(rule) = rules.unhealthy {
            for task in self.all_task_statuses()? {
                if task.health.as_deref() == Some("unhealthy") {
                    let subject =
                        format!("{}/{}/{}/{}", task.env, task.service, task.job, task.task);
                    conditions.push(Condition {
                        rule: "unhealthy",
                        message: format!(
                            "{subject} has been unhealthy for {}",
                            shown(rule.lasting.0)
                        ),
                        subject,
                        hold: rule.lasting.0,
                    });
                }
            }
        }
        if let Some(rule) = rules.host_down {
            // Every host that ever joined and whose agent is not connected now.
            let connected = self.links.hosts();
            for host in self.hosts.known().difference(&connected) {
                conditions.push(Condition {
                    rule: "host_down",
                    message: format!("host {host} has been down for {}", shown(rule.lasting.0)),
                    subject: host.clone(),
                    hold: rule.lasting.0,
                });
            }
        }
        if let Some(rule) = rules.disk {
            // Connected hosts only: a down host's last reading is old news.
            for host in self.host_infos(false) {
                let Some(resources) = host.resources.filter(|_| host.state != "down") else {
                    continue;
                };
                if resources.disk_total_bytes == 0 {
                    continue;
                }
                let used =
                    resources.disk_used_bytes as f64 * 100.0 / resources.disk_total_bytes as f64;
                if used > rule.above.0 {
                    conditions.push(Condition {
                        rule: "disk",
                        message: format!(
                            "host {}'s disk is {used:.1}% full (above {}%)",
                            host.name, rule.above.0
                        ),
                        subject: host.name,
                        hold: Duration::ZERO,
                    });
                }
            }
        }
        if rules.deployment_failed {
            let engine = lock(&self.alerts.engine);
            for (subject, reason) in &engine.failed_deployments {
                conditions.push(Condition {
                    rule: "deployment_failed",
                    subject: subject.clone(),
                    message: format!("deployment of {subject} failed: {reason}"),
                    hold: Duration::ZERO,
                });
            }
        }
        if let Some(rule) = rules.route_down {
            for route in &self.routes.current().routes {
                if route.backends.is_empty() {
                    // A name's routes under different paths are told apart.
                    let path = route.path.as_deref().unwrap_or("");
                    let subject = format!("{}/{}{path}", route.env, route.name);
                    conditions.push(Condition {
                        rule: "route_down",
                        message: format!(
                            "route {subject} has had no healthy backend for {}{}",
                            shown(rule.lasting.0),
                            route
                                .unavailable
                                .as_deref()
                                .map(|why| format!(" ({why})"))
                                .unwrap_or_default()
                        ),
                        subject,
                        hold: rule.lasting.0,
                    });
                }
            }
        }
        Ok(conditions)
    }

    /// The tasks the desired state asks for now.
    fn desired_task_keys(&self) -> Result<HashSet<TaskKey>, Failure> {
        let mut keys = HashSet::new();
        for desired in self.desired_jobs(keys::DESIRED_ALL)? {
            keys.extend(
                self.raw_desired_tasks(&desired)?
                    .into_iter()
                    .map(|task| task.key),
            );
        }
        Ok(keys)
    }
}

fn task_subject(key: &TaskKey) -> String {
    format!("{}/{}/{}/{}", key.env, key.service, key.job, key.task)
}
