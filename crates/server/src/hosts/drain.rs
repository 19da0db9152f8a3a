//! `hosts drain` and `hosts undrain`: an operator takes a host out of placement (for
//! maintenance, or before removing it) and puts it back. A draining host takes no new tasks and
//! its unpinned tasks are placed on other hosts at once; pinned tasks stay, since their config
//! names the host. Undraining moves nothing back: the host simply takes new tasks again.

use axum::Json;
use axum::extract::{Path, State};
use cj_api::{DrainResponse, MovedTask, TaskFailure};
use cj_store::StoreJson;

use crate::base::now_rfc3339;
use crate::control::published::Placed;
use crate::edge::auth::Identity;
use crate::error::Failure;
use crate::hosts::listing::Drain;
use crate::keys;
use crate::state::AppState;
use crate::state::ServerState;

/// `POST /v1/hosts/{name}/drain`.
#[utoipa::path(
    post,
    path = "/v1/hosts/{name}/drain",
    params(("name" = String, Path, description = "the host's name")),
    responses(
        (status = 200, description = "the host takes no new tasks; where its tasks went", body = DrainResponse),
        (status = 404, description = "no such host", body = cj_api::ApiError),
    )
)]
pub async fn drain(
    State(state): AppState,
    caller: Identity,
    Path(host): Path<String>,
) -> Result<Json<DrainResponse>, Failure> {
    state.check_known_host(&host)?;
    let before = state.scheduler.placed_on(&host);
    let drain = Drain {
        by: caller.name.clone(),
        since: now_rfc3339(),
    };
    state.store.put_json(&keys::drain(&host), &drain)?;
    tracing::info!(host, by = caller.name, "draining");
    // The assignment controller marks the host draining and moves its tasks.
    state.assignments_caught_up().await?;
    let mut moved = Vec::new();
    let mut unplaced = Vec::new();
    for (task, placed) in state.scheduler.placed(&before) {
        match placed {
            Placed::On(to) => moved.push(MovedTask {
                task: task.to_string(),
                to,
            }),
            Placed::Nowhere(reason) => unplaced.push(TaskFailure::new(task.to_string(), reason)),
        }
    }
    Ok(Json(DrainResponse {
        host: host.clone(),
        draining: true,
        moved,
        unplaced,
        pinned: state.pinned_to(&host),
    }))
}

/// `POST /v1/hosts/{name}/undrain`.
#[utoipa::path(
    post,
    path = "/v1/hosts/{name}/undrain",
    params(("name" = String, Path, description = "the host's name")),
    responses(
        (status = 200, description = "the host takes new tasks again", body = DrainResponse),
        (status = 404, description = "no such host", body = cj_api::ApiError),
    )
)]
pub async fn undrain(
    State(state): AppState,
    caller: Identity,
    Path(host): Path<String>,
) -> Result<Json<DrainResponse>, Failure> {
    state.check_known_host(&host)?;
    state.store.delete(&keys::drain(&host))?;
    tracing::info!(host, by = caller.name, "undrained");
    // Tasks that fit nowhere while it drained may fit now (the controller places them).
    state.assignments_caught_up().await?;
    Ok(Json(DrainResponse {
        host: host.clone(),
        draining: false,
        moved: Vec::new(),
        unplaced: Vec::new(),
        pinned: state.pinned_to(&host),
    }))
}

impl ServerState {
    /// The tasks whose config pins them to `host`, as published.
    fn pinned_to(&self, host: &str) -> Vec<String> {
        self.scheduler
            .current()
            .map(|published| {
                published
                    .all()
                    .filter(|a| a.spec.run_on_host.as_deref() == Some(host))
                    .map(|a| a.key.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}
