//! Runs and the audit head, for every caller.

use super::super::App;
use super::auth::caller;
use super::refusal::{RefusalBody, answer, bad_query, no_query, ok, refusal, shown};
use super::{MAX_LISTED, read};
use crate::store::{follow_ups, runs, steps};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct RunsQuery {
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
pub(super) async fn list_runs(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        caller(&app, &headers)?;
        let Query(q) =
            query.map_err(|e| bad_query(e, "outcome=O (an outcome, or unfinished) and limit=N (a whole number; at most 500 are listed)"))?;
        let which = runs::Which::parse(q.outcome.as_deref().unwrap_or_default())
            .map_err(|e| refusal(StatusCode::BAD_REQUEST, "bad-query", e))?;
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
        (status = 400, description = "A query parameter (it takes none)", body = RefusalBody),
        (status = 200, description = "The run, `steps`, `follow_ups`, `timeline`", body = Object),
        (status = 404, description = "No such run", body = RefusalBody),
        (status = 401, description = "No token, or one of no role", body = RefusalBody),
        (status = 429, description = "Past the caller's rate; see Retry-After", body = RefusalBody)))]
pub(super) async fn show_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        caller(&app, &headers)?;
        no_query(query.as_deref())?;
        let shown = read(&app, move |s| {
            let conn = s.conn()?;
            let Some(run) = runs::get(&conn, &id)? else {
                return Err(refusal(StatusCode::NOT_FOUND, "not-found", format!("no run {}", shown(&id))));
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

/// The audit chain's newest row, as an anchor to keep.
#[utoipa::path(get, path = "/v1/audit/head", security(("bearer" = [])),
    responses(
        (status = 400, description = "A query parameter (it takes none)", body = RefusalBody),
        (status = 200, description = "`seq`, `hash`, `anchor` (SEQ:HASH)", body = Object),
        (status = 401, description = "No token, or one of no role", body = RefusalBody),
        (status = 429, description = "Past the caller's rate; see Retry-After", body = RefusalBody)))]
pub(super) async fn audit_head(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        caller(&app, &headers)?;
        no_query(query.as_deref())?;
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
