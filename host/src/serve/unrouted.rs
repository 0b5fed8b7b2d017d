//! Requests no route takes: a path the service does not have (404) or a
//! method its route does not take (405). Answered as the rest of the
//! service answers a refusal (a page under `/ui`, JSON elsewhere) and
//! counted with them.

use super::App;
use super::api::refusal::{Answer, Refusal, answer, refusal, shown};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use std::sync::Arc;

/// A path no route has.
pub(super) async fn no_such_path(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let r = refusal(
        StatusCode::NOT_FOUND,
        "not-found",
        format!(
            "there is nothing at {}; the API is described at /v1/openapi.json, the console is at /ui",
            shown(uri.path())
        ),
    );
    refuse(&app, &headers, &uri, r)
}

/// A method the path's route does not take (the `Allow` header lists
/// those it does).
pub(super) async fn no_such_method(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Response {
    let r = refusal(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("{} does not take {method}", shown(uri.path())),
    );
    refuse(&app, &headers, &uri, r)
}

fn refuse(app: &App, headers: &HeaderMap, uri: &Uri, r: Refusal) -> Response {
    if uri.path() == "/ui" || uri.path().starts_with("/ui/") {
        // A person logged in still gets the console's frame around it.
        let visitor = super::console::session::visitor(app, headers);
        super::console::refused(app, visitor.as_ref(), r)
    } else {
        let refused: Answer = Err(r);
        answer(app, refused)
    }
}
