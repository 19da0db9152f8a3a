//! The HTTP API (`/v1/...`): thin handlers that parse the request, call the state, and shape
//! the answer. Long operations (`up`, `down`) and logs answer with a stream; exec is a
//! WebSocket (`exec`).

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post, put};

use crate::edge::auth::{self, Auth};
use crate::edge::guard as edge;
use crate::releases::previews;
use crate::releases::requests as releases;
use crate::state::ServerState;

/// Declares the routes once: [`ROUTES`] lists them and `routes()` builds them from the same
/// lines, so the list cannot miss one (the API abuse test covers every route it names).
pub mod handlers;

use handlers::*;

macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:expr,)*) => {
        /// Every route of the API, as (method, path).
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn routes() -> Router<Arc<ServerState>> {
            Router::new()$(.route($path, $method($handler)))*
        }
    };
}

api_routes! {
    get "/v1/info" => info,
    get "/v1/agent/connect" => crate::hosts::agent_link::connect,
    post "/v1/push" => push,
    get "/v1/services" => services,
    get "/v1/versions" => versions,
    post "/v1/up" => up,
    post "/v1/down" => down,
    get "/v1/status" => status,
    get "/v1/hosts" => hosts,
    get "/v1/servers" => servers,
    post "/v1/hosts/{name}/drain" => crate::hosts::drain::drain,
    post "/v1/hosts/{name}/undrain" => crate::hosts::drain::undrain,
    post "/v1/hosts/{name}/prewarm" => crate::hosts::prewarm::prewarm,
    get "/v1/inspect" => inspect,
    get "/v1/logs" => logs,
    get "/v1/exec" => crate::hosts::exec::exec,
    get "/v1/history" => history,
    post "/v1/rolling-update" => releases::rolling_update,
    post "/v1/rollback" => releases::rollback,
    post "/v1/reload" => releases::reload,
    post "/v1/update" => releases::update,
    get "/v1/update/tags" => previews::update_candidates,
    post "/v1/promote" => releases::promote,
    post "/v1/abort" => releases::abort,
    get "/v1/deployments" => releases::list,
    post "/v1/diff" => previews::diff,
    get "/v1/versions/diff" => previews::version_diff,
    post "/v1/tokens" => crate::edge::tokens::create_token,
    get "/v1/tokens" => crate::edge::tokens::list_tokens,
    delete "/v1/tokens/{name}" => crate::edge::tokens::revoke_token,
    get "/v1/audit" => crate::edge::audit::list,
    get "/v1/store/snapshot" => crate::edge::snapshot::snapshot,
    get "/v1/envs" => crate::envs::env_api::list,
    post "/v1/envs" => crate::envs::env_api::create,
    delete "/v1/envs/{name}" => crate::envs::env_api::destroy,
    post "/v1/envs/{name}/up" => crate::envs::env_api::up,
    post "/v1/envs/{name}/down" => crate::envs::env_api::down,
    get "/v1/envs/{name}/vars" => crate::envs::env_api::vars,
    put "/v1/envs/{name}/vars" => crate::envs::env_api::set_vars,
    get "/v1/envs/{name}/addresses" => crate::envs::env_api::addresses,
    get "/v1/routes" => crate::control::routes::routes,
    post "/v1/router/counts" => crate::releases::traffic::report,
    get "/v1/router/certificates" => crate::certificates::api::list,
    get "/v1/router/certificates/{name}" => crate::certificates::api::get,
    put "/v1/router/certificates/{name}" => crate::certificates::api::put,
    get "/v1/router/challenges/{token}" => crate::certificates::api::get_challenge,
    put "/v1/router/challenges/{token}" => crate::certificates::api::put_challenge,
    delete "/v1/router/challenges/{token}" => crate::certificates::api::delete_challenge,
    put "/v1/router/leases/{name}" => crate::certificates::api::lease,
    get "/v1/volumes" => crate::snapshots::api::volumes,
    get "/v1/snapshots" => crate::snapshots::api::list,
    post "/v1/snapshots" => crate::snapshots::api::create,
    get "/v1/snapshot-data/{id}" => crate::snapshots::api::data,
    put "/v1/agent/snapshots/{id}" => crate::snapshots::api::upload,
    get "/v1/agent/snapshots/{id}" => crate::snapshots::api::agent_data,
    post "/v1/snapshots/restore" => crate::snapshots::api::restore,
    get "/v1/events" => crate::observe::events::events,
    get "/metrics" => crate::observe::scrape::metrics,
    get "/v1/alerts" => crate::observe::alerts::list,
    get "/v1/openapi.json" => crate::edge::openapi::serve,
}

/// The API: its routes behind the edge (limits, and JSON for every refusal; see `edge`), and
/// behind `auth` (tokens, roles, the audit log) within it.
pub fn router(state: Arc<ServerState>, auth: Arc<Auth>) -> Router {
    let guarded = |routes: Router<Arc<ServerState>>| {
        routes
            .layer(axum::Extension(auth.clone()))
            .layer(axum::middleware::from_fn_with_state(
                auth.clone(),
                auth::check,
            ))
    };
    // Blocking reads run after auth: a caller without a token never holds a connection open.
    let routes = routes().route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::edge::blocking::blocking_reads,
    ));
    // The web UI answers HTML, so it sits beside the edge (which answers JSON), behind the
    // same auth layer.
    edge::wrap_with(routes, guarded)
        .merge(crate::ui::router(auth.clone(), guarded))
        .with_state(state)
        .layer(axum::middleware::from_fn(
            crate::observe::recorder::track_api,
        ))
}
