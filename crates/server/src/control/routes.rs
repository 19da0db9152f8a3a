//! The routers' table: every routed job (`route:`) of every environment, with the tasks that may
//! take requests now (running, healthy or without a check, not leaving), at their host's address
//! and port. Rebuilt whenever agents report or assignments change; routers follow it with
//! `GET /v1/routes?watch=true`, a stream of tables, so they never poll.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cj_api::agent::Health;
use cj_api::routes::{Backend, Route, RouteTable};
use serde::Deserialize;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::WatchStream;

use crate::edge::extract::ApiQuery;
use crate::error::Failure;
use crate::keys;
use crate::state::ServerState;

pub mod table;

pub(crate) use table::serves;

impl ServerState {
    /// The table as the desired state, the placements and the agents' reports say now. A
    /// route is one (environment, name, path): jobs may share a name under different paths.
    pub fn build_route_table(&self) -> Result<RouteTable, Failure> {
        type RouteKey = (String, String, Option<String>);
        let mut routes: BTreeMap<RouteKey, Route> = BTreeMap::new();
        let canary_phases = self.canary_phases()?;
        for desired in self.desired_jobs(keys::DESIRED_ALL)? {
            // Rebuilt after every report: unrouted jobs are skipped before their tasks are read.
            let version = self
                .versions
                .get(&desired.env, &desired.service, desired.version)?;
            let Some((name, options)) = version
                .spec
                .job(&desired.job)
                .and_then(|job| Some((job.route.clone()?, job.route_options.clone())))
            else {
                continue;
            };
            let tasks = self.raw_desired_tasks(&desired)?;
            let phase = canary_phases.get(&(
                desired.env.clone(),
                desired.service.clone(),
                desired.job.clone(),
            ));
            let key = (desired.env.clone(), name.clone(), options.path.clone());
            let route = routes.entry(key).or_insert_with(|| Route {
                env: desired.env.clone(),
                name,
                service: desired.service.clone(),
                job: desired.job.clone(),
                backends: Vec::new(),
                unavailable: None,
                path: options.path,
                timeout_ms: options.timeout_ms,
                max_body_bytes: options.max_body_bytes,
                canary_weight_bp: None,
            });
            let mut waiting: BTreeMap<&'static str, usize> = BTreeMap::new();
            for task in &tasks {
                if task.spec.port == 0 {
                    *waiting.entry("without a port").or_default() += 1;
                    continue;
                }
                let containers = self.copies_of(&task.key);
                let serving = containers.iter().find(|(_, container)| serves(container));
                let Some((host, container)) = serving else {
                    let why = containers
                        .iter()
                        .find(|(_, c)| c.is_live())
                        .map(|(_, container)| {
                            if container.leaving {
                                "leaving"
                            } else {
                                match container.health {
                                    Some(Health::Starting) => "starting",
                                    Some(Health::Unhealthy) => "unhealthy",
                                    _ => "not running",
                                }
                            }
                        })
                        .unwrap_or("not running");
                    *waiting.entry(why).or_default() += 1;
                    continue;
                };
                let Some(address) = self.host_address(host) else {
                    *waiting
                        .entry("on a host without a known address")
                        .or_default() += 1;
                    continue;
                };
                route.backends.push(Backend {
                    task: task.key.to_string(),
                    host: host.clone(),
                    address: format!("{address}:{}", task.spec.port),
                    version: container.version,
                    canary: phase.is_some_and(|phase| phase.version == container.version),
                });
            }
            if let Some(phase) = phase {
                route.canary_weight_bp = Some(phase.weight_bp);
            }
            if route.backends.is_empty() {
                let total: usize = waiting.values().sum();
                let parts: Vec<String> = waiting
                    .iter()
                    .map(|(why, count)| format!("{count} {why}"))
                    .collect();
                route.unavailable = Some(format!(
                    "{total} task{}: {}",
                    if total == 1 { "" } else { "s" },
                    parts.join(", ")
                ));
            }
        }
        let mut table = RouteTable {
            generation: 0,
            routes: routes.into_values().collect(),
        };
        for route in &mut table.routes {
            route.backends.sort();
        }
        Ok(table)
    }

    pub(crate) fn refresh_route_table(&self) {
        match self.build_route_table() {
            Ok(table) => self.routes.offer(table),
            Err(error) => tracing::warn!(%error, "failed to rebuild the route table"),
        }
    }
}

/// Rebuilds the table after every report and every publish.
pub async fn keep_route_table(state: Arc<ServerState>) {
    let mut reports = state.observed.subscribe_changed();
    let mut published = state.scheduler.subscribe();
    loop {
        state.refresh_route_table();
        tokio::select! {
            changed = reports.changed() => if changed.is_err() { return },
            changed = published.changed() => if changed.is_err() { return },
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RoutesQuery {
    /// Stream a new table on every change instead of answering once.
    #[serde(default)]
    watch: bool,
}

/// `GET /v1/routes`: the table, or with `watch=true` newline-delimited tables (the current one
/// at once, then one per change) until the caller goes away.
#[utoipa::path(
    get,
    path = "/v1/routes",
    params(RoutesQuery),
    responses((status = 200, description = "the table; with `watch`, one table per line, the current one first, then one per change, without end", content((RouteTable = "application/json"), (RouteTable = "application/x-ndjson"))))
)]
pub async fn routes(
    State(state): State<Arc<ServerState>>,
    ApiQuery(query): ApiQuery<RoutesQuery>,
) -> Result<Response, Failure> {
    if !query.watch {
        return Ok(Json(state.routes.current().as_ref().clone()).into_response());
    }
    let tables = WatchStream::new(state.routes.subscribe()).map(|table| {
        let mut line = serde_json::to_vec(table.as_ref()).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, Infallible>(Bytes::from(line))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(tables),
    )
        .into_response())
}
