//! [`SimRuntime`]: a container engine in memory, so the agent and the control plane can be
//! tested in process without Docker (on tokio's paused clock, deterministically), and many
//! simulated hosts can run on one machine (`coding-job agent --simulate`).
//!
//! It keeps Docker's contract as the agent sees it: the same states, errors, inspect document
//! (built as bollard's type and read by the same function as Docker's), events (actions and
//! attributes as Docker sends them) and labels. No process runs: a container runs until it is
//! stopped, removed, killed by the test ([`SimRuntime::kill`]) or dies as the script says
//! ([`SimRuntime::die_after`]). Every wait is a `tokio::time` sleep, so it follows a paused
//! clock. What passes here is never evidence that a Docker feature works: only the engine
//! itself is.
//!
//! The handle is cheap to clone and every clone is the same engine: a test scripts and reads
//! back through one while the agent uses another.

mod document;
mod engine;
mod state;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use state::{SimCall, SimContainer, SimMatch, SimOp, SimUpload};

use crate::types::{ContainerUsage, LogChunk, RuntimeError, Volume};
use state::{Death, SimState, lock};

/// The simulated engine. See the module's documentation.
#[derive(Clone)]
pub struct SimRuntime {
    state: Arc<Mutex<SimState>>,
}

impl Default for SimRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SimRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let containers = lock(&self.state).containers.len();
        f.debug_struct("SimRuntime")
            .field("containers", &containers)
            .finish()
    }
}

impl SimRuntime {
    /// An empty engine: no containers, volumes or images; every call instant; every exec
    /// exits 0; containers run until stopped and exit at once on SIGTERM (code 143).
    pub fn new() -> Self {
        SimRuntime {
            state: Arc::new(Mutex::new(SimState::new())),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SimState> {
        lock(&self.state)
    }

    // --- Images ---

    /// Makes `image` present, as if pulled.
    pub fn add_image(&self, image: &str) {
        self.state().images.insert(image.to_owned());
    }

    /// Whether every image counts as present (`--simulate`: nothing is ever pulled).
    pub fn set_all_images_present(&self, present: bool) {
        self.state().all_images_present = present;
    }

    /// Pulling `image` fails with [`RuntimeError::ImageNotFound`] and `reason`. Any other
    /// image pulls (and is then present).
    pub fn fail_pull(&self, image: &str, reason: &str) {
        self.state()
            .pull_failures
            .insert(image.to_owned(), reason.to_owned());
    }

    // --- What containers do ---

    /// Every run of a matching container ends with `exit_code` `after` it starts (a crash
    /// loop, or a batch job). Of several matching lines the latest added wins.
    pub fn die_after(&self, which: SimMatch, exit_code: i64, after: Duration) {
        self.state().deaths.push(Death {
            which,
            exit_code,
            after,
        });
    }

    /// Forgets every [`SimRuntime::die_after`]: runs started from now on last until stopped.
    /// (A death already scheduled for a run under way still comes.)
    pub fn clear_deaths(&self) {
        self.state().deaths.clear();
    }

    /// The running container dies now with `exit_code`, as a crash. Returns whether it ran.
    pub fn kill(&self, id: &str, exit_code: i64) -> bool {
        self.state().end_run(id, None, exit_code, false)
    }

    /// The running container is killed for lack of memory now (`oom`, then `die` with 137).
    /// Returns whether it ran.
    pub fn oom_kill(&self, id: &str) -> bool {
        self.state().end_run(id, None, 137, true)
    }

    /// How long containers take to exit after SIGTERM (default: at once). Longer than a stop's
    /// grace, they are killed when it ends (code 137 instead of 143).
    pub fn set_stop_time(&self, time: Duration) {
        self.state().stop_time = time;
    }

    /// Every run of a matching container first writes `text` to its stdout, a line at a time.
    pub fn print_on_start(&self, which: SimMatch, text: &str) {
        self.state().outputs.push((which, text.to_owned()));
    }

    /// Appends output to the container's log (and to its followers). Returns whether the
    /// container exists.
    pub fn write_log(&self, id: &str, chunk: LogChunk) -> bool {
        match self.state().containers.get_mut(id) {
            Some(entry) => {
                entry.write(chunk);
                true
            }
            None => false,
        }
    }

    /// `command`, run by `exec` or `exec_attached` in any container, exits with `exit_code`;
    /// attached, it first writes `output` to stdout. Commands not scripted exit 0 silently.
    pub fn set_exec(&self, command: &[&str], exit_code: i64, output: &str) {
        let command = command.iter().map(|part| (*part).to_owned()).collect();
        self.state()
            .exec_scripts
            .insert(command, (exit_code, output.to_owned()));
    }

    /// What matching containers report using (the latest matching line wins). Default: no
    /// CPU, 32 MiB of memory, the container's memory limit or 8 GiB.
    pub fn set_usage(&self, which: SimMatch, usage: ContainerUsage) {
        self.state().usages.push((which, usage));
    }

    // --- The engine itself ---

    /// Every call takes `latency` (a `tokio::time` sleep) before it acts.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// Calls of `op` take `latency`, whatever [`SimRuntime::set_latency`] says.
    pub fn set_latency_of(&self, op: SimOp, latency: Duration) {
        self.state().latency_of.insert(op, latency);
    }

    /// The next call of `op` fails with `error` (after its latency, before it acts). Several
    /// queue up, one per call. For `events` and `logs`, the stream yields the error.
    pub fn fail_next(&self, op: SimOp, error: RuntimeError) {
        self.state()
            .failures
            .entry(op)
            .or_default()
            .push_back(error);
    }

    /// Ends every event stream open now with an error, as a broken connection to Docker does.
    pub fn break_events(&self) {
        self.state().break_events();
    }

    // --- Reading back ---

    /// Every container, in creation order.
    pub fn containers(&self) -> Vec<SimContainer> {
        // Ids differ first in a serial of fixed width, so their order is the creation order.
        self.state()
            .containers
            .values()
            .map(state::Entry::snapshot)
            .collect()
    }

    /// How many containers run now (cheaper than counting [`SimRuntime::containers`]).
    pub fn running_count(&self) -> usize {
        self.state()
            .containers
            .values()
            .filter(|entry| entry.is_running())
            .count()
    }

    pub fn container(&self, id: &str) -> Option<SimContainer> {
        self.state().containers.get(id).map(state::Entry::snapshot)
    }

    pub fn volumes(&self) -> Vec<Volume> {
        self.state().volumes_matching(&[])
    }

    /// Every archive unpacked into a container, in order.
    pub fn uploads(&self) -> Vec<SimUpload> {
        self.state().uploads.clone()
    }

    /// Keeps the latest `count` calls for [`SimRuntime::calls`] (10,000 unless told): none for
    /// a host that nobody reads back, so a thousand of them stay small.
    pub fn keep_calls(&self, count: usize) {
        let mut state = self.state();
        state.calls_kept = count;
        while state.calls.len() > count {
            state.calls.pop_front();
        }
    }

    /// The calls made so far (the last 10,000 unless [`SimRuntime::keep_calls`] says), oldest
    /// first.
    pub fn calls(&self) -> Vec<SimCall> {
        self.state().calls.iter().cloned().collect()
    }

    /// The calls of `op` made so far, oldest first.
    pub fn calls_of(&self, op: SimOp) -> Vec<SimCall> {
        let state = self.state();
        state.calls.iter().filter(|c| c.op == op).cloned().collect()
    }

    /// The terminal size an attached exec was last given, if any.
    pub fn exec_size(&self, exec_id: &str) -> Option<(u16, u16)> {
        self.state().execs.get(exec_id)?.size
    }
}
