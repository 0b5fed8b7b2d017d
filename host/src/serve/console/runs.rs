//! Runs, filtered by outcome and policy, and one run's steps, follow-ups
//! and audit timeline.

use super::super::App;
use super::super::api::refusal::{refusal, shown};
use super::super::api::{MAX_LISTED, read};
use super::{Frame, html, refused, visit};
use crate::audit::Row;
use crate::follow_up::FollowUp;
use crate::model::Outcome;
use crate::store::runs::{self, RunRecord};
use crate::store::steps::{self, StepRow};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use std::sync::Arc;

/// How much of an audit row's payload the timeline shows.
const PAYLOAD_CHARS: usize = 400;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunsQuery {
    outcome: Option<String>,
    policy: Option<String>,
}

#[derive(Template)]
#[template(path = "console/runs.html")]
struct RunsPage {
    frame: Option<Frame>,
    outcome: String,
    policy: String,
    outcomes: Vec<&'static str>,
    policies: Vec<String>,
    runs: Vec<RunRecord>,
    scanned: usize,
}

pub(super) async fn list(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    let (v, q): (_, RunsQuery) = match visit(&app, &headers, &uri) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let outcome = q.outcome.unwrap_or_default();
    let which = match runs::Which::parse(&outcome) {
        Ok(which) => which,
        Err(e) => {
            return refused(
                &app,
                Some(&v),
                refusal(StatusCode::BAD_REQUEST, "bad-query", e),
            );
        }
    };
    let policy = q.policy.unwrap_or_default();
    let wanted = policy.clone();
    let found = read(&app, move |s| {
        Ok(runs::list(&*s.conn()?, MAX_LISTED, which)?)
    })
    .await;
    match found {
        Ok(all) => {
            let scanned = all.len();
            let mut policies: Vec<String> = all.iter().map(|r| r.policy_id.clone()).collect();
            policies.sort();
            policies.dedup();
            let runs = all
                .into_iter()
                .filter(|r| wanted.is_empty() || r.policy_id == wanted)
                .collect();
            let mut outcomes: Vec<&'static str> = Outcome::ALL
                .iter()
                .filter(|o| o.ends_a_run())
                .map(|o| o.name())
                .collect();
            outcomes.push("unfinished");
            html(
                StatusCode::OK,
                &RunsPage {
                    frame: Some(Frame::of(&v, "runs")),
                    outcome,
                    policy,
                    outcomes,
                    policies,
                    runs,
                    scanned,
                },
            )
        }
        Err(r) => refused(&app, Some(&v), r),
    }
}

/// One row of a run's timeline.
struct Event {
    row: Row,
    payload: String,
}

#[derive(Template)]
#[template(path = "console/run.html")]
struct RunPage {
    frame: Option<Frame>,
    run: RunRecord,
    steps: Vec<StepRow>,
    follow_ups: Vec<FollowUp>,
    timeline: Vec<Event>,
    resumed: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunQuery {
    resumed: Option<i64>,
}

pub(super) async fn show(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    let (v, q): (_, RunQuery) = match visit(&app, &headers, &uri) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let resumed = q.resumed;
    let found = read(&app, move |s| {
        let conn = s.conn()?;
        let Some(run) = runs::get(&conn, &id)? else {
            return Err(refusal(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("no run {}", shown(&id)),
            ));
        };
        let steps = steps::for_run(&conn, &id)?;
        let follow_ups = crate::store::follow_ups::for_run(&conn, &id)?;
        drop(conn);
        let timeline = s
            .audit_rows(Some(&id))?
            .into_iter()
            .map(|row| Event {
                payload: shorten(&row.payload),
                row,
            })
            .collect();
        Ok((run, steps, follow_ups, timeline))
    })
    .await;
    match found {
        Ok((run, steps, follow_ups, timeline)) => html(
            StatusCode::OK,
            &RunPage {
                frame: Some(Frame::of(&v, "runs")),
                run,
                steps,
                follow_ups,
                timeline,
                resumed,
            },
        ),
        Err(r) => refused(&app, Some(&v), r),
    }
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(PAYLOAD_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}
