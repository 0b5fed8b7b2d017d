//! A role's inbox and one packet with its ack and resolve forms. What a
//! role sees and may do is the API's rule ([`auth::may_see`],
//! [`auth::may_act`]); the actions are the API's own calls.

use super::super::App;
use super::super::api::follow_ups::{ResolveBody, STATUSES, decide, packets, take_on};
use super::super::api::refusal::{Refusal, follow_up_id, no_follow_up, refusal, taken};
use super::super::api::{auth, read};
use super::session::{self, Visitor};
use super::{Fields, Frame, MAX_FORM_BYTES, NoParameters, asked, form, html, refused, visit};
use crate::follow_up::{FollowUp, Resolution};
use crate::store::follow_ups;
use crate::store::notices::NoticeRow;
use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InboxQuery {
    status: Option<String>,
}

/// One row of an inbox.
struct Row {
    f: FollowUp,
    overdue: bool,
}

#[derive(Template)]
#[template(path = "console/inbox.html")]
struct Inbox {
    frame: Option<Frame>,
    status: String,
    statuses: [&'static str; 5],
    rows: Vec<Row>,
    now: String,
}

/// The packets the visitor's role owns (a reviewer: all), overdue first,
/// then by due time.
pub(super) async fn inbox(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    let (v, q): (_, InboxQuery) = match visit(&app, &headers, &uri) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let status = q.status.unwrap_or_else(|| "open".into());
    if !STATUSES.contains(&status.as_str()) {
        let why = format!("status {status:?}: one of {}", STATUSES.join(", "));
        return refused(
            &app,
            Some(&v),
            refusal(StatusCode::BAD_REQUEST, "bad-query", why),
        );
    }
    let now = crate::store::now_rfc3339();
    let (app2, who, wanted, at) = (app.clone(), v.who.clone(), status.clone(), now.clone());
    let rows = read(&app, move |s| {
        let mut rows: Vec<Row> = packets(s, &app2.api.roles, &who, &wanted, None, &at)?
            .into_iter()
            .map(|f| Row {
                overdue: f.is_overdue(&at),
                f,
            })
            .collect();
        rows.sort_by(|a, b| {
            b.overdue
                .cmp(&a.overdue)
                .then_with(|| a.f.packet.due_at.cmp(&b.f.packet.due_at))
        });
        Ok(rows)
    })
    .await;
    match rows {
        Ok(rows) => html(
            StatusCode::OK,
            &Inbox {
                frame: Some(Frame::of(&v, "inbox")),
                status,
                statuses: STATUSES,
                rows,
                now,
            },
        ),
        Err(r) => refused(&app, Some(&v), r),
    }
}

#[derive(Template)]
#[template(path = "console/packet.html")]
struct PacketPage {
    frame: Option<Frame>,
    f: FollowUp,
    notices: Vec<NoticeRow>,
    overdue: bool,
    may_act: bool,
    actions: Vec<&'static str>,
    done: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PacketQuery {
    done: Option<String>,
}

/// One packet: what happened, what is left, its notices, and (for a role
/// that may act on it) the forms.
pub(super) async fn packet(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    let (v, q): (_, PacketQuery) = match visit(&app, &headers, &uri) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let id = match follow_up_id(&id) {
        Ok(id) => id,
        Err(r) => return refused(&app, Some(&v), r),
    };
    let done = q.done;
    // What a form's redirect says was just done: taken on, or resolved.
    if let Some(d) = &done
        && d != "acknowledged"
        && Resolution::parse(d).is_none()
    {
        let why = format!("done {d:?}: acknowledged, {}", Resolution::names());
        return refused(
            &app,
            Some(&v),
            refusal(StatusCode::BAD_REQUEST, "bad-query", why),
        );
    }
    let found = read(&app, move |s| {
        let conn = s.conn()?;
        let f = follow_ups::get(&conn, id)?.ok_or_else(|| no_follow_up(id))?;
        let notices = crate::store::notices::for_follow_up(&conn, id)?;
        Ok((f, notices))
    })
    .await
    .and_then(|(f, n)| auth::may_see(&app, &v.who, &f).map(|()| (f, n)));
    match found {
        Ok((f, notices)) => {
            let now = crate::store::now_rfc3339();
            let actions = f.packet.next_actions.iter().map(|r| r.name()).collect();
            html(
                StatusCode::OK,
                &PacketPage {
                    frame: Some(Frame::of(&v, "inbox")),
                    overdue: f.is_overdue(&now),
                    may_act: f.is_open() && auth::may_act(&v.who).is_ok(),
                    f,
                    notices,
                    actions,
                    done,
                },
            )
        }
        Err(r) => refused(&app, Some(&v), r),
    }
}

/// The visitor behind a form posted about follow-up `id`, checked: from
/// the console's own page, with the session's token. The follow-up's id
/// and the form's fields.
fn posted(
    app: &App,
    headers: &HeaderMap,
    uri: &Uri,
    id: &str,
    body: Result<Bytes, BytesRejection>,
    allowed: &[&str],
) -> Result<(Visitor, i64, Fields), (Option<Visitor>, Refusal)> {
    session::same_site(headers).map_err(|r| (None, r))?;
    let v = session::visitor(app, headers).ok_or_else(|| {
        (
            None,
            refusal(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "log in again: the session has ended",
            ),
        )
    })?;
    let fields = asked::<NoParameters>(uri)
        .and_then(|_| taken(body, MAX_FORM_BYTES))
        .and_then(|body| form(&body, allowed))
        .map_err(|r| (Some(v.clone()), r))?;
    session::check_csrf(&v, fields.get("csrf").map(String::as_str))
        .map_err(|r| (Some(v.clone()), r))?;
    let id = follow_up_id(id).map_err(|r| (Some(v.clone()), r))?;
    Ok((v, id, fields))
}

pub(super) async fn acknowledge(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (v, id, _) = match posted(&app, &headers, &uri, &id, body, &["csrf"]) {
        Ok(p) => p,
        Err((v, r)) => return refused(&app, v.as_ref(), r),
    };
    match take_on(&app, &v.who, id).await {
        Ok(()) => Redirect::to(&format!("/ui/follow-ups/{id}?done=acknowledged")).into_response(),
        Err(r) => refused(&app, Some(&v), r),
    }
}

pub(super) async fn resolve(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (v, id, mut fields) = match posted(
        &app,
        &headers,
        &uri,
        &id,
        body,
        &["csrf", "action", "note", "verdict"],
    ) {
        Ok(p) => p,
        Err((v, r)) => return refused(&app, v.as_ref(), r),
    };
    let body = ResolveBody {
        action: fields.remove("action").unwrap_or_default(),
        note: fields.remove("note").unwrap_or_default(),
        // The form's "no verdict" choice is an empty value.
        verdict: fields.remove("verdict").filter(|v| !v.is_empty()),
    };
    match decide(&app, &v.who, id, body).await {
        // A resumed run is followed on its own page, where it completes.
        Ok((Resolution::Resume, run_id)) => {
            Redirect::to(&format!("/ui/runs/{run_id}?resumed={id}")).into_response()
        }
        Ok((r, _)) => {
            Redirect::to(&format!("/ui/follow-ups/{id}?done={}", r.name())).into_response()
        }
        Err(r) => refused(&app, Some(&v), r),
    }
}
