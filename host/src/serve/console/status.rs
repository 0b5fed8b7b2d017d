//! How the service stands: a dashboard of outcomes over time and the
//! handoff to people (open, overdue, MTTA, MTTR, rework, false positives,
//! duplicates suppressed), the audit chain verified to its head, and each
//! adapter instance's effective grant.

use super::super::App;
use super::super::api::read;
use super::{Frame, NoParameters, html, refused, visit};
use crate::audit::{self, Row};
use crate::readiness::Finding;
use crate::store::stats::Handoffs;
use crate::store::{Store, StoreError};
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use std::sync::Arc;

/// How far back the outcomes go.
const DAYS: u32 = 14;
/// How many of the newest audit rows the audit page lists.
const NEWEST_ROWS: usize = 20;

/// One day's outcomes.
struct Day {
    day: String,
    counts: Vec<(String, i64)>,
}

/// One policy and role's handoff, with its means worked out.
struct Handoff {
    h: Handoffs,
    mtta: String,
    mttr: String,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct Dashboard {
    frame: Option<Frame>,
    days: Vec<Day>,
    total_days: u32,
    open: f64,
    overdue: f64,
    mtta: String,
    mttr: String,
    duplicates: f64,
    notices_sent: f64,
    notices_failed: f64,
    handoffs: Vec<Handoff>,
}

/// A mean duration for people: "3 h 20 min", "45 s", or "-" with none.
fn mean(seconds: f64, count: f64) -> String {
    if count <= 0.0 {
        return "-".into();
    }
    let s = (seconds / count).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

pub(super) async fn dashboard(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let (v, NoParameters {}) = match visit(&app, &headers, &uri) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let found = read(&app, |s| Ok((s.stats()?, s.outcomes_by_day(DAYS)?))).await;
    let (stats, by_day) = match found {
        Ok(f) => f,
        Err(r) => return refused(&app, Some(&v), r),
    };
    let mut days: Vec<Day> = Vec::new();
    for (day, outcome, n) in by_day {
        match days.last_mut() {
            Some(d) if d.day == day => d.counts.push((outcome, n)),
            _ => days.push(Day {
                day,
                counts: vec![(outcome, n)],
            }),
        }
    }
    let counted = |name: &str| stats.counters.get(name).copied().unwrap_or(0.0);
    let sum = |prefix: &str| {
        stats
            .counters
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, n)| n)
            .sum::<f64>()
    };
    let handoffs = crate::store::stats::handoffs(&stats.counters)
        .into_iter()
        .map(|h| Handoff {
            mtta: mean(h.acknowledge_seconds, h.acknowledged),
            mttr: mean(h.resolve_seconds, h.resolved),
            h,
        })
        .collect();
    html(
        StatusCode::OK,
        &Dashboard {
            frame: Some(Frame::of(&v, "dashboard")),
            days,
            total_days: DAYS,
            open: stats.open,
            overdue: stats.overdue,
            mtta: mean(counted("acknowledged-seconds"), counted("acknowledged")),
            mttr: mean(counted("resolved-seconds"), counted("resolved")),
            duplicates: counted("duplicates"),
            notices_sent: sum("notices/sent/"),
            notices_failed: sum("notices/failed/"),
            handoffs,
        },
    )
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    frame: Option<Frame>,
    /// Rows verified and the head as an anchor, or where the chain breaks.
    verified: Result<(usize, String), String>,
    newest: Vec<Row>,
}

/// The chain recomputed now, from its first row to its head: row by row as
/// it is read (any length in the same memory), one view at a time, on a
/// connection of its own (the shared reader answers `/metrics` and
/// `/readyz` meanwhile).
pub(super) async fn audit(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    let (v, NoParameters {}) = match visit(&app, &headers, &uri) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let _one_at_a_time = app.console.verifying.lock().await;
    let path = app.shared.path().to_path_buf();
    let found = tokio::task::spawn_blocking(move || {
        let store = Store::open_unshared(&path)?;
        let verified = match store.verify_audit(&[])? {
            Ok(ok) => match audit::anchor::Anchor::head(&ok) {
                Some(head) => Ok((ok.rows, head.to_string())),
                None => Ok((0, String::new())),
            },
            Err(broken) => Err(broken.to_string()),
        };
        Ok::<_, StoreError>((verified, store.newest_audit_rows(NEWEST_ROWS)?))
    })
    .await;
    match found {
        Ok(Ok((verified, newest))) => html(
            StatusCode::OK,
            &AuditPage {
                frame: Some(Frame::of(&v, "audit")),
                verified,
                newest,
            },
        ),
        Ok(Err(e)) => refused(&app, Some(&v), e.into()),
        Err(_) => refused(
            &app,
            Some(&v),
            super::super::api::refusal::refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "failed",
                "the verification stopped",
            ),
        ),
    }
}

#[derive(Template)]
#[template(path = "console/adapters.html")]
struct AdaptersPage<'a> {
    frame: Option<Frame>,
    adapters: Vec<&'a Finding>,
    policies: Vec<&'a Finding>,
}

/// Each instance's effective grant, as `handoff check --reach` shows it.
pub(super) async fn adapters(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let (v, NoParameters {}) = match visit(&app, &headers, &uri) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let findings = &app.console.findings;
    html(
        StatusCode::OK,
        &AdaptersPage {
            frame: Some(Frame::of(&v, "adapters")),
            adapters: findings
                .iter()
                .filter(|f| f.subject.starts_with("adapter "))
                .collect(),
            policies: findings
                .iter()
                .filter(|f| !f.subject.starts_with("adapter "))
                .collect(),
        },
    )
}
