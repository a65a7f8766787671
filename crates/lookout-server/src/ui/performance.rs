//! Performance: transactions with percentiles and failure rate, per-stage latency of
//! `order.pipeline` over time, and the waterfall of one trace.

use super::issues::{pick_project, project_select};
use super::{Page, Viewer, charts, clip, empty, layout, ms, pct, raw, urlencode, when};
use crate::api::{blocking, parse_period};
use crate::config::Synchronous;
use crate::http::AppState;
use crate::store::connect;
use crate::store::read::{LatencySummary, SpanRow, decode_payload};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use lookout_protocol::sketch::DDSketch;
use maud::html;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/performance", get(page))
        .route("/performance/traces/{trace_id}", get(trace))
}

/// The stages of the agent library's order pipeline, in order.
const STAGES: &[&str] = &[
    "signal.validate",
    "risk.check",
    "order.size",
    "http.client",
    "order.confirm",
];
const PIPELINE: &str = "order.pipeline";

#[derive(Debug, Deserialize)]
struct PerfQuery {
    project: Option<String>,
    period: Option<String>,
    q: Option<f64>,
}

/// A recent transaction: (event id, name, trace id, ms, duration ms, status).
type Recent = (String, String, Option<String>, i64, Option<f64>, String);

async fn page(State(state): State<AppState>, viewer: Viewer, Query(pq): Query<PerfQuery>) -> Page {
    let period = pq.period.clone().unwrap_or_else(|| "1h".into());
    let span_ms = parse_period(&period)?.clamp(60_000, 30 * 86_400_000);
    let quantile = pq.q.filter(|q| (0.0..=1.0).contains(q)).unwrap_or(0.99);
    let now = state.clock.now_ms();
    let since = now - span_ms;
    // About 30 points whatever the window, on minute boundaries.
    let bucket = (span_ms / 30).max(60_000).div_euclid(60_000) * 60_000;
    let path = state.config.data_dir.join("lookout.db");
    let reader = state.reader.clone();
    let wanted = pq.project.clone();
    let (projects, slug, summaries, series, recent) = blocking(move || {
        let conn = connect(&path, Synchronous::Normal)?;
        let (all, (pid, slug)) = pick_project(&conn, wanted.as_deref())?;
        let summaries: Vec<LatencySummary> = reader.latency(pid, "transaction", since, now + 60_000)?;
        // (series name, bucket) → merged sketch
        let mut merged: BTreeMap<(String, i64), DDSketch> = BTreeMap::new();
        // Stage spans are keyed by op (name = op, so the primary key finds them);
        // pipeline transactions by name and op, whatever the agent named them.
        let mut by_name = conn.prepare_cached(
            "SELECT op, minute, sketch FROM rollup_latency WHERE project_id = ?1 AND kind = 'span' AND name = ?2 AND op = ?2 AND minute >= ?3",
        )?;
        let mut by_op = conn.prepare_cached(
            "SELECT op, minute, sketch FROM rollup_latency WHERE project_id = ?1 AND kind = 'transaction' AND op = ?2 AND minute >= ?3",
        )?;
        let from_minute = since - since.rem_euclid(60_000);
        for op in std::iter::once(PIPELINE).chain(STAGES.iter().copied()) {
            let stmt = if op == PIPELINE { &mut by_op } else { &mut by_name };
            let rows = stmt.query_map(rusqlite::params![pid, op, from_minute], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?))
            })?;
            for row in rows {
                let (name, minute, bytes) = row?;
                let b = minute - (minute - from_minute).rem_euclid(bucket);
                if let Ok(s) = DDSketch::from_bytes(&bytes) {
                    merged.entry((name, b)).or_default().merge(&s);
                }
            }
        }
        let mut series: Vec<(String, Vec<(i64, f64)>)> = Vec::new();
        for name in std::iter::once(PIPELINE).chain(STAGES.iter().copied()) {
            let points: Vec<(i64, f64)> = merged
                .range((name.to_owned(), i64::MIN)..=(name.to_owned(), i64::MAX))
                .filter_map(|((_, b), s)| s.quantile(quantile).map(|v| (*b, v)))
                .collect();
            if !points.is_empty() {
                series.push((name.to_owned(), points));
            }
        }
        let mut recent_stmt = conn.prepare_cached(
            "SELECT event_id, transaction_name, trace_id, timestamp, payload FROM events
             WHERE project_id = ?1 AND kind = 'transaction' ORDER BY timestamp DESC LIMIT 25",
        )?;
        let recent: Vec<Recent> = recent_stmt
            .query_map([pid], |r| {
                let payload: Vec<u8> = r.get(4)?;
                let p = decode_payload(&payload);
                let dur = match (p.get("start_timestamp").and_then(|v| v.as_f64()), p.get("timestamp").and_then(|v| v.as_f64())) {
                    (Some(a), Some(b)) => Some((b - a) * 1000.0),
                    _ => None,
                };
                let status = p
                    .get("contexts")
                    .and_then(|c| c.get("trace"))
                    .and_then(|t| t.get("status"))
                    .and_then(|s| s.as_str())
                    .unwrap_or("ok")
                    .to_owned();
                Ok((r.get(0)?, r.get::<_, Option<String>>(1)?.unwrap_or_default(), r.get(2)?, r.get(3)?, dur, status))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok((all, slug, summaries, series, recent))
    })
    .await?;
    let qlabel = format!("p{}", (quantile * 100.0).round());
    let svg = charts::lines(
        &series.iter().map(|s| s.1.clone()).collect::<Vec<_>>(),
        since,
        now,
        "ms",
        900,
        300,
    );
    let body = html! {
        div.page-head { h1 { "Performance" } }
        form.filters method="get" action="/performance" {
            (project_select(&projects, &slug))
            label { "Window " select name="period" {
                @for p in ["15m", "1h", "6h", "24h", "7d"] { option value=(p) selected[p == period] { (p) } }
            } }
            label { "Percentile " select name="q" {
                @for (v, l) in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")] { option value=(v) selected[(v - quantile).abs() < 1e-9] { (l) } }
            } }
            button type="submit" { "Show" }
        }
        h2 { "order.pipeline: " (qlabel) " latency per stage" }
        @if series.is_empty() {
            (empty("No order.pipeline transaction in this window."))
        } @else {
            figure.chart id="stage-chart" {
                (raw(svg))
                figcaption.legend { @for (i, (name, _)) in series.iter().enumerate() {
                    span.legend-item { span.swatch style=(format!("background:{}", charts::color_css(i))) {} (name) }
                } }
            }
        }
        h2 { "Transactions" }
        @if summaries.is_empty() { (empty("No transaction in this window.")) } @else {
            table.grid id="transactions" {
                thead { tr { th { "Transaction" } th { "Op" } th.num { "Count" } th.num { "p50" } th.num { "p95" } th.num { "p99" } th.num { "Failure rate" } } }
                tbody { @for s in &summaries {
                    tr { td { (clip(&s.name, 120)) } td { (clip(&s.op, 60)) } td.num { (s.count) }
                         td.num { (ms(s.p50)) } td.num { (ms(s.p95)) } td.num { (ms(s.p99)) } td.num { (pct(Some(s.failure_rate * 100.0))) } }
                } }
            }
        }
        h2 { "Recent transactions" }
        @if recent.is_empty() { (empty("None yet.")) } @else {
            table.grid id="recent-transactions" {
                thead { tr { th { "Transaction" } th { "When (UTC)" } th.num { "Duration" } th { "Status" } th { "Trace" } } }
                tbody { @for (event_id, name, trace_id, at, dur, status) in &recent {
                    tr { td { (clip(name, 100)) } td { (when(*at)) } td.num { (ms(*dur)) } td { (clip(status, 30)) }
                         td { @if let Some(t) = trace_id { a.trace-link href=(format!("/performance/traces/{}?project={}", urlencode(t), urlencode(&slug))) title=(event_id) { (clip(t, 12)) } } } }
                } }
            }
        }
    };
    Ok(layout(&viewer, "performance", "Performance", body))
}

#[derive(Debug, Deserialize)]
struct TraceQuery {
    project: Option<String>,
}

async fn trace(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(trace_id): Path<String>,
    Query(tq): Query<TraceQuery>,
) -> Page {
    let path = state.config.data_dir.join("lookout.db");
    let reader = state.reader.clone();
    let tid = trace_id.clone();
    let spans: Vec<SpanRow> = blocking(move || {
        let conn = connect(&path, Synchronous::Normal)?;
        let (_, (pid, _)) = pick_project(&conn, tq.project.as_deref())?;
        reader.trace(pid, &tid)
    })
    .await?;
    let start = spans
        .iter()
        .map(|s| s.start_timestamp)
        .fold(f64::INFINITY, f64::min);
    let end = spans
        .iter()
        .map(|s| s.timestamp)
        .fold(f64::NEG_INFINITY, f64::max);
    let total = (end - start).max(1e-6);
    let mut depth: HashMap<&str, usize> = HashMap::new();
    let mut rows = Vec::with_capacity(spans.len());
    for s in &spans {
        let d = s
            .parent_span_id
            .as_deref()
            .and_then(|p| depth.get(p))
            .map_or(0, |d| d + 1)
            .min(30);
        depth.insert(s.span_id.as_str(), d);
        rows.push((d, s));
    }
    let body = html! {
        div.page-head {
            h1 { "Trace " code { (clip(&trace_id, 64)) } }
            div.muted { (spans.len()) " spans · " (ms(Some(total * 1000.0))) }
        }
        @if spans.is_empty() { (empty("No span of this trace is stored.")) } @else {
            div.waterfall id="waterfall" {
                @for (d, s) in &rows {
                    @let left = (s.start_timestamp - start) / total * 100.0;
                    @let width = ((s.timestamp - s.start_timestamp) / total * 100.0).max(0.3);
                    @let failed = s.status.as_deref().is_some_and(|st| st != "ok");
                    div class=(if failed { "span-row failed" } else { "span-row" }) {
                        div.span-label style=(format!("padding-left:{}em", *d as f64 * 1.2)) {
                            span.op { (clip(&s.op, 60)) } " " span.desc { (clip(s.description.as_deref().unwrap_or(""), 120)) }
                        }
                        div.span-track {
                            div.span-bar style=(format!("left:{left:.3}%;width:{width:.3}%")) title=(format!("{:.1} ms", s.duration_ms)) {}
                        }
                        div.span-dur { (ms(Some(s.duration_ms))) @if let Some(st) = &s.status { " " span.muted { (clip(st, 30)) } } }
                    }
                }
            }
        }
    };
    Ok(layout(&viewer, "performance", "Trace", body))
}
