//! The API's OpenAPI 3.1 document, served at `GET /v1/openapi.json`.
//!
//! Each handler carries its own description (`#[utoipa::path]`: method, path, query and path
//! parameters, body, answers); the JSON types derive their schemas in `cj_api`. [`ApiDoc`]
//! gathers the handlers in `paths(...)`, and two modifiers add what every route shares: the
//! error answers any request can get (the JSON body `{"error", "code"}`, see `error`) and the
//! Bearer token scheme (see `auth`). The document is built and serialized once per process.
//!
//! Documenting a new route: put `#[utoipa::path(...)]` on its handler and add the handler to
//! `paths(...)` below (one line). `every_route_is_documented_with_its_method` fails until both
//! are done, and when a documented route has no entry in `api::ROUTES`.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use cj_api::ApiError;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "coding-job",
        description = "The coding-job server's HTTP API. Every answer other than a success is \
            JSON: `{\"error\": \"what went wrong\", \"code\": \"a_stable_word\"}` (with `errors` \
            listing every problem of a rejected config file). Streams say so by their content \
            type: newline-delimited JSON (`application/x-ndjson`) or text (`text/plain`)."
    ),
    paths(
        serve,
        crate::edge::api::handlers::info,
        crate::hosts::agent_link::connect,
        crate::edge::api::handlers::push,
        crate::edge::api::handlers::services,
        crate::edge::api::handlers::versions,
        crate::edge::api::handlers::up,
        crate::edge::api::handlers::down,
        crate::edge::api::handlers::status,
        crate::edge::api::handlers::hosts,
        crate::edge::api::handlers::servers,
        crate::hosts::drain::drain,
        crate::hosts::drain::undrain,
        crate::hosts::prewarm::prewarm,
        crate::edge::api::handlers::inspect,
        crate::edge::api::handlers::logs,
        crate::hosts::exec::exec,
        crate::edge::api::handlers::history,
        crate::releases::requests::rolling_update,
        crate::releases::requests::rollback,
        crate::releases::requests::reload,
        crate::releases::requests::update,
        crate::releases::previews::update_candidates,
        crate::releases::requests::promote,
        crate::releases::requests::abort,
        crate::releases::requests::list,
        crate::releases::previews::diff,
        crate::releases::previews::version_diff,
        crate::edge::tokens::create_token,
        crate::edge::tokens::list_tokens,
        crate::edge::tokens::revoke_token,
        crate::edge::audit::list,
        crate::edge::snapshot::snapshot,
        crate::envs::env_api::list,
        crate::envs::env_api::create,
        crate::envs::env_api::destroy,
        crate::envs::env_api::up,
        crate::envs::env_api::down,
        crate::envs::env_api::vars,
        crate::envs::env_api::set_vars,
        crate::envs::env_api::addresses,
        crate::control::routes::routes,
        crate::releases::traffic::report,
        crate::certificates::api::list,
        crate::certificates::api::get,
        crate::certificates::api::put,
        crate::certificates::api::get_challenge,
        crate::certificates::api::put_challenge,
        crate::certificates::api::delete_challenge,
        crate::certificates::api::lease,
        crate::snapshots::api::volumes,
        crate::snapshots::api::list,
        crate::snapshots::api::create,
        crate::snapshots::api::data,
        crate::snapshots::api::upload,
        crate::snapshots::api::agent_data,
        crate::snapshots::api::restore,
        crate::observe::events::events,
        crate::observe::scrape::metrics,
        crate::observe::alerts::list,
    ),
    components(schemas(ApiError)),
    modifiers(&TokenScheme, &SharedFailures, &Tags)
)]
struct ApiDoc;

/// The name of the security scheme in the document.
const SCHEME: &str = "token";

/// `Authorization: Bearer TOKEN` on every route. A `dev` server on loopback also answers
/// requests without a token; every other server refuses them (401).
struct TokenScheme;

impl Modify for TokenScheme {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some(
            "A token from `coding-job token create` (read, deploy, admin, agent or router role). \
             A `dev` server listening on loopback also takes requests without one."
                .into(),
        );
        components.add_security_scheme(SCHEME, SecurityScheme::Http(bearer));
        document.security = Some(vec![SecurityRequirement::new(SCHEME, Vec::<String>::new())]);
    }
}

/// Every operation of the document (the API's methods are GET, POST, PUT and DELETE).
fn operations(document: &mut Document) -> impl Iterator<Item = &mut Operation> {
    document.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
    })
}

/// The refusals any route can answer with, whatever its handler does: the edge's limits and
/// parsing (400, 413, 415), `auth` (401, 403) and a failing store (500). Added to every
/// operation that does not describe that status itself.
struct SharedFailures;

impl Modify for SharedFailures {
    fn modify(&self, document: &mut Document) {
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ApiError")))
                        .build(),
                )
                .build()
        };
        let always = [
            (
                "400",
                "a malformed request: a query parameter or body field that is missing, unknown \
                 or of the wrong type, or a value out of range",
            ),
            ("401", "no valid token (`WWW-Authenticate: Bearer`)"),
            ("403", "the token's role does not allow this request"),
            ("500", "the server failed (its store)"),
        ];
        let with_body = [
            ("413", "the request body is larger than 4 MiB"),
            ("415", "the body is not `Content-Type: application/json`"),
        ];
        for operation in operations(document) {
            let has_body = operation.request_body.is_some();
            let statuses = always.iter().chain(with_body.iter().filter(|_| has_body));
            for (status, description) in statuses {
                let responses = &mut operation.responses.responses;
                if !responses.contains_key(*status) {
                    responses.insert((*status).into(), error(description).into());
                }
            }
        }
    }
}

/// Groups the operations by what they are about. The macro tags each operation with its
/// handler's module (`crate::releases::requests`); this names the groups for readers instead.
struct Tags;

/// Module, then the group its routes are shown in.
const GROUPS: &[(&str, &str)] = &[
    ("crate::edge::api::handlers", "services"),
    ("crate::hosts::exec", "services"),
    ("crate::releases::requests", "releases"),
    ("crate::envs::env_api", "environments"),
    ("crate::hosts::drain", "hosts"),
    ("crate::hosts::prewarm", "hosts"),
    ("crate::edge::tokens", "tokens"),
    ("crate::edge::audit", "tokens"),
    ("crate::edge::snapshot", "store"),
    ("crate::control::routes", "router"),
    ("crate::certificates::api", "router"),
    ("crate::hosts::agent_link", "agents"),
    ("crate::snapshots::api", "volumes"),
];

impl Modify for Tags {
    fn modify(&self, document: &mut Document) {
        for operation in operations(document) {
            let module = operation
                .tags
                .as_ref()
                .and_then(|tags| tags.first())
                .cloned();
            let group = GROUPS
                .iter()
                .find(|(name, _)| Some(*name) == module.as_deref())
                .map_or("api", |(_, group)| *group);
            operation.tags = Some(vec![group.to_owned()]);
        }
    }
}

/// The document as JSON, built on first use.
pub fn document_json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the OpenAPI document serializes: it is made of strings and maps")
    })
}

/// This document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    responses((status = 200, description = "this document (OpenAPI 3.1)", content_type = "application/json", body = Object))
)]
pub async fn serve() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// (method, path) of every operation in the document.
    fn documented() -> BTreeSet<(String, String)> {
        let document: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        let mut operations = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                operations.insert((method.clone(), path.clone()));
            }
        }
        operations
    }

    #[test]
    fn every_route_is_documented_with_its_method() {
        let routes: BTreeSet<(String, String)> = crate::edge::api::ROUTES
            .iter()
            .map(|(method, path)| (method.to_string(), path.to_string()))
            .collect();
        let documented = documented();
        let undocumented: Vec<_> = routes.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "routes without a #[utoipa::path] in openapi::ApiDoc: {undocumented:?}"
        );
        let unrouted: Vec<_> = documented.difference(&routes).collect();
        assert!(
            unrouted.is_empty(),
            "documented but not in api_routes!: {unrouted:?}"
        );
    }

    #[test]
    fn the_document_needs_no_more_than_a_read_token() {
        use axum::http::Method;
        use cj_api::Role;

        use crate::edge::auth::{Access, access};
        assert_eq!(
            access(&Method::GET, "/v1/openapi.json"),
            Access::Role(Role::Read)
        );
    }

    #[test]
    fn operations_are_grouped_by_what_they_are_about() {
        let document: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        let tag = |method: &str, path: &str| document["paths"][path][method]["tags"].clone();
        assert_eq!(tag("get", "/v1/status"), serde_json::json!(["services"]));
        assert_eq!(tag("post", "/v1/rollback"), serde_json::json!(["releases"]));
        assert_eq!(tag("get", "/v1/openapi.json"), serde_json::json!(["api"]));
    }

    #[test]
    fn websocket_routes_are_gets_that_switch_protocols() {
        let document: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        for path in ["/v1/exec", "/v1/agent/connect"] {
            let responses = &document["paths"][path]["get"]["responses"];
            assert!(responses["101"].is_object(), "{path}: {responses}");
            assert!(responses["400"].is_object(), "{path}: {responses}");
        }
    }

    #[test]
    fn operations_have_unique_ids_and_errors_are_json() {
        let document: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        let mut ids = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let id = operation["operationId"].as_str().unwrap();
                assert!(ids.insert(id.to_owned()), "{method} {path}: {id} twice");
                for (status, response) in operation["responses"].as_object().unwrap() {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert_eq!(
                            response["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ApiError",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
        assert_eq!(
            document["components"]["securitySchemes"][SCHEME]["scheme"],
            "bearer"
        );
    }

    #[test]
    fn streams_are_described_by_their_content_types() {
        let document: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        let content = |method: &str, path: &str| {
            let content = &document["paths"][path][method]["responses"]["200"]["content"];
            content
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(content("post", "/v1/up"), ["application/x-ndjson"]);
        assert_eq!(content("get", "/v1/logs"), ["text/plain"]);
        assert_eq!(
            content("get", "/v1/routes"),
            ["application/json", "application/x-ndjson"]
        );
    }

    #[test]
    fn logs_document_since_and_timestamps() {
        let document: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        let parameters = document["paths"]["/v1/logs"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let parameter = |name: &str| {
            parameters
                .iter()
                .find(|parameter| parameter["name"] == name)
                .unwrap_or_else(|| panic!("no parameter {name}: {parameters:?}"))
        };
        let since = parameter("since");
        assert_eq!(since["in"], "query");
        assert_eq!(since["required"], false);
        assert_eq!(since["schema"]["type"], "string");
        assert!(
            since["description"].as_str().unwrap().contains("RFC 3339"),
            "{since}"
        );
        let timestamps = parameter("timestamps");
        assert_eq!(timestamps["schema"]["type"], "boolean");
        assert!(
            timestamps["description"]
                .as_str()
                .unwrap()
                .contains("RFC 3339"),
            "{timestamps}"
        );
    }
}
