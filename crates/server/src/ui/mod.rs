//! The web UI: server-rendered pages on the API's listener (`/`, `/ui/...`), one small module
//! per page. Pages read through the same server functions as the JSON API, so what a page shows
//! is what `/v1/...` answers (secret values masked the same way). Every page reads correctly
//! without JavaScript; `static/ui.js` only adds live updates (through one event stream that
//! `static/events.js`, a shared worker, holds for every open page), log following and the exec
//! terminal. Forms that change something POST to `/ui/actions/...` with the session's CSRF
//! value and are answered with a redirect back (303).

mod actions;
mod assets;
mod audit;
mod chart;
mod deployments;
mod envs;
mod history;
mod hosts;
mod login;
mod overview;
mod rows;
mod task;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn;
use axum::routing::{get, post};

use crate::edge::auth::Auth;
use crate::edge::guard::MAX_BODY_BYTES;
use crate::state::ServerState;

type Routes = Router<Arc<ServerState>>;

/// The UI's routes. `guarded` puts the pages behind the API's auth layer (identity, roles,
/// CSRF, audit); login, logout and the static files are reachable without a token.
pub fn router(auth: Arc<Auth>, guarded: impl FnOnce(Routes) -> Routes) -> Routes {
    let actions = Router::new()
        .route("/ui/actions/promote", post(actions::promote))
        .route("/ui/actions/abort", post(actions::abort))
        .route("/ui/actions/rollback", post(actions::rollback))
        .route("/ui/actions/envs/create", post(actions::create_env))
        .route("/ui/actions/envs/destroy", post(actions::destroy_env))
        .layer(from_fn(actions::same_origin));
    let pages = Router::new()
        .route("/", get(overview::page))
        .route("/ui/task/{env}/{service}/{job}/{task}", get(task::page))
        .route("/ui/history/{env}/{service}/{job}", get(history::page))
        .route("/ui/deployments", get(deployments::page))
        .route("/ui/hosts", get(hosts::page))
        .route("/ui/audit", get(audit::page))
        .route("/ui/envs", get(envs::page))
        .merge(actions);
    let open = Router::new()
        .route(
            "/ui/login",
            get(login::form).merge(post(login::submit).layer(from_fn(actions::same_origin))),
        )
        .route(
            "/ui/logout",
            post(login::logout).layer(from_fn(actions::same_origin)),
        )
        .route("/ui/static/{file}", get(assets::file))
        .layer(axum::Extension(auth));
    guarded(pages)
        .layer(from_fn(view::browser_answers))
        .merge(open)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}
