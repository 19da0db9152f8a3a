//! Several servers on one store: each holds a session (a lease) and registers under
//! `servers/`; one leads (`cluster/leader`) and runs the controllers; the others forward to it.

pub mod forwarding;
pub mod leadership;
pub mod members;
pub mod session;
pub mod terms;

pub use terms::run_server;

#[cfg(test)]
mod tests;
