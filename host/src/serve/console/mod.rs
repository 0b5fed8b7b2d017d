//! The web console under `/ui`, for people who would rather look than
//! read JSON: a role's inbox (overdue first), a packet with its ack and
//! resolve forms, runs and their timelines, the audit chain's status, the
//! adapter instances' effective grants, a dashboard, and the shadow report. Pages are rendered
//! on the server from templates (`host/templates/console/`) with the same
//! reads and the same actions as the API, so a click is audited with the
//! role exactly as an API call is. No JavaScript: every form works as a
//! plain HTML form, posted and answered with a redirect.

mod follow_ups;
mod runs;
pub mod session;
mod shadow;
mod status;

use super::App;
use super::api::refusal::{Refusal, refusal, taken, unread};
use crate::readiness::Finding;
use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use session::{Sessions, Visitor};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The largest form the console takes.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// What the console keeps beside the API's state.
pub struct Console {
    pub sessions: Sessions,
    /// The adapter instances and policies as `handoff check --reach` found
    /// them when the service started.
    pub findings: Vec<Finding>,
    /// Held while the audit page recomputes the chain: one at a time.
    pub verifying: tokio::sync::Mutex<()>,
}

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/follow-ups") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/follow-ups") }))
        .route("/ui/style.css", get(style))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/follow-ups", get(follow_ups::inbox))
        .route("/ui/follow-ups/{id}", get(follow_ups::packet))
        .route("/ui/follow-ups/{id}/ack", post(follow_ups::acknowledge))
        .route("/ui/follow-ups/{id}/resolve", post(follow_ups::resolve))
        .route("/ui/runs", get(runs::list))
        .route("/ui/runs/{id}", get(runs::show))
        .route("/ui/dashboard", get(status::dashboard))
        .route("/ui/audit", get(status::audit))
        .route("/ui/adapters", get(status::adapters))
        .route("/ui/shadow", get(shadow::report))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
}

/// What every page's frame shows: who is looking, where they are, and the
/// token their logout form carries.
pub struct Frame {
    pub role: String,
    pub reviewer: bool,
    pub csrf: String,
    pub section: &'static str,
}

impl Frame {
    fn of(v: &Visitor, section: &'static str) -> Frame {
        Frame {
            role: v.who.role.clone(),
            reviewer: v.who.scope == crate::config::roles::Scope::Reviewer,
            csrf: v.csrf.clone(),
            section,
        }
    }
}

/// A rendered page with the headers every console page carries: no
/// script may run, no other site may frame it, nothing is cached.
fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render().map(in_reading_order) {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'self'; img-src 'self'; \
                     form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::X_FRAME_OPTIONS, "DENY"),
                (header::REFERRER_POLICY, "no-referrer"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render\n",
            )
                .into_response()
        }
    }
}

/// A page with each bidirectional formatting character written out as
/// `\u{..}`: escaping for HTML leaves them in force, and one in a value from
/// outside (an event's id, a record's field) would show the text after it in
/// another order than it is read. The templates hold none of their own.
fn in_reading_order(page: String) -> String {
    match crate::kept::written_out(&page, crate::plain::is_bidi_control) {
        std::borrow::Cow::Borrowed(_) => page,
        std::borrow::Cow::Owned(written) => written,
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    frame: Option<Frame>,
    status: u16,
    reason: &'static str,
    error: String,
}

/// A refusal as a page, counted with the API's (`console-REASON`).
pub(super) fn refused(app: &App, visitor: Option<&Visitor>, r: Refusal) -> Response {
    app.metrics.refuse(&format!("console-{}", r.reason));
    let mut response = html(
        r.status,
        &ErrorPage {
            frame: visitor.map(|v| Frame::of(v, "")),
            status: r.status.as_u16(),
            reason: r.reason,
            error: r.error,
        },
    );
    if let Some(secs) = r.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}

/// The person behind a page request, or the way to the login page (then
/// back here).
fn require(app: &App, headers: &HeaderMap, uri: &Uri) -> Result<Visitor, Redirect> {
    session::visitor(app, headers).ok_or_else(|| {
        let back = uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/ui/follow-ups");
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("next", back)
            .finish();
        Redirect::to(&format!("/ui/login?{query}"))
    })
}

/// The parameters of a page that takes none.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NoParameters {}

/// The person asking for a page and what the page was asked, or the answer
/// instead: the way to the login page for a stranger, a refusal for a
/// parameter the page does not take, one given twice or a value of the
/// wrong kind. Read as strictly as the API reads its lists: a mistyped
/// filter shown as if it had been applied would mislead whoever reads the
/// page.
fn visit<T: serde::de::DeserializeOwned>(
    app: &App,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<(Visitor, T), Box<Response>> {
    let v = require(app, headers, uri).map_err(|login| Box::new(login.into_response()))?;
    match asked(uri) {
        Ok(q) => Ok((v, q)),
        Err(r) => Err(Box::new(refused(app, Some(&v), r))),
    }
}

/// A page's parameters from its address, strictly (see [`visit`]).
fn asked<T: serde::de::DeserializeOwned>(uri: &Uri) -> Result<T, Refusal> {
    axum::extract::Query::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| {
            let why = unread(&e);
            let why = format!("this page's address does not read: {why}");
            refusal(StatusCode::BAD_REQUEST, "bad-query", why)
        })
}

/// A form's fields by name.
type Fields = BTreeMap<String, String>;

/// A posted form's fields; a field not in `allowed`, one given twice, or
/// a body that is not a form is refused.
fn form(body: &[u8], allowed: &[&str]) -> Result<Fields, Refusal> {
    let bad = |why: String| refusal(StatusCode::BAD_REQUEST, "bad-form", why);
    let mut fields = BTreeMap::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        if !allowed.contains(&name.as_ref()) {
            return Err(bad(format!(
                "the form has a field {name:?}; it takes {}",
                allowed.join(", ")
            )));
        }
        if fields.insert(name.to_string(), value.to_string()).is_some() {
            return Err(bad(format!("the form gives {name:?} twice")));
        }
    }
    Ok(fields)
}

/// The console's style sheet (a file of its own, so the pages' policy
/// allows no inline style or script at all).
async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("../../../templates/console/style.css"),
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    frame: Option<Frame>,
    next: String,
    error: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginQuery {
    next: Option<String>,
}

async fn login_page(State(app): State<Arc<App>>, uri: Uri) -> Response {
    let next = match asked::<LoginQuery>(&uri) {
        Ok(q) => q.next,
        Err(r) => return refused(&app, None, r),
    };
    html(
        StatusCode::OK,
        &LoginPage {
            frame: None,
            next: session::next_page(next.as_deref()),
            error: None,
        },
    )
}

async fn login(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let fields = match session::same_site(&headers)
        .and_then(|()| asked::<NoParameters>(&uri))
        .and_then(|_| taken(body, MAX_FORM_BYTES))
        .and_then(|body| form(&body, &["token", "next"]))
    {
        Ok(f) => f,
        Err(r) => return refused(&app, None, r),
    };
    let next = session::next_page(fields.get("next").map(String::as_str));
    let token = fields.get("token").map(String::as_str).unwrap_or("");
    match session::log_in(&app, token) {
        Ok(cookie) => with_cookie(Redirect::to(&next), cookie),
        Err(r) if r.status == StatusCode::UNAUTHORIZED => {
            app.metrics.refuse("console-unauthenticated");
            html(
                StatusCode::UNAUTHORIZED,
                &LoginPage {
                    frame: None,
                    next,
                    error: Some("That token is not one of any role.".into()),
                },
            )
        }
        Err(r) => refused(&app, None, r),
    }
}

/// A redirect that sets (or clears) the session cookie.
fn with_cookie(to: Redirect, cookie: String) -> Response {
    let mut response = to.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie.parse().expect("a cookie of hex and names"),
    );
    response
}

async fn logout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let result = (|| {
        session::same_site(&headers)?;
        asked::<NoParameters>(&uri)?;
        let fields = form(&taken(body, MAX_FORM_BYTES)?, &["csrf"])?;
        if let Some(v) = session::visitor(&app, &headers) {
            session::check_csrf(&v, fields.get("csrf").map(String::as_str))?;
            session::log_out(&app, &headers);
        }
        Ok::<_, Refusal>(())
    })();
    match result {
        Ok(()) => with_cookie(Redirect::to("/ui/login"), app.console.sessions.cleared()),
        Err(r) => refused(&app, None, r),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_page_shows_values_in_the_order_they_are_read() {
        let page =
            "<td>invoice\u{202E}fdp.exe</td><td>\u{5e9}\u{5dc}\u{5d5}\u{5dd}</td>".to_string();
        assert_eq!(
            super::in_reading_order(page),
            "<td>invoice\\u{202e}fdp.exe</td><td>\u{5e9}\u{5dc}\u{5d5}\u{5dd}</td>"
        );
    }
}
