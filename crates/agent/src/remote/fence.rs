//! What an agent does when it cannot hear its server. By default nothing: the reconcile loop keeps
//! the last assignments, so a server outage or restart never stops a fleet. A task whose job says
//! `on_host_lost: stop` (`Assignment::stop_when_cut`) is the exception: once the agent has heard
//! nothing for [`LinkTiming::stop_when_cut_after`], it hands the loop the assignments without
//! those tasks, so their containers stop here before the server (which counts from the same
//! silence, and waits the whole `--host-down-after`) places them on another host. Two copies of
//! such a task never run at once; the price is a gap while the host is cut off.
//!
//! Whatever the server sends next replaces the fenced set, so a link that comes back restores
//! exactly what the server wants now.

use std::sync::{Arc, Mutex};

use cj_api::agent::Assignment;
use cj_api::agent::link::LinkTiming;
use tokio::sync::watch;
use tokio::time::Instant;

pub type AssignmentsSender = watch::Sender<Option<Arc<Vec<Assignment>>>>;

pub struct Fence {
    state: Mutex<FenceState>,
    /// Tasks the loop stops without a drain: the fenced ones, and those the server says moved
    /// away (no router sends to them any more).
    pub stop_at_once: crate::reconcile::StopAtOnce,
    /// Wakes the watchdog when the server is heard from or the timing changes.
    heard: tokio::sync::Notify,
}

struct FenceState {
    /// The last message from the server, on any connection.
    last_heard: Instant,
    timing: LinkTiming,
    /// The assignments as the server last sent them (the loop may have a fenced copy).
    from_server: Option<Arc<Vec<Assignment>>>,
    /// The loop runs the fenced copy now.
    fenced: bool,
}

impl Default for Fence {
    fn default() -> Self {
        Fence {
            state: Mutex::new(FenceState {
                last_heard: Instant::now(),
                timing: LinkTiming::DEFAULT,
                from_server: None,
                fenced: false,
            }),
            heard: tokio::sync::Notify::new(),
            stop_at_once: Default::default(),
        }
    }
}

impl Fence {
    fn lock(&self) -> std::sync::MutexGuard<'_, FenceState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The server said something (any frame, a pong included).
    pub fn heard(&self) {
        self.lock().last_heard = Instant::now();
    }

    pub fn last_heard(&self) -> Instant {
        self.lock().last_heard
    }

    pub fn timing(&self) -> LinkTiming {
        self.lock().timing
    }

    /// The server's welcome told the cluster's timing.
    pub fn set_timing(&self, timing: LinkTiming) {
        self.lock().timing = timing;
        self.heard.notify_one();
    }

    /// New assignments from the server: they go to the loop as they are, ending any fence.
    /// `moved_away`: tasks of this host's containers that run elsewhere now.
    pub fn assignments(
        &self,
        assignments: Arc<Vec<Assignment>>,
        moved_away: Vec<crate::TaskKey>,
        to_loop: &AssignmentsSender,
    ) {
        {
            // Kept until the task is assigned here again (then a later stop drains as usual).
            let mut stop_at_once = self.stop_at_once.lock().unwrap_or_else(|p| p.into_inner());
            stop_at_once.retain(|key| !assignments.iter().any(|a| a.key == *key));
            stop_at_once.extend(moved_away);
        }
        let mut state = self.lock();
        state.last_heard = Instant::now();
        if state.fenced {
            tracing::info!("the server is back: running its assignments again");
        }
        state.fenced = false;
        state.from_server = Some(assignments.clone());
        to_loop.send_replace(Some(assignments));
        drop(state);
        self.heard.notify_one();
    }

    /// Runs forever: fences the `on_host_lost: stop` tasks once the server has been silent for
    /// the timing's `stop_when_cut_after`.
    pub async fn watch(self: Arc<Self>, to_loop: AssignmentsSender) {
        loop {
            let deadline = {
                let state = self.lock();
                (!state.fenced).then(|| state.last_heard + state.timing.stop_when_cut_after())
            };
            let Some(deadline) = deadline else {
                self.heard.notified().await;
                continue;
            };
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = self.heard.notified() => continue,
            }
            let mut state = self.lock();
            let silent_for = state.last_heard.elapsed();
            if state.fenced || silent_for < state.timing.stop_when_cut_after() {
                continue;
            }
            let Some(from_server) = state.from_server.clone() else {
                continue;
            };
            let (stopped, kept): (Vec<Assignment>, Vec<Assignment>) = from_server
                .iter()
                .cloned()
                .partition(|assignment| assignment.stop_when_cut);
            state.fenced = true;
            if stopped.is_empty() {
                continue;
            }
            let names: Vec<String> = stopped.iter().map(|a| a.key.to_string()).collect();
            self.stop_at_once
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(stopped.iter().map(|a| a.key.clone()));
            tracing::warn!(
                silent_ms = silent_for.as_millis() as u64,
                tasks = names.join(", "),
                "nothing from the server: stopping the tasks that say on_host_lost: stop"
            );
            to_loop.send_replace(Some(Arc::new(kept)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn assignment(task: &str, stop_when_cut: bool) -> Assignment {
        let spec: cj_spec::TaskSpec = serde_json::from_value(serde_json::json!({
            "name": task, "image": "i:1", "command": null, "env": {}, "port": 0,
            "run_on_host": null, "resources": {"memory_bytes": null, "nano_cpus": null},
            "init": true, "docker_hostconfig": {}, "docker_config": {}
        }))
        .unwrap();
        let key = crate::TaskKey {
            env: "production".into(),
            service: "s".into(),
            job: "j".into(),
            task: task.into(),
        };
        let mut assignment =
            Assignment::new(key, 1, spec, "host-1".into(), cj_spec::OnFailure::Restart);
        assignment.stop_when_cut = stop_when_cut;
        assignment
    }

    fn tasks(receiver: &watch::Receiver<Option<Arc<Vec<Assignment>>>>) -> Vec<String> {
        let current = receiver.borrow().clone().unwrap_or_default();
        current.iter().map(|a| a.key.task.clone()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_server_stops_only_the_tasks_that_ask_for_it_and_its_return_restores_them() {
        let fence = Arc::new(Fence::default());
        fence.set_timing(LinkTiming::new(Duration::from_secs(5)));
        let (sender, receiver) = watch::channel(None);
        let set = Arc::new(vec![assignment("a", true), assignment("b", false)]);
        fence.assignments(set.clone(), Vec::new(), &sender);
        tokio::spawn(fence.clone().watch(sender.clone()));

        // Pings keep it quiet.
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            fence.heard();
        }
        assert_eq!(tasks(&receiver), ["a", "b"]);

        // 5 s of --host-down-after, pings every second: fenced after 3 s of silence.
        tokio::time::sleep(Duration::from_millis(2900)).await;
        assert_eq!(tasks(&receiver), ["a", "b"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(tasks(&receiver), ["b"]);

        fence.assignments(set, Vec::new(), &sender);
        assert_eq!(tasks(&receiver), ["a", "b"]);
    }
}
