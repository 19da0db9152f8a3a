//! The table as the router serves it: built once per `RouteTable` into maps looked up by
//! `(env, name)` without allocating, then by the request's path (the longest matching `path`
//! prefix of the name's routes, else its route without a path); swapped whole behind an `Arc`
//! so a request sees one table from start to end, and balanced round-robin over the backends
//! that did not just fail (on one side of a weighted canary: see `canary`).
//!
//! Counters and backend health survive a new table: they are carried over by route and by
//! address, so a table that changes nothing for a route changes nothing in how it is served.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cj_api::routes::{Route, RouteTable};
use hyper::http::uri::Authority;

use crate::canary::{self, Side, Split};
use crate::stats::{RouteCounters, RouteStatus, VersionCounters};

/// How long a backend that failed to answer is passed over while others are left.
pub(crate) const FAILED_BACKEND_PAUSE: Duration = Duration::from_secs(2);

/// One table, ready to route with.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) generation: u64,
    /// env -> name -> the name's routes, longest `path` first and the one without a path
    /// last. Two levels, so both lookups borrow `&str` keys.
    envs: HashMap<String, HashMap<String, Vec<RouteEntry>>>,
}

#[derive(Debug)]
pub(crate) struct RouteEntry {
    /// The route as the table gave it (its `backends` are in `backends` below).
    pub(crate) route: Route,
    /// The route's backends whose address parsed.
    pub(crate) backends: Vec<BackendEntry>,
    pub(crate) counters: Arc<RouteCounters>,
    /// The backends by side, during a canary phase with a weight; `None`: all are equal.
    split: Option<Split>,
    /// `route.timeout_ms`: how long a backend may take to start answering.
    pub(crate) timeout: Option<Duration>,
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
        let mut envs: HashMap<String, HashMap<String, Vec<RouteEntry>>> = HashMap::new();
        for route in &table.routes {
            let counters = previous
                .find_exact(&route.env, &route.name, route.path.as_deref())
                .map(|entry| Arc::clone(&entry.counters))
                .unwrap_or_default();
            let mut backends = Vec::with_capacity(route.backends.len());
            let mut canary_marks = Vec::with_capacity(route.backends.len());
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
                canary_marks.push(backend.canary);
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
                split: Split::new(route.canary_weight_bp, canary_marks.into_iter()),
                timeout: route.timeout_ms.map(Duration::from_millis),
                route,
                backends,
                counters,
            };
            let routes = envs
                .entry(entry.route.env.clone())
                .or_default()
                .entry(entry.route.name.clone())
                .or_default();
            // The same route twice in a table: the later one, as a map would keep.
            routes.retain(|other| other.route.path != entry.route.path);
            routes.push(entry);
        }
        for routes in envs.values_mut().flat_map(HashMap::values_mut) {
            routes.sort_by_key(|entry| {
                std::cmp::Reverse(entry.route.path.as_ref().map(|path| path.len()))
            });
        }
        Table {
            generation: table.generation,
            envs,
        }
    }

    /// The route of `name` in `env` that serves `path`: the one with the longest `path`
    /// prefix of it, else the one without a path.
    pub(crate) fn find(&self, env: &str, name: &str, path: &str) -> Option<&RouteEntry> {
        self.envs.get(env)?.get(name)?.iter().find(|entry| {
            entry
                .route
                .path
                .as_deref()
                .is_none_or(|prefix| serves_path(prefix, path))
        })
    }

    /// Whether `env` has a route named `name`, whatever its path.
    pub(crate) fn has_name(&self, env: &str, name: &str) -> bool {
        self.envs
            .get(env)
            .is_some_and(|names| names.contains_key(name))
    }

    fn find_exact(&self, env: &str, name: &str, path: Option<&str>) -> Option<&RouteEntry> {
        self.envs
            .get(env)?
            .get(name)?
            .iter()
            .find(|entry| entry.route.path.as_deref() == path)
    }

    pub(crate) fn has_env(&self, env: &str) -> bool {
        self.envs.contains_key(env)
    }

    /// Every route, in no order.
    pub(crate) fn routes(&self) -> impl Iterator<Item = &RouteEntry> {
        self.envs.values().flat_map(HashMap::values).flatten()
    }

    /// The routes of `env` (every route for `None`) sorted by environment, name and path, with
    /// their counters, as the status and 404 pages show them.
    pub(crate) fn status(&self, domain: &str, env: Option<&str>) -> Vec<RouteStatus> {
        let mut routes: Vec<RouteStatus> = self
            .routes()
            .filter(|entry| env.is_none_or(|env| entry.route.env == env))
            .map(|entry| entry.status(domain))
            .collect();
        routes.sort_by(|a, b| (&a.env, &a.name, &a.path).cmp(&(&b.env, &b.name, &b.path)));
        routes
    }
}

/// Whether a route for `prefix` serves a request for `path`: the prefix is the whole path, or
/// whole segments at its start (`/v2` serves `/v2` and `/v2/x`, not `/v2x`). Compared as sent,
/// without decoding or case folding.
pub(crate) fn serves_path(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/'))
}

impl RouteEntry {
    /// The side of a weighted canary one request goes to: the one it `asked` for, else drawn by
    /// the weight. `None` when the route is not split: every backend is equal.
    pub(crate) fn side(&self, asked: Option<Side>) -> Option<Side> {
        let split = self.split.as_ref()?;
        Some(asked.unwrap_or_else(|| canary::draw(&self.counters.canary_draws, split.weight_bp)))
    }

    /// The backend to try next: round-robin from the cursor of `side` (of every backend for
    /// `None`), skipping those in `tried` and, while others are left, those that failed in the
    /// last [`FAILED_BACKEND_PAUSE`]. When `side` has no usable backend left, the other side's
    /// are tried before any that failed lately.
    pub(crate) fn pick(&self, tried: &[usize], side: Option<Side>) -> Option<usize> {
        let now = now_ms();
        let (Some(split), Some(side)) = (&self.split, side) else {
            let (usable, failed) = self.round_robin(None, &self.counters.next, tried, now);
            return usable.or(failed);
        };
        let cursor = |side| match side {
            Side::Canary => &self.counters.canary_next,
            Side::Stable => &self.counters.next,
        };
        let members = Some(split.members(side));
        let (usable, failed) = self.round_robin(members, cursor(side), tried, now);
        if usable.is_some() {
            return usable;
        }
        let other = side.other();
        let members = Some(split.members(other));
        let (other_usable, other_failed) = self.round_robin(members, cursor(other), tried, now);
        other_usable.or(failed).or(other_failed)
    }

    /// One turn over `members` (every backend for `None`) from `cursor`: the first usable
    /// backend not tried yet, and the first not tried that failed lately (every backend
    /// having failed lately is no reason not to try one).
    fn round_robin(
        &self,
        members: Option<&[usize]>,
        cursor: &AtomicUsize,
        tried: &[usize],
        now: u64,
    ) -> (Option<usize>, Option<usize>) {
        let count = members.map_or(self.backends.len(), <[usize]>::len);
        if count == 0 {
            return (None, None);
        }
        let start = cursor.fetch_add(1, Ordering::Relaxed) % count;
        let mut failed = None;
        for offset in 0..count {
            let position = (start + offset) % count;
            let index = members.map_or(position, |members| members[position]);
            if tried.contains(&index) {
                continue;
            }
            if self.backends[index].health.usable(now) {
                return (Some(index), failed);
            }
            failed.get_or_insert(index);
        }
        (None, failed)
    }

    pub(crate) fn status(&self, domain: &str) -> RouteStatus {
        let route = &self.route;
        RouteStatus {
            env: route.env.clone(),
            name: route.name.clone(),
            path: route.path.clone(),
            service: route.service.clone(),
            job: route.job.clone(),
            url: format!(
                "http://{}.{}.{domain}{}",
                route.name,
                route.env,
                route.path.as_deref().unwrap_or("/")
            ),
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
        let web = built.find("dev", "web", "/").unwrap();
        let picks: Vec<usize> = (0..4).map(|_| web.pick(&[], None).unwrap()).collect();
        assert_eq!(picks, [0, 1, 0, 1]);
        assert_eq!(web.pick(&[0], None), Some(1));
        assert_eq!(web.pick(&[0, 1], None), None);

        web.backends[0].health.failed();
        assert!((0..4).all(|_| web.pick(&[], None) == Some(1)));
        // With every backend failed, one is still tried.
        web.backends[1].health.failed();
        assert!(web.pick(&[], None).is_some());
        web.backends[0].health.answered();
        assert!((0..4).all(|_| web.pick(&[], None) == Some(0)));
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
        let web = first.find("dev", "web", "/").unwrap();
        web.counters.answered(hyper::StatusCode::OK);
        web.backends[1].health.failed();

        let second = Table::build(
            &table(
                2,
                vec![route("dev", "web", &["127.0.0.1:2", "127.0.0.1:3"])],
            ),
            &first,
        );
        let web = second.find("dev", "web", "/").unwrap();
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
        let reason = |name| {
            built
                .find("dev", name, "/")
                .unwrap()
                .route
                .unavailable
                .clone()
        };
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

    fn with_path(mut route: Route, path: &str) -> Route {
        route.path = Some(path.to_owned());
        route
    }

    #[test]
    fn the_longest_matching_path_prefix_wins_by_whole_segments() {
        let built = Table::build(
            &table(
                1,
                vec![
                    route("dev", "api", &["127.0.0.1:1"]),
                    with_path(route("dev", "api", &["127.0.0.1:2"]), "/v2"),
                    with_path(route("dev", "api", &["127.0.0.1:3"]), "/v2/admin"),
                    with_path(route("dev", "docs", &["127.0.0.1:4"]), "/guide"),
                ],
            ),
            &Table::default(),
        );
        let check = |name: &str, path: &str, expected: Option<&str>| {
            let found = built.find("dev", name, path);
            let found = found.map(|entry| entry.backends[0].address.as_str());
            assert_eq!(found, expected, "{name} {path}");
        };
        check("api", "/", Some("127.0.0.1:1"));
        check("api", "/v2", Some("127.0.0.1:2"));
        check("api", "/v2/", Some("127.0.0.1:2"));
        check("api", "/v2/users", Some("127.0.0.1:2"));
        check("api", "/v2x", Some("127.0.0.1:1"));
        check("api", "/v2/admin/x", Some("127.0.0.1:3"));
        check("api", "/v2/administrator", Some("127.0.0.1:2"));
        check("api", "/V2", Some("127.0.0.1:1"));
        check("docs", "/guide/intro", Some("127.0.0.1:4"));
        check("docs", "/", None);
        assert!(built.has_name("dev", "docs"));
        let paths: Vec<Option<String>> = built
            .status("example.test", Some("dev"))
            .into_iter()
            .map(|status| status.path)
            .collect();
        assert_eq!(
            paths,
            [
                None,
                Some("/v2".into()),
                Some("/v2/admin".into()),
                Some("/guide".into())
            ]
        );
    }

    fn weighted(canaries: usize, stables: usize, weight_bp: Option<u32>) -> Route {
        let addresses: Vec<String> = (1..=canaries + stables)
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
        let mut route = route("dev", "web", &addresses);
        for backend in &mut route.backends[..canaries] {
            backend.canary = true;
        }
        route.canary_weight_bp = weight_bp;
        route
    }

    #[test]
    fn a_weighted_route_picks_within_the_side_then_falls_back_to_the_other() {
        let built = Table::build(
            &table(1, vec![weighted(1, 3, Some(1000))]),
            &Table::default(),
        );
        let web = built.find("dev", "web", "/").unwrap();
        assert_eq!(web.pick(&[], Some(Side::Canary)), Some(0));
        let stable: Vec<usize> = (0..6)
            .map(|_| web.pick(&[], Some(Side::Stable)).unwrap())
            .collect();
        assert_eq!(stable, [1, 2, 3, 1, 2, 3]);
        // The canary tried (or failed lately): the stable side takes the request.
        assert!(matches!(web.pick(&[0], Some(Side::Canary)), Some(1..=3)));
        web.backends[0].health.failed();
        assert!(matches!(web.pick(&[], Some(Side::Canary)), Some(1..=3)));
        assert_eq!(web.pick(&[1, 2, 3], Some(Side::Stable)), Some(0));

        let draws = (0..2000)
            .filter(|_| web.side(None) == Some(Side::Canary))
            .count();
        assert!((195..=205).contains(&draws), "{draws}");
        assert_eq!(web.side(Some(Side::Stable)), Some(Side::Stable));

        // No weight, or one side empty: one pool, whatever is asked.
        for route in [
            weighted(1, 3, None),
            weighted(0, 2, Some(1000)),
            weighted(2, 0, Some(1000)),
        ] {
            let built = Table::build(&table(1, vec![route]), &Table::default());
            let web = built.find("dev", "web", "/").unwrap();
            assert_eq!(web.side(Some(Side::Canary)), None);
        }
    }
}
