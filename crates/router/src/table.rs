//! The table as the router serves it: built once per `RouteTable` into maps looked up by
//! `(env, name)` without allocating, swapped whole behind an `Arc` so a request sees one table
//! from start to end, and balanced round-robin over the backends that did not just fail.
//!
//! Counters and backend health survive a new table: they are carried over by route and by
//! address, so a table that changes nothing for a route changes nothing in how it is served.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cj_api::routes::{Route, RouteTable};
use hyper::http::uri::Authority;

use crate::stats::{RouteCounters, RouteStatus, VersionCounters};

/// How long a backend that failed to answer is passed over while others are left.
pub(crate) const FAILED_BACKEND_PAUSE: Duration = Duration::from_secs(2);

/// One table, ready to route with.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) generation: u64,
    /// env -> name -> route. Two levels, so both lookups borrow `&str` keys.
    envs: HashMap<String, HashMap<String, RouteEntry>>,
}

#[derive(Debug)]
pub(crate) struct RouteEntry {
    /// The route as the table gave it (its `backends` are in `backends` below).
    pub(crate) route: Route,
    /// The route's backends whose address parsed.
    pub(crate) backends: Vec<BackendEntry>,
    pub(crate) counters: Arc<RouteCounters>,
}

#[derive(Debug)]
pub(crate) struct BackendEntry {
    /// `ADDRESS:PORT`, as the table gave it.
    pub(crate) address: String,
    /// The same, parsed once here rather than per request.
    pub(crate) authority: Authority,
    pub(crate) health: Arc<BackendHealth>,
    /// The counters of the version the backend runs, in its route's counters.
    pub(crate) version: Arc<VersionCounters>,
}

/// Whether a backend failed lately: shared by every route that sends to its address.
#[derive(Debug, Default)]
pub(crate) struct BackendHealth {
    /// The [`now_ms`] time until which the backend is passed over; 0 when healthy.
    failed_until: AtomicU64,
}

impl BackendHealth {
    pub(crate) fn failed(&self) {
        let until = now_ms().saturating_add(FAILED_BACKEND_PAUSE.as_millis() as u64);
        self.failed_until.store(until, Ordering::Relaxed);
    }

    pub(crate) fn answered(&self) {
        // Only a store when the backend was marked, so answers cost no contended write.
        if self.failed_until.load(Ordering::Relaxed) != 0 {
            self.failed_until.store(0, Ordering::Relaxed);
        }
    }

    fn usable(&self, now: u64) -> bool {
        self.failed_until.load(Ordering::Relaxed) <= now
    }
}

/// A monotonic millisecond clock for [`BackendHealth`], which keeps a time in an atomic.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    // Offset by one so that 0 ("never failed") is always in the past.
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

impl Table {
    /// Builds the table for `table`, carrying counters and backend health over from
    /// `previous`.
    pub(crate) fn build(table: &RouteTable, previous: &Table) -> Table {
        let mut health: HashMap<&str, &Arc<BackendHealth>> = HashMap::new();
        for entry in previous.routes() {
            for backend in &entry.backends {
                health.insert(&backend.address, &backend.health);
            }
        }
        let mut envs: HashMap<String, HashMap<String, RouteEntry>> = HashMap::new();
        for route in &table.routes {
            let counters = previous
                .find(&route.env, &route.name)
                .map(|entry| Arc::clone(&entry.counters))
                .unwrap_or_default();
            let mut backends = Vec::with_capacity(route.backends.len());
            for backend in &route.backends {
                let Ok(authority) = backend.address.parse::<Authority>() else {
                    tracing::warn!(
                        env = %route.env, route = %route.name, address = %backend.address,
                        "skipping a backend whose address is not HOST:PORT"
                    );
                    continue;
                };
                let health = health
                    .get(backend.address.as_str())
                    .map(|health| Arc::clone(health))
                    .unwrap_or_default();
                backends.push(BackendEntry {
                    address: backend.address.clone(),
                    authority,
                    health,
                    version: counters.version(backend.version),
                });
            }
            let mut route = route.clone();
            if backends.is_empty() && route.unavailable.is_none() {
                route.unavailable = Some(if route.backends.is_empty() {
                    "no task takes requests".to_owned()
                } else {
                    "no backend address is usable".to_owned()
                });
            }
            route.backends.clear();
            let entry = RouteEntry {
                route,
                backends,
                counters,
            };
            envs.entry(entry.route.env.clone())
                .or_default()
                .insert(entry.route.name.clone(), entry);
        }
        Table {
            generation: table.generation,
            envs,
        }
    }

    pub(crate) fn find(&self, env: &str, name: &str) -> Option<&RouteEntry> {
        self.envs.get(env)?.get(name)
    }

    pub(crate) fn has_env(&self, env: &str) -> bool {
        self.envs.contains_key(env)
    }

    /// Every route, in no order.
    pub(crate) fn routes(&self) -> impl Iterator<Item = &RouteEntry> {
        self.envs.values().flat_map(HashMap::values)
    }

    /// The routes of `env` (every route for `None`) sorted by environment then name, with their
    /// counters, as the status and 404 pages show them.
    pub(crate) fn status(&self, domain: &str, env: Option<&str>) -> Vec<RouteStatus> {
        let mut routes: Vec<RouteStatus> = self
            .routes()
            .filter(|entry| env.is_none_or(|env| entry.route.env == env))
            .map(|entry| entry.status(domain))
            .collect();
        routes.sort_by(|a, b| (&a.env, &a.name).cmp(&(&b.env, &b.name)));
        routes
    }
}

impl RouteEntry {
    /// The backend to try next: round-robin from the route's cursor, skipping those in `tried`
    /// and, while others are left, those that failed in the last [`FAILED_BACKEND_PAUSE`].
    pub(crate) fn pick(&self, tried: &[usize]) -> Option<usize> {
        let count = self.backends.len();
        if count == 0 {
            return None;
        }
        let start = self.counters.next.fetch_add(1, Ordering::Relaxed) % count;
        let now = now_ms();
        let mut fallback = None;
        for offset in 0..count {
            let index = (start + offset) % count;
            if tried.contains(&index) {
                continue;
            }
            if self.backends[index].health.usable(now) {
                return Some(index);
            }
            // Every backend having failed lately is no reason not to try one.
            fallback.get_or_insert(index);
        }
        fallback
    }

    pub(crate) fn status(&self, domain: &str) -> RouteStatus {
        let route = &self.route;
        RouteStatus {
            env: route.env.clone(),
            name: route.name.clone(),
            service: route.service.clone(),
            job: route.job.clone(),
            url: format!("http://{}.{}.{domain}/", route.name, route.env),
            backends: self.backends.len(),
            unavailable: route.unavailable.clone(),
            counts: self.counters.snapshot(),
            versions: self.counters.versions(),
        }
    }
}

#[cfg(test)]
mod tests {
    use cj_api::routes::Backend;

    use super::*;

    fn route(env: &str, name: &str, addresses: &[&str]) -> Route {
        Route {
            env: env.to_owned(),
            name: name.to_owned(),
            service: "svc".to_owned(),
            job: name.to_owned(),
            backends: addresses
                .iter()
                .map(|address| Backend {
                    task: format!("svc/{name}/{address}"),
                    host: "host-1".to_owned(),
                    address: (*address).to_owned(),
                    version: 1,
                    canary: false,
                })
                .collect(),
            unavailable: None,
            path: None,
            timeout_ms: None,
            max_body_bytes: None,
            canary_weight_bp: None,
        }
    }

    fn table(generation: u64, routes: Vec<Route>) -> RouteTable {
        RouteTable { generation, routes }
    }

    #[test]
    fn round_robin_skips_tried_and_recently_failed_backends() {
        let built = Table::build(
            &table(
                1,
                vec![route("dev", "web", &["127.0.0.1:1", "127.0.0.1:2"])],
            ),
            &Table::default(),
        );
        let web = built.find("dev", "web").unwrap();
        let picks: Vec<usize> = (0..4).map(|_| web.pick(&[]).unwrap()).collect();
        assert_eq!(picks, [0, 1, 0, 1]);
        assert_eq!(web.pick(&[0]), Some(1));
        assert_eq!(web.pick(&[0, 1]), None);

        web.backends[0].health.failed();
        assert!((0..4).all(|_| web.pick(&[]) == Some(1)));
        // With every backend failed, one is still tried.
        web.backends[1].health.failed();
        assert!(web.pick(&[]).is_some());
        web.backends[0].health.answered();
        assert!((0..4).all(|_| web.pick(&[]) == Some(0)));
    }

    #[test]
    fn counters_and_health_carry_over_to_a_new_table() {
        let first = Table::build(
            &table(
                1,
                vec![route("dev", "web", &["127.0.0.1:1", "127.0.0.1:2"])],
            ),
            &Table::default(),
        );
        let web = first.find("dev", "web").unwrap();
        web.counters.answered(hyper::StatusCode::OK);
        web.backends[1].health.failed();

        let second = Table::build(
            &table(
                2,
                vec![route("dev", "web", &["127.0.0.1:2", "127.0.0.1:3"])],
            ),
            &first,
        );
        let web = second.find("dev", "web").unwrap();
        assert_eq!(web.counters.snapshot().requests, 1);
        assert!(!web.backends[0].health.usable(now_ms()));
        assert!(web.backends[1].health.usable(now_ms()));
        assert_eq!(second.generation, 2);
    }

    #[test]
    fn a_route_without_usable_backends_says_why() {
        let built = Table::build(
            &table(
                1,
                vec![
                    route("dev", "none", &[]),
                    route("dev", "bad", &["not an address"]),
                ],
            ),
            &Table::default(),
        );
        let reason = |name| built.find("dev", name).unwrap().route.unavailable.clone();
        assert_eq!(reason("none").as_deref(), Some("no task takes requests"));
        assert_eq!(
            reason("bad").as_deref(),
            Some("no backend address is usable")
        );
        let listed: Vec<String> = built
            .status("example.test", Some("dev"))
            .into_iter()
            .map(|status| status.url)
            .collect();
        assert_eq!(
            listed,
            [
                "http://bad.dev.example.test/",
                "http://none.dev.example.test/"
            ]
        );
    }
}
