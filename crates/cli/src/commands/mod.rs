//! One module per subcommand: read the arguments, call the API, print.

pub mod alerts;
pub mod audit;
pub mod deploy;
pub mod deployments;
pub mod diff;
pub mod env;
pub mod events;
pub mod exec;
pub mod history;
pub mod hosts;
pub mod import;
pub mod inspect;
pub mod logs;
pub mod operation;
pub mod prewarm;
pub mod push;
pub mod servers;
pub mod status;
pub mod store;
pub mod token;
pub mod update;
pub mod volumes;
