//! The people's API on `handoff serve`, JSON in and out: runs with their
//! timelines, follow-up packets, acknowledging and resolving them, and the
//! audit head. Every request names its role with a bearer token
//! ([`auth`]); a role reads and acts on its own packets only (routed or
//! escalated to it), a `reviewer` reads everything and changes nothing.
//! Each action is audited with the role that took it, through the same
//! engine calls as the command line. Refusals are JSON with a `reason`,
//! counted in `/metrics`; callers are rate limited.

pub mod auth;

use super::App;
use super::workers::RunTicket;
use crate::config::roles::Scope;
use crate::follow_up::{FollowUp, Resolution, notices::Roles};
use crate::model::ResolutionVerdict;
use crate::pipeline::RunError;
use crate::store::{Store, StoreError, follow_ups, runs, steps};
use auth::Principal;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// The largest body an action takes.
const MAX_ACTION_BYTES: usize = 16 * 1024;
/// The longest note a resolution keeps.
const MAX_NOTE_BYTES: usize = 4096;
/// The most rows a list answers with.
const MAX_LISTED: usize = 500;

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
        .route("/v1/runs", get(list_runs))
        .route("/v1/runs/{id}", get(show_run))
        .route("/v1/follow-ups", get(list_follow_ups))
        .route("/v1/follow-ups/{id}", get(show_follow_up))
        .route("/v1/follow-ups/{id}/ack", post(acknowledge))
        .route("/v1/follow-ups/{id}/resolve", post(resolve))
        .route("/v1/audit/head", get(audit_head))
        .route("/v1/openapi.json", get(openapi))
        .layer(DefaultBodyLimit::max(MAX_ACTION_BYTES))
}

/// What a refusal answers with.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RefusalBody {
    /// Stable, for programs: `unauthenticated`, `forbidden`, `not-found`,
    /// `conflict`, `bad-query`, `bad-body`, `too-large`, `rate-limited`...
    reason: String,
    /// For people: what went wrong and what to do.
    error: String,
}

/// The API as OpenAPI, generated from the handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "handoff", description = "The people's API of handoff serve."),
    paths(list_runs, show_run, list_follow_ups, show_follow_up, acknowledge, resolve, audit_head),
    components(schemas(ResolveBody, RefusalBody)),
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

/// A refusal: its status, a stable reason, and what to do.
pub struct Refusal {
    status: StatusCode,
    reason: &'static str,
    error: String,
    retry_after: Option<u64>,
}

fn refusal(status: StatusCode, reason: &'static str, error: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason,
        error: error.into(),
        retry_after: None,
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        tracing::error!(error = %e, "the API could not read the store");
        refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            "the store could not be read; try again",
        )
    }
}

impl From<RunError> for Refusal {
    fn from(e: RunError) -> Refusal {
        match e {
            RunError::NoSuchFollowUp(id) => refusal(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("no follow-up {id}"),
            ),
            e @ (RunError::AlreadyResolved(_) | RunError::AlreadyAcknowledged { .. }) => {
                refusal(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            RunError::Store(e) => e.into(),
            e => {
                tracing::error!(error = %e, "an API action failed");
                refusal(StatusCode::INTERNAL_SERVER_ERROR, "failed", e.to_string())
            }
        }
    }
}

type Answer = Result<Response, Refusal>;

/// Count a refusal and answer it.
fn answer(app: &App, result: Answer) -> Response {
    match result {
        Ok(r) => r,
        Err(r) => {
            app.metrics.refuse(&format!("api-{}", r.reason));
            let mut response = (
                r.status,
                axum::Json(json!({ "reason": r.reason, "error": r.error })),
            )
                .into_response();
            let headers = response.headers_mut();
            if r.status == StatusCode::UNAUTHORIZED {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    "Bearer".parse().expect("a header"),
                );
            }
            if let Some(secs) = r.retry_after {
                headers.insert(header::RETRY_AFTER, secs.into());
            }
            response
        }
    }
}

fn ok(value: Value) -> Answer {
    Ok(axum::Json(value).into_response())
}

/// The caller, from its bearer token, within its rate.
fn caller(app: &App, headers: &HeaderMap) -> Result<Principal, Refusal> {
    let limited = |caller: &str| {
        app.api.limit.take(caller).map(|secs| Refusal {
            retry_after: Some(secs),
            ..refusal(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!("too many requests; try again in {secs} s"),
            )
        })
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let found = presented
        .and_then(|t| app.api.tokens.identify(t.trim()))
        .cloned();
    match found {
        Some(p) => match limited(&p.role) {
            Some(r) => Err(r),
            None => Ok(p),
        },
        None => {
            // Everyone not yet known shares one bucket: guessing is slow.
            if let Some(r) = limited("") {
                return Err(r);
            }
            Err(refusal(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                match presented {
                    None => {
                        "send Authorization: Bearer TOKEN (a role's token from [roles.NAME] tokens)"
                    }
                    Some(_) => "the token is not one of any role",
                },
            ))
        }
    }
}

/// Read the store on a blocking thread.
async fn read<T: Send + 'static>(
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

/// Whether `role` may see and act on packets routed to `route_to`: it is
/// that role, or on its escalation chain.
fn owns(roles: &Roles, role: &str, route_to: &str) -> bool {
    let mut at = route_to;
    for _ in 0..=roles.len() {
        if at == role {
            return true;
        }
        match roles.get(at).and_then(|r| r.escalate_to.as_deref()) {
            Some(next) => at = next,
            None => return false,
        }
    }
    false
}

fn may_see(app: &App, who: &Principal, f: &FollowUp) -> Result<(), Refusal> {
    if who.scope == Scope::Reviewer || owns(&app.api.roles, &who.role, &f.packet.route_to) {
        Ok(())
    } else {
        Err(refusal(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "follow-up {} is routed to {}, not to {} or the roles it escalates to",
                f.id, f.packet.route_to, who.role
            ),
        ))
    }
}

fn may_act(who: &Principal) -> Result<(), Refusal> {
    match who.scope {
        Scope::Role => Ok(()),
        Scope::Reviewer => Err(refusal(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("{} reviews: it reads and does not act", who.role),
        )),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RunsQuery {
    /// An outcome, or `unfinished`.
    outcome: Option<String>,
    /// At most this many (default 100, at most 500).
    limit: Option<usize>,
}

/// Runs, newest first.
#[utoipa::path(get, path = "/v1/runs", params(RunsQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The runs", body = Vec<Object>),
        (status = 400, description = "An unknown outcome or parameter", body = RefusalBody),
        (status = 401, description = "No token, or one of no role", body = RefusalBody),
        (status = 429, description = "Past the caller's rate; see Retry-After", body = RefusalBody)))]
async fn list_runs(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        caller(&app, &headers)?;
        let Query(q) =
            query.map_err(|e| refusal(StatusCode::BAD_REQUEST, "bad-query", e.body_text()))?;
        let which = match q.outcome.as_deref() {
            None => runs::Which::All,
            Some("unfinished") => runs::Which::Unfinished,
            Some(o) => runs::Which::Ended(crate::model::Outcome::parse(o).ok_or_else(|| {
                refusal(
                    StatusCode::BAD_REQUEST,
                    "bad-query",
                    format!(
                        "outcome {o:?}: one of {}, or unfinished",
                        crate::model::Outcome::names()
                    ),
                )
            })?),
        };
        let limit = q.limit.unwrap_or(100).min(MAX_LISTED);
        let list = read(&app, move |s| Ok(runs::list(&*s.conn()?, limit, which)?)).await?;
        ok(json!(list))
    }
    .await;
    answer(&app, result)
}

/// One run: its steps, its follow-ups and its audit timeline.
#[utoipa::path(get, path = "/v1/runs/{id}", params(("id" = String, Path, description = "The run id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The run, `steps`, `follow_ups`, `timeline`", body = Object),
        (status = 404, description = "No such run", body = RefusalBody),
        (status = 401, description = "No token, or one of no role", body = RefusalBody),
        (status = 429, description = "Past the caller's rate; see Retry-After", body = RefusalBody)))]
async fn show_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        caller(&app, &headers)?;
        let shown = read(&app, move |s| {
            let conn = s.conn()?;
            let Some(run) = runs::get(&conn, &id)? else {
                return Err(refusal(StatusCode::NOT_FOUND, "not-found", format!("no run {id}")));
            };
            let steps = steps::for_run(&conn, &id)?;
            let follow_ups = follow_ups::for_run(&conn, &id)?;
            drop(conn);
            let timeline = s.audit_rows(Some(&id))?;
            Ok(json!({ "run": run, "steps": steps, "follow_ups": follow_ups, "timeline": timeline }))
        })
        .await?;
        ok(shown)
    }
    .await;
    answer(&app, result)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct FollowUpsQuery {
    /// Only those routed to this role.
    role: Option<String>,
    /// `open` (default), `acknowledged`, `overdue`, `resolved` or `all`.
    status: Option<String>,
}

/// Follow-up packets: the caller's own (routed or escalated to its role),
/// or every one for a reviewer.
#[utoipa::path(get, path = "/v1/follow-ups", params(FollowUpsQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The packets, newest first", body = Vec<Object>),
        (status = 400, description = "An unknown status or parameter", body = RefusalBody),
        (status = 403, description = "Not the caller's packet, or a reviewer acting", body = RefusalBody),
        (status = 401, description = "No token, or one of no role", body = RefusalBody),
        (status = 429, description = "Past the caller's rate; see Retry-After", body = RefusalBody)))]
async fn list_follow_ups(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<FollowUpsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        let who = caller(&app, &headers)?;
        let Query(q) =
            query.map_err(|e| refusal(StatusCode::BAD_REQUEST, "bad-query", e.body_text()))?;
        if let (Some(role), Scope::Role) = (&q.role, who.scope)
            && !owns(&app.api.roles, &who.role, role)
        {
            return Err(refusal(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "{} may list its own follow-ups only, not {role}'s",
                    who.role
                ),
            ));
        }
        let status = q.status.unwrap_or_else(|| "open".into());
        if !["open", "acknowledged", "overdue", "resolved", "all"].contains(&status.as_str()) {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "bad-query",
                format!("status {status:?}: one of open, acknowledged, overdue, resolved, all"),
            ));
        }
        let app2 = app.clone();
        let list = read(&app, move |s| {
            let now = crate::store::now_rfc3339();
            let which = follow_ups::Which {
                resolved_too: matches!(status.as_str(), "resolved" | "all"),
                route_to: q.role.as_deref(),
                due_before: (status == "overdue").then_some(now.as_str()),
            };
            let all = follow_ups::list(&*s.conn()?, which)?;
            Ok(all
                .into_iter()
                .filter(|f| match status.as_str() {
                    "acknowledged" => f.is_open() && f.acknowledged_at.is_some(),
                    "resolved" => !f.is_open(),
                    _ => true,
                })
                .filter(|f| {
                    who.scope == Scope::Reviewer
                        || owns(&app2.api.roles, &who.role, &f.packet.route_to)
                })
                .take(MAX_LISTED)
                .collect::<Vec<_>>())
        })
        .await?;
        ok(json!(list))
    }
    .await;
    answer(&app, result)
}

/// One packet, its resolution and its notices.
#[utoipa::path(get, path = "/v1/follow-ups/{id}", params(("id" = i64, Path, description = "The follow-up id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The follow-up with its `notices`", body = Object),
        (status = 404, description = "No such follow-up", body = RefusalBody),
        (status = 403, description = "Not the caller's packet, or a reviewer acting", body = RefusalBody),
        (status = 401, description = "No token, or one of no role", body = RefusalBody),
        (status = 429, description = "Past the caller's rate; see Retry-After", body = RefusalBody)))]
async fn show_follow_up(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let result = async {
        let who = caller(&app, &headers)?;
        let (f, notices) = read(&app, move |s| {
            let conn = s.conn()?;
            let f = follow_ups::get(&conn, id)?.ok_or_else(|| {
                refusal(
                    StatusCode::NOT_FOUND,
                    "not-found",
                    format!("no follow-up {id}"),
                )
            })?;
            let notices = crate::store::notices::for_follow_up(&conn, id)?;
            Ok((f, notices))
        })
        .await?;
        may_see(&app, &who, &f)?;
        let mut shown = json!(f);
        shown["notices"] = json!(notices);
        ok(shown)
    }
    .await;
    answer(&app, result)
}

/// The follow-up, checked as the caller's to act on.
async fn owned(app: &Arc<App>, who: &Principal, id: i64) -> Result<FollowUp, Refusal> {
    may_act(who)?;
    let f = read(app, move |s| {
        follow_ups::get(&*s.conn()?, id)?.ok_or_else(|| {
            refusal(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("no follow-up {id}"),
            )
        })
    })
    .await?;
    may_see(app, who, &f)?;
    Ok(f)
}

/// Run an action on the writing engine, on a blocking thread.
async fn write<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&mut crate::pipeline::Engine) -> Result<T, RunError> + Send + 'static,
) -> Result<T, Refusal> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let mut engine = app.api.writer.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut engine).map_err(Refusal::from)
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

/// The caller's role takes the packet on.
#[utoipa::path(post, path = "/v1/follow-ups/{id}/ack", params(("id" = i64, Path, description = "The follow-up id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`follow_up`, `acknowledged_by`", body = Object),
        (status = 404, description = "No such follow-up", body = RefusalBody),
        (status = 409, description = "Already acknowledged or resolved", body = RefusalBody),
        (status = 403, description = "Not the caller's packet, or a reviewer acting", body = RefusalBody),
        (status = 401, description = "No token, or one of no role", body = RefusalBody),
        (status = 429, description = "Past the caller's rate; see Retry-After", body = RefusalBody)))]
async fn acknowledge(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let result = async {
        let who = caller(&app, &headers)?;
        owned(&app, &who, id).await?;
        let by = who.role.clone();
        write(&app, move |e| e.acknowledge(id, &by)).await?;
        ok(json!({ "follow_up": id, "acknowledged_by": who.role }))
    }
    .await;
    answer(&app, result)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    /// `resume`, `abandon` or `mark-resolved`.
    action: String,
    /// Why (kept with the follow-up, not in the audit chain; at most 4 KiB).
    #[serde(default)]
    note: String,
    /// `needed`, or `unnecessary` (a false positive of the automation).
    verdict: Option<String>,
}

/// The caller's role decides the packet; `resume` drives the run again.
#[utoipa::path(post, path = "/v1/follow-ups/{id}/resolve", params(("id" = i64, Path, description = "The follow-up id")),
    request_body = ResolveBody, security(("bearer" = [])),
    responses(
        (status = 202, description = "`follow_up`, `resolution`, `by`, `run_id`", body = Object),
        (status = 400, description = "Not the body described", body = RefusalBody),
        (status = 404, description = "No such follow-up", body = RefusalBody),
        (status = 409, description = "Already resolved", body = RefusalBody),
        (status = 413, description = "A body over 16 KiB or a note over 4 KiB", body = RefusalBody),
        (status = 403, description = "Not the caller's packet, or a reviewer acting", body = RefusalBody),
        (status = 401, description = "No token, or one of no role", body = RefusalBody),
        (status = 429, description = "Past the caller's rate; see Retry-After", body = RefusalBody)))]
async fn resolve(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    let result = async {
        let who = caller(&app, &headers)?;
        let body: ResolveBody = serde_json::from_slice(&body).map_err(|e| {
            refusal(
                StatusCode::BAD_REQUEST,
                "bad-body",
                format!(
                    "{e}; send {{\"action\": \"resume|abandon|mark-resolved\", \"note\": \"why\"}}"
                ),
            )
        })?;
        let resolution = Resolution::parse(&body.action).ok_or_else(|| {
            refusal(
                StatusCode::BAD_REQUEST,
                "bad-body",
                format!("action {:?}: one of {}", body.action, Resolution::names()),
            )
        })?;
        let verdict = match body.verdict.as_deref() {
            None => None,
            Some(v) => Some(ResolutionVerdict::parse(v).ok_or_else(|| {
                refusal(
                    StatusCode::BAD_REQUEST,
                    "bad-body",
                    format!("verdict {v:?}: one of {}", ResolutionVerdict::names()),
                )
            })?),
        };
        if resolution == Resolution::Resume && verdict.is_some() {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "bad-body",
                "a verdict goes with mark-resolved or abandon: a resumed packet needed a person",
            ));
        }
        if body.note.len() > MAX_NOTE_BYTES {
            return Err(refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!(
                    "the note is {} bytes; at most {MAX_NOTE_BYTES}",
                    body.note.len()
                ),
            ));
        }
        owned(&app, &who, id).await?;
        let by = who.role.clone();
        let (run_id, event_id) = write(&app, move |e| {
            e.decide(id, resolution, &by, &body.note, verdict)
        })
        .await?;
        if resolution == Resolution::Resume {
            // Driven by a worker like any run; if the service stops first,
            // the run is unfinished in the store and resumes at the next start.
            if let Ok(permit) = app.queue.clone().reserve_owned().await {
                permit.send(RunTicket {
                    run_id: run_id.clone(),
                    event_id,
                });
            }
        }
        Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({
                "follow_up": id, "resolution": resolution.name(), "by": who.role, "run_id": run_id,
            })),
        )
            .into_response())
    }
    .await;
    answer(&app, result)
}

/// The audit chain's newest row, as an anchor to keep.
#[utoipa::path(get, path = "/v1/audit/head", security(("bearer" = [])),
    responses(
        (status = 200, description = "`seq`, `hash`, `anchor` (SEQ:HASH)", body = Object),
        (status = 401, description = "No token, or one of no role", body = RefusalBody),
        (status = 429, description = "Past the caller's rate; see Retry-After", body = RefusalBody)))]
async fn audit_head(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let result = async {
        caller(&app, &headers)?;
        let head = read(&app, |s| Ok(s.audit_head()?)).await?;
        ok(match head {
            Some(anchor) => {
                json!({ "seq": anchor.seq, "hash": anchor.hash, "anchor": anchor.to_string() })
            }
            None => json!({ "seq": 0, "hash": null, "anchor": null }),
        })
    }
    .await;
    answer(&app, result)
}
