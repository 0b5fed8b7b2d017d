//! The people's API on `handoff serve`, JSON in and out: runs with their
//! timelines, follow-up packets, acknowledging and resolving them, and the
//! audit head. Every request names its role with a bearer token
//! ([`auth`]); a role reads and acts on its own packets only (routed or
//! escalated to it), a `reviewer` reads everything and changes nothing.
//! Each action is audited with the role that took it, through the same
//! engine calls as the command line. Refusals are JSON with a `reason`,
//! counted in `/metrics`; callers are rate limited.

pub mod auth;
pub(super) mod follow_ups;
pub(super) mod refusal;
mod runs;

use super::App;
use crate::follow_up::notices::Roles;
use crate::pipeline::RunError;
use crate::store::Store;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use refusal::{Refusal, refusal};
use std::sync::{Arc, Mutex};

/// The largest body an action takes.
pub(super) const MAX_ACTION_BYTES: usize = 16 * 1024;
/// The most rows a list answers with.
pub(super) const MAX_LISTED: usize = 500;

/// What the API needs beside the rest of the service.
pub struct Api {
    pub tokens: auth::Tokens,
    pub limit: auth::RateLimit,
    pub roles: Roles,
    /// Acknowledgements and resolutions, one at a time.
    pub writer: Mutex<crate::pipeline::Engine>,
}

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/runs", get(runs::list_runs))
        .route("/v1/runs/{id}", get(runs::show_run))
        .route("/v1/follow-ups", get(follow_ups::list_follow_ups))
        .route("/v1/follow-ups/{id}", get(follow_ups::show_follow_up))
        .route("/v1/follow-ups/{id}/ack", post(follow_ups::acknowledge))
        .route("/v1/follow-ups/{id}/resolve", post(follow_ups::resolve))
        .route("/v1/audit/head", get(runs::audit_head))
        .route("/v1/openapi.json", get(openapi))
        .layer(DefaultBodyLimit::max(MAX_ACTION_BYTES))
}

/// The API as OpenAPI, generated from the handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "handoff", description = "The people's API of handoff serve."),
    paths(
        runs::list_runs,
        runs::show_run,
        follow_ups::list_follow_ups,
        follow_ups::show_follow_up,
        follow_ups::acknowledge,
        follow_ups::resolve,
        runs::audit_head
    ),
    components(schemas(follow_ups::ResolveBody, refusal::RefusalBody)),
    modifiers(&BearerTokens)
)]
pub struct ApiDoc;

struct BearerTokens;

impl utoipa::Modify for BearerTokens {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some("A role's token, from [roles.NAME] tokens"))
                        .build(),
                ),
            );
    }
}

/// The OpenAPI document; no token needed (it describes, it holds no data).
async fn openapi() -> Response {
    use utoipa::OpenApi;
    axum::Json(ApiDoc::openapi()).into_response()
}

/// Read the store on a blocking thread.
pub(super) async fn read<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&Store) -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let store = app.reader.lock().unwrap_or_else(|p| p.into_inner());
        f(&store)
    })
    .await
    .unwrap_or_else(|_| {
        Err(refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed",
            "the read stopped",
        ))
    })
}

/// Run an action on the writing engine, on a blocking thread.
pub(super) async fn write<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&mut crate::pipeline::Engine) -> Result<T, RunError> + Send + 'static,
) -> Result<T, Refusal> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let mut engine = app.api.writer.lock().unwrap_or_else(|p| p.into_inner());
        let done = f(&mut engine).map_err(Refusal::from)?;
        // Answered only once it would survive a power cut.
        engine.store().durable_blocking().map_err(Refusal::from)?;
        Ok(done)
    })
    .await
    .unwrap_or_else(|_| {
        Err(refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed",
            "the action stopped",
        ))
    })
}
