//! What supervisors and scrapers read, with no token: `/healthz` (alive
//! unless the store refuses every write), `/readyz` (and set up to take
//! events) and `/metrics` (Prometheus text).

use super::App;
use axum::extract::State;
use axum::http::StatusCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Alive, unless the store refuses every write until the process starts
/// again (a group of writes could not be committed): a supervisor that
/// restarts what is unhealthy then resumes the runs.
pub(super) async fn healthz(State(app): State<Arc<App>>) -> (StatusCode, String) {
    match app.shared.writes_refused() {
        None => (StatusCode::OK, "ok\n".into()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, unhealthy(&why)),
    }
}

pub(super) async fn readyz(State(app): State<Arc<App>>) -> (StatusCode, String) {
    if let Some(why) = app.shared.writes_refused() {
        return (StatusCode::SERVICE_UNAVAILABLE, unhealthy(&why));
    }
    if app.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n".into())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into())
    }
}

fn unhealthy(why: &str) -> String {
    format!(
        "unhealthy: the store refuses every write ({}); start handoff again\n",
        crate::kept::render(why, 200).replace('\n', " ")
    )
}

pub(super) async fn render_metrics(
    State(app): State<Arc<App>>,
) -> impl axum::response::IntoResponse {
    let text = tokio::task::spawn_blocking(move || {
        let store = app.reader.lock().unwrap_or_else(|p| p.into_inner());
        app.metrics.render(&store, app.shared.group_counts())
    })
    .await
    .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
