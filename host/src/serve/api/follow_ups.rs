//! Follow-up packets: listed and shown to the roles they are for, taken on
//! and resolved by them.

use super::super::App;
use super::super::workers::RunTicket;
use super::auth::{Principal, caller, may_act, may_see, owns};
use super::refusal::{
    Refusal, RefusalBody, answer, bad_query, follow_up_id, json_body, no_follow_up, no_query, ok,
    refusal, taken,
};
use super::{MAX_ACTION_BYTES, MAX_LISTED, read, write};
use crate::config::roles::Scope;
use crate::follow_up::MAX_NOTE_BYTES;
use crate::follow_up::{FollowUp, Resolution};
use crate::model::ResolutionVerdict;
use crate::store::follow_ups;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct FollowUpsQuery {
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
pub(super) async fn list_follow_ups(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<FollowUpsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        let who = caller(&app, &headers)?;
        let Query(q) = query.map_err(|e| {
            bad_query(
                e,
                "role=R (a role) and status=S (open, acknowledged, overdue, resolved or all)",
            )
        })?;
        if let (Some(role), Scope::Role) = (&q.role, who.scope)
            && !owns(&app.api.roles, &who.role, role)
        {
            return Err(refusal(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "{} may list its own follow-ups only, not role {role:?}'s",
                    who.role
                ),
            ));
        }
        let status = q.status.unwrap_or_else(|| "open".into());
        if !STATUSES.contains(&status.as_str()) {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "bad-query",
                format!("status {status:?}: one of open, acknowledged, overdue, resolved, all"),
            ));
        }
        let app2 = app.clone();
        let list = read(&app, move |s| {
            let now = crate::store::now_rfc3339();
            packets(s, &app2.api.roles, &who, &status, q.role.as_deref(), &now)
        })
        .await?;
        ok(json!(list))
    }
    .await;
    answer(&app, result)
}

/// The statuses a list of packets can be asked for.
pub(in crate::serve) const STATUSES: [&str; 5] =
    ["open", "overdue", "acknowledged", "resolved", "all"];

/// The packets `who` may see (routed or escalated to its role; a reviewer:
/// all) with `status` (one of [`STATUSES`]), only those routed to `role`
/// when given; newest first, at most [`MAX_LISTED`]. `now` says what is
/// overdue. (The API's list and the console's inbox.)
pub(in crate::serve) fn packets(
    store: &crate::store::Store,
    roles: &crate::follow_up::notices::Roles,
    who: &Principal,
    status: &str,
    role: Option<&str>,
    now: &str,
) -> Result<Vec<FollowUp>, Refusal> {
    let which = follow_ups::Which {
        resolved_too: matches!(status, "resolved" | "all"),
        route_to: role,
        due_before: (status == "overdue").then_some(now),
    };
    Ok(follow_ups::list(&*store.conn()?, which)?
        .into_iter()
        .filter(|f| match status {
            "acknowledged" => f.is_open() && f.acknowledged_at.is_some(),
            "resolved" => !f.is_open(),
            _ => true,
        })
        .filter(|f| who.scope == Scope::Reviewer || owns(roles, &who.role, &f.packet.route_to))
        .take(MAX_LISTED)
        .collect())
}

/// One packet, its resolution and its notices.
#[utoipa::path(get, path = "/v1/follow-ups/{id}", params(("id" = i64, Path, description = "The follow-up id")),
    security(("bearer" = [])),
    responses(
        (status = 400, description = "A query parameter (it takes none)", body = RefusalBody),
        (status = 200, description = "The follow-up with its `notices`", body = Object),
        (status = 404, description = "No such follow-up", body = RefusalBody),
        (status = 403, description = "Not the caller's packet, or a reviewer acting", body = RefusalBody),
        (status = 401, description = "No token, or one of no role", body = RefusalBody),
        (status = 429, description = "Past the caller's rate; see Retry-After", body = RefusalBody)))]
pub(super) async fn show_follow_up(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let who = caller(&app, &headers)?;
        no_query(query.as_deref())?;
        let id = follow_up_id(&id)?;
        let (f, notices) = read(&app, move |s| {
            let conn = s.conn()?;
            let f = follow_ups::get(&conn, id)?.ok_or_else(|| no_follow_up(id))?;
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
        follow_ups::get(&*s.conn()?, id)?.ok_or_else(|| no_follow_up(id))
    })
    .await?;
    may_see(app, who, &f)?;
    Ok(f)
}

/// An ack's body, when it has one: nothing. Who takes the packet on is the
/// caller's role, never a name in the body (a client sending `{"by": ...}`
/// is told so, not answered as if its name were taken).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {}

/// The caller's role takes the packet on. The body is empty or `{}`.
#[utoipa::path(post, path = "/v1/follow-ups/{id}/ack", params(("id" = i64, Path, description = "The follow-up id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`follow_up`, `acknowledged_by`", body = Object),
        (status = 400, description = "A body other than none or `{}`; or a query parameter (it takes none)", body = RefusalBody),
        (status = 404, description = "No such follow-up", body = RefusalBody),
        (status = 409, description = "Already acknowledged or resolved", body = RefusalBody),
        (status = 415, description = "A body sent as other than application/json", body = RefusalBody),
        (status = 403, description = "Not the caller's packet, or a reviewer acting", body = RefusalBody),
        (status = 401, description = "No token, or one of no role", body = RefusalBody),
        (status = 429, description = "Past the caller's rate; see Retry-After", body = RefusalBody)))]
pub(super) async fn acknowledge(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let who = caller(&app, &headers)?;
        no_query(query.as_deref())?;
        let id = follow_up_id(&id)?;
        let body = taken(body, MAX_ACTION_BYTES)?;
        json_body(&headers, &body)?;
        if !body.trim_ascii().is_empty() {
            crate::model::json::object_from_slice::<AckBody>(&body).map_err(|e| {
                refusal(
                    StatusCode::BAD_REQUEST,
                    "bad-body",
                    format!(
                        "{e}; an ack takes no body (or {{}}): who takes the packet on is the \
                         token's role"
                    ),
                )
            })?;
        }
        take_on(&app, &who, id).await?;
        ok(json!({ "follow_up": id, "acknowledged_by": who.role }))
    }
    .await;
    answer(&app, result)
}

/// `who` takes follow-up `id` on (the API's ack, the console's button).
pub(in crate::serve) async fn take_on(
    app: &Arc<App>,
    who: &Principal,
    id: i64,
) -> Result<(), Refusal> {
    owned(app, who, id).await?;
    let by = who.role.clone();
    write(app, move |e| e.acknowledge(id, &by)).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(in crate::serve) struct ResolveBody {
    /// `resume`, `abandon` or `mark-resolved`.
    pub action: String,
    /// Why (kept with the follow-up, not in the audit chain; at most 4 KiB).
    #[serde(default)]
    pub note: String,
    /// `needed`, or `unnecessary` (a false positive of the automation).
    pub verdict: Option<String>,
}

/// The caller's role decides the packet; `resume` drives the run again.
#[utoipa::path(post, path = "/v1/follow-ups/{id}/resolve", params(("id" = i64, Path, description = "The follow-up id")),
    request_body = ResolveBody, security(("bearer" = [])),
    responses(
        (status = 202, description = "`follow_up`, `resolution`, `by`, `run_id`", body = Object),
        (status = 400, description = "Not the body described; or a query parameter (it takes none)", body = RefusalBody),
        (status = 404, description = "No such follow-up", body = RefusalBody),
        (status = 409, description = "Already resolved", body = RefusalBody),
        (status = 413, description = "A body over 16 KiB or a note over 4 KiB", body = RefusalBody),
        (status = 415, description = "A body sent as other than application/json", body = RefusalBody),
        (status = 403, description = "Not the caller's packet, or a reviewer acting", body = RefusalBody),
        (status = 401, description = "No token, or one of no role", body = RefusalBody),
        (status = 429, description = "Past the caller's rate; see Retry-After", body = RefusalBody)))]
pub(super) async fn resolve(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let who = caller(&app, &headers)?;
        no_query(query.as_deref())?;
        let id = follow_up_id(&id)?;
        let body = taken(body, MAX_ACTION_BYTES)?;
        json_body(&headers, &body)?;
        let body: ResolveBody = crate::model::json::object_from_slice(&body).map_err(|e| {
            refusal(
                StatusCode::BAD_REQUEST,
                "bad-body",
                format!(
                    "{e}; send {{\"action\": \"resume|abandon|mark-resolved\", \"note\": \"why\"}}"
                ),
            )
        })?;
        let (resolution, run_id) = decide(&app, &who, id, body).await?;
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

/// `who` resolves follow-up `id` as `body` says (the API's resolve, the
/// console's form); a resumed run is handed to the workers. The resolution
/// taken and the run's id.
pub(in crate::serve) async fn decide(
    app: &Arc<App>,
    who: &Principal,
    id: i64,
    body: ResolveBody,
) -> Result<(Resolution, String), Refusal> {
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
        return Err(crate::pipeline::RunError::NoteTooLong(body.note.len()).into());
    }
    owned(app, who, id).await?;
    let by = who.role.clone();
    let (run_id, event_id) = write(app, move |e| {
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
                traceparent: None,
            });
        }
    }
    Ok((resolution, run_id))
}
