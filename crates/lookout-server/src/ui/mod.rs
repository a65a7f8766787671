//! The web UI: server-rendered pages (`maud` templates, escaped by default), SVG charts
//! drawn with `plotters`, a few lines of JavaScript, served by the same binary.
//!
//! Every page needs a login (an HttpOnly, SameSite=Strict session cookie); every form
//! carries the session's CSRF token, checked before anything changes. All event content is
//! untrusted: it only ever reaches a page through maud's escaping, and the pages are served
//! with a Content-Security-Policy that allows no inline script.

mod agents;
mod alerts;
mod charts;
mod flame;
mod issues;
mod monitors;
mod performance;
mod releases;
mod settings;

use crate::http::state::AppState;
use crate::services::blocking;
use crate::store::users::UiSession;
use axum::Router;
use axum::extract::{Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

/// Name of the session cookie.
const COOKIE: &str = "lookout_session";
/// How long a login lasts.
const SESSION_TTL_MS: i64 = 12 * 3_600_000;

const CSS: &str = include_str!("app.css");
const JS: &str = include_str!("app.js");
const CHARTS_JS: &str = include_str!("charts.js");
/// uPlot, the chart library, as `npm ci` installed it from `web/package-lock.json` (build.rs).
const UPLOT_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/uPlot.iife.min.js"));
const UPLOT_CSS: &str = include_str!(concat!(env!("OUT_DIR"), "/uPlot.min.css"));

/// The UI's routes. `state` serves the error pages' middleware, which reads the session to
/// draw the navigation around a 4xx/5xx page.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(agents::page))
        .route("/agents/{agent_id}", get(agents::agent_page))
        .route(
            "/agents/{agent_id}/pause",
            get(agents::pause_page).post(agents::pause_post),
        )
        .route(
            "/agents/{agent_id}/resume",
            get(agents::resume_page).post(agents::resume_post),
        )
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/ui/app.css", get(css))
        .route("/ui/app.js", get(js))
        .route("/ui/charts.js", get(|| asset("text/javascript", CHARTS_JS)))
        .route(
            "/ui/vendor/uplot.js",
            get(|| asset("text/javascript", UPLOT_JS)),
        )
        .route("/ui/vendor/uplot.css", get(|| asset("text/css", UPLOT_CSS)))
        .merge(issues::routes())
        .merge(performance::routes())
        .merge(releases::routes())
        .merge(alerts::routes())
        .merge(settings::routes())
        .merge(monitors::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state, in_app_errors))
        .layer(axum::middleware::map_response(security_headers))
        // Pages and assets travel compressed to browsers that accept it (the chart library
        // is 51 KB as is, 22 KB gzipped); event streams are left alone.
        .layer(tower_http::compression::CompressionLayer::new())
}

/// A static asset of the UI, cached by the browser for a while.
async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(if content_type == "text/css" {
                    "text/css; charset=utf-8"
                } else {
                    "text/javascript; charset=utf-8"
                }),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

/// Headers on every UI response: no inline or foreign script, no framing, no sniffing.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        CSS,
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        JS,
    )
}

/// A logged-in operator, from the session cookie. Pages that take one redirect to the
/// login page without it.
#[derive(Debug, Clone)]
pub struct Viewer {
    session: UiSession,
}

impl Viewer {
    /// The logged-in user's name (what audit trails record).
    pub fn username(&self) -> &str {
        &self.session.username
    }

    /// The CSRF token forms must carry.
    pub fn csrf(&self) -> &str {
        &self.session.csrf
    }

    /// Check a submitted CSRF token (constant time).
    pub fn check_csrf(&self, submitted: &str) -> Result<(), UiError> {
        let a = self.session.csrf.as_bytes();
        let b = submitted.as_bytes();
        let same =
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        if same { Ok(()) } else { Err(UiError::Csrf) }
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let to_login = || {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            Redirect::to(&format!("/login?next={}", urlencode(next))).into_response()
        };
        let Some(token) = cookie_token(&parts.headers) else {
            return Err(to_login());
        };
        let users = state.store.users();
        let now = state.clock.now_ms();
        match blocking(move || users.session(&token, now)).await {
            Ok(Some(session)) => Ok(Viewer { session }),
            Ok(None) => Err(to_login()),
            Err(e) => Err(UiError::Internal(e.to_string()).into_response()),
        }
    }
}

/// What can go wrong on a page.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 400 with what is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// 403: the form did not carry this session's CSRF token.
    #[error("the form expired or did not come from this site: reload the page and try again")]
    Csrf,
    /// 500.
    #[error("{0}")]
    Internal(String),
}

impl From<crate::http::error::ApiError> for UiError {
    fn from(e: crate::http::error::ApiError) -> Self {
        use crate::http::error::ApiError as A;
        match e {
            A::NotFound(m) => UiError::NotFound(m),
            A::BadRequest { detail, .. } => UiError::BadRequest(detail),
            A::Fields(v) => UiError::BadRequest(fields_text(&v)),
            other => UiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for UiError {
    fn from(e: crate::store::StoreError) -> Self {
        crate::http::error::ApiError::from(e).into()
    }
}

impl From<crate::services::ServiceError> for UiError {
    fn from(e: crate::services::ServiceError) -> Self {
        crate::http::error::ApiError::from(e).into()
    }
}

impl From<crate::time::BadPeriod> for UiError {
    fn from(e: crate::time::BadPeriod) -> Self {
        UiError::BadRequest(e.to_string())
    }
}

/// Field errors (`{"field": ["message"]}`) as one line.
pub fn fields_text(v: &serde_json::Value) -> String {
    match v.as_object() {
        Some(m) => m
            .iter()
            .map(|(k, v)| {
                let msgs: Vec<String> = match v {
                    serde_json::Value::Array(a) => a
                        .iter()
                        .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
                        .collect(),
                    other => vec![other.to_string()],
                };
                format!("{k}: {}", msgs.join(" "))
            })
            .collect::<Vec<_>>()
            .join("; "),
        None => v.to_string(),
    }
}

impl UiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            UiError::NotFound(_) => StatusCode::NOT_FOUND,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::Csrf => StatusCode::FORBIDDEN,
            UiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What a failed UI response says, for [`in_app_errors`] to draw inside the app's frame.
#[derive(Debug, Clone)]
struct Failure(String);

impl UiError {
    /// A 404 for an object Lookout does not have (`what`: "issue 12", "monitor nightly"),
    /// in words the error page shows.
    pub fn missing(what: &str) -> UiError {
        UiError::NotFound(format!(
            "There is no {} here. It may never have existed, or retention removed it.",
            clip(what, 200)
        ))
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            UiError::Internal(m) => {
                tracing::error!(error = %m, "web UI error");
                // The detail is in the log; the page does not show internals.
                "Something went wrong on the server; the error was logged. Try again, or \
                 look at the server's log."
                    .to_owned()
            }
            other => other.to_string(),
        };
        // A bare page; the middleware replaces it with the full frame (navigation, user).
        let mut res = error_page(None, status, &message);
        res.extensions_mut().insert(Failure(message));
        res
    }
}

/// A 4xx/5xx page inside the app: the navigation (and the user, when `viewer` is known),
/// the status in words and `message`.
pub fn error_page(viewer: Option<&Viewer>, status: StatusCode, message: &str) -> Response {
    let heading = match status {
        StatusCode::NOT_FOUND => "Page not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::METHOD_NOT_ALLOWED => "Not available here",
        s if s.is_server_error() => "Something went wrong",
        _ => "This request could not be handled",
    };
    let body = html! {
        section.error-page id="error-page" data-status=(status.as_u16()) {
            h1 { (heading) }
            p.error-code.muted { "Error " (status.as_u16()) " · " (status.canonical_reason().unwrap_or("")) }
            p.error id="error-message" { (message) }
            p { a href="/" { "Go to the agents" } " · " a href="/issues" { "Open issues" } " · " a href="/alerts" { "Alerts" } }
        }
    };
    (status, frame(viewer, "", heading, body)).into_response()
}

/// The unknown-address fallback: an in-app 404 page, or, under `/api/`, the REST API's
/// JSON error (its clients read `detail`).
async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"detail": "The requested resource does not exist"})),
        )
            .into_response();
    }
    UiError::NotFound(format!("There is no page at {}.", clip(uri.path(), 120))).into_response()
}

/// Draws every failed UI response inside the app's frame: the pages' own errors
/// ([`UiError`]) and axum's plain-text rejections (an id that is not a number, a form that
/// lacks a field, a method the address does not take). `/api/` keeps its JSON.
async fn in_app_errors(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path().to_owned();
    let token = cookie_token(req.headers());
    let res = next.run(req).await;
    let status = res.status();
    if path.starts_with("/api/") || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let (status, message) = match res.extensions().get::<Failure>() {
        Some(Failure(m)) => (status, m.clone()),
        None if html => return res,
        None => {
            let text = axum::body::to_bytes(res.into_body(), 4096)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            rejection_words(status, &path, &text)
        }
    };
    let viewer = match token {
        Some(token) => {
            let users = state.store.users();
            let now = state.clock.now_ms();
            blocking(move || users.session(&token, now))
                .await
                .ok()
                .flatten()
                .map(|session| Viewer { session })
        }
        None => None,
    };
    error_page(viewer.as_ref(), status, &message)
}

/// An axum rejection (plain text) in the operator's words: an address whose id does not
/// parse is a page that does not exist.
fn rejection_words(status: StatusCode, path: &str, text: &str) -> (StatusCode, String) {
    let path = clip(path, 120);
    match status {
        StatusCode::BAD_REQUEST if text.starts_with("Invalid URL") => (
            StatusCode::NOT_FOUND,
            format!("There is no page at {path}."),
        ),
        StatusCode::NOT_FOUND => (
            StatusCode::NOT_FOUND,
            format!("There is no page at {path}."),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{path} does not take this kind of request; open it from the app's links and forms."
            ),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::UNPROCESSABLE_ENTITY => (
            StatusCode::BAD_REQUEST,
            format!(
                "The form sent to {path} was incomplete or malformed: {}. Reload the page and try again.",
                clip(text.trim(), 200)
            ),
        ),
        s if s.is_server_error() => (
            s,
            "Something went wrong on the server; the error was logged.".to_owned(),
        ),
        s => (s, clip(text.trim(), 300)),
    }
}

/// Result of a page handler.
pub type Page = Result<Markup, UiError>;

/// Seconds between two in-place refreshes of a page's live regions (`data-live`, refreshed
/// by `app.js`): often enough to watch an agent, rare enough to cost the server nothing.
pub(super) const LIVE_EVERY_SECS: &str = "10";

/// Percent-encode a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The page frame: navigation, the user, logout.
pub fn layout(viewer: &Viewer, active: &str, title: &str, body: Markup) -> Markup {
    frame(Some(viewer), active, title, body)
}

/// The navigation's entries: (key pages pass to [`layout`], address, label).
const NAV: &[(&str, &str, &str)] = &[
    ("agents", "/", "Agents"),
    ("issues", "/issues", "Issues"),
    ("performance", "/performance", "Performance"),
    ("releases", "/releases", "Releases"),
    ("crons", "/crons", "Crons"),
    ("alerts", "/alerts", "Alerts"),
    ("settings", "/settings", "Settings"),
];

/// [`layout`] for pages that may have no logged-in viewer (the error pages): the navigation
/// always, the user and the logout button when there is one.
fn frame(viewer: Option<&Viewer>, active: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Lookout" }
                link rel="stylesheet" href="/ui/app.css";
                script src="/ui/app.js" defer {}
                script src="/ui/charts.js" defer {}
            }
            body {
                a.skip-link href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Lookout" }
                    nav aria-label="Main" { @for (key, href, label) in NAV {
                        a href=(href) class=(if *key == active { "active" } else { "" })
                            aria-current=[(*key == active).then_some("page")] { (label) }
                    } }
                    @if let Some(viewer) = viewer {
                        form.logout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(viewer.csrf());
                            span.user { (viewer.session.username) }
                            button type="submit" { "Log out" }
                        }
                    } @else {
                        a.login-link href="/login" { "Log in" }
                    }
                }
                main id="main" tabindex="-1" { (body) }
            }
        }
    }
}

/// A timestamp (ms) as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// A duration since `ms` as `5s ago`, `3m ago`, `2h ago`, `4d ago`.
pub fn ago(ms: i64, now: i64) -> String {
    let s = (now - ms).max(0) / 1000;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// Milliseconds for display.
pub fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 1000.0 => format!("{:.2} s", v / 1000.0),
        Some(v) => format!("{v:.0} ms"),
        None => "–".into(),
    }
}

/// A percentage for display.
pub fn pct(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{v:.1} %"),
        None => "–".into(),
    }
}

/// A hidden CSRF field.
pub fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf()); }
}

/// The error shown beside form field `id` (`id-error`, for the input's
/// `aria-describedby`), or nothing.
pub fn field_error_slot(id: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error {
            span.field-error id=(format!("{id}-error")) role="alert" { (e) }
        }
    }
}

/// An empty-state line.
pub fn empty(text: &str) -> Markup {
    html! { p.empty { (text) } }
}

/// Truncate untrusted text for a list cell (the full value stays on the detail page).
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
    /// `1`: wrong name or password; `user`/`password`: that field was empty.
    failed: Option<String>,
    /// The user name the operator typed (kept after a failed attempt).
    user: Option<String>,
}

/// Only same-site paths, never `//host` or a scheme.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

async fn login_page(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Page {
    let users = state.store.users();
    let has_users = blocking(move || users.any()).await?;
    Ok(html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Log in · Lookout" }
                link rel="stylesheet" href="/ui/app.css";
            }
            body { main.narrow.login {
                h1 { "Lookout" }
                @if !has_users {
                    p.error {
                        "No account exists yet. Start the server with "
                        code { "LOOKOUT_ADMIN_PASSWORD" } " set, or run "
                        code { "lookout users set-password" } "."
                    }
                }
                @if q.failed.as_deref() == Some("1") { p.error id="login-error" role="alert" { "Wrong user name or password." } }
                form method="post" action="/login" novalidate {
                    input type="hidden" name="next" value=(safe_next(q.next.as_deref()));
                    (field_error_slot("username", (q.failed.as_deref() == Some("user")).then_some("Enter your user name.")))
                    label for="username" { "User" }
                    input id="username" name="username" autocomplete="username" maxlength="200"
                        value=(clip(q.user.as_deref().unwrap_or("admin"), 200)) required
                        aria-invalid=[(q.failed.as_deref() == Some("user")).then_some("true")]
                        aria-describedby=[(q.failed.as_deref() == Some("user")).then_some("username-error")];
                    (field_error_slot("password", (q.failed.as_deref() == Some("password")).then_some("Enter your password.")))
                    label for="password" { "Password" }
                    input id="password" type="password" name="password" autocomplete="current-password" required
                        aria-invalid=[(q.failed.as_deref() == Some("password")).then_some("true")]
                        aria-describedby=[(q.failed.as_deref() == Some("password")).then_some("password-error")];
                    button id="login" type="submit" { "Log in" }
                }
            } }
        }
    })
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

fn session_cookie(state: &AppState, value: &str, max_age: i64) -> String {
    let secure = state
        .config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The client's address, when the server knows it (it serves with connect info).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// 429 with `Retry-After`, inside the login page's words.
fn too_many_logins(wait_ms: i64) -> Response {
    let secs = (wait_ms + 999) / 1000;
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "Too many attempts · Lookout" } link rel="stylesheet" href="/ui/app.css"; }
            body { main.narrow.login {
                h1 { "Lookout" }
                p.error id="login-locked" { "Too many failed logins. Try again in " (secs) " s." }
                p { a href="/login" { "Back to the login" } }
            } }
        }
    };
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, secs.to_string())],
        body,
    )
        .into_response()
}

async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    Form(form): Form<LoginForm>,
) -> Response {
    let users = state.store.users();
    let now = state.clock.now_ms();
    let next = safe_next(form.next.as_deref());
    let back = |failed: &str| {
        Redirect::to(&format!(
            "/login?failed={failed}&user={}&next={}",
            urlencode(&clip(form.username.trim(), 200)),
            urlencode(&next)
        ))
        .into_response()
    };
    if form.username.trim().is_empty() {
        return back("user");
    }
    if form.password.is_empty() {
        return back("password");
    }
    let failed_again = back("1");
    let mut subjects = vec![crate::store::users::login_subject_user(&form.username)];
    subjects.extend(client.0.map(crate::store::users::login_subject_ip));
    let (name, password) = (form.username, form.password);
    let (who, from) = (name.clone(), client.0);
    let outcome = blocking(move || {
        if let Some(wait) = users.login_locked(&subjects, now)? {
            return Ok(Err(wait));
        }
        match users.login(&name, &password, now, SESSION_TTL_MS)? {
            Some(token) => {
                users.login_succeeded(&subjects)?;
                Ok(Ok(Some(token)))
            }
            None => {
                // Logged without the password: who, from where, how many times so far.
                let failures = users.login_failed(&subjects, now)?;
                tracing::warn!(user = %who, client = ?from, failures, "web UI login refused");
                Ok(Ok(None))
            }
        }
    })
    .await;
    match outcome {
        Ok(Err(wait)) => {
            tracing::warn!(client = ?client.0, "web UI login refused: too many failed attempts");
            too_many_logins(wait)
        }
        Ok(Ok(Some(token))) => (
            [(
                header::SET_COOKIE,
                session_cookie(&state, &token, SESSION_TTL_MS / 1000),
            )],
            Redirect::to(&next),
        )
            .into_response(),
        Ok(Ok(None)) => failed_again,
        Err(e) => UiError::from(e).into_response(),
    }
}

/// A form with only the CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    /// The token.
    pub csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(&form.csrf)?;
    if let Some(token) = cookie_token(&headers) {
        let users = state.store.users();
        blocking(move || users.logout(&token)).await?;
    }
    Ok((
        [(header::SET_COOKIE, session_cookie(&state, "", 0))],
        Redirect::to("/login"),
    )
        .into_response())
}

/// Raw, already-safe markup (SVG produced by the chart library from numbers only).
pub fn raw(s: String) -> Markup {
    PreEscaped(s)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use crate::http::router::app_on as app;

    async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, String, String) {
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let kind = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let location = res
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        (status, kind, location.unwrap_or(text))
    }

    fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
        let mut req = Request::get(path);
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        req.body(Body::empty()).unwrap()
    }

    fn login_form(body: &str) -> Request<Body> {
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.to_owned()))
            .unwrap()
    }

    #[tokio::test]
    async fn unknown_addresses_are_pages_of_the_app_but_the_api_keeps_json() {
        let dir = tempfile::tempdir().unwrap();
        let (app, store) = app(&dir);
        // Anonymous: the navigation, a way to log in, the address escaped.
        let (status, kind, body) = send(&app, get("/nope%3Cb%3E", None)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(kind.starts_with("text/html"), "{kind}");
        assert!(body.contains(r#"<nav aria-label="Main">"#), "{body}");
        assert!(body.contains("There is no page at /nope%3Cb%3E."), "{body}");
        assert!(body.contains(r#"href="/login""#), "{body}");
        // The REST API answers in JSON, as Sentry's.
        let (status, kind, body) = send(&app, get("/api/0/nope/", None)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(kind.starts_with("application/json"), "{kind}");
        assert!(body.contains("\"detail\""), "{body}");
        // Logged in: an id that is not a number is a missing page, with the user shown.
        let now = chrono::Utc::now().timestamp_millis();
        store
            .users()
            .set_password("admin", "a-long-password", now)
            .unwrap();
        let (status, _, location) = send(
            &app,
            login_form("username=admin&password=a-long-password&next=/"),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location, "/");
        let res = app
            .clone()
            .oneshot(login_form("username=admin&password=a-long-password&next=/"))
            .await
            .unwrap();
        let cookie = res
            .headers()
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .unwrap()
            .to_owned();
        let (status, _, body) = send(&app, get("/issues/abc", Some(&cookie))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            body.contains("Page not found") && body.contains("abc"),
            "{body}"
        );
        assert!(
            body.contains(r#"<span class="user">admin</span>"#),
            "{body}"
        );
        assert!(body.contains(r#"id="error-page""#), "{body}");
        // A form without its fields: a 400 page in words, not axum's plain text.
        let req = Request::post("/alerts/rules/1/delete")
            .header(header::COOKIE, &cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("nothing=here"))
            .unwrap();
        let (status, kind, body) = send(&app, req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(kind.starts_with("text/html"), "{kind}");
        assert!(body.contains("incomplete or malformed"), "{body}");
        // The navigation marks the page it is on.
        let (_, _, body) = send(&app, get("/alerts", Some(&cookie))).await;
        assert!(
            body.contains(r#"<a class="active" href="/alerts" aria-current="page">"#)
                || body.contains(r#"href="/alerts" class="active" aria-current="page""#),
            "{body}"
        );
        assert!(
            body.contains(r##"<a class="skip-link" href="#main">"##),
            "{body}"
        );
    }

    #[tokio::test]
    async fn an_empty_login_field_is_named_and_the_user_name_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (app, _) = app(&dir);
        let (status, _, location) = send(
            &app,
            login_form("username=ops%20lead&password=&next=/alerts"),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(
            location,
            "/login?failed=password&user=ops%20lead&next=%2Falerts"
        );
        let (_, _, body) = send(&app, get(&location, None)).await;
        assert!(body.contains(r#"id="password-error""#), "{body}");
        assert!(body.contains(r#"value="ops lead""#), "{body}");
        let (_, _, location) = send(&app, login_form("username=&password=x")).await;
        assert!(location.starts_with("/login?failed=user"), "{location}");
    }
}
