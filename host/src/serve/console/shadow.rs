//! The shadow report as a page: for the newest shadowed runs, whether
//! people did what a policy in shadow mode would have done. The targets are
//! observed again for every view, through reading-only instances.

use super::super::App;
use super::super::api::refusal::{Refusal, refusal};
use super::{Frame, NoParameters, html, refused, visit};
use crate::pipeline::shadow::report::{RunVerdict, Verdict};
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use std::sync::Arc;

/// How many shadowed runs the page looks at (the newest).
const RUNS_SHOWN: usize = 100;

#[derive(Template)]
#[template(path = "console/shadow.html")]
struct ShadowPage {
    frame: Option<Frame>,
    runs: Vec<RunVerdict>,
    counts: Vec<(&'static str, usize)>,
    shown: usize,
}

pub(super) async fn report(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    let (v, NoParameters {}) = match visit(&app, &headers, &uri) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let app2 = app.clone();
    // The report calls adapters (async) on the API's engine, which lives
    // on blocking threads beside the store.
    let found = tokio::task::spawn_blocking(move || {
        let mut engine = app2.api.writer.lock().unwrap_or_else(|p| p.into_inner());
        tokio::runtime::Handle::current()
            .block_on(engine.shadow_report(None, RUNS_SHOWN))
            .map_err(Refusal::from)
    })
    .await
    .unwrap_or_else(|_| {
        Err(refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed",
            "the report stopped",
        ))
    });
    match found {
        Ok(runs) => {
            let counts = [
                Verdict::Same,
                Verdict::Different,
                Verdict::Nothing,
                Verdict::WouldStop,
                Verdict::NothingToDo,
                Verdict::Unknown,
            ]
            .into_iter()
            .map(|verdict| {
                (
                    verdict.says(),
                    runs.iter().filter(|r| r.verdict == verdict).count(),
                )
            })
            .collect();
            html(
                StatusCode::OK,
                &ShadowPage {
                    frame: Some(Frame::of(&v, "shadow")),
                    counts,
                    runs,
                    shown: RUNS_SHOWN,
                },
            )
        }
        Err(r) => refused(&app, Some(&v), r),
    }
}
