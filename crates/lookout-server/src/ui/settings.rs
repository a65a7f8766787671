//! Settings: the projects' DSNs and in-app prefixes, the notification channels (added and
//! removed here), and the API tokens (created here, shown once, revoked here).
//!
//! Every form is validated on the server, field by field: a refused form comes back with
//! the error beside its field and what was typed kept. Every accepted form answers with a
//! redirect (post/redirect/get), so reloading the page never repeats the action; a new
//! token is shown once through a one-time flash kept on the server, never in the URL.

use super::alerts::{channel_label, provider_name};
use super::{
    CsrfForm, Page, UiError, Viewer, ago, clip, csrf_field, empty, field_error_slot, layout,
};
use crate::alerts::notify;
use crate::http::state::AppState;
use crate::services::blocking;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/settings", get(page))
        .route("/settings/tokens", post(create_token))
        .route("/settings/tokens/{id}/delete", post(delete_token))
        .route("/settings/projects/{id}/in-app", post(save_in_app))
        .route("/settings/channels", post(create_channel))
        .route("/settings/channels/new", get(new_channel))
        .route("/settings/channels/{id}/delete", post(delete_channel))
        .route(
            "/settings/channels/{id}/edit",
            get(edit_channel).post(save_channel),
        )
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

/// Longest token name.
const TOKEN_NAME_MAX: usize = 80;
/// Most in-app prefixes of one list, and the longest prefix.
const PREFIXES_MAX: usize = 100;
const PREFIX_LEN_MAX: usize = 200;
/// How long a new token waits to be shown (one page load takes it).
const FLASH_TTL_MS: i64 = 5 * 60_000;

/// A new API token waiting to be shown once: (expires at, token name, token), by the CSRF
/// token of the session that created it (secret, one per login). In memory: a restart
/// forgets it, which only means the operator creates another token.
static NEW_TOKENS: LazyLock<Mutex<HashMap<String, NewToken>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// (expires at, token name, token).
type NewToken = (i64, String, String);

fn flash_put(session: &str, now: i64, name: String, token: String) {
    let mut map = NEW_TOKENS.lock().unwrap_or_else(|e| e.into_inner());
    map.retain(|_, (expires, _, _)| *expires > now);
    map.insert(session.to_owned(), (now + FLASH_TTL_MS, name, token));
}

fn flash_take(session: &str, now: i64) -> Option<(String, String)> {
    let mut map = NEW_TOKENS.lock().unwrap_or_else(|e| e.into_inner());
    map.remove(session)
        .filter(|(expires, _, _)| *expires > now)
        .map(|(_, name, token)| (name, token))
}

/// Field errors of a refused form, by field id, and what was typed.
#[derive(Debug, Default, Clone)]
struct Refused {
    errors: BTreeMap<&'static str, String>,
    values: HashMap<String, String>,
    /// Ticked scopes (the token form).
    scopes: Vec<String>,
}

impl Refused {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field).map(String::as_str)
    }

    fn value(&self, field: &str) -> &str {
        self.values.get(field).map_or("", String::as_str)
    }
}

/// Which of the page's forms was refused.
#[derive(Debug, Clone)]
enum Retry {
    Token(Refused),
    InApp(i64, Refused),
}

async fn render(state: &AppState, viewer: &Viewer, retry: Option<Retry>) -> Page {
    let users = state.store.users();
    let store = state.store.clone();
    let now = state.clock.now_ms();
    let base = state.config.base_url(None);
    let (tokens, projects, channels) = blocking(move || {
        let projects = store
            .list_projects()?
            .into_iter()
            .map(|p| {
                let prefixes = store.settings().in_app(p.id)?;
                Ok((p, prefixes))
            })
            .collect::<crate::store::Result<Vec<_>>>()?;
        let alerts = store.alerts();
        let channels = alerts.integrations(alerts.org_id("default")?)?;
        Ok((users.tokens()?, projects, channels))
    })
    .await?;
    // Only a successful creation leaves a token to show, and only once.
    let created = match retry {
        None => flash_take(viewer.csrf(), now),
        Some(_) => None,
    };
    let token_retry = match &retry {
        Some(Retry::Token(r)) => Some(r),
        _ => None,
    };
    let body = html! {
        div.page-head { h1 { "Settings" } }
        h2 { "Projects" }
        div.table-scroll tabindex="0" role="region" aria-label="Projects and their DSNs" {
            table.grid id="projects" {
                thead { tr { th scope="col" { "Project" } th scope="col" { "Status" } th scope="col" { "DSN" } } }
                tbody { @for (p, _) in &projects {
                    tr { td { (p.org_slug) "/" (p.slug) } td { (p.status) } td { code.dsn { (p.dsn(&base)) } } }
                } }
            }
        }
        h2 { "In-app frames" }
        p.muted { "Which stack frames are the agent's own: a frame whose module, function, file name or path starts with an include prefix is in-app, one that starts with an exclude prefix is not (include wins); the built-in rules decide the rest. One prefix per line; new events use them." }
        @for (p, prefixes) in &projects {
            @let refused = match &retry { Some(Retry::InApp(id, r)) if *id == p.id => Some(r), _ => None };
            @let include = refused.map_or_else(|| prefixes.include.join("\n"), |r| r.value("include").to_owned());
            @let exclude = refused.map_or_else(|| prefixes.exclude.join("\n"), |r| r.value("exclude").to_owned());
            form.in-app-form method="post" action=(format!("/settings/projects/{}/in-app", p.id)) id=(format!("in-app-{}", p.id)) novalidate {
                (csrf_field(viewer))
                h3 { (p.org_slug) "/" (p.slug) }
                @for (field, label) in [("include", "Include prefixes"), ("exclude", "Exclude prefixes")] {
                    @let id = format!("in-app-{}-{field}", p.id);
                    @let error = refused.and_then(|r| r.error(field));
                    div.field {
                        label for=(id) { (label) }
                        textarea id=(id) name=(field) rows="3" aria-invalid=[error.map(|_| "true")]
                            aria-describedby=[error.map(|_| format!("{id}-error"))] {
                            (if field == "include" { &include } else { &exclude })
                        }
                        (field_error_slot(&id, error))
                        span.hint { "One prefix a line, at most " (PREFIXES_MAX) " lines of " (PREFIX_LEN_MAX) " characters." }
                    }
                }
                button type="submit" { "Save in-app prefixes" }
            }
        }
        h2 { "Notification channels" }
        p.muted { "Where alerts are sent. Rules name channels in their actions; a rule that notifies every channel reaches all of these." }
        @if channels.is_empty() { (empty("No channel yet: alerts are recorded but not sent.")) } @else {
            div.table-scroll tabindex="0" role="region" aria-label="Notification channels" {
                table.grid id="channels" {
                    thead { tr { th scope="col" { "Channel" } th scope="col" { "Provider" } th scope="col" { "Settings" } th scope="col" { "Added" } th scope="col" { span.sr-only { "Actions" } } } }
                    tbody { @for c in &channels {
                        tr.channel {
                            td.channel-name { (clip(&channel_label(c), 100)) }
                            td { (provider_name(&c.provider)) }
                            td.muted { (configured_keys(&c.config)) }
                            td { (ago(c.date_created, now)) }
                            td { a href=(format!("/settings/channels/{}/edit", c.id)) aria-label=(format!("Edit {}", clip(&channel_label(c), 100))) { "Edit" } " "
                                form.inline method="post" action=(format!("/settings/channels/{}/delete", c.id)) data-confirm="Remove this channel? Rules that name it stop sending to it." {
                                (csrf_field(viewer)) button.link type="submit" aria-label=(format!("Remove {}", clip(&channel_label(c), 100))) { "Remove" }
                            } }
                        }
                    } }
                }
            }
        }
        p { "Add a channel: "
            @for (i, (p, _)) in CHANNEL_FIELDS.iter().enumerate() {
                @if i > 0 { " · " }
                a href=(format!("/settings/channels/new?provider={p}")) id=(format!("add-{p}")) { (provider_name(p)) }
            }
        }
        h2 { "API tokens" }
        @if let Some((name, token)) = &created {
            div.notice.flash id="new-token" role="status" {
                p { "Token " strong { (name) } " created. Copy it now: it is not shown again." }
                code.token { (token) }
            }
        }
        @if tokens.is_empty() { (empty("No API token yet.")) } @else {
            div.table-scroll tabindex="0" role="region" aria-label="API tokens" {
                table.grid id="tokens" {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Scopes" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { span.sr-only { "Actions" } } } }
                    tbody { @for t in &tokens {
                        tr.token {
                            td { (clip(&t.name, 80)) }
                            td { code { (t.scopes) } }
                            td { (ago(t.created_at, now)) }
                            td { @match t.last_used_at { Some(u) => { (ago(u, now)) }, None => { "never" } } }
                            td { form.inline method="post" action=(format!("/settings/tokens/{}/delete", t.id)) data-confirm="Revoke this token?" {
                                (csrf_field(viewer)) button.link type="submit" aria-label=(format!("Revoke token {}", clip(&t.name, 80))) { "Revoke" }
                            } }
                        }
                    } }
                }
            }
        }
        h3 { "Create a token" }
        (token_form(viewer, token_retry))
    };
    Ok(layout(viewer, "settings", "Settings", body))
}

/// Which settings a channel has (never their values: they hold secrets).
fn configured_keys(config: &Value) -> String {
    config
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

fn token_form(viewer: &Viewer, retry: Option<&Refused>) -> Markup {
    let name_error = retry.and_then(|r| r.error("token-name"));
    let scope_error = retry.and_then(|r| r.error("token-scopes"));
    html! {
        form.token-form id="token-form" method="post" action="/settings/tokens" novalidate {
            (csrf_field(viewer))
            div.field {
                label for="token-name" { "Name" }
                input id="token-name" name="name" required maxlength=(TOKEN_NAME_MAX) size="40"
                    value=(retry.map_or("", |r| r.value("name")))
                    aria-invalid=[name_error.map(|_| "true")]
                    aria-describedby=[name_error.map(|_| "token-name-error")];
                (field_error_slot("token-name", name_error))
                span.hint { "1 to " (TOKEN_NAME_MAX) " characters, to tell tokens apart (\"ci-releases\")." }
            }
            fieldset aria-describedby=[scope_error.map(|_| "token-scopes-error")] {
                legend { "Scopes (none ticked: all)" }
                (field_error_slot("token-scopes", scope_error))
                @for s in SCOPES {
                    label.check { input type="checkbox" name="scope" value=(s) checked[retry.is_some_and(|r| r.scopes.iter().any(|x| x == s))]; " " (s) }
                }
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
    let mut refused = Refused::default();
    let mut unknown = Vec::new();
    for (k, v) in form_urlencoded::parse(body.as_bytes()) {
        match k.as_ref() {
            "csrf" => csrf = v.into_owned(),
            "name" => {
                refused.values.insert("name".into(), v.into_owned());
            }
            "scope" if SCOPES.contains(&v.as_ref()) => refused.scopes.push(v.into_owned()),
            "scope" => unknown.push(clip(&v, 40)),
            _ => {}
        }
    }
    viewer.check_csrf(&csrf)?;
    let name = refused.value("name").trim().to_owned();
    if name.is_empty() {
        refused
            .errors
            .insert("token-name", "Give the token a name.".into());
    } else if name.chars().count() > TOKEN_NAME_MAX {
        refused.errors.insert(
            "token-name",
            format!(
                "At most {TOKEN_NAME_MAX} characters ({} typed).",
                name.chars().count()
            ),
        );
    } else if name.chars().any(char::is_control) {
        refused.errors.insert(
            "token-name",
            "The name cannot hold control characters.".into(),
        );
    }
    if !unknown.is_empty() {
        refused.errors.insert(
            "token-scopes",
            format!(
                "Unknown scope {}; tick scopes from the list.",
                unknown.join(", ")
            ),
        );
    }
    if !refused.errors.is_empty() {
        let page = render(&state, &viewer, Some(Retry::Token(refused))).await?;
        return Ok((StatusCode::BAD_REQUEST, page).into_response());
    }
    let store = state.store.clone();
    let n = name.clone();
    let scopes = refused.scopes;
    let (_, token) = blocking(move || store.create_token(&n, &scopes)).await?;
    flash_put(viewer.csrf(), state.clock.now_ms(), name, token);
    Ok(Redirect::to("/settings#new-token").into_response())
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

/// The prefixes of one list, or what is wrong with them.
fn check_prefixes(text: &str) -> Result<Vec<String>, String> {
    let list = lines(text);
    if list.len() > PREFIXES_MAX {
        return Err(format!(
            "At most {PREFIXES_MAX} prefixes ({} given).",
            list.len()
        ));
    }
    for (i, p) in list.iter().enumerate() {
        if p.chars().count() > PREFIX_LEN_MAX {
            return Err(format!(
                "Line {}: at most {PREFIX_LEN_MAX} characters.",
                i + 1
            ));
        }
        if p.chars().any(char::is_whitespace) {
            return Err(format!(
                "Line {}: {:?} holds a space; a prefix is one word (a module, file or path start).",
                i + 1,
                clip(p, 60)
            ));
        }
    }
    Ok(list)
}

async fn save_in_app(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(f): Form<InAppForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(&f.csrf)?;
    let (include, exclude) = (check_prefixes(&f.include), check_prefixes(&f.exclude));
    let (include, exclude) = match (include, exclude) {
        (Ok(i), Ok(e)) => (i, e),
        (i, e) => {
            let mut refused = Refused::default();
            refused.values.insert("include".into(), f.include.clone());
            refused.values.insert("exclude".into(), f.exclude.clone());
            if let Err(m) = i {
                refused.errors.insert("include", m);
            }
            if let Err(m) = e {
                refused.errors.insert("exclude", m);
            }
            let page = render(&state, &viewer, Some(Retry::InApp(id, refused))).await?;
            return Ok((StatusCode::BAD_REQUEST, page).into_response());
        }
    };
    let prefixes = crate::store::settings::InAppPrefixes { include, exclude };
    let store = state.store.clone();
    blocking(move || {
        if !store.list_projects()?.iter().any(|p| p.id == id) {
            return Err(crate::store::StoreError::NotFound(format!("project {id}")));
        }
        store.settings().set_in_app(id, &prefixes)
    })
    .await?;
    Ok(Redirect::to(&format!("/settings#in-app-{id}")).into_response())
}

// ---------- channels ----------

/// A field of a channel's form: (config key, label, hint, required, secret).
type ChannelField = (&'static str, &'static str, &'static str, bool, bool);

/// The settings each provider takes, in the order the form shows them.
const CHANNEL_FIELDS: &[(&str, &[ChannelField])] = &[
    (
        "slack",
        &[
            (
                "url",
                "Incoming webhook URL",
                "https://hooks.slack.com/services/…",
                true,
                true,
            ),
            (
                "channel",
                "Channel",
                "Optional: #trading-alerts (the webhook's own channel otherwise).",
                false,
                false,
            ),
        ],
    ),
    (
        "pagerduty",
        &[
            (
                "routing_key",
                "Integration (routing) key",
                "The Events API v2 key of the PagerDuty service.",
                true,
                true,
            ),
            (
                "url",
                "Events API URL",
                "Optional: https://events.pagerduty.com/v2/enqueue unless you proxy it.",
                false,
                false,
            ),
        ],
    ),
    (
        "webhook",
        &[
            (
                "url",
                "URL",
                "Receives a signed JSON POST per notification.",
                true,
                false,
            ),
            (
                "secret",
                "Signing secret",
                "Optional: signs each body (X-Lookout-Signature).",
                false,
                true,
            ),
        ],
    ),
    (
        "telegram",
        &[
            ("bot_token", "Bot token", "From @BotFather.", true, true),
            (
                "chat_id",
                "Chat id",
                "The chat or channel to post in (-100… for channels).",
                true,
                false,
            ),
            (
                "api_base",
                "API base URL",
                "Optional: https://api.telegram.org unless you proxy it.",
                false,
                false,
            ),
            (
                "commands",
                "Commands",
                "on: take /status, /alerts, /ack, /mute, /pause, /resume, /resolve and the alert buttons from the allowed chats and users.",
                false,
                false,
            ),
            (
                "allowed_chat_ids",
                "Allowed chat ids",
                "Optional: chats besides the chat id above that may command, separated by commas.",
                false,
                false,
            ),
            (
                "allowed_user_ids",
                "Allowed user ids",
                "Numeric Telegram user ids that may command (required with commands on), separated by commas.",
                false,
                false,
            ),
        ],
    ),
    (
        "email",
        &[
            ("host", "SMTP server", "smtp.example.com", true, false),
            (
                "port",
                "Port",
                "Optional: 587 for STARTTLS, 465 for TLS.",
                false,
                false,
            ),
            (
                "tls",
                "Encryption",
                "starttls (default), tls or none.",
                false,
                false,
            ),
            (
                "username",
                "SMTP user",
                "Optional, with the password.",
                false,
                false,
            ),
            (
                "password",
                "SMTP password",
                "Optional, with the user.",
                false,
                true,
            ),
            ("from", "From address", "alerts@example.com", true, false),
            (
                "to",
                "Recipients",
                "One address, or several separated by commas.",
                true,
                false,
            ),
        ],
    ),
];

fn fields_of(provider: &str) -> Option<&'static [ChannelField]> {
    CHANNEL_FIELDS
        .iter()
        .find(|(p, _)| *p == provider)
        .map(|(_, f)| *f)
}

#[derive(Debug, serde::Deserialize)]
struct ProviderQuery {
    provider: Option<String>,
}

fn channel_form(viewer: &Viewer, provider: &str, refused: &Refused) -> Markup {
    channel_form_to(viewer, provider, refused, None)
}

/// The channel form, posting to `/settings/channels` (a new channel) or, with `edit`, to
/// that channel's edit address (secrets left blank are kept).
fn channel_form_to(
    viewer: &Viewer,
    provider: &str,
    refused: &Refused,
    edit: Option<i64>,
) -> Markup {
    let action = edit.map_or_else(
        || "/settings/channels".to_owned(),
        |id| format!("/settings/channels/{id}/edit"),
    );
    let fields = fields_of(provider).unwrap_or_default();
    let name_error = refused.error("channel-name");
    html! {
        @if !refused.errors.is_empty() {
            div.form-errors id="form-errors" role="alert" { p { "The channel was not saved: see the fields marked below." } }
        }
        form.channel-form id="channel-form" method="post" action=(action) novalidate {
            (csrf_field(viewer))
            input type="hidden" name="provider" value=(provider);
            div.field {
                label for="channel-name" { "Name" }
                input id="channel-name" name="name" maxlength="80" size="40" required value=(refused.value("name"))
                    aria-invalid=[name_error.map(|_| "true")] aria-describedby=[name_error.map(|_| "channel-name-error")];
                (field_error_slot("channel-name", name_error))
                span.hint { "How rules and incidents name it: \"#trading-alerts\", \"on-call\"." }
            }
            @for (key, label, hint, required, secret) in fields {
                @let id = format!("channel-{key}");
                @let error = refused.errors.iter().find(|(k, _)| **k == *key).map(|(_, v)| v.as_str());
                div.field {
                    label for=(id) { (label) @if !required { span.muted { " (optional)" } } }
                    @if *key == "commands" {
                        select id=(id) name=(key) {
                            @for t in ["off", "on"] { option value=(t) selected[refused.value(key) == t] { (t) } }
                        }
                    } @else if *key == "tls" {
                        select id=(id) name=(key) {
                            @for t in ["starttls", "tls", "none"] { option value=(t) selected[refused.value(key) == t] { (t) } }
                        }
                    } @else {
                        input id=(id) name=(key) type=(if *secret { "password" } else if *key == "port" { "number" } else { "text" })
                            autocomplete="off" size="60" value=(if *secret { "" } else { refused.value(key) })
                            required[*required] aria-invalid=[error.map(|_| "true")]
                            aria-describedby=[error.map(|_| format!("{id}-error"))];
                    }
                    (field_error_slot(&id, error))
                    span.hint { (hint) @if edit.is_some() && *secret { " Leave blank to keep it." } }
                }
            }
            button id="save-channel" type="submit" { (if edit.is_some() { "Save channel" } else { "Add channel" }) }
        }
    }
}

async fn new_channel(
    State(_state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<ProviderQuery>,
) -> Page {
    let provider = q.provider.unwrap_or_else(|| "slack".into());
    if fields_of(&provider).is_none() {
        return Err(UiError::NotFound(format!(
            "No channel kind {:?}: use one of {}.",
            clip(&provider, 40),
            notify::PROVIDERS.join(", ")
        )));
    }
    let body = html! {
        div.page-head { h1 { "New " (provider_name(&provider)) " channel" } }
        p { a href="/settings" { "Back to the settings" } }
        (channel_form(&viewer, &provider, &Refused::default()))
    };
    Ok(layout(&viewer, "settings", "New channel", body))
}

/// The config a channel form describes, or its field errors.
fn channel_config(provider: &str, form: &HashMap<String, String>) -> Result<Value, Refused> {
    let fields = fields_of(provider).unwrap_or_default();
    let mut refused = Refused {
        values: form.clone(),
        ..Refused::default()
    };
    let name = form.get("name").map_or("", |s| s.trim());
    if name.is_empty() {
        refused
            .errors
            .insert("channel-name", "Give the channel a name.".into());
    } else if name.chars().count() > 80 {
        refused
            .errors
            .insert("channel-name", "At most 80 characters.".into());
    }
    let mut config = serde_json::Map::new();
    for (key, label, _, required, _) in fields {
        let v = form.get(*key).map_or("", |s| s.trim());
        if v.is_empty() {
            if *required {
                refused.errors.insert(key, format!("{label} is required."));
            }
            continue;
        }
        let value = match *key {
            "port" => match v.parse::<u16>() {
                Ok(p) if p > 0 => json!(p),
                _ => {
                    refused.errors.insert(
                        key,
                        format!("A port is a number from 1 to 65535, not {v:?}."),
                    );
                    continue;
                }
            },
            "to" => json!(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
            ),
            "commands" => json!(v == "on"),
            "allowed_chat_ids" | "allowed_user_ids" => {
                match crate::alerts::telegram_bot::parse_id_list(v) {
                    Ok(ids) => json!(ids),
                    Err(e) => {
                        refused.errors.insert(key, e);
                        continue;
                    }
                }
            }
            "url" | "api_base" if !(v.starts_with("https://") || v.starts_with("http://")) => {
                refused.errors.insert(
                    key,
                    format!("{label} must start with https:// (or http://)."),
                );
                continue;
            }
            _ => json!(v),
        };
        config.insert((*key).to_owned(), value);
    }
    if !refused.errors.is_empty() {
        return Err(refused);
    }
    let config = Value::Object(config);
    // The notifier's own check, as the API's: its message names the key (`config.to …`).
    if let Err(message) = notify::validate_config(provider, &config) {
        let key = fields
            .iter()
            .map(|f| f.0)
            .find(|k| message.contains(&format!("config.{k}")))
            .unwrap_or("channel-name");
        let text = message.replace("config.", "");
        refused.errors.insert(key, upper_first(&text));
        return Err(refused);
    }
    Ok(config)
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

async fn create_channel(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, UiError> {
    viewer.check_csrf(form.get("csrf").map_or("", String::as_str))?;
    let provider = form.get("provider").cloned().unwrap_or_default();
    if fields_of(&provider).is_none() {
        return Err(UiError::BadRequest(format!(
            "No channel kind {:?}: use one of {}.",
            clip(&provider, 40),
            notify::PROVIDERS.join(", ")
        )));
    }
    match channel_config(&provider, &form) {
        Err(refused) => {
            let body = html! {
                div.page-head { h1 { "New " (provider_name(&provider)) " channel" } }
                p { a href="/settings" { "Back to the settings" } }
                (channel_form(&viewer, &provider, &refused))
            };
            Ok((
                StatusCode::BAD_REQUEST,
                layout(&viewer, "settings", "New channel", body),
            )
                .into_response())
        }
        Ok(config) => {
            let name = form.get("name").map_or("", |s| s.trim()).to_owned();
            let alerts = state.store.alerts();
            blocking(move || {
                let oid = alerts.org_id("default")?;
                alerts.create_integration(oid, &provider, &name, &config)
            })
            .await?;
            Ok(Redirect::to("/settings#channels").into_response())
        }
    }
}

/// A stored config as the form shows it (lists joined by commas, `commands` as on/off).
fn form_values(config: &Value) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in config.as_object().into_iter().flatten() {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Bool(b) => if *b { "on" } else { "off" }.to_owned(),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        out.insert(k.clone(), text);
    }
    out
}

async fn find_channel(
    state: &AppState,
    id: i64,
) -> Result<(i64, crate::store::alerts::Integration), UiError> {
    let alerts = state.store.alerts();
    Ok(blocking(move || {
        let oid = alerts.org_id("default")?;
        let found = alerts.integrations(oid)?.into_iter().find(|i| i.id == id);
        found
            .map(|c| (oid, c))
            .ok_or_else(|| crate::store::StoreError::NotFound(format!("channel {id}")))
    })
    .await?)
}

async fn edit_channel(State(state): State<AppState>, viewer: Viewer, Path(id): Path<i64>) -> Page {
    let (_, c) = find_channel(&state, id).await?;
    let mut values = form_values(&c.config);
    values.insert("name".into(), c.name.clone());
    let refused = Refused {
        values,
        ..Refused::default()
    };
    let body = html! {
        div.page-head { h1 { "Edit " (clip(&c.name, 80)) } }
        p { a href="/settings#channels" { "Back to the settings" } }
        (channel_form_to(&viewer, &c.provider, &refused, Some(id)))
    };
    Ok(layout(&viewer, "settings", "Edit channel", body))
}

async fn save_channel(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(mut form): Form<HashMap<String, String>>,
) -> Result<Response, UiError> {
    viewer.check_csrf(form.get("csrf").map_or("", String::as_str))?;
    let (org, c) = find_channel(&state, id).await?;
    // Secrets are never shown: a blank one keeps what is stored.
    let stored = form_values(&c.config);
    for (key, _, _, _, secret) in fields_of(&c.provider).unwrap_or_default() {
        if *secret
            && form.get(*key).is_none_or(|v| v.trim().is_empty())
            && let Some(v) = stored.get(*key)
        {
            form.insert((*key).to_owned(), v.clone());
        }
    }
    match channel_config(&c.provider, &form) {
        Err(mut refused) => {
            for (key, _, _, _, secret) in fields_of(&c.provider).unwrap_or_default() {
                if *secret {
                    refused.values.remove(*key);
                }
            }
            let body = html! {
                div.page-head { h1 { "Edit " (clip(&c.name, 80)) } }
                p { a href="/settings#channels" { "Back to the settings" } }
                (channel_form_to(&viewer, &c.provider, &refused, Some(id)))
            };
            Ok((
                StatusCode::BAD_REQUEST,
                layout(&viewer, "settings", "Edit channel", body),
            )
                .into_response())
        }
        Ok(config) => {
            let name = form.get("name").map_or("", |s| s.trim()).to_owned();
            let triage = state.store.triage();
            let by = format!("user:{}", viewer.username());
            let now = state.clock.now_ms();
            blocking(move || triage.edit_channel(org, id, &by, now, |_, _, _| Ok((name, config))))
                .await?;
            Ok(Redirect::to("/settings#channels").into_response())
        }
    }
}

async fn delete_channel(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(&f.csrf)?;
    let alerts = state.store.alerts();
    blocking(move || {
        let oid = alerts.org_id("default")?;
        alerts.delete_integration(oid, id)
    })
    .await?;
    Ok(Redirect::to("/settings#channels").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_is_shown_once_and_only_to_its_session() {
        flash_put("session-a", 1_000, "ci".into(), "tok".into());
        assert_eq!(flash_take("session-b", 1_001), None);
        assert_eq!(
            flash_take("session-a", 1_001),
            Some(("ci".into(), "tok".into()))
        );
        assert_eq!(flash_take("session-a", 1_002), None);
        flash_put("session-c", 1_000, "late".into(), "tok".into());
        assert_eq!(flash_take("session-c", 1_000 + FLASH_TTL_MS + 1), None);
    }

    #[test]
    fn prefixes_are_words_within_limits() {
        assert_eq!(
            check_prefixes("my_bot\n\n  strategies::\n"),
            Ok(vec!["my_bot".to_owned(), "strategies::".to_owned()])
        );
        assert!(check_prefixes("my bot").unwrap_err().contains("Line 1"));
        assert!(check_prefixes(&"a\n".repeat(101)).is_err());
    }

    #[test]
    fn channel_fields_are_checked_one_by_one() {
        let form: HashMap<String, String> =
            [("name", "#trading-alerts"), ("url", "hooks.slack.com/x")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        let refused = channel_config("slack", &form).unwrap_err();
        assert!(refused.error("url").unwrap().contains("https://"));
        let mut ok = form.clone();
        ok.insert("url".into(), "https://hooks.slack.com/x".into());
        ok.insert("channel".into(), "#trading-alerts".into());
        assert_eq!(
            channel_config("slack", &ok).unwrap(),
            json!({"url": "https://hooks.slack.com/x", "channel": "#trading-alerts"})
        );
        let mut mail = HashMap::new();
        mail.insert("name".to_owned(), "desk".to_owned());
        mail.insert("host".to_owned(), "smtp.example.com".to_owned());
        mail.insert("from".to_owned(), "alerts@example.com".to_owned());
        mail.insert("to".to_owned(), "not an address".to_owned());
        let refused = channel_config("email", &mail).unwrap_err();
        assert!(refused.error("to").is_some(), "{refused:?}");
    }
}
