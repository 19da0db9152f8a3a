//! Deciding what to do for one task, as a pure function of what is wanted and what is there.
//! Keeping it free of IO makes every rule testable in memory; `reconcile` carries the actions out.
//!
//! A running container whose job is routed leaves the routers' pool before it is stopped on
//! purpose ([`Action::Drain`]): it is reported leaving at once, keeps serving what it has, and is
//! stopped by the first pass after its drain ends. A stop-first replacement waits for that stop.

use std::collections::HashMap;
use std::time::Duration;

use cj_api::agent::{Assignment, Health, ObservedContainer};
use cj_api::time::later;
use cj_runtime::ContainerState;
use cj_spec::OnFailure;
use tokio::time::Instant;

use crate::backoff::Backoff;

/// Dead containers kept per task, newest first, so `logs` and `inspect` still work for recent
/// deaths and replacements; older ones are removed so leftovers never exhaust disk or inodes
/// (their record stays in the job's history).
pub const DEAD_CONTAINERS_KEPT: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The right container is running: leave it alone.
    Keep { container_id: String },
    /// Create and start a new container for the assignment.
    Create,
    /// Start an existing container of the right configuration again.
    Restart { container_id: String },
    /// It died recently; wait before trying again.
    WaitBackoff { until: Instant },
    /// `on_failure: keep`: leave the dead container exactly as it is.
    KeepDead {
        container_id: String,
        exit_code: Option<i64>,
    },
    /// The right container failed its check: stop it and start it again.
    RestartUnhealthy { container_id: String },
    /// `on_failure: keep`: leave the unhealthy container running exactly as it is.
    KeepUnhealthy {
        container_id: String,
        detail: String,
    },
    /// Stop a running container that is no longer right; it stays for its logs.
    Stop { container_id: String },
    /// Stop if needed and remove.
    Remove { container_id: String },
    /// Leave the routers' pool (reported at once) and stay up until `until`, when the first pass
    /// after it stops (or removes) the container.
    Drain {
        container_id: String,
        until: Instant,
    },
}

/// What planning needs to know about drains: each container's drain (its `drain-ms` label) and
/// the drains under way (the agent's memory), both by container id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drains {
    /// A container's drain in milliseconds; absent or 0: none.
    pub drain_ms: HashMap<String, u64>,
    /// When each container already leaving may be stopped.
    pub leaving_until: HashMap<String, Instant>,
}

impl Drains {
    /// `stop` (a stop or removal of `container`) if it may happen now, else the drain that
    /// comes first. A drain under way keeps its end: a container is never drained twice.
    fn before_stop(&self, container: &ObservedContainer, stop: Action, now: Instant) -> Action {
        if !container.is_live() {
            return stop;
        }
        let until = match self.leaving_until.get(&container.id) {
            Some(until) => *until,
            None => match self.drain_ms.get(&container.id) {
                Some(&millis) if millis > 0 => later(now, Duration::from_millis(millis)),
                _ => return stop,
            },
        };
        if now >= until {
            return stop;
        }
        Action::Drain {
            container_id: container.id.clone(),
            until,
        }
    }
}

/// What to do for one assigned task, given its containers on this host (any order).
pub fn plan_task(
    assignment: &Assignment,
    containers: &[ObservedContainer],
    backoff: &Backoff,
    drains: &Drains,
    now: Instant,
) -> Vec<Action> {
    let mut newest_first: Vec<&ObservedContainer> = containers.iter().collect();
    newest_first.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
    let is_right = |c: &&ObservedContainer| c.config_hash == assignment.config_hash;

    let mut actions = Vec::new();
    let mut right_live: Option<&ObservedContainer> = None;
    let mut wrong_live = Vec::new();
    for container in newest_first.iter().copied().filter(|c| c.is_live()) {
        if is_right(&container) && right_live.is_none() {
            right_live = Some(container);
        } else if is_right(&container) {
            let remove = Action::Remove {
                container_id: container.id.clone(),
            };
            actions.push(drains.before_stop(container, remove, now));
        } else {
            wrong_live.push(container);
        }
    }
    // Stop first: the replacement may need the same port. Start first: the old container keeps
    // serving until the new one is running and, if it has a check, healthy.
    let replacement_ready =
        right_live.is_some_and(|c| matches!(c.health, None | Some(Health::Healthy)));
    let mut draining = false;
    if !assignment.start_first || replacement_ready {
        for container in wrong_live {
            let stop = Action::Stop {
                container_id: container.id.clone(),
            };
            let action = drains.before_stop(container, stop, now);
            draining |= matches!(action, Action::Drain { .. });
            actions.push(action);
        }
    }

    let mut reused_dead: Option<&str> = None;
    match right_live {
        Some(live) if live.health == Some(Health::Unhealthy) => {
            let detail = live.health_detail.clone().unwrap_or_default();
            actions.push(match assignment.on_failure {
                OnFailure::Keep => Action::KeepUnhealthy {
                    container_id: live.id.clone(),
                    detail,
                },
                OnFailure::Restart if backoff.ready(now) => Action::RestartUnhealthy {
                    container_id: live.id.clone(),
                },
                OnFailure::Restart => Action::WaitBackoff {
                    until: backoff.not_before.unwrap_or(now),
                },
            });
        }
        Some(live) => actions.push(Action::Keep {
            container_id: live.id.clone(),
        }),
        // Stop first: the replacement may need the old one's port, so it waits for the drain.
        None if draining => {}
        None => match newest_first.iter().find(|c| !c.is_live() && is_right(c)) {
            // Created but never started (e.g. the agent stopped between the two): just start it.
            Some(created) if created.state == ContainerState::Created => {
                reused_dead = Some(&created.id);
                actions.push(Action::Restart {
                    container_id: created.id.clone(),
                });
            }
            Some(dead) if assignment.on_failure == OnFailure::Keep => {
                reused_dead = Some(&dead.id);
                actions.push(Action::KeepDead {
                    container_id: dead.id.clone(),
                    exit_code: dead.exit_code,
                });
            }
            Some(_) | None if !backoff.ready(now) => {
                actions.push(Action::WaitBackoff {
                    until: backoff.not_before.unwrap_or(now),
                });
            }
            Some(dead) => {
                reused_dead = Some(&dead.id);
                actions.push(Action::Restart {
                    container_id: dead.id.clone(),
                });
            }
            None => actions.push(Action::Create),
        },
    }

    let dead_ones = newest_first
        .iter()
        .filter(|c| !c.is_live() && Some(c.id.as_str()) != reused_dead);
    for container in dead_ones.skip(DEAD_CONTAINERS_KEPT) {
        actions.push(Action::Remove {
            container_id: container.id.clone(),
        });
    }
    actions
}

/// Containers of a task no longer assigned here: stop and remove them all (the running ones
/// of a routed job after their drain).
pub fn plan_unwanted(
    containers: &[ObservedContainer],
    drains: &Drains,
    now: Instant,
) -> Vec<Action> {
    containers
        .iter()
        .map(|c| {
            let remove = Action::Remove {
                container_id: c.id.clone(),
            };
            drains.before_stop(c, remove, now)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cj_api::agent::TaskKey;
    use std::time::Duration;

    fn assignment(on_failure: OnFailure) -> Assignment {
        let spec =
            cj_spec::parse_service("t.yaml", "service: s\njobs:\n  - name: j\n    image: i:1\n")
                .unwrap();
        let key = TaskKey {
            env: "e".into(),
            service: "s".into(),
            job: "j".into(),
            task: "j".into(),
        };
        Assignment::new(
            key,
            1,
            spec.jobs[0].tasks[0].clone(),
            "h".into(),
            on_failure,
        )
    }

    fn container(id: &str, created: i64, state: ContainerState, hash: &str) -> ObservedContainer {
        let key = TaskKey {
            env: "e".into(),
            service: "s".into(),
            job: "j".into(),
            task: "j".into(),
        };
        ObservedContainer {
            key,
            id: id.into(),
            name: id.into(),
            image: "i:1".into(),
            image_id: String::new(),
            version: 1,
            config_hash: hash.into(),
            declared_host: "h".into(),
            state,
            created,
            started_at: None,
            finished_at: None,
            exit_code: (state == ContainerState::Exited).then_some(137),
            health: None,
            health_detail: None,
            leaving: false,
        }
    }

    fn check(
        on_failure: OnFailure,
        containers: &[(&str, i64, ContainerState, bool)],
        expected: &[Action],
    ) {
        let wanted = assignment(on_failure);
        let observed: Vec<ObservedContainer> = containers
            .iter()
            .map(|(id, created, state, right)| {
                container(
                    id,
                    *created,
                    *state,
                    if *right { &wanted.config_hash } else { "old" },
                )
            })
            .collect();
        let now = Instant::now();
        assert_eq!(
            plan_task(
                &wanted,
                &observed,
                &Backoff::default(),
                &Drains::default(),
                now
            ),
            expected
        );
    }

    use ContainerState::{Created, Exited, Running};

    fn keep(id: &str) -> Action {
        Action::Keep {
            container_id: id.into(),
        }
    }
    fn stop(id: &str) -> Action {
        Action::Stop {
            container_id: id.into(),
        }
    }
    fn remove(id: &str) -> Action {
        Action::Remove {
            container_id: id.into(),
        }
    }
    fn restart(id: &str) -> Action {
        Action::Restart {
            container_id: id.into(),
        }
    }

    #[test]
    fn nothing_there_creates() {
        check(OnFailure::Restart, &[], &[Action::Create]);
    }

    #[test]
    fn the_right_running_container_is_left_alone() {
        check(OnFailure::Restart, &[("a", 1, Running, true)], &[keep("a")]);
    }

    #[test]
    fn a_differing_container_is_stopped_before_the_new_one_is_created() {
        check(
            OnFailure::Restart,
            &[("old", 1, Running, false)],
            &[stop("old"), Action::Create],
        );
    }

    #[test]
    fn a_dead_right_container_is_restarted_in_place() {
        check(
            OnFailure::Restart,
            &[("a", 1, Exited, true)],
            &[restart("a")],
        );
    }

    #[test]
    fn a_created_but_never_started_container_is_started() {
        check(OnFailure::Keep, &[("a", 1, Created, true)], &[restart("a")]);
    }

    #[test]
    fn on_failure_keep_leaves_the_dead_container() {
        check(
            OnFailure::Keep,
            &[("a", 1, Exited, true)],
            &[Action::KeepDead {
                container_id: "a".into(),
                exit_code: Some(137),
            }],
        );
    }

    #[test]
    fn duplicates_of_the_right_container_are_removed() {
        check(
            OnFailure::Restart,
            &[("a", 1, Running, true), ("b", 2, Running, true)],
            &[remove("a"), keep("b")],
        );
    }

    #[test]
    fn only_the_newest_dead_containers_are_kept() {
        check(
            OnFailure::Restart,
            &[
                ("live", 9, Running, true),
                ("d1", 1, Exited, false),
                ("d2", 2, Exited, false),
                ("d3", 3, Exited, false),
                ("d4", 4, Exited, false),
                ("d5", 5, Exited, false),
            ],
            &[keep("live"), remove("d2"), remove("d1")],
        );
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_delays_the_restart() {
        let wanted = assignment(OnFailure::Restart);
        let dead = container("a", 1, Exited, &wanted.config_hash);
        let now = Instant::now();
        let backoff = Backoff {
            consecutive_failures: 2,
            not_before: Some(now + Duration::from_secs(1)),
            started_at: None,
        };
        assert_eq!(
            plan_task(
                &wanted,
                std::slice::from_ref(&dead),
                &backoff,
                &Drains::default(),
                now
            ),
            [Action::WaitBackoff {
                until: now + Duration::from_secs(1)
            }]
        );
        assert_eq!(
            plan_task(
                &wanted,
                &[dead],
                &backoff,
                &Drains::default(),
                now + Duration::from_secs(1)
            ),
            [restart("a")]
        );
    }

    /// A running container with a check verdict.
    fn live(id: &str, created: i64, hash: &str, health: Option<Health>) -> ObservedContainer {
        ObservedContainer {
            health,
            health_detail: Some("GET /: 500".into()),
            ..container(id, created, ContainerState::Running, hash)
        }
    }

    fn plan(assignment: &Assignment, containers: &[ObservedContainer]) -> Vec<Action> {
        plan_task(
            assignment,
            containers,
            &Backoff::default(),
            &Drains::default(),
            Instant::now(),
        )
    }

    #[test]
    fn start_first_keeps_the_old_container_until_the_new_one_is_healthy() {
        let mut wanted = assignment(OnFailure::Restart);
        wanted.start_first = true;
        let old = live("old", 1, "old-hash", Some(Health::Healthy));
        assert_eq!(plan(&wanted, std::slice::from_ref(&old)), [Action::Create]);
        let starting = live("new", 2, &wanted.config_hash, Some(Health::Starting));
        assert_eq!(
            plan(&wanted, &[old.clone(), starting]),
            [Action::Keep {
                container_id: "new".into()
            }]
        );
        let healthy = live("new", 2, &wanted.config_hash, Some(Health::Healthy));
        assert_eq!(
            plan(&wanted, &[old, healthy]),
            [
                Action::Stop {
                    container_id: "old".into()
                },
                Action::Keep {
                    container_id: "new".into()
                }
            ]
        );
    }

    #[test]
    fn unhealthy_is_restarted_or_kept_as_configured() {
        let restart = assignment(OnFailure::Restart);
        let sick = live("a", 1, &restart.config_hash, Some(Health::Unhealthy));
        assert_eq!(
            plan(&restart, std::slice::from_ref(&sick)),
            [Action::RestartUnhealthy {
                container_id: "a".into()
            }]
        );
        let keep = assignment(OnFailure::Keep);
        let sick = live("a", 1, &keep.config_hash, Some(Health::Unhealthy));
        assert_eq!(
            plan(&keep, &[sick]),
            [Action::KeepUnhealthy {
                container_id: "a".into(),
                detail: "GET /: 500".into()
            }]
        );
    }

    /// Drains of 2 s for the given containers, and those of `leaving` under way until then.
    fn drains(ids: &[&str], leaving: &[(&str, Instant)]) -> Drains {
        Drains {
            drain_ms: ids.iter().map(|id| (id.to_string(), 2_000)).collect(),
            leaving_until: leaving
                .iter()
                .map(|(id, until)| (id.to_string(), *until))
                .collect(),
        }
    }

    fn drain(id: &str, until: Instant) -> Action {
        Action::Drain {
            container_id: id.into(),
            until,
        }
    }

    #[test]
    fn a_replaced_routed_container_leaves_first_and_its_replacement_waits_for_the_stop() {
        let wanted = assignment(OnFailure::Restart);
        let old = [live("old", 1, "old-hash", None)];
        let now = Instant::now();
        let until = now + Duration::from_secs(2);
        let plan = |drains: &Drains, at: Instant| {
            plan_task(&wanted, &old, &Backoff::default(), drains, at)
        };
        // Not leaving yet: it leaves, nothing is created while it still holds its port.
        assert_eq!(plan(&drains(&["old"], &[]), now), [drain("old", until)]);
        // Leaving: the same end, however often the loop looks (never drained twice).
        let leaving = drains(&["old"], &[("old", until)]);
        let halfway = now + Duration::from_secs(1);
        assert_eq!(plan(&leaving, halfway), [drain("old", until)]);
        // Its drain over: stopped, then replaced.
        assert_eq!(plan(&leaving, until), [stop("old"), Action::Create]);
        // No drain (a job without a route): stopped at once, as before.
        assert_eq!(plan(&Drains::default(), now), [stop("old"), Action::Create]);
    }

    #[test]
    fn start_first_drains_the_old_container_once_the_new_one_is_healthy() {
        let mut wanted = assignment(OnFailure::Restart);
        wanted.start_first = true;
        let old = live("old", 1, "old-hash", Some(Health::Healthy));
        let new = live("new", 2, &wanted.config_hash, Some(Health::Healthy));
        let now = Instant::now();
        assert_eq!(
            plan_task(
                &wanted,
                &[old, new],
                &Backoff::default(),
                &drains(&["old", "new"], &[]),
                now
            ),
            [drain("old", now + Duration::from_secs(2)), keep("new")]
        );
    }

    #[test]
    fn unwanted_running_containers_drain_and_dead_ones_go_at_once() {
        let now = Instant::now();
        let until = now + Duration::from_secs(2);
        let running = container("a", 2, Running, "h");
        let dead = container("b", 1, Exited, "h");
        let containers = [running, dead];
        let with_drains = drains(&["a", "b"], &[]);
        assert_eq!(
            plan_unwanted(&containers, &with_drains, now),
            [drain("a", until), remove("b")]
        );
        let leaving = drains(&["a", "b"], &[("a", until)]);
        assert_eq!(
            plan_unwanted(&containers, &leaving, until),
            [remove("a"), remove("b")]
        );
    }

    #[test]
    fn an_unhealthy_container_is_restarted_without_a_drain() {
        // Failing its check, it should leave the pool now, not serve another drain's worth.
        let wanted = assignment(OnFailure::Restart);
        let sick = live("a", 1, &wanted.config_hash, Some(Health::Unhealthy));
        assert_eq!(
            plan_task(
                &wanted,
                &[sick],
                &Backoff::default(),
                &drains(&["a"], &[]),
                Instant::now()
            ),
            [Action::RestartUnhealthy {
                container_id: "a".into()
            }]
        );
    }
}
