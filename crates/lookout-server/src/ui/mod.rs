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
mod issues;
mod missing;
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

/// The UI's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(agents::page))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/ui/app.css", get(css))
        .route("/ui/app.js", get(js))
        .merge(issues::routes())
        .merge(performance::routes())
        .merge(releases::routes())
        .merge(alerts::routes())
        .merge(settings::routes())
        .merge(monitors::routes())
        .layer(axum::middleware::map_response(security_headers))
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

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = match &self {
            UiError::NotFound(_) => StatusCode::NOT_FOUND,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::Csrf => StatusCode::FORBIDDEN,
            UiError::Internal(m) => {
                tracing::error!(error = %m, "web UI error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let body = html! {
            (DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; title { "Lookout: error" } link rel="stylesheet" href="/ui/app.css"; }
                body { main.narrow {
                    h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                    p.error { (self.to_string()) }
                    p { a href="/" { "Back to the agents" } }
                } }
            }
        };
        (status, body).into_response()
    }
}

/// Result of a page handler.
pub type Page = Result<Markup, UiError>;

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
    let nav = [
        ("agents", "/", "Agents"),
        ("issues", "/issues", "Issues"),
        ("performance", "/performance", "Performance"),
        ("releases", "/releases", "Releases"),
        ("crons", "/crons", "Crons"),
        ("alerts", "/alerts", "Alerts"),
        ("settings", "/settings", "Settings"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Lookout" }
                link rel="stylesheet" href="/ui/app.css";
                script src="/ui/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Lookout" }
                    nav { @for (key, href, label) in nav {
                        a href=(href) class=(if key == active { "active" } else { "" }) { (label) }
                    } }
                    form.logout method="post" action="/logout" {
                        input type="hidden" name="csrf" value=(viewer.csrf());
                        span.user { (viewer.session.username) }
                        button type="submit" { "Log out" }
                    }
                }
                main { (body) }
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
    failed: Option<String>,
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
                @if q.failed.is_some() { p.error id="login-error" { "Wrong user name or password." } }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(safe_next(q.next.as_deref()));
                    label { "User" input id="username" name="username" autocomplete="username" value="admin" required; }
                    label { "Password" input id="password" type="password" name="password" autocomplete="current-password" required; }
                    button id="login" type="submit" { "Log in" }
                }
            } }
        }
    })
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    username: String,
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
        Ok(Ok(None)) => {
            Redirect::to(&format!("/login?failed=1&next={}", urlencode(&next))).into_response()
        }
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
