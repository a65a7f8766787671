//! Alerts: the rules (presets and custom), created and edited here, each summarised in
//! words ("p99 of order.pipeline > 2 s over 5 min → Slack #trading-alerts"); fired
//! incidents, each with its own page (its rule, when it opened and resolved, the value that
//! fired it, its deliveries); notification deliveries and their outcome, channels by name.
//!
//! Both kinds of rule are edited by forms validated field by field on the server (errors
//! beside their fields, what was typed kept, nothing saved until all is right); issue rules
//! keep Sentry's JSON one click away for experts. A saved form answers with a redirect.

use super::{
    CsrfForm, LIVE_EVERY_SECS, Page, UiError, Viewer, ago, clip, csrf_field, empty,
    field_error_slot, layout, when,
};
use crate::alerts::rules::{self, Aggregate, ThresholdBounds, ids, parse_aggregate};
use crate::http::state::AppState;
use crate::services::ServiceError;
use crate::services::blocking;
use crate::services::rule_book::{self, Save};
use crate::store::alerts::{Delivery, Integration, StoredRule};
use crate::store::read::{Term, parse_query_checked};
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/alerts", get(page))
        .route("/alerts/rules", post(create))
        .route("/alerts/rules/new", get(new_rule))
        .route("/alerts/rules/{id}", get(edit_rule).post(update))
        .route("/alerts/rules/{id}/delete", post(delete))
        .route("/alerts/incidents/{id}", get(incident))
        .route("/alerts/incidents/{id}/ack", post(ack_incident))
        .route("/alerts/rules/{id}/mute", post(mute_rule))
        .route("/alerts/rules/{id}/unmute", post(unmute_rule))
}

// ---------- words: channels, rules ----------

/// A provider as people write it.
pub(super) fn provider_name(p: &str) -> &'static str {
    match p {
        "slack" => "Slack",
        "pagerduty" => "PagerDuty",
        "webhook" => "Webhook",
        "telegram" => "Telegram",
        "email" => "Email",
        _ => "Channel",
    }
}

/// A channel by its name: "Slack #trading-alerts", "PagerDuty on-call".
pub(super) fn channel_label(i: &Integration) -> String {
    let name = i.name.trim();
    let name = if name.is_empty() || name.eq_ignore_ascii_case(&i.provider) {
        i.config
            .get("channel")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("#{}", i.id))
    } else {
        name.to_owned()
    };
    format!("{} {name}", provider_name(&i.provider))
}

/// The organisation's channels, by id, for words.
struct Channels(HashMap<i64, String>);

impl Channels {
    fn of(list: &[Integration]) -> Channels {
        Channels(list.iter().map(|i| (i.id, channel_label(i))).collect())
    }

    fn label(&self, id: i64) -> String {
        self.0
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("a removed channel (#{id})"))
    }
}

/// A number without a useless `.0`.
fn plain(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{}", (v * 1000.0).round() / 1000.0)
    }
}

/// A threshold with its unit: `2 s`, `350 ms`, `5 %`, `100 events`, `0.05`.
fn with_unit(v: f64, unit: &str) -> String {
    match unit {
        "ms" if v >= 1000.0 => format!("{} s", plain(v / 1000.0)),
        "" => plain(v),
        u => format!("{} {u}", plain(v)),
    }
}

/// A window in minutes as `5 min`, `2 h`, `1 day`.
fn minutes_words(m: i64) -> String {
    match m {
        1440 => "1 day".into(),
        m if m >= 60 && m % 60 == 0 => format!("{} h", m / 60),
        m => format!("{m} min"),
    }
}

/// What an aggregate measures, in words.
fn aggregate_words(a: &Aggregate) -> String {
    let of = |d: &rules::Duration| match d {
        rules::Duration::Transaction => "",
        rules::Duration::Span => " span duration",
    };
    match a {
        Aggregate::Percentile { q, of: d } => format!("p{}{}", plain(q * 100.0), of(d)),
        Aggregate::Avg { of: d } => format!("average{}", of(d)),
        Aggregate::Count => "events".into(),
        Aggregate::CountUniqueUsers => "users".into(),
        Aggregate::FailureRate => "failure rate".into(),
        Aggregate::ErrorRate => "error rate".into(),
        Aggregate::CrashFreeSessions => "crash-free sessions".into(),
        Aggregate::CrashFreeUsers => "crash-free users".into(),
        Aggregate::TagRatio { key, value } => format!("share of {key} = {value}"),
        Aggregate::AgentDown { grace_secs } => {
            format!("agents down (crashed or hung {grace_secs} s)")
        }
        Aggregate::UniquePer { of, per } => format!("distinct {of} with errors per {per}"),
    }
}

/// What a query restricts to, in words: `order.pipeline`, `trade.asset = BTC`.
fn query_words(q: &str) -> String {
    let terms = crate::store::read::parse_query(q);
    terms
        .iter()
        .map(|t| match t {
            Term::Tag { key, value, .. }
                if matches!(key.as_str(), "transaction.op" | "transaction" | "span.op") =>
            {
                if matches!(t, Term::Tag { negated: true, .. }) {
                    format!("not {value}")
                } else {
                    value.clone()
                }
            }
            Term::Tag {
                key,
                value,
                negated,
            } => format!("{key} {} {value}", if *negated { "≠" } else { "=" }),
            Term::Level(l) => format!("level {l}"),
            Term::Release(r) => format!("release {r}"),
            Term::Environment(e) => format!("environment {e}"),
            Term::Status(s) => format!("is {s}"),
            Term::Text(t) => format!("\"{t}\""),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a metric trigger's actions send, in words.
fn metric_actions_words(actions: Option<&Value>, channels: &Channels) -> Vec<String> {
    let mut out = Vec::new();
    for a in actions.and_then(Value::as_array).into_iter().flatten() {
        let id = a
            .get("integrationId")
            .or_else(|| a.get("targetIdentifier"))
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()));
        let w = match (a.get("type").and_then(Value::as_str), id) {
            (Some("all"), _) => "every channel".to_owned(),
            (Some("email"), _) => "email".to_owned(),
            (Some(_), Some(id)) => channels.label(id),
            (Some(t), None) => t.to_owned(),
            (None, _) => continue,
        };
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// Where an issue rule's actions send, in words.
fn issue_actions_words(actions: Option<&Value>, channels: &Channels) -> Vec<String> {
    let mut out = Vec::new();
    for a in actions.and_then(Value::as_array).into_iter().flatten() {
        let int = |k: &str| {
            a.get(k)
                .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
        };
        let w = match a.get("id").and_then(Value::as_str).unwrap_or_default() {
            ids::ALL_CHANNELS => "every channel".to_owned(),
            ids::EMAIL => "email".to_owned(),
            ids::SLACK => int("workspace").map_or("Slack".into(), |i| channels.label(i)),
            ids::PAGERDUTY => int("account").map_or("PagerDuty".into(), |i| channels.label(i)),
            ids::WEBHOOK | ids::TELEGRAM => {
                int("integration").map_or("a channel".into(), |i| channels.label(i))
            }
            other => other.rsplit('.').next().unwrap_or(other).to_owned(),
        };
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

fn arrow(actions: &[String]) -> String {
    if actions.is_empty() {
        " → no channel".into()
    } else {
        format!(" → {}", actions.join(", "))
    }
}

/// A metric rule in words: "p99 of order.pipeline > 2 s over 5 min → Slack #trading-alerts".
fn metric_words(spec: &Value, channels: &Channels) -> String {
    let agg_text = spec.get("aggregate").and_then(Value::as_str).unwrap_or("?");
    let agg = parse_aggregate(agg_text);
    let unit = agg.as_ref().map_or("", |a| ThresholdBounds::of(a).unit);
    let what = agg
        .as_ref()
        .map_or_else(|| agg_text.to_owned(), aggregate_words);
    let query = query_words(spec.get("query").and_then(Value::as_str).unwrap_or(""));
    let above = spec.get("thresholdType").and_then(Value::as_i64) != Some(1);
    let triggers = spec.get("triggers").and_then(Value::as_array);
    let threshold = |i: usize| {
        triggers
            .and_then(|t| t.get(i))
            .and_then(|t| t.get("alertThreshold"))
            .and_then(Value::as_f64)
    };
    let window = spec
        .get("timeWindow")
        .and_then(Value::as_f64)
        .map_or_else(String::new, |w| {
            format!(" over {}", minutes_words(w as i64))
        });
    let mut out = what;
    if !query.is_empty() {
        out.push_str(&format!(" of {query}"));
    }
    if let Some(t) = threshold(0) {
        out.push_str(&format!(
            " {} {}",
            if above { ">" } else { "<" },
            with_unit(t, unit)
        ));
    }
    out.push_str(&window);
    if let Some(w) = threshold(1) {
        out.push_str(&format!(" (warning at {})", with_unit(w, unit)));
    }
    let mut actions = Vec::new();
    for t in triggers.into_iter().flatten() {
        for a in metric_actions_words(t.get("actions"), channels) {
            if !actions.contains(&a) {
                actions.push(a);
            }
        }
    }
    out + &arrow(&actions)
}

fn interval_words(s: &str) -> &str {
    match s {
        "1m" => "1 min",
        "5m" => "5 min",
        "15m" => "15 min",
        "1h" => "1 h",
        "1d" => "1 day",
        "1w" => "1 week",
        "30d" => "30 days",
        other => other,
    }
}

fn match_words(op: &str) -> &str {
    match op {
        "eq" => "=",
        "ne" => "≠",
        "sw" => "starts with",
        "ew" => "ends with",
        "co" => "contains",
        "nc" => "does not contain",
        "is" => "is set",
        "ns" => "is not set",
        other => other,
    }
}

fn num_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => n.as_f64().map(plain).unwrap_or_default(),
        Some(Value::String(s)) => s.clone(),
        _ => "?".into(),
    }
}

/// An issue rule in words: "A new issue with trade.asset = BTC → PagerDuty on-call".
fn issue_words(spec: &Value, channels: &Channels) -> String {
    let list = |k: &str| {
        spec.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let conditions: Vec<String> = list("conditions")
        .iter()
        .map(|c| {
            let interval =
                interval_words(c.get("interval").and_then(Value::as_str).unwrap_or("?")).to_owned();
            match c.get("id").and_then(Value::as_str).unwrap_or_default() {
                ids::FIRST_SEEN => "a new issue".into(),
                ids::REGRESSION => "a resolved issue comes back".into(),
                ids::EVENT_FREQUENCY => format!(
                    "an issue seen more than {} times in {interval}",
                    num_text(c.get("value"))
                ),
                ids::UNIQUE_USERS => format!(
                    "an issue hitting more than {} users in {interval}",
                    num_text(c.get("value"))
                ),
                ids::PERCENT_SESSIONS => format!(
                    "an issue in more than {} % of sessions in {interval}",
                    num_text(c.get("value"))
                ),
                ids::NEW_ISSUE_AFTER_DEPLOY => format!(
                    "a new issue within {} min of a deploy",
                    num_text(c.get("minutes"))
                ),
                other => other.rsplit('.').next().unwrap_or(other).to_owned(),
            }
        })
        .collect();
    let joiner = match spec.get("actionMatch").and_then(Value::as_str) {
        Some("any") => " or ",
        _ => " and ",
    };
    let mut out = if spec.get("actionMatch").and_then(Value::as_str) == Some("none") {
        format!("none of: {}", conditions.join(", "))
    } else {
        conditions.join(joiner)
    };
    if out.is_empty() {
        out = "any event".into();
    }
    // "<subject> <match> <value>", without a value for "is set" / "is not set".
    let compared = |f: &Value, subject: String| {
        let how = s(f, "match");
        let value = if matches!(how.as_str(), "is" | "ns") {
            String::new()
        } else {
            num_text(f.get("value"))
        };
        format!("{subject} {} {value}", match_words(&how))
            .trim_end()
            .to_owned()
    };
    let filters: Vec<String> = list("filters")
        .iter()
        .map(
            |f| match f.get("id").and_then(Value::as_str).unwrap_or_default() {
                ids::TAGGED_EVENT => compared(f, s(f, "key")),
                ids::ATTRIBUTE => compared(f, s(f, "attribute")),
                ids::LEVEL => {
                    let level = f
                        .get("level")
                        .map(|l| match l {
                            Value::String(s) if s.parse::<i64>().is_ok() => {
                                level_name(s.parse().unwrap_or(0)).to_owned()
                            }
                            Value::String(s) => s.clone(),
                            Value::Number(n) => level_name(n.as_i64().unwrap_or(0)).to_owned(),
                            _ => "?".into(),
                        })
                        .unwrap_or_default();
                    let op = match s(f, "match").as_str() {
                        "gte" => "≥",
                        "lte" => "≤",
                        _ => "=",
                    };
                    format!("level {op} {level}")
                }
                ids::AGE => format!(
                    "issue {} than {} {}s",
                    s(f, "comparison_type"),
                    num_text(f.get("value")),
                    s(f, "time")
                ),
                ids::OCCURRENCES => format!("seen at least {} times", num_text(f.get("value"))),
                other => other.rsplit('.').next().unwrap_or(other).to_owned(),
            },
        )
        .collect();
    if !filters.is_empty() {
        let fj = match spec.get("filterMatch").and_then(Value::as_str) {
            Some("any") => " or ",
            _ => " and ",
        };
        let none = spec.get("filterMatch").and_then(Value::as_str) == Some("none");
        out.push_str(if none { " without " } else { " with " });
        out.push_str(&filters.join(fj));
    }
    let mut first = out.chars();
    let out = match first.next() {
        Some(c) => c.to_uppercase().chain(first).collect::<String>(),
        None => out,
    };
    out + &arrow(&issue_actions_words(spec.get("actions"), channels))
}

fn level_name(n: i64) -> &'static str {
    match n {
        50 => "fatal",
        40 => "error",
        30 => "warning",
        20 => "info",
        10 => "debug",
        _ => "?",
    }
}

/// A rule in words.
fn rule_words(r: &StoredRule, channels: &Channels) -> String {
    if r.kind == "metric" {
        metric_words(&r.spec, channels)
    } else {
        issue_words(&r.spec, channels)
    }
}

// ---------- the alerts page ----------

async fn page(State(state): State<AppState>, viewer: Viewer) -> Page {
    let store = state.store.alerts();
    let now = state.clock.now_ms();
    let (rules, incidents, deliveries, channels) = blocking(move || {
        let oid = store.org_id("default")?;
        let mut rules = store.rules(oid, None, "metric")?;
        rules.extend(store.rules(oid, None, "issue")?);
        rules.sort_by_key(|r| r.id);
        Ok((
            rules,
            store.incidents(oid, None, 50)?,
            store.deliveries(oid, 50)?,
            store.integrations(oid)?,
        ))
    })
    .await?;
    let channels = Channels::of(&channels);
    let body = html! {
        div.page-head {
            h1 { "Alerts" }
            a.button id="new-rule" href="/alerts/rules/new" { "New metric rule" }
            a.button id="new-issue-rule" href="/alerts/rules/new?kind=issue" { "New issue rule" }
        }
        h2 { "Rules" }
        div.table-scroll {
            table.grid id="rules" {
                thead { tr { th scope="col" { "Rule" } th scope="col" { "Kind" } th scope="col" { "Project" } th scope="col" { "What it does" } th scope="col" { span.sr-only { "Actions" } } } }
                tbody { @for r in &rules {
                    tr.rule data-rule=(r.id) {
                        td { a href=(format!("/alerts/rules/{}", r.id)) { (clip(&r.name, 100)) }
                             @if let Some(p) = &r.preset { " " span.pill.preset title=(p) { "preset" } } }
                        td { (r.kind) }
                        td { (r.project_slug) }
                        td.rule-words { (clip(&rule_words(r, &channels), 300)) }
                        td { form.inline method="post" action=(format!("/alerts/rules/{}/delete", r.id)) data-confirm="Delete this rule?" {
                            (csrf_field(&viewer)) button.link type="submit" aria-label=(format!("Delete rule {}", clip(&r.name, 100))) { "Delete" }
                        } }
                    }
                } }
            }
        }
        // Incidents and deliveries change as alerts fire and notifications go out; the rules
        // (and their delete forms) change only by the operator's hand, and stay put.
        h2 { "Incidents" }
        div id="incidents-live" data-live=(LIVE_EVERY_SECS) {
            @if incidents.is_empty() { (empty("No alert has fired.")) } @else {
                div.table-scroll {
                    table.grid id="incidents" {
                        thead { tr { th scope="col" { "Incident" } th scope="col" { "Rule" } th scope="col" { "Status" } th scope="col" { "Severity" } th scope="col" { "Opened" } th scope="col" { "Closed" } } }
                        tbody { @for i in &incidents {
                            tr {
                                td { a href=(format!("/alerts/incidents/{}", i.id)) { (clip(&i.title, 120)) } @if !i.key.is_empty() { div.muted { (clip(&i.key, 60)) } } }
                                td { @if i.rule_name.is_empty() { span.muted { "a deleted rule" } } @else { a href=(format!("/alerts/rules/{}", i.rule_id)) { (clip(&i.rule_name, 80)) } } }
                                td { span class=(format!("pill {}", clip(&i.status, 20))) { (i.status) } }
                                td { (i.severity) }
                                td { (ago(i.opened_at, now)) }
                                td { @match i.closed_at { Some(t) => { (ago(t, now)) }, None => { "–" } } }
                            }
                        } }
                    }
                }
            }
        }
        h2 { "Notification deliveries" }
        div id="deliveries-live" data-live=(LIVE_EVERY_SECS) {
            @if deliveries.is_empty() { (empty("No notification sent yet.")) p { a href="/settings#channels" { "Configure the notification channels" } } } @else {
                (deliveries_table(&deliveries, &channels, now, true))
            }
        }
    };
    Ok(layout(&viewer, "alerts", "Alerts", body))
}

fn deliveries_table(
    deliveries: &[Delivery],
    channels: &Channels,
    now: i64,
    with_incident: bool,
) -> Markup {
    html! {
        div.table-scroll {
            table.grid id="deliveries" {
                thead { tr {
                    @if with_incident { th scope="col" { "Incident" } }
                    th scope="col" { "Channel" } th scope="col" { "Outcome" } th.num scope="col" { "Attempts" } th scope="col" { "Queued" } th scope="col" { "Delivered" } th scope="col" { "Last error" }
                } }
                tbody { @for d in deliveries {
                    tr.delivery {
                        @if with_incident { td { a href=(format!("/alerts/incidents/{}", d.incident_id)) { "#" (d.incident_id) } } }
                        td.channel { (clip(&channels.label(d.integration_id), 100)) }
                        td { span class=(format!("pill {}", clip(&d.status, 20))) { (d.status) } }
                        td.num { (d.attempts) }
                        td { (ago(d.created_at, now)) }
                        td { @match d.delivered_at { Some(t) => { (ago(t, now)) }, None => { "–" } } }
                        td.muted { (clip(d.last_error.as_deref().unwrap_or(""), 200)) }
                    }
                } }
            }
        }
    }
}

// ---------- an incident ----------

async fn incident(State(state): State<AppState>, viewer: Viewer, Path(id): Path<i64>) -> Page {
    let store = state.store.alerts();
    let now = state.clock.now_ms();
    let (i, activity, deliveries, rule, channels) = blocking(move || {
        let oid = store.org_id("default")?;
        let (i, activity, deliveries) = store.incident(oid, id)?;
        let rule = match store.rule(oid, i.rule_id, "metric") {
            Err(crate::store::StoreError::NotFound(_)) => store.rule(oid, i.rule_id, "issue"),
            other => other,
        };
        let rule = match rule {
            Ok(r) => Some(r),
            Err(crate::store::StoreError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        Ok((i, activity, deliveries, rule, store.integrations(oid)?))
    })
    .await?;
    let triage = state.store.triage();
    let ack = blocking(move || triage.ack(id)).await?;
    let channels = Channels::of(&channels);
    let unit = rule
        .as_ref()
        .filter(|r| r.kind == "metric")
        .and_then(|r| r.spec.get("aggregate").and_then(Value::as_str))
        .and_then(parse_aggregate)
        .map_or("", |a| ThresholdBounds::of(&a).unit);
    let threshold = rule.as_ref().and_then(|r| {
        r.spec
            .get("triggers")
            .and_then(Value::as_array)
            .and_then(|t| t.first())
            .and_then(|t| t.get("alertThreshold"))
            .and_then(Value::as_f64)
    });
    let above = rule
        .as_ref()
        .is_none_or(|r| r.spec.get("thresholdType").and_then(Value::as_i64) != Some(1));
    let body = html! {
        div.page-head {
            h1 id="incident-title" { (clip(&i.title, 200)) }
            // Live regions: the status, when it resolved, the timeline and the deliveries.
            span class=(format!("pill {}", clip(&i.status, 20))) id="incident-status" data-live=(LIVE_EVERY_SECS) { (i.status) }
        }
        dl.facts id="incident-facts" {
            dt { "Rule" }
            dd id="incident-rule" {
                @match &rule {
                    Some(r) => {
                        a href=(format!("/alerts/rules/{}", r.id)) { (clip(&r.name, 100)) }
                        div.rule-words { (clip(&rule_words(r, &channels), 300)) }
                    }
                    None => { span.muted { "The rule (" (clip(&i.rule_name, 100)) ") was deleted." } }
                }
            }
            dt { "Project" } dd { (i.project_slug) }
            @if !i.key.is_empty() { dt { "For" } dd { (clip(&i.key, 100)) } }
            dt { "Severity" } dd { (i.severity) }
            dt { "Acknowledged" }
            dd id="incident-ack" {
                @match &ack {
                    Some(a) => { "by " (clip(&a.by, 100)) " · " (when(a.at)) " UTC" }
                    None if i.status == "closed" => { span.muted { "no" } }
                    None => {
                        form.inline method="post" action=(format!("/alerts/incidents/{}/ack", i.id)) {
                            (csrf_field(&viewer))
                            button id="ack-incident" type="submit" { "Acknowledge" }
                        }
                        span.hint { " Stops further notifications of this incident until it resolves." }
                    }
                }
            }
            dt { "Opened" } dd id="incident-opened" { (when(i.opened_at)) " UTC · " (ago(i.opened_at, now)) }
            dt { "Resolved" }
            dd id="incident-resolved" data-live=(LIVE_EVERY_SECS) {
                @match i.closed_at {
                    Some(t) if i.issue_id.is_some() && t == i.opened_at => {
                        "closed when sent: an issue alert notifies once; the issue itself stays open on its page"
                    }
                    Some(t) => { (when(t)) " UTC · after " (minutes_words(((t - i.opened_at).max(0) / 60_000).max(1))) }
                    None => { "not yet (open for " (minutes_words(((now - i.opened_at).max(0) / 60_000).max(1))) ")" }
                }
            }
            @if let Some(v) = i.value {
                dt { "Value that fired it" }
                dd id="incident-value" {
                    strong { (with_unit(v, unit)) }
                    @if let Some(t) = threshold { " (threshold " (if above { "> " } else { "< " }) (with_unit(t, unit)) ")" }
                }
            }
            @if let Some(issue) = i.issue_id { dt { "Issue" } dd { a href=(format!("/issues/{issue}")) { "Issue #" (issue) } } }
        }
        h2 { "Timeline" }
        div id="incident-timeline-live" data-live=(LIVE_EVERY_SECS) {
            @if activity.is_empty() { (empty("Nothing recorded.")) } @else {
                ol.timeline id="incident-timeline" {
                    @for a in &activity {
                        li { span.time { (when(a.at)) } span.cat { (clip(&a.kind, 40)) } span.msg { (clip(&a.detail, 500)) } }
                    }
                }
            }
        }
        h2 { "Deliveries" }
        div id="incident-deliveries-live" data-live=(LIVE_EVERY_SECS) {
            @if deliveries.is_empty() { (empty("No delivery for this incident.")) } @else { (deliveries_table(&deliveries, &channels, now, false)) }
        }
        p { a href="/alerts" { "All alerts" } }
    };
    Ok(layout(&viewer, "alerts", "Incident", body))
}

// ---------- rule forms ----------

/// Aggregates offered in the form, with their unit (any other the API accepts can be typed).
const AGGREGATES: &[(&str, &str)] = &[
    ("p99(transaction.duration)", "p99 transaction duration (ms)"),
    ("p95(transaction.duration)", "p95 transaction duration (ms)"),
    (
        "avg(transaction.duration)",
        "average transaction duration (ms)",
    ),
    ("error_rate()", "error rate: error events / all events (%)"),
    (
        "failure_rate()",
        "failed transactions / transactions (ratio 0–1)",
    ),
    ("count()", "number of events (events)"),
    (
        "tag_ratio(outcome, rejected_risk)",
        "risk rejections / pipeline runs (%)",
    ),
    (
        "agent_down(60)",
        "agents crashed or hung, grace 60 s (agents)",
    ),
    (
        "percentage(sessions_crashed, sessions)",
        "crash-free sessions (%)",
    ),
];

/// Windows a metric rule may use (minutes), as Sentry's.
const WINDOWS: &[i64] = &[1, 5, 10, 15, 30, 60, 120, 240, 1440];

/// Intervals of frequency conditions.
const INTERVALS: &[&str] = &["1m", "5m", "15m", "1h", "1d", "1w", "30d"];

/// String comparisons of tag and attribute filters.
const MATCHES: &[(&str, &str)] = &[
    ("eq", "equals"),
    ("ne", "does not equal"),
    ("sw", "starts with"),
    ("ew", "ends with"),
    ("co", "contains"),
    ("nc", "does not contain"),
    ("is", "is set"),
    ("ns", "is not set"),
];

/// Attributes the attribute filter reads.
const ATTRIBUTES: &[&str] = &[
    "exception.type",
    "exception.value",
    "message",
    "level",
    "platform",
    "environment",
    "release",
    "transaction",
];

const LEVELS: &[&str] = &["fatal", "error", "warning", "info", "debug"];

/// Empty rows offered for new tag filters.
const SPARE_TAG_ROWS: usize = 2;

/// The submitted form: every field by name (checkboxes only when ticked).
type Fields = HashMap<String, String>;

/// What a refused form says, by field id, plus what belongs to no field.
#[derive(Debug, Default)]
struct FieldErrors {
    by_field: BTreeMap<String, Vec<String>>,
    general: Vec<String>,
}

impl FieldErrors {
    fn add(&mut self, field: &str, msg: impl Into<String>) {
        self.by_field
            .entry(field.to_owned())
            .or_default()
            .push(msg.into());
    }

    fn get(&self, field: &str) -> Option<String> {
        self.by_field.get(field).map(|v| v.join(" "))
    }

    fn is_empty(&self) -> bool {
        self.by_field.is_empty() && self.general.is_empty()
    }

    /// The rule book's errors (`{"triggers": ["…"]}`) on the form's fields.
    fn absorb(&mut self, v: &Value, kind: &str) {
        let Some(m) = v.as_object() else {
            self.general.push(v.to_string());
            return;
        };
        for (k, msgs) in m {
            let msgs: Vec<String> = match msgs {
                Value::Array(a) => a
                    .iter()
                    .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
                    .collect(),
                other => vec![other.to_string()],
            };
            for msg in msgs {
                let field = match (kind, k.as_str()) {
                    (_, "name") => "rule-name",
                    (_, "projects") => "project",
                    ("metric", "aggregate") => "aggregate",
                    ("metric", "query") => "query",
                    ("metric", "timeWindow") => "time-window",
                    ("metric", "nonFieldErrors") if msg.contains("Time Window") => "time-window",
                    ("metric", "resolveThreshold") => "resolve",
                    ("metric", "triggers") if msg.contains("resolve threshold") => "resolve",
                    ("metric", "triggers")
                        if msg.contains("ntegration") || msg.contains("action") =>
                    {
                        "actions"
                    }
                    ("metric", "triggers") => "threshold",
                    ("issue", "frequency") => "frequency",
                    ("issue", "conditions") => "conditions",
                    ("issue", "filters") => "filters",
                    ("issue", "actions") => "actions",
                    ("issue", "actionMatch") => "conditions",
                    ("issue", "filterMatch") => "filters",
                    _ => {
                        self.general.push(msg);
                        continue;
                    }
                };
                self.add(field, msg);
            }
        }
    }
}

/// `aria-invalid` and `aria-describedby` of field `id`.
fn invalid(errors: &FieldErrors, id: &str) -> (Option<&'static str>, Option<String>) {
    match errors.get(id) {
        Some(_) => (Some("true"), Some(format!("{id}-error"))),
        None => (None, None),
    }
}

fn field_error(errors: &FieldErrors, id: &str) -> Markup {
    field_error_slot(id, errors.get(id).as_deref())
}

/// A number field, or what is wrong with it.
fn number(
    errors: &mut FieldErrors,
    f: &Fields,
    name: &str,
    id: &str,
    label: &str,
    required: bool,
) -> Option<f64> {
    match f.get(name).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => {
            if required {
                errors.add(id, format!("{label}: a number is required."));
            }
            None
        }
        Some(s) => match s.parse::<f64>().ok().filter(|v| v.is_finite()) {
            Some(v) => Some(v),
            None => {
                errors.add(id, format!("{label}: {:?} is not a number.", clip(s, 40)));
                None
            }
        },
    }
}

fn text<'a>(f: &'a Fields, name: &str) -> &'a str {
    f.get(name).map_or("", |s| s.trim())
}

fn ticked(f: &Fields, name: &str) -> bool {
    f.contains_key(name)
}

/// The organisation's projects and channels, for the forms' lists.
async fn form_lists(state: &AppState) -> Result<(Vec<String>, Vec<Integration>), UiError> {
    let store = state.store.clone();
    Ok(blocking(move || {
        let projects = store
            .list_projects()?
            .into_iter()
            .filter(|p| p.org_slug == "default")
            .map(|p| p.slug)
            .collect();
        let alerts = store.alerts();
        let channels = alerts.integrations(alerts.org_id("default")?)?;
        Ok((projects, channels))
    })
    .await?)
}

fn project_field(projects: &[String], current: &str, errors: &FieldErrors) -> Markup {
    let (inv, desc) = invalid(errors, "project");
    html! {
        div.field {
            label for="project" { "Project" }
            select id="project" name="project" aria-invalid=[inv] aria-describedby=[desc] {
                @for p in projects { option value=(p) selected[p == current] { (p) } }
            }
            (field_error(errors, "project"))
        }
    }
}

fn name_field(value: &str, errors: &FieldErrors, hint: &str) -> Markup {
    let (inv, desc) = invalid(errors, "rule-name");
    html! {
        div.field {
            label for="rule-name" { "Name" }
            input id="rule-name" name="name" value=(value) required maxlength="256" size="50"
                aria-invalid=[inv] aria-describedby=[desc];
            (field_error(errors, "rule-name"))
            span.hint { (hint) }
        }
    }
}

/// How the error summary names field `id`.
fn field_label(id: &str) -> String {
    let row = |prefix: &str| {
        id.strip_prefix(prefix)
            .and_then(|n| n.parse::<usize>().ok())
            .map(|n| n + 1)
    };
    match id {
        "rule-name" => "Name".into(),
        "project" => "Project".into(),
        "aggregate" => "Measure (aggregate)".into(),
        "query" => "Events matching (query)".into(),
        "time-window" => "Window (timeWindow)".into(),
        "threshold" => "Threshold".into(),
        "resolve" => "Resolve threshold".into(),
        "actions" => "Notify (actions)".into(),
        "conditions" => "Conditions".into(),
        "filters" => "Filters".into(),
        "frequency" => "Notification interval (frequency)".into(),
        "spec" => "Sentry JSON".into(),
        "filter-level" => "Level filter".into(),
        "filter-age" => "Issue age filter".into(),
        "filter-occ" => "Occurrences filter".into(),
        other => {
            if let Some(n) = row("tag-key-").or_else(|| row("tag-value-")) {
                format!("Tag filter {n}")
            } else if let Some(n) = row("attr-value-") {
                format!("Attribute filter {n}")
            } else if let Some(key) = other.strip_prefix("cond-") {
                format!(
                    "Condition {}",
                    key.trim_end_matches("-value")
                        .trim_end_matches("-minutes")
                        .replace('_', " ")
                )
            } else {
                other.to_owned()
            }
        }
    }
}

/// The error summary above a refused form: each error, linked to its field.
fn errors_banner(errors: &FieldErrors) -> Markup {
    html! {
        @if !errors.is_empty() {
            div.form-errors id="form-error" role="alert" tabindex="-1" {
                p { strong { "Nothing was saved." } " Fix what is marked:" }
                ul {
                    @for (field, msgs) in &errors.by_field {
                        li { a href=(format!("#{field}")) { (field_label(field)) } ": " (msgs.join(" ")) }
                    }
                    @for g in &errors.general { li { (g) } }
                }
            }
        }
    }
}

// ----- metric rules -----

/// The metric form's values as strings: from a stored rule, or as submitted.
fn metric_fields_of(r: &StoredRule) -> Fields {
    let s = &r.spec;
    let mut f = Fields::new();
    let trig = s
        .get("triggers")
        .and_then(Value::as_array)
        .and_then(|t| t.first());
    let num = |v: Option<&Value>| v.and_then(Value::as_f64).map(plain).unwrap_or_default();
    f.insert("name".into(), r.name.clone());
    f.insert("project".into(), r.project_slug.clone());
    f.insert(
        "aggregate".into(),
        s.get("aggregate")
            .and_then(Value::as_str)
            .unwrap_or("")
            .into(),
    );
    f.insert(
        "query".into(),
        s.get("query").and_then(Value::as_str).unwrap_or("").into(),
    );
    f.insert("time_window".into(), num(s.get("timeWindow")));
    f.insert(
        "threshold_type".into(),
        if s.get("thresholdType").and_then(Value::as_i64) == Some(1) {
            "below"
        } else {
            "above"
        }
        .into(),
    );
    f.insert(
        "threshold".into(),
        num(trig.and_then(|t| t.get("alertThreshold"))),
    );
    f.insert(
        "resolve_threshold".into(),
        num(trig
            .and_then(|t| t.get("resolveThreshold"))
            .or_else(|| s.get("resolveThreshold"))),
    );
    for a in trig
        .and_then(|t| t.get("actions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = a
            .get("integrationId")
            .or_else(|| a.get("targetIdentifier"))
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()));
        match (a.get("type").and_then(Value::as_str), id) {
            (Some("all"), _) => {
                f.insert("act_all".into(), "on".into());
            }
            (Some("email"), _) => {
                f.insert("act_email".into(), "on".into());
            }
            (Some(_), Some(id)) => {
                f.insert(format!("act_ch_{id}"), "on".into());
            }
            _ => {}
        }
    }
    f
}

/// The unit of the aggregate typed in the form (shown beside the thresholds).
fn unit_of(aggregate: &str) -> &'static str {
    parse_aggregate(aggregate).map_or("", |a| ThresholdBounds::of(&a).unit)
}

fn actions_field(f: &Fields, channels: &[Integration], errors: &FieldErrors, hint: &str) -> Markup {
    let (_, desc) = invalid(errors, "actions");
    html! {
        fieldset id="actions" aria-describedby=[desc] {
            legend { "Notify" }
            (field_error(errors, "actions"))
            label.check { input type="checkbox" id="act-all" name="act_all" checked[ticked(f, "act_all")]; " every channel" }
            @if channels.iter().any(|c| c.provider == "email") {
                label.check { input type="checkbox" id="act-email" name="act_email" checked[ticked(f, "act_email")]; " email channels" }
            }
            @for c in channels.iter().filter(|c| c.provider != "email") {
                @let name = format!("act_ch_{}", c.id);
                label.check { input type="checkbox" id=(format!("act-ch-{}", c.id)) name=(name) checked[ticked(f, &name)]; " " (clip(&channel_label(c), 80)) }
            }
            span.hint { (hint) " " a href="/settings#channels" { "Manage channels" } }
        }
    }
}

fn metric_form(
    viewer: &Viewer,
    action: &str,
    f: &Fields,
    projects: &[String],
    channels: &[Integration],
    errors: &FieldErrors,
) -> Markup {
    let aggregate = text(f, "aggregate");
    let unit = unit_of(aggregate);
    let unit_text = match unit {
        "" if aggregate.is_empty() => "unit of the measure".to_owned(),
        "" => "ratio (0–1)".to_owned(),
        u => u.to_owned(),
    };
    let window = text(f, "time_window");
    let window = if window.is_empty() { "5" } else { window };
    let below = text(f, "threshold_type") == "below";
    html! {
        (errors_banner(errors))
        form.rule-form id="rule-form" method="post" action=(action) novalidate {
            (csrf_field(viewer))
            input type="hidden" name="kind" value="metric";
            (name_field(text(f, "name"), errors, "Shown in notifications and on incidents."))
            (project_field(projects, text(f, "project"), errors))
            @let (inv, desc) = invalid(errors, "aggregate");
            div.field {
                label for="aggregate" { "Measure" }
                input id="aggregate" name="aggregate" list="aggregates" value=(aggregate) required size="40"
                    aria-invalid=[inv] aria-describedby=[desc];
                datalist id="aggregates" { @for (a, label) in AGGREGATES { option value=(a) { (label) } } }
                (field_error(errors, "aggregate"))
                span.hint { "Pick one from the list or type any Sentry aggregate Lookout measures: p50–p100, avg, count(), error_rate(), failure_rate(), tag_ratio(key, value), agent_down(seconds)." }
            }
            @let (inv, desc) = invalid(errors, "query");
            div.field {
                label for="query" { "Events matching" span.muted { " (optional)" } }
                input id="query" name="query" value=(text(f, "query")) size="60" spellcheck="false"
                    aria-invalid=[inv] aria-describedby=[desc];
                (field_error(errors, "query"))
                span.hint { "Search syntax: key:value terms, e.g. transaction.op:order.pipeline or trade.asset:BTC; !key:value excludes." }
            }
            @let (inv, desc) = invalid(errors, "time-window");
            div.field {
                label for="time-window" { "Over the last" }
                div.control {
                    select id="time-window" name="time_window" aria-invalid=[inv] aria-describedby=[desc] {
                        @for w in WINDOWS { option value=(w) selected[window == w.to_string()] { (minutes_words(*w)) } }
                    }
                }
                (field_error(errors, "time-window"))
            }
            @let (inv, desc) = invalid(errors, "threshold");
            div.field {
                label for="threshold" { "Fire when the value is" }
                div.control {
                    select id="threshold-type" name="threshold_type" aria-label="above or below" {
                        option value="above" selected[!below] { "above" }
                        option value="below" selected[below] { "below" }
                    }
                    input id="threshold" name="threshold" type="number" step="any" min="0" value=(text(f, "threshold")) required
                        aria-invalid=[inv] aria-describedby=[desc];
                    span.unit id="threshold-unit" { (unit_text) }
                }
                (field_error(errors, "threshold"))
                span.hint { "Latencies in ms, rates in %, counts in events; never negative." }
            }
            @let (inv, desc) = invalid(errors, "resolve");
            div.field {
                label for="resolve" { "Resolve when back past" span.muted { " (optional)" } }
                div.control {
                    input id="resolve" name="resolve_threshold" type="number" step="any" min="0" value=(text(f, "resolve_threshold"))
                        aria-invalid=[inv] aria-describedby=[desc];
                    span.unit { (unit_text) }
                }
                (field_error(errors, "resolve"))
            }
            (actions_field(f, channels, errors, "Nothing ticked: every channel."))
            button id="save-rule" type="submit" { "Save rule" }
        }
    }
}

/// The metric rule body a form describes, after the form's own checks (numbers, ranges,
/// query syntax with its position); the rule book checks the rest.
fn metric_body(f: &Fields, channels: &[Integration], errors: &mut FieldErrors) -> Value {
    let name = text(f, "name");
    if name.is_empty() {
        errors.add("rule-name", "Give the rule a name.");
    }
    let aggregate = text(f, "aggregate");
    let parsed = if aggregate.is_empty() {
        errors.add("aggregate", "Choose what to measure.");
        None
    } else {
        let p = parse_aggregate(aggregate);
        if p.is_none() {
            errors.add(
                "aggregate",
                format!(
                    "Lookout cannot measure {:?}; pick one from the list.",
                    clip(aggregate, 60)
                ),
            );
        }
        p
    };
    let query = text(f, "query");
    if let Err(e) = parse_query_checked(query) {
        errors.add("query", format!("Invalid query: {e}."));
    }
    let window = match text(f, "time_window").parse::<i64>() {
        Ok(w) if WINDOWS.contains(&w) => w,
        _ => {
            errors.add(
                "time-window",
                format!(
                    "Choose a window from the list ({}).",
                    WINDOWS
                        .iter()
                        .map(|w| minutes_words(*w))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            5
        }
    };
    let threshold = number(errors, f, "threshold", "threshold", "Threshold", true);
    let resolve = number(
        errors,
        f,
        "resolve_threshold",
        "resolve",
        "Resolve threshold",
        false,
    );
    if let Some(a) = &parsed {
        let bounds = ThresholdBounds::of(a);
        if let Some(m) = threshold.and_then(|v| bounds.refuse(v)) {
            errors.add("threshold", format!("The threshold {m}."));
        }
        if let Some(m) = resolve.and_then(|v| bounds.refuse(v)) {
            errors.add("resolve", format!("The resolve threshold {m}."));
        }
    }
    let below = text(f, "threshold_type") == "below";
    if let (Some(t), Some(r)) = (threshold, resolve)
        && ((below && r < t) || (!below && r > t))
    {
        errors.add(
            "resolve",
            format!(
                "To resolve, the value must come back {} the threshold: {} the threshold {}.",
                if below { "above" } else { "below" },
                if below { "at least" } else { "at most" },
                plain(t)
            ),
        );
    }
    let mut actions = Vec::new();
    if ticked(f, "act_all") {
        actions.push(json!({"type": "all", "targetType": "specific"}));
    }
    if ticked(f, "act_email") {
        actions.push(json!({"type": "email", "targetType": "specific"}));
    }
    for c in channels.iter().filter(|c| c.provider != "email") {
        if ticked(f, &format!("act_ch_{}", c.id)) {
            actions
                .push(json!({"type": c.provider, "targetType": "specific", "integrationId": c.id}));
        }
    }
    if actions.is_empty() {
        actions.push(json!({"type": "all", "targetType": "specific"}));
    }
    let mut trigger = json!({
        "label": "critical",
        "alertThreshold": threshold.unwrap_or(0.0),
        "actions": actions,
    });
    let mut body = json!({
        "name": name,
        "aggregate": aggregate,
        "query": query,
        "timeWindow": window,
        "thresholdType": if below { 1 } else { 0 },
    });
    if let Some(r) = resolve {
        trigger["resolveThreshold"] = json!(r);
        body["resolveThreshold"] = json!(r);
    } else {
        body["resolveThreshold"] = Value::Null;
    }
    body["triggers"] = json!([trigger]);
    body
}

// ----- issue rules -----

/// The conditions the form offers: (form key, rule class, words).
const CONDITIONS: &[(&str, &str, &str)] = &[
    ("first_seen", ids::FIRST_SEEN, "A new issue is created"),
    ("regression", ids::REGRESSION, "A resolved issue comes back"),
    (
        "frequency",
        ids::EVENT_FREQUENCY,
        "An issue is seen more than",
    ),
    ("users", ids::UNIQUE_USERS, "An issue hits more than"),
    (
        "sessions",
        ids::PERCENT_SESSIONS,
        "An issue's events are in more than",
    ),
    (
        "deploy",
        ids::NEW_ISSUE_AFTER_DEPLOY,
        "A new issue appears within",
    ),
];

/// The issue form's values from a stored (or typed) rule body, and whether the form shows
/// all of it (a rule with parts the form has no place for is edited as JSON).
fn issue_fields_of(spec: &Value, channels: &[Integration]) -> (Fields, bool) {
    let mut f = Fields::new();
    let mut whole = true;
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let n = |v: &Value, k: &str| match v.get(k) {
        Some(Value::Number(x)) => x.as_f64().map(plain).unwrap_or_default(),
        Some(Value::String(x)) => x.clone(),
        _ => String::new(),
    };
    f.insert("name".into(), s(spec, "name"));
    f.insert("environment".into(), s(spec, "environment"));
    f.insert(
        "action_match".into(),
        spec.get("actionMatch")
            .and_then(Value::as_str)
            .unwrap_or("all")
            .into(),
    );
    f.insert(
        "filter_match".into(),
        spec.get("filterMatch")
            .and_then(Value::as_str)
            .unwrap_or("all")
            .into(),
    );
    f.insert(
        "frequency".into(),
        match spec.get("frequency") {
            None | Some(Value::Null) => "30".into(),
            Some(_) => n(spec, "frequency"),
        },
    );
    for c in spec
        .get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = s(c, "id");
        let Some((key, _, _)) = CONDITIONS.iter().find(|(_, cid, _)| *cid == id) else {
            whole = false;
            continue;
        };
        let flag = format!("cond_{key}");
        if f.contains_key(&flag) {
            whole = false;
        }
        f.insert(flag, "on".into());
        match *key {
            "frequency" | "users" | "sessions" => {
                f.insert(format!("cond_{key}_value"), n(c, "value"));
                f.insert(format!("cond_{key}_interval"), s(c, "interval"));
            }
            "deploy" => {
                f.insert("cond_deploy_minutes".into(), n(c, "minutes"));
            }
            _ => {}
        }
    }
    let (mut tags, mut attrs) = (0, 0);
    for x in spec
        .get("filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match s(x, "id").as_str() {
            ids::TAGGED_EVENT => {
                f.insert(format!("tag_key_{tags}"), s(x, "key"));
                f.insert(format!("tag_match_{tags}"), s(x, "match"));
                f.insert(format!("tag_value_{tags}"), n(x, "value"));
                tags += 1;
            }
            ids::ATTRIBUTE => {
                f.insert(format!("attr_name_{attrs}"), s(x, "attribute"));
                f.insert(format!("attr_match_{attrs}"), s(x, "match"));
                f.insert(format!("attr_value_{attrs}"), n(x, "value"));
                attrs += 1;
            }
            ids::LEVEL if !f.contains_key("filter_level") => {
                f.insert("filter_level".into(), "on".into());
                f.insert("filter_level_match".into(), s(x, "match"));
                let level = match x.get("level") {
                    Some(Value::Number(v)) => level_name(v.as_i64().unwrap_or(0)).to_owned(),
                    Some(Value::String(v)) => v
                        .parse::<i64>()
                        .map_or_else(|_| v.clone(), |l| level_name(l).to_owned()),
                    _ => String::new(),
                };
                f.insert("filter_level_value".into(), level);
            }
            ids::AGE if !f.contains_key("filter_age") => {
                f.insert("filter_age".into(), "on".into());
                f.insert("filter_age_cmp".into(), s(x, "comparison_type"));
                f.insert("filter_age_value".into(), n(x, "value"));
                f.insert("filter_age_unit".into(), s(x, "time"));
            }
            ids::OCCURRENCES if !f.contains_key("filter_occ") => {
                f.insert("filter_occ".into(), "on".into());
                f.insert("filter_occ_value".into(), n(x, "value"));
            }
            _ => whole = false,
        }
    }
    if !f.contains_key("filter_level") {
        // What the level filter offers when ticked: at least error.
        f.insert("filter_level_match".into(), "gte".into());
        f.insert("filter_level_value".into(), "error".into());
    }
    f.insert("tag_rows".into(), (tags + SPARE_TAG_ROWS).to_string());
    f.insert("attr_rows".into(), (attrs + 1).to_string());
    for a in spec
        .get("actions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let int = |k: &str| {
            a.get(k)
                .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
        };
        let key = match s(a, "id").as_str() {
            ids::ALL_CHANNELS => Some("act_all".to_owned()),
            ids::EMAIL if a.get("targetIdentifier").is_none() => Some("act_email".to_owned()),
            ids::SLACK if a.get("channel").is_none() => {
                int("workspace").map(|i| format!("act_ch_{i}"))
            }
            ids::PAGERDUTY if a.get("severity").is_none() => {
                int("account").map(|i| format!("act_ch_{i}"))
            }
            ids::WEBHOOK | ids::TELEGRAM => int("integration").map(|i| format!("act_ch_{i}")),
            _ => None,
        };
        match key {
            Some(k)
                if k == "act_all"
                    || k == "act_email"
                    || channels.iter().any(|c| format!("act_ch_{}", c.id) == k) =>
            {
                f.insert(k, "on".into());
            }
            _ => whole = false,
        }
    }
    // Anything else the body holds (owner, unknown keys) has no place in the form either.
    if let Some(m) = spec.as_object()
        && m.keys().any(|k| {
            !matches!(
                k.as_str(),
                "name"
                    | "environment"
                    | "actionMatch"
                    | "filterMatch"
                    | "frequency"
                    | "conditions"
                    | "filters"
                    | "actions"
            )
        })
    {
        whole = false;
    }
    (f, whole)
}

/// The issue rule body a form describes, after the form's own checks.
fn issue_body(f: &Fields, channels: &[Integration], errors: &mut FieldErrors) -> Value {
    let name = text(f, "name");
    if name.is_empty() {
        errors.add("rule-name", "Give the rule a name.");
    }
    let frequency = match number(
        errors,
        f,
        "frequency",
        "frequency",
        "Minimum interval",
        true,
    ) {
        Some(v) if (5.0..=43_200.0).contains(&v) && v.fract() == 0.0 => v,
        Some(v) => {
            errors.add(
                "frequency",
                format!(
                    "Between 5 and 43200 minutes, in whole minutes (got {}).",
                    plain(v)
                ),
            );
            30.0
        }
        None => 30.0,
    };
    let choice = |name: &str, allowed: &[&str], default: &'static str| -> String {
        let v = text(f, name);
        if allowed.contains(&v) {
            v.to_owned()
        } else {
            default.to_owned()
        }
    };
    let mut conditions = Vec::new();
    for (key, id, _) in CONDITIONS {
        if !ticked(f, &format!("cond_{key}")) {
            continue;
        }
        match *key {
            "frequency" | "users" | "sessions" => {
                let field = format!("cond-{key}-value");
                let label = match *key {
                    "frequency" => "Events",
                    "users" => "Users",
                    _ => "Percentage of sessions",
                };
                let value = number(errors, f, &format!("cond_{key}_value"), &field, label, true);
                match value {
                    Some(v) if v < 0.0 => {
                        errors.add(&field, format!("{label}: 0 or more (got {}).", plain(v)))
                    }
                    Some(v) if *key == "sessions" && v > 100.0 => errors.add(
                        &field,
                        format!("{label}: at most 100 % (got {}).", plain(v)),
                    ),
                    Some(v) if *key != "sessions" && v.fract() != 0.0 => errors.add(
                        &field,
                        format!("{label}: a whole number (got {}).", plain(v)),
                    ),
                    _ => {}
                }
                let interval = text(f, &format!("cond_{key}_interval"));
                if !INTERVALS.contains(&interval) {
                    errors.add(&field, "Choose an interval from the list.");
                }
                conditions
                    .push(json!({"id": id, "value": value.unwrap_or(0.0), "interval": interval}));
            }
            "deploy" => {
                let value = number(
                    errors,
                    f,
                    "cond_deploy_minutes",
                    "cond-deploy-minutes",
                    "Minutes after a deploy",
                    true,
                );
                if let Some(v) = value
                    && (!(1.0..=10_080.0).contains(&v) || v.fract() != 0.0)
                {
                    errors.add(
                        "cond-deploy-minutes",
                        format!(
                            "Minutes after a deploy: a whole number from 1 to 10080 (got {}).",
                            plain(v)
                        ),
                    );
                }
                conditions.push(json!({"id": id, "minutes": value.unwrap_or(0.0)}));
            }
            _ => conditions.push(json!({"id": id})),
        }
    }
    if conditions.is_empty() {
        errors.add("conditions", "Choose at least one condition.");
    }
    let mut filters = Vec::new();
    let rows = |k: &str| text(f, k).parse::<usize>().unwrap_or(0).min(50);
    let ops: Vec<&str> = MATCHES.iter().map(|m| m.0).collect();
    for i in 0..rows("tag_rows") {
        let key = text(f, &format!("tag_key_{i}"));
        let op = choice(&format!("tag_match_{i}"), &ops, "eq");
        let value = text(f, &format!("tag_value_{i}"));
        let needs_value = !matches!(op.as_str(), "is" | "ns");
        if key.is_empty() {
            if !value.is_empty() {
                errors.add(
                    &format!("tag-key-{i}"),
                    "Which tag? Give its key (trade.asset, agent_id).",
                );
            }
            continue;
        }
        if key.chars().any(char::is_whitespace) || key.chars().count() > 200 {
            errors.add(
                &format!("tag-key-{i}"),
                "A tag key is one word of at most 200 characters.",
            );
        }
        if needs_value && value.is_empty() {
            errors.add(
                &format!("tag-value-{i}"),
                format!("Give the value {key} must match."),
            );
        }
        filters.push(json!({"id": ids::TAGGED_EVENT, "key": key, "match": op, "value": value}));
    }
    for i in 0..rows("attr_rows") {
        let attribute = text(f, &format!("attr_name_{i}"));
        if attribute.is_empty() {
            continue;
        }
        if !ATTRIBUTES.contains(&attribute) {
            errors.add(
                &format!("attr-value-{i}"),
                "Choose an attribute from the list.",
            );
        }
        let op = choice(&format!("attr_match_{i}"), &ops, "eq");
        let value = text(f, &format!("attr_value_{i}"));
        if !matches!(op.as_str(), "is" | "ns") && value.is_empty() {
            errors.add(
                &format!("attr-value-{i}"),
                format!("Give the value {attribute} must match."),
            );
        }
        filters.push(
            json!({"id": ids::ATTRIBUTE, "attribute": attribute, "match": op, "value": value}),
        );
    }
    if ticked(f, "filter_level") {
        let level = text(f, "filter_level_value");
        if !LEVELS.contains(&level) {
            errors.add("filter-level", "Choose a level from the list.");
        }
        filters.push(json!({"id": ids::LEVEL, "match": choice("filter_level_match", &["eq", "gte", "lte"], "gte"), "level": rules::level_number(level).to_string()}));
    }
    if ticked(f, "filter_age") {
        let value = number(
            errors,
            f,
            "filter_age_value",
            "filter-age",
            "Issue age",
            true,
        );
        if let Some(v) = value
            && v < 0.0
        {
            errors.add(
                "filter-age",
                format!("Issue age: 0 or more (got {}).", plain(v)),
            );
        }
        filters.push(json!({"id": ids::AGE, "comparison_type": choice("filter_age_cmp", &["older", "newer"], "older"), "value": value.unwrap_or(0.0), "time": choice("filter_age_unit", &["minute", "hour", "day", "week"], "hour")}));
    }
    if ticked(f, "filter_occ") {
        let value = number(
            errors,
            f,
            "filter_occ_value",
            "filter-occ",
            "Occurrences",
            true,
        );
        if let Some(v) = value
            && (v < 0.0 || v.fract() != 0.0)
        {
            errors.add(
                "filter-occ",
                format!("Occurrences: a whole number, 0 or more (got {}).", plain(v)),
            );
        }
        filters.push(json!({"id": ids::OCCURRENCES, "value": value.unwrap_or(0.0)}));
    }
    let mut actions = Vec::new();
    if ticked(f, "act_all") {
        actions.push(json!({"id": ids::ALL_CHANNELS}));
    }
    if ticked(f, "act_email") {
        actions.push(json!({"id": ids::EMAIL}));
    }
    for c in channels.iter().filter(|c| c.provider != "email") {
        if !ticked(f, &format!("act_ch_{}", c.id)) {
            continue;
        }
        actions.push(match c.provider.as_str() {
            "slack" => json!({"id": ids::SLACK, "workspace": c.id}),
            "pagerduty" => json!({"id": ids::PAGERDUTY, "account": c.id}),
            "telegram" => json!({"id": ids::TELEGRAM, "integration": c.id}),
            _ => json!({"id": ids::WEBHOOK, "integration": c.id}),
        });
    }
    if actions.is_empty() {
        errors.add("actions", "Choose where to send it.");
    }
    let mut body = json!({
        "name": name,
        "actionMatch": choice("action_match", &["all", "any", "none"], "all"),
        "filterMatch": choice("filter_match", &["all", "any", "none"], "all"),
        "frequency": frequency as i64,
        "conditions": conditions,
        "filters": filters,
        "actions": actions,
    });
    let env = text(f, "environment");
    if !env.is_empty() {
        body["environment"] = json!(env);
    }
    body
}

fn select_of(name: &str, id: &str, options: &[(&str, &str)], current: &str, label: &str) -> Markup {
    html! {
        select name=(name) id=(id) aria-label=(label) {
            @for (v, words) in options { option value=(v) selected[*v == current] { (words) } }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn issue_form(
    viewer: &Viewer,
    action: &str,
    f: &Fields,
    projects: &[String],
    channels: &[Integration],
    errors: &FieldErrors,
    spec_text: &str,
    whole: bool,
    json_mode: bool,
) -> Markup {
    let intervals: Vec<(&str, &str)> = INTERVALS.iter().map(|i| (*i, interval_words(i))).collect();
    let levels: Vec<(&str, &str)> = LEVELS.iter().map(|l| (*l, *l)).collect();
    let attrs: Vec<(&str, &str)> = std::iter::once(("", "—"))
        .chain(ATTRIBUTES.iter().map(|a| (*a, *a)))
        .collect();
    let rows = |k: &str, min: usize| text(f, k).parse::<usize>().unwrap_or(min).clamp(min, 50);
    let tag_rows = rows("tag_rows", SPARE_TAG_ROWS);
    let attr_rows = rows("attr_rows", 1);
    let matches = [("all", "all of"), ("any", "any of"), ("none", "none of")];
    html! {
        (errors_banner(errors))
        @if !whole {
            p.notice id="json-only" { "This rule uses parts the form cannot show (repeated conditions, channel overrides or other fields): edit it as JSON below, or save the form to replace it with what the form shows." }
        }
        form.rule-form id="rule-form" method="post" action=(action) novalidate {
            (csrf_field(viewer))
            input type="hidden" name="kind" value="issue";
            input type="hidden" name="tag_rows" value=(tag_rows);
            input type="hidden" name="attr_rows" value=(attr_rows);
            (name_field(text(f, "name"), errors, "Shown in notifications and on incidents."))
            (project_field(projects, text(f, "project"), errors))
            @let (inv, desc) = invalid(errors, "conditions");
            fieldset id="conditions" aria-describedby=[desc] aria-invalid=[inv] {
                legend { "When " (select_of("action_match", "action-match", &matches, text(f, "action_match"), "how conditions combine")) " these happen" }
                (field_error(errors, "conditions"))
                @for (key, _, words) in CONDITIONS {
                    @let flag = format!("cond_{key}");
                    @let fid = format!("cond-{key}");
                    div.rule-line {
                        input type="checkbox" id=(fid) name=(flag) checked[ticked(f, &flag)];
                        label for=(fid) { (words) }
                        @match *key {
                            "frequency" | "users" | "sessions" => {
                                @let vid = format!("cond-{key}-value");
                                @let (inv, desc) = invalid(errors, &vid);
                                input type="number" min="0" step="any" id=(vid) name=(format!("cond_{key}_value"))
                                    value=(text(f, &format!("cond_{key}_value"))) aria-label=(format!("{words}: how many"))
                                    aria-invalid=[inv] aria-describedby=[desc];
                                span.unit { @match *key { "frequency" => "events", "users" => "users", _ => "% of sessions" } }
                                " in "
                                (select_of(&format!("cond_{key}_interval"), &format!("cond-{key}-interval"), &intervals, text(f, &format!("cond_{key}_interval")), &format!("{words}: in which interval")))
                                (field_error(errors, &vid))
                            }
                            "deploy" => {
                                @let (inv, desc) = invalid(errors, "cond-deploy-minutes");
                                input type="number" min="1" step="1" id="cond-deploy-minutes" name="cond_deploy_minutes"
                                    value=(text(f, "cond_deploy_minutes")) aria-label="minutes after a deploy"
                                    aria-invalid=[inv] aria-describedby=[desc];
                                span.unit { "minutes of a deploy" }
                                (field_error(errors, "cond-deploy-minutes"))
                            }
                            _ => {}
                        }
                    }
                }
            }
            @let (_, desc) = invalid(errors, "filters");
            fieldset id="filters" aria-describedby=[desc] {
                legend { "If " (select_of("filter_match", "filter-match", &matches, text(f, "filter_match"), "how filters combine")) " these hold (optional)" }
                (field_error(errors, "filters"))
                @for i in 0..tag_rows {
                    div.rule-line.tag-filter {
                        span { "Tag" }
                        @let kid = format!("tag-key-{i}");
                        @let vid = format!("tag-value-{i}");
                        @let (kinv, kdesc) = invalid(errors, &kid);
                        @let (vinv, vdesc) = invalid(errors, &vid);
                        input id=(kid) name=(format!("tag_key_{i}")) value=(text(f, &format!("tag_key_{i}"))) placeholder="trade.asset" size="18"
                            aria-label=(format!("tag filter {}: key", i + 1)) aria-invalid=[kinv] aria-describedby=[kdesc];
                        (select_of(&format!("tag_match_{i}"), &format!("tag-match-{i}"), MATCHES, text(f, &format!("tag_match_{i}")), &format!("tag filter {}: comparison", i + 1)))
                        input id=(vid) name=(format!("tag_value_{i}")) value=(text(f, &format!("tag_value_{i}"))) placeholder="BTC" size="18"
                            aria-label=(format!("tag filter {}: value", i + 1)) aria-invalid=[vinv] aria-describedby=[vdesc];
                        (field_error(errors, &kid)) (field_error(errors, &vid))
                    }
                }
                @for i in 0..attr_rows {
                    div.rule-line.attr-filter {
                        span { "Event attribute" }
                        @let vid = format!("attr-value-{i}");
                        @let (vinv, vdesc) = invalid(errors, &vid);
                        (select_of(&format!("attr_name_{i}"), &format!("attr-name-{i}"), &attrs, text(f, &format!("attr_name_{i}")), &format!("attribute filter {}: attribute", i + 1)))
                        (select_of(&format!("attr_match_{i}"), &format!("attr-match-{i}"), MATCHES, text(f, &format!("attr_match_{i}")), &format!("attribute filter {}: comparison", i + 1)))
                        input id=(vid) name=(format!("attr_value_{i}")) value=(text(f, &format!("attr_value_{i}"))) placeholder="OrderRejected" size="18"
                            aria-label=(format!("attribute filter {}: value", i + 1)) aria-invalid=[vinv] aria-describedby=[vdesc];
                        (field_error(errors, &vid))
                    }
                }
                div.rule-line {
                    input type="checkbox" id="filter-level-on" name="filter_level" checked[ticked(f, "filter_level")];
                    label for="filter-level-on" { "Level" }
                    (select_of("filter_level_match", "filter-level-match", &[("gte", "at least"), ("eq", "exactly"), ("lte", "at most")], text(f, "filter_level_match"), "level comparison"))
                    (select_of("filter_level_value", "filter-level", &levels, text(f, "filter_level_value"), "level"))
                    (field_error(errors, "filter-level"))
                }
                div.rule-line {
                    input type="checkbox" id="filter-age-on" name="filter_age" checked[ticked(f, "filter_age")];
                    label for="filter-age-on" { "The issue is" }
                    (select_of("filter_age_cmp", "filter-age-cmp", &[("older", "older"), ("newer", "newer")], text(f, "filter_age_cmp"), "older or newer"))
                    " than "
                    @let (inv, desc) = invalid(errors, "filter-age");
                    input type="number" min="0" step="any" id="filter-age" name="filter_age_value" value=(text(f, "filter_age_value")) aria-label="issue age" aria-invalid=[inv] aria-describedby=[desc];
                    (select_of("filter_age_unit", "filter-age-unit", &[("minute", "minutes"), ("hour", "hours"), ("day", "days"), ("week", "weeks")], text(f, "filter_age_unit"), "age unit"))
                    (field_error(errors, "filter-age"))
                }
                div.rule-line {
                    input type="checkbox" id="filter-occ-on" name="filter_occ" checked[ticked(f, "filter_occ")];
                    label for="filter-occ-on" { "The issue was seen at least" }
                    @let (inv, desc) = invalid(errors, "filter-occ");
                    input type="number" min="0" step="1" id="filter-occ" name="filter_occ_value" value=(text(f, "filter_occ_value")) aria-label="occurrences" aria-invalid=[inv] aria-describedby=[desc];
                    span.unit { "times" }
                    (field_error(errors, "filter-occ"))
                }
                span.hint { "Save to get more empty tag rows." }
            }
            (actions_field(f, channels, errors, "Choose at least one."))
            @let (inv, desc) = invalid(errors, "frequency");
            div.field {
                label for="frequency" { "At most one notification per issue every" }
                div.control {
                    input type="number" id="frequency" name="frequency" min="5" max="43200" step="1" value=(text(f, "frequency"))
                        aria-invalid=[inv] aria-describedby=[desc];
                    span.unit { "minutes" }
                }
                (field_error(errors, "frequency"))
                span.hint { "5 to 43200 minutes (30 days)." }
            }
            div.field {
                label for="environment" { "Only the environment" span.muted { " (optional)" } }
                input id="environment" name="environment" value=(text(f, "environment")) size="20" placeholder="production";
            }
            button id="save-rule" type="submit" name="mode" value="form" { "Save rule" }
            details.expert id="expert" open[json_mode || !whole] {
                summary { "Sentry JSON (for experts)" }
                @let (inv, desc) = invalid(errors, "spec");
                div.field {
                    label for="spec" { "The rule as Sentry's issue alert JSON: conditions, filters, actions" }
                    textarea id="spec" name="spec" rows="18" cols="90" spellcheck="false" aria-invalid=[inv] aria-describedby=[desc] { (spec_text) }
                    (field_error(errors, "spec"))
                }
                button id="save-json" type="submit" name="mode" value="json" { "Save the JSON" }
            }
        }
    }
}

fn issue_template() -> Value {
    json!({
        "name": "Order rejected on BTC",
        "actionMatch": "all",
        "filterMatch": "all",
        "frequency": 5,
        "conditions": [{"id": ids::FIRST_SEEN}],
        "filters": [{"id": ids::TAGGED_EVENT, "key": "trade.asset", "match": "eq", "value": "BTC"}],
        "actions": [{"id": ids::ALL_CHANNELS}],
    })
}

#[derive(Debug, Deserialize)]
struct NewQuery {
    kind: Option<String>,
}

/// The form page (new or edit) with `errors`.
#[allow(clippy::too_many_arguments)]
fn form_page(
    viewer: &Viewer,
    id: Option<i64>,
    kind: &str,
    f: &Fields,
    projects: &[String],
    channels: &[Integration],
    errors: &FieldErrors,
    spec_text: &str,
    whole: bool,
    json_mode: bool,
    preset: Option<&str>,
    mute: Option<Markup>,
) -> Markup {
    let action = match id {
        Some(id) => format!("/alerts/rules/{id}"),
        None => "/alerts/rules".into(),
    };
    let title = match (id, kind) {
        (Some(_), _) => format!("Edit {}", clip(text(f, "name"), 100)),
        (None, "issue") => "New issue rule".into(),
        (None, _) => "New metric rule".into(),
    };
    let body = html! {
        div.page-head { h1 { (title) } @if let Some(p) = preset { span.pill.preset { "preset " (p) } } }
        @if let Some(m) = mute { (m) }
        @if id.is_none() {
            p { "Kind: "
                a href="/alerts/rules/new?kind=metric" aria-current=[(kind == "metric").then_some("page")] { "metric (a measure crosses a threshold)" }
                " · "
                a href="/alerts/rules/new?kind=issue" aria-current=[(kind == "issue").then_some("page")] { "issue (on each matching event)" }
            }
        }
        @if kind == "issue" {
            (issue_form(viewer, &action, f, projects, channels, errors, spec_text, whole, json_mode))
        } @else {
            (metric_form(viewer, &action, f, projects, channels, errors))
        }
        p { a href="/alerts" { "Back to the alerts" } }
    };
    layout(viewer, "alerts", "Alert rule", body)
}

async fn new_rule(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<NewQuery>,
) -> Page {
    let (projects, channels) = form_lists(&state).await?;
    let kind = if q.kind.as_deref() == Some("issue") {
        "issue"
    } else {
        "metric"
    };
    let project = projects.first().cloned().unwrap_or_default();
    let (mut f, spec) = if kind == "issue" {
        let t = issue_template();
        let (f, _) = issue_fields_of(&t, &channels);
        (f, serde_json::to_string_pretty(&t).unwrap_or_default())
    } else {
        let mut f = Fields::new();
        f.insert("time_window".into(), "5".into());
        f.insert("act_all".into(), "on".into());
        (f, String::new())
    };
    f.insert("project".into(), project);
    Ok(form_page(
        &viewer,
        None,
        kind,
        &f,
        &projects,
        &channels,
        &FieldErrors::default(),
        &spec,
        true,
        false,
        None,
        None,
    ))
}

async fn edit_rule(State(state): State<AppState>, viewer: Viewer, Path(id): Path<i64>) -> Page {
    let (projects, channels) = form_lists(&state).await?;
    let rule = find_rule(&state, id).await?;
    let triage = state.store.triage();
    let mute = blocking(move || triage.mute_of(id)).await?;
    let mute = mute_box(&viewer, id, mute.as_ref(), state.clock.now_ms());
    let spec = serde_json::to_string_pretty(&rule.spec).unwrap_or_default();
    let (f, whole) = if rule.kind == "issue" {
        let (mut f, whole) = issue_fields_of(&rule.spec, &channels);
        f.insert("project".into(), rule.project_slug.clone());
        (f, whole)
    } else {
        (metric_fields_of(&rule), true)
    };
    Ok(form_page(
        &viewer,
        Some(id),
        &rule.kind,
        &f,
        &projects,
        &channels,
        &FieldErrors::default(),
        &spec,
        whole,
        false,
        rule.preset.as_deref(),
        Some(mute),
    ))
}

async fn find_rule(state: &AppState, id: i64) -> Result<StoredRule, UiError> {
    let store = state.store.alerts();
    Ok(blocking(move || {
        let oid = store.org_id("default")?;
        match store.rule(oid, id, "metric") {
            Err(crate::store::StoreError::NotFound(_)) => store.rule(oid, id, "issue"),
            other => other,
        }
    })
    .await?)
}

/// Save the form as rule `id` (or a new rule) and go back to the alerts; on any error, the
/// form again with each error beside its field and what was typed, nothing saved.
async fn save(
    state: AppState,
    viewer: Viewer,
    id: Option<i64>,
    kind: &str,
    f: Fields,
) -> Result<Response, UiError> {
    viewer.check_csrf(text(&f, "csrf"))?;
    let (projects, channels) = form_lists(&state).await?;
    let project = Some(text(&f, "project"))
        .filter(|p| !p.is_empty())
        .unwrap_or("default")
        .to_owned();
    let mut errors = FieldErrors::default();
    if !projects.contains(&project) {
        errors.add("project", "Choose a project from the list.");
    }
    let json_mode = kind == "issue" && text(&f, "mode") == "json";
    let body = if kind == "issue" {
        if json_mode {
            match serde_json::from_str::<Value>(f.get("spec").map_or("", String::as_str)) {
                Err(e) => {
                    errors.add("spec", format!("Not valid JSON: {e}."));
                    Value::Null
                }
                Ok(b) if !b.is_object() => {
                    errors.add("spec", "The rule must be a JSON object ({ … }).");
                    Value::Null
                }
                Ok(b) => b,
            }
        } else {
            issue_body(&f, &channels, &mut errors)
        }
    } else {
        metric_body(&f, &channels, &mut errors)
    };
    if errors.is_empty() {
        let saved = if kind == "issue" {
            rule_book::save_issue_rule(
                &state.store,
                "default",
                &project,
                id,
                body.clone(),
                Save::Replace,
            )
            .await
        } else {
            rule_book::save_metric_rule(&state.store, "default", Some(&project), id, body.clone())
                .await
        };
        match saved {
            Ok(_) => return Ok(Redirect::to("/alerts").into_response()),
            Err(ServiceError::Fields(v)) => {
                if json_mode {
                    let mut e = FieldErrors::default();
                    e.absorb(&v, kind);
                    let all: Vec<String> = e
                        .by_field
                        .into_values()
                        .flatten()
                        .chain(e.general)
                        .collect();
                    errors.add("spec", all.join(" "));
                } else {
                    errors.absorb(&v, kind);
                }
            }
            Err(other) => return Err(other.into()),
        }
    }
    // Show the form again as typed. The JSON box shows the form's rule, unless it was the
    // JSON that was submitted.
    let spec_text = if json_mode || body.is_null() {
        f.get("spec").cloned().unwrap_or_default()
    } else {
        serde_json::to_string_pretty(&body).unwrap_or_default()
    };
    let (mut shown, whole) = if json_mode && body.is_object() {
        let (mut g, whole) = issue_fields_of(&body, &channels);
        g.insert("project".into(), project.clone());
        (g, whole)
    } else {
        (f.clone(), true)
    };
    shown.insert("project".into(), project);
    let page = form_page(
        &viewer, id, kind, &shown, &projects, &channels, &errors, &spec_text, whole, json_mode,
        None, None,
    );
    Ok((StatusCode::BAD_REQUEST, page).into_response())
}

async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(f): Form<Fields>,
) -> Result<Response, UiError> {
    let kind = if text(&f, "kind") == "issue" {
        "issue"
    } else {
        "metric"
    };
    save(state, viewer, None, kind, f).await
}

async fn update(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(f): Form<Fields>,
) -> Result<Response, UiError> {
    let existing = find_rule(&state, id).await?;
    save(state, viewer, Some(id), &existing.kind, f).await
}

async fn delete(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(&f.csrf)?;
    let rule = find_rule(&state, id).await?;
    let store = state.store.alerts();
    blocking(move || store.delete_rule(rule.id)).await?;
    Ok(Redirect::to("/alerts").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(id: i64, provider: &str, name: &str) -> Integration {
        Integration {
            id,
            provider: provider.into(),
            name: name.into(),
            config: json!({}),
            date_created: 0,
        }
    }

    #[test]
    fn rules_read_as_sentences() {
        let chans = vec![
            channel(2, "slack", "#trading-alerts"),
            channel(3, "pagerduty", "on-call"),
        ];
        let c = Channels::of(&chans);
        let metric = json!({"aggregate": "p99(transaction.duration)", "query": "transaction.op:order.pipeline",
            "timeWindow": 5, "thresholdType": 0,
            "triggers": [{"label": "critical", "alertThreshold": 2000, "actions": [{"type": "slack", "integrationId": 2}]}]});
        assert_eq!(
            metric_words(&metric, &c),
            "p99 of order.pipeline > 2 s over 5 min → Slack #trading-alerts"
        );
        let issue = json!({"actionMatch": "all", "filterMatch": "all",
            "conditions": [{"id": ids::FIRST_SEEN}],
            "filters": [{"id": ids::TAGGED_EVENT, "key": "trade.asset", "match": "eq", "value": "BTC"}],
            "actions": [{"id": ids::PAGERDUTY, "account": 3}]});
        assert_eq!(
            issue_words(&issue, &c),
            "A new issue with trade.asset = BTC → PagerDuty on-call"
        );
        let rate = json!({"aggregate": "error_rate()", "query": "", "timeWindow": 60, "thresholdType": 0,
            "triggers": [{"label": "critical", "alertThreshold": 5, "actions": [{"type": "all"}]}]});
        assert_eq!(
            metric_words(&rate, &c),
            "error rate > 5 % over 1 h → every channel"
        );
        assert_eq!(c.label(9), "a removed channel (#9)");
        assert_eq!(channel_label(&channel(4, "slack", "slack")), "Slack #4");
    }

    #[test]
    fn the_issue_form_round_trips_a_rule_it_can_show() {
        let chans = vec![channel(3, "pagerduty", "on-call")];
        let rule = json!({"name": "BTC", "actionMatch": "any", "filterMatch": "all", "frequency": 10,
            "conditions": [{"id": ids::FIRST_SEEN}, {"id": ids::EVENT_FREQUENCY, "value": 100, "interval": "1h"}],
            "filters": [{"id": ids::TAGGED_EVENT, "key": "trade.asset", "match": "eq", "value": "BTC"},
                        {"id": ids::LEVEL, "match": "gte", "level": "40"}],
            "actions": [{"id": ids::PAGERDUTY, "account": 3}]});
        let (f, whole) = issue_fields_of(&rule, &chans);
        assert!(whole);
        let mut errors = FieldErrors::default();
        let body = issue_body(&f, &chans, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            rules::parse_issue_rule(&body, &[3]).unwrap(),
            rules::parse_issue_rule(&rule, &[3]).unwrap()
        );
        // A repeated condition has no place in the form: the page says to use the JSON.
        let twice = json!({"name": "x", "actionMatch": "all", "conditions": [{"id": ids::FIRST_SEEN}, {"id": ids::FIRST_SEEN}], "actions": []});
        assert!(!issue_fields_of(&twice, &chans).1);
    }

    #[test]
    fn metric_form_refuses_meaningless_values_beside_their_fields() {
        let mut f = Fields::new();
        for (k, v) in [
            ("name", "p99"),
            ("aggregate", "p99(transaction.duration)"),
            ("query", "trade.asset:"),
            ("time_window", "0"),
            ("threshold", "-5"),
        ] {
            f.insert(k.into(), v.into());
        }
        let mut errors = FieldErrors::default();
        metric_body(&f, &[], &mut errors);
        assert!(
            errors.get("threshold").unwrap().contains("0 ms or more"),
            "{errors:?}"
        );
        assert_eq!(
            errors.get("query").unwrap(),
            "Invalid query: expected a value after `trade.asset:` at column 12."
        );
        assert!(errors.get("time-window").is_some());
        f.insert("aggregate".into(), "error_rate()".into());
        f.insert("threshold".into(), "150".into());
        let mut errors = FieldErrors::default();
        metric_body(&f, &[], &mut errors);
        assert!(
            errors
                .get("threshold")
                .unwrap()
                .contains("between 0 and 100 %"),
            "{errors:?}"
        );
    }
}

// ---------- triage: acknowledge an incident, mute a rule ----------

async fn ack_incident(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(&f.csrf)?;
    let alerts = state.store.alerts();
    let triage = state.store.triage();
    let by = format!("user:{}", viewer.username());
    let now = state.clock.now_ms();
    blocking(move || {
        let oid = alerts.org_id("default")?;
        triage.acknowledge(oid, id, &by, now)
    })
    .await
    .map_err(|e| match e {
        crate::services::ServiceError::Store(crate::store::StoreError::Invalid(why)) => {
            UiError::BadRequest(why)
        }
        other => other.into(),
    })?;
    Ok(Redirect::to(&format!("/alerts/incidents/{id}")).into_response())
}

/// The mute durations the rule page offers: (form value, words).
const MUTE_CHOICES: &[(&str, &str)] = &[
    ("30m", "30 minutes"),
    ("1h", "1 hour"),
    ("4h", "4 hours"),
    ("1d", "1 day"),
    ("7d", "7 days"),
];

#[derive(Debug, serde::Deserialize)]
struct MuteForm {
    csrf: String,
    #[serde(default)]
    duration: String,
}

async fn mute_rule(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(f): Form<MuteForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(&f.csrf)?;
    let ms = crate::alerts::telegram_bot::parse_duration(&f.duration)
        .filter(|_| MUTE_CHOICES.iter().any(|(v, _)| *v == f.duration))
        .ok_or_else(|| {
            UiError::BadRequest(format!(
                "Mute for one of {}, not {:?}.",
                MUTE_CHOICES
                    .iter()
                    .map(|c| c.1)
                    .collect::<Vec<_>>()
                    .join(", "),
                clip(&f.duration, 20)
            ))
        })?;
    let rule = find_rule(&state, id).await?;
    let alerts = state.store.alerts();
    let triage = state.store.triage();
    let by = format!("user:{}", viewer.username());
    let now = state.clock.now_ms();
    blocking(move || {
        let oid = alerts.org_id("default")?;
        triage.mute(oid, rule.id, Some(now + ms), &by, now)
    })
    .await?;
    Ok(Redirect::to(&format!("/alerts/rules/{id}")).into_response())
}

async fn unmute_rule(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(&f.csrf)?;
    let rule = find_rule(&state, id).await?;
    let alerts = state.store.alerts();
    let triage = state.store.triage();
    let by = format!("user:{}", viewer.username());
    let now = state.clock.now_ms();
    blocking(move || {
        let oid = alerts.org_id("default")?;
        triage.unmute(oid, rule.id, &by, now)
    })
    .await?;
    Ok(Redirect::to(&format!("/alerts/rules/{id}")).into_response())
}

/// The rule page's mute box: muted until when and by whom, with Unmute; or a Mute form.
fn mute_box(
    viewer: &Viewer,
    id: i64,
    mute: Option<&crate::store::triage::Mute>,
    now: i64,
) -> Markup {
    let mute = mute.filter(|m| m.active(now));
    html! {
        section.mute-box id="rule-mute" aria-labelledby="rule-mute-title" {
            h2 id="rule-mute-title" { "Notifications" }
            @match mute {
                Some(m) => {
                    p id="rule-muted" {
                        strong { "Muted" }
                        @match m.until { Some(u) => { " until " (when(u)) " UTC" } None => { " until unmuted" } }
                        " by " (clip(&m.by, 100)) ". The rule still evaluates and records incidents; it notifies no one."
                    }
                    form.inline method="post" action=(format!("/alerts/rules/{id}/unmute")) {
                        (csrf_field(viewer))
                        button id="unmute-rule" type="submit" { "Unmute" }
                    }
                }
                None => {
                    form.inline method="post" action=(format!("/alerts/rules/{id}/mute")) {
                        (csrf_field(viewer))
                        label for="mute-duration" { "Mute for " }
                        select id="mute-duration" name="duration" {
                            @for (v, words) in MUTE_CHOICES { option value=(v) selected[*v == "1h"] { (words) } }
                        }
                        " "
                        button id="mute-rule" type="submit" { "Mute" }
                    }
                }
            }
        }
    }
}
