use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cj_api::agent::TaskKey;
use cj_api::alerts::Alert;
use cj_store::StoreJson;

use crate::base::lock;
use crate::error::Failure;
use crate::observe::alert_rules::AlertRules;

pub const ALERTS: &str = "alerts/";
/// Resolved alerts are kept this long, and at most [`KEEP_RESOLVED`] of them.
pub(crate) const RESOLVED_KEPT_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
pub(crate) const KEEP_RESOLVED: usize = 500;
/// The least time between two evaluations.
pub(crate) const MIN_GAP: Duration = Duration::from_millis(250);
/// The least time an alert loaded at start stays before its condition is checked for an end.
pub(crate) const RESTORE_GRACE: Duration = Duration::from_secs(30);

pub struct Alerts {
    pub(crate) rules: AlertRules,
    pub(crate) engine: Mutex<Engine>,
    /// Woken by events that are not state changes others announce (deployment outcomes).
    pub(crate) wake: tokio::sync::Notify,
}

#[derive(Default)]
pub(crate) struct Engine {
    /// Each task's restarts within the crash-loop window.
    pub(crate) restarts: HashMap<TaskKey, VecDeque<Instant>>,
    /// Conditions seen but not yet held long enough, by (rule, subject): since when.
    pub(crate) pending: HashMap<(String, String), Instant>,
    /// Firing alerts by (rule, subject): their store key and record.
    pub(crate) active: HashMap<(String, String), (String, Alert)>,
    /// Loaded at start: not resolved before this.
    pub(crate) restored_until: HashMap<(String, String), Instant>,
    /// The last deployment of `ENV/SERVICE` failed, with why.
    pub(crate) failed_deployments: BTreeMap<String, String>,
}

impl Alerts {
    pub fn new(rules: AlertRules) -> Alerts {
        Alerts {
            rules,
            engine: Mutex::default(),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// A task's container started again after it had run.
    pub fn task_restarted(&self, key: &cj_api::agent::TaskKey) {
        if self.rules.crash_loop.is_some() {
            let mut engine = lock(&self.engine);
            engine
                .restarts
                .entry(key.clone())
                .or_default()
                .push_back(Instant::now());
        }
    }

    /// A deployment of `env`/`service` ended: a failure starts the `deployment_failed`
    /// condition, a success ends it.
    pub fn deployment_ended(&self, env: &str, service: &str, failure: Option<String>) {
        if !self.rules.deployment_failed {
            return;
        }
        let subject = format!("{env}/{service}");
        {
            let mut engine = lock(&self.engine);
            match failure {
                Some(reason) => engine.failed_deployments.insert(subject, reason),
                None => engine.failed_deployments.remove(&subject),
            };
        }
        self.wake.notify_one();
    }

    /// Every stored alert, newest first.
    pub fn list(store: &dyn cj_store::Store) -> Result<Vec<Alert>, Failure> {
        let mut alerts: Vec<Alert> = store.range_json(ALERTS)?;
        alerts.reverse();
        Ok(alerts)
    }

    /// Loads the alerts that were active when the server stopped.
    pub(crate) fn restore(&self, store: &dyn cj_store::Store) -> Result<(), Failure> {
        let mut engine = lock(&self.engine);
        for entry in store.range(ALERTS)? {
            let alert: Alert = entry.json()?;
            if !alert.is_active() {
                continue;
            }
            let grace = self.window(&alert.rule).max(RESTORE_GRACE);
            let id = (alert.rule.clone(), alert.subject.clone());
            // A failed deployment is known from the alert itself; every other condition is
            // seen again only once agents have reported.
            if alert.rule == "deployment_failed" {
                let prefix = format!("deployment of {} failed: ", alert.subject);
                let reason = alert
                    .message
                    .strip_prefix(&prefix)
                    .unwrap_or(&alert.message);
                engine
                    .failed_deployments
                    .insert(alert.subject.clone(), reason.to_owned());
            } else {
                engine
                    .restored_until
                    .insert(id.clone(), Instant::now() + grace);
            }
            engine.active.insert(id, (entry.key, alert));
        }
        Ok(())
    }

    /// How long a rule's condition is looked at: its `for`, or the crash loop's window.
    pub(crate) fn window(&self, rule: &str) -> Duration {
        let lasting = |rule: &Option<crate::observe::alert_rules::Lasting>| {
            rule.map_or(Duration::ZERO, |rule| rule.lasting.0)
        };
        match rule {
            "crash_loop" => self
                .rules
                .crash_loop
                .map_or(Duration::ZERO, |rule| rule.within.0),
            "unhealthy" => lasting(&self.rules.unhealthy),
            "host_down" => lasting(&self.rules.host_down),
            "route_down" => lasting(&self.rules.route_down),
            _ => Duration::ZERO,
        }
    }
}
