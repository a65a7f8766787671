//! Profiling, in Sentry's shapes: the raw profile by id, the aggregated flame graph of a
//! window and query, and the functions with the most self time (with their change against
//! the window of equal length before).
//!
//! The organisation endpoints take `project` (a numeric id or a slug of the organisation),
//! `query` (`transaction:"name"` and `span.op:"op"` terms; a bare `transaction:name` works
//! too), and either `statsPeriod` (default 24h) or `start` and `end` (RFC 3339).

use super::{Caller, blocking, parse_period};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::services::profiles;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/0/projects/{org}/{project}/profiling/profiles/{profile_id}/",
            get(raw_profile),
        )
        .route(
            "/api/0/organizations/{org}/profiling/flamegraph/",
            get(flamegraph),
        )
        .route(
            "/api/0/organizations/{org}/profiling/functions/",
            get(functions),
        )
}

async fn raw_profile(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, profile_id)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("event:read")?;
    let reader = state.reader.clone();
    let p = blocking(move || reader.project(&org, &project)).await?;
    profiles::raw(&state.store, p.id, &profile_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("profile {profile_id} not found")))
}

#[derive(Debug, Deserialize)]
struct OrgQuery {
    project: Option<String>,
    query: Option<String>,
    #[serde(rename = "statsPeriod")]
    stats_period: Option<String>,
    start: Option<String>,
    end: Option<String>,
}

/// What an organisation-level profiling request asks for.
struct Request {
    project_id: i64,
    transaction: Option<String>,
    span_op: Option<String>,
    start_ms: i64,
    end_ms: i64,
}

/// The value of `key:` in a Sentry search query: `key:"quoted value"` or `key:word`.
fn term(query: &str, key: &str) -> Option<String> {
    let needle = format!("{key}:");
    let mut rest = query;
    while let Some(at) = rest.find(&needle) {
        let before_ok = at == 0 || rest[..at].ends_with(char::is_whitespace);
        let value = &rest[at + needle.len()..];
        if before_ok {
            if let Some(quoted) = value.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = quoted.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => out.extend(chars.next()),
                        '"' => return Some(out),
                        c => out.push(c),
                    }
                }
                return Some(out);
            }
            let word: String = value.chars().take_while(|c| !c.is_whitespace()).collect();
            return Some(word);
        }
        rest = value;
    }
    None
}

fn parse_time(what: &str, s: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.timestamp_millis())
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .map(|n| n.and_utc().timestamp_millis())
        })
        .map_err(|_| {
            ApiError::bad_request(
                "invalid",
                format!("{what} {s:?} is not a date and time (use RFC 3339)"),
            )
        })
}

async fn request(state: &AppState, org: String, q: OrgQuery) -> Result<Request, ApiError> {
    let project = q.project.filter(|p| !p.is_empty()).ok_or_else(|| {
        ApiError::bad_request("invalid", "project is required (a project id or slug)")
    })?;
    let (start_ms, end_ms) = match (q.start.as_deref(), q.end.as_deref()) {
        (Some(s), Some(e)) => (parse_time("start", s)?, parse_time("end", e)?),
        (None, None) => {
            let period = parse_period(q.stats_period.as_deref().unwrap_or("24h"))?;
            let now = state.clock.now_ms();
            // The current minute included.
            (now - period, now + 60_000)
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid",
                "start and end go together (or use statsPeriod)",
            ));
        }
    };
    if end_ms <= start_ms {
        return Err(ApiError::bad_request("invalid", "end must be after start"));
    }
    let reader = state.reader.clone();
    let project_id = blocking(move || {
        let projects = reader.projects(&org)?;
        Ok(projects
            .into_iter()
            .find(|(id, slug)| *slug == project || id.to_string() == project)
            .map(|(id, _)| id))
    })
    .await?
    .ok_or_else(|| ApiError::NotFound("project not found in this organization".into()))?;
    let query = q.query.unwrap_or_default();
    Ok(Request {
        project_id,
        transaction: term(&query, "transaction").filter(|t| !t.is_empty()),
        span_op: term(&query, "span.op"),
        start_ms,
        end_ms,
    })
}

async fn flamegraph(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Query(q): Query<OrgQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require("event:read")?;
    let r = request(&state, org, q).await?;
    let (graph, merged) = profiles::flamegraph_with_profiles(
        &state.store,
        r.project_id,
        r.transaction.as_deref(),
        r.span_op.as_deref(),
        r.start_ms,
        r.end_ms,
    )
    .await?;
    let platform = merged.first().map_or("", |p| p.platform.as_str());
    Ok(Json(graph.to_sentry_json(
        r.project_id,
        r.transaction.as_deref(),
        platform,
        &merged,
    )))
}

/// In the shape of Sentry's events API over `dataset=profileFunctions`: one row per
/// function with `sum(function.self_time)` (ns), `count()` (samples), and the same sum over
/// the previous window of equal length, with the relative change.
async fn functions(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Query(q): Query<OrgQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require("event:read")?;
    let r = request(&state, org, q).await?;
    let rows = profiles::top_functions(
        &state.store,
        r.project_id,
        r.transaction.as_deref(),
        r.span_op.as_deref(),
        r.start_ms,
        r.end_ms,
    )
    .await?;
    let data: Vec<Value> = rows
        .iter()
        .map(|f| {
            json!({"function": f.name, "package": f.module_or_file, "is_application": f.in_app,
                   "transaction": r.transaction, "span.op": r.span_op,
                   "sum(function.self_time)": f.self_ns, "count()": f.samples,
                   "previous_sum(function.self_time)": f.previous_self_ns,
                   "change": f.change()})
        })
        .collect();
    Ok(Json(json!({
        "data": data,
        "meta": {"fields": {"function": "string", "package": "string", "is_application": "boolean",
            "sum(function.self_time)": "duration", "count()": "integer",
            "previous_sum(function.self_time)": "duration", "change": "percent_change"},
            "units": {"sum(function.self_time)": "nanosecond",
            "previous_sum(function.self_time)": "nanosecond"}},
    })))
}

#[cfg(test)]
mod tests {
    use super::term;

    #[test]
    fn reads_terms_of_a_search_query() {
        let q = r#"transaction:"order \"buy\" BTC" span.op:risk.check"#;
        assert_eq!(
            term(q, "transaction").as_deref(),
            Some(r#"order "buy" BTC"#)
        );
        assert_eq!(term(q, "span.op").as_deref(), Some("risk.check"));
        assert_eq!(
            term("transaction:tick", "transaction").as_deref(),
            Some("tick")
        );
        assert_eq!(term("my.transaction:x", "transaction"), None);
        assert_eq!(term("", "transaction"), None);
    }
}
