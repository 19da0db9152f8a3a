//! Environments: their records and variables, creating one from another, destroying one, `port:
//! auto` ports, secrets, and what a host that was down still owes an environment.

pub mod debts;
pub mod env_api;
pub mod env_create;
pub mod env_destroy;
pub mod ports;
pub mod records;
pub mod secrets;
