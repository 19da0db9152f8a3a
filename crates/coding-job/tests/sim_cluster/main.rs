//! The control plane in one process: the real server and real agents on simulated engines
//! (`SimRuntime`), linked by an in-memory network, on tokio's paused clock, without Docker. The
//! scenarios of the tests on real hosts (reconcile, rollouts, placement, host loss), judged by
//! what the simulated engines run.
//!
//! What passes here shows the server's and the agents' decisions given the engine's contract
//! as the simulator keeps it; that Docker keeps it is for the tests against real engines.

mod support;

mod failover;
mod host_loss;
mod placement;
mod reconcile;
mod rollouts;
mod routes;
