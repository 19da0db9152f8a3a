//! What users see of a running system: status, history, events, metrics, alerts and
//! notifications.

pub mod alert_conditions;
pub mod alert_rules;
pub mod alerts;
pub mod events;
pub mod history;
pub mod notify;
pub mod recorder;
pub mod scrape;
pub mod status;
pub mod webhook_format;
