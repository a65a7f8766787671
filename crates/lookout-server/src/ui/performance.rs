//! Performance: transactions with percentiles and failure rate, per-stage latency of
//! `order.pipeline` over time, and the waterfall of one trace.

use super::issues::{pick_project, project_select};
use super::{Page, Viewer, charts, clip, empty, layout, ms, pct, urlencode, when};
use crate::http::state::AppState;
use crate::services::blocking;
use crate::store::read::{LatencySummary, SketchSeries, SpanRow};
use crate::time::parse_period;
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

/// The pipeline's and each stage's figures per bucket, one series per stage.
#[derive(Debug, Default)]
struct StageSeries {
    latency: Vec<(String, Vec<(i64, f64)>)>,
    throughput: Vec<(String, Vec<(i64, f64)>)>,
    error_rate: Vec<(String, Vec<(i64, f64)>)>,
}

#[derive(Debug, Deserialize)]
struct PerfQuery {
    project: Option<String>,
    period: Option<String>,
    q: Option<f64>,
}

async fn page(State(state): State<AppState>, viewer: Viewer, Query(pq): Query<PerfQuery>) -> Page {
    let period = pq.period.clone().unwrap_or_else(|| "1h".into());
    let span_ms = parse_period(&period)?.clamp(60_000, 30 * 86_400_000);
    let quantile = pq.q.filter(|q| (0.0..=1.0).contains(q)).unwrap_or(0.99);
    let now = state.clock.now_ms();
    let since = now - span_ms;
    // About 30 points whatever the window, on minute boundaries.
    let bucket = (span_ms / 30).max(60_000).div_euclid(60_000) * 60_000;
    let reader = state.reader.clone();
    let wanted = pq.project.clone();
    let (projects, slug, summaries, series, recent) = blocking(move || {
        let (all, (pid, slug)) = pick_project(&reader, wanted.as_deref())?;
        let summaries: Vec<LatencySummary> =
            reader.latency(pid, "transaction", since, now + 60_000)?;
        // (series name, bucket) → runs, failures and merged sketch
        let mut merged: BTreeMap<(String, i64), (i64, i64, DDSketch)> = BTreeMap::new();
        let from_minute = since - since.rem_euclid(60_000);
        for op in std::iter::once(PIPELINE).chain(STAGES.iter().copied()) {
            // Stage spans are keyed by op; pipeline transactions by op, whatever the agent
            // named them.
            let which = if op == PIPELINE {
                SketchSeries::TransactionOp(op)
            } else {
                SketchSeries::SpanOp(op)
            };
            for m in reader.latency_sketches(pid, which, since)? {
                let b = m.minute - (m.minute - from_minute).rem_euclid(bucket);
                let e = merged.entry((op.to_owned(), b)).or_default();
                e.0 += m.count;
                e.1 += m.errors;
                e.2.merge(&m.sketch);
            }
        }
        let mut series = StageSeries::default();
        let per_minute = bucket as f64 / 60_000.0;
        for name in std::iter::once(PIPELINE).chain(STAGES.iter().copied()) {
            let buckets: Vec<_> = merged
                .range((name.to_owned(), i64::MIN)..=(name.to_owned(), i64::MAX))
                .map(|((_, b), v)| (*b, v))
                .collect();
            if buckets.is_empty() {
                continue;
            }
            series.latency.push((
                name.to_owned(),
                buckets
                    .iter()
                    .filter_map(|(b, (_, _, s))| s.quantile(quantile).map(|v| (*b, v)))
                    .collect(),
            ));
            series.throughput.push((
                name.to_owned(),
                buckets
                    .iter()
                    .map(|(b, (n, _, _))| (*b, *n as f64 / per_minute))
                    .collect(),
            ));
            series.error_rate.push((
                name.to_owned(),
                buckets
                    .iter()
                    .filter(|(_, (n, _, _))| *n > 0)
                    .map(|(b, (n, e, _))| (*b, *e as f64 * 100.0 / *n as f64))
                    .collect(),
            ));
        }
        let recent = reader.recent_transactions(pid, 25)?;
        Ok((all, slug, summaries, series, recent))
    })
    .await?;
    let qlabel = format!("p{}", (quantile * 100.0).round());
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
        h2 { "order.pipeline, stage by stage" }
        @if series.latency.is_empty() {
            (empty("No order.pipeline transaction in this window."))
        } @else {
            (charts::time_series(&charts::TimeSeries {
                id: "stage-chart",
                title: &format!("{qlabel} latency per stage"),
                unit: charts::Unit::Ms,
                from: since,
                to: now,
                series: series.latency,
            }))
            (charts::time_series(&charts::TimeSeries {
                id: "throughput-chart",
                title: "Throughput per stage",
                unit: charts::Unit::PerMinute,
                from: since,
                to: now,
                series: series.throughput,
            }))
            (charts::time_series(&charts::TimeSeries {
                id: "error-rate-chart",
                title: "Error rate per stage (failed spans and transactions)",
                unit: charts::Unit::Percent,
                from: since,
                to: now,
                series: series.error_rate,
            }))
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
                tbody { @for t in &recent {
                    tr { td { (clip(&t.name, 100)) } td { (when(t.timestamp)) } td.num { (ms(t.duration_ms)) } td { (clip(&t.status, 30)) }
                         td { @if let Some(tid) = &t.trace_id { a.trace-link href=(format!("/performance/traces/{}?project={}", urlencode(tid), urlencode(&slug))) title=(t.event_id) { (clip(tid, 12)) } } } }
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
    let reader = state.reader.clone();
    let tid = trace_id.clone();
    let spans: Vec<SpanRow> = blocking(move || {
        let (_, (pid, _)) = pick_project(&reader, tq.project.as_deref())?;
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
