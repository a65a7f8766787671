//! Settings: the projects' DSNs and the API tokens (created here, shown once, revoked here).

use super::{CsrfForm, Page, UiError, Viewer, ago, clip, csrf_field, empty, layout};
use crate::http::state::AppState;
use crate::services::blocking;
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/settings", get(page))
        .route("/settings/tokens", post(create_token))
        .route("/settings/tokens/{id}/delete", post(delete_token))
        .route("/settings/projects/{id}/in-app", post(save_in_app))
}

/// Scopes a token may be given from this page.
const SCOPES: &[&str] = &[
    "project:read",
    "project:write",
    "project:releases",
    "event:read",
    "event:write",
    "alerts:read",
    "alerts:write",
    "org:read",
];

async fn render(state: &AppState, viewer: &Viewer, created: Option<(String, String)>) -> Page {
    let users = state.store.users();
    let store = state.store.clone();
    let now = state.clock.now_ms();
    let base = state.config.base_url(None);
    let (tokens, projects) = blocking(move || {
        let projects = store
            .list_projects()?
            .into_iter()
            .map(|p| {
                let prefixes = store.settings().in_app(p.id)?;
                Ok((p, prefixes))
            })
            .collect::<crate::store::Result<Vec<_>>>()?;
        Ok((users.tokens()?, projects))
    })
    .await?;
    let body = html! {
        div.page-head { h1 { "Settings" } }
        h2 { "Projects" }
        table.grid id="projects" {
            thead { tr { th { "Project" } th { "Status" } th { "DSN" } } }
            tbody { @for (p, _) in &projects {
                tr { td { (p.org_slug) "/" (p.slug) } td { (p.status) } td { code.dsn { (p.dsn(&base)) } } }
            } }
        }
        h2 { "In-app frames" }
        p.muted { "Which stack frames are the agent's own: a frame whose module, function, file name or path starts with an include prefix is in-app, one that starts with an exclude prefix is not (include wins); the built-in rules decide the rest. One prefix per line; new events use them." }
        @for (p, prefixes) in &projects {
            form.in-app-form method="post" action=(format!("/settings/projects/{}/in-app", p.id)) id=(format!("in-app-{}", p.id)) {
                (csrf_field(viewer))
                h3 { (p.org_slug) "/" (p.slug) }
                label.block { "Include prefixes"
                    textarea name="include" rows="3" { (prefixes.include.join("\n")) } }
                label.block { "Exclude prefixes"
                    textarea name="exclude" rows="3" { (prefixes.exclude.join("\n")) } }
                button type="submit" { "Save in-app prefixes" }
            }
        }
        h2 { "API tokens" }
        @if let Some((name, token)) = &created {
            div.notice id="new-token" {
                p { "Token " strong { (name) } " created. Copy it now: it is not shown again." }
                code.token { (token) }
            }
        }
        @if tokens.is_empty() { (empty("No API token yet.")) } @else {
            table.grid id="tokens" {
                thead { tr { th { "Name" } th { "Scopes" } th { "Created" } th { "Last used" } th {} } }
                tbody { @for t in &tokens {
                    tr {
                        td { (clip(&t.name, 80)) }
                        td { code { (t.scopes) } }
                        td { (ago(t.created_at, now)) }
                        td { @match t.last_used_at { Some(u) => { (ago(u, now)) }, None => { "never" } } }
                        td { form.inline method="post" action=(format!("/settings/tokens/{}/delete", t.id)) data-confirm="Revoke this token?" {
                            (csrf_field(viewer)) button.link type="submit" { "Revoke" }
                        } }
                    }
                } }
            }
        }
        h3 { "Create a token" }
        (token_form(viewer))
    };
    Ok(layout(viewer, "settings", "Settings", body))
}

fn token_form(viewer: &Viewer) -> Markup {
    html! {
        form.token-form id="token-form" method="post" action="/settings/tokens" {
            (csrf_field(viewer))
            label.block { "Name" input id="token-name" name="name" required maxlength="80"; }
            fieldset { legend { "Scopes (none ticked: all)" }
                @for s in SCOPES { label.check { input type="checkbox" name="scope" value=(s); (s) } }
            }
            button id="create-token" type="submit" { "Create token" }
        }
    }
}

async fn page(State(state): State<AppState>, viewer: Viewer) -> Page {
    render(&state, &viewer, None).await
}

async fn create_token(
    State(state): State<AppState>,
    viewer: Viewer,
    body: String,
) -> Result<Response, UiError> {
    // Repeated `scope` fields: parse the form by hand (serde_urlencoded has no lists).
    let mut csrf = String::new();
    let mut name = String::new();
    let mut scopes = Vec::new();
    for (k, v) in form_urlencoded::parse(body.as_bytes()) {
        match k.as_ref() {
            "csrf" => csrf = v.into_owned(),
            "name" => name = v.trim().to_owned(),
            "scope" if SCOPES.contains(&v.as_ref()) => scopes.push(v.into_owned()),
            "scope" => return Err(UiError::BadRequest(format!("unknown scope {v:?}"))),
            _ => {}
        }
    }
    viewer.check_csrf(&csrf)?;
    if name.is_empty() || name.chars().count() > 80 {
        return Err(UiError::BadRequest(
            "a token needs a name of 1 to 80 characters".into(),
        ));
    }
    let store = state.store.clone();
    let n = name.clone();
    let (_, token) = blocking(move || store.create_token(&n, &scopes)).await?;
    Ok(render(&state, &viewer, Some((name, token)))
        .await?
        .into_response())
}

async fn delete_token(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(&f.csrf)?;
    let users = state.store.users();
    blocking(move || users.delete_token(id)).await?;
    Ok(Redirect::to("/settings").into_response())
}

#[derive(Debug, serde::Deserialize)]
struct InAppForm {
    csrf: String,
    #[serde(default)]
    include: String,
    #[serde(default)]
    exclude: String,
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn save_in_app(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(f): Form<InAppForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(&f.csrf)?;
    let prefixes = crate::store::settings::InAppPrefixes {
        include: lines(&f.include),
        exclude: lines(&f.exclude),
    };
    let store = state.store.clone();
    blocking(move || {
        if !store.list_projects()?.iter().any(|p| p.id == id) {
            return Err(crate::store::StoreError::NotFound(format!("project {id}")));
        }
        store.settings().set_in_app(id, &prefixes)
    })
    .await?;
    Ok(Redirect::to("/settings").into_response())
}
