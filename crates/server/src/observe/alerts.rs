//! Alerts: the `alerts:` rules of the server config (`alert_rules`) evaluated against the
//! server's state. An alert fires once when its condition begins (after holding for the rule's
//! `for`, where it has one) and is resolved once when the condition ends; both are sent through
//! the webhook notifier and kept in the store under `alerts/NANOS` (the start time, so a range
//! read is in time order), which is what `GET /v1/alerts` and `coding-job alerts` show.
//!
//! Evaluation runs on changes only: every agent report (containers, health, stats), agents
//! joining and leaving, route-table changes and deployment outcomes; plus a timer set to the
//! moment the next pending condition would have held long enough (or a crash loop's window
//! would slide past a restart). Nothing polls.
//!
//! Restart counts live in memory. After a server restart, alerts active before it are loaded
//! again and kept for a grace (the rule's window, at least [`RESTORE_GRACE`]) before an absent
//! condition may resolve them, so the restart alone does not resolve what still holds (a failed
//! deployment needs none: it is known from the alert until a deployment succeeds).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cj_api::alerts::Alert;
use cj_store::StoreJson;

use crate::base::{lock, now_rfc3339};
use crate::error::Failure;
use crate::observe::alert_conditions::Condition;
use crate::observe::notify::Notification;
use crate::state::ServerState;

pub mod engine;
#[allow(unused_imports)]
pub(crate) use engine::*;

/// How often alerts are evaluated even when nothing was reported.
const RESYNC_EVERY: Duration = Duration::from_secs(60);

/// Evaluates the rules whenever something they look at changes (at most every [`MIN_GAP`]),
/// until the server stops.
pub async fn run(state: Arc<ServerState>) {
    if let Err(error) = state.alerts.restore(&*state.store) {
        tracing::error!(%error, "cannot load the active alerts");
    }
    // Without rules there is nothing to watch, unless alerts from before (their rules since
    // turned off) are still to be resolved.
    if !state.alerts.rules.any() && lock(&state.alerts.engine).active.is_empty() {
        return;
    }
    let mut reports = state.observed.subscribe_changed();
    let mut links = state.links.subscribe_joined();
    let mut routes = state.routes.subscribe();
    // Desired state (which tasks should run) comes from the store by way of the published
    // assignments.
    let mut published = state.scheduler.subscribe();
    let mut last = Instant::now();
    loop {
        // Reports come in bursts (every container event is one): one evaluation per burst.
        tokio::time::sleep_until((last + MIN_GAP).into()).await;
        last = Instant::now();
        let next = match state.evaluate_alerts() {
            Ok(next) => next,
            Err(error) => {
                tracing::error!(%error, "cannot evaluate alerts");
                // A store error: look again soon rather than never.
                Some(Instant::now() + Duration::from_secs(5))
            }
        };
        let timer = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = reports.changed() => if changed.is_err() { return },
            changed = links.changed() => if changed.is_err() { return },
            changed = routes.changed() => if changed.is_err() { return },
            changed = published.changed() => if changed.is_err() { return },
            () = state.alerts.wake.notified() => {}
            () = timer => {}
            // In case anything was missed.
            () = tokio::time::sleep(RESYNC_EVERY) => {}
        }
    }
}

impl ServerState {
    /// Fires and resolves alerts as the conditions now are; returns when to look again.
    pub(crate) fn evaluate_alerts(&self) -> Result<Option<Instant>, Failure> {
        let conditions = self.alert_conditions()?;
        let now = Instant::now();
        let alerts = &self.alerts;
        let mut engine = lock(&alerts.engine);
        let mut next: Option<Instant> = None;
        let mut sooner = |at: Instant| next = Some(next.map_or(at, |next| next.min(at)));
        let mut holding = HashSet::new();
        for condition in conditions {
            let id = (condition.rule.to_owned(), condition.subject.clone());
            holding.insert(id.clone());
            if engine.active.contains_key(&id) {
                continue;
            }
            let since = *engine.pending.entry(id.clone()).or_insert(now);
            if now.duration_since(since) < condition.hold {
                sooner(since + condition.hold);
                continue;
            }
            engine.pending.remove(&id);
            let fired = self.fire_alert(condition)?;
            engine.active.insert(id, fired);
        }
        engine.pending.retain(|id, _| holding.contains(id));
        let ended: Vec<(String, String)> = engine
            .active
            .keys()
            .filter(|id| !holding.contains(*id))
            .cloned()
            .collect();
        for id in ended {
            if let Some(until) = engine.restored_until.get(&id).copied()
                && until > now
            {
                sooner(until);
                continue;
            }
            engine.restored_until.remove(&id);
            if let Some((key, alert)) = engine.active.remove(&id) {
                self.resolve_alert(&key, alert)?;
            }
        }
        // A crash loop ends when its oldest counted restart leaves the window.
        if let Some(rule) = alerts.rules.crash_loop {
            for times in engine.restarts.values_mut() {
                while times
                    .front()
                    .is_some_and(|at| now.duration_since(*at) >= rule.within.0)
                {
                    times.pop_front();
                }
                if let Some(oldest) = times.front() {
                    sooner(*oldest + rule.within.0);
                }
            }
            engine.restarts.retain(|_, times| !times.is_empty());
        }
        Ok(next)
    }

    fn fire_alert(&self, condition: Condition) -> Result<(String, Alert), Failure> {
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let key = format!("{ALERTS}{nanos:020}");
        let alert = Alert {
            id: format!("{nanos:020}"),
            rule: condition.rule.to_owned(),
            subject: condition.subject,
            message: condition.message,
            started: now_rfc3339(),
            resolved: None,
        };
        self.store.put_json(&key, &alert)?;
        tracing::warn!(
            rule = alert.rule,
            subject = alert.subject,
            "alert: {}",
            alert.message
        );
        self.notifier.send(Notification::AlertFiring {
            alert: alert.id.clone(),
            rule: alert.rule.clone(),
            subject: alert.subject.clone(),
            message: alert.message.clone(),
            at: alert.started.clone(),
        });
        self.prune_resolved_alerts()?;
        Ok((key, alert))
    }

    fn resolve_alert(&self, key: &str, mut alert: Alert) -> Result<(), Failure> {
        let at = now_rfc3339();
        alert.resolved = Some(at.clone());
        self.store.put_json(key, &alert)?;
        tracing::info!(rule = alert.rule, subject = alert.subject, "alert resolved");
        self.notifier.send(Notification::AlertResolved {
            alert: alert.id,
            rule: alert.rule,
            subject: alert.subject,
            message: alert.message,
            started: alert.started,
            at,
        });
        Ok(())
    }

    /// Drops resolved alerts older than a week, and the oldest beyond [`KEEP_RESOLVED`].
    fn prune_resolved_alerts(&self) -> Result<(), Failure> {
        let entries = self.store.range(ALERTS)?;
        let cutoff = time::OffsetDateTime::now_utc() - RESOLVED_KEPT_FOR;
        let resolved: Vec<(String, Alert)> = entries
            .into_iter()
            .filter_map(|entry| {
                let alert: Alert = entry.json().ok()?;
                (!alert.is_active()).then_some((entry.key, alert))
            })
            .collect();
        let excess = resolved.len().saturating_sub(KEEP_RESOLVED);
        for (position, (key, alert)) in resolved.iter().enumerate() {
            let old = alert
                .resolved
                .as_deref()
                .and_then(|at| {
                    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .is_some_and(|at| at < cutoff);
            if position < excess || old {
                self.store.delete(key)?;
            }
        }
        Ok(())
    }
}

/// `GET /v1/alerts`: active and recently resolved alerts, newest first.
#[utoipa::path(
    get,
    path = "/v1/alerts",
    responses((status = 200, description = "firing and recently resolved alerts, newest first", body = Vec<Alert>))
)]
pub async fn list(
    axum::extract::State(state): crate::state::AppState,
) -> Result<axum::Json<Vec<Alert>>, Failure> {
    Ok(axum::Json(Alerts::list(&*state.store)?))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::ServerConfig;
    use crate::observe::alert_rules::AlertRules;
    use crate::observe::alert_rules::{Lasting, RuleDuration};
    use cj_api::agent::TaskKey;

    fn state_on(store: Arc<dyn cj_store::Store>, rules: AlertRules) -> Arc<ServerState> {
        let config = ServerConfig {
            alerts: rules,
            ..ServerConfig::default()
        };
        ServerState::new(
            store,
            "test".into(),
            Some("host-1".into()),
            config,
            crate::state::StateOptions::default(),
        )
    }

    fn fresh(rules: AlertRules) -> (tempfile::TempDir, Arc<ServerState>) {
        let dir = tempfile::tempdir().unwrap();
        let store = cj_store::EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
        (dir, state_on(Arc::new(store), rules))
    }

    fn deployment_rule() -> AlertRules {
        AlertRules {
            deployment_failed: true,
            ..AlertRules::default()
        }
    }

    #[tokio::test]
    async fn a_failed_deployment_fires_once_and_a_success_resolves_it() {
        let (_dir, state) = fresh(deployment_rule());
        state.alerts.deployment_ended(
            "production",
            "shop",
            Some("web-1 did not become healthy".into()),
        );
        state.evaluate_alerts().unwrap();
        state.evaluate_alerts().unwrap();
        let alerts = Alerts::list(&*state.store).unwrap();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].rule, "deployment_failed");
        assert_eq!(alerts[0].subject, "production/shop");
        assert_eq!(
            alerts[0].message,
            "deployment of production/shop failed: web-1 did not become healthy"
        );
        assert!(alerts[0].is_active());

        state.alerts.deployment_ended("production", "shop", None);
        state.evaluate_alerts().unwrap();
        let alerts = Alerts::list(&*state.store).unwrap();
        assert_eq!(alerts.len(), 1);
        assert!(!alerts[0].is_active(), "{alerts:?}");

        // A new failure is a new alert, listed first.
        state
            .alerts
            .deployment_ended("production", "shop", Some("again".into()));
        state.evaluate_alerts().unwrap();
        let alerts = Alerts::list(&*state.store).unwrap();
        assert_eq!(alerts.len(), 2);
        assert!(alerts[0].is_active() && alerts[0].message.ends_with("again"));
        assert_ne!(alerts[0].id, alerts[1].id);
    }

    #[tokio::test]
    async fn an_active_alert_survives_a_restart_without_firing_again() {
        let (_dir, state) = fresh(deployment_rule());
        state
            .alerts
            .deployment_ended("production", "shop", Some("broken".into()));
        state.evaluate_alerts().unwrap();
        let store = state.store.clone();
        drop(state);

        let restarted = state_on(store, deployment_rule());
        restarted.alerts.restore(&*restarted.store).unwrap();
        restarted.evaluate_alerts().unwrap();
        let alerts = Alerts::list(&*restarted.store).unwrap();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert!(alerts[0].is_active());
        // And a later success still resolves it.
        restarted
            .alerts
            .deployment_ended("production", "shop", None);
        restarted.evaluate_alerts().unwrap();
        assert!(!Alerts::list(&*restarted.store).unwrap()[0].is_active());
    }

    #[tokio::test]
    async fn a_host_down_fires_only_after_holding_for_its_time() {
        let hold = Duration::from_secs(1);
        let (_dir, state) = fresh(AlertRules {
            host_down: Some(Lasting {
                lasting: RuleDuration(hold),
            }),
            ..AlertRules::default()
        });
        state.hosts.joined("h2", None, Default::default());
        state.hosts.left("h2");
        let next = state
            .evaluate_alerts()
            .unwrap()
            .expect("a time to look again");
        assert!(Alerts::list(&*state.store).unwrap().is_empty());
        assert!(next > Instant::now() && next <= Instant::now() + hold);

        tokio::time::sleep_until(next.into()).await;
        state.evaluate_alerts().unwrap();
        let alerts = Alerts::list(&*state.store).unwrap();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].subject, "h2");
        assert_eq!(alerts[0].message, "host h2 has been down for 1s");
    }

    #[tokio::test]
    async fn restarts_of_a_task_nobody_wants_raise_nothing() {
        let (_dir, state) = fresh(AlertRules {
            crash_loop: Some(crate::observe::alert_rules::CrashLoop {
                restarts: crate::observe::alert_rules::Restarts(2),
                within: RuleDuration(Duration::from_secs(60)),
            }),
            ..AlertRules::default()
        });
        let key = TaskKey {
            env: "production".into(),
            service: "gone".into(),
            job: "web".into(),
            task: "web".into(),
        };
        for _ in 0..3 {
            state.alerts.task_restarted(&key);
        }
        let next = state.evaluate_alerts().unwrap();
        assert!(Alerts::list(&*state.store).unwrap().is_empty());
        // The window's end is the next look: then the restarts are forgotten.
        assert!(next.is_some_and(|at| at > Instant::now()));
    }
}
